//! Simulated matching for one instrument: the `sim` venue's order matching against a replayed
//! L2 book, used in process by backtests and by the live simulator. Deterministic: the same
//! calls give the same executions.
//!
//! The replayed book is the market without us: our orders never change it (no market impact;
//! an aggressive order that takes a level does not remove it, and two of our orders may take
//! the same displayed size), and our resting orders are tracked beside it.
//!
//! # Orders
//!
//! - **Limit**: the part that crosses executes at once against the opposite side, level by
//!   level from the best up to the limit (taker, at each level's price); the rest rests.
//! - **Market**: takes levels from the best with no limit; what the book cannot fill expires
//!   (rejected with `NoLiquidity` when the opposite side is empty).
//! - **IOC**: like a limit order, but the rest expires instead of resting.
//! - **Post-only**: rejected with `PostOnlyWouldCross` when its price reaches the opposite
//!   best, otherwise rests.
//! - Orders arriving while the book is not synced are rejected with `BookUnavailable`.
//! - **Cancel**: removes a resting order (`Cancelled` with its unfilled quantity); a cancel for
//!   an order that is not resting (filled, expired, unknown) gets `CancelRejected`.
//! - **Amend** (OKX's `amend-order`): a resting order's new price and quantity ordered (fills
//!   included), `Amended` with what is left to fill. A smaller quantity at the same price keeps
//!   the order's place in the queue; any other change puts it at the back of its (new) level.
//!   A new price that reaches the opposite best trades at once for a limit order, as a new
//!   order would (taker), and the rest rests; a post-only order's is refused (a smaller size
//!   at the same price is never judged against the book: the order stays where it rests)
//!   (`PostOnlyWouldCross`). Refused too (`AmendRejected`, the order unchanged): an order that
//!   is not resting (`NotAmendable`), a quantity not above what is filled (`InvalidQty`), an
//!   unsynced book (`BookUnavailable`).
//!
//! # Queue position (conservative)
//!
//! A resting order joins the back of its price level: `queue_ahead` = the level's displayed
//! size when it arrives. It fills as a maker, at its own price, when:
//! - a public **trade at its price** by an aggressor of the other side prints: the traded size
//!   first consumes `queue_ahead`, the excess fills the order (several of our orders at one
//!   price share the excess in arrival order, so one trade's size is never filled twice);
//! - a trade prints **through** its price (a sell aggressor below a resting buy's price, a buy
//!   aggressor above a resting sell's): the level was swept, the whole order fills;
//! - the opposite side of the book **reaches** its price (an ask at or below a resting buy):
//!   the order fills up to the size displayed at prices it crosses.
//!
//! A decrease of the level's displayed size is *not* assumed to come from ahead of us:
//! `queue_ahead = min(queue_ahead, new level size)` (only when the level is smaller than what
//! is ahead can the decrease be known to include orders ahead). This is the conservative
//! ("risk-averse") queue model: it never advances the order faster than the data proves, and a
//! trade followed by the depth update that reflects it is not counted twice.
//!
//! Fees: maker or taker rate of the instrument, rounded up per fill
//! ([`crate::portfolio::fee`]).

use crate::book::OrderBook;
use crate::event::{DepthDiff, Trade};
use crate::portfolio::{Cash, InstrumentSpec};
use crate::risk::RejectReason;
use crate::strategy::{OrderKind, OrderStatus};
use crate::types::{Nanos, Price, Qty, Side};

/// An order as it reaches the matcher.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimRequest {
    /// The engine's order id (unique per matcher).
    pub order_id: u64,
    pub side: Side,
    pub price: Price,
    pub qty: Qty,
    pub kind: OrderKind,
}

/// A resting order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimOrder {
    pub order_id: u64,
    pub side: Side,
    pub price: Price,
    pub qty: Qty,
    pub leaves: Qty,
    /// Displayed size ahead of the order at its price.
    pub queue_ahead: Qty,
    /// When it started resting.
    pub since: Nanos,
    /// Limit or post-only (what an amendment that crosses does).
    pub kind: OrderKind,
}

/// What happened to an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecKind {
    Accepted,
    Rejected(RejectReason),
    Fill {
        price: Price,
        qty: Qty,
        maker: bool,
        fee: Cash,
    },
    Cancelled,
    /// The unfilled rest of an IOC or market order.
    Expired,
    /// The order was not resting (already filled or expired, or unknown).
    CancelRejected,
    /// The order now has this price and quantity ordered (fills included); `leaves` is what is
    /// left to fill.
    Amended {
        price: Price,
        qty: Qty,
    },
    /// An amendment was refused: the order is as it was (`leaves`: its unfilled quantity, 0
    /// when it is not resting).
    AmendRejected(RejectReason),
}

/// An execution report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exec {
    /// Matcher time.
    pub ts: Nanos,
    pub order_id: u64,
    pub kind: ExecKind,
    /// Quantity still working after this report.
    pub leaves: Qty,
}

