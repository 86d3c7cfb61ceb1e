"""Config-level cross-checks: the rules that need the whole config, not one engine's manifest.

Every manifest-level rule (CPU sets, thread placement, rings, venues, sim sections, live mode,
lot and tick multiples, orders within risk limits, model widths, ...) has one implementation,
`engine/manifest/src/validate.rs`; the compiler runs it on each engine's rendered manifest
through `appliance._engine.validate_manifest` and maps its paths back to the config. What stays
here is what a manifest cannot see (docs/manifest.md, "Rules"):

- references between config sections by name: an engine's host, exchanges and strategies are
  declared, one engine per host, a strategy's exchange is one its engine connects to;
- a strategy's exchange is declared, its instruments are listed on that exchange and have
  `risk.instruments` limits. These read the raw composed data, so that a section that failed
  its schema (an exchange holding a literal API key) does not hide them;
- files the project must hold: a sim exchange's capture, and an OKX or Kraken exchange's
  metadata file with the instruments it lists and their tick, lot, minimum size and contract
  terms (appliance/config/venues.py; the manifest carries the file's hash).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.config.diagnostics import Diagnostic
from appliance.config.schema import (
    Exchange,
    Host,
    ImbalanceTaker,
    MarketMaker,
    ModelTaker,
    ModelTakerManifest,
    Risk,
)
from appliance.config.venues import check_metadata

# A model strategy as configured (ModelTaker) or as a manifest carries it (its model resolved).
StrategyModel = MarketMaker | ImbalanceTaker | ModelTaker | ModelTakerManifest


@dataclass(frozen=True)
class EngineRef:
    host: str
    exchanges: list[str]
    strategies: list[str]


@dataclass
class View:
    """The validated sections of a composed config, with path builders."""

    mode: str
    engines: dict[str, EngineRef]
    hosts: dict[str, Host]
    exchanges: dict[str, Exchange]
    strategies: dict[str, StrategyModel]
    risk: Risk | None
    host_path: Callable[[str], str]
    engine_path: Callable[[str], str]
    project_root: Path | None = None
    # Sections that exist but failed schema validation ("exchanges.binance_spot"): references
    # to them are not reported again as undeclared.
    unvalidated: frozenset[str] = frozenset()
    # Config path -> the file it came from (set by the compiler).
    source_of: Callable[[str], str | None] | None = None

    def declared(self, section: str, name: str, present: bool) -> bool:
        return present or f"{section}.{name}" in self.unvalidated


def run_checks(view: View) -> list[Diagnostic]:
    """The references of the validated engines to hosts, exchanges and strategies."""
    return list(_check_engines(view))


def check_references(data: Mapping[str, Any], root: Path) -> list[Diagnostic]:
    """The references of strategies to exchanges, instruments and risk limits, and the capture
    files of sim exchanges, read from the raw composed `data` (any section may have failed its
    schema; what is not the expected shape is the schema's to report)."""
    return [
        *_check_strategy_references(data),
        *_check_captures(data, root),
        *check_metadata(data, root),
    ]


def _d(path: str, value: object, rule: str, message: str) -> Diagnostic:
    return Diagnostic(path=path, value=value, rule=rule, message=message)


def _section(data: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


# --- engines ------------------------------------------------------------------------------


def _check_engines(view: View) -> Iterator[Diagnostic]:
    per_host: Counter[str] = Counter(e.host for e in view.engines.values())
    for engine_id, engine in view.engines.items():
        base = view.engine_path(engine_id)
        if not view.declared("hosts", engine.host, engine.host in view.hosts):
            declared = sorted(view.hosts)
            yield _d(
                f"{base}.host",
                engine.host,
                "engine.host_declared",
                f"host {engine.host!r} is not the declared host (declared: {declared})",
            )
        elif engine.host in view.hosts and per_host[engine.host] > 1:
            yield _d(
                f"{base}.host",
                engine.host,
                "engine.one_per_host",
                f"host {engine.host!r} already runs another engine; one engine per host "
                "(each host gets one manifest)",
            )
        for i, name in enumerate(engine.exchanges):
            if not view.declared("exchanges", name, name in view.exchanges):
                yield _d(
                    f"{base}.exchanges[{i}]",
                    name,
                    "engine.exchange_declared",
                    f"exchange {name!r} is not declared (declared: {sorted(view.exchanges)})",
                )
        for i, name in enumerate(engine.strategies):
            strategy = view.strategies.get(name)
            if strategy is None:
                if view.declared("strategies", name, False):
                    continue
                yield _d(
                    f"{base}.strategies[{i}]",
                    name,
                    "engine.strategy_declared",
                    f"strategy {name!r} is not declared (declared: {sorted(view.strategies)})",
                )
            elif strategy.exchange not in engine.exchanges:
                yield _d(
                    f"{base}.strategies[{i}]",
                    name,
                    "engine.strategy_exchange",
                    f"strategy {name!r} trades on {strategy.exchange!r}, which this engine "
                    f"does not connect to (its exchanges: {engine.exchanges})",
                )


# --- strategies (raw data) ------------------------------------------------------------------


def _check_strategy_references(data: Mapping[str, Any]) -> Iterator[Diagnostic]:
    exchanges = _section(data, "exchanges")
    risk = data.get("risk")
    limits = risk.get("instruments") if isinstance(risk, dict) else None
    for name, strategy in _section(data, "strategies").items():
        if not isinstance(strategy, dict):
            continue
        base = f"strategies.{name}"
        exchange = strategy.get("exchange")
        listed: Any = None
        if isinstance(exchange, str):
            if exchange in exchanges:
                body = exchanges[exchange]
                listed = body.get("instruments") if isinstance(body, dict) else None
            else:
                yield _d(
                    f"{base}.exchange",
                    exchange,
                    "strategy.exchange_declared",
                    f"exchange {exchange!r} is not declared (declared: {sorted(exchanges)})",
                )
        instruments = strategy.get("instruments")
        for i, symbol in enumerate(instruments if isinstance(instruments, list) else []):
            if not isinstance(symbol, str):
                continue
            if isinstance(listed, dict) and symbol not in listed:
                yield _d(
                    f"{base}.instruments[{i}]",
                    symbol,
                    "strategy.instrument_listed",
                    f"{symbol} is not an instrument of {exchange} (it lists {sorted(listed)})",
                )
            if isinstance(limits, dict) and symbol not in limits:
                yield _d(
                    f"{base}.instruments[{i}]",
                    symbol,
                    "strategy.risk_limits",
                    f"{symbol} has no risk.instruments.{symbol} entry: nothing trades without "
                    "limits",
                )


# --- project files (raw data) ---------------------------------------------------------------


def _check_captures(data: Mapping[str, Any], root: Path) -> Iterator[Diagnostic]:
    for name, exchange in _section(data, "exchanges").items():
        sim = exchange.get("sim") if isinstance(exchange, dict) else None
        capture = sim.get("capture") if isinstance(sim, dict) else None
        if not isinstance(capture, str) or not capture:
            continue
        path = Path(capture)
        if not (path if path.is_absolute() else root / path).is_file():
            yield _d(
                f"exchanges.{name}.sim.capture",
                capture,
                "sim.capture_exists",
                "the capture file does not exist (relative paths start at the project root)",
            )
