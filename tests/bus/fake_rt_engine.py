"""A stand-in `rt-engine` binary (its `sim` and `run` commands) to test `appliance run`'s
supervision: start order, readiness, logs, clean stop, failures and orphans. The real engine's
end-to-end tests live with the engine.

    fake_rt_engine.py sim --manifest M --exchange NAME [--speed X]
    fake_rt_engine.py run --manifest M
    fake_rt_engine.py --version

FAKE_ENGINE_FAIL: `start` (the engine refuses at start), `midrun` (it dies after 0.5 s),
`ignore_term` (it ignores SIGTERM, to be SIGKILLed), `sim_start` (the sim exits at once).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import zmq

from appliance.bus import bus_pb2 as pb

FAIL = os.environ.get("FAKE_ENGINE_FAIL", "")
stopping = False


def _on_term(signum: int, frame: object) -> None:
    global stopping
    stopping = True


def sim(manifest: dict[str, Any], exchange: str) -> int:
    if FAIL == "sim_start":
        print(f"sim: cannot open capture for {exchange}", flush=True)
        return 3
    ex = manifest["exchanges"][exchange]
    listeners = []
    for url in (ex["endpoints"]["ws"], ex["endpoints"]["rest"]):
        parts = urlsplit(url)
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((parts.hostname, parts.port))
        s.listen()
        s.settimeout(0.05)
        listeners.append(s)
    print(f"sim {exchange}: listening on {ex['endpoints']['ws']} and {ex['endpoints']['rest']}")
    sys.stdout.flush()
    while not stopping:
        for s in listeners:
            try:
                conn, _ = s.accept()
                conn.close()
            except TimeoutError:
                pass
    print(f"sim {exchange}: stopped at {time.monotonic_ns()}", flush=True)
    return 0


def run(manifest: dict[str, Any]) -> int:
    engine = manifest["engine"]
    if FAIL == "start":
        print("error: manifest refused: risk.max_daily_loss: not a decimal", flush=True)
        return 2
    if FAIL == "ignore_term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.SNDHWM, engine["bus"]["hwm"])
    pub.bind(engine["bus"]["events"])
    rep = ctx.socket(zmq.REP)
    rep.bind(engine["bus"]["control"])
    seq = 0
    started = time.monotonic()
    paused = False

    def send(event: pb.Event) -> None:
        nonlocal seq
        seq += 1
        event.engine_id = engine["id"]
        event.seq = seq
        event.ts_ns = time.monotonic_ns()
        event.wall_ns = time.time_ns()
        pub.send(event.SerializeToString())

    def heartbeat() -> pb.Heartbeat:
        return pb.Heartbeat(
            uptime_ms=int((time.monotonic() - started) * 1000),
            risk_state=pb.ACTIVE,
            paused=paused,
            open_orders=1 if not stopping else 0,
            equity="10000.5",
            realised_pnl="0.75",
            fees="0.25",
            counters={"fills": 1, "orders_sent": 2, "md_messages": seq * 10},
            latency=[
                pb.StageLatency(
                    stage="tick_to_order", count=2, p50_ns=4200, p99_ns=9100, max_ns=9100
                )
            ],
            positions=[
                pb.Position(exchange="sim_binance", symbol="BTCUSDT", qty="0.001", fees="0.25")
            ],
            feeds=[pb.FeedState(exchange="sim_binance", state=pb.LIVE)],
            manifest_sha256=str(manifest["content_sha256"]),
        )

    # A slow start (seconds): what a Ctrl-C during `appliance run`'s start-up meets.
    time.sleep(float(os.environ.get("FAKE_ENGINE_START_DELAY", "0")))
    print(f"engine {engine['id']}: running", flush=True)
    order = pb.OrderUpdate(
        order_id=1,
        strategy="mm_btcusdt",
        exchange="sim_binance",
        symbol="BTCUSDT",
        side=pb.BUY,
        kind=pb.POST_ONLY,
        price="60000",
        qty="0.001",
        filled_qty="0",
        status=pb.ACCEPTED,
    )
    next_hb = 0.0
    poller = zmq.Poller()
    poller.register(rep, zmq.POLLIN)
    while not stopping:
        if FAIL == "midrun" and time.monotonic() - started > 0.5:
            print("panic: feed thread died", flush=True)
            os._exit(4)
        if poller.poll(20):
            req = pb.ControlRequest()
            req.ParseFromString(rep.recv())
            command = req.WhichOneof("command")
            if command == "pause":
                paused = True
            status = pb.Status(
                engine_id=engine["id"],
                host=engine["host"],
                deployment=manifest["deployment"]["name"],
                mode=manifest["deployment"]["mode"],
                manifest_sha256=str(manifest["content_sha256"]),
                risk_state=pb.ACTIVE,
                paused=paused,
                pid=os.getpid(),
                last_event_seq=seq,
                equity="10000.5",
            )
            rep.send(pb.ControlReply(ok=True, status=status).SerializeToString())
            # What tests wait on: `appliance run` asks for the status just before it watches.
            print(f"control: {command} answered", flush=True)
        if time.monotonic() >= next_hb:
            if seq == 6:
                send(pb.Event(order=order))
                send(
                    pb.Event(
                        fill=pb.Fill(
                            order_id=9,
                            symbol="BTCUSDT",
                            side=pb.BUY,
                            price="60000",
                            qty="0.001",
                            fee="0.25",
                            maker=True,
                        )
                    )
                )
            send(pb.Event(heartbeat=heartbeat()))
            next_hb = time.monotonic() + 0.1
    # SIGTERM: cancel open orders, last heartbeat, latency table, exit 0
    order.status = pb.CANCELLED
    send(pb.Event(order=order))
    send(pb.Event(heartbeat=heartbeat()))
    time.sleep(0.2)  # let the subscriber read them before the sockets go
    print("stage          count  p50     p99\ntick_to_order  2      4.2us   9.1us", flush=True)
    print(f"engine stopped at {time.monotonic_ns()}", flush=True)
    pub.close(linger=0)
    rep.close(linger=0)
    ctx.term()
    return 0


def main() -> int:
    signal.signal(signal.SIGTERM, _on_term)
    parser = argparse.ArgumentParser()
    # As the real binary names its build profile (a test build is a debug build).
    parser.add_argument("--version", action="version", version="rt-engine 0.0.0 (debug build)")
    sub = parser.add_subparsers(dest="command", required=True)
    p_sim = sub.add_parser("sim")
    p_sim.add_argument("--manifest", required=True, type=Path)
    p_sim.add_argument("--exchange", required=True)
    p_sim.add_argument("--speed")
    p_run = sub.add_parser("run")
    p_run.add_argument("--manifest", required=True, type=Path)
    args = parser.parse_args()
    manifest = json.loads(args.manifest.read_text())
    if args.command == "sim":
        return sim(manifest, args.exchange)
    return run(manifest)


if __name__ == "__main__":
    sys.exit(main())
