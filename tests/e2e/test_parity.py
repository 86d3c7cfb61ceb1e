"""Live-vs-replay parity, end to end: the real engine trades against the sim venue over loopback
with the flight recorder on (and an operator tightens a limit, pauses, resumes and flattens);
`appliance parity` replays the recording through the in-process core with the recorded
acknowledgements and fills and reproduces every live decision. Replayed with one strategy
parameter changed, the first divergence is the first decision, and its cause is the
configuration (the key named with both values), not the book or the risk state; a tampered
capture is named as a different book, a decision moved to the next input as a timing difference.

One recorded run (module scope) serves every test; each wait is bounded.
"""

from __future__ import annotations

import gzip
import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from appliance.config.compiler import compile_config
from tests.conftest import Run
from tests.e2e.harness import counters, live, wait_for
from tests.e2e.test_live import wait_live


@dataclass
class Recorded:
    flight: Path
    project: Path
    overrides: list[str]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    tmp = tmp_path_factory.mktemp("parity")
    flight = tmp / "flight"
    override = (
        f"deployment.engines.paper_1.flight_recorder={{dir: '{flight}', file_mb: 64, "
        "budget_mb: 1024}"
    )
    with live(tmp, override) as env:
        env.start_sim()
        env.start_engine()
        wait_live(env)
        wait_for(lambda: counters(env.heartbeat()).get("fills", 0) >= 3, 90, "three fills")
        # Operator commands are inputs too: each is replayed where the strategy applied it.
        env.command("tighten", "instruments.BTCUSDT.max_position", "0.01")
        for name in ("pause", "resume", "flatten", "resume"):
            env.command(name)
        orders = counters(env.heartbeat())["orders_out"]
        wait_for(lambda: counters(env.heartbeat())["orders_out"] > orders + 2, 60, "more orders")
        assert env.stop("engine") == 0
        log = env.procs["engine"].text()
        # The overrides the run was compiled with (ports, journal), for a changed manifest.
        overrides = [*env.manifest["provenance"]["overrides"]]
        assert " 0 dropped" in log, log
        yield Recorded(flight, env.root, overrides)


def _parity(cli: Callable[..., Run], *args: str) -> tuple[Run, dict[str, Any]]:
    done = cli("parity", *args, "--format", "json")
    return done, json.loads(done.stdout) if done.stdout.strip().startswith("{") else {}


def _tampered(
    recorded: Recorded, tmp_path: Path, part: str, edit: Callable[[list[str]], None]
) -> Path:
    """A copy of the recording whose one file under `part` has its lines rewritten by `edit`."""
    copy = tmp_path / f"flight-{part}-{len(list(tmp_path.iterdir()))}"
    shutil.copytree(recorded.flight, copy)
    (path,) = sorted((copy / part).glob("*.gz"))
    lines = gzip.decompress(path.read_bytes()).decode().splitlines(keepends=True)
    edit(lines)
    path.write_bytes(gzip.compress("".join(lines).encode()))
    return copy


def test_replay_with_recorded_reports_reproduces_every_live_decision(
    recorded: Recorded, cli: Callable[..., Run]
) -> None:
    text = cli("parity", str(recorded.flight))
    assert text.exit_code == 0, text.snapshot_text()
    assert "PARITY: every live decision was reproduced" in text.stdout, text.stdout
    done, result = _parity(cli, str(recorded.flight))
    assert done.exit_code == 0, done.snapshot_text()
    assert result["parity"] and result["divergence_count"] == 0
    # Every order and cancel the engine sent, and every report it read, went through the replay.
    assert result["live_decisions"] == result["matched"] == result["replay_decisions"] > 0
    assert result["fills"] >= 3 and result["md_events"] > 0 and result["timers"] > 0
    # tighten, pause, resume, flatten, resume and the engine's stop.
    assert result["commands"] == 6
    # With the recorded fills, the core's portfolio is live's: its fills and orders.
    assert result["summary"]["fills"] == result["fills"]
    assert result["summary"]["orders_sent"] > 0


