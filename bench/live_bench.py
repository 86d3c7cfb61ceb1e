"""Bench: tick-to-order under replay, on the real network path.

Starts the sim venue (replaying the bundled real BTCUSDT capture at `--speed`) and the
engine (`rt-engine run`, release build if there is one) on loopback, lets them trade for
`--seconds`, stops the engine with SIGTERM and prints its per-stage latency (HDR histograms
the engine keeps: frame read -> parsed -> strategy thread -> book/strategy/risk -> order
bytes handed to the venue connection = tick-to-order; order -> venue ack), the market-data
rate and the machine. Goals (DESIGN.md section 5): tick-to-order p50 <= 5 us, p99 <= 20 us.

Both thread layouts (`host.threads.layout`) by default, one after the other on the same
replay: `pipeline` (feed, strategy and gateway threads joined by rings) and `fused` (one
thread runs them all: no ring hop and no wake-up between the frame and the wire); `--layout`
picks one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from appliance.bus.client import EventSubscriber  # noqa: E402
from appliance.config.compiler import compile_config  # noqa: E402


def machine() -> str:
    cpu = "unknown cpu"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return f"{cpu}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}"


def ed25519_key(path: Path) -> Path:
    """A fresh Ed25519 private key in PKCS#8 PEM, readable by its owner only."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.write_bytes(pem)
    path.chmod(0o600)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def engine_bin() -> Path:
    for profile in ("release", "debug"):
        p = ROOT / "target" / profile / "rt-engine"
        if p.is_file():
            return p
    raise SystemExit("build rt-engine first (cargo build --release -p rt-engine)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--speed", default="4")
    ap.add_argument(
        "--override",
        action="append",
        default=[],
        help="one more Hydra override of the paper deployment (repeatable), e.g. "
        "deployment.engines.paper_1.flight_recorder=null to bench without the flight recorder",
    )
    ap.add_argument(
        "--layout",
        choices=["both", "pipeline", "fused"],
        default="both",
        help="the thread layout(s) to bench (default: both, pipeline first)",
    )
    ap.add_argument(
        "--order-entry",
        choices=["rest", "websocket"],
        default="rest",
        help="the transport of orders: signed REST (default) or the sim's WebSocket API",
    )
    ap.add_argument(
        "--key",
        choices=["none", "ed25519"],
        default="none",
        help="credentials of the sim venue: none (the paper default) or a fresh Ed25519 key, "
        "with which the WebSocket API connection logs on once and orders go unsigned "
        "(implies --order-entry websocket)",
    )
    args = ap.parse_args()
    if args.key == "ed25519":
        args.order_entry = "websocket"
    binary = engine_bin()
    layouts = ["pipeline", "fused"] if args.layout == "both" else [args.layout]
    print(f"machine: {machine()}")
    print(
        f"binary: {binary.relative_to(ROOT)}; replay speed {args.speed}x for {args.seconds:.0f} s; "
        f"orders over {args.order_entry}"
        + (", logged on with an Ed25519 key (orders unsigned)" if args.key == "ed25519" else "")
    )
    summary: dict[str, dict[str, dict[str, int]]] = {}
    for layout in layouts:
        print(f"\n== layout {layout} ==")
        result = run(binary, args, layout)
        if result is None:
            print("no heartbeat received")
            return 1
        summary[layout] = result
    (ROOT / "build").mkdir(exist_ok=True)
    (ROOT / "build" / "live_bench.json").write_text(json.dumps(summary, indent=2))
    if len(summary) == 2:
        print("\ntick-to-order by layout (us):")
        for stage in ("frame_to_strategy", "decision_to_wire", "tick_to_order"):
            row = [
                f"{layout} p50 {summary[layout][stage]['p50_ns'] / 1e3:.1f} "
                f"p99 {summary[layout][stage]['p99_ns'] / 1e3:.1f}"
                for layout in layouts
                if stage in summary[layout]
            ]
            print(f"  {stage:<20} " + " | ".join(row))
    return 0


