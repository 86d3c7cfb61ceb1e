"""CLI output snapshots (exit code, stdout, stderr). Refresh with UPDATE_SNAPSHOTS=1 after an
intended change, and review the diff of tests/snapshots/ like any other change."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Run
from tests.test_compile import THREE_BROKEN_RULES

CASES: dict[str, list[str]] = {
    "compile_default": ["compile"],
    "compile_prod_example": ["compile", "deployment=prod_example"],
    "compile_three_broken_rules": ["compile", *THREE_BROKEN_RULES],
    "validate_default": ["validate"],
    "validate_json_three_broken_rules": ["validate", "--format", "json", *THREE_BROKEN_RULES],
    "compile_unknown_key": ["compile", "risk.max_dailyloss=5000"],
    "compile_unknown_group_option": ["compile", "deployment=prod"],
    "compile_literal_secret": [
        "compile",
        "deployment=prod_example",
        "exchanges.binance_spot.credentials.api_secret=Zk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju9",
    ],
    "compile_type_errors": [
        "compile",
        "risk.max_open_orders=many",
        "risk.max_daily_loss=-5",
        "hosts.local.memory.hugepage_kb=4096",
        "+strategies.mm_btcusdt.params.alpha=1",
    ],
    "show_paper_local": ["show"],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_cli_output(
    name: str, project: Path, cli: Callable[..., Run], snapshot: Callable[[str, str], None]
) -> None:
    run = cli(*CASES[name], root=project)
    snapshot(name, run.snapshot_text())
