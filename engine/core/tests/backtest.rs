//! The backtest driver end to end: the example manifest's market maker on a synthetic market,
//! determinism, latency, resync, the kill switch, and the accounting identities.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{example_manifest, random_walk, Scripted, Seen, Tape, SIZE_UNIT, TICK};
use rt_core::{
    Action, BacktestResult, ExchangeConfig, InstrumentConfig, InstrumentSpec, LatencyModel, Level,
    MarketEvent, NewOrder, OrderKind, OrderStatus, Price, Qty, RejectReason, RiskState, Side,
    SyncRule, Trader, TraderConfig, SCALE,
};

const T0: i64 = 1_723_161_600_000_000_000; // 2024-08-09 00:00 UTC

fn run(config: TraderConfig, tape: &Tape) -> (BacktestResult, Option<Price>) {
    let mut bt = Trader::new(config).unwrap();
    for i in 0..tape.len() {
        bt.on_event(0, &tape.event(i));
    }
    let mid = bt.book(0).and_then(|b| b.mid());
    (bt.finish(), mid)
}

fn example_config() -> TraderConfig {
    let mut config = TraderConfig::from_manifest(&example_manifest());
    config.exchanges[0].latency = LatencyModel::symmetric(1_000_000);
    config
}

#[test]
fn the_example_market_maker_trades_a_random_walk() {
    let tape = random_walk(7, 100_000, T0);
    let (result, mid) = run(example_config(), &tape);
    let s = &result.summary;
    let c = &result.counters;
    assert_eq!(result.strategies, ["mm_btcusdt_spot"]);
    assert_eq!(result.instruments.len(), 1);
    assert_eq!(result.instruments[0].symbol, "BTCUSDT");
    assert_eq!(c.events, 100_000);
    assert_eq!(c.snapshots, 1);
    assert_eq!(c.gaps + c.invalid + c.resyncs + c.unknown_symbol, 0);
    assert_eq!(c.book_updates, c.diffs_applied + 1);
    assert!(c.orders_sent > 100, "{c:?}");
    assert!(s.fills > 10, "{s:?}");
    // Post-only quotes only: every fill is a maker fill at 7.5 bps.
    assert_eq!(s.maker_fills, s.fills);
    assert_eq!(s.taker_fills, 0);
    // Placed = sent + refused before sending; rejected = refused before + refused by the venue.
    assert_eq!(
        c.orders_sent,
        c.orders_placed - c.orders_rejected + venue_rejects(c)
    );
    assert_eq!(result.orders.len() as u64, c.orders_placed);
    assert_eq!(result.fills.len() as u64, s.fills);

    // The accounting identity, recomputed from the fills alone: equity = cash flow +
    // position * last mid - fees, exactly (floored once).
    let mut cash: i128 = 0;
    let mut position: i64 = 0;
    let mut fees: i64 = 0;
    for f in &result.fills {
        let notional = i128::from(f.price.0) * i128::from(f.qty.0);
        cash -= i128::from(f.side.sign()) * notional;
        position += f.side.sign() * f.qty.0;
        fees += f.fee;
        // 7.5 bps, rounded up.
        let exact = notional * 75 / 100_000;
        let expected = (exact + i128::from(SCALE) - 1).div_euclid(i128::from(SCALE));
        assert_eq!(i128::from(f.fee), expected);
    }
    assert_eq!(s.positions, [Qty(position)]);
    let mark = i128::from(mid.expect("a synced book").0);
    let equity =
        (cash + i128::from(position) * mark).div_euclid(i128::from(SCALE)) - i128::from(fees);
    assert_eq!(i128::from(s.pnl), equity);
    assert_eq!(s.fees, fees);
    // Realised and unrealised are floored separately, the equity once.
    let parts = s.realised_pnl + s.unrealised_pnl - s.fees;
    assert!(s.pnl == parts || s.pnl == parts + 1, "{s:?}");

    // Never past the risk limit (0.1) nor the strategy's inventory (0.05) by more than one quote.
    for p in &result.positions {
        assert!(p.position.0.abs() <= 10_000_000, "{p:?}");
    }
    // Every order record is final or still working at the end, with a consistent fill.
    for o in &result.orders {
        match o.status {
            OrderStatus::Filled => assert_eq!(o.filled_qty, o.qty),
            OrderStatus::Rejected => assert!(o.reject_reason.is_some()),
            _ => assert!(o.filled_qty <= o.qty),
        }
        assert!(o.updated_ts >= o.ts);
    }
    // The equity curve: one sample a second of event time, plus one per fill (and the last).
    let span_s = (s.end_ns - s.start_ns) / 1_000_000_000;
    assert!(
        result.equity.len() as i64 >= span_s,
        "{} samples over {span_s} s",
        result.equity.len()
    );
    assert!(result.equity.windows(2).all(|w| w[0].ts <= w[1].ts));
    assert_eq!(result.equity.last().map(|e| e.equity), Some(s.pnl));
    assert!(s.fill_ratio > 0.0 && s.fill_ratio <= 1.0);
}

