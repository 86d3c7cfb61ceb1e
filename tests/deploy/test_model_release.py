"""`appliance apply deployment=paper_model` to a local prefix root with the real rt-engine: the
release ships the model and the ONNX Runtime library (lib/ beside bin/), the engine loads the
model from them and passes the health gate; a second run changes nothing. A release whose
library cannot be loaded, or is missing, fails at the pre-switch `rt-engine check` with the
engine's own message, and the host goes on running the release before it.

The tests run in file order on one host; each leaves it running the first release.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from appliance.deploy import supervisor
from appliance.deploy.supervisor import Layout
from appliance.engine import onnxruntime_library
from tests.conftest import ROOT
from tests.deploy.conftest import scratch_project
from tests.ports import free_ports

APPLIANCE = Path(sys.executable).parent / "appliance"
RUN_TIMEOUT = 420
UNIT = "py-rt-paper_1"


@dataclass
class Host:
    project: Path
    env: dict[str, str]
    ports: list[str]
    engine: Path
    first: tuple[int, dict[str, Any], str] = (0, {}, "")

    @property
    def root(self) -> Path:
        return self.project / "state/hosts/local"

    @property
    def control(self) -> str:
        return self.ports[1].split("=", 1)[1]

    def current(self) -> str:
        return os.path.basename(os.path.realpath(self.root / "opt/py-rt/current"))

    def apply(
        self, *overrides: str, env: dict[str, str] | None = None
    ) -> tuple[int, dict[str, Any], str]:
        cmd = [str(APPLIANCE), "apply", "deployment=paper_model", *self.ports, *overrides]
        # No soak: what is tested here is the release's contents (tests/deploy/test_fleet.py
        # soaks).
        cmd += ["--yes", "--format", "json", "--root", str(self.project), "--soak", "0"]
        run = subprocess.run(
            cmd, env=env or self.env, capture_output=True, text=True, timeout=RUN_TIMEOUT
        )
        try:
            out = json.loads(run.stdout)
        except json.JSONDecodeError:
            out = {}
        return run.returncode, out, run.stderr

    def healthy(self, sha: str) -> subprocess.CompletedProcess[str]:
        gate = ["--expect-hash", sha, "--expect-state", "active", "--wait-ms", "10000"]
        return subprocess.run(
            [str(self.engine), "ctl", "--endpoint", self.control, "status", *gate],
            capture_output=True,
            text=True,
            timeout=60,
        )

    def deployed_sha(self) -> str:
        index = json.loads((self.project / "state/deployed/paper_model/index.json").read_text())
        return str(index["manifests"]["local"]["content_sha256"])


@pytest.fixture(scope="module")
def host(
    tmp_path_factory: pytest.TempPathFactory, ansible_env: dict[str, str], engine_copy: Path
) -> Iterator[Host]:
    project = scratch_project(tmp_path_factory.mktemp("model") / "project")
    (project / "models").symlink_to(ROOT / "models")
    ws, rest, events, control = free_ports(4)
    ports = [
        f"deployment.engines.paper_1.bus.events=tcp://127.0.0.1:{events}",
        f"deployment.engines.paper_1.bus.control=tcp://127.0.0.1:{control}",
        f"exchanges.sim_binance.endpoints.ws=ws://127.0.0.1:{ws}",
        f"exchanges.sim_binance.endpoints.rest=http://127.0.0.1:{rest}",
    ]
    env = os.environ | ansible_env | {"RT_ENGINE_BIN": str(engine_copy), "NO_COLOR": "1"}
    # The engine must find the library the release ships, not one named by the environment.
    for name in ("APPLIANCE_ROOT", "ORT_DYLIB_PATH"):
        env.pop(name, None)
    h = Host(project, env, ports, engine_copy)
    try:
        h.first = h.apply()
        yield h
    finally:
        layout = Layout.under(h.root)
        for unit in sorted(layout.units.glob("*.service")) if layout.units.is_dir() else []:
            supervisor.stop(layout, unit.stem)


def test_the_engine_runs_the_model_from_its_release(host: Host) -> None:
    rc, out, err = host.first
    assert rc == 0, err + json.dumps(out, indent=1)
    release = out["hosts"]["local"]["release"]
    assert out["hosts"]["local"]["status"] == "changed" and host.current() == release
    rel = host.root / "opt/py-rt/releases" / release
    library = onnxruntime_library()
    assert library is not None
    shipped = rel / "lib" / library.name
    assert shipped.read_bytes() == library.read_bytes()
    model = "models/direction_lgbm/model.onnx"
    assert (rel / model).read_bytes() == (ROOT / model).read_bytes()
    # The working directory resolves the manifest's model path to the current release.
    work = host.root / "var/lib/py-rt"
    assert os.path.realpath(work / model) == os.path.realpath(rel / model)
    health = host.healthy(host.deployed_sha())
    assert health.returncode == 0, health.stdout + health.stderr
    log = (host.root / f"var/log/py-rt/{UNIT}.log").read_text()
    assert f"model model_btcusdt: {model} (11 features in, 1 out" in log
    assert f"on ONNX Runtime 1.32.0 ({shipped})" in log
    # Applied again, nothing changes.
    rc, out, err = host.apply()
    assert rc == 0, err
    assert out["hosts"]["local"]["changed"] == 0 and out["hosts"]["local"]["release"] == release


def _still_running_the_first(host: Host, first: str, sha: str) -> None:
    assert host.current() == first
    state = supervisor.status(Layout.under(host.root), UNIT)[1]
    assert state["state"] == "running" and f"/releases/{first}/" in state["exec_realpath"]
    health = host.healthy(sha)
    assert health.returncode == 0, health.stdout + health.stderr


def test_a_library_that_cannot_be_loaded_fails_the_check(host: Host, tmp_path: Path) -> None:
    """The controller's `onnxruntime` is a package whose library is not a shared library."""
    first, sha = host.current(), host.deployed_sha()
    fake = tmp_path / "site" / "onnxruntime"
    (fake / "capi").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "capi" / "libonnxruntime.so.1.32.0").write_bytes(b"not a shared library\n" * 64)
    env = host.env | {"PYTHONPATH": str(tmp_path / "site")}
    rc, out, err = host.apply("risk.max_open_orders=4", env=env)
    assert rc == 1, err + json.dumps(out, indent=1)
    result = out["hosts"]["local"]
    assert result["status"] == "failed"
    failure = result["failure"]
    assert failure.startswith("Check the release's manifest with its own engine binary (rc 2)")
    assert "strategies.model_btcusdt.params.model: ONNX Runtime library" in failure
    assert "cannot be loaded" in failure
    # The record, rewritten from the host, still says what runs: the first release.
    assert out["recorded"] == "state/deployed/paper_model" and host.deployed_sha() == sha
    _still_running_the_first(host, first, sha)


