//! The order lifecycle, once: an order's identity-free state (side, price, quantity, filled
//! quantity, status) and the one state machine every holder of an order applies: the backtest
//! driver (its orders in flight), the sim venue (the orders it holds), the live gateway (orders
//! it sent and that have not finished) and the journal's recovery (orders with no final
//! report). Each holder keeps its own identity and extra fields beside an [`OrderLifecycle`];
//! the transitions and the fill accounting are here.
//!
//! ```text
//!   Sent --accept--> New --fill--> PartiallyFilled --fill--> Filled
//!    |                |  \               |
//!    |                |   `--fill (all)--+----------------> Filled
//!    +--reject--------+--> Rejected      +--cancel/expire/expire_in_match--> Canceled/Expired/
//!    +--fill/cancel/expire/expire_in_match (an acknowledgement the holder did not see)      ExpiredInMatch
//! ```
//!
//! Final statuses (Filled, Canceled, Expired, ExpiredInMatch, Rejected) take no event. A fill
//! beyond the order's quantity and a fill of zero or less are refused, as is a rejection of an
//! order that has fills. An amendment (`Amended`: a new price and quantity ordered, fills
//! included) keeps the status; one that would leave nothing to fill is refused. A refused event leaves the lifecycle as it was. An acknowledgement of
//! an order that is already acknowledged (or partly filled: a late `New` after a fill that a
//! catch-up reported first) changes nothing and is not an error.

use crate::matching::ExecKind;
use crate::strategy::OrderStatus;
use crate::types::{Price, Qty, Side};

/// Where an order is in its lifecycle (the venue's statuses, plus `Sent` before its
/// acknowledgement).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LifecycleStatus {
    /// Sent, not acknowledged yet.
    Sent,
    /// Acknowledged, nothing filled.
    New,
    PartiallyFilled,
    Filled,
    Canceled,
    /// An IOC or market order's unfilled rest (or an order the venue let expire).
    Expired,
    /// Expired by self-trade prevention.
    ExpiredInMatch,
    Rejected,
}

impl LifecycleStatus {
    /// No event follows.
    pub const fn is_final(self) -> bool {
        !matches!(
            self,
            LifecycleStatus::Sent | LifecycleStatus::New | LifecycleStatus::PartiallyFilled
        )
    }

    /// The venue acknowledged the order (it has a status beyond `Sent`).
    pub const fn is_acknowledged(self) -> bool {
        !matches!(self, LifecycleStatus::Sent)
    }

    /// The status as a strategy hears it (self-trade prevention is an expiry there).
    pub const fn to_strategy(self) -> OrderStatus {
        match self {
            LifecycleStatus::Sent => OrderStatus::Sent,
            LifecycleStatus::New => OrderStatus::Accepted,
            LifecycleStatus::PartiallyFilled => OrderStatus::PartiallyFilled,
            LifecycleStatus::Filled => OrderStatus::Filled,
            LifecycleStatus::Canceled => OrderStatus::Cancelled,
            LifecycleStatus::Expired | LifecycleStatus::ExpiredInMatch => OrderStatus::Expired,
            LifecycleStatus::Rejected => OrderStatus::Rejected,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            LifecycleStatus::Sent => "sent",
            LifecycleStatus::New => "new",
            LifecycleStatus::PartiallyFilled => "partially_filled",
            LifecycleStatus::Filled => "filled",
            LifecycleStatus::Canceled => "canceled",
            LifecycleStatus::Expired => "expired",
            LifecycleStatus::ExpiredInMatch => "expired_in_match",
            LifecycleStatus::Rejected => "rejected",
        }
    }
}

/// Something that happens to an order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderEvent {
    Accepted,
    /// A fill of this quantity.
    Fill(Qty),
    Canceled,
    Expired,
    ExpiredInMatch,
    Rejected,
    /// The venue amended the order: its price and the quantity ordered (fills included).
    Amended {
        price: Price,
        qty: Qty,
    },
}

