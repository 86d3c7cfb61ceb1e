//! The trader: the one trading core of the live engine and of backtests. Market events in,
//! the manifest's strategies trading through the risk engine to a simulated venue (the
//! in-process matcher, in a backtest) or an external one (the live engine's gateway), records
//! out. (It was called `Backtest` until the live engine was built on it.)
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
//! tracking and portfolio) with its exchanges switched to *external* ([`Trader::set_external`]):
//! orders and cancels that pass risk are queued for the caller ([`Trader::drain_requests`],
//! sent by the gateway) instead of reaching the in-process matcher, and the venue's execution
//! reports come back through [`Trader::on_exec`]. [`Trader::enable_event_log`] makes every
//! order update, fill, position change and risk transition available to the caller
//! ([`Trader::drain_events`]) for the journal and the event bus.
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
//!
//! # Where things are
//!
//! - `config`: the configuration (exchanges, instruments, latencies, strategies) and its errors;
//! - `records`: what a run records and returns (orders, fills, positions, equity, counters, the
//!   result), the requests for external venues and the events for the journal and the bus;
//! - `orders`: the order path: strategy actions, risk checks, sending to the exchange's route,
//!   execution reports, fills;
//! - `venue`: the route, one boundary with two implementations: the simulated venue (latency
//!   queues to and from the instruments' matchers) and the external venue (the caller's outbox
//!   and [`Trader::on_exec`]);
//! - `controls`: operator controls (pause, flatten, kill, halt, resume, tightening) and what a
//!   restarting engine restores (fills, commissions, funding, marks, risk state);
//! - here: the driver itself (building it, market events, timers, equity, the result).

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
    self, Action, Amend, FillReport, ModelLoader, ModelStats, NewOrder, OrderKind, OrderStatus,
    OrderUpdate, Strategy, StrategyContext, StrategyError,
};
use crate::sync::{BookSync, DiffOutcome, SyncRule};
use crate::types::{Nanos, Price, Qty, Side};

mod config;
mod controls;
mod orders;
mod records;
mod venue;

pub use config::*;
pub use records::*;
use venue::{Request, RequestKind, Route, SimulatedVenue};

/// Index of an exchange in [`TraderConfig::exchanges`].
pub type ExchangeId = usize;

/// Rounds of request/report handling per call before the driver stops (a strategy answering
/// every report with a new order at zero latency could otherwise loop forever).
const MAX_PUMP_ROUNDS: usize = 1024;

/// An instrument's book, matcher and subscribers.
#[derive(Debug)]
struct Book {
    sync: BookSync,
    matcher: Matcher,
    exchange: ExchangeId,
    /// The strategies trading it: (strategy, slot, wants trades, wants the real-time top of
    /// book).
    subs: Vec<(usize, usize, bool, bool)>,
    /// (strategy, slot, traded instrument) of the strategies reading it as a signal.
    signal_subs: Vec<(usize, usize, InstrumentId)>,
    synced: bool,
    /// The mid the portfolio was last marked to.
    marked: Option<Price>,
    /// When the position's mark was last set (a book mid, or a trade while the book is not
    /// synced): the age of the last trusted mark.
    marked_at: Option<Nanos>,
}

#[derive(Debug)]
struct Venue {
    name: String,
    /// Feed symbol id -> instrument.
    symbols: Vec<Option<InstrumentId>>,
    /// This exchange's instruments with their symbols, in configuration order.
    instruments: Vec<(String, InstrumentId)>,
    /// Where its orders go: the simulated venue, or the caller (`venue.rs`).
    route: Route,
    /// One of its books left sync since the driver last asked ([`Trader::take_snapshot_request`]).
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
    /// An amendment sent and not answered yet.
    amend: Option<PendingAmend>,
    record: Option<usize>,
}

/// An amendment in flight: what it asked, and the open quantity risk reserved for it beyond
/// the order's leaves (released when the venue answers or the order ends).
#[derive(Clone, Copy, Debug)]
struct PendingAmend {
    /// The price and quantity ordered asked.
    price: Price,
    qty: Qty,
    reserved: Qty,
}

#[derive(Debug)]
struct StrategySlot {
    name: String,
    strategy: Box<dyn Strategy>,
}

