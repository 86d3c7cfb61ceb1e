"""`appliance refresh`: a venue's own instrument metadata, fetched from the venue into the
config, so that a venue's change of tick, lot, minimum size or contract terms goes through a
plan like any other change (docs/venues.md, "Declaring a venue").

- **OKX and Kraken**: the exchange's metadata file (`metadata`, by default the bundled
  `data/<venue>/` one) is replaced by what the venue serves now: OKX
  `GET /api/v5/public/instruments?instType=<T>` for each instrument type the exchange
  configures (their `data` lists merged, in OKX's response form), Kraken
  `GET /0/public/AssetPairs`. The manifest carries the file's SHA-256, so `appliance plan`
  shows the change, and the compiler checks every configured instrument against the new file
  and names each one that no longer matches.
- **Binance** (spot and USD-M): the filters are the exchange's own YAML (`tick_size`,
  `lot_size`, `min_notional` per instrument, which the engine compares with `exchangeInfo` at
  start). Each value that differs from `GET /api/v3/exchangeInfo` (USD-M:
  `/fapi/v1/exchangeInfo`) is rewritten in the file that sets it, in place: only that
  scalar's characters change, every comment and layout stays. A value set by an override or
  in a file where it cannot be found is reported with where to change it.

A response that is not the venue's format is refused and nothing is written. `--check` writes
nothing: exit 0 when the config holds what the venue serves, 2 when it differs, 1 on an error.
"""

from __future__ import annotations

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
    types = sorted(
        {
            _OKX_INST_TYPES.get(str((i.get("listing") or {}).get("type")), "SPOT")
            for i in _instruments(exchange).values()
        }
    )
    rows: list[Any] = []
    for inst_type in types:
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
        for key in ("tick_size", "lot_size", "min_size", "contract", "halted"):
            a, b = getattr(old, key), getattr(new, key)
            if a != b:
                yield Change(name, key, _show(a), _show(b))


def _show(value: object) -> str:
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, dict):
        return ", ".join(f"{k} {_show(v)}" for k, v in value.items())
    return "trading" if value is None else str(value)


def _refresh_file(
    root: Path, name: str, exchange: dict[str, Any], check: bool, out: Refresh
) -> None:
    venue = out.venue
    text, path = metadata_file(venue, exchange.get("metadata"), root)
    out.file = text
    try:
        before = parse_metadata(venue, json.loads(path.read_text()))
        out.sha_before = hashlib.sha256(path.read_bytes()).hexdigest()
    except (OSError, ValueError, MetadataError):
        before = {}
    fresh = _venue_metadata(venue, _rest(exchange, out), exchange, out)
    try:
        after = parse_metadata(venue, fresh)
    except MetadataError as exc:
        raise _error(out.rest_path, out.requests[-1], f"not {venue}'s format: {exc}") from None
    out.listed = len(after)
    out.changes = list(_listing_changes(_instruments(exchange), before, after))
    # Unchanged when every listing we read is the same (the venue's other fields, its order
    # of rows or the file's layout do not count): the file is left alone.
    out.sha_after = out.sha_before
    if after != before:
        data = (json.dumps(fresh, indent=1, sort_keys=True) + "\n").encode()
        out.sha_after = hashlib.sha256(data).hexdigest()
        if not check:
            write_atomic(path, data)
            out.wrote.append(text)
    # What the compiler says of the configured instruments against the venue's metadata now.
    if out.sha_after != out.sha_before:
        out.problems = [
            problem
            for symbol, body in _instruments(exchange).items()
            for problem in check_instrument(
                f"exchanges.{name}.instruments.{symbol}", venue, text, symbol, body, after
            )
        ]


# ---- Binance: the filters in the exchange's YAML ----


def _binance_filters(body: Any, url: str, where: str) -> dict[str, dict[str, Decimal]]:
    """Symbol -> our filter name -> the venue's value."""
    try:
        out: dict[str, dict[str, Decimal]] = {}
        for s in body["symbols"]:
            filters = {f["filterType"]: f for f in s["filters"]}
            values: dict[str, Decimal] = {}
            for ours, (types, key) in _BINANCE_FILTERS.items():
                found = next((filters[t] for t in types if t in filters), None)
                if found is None:
                    raise KeyError(f"{s['symbol']}: no {'/'.join(types)} filter")
                # USD-M's MIN_NOTIONAL names its value `notional`.
                raw = found.get(key, found.get("notional"))
                values[ours] = Decimal(str(raw))
            out[str(s["symbol"])] = values
        return out
    except (KeyError, TypeError, InvalidOperation) as exc:
        raise _error(where, url, f"not Binance's exchangeInfo: {exc!r}") from None


def _refresh_binance(
    composed: Composed, root: Path, name: str, exchange: dict[str, Any], check: bool, out: Refresh
) -> None:
    market = str(exchange.get("market", "spot"))
    url = f"{_rest(exchange, out)}{_BINANCE_INFO.get(market, _BINANCE_INFO['spot'])}"
    out.requests.append(url)
    listed = _binance_filters(fetch_json(url, out.rest_path), url, out.rest_path)
    out.listed = len(listed)
    edits: dict[Path, list[tuple[list[str], str]]] = {}
    for symbol, body in sorted(_instruments(exchange).items()):
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
            configured = body.get(key)
            try:
                same = Decimal(str(configured)) == value
            except (InvalidOperation, ValueError):
                same = False
            if same:
                continue
            after = format(value.normalize(), "f")
            out.changes.append(Change(symbol, key, str(configured), after))
            path = f"{base}.{key}"
            source = composed.source_of(path) or "?"
            file = root / source
            keys = path.split(".")
            if not source.startswith("conf/") or not file.is_file():
                out.problems.append(
                    Diagnostic(
                        path,
                        configured,
                        "refresh.source",
                        f"the venue says {after}; set in {source}: change it there",
                        source=source,
                    )
                )
                continue
            edits.setdefault(file, []).append((keys, after))
    if check:
        return
    for file, wanted in edits.items():
        text = file.read_text()
        for keys, new in wanted:
            edited = set_scalar(text, keys, new)
            if edited is None:
                path = ".".join(keys)
                out.problems.append(
                    Diagnostic(
                        path,
                        None,
                        "refresh.source",
                        f"the venue says {new}; {path} is not a plain value in "
                        f"{file.relative_to(root)}: change it there",
                        source=str(file.relative_to(root)),
                    )
                )
                continue
            text = edited
        write_atomic(file, text.encode())
        out.wrote.append(str(file.relative_to(root)))


def set_scalar(text: str, keys: Sequence[str], value: str) -> str | None:
    """`text` with the scalar at `keys` (a config path; the file may hold it below any suffix
    of it, as a group option's file does) replaced by `value` in the same quoting style, every
    other character unchanged; None when no such scalar is found."""
    root = yaml.compose(text)
    for start in range(len(keys)):
        node = _find(root, keys[start:])
        if isinstance(node, yaml.ScalarNode):
            quote = node.style if node.style in ("'", '"') else ""
            new = f"{quote}{value}{quote}" if quote else f'"{value}"'
            return text[: node.start_mark.index] + new + text[node.end_mark.index :]
    return None


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
        lines += [f"  {d.path}: {d.message} [{d.rule}]" for d in out.problems]
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
