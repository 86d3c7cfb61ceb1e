"""The fleet roll-out under real systemd: three hosts, each a container booted with systemd
as PID 1 (tests/systemd/machines.py: a copy of the Debian root, sshd on its own loopback
port), and the controller (`appliance`, Ansible) outside them reaching each over SSH like a
real host (target connection ssh, root "/", service_manager systemd, a service account: the
units' sandboxing applied by systemd). `make test-systemd-fleet` (tests/systemd/fleet.sh);
needs root; not part of `make test`.

Shows: a fresh install of all three; a release that fails its soak on host 2 (its engine
crashes once it runs the new release: systemd restarts it) is rolled back there while host 1
keeps the new release and is recorded so and host 3 is untouched, as `appliance status` shows;
a change that needs a reboot stops before the host without --allow-reboot, and with it the
host is drained, rebooted for real by Ansible's reboot module (the container's systemd
reboots, its boot id changes), verified and started on the new release.

In a container the kernel is this machine's: the verification after the reboot reads the CPU
layout, NUMA nodes, isolated CPUs and hugepages from the kernel the container booted on; the
kernel arguments themselves (verify_tuning) cannot change with a container's reboot and are
not verified here (tests/deploy/test_host_tuning.py covers their comparison).
"""

from __future__ import annotations

import json
import os
import shutil
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

from tests.conftest import ROOT
from tests.deploy.conftest import held_port, scratch_project, write_fleet_conf
from tests.ports import free_ports
from tests.systemd.machines import Machine

BASE = Path(os.environ.get("PYRT_NSPAWN_ROOT", "/var/tmp/py-rt-nspawn/bookworm"))

pytestmark = pytest.mark.skipif(
    not os.environ.get("PYRT_SYSTEMD_FLEET")
    or os.geteuid() != 0
    or shutil.which("systemd-nspawn") is None
    or not (BASE / "usr/sbin/sshd").is_file(),
    reason="needs root, systemd-nspawn and the cached Debian root with sshd "
    "(run `make test-systemd-fleet`: tests/systemd/fleet.sh)",
)

HOSTS = ["h1", "h2", "h3"]
APPLIANCE = Path(sys.executable).parent / "appliance"
ENGINE_BIN = Path(os.environ.get("RT_ENGINE_BIN") or ROOT / "target" / "debug" / "rt-engine")
RUN_TIMEOUT = 900


@dataclass
class Fleet:
    project: Path
    env: dict[str, str]
    ports: dict[str, dict[str, int]]
    machines: dict[str, Machine]
    first: tuple[int, dict[str, Any], str] = (0, {}, "")

    def unit(self, host: str) -> str:
        return f"py-rt-e{host[1:]}"

    def current(self, host: str) -> str:
        """The release host's `current` link points at, read inside its container."""
        run = self.machines[host].sh("readlink -f /opt/py-rt/current")
        return os.path.basename(run.stdout.strip())

    def show(self, host: str, unit: str, *props: str) -> dict[str, str]:
        args = " ".join(f"--property={p}" for p in props)
        run = self.machines[host].sh(f"systemctl show {unit}.service {args}")
        return dict(line.split("=", 1) for line in run.stdout.splitlines() if "=" in line)

    def apply(self, *args: str) -> tuple[int, dict[str, Any], str]:
        cmd = [str(APPLIANCE), "apply", "deployment=sfleet", *args]
        cmd += ["--yes", "--format", "json", "--root", str(self.project)]
        run = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=RUN_TIMEOUT)
        try:
            out = json.loads(run.stdout)
        except json.JSONDecodeError:
            out = {}
        return run.returncode, out, run.stderr + run.stdout

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(APPLIANCE), *args, "deployment=sfleet", "--root", str(self.project)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
        )


