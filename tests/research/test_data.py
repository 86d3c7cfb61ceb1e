"""Research data: backtest windows through Python, the sha256-keyed native cache, UTC times,
and `appliance data ls|info|convert` / `appliance backtest --start/--end` on the bundled
capture."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from appliance import engine
from appliance.config.compiler import compile_config
from appliance.research import backtest, data
from tests.conftest import ROOT, Run

CAPTURE = ROOT / "data/binance/spot_btcusdt_20240808.gz"
FIRST = 1_723_161_253_937_085_768  # the capture's first and last local receive times
LAST = 1_723_161_599_999_231_384
T_2356 = data.parse_utc("2024-08-08T23:56:00Z")
MINUTE = 60 * data.NS


@pytest.fixture(scope="module")
def manifest_text() -> str:
    return compile_config(ROOT, []).manifests[0].text


def test_a_window_trades_only_inside_it(manifest_text: str) -> None:
    start, end = T_2356, T_2356 + 2 * MINUTE
    result = backtest.run(manifest_text, [CAPTURE], start_ns=start, end_ns=end)
    assert result.counters["warmup_events"] > 0
    assert result.counters["events"] + result.counters["warmup_events"] < 41_249
    assert len(result.fills) > 0 and len(result.orders) > 0
    for frame in (result.fills, result.orders, result.marks):
        assert frame["ts_ns"].between(start, end - 1).all()
    # The books were synced by the warm-up: marks start at the window's first event.
    assert result.marks["ts_ns"].min() - start < data.NS


def test_a_window_without_data_is_an_error(manifest_text: str) -> None:
    with pytest.raises(engine.WindowError) as err:
        backtest.run(manifest_text, [CAPTURE], start_ns=LAST + 1, end_ns=LAST + MINUTE)
    assert "2024-08-08T23:54:13.937085768Z" in str(err.value)
    assert isinstance(err.value, engine.BacktestError)


def test_the_cache_converts_once_and_replays_like_the_capture(
    manifest_text: str, tmp_path: Path
) -> None:
    before = data.conversions
    native = data.native_for(tmp_path, CAPTURE)
    sha = data.sha256_file(CAPTURE)
    assert native == tmp_path / "state/data/native" / f"{sha}.native"
    assert data.is_native(native)
    stat = native.stat()
    again = data.native_for(tmp_path, CAPTURE)
    assert again == native and data.conversions == before + 1
    assert (again.stat().st_ino, again.stat().st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns)
    # A native file given as input is used as it is.
    assert data.native_for(tmp_path, native) == native
    # No temporary file is left beside it.
    assert not [p for p in native.parent.iterdir() if p.name.endswith(".tmp")]
    record = json.loads((native.parent / f"{sha}.info.json").read_text())
    assert record["sha256"] == sha and record["size"] == CAPTURE.stat().st_size
    assert record["format"] == "hftbacktest" and record["events"] == 41_249
    assert (record["first_local_ns"], record["last_local_ns"]) == (FIRST, LAST)
    # info reads the record (and says where the native file is); it matches the engine's.
    described = data.info(tmp_path, CAPTURE)
    assert described["native"] == str(native)
    direct = engine.capture_info(str(CAPTURE))
    assert {k: described[k] for k in direct} == direct

    raw = backtest.run(manifest_text, [CAPTURE])
    fast = backtest.run(manifest_text, [native])
    pd.testing.assert_frame_equal(raw.fills, fast.fills)
    assert raw.summary == fast.summary


def test_a_concurrent_process_converts_nothing_twice(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from appliance.research import data; "
        "p = data.native_for(Path(sys.argv[1]), Path(sys.argv[2])); "
        "print(data.conversions, p.stat().st_size)"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path), str(CAPTURE)],
            stdout=subprocess.PIPE,
            text=True,
            env=os.environ | {"PYTHONPATH": str(ROOT)},
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120)[0].split() for p in procs]
    assert sorted(int(o[0]) for o in outs) == [0, 1], outs
    assert outs[0][1] == outs[1][1]


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("2024-08-08T23:55:00Z", 1_723_161_300 * data.NS),
        ("2024-08-08 23:55", 1_723_161_300 * data.NS),
        ("2024-08-08T23:55", 1_723_161_300 * data.NS),
        ("2024-08-09T01:55:00+02:00", 1_723_161_300 * data.NS),
        ("2024-08-08T23:55:00.000000001Z", 1_723_161_300 * data.NS + 1),
        ("2024-08-09", 1_723_161_600 * data.NS),
    ],
)
def test_utc_times_parse(text: str, ns: int) -> None:
    assert data.parse_utc(text) == ns


@pytest.mark.parametrize("text", ["yesterday", "2024-13-01", "2024-08-08 25:00", "08/08/2024"])
def test_bad_times_are_clear_errors(text: str) -> None:
    with pytest.raises(data.TimeFormatError, match=r"UTC time|valid date"):
        data.parse_utc(text)


def test_format_utc_round_trips() -> None:
    assert data.format_utc(FIRST) == "2024-08-08T23:54:13.937085768Z"
    assert data.parse_utc(data.format_utc(FIRST)) == FIRST


def test_cli_data_ls_info_convert(project: Path, cli: Callable[..., Run]) -> None:
    listed = cli("data", "ls", "--format", "json", root=project)
    assert listed.exit_code == 0, listed.stderr
    rows = json.loads(listed.stdout)
    # The bundled USD-M, OKX and Kraken captures are listed with their venue, symbols and
    # counts.
    assert [(r["venue"], r["file"], r["symbols"]) for r in rows[1:]] == [
        ("binance", "data/binance/usdm_btcusdt_20240808.gz", ["BTCUSDT"]),
        ("kraken", "data/kraken/cryptofeed_KRAKEN.ws.48.0", ["XMR/USD"]),
        (
            "kraken",
            "data/kraken/cryptofeed_KRAKEN.ws.50.0",
            ["ADA/XBT", "XBT/CHF", "OMG/USD", "ETH/CHF", "XMR/USD"],
        ),
        ("okx", "data/okx/cryptofeed_OKX.ws.1.0", ["UNI-USD-SWAP", "BTC-USDT"]),
    ]
    assert rows[1]["market"] == "usdm"
    row = rows[0]
    assert row["file"] == "data/binance/spot_btcusdt_20240808.gz"
    assert (row["venue"], row["market"], row["symbols"]) == ("binance", "spot", ["BTCUSDT"])
    assert (row["start"], row["end"]) == (
        "2024-08-08T23:54:13.937085768Z",
        "2024-08-08T23:59:59.999231384Z",
    )
    assert (row["messages"], row["gaps"], row["cached"]) == (41_249, 0, False)
    text = cli("data", "ls", root=project)
    assert text.exit_code == 0 and "BTCUSDT" in text.stdout and "5m46s" in text.stdout

    converted = cli("data", "convert", str(CAPTURE), root=project)
    assert converted.exit_code == 0, converted.stderr
    sha = data.sha256_file(CAPTURE)
    assert f"state/data/native/{sha}.native" in converted.stdout
    assert (project / "state/data/native" / f"{sha}.native").is_file()
    assert json.loads(cli("data", "ls", "-f", "json", root=project).stdout)[0]["cached"]

    info = cli("data", "info", str(CAPTURE), "--format", "json", root=project)
    assert info.exit_code == 0, info.stderr
    record = json.loads(info.stdout)
    assert record["sha256"] == sha and record["cache"] == f"state/data/native/{sha}.native"
    assert (record["depth_diffs"], record["snapshots"], record["trades"], record["bbos"]) == (
        3451,
        1,
        9757,
        28040,
    )
    assert record["first_local_utc"] == "2024-08-08T23:54:13.937085768Z"

    out = project / "elsewhere.native"
    elsewhere = cli("data", "convert", str(CAPTURE), "--out", str(out), root=project)
    assert elsewhere.exit_code == 0, elsewhere.stderr
    assert data.is_native(out)


def test_cli_data_refuses_bad_files(project: Path, cli: Callable[..., Run]) -> None:
    missing = cli("data", "info", str(project / "nope.gz"), root=project)
    assert missing.exit_code == 2
    assert "nope.gz" in missing.stderr and "data.exists" in missing.stderr
    not_capture = project / "notes.txt"
    not_capture.write_text("hello\nworld\n")
    bad = cli("data", "convert", str(not_capture), "-f", "json", root=project)
    assert bad.exit_code == 2
    (diag,) = json.loads(bad.stdout)["diagnostics"]
    assert diag["rule"] == "data.capture" and diag["value"].endswith("notes.txt")
    assert not (project / "state/data/native").exists() or not list(
        (project / "state/data/native").glob("*.native")
    )
    assert cli("data", "ls", str(project / "nowhere"), root=project).exit_code == 2


def test_cli_backtest_window(project: Path, cli: Callable[..., Run]) -> None:
    ok = cli(
        "backtest",
        "--start",
        "2024-08-08 23:56",
        "--end",
        "2024-08-08T23:58:00Z",
        "--no-report",
        "-f",
        "json",
        root=project,
    )
    assert ok.exit_code == 0, ok.stderr
    out = json.loads(ok.stdout)
    assert out["counters"]["warmup_events"] > 0
    assert out["data"] == ["spot_btcusdt_20240808.gz"]
    # The default data went through the cache.
    assert list((project / "state/data/native").glob("*.native"))

    after = cli("backtest", "--start", "2024-08-09 00:10", "--no-report", root=project)
    assert after.exit_code == 2
    assert "--start" in after.stderr and "2024-08-09T00:10:00Z" in after.stderr
    assert "2024-08-08T23:59:59.999231384Z" in after.stderr
    assert "window.overlaps_data" in after.stderr
    before = cli("backtest", "--end", "2024-08-08 23:00", "--no-report", root=project)
    assert before.exit_code == 2 and "--end" in before.stderr
    backwards = cli(
        "backtest", "--start", "2024-08-08 23:58", "--end", "2024-08-08 23:56", root=project
    )
    assert backwards.exit_code == 2 and "window.start_before_end" in backwards.stderr
    garbage = cli("backtest", "--start", "noon", root=project)
    assert garbage.exit_code == 2 and "'noon'" in garbage.stderr


def test_time_range_of_files_goes_through_the_cache(tmp_path: Path) -> None:
    before = data.conversions
    assert data.time_range([CAPTURE], tmp_path) == (FIRST, LAST)
    assert data.conversions == before + 1
    data.native_for(tmp_path, CAPTURE)  # already cached: nothing parsed again
    assert data.conversions == before + 1
    assert data.parse_utc_ns("2024-08-08 23:55") == data.parse_utc("2024-08-08T23:55:00Z")
