//! Trader replay speed: market events per second through `rt_core::Trader` (book sync,
//! matcher, portfolio, risk, strategy), events already decoded in memory (the "warm replay of a
//! converted file" case of DESIGN.md section 5). Goal: >= 10M events/s with the market maker.
//!
//! Data:
//! - synthetic: a 1M-event random-walk BTCUSDT book (`tests/common`: level updates near the
//!   top, trades with the depth update that follows them, one-tick moves; 1-3 levels a diff);
//! - real, when `shared/data` is present: the Binance USD-M and Spot BTCUSDT captures (the
//!   USD-M one is the file DESIGN.md compares with hftbacktest), decoded once by a minimal
//!   extractor; `bookTicker` lines are not fed.
//!
//! Counting: an *event* is one `MarketEvent` (a whole depth diff, a snapshot, a trade); a *row*
//! is counted as hftbacktest counts them (each depth or snapshot level + each trade), so rows/s
//! compares with its rows/s. Each configuration runs 1 warm-up pass and `PASSES` timed passes
//! (setup and `finish` included); the rates are the median pass's (the headline), the best and
//! the slowest pass are shown beside it.
//! Run with `cargo bench -p rt-core --bench backtest`; `BACKTEST_BENCH_ONLY=<text>` runs only the
//! configurations whose label contains the text (for profiling).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::time::Instant;

use common::{example_manifest, load_capture, random_walk, shared_capture, Tape};
use rt_core::{
    BacktestResult, InstrumentSpec, LatencyModel, Price, Qty, SyncRule, Trader, TraderConfig,
};

const PASSES: usize = 11;
const SYNTHETIC_EVENTS: usize = 1_000_000;

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or("unknown CPU", str::trim)
        .to_owned();
    let cores = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let mhz = cpuinfo
        .lines()
        .find(|l| l.starts_with("cpu MHz"))
        .and_then(|l| l.split(':').nth(1))
        .map_or(String::new(), |m| format!(", {} MHz", m.trim()));
    format!("{model}, {cores} logical CPUs{mhz}")
}

fn replay(config: &TraderConfig, tape: &Tape) -> BacktestResult {
    let mut bt = Trader::new(config.clone()).expect("a valid config");
    for i in 0..tape.len() {
        bt.on_event(0, &tape.event(i));
    }
    bt.finish()
}

fn bench(label: &str, config: &TraderConfig, tape: &Tape) -> f64 {
    if std::env::var("BACKTEST_BENCH_ONLY").is_ok_and(|only| !label.contains(&only)) {
        return 0.0;
    }
    let warm = replay(config, tape);
    let mut times = Vec::with_capacity(PASSES);
    for _ in 0..PASSES {
        let start = Instant::now();
        let result = replay(config, tape);
        times.push(start.elapsed().as_secs_f64());
        assert_eq!(result.summary, warm.summary, "replays are deterministic");
        black_box(result);
    }
    times.sort_by(f64::total_cmp);
    let (best, median, worst) = (times[0], times[PASSES / 2], times[PASSES - 1]);
    let events = tape.len() as f64;
    let rows = tape.rows() as f64;
    let s = &warm.summary;
    println!(
        "{label:<44} median {:>7.2} ms  {:>6.1} M events/s  {:>6.1} M rows/s (median; best {:.2} ms, worst {:.2} ms)",
        median * 1e3,
        events / median / 1e6,
        rows / median / 1e6,
        best * 1e3,
        worst * 1e3,
    );
    let rejections: Vec<String> = s
        .rejections
        .iter()
        .map(|(r, n)| format!("{} {n}", r.as_str()))
        .collect();
    println!(
        "{:<44} orders sent {}, fills {} (maker {}), pnl {} USDT, fees {} USDT, rejected: {}",
        "",
        s.orders_sent,
        s.fills,
        s.maker_fills,
        Price(s.pnl),
        Price(s.fees),
        if rejections.is_empty() {
            "none".to_owned()
        } else {
            rejections.join(", ")
        },
    );
    events / median
}

