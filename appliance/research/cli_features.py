"""`appliance features`: a feature set over recorded data to Parquet, with a one-screen summary."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from appliance.research import data as data_mod
from appliance.research import features


def run(
    project: Path,
    overrides: Sequence[str],
    set_name: str,
    data: Sequence[Path] | None,
    start: str | None,
    end: str | None,
    every: str | None,
    horizons: Sequence[str],
    out: Path | None,
    symbol: str | None,
    engine_id: str | None,
) -> None:
    frame = features.compute(
        set_name,
        overrides=overrides,
        data=data,
        start=start,
        end=end,
        every=every,
        horizons=horizons,
        symbol=symbol,
        engine_id=engine_id,
        root=project,
    )
    name = frame.attrs["feature_set"]
    target = (out or project / "build" / "features" / f"{name}.parquet").resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(target, index=False, engine="pyarrow")
    rows = len(frame)
    seconds = frame.attrs["seconds"]
    table = Table(title=f"features {name} on {frame.attrs['symbol']}", show_header=False)
    table.add_row("rows", f"{rows:,}")
    table.add_row("columns", ", ".join(frame.columns))
    if rows:
        first, last = int(frame["ts_ns"].iloc[0]), int(frame["ts_ns"].iloc[-1])
        table.add_row("time range", f"{data_mod.format_utc(first)} .. {data_mod.format_utc(last)}")
    counters = frame.attrs["counters"]
    table.add_row(
        "replayed",
        f"{counters['events']:,} events, {counters['book_updates']:,} book updates, "
        f"{counters['trades']:,} trades, {counters['data_errors']:,} data errors",
    )
    rate = rows / seconds if seconds > 0 else float("inf")
    table.add_row("engine time", f"{seconds:.3f} s ({rate:,.0f} rows/s)")
    console = Console()
    console.print(table)
    shown = target.relative_to(project) if target.is_relative_to(project) else target
    console.print(f"wrote {shown}")
