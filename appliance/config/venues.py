"""The venues' own instrument metadata, the names of their instruments, and the checks of an
exchange's instruments against that metadata (docs/venues.md, "Declaring a venue").

OKX and Kraken publish what they list: OKX `GET /api/v5/public/instruments` (a list of
instruments, or the REST response `{"code": "0", "data": [...]}`; file `instruments.json`) and
Kraken `GET /0/public/AssetPairs` (pair name -> pair, or the REST response `{"error": [],
"result": {...}}`; file `asset_pairs.json`). An exchange on either venue names that file in
`metadata` (by default the bundled `data/<venue>/` one); the compiler checks every configured
instrument against it and writes the file's path and SHA-256 into the manifest, so a change of
the venue's metadata is a change of the manifest that `appliance plan` shows.

One mapping between config names and venue symbols: the config name is the venue's symbol
without its `-` and `/` separators (OKX `BTC-USDT` -> `BTCUSDT`, `UNI-USD-SWAP` ->
`UNIUSDSWAP`; Kraken `XBT/CHF` -> `XBTCHF`), and each instrument states the venue's symbol in
`listing.symbol` (the manifest rule `instrument.venue_symbol` holds the two together). Kraken's
tick and lot are its fixed decimals (`pair_decimals`, `lot_decimals`: 10^-n).

These checks read a file beside the config, so they are config-level (checks.py, "files the
project must hold"); the manifest rules of these venues are the engine's validator's
(engine/manifest/src/validate/venues.rs).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from appliance.config.diagnostics import Diagnostic

# Venue -> its bundled metadata file, relative to the project root.
DEFAULT_METADATA = {
    "okx": "data/okx/instruments.json",
    "kraken": "data/kraken/asset_pairs.json",
}
_OKX_TYPES = {"SPOT": "spot", "SWAP": "swap", "FUTURES": "futures"}


class MetadataError(ValueError):
    """A metadata file that cannot be read as its venue's format."""


@dataclass(frozen=True)
class VenueInstrument:
    """One instrument as the venue lists it; `fields` names each value's source field."""

    symbol: str
    type: str
    tick_size: Decimal
    lot_size: Decimal
    min_size: Decimal
    # value, multiplier, value_currency, type, settle_currency; None for spot.
    contract: dict[str, Any] | None
    fields: Mapping[str, str]
    # The venue's trading state (OKX `state`, Kraken `status`) when it is not live/online.
    halted: str | None = None
    # A futures contract's expiry (OKX `expTime`, ms since the epoch); None elsewhere.
    expiry_ms: int | None = None


def config_name(venue_symbol: str) -> str:
    """The config name of a venue symbol: the symbol without `-` and `/`."""
    return venue_symbol.replace("-", "").replace("/", "")


def metadata_file(venue: str, configured: object, root: Path) -> tuple[str, Path]:
    """The metadata path as written in the manifest (configured or the bundled default) and
    the file it names (relative paths start at the project root)."""
    text = configured if isinstance(configured, str) and configured else DEFAULT_METADATA[venue]
    path = Path(text)
    return text, path if path.is_absolute() else root / path


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_metadata(venue: str, path: Path) -> dict[str, VenueInstrument]:
    """Config name -> the venue's instrument, from `path` in `venue`'s format."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MetadataError(f"cannot be read as JSON: {exc}") from exc
    return parse_metadata(venue, data)


def parse_metadata(venue: str, data: Any) -> dict[str, VenueInstrument]:
    """Config name -> the venue's instrument, from metadata already read as JSON."""
    try:
        # Materialised here: the readers are generators, whose errors come out while iterating.
        items = list(_okx(data) if venue == "okx" else _kraken(data))
    except (KeyError, TypeError, ValueError, InvalidOperation) as exc:
        raise MetadataError(f"not {venue}'s metadata format ({type(exc).__name__}: {exc})") from exc
    return {config_name(i.symbol): i for i in items}


def _dec(value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"{value!r} is not a decimal string")
    return Decimal(str(value))


