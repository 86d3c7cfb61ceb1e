"""The Ansible inventory and host vars of a deployment, rendered from a compile (conf/ stays
the single source of truth: nothing here is typed by hand).

Each engine host gets connection settings from its target (`targets.<host>`), the
`host_tuning_*` inputs from the manifest's host section (CPU lists in the kernel's cpulist
form, so verification compares exactly what /sys prints), and the `engine_*` inputs: the
release id, the manifest's content hash, the control endpoint, the files to ship (the sim
venues' captures, the models of model strategies and then the controller's ONNX Runtime
library, each under the release where the engine resolves it from). Secrets never appear: a
manifest holds only references (`env:NAME`, `file:/path`), and so do these.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from appliance.config.compiler import Compiled
from appliance.config.diagnostics import ConfigError, Diagnostic
from appliance.config.models import sha256_file
from appliance.config.schema import Target

SUPERVISOR_SRC = Path(__file__).with_name("supervisor.py")
GROUP = "py_rt_engines"
HEADER = "# Rendered by `appliance apply` from conf/ (deployment {deployment}); do not edit.\n"


def cpulist(cpus: Iterable[int]) -> str:
    """The kernel's cpulist form: ascending, runs of two or more as ranges ("0-3,8")."""
    ordered = sorted(set(cpus))
    out: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        out.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(out)


# One sha256-of-a-file for the compiler and the roll-out.
file_sha256 = sha256_file


