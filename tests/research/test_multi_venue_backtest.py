"""Backtests of an engine of several exchanges (paper_multi: a market maker on OKX whose fair
value is Binance's book) over the two bundled captures, recorded two years apart: each
exchange's stream is rebased onto the clock of the one that starts last (docs/research.md,
"Several exchanges")."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from appliance import engine
from appliance.config.compiler import compile_config
from appliance.research import backtest
from tests.conftest import ROOT, Run

BINANCE = ROOT / "data/binance/spot_btcusdt_20240808.gz"
OKX = ROOT / "data/okx/cryptofeed_OKX.ws.1.0"


def test_paper_multi_backtests_on_both_captures_rebased(
    project: Path, cli: Callable[..., Run]
) -> None:
    run = cli("backtest", "deployment=paper_multi", "--no-report", "--format", "json", root=project)
    assert run.exit_code == 0, run.stderr
    out = json.loads(run.stdout)
    summary, counters = out["summary"], out["counters"]
    assert summary["fills"] > 0
    # Every fill is OKX's (the only exchange traded); Binance's book only moves the quotes.
    assert set(summary["final_position"]) == {
        "okx:BTCUSDT",
        "sim_binance:BTCUSDT",
        "UNIUSDSWAP",
    }
    assert summary["final_position"]["sim_binance:BTCUSDT"] == "0"
    # Both captures were read, every event of each: Binance's 41,249 lines and OKX's 261.
    assert counters["events"] == 41_249 + 261
    # OKX's 2022 capture moved onto Binance's 2024 clock: its first event on Binance's first.
    first = {p: engine.capture_info(str(p))["first_local_ns"] for p in (BINANCE, OKX)}
    assert counters["offset_ns.okx"] == first[BINANCE] - first[OKX]
    assert counters["offset_ns.sim_binance"] == 0


def test_the_same_streams_give_the_same_result_from_python() -> None:
    (m,) = compile_config(ROOT, ["deployment=paper_multi"]).manifests
    # Exchanges in the manifest's (name) order: okx, sim_binance.
    a = backtest.run(m.text, [], exchange_data=[[OKX], [BINANCE]])
    b = backtest.run(m.text, [], exchange_data=[[OKX], [BINANCE]])
    assert a.summary == b.summary and len(a.fills) > 0
    assert set(a.fills["symbol"]) == {"okx:BTCUSDT"}
    # Without OKX's data nothing is quoted: the market maker quotes on OKX's book.
    alone = backtest.run(m.text, [], exchange_data=[[], [BINANCE]])
    assert alone.summary["fills"] == 0 and alone.summary["orders_placed"] == 0


def test_a_file_for_an_unknown_exchange_is_refused(project: Path, cli: Callable[..., Run]) -> None:
    run = cli("backtest", "deployment=paper_multi", "--data", str(OKX), root=project)
    assert run.exit_code == 2
    assert "EXCHANGE=PATH" in run.stderr and "okx" in run.stderr


def test_a_swaps_pnl_by_instrument_is_the_engines_in_the_quote_currency(
    project: Path, cli: Callable[..., Run]
) -> None:
    """paper_okx_swap backtested: UNI-USD-SWAP is an inverse contract (10 USD, settled in UNI).
    Its P&L per instrument is the engine's own, counted in the quote currency at the mark, so
    the instruments add up to the run's P&L; the same figures recomputed from the fills as
    spot (price x qty) would not (docs/venues.md, "Contracts")."""
    run = cli(
        "backtest", "deployment=paper_okx_swap", "--no-report", "--format", "json", root=project
    )
    assert run.exit_code == 0, run.stderr
    summary = json.loads(run.stdout)["summary"]
    assert summary["fills"] > 0
    by = summary["pnl_by_instrument"]
    assert by["UNIUSDSWAP"] != 0
    assert abs(sum(by.values()) - float(summary["pnl"])) <= 2e-8 * len(by)
    # Each fill is one contract (order_qty 1), and turnover counts a contract at 10 USD
    # whatever the price.
    assert float(summary["turnover"]) == 10 * summary["fills"]
