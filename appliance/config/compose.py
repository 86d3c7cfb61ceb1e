"""Compose `conf/` with Hydra and record where every value came from.

Hydra gives the composed tree and the chosen option of each group; per-key provenance is
rebuilt by replaying the defaults tree (the same files, in the same order) and, last, the
command-line overrides. A diagnostic then names `conf/risk/prod.yaml` or the override.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from appliance.config.diagnostics import ConfigError, Diagnostic
from appliance.config.secrets import redact_override

# The replay reads the same files Hydra did; the C loader when PyYAML has it (compile time).
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class Composed:
    """A composed config: the plain tree, the group choices and each leaf's source file."""

    root: Path
    data: dict[str, Any]
    choices: dict[str, str]
    overrides: list[str]
    sources: dict[str, str] = field(default_factory=dict)
    # Config path -> the characters written for that number in its file or override: YAML
    # and Hydra read `0.00001` and `1e3` as floats, whose repr is not what the user wrote.
    texts: dict[str, str] = field(default_factory=dict)
    # The composed tree held `${...}` interpolations (resolved in `data`): a value override
    # may change what they resolve to, so `with_values` refuses to take the shortcut.
    interpolated: bool = False
    # Overrides Hydra could not apply (`compose(collect=True)`): the tree is composed without
    # them, and the compiler reports these with every other problem.
    errors: list[Diagnostic] = field(default_factory=list)

    @property
    def deployment_name(self) -> str:
        return self.choices.get("deployment", "custom")

    def source_of(self, path: str) -> str | None:
        """The file (or override) that set `path`, or the nearest enclosing key's source."""
        probe = path
        while probe:
            if probe in self.sources:
                return self.sources[probe]
            # A subtree: the override that changed part of it, else the file of its first key.
            below = [
                src
                for key, src in self.sources.items()
                if key.startswith((probe + ".", probe + "["))
            ]
            if below:
                edited = [src for src in below if src.startswith("command line")]
                return (edited or below)[0]
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


def compose(root: Path, overrides: Sequence[str], collect: bool = False) -> Composed:
    """Compose `root/conf` with Hydra overrides; user errors become diagnostics.

    By default any composition error raises. With `collect`, an override Hydra cannot apply
    is reported on its own (every bad override, not only the first) in `Composed.errors`,
    and the config is composed from the others so the caller can check the rest of it.
    """
    try:
        return _compose(root, overrides)
    except ConfigError:
        if not collect or not overrides:
            raise
    # Group choices first (Hydra applies them before values whatever their order), then
    # each override on top of those that applied.
    ordered = sorted(overrides, key=lambda o: not _is_group_like(o))
    accepted: list[str] = []
    errors: list[Diagnostic] = []
    for override in ordered:
        try:
            _compose(root, [*accepted, override])
        except ConfigError as err:
            errors += [
                Diagnostic(
                    path=_override_path(override),
                    value=redact_override(override),
                    rule=d.rule,
                    message=d.message,
                    source=f"command line override {redact_override(override)}",
                )
                for d in err.diagnostics
            ]
            continue
        accepted.append(override)
    composed = _compose(root, [o for o in overrides if o in accepted])
    composed.errors = errors
    return composed


def _is_group_like(override: str) -> bool:
    key = override.partition("=")[0].lstrip("+~")
    return "@" in key or "." not in key


def _override_path(override: str) -> str:
    """The config path an override names: its key, or the package of `group@package`."""
    key = override.partition("=")[0].lstrip("+~")
    group, _, package = key.partition("@")
    return package or group


def _compose(root: Path, overrides: Sequence[str]) -> Composed:
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
        key = _override_key(exc, overrides)
        raise ConfigError(
            [
                Diagnostic(
                    path=key,
                    value=[redact_override(o) for o in overrides],
                    rule="compose",
                    message=message,
                    source=_override_source(key, overrides),
                )
            ]
        ) from None
    if not isinstance(data, dict):  # pragma: no cover - the root config is always a mapping
        raise ConfigError([Diagnostic("", data, "compose", "the composed config is not a map")])
    tree = {str(k): v for k, v in data.items()}
    composed = Composed(
        root=root, data=tree, choices=choices, overrides=task, interpolated=interpolated
    )
    composed.sources, composed.texts = _replay_sources(conf, root, choices, list(overrides), task)
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
    composed.texts = dict(base.texts)
    composed.sources = _override_sources(
        dict(base.sources), list(overrides), added, base.choices, composed.texts
    )
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
    """The path of the override Hydra's error is about (the last one when it names none:
    with `collect`, the override just added)."""
    text = str(exc)
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        group = key.partition("@")[0]
        if key and (key in text or f"'{group}/" in text):
            return _override_path(override)
    return _override_path(overrides[-1]) if overrides else "conf"


