"""Cross-checks: the rules no single field can see (docs/manifest.md, "Semantic rules").

They run on a `View`, the same shape whether it comes from a composed deployment (paths like
`hosts.ny4_a.threads.strategy`) or from one engine's manifest (paths like
`host.threads.strategy`), so the compiler and the Python manifest loader apply the very same
rules that `engine/manifest` applies in Rust. Each check reports every violation it finds.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from appliance.config.diagnostics import Diagnostic
from appliance.config.schema import (
    Exchange,
    Host,
    ImbalanceTaker,
    MarketMaker,
    ModelTaker,
    ModelTakerManifest,
    Ring,
    Risk,
    format_decimal,
)

RING_HEADER_BYTES = 4096
MAX_RING_SLOTS = 1 << 24

# A model strategy as configured (ModelTaker) or as a manifest carries it (its model resolved).
StrategyModel = MarketMaker | ImbalanceTaker | ModelTaker | ModelTakerManifest


@dataclass(frozen=True)
class EngineRef:
    host: str
    exchanges: list[str]
    strategies: list[str]


@dataclass
class View:
    """What the checks see: engines and the sections they reference, with path builders."""

    mode: str
    engines: dict[str, EngineRef]
    hosts: dict[str, Host]
    exchanges: dict[str, Exchange]
    strategies: dict[str, StrategyModel]
    risk: Risk | None
    host_path: Callable[[str], str]
    engine_path: Callable[[str], str]
    # Set when checking a composed config (not a manifest): enables the compile-only checks.
    project_root: Path | None = None
    # Sections that exist but failed schema validation ("exchanges.binance_spot"): references
    # to them are not reported again as undeclared.
    unvalidated: frozenset[str] = frozenset()
    # For a composed config: config path -> the file it came from (set by the compiler).
    source_of: Callable[[str], str | None] | None = None

    def declared(self, section: str, name: str, present: bool) -> bool:
        return present or f"{section}.{name}" in self.unvalidated


def run_checks(view: View) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    out += list(_check_engines(view))
    for key, host in view.hosts.items():
        feeds = [ex for e in view.engines.values() if e.host == key for ex in e.exchanges]
        out += list(_check_host(view, key, host, feeds if view.engines else None))
    for name, exchange in view.exchanges.items():
        out += list(_check_exchange(view, name, exchange))
    for name, strategy in view.strategies.items():
        out += list(_check_strategy(view, name, strategy))
    if view.risk is not None:
        out += list(_check_risk(view.risk))
    return out


def _d(path: str, value: object, rule: str, message: str) -> Diagnostic:
    return Diagnostic(path=path, value=value, rule=rule, message=message)


def _dec(value: Decimal) -> str:
    return format_decimal(value)


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
        if view.project_root is None:
            continue  # in a manifest the engine's exchanges and strategies are its own
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


# --- hosts --------------------------------------------------------------------------------


def _duplicates(values: list[int]) -> list[int]:
    return sorted(v for v, n in Counter(values).items() if n > 1)


def _check_host(view: View, key: str, host: Host, feeds: list[str] | None) -> Iterator[Diagnostic]:
    base = view.host_path(key)
    cpu = host.cpu
    cores = set(cpu.cores)
    for list_name in ("cores", "isolated", "housekeeping"):
        values: list[int] = getattr(cpu, list_name)
        dupes = _duplicates(values)
        if dupes:
            yield _d(
                f"{base}.cpu.{list_name}",
                values,
                "cpu.no_duplicates",
                f"CPUs {dupes} are listed more than once",
            )
        if list_name != "cores":
            outside = sorted(set(values) - cores)
            if outside:
                yield _d(
                    f"{base}.cpu.{list_name}",
                    values,
                    "cpu.subset_of_cores",
                    f"CPUs {outside} are not among the host's cores {sorted(cores)}",
                )
    both = sorted(set(cpu.isolated) & set(cpu.housekeeping))
    if both:
        yield _d(
            f"{base}.cpu.isolated",
            cpu.isolated,
            "cpu.isolated_not_housekeeping",
            f"CPUs {both} are both isolated and housekeeping",
        )
    for i, pair in enumerate(cpu.smt_siblings):
        if not set(pair) <= cores or pair[0] == pair[1]:
            yield _d(
                f"{base}.cpu.smt_siblings[{i}]",
                list(pair),
                "cpu.smt_pair",
                "an SMT pair must name two different cores of the host",
            )
    for i, node in enumerate(cpu.numa_nodes):
        outside = sorted(set(node) - cores)
        if outside:
            yield _d(
                f"{base}.cpu.numa_nodes[{i}]",
                node,
                "cpu.subset_of_cores",
                f"CPUs {outside} are not among the host's cores {sorted(cores)}",
            )
    if host.nic.numa_node >= len(cpu.numa_nodes):
        yield _d(
            f"{base}.nic.numa_node",
            host.nic.numa_node,
            "nic.numa_node",
            f"NUMA node {host.nic.numa_node} does not exist (the host has {len(cpu.numa_nodes)})",
        )
    yield from _check_threads(view, base, host, feeds)
    yield from _check_rings(base, host)


def _check_threads(
    view: View, base: str, host: Host, feeds: list[str] | None
) -> Iterator[Diagnostic]:
    cpu = host.cpu
    threads = host.threads
    declared = list(threads.feeds)
    # `feeds` is None when the engines are unknown (the deployment section failed validation).
    for name in sorted(set(feeds or ()) - set(declared)):
        yield _d(
            f"{base}.threads.feeds",
            dict(threads.feeds),
            "thread.feed_per_exchange",
            f"no feed thread for exchange {name!r}: every exchange the engine trades needs one",
        )
    for name in sorted(set(declared) - set(feeds if feeds is not None else declared)):
        yield _d(
            f"{base}.threads.feeds.{name}",
            threads.feeds[name],
            "thread.feed_per_exchange",
            f"a feed thread for {name!r}, which this host's engine does not trade",
        )
    # (path, core, hot?)
    placed: list[tuple[str, int | None, bool]] = [
        (f"{base}.threads.feeds.{n}", c, True) for n, c in threads.feeds.items()
    ]
    placed += [
        (f"{base}.threads.strategy", threads.strategy, True),
        (f"{base}.threads.gateway", threads.gateway, True),
        (f"{base}.threads.housekeeping", threads.housekeeping, False),
    ]
    sibling = {a: b for a, b in cpu.smt_siblings} | {b: a for a, b in cpu.smt_siblings}
    used: dict[int, str] = {}
    hot_cores = {core for _, core, hot in placed if hot and core is not None}
    for path, core, hot in placed:
        if core is None:
            if view.mode == "live":
                yield _d(
                    path,
                    None,
                    "thread.pinned_in_live",
                    "live mode pins every engine thread; name a core",
                )
            continue
        if core not in cpu.cores:
            yield _d(
                path,
                core,
                "thread.core_exists",
                f"core {core} does not exist on this host (cores: {sorted(cpu.cores)})",
            )
            continue
        if hot and core not in cpu.isolated:
            yield _d(
                path,
                core,
                "thread.hot_core_isolated",
                f"core {core} is not in cpu.isolated {sorted(cpu.isolated)}: "
                "hot threads (feeds, strategy, gateway) must run on isolated cores",
            )
        if not hot and core not in cpu.housekeeping:
            yield _d(
                path,
                core,
                "thread.housekeeping_core",
                f"core {core} is not in cpu.housekeeping {sorted(cpu.housekeeping)}",
            )
        if core in used:
            yield _d(
                path,
                core,
                "thread.core_used_once",
                f"core {core} is already used by {used[core]}",
            )
        else:
            used[core] = path
        if hot and sibling.get(core) in hot_cores:
            yield _d(
                path,
                core,
                "thread.smt_sibling",
                f"core {core} is the SMT sibling of core {sibling[core]}, which runs another "
                "hot thread",
            )


def _check_rings(base: str, host: Host) -> Iterator[Diagnostic]:
    rings: dict[str, Ring] = {
        "market_data": host.rings.market_data,
        "orders": host.rings.orders,
        "fills": host.rings.fills,
    }
    total = 0
    for name, ring in rings.items():
        slots = ring.slots
        if slots < 2 or slots > MAX_RING_SLOTS or slots & (slots - 1):
            yield _d(
                f"{base}.rings.{name}.slots",
                slots,
                "ring.power_of_two",
                f"{slots} slots: ring sizes must be a power of two between 2 and 2^24",
            )
        if ring.slot_bytes % 64 or not 64 <= ring.slot_bytes <= 65536:
            yield _d(
                f"{base}.rings.{name}.slot_bytes",
                ring.slot_bytes,
                "ring.slot_bytes",
                f"{ring.slot_bytes} bytes: slots must be a multiple of the 64-byte cache line, "
                "64 to 65536",
            )
        total += slots * ring.slot_bytes + RING_HEADER_BYTES
    memory = host.memory
    if host.rings.backing == "hugetlbfs":
        budget = memory.hugepages * memory.hugepage_kb * 1024
        what = f"{memory.hugepages} hugepages of {memory.hugepage_kb} KiB"
    else:
        budget = memory.shm_budget_mb << 20
        what = f"shm_budget_mb {memory.shm_budget_mb}"
    if total > budget:
        yield _d(
            f"{base}.rings",
            total,
            "ring.fits_budget",
            f"the rings need {total} bytes, over the {host.rings.backing} budget of {budget} "
            f"bytes ({what})",
        )


# --- exchanges ----------------------------------------------------------------------------


def _check_exchange(view: View, name: str, ex: Exchange) -> Iterator[Diagnostic]:
    base = f"exchanges.{name}"
    expected_market = {"binance_spot": "spot", "binance_usdm": "usdm"}.get(ex.venue)
    if expected_market and ex.market != expected_market:
        yield _d(
            f"{base}.market",
            ex.market,
            "exchange.venue_market",
            f"venue {ex.venue} speaks the {expected_market} protocol, not {ex.market}",
        )
    if ex.venue == "sim" and ex.sim is None:
        yield _d(f"{base}.sim", None, "exchange.sim_section", "the sim venue needs a sim section")
    if ex.venue != "sim" and ex.sim is not None:
        yield _d(
            f"{base}.sim",
            "(set)",
            "exchange.sim_section",
            f"a sim section on the real venue {ex.venue}; set it to null",
        )
    if view.mode == "live":
        if ex.venue == "sim":
            yield _d(
                f"{base}.venue",
                ex.venue,
                "live.no_sim",
                "live mode cannot trade on the simulated venue",
            )
        if ex.credentials is None:
            yield _d(
                f"{base}.credentials",
                None,
                "live.credentials",
                "live mode needs credentials (env:NAME or file:/path references)",
            )
    if view.project_root is not None and ex.sim is not None:
        capture = Path(ex.sim.capture)
        full = capture if capture.is_absolute() else view.project_root / capture
        if not full.is_file():
            yield _d(
                f"{base}.sim.capture",
                ex.sim.capture,
                "sim.capture_exists",
                "the capture file does not exist (relative paths start at the project root)",
            )


# --- strategies ---------------------------------------------------------------------------


def _multiple(value: Decimal, step: Decimal) -> bool:
    return value % step == 0


def _check_strategy(view: View, name: str, st: StrategyModel) -> Iterator[Diagnostic]:
    base = f"strategies.{name}"
    ex = view.exchanges.get(st.exchange)
    if ex is None:
        if view.declared("exchanges", st.exchange, False):
            return
        yield _d(
            f"{base}.exchange",
            st.exchange,
            "strategy.exchange_declared",
            f"exchange {st.exchange!r} is not declared (declared: {sorted(view.exchanges)})",
        )
        return
    for i, symbol in enumerate(st.instruments):
        ipath = f"{base}.instruments[{i}]"
        inst = ex.instruments.get(symbol)
        if inst is None:
            yield _d(
                ipath,
                symbol,
                "strategy.instrument_listed",
                f"{symbol} is not an instrument of {st.exchange} "
                f"(it lists {sorted(ex.instruments)})",
            )
            continue
        limits = view.risk.instruments.get(symbol) if view.risk is not None else None
        if view.risk is not None and limits is None:
            yield _d(
                ipath,
                symbol,
                "strategy.risk_limits",
                f"{symbol} has no risk.instruments.{symbol} entry: nothing trades without limits",
            )
        qtys: dict[str, Decimal]
        prices: dict[str, Decimal] = {}
        if isinstance(st, MarketMaker):
            qtys = {"quote_qty": st.params.quote_qty, "max_inventory": st.params.max_inventory}
        else:
            qtys = {"order_qty": st.params.order_qty}
            prices = {"max_slippage": st.params.max_slippage}
        for field, qty in qtys.items():
            if not _multiple(qty, inst.lot_size):
                yield _d(
                    f"{base}.params.{field}",
                    _dec(qty),
                    "strategy.lot_multiple",
                    f"{_dec(qty)} is not a multiple of {symbol}'s lot size {_dec(inst.lot_size)}",
                )
        for field, price in prices.items():
            if not _multiple(price, inst.tick_size):
                yield _d(
                    f"{base}.params.{field}",
                    _dec(price),
                    "strategy.tick_multiple",
                    f"{_dec(price)} is not a multiple of {symbol}'s tick size "
                    f"{_dec(inst.tick_size)}",
                )
        if view.project_root is not None and limits is not None:
            yield from _check_strategy_within_risk(
                base, symbol, st, limits.max_order_qty, limits.max_position
            )
    if isinstance(st, ModelTakerManifest):
        width, count = st.params.model.input_width, len(st.params.features.features)
        if width != count:
            yield _d(
                f"{base}.params.model.input_width",
                width,
                "strategy.model_width",
                f"the model takes {width} inputs but {count} features are declared",
            )
    if isinstance(st, ModelTaker | ModelTakerManifest):
        if not st.params.sell_below < st.params.buy_above:
            yield _d(
                f"{base}.params.sell_below",
                _dec(st.params.sell_below),
                "strategy.model_thresholds",
                f"sell_below must be below buy_above ({_dec(st.params.buy_above)}): "
                "otherwise one signal would both buy and sell",
            )
        if len(st.instruments) != 1:
            yield _d(
                f"{base}.instruments",
                st.instruments,
                "strategy.model_instruments",
                "a model strategy trades exactly one instrument (its features are one book's)",
            )
    if isinstance(st, ImbalanceTaker) and st.params.threshold >= 1:
        yield _d(
            f"{base}.params.threshold",
            _dec(st.params.threshold),
            "strategy.threshold_range",
            "the imbalance threshold must be between 0 and 1 (exclusive)",
        )


def _check_strategy_within_risk(
    base: str, symbol: str, st: StrategyModel, max_order_qty: Decimal, max_position: Decimal
) -> Iterator[Diagnostic]:
    order = st.params.quote_qty if isinstance(st, MarketMaker) else st.params.order_qty
    field = "quote_qty" if isinstance(st, MarketMaker) else "order_qty"
    if order > max_order_qty:
        yield _d(
            f"{base}.params.{field}",
            _dec(order),
            "strategy.within_risk",
            f"orders of {_dec(order)} exceed risk.instruments.{symbol}.max_order_qty "
            f"{_dec(max_order_qty)}: risk would refuse every one",
        )
    if isinstance(st, MarketMaker) and st.params.max_inventory > max_position:
        yield _d(
            f"{base}.params.max_inventory",
            _dec(st.params.max_inventory),
            "strategy.within_risk",
            f"max_inventory {_dec(st.params.max_inventory)} exceeds "
            f"risk.instruments.{symbol}.max_position {_dec(max_position)}",
        )


# --- risk ---------------------------------------------------------------------------------


def _check_risk(risk: Risk) -> Iterator[Diagnostic]:
    for symbol, lim in risk.instruments.items():
        base = f"risk.instruments.{symbol}"
        if lim.max_order_qty > lim.max_position:
            yield _d(
                f"{base}.max_order_qty",
                _dec(lim.max_order_qty),
                "risk.order_within_position",
                f"max_order_qty {_dec(lim.max_order_qty)} exceeds max_position "
                f"{_dec(lim.max_position)}",
            )
        if lim.max_order_notional > lim.max_position_notional:
            yield _d(
                f"{base}.max_order_notional",
                _dec(lim.max_order_notional),
                "risk.order_within_position",
                f"max_order_notional {_dec(lim.max_order_notional)} exceeds "
                f"max_position_notional {_dec(lim.max_position_notional)}",
            )
    if risk.order_rate.burst < risk.order_rate.per_second:
        yield _d(
            "risk.order_rate.burst",
            risk.order_rate.burst,
            "risk.burst_at_least_rate",
            f"burst {risk.order_rate.burst} is below per_second {risk.order_rate.per_second}",
        )
