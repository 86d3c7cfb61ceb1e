"""Secrets are references (`env:NAME`, `file:/path`), never values.

The compiler refuses any literal that looks like a credential anywhere in the composed config,
and everything that prints config values (`show`, diagnostics, logs) goes through `redact`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

_REFERENCE = re.compile(r"^(env:[A-Z_][A-Z0-9_]*|file:/\S+)$")
# Key names whose values are credentials.
_SECRET_KEY = re.compile(r"(api_?key|secret|passw(or)?d|passphrase|token|private_?key)", re.I)
# A long run of key-alphabet characters mixing upper case, lower case and digits: the shape of
# exchange API keys (Binance's are 64 alphanumerics). Lower-case hex digests do not match.
_KEY_SHAPE = re.compile(r"^[A-Za-z0-9+/=_\-]{32,}$")


def is_reference(value: object) -> bool:
    return isinstance(value, str) and bool(_REFERENCE.fullmatch(value))


def looks_like_secret(value: object) -> bool:
    if not isinstance(value, str) or not _KEY_SHAPE.fullmatch(value):
        return False
    return (
        any(c.isupper() for c in value)
        and any(c.islower() for c in value)
        and any(c.isdigit() for c in value)
    )


def is_secret_key(path: str) -> bool:
    last = path.rsplit(".", 1)[-1]
    return bool(_SECRET_KEY.search(last))


def secret_literal_reason(path: str, value: object) -> str | None:
    """Why `value` at `path` is a literal secret, or None when it is acceptable."""
    if value is None or is_reference(value):
        return None
    if is_secret_key(path) and isinstance(value, str | int) and str(value) != "":
        return "a credential must be a reference (env:NAME or file:/path), not a literal value"
    if looks_like_secret(value):
        return (
            "this looks like a literal API key or secret; put it in the environment or a "
            "file and write a reference (env:NAME or file:/path)"
        )
    return None


def _marker(value: object) -> str:
    return f"<redacted {len(str(value))} characters>"


# Inside any text: a run of key-alphabet characters, and a value
# written after a credential's key name (`api_key=...`, `{api_secret: '...'}`).
_KEY_RUN = re.compile(r"[A-Za-z0-9+/_\-]{32,}")
_KEYED_VALUE = re.compile(
    r"(?P<key>[A-Za-z0-9_]*(?:api_?key|secret|passw(?:or)?d|passphrase|token|private_?key)"
    r"[A-Za-z0-9_]*)(?P<sep>\s*[:=]\s*)(?P<q>['\"]?)(?!<redacted )(?P<value>[^,}\]\s'\"]+)(?P=q)",
    re.I,
)


# Hydra's and YAML's ways of writing "no value": not a secret.
_NOTHING = frozenset({"null", "None", "~", "''", '""'})


def redact_text(text: str) -> str:
    """`text` with every literal secret in it replaced, wherever it sits: a plain value, a
    dict or list in an override, a quoted value, a key name, a message quoting any of them."""

    def keyed(m: re.Match[str]) -> str:
        value = m.group("value")
        if is_reference(value) or value in _NOTHING:
            return m.group(0)
        q = m.group("q")
        return f"{m.group('key')}{m.group('sep')}{q}{_marker(value)}{q}"

    def key_run(m: re.Match[str]) -> str:
        run = m.group(0)
        return _marker(run) if looks_like_secret(run) else run

    return _KEY_RUN.sub(key_run, _KEYED_VALUE.sub(keyed, text))


def redact_value(path: str, value: Any) -> Any:
    """What may be printed of `value` found at `path`: by position (a credential's key) and
    by content (a key-shaped literal anywhere inside it)."""
    if secret_literal_reason(path, value) is not None:
        return _marker(value)
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict | list):
        return redact(value, path)
    return value


def redact(tree: Any, path: str = "") -> Any:
    """A copy of a config tree with every literal secret (a value or a key) replaced."""
    if isinstance(tree, dict):
        return {
            redact_text(k) if isinstance(k, str) else k: redact(
                v, f"{path}.{k}" if path else str(k)
            )
            for k, v in tree.items()
        }
    if isinstance(tree, list):
        return [redact(v, f"{path}[{i}]") for i, v in enumerate(tree)]
    return redact_value(path, tree)


def iter_leaves(
    tree: Any, path: str = "", lists_are_leaves: bool = False
) -> Iterator[tuple[str, Any]]:
    if isinstance(tree, dict) and tree:
        for k, v in tree.items():
            yield from iter_leaves(v, f"{path}.{k}" if path else str(k), lists_are_leaves)
    elif isinstance(tree, list) and not lists_are_leaves:
        for i, v in enumerate(tree):
            yield from iter_leaves(v, f"{path}[{i}]")
    else:
        yield path, tree


def redact_override(override: str) -> str:
    """`key=value` as it may be printed: the value redacted when it is a literal secret (by
    its key or its shape), and every secret inside a dict, list or quoted value."""
    key, sep, value = override.partition("=")
    if sep and value not in _NOTHING and secret_literal_reason(key.lstrip("+~"), value):
        return f"{redact_text(key)}={_marker(value)}"
    return redact_text(override)
