//! The in-process backtest driver: market events in, the manifest's strategies trading through
//! the same risk engine and the simulated matcher, records out.
//!
//! ```text
//! MarketEvent -> BookSync (per exchange + symbol) -> Matcher (queue/fills) -> Portfolio (marks)
//!             -> Strategy::on_book / on_trade  -> Action -> RiskEngine::check -> latency -> Matcher
//!             <- FillReport / OrderUpdate <- latency <- Exec
//! ```
//!
//! # Live trading: external venues
//!
//! The live engine runs this same driver (the same book sync, strategies, risk engine, order
//! tracking and portfolio) with its exchanges switched to *external* ([`Backtest::set_external`]):
//! orders and cancels that pass risk are queued for the caller ([`Backtest::drain_requests`],
//! sent by the gateway) instead of reaching the in-process matcher, and the venue's execution
//! reports come back through [`Backtest::on_exec`]. [`Backtest::enable_event_log`] makes every
//! order update, fill, position change and risk transition available to the caller
//! ([`Backtest::drain_events`]) for the journal and the event bus.
//!
//! # Time and latency
//!
//! One clock: the events' `local_ns` (when the recorder received them), kept monotonic. The
//! exchange's own timestamps are not used for ordering (a recorder's clock may run behind the
//! exchange's: never assume `local_ns >= exchange_ns`). Per exchange, a constant
//! [`LatencyModel`]:
//! - an order or cancel sent at `t` reaches the matcher at `t + order_entry + feed` on this
//!   clock: it is matched against the book as the recording shows it at that time, which is
//!   the exchange's book `feed` earlier (the recording itself is `feed` late);
//! - an execution the matcher makes at clock time `m` (the exchange's `m - feed`) is reported to
//!   the strategy at `m - feed + response`;
//! - a request due at the same time as a market event is handled before the event.
//!
//! From a manifest, all three are the exchange's `sim.latency_us` (zero for a non-sim
//! exchange; set [`ExchangeConfig::latency`] to model one).
//!
//! # What the strategies see
//!
//! A strategy hears about an instrument only while its book is synced: `on_book` after an
//! applied diff or a loaded snapshot, `on_trade` for trades. When a book loses sync (gap or bad
//! diff), the strategies trading it get `on_book_lost`, and every open order on it is cancelled
//! (cancels travel with the usual latency). Order updates and fills are always delivered.
//! Every `Action::Place` is checked by the risk engine at the clock time it is sent; a
//! rejection comes back as an `OrderUpdate` (no latency) and is counted by reason.
//!
//! Positions are marked to the mid after every book change; the risk engine sees the equity
//! after every fill, every mark of a non-flat instrument and every equity sample. When risk
//! goes HALTED with `cancel_on_trigger`, every open order is cancelled.
//!
//! # Records
//!
//! Orders (one record per order, updated to its last status), fills, positions after every
//! fill, equity samples (every `equity_interval_ns` of event time and after every fill; when
//! there are `max_equity_samples`, every other one is dropped and the interval doubles, so
//! memory stays bounded and the curve evenly thinned), risk state changes, counters. Orders,
//! fills and positions stop being recorded past `max_records` each (counted in
//! `records_dropped`). Same events, same result: nothing here reads a clock or iterates a
//! hash map.

use std::collections::VecDeque;
use std::mem;

use rt_manifest::model::{Market, Risk};
use rt_manifest::Manifest;

use crate::event::MarketEvent;
use crate::markout::{MarkoutTotals, Markouts};
use crate::matching::{Exec, ExecKind, Matcher, SimRequest};
use crate::order::{OrderEvent, OrderLifecycle};
use crate::portfolio::{Cash, InstrumentId, InstrumentSpec, Portfolio};
use crate::risk::{RejectReason, RiskConfig, RiskEngine, RiskState, RiskTransition};
use crate::strategy::{
    self, Action, FillReport, ModelLoader, ModelStats, NewOrder, OrderKind, OrderStatus,
    OrderUpdate, Strategy, StrategyContext, StrategyError,
};
use crate::sync::{BookSync, DiffOutcome, SyncRule};
use crate::types::{Nanos, Price, Qty, Side};

/// Index of an exchange in [`BacktestConfig::exchanges`].
pub type ExchangeId = usize;

/// Rounds of request/report handling per call before the driver stops (a strategy answering
/// every report with a new order at zero latency could otherwise loop forever).
const MAX_PUMP_ROUNDS: usize = 1024;

/// Constant latencies of one exchange, in ns of event time. See the module documentation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LatencyModel {
    /// From the strategy's decision to the exchange.
    pub order_entry_ns: Nanos,
    /// From the exchange back to the strategy.
    pub response_ns: Nanos,
    /// How late the recorded market data shows the exchange's book.
    pub feed_ns: Nanos,
}

impl LatencyModel {
    pub const ZERO: LatencyModel = LatencyModel {
        order_entry_ns: 0,
        response_ns: 0,
        feed_ns: 0,
    };

    /// The same one-way latency everywhere (the manifest's `sim.latency_us`).
    pub const fn symmetric(ns: Nanos) -> LatencyModel {
        LatencyModel {
            order_entry_ns: ns,
            response_ns: ns,
            feed_ns: ns,
        }
    }

    /// Clock time from sending to reaching the matcher.
    const fn to_matcher(self) -> Nanos {
        self.order_entry_ns.saturating_add(self.feed_ns)
    }

    /// Clock time from the matcher to the strategy.
    const fn to_strategy(self) -> Nanos {
        self.response_ns.saturating_sub(self.feed_ns)
    }
}

/// One instrument of an exchange.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstrumentConfig {
    pub symbol: String,
    pub spec: InstrumentSpec,
}

/// One exchange: its book sync rule, latency and instruments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExchangeConfig {
    pub name: String,
    pub rule: SyncRule,
    pub latency: LatencyModel,
    pub instruments: Vec<InstrumentConfig>,
}

/// One strategy instance (the manifest's `strategies.<name>`).
#[derive(Clone, Debug, PartialEq)]
pub struct StrategyConfig {
    pub name: String,
    pub strategy: rt_manifest::model::Strategy,
}

/// Everything a backtest needs; [`BacktestConfig::from_manifest`] fills it from a manifest,
/// and every field may be changed before [`Backtest::new`].
#[derive(Clone, Debug, PartialEq)]
pub struct BacktestConfig {
    pub exchanges: Vec<ExchangeConfig>,
    pub strategies: Vec<StrategyConfig>,
    pub risk: Risk,
    /// Equity sampling period in event time (positive).
    pub equity_interval_ns: Nanos,
    /// Bound on the equity curve's length (at least 2).
    pub max_equity_samples: usize,
    /// Bound on each of the order, fill and position records.
    pub max_records: usize,
}

impl BacktestConfig {
    pub const DEFAULT_EQUITY_INTERVAL_NS: Nanos = 1_000_000_000;
    pub const DEFAULT_MAX_EQUITY_SAMPLES: usize = 1 << 20;
    pub const DEFAULT_MAX_RECORDS: usize = 10_000_000;

    /// Every exchange of the manifest with all its instruments, every strategy, the risk
    /// section; latencies from `sim.latency_us`.
    pub fn from_manifest(manifest: &Manifest) -> BacktestConfig {
        let exchanges = manifest
            .exchanges
            .iter()
            .map(|(name, exchange)| ExchangeConfig {
                name: name.clone(),
                rule: match exchange.market {
                    Market::Spot => SyncRule::Spot,
                    Market::Usdm => SyncRule::UsdM,
                },
                latency: exchange.sim.as_ref().map_or(LatencyModel::ZERO, |sim| {
                    LatencyModel::symmetric(
                        Nanos::try_from(sim.latency_us.saturating_mul(1_000)).unwrap_or(Nanos::MAX),
                    )
                }),
                instruments: exchange
                    .instruments
                    .iter()
                    .map(|(symbol, instrument)| InstrumentConfig {
                        symbol: symbol.clone(),
                        spec: InstrumentSpec::from_manifest(instrument),
                    })
                    .collect(),
            })
            .collect();
        let strategies = manifest
            .strategies
            .iter()
            .map(|(name, strategy)| StrategyConfig {
                name: name.clone(),
                strategy: strategy.clone(),
            })
            .collect();
        BacktestConfig {
            exchanges,
            strategies,
            risk: manifest.risk.clone(),
            equity_interval_ns: Self::DEFAULT_EQUITY_INTERVAL_NS,
            max_equity_samples: Self::DEFAULT_MAX_EQUITY_SAMPLES,
            max_records: Self::DEFAULT_MAX_RECORDS,
        }
    }
}

/// Why a backtest cannot be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BacktestError {
    #[error("strategies.{strategy}: exchange {exchange:?} is not in the backtest")]
    UnknownExchange { strategy: String, exchange: String },
    #[error("strategies.{strategy}: instrument {symbol:?} is not on exchange {exchange:?}")]
    UnknownInstrument {
        strategy: String,
        exchange: String,
        symbol: String,
    },
    #[error("strategies.{strategy}: {source}")]
    Strategy {
        strategy: String,
        #[source]
        source: StrategyError,
    },
    #[error("strategy {strategy}: instrument id {id} is not in the backtest")]
    InstrumentId { strategy: String, id: InstrumentId },
    #[error("exchange index {0} is not in the backtest")]
    ExchangeIndex(ExchangeId),
    #[error("strategy index {0} (or its slot) is not in the backtest")]
    StrategyIndex(usize),
    #[error("{field} must be {rule}, found {value}")]
    Setting {
        field: &'static str,
        rule: &'static str,
        value: i64,
    },
}

