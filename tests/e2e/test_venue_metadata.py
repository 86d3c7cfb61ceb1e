"""Every venue's own instrument metadata checked by the real engine at start, against the sim
over loopback (issue 16 point 4).

The sim serves OKX's `GET /api/v5/public/instruments` and Kraken's `GET /0/public/AssetPairs`
from each exchange's metadata file (the manifest's `metadata`), as it serves Binance's
`exchangeInfo` from the manifest; `POST /sim/metadata/fault` changes one field of one
instrument behind the engine's back. The engine asks every exchange of its manifest, traded or
read for its market data only: in paper a difference is a warning and counted
(`metadata_mismatches`), live it refuses to start (exit code 4) naming the instrument, the
venue's field and both values.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

from appliance.config.compiler import compile_config
from appliance.engine import engine_binary
from tests.e2e.harness import ROOT, Live, counters, live, wait_for
from tests.e2e.test_okx_orders import keys
from tests.ports import free_port

# reconcile::EXIT_VENUE_MISMATCH
EXIT_VENUE_MISMATCH = 4


def get(env: Live, path: str) -> Any:
    with urllib.request.urlopen(f"{env.rest}{path}", timeout=5) as r:
        return json.loads(r.read())


def metadata_fault(env: Live, venue: str, instrument: str, field: str, value: str) -> None:
    req = urllib.request.Request(
        f"{env.rest}/sim/metadata/fault?venue={venue}&instrument={instrument}"
        f"&field={field}&value={value}",
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=5) as r:
        assert json.loads(r.read())["fault"] == "metadata"


def start_checks(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("reconcile: ")]


def test_okx_and_kraken_read_for_market_data_are_checked_and_a_difference_warns_in_paper(
    tmp_path: Path,
) -> None:
    with live(tmp_path, "deployment=paper_venues", speed="1") as env:
        env.start_sim()
        # The venues' own formats, from the bundled metadata files.
        swaps = get(env, "/api/v5/public/instruments?instType=SWAP")
        assert swaps["code"] == "0"
        assert [(i["instId"], i["ctVal"], i["ctType"]) for i in swaps["data"]] == [
            ("UNI-USD-SWAP", "10", "inverse")
        ]
        pairs = get(env, "/0/public/AssetPairs")
        assert pairs["error"] == []
        assert pairs["result"]["XBTCHF"]["pair_decimals"] == 1

        engine = env.start_engine()
        wait_for(lambda: len(start_checks(engine.text())) >= 3, 30, "the start-up check")
        checks = start_checks(engine.text())
        assert "reconcile: okx: instruments: 2 instrument(s) checked, 0 filter mismatch(es)" in (
            checks
        ), checks
        assert (
            "reconcile: kraken: AssetPairs: 5 instrument(s) checked, 0 filter mismatch(es)"
            in checks
        ), checks
        assert counters(env.heartbeat()).get("metadata_mismatches") == 0
        assert env.stop("engine") == 0

        # The venues change their listings: Kraken quotes XBT/CHF to 2 decimals, OKX's swap
        # contract is worth 100 USD, OKX's BTC-USDT minimum size is 0.001.
        metadata_fault(env, "kraken", "XBT%2FCHF", "pair_decimals", "2")
        metadata_fault(env, "okx", "UNI-USD-SWAP", "ctVal", "100")
        metadata_fault(env, "okx", "BTC-USDT", "minSz", "0.001")
        assert get(env, "/0/public/AssetPairs")["result"]["XBTCHF"]["pair_decimals"] == 2
        again = env.start_engine(name="engine2")
        wait_for(
            lambda: counters(env.heartbeat()).get("metadata_mismatches") == 3,
            30,
            "three metadata mismatches counted in the heartbeat",
        )
        text = again.text()
        for line in (
            "warning: kraken/XBTCHF: pair_decimals configured 0.1 but the venue says 0.01 "
            "(paper mode: trading anyway)",
            "warning: okx/UNIUSDSWAP: ctVal configured 10 but the venue says 100 "
            "(paper mode: trading anyway)",
            "warning: okx/BTCUSDT: minSz configured 0.00001 but the venue says 0.001 "
            "(paper mode: trading anyway)",
            "reconcile: okx: instruments: 2 instrument(s) checked, 2 filter mismatch(es)",
            "reconcile: kraken: AssetPairs: 5 instrument(s) checked, 1 filter mismatch(es)",
        ):
            assert line in text, text[-3000:]
        assert env.stop("engine2") == 0


# A live deployment trading OKX spot and reading Kraken on the sim's ports (written into the
# test's project copy):
# its own host, every thread pinned as live mode requires (the engine refuses before any
# thread starts, so the cores need not exist here).
LIVE_HOST = """\
address: 127.0.0.1
cpu: {cores: [0, 1, 2, 3, 4, 5], isolated: [2, 3, 4, 5], housekeeping: [0, 1],
      smt_siblings: [], numa_nodes: [[0, 1, 2, 3, 4, 5]]}
