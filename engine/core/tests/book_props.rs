//! `OrderBook` against a reference model (a `BTreeMap` per side) over random sequences of level
//! changes and snapshots: every query must agree after every step.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use proptest::prelude::*;
use rt_core::{BookError, Level, OrderBook, Price, Qty, Side};

#[derive(Debug, Clone)]
enum Op {
    Apply(Side, i64, i64),
    Snapshot(Vec<(i64, i64)>, Vec<(i64, i64)>),
    Clear,
}

#[derive(Debug, Default)]
struct Model {
    bids: BTreeMap<i64, i64>,
    asks: BTreeMap<i64, i64>,
}

impl Model {
    fn side(&mut self, side: Side) -> &mut BTreeMap<i64, i64> {
        match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        }
    }

    fn apply(&mut self, side: Side, price: i64, qty: i64) -> bool {
        if qty < 0 {
            return false;
        }
        if qty == 0 {
            self.side(side).remove(&price);
        } else {
            self.side(side).insert(price, qty);
        }
        true
    }

    /// Levels from the best outwards.
    fn levels(&self, side: Side) -> Vec<Level> {
        let level = |(p, q): (&i64, &i64)| Level::new(Price(*p), Qty(*q));
        match side {
            Side::Buy => self.bids.iter().rev().map(level).collect(),
            Side::Sell => self.asks.iter().map(level).collect(),
        }
    }
}

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Buy), Just(Side::Sell)]
}

/// Few distinct prices so that updates hit existing levels often; sizes include zero (delete)
/// and, rarely, negative (refused).
fn level() -> impl Strategy<Value = (i64, i64)> {
    (0i64..64, qty())
}

fn qty() -> impl Strategy<Value = i64> {
    prop_oneof![4 => Just(0i64), 12 => 1i64..1_000, 1 => -5i64..0]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        40 => (side(), level()).prop_map(|(s, (p, q))| Op::Apply(s, p, q)),
        2 => (
            proptest::collection::vec(level(), 0..40),
            proptest::collection::vec(level(), 0..40)
        )
            .prop_map(|(b, a)| Op::Snapshot(b, a)),
        1 => Just(Op::Clear),
    ]
}

fn to_levels(raw: &[(i64, i64)]) -> Vec<Level> {
    raw.iter()
        .map(|&(p, q)| Level::new(Price(p), Qty(q)))
        .collect()
}

