"""Prometheus metrics, end to end: the real engine trading against the sim venue over loopback
serves its heartbeat's figures at `engine.metrics.listen`, and a real Prometheus server
(Debian's `prometheus`, installed by the test when missing and started on loopback with a
config the test writes) scrapes it; the test reads the figures back through Prometheus's HTTP
API, as a dashboard or an alert rule would.

Each test is bounded in time and stops what it started.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import debian
from tests.conftest import ROOT
from tests.e2e.harness import Live, counters, feed, live, wait_for
from tests.e2e.test_live import wait_live
from tests.e2e.test_reconcile import position_qty
from tests.ports import free_port
from tests.test_monitoring import dashboard_queries

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")


def scrape(env: Live) -> str:
    with urllib.request.urlopen(f"{env.metrics}/metrics", timeout=5) as reply:
        assert reply.status == 200
        assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text: str = reply.read().decode()
        return text


def samples(text: str) -> dict[str, float]:
    """`name{labels}` -> value, for every sample line; every other line is a comment."""
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        m = SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


def test_the_page_carries_what_the_heartbeat_says(tmp_path: Path) -> None:
    with live(tmp_path) as env:
        env.start_sim()
        env.start_engine()
        wait_live(env)
        wait_for(lambda: counters(env.heartbeat()).get("orders_sent", 0) > 0, 30, "an order")
        hb = env.heartbeat()
        page = samples(scrape(env))
        labels = ",".join(
            f'{k}="{v}"'
            for k, v in (
                ("engine", "paper_1"),
                ("deployment", "paper_local"),
                ("mode", "paper"),
                ("manifest_sha256", env.manifest["content_sha256"]),
            )
        )
        assert page[f"rt_engine_info{{{labels}}}"] == 1
        assert page['rt_risk_state{state="active"}'] == 1
        assert page['rt_feed_state{exchange="sim_binance",state="live"}'] == 1
        # Totals only grow: the page (rendered at a later heartbeat or the same) is at least
        # the heartbeat read before it.
        for name in ("orders_sent", "md_events", "book_updates"):
            assert page[f"rt_{name}_total"] >= counters(hb)[name] > 0, name
        tick_to_order = 'rt_stage_latency_seconds_bucket{stage="tick_to_order"'
        buckets = [v for k, v in page.items() if k.startswith(tick_to_order)]
        assert buckets == sorted(buckets), "cumulative buckets"
        assert page['rt_stage_latency_seconds_count{stage="tick_to_order"}'] == buckets[-1] > 0
        assert env.stop("engine") == 0


def test_the_journal_lag_is_measured(tmp_path: Path) -> None:
    """A journal synced once a minute: its records wait, and the page says how many and for
    how long (PyRtJournalLag pages past 2 s); the records are all written."""
    slow = ["deployment.engines.paper_1.journal.fsync=interval"]
    slow += ["deployment.engines.paper_1.journal.fsync_interval_ms=60000"]
    with live(tmp_path, *slow) as env:
        env.start_sim()
        env.start_engine()
        wait_live(env)
        wait_for(lambda: counters(env.heartbeat()).get("orders_sent", 0) > 0, 30, "an order")
        # The first sync is due a minute after start: until then nothing is known durable.
        wait_for(
            lambda: samples(scrape(env)).get("rt_journal_unsynced_age_seconds", 0) >= 2,
            30,
            "journal records unsynced for 2 s",
        )
        page = samples(scrape(env))
        written = len(env.journal_records())
        # The start record is synced at once (start-up syncs it); what came after waits.
        assert 0 < page["rt_journal_unsynced_records"] < page["rt_journal_records_total"], page
        assert written >= page["rt_journal_records_total"], (written, page)
        hb = counters(env.heartbeat())
        assert 0 < hb["journal_unsynced_records"] < hb["journal_records"], hb
        assert env.stop("engine") == 0
    # Synced at every append (the harness's default), nothing waits.
    (tmp_path / "always").mkdir()
    with live(tmp_path / "always") as env:
        env.start_sim()
        env.start_engine()
        wait_live(env)
        wait_for(lambda: counters(env.heartbeat()).get("orders_sent", 0) > 0, 30, "an order")
        page = samples(scrape(env))
        assert page["rt_journal_unsynced_records"] == 0, page
        assert page["rt_journal_unsynced_age_seconds"] == 0, page
        assert env.stop("engine") == 0


@pytest.fixture(scope="module")
def prometheus_bin() -> str:
    return debian.tool("prometheus", "prometheus")


class Prometheus:
    """A throwaway Prometheus on 127.0.0.1 scraping one target every second."""

    def __init__(
        self,
        binary: str,
        workdir: Path,
        target: str,
        rules: Path | None = None,
        jobs: dict[str, dict[str, str]] | None = None,
    ) -> None:
        workdir.mkdir()
        config = workdir / "prometheus.yml"
        # Job name -> the target's labels (as the engine role's file_sd target gives them).
        jobs = jobs or {"py_rt": {"engine": "paper_1"}}
        config.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "rule_files": [str(rules)] if rules else [],
                    "scrape_configs": [
                        {
                            "job_name": job,
                            "static_configs": [{"targets": [target], "labels": labels}],
                        }
                        for job, labels in jobs.items()
                    ],
                }
            )
        )
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = workdir / "prometheus.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={workdir / 'data'}",
                    f"--web.listen-address={self.url.removeprefix('http://')}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
        try:
            with urllib.request.urlopen(url, timeout=5) as reply:
                body = json.load(reply)
        except OSError:
            return []
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=20)


@pytest.fixture
def prometheus_for(prometheus_bin: str, tmp_path: Path) -> Iterator[Any]:
    started: list[Prometheus] = []

    def start(
        env: Live, rules: Path | None = None, jobs: dict[str, dict[str, str]] | None = None
    ) -> Prometheus:
        target = env.metrics.removeprefix("http://")
        p = Prometheus(prometheus_bin, tmp_path / "prometheus", target, rules, jobs)
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()


def test_a_real_prometheus_scrapes_the_engine(tmp_path: Path, prometheus_for: Any) -> None:
    with live(tmp_path) as env:
        env.start_sim()
        env.start_engine()
        prom: Prometheus = prometheus_for(env)
        wait_live(env)

        def orders_in_prometheus() -> bool:
            result = prom.query('rt_orders_sent_total{job="py_rt"}')
            return bool(result) and float(result[0]["value"][1]) > 0

        try:
            wait_for(orders_in_prometheus, 60, "rt_orders_sent_total > 0 in Prometheus", 0.5)
        except AssertionError as exc:
            log = prom.log.read_text(errors="replace")[-3000:]
            raise AssertionError(f"{exc}; Prometheus said:\n{log}") from None
        (up,) = prom.query('up{job="py_rt"}')
        assert up["value"][1] == "1", "the scrape succeeded (the page parsed)"
        (info,) = prom.query("rt_engine_info")
        assert info["metric"]["manifest_sha256"] == env.manifest["content_sha256"]
        # A histogram query as an alert rule would run it.
        p99 = prom.query(
            'histogram_quantile(0.99, rt_stage_latency_seconds_bucket{stage="tick_to_order"})'
        )
        assert p99 and 0 < float(p99[0]["value"][1]) < 10, p99
        # Every panel of the shipped dashboard, as Grafana would ask it, shows data for an
        # engine that trades (rejections and feed incidents may rightly be empty; promtool
        # parses every query in tests/test_monitoring.py). A rate needs two scrapes in its
        # window: each panel gets a few.
        may_be_empty = {"Orders and rejections", "Feed incidents"}
        for title, exprs in dashboard_queries().items():
            if title in may_be_empty:
                continue

            def shows(exprs: list[str] = exprs) -> bool:
                return all(prom.query(e) for e in exprs)

            wait_for(
                shows,
                30,
                f"dashboard panel {title!r} showing data: {exprs}",
                0.5,
            )
        assert env.stop("engine") == 0


def test_the_tick_to_order_alert_uses_the_engines_configured_threshold(
    tmp_path: Path, prometheus_for: Any
) -> None:
    """The shipped PyRtTickToOrderSlow rule against the engine's own threshold from config:
    at 1 us every order is over it and the alert goes pending (its `for: 5m` is promtool's to
    test); the engine serves the threshold it was given."""
    rules = ROOT / "monitoring/prometheus/py_rt.rules.yml"
    alert = "deployment.engines.paper_1.metrics.tick_to_order_p99_alert_us=1"
    with live(tmp_path, alert) as env:
        env.start_sim()
        env.start_engine()
        prom: Prometheus = prometheus_for(env, rules)
        wait_live(env)
        threshold = samples(scrape(env)).get("rt_alert_tick_to_order_p99_seconds")
        assert threshold == 1e-6

        def pending() -> bool:
            return bool(prom.query('ALERTS{alertname="PyRtTickToOrderSlow",engine="paper_1"}'))

        wait_for(pending, 90, "PyRtTickToOrderSlow pending on the 1 us threshold", 0.5)
        assert env.stop("engine") == 0


def test_the_shipped_alerts_fire_when_the_venue_bans_the_engine(
    tmp_path: Path, prometheus_for: Any
) -> None:
    """The alert rules as shipped, evaluated by a real Prometheus on a real engine: the sim bans
    the engine's IP (HTTP 418), the engine halts (venue_ban), and PyRtRateLimitBanned and
    PyRtRiskHalted fire, while the alerts of a healthy engine stay quiet before it."""
    rules = ROOT / "monitoring/prometheus/py_rt.rules.yml"
    with live(tmp_path) as env:
        env.start_sim()
        env.start_engine()
        prom: Prometheus = prometheus_for(env, rules)
        wait_live(env)
        wait_for(lambda: bool(prom.query('rt_risk_state{state="active"} == 1')), 60, "a scrape")
        assert prom.query("ALERTS") == [], "nothing fires on a healthy engine"
        env.fault("kind=ban&s=30")

        def firing() -> set[str]:
            return {a["metric"]["alertname"] for a in prom.query('ALERTS{alertstate="firing"}')}

        wait_for(
            lambda: {"PyRtRateLimitBanned", "PyRtRiskHalted"} <= firing(),
            60,
            "PyRtRateLimitBanned and PyRtRiskHalted firing",
            0.5,
        )
        (halted,) = prom.query('ALERTS{alertname="PyRtRiskHalted",alertstate="firing"}')
        assert halted["metric"]["engine"] == "paper_1" and halted["metric"]["severity"] == "page"
        assert env.stop("engine") == 0


def test_each_alert_goes_pending_on_what_causes_it(tmp_path: Path, prometheus_for: Any) -> None:
    """The shipped rules on a real engine, each driven by the fault that causes it: an alert's
    expression holding puts it in `pending` at once (its `for:` duration is promtool's to test,
    tests/test_monitoring.py). A healthy engine whose scrape target carries the applied
    manifest's hash raises nothing; the same engine seen by a target labelled with another
    hash is drift. PyRtRingOverflow has a test of its own (a strategy that falls behind)."""
    rules = ROOT / "monitoring/prometheus/py_rt.rules.yml"
    # The latency alert has its own test: here no load on this machine may raise it.
    slow = "deployment.engines.paper_1.metrics.tick_to_order_p99_alert_us=10000000"
    with live(tmp_path, slow) as env:
        env.start_sim()
        env.start_engine()
        applied = env.manifest["content_sha256"]
        prom: Prometheus = prometheus_for(
            env,
            rules,
            {
                # Two hosts, as the drift rule sees them (one target per instance).
                "py_rt": {
                    "engine": "paper_1",
                    "instance": "h1",
                    "applied_manifest_sha256": applied,
                },
                "py_rt_other": {
                    "engine": "paper_1",
                    "instance": "h2",
                    "applied_manifest_sha256": "0" * 64,
                },
            },
        )
        wait_live(env)

        def alerts(expr: str = "max_over_time(ALERTS[10m])") -> dict[str, set[str]]:
            """Alert name -> the jobs it was raised for (by default: at any evaluation of the
            last 10 minutes, so that a short REDUCING spell is not missed between polls)."""
            out: dict[str, set[str]] = {}
            for a in prom.query(expr):
                out.setdefault(a["metric"]["alertname"], set()).add(a["metric"].get("job", ""))
            return out

        wait_for(lambda: "PyRtManifestDrift" in alerts("ALERTS"), 60, "PyRtManifestDrift", 0.5)
        # Only the target labelled with another manifest drifts; nothing else was raised.
        assert alerts() == {"PyRtManifestDrift": {"py_rt_other"}}, alerts()

        # Exposure on a book gone stale: market data stalled with a position open, and the
        # venue's request weight used up by another client of the IP, so that the snapshot the
        # feed asks for is refused until the minute's window ends: the feed is not live, the
        # engine REDUCING for long enough to be scraped, and the weight near its limit. The
        # market maker's position can be flat again by the time the stall starts (no exposure
        # to reduce): then it is tried again on the next position.
        for _ in range(3):
            wait_for(lambda: position_qty(env.heartbeat()) != 0, 120, "a position")
            env.fault("kind=stall&ms=10000")
            env.fault("kind=rate_limit&used_weight=5990")
            try:
                wait_for(lambda: "PyRtRiskReducing" in alerts(), 30, "PyRtRiskReducing", 0.5)
                break
            except AssertionError:
                continue
        assert "PyRtRiskReducing" in alerts(), "no REDUCING on a stale book in three tries"
        wait_for(lambda: "PyRtFeedNotLive" in alerts(), 60, "PyRtFeedNotLive", 0.5)
        wait_for(lambda: "PyRtRateLimitPressure" in alerts(), 60, "PyRtRateLimitPressure", 0.5)

        assert env.stop("engine") == 0
        wait_for(lambda: "PyRtEngineDown" in alerts("ALERTS"), 60, "PyRtEngineDown", 0.5)
        assert alerts("ALERTS")["PyRtEngineDown"] == {"py_rt"}, "up is read from the py_rt job"


def test_a_strategy_that_falls_behind_raises_ring_overflow(
    tmp_path: Path, prometheus_for: Any
) -> None:
    """PyRtRingOverflow on a real engine: a market-data ring of 1,024 slots, and the strategy
    thread stalled once for 5 s, 8 s after it began (fault injection), so the feed outruns it
    for sure. The feed drops what the full ring cannot take (it never waits), counts it and
    asks for a snapshot (the book resyncs); Prometheus, which scraped the counter at 0 before,
    sees it grow and the alert goes pending for the sim's exchange. The feed is live again."""
    rules = ROOT / "monitoring/prometheus/py_rt.rules.yml"
    small = [
        "hosts.local.rings.market_data.slots=1024",
        "deployment.engines.paper_1.metrics.tick_to_order_p99_alert_us=10000000",
    ]
    stall = {
        "RT_ENGINE_FAULT_STRATEGY_STALL_MS": "5000",
        "RT_ENGINE_FAULT_STRATEGY_STALL_AFTER_MS": "8000",
    }
    with live(tmp_path, *small) as env:
        env.start_sim()
        env.start_engine(env=stall)
        prom: Prometheus = prometheus_for(env, rules)
        series = 'rt_feed_ring_overflows_total{exchange="sim_binance"}'
        wait_for(lambda: bool(prom.query(f"{series} == 0")), 30, "a scrape before the stall", 0.2)

        def overflowing() -> set[str]:
            return {
                a["metric"].get("exchange", "")
                for a in prom.query('max_over_time(ALERTS{alertname="PyRtRingOverflow"}[10m])')
            }

        wait_for(lambda: overflowing() == {"sim_binance"}, 60, "PyRtRingOverflow", 0.5)
        assert samples(scrape(env))[series] > 0
        # The bus says the same (heartbeats queued before the stall come first)...
        wait_for(lambda: feed(env.heartbeat()).ring_overflows > 0, 30, "overflows on the bus")
        # ...and each overflow cost the book its sync: the feed asked for snapshots to recover.
        wait_for(lambda: feed(env.heartbeat()).snapshots > 1, 30, "a resync from a snapshot")
        wait_live(env)
        assert "strategy: stalling 5000 ms (fault injection)" in env.procs["engine"].text()
        assert env.stop("engine") == 0


