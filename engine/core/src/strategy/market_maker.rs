//! A market maker with inventory skew: one post-only bid and one post-only ask per instrument
//! around the mid or the microprice.
//!
//! On every book update, per instrument:
//! - `skew = inventory_skew_ticks * position / max_inventory` ticks (truncated towards zero,
//!   position clamped to +-max_inventory): a long position lowers both quotes, a short one
//!   raises them;
//! - bid = floor_to_tick(reference - (half_spread + skew) ticks), ask = ceil_to_tick(reference +
//!   (half_spread - skew) ticks), then kept off the opposite best (a post-only order that would
//!   cross is rejected) so the bid stays below the best ask and the ask above the best bid;
//! - a side whose fill would take the position past +-max_inventory is not quoted (its working
//!   order is cancelled); while risk is REDUCING only the side that reduces the position is
//!   quoted, for at most the position; while HALTED nothing is quoted;
//! - a working quote is replaced (cancel + new order) only when the desired price moved by at
//!   least `requote_threshold_ticks` (any move when 0) or the desired size changed.
//!
//! Quantities are `quote_qty` (a multiple of the lot, checked by the manifest) or, when
//! reducing, the position floored to the lot.
//!
//! **With a signal** (`params.signal`, another book, typically the same asset on another
//! venue), the reference is the fair value `signal reference + basis` instead of the quoted
//! book's own: the basis is an exponential average of `own reference - signal reference`
//! (seeded with the first difference, then moved by `1/basis_updates` of the difference on
//! every update of either book), so the quotes follow the signal's moves at once while the
//! level difference between the venues (fees, funding, or two captures of different dates) is
//! absorbed slowly. The quotes are still kept off the quoted book's opposite best. Without a
//! synced signal book nothing is quoted (its loss cancels the quotes).
//!
//! **Touch** (`params.touch`). `book` (the default): the top of book is the diff book's best
//! levels. `bbo`: the venue's real-time best bid and offer (Binance `bookTicker`,
//! [`Strategy::on_bbo`]) is quoted against as soon as it arrives, and stays the top of book
//! until the diff book has applied an update with a higher id; the reference, the keep-off
//! rule and the cached inputs all use that top. Tickers are much more frequent than 100 ms
//! diffs: more requotes (and rate-limit refusals) follow. In a backtest the simulated venue
//! still matches against the diff book, so a quote placed against a newer ticker can be
//! refused as crossing a diff book that has not caught up (`post_only_would_cross`).
//!
//! **Requote** (`params.requote`). `replace` (the default): a quote that must move is
//! cancelled and a new order placed. `amend`: it is amended in place (one request; a smaller
//! size at the same price keeps its place in the queue), once the engine has acknowledged the
//! order at its current price and size; before that it is replaced as by default. An
//! amendment the engine or venue refuses (the order filled meanwhile, a risk limit) has the
//! order cancelled and the side quoted afresh after the rejection back-off.

use rt_manifest::model::{MarketMakerParams, Reference, Requote, Touch};

use super::{
    check_instruments, Action, Amend, ClientIds, FillReport, NewOrder, OrderKind, OrderUpdate,
    Strategy, StrategyContext, StrategyError, REJECT_BACKOFF_NS,
};
use crate::book::OrderBook;
use crate::event::{Bbo, Level};
use crate::portfolio::{floor_to, InstrumentId, InstrumentSpec};
use crate::risk::RiskState;
use crate::types::{Nanos, Price, Qty, Side};

/// A quote the strategy has placed and not yet given up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Working {
    client_id: u64,
    price: Price,
    /// The size quoted (what is left to fill when it was placed or amended).
    qty: Qty,
    /// Filled so far.
    filled: Qty,
    /// The engine acknowledged the order at this price and size (its placement or last
    /// amendment): only then is it amended (`requote: amend`).
    confirmed: bool,
}

/// Everything the desired quotes depend on (besides the configuration).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Inputs {
    bid: Level,
    ask: Level,
    position: Qty,
    risk_state: RiskState,
    /// The fair value from the signal (`None` without a signal).
    fair: Option<Price>,
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    spec: InstrumentSpec,
    /// Indexed by [`side_index`]: bid, ask.
    working: [Option<Working>; 2],
    retry_at: [Nanos; 2],
    /// The inputs of the last computation and the time until which the same inputs need no
    /// action: forever when both sides were as desired (a working quote where one is wanted,
    /// none where none is), until the earliest retry when a side waits out a rejection. Most
    /// book updates (below the top) then cost one comparison. Cleared by any order event.
    settled: Option<(Inputs, Nanos)>,
    /// With a signal: the signal book's last reference (`None` until it is synced, and after
    /// it was lost) and the basis, `own reference - signal reference` averaged, in price units.
    signal: Option<Price>,
    basis: Option<i64>,
    /// With `touch: bbo`: the last real-time top of book and its update id.
    ticker: Option<(u64, Top)>,
}

/// A best bid and a best ask: the diff book's, or the venue's real-time one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Top {
    bid: Level,
    ask: Level,
}

impl Top {
    fn of(book: &OrderBook) -> Option<Top> {
        Some(Top {
            bid: book.best_bid()?,
            ask: book.best_ask()?,
        })
    }

    /// `OrderBook::mid`'s arithmetic.
    fn mid(self) -> Option<Price> {
        let mid = (i128::from(self.bid.price.0) + i128::from(self.ask.price.0)).div_euclid(2);
        i64::try_from(mid).ok().map(Price)
    }
}

