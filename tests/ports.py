"""Free loopback ports for tests, taken below the kernel's ephemeral range.

A port from the ephemeral range (`bind(0)` hands one out) can be given to any outgoing
connection in the meantime, the engine's own to the sim among them, before the process it was
chosen for binds it: a test then fails with "Address already in use" (seen in CI, an engine
restarted in a test connecting to the sim before binding its bus). Ports below the range are
never handed to an outgoing connection.
"""

from __future__ import annotations

import os
import random
import socket
from pathlib import Path

LOWEST = 20_000
_pick = random.Random(os.getpid())
_given: set[int] = set()


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def free_ports(n: int) -> list[int]:
    """`n` distinct ports nothing listens on now, never the same twice in this process."""
    high = _ephemeral_low() - 1
    out: list[int] = []
    for _ in range(1000 * n):
        if len(out) == n:
            return out
        port = _pick.randint(LOWEST, high)
        if port in _given:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _given.add(port)
        out.append(port)
    raise RuntimeError(f"no {n} free ports in {LOWEST}-{high}")


def free_port() -> int:
    (port,) = free_ports(1)
    return port