impl Exec {
    /// The order's status after this report, the one lifecycle rule the backtest, the gateway
    /// and the journal's recovery share: a fill that leaves nothing is `Filled`, any other fill
    /// `PartiallyFilled`; a refused cancel changes nothing (`None`).
    pub const fn status(&self) -> Option<OrderStatus> {
        match self.kind {
            ExecKind::Accepted => Some(OrderStatus::Accepted),
            ExecKind::Rejected(_) => Some(OrderStatus::Rejected),
            ExecKind::Fill { .. } if self.leaves.0 <= 0 => Some(OrderStatus::Filled),
            ExecKind::Fill { .. } => Some(OrderStatus::PartiallyFilled),
            ExecKind::Cancelled => Some(OrderStatus::Cancelled),
            ExecKind::Expired => Some(OrderStatus::Expired),
            // A refused cancel or amendment changes nothing; an amendment keeps the status.
            ExecKind::CancelRejected | ExecKind::Amended { .. } | ExecKind::AmendRejected(_) => {
                None
            }
        }
    }

    /// No report of the order follows this one.
    pub const fn finishes(&self) -> bool {
        match self.status() {
            Some(status) => status.is_final(),
            None => false,
        }
    }
}

/// The matcher of one instrument. See the module documentation.
#[derive(Clone, Debug)]
pub struct Matcher {
    spec: InstrumentSpec,
    resting: Vec<SimOrder>,
}

impl Matcher {
    pub fn new(spec: InstrumentSpec) -> Matcher {
        Matcher {
            spec,
            resting: Vec::with_capacity(16),
        }
    }

    pub fn spec(&self) -> &InstrumentSpec {
        &self.spec
    }

    /// Resting orders, in arrival order.
    pub fn resting(&self) -> &[SimOrder] {
        &self.resting
    }

    #[inline]
    pub fn has_resting(&self) -> bool {
        !self.resting.is_empty()
    }

    /// An order arrives at `ts`; `book` is `None` while the book is not synced.
    pub fn submit(
        &mut self,
        ts: Nanos,
        req: &SimRequest,
        book: Option<&OrderBook>,
        out: &mut Vec<Exec>,
    ) {
        let reject = |reason, out: &mut Vec<Exec>| {
            out.push(Exec {
                ts,
                order_id: req.order_id,
                kind: ExecKind::Rejected(reason),
                leaves: Qty::ZERO,
            });
        };
        let Some(book) = book else {
            reject(RejectReason::BookUnavailable, out);
            return;
        };
        let opposite_best = match req.side {
            Side::Buy => book.best_ask(),
            Side::Sell => book.best_bid(),
        };
        let crosses = opposite_best.is_some_and(|l| reaches(req.side, req.price, l.price));
        match req.kind {
            OrderKind::PostOnly if crosses => {
                reject(RejectReason::PostOnlyWouldCross, out);
                return;
            }
            OrderKind::Market if opposite_best.is_none() => {
                reject(RejectReason::NoLiquidity, out);
                return;
            }
            _ => {}
        }
        out.push(Exec {
            ts,
            order_id: req.order_id,
            kind: ExecKind::Accepted,
            leaves: req.qty,
        });
        let mut leaves = req.qty;
        if crosses || req.kind == OrderKind::Market {
            let limit = (req.kind != OrderKind::Market).then_some(req.price);
            leaves = self.take(ts, req, limit, book, out);
        }
        if leaves.0 == 0 {
            return;
        }
        match req.kind {
            OrderKind::Limit | OrderKind::PostOnly => self.resting.push(SimOrder {
                order_id: req.order_id,
                side: req.side,
                price: req.price,
                qty: req.qty,
                leaves,
                queue_ahead: book.qty_at(req.side, req.price),
                since: ts,
                kind: req.kind,
            }),
            OrderKind::Ioc | OrderKind::Market => out.push(Exec {
                ts,
                order_id: req.order_id,
                kind: ExecKind::Expired,
                leaves: Qty::ZERO,
            }),
        }
    }

    /// Takes liquidity from the opposite side up to `limit`; returns what is left.
    fn take(
        &self,
        ts: Nanos,
        req: &SimRequest,
        limit: Option<Price>,
        book: &OrderBook,
        out: &mut Vec<Exec>,
    ) -> Qty {
        let mut leaves = req.qty.0;
        for level in book.levels(req.side.opposite()) {
            if leaves == 0 || limit.is_some_and(|p| !reaches(req.side, p, level.price)) {
                break;
            }
            let qty = leaves.min(level.qty.0);
            leaves -= qty;
            out.push(Exec {
                ts,
                order_id: req.order_id,
                kind: ExecKind::Fill {
                    price: level.price,
                    qty: Qty(qty),
                    maker: false,
                    fee: self.spec.fee(level.price, Qty(qty), false),
                },
                leaves: Qty(leaves),
            });
        }
        Qty(leaves)
    }