const fn side_index(side: Side) -> usize {
    match side {
        Side::Buy => 0,
        Side::Sell => 1,
    }
}

const SIDES: [Side; 2] = [Side::Buy, Side::Sell];

/// The market maker's parameters, in engine units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MarketMakerConfig {
    pub reference: Reference,
    pub half_spread_ticks: u32,
    pub quote_qty: Qty,
    pub max_inventory: Qty,
    pub inventory_skew_ticks: u32,
    pub requote_threshold_ticks: u32,
    /// `Some(basis_updates)` when the reference comes from a signal book (see the module
    /// documentation); at least 1.
    pub signal_basis_updates: Option<u32>,
    /// The top of book quoted against (see the module documentation, "Touch").
    pub touch: Touch,
    /// How a working quote is moved (see the module documentation, "Requote").
    pub requote: Requote,
}

impl MarketMakerConfig {
    pub fn from_manifest(params: &MarketMakerParams) -> MarketMakerConfig {
        MarketMakerConfig {
            reference: params.reference,
            half_spread_ticks: params.half_spread_ticks,
            quote_qty: Qty(params.quote_qty.raw()),
            max_inventory: Qty(params.max_inventory.raw()),
            inventory_skew_ticks: params.inventory_skew_ticks,
            requote_threshold_ticks: params.requote_threshold_ticks,
            signal_basis_updates: params.signal.as_ref().map(|s| s.basis_updates),
            touch: params.touch.unwrap_or_default(),
            requote: params.requote.unwrap_or_default(),
        }
    }
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct MarketMaker {
    config: MarketMakerConfig,
    instruments: Vec<InstrumentId>,
    slots: Vec<Slot>,
    ids: ClientIds,
}

impl MarketMaker {
    pub fn new(
        config: MarketMakerConfig,
        instruments: &[InstrumentId],
        specs: &[InstrumentSpec],
    ) -> Result<MarketMaker, StrategyError> {
        check_instruments(instruments, specs)?;
        if let Some(updates) = config.signal_basis_updates {
            if updates == 0 {
                return Err(StrategyError::Param {
                    field: "signal.basis_updates",
                    message: "must be at least 1, found 0".into(),
                });
            }
            if instruments.len() != 1 {
                return Err(StrategyError::OneInstrument {
                    count: instruments.len(),
                });
            }
        }
        let positive = |field: &'static str, value: i64| {
            if value > 0 {
                Ok(())
            } else {
                Err(StrategyError::Param {
                    field,
                    message: format!("must be positive, found {value}"),
                })
            }
        };
        positive("quote_qty", config.quote_qty.0)?;
        positive("max_inventory", config.max_inventory.0)?;
        positive("half_spread_ticks", i64::from(config.half_spread_ticks))?;
        Ok(MarketMaker {
            config,
            instruments: instruments.to_vec(),
            slots: specs
                .iter()
                .map(|&spec| Slot {
                    spec,
                    working: [None; 2],
                    retry_at: [Nanos::MIN; 2],
                    settled: None,
                    signal: None,
                    basis: None,
                    ticker: None,
                })
                .collect(),
            ids: ClientIds::default(),
        })
    }

    pub fn from_manifest(
        params: &MarketMakerParams,
        instruments: &[InstrumentId],
        specs: &[InstrumentSpec],
    ) -> Result<MarketMaker, StrategyError> {
        MarketMaker::new(MarketMakerConfig::from_manifest(params), instruments, specs)
    }

    pub fn config(&self) -> &MarketMakerConfig {
        &self.config
    }

    /// `inventory_skew_ticks * position / max_inventory`, truncated, the position clamped to
    /// +-max_inventory (so |skew| <= inventory_skew_ticks).
    fn skew(&self, position: i64) -> i64 {
        let c = &self.config;
        let max_inv = c.max_inventory.0;
        let clamped = position.clamp(-max_inv, max_inv);
        if clamped == 0 {
            return 0;
        }
        match i64::from(c.inventory_skew_ticks).checked_mul(clamped) {
            Some(product) => product / max_inv,
            None => i64::try_from(
                i128::from(c.inventory_skew_ticks) * i128::from(clamped) / i128::from(max_inv),
            )
            .unwrap_or(0),
        }
    }

    /// A top of book's reference price: its mid or its microprice.
    fn reference(&self, top: Option<Top>) -> Option<Price> {
        let top = top?;
        match self.config.reference {
            Reference::Mid => top.mid(),
            Reference::Microprice => microprice(top.bid, top.ask),
        }
    }

    /// The top of book `ctx`'s slot quotes against: the diff book's, or with `touch:
    /// bbo` the last real-time one while it is newer than the diff book (its update
    /// id above the book's last applied one).
    fn top(&self, ctx: &StrategyContext, book: &OrderBook) -> Option<Top> {
        let ticker = self.slots.get(ctx.slot).and_then(|s| s.ticker);
        match ticker {
            Some((id, top)) if ctx.book_update_id.map_or(true, |last| id > last) => Some(top),
            _ => Top::of(book),
        }
    }

    /// With a signal: moves the basis of `slot` towards `own - signal` by `1/basis_updates`
    /// (seeds it with the first difference); the fair value, once both references are known.
    fn track_basis(&mut self, slot: usize, top: Option<Top>) -> Option<Price> {
        let updates = i64::from(self.config.signal_basis_updates?);
        let own = self.reference(top);
        let s = self.slots.get_mut(slot)?;
        let signal = s.signal?;
        if let Some(own) = own {
            let diff = own.0.saturating_sub(signal.0);
            s.basis = Some(match s.basis {
                None => diff,
                Some(b) => b.saturating_add(diff.saturating_sub(b) / updates),
            });
        }
        s.basis.map(|b| Price(signal.0.saturating_add(b)))
    }

