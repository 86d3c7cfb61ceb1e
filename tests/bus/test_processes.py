"""The supervisor's view of its children: which exit is an error."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from appliance.bus.processes import Supervisor


def wait_exit(sup: Supervisor, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while any(c.proc.poll() is None for c in sup.children[:1]) and time.monotonic() < end:
        time.sleep(0.02)


def test_a_child_expected_to_end_is_not_reported_dead(tmp_path: Path) -> None:
    """`record --duration` ends by itself: its exit must not read as a venue dying (the race
    seen in CI: the recorder exited between the loop's poll and the supervisor's check)."""
    sup = Supervisor(tmp_path, tmp_path / "logs")
    try:
        done = sup.start("recorder", [sys.executable, "-c", "print('closed')"])
        venue = sup.start("venue", [sys.executable, "-c", "import time; time.sleep(30)"])
        wait_exit(sup)
        assert done.proc.poll() == 0
        assert sup.dead_message(tmp_path, besides=done) is None
        message = sup.dead_message(tmp_path)
        assert message is not None and message.startswith("error: recorder exited with code 0")
        venue.proc.kill()
        venue.proc.wait(10)
        message = sup.dead_message(tmp_path, besides=done)
        assert message is not None and message.startswith("error: venue exited with code -9")
    finally:
        sup.stop_all(grace=1.0)