def test_a_missing_library_fails_the_check(host: Host, monkeypatch: pytest.MonkeyPatch) -> None:
    """The failed release of the test before, run again by Ansible without its library."""
    from appliance.deploy.runner import run_playbook

    monkeypatch.delenv("ORT_DYLIB_PATH", raising=False)
    first, sha = host.current(), host.deployed_sha()
    private = host.project / "state/ansible/paper_model"
    host_vars = private / "inventory/host_vars/local.yml"
    values = yaml.safe_load(host_vars.read_text())
    release = values["engine_release"]
    assert release != first
    values["engine_onnxruntime_src"] = ""
    host_vars.write_text(yaml.safe_dump(values))
    lib = host.root / "opt/py-rt/releases" / release / "lib"
    for path in lib.iterdir():
        path.unlink()
    lib.rmdir()
    result = run_playbook(
        ROOT / "ansible", private, "site.yml", private / "inventory", ["local"], timeout=RUN_TIMEOUT
    )
    assert not result.ok
    failure = result.hosts["local"].failure or ""
    assert failure.startswith("Check the release's manifest with its own engine binary (rc 2)")
    assert "ONNX Runtime library not found (no explicit path, ORT_DYLIB_PATH unset" in failure
    assert f"releases/{release}/bin/../lib" in failure
    _still_running_the_first(host, first, sha)
