"""The flight recorder, end to end: the live engine trading against the sim venue over loopback
records the market data it consumed (every raw frame with its receive time, every REST snapshot
it fetched) as captures beside its journal, rotated and listed in a manifest with their hashes.
The recording replays through the same decoder and book sync as the bundled data, and the book
rebuilt from it matches every bookTicker checkpoint in it: what the engine saw is what is kept.
The strategy thread's decision log is beside it (replayed by tests/e2e/test_parity.py).

Each test is bounded in time and stops what it started.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from appliance import engine
from tests.e2e.harness import counters, live, wait_for
from tests.e2e.test_live import wait_live


def test_the_engine_records_what_it_consumed_and_the_recording_replays(tmp_path: Path) -> None:
    flight = tmp_path / "flight"
    # (Rotation and the budget's deletions are rt-engine's unit tests: a run this short
    # writes one file.)
    recorder = f"{{dir: '{flight}', file_mb: 64, budget_mb: 1024}}"
    with live(tmp_path, f"deployment.engines.paper_1.flight_recorder={recorder}") as env:
        env.start_sim()
        env.start_engine()
        wait_live(env)
        wait_for(lambda: counters(env.heartbeat()).get("fills", 0) > 0, 90, "a fill")
        md = counters(env.heartbeat())["md_messages"]
        assert env.stop("engine") == 0
        digest = env.manifest["content_sha256"]
        log = env.procs["engine"].text()

    out = flight / "sim_binance"
    listed = json.loads((out / "manifest.json").read_text())["files"]
    assert listed, "the engine's recording is listed"
    assert "flight recorder: sim_binance -> " in log, log
    assert "dropped" in log and " 0 dropped" in log, log
    lines = 0
    for entry in listed:
        path = out / entry["name"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
        assert (entry["engine_id"], entry["manifest_sha256"]) == ("paper_1", digest)
        assert entry["exchange"] == "sim_binance" and entry["symbols"] == ["BTCUSDT"]
        lines += entry["lines"]
    # Every frame the engine had received by its last heartbeat is in the recording.
    assert lines >= md > 0
    files = [str(out / e["name"]) for e in listed]
    info = engine.capture_info(files[0])
    assert info["snapshots"] >= 1 and info["depth_diffs"] > 0 and info["decode_errors"] == 0
    # The book rebuilt from the recording matches the exchange's own checkpoints in it.
    verified = engine.verify_capture(files)
    assert verified["passed"], verified
    (btc,) = verified["instruments"]
    assert btc["checked"] > 0 and btc["matched"] == btc["checked"], btc
    # The strategy thread's decision log (docs/parity.md) beside it, with the manifest it ran.
    decisions = flight / "strategy"
    logged = json.loads((decisions / "manifest.json").read_text())["files"]
    assert logged and all(e["manifest_sha256"] == digest for e in logged)
    assert json.loads((decisions / "engine.manifest.json").read_text())["content_sha256"] == digest
    assert "flight recorder strategy: " in log and " entries in " in log, log
