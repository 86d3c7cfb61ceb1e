"""`appliance parity RECORDING`: replay a live run from its flight recording, decision by decision.

A recording (`engine.flight_recorder.dir`) holds, per exchange, the raw market data the engine
received (`<exchange>/`, captures in the `data/` format) and the strategy thread's decision log
(`strategy/`: every input it consumed in order, every order and cancel it sent, with the book
and risk state it decided on) beside a copy of the manifest it ran
(`strategy/engine.manifest.json`).

The default mode replays the run through the in-process core with the same manifest (or
`--manifest`), driven by the *recorded* acknowledgements, fills and timing, and compares every
decision: exit 0 when every live decision is reproduced, 1 on a divergence (each one reported
with its first cause), 2 for a recording or manifest that cannot be used. `--model` also runs the
modelled backtest (the simulated venue's latency and queue model) over the same market data and
window and reports the fill-rate and P&L differences between live and the model. See
docs/parity.md.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.config.diagnostics import ConfigError, Diagnostic

DECISIONS = "strategy"
ENGINE_MANIFEST = "engine.manifest.json"
LISTING = "manifest.json"
# Manifest keys that say where a manifest came from, not what it does.
_NOT_CONFIG = ("content_sha256", "provenance")


@dataclass
class Recording:
    root: Path
    manifest_text: str
    log_files: list[Path]
    md_files: dict[str, list[Path]]


def _bad(path: Path | str, rule: str, message: str, value: Any = None) -> ConfigError:
    return ConfigError([Diagnostic(str(path), value, rule, message)])


def _listed(directory: Path) -> list[dict[str, Any]]:
    listing = directory / LISTING
    if not listing.is_file():
        raise _bad(listing, "parity.recording", "no listing: not a flight recording directory")
    try:
        doc = json.loads(listing.read_text())
        files = doc["files"]
    except (ValueError, KeyError, TypeError) as err:
        raise _bad(listing, "parity.recording", f"not a recording listing: {err}") from None
    if not isinstance(files, list):
        raise _bad(listing, "parity.recording", "`files` is not a list")
    missing = [f["name"] for f in files if not (directory / f["name"]).is_file()]
    if missing:
        raise _bad(directory, "parity.recording", "listed files are missing", missing)
    return files


def _first_kind(path: Path) -> str:
    """The kind of the first entry of a decision log file (`start` begins a run)."""
    try:
        with gzip.open(path, "rt") as fh:
            line = fh.readline().split()
    except (OSError, EOFError) as err:
        raise _bad(path, "parity.recording", f"cannot read: {err}") from None
    return line[1] if len(line) > 1 else ""


def load(root: Path, manifest: Path | None) -> Recording:
    """The recording under `root` (its last run) and the manifest to replay with."""
    if not root.is_dir():
        raise _bad(root, "parity.recording", "no such directory (a flight recorder's `dir`)")
    log_dir = root / DECISIONS
    if not log_dir.is_dir():
        raise _bad(
            log_dir,
            "parity.recording",
            "no decision log: recorded by an engine without one, or not a recording",
        )
    log_listed = _listed(log_dir)
    if not log_listed:
        raise _bad(log_dir, "parity.recording", "the decision log lists no finished file")
    # The last run: from the last file that begins with a start line.
    paths = [log_dir / f["name"] for f in log_listed]
    starts = [i for i, p in enumerate(paths) if _first_kind(p) == "start"]
    if not starts:
        raise _bad(
            log_dir,
            "parity.recording",
            "no file begins a run (its first files were deleted over the budget: parity "
            "needs the whole run; raise engine.flight_recorder.budget_mb)",
        )
    log_files = paths[starts[-1] :]
    recorded = log_dir / ENGINE_MANIFEST
    if not recorded.is_file():
        raise _bad(recorded, "parity.recording", "the manifest the engine ran is missing")
    if manifest is not None and not manifest.is_file():
        raise _bad("--manifest", "parity.manifest", "no such file", str(manifest))
    text = (manifest or recorded).read_text()
    md_files: dict[str, list[Path]] = {}
    for name in json.loads(text).get("exchanges", {}):
        directory = root / name
        md_files[name] = (
            [directory / f["name"] for f in _listed(directory)] if directory.is_dir() else []
        )
    return Recording(root, text, log_files, md_files)


def config_diff(live: dict[str, Any], replay: dict[str, Any], prefix: str = "") -> list[str]:
    """Leaf keys whose values differ (`path: live A, replay B`), provenance aside."""
    out: list[str] = []
    for key in sorted(set(live) | set(replay)):
        if not prefix and key in _NOT_CONFIG:
            continue
        path = f"{prefix}{key}"
        a, b = live.get(key), replay.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out.extend(config_diff(a, b, path + "."))
        elif a != b:
            out.append(f"{path}: live {json.dumps(a)}, replay {json.dumps(b)}")
    return out


def replay(rec: Recording, keep: int = 200) -> dict[str, Any]:
    """The decision-by-decision replay (raises ConfigError for what cannot be replayed)."""
    from appliance import engine

    live_text = (rec.root / DECISIONS / ENGINE_MANIFEST).read_text()
    try:
        engine.load_manifest(rec.manifest_text)
    except engine.ManifestError as err:
        raise _bad("--manifest", "parity.manifest", str(err)) from None
    live_doc, replay_doc = json.loads(live_text), json.loads(rec.manifest_text)
    if list(live_doc.get("exchanges", {})) != list(replay_doc.get("exchanges", {})):
        raise _bad(
            "--manifest",
            "parity.manifest",
            "the replay manifest's exchanges differ from the recorded run's",
            sorted(replay_doc.get("exchanges", {})),
        )
    diff = config_diff(live_doc, replay_doc)
    try:
        result = engine.parity_replay(
            rec.manifest_text,
            [str(p) for p in rec.log_files],
            [[str(p) for p in files] for files in rec.md_files.values()],
            diff,
            keep,
        )
    except engine.RecordingError as err:
        raise _bad(rec.root, "parity.recording", str(err)) from None
    except (engine.BacktestError, engine.ModelError) as err:
        raise _bad(rec.root, "parity.replay", str(err)) from None
    result["recording"] = str(rec.root)
    result["engine_id"] = live_doc.get("engine", {}).get("id")
    result["live_manifest_sha256"] = live_doc.get("content_sha256")
    result["replay_manifest_sha256"] = replay_doc.get("content_sha256")
    result["config_diff"] = diff
    result["parity"] = result["divergence_count"] == 0
    return result


def model(rec: Recording, live: dict[str, Any]) -> dict[str, Any]:
    """The modelled backtest over the run's market data and window, against live's figures."""
    from appliance import engine

    exchanges = [files for files in rec.md_files.values() if files]
    if len(rec.md_files) != 1 or not exchanges:
        raise _bad(
            rec.root,
            "parity.model",
            "--model replays one exchange's market data (the backtest's limit)",
            sorted(rec.md_files),
        )
    try:
        run = engine.run_backtest(
            rec.manifest_text,
            [str(p) for p in exchanges[0]],
            start_ns=live["first_ns"],
            end_ns=None if live["last_ns"] is None else live["last_ns"] + 1,
        )
    except (engine.BacktestError, engine.ModelError) as err:
        raise _bad(rec.root, "parity.model", str(err)) from None
    modelled = dict(run["summary"])
    modelled["maker_fills"] = sum(1 for x in run["fills"]["liquidity"] if x == "maker")
    rows = {}
    for key in ("orders_sent", "fills", "maker_fills", "fill_ratio", "fees", "realised_pnl", "pnl"):
        a, b = live["summary"].get(key), modelled.get(key)
        rows[key] = {"live": a, "model": b, "difference": _minus(b, a)}
    return {"live": live["summary"], "model": modelled, "differences": rows}


def _minus(b: Any, a: Any) -> Any:
    if isinstance(a, int | float) and isinstance(b, int | float):
        return b - a
    try:
        from decimal import Decimal

        return str(Decimal(str(b)) - Decimal(str(a)))
    except ArithmeticError:
        return None


def _utc(ns: int | None) -> str:
    from datetime import UTC, datetime

    if ns is None:
        return "-"
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def render(result: dict[str, Any], shown: int = 10) -> list[str]:
    """The text report."""
    lines = [
        f"recording {result['recording']}: engine {result['engine_id']}, manifest "
        f"{str(result['live_manifest_sha256'])[:16]} "
        f"({_utc(result['first_ns'])} .. {_utc(result['last_ns'])})",
        f"inputs {result['inputs']}: market events {result['md_events']}, execution reports "
        f"{result['execs']} ({result['fills']} fills), timers {result['timers']}, commands "
        f"{result['commands']}, feed gaps {result['gaps']}; captured events never consumed "
        f"{result['md_skipped']}",
    ]
    if result["config_diff"]:
        lines.append("replayed with a different configuration: " + "; ".join(result["config_diff"]))
    live, matched = result["live_decisions"], result["matched"]
    share = 100.0 * matched / live if live else 100.0
    lines.append(
        f"decisions: live {live}, replay {result['replay_decisions']}, matched {matched} "
        f"({share:.2f}% of live)"
    )
    if result["parity"]:
        lines.append("PARITY: every live decision was reproduced")
        return lines
    divs = result["divergences"]
    lines.append(f"DIVERGED: {result['divergence_count']} decision(s) differ")
    for n, d in enumerate(divs[:shown]):
        head = "first divergence" if n == 0 else f"divergence {n + 1}"
        lines.append(
            f"{head}: input #{d['input']} at {_utc(d['input_ns'])} (after {d['after']}), "
            f"decision {d['slot'] + 1}"
        )
        for side in ("live", "replay"):
            what = d[side] or "(none)"
            ctx = d[f"{side}_context"]
            lines.append(f"  {side + ':':8}{what}" + (f"  [{ctx}]" if ctx else ""))
        lines.append(f"  cause:  {d['cause']}: {d['detail']}")
    if result["divergence_count"] > shown:
        lines.append(f"... {result['divergence_count'] - shown} more (--format json lists them)")
    return lines


def render_model(m: dict[str, Any]) -> list[str]:
    lines = ["live vs the modelled replay (latency and queue model):"]
    lines.append(f"  {'':14}{'live':>16}{'model':>16}{'model - live':>16}")
    for key, row in m["differences"].items():
        cells = [_cell(row[k]) for k in ("live", "model", "difference")]
        lines.append(f"  {key:14}" + "".join(f"{c:>16}" for c in cells))
    return lines


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    return "-" if v is None else str(v)


def run(root: Path, manifest: Path | None, with_model: bool, as_json: bool) -> int:
    """The command: prints the report, returns the exit code (ConfigError: the caller's 2)."""
    from appliance import jsonout

    rec = load(root, manifest)
    result = replay(rec)
    modelled = model(rec, result) if with_model else None
    code = 0 if result["parity"] else 1
    if as_json:
        print(jsonout.dumps(result | {"model": modelled}, indent=2, sort_keys=True))
        return code
    for line in render(result):
        print(line)
    if modelled is not None:
        for line in render_model(modelled):
            print(line)
    return code