def test_a_changed_parameter_is_named_as_the_first_cause(
    recorded: Recorded, cli: Callable[..., Run], tmp_path: Path
) -> None:
    changed = compile_config(
        recorded.project, [*recorded.overrides, "strategies.mm_btcusdt.params.half_spread_ticks=3"]
    )
    (m,) = changed.manifests
    path = tmp_path / "changed.manifest.json"
    path.write_text(m.text)
    done, result = _parity(cli, str(recorded.flight), "--manifest", str(path))
    assert done.exit_code == 1, done.snapshot_text()
    assert not result["parity"] and result["divergence_count"] > 0
    key = "strategies.mm_btcusdt.params.half_spread_ticks: live 2, replay 3"
    assert result["config_diff"] == [key]
    first = result["divergences"][0]
    # The very first decision differs (the first quote's price), on the same book and risk
    # state: the cause is the configuration, named with both values.
    assert result["matched_before_first"] == 0 and first["slot"] == 0, first
    assert first["cause"] == "config", first
    assert key in first["detail"]
    assert first["live"].startswith("new ") and first["replay"].startswith("new ")
    assert first["live"] != first["replay"]
    text = cli("parity", str(recorded.flight), "--manifest", str(path))
    assert text.exit_code == 1
    assert "first divergence: input #" in text.stdout and "cause:  config" in text.stdout


def test_a_different_book_is_named_as_the_first_cause(
    recorded: Recorded, cli: Callable[..., Run], tmp_path: Path
) -> None:
    # The recording with its first snapshot's best bid level removed: the replay's book differs
    # from the one live decided on, and so does the first quote (around the microprice).
    removed: list[str] = []

    def drop_best_bid(lines: list[str]) -> None:
        first = next(n for n, line in enumerate(lines) if '"lastUpdateId"' in line)
        ts, body = lines[first].split(" ", 1)
        snapshot = json.loads(body)
        removed.append(snapshot["bids"].pop(0)[0])
        lines[first] = f"{ts} {json.dumps(snapshot, separators=(',', ':'))}\n"

    copy = _tampered(recorded, tmp_path, "sim_binance", drop_best_bid)
    (price,) = removed
    done, result = _parity(cli, str(copy))
    assert done.exit_code == 1, done.snapshot_text()
    assert result["config_diff"] == [] and result["matched_before_first"] == 0
    d = result["divergences"][0]
    assert d["cause"] == "book", d
    assert (
        d["detail"].startswith("a different book: live bid ") and price.rstrip("0") in d["detail"]
    )


def test_a_decision_taken_at_another_input_is_a_timing_difference(
    recorded: Recorded, cli: Callable[..., Run], tmp_path: Path
) -> None:
    # The decision log with live's first order moved after the next input: the replay takes it
    # one input earlier than (this) live did.
    def delay_first_order(lines: list[str]) -> None:
        first = next(n for n, line in enumerate(lines) if line.split()[1] == "new")
        decisions = ("new", "cancel", "cancel_all")
        after = next(
            n for n in range(first + 1, len(lines)) if lines[n].split()[1] not in decisions
        )
        lines.insert(after, lines.pop(first))

    copy = _tampered(recorded, tmp_path, "strategy", delay_first_order)
    done, result = _parity(cli, str(copy))
    assert done.exit_code == 1, done.snapshot_text()
    causes = [d["cause"] for d in result["divergences"]]
    assert "timing" in causes and "book" not in causes and "config" not in causes, causes
    paired = [d for d in result["divergences"] if "took the same decision" in d["detail"]]
    assert paired, result["divergences"]
    assert paired[0]["detail"].startswith("a timing difference: the replay took the same decision")


