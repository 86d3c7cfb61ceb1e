"""What a model is, for a reviewer: the metrics `appliance train` recorded for a model file,
found by its sha256 among `models/*/model.json` and `models/*/history/<sha256>.json` (every
training keeps its model.json there, so the model a plan replaces is still described).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def describer(root: Path) -> Callable[[str], str]:
    """`describe(sha256)` -> `models/x sha256:abcd1234 (OOS fold 2: auc 0.81, accuracy 0.7)`."""
    cache: dict[str, str] = {}

    def describe(sha: str) -> str:
        if sha not in cache:
            cache[sha] = _describe(root, sha)
        return cache[sha]

    return describe


def _describe(root: Path, sha: str) -> str:
    for meta_path in _candidates(root, sha):
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            continue
        if meta.get("sha256") != sha:
            continue
        final = meta.get("final") or {}
        metrics = final.get("metrics") or {}
        shown = ", ".join(
            f"{k} {_num(v)}" for k, v in sorted(metrics.items()) if not k.startswith("train_")
        )
        return (
            f"{meta.get('name', '?')} sha256:{sha[:12]} (out of sample, fold "
            f"{final.get('fold', '?')}: {shown or 'no metrics'})"
        )
    return f"sha256:{sha[:12]} (no model.json with this sha256 under models/)"


def _candidates(root: Path, sha: str) -> list[Path]:
    models = root / "models"
    return [*models.glob(f"*/history/{sha}.json"), *models.glob("*/model.json")]


def _num(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4g}"