def _conf(project: Path, ports: dict[str, dict[str, int]]) -> None:
    """conf/deployment/sfleet.yaml: three hosts over SSH on loopback, each its own sim venue."""
    # Each engine as the shipped paper deployment's (every setting it has), on its own ports.
    shipped = yaml.safe_load((project / "conf/deployment/paper_local.yaml").read_text())
    like = next(iter(shipped["deployment"]["engines"].values()))
    target = yaml.safe_load((project / "conf/target/ny4.yaml").read_text())
    # A container is no tuned host: the kernel is this machine's and is left as it is.
    target |= {"ssh_user": "root", "become": False, "service_user": "pyrt"}
    target |= {"tune_runtime": False, "verify_tuning": False}
    (project / "conf/target/nspawn.yaml").write_text(
        "# yaml-language-server: $schema=../../schemas/target.schema.json\n"
        + yaml.safe_dump(target, sort_keys=False)
    )
    write_fleet_conf(
        project,
        ports,
        HOSTS,
        deployment="sfleet",
        host_prefix="sfleet",
        target="nspawn",
        # Each container's sshd on its own port of the shared loopback.
        target_body=lambda _host, p: {"ssh_port": p["ssh"]},
        engine_base=like,
    )


def _keypair(home: Path) -> Path:
    """The controller's key pair for the session (each container authorizes its public half)."""
    ssh = home / "ssh"
    ssh.mkdir(mode=0o700)
    key = ssh / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "py-rt-test", "-f", str(key)],
        check=True,
    )
    return key


def _ssh_config(key: Path, machines: list[Machine]) -> Path:
    """The containers' host keys pinned, and the ssh_config the controller's Ansible uses
    (ANSIBLE_SSH_COMMON_ARGS=-F): nothing in root's own ~/.ssh."""
    known = key.with_name("known_hosts")
    known.write_text("".join(m.host_key_line() for m in machines))
    config = key.with_name("config")
    config.write_text(
        "Host 127.0.0.1\n"
        f"  IdentityFile {key}\n"
        "  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {known}\n"
        "  GlobalKnownHostsFile /dev/null\n"
        "  StrictHostKeyChecking yes\n"
    )
    return config


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    project = scratch_project(tmp_path_factory.mktemp("sfleet") / "project")
    names = ("ws", "rest", "events", "control", "metrics", "ssh")
    numbers = free_ports(len(names) * len(HOSTS))
    ports = {
        h: dict(zip(names, numbers[len(names) * i :], strict=False)) for i, h in enumerate(HOSTS)
    }
    _conf(project, ports)
    home = tmp_path_factory.mktemp("home")
    engine = tmp_path_factory.mktemp("engine") / "rt-engine"
    shutil.copy2(ENGINE_BIN, engine)
    # The same code without its debug info (~150 MB -> ~11 MB): copied to every host.
    subprocess.run(["strip", "--strip-debug", str(engine)], check=True, timeout=120)
    under = tmp_path_factory.mktemp("machines")
    machines: dict[str, Machine] = {}
    try:
        key = _keypair(home)
        public = key.with_suffix(".pub").read_text()
        for host in HOSTS:
            machines[host] = Machine.make(
                f"py-rt-{host}-{os.getpid()}", BASE, under, ports[host]["ssh"], public
            )
        config = _ssh_config(key, list(machines.values()))
        for m in machines.values():
            m.start()
        for m in machines.values():
            m.wait_ready()
        env = os.environ | {
            "HOME": str(home),
            "ANSIBLE_HOME": str(home / ".ansible"),
            "ANSIBLE_LOCAL_TEMP": str(home / ".ansible/tmp"),
            "ANSIBLE_SSH_COMMON_ARGS": f"-F {config}",
            "RT_ENGINE_BIN": str(engine),
            "NO_COLOR": "1",
        }
        env.pop("APPLIANCE_ROOT", None)
        fleet = Fleet(project, env, ports, machines)
        fleet.first = fleet.apply()
        yield fleet
    finally:
        for m in machines.values():
            m.stop()
        shutil.rmtree(under, ignore_errors=True)