def test_model_mode_reports_fill_rate_and_pnl_against_live(
    recorded: Recorded, cli: Callable[..., Run]
) -> None:
    done, result = _parity(cli, str(recorded.flight), "--model")
    assert done.exit_code == 0, done.snapshot_text()
    rows = result["model"]["differences"]
    assert rows["fills"]["live"] == result["fills"]
    assert rows["fill_ratio"]["model"] is not None and rows["pnl"]["live"] is not None
    text = cli("parity", str(recorded.flight), "--model")
    assert "live vs the modelled replay" in text.stdout and "fill_ratio" in text.stdout


def test_bad_input_exits_2_naming_the_path(
    recorded: Recorded, cli: Callable[..., Run], tmp_path: Path
) -> None:
    missing = cli("parity", str(tmp_path / "nowhere"))
    assert missing.exit_code == 2 and "nowhere" in missing.stderr, missing.snapshot_text()
    assert "no such directory" in missing.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    no_log = cli("parity", str(empty))
    assert no_log.exit_code == 2 and "no decision log" in no_log.stderr
    bad = cli("parity", str(recorded.flight), "--manifest", str(tmp_path / "x.json"))
    assert bad.exit_code == 2 and "--manifest" in bad.stderr

    def drop_start(lines: list[str]) -> None:
        del lines[0]

    def keep_50(lines: list[str]) -> None:
        del lines[50:]

    # A run whose first lines are gone (as when the budget deleted its first file).
    headless = cli("parity", str(_tampered(recorded, tmp_path, "strategy", drop_start)))
    assert headless.exit_code == 2 and "no file begins a run" in headless.stderr
    # A market event the captures do not hold: the recording is incomplete, named.
    gone = _tampered(recorded, tmp_path, "sim_binance", keep_50)
    short = cli("parity", str(gone))
    assert short.exit_code == 2 and "the recording is incomplete" in short.stderr, short.stderr


def test_a_futures_run_replays_its_funding_and_venue_marks(
    tmp_path: Path, cli: Callable[..., Run]
) -> None:
    """A USD-M run (paper_usdm): funding payments and the venue's mark prices reach the engine
    from the user stream and the mark-price stream, not from the market data, and move its
    P&L (funding is realised P&L; unrealised is valued at the venue's mark). They are inputs of
    the decision log, so the replay books the same funding: its realised P&L is live's to the
    last digit, every decision reproduced."""
    from tests.e2e.test_usdm import ENGINE, fapi, usdm

    flight = tmp_path / "flight"
    override = (
        f"deployment.engines.{ENGINE}.flight_recorder={{dir: '{flight}', file_mb: 64, "
        "budget_mb: 1024}"
    )
    with usdm(tmp_path, override, speed="2") as env:
        env.start_sim()
        env.start_engine()
        wait_live(env)

        def position() -> str:
            return str(fapi(env, "/fapi/v2/positionRisk", "symbol=BTCUSDT")[0]["positionAmt"])

        wait_for(lambda: float(position()) != 0, 90, "a position", 0.25)
        assert env.command("pause").ok
        wait_for(lambda: fapi(env, "/fapi/v1/openOrders", "symbol=BTCUSDT") == [], 10, "no orders")

        def realised() -> str:
            status = env.status_or_none()
            assert status is not None and len(status.positions) == 1
            return str(status.positions[0].realised_pnl)

        before = realised()
        env.fault("kind=funding&rate=0.001")
        wait_for(lambda: realised() != before, 10, "the funding booked")
        live_realised = realised()
        assert env.stop("engine") == 0
    done, result = _parity(cli, str(flight))
    assert done.exit_code == 0, done.snapshot_text()
    assert result["parity"] and result["divergence_count"] == 0, result
    assert result["live_decisions"] == result["matched"] > 0
    print(f"parity: {result['live_decisions']} decisions, realised {live_realised}")
    # The funding payment was booked in the replay as live booked it.
    assert result["summary"]["realised_pnl"] == live_realised, (
        result["summary"]["realised_pnl"],
        live_realised,
    )