/// An instrument of the backtest; `id` indexes positions and appears in every record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstrumentInfo {
    pub id: InstrumentId,
    pub exchange: String,
    pub symbol: String,
    pub spec: InstrumentSpec,
}

/// One order, with its last known status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderRecord {
    /// When the strategy sent it (event time).
    pub ts: Nanos,
    pub order_id: u64,
    /// Index of the strategy in [`BacktestResult::strategies`].
    pub strategy: u32,
    pub client_id: u64,
    pub instrument: InstrumentId,
    pub side: Side,
    pub price: Price,
    pub qty: Qty,
    pub kind: OrderKind,
    /// Final, unless the order was still working when the events ended.
    pub status: OrderStatus,
    pub filled_qty: Qty,
    pub reject_reason: Option<RejectReason>,
    /// When the status last changed (as the strategy learnt it).
    pub updated_ts: Nanos,
}

/// One execution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FillRecord {
    /// When the strategy learnt of it.
    pub ts: Nanos,
    /// When the matcher made it (clock time; see the module documentation).
    pub match_ts: Nanos,
    pub order_id: u64,
    pub strategy: u32,
    pub client_id: u64,
    pub instrument: InstrumentId,
    pub side: Side,
    pub price: Price,
    pub qty: Qty,
    pub maker: bool,
    /// Quote units of 10^-8; negative for a rebate.
    pub fee: Cash,
}

/// An instrument's position after a fill.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PositionRecord {
    pub ts: Nanos,
    pub instrument: InstrumentId,
    pub position: Qty,
    /// Zero when flat.
    pub avg_entry_price: Price,
    /// The instrument's cumulative realised P&L, unrealised P&L and fees.
    pub realised_pnl: Cash,
    pub unrealised_pnl: Cash,
    pub fees: Cash,
}

/// The account at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EquitySample {
    pub ts: Nanos,
    /// realised + unrealised - fees.
    pub equity: Cash,
    pub realised_pnl: Cash,
    pub unrealised_pnl: Cash,
    pub fees: Cash,
    pub gross_exposure: Cash,
}

/// A risk state change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RiskEventRecord {
    pub ts: Nanos,
    pub from: RiskState,
    pub to: RiskState,
    pub cause: crate::risk::RiskCause,
}

/// Running totals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BacktestCounters {
    /// Market events fed in.
    pub events: u64,
    pub depth_events: u64,
    pub snapshots: u64,
    pub trades: u64,
    pub bbos: u64,
    /// Depth and snapshot levels (one "row" each, as hftbacktest counts them).
    pub level_changes: u64,
    /// Events of a symbol (or exchange index) the backtest does not know.
    pub unknown_symbol: u64,
    /// Diffs applied plus snapshots loaded.
    pub book_updates: u64,
    pub diffs_applied: u64,
    pub diffs_stale: u64,
    pub diffs_buffered: u64,
    pub gaps: u64,
    pub invalid: u64,
    /// Diffs that left a book crossed (applied, unusable until uncrossed; see
    /// [`crate::sync::MAX_CROSSED_DIFFS`]).
    pub crossed: u64,
    /// Transient crossings: begun, and undone by a later diff (the rest resynced).
    pub crossings: u64,
    pub crossings_repaired: u64,
    /// Times a synced book lost sync.
    pub resyncs: u64,
    /// Strategy market-data callbacks.
    pub strategy_calls: u64,
    /// `Action::Place` received.
    pub orders_placed: u64,
    /// Passed risk and sent to the matcher.
    pub orders_sent: u64,
    /// Refused (risk, engine or venue); by reason in `rejected_by_reason`.
    pub orders_rejected: u64,
    pub orders_filled: u64,
    /// Orders with at least one fill.
    pub orders_with_fills: u64,
    pub orders_cancelled: u64,
    pub orders_expired: u64,
    /// Indexed by `RejectReason as usize` (see [`BacktestCounters::rejections`]).
    pub rejected_by_reason: [u64; RejectReason::COUNT],
    pub cancels_sent: u64,
    /// Cancels that found nothing resting (the order had filled or expired meanwhile).
    pub cancels_rejected: u64,
    /// `Action::Cancel` for a client id with no live order.
    pub cancels_unknown: u64,
    pub fills: u64,
    pub maker_fills: u64,
    pub taker_fills: u64,
    pub risk_transitions: u64,
    pub pump_overflows: u64,
    pub records_dropped: u64,
    /// Events applied to the books before the trading start (see
    /// [`Backtest::set_warmup_until`]); every other counter covers the events after it.
    pub warmup_events: u64,
    /// Rows the strategies' models evaluated (filled in by [`Backtest::finish`]).
    pub model_predictions: u64,
    /// Model evaluations that failed; each skipped its tick.
    pub model_errors: u64,
    /// Reports an order's lifecycle refused or capped ([`crate::order`]): a fill beyond the
    /// order's quantity (the venue's fill booked, the order closed filled) or a final report
    /// that could not follow (a rejection after fills: the order closed as reported).
    pub order_errors: u64,
}

impl BacktestCounters {
    /// Non-zero rejection counts by reason, in [`RejectReason::ALL`] order.
    pub fn rejections(&self) -> Vec<(RejectReason, u64)> {
        RejectReason::ALL
            .iter()
            .zip(self.rejected_by_reason)
            .filter(|(_, n)| *n > 0)
            .map(|(r, n)| (*r, n))
            .collect()
    }

    /// Rows as hftbacktest counts them: level changes (depth and snapshot) plus trades.
    pub fn rows(&self) -> u64 {
        self.level_changes + self.trades
    }
}

/// The headline numbers.
#[derive(Clone, Debug, PartialEq)]
pub struct BacktestSummary {
    /// Event time of the first and last events.
    pub start_ns: Nanos,
    pub end_ns: Nanos,
    /// Final equity (realised + unrealised - fees).
    pub pnl: Cash,
    pub realised_pnl: Cash,
    pub unrealised_pnl: Cash,
    pub fees: Cash,
    /// Sum of fill notionals.
    pub turnover: Cash,
    /// Largest peak-to-trough fall of the equity, over every evaluation (not only samples).
    pub max_drawdown: Cash,
    pub orders_sent: u64,
    pub orders_rejected: u64,
    pub fills: u64,
    pub maker_fills: u64,
    pub taker_fills: u64,
    /// Orders with at least one fill / orders sent (0 when none were sent).
    pub fill_ratio: f64,
    /// Orders still working when the events ended.
    pub open_orders: u64,
    /// Final position per instrument (indexed by instrument id).
    pub positions: Vec<Qty>,
    pub final_risk_state: RiskState,
    /// Non-zero rejection counts.
    pub rejections: Vec<(RejectReason, u64)>,
}

/// Everything a backtest recorded, as plain vectors of plain structs.
#[derive(Clone, Debug, PartialEq)]
pub struct BacktestResult {
    pub instruments: Vec<InstrumentInfo>,
    /// Strategy names; `strategy` fields index this.
    pub strategies: Vec<String>,
    pub orders: Vec<OrderRecord>,
    pub fills: Vec<FillRecord>,
    pub positions: Vec<PositionRecord>,
    pub equity: Vec<EquitySample>,
    pub risk_events: Vec<RiskEventRecord>,
    pub counters: BacktestCounters,
    pub summary: BacktestSummary,
}

/// `"buy"` / `"sell"`.
pub const fn side_as_str(side: Side) -> &'static str {
    match side {
        Side::Buy => "buy",
        Side::Sell => "sell",
    }
}

/// What the gateway must send to an external venue (see [`Backtest::set_external`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VenueRequest {
    New {
        exchange: ExchangeId,
        instrument: InstrumentId,
        request: SimRequest,
    },
    Cancel {
        exchange: ExchangeId,
        instrument: InstrumentId,
        order_id: u64,
    },
}

/// What happened, for the journal and the bus (see [`Backtest::enable_event_log`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraderEvent {
    /// An order was sent or refused, or its status changed.
    Order(OrderRecord),
    Fill(FillRecord),
    /// An instrument's position after a fill.
    Position(PositionRecord),
    Risk(RiskEventRecord),
}

/// An instrument's book, matcher and subscribers.
#[derive(Debug)]
struct Book {
    sync: BookSync,
    matcher: Matcher,
    exchange: ExchangeId,
    /// (strategy, slot, wants trades) of the strategies trading it.
    subs: Vec<(usize, usize, bool)>,
    /// (strategy, slot, traded instrument) of the strategies reading it as a signal.
    signal_subs: Vec<(usize, usize, InstrumentId)>,
    synced: bool,
    /// The mid the portfolio was last marked to.
    marked: Option<Price>,
    /// When the position's mark was last set (a book mid, or a trade while the book is not
    /// synced): the age of the last trusted mark.
    marked_at: Option<Nanos>,
}

#[derive(Clone, Copy, Debug)]
enum RequestKind {
    New(SimRequest),
    Cancel(u64),
}

#[derive(Clone, Copy, Debug)]
struct Request {
    arrive_at: Nanos,
    instrument: InstrumentId,
    kind: RequestKind,
}

