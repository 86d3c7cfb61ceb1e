"""The `appliance` command line.

Exit codes: 0 success; 2 invalid config or manifest (diagnostics on stderr, or JSON on stdout
with `--format json`); 1 anything else (I/O, a missing engine binary). `plan` and `diff` differ:
any error is 1 there, because `--detailed-exitcode` gives 2 to "changes" (and 3 to changes that
need review). A user's mistake is a diagnostic, never a traceback.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from appliance import jsonout
from appliance._extras import require
from appliance.config.diagnostics import ConfigError, Diagnostic, render_json, render_text
from appliance.deploy import cli_apply as _cli_apply
from appliance.deploy import cli_fleet as _cli_fleet
from appliance.research import cli_data as _cli_data

app = typer.Typer(
    name="appliance",
    help="py_rt: compile, validate and inspect trading deployments declared in conf/.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class Format(StrEnum):
    text = "text"
    json = "json"


class ShowFormat(StrEnum):
    yaml = "yaml"
    json = "json"


Overrides = Annotated[
    list[str] | None,
    typer.Argument(
        help="Hydra overrides, e.g. deployment=prod_example risk.max_daily_loss=5000",
        show_default=False,
    ),
]
FormatOpt = Annotated[
    Format, typer.Option("--format", "-f", help="text for people, json for tools")
]
RootOpt = Annotated[
    Path | None,
    typer.Option("--root", help="project root (holds conf/); default: found from the cwd"),
]


def _root(root: Path | None) -> Path:
    from appliance.config.compose import find_root

    return root.resolve() if root else find_root()


def _fail(err: ConfigError, fmt: Format, code: int = 2) -> typer.Exit:
    if fmt is Format.json:
        typer.echo(render_json(err.diagnostics))
    else:
        typer.echo(render_text(err.diagnostics), err=True)
    return typer.Exit(code)


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _print_version(value: bool) -> None:
    if not value:
        return
    from appliance import __version__, engine
    from appliance.config.schema import MANIFEST_VERSION

    typer.echo(f"py-rt-appliance {__version__}")
    typer.echo(f"engine (appliance._engine) {engine.VERSION}")
    typer.echo(
        f"manifest contract {MANIFEST_VERSION} (compiler writes {MANIFEST_VERSION}, "
        f"engine reads {engine.MANIFEST_VERSION})"
    )
    raise typer.Exit()


@app.callback()
def _app(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="print the package, engine and manifest contract versions",
        ),
    ] = False,
) -> None:
    pass


@app.command()
def compile(
    overrides: Overrides = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="build directory (default: <root>/build)")
    ] = None,
    fmt: FormatOpt = Format.text,
    root: RootOpt = None,
) -> None:
    """Compose, validate and render one manifest per engine into build/<deployment>/."""
    from appliance.config.compiler import compile_config
    from appliance.config.manifest import write_build

    try:
        project = _root(root)
        result = compile_config(project, overrides or [])
    except ConfigError as err:
        raise _fail(err, fmt) from None
    out_dir = (out or project / "build").resolve()
    target = write_build(out_dir, result.deployment, result.manifests)
    if fmt is Format.json:
        typer.echo(
            jsonout.dumps(
                {
                    "ok": True,
                    "deployment": result.deployment,
                    "mode": result.spec.mode,
                    "out": _rel(target, project),
                    "manifests": [
                        {
                            "host": m.host,
                            "engine": m.engine_id,
                            "file": _rel(target / m.filename, project),
                            "content_sha256": m.content_sha256,
                        }
                        for m in result.manifests
                    ],
                },
                indent=2,
                sort_keys=True,
            )
        )
        return
    n = len(result.manifests)
    typer.echo(
        f"compiled {result.deployment} ({result.spec.mode}): {n} engine{'s' if n != 1 else ''}"
    )
    for m in result.manifests:
        typer.echo(
            f"  {m.host:<10} {m.engine_id:<10} {_rel(target / m.filename, project)}  "
            f"sha256:{m.content_sha256[:16]}"
        )
    typer.echo(f"index: {_rel(target / 'index.json', project)}")


@app.command()
def validate(
    overrides: Overrides = None, fmt: FormatOpt = Format.text, root: RootOpt = None
) -> None:
    """Compile without writing anything: exit 0 when valid, 2 with every problem otherwise."""
    from appliance.config.compiler import compile_config

    try:
        result = compile_config(_root(root), overrides or [])
    except ConfigError as err:
        raise _fail(err, fmt) from None
    if fmt is Format.json:
        typer.echo(
            jsonout.dumps(
                {
                    "ok": True,
                    "deployment": result.deployment,
                    "engines": [m.engine_id for m in result.manifests],
                },
                indent=2,
                sort_keys=True,
            )
        )
    else:
        typer.echo(
            f"{result.deployment}: valid ({len(result.manifests)} engines, mode {result.spec.mode})"
        )


@app.command()
def show(
    overrides: Overrides = None,
    fmt: Annotated[ShowFormat, typer.Option("--format", "-f")] = ShowFormat.yaml,
    root: RootOpt = None,
) -> None:
    """Print the composed config, secrets redacted, each value with the file it came from."""
    from appliance.config import show as show_mod
    from appliance.config.compose import compose

    try:
        composed = compose(_root(root), overrides or [])
    except ConfigError as err:
        raise _fail(err, Format.text) from None
    typer.echo(
        show_mod.render_json(composed)
        if fmt is ShowFormat.json
        else show_mod.render_yaml(composed),
        nl=False,
    )


@app.command()
def schema(
    out: Annotated[Path | None, typer.Option("--out", help="default: <root>/schemas")] = None,
    check: Annotated[bool, typer.Option("--check", help="fail if the files are stale")] = False,
    root: RootOpt = None,
) -> None:
    """Write the JSON Schema of every config group (and of the manifest) for editors."""
    from appliance.config import schemas

    try:
        out_dir = out or _root(root) / "schemas"
    except ConfigError as err:
        raise _fail(err, Format.text) from None
    if check:
        stale = schemas.stale(out_dir)
        if stale:
            typer.echo(
                f"stale schemas in {out_dir}: {', '.join(stale)} (run `appliance schema`)", err=True
            )
            raise typer.Exit(1)
        typer.echo(f"schemas in {out_dir} are up to date")
        return
    for path in schemas.write(out_dir):
        typer.echo(f"wrote {path}")


class PlanFormat(StrEnum):
    text = "text"
    markdown = "markdown"
    json = "json"


PlanFormatOpt = Annotated[PlanFormat, typer.Option("--format", "-f")]
DetailedExit = Annotated[
    bool,
    typer.Option(
        "--detailed-exitcode",
        help="exit 0 no change, 1 error, 2 changes, 3 changes that need review (LOOSEN or "
        "SECURITY)",
    ),
]
# plan and diff: any error is 1 (2 means "changes" under --detailed-exitcode, as terraform's).
PLAN_ERROR = 1


def _emit_plan(plan: Any, fmt: PlanFormat, out: Path | None, detailed: bool) -> None:
    from appliance.plan import render

    text = {
        PlanFormat.text: render.render_text,
        PlanFormat.markdown: render.render_markdown,
        PlanFormat.json: render.render_json,
    }[fmt](plan)
    typer.echo(text, nl=False)
    if out is not None:
        out.write_text(render.render_json(plan))
        typer.echo(f"saved plan: {out}", err=True)
    if detailed and plan.changes:
        raise typer.Exit(3 if plan.needs_review else 2)


@app.command()
def plan(
    overrides: Overrides = None,
    against: Annotated[
        str | None,
        typer.Option(
            "--against", help="build dir or git ref (default: what the hosts run, read now)"
        ),
    ] = None,
    cached: Annotated[
        bool,
        typer.Option(
            "--cached",
            help="offline: plan against the local record (state/deployed/) without reading "
            "the hosts; the plan says so",
        ),
    ] = False,
    soak: Annotated[
        int | None,
        typer.Option(
            help="seconds of soak per host, overriding deployment.rollout.soak_seconds (shown "
            "in the plan and bound by --out: apply it with the same --soak)",
            min=0,
        ),
    ] = None,
    fmt: PlanFormatOpt = PlanFormat.text,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="save the plan (JSON) bound to the manifests, releases, targets, inventory, "
            "roles and soak: `appliance apply PLAN` runs exactly that or refuses",
        ),
    ] = None,
    detailed: DetailedExit = False,
    root: RootOpt = None,
) -> None:
    """Compile and show what would change against what the hosts run (or --against)."""
    from appliance.config.compiler import compile_config
    from appliance.deploy import fleet
    from appliance.plan import binding, diff, policy, rollout, sides
    from appliance.plan.models import describer
    from appliance.plan.render import Plan

    as_format = Format.json if fmt is PlanFormat.json else Format.text
    try:
        project = _root(root)
        compiled = compile_config(project, overrides or [])
        if against:
            before = sides.resolve(project, against, overrides or [], compiled.deployment)
        elif cached:
            before = fleet.cached_side(project, compiled.deployment)
        else:
            before = fleet.plan_side(project, compiled)
        after = sides.from_compiled(compiled)
        changes = diff.diff(before, after, describer(project))
        result = Plan(compiled.deployment, before, after, changes)
        result.violations = policy.of_compiled(compiled, changes)
        result.rollout = rollout.of_compiled(compiled, soak)
        if out is not None:
            bound = binding.compute(project, compiled, result.rollout.soak_seconds)
            result.binding = bound.to_json()
    except ConfigError as err:
        raise _fail(err, as_format, PLAN_ERROR) from None
    except fleet.Refused as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(PLAN_ERROR) from None
    _emit_plan(result, fmt, out, detailed)


@app.command("diff")
def diff_cmd(
    a: Annotated[str, typer.Argument(help="build dir or git ref (before)")],
    b: Annotated[str, typer.Argument(help="build dir or git ref (after)")],
    override: Annotated[
        list[str] | None,
        typer.Option("--override", "-o", help="Hydra override used to compile git refs"),
    ] = None,
    fmt: PlanFormatOpt = PlanFormat.text,
    detailed: DetailedExit = False,
    root: RootOpt = None,
) -> None:
    """Semantic diff of two builds or git refs."""
    from appliance.plan import diff, sides
    from appliance.plan.models import describer
    from appliance.plan.render import Plan

    overrides = override or []
    try:
        project = _root(root)
        deployment = next(
            (o.split("=", 1)[1] for o in overrides if o.startswith("deployment=")), "paper_local"
        )
        before = sides.resolve(project, a, overrides, deployment)
        after = sides.resolve(project, b, overrides, deployment)
    except ConfigError as err:
        raise _fail(
            err, Format.json if fmt is PlanFormat.json else Format.text, PLAN_ERROR
        ) from None
    changes = diff.diff(before, after, describer(project))
    _emit_plan(Plan(deployment, before, after, changes), fmt, None, detailed)


@app.command()
def backtest(
    overrides: Overrides = None,
    data: Annotated[
        list[Path] | None,
        typer.Option(
            "--data",
            help="recorded capture (.gz) or native file; repeatable: consecutive files are "
            "one stream; default: the sim venue's capture",
        ),
    ] = None,
    engine_id: Annotated[
        str | None, typer.Option("--engine", help="engine id (default: the only one)")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="report dir (default: reports/<deployment>)")
    ] = None,
    report: Annotated[bool, typer.Option(help="write the HTML and PNG report")] = True,
    bucket: Annotated[
        str,
        typer.Option(
            "--bucket",
            help="return bucket of Sharpe/Sortino, a pandas offset alias (docs/metrics.md)",
        ),
    ] = "1min",
    start: Annotated[
        str | None,
        typer.Option("--start", help="trade from this UTC time, e.g. 2024-08-08T23:56:00Z"),
    ] = None,
    end: Annotated[
        str | None, typer.Option("--end", help="trade until this UTC time (exclusive)")
    ] = None,
    fmt: FormatOpt = Format.text,
    root: RootOpt = None,
) -> None:
    """Backtest a deployment's strategies on recorded data with the engine's own Rust core."""
    require("research", "pandas", "matplotlib", "plotly")
    from appliance.research import cli_backtest

    try:
        project = _root(root)
        cli_backtest.run(
            project,
            overrides or [],
            data,
            engine_id,
            out,
            report,
            fmt is Format.json,
            bucket=bucket,
            start=start,
            end=end,
        )
    except ConfigError as err:
        raise _fail(err, fmt) from None


@app.command()
def parity(
    recording: Annotated[
        Path,
        typer.Argument(help="a flight recorder's directory (engine.flight_recorder.dir)"),
    ],
    manifest: Annotated[
        Path | None,
        typer.Option(
            "--manifest", help="replay with this manifest (default: the one the engine ran)"
        ),
    ] = None,
    model: Annotated[
        bool,
        typer.Option(
            "--model",
            help="also run the latency/queue model over the same data and window and report "
            "fill-rate and P&L differences",
        ),
    ] = False,
    fmt: FormatOpt = Format.text,
) -> None:
    """Replay a live run from its flight recording with the recorded acknowledgements and
    fills, and compare decision by decision. Exit 0 when every live decision is reproduced,
    1 on a divergence (each with its first cause), 2 for a bad recording or manifest."""
    from appliance.research import parity as parity_mod

    try:
        code = parity_mod.run(recording, manifest, model, fmt is Format.json)
    except ConfigError as err:
        raise _fail(err, fmt) from None
    raise typer.Exit(code)


@app.command()
def baseline(
    overrides: Overrides = None,
    engine_ids: Annotated[
        list[str] | None,
        typer.Option("--engine", help="engine id; repeatable (default: every engine)"),
    ] = None,
    data: Annotated[
        list[Path] | None,
        typer.Option(
            "--data",
            help="recent recorded captures (.gz); repeatable: consecutive files are one stream; "
            "default: the sim venue's capture",
        ),
    ] = None,
    window: Annotated[
        int, typer.Option("--window", help="detection window, wall seconds (engine.anomaly)")
    ] = 60,
    tolerance: Annotated[
        str, typer.Option("--tolerance", help="how far beyond the backtest's range is normal")
    ] = "0.5",
    out: Annotated[
        Path | None,
        typer.Option("--out", help="file (default: baselines/<deployment>/<engine>.json)"),
    ] = None,
    fmt: FormatOpt = Format.text,
    root: RootOpt = None,
) -> None:
    """Derive what an engine's behaviour should look like (fill ratio, order rate, P&L per
    hour, message rates) from a backtest of the same config; the engine raises an anomaly
    outside it (docs/operations.md)."""
    require("research", "pandas")
    from decimal import Decimal, InvalidOperation

    from appliance.research import baseline as baseline_mod

    try:
        try:
            tol = Decimal(tolerance)
        except InvalidOperation:
            raise ConfigError(
                [Diagnostic("--tolerance", tolerance, "baseline.input", "not a decimal")]
            ) from None
        baseline_mod.run(
            _root(root),
            overrides or [],
            engine_ids,
            data,
            window,
            tol,
            out,
            fmt is Format.json,
        )
    except ConfigError as err:
        raise _fail(err, fmt) from None


@app.command()
def refresh(
    overrides: Overrides = None,
    exchange: Annotated[
        str | None,
        typer.Option("--exchange", help="exchange to refresh (default: the only one)"),
    ] = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="write nothing; exit 0 when the config holds what the venue serves, "
            "2 when it differs, 1 on an error (without --check: 1 also when changes are left "
            "to make by hand)",
        ),
    ] = False,
    fmt: FormatOpt = Format.text,
    root: RootOpt = None,
) -> None:
    """Bring an exchange's instrument metadata in conf/ in line with what the venue serves now
    (OKX, Kraken: the metadata file; Binance: the filters in the exchange's YAML), so the
    change goes through a plan (docs/venues.md)."""
    from appliance.config import refresh as refresh_mod

    try:
        out = refresh_mod.refresh(_root(root), overrides or [], exchange, check)
    except ConfigError as err:
        raise _fail(err, fmt, 1) from None
    if fmt is Format.json:
        typer.echo(jsonout.dumps(refresh_mod.to_json(out, check), indent=2, sort_keys=True))
    else:
        typer.echo(refresh_mod.report(out, check))
    if check and out.differs:
        raise typer.Exit(2)
    if not check and out.problems:
        # Written what could be, but the config does not hold what the venue serves yet.
        raise typer.Exit(1)


@app.command()
def features(
    overrides: Overrides = None,
    set_name: Annotated[
        str,
        typer.Option("--set", help="feature set: conf/features/NAME.yaml (or a YAML file)"),
    ] = "book_basic",
    data: Annotated[
        list[Path] | None,
        typer.Option(
            "--data",
            help="capture (.gz) or native file; repeatable (one stream); default: the sim "
            "venue's capture",
        ),
    ] = None,
    start: Annotated[str | None, typer.Option("--start", help="from this UTC time")] = None,
    end: Annotated[str | None, typer.Option("--end", help="until this UTC time")] = None,
    every: Annotated[
        str | None,
        typer.Option("--every", help="a row every interval (100ms); default: every book update"),
    ] = None,
    horizon: Annotated[
        list[str] | None,
        typer.Option("--horizon", help="label: the mid's move over this horizon (1s); repeatable"),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Parquet file (default: build/features/<set>.parquet)"),
    ] = None,
    symbol: Annotated[
        str | None,
        typer.Option("--symbol", help="instrument (default: the first strategy instrument)"),
    ] = None,
    engine_id: Annotated[
        str | None, typer.Option("--engine", help="engine id (default: the only one)")
    ] = None,
    root: RootOpt = None,
) -> None:
    """Compute a feature set over recorded data with the engine's own feature code (Parquet)."""
    require("research", "pandas", "pyarrow")
    from appliance.research import cli_features

    try:
        cli_features.run(
            _root(root),
            overrides or [],
            set_name,
            data,
            start,
            end,
            every,
            horizon or [],
            out,
            symbol,
            engine_id,
        )
    except ConfigError as err:
        raise _fail(err, Format.text) from None


@app.command()
def optimize(
    overrides: Annotated[
        list[str] | None,
        typer.Argument(
            help="study=NAME (conf/study/NAME.yaml), study.KEY=VALUE to override the study, "
            "and fixed deployment overrides for every trial",
            show_default=False,
        ),
    ] = None,
    trials: Annotated[
        int | None,
        typer.Option("--trials", help="trials to run now (default: the study's n_trials)"),
    ] = None,
    workers: Annotated[int, typer.Option("--workers", help="worker processes on this host")] = 1,
    storage: Annotated[
        str | None,
        typer.Option(
            "--storage",
            help="Optuna RDB storage URL, e.g. postgresql://user@host/db "
            "(default: sqlite under state/studies/)",
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="the sampler's seed")] = None,
    pick: Annotated[
        int | None,
        typer.Option("--pick", help="write the overlay for this completed trial instead"),
    ] = None,
    report: Annotated[bool, typer.Option(help="write the HTML and PNG study report")] = True,
    fmt: FormatOpt = Format.text,
    root: RootOpt = None,
) -> None:
    """Search a strategy's parameters on recorded data (Optuna), validate walk-forward, and
    write the tuned overlay conf/tuned/<study>.yaml for `appliance plan +tuned=<study>`."""
    from appliance._extras import require

    require("research", "optuna", "pandas", "plotly", "matplotlib")
    from appliance.research import cli_optimize

    try:
        project = _root(root)
        cli_optimize.run(
            project,
            overrides or [],
            trials,
            workers,
            storage,
            seed,
            pick,
            report,
            fmt is Format.json,
        )
    except ConfigError as err:
        raise _fail(err, fmt) from None
    except KeyboardInterrupt:
        typer.echo(
            "interrupted: workers stopped; the study resumes where it was with the same command",
            err=True,
        )
        raise typer.Exit(130) from None


@app.command()
def train(
    overrides: Annotated[
        list[str] | None,
        typer.Argument(
            help="model=NAME (conf/model/NAME.yaml), model.KEY=VALUE to override the model, "
            "and deployment overrides",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="output dir (default: models/<name>)")
    ] = None,
    fmt: FormatOpt = Format.text,
    root: RootOpt = None,
) -> None:
    """Train a model on features computed by the engine's Rust core, validate it walk-forward,
    export it to ONNX (checked against the trained model) with its model.json."""
    from appliance._extras import require

    require("research", "pandas", "lightgbm", "sklearn", "onnx", "onnxruntime", "skl2onnx")
    from appliance.research import cli_train

    try:
        cli_train.run(_root(root), overrides or [], out, fmt is Format.json)
    except ConfigError as err:
        raise _fail(err, fmt) from None


CtlArgs = Annotated[
    list[str] | None,
    typer.Argument(
        help="Hydra overrides, then status|pause|resume|flatten|kill or tighten LIMIT VALUE",
        show_default=False,
    ),
]
EngineOpt = Annotated[
    str | None, typer.Option("--engine", help="engine id (default: the only one)")
]


@app.command()
def ctl(
    args: CtlArgs = None,
    engine_id: EngineOpt = None,
    endpoint: Annotated[
        str | None, typer.Option("--endpoint", help="control endpoint (instead of compiling)")
    ] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="seconds to wait")] = 2.0,
    fmt: FormatOpt = Format.text,
    root: RootOpt = None,
) -> None:
    """Control a running engine: exit 0 ok, 1 unreachable, 2 refused by the engine."""
    from appliance.bus import cli_bus

    try:
        cli_bus.ctl(root, args or [], engine_id, endpoint, timeout, fmt is Format.json)
    except ConfigError as err:
        raise _fail(err, fmt) from None


