"""`appliance refresh`'s edits, unit by unit: a value rewritten in place only where it is sure
to be the one the config reads, the metadata file's other rows and form kept, files replaced
whole with their permissions. The refresh against venues over loopback is
tests/e2e/test_refresh.py."""

from __future__ import annotations

import json
import os
import stat
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from appliance.config.diagnostics import ConfigError
from appliance.config.refresh import (
    Change,
    NotPlain,
    _binance_filters,
    _listing_changes,
    _merge_rows,
    set_scalar,
)
from appliance.config.venues import parse_metadata
from appliance.files import write_atomic
from tests.conftest import ROOT

PATH = ["exchanges", "sim", "instruments", "BTCUSDT", "tick_size"]
CANDIDATES = [PATH, PATH[2:]]

GROUP_FILE = """\
# The sim's spot exchange (a comment that stays).
venue: sim
instruments:
  BTCUSDT: {tick_size: "0.01", lot_size: '0.00001'}   # BTC
  ETHUSDT:
    tick_size: 0.01
"""


def test_only_the_value_changes_in_its_quoting_style() -> None:
    edited = set_scalar(GROUP_FILE, CANDIDATES, "0.01", "0.1")
    assert edited == GROUP_FILE.replace('{tick_size: "0.01"', '{tick_size: "0.1"')
    eth = ["instruments", "ETHUSDT", "tick_size"]
    # A plain scalar becomes a quoted string, the schema's form for a decimal.
    assert set_scalar(GROUP_FILE, [eth], "0.01", "0.1") == GROUP_FILE.replace(
        "tick_size: 0.01\n", 'tick_size: "0.1"\n'
    )


def test_crlf_line_endings_stay() -> None:
    crlf = GROUP_FILE.replace("\n", "\r\n")
    edited = set_scalar(crlf, CANDIDATES, "0.01", "0.1")
    assert edited == crlf.replace('"0.01"', '"0.1"', 1)
    assert edited.count("\r\n") == crlf.count("\r\n")


def test_a_package_global_file_holds_the_whole_path() -> None:
    text = "exchanges:\n  sim:\n    instruments:\n      BTCUSDT: {tick_size: '0.01'}\n"
    assert set_scalar(text, CANDIDATES, "0.01", "0.1") == text.replace("'0.01'", "'0.1'")


@pytest.mark.parametrize(
    ("text", "why"),
    [
        # Found only below another key: never an arbitrary suffix of the path.
        ("other:\n  BTCUSDT: {tick_size: '0.01'}\n", "not found"),
        ("instruments:\n  BTCUSDT:\n    tick_size: |\n      0.01\n", "block scalar"),
        # An anchor shared by two instruments: one edit would move both.
        (
            "instruments:\n  BTCUSDT: &f {tick_size: '0.01'}\n  ETHUSDT: *f\n",
            "anchors or aliases",
        ),
        (
            "base: &b {tick_size: '0.01'}\ninstruments:\n  BTCUSDT:\n    <<: *b\n",
            "anchors or aliases",
        ),
        ("instruments:\n  BTCUSDT: {tick_size: !!str 0.01}\n", "tag"),
        # The file holds another value than the config reads (set again elsewhere).
        ("instruments:\n  BTCUSDT: {tick_size: '0.05'}\n", "not the configured 0.01"),
        # A duplicate key: YAML reads the last, the first is not the value.
        (
            "instruments:\n  BTCUSDT: {tick_size: '0.01'}\n  BTCUSDT: {tick_size: '0.01'}\n",
            "another value",
        ),
        ("instruments: [BTCUSDT]\n", "not found"),
        ("a: [\n", "not one plain YAML document"),
    ],
)
def test_an_edit_that_is_not_certain_is_refused_with_why(text: str, why: str) -> None:
    with pytest.raises(NotPlain, match=why):
        set_scalar(text, CANDIDATES, "0.01", "0.1")


def okx_rows() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads((ROOT / "data/okx/instruments.json").read_text())
    return rows


