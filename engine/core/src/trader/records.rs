//! What a run records and returns, the requests it makes of external venues and the events it
//! logs for the journal and the bus.

use super::*;

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
pub struct TraderCounters {
    /// Market events fed in.
    pub events: u64,
    pub depth_events: u64,
    pub snapshots: u64,
    pub trades: u64,
    pub bbos: u64,
    /// Real-time tops of book older than the synced diff book (not passed to strategies).
    pub bbos_stale: u64,
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
    /// Indexed by `RejectReason as usize` (see [`TraderCounters::rejections`]).
    pub rejected_by_reason: [u64; RejectReason::COUNT],
    pub cancels_sent: u64,
    /// Cancels that found nothing resting (the order had filled or expired meanwhile).
    pub cancels_rejected: u64,
    /// `Action::Cancel` for a client id with no live order.
    pub cancels_unknown: u64,
    /// `Action::Amend` that passed risk and went to the venue.
    pub amends_sent: u64,
    /// Amendments the venue made.
    pub amends_done: u64,
    /// Amendments refused (by risk, by the engine: `NotAmendable`, or by the venue); the
    /// order stayed as it was.
    pub amends_rejected: u64,
    /// `Action::Amend` for a client id with no live order.
    pub amends_unknown: u64,
    /// Amendments taken as made from a fill whose venue leaves were the amended order's (the
    /// venue's answer late or lost).
    pub amends_implied: u64,
    /// Amendments reported made as an earlier one asked, while a later one was pending
    /// (ignored: the venue answers the pending one).
    pub amends_stale: u64,
    pub fills: u64,
    pub maker_fills: u64,
    pub taker_fills: u64,
    pub risk_transitions: u64,
    pub pump_overflows: u64,
    pub records_dropped: u64,
    /// Events applied to the books before the trading start (see
    /// [`Trader::set_warmup_until`]); every other counter covers the events after it.
    pub warmup_events: u64,
    /// Rows the strategies' models evaluated (filled in by [`Trader::finish`]).
    pub model_predictions: u64,
    /// Model evaluations that failed; each skipped its tick.
    pub model_errors: u64,
    /// Reports an order's lifecycle refused or capped ([`crate::order`]): a fill beyond the
    /// order's quantity (the venue's fill booked, the order closed filled) or a final report
    /// that could not follow (a rejection after fills: the order closed as reported).
    pub order_errors: u64,
}

impl TraderCounters {
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
    /// Each instrument's realised + unrealised - fees in the quote currency (an inverse
    /// contract's at its mark), by instrument id: their sum is `pnl` but for flooring.
    pub pnl_by_instrument: Vec<Cash>,
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
    pub counters: TraderCounters,
    pub summary: BacktestSummary,
}

/// `"buy"` / `"sell"`.
pub const fn side_as_str(side: Side) -> &'static str {
    match side {
        Side::Buy => "buy",
        Side::Sell => "sell",
    }
}

/// What the gateway must send to an external venue (see [`Trader::set_external`]).
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
    /// Amend the order to `price` and `qty` ordered (fills included).
    Amend {
        exchange: ExchangeId,
        instrument: InstrumentId,
        order_id: u64,
        side: Side,
        price: Price,
        qty: Qty,
    },
}

/// What happened, for the journal and the bus (see [`Trader::enable_event_log`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraderEvent {
    /// An order was sent or refused, or its status changed.
    Order(OrderRecord),
    Fill(FillRecord),
    /// An instrument's position after a fill.
    Position(PositionRecord),
    Risk(RiskEventRecord),
}
