"""The alert rules shipped in monitoring/prometheus: valid for Prometheus (`promtool check
rules`) and each alert unit-tested on the series that must fire it and those that must not
(`promtool test rules`). promtool comes with Debian's `prometheus`, installed here when missing
(tests/debian.py)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests import debian
from tests.conftest import ROOT

RULES = ROOT / "monitoring/prometheus"


@pytest.fixture(scope="module")
def promtool() -> str:
    return debian.tool("promtool", "prometheus")


def run(promtool: str, *args: str) -> str:
    done = subprocess.run(
        [promtool, *args], cwd=RULES, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def alerts(path: Path) -> list[str]:
    return re.findall(r"^\s*- alert: (\w+)$", path.read_text(), flags=re.MULTILINE)


def test_the_rules_are_valid(promtool: str) -> None:
    out = run(promtool, "check", "rules", "py_rt.rules.yml")
    assert f"SUCCESS: {len(alerts(RULES / 'py_rt.rules.yml'))} rules found" in out


def test_every_alert_is_unit_tested_and_passes(promtool: str) -> None:
    tested = set(
        re.findall(
            r"alertname: (\w+)", (RULES / "py_rt.rules.test.yml").read_text(), flags=re.MULTILINE
        )
    )
    assert set(alerts(RULES / "py_rt.rules.yml")) == tested
    assert "SUCCESS" in run(promtool, "test", "rules", "py_rt.rules.test.yml")


def metric_names_in_rules() -> set[str]:
    """The engine's metric names the rules read (`rt_...`; `up` is Prometheus's own)."""
    text = (RULES / "py_rt.rules.yml").read_text()
    return set(re.findall(r"\b(rt_[a-z0-9_]+?)(?:_bucket)?\b[{\[ )]", text))


def test_the_rules_read_metrics_the_engine_serves() -> None:
    # Each name the rules use is one the engine renders (engine/runtime/src/metrics.rs):
    # a renamed metric cannot leave an alert that never fires.
    source = (ROOT / "engine/runtime/src/metrics.rs").read_text()
    names = metric_names_in_rules()
    assert names >= {"rt_risk_state", "rt_feed_state", "rt_engine_info", "rt_rate_limit"}
    for name in names:
        assert f'"{name}"' in source, f"{name} is not rendered by the engine"
