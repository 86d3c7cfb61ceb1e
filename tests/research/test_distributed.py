"""Many workers on one study: a worker killed mid-trial, on PostgreSQL and on SQLite.

The PostgreSQL server is real (Debian's `postgresql`): the fixture finds its binaries (or
installs the package when it runs as root on a machine without them), makes a throwaway
cluster with `initdb` in a temporary directory, starts it with `pg_ctl` on 127.0.0.1 (trust
authentication for loopback in that cluster only) and always stops it. initdb refuses to run as
root, so as root the server runs as the `postgres` system user the package creates.

The test runs `appliance optimize --workers 2` as a user would, waits until both of its worker
processes are in a trial, kills one (SIGKILL) and then reads the storage: every trial is
recorded once, the killed trial was failed by its stale heartbeat and retried with the same
parameters, nothing is left RUNNING or WAITING, and the study's best is the best of its trials.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from appliance.research import optimize
from tests import debian
from tests.research.test_optimize import project  # noqa: F401  (the fixture)

PG_TOOLS = ("initdb", "pg_ctl", "postgres", "createdb")
# Long enough trials that both workers are in one most of the time: 7 folds, none pruned.
STUDY = [
    "study=mm_paper_local",
    "study.walk_forward.step=30s",
    "study.pruner.kind=none",
    "study.constraints=[]",
]
TRIALS = 12


def _pg_bindir() -> Path | None:
    candidates = []
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, timeout=30, check=True
        )
        candidates.append(Path(out.stdout.strip()))
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    for directory in candidates:
        if all((directory / tool).is_file() for tool in PG_TOOLS):
            return directory
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on 127.0.0.1; yields a URL of an empty database."""
    bindir = _pg_bindir()
    if bindir is None:
        debian.install("postgresql")
        bindir = _pg_bindir()
        if bindir is None:
            pytest.fail("the `postgresql` package is installed but initdb/pg_ctl are not found")
    as_user: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="pyrt-pg-"))
    if os.geteuid() == 0:
        # initdb refuses root: the cluster belongs to the package's `postgres` system user.
        try:
            shutil.chown(base, "postgres", "postgres")
        except (LookupError, OSError) as exc:
            shutil.rmtree(base, ignore_errors=True)
            pytest.fail(f"running as root needs the `postgres` system user: {exc}")
        as_user = ["runuser", "-u", "postgres", "--"]
    datadir, log = base / "data", base / "server.log"
    port = _free_port()

    def pg(tool: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*as_user, str(bindir / tool), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=base,
        )

    started = False
    try:
        init = pg("initdb", "-D", str(datadir), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--no-sync")  # fmt: skip
        assert init.returncode == 0, f"initdb failed: {init.stderr}"
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {base} -c fsync=off"
        start = pg("pg_ctl", "-D", str(datadir), "-l", str(log), "-o", options, "-w", "-t", "60",
                   "start")  # fmt: skip
        started = True
        assert start.returncode == 0, (
            f"pg_ctl start failed: {start.stderr}\n{log.read_text() if log.exists() else ''}"
        )
        made = pg("createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "optuna")
        assert made.returncode == 0, f"createdb failed: {made.stderr}"
        yield f"postgresql://postgres@127.0.0.1:{port}/optuna"
    finally:
        if started:
            pg("pg_ctl", "-D", str(datadir), "stop", "-m", "immediate", "-w", "-t", "60")
        shutil.rmtree(base, ignore_errors=True)


def _children(pid: int, marker: str) -> list[int]:
    """Live child processes of `pid` whose command line contains `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z" and marker in cmdline:
            found.append(int(entry.name))
    return sorted(found)


# RUNNING trials, each with whether it is in its backtests: a fold reported (so every parameter
# is drawn) and its heartbeat recorded (a worker killed before that leaves a trial without).
RUNNING = (
    "SELECT t.number, EXISTS (SELECT 1 FROM trial_intermediate_values v "
    "WHERE v.trial_id = t.trial_id) "
    "AND EXISTS (SELECT 1 FROM trial_heartbeats h WHERE h.trial_id = t.trial_id) "
    "FROM trials t WHERE t.state = 'RUNNING'"
)


def _running_in_sqlite(url: str) -> dict[int, bool] | None:
    try:
        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"), timeout=0.5)) as c:
            rows = c.execute(RUNNING).fetchall()
    except sqlite3.Error:
        return None  # the stopped worker holds the lock: try again later
    return {int(n): bool(busy) for n, busy in rows}


def _running_in_postgres(url: str) -> dict[int, bool] | None:
    import psycopg

    with psycopg.connect(url, connect_timeout=10) as conn:
        rows = conn.execute(RUNNING).fetchall()
    return {int(n): bool(busy) for n, busy in rows}


def _kill_a_worker_mid_trial(
    parent: subprocess.Popen[str], running: Callable[[], dict[int, bool] | None]
) -> tuple[int, set[int]]:
    """SIGKILL one of `parent`'s two workers while it is in a trial. The worker is stopped
    first (SIGSTOP), so that what the storage shows cannot change under it: with both workers
    alive, two RUNNING trials mean one of them is the stopped worker's, and it is killed only
    once both are in their backtests (a fold reported, heartbeat recorded). Returns the killed pid
    and the trials RUNNING when it was killed."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert parent.poll() is None, "the study ended before a worker was killed mid-trial"
        workers = _children(parent.pid, "appliance.research.optimize")
        if len(workers) == 2:
            victim = workers[0]
            os.kill(victim, signal.SIGSTOP)
            now = running()
            both = _children(parent.pid, "appliance.research.optimize") == workers
            if now is not None and len(now) == 2 and all(now.values()) and both:
                os.kill(victim, signal.SIGKILL)
                return victim, set(now)
            os.kill(victim, signal.SIGCONT)
        time.sleep(0.05)
    pytest.fail("never saw both workers in a trial")


def _load(url: str, name: str) -> object:
    import optuna

    return optuna.load_study(study_name=name, storage=optimize.engine_url(url))


def _kill_test(root: Path, url: str, running: Callable[[], dict[int, bool] | None]) -> None:
    import optuna
    from optuna.trial import TrialState

    cmd = [sys.executable, "-m", "appliance.cli", "optimize", *STUDY, "--trials", str(TRIALS),
           "--workers", "2", "--storage", url, "--no-report", "--format", "json",
           "--root", str(root)]  # fmt: skip
    with subprocess.Popen(
        cmd, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as parent:
        try:
            victim, at_kill = _kill_a_worker_mid_trial(parent, running)
            stdout, stderr = parent.communicate(timeout=600)
        finally:
            if parent.poll() is None:
                parent.kill()
                for pid in _children(parent.pid, "appliance.research.optimize"):
                    os.kill(pid, signal.SIGKILL)
    assert parent.returncode == 0, stderr
    assert f"exit [{-signal.SIGKILL}]" in stderr, stderr
    out = json.loads(stdout)
    study = _load(url, out["optuna_study"])
    assert isinstance(study, optuna.Study)
    trials = study.get_trials(deepcopy=False)

    # Every trial recorded exactly once: numbers 0..n-1, each once, at least the trials asked.
    numbers = [t.number for t in trials]
    assert sorted(numbers) == list(range(len(trials))) and len(trials) >= TRIALS
    assert len({t._trial_id for t in trials}) == len(trials)
    assert not [t.number for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]

    # Exactly the killed worker's trial failed (by its stale heartbeat: the retry callback
    # only runs for those), and it was retried once with the same parameters, to completion.
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(failed) == 1, [(t.number, t.state) for t in trials]
    killed = failed[0]
    assert killed.number in at_kill and killed.value is None, (killed.number, at_kill, victim)
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retries) == 1
    retry = retries[0]
    assert retry.state == TrialState.COMPLETE and retry.number > killed.number
    assert retry.params == killed.params and retry.system_attrs["retry_history"] == [killed.number]
    assert {t.state for t in trials} == {TrialState.COMPLETE, TrialState.FAIL}
    print(f"killed pid {victim} in trial {killed.number} (RUNNING: {sorted(at_kill)}); "
          f"retried as trial {retry.number}; {len(trials)} trials")  # fmt: skip

    # The study's best is the best of its trials, and the CLI reports that one.
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    top = max(float(t.value) for t in complete if t.value is not None)
    assert study.best_value == top
    assert study.best_trial.number in {t.number for t in complete if t.value == top}
    assert out["best_values"] == [top]
    assert out["best_trial"] in {t.number for t in complete if t.value == top}
    assert out["trials"] == {"complete": len(complete), "pruned": 0, "fail": 1}


def test_postgresql_a_worker_killed_mid_trial_is_failed_by_heartbeat_and_retried(
    project: Path,  # noqa: F811
    postgres_url: str,
) -> None:
    _kill_test(project, postgres_url, lambda: _running_in_postgres(postgres_url))


def test_sqlite_a_worker_killed_mid_trial_is_failed_by_heartbeat_and_retried(
    project: Path,  # noqa: F811
) -> None:
    url = f"sqlite:///{project}/state/studies/killed.db"
    _kill_test(project, url, lambda: _running_in_sqlite(url))


def test_a_trial_whose_worker_died_before_its_first_heartbeat_is_failed_and_retried(
    tmp_path: Path,
) -> None:
    """Optuna alone never fails a RUNNING trial without a heartbeat (its worker was killed
    between creating the trial and the first beat); `give_heartbeats` lets it go stale."""
    import optuna
    from optuna.trial import TrialState

    optimize.quiet_optuna()
    storage = optuna.storages.RDBStorage(
        f"sqlite:///{tmp_path}/orphan.db",
        heartbeat_interval=1,
        grace_period=1,
        heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(1),
    )
    study = optuna.create_study(study_name="orphan", storage=storage)
    done = study.ask()
    study.tell(done, 1.0)
    orphan = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})  # no heartbeat
    time.sleep(2.2)
    optuna.storages.fail_stale_trials(study)
    assert study.trials[orphan.number].state == TrialState.RUNNING  # Optuna's gap
    assert optimize.give_heartbeats(study) == [orphan.number]
    assert optimize.give_heartbeats(study) == []  # once
    time.sleep(2.2)
    optuna.storages.fail_stale_trials(study)
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE, TrialState.FAIL, TrialState.WAITING]
    assert study.trials[2].system_attrs["failed_trial"] == orphan.number
    assert study.trials[2].params == study.trials[orphan.number].params
