//! Pre-trade risk: the checks every order passes before it leaves, in backtests and live alike,
//! and the account state machine ACTIVE -> REDUCING -> HALTED.
//!
//! [`RiskEngine::check`] runs the rules below in this order and returns the first that fails
//! (so a rejection names one [`RejectReason`]); an order that passes is counted as open (its
//! quantity on its side, one open order) until the engine reports it filled, cancelled,
//! expired or rejected by the venue ([`RiskEngine::on_fill`], [`RiskEngine::on_order_closed`]).
//! Cancels are never checked: they only ever reduce risk.
//!
//! 1. `Halted`: the state is HALTED (loss limit or kill switch).
//! 2. `UnknownInstrument`: no limits configured for the instrument.
//! 3. `InvalidQty` / `LotSize`: quantity not positive / not a multiple of the lot.
//! 4. `FeedStale`: no book update for the instrument yet, or none for more than
//!    `feed_stale_ms` of event time (the driver reports book updates only: trades flowing
//!    over a frozen book do not keep it fresh).
//! 5. `NoReferencePrice`: no mid price (book not synced or one-sided).
//! 6. `InvalidPrice` / `TickSize` / `PriceBand` (not for market orders): price not positive,
//!    not a multiple of the tick, or `|price - mid| * 10^4 > price_band_bps * mid`.
//! 7. `MaxOrderQty`, `MaxOrderNotional`, `MinNotional`: per-order size. A market order's
//!    notional is taken at the band's far edge, `mid * (1 + price_band_bps / 10^4)`.
//! 8. `ReduceOnly`: while REDUCING an order must reduce the position: its side opposite to the
//!    position and `open on that side + qty <= |position|`.
//! 9. `MaxPosition`: the position plus every open order on the order's side plus the order must
//!    stay within `max_position` (a buy is checked against `+max`, a sell against `-max`), so no
//!    combination of fills of accepted orders can take the position past the limit.
//!    `MaxPositionNotional`: the same worst case valued at the mid.
//!    `MaxAssetPosition`: the same worst case summed over every instrument of the order's
//!    base asset on every venue (`risk.assets.<asset>`: the instruments it lists, on any
//!    exchange of the engine) must stay within the asset's `max_position`.
//!    `MaxGrossExposure`: the other instruments' `|position| * mark` plus this instrument's
//!    worst case (either side fully filled) at the mid must stay within `max_gross_exposure`
//!    (only checked when the order increases that worst case).
//!    Quantities and limits are in the instrument's unit (contracts for a swap or futures);
//!    every notional is in the quote currency as [`crate::portfolio::ContractValue::notional`]
//!    values it (`price * multiplier * qty` for a linear contract, `multiplier * qty` for an
//!    inverse one), and an asset's position counts a linear contract's multiplier.
//! 10. `MaxOpenOrders`: open orders across instruments below `max_open_orders`.
//! 11. `RateLimit`: a token bucket on event time, `burst` tokens refilled at `per_second`;
//!     only an order that passes every other rule takes a token.
//!
//! # States
//!
//! [`RiskEngine::on_equity`] follows the account equity. `daily loss = equity at the first
//! observation of the UTC day - equity`, `drawdown = peak equity - equity`.
//! - ACTIVE -> REDUCING when either reaches `reducing_at_pct`% of its limit; REDUCING ->
//!   ACTIVE when both are back below (cause `Recovered`).
//! - -> HALTED when either reaches its limit (cause `DailyLoss` or `Drawdown`), or on
//!   [`RiskEngine::engage_kill_switch`] (cause `KillSwitch`; refused when the manifest
//!   disarms the kill switch). HALTED is sticky: a `DailyLoss` halt is lifted at the next UTC
//!   day (cause `NewDay`); a `Drawdown` or `KillSwitch` halt only by [`RiskEngine::resume`]
//!   (an operator's decision, cause `Resumed`). While HALTED no order passes, and the driver
//!   cancels every open order when `cancel_on_trigger` is set. A resume keeps the day's start
//!   equity and the peak: it is not a fresh loss budget, so a loss still beyond its limit halts
//!   again at the next equity update.

use crate::portfolio::{Cash, InstrumentId, InstrumentSpec, Portfolio};
use crate::strategy::{NewOrder, OrderKind};
use crate::types::{Nanos, Price, Qty, Side};

const NS_PER_SEC: i128 = 1_000_000_000;
const DAY_NS: Nanos = 86_400 * 1_000_000_000;

/// Why an order was refused: by the risk engine, by the engine itself or by the venue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectReason {
    Halted,
    UnknownInstrument,
    InvalidQty,
    LotSize,
    FeedStale,
    NoReferencePrice,
    InvalidPrice,
    TickSize,
    PriceBand,
    MaxOrderQty,
    MaxOrderNotional,
    MinNotional,
    ReduceOnly,
    MaxPosition,
    MaxPositionNotional,
    /// The position in the instrument's base asset summed over every venue
    /// (`risk.assets.<asset>.max_position`).
    MaxAssetPosition,
    MaxGrossExposure,
    MaxOpenOrders,
    RateLimit,
    /// Engine: the strategy reused the client id of one of its live orders.
    DuplicateClientId,
    /// Venue: a post-only order would have crossed the book.
    PostOnlyWouldCross,
    /// Venue: a market or IOC order found nothing to trade against.
    NoLiquidity,
    /// Venue (simulator): the book was not synced when the order arrived.
    BookUnavailable,
    /// Venue: refused for a reason of its own (its error code is in the engine's log).
    VenueRejected,
    /// Engine: an operator paused trading (only the engine's own flatten orders pass).
    Paused,
    /// Engine: the venue's request-weight or order-count limit would be exceeded, the venue
    /// asked us to back off (HTTP 429) or banned us (HTTP 418); refused before it is sent.
    /// Not the risk engine's own order-rate bucket ([`RejectReason::RateLimit`]).
    VenueRateLimit,
    /// An amendment of an order that cannot take one now: not resting at the venue (filled,
    /// cancelled, unknown), not acknowledged yet, with a cancel or another amendment in
    /// flight, an IOC or market order, or on a venue that does not amend.
    NotAmendable,
    /// Risk: the futures contract has expired (the venue delivers it): nothing is sent on it.
    Expired,
}

impl RejectReason {
    /// Every reason, in declaration order (`reason as usize` indexes this).
    pub const ALL: [RejectReason; 28] = [
        RejectReason::Halted,
        RejectReason::UnknownInstrument,
        RejectReason::InvalidQty,
        RejectReason::LotSize,
        RejectReason::FeedStale,
        RejectReason::NoReferencePrice,
        RejectReason::InvalidPrice,
        RejectReason::TickSize,
        RejectReason::PriceBand,
        RejectReason::MaxOrderQty,
        RejectReason::MaxOrderNotional,
        RejectReason::MinNotional,
        RejectReason::ReduceOnly,
        RejectReason::MaxPosition,
        RejectReason::MaxPositionNotional,
        RejectReason::MaxAssetPosition,
        RejectReason::MaxGrossExposure,
        RejectReason::MaxOpenOrders,
        RejectReason::RateLimit,
        RejectReason::DuplicateClientId,
        RejectReason::PostOnlyWouldCross,
        RejectReason::NoLiquidity,
        RejectReason::BookUnavailable,
        RejectReason::VenueRejected,
        RejectReason::Paused,
        RejectReason::VenueRateLimit,
        RejectReason::NotAmendable,
        RejectReason::Expired,
    ];
    pub const COUNT: usize = RejectReason::ALL.len();

    /// A stable snake_case code (events, records, metrics).
    pub const fn as_str(self) -> &'static str {
        match self {
            RejectReason::Halted => "halted",
            RejectReason::UnknownInstrument => "unknown_instrument",
            RejectReason::InvalidQty => "invalid_qty",
            RejectReason::LotSize => "lot_size",
            RejectReason::FeedStale => "feed_stale",
            RejectReason::NoReferencePrice => "no_reference_price",
            RejectReason::InvalidPrice => "invalid_price",
            RejectReason::TickSize => "tick_size",
            RejectReason::PriceBand => "price_band",
            RejectReason::MaxOrderQty => "max_order_qty",
            RejectReason::MaxOrderNotional => "max_order_notional",
            RejectReason::MinNotional => "min_notional",
            RejectReason::ReduceOnly => "reduce_only",
            RejectReason::MaxPosition => "max_position",
            RejectReason::MaxPositionNotional => "max_position_notional",
            RejectReason::MaxAssetPosition => "max_asset_position",
            RejectReason::MaxGrossExposure => "max_gross_exposure",
            RejectReason::MaxOpenOrders => "max_open_orders",
            RejectReason::RateLimit => "rate_limit",
            RejectReason::DuplicateClientId => "duplicate_client_id",
            RejectReason::PostOnlyWouldCross => "post_only_would_cross",
            RejectReason::NoLiquidity => "no_liquidity",
            RejectReason::BookUnavailable => "book_unavailable",
            RejectReason::VenueRejected => "venue_rejected",
            RejectReason::Paused => "paused",
            RejectReason::VenueRateLimit => "venue_rate_limit",
            RejectReason::NotAmendable => "not_amendable",
            RejectReason::Expired => "expired",
        }
    }

    /// True for the reasons the risk engine gives (the rest come from the engine or venue).
    pub const fn is_risk(self) -> bool {
        (self as usize) <= (RejectReason::RateLimit as usize)
            || matches!(self, RejectReason::Expired)
    }
}

impl std::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a run-time tightening was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TightenError {
    #[error("unknown risk limit {0:?}")]
    UnknownLimit(String),
    #[error("instrument id {0} has no risk limits")]
    UnknownInstrument(InstrumentId),
    #[error("{limit}: {value} is negative")]
    Negative { limit: String, value: i64 },
    #[error("{limit}: {value} would loosen the limit (now {current}); only tightening is allowed at run time")]
    WouldLoosen {
        limit: String,
        current: i64,
        value: i64,
    },
}

