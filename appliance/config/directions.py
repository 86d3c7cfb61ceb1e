"""Which way each manifest field moves risk, declared once (read by appliance/plan/diff.py).

Every field of the manifest (appliance/config/schema.py `Manifest`, docs/manifest.md) has one
entry, keyed by its path with `*` for a name (an exchange, strategy, instrument, symbol);
tests/test_directions.py fails when a schema field has no entry or an entry names no field.
An entry says how a change of the field is classed and why:

- `higher_looser` / `higher_tighter`: a number; a larger value allows more (or less) risk.
- `ordered`: an enumeration listed from the tightest value to the loosest.
- `entity`: a named thing an engine trades with (exchange, instrument, strategy): adding one
  is new exposure (LOOSEN and TOPOLOGY), removing one is TIGHTEN and TOPOLOGY.
- `member_set`: a list of entities (a strategy's instruments): members added loosen,
  members removed only tighten; always TOPOLOGY.
- `limits`: an instrument's risk limits, which come and go with the instrument itself.
- `security`: credentials, keys and endpoints: always reviewed (class SECURITY).
- `artifact`: bytes the engine runs (a model, a capture).
- `topology`: what runs where (cores, threads, rings, hosts).
- `neutral`: no effect on risk (the reason says why).

`critical` marks a change that a reviewer must not miss: `always` for any loosening (or any
change for artifact, security, topology entries), `double` for a loosening by 2x or more.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Direction(StrEnum):
    HIGHER_LOOSER = "higher_looser"
    HIGHER_TIGHTER = "higher_tighter"
    ORDERED = "ordered"
    ENTITY = "entity"
    MEMBER_SET = "member_set"
    LIMITS = "limits"
    SECURITY = "security"
    ARTIFACT = "artifact"
    TOPOLOGY = "topology"
    NEUTRAL = "neutral"


class Critical(StrEnum):
    NEVER = "never"
    ALWAYS = "always"
    DOUBLE = "double"


@dataclass(frozen=True)
class FieldRule:
    direction: Direction
    why: str
    critical: Critical = Critical.NEVER
    # ORDERED: the values from the tightest to the loosest; values in one tuple are equal in
    # risk (a move between them is TOPOLOGY).
    order: tuple[tuple[object, ...], ...] = ()
    # A change also needs the host rebooted (kernel arguments).
    reboot: bool = False


_N, _LOOSE, _TIGHT = Direction.NEUTRAL, Direction.HIGHER_LOOSER, Direction.HIGHER_TIGHTER
_TOPO, _SEC, _ART = Direction.TOPOLOGY, Direction.SECURITY, Direction.ARTIFACT


def _r(
    direction: Direction,
    why: str,
    critical: Critical = Critical.NEVER,
    order: tuple[tuple[object, ...], ...] = (),
    reboot: bool = False,
) -> FieldRule:
    return FieldRule(direction, why, critical, order, reboot)


_MODEL_IO = "the model's signature; it changes only with the model file"
_FILTER = "an exchange filter copied from exchangeInfo; the venue enforces it, not the engine"
_LISTING = "the venue's listing of the instrument (OKX, Kraken metadata)"
_FEE = "the venue's fee schedule: PnL accounting, no limit on what is traded"
_CORES = "which cores the engine's threads run on"
_RING = "ring sizing: capacity of the in-process queues, no limit on trading"

FIELDS: dict[str, FieldRule] = {
    # --- the manifest itself -----------------------------------------------------------------
    "manifest_version": _r(_N, "the contract version; the engine refuses one it does not know"),
    "content_sha256": _r(_N, "the manifest's own hash; every change shows as its own field"),
    "provenance.compiler": _r(_N, "who compiled the manifest (provenance is not compared)"),
    "provenance.git_commit": _r(_N, "where the manifest came from (provenance is not compared)"),
    "provenance.git_dirty": _r(_N, "where the manifest came from (provenance is not compared)"),
    "provenance.choices.*": _r(_N, "the config choices (provenance is not compared)"),
    "provenance.overrides": _r(_N, "the command line overrides (provenance is not compared)"),
    # --- deployment and engine -----------------------------------------------------------------
    "deployment.name": _r(_N, "a label"),
    "deployment.mode": _r(
        Direction.ORDERED,
        "paper sends no order to a real exchange; live trades real money",
        Critical.ALWAYS,
        order=(("paper",), ("live",)),
    ),
    "engine.id": _r(_TOPO, "the engine's identity (service, journal, control)"),
    "engine.host": _r(_TOPO, "the host the engine runs on"),
    "engine.bus.events": _r(_SEC, "the event bus endpoint: who can read fills and positions"),
    "engine.bus.control": _r(
        _SEC, "the control endpoint accepts kill/flatten/tighten: who can reach it", Critical.ALWAYS
    ),
    "engine.bus.hwm": _r(_N, "the bus's queue depth for slow readers; trading is not affected"),
    "engine.journal.dir": _r(_N, "where the journal is written"),
    "engine.journal.fsync": _r(_N, "journal durability after a crash, not trading risk"),
    "engine.journal.fsync_interval_ms": _r(_N, "journal durability, not trading risk"),
    "engine.metrics.listen": _r(
        _SEC, "where the metrics are served: who can read positions and P&L"
    ),
    "engine.flight_recorder": _r(
        _N, "what market data is recorded for research; trading is the same"
    ),
    "engine.flight_recorder.dir": _r(_N, "where the recordings are written"),
    "engine.flight_recorder.file_mb": _r(_N, "the recordings' file size"),
    "engine.flight_recorder.budget_mb": _r(_N, "how much recording is kept"),
    "engine.anomaly": _r(_N, "what behaviour is watched against a backtest; trading is the same"),
    "engine.anomaly.baseline": _r(_N, "which baseline the behaviour is compared with"),
    "engine.anomaly.baseline_sha256": _r(_N, "which baseline the behaviour is compared with"),
    "engine.anomaly.window_s": _r(_N, "how long a window anomalies are measured over"),
    "engine.anomaly.derivation": _r(_N, "how the expected ranges were derived"),
    "engine.anomaly.figures": _r(_N, "when an anomaly is raised; the engine trades the same"),
    "engine.anomaly.figures.*": _r(_N, "a figure watched; the engine trades the same"),
    "engine.anomaly.figures.*.low": _r(_N, "when an anomaly is raised; the engine trades the same"),
    "engine.anomaly.figures.*.high": _r(
        _N, "when an anomaly is raised; the engine trades the same"
    ),
    "engine.metrics.tick_to_order_p99_alert_us": _r(
        _N, "when operators are paged about latency; the engine trades the same"
    ),
    # --- host ------------------------------------------------------------------------------
    "host.name": _r(_TOPO, "the host's identity"),
    "host.address": _r(_TOPO, "the machine the release is installed on"),
    "host.cpu.cores": _r(_TOPO, "the cores the host has"),
    "host.cpu.isolated": _r(_TOPO, "isolcpus/nohz_full: a kernel argument", reboot=True),
    "host.cpu.housekeeping": _r(_TOPO, "irqaffinity: a kernel argument", reboot=True),
    "host.cpu.smt_siblings": _r(_TOPO, "the hyperthread pairs the pinning avoids"),
    "host.cpu.numa_nodes": _r(_TOPO, "which cores share memory with the NIC"),
    "host.nic.name": _r(_TOPO, "the NIC the feeds arrive on"),
    "host.nic.numa_node": _r(_TOPO, "the NIC's NUMA node"),
    "host.memory.hugepage_kb": _r(_TOPO, "hugepage size: a kernel argument", reboot=True),
    "host.memory.hugepages": _r(
        _TOPO, "hugepages reserved at boot: a kernel argument", reboot=True
    ),
    "host.memory.shm_budget_mb": _r(_TOPO, "shared memory the rings may use"),
    "host.threads.layout": _r(_TOPO, "whether the hot path runs on one thread or a pipeline"),
    "host.threads.feeds.*": _r(_TOPO, _CORES),
    "host.threads.strategy": _r(_TOPO, _CORES),
    "host.threads.gateway": _r(_TOPO, _CORES),
    "host.threads.housekeeping": _r(_TOPO, _CORES),
    "host.rings.backing": _r(_TOPO, "shm or hugetlbfs behind the rings"),
    "host.rings.market_data.slots": _r(_TOPO, _RING),
    "host.rings.market_data.slot_bytes": _r(_TOPO, _RING),
    "host.rings.orders.slots": _r(_TOPO, _RING),
    "host.rings.orders.slot_bytes": _r(_TOPO, _RING),
    "host.rings.fills.slots": _r(_TOPO, _RING),
    "host.rings.fills.slot_bytes": _r(_TOPO, _RING),
    # --- exchanges -------------------------------------------------------------------------
    "exchanges.*": _r(Direction.ENTITY, "an exchange the engine connects to"),
    "exchanges.*.venue": _r(
        Direction.ORDERED,
        "sim replays a capture and Kraken is market data only; a real venue takes real orders",
        Critical.ALWAYS,
        order=(("sim", "kraken"), ("binance_spot", "binance_usdm", "okx")),
    ),
    "exchanges.*.market": _r(_TOPO, "spot or futures: another product on the venue"),
    "exchanges.*.endpoints.ws": _r(_SEC, "where market data and user streams come from"),
    "exchanges.*.endpoints.rest": _r(_SEC, "where orders and credentials are sent"),
    "exchanges.*.endpoints.ws_api": _r(
        _SEC, "where orders and credentials are sent over the WebSocket API"
    ),
    "exchanges.*.order_entry": _r(
        _SEC, "orders sent over another transport (REST or the WebSocket API)", Critical.ALWAYS
    ),
    "exchanges.*.credentials": _r(_SEC, "the account the engine trades with", Critical.ALWAYS),
    "exchanges.*.credentials.api_key": _r(_SEC, "the account's API key", Critical.ALWAYS),
    "exchanges.*.credentials.api_secret": _r(_SEC, "the account's API secret", Critical.ALWAYS),
    "exchanges.*.credentials.passphrase": _r(
        _SEC, "the account's API passphrase (OKX)", Critical.ALWAYS
    ),
    "exchanges.*.credentials.key_type": _r(
        _SEC, "the account signs with another kind of key (HMAC or Ed25519)", Critical.ALWAYS
    ),
    "exchanges.*.metadata": _r(
        _ART, "the venue's metadata file the instruments are checked against", Critical.ALWAYS
    ),
    "exchanges.*.metadata_sha256": _r(
        _ART, "the venue's metadata changed: listings, filters, contract terms", Critical.ALWAYS
    ),
    "exchanges.*.rate_limits.orders_per_10s": _r(
        _LOOSE, "the engine's own order budget under the venue's limit: more orders allowed"
    ),
    "exchanges.*.rate_limits.orders_per_day": _r(
        _LOOSE, "the engine's own daily order budget: more orders allowed"
    ),
    "exchanges.*.rate_limits.request_weight_per_minute": _r(
        _LOOSE, "the engine's own request budget: more requests allowed"
    ),
    "exchanges.*.on_gap": _r(
        Direction.ORDERED,
        "halt stops trading on a sequence gap; resync keeps trading after a snapshot",
        order=(("halt",), ("resync",)),
    ),
    "exchanges.*.instruments.*": _r(Direction.ENTITY, "an instrument the exchange lists"),
    "exchanges.*.instruments.*.tick_size": _r(_N, _FILTER),
    "exchanges.*.instruments.*.lot_size": _r(_N, _FILTER),
    "exchanges.*.instruments.*.min_notional": _r(_N, _FILTER),
    "exchanges.*.instruments.*.maker_fee_bps": _r(_N, _FEE),
    "exchanges.*.instruments.*.taker_fee_bps": _r(_N, _FEE),
    "exchanges.*.instruments.*.leverage": _r(
        _LOOSE,
        "leverage (USD-M, OKX swaps): the same margin carries a larger position, liquidated sooner",
        Critical.DOUBLE,
    ),
    "exchanges.*.instruments.*.margin_type": _r(
        Direction.ORDERED,
        "isolated risks only the position's margin; cross puts the whole wallet behind it",
        Critical.ALWAYS,
        order=(("isolated",), ("cross",)),
    ),
    "exchanges.*.instruments.*.listing": _r(_TOPO, _LISTING),
    "exchanges.*.instruments.*.listing.symbol": _r(
        _TOPO, "another instrument of the venue under the same name", Critical.ALWAYS
    ),
    "exchanges.*.instruments.*.listing.type": _r(
        _TOPO, "spot or a contract: another product", Critical.ALWAYS
    ),
    "exchanges.*.instruments.*.listing.min_size": _r(_N, _FILTER),
    "exchanges.*.instruments.*.listing.expiry_ms": _r(
        _TOPO, "another delivery date: another contract", Critical.ALWAYS
    ),
    "exchanges.*.instruments.*.listing.contract": _r(_TOPO, _LISTING, Critical.ALWAYS),
    "exchanges.*.instruments.*.listing.contract.value": _r(
        _LOOSE, "more exposure per contract", Critical.DOUBLE
    ),
    "exchanges.*.instruments.*.listing.contract.multiplier": _r(
        _LOOSE, "more exposure per contract", Critical.DOUBLE
    ),
    "exchanges.*.instruments.*.listing.contract.value_currency": _r(_TOPO, _LISTING),
    "exchanges.*.instruments.*.listing.contract.type": _r(
        _TOPO, "linear or inverse: P&L in another currency", Critical.ALWAYS
    ),
    "exchanges.*.instruments.*.listing.contract.settle_currency": _r(_TOPO, _LISTING),
    "exchanges.*.sim": _r(_ART, "the sim venue's replay (comes with venue sim)"),
    "exchanges.*.sim.capture": _r(_ART, "the recorded traffic the sim venue replays"),
    "exchanges.*.sim.speed": _r(_N, "replay speed of the sim venue (paper only)"),
    "exchanges.*.sim.latency_us": _r(_N, "simulated venue latency (paper only)"),
    "exchanges.*.sim.commission_asset": _r(_N, "the sim's commission asset (paper only)"),
    "exchanges.*.sim.bnb_balance": _r(_N, "the sim's BNB for commissions (paper only)"),
    "exchanges.*.sim.bnb_price": _r(_N, "the sim's BNB price for commissions (paper only)"),
    "exchanges.*.commission_reference_prices.*": _r(
        _N, "values a commission asset in P&L where no book prices it; no limit on trading"
    ),
    "exchanges.*.book_checksum_every": _r(
        _LOOSE,
        "books verified by the venue's checksum less often: a corrupted book is traded on for "
        "longer before it is found",
        Critical.DOUBLE,
    ),
    "exchanges.*.self_trade_prevention": _r(
        Direction.ORDERED,
        "none lets the strategies' orders trade with each other (wash trades)",
        Critical.ALWAYS,
        order=(("expire_both", "expire_maker", "expire_taker"), ("none",)),
    ),
    "exchanges.*.reconcile": _r(
        _TOPO, "balance reconciliation with the venue's account (null: none)", Critical.ALWAYS
    ),
    "exchanges.*.reconcile.starting_balances.*": _r(
        _N, "what the account held when the journal began: the expected balances move"
    ),
    "exchanges.*.reconcile.tolerance.*": _r(
        _LOOSE, "a larger balance difference from the venue tolerated", Critical.ALWAYS
    ),
    "exchanges.*.reconcile.interval_ms": _r(
        _LOOSE, "balances are reconciled with the venue less often"
    ),
    # --- strategies ------------------------------------------------------------------------
    "strategies.*": _r(Direction.ENTITY, "a strategy that sends orders"),
    "strategies.*.kind": _r(_TOPO, "another strategy under the same name", Critical.ALWAYS),
    "strategies.*.exchange": _r(
        Direction.ENTITY, "the strategy trades on another exchange: new exposure there"
    ),
    "strategies.*.instruments": _r(Direction.MEMBER_SET, "the instruments the strategy trades"),
    # market_maker
    "strategies.*.params.reference": _r(
        _N, "mid or microprice: where quotes are centred, not how much is quoted"
    ),
    "strategies.*.params.half_spread_ticks": _r(
        _TIGHT, "a wider half spread quotes further from the touch: fewer, less adverse fills"
    ),
    "strategies.*.params.quote_qty": _r(
        _LOOSE, "a larger quote size: more filled per quote", Critical.DOUBLE
    ),
    "strategies.*.params.max_inventory": _r(
        _LOOSE, "the market maker may hold a larger position", Critical.DOUBLE
    ),
    "strategies.*.params.inventory_skew_ticks": _r(
        _TIGHT, "a stronger skew pushes the inventory back towards flat sooner"
    ),
    "strategies.*.params.requote_threshold_ticks": _r(
        _LOOSE, "quotes may drift further from the fair price before they are replaced"
    ),
    "strategies.*.params.touch": _r(
        _N, "book or bbo: which top of book the quotes are placed against"
    ),
    "strategies.*.params.requote": _r(
        _N, "replace or amend: how a working quote is moved (the same quotes either way)"
    ),
    "strategies.*.params.signal": _r(
        _TOPO, "the market maker's fair value from another book (absent: its own)", Critical.ALWAYS
    ),
    "strategies.*.params.signal.exchange": _r(
        _TOPO, "the fair value read from another exchange", Critical.ALWAYS
    ),
    "strategies.*.params.signal.instrument": _r(
        _TOPO, "the fair value read from another instrument", Critical.ALWAYS
    ),
    "strategies.*.params.signal.basis_updates": _r(
        _N, "how slowly the level difference between the two books is followed"
    ),
    # imbalance_taker
    "strategies.*.params.levels": _r(_N, "book depth the imbalance signal reads"),
    "strategies.*.params.threshold": _r(
        _TIGHT, "a higher imbalance threshold: the taker trades only on stronger signals"
    ),
    "strategies.*.params.order_qty": _r(_LOOSE, "a larger order size per signal", Critical.DOUBLE),
    "strategies.*.params.max_slippage": _r(
        _LOOSE, "an aggressive order may execute further from the touch", Critical.DOUBLE
    ),
    "strategies.*.params.cooldown_ms": _r(_TIGHT, "a longer pause between orders: fewer orders"),
    # model_taker
    "strategies.*.params.buy_above": _r(
        _TIGHT, "a higher buy threshold: the model buys on fewer signals"
    ),
    "strategies.*.params.sell_below": _r(
        _LOOSE, "a higher sell threshold: the model sells on more signals"
    ),
    "strategies.*.params.model": _r(_ART, "the model the strategy runs", Critical.ALWAYS),
    "strategies.*.params.model.path": _r(_ART, "the model file the strategy runs", Critical.ALWAYS),
    "strategies.*.params.model.sha256": _r(
        _ART, "the model swapped: other predictions, other orders", Critical.ALWAYS
    ),
    "strategies.*.params.model.input_name": _r(_ART, _MODEL_IO),
    "strategies.*.params.model.input_width": _r(_ART, _MODEL_IO),
    "strategies.*.params.model.output_name": _r(_ART, _MODEL_IO),
    "strategies.*.params.model.output_width": _r(_ART, _MODEL_IO),
    "strategies.*.params.model.opset": _r(_ART, _MODEL_IO),
    "strategies.*.params.model.intra_op_threads": _r(_N, "inference threads: latency, not risk"),
    "strategies.*.params.model.optimization": _r(_N, "graph optimisation level: latency, not risk"),
    "strategies.*.params.features": _r(_ART, "the model's inputs", Critical.ALWAYS),
    "strategies.*.params.features.features": _r(
        _ART, "the model's inputs: the same model sees other numbers", Critical.ALWAYS
    ),
    # --- risk ------------------------------------------------------------------------------
    "risk.kill_switch.enabled": _r(
        Direction.ORDERED,
        "a disarmed kill switch does not stop trading at the loss limits",
        Critical.ALWAYS,
        order=((True,), (False,)),
    ),
    "risk.kill_switch.cancel_on_trigger": _r(
        Direction.ORDERED,
        "without it, resting orders stay on the book after the kill switch trips",
        order=((True,), (False,)),
    ),
    "risk.max_daily_loss": _r(_LOOSE, "the loss at which trading stops", Critical.ALWAYS),
    "risk.max_drawdown": _r(_LOOSE, "the drawdown at which trading stops", Critical.ALWAYS),
    "risk.max_gross_exposure": _r(_LOOSE, "the total exposure allowed", Critical.ALWAYS),
    "risk.reducing_at_pct": _r(
        _LOOSE, "the share of a limit at which only reducing orders pass: later reduce-only"
    ),
    "risk.reduce_only_before_expiry_ms": _r(
        _TIGHT, "how long before a future's expiry only reducing orders are sent", Critical.DOUBLE
    ),
    "risk.max_open_orders": _r(_LOOSE, "more resting orders allowed", Critical.DOUBLE),
    "risk.order_rate.per_second": _r(_LOOSE, "more orders per second allowed", Critical.DOUBLE),
    "risk.order_rate.burst": _r(_LOOSE, "a larger burst of orders allowed", Critical.DOUBLE),
    "risk.feed_stale_ms": _r(
        _LOOSE, "trading continues on older market data before the feed counts as stale"
    ),
    "risk.stale_exposure_halt_ms": _r(
        _LOOSE, "a position on a stale book is held longer before trading halts"
    ),
    "risk.min_liquidation_distance_bps": _r(
        _TIGHT, "trading halts further from the liquidation price", Critical.DOUBLE
    ),
    "risk.instruments.*": _r(Direction.LIMITS, "an instrument's limits"),
    "risk.assets": _r(
        _TOPO, "limits on an asset's position across venues (absent: none)", Critical.ALWAYS
    ),
    "risk.assets.*": _r(Direction.LIMITS, "an asset's limit across venues"),
    "risk.assets.*.max_position": _r(
        _LOOSE, "a larger position in the asset across venues allowed", Critical.DOUBLE
    ),
    "risk.assets.*.instruments": _r(
        _TOPO, "the instruments counted in the asset's position", Critical.ALWAYS
    ),
    "risk.instruments.*.max_position": _r(_LOOSE, "a larger position allowed", Critical.DOUBLE),
    "risk.instruments.*.max_order_qty": _r(_LOOSE, "a larger order allowed", Critical.DOUBLE),
    "risk.instruments.*.max_order_notional": _r(
        _LOOSE, "a larger order value allowed", Critical.DOUBLE
    ),
    "risk.instruments.*.max_position_notional": _r(
        _LOOSE, "a larger position value allowed", Critical.DOUBLE
    ),
    "risk.instruments.*.price_band_bps": _r(
        _LOOSE, "orders further from the reference price pass", Critical.DOUBLE
    ),
}


def rule_for(path: str) -> tuple[str, FieldRule] | None:
    """The entry of a concrete path (`risk.instruments.BTCUSDT.max_position`), or of its
    nearest ancestor that has one; None for a path outside the manifest. A literal key wins
    over `*` at the same place."""
    parts = path.split(".")
    while parts:
        hits = [
            (pattern.count("*"), pattern)
            for pattern, keys in _SPLIT.get(len(parts), [])
            if all(k in ("*", p) for k, p in zip(keys, parts, strict=True))
        ]
        if hits:
            pattern = min(hits)[1]
            return pattern, FIELDS[pattern]
        parts = parts[:-1]
    return None


_SPLIT: dict[int, list[tuple[str, list[str]]]] = {}
for _pattern in FIELDS:
    _SPLIT.setdefault(_pattern.count(".") + 1, []).append((_pattern, _pattern.split(".")))
