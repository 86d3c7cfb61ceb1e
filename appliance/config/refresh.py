"""`appliance refresh`: a venue's own instrument metadata, fetched from the venue into the
config, so that a venue's change of tick, lot, minimum size or contract terms goes through a
plan like any other change (docs/venues.md, "Declaring a venue").

- **OKX and Kraken**: the configured instruments' rows of the exchange's metadata file
  (`metadata`) are replaced by what the venue serves now: OKX
  `GET /api/v5/public/instruments?instType=<T>` for each instrument type the exchange
  configures, Kraken `GET /0/public/AssetPairs`. Every other row, and the file's form (a bare
  list or the venue's response form), stay. The bundled recordings under `data/` are fixtures
  with their provenance and are never written: the exchange must name a file of its own in the
  project (`exchanges.<name>.metadata`, for example under `conf/exchange/`). The manifest
  carries the file's SHA-256, so `appliance plan` shows the change, and the compiler checks
  every configured instrument against the new file and names each one that no longer matches.
- **Binance** (spot and USD-M): the filters are the exchange's own YAML (`tick_size`,
  `lot_size`, `min_notional` per instrument, which the engine compares with `exchangeInfo` at
  start). Each value that differs from `GET /api/v3/exchangeInfo` (USD-M:
  `/fapi/v1/exchangeInfo`) is rewritten in the file that sets it, in place: only that
  scalar's characters change, every comment, the layout and the line endings stay. The edit is
  made only where it is sure to be the value the config reads (the scalar found at the
  config path holds the configured value, no anchor, alias, tag or block scalar is involved,
  and the file read back differs from before at that path only); a value set by an override,
  or one that cannot be edited so, is reported with where to change it.

A response that is not the venue's format is refused and nothing is written. Exit codes: 0 the
config holds what the venue serves (or now does), 1 an error, or changes written but some left
to make by hand (the report lists them); with `--check`, which writes nothing, 2 when the
config and the venue differ.
"""

from __future__ import annotations

import copy
import hashlib
import json
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from appliance.config.compose import Composed, compose
from appliance.config.diagnostics import ConfigError, Diagnostic, redacted
from appliance.config.venues import (
    DEFAULT_METADATA,
    MetadataError,
    VenueInstrument,
    check_instrument,
    config_name,
    metadata_file,
    parse_metadata,
)
from appliance.files import write_atomic

TIMEOUT_S = 20.0
# OKX instrument types by the `listing.type` of our instruments.
_OKX_INST_TYPES = {"spot": "SPOT", "swap": "SWAP", "futures": "FUTURES"}
# Venues that speak Binance's REST API (the sim serves its exchangeInfo from the manifest).
_BINANCE_VENUES = ("binance_spot", "binance_usdm", "sim")
_BINANCE_INFO = {"spot": "/api/v3/exchangeInfo", "usdm": "/fapi/v1/exchangeInfo"}
# Our filter -> Binance's (filter types, field), as the engine reads exchangeInfo.
_BINANCE_FILTERS = {
    "tick_size": (("PRICE_FILTER",), "tickSize"),
    "lot_size": (("LOT_SIZE",), "stepSize"),
    "min_notional": (("NOTIONAL", "MIN_NOTIONAL"), "minNotional"),
}


@dataclass
class Change:
    """One configured instrument's value that differs from what the venue serves."""

    instrument: str
    field: str
    before: str
    after: str


@dataclass
class Refresh:
    """What a refresh found and did, for the report."""

    exchange: str
    venue: str
    requests: list[str] = field(default_factory=list)
    listed: int = 0
    changes: list[Change] = field(default_factory=list)
    # OKX/Kraken: the metadata file and its hashes before and after.
    file: str | None = None
    sha_before: str | None = None
    sha_after: str | None = None
    # Files rewritten (Binance: the YAML holding the filters; OKX/Kraken: the metadata file).
    wrote: list[str] = field(default_factory=list)
    # What the compiler refuses once the new metadata is in (OKX/Kraken), or what could not be
    # rewritten (Binance).
    problems: list[Diagnostic] = field(default_factory=list)

    @property
    def rest_path(self) -> str:
        return f"exchanges.{self.exchange}.endpoints.rest"

    @property
    def differs(self) -> bool:
        return bool(self.changes) or self.sha_before != self.sha_after