/// The account's trading state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RiskState {
    Active,
    /// Only orders that reduce a position pass.
    Reducing,
    /// No order passes.
    Halted,
}

impl RiskState {
    pub const fn as_str(self) -> &'static str {
        match self {
            RiskState::Active => "active",
            RiskState::Reducing => "reducing",
            RiskState::Halted => "halted",
        }
    }

    /// The inverse of [`RiskState::as_str`] (what the journal records).
    pub fn parse(s: &str) -> Option<RiskState> {
        [RiskState::Active, RiskState::Reducing, RiskState::Halted]
            .into_iter()
            .find(|x| x.as_str() == s)
    }
}

/// Why the state changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RiskCause {
    DailyLoss,
    Drawdown,
    KillSwitch,
    /// Losses fell back below the REDUCING threshold.
    Recovered,
    /// A new UTC day lifted a daily-loss halt.
    NewDay,
    /// An operator resumed trading.
    Resumed,
    /// The venue banned our IP (HTTP 418): order entry stops until an operator resumes.
    VenueBan,
    /// The venue's balances differ from what the engine expects (reconciliation): HALTED until
    /// an operator resumes.
    BalanceMismatch,
    /// A position sits on a book not updated for longer than `feed_stale_ms` (REDUCING) or
    /// `stale_exposure_halt_ms` (HALTED, until an operator resumes).
    StaleBook,
    /// A derivative position's mark came closer to its liquidation price than
    /// `min_liquidation_distance_bps`: HALTED until an operator resumes.
    LiquidationDistance,
}

impl RiskCause {
    pub const fn as_str(self) -> &'static str {
        match self {
            RiskCause::DailyLoss => "daily_loss",
            RiskCause::Drawdown => "drawdown",
            RiskCause::KillSwitch => "kill_switch",
            RiskCause::Recovered => "recovered",
            RiskCause::NewDay => "new_day",
            RiskCause::Resumed => "resumed",
            RiskCause::VenueBan => "venue_ban",
            RiskCause::BalanceMismatch => "balance_mismatch",
            RiskCause::StaleBook => "stale_book",
            RiskCause::LiquidationDistance => "liquidation_distance",
        }
    }

    pub const ALL: [RiskCause; 10] = [
        RiskCause::DailyLoss,
        RiskCause::Drawdown,
        RiskCause::KillSwitch,
        RiskCause::Recovered,
        RiskCause::NewDay,
        RiskCause::Resumed,
        RiskCause::VenueBan,
        RiskCause::BalanceMismatch,
        RiskCause::StaleBook,
        RiskCause::LiquidationDistance,
    ];

    /// The inverse of [`RiskCause::as_str`] (what the journal records).
    pub fn parse(s: &str) -> Option<RiskCause> {
        RiskCause::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// What the loss limits are measured from: the UTC day (days since the epoch), the equity at
/// its first observation, and the peak equity. A restarting engine restores them (with the
/// state) so that a restart neither forgets the day's losses nor lifts a halt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RiskAnchors {
    pub day: i64,
    pub day_start_equity: Cash,
    pub peak_equity: Cash,
}

/// The account state a restarting engine restores (see [`RiskEngine::restore`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RiskRestore {
    pub state: RiskState,
    /// Why it is HALTED (ignored for the other states).
    pub halt_cause: Option<RiskCause>,
    pub anchors: Option<RiskAnchors>,
}

/// A state change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RiskTransition {
    pub at: Nanos,
    pub from: RiskState,
    pub to: RiskState,
    pub cause: RiskCause,
}

/// Per-instrument limits (the manifest's `risk.instruments.<symbol>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InstrumentLimits {
    pub max_position: Qty,
    pub max_order_qty: Qty,
    pub max_order_notional: Cash,
    pub max_position_notional: Cash,
    pub price_band_bps: u32,
}

impl InstrumentLimits {
    pub fn from_manifest(limits: &rt_manifest::model::InstrumentLimits) -> InstrumentLimits {
        InstrumentLimits {
            max_position: Qty(limits.max_position.raw()),
            max_order_qty: Qty(limits.max_order_qty.raw()),
            max_order_notional: limits.max_order_notional.raw(),
            max_position_notional: limits.max_position_notional.raw(),
            price_band_bps: limits.price_band_bps,
        }
    }
}

/// An instrument as the risk engine sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InstrumentRisk {
    pub spec: InstrumentSpec,
    pub limits: InstrumentLimits,
}

/// The risk section of the manifest, in engine units, for the engine's instrument table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RiskConfig {
    /// `kill_switch.enabled`: false disarms [`RiskEngine::engage_kill_switch`].
    pub kill_switch_enabled: bool,
    pub cancel_on_trigger: bool,
    pub max_daily_loss: Cash,
    pub max_drawdown: Cash,
    pub max_gross_exposure: Cash,
    /// 1..=100.
    pub reducing_at_pct: u32,
    pub max_open_orders: u32,
    pub rate_per_second: u32,
    pub rate_burst: u32,
    pub feed_stale_ns: Nanos,
    /// A position on a book older than this halts (see [`RiskEngine::on_stale_exposure`]).
    pub stale_exposure_halt_ns: Nanos,
    /// Indexed by [`InstrumentId`]; `None`: no limits, every order refused.
    pub instruments: Vec<Option<InstrumentRisk>>,
    /// Limits on an asset's position summed over venues (`risk.assets`).
    pub assets: Vec<AssetRisk>,
    /// Indexed by [`InstrumentId`]: a futures contract's expiry (event time, ns since the
    /// epoch); missing or `None`: it never expires.
    pub expiries: Vec<Option<Nanos>>,
    /// This long before an expiry only orders reducing the contract's position pass, and none
    /// from the expiry on (`risk.reduce_only_before_expiry_ms`).
    pub reduce_only_before_expiry_ns: Nanos,
}

/// `risk.reduce_only_before_expiry_ms` when the manifest leaves it out: 10 minutes.
pub const DEFAULT_REDUCE_ONLY_BEFORE_EXPIRY_MS: u64 = 600_000;

/// One asset's limit across venues: the engine's instruments whose base asset it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssetRisk {
    pub name: String,
    pub max_position: Qty,
    pub instruments: Vec<InstrumentId>,
}

impl RiskConfig {
    /// `instruments[id]` = (symbol, spec) of the engine's instrument `id`; the limits are looked
    /// up by symbol (the manifest keys `risk.instruments` by symbol).
    pub fn from_manifest(
        risk: &rt_manifest::model::Risk,
        instruments: &[(&str, InstrumentSpec)],
    ) -> RiskConfig {
        RiskConfig {
            kill_switch_enabled: risk.kill_switch.enabled,
            cancel_on_trigger: risk.kill_switch.cancel_on_trigger,
            max_daily_loss: risk.max_daily_loss.raw(),
            max_drawdown: risk.max_drawdown.raw(),
            max_gross_exposure: risk.max_gross_exposure.raw(),
            reducing_at_pct: risk.reducing_at_pct,
            max_open_orders: risk.max_open_orders,
            rate_per_second: risk.order_rate.per_second,
            rate_burst: risk.order_rate.burst,
            feed_stale_ns: Nanos::try_from(risk.feed_stale_ms.saturating_mul(1_000_000))
                .unwrap_or(Nanos::MAX),
            stale_exposure_halt_ns: Nanos::try_from(
                risk.stale_exposure_halt_ms.saturating_mul(1_000_000),
            )
            .unwrap_or(Nanos::MAX),
            instruments: instruments
                .iter()
                .map(|(symbol, spec)| {
                    risk.instruments.get(*symbol).map(|l| InstrumentRisk {
                        spec: *spec,
                        limits: InstrumentLimits::from_manifest(l),
                    })
                })
                .collect(),
            // An asset counts every engine instrument (any exchange) named in its list.
            assets: risk
                .assets
                .iter()
                .flatten()
                .map(|(name, limits)| AssetRisk {
                    name: name.clone(),
                    max_position: Qty(limits.max_position.raw()),
                    instruments: instruments
                        .iter()
                        .enumerate()
                        .filter(|(_, (symbol, _))| limits.instruments.iter().any(|s| s == symbol))
                        .filter_map(|(id, _)| InstrumentId::try_from(id).ok())
                        .collect(),
                })
                .collect(),
            expiries: Vec::new(),
            reduce_only_before_expiry_ns: ms_to_ns(
                risk.reduce_only_before_expiry_ms
                    .unwrap_or(DEFAULT_REDUCE_ONLY_BEFORE_EXPIRY_MS),
            ),
        }
    }
}

/// Milliseconds as [`Nanos`], saturated.
pub fn ms_to_ns(ms: u64) -> Nanos {
    Nanos::try_from(ms.saturating_mul(1_000_000)).unwrap_or(Nanos::MAX)
}

/// Open quantity per side of one instrument.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Open {
    buy: i64,
    sell: i64,
}

/// The pre-trade risk engine. See the module documentation.
#[derive(Clone, Debug)]
pub struct RiskEngine {
    config: RiskConfig,
    state: RiskState,
    halt_cause: Option<RiskCause>,
    open: Vec<Open>,
    /// Indexed by [`InstrumentId`]: the index in `config.assets` of its asset, if limited.
    asset_of: Vec<Option<usize>>,
    open_orders: u32,
    last_market_data: Vec<Option<Nanos>>,
    /// Token bucket in 10^-9 tokens.
    tokens: i128,
    refilled_at: Option<Nanos>,
    day: Option<i64>,
    day_start_equity: Cash,
    peak_equity: Option<Cash>,
    max_drawdown_seen: Cash,
    /// What the loss limits alone last asked for (ACTIVE or REDUCING; HALTED is sticky).
    loss_state: RiskState,
    /// A position sits on a book stale beyond `feed_stale_ms`.
    stale_exposure: bool,
}

