"""`appliance baseline` and `engine.anomaly`: ranges derived from a backtest of the same config,
checked against an independent count of the data, inlined into the manifest by the compiler,
and every bad baseline refused at compile time with a diagnostic that says what to do.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from appliance.config.compiler import compile_config
from tests.conftest import ROOT, Run

CAPTURE = ROOT / "data/binance/spot_btcusdt_20240808.gz"
USDM = ROOT / "data/binance/usdm_btcusdt_20240808.gz"


def _derive(cli: Callable[..., Run], project: Path, out: Path, *extra: str) -> dict[str, Any]:
    run = cli(
        "baseline",
        "deployment=paper_local",
        *extra,
        "--out",
        str(out),
        "--format",
        "json",
        root=project,
    )
    assert run.exit_code == 0, run.stdout + run.stderr
    rows: list[dict[str, Any]] = json.loads(run.stdout)["baselines"]
    (row,) = rows
    assert json.loads(out.read_text()) == {k: v for k, v in row.items() if k not in ("path",)} | {
        "engine": "paper_1"
    }
    return row


def _message_counts(window_s: int, speed: int) -> list[int]:
    """The capture's messages counted here, independently, in every window of `window_s`
    wall seconds at `speed` (window_s * speed of market time) sliding one wall second at a
    time, windows with no message left out."""
    with gzip.open(CAPTURE, "rt") as fh:
        stamps = sorted(int(line.split(" ", 1)[0]) for line in fh)
    span, step = window_s * speed * 10**9, speed * 10**9
    counts, a = [], stamps[0]
    while a + span <= stamps[-1]:
        n = sum(1 for t in stamps if a <= t < a + span)
        if n:
            counts.append(n)
        a += step
    return counts


def test_ranges_come_from_the_windows_of_the_data(
    cli: Callable[..., Run], project: Path, tmp_path: Path
) -> None:
    row = _derive(cli, project, tmp_path / "b.json", "--window", "60")
    assert (row["deployment"], row["engine"], row["speed"], row["window_s"]) == (
        "paper_local",
        "paper_1",
        "1",
        60,
    )
    assert row["data"] == ["data/binance/spot_btcusdt_20240808.gz"]
    counts = _message_counts(60, 1)
    assert row["windows"] == len(counts) > 200
    md = row["figures"]["md_messages_per_s.sim_binance"]
    # A rate cannot be negative: min / 1.5 .. max * 1.5 with the default tolerance 0.5.
    assert float(md["low"]) == pytest.approx(min(counts) / 60 / 1.5, abs=1e-8)
    assert float(md["high"]) == pytest.approx(max(counts) / 60 * 1.5, abs=1e-8)
    assert set(row["figures"]) == {
        "fill_ratio",
        "orders_per_1k_messages",
        "pnl_per_hour",
        "markout_bps",
        "tick_to_order_p99_us",
        "md_messages_per_s.sim_binance",
    }
    # Latency is declared, not backtested: 0 .. the config's alert bound, and said so.
    assert row["figures"]["tick_to_order_p99_us"] == {"low": "0", "high": "1000"}
    assert (
        "tick_to_order_p99_us: 0..1000, the bound the config declares "
        "(engine.metrics.tick_to_order_p99_alert_us), not the backtest" in row["derivation"]
    )
    for name, r in row["figures"].items():
        assert float(r["low"]) <= float(r["high"]), name
    assert f"{len(counts)} windows of 60 s at market speed 1" in row["derivation"]
    assert "spot_btcusdt_20240808.gz" in row["derivation"]


def test_the_markout_range_is_the_windows_mean_markouts_widened(
    cli: Callable[..., Run], project: Path, tmp_path: Path
) -> None:
    """`markout_bps` recomputed here from the backtest's fills: each fill's 1 s markout
    counted in the windows its horizon ends in (when the engine takes it), the mean of
    windows with at least 5, min..max widened by 0.5 x the larger magnitude."""
    from appliance.research import backtest
    from appliance.research import data as data_mod

    row = _derive(cli, project, tmp_path / "b.json", "--window", "60")
    off = ["deployment=paper_local", "++deployment.engines.paper_1.anomaly=null"]
    (m,) = compile_config(project, off).manifests
    natives = data_mod.prepare(project, [CAPTURE], data_mod.parse_window(None, None))
    fills = backtest.run(m.text, natives).fills
    marked = fills[fills["markout_1s_bps"].notna()]
    due = [int(t) + 10**9 for t in marked["ts_ns"]]
    bps = [float(b) for b in marked["markout_1s_bps"]]
    with gzip.open(CAPTURE, "rt") as fh:
        stamps = sorted(int(line.split(" ", 1)[0]) for line in fh)
    span, a, means = 60 * 10**9, stamps[0], []
    while a + span <= stamps[-1]:
        mine = [b for t, b in zip(due, bps, strict=True) if a <= t < a + span]
        if len(mine) >= 5 and any(a <= t < a + span for t in stamps):
            means.append(sum(mine) / len(mine))
        a += 10**9
    assert len(means) > 100
    margin = 0.5 * max(abs(min(means)), abs(max(means)))
    got = row["figures"]["markout_bps"]
    assert float(got["low"]) == pytest.approx(min(means) - margin, abs=1e-7)
    assert float(got["high"]) == pytest.approx(max(means) + margin, abs=1e-7)


def test_a_sim_at_speed_8_shows_eight_times_the_market_in_a_window(
    cli: Callable[..., Run], project: Path, tmp_path: Path
) -> None:
    fast = _derive(
        cli, project, tmp_path / "fast.json", "exchanges.sim_binance.sim.speed='8'", "--window", "5"
    )
    # A 5 s window at speed 8 holds 40 s of market, sliding 8 s of market a second.
    counts = _message_counts(5, 8)
    assert (fast["speed"], fast["windows"]) == ("8", len(counts))
    md = fast["figures"]["md_messages_per_s.sim_binance"]
    assert float(md["low"]) == pytest.approx(min(counts) / 5 / 1.5, abs=1e-8)
    assert float(md["high"]) == pytest.approx(max(counts) / 5 * 1.5, abs=1e-8)


def test_the_engines_own_thresholds_are_the_baselines() -> None:
    """A window the engine would not measure must not shape the range: the thresholds are
    the engine's (engine/runtime/src/anomaly.rs)."""
    from appliance.research import baseline

    source = (ROOT / "engine/runtime/src/anomaly.rs").read_text()
    assert f"pub const MIN_ORDERS: u64 = {baseline.MIN_ORDERS};" in source
    assert f"pub const MIN_MESSAGES: u64 = {baseline.MIN_MESSAGES:_};" in source
    assert f"pub const MIN_MARKOUTS: u64 = {baseline.MIN_MARKOUTS};" in source
    horizon = (ROOT / "engine/core/src/markout.rs").read_text()
    assert f"pub const HORIZON_NS: Nanos = {baseline.MARKOUT_HORIZON_S}_000_000_000;" in horizon
    reasons = (ROOT / "engine/core/src/risk.rs").read_text()
    for reason in baseline.VENUE_REASONS:
        assert f'=> "{reason}",' in reasons, reason