impl OrderEvent {
    /// The event an execution report carries (`None` for a refused cancel or amendment, which
    /// change nothing).
    pub const fn of_exec(kind: &ExecKind) -> Option<OrderEvent> {
        match *kind {
            ExecKind::Accepted => Some(OrderEvent::Accepted),
            ExecKind::Rejected(_) => Some(OrderEvent::Rejected),
            ExecKind::Fill { qty, .. } => Some(OrderEvent::Fill(qty)),
            ExecKind::Cancelled => Some(OrderEvent::Canceled),
            ExecKind::Expired => Some(OrderEvent::Expired),
            ExecKind::Amended { price, qty } => Some(OrderEvent::Amended { price, qty }),
            ExecKind::CancelRejected | ExecKind::AmendRejected(_) => None,
        }
    }
}

/// An event the lifecycle refuses (the lifecycle is left as it was).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LifecycleError {
    #[error("order is {} already: no {event:?} can follow", from.as_str())]
    Final {
        from: LifecycleStatus,
        event: OrderEvent,
    },
    #[error(
        "a fill of {} on an order of {} with {} filled would overfill it",
        fill.0, ordered.0, filled.0
    )]
    Overfill {
        ordered: Qty,
        filled: Qty,
        fill: Qty,
    },
    #[error("a fill of {} (not positive)", .0 .0)]
    NonPositiveFill(Qty),
    #[error("an order with {} filled cannot be rejected", .0 .0)]
    RejectAfterFill(Qty),
    #[error("an amendment to {} ordered would leave nothing to fill ({} filled)", qty.0, filled.0)]
    AmendBelowFilled { qty: Qty, filled: Qty },
}

/// One order's state. See the module documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderLifecycle {
    side: Side,
    price: Price,
    qty: Qty,
    filled: Qty,
    status: LifecycleStatus,
}

impl OrderLifecycle {
    /// An order just sent (status `Sent`).
    pub const fn sent(side: Side, price: Price, qty: Qty) -> OrderLifecycle {
        OrderLifecycle {
            side,
            price,
            qty,
            filled: Qty::ZERO,
            status: LifecycleStatus::Sent,
        }
    }

    /// An order the holder acknowledges as it takes it (a venue: status `New`).
    pub const fn acknowledged(side: Side, price: Price, qty: Qty) -> OrderLifecycle {
        OrderLifecycle {
            status: LifecycleStatus::New,
            ..OrderLifecycle::sent(side, price, qty)
        }
    }

    pub const fn side(&self) -> Side {
        self.side
    }

    pub const fn price(&self) -> Price {
        self.price
    }

    /// The quantity ordered.
    pub const fn qty(&self) -> Qty {
        self.qty
    }

    pub const fn filled(&self) -> Qty {
        self.filled
    }

    /// What is still to fill (0 once final).
    pub const fn leaves(&self) -> Qty {
        if self.status.is_final() {
            Qty::ZERO
        } else {
            Qty(self.qty.0 - self.filled.0)
        }
    }

    /// The quantity ordered less the quantity filled, whatever the status.
    pub const fn unfilled(&self) -> Qty {
        Qty(self.qty.0 - self.filled.0)
    }

    pub const fn status(&self) -> LifecycleStatus {
        self.status
    }

    pub const fn is_final(&self) -> bool {
        self.status.is_final()
    }

    /// Applies an event; returns the new status. A refused event changes nothing.
    pub fn apply(&mut self, event: OrderEvent) -> Result<LifecycleStatus, LifecycleError> {
        use LifecycleStatus as S;
        if self.status.is_final() {
            return Err(LifecycleError::Final {
                from: self.status,
                event,
            });
        }
        self.status = match event {
            OrderEvent::Accepted => match self.status {
                S::Sent => S::New,
                // A late or repeated acknowledgement.
                other => other,
            },
            OrderEvent::Fill(qty) => {
                if qty.0 <= 0 {
                    return Err(LifecycleError::NonPositiveFill(qty));
                }
                let filled = self.filled.0.checked_add(qty.0);
                match filled {
                    Some(f) if f <= self.qty.0 => {
                        self.filled = Qty(f);
                        if f == self.qty.0 {
                            S::Filled
                        } else {
                            S::PartiallyFilled
                        }
                    }
                    _ => {
                        return Err(LifecycleError::Overfill {
                            ordered: self.qty,
                            filled: self.filled,
                            fill: qty,
                        })
                    }
                }
            }
            OrderEvent::Canceled => S::Canceled,
            OrderEvent::Expired => S::Expired,
            OrderEvent::ExpiredInMatch => S::ExpiredInMatch,
            OrderEvent::Rejected => {
                if self.filled.0 != 0 {
                    return Err(LifecycleError::RejectAfterFill(self.filled));
                }
                S::Rejected
            }
            OrderEvent::Amended { price, qty } => {
                if qty.0 <= self.filled.0 {
                    return Err(LifecycleError::AmendBelowFilled {
                        qty,
                        filled: self.filled,
                    });
                }
                self.price = price;
                self.qty = qty;
                self.status
            }
        };
        Ok(self.status)
    }

