"""`appliance ctl` and `appliance monitor` against the fake engine: exit codes, stdout, stderr
(snapshots where the output is deterministic)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from appliance.bus import bus_pb2 as pb
from tests.bus.fake_engine import FakeEngine
from tests.conftest import Run

# Nothing listens on the discard port: a REQ there never gets an answer.
DEAD = "tcp://127.0.0.1:9"


@pytest.fixture(autouse=True)
def plain_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rich output of a fixed width and without colours, whatever the caller's terminal."""
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.setenv("LINES", "60")
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def quiet() -> Iterator[FakeEngine]:
    with FakeEngine(heartbeat_s=None) as fake:
        yield fake


def _bus(engine: FakeEngine) -> list[str]:
    return [
        f"deployment.engines.paper_1.bus.events={engine.events}",
        f"deployment.engines.paper_1.bus.control={engine.control}",
    ]


def test_ctl_status_snapshot(
    quiet: FakeEngine, cli: Callable[..., Run], snapshot: Callable[[str, str], None]
) -> None:
    run = cli("ctl", "--endpoint", quiet.control, "status")
    snapshot("ctl_status", run.snapshot_text().replace(quiet.control, "tcp://FAKE"))
    assert run.exit_code == 0
    assert quiet.requests == ["status"]


def test_ctl_unreachable_snapshot(
    cli: Callable[..., Run], snapshot: Callable[[str, str], None]
) -> None:
    run = cli("ctl", "--endpoint", DEAD, "--timeout", "0.2", "pause")
    snapshot("ctl_unreachable", run.snapshot_text())
    assert run.exit_code == 1


def test_ctl_unreachable_from_the_deployment(
    project: Path, cli: Callable[..., Run], snapshot: Callable[[str, str], None]
) -> None:
    run = cli(
        "ctl",
        f"deployment.engines.paper_1.bus.control={DEAD}",
        "status",
        "--timeout",
        "0.2",
        root=project,
    )
    snapshot("ctl_unreachable_deployment", run.snapshot_text())


def test_ctl_refused_snapshot(
    quiet: FakeEngine, cli: Callable[..., Run], snapshot: Callable[[str, str], None]
) -> None:
    run = cli("ctl", "--endpoint", quiet.control, "tighten", "risk.max_daily_loss", "500")
    snapshot("ctl_tighten_refused", run.snapshot_text())
    assert run.exit_code == 2


def test_ctl_commands_through_the_deployment(
    quiet: FakeEngine, project: Path, cli: Callable[..., Run]
) -> None:
    run = cli("ctl", *_bus(quiet), "pause", root=project)
    assert run.exit_code == 0, run.stderr
    assert run.stdout.startswith(f"ok: paused ({quiet.control}); engine paper_1: risk ACTIVE")
    # the fake runs another manifest than conf/ compiles to: said on stderr, still ok
    assert "warning: the engine runs manifest sha256:abababab" in run.stderr
    run = cli(
        "ctl", *_bus(quiet), "tighten", "instruments.BTCUSDT.max_position", "0.01", root=project
    )
    assert run.exit_code == 0, run.stderr
    assert "tightened instruments.BTCUSDT.max_position to 0.01" in run.stdout
    run = cli("ctl", *_bus(quiet), "kill", root=project)
    assert "kill switch engaged" in run.stdout and "risk HALTED" in run.stdout
    # each command after a status that checks who answers
    assert quiet.requests == ["status", "pause", "status", "tighten", "status", "kill"]


def test_ctl_refuses_to_command_another_engine(project: Path, cli: Callable[..., Run]) -> None:
    with FakeEngine("paper_9", heartbeat_s=None) as other:
        run = cli("ctl", *_bus(other), "kill", root=project)
        assert run.exit_code == 2
        assert run.stderr == (
            f"error: {other.control} answers as engine paper_9 of paper_local, not paper_1 of "
            "paper_local: nothing was sent\n"
        )
        assert other.requests == ["status"]


def test_ctl_refuses_a_remote_engines_loopback_endpoint(
    project: Path, cli: Callable[..., Run]
) -> None:
    run = cli("ctl", "deployment=prod_example", "--engine", "spot_a", "kill", root=project)
    assert run.exit_code == 2
    assert run.stderr.startswith(
        "error: engine spot_a runs on ny4_a (10.20.0.11) and its bus endpoint "
        "tcp://127.0.0.1:7102 is local to that host"
    )
    run = cli("ctl", "deployment=prod_example", "status", root=project)
    assert run.exit_code == 2
    assert run.stderr == (
        "error: prod_example runs 2 engines: choose one of spot_a, usdm_b with --engine\n"
    )
    run = cli("ctl", "--engine", "paper_2", "status", root=project)
    assert run.exit_code == 2
    assert run.stderr == "error: no engine 'paper_2' in paper_local (engines: paper_1)\n"


def test_ctl_timeout_must_be_positive(cli: Callable[..., Run]) -> None:
    run = cli("ctl", "--endpoint", DEAD, "--timeout", "0", "status")
    assert run.exit_code == 2
    assert run.stderr == "error: --timeout must be a positive number of seconds, got 0\n"