/// A backtest in progress. See the module documentation.
#[derive(Debug)]
pub struct Trader {
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
    counters: TraderCounters,
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
    /// Per instrument: a futures contract's delivery was booked (once: [`Trader::book_delivery`]).
    delivered: Vec<bool>,
    /// Per instrument: a futures contract's reduce-only window began (its orders cancelled).
    window_entered: Vec<bool>,
    /// When the next expiry event is due (a window's start, or on a simulated venue an
    /// expiry to deliver; `Nanos::MAX`: none): one comparison an event.
    next_expiry_event: Nanos,
}

impl Trader {
    /// Sets up the exchanges, instruments (ids in configuration order), books, strategies and
    /// risk engine. A strategy with a model is refused: see [`Trader::with_models`].
    pub fn new(config: TraderConfig) -> Result<Trader, TraderError> {
        Trader::build(config, None)
    }

    /// [`Trader::new`], the models of model strategies built by `models`.
    pub fn with_models(
        config: TraderConfig,
        models: &mut ModelLoader<'_>,
    ) -> Result<Trader, TraderError> {
        Trader::build(config, Some(models))
    }

    pub(super) fn build(
        config: TraderConfig,
        mut models: Option<&mut ModelLoader<'_>>,
    ) -> Result<Trader, TraderError> {
        if config.equity_interval_ns <= 0 {
            return Err(TraderError::Setting {
                field: "equity_interval_ns",
                rule: "positive",
                value: config.equity_interval_ns,
            });
        }
        if config.max_equity_samples < 2 {
            return Err(TraderError::Setting {
                field: "max_equity_samples",
                rule: "at least 2",
                value: i64::try_from(config.max_equity_samples).unwrap_or(0),
            });
        }
        let mut instruments = Vec::new();
        let mut venues = Vec::new();
        let mut books = Vec::new();
        let mut expiries = Vec::new();
        for (x, exchange) in config.exchanges.iter().enumerate() {
            let mut own = Vec::new();
            for i in &exchange.instruments {
                expiries.push(i.expiry_ms.map(crate::risk::ms_to_ns));
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
                symbols: own.iter().map(|(_, id)| Some(*id)).collect(),
                instruments: own,
                route: Route::Simulated(SimulatedVenue::new(exchange.latency)),
                wants_snapshot: false,
            });
        }
        let table: Vec<(&str, InstrumentSpec)> = instruments
            .iter()
            .map(|i| (i.symbol.as_str(), i.spec))
            .collect();
        let mut risk_config = RiskConfig::from_manifest(&config.risk, &table);
        let window = risk_config.reduce_only_before_expiry_ns;
        let next_expiry_event = expiries
            .iter()
            .flatten()
            .map(|e| e.saturating_sub(window))
            .min()
            .unwrap_or(Nanos::MAX);
        let delivered = vec![false; expiries.len()];
        let window_entered = vec![false; expiries.len()];
        risk_config.expiries = expiries;
        let risk = RiskEngine::new(risk_config);
        let portfolio = Portfolio::with_contracts(instruments.iter().map(|i| i.spec.contract));
        let mut backtest = Trader {
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
            counters: TraderCounters::default(),
            outbox: Vec::new(),
            log: None,
            paused: false,
            next_engine_client_id: u64::MAX,
            warmup_until: None,
            markouts: Markouts::default(),
            delivered,
            window_entered,
            next_expiry_event,
        };
        for s in &config.strategies {
            let (ids, specs) = backtest.resolve(s)?;
            let built = match models.as_deref_mut() {
                Some(models) => {
                    strategy::from_manifest_with(&s.name, &s.strategy, &ids, &specs, models)
                }
                None => strategy::from_manifest(&s.strategy, &ids, &specs),
            }
            .map_err(|source| TraderError::Strategy {
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

    /// [`TraderConfig::from_manifest`] then [`Trader::new`].
    pub fn from_manifest(manifest: &Manifest) -> Result<Trader, TraderError> {
        Trader::new(TraderConfig::from_manifest(manifest))
    }

    /// [`TraderConfig::from_manifest`] then [`Trader::with_models`].
    pub fn from_manifest_with(
        manifest: &Manifest,
        models: &mut ModelLoader<'_>,
    ) -> Result<Trader, TraderError> {
        Trader::with_models(TraderConfig::from_manifest(manifest), models)
    }

    /// Predictions and failures of every strategy's model, summed.
    pub fn model_stats(&self) -> ModelStats {
        self.strategies
            .iter()
            .filter_map(|s| s.strategy.model_stats())
            .fold(ModelStats::default(), ModelStats::plus)
    }

    /// The engine ids and specs of a manifest strategy's instruments.
    pub(super) fn resolve(
        &self,
        s: &StrategyConfig,
    ) -> Result<(Vec<InstrumentId>, Vec<InstrumentSpec>), TraderError> {
        let exchange = &s.strategy.exchange;
        let venue = self
            .venues
            .iter()
            .find(|v| v.name == *exchange)
            .ok_or_else(|| TraderError::UnknownExchange {
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
                .ok_or_else(|| TraderError::UnknownInstrument {
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
    pub(super) fn resolve_signal(
        &self,
        s: &StrategyConfig,
    ) -> Result<Option<InstrumentId>, TraderError> {
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
            .ok_or_else(|| TraderError::UnknownExchange {
                strategy: s.name.clone(),
                exchange: signal.exchange.clone(),
            })?;
        venue
            .instruments
            .iter()
            .find(|(name, _)| *name == signal.instrument)
            .map(|(_, id)| Some(*id))
            .ok_or_else(|| TraderError::UnknownInstrument {
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
    ) -> Result<(), TraderError> {
        let s = self
            .strategies
            .get(strategy)
            .ok_or(TraderError::StrategyIndex(strategy))?;
        let Some(&traded) = s.strategy.instruments().get(slot) else {
            return Err(TraderError::StrategyIndex(strategy));
        };
        let book =
            self.books
                .get_mut(signal as usize)
                .ok_or_else(|| TraderError::InstrumentId {
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
    ) -> Result<usize, TraderError> {
        let s = self.strategies.len();
        if let Some(&bad) = strategy
            .instruments()
            .iter()
            .find(|&&id| id as usize >= self.books.len())
        {
            return Err(TraderError::InstrumentId {
                strategy: name.to_owned(),
                id: bad,
            });
        }
        let (trades, bbos) = (strategy.wants_trades(), strategy.wants_bbo());
        for (slot, &id) in strategy.instruments().iter().enumerate() {
            self.books[id as usize].subs.push((s, slot, trades, bbos));
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

    /// The id of the instrument `symbol` of exchange `exchange` (names as configured).
    pub fn instrument_id(&self, exchange: &str, symbol: &str) -> Option<InstrumentId> {
        self.instruments
            .iter()
            .find(|i| i.exchange == exchange && i.symbol == symbol)
            .map(|i| i.id)
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
    ) -> Result<(), TraderError> {
        let venue = self
            .venues
            .get_mut(exchange)
            .ok_or(TraderError::ExchangeIndex(exchange))?;
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

    pub fn counters(&self) -> &TraderCounters {
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

    /// The clock: the latest event time seen.
    pub fn now(&self) -> Nanos {
        self.clock
    }

    /// The book of an instrument (empty unless synced).
    pub fn book(&self, instrument: InstrumentId) -> Option<&crate::book::OrderBook> {
        self.books.get(instrument as usize).map(|b| b.sync.book())
    }

    /// Switches an exchange to an external venue (live trading): see the module documentation.
    pub fn set_external(&mut self, exchange: ExchangeId) -> Result<(), TraderError> {
        let venue = self
            .venues
            .get_mut(exchange)
            .ok_or(TraderError::ExchangeIndex(exchange))?;
        venue.route = Route::External;
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

    /// Moves the clock to `now` (never backwards) without a market event: timers, requests
    /// due and equity samples run as they would on an event.
    pub fn advance(&mut self, now: Nanos) {
        if now > self.clock {
            self.clock = now;
        }
        self.take_markouts();
        self.pump();
        if self.clock >= self.next_expiry_event {
            self.on_expiries();
        }
        if self.start.is_some() {
            self.check_stale_exposure();
        }
        if self.clock >= self.next_sample_at && self.start.is_some() {
            self.sample_equity();
        }
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

    /// Whether events are still only building the books (see [`Trader::set_warmup_until`]).
    pub fn is_warming_up(&self) -> bool {
        self.warmup_until.is_some()
    }

    /// Whether an event received at `local_ns` is part of the warm-up; the first one that is
    /// not ends it and restarts the counters.
    pub(super) fn warming(&mut self, local_ns: Nanos) -> bool {
        match self.warmup_until {
            Some(until) if local_ns < until => true,
            Some(_) => {
                self.warmup_until = None;
                self.counters = TraderCounters {
                    warmup_events: self.counters.events,
                    ..TraderCounters::default()
                };
                false
            }
            None => false,
        }
    }

    /// The risk engine (limits, state, open orders).
    pub fn risk(&self) -> &RiskEngine {
        &self.risk
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
        // Before this event moves the book: the mid in effect when a fill's horizon passed,
        // and the one a simulated venue delivers an expired future at.
        self.take_markouts();
        self.pump();
        if self.clock >= self.next_expiry_event {
            self.on_expiries();
        }
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
        // A real-time top of book as new as the diff book or newer (for the strategies).
        let mut fresh_bbo = false;
        let simulated = matches!(
            self.venues[self.books[i].exchange].route,
            Route::Simulated(_)
        );
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
                MarketEvent::Bbo(q) => {
                    self.counters.bbos += 1;
                    // Binance's bookTicker ids share the diff stream's: one below the book's
                    // last applied update is older than what the book knows.
                    fresh_bbo = b.sync.is_synced()
                        && b.sync
                            .last_update_id()
                            .map_or(true, |last| q.update_id >= last);
                    self.counters.bbos_stale += u64::from(b.sync.is_synced() && !fresh_bbo);
                }
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
        if synced && (changed || is_trade || fresh_bbo) && !self.paused && !warm {
            for k in 0..self.books[i].subs.len() {
                let (s, slot, trades, bbos) = self.books[i].subs[k];
                if (is_trade && !trades) || (fresh_bbo && !bbos) {
                    continue;
                }
                let ctx = self.ctx(instrument, slot);
                let book = self.books[i].sync.book();
                let strategy = &mut self.strategies[s].strategy;
                match ev {
                    MarketEvent::Trade(t) => strategy.on_trade(&ctx, book, t, &mut self.actions),
                    MarketEvent::Bbo(q) => strategy.on_bbo(&ctx, book, q, &mut self.actions),
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
            pnl_by_instrument: (0..self.portfolio.len())
                .map(|i| self.portfolio.equity_of(i as InstrumentId))
                .collect(),
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

    pub(super) fn ctx(&self, instrument: InstrumentId, slot: usize) -> StrategyContext {
        StrategyContext {
            now: self.clock,
            instrument,
            slot,
            position: self.portfolio.qty(instrument),
            risk_state: self.risk.state(),
            book_update_id: self
                .books
                .get(instrument as usize)
                .and_then(|b| b.sync.last_update_id()),
        }
    }

    /// The synced book `i` changed: tell the strategies reading it as a signal whose traded
    /// book is synced too.
    pub(super) fn signal_changed(&mut self, i: usize) {
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
    pub(super) fn book_lost(&mut self, instrument: InstrumentId) {
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
            let (s, slot, _, _) = self.books[i].subs[k];
            let ctx = self.ctx(instrument, slot);
            self.strategies[s]
                .strategy
                .on_book_lost(&ctx, &mut self.actions);
            if !self.actions.is_empty() {
                self.process_actions(s);
            }
        }
    }

    /// Shows the equity to the risk engine (and tracks the drawdown).
    pub(super) fn check_equity(&mut self) {
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

    pub(super) fn on_transition(&mut self, tr: RiskTransition) {
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
    pub(super) fn check_stale_exposure(&mut self) {
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
    pub(super) fn take_markouts(&mut self) {
        if self.markouts.due(self.clock) {
            let books = &self.books;
            self.markouts
                .take_due(self.clock, |i| books.get(i as usize).and_then(|b| b.marked));
        }
    }

    pub(super) fn sample_equity(&mut self) {
        self.check_stale_exposure();
        self.check_equity();
        self.push_equity_sample();
        self.next_sample_at = self
            .clock
            .div_euclid(self.equity_interval)
            .saturating_add(1)
            .saturating_mul(self.equity_interval);
    }

    pub(super) fn push_equity_sample(&mut self) {
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
