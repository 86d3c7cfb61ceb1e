"""`appliance record` end to end: the real sim venue replaying the bundled capture faster than
real time over loopback, the real `rt-engine record`, files checked against their manifest,
read back, replayed through a backtest; Ctrl-C (a real SIGINT) closes cleanly. Bounded in time:
a few seconds of recording each."""

from __future__ import annotations

import gzip
import hashlib
import itertools
import json
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from appliance.bus.processes import listening
from appliance.engine import convert_capture, engine_binary
from appliance.research import backtest
from tests.conftest import ROOT, Run
from tests.e2e.harness import wait_for
from tests.ports import free_port


@pytest.fixture(autouse=True)
def rt_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RT_ENGINE_BIN", str(engine_binary(ROOT)))


@pytest.fixture
def overrides() -> list[str]:
    """Free loopback ports for the sim venue (never the deployment's own), replayed 20x."""
    ws, rest = free_port(), free_port()
    return [
        f"exchanges.sim_binance.endpoints.ws=ws://127.0.0.1:{ws}",
        f"exchanges.sim_binance.endpoints.rest=http://127.0.0.1:{rest}",
        "exchanges.sim_binance.sim.speed=20",
    ]


def listed(out: Path) -> list[dict[str, Any]]:
    files: list[dict[str, Any]] = json.loads((out / "manifest.json").read_text())["files"]
    return files


def check_file(out: Path, entry: dict[str, Any], manifest_sha256: str, tmp: Path) -> None:
    path = out / entry["name"]
    data = path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == entry["sha256"]
    assert len(data) == entry["bytes"]
    # gzip.decompress raises on a stream that was not finished.
    lines = gzip.decompress(data).decode().splitlines()
    assert len(lines) == entry["lines"] > 0
    assert re.fullmatch(r"sim_binance_btcusdt_\d{8}T\d{6}Z(_\d+)?\.gz", entry["name"])
    assert entry["exchange"] == "sim_binance" and entry["venue"] == "sim"
    assert entry["symbols"] == ["BTCUSDT"]
    assert entry["manifest_sha256"] == manifest_sha256
    stamps = [int(line.split(" ", 1)[0]) for line in lines]
    assert (stamps[0], stamps[-1]) == (entry["first_local_ns"], entry["last_local_ns"])
    assert stamps == sorted(stamps)
    # Each file starts with the REST snapshot, raw, so it replays on its own.
    assert lines[0].split(" ", 1)[1].startswith('{"lastUpdateId":')
    counts = convert_capture(str(path), str(tmp / (entry["name"] + ".native")))
    assert counts["decode_errors"] == 0
    assert counts["snapshots"] == entry["snapshots"] >= 1
    assert counts["events"] == entry["lines"]
    assert counts["depth_diffs"] > 0 and counts["trades"] > 0


def test_record_from_the_sim_rotate_read_back_and_replay(
    project: Path, overrides: list[str], cli: Callable[..., Run], tmp_path: Path
) -> None:
    run = cli("record", *overrides, "--duration", "4", "--rotate-mb", "0.1", root=project)
    assert run.exit_code == 0, run.stdout + run.stderr
    assert "started sim sim_binance" in run.stdout
    out = project / "state" / "recordings" / "paper_local"
    files = listed(out)
    assert len(files) >= 2, "0.1 MB files over 4 s at 20x rotate"
    manifest_path = project / "build" / "paper_local" / "local.manifest.json"
    manifest_text = manifest_path.read_text()
    sha = json.loads(manifest_text)["content_sha256"]
    for entry in files:
        check_file(out, entry, sha, tmp_path)
        assert f"sha256:{entry['sha256']}" in run.stdout
        assert f"{entry['lines']:,} lines" in run.stdout
    # Consecutive files: each begins where the previous one ended.
    for a, b in itertools.pairwise(files):
        assert a["last_local_ns"] < b["first_local_ns"]
    assert {p.name for p in out.iterdir()} == {f["name"] for f in files} | {"manifest.json"}
    # The recording replays through the engine's backtest as the bundled capture does.
    result = backtest.run(manifest_text, [out / f["name"] for f in files])
    assert result.counters["data_errors"] == 0
    assert result.counters["events"] == sum(f["lines"] for f in files)
    assert result.counters["diffs_applied"] > 0
    assert result.equity["mid.BTCUSDT"].notna().any()
    # A second recording into the same directory adds to its manifest.
    again = cli("record", *overrides, "--duration", "1", root=project)
    assert again.exit_code == 0, again.stdout + again.stderr
    more = listed(out)
    assert more[: len(files)] == files and len(more) > len(files)


