"""A fake fleet of three local hosts (prefix roots under state/hosts/, distinct ports), rolled
out with `appliance apply` and the real rt-engine: fresh install, a second run that changes
nothing, check mode, a release whose health check fails on host 1 (rolled back there, hosts 2
and 3 untouched, exit 1), a run killed mid-deploy that converges when run again (its host
locks taken over), `appliance plan` reading a by-hand switch on host 3 from the host (not the
record), `appliance rollback`, a release that fails its soak on host 2 (host 1 keeps the new
release and is recorded so, host 2 rolled back, host 3 untouched, as `appliance status`
shows), the roll-out locks (their holders named; a stale one on host 2 broken with
--break-lock), `appliance verify` and `appliance stop`, and a change that needs a reboot
(stopped before the host, then rebooted with --allow-reboot).

The tests run in file order on one fleet; each leaves it converged on a known config. The
fleet's soak is config (deployment.rollout.soak_seconds: 0; the soak test sets 3), and its
engine binary is a stripped copy (tests/deploy/conftest.py engine_copy): every roll-out
hashes and copies it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from appliance.deploy import supervisor
from appliance.deploy.supervisor import Layout
from tests.conftest import ROOT
from tests.deploy.conftest import held_port, scratch_project, write_fleet_conf
from tests.ports import free_ports

HOSTS = ["h1", "h2", "h3"]
DASHBOARD = ROOT / "ansible/roles/engine/files/grafana/py_rt.json"
APPLIANCE = Path(sys.executable).parent / "appliance"
RUN_TIMEOUT = 420


@dataclass
class Fleet:
    project: Path
    env: dict[str, str]
    ports: dict[str, dict[str, int]]
    engine: Path
    first: tuple[int, dict[str, Any], str] = (0, {}, "")

    def prefix(self, host: str) -> Path:
        return self.project / "state" / "hosts" / host

    def layout(self, host: str) -> Layout:
        return Layout.under(self.prefix(host))

    def current(self, host: str) -> str:
        return os.path.basename(os.path.realpath(self.prefix(host) / "opt/py-rt/current"))

    def scrape_target(self, host: str) -> dict[str, Any]:
        """The Prometheus file_sd target the engine role published on `host`."""
        path = self.prefix(host) / f"etc/prometheus/file_sd/py_rt_e{host[1:]}.json"
        (entry,) = json.loads(path.read_text())
        result: dict[str, Any] = entry
        return result

    def releases(self, host: str) -> set[str]:
        return {p.name for p in (self.prefix(host) / "opt/py-rt/releases").iterdir()}

    def units(self, host: str) -> list[str]:
        engine = f"py-rt-e{host[1:]}"
        return [f"{engine}-sim-sim_{host}", engine]

    def status(self, host: str, unit: str) -> dict[str, Any]:
        return supervisor.status(self.layout(host), unit)[1]

    def apply(self, *overrides: str, check: bool = False) -> tuple[int, dict[str, Any], str]:
        """`appliance apply` with the fleet's own soak (deployment.rollout.soak_seconds: 0)."""
        cmd = [str(APPLIANCE), "apply", "deployment=fleet3", *overrides]
        cmd += ["--yes", "--format", "json", "--root", str(self.project)]
        if check:
            cmd.append("--check")
        run = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=RUN_TIMEOUT)
        try:
            out = json.loads(run.stdout)
        except json.JSONDecodeError:
            out = {}
        return run.returncode, out, run.stderr

    def health(self, host: str, endpoint: str, sha: str) -> subprocess.CompletedProcess[str]:
        gate = ["--expect-hash", sha, "--expect-state", "active", "--wait-ms", "10000"]
        return subprocess.run(
            [str(self.engine), "ctl", "--endpoint", endpoint, "status", *gate],
            capture_output=True,
            text=True,
            timeout=60,
        )

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`appliance ARGS deployment=fleet3 --root PROJECT`."""
        return subprocess.run(
            [str(APPLIANCE), *args, "deployment=fleet3", "--root", str(self.project)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
        )

    def deployed_hashes(self) -> dict[str, str]:
        index = self.project / "state/deployed/fleet3/index.json"
        data = json.loads(index.read_text())
        return {h: m["content_sha256"] for h, m in data["manifests"].items()}

    def snapshot(self, host: str) -> dict[str, Any]:
        """What a rollout may change on a host: its files, links, units and processes (the
        engines' own journals and logs are left out: they grow while the engines run)."""
        out: dict[str, Any] = {}
        root = self.prefix(host)
        for top in ("opt", "etc"):
            for path in sorted((root / top).rglob("*")):
                rel = str(path.relative_to(root))
                if path.is_symlink():
                    out[rel] = ("link", os.readlink(path))
                elif path.is_file():
                    st = path.stat()
                    out[rel] = ("file", st.st_size, st.st_mtime_ns)
        for unit in self.units(host):
            out[unit] = self.status(host, unit).get("main_pid")
        return out


def _conf(project: Path, ports: dict[str, dict[str, int]]) -> None:
    """conf/deployment/fleet3.yaml: three local hosts, each its own sim venue and ports."""
    write_fleet_conf(
        project,
        ports,
        HOSTS,
        deployment="fleet3",
        host_prefix="fleet",
        target="local",
        target_body=lambda host, _ports: {"root": f"state/hosts/{host}"},
        engine_base={},
    )


def _stop_all(project: Path) -> None:
    for root in (project / "state/hosts").glob("*"):
        layout = Layout.under(root)
        for unit in sorted(layout.units.glob("*.service")) if layout.units.is_dir() else []:
            supervisor.stop(layout, unit.stem)


@pytest.fixture(scope="module")
def fleet(
    tmp_path_factory: pytest.TempPathFactory, ansible_env: dict[str, str], engine_copy: Path
) -> Iterator[Fleet]:
    project = scratch_project(tmp_path_factory.mktemp("fleet") / "project")
    names = ("ws", "rest", "events", "control", "metrics")
    numbers = free_ports(len(names) * len(HOSTS))
    n = len(names)
    ports = {
        h: dict(zip(names, numbers[n * i : n * i + n], strict=True)) for i, h in enumerate(HOSTS)
    }
    _conf(project, ports)
    env = os.environ | ansible_env | {"RT_ENGINE_BIN": str(engine_copy), "NO_COLOR": "1"}
    env.pop("APPLIANCE_ROOT", None)
    fleet = Fleet(project, env, ports, engine_copy)
    try:
        fleet.first = fleet.apply()
        yield fleet
    finally:
        _stop_all(project)


def _endpoint(fleet: Fleet, host: str) -> str:
    return f"tcp://127.0.0.1:{fleet.ports[host]['control']}"


def test_fresh_install(fleet: Fleet) -> None:
    rc, out, err = fleet.first
    assert rc == 0, err + json.dumps(out, indent=1)
    assert [out["hosts"][h]["status"] for h in HOSTS] == ["changed"] * 3
    for host in HOSTS:
        release = out["hosts"][host]["release"]
        assert fleet.current(host) == release
        for unit in fleet.units(host):
            state = fleet.status(host, unit)
            assert state["state"] == "running", (host, unit, state)
            assert f"/releases/{release}/bin/rt-engine" in state["exec_realpath"]
        sha = fleet.deployed_hashes()[host]
        health = fleet.health(host, _endpoint(fleet, host), sha)
        assert health.returncode == 0, health.stdout + health.stderr
        assert json.loads(health.stdout.splitlines()[-1])["status"]["risk_state"] == "active"
        # The host's Prometheus is told where the engine's metrics are and what was applied;
        # Grafana gets the dashboard and a provider for it (targets.<host>.monitoring).
        assert fleet.scrape_target(host) == {
            "targets": [f"127.0.0.1:{fleet.ports[host]['metrics']}"],
            "labels": {
                "engine": f"e{host[1:]}",
                "deployment": "fleet3",
                "applied_manifest_sha256": sha,
                "applied_release": release,
            },
        }
        dashboards = fleet.prefix(host) / "opt/py-rt/grafana"
        assert (dashboards / "py_rt.json").read_bytes() == DASHBOARD.read_bytes()
        provider = yaml.safe_load(
            (fleet.prefix(host) / "etc/grafana/provisioning/dashboards/py_rt.yaml").read_text()
        )
        assert provider["providers"][0]["options"]["path"] == str(dashboards)
    assert out["recorded"] == "state/deployed/fleet3"


def test_rendered_units_pass_systemd_analyze(fleet: Fleet) -> None:
    for host in HOSTS:
        units = [str(fleet.layout(host).unit_file(u)) for u in fleet.units(host)]
        text = Path(units[1]).read_text()
        assert "CPUAffinity=0\n" in text and "LimitMEMLOCK=infinity" in text
        assert "Restart=on-failure" in text and "ProtectSystem=strict" in text
        run = subprocess.run(
            ["/usr/bin/systemd-analyze", "verify", "--recursive-errors=yes", "--man=no", *units],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode == 0 and run.stderr == "", run.stderr


def test_second_run_changes_nothing(fleet: Fleet) -> None:
    """Applying the unchanged config again, through a saved plan (which shows no change)."""
    before = {h: fleet.snapshot(h) for h in HOSTS}
    saved = fleet.project / "plan.json"
    args = ["deployment=fleet3", "--out", str(saved), "--detailed-exitcode"]
    plan = subprocess.run(
        [str(APPLIANCE), "plan", *args, "--root", str(fleet.project)],
        env=fleet.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert plan.returncode == 0 and "no changes" in plan.stdout, plan.stdout + plan.stderr
    rc, out, err = fleet.apply(str(saved))
    assert rc == 0, err
    assert {h: out["hosts"][h]["changed"] for h in HOSTS} == dict.fromkeys(HOSTS, 0)
    assert {h: out["hosts"][h]["status"] for h in HOSTS} == dict.fromkeys(HOSTS, "ok")
    assert {h: fleet.snapshot(h) for h in HOSTS} == before


def test_check_mode_changes_nothing(fleet: Fleet) -> None:
    before = {h: fleet.snapshot(h) for h in HOSTS}
    deployed = fleet.deployed_hashes()
    rc, out, err = fleet.apply("risk.max_open_orders=8", check=True)
    assert rc == 0, err
    # It reports what it would change, on every host ...
    assert all(out["hosts"][h]["changed"] > 0 for h in HOSTS), out["hosts"]
    assert out["recorded"] is None
    # ... and changes nothing.
    assert {h: fleet.snapshot(h) for h in HOSTS} == before
    assert fleet.deployed_hashes() == deployed


def test_a_release_failing_its_health_check_on_host_1_is_rolled_back(fleet: Fleet) -> None:
    """The new release moves h1's control socket to a port something else holds: its engine
    cannot bind it and the health check gets no answer there. Every host's manifest changes
    (a risk limit), so hosts 2 and 3 would be next if the rollout went on."""
    before = {h: fleet.snapshot(h) for h in HOSTS}
    old = {h: fleet.current(h) for h in HOSTS}
    deployed = fleet.deployed_hashes()
    with held_port() as port:
        rc, out, err = fleet.apply(
            "risk.max_open_orders=8", f"deployment.engines.e1.bus.control=tcp://127.0.0.1:{port}"
        )
    assert rc == 1, err
    hosts = out["hosts"]
    assert [hosts[h]["status"] for h in HOSTS] == ["rolled back", "not run", "not run"]
    failure = hosts["h1"]["failure"]
    assert "failed on h1: Wait for the engine to report healthy" in failure
    assert f"rolled back to {old['h1']} (healthy)" in failure
    # Host 1 runs its previous release again, healthy, with the previous manifest.
    assert fleet.current("h1") == old["h1"]
    state = fleet.status("h1", "py-rt-e1")
    assert state["state"] == "running" and f"/releases/{old['h1']}/" in state["exec_realpath"]
    health = fleet.health("h1", _endpoint(fleet, "h1"), deployed["h1"])
    assert health.returncode == 0, health.stdout + health.stderr
    # The failed release is on disk (for the post-mortem), not current.
    assert hosts["h1"]["release"] in fleet.releases("h1")
    # Hosts 2 and 3 were not touched at all.
    for host in ("h2", "h3"):
        assert fleet.snapshot(host) == before[host]
    # The record, rewritten from the hosts, still says what runs: the previous manifests.
    assert fleet.deployed_hashes() == deployed
    assert out["recorded"] == "state/deployed/fleet3"


def _ansible_playbooks(project: Path) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if b"ansible-playbook" in cmdline and str(project).encode() in cmdline:
            pids.append(int(proc.name))
    return pids


def test_a_run_killed_mid_deploy_converges_when_run_again(fleet: Fleet) -> None:
    change = [f"strategies.mm_{h}.params.half_spread_ticks=3" for h in HOSTS]
    releases_h2 = fleet.releases("h2")
    cmd = [str(APPLIANCE), "apply", "deployment=fleet3", *change, "--yes"]
    proc = subprocess.Popen(
        [*cmd, "--root", str(fleet.project)],
        env=fleet.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + RUN_TIMEOUT
        # Kill it (controller and Ansible) while host 2 is half-way: its new release exists.
        while fleet.releases("h2") == releases_h2:
            assert proc.poll() is None, "the run ended before host 2 was reached"
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        for pid in _ansible_playbooks(fleet.project):
            os.kill(pid, signal.SIGKILL)
    rc, out, err = fleet.apply(*change)
    assert rc == 0, err + json.dumps(out.get("hosts"), indent=1)
    deployed = fleet.deployed_hashes()
    for host in HOSTS:
        release = out["hosts"][host]["release"]
        assert fleet.current(host) == release
        for unit in fleet.units(host):
            assert f"/releases/{release}/" in fleet.status(host, unit)["exec_realpath"]
        health = fleet.health(host, _endpoint(fleet, host), deployed[host])
        assert health.returncode == 0, health.stdout + health.stderr
    rc, out, err = fleet.apply(*change)
    assert rc == 0, err
    assert {h: out["hosts"][h]["changed"] for h in HOSTS} == dict.fromkeys(HOSTS, 0)


# Where test_a_run_killed_mid_deploy_converges_when_run_again left the fleet.
CONVERGED = [f"strategies.mm_{h}.params.half_spread_ticks=3" for h in HOSTS]


def _switch(links: Path, to: str) -> None:
    tmp = links / "current.by-hand"
    tmp.symlink_to(to)
    tmp.replace(links / "current")


def test_plan_reads_the_hosts_not_the_record(fleet: Fleet) -> None:
    """Someone switches host 3 back by hand (its `current` link to `previous`) behind the
    record's back: `appliance plan` reads the hosts, so the plan shows host 3's drift, says
    where each side came from, and refreshes the record; --cached plans against the record
    only, labelled so."""
    links = fleet.prefix("h3") / "opt/py-rt"
    current, previous = os.readlink(links / "current"), os.readlink(links / "previous")
    recorded = fleet.deployed_hashes()
    by_hand = json.loads((links / "previous/manifest.json").read_text())["content_sha256"]
    assert by_hand != recorded["h3"]
    _switch(links, previous)
    try:
        run = fleet.cli("plan", *CONVERGED, "--cached", "-f", "json", "--detailed-exitcode")
        assert run.returncode == 0, run.stdout + run.stderr  # the record has not seen it
        plan = json.loads(run.stdout)
        assert plan["changes"] == [] and plan["against"].startswith("the LOCAL RECORD of ")
        assert "--cached: the hosts were not read" in plan["against"]

        run = fleet.cli("plan", *CONVERGED, "-f", "json", "--detailed-exitcode")
        assert run.returncode in (2, 3), run.stdout + run.stderr
        plan = json.loads(run.stdout)
        assert plan["against"] == (
            "what the hosts run (read from the hosts: h1, h2, h3); local record refreshed"
        )
        assert plan["manifests"]["before"]["h3"] == by_hand
        assert {c["host"] for c in plan["changes"]} == {"h3"}
        assert "strategies.mm_h3.params.half_spread_ticks" in {c["path"] for c in plan["changes"]}
        # The record now says what host 3 runs.
        assert fleet.deployed_hashes() == recorded | {"h3": by_hand}
    finally:
        _switch(links, current)
    run = fleet.cli("plan", *CONVERGED, "--detailed-exitcode")
    assert run.returncode == 0 and "no changes" in run.stdout, run.stdout + run.stderr
    assert fleet.deployed_hashes() == recorded


def test_rollback_returns_a_host_to_its_previous_release(fleet: Fleet) -> None:
    """`appliance rollback --host h3` (ansible/rollback.yml, after the last test moved every
    host forward): health-gated, recorded on the host and in the local record."""
    links = fleet.prefix("h3") / "opt/py-rt"
    current = fleet.current("h3")
    previous = os.path.basename(os.path.realpath(links / "previous"))
    assert previous != current
    others = {h: fleet.snapshot(h) for h in ("h1", "h2")}
    run = fleet.cli("rollback", "--host", "h3", "--yes")
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"h3: rollback done (now on {previous}: ACTIVE" in run.stdout, run.stdout
    assert fleet.current("h3") == previous
    # The release left is the one to return to now, so rolling back again goes forward.
    assert os.path.basename(os.path.realpath(links / "previous")) == current
    manifest = json.loads((links / "current/manifest.json").read_text())
    for unit in fleet.units("h3"):
        assert f"/releases/{previous}/" in fleet.status("h3", unit)["exec_realpath"]
    health = fleet.health("h3", _endpoint(fleet, "h3"), manifest["content_sha256"])
    assert health.returncode == 0, health.stdout + health.stderr
    host_record = json.loads((links / "apply.json").read_text())
    assert host_record["event"] == "rolled back" and host_record["release"] == previous
    assert host_record["failed_release"] == current
    assert fleet.deployed_hashes()["h3"] == manifest["content_sha256"]
    # Hosts 1 and 2 were not part of it.
    assert {h: fleet.snapshot(h) for h in ("h1", "h2")} == others


def _kill_when_switched(fleet: Fleet, host: str, old: str, stop: threading.Event) -> list[int]:
    """Crash `host`'s engine once it runs a release other than `old` (its supervisor restarts
    it: a restart during the soak)."""
    unit = fleet.units(host)[1]
    killed: list[int] = []
    while not stop.is_set() and not killed:
        state = fleet.status(host, unit)
        pid = state.get("main_pid")
        if state.get("state") == "running" and old not in str(state.get("exec_realpath")) and pid:
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        time.sleep(0.05)
    return killed


def test_host_2_failing_its_soak_is_rolled_back_and_host_1_keeps_the_new_release(
    fleet: Fleet,
) -> None:
    old = {h: fleet.current(h) for h in HOSTS}
    old_hashes = fleet.deployed_hashes()
    h3_before = fleet.snapshot("h3")
    (moved,) = free_ports(1)
    stop = threading.Event()
    killed: list[int] = []
    watcher = threading.Thread(
        target=lambda: killed.extend(_kill_when_switched(fleet, "h2", old["h2"], stop))
    )
    watcher.start()
    try:
        # Engine 2 moves its metrics to another port with the release that fails.
        rc, out, err = fleet.apply(
            "risk.max_open_orders=7",
            "deployment.rollout.soak_seconds=3",
            f"deployment.engines.e2.metrics.listen=127.0.0.1:{moved}",
        )
    finally:
        stop.set()
        watcher.join()
    assert rc == 1, err
    assert killed, "host 2's new engine was never seen running"
    # The soak is the deployment's config, shown in the plan with where it came from.
    assert out["plan"]["rollout"]["soak_seconds"] == 3, out["plan"]
    assert "deployment.rollout.soak_seconds=3" in out["plan"]["rollout"]["source"]
    hosts = out["hosts"]
    assert [hosts[h]["status"] for h in HOSTS] == ["changed", "rolled back", "not run"]
    failure = hosts["h2"]["failure"]
    assert "failed on h2: Soak the release" in failure, failure
    assert "restart" in failure and f"rolled back to {old['h2']} (healthy)" in failure, failure
    new_h1 = hosts["h1"]["release"]
    assert new_h1 != old["h1"]
    # Host 1 stays on the new release, host 2 is back on its previous one, host 3 untouched.
    assert [fleet.current(h) for h in HOSTS] == [new_h1, old["h2"], old["h3"]]
    assert [hosts[h]["current"] for h in HOSTS] == [new_h1, old["h2"], old["h3"]]
    assert fleet.snapshot("h3") == h3_before
    # The local record is what the hosts run: host 1 recorded on its new release.
    record = json.loads((fleet.project / "state/deployed/fleet3/apply.json").read_text())
    assert {h: record["hosts"][h]["release"] for h in HOSTS} == {
        "h1": new_h1,
        "h2": old["h2"],
        "h3": old["h3"],
    }
    hashes = fleet.deployed_hashes()
    assert hashes["h1"] != old_hashes["h1"]
    assert (hashes["h2"], hashes["h3"]) == (old_hashes["h2"], old_hashes["h3"])
    # The scrape targets follow: host 1 labelled with its new manifest, host 2 with the one it
    # was rolled back to (host 3's is in its untouched snapshot).
    labels = {h: fleet.scrape_target(h)["labels"] for h in HOSTS}
    # Host 2 is scraped where the release it returned to listens (recorded in that release),
    # not on the port of the release that failed.
    assert fleet.scrape_target("h2")["targets"] == [f"127.0.0.1:{fleet.ports['h2']['metrics']}"]
    assert (labels["h1"]["applied_manifest_sha256"], labels["h1"]["applied_release"]) == (
        hashes["h1"],
        new_h1,
    )
    assert (labels["h2"]["applied_manifest_sha256"], labels["h2"]["applied_release"]) == (
        old_hashes["h2"],
        old["h2"],
    )
    # appliance status shows exactly that, read from the hosts, with no drift from the record.
    run = fleet.cli("status", "--format", "json")
    assert run.returncode == 0, run.stdout + run.stderr
    rows = {r["host"]: r for r in json.loads(run.stdout)["hosts"]}
    assert {h: rows[h]["release"] for h in HOSTS} == {
        "h1": new_h1,
        "h2": old["h2"],
        "h3": old["h3"],
    }
    assert rows["h1"]["last"]["event"] == "applied"
    assert rows["h1"]["manifest_sha256"] == hashes["h1"]
    assert rows["h2"]["last"]["event"] == "rolled back"
    assert rows["h2"]["last"]["failed_release"] == hosts["h2"]["release"]
    assert "Soak the release" in rows["h2"]["last"]["reason"]
    assert rows["h3"]["last"]["release"] != hosts["h3"]["release"]
    for h in HOSTS:
        assert rows[h]["drift"] is None and rows[h]["reachable"], rows[h]
        assert rows[h]["engine_status"]["risk_state"] == "active", rows[h]


def test_the_roll_out_lock_stops_a_second_apply(fleet: Fleet) -> None:
    import getpass
    import socket

    from appliance.deploy.fleet import LocalLock

    before = {h: fleet.snapshot(h) for h in HOSTS}
    # Another apply on this controller (it holds the local lock): refused, its holder named;
    # a live holder's lock is not broken, --break-lock included.
    other = LocalLock(fleet.project / "state/locks/fleet3.lock")
    other.acquire("apply")
    try:
        rc, _, err = fleet.apply("risk.max_open_orders=6")
        rc_break, _, err_break = fleet.apply("risk.max_open_orders=6", "--break-lock")
    finally:
        other.release()
    assert rc == 1 and "another apply of this deployment runs here: apply run " in err, err
    who = f"by {getpass.getuser()}@{socket.gethostname()} (pid {os.getpid()}, started "
    assert f"run {other.run} {who}" in err, err
    assert rc_break == 1 and "held by a live process is not broken" in err_break, err_break
    assert {h: fleet.snapshot(h) for h in HOSTS} == before


def test_a_stale_host_lock_blocks_apply_naming_its_holder_until_broken(fleet: Fleet) -> None:
    """A lock another controller's run left on host 2 (that run is gone): apply refuses and
    names its holder; --break-lock names it, takes it over and proceeds."""
    lock = fleet.prefix("h2") / "opt/py-rt/lock"
    lock.mkdir()
    holder = {
        "run": "0123abcd",
        "user": "ops",
        "host": "elsewhere",
        "pid": 4242,
        "command": "apply",
        "since": "2026-01-01T00:00:00Z",
    }
    (lock / "holder.json").write_text(json.dumps(holder))
    before = {h: fleet.snapshot(h) for h in HOSTS}  # the stale lock included
    named = "h2 is locked by apply run 0123abcd by ops@elsewhere (pid 4242, started 2026-01-01"
    try:
        rc, _, err = fleet.apply("risk.max_open_orders=7")
        assert rc == 1, err
        assert named in err and "--break-lock" in err, err
        assert not (fleet.prefix("h1") / "opt/py-rt/lock").exists()
        assert {h: fleet.snapshot(h) for h in HOSTS} == before
        # `appliance status` shows who holds it.
        run = fleet.cli("status", "--format", "json")
        rows = {r["host"]: r for r in json.loads(run.stdout)["hosts"]}
        assert rows["h2"]["locked_by"] == "0123abcd", rows["h2"]
        # --break-lock: named first, then taken over; hosts 2 and 3 move to 7 as host 1 is.
        rc, out, err = fleet.apply("risk.max_open_orders=7", "--break-lock")
        assert rc == 0, err + json.dumps(out.get("hosts"), indent=1)
        assert f"breaking a stale roll-out lock: {named}" in err, err
        assert [out["hosts"][h]["status"] for h in HOSTS] == ["ok", "changed", "changed"]
        assert not lock.exists()  # taken over, then released by the run that broke it
    finally:
        shutil.rmtree(lock, ignore_errors=True)


def test_verify_then_stop(fleet: Fleet) -> None:
    run = fleet.cli("verify")
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.splitlines() == ["h1: ok", "h2: ok", "h3: ok"]
    run = fleet.cli("stop", "--host", "h3", "--yes")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "h3: stop done (now on" in run.stdout and "not answering" in run.stdout, run.stdout
    assert {fleet.status("h3", u)["state"] for u in fleet.units("h3")} == {"inactive"}
    assert fleet.status("h1", "py-rt-e1")["state"] == "running"
    run = fleet.cli("verify", "--host", "h3")
    assert run.returncode == 1 and "h3: FAILED: not running" in run.stdout, run.stdout


def test_a_change_that_needs_a_reboot_stops_before_the_host_then_reboots_when_allowed(
    fleet: Fleet,
) -> None:
    """Housekeeping cores are a kernel argument (irqaffinity): the plan flags host 2 for a
    reboot, apply stops before switching it and says how to proceed; with --allow-reboot it
    drains host 2, reboots it (a prefix root is not rebooted: the step says so), verifies
    the kernel, then switches and starts it, and goes on to host 3."""
    # risk.max_open_orders=7 is where the lock test left every host: only host 2 changes.
    change = ["risk.max_open_orders=7", "hosts.h2.cpu.housekeeping=[0,1]"]
    old = {h: fleet.current(h) for h in HOSTS}
    rc, out, err = fleet.apply(*change)
    assert rc == 1, err
    assert out["plan"]["summary"]["reboot"] == ["h2"], out["plan"]["summary"]
    hosts = out["hosts"]
    assert [hosts[h]["status"] for h in HOSTS] == ["ok", "failed", "not run"]
    failure = hosts["h2"]["failure"]
    assert "h2 needs a reboot for host.cpu.housekeeping" in failure, failure
    assert "nothing was switched on it" in failure and "--allow-reboot" in failure, failure
    assert [fleet.current(h) for h in HOSTS] == [old[h] for h in HOSTS]

    rc, out, err = fleet.apply(*change, "--allow-reboot")
    assert rc == 0, err + json.dumps(out.get("hosts"), indent=1)
    hosts = out["hosts"]
    # Host 3 has no change of its own but was stopped (test_verify_then_stop): started again.
    assert [hosts[h]["status"] for h in HOSTS] == ["ok", "changed", "changed"]
    assert fleet.current("h2") == hosts["h2"]["release"] != old["h2"]
    unit = fleet.layout("h2").unit_file("py-rt-e2").read_text()
    assert "CPUAffinity=0 1\n" in unit
    record = json.loads((fleet.prefix("h2") / "opt/py-rt/apply.json").read_text())
    assert record["event"] == "applied" and record["release"] == hosts["h2"]["release"]
    health = fleet.health("h2", _endpoint(fleet, "h2"), fleet.deployed_hashes()["h2"])
    assert health.returncode == 0, health.stdout + health.stderr
