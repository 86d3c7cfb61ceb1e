//! Feature computation cost on real data: the bundled Binance Spot BTCUSDT capture
//! (`data/binance/spot_btcusdt_20240808.gz`) replayed through the book sync, and
//! `conf/features/book_basic.yaml`'s features updated and written (`on_book` + `compute`) after
//! every book update. Prints p50/p99 per update (each timed alone with `Instant`, so the figures
//! include ~20-30 ns of timer overhead) and rows/s of the whole replay (`rt_venues::features`:
//! decode, sync, features, columns) on a row per book update and on a 1 ms grid, with the
//! machine. Run with `cargo bench -p rt-venues --bench features`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Instant;

use rt_core::{BookSync, DiffOutcome, FeatureSet, MarketEvent, Price, SyncRule};
use rt_manifest::features::FeatureSetDecl;
use rt_venues::features::{compute, FeatureRequest};

const BOOK_BASIC: &str = r#"{"features": [
    {"name": "book_imbalance", "levels": 1}, {"name": "book_imbalance", "levels": 5},
    {"name": "microprice_offset"}, {"name": "spread"},
    {"name": "mid_return", "window_ms": 1000}, {"name": "mid_return", "window_ms": 10000},
    {"name": "trade_imbalance", "window_ms": 5000}, {"name": "realized_vol", "window_ms": 10000},
    {"name": "touch_qty", "side": "bid"}, {"name": "touch_qty", "side": "ask"},
    {"name": "inventory"}]}"#;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

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
    format!("{model}, {cores} logical CPUs")
}

fn pct(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

fn main() {
    let capture = root().join("data/binance/spot_btcusdt_20240808.gz");
    let native =
        std::env::temp_dir().join(format!("rt_features_bench_{}.native", std::process::id()));
    rt_venues::convert(&capture, &native).expect("convert the capture");
    let decl = FeatureSetDecl::from_json(BOOK_BASIC).expect("book_basic");
    println!("machine: {}", machine());

    // Per update: on_book + compute, timed one by one over several passes.
    let mut samples = Vec::new();
    for _ in 0..5 {
        let mut reader = rt_venues::open_any(&native).expect("open");
        let mut sync = BookSync::new(SyncRule::Spot);
        let mut fs = FeatureSet::from_decl(&decl, Price(1_000_000)).expect("set");
        let mut row = vec![0f32; fs.width()];
        let mut clock = i64::MIN;
        while let Some(Ok(event)) = reader.next_event() {
            clock = clock.max(event.header().local_ns);
            let changed = match &event {
                MarketEvent::Depth(d) => sync.on_diff(d) == DiffOutcome::Applied,
                MarketEvent::Snapshot(s) => {
                    sync.on_snapshot(s);
                    sync.is_synced()
                }
                MarketEvent::Trade(t) => {
                    fs.on_trade(t, clock);
                    false
                }
                MarketEvent::Bbo(_) => false,
            };
            if changed && sync.is_synced() {
                let t = Instant::now();
                fs.on_book(sync.book(), clock);
                fs.compute(&mut row).expect("width");
                samples.push(t.elapsed().as_nanos() as u64);
                std::hint::black_box(&row);
            }
        }
    }
    samples.sort_unstable();
    let mean = samples.iter().sum::<u64>() as f64 / samples.len() as f64;
    println!(
        "features book_basic (11), on_book + compute per book update: p50 {} ns, p99 {} ns, mean {:.0} ns ({} updates) -> {:.2} M rows/s",
        pct(&samples, 0.5),
        pct(&samples, 0.99),
        mean,
        samples.len(),
        1e3 / mean
    );

    // Whole replay through rt_venues::features (what `appliance features` runs).
    let manifest_text =
        std::fs::read_to_string(root().join("tests/contract/example.manifest.json"))
            .expect("example manifest");
    let manifest = rt_manifest::load(&manifest_text).expect("manifest");
    for (label, every) in [("every book update", None), ("1 ms grid", Some(1_000_000))] {
        let request = FeatureRequest {
            symbol: Some("BTCUSDT".into()),
            every_ns: every,
            horizons_ns: vec![1_000_000_000],
            ..FeatureRequest::default()
        };
        let mut best = f64::MAX;
        let mut rows = 0;
        for _ in 0..5 {
            let t = Instant::now();
            let out =
                compute(&manifest, &decl, std::slice::from_ref(&native), &request).expect("rows");
            best = best.min(t.elapsed().as_secs_f64());
            rows = out.rows();
        }
        println!(
            "replay + features + 1 s labels, {label}: {rows} rows in {:.1} ms (best of 5) -> {:.2} M rows/s",
            best * 1e3,
            rows as f64 / best / 1e6
        );
    }
    let _ = std::fs::remove_file(&native);
}
