//! The driver in live mode (exchanges external, as `rt-engine run` uses it): orders leave
//! through `drain_requests`, the venue's reports come back through `on_exec`, the event log
//! records what happened, and an operator's pause stops every new order (flatten excepted).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};

use common::{example_manifest, random_walk};
use rt_core::{
    Action, Exec, ExecKind, FillReport, InstrumentId, NewOrder, OrderBook, OrderKind, OrderStatus,
    OrderUpdate, Qty, RejectReason, Side, Strategy, StrategyContext, Trader, TraderConfig,
    TraderEvent, VenueRequest,
};

const T0: i64 = 1_723_161_600_000_000_000;

/// Places one buy on its first book and another every time an order update arrives: a
/// strategy that places from a callback other than `on_book`.
#[derive(Debug)]
struct Eager {
    instruments: Vec<InstrumentId>,
    next: u64,
    placed_first: bool,
    replaced: bool,
    updates: Arc<Mutex<Vec<OrderUpdate>>>,
}

impl Eager {
    fn order(&mut self, ctx: &StrategyContext, book: Option<&OrderBook>) -> Option<Action> {
        let _ = ctx;
        let bid = book.and_then(|b| b.best_bid())?;
        self.next += 1;
        Some(Action::Place(NewOrder {
            client_id: self.next,
            instrument: 0,
            side: Side::Buy,
            price: bid.price,
            qty: Qty::parse(b"0.001").unwrap(),
            kind: OrderKind::PostOnly,
        }))
    }
}

impl Strategy for Eager {
    fn kind(&self) -> &'static str {
        "eager"
    }
    fn instruments(&self) -> &[InstrumentId] {
        &self.instruments
    }
    fn on_book(&mut self, ctx: &StrategyContext, book: &OrderBook, out: &mut Vec<Action>) {
        if !self.placed_first {
            self.placed_first = true;
            out.extend(self.order(ctx, Some(book)));
        }
    }
    fn on_fill(&mut self, _ctx: &StrategyContext, _fill: &FillReport, _out: &mut Vec<Action>) {}
    fn on_order_update(
        &mut self,
        _ctx: &StrategyContext,
        update: &OrderUpdate,
        out: &mut Vec<Action>,
    ) {
        self.updates.lock().unwrap().push(*update);
        if update.status != OrderStatus::Cancelled || self.replaced {
            return;
        }
        // Once: a new order from a report callback.
        self.replaced = true;
        self.next += 1;
        out.push(Action::Place(NewOrder {
            client_id: self.next,
            instrument: 0,
            side: Side::Buy,
            price: rt_core::Price::parse(b"1").unwrap(),
            qty: Qty::parse(b"0.001").unwrap(),
            kind: OrderKind::PostOnly,
        }));
    }
}

fn live_driver() -> (Trader, Arc<Mutex<Vec<OrderUpdate>>>) {
    let mut config = TraderConfig::from_manifest(&example_manifest());
    config.strategies.clear();
    config.max_records = 0;
    let mut bt = Trader::new(config).unwrap();
    bt.set_external(0).unwrap();
    bt.enable_event_log();
    let updates = Arc::new(Mutex::new(Vec::new()));
    bt.add_strategy(
        "eager",
        Box::new(Eager {
            instruments: vec![0],
            next: 0,
            placed_first: false,
            replaced: false,
            updates: updates.clone(),
        }),
    )
    .unwrap();
    (bt, updates)
}

fn feed_until_request(bt: &mut Trader, requests: &mut Vec<VenueRequest>) -> i64 {
    let tape = random_walk(3, 5_000, T0);
    for i in 0..tape.len() {
        let ev = tape.event(i);
        bt.on_event(0, &ev);
        bt.drain_requests(requests);
        if !requests.is_empty() {
            return ev.header().local_ns;
        }
    }
    panic!("no order in 5000 events");
}

