//! Property tests of the risk engine against a simple reference model: whatever orders are
//! placed, filled (in any pieces), cancelled, and however the marks and the equity move, no
//! position ever goes past its limit, and the engine's open-order accounting matches the model.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use rt_core::{
    InstrumentLimits, InstrumentRisk, InstrumentSpec, NewOrder, OrderKind, Portfolio, Price, Qty,
    RejectReason, RiskConfig, RiskEngine, Side, SCALE,
};

const LOT: i64 = 100_000; // 0.001
const TICK: i64 = 1_000_000; // 0.01
const MID: i64 = 60_000 * SCALE;
/// Max positions of the two instruments, in lots: 0.1 and 0.05.
const MAX_LOTS: [i64; 2] = [100, 50];

#[derive(Clone, Debug)]
enum Op {
    Place {
        instrument: u32,
        buy: bool,
        lots: i64,
        offset_ticks: i64,
        kind: u8,
    },
    /// Fill part of an open order: `pct`% of what is left (at least one lot).
    Fill {
        pick: usize,
        pct: i64,
        offset_ticks: i64,
    },
    Cancel {
        pick: usize,
    },
    Mark {
        instrument: u32,
        offset_ticks: i64,
    },
    Equity,
    Advance {
        ms: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u32..2, any::<bool>(), 1i64..60, -300i64..300, 0u8..4).prop_map(
            |(instrument, buy, lots, offset_ticks, kind)| Op::Place { instrument, buy, lots, offset_ticks, kind }
        ),
        3 => (any::<usize>(), 1i64..=100, -300i64..300)
            .prop_map(|(pick, pct, offset_ticks)| Op::Fill { pick, pct, offset_ticks }),
        1 => any::<usize>().prop_map(|pick| Op::Cancel { pick }),
        1 => (0u32..2, -3000i64..3000).prop_map(|(instrument, offset_ticks)| Op::Mark { instrument, offset_ticks }),
        1 => Just(Op::Equity),
        1 => (0i64..500).prop_map(|ms| Op::Advance { ms }),
    ]
}

fn config(neutral: bool) -> RiskConfig {
    let spec = InstrumentSpec {
        tick: Price(TICK),
        lot: Qty(LOT),
        min_notional: 5 * SCALE,
        maker_fee_bps: 100_000_000,
        taker_fee_bps: 500_000_000,
        contract: rt_core::ContractValue::Unit,
    };
    let big = 1_000_000_000 * SCALE;
    let limits = |max_lots: i64| InstrumentLimits {
        max_position: Qty(max_lots * LOT),
        max_order_qty: Qty(40 * LOT),
        max_order_notional: if neutral { big } else { 2_000 * SCALE },
        max_position_notional: if neutral { big } else { 5_000 * SCALE },
        price_band_bps: if neutral { 10_000 } else { 50 },
    };
    RiskConfig {
        kill_switch_enabled: true,
        cancel_on_trigger: true,
        max_daily_loss: 50 * SCALE,
        max_drawdown: 80 * SCALE,
        max_gross_exposure: if neutral { big } else { 8_000 * SCALE },
        reducing_at_pct: 50,
        max_open_orders: if neutral { 1_000_000 } else { 8 },
        rate_per_second: if neutral { 1_000_000 } else { 20 },
        rate_burst: if neutral { 1_000_000 } else { 40 },
        feed_stale_ns: 1_000_000_000,
        stale_exposure_halt_ns: 3_000_000_000,
        instruments: MAX_LOTS
            .iter()
            .map(|&m| {
                Some(InstrumentRisk {
                    spec,
                    limits: limits(m),
                })
            })
            .collect(),
        assets: Vec::new(),
        expiries: Vec::new(),
        reduce_only_before_expiry_ns: 0,
    }
}

/// The model's open order.
#[derive(Clone, Copy, Debug)]
struct Open {
    instrument: u32,
    side: Side,
    leaves: i64,
}

