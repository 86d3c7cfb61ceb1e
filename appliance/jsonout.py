"""Strict JSON for every `--format json` output: what any RFC 8259 parser accepts.

Python's `json` writes `NaN` and `Infinity` for non-finite floats, which strict parsers (and
`jq`, JavaScript, Rust's serde_json) refuse. Here such a value is written as a string
("nan", "inf", "-inf"), and `allow_nan=False` makes any value that slipped through an error
in our code rather than invalid output.
"""

from __future__ import annotations

import json
import math
from typing import Any


def strict(value: Any) -> Any:
    """`value` with every non-finite float replaced by its name as a string."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict(v) for v in value]
    return value


def dumps(value: Any, **kwargs: Any) -> str:
    """`json.dumps` of `value` made strict (see the module doc)."""
    return json.dumps(strict(value), allow_nan=False, **kwargs)
