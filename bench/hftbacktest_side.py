"""Bench: the hftbacktest half of the side-by-side backtest comparison (DESIGN.md section 5).

Runs with the bench-only interpreter, never the project venv:

    .venv-bench/bin/python bench/hftbacktest_side.py --data PATH --out JSON

hftbacktest 2.4.4 (PyPI) is used through its public API only: the Binance USD-M converter
`hftbacktest.data.utils.binancefutures.convert` turns the raw capture (`<local_ts_ns> <frame>`
lines, combined-stream envelope) into its native event rows, and numba-jitted strategy loops run
on `HashMapMarketDepthBacktest` and `ROIVectorMarketDepthBacktest`.

What is measured (each timing repeated; the median is the headline, every sample is kept):

(a) convert: raw capture -> event rows. The first call in this process is "cold" (it includes
    numba compiling the converter's jitted helpers); later calls are "warm". Each cold end-to-end
    child process (c) also reports its own first-call convert time.
(b) replay, warm: every strategy function is jit-compiled first on a short prefix of the rows, so
    the timed call measures replay only. A fresh backtest is built for every sample (build time is
    reported separately; it is not part of the replay figure). Strategies:
    - noop_feed: a do-nothing loop on `wait_next_feed(include_order_resp=False, timeout)`. This
      is the finest stepping the API offers: the engine processes every row (exchange side and
      local side), and the loop wakes once per distinct local timestamp, i.e. once per captured
      frame that produced rows (all rows of one depth diff share a timestamp; on the 2024-08-08
      USD-M file that is 27,864 wake-ups for 27,865 frames, the first being consumed when the
      backtest starts). There is no call that returns after each single row.
    - noop_elapse_100ms: a do-nothing loop on `elapse(100 ms)`; the same rows are processed, with
      far fewer wake-ups. It shows what the wake-ups themselves cost.
    - market_maker: post-only (GTX) quotes every 100 ms (`elapse(100 ms)`), bid at mid - 2 ticks
      and ask at mid + 2 ticks (bid_tick = (bb + ba) // 2 - 2, ask_tick = (bb + ba + 1) // 2 + 2 in
      ticks), qty 0.005, cancel-replace when the wanted price differs from the resting order, and
      no quote on a side that could take |position| beyond 0.05.
    - market_maker_feed: the same rules decided on every feed wake-up (`wait_next_feed`), so a
      quote is replaced as soon as the wanted price differs: py_rt's market maker with
      reference=mid, inventory_skew_ticks=0, requote_threshold_ticks=1 (what
      bench/compare_hftbacktest.py runs) decides on every book update the same way.
(c) end to end, cold: a fresh interpreter (subprocess of this script) imports hftbacktest,
    converts the raw capture and runs the market maker, numba compilation included; the wall time
    is taken from outside, from spawn to exit.

Event counting (the same definition our side uses, DESIGN.md section 5): events = depth level
changes (one per [price, qty] entry of every depthUpdate) + trades + REST snapshot levels. The
converter keeps all of those, drops every bookTicker line (opt='' default), adds one "clear" row
per snapshot side, and then its event-order correction duplicates every row whose exchange-time
order and local-time order disagree into an exchange-only and a local-only copy. So the native
row count is larger than the event count; both are reported, and rates are given per event and
per native row. Raw line counts by kind are also reported so the other side can count identically.

Fairness notes: the same capture, the same market maker rules, single thread, both hftbacktest
depth backends; hftbacktest keeps two books (its exchange model and the local view) and applies
every row to each side it is flagged for, which is part of what it costs to replay with it.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from hftbacktest import (
    BUY,
    GTX,
    LIMIT,
    NEW,
    BacktestAsset,
    HashMapMarketDepthBacktest,
    ROIVectorMarketDepthBacktest,
)
from hftbacktest.data.utils import binancefutures
from hftbacktest.types import (
    DEPTH_CLEAR_EVENT,
    DEPTH_EVENT,
    DEPTH_SNAPSHOT_EVENT,
    EXCH_EVENT,
    LOCAL_EVENT,
    TRADE_EVENT,
)
from numba import njit

# ---- instrument and model configuration (USD-M BTCUSDT perpetual) --------------------------
TICK_SIZE = 0.1
LOT_SIZE = 0.001
MAKER_FEE = 0.0002
TAKER_FEE = 0.0005
ORDER_LATENCY_NS = 10_000_000  # constant entry and response latency, 10 ms each way
# ROI vector depth: the range of prices it stores. Levels outside it are still read and stepped
# through but not stored (the capture has junk levels far from the market, e.g. bids at 560).
ROI_LB = 40_000.0
ROI_UB = 80_000.0

# ---- market maker rules ---------------------------------------------------------------------
QUOTE_INTERVAL_NS = 100_000_000  # 100 ms
HALF_SPREAD_TICKS = 2
ORDER_QTY = 0.005
MAX_POSITION = 0.05
ORDER_QTY_LOTS = round(ORDER_QTY / LOT_SIZE)
MAX_POSITION_LOTS = round(MAX_POSITION / LOT_SIZE)

FEED_TIMEOUT_NS = 60_000_000_000  # wait_next_feed timeout; the capture has no 60 s gap
WARMUP_ROWS = 20_000  # prefix of the converted rows used to jit-compile the strategies
INVALID_MIN = -(2**63)  # hftbacktest's "no best bid" tick
INVALID_MAX = 2**63 - 1  # hftbacktest's "no best ask" tick
BACKENDS = ("hashmap", "roivec")


# ---- strategies (numba, in the style hftbacktest documents) ---------------------------------
@njit
def noop_feed(hbt):
    """Do nothing, but wake on every feed batch. Returns (wake-ups, timeouts, error code)."""
    wakeups = 0
    timeouts = 0
    while True:
        rc = hbt.wait_next_feed(False, FEED_TIMEOUT_NS)
        if rc == 2:
            wakeups += 1
        elif rc == 0:
            timeouts += 1
        elif rc == 1:
            return wakeups, timeouts, 0
        else:
            return wakeups, timeouts, rc


@njit
def noop_elapse(hbt, step_ns):
    """Do nothing, waking every step_ns of simulated time. Returns the number of steps."""
    steps = 0
    while hbt.elapse(step_ns) == 0:
        steps += 1
    return steps


@njit
def quote(hbt, tick, lot, half_spread_ticks, qty, qty_lots, max_pos_lots, next_order_id):
    """One quoting decision (the rules of the module docstring) on the current book. Returns
    (next order id, submits, cancels)."""
    asset = 0
    submits = 0
    cancels = 0
    hbt.clear_inactive_orders(asset)
    depth = hbt.depth(asset)
    bb = depth.best_bid_tick
    ba = depth.best_ask_tick
    if bb <= INVALID_MIN or ba >= INVALID_MAX or ba <= bb:
        return next_order_id, 0, 0  # book not built yet (or crossed): no quote
    mid2 = bb + ba
    bid_tick = mid2 // 2 - half_spread_ticks
    ask_tick = (mid2 + 1) // 2 + half_spread_ticks
    pos_lots = round(hbt.position(asset) / lot)
    want_bid = pos_lots + qty_lots <= max_pos_lots
    want_ask = pos_lots - qty_lots >= -max_pos_lots

    have_bid = False
    have_ask = False
    values = hbt.orders(asset).values()
    while values.has_next():
        order = values.get()
        if order.side == BUY:
            if order.cancellable:
                if want_bid and not have_bid and order.price_tick == bid_tick:
                    have_bid = True
                else:
                    hbt.cancel(asset, order.order_id, False)
                    cancels += 1
            elif order.req == NEW:
                have_bid = True  # in flight; re-checked next time
        else:
            if order.cancellable:
                if want_ask and not have_ask and order.price_tick == ask_tick:
                    have_ask = True
                else:
                    hbt.cancel(asset, order.order_id, False)
                    cancels += 1
            elif order.req == NEW:
                have_ask = True

    if want_bid and not have_bid:
        hbt.submit_buy_order(asset, next_order_id, bid_tick * tick, qty, GTX, LIMIT, False)
        next_order_id += 1
        submits += 1
    if want_ask and not have_ask:
        hbt.submit_sell_order(asset, next_order_id, ask_tick * tick, qty, GTX, LIMIT, False)
        next_order_id += 1
        submits += 1
    return next_order_id, submits, cancels


@njit
def market_maker(hbt, step_ns, half_spread_ticks, qty, qty_lots, max_pos_lots):
    """Post-only two-sided quoting every step_ns; see the module docstring for the rules."""
    tick = hbt.depth(0).tick_size
    lot = hbt.depth(0).lot_size
    next_order_id = 1
    steps = 0
    submits = 0
    cancels = 0
    while hbt.elapse(step_ns) == 0:
        steps += 1
        next_order_id, s, c = quote(
            hbt, tick, lot, half_spread_ticks, qty, qty_lots, max_pos_lots, next_order_id
        )
        submits += s
        cancels += c
    sv = hbt.state_values(0)
    return (
        steps,
        submits,
        cancels,
        sv.position,
        sv.balance,
        sv.fee,
        sv.num_trades,
        sv.trading_volume,
    )


@njit
def market_maker_feed(hbt, half_spread_ticks, qty, qty_lots, max_pos_lots):
    """The same rules, decided on every feed wake-up (every captured frame that produced rows)
    instead of every 100 ms: requoting whenever the wanted price differs, as py_rt's market
    maker does with requote_threshold_ticks=1."""
    tick = hbt.depth(0).tick_size
    lot = hbt.depth(0).lot_size
    next_order_id = 1
    steps = 0
    submits = 0
    cancels = 0
    while True:
        rc = hbt.wait_next_feed(False, FEED_TIMEOUT_NS)
        if rc == 1:
            break
        if rc != 2:
            continue  # a timeout: nothing arrived
        steps += 1
        next_order_id, s, c = quote(
            hbt, tick, lot, half_spread_ticks, qty, qty_lots, max_pos_lots, next_order_id
        )
        submits += s
        cancels += c
    sv = hbt.state_values(0)
    return (
        steps,
        submits,
        cancels,
        sv.position,
        sv.balance,
        sv.fee,
        sv.num_trades,
        sv.trading_volume,
    )


# ---- helpers --------------------------------------------------------------------------------
@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Silence fd 1 (the converter prints progress, partly from jitted code)."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def convert(path: str) -> np.ndarray:
    # combined_stream=True (the default) matches the capture's {"stream":..,"data":..} frames.
    with quiet_stdout():
        return binancefutures.convert(path, combined_stream=True)


def build(data: np.ndarray, backend: str) -> Any:
    asset = (
        BacktestAsset()
        .data(data)
        .linear_asset(1.0)
        .constant_order_latency(ORDER_LATENCY_NS, ORDER_LATENCY_NS)
        .risk_adverse_queue_model()
        .no_partial_fill_exchange()
        .trading_value_fee_model(MAKER_FEE, TAKER_FEE)
        .tick_size(TICK_SIZE)
        .lot_size(LOT_SIZE)
        .last_trades_capacity(0)
    )
    if backend == "roivec":
        asset.roi_lb(ROI_LB).roi_ub(ROI_UB)
        return ROIVectorMarketDepthBacktest([asset])
    return HashMapMarketDepthBacktest([asset])


def run_strategy(name: str, hbt: Any) -> dict[str, Any]:
    if name == "noop_feed":
        wakeups, timeouts, err = noop_feed(hbt)
        return {"wakeups": int(wakeups), "timeouts": int(timeouts), "error": int(err)}
    if name == "noop_elapse_100ms":
        return {"steps": int(noop_elapse(hbt, QUOTE_INTERVAL_NS))}
    if name in ("market_maker", "market_maker_feed"):
        rules = (HALF_SPREAD_TICKS, ORDER_QTY, ORDER_QTY_LOTS, MAX_POSITION_LOTS)
        if name == "market_maker":
            r = market_maker(hbt, QUOTE_INTERVAL_NS, *rules)
        else:
            r = market_maker_feed(hbt, *rules)
        steps, submits, cancels, position, balance, fee, num_trades, volume = r
        return {
            "steps": int(steps),
            "submits": int(submits),
            "cancels": int(cancels),
            "position": float(position),
            "balance": float(balance),
            "fee": float(fee),
            "num_trades": int(num_trades),
            "trading_volume": float(volume),
        }
    raise ValueError(name)


def stats(samples: list[float]) -> dict[str, Any]:
    return {
        "median": statistics.median(samples),
        "min": min(samples),
        "max": max(samples),
        "n": len(samples),
        "samples": samples,
    }


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    return {
        "cpu_model": cpu,
        "nproc": int(nproc) if nproc.isdigit() else None,
        "os_cpu_count": os.cpu_count(),
        "kernel": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def versions() -> dict[str, str]:
    out = {}
    for dist in ("hftbacktest", "numba", "llvmlite", "numpy", "polars"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def raw_line_counts(path: str) -> dict[str, Any]:
    """Count the capture's lines by kind, independently of the converter (not timed)."""
    kinds: Counter[str] = Counter()
    trade_x: Counter[str] = Counter()
    bid_levels = ask_levels = snap_levels = 0
    snapshot_id = None
    diffs: list[tuple[int, int]] = []  # (final update id u, number of level entries)
    with gzip.open(path, "rt") as f:
        for line in f:
            msg = json.loads(line.split(" ", 1)[1])
            data = msg.get("data")
            if data is None:
                if "lastUpdateId" in msg:
                    kinds["snapshot"] += 1
                    snapshot_id = msg["lastUpdateId"]
                    snap_levels += len(msg["bids"]) + len(msg["asks"])
                else:
                    kinds["other"] += 1
                continue
            kind = data.get("e", "unknown")
            kinds[kind] += 1
            if kind == "depthUpdate":
                bid_levels += len(data["b"])
                ask_levels += len(data["a"])
                diffs.append((data["u"], len(data["b"]) + len(data["a"])))
            elif kind == "trade":
                trade_x[data["X"]] += 1
    # A consumer that syncs the book the Binance way (USD-M: drop diffs with u < lastUpdateId)
    # applies fewer level changes than the converter keeps; the converter does not sync by id.
    stale = [n for u, n in diffs if snapshot_id is not None and u < snapshot_id]
    return {
        "lines_total": sum(kinds.values()),
        "lines_by_kind": dict(kinds),
        "trade_lines_by_X": dict(trade_x),
        "depth_level_changes": bid_levels + ask_levels,
        "depth_level_changes_bid": bid_levels,
        "depth_level_changes_ask": ask_levels,
        "snapshot_levels": snap_levels,
        "snapshot_last_update_id": snapshot_id,
        "diffs_with_u_below_snapshot_id": len(stale),
        "level_changes_in_those_diffs": sum(stale),
    }


