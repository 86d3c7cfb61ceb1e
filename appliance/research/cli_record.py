"""`appliance record`: record an exchange's market data into capture files (the format of
data/) with `rt-engine record`, starting the sim venue first when the exchange is a sim.

Compiles the deployment and writes its manifest under build/ (as `appliance compile` and
`appliance run` do), starts `rt-engine sim` for a sim exchange under the same supervision as
`appliance run` (logs under state/record/<deployment>/, nothing left running), runs the
recorder until `--duration` or Ctrl-C and prints the files it wrote (from the recording
directory's manifest.json). Exit codes: 0 ok; 1 the recorder or the sim failed, or nothing was
recorded; 2 invalid config or usage; 130 Ctrl-C (143 SIGTERM), after closing the files.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from appliance.config.diagnostics import ConfigError, Diagnostic

RECORD_STOP_GRACE_S = 20.0


def _usage(path: str, value: object, message: str) -> ConfigError:
    return ConfigError([Diagnostic(path, value, "record.usage", message, source="command line")])


def _positive(value: float | None, option: str) -> None:
    if value is not None and not value > 0:
        raise _usage(option, value, f"must be a positive number, got {value:g}")


def _pick(targets: Sequence[Any], engine_id: str | None, exchange: str | None) -> Any:
    """The engine whose manifest is used: `--engine`, else the only one (that has `exchange`)."""
    by_id = {t.engine_id: t for t in targets}
    if engine_id is not None:
        if engine_id not in by_id:
            raise _usage(
                "--engine", engine_id, f"no engine {engine_id!r} (engines: {sorted(by_id)})"
            )
        return by_id[engine_id]
    fits = [t for t in targets if exchange is None or exchange in t.manifest["exchanges"]]
    if len(fits) == 1:
        return fits[0]
    if not fits:
        known = sorted({x for t in targets for x in t.manifest["exchanges"]})
        raise _usage("--exchange", exchange, f"no exchange {exchange!r} (exchanges: {known})")
    raise _usage(
        "--engine",
        None,
        f"{len(fits)} engines trade {exchange or 'exchanges'}: choose one of "
        f"{sorted(t.engine_id for t in fits)} with --engine",
    )


def _exchange(target: Any, exchange: str | None) -> tuple[str, dict[str, Any]]:
    exchanges: dict[str, Any] = target.manifest["exchanges"]
    if exchange is None:
        if len(exchanges) == 1:
            name = next(iter(exchanges))
            return name, exchanges[name]
        raise _usage(
            "--exchange",
            None,
            f"engine {target.engine_id} has {len(exchanges)} exchanges: choose one of "
            f"{sorted(exchanges)} with --exchange",
        )
    if exchange not in exchanges:
        raise _usage(
            "--exchange",
            exchange,
            f"no exchange {exchange!r} in engine {target.engine_id} "
            f"(exchanges: {sorted(exchanges)})",
        )
    return exchange, exchanges[exchange]


def listed_files(out_dir: Path) -> list[dict[str, Any]]:
    """The entries of a recording directory's manifest.json (none when there is none)."""
    path = out_dir / "manifest.json"
    if not path.is_file():
        return []
    files: list[dict[str, Any]] = json.loads(path.read_text())["files"]
    return files


def _err(message: str) -> None:
    Console(stderr=True, highlight=False, soft_wrap=True).print(message, markup=False)


