//! The order side shared by the taker kinds (`imbalance_taker`, `model_taker`): given a side
//! to take, one IOC limited at the touch plus a slippage, at most one in flight per instrument,
//! a cooldown of event time between two orders (at least [`REJECT_BACKOFF_NS`] after a
//! rejection), and the risk state honoured: HALTED sends nothing, REDUCING only trades towards
//! flat for at most the position. The kinds differ only in how they choose the side.

use super::{
    Action, ClientIds, NewOrder, OrderKind, OrderUpdate, StrategyContext, StrategyError,
    REJECT_BACKOFF_NS,
};
use crate::book::OrderBook;
use crate::portfolio::{floor_to, InstrumentSpec};
use crate::risk::RiskState;
use crate::types::{Nanos, Price, Qty, Side};

#[derive(Clone, Copy, Debug)]
struct Slot {
    spec: InstrumentSpec,
    in_flight: Option<u64>,
    next_at: Nanos,
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub(crate) struct Taker {
    order_qty: Qty,
    max_slippage: Price,
    cooldown_ns: Nanos,
    slots: Vec<Slot>,
    ids: ClientIds,
}

impl Taker {
    /// Checks the order parameters (the instruments are checked by the caller).
    pub(crate) fn new(
        order_qty: Qty,
        max_slippage: Price,
        cooldown_ns: Nanos,
        specs: &[InstrumentSpec],
    ) -> Result<Taker, StrategyError> {
        let param = |field: &'static str, ok: bool, message: String| {
            if ok {
                Ok(())
            } else {
                Err(StrategyError::Param { field, message })
            }
        };
        param(
            "order_qty",
            order_qty.0 > 0,
            format!("must be positive, found {order_qty}"),
        )?;
        param(
            "max_slippage",
            max_slippage.0 > 0,
            format!("must be positive, found {max_slippage}"),
        )?;
        param(
            "cooldown_ms",
            cooldown_ns >= 0,
            format!("must not be negative, found {cooldown_ns} ns"),
        )?;
        Ok(Taker {
            order_qty,
            max_slippage,
            cooldown_ns,
            slots: specs
                .iter()
                .map(|&spec| Slot {
                    spec,
                    in_flight: None,
                    next_at: Nanos::MIN,
                })
                .collect(),
            ids: ClientIds::default(),
        })
    }

    /// Whether an order could be sent now on this slot (risk not halted, none in flight,
    /// past the cooldown): a kind asks before computing its signal.
    pub(crate) fn ready(&self, ctx: &StrategyContext) -> bool {
        self.slots.get(ctx.slot).is_some_and(|slot| {
            ctx.risk_state != RiskState::Halted
                && slot.in_flight.is_none()
                && ctx.now >= slot.next_at
        })
    }

    /// Sends an IOC on `side` if [`Taker::ready`] and the risk state and book allow one.
    pub(crate) fn take(
        &mut self,
        ctx: &StrategyContext,
        book: &OrderBook,
        side: Side,
        out: &mut Vec<Action>,
    ) {
        if !self.ready(ctx) {
            return;
        }
        let lot = self.slots[ctx.slot].spec.lot.0;
        let pos = ctx.position.0;
        let qty = match ctx.risk_state {
            RiskState::Active => self.order_qty.0,
            RiskState::Reducing if (side == Side::Buy) == (pos < 0) && pos != 0 => {
                floor_to(pos.saturating_abs().min(self.order_qty.0), lot)
            }
            RiskState::Reducing | RiskState::Halted => 0,
        };
        let price = match side {
            Side::Buy => book
                .best_ask()
                .map(|l| l.price.0.saturating_add(self.max_slippage.0)),
            Side::Sell => book.best_bid().map(|l| l.price.0 - self.max_slippage.0),
        };
        let (Some(price), true) = (price, qty > 0) else {
            return;
        };
        if price <= 0 {
            return;
        }
        let client_id = self.ids.next();
        out.push(Action::Place(NewOrder {
            client_id,
            instrument: ctx.instrument,
            side,
            price: Price(price),
            qty: Qty(qty),
            kind: OrderKind::Ioc,
        }));
        let slot = &mut self.slots[ctx.slot];
        slot.in_flight = Some(client_id);
        slot.next_at = ctx.now.saturating_add(self.cooldown_ns);
    }