    /// [`OrderLifecycle::apply`] of an execution report's event; a refused cancel changes
    /// nothing (and is refused on a final order like any event).
    pub fn apply_exec(&mut self, kind: &ExecKind) -> Result<LifecycleStatus, LifecycleError> {
        match OrderEvent::of_exec(kind) {
            Some(event) => self.apply(event),
            None if self.status.is_final() => Err(LifecycleError::Final {
                from: self.status,
                event: OrderEvent::Canceled,
            }),
            None => Ok(self.status),
        }
    }

    /// `apply(Accepted)`.
    pub fn accept(&mut self) -> Result<LifecycleStatus, LifecycleError> {
        self.apply(OrderEvent::Accepted)
    }

    /// `apply(Fill(qty))`; returns what is left to fill.
    pub fn apply_fill(&mut self, qty: Qty) -> Result<Qty, LifecycleError> {
        self.apply(OrderEvent::Fill(qty))?;
        Ok(self.leaves())
    }

    /// `apply(Canceled)`.
    pub fn apply_cancel(&mut self) -> Result<LifecycleStatus, LifecycleError> {
        self.apply(OrderEvent::Canceled)
    }

    /// A fill the venue reported, booked whatever it says: the part that fits the order is
    /// applied; returns the part beyond it (an overfill, 0 normally), which the caller books as
    /// traded (the venue traded it) and counts. On a final order the whole quantity is beyond.
    pub fn apply_fill_capped(&mut self, qty: Qty) -> Result<Qty, LifecycleError> {
        if qty.0 <= 0 {
            return Err(LifecycleError::NonPositiveFill(qty));
        }
        if self.is_final() {
            // Nothing fits a finished order: the venue traded it all the same.
            return Ok(qty);
        }
        match self.apply(OrderEvent::Fill(qty)) {
            Ok(_) => Ok(Qty::ZERO),
            Err(LifecycleError::Overfill { .. }) => {
                let fits = self.unfilled();
                if fits.0 > 0 {
                    self.apply(OrderEvent::Fill(fits))?;
                }
                Ok(Qty(qty.0 - fits.0))
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn order(qty: i64) -> OrderLifecycle {
        OrderLifecycle::sent(Side::Buy, Price(100), Qty(qty))
    }

    #[test]
    fn an_amendment_changes_price_and_quantity_not_the_status() {
        let mut o = order(10);
        o.accept().expect("accepted");
        o.apply_fill(Qty(4)).expect("filled");
        let amended = OrderEvent::Amended {
            price: Price(99),
            qty: Qty(6),
        };
        assert_eq!(o.apply(amended), Ok(LifecycleStatus::PartiallyFilled));
        assert_eq!(
            (o.price(), o.qty(), o.leaves()),
            (Price(99), Qty(6), Qty(2))
        );
        // Down to what is filled (or below): nothing would be left, refused, nothing changes.
        let too_small = OrderEvent::Amended {
            price: Price(98),
            qty: Qty(4),
        };
        assert_eq!(
            o.apply(too_small),
            Err(LifecycleError::AmendBelowFilled {
                qty: Qty(4),
                filled: Qty(4)
            })
        );
        assert_eq!((o.price(), o.qty()), (Price(99), Qty(6)));
        assert_eq!(o.apply_fill(Qty(2)), Ok(Qty::ZERO));
        assert!(
            o.apply(amended).is_err(),
            "a filled order takes no amendment"
        );
    }

    #[test]
    fn sent_accepted_filled_in_two() {
        let mut o = order(10);
        assert_eq!(o.status(), LifecycleStatus::Sent);
        assert_eq!(o.accept(), Ok(LifecycleStatus::New));
        assert_eq!(o.apply_fill(Qty(4)), Ok(Qty(6)));
        assert_eq!(o.status(), LifecycleStatus::PartiallyFilled);
        assert_eq!(
            o.accept(),
            Ok(LifecycleStatus::PartiallyFilled),
            "a late ack"
        );
        assert_eq!(o.apply_fill(Qty(6)), Ok(Qty::ZERO));
        assert_eq!(o.status(), LifecycleStatus::Filled);
        assert_eq!(o.filled(), Qty(10));
        assert!(o.is_final());
    }

    #[test]
    fn overfill_is_refused_and_changes_nothing() {
        let mut o = order(10);
        o.apply_fill(Qty(7)).expect("fits");
        let before = o;
        assert_eq!(
            o.apply_fill(Qty(4)),
            Err(LifecycleError::Overfill {
                ordered: Qty(10),
                filled: Qty(7),
                fill: Qty(4)
            })
        );
        assert_eq!(o, before);
        assert_eq!(
            o.apply_fill(Qty(0)),
            Err(LifecycleError::NonPositiveFill(Qty(0)))
        );
        assert_eq!(
            o.apply_fill(Qty(-1)),
            Err(LifecycleError::NonPositiveFill(Qty(-1)))
        );
        assert_eq!(o, before);
    }

    #[test]
    fn capped_fill_books_what_fits_and_returns_the_rest() {
        let mut o = order(10);
        assert_eq!(o.apply_fill_capped(Qty(7)), Ok(Qty::ZERO));
        assert_eq!(o.apply_fill_capped(Qty(5)), Ok(Qty(2)));
        assert_eq!(o.status(), LifecycleStatus::Filled);
        assert_eq!(o.filled(), Qty(10));
        // On a finished order the whole fill is beyond it (the venue traded it: an overfill
        // the holder books and counts, never a refusal that would lose it).
        assert_eq!(o.apply_fill_capped(Qty(1)), Ok(Qty(1)));
        assert_eq!(o.filled(), Qty(10));
        let mut cancelled = order(10);
        cancelled.apply_cancel().expect("from Sent");
        assert_eq!(cancelled.apply_fill_capped(Qty(3)), Ok(Qty(3)));
        assert_eq!(cancelled.status(), LifecycleStatus::Canceled);
        assert_eq!(
            o.apply_fill_capped(Qty(0)),
            Err(LifecycleError::NonPositiveFill(Qty(0)))
        );
    }

    #[test]
    fn final_statuses_take_no_event() {
        for end in [
            OrderEvent::Canceled,
            OrderEvent::Expired,
            OrderEvent::ExpiredInMatch,
            OrderEvent::Rejected,
        ] {
            let mut o = order(10);
            let status = o.apply(end).expect("from Sent");
            assert!(status.is_final());
            for next in [
                OrderEvent::Accepted,
                OrderEvent::Fill(Qty(1)),
                OrderEvent::Canceled,
                OrderEvent::Expired,
                OrderEvent::ExpiredInMatch,
                OrderEvent::Rejected,
            ] {
                assert_eq!(
                    o.apply(next),
                    Err(LifecycleError::Final {
                        from: status,
                        event: next
                    })
                );
            }
            assert!(o.apply_exec(&ExecKind::CancelRejected).is_err());
        }
    }

    #[test]
    fn a_filled_order_cannot_be_rejected_but_can_be_cancelled() {
        let mut o = order(10);
        o.accept().expect("ack");
        o.apply_fill(Qty(3)).expect("fits");
        assert_eq!(
            o.apply(OrderEvent::Rejected),
            Err(LifecycleError::RejectAfterFill(Qty(3)))
        );
        assert_eq!(o.apply_cancel(), Ok(LifecycleStatus::Canceled));
        assert_eq!(o.leaves(), Qty::ZERO);
        assert_eq!(o.unfilled(), Qty(7));
    }

    #[test]
    fn exec_reports_map_to_events() {
        let mut o = order(10);
        assert_eq!(o.apply_exec(&ExecKind::Accepted), Ok(LifecycleStatus::New));
        assert_eq!(
            o.apply_exec(&ExecKind::CancelRejected),
            Ok(LifecycleStatus::New)
        );
        let fill = ExecKind::Fill {
            price: Price(100),
            qty: Qty(10),
            maker: true,
            fee: 0,
        };
        assert_eq!(o.apply_exec(&fill), Ok(LifecycleStatus::Filled));
        assert_eq!(
            LifecycleStatus::ExpiredInMatch.to_strategy(),
            OrderStatus::Expired
        );
        assert_eq!(LifecycleStatus::New.to_strategy(), OrderStatus::Accepted);
    }

    fn event() -> impl Strategy<Value = OrderEvent> {
        prop_oneof![
            Just(OrderEvent::Accepted),
            (-2i64..12).prop_map(|q| OrderEvent::Fill(Qty(q))),
            (-2i64..12).prop_map(|q| OrderEvent::Fill(Qty(q))),
            (-2i64..12).prop_map(|q| OrderEvent::Fill(Qty(q))),
            Just(OrderEvent::Canceled),
            Just(OrderEvent::Expired),
            Just(OrderEvent::ExpiredInMatch),
            Just(OrderEvent::Rejected),
        ]
    }

    proptest! {
        /// Against a model: filled is the sum of the accepted fills and never beyond the order,
        /// a refused event changes nothing, final statuses absorb everything, and the status
        /// follows the filled quantity.
        #[test]
        fn any_event_sequence_keeps_the_accounting(
            qty in 1i64..20,
            events in proptest::collection::vec(event(), 0..24),
        ) {
            let mut o = order(qty);
            let mut model_filled = 0i64;
            let mut model_final = false;
            for e in events {
                let before = o;
                match o.apply(e) {
                    Ok(status) => {
                        prop_assert!(!model_final);
                        if let OrderEvent::Fill(q) = e {
                            prop_assert!(q.0 > 0);
                            model_filled += q.0;
                        }
                        prop_assert_eq!(status, o.status());
                        model_final = status.is_final();
                    }
                    Err(err) => {
                        prop_assert_eq!(o, before);
                        match err {
                            LifecycleError::Final { .. } => prop_assert!(model_final),
                            LifecycleError::Overfill { .. } => {
                                let OrderEvent::Fill(q) = e else {
                                    return Err(TestCaseError::fail("overfill without a fill"));
                                };
                                prop_assert!(model_filled + q.0 > qty);
                            }
                            LifecycleError::NonPositiveFill(q) => prop_assert!(q.0 <= 0),
                            LifecycleError::RejectAfterFill(f) => {
                                prop_assert!(f.0 > 0);
                                prop_assert_eq!(e, OrderEvent::Rejected);
                            }
                            LifecycleError::AmendBelowFilled { qty, filled } => {
                                prop_assert!(qty.0 <= filled.0);
                            }
                        }
                    }
                }
                prop_assert_eq!(o.filled().0, model_filled);
                prop_assert!(o.filled().0 <= qty);
                prop_assert_eq!(o.status() == LifecycleStatus::Filled, model_filled == qty);
                if o.status() == LifecycleStatus::PartiallyFilled {
                    prop_assert!(model_filled > 0 && model_filled < qty);
                }
                if !o.is_final() {
                    prop_assert_eq!(o.leaves().0, qty - model_filled);
                }
            }
        }

        /// A capped fill books exactly the part that fits and hands back the rest.
        #[test]
        fn capped_fills_never_overfill(
            qty in 1i64..20,
            fills in proptest::collection::vec(1i64..12, 0..8),
        ) {
            let mut o = order(qty);
            let mut reported = 0i64;
            let mut beyond = 0i64;
            for f in fills {
                match o.apply_fill_capped(Qty(f)) {
                    Ok(rest) => {
                        reported += f;
                        beyond += rest.0;
                    }
                    Err(LifecycleError::Final { .. }) => prop_assert!(o.is_final()),
                    Err(e) => return Err(TestCaseError::fail(e.to_string())),
                }
                prop_assert_eq!(o.filled().0 + beyond, reported);
                prop_assert!(o.filled().0 <= qty);
            }
        }
    }
}