def _health(fleet: Fleet, host: str) -> dict[str, Any]:
    """`rt-engine ctl status` inside the host (the engine answers ACTIVE), its status."""
    endpoint = f"tcp://127.0.0.1:{fleet.ports[host]['control']}"
    run = fleet.machines[host].sh(
        f"/opt/py-rt/current/bin/rt-engine ctl --endpoint {endpoint} status "
        "--expect-state active --wait-ms 15000"
    )
    assert run.returncode == 0, run.stdout + run.stderr
    status: dict[str, Any] = json.loads(run.stdout.splitlines()[-1])["status"]
    return status


def test_fresh_install_over_ssh_under_systemd(fleet: Fleet) -> None:
    rc, out, err = fleet.first
    assert rc == 0, err + json.dumps(out.get("hosts"), indent=1)
    assert [out["hosts"][h]["status"] for h in HOSTS] == ["changed"] * 3
    for host in HOSTS:
        assert fleet.current(host) == out["hosts"][host]["release"]
        props = fleet.show(host, fleet.unit(host), "ActiveState", "User", "SystemCallFilter")
        assert props["ActiveState"] == "active" and props["User"] == "pyrt", props
        assert "sched_setaffinity" in props["SystemCallFilter"]
        status = _health(fleet, host)
        assert [f["state"] for f in status["feeds"]] == ["LIVE"], status


def _kill_when_switched(fleet: Fleet, host: str, old: str, stop: threading.Event) -> list[int]:
    """SIGKILL host's engine once it runs a release other than `old` (systemd restarts it:
    a restart during the soak)."""
    machine = fleet.machines[host]
    unit = fleet.unit(host)
    probe = (
        f"pid=$(systemctl show -p MainPID --value {unit}.service); "
        '[ "$pid" -gt 0 ] && echo "$pid $(readlink -f /proc/$pid/exe)"'
    )
    killed: list[int] = []
    while not stop.is_set() and not killed:
        line = machine.sh(probe).stdout.split()
        # The engine itself (not systemd's child before the exec) of another release.
        new = len(line) == 2 and "/releases/" in line[1] and f"/releases/{old}/" not in line[1]
        if new and machine.sh(f"kill -KILL {line[0]}").returncode == 0:
            killed.append(int(line[0]))
        time.sleep(0.2)
    return killed


def test_host_2_failing_its_soak_is_rolled_back_and_host_1_keeps_the_new_release(
    fleet: Fleet,
) -> None:
    old = {h: fleet.current(h) for h in HOSTS}
    h3_start = fleet.show("h3", "py-rt-e3", "ExecMainStartTimestampMonotonic", "MainPID")
    stop = threading.Event()
    killed: list[int] = []
    watcher = threading.Thread(
        target=lambda: killed.extend(_kill_when_switched(fleet, "h2", old["h2"], stop))
    )
    watcher.start()
    try:
        rc, out, err = fleet.apply("risk.max_open_orders=7", "deployment.rollout.soak_seconds=3")
    finally:
        stop.set()
        watcher.join()
    assert rc == 1, err
    assert killed, "host 2's new engine was never seen running"
    hosts = out["hosts"]
    assert [hosts[h]["status"] for h in HOSTS] == ["changed", "rolled back", "not run"], hosts
    failure = hosts["h2"]["failure"]
    assert "failed on h2: Soak the release" in failure, failure
    assert "restart" in failure and f"rolled back to {old['h2']} (healthy)" in failure, failure
    new_h1 = hosts["h1"]["release"]
    assert new_h1 != old["h1"]
    # On the hosts themselves: host 1 on the new release, host 2 back, host 3 untouched.
    assert [fleet.current(h) for h in HOSTS] == [new_h1, old["h2"], old["h3"]]
    assert fleet.show("h3", "py-rt-e3", "ExecMainStartTimestampMonotonic", "MainPID") == h3_start
    record = json.loads((fleet.project / "state/deployed/sfleet/apply.json").read_text())
    assert {h: record["hosts"][h]["release"] for h in HOSTS} == {
        "h1": new_h1,
        "h2": old["h2"],
        "h3": old["h3"],
    }
    # appliance status, read from the hosts over SSH, shows exactly that.
    run = fleet.cli("status", "--format", "json")
    assert run.returncode == 0, run.stdout + run.stderr
    rows = {r["host"]: r for r in json.loads(run.stdout)["hosts"]}
    assert {h: rows[h]["release"] for h in HOSTS} == {
        "h1": new_h1,
        "h2": old["h2"],
        "h3": old["h3"],
    }
    assert rows["h1"]["last"]["event"] == "applied"
    assert rows["h2"]["last"]["event"] == "rolled back"
    assert rows["h2"]["last"]["failed_release"] == hosts["h2"]["release"]
    assert "Soak the release" in rows["h2"]["last"]["reason"]
    assert rows["h3"]["last"]["release"] == old["h3"]
    for h in HOSTS:
        assert rows[h]["drift"] is None and rows[h]["reachable"], rows[h]
        assert rows[h]["engine_status"]["risk_state"] == "active", rows[h]
    # systemd's own count: host 2's engine was restarted after the kill (then rolled back).
    services = {s["unit"]: s for s in rows["h1"]["services"]}
    assert services["py-rt-e1"]["state"] == "running", rows["h1"]