/// Rejections that happened after an order was sent (at the venue).
fn venue_rejects(c: &rt_core::TraderCounters) -> u64 {
    [
        RejectReason::PostOnlyWouldCross,
        RejectReason::NoLiquidity,
        RejectReason::BookUnavailable,
    ]
    .iter()
    .map(|r| c.rejected_by_reason[*r as usize])
    .sum()
}

#[test]
fn same_events_same_result() {
    let tape = random_walk(11, 30_000, T0);
    let (a, _) = run(example_config(), &tape);
    let (b, _) = run(example_config(), &tape);
    assert!(a.summary.fills > 0);
    assert_eq!(a, b);
    // And a different market gives a different result (the test can fail).
    let (c, _) = run(example_config(), &random_walk(12, 30_000, T0));
    assert_ne!(a.fills, c.fills);
}

/// One instrument, tick 1, lot 1 unit, no fees; generous risk limits.
fn plain_config(latency: LatencyModel) -> TraderConfig {
    let mut config = TraderConfig::from_manifest(&example_manifest());
    config.strategies.clear();
    config.exchanges = vec![ExchangeConfig {
        name: "binance_spot".into(),
        rule: SyncRule::Spot,
        latency,
        instruments: vec![InstrumentConfig {
            symbol: "BTCUSDT".into(),
            spec: InstrumentSpec {
                tick: Price(TICK),
                lot: Qty(SIZE_UNIT),
                min_notional: 0,
                maker_fee_bps: 0,
                taker_fee_bps: 0,
                contract: rt_core::ContractValue::Unit,
            },
            expiry_ms: None,
        }],
    }];
    config
}

fn lv(price: &str, qty: &str) -> Level {
    Level::new(
        Price::parse(price.as_bytes()).unwrap(),
        Qty::parse(qty.as_bytes()).unwrap(),
    )
}

fn ioc_buy(client_id: u64, price: &str) -> Action {
    Action::Place(NewOrder {
        client_id,
        instrument: 0,
        side: Side::Buy,
        price: Price::parse(price.as_bytes()).unwrap(),
        qty: Qty::parse(b"0.001").unwrap(),
        kind: OrderKind::Ioc,
    })
}

const MS: i64 = 1_000_000;

/// An order of 0.001 on instrument 0.
fn place(client_id: u64, side: Side, price: &str, kind: OrderKind) -> Action {
    Action::Place(NewOrder {
        client_id,
        instrument: 0,
        side,
        price: Price::parse(price.as_bytes()).unwrap(),
        qty: Qty::parse(b"0.001").unwrap(),
        kind,
    })
}