def run(
    project: Path,
    overrides: Sequence[str],
    exchange: str | None,
    engine_id: str | None,
    out: Path | None,
    duration: float | None,
    rotate_mb: float | None,
    rotate_minutes: float | None,
    startup_timeout: float = 20.0,
) -> None:
    from appliance import engine as engine_mod
    from appliance.bus.cli_bus import resolve_targets, write_manifest
    from appliance.bus.processes import (
        StartupFailed,
        Supervisor,
        Terminated,
        busy_sim_endpoint,
        rel,
        sigterm_raises,
        start_sims,
    )

    _positive(duration, "--duration")
    _positive(rotate_mb, "--rotate-mb")
    _positive(rotate_minutes, "--rotate-minutes")
    compiled, targets = resolve_targets(project, overrides)
    target = _pick(targets, engine_id, exchange)
    name, ex = _exchange(target, exchange)
    try:
        binary = engine_mod.engine_binary(project)
    except engine_mod.EngineNotFound as err:
        _err(f"error: {err}")
        raise typer.Exit(1) from None
    console = Console(highlight=False, soft_wrap=True)
    manifest_path, wrote = write_manifest(project, compiled, target)
    console.print(
        f"{'compiled' if wrote else 'up to date'}: {rel(manifest_path, project)} "
        f"(sha256:{target.manifest_sha256[:16]})",
        markup=False,
    )
    out_dir = out if out is not None else project / "state" / "recordings" / target.deployment
    out_dir = out_dir.resolve()
    try:
        before = {f["name"] for f in listed_files(out_dir)}
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise _usage(
            "--out", str(out_dir), f"{out_dir / 'manifest.json'} is not a recording manifest: {err}"
        ) from None
    sims = {name: ex} if ex["venue"] == "sim" else {}
    busy = busy_sim_endpoint(sims)
    if busy is not None:
        _err(f"error: {busy}")
        raise typer.Exit(1)

    argv = [
        str(binary),
        "record",
        "--manifest",
        str(manifest_path),
        "--exchange",
        name,
        "--out",
        str(out_dir),
    ]
    for option, value in (
        ("--duration", duration),
        ("--rotate-mb", rotate_mb),
        ("--rotate-minutes", rotate_minutes),
    ):
        if value is not None:
            argv += [option, repr(float(value))]
    log_dir = project / "state" / "record" / target.deployment
    sup = Supervisor(project, log_dir)
    recorder = None
    exit_code = 0
    interrupted: BaseException | None = None
    try:
        with sigterm_raises():
            start_sims(sup, binary, manifest_path, sims, None, startup_timeout, project, console)
            recorder = sup.start(f"record_{name}", argv)
            symbols = ", ".join(sorted(ex["instruments"]))
            how_long = f"for {duration:g} s" if duration is not None else "until Ctrl-C"
            console.print(
                f"recording {name} ({symbols}) to {rel(out_dir, project)}/ {how_long} "
                f"(pid {recorder.proc.pid}); logs in {rel(log_dir, project)}/",
                markup=False,
            )
            while recorder.proc.poll() is None:
                # The recorder itself ends at --duration, maybe between the two polls: only
                # a sim venue's exit is an error here.
                dead = sup.dead_message(project, besides=recorder)
                if dead is not None:
                    # A sim venue died: the recording has nothing more to receive.
                    _err(dead)
                    exit_code = 1
                    break
                time.sleep(0.1)
    except (KeyboardInterrupt, Terminated) as err:
        interrupted = err
    except StartupFailed as err:
        _err(f"error: {err}")
        exit_code = 1
    finally:
        # The recorder first (it finishes its file and the manifest), then the sim.
        code = recorder.stop(RECORD_STOP_GRACE_S) if recorder is not None else 0
        sup.stop_all()
    if recorder is not None and code != 0 and exit_code == 0:
        how = f"code {code}" if code is not None else "SIGKILL"
        _err(
            f"error: rt-engine record ended with {how}; last lines of "
            f"{rel(recorder.log, project)}:\n{recorder.tail()}"
        )
        exit_code = 1
    new = [f for f in listed_files(out_dir) if f["name"] not in before]
    for f in new:
        console.print(
            f"  {rel(out_dir / f['name'], project)}  {f['bytes']:,} bytes  {f['lines']:,} lines  "
            f"sha256:{f['sha256']}",
            markup=False,
        )
    if recorder is not None:
        console.print(
            f"recorded {len(new)} file(s); manifest: {rel(out_dir / 'manifest.json', project)}",
            markup=False,
        )
    if interrupted is not None:
        _err(f"interrupted: recording stopped, {len(new)} file(s) closed and listed")
        raise typer.Exit(143 if isinstance(interrupted, Terminated) else 130)
    if exit_code:
        raise typer.Exit(exit_code)
