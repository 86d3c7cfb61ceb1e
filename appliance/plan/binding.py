"""What a saved plan binds: everything a roll-out would change, so that `appliance apply
PLAN` runs exactly what was reviewed or nothing.

A binding records the deployment, each host's manifest hash and release id (manifest, engine
binary, captures, models, ONNX Runtime library: appliance/deploy/inventory.release_id), the
engine binary's sha256, each host's target (how it is reached and where the engine goes), the
hash of the rendered Ansible inventory, the content hash of `ansible/` (the roles, their
templates such as the systemd units, and the playbooks) and the roll-out's soak per host.
`appliance plan --out` writes it; `appliance apply PLAN` computes it again from what it is
about to run and refuses on any difference, naming it.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from appliance.config.compiler import Compiled
from appliance.config.diagnostics import ConfigError, Diagnostic
from appliance.config.models import sha256_file

BINDING_VERSION = 2


@dataclass(frozen=True)
class Binding:
    deployment: str
    manifests: dict[str, str]
    releases: dict[str, str]
    binary_sha256: str
    targets: dict[str, str]
    inventory_sha256: str
    roles_sha256: str
    soak_seconds: int

    def to_json(self) -> dict[str, Any]:
        return {"binding_version": BINDING_VERSION, **asdict(self)}

    @classmethod
    def from_json(cls, data: Any) -> Binding | None:
        if not isinstance(data, dict) or data.get("binding_version") != BINDING_VERSION:
            return None
        try:
            return cls(**{k: v for k, v in data.items() if k != "binding_version"})
        except TypeError:
            return None


def find_binary(project: Path) -> Path:
    """The engine binary a roll-out ships: the project's, else the one built next to this
    package (a scratch project has none). Raises EngineNotFound."""
    from appliance.engine import EngineNotFound, engine_binary

    try:
        return engine_binary(project)
    except EngineNotFound:
        return engine_binary()


def tree_sha256(root: Path) -> str:
    """Content hash of a directory: each file's path and sha256 (hidden entries and Python
    caches left out); symbolic links are followed."""
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__pycache__")
        for name in sorted(filenames):
            if name.startswith(".") or name.endswith(".pyc"):
                continue
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            digest.update(f"{rel} {sha256_file(path)}\n".encode())
    return digest.hexdigest()


def _target_sha256(compiled: Compiled, host: str) -> str:
    target = compiled.targets.get(host)
    text = json.dumps(target.model_dump(mode="json") if target else None, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def of_inventory(project: Path, compiled: Compiled, inventory: Any, soak_seconds: int) -> Binding:
    """The binding of an inventory `appliance/deploy/inventory.render` wrote, rolled out
    with this soak."""
    return Binding(
        deployment=compiled.deployment,
        manifests={m.host: m.content_sha256 for m in compiled.manifests},
        releases={h.host: h.release for h in inventory.hosts},
        binary_sha256=inventory.binary_sha256,
        targets={m.host: _target_sha256(compiled, m.host) for m in compiled.manifests},
        inventory_sha256=tree_sha256(inventory.directory),
        roles_sha256=tree_sha256(project / "ansible"),
        soak_seconds=soak_seconds,
    )


def compute(project: Path, compiled: Compiled, soak_seconds: int) -> Binding:
    """What `appliance apply` would run for this compile, rendered in a scratch directory
    (the build directory is where apply writes it: the host vars name it)."""
    from appliance.deploy import inventory as inv
    from appliance.engine import EngineNotFound

    try:
        binary = find_binary(project)
    except EngineNotFound as exc:
        raise ConfigError(
            [Diagnostic("--out", None, "plan.binding", f"a saved plan binds the binary: {exc}")]
        ) from None
    build_dir = project / "build" / compiled.deployment
    with tempfile.TemporaryDirectory(prefix="appliance-plan-") as tmp:
        inventory = inv.render(project, compiled, build_dir, binary, Path(tmp) / "inventory")
        return of_inventory(project, compiled, inventory, soak_seconds)


def differences(saved: Binding, now: Binding) -> list[str]:
    """Each way `now` differs from what the plan reviewed, named."""
    out: list[str] = []

    def short(value: str | None) -> str:
        return "(none)" if value is None else value[:16]

    if saved.deployment != now.deployment:
        out.append(f"deployment: plan {saved.deployment!r}, now {now.deployment!r}")
    per_host = (
        ("manifest", saved.manifests, now.manifests),
        ("release (manifest, binary, captures, models)", saved.releases, now.releases),
        ("target", saved.targets, now.targets),
    )
    for what, old, new in per_host:
        for host in sorted(set(old) | set(new)):
            if old.get(host) != new.get(host):
                out.append(
                    f"{what} of host {host}: plan {short(old.get(host))}, "
                    f"now {short(new.get(host))}"
                )
    for what, a, b in (
        ("engine binary", saved.binary_sha256, now.binary_sha256),
        ("rendered inventory", saved.inventory_sha256, now.inventory_sha256),
        ("ansible roles and playbooks", saved.roles_sha256, now.roles_sha256),
    ):
        if a != b:
            out.append(f"{what}: plan {short(a)}, now {short(b)}")
    if saved.soak_seconds != now.soak_seconds:
        out.append(f"soak per host: plan {saved.soak_seconds}s, now {now.soak_seconds}s")
    return out