def _override_source(path: str, overrides: Sequence[str]) -> str:
    for override in overrides:
        if _override_path(override) == path:
            return f"command line override {redact_override(override)}"
    return "command line" if overrides else "conf/config.yaml"


def _replay_sources(
    conf: Path, root: Path, choices: dict[str, str], raw: list[str], overrides: list[str]
) -> tuple[dict[str, str], dict[str, str]]:
    """Each leaf's source (file or override) and the text of each number, in Hydra's order.
    `raw` are the overrides as given (their numbers' text), `overrides` as shown (redacted)."""
    sources: dict[str, str] = {}
    texts: dict[str, str] = {}
    _walk(conf, root, "config", "", choices, sources, texts)
    for override in overrides:
        # A group added on the command line (`+tuned=mm_paper_local`) is composed after the
        # primary config's defaults: attribute its values to its file.
        key, _, option = override.partition("=")
        if key.startswith("+") and key[1:] in choices and "@" not in key:
            group = key[1:]
            group_package = group.replace("/", ".")
            _walk(conf, root, f"{group}/{option}", group_package, choices, sources, texts)
    return _override_sources(sources, raw, overrides, choices, texts), texts


def _override_sources(
    sources: dict[str, str],
    raw: list[str],
    overrides: list[str],
    choices: dict[str, str],
    texts: dict[str, str],
) -> dict[str, str]:
    for given, override in zip(raw, overrides, strict=True):
        deletion = override.startswith("~")
        if "=" not in override and not deletion:
            continue
        key = override.partition("=")[0].lstrip("+~")
        if "@" in key or key in choices:
            continue  # a group choice: its file is already attributed by the replay
        replaced = sorted({sources.pop(k) for k in list(sources) if _under(k, key)})
        if deletion:
            note = f" (deletes the value of {', '.join(replaced)})" if replaced else ""
            sources[key] = f"command line deletion {override}{note}"
        else:
            note = f" (replaces {', '.join(replaced)})" if replaced else ""
            sources[key] = f"command line override {override}{note}"
        for k in [k for k in texts if _under(k, key)]:
            del texts[k]
        texts.update(override_texts([given]))
    return sources


def _under(path: str, key: str) -> bool:
    return path == key or path.startswith((key + ".", key + "["))


def _walk(
    conf: Path,
    root: Path,
    name: str,
    package: str,
    choices: dict[str, str],
    sources: dict[str, str],
    texts: dict[str, str],
) -> None:
    path = conf / f"{name}.yaml"
    try:
        text = path.read_text()
    except OSError:
        return
    if "# @package _global_" in text:
        package = ""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        loaded = loader.construct_document(node) if node is not None else {}
    finally:
        loader.dispose()
    if not isinstance(loaded, dict):
        return
    file_texts: dict[str, str] = {}
    _node_texts(node, package, file_texts)
    body = {k: v for k, v in loaded.items() if k != "defaults"}
    rel = path.relative_to(root).as_posix()
    entries = list(loaded.get("defaults") or [])
    if "_self_" not in entries:
        entries.append("_self_")
    for entry in entries:
        if entry == "_self_":
            _attribute(body, package, rel, sources, texts, file_texts)
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
        _walk(conf, root, f"{group}/{chosen}", child_package, choices, sources, texts)