    /// Frees the slot when its order is done; a rejection backs off.
    pub(crate) fn on_order_update(&mut self, ctx: &StrategyContext, update: &OrderUpdate) {
        if !update.status.is_final() {
            return;
        }
        let Some(slot) = self.slots.get_mut(ctx.slot) else {
            return;
        };
        if slot.in_flight == Some(update.client_id) {
            slot.in_flight = None;
            if update.reject_reason.is_some() {
                slot.next_at = slot.next_at.max(ctx.now.saturating_add(REJECT_BACKOFF_NS));
            }
        }
    }

    /// The book was lost: the engine cancels the order, the slot is free.
    pub(crate) fn on_book_lost(&mut self, ctx: &StrategyContext) {
        if let Some(slot) = self.slots.get_mut(ctx.slot) {
            slot.in_flight = None;
        }
    }
}

/// Helpers of the taker kinds' unit tests (instrument id 3, tick 0.01, lot 0.001).
#[cfg(test)]
pub(crate) mod testkit {
    use crate::book::OrderBook;
    use crate::event::Level;
    use crate::portfolio::InstrumentSpec;
    use crate::risk::{RejectReason, RiskState};
    use crate::strategy::{Action, OrderKind, OrderStatus, OrderUpdate, StrategyContext};
    use crate::types::{Nanos, Price, Qty, Side};

    pub(crate) fn px(s: &str) -> Price {
        Price::parse(s.as_bytes()).expect("a price")
    }

    pub(crate) fn q(s: &str) -> Qty {
        match s.strip_prefix('-') {
            Some(abs) => -Qty::parse(abs.as_bytes()).expect("a qty"),
            None => Qty::parse(s.as_bytes()).expect("a qty"),
        }
    }

    pub(crate) fn spec() -> InstrumentSpec {
        InstrumentSpec {
            tick: px("0.01"),
            lot: q("0.001"),
            min_notional: 0,
            maker_fee_bps: 0,
            taker_fee_bps: 0,
            contract: crate::portfolio::ContractValue::Unit,
        }
    }

    /// Bids 100, 99.99, ... and asks 100.01, 100.02, ... with the given sizes.
    pub(crate) fn book(bids: &[&str], asks: &[&str]) -> OrderBook {
        let lv = |base: Price, step: i64, sizes: &[&str]| -> Vec<Level> {
            sizes
                .iter()
                .enumerate()
                .map(|(i, s)| Level::new(Price(base.0 + step * i as i64), q(s)))
                .collect()
        };
        let mut b = OrderBook::new();
        b.load_snapshot(
            &lv(px("100"), -1_000_000, bids),
            &lv(px("100.01"), 1_000_000, asks),
        );
        b
    }

    pub(crate) fn ctx(now: Nanos, position: &str, risk_state: RiskState) -> StrategyContext {
        StrategyContext {
            now,
            instrument: 3,
            slot: 0,
            position: q(position),
            risk_state,
            book_update_id: None,
        }
    }

    pub(crate) fn placed(out: &[Action]) -> Vec<(Side, Price, Qty)> {
        out.iter()
            .map(|a| match a {
                Action::Place(o) => {
                    assert_eq!(o.kind, OrderKind::Ioc);
                    (o.side, o.price, o.qty)
                }
                Action::Cancel(_) | Action::Amend(_) => panic!("the taker never cancels or amends"),
            })
            .collect()
    }

    pub(crate) fn done(id: u64, status: OrderStatus, reason: Option<RejectReason>) -> OrderUpdate {
        OrderUpdate {
            client_id: id,
            instrument: 3,
            side: Side::Buy,
            status,
            leaves_qty: Qty::ZERO,
            filled_qty: Qty::ZERO,
            reject_reason: reason,
        }
    }
}