#[derive(Clone, Copy, Debug)]
struct Report {
    deliver_at: Nanos,
    exec: Exec,
}

#[derive(Debug)]
struct Venue {
    name: String,
    latency: LatencyModel,
    /// Feed symbol id -> instrument.
    symbols: Vec<Option<InstrumentId>>,
    /// This exchange's instruments with their symbols, in configuration order.
    instruments: Vec<(String, InstrumentId)>,
    requests: VecDeque<Request>,
    reports: VecDeque<Report>,
    /// Orders go to the caller, not to the in-process matcher.
    external: bool,
    /// One of its books left sync since the driver last asked ([`Backtest::take_snapshot_request`]).
    wants_snapshot: bool,
}

/// An order that passed risk and is not final yet.
#[derive(Clone, Copy, Debug)]
struct LiveOrder {
    order_id: u64,
    strategy: usize,
    slot: usize,
    client_id: u64,
    instrument: InstrumentId,
    kind: OrderKind,
    sent_ts: Nanos,
    /// Side, price, quantity, fills and status: the one order state machine.
    life: OrderLifecycle,
    cancel_sent: bool,
    record: Option<usize>,
}

#[derive(Debug)]
struct StrategySlot {
    name: String,
    strategy: Box<dyn Strategy>,
}

/// A backtest in progress. See the module documentation.
#[derive(Debug)]
pub struct Backtest {
    instruments: Vec<InstrumentInfo>,
    venues: Vec<Venue>,
    books: Vec<Book>,
    strategies: Vec<StrategySlot>,
    risk: RiskEngine,
    portfolio: Portfolio,
    live: Vec<LiveOrder>,
    next_order_id: u64,
    /// Risk rejections waiting to be told to their strategy: (strategy, slot, update).
    notices: VecDeque<(usize, usize, OrderUpdate)>,
    /// Requests, reports and notices in flight (a fast path when zero).
    queued: usize,
    clock: Nanos,
    start: Option<Nanos>,
    actions: Vec<Action>,
    execs: Vec<Exec>,
    equity_interval: Nanos,
    next_sample_at: Nanos,
    max_equity_samples: usize,
    max_records: usize,
    peak_equity: Cash,
    max_drawdown: Cash,
    orders: Vec<OrderRecord>,
    fills: Vec<FillRecord>,
    positions: Vec<PositionRecord>,
    equity: Vec<EquitySample>,
    risk_events: Vec<RiskEventRecord>,
    counters: BacktestCounters,
    /// Requests for external venues, in sending order.
    outbox: Vec<VenueRequest>,
    /// `Some` when the caller asked for the event log.
    log: Option<Vec<TraderEvent>>,
    /// An operator paused trading: strategies are not called, nothing new is sent.
    paused: bool,
    /// Client ids of the engine's own (flatten) orders count down from here.
    next_engine_client_id: u64,
    /// Events received before this time only build the books (warm-up).
    warmup_until: Option<Nanos>,
    /// Fills waiting for their markout, and the markouts taken (anomaly detection's
    /// `markout_bps`).
    markouts: Markouts,
}

impl Backtest {
    /// Sets up the exchanges, instruments (ids in configuration order), books, strategies and
    /// risk engine. A strategy with a model is refused: see [`Backtest::with_models`].
    pub fn new(config: BacktestConfig) -> Result<Backtest, BacktestError> {
        Backtest::build(config, None)
    }

    /// [`Backtest::new`], the models of model strategies built by `models`.
    pub fn with_models(
        config: BacktestConfig,
        models: &mut ModelLoader<'_>,
    ) -> Result<Backtest, BacktestError> {
        Backtest::build(config, Some(models))
    }

    fn build(
        config: BacktestConfig,
        mut models: Option<&mut ModelLoader<'_>>,
    ) -> Result<Backtest, BacktestError> {
        if config.equity_interval_ns <= 0 {
            return Err(BacktestError::Setting {
                field: "equity_interval_ns",
                rule: "positive",
                value: config.equity_interval_ns,
            });
        }
        if config.max_equity_samples < 2 {
            return Err(BacktestError::Setting {
                field: "max_equity_samples",
                rule: "at least 2",
                value: i64::try_from(config.max_equity_samples).unwrap_or(0),
            });
        }
        let mut instruments = Vec::new();
        let mut venues = Vec::new();
        let mut books = Vec::new();
        for (x, exchange) in config.exchanges.iter().enumerate() {
            let mut own = Vec::new();
            for i in &exchange.instruments {
                let id = InstrumentId::try_from(instruments.len()).unwrap_or(InstrumentId::MAX);
                instruments.push(InstrumentInfo {
                    id,
                    exchange: exchange.name.clone(),
                    symbol: i.symbol.clone(),
                    spec: i.spec,
                });
                own.push((i.symbol.clone(), id));
                books.push(Book {
                    sync: BookSync::new(exchange.rule),
                    matcher: Matcher::new(i.spec),
                    exchange: x,
                    subs: Vec::new(),
                    signal_subs: Vec::new(),
                    synced: false,
                    marked: None,
                    marked_at: None,
                });
            }
            venues.push(Venue {
                name: exchange.name.clone(),
                latency: exchange.latency,
                symbols: own.iter().map(|(_, id)| Some(*id)).collect(),
                instruments: own,
                requests: VecDeque::with_capacity(64),
                reports: VecDeque::with_capacity(64),
                external: false,
                wants_snapshot: false,
            });
        }
        let table: Vec<(&str, InstrumentSpec)> = instruments
            .iter()
            .map(|i| (i.symbol.as_str(), i.spec))
            .collect();
        let risk = RiskEngine::new(RiskConfig::from_manifest(&config.risk, &table));
        let portfolio = Portfolio::with_contracts(instruments.iter().map(|i| i.spec.contract));
        let mut backtest = Backtest {
            instruments,
            venues,
            books,
            strategies: Vec::new(),
            risk,
            portfolio,
            live: Vec::with_capacity(64),
            next_order_id: 1,
            notices: VecDeque::new(),
            queued: 0,
            clock: Nanos::MIN,
            start: None,
            actions: Vec::with_capacity(16),
            execs: Vec::with_capacity(64),
            equity_interval: config.equity_interval_ns,
            next_sample_at: Nanos::MIN,
            max_equity_samples: config.max_equity_samples,
            max_records: config.max_records,
            peak_equity: 0,
            max_drawdown: 0,
            orders: Vec::new(),
            fills: Vec::new(),
            positions: Vec::new(),
            equity: Vec::new(),
            risk_events: Vec::new(),
            counters: BacktestCounters::default(),
            outbox: Vec::new(),
            log: None,
            paused: false,
            next_engine_client_id: u64::MAX,
            warmup_until: None,
            markouts: Markouts::default(),
        };
        for s in &config.strategies {
            let (ids, specs) = backtest.resolve(s)?;
            let built = match models.as_deref_mut() {
                Some(models) => {
                    strategy::from_manifest_with(&s.name, &s.strategy, &ids, &specs, models)
                }
                None => strategy::from_manifest(&s.strategy, &ids, &specs),
            }
            .map_err(|source| BacktestError::Strategy {
                strategy: s.name.clone(),
                source,
            })?;
            let index = backtest.add_strategy(&s.name, built)?;
            if let Some(signal) = backtest.resolve_signal(s)? {
                backtest.add_signal(index, 0, signal)?;
            }
        }
        Ok(backtest)
    }

    /// [`BacktestConfig::from_manifest`] then [`Backtest::new`].
    pub fn from_manifest(manifest: &Manifest) -> Result<Backtest, BacktestError> {
        Backtest::new(BacktestConfig::from_manifest(manifest))
    }

    /// [`BacktestConfig::from_manifest`] then [`Backtest::with_models`].
    pub fn from_manifest_with(
        manifest: &Manifest,
        models: &mut ModelLoader<'_>,
    ) -> Result<Backtest, BacktestError> {
        Backtest::with_models(BacktestConfig::from_manifest(manifest), models)
    }

    /// Predictions and failures of every strategy's model, summed.
    pub fn model_stats(&self) -> ModelStats {
        self.strategies
            .iter()
            .filter_map(|s| s.strategy.model_stats())
            .fold(ModelStats::default(), ModelStats::plus)
    }

    /// The engine ids and specs of a manifest strategy's instruments.
    fn resolve(
        &self,
        s: &StrategyConfig,
    ) -> Result<(Vec<InstrumentId>, Vec<InstrumentSpec>), BacktestError> {
        let exchange = &s.strategy.exchange;
        let venue = self
            .venues
            .iter()
            .find(|v| v.name == *exchange)
            .ok_or_else(|| BacktestError::UnknownExchange {
                strategy: s.name.clone(),
                exchange: exchange.clone(),
            })?;
        let mut ids = Vec::new();
        let mut specs = Vec::new();
        for symbol in &s.strategy.instruments {
            let id = venue
                .instruments
                .iter()
                .find(|(name, _)| name == symbol)
                .map(|(_, id)| *id)
                .ok_or_else(|| BacktestError::UnknownInstrument {
                    strategy: s.name.clone(),
                    exchange: exchange.clone(),
                    symbol: symbol.clone(),
                })?;
            ids.push(id);
            specs.push(self.instruments[id as usize].spec);
        }
        Ok((ids, specs))
    }

