"""The generated bus code is fresh, and its protobuf pins are consistent."""

from __future__ import annotations

import re
import shutil
import tomllib
from pathlib import Path

from appliance.bus import bus_pb2, codegen

ROOT = Path(__file__).resolve().parents[2]


def test_checked_in_code_is_fresh() -> None:
    stale = codegen.stale()
    assert stale == [], (
        f"appliance/bus/{', '.join(stale)} differ from proto/bus.proto: "
        "run `python -m appliance.bus.codegen` and commit the result"
    )


def test_a_changed_proto_is_detected_as_stale(tmp_path: Path) -> None:
    proto = tmp_path / "bus.proto"
    text = codegen.PROTO.read_text()
    proto.write_text(text.replace("string cause = 3;", "string cause = 3;\n  string note = 99;"))
    assert proto.read_text() != text
    assert codegen.stale(codegen.PACKAGE_DIR, proto) == ["bus_pb2.py", "bus_pb2.pyi"]


def test_generation_is_reproducible(tmp_path: Path) -> None:
    first = codegen.generate(tmp_path / "a")
    second = codegen.generate(tmp_path / "b")
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]


def test_check_command_exit_codes(tmp_path: Path) -> None:
    for name in codegen.OUTPUTS:
        shutil.copy(codegen.PACKAGE_DIR / name, tmp_path / name)
    assert codegen.main(["--check", "--out", str(tmp_path)]) == 0
    (tmp_path / "bus_pb2.pyi").write_text("# edited by hand\n")
    assert codegen.main(["--check", "--out", str(tmp_path)]) == 1


def test_runtime_pin_matches_the_generated_code() -> None:
    """protobuf refuses gencode newer than its runtime: the [project] lower bound must be at
    least the version the checked-in code was generated for."""
    generated = (codegen.PACKAGE_DIR / "bus_pb2.py").read_text()
    found = re.search(r"# Protobuf Python Version: (\d+)\.(\d+)\.(\d+)", generated)
    assert found is not None
    gencode = tuple(int(x) for x in found.groups())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = [d for d in project["dependencies"] if d.startswith("protobuf")]
    assert len(pins) == 1
    lower = re.search(r">=(\d+)\.(\d+)\.(\d+)", pins[0])
    assert lower is not None
    assert tuple(int(x) for x in lower.groups()) >= gencode
    dev = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert "grpcio-tools==1.85.1" in dev["dev"]
    # and the module really loads with the installed runtime
    assert bus_pb2.DESCRIPTOR.package == "pyrt.bus.v1"