def test_okx_rows_of_configured_instruments_only_are_replaced_in_place() -> None:
    rows = okx_rows()
    names = [r["instId"] for r in rows]
    fresh_row = next(r for r in rows if r["instId"] == "BTC-USDT") | {"tickSz": "0.01"}
    other = next(r for r in rows if r["instId"] != "BTC-USDT")
    # The venue's answer changed an instrument we do not configure too: not taken.
    fresh = {"code": "0", "msg": "", "data": [fresh_row, other | {"tickSz": "123"}]}
    merged = _merge_rows("okx", rows, fresh, {"BTCUSDT"})
    assert isinstance(merged, list), "the bare list form stays"
    assert [r["instId"] for r in merged] == names
    assert next(r for r in merged if r["instId"] == "BTC-USDT")["tickSz"] == "0.01"
    assert [r for r in merged if r["instId"] != "BTC-USDT"] == [
        r for r in rows if r["instId"] != "BTC-USDT"
    ]
    # The response form stays the response form; an instrument the venue no longer lists
    # loses its row, one it lists anew is added.
    wrapped = {"code": "0", "msg": "", "data": rows}
    merged = _merge_rows("okx", wrapped, {"code": "0", "data": [other]}, {"BTCUSDT", "XYZUSDT"})
    assert set(merged) == {"code", "msg", "data"}
    assert "BTC-USDT" not in [r["instId"] for r in merged["data"]]
    listed = parse_metadata("okx", merged)
    assert "BTCUSDT" not in listed and len(listed) == len(parse_metadata("okx", rows)) - 1
    new = {"instId": "XYZ-USDT"} | {k: v for k, v in fresh_row.items() if k != "instId"}
    merged = _merge_rows("okx", rows, {"data": [new]}, {"XYZUSDT"})
    assert [r["instId"] for r in merged] == [*names, "XYZ-USDT"]


def test_kraken_pairs_keep_their_keys_and_form() -> None:
    pairs = json.loads((ROOT / "data/kraken/asset_pairs.json").read_text())
    key, pair = next(iter(pairs.items()))
    name = pair["wsname"].replace("/", "")
    fresh = {"error": [], "result": {key: pair | {"ordermin": "99"}}}
    merged = _merge_rows("kraken", pairs, fresh, {name})
    assert list(merged) == list(pairs), "same pairs, same order, bare form"
    assert merged[key]["ordermin"] == "99"
    assert {k: v for k, v in merged.items() if k != key} == {
        k: v for k, v in pairs.items() if k != key
    }
    # No file yet: the venue's form, with the configured pairs only.
    assert _merge_rows("kraken", None, fresh, {name}) == fresh


def exchange_info(*symbols: dict[str, Any]) -> dict[str, Any]:
    return {"symbols": list(symbols)}


def symbol(name: str, tick: str = "0.01") -> dict[str, Any]:
    return {
        "symbol": name,
        "filters": [
            {"filterType": "PRICE_FILTER", "tickSize": tick},
            {"filterType": "LOT_SIZE", "stepSize": "0.00001"},
            {"filterType": "NOTIONAL", "minNotional": "5"},
        ],
    }


def test_binance_reads_the_configured_symbols_only_and_names_a_bad_filter() -> None:
    broken = {"symbol": "XYZUSDT", "filters": [{"filterType": "PRICE_FILTER"}]}
    got = _binance_filters(exchange_info(symbol("BTCUSDT"), broken), "u", "w", {"BTCUSDT"})
    assert got == {
        "BTCUSDT": {
            "tick_size": Decimal("0.01"),
            "lot_size": Decimal("0.00001"),
            "min_notional": Decimal("5"),
        }
    }
    with pytest.raises(ConfigError) as err:
        _binance_filters(exchange_info(broken), "u", "w", {"XYZUSDT"})
    message = err.value.diagnostics[0].message
    assert "XYZUSDT PRICE_FILTER" in message, message
    # 0: the venue does not enforce the filter; kept, for the caller to report.
    assert _binance_filters(exchange_info(symbol("BTCUSDT", "0")), "u", "w", {"BTCUSDT"})[
        "BTCUSDT"
    ]["tick_size"] == Decimal(0)


def test_write_atomic_keeps_the_file_mode_and_gives_a_new_file_the_umask_mode(
    tmp_path: Path,
) -> None:
    old = tmp_path / "old.json"
    old.write_text("{}")
    old.chmod(0o640)
    write_atomic(old, b"[]")
    assert old.read_bytes() == b"[]"
    assert stat.S_IMODE(old.stat().st_mode) == 0o640
    mask = os.umask(0o022)
    try:
        write_atomic(tmp_path / "new.json", b"[]")
    finally:
        os.umask(mask)
    assert stat.S_IMODE((tmp_path / "new.json").stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.json", "old.json"]


def test_a_futures_expiry_the_venue_changed_is_reported() -> None:
    swap = next(r for r in okx_rows() if r["instId"] == "UNI-USD-SWAP")
    future = swap | {"instId": "UNI-USD-270326", "instType": "FUTURES"}
    before = parse_metadata("okx", [future | {"expTime": "1806048000000"}])
    after = parse_metadata("okx", [future | {"expTime": "1806048000001"}])
    assert before["UNIUSD270326"].expiry_ms == 1806048000000
    changes = list(_listing_changes({"UNIUSD270326": {}}, before, after))
    assert changes == [Change("UNIUSD270326", "expiry_ms", "1806048000000", "1806048000001")]
    # A swap has none.
    assert parse_metadata("okx", [swap])["UNIUSDSWAP"].expiry_ms is None