@app.command()
def monitor(
    overrides: Overrides = None,
    engine_id: EngineOpt = None,
    events: Annotated[
        str | None, typer.Option("--events", help="events endpoint (instead of compiling)")
    ] = None,
    control: Annotated[
        str | None, typer.Option("--control", help="control endpoint for status")
    ] = None,
    hwm: Annotated[int, typer.Option("--hwm", help="receive HWM with --events")] = 100_000,
    duration: Annotated[
        float | None, typer.Option("--duration", help="seconds (default: until Ctrl-C)")
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="print one snapshot and exit")] = False,
    root: RootOpt = None,
) -> None:
    """Live view of an engine: positions, P&L, orders, risk, latency, rates, feeds, bus loss."""
    from appliance.bus import cli_bus

    try:
        cli_bus.monitor(root, overrides or [], engine_id, events, control, hwm, duration, once)
    except ConfigError as err:
        raise _fail(err, Format.text) from None


@app.command()
def run(
    overrides: Overrides = None,
    engine_id: EngineOpt = None,
    duration: Annotated[
        float, typer.Option("--duration", help="seconds to run (0: until Ctrl-C)")
    ] = 30.0,
    speed: Annotated[
        str | None, typer.Option("--speed", help="sim replay speed factor (default: manifest)")
    ] = None,
    live: Annotated[bool, typer.Option("--live", help="allow a live deployment")] = False,
    stop_timeout: Annotated[
        float, typer.Option("--stop-timeout", help="seconds from SIGTERM to SIGKILL")
    ] = 15.0,
    root: RootOpt = None,
) -> None:
    """Compile, start the sim venues and this machine's engine, monitor, stop, summarise."""
    from appliance.bus import cli_bus

    try:
        cli_bus.run(root, overrides or [], engine_id, duration or None, speed, live, stop_timeout)
    except ConfigError as err:
        raise _fail(err, Format.text) from None


