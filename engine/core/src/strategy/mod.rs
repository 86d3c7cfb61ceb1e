//! Strategies: the [`Strategy`] trait every kind implements, the order vocabulary it speaks
//! ([`Action`], [`NewOrder`], [`OrderUpdate`], [`FillReport`]) and the built-in kinds.
//!
//! A strategy is a pure state machine over events: the backtest driver and the live engine call
//! the same methods in the same order (market data only while the instrument's book is synced,
//! then order updates and fills as the venue reports them), and the strategy answers by pushing
//! [`Action`]s into a reused `Vec` (no allocation per event). It never talks to a venue: every
//! [`Action::Place`] goes through the risk engine first, which may refuse it; the strategy hears
//! about that as an [`OrderUpdate`] with [`OrderStatus::Rejected`].
//!
//! Client ids are chosen by the strategy and only need to be unique among its own live orders;
//! the engine keeps them apart from other strategies' ids.

use crate::book::OrderBook;
use crate::event::{Bbo, Trade};
use crate::portfolio::{Cash, InstrumentId, InstrumentSpec};
use crate::risk::{RejectReason, RiskState};
use crate::types::{Nanos, Price, Qty, Side};

pub mod imbalance_taker;
pub mod market_maker;
pub mod model_taker;
mod taker;

pub use imbalance_taker::ImbalanceTaker;
pub use market_maker::MarketMaker;
pub use model_taker::ModelTaker;

use crate::model::Predictor;

/// How an order executes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OrderKind {
    /// Rests at its price; the crossing part (if any) executes at once as a taker.
    Limit,
    /// Takes liquidity at any price; what the book cannot fill expires. Its `price` is only
    /// used by the risk engine (see `risk`), the matcher ignores it.
    Market,
    /// Immediate or cancel: takes liquidity up to its limit price, the rest expires.
    Ioc,
    /// Rests as a maker or is rejected when it would cross.
    PostOnly,
}

impl OrderKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            OrderKind::Limit => "limit",
            OrderKind::Market => "market",
            OrderKind::Ioc => "ioc",
            OrderKind::PostOnly => "post_only",
        }
    }
}

/// An order a strategy wants placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewOrder {
    pub client_id: u64,
    pub instrument: InstrumentId,
    pub side: Side,
    pub price: Price,
    pub qty: Qty,
    pub kind: OrderKind,
}

/// A new price and quantity for one of the strategy's live limit or post-only orders, changed
/// in place at the venue (OKX `amend-order`) rather than cancelled and placed again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Amend {
    pub client_id: u64,
    pub price: Price,
    /// The quantity ordered, fills included (more than what is filled).
    pub qty: Qty,
}

/// What a strategy asks the engine to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Place(NewOrder),
    /// Cancel the strategy's live order with this client id.
    Cancel(u64),
    /// Amend a live order. Risk checks it as the order it would become. The answer is an
    /// [`OrderUpdate`] with the order's live status: `reject_reason` `None` when the venue
    /// amended it (a smaller quantity at the same price keeps its place in the queue; any other
    /// change puts it at the back), `Some` when the amendment was refused and the order is as
    /// it was (`NotAmendable`: not acknowledged yet, a cancel or another amendment in flight, not
    /// resting any more, or a venue that does not amend). A refused amendment is not a
    /// rejected order: the order stays live.
    Amend(Amend),
}

/// The life cycle of an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OrderStatus {
    /// Passed risk, sent, not acknowledged yet.
    Sent,
    /// Acknowledged by the venue (resting, or about to execute).
    Accepted,
    PartiallyFilled,
    Filled,
    Cancelled,
    /// An IOC or market order's unfilled rest.
    Expired,
    /// Refused by risk or by the venue; see the reason.
    Rejected,
}

impl OrderStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Sent => "sent",
            OrderStatus::Accepted => "accepted",
            OrderStatus::PartiallyFilled => "partially_filled",
            OrderStatus::Filled => "filled",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::Expired => "expired",
            OrderStatus::Rejected => "rejected",
        }
    }

    /// No more fills or updates will follow.
    pub const fn is_final(self) -> bool {
        matches!(
            self,
            OrderStatus::Filled
                | OrderStatus::Cancelled
                | OrderStatus::Expired
                | OrderStatus::Rejected
        )
    }
}

/// A change of an order's status, as the strategy hears it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderUpdate {
    pub client_id: u64,
    pub instrument: InstrumentId,
    pub side: Side,
    pub status: OrderStatus,
    /// Quantity still working.
    pub leaves_qty: Qty,
    pub filled_qty: Qty,
    /// Set for [`OrderStatus::Rejected`].
    pub reject_reason: Option<RejectReason>,
}

