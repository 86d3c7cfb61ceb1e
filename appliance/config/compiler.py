"""The config compiler: compose -> refuse literal secrets -> validate -> cross-check -> render.

`compile_config` either returns one sealed manifest per engine or raises `ConfigError` with
every diagnostic, each carrying the file it came from. It writes nothing; `write_build` does.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from appliance import __version__
from appliance.config import baselines
from appliance.config.checks import (
    EngineRef,
    StrategyModel,
    View,
    check_references,
    run_checks,
)
from appliance.config.compose import Composed, compose, with_source_texts
from appliance.config.diagnostics import MISSING, ConfigError, Diagnostic, from_validation_error
from appliance.config.manifest import BuiltManifest, dumps, rule_diagnostics, seal
from appliance.config.related import attribute
from appliance.config.schema import (
    NAME_PATTERN,
    DeploymentSpec,
    Exchange,
    Host,
    ModelTaker,
    Risk,
    Strategy,
    Target,
)
from appliance.config.secrets import iter_leaves, secret_literal_reason
from appliance.config.venues import manifest_exchange

SECTIONS = ("deployment", "hosts", "exchanges", "strategies", "risk")
# Optional: only `appliance apply` needs a target per engine host (appliance/deploy); the
# change policy is read by `appliance plan` (appliance/plan/policy.py).
OPTIONAL_SECTIONS = ("targets", "policy")
_STRATEGY = TypeAdapter[StrategyModel](Strategy)


@dataclass
class Compiled:
    composed: Composed
    deployment: str
    spec: DeploymentSpec
    manifests: list[BuiltManifest]
    # Host name -> how `appliance apply` reaches it (the `targets` section; may be empty).
    targets: dict[str, Target] = field(default_factory=dict)


GitState = tuple[str | None, bool | None]


def compile_config(root: Path, overrides: Sequence[str]) -> Compiled:
    # Every bad override is reported, with the problems of the config composed without them.
    return compile_composed(compose(root, overrides, collect=True))


def compile_composed(composed: Composed, git_state: GitState | None = None) -> Compiled:
    """Validate, cross-check and render an already composed config. `git_state` (commit,
    dirty) is read from the repository when not given; a study passes it once for all trials.
    """
    diags, spec, view, targets = _validate(composed)
    # Model files are checked for every model strategy that validated, whatever else failed.
    resolved, problems = _resolve_models(composed.root, spec, view)
    diags += problems
    anomalies, problems = _resolve_baselines(composed.root, composed.deployment_name, spec, view)
    diags += problems
    diags += check_references(composed.data, composed.root)
    # The manifest-level rules are the engine's own (engine/manifest/src/validate.rs): every
    # engine that can be rendered is, and its violations join the config-level ones (a rule
    # both sides check, such as an instrument's listing, is reported once).
    provenance = _provenance(composed, git_state)
    view.source_of = composed.source_of
    manifests: list[BuiltManifest] = []
    reported = {(d.path, d.rule) for d in diags}
    seen: set[tuple[str, str, str]] = set()
    for engine_id in spec.engines if spec is not None else {}:
        assert spec is not None
        built, found = _render_engine(
            composed.deployment_name, spec, view, engine_id, provenance, resolved, anomalies
        )
        for d in found:
            if (d.path, d.rule) not in reported and (d.path, d.rule, d.message) not in seen:
                seen.add((d.path, d.rule, d.message))
                diags.append(d)
        if built is not None:
            manifests.append(built)
    if diags or composed.errors or spec is None or view.risk is None:
        raise ConfigError(
            [
                *composed.errors,
                *(attribute(d, composed.data, composed.source_of) for d in diags),
            ]
        )
    return Compiled(composed, composed.deployment_name, spec, manifests, targets)


def _validate(
    composed: Composed,
) -> tuple[list[Diagnostic], DeploymentSpec | None, View, dict[str, Target]]:
    # Numbers as written (`0.00001`, `1e3`), never as a float's repr: decimal fields take
    # the source text, and refuse exponents and non-finite values whatever a float prints.
    data = with_source_texts(composed.data, composed.texts)
    diags: list[Diagnostic] = []
    for path, value in iter_leaves(data):
        reason = secret_literal_reason(path, value)
        if reason:
            diags.append(Diagnostic(path, value, "secret.literal", reason))
    for key in data:
        if key not in SECTIONS + OPTIONAL_SECTIONS:
            diags.append(
                Diagnostic(
                    key,
                    "(section)",
                    "schema.extra_forbidden",
                    f"unknown top-level section {key!r} "
                    f"(expected one of {SECTIONS + OPTIONAL_SECTIONS})",
                )
            )
    for key in SECTIONS:
        if key not in data:
            diags.append(Diagnostic(key, MISSING, "schema.missing", f"section {key!r} is missing"))

    invalid: set[str] = set()
    spec = _model(DeploymentSpec, data.get("deployment"), ["deployment"], diags)
    hosts = _named(Host, "hosts", data, diags, invalid)
    exchanges = _named(Exchange, "exchanges", data, diags, invalid)
    strategies = _named(_STRATEGY, "strategies", data, diags, invalid)
    risk = _model(Risk, data.get("risk"), ["risk"], diags) if "risk" in data else None
    targets = _named(Target, "targets", data, diags, invalid)
    diags += _check_targets(targets, data.get("hosts"))
    diags += _check_scrape_targets(targets, data.get("deployment"))

    raw_mode = (
        (data.get("deployment") or {}).get("mode")
        if isinstance(data.get("deployment"), dict)
        else None
    )
    view = View(
        mode=spec.mode if spec else str(raw_mode or "paper"),
        engines={
            k: EngineRef(e.host, list(e.exchanges), list(e.strategies))
            for k, e in (spec.engines.items() if spec else [])
        },
        hosts=hosts,
        exchanges=exchanges,
        strategies=strategies,
        risk=risk,
        host_path=lambda key: f"hosts.{key}",
        engine_path=lambda eid: f"deployment.engines.{eid}",
        project_root=composed.root,
        unvalidated=frozenset(invalid),
    )
    diags += run_checks(view)
    # A literal secret is reported once, as such, not again as a malformed reference.
    secret_paths = {d.path for d in diags if d.rule == "secret.literal"}
    diags = [d for d in diags if d.rule == "secret.literal" or d.path not in secret_paths]
    return diags, spec, view, targets


def _check_targets(targets: dict[str, Target], hosts: Any) -> list[Diagnostic]:
    declared = set(hosts) if isinstance(hosts, dict) else set()
    out = []
    for name, t in targets.items():
        base = f"targets.{name}"
        if name not in declared:
            out.append(
                Diagnostic(
                    base,
                    name,
                    "target.host_declared",
                    f"target {name!r} names no declared host (hosts: {sorted(declared)})",
                )
            )
        if t.connection == "ssh":
            for key in ("ssh_user", "ssh_port"):
                if getattr(t, key) is None:
                    out.append(
                        Diagnostic(
                            f"{base}.{key}",
                            None,
                            "target.ssh",
                            f"{key} is required when connection is ssh",
                        )
                    )
            if not t.root.startswith("/"):
                out.append(
                    Diagnostic(
                        f"{base}.root",
                        t.root,
                        "target.root",
                        "a relative root is a directory of this project: local connection only",
                    )
                )
        else:
            for key in ("ssh_user", "ssh_port"):
                if getattr(t, key) is not None:
                    out.append(
                        Diagnostic(
                            f"{base}.{key}",
                            getattr(t, key),
                            "target.local",
                            f"{key} must be null when connection is local",
                        )
                    )
        if t.root == "/" and t.service_user is None:
            out.append(
                Diagnostic(
                    f"{base}.service_user",
                    None,
                    "target.service_user",
                    "a real host (root /) runs the engine as a service user, never as the "
                    "connecting (often root) user",
                )
            )
        if t.root != "/" and t.service_manager == "systemd":
            out.append(
                Diagnostic(
                    f"{base}.service_manager",
                    t.service_manager,
                    "target.service_manager",
                    "systemd manages only units under /: a prefix root uses supervisor or auto",
                )
            )
    return out


def _check_scrape_targets(targets: dict[str, Target], deployment: Any) -> list[Diagnostic]:
    """An engine whose host publishes Prometheus targets listens on a port it can be scraped
    at: port 0 (any free port) would publish a target nothing answers on. Read from the raw
    `deployment` section, so that a deployment failing its schema elsewhere hides nothing."""
    engines = deployment.get("engines") if isinstance(deployment, dict) else None
    out = []
    for engine_id, engine in (engines if isinstance(engines, dict) else {}).items():
        if not isinstance(engine, dict) or not isinstance(engine.get("metrics"), dict):
            continue
        host, listen = engine.get("host"), engine["metrics"].get("listen")
        target = targets.get(host) if isinstance(host, str) else None
        if target is None or target.monitoring.prometheus_file_sd is None:
            continue
        if isinstance(listen, str) and listen.rpartition(":")[2] == "0":
            out.append(
                Diagnostic(
                    f"deployment.engines.{engine_id}.metrics.listen",
                    listen,
                    "engine.metrics_scrape_port",
                    f"port 0 takes any free port, but host {host!r} publishes this engine's "
                    f"scrape target (targets.{host}.monitoring.prometheus_file_sd): give it a "
                    "fixed port",
                )
            )
    return out


def _model(model: Any, raw: Any, prefix: list[object], diags: list[Diagnostic]) -> Any:
    if raw is None:
        return None
    adapter = model if isinstance(model, TypeAdapter) else None
    try:
        if adapter is not None:
            return adapter.validate_python(raw)
        assert issubclass(model, BaseModel)
        return model.model_validate(raw)
    except ValidationError as exc:
        diags.extend(from_validation_error(exc, prefix))
        return None


def _named(
    model: Any, section: str, data: dict[str, Any], diags: list[Diagnostic], invalid: set[str]
) -> dict[str, Any]:
    raw = data.get(section)
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        diags.append(Diagnostic(section, raw, "schema.dict_type", f"{section} must be a map"))
        return {}
    out = {}
    for name, body in raw.items():
        if not re.fullmatch(NAME_PATTERN, str(name)):
            diags.append(
                Diagnostic(
                    f"{section}.{name}",
                    name,
                    "schema.name",
                    f"name {name!r} must match {NAME_PATTERN}",
                )
            )
            invalid.add(f"{section}.{name}")
            continue
        value = _model(model, body, [section, name], diags)
        if value is None:
            invalid.add(f"{section}.{name}")
        else:
            out[str(name)] = value
    return out


def _resolve_models(
    root: Path, spec: DeploymentSpec | None, view: View
) -> tuple[dict[str, dict[str, Any]], list[Diagnostic]]:
    """Manifest params of every model strategy an engine runs (config/models.py), or of
    every declared one when the engines did not validate; and the problems found."""
    used = (
        {name for e in spec.engines.values() for name in e.strategies}
        if spec is not None
        else set(view.strategies)
    )
    out: dict[str, dict[str, Any]] = {}
    diags: list[Diagnostic] = []
    for name in sorted(used):
        st = view.strategies.get(name)
        if isinstance(st, ModelTaker):
            from appliance.config import models

            params, problems = models.resolve(root, name, st)
            diags += problems
            if params is not None:
                out[name] = params
    return out, diags


def _resolve_baselines(
    root: Path, deployment: str, spec: DeploymentSpec | None, view: View
) -> tuple[dict[str, dict[str, Any]], list[Diagnostic]]:
    """The manifest's `engine.anomaly` of every engine with a baseline whose exchanges
    validated (config/baselines.py); and the problems found."""
    out: dict[str, dict[str, Any]] = {}
    diags: list[Diagnostic] = []
    for engine_id, engine in spec.engines.items() if spec is not None else []:
        exchanges = {n: view.exchanges[n] for n in engine.exchanges if n in view.exchanges}
        if engine.anomaly is None or len(exchanges) != len(engine.exchanges):
            continue
        block, problems = baselines.resolve(
            root,
            deployment,
            engine_id,
            engine.anomaly,
            exchanges,
            engine.metrics.tick_to_order_p99_alert_us,
        )
        diags += problems
        if block is not None:
            out[engine_id] = block
    return out, diags


def _render_engine(
    deployment: str,
    spec: DeploymentSpec,
    view: View,
    engine_id: str,
    provenance: dict[str, Any],
    models: dict[str, dict[str, Any]],
    anomalies: dict[str, dict[str, Any]],
) -> tuple[BuiltManifest | None, list[Diagnostic]]:
    """One engine's manifest, checked by the engine's own validator, and its violations at
    config paths (no manifest when there are any, or when a section did not validate).

    Every rule whose inputs validated still runs (issue 10, "every problem at once"): an
    exchange that failed its schema is left out with the strategies on it (a feed thread for
    it stays, so the thread rules still see every core), and so is a model strategy whose
    model did not resolve; a host or a risk section that failed is stood in for by a neutral
    one whose own violations are dropped. The schema's diagnostics name what was left out.
    """
    engine = spec.engines[engine_id]
    host = view.hosts.get(engine.host)
    anomaly = anomalies.get(engine_id)
    exchanges = {n: view.exchanges[n] for n in engine.exchanges if n in view.exchanges}
    strategies = {
        n: st
        for n in engine.strategies
        if (st := view.strategies.get(n)) is not None
        and st.exchange in exchanges
        and (n in models or not isinstance(st, ModelTaker))
    }
    traded = {s for st in strategies.values() for s in st.instruments}
    if view.risk is not None:
        risk = view.risk.model_dump(mode="json")
        risk["instruments"] = {k: v for k, v in risk["instruments"].items() if k in traded}
    else:
        risk = _stand_in_risk(traded)
    host_body = (
        host.model_dump(mode="json") if host is not None else _stand_in_host(engine.exchanges)
    )
    body = {
        "deployment": {"name": deployment, "mode": spec.mode},
        "engine": {
            "id": engine_id,
            "host": engine.host,
            "bus": engine.bus.model_dump(mode="json"),
            "journal": engine.journal.model_dump(mode="json"),
            "metrics": engine.metrics.model_dump(mode="json"),
            "flight_recorder": (
                engine.flight_recorder.model_dump(mode="json") if engine.flight_recorder else None
            ),
            # A baseline that did not resolve has its diagnostic already: render without it.
            "anomaly": {k: v for k, v in anomaly.items() if k != "trading_sha256"}
            if anomaly is not None
            else None,
        },
        "host": {"name": engine.host, **host_body},
        "exchanges": {
            n: manifest_exchange(ex.model_dump(mode="json"), view.project_root or Path("."))
            for n, ex in exchanges.items()
        },
        "strategies": {
            n: st.model_dump(mode="json") | ({"params": models[n]} if n in models else {})
            for n, st in strategies.items()
        },
        "risk": risk,
    }
    stale = (
        baselines.stale(
            deployment,
            engine_id,
            engine.anomaly,
            anomaly["trading_sha256"],
            baselines.trading_sha256(body),
        )
        if anomaly is not None and engine.anomaly is not None
        else []
    )
    manifest = seal(body, provenance)
    text = dumps(manifest)
    # The engine's validator reads what the compiler wrote: a renderer bug becomes a refused
    # compile, never a manifest the engine refuses (model paths are relative to the project
    # root, which is the engine's working directory here).
    left_out = {f"host.threads.feeds.{n}" for n in engine.exchanges if n not in exchanges}
    found = [
        replace(d, path=_config_path(d.path, engine_id, engine.host))
        for d in rule_diagnostics(text, manifest, view.project_root)
        if d.path not in left_out
        and not (host is None and (d.path.startswith("host.") or d.path == "engine.host"))
        and not (view.risk is None and d.path.startswith("risk."))
    ]
    complete = (
        host is not None
        and view.risk is not None
        and len(exchanges) == len(engine.exchanges)
        and len(strategies) == len(engine.strategies)
    )
    found += stale
    if found or not complete:
        return None, found
    sources = _manifest_sources(body, view, engine_id, engine.host)
    return BuiltManifest(engine_id, engine.host, text, manifest["content_sha256"], sources), []


def _stand_in_host(exchanges: list[str]) -> dict[str, Any]:
    """A host that breaks no rule, for an engine whose host did not validate: the rules of
    its exchanges, strategies and risk still run (its own violations are dropped)."""
    ring = {"slots": 2, "slot_bytes": 64}
    return {
        "address": "stand-in",
        "cpu": {
            "cores": [0],
            "isolated": [],
            "housekeeping": [0],
            "smt_siblings": [],
            "numa_nodes": [[0]],
        },
        "nic": {"name": "stand-in", "numa_node": 0},
        "memory": {"hugepage_kb": 2048, "hugepages": 0, "shm_budget_mb": 1},
        "threads": {
            "feeds": dict.fromkeys(exchanges),
            "strategy": None,
            "gateway": None,
            "housekeeping": None,
        },
        "rings": {"backing": "shm", "market_data": ring, "orders": ring, "fills": ring},
    }


def _stand_in_risk(traded: set[str]) -> dict[str, Any]:
    """Risk limits that refuse no order, for a risk section that did not validate: the
    strategies' rules still run (its own violations are dropped)."""
    most = "9999999999"
    limits = {
        "max_position": most,
        "max_order_qty": most,
        "max_order_notional": most,
        "max_position_notional": most,
        "price_band_bps": 10000,
    }
    return {
        "kill_switch": {"enabled": True, "cancel_on_trigger": True},
        "max_daily_loss": most,
        "max_drawdown": most,
        "max_gross_exposure": most,
        "reducing_at_pct": 100,
        "max_open_orders": 1,
        "order_rate": {"per_second": 1, "burst": 1},
        "feed_stale_ms": 1,
        "stale_exposure_halt_ms": 2,
        "instruments": {s: limits for s in sorted(traded)},
    }


