"""`appliance baseline`: what an engine's behaviour should look like, from a backtest of the same
config on recent data; the live engine raises an anomaly when it leaves these ranges
(`engine.anomaly`, engine/runtime/src/anomaly.rs; docs/operations.md).

The engine's manifest (its anomaly section off) is backtested on the data on the engine's own
core. Windows of `window_s` wall seconds at the engine's market speed (`window_s * speed` of
market time: a sim replaying at speed 4 shows the engine 4 s of market in one second) slide
over the data one wall second at a time, as the engine measures at every heartbeat (at least
MIN_WINDOWS whole windows of data; a window with no message at all is a gap in the data and
is left out), and each figure is measured in each window as the engine measures it live:

- `fill_ratio`: fills per order sent, as the engine counts `orders_sent` (orders that passed
  risk, including those the venue rejected; windows with at least MIN_ORDERS orders);
- `orders_per_1k_messages`: orders sent per 1,000 market-data messages (at least
  MIN_MESSAGES messages);
- `pnl_per_hour`: the change of equity over the window, per hour of wall time;
- `markout_bps`: the mean 1 s markout in basis points of the fills marked out in the window
  (the research's `markout_1s_bps`; a fill counts when its horizon passes, as the engine takes
  it; windows with at least MIN_MARKOUTS);
- `md_messages_per_s.<exchange>`: that exchange's messages per wall second.

An engine of several exchanges is backtested on one stream per exchange (`--data
EXCHANGE=PATH`, else its sim's capture, else the venue's bundled one) rebased onto the clock of
the stream that starts last, as `appliance backtest` does; each exchange's messages are counted
on that clock, and windows cover only the time where every exchange has data (an exchange whose
data ended would look stalled).

`tick_to_order_p99_us` is not taken from the backtest: its latency is the model the config
declares, not a measurement of the live engine's code path. Its range is 0 up to the bound the
config declares for it, `engine.metrics.tick_to_order_p99_alert_us` (the threshold of the
PyRtTickToOrderSlow alert), and the derivation says so.

A figure's range is the windows' min..max, widened: a figure that cannot be negative by the
factor 1 + tolerance (min / (1 + t) .. max * (1 + t)), a signed one (P&L) by tolerance times
the larger of |min| and |max| on each side; a P&L that never moved (a backtest that did not
trade) is left out. The file records how it was derived and the hash of the trading config it
was derived from (a baseline of another config is refused at compile time); the compiler
inlines it into the manifest, so a new baseline is reviewed in a plan like any change.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from appliance.config.baselines import (
    BASELINE_VERSION,
    LATENCY_FIGURE,
    market_speed,
    trading_sha256,
)
from appliance.config.compiler import compile_config
from appliance.config.compose import compose
from appliance.config.diagnostics import ConfigError, Diagnostic
from appliance.config.schema import ANOMALY_MD_RATE, format_decimal
from appliance.files import write_atomic
from appliance.research.metrics import markout_columns

# The engine's own thresholds (engine/runtime/src/anomaly.rs MIN_ORDERS, MIN_MESSAGES): a
# window the engine would not measure does not shape the range either.
MIN_ORDERS = 10
MIN_MESSAGES = 1_000
MIN_MARKOUTS = 5
# The venue's reasons to reject an order (engine/core/src/risk.rs RejectReason): such an order
# passed risk and was sent, as the engine's `orders_sent` counts it.
VENUE_REASONS = ("post_only_would_cross", "no_liquidity", "book_unavailable", "venue_rejected")
# The data must hold this many whole windows: fewer say too little about the range.
MIN_WINDOWS = 3
# A manifest decimal has at most 10 integer digits.
MAX_BOUND = Decimal("9999999999.99999999")
# Figures that cannot be negative: their widened low stops at 0.
NON_NEGATIVE = ("fill_ratio", "orders_per_1k_messages", ANOMALY_MD_RATE)
# The markout the engine takes live (rt_core::markout::HORIZON_NS): the research's 1 s one.
MARKOUT_HORIZON_S = 1
LATENCY = LATENCY_FIGURE


@dataclass
class Derived:
    engine_id: str
    path: Path
    baseline: dict[str, Any]


def _fail(path: str, value: Any, message: str) -> ConfigError:
    return ConfigError([Diagnostic(path, value, "baseline.input", message)])


def message_times(files: Sequence[Path]) -> np.ndarray:
    """The local receive time (ns) of every message of these captures, in file order: the
    first field of each line; in a cryptofeed capture (a `<url> <-> <ts>` first line), the
    `<seconds>:` of each frame received, the frames the client sent left out (data/README.md)."""
    stamps: list[int] = []
    for f in files:
        opener = gzip.open if f.suffix == ".gz" else open
        try:
            with opener(f, "rt", encoding="utf-8") as fh:
                cryptofeed = False
                for n, line in enumerate(fh, 1):
                    if n == 1 and " <-> " in line:
                        cryptofeed = True
                        continue
                    if cryptofeed:
                        head = line.split(": ", 1)[0]
                        if " <- " not in head and line.strip():
                            stamps.append(int(Decimal(head) * 1_000_000_000))
                        continue
                    head = line.split(" ", 1)[0]
                    if not head.isdigit():
                        raise _fail(
                            "--data",
                            str(f),
                            f"line {n} does not start with a receive time in ns: baselines "
                            "count the messages of captures (data/README.md), not native files",
                        )
                    stamps.append(int(head))
        except (OSError, UnicodeDecodeError, EOFError, ArithmeticError) as exc:
            raise _fail("--data", str(f), f"cannot be read as a capture: {exc}") from None
    return np.asarray(stamps, dtype=np.int64)


def widen(values: Sequence[float], tolerance: float, non_negative: bool) -> tuple[float, float]:
    """The windows' min..max, widened: a figure that cannot be negative by the factor
    1 + tolerance (min / (1 + t) .. max * (1 + t)), a signed one by tolerance times the larger
    of |min| and |max| on each side."""
    lo, hi = min(values), max(values)
    if non_negative:
        return lo / (1 + tolerance), hi * (1 + tolerance)
    margin = tolerance * max(abs(lo), abs(hi))
    return lo - margin, hi + margin


def _text(value: float) -> str:
    """A bound as a manifest decimal: 8 decimals at most, no exponent."""
    return format_decimal(Decimal(repr(float(value))).quantize(Decimal("0.00000001")))


def figures_by_window(
    result: Any,
    streams: dict[str, np.ndarray],
    window_s: int,
    speed: Decimal,
    between_ns: tuple[int, int],
) -> tuple[int, dict[str, list[float]]]:
    """Each figure in each window the engine would measure: windows of `window_s` wall
    seconds sliding by one (the engine measures at every heartbeat), over the data's market
    time from `between_ns[0]` to `between_ns[1]`; the number of windows. `streams`: each
    exchange's message times on the backtest's clock. A window with no market-data message
    at all is a gap in the data (between files, a recorder's reconnect), not the market: it
    is left out."""
    span = int(window_s * speed * 1_000_000_000)
    step = int(speed * 1_000_000_000)
    start, last = between_ns
    stamps = np.concatenate(list(streams.values()))
    orders = result.orders
    # Sent as the engine counts them (`orders_sent`): every order that passed risk, including
    # those the venue then rejected.
    if len(orders):
        passed = orders["reject_reason"].isna() | orders["reject_reason"].isin(VENUE_REASONS)
        order_ts = np.sort(orders[passed]["ts_ns"].to_numpy(dtype=np.int64))
    else:
        order_ts = np.empty(0, dtype=np.int64)
    fills = result.fills
    fill_ts = np.sort(fills["ts_ns"].to_numpy(dtype=np.int64)) if len(fills) else np.empty(0)
    # Each fill's markout, at the time the engine takes it (its horizon past the fill); a fill
    # with no mark after its horizon has none, live as here.
    bps_col = markout_columns(MARKOUT_HORIZON_S)[2]
    marked = fills[fills[bps_col].notna()] if len(fills) else fills
    mk_ts = marked["ts_ns"].to_numpy(dtype=np.int64) + MARKOUT_HORIZON_S * 1_000_000_000
    by_time = np.argsort(mk_ts, kind="stable")
    mk_ts = mk_ts[by_time]
    mk_sum = np.concatenate([[0.0], np.cumsum(marked[bps_col].to_numpy(dtype=float)[by_time])])
    equity = result.equity
    eq_ts = equity["ts_ns"].to_numpy(dtype=np.int64)
    eq = equity["equity"].to_numpy(dtype=float)
    md_ts = np.sort(stamps)
    by_exchange = {f"{ANOMALY_MD_RATE}{x}": np.sort(ts) for x, ts in streams.items()}

    def between(ts: np.ndarray, a: int, b: int) -> int:
        return int(np.searchsorted(ts, b, side="left") - np.searchsorted(ts, a, side="left"))

    def equity_at(t: int) -> float:
        i = int(np.searchsorted(eq_ts, t, side="right")) - 1
        return float(eq[i]) if i >= 0 else 0.0

    out: dict[str, list[float]] = {"fill_ratio": [], "orders_per_1k_messages": []}
    out["pnl_per_hour"] = []
    out["markout_bps"] = []
    for md_name in by_exchange:
        out[md_name] = []
    windows = 0
    a = start
    while a + span <= last:
        b = a + span
        n_orders, n_fills, n_md = (
            between(order_ts, a, b),
            between(fill_ts, a, b),
            between(md_ts, a, b),
        )
        a += step
        if n_md == 0:
            continue
        windows += 1
        if n_orders >= MIN_ORDERS:
            out["fill_ratio"].append(n_fills / n_orders)
        if n_md >= MIN_MESSAGES:
            out["orders_per_1k_messages"].append(n_orders * 1000 / n_md)
        out["pnl_per_hour"].append((equity_at(b) - equity_at(b - span)) * 3600 / window_s)
        first, end = np.searchsorted(mk_ts, b - span), np.searchsorted(mk_ts, b)
        if end - first >= MIN_MARKOUTS:
            out["markout_bps"].append(float(mk_sum[end] - mk_sum[first]) / int(end - first))
        for md_name, ts in by_exchange.items():
            out[md_name].append(between(ts, b - span, b) / window_s)
    return windows, {k: v for k, v in out.items() if v}


def derive(
    project: Path,
    overrides: Sequence[str],
    engine_ids: Sequence[str] | None,
    data: Sequence[Path] | None,
    window_s: int,
    tolerance: Decimal,
    out: Path | None,
) -> list[Derived]:
    """Derive (and write) the baseline of each engine asked for (default: every engine)."""
    from appliance.research import backtest
    from appliance.research import data as data_mod
    from appliance.research.cli_backtest import _default_data, _exchange_data

    if not 5 <= window_s <= 86_400:
        raise _fail("--window", window_s, "must be 5..86400 seconds (engine.anomaly.window_s)")
    if tolerance < 0:
        raise _fail("--tolerance", str(tolerance), "must be 0 or more")
    # The engines' anomaly sections are off for the backtest: a baseline not derived yet (or
    # an old one) must not stop the compile, and detection does not change what is traded.
    engines = (compose(project, overrides).data.get("deployment") or {}).get("engines") or {}
    off = [f"++deployment.engines.{e}.anomaly=null" for e in engines]
    compiled = compile_config(project, [*overrides, *off])
    manifests = {m.engine_id: m for m in compiled.manifests}
    wanted = list(engine_ids) if engine_ids else sorted(manifests)
    unknown = [e for e in wanted if e not in manifests]
    if unknown:
        raise _fail("--engine", unknown[0], f"no such engine (engines: {sorted(manifests)})")
    if out is not None and len(wanted) > 1:
        raise _fail("--out", str(out), "one file per engine: choose an engine with --engine")
    derived = []
    for engine_id in wanted:
        built = manifests[engine_id]
        manifest = json.loads(built.text)
        exchanges = manifest["exchanges"]
        speed = market_speed(
            Decimal(ex["sim"]["speed"]) if ex.get("sim") else None for ex in exchanges.values()
        )
        if speed is None:
            raise _fail(
                "--engine",
                engine_id,
                "its exchanges replay at different speeds: no one window fits all figures",
            )
        # An engine of several exchanges: one stream per exchange (`--data EXCHANGE=PATH`,
        # else its sim's capture, else the venue's bundled one), backtested together on one
        # clock (docs/research.md, "Several exchanges"), each exchange's messages counted.
        several = len(exchanges) > 1
        if several:
            groups = _exchange_data(project, manifest, data)
            for name, group in zip(exchanges, groups, strict=True):
                if not group:
                    raise _fail(
                        "--data", name, "no data for this exchange: give --data EXCHANGE=PATH"
                    )
        else:
            groups = [[Path(f) for f in data] if data else _default_data(project, manifest)]
        files = [f for g in groups for f in g]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise _fail("--data", missing[0], "no such file")
        streams = {x: message_times(g) for x, g in zip(exchanges, groups, strict=True)}
        for x, ts in streams.items():
            if ts.size == 0:
                raise _fail("--data", x, "holds no messages")
        if several:
            per_exchange = [data_mod.prepare(project, g, data_mod.Window()) for g in groups]
            result = backtest.run(built.text, [], exchange_data=per_exchange)
            # Each stream on the clock the backtest rebased them onto.
            streams = {
                x: ts + int(result.counters.get(f"offset_ns.{x}", 0)) for x, ts in streams.items()
            }
        else:
            natives = data_mod.prepare(project, files, data_mod.parse_window(None, None))
            result = backtest.run(built.text, natives)
        # Where every exchange has data: an exchange whose data ended would look stalled.
        between_ns = (
            max(int(ts.min()) for ts in streams.values()),
            min(int(ts.max()) for ts in streams.values()),
        )
        market_s = (between_ns[1] - between_ns[0]) / 1e9
        if market_s < MIN_WINDOWS * float(window_s * speed):
            raise _fail(
                "--window",
                window_s,
                f"the data spans {market_s:.0f} s of market time and a window is "
                f"{float(window_s * speed):.0f} s of it (window x speed "
                f"{format_decimal(speed)}): a baseline needs {MIN_WINDOWS} whole windows; "
                "shorten the window or give more data",
            )
        windows, values = figures_by_window(result, streams, window_s, speed, between_ns)
        notes = []
        if several:
            notes.append(
                f"{len(exchanges)} exchanges' data backtested together, on the clock of the one "
                "that starts last, over the time all have data"
            )
        if set(values.get("pnl_per_hour", [])) == {0.0}:
            # The backtest never traded: a range of 0..0 would flag any live P&L.
            del values["pnl_per_hour"]
            notes.append("pnl_per_hour left out: the backtest's equity never moved")
        tol = float(tolerance)
        figures = {}
        for name, vals in sorted(values.items()):
            low, high = widen(vals, tol, name.startswith(NON_NEGATIVE))
            for end, bound in (("low", low), ("high", high)):
                if not abs(bound) <= MAX_BOUND:
                    raise _fail(
                        "--tolerance",
                        str(tolerance),
                        f"{name}'s {end} would be {bound:.6g}, beyond a manifest decimal's 10 "
                        "integer digits",
                    )
            figures[name] = {"low": _text(low), "high": _text(high)}
        if figures:
            # Declared, not backtested: the backtest's latency is the model it was given.
            bound = int(manifest["engine"]["metrics"]["tick_to_order_p99_alert_us"])
            figures[LATENCY] = {"low": "0", "high": _text(bound)}
            notes.append(
                f"{LATENCY}: 0..{bound}, the bound the config declares "
                "(engine.metrics.tick_to_order_p99_alert_us), not the backtest, whose latency "
                "is a model input rather than a measurement"
            )
            figures = dict(sorted(figures.items()))
        if not figures:
            raise _fail(
                "--data",
                ", ".join(str(f) for f in files),
                "no figure could be measured on this data (too few orders or messages per "
                "window): give more data or a longer window",
            )
        names = ", ".join(f.name for f in files)
        derivation = (
            f"backtest of {compiled.deployment}/{engine_id} (manifest "
            f"{manifest['content_sha256'][:12]}, anomaly off) on {names}: {windows} windows of "
            f"{window_s} s at market speed {format_decimal(speed)}; each range is the windows' "
            f"min..max widened by tolerance {format_decimal(tolerance)} (rates and ratios: "
            f"min/(1+t)..max*(1+t); P&L: t x max(|min|, |max|) each side)"
            + "".join(f"; {n}" for n in notes)
        )
        baseline = {
            "version": BASELINE_VERSION,
            "deployment": compiled.deployment,
            "engine": engine_id,
            "speed": format_decimal(speed),
            "window_s": window_s,
            "data": [str(_relative(f, project)) for f in files],
            "backtest_manifest_sha256": manifest["content_sha256"],
            "trading_sha256": trading_sha256(manifest),
            "windows": windows,
            "tolerance": format_decimal(tolerance),
            "derivation": derivation,
            "figures": figures,
        }
        target = out or project / "baselines" / compiled.deployment / f"{engine_id}.json"
        # Written beside and renamed over: a reader never sees half a baseline.
        write_atomic(target, (json.dumps(baseline, indent=2) + "\n").encode())
        derived.append(Derived(engine_id, target, baseline))
    return derived


def _relative(path: Path, project: Path) -> Path:
    try:
        # Not resolved: data/ may be a link, and the path is the project's name for it.
        return path.absolute().relative_to(project.absolute())
    except ValueError:
        return path


def run(
    project: Path,
    overrides: Sequence[str],
    engine_ids: Sequence[str] | None,
    data: Sequence[Path] | None,
    window_s: int,
    tolerance: Decimal,
    out: Path | None,
    as_json: bool,
) -> None:
    """The CLI: derive, write, and show each baseline with the line that turns it on."""
    from rich.console import Console
    from rich.table import Table

    from appliance import jsonout

    derived = derive(project, overrides, engine_ids, data, window_s, tolerance, out)
    if as_json:
        rows = [{"engine": d.engine_id, "path": str(d.path), **d.baseline} for d in derived]
        print(jsonout.dumps({"baselines": rows}, indent=2, sort_keys=True))
        return
    console = Console()
    for d in derived:
        shown = _relative(d.path, project)
        table = Table(title=f"{d.baseline['deployment']} / {d.engine_id}: {shown}")
        for column in ("figure", "low", "high"):
            table.add_column(column, justify="left" if column == "figure" else "right")
        for name, r in d.baseline["figures"].items():
            table.add_row(name, r["low"], r["high"])
        console.print(table)
        console.print(d.baseline["derivation"], soft_wrap=True, highlight=False)
        console.print(
            f"to watch it, set deployment.engines.{d.engine_id}.anomaly: {{baseline: {shown}}}",
            soft_wrap=True,
            highlight=False,
        )