def sick_disk(tmp_path: Path) -> Path:
    """tests/e2e/fsync_fault.c built with the C compiler every Rust build needs."""
    cc = shutil.which("cc")
    assert cc is not None, "no C compiler (cargo needs one to link): install gcc"
    lib = tmp_path / "libfsync_fault.so"
    src = ROOT / "tests/e2e/fsync_fault.c"
    subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", lib, src, "-ldl"], check=True)
    return lib


def disk_says(control: Path, word: str) -> None:
    """What the sick disk does from now on; replaced whole, so fsync never reads a half."""
    tmp = control.with_name(control.name + ".new")
    tmp.write_text(word)
    os.replace(tmp, control)


def test_a_disk_that_hangs_then_fails_in_fsync_raises_the_journal_alerts(
    tmp_path: Path, prometheus_for: Any
) -> None:
    """PyRtJournalLag and PyRtJournalFsyncFailed on a real engine whose journal disk goes bad:
    fsync of the journal's files hangs, then fails with EIO, then works again (a preloaded
    library, tests/e2e/fsync_fault.c, plays the disk). While fsync hangs the engine keeps
    trading (its fsync runs on a thread of its own), the records wait and their age grows past
    the interval + 2 s: PyRtJournalLag. A failed fsync is counted: PyRtJournalFsyncFailed. When
    the disk is back, the next sync covers every record (nothing waits) and the engine stops
    cleanly."""
    rules = ROOT / "monitoring/prometheus/py_rt.rules.yml"
    control = tmp_path / "disk"
    disk_says(control, "ok")
    env_vars = {
        "LD_PRELOAD": str(sick_disk(tmp_path)),
        "PYRT_FAULT_DIR": str(tmp_path / "journal"),
        "PYRT_FAULT_CONTROL": str(control),
    }
    overrides = [
        "deployment.engines.paper_1.journal.fsync=interval",
        "deployment.engines.paper_1.journal.fsync_interval_ms=50",
        "deployment.engines.paper_1.metrics.tick_to_order_p99_alert_us=10000000",
    ]
    with live(tmp_path, *overrides) as env:
        env.start_sim()
        env.start_engine(env=env_vars)
        prom: Prometheus = prometheus_for(env, rules)
        wait_live(env)
        wait_for(lambda: counters(env.heartbeat()).get("orders_sent", 0) > 0, 30, "an order")

        def pending(name: str) -> bool:
            return bool(prom.query(f'max_over_time(ALERTS{{alertname="{name}"}}[10m])'))

        assert samples(scrape(env))["rt_journal_fsync_errors_total"] == 0
        disk_says(control, "stall")
        before = counters(env.heartbeat())["orders_sent"]
        wait_for(lambda: pending("PyRtJournalLag"), 60, "PyRtJournalLag", 0.5)
        page = samples(scrape(env))
        assert page["rt_journal_unsynced_age_seconds"] > 2.05, page
        assert page["rt_journal_unsynced_records"] > 0, page
        # Trading went on while the disk hung: orders were sent and journaled meanwhile.
        hb = counters(env.heartbeat())
        assert hb["orders_sent"] > before, (before, hb)
        assert not pending("PyRtJournalFsyncFailed")

        disk_says(control, "fail")
        wait_for(lambda: pending("PyRtJournalFsyncFailed"), 60, "PyRtJournalFsyncFailed", 0.5)
        page = samples(scrape(env))
        assert page["rt_journal_fsync_errors_total"] >= 1, page
        assert page["rt_journal_unsynced_records"] > 0, page

        disk_says(control, "ok")
        wait_for(
            lambda: samples(scrape(env))["rt_journal_unsynced_records"] == 0,
            30,
            "the journal synced again",
        )
        assert env.stop("engine") == 0
        engine_log = env.procs["engine"].text()
        assert "journal: fsync: Input/output error" in engine_log, engine_log[-2000:]