def _tasks(artifacts: str, host: str) -> list[tuple[str, dict[str, Any]]]:
    """The tasks an Ansible run (its ansible-runner artifacts) ran on `host`, in order."""
    done = []
    for path in Path(artifacts, "job_events").glob("*.json"):
        event = json.loads(path.read_text())
        data = event.get("event_data") or {}
        if data.get("host") == host and event.get("event") == "runner_on_ok":
            done.append((int(event["counter"]), str(data["task"]), data.get("res") or {}))
    return [(task, res) for _, task, res in sorted(done, key=lambda e: e[0])]


def test_a_change_that_needs_a_reboot_reboots_the_container_for_real(fleet: Fleet) -> None:
    """Housekeeping cores are a kernel argument (irqaffinity): the plan flags host 2; apply
    stops before switching it; with --allow-reboot Ansible drains host 2, reboots it (its
    systemd reboots; systemd-nspawn exits 133 and the boot loop boots it again), verifies
    the kernel, switches and starts it, and goes on to host 3."""
    change = ["risk.max_open_orders=7", "hosts.h2.cpu.housekeeping=[0,1]"]
    machine = fleet.machines["h2"]
    old = {h: fleet.current(h) for h in HOSTS}
    boot_before = machine.boot_id()
    rc, out, err = fleet.apply(*change)
    assert rc == 1, err
    assert out["plan"]["summary"]["reboot"] == ["h2"], out["plan"]["summary"]
    assert [out["hosts"][h]["status"] for h in HOSTS] == ["ok", "failed", "not run"]
    failure = out["hosts"]["h2"]["failure"]
    assert "h2 needs a reboot for host.cpu.housekeeping" in failure, failure
    assert "nothing was switched on it" in failure and "--allow-reboot" in failure, failure
    assert [fleet.current(h) for h in HOSTS] == [old[h] for h in HOSTS]
    assert machine.boot_id() == boot_before and machine.exits == []

    rc, out, err = fleet.apply(*change, "--allow-reboot")
    assert rc == 0, err + json.dumps(out.get("hosts"), indent=1)
    hosts = out["hosts"]
    assert [hosts[h]["status"] for h in HOSTS] == ["ok", "changed", "changed"], hosts
    # A real reboot: systemd-nspawn exited 133, a new boot, a new boot id.
    assert machine.exits == [133] and machine.boots == 2, (machine.exits, machine.boots)
    boot_after = machine.boot_id()
    assert boot_after != boot_before
    print(f"h2 boot id {boot_before} -> {boot_after}")
    # In this order on host 2: drain, reboot, verify the kernel it booted, switch, health.
    ran = _tasks(out["artifacts"], "h2")
    names = [task for task, _ in ran]
    steps = [
        "Stop the services under systemd",
        "Keep the drained services from starting at boot",
        "Reboot the host",
        "Read the CPU layout, NUMA nodes and hugepages from /sys and /proc",
        "Switch current to the release",
        "Wait for the engine to report healthy",
    ]
    at = [0]
    for step in steps:
        at.append(names.index(step, at[-1]) + 1)
    assert ran[at[3] - 1][1]["rebooted"] is True, ran[at[3] - 1]
    verified = json.loads(ran[at[4] - 1][1]["stdout"])
    assert verified["problems"] == [] and verified["observed"]["online CPUs"], verified
    assert fleet.current("h2") == hosts["h2"]["release"] != old["h2"]
    unit = machine.sh("cat /etc/systemd/system/py-rt-e2.service").stdout
    assert "CPUAffinity=0 1\n" in unit
    # The kernel arguments for the next boot of a real host are written (grub.d).
    grub = machine.sh("cat /etc/default/grub.d/90-py-rt.cfg").stdout
    assert "irqaffinity=0-1" in grub, grub
    props = fleet.show("h2", "py-rt-e2", "ActiveState", "NRestarts", "UnitFileState")
    assert props == {"ActiveState": "active", "NRestarts": "0", "UnitFileState": "enabled"}
    # Drained until the switch: in this boot the engine started once, on the new release (its
    # units were disabled before the reboot, so the release left did not start at boot).
    for unit in ("py-rt-e2", "py-rt-e2-sim-sim_h2"):
        starts = machine.sh(f"journalctl -b -u {unit}.service -o cat | grep -c '^Started '")
        assert starts.stdout.strip() == "1", (unit, starts.stdout, starts.stderr)
    status = _health(fleet, "h2")
    assert status["risk_state"] == "active" and [f["state"] for f in status["feeds"]] == ["LIVE"]
    record = json.loads(machine.sh("cat /opt/py-rt/apply.json").stdout)
    assert record["event"] == "applied" and record["release"] == hosts["h2"]["release"]
    run = fleet.cli("status", "--format", "json")
    assert run.returncode == 0, run.stdout + run.stderr
    rows = {r["host"]: r for r in json.loads(run.stdout)["hosts"]}
    assert {h: rows[h]["release"] for h in HOSTS} == {h: hosts[h]["current"] for h in HOSTS}