def test_ctrl_c_closes_the_file_and_lists_it(
    project: Path, overrides: list[str], ctrl_c: Callable[..., Run], tmp_path: Path
) -> None:
    out = tmp_path / "rec"

    def recording(stdout: str) -> bool:
        return "recording sim_binance" in stdout and any(out.glob("*.gz"))

    run = ctrl_c("record", *overrides, "--out", str(out), "--root", str(project), ready=recording)
    assert run.exit_code == 130, run.stdout + run.stderr
    assert run.stderr.strip().splitlines() == [
        "interrupted: recording stopped, 1 file(s) closed and listed"
    ]
    assert "Traceback" not in run.stderr
    files = listed(out)
    assert len(files) == 1
    manifest_text = (project / "build" / "paper_local" / "local.manifest.json").read_text()
    check_file(out, files[0], json.loads(manifest_text)["content_sha256"], tmp_path)
    # Nothing left running: the sim and the recorder are gone.
    pids = [int(p) for p in re.findall(r"\(pid (\d+)\)", run.stdout)]
    assert len(pids) == 2, run.stdout
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_a_gap_and_a_reconnect_each_bring_a_snapshot(
    project: Path, overrides: list[str], cli: Callable[..., Run], tmp_path: Path
) -> None:
    """rt-engine record against a sim venue that skips a diff, then drops the connection."""
    assert cli("compile", *overrides, root=project).exit_code == 0
    manifest = project / "build" / "paper_local" / "local.manifest.json"
    ws_port = int(overrides[0].rsplit(":", 1)[1])
    binary = str(engine_binary(ROOT))
    out = tmp_path / "rec"
    with (tmp_path / "sim.log").open("wb") as log:
        faults = ["--fault", "3000:kind=gap", "--fault", "6000:kind=drop"]
        sim = subprocess.Popen(
            [binary, "sim", "--manifest", str(manifest), *faults],
            cwd=project,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: listening("127.0.0.1", ws_port), 20, "the sim venue")
        where = ["--exchange", "sim_binance", "--out", str(out), "--duration", "4"]
        rec = subprocess.run(
            [binary, "record", "--manifest", str(manifest), *where],
            cwd=project,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        sim.terminate()
        sim.wait(10)
    assert rec.returncode == 0, rec.stderr
    assert re.search(r"stopped: 1 files, \d+ frames, 3 snapshots, 1 gaps, 1 reconnects", rec.stdout)
    (entry,) = listed(out)
    assert entry["snapshots"] == 3
    check_file(out, entry, json.loads(manifest.read_text())["content_sha256"], tmp_path)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--exchange", "binance_spot"], "no exchange 'binance_spot'"),
        (["--duration", "0"], "--duration: must be a positive number, got 0"),
        (["--duration", "-3"], "--duration: must be a positive number, got -3"),
        (["--rotate-mb", "0"], "--rotate-mb: must be a positive number, got 0"),
    ],
)
def test_bad_input_is_a_diagnostic(
    project: Path, cli: Callable[..., Run], args: list[str], message: str
) -> None:
    run = cli("record", *args, root=project)
    assert run.exit_code == 2
    assert message in run.stderr
    assert "Traceback" not in run.stderr
    assert not (project / "state").exists()