def _node_texts(node: Any, path: str, out: dict[str, str]) -> None:
    """The text of every plain (unquoted) scalar under `node`, by config path."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if path == "" and key.value == "defaults":
                continue
            _node_texts(value, f"{path}.{key.value}" if path else str(key.value), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _node_texts(item, f"{path}[{i}]", out)
    elif isinstance(node, yaml.ScalarNode) and not node.style:  # plain: None, or "" (C)
        out[path] = node.value


def _attribute(
    tree: Any,
    prefix: str,
    rel: str,
    sources: dict[str, str],
    texts: dict[str, str],
    file_texts: dict[str, str],
) -> None:
    if isinstance(tree, dict) and tree:
        for k, v in tree.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            _attribute(v, key, rel, sources, texts, file_texts)
    else:
        for existing in [k for k in sources if k.startswith(prefix + ".")]:
            del sources[existing]
        sources[prefix] = rel
        for existing in [k for k in texts if _under(k, prefix)]:
            del texts[existing]
        texts.update((k, t) for k, t in file_texts.items() if _under(k, prefix))


# --- source text of numbers ------------------------------------------------------------------
# YAML and Hydra read `0.00001` and `1e3` as floats, whose repr is not what the user wrote
# (`1e-05`, `1000.0`). Decimal fields take the characters as written: every float in the
# composed tree is swapped for its source text, read from the same files and overrides.


class _FloatText(float):
    """A float that remembers the characters it was parsed from."""

    text: str


def _float_visitor() -> Any:
    from hydra.core.override_parser.overrides_visitor import HydraOverrideVisitor
    from hydra.grammar.gen.OverrideLexer import OverrideLexer

    class Visitor(HydraOverrideVisitor):
        def _createPrimitive(self, ctx: Any) -> Any:
            value = super()._createPrimitive(ctx)
            if type(value) is float:
                for child in ctx.getChildren():
                    if getattr(child, "symbol", None) and child.symbol.type == OverrideLexer.FLOAT:
                        out = _FloatText(value)
                        out.text = child.symbol.text
                        return out
            return value

    return Visitor


def override_texts(overrides: Sequence[str]) -> dict[str, str]:
    """Config path -> the characters written, for every float in the value overrides."""
    from antlr4 import CommonTokenStream, InputStream  # type: ignore[import-untyped]
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.overrides_visitor import HydraErrorListener
    from hydra.core.override_parser.types import Override
    from hydra.errors import HydraException
    from hydra.grammar.gen.OverrideLexer import OverrideLexer
    from hydra.grammar.gen.OverrideParser import OverrideParser

    functions = OverridesParser.create().functions
    visitor_type = _float_visitor()
    out: dict[str, str] = {}
    for line in overrides:
        try:
            listener = HydraErrorListener()
            lexer = OverrideLexer(InputStream(line))
            lexer.removeErrorListeners()
            lexer.addErrorListener(listener)
            parser = OverrideParser(CommonTokenStream(lexer))
            parser.removeErrorListeners()
            parser.addErrorListener(listener)
            parsed = visitor_type(functions).visit(parser.override())  # type: ignore[no-untyped-call]
        except (HydraException, AttributeError, TypeError, ValueError):
            continue  # Hydra's own compose reports a malformed override
        if not isinstance(parsed, Override) or parsed.is_sweep_override():
            continue
        key = parsed.key_or_group
        for k in [k for k in out if k == key or k.startswith((key + ".", key + "["))]:
            del out[k]
        _collect_float_texts(parsed._value, key, out)
    return out


def _collect_float_texts(value: Any, path: str, out: dict[str, str]) -> None:
    if isinstance(value, _FloatText):
        out[path] = value.text
    elif isinstance(value, dict):
        for k, v in value.items():
            _collect_float_texts(v, f"{path}.{k}", out)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _collect_float_texts(v, f"{path}[{i}]", out)


def with_source_texts(tree: Any, texts: dict[str, str], path: str = "") -> Any:
    """`tree` with every float replaced by the characters written for it (when known and they
    read as that very float), so a decimal field sees `0.00001`, `1e3` or `inf` as written."""
    if isinstance(tree, dict):
        return {
            k: with_source_texts(v, texts, f"{path}.{k}" if path else str(k))
            for k, v in tree.items()
        }
    if isinstance(tree, list):
        return [with_source_texts(v, texts, f"{path}[{i}]") for i, v in enumerate(tree)]
    if type(tree) is float and path in texts:
        text = texts[path]
        try:
            read = float(text)
        except ValueError:
            return tree
        if read == tree or (math.isnan(read) and math.isnan(tree)):
            return text
    return tree