    /// Quotes `ctx`'s slot around `fair` (with a signal) or the reference of `top`, its own
    /// top of book.
    fn quote(
        &mut self,
        ctx: &StrategyContext,
        top: Option<Top>,
        fair: Option<Price>,
        out: &mut Vec<Action>,
    ) {
        // By reference: the common case below returns after comparing the cached inputs.
        let Some(slot) = self.slots.get(ctx.slot) else {
            return;
        };
        let inputs = match top {
            Some(Top { mut bid, mut ask }) => {
                if self.config.reference == Reference::Mid {
                    // The mid does not depend on the sizes.
                    (bid.qty, ask.qty) = (Qty::ZERO, Qty::ZERO);
                }
                Some(Inputs {
                    bid,
                    ask,
                    position: ctx.position,
                    risk_state: ctx.risk_state,
                    fair,
                })
            }
            None => None,
        };
        if let (Some(now), Some((then, until))) = (inputs, slot.settled) {
            if now == then && ctx.now < until {
                return;
            }
        }
        let (spec, working_now, retry_at) = (slot.spec, slot.working, slot.retry_at);
        let desired = self.desired(ctx, &spec, top, fair);
        let threshold = i64::from(self.config.requote_threshold_ticks.max(1)) * spec.tick.0;
        for side in SIDES {
            let i = side_index(side);
            let working = working_now[i];
            let place = match (working, desired[i]) {
                (None, Some(_)) => ctx.now >= retry_at[i],
                (Some(w), Some((price, qty))) => {
                    (w.price.0 - price.0).abs() >= threshold || w.qty != qty
                }
                (Some(_), None) | (None, None) => false,
            };
            if let (true, Some(w), Some((price, qty))) = (place, working, desired[i]) {
                if self.config.requote == Requote::Amend && w.confirmed {
                    // In place: the new price, and the quoted size left to fill.
                    out.push(Action::Amend(Amend {
                        client_id: w.client_id,
                        price,
                        qty: Qty(w.filled.0.saturating_add(qty.0)),
                    }));
                    self.slots[ctx.slot].working[i] = Some(Working {
                        price,
                        qty,
                        confirmed: false,
                        ..w
                    });
                    continue;
                }
            }
            let cancel = working.is_some() && (place || desired[i].is_none());
            if let (true, Some(w)) = (cancel, working) {
                out.push(Action::Cancel(w.client_id));
                self.slots[ctx.slot].working[i] = None;
            }
            if let (true, Some((price, qty))) = (place, desired[i]) {
                let client_id = self.ids.next();
                out.push(Action::Place(NewOrder {
                    client_id,
                    instrument: ctx.instrument,
                    side,
                    price,
                    qty,
                    kind: OrderKind::PostOnly,
                }));
                self.slots[ctx.slot].working[i] = Some(Working {
                    client_id,
                    price,
                    qty,
                    filled: Qty::ZERO,
                    confirmed: false,
                });
            }
        }
        // After the loop a side differs from its wish only while waiting for a retry.
        let slot = &mut self.slots[ctx.slot];
        let until = (0..2)
            .filter(|&i| slot.working[i].is_some() != desired[i].is_some())
            .map(|i| slot.retry_at[i])
            .min()
            .unwrap_or(Nanos::MAX);
        slot.settled = inputs.map(|inputs| (inputs, until));
    }

    /// The desired (price, qty) of both sides, `None` for a side not to quote.
    fn desired(
        &self,
        ctx: &StrategyContext,
        spec: &InstrumentSpec,
        top: Option<Top>,
        fair: Option<Price>,
    ) -> [Option<(Price, Qty)>; 2] {
        let c = &self.config;
        let Some(Top {
            bid: best_bid,
            ask: best_ask,
        }) = top
        else {
            return [None, None];
        };
        let reference = match c.signal_basis_updates {
            Some(_) => fair,
            None => self.reference(top),
        };
        let Some(reference) = reference else {
            return [None, None];
        };
        let tick = spec.tick.0;
        let pos = ctx.position.0;
        let max_inv = c.max_inventory.0;
        let skew = self.skew(pos);
        let half = i64::from(c.half_spread_ticks);
        // floor(reference - n ticks) = floor_to(reference) - n ticks, and likewise for ceil:
        // one division for both sides.
        let below = floor_to(reference.0, tick);
        let above = if below == reference.0 {
            below
        } else {
            below + tick
        };
        let bid = below
            .saturating_sub((half + skew).saturating_mul(tick))
            .min(best_ask.price.0 - tick);
        let ask = above
            .saturating_add((half - skew).saturating_mul(tick))
            .max(best_bid.price.0 + tick);

        let quote = c.quote_qty.0;
        let (bid_qty, ask_qty) = match ctx.risk_state {
            RiskState::Halted => (0, 0),
            RiskState::Reducing => {
                let reduce = floor_to(pos.saturating_abs().min(quote), spec.lot.0);
                if pos < 0 {
                    (reduce, 0)
                } else {
                    (0, reduce)
                }
            }
            RiskState::Active => (
                if pos.saturating_add(quote) <= max_inv {
                    quote
                } else {
                    0
                },
                if pos.saturating_sub(quote) >= -max_inv {
                    quote
                } else {
                    0
                },
            ),
        };
        [
            (bid > 0 && bid_qty > 0).then_some((Price(bid), Qty(bid_qty))),
            (ask > 0 && ask_qty > 0).then_some((Price(ask), Qty(ask_qty))),
        ]
    }
}

