"""Where the two sides of a plan come from: a build directory, a git ref, the last apply."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
import tempfile
from collections.abc import Sequence
from io import BytesIO
from pathlib import Path

from appliance.config.compiler import Compiled, compile_config
from appliance.config.diagnostics import ConfigError, Diagnostic
from appliance.config.manifest import INDEX_NAME
from appliance.plan.diff import Side

DEPLOYED_DIR = Path("state") / "deployed"


def from_compiled(compiled: Compiled, label: str = "config") -> Side:
    return Side(
        manifests={m.host: json.loads(m.text) for m in compiled.manifests},
        sources={m.host: dict(m.sources) for m in compiled.manifests},
        label=label,
    )


def from_build(directory: Path, label: str | None = None) -> Side:
    """A build directory (`build/<deployment>/`, or a deployed record of one)."""
    index_path = directory / INDEX_NAME
    try:
        index = json.loads(index_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(
            [
                Diagnostic(
                    str(directory),
                    None,
                    "plan.side",
                    f"not a build directory ({index_path}: {exc})",
                )
            ]
        ) from None
    manifests = {}
    sources = {}
    for host, entry in index["manifests"].items():
        manifests[host] = json.loads((directory / entry["file"]).read_text())
        src = directory / f"{host}.sources.json"
        sources[host] = json.loads(src.read_text()) if src.is_file() else {}
    return Side(manifests, sources, label or str(directory))


def from_git(root: Path, ref: str, overrides: Sequence[str]) -> Side:
    """Compile `conf/` as it was at a git ref (with the same overrides)."""
    try:
        archive = subprocess.run(
            ["git", "-C", str(root), "archive", "--format=tar", ref, "conf"],
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        raise ConfigError(
            [
                Diagnostic(
                    "--against",
                    ref,
                    "plan.git_ref",
                    f"cannot read conf/ at git ref {ref!r}: "
                    f"{detail.decode(errors='replace').strip() or exc}",
                )
            ]
        ) from None
    with tempfile.TemporaryDirectory(prefix="appliance-plan-") as tmp:
        scratch = Path(tmp)
        with tarfile.open(fileobj=BytesIO(archive)) as tar:
            tar.extractall(scratch, filter="data")
        if (root / "data").exists():
            os.symlink(root / "data", scratch / "data")
        compiled = compile_config(scratch, overrides)
    return from_compiled(compiled, label=f"git:{ref}")


def resolve(root: Path, spec: str, overrides: Sequence[str], deployment: str) -> Side:
    """`spec` is a build directory (or a build root holding `<deployment>/`) or a git ref."""
    path = Path(spec)
    if path.is_dir():
        resolved = path.resolve()
        label = resolved.relative_to(root).as_posix() if resolved.is_relative_to(root) else spec
        if (path / INDEX_NAME).is_file():
            return from_build(path, label)
        if (path / deployment / INDEX_NAME).is_file():
            return from_build(path / deployment, f"{label}/{deployment}")
        raise ConfigError(
            [Diagnostic("--against", spec, "plan.side", f"{spec} holds no build of {deployment!r}")]
        )
    return from_git(root, spec, overrides)


def deployed(root: Path, deployment: str) -> Side:
    """What the last `appliance apply` recorded; empty when nothing was applied yet."""
    directory = root / DEPLOYED_DIR / deployment
    if (directory / INDEX_NAME).is_file():
        return from_build(directory, label="deployed")
    return Side({}, {}, label="nothing deployed")