def release_id(
    content_sha256: str,
    binary_sha256: str,
    captures: Mapping[str, str],
    models: Mapping[str, str] | None = None,
    library: tuple[str, str] | None = None,
) -> str:
    """What a host runs: the manifest's content (not its provenance), the binary, the data,
    and for a model strategy its model files and the ONNX Runtime library (file name, sha256).
    Without models the id is what it was before models existed."""
    parts = [f"manifest {content_sha256}", f"binary {binary_sha256}"]
    parts += [f"capture {dest} {sha}" for dest, sha in sorted(captures.items())]
    parts += [f"model {dest} {sha}" for dest, sha in sorted((models or {}).items())]
    if library is not None:
        parts.append(f"onnxruntime {library[0]} {library[1]}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def model_paths(manifest: dict[str, Any]) -> dict[str, str]:
    """`strategies.<name>.params.model.path` of every model strategy, by strategy name."""
    out = {}
    for name, strategy in sorted(manifest["strategies"].items()):
        model = (strategy.get("params") or {}).get("model")
        if isinstance(model, dict) and isinstance(model.get("path"), str):
            out[name] = model["path"]
    return out


@dataclass(frozen=True)
class Shipped:
    """The files a release ships besides the binary and the manifest: `dest` is relative to
    the release directory, the same path relative to the engine's working directory (its
    top-level entries are linked there to `current`), except `lib/` beside `bin/`."""

    captures: dict[str, Path]
    models: dict[str, Path]
    library: Path | None

    def release(self, content_sha256: str, binary_sha256: str) -> str:
        captures = {d: file_sha256(p) for d, p in self.captures.items() if p.is_file()}
        models = {d: file_sha256(p) for d, p in self.models.items()}
        library = None
        if self.library is not None:
            library = (self.library.name, file_sha256(self.library))
        return release_id(content_sha256, binary_sha256, captures, models, library)


def _shipped(project: Path, manifest: dict[str, Any]) -> tuple[Shipped, list[Diagnostic]]:
    captures: dict[str, Path] = {}
    for ex in manifest["exchanges"].values():
        if ex["sim"]:
            captures[ex["sim"]["capture"]] = (project / ex["sim"]["capture"]).resolve()
    models: dict[str, Path] = {}
    diags: list[Diagnostic] = []
    journal_top = Path(manifest["engine"]["journal"]["dir"]).parts[:1]
    for name, path in model_paths(manifest).items():
        key = f"strategies.{name}.params.model.path"
        parts = Path(path).parts
        if path.startswith("/") or ".." in parts or not parts or parts[:1] == journal_top:
            diags.append(
                Diagnostic(
                    key,
                    path,
                    "deploy.model_path",
                    "a model shipped in a release needs a path relative to the engine's working "
                    "directory, inside it, and outside the journal's directory",
                )
            )
            continue
        src = (project / path).resolve()
        want = manifest["strategies"][name]["params"]["model"].get("sha256")
        if not src.is_file() or file_sha256(src) != want:
            diags.append(
                Diagnostic(
                    key,
                    path,
                    "deploy.model_file",
                    f"{src} is missing or no longer hashes to the compiled sha256 {want}: "
                    "compile again",
                )
            )
            continue
        models[path] = src
    library = None
    if models:
        from appliance.engine import onnxruntime_library

        library = onnxruntime_library()
        if library is None:
            name = next(iter(model_paths(manifest)))
            diags.append(
                Diagnostic(
                    f"strategies.{name}.params.model",
                    None,
                    "deploy.onnxruntime",
                    "a model strategy's release ships the ONNX Runtime library, and the "
                    "`onnxruntime` wheel is not installed here (pip install onnxruntime)",
                )
            )
    return Shipped(captures, models, library), diags


@dataclass(frozen=True)
class HostRelease:
    host: str
    engine_id: str
    release: str
    content_sha256: str
    prefix: str
    manager: str
    vars: dict[str, Any]


@dataclass(frozen=True)
class Inventory:
    deployment: str
    directory: Path
    binary_sha256: str
    hosts: list[HostRelease]

    def by_host(self) -> dict[str, HostRelease]:
        return {h.host: h for h in self.hosts}


def _missing_target(host: str) -> Diagnostic:
    return Diagnostic(
        f"targets.{host}",
        None,
        "target.missing",
        f"apply needs a target for host {host!r}: add `- /target@targets.{host}: local` "
        "(or another conf/target option) to the deployment's defaults",
    )


def _prefix(project: Path, target: Target) -> str:
    if target.root == "/":
        return ""
    root = Path(target.root)
    return str((root if root.is_absolute() else project / root).resolve())


def install_dir(project: Path, target: Target) -> Path:
    """Where the engine role installs on a host (its `engine_install_dir`)."""
    return Path(_prefix(project, target) or "/") / "opt" / "py-rt"


def _check_paths(host: str, manifest: dict[str, Any], prefix: str) -> list[Diagnostic]:
    """A prefix-root target must not make the engine write outside its root."""
    if not prefix:
        return []
    out = []
    journal = manifest["engine"]["journal"]["dir"]
    paths = [("deployment.engines.{}.journal.dir".format(manifest["engine"]["id"]), journal)]
    if manifest["engine"]["flight_recorder"]:
        paths.append(
            (
                "deployment.engines.{}.flight_recorder.dir".format(manifest["engine"]["id"]),
                manifest["engine"]["flight_recorder"]["dir"],
            )
        )
    for name, ex in manifest["exchanges"].items():
        if ex["sim"]:
            paths.append((f"exchanges.{name}.sim.capture", ex["sim"]["capture"]))
    for name, path in model_paths(manifest).items():
        paths.append((f"strategies.{name}.params.model.path", path))
    for key, value in paths:
        if value.startswith("/") or ".." in Path(value).parts:
            out.append(
                Diagnostic(
                    key,
                    value,
                    "target.prefix_paths",
                    f"host {host!r} is a prefix root ({prefix}): paths the engine uses must be "
                    "relative and stay inside it",
                )
            )
    return out


def check_targets(project: Path, compiled: Compiled) -> None:
    """Every engine host has a target, and a prefix root keeps the engine's paths inside it."""
    diags: list[Diagnostic] = []
    for built in compiled.manifests:
        target = compiled.targets.get(built.host)
        if target is None:
            diags.append(_missing_target(built.host))
        else:
            diags += _check_paths(built.host, json.loads(built.text), _prefix(project, target))
    if diags:
        raise ConfigError([d.with_source(compiled.composed.source_of(d.path)) for d in diags])


def render(
    project: Path,
    compiled: Compiled,
    build_dir: Path,
    engine_binary: Path,
    out_dir: Path,
) -> Inventory:
    """Write `out_dir/hosts.yml` and `out_dir/host_vars/<host>.yml` (atomically) and return
    what each host is about to run. Raises ConfigError naming every host it cannot render."""
    check_targets(project, compiled)
    binary_sha = file_sha256(engine_binary)
    hosts: list[HostRelease] = []
    diags: list[Diagnostic] = []
    for built in compiled.manifests:
        manifest = json.loads(built.text)
        shipped, problems = _shipped(project, manifest)
        if problems:
            diags += problems
            continue
        target = compiled.targets[built.host]
        prefix = _prefix(project, target)
        release = shipped.release(built.content_sha256, binary_sha)
        hosts.append(
            HostRelease(
                host=built.host,
                engine_id=built.engine_id,
                release=release,
                content_sha256=built.content_sha256,
                prefix=prefix,
                manager=target.service_manager,
                vars=_host_vars(
                    compiled,
                    manifest,
                    target,
                    prefix,
                    release,
                    build_dir / built.filename,
                    engine_binary,
                    shipped,
                ),
            )
        )
    if diags:
        raise ConfigError([d.with_source(compiled.composed.source_of(d.path)) for d in diags])
    _write(out_dir, compiled.deployment, hosts)
    return Inventory(compiled.deployment, out_dir, binary_sha, hosts)


def metrics_target(listen: str, host: Mapping[str, Any]) -> str:
    """The `address:port` a Prometheus scrapes for an engine listening on `listen`: the
    host's address in place of an unspecified one (0.0.0.0, [::])."""
    address, _, port = listen.rpartition(":")
    if address in ("0.0.0.0", "[::]"):
        address = host["address"]
        address = f"[{address}]" if ":" in address else address
    return f"{address}:{port}"


def _host_vars(
    compiled: Compiled,
    manifest: dict[str, Any],
    target: Target,
    prefix: str,
    release: str,
    manifest_src: Path,
    engine_binary: Path,
    shipped: Shipped,
) -> dict[str, Any]:
    host = manifest["host"]
    cpu = host["cpu"]
    threads = host["threads"]
    pinned = [c for c in [*threads["feeds"].values(), threads["strategy"], threads["gateway"]]]
    pinned += [threads["housekeeping"]]
    pinned_cores = {c for c in pinned if c is not None}
    siblings = {str(c): cpulist([c]) for c in cpu["cores"]}
    for a, b in cpu["smt_siblings"]:
        siblings[str(a)] = siblings[str(b)] = cpulist([a, b])
    local = target.connection == "local"
    python = sys.executable if local else "/usr/bin/python3"
    connection: dict[str, Any] = (
        {"ansible_connection": "local"}
        if local
        else {
            "ansible_connection": "ssh",
            "ansible_host": host["address"],
            "ansible_user": target.ssh_user,
            "ansible_port": target.ssh_port,
        }
    )
    connection |= {"ansible_become": target.become, "ansible_python_interpreter": python}
    sims = sorted(n for n, ex in manifest["exchanges"].items() if ex["venue"] == "sim")
    return connection | {
        "host_tuning_prefix": prefix,
        "host_tuning_python": python,
        "host_tuning_apply_runtime": target.tune_runtime,
        "host_tuning_verify_tuning": target.verify_tuning,
        "host_tuning_cpus": cpulist(cpu["cores"]),
        "host_tuning_isolated": cpulist(cpu["isolated"]),
        "host_tuning_housekeeping": cpulist(cpu["housekeeping"]),
        "host_tuning_numa_nodes": [cpulist(n) for n in cpu["numa_nodes"]],
        "host_tuning_thread_siblings": siblings,
        "host_tuning_nic_name": host["nic"]["name"],
        "host_tuning_nic_numa_node": host["nic"]["numa_node"],
        "host_tuning_hugepage_kb": host["memory"]["hugepage_kb"],
        "host_tuning_hugepages": host["memory"]["hugepages"],
        "engine_prefix": prefix,
        "engine_python": python,
        "engine_id": manifest["engine"]["id"],
        "engine_deployment": compiled.deployment,
        "engine_mode": manifest["deployment"]["mode"],
        "engine_release": release,
        "engine_content_sha256": manifest["content_sha256"],
        "engine_manifest_src": str(manifest_src.resolve()),
        "engine_binary_src": str(engine_binary.resolve()),
        "engine_supervisor_src": str(SUPERVISOR_SRC),
        "engine_captures": [
            {"src": str(p), "dest": d} for d, p in sorted(shipped.captures.items())
        ],
        "engine_models": [{"src": str(p), "dest": d} for d, p in sorted(shipped.models.items())],
        "engine_onnxruntime_src": str(shipped.library) if shipped.library else "",
        "engine_sims": sims,
        "engine_control_endpoint": manifest["engine"]["bus"]["control"],
        "engine_metrics_target": metrics_target(manifest["engine"]["metrics"]["listen"], host),
        "engine_prometheus_file_sd": target.monitoring.prometheus_file_sd or "",
        "engine_grafana_provisioning": target.monitoring.grafana_provisioning or "",
        "engine_cpu_affinity": " ".join(
            str(c) for c in sorted(set(cpu["housekeeping"]) | pinned_cores)
        ),
        "engine_sim_cpu_affinity": " ".join(str(c) for c in sorted(cpu["housekeeping"])),
        "engine_service_manager": target.service_manager,
        "engine_service_user": target.service_user or "",
    }


def _write(out_dir: Path, deployment: str, hosts: list[HostRelease]) -> None:
    header = HEADER.format(deployment=deployment)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        inventory = {"all": {"children": {GROUP: {"hosts": {h.host: None for h in hosts}}}}}
        (staging / "hosts.yml").write_text(header + yaml.safe_dump(inventory, sort_keys=False))
        (staging / "host_vars").mkdir()
        for h in hosts:
            (staging / "host_vars" / f"{h.host}.yml").write_text(
                header + yaml.safe_dump(h.vars, sort_keys=True)
            )
        staging.chmod(0o755)
        old = None
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old.{os.getpid()}")
            out_dir.rename(old)
        staging.rename(out_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
