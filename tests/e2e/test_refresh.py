"""`appliance refresh`: a venue's instrument metadata into conf/, so that the venue's change
goes through a plan.

Binance against the sim venue over loopback (it serves `exchangeInfo` from the manifest, and
the `filters` fault changes what it serves, as a venue changing a tick does). OKX and Kraken
against a loopback HTTP server answering their public endpoints with the bundled metadata
(`data/okx/instruments.json`, `data/kraken/asset_pairs.json`), edited as the venue would:
the refresh only reads, and what it writes is a file of a project copy.
"""

from __future__ import annotations

import copy
import http.server
import json
import shutil
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, Run
from tests.e2e.harness import live


def test_a_binance_tick_change_is_written_where_it_is_set_and_planned(
    tmp_path: Path, cli: Callable[..., Run]
) -> None:
    with live(tmp_path) as env:
        env.start_sim()
        root = env.root
        ov = [f"exchanges.sim_binance.endpoints.rest={env.rest}"]
        conf = root / "conf/exchange/sim_binance_spot.yaml"
        original = conf.read_text()

        same = cli("refresh", *ov, "--check", root=root)
        assert same.exit_code == 0, same.stdout + same.stderr
        assert "the config holds what the venue serves" in same.stdout, same.stdout
        assert cli("compile", *ov, "--out", str(tmp_path / "before"), root=root).exit_code == 0

        # The venue changes BTCUSDT's tick: --check says so and writes nothing.
        env.fault("kind=filters&symbol=BTCUSDT&tick_size=0.1")
        checked = cli("refresh", *ov, "--check", root=root)
        assert checked.exit_code == 2, checked.stdout + checked.stderr
        assert "BTCUSDT: tick_size 0.01 -> 0.1" in checked.stdout, checked.stdout
        assert "nothing written (--check)" in checked.stdout
        assert conf.read_text() == original

        done = cli("refresh", *ov, root=root)
        assert done.exit_code == 0, done.stdout + done.stderr
        assert "wrote conf/exchange/sim_binance_spot.yaml" in done.stdout, done.stdout
        # Only that scalar changed: every comment and the layout stay.
        assert conf.read_text() == original.replace(
            'BTCUSDT: {tick_size: "0.01",', 'BTCUSDT: {tick_size: "0.1",', 1
        )
        again = cli("refresh", *ov, "--check", root=root)
        assert again.exit_code == 0, again.stdout

        plan = cli(
            "plan", *ov, "--against", str(tmp_path / "before"), "--detailed-exitcode", root=root
        )
        assert plan.exit_code in (2, 3), plan.stdout + plan.stderr
        assert "exchanges.sim_binance.instruments.BTCUSDT.tick_size" in plan.stdout or (
            "instruments.BTCUSDT.tick_size" in plan.stdout
        ), plan.stdout
        assert "0.1" in plan.stdout


def test_a_value_set_by_an_override_is_reported_not_rewritten(
    tmp_path: Path, cli: Callable[..., Run]
) -> None:
    with live(tmp_path) as env:
        env.start_sim()
        env.fault("kind=filters&symbol=BTCUSDT&min_notional=10")
        ov = [
            f"exchanges.sim_binance.endpoints.rest={env.rest}",
            "exchanges.sim_binance.instruments.BTCUSDT.min_notional='5'",
        ]
        before = (env.root / "conf/exchange/sim_binance_spot.yaml").read_text()
        run = cli("refresh", *ov, root=env.root)
        # Exit 1: the config does not hold what the venue serves yet, by hand it must.
        assert run.exit_code == 1, run.stdout + run.stderr
        assert "BTCUSDT: min_notional 5 -> 10" in run.stdout, run.stdout
        assert "set in command line override" in run.stdout, run.stdout
        assert "[refresh.source]" in run.stdout
        assert (env.root / "conf/exchange/sim_binance_spot.yaml").read_text() == before