fn assert_same(book: &OrderBook, model: &Model) -> Result<(), TestCaseError> {
    for side in [Side::Buy, Side::Sell] {
        let want = model.levels(side);
        let got: Vec<Level> = book.levels(side).copied().collect();
        prop_assert_eq!(&got, &want);
        prop_assert_eq!(book.depth(side), want.len());
        for n in [0usize, 1, 3, 100] {
            let total = want
                .iter()
                .take(n)
                .fold(0i64, |s, l| s.saturating_add(l.qty.0));
            prop_assert_eq!(book.total_qty(side, n), Qty(total));
        }
        // Every 17th level present, and the prices one unit off them (absent, and off any
        // coarser grid the book may have learned).
        for l in want.iter().step_by(17) {
            prop_assert_eq!(book.qty_at(side, l.price), l.qty);
            for p in [l.price.0.checked_sub(1), l.price.0.checked_add(1)]
                .into_iter()
                .flatten()
            {
                let q = want
                    .iter()
                    .find(|w| w.price.0 == p)
                    .map_or(Qty::ZERO, |w| w.qty);
                prop_assert_eq!(book.qty_at(side, Price(p)), q);
            }
        }
        for p in [-1i64, 0, 7, 31, 63, 64, 500, 1_999] {
            let q = want
                .iter()
                .find(|l| l.price.0 == p)
                .map_or(Qty::ZERO, |l| l.qty);
            prop_assert_eq!(book.qty_at(side, Price(p)), q);
        }
    }
    let (bb, ba) = (
        model.levels(Side::Buy).first().copied(),
        model.levels(Side::Sell).first().copied(),
    );
    prop_assert_eq!(book.best_bid(), bb);
    prop_assert_eq!(book.best_ask(), ba);
    prop_assert_eq!(book.is_empty(), bb.is_none() && ba.is_none());
    // Sizes stay positive and sides ordered; the book may be crossed (it applies what it is
    // told: refusing a crossing diff is `BookSync`'s job), and `check` says so exactly then.
    match (bb, ba) {
        (Some(b), Some(a)) if b.price >= a.price => prop_assert_eq!(
            book.check(),
            Err(BookError::Crossed {
                bid: b.price,
                ask: a.price
            })
        ),
        _ => prop_assert_eq!(book.check(), Ok(())),
    }
    if let (Some(b), Some(a)) = (bb, ba) {
        let mid = (i128::from(b.price.0) + i128::from(a.price.0)).div_euclid(2);
        prop_assert_eq!(book.mid(), Some(Price(mid as i64)));
    } else {
        prop_assert_eq!(book.mid(), None);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn book_matches_the_reference_model(ops in proptest::collection::vec(op(), 1..200)) {
        let mut book = OrderBook::new();
        let mut model = Model::default();
        for op in ops {
            match op {
                Op::Apply(side, p, q) => {
                    let accepted = book.apply(side, Price(p), Qty(q));
                    prop_assert_eq!(accepted, model.apply(side, p, q));
                }
                Op::Snapshot(bids, asks) => {
                    book.load_snapshot(&to_levels(&bids), &to_levels(&asks));
                    model = Model::default();
                    for (p, q) in bids {
                        model.apply(Side::Buy, p, q);
                    }
                    for (p, q) in asks {
                        model.apply(Side::Sell, p, q);
                    }
                }
                Op::Clear => {
                    book.clear();
                    model = Model::default();
                }
            }
            assert_same(&book, &model)?;
        }
    }
}

/// Applies `ops` to the book and the model, level changes after `delete_from` turned into
/// deletes (so that the book shrinks again); the best prices must agree after every step,
/// everything every `full_check_every` steps and at the end.
fn replay_with_deletes(
    ops: Vec<Op>,
    delete_from: usize,
    full_check_every: usize,
) -> Result<(), TestCaseError> {
    let mut book = OrderBook::new();
    let mut model = Model::default();
    for (n, op) in ops.into_iter().enumerate() {
        match op {
            Op::Apply(side, p, q) => {
                let q = if n >= delete_from { 0 } else { q };
                prop_assert_eq!(book.apply(side, Price(p), Qty(q)), model.apply(side, p, q));
            }
            Op::Snapshot(bids, asks) => {
                book.load_snapshot(&to_levels(&bids), &to_levels(&asks));
                model = Model::default();
                for (p, q) in bids {
                    model.apply(Side::Buy, p, q);
                }
                for (p, q) in asks {
                    model.apply(Side::Sell, p, q);
                }
            }
            Op::Clear => {
                book.clear();
                model = Model::default();
            }
        }
        prop_assert_eq!(book.best_bid(), model.levels(Side::Buy).first().copied());
        prop_assert_eq!(book.best_ask(), model.levels(Side::Sell).first().copied());
        if n % full_check_every == 0 {
            assert_same(&book, &model)?;
        }
    }
    assert_same(&book, &model)
}

/// Deep books: many more levels than a block holds, so that blocks split and merge; bursts of
/// inserts then of deletes, at prices spread over the whole range, including the extremes.
fn deep_op() -> impl Strategy<Value = Op> {
    let price = prop_oneof![
        20 => 0i64..2_000,
        1 => Just(i64::MIN),
        1 => Just(i64::MAX),
    ];
    prop_oneof![
        60 => (side(), price, qty()).prop_map(|(s, p, q)| Op::Apply(s, p, q)),
        1 => (
            proptest::collection::vec((0i64..2_000, qty()), 0..300),
            proptest::collection::vec((0i64..2_000, qty()), 0..300)
        )
            .prop_map(|(b, a)| Op::Snapshot(b, a)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn deep_book_matches_the_reference_model(
        ops in proptest::collection::vec(deep_op(), 1..3_000),
        delete_from in 0usize..3_000,
    ) {
        replay_with_deletes(ops, delete_from, 97)?;
    }
}

/// Books on a price grid (a tick of 1, 7 or 1000 units from an offset) spread over several
/// times the window's width, so that the window learns the tick, moves up after a better
/// price, moves down when it empties, and hands levels to and from the far blocks; a few
/// prices off the grid make it refine its tick.
fn gridded_op(tick: i64, offset: i64) -> impl Strategy<Value = Op> {
    let on_grid = move |k: i64| offset + k * tick;
    let price = prop_oneof![
        30 => (0i64..8_000).prop_map(on_grid),
        10 => (3_000i64..3_100).prop_map(on_grid),
        1 => (0i64..8_000 * tick).prop_map(move |p| offset + p),
    ];
    prop_oneof![
        60 => (side(), price, qty()).prop_map(|(s, p, q)| Op::Apply(s, p, q)),
        1 => (
            proptest::collection::vec(((0i64..8_000).prop_map(on_grid), qty()), 0..300),
            proptest::collection::vec(((0i64..8_000).prop_map(on_grid), qty()), 0..300)
        )
            .prop_map(|(b, a)| Op::Snapshot(b, a)),
        1 => Just(Op::Clear),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn gridded_book_matches_the_reference_model(
        ops in prop_oneof![Just(1i64), Just(7), Just(1_000)].prop_flat_map(|tick| {
            proptest::collection::vec(gridded_op(tick, 123_456), 1..2_000)
        }),
        delete_from in 0usize..2_000,
    ) {
        replay_with_deletes(ops, delete_from, 61)?;
    }
}
