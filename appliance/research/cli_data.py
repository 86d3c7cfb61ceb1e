"""`appliance data ls|info|convert`: the recorded captures a project can backtest on, what
they hold, and their native event files (converted once, cached by the capture's sha256 under
state/data/native/; see appliance/research/data.py).

Exit codes as for every command: 0 success, 2 a file that is missing or not a capture
(diagnostics on stderr, or JSON on stdout with `--format json`), 1 an I/O error.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from appliance import jsonout
from appliance.config.diagnostics import ConfigError, Diagnostic, render_json, render_text

app = typer.Typer(
    name="data",
    help="Recorded market data: list captures, describe one, convert to native files (cached).",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# Where `ls` looks by default, under the project root.
DEFAULT_DIRS = ("data", "state/recordings")
# Venues whose captures this engine decodes: a native file's venue is read from its path.
VENUES = ("binance", "okx", "kraken")


class Format(StrEnum):
    text = "text"
    json = "json"


FormatOpt = Annotated[
    Format, typer.Option("--format", "-f", help="text for people, json for tools")
]
RootOpt = Annotated[
    Path | None,
    typer.Option("--root", help="project root (holds conf/); default: found from the cwd"),
]


def _project(root: Path | None) -> Path:
    from appliance.config.compose import find_root

    return root.resolve() if root else find_root()


def _exit(err: ConfigError, fmt: Format) -> typer.Exit:
    if fmt is Format.json:
        typer.echo(render_json(err.diagnostics))
    else:
        typer.echo(render_text(err.diagnostics), err=True)
    return typer.Exit(2)


def _io_error(err: OSError) -> typer.Exit:
    typer.echo(f"error: {err}", err=True)
    return typer.Exit(1)


def _shown(path: Path, project: Path) -> str:
    for candidate in (path.absolute(), path.resolve()):
        if candidate.is_relative_to(project):
            return str(candidate.relative_to(project))
    return str(path)


def describe(project: Path, files: list[Path], arg: str) -> list[dict[str, Any]]:
    """`data.info` of every file; every missing or unreadable file is a diagnostic (all of
    them reported together)."""
    from appliance import engine
    from appliance.research import data

    records: list[dict[str, Any]] = []
    problems: list[Diagnostic] = []
    for f in files:
        if not f.is_file():
            problems.append(Diagnostic(arg, str(f), "data.exists", "no such file"))
            continue
        try:
            record = data.info(project, f)
        except engine.BacktestError as err:
            problems.append(Diagnostic(arg, str(f), "data.capture", f"not readable: {err}"))
            continue
        if record["events"] == 0:
            problems.append(
                Diagnostic(
                    arg,
                    str(f),
                    "data.capture",
                    "not a capture: no market event decodes "
                    f"({record['decode_errors']} undecodable lines)",
                )
            )
            continue
        # A capture names its venue (its protocol); a native file's is read from its path.
        venue = record.get("venue") or next((v for v in VENUES if v in f.resolve().parts), None)
        records.append(record | {"file": _shown(f, project), "venue": venue})
    if problems:
        raise ConfigError(problems)
    return records


def _duration(seconds: float) -> str:
    whole = int(seconds)
    h, rem = divmod(whole, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


@app.command("ls")
def ls_cmd(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            help="files or directories (default: data/ and state/recordings/)", show_default=False
        ),
    ] = None,
    fmt: FormatOpt = Format.text,
    root: RootOpt = None,
) -> None:
    """List captures and native files: venue, market, symbols, time range, messages, gaps."""
    from appliance.research import data

    try:
        project = _project(root)
        given = list(paths) if paths else [project / d for d in DEFAULT_DIRS]
        missing = [p for p in given if paths and not p.exists()]
        if missing:
            raise ConfigError(
                [
                    Diagnostic("PATH", str(p), "data.exists", "no such file or directory")
                    for p in missing
                ]
            )
        records = describe(project, data.discover(given), "PATH")
    except ConfigError as err:
        raise _exit(err, fmt) from None
    except OSError as err:
        raise _io_error(err) from None
    rows = [_row(r) for r in records]
    if fmt is Format.json:
        typer.echo(jsonout.dumps(rows, indent=2, sort_keys=True))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(rows)} data files")
    for column in ("file", "venue", "market", "symbols", "start (UTC)", "end (UTC)"):
        table.add_column(column)
    for column in ("duration", "messages", "gaps", "cached"):
        table.add_column(column, justify="right")
    for r in rows:
        table.add_row(
            r["file"],
            r["venue"] or "-",
            r["market"] or "-",
            ", ".join(r["symbols"]),
            r["start"] or "-",
            r["end"] or "-",
            _duration(r["duration_s"]),
            f"{r['messages']:,}",
            str(r["gaps"]),
            "yes" if r["cached"] else "no",
        )
    Console(width=200).print(table)


def _row(record: dict[str, Any]) -> dict[str, Any]:
    from appliance.research import data

    first, last = record["first_local_ns"], record["last_local_ns"]
    return {
        "file": record["file"],
        "venue": record["venue"],
        "market": record["market"],
        "format": record["format"],
        "symbols": record["symbols"],
        "start": data.format_utc(first) if first is not None else None,
        "end": data.format_utc(last) if last is not None else None,
        "start_ns": first,
        "end_ns": last,
        "duration_s": (last - first) / data.NS if first is not None else 0.0,
        "messages": record["events"],
        "gaps": record["gaps"],
        "cached": record["native"] is not None,
        "sha256": record["sha256"],
    }


@app.command("info")
def info_cmd(
    file: Annotated[Path, typer.Argument(help="a capture or native file", show_default=False)],
    fmt: FormatOpt = Format.text,
    root: RootOpt = None,
) -> None:
    """Everything known about one data file: counts by kind, time ranges, gaps, sha256, cache."""
    from appliance.research import data

    try:
        project = _project(root)
        (record,) = describe(project, [file], "FILE")
    except ConfigError as err:
        raise _exit(err, fmt) from None
    except OSError as err:
        raise _io_error(err) from None
    record["cache"] = _shown(data.cache_dir(project) / f"{record['sha256']}.native", project)
    for key in ("first_local", "last_local", "first_exchange", "last_exchange"):
        ns = record[f"{key}_ns"]
        record[f"{key}_utc"] = data.format_utc(ns) if ns is not None else None
    if fmt is Format.json:
        typer.echo(jsonout.dumps(record, indent=2, sort_keys=True))
        return
    width = max(len(k) for k in record)
    for key in sorted(record):
        value = record[key]
        shown = ", ".join(value) if isinstance(value, list) else value
        typer.echo(f"{key:<{width}}  {'-' if shown is None else shown}")


@app.command("convert")
def convert_cmd(
    files: Annotated[list[Path], typer.Argument(help="captures to convert", show_default=False)],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="write here instead of the cache: a file for one capture, else a directory "
            "(<name>.native)",
        ),
    ] = None,
    fmt: FormatOpt = Format.text,
    root: RootOpt = None,
) -> None:
    """Convert captures to native event files once (cached by sha256); print where they are."""
    from appliance.research import data

    try:
        project = _project(root)
        records = describe(project, files, "FILE")
        done: list[dict[str, Any]] = []
        for f, record in zip(files, records, strict=True):
            if out is None:
                target = data.native_for(project, f)
            else:
                directory = len(files) > 1 or out.is_dir()
                target = out / f"{f.name.split('.')[0]}.native" if directory else out
                data.write_native(f, target)
            done.append({"file": record["file"], "native": _shown(target, project)})
    except ConfigError as err:
        raise _exit(err, fmt) from None
    except OSError as err:
        raise _io_error(err) from None
    if fmt is Format.json:
        typer.echo(jsonout.dumps(done, indent=2, sort_keys=True))
        return
    for d in done:
        typer.echo(f"{d['file']} -> {d['native']}")


@app.command("verify")
def verify_cmd(
    files: Annotated[
        list[Path],
        typer.Argument(help="one capture, or the chained files of one", show_default=False),
    ],
    fmt: FormatOpt = Format.text,
    root: RootOpt = None,
) -> None:
    """Rebuild every instrument's book and check it against the capture's own oracle: Binance
    bookTicker checkpoints, OKX and Kraken checksums. Exit 0 when every checkpoint matches,
    1 when one does not (or a frame does not decode), 2 for a missing or unreadable file."""
    from appliance import engine

    problems = [
        Diagnostic("FILE", str(f), "data.exists", "no such file") for f in files if not f.is_file()
    ]
    try:
        if problems:
            raise ConfigError(problems)
        project = _project(root)
        result = engine.verify_capture([str(f) for f in files])
    except ConfigError as err:
        raise _exit(err, fmt) from None
    except engine.BacktestError as err:
        raise _exit(
            ConfigError([Diagnostic("FILE", [str(f) for f in files], "data.capture", str(err))]),
            fmt,
        ) from None
    if not any(i["messages"] for i in result["instruments"]):
        bad = f"{result['decode_errors']} undecodable frames" if result["decode_errors"] else ""
        raise _exit(
            ConfigError(
                [
                    Diagnostic(
                        "FILE",
                        [str(f) for f in files],
                        "data.capture",
                        f"not a capture: no book message decodes{f' ({bad})' if bad else ''}",
                    )
                ]
            ),
            fmt,
        )
    result["files"] = [_shown(f, project) for f in files]
    code = 0 if result["passed"] else 1
    if fmt is Format.json:
        typer.echo(jsonout.dumps(result, indent=2, sort_keys=True))
        raise typer.Exit(code)
    typer.echo(f"{', '.join(result['files'])}: {result['venue']}")
    header = ("instrument", "oracle", "messages", "checked", "matched", "gaps", "resyncs")
    rows = [[str(i[k]) for k in header] for i in result["instruments"]]
    widths = [max([len(h), *(len(r[n]) for r in rows)]) for n, h in enumerate(header)]
    typer.echo("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    for r in rows:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    for i in result["instruments"]:
        if i["first_mismatch"]:
            typer.echo(f"first mismatch of {i['instrument']}: {i['first_mismatch']}")
    if result["decode_errors"]:
        first = result["first_decode_error"]
        typer.echo(f"{result['decode_errors']} frames did not decode (first: {first})")
    checked = sum(i["checked"] for i in result["instruments"])
    matched = sum(i["matched"] for i in result["instruments"])
    if checked == 0:
        verdict = "FAILED: no checkpoint could be checked (no snapshot: the book never synced)"
    else:
        verdict = "every checkpoint matched" if code == 0 else "FAILED"
    typer.echo(f"{matched}/{checked} checkpoints matched: {verdict}")
    raise typer.Exit(code)
