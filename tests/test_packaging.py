"""Packaging: the hash-pinned locks match pyproject, `--version` names the three versions, the
core commands stay lean, and a command whose extra is missing says which one to install."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from appliance import engine
from appliance.config.schema import MANIFEST_VERSION
from tests.conftest import ROOT, Run

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = canonicalize_name(PYPROJECT["project"]["name"])
# What the research and deploy commands import; none of it may load on the compile path.
HEAVY = {
    "optuna",
    "pandas",
    "numpy",
    "pyarrow",
    "matplotlib",
    "plotly",
    "sklearn",
    "lightgbm",
    "onnx",
    "onnxruntime",
    "psycopg",
    "sqlalchemy",
    "ansible",
    "ansible_runner",
}


@dataclass
class Pin:
    versions: list[Version] = field(default_factory=list)
    via: set[str] = field(default_factory=set)


def _read_lock(path: Path) -> dict[str, Pin]:
    """name -> its pinned versions (one per marker) and what requires it. Fails on any entry
    that is not `name==version [; marker]` followed by at least one --hash."""
    pins: dict[str, Pin] = {}
    entry = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)( ; [^\\]+)? \\$")
    name, hashes = "", 0
    for line in [*path.read_text().splitlines(), ""]:
        item = line.strip()
        if line.startswith(" "):  # belongs to the entry above
            if item.startswith("--hash=sha256:"):
                hashes += 1
            elif item.startswith(("# via ", "#   ")):  # "# via x", or "# via" then "#   x"
                pins[name].via.add(item.removeprefix("# via ").removeprefix("#   ").strip())
            elif item != "# via":
                raise AssertionError(f"{path.name}: unexpected line {line!r}")
            continue
        if line.startswith("#"):
            continue
        if name:
            assert hashes, f"{path.name}: {name} has no --hash"
        name, hashes = "", 0
        if line:
            m = entry.match(line)
            assert m, f"{path.name}: not a hash-pinned requirement: {line!r}"
            name = canonicalize_name(m[1])
            pins.setdefault(name, Pin()).versions.append(Version(m[2]))
    return pins


def _lock_extras() -> list[str]:
    """The extras `make lock` puts in requirements.lock."""
    makefile = (ROOT / "Makefile").read_text()
    line = next(ln for ln in makefile.splitlines() if "-o $(LOCK)" in ln)
    return re.findall(r"--extra (\S+)", line)


def _check_pinned(req: Requirement, pins: dict[str, Pin], lock: str) -> None:
    name = canonicalize_name(req.name)
    assert name in pins, f"{req} is not in {lock}: run `make lock`"
    for version in pins[name].versions:
        assert req.specifier.contains(version, prereleases=True), (
            f"{lock} pins {name}=={version}, outside {req}: run `make lock`"
        )
    for extra in req.extras:  # psycopg[binary] -> psycopg-binary
        assert canonicalize_name(f"{name}-{extra}") in pins, f"{req}: {lock} lacks the extra"


def test_lock_holds_every_dependency_pinned_with_hashes() -> None:
    pins = _read_lock(ROOT / "requirements.lock")
    extras = _lock_extras()
    assert sorted(extras) == sorted(PYPROJECT["project"]["optional-dependencies"]), (
        "`make lock` must lock every extra: `make setup` installs all of them"
    )
    direct = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
    for extra in extras:
        direct += [Requirement(r) for r in PYPROJECT["project"]["optional-dependencies"][extra]]
    for req in direct:
        _check_pinned(req, pins, "requirements.lock")
    # The other way round: nothing is pinned for pyproject that pyproject no longer asks for.
    marker = f"{PROJECT} (pyproject.toml)"
    from_pyproject = {name for name, pin in pins.items() if marker in pin.via}
    asked = {canonicalize_name(r.name) for r in direct}
    assert from_pyproject == asked, f"stale pins {from_pyproject - asked}: run `make lock`"
    assert PROJECT not in pins  # the package itself is installed editable, without deps


def test_build_lock_pins_the_build_tools_with_hashes() -> None:
    pins = _read_lock(ROOT / "requirements-build.lock")
    for spec in PYPROJECT["build-system"]["requires"]:
        _check_pinned(Requirement(spec), pins, "requirements-build.lock")
    inputs = (ROOT / "requirements-build.in").read_text().splitlines()
    for spec in [ln for ln in inputs if ln.strip() and not ln.startswith("#")]:
        _check_pinned(Requirement(spec), pins, "requirements-build.lock")


def test_version_names_package_engine_and_manifest_contract(cli: Callable[..., Run]) -> None:
    result = cli("--version")
    assert result.exit_code == 0, result.stderr
    package = importlib.metadata.version(PROJECT)
    crate = tomllib.loads((ROOT / "Cargo.toml").read_text())["workspace"]["package"]["version"]
    assert crate == engine.VERSION
    assert engine.MANIFEST_VERSION == MANIFEST_VERSION  # what the compiler writes, Rust reads
    assert result.stdout.splitlines() == [
        f"py-rt-appliance {package}",
        f"engine (appliance._engine) {crate}",
        f"manifest contract {MANIFEST_VERSION} (compiler writes {MANIFEST_VERSION}, "
        f"engine reads {MANIFEST_VERSION})",
    ]


def test_compile_imports_no_research_or_deploy_package(project: Path) -> None:
    code = (
        "import sys\n"
        "from appliance.cli import main\n"
        f"sys.argv = ['appliance', 'compile', '--root', {str(project)!r}]\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "compiled paper_local" in done.stdout
    loaded = set(done.stdout.splitlines()[-1].split())
    assert "appliance" in loaded
    assert loaded & HEAVY == set()


@pytest.mark.parametrize(
    ("command", "module", "extra"),
    [("backtest", "pandas", "research"), ("apply", "ansible_runner", "deploy")],
)
def test_a_missing_extra_is_one_line_naming_it(
    cli: Callable[..., Run],
    project: Path,
    monkeypatch: pytest.MonkeyPatch,
    command: str,
    module: str,
    extra: str,
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # as if it were not installed
    result = cli(command, root=project)
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: this command needs the '{extra}' extra ({module} not installed): "
        f"pip install 'py-rt-appliance[{extra}]'\n"
    )
    assert not (project / "build").exists()  # stopped before doing anything