def test_the_compiler_inlines_the_baseline_into_the_manifest(
    cli: Callable[..., Run], project: Path, tmp_path: Path
) -> None:
    path = tmp_path / "b.json"
    row = _derive(cli, project, path, "--window", "60")
    compiled = compile_config(
        project,
        ["deployment=paper_local", f"deployment.engines.paper_1.anomaly={{baseline:{path}}}"],
    )
    (m,) = compiled.manifests
    anomaly = json.loads(m.text)["engine"]["anomaly"]
    assert anomaly == {
        "baseline": str(path),
        "baseline_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "window_s": 60,
        "derivation": row["derivation"],
        "figures": row["figures"],
    }
    # Off by default: the shipped deployment runs without one.
    (plain,) = compile_config(project, ["deployment=paper_local"]).manifests
    assert json.loads(plain.text)["engine"]["anomaly"] is None


def _edited(path: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    doc = json.loads(path.read_text())
    edit(doc)
    out = path.with_name(f"edited_{len(list(path.parent.iterdir()))}.json")
    out.write_text(json.dumps(doc))
    return out


def test_a_bad_baseline_is_refused_naming_what_to_do(
    cli: Callable[..., Run], project: Path, tmp_path: Path
) -> None:
    good = tmp_path / "b.json"
    _derive(cli, project, good, "--window", "60")
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    cases = [
        (tmp_path / "missing.json", [], "does not exist: derive it with `appliance baseline"),
        (garbage, [], "cannot be read as JSON"),
        (
            _edited(good, lambda d: d.update(engine="paper_2")),
            [],
            "was derived for engine 'paper_2'",
        ),
        (
            good,
            ["exchanges.sim_binance.sim.speed='8'"],
            "derived at market speed 1, but this engine's venues run at 8",
        ),
        (
            _edited(good, lambda d: d["figures"].update(fill_rate={"low": "0", "high": "1"})),
            [],
            "figure 'fill_rate' is not one this engine measures",
        ),
        (
            _edited(good, lambda d: d["figures"].update(pnl_per_hour={"low": "5", "high": "1"})),
            [],
            "has low 5 above high 1",
        ),
        (_edited(good, lambda d: d.pop("window_s")), [], "is not a baseline: window_s"),
        (
            good,
            ["strategies.mm_btcusdt.params.quote_qty='0.002'"],
            "was derived from another trading config (strategies, risk or exchanges changed",
        ),
        (
            # The latency range was declared from the alert bound: a new bound makes it stale.
            good,
            ["deployment.engines.paper_1.metrics.tick_to_order_p99_alert_us=1234"],
            "tick_to_order_p99_alert_us is now 1234 us: derive it again",
        ),
    ]
    for path, extra, words in cases:
        build = tmp_path / "build"
        run = cli(
            "compile",
            "deployment=paper_local",
            f"deployment.engines.paper_1.anomaly={{baseline:{path}}}",
            *extra,
            "--out",
            str(build),
            root=project,
        )
        assert run.exit_code == 2, (path, run.stdout + run.stderr)
        text = run.stdout + run.stderr
        assert "deployment.engines.paper_1.anomaly.baseline" in text, text
        assert "engine.anomaly_baseline" in text, text
        assert words in text, text
        assert not build.exists(), "nothing is written"


def test_bad_options_are_named(cli: Callable[..., Run], project: Path) -> None:
    for args, words in [
        (["--window", "3600"], "the data spans 346 s of market time"),
        (["--window", "120"], "a baseline needs 3 whole windows"),
        (["--tolerance", "100000000000"], "beyond a manifest decimal's 10 integer digits"),
        (["--window", "2"], "must be 5..86400"),
        (["--tolerance", "-1"], "must be 0 or more"),
        (["--engine", "nope"], "no such engine"),
        (["--data", "nowhere.gz"], "no such file"),
    ]:
        run = cli("baseline", "deployment=paper_local", *args, root=project)
        assert run.exit_code == 2, (args, run.stdout + run.stderr)
        assert words in run.stdout + run.stderr, (args, run.stdout + run.stderr)
    assert not (project / "baselines").exists()


TWO = [
    "+exchange@exchanges.sim_usdm=sim_binance_usdm",
    "deployment.engines.paper_1.exchanges=[sim_binance,sim_usdm]",
    "++hosts.local.threads.feeds.sim_usdm=null",
]


def test_an_engine_of_two_exchanges_has_each_ones_message_rate(
    cli: Callable[..., Run], project: Path, tmp_path: Path
) -> None:
    """paper_local reading Binance USD-M beside spot: both captures backtested together on
    the clock of the one that starts last, each exchange's message rate counted here
    independently over the windows where both have data."""
    row = _derive(cli, project, tmp_path / "b.json", *TWO, "--window", "60")
    stamps = {}
    for name, capture in (("sim_binance", CAPTURE), ("sim_usdm", USDM)):
        with gzip.open(capture, "rt") as fh:
            stamps[name] = sorted(int(line.split(" ", 1)[0]) for line in fh)
    start = max(s[0] for s in stamps.values())
    # Rebased: each stream shifted so that it starts with the one that starts last.
    moved = {n: [t + start - s[0] for t in s] for n, s in stamps.items()}
    last = min(s[-1] for s in moved.values())
    span, a = 60 * 10**9, start
    counts: dict[str, list[int]] = {n: [] for n in moved}
    while a + span <= last:
        if any(a <= t < a + span for s in moved.values() for t in s):
            for n, s in moved.items():
                counts[n].append(sum(1 for t in s if a <= t < a + span))
        a += 10**9
    assert row["windows"] == len(counts["sim_binance"]) > 200
    for n, c in counts.items():
        md = row["figures"][f"md_messages_per_s.{n}"]
        assert float(md["low"]) == pytest.approx(min(c) / 60 / 1.5, abs=1e-8), n
        assert float(md["high"]) == pytest.approx(max(c) / 60 * 1.5, abs=1e-8), n
    assert "2 exchanges' data backtested together" in row["derivation"]
    # The compiler takes it for that engine.
    (m,) = compile_config(
        project,
        [
            "deployment=paper_local",
            *TWO,
            f"deployment.engines.paper_1.anomaly={{baseline:{tmp_path / 'b.json'}}}",
        ],
    ).manifests
    assert set(json.loads(m.text)["engine"]["anomaly"]["figures"]) >= {
        "md_messages_per_s.sim_binance",
        "md_messages_per_s.sim_usdm",
    }


def test_paper_multi_s_bundled_okx_capture_is_too_short_for_a_baseline(
    cli: Callable[..., Run], project: Path
) -> None:
    """paper_multi's OKX data is the bundled cryptofeed capture (10.8 s): its messages are
    read, and where both exchanges have data spans too little for three windows."""
    run = cli("baseline", "deployment=paper_multi", "--window", "5", root=project)
    assert run.exit_code == 2, run.stdout + run.stderr
    assert "the data spans 11 s of market time" in run.stdout + run.stderr
