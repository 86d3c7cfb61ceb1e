"""The result of a study as a Hydra overlay, `conf/tuned/<study>.yaml`, selected with
`+tuned=<study>`: reviewed by `appliance plan`, rolled out by `appliance apply`, never applied by
the optimiser itself.

The file holds only the tuned keys, and a header naming the study, the trial, the data (files
and sha256), the in-sample and out-of-sample metrics and the manifest hash it was scored on. It
holds no timestamp and no storage location: the same study, seed and data write the same bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from appliance.research.data import format_utc as _utc
from appliance.research.data import sha256_file
from appliance.research.study import StudyPlan


def tree_of(overrides: list[str]) -> dict[str, Any]:
    """`a.b.c=3` overrides (as a trial writes them) -> a nested mapping."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    out: dict[str, Any] = {}
    for override in OverridesParser.create().parse_overrides(overrides):
        *parents, leaf = override.key_or_group.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = override.value()
    return out


def render(plan: StudyPlan, root: Path, choice: Any, optuna_name: str) -> str:
    fold = plan.folds[-1]
    lines = [
        "# @package _global_",
        f"# Tuned by `appliance optimize study={plan.name}`. Review it with",
        f"# `appliance plan +tuned={plan.name}`; roll it out with",
        f"# `appliance apply +tuned={plan.name}`.",
        f"# study:    {plan.name} ({plan.source}; Optuna study {optuna_name})",
        f"# tunes:    deployment {plan.study.deployment}"
        + (f", engine {plan.study.engine}" if plan.study.engine else ""),
        f"# trial:    {choice.trial}, chosen on fold {fold.index}'s training window "
        f"{_utc(fold.train[0])} to {_utc(fold.train[1])}",
    ]
    for f in plan.files:
        lines.append(f"# data:     {f} sha256:{sha256_file(root / f)}")
    lines.append(f"# in-sample:     {_metrics(choice.in_sample)}")
    lines.append(
        f"# out-of-sample: {_metrics(choice.out_of_sample)} "
        f"(test window {_utc(fold.test[0])} to {_utc(fold.test[1])})"
    )
    dsr = "n/a" if choice.dsr is None else f"{choice.dsr:.4f}"
    lines.append(
        f"# deflated Sharpe ratio: {dsr} (expected max Sharpe of the trials {choice.sr0:.4f})"
    )
    lines.append(f"# scored manifest: sha256:{choice.manifest_sha256}")
    body = yaml.safe_dump(tree_of(choice.overrides), sort_keys=True, default_flow_style=False)
    return "\n".join(lines) + "\n" + body


def _metrics(values: dict[str, float | None]) -> str:
    return ", ".join(f"{k} {'n/a' if v is None else format(v, '.6g')}" for k, v in values.items())


def write(path: Path, text: str) -> None:
    """Atomically: a reader sees the old overlay or the new one, never half of one."""
    from appliance.files import write_atomic

    write_atomic(path, text.encode())