#[test]
fn orders_leave_through_the_outbox_and_reports_come_back() {
    let (mut bt, _) = live_driver();
    let mut requests = Vec::new();
    let now = feed_until_request(&mut bt, &mut requests);
    let VenueRequest::New { request, .. } = requests[0] else {
        panic!("expected a new order, got {:?}", requests[0]);
    };
    // Nothing is matched in process: the order is only acknowledged by its report.
    assert_eq!(bt.open_orders().count(), 1);
    let fill = ExecKind::Fill {
        price: request.price,
        qty: request.qty,
        maker: true,
        fee: 5,
    };
    bt.on_exec(
        now + 1,
        Exec {
            ts: now + 1,
            order_id: request.order_id,
            kind: fill,
            leaves: Qty::ZERO,
        },
    );
    assert_eq!(
        bt.portfolio().qty(0),
        request.qty,
        "the fill reached the portfolio"
    );
    let mut events = Vec::new();
    bt.drain_events(&mut events);
    assert!(events
        .iter()
        .any(|e| matches!(e, TraderEvent::Fill(f) if f.order_id == request.order_id)));
    assert!(events.iter().any(|e| matches!(e, TraderEvent::Position(_))));
    assert!(events.iter().any(
        |e| matches!(e, TraderEvent::Order(o) if o.order_id == request.order_id && o.status == OrderStatus::Filled)
    ));
    // A duplicated report changes nothing.
    bt.on_exec(
        now + 2,
        Exec {
            ts: now + 2,
            order_id: request.order_id,
            kind: fill,
            leaves: Qty::ZERO,
        },
    );
    assert_eq!(bt.portfolio().qty(0), request.qty);
}

#[test]
fn a_pause_stops_orders_from_every_callback_but_flatten_still_closes() {
    let (mut bt, updates) = live_driver();
    let mut requests = Vec::new();
    let now = feed_until_request(&mut bt, &mut requests);
    let VenueRequest::New { request, .. } = requests[0] else {
        panic!("expected a new order");
    };
    requests.clear();
    // A partial fill: the account is long, the order still open.
    let half = Qty(request.qty.0 / 2);
    bt.on_exec(
        now + 1,
        Exec {
            ts: now + 1,
            order_id: request.order_id,
            kind: ExecKind::Fill {
                price: request.price,
                qty: half,
                maker: true,
                fee: 0,
            },
            leaves: half,
        },
    );
    bt.drain_requests(&mut requests);
    requests.clear();
    bt.set_paused(true);
    bt.drain_requests(&mut requests);
    assert!(
        requests
            .iter()
            .all(|r| matches!(r, VenueRequest::Cancel { .. })),
        "pausing only cancels: {requests:?}"
    );
    let cancels: Vec<u64> = requests
        .iter()
        .filter_map(|r| match r {
            VenueRequest::Cancel { order_id, .. } => Some(*order_id),
            _ => None,
        })
        .collect();
    requests.clear();
    // The venue confirms: the strategy hears of it and tries to place again, from
    // on_order_update. Paused: refused by the engine, nothing leaves.
    let seen_before = updates.lock().unwrap().len();
    for id in cancels {
        bt.on_exec(
            now + 2,
            Exec {
                ts: now + 2,
                order_id: id,
                kind: ExecKind::Cancelled,
                leaves: Qty::ZERO,
            },
        );
    }
    assert!(updates.lock().unwrap().len() > seen_before);
    bt.drain_requests(&mut requests);
    assert!(
        requests.is_empty(),
        "an order left while paused: {requests:?}"
    );
    assert!(
        bt.counters()
            .rejections()
            .contains(&(RejectReason::Paused, 1))
            || bt
                .counters()
                .rejections()
                .iter()
                .any(|(r, n)| *r == RejectReason::Paused && *n >= 1)
    );
    // Flatten: the engine's own closing order passes while paused.
    assert_eq!(bt.flatten(), 1);
    bt.drain_requests(&mut requests);
    assert!(requests.iter().any(|r| matches!(r, VenueRequest::New { request, .. } if request.side == Side::Sell && request.qty == half && request.kind == OrderKind::Market)));
}

/// Places one buy of 0.002 on its first book (and at once tries to amend it, which is refused:
/// not acknowledged yet), then on each acknowledgement or answered amendment sends its next
/// amendment: (ticks below the placed price, quantity ordered).
#[derive(Debug)]
struct Amender {
    instruments: Vec<InstrumentId>,
    placed: Option<rt_core::Price>,
    next: Vec<(i64, &'static str)>,
    updates: Arc<Mutex<Vec<OrderUpdate>>>,
}

const TICK: i64 = 1_000_000; // 0.01

impl Strategy for Amender {
    fn kind(&self) -> &'static str {
        "amender"
    }
    fn instruments(&self) -> &[InstrumentId] {
        &self.instruments
    }
    fn on_book(&mut self, _ctx: &StrategyContext, book: &OrderBook, out: &mut Vec<Action>) {
        let Some(bid) = book.best_bid().filter(|_| self.placed.is_none()) else {
            return;
        };
        self.placed = Some(bid.price);
        out.push(Action::Place(NewOrder {
            client_id: 1,
            instrument: 0,
            side: Side::Buy,
            price: bid.price,
            qty: Qty::parse(b"0.002").unwrap(),
            kind: OrderKind::PostOnly,
        }));
        out.push(Action::Amend(rt_core::Amend {
            client_id: 1,
            price: bid.price,
            qty: Qty::parse(b"0.001").unwrap(),
        }));
    }
    fn on_fill(&mut self, _ctx: &StrategyContext, _fill: &FillReport, _out: &mut Vec<Action>) {}
    fn on_order_update(
        &mut self,
        _ctx: &StrategyContext,
        update: &OrderUpdate,
        out: &mut Vec<Action>,
    ) {
        self.updates.lock().unwrap().push(*update);
        if update.status.is_final() || update.status == OrderStatus::Sent {
            return;
        }
        if let (Some((ticks, qty)), Some(placed)) = (self.next.pop(), self.placed) {
            out.push(Action::Amend(rt_core::Amend {
                client_id: 1,
                price: rt_core::Price(placed.0 - ticks * TICK),
                qty: Qty::parse(qty.as_bytes()).unwrap(),
            }));
        }
    }
}

