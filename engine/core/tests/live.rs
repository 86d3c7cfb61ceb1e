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