class Venue(http.server.ThreadingHTTPServer):
    """OKX's and Kraken's public metadata endpoints on 127.0.0.1, from the bundled files."""

    def __init__(self, okx: list[dict[str, Any]], kraken: dict[str, Any]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.okx, self.kraken = okx, kraken
        self.requests: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: Venue

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        self.server.requests.append(self.path)
        if url.path == "/api/v5/public/instruments":
            kind = urllib.parse.parse_qs(url.query).get("instType", [""])[0]
            rows = [r for r in self.server.okx if r["instType"] == kind]
            body: Any = {"code": "0", "msg": "", "data": rows}
        elif url.path == "/0/public/AssetPairs":
            body = {"error": [], "result": self.server.kraken}
        else:
            self.send_error(404)
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def venue() -> Iterator[Venue]:
    okx = json.loads((ROOT / "data/okx/instruments.json").read_text())
    kraken = json.loads((ROOT / "data/kraken/asset_pairs.json").read_text())
    server = Venue(okx, kraken)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def venues_project(tmp_path: Path) -> Path:
    """paper_venues' project: conf copied (it is written), the bundled data copied too (so a
    refused write would show), and each venue's metadata copied to a file of the project's
    own under conf/exchange/, which the refresh may write."""
    root = tmp_path / "project"
    shutil.copytree(ROOT / "conf", root / "conf")
    for venue in ("okx", "kraken"):
        shutil.copytree(ROOT / "data" / venue, root / "data" / venue)
    (root / "data/binance").symlink_to(ROOT / "data/binance")
    shutil.copy(root / "data/okx/instruments.json", root / OKX_OWN)
    shutil.copy(root / "data/kraken/asset_pairs.json", root / KRAKEN_OWN)
    return root


OKX_OWN = "conf/exchange/okx.instruments.json"
KRAKEN_OWN = "conf/exchange/kraken.asset_pairs.json"


def test_the_bundled_recordings_are_never_written(
    venue: Venue, venues_project: Path, cli: Callable[..., Run]
) -> None:
    root = venues_project
    recorded = {p: p.read_bytes() for p in (root / "data").glob("*/*.json")}
    for name in ("okx", "kraken"):
        ov = ["deployment=paper_venues", f"exchanges.{name}.endpoints.rest={venue.url}"]
        run = cli("refresh", *ov, "--exchange", name, root=root)
        assert run.exit_code == 1, run.stdout + run.stderr
        assert f"exchanges.{name}.metadata" in run.stderr, run.stderr
        assert "never rewritten" in run.stderr and f"conf/exchange/{name}" in run.stderr
        # --check only reads: allowed on the recording.
        assert cli("refresh", *ov, "--exchange", name, "--check", root=root).exit_code == 0
        outside = cli(
            "refresh",
            *ov,
            f"exchanges.{name}.metadata=../elsewhere.json",
            "--exchange",
            name,
            root=root,
        )
        assert outside.exit_code == 1 and "outside the project" in outside.stderr
    assert {p: p.read_bytes() for p in recorded} == recorded
    assert not (root.parent / "elsewhere.json").exists()


def test_okx_metadata_is_fetched_written_and_checked(
    venue: Venue, venues_project: Path, cli: Callable[..., Run]
) -> None:
    root = venues_project
    ov = [
        "deployment=paper_venues",
        f"exchanges.okx.endpoints.rest={venue.url}",
        f"exchanges.okx.metadata={OKX_OWN}",
    ]
    file = root / OKX_OWN
    before = file.read_bytes()
    rows_before = json.loads(before)
    same = cli("refresh", *ov, "--exchange", "okx", "--check", root=root)
    assert same.exit_code == 0, same.stdout + same.stderr
    assert f"metadata {OKX_OWN}: unchanged" in same.stdout, same.stdout
    # One request per instrument type the exchange configures (spot BTCUSDT, swap UNIUSDSWAP).
    assert sorted(venue.requests) == [
        "/api/v5/public/instruments?instType=SPOT",
        "/api/v5/public/instruments?instType=SWAP",
    ]
    assert file.read_bytes() == before
    assert cli("compile", *ov, "--out", str(root / "before"), root=root).exit_code == 0

    # OKX moves BTC-USDT to a 0.01 tick and raises UNI-USD-SWAP's contract value.
    edited = copy.deepcopy(venue.okx)
    for row in edited:
        if row["instId"] == "BTC-USDT":
            row["tickSz"] = "0.01"
        if row["instId"] == "UNI-USD-SWAP":
            row["ctVal"] = "20"
    venue.okx = edited
    checked = cli("refresh", *ov, "--exchange", "okx", "--check", root=root)
    assert checked.exit_code == 2, checked.stdout + checked.stderr
    assert file.read_bytes() == before
    done = cli("refresh", *ov, "--exchange", "okx", root=root)
    # Written, but the config must follow by hand: exit 1 until it does.
    assert done.exit_code == 1, done.stdout + done.stderr
    out = done.stdout
    assert "BTCUSDT: tick_size 0.1 -> 0.01" in out, out
    assert "UNIUSDSWAP: contract" in out and "value 20" in out, out
    assert f"wrote {OKX_OWN}" in out, out
    # The compiler now refuses the configured instruments, naming each.
    assert "exchanges.okx.instruments.BTCUSDT.tick_size" in out, out
    assert "exchanges.okx.instruments.UNIUSDSWAP" in out, out
    written = json.loads(file.read_text())
    # The file's form (a bare list) and every row but the two configured ones stay as they were.
    assert isinstance(written, list) and len(written) == len(rows_before)
    assert {r["instId"]: r["tickSz"] for r in written}["BTC-USDT"] == "0.01"
    configured = {"BTC-USDT", "UNI-USD-SWAP"}
    assert [r for r in written if r["instId"] not in configured] == [
        r for r in rows_before if r["instId"] not in configured
    ]
    invalid = cli("validate", *ov, root=root)
    assert invalid.exit_code == 2, invalid.stdout + invalid.stderr
    assert "exchanges.okx.instruments.BTCUSDT.tick_size" in invalid.stderr, invalid.stderr

    # The config follows the venue: the plan shows the metadata and the tick as changes.
    conf = root / "conf/exchange/okx.yaml"
    text = conf.read_text()
    text = text.replace('tick_size: "0.1"', 'tick_size: "0.01"', 1)
    conf.write_text(text.replace('contract: {value: "10",', 'contract: {value: "20",', 1))
    plan = cli("plan", *ov, "--against", str(root / "before"), "--detailed-exitcode", root=root)
    assert plan.exit_code in (2, 3), plan.stdout + plan.stderr
    assert "exchanges.okx.metadata_sha256" in plan.stdout or "metadata_sha256" in plan.stdout, (
        plan.stdout
    )
    assert "tick_size" in plan.stdout, plan.stdout


def test_kraken_unchanged_is_left_alone_and_a_bad_answer_writes_nothing(
    venue: Venue, venues_project: Path, cli: Callable[..., Run]
) -> None:
    root = venues_project
    ov = [
        "deployment=paper_venues",
        f"exchanges.kraken.endpoints.rest={venue.url}",
        f"exchanges.kraken.metadata={KRAKEN_OWN}",
    ]
    file = root / KRAKEN_OWN
    before = file.read_bytes()
    same = cli("refresh", *ov, "--exchange", "kraken", root=root)
    assert same.exit_code == 0, same.stdout + same.stderr
    assert f"metadata {KRAKEN_OWN}: unchanged" in same.stdout, same.stdout
    assert "wrote" not in same.stdout
    assert file.read_bytes() == before

    venue.kraken = {"XBTCHF": {"wsname": "XBT/CHF"}}  # not Kraken's format (no decimals)
    bad = cli("refresh", *ov, "--exchange", "kraken", root=root)
    assert bad.exit_code == 1, bad.stdout + bad.stderr
    assert "exchanges.kraken.endpoints.rest" in bad.stderr, bad.stderr
    assert "not kraken's format" in bad.stderr, bad.stderr
    assert file.read_bytes() == before

    several = cli("refresh", *ov, root=root)
    assert several.exit_code == 1
    assert "choose one of ['kraken', 'okx', 'sim_binance'] with --exchange" in several.stderr