/// Runs `ops`; checks the invariants after every step. With `neutral` limits (everything but
/// the position limit out of the way, state never leaves ACTIVE) it also checks every
/// decision against the reference rule.
fn run(ops: &[Op], neutral: bool) -> Result<(), TestCaseError> {
    let mut risk = RiskEngine::new(config(neutral));
    let mut pf = Portfolio::new(2);
    let mut open: Vec<Open> = Vec::new();
    let mut now: i64 = 1_723_161_600_000_000_000;
    let mut client_id = 0;
    for op in ops {
        for i in 0..2 {
            risk.on_market_data(i, now);
        }
        match *op {
            Op::Place {
                instrument,
                buy,
                lots,
                offset_ticks,
                kind,
            } => {
                client_id += 1;
                let side = if buy { Side::Buy } else { Side::Sell };
                let order = NewOrder {
                    client_id,
                    instrument,
                    side,
                    price: Price(MID + offset_ticks * TICK),
                    qty: Qty(lots * LOT),
                    kind: [
                        OrderKind::Limit,
                        OrderKind::Ioc,
                        OrderKind::PostOnly,
                        OrderKind::Market,
                    ][kind as usize],
                };
                let verdict = risk.check(now, &order, Some(Price(MID)), &pf);
                if neutral {
                    // The reference: only the worst-case position can refuse.
                    let pos = pf.qty(instrument).0 / LOT;
                    let side_open: i64 = open
                        .iter()
                        .filter(|o| o.instrument == instrument && o.side == side)
                        .map(|o| o.leaves)
                        .sum::<i64>()
                        / LOT;
                    let max = MAX_LOTS[instrument as usize];
                    let fits = match side {
                        Side::Buy => pos + side_open + lots <= max,
                        Side::Sell => pos - side_open - lots >= -max,
                    };
                    let expected = if lots > 40 {
                        Err(RejectReason::MaxOrderQty)
                    } else if fits {
                        Ok(())
                    } else {
                        Err(RejectReason::MaxPosition)
                    };
                    prop_assert_eq!(verdict, expected, "{:?}", order);
                }
                if verdict.is_ok() {
                    open.push(Open {
                        instrument,
                        side,
                        leaves: lots * LOT,
                    });
                }
            }
            Op::Fill {
                pick,
                pct,
                offset_ticks,
            } => {
                if !open.is_empty() {
                    let k = pick % open.len();
                    let o = &mut open[k];
                    let qty = ((o.leaves / LOT * pct / 100).max(1) * LOT).min(o.leaves);
                    let price = Price(MID + offset_ticks * TICK);
                    pf.on_fill(o.instrument, o.side, price, Qty(qty), 1_000);
                    risk.on_fill(o.instrument, o.side, Qty(qty));
                    o.leaves -= qty;
                    if o.leaves == 0 {
                        let o = open.remove(k);
                        risk.on_order_closed(o.instrument, o.side, Qty::ZERO);
                    }
                }
            }
            Op::Cancel { pick } => {
                if !open.is_empty() {
                    let o = open.remove(pick % open.len());
                    risk.on_order_closed(o.instrument, o.side, Qty(o.leaves));
                }
            }
            Op::Mark {
                instrument,
                offset_ticks,
            } => pf.mark(instrument, Price(MID + offset_ticks * TICK)),
            Op::Equity => {
                if !neutral {
                    risk.on_equity(now, pf.equity());
                }
            }
            Op::Advance { ms } => now += ms * 1_000_000,
        }
        // The invariants.
        for i in 0..2u32 {
            let max = MAX_LOTS[i as usize] * LOT;
            let pos = pf.qty(i).0;
            prop_assert!(
                pos.abs() <= max,
                "instrument {} position {} past {}",
                i,
                pos,
                max
            );
            let (buy, sell) =
                open.iter()
                    .filter(|o| o.instrument == i)
                    .fold((0, 0), |(b, s), o| match o.side {
                        Side::Buy => (b + o.leaves, s),
                        Side::Sell => (b, s + o.leaves),
                    });
            prop_assert_eq!(risk.open_qty(i, Side::Buy).0, buy);
            prop_assert_eq!(risk.open_qty(i, Side::Sell).0, sell);
            // Even if every open order filled, the limit would hold.
            prop_assert!(pos + buy <= max && pos - sell >= -max);
        }
        prop_assert_eq!(risk.open_orders() as usize, open.len());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn no_sequence_takes_a_position_past_its_limit(ops in prop::collection::vec(op(), 1..400)) {
        run(&ops, false)?;
    }

    #[test]
    fn position_decisions_match_the_reference(ops in prop::collection::vec(op(), 1..400)) {
        run(&ops, true)?;
    }
}