/// (client id, reason) of every rejection the strategy was told of, in order.
fn rejections(log: &[Seen]) -> Vec<(u64, Option<RejectReason>)> {
    log.iter()
        .filter_map(|s| match s {
            Seen::Update { update, .. } if update.status == OrderStatus::Rejected => {
                Some((update.client_id, update.reject_reason))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn orders_reach_the_matcher_after_the_latency() {
    // 1 ms each way (and 1 ms feed): an order sent at t reaches the matcher at t + 2 ms on
    // the recording's clock; its fills are known at t + 2 ms.
    let mut tape = Tape::default();
    tape.push_snapshot(T0, 100, &[lv("60000", "1")], &[lv("60000.01", "1")]);
    tape.push_depth(
        T0 + MS,
        101,
        101,
        &[],
        &[lv("60000.01", "0"), lv("60000.02", "1")],
    );
    tape.push_depth(
        T0 + 3 * MS,
        102,
        102,
        &[],
        &[lv("60000.02", "0"), lv("60000.03", "1")],
    );
    let run_with = |latency: LatencyModel| {
        let mut bt = Trader::new(plain_config(latency)).unwrap();
        // On the first book (the snapshot at T0): an IOC buy limited at 60000.05.
        let (s, log) = Scripted::new(0, vec![(0, ioc_buy(1, "60000.05"))]);
        bt.add_strategy("scripted", Box::new(s)).unwrap();
        for i in 0..tape.len() {
            bt.on_event(0, &tape.event(i));
        }
        let result = bt.finish();
        let log = log.lock().unwrap().clone();
        (result, log)
    };
    let (zero, _) = run_with(LatencyModel::ZERO);
    assert_eq!(zero.fills.len(), 1);
    assert_eq!(zero.fills[0].price, Price::parse(b"60000.01").unwrap());
    assert_eq!((zero.fills[0].ts, zero.fills[0].match_ts), (T0, T0));

    let (slow, log) = run_with(LatencyModel::symmetric(MS));
    assert_eq!(slow.fills.len(), 1);
    // At T0 + 2 ms the book shows the ask at 60000.02 (the change at T0 + 3 ms comes later).
    assert_eq!(slow.fills[0].price, Price::parse(b"60000.02").unwrap());
    assert_eq!(slow.fills[0].match_ts, T0 + 2 * MS);
    assert!(!slow.fills[0].maker);
    // Reported with the next event (the driver runs on events): at T0 + 3 ms, before the book
    // callback of that event.
    assert_eq!(slow.fills[0].ts, T0 + 3 * MS);
    let fill_at = log
        .iter()
        .position(|s| matches!(s, Seen::Fill { .. }))
        .unwrap();
    let last_book = log
        .iter()
        .rposition(|s| matches!(s, Seen::Book { .. }))
        .unwrap();
    assert!(fill_at < last_book, "{log:?}");
    assert_eq!(slow.orders[0].status, OrderStatus::Filled);
    assert_eq!(slow.orders[0].ts, T0);

    // Entry latency alone (no feed delay): the order arrives at T0 + 1 ms, the time of the
    // change to 60000.02; a request due with an event is handled before it.
    let (entry, _) = run_with(LatencyModel {
        order_entry_ns: MS,
        response_ns: 0,
        feed_ns: 0,
    });
    assert_eq!(entry.fills[0].price, Price::parse(b"60000.01").unwrap());
    assert_eq!(entry.fills[0].match_ts, T0 + MS);
}

#[test]
fn a_gap_cancels_orders_and_silences_the_strategy_until_resynced() {
    let mut tape = Tape::default();
    tape.push_snapshot(T0, 100, &[lv("60000", "1")], &[lv("60000.05", "1")]);
    tape.push_depth(T0 + MS, 101, 101, &[lv("59999.99", "1")], &[]);
    // Gap: 103 after 101.
    tape.push_depth(T0 + 2 * MS, 103, 103, &[lv("59999.98", "1")], &[]);
    tape.push_trade(
        T0 + 3 * MS,
        Price::parse(b"60000").unwrap(),
        Qty::parse(b"0.5").unwrap(),
        Side::Sell,
    );
    tape.push_depth(T0 + 4 * MS, 104, 104, &[lv("59999.97", "1")], &[]);
    // A new snapshot bridged by the buffered 104.
    tape.push_snapshot(
        T0 + 5 * MS,
        103,
        &[lv("60000", "2")],
        &[lv("60000.05", "1")],
    );
    tape.push_depth(T0 + 6 * MS, 105, 105, &[lv("59999.96", "1")], &[]);

    let mut bt = Trader::new(plain_config(LatencyModel::ZERO)).unwrap();
    let rest = Action::Place(NewOrder {
        client_id: 1,
        instrument: 0,
        side: Side::Buy,
        price: Price::parse(b"59999").unwrap(),
        qty: Qty::parse(b"0.001").unwrap(),
        kind: OrderKind::PostOnly,
    });
    let (s, log) = Scripted::new(0, vec![(0, rest)]);
    bt.add_strategy("scripted", Box::new(s)).unwrap();
    for i in 0..tape.len() {
        bt.on_event(0, &tape.event(i));
    }
    let result = bt.finish();
    let log = log.lock().unwrap().clone();
    let c = &result.counters;
    assert_eq!((c.gaps, c.resyncs, c.snapshots), (1, 1, 2));
    assert_eq!(result.orders[0].status, OrderStatus::Cancelled);
    assert_eq!(c.orders_cancelled, 1);
    // Book callbacks at T0, T0 + 1 ms, then nothing until the snapshot at T0 + 5 ms.
    let books: Vec<i64> = log
        .iter()
        .filter_map(|s| match s {
            Seen::Book { now, .. } => Some(*now),
            _ => None,
        })
        .collect();
    assert_eq!(books, [T0, T0 + MS, T0 + 5 * MS, T0 + 6 * MS]);
    assert!(
        !log.iter().any(|s| matches!(s, Seen::Trade { .. })),
        "no trade while resyncing"
    );
    assert!(log.contains(&Seen::Lost { now: T0 + 2 * MS }));
}

#[test]
fn the_kill_switch_halts_and_cancels_everything() {
    let tape = random_walk(3, 5_000, T0);
    let mut bt = Trader::new(example_config()).unwrap();
    for i in 0..2_000 {
        bt.on_event(0, &tape.event(i));
    }
    bt.kill();
    assert_eq!(bt.risk_state(), RiskState::Halted);
    for i in 2_000..tape.len() {
        bt.on_event(0, &tape.event(i));
    }
    let result = bt.finish();
    assert_eq!(result.risk_events.len(), 1);
    assert_eq!(result.risk_events[0].to, RiskState::Halted);
    assert_eq!(result.summary.final_risk_state, RiskState::Halted);
    let halted_at = result.risk_events[0].ts;
    // Nothing sent after the halt (the market maker stops quoting), nothing left working.
    assert!(result.orders.iter().all(|o| o.ts <= halted_at));
    assert_eq!(result.summary.open_orders, 0);
    let working: Vec<_> = result
        .orders
        .iter()
        .filter(|o| !o.status.is_final())
        .collect();
    assert!(working.is_empty(), "{working:?}");
}

#[test]
fn risk_rejections_reach_the_strategy_and_are_counted() {
    let mut tape = Tape::default();
    tape.push_snapshot(T0, 100, &[lv("60000", "1")], &[lv("60000.01", "1")]);
    tape.push_depth(T0 + MS, 101, 101, &[lv("59999.99", "1")], &[]);
    let mut bt = Trader::new(plain_config(LatencyModel::ZERO)).unwrap();
    // Far outside the 50 bps band, then too big (max_order_qty 0.01), then a duplicate id.
    let script = vec![
        (0, ioc_buy(1, "61000")),
        (
            0,
            Action::Place(NewOrder {
                client_id: 2,
                instrument: 0,
                side: Side::Sell,
                price: Price::parse(b"60000").unwrap(),
                qty: Qty::parse(b"0.02").unwrap(),
                kind: OrderKind::Limit,
            }),
        ),
        (
            1,
            Action::Place(NewOrder {
                client_id: 3,
                instrument: 0,
                side: Side::Buy,
                price: Price::parse(b"59990").unwrap(),
                qty: Qty::parse(b"0.001").unwrap(),
                kind: OrderKind::Limit,
            }),
        ),
        (
            1,
            Action::Place(NewOrder {
                client_id: 3,
                instrument: 0,
                side: Side::Buy,
                price: Price::parse(b"59990").unwrap(),
                qty: Qty::parse(b"0.001").unwrap(),
                kind: OrderKind::Limit,
            }),
        ),
        (1, Action::Cancel(77)),
    ];
    let (s, log) = Scripted::new(0, script);
    bt.add_strategy("scripted", Box::new(s)).unwrap();
    for i in 0..tape.len() {
        bt.on_event(0, &tape.event(i));
    }
    let result = bt.finish();
    let log = log.lock().unwrap().clone();
    assert_eq!(
        result.summary.rejections,
        [
            (RejectReason::PriceBand, 1),
            (RejectReason::MaxOrderQty, 1),
            (RejectReason::DuplicateClientId, 1)
        ]
    );
    assert_eq!(result.orders[2].status, OrderStatus::Accepted);
    assert_eq!(result.counters.cancels_unknown, 1);
    let rejected = rejections(&log);
    assert_eq!(
        rejected,
        [
            (1, Some(RejectReason::PriceBand)),
            (2, Some(RejectReason::MaxOrderQty)),
            (3, Some(RejectReason::DuplicateClientId))
        ]
    );
}

#[test]
fn unknown_symbols_are_counted_and_symbol_tables_map() {
    let tape = random_walk(5, 2_000, T0);
    let mut bt = Trader::new(example_config()).unwrap();
    let x = bt.exchange_id("binance_spot").unwrap();
    // The feed's symbol 0 is something else: every event is ignored.
    bt.set_symbols(x, &["ETHUSDT"]).unwrap();
    for i in 0..tape.len() {
        bt.on_event(x, &tape.event(i));
    }
    assert_eq!(bt.counters().unknown_symbol, 2_000);
    bt.set_symbols(x, &["BTCUSDT"]).unwrap();
    bt.on_event(x, &tape.event(0));
    assert_eq!(bt.counters().snapshots, 1);
    assert!(bt.set_symbols(9, &["BTCUSDT"]).is_err());
    assert_eq!(bt.exchange_id("nope"), None);
}

#[test]
fn the_equity_curve_stays_bounded() {
    let tape = random_walk(9, 50_000, T0);
    let mut config = example_config();
    config.max_equity_samples = 64;
    config.equity_interval_ns = 10 * MS;
    let (result, _) = run(config, &tape);
    assert!(result.equity.len() <= 64, "{}", result.equity.len());
    assert!(result.equity.len() >= 16);
    assert!(result.equity.windows(2).all(|w| w[0].ts <= w[1].ts));
}

#[test]
fn manifest_errors_name_the_strategy() {
    let mut config = example_config();
    config.strategies[0].strategy.instruments = vec!["ETHUSDT".into()];
    let err = Trader::new(config).unwrap_err();
    assert_eq!(
        err.to_string(),
        "strategies.mm_btcusdt_spot: instrument \"ETHUSDT\" is not on exchange \"binance_spot\""
    );
    let mut config = example_config();
    config.equity_interval_ns = 0;
    assert!(Trader::new(config).is_err());
}

#[test]
fn nothing_reaches_a_strategy_before_the_first_snapshot() {
    let mut tape = Tape::default();
    tape.push_depth(T0, 95, 99, &[lv("60000", "1")], &[]);
    tape.push_depth(
        T0 + MS,
        100,
        101,
        &[lv("60000", "2")],
        &[lv("60000.01", "1")],
    );
    tape.push_trade(
        T0 + 2 * MS,
        Price::parse(b"60000").unwrap(),
        Qty::parse(b"1").unwrap(),
        Side::Sell,
    );
    tape.push_snapshot(
        T0 + 3 * MS,
        100,
        &[lv("60000", "1")],
        &[lv("60000.02", "1")],
    );
    let mut bt = Trader::new(plain_config(LatencyModel::ZERO)).unwrap();
    let (s, log) = Scripted::new(0, vec![]);
    bt.add_strategy("scripted", Box::new(s)).unwrap();
    for i in 0..tape.len() {
        bt.on_event(0, &tape.event(i));
    }
    let log = log.lock().unwrap().clone();
    // One callback: the snapshot, with the buffered diff 100..101 replayed on top of it.
    assert_eq!(
        log,
        [Seen::Book {
            now: T0 + 3 * MS,
            best_ask: Some(Price::parse(b"60000.01").unwrap())
        }]
    );
    let c = bt.counters();
    assert_eq!((c.diffs_buffered, c.book_updates, c.resyncs), (2, 1, 0));
}

#[test]
fn only_a_book_ticker_as_new_as_the_book_reaches_a_strategy() {
    let at = |t: i64| rt_core::Header {
        symbol: 0,
        exchange_ns: t - MS,
        local_ns: t,
    };
    let bbo = |t: i64, id: u64| {
        MarketEvent::Bbo(rt_core::Bbo {
            header: at(t),
            update_id: id,
            bid: lv("60000", "1"),
            ask: lv("60000.05", "1"),
        })
    };
    let (bids, asks) = ([lv("60000", "1")], [lv("60000.02", "1")]);
    let diff_bids = [lv("60000.01", "1")];
    let events = [
        // Before any book: nothing to compare with, nothing delivered.
        bbo(T0, 90),
        MarketEvent::Snapshot(rt_core::Snapshot {
            header: at(T0 + MS),
            last_update_id: 100,
            bids: &bids,
            asks: &asks,
        }),
        bbo(T0 + 2 * MS, 99),  // older than the book: dropped
        bbo(T0 + 3 * MS, 100), // as new: delivered
        MarketEvent::Depth(rt_core::DepthDiff {
            header: at(T0 + 4 * MS),
            first_id: 101,
            final_id: 102,
            prev_final_id: None,
            bids: &diff_bids,
            asks: &[],
        }),
        bbo(T0 + 5 * MS, 101), // inside the diff just applied: older
        bbo(T0 + 6 * MS, 103), // newer: delivered
    ];
    let mut bt = Trader::new(plain_config(LatencyModel::ZERO)).unwrap();
    let (s, log) = Scripted::new(0, vec![]);
    bt.add_strategy("scripted", Box::new(s)).unwrap();
    for e in &events {
        bt.on_event(0, e);
    }
    let seen: Vec<String> = log
        .lock()
        .unwrap()
        .iter()
        .map(|s| match s {
            Seen::Book { now, .. } => format!("book@{}", (now - T0) / MS),
            Seen::Bbo { now, update_id } => format!("bbo {update_id}@{}", (now - T0) / MS),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(seen, ["book@1", "bbo 100@3", "book@4", "bbo 103@6"]);
    let c = bt.counters();
    assert_eq!((c.bbos, c.bbos_stale), (5, 2));
}

#[test]
fn a_restored_position_is_valued_at_its_latest_fill_until_a_mid() {
    let mut bt = Trader::new(plain_config(LatencyModel::ZERO)).unwrap();
    let px = |s: &str| Price::parse(s.as_bytes()).unwrap();
    let one = Qty::parse(b"1").unwrap();
    bt.restore_fill(0, Side::Buy, px("60000"), one, 0).unwrap();
    bt.restore_fill(0, Side::Buy, px("60100"), one, 0).unwrap();
    // Long 2 at an average of 60050, marked at 60100 (the first fill's 60000 would say -100).
    assert_eq!(bt.portfolio().unrealised(), 100 * SCALE);
}

#[test]
fn resume_lifts_a_halt() {
    let tape = random_walk(4, 3_000, T0);
    let mut bt = Trader::new(example_config()).unwrap();
    for i in 0..1_000 {
        bt.on_event(0, &tape.event(i));
    }
    bt.kill();
    bt.resume();
    assert_eq!(bt.risk_state(), RiskState::Active);
    for i in 1_000..tape.len() {
        bt.on_event(0, &tape.event(i));
    }
    let result = bt.finish();
    let states: Vec<_> = result
        .risk_events
        .iter()
        .map(|e| (e.to, e.cause.as_str()))
        .collect();
    assert_eq!(
        states,
        [
            (RiskState::Halted, "kill_switch"),
            (RiskState::Active, "resumed")
        ]
    );
    let resumed_at = result.risk_events[1].ts;
    assert!(
        result.orders.iter().any(|o| o.ts >= resumed_at),
        "quoting again"
    );
}

#[test]
fn a_backtest_can_move_between_threads() {
    fn send<T: Send>() {}
    send::<Trader>();
    send::<BacktestResult>();
}

#[test]
fn a_warm_up_builds_the_books_and_trading_starts_at_the_window() {
    let tape = random_walk(7, 20_000, T0);
    let start = tape.event(10_000).header().local_ns;
    let mut bt = Trader::new(example_config()).unwrap();
    bt.set_warmup_until(start);
    let mut warm = 0u64;
    for i in 0..tape.len() {
        let event = tape.event(i);
        if event.header().local_ns < start {
            warm += 1;
        }
        bt.on_event(0, &event);
        if i == 9_999 {
            // Books are synced, nothing traded, no reference point taken yet.
            assert!(bt.is_warming_up());
            assert!(bt.book(0).and_then(|b| b.mid()).is_some());
            assert_eq!(bt.counters().orders_placed, 0);
            assert_eq!(bt.counters().strategy_calls, 0);
            assert_eq!(bt.risk_anchors(), None);
        }
    }
    assert!(!bt.is_warming_up());
    let result = bt.finish();
    let c = &result.counters;
    assert!(warm > 0);
    assert_eq!(c.warmup_events, warm);
    assert_eq!(c.events + c.warmup_events, 20_000);
    // Counters restart at the window: the snapshot was loaded during the warm-up.
    assert_eq!(c.snapshots, 0);
    assert!(c.orders_sent > 0, "{c:?}");
    assert!(result.summary.start_ns >= start);
    assert!(result.equity.first().is_some_and(|e| e.ts >= start));
    assert!(result.orders.iter().all(|o| o.ts >= start));
    assert!(result.fills.iter().all(|f| f.ts >= start));

    // Trading from the middle differs from trading all along, and warm-up is deterministic.
    let (all, _) = run(example_config(), &tape);
    assert_ne!(all.orders.len(), result.orders.len());
    let mut again = Trader::new(example_config()).unwrap();
    again.set_warmup_until(start);
    for i in 0..tape.len() {
        again.on_event(0, &tape.event(i));
    }
    assert_eq!(again.finish(), result);
}

/// A deterministic stand-in for an ONNX model: the signal is the first feature.
struct FirstFeature {
    width: usize,
    out: [f32; 1],
}

impl rt_core::model::Predictor for FirstFeature {
    fn input_width(&self) -> usize {
        self.width
    }
    fn output_width(&self) -> usize {
        1
    }
    fn predict(&mut self, input: &[f32]) -> Result<&[f32], rt_core::model::PredictError> {
        self.out[0] = input[0];
        Ok(&self.out)
    }
}

/// The example with its strategy replaced by a model taker on book imbalance (5 levels) and
/// inventory, buying above 0.3 and selling below -0.3.
fn model_taker_config() -> TraderConfig {
    use rt_manifest::features::{FeatureDecl, FeatureSetDecl};
    use rt_manifest::model::{ModelRef, ModelTakerParams, Optimization, StrategyParams};
    use rt_manifest::Fixed;
    let mut config = example_config();
    config.strategies[0].strategy.params = StrategyParams::ModelTaker(ModelTakerParams {
        model: ModelRef {
            path: "models/fake/model.onnx".into(),
            sha256: "0".repeat(64),
            input_name: "features".into(),
            input_width: 2,
            output_name: "signal".into(),
            output_width: 1,
            opset: 15,
            intra_op_threads: 1,
            optimization: Optimization::All,
        },
        features: FeatureSetDecl {
            features: vec![
                FeatureDecl::BookImbalance { levels: 5 },
                FeatureDecl::Inventory {},
            ],
        },
        buy_above: Fixed::parse("0.3").unwrap(),
        sell_below: Fixed::parse("-0.3").unwrap(),
        order_qty: Fixed::parse("0.001").unwrap(),
        max_slippage: Fixed::parse("0.5").unwrap(),
        cooldown_ms: 200,
    });
    config
}

#[test]
fn a_model_taker_needs_a_loader_and_trades_with_one() {
    let err = Trader::new(model_taker_config()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "strategies.mm_btcusdt_spot: kind model_taker runs a model: this manifest's strategy \
         needs a model loader (build the backtest with Trader::from_manifest_with)"
    );
    let err = Trader::with_models(model_taker_config(), &mut |_, _| Err("no such file".into()))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "strategies.mm_btcusdt_spot: params.model: no such file"
    );
    let err = Trader::with_models(model_taker_config(), &mut |_, _| {
        Ok(Box::new(FirstFeature {
            width: 3,
            out: [0.0],
        }))
    })
    .unwrap_err();
    assert!(
        err.to_string().contains(
            "reads 3 and writes 1 values per row, the manifest declares \
                                  input_width 2"
        ),
        "{err}"
    );

    let tape = random_walk(11, 30_000, T0);
    let run_once = || {
        let mut asked = Vec::new();
        let mut bt = Trader::with_models(model_taker_config(), &mut |name, model| {
            asked.push((name.to_owned(), model.path.clone()));
            Ok(Box::new(FirstFeature {
                width: model.input_width as usize,
                out: [0.0],
            }))
        })
        .unwrap();
        assert_eq!(
            asked,
            [(
                "mm_btcusdt_spot".to_owned(),
                "models/fake/model.onnx".to_owned()
            )]
        );
        for i in 0..tape.len() {
            bt.on_event(0, &tape.event(i));
        }
        bt.finish()
    };
    let a = run_once();
    let c = &a.counters;
    assert!(c.orders_sent > 10, "{c:?}");
    assert!(a.summary.taker_fills > 0, "{:?}", a.summary);
    assert_eq!(a.summary.maker_fills, 0, "IOC orders only take");
    assert!(c.model_predictions >= c.orders_placed, "{c:?}");
    assert_eq!(c.model_errors, 0);
    // Every order is an IOC on the side of the imbalance.
    assert!(a.orders.iter().all(|o| o.kind == OrderKind::Ioc));
    assert_eq!(a, run_once(), "the same events give the same result");
}

#[test]
fn only_book_updates_keep_the_staleness_guard_fresh() {
    let tape = random_walk(9, 2_000, T0);
    let mut bt = Trader::new(example_config()).unwrap();
    let (mut trades, mut updates, mut clock) = (0, 0, i64::MIN);
    for i in 0..tape.len() {
        let ev = tape.event(i);
        clock = clock.max(ev.header().local_ns);
        let before = bt.risk().last_book_update(0);
        let applied = bt.counters().diffs_applied;
        bt.on_event(0, &ev);
        let after = bt.risk().last_book_update(0);
        match ev {
            // A trade over an unchanged book does not make it fresh.
            MarketEvent::Trade(_) => {
                trades += 1;
                assert_eq!(after, before, "event {i}: a trade refreshed the book's age");
            }
            MarketEvent::Depth(_) if bt.counters().diffs_applied > applied => {
                updates += 1;
                assert_eq!(after, Some(clock), "event {i}: a book update is fresh");
            }
            _ => {}
        }
    }
    assert!(trades > 0 && updates > 0);
}

#[test]
fn a_market_maker_quotes_one_venue_around_another_venues_book() {
    // Exchange 0 is quoted; exchange 1 (another venue, twice the price) is the signal.
    let mut config = plain_config(LatencyModel::ZERO);
    let mut signal_venue = config.exchanges[0].clone();
    signal_venue.name = "signal_venue".into();
    config.exchanges.push(signal_venue);
    let manifest = example_manifest();
    let mut strategy = manifest.strategies["mm_btcusdt_spot"].clone();
    if let rt_manifest::model::StrategyParams::MarketMaker(p) = &mut strategy.params {
        // A basis that barely moves: the fair value is the signal's mid plus a constant.
        p.signal = Some(rt_manifest::model::Signal {
            exchange: "signal_venue".into(),
            instrument: "BTCUSDT".into(),
            basis_updates: 1_000_000,
        });
    }
    config.strategies = vec![rt_core::trader::StrategyConfig {
        name: "mm".into(),
        strategy,
    }];
    let mut bt = Trader::new(config).unwrap();
    let (mut quoted, mut signal) = (Tape::default(), Tape::default());
    // The quoted book, mid 30005: nothing is quoted before the signal is known.
    quoted.push_snapshot(T0, 100, &[lv("30000", "1")], &[lv("30010", "1")]);
    // The signal at 60000.01: basis -29995.01, fair 30005 (3 ticks a side).
    signal.push_snapshot(T0 + MS, 500, &[lv("60000", "1")], &[lv("60000.02", "1")]);
    // The signal moves up 2: the quotes follow (the basis moved by 2/10^6 of the difference).
    signal.push_depth(
        T0 + 2 * MS,
        501,
        501,
        &[lv("60000", "0"), lv("60002", "1")],
        &[lv("60000.02", "0"), lv("60002.02", "1")],
    );
    // A gap on the signal's venue: its book is lost, the quotes on the other are withdrawn.
    signal.push_depth(T0 + 3 * MS, 503, 503, &[lv("60001", "1")], &[]);
    quoted.push_depth(T0 + 4 * MS, 101, 101, &[lv("30001", "1")], &[]);
    bt.on_event(0, &quoted.event(0));
    assert_eq!(bt.counters().orders_placed, 0);
    bt.on_event(1, &signal.event(0));
    bt.on_event(1, &signal.event(1));
    bt.on_event(1, &signal.event(2));
    bt.on_event(0, &quoted.event(1));
    let result = bt.finish();
    let placed: Vec<(Side, String, u32)> = result
        .orders
        .iter()
        .map(|o| (o.side, o.price.to_string(), o.instrument))
        .collect();
    assert_eq!(
        placed,
        [
            (Side::Buy, "30004.97".to_owned(), 0),
            (Side::Sell, "30005.03".to_owned(), 0),
            (Side::Buy, "30006.96".to_owned(), 0),
            (Side::Sell, "30007.03".to_owned(), 0),
        ]
    );
    assert!(result
        .orders
        .iter()
        .all(|o| o.status == OrderStatus::Cancelled));
    assert_eq!(result.counters.orders_rejected, 0);
}

#[test]
fn fills_are_marked_out_against_the_mid_a_second_later() {
    // Recomputed from the tape: each fill against the mid in effect when the first event at
    // or after its horizon arrives (before that event moves the book).
    let tape = random_walk(7, 20_000, T0);
    let mut bt = Trader::new(example_config()).unwrap();
    let mut before: Vec<(i64, Option<Price>)> = Vec::with_capacity(tape.len());
    for i in 0..tape.len() {
        let ev = tape.event(i);
        before.push((ev.header().local_ns, bt.book(0).and_then(|b| b.mid())));
        bt.on_event(0, &ev);
    }
    let totals = bt.markout_totals();
    let result = bt.finish();
    let (mut count, mut favourable, mut adverse) = (0u64, 0u64, 0u64);
    for f in &result.fills {
        let due = f.ts + rt_core::markout::HORIZON_NS;
        let Some((_, Some(mid))) = before.iter().find(|(t, _)| *t >= due) else {
            continue;
        };
        let bps = rt_core::markout::markout_bps(f.side, f.price, *mid);
        count += 1;
        let cbps = (bps.abs() * 100.0).round() as u64;
        if bps >= 0.0 {
            favourable += cbps;
        } else {
            adverse += cbps;
        }
    }
    assert!(count > 10, "{count} fills marked out");
    assert_eq!(
        (totals.count, totals.favourable_cbps, totals.adverse_cbps),
        (count, favourable, adverse)
    );
    assert!(favourable + adverse > 0, "{totals:?}");
}

#[test]
fn a_future_reduces_only_before_its_expiry_and_is_delivered_at_the_mid_then() {
    const S: i64 = 1_000_000_000;
    let mut config = plain_config(LatencyModel::ZERO);
    // Expires at T0 + 5 s; only reducing orders from T0 + 3 s.
    config.exchanges[0].instruments[0].expiry_ms = Some(((T0 + 5 * S) / MS) as u64);
    config.risk.reduce_only_before_expiry_ms = Some(2_000);
    config.risk.feed_stale_ms = 60_000;
    let mut tape = Tape::default();
    tape.push_snapshot(T0, 100, &[lv("60000", "1")], &[lv("60000.01", "1")]);
    // The book moves up: mid 60010.01 from T0 + 1 s.
    tape.push_depth(
        T0 + S,
        101,
        101,
        &[lv("60000", "0"), lv("60010", "1")],
        &[lv("60000.01", "0"), lv("60010.02", "1")],
    );
    tape.push_depth(T0 + 4 * S, 102, 102, &[lv("60009", "1")], &[]);
    tape.push_depth(T0 + 6 * S, 103, 103, &[lv("60008", "1")], &[]);
    let script = vec![
        // T0: bought 0.001 at 60000.01.
        (0, ioc_buy(1, "60000.05")),
        // T0 + 1 s: a bid resting below the book (it would grow the position in the window).
        (1, place(4, Side::Buy, "60000", OrderKind::Limit)),
        // T0 + 4 s, in the window: a buy would grow the position.
        (2, ioc_buy(2, "60010.03")),
        // T0 + 6 s: expired, nothing goes out (not even a reducing sell).
        (3, place(3, Side::Sell, "60009", OrderKind::Ioc)),
    ];
    let mut bt = Trader::new(config).unwrap();
    let (s, log) = Scripted::new(0, script);
    bt.add_strategy("scripted", Box::new(s)).unwrap();
    assert_eq!(bt.expiry(0), Some(T0 + 5 * S));
    for i in 0..tape.len() {
        bt.on_event(0, &tape.event(i));
        if i == 2 {
            assert!(bt.reduce_only(0) && !bt.is_delivered(0));
            assert_eq!(bt.portfolio().qty(0), Qty::parse(b"0.001").unwrap());
        }
    }
    assert!(bt.is_delivered(0));
    let result = bt.finish();
    let log = log.lock().unwrap().clone();
    let rejected = rejections(&log);
    assert_eq!(
        rejected,
        [
            (2, Some(RejectReason::ReduceOnly)),
            (3, Some(RejectReason::Expired))
        ]
    );
    assert_eq!(result.fills.len(), 1);
    // The resting bid was cancelled when the window began (at the first event in it).
    let resting = result.orders.iter().find(|o| o.client_id == 4).unwrap();
    assert_eq!(resting.status, OrderStatus::Cancelled);
    assert_eq!(result.counters.cancels_sent, 1);
    // Delivered at the mid as it stood at the expiry (60010.01): 0.001 x 10 = 0.01 realised,
    // the position flat, recorded at the first event past the expiry.
    let last = result.positions.last().unwrap();
    assert_eq!(last.ts, T0 + 6 * S);
    assert_eq!(last.position, Qty::ZERO);
    assert_eq!(last.realised_pnl, SCALE / 100);
    assert_eq!(result.summary.realised_pnl, SCALE / 100);
}
