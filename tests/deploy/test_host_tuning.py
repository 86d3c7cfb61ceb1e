"""host_tuning's verify step against fake /sys and /proc trees, through Ansible (verify.yml)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from appliance.config.compiler import compile_config
from appliance.config.manifest import write_build
from appliance.deploy import inventory as inv
from appliance.deploy.runner import RunResult, run_playbook
from tests.conftest import ROOT
from tests.deploy.conftest import ENGINE_BIN

# ny4_a (conf/host/ny4_a.yaml): 16 CPUs, sibling of n is n+8, one NUMA node, CPUs 2-7
# isolated, 512 x 2 MB hugepages, NIC ens1f0 on node 0.
SIBLINGS = {n: sorted({n % 8, n % 8 + 8}) for n in range(16)}


def fake_tree(
    root: Path,
    *,
    nodes: list[str],
    isolated: str = "2-7",
    hugepages: int = 512,
    cmdline: str = "BOOT_IMAGE=/vmlinuz ro quiet",
    thp: str = "always madvise [never]",
) -> tuple[Path, Path]:
    sys_root, proc_root = root / "sys", root / "proc"
    files = {
        "devices/system/cpu/online": "0-15",
        "devices/system/cpu/isolated": isolated,
        "devices/system/node/online": inv.cpulist(range(len(nodes))),
        "kernel/mm/hugepages/hugepages-2048kB/nr_hugepages": str(hugepages),
        "kernel/mm/transparent_hugepage/enabled": thp,
        "class/net/ens1f0/device/numa_node": "0",
    }
    for n, sib in SIBLINGS.items():
        files[f"devices/system/cpu/cpu{n}/topology/thread_siblings_list"] = inv.cpulist(sib)
        files[f"devices/system/cpu/cpu{n}/cpufreq/scaling_governor"] = "performance"
    for i, cpus in enumerate(nodes):
        files[f"devices/system/node/node{i}/cpulist"] = cpus
    for rel, text in files.items():
        path = sys_root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
    proc_root.mkdir(parents=True)
    (proc_root / "cmdline").write_text(cmdline + "\n")
    (proc_root / "meminfo").write_text(
        f"MemTotal: 65536000 kB\nHugePages_Total: {hugepages}\nHugepagesize: 2048 kB\n"
    )
    return sys_root, proc_root


def verify(
    project: Path,
    sys_root: Path,
    proc_root: Path,
    *extra: str,
    extravars: dict[str, Any] | None = None,
) -> RunResult:
    """Render prod_example's inventory (ny4_a as a local target) and run verify.yml --tags host
    with the fake trees as /sys and /proc."""
    overrides = [
        "deployment=prod_example",
        "target@targets.ny4_a=local",
        "target@targets.ny4_b=local",
        "targets.ny4_b.root=state/hosts/ny4_b",
        # A prefix root keeps the engine's paths inside it.
        "deployment.engines.spot_a.journal.dir=state/journal/spot_a",
        "deployment.engines.usdm_b.journal.dir=state/journal/usdm_b",
        "deployment.engines.spot_a.flight_recorder.dir=state/flight",
        "deployment.engines.usdm_b.flight_recorder.dir=state/flight",
        *extra,
    ]
    compiled = compile_config(project, overrides)
    build = write_build(project / "build", compiled.deployment, compiled.manifests)
    out = project / "state" / "ansible" / "inventory"
    inv.render(project, compiled, build, ENGINE_BIN, out)
    host_vars = out / "host_vars" / "ny4_a.yml"
    data = yaml.safe_load(host_vars.read_text())
    data |= {"host_tuning_sys_root": str(sys_root), "host_tuning_proc_root": str(proc_root)}
    host_vars.write_text(yaml.safe_dump(data))
    return run_playbook(
        ROOT / "ansible",
        project / "state" / "ansible",
        "verify.yml",
        out,
        ["ny4_a"],
        tags=["host"],
        limit="ny4_a",
        timeout=180,
        extravars=extravars,
    )


@pytest.mark.usefixtures("ansible_env")
def test_a_host_that_matches_its_manifest_passes(project: Path, tmp_path: Path) -> None:
    sys_root, proc_root = fake_tree(tmp_path / "host", nodes=["0-15"])
    result = verify(project, sys_root, proc_root)
    assert result.ok, result.hosts["ny4_a"].failure
    assert result.hosts["ny4_a"].changed == 0


@pytest.mark.usefixtures("ansible_env")
def test_a_host_that_does_not_match_fails_naming_every_difference(
    project: Path, tmp_path: Path
) -> None:
    # Two NUMA nodes where the manifest has one, CPUs 6-7 not isolated, too few hugepages.
    sys_root, proc_root = fake_tree(
        tmp_path / "host", nodes=["0-7", "8-15"], isolated="2-5", hugepages=128
    )
    result = verify(project, sys_root, proc_root)
    host = result.hosts["ny4_a"]
    assert not result.ok and host.status == "failed"
    failure = host.failure or ""
    assert "host ny4_a does not match its manifest" in failure
    assert "isolated CPUs: expected 2-7, found 2-5" in failure
    assert "NUMA nodes: expected 0, found 0-1" in failure
    assert "CPUs of NUMA node 0: expected 0-15, found 0-7" in failure
    assert "2048 kB hugepages reserved: expected 512, found 128" in failure
    assert "HugePages_Total: expected 512, found 128" in failure


@pytest.mark.usefixtures("ansible_env")
def test_verify_tuning_requires_the_kernel_arguments_and_thp_off(
    project: Path, tmp_path: Path
) -> None:
    sys_root, proc_root = fake_tree(tmp_path / "host", nodes=["0-15"], thp="always [madvise] never")
    result = verify(project, sys_root, proc_root, "targets.ny4_a.verify_tuning=true")
    failure = result.hosts["ny4_a"].failure or ""
    assert not result.ok
    assert "kernel argument (reboot pending?): expected nohz_full=2-7, found absent" in failure
    assert "transparent hugepages: expected [never]" in failure
    tuned = " ".join(
        [
            "ro isolcpus=managed_irq,domain,2-7 nohz_full=2-7 rcu_nocbs=2-7",
            "irqaffinity=0-1,8-9 processor.max_cstate=1 intel_idle.max_cstate=0",
            "transparent_hugepage=never hugepagesz=2M hugepages=512",
        ]
    )
    sys_ok, proc_ok = fake_tree(tmp_path / "tuned", nodes=["0-15"], cmdline=tuned)
    result = verify(project, sys_ok, proc_ok, "targets.ny4_a.verify_tuning=true")
    assert result.ok, result.hosts["ny4_a"].failure


@pytest.mark.usefixtures("ansible_env")
def test_the_boot_time_state_is_compared_only_after_the_planned_reboot(
    project: Path, tmp_path: Path
) -> None:
    """A host whose isolated cores and hugepages are planned but not booted yet (no isolcpus,
    no hugepages, no kernel arguments): verification fails it, unless apply planned its
    reboot (py_rt_reboot), when only what needs no reboot is compared."""
    sys_root, proc_root = fake_tree(tmp_path / "host", nodes=["0-15"], isolated="", hugepages=0)
    tuning = "targets.ny4_a.verify_tuning=true"
    failure = verify(project, sys_root, proc_root, tuning).hosts["ny4_a"].failure or ""
    assert "isolated CPUs: expected 2-7, found (none)" in failure, failure
    assert "kernel argument (reboot pending?)" in failure
    planned = {"py_rt_reboot": {"ny4_a": ["host.cpu.isolated", "host.memory.hugepages"]}}
    result = verify(project, sys_root, proc_root, tuning, extravars=planned)
    assert result.ok, result.hosts["ny4_a"].failure