def test_a_release_failing_after_its_reboot_is_rolled_back_and_enabled_again(
    fleet: Fleet,
) -> None:
    """Host 2 back to one housekeeping core (a reboot again) with its control socket moved to
    a port something holds: drained, rebooted, verified, switched; its health check fails and
    it is rolled back to the release it ran, running and enabled (it starts at the next
    boot, though the roll-out disabled the units for the reboot)."""
    machine = fleet.machines["h2"]
    before = fleet.current("h2")
    boot_before = machine.boot_id()
    with held_port() as port:
        rc, out, err = fleet.apply(
            "risk.max_open_orders=7",
            "hosts.h2.cpu.housekeeping=[0]",
            f"deployment.engines.e2.bus.control=tcp://127.0.0.1:{port}",
            "--allow-reboot",
        )
    assert rc == 1, err
    hosts = out["hosts"]
    assert [hosts[h]["status"] for h in HOSTS] == ["ok", "rolled back", "not run"], hosts
    assert f"rolled back to {before} (healthy)" in hosts["h2"]["failure"], hosts["h2"]
    assert machine.exits == [133, 133] and machine.boot_id() != boot_before
    assert fleet.current("h2") == before
    for unit in ("py-rt-e2", "py-rt-e2-sim-sim_h2"):
        props = fleet.show("h2", unit, "ActiveState", "UnitFileState")
        assert props == {"ActiveState": "active", "UnitFileState": "enabled"}, (unit, props)
    assert _health(fleet, "h2")["risk_state"] == "active"


def test_stop_over_ssh(fleet: Fleet) -> None:
    run = fleet.cli("stop", "--yes")
    assert run.returncode == 0, run.stdout + run.stderr
    for host in HOSTS:
        assert fleet.show(host, fleet.unit(host), "ActiveState")["ActiveState"] == "inactive"