/// The live driver with only an [`Amender`] sending `next`, and the updates it hears.
fn amender_driver(next: Vec<(i64, &'static str)>) -> (Trader, Arc<Mutex<Vec<OrderUpdate>>>) {
    let mut config = TraderConfig::from_manifest(&example_manifest());
    config.strategies.clear();
    let mut bt = Trader::new(config).unwrap();
    bt.set_external(0).unwrap();
    let updates = Arc::new(Mutex::new(Vec::new()));
    bt.add_strategy(
        "amender",
        Box::new(Amender {
            instruments: vec![0],
            placed: None,
            next,
            updates: updates.clone(),
        }),
    )
    .unwrap();
    (bt, updates)
}

#[test]
fn an_amendment_goes_to_the_venue_and_risk_holds_the_larger_size_until_it_is_answered() {
    // Popped from the end: up to 0.003 a tick lower, then down to 0.001.
    let (mut bt, updates) = amender_driver(vec![(1, "0.001"), (1, "0.003")]);
    let q = |s: &str| Qty::parse(s.as_bytes()).unwrap();
    let mut requests = Vec::new();
    let now = feed_until_request(&mut bt, &mut requests);
    let VenueRequest::New { request, .. } = requests[0] else {
        panic!("expected a new order, got {:?}", requests[0]);
    };
    assert_eq!(
        requests.len(),
        1,
        "the early amendment is not sent: {requests:?}"
    );
    let refused = updates.lock().unwrap()[0];
    assert_eq!(
        (refused.status, refused.reject_reason),
        (OrderStatus::Sent, Some(RejectReason::NotAmendable))
    );
    assert_eq!(bt.counters().amends_rejected, 1);
    assert_eq!(
        bt.counters().orders_rejected,
        0,
        "a refused amendment rejects no order"
    );
    let open = |bt: &Trader| bt.risk().open_qty(0, Side::Buy);
    assert_eq!(open(&bt), q("0.002"));

    let id = request.order_id;
    let low = rt_core::Price(request.price.0 - TICK);
    let exec = |kind, leaves: &str| Exec {
        ts: now + 1,
        order_id: id,
        kind,
        leaves: q(leaves),
    };
    // Acknowledged: the strategy amends up to 0.003, a tick lower; risk holds 0.003 at once.
    bt.on_exec(now + 1, exec(ExecKind::Accepted, "0.002"));
    requests.clear();
    bt.drain_requests(&mut requests);
    assert_eq!(
        requests,
        [VenueRequest::Amend {
            exchange: 0,
            instrument: 0,
            order_id: id,
            side: Side::Buy,
            price: low,
            qty: q("0.003"),
        }]
    );
    assert_eq!(open(&bt), q("0.003"));
    // Made: the order is 0.003 at the lower price. The strategy then amends down to 0.001,
    // and risk keeps 0.003 until the venue answers (the order may fill at 0.003 meanwhile).
    let amended = ExecKind::Amended {
        price: low,
        qty: q("0.003"),
    };
    bt.on_exec(now + 2, exec(amended, "0.003"));
    assert_eq!(bt.counters().amends_done, 1);
    let last = *updates.lock().unwrap().last().unwrap();
    assert_eq!((last.leaves_qty, last.reject_reason), (q("0.003"), None));
    requests.clear();
    bt.drain_requests(&mut requests);
    assert!(matches!(requests[..], [VenueRequest::Amend { qty, .. }] if qty == q("0.001")));
    assert_eq!(open(&bt), q("0.003"));
    // The venue refuses it: the order stays 0.003, the strategy hears why.
    bt.on_exec(
        now + 3,
        exec(
            ExecKind::AmendRejected(RejectReason::VenueRejected),
            "0.003",
        ),
    );
    let last = *updates.lock().unwrap().last().unwrap();
    assert_eq!(
        (last.status, last.leaves_qty, last.reject_reason),
        (
            OrderStatus::Accepted,
            q("0.003"),
            Some(RejectReason::VenueRejected)
        )
    );
    assert_eq!(open(&bt), q("0.003"));
    assert_eq!(bt.open_orders().next().map(|o| o.3), Some(q("0.003")));
    // Filled at the amended price: nothing left open, risk holds nothing.
    let fill = ExecKind::Fill {
        price: low,
        qty: q("0.003"),
        maker: true,
        fee: 0,
    };
    bt.on_exec(now + 4, exec(fill, "0"));
    assert_eq!(bt.portfolio().qty(0), q("0.003"));
    assert_eq!(open(&bt), Qty::ZERO);
    assert_eq!(bt.open_orders().count(), 0);
}

/// The venue's answer to an amendment can come late or never (a live venue's push): a fill
/// whose leaves are the amended order's is taken as proof the amendment was made, so the
/// order is not closed early; an amendment growing the order past `max_order_qty` in total is
/// refused even when its leaves fit; an order that ends with an amendment pending releases
/// what risk reserved for it.
#[test]
fn a_fill_proves_an_unanswered_amendment_and_an_order_ending_releases_its_reserve() {
    // Popped from the end: up to 0.004; then 0.011 in total (0.01 left to fill: within
    // max_order_qty 0.01, its total is not); then a tick lower.
    let (mut bt, updates) = amender_driver(vec![(1, "0.004"), (0, "0.011"), (0, "0.004")]);
    let q = |s: &str| Qty::parse(s.as_bytes()).unwrap();
    let mut requests = Vec::new();
    let now = feed_until_request(&mut bt, &mut requests);
    let VenueRequest::New { request, .. } = requests[0] else {
        panic!("expected a new order, got {:?}", requests[0]);
    };
    let id = request.order_id;
    let exec = |kind, leaves: &str| Exec {
        ts: now + 1,
        order_id: id,
        kind,
        leaves: q(leaves),
    };
    let open = |bt: &Trader| bt.risk().open_qty(0, Side::Buy);
    bt.on_exec(now + 1, exec(ExecKind::Accepted, "0.002"));
    assert_eq!(open(&bt), q("0.004"), "the amendment up is reserved");
    requests.clear();
    bt.drain_requests(&mut requests);
    assert!(matches!(requests[..], [VenueRequest::Amend { .. }]));
    // No answer yet; a fill of 0.001 leaving 0.003: the venue holds the amended order.
    let fill = ExecKind::Fill {
        price: request.price,
        qty: q("0.001"),
        maker: true,
        fee: 0,
    };
    bt.on_exec(now + 2, exec(fill, "0.003"));
    let k = bt.counters();
    assert_eq!((k.amends_implied, k.amends_done), (1, 1));
    assert_eq!(bt.open_orders().next().map(|o| o.3), Some(q("0.003")));
    assert_eq!(open(&bt), q("0.003"));
    // The amendment to 0.011 in total was refused (max_order_qty), the next one sent.
    let refused: Vec<_> = updates
        .lock()
        .unwrap()
        .iter()
        .filter_map(|u| u.reject_reason)
        .collect();
    assert_eq!(
        refused,
        [RejectReason::NotAmendable, RejectReason::MaxOrderQty]
    );
    requests.clear();
    bt.drain_requests(&mut requests);
    assert!(
        matches!(requests[..], [VenueRequest::Amend { qty, .. }] if qty == q("0.004")),
        "{requests:?}"
    );
    // The late answer to the first amendment changes nothing.
    let late = ExecKind::Amended {
        price: request.price,
        qty: q("0.004"),
    };
    bt.on_exec(now + 3, exec(late, "0.003"));
    assert_eq!(
        (bt.counters().amends_done, bt.counters().amends_stale),
        (1, 1)
    );
    // The venue cancels the order with the price amendment pending: nothing stays reserved.
    bt.on_exec(now + 4, exec(ExecKind::Cancelled, "0"));
    assert_eq!(bt.open_orders().count(), 0);
    assert_eq!(open(&bt), Qty::ZERO);
    assert_eq!(bt.risk().open_orders(), 0);
}
