"""The inventory and host vars rendered from conf/ (no hand-written Ansible inputs)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from appliance.config.compiler import compile_config
from appliance.config.diagnostics import ConfigError
from appliance.config.manifest import write_build
from appliance.deploy import inventory as inv
from tests.conftest import ROOT, Run
from tests.deploy.conftest import ENGINE_BIN


@pytest.mark.parametrize(
    ("cpus", "text"),
    [([], ""), ([3], "3"), ([0, 1], "0-1"), ([0, 8], "0,8"), ([9, 8, 0, 1, 2, 3], "0-3,8-9")],
)
def test_cpulist_is_the_kernels_form(cpus: list[int], text: str) -> None:
    assert inv.cpulist(cpus) == text


def _render(project: Path, overrides: list[str]) -> inv.Inventory:
    compiled = compile_config(project, overrides)
    build = write_build(project / "build", compiled.deployment, compiled.manifests)
    return inv.render(project, compiled, build, ENGINE_BIN, project / "state" / "inventory")


def test_prod_hosts_get_their_layout_and_ssh_settings(project: Path) -> None:
    rendered = _render(project, ["deployment=prod_example"])
    hosts = yaml.safe_load((rendered.directory / "hosts.yml").read_text())
    assert list(hosts["all"]["children"][inv.GROUP]["hosts"]) == ["ny4_a", "ny4_b"]
    a = yaml.safe_load((rendered.directory / "host_vars" / "ny4_a.yml").read_text())
    assert a["ansible_connection"] == "ssh" and a["ansible_host"] == "10.20.0.11"
    assert (a["ansible_user"], a["ansible_port"], a["ansible_become"]) == ("deploy", 22, True)
    assert a["host_tuning_cpus"] == "0-15"
    assert a["host_tuning_isolated"] == "2-7"
    assert a["host_tuning_housekeeping"] == "0-1,8-9"
    assert a["host_tuning_thread_siblings"]["3"] == "3,11"
    assert a["host_tuning_hugepages"] == 512
    assert a["engine_prefix"] == "" and a["engine_service_user"] == "py_rt"
    # Engine affinity: housekeeping CPUs plus every pinned thread's core.
    assert a["engine_cpu_affinity"] == "0 1 2 3 4 8 9"
    assert a["engine_sims"] == [] and a["engine_captures"] == []
    b = yaml.safe_load((rendered.directory / "host_vars" / "ny4_b.yml").read_text())
    assert b["host_tuning_numa_nodes"] == ["0-7", "8-15"]
    assert b["host_tuning_thread_siblings"]["9"] == "9"


def test_no_secret_values_reach_the_inventory(project: Path) -> None:
    rendered = _render(project, ["deployment=prod_example"])
    text = "".join(p.read_text() for p in rendered.directory.rglob("*.yml"))
    # The manifests reference env:BINANCE_* credentials; the inventory does not even carry them.
    assert "BINANCE" not in text and "api_key" not in text


def test_paper_local_is_a_prefix_root_with_its_sim_venue(project: Path) -> None:
    rendered = _render(project, [])
    (host,) = rendered.hosts
    assert host.prefix == str((project / "state" / "hosts" / "local").resolve())
    v = host.vars
    assert v["ansible_connection"] == "local"
    assert v["engine_sims"] == ["sim_binance"]
    assert v["engine_captures"] == [
        {
            "src": str((ROOT / "data/binance/spot_btcusdt_20240808.gz").resolve()),
            "dest": "data/binance/spot_btcusdt_20240808.gz",
        }
    ]
    assert v["engine_control_endpoint"] == "tcp://127.0.0.1:7102"
    assert v["engine_content_sha256"] == host.content_sha256


def test_the_release_ignores_provenance_but_not_content(project: Path) -> None:
    first = _render(project, []).hosts[0].release
    # Same content compiled again (the provenance's overrides differ): the same release.
    same = _render(project, ["deployment=paper_local"]).hosts[0].release
    assert same == first
    other = _render(project, ["risk.max_open_orders=5"]).hosts[0].release
    assert other != first


def test_an_engine_host_without_a_target_is_refused(project: Path) -> None:
    with pytest.raises(ConfigError) as err:
        _render(project, ["~targets"])
    (diag,) = err.value.diagnostics
    assert diag.path == "targets.local" and diag.rule == "target.missing"
    assert "/target@targets.local: local" in diag.message


def test_a_prefix_root_refuses_absolute_engine_paths(project: Path) -> None:
    with pytest.raises(ConfigError) as err:
        _render(project, ["deployment.engines.paper_1.journal.dir=/var/lib/journal"])
    (diag,) = err.value.diagnostics
    assert diag.path == "deployment.engines.paper_1.journal.dir"
    assert diag.rule == "target.prefix_paths"
    with pytest.raises(ConfigError) as err:
        recorder = "{dir: /var/lib/flight, file_mb: 64, budget_mb: 1024}"
        _render(project, [f"deployment.engines.paper_1.flight_recorder={recorder}"])
    (diag,) = err.value.diagnostics
    assert diag.path == "deployment.engines.paper_1.flight_recorder.dir"
    assert diag.rule == "target.prefix_paths"
    assert diag.source is not None and "override" in diag.source


def test_bad_targets_are_config_errors(project: Path, cli: Callable[..., Run]) -> None:
    run = cli(
        "validate",
        "deployment=prod_example",
        "targets.ny4_a.connection=local",
        "targets.ny4_b.service_user=null",
        root=project,
    )
    assert run.exit_code == 2
    assert "targets.ny4_a.ssh_user: ssh_user must be null when connection is local" in run.stderr
    assert "rule:  target.service_user" in run.stderr


def test_release_ids_without_models_are_what_they_were() -> None:
    """Pinned: ids computed before models could ship (hosts keep their releases)."""
    assert inv.release_id("a" * 64, "b" * 64, {"data/x.gz": "c" * 64}) == "265f1ecbd0864551"
    assert inv.release_id("a" * 64, "b" * 64, {}, {}, None) == "693834857b843fe9"


def test_paper_model_ships_its_model_and_onnx_runtime(project: Path) -> None:
    from appliance.engine import onnxruntime_library

    (project / "models").symlink_to(ROOT / "models")
    (host,) = _render(project, ["deployment=paper_model"]).hosts
    v = host.vars
    model = (ROOT / "models/direction_lgbm/model.onnx").resolve()
    assert v["engine_models"] == [{"src": str(model), "dest": "models/direction_lgbm/model.onnx"}]
    library = onnxruntime_library()
    assert library is not None and v["engine_onnxruntime_src"] == str(library)
    capture = ROOT / "data/binance/spot_btcusdt_20240808.gz"
    shas = {
        "manifest": host.content_sha256,
        "binary": inv.file_sha256(ENGINE_BIN),
        "capture": inv.file_sha256(capture),
        "model": inv.file_sha256(model),
        "library": inv.file_sha256(library),
    }
    captures = {"data/binance/spot_btcusdt_20240808.gz": shas["capture"]}
    models = {"models/direction_lgbm/model.onnx": shas["model"]}
    lib = (library.name, shas["library"])
    assert host.release == inv.release_id(shas["manifest"], shas["binary"], captures, models, lib)
    # Each of them is part of the id.
    assert host.release != inv.release_id(shas["manifest"], shas["binary"], captures, models)
    assert host.release != inv.release_id(shas["manifest"], shas["binary"], captures, {}, lib)
    # A host without a model strategy ships neither, and its id has no part for them.
    (local,) = _render(project, []).hosts
    assert local.vars["engine_models"] == [] and local.vars["engine_onnxruntime_src"] == ""
    assert local.release == inv.release_id(local.content_sha256, shas["binary"], captures)


def test_a_model_path_outside_a_prefix_root_is_refused(project: Path) -> None:
    (project / "models").symlink_to(ROOT / "models")
    model = (ROOT / "models/direction_lgbm").resolve()
    with pytest.raises(ConfigError) as err:
        _render(
            project, ["deployment=paper_model", f"strategies.model_btcusdt.params.model={model}"]
        )
    paths = {d.path for d in err.value.diagnostics}
    assert "strategies.model_btcusdt.params.model.path" in paths
