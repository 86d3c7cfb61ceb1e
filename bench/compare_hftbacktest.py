"""Side-by-side: py_rt's backtest against hftbacktest 2.4.4 on the same USD-M BTCUSDT capture.

Our side, measured here:
  (a) end to end, cold process: `appliance backtest` on the raw capture (interpreter start,
      compile of the config, parse + book sync + market maker + risk + matching, summary);
  (b) warm replay of an already-converted native file, in process, with the market maker
      (the result's conversion to Python lists is included).
hftbacktest's side comes from bench/hftbacktest_side.py (run with the bench venv, see
`make bench-compare`), whose JSON this script reads.

Events are counted the same way on both sides: depth level changes + trades + snapshot levels
of the raw file (hftbacktest drops bookTicker lines; we process them too, at extra cost to us).
The market makers quote by the same rules: post-only, 0.005 lots, 2 ticks around the mid (ours
with reference=mid and no inventory skew), no quote on a side that could take |position|
beyond 0.05, 10 ms order latency each way. Ours decides on every book update and replaces a
quote as soon as its price differs (requote threshold 1 tick); hftbacktest's
`market_maker_feed` decides on every feed wake-up the same way (the rows "MM on every update"),
its `market_maker` every 100 ms (the rows "MM every 100 ms", fewer decisions). Their fill
models differ (hftbacktest: risk-averse queue, no partial fills; ours: the sim's matching), so
orders and fills are close, not equal.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from appliance import engine  # noqa: E402
from appliance.config.compiler import compile_config  # noqa: E402

OVERRIDES = [
    "exchanges.sim_binance.market=usdm",
    "exchanges.sim_binance.sim.latency_us=10000",
    "exchanges.sim_binance.instruments.BTCUSDT.tick_size='0.1'",
    "exchanges.sim_binance.instruments.BTCUSDT.lot_size='0.001'",
    "exchanges.sim_binance.instruments.BTCUSDT.min_notional='100'",
    "exchanges.sim_binance.instruments.BTCUSDT.maker_fee_bps='2'",
    "exchanges.sim_binance.instruments.BTCUSDT.taker_fee_bps='5'",
    "strategies.mm_btcusdt.params.half_spread_ticks=2",
    "strategies.mm_btcusdt.params.quote_qty='0.005'",
    "strategies.mm_btcusdt.params.max_inventory='0.05'",
    "strategies.mm_btcusdt.params.requote_threshold_ticks=1",
    "strategies.mm_btcusdt.params.reference=mid",
    "strategies.mm_btcusdt.params.inventory_skew_ticks=0",
    "risk.order_rate.per_second=100",
    "risk.order_rate.burst=200",
    "risk.max_open_orders=10",
    "risk.max_daily_loss='100000'",
    "risk.max_drawdown='100000'",
    "risk.max_gross_exposure='1000000'",
    "risk.instruments.BTCUSDT.max_position='0.05'",
    "risk.instruments.BTCUSDT.max_order_qty='0.005'",
    "risk.instruments.BTCUSDT.max_order_notional='1000'",
    "risk.instruments.BTCUSDT.max_position_notional='10000'",
]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--data", type=Path, default=ROOT.parent / "shared/data/binance/usdm_btcusdt_20240808.gz"
    )
    parser.add_argument("--hftbacktest-json", type=Path, default=None)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    data = args.data.resolve()
    overrides = [*OVERRIDES, f"exchanges.sim_binance.sim.capture={data}"]
    manifest = compile_config(ROOT, overrides).manifests[0].text

    with tempfile.TemporaryDirectory() as tmp:
        native = Path(tmp) / "usdm.native"
        # Timed as theirs is: the first call warms up, the headline is the median of warm runs.
        stats = engine.convert_capture(str(data), str(native))
        convert_warm = []
        for _ in range(args.runs):
            start = time.perf_counter()
            again = engine.convert_capture(str(data), str(native))
            convert_warm.append(time.perf_counter() - start)
            assert again == stats, "conversions are deterministic"
        convert_s = statistics.median(convert_warm)
        # Rows as hftbacktest counts them: every depth and snapshot level (measured from the
        # file, not assumed) and every trade.
        events = stats["depth_levels"] + stats["trades"] + stats["snapshot_levels"]
        engine.run_backtest(manifest, [str(native)])  # warm-up
        warm = []
        for _ in range(args.runs):
            start = time.perf_counter()
            result = engine.run_backtest(manifest, [str(native)])
            warm.append(time.perf_counter() - start)
        cold = []
        exe = Path(sys.executable).with_name("appliance")
        for _ in range(3):
            start = time.perf_counter()
            subprocess.run(
                [
                    str(exe),
                    "backtest",
                    *overrides,
                    "--data",
                    str(data),
                    "--no-report",
                    "--format",
                    "json",
                    "--root",
                    str(ROOT),
                ],
                check=True,
                capture_output=True,
            )
            cold.append(time.perf_counter() - start)
    ours = {
        "events": events,
        "convert_s": convert_s,
        "convert_samples": convert_warm,
        "replay_mm_s": statistics.median(warm),
        "replay_mm_samples": warm,
        "cold_e2e_s": statistics.median(cold),
        "cold_e2e_samples": cold,
        "fills": result["summary"]["fills"],
        "orders": result["summary"]["orders_sent"],
    }
    print(f"py_rt on {data.name}: {events:,} events (depth levels + trades + snapshot levels)")
    print(f"  convert raw -> native (warm){convert_s * 1000:8.1f} ms")
    print(
        f"  replay native + MM (warm)   {ours['replay_mm_s'] * 1000:8.1f} ms  "
        f"{events / ours['replay_mm_s'] / 1e6:6.2f}M events/s  "
        f"({ours['orders']} orders, {ours['fills']} fills)"
    )
    print(f"  raw capture -> result, cold {ours['cold_e2e_s']:8.2f} s (whole CLI process)")
    if args.hftbacktest_json and args.hftbacktest_json.is_file():
        theirs = json.loads(args.hftbacktest_json.read_text())
        _compare(ours, theirs)
    return 0


def _compare(ours: dict[str, Any], theirs: dict[str, object]) -> None:
    def find(obj: object, *keys: str) -> float | None:
        for key in keys:
            if not isinstance(obj, dict) or key not in obj:
                return None
            obj = obj[key]
        return float(obj) if isinstance(obj, int | float) else None

    print("hftbacktest (from its JSON), ratio = their time / our time:")
    rows: tuple[tuple[str, tuple[str, ...], float | None], ...] = (
        ("convert (warm)", ("convert", "warm_s", "median"), ours["convert_s"]),
        (
            "MM on every update, ROI",
            ("replay_warm", "roivec", "market_maker_feed", "replay_s", "median"),
            ours["replay_mm_s"],
        ),
        (
            "MM on every update, HashMap",
            ("replay_warm", "hashmap", "market_maker_feed", "replay_s", "median"),
            ours["replay_mm_s"],
        ),
        (
            "MM every 100 ms, ROI",
            ("replay_warm", "roivec", "market_maker", "replay_s", "median"),
            ours["replay_mm_s"],
        ),
        (
            "MM every 100 ms, HashMap",
            ("replay_warm", "hashmap", "market_maker", "replay_s", "median"),
            ours["replay_mm_s"],
        ),
        (
            "load + MM every update, ROI",
            ("replay_warm", "roivec", "market_maker_feed", "replay_s", "median"),
            None,
        ),
        (
            "cold end to end, HashMap",
            ("e2e_cold", "hashmap", "wall_s", "median"),
            ours["cold_e2e_s"],
        ),
        ("cold end to end, ROI", ("e2e_cold", "roivec", "wall_s", "median"), ours["cold_e2e_s"]),
    )
    for label, path, mine in rows:
        value = find(theirs, *path)
        if mine is None and value is not None:
            # Equal basis: hftbacktest's replay excludes loading its .npz; ours includes reading
            # the native file. Add their load time to compare like with like.
            load = find(theirs, "native_npz_load_s", "median") or 0.0
            value, mine = value + load, ours["replay_mm_s"]
        if value is None:
            print(f"  {label:<28} (not in the JSON: {'/'.join(path)})")
        else:
            assert mine is not None
            print(f"  {label:<28} {value:8.3f} s vs ours {mine:8.3f} s  ratio {value / mine:5.1f}x")


if __name__ == "__main__":
    sys.exit(main())
