"""The alert rules shipped in monitoring/prometheus: valid for Prometheus (`promtool check
rules`) and each alert unit-tested on the series that must fire it and those that must not
(`promtool test rules`). promtool comes with Debian's `prometheus`, installed here when missing
(tests/debian.py)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

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


DASHBOARD = ROOT / "ansible/roles/engine/files/grafana/py_rt.json"


def dashboard_queries() -> dict[str, list[str]]:
    """Panel title -> its PromQL expressions, with the dashboard's variables filled in as
    Grafana fills them (`$engine` = every engine)."""
    board = json.loads(DASHBOARD.read_text())
    return {
        p["title"]: [t["expr"].replace("$engine", ".*") for t in p["targets"]]
        for p in board["panels"]
        if p["type"] != "row"
    }


def test_the_dashboard_covers_pnl_positions_latency_feeds_and_risk() -> None:
    board = json.loads(DASHBOARD.read_text())
    assert board["uid"] == "py-rt-engines"
    rows = [p["title"] for p in board["panels"] if p["type"] == "row"]
    assert rows == ["Risk", "P&L", "Positions", "Latency", "Feeds"]
    queries = " ".join(q for qs in dashboard_queries().values() for q in qs)
    for metric in (
        "rt_risk_state",
        "rt_equity",
        "rt_realised_pnl",
        "rt_position",
        "rt_position_unrealised_pnl",
        "rt_stage_latency_seconds_bucket",
        "rt_alert_tick_to_order_p99_seconds",
        "rt_feed_state",
        "rt_md_messages_total",
        "rt_rate_limit",
    ):
        assert re.search(rf"\b{metric}\b", queries), f"no panel shows {metric}"
    # No two panels overlap on Grafana's 24-column grid.
    cells: set[tuple[int, int]] = set()
    for p in board["panels"]:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
        mine = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not cells & mine, f"{p['title']} overlaps another panel"
        cells |= mine


def test_every_dashboard_query_is_valid_promql(promtool: str, tmp_path: Path) -> None:
    # promtool parses each expression as a recording rule: a typo fails here, not in Grafana.
    rules = [
        {"record": f"py_rt:panel_{i}_{j}", "expr": q}
        for i, qs in enumerate(dashboard_queries().values())
        for j, q in enumerate(qs)
    ]
    path = tmp_path / "dashboard.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    assert f"SUCCESS: {len(rules)} rules found" in run(promtool, "check", "rules", str(path))


def test_the_dashboard_reads_metrics_the_engine_serves() -> None:
    source = (ROOT / "engine/runtime/src/metrics.rs").read_text()
    queries = " ".join(q for qs in dashboard_queries().values() for q in qs)
    names = set(re.findall(r"\b(rt_[a-z0-9_]+?)(?:_bucket)?\b[{\[ )]", queries))
    # Counters come from the heartbeat's names (`rt_<name>_total`); the rest are rendered.
    counters = {"rt_md_messages_total", "rt_orders_sent_total"}
    for name in names - counters:
        assert f'"{name}"' in source, f"{name} is not rendered by the engine"