    /// A cancel arrives at `ts`.
    pub fn cancel(&mut self, ts: Nanos, order_id: u64, out: &mut Vec<Exec>) {
        match self.resting.iter().position(|o| o.order_id == order_id) {
            Some(i) => {
                let o = self.resting.remove(i);
                out.push(Exec {
                    ts,
                    order_id,
                    kind: ExecKind::Cancelled,
                    leaves: Qty::ZERO,
                });
                debug_assert!(o.leaves.0 > 0);
            }
            None => out.push(Exec {
                ts,
                order_id,
                kind: ExecKind::CancelRejected,
                leaves: Qty::ZERO,
            }),
        }
    }

    /// An amendment arrives at `ts`: the resting order `order_id` to `price` and `qty` ordered
    /// (fills included). See the module documentation.
    pub fn amend(
        &mut self,
        ts: Nanos,
        order_id: u64,
        price: Price,
        qty: Qty,
        book: Option<&OrderBook>,
        out: &mut Vec<Exec>,
    ) {
        let refuse = |reason, leaves, out: &mut Vec<Exec>| {
            out.push(Exec {
                ts,
                order_id,
                kind: ExecKind::AmendRejected(reason),
                leaves,
            });
        };
        let Some(i) = self.resting.iter().position(|o| o.order_id == order_id) else {
            refuse(RejectReason::NotAmendable, Qty::ZERO, out);
            return;
        };
        let o = self.resting[i];
        let Some(book) = book else {
            refuse(RejectReason::BookUnavailable, o.leaves, out);
            return;
        };
        let filled = o.qty.0 - o.leaves.0;
        if qty.0 <= filled || price.0 <= 0 {
            let reason = if price.0 <= 0 {
                RejectReason::InvalidPrice
            } else {
                RejectReason::InvalidQty
            };
            refuse(reason, o.leaves, out);
            return;
        }
        // A smaller size at the same price stays where it rests, whatever the book did.
        let keeps_place = price == o.price && qty.0 <= o.qty.0;
        let crosses = !keeps_place
            && match o.side {
                Side::Buy => book.best_ask(),
                Side::Sell => book.best_bid(),
            }
            .is_some_and(|l| reaches(o.side, price, l.price));
        if crosses && o.kind == OrderKind::PostOnly {
            refuse(RejectReason::PostOnlyWouldCross, o.leaves, out);
            return;
        }
        let leaves = Qty(qty.0 - filled);
        out.push(Exec {
            ts,
            order_id,
            kind: ExecKind::Amended { price, qty },
            leaves,
        });
        let r = &mut self.resting[i];
        (r.price, r.qty, r.leaves) = (price, qty, leaves);
        if keeps_place {
            return;
        }
        r.queue_ahead = book.qty_at(o.side, price);
        r.since = ts;
        if crosses {
            let r = self.resting.remove(i);
            let req = SimRequest {
                order_id,
                side: r.side,
                price,
                qty: leaves,
                kind: r.kind,
            };
            let rest = self.take(ts, &req, Some(price), book, out);
            if rest.0 > 0 {
                self.resting.push(SimOrder {
                    leaves: rest,
                    queue_ahead: book.qty_at(r.side, price),
                    ..r
                });
            }
        } else {
            // At the back of its level: after every other resting order too.
            let r = self.resting.remove(i);
            self.resting.push(r);
        }
    }

    /// Cancels every resting order (venue-side mass cancel).
    pub fn cancel_all(&mut self, ts: Nanos, out: &mut Vec<Exec>) {
        for o in self.resting.drain(..) {
            out.push(Exec {
                ts,
                order_id: o.order_id,
                kind: ExecKind::Cancelled,
                leaves: Qty::ZERO,
            });
        }
    }

    /// A depth diff was applied to `book` (call only for applied diffs).
    #[inline]
    pub fn on_depth(
        &mut self,
        ts: Nanos,
        diff: &DepthDiff<'_>,
        book: &OrderBook,
        out: &mut Vec<Exec>,
    ) {
        if self.resting.is_empty() {
            return;
        }
        let mut reached = false;
        for o in &mut self.resting {
            let (own, opposite) = match o.side {
                Side::Buy => (diff.bids, diff.asks),
                Side::Sell => (diff.asks, diff.bids),
            };
            for l in own {
                if l.price == o.price && l.qty < o.queue_ahead {
                    o.queue_ahead = l.qty;
                }
            }
            // Only a level this diff puts at or through the order's price can reach it.
            reached |= opposite
                .iter()
                .any(|l| l.qty.0 > 0 && reaches(o.side, o.price, l.price));
        }
        if reached {
            self.fill_crossed(ts, book, out);
        }
    }

    /// The book was replaced (a snapshot): queue positions can only shrink to the new levels.
    pub fn on_book_reset(&mut self, ts: Nanos, book: &OrderBook, out: &mut Vec<Exec>) {
        for o in &mut self.resting {
            o.queue_ahead = o.queue_ahead.min(book.qty_at(o.side, o.price));
        }
        self.fill_crossed(ts, book, out);
    }