def _config_path(path: str, engine_id: str, host: str) -> str:
    """Where a manifest key lives in the composed config."""
    head, _, rest = path.partition(".")
    if head == "host":
        return f"deployment.engines.{engine_id}.host" if rest == "name" else f"hosts.{host}.{rest}"
    if head == "engine":
        if rest in ("id", ""):
            return f"deployment.engines.{engine_id}"
        return f"deployment.engines.{engine_id}.{rest}"
    if path == "deployment.name":
        return "deployment"
    return path


def _manifest_sources(
    body: dict[str, Any], view: View, engine_id: str, host: str
) -> dict[str, str]:
    lookup = view.source_of
    out: dict[str, str] = {}
    for path, _ in iter_leaves(body, lists_are_leaves=True):
        src = lookup(_config_path(path, engine_id, host)) if lookup else None
        if src:
            out[path] = src
    return out


def _provenance(composed: Composed, git_state: GitState | None) -> dict[str, Any]:
    commit, dirty = git_state if git_state is not None else git_state_of(composed.root)
    return {
        "compiler": f"appliance {__version__}",
        "git_commit": commit,
        "git_dirty": dirty,
        "choices": dict(sorted(composed.choices.items())),
        "overrides": list(composed.overrides),
    }


def git_state_of(root: Path) -> GitState:
    """The commit of `root` and whether conf/ differs from it (None, None outside git)."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", "conf"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None, None
    return commit or None, bool(status.strip())