impl RiskEngine {
    pub fn new(config: RiskConfig) -> RiskEngine {
        let n = config.instruments.len();
        let tokens = i128::from(config.rate_burst) * NS_PER_SEC;
        let mut asset_of = vec![None; n];
        for (a, asset) in config.assets.iter().enumerate() {
            for &id in &asset.instruments {
                if let Some(slot) = asset_of.get_mut(id as usize) {
                    *slot = Some(a);
                }
            }
        }
        RiskEngine {
            config,
            state: RiskState::Active,
            halt_cause: None,
            open: vec![Open::default(); n],
            asset_of,
            open_orders: 0,
            last_market_data: vec![None; n],
            tokens,
            refilled_at: None,
            day: None,
            day_start_equity: 0,
            peak_equity: None,
            max_drawdown_seen: 0,
            loss_state: RiskState::Active,
            stale_exposure: false,
        }
    }

    pub fn config(&self) -> &RiskConfig {
        &self.config
    }

    #[inline]
    pub fn state(&self) -> RiskState {
        self.state
    }

    /// Why the state is HALTED, if it is.
    pub fn halt_cause(&self) -> Option<RiskCause> {
        self.halt_cause
    }

    pub fn cancel_on_trigger(&self) -> bool {
        self.config.cancel_on_trigger
    }

    pub fn open_orders(&self) -> u32 {
        self.open_orders
    }

    /// Open quantity of an instrument on one side.
    pub fn open_qty(&self, instrument: InstrumentId, side: Side) -> Qty {
        self.open.get(instrument as usize).map_or(Qty::ZERO, |o| {
            Qty(match side {
                Side::Buy => o.buy,
                Side::Sell => o.sell,
            })
        })
    }

    /// The largest drawdown seen so far.
    pub fn max_drawdown_seen(&self) -> Cash {
        self.max_drawdown_seen
    }

    /// When the book of `instrument` was last updated (what the staleness guard measures from).
    pub fn last_book_update(&self, instrument: InstrumentId) -> Option<Nanos> {
        self.last_market_data
            .get(instrument as usize)
            .copied()
            .flatten()
    }

    /// The book of `instrument` was updated at `now` (feeds the staleness guard).
    #[inline]
    pub fn on_market_data(&mut self, instrument: InstrumentId, now: Nanos) {
        if let Some(t) = self.last_market_data.get_mut(instrument as usize) {
            *t = Some(now);
        }
    }

    /// Checks an order at event time `now` against every rule; on success it counts as open.
    /// `reference` is the instrument's mid price.
    pub fn check(
        &mut self,
        now: Nanos,
        order: &NewOrder,
        reference: Option<Price>,
        portfolio: &Portfolio,
    ) -> Result<(), RejectReason> {
        self.evaluate(now, order, reference, portfolio)?;
        self.take_token(now)?;
        let open = &mut self.open[order.instrument as usize];
        match order.side {
            Side::Buy => open.buy = open.buy.saturating_add(order.qty.0),
            Side::Sell => open.sell = open.sell.saturating_add(order.qty.0),
        }
        self.open_orders += 1;
        Ok(())
    }

    /// An amendment of a live order, `order` carrying its new price and its new quantity left
    /// to fill: checked as if it were placed anew with the order's `old_leaves` released (so
    /// the order neither counts twice against the limits nor as another open order), its new
    /// quantity ordered (`total`, fills included) against the per-order limits too (an order
    /// amended up after each fill must not grow past `max_order_qty`), and it takes a token of
    /// the order rate as a new order does. On success the side's open
    /// quantity grows by what the amendment adds, and that is returned: a smaller amendment
    /// releases nothing until the venue confirms it, since the order may fill at its old size
    /// meanwhile ([`RiskEngine::release_open`]).
    pub fn check_amend(
        &mut self,
        now: Nanos,
        order: &NewOrder,
        total: Qty,
        old_leaves: Qty,
        reference: Option<Price>,
        portfolio: &Portfolio,
    ) -> Result<Qty, RejectReason> {
        let i = order.instrument as usize;
        if let Some(Some(instrument)) = self.config.instruments.get(i) {
            let limits = &instrument.limits;
            if total.0 > limits.max_order_qty.0 {
                return Err(RejectReason::MaxOrderQty);
            }
            let notional = instrument
                .spec
                .contract
                .notional_wide(i128::from(order.price.0), i128::from(total.0))
                / i128::from(crate::types::SCALE);
            if notional > i128::from(limits.max_order_notional) {
                return Err(RejectReason::MaxOrderNotional);
            }
        }
        let (saved, saved_orders) = (self.open.get(i).copied(), self.open_orders);
        self.on_fill(order.instrument, order.side, old_leaves);
        self.open_orders = self.open_orders.saturating_sub(1);
        let verdict = self.evaluate(now, order, reference, portfolio);
        if let (Some(o), Some(saved)) = (self.open.get_mut(i), saved) {
            *o = saved;
        }
        self.open_orders = saved_orders;
        verdict?;
        self.take_token(now)?;
        let extra = Qty((order.qty.0 - old_leaves.0).max(0));
        if let Some(o) = self.open.get_mut(i) {
            let slot = match order.side {
                Side::Buy => &mut o.buy,
                Side::Sell => &mut o.sell,
            };
            *slot = slot.saturating_add(extra.0);
        }
        Ok(extra)
    }

    /// Releases `qty` of a side's open quantity that no order will fill: what an amendment
    /// reserved ([`RiskEngine::check_amend`]) once the venue confirmed or refused it.
    pub fn release_open(&mut self, instrument: InstrumentId, side: Side, qty: Qty) {
        self.on_fill(instrument, side, qty);
    }

    /// A futures contract's expiry (ns), if `instrument` is one.
    pub fn expiry(&self, instrument: InstrumentId) -> Option<Nanos> {
        self.config
            .expiries
            .get(instrument as usize)
            .copied()
            .flatten()
    }

    /// Whether only orders reducing `instrument`'s position pass at `now`: the engine is
    /// REDUCING, or a futures contract is within `reduce_only_before_expiry` of its expiry
    /// (past it nothing passes). The venue is asked to enforce it too (`reduceOnly`).
    pub fn reduce_only_at(&self, now: Nanos, instrument: InstrumentId) -> bool {
        self.state != RiskState::Active
            || self
                .expiry(instrument)
                .is_some_and(|e| now >= e.saturating_sub(self.config.reduce_only_before_expiry_ns))
    }