def run(binary: Path, args: argparse.Namespace, layout: str) -> dict[str, dict[str, int]] | None:
    """One run of the sim and the engine in `layout`; prints its figures, returns its stages."""
    layout_override = ["+hosts.local.threads.layout=fused"] if layout == "fused" else []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "project"
        root.mkdir()
        shutil.copytree(ROOT / "conf", root / "conf")
        (root / "data").symlink_to(ROOT / "data")
        ws, rest, ev, ctl = (free_port() for _ in range(4))
        env = dict(os.environ)
        credentials = []
        if args.key == "ed25519":
            key_file = ed25519_key(Path(tmp) / "ed25519.pem")
            env["PYRT_BENCH_API_KEY"] = os.urandom(16).hex()
            credentials = [
                "exchanges.sim_binance.credentials={api_key:env:PYRT_BENCH_API_KEY,"
                f"api_secret:'file:{key_file}',key_type:ed25519}}"
            ]
        compiled = compile_config(
            root,
            [
                f"exchanges.sim_binance.endpoints.ws=ws://127.0.0.1:{ws}",
                f"exchanges.sim_binance.endpoints.rest=http://127.0.0.1:{rest}",
                f"deployment.engines.paper_1.bus.events=tcp://127.0.0.1:{ev}",
                f"deployment.engines.paper_1.bus.control=tcp://127.0.0.1:{ctl}",
                f"deployment.engines.paper_1.journal.dir={tmp}/journal",
                f"exchanges.sim_binance.sim.speed='{args.speed}'",
                *layout_override,
                *(
                    [
                        "exchanges.sim_binance.order_entry=websocket",
                        f"exchanges.sim_binance.endpoints.ws_api=ws://127.0.0.1:{ws}/ws-api/v3",
                    ]
                    if args.order_entry == "websocket"
                    else []
                ),
                *credentials,
                *args.override,
            ],
        )
        manifest = root / "m.json"
        manifest.write_text(compiled.manifests[0].text)
        sim_log = open(root / "sim.log", "wb")  # noqa: SIM115
        sim = subprocess.Popen(
            [str(binary), "sim", "--manifest", str(manifest)],
            cwd=root,
            stdout=sim_log,
            stderr=sim_log,
            env=env,
        )
        time.sleep(1.0)
        sub = EventSubscriber(f"tcp://127.0.0.1:{ev}")
        eng = subprocess.Popen(
            [str(binary), "run", "--manifest", str(manifest)],
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        last = None
        end = time.monotonic() + args.seconds
        while time.monotonic() < end:
            r = sub.recv(0.5)
            if r is not None and r.event.WhichOneof("body") == "heartbeat":
                last = r.event.heartbeat
        eng.send_signal(signal.SIGTERM)
        out, _ = eng.communicate(timeout=30)
        sim.send_signal(signal.SIGTERM)
        sim.wait(timeout=30)
        sub.close()
    if last is None:
        return None
    c = dict(last.counters)
    up = max(last.uptime_ms / 1000, 1e-9)
    print(
        f"market data: {c.get('md_messages', 0)} messages ({c.get('md_messages', 0) / up:.0f}/s), "
        f"orders sent {c.get('orders_sent', 0)}, fills {c.get('fills', 0)}"
    )
    print(
        f"gateway: {c.get('gw_orders', 0)} orders, {c.get('gw_orders_queued', 0)} of them queued "
        f"behind another request on their connection; {c.get('gw_cancels', 0)} cancels; "
        f"{c.get('gw_ws_api_requests', 0)} requests over the WebSocket API"
    )
    print(f"{'stage':<20} {'count':>8} {'p50':>10} {'p99':>10} {'max':>10}")
    for s in last.latency:
        print(
            f"{s.stage:<20} {s.count:>8} {s.p50_ns / 1e3:>8.1f}us {s.p99_ns / 1e3:>8.1f}us "
            f"{s.max_ns / 1e3:>8.1f}us"
        )
    print(out.decode(errors="replace").split("latency:")[-1].strip())
    return {
        s.stage: {"p50_ns": s.p50_ns, "p99_ns": s.p99_ns, "count": s.count} for s in last.latency
    }


if __name__ == "__main__":
    raise SystemExit(main())
