"""`appliance backtest`: compile, run on recorded data with a progress bar, summarise, report."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from appliance import jsonout
from appliance.config.compiler import compile_config
from appliance.config.diagnostics import ConfigError, Diagnostic


def _pick_engine(compiled: Any, engine_id: str | None) -> Any:
    manifests = {m.engine_id: m for m in compiled.manifests}
    if engine_id is None:
        if len(manifests) == 1:
            return next(iter(manifests.values()))
        raise ConfigError(
            [
                Diagnostic(
                    "--engine",
                    None,
                    "backtest.engine",
                    f"this deployment runs {len(manifests)} engines; choose "
                    f"one of {sorted(manifests)} with --engine",
                )
            ]
        )
    if engine_id not in manifests:
        raise ConfigError(
            [
                Diagnostic(
                    "--engine",
                    engine_id,
                    "backtest.engine",
                    f"no engine {engine_id!r} (engines: {sorted(manifests)})",
                )
            ]
        )
    return manifests[engine_id]


def _default_data(project: Path, manifest: dict[str, Any]) -> list[Path]:
    captures = [ex["sim"]["capture"] for ex in manifest["exchanges"].values() if ex["sim"]]
    if not captures:
        raise ConfigError(
            [
                Diagnostic(
                    "--data",
                    None,
                    "backtest.data",
                    "no sim venue with a capture in this engine: pass --data",
                )
            ]
        )
    return [project / c for c in captures]


# The capture bundled with a venue that has no sim section, beside its metadata file: what the
# sim replays for it (engine/sim/src/books.rs, `captures`).
_BUNDLED = {"okx": "cryptofeed_OKX.ws.1.0", "kraken": "cryptofeed_KRAKEN.ws.50.0"}


def _exchange_data(
    project: Path, manifest: dict[str, Any], data: Sequence[Path] | None
) -> list[list[Path]]:
    """One stream per exchange of an engine of several (manifest order): `--data
    EXCHANGE=PATH` (repeatable), else the sim's capture, else the venue's bundled capture."""
    given: dict[str, list[Path]] = {}
    problems = []
    for d in data or []:
        name, sep, path = str(d).partition("=")
        if not sep or name not in manifest["exchanges"]:
            problems.append(
                Diagnostic(
                    "--data",
                    str(d),
                    "backtest.data",
                    "this engine reads several exchanges: give each file as EXCHANGE=PATH, "
                    f"EXCHANGE one of {sorted(manifest['exchanges'])}",
                )
            )
            continue
        given.setdefault(name, []).append(Path(path))
    if problems:
        raise ConfigError(problems)
    streams: list[list[Path]] = []
    for name, ex in manifest["exchanges"].items():
        if name in given:
            streams.append(given[name])
        elif ex["sim"]:
            streams.append([project / ex["sim"]["capture"]])
        elif ex["venue"] in _BUNDLED:
            meta = ex.get("metadata") or f"data/{ex['venue']}/"
            streams.append([project / Path(meta).parent / _BUNDLED[ex["venue"]]])
        else:
            streams.append([])
    return streams


def run(
    project: Path,
    overrides: Sequence[str],
    data: Sequence[Path] | None,
    engine_id: str | None,
    out: Path | None,
    report: bool,
    as_json: bool,
    bucket: str = "1min",
    *,
    start: str | None = None,
    end: str | None = None,
) -> None:
    from appliance import engine
    from appliance.research import backtest, metrics
    from appliance.research import data as data_mod
    from appliance.research import report as report_mod

    try:
        metrics.bucket_seconds(bucket)
    except metrics.InvalidBucket as err:
        raise ConfigError(
            [Diagnostic("--bucket", bucket, "backtest.bucket", f"return bucket: {err}")]
        ) from None
    window = data_mod.parse_window(start, end)
    compiled = compile_config(project, overrides)
    built = _pick_engine(compiled, engine_id)
    manifest = json.loads(built.text)
    several = len(manifest["exchanges"]) > 1
    streams = _exchange_data(project, manifest, data) if several else []
    files = [f for s in streams for f in s] if several else None
    files = files or (list(data) if data else _default_data(project, manifest))
    missing = [str(f) for f in files if not Path(f).is_file()]
    if missing:
        raise ConfigError(
            [Diagnostic("--data", m, "backtest.data", "no such file") for m in missing]
        )
    # Captures are replayed from their native files (converted once, cached by sha256). The
    # streams of several exchanges are rebased onto one clock: the window is checked on it.
    if several:
        exchange_natives = [data_mod.prepare(project, s, data_mod.Window()) for s in streams]
        natives: list[Path] = []
    else:
        exchange_natives = None
        natives = data_mod.prepare(project, files, window)
    console = Console(stderr=True)
    with Progress(
        TextColumn("backtest"),
        BarColumn(),
        DownloadColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=as_json,
    ) as bar:
        task = bar.add_task("run", total=None)

        def on_progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        try:
            result = backtest.run(
                built.text,
                natives,
                on_progress,
                bucket=bucket,
                start_ns=window.start_ns,
                end_ns=window.end_ns,
                exchange_data=exchange_natives,
            )
        except engine.WindowError as err:
            raise ConfigError(
                [Diagnostic("--start", start, "window.overlaps_data", str(err))]
            ) from None
    result.data = [Path(f).name for f in files]
    title = f"{compiled.deployment} / {built.engine_id} on {', '.join(result.data)}"
    written: list[Path] = []
    if report:
        target = (out or project / "reports" / compiled.deployment).resolve()
        target.mkdir(parents=True, exist_ok=True)
        frames = (result.equity, result.fills, result.marks, result.risk_events)
        report_mod.write_html(target / "report.html", title, result.summary, *frames)
        report_mod.write_png(target / "report.png", title, *frames)
        result.fills.to_csv(target / "fills.csv", index=False)
        result.orders.to_csv(target / "orders.csv", index=False)
        result.equity.to_csv(target / "equity.csv", index=False)
        result.marks.to_csv(target / "marks.csv", index=False)
        result.risk_events.to_csv(target / "risk_events.csv", index=False)
        (target / "summary.json").write_text(
            jsonout.dumps(result.to_json(), indent=2, sort_keys=True) + "\n"
        )
        written = [target / n for n in ("report.html", "report.png", "summary.json")]
    if as_json:
        print(
            jsonout.dumps(
                result.to_json() | {"report": [str(p) for p in written]}, indent=2, sort_keys=True
            )
        )
        return
    out_console = Console()
    table = Table(title=title, show_header=False)
    for key, value in result.summary.items():
        table.add_row(key, _fmt(value))
    out_console.print(table)
    for path in written:
        shown = path.relative_to(project) if path.is_relative_to(project) else path
        out_console.print(f"wrote {shown}")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.6g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_fmt(v)}" for k, v in sorted(value.items())) or "none"
    return str(value)
