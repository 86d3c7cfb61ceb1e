"""Bench: `appliance compile deployment=prod_example` as a whole CLI process.

Each sample is a fresh Python process (interpreter start, imports, Hydra compose, validation,
cross-checks, rendering, the read-back through the contract reader, the atomic write), which is
what a user waits for. Prints p50/p99/min/max over N runs and the machine it ran on.
Goal (DESIGN.md section 5): <= 1.5 s.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = int(os.environ.get("BENCH_RUNS", "20"))


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def machine() -> str:
    cpu = "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def main() -> int:
    exe = Path(sys.executable).with_name("appliance")
    with tempfile.TemporaryDirectory() as out:
        cmd = [str(exe), "compile", "deployment=prod_example", "--out", out, "--root", str(ROOT)]
        samples = []
        for _ in range(RUNS):
            start = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            samples.append(time.perf_counter() - start)
    print(f"appliance compile deployment=prod_example, whole process, {RUNS} runs")
    print(f"  machine: {machine()}")
    print(
        f"  first {samples[0] * 1000:.0f} ms  p50 {percentile(samples, 0.5) * 1000:.0f} ms  "
        f"p99 {percentile(samples, 0.99) * 1000:.0f} ms  min {min(samples) * 1000:.0f} ms  "
        f"max {max(samples) * 1000:.0f} ms  mean {statistics.mean(samples) * 1000:.0f} ms"
    )
    print("  goal: <= 1500 ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
