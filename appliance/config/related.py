"""Which config keys a cross-check reads, so that its diagnostic names the key that was edited.

A cross-check fails on a relation between several keys (an order limit above its position
limit, rings over the memory budget, a hot thread on a core that is not isolated) and reports
it at one of them. When the user changed another of those keys (an override, or a different
file), the diagnostic must name that key and that override, not the untouched key's file:
`related` lists, per rule, the other keys the rule read; the compiler picks the one that
came from the command line, else keeps the rule's own path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from appliance.config.diagnostics import Diagnostic

_RING_KEYS = ("slots", "slot_bytes")
_RINGS = ("market_data", "orders", "fills")
_MEMORY = ("shm_budget_mb", "hugepages", "hugepage_kb")


def _sibling(path: str, *names: str) -> list[str]:
    parent = path.rsplit(".", 1)[0]
    return [f"{parent}.{n}" for n in names]


def _host_of(path: str) -> str:
    """`hosts.local.threads.strategy` -> `hosts.local`."""
    parts = path.split(".")
    return ".".join(parts[:2])


def _rings(path: str, data: dict[str, Any]) -> list[str]:
    host = _host_of(path)
    rings = [f"{host}.rings.{r}.{k}" for r in _RINGS for k in _RING_KEYS]
    return [*rings, f"{host}.rings.backing", *(f"{host}.memory.{m}" for m in _MEMORY)]


def _cpu(*names: str) -> Callable[[str, dict[str, Any]], list[str]]:
    return lambda path, data: [f"{_host_of(path)}.cpu.{n}" for n in names]


def _order_within_position(path: str, data: dict[str, Any]) -> list[str]:
    leaf = path.rsplit(".", 1)[-1]
    other = {"max_order_qty": "max_position", "max_order_notional": "max_position_notional"}
    return _sibling(path, other[leaf]) if leaf in other else []


def _strategy_instruments(path: str, data: dict[str, Any]) -> tuple[str, list[str]]:
    """(exchange, instruments) of the strategy `path` is under."""
    parts = path.split(".")
    strategy = (data.get("strategies") or {}).get(parts[1]) if len(parts) > 1 else None
    if not isinstance(strategy, dict):
        return "", []
    instruments = strategy.get("instruments")
    symbols = [str(s) for s in instruments] if isinstance(instruments, list) else []
    return str(strategy.get("exchange", "")), symbols


def _lot(path: str, data: dict[str, Any]) -> list[str]:
    exchange, symbols = _strategy_instruments(path, data)
    return [f"exchanges.{exchange}.instruments.{s}.lot_size" for s in symbols]


def _tick(path: str, data: dict[str, Any]) -> list[str]:
    exchange, symbols = _strategy_instruments(path, data)
    return [f"exchanges.{exchange}.instruments.{s}.tick_size" for s in symbols]


def _within_risk(path: str, data: dict[str, Any]) -> list[str]:
    _, symbols = _strategy_instruments(path, data)
    keys = ("max_order_qty", "max_position")
    return [f"risk.instruments.{s}.{k}" for s in symbols for k in keys]


def _venue(path: str, data: dict[str, Any]) -> list[str]:
    exchange, _ = _strategy_instruments(path, data)
    return [f"exchanges.{exchange}.venue"]


def _exchange_venue(path: str, data: dict[str, Any]) -> list[str]:
    # exchanges.<name>.<key>...: the exchange's venue decides what it may do.
    return [".".join(path.split(".")[:2]) + ".venue"]


def _contract(path: str, data: dict[str, Any]) -> list[str]:
    exchange, symbols = _strategy_instruments(path, data)
    keys = ("type", "value", "multiplier")
    return [
        f"exchanges.{exchange}.instruments.{s}.listing.contract.{k}" for s in symbols for k in keys
    ]


# rule -> (path of the diagnostic, composed data) -> the other keys the rule read.
RELATED: dict[str, Callable[[str, dict[str, Any]], list[str]]] = {
    "ring.fits_budget": _rings,
    "cpu.isolated_not_housekeeping": _cpu("isolated", "housekeeping"),
    "cpu.subset_of_cores": _cpu("cores"),
    "thread.core_exists": _cpu("cores"),
    "thread.hot_core_isolated": _cpu("isolated"),
    "thread.housekeeping_core": _cpu("housekeeping"),
    "thread.smt_sibling": _cpu("smt_siblings"),
    "risk.order_within_position": _order_within_position,
    "risk.burst_at_least_rate": lambda path, data: ["risk.order_rate.per_second"],
    "risk.stale_halt_after_stale": lambda path, data: ["risk.feed_stale_ms"],
    "strategy.lot_multiple": _lot,
    "strategy.tick_multiple": _tick,
    "strategy.within_risk": _within_risk,
    "strategy.model_thresholds": lambda path, data: _sibling(path, "buy_above"),
    "exchange.market_data_only": _exchange_venue,
    "exchange.credential_key_type": _exchange_venue,
    "strategy.kraken_market_data_only": _venue,
    "strategy.instrument_type": _contract,
    # The signal's instrument is read with its exchange and the strategy's own.
    "strategy.signal_instrument": lambda path, data: [
        *_sibling(path, "exchange"),
        *(f"{path.split('.params.')[0]}.{k}" for k in ("exchange", "instruments")),
    ],
}


def _lookup(data: dict[str, Any], path: str, default: Any) -> Any:
    node: Any = data
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def attribute(
    d: Diagnostic, data: dict[str, Any], source_of: Callable[[str], str | None]
) -> Diagnostic:
    """`d` with the path and source of the key that was edited: the rule's own path, unless
    it came from a file and another key the rule read came from the command line."""
    if d.source:
        return d
    own = source_of(d.path)
    if own is None or not own.startswith("command line"):
        related = RELATED.get(d.rule)
        for other in related(d.path, data) if related is not None else []:
            if other == d.path:
                continue
            source = source_of(other)
            if source is not None and source.startswith("command line"):
                return Diagnostic(other, _lookup(data, other, d.value), d.rule, d.message, source)
    return d.with_source(own)