    /// The engine id of a manifest strategy's signal book (a market maker's `params.signal`).
    fn resolve_signal(&self, s: &StrategyConfig) -> Result<Option<InstrumentId>, BacktestError> {
        let rt_manifest::model::StrategyParams::MarketMaker(p) = &s.strategy.params else {
            return Ok(None);
        };
        let Some(signal) = &p.signal else {
            return Ok(None);
        };
        let venue = self
            .venues
            .iter()
            .find(|v| v.name == signal.exchange)
            .ok_or_else(|| BacktestError::UnknownExchange {
                strategy: s.name.clone(),
                exchange: signal.exchange.clone(),
            })?;
        venue
            .instruments
            .iter()
            .find(|(name, _)| *name == signal.instrument)
            .map(|(_, id)| Some(*id))
            .ok_or_else(|| BacktestError::UnknownInstrument {
                strategy: s.name.clone(),
                exchange: signal.exchange.clone(),
                symbol: signal.instrument.clone(),
            })
    }

    /// Strategy `strategy` reads the book of `signal` (any instrument of any exchange) for the
    /// instrument of its `slot`: [`Strategy::on_signal`] on every change of that book while
    /// both books are synced, [`Strategy::on_signal_lost`] when it loses sync.
    pub fn add_signal(
        &mut self,
        strategy: usize,
        slot: usize,
        signal: InstrumentId,
    ) -> Result<(), BacktestError> {
        let s = self
            .strategies
            .get(strategy)
            .ok_or(BacktestError::StrategyIndex(strategy))?;
        let Some(&traded) = s.strategy.instruments().get(slot) else {
            return Err(BacktestError::StrategyIndex(strategy));
        };
        let book =
            self.books
                .get_mut(signal as usize)
                .ok_or_else(|| BacktestError::InstrumentId {
                    strategy: s.name.clone(),
                    id: signal,
                })?;
        book.signal_subs.push((strategy, slot, traded));
        Ok(())
    }

    /// Adds a strategy of any kind (one implementing [`Strategy`]); returns its index.
    pub fn add_strategy(
        &mut self,
        name: &str,
        strategy: Box<dyn Strategy>,
    ) -> Result<usize, BacktestError> {
        let s = self.strategies.len();
        if let Some(&bad) = strategy
            .instruments()
            .iter()
            .find(|&&id| id as usize >= self.books.len())
        {
            return Err(BacktestError::InstrumentId {
                strategy: name.to_owned(),
                id: bad,
            });
        }
        let trades = strategy.wants_trades();
        for (slot, &id) in strategy.instruments().iter().enumerate() {
            self.books[id as usize].subs.push((s, slot, trades));
        }
        self.strategies.push(StrategySlot {
            name: name.to_owned(),
            strategy,
        });
        Ok(s)
    }

    pub fn instruments(&self) -> &[InstrumentInfo] {
        &self.instruments
    }

    /// The index of an exchange by name.
    pub fn exchange_id(&self, name: &str) -> Option<ExchangeId> {
        self.venues.iter().position(|v| v.name == name)
    }

    /// Maps the feed's symbol ids (`Header::symbol` indexes `symbols`, e.g. a reader's symbol
    /// table) to this exchange's instruments; symbols it does not trade are ignored. Call again
    /// when the table grows. Without a call, symbol id `k` is the exchange's `k`-th instrument
    /// in configuration order (sorted by symbol from a manifest).
    pub fn set_symbols<S: AsRef<str>>(
        &mut self,
        exchange: ExchangeId,
        symbols: &[S],
    ) -> Result<(), BacktestError> {
        let venue = self
            .venues
            .get_mut(exchange)
            .ok_or(BacktestError::ExchangeIndex(exchange))?;
        venue.symbols = symbols
            .iter()
            .map(|s| {
                venue
                    .instruments
                    .iter()
                    .find(|(name, _)| name == s.as_ref())
                    .map(|(_, id)| *id)
            })
            .collect();
        Ok(())
    }

    pub fn counters(&self) -> &BacktestCounters {
        &self.counters
    }

    pub fn portfolio(&self) -> &Portfolio {
        &self.portfolio
    }

    pub fn risk_state(&self) -> RiskState {
        self.risk.state()
    }

    /// Why the account is HALTED, if it is.
    pub fn halt_cause(&self) -> Option<crate::risk::RiskCause> {
        self.risk.halt_cause()
    }

    /// The loss limits' reference points (what a restart restores), once equity was observed.
    pub fn risk_anchors(&self) -> Option<crate::risk::RiskAnchors> {
        self.risk.anchors()
    }

    /// Restores the risk state a previous run recorded (a restarting live engine, before it
    /// trades): see [`RiskEngine::restore`].
    pub fn restore_risk(&mut self, restore: crate::risk::RiskRestore) {
        self.risk.restore(restore);
    }

    /// The clock: the latest event time seen.
    pub fn now(&self) -> Nanos {
        self.clock
    }

    /// The book of an instrument (empty unless synced).
    pub fn book(&self, instrument: InstrumentId) -> Option<&crate::book::OrderBook> {
        self.books.get(instrument as usize).map(|b| b.sync.book())
    }

    /// Engages the kill switch at the current clock (no effect when the manifest disarms it).
    pub fn kill(&mut self) {
        if let Some(tr) = self.risk.engage_kill_switch(self.clock) {
            self.on_transition(tr);
        }
        self.pump();
    }

    /// HALTED at the current clock for a reason outside the risk engine (see
    /// [`RiskEngine::halt`]); open orders are cancelled when `cancel_on_trigger` is set.
    pub fn halt(&mut self, cause: crate::risk::RiskCause) {
        if let Some(tr) = self.risk.halt(self.clock, cause) {
            self.on_transition(tr);
        }
        self.pump();
    }

    /// An operator lifts a halt at the current clock: back to ACTIVE, losses still measured
    /// from the day's start and the peak (see [`RiskEngine::resume`]).
    pub fn resume(&mut self) {
        if let Some(tr) = self.risk.resume(self.clock, self.portfolio.equity()) {
            self.on_transition(tr);
        }
        self.pump();
    }

    /// Switches an exchange to an external venue (live trading): see the module documentation.
    pub fn set_external(&mut self, exchange: ExchangeId) -> Result<(), BacktestError> {
        let venue = self
            .venues
            .get_mut(exchange)
            .ok_or(BacktestError::ExchangeIndex(exchange))?;
        venue.external = true;
        Ok(())
    }

    /// Records every order update, fill, position change and risk transition from now on.
    pub fn enable_event_log(&mut self) {
        if self.log.is_none() {
            self.log = Some(Vec::with_capacity(64));
        }
    }

    /// Moves the logged events (oldest first) into `out`.
    pub fn drain_events(&mut self, out: &mut Vec<TraderEvent>) {
        if let Some(log) = self.log.as_mut() {
            out.append(log);
        }
    }

    /// Moves the requests for external venues (in sending order) into `out`.
    pub fn drain_requests(&mut self, out: &mut Vec<VenueRequest>) {
        out.append(&mut self.outbox);
    }

    /// Whether requests for external venues are waiting.
    #[inline]
    pub fn has_requests(&self) -> bool {
        !self.outbox.is_empty()
    }

    /// An external venue's execution report for one of our orders, received at `now` on the
    /// engine's clock. Reports for orders that are not live (already final, unknown) are
    /// counted and otherwise ignored, so a replayed or duplicated report changes nothing.
    pub fn on_exec(&mut self, now: Nanos, exec: Exec) {
        self.on_exec_charged(now, exec, Qty::ZERO);
    }

    /// [`Backtest::on_exec`] for a fill whose commission the venue took in the instrument's
    /// base asset: `base_commission` of it leaves the position with the fill (a spot buy of 1
    /// BTC paying 0.001 BTC leaves 0.999). Ignored for anything but a fill.
    pub fn on_exec_charged(&mut self, now: Nanos, exec: Exec, base_commission: Qty) {
        self.advance(now);
        self.deliver(exec, base_commission);
        self.pump();
    }

    /// Moves the clock to `now` (never backwards) without a market event: timers, requests
    /// due and equity samples run as they would on an event.
    pub fn advance(&mut self, now: Nanos) {
        if now > self.clock {
            self.clock = now;
        }
        self.take_markouts();
        self.pump();
        if self.start.is_some() {
            self.check_stale_exposure();
        }
        if self.clock >= self.next_sample_at && self.start.is_some() {
            self.sample_equity();
        }
    }

