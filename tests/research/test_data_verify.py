"""`appliance data verify`: every instrument's book rebuilt from a capture and checked against
the oracle the data carries, on the bundled real captures of three venues (Binance bookTicker
checkpoints, OKX and Kraken checksums), plus an altered capture, and bad input."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import ROOT, Run

OKX = ROOT / "data/okx/cryptofeed_OKX.ws.1.0"
KRAKEN = ROOT / "data/kraken/cryptofeed_KRAKEN.ws.50.0"
BINANCE = ROOT / "data/binance/spot_btcusdt_20240808.gz"


def _verify(cli: Callable[..., Run], *files: Path) -> tuple[int, dict[str, Any]]:
    run = cli("data", "verify", *map(str, files), "--format", "json")
    body = json.loads(run.stdout, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
    return run.exit_code, body


def _totals(body: dict[str, Any]) -> tuple[int, int]:
    rows = body["instruments"]
    return sum(r["checked"] for r in rows), sum(r["matched"] for r in rows)


def test_okx_every_checksum(cli: Callable[..., Run]) -> None:
    code, body = _verify(cli, OKX)
    assert (code, body["venue"], _totals(body)) == (0, "okx", (191, 191))
    assert {r["instrument"] for r in body["instruments"]} == {"BTC-USDT", "UNI-USD-SWAP"}
    text = cli("data", "verify", str(OKX))
    assert text.exit_code == 0
    assert "191/191 checkpoints matched: every checkpoint matched" in text.stdout


def test_kraken_every_checksum(cli: Callable[..., Run]) -> None:
    code, body = _verify(cli, KRAKEN)
    assert (code, body["venue"], _totals(body)) == (0, "kraken", (2372, 2372))
    assert len(body["instruments"]) == 5


def test_binance_bookticker_checkpoints(cli: Callable[..., Run]) -> None:
    code, body = _verify(cli, BINANCE)
    checked, matched = _totals(body)
    assert (code, body["venue"]) == (0, "binance")
    assert checked == matched >= 560
    assert body["instruments"][0]["oracle"] == "bookTicker"


def test_an_altered_level_fails_naming_the_message(tmp_path: Path, cli: Callable[..., Run]) -> None:
    lines = OKX.read_text().splitlines(keepends=True)
    target = next(
        i for i, ln in enumerate(lines) if '"action":"update"' in ln and '"BTC-USDT"' in ln
    )
    level = lines[target].index('[["')
    size = lines[target].index('","', level) + 3
    line = lines[target]
    lines[target] = line[:size] + ("8" if line[size] == "9" else "9") + line[size + 1 :]
    altered = tmp_path / "cryptofeed_OKX.ws.1.0"
    altered.write_text("".join(lines))
    code, body = _verify(cli, altered)
    assert code == 1 and not body["passed"]
    (btc,) = [r for r in body["instruments"] if r["instrument"] == "BTC-USDT"]
    assert btc["checked"] - btc["matched"] == 1
    assert f"line {target + 1}:" in btc["first_mismatch"]
    assert btc["unverified"] > 0  # nothing after it is trusted until a snapshot
    (uni,) = [r for r in body["instruments"] if r["instrument"] == "UNI-USD-SWAP"]
    assert uni["checked"] == uni["matched"] == 93


def test_bad_input_exits_2(tmp_path: Path, cli: Callable[..., Run]) -> None:
    assert cli("data", "verify", str(tmp_path / "missing.gz")).exit_code == 2
    not_capture = tmp_path / "notes.txt"
    not_capture.write_text("hello\nworld\n")
    run = cli("data", "verify", str(not_capture))
    assert run.exit_code == 2
    assert "not a capture" in run.stderr
    mixed = cli("data", "verify", str(OKX), str(KRAKEN))
    assert mixed.exit_code == 2
    assert "one venue's files at a time" in mixed.stderr