/// The size-weighted mid, exactly [`OrderBook::microprice`]:
/// `(bid * ask_qty + ask * bid_qty) / (bid_qty + ask_qty)` equals
/// `bid + (ask - bid) * bid_qty / (bid_qty + ask_qty)` (all positive, truncated), which fits an
/// `i64` for any realistic spread and size; `i128` division is a slow library call.
#[inline]
fn microprice(bid: Level, ask: Level) -> Option<Price> {
    let total = bid.qty.0.checked_add(ask.qty.0);
    let lean = (ask.price.0 - bid.price.0).checked_mul(bid.qty.0);
    match (total, lean) {
        (Some(total), Some(lean)) if total > 0 && lean >= 0 => {
            bid.price.0.checked_add(lean / total).map(Price)
        }
        _ => {
            let total = i128::from(bid.qty.0) + i128::from(ask.qty.0);
            if total <= 0 {
                let mid = (i128::from(bid.price.0) + i128::from(ask.price.0)).div_euclid(2);
                return i64::try_from(mid).ok().map(Price);
            }
            let num = i128::from(bid.price.0) * i128::from(ask.qty.0)
                + i128::from(ask.price.0) * i128::from(bid.qty.0);
            i64::try_from(num / total).ok().map(Price)
        }
    }
}

