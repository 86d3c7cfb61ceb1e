"""Compose `conf/` with Hydra and record where every value came from.

Hydra gives the composed tree and the chosen option of each group; per-key provenance is
rebuilt by replaying the defaults tree (the same files, in the same order) and, last, the
command-line overrides. A diagnostic then names `conf/risk/prod.yaml` or the override.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from appliance.config.diagnostics import ConfigError, Diagnostic
from appliance.config.secrets import redact_override


@dataclass
class Composed:
    """A composed config: the plain tree, the group choices and each leaf's source file."""

    root: Path
    data: dict[str, Any]
    choices: dict[str, str]
    overrides: list[str]
    sources: dict[str, str] = field(default_factory=dict)
    # The composed tree held `${...}` interpolations (resolved in `data`): a value override
    # may change what they resolve to, so `with_values` refuses to take the shortcut.
    interpolated: bool = False

    @property
    def deployment_name(self) -> str:
        return self.choices.get("deployment", "custom")

    def source_of(self, path: str) -> str | None:
        """The file (or override) that set `path`, or the nearest enclosing key's source."""
        probe = path
        while probe:
            if probe in self.sources:
                return self.sources[probe]
            for prefix in (probe + ".", probe + "["):
                for key, src in self.sources.items():
                    if key.startswith(prefix):
                        return src
            probe = _parent(probe)
        return None


def _parent(path: str) -> str:
    if path.endswith("]"):
        return path[: path.rindex("[")]
    return path.rsplit(".", 1)[0] if "." in path else ""


def find_root(start: Path | None = None) -> Path:
    """The project root: `$APPLIANCE_ROOT`, else the nearest parent holding conf/config.yaml."""
    env = os.environ.get("APPLIANCE_ROOT")
    if env:
        return Path(env).resolve()
    here = (start or Path.cwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "conf" / "config.yaml").is_file():
            return candidate
    bundled = Path(__file__).resolve().parents[2]
    if (bundled / "conf" / "config.yaml").is_file():
        return bundled
    raise ConfigError(
        [
            Diagnostic(
                path="conf",
                value=str(here),
                rule="project.root",
                message="no conf/config.yaml here or in any parent directory "
                "(set APPLIANCE_ROOT or run inside a py_rt project)",
            )
        ]
    )


def compose(root: Path, overrides: Sequence[str]) -> Composed:
    """Compose `root/conf` with Hydra overrides; user errors become diagnostics."""
    # Hydra is imported here, not at module import, so `appliance --help` stays fast.
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf, open_dict
    from omegaconf.errors import OmegaConfBaseException

    conf = (root / "conf").resolve()
    try:
        with initialize_config_dir(config_dir=str(conf), version_base="1.3", job_name="appliance"):
            cfg = hydra_compose("config", overrides=list(overrides), return_hydra_config=True)
        choices = {
            str(k): str(v)
            for k, v in cfg.hydra.runtime.choices.items()
            if not str(k).startswith("hydra/") and v is not None
        }
        task = [redact_override(str(o)) for o in cfg.hydra.overrides.task]
        with open_dict(cfg):
            del cfg["hydra"]
        data = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
        interpolated = "${" in repr(OmegaConf.to_container(cfg, resolve=False))
    except (HydraException, OmegaConfBaseException, ValueError, TypeError, KeyError) as exc:
        # Hydra raises plain ValueError for some bad overrides (`deployment=0`): all of these
        # are about the user's input, and Hydra's own code is the only code in this block.
        message = _hydra_message(exc)
        for override in overrides:
            # Hydra quotes the offending override; never echo a literal secret back.
            if redact_override(override) != override:
                message = message.replace(override.partition("=")[2], "<redacted>")
        raise ConfigError(
            [
                Diagnostic(
                    path=_override_key(exc, overrides),
                    value=[redact_override(o) for o in overrides],
                    rule="compose",
                    message=message,
                    source="command line" if overrides else "conf/config.yaml",
                )
            ]
        ) from None
    if not isinstance(data, dict):  # pragma: no cover - the root config is always a mapping
        raise ConfigError([Diagnostic("", data, "compose", "the composed config is not a map")])
    tree = {str(k): v for k, v in data.items()}
    composed = Composed(
        root=root, data=tree, choices=choices, overrides=task, interpolated=interpolated
    )
    composed.sources = _replay_sources(conf, root, choices, task)
    return composed