@app.command()
def record(
    overrides: Overrides = None,
    exchange: Annotated[
        str | None, typer.Option("--exchange", help="exchange to record (default: the only one)")
    ] = None,
    engine_id: EngineOpt = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="directory (default: state/recordings/<deployment>/)"),
    ] = None,
    duration: Annotated[
        float | None, typer.Option("--duration", help="seconds (default: until Ctrl-C)")
    ] = None,
    rotate_mb: Annotated[
        float | None, typer.Option("--rotate-mb", help="new file after N MB compressed")
    ] = None,
    rotate_minutes: Annotated[
        float | None, typer.Option("--rotate-minutes", help="new file after M minutes")
    ] = None,
    root: RootOpt = None,
) -> None:
    """Record an exchange's market data to captures (data/'s format) with a sha256 manifest."""
    from appliance.research import cli_record

    try:
        cli_record.run(
            _root(root),
            overrides or [],
            exchange,
            engine_id,
            out,
            duration,
            rotate_mb,
            rotate_minutes,
        )
    except ConfigError as err:
        raise _fail(err, Format.text) from None


# `appliance apply` (the Ansible roll-out) lives in appliance/deploy/cli_apply.py.
app.command("apply")(_cli_apply.apply)
# `appliance status|rollback|verify|stop` (the fleet as the hosts report it): deploy/cli_fleet.py.
app.command("status")(_cli_fleet.status)
app.command("rollback")(_cli_fleet.rollback)
app.command("verify")(_cli_fleet.verify)
app.command("stop")(_cli_fleet.stop)
# `appliance data ls|info|convert` (captures, the native cache) in appliance/research/cli_data.py.
app.add_typer(_cli_data.app, name="data")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