impl Strategy for MarketMaker {
    fn kind(&self) -> &'static str {
        "market_maker"
    }

    fn instruments(&self) -> &[InstrumentId] {
        &self.instruments
    }

    fn wants_trades(&self) -> bool {
        false
    }

    fn wants_bbo(&self) -> bool {
        self.config.touch == Touch::Bbo
    }

    fn on_book(&mut self, ctx: &StrategyContext, book: &OrderBook, out: &mut Vec<Action>) {
        let top = self.top(ctx, book);
        let fair = self.track_basis(ctx.slot, top);
        self.quote(ctx, top, fair, out);
    }

    /// With `touch: bbo`: the venue's real-time top of book (as new as the diff book
    /// or newer) is the one quoted against until the diff book moves past it.
    fn on_bbo(
        &mut self,
        ctx: &StrategyContext,
        book: &OrderBook,
        bbo: &Bbo,
        out: &mut Vec<Action>,
    ) {
        if self.config.touch != Touch::Bbo {
            return;
        }
        if let Some(slot) = self.slots.get_mut(ctx.slot) {
            slot.ticker = Some((
                bbo.update_id,
                Top {
                    bid: bbo.bid,
                    ask: bbo.ask,
                },
            ));
        }
        // As new as the book (equal ids) counts too: the same top either way.
        let top = match ctx.book_update_id {
            Some(last) if bbo.update_id < last => Top::of(book),
            _ => Some(Top {
                bid: bbo.bid,
                ask: bbo.ask,
            }),
        };
        let fair = self.track_basis(ctx.slot, top);
        self.quote(ctx, top, fair, out);
    }

    fn on_signal(
        &mut self,
        ctx: &StrategyContext,
        signal: &OrderBook,
        book: &OrderBook,
        out: &mut Vec<Action>,
    ) {
        let reference = self.reference(Top::of(signal));
        if let Some(slot) = self.slots.get_mut(ctx.slot) {
            slot.signal = reference;
        }
        let top = self.top(ctx, book);
        let fair = self.track_basis(ctx.slot, top);
        self.quote(ctx, top, fair, out);
    }

    fn on_signal_lost(&mut self, ctx: &StrategyContext, out: &mut Vec<Action>) {
        // No fair value: withdraw the quotes until the signal's book is back.
        if let Some(slot) = self.slots.get_mut(ctx.slot) {
            slot.signal = None;
            slot.settled = None;
            for w in slot.working.iter_mut() {
                if let Some(working) = w.take() {
                    out.push(Action::Cancel(working.client_id));
                }
            }
        }
    }

    fn on_fill(&mut self, ctx: &StrategyContext, fill: &FillReport, _out: &mut Vec<Action>) {
        if let Some(slot) = self.slots.get_mut(ctx.slot) {
            slot.settled = None;
            let w = &mut slot.working[side_index(fill.side)];
            match w {
                Some(working) if working.client_id == fill.client_id => {
                    if fill.leaves_qty.0 > 0 {
                        working.filled = Qty(working.filled.0.saturating_add(fill.qty.0));
                    } else {
                        *w = None;
                    }
                }
                _ => {}
            }
        }
    }

    fn on_order_update(
        &mut self,
        ctx: &StrategyContext,
        update: &OrderUpdate,
        out: &mut Vec<Action>,
    ) {
        let Some(slot) = self.slots.get_mut(ctx.slot) else {
            return;
        };
        slot.settled = None;
        let i = side_index(update.side);
        if !update.status.is_final() {
            let Some(w) = slot.working[i]
                .as_mut()
                .filter(|w| w.client_id == update.client_id)
            else {
                return;
            };
            w.filled = update.filled_qty;
            match update.reject_reason {
                // Placed, or amended, as asked.
                None => w.confirmed = update.status != super::OrderStatus::Sent,
                // An amendment refused: the order is live at a price this side no longer
                // knows; cancel it, and quote afresh after the back-off.
                Some(_) => {
                    out.push(Action::Cancel(w.client_id));
                    slot.working[i] = None;
                    slot.retry_at[i] = ctx.now.saturating_add(REJECT_BACKOFF_NS);
                }
            }
            return;
        }
        if slot.working[i].is_some_and(|w| w.client_id == update.client_id) {
            slot.working[i] = None;
            if update.reject_reason.is_some() {
                slot.retry_at[i] = ctx.now.saturating_add(REJECT_BACKOFF_NS);
            }
        }
    }

    fn on_book_lost(&mut self, ctx: &StrategyContext, _out: &mut Vec<Action>) {
        // The engine cancels the orders; start afresh when the book is back.
        if let Some(slot) = self.slots.get_mut(ctx.slot) {
            slot.working = [None; 2];
            slot.settled = None;
            slot.ticker = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Level;
    use crate::risk::RejectReason;
    use crate::strategy::OrderStatus;

    fn spec() -> InstrumentSpec {
        InstrumentSpec {
            tick: Price(1_000_000), // 0.01
            lot: Qty(1_000),        // 0.00001
            min_notional: 5 * crate::types::SCALE,
            maker_fee_bps: 0,
            taker_fee_bps: 0,
            contract: crate::portfolio::ContractValue::Unit,
        }
    }

    fn px(s: &str) -> Price {
        Price::parse(s.as_bytes()).expect("a price")
    }

    fn q(s: &str) -> Qty {
        match s.strip_prefix('-') {
            Some(abs) => -Qty::parse(abs.as_bytes()).expect("a qty"),
            None => Qty::parse(s.as_bytes()).expect("a qty"),
        }
    }

    fn config(reference: Reference) -> MarketMakerConfig {
        MarketMakerConfig {
            reference,
            half_spread_ticks: 3,
            quote_qty: q("0.002"),
            max_inventory: q("0.01"),
            inventory_skew_ticks: 4,
            requote_threshold_ticks: 2,
            signal_basis_updates: None,
            touch: Touch::Book,
            requote: Requote::Replace,
        }
    }

    fn book(bid: &str, bid_qty: &str, ask: &str, ask_qty: &str) -> OrderBook {
        let mut b = OrderBook::new();
        b.load_snapshot(
            &[Level::new(px(bid), q(bid_qty))],
            &[Level::new(px(ask), q(ask_qty))],
        );
        b
    }

    fn ctx(now: Nanos, position: &str, risk_state: RiskState) -> StrategyContext {
        StrategyContext {
            now,
            instrument: 7,
            slot: 0,
            position: q(position),
            risk_state,
            book_update_id: None,
        }
    }

    fn places(out: &[Action]) -> Vec<(Side, Price, Qty)> {
        out.iter()
            .filter_map(|a| match a {
                Action::Place(o) => {
                    assert_eq!(o.kind, OrderKind::PostOnly);
                    assert_eq!(o.instrument, 7);
                    Some((o.side, o.price, o.qty))
                }
                Action::Cancel(_) | Action::Amend(_) => None,
            })
            .collect()
    }

    fn amends(out: &[Action]) -> Vec<Amend> {
        out.iter()
            .filter_map(|a| match a {
                Action::Amend(a) => Some(*a),
                Action::Place(_) | Action::Cancel(_) => None,
            })
            .collect()
    }

    fn cancels(out: &[Action]) -> Vec<u64> {
        out.iter()
            .filter_map(|a| match a {
                Action::Cancel(id) => Some(*id),
                Action::Place(_) | Action::Amend(_) => None,
            })
            .collect()
    }

    fn mm(reference: Reference) -> MarketMaker {
        MarketMaker::new(config(reference), &[7], &[spec()]).expect("valid")
    }

    #[test]
    fn with_a_signal_the_quotes_follow_the_other_book_and_absorb_the_level_difference() {
        let mut config = config(Reference::Mid);
        config.signal_basis_updates = Some(4);
        let mut s = MarketMaker::new(config, &[7], &[spec()]).expect("valid");
        let mut out = Vec::new();
        let active = ctx(0, "0", RiskState::Active);
        // The quoted book at 100.005, wide; nothing is quoted before the signal is known.
        let own = book("99.5", "1", "100.51", "1");
        s.on_book(&active, &own, &mut out);
        assert!(out.is_empty(), "{out:?}");
        // The signal at 200.005 (another venue, another level): basis -100, fair 100.005.
        s.on_signal(&active, &book("200", "1", "200.01", "1"), &own, &mut out);
        assert_eq!(
            places(&out),
            [
                (Side::Buy, px("99.97"), q("0.002")),
                (Side::Sell, px("100.04"), q("0.002"))
            ]
        );
        // The signal moves up 0.2: the quotes move with it at once (the basis by a quarter of
        // the new difference, -0.05: fair 100.155).
        out.clear();
        s.on_signal(&active, &book("200.2", "1", "200.21", "1"), &own, &mut out);
        assert_eq!(
            places(&out),
            [
                (Side::Buy, px("100.12"), q("0.002")),
                (Side::Sell, px("100.19"), q("0.002"))
            ]
        );
        // Its book lost: the quotes are withdrawn, and nothing is quoted on the own book alone.
        out.clear();
        s.on_signal_lost(&active, &mut out);
        assert_eq!(
            out.iter()
                .filter(|a| matches!(a, Action::Cancel(_)))
                .count(),
            2
        );
        out.clear();
        s.on_book(&active, &book("99.6", "1", "100.51", "1"), &mut out);
        assert!(out.is_empty(), "{out:?}");
    }

    fn bbo(id: u64, bid: &str, ask: &str) -> Bbo {
        Bbo {
            header: crate::event::Header::default(),
            update_id: id,
            bid: Level::new(px(bid), q("1")),
            ask: Level::new(px(ask), q("1")),
        }
    }

    #[test]
    fn with_touch_bbo_the_newer_top_of_book_is_quoted_against() {
        let mut config = config(Reference::Mid);
        config.touch = Touch::Bbo;
        let mut s = MarketMaker::new(config, &[7], &[spec()]).expect("valid");
        assert!(s.wants_bbo());
        let mut out = Vec::new();
        // The diff book (last update 10) at mid 100.005.
        let diff_book = book("100", "1", "100.01", "1");
        let at = |id: u64| StrategyContext {
            book_update_id: Some(id),
            ..ctx(0, "0", RiskState::Active)
        };
        s.on_book(&at(10), &diff_book, &mut out);
        assert_eq!(places(&out)[0], (Side::Buy, px("99.97"), q("0.002")));
        // The ticker at id 12 has the touch up 0.1 (mid 100.105): quoted against at once.
        out.clear();
        s.on_bbo(&at(10), &diff_book, &bbo(12, "100.1", "100.11"), &mut out);
        assert_eq!(
            places(&out),
            [
                (Side::Buy, px("100.07"), q("0.002")),
                (Side::Sell, px("100.14"), q("0.002"))
            ]
        );
        // A diff book update still older than the ticker (id 11) keeps the ticker's top.
        out.clear();
        s.on_book(&at(11), &book("99.9", "1", "100.01", "1"), &mut out);
        assert!(out.is_empty(), "{out:?}");
        // Once the diff book is past it (id 13), the book's own top again.
        s.on_book(&at(13), &diff_book, &mut out);
        assert_eq!(
            places(&out),
            [
                (Side::Buy, px("99.97"), q("0.002")),
                (Side::Sell, px("100.04"), q("0.002"))
            ]
        );
        // `touch: book` ignores the ticker (and does not ask for it).
        let mut plain = mm(Reference::Mid);
        assert!(!plain.wants_bbo());
        out.clear();
        plain.on_book(&at(10), &diff_book, &mut out);
        out.clear();
        plain.on_bbo(&at(10), &diff_book, &bbo(12, "100.1", "100.11"), &mut out);
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn quotes_around_the_mid_rounded_to_the_tick() {
        let mut s = mm(Reference::Mid);
        let mut out = Vec::new();
        // Mid 100.005: bid floor(100.005 - 0.03) = 99.97, ask ceil(100.005 + 0.03) = 100.04.
        s.on_book(
            &ctx(0, "0", RiskState::Active),
            &book("100", "1", "100.01", "1"),
            &mut out,
        );
        assert_eq!(
            places(&out),
            [
                (Side::Buy, px("99.97"), q("0.002")),
                (Side::Sell, px("100.04"), q("0.002"))
            ]
        );
    }

    #[test]
    fn microprice_leans_to_the_thin_side() {
        let mut s = mm(Reference::Microprice);
        let mut out = Vec::new();
        // Bid size 3, ask size 1: microprice = (100 * 1 + 100.01 * 3) / 4 = 100.0075.
        s.on_book(
            &ctx(0, "0", RiskState::Active),
            &book("100", "3", "100.01", "1"),
            &mut out,
        );
        assert_eq!(
            places(&out),
            [
                (Side::Buy, px("99.97"), q("0.002")),
                (Side::Sell, px("100.04"), q("0.002"))
            ]
        );
        let mut s = mm(Reference::Microprice);
        out.clear();
        // Microprice 100.0025 with a 1-tick half spread would give 99.99/100.02.
        s.config.half_spread_ticks = 1;
        s.on_book(
            &ctx(0, "0", RiskState::Active),
            &book("100", "1", "100.01", "3"),
            &mut out,
        );
        assert_eq!(
            places(&out),
            [
                (Side::Buy, px("99.99"), q("0.002")),
                (Side::Sell, px("100.02"), q("0.002"))
            ]
        );
    }

    #[test]
    fn inventory_skews_the_quotes() {
        let mut s = mm(Reference::Mid);
        let mut out = Vec::new();
        // Long 0.005 of max 0.01: skew 4 * 0.5 = 2 ticks down.
        s.on_book(
            &ctx(0, "0.005", RiskState::Active),
            &book("100", "1", "100.01", "1"),
            &mut out,
        );
        assert_eq!(
            places(&out),
            [
                (Side::Buy, px("99.95"), q("0.002")),
                (Side::Sell, px("100.02"), q("0.002"))
            ]
        );
        // Short 0.0075: skew 4 * -0.75 = -3 ticks: up.
        let mut s = mm(Reference::Mid);
        out.clear();
        s.on_book(
            &ctx(0, "-0.0075", RiskState::Active),
            &book("100", "1", "100.01", "1"),
            &mut out,
        );
        assert_eq!(
            places(&out),
            [
                (Side::Buy, px("100"), q("0.002")),
                (Side::Sell, px("100.07"), q("0.002"))
            ]
        );
    }

    #[test]
    fn quotes_never_cross_the_opposite_best() {
        let mut s = mm(Reference::Mid);
        s.config.inventory_skew_ticks = 40;
        let mut out = Vec::new();
        // Short 0.01 (max): skew -40 ticks. The bid would be 100.375: kept at best ask - tick.
        s.on_book(
            &ctx(0, "-0.01", RiskState::Active),
            &book("100", "1", "100.01", "1"),
            &mut out,
        );
        assert_eq!(places(&out), [(Side::Buy, px("100"), q("0.002"))]);
    }

    #[test]
    fn stops_quoting_the_side_that_would_exceed_max_inventory() {
        let mut s = mm(Reference::Mid);
        let mut out = Vec::new();
        s.on_book(
            &ctx(0, "0.009", RiskState::Active),
            &book("100", "1", "100.01", "1"),
            &mut out,
        );
        let p = places(&out);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].0, Side::Sell);
        // At exactly max - quote the bid is still allowed.
        let mut s = mm(Reference::Mid);
        out.clear();
        s.on_book(
            &ctx(0, "-0.008", RiskState::Active),
            &book("100", "1", "100.01", "1"),
            &mut out,
        );
        assert_eq!(places(&out).len(), 2);
    }

    #[test]
    fn requotes_only_past_the_threshold() {
        let mut s = mm(Reference::Mid);
        let mut out = Vec::new();
        s.on_book(
            &ctx(0, "0", RiskState::Active),
            &book("100", "1", "100.01", "1"),
            &mut out,
        );
        assert_eq!(places(&out).len(), 2);
        // Mid moves one tick: below the 2-tick threshold, nothing.
        out.clear();
        s.on_book(
            &ctx(1, "0", RiskState::Active),
            &book("100.01", "1", "100.02", "1"),
            &mut out,
        );
        assert!(out.is_empty(), "{out:?}");
        // Two ticks from the working quotes: cancel both and requote.
        s.on_book(
            &ctx(2, "0", RiskState::Active),
            &book("100.02", "1", "100.03", "1"),
            &mut out,
        );
        assert_eq!(cancels(&out), [1, 2]);
        assert_eq!(
            places(&out),
            [
                (Side::Buy, px("99.99"), q("0.002")),
                (Side::Sell, px("100.06"), q("0.002"))
            ]
        );
    }

    #[test]
    fn with_requote_amend_an_acknowledged_quote_is_amended_in_place() {
        let mut config = config(Reference::Mid);
        config.requote = Requote::Amend;
        let mut s = MarketMaker::new(config, &[7], &[spec()]).expect("valid");
        let mut out = Vec::new();
        s.on_book(
            &ctx(0, "0", RiskState::Active),
            &book("100", "1", "100.01", "1"),
            &mut out,
        );
        assert_eq!(places(&out).len(), 2);
        let update = |client_id, status, filled: &str, reason| OrderUpdate {
            client_id,
            instrument: 7,
            // Ids 1 and 4 are bids below.
            side: if client_id % 3 == 1 {
                Side::Buy
            } else {
                Side::Sell
            },
            status,
            leaves_qty: q("0.002"),
            filled_qty: q(filled),
            reject_reason: reason,
        };
        // Only the bid is acknowledged (0.0005 of it filled) before the book moves 2 ticks:
        // the bid is amended (its size left to fill is the quote's again), the ask replaced.
        out.clear();
        let c = ctx(1, "0", RiskState::Active);
        s.on_order_update(
            &c,
            &update(1, OrderStatus::PartiallyFilled, "0.0005", None),
            &mut out,
        );
        assert!(out.is_empty());
        s.on_book(
            &ctx(2, "0", RiskState::Active),
            &book("100.02", "1", "100.03", "1"),
            &mut out,
        );
        assert_eq!(
            amends(&out),
            [Amend {
                client_id: 1,
                price: px("99.99"),
                qty: q("0.0025")
            }]
        );
        assert_eq!(cancels(&out), [2]);
        assert_eq!(places(&out), [(Side::Sell, px("100.06"), q("0.002"))]);
        // Until the amendment is answered, a further move replaces the bid.
        out.clear();
        s.on_book(
            &ctx(3, "0", RiskState::Active),
            &book("100.04", "1", "100.05", "1"),
            &mut out,
        );
        assert!(amends(&out).is_empty());
        assert_eq!(cancels(&out), [1, 3]);
        // The new bid (4) acknowledged, then an amendment of it refused: cancelled, and the
        // side quoted again only after the back-off.
        out.clear();
        s.on_order_update(&c, &update(4, OrderStatus::Accepted, "0", None), &mut out);
        s.on_book(
            &ctx(4, "0", RiskState::Active),
            &book("100.06", "1", "100.07", "1"),
            &mut out,
        );
        assert_eq!(amends(&out).len(), 1);
        out.clear();
        let refused = update(
            4,
            OrderStatus::Accepted,
            "0",
            Some(RejectReason::NotAmendable),
        );
        s.on_order_update(&ctx(5, "0", RiskState::Active), &refused, &mut out);
        assert_eq!(cancels(&out), [4]);
        out.clear();
        s.on_book(
            &ctx(6, "0", RiskState::Active),
            &book("100.06", "1", "100.07", "1"),
            &mut out,
        );
        assert!(places(&out).iter().all(|p| p.0 == Side::Sell), "{out:?}");
    }

    #[test]
    fn reducing_quotes_only_the_reducing_side_and_halted_cancels() {
        let mut s = mm(Reference::Mid);
        let mut out = Vec::new();
        s.on_book(
            &ctx(0, "0.001", RiskState::Reducing),
            &book("100", "1", "100.01", "1"),
            &mut out,
        );
        let p = places(&out);
        assert_eq!(p.len(), 1);
        assert_eq!((p[0].0, p[0].2), (Side::Sell, q("0.001")));
        out.clear();
        s.on_book(
            &ctx(1, "0.001", RiskState::Halted),
            &book("100", "1", "100.01", "1"),
            &mut out,
        );
        assert_eq!(cancels(&out), [1]);
        assert!(places(&out).is_empty());
    }

    #[test]
    fn a_rejection_backs_off_and_a_fill_frees_the_side() {
        let mut s = mm(Reference::Mid);
        let mut out = Vec::new();
        let b = book("100", "1", "100.01", "1");
        s.on_book(&ctx(0, "0", RiskState::Active), &b, &mut out);
        let update = OrderUpdate {
            client_id: 1,
            instrument: 7,
            side: Side::Buy,
            status: OrderStatus::Rejected,
            leaves_qty: Qty::ZERO,
            filled_qty: Qty::ZERO,
            reject_reason: Some(RejectReason::RateLimit),
        };
        out.clear();
        s.on_order_update(&ctx(10, "0", RiskState::Active), &update, &mut out);
        s.on_book(&ctx(20, "0", RiskState::Active), &b, &mut out);
        assert!(out.is_empty());
        s.on_book(
            &ctx(10 + REJECT_BACKOFF_NS, "0", RiskState::Active),
            &b,
            &mut out,
        );
        assert_eq!(places(&out), [(Side::Buy, px("99.97"), q("0.002"))]);
        // The ask (id 2) fills completely: it is re-placed on the next book update.
        out.clear();
        let fill = FillReport {
            client_id: 2,
            instrument: 7,
            side: Side::Sell,
            price: px("100.04"),
            qty: q("0.002"),
            leaves_qty: Qty::ZERO,
            maker: true,
            fee: 0,
        };
        s.on_fill(&ctx(30, "-0.002", RiskState::Active), &fill, &mut out);
        s.on_book(&ctx(31, "-0.002", RiskState::Active), &b, &mut out);
        // Short 0.002: skew -0.8 -> 0 ticks; the bid (id 3) stays, a new ask (id 4) appears.
        assert_eq!(places(&out), [(Side::Sell, px("100.04"), q("0.002"))]);
        assert!(cancels(&out).is_empty());
    }

    #[test]
    fn unchanged_inputs_are_skipped_but_a_due_retry_is_not() {
        let mut s = mm(Reference::Microprice);
        let mut out = Vec::new();
        let b = book("100", "1", "100.01", "1");
        s.on_book(&ctx(0, "0", RiskState::Active), &b, &mut out);
        assert_eq!(places(&out).len(), 2);
        assert!(s.slots[0].settled.is_some());
        // The same top of book again: nothing, and nothing to compute.
        out.clear();
        s.on_book(&ctx(1, "0", RiskState::Active), &b, &mut out);
        assert!(out.is_empty());
        // A rejected bid: the same inputs are skipped only until its retry is due.
        let update = OrderUpdate {
            client_id: 1,
            instrument: 7,
            side: Side::Buy,
            status: OrderStatus::Rejected,
            leaves_qty: Qty::ZERO,
            filled_qty: Qty::ZERO,
            reject_reason: Some(RejectReason::RateLimit),
        };
        s.on_order_update(&ctx(2, "0", RiskState::Active), &update, &mut out);
        s.on_book(&ctx(3, "0", RiskState::Active), &b, &mut out);
        assert!(out.is_empty());
        assert_eq!(
            s.slots[0].settled.map(|(_, until)| until),
            Some(2 + REJECT_BACKOFF_NS)
        );
        s.on_book(
            &ctx(2 + REJECT_BACKOFF_NS - 1, "0", RiskState::Active),
            &b,
            &mut out,
        );
        assert!(out.is_empty());
        s.on_book(
            &ctx(2 + REJECT_BACKOFF_NS, "0", RiskState::Active),
            &b,
            &mut out,
        );
        assert_eq!(places(&out), [(Side::Buy, px("99.97"), q("0.002"))]);
        // A size change at the top moves the microprice: recomputed (here less than the
        // requote threshold, so no action).
        out.clear();
        s.on_book(
            &ctx(4 + REJECT_BACKOFF_NS, "0", RiskState::Active),
            &book("100", "9", "100.01", "1"),
            &mut out,
        );
        assert!(out.is_empty());
        assert_eq!(s.slots[0].settled.map(|(i, _)| i.bid.qty), Some(q("9")));
    }

    #[test]
    fn microprice_matches_the_book() {
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: i64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng % n as u64) as i64
        };
        for _ in 0..10_000 {
            let bid = 1 + next(10_000_000_000_000);
            let ask = bid + 1 + next(1_000_000_000);
            let (bq, aq) = (1 + next(1_000_000_000_000), 1 + next(1_000_000_000_000));
            let (b, a) = (
                Level::new(Price(bid), Qty(bq)),
                Level::new(Price(ask), Qty(aq)),
            );
            let mut book = OrderBook::new();
            book.load_snapshot(&[b], &[a]);
            assert_eq!(microprice(b, a), book.microprice(), "{b:?} {a:?}");
        }
        // Sizes so large the i64 path overflows.
        let b = Level::new(Price(6_000_000_000_000), Qty(i64::MAX / 2));
        let a = Level::new(Price(6_000_100_000_000), Qty(i64::MAX / 2));
        let mut book = OrderBook::new();
        book.load_snapshot(&[b], &[a]);
        assert_eq!(microprice(b, a), book.microprice());
    }

    #[test]
    fn refuses_bad_params() {
        let mut c = config(Reference::Mid);
        c.quote_qty = Qty::ZERO;
        assert!(matches!(
            MarketMaker::new(c, &[0], &[spec()]),
            Err(StrategyError::Param {
                field: "quote_qty",
                ..
            })
        ));
        assert_eq!(
            MarketMaker::new(config(Reference::Mid), &[], &[]).err(),
            Some(StrategyError::NoInstruments)
        );
    }
}