def converted_counts(data: np.ndarray) -> dict[str, Any]:
    ev = data["ev"]
    kind = ev & 0xFF
    is_exch = (ev & EXCH_EVENT) != 0
    is_local = (ev & LOCAL_EVENT) != 0
    both = is_exch & is_local
    # Unique events = rows as first produced by the parser, before the order correction
    # duplicated some of them: rows flagged for both sides + the exchange-only copies.
    unique = is_exch
    depth_px = data["px"][unique & ((kind == DEPTH_EVENT) | (kind == DEPTH_SNAPSHOT_EVENT))]
    outside_roi = (depth_px < ROI_LB) | (depth_px > ROI_UB)
    return {
        "native_rows": len(data),
        "native_rows_exch_and_local": int(both.sum()),
        "native_rows_exch_only": int((is_exch & ~is_local).sum()),
        "native_rows_local_only": int((is_local & ~is_exch).sum()),
        "unique_rows": int(unique.sum()),
        "unique_depth_rows": int((unique & (kind == DEPTH_EVENT)).sum()),
        "unique_trade_rows": int((unique & (kind == TRADE_EVENT)).sum()),
        "unique_snapshot_rows": int((unique & (kind == DEPTH_SNAPSHOT_EVENT)).sum()),
        "unique_clear_rows": int((unique & (kind == DEPTH_CLEAR_EVENT)).sum()),
        "distinct_local_timestamps": len(np.unique(data["local_ts"][is_local])),
        "depth_and_snapshot_rows_outside_roi": int(outside_roi.sum()),
    }


