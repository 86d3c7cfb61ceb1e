"""`appliance show`: the composed config, secrets redacted, each value with its source file."""

from __future__ import annotations

from typing import Any

import yaml

from appliance import jsonout
from appliance.config.compose import Composed
from appliance.config.secrets import iter_leaves, redact, redact_text

COMMENT_COLUMN = 60


def _scalar(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


def render_yaml(composed: Composed) -> str:
    lines: list[str] = []
    _emit(redact(composed.data), "", 0, composed, lines)
    return "\n".join(lines) + "\n"


def _emit(
    tree: dict[str, Any], path: str, depth: int, composed: Composed, lines: list[str]
) -> None:
    pad = "  " * depth
    for key, value in tree.items():
        child = f"{path}.{key}" if path else str(key)
        if isinstance(value, dict) and value:
            lines.append(f"{pad}{key}:")
            _emit(value, child, depth + 1, composed, lines)
            continue
        text = f"{pad}{key}: {_scalar(value)}"
        source = composed.source_of(child)
        if source:
            source = redact_text(source)
            text = f"{text.ljust(COMMENT_COLUMN - 1)} # {source}"
        lines.append(text)


def render_json(composed: Composed) -> str:
    redacted = redact(composed.data)
    values = {
        path: {"value": value, "source": redact_text(composed.source_of(path) or "") or None}
        for path, value in iter_leaves(redacted)
    }
    return jsonout.dumps(
        {
            "deployment": composed.deployment_name,
            "choices": composed.choices,
            "overrides": composed.overrides,
            "values": values,
        },
        indent=2,
        sort_keys=True,
    )