/// One execution of one of the strategy's orders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FillReport {
    pub client_id: u64,
    pub instrument: InstrumentId,
    pub side: Side,
    pub price: Price,
    pub qty: Qty,
    /// Quantity still working after this fill.
    pub leaves_qty: Qty,
    pub maker: bool,
    pub fee: Cash,
}

/// What the engine tells a strategy along with every callback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StrategyContext {
    /// Event time (the engine's clock; never the wall clock).
    pub now: Nanos,
    /// The instrument this callback is about.
    pub instrument: InstrumentId,
    /// Its index in the strategy's own instrument list ([`Strategy::instruments`]).
    pub slot: usize,
    /// The account's signed position in that instrument, as the engine knows it (fills are
    /// applied when their report arrives).
    pub position: Qty,
    /// The risk engine's state: a strategy may spare itself rejections by quoting accordingly.
    pub risk_state: RiskState,
    /// The last update id the instrument's diff book applied (`None` where the venue's book
    /// has none): a real-time top of book ([`Strategy::on_bbo`]) with a higher id is newer.
    pub book_update_id: Option<u64>,
}

/// A trading strategy. Implemented once, run by backtests and the live engine alike.
pub trait Strategy: Send + std::fmt::Debug {
    /// A short name of the kind (`"market_maker"`).
    fn kind(&self) -> &'static str;

    /// The instruments it trades; `StrategyContext::slot` indexes this list.
    fn instruments(&self) -> &[InstrumentId];

    /// The instrument's book changed (a diff or a snapshot was applied); the book is synced.
    fn on_book(&mut self, ctx: &StrategyContext, book: &OrderBook, out: &mut Vec<Action>);

    /// Whether [`Strategy::on_trade`] should be called (an engine may skip the call and its
    /// context for strategies that ignore trades). Asked once, when the strategy is added.
    fn wants_trades(&self) -> bool {
        true
    }

    /// A public trade printed; the book is synced.
    fn on_trade(
        &mut self,
        ctx: &StrategyContext,
        book: &OrderBook,
        trade: &Trade,
        out: &mut Vec<Action>,
    ) {
        let _ = (ctx, book, trade, out);
    }

    /// Whether [`Strategy::on_bbo`] should be called. Asked once, when the strategy is added.
    fn wants_bbo(&self) -> bool {
        false
    }

    /// The venue's real-time best bid and offer of the instrument (Binance `bookTicker`), as
    /// new as the diff book or newer: called only when the book is synced and `bbo.update_id`
    /// is not below the book's last applied update (`ctx.book_update_id`); an older one is
    /// counted and dropped by the engine.
    fn on_bbo(
        &mut self,
        ctx: &StrategyContext,
        book: &OrderBook,
        bbo: &Bbo,
        out: &mut Vec<Action>,
    ) {
        let _ = (ctx, book, bbo, out);
    }

    /// One of its orders executed (called before the order's final [`OrderUpdate`], if any).
    fn on_fill(&mut self, ctx: &StrategyContext, fill: &FillReport, out: &mut Vec<Action>);

    /// One of its orders changed status.
    fn on_order_update(
        &mut self,
        ctx: &StrategyContext,
        update: &OrderUpdate,
        out: &mut Vec<Action>,
    );

    /// The instrument's book lost sync: no market data until it is back, and the engine is
    /// cancelling the strategy's open orders on it (their updates follow as usual).
    fn on_book_lost(&mut self, ctx: &StrategyContext, out: &mut Vec<Action>) {
        let _ = (ctx, out);
    }

    /// A book it reads as a signal changed (see `Trader::add_signal`: another instrument,
    /// typically on another venue); `ctx` is about the traded instrument of the slot the
    /// signal informs and `book` is that instrument's book. Both books are synced.
    fn on_signal(
        &mut self,
        ctx: &StrategyContext,
        signal: &OrderBook,
        book: &OrderBook,
        out: &mut Vec<Action>,
    ) {
        let _ = (ctx, signal, book, out);
    }

    /// The signal book of `ctx`'s slot lost sync: no signal until it is back.
    fn on_signal_lost(&mut self, ctx: &StrategyContext, out: &mut Vec<Action>) {
        let _ = (ctx, out);
    }

    /// Predictions made and failed, for a strategy that runs a model; `None` otherwise.
    fn model_stats(&self) -> Option<ModelStats> {
        None
    }
}

/// How a strategy's model fared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ModelStats {
    /// Rows evaluated.
    pub predictions: u64,
    /// Evaluations that failed (the tick was skipped).
    pub errors: u64,
}

impl ModelStats {
    /// The sum of two strategies' stats.
    pub fn plus(self, other: ModelStats) -> ModelStats {
        ModelStats {
            predictions: self.predictions + other.predictions,
            errors: self.errors + other.errors,
        }
    }
}