    fn evaluate(
        &self,
        now: Nanos,
        order: &NewOrder,
        reference: Option<Price>,
        portfolio: &Portfolio,
    ) -> Result<(), RejectReason> {
        if self.state == RiskState::Halted {
            return Err(RejectReason::Halted);
        }
        let i = order.instrument as usize;
        let Some(Some(instrument)) = self.config.instruments.get(i) else {
            return Err(RejectReason::UnknownInstrument);
        };
        if self.expiry(order.instrument).is_some_and(|e| now >= e) {
            return Err(RejectReason::Expired);
        }
        let (spec, limits) = (&instrument.spec, &instrument.limits);
        let qty = order.qty.0;
        if qty <= 0 {
            return Err(RejectReason::InvalidQty);
        }
        if !order.qty.is_multiple_of(spec.lot) {
            return Err(RejectReason::LotSize);
        }
        match self.last_market_data[i] {
            Some(t) if now.saturating_sub(t) <= self.config.feed_stale_ns => {}
            _ => return Err(RejectReason::FeedStale),
        }
        let Some(reference) = reference.filter(|r| r.0 > 0) else {
            return Err(RejectReason::NoReferencePrice);
        };
        let r = i128::from(reference.0);
        let band = i128::from(limits.price_band_bps);
        let price = if order.kind == OrderKind::Market {
            // The worst price the band admits.
            r + r * band / 10_000
        } else {
            if order.price.0 <= 0 {
                return Err(RejectReason::InvalidPrice);
            }
            if !order.price.is_multiple_of(spec.tick) {
                return Err(RejectReason::TickSize);
            }
            let p = i128::from(order.price.0);
            if (p - r).abs() * 10_000 > band * r {
                return Err(RejectReason::PriceBand);
            }
            p
        };
        if qty > limits.max_order_qty.0 {
            return Err(RejectReason::MaxOrderQty);
        }
        let scale = i128::from(crate::types::SCALE);
        let contract = spec.contract;
        let notional = contract.notional_wide(price, i128::from(qty)) / scale;
        if notional > i128::from(limits.max_order_notional) {
            return Err(RejectReason::MaxOrderNotional);
        }
        if notional < i128::from(spec.min_notional) {
            return Err(RejectReason::MinNotional);
        }

        let pos = i128::from(portfolio.qty(order.instrument).0);
        let open = self.open[i];
        let (open_buy, open_sell) = (i128::from(open.buy), i128::from(open.sell));
        let q = i128::from(qty);
        if self.reduce_only_at(now, order.instrument) {
            let reduces = match order.side {
                Side::Buy => pos < 0 && open_buy + q <= -pos,
                Side::Sell => pos > 0 && open_sell + q <= pos,
            };
            if !reduces {
                return Err(RejectReason::ReduceOnly);
            }
        }
        // Worst-case positions if every open order of a side (and this one) fills.
        let (high, low) = match order.side {
            Side::Buy => (pos + open_buy + q, pos - open_sell),
            Side::Sell => (pos + open_buy, pos - open_sell - q),
        };
        let max_pos = i128::from(limits.max_position.0);
        let worst = match order.side {
            Side::Buy => high,
            Side::Sell => -low,
        };
        if worst > max_pos {
            return Err(RejectReason::MaxPosition);
        }
        if worst > 0
            && contract.notional_wide(r, worst) / scale > i128::from(limits.max_position_notional)
        {
            return Err(RejectReason::MaxPositionNotional);
        }
        if let Some(asset) = self.asset_of[i].and_then(|a| self.config.assets.get(a)) {
            // The same worst case over every venue's instrument of the asset.
            // In units of the base asset: a linear contract counts its multiplier (the
            // manifest keeps inverse contracts, which have no fixed base quantity, out).
            let base = |j: InstrumentId, qty: i128| {
                let c = self.config.instruments.get(j as usize).copied().flatten();
                c.and_then(|c| c.spec.contract.base_qty(qty)).unwrap_or(qty)
            };
            let (mut high, mut low) = (0i128, 0i128);
            for &j in &asset.instruments {
                let p = i128::from(portfolio.qty(j).0);
                let o = self.open.get(j as usize).copied().unwrap_or_default();
                high += base(j, p + i128::from(o.buy));
                low += base(j, p - i128::from(o.sell));
            }
            let q_base = contract.base_qty(q).unwrap_or(q);
            let worst = match order.side {
                Side::Buy => high + q_base,
                Side::Sell => -(low - q_base),
            };
            if worst > i128::from(asset.max_position.0) {
                return Err(RejectReason::MaxAssetPosition);
            }
        }
        let before = (pos + open_buy).abs().max((pos - open_sell).abs());
        let after = high.abs().max(low.abs());
        if after > before {
            let others: i128 = portfolio
                .positions()
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != i)
                .map(|(_, p)| p.exposure_wide())
                .sum();
            if (others + contract.notional_wide(r, after)) / scale
                > i128::from(self.config.max_gross_exposure)
            {
                return Err(RejectReason::MaxGrossExposure);
            }
        }
        if self.open_orders >= self.config.max_open_orders {
            return Err(RejectReason::MaxOpenOrders);
        }
        Ok(())
    }

    fn take_token(&mut self, now: Nanos) -> Result<(), RejectReason> {
        let cap = i128::from(self.config.rate_burst) * NS_PER_SEC;
        if let Some(t) = self.refilled_at {
            if now > t {
                let elapsed = i128::from(now) - i128::from(t);
                self.tokens =
                    (self.tokens + elapsed * i128::from(self.config.rate_per_second)).min(cap);
            }
        }
        match self.refilled_at {
            Some(t) if t >= now => {}
            _ => self.refilled_at = Some(now),
        }
        if self.tokens < NS_PER_SEC {
            return Err(RejectReason::RateLimit);
        }
        self.tokens -= NS_PER_SEC;
        Ok(())
    }

    /// An open order executed `qty`.
    pub fn on_fill(&mut self, instrument: InstrumentId, side: Side, qty: Qty) {
        if let Some(o) = self.open.get_mut(instrument as usize) {
            let slot = match side {
                Side::Buy => &mut o.buy,
                Side::Sell => &mut o.sell,
            };
            *slot = slot.saturating_sub(qty.0).max(0);
        }
    }

    /// An open order reached a final state (filled, cancelled, expired, rejected by the venue)
    /// with `leaves` unfilled.
    pub fn on_order_closed(&mut self, instrument: InstrumentId, side: Side, leaves: Qty) {
        self.on_fill(instrument, side, leaves);
        self.open_orders = self.open_orders.saturating_sub(1);
    }

    /// Follows the account equity at event time `now`; returns the state change, if any.
    pub fn on_equity(&mut self, now: Nanos, equity: Cash) -> Option<RiskTransition> {
        let day = now.div_euclid(DAY_NS);
        let mut new_day = false;
        if self.day != Some(day) {
            new_day = self.day.is_some();
            self.day = Some(day);
            self.day_start_equity = equity;
        }
        let peak = self.peak_equity.map_or(equity, |p| p.max(equity));
        self.peak_equity = Some(peak);
        let daily_loss = i128::from(self.day_start_equity) - i128::from(equity);
        let drawdown = i128::from(peak) - i128::from(equity);
        self.max_drawdown_seen = self
            .max_drawdown_seen
            .max(i64::try_from(drawdown).unwrap_or(i64::MAX));

        let (max_loss, max_dd) = (
            i128::from(self.config.max_daily_loss),
            i128::from(self.config.max_drawdown),
        );
        let pct = i128::from(self.config.reducing_at_pct);
        let (target, cause) = if daily_loss >= max_loss {
            (RiskState::Halted, RiskCause::DailyLoss)
        } else if drawdown >= max_dd {
            (RiskState::Halted, RiskCause::Drawdown)
        } else if daily_loss * 100 >= pct * max_loss {
            (RiskState::Reducing, RiskCause::DailyLoss)
        } else if drawdown * 100 >= pct * max_dd {
            (RiskState::Reducing, RiskCause::Drawdown)
        } else {
            (RiskState::Active, RiskCause::Recovered)
        };
        if target != RiskState::Halted {
            self.loss_state = target;
        }
        // Exposure on a stale book keeps the state REDUCING whatever the losses say.
        let (target, cause) = if target == RiskState::Active && self.stale_exposure {
            (RiskState::Reducing, RiskCause::StaleBook)
        } else {
            (target, cause)
        };
        if self.state == RiskState::Halted {
            if !(new_day && self.halt_cause == Some(RiskCause::DailyLoss))
                || target == RiskState::Halted
            {
                return None;
            }
            self.halt_cause = None;
            let cause = if target == RiskState::Active {
                RiskCause::NewDay
            } else {
                cause
            };
            return self.set_state(now, target, cause);
        }
        if target == self.state {
            return None;
        }
        if target == RiskState::Halted {
            self.halt_cause = Some(cause);
        }
        self.set_state(now, target, cause)
    }

    fn set_state(&mut self, now: Nanos, to: RiskState, cause: RiskCause) -> Option<RiskTransition> {
        let from = self.state;
        if from == to {
            return None;
        }
        self.state = to;
        Some(RiskTransition {
            at: now,
            from,
            to,
            cause,
        })
    }

    /// Engages the kill switch: HALTED until [`RiskEngine::resume`]. Returns `None` (and does
    /// nothing) when the manifest disarms the kill switch or the state is HALTED already (the
    /// cause becomes `KillSwitch` either way when armed).
    pub fn engage_kill_switch(&mut self, now: Nanos) -> Option<RiskTransition> {
        if !self.config.kill_switch_enabled {
            return None;
        }
        self.halt_cause = Some(RiskCause::KillSwitch);
        self.set_state(now, RiskState::Halted, RiskCause::KillSwitch)
    }

    /// HALTED for a reason outside the risk engine (the venue banned us, `VenueBan`): like the
    /// kill switch but whatever the manifest says of it, lifted only by
    /// [`RiskEngine::resume`]. `None` when HALTED already (the cause is kept).
    pub fn halt(&mut self, now: Nanos, cause: RiskCause) -> Option<RiskTransition> {
        if self.state == RiskState::Halted {
            return None;
        }
        self.halt_cause = Some(cause);
        self.set_state(now, RiskState::Halted, cause)
    }

    /// Follows the age of the oldest book that carries a position (`None`: no position, or
    /// every such book fresh), at event time `now`. Beyond `feed_stale_ms` the state goes
    /// ACTIVE -> REDUCING (only orders that reduce a position pass); beyond
    /// `stale_exposure_halt_ms` it goes HALTED (cause `StaleBook`, lifted only by
    /// [`RiskEngine::resume`]). Once the books are fresh again REDUCING returns to ACTIVE only
    /// if the loss limits allow it (cause `Recovered`), as after a loss.
    pub fn on_stale_exposure(&mut self, now: Nanos, age: Option<Nanos>) -> Option<RiskTransition> {
        let age = age.unwrap_or(0);
        if age > self.config.stale_exposure_halt_ns {
            self.stale_exposure = true;
            if self.state == RiskState::Halted {
                return None;
            }
            self.halt_cause = Some(RiskCause::StaleBook);
            return self.set_state(now, RiskState::Halted, RiskCause::StaleBook);
        }
        self.stale_exposure = age > self.config.feed_stale_ns;
        match self.state {
            RiskState::Active if self.stale_exposure => {
                self.set_state(now, RiskState::Reducing, RiskCause::StaleBook)
            }
            RiskState::Reducing if !self.stale_exposure && self.loss_state == RiskState::Active => {
                self.set_state(now, RiskState::Active, RiskCause::Recovered)
            }
            _ => None,
        }
    }

    /// Tightens one limit at run time (an operator's control command). `limit` names a field
    /// of the manifest's risk section (`max_open_orders`, `max_gross_exposure`,
    /// `max_daily_loss`, `max_drawdown`) or an instrument's (`max_position`, `max_order_qty`,
    /// `max_order_notional`, `max_position_notional`, `price_band_bps`) with `instrument` set;
    /// `value` is in engine units (fixed point for quantities and money). A value that would
    /// loosen the limit is refused: loosening goes through a reviewed config change.
    pub fn tighten(
        &mut self,
        instrument: Option<InstrumentId>,
        limit: &str,
        value: i64,
    ) -> Result<(), TightenError> {
        if value < 0 {
            return Err(TightenError::Negative {
                limit: limit.to_owned(),
                value,
            });
        }
        enum Target<'a> {
            Wide(&'a mut i64),
            Narrow(&'a mut u32),
        }
        let target = match instrument {
            None => match limit {
                "max_open_orders" => Target::Narrow(&mut self.config.max_open_orders),
                "max_gross_exposure" => Target::Wide(&mut self.config.max_gross_exposure),
                "max_daily_loss" => Target::Wide(&mut self.config.max_daily_loss),
                "max_drawdown" => Target::Wide(&mut self.config.max_drawdown),
                _ => return Err(TightenError::UnknownLimit(limit.to_owned())),
            },
            Some(id) => {
                let Some(Some(risk)) = self.config.instruments.get_mut(id as usize) else {
                    return Err(TightenError::UnknownInstrument(id));
                };
                let l = &mut risk.limits;
                match limit {
                    "max_position" => Target::Wide(&mut l.max_position.0),
                    "max_order_qty" => Target::Wide(&mut l.max_order_qty.0),
                    "max_order_notional" => Target::Wide(&mut l.max_order_notional),
                    "max_position_notional" => Target::Wide(&mut l.max_position_notional),
                    "price_band_bps" => Target::Narrow(&mut l.price_band_bps),
                    _ => return Err(TightenError::UnknownLimit(limit.to_owned())),
                }
            }
        };
        let current = match &target {
            Target::Wide(v) => **v,
            Target::Narrow(v) => i64::from(**v),
        };
        if value > current {
            return Err(TightenError::WouldLoosen {
                limit: limit.to_owned(),
                current,
                value,
            });
        }
        match target {
            Target::Wide(v) => *v = value,
            // value <= current, which fits a u32.
            Target::Narrow(v) => *v = u32::try_from(value).unwrap_or(*v),
        }
        Ok(())
    }

    /// [`tighten`](Self::tighten) of one instrument limit on every instrument of
    /// `instruments`, all or none: each is checked and tightened, and a refusal of any one
    /// leaves every limit as it was (the manifest's `risk.instruments.<symbol>` is one limit
    /// for that symbol on every venue of the engine).
    pub fn tighten_all(
        &mut self,
        instruments: &[InstrumentId],
        limit: &str,
        value: i64,
    ) -> Result<(), TightenError> {
        let saved = self.config.clone();
        for &id in instruments {
            if let Err(e) = self.tighten(Some(id), limit, value) {
                self.config = saved;
                return Err(e);
            }
        }
        Ok(())
    }

    /// Tightens an asset's limit across venues (`risk.assets.<asset>.max_position`, the only
    /// limit an asset has), by its index in [`RiskConfig::assets`]; a value that would loosen
    /// it is refused.
    pub fn tighten_asset(&mut self, asset: usize, value: i64) -> Result<(), TightenError> {
        let limit = || format!("assets.{asset}.max_position");
        let Some(a) = self.config.assets.get_mut(asset) else {
            return Err(TightenError::UnknownLimit(limit()));
        };
        if value < 0 {
            return Err(TightenError::Negative {
                limit: format!("assets.{}.max_position", a.name),
                value,
            });
        }
        if value > a.max_position.0 {
            return Err(TightenError::WouldLoosen {
                limit: format!("assets.{}.max_position", a.name),
                current: a.max_position.0,
                value,
            });
        }
        a.max_position = Qty(value);
        Ok(())
    }

    /// The loss limits' reference points, once equity has been observed.
    pub fn anchors(&self) -> Option<RiskAnchors> {
        Some(RiskAnchors {
            day: self.day?,
            day_start_equity: self.day_start_equity,
            peak_equity: self.peak_equity?,
        })
    }

    /// Restores the state and the anchors a previous run of the engine recorded, before any
    /// equity is observed. The next [`RiskEngine::on_equity`] then measures the day's loss from
    /// the recorded start of the day (a new UTC day starts afresh and lifts a daily-loss halt,
    /// as it would have without the restart) and the drawdown from the recorded peak. A halt
    /// without a recorded cause is kept until an operator resumes.
    pub fn restore(&mut self, r: RiskRestore) {
        self.state = r.state;
        self.halt_cause = match r.state {
            RiskState::Halted => Some(r.halt_cause.unwrap_or(RiskCause::KillSwitch)),
            _ => None,
        };
        if let Some(a) = r.anchors {
            self.day = Some(a.day);
            self.day_start_equity = a.day_start_equity;
            self.peak_equity = Some(a.peak_equity);
        }
    }

    /// An operator lifts a halt: back to ACTIVE. The day's start equity and the peak are kept
    /// (the next [`RiskEngine::on_equity`] measures losses from them, as before the halt): a
    /// resume the same day is not a fresh loss budget.
    pub fn resume(&mut self, now: Nanos, equity: Cash) -> Option<RiskTransition> {
        self.halt_cause = None;
        if self.peak_equity.is_none() {
            self.peak_equity = Some(equity);
        }
        self.set_state(now, RiskState::Active, RiskCause::Resumed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::SCALE;

    fn px(s: &str) -> Price {
        Price::parse(s.as_bytes()).expect("a price")
    }

    fn q(s: &str) -> Qty {
        match s.strip_prefix('-') {
            Some(abs) => -Qty::parse(abs.as_bytes()).expect("a qty"),
            None => Qty::parse(s.as_bytes()).expect("a qty"),
        }
    }

    const ONE: Cash = SCALE;

    fn config() -> RiskConfig {
        let spec = InstrumentSpec {
            tick: px("0.01"),
            lot: q("0.001"),
            min_notional: 5 * ONE,
            maker_fee_bps: 0,
            taker_fee_bps: 0,
            contract: crate::portfolio::ContractValue::Unit,
        };
        let limits = InstrumentLimits {
            max_position: q("0.1"),
            max_order_qty: q("0.05"),
            max_order_notional: 5_000 * ONE,
            max_position_notional: 8_000 * ONE,
            price_band_bps: 50,
        };
        RiskConfig {
            kill_switch_enabled: true,
            cancel_on_trigger: true,
            max_daily_loss: 1_000 * ONE,
            max_drawdown: 2_000 * ONE,
            max_gross_exposure: 12_000 * ONE,
            reducing_at_pct: 80,
            max_open_orders: 3,
            rate_per_second: 2,
            rate_burst: 4,
            feed_stale_ns: 1_000_000_000,
            stale_exposure_halt_ns: 3_000_000_000,
            instruments: vec![
                Some(InstrumentRisk { spec, limits }),
                Some(InstrumentRisk { spec, limits }),
                None,
            ],
            assets: Vec::new(),
            expiries: Vec::new(),
            reduce_only_before_expiry_ns: 0,
        }
    }

    #[test]
    fn a_future_takes_only_reducing_orders_in_its_window_and_none_from_its_expiry() {
        const EXPIRY: Nanos = 10_000_000_000;
        let mut c = config();
        c.expiries = vec![Some(EXPIRY)];
        c.reduce_only_before_expiry_ns = 2_000_000_000;
        let mut r = RiskEngine::new(c);
        let mut p = Portfolio::new(3);
        let buy = order(Side::Buy, "100000", "0.01");
        let sell = order(Side::Sell, "100000", "0.01");
        let at = |r: &mut RiskEngine, t: Nanos| {
            r.on_market_data(0, t);
            r.on_market_data(1, t);
        };
        // Before the window: either way.
        at(&mut r, 7_000_000_000);
        assert!(!r.reduce_only_at(7_999_999_999, 0));
        assert_eq!(r.evaluate(7_999_999_999, &buy, MID, &p), Ok(()));
        // In the window: flat, nothing reduces; long, a sell does and a buy does not.
        assert!(r.reduce_only_at(8_000_000_000, 0));
        assert_eq!(
            r.evaluate(8_000_000_000, &buy, MID, &p),
            Err(RejectReason::ReduceOnly)
        );
        p.on_fill(0, Side::Buy, px("100000"), q("0.02"), 0);
        at(&mut r, 9_000_000_000);
        assert_eq!(r.evaluate(9_000_000_000, &sell, MID, &p), Ok(()));
        assert_eq!(
            r.evaluate(9_000_000_000, &buy, MID, &p),
            Err(RejectReason::ReduceOnly)
        );
        // Another instrument is not in any window.
        let mut other = buy;
        other.instrument = 1;
        assert_eq!(r.evaluate(9_000_000_000, &other, MID, &p), Ok(()));
        assert!(!r.reduce_only_at(9_000_000_000, 1));
        // From the expiry on: nothing, not even a reducing order.
        at(&mut r, EXPIRY);
        assert_eq!(
            r.evaluate(EXPIRY, &sell, MID, &p),
            Err(RejectReason::Expired)
        );
        assert_eq!(
            r.check(EXPIRY + 1, &sell, MID, &p),
            Err(RejectReason::Expired)
        );
        assert!(RejectReason::Expired.is_risk());
        assert_eq!(
            RejectReason::ALL[RejectReason::Expired as usize],
            RejectReason::Expired
        );
    }

    fn order(side: Side, price: &str, qty: &str) -> NewOrder {
        NewOrder {
            client_id: 1,
            instrument: 0,
            side,
            price: px(price),
            qty: q(qty),
            kind: OrderKind::Limit,
        }
    }

    const MID: Option<Price> = Some(Price(100_000 * SCALE));

    fn engine() -> RiskEngine {
        let mut r = RiskEngine::new(config());
        r.on_market_data(0, 0);
        r.on_market_data(1, 0);
        r
    }

    /// Instrument 0 as a contract of `contract`, sized in whole contracts.
    fn contract_engine(contract: crate::portfolio::ContractValue) -> RiskEngine {
        let mut r = RiskEngine::new(contract_config(contract));
        r.on_market_data(0, 0);
        r
    }

    /// [`config`] with instrument 0 a contract of `contract`, sized in whole contracts.
    fn contract_config(contract: crate::portfolio::ContractValue) -> RiskConfig {
        let mut c = config();
        if let Some(i) = c.instruments[0].as_mut() {
            i.spec.contract = contract;
            i.spec.lot = q("1");
            i.limits.max_order_qty = q("1000");
            i.limits.max_position = q("1000");
        }
        c
    }

    #[test]
    fn a_symbols_limit_is_tightened_on_every_venue_or_on_none() {
        let mut r = engine();
        // Instruments 0 and 1 (one symbol on two venues): 0.1 each.
        assert_eq!(r.tighten_all(&[0, 1], "max_position", q("0.05").0), Ok(()));
        for i in [0, 1] {
            assert_eq!(
                r.config().instruments[i].map(|x| x.limits.max_position),
                Some(q("0.05"))
            );
        }
        // Instrument 1 tighter already: loosening it is refused, and 0 is left as it was.
        assert_eq!(r.tighten(Some(1), "max_position", q("0.01").0), Ok(()));
        assert!(matches!(
            r.tighten_all(&[0, 1], "max_position", q("0.02").0),
            Err(TightenError::WouldLoosen { .. })
        ));
        assert_eq!(
            r.config().instruments[0].map(|x| x.limits.max_position),
            Some(q("0.05"))
        );
    }

    #[test]
    fn an_assets_limit_is_tightened_never_loosened() {
        let mut c = config();
        c.assets = vec![AssetRisk {
            name: "BTC".to_owned(),
            max_position: q("0.05"),
            instruments: vec![0, 1],
        }];
        let mut r = RiskEngine::new(c);
        r.on_market_data(0, 0);
        let pf = Portfolio::new(3);
        assert_eq!(r.tighten_asset(0, q("0.02").0), Ok(()));
        assert_eq!(r.config().assets[0].max_position, q("0.02"));
        assert_eq!(
            r.evaluate(0, &order(Side::Buy, "100000", "0.03"), MID, &pf),
            Err(RejectReason::MaxAssetPosition)
        );
        assert!(matches!(
            r.tighten_asset(0, q("0.03").0),
            Err(TightenError::WouldLoosen { .. })
        ));
        assert!(matches!(
            r.tighten_asset(0, -1),
            Err(TightenError::Negative { .. })
        ));
        assert!(matches!(
            r.tighten_asset(1, 0),
            Err(TightenError::UnknownLimit(_))
        ));
    }

    #[test]
    fn a_contracts_notional_counts_its_multiplier() {
        use crate::portfolio::ContractValue;
        let pf = Portfolio::new(3);
        // Linear on 0.01 BTC: one contract at 100000 is 1000 USDT.
        let r = contract_engine(ContractValue::Linear {
            multiplier: ONE / 100,
        });
        let check = |o: NewOrder| r.evaluate(0, &o, MID, &pf);
        assert_eq!(check(order(Side::Buy, "100000", "5")), Ok(()));
        assert_eq!(
            check(order(Side::Buy, "100000", "6")),
            Err(RejectReason::MaxOrderNotional)
        );
        // Inverse of 100 USD: a contract is 100 USD at any price.
        let r = contract_engine(ContractValue::Inverse {
            multiplier: 100 * ONE,
        });
        let check = |o: NewOrder| r.evaluate(0, &o, MID, &pf);
        assert_eq!(check(order(Side::Buy, "100000", "50")), Ok(()));
        assert_eq!(
            check(order(Side::Buy, "100000", "51")),
            Err(RejectReason::MaxOrderNotional)
        );
        // 8000 USD of position notional is 80 contracts: long 60, 20 more is on the limit.
        let mut long = Portfolio::new(3);
        long.on_fill(0, Side::Buy, px("100000"), q("60"), 0);
        assert_eq!(
            r.evaluate(0, &order(Side::Buy, "100000", "20"), MID, &long),
            Ok(())
        );
        assert_eq!(
            r.evaluate(0, &order(Side::Buy, "100000", "21"), MID, &long),
            Err(RejectReason::MaxPositionNotional)
        );
        // A linear contract's asset position counts the BTC it is on.
        let mut c = contract_config(ContractValue::Linear {
            multiplier: ONE / 100,
        });
        if let Some(i) = c.instruments[0].as_mut() {
            i.limits.max_order_notional = 1_000_000 * ONE;
            i.limits.max_position_notional = 1_000_000 * ONE;
        }
        c.max_gross_exposure = 1_000_000 * ONE;
        c.assets = vec![AssetRisk {
            name: "BTC".to_owned(),
            max_position: q("0.05"),
            instruments: vec![0, 1],
        }];
        let mut r = RiskEngine::new(c);
        r.on_market_data(0, 0);
        // 5 contracts = 0.05 BTC: on the limit; 6 = 0.06 past it.
        assert_eq!(
            r.evaluate(0, &order(Side::Buy, "100000", "5"), MID, &pf),
            Ok(())
        );
        assert_eq!(
            r.evaluate(0, &order(Side::Buy, "100000", "6"), MID, &pf),
            Err(RejectReason::MaxAssetPosition)
        );
    }

    #[test]
    fn per_order_rules() {
        let r = engine();
        let pf = Portfolio::new(3);
        let check = |o: NewOrder, reference: Option<Price>| r.evaluate(0, &o, reference, &pf);
        assert_eq!(check(order(Side::Buy, "100000", "0.01"), MID), Ok(()));
        let mut unknown = order(Side::Buy, "100000", "0.01");
        unknown.instrument = 2;
        assert_eq!(check(unknown, MID), Err(RejectReason::UnknownInstrument));
        unknown.instrument = 9;
        assert_eq!(check(unknown, MID), Err(RejectReason::UnknownInstrument));
        assert_eq!(
            check(order(Side::Buy, "100000", "0"), MID),
            Err(RejectReason::InvalidQty)
        );
        assert_eq!(
            check(order(Side::Buy, "100000", "0.0105"), MID),
            Err(RejectReason::LotSize)
        );
        assert_eq!(
            check(order(Side::Buy, "100000", "0.01"), None),
            Err(RejectReason::NoReferencePrice)
        );
        assert_eq!(
            check(order(Side::Buy, "0", "0.01"), MID),
            Err(RejectReason::InvalidPrice)
        );
        assert_eq!(
            check(order(Side::Buy, "100000.005", "0.01"), MID),
            Err(RejectReason::TickSize)
        );
        // 50 bps of 100000 = 500: 100500 is on the edge, 100500.01 past it.
        assert_eq!(check(order(Side::Buy, "100500", "0.01"), MID), Ok(()));
        assert_eq!(check(order(Side::Sell, "99500", "0.01"), MID), Ok(()));
        assert_eq!(
            check(order(Side::Buy, "100500.01", "0.01"), MID),
            Err(RejectReason::PriceBand)
        );
        assert_eq!(
            check(order(Side::Sell, "99499.99", "0.01"), MID),
            Err(RejectReason::PriceBand)
        );
        assert_eq!(
            check(order(Side::Buy, "100000", "0.051"), MID),
            Err(RejectReason::MaxOrderQty)
        );
        // 0.05 * 100000 = 5000 is the notional limit; 0.05 at 100000.01 exceeds it.
        assert_eq!(check(order(Side::Buy, "100000", "0.05"), MID), Ok(()));
        assert_eq!(
            check(order(Side::Buy, "100000.01", "0.05"), MID),
            Err(RejectReason::MaxOrderNotional)
        );
        // 5 USDT is the min notional; 4.99 is below.
        assert_eq!(
            check(order(Side::Buy, "5000", "0.001"), Some(px("5000"))),
            Ok(())
        );
        assert_eq!(
            check(order(Side::Buy, "4990", "0.001"), Some(px("4990"))),
            Err(RejectReason::MinNotional)
        );
        // A market order is valued at the band edge: 0.05 * 100500 > 5000.
        let mut market = order(Side::Buy, "0", "0.049");
        market.kind = OrderKind::Market;
        assert_eq!(check(market, MID), Ok(()));
        market.qty = q("0.05");
        assert_eq!(check(market, MID), Err(RejectReason::MaxOrderNotional));
    }

    #[test]
    fn an_asset_limit_sums_the_positions_of_every_venue() {
        // Instruments 0 and 1: the same asset on two venues, each within its own 0.1 limit;
        // together they may hold 0.12.
        let mut config = config();
        config.max_open_orders = 100;
        config.rate_burst = 100;
        config.max_gross_exposure = 1_000_000 * ONE;
        for i in config.instruments.iter_mut().flatten() {
            i.limits.max_position_notional = 1_000_000 * ONE;
        }
        config.assets = vec![AssetRisk {
            name: "BTC".into(),
            max_position: q("0.12"),
            instruments: vec![0, 1],
        }];
        let mut r = RiskEngine::new(config);
        r.on_market_data(0, 0);
        r.on_market_data(1, 0);
        r.tokens = 100 * NS_PER_SEC;
        let mut pf = Portfolio::new(3);
        pf.on_fill(0, Side::Buy, px("100000"), q("0.08"), 0);
        let on = |instrument: InstrumentId, side: Side, qty: &str| {
            let mut o = order(side, "100000", qty);
            o.instrument = instrument;
            o
        };
        // Venue 1 alone is flat: 0.05 is within its 0.1, but 0.08 + 0.05 exceeds the asset's.
        assert_eq!(
            r.evaluate(0, &on(1, Side::Buy, "0.05"), MID, &pf),
            Err(RejectReason::MaxAssetPosition)
        );
        assert_eq!(r.evaluate(0, &on(1, Side::Buy, "0.04"), MID, &pf), Ok(()));
        // Open orders of the side count as filled: 0.02 open on venue 0 leaves 0.02 on venue 1.
        assert_eq!(r.check(0, &on(0, Side::Buy, "0.02"), MID, &pf), Ok(()));
        assert_eq!(
            r.evaluate(0, &on(1, Side::Buy, "0.03"), MID, &pf),
            Err(RejectReason::MaxAssetPosition)
        );
        assert_eq!(r.evaluate(0, &on(1, Side::Buy, "0.02"), MID, &pf), Ok(()));
        // A sell on venue 1 reduces the sum.
        assert_eq!(r.evaluate(0, &on(1, Side::Sell, "0.05"), MID, &pf), Ok(()));
        pf.on_fill(1, Side::Sell, px("100000"), q("0.1"), 0);
        // Net -0.02 now (0.08 on venue 0, -0.1 on venue 1): selling 0.05 more is -0.07.
        assert_eq!(r.evaluate(0, &on(0, Side::Sell, "0.05"), MID, &pf), Ok(()));
        assert_eq!(
            r.evaluate(0, &on(1, Side::Sell, "0.05"), MID, &pf),
            Err(RejectReason::MaxPosition),
            "venue 1's own limit still holds"
        );
        // The hedge made room for buying: 0.08 + 0.02 open - 0.1 + 0.05 = 0.05.
        assert_eq!(r.evaluate(0, &on(1, Side::Buy, "0.05"), MID, &pf), Ok(()));
        assert!(RejectReason::MaxAssetPosition.is_risk());
    }

    #[test]
    fn feed_staleness_in_event_time() {
        let mut r = RiskEngine::new(config());
        let pf = Portfolio::new(3);
        let o = order(Side::Buy, "100000", "0.01");
        assert_eq!(r.evaluate(0, &o, MID, &pf), Err(RejectReason::FeedStale));
        r.on_market_data(0, 5_000_000_000);
        assert_eq!(r.evaluate(6_000_000_000, &o, MID, &pf), Ok(()));
        assert_eq!(
            r.evaluate(6_000_000_001, &o, MID, &pf),
            Err(RejectReason::FeedStale)
        );
    }

    #[test]
    fn position_limit_counts_open_orders_on_the_side() {
        let mut r = engine();
        r.config.max_open_orders = 100;
        r.config.rate_burst = 100;
        r.tokens = 100 * NS_PER_SEC;
        let mut pf = Portfolio::new(3);
        pf.on_fill(0, Side::Buy, px("100000"), q("0.06"), 0);
        if let Some(i) = r.config.instruments[0].as_mut() {
            i.limits.max_position_notional = 1_000_000 * ONE;
        }
        r.config.max_gross_exposure = 1_000_000 * ONE;
        // 0.06 + 0.04 = 0.1 is allowed; then any more buying is not.
        assert_eq!(
            r.check(0, &order(Side::Buy, "100000", "0.04"), MID, &pf),
            Ok(())
        );
        assert_eq!(
            r.check(0, &order(Side::Buy, "100000", "0.001"), MID, &pf),
            Err(RejectReason::MaxPosition)
        );
        // Sells are checked against -0.1: 0.06 - 0.05 - 0.05 = -0.04 fine.
        for _ in 0..3 {
            assert_eq!(
                r.check(0, &order(Side::Sell, "100000", "0.05"), MID, &pf),
                Ok(())
            );
        }
        // A fourth could take it to 0.06 - 0.2 = -0.14.
        assert_eq!(
            r.check(0, &order(Side::Sell, "100000", "0.05"), MID, &pf),
            Err(RejectReason::MaxPosition)
        );
        assert_eq!(r.open_qty(0, Side::Sell), q("0.15"));
        // The buy cancelled frees its room.
        r.on_order_closed(0, Side::Buy, q("0.04"));
        assert_eq!(
            r.check(0, &order(Side::Buy, "100000", "0.04"), MID, &pf),
            Ok(())
        );
    }

    #[test]
    fn position_notional_gross_exposure_and_open_orders() {
        let mut r = engine();
        r.config.rate_burst = 100;
        r.tokens = 100 * NS_PER_SEC;
        let mut pf = Portfolio::new(3);
        // 0.08 * 100000 = 8000 is the position notional limit.
        pf.on_fill(0, Side::Buy, px("100000"), q("0.07"), 0);
        assert_eq!(
            r.check(0, &order(Side::Buy, "100000", "0.01"), MID, &pf),
            Ok(())
        );
        assert_eq!(
            r.check(0, &order(Side::Buy, "100000", "0.001"), MID, &pf),
            Err(RejectReason::MaxPositionNotional)
        );
        // Instrument 0 long 0.07 at 100000 (7000, open orders of other instruments are not
        // counted) + instrument 1 long 0.05 (5000) = 12000, the limit.
        pf.on_fill(1, Side::Buy, px("100000"), q("0.05"), 0);
        let mut o = order(Side::Sell, "100000", "0.001");
        o.instrument = 1;
        // Reducing instrument 1's worst case is fine...
        assert_eq!(r.evaluate(0, &o, MID, &pf), Ok(()));
        o.side = Side::Buy;
        assert_eq!(
            r.evaluate(0, &o, MID, &pf),
            Err(RejectReason::MaxGrossExposure)
        );
        // Open orders: 1 open, limit 3.
        assert_eq!(
            r.check(0, &order(Side::Sell, "100000", "0.01"), MID, &pf),
            Ok(())
        );
        assert_eq!(
            r.check(0, &order(Side::Sell, "100000", "0.01"), MID, &pf),
            Ok(())
        );
        assert_eq!(
            r.check(0, &order(Side::Sell, "100000", "0.01"), MID, &pf),
            Err(RejectReason::MaxOpenOrders)
        );
        assert_eq!(r.open_orders(), 3);
    }

    #[test]
    fn rate_limit_is_a_token_bucket_on_event_time() {
        let mut r = engine();
        r.config.max_open_orders = 1000;
        let pf = Portfolio::new(3);
        let o = order(Side::Buy, "100000", "0.001");
        let mut sell = o;
        sell.side = Side::Sell;
        // Burst 4 at t = 0.
        for _ in 0..2 {
            assert_eq!(r.check(0, &o, MID, &pf), Ok(()));
            assert_eq!(r.check(0, &sell, MID, &pf), Ok(()));
        }
        assert_eq!(r.check(0, &o, MID, &pf), Err(RejectReason::RateLimit));
        // 2 per second: one token after 0.5 s.
        assert_eq!(
            r.check(499_999_999, &o, MID, &pf),
            Err(RejectReason::RateLimit)
        );
        assert_eq!(r.check(500_000_000, &o, MID, &pf), Ok(()));
        assert_eq!(
            r.check(500_000_000, &sell, MID, &pf),
            Err(RejectReason::RateLimit)
        );
        // A rejected order (other rule) does not take a token; a long pause refills to burst.
        r.on_market_data(0, 100_000_000_000);
        assert_eq!(
            r.check(100_000_000_000, &order(Side::Buy, "1", "0.001"), MID, &pf),
            Err(RejectReason::PriceBand)
        );
        for _ in 0..2 {
            assert_eq!(r.check(100_000_000_000, &o, MID, &pf), Ok(()));
            assert_eq!(r.check(100_000_000_000, &sell, MID, &pf), Ok(()));
        }
        assert_eq!(
            r.check(100_000_000_000, &o, MID, &pf),
            Err(RejectReason::RateLimit)
        );
    }

    #[test]
    fn a_restore_keeps_the_days_losses_the_peak_and_the_halt() {
        // Limits: daily loss 1000, drawdown 2000, REDUCING at 80%.
        let t0 = 1_723_161_600_000_000_000; // 2024-08-09 00:00 UTC
        let mut before = engine();
        before.on_equity(t0, 10_000 * ONE);
        before.on_equity(t0 + 1, 10_500 * ONE);
        before.on_equity(t0 + 2, 9_700 * ONE);
        let anchors = before.anchors().expect("anchors");
        assert_eq!(
            anchors,
            RiskAnchors {
                day: t0.div_euclid(DAY_NS),
                day_start_equity: 10_000 * ONE,
                peak_equity: 10_500 * ONE,
            }
        );
        assert_eq!(engine().anchors(), None);

        // Same day after a restart: the 300 lost so far still count, so 700 more halt.
        let mut r = engine();
        r.restore(RiskRestore {
            state: RiskState::Active,
            halt_cause: None,
            anchors: Some(anchors),
        });
        assert_eq!(r.on_equity(t0 + 10, 9_700 * ONE), None);
        let tr = r.on_equity(t0 + 11, 9_000 * ONE).expect("a transition");
        assert_eq!((tr.to, tr.cause), (RiskState::Halted, RiskCause::DailyLoss));
        // Without the restore the same equity would be a fresh start, no loss at all.
        let mut fresh = engine();
        assert_eq!(fresh.on_equity(t0 + 11, 9_000 * ONE), None);

        // A daily-loss halt restored on the same day stays; the next day lifts it.
        let mut r = engine();
        r.restore(RiskRestore {
            state: RiskState::Halted,
            halt_cause: Some(RiskCause::DailyLoss),
            anchors: Some(anchors),
        });
        assert_eq!(r.state(), RiskState::Halted);
        assert_eq!(r.on_equity(t0 + 20, 10_000 * ONE), None);
        let tr = r
            .on_equity(t0 + DAY_NS, 10_000 * ONE)
            .expect("a transition");
        assert_eq!((tr.to, tr.cause), (RiskState::Active, RiskCause::NewDay));

        // A kill switch survives a new day; only an operator lifts it.
        let mut r = engine();
        r.restore(RiskRestore {
            state: RiskState::Halted,
            halt_cause: Some(RiskCause::KillSwitch),
            anchors: Some(anchors),
        });
        assert_eq!(r.on_equity(t0 + 2 * DAY_NS, 10_000 * ONE), None);
        assert_eq!(r.halt_cause(), Some(RiskCause::KillSwitch));
        let tr = r
            .resume(t0 + 2 * DAY_NS + 1, 10_000 * ONE)
            .expect("resumed");
        assert_eq!(tr.to, RiskState::Active);

        // The drawdown is measured from the restored peak, across days.
        let mut r = engine();
        r.restore(RiskRestore {
            state: RiskState::Active,
            halt_cause: None,
            anchors: Some(anchors),
        });
        let tr = r.on_equity(t0 + DAY_NS, 8_500 * ONE).expect("a transition");
        assert_eq!((tr.to, tr.cause), (RiskState::Halted, RiskCause::Drawdown));
    }

    #[test]
    fn states_and_causes_parse_back() {
        for s in [RiskState::Active, RiskState::Reducing, RiskState::Halted] {
            assert_eq!(RiskState::parse(s.as_str()), Some(s));
        }
        for c in RiskCause::ALL {
            assert_eq!(RiskCause::parse(c.as_str()), Some(c));
        }
        let mut names: Vec<&str> = RiskCause::ALL.iter().map(|c| c.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), RiskCause::ALL.len(), "distinct names");
        assert_eq!(RiskState::parse("HALTED"), None);
        assert_eq!(RiskCause::parse("bored"), None);
    }

    #[test]
    fn loss_limits_drive_the_states() {
        let mut r = engine();
        let t0 = 1_723_161_600_000_000_000; // 2024-08-09 00:00 UTC
        r.on_market_data(0, t0);
        assert_eq!(r.on_equity(t0, 10_000 * ONE), None);
        // 80% of the 1000 daily loss: REDUCING.
        let tr = r.on_equity(t0 + 1, 9_200 * ONE).expect("a transition");
        assert_eq!(
            (tr.from, tr.to, tr.cause),
            (RiskState::Active, RiskState::Reducing, RiskCause::DailyLoss)
        );
        // Only reducing orders pass.
        let mut pf = Portfolio::new(3);
        pf.on_fill(0, Side::Buy, px("100000"), q("0.01"), 0);
        assert_eq!(
            r.evaluate(t0, &order(Side::Buy, "100000", "0.001"), MID, &pf),
            Err(RejectReason::ReduceOnly)
        );
        assert_eq!(
            r.evaluate(t0, &order(Side::Sell, "100000", "0.01"), MID, &pf),
            Ok(())
        );
        assert_eq!(
            r.evaluate(t0, &order(Side::Sell, "100000", "0.011"), MID, &pf),
            Err(RejectReason::ReduceOnly)
        );
        // Recovery.
        let tr = r.on_equity(t0 + 2, 9_300 * ONE).expect("a transition");
        assert_eq!((tr.to, tr.cause), (RiskState::Active, RiskCause::Recovered));
        // The full daily loss: HALTED; it stays halted even if the equity recovers.
        let tr = r.on_equity(t0 + 3, 9_000 * ONE).expect("a transition");
        assert_eq!((tr.to, tr.cause), (RiskState::Halted, RiskCause::DailyLoss));
        assert_eq!(r.halt_cause(), Some(RiskCause::DailyLoss));
        assert_eq!(r.on_equity(t0 + 4, 10_000 * ONE), None);
        assert_eq!(
            r.evaluate(t0, &order(Side::Sell, "100000", "0.01"), MID, &pf),
            Err(RejectReason::Halted)
        );
        // Next UTC day: the daily-loss halt lifts (drawdown from the 10000 peak is 1000 < 1600).
        let tr = r.on_equity(t0 + DAY_NS, 9_000 * ONE).expect("a transition");
        assert_eq!(
            (tr.from, tr.to, tr.cause),
            (RiskState::Halted, RiskState::Active, RiskCause::NewDay)
        );
        // Drawdown: 80% of 2000 from the 10000 peak is 8400; 8000 halts.
        let tr = r
            .on_equity(t0 + DAY_NS + 1, 8_400 * ONE)
            .expect("a transition");
        assert_eq!(
            (tr.to, tr.cause),
            (RiskState::Reducing, RiskCause::Drawdown)
        );
        let tr = r
            .on_equity(t0 + DAY_NS + 2, 8_000 * ONE)
            .expect("a transition");
        assert_eq!((tr.to, tr.cause), (RiskState::Halted, RiskCause::DailyLoss));
        assert_eq!(r.max_drawdown_seen(), 2_000 * ONE);
        // A drawdown halt is not lifted by a new day.
        let mut r = engine();
        r.on_equity(t0, 10_000 * ONE);
        assert_eq!(r.on_equity(t0 + DAY_NS, 8_500 * ONE), None);
        let tr = r
            .on_equity(t0 + DAY_NS + 1, 8_000 * ONE)
            .expect("a transition");
        assert_eq!((tr.to, tr.cause), (RiskState::Halted, RiskCause::Drawdown));
        assert_eq!(r.on_equity(t0 + 2 * DAY_NS, 8_000 * ONE), None);
        let tr = r
            .resume(t0 + 2 * DAY_NS, 8_000 * ONE)
            .expect("a transition");
        assert_eq!((tr.to, tr.cause), (RiskState::Active, RiskCause::Resumed));
        // The peak is kept: still 2000 below it, the next update halts again...
        let tr = r
            .on_equity(t0 + 2 * DAY_NS + 1, 8_000 * ONE)
            .expect("a transition");
        assert_eq!((tr.to, tr.cause), (RiskState::Halted, RiskCause::Drawdown));
        // ...and once recovered to within the limits, a resume holds.
        r.resume(t0 + 2 * DAY_NS + 2, 9_000 * ONE)
            .expect("a transition");
        assert_eq!(r.on_equity(t0 + 2 * DAY_NS + 3, 9_000 * ONE), None);
        assert_eq!(r.state(), RiskState::Active);
    }

    #[test]
    fn a_resume_after_a_daily_loss_halt_keeps_the_days_start() {
        let t0 = 20_000 * DAY_NS;
        let mut r = engine();
        r.on_equity(t0, 10_000 * ONE);
        let tr = r.on_equity(t0 + 1, 9_000 * ONE).expect("a transition");
        assert_eq!((tr.to, tr.cause), (RiskState::Halted, RiskCause::DailyLoss));
        r.resume(t0 + 2, 9_000 * ONE).expect("resumed");
        // The same day, the same loss: halted again, not a fresh budget from 9000.
        let tr = r.on_equity(t0 + 3, 9_000 * ONE).expect("a transition");
        assert_eq!((tr.to, tr.cause), (RiskState::Halted, RiskCause::DailyLoss));
        let a = r.anchors().expect("anchors");
        assert_eq!(
            (a.day_start_equity, a.peak_equity),
            (10_000 * ONE, 10_000 * ONE)
        );
    }

    #[test]
    fn exposure_on_a_stale_book_reduces_then_halts_and_recovers_only_as_losses_allow() {
        const S: Nanos = 1_000_000_000;
        let mut r = engine();
        assert_eq!(r.on_equity(0, 10_000 * ONE), None);
        // Fresh, or no position: nothing.
        assert_eq!(r.on_stale_exposure(1, None), None);
        assert_eq!(
            r.on_stale_exposure(1, Some(S)),
            None,
            "at the limit, not beyond"
        );
        let tr = r.on_stale_exposure(2, Some(S + 1)).expect("reducing");
        assert_eq!(
            (tr.from, tr.to, tr.cause),
            (RiskState::Active, RiskState::Reducing, RiskCause::StaleBook)
        );
        // Losses back under their thresholds do not lift it while the book is stale.
        assert_eq!(r.on_equity(3, 10_000 * ONE), None);
        assert_eq!(r.state(), RiskState::Reducing);
        // The book is fresh again: ACTIVE.
        let tr = r.on_stale_exposure(4, Some(0)).expect("recovered");
        assert_eq!((tr.to, tr.cause), (RiskState::Active, RiskCause::Recovered));
        // Stale again while the losses ask for REDUCING: fresh books leave it REDUCING.
        r.on_stale_exposure(5, Some(2 * S)).expect("reducing");
        assert_eq!(r.on_equity(6, 10_000 * ONE - 850 * ONE), None);
        assert_eq!(r.on_stale_exposure(7, None), None);
        assert_eq!(r.state(), RiskState::Reducing);
        // Losses back under with fresh books: ACTIVE.
        let tr = r.on_equity(8, 10_000 * ONE).expect("recovered");
        assert_eq!((tr.to, tr.cause), (RiskState::Active, RiskCause::Recovered));
        // Beyond the second limit: HALTED, sticky until an operator resumes.
        let tr = r.on_stale_exposure(10, Some(3 * S + 1)).expect("halted");
        assert_eq!(
            (tr.from, tr.to, tr.cause),
            (RiskState::Active, RiskState::Halted, RiskCause::StaleBook)
        );
        assert_eq!(r.halt_cause(), Some(RiskCause::StaleBook));
        assert_eq!(r.on_stale_exposure(11, None), None);
        assert_eq!(r.on_equity(12, 10_000 * ONE), None);
        assert_eq!(r.state(), RiskState::Halted);
        assert_eq!(RiskCause::parse("stale_book"), Some(RiskCause::StaleBook));
        assert_eq!(
            RiskCause::parse("balance_mismatch"),
            Some(RiskCause::BalanceMismatch)
        );
        let tr = r.resume(13, 10_000 * ONE).expect("resumed");
        assert_eq!(tr.to, RiskState::Active);
    }

    #[test]
    fn kill_switch() {
        let mut r = engine();
        let tr = r.engage_kill_switch(5).expect("armed");
        assert_eq!(
            (tr.from, tr.to, tr.cause),
            (RiskState::Active, RiskState::Halted, RiskCause::KillSwitch)
        );
        assert_eq!(r.on_equity(6, 0), None);
        let pf = Portfolio::new(3);
        assert_eq!(
            r.check(7, &order(Side::Buy, "100000", "0.01"), MID, &pf),
            Err(RejectReason::Halted)
        );
        let mut config = config();
        config.kill_switch_enabled = false;
        let mut r = RiskEngine::new(config);
        assert_eq!(r.engage_kill_switch(5), None);
        assert_eq!(r.state(), RiskState::Active);
    }

    #[test]
    fn reasons_have_stable_distinct_codes() {
        let mut codes: Vec<_> = RejectReason::ALL.iter().map(|r| r.as_str()).collect();
        for (i, r) in RejectReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), RejectReason::COUNT);
        assert!(RejectReason::RateLimit.is_risk());
        assert!(!RejectReason::PostOnlyWouldCross.is_risk());
        assert!(!RejectReason::VenueRateLimit.is_risk());
        assert_eq!(RejectReason::VenueRateLimit.as_str(), "venue_rate_limit");
    }

    #[test]
    fn a_venue_ban_halts_even_with_the_kill_switch_disarmed_until_resumed() {
        let mut config = config();
        config.kill_switch_enabled = false;
        let mut r = RiskEngine::new(config);
        let tr = r.halt(5, RiskCause::VenueBan).expect("halts");
        assert_eq!(
            (tr.from, tr.to, tr.cause),
            (RiskState::Active, RiskState::Halted, RiskCause::VenueBan)
        );
        assert_eq!(r.halt(6, RiskCause::VenueBan), None, "once");
        assert_eq!(r.halt_cause(), Some(RiskCause::VenueBan));
        assert_eq!(RiskCause::parse("venue_ban"), Some(RiskCause::VenueBan));
        // Not lifted by equity or a new day: only by an operator.
        assert_eq!(r.on_equity(7, 0), None);
        assert_eq!(r.on_equity(7 + DAY_NS, 0), None);
        assert_eq!(r.state(), RiskState::Halted);
        let tr = r.resume(8 + DAY_NS, 0).expect("resumed");
        assert_eq!((tr.to, tr.cause), (RiskState::Active, RiskCause::Resumed));
    }
}