def with_values(base: Composed, overrides: Sequence[str]) -> Composed | None:
    """`base` with more value overrides applied, exactly as Hydra would compose them, without
    composing again (a study compiles hundreds of trials of one deployment).

    Only plain changes of existing leaf values qualify (`a.b=3`, `a.list=[x,y]`); anything
    else (a group choice, `+`/`~`, a subtree, a sweep, interpolations in the tree) returns None
    and the caller composes with Hydra. Overrides are parsed by Hydra's own parser, so values
    have the types Hydra would give them.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import OverrideType
    from hydra.errors import HydraException

    if base.interpolated:
        return None
    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except HydraException:
        return None  # Hydra's compose reports it, with its own message
    data = copy.deepcopy(base.data)
    for override in parsed:
        key = override.key_or_group
        if (
            override.type is not OverrideType.CHANGE
            or override.package is not None
            or override.is_sweep_override()
            or key in base.choices
        ):
            return None
        *parents, leaf = key.split(".")
        node: Any = data
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict) or leaf not in node or isinstance(node[leaf], dict):
            return None
        node[leaf] = _plain(override.value())
    added = [redact_override(o) for o in overrides]
    composed = Composed(
        root=base.root,
        data=data,
        choices=dict(base.choices),
        overrides=[*base.overrides, *added],
        interpolated=False,
    )
    composed.sources = _override_sources(dict(base.sources), added, base.choices)
    return composed


def _plain(value: Any) -> Any:
    """Hydra's parsed value as plain data (as `OmegaConf.to_container` would give it)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _hydra_message(exc: BaseException) -> str:
    """Hydra's first line, plus the part that says why (the cause, or the options there are)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    message = lines[0] if lines else type(exc).__name__
    if "Available options" in str(exc):
        start = next(i for i, ln in enumerate(lines) if ln.startswith("Available options"))
        options = [
            ln for ln in lines[start + 1 :] if not ln.startswith(("Config search", "provider="))
        ]
        message += f" (available: {', '.join(options)})"
    cause = exc.__cause__
    if cause is not None and str(cause).strip():
        message = f"{message.rstrip('.')}: {str(cause).strip().splitlines()[0]}"
    elif len(lines) > 1 and lines[1].startswith("To append"):
        message += f" ({lines[1][0].lower()}{lines[1][1:]})"
    return message


def _override_key(exc: Exception, overrides: Sequence[str]) -> str:
    text = str(exc)
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if key and key in text:
            return key
    return "overrides"


def _replay_sources(
    conf: Path, root: Path, choices: dict[str, str], overrides: list[str]
) -> dict[str, str]:
    sources: dict[str, str] = {}
    _walk(conf, root, "config", "", choices, sources)
    for override in overrides:
        # A group added on the command line (`+tuned=mm_paper_local`) is composed after the
        # primary config's defaults: attribute its values to its file.
        key, _, option = override.partition("=")
        if key.startswith("+") and key[1:] in choices and "@" not in key:
            group = key[1:]
            _walk(conf, root, f"{group}/{option}", group.replace("/", "."), choices, sources)
    return _override_sources(sources, overrides, choices)


def _override_sources(
    sources: dict[str, str], overrides: list[str], choices: dict[str, str]
) -> dict[str, str]:
    for override in overrides:
        if "=" not in override:
            continue
        key, _ = override.split("=", 1)
        key = key.lstrip("+~")
        if "@" in key or key in choices:
            continue  # a group choice: its file is already attributed by the replay
        replaced = sorted(
            {sources.pop(k) for k in list(sources) if k == key or k.startswith(key + ".")}
        )
        note = f" (replaces {', '.join(replaced)})" if replaced else ""
        sources[key] = f"command line override {override}{note}"
    return sources


def _walk(
    conf: Path,
    root: Path,
    name: str,
    package: str,
    choices: dict[str, str],
    sources: dict[str, str],
) -> None:
    path = conf / f"{name}.yaml"
    try:
        text = path.read_text()
    except OSError:
        return
    if "# @package _global_" in text:
        package = ""
    loaded = yaml.safe_load(text) or {}
    if not isinstance(loaded, dict):
        return
    body = {k: v for k, v in loaded.items() if k != "defaults"}
    rel = path.relative_to(root).as_posix()
    entries = list(loaded.get("defaults") or [])
    if "_self_" not in entries:
        entries.append("_self_")
    for entry in entries:
        if entry == "_self_":
            _attribute(body, package, rel, sources)
            continue
        if not isinstance(entry, dict) or len(entry) != 1:
            continue
        ((raw_key, option),) = entry.items()
        key = str(raw_key).removeprefix("override ").lstrip("/")
        group, _, pkg = key.partition("@")
        chosen = choices.get(key, option)
        if chosen is None:
            continue
        child_package = pkg if pkg else group.replace("/", ".")
        _walk(conf, root, f"{group}/{chosen}", child_package, choices, sources)


def _attribute(tree: Any, prefix: str, rel: str, sources: dict[str, str]) -> None:
    if isinstance(tree, dict) and tree:
        for k, v in tree.items():
            _attribute(v, f"{prefix}.{k}" if prefix else str(k), rel, sources)
    else:
        for existing in [k for k in sources if k.startswith(prefix + ".")]:
            del sources[existing]
        sources[prefix] = rel