# ---- the cold end-to-end child --------------------------------------------------------------
def child_e2e(args: argparse.Namespace) -> int:
    """Fresh process: convert the raw capture, build, run the market maker (compile included)."""
    convert_s, data = timed(lambda: convert(args.data))
    build_s, hbt = timed(lambda: build(data, args.backend))
    run_s, result = timed(lambda: run_strategy("market_maker", hbt))
    hbt.close()
    phases = {"convert_s": convert_s, "build_s": build_s, "run_incl_compile_s": run_s}
    Path(args.child_out).write_text(json.dumps({"phases": phases, "result": result}))
    return 0


def e2e_cold(args: argparse.Namespace, backend: str) -> dict[str, Any]:
    walls: list[float] = []
    phases: list[dict[str, float]] = []
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "child.json"
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--data",
            args.data,
            "--child",
            "e2e",
            "--backend",
            backend,
            "--child-out",
            str(out),
        ]
        for _ in range(args.e2e_runs):
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            walls.append(time.perf_counter() - t0)
            child = json.loads(out.read_text())
            phases.append(child["phases"])
            result = child["result"]
    return {"wall_s": stats(walls), "phases": phases, "result": result}


# ---- main -----------------------------------------------------------------------------------
def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("nan")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--data", required=True, help="raw USD-M capture (.gz)")
    p.add_argument("--out", help="write all figures to this JSON file")
    p.add_argument("--runs", type=int, default=7, help="samples per replay figure (>= 3)")
    p.add_argument("--convert-runs", type=int, default=3, help="warm convert samples")
    p.add_argument("--e2e-runs", type=int, default=3, help="cold end-to-end processes per backend")
    p.add_argument("--child", choices=["e2e"], help=argparse.SUPPRESS)
    p.add_argument("--backend", choices=BACKENDS, default="hashmap", help=argparse.SUPPRESS)
    p.add_argument("--child-out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child == "e2e":
        return child_e2e(args)

    report: dict[str, Any] = {
        "tool": "hftbacktest",
        "versions": versions(),
        "machine": machine(),
        "data": {"path": str(Path(args.data).resolve()), "sha256": sha256(args.data)},
        "config": {
            "instrument": "Binance USD-M BTCUSDT perpetual, linear asset, contract size 1",
            "tick_size": TICK_SIZE,
            "lot_size": LOT_SIZE,
            "maker_fee": MAKER_FEE,
            "taker_fee": TAKER_FEE,
            "order_latency_ns": {"entry": ORDER_LATENCY_NS, "response": ORDER_LATENCY_NS},
            "queue_model": "RiskAdverseQueueModel",
            "exchange_model": "NoPartialFillExchange",
            "roi_vector_range": [ROI_LB, ROI_UB],
            "converter": "hftbacktest.data.utils.binancefutures.convert(combined_stream=True)",
            "market_maker": {
                "interval_ns": QUOTE_INTERVAL_NS,
                "half_spread_ticks": HALF_SPREAD_TICKS,
                "qty": ORDER_QTY,
                "max_position": MAX_POSITION,
                "time_in_force": "GTX (post only)",
            },
            "wait_next_feed_timeout_ns": FEED_TIMEOUT_NS,
        },
    }

    # Counts first (not timed).
    raw = raw_line_counts(args.data)

    # (a) convert: the first call here is cold (numba compiles the converter's helpers).
    cold_s, data = timed(lambda: convert(args.data))
    warm = []
    for _ in range(args.convert_runs):
        s, data = timed(lambda: convert(args.data))
        warm.append(s)
    conv = converted_counts(data)
    events = raw["depth_level_changes"] + raw["lines_by_kind"].get("trade", 0)
    events += raw["snapshot_levels"]
    counts = {
        "raw": raw,
        "converted": conv,
        "events": events,
        "events_definition": (
            "depth level changes (every [price, qty] entry of every depthUpdate, before any "
            "update-id sync) + trades + REST snapshot levels; bookTicker lines are not events "
            "(the converter drops them with its default opt='')"
        ),
        "bookticker_lines_dropped_by_converter": raw["lines_by_kind"].get("bookTicker", 0),
    }
    # Cross-check: the converter's unique rows = events + one clear row per snapshot side.
    counts["converter_matches_raw_count"] = (
        conv["unique_rows"] - conv["unique_clear_rows"] == events
    )
    report["counts"] = counts

    # Native file load, for reference: the converter's own npz output read back with numpy.
    with tempfile.TemporaryDirectory() as tmp:
        npz = str(Path(tmp) / "usdm.npz")
        np.savez_compressed(npz, data=data)
        loads = []
        for _ in range(args.runs):
            s, _ = timed(lambda: np.load(npz)["data"])
            loads.append(s)
        report["native_npz_load_s"] = stats(loads)
        report["native_npz_bytes"] = os.path.getsize(npz)

    report["convert"] = {
        "rows": conv["native_rows"],
        "events": events,
        "cold_first_call_in_process_s": cold_s,
        "warm_s": stats(warm),
        "warm_events_per_s": rate(events, statistics.median(warm)),
        "raw_lines_per_s_warm": rate(raw["lines_total"], statistics.median(warm)),
    }

    # (b) replay, warm. Compile every strategy for both backends on a prefix first.
    warmup = np.ascontiguousarray(data[:WARMUP_ROWS])
    strategies = ("noop_feed", "noop_elapse_100ms", "market_maker", "market_maker_feed")
    for backend in BACKENDS:
        for name in strategies:
            hbt = build(warmup, backend)
            run_strategy(name, hbt)
            hbt.close()
    replay: dict[str, Any] = {}
    for backend in BACKENDS:
        replay[backend] = {}
        for name in strategies:
            builds, runs = [], []
            result: dict[str, Any] = {}
            for _ in range(args.runs):
                b, hbt = timed(lambda backend=backend: build(data, backend))
                r, result = timed(lambda name=name, hbt=hbt: run_strategy(name, hbt))
                hbt.close()
                builds.append(b)
                runs.append(r)
            med = statistics.median(runs)
            replay[backend][name] = {
                "replay_s": stats(runs),
                "build_s": stats(builds),
                "events_per_s": rate(events, med),
                "native_rows_per_s": rate(conv["native_rows"], med),
                "result": result,
            }
    report["replay_warm"] = replay

    # (c) end to end, cold processes.
    report["e2e_cold"] = {backend: e2e_cold(args, backend) for backend in BACKENDS}
    report["convert"]["cold_first_call_in_fresh_process_s"] = stats(
        [ph["convert_s"] for b in BACKENDS for ph in report["e2e_cold"][b]["phases"]]
    )

    print_summary(report)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nwrote {args.out}")
    return 0


def print_summary(rep: dict[str, Any]) -> None:
    m, v, c = rep["machine"], rep["versions"], rep["counts"]
    raw, conv = c["raw"], c["converted"]
    print(f"hftbacktest {v['hftbacktest']} (numba {v['numba']}, numpy {v['numpy']})")
    print(f"machine: {m['cpu_model']}, nproc {m['nproc']}, {m['kernel']}, Python {m['python']}")
    print(f"capture: {raw['lines_total']:,} lines {raw['lines_by_kind']}")
    print(
        f"events: {c['events']:,} = {raw['depth_level_changes']:,} depth level changes + "
        f"{raw['lines_by_kind'].get('trade', 0):,} trades + {raw['snapshot_levels']:,} snapshot "
        f"levels (bookTicker dropped: {c['bookticker_lines_dropped_by_converter']:,})"
    )
    print(
        f"converter rows: {conv['native_rows']:,} native = {conv['unique_rows']:,} unique "
        f"(incl. {conv['unique_clear_rows']} clear rows) + {conv['native_rows_local_only']:,} "
        f"duplicated by event-order correction; frames woken on: "
        f"{conv['distinct_local_timestamps']:,}"
    )
    cv = rep["convert"]
    print(
        f"\n(a) convert: warm median {cv['warm_s']['median']:.3f} s "
        f"({cv['warm_events_per_s'] / 1e3:.0f}k events/s); cold first call "
        f"{cv['cold_first_call_in_process_s']:.3f} s here, median "
        f"{cv['cold_first_call_in_fresh_process_s']['median']:.3f} s in fresh processes"
    )
    print("(b) replay, warm (median of samples; build not included):")
    for backend, by_name in rep["replay_warm"].items():
        for name, r in by_name.items():
            print(
                f"    {backend:8} {name:18} {r['replay_s']['median'] * 1e3:8.1f} ms  "
                f"{r['events_per_s'] / 1e6:6.2f} M events/s  "
                f"{r['native_rows_per_s'] / 1e6:6.2f} M native rows/s  "
                f"(build {r['build_s']['median'] * 1e3:.1f} ms)"
            )
    print("(c) end to end, cold process (convert + market maker, numba compile included):")
    for backend, r in rep["e2e_cold"].items():
        w = r["wall_s"]
        print(
            f"    {backend:8} median {w['median']:.2f} s (min {w['min']:.2f}, max {w['max']:.2f},"
            f" n={w['n']})"
        )
    mm = rep["replay_warm"]["hashmap"]["market_maker"]["result"]
    print(f"market maker (hashmap): {mm}")
    mm = rep["replay_warm"]["hashmap"]["market_maker_feed"]["result"]
    print(f"market maker on every feed wake-up (hashmap): {mm}")


if __name__ == "__main__":
    sys.exit(main())
