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
    return isinstance(value, str) and bool(_REFERENCE.match(value))


def looks_like_secret(value: object) -> bool:
    if not isinstance(value, str) or not _KEY_SHAPE.match(value):
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


def redact_value(path: str, value: Any) -> Any:
    if secret_literal_reason(path, value) is not None:
        return f"<redacted {len(str(value))} characters>"
    return value


def redact(tree: Any, path: str = "") -> Any:
    """A copy of a config tree with every literal secret replaced by a marker."""
    if isinstance(tree, dict):
        return {k: redact(v, f"{path}.{k}" if path else str(k)) for k, v in tree.items()}
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
    """`key=value` with the value redacted when it is a literal secret."""
    key, sep, value = override.partition("=")
    if not sep:
        return override
    path = key.lstrip("+~")
    redacted = redact_value(path, value)
    return f"{key}={redacted}" if redacted is not value else override