nic: {name: lo, numa_node: 0}
memory: {hugepage_kb: 2048, hugepages: 0, shm_budget_mb: 64}
threads: {feeds: {okx: 2, kraken: 5}, strategy: 3, gateway: 4, housekeeping: 0}
rings:
  backing: shm
  market_data: {slots: 4096, slot_bytes: 128}
  orders: {slots: 1024, slot_bytes: 128}
  fills: {slots: 1024, slot_bytes: 128}
"""

LIVE_DEPLOYMENT = """\
# @package _global_
defaults:
  - /host@hosts.local: metadata_box
  - /exchange@exchanges.okx: okx
  - /exchange@exchanges.kraken: kraken
  - /strategy@strategies.mm_okx: mm_btcusdt_okx
  - /risk: conservative
  - /target@targets.local: local
  - _self_

exchanges:
  okx:
    credentials: {api_key: "env:PYRT_E2E_OKX_KEY", api_secret: "env:PYRT_E2E_OKX_SECRET",
                  passphrase: "env:PYRT_E2E_OKX_PASSPHRASE"}

deployment:
  mode: live
  rollout: {soak_seconds: 15}
  engines:
    live_1:
      host: local
      exchanges: [okx, kraken]
      strategies: [mm_okx]
      bus: {events: "tcp://127.0.0.1:7101", control: "tcp://127.0.0.1:7102", hwm: 100000}
      journal: {dir: state/journal/live_okx, fsync: always, fsync_interval_ms: 50}
      metrics: {listen: "127.0.0.1:9464", tick_to_order_p99_alert_us: 1000}
      flight_recorder: null
      anomaly: null
"""


def live_manifest(env: Live, tmp_path: Path) -> Path:
    """The live OKX deployment compiled against the sim's ports (its journal in tmp_path)."""
    (env.root / "conf/host/metadata_box.yaml").write_text(LIVE_HOST)
    (env.root / "conf/deployment/live_okx_metadata.yaml").write_text(LIVE_DEPLOYMENT)
    sim = env.manifest["exchanges"]["sim_binance"]["endpoints"]
    compiled = compile_config(
        env.root,
        [
            "deployment=live_okx_metadata",
            f"exchanges.okx.endpoints.ws={sim['ws']}/ws/v5/public",
            f"exchanges.okx.endpoints.rest={sim['rest']}",
            f"exchanges.kraken.endpoints.ws={sim['ws']}/",
            f"exchanges.kraken.endpoints.rest={sim['rest']}",
            f"deployment.engines.live_1.journal.dir={tmp_path / 'live_journal'}",
            f"deployment.engines.live_1.bus.events=tcp://127.0.0.1:{free_port()}",
            f"deployment.engines.live_1.bus.control=tcp://127.0.0.1:{free_port()}",
            f"deployment.engines.live_1.metrics.listen=127.0.0.1:{free_port()}",
        ],
    )
    (m,) = compiled.manifests
    assert json.loads(m.text)["deployment"]["mode"] == "live"
    path = env.root / "live.manifest.json"
    path.write_text(m.text)
    return path


def test_live_refuses_to_start_when_a_venue_lists_an_instrument_differently(
    tmp_path: Path,
) -> None:
    with live(tmp_path, "deployment=paper_venues", speed="1") as env:
        env.start_sim()
        manifest = live_manifest(env, tmp_path)
        # OKX now lists BTC-USDT with a larger minimum size, and the swap the engine reads (not
        # trades) as a linear contract.
        metadata_fault(env, "okx", "BTC-USDT", "minSz", "0.001")
        metadata_fault(env, "okx", "UNI-USD-SWAP", "ctType", "linear")
        # Kraken, read for its market data only, now wants at least 0.001 XBT an order.
        metadata_fault(env, "kraken", "XBT%2FCHF", "ordermin", "0.001")
        run = subprocess.run(
            [str(engine_binary(ROOT)), "run", "--manifest", str(manifest)],
            cwd=env.root,
            env={**os.environ, **keys()},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode == EXIT_VENUE_MISMATCH, run.stderr
        err = run.stderr
        assert "error: the venue disagrees with the configuration or the journal; refused:" in err
        assert "  - okx/BTCUSDT: minSz configured 0.00001 but the venue says 0.001\n" in err, err
        assert "  - okx/UNIUSDSWAP: ctType configured inverse but the venue says linear\n" in err
        assert "  - kraken/XBTCHF: ordermin configured 0.0002 but the venue says 0.001\n" in err
        assert "reconcile: okx: instruments: 2 instrument(s) checked, 2 filter mismatch(es)" in err
        assert (
            "reconcile: kraken: AssetPairs: 5 instrument(s) checked, 1 filter mismatch(es)" in err
        )