fn configs(base: &TraderConfig) -> Vec<(&'static str, TraderConfig)> {
    let mut none = base.clone();
    none.strategies.clear();
    let mm = base.clone();
    let mut mm_latency = base.clone();
    mm_latency.exchanges[0].latency = LatencyModel::symmetric(1_000_000);
    let mut taker = base.clone();
    taker.strategies[0].strategy = serde_imbalance_taker(&base.strategies[0].strategy);
    vec![
        ("no strategy (sync + book + driver)", none),
        ("market maker, zero latency", mm),
        ("market maker, 1 ms latency each way", mm_latency),
        ("imbalance taker (5 levels, 0.6, 50 ms)", taker),
    ]
}

/// The manifest strategy turned into an imbalance taker on the same instruments.
fn serde_imbalance_taker(mm: &rt_manifest::model::Strategy) -> rt_manifest::model::Strategy {
    use rt_manifest::model::{ImbalanceTakerParams, StrategyParams};
    use rt_manifest::Fixed;
    let mut s = mm.clone();
    s.params = StrategyParams::ImbalanceTaker(ImbalanceTakerParams {
        levels: 5,
        threshold: Fixed::parse("0.6").unwrap(),
        order_qty: Fixed::parse("0.002").unwrap(),
        max_slippage: Fixed::parse("0.5").unwrap(),
        cooldown_ms: 50,
    });
    s
}

fn main() {
    println!("backtest replay bench on {}", machine());
    let manifest = example_manifest();
    let spot = TraderConfig::from_manifest(&manifest);
    println!(
        "strategy: the example manifest's market maker (microprice, 3 ticks half spread, skew 4 \
         ticks, requote 2 ticks, post-only) under its risk limits; {PASSES} timed passes"
    );

    let t = Instant::now();
    let tape = random_walk(42, SYNTHETIC_EVENTS, 1_723_161_600_000_000_000);
    println!(
        "\nsynthetic random walk: {} events, {} rows (generated in {:.2} s)",
        tape.len(),
        tape.rows(),
        t.elapsed().as_secs_f64()
    );
    let mut mm_rate = 0.0;
    for (label, config) in configs(&spot) {
        let rate = bench(label, &config, &tape);
        if label == "market maker, zero latency" {
            mm_rate = rate;
        }
    }

    for (file, market) in [
        ("usdm_btcusdt_20240808.gz", SyncRule::UsdM),
        ("spot_btcusdt_20240808.gz", SyncRule::Spot),
    ] {
        let Some(path) = shared_capture(file) else {
            println!("\n{file}: not found, skipped");
            continue;
        };
        let t = Instant::now();
        let tape = load_capture(&path);
        println!(
            "\nreal {file}: {} events (snapshot + depth + trade; bookTicker not fed), {} rows \
             (decoded in {:.2} s, not timed)",
            tape.len(),
            tape.rows(),
            t.elapsed().as_secs_f64()
        );
        let mut config = spot.clone();
        if market == SyncRule::UsdM {
            // BTCUSDT perpetual: tick 0.1, lot 0.001, maker 2 / taker 5 bps.
            config.exchanges[0].rule = SyncRule::UsdM;
            config.exchanges[0].instruments[0].spec = InstrumentSpec {
                tick: Price(10_000_000),
                lot: Qty(100_000),
                min_notional: 100 * rt_core::SCALE,
                maker_fee_bps: 200_000_000,
                taker_fee_bps: 500_000_000,
                contract: rt_core::ContractValue::Unit,
            };
        }
        for (label, config) in configs(&config) {
            bench(label, &config, &tape);
        }
    }

    let verdict = if mm_rate >= 10e6 { "meets" } else { "MISSES" };
    println!(
        "\nmarket maker on the synthetic stream: {:.1} M events/s {verdict} the goal >= 10 M events/s",
        mm_rate / 1e6
    );
}