def _okx(data: Any) -> Iterator[VenueInstrument]:
    rows = data["data"] if isinstance(data, dict) else data
    if not isinstance(rows, list):
        raise TypeError("expected a list of instruments")
    for row in rows:
        kind = _OKX_TYPES.get(row["instType"])
        if kind is None:  # options and margin listings are not instruments of ours
            continue
        contract = None
        if kind != "spot":
            contract = {
                "value": _dec(row["ctVal"]),
                "multiplier": _dec(row["ctMult"]),
                "value_currency": row["ctValCcy"],
                "type": row["ctType"] or "linear",
                "settle_currency": row["settleCcy"],
            }
        yield VenueInstrument(
            symbol=row["instId"],
            type=kind,
            tick_size=_dec(row["tickSz"]),
            lot_size=_dec(row["lotSz"]),
            min_size=_dec(row["minSz"]),
            contract=contract,
            halted=_halted(row.get("state"), "live"),
            expiry_ms=int(row["expTime"]) if row.get("expTime") else None,
            fields={
                "tick_size": "tickSz",
                "lot_size": "lotSz",
                "min_size": "minSz",
                "type": "instType",
                "value": "ctVal",
                "multiplier": "ctMult",
                "value_currency": "ctValCcy",
                "settle_currency": "settleCcy",
                "expiry_ms": "expTime",
            },
        )


def _kraken(data: Any) -> Iterator[VenueInstrument]:
    pairs = data["result"] if isinstance(data, dict) and "result" in data else data
    if not isinstance(pairs, dict):
        raise TypeError("expected an object of asset pairs")
    for pair in pairs.values():
        tick = pair.get("tick_size")
        yield VenueInstrument(
            symbol=pair["wsname"],
            type="spot",
            tick_size=_dec(tick) if tick is not None else Decimal(1).scaleb(-pair["pair_decimals"]),
            lot_size=Decimal(1).scaleb(-pair["lot_decimals"]),
            min_size=_dec(pair["ordermin"]),
            contract=None,
            halted=_halted(pair.get("status"), "online"),
            fields={
                "tick_size": "pair_decimals" if tick is None else "tick_size",
                "lot_size": "lot_decimals",
                "min_size": "ordermin",
            },
        )


def _halted(state: object, live: str) -> str | None:
    """The state of an instrument that does not trade (None when it trades or is not said)."""
    return None if state is None or state == live else str(state)


def manifest_exchange(dumped: dict[str, Any], root: Path) -> dict[str, Any]:
    """An exchange's manifest body: on OKX and Kraken, with the metadata path it was checked
    against and that file's SHA-256 (left out when the file cannot be read: reported by
    `check_metadata`, and the manifest rules name the missing hash)."""
    venue = dumped.get("venue")
    if not _metadata_venue(venue):
        return dumped
    text, path = metadata_file(str(venue), dumped.get("metadata"), root)
    out = dumped | {"metadata": text}
    try:
        out["metadata_sha256"] = file_sha256(path)
    except OSError:
        out.pop("metadata_sha256", None)
    return out


def _metadata_venue(venue: object) -> bool:
    """Whether `venue` names a venue checked against a metadata file (any other value, a list
    or a mapping from a bad override included, is the schema's to report)."""
    return isinstance(venue, str) and venue in DEFAULT_METADATA


def _d(path: str, value: object, rule: str, message: str) -> Diagnostic:
    return Diagnostic(path=path, value=value, rule=rule, message=message)