/// Builds the model of a manifest strategy: called with the strategy's name and its model
/// section, it returns the loaded model or why it cannot be loaded. rt-core does no I/O, so the
/// backtest's caller and the live engine supply one (rt-model's ONNX Runtime in practice).
pub type ModelLoader<'a> = dyn FnMut(&str, &rt_manifest::model::ModelRef) -> Result<Box<dyn Predictor + Send>, String>
    + 'a;

/// Why a strategy cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StrategyError {
    #[error("strategy trades no instrument")]
    NoInstruments,
    #[error("{count} instrument specs given for {expected} instruments")]
    SpecCount { expected: usize, count: usize },
    #[error("instrument {instrument}: {field} must be positive, found {value}")]
    NotPositive {
        instrument: InstrumentId,
        field: &'static str,
        value: i64,
    },
    #[error("params.{field}: {message}")]
    Param {
        field: &'static str,
        message: String,
    },
    #[error("trades {count} instruments; this kind trades exactly one")]
    OneInstrument { count: usize },
    #[error(
        "kind {0} runs a model: this manifest's strategy needs a model loader (build the \
         backtest with Trader::from_manifest_with)"
    )]
    NeedsModelLoader(&'static str),
    #[error("params.model: {0}")]
    Model(String),
}

/// Builds a manifest strategy of any built-in kind, for `instruments` (engine ids, in the
/// order of `strategy.instruments`) described by `specs`.
/// A kind with a model is refused ([`StrategyError::NeedsModelLoader`]): see
/// [`from_manifest_with`].
pub fn from_manifest(
    strategy: &rt_manifest::model::Strategy,
    instruments: &[InstrumentId],
    specs: &[InstrumentSpec],
) -> Result<Box<dyn Strategy>, StrategyError> {
    build(strategy, instruments, specs, None)
}

/// [`from_manifest`], with the model of a model kind from `models` (called with `name`, the
/// strategy's manifest name).
pub fn from_manifest_with(
    name: &str,
    strategy: &rt_manifest::model::Strategy,
    instruments: &[InstrumentId],
    specs: &[InstrumentSpec],
    models: &mut ModelLoader<'_>,
) -> Result<Box<dyn Strategy>, StrategyError> {
    build(strategy, instruments, specs, Some((name, models)))
}

fn build(
    strategy: &rt_manifest::model::Strategy,
    instruments: &[InstrumentId],
    specs: &[InstrumentSpec],
    models: Option<(&str, &mut ModelLoader<'_>)>,
) -> Result<Box<dyn Strategy>, StrategyError> {
    use rt_manifest::model::StrategyParams;
    Ok(match &strategy.params {
        StrategyParams::MarketMaker(p) => {
            Box::new(MarketMaker::from_manifest(p, instruments, specs)?)
        }
        StrategyParams::ImbalanceTaker(p) => {
            Box::new(ImbalanceTaker::from_manifest(p, instruments, specs)?)
        }
        StrategyParams::ModelTaker(p) => {
            let Some((name, models)) = models else {
                return Err(StrategyError::NeedsModelLoader(
                    strategy.params.kind().as_str(),
                ));
            };
            let model = models(name, &p.model).map_err(StrategyError::Model)?;
            Box::new(ModelTaker::from_manifest(p, model, instruments, specs)?)
        }
    })
}

/// Checks the instrument list against its specs (shared by the kinds).
fn check_instruments(
    instruments: &[InstrumentId],
    specs: &[InstrumentSpec],
) -> Result<(), StrategyError> {
    if instruments.is_empty() {
        return Err(StrategyError::NoInstruments);
    }
    if specs.len() != instruments.len() {
        return Err(StrategyError::SpecCount {
            expected: instruments.len(),
            count: specs.len(),
        });
    }
    for (&instrument, spec) in instruments.iter().zip(specs) {
        for (field, value) in [("tick_size", spec.tick.0), ("lot_size", spec.lot.0)] {
            if value <= 0 {
                return Err(StrategyError::NotPositive {
                    instrument,
                    field,
                    value,
                });
            }
        }
    }
    Ok(())
}

/// Event time a side waits before placing again after a rejection, so that a refusing risk
/// engine (halted, rate-limited, position limit) is not asked again on every book update.
pub const REJECT_BACKOFF_NS: Nanos = 100_000_000;

/// Allocates client ids: increasing, never 0, unique per strategy.
#[derive(Clone, Copy, Debug, Default)]
struct ClientIds(u64);

impl ClientIds {
    fn next(&mut self) -> u64 {
        self.0 += 1;
        self.0
    }
}