    /// The live orders, as (order id, instrument, side, leaves): what an operator or a restart
    /// reconciles with the venue.
    pub fn open_orders(&self) -> impl Iterator<Item = (u64, InstrumentId, Side, Qty)> + '_ {
        self.live
            .iter()
            .map(|o| (o.order_id, o.instrument, o.life.side(), o.life.leaves()))
    }

    /// Cancels every open order (operator pause or flatten); the strategies are told as the
    /// cancels are confirmed.
    pub fn cancel_everything(&mut self) {
        self.cancel_all(None);
        self.pump();
    }

    /// Pauses (cancels every open order; strategies are not called, so nothing new is sent)
    /// or resumes trading. Books, positions and risk state are kept.
    pub fn set_paused(&mut self, paused: bool) {
        self.paused = paused;
        if paused {
            self.cancel_everything();
        }
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Trading starts at `start` (a backtest's time window): events received before it only
    /// build the books and the risk engine's feed clock. No strategy is called and nothing is
    /// sent or sampled, so the run's start, its first equity sample and the loss limits'
    /// reference points (daily start, peak) are taken at the first event at or after `start`.
    /// There the counters start afresh, with `warmup_events` saying how many came before.
    /// Call before the first event; events after `start` end the warm-up for good.
    pub fn set_warmup_until(&mut self, start: Nanos) {
        if self.start.is_none() {
            self.warmup_until = Some(start);
        }
    }

    /// Whether events are still only building the books (see [`Backtest::set_warmup_until`]).
    pub fn is_warming_up(&self) -> bool {
        self.warmup_until.is_some()
    }

    /// Whether an event received at `local_ns` is part of the warm-up; the first one that is
    /// not ends it and restarts the counters.
    fn warming(&mut self, local_ns: Nanos) -> bool {
        match self.warmup_until {
            Some(until) if local_ns < until => true,
            Some(_) => {
                self.warmup_until = None;
                self.counters = BacktestCounters {
                    warmup_events: self.counters.events,
                    ..BacktestCounters::default()
                };
                false
            }
            None => false,
        }
    }

    /// Flattens the account: pauses, cancels every open order and sends, for every non-flat
    /// instrument with a synced book, a market order for the opposite of its position,
    /// checked by the risk engine like any other (a HALTED engine cancels but sends nothing).
    /// Returns the number of closing orders sent.
    pub fn flatten(&mut self) -> usize {
        self.set_paused(true);
        let mut sent = 0;
        for i in 0..self.books.len() {
            let instrument = InstrumentId::try_from(i).unwrap_or(InstrumentId::MAX);
            let qty = self.portfolio.qty(instrument);
            let Some(&(s, _, _)) = self.books[i].subs.first() else {
                continue;
            };
            let Some(mid) = self.books[i].sync.book().mid() else {
                continue;
            };
            if qty.0 == 0 || !self.books[i].synced {
                continue;
            }
            let order = NewOrder {
                client_id: self.next_engine_client_id,
                instrument,
                side: if qty.0 > 0 { Side::Sell } else { Side::Buy },
                price: mid,
                qty: Qty(qty.0.abs()),
                kind: OrderKind::Market,
            };
            self.next_engine_client_id -= 1;
            let before = self.counters.orders_sent;
            self.place(s, &order);
            if self.counters.orders_sent > before {
                sent += 1;
            }
        }
        self.pump();
        sent
    }

    /// Tightens a risk limit (see [`RiskEngine::tighten`]); `symbol` names the instrument for
    /// per-instrument limits: every venue's instrument of that symbol, all or none (the
    /// manifest keys `risk.instruments` by symbol, one limit on every venue).
    pub fn tighten_risk(
        &mut self,
        symbol: Option<&str>,
        limit: &str,
        value: i64,
    ) -> Result<(), crate::risk::TightenError> {
        let Some(sym) = symbol else {
            return self.risk.tighten(None, limit, value);
        };
        let ids: Vec<InstrumentId> = self
            .instruments
            .iter()
            .filter(|i| i.symbol == sym)
            .map(|i| i.id)
            .collect();
        if ids.is_empty() {
            return Err(crate::risk::TightenError::UnknownLimit(format!(
                "instruments.{sym}.{limit}"
            )));
        }
        self.risk.tighten_all(&ids, limit, value)
    }

    /// Tightens an asset's limit across venues (`risk.assets.<asset>.max_position`; see
    /// [`RiskEngine::tighten_asset`]); the asset's index, for the decision log.
    pub fn tighten_asset(
        &mut self,
        asset: &str,
        value: i64,
    ) -> Result<usize, crate::risk::TightenError> {
        let index = self
            .risk
            .config()
            .assets
            .iter()
            .position(|a| a.name == asset)
            .ok_or_else(|| {
                crate::risk::TightenError::UnknownLimit(format!("assets.{asset}.max_position"))
            })?;
        self.risk.tighten_asset(index, value)?;
        Ok(index)
    }

    /// [`tighten_asset`](Self::tighten_asset) by the asset's index (a decision log's replay).
    pub fn tighten_asset_at(
        &mut self,
        index: usize,
        value: i64,
    ) -> Result<(), crate::risk::TightenError> {
        self.risk.tighten_asset(index, value)
    }

    /// The risk engine (limits, state, open orders).
    pub fn risk(&self) -> &RiskEngine {
        &self.risk
    }

    /// Order ids continue from `next` (at least): a restarted engine never reuses an id it
    /// sent before.
    pub fn set_next_order_id(&mut self, next: u64) {
        self.next_order_id = self.next_order_id.max(next);
    }

    /// The id the next order will get.
    pub fn next_order_id(&self) -> u64 {
        self.next_order_id
    }

    /// Rebuilds a position from a journaled fill (restart): portfolio only, no strategy
    /// callback, no record.
    pub fn restore_fill(
        &mut self,
        instrument: InstrumentId,
        side: Side,
        price: Price,
        qty: Qty,
        fee: Cash,
    ) -> Result<(), BacktestError> {
        self.journaled_instrument(instrument)?;
        self.portfolio.on_fill(instrument, side, price, qty, fee);
        Ok(())
    }

    /// `instrument` if the journal may name it (one of ours).
    fn journaled_instrument(&self, instrument: InstrumentId) -> Result<(), BacktestError> {
        if instrument as usize >= self.books.len() {
            return Err(BacktestError::InstrumentId {
                strategy: "journal".to_owned(),
                id: instrument,
            });
        }
        Ok(())
    }

    /// A journaled commission the venue took in an instrument's base asset (see
    /// [`Backtest::on_exec_charged`]), replayed at restart after its fill.
    pub fn restore_base_commission(
        &mut self,
        instrument: InstrumentId,
        qty: Qty,
    ) -> Result<(), BacktestError> {
        self.journaled_instrument(instrument)?;
        self.portfolio.on_base_commission(instrument, qty);
        Ok(())
    }

    /// A funding payment of a perpetual (positive: received) into the instrument's realised
    /// P&L: as the venue reports it live, and replayed from the journal at restart.
    pub fn book_funding(
        &mut self,
        instrument: InstrumentId,
        amount: Cash,
    ) -> Result<(), BacktestError> {
        self.journaled_instrument(instrument)?;
        self.portfolio.on_funding(instrument, amount);
        Ok(())
    }

    /// The venue's mark price of a derivative: its unrealised P&L is valued at it from now on
    /// (see `Portfolio::venue_mark`).
    pub fn venue_mark(
        &mut self,
        instrument: InstrumentId,
        price: Price,
    ) -> Result<(), BacktestError> {
        self.journaled_instrument(instrument)?;
        self.portfolio.venue_mark(instrument, price);
        Ok(())
    }

    /// The names of the strategies, by index.
    pub fn strategy_names(&self) -> impl Iterator<Item = &str> + '_ {
        self.strategies.iter().map(|s| s.name.as_str())
    }

    /// An exchange's market-data stream was interrupted (disconnect, stall): every one of its
    /// books loses sync (its orders are cancelled and its strategies told, as on a gap) until
    /// a new snapshot arrives.
    pub fn feed_lost(&mut self, exchange: ExchangeId) {
        for i in 0..self.books.len() {
            if self.books[i].exchange != exchange {
                continue;
            }
            self.books[i].sync.invalidate();
            let was_synced = self.books[i].synced;
            self.books[i].synced = false;
            if was_synced {
                let instrument = InstrumentId::try_from(i).unwrap_or(InstrumentId::MAX);
                self.book_lost(instrument);
            }
        }
        self.pump();
    }

    /// Whether a book of `exchange` left sync (a sequence gap, a crossed book or a negative
    /// size, as `BookSync` judged it) since the last call: a live driver then asks its feed
    /// for a fresh snapshot at once. Taken: the next call says `false` until it happens again.
    #[inline]
    pub fn take_snapshot_request(&mut self, exchange: ExchangeId) -> bool {
        self.venues
            .get_mut(exchange)
            .is_some_and(|v| std::mem::take(&mut v.wants_snapshot))
    }

    /// Feeds one market event of `exchange`.
    pub fn on_event(&mut self, exchange: ExchangeId, ev: &MarketEvent<'_>) {
        let header = ev.header();
        let warm = self.warmup_until.is_some() && self.warming(header.local_ns);
        self.counters.events += 1;
        if header.local_ns > self.clock {
            self.clock = header.local_ns;
        }
        if self.start.is_none() && !warm {
            self.start = Some(self.clock);
        }
        // Before this event moves the book: the mid in effect when a fill's horizon passed.
        self.take_markouts();
        self.pump();
        let instrument = self
            .venues
            .get(exchange)
            .and_then(|v| v.symbols.get(header.symbol as usize).copied().flatten());
        let Some(instrument) = instrument else {
            self.counters.unknown_symbol += 1;
            return;
        };
        let i = instrument as usize;
        let clock = self.clock;
        let mut changed = false;
        let mut is_trade = false;
        let simulated = !self.venues[self.books[i].exchange].external;
        {
            let b = &mut self.books[i];
            match ev {
                MarketEvent::Depth(d) => {
                    self.counters.depth_events += 1;
                    self.counters.level_changes += (d.bids.len() + d.asks.len()) as u64;
                    let was_crossed = b.sync.is_crossed();
                    match b.sync.on_diff(d) {
                        DiffOutcome::Applied => {
                            self.counters.diffs_applied += 1;
                            self.counters.crossings_repaired += u64::from(was_crossed);
                            changed = true;
                            if b.matcher.has_resting() {
                                b.matcher.on_depth(clock, d, b.sync.book(), &mut self.execs);
                            }
                        }
                        // Applied, but crossed: in sequence and unusable until a diff
                        // uncrosses it. No strategy, mark, staleness refresh or simulated
                        // matching sees it (DiffOutcome::Crossed).
                        DiffOutcome::Crossed => {
                            self.counters.diffs_applied += 1;
                            self.counters.crossed += 1;
                            self.counters.crossings += u64::from(!was_crossed);
                        }
                        DiffOutcome::Stale => self.counters.diffs_stale += 1,
                        DiffOutcome::Buffered => self.counters.diffs_buffered += 1,
                        DiffOutcome::Gap => self.counters.gaps += 1,
                        DiffOutcome::Invalid => self.counters.invalid += 1,
                    }
                }
                MarketEvent::Snapshot(s) => {
                    self.counters.snapshots += 1;
                    self.counters.level_changes += (s.bids.len() + s.asks.len()) as u64;
                    let loaded = b.sync.counters().snapshots;
                    b.sync.on_snapshot(s);
                    if b.sync.is_synced() && b.sync.counters().snapshots != loaded {
                        changed = true;
                        if simulated {
                            b.matcher
                                .on_book_reset(clock, b.sync.book(), &mut self.execs);
                        }
                    }
                }
                MarketEvent::Trade(t) => {
                    self.counters.trades += 1;
                    is_trade = true;
                    if simulated {
                        b.matcher.on_trade(clock, t, &mut self.execs);
                    }
                }
                MarketEvent::Bbo(_) => self.counters.bbos += 1,
            }
        }
        if changed {
            self.counters.book_updates += 1;
        }
        if !self.execs.is_empty() {
            self.queue_execs(instrument);
        }
        // Only a book update refreshes the staleness guard: a frozen book with trades (or
        // stale diffs) still flowing is stale.
        if changed {
            self.risk.on_market_data(instrument, clock);
        }

        let was_synced = self.books[i].synced;
        let synced = self.books[i].sync.is_synced();
        self.books[i].synced = synced;
        if was_synced && !synced {
            let x = self.books[i].exchange;
            if let Some(v) = self.venues.get_mut(x) {
                v.wants_snapshot = true;
            }
            self.book_lost(instrument);
        }
        if !synced && is_trade && !warm {
            // No book to take a mid from: the venue's last trade is the trusted mark, so the
            // loss limits keep working through the outage.
            if let MarketEvent::Trade(t) = ev {
                self.books[i].marked_at = Some(clock);
                if t.price.0 > 0 && self.books[i].marked != Some(t.price) {
                    self.books[i].marked = Some(t.price);
                    self.portfolio.mark(instrument, t.price);
                    if self.portfolio.qty(instrument).0 != 0 {
                        self.check_equity();
                    }
                }
            }
        }
        if synced && changed {
            if !warm {
                self.books[i].marked_at = Some(clock);
            }
            let mid = self.books[i].sync.book().mid();
            if mid != self.books[i].marked {
                self.books[i].marked = mid;
                if let Some(mid) = mid {
                    self.portfolio.mark(instrument, mid);
                    if self.portfolio.qty(instrument).0 != 0 && !warm {
                        self.check_equity();
                    }
                }
            }
        }
        self.pump();
        if synced && (changed || is_trade) && !self.paused && !warm {
            for k in 0..self.books[i].subs.len() {
                let (s, slot, trades) = self.books[i].subs[k];
                if is_trade && !trades {
                    continue;
                }
                let ctx = StrategyContext {
                    now: self.clock,
                    instrument,
                    slot,
                    position: self.portfolio.qty(instrument),
                    risk_state: self.risk.state(),
                };
                let book = self.books[i].sync.book();
                let strategy = &mut self.strategies[s].strategy;
                match ev {
                    MarketEvent::Trade(t) => strategy.on_trade(&ctx, book, t, &mut self.actions),
                    _ => strategy.on_book(&ctx, book, &mut self.actions),
                }
                self.counters.strategy_calls += 1;
                if !self.actions.is_empty() {
                    self.process_actions(s);
                }
            }
            if changed {
                self.signal_changed(i);
            }
            self.pump();
        }
        if self.clock >= self.next_sample_at && !warm {
            self.sample_equity();
        }
    }

    /// Ends the run: a last equity sample and the records. Orders still in flight stay as
    /// they are (the data ended).
    pub fn finish(mut self) -> BacktestResult {
        let sampled = matches!(self.equity.last(), Some(s) if s.ts >= self.clock);
        if !sampled {
            self.check_equity();
            self.push_equity_sample();
        }
        let models = self.model_stats();
        self.counters.model_predictions = models.predictions;
        self.counters.model_errors = models.errors;
        let c = self.counters;
        let summary = BacktestSummary {
            start_ns: self.start.unwrap_or(0),
            end_ns: if self.start.is_some() { self.clock } else { 0 },
            pnl: self.portfolio.equity(),
            realised_pnl: self.portfolio.realised(),
            unrealised_pnl: self.portfolio.unrealised(),
            fees: self.portfolio.fees(),
            turnover: self.portfolio.turnover(),
            max_drawdown: self.max_drawdown,
            orders_sent: c.orders_sent,
            orders_rejected: c.orders_rejected,
            fills: c.fills,
            maker_fills: c.maker_fills,
            taker_fills: c.taker_fills,
            fill_ratio: if c.orders_sent == 0 {
                0.0
            } else {
                c.orders_with_fills as f64 / c.orders_sent as f64
            },
            open_orders: self.live.len() as u64,
            positions: self.portfolio.positions().iter().map(|p| p.qty()).collect(),
            final_risk_state: self.risk.state(),
            rejections: c.rejections(),
        };
        BacktestResult {
            instruments: self.instruments,
            strategies: self.strategies.into_iter().map(|s| s.name).collect(),
            orders: self.orders,
            fills: self.fills,
            positions: self.positions,
            equity: self.equity,
            risk_events: self.risk_events,
            counters: c,
            summary,
        }
    }

    // ---- order flow ----

    /// Sends the strategy's pending actions through risk to the venue.
    fn process_actions(&mut self, s: usize) {
        let mut actions = mem::take(&mut self.actions);
        for action in actions.drain(..) {
            match action {
                Action::Place(order) => self.place(s, &order),
                Action::Cancel(client_id) => {
                    match self
                        .live
                        .iter()
                        .position(|o| o.strategy == s && o.client_id == client_id)
                    {
                        Some(k) => {
                            if !self.live[k].cancel_sent {
                                self.send_cancel(k);
                            }
                        }
                        None => self.counters.cancels_unknown += 1,
                    }
                }
            }
        }
        self.actions = actions;
    }

    fn place(&mut self, s: usize, order: &NewOrder) {
        self.counters.orders_placed += 1;
        let order_id = self.next_order_id;
        self.next_order_id += 1;
        let slot = self.strategies[s]
            .strategy
            .instruments()
            .iter()
            .position(|&id| id == order.instrument);
        // Paused: nothing new goes out, whichever callback a strategy places it from; the
        // engine's own flatten orders (client ids counted down from u64::MAX) pass.
        let engine_order = order.client_id > self.next_engine_client_id;
        let verdict = match slot {
            _ if self.paused && !engine_order => Err(RejectReason::Paused),
            None => Err(RejectReason::UnknownInstrument),
            Some(_)
                if self
                    .live
                    .iter()
                    .any(|o| o.strategy == s && o.client_id == order.client_id) =>
            {
                Err(RejectReason::DuplicateClientId)
            }
            Some(_) => {
                let b = &self.books[order.instrument as usize];
                let reference = if b.synced { b.sync.book().mid() } else { None };
                self.risk
                    .check(self.clock, order, reference, &self.portfolio)
            }
        };
        let sent = OrderRecord {
            ts: self.clock,
            order_id,
            strategy: u32::try_from(s).unwrap_or(u32::MAX),
            client_id: order.client_id,
            instrument: order.instrument,
            side: order.side,
            price: order.price,
            qty: order.qty,
            kind: order.kind,
            status: if verdict.is_ok() {
                OrderStatus::Sent
            } else {
                OrderStatus::Rejected
            },
            filled_qty: Qty::ZERO,
            reject_reason: verdict.err(),
            updated_ts: self.clock,
        };
        let record = self.push_order(sent);
        if let Some(log) = self.log.as_mut() {
            log.push(TraderEvent::Order(sent));
        }
        let slot = slot.unwrap_or(0);
        match verdict {
            Err(reason) => {
                self.count_reject(reason);
                self.notices.push_back((
                    s,
                    slot,
                    OrderUpdate {
                        client_id: order.client_id,
                        instrument: order.instrument,
                        side: order.side,
                        status: OrderStatus::Rejected,
                        leaves_qty: Qty::ZERO,
                        filled_qty: Qty::ZERO,
                        reject_reason: Some(reason),
                    },
                ));
                self.queued += 1;
            }
            Ok(()) => {
                self.counters.orders_sent += 1;
                self.live.push(LiveOrder {
                    order_id,
                    strategy: s,
                    slot,
                    client_id: order.client_id,
                    instrument: order.instrument,
                    kind: order.kind,
                    sent_ts: self.clock,
                    life: OrderLifecycle::sent(order.side, order.price, order.qty),
                    cancel_sent: false,
                    record,
                });
                self.send(
                    order.instrument,
                    RequestKind::New(SimRequest {
                        order_id,
                        side: order.side,
                        price: order.price,
                        qty: order.qty,
                        kind: order.kind,
                    }),
                );
            }
        }
    }

    fn send(&mut self, instrument: InstrumentId, kind: RequestKind) {
        let exchange = self.books[instrument as usize].exchange;
        let venue = &mut self.venues[exchange];
        if venue.external {
            self.outbox.push(match kind {
                RequestKind::New(request) => VenueRequest::New {
                    exchange,
                    instrument,
                    request,
                },
                RequestKind::Cancel(order_id) => VenueRequest::Cancel {
                    exchange,
                    instrument,
                    order_id,
                },
            });
            return;
        }
        venue.requests.push_back(Request {
            arrive_at: self.clock.saturating_add(venue.latency.to_matcher()),
            instrument,
            kind,
        });
        self.queued += 1;
    }

    fn send_cancel(&mut self, k: usize) {
        let o = &mut self.live[k];
        o.cancel_sent = true;
        let (instrument, order_id) = (o.instrument, o.order_id);
        self.counters.cancels_sent += 1;
        self.send(instrument, RequestKind::Cancel(order_id));
    }

    /// Cancels every live order (of one instrument, or all).
    fn cancel_all(&mut self, instrument: Option<InstrumentId>) {
        for k in 0..self.live.len() {
            let o = &self.live[k];
            let matches = match instrument {
                None => true,
                Some(i) => i == o.instrument,
            };
            if !o.cancel_sent && matches {
                self.send_cancel(k);
            }
        }
    }

    /// Handles requests and reports that are due, until none is.
    #[inline]
    fn pump(&mut self) {
        if self.queued != 0 {
            self.pump_queued();
        }
    }

    fn pump_queued(&mut self) {
        for _ in 0..MAX_PUMP_ROUNDS {
            let mut progressed = false;
            while let Some((s, slot, update)) = self.notices.pop_front() {
                self.queued -= 1;
                progressed = true;
                self.notify_update(s, slot, &update);
            }
            for x in 0..self.venues.len() {
                while let Some(r) = self.venues[x].requests.front().copied() {
                    if r.arrive_at > self.clock {
                        break;
                    }
                    self.venues[x].requests.pop_front();
                    self.queued -= 1;
                    progressed = true;
                    self.execute(r);
                }
                while let Some(r) = self.venues[x].reports.front().copied() {
                    if r.deliver_at > self.clock {
                        break;
                    }
                    self.venues[x].reports.pop_front();
                    self.queued -= 1;
                    progressed = true;
                    self.deliver(r.exec, Qty::ZERO);
                }
            }
            if !progressed || self.queued == 0 {
                return;
            }
        }
        self.counters.pump_overflows += 1;
    }

    /// A request reaches the matcher.
    fn execute(&mut self, r: Request) {
        let b = &mut self.books[r.instrument as usize];
        match r.kind {
            RequestKind::New(req) => {
                let book = if b.sync.is_synced() {
                    Some(b.sync.book())
                } else {
                    None
                };
                b.matcher.submit(r.arrive_at, &req, book, &mut self.execs);
            }
            RequestKind::Cancel(order_id) => {
                b.matcher.cancel(r.arrive_at, order_id, &mut self.execs)
            }
        }
        self.queue_execs(r.instrument);
    }

    /// Puts the matcher's executions on their way back.
    fn queue_execs(&mut self, instrument: InstrumentId) {
        let venue = &mut self.venues[self.books[instrument as usize].exchange];
        let delay = venue.latency.to_strategy();
        for exec in self.execs.drain(..) {
            let mut deliver_at = exec.ts.saturating_add(delay);
            if let Some(last) = venue.reports.back() {
                deliver_at = deliver_at.max(last.deliver_at);
            }
            venue.reports.push_back(Report { deliver_at, exec });
            self.queued += 1;
        }
    }

    /// An execution report reaches the strategy's side.
    fn deliver(&mut self, exec: Exec, base_commission: Qty) {
        let Some(k) = self.live.iter().position(|o| o.order_id == exec.order_id) else {
            if exec.kind == ExecKind::CancelRejected {
                self.counters.cancels_rejected += 1;
            }
            return;
        };
        match exec.kind {
            ExecKind::Accepted => {
                // A live order is not final: an acknowledgement is always taken (a late one
                // leaves a partly filled order as it is).
                let status = match self.live[k].life.accept() {
                    Ok(status) => status.to_strategy(),
                    Err(_) => OrderStatus::Accepted,
                };
                let o = self.live[k];
                self.set_status(o.record, status, o.life.filled());
                self.log_order(&o, status, None);
                self.notify_update(
                    o.strategy,
                    o.slot,
                    &OrderUpdate {
                        client_id: o.client_id,
                        instrument: o.instrument,
                        side: o.life.side(),
                        status,
                        leaves_qty: o.life.leaves(),
                        filled_qty: o.life.filled(),
                        reject_reason: None,
                    },
                );
            }
            ExecKind::Fill {
                price,
                qty,
                maker,
                fee,
            } => self.on_fill(k, exec.ts, price, qty, maker, fee, base_commission),
            ExecKind::Rejected(reason) => {
                self.count_reject(reason);
                self.close(k, OrderStatus::Rejected, Some(reason));
            }
            ExecKind::Cancelled => {
                self.counters.orders_cancelled += 1;
                self.close(k, OrderStatus::Cancelled, None);
            }
            ExecKind::Expired => {
                self.counters.orders_expired += 1;
                self.close(k, OrderStatus::Expired, None);
            }
            ExecKind::CancelRejected => {
                // The order is still live here: its fill reports are on their way, or the
                // cancel may be sent again (a pause, a kill, the strategy).
                self.counters.cancels_rejected += 1;
                self.live[k].cancel_sent = false;
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_fill(
        &mut self,
        k: usize,
        match_ts: Nanos,
        price: Price,
        qty: Qty,
        maker: bool,
        fee: Cash,
        base_commission: Qty,
    ) {
        let o = &mut self.live[k];
        if o.life.filled().0 == 0 {
            self.counters.orders_with_fills += 1;
        }
        // The venue traded `qty`: the portfolio and risk book all of it; the order takes what
        // fits it (an overfill is counted, and the order is then filled).
        if !matches!(o.life.apply_fill_capped(qty), Ok(Qty::ZERO)) {
            self.counters.order_errors += 1;
        }
        let o = *o;
        let leaves = o.life.leaves();
        self.portfolio
            .on_fill(o.instrument, o.life.side(), price, qty, fee);
        // A charge shrinks the position, a rebate (negative) grows it.
        if base_commission.0 != 0 {
            self.portfolio
                .on_base_commission(o.instrument, base_commission);
        }
        self.risk.on_fill(o.instrument, o.life.side(), qty);
        self.markouts
            .on_fill(self.clock, o.instrument, o.life.side(), price);
        self.counters.fills += 1;
        if maker {
            self.counters.maker_fills += 1;
        } else {
            self.counters.taker_fills += 1;
        }
        let fill = FillRecord {
            ts: self.clock,
            match_ts,
            order_id: o.order_id,
            strategy: u32::try_from(o.strategy).unwrap_or(u32::MAX),
            client_id: o.client_id,
            instrument: o.instrument,
            side: o.life.side(),
            price,
            qty,
            maker,
            fee,
        };
        if let Some(log) = self.log.as_mut() {
            log.push(TraderEvent::Fill(fill));
        }
        if self.fills.len() < self.max_records {
            self.fills.push(fill);
        } else {
            self.counters.records_dropped += 1;
        }
        let p = self.portfolio.position(o.instrument);
        let position = PositionRecord {
            ts: self.clock,
            instrument: o.instrument,
            position: p.qty(),
            avg_entry_price: p.avg_entry_price().unwrap_or(Price::ZERO),
            realised_pnl: p.realised(),
            unrealised_pnl: p.unrealised(),
            fees: p.fees(),
        };
        if let Some(log) = self.log.as_mut() {
            log.push(TraderEvent::Position(position));
        }
        if self.positions.len() < self.max_records {
            self.positions.push(position);
        } else {
            self.counters.records_dropped += 1;
        }
        self.check_equity();
        self.push_equity_sample();
        let ctx = self.ctx(o.instrument, o.slot);
        self.strategies[o.strategy].strategy.on_fill(
            &ctx,
            &FillReport {
                client_id: o.client_id,
                instrument: o.instrument,
                side: o.life.side(),
                price,
                qty,
                leaves_qty: leaves,
                maker,
                fee,
            },
            &mut self.actions,
        );
        if !self.actions.is_empty() {
            self.process_actions(o.strategy);
        }
        match self.live.iter().position(|l| l.order_id == o.order_id) {
            Some(k) if leaves.0 <= 0 => {
                self.counters.orders_filled += 1;
                self.close(k, OrderStatus::Filled, None);
            }
            Some(k) => {
                let o = self.live[k];
                self.set_status(o.record, OrderStatus::PartiallyFilled, o.life.filled());
                self.log_order(&o, OrderStatus::PartiallyFilled, None);
            }
            None => self.set_status(o.record, OrderStatus::PartiallyFilled, o.life.filled()),
        }
    }

    /// An order reached a final status: release its risk, update its record, tell the
    /// strategy.
    fn close(&mut self, k: usize, status: OrderStatus, reason: Option<RejectReason>) {
        let mut o = self.live.remove(k);
        let leaves = o.life.unfilled();
        let event = match status {
            OrderStatus::Cancelled => Some(OrderEvent::Canceled),
            OrderStatus::Expired => Some(OrderEvent::Expired),
            OrderStatus::Rejected => Some(OrderEvent::Rejected),
            _ => None,
        };
        if let Some(event) = event {
            if o.life.apply(event).is_err() {
                self.counters.order_errors += 1;
            }
        }
        self.risk
            .on_order_closed(o.instrument, o.life.side(), leaves);
        self.log_order(&o, status, reason);
        if let Some(r) = o.record.and_then(|r| self.orders.get_mut(r)) {
            r.status = status;
            r.filled_qty = o.life.filled();
            r.reject_reason = reason;
            r.updated_ts = self.clock;
        }
        self.notify_update(
            o.strategy,
            o.slot,
            &OrderUpdate {
                client_id: o.client_id,
                instrument: o.instrument,
                side: o.life.side(),
                status,
                leaves_qty: Qty::ZERO,
                filled_qty: o.life.filled(),
                reject_reason: reason,
            },
        );
    }

    fn log_order(&mut self, o: &LiveOrder, status: OrderStatus, reason: Option<RejectReason>) {
        if let Some(log) = self.log.as_mut() {
            log.push(TraderEvent::Order(OrderRecord {
                ts: o.sent_ts,
                order_id: o.order_id,
                strategy: u32::try_from(o.strategy).unwrap_or(u32::MAX),
                client_id: o.client_id,
                instrument: o.instrument,
                side: o.life.side(),
                price: o.life.price(),
                qty: o.life.qty(),
                kind: o.kind,
                status,
                filled_qty: o.life.filled(),
                reject_reason: reason,
                updated_ts: self.clock,
            }));
        }
    }

    fn notify_update(&mut self, s: usize, slot: usize, update: &OrderUpdate) {
        let ctx = self.ctx(update.instrument, slot);
        self.strategies[s]
            .strategy
            .on_order_update(&ctx, update, &mut self.actions);
        if !self.actions.is_empty() {
            self.process_actions(s);
        }
    }

    fn ctx(&self, instrument: InstrumentId, slot: usize) -> StrategyContext {
        StrategyContext {
            now: self.clock,
            instrument,
            slot,
            position: self.portfolio.qty(instrument),
            risk_state: self.risk.state(),
        }
    }

    /// The synced book `i` changed: tell the strategies reading it as a signal whose traded
    /// book is synced too.
    fn signal_changed(&mut self, i: usize) {
        for k in 0..self.books[i].signal_subs.len() {
            let (s, slot, traded) = self.books[i].signal_subs[k];
            if !self.books[traded as usize].synced {
                continue;
            }
            let ctx = self.ctx(traded, slot);
            let (signal, book) = (
                self.books[i].sync.book(),
                self.books[traded as usize].sync.book(),
            );
            self.strategies[s]
                .strategy
                .on_signal(&ctx, signal, book, &mut self.actions);
            self.counters.strategy_calls += 1;
            if !self.actions.is_empty() {
                self.process_actions(s);
            }
        }
    }

    /// A synced book lost sync: cancel its orders, tell its strategies (those trading it and
    /// those reading it as a signal).
    fn book_lost(&mut self, instrument: InstrumentId) {
        self.counters.resyncs += 1;
        self.cancel_all(Some(instrument));
        let i = instrument as usize;
        for k in 0..self.books[i].signal_subs.len() {
            let (s, slot, traded) = self.books[i].signal_subs[k];
            let ctx = self.ctx(traded, slot);
            self.strategies[s]
                .strategy
                .on_signal_lost(&ctx, &mut self.actions);
            if !self.actions.is_empty() {
                self.process_actions(s);
            }
        }
        for k in 0..self.books[i].subs.len() {
            let (s, slot, _) = self.books[i].subs[k];
            let ctx = self.ctx(instrument, slot);
            self.strategies[s]
                .strategy
                .on_book_lost(&ctx, &mut self.actions);
            if !self.actions.is_empty() {
                self.process_actions(s);
            }
        }
    }

    // ---- accounting ----

    fn count_reject(&mut self, reason: RejectReason) {
        self.counters.orders_rejected += 1;
        self.counters.rejected_by_reason[reason as usize] += 1;
    }

    fn push_order(&mut self, record: OrderRecord) -> Option<usize> {
        if self.orders.len() < self.max_records {
            self.orders.push(record);
            Some(self.orders.len() - 1)
        } else {
            self.counters.records_dropped += 1;
            None
        }
    }

    fn set_status(&mut self, record: Option<usize>, status: OrderStatus, filled: Qty) {
        if let Some(r) = record.and_then(|r| self.orders.get_mut(r)) {
            r.status = status;
            r.filled_qty = filled;
            r.updated_ts = self.clock;
        }
    }

    /// Shows the equity to the risk engine (and tracks the drawdown).
    fn check_equity(&mut self) {
        // Equity is only as good as its marks. Once an instrument with a position has had a
        // mark from this run (a mid, or a trade while its book is out of sync), the loss
        // limits work on the last trusted mark, through outages too (its age is in the
        // heartbeat, and `check_stale_exposure` acts on a stale book). Before its first one (a
        // restarted engine's mark is the price of a journaled fill) they wait.
        let unmarked =
            self.books.iter().enumerate().any(|(i, b)| {
                b.marked_at.is_none() && self.portfolio.qty(i as InstrumentId).0 != 0
            });
        if unmarked {
            return;
        }
        let equity = self.portfolio.equity();
        self.peak_equity = self.peak_equity.max(equity);
        self.max_drawdown = self
            .max_drawdown
            .max(self.peak_equity.saturating_sub(equity));
        if let Some(tr) = self.risk.on_equity(self.clock, equity) {
            self.on_transition(tr);
        }
    }

    fn on_transition(&mut self, tr: RiskTransition) {
        self.counters.risk_transitions += 1;
        let record = RiskEventRecord {
            ts: tr.at,
            from: tr.from,
            to: tr.to,
            cause: tr.cause,
        };
        if let Some(log) = self.log.as_mut() {
            log.push(TraderEvent::Risk(record));
        }
        self.risk_events.push(record);
        if tr.to == RiskState::Halted && self.risk.cancel_on_trigger() {
            self.cancel_all(None);
        }
    }

    /// Exposure on a stale book (see [`RiskEngine::on_stale_exposure`]): the age of the
    /// oldest book update among the instruments with a position (a book never updated in this
    /// run counts from its start).
    fn check_stale_exposure(&mut self) {
        let since = self.start.unwrap_or(self.clock);
        let age = (0..self.books.len())
            .filter(|&i| self.portfolio.qty(i as InstrumentId).0 != 0)
            .map(|i| {
                let at = self
                    .risk
                    .last_book_update(i as InstrumentId)
                    .unwrap_or(since);
                self.clock.saturating_sub(at.max(since))
            })
            .max();
        if let Some(tr) = self.risk.on_stale_exposure(self.clock, age) {
            self.on_transition(tr);
        }
    }

    /// How old the last trusted mark of `instrument` is at the clock (`None`: none yet).
    pub fn mark_age(&self, instrument: InstrumentId) -> Option<Nanos> {
        let at = self.books.get(instrument as usize)?.marked_at?;
        Some(self.clock.saturating_sub(at))
    }

    /// The markouts of the fills so far ([`crate::markout`]), for anomaly detection.
    pub fn markout_totals(&self) -> MarkoutTotals {
        self.markouts.totals()
    }

    /// Takes the markouts of the fills whose horizon the clock has passed (a cheap check when
    /// none is due).
    #[inline]
    fn take_markouts(&mut self) {
        if self.markouts.due(self.clock) {
            let books = &self.books;
            self.markouts
                .take_due(self.clock, |i| books.get(i as usize).and_then(|b| b.marked));
        }
    }

    fn sample_equity(&mut self) {
        self.check_stale_exposure();
        self.check_equity();
        self.push_equity_sample();
        self.next_sample_at = self
            .clock
            .div_euclid(self.equity_interval)
            .saturating_add(1)
            .saturating_mul(self.equity_interval);
    }

    fn push_equity_sample(&mut self) {
        if self.equity.len() >= self.max_equity_samples {
            let mut n = 0usize;
            self.equity.retain(|_| {
                n += 1;
                n % 2 == 1
            });
            self.equity_interval = self.equity_interval.saturating_mul(2);
        }
        self.equity.push(EquitySample {
            ts: self.clock,
            equity: self.portfolio.equity(),
            realised_pnl: self.portfolio.realised(),
            unrealised_pnl: self.portfolio.unrealised(),
            fees: self.portfolio.fees(),
            gross_exposure: self.portfolio.gross_exposure(),
        });
    }
}