    /// Fills resting orders that the opposite side now reaches.
    #[inline]
    fn fill_crossed(&mut self, ts: Nanos, book: &OrderBook, out: &mut Vec<Exec>) {
        let (bid, ask) = (book.best_bid(), book.best_ask());
        let crossed = |o: &SimOrder| {
            let best = match o.side {
                Side::Buy => ask,
                Side::Sell => bid,
            };
            best.is_some_and(|l| reaches(o.side, o.price, l.price))
        };
        if !self.resting.iter().any(crossed) {
            return;
        }
        let spec = self.spec;
        self.resting.retain_mut(|o| {
            let best = match o.side {
                Side::Buy => ask,
                Side::Sell => bid,
            };
            if !best.is_some_and(|l| reaches(o.side, o.price, l.price)) {
                return true;
            }
            let available: i64 = book
                .levels(o.side.opposite())
                .take_while(|l| reaches(o.side, o.price, l.price))
                .fold(0i64, |sum, l| sum.saturating_add(l.qty.0));
            fill_maker(ts, o, Qty(available), &spec, out)
        });
    }

    /// A public trade printed.
    pub fn on_trade(&mut self, ts: Nanos, trade: &Trade, out: &mut Vec<Exec>) {
        if self.resting.is_empty() {
            return;
        }
        // Resting orders on the side the aggressor hit.
        let hit = trade.aggressor.opposite();
        let spec = self.spec;
        let mut unattributed = trade.qty.0;
        self.resting.retain_mut(|o| {
            if o.side != hit {
                return true;
            }
            if o.price == trade.price {
                let ahead = o.queue_ahead.0;
                o.queue_ahead = Qty((ahead - trade.qty.0).max(0));
                let available = (unattributed - ahead).max(0).min(o.leaves.0);
                if available == 0 {
                    return true;
                }
                unattributed -= available;
                fill_maker(ts, o, Qty(available), &spec, out)
            } else if reaches(hit.opposite(), trade.price, o.price) {
                // Traded through: the level was swept.
                fill_maker(ts, o, o.leaves, &spec, out)
            } else {
                true
            }
        });
    }
}

/// True when an order of `side` at `price` reaches `other` (a buy at or above, a sell at or
/// below).
#[inline]
fn reaches(side: Side, price: Price, other: Price) -> bool {
    match side {
        Side::Buy => price >= other,
        Side::Sell => price <= other,
    }
}

