"""Regenerate the Python code of the bus contract (proto/bus.proto) with grpcio-tools.

    python -m appliance.bus.codegen           # rewrite appliance/bus/bus_pb2.py and .pyi
    python -m appliance.bus.codegen --check   # exit 1 when the checked-in code is stale

grpcio-tools (the dev extra) pins the protoc version, and with it the protobuf runtime the
generated code demands (`ValidateProtobufRuntimeVersion`): keep the pins in pyproject.toml
consistent (grpcio-tools 1.85.1 generates for protobuf >= 7.35.1, < 8).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
ROOT = PACKAGE_DIR.parents[1]
PROTO = ROOT / "proto" / "bus.proto"
OUTPUTS = ("bus_pb2.py", "bus_pb2.pyi")


class CodegenError(RuntimeError):
    pass


def generate(out_dir: Path, proto: Path = PROTO) -> list[Path]:
    """Run protoc (from grpcio-tools) on `proto`; write bus_pb2.py and bus_pb2.pyi in out_dir."""
    try:
        from grpc_tools import protoc
    except ImportError as err:  # the dev extra is not installed
        raise CodegenError(
            "grpcio-tools is not installed: pip install -e '.[dev]' (it pins protoc)"
        ) from err
    import importlib.resources

    if not proto.is_file():
        raise CodegenError(f"no such proto file: {proto}")
    out_dir.mkdir(parents=True, exist_ok=True)
    well_known = importlib.resources.files("grpc_tools") / "_proto"
    args = [
        "protoc",
        f"-I{proto.parent}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        proto.name,
    ]
    code = protoc.main(args)
    if code != 0:
        raise CodegenError(f"protoc failed on {proto} (exit {code})")
    return [out_dir / name for name in OUTPUTS]


def stale(target_dir: Path = PACKAGE_DIR, proto: Path = PROTO) -> list[str]:
    """The generated files in target_dir that differ from a fresh generation (or are missing)."""
    with tempfile.TemporaryDirectory(prefix="bus-codegen-") as tmp:
        fresh = generate(Path(tmp), proto)
        out: list[str] = []
        for path in fresh:
            current = target_dir / path.name
            if not current.is_file() or current.read_bytes() != path.read_bytes():
                out.append(path.name)
        return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m appliance.bus.codegen", description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if the code is stale")
    parser.add_argument("--out", type=Path, default=PACKAGE_DIR, help="output directory")
    args = parser.parse_args(argv)
    try:
        if args.check:
            names = stale(args.out)
            if names:
                print(
                    f"stale generated code in {args.out}: {', '.join(names)} "
                    "(run `python -m appliance.bus.codegen`)",
                    file=sys.stderr,
                )
                return 1
            print(f"generated bus code in {args.out} is up to date")
            return 0
        for path in generate(args.out):
            print(f"wrote {path}")
    except CodegenError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