def _error(path: str, value: object, message: str) -> ConfigError:
    return ConfigError([Diagnostic(path, value, "refresh.venue", message, source="the venue")])


def fetch_json(url: str, path: str) -> Any:
    """GET `url` and read JSON; any failure is a diagnostic on `path` naming the URL."""
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as reply:
            body = reply.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read(300).decode(errors="replace")
        raise _error(path, url, f"GET {url}: HTTP {exc.code} {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise _error(path, url, f"GET {url}: {exc}") from None
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _error(path, url, f"GET {url}: not JSON ({exc})") from None


def pick_exchange(composed: Composed, name: str | None) -> tuple[str, dict[str, Any]]:
    exchanges = composed.data.get("exchanges")
    exchanges = exchanges if isinstance(exchanges, dict) else {}
    if name is None:
        if len(exchanges) == 1:
            name = next(iter(exchanges))
        else:
            raise ConfigError(
                [
                    Diagnostic(
                        "--exchange",
                        None,
                        "refresh.usage",
                        f"the config has {len(exchanges)} exchanges: choose one of "
                        f"{sorted(exchanges)} with --exchange",
                        source="command line",
                    )
                ]
            )
    if name not in exchanges or not isinstance(exchanges[name], dict):
        raise ConfigError(
            [
                Diagnostic(
                    "--exchange",
                    name,
                    "refresh.usage",
                    f"no exchange {name!r} (exchanges: {sorted(exchanges)})",
                    source="command line",
                )
            ]
        )
    return name, exchanges[name]


def _rest(exchange: dict[str, Any], out: Refresh) -> str:
    endpoints = exchange.get("endpoints")
    rest = endpoints.get("rest") if isinstance(endpoints, dict) else None
    if not isinstance(rest, str) or not rest:
        raise _error(out.rest_path, rest, "the exchange has no REST endpoint to ask")
    return rest.rstrip("/")


def _instruments(exchange: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = exchange.get("instruments")
    items = found.items() if isinstance(found, dict) else []
    return {str(k): v for k, v in items if isinstance(v, dict)}


# ---- OKX and Kraken: the metadata file ----


def _venue_metadata(venue: str, rest: str, exchange: dict[str, Any], out: Refresh) -> Any:
    """The venue's metadata now, in the metadata file's format."""
    if venue == "kraken":
        url = f"{rest}/0/public/AssetPairs"
        out.requests.append(url)
        body = fetch_json(url, out.rest_path)
        if not isinstance(body, dict) or body.get("error") or "result" not in body:
            raise _error(out.rest_path, url, f"GET {url}: Kraken answered {str(body)[:300]}")
        return body
    types: set[str] = set()
    for symbol, body in _instruments(exchange).items():
        listing = body.get("listing")
        kind = listing.get("type", "spot") if isinstance(listing, dict) else "spot"
        if kind not in _OKX_INST_TYPES:
            raise _error(
                f"exchanges.{out.exchange}.instruments.{symbol}.listing.type",
                kind,
                f"no OKX instrument type for {kind!r} (one of {sorted(_OKX_INST_TYPES)})",
            )
        types.add(_OKX_INST_TYPES[kind])
    rows: list[Any] = []
    for inst_type in sorted(types):
        url = f"{rest}/api/v5/public/instruments?instType={inst_type}"
        out.requests.append(url)
        body = fetch_json(url, out.rest_path)
        if (
            not isinstance(body, dict)
            or body.get("code") != "0"
            or not isinstance(body.get("data"), list)
        ):
            raise _error(out.rest_path, url, f"GET {url}: OKX answered {str(body)[:300]}")
        rows += body["data"]
    return {"code": "0", "msg": "", "data": rows}


def _listing_changes(
    configured: dict[str, dict[str, Any]],
    before: dict[str, VenueInstrument],
    after: dict[str, VenueInstrument],
) -> Iterator[Change]:
    """How the venue's listing of each configured instrument changed."""
    for name in sorted(configured):
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        if new is None:
            yield Change(name, "listed", "yes", "no longer listed")
            continue
        if old is None:
            yield Change(name, "listed", "no", "listed")
            continue
        for key in ("tick_size", "lot_size", "min_size", "contract", "halted", "expiry_ms"):
            a, b = getattr(old, key), getattr(new, key)
            if a != b and key == "expiry_ms":
                # A future's expiry (OKX expTime): another date is another contract.
                yield Change(name, key, str(a or "(none)"), str(b or "(none)"))
            elif a != b:
                yield Change(name, key, _show(a), _show(b))


def _show(value: object) -> str:
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, dict):
        return ", ".join(f"{k} {_show(v)}" for k, v in value.items())
    return "trading" if value is None else str(value)


def _writable_metadata(root: Path, name: str, venue: str, text: str, path: Path) -> None:
    """Refuse to write a bundled recording or a file outside the project."""
    where = f"exchanges.{name}.metadata"
    project = root.resolve()
    target = path.resolve()
    if not target.is_relative_to(project):
        raise _error(
            where,
            text,
            f"{text} is outside the project: refresh writes only the project's own files",
        )
    if target.is_relative_to(project / "data"):
        bundled = "the bundled recording" if text == DEFAULT_METADATA[venue] else "a recording"
        raise _error(
            where,
            text,
            f"{text} is {bundled} of {venue}'s metadata under data/ (a fixture with its "
            "provenance and SHA256SUMS), never rewritten: copy it to a file of your own, for "
            f"example conf/exchange/{name}.instruments.json, and set {where} to it",
        )


def _metadata_rows(venue: str, data: Any) -> tuple[list[tuple[str | None, Any]], Any]:
    """The rows of a metadata file as (key, row) pairs in file order (OKX: key None; Kraken:
    the pair's key), and a function of the rows giving back the file in the same form."""
    if venue == "kraken":
        wrapped = isinstance(data, dict) and "result" in data
        pairs = data["result"] if wrapped else data
        rows: list[tuple[str | None, Any]] = list(pairs.items())

        def kraken_form(kept: list[tuple[str | None, Any]]) -> Any:
            body = {str(k): v for k, v in kept}
            return data | {"result": body} if wrapped else body

        return rows, kraken_form
    wrapped = isinstance(data, dict)
    listed = data["data"] if wrapped else data

    def okx_form(kept: list[tuple[str | None, Any]]) -> Any:
        body = [v for _, v in kept]
        return data | {"data": body} if wrapped else body

    return [(None, row) for row in listed], okx_form


def _row_name(venue: str, row: Any) -> str | None:
    """The config name of a metadata row (None for a row that names no instrument)."""
    if not isinstance(row, dict):
        return None
    symbol = row.get("wsname") if venue == "kraken" else row.get("instId")
    return config_name(symbol) if isinstance(symbol, str) else None


def _merge_rows(venue: str, existing: Any, fresh: Any, configured: set[str]) -> Any:
    """`existing` with the configured instruments' rows replaced by the venue's now (in
    place; added at the end when new, dropped when the venue no longer lists them): every
    other row and the file's form stay. No existing file: the venue's answer, configured rows
    only."""
    new_rows, _ = _metadata_rows(venue, fresh)
    wanted = {_row_name(venue, row): (key, row) for key, row in new_rows}
    wanted = {name: item for name, item in wanted.items() if name in configured}
    if existing is None:
        _, form = _metadata_rows(venue, fresh)
        return form(list(wanted.values()))
    rows, form = _metadata_rows(venue, existing)
    kept: list[tuple[str | None, Any]] = []
    for key, row in rows:
        name = _row_name(venue, row)
        if name not in configured:
            kept.append((key, row))
        elif name in wanted:
            kept.append(wanted.pop(name))
    kept += wanted.values()
    return form(kept)


def _refresh_file(
    root: Path, name: str, exchange: dict[str, Any], check: bool, out: Refresh
) -> None:
    venue = out.venue
    text, path = metadata_file(venue, exchange.get("metadata"), root)
    out.file = text
    if not check:
        _writable_metadata(root, name, venue, text, path)
    configured = _instruments(exchange)
    existing: Any = None
    before: dict[str, VenueInstrument] = {}
    try:
        raw = path.read_bytes()
        out.sha_before = hashlib.sha256(raw).hexdigest()
        existing = json.loads(raw)
        before = parse_metadata(venue, existing)
    except (OSError, ValueError, MetadataError):
        # Missing or unreadable: written afresh (the compiler already refuses it as it is).
        existing = None
    fresh = _venue_metadata(venue, _rest(exchange, out), exchange, out)
    try:
        listed = parse_metadata(venue, fresh)
    except MetadataError as exc:
        raise _error(out.rest_path, out.requests[-1], f"not {venue}'s format: {exc}") from None
    out.listed = len(listed)
    merged = _merge_rows(venue, copy.deepcopy(existing), fresh, set(configured))
    after = parse_metadata(venue, merged)
    out.changes = list(_listing_changes(configured, before, after))
    # Unchanged when every configured instrument's listing is the same (the venue's other
    # fields and rows, their order and the file's layout do not count): the file stays.
    out.sha_after = out.sha_before
    if existing is None or any(before.get(n) != after.get(n) for n in configured):
        data = (json.dumps(merged, indent=1) + "\n").encode()
        out.sha_after = hashlib.sha256(data).hexdigest()
        if not check:
            write_atomic(path, data)
            out.wrote.append(text)
    # What the compiler says of the configured instruments against the venue's metadata now.
    if out.sha_after != out.sha_before:
        out.problems = [
            problem
            for symbol, body in configured.items()
            for problem in check_instrument(
                f"exchanges.{name}.instruments.{symbol}", venue, text, symbol, body, after
            )
        ]


# ---- Binance: the filters in the exchange's YAML ----


def _binance_filters(
    body: Any, url: str, where: str, symbols: set[str]
) -> dict[str, dict[str, Decimal]]:
    """Symbol -> our filter name -> the venue's value, for the configured `symbols` only (the
    venue's other symbols are not read: a listing we do not trade cannot fail the refresh).
    A value of 0 is kept as 0: Binance's way of saying the filter is not enforced."""
    try:
        listed = body["symbols"]
        if not isinstance(listed, list):
            raise TypeError("symbols is not a list")
    except (KeyError, TypeError) as exc:
        raise _error(where, url, f"not Binance's exchangeInfo: {exc!r}") from None
    out: dict[str, dict[str, Decimal]] = {}
    for s in listed:
        if not isinstance(s, dict) or s.get("symbol") not in symbols:
            continue
        symbol = str(s["symbol"])
        values: dict[str, Decimal] = {}
        for ours, (types, key) in _BINANCE_FILTERS.items():
            name = "/".join(types)
            try:
                filters = {f["filterType"]: f for f in s["filters"]}
                found = next((filters[t] for t in types if t in filters), None)
                if found is None:
                    raise KeyError(f"no {name} filter")
                # USD-M's MIN_NOTIONAL names its value `notional`.
                raw = found.get(key, found.get("notional"))
                values[ours] = Decimal(str(raw))
                if not values[ours].is_finite() or values[ours] < 0:
                    raise InvalidOperation(f"{raw!r}")
            except (KeyError, TypeError, InvalidOperation) as exc:
                raise _error(
                    where, url, f"not Binance's exchangeInfo: {symbol} {name}: {exc!r}"
                ) from None
        out[symbol] = values
    return out


def _refresh_binance(
    composed: Composed, root: Path, name: str, exchange: dict[str, Any], check: bool, out: Refresh
) -> None:
    market = str(exchange.get("market", "spot"))
    if market not in _BINANCE_INFO:
        raise _error(
            f"exchanges.{name}.market",
            market,
            f"no exchangeInfo for market {market!r} (one of {sorted(_BINANCE_INFO)})",
        )
    url = f"{_rest(exchange, out)}{_BINANCE_INFO[market]}"
    out.requests.append(url)
    configured = _instruments(exchange)
    listed = _binance_filters(fetch_json(url, out.rest_path), url, out.rest_path, set(configured))
    out.listed = len(listed)
    edits: dict[Path, list[tuple[str, object, str]]] = {}
    for symbol, body in sorted(configured.items()):
        venue = listed.get(symbol)
        base = f"exchanges.{name}.instruments.{symbol}"
        if venue is None:
            out.changes.append(Change(symbol, "listed", "yes", "no longer listed"))
            out.problems.append(
                Diagnostic(
                    base,
                    symbol,
                    "instrument.venue_listed",
                    f"{url} does not list {symbol}: remove it from the exchange or fix its name",
                    source=composed.source_of(base),
                )
            )
            continue
        for key, value in venue.items():
            configured_value = body.get(key)
            try:
                same = Decimal(str(configured_value)) == value
            except (InvalidOperation, ValueError):
                same = False
            if same:
                continue
            after = format(value.normalize(), "f")
            out.changes.append(Change(symbol, key, str(configured_value), after))
            path = f"{base}.{key}"
            source = composed.source_of(path) or "?"
            file = root / source
            if value == 0:
                reason = (
                    f"the venue does not enforce {key} on {symbol} (0): keep a value of "
                    "your own and change it by hand if needed"
                )
            elif not source.startswith("conf/") or not file.is_file():
                reason = f"the venue says {after}; set in {source}: change it there"
            else:
                edits.setdefault(file, []).append((path, configured_value, after))
                continue
            out.problems.append(
                Diagnostic(path, configured_value, "refresh.source", reason, source=source)
            )
    if check:
        return
    for file, wanted in edits.items():
        where = str(file.relative_to(root))
        # Bytes decoded as they are: CRLF line endings stay CRLF.
        text = file.read_bytes().decode("utf-8")
        for path, configured_value, new in wanted:
            keys = path.split(".")
            # The file holds the path whole (a package _global_ file) or below the exchange
            # (an exchange group option's file).
            candidates = [keys, keys[2:]]
            try:
                text = set_scalar(text, candidates, configured_value, new)
            except NotPlain as exc:
                out.problems.append(
                    Diagnostic(
                        path,
                        configured_value,
                        "refresh.source",
                        f"the venue says {new}; not rewritten in {where} ({exc}): change it there",
                        source=where,
                    )
                )
        if text.encode() != file.read_bytes():
            write_atomic(file, text.encode())
            out.wrote.append(where)


class NotPlain(ValueError):
    """Why a value cannot be rewritten in place with certainty."""


def set_scalar(
    text: str, candidates: Sequence[Sequence[str]], configured: object, value: str
) -> str:
    """`text` with the scalar at the first of `candidates` (key paths) that the file holds
    replaced by `value`, in the same quoting style (a plain scalar becomes a double-quoted
    string, the schema's form), every other character unchanged. Refused (NotPlain, saying
    why) unless the edit is certain to change the value the config reads there and nothing
    else: the file has no anchors, aliases (merge keys) or tags; the scalar is not a block
    scalar; it holds `configured`; and the file read back differs from before at that path
    only (a duplicate key would not)."""
    try:
        for event in yaml.parse(text):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise NotPlain("the file uses anchors or aliases")
            tag = getattr(event, "tag", None)
            if tag is not None:
                raise NotPlain(f"the file uses the tag {tag}")
        root = yaml.compose(text)
        before = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise NotPlain(f"not one plain YAML document: {exc}") from None
    for keys in candidates:
        node = _find(root, keys)
        if node is not None:
            break
    else:
        raise NotPlain("not found at its path")
    if not isinstance(node, yaml.ScalarNode):
        raise NotPlain("not a scalar")
    if node.style in ("|", ">"):
        raise NotPlain("a block scalar")
    try:
        holds = Decimal(node.value) == Decimal(str(configured))
    except (InvalidOperation, ValueError):
        holds = False
    if not holds:
        raise NotPlain(f"it holds {node.value}, not the configured {configured}")
    quote = node.style if node.style in ("'", '"') else '"'
    edited = text[: node.start_mark.index] + f"{quote}{value}{quote}" + text[node.end_mark.index :]
    expected = copy.deepcopy(before)
    _set(expected, keys, value)
    try:
        if yaml.safe_load(edited) != expected:
            raise NotPlain("the edit would change another value too")
    except yaml.YAMLError as exc:
        raise NotPlain(f"the edit would not read back: {exc}") from None
    return edited


def _set(data: Any, keys: Sequence[str], value: str) -> None:
    for key in keys[:-1]:
        data = data[key]
    data[keys[-1]] = value


def _find(node: Any, keys: Sequence[str]) -> Any:
    for key in keys:
        if not isinstance(node, yaml.MappingNode):
            return None
        node = next(
            (v for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == key), None
        )
        if node is None:
            return None
    return node


def refresh(root: Path, overrides: Sequence[str], exchange: str | None, check: bool) -> Refresh:
    """Fetch the venue's metadata for one exchange of the composed config and bring the
    config in line with it (or, with `check`, only say how they differ)."""
    composed = compose(root, overrides)
    name, body = pick_exchange(composed, exchange)
    venue = str(body.get("venue"))
    out = Refresh(exchange=name, venue=venue)
    if venue in DEFAULT_METADATA:
        _refresh_file(root, name, body, check, out)
    elif venue in _BINANCE_VENUES:
        _refresh_binance(composed, root, name, body, check, out)
    else:
        raise _error(f"exchanges.{name}.venue", venue, f"no metadata to refresh for {venue!r}")
    return out


def report(out: Refresh, check: bool) -> str:
    """The refresh in words: what was asked, what differs, what was written, what to do."""
    noun = "instrument" if out.listed == 1 else "instruments"
    lines = [f"{out.exchange} ({out.venue}): {out.listed} {noun} listed"]
    lines += [f"  GET {url}" for url in out.requests]
    if out.file is not None:
        same = out.sha_before == out.sha_after
        lines.append(
            f"metadata {out.file}: "
            + (
                "unchanged"
                if same
                else f"sha256 {(out.sha_before or 'none')[:16]} -> {(out.sha_after or '')[:16]}"
            )
        )
    if out.changes:
        lines.append("configured instruments the venue now lists differently:")
        lines += [f"  {c.instrument}: {c.field} {c.before} -> {c.after}" for c in out.changes]
    elif out.differs:
        lines.append("no configured instrument is listed differently")
    else:
        lines.append("the config holds what the venue serves")
    for file in out.wrote:
        lines.append(f"wrote {file}")
    if out.problems:
        lines.append(
            "still to change in conf/ (the compiler refuses these):"
            if out.file is not None
            else "not rewritten (change these by hand):"
        )
        shown = [redacted(d) for d in out.problems]
        lines += [f"  {d.path}: {d.message} [{d.rule}]" for d in shown]
    if out.differs and not check:
        lines.append("review and roll out the change with `appliance plan` and `appliance apply`")
    if out.differs and check:
        lines.append("nothing written (--check)")
    return "\n".join(lines)


def to_json(out: Refresh, check: bool) -> dict[str, Any]:
    return {
        "exchange": out.exchange,
        "venue": out.venue,
        "requests": out.requests,
        "listed": out.listed,
        "check": check,
        "differs": out.differs,
        "metadata": None
        if out.file is None
        else {"file": out.file, "sha256_before": out.sha_before, "sha256_after": out.sha_after},
        "changes": [c.__dict__ for c in out.changes],
        "wrote": out.wrote,
        "problems": [redacted(d).to_json() for d in out.problems],
    }