def check_metadata(
    data: Mapping[str, Any], root: Path, now_ms: int | None = None
) -> Iterator[Diagnostic]:
    """Every OKX and Kraken instrument against its venue's metadata file, from the raw
    composed `data` (what is not the expected shape is the schema's to report); a futures
    contract whose expiry is not after `now_ms` (default: the wall clock) is refused."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    exchanges = data.get("exchanges")
    for name, exchange in (exchanges if isinstance(exchanges, dict) else {}).items():
        if not isinstance(exchange, dict) or not _metadata_venue(exchange.get("venue")):
            continue
        venue = str(exchange["venue"])
        text, path = metadata_file(venue, exchange.get("metadata"), root)
        try:
            listed = load_metadata(venue, path)
        except MetadataError as exc:
            reason = "no such file" if not path.is_file() else str(exc)
            yield _d(
                f"exchanges.{name}.metadata",
                text,
                "exchange.metadata_file",
                f"{text}: {reason} (the venue's metadata file, relative to the project root; "
                f"default {DEFAULT_METADATA[venue]})",
            )
            continue
        instruments = exchange.get("instruments")
        for symbol, body in (instruments if isinstance(instruments, dict) else {}).items():
            if isinstance(body, dict):
                yield from check_instrument(
                    f"exchanges.{name}.instruments.{symbol}", venue, text, str(symbol), body, listed
                )
                yield from check_expiry(f"exchanges.{name}.instruments.{symbol}", body, now)


def check_instrument(
    base: str,
    venue: str,
    file: str,
    symbol: str,
    body: Mapping[str, Any],
    listed: Mapping[str, VenueInstrument],
) -> Iterator[Diagnostic]:
    found = listed.get(symbol)
    if found is None:
        names = ", ".join(f"{i.symbol} ({n})" for n, i in sorted(listed.items()))
        yield _d(
            base,
            symbol,
            "instrument.venue_listed",
            f"{symbol} is not an instrument {venue} lists in {file} (it lists {names}; a "
            "config name is the venue's symbol without - and /)",
        )
        return
    if found.halted is not None:
        yield _d(
            base,
            symbol,
            "instrument.venue_listed",
            f"{venue} lists {found.symbol} in {file} as {found.halted!r}, not trading",
        )
    where = f"{venue} lists {found.symbol} in {file} with"
    listing = body.get("listing")
    listing = listing if isinstance(listing, dict) else {}
    for key, value, path in (
        ("tick_size", body.get("tick_size"), f"{base}.tick_size"),
        ("lot_size", body.get("lot_size"), f"{base}.lot_size"),
        ("min_size", listing.get("min_size"), f"{base}.listing.min_size"),
    ):
        wanted: Decimal = getattr(found, key)
        if _differs(value, wanted):
            yield _d(
                path,
                value,
                "instrument.venue_filter",
                f"{value} but {where} {key} {wanted:f} (its {found.fields[key]})",
            )
    if "type" in listing and listing["type"] != found.type:
        yield _d(
            f"{base}.listing.type",
            listing["type"],
            "instrument.venue_contract",
            f"{listing['type']} but {where} {found.fields.get('type', 'type')} {found.type}",
        )
    if listing and listing.get("expiry_ms") != found.expiry_ms:
        yield _d(
            f"{base}.listing.expiry_ms",
            listing.get("expiry_ms"),
            "instrument.venue_contract",
            f"{listing.get('expiry_ms')} but {where} expTime {found.expiry_ms or '(none)'}",
        )
    contract = listing.get("contract")
    if isinstance(contract, dict) and found.contract is not None:
        for key, wanted_value in found.contract.items():
            value = contract.get(key)
            differs = (
                _differs(value, wanted_value)
                if isinstance(wanted_value, Decimal)
                else value != wanted_value
            )
            if key in contract and differs:
                field = found.fields.get(key, "ctType")
                yield _d(
                    f"{base}.listing.contract.{key}",
                    value,
                    "instrument.venue_contract",
                    f"{value} but {where} {field} {wanted_value}",
                )


def check_expiry(base: str, body: Mapping[str, Any], now_ms: int) -> Iterator[Diagnostic]:
    """A futures contract already expired when the config is compiled: the venue delivered
    it, nothing can be traded on it (the expiry itself is the manifest rule
    `instrument.expiry`'s, and the metadata file's `instrument.venue_contract`)."""
    listing = body.get("listing")
    expiry = listing.get("expiry_ms") if isinstance(listing, dict) else None
    if isinstance(expiry, int) and not isinstance(expiry, bool) and 0 < expiry <= now_ms:
        when = datetime.fromtimestamp(expiry / 1000, tz=UTC).isoformat(timespec="seconds")
        yield _d(
            f"{base}.listing.expiry_ms",
            expiry,
            "instrument.expired",
            f"{expiry} ({when}) is past: the contract expired and was delivered; trade the "
            "next one",
        )


def _differs(value: object, wanted: Decimal) -> bool:
    """A configured decimal that is not the venue's value (a value that is not a decimal is
    the schema's to report)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return False
    try:
        return Decimal(str(value)) != wanted
    except InvalidOperation:
        return False
