//! The model taker allocates nothing per tick in steady state: features updated, row written,
//! model called on every book update, counted by a global allocator.
//!
//! In its own test binary: the allocator counts every thread of the process.
#![allow(unsafe_code, clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use rt_core::model::{PredictError, Predictor};
use rt_core::strategy::model_taker::{ModelTaker, ModelTakerConfig};
use rt_core::{
    Header, InstrumentSpec, OrderBook, Price, Qty, RiskState, Side, Strategy, StrategyContext,
    Trade,
};
use rt_manifest::features::FeatureSetDecl;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The signal is the mean of the row: a deterministic model reading every feature.
struct Mean {
    width: usize,
    out: [f32; 1],
}

impl Predictor for Mean {
    fn input_width(&self) -> usize {
        self.width
    }
    fn output_width(&self) -> usize {
        1
    }
    fn predict(&mut self, input: &[f32]) -> Result<&[f32], PredictError> {
        self.out[0] = input.iter().sum::<f32>() / input.len() as f32;
        Ok(&self.out)
    }
}

#[test]
fn a_tick_does_not_allocate() {
    // The shipped book_basic set (conf/features/book_basic.yaml).
    let decl = FeatureSetDecl::from_json(
        r#"{"features": [{"name": "book_imbalance", "levels": 1},
            {"name": "book_imbalance", "levels": 5}, {"name": "microprice_offset"},
            {"name": "spread"}, {"name": "mid_return", "window_ms": 1000},
            {"name": "mid_return", "window_ms": 10000},
            {"name": "trade_imbalance", "window_ms": 5000},
            {"name": "realized_vol", "window_ms": 10000}, {"name": "touch_qty", "side": "bid"},
            {"name": "touch_qty", "side": "ask"}, {"name": "inventory"}]}"#,
    )
    .unwrap();
    let spec = InstrumentSpec {
        tick: Price(1_000_000),
        lot: Qty(100_000),
        min_notional: 0,
        maker_fee_bps: 0,
        taker_fee_bps: 0,
        contract: rt_core::ContractValue::Unit,
    };
    let config = ModelTakerConfig {
        buy_above: -1e9,
        sell_below: -2e9,
        order_qty: Qty(100_000),
        max_slippage: Price(1_000_000),
        cooldown_ns: 0,
    };
    let model = Box::new(Mean {
        width: 11,
        out: [0.0],
    });
    let mut taker = ModelTaker::new(config, &decl, model, &[0], &[spec]).unwrap();
    let mut book = OrderBook::new();
    let mut out = Vec::with_capacity(16);
    let px = |ticks: i64| Price(ticks * 1_000_000);
    for k in 0..10 {
        book.apply(Side::Buy, px(10_000 - k), Qty(100_000_000));
        book.apply(Side::Sell, px(10_001 + k), Qty(100_000_000));
    }
    // A tick every millisecond: the mid moves, sizes change, a trade every 10th tick.
    let mut tick = |taker: &mut ModelTaker, i: i64, out: &mut Vec<rt_core::Action>| {
        let ctx = StrategyContext {
            now: 1_000_000_000_000 + i * 1_000_000,
            instrument: 0,
            slot: 0,
            // Flat while REDUCING: the model runs on every book update, no order can follow.
            position: Qty::ZERO,
            risk_state: RiskState::Reducing,
            book_update_id: None,
        };
        let shift = (i / 50) % 3;
        book.apply(
            Side::Buy,
            px(10_001),
            Qty(if shift == 1 { 50_000_000 } else { 0 }),
        );
        book.apply(
            Side::Buy,
            px(10_000),
            Qty(100_000_000 + (i % 7) * 1_000_000),
        );
        book.apply(
            Side::Sell,
            px(10_001),
            Qty(if shift == 2 { 0 } else { 100_000_000 }),
        );
        taker.on_book(&ctx, &book, out);
        if i % 10 == 0 {
            let trade = Trade {
                header: Header::default(),
                id: i as u64,
                price: px(10_001),
                qty: Qty(1_000_000),
                aggressor: if i % 20 == 0 { Side::Buy } else { Side::Sell },
            };
            taker.on_trade(&ctx, &book, &trade, out);
        }
    };
    // Warm-up: the windows (10 s at 1 ms) fill up to their steady size.
    for i in 0..30_000 {
        tick(&mut taker, i, &mut out);
    }
    assert!(out.is_empty());
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    for i in 30_000..40_000 {
        tick(&mut taker, i, &mut out);
    }
    let after = ALLOCATIONS.load(Ordering::SeqCst);
    assert_eq!(
        after - before,
        0,
        "{} allocations in 10,000 ticks",
        after - before
    );
    let stats = taker.model_stats().unwrap();
    assert_eq!((stats.predictions, stats.errors), (40_000, 0));
}