def test_ctl_status_json(quiet: FakeEngine, cli: Callable[..., Run]) -> None:
    run = cli("ctl", "--endpoint", quiet.control, "status", "--format", "json")
    assert run.exit_code == 0
    body = json.loads(run.stdout)
    assert body["ok"] is True and body["command"] == "status"
    assert body["status"]["equity"] == "9998.7812"  # decimal digits kept exactly
    assert body["status"]["positions"][0]["qty"] == "0.00400"
    assert body["status"]["risk_state"] == "ACTIVE"


def test_ctl_refused_json_exit_2(quiet: FakeEngine, cli: Callable[..., Run]) -> None:
    run = cli("ctl", "--endpoint", quiet.control, "-f", "json", "tighten", "max_open_orders", "50")
    assert run.exit_code == 2
    body = json.loads(run.stdout)
    assert body["ok"] is False and "would loosen" in body["error"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "error: missing command"),
        (["stop"], "error: unknown command 'stop'"),
        (["tighten", "max_daily_loss"], "error: usage: appliance ctl"),
        (["tighten", "max_daily_loss", "lots"], "error: tighten VALUE must be a decimal number"),
        (["pause", "now"], "error: pause takes no arguments"),
    ],
)
def test_ctl_usage_errors_are_one_line(
    args: list[str], message: str, cli: Callable[..., Run]
) -> None:
    run = cli("ctl", "--endpoint", DEAD, *args)
    assert run.exit_code == 2
    assert run.stderr.startswith(message)
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr


def test_ctl_invalid_config_exit_2(project: Path, cli: Callable[..., Run]) -> None:
    run = cli("ctl", "deployment=nope", "status", root=project)
    assert run.exit_code == 2
    assert "nope" in run.stderr and "Traceback" not in run.stderr


def test_monitor_once(project: Path, cli: Callable[..., Run]) -> None:
    with FakeEngine(heartbeat_s=0.05) as fake:
        fake.publish(
            pb.Event(
                order=pb.OrderUpdate(
                    order_id=7,
                    strategy="mm_btcusdt",
                    exchange="sim_binance",
                    symbol="BTCUSDT",
                    side=pb.BUY,
                    kind=pb.POST_ONLY,
                    price="60000.01",
                    qty="0.001",
                    filled_qty="0",
                    status=pb.ACCEPTED,
                )
            )
        )
        run = cli("monitor", *_bus(fake), "--once", "--duration", "5", root=project)
    assert run.exit_code == 0, run.stderr
    out = run.stdout
    for expected in (
        "engine paper_1  paper_local (paper) on local, pid 4242  risk ACTIVE",
        "9,998.7812",  # equity
        "tick_to_order",
        "3.1 µs",  # p50
        "15.2 µs",  # p99
        "md_messages",
        "LIVE",
        "0.00400",  # position qty, exact
        "60,123.45",
    ):
        assert expected in out, f"{expected!r} not in monitor output:\n{out}"
    assert "lost" not in out


def test_monitor_once_shows_lost_messages(cli: Callable[..., Run]) -> None:
    with FakeEngine(heartbeat_s=None) as fake:
        # the first heartbeat the monitor sees comes after a gap of 4
        import threading

        def later() -> None:
            import time

            for _ in range(40):
                fake.publish(pb.Event(feed=fake.feed()))
                time.sleep(0.02)
            fake.publish(pb.Event(heartbeat=fake.heartbeat()), seq=fake.seq + 5)

        thread = threading.Thread(target=later)
        thread.start()
        run = cli("monitor", "--events", fake.events, "--once", "--duration", "5")
        thread.join()
    assert run.exit_code == 0, run.stderr
    assert "WARNING: 4 bus messages lost (1 gap in seq)" in run.stdout
    assert "status: no reply from the engine's control socket" not in run.stdout


def test_monitor_once_without_engine(cli: Callable[..., Run]) -> None:
    run = cli("monitor", "--events", DEAD, "--once", "--duration", "0.3")
    assert run.exit_code == 1
    assert run.stderr == (
        "error: no heartbeat on tcp://127.0.0.1:9 within 0.3 s (is the engine running?)\n"
    )


def test_monitor_duration_is_bounded(cli: Callable[..., Run]) -> None:
    import time

    with FakeEngine(heartbeat_s=0.05) as fake:
        start = time.monotonic()
        run = cli("monitor", "--events", fake.events, "--control", fake.control, "--duration", "1")
        elapsed = time.monotonic() - start
    assert run.exit_code == 0, run.stderr
    assert 0.9 <= elapsed < 5
    assert "tick_to_order" in run.stdout


def test_monitor_ends_cleanly_on_ctrl_c(ctrl_c: Callable[..., Run]) -> None:
    with FakeEngine(heartbeat_s=0.05) as fake:
        # --duration only bounds the test; Ctrl-C ends the watch long before.
        run = ctrl_c(
            "monitor",
            "--events",
            fake.events,
            "--control",
            fake.control,
            "--duration",
            "120",
            # Rich draws to a file only at the end: wait for the status it asks for first.
            ready=lambda _out: "status" in fake.requests,
        )
    assert run.exit_code == 0, run.stderr
    assert "tick_to_order" in run.stdout
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize("command", ["monitor", "run"])
def test_negative_duration_is_a_usage_error(command: str, cli: Callable[..., Run]) -> None:
    run = cli(command, "--duration", "-1")
    assert run.exit_code == 2
    assert run.stderr == "error: --duration must not be negative, got -1\n"
