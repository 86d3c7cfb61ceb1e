"""Render, hash, write and load manifests (the contract in docs/manifest.md).

`render` turns a validated deployment into one canonical manifest per engine; `write_build`
puts them in `build/<deployment>/` all at once or not at all; `load` is the Python reader of
the contract: the structure in Python (pydantic), the semantic rules by the engine's own
validator (`rule_diagnostics`), so both refuse the same bad manifests by construction.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from appliance.config.diagnostics import MISSING, ConfigError, Diagnostic, from_validation_error
from appliance.config.schema import MANIFEST_VERSION, Manifest

INDEX_NAME = "index.json"


def canonical_payload(manifest: dict[str, Any]) -> bytes:
    """The bytes `content_sha256` covers: everything but the hash and the provenance."""
    payload = {k: v for k, v in manifest.items() if k not in ("content_sha256", "provenance")}
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def content_sha256(manifest: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_payload(manifest)).hexdigest()


def dumps(manifest: dict[str, Any]) -> str:
    """The file form: sorted keys, 2-space indent, final newline; byte-identical per input."""
    return json.dumps(manifest, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def seal(body: dict[str, Any], provenance: dict[str, Any]) -> dict[str, Any]:
    """Add version, provenance and the content hash to a manifest body."""
    manifest = {"manifest_version": MANIFEST_VERSION, **body, "provenance": provenance}
    manifest["content_sha256"] = content_sha256(manifest)
    return manifest


@dataclass(frozen=True)
class BuiltManifest:
    engine_id: str
    host: str
    text: str
    content_sha256: str
    # Manifest key path -> the config file (or override) it came from; for plans and reviews.
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def sources_filename(self) -> str:
        return f"{self.host}.sources.json"

    @property
    def filename(self) -> str:
        return f"{self.host}.manifest.json"

    @property
    def file_sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


def render_index(deployment: str, built: list[BuiltManifest]) -> str:
    index = {
        "deployment": deployment,
        "manifest_version": MANIFEST_VERSION,
        "manifests": {
            b.host: {
                "engine": b.engine_id,
                "file": b.filename,
                "file_sha256": b.file_sha256,
                "content_sha256": b.content_sha256,
            }
            for b in built
        },
    }
    return dumps(index)


def write_build(out_dir: Path, deployment: str, built: list[BuiltManifest]) -> Path:
    """Write every manifest plus the index into `out_dir/<deployment>/`, atomically.

    Files go to a sibling temporary directory first; only when all are written does it replace
    the previous build (rename), so a reader never sees a half-written build.
    """
    target = out_dir / deployment
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{deployment}.", dir=out_dir))
    try:
        for b in built:
            (staging / b.filename).write_text(b.text)
            (staging / b.sources_filename).write_text(dumps(b.sources))
        (staging / INDEX_NAME).write_text(render_index(deployment, built))
        for path in staging.iterdir():
            with path.open("rb") as fh:
                os.fsync(fh.fileno())
        staging.chmod(0o755)
        old = None
        if target.exists():
            old = out_dir / f".{deployment}.old.{os.getpid()}"
            target.rename(old)
        staging.rename(target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


# --- loading (the Python reader of the contract) -----------------------------------------


def load(text: str, base: Path | None = None) -> Manifest:
    """Parse and validate a manifest exactly as the engine does; raise ConfigError with all
    problems (paths as in the manifest: `host.threads.strategy`). Model files are checked
    against their sha256 relative to `base` (default: the working directory, as rt-engine)."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            [
                Diagnostic(
                    "",
                    None,
                    "manifest.json",
                    f"not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}",
                )
            ]
        ) from None
    if not isinstance(raw, dict):
        raise ConfigError([Diagnostic("", raw, "manifest.json", "a manifest is a JSON object")])
    version = raw.get("manifest_version")
    if version != MANIFEST_VERSION or isinstance(version, bool):
        raise ConfigError(
            [
                Diagnostic(
                    "manifest_version",
                    version,
                    "manifest.version",
                    f"manifest_version {version!r} is not supported (this reader speaks "
                    f"{MANIFEST_VERSION})",
                )
            ]
        )
    declared = raw.get("content_sha256")
    actual = content_sha256(raw)
    if declared != actual:
        raise ConfigError(
            [
                Diagnostic(
                    "content_sha256",
                    declared,
                    "manifest.hash",
                    f"content_sha256 mismatch: the manifest says {declared!r}, its content "
                    f"hashes to {actual}",
                )
            ]
        )
    try:
        manifest = Manifest.model_validate_json(text, strict=True, context={"manifest": True})
    except ValidationError as exc:
        raise ConfigError(from_validation_error(exc, [])) from None
    problems = rule_diagnostics(text, raw, base or Path.cwd())
    if problems:
        raise ConfigError(problems)
    return manifest


def rule_diagnostics(
    text: str, raw: dict[str, Any] | None = None, base: Path | None = None
) -> list[Diagnostic]:
    """The semantic rules of the contract on a manifest, as diagnostics with manifest paths
    (`host.threads.strategy`), each with the value at its path in `raw` (the parsed `text`).
    The rules have one implementation, the engine's (engine/manifest/src/validate.rs), called
    in process; with `base`, the model files the manifest names are checked against it too."""
    from appliance import engine

    try:
        found = engine.validate_manifest(text, base)
    except engine.ManifestError as exc:
        return [Diagnostic("", None, "manifest.structure", str(exc))]
    if found and raw is None:
        raw = json.loads(text)
    return [Diagnostic(v["path"], value_at(raw, v["path"]), v["rule"], v["message"]) for v in found]


_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def value_at(tree: Any, path: str) -> Any:
    """The value at a dotted path (`host.cpu.smt_siblings[1]`) of a JSON tree; MISSING if
    there is none."""
    node = tree
    for key, index in _PART.findall(path):
        if key and isinstance(node, dict) and key in node:
            node = node[key]
        elif index and isinstance(node, list) and int(index) < len(node):
            node = node[int(index)]
        else:
            return MISSING
    return node