/// Fills up to `qty` of a resting order at its price; returns whether it keeps resting.
fn fill_maker(
    ts: Nanos,
    o: &mut SimOrder,
    qty: Qty,
    spec: &InstrumentSpec,
    out: &mut Vec<Exec>,
) -> bool {
    let qty = Qty(qty.0.min(o.leaves.0));
    if qty.0 <= 0 {
        return true;
    }
    o.leaves = o.leaves - qty;
    out.push(Exec {
        ts,
        order_id: o.order_id,
        kind: ExecKind::Fill {
            price: o.price,
            qty,
            maker: true,
            fee: spec.fee(o.price, qty, true),
        },
        leaves: o.leaves,
    });
    o.leaves.0 > 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Header, Level};

    #[test]
    fn a_report_moves_the_order_through_one_lifecycle() {
        let exec = |kind, leaves| Exec {
            ts: 0,
            order_id: 1,
            kind,
            leaves: Qty(leaves),
        };
        let fill = ExecKind::Fill {
            price: Price(1),
            qty: Qty(1),
            maker: true,
            fee: 0,
        };
        let cases = [
            (
                exec(ExecKind::Accepted, 5),
                Some(OrderStatus::Accepted),
                false,
            ),
            (exec(fill, 4), Some(OrderStatus::PartiallyFilled), false),
            (exec(fill, 0), Some(OrderStatus::Filled), true),
            (
                exec(ExecKind::Cancelled, 0),
                Some(OrderStatus::Cancelled),
                true,
            ),
            (exec(ExecKind::Expired, 0), Some(OrderStatus::Expired), true),
            (
                exec(ExecKind::Rejected(RejectReason::VenueRejected), 0),
                Some(OrderStatus::Rejected),
                true,
            ),
            (exec(ExecKind::CancelRejected, 3), None, false),
        ];
        for (e, status, finishes) in cases {
            assert_eq!((e.status(), e.finishes()), (status, finishes), "{e:?}");
        }
    }

    fn spec() -> InstrumentSpec {
        InstrumentSpec {
            tick: Price::from_int(1),
            lot: Qty(1),
            min_notional: 0,
            // 1 bp maker, 5 bps taker.
            maker_fee_bps: 100_000_000,
            taker_fee_bps: 500_000_000,
            contract: crate::portfolio::ContractValue::Unit,
        }
    }

    fn lv(price: i64, qty: i64) -> Level {
        Level::new(Price::from_int(price), Qty::from_int(qty))
    }

    /// Bids 99 (5), 98 (10); asks 101 (3), 102 (4), 103 (6).
    fn book() -> OrderBook {
        let mut b = OrderBook::new();
        b.load_snapshot(
            &[lv(99, 5), lv(98, 10)],
            &[lv(101, 3), lv(102, 4), lv(103, 6)],
        );
        b
    }

    fn req(order_id: u64, side: Side, price: i64, qty: i64, kind: OrderKind) -> SimRequest {
        SimRequest {
            order_id,
            side,
            price: Price::from_int(price),
            qty: Qty::from_int(qty),
            kind,
        }
    }

    fn trade(price: i64, qty: i64, aggressor: Side) -> Trade {
        Trade {
            header: Header::default(),
            id: 0,
            price: Price::from_int(price),
            qty: Qty::from_int(qty),
            aggressor,
        }
    }

    fn diff<'a>(bids: &'a [Level], asks: &'a [Level]) -> DepthDiff<'a> {
        DepthDiff {
            header: Header::default(),
            first_id: 0,
            final_id: 0,
            prev_final_id: None,
            bids,
            asks,
        }
    }

    /// (price, qty, maker) of the fills, in whole units.
    fn fills(out: &[Exec]) -> Vec<(i64, i64, bool)> {
        out.iter()
            .filter_map(|e| match e.kind {
                ExecKind::Fill {
                    price, qty, maker, ..
                } => Some((
                    price.0 / crate::types::SCALE,
                    qty.0 / crate::types::SCALE,
                    maker,
                )),
                _ => None,
            })
            .collect()
    }

    fn kinds(out: &[Exec]) -> Vec<ExecKind> {
        out.iter().map(|e| e.kind).collect()
    }

    #[test]
    fn an_amendment_keeps_the_queue_only_for_a_smaller_size_at_the_same_price() {
        let mut m = Matcher::new(spec());
        let mut out = Vec::new();
        let b = book();
        m.submit(
            1,
            &req(1, Side::Buy, 99, 4, OrderKind::PostOnly),
            Some(&b),
            &mut out,
        );
        m.submit(
            2,
            &req(2, Side::Buy, 99, 2, OrderKind::PostOnly),
            Some(&b),
            &mut out,
        );
        // A public sell of 6 at 99: 5 displayed ahead, 1 to order 1.
        out.clear();
        m.on_trade(3, &trade(99, 6, Side::Sell), &mut out);
        assert_eq!(fills(&out), [(99, 1, true)]);
        // Down to 3 ordered (1 filled): 2 left, its place kept (nothing ahead now).
        out.clear();
        let (p99, p98) = (Price::from_int(99), Price::from_int(98));
        m.amend(4, 1, p99, Qty::from_int(3), Some(&b), &mut out);
        assert_eq!(
            (out[0].kind, out[0].leaves),
            (
                ExecKind::Amended {
                    price: p99,
                    qty: Qty::from_int(3)
                },
                Qty::from_int(2)
            )
        );
        let o = m.resting()[0];
        assert_eq!(
            (o.order_id, o.queue_ahead, o.leaves),
            (1, Qty::ZERO, Qty::from_int(2))
        );
        // A new price: at the back of level 98 (10 displayed ahead), behind order 2.
        out.clear();
        m.amend(5, 1, p98, Qty::from_int(3), Some(&b), &mut out);
        let o = *m.resting().last().expect("resting");
        assert_eq!(
            (o.order_id, o.price, o.queue_ahead, o.since),
            (1, p98, Qty::from_int(10), 5)
        );
        // Not above what is filled, crossing as post-only, unknown, no book: refused, the
        // order as it was.
        for (id, price, qty, book, reason) in [
            (1, 98, 1, Some(&b), RejectReason::InvalidQty),
            (1, 101, 3, Some(&b), RejectReason::PostOnlyWouldCross),
            (9, 98, 3, Some(&b), RejectReason::NotAmendable),
            (1, 97, 3, None, RejectReason::BookUnavailable),
        ] {
            out.clear();
            let before = m.resting().to_vec();
            m.amend(
                6,
                id,
                Price::from_int(price),
                Qty::from_int(qty),
                book,
                &mut out,
            );
            assert_eq!(kinds(&out), [ExecKind::AmendRejected(reason)]);
            assert_eq!(m.resting(), &before[..]);
        }
    }

    #[test]
    fn a_smaller_size_at_the_same_price_is_never_judged_against_the_book() {
        let mut m = Matcher::new(spec());
        let mut out = Vec::new();
        m.submit(
            1,
            &req(1, Side::Buy, 99, 5, OrderKind::PostOnly),
            Some(&book()),
            &mut out,
        );
        // The book has moved through the order's price (an ask at 98).
        let mut through = OrderBook::new();
        through.load_snapshot(&[lv(97, 5)], &[lv(98, 3)]);
        out.clear();
        let p99 = Price::from_int(99);
        m.amend(2, 1, p99, Qty::from_int(4), Some(&through), &mut out);
        assert_eq!(
            kinds(&out),
            [ExecKind::Amended {
                price: p99,
                qty: Qty::from_int(4)
            }]
        );
        // A new price across it is refused for the post-only order.
        out.clear();
        m.amend(
            3,
            1,
            Price::from_int(98),
            Qty::from_int(4),
            Some(&through),
            &mut out,
        );
        assert_eq!(
            kinds(&out),
            [ExecKind::AmendRejected(RejectReason::PostOnlyWouldCross)]
        );
    }

    #[test]
    fn a_limit_order_amended_across_the_book_trades_as_a_taker() {
        let mut m = Matcher::new(spec());
        let mut out = Vec::new();
        let b = book();
        m.submit(
            1,
            &req(1, Side::Buy, 99, 5, OrderKind::Limit),
            Some(&b),
            &mut out,
        );
        out.clear();
        // To 102 for 5: takes 101 (3) and 102 (2), nothing rests.
        m.amend(
            2,
            1,
            Price::from_int(102),
            Qty::from_int(5),
            Some(&b),
            &mut out,
        );
        assert!(matches!(out[0].kind, ExecKind::Amended { .. }));
        assert_eq!(fills(&out), [(101, 3, false), (102, 2, false)]);
        assert_eq!(out.last().map(|e| e.leaves), Some(Qty::ZERO));
        assert!(!m.has_resting());
        // To 101 for 8: takes 3, the rest (5) rests at 101 with 3 displayed ahead.
        m.submit(
            3,
            &req(2, Side::Buy, 99, 8, OrderKind::Limit),
            Some(&b),
            &mut out,
        );
        out.clear();
        m.amend(
            4,
            2,
            Price::from_int(101),
            Qty::from_int(8),
            Some(&b),
            &mut out,
        );
        assert_eq!(fills(&out), [(101, 3, false)]);
        let o = m.resting()[0];
        assert_eq!(
            (o.price, o.leaves),
            (Price::from_int(101), Qty::from_int(5))
        );
    }

    #[test]
    fn market_order_walks_the_book() {
        let mut m = Matcher::new(spec());
        let mut out = Vec::new();
        m.submit(
            1,
            &req(1, Side::Buy, 0, 8, OrderKind::Market),
            Some(&book()),
            &mut out,
        );
        assert_eq!(out[0].kind, ExecKind::Accepted);
        assert_eq!(
            fills(&out),
            [(101, 3, false), (102, 4, false), (103, 1, false)]
        );
        assert_eq!(out.last().map(|e| e.leaves), Some(Qty::ZERO));
        // Taker fee 5 bps of 303 = 0.1515.
        assert_eq!(
            out[1].kind,
            ExecKind::Fill {
                price: Price::from_int(101),
                qty: Qty::from_int(3),
                maker: false,
                fee: 15_150_000
            }
        );
        // More than the book holds: the rest expires.
        out.clear();
        m.submit(
            2,
            &req(2, Side::Sell, 0, 20, OrderKind::Market),
            Some(&book()),
            &mut out,
        );
        assert_eq!(fills(&out), [(99, 5, false), (98, 10, false)]);
        assert_eq!(out.last().map(|e| e.kind), Some(ExecKind::Expired));
        // Nothing on the other side at all.
        out.clear();
        let mut empty = OrderBook::new();
        empty.load_snapshot(&[lv(99, 1)], &[]);
        m.submit(
            3,
            &req(3, Side::Buy, 0, 1, OrderKind::Market),
            Some(&empty),
            &mut out,
        );
        assert_eq!(kinds(&out), [ExecKind::Rejected(RejectReason::NoLiquidity)]);
        assert!(!m.has_resting());
    }

    #[test]
    fn ioc_fills_partially_up_to_its_limit_and_expires() {
        let mut m = Matcher::new(spec());
        let mut out = Vec::new();
        m.submit(
            1,
            &req(1, Side::Buy, 102, 10, OrderKind::Ioc),
            Some(&book()),
            &mut out,
        );
        assert_eq!(fills(&out), [(101, 3, false), (102, 4, false)]);
        assert_eq!(out.last().map(|e| e.kind), Some(ExecKind::Expired));
        // An IOC that does not reach the book expires whole.
        out.clear();
        m.submit(
            2,
            &req(2, Side::Sell, 100, 1, OrderKind::Ioc),
            Some(&book()),
            &mut out,
        );
        assert_eq!(kinds(&out), [ExecKind::Accepted, ExecKind::Expired]);
        assert!(!m.has_resting());
    }

    #[test]
    fn limit_order_takes_then_rests() {
        let mut m = Matcher::new(spec());
        let mut out = Vec::new();
        m.submit(
            1,
            &req(1, Side::Buy, 101, 5, OrderKind::Limit),
            Some(&book()),
            &mut out,
        );
        assert_eq!(fills(&out), [(101, 3, false)]);
        assert_eq!(m.resting().len(), 1);
        assert_eq!(m.resting()[0].leaves, Qty::from_int(2));
        assert_eq!(m.resting()[0].queue_ahead, Qty::ZERO);
    }

    #[test]
    fn a_limit_remainder_is_not_refilled_from_the_liquidity_it_took() {
        let mut m = Matcher::new(spec());
        let mut out = Vec::new();
        let mut b = book();
        m.submit(
            1,
            &req(1, Side::Buy, 101, 5, OrderKind::Limit),
            Some(&b),
            &mut out,
        );
        assert_eq!(fills(&out), [(101, 3, false)]);
        out.clear();
        // A diff elsewhere: the displayed 3 at 101 (already taken) fills nothing more.
        b.apply(Side::Buy, Price::from_int(98), Qty::from_int(11));
        m.on_depth(2, &diff(&[lv(98, 11)], &[]), &b, &mut out);
        assert!(out.is_empty());
        // New size at 101: the remainder (2) fills from it, as a maker at its price.
        b.apply(Side::Sell, Price::from_int(101), Qty::from_int(4));
        m.on_depth(3, &diff(&[], &[lv(101, 4)]), &b, &mut out);
        assert_eq!(fills(&out), [(101, 2, true)]);
        assert!(!m.has_resting());
    }

    #[test]
    fn post_only_that_would_cross_is_rejected() {
        let mut m = Matcher::new(spec());
        let mut out = Vec::new();
        m.submit(
            1,
            &req(1, Side::Buy, 101, 1, OrderKind::PostOnly),
            Some(&book()),
            &mut out,
        );
        assert_eq!(
            kinds(&out),
            [ExecKind::Rejected(RejectReason::PostOnlyWouldCross)]
        );
        out.clear();
        m.submit(
            2,
            &req(2, Side::Sell, 99, 1, OrderKind::PostOnly),
            Some(&book()),
            &mut out,
        );
        assert_eq!(
            kinds(&out),
            [ExecKind::Rejected(RejectReason::PostOnlyWouldCross)]
        );
        out.clear();
        m.submit(
            3,
            &req(3, Side::Buy, 100, 1, OrderKind::PostOnly),
            Some(&book()),
            &mut out,
        );
        assert_eq!(kinds(&out), [ExecKind::Accepted]);
        assert_eq!(m.resting()[0].queue_ahead, Qty::ZERO);
        // Without a synced book nothing is accepted.
        out.clear();
        m.submit(
            4,
            &req(4, Side::Buy, 100, 1, OrderKind::PostOnly),
            None,
            &mut out,
        );
        assert_eq!(
            kinds(&out),
            [ExecKind::Rejected(RejectReason::BookUnavailable)]
        );
    }

    #[test]
    fn queue_position_is_consumed_by_trades_before_filling() {
        let mut m = Matcher::new(spec());
        let mut out = Vec::new();
        let mut b = book();
        // Join the 99 bid behind 5.
        m.submit(
            1,
            &req(1, Side::Buy, 99, 2, OrderKind::Limit),
            Some(&b),
            &mut out,
        );
        assert_eq!(m.resting()[0].queue_ahead, Qty::from_int(5));
        out.clear();
        // A buy aggressor does nothing to a bid.
        m.on_trade(2, &trade(99, 5, Side::Buy), &mut out);
        assert!(out.is_empty());
        // 4 traded at 99: 1 still ahead.
        m.on_trade(3, &trade(99, 4, Side::Sell), &mut out);
        assert!(out.is_empty());
        assert_eq!(m.resting()[0].queue_ahead, Qty::from_int(1));
        // The depth update reflecting that trade (5 -> 1) changes nothing more.
        b.apply(Side::Buy, Price::from_int(99), Qty::from_int(1));
        m.on_depth(3, &diff(&[lv(99, 1)], &[]), &b, &mut out);
        assert_eq!(m.resting()[0].queue_ahead, Qty::from_int(1));
        // 2 more: 1 for the queue, 1 for us (maker, at our price, 1 bp fee).
        m.on_trade(4, &trade(99, 2, Side::Sell), &mut out);
        assert_eq!(fills(&out), [(99, 1, true)]);
        assert_eq!(
            out[0].kind,
            ExecKind::Fill {
                price: Price::from_int(99),
                qty: Qty::from_int(1),
                maker: true,
                fee: 990_000
            }
        );
        assert_eq!(out[0].leaves, Qty::from_int(1));
        assert_eq!(m.resting()[0].queue_ahead, Qty::ZERO);
        // The last unit on the next trade; the order is gone.
        out.clear();
        m.on_trade(5, &trade(99, 7, Side::Sell), &mut out);
        assert_eq!(fills(&out), [(99, 1, true)]);
        assert!(!m.has_resting());
    }

    #[test]
    fn level_decreases_are_conservative_and_trade_through_fills() {
        let mut m = Matcher::new(spec());
        let mut out = Vec::new();
        let mut b = book();
        m.submit(
            1,
            &req(1, Side::Sell, 102, 3, OrderKind::Limit),
            Some(&b),
            &mut out,
        );
        assert_eq!(m.resting()[0].queue_ahead, Qty::from_int(4));
        out.clear();
        // 4 -> 6 (growth behind us) then 6 -> 3: only what is below the queue counts.
        b.apply(Side::Sell, Price::from_int(102), Qty::from_int(6));
        m.on_depth(1, &diff(&[], &[lv(102, 6)]), &b, &mut out);
        assert_eq!(m.resting()[0].queue_ahead, Qty::from_int(4));
        b.apply(Side::Sell, Price::from_int(102), Qty::from_int(3));
        m.on_depth(2, &diff(&[], &[lv(102, 3)]), &b, &mut out);
        assert_eq!(m.resting()[0].queue_ahead, Qty::from_int(3));
        // A level change at another price does nothing.
        m.on_depth(3, &diff(&[], &[lv(103, 1)]), &b, &mut out);
        assert_eq!(m.resting()[0].queue_ahead, Qty::from_int(3));
        assert!(out.is_empty());
        // A buy aggressor trades at 103: through our 102, the whole order fills.
        m.on_trade(4, &trade(103, 1, Side::Buy), &mut out);
        assert_eq!(fills(&out), [(102, 3, true)]);
        assert!(!m.has_resting());
    }

    #[test]
    fn the_opposite_side_reaching_a_resting_order_fills_it() {
        let mut m = Matcher::new(spec());
        let mut out = Vec::new();
        let mut b = book();
        m.submit(
            1,
            &req(1, Side::Buy, 100, 5, OrderKind::PostOnly),
            Some(&b),
            &mut out,
        );
        out.clear();
        // Asks come down to 100 (size 2): 2 fill at our price.
        b.apply(Side::Sell, Price::from_int(100), Qty::from_int(2));
        m.on_depth(5, &diff(&[], &[lv(100, 2)]), &b, &mut out);
        assert_eq!(fills(&out), [(100, 2, true)]);
        assert_eq!(m.resting()[0].leaves, Qty::from_int(3));
    }

    #[test]
    fn own_orders_at_one_price_never_share_the_same_traded_size() {
        let mut m = Matcher::new(spec());
        let mut out = Vec::new();
        let mut empty_bid = OrderBook::new();
        empty_bid.load_snapshot(&[], &[lv(101, 1)]);
        m.submit(
            1,
            &req(1, Side::Buy, 99, 2, OrderKind::Limit),
            Some(&empty_bid),
            &mut out,
        );
        m.submit(
            2,
            &req(2, Side::Buy, 99, 2, OrderKind::Limit),
            Some(&empty_bid),
            &mut out,
        );
        out.clear();
        m.on_trade(3, &trade(99, 3, Side::Sell), &mut out);
        assert_eq!(out.iter().map(|e| e.order_id).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(fills(&out), [(99, 2, true), (99, 1, true)]);
    }

    #[test]
    fn cancel_removes_a_resting_order_once() {
        let mut m = Matcher::new(spec());
        let mut out = Vec::new();
        m.submit(
            1,
            &req(7, Side::Buy, 98, 1, OrderKind::Limit),
            Some(&book()),
            &mut out,
        );
        out.clear();
        m.cancel(2, 7, &mut out);
        m.cancel(3, 7, &mut out);
        assert_eq!(kinds(&out), [ExecKind::Cancelled, ExecKind::CancelRejected]);
        assert!(!m.has_resting());
        m.submit(
            4,
            &req(8, Side::Buy, 98, 1, OrderKind::Limit),
            Some(&book()),
            &mut out,
        );
        m.submit(
            4,
            &req(9, Side::Sell, 104, 1, OrderKind::Limit),
            Some(&book()),
            &mut out,
        );
        out.clear();
        m.cancel_all(5, &mut out);
        assert_eq!(out.iter().map(|e| e.order_id).collect::<Vec<_>>(), [8, 9]);
        assert!(!m.has_resting());
    }

    #[test]
    fn snapshot_shrinks_queues() {
        let mut m = Matcher::new(spec());
        let mut out = Vec::new();
        m.submit(
            1,
            &req(1, Side::Buy, 98, 1, OrderKind::Limit),
            Some(&book()),
            &mut out,
        );
        assert_eq!(m.resting()[0].queue_ahead, Qty::from_int(10));
        let mut b = OrderBook::new();
        b.load_snapshot(&[lv(98, 4)], &[lv(101, 1)]);
        m.on_book_reset(2, &b, &mut out);
        assert_eq!(m.resting()[0].queue_ahead, Qty::from_int(4));
    }
}
