#!/usr/bin/env python3
"""Compare a host's kernel view (/sys, /proc) with the manifest's CPU layout, NUMA nodes and
hugepages; print every mismatch as JSON and exit 1 when there is any (0 when the host matches).

    host_tuning_verify.py --sys /sys --proc /proc --expect '<json>'

The expectation (rendered by appliance from the manifest): cpus, isolated, housekeeping,
numa_nodes (a cpulist per node), thread_siblings (cpu -> cpulist), nic_name, nic_numa_node,
hugepage_kb, hugepages, verify_tuning, kernel_args, governor. Lists are in the kernel's cpulist
form ("0-3,8"), so the comparison is exact. Standard library only: it runs on the target host.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def cpuset(text: str) -> set[int]:
    out: set[int] = set()
    for part in text.strip().split(","):
        if not part or part == "(null)":
            continue
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def cpulist(cpus: set[int]) -> str:
    """The kernel's form: ascending, runs of two or more as ranges."""
    out: list[str] = []
    ordered = sorted(cpus)
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        out.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(out)


class Host:
    def __init__(self, sys_root: Path, proc_root: Path) -> None:
        self.sys = sys_root
        self.proc = proc_root
        self.problems: list[dict[str, Any]] = []
        self.observed: dict[str, Any] = {}

    def read(self, path: Path) -> str | None:
        try:
            return path.read_text().strip()
        except OSError:
            return None

    def problem(self, what: str, path: Path, expected: Any, actual: Any) -> None:
        self.problems.append(
            {"what": what, "file": str(path), "expected": expected, "actual": actual}
        )

    def cpus(self, what: str, path: Path, expected: str, *, missing_is_empty: bool = False) -> None:
        text = self.read(path)
        if text is None and missing_is_empty:
            text = ""
        self.observed[what] = text
        if text is None:
            self.problem(what, path, expected, "(missing)")
        elif cpuset(text) != cpuset(expected):
            self.problem(what, path, expected or "(none)", cpulist(cpuset(text)) or "(none)")


def verify(sys_root: Path, proc_root: Path, want: dict[str, Any]) -> Host:
    host = Host(sys_root, proc_root)
    cpu = sys_root / "devices/system/cpu"
    host.cpus("online CPUs", cpu / "online", want["cpus"])
    # Boot-time state (isolcpus, hugepages, kernel arguments) waits for a planned reboot.
    booted = not want.get("reboot_pending", False)
    if booted:
        host.cpus("isolated CPUs", cpu / "isolated", want["isolated"], missing_is_empty=True)
    for cpu_id, siblings in sorted(want["thread_siblings"].items(), key=lambda kv: int(kv[0])):
        host.cpus(
            f"SMT siblings of CPU {cpu_id}",
            cpu / f"cpu{cpu_id}/topology/thread_siblings_list",
            siblings,
        )
    node = sys_root / "devices/system/node"
    nodes = want["numa_nodes"]
    host.cpus("NUMA nodes", node / "online", cpulist(set(range(len(nodes)))))
    for i, cpus in enumerate(nodes):
        host.cpus(f"CPUs of NUMA node {i}", node / f"node{i}/cpulist", cpus)
    nic_numa = sys_root / "class/net" / want["nic_name"] / "device/numa_node"
    nic_dir = sys_root / "class/net" / want["nic_name"]
    if not nic_dir.exists():
        host.problem(f"NIC {want['nic_name']}", nic_dir, "present", "(missing)")
    elif (nic_dir / "device").exists():
        text = host.read(nic_numa)
        host.observed["NIC NUMA node"] = text
        # -1: the kernel has no NUMA information (a single-node machine).
        single = len(nodes) == 1 and text == "-1"
        if not single and text != str(want["nic_numa_node"]):
            host.problem("NUMA node of the NIC", nic_numa, str(want["nic_numa_node"]), text)
    kb = want["hugepage_kb"]
    pages = sys_root / f"kernel/mm/hugepages/hugepages-{kb}kB/nr_hugepages"
    text = host.read(pages)
    host.observed["hugepages"] = text
    if booted and (want["hugepages"] > 0 or text is not None):
        if text is None:
            host.problem(f"{kb} kB hugepages", pages, want["hugepages"], "(no such page size)")
        elif int(text) < want["hugepages"]:
            host.problem(f"{kb} kB hugepages reserved", pages, want["hugepages"], int(text))
    meminfo = host.read(proc_root / "meminfo") or ""
    info = {
        k.strip(): v.split()[0]
        for k, _, v in (ln.partition(":") for ln in meminfo.splitlines())
        if v
    }
    if booted and info.get("Hugepagesize") == str(kb) and want["hugepages"] > 0:
        total = int(info.get("HugePages_Total", "0"))
        if total < want["hugepages"]:
            host.problem("HugePages_Total", proc_root / "meminfo", want["hugepages"], total)
    if want["verify_tuning"]:
        cmdline = (host.read(proc_root / "cmdline") or "").split()
        for arg in want["kernel_args"] if booted else []:
            if arg not in cmdline:
                host.problem(
                    "kernel argument (reboot pending?)", proc_root / "cmdline", arg, "absent"
                )
        thp = sys_root / "kernel/mm/transparent_hugepage/enabled"
        text = host.read(thp) or ""
        if "[never]" not in text:
            host.problem("transparent hugepages", thp, "[never]", text)
        for cpu_id in sorted(cpuset(want["cpus"])):
            gov = cpu / f"cpu{cpu_id}/cpufreq/scaling_governor"
            text = host.read(gov)
            if text is not None and text != want["governor"]:
                host.problem(f"governor of CPU {cpu_id}", gov, want["governor"], text)
    return host


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sys", dest="sys_root", type=Path, default=Path("/sys"))
    parser.add_argument("--proc", dest="proc_root", type=Path, default=Path("/proc"))
    parser.add_argument("--expect", required=True, help="the expected layout, JSON")
    args = parser.parse_args()
    host = verify(args.sys_root, args.proc_root, json.loads(args.expect))
    print(json.dumps({"problems": host.problems, "observed": host.observed}, sort_keys=True))
    return 1 if host.problems else 0


if __name__ == "__main__":
    sys.exit(main())
