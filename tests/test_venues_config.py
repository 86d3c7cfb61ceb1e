"""OKX and Kraken declared like every exchange and checked against the venues' own metadata
(issue 16, point 4; docs/venues.md): each bad input is a diagnostic with path, value, rule and
file, exit 2, nothing written; what the engine cannot do with these venues yet is refused."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from appliance import engine
from appliance.config.compiler import compile_config
from appliance.config.directions import rule_for
from appliance.config.manifest import content_sha256, dumps, load
from appliance.config.schema import Exchange
from appliance.config.venues import config_name, load_metadata, manifest_exchange
from appliance.plan.diff import ChangeClass, classify
from tests.conftest import CONTRACT, ROOT, Run

PASSPHRASE = "Tr4dingPassphrase2026xQ"
STRATEGY = """\
exchange: {exchange}
instruments: [{symbol}]
kind: imbalance_taker
params: {{levels: 5, threshold: "0.6", order_qty: "1", max_slippage: "0.5", cooldown_ms: 250}}
"""


def _deployment(
    project: Path, name: str, engine_exchanges: str = "[sim_binance]", strategy: str = ""
) -> None:
    """paper_local with the OKX and Kraken exchanges declared (by default no engine uses them),
    and with `strategy` (conf/strategy/<strategy>.yaml) run by its engine if given."""
    text = (project / "conf/deployment/paper_local.yaml").read_text()
    added = f"  - /strategy@strategies.{strategy}: {strategy}\n" if strategy else ""
    text = text.replace(
        "  - /exchange@exchanges.sim_binance: sim_binance_spot\n",
        "  - /exchange@exchanges.sim_binance: sim_binance_spot\n"
        "  - /exchange@exchanges.okx: okx\n"
        "  - /exchange@exchanges.kraken: kraken\n" + added,
    ).replace("exchanges: [sim_binance]", f"exchanges: {engine_exchanges}")
    if strategy:
        text = text.replace("strategies: [mm_btcusdt]", f"strategies: [mm_btcusdt, {strategy}]")
    (project / f"conf/deployment/{name}.yaml").write_text(text)


def _edit_exchange(project: Path, venue: str, edit: Callable[[dict[str, Any]], None]) -> None:
    path = project / f"conf/exchange/{venue}.yaml"
    data = yaml.safe_load(path.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _refused(cli: Callable[..., Run], project: Path, *args: str) -> list[dict[str, Any]]:
    """The diagnostics of `appliance compile ARGS` (exit 2, nothing written)."""
    run = cli("compile", *args, "--format", "json", root=project)
    assert run.exit_code == 2, run.stdout + run.stderr
    assert not (project / "build").exists()
    assert "Traceback" not in run.stdout + run.stderr
    data = json.loads(run.stdout)
    assert data["ok"] is False
    diags: list[dict[str, Any]] = data["diagnostics"]
    return diags


def _one(diags: list[dict[str, Any]], path: str, rule: str) -> dict[str, Any]:
    found = [d for d in diags if d["path"] == path and d["rule"] == rule]
    assert len(found) == 1, (
        f"({path}, {rule}) not once in {[(d['path'], d['rule']) for d in diags]}"
    )
    return found[0]


def _only(
    cli: Callable[..., Run], project: Path, path: str, rule: str, value: str, file: str
) -> str:
    """The message of the one diagnostic of `appliance compile deployment=venues`, which must
    be at `path`, by `rule`, with `value`, attributed to `file`."""
    diags = _refused(cli, project, "deployment=venues")
    d = _one(diags, path, rule)
    assert (d["value"], len(diags)) == (value, 1)
    assert d["source"].endswith(file)
    message: str = d["message"]
    return message


@pytest.fixture
def venues(project: Path) -> Path:
    _deployment(project, "venues")
    return project


def test_okx_and_kraken_as_shipped_match_their_metadata(
    venues: Path, cli: Callable[..., Run]
) -> None:
    run = cli("validate", "deployment=venues", root=venues)
    assert run.exit_code == 0, run.stdout + run.stderr


def test_an_unknown_venue(venues: Path, cli: Callable[..., Run]) -> None:
    _edit_exchange(venues, "okx", lambda d: d.update(venue="bitmex"))
    path, rule = "exchanges.okx.venue", "schema.literal_error"
    message = _only(cli, venues, path, rule, "bitmex", "conf/exchange/okx.yaml")
    assert "'okx'" in message and "'kraken'" in message


def test_an_instrument_the_venue_does_not_list(venues: Path, cli: Callable[..., Run]) -> None:
    def add(d: dict[str, Any]) -> None:
        eth = dict(d["instruments"]["BTCUSDT"])
        eth["listing"] = dict(eth["listing"], symbol="ETH-USDT")
        d["instruments"]["ETHUSDT"] = eth

    _edit_exchange(venues, "okx", add)
    path, rule = "exchanges.okx.instruments.ETHUSDT", "instrument.venue_listed"
    message = _only(cli, venues, path, rule, "ETHUSDT", "conf/exchange/okx.yaml")
    assert "BTC-USDT (BTCUSDT)" in message and "data/okx/instruments.json" in message


def test_an_instrument_the_venue_lists_as_not_trading(
    venues: Path, cli: Callable[..., Run]
) -> None:
    rows = json.loads((ROOT / "data/okx/instruments.json").read_text())
    rows[1]["state"] = "suspend"
    (venues / "okx_instruments.json").write_text(json.dumps(rows))
    _edit_exchange(venues, "okx", lambda d: d.update(metadata="okx_instruments.json"))
    path, rule = "exchanges.okx.instruments.UNIUSDSWAP", "instrument.venue_listed"
    message = _only(cli, venues, path, rule, "UNIUSDSWAP", "conf/exchange/okx.yaml")
    assert "UNI-USD-SWAP in okx_instruments.json as 'suspend', not trading" in message


def test_a_metadata_file_with_a_malformed_row_is_a_diagnostic_not_a_crash(
    venues: Path, cli: Callable[..., Run]
) -> None:
    pairs = json.loads((ROOT / "data/kraken/asset_pairs.json").read_text())
    del next(iter(pairs.values()))["pair_decimals"]
    (venues / "pairs.json").write_text(json.dumps(pairs))
    _edit_exchange(venues, "kraken", lambda d: d.update(metadata="pairs.json"))
    path, rule = "exchanges.kraken.metadata", "exchange.metadata_file"
    message = _only(cli, venues, path, rule, "pairs.json", "conf/exchange/kraken.yaml")
    assert "not kraken's metadata format (KeyError: 'pair_decimals')" in message, message


def test_a_tick_size_that_differs_from_the_venue(venues: Path, cli: Callable[..., Run]) -> None:
    _edit_exchange(venues, "kraken", lambda d: d["instruments"]["XBTCHF"].update(tick_size="0.01"))
    path, rule = "exchanges.kraken.instruments.XBTCHF.tick_size", "instrument.venue_filter"
    message = _only(cli, venues, path, rule, "0.01", "conf/exchange/kraken.yaml")
    assert "XBT/CHF" in message and "tick_size 0.1 (its pair_decimals)" in message


def test_lot_min_size_and_contract_terms_are_checked(venues: Path, cli: Callable[..., Run]) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["instruments"]["BTCUSDT"]["lot_size"] = "0.0001"
        swap = d["instruments"]["UNIUSDSWAP"]["listing"]
        swap["min_size"] = "2"
        swap["contract"]["value"] = "100"
        swap["contract"]["type"] = "linear"

    _edit_exchange(venues, "okx", edit)
    found = {(d["path"], d["rule"]) for d in _refused(cli, venues, "deployment=venues")}
    base = "exchanges.okx.instruments"
    assert found == {
        (f"{base}.BTCUSDT.lot_size", "instrument.venue_filter"),
        (f"{base}.UNIUSDSWAP.listing.min_size", "instrument.venue_filter"),
        (f"{base}.UNIUSDSWAP.listing.contract.value", "instrument.venue_contract"),
        (f"{base}.UNIUSDSWAP.listing.contract.type", "instrument.venue_contract"),
    }


def test_an_okx_passphrase_given_as_a_literal(venues: Path, cli: Callable[..., Run]) -> None:
    _edit_exchange(venues, "okx", lambda d: d["credentials"].update(passphrase=PASSPHRASE))
    run = cli("compile", "deployment=venues", "--format", "json", root=venues)
    assert run.exit_code == 2
    assert PASSPHRASE not in run.stdout + run.stderr
    assert not (venues / "build").exists()
    diags = json.loads(run.stdout)["diagnostics"]
    d = _one(diags, "exchanges.okx.credentials.passphrase", "secret.literal")
    assert d["source"].endswith("conf/exchange/okx.yaml")
    assert len(diags) == 1


def test_an_ed25519_key_on_okx_is_refused(project: Path, cli: Callable[..., Run]) -> None:
    # Binance (and the sim) take Ed25519 keys; OKX signs with HMAC keys only.
    _deployment(project, "venues", "[sim_binance, okx]")
    feed = "+hosts.local.threads.feeds.okx=null"
    _edit_exchange(project, "okx", lambda d: d["credentials"].update(key_type="ed25519"))
    diags = _refused(cli, project, "deployment=venues", feed)
    d = _one(diags, "exchanges.okx.credentials.key_type", "exchange.credential_key_type")
    assert (d["value"], len(diags)) == ("ed25519", 1)
    assert d["source"].endswith("conf/exchange/okx.yaml")
    assert "okx signs with HMAC keys only" in d["message"]
    # The same key type on the sim's Binance exchange compiles, and its manifest says so.
    _edit_exchange(project, "okx", lambda d: d["credentials"].update(key_type="hmac"))
    run = cli(
        "compile",
        "deployment=venues",
        feed,
        "exchanges.sim_binance.credentials={api_key:'env:K',api_secret:'file:/k.pem',"
        "key_type:ed25519}",
        root=project,
    )
    assert run.exit_code == 0, run.stdout + run.stderr
    (manifest,) = (project / "build").rglob("*.manifest.json")
    exchanges = json.loads(manifest.read_text())["exchanges"]
    assert exchanges["sim_binance"]["credentials"]["key_type"] == "ed25519"
    assert exchanges["okx"]["credentials"]["key_type"] == "hmac"


def test_an_order_sending_strategy_on_kraken(project: Path, cli: Callable[..., Run]) -> None:
    _deployment(project, "venues", "[sim_binance, kraken]", "imb_kraken")
    path = project / "conf/strategy/imb_kraken.yaml"
    path.write_text(STRATEGY.format(exchange="kraken", symbol="XBTCHF"))
    diags = _refused(
        cli,
        project,
        "deployment=venues",
        "+risk.instruments.XBTCHF={max_position:'1',max_order_qty:'1',"
        "max_order_notional:'100000',max_position_notional:'100000',price_band_bps:100}",
    )
    d = _one(diags, "strategies.imb_kraken.exchange", "strategy.kraken_market_data_only")
    assert d["value"] == "kraken"
    assert "Kraken is market data only in this version" in d["message"]
    assert d["source"].endswith("conf/strategy/imb_kraken.yaml")
    # Reading Kraken's books is allowed: the refusal is the orders'.
    assert not [x for x in diags if x["path"] == "exchanges.kraken.venue"]


def test_the_refusal_names_the_venue_set_on_the_command_line(
    project: Path, cli: Callable[..., Run]
) -> None:
    _deployment(project, "venues", "[sim_binance, kraken]", "imb_kraken")
    path = project / "conf/strategy/imb_kraken.yaml"
    path.write_text(STRATEGY.format(exchange="kraken", symbol="XBTCHF"))
    diags = _refused(cli, project, "deployment=venues", "exchanges.kraken.venue=kraken")
    d = _one(diags, "exchanges.kraken.venue", "strategy.kraken_market_data_only")
    assert d["source"].startswith("command line override exchanges.kraken.venue=kraken")


def test_an_okx_swap_strategy_compiles_and_an_inverse_asset_limit_is_refused(
    project: Path, cli: Callable[..., Run]
) -> None:
    _deployment(project, "venues", "[sim_binance, okx]", "imb_okx")
    (project / "conf/strategy/imb_okx.yaml").write_text(
        STRATEGY.format(exchange="okx", symbol="UNIUSDSWAP")
    )
    limits = (
        "+risk.instruments.UNIUSDSWAP={max_position:'10',max_order_qty:'10',"
        "max_order_notional:'100000',max_position_notional:'100000',price_band_bps:100}"
    )
    # Its contracts are worth USD, not UNI: an asset limit on UNI cannot count them.
    diags = _refused(
        cli,
        project,
        "deployment=venues",
        limits,
        "+risk.assets={UNI:{max_position:'100',instruments:[UNIUSDSWAP]}}",
    )
    d = _one(diags, "risk.assets.UNI.instruments[0]", "risk.asset_instrument")
    assert "inverse contract" in d["message"]
    assert not [x for x in diags if x["path"].startswith("strategies.")], diags
    # Without it, the inverse swap is traded in contracts (docs/venues.md, "Contracts").
    run = cli(
        "compile", "deployment=venues", limits, "+hosts.local.threads.feeds.okx=null", root=project
    )
    assert run.exit_code == 0, run.stdout + run.stderr
    (path,) = (project / "build").rglob("*.manifest.json")
    strategy = json.loads(path.read_text())["strategies"]["imb_okx"]
    assert strategy["instruments"] == ["UNIUSDSWAP"]


def test_an_engine_may_read_okx_and_kraken_market_data(
    project: Path, cli: Callable[..., Run]
) -> None:
    # No strategy on them: the engine reads their books (signals, recording).
    _deployment(project, "venues", "[sim_binance, okx, kraken]")
    run = cli(
        "compile",
        "deployment=venues",
        "+hosts.local.threads.feeds.okx=null",
        "+hosts.local.threads.feeds.kraken=null",
        root=project,
    )
    assert run.exit_code == 0, run.stdout + run.stderr
    (path,) = (project / "build").rglob("*.manifest.json")
    exchanges = json.loads(path.read_text())["exchanges"]
    assert {x["venue"] for x in exchanges.values()} == {"sim", "okx", "kraken"}


def test_the_book_checksum_interval_reaches_the_manifest_and_is_refused_on_binance(
    project: Path, cli: Callable[..., Run]
) -> None:
    _deployment(project, "venues", "[sim_binance, okx, kraken]")
    feeds = ("+hosts.local.threads.feeds.okx=null", "+hosts.local.threads.feeds.kraken=null")
    # Binance (and the sim) send no checksum: an interval there would be a setting that does
    # nothing; 0 is no interval.
    for override, at in (
        ("+exchanges.sim_binance.book_checksum_every=5", "exchanges.sim_binance"),
        ("exchanges.kraken.book_checksum_every=0", "exchanges.kraken"),
    ):
        diags = _refused(cli, project, "deployment=venues", *feeds, override)
        assert any(d["path"] == f"{at}.book_checksum_every" for d in diags), diags
    run = cli(
        "compile", "deployment=venues", *feeds, "exchanges.okx.book_checksum_every=10", root=project
    )
    assert run.exit_code == 0, run.stdout + run.stderr
    (path,) = (project / "build").rglob("*.manifest.json")
    exchanges = json.loads(path.read_text())["exchanges"]
    every = {name: x["book_checksum_every"] for name, x in exchanges.items()}
    assert every == {"sim_binance": 1, "okx": 10, "kraken": 1}


def test_no_account_is_reconciled_on_okx(project: Path, cli: Callable[..., Run]) -> None:
    _deployment(project, "venues", "[sim_binance, okx]")
    diags = _refused(
        cli,
        project,
        "deployment=venues",
        "+hosts.local.threads.feeds.okx=null",
        "exchanges.okx.reconcile={starting_balances:{BTC:'1'},tolerance:{BTC:'0.1'},"
        "interval_ms:5000}",
    )
    assert [(d["path"], d["rule"]) for d in diags] == [
        ("exchanges.okx.reconcile", "exchange.market_data_only")
    ]
    # The sim's exchange, with its reconcile section, turned into Kraken on the command line:
    # the refusal names the override that made it.
    diags = _refused(cli, project, "deployment=venues", "exchanges.sim_binance.venue=kraken")
    d = _one(diags, "exchanges.sim_binance.venue", "exchange.market_data_only")
    assert d["source"].startswith("command line override exchanges.sim_binance.venue=kraken")


# --- the manifest contract -------------------------------------------------------------------


def _example_with_okx(root: Path) -> dict[str, Any]:
    manifest: dict[str, Any] = json.loads((CONTRACT / "example.manifest.json").read_text())
    okx = yaml.safe_load((ROOT / "conf/exchange/okx.yaml").read_text())
    manifest["exchanges"]["okx"] = manifest_exchange(
        Exchange.model_validate(okx).model_dump(mode="json"), root
    )
    manifest["host"]["threads"]["feeds"]["okx"] = 5
    manifest["content_sha256"] = content_sha256(manifest)
    return manifest


def test_the_manifest_pins_the_venue_metadata_by_hash(tmp_path: Path) -> None:
    data = tmp_path / "data/okx"
    data.mkdir(parents=True)
    (data / "instruments.json").write_bytes((ROOT / "data/okx/instruments.json").read_bytes())
    manifest = _example_with_okx(tmp_path)
    okx = manifest["exchanges"]["okx"]
    assert okx["metadata"] == "data/okx/instruments.json"
    assert len(okx["metadata_sha256"]) == 64
    assert okx["credentials"]["passphrase"] == "env:OKX_API_PASSPHRASE"
    assert okx["instruments"]["UNIUSDSWAP"]["listing"]["contract"]["type"] == "inverse"
    # Binance's exchange and instruments carry none of the new keys: their manifests are as
    # before.
    assert "metadata" not in manifest["exchanges"]["binance_spot"]
    assert "listing" not in manifest["exchanges"]["binance_spot"]["instruments"]["BTCUSDT"]
    rules = {(v["path"], v["rule"]) for v in engine.validate_manifest(dumps(manifest), tmp_path)}
    assert rules == set()
    # The Python reader takes the same shape (the manifest mode admits the compiled hash).
    load(dumps(manifest), tmp_path)
    # The venue lists a new tick: the engine refuses the manifest compiled before.
    (data / "instruments.json").write_text(
        (ROOT / "data/okx/instruments.json").read_text().replace('"0.001"', '"0.0001"')
    )
    rules = {(v["path"], v["rule"]) for v in engine.validate_manifest(dumps(manifest), tmp_path)}
    assert ("exchanges.okx.metadata_sha256", "manifest.metadata_sha256") in rules


def test_plan_classes_metadata_and_endpoint_changes() -> None:
    new_metadata = classify("exchanges.okx.metadata_sha256", "a" * 64, "b" * 64)
    assert (new_metadata.change_class, new_metadata.critical) == (ChangeClass.ARTIFACT, True)
    endpoint = classify("exchanges.okx.endpoints.ws", "wss://a", "wss://b")
    assert endpoint.change_class is ChangeClass.SECURITY
    passphrase = classify("exchanges.okx.credentials.passphrase", "env:A", "env:B")
    assert (passphrase.change_class, passphrase.critical) == (ChangeClass.SECURITY, True)
    key_type = classify("exchanges.x.credentials.key_type", None, "ed25519")
    assert (key_type.change_class, key_type.critical) == (ChangeClass.SECURITY, True)
    bigger = classify("exchanges.okx.instruments.X.listing.contract.value", "10", "100")
    assert (bigger.change_class, bigger.critical) == (ChangeClass.LOOSEN, True)
    assert rule_for("exchanges.okx.instruments.X.listing.min_size") is not None
    to_okx = classify("exchanges.x.venue", "kraken", "okx")
    assert to_okx.change_class is ChangeClass.LOOSEN


def test_names_map_to_venue_symbols_one_way() -> None:
    okx = load_metadata("okx", ROOT / "data/okx/instruments.json")
    kraken = load_metadata("kraken", ROOT / "data/kraken/asset_pairs.json")
    assert {n: i.symbol for n, i in okx.items()} == {
        "BTCUSDT": "BTC-USDT",
        "UNIUSDSWAP": "UNI-USD-SWAP",
    }
    assert kraken["XMRUSD"].symbol == "XMR/USD"  # AssetPairs key XXMRZUSD
    assert str(kraken["XBTCHF"].tick_size) == "0.1"
    assert config_name("XBT/CHF") == "XBTCHF"


def test_binance_manifests_carry_none_of_the_venue_keys() -> None:
    # The new keys are left out when null, so every Binance and sim manifest (and its hash) is
    # what it was before OKX and Kraken existed.
    for deployment in ("paper_local", "prod_example"):
        compiled = compile_config(ROOT, [f"deployment={deployment}"])
        for built in compiled.manifests:
            text = built.text
            for key in ('"listing"', '"metadata"', '"metadata_sha256"', '"passphrase"'):
                assert key not in text, (deployment, key)


def test_order_entry_over_the_websocket_api_reaches_the_manifest_and_is_refused_elsewhere(
    project: Path, cli: Callable[..., Run]
) -> None:
    _deployment(project, "venues", "[sim_binance, okx]")
    feeds = ("+hosts.local.threads.feeds.okx=null",)
    ws = (
        "exchanges.sim_binance.order_entry=websocket",
        "exchanges.sim_binance.endpoints.ws_api=ws://127.0.0.1:18443/ws-api/v3",
    )
    # The transport without its URL: the missing endpoint is named.
    diags = _refused(cli, project, "deployment=venues", *feeds, ws[0])
    d = _one(diags, "exchanges.sim_binance.endpoints.ws_api", "exchange.order_entry")
    assert "order_entry websocket" in d["message"], d
    # The sim serves it on its own ws address only: another URL would never connect.
    diags = _refused(
        cli,
        project,
        "deployment=venues",
        *feeds,
        ws[0],
        "exchanges.sim_binance.endpoints.ws_api=ws://127.0.0.1:1/ws-api/v3",
    )
    d = _one(diags, "exchanges.sim_binance.endpoints.ws_api", "exchange.order_entry")
    assert "its ws address" in d["message"], d
    # OKX has no WebSocket API order entry here: refused, naming the venue and the way out.
    diags = _refused(
        cli,
        project,
        "deployment=venues",
        *feeds,
        "+exchanges.okx.order_entry=websocket",
        "+exchanges.okx.endpoints.ws_api=wss://ws.okx.com:8443/ws/v5/private",
    )
    d = _one(diags, "exchanges.okx.order_entry", "exchange.order_entry")
    assert "websocket" in str(d["value"]) and "venue okx" in d["message"], d
    assert "use rest" in d["message"], d
    # Binance Spot's (the sim's) WebSocket API: in the manifest; REST, the default, is not
    # written (the manifests of every other exchange are unchanged by the setting).
    run = cli("compile", "deployment=venues", *feeds, *ws, root=project)
    assert run.exit_code == 0, run.stdout + run.stderr
    (path,) = (project / "build").rglob("*.manifest.json")
    exchanges = json.loads(path.read_text())["exchanges"]
    assert exchanges["sim_binance"]["order_entry"] == "websocket"
    assert exchanges["sim_binance"]["endpoints"]["ws_api"] == "ws://127.0.0.1:18443/ws-api/v3"
    assert "order_entry" not in exchanges["okx"]
    assert "ws_api" not in exchanges["okx"]["endpoints"]


# A quarterly future as OKX lists it (`GET /api/v5/public/instruments?instType=FUTURES`).
_FUTURE_ROW = {
    "instId": "BTC-USD-270326",
    "instType": "FUTURES",
    "tickSz": "0.1",
    "lotSz": "1",
    "minSz": "1",
    "ctVal": "100",
    "ctMult": "1",
    "ctValCcy": "USD",
    "ctType": "inverse",
    "settleCcy": "BTC",
    "expTime": "1806048000000",
    "state": "live",
}


def _with_future(project: Path, expiry: int | None, listed_expiry: str) -> None:
    """The bundled OKX metadata plus `_FUTURE_ROW` listed with `listed_expiry`, and the future
    configured as BTCUSD270326 with `expiry` (left out when None)."""
    rows = json.loads((ROOT / "data/okx/instruments.json").read_text())
    rows.append(_FUTURE_ROW | {"expTime": listed_expiry})
    (project / "okx_instruments.json").write_text(json.dumps(rows))

    def edit(d: dict[str, Any]) -> None:
        d["metadata"] = "okx_instruments.json"
        listing: dict[str, Any] = {
            "symbol": "BTC-USD-270326",
            "type": "futures",
            "min_size": "1",
            "contract": {
                "value": "100",
                "multiplier": "1",
                "value_currency": "USD",
                "type": "inverse",
                "settle_currency": "BTC",
            },
        }
        if expiry is not None:
            listing["expiry_ms"] = expiry
        d["instruments"]["BTCUSD270326"] = {
            "tick_size": "0.1",
            "lot_size": "1",
            "min_notional": "1",
            "maker_fee_bps": "2",
            "taker_fee_bps": "5",
            "listing": listing,
        }

    _edit_exchange(project, "okx", edit)
    _deployment(project, "venues_okx", "[sim_binance, okx]")


# The engine reads the OKX exchange (so its manifest carries it), without a feed core of its own.
_OKX_ENGINE = ("deployment=venues_okx", "+hosts.local.threads.feeds.okx=null")
_EXPIRY = "exchanges.okx.instruments.BTCUSD270326.listing.expiry_ms"


def test_a_futures_listing_carries_its_expiry_into_the_manifest(
    venues: Path, cli: Callable[..., Run]
) -> None:
    _with_future(venues, 1806048000000, "1806048000000")
    run = cli("compile", *_OKX_ENGINE, root=venues)
    assert run.exit_code == 0, run.stdout + run.stderr
    (path,) = (venues / "build").rglob("*.manifest.json")
    instruments = json.loads(path.read_text())["exchanges"]["okx"]["instruments"]
    assert instruments["BTCUSD270326"]["listing"]["expiry_ms"] == 1806048000000
    # Absent on spot and swaps.
    assert "expiry_ms" not in instruments["UNIUSDSWAP"]["listing"]
    assert "expiry_ms" not in instruments["BTCUSDT"]["listing"]


def test_a_futures_listing_without_an_expiry_is_refused(
    venues: Path, cli: Callable[..., Run]
) -> None:
    _with_future(venues, None, "1806048000000")
    diags = _refused(cli, venues, *_OKX_ENGINE)
    d = _one(diags, _EXPIRY, "instrument.expiry")
    assert "futures contract" in d["message"]
    assert d["source"].endswith("conf/exchange/okx.yaml")
    # The metadata file says when: the difference is named too.
    v = _one(diags, _EXPIRY, "instrument.venue_contract")
    assert "expTime 1806048000000" in v["message"]
    assert len(diags) == 2, diags


def test_an_expiry_that_differs_from_the_venue_is_refused(
    venues: Path, cli: Callable[..., Run]
) -> None:
    _with_future(venues, 1806048000001, "1806048000000")
    (d,) = _refused(cli, venues, *_OKX_ENGINE)
    assert (d["path"], d["rule"], d["value"]) == (
        _EXPIRY,
        "instrument.venue_contract",
        1806048000001,
    )
    assert "expTime 1806048000000" in d["message"]
    assert d["source"].endswith("conf/exchange/okx.yaml")


def test_an_expired_future_is_refused_at_compile_time(
    venues: Path, cli: Callable[..., Run]
) -> None:
    # 2025-03-28 08:00 UTC: past when this runs.
    _with_future(venues, 1743148800000, "1743148800000")
    (d,) = _refused(cli, venues, *_OKX_ENGINE)
    assert (d["path"], d["rule"], d["value"]) == (_EXPIRY, "instrument.expired", 1743148800000)
    assert "2025-03-28T08:00:00+00:00" in d["message"] and "expired" in d["message"]
    assert d["source"].endswith("conf/exchange/okx.yaml")


def test_a_strategy_trades_a_future_with_its_reduce_only_window(
    venues: Path, cli: Callable[..., Run]
) -> None:
    _with_future(venues, 1806048000000, "1806048000000")
    (venues / "conf/strategy/imb_future.yaml").write_text(
        STRATEGY.format(exchange="okx", symbol="BTCUSD270326")
    )
    _deployment(venues, "futures", "[sim_binance, okx]", "imb_future")
    limits = (
        "+risk.instruments.BTCUSD270326={max_position:'10',max_order_qty:'10',"
        "max_order_notional:'100000',max_position_notional:'100000',price_band_bps:100}"
    )
    args = ("deployment=futures", limits, "+hosts.local.threads.feeds.okx=null")
    run = cli("compile", *args, "+risk.reduce_only_before_expiry_ms=300000", root=venues)
    assert run.exit_code == 0, run.stdout + run.stderr
    (path,) = (venues / "build").rglob("*.manifest.json")
    manifest = json.loads(path.read_text())
    assert manifest["strategies"]["imb_future"]["instruments"] == ["BTCUSD270326"]
    assert manifest["risk"]["reduce_only_before_expiry_ms"] == 300000
    # Absent, the engine's default (10 minutes) applies: the manifest does not carry it.
    shutil.rmtree(venues / "build")
    run = cli("compile", *args, root=venues)
    assert run.exit_code == 0, run.stdout + run.stderr
    (path,) = (venues / "build").rglob("*.manifest.json")
    assert "reduce_only_before_expiry_ms" not in json.loads(path.read_text())["risk"]
