//! L2 book update cost on real data: every level change of the real Binance Spot BTCUSDT diffs
//! (`shared/data/binance/spot_btcusdt_20240808.gz`, after its REST snapshot), applied to an
//! `OrderBook` loaded from that snapshot. Goal (DESIGN.md section 5): p50 <= 15 ns, p99 <= 60 ns
//! per level change.
//!
//! The changes are decoded beforehand into a `Vec<(Side, Price, Qty)>` (a minimal extractor
//! here: rt-core cannot depend on the venue codec). The headline times every change on its own
//! with the CPU's time-stamp counter (x86-64 `rdtsc`, calibrated against `Instant` over 200 ms;
//! the cost of an empty pair of reads, measured here, is subtracted), so its p50/p99 are
//! percentiles of single changes, not of batch averages. For scale the replay is also timed in
//! batches of consecutive changes with `std::time::Instant` (a batch's time divided by its size
//! is one sample). Warm-up passes first, then the samples of several passes are sorted.
//! Run with `cargo bench -p rt-core --bench book`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::time::Instant;

use rt_core::{Level, OrderBook, Price, Qty, Side};

const WARM_UP_PASSES: usize = 3;
const PASSES: usize = 20;

type Change = (Side, Price, Qty);

fn data_file() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shared = root.join("../../../shared/data/binance/spot_btcusdt_20240808.gz");
    if shared.exists() {
        shared
    } else {
        root.join("../../data/binance/spot_btcusdt_20240808.gz")
    }
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

fn after<'a>(s: &'a str, key: &str) -> Option<&'a str> {
    s.find(key).map(|i| &s[i + key.len()..])
}

fn id(s: &str, key: &str) -> u64 {
    let rest = after(s, key).expect("the id is present");
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().expect("an id")
}

/// `[["p","q"],...]` after `key`.
fn levels(s: &str, key: &str) -> Vec<Level> {
    let mut rest = after(s, key).expect("the levels are present");
    let mut out = Vec::new();
    while let Some(r) = rest.strip_prefix("[\"") {
        let (p, r) = r.split_once("\",\"").expect("a price");
        let (q, r) = r.split_once("\"]").expect("a qty");
        out.push(Level::new(
            Price::parse(p.as_bytes()).unwrap(),
            Qty::parse(q.as_bytes()).unwrap(),
        ));
        rest = r.strip_prefix(',').unwrap_or(r);
    }
    out
}

/// The snapshot and every level change after it, in order.
fn load() -> (Vec<Level>, Vec<Level>, Vec<Change>, usize) {
    let file = std::fs::File::open(data_file()).expect("the capture is readable");
    let lines = BufReader::new(flate2::read::MultiGzDecoder::new(BufReader::new(file))).lines();
    let mut snapshot: Option<(u64, Vec<Level>, Vec<Level>)> = None;
    let mut changes = Vec::new();
    let mut diffs = 0;
    for line in lines {
        let line = line.expect("a line");
        if let Some((_, frame)) = line.split_once(' ') {
            if frame.starts_with("{\"lastUpdateId\"") {
                let lid = id(frame, "\"lastUpdateId\":");
                snapshot = Some((
                    lid,
                    levels(frame, "\"bids\":["),
                    levels(frame, "\"asks\":["),
                ));
            } else if frame.contains("\"depthUpdate\"") {
                let Some((lid, _, _)) = &snapshot else {
                    continue;
                };
                if id(frame, "\"u\":") <= *lid {
                    continue;
                }
                diffs += 1;
                for l in levels(frame, "\"b\":[") {
                    changes.push((Side::Buy, l.price, l.qty));
                }
                for l in levels(frame, "\"a\":[") {
                    changes.push((Side::Sell, l.price, l.qty));
                }
            }
        }
    }
    let (_, bids, asks) = snapshot.expect("the capture has a snapshot");
    (bids, asks, changes, diffs)
}

fn replay(book: &mut OrderBook, changes: &[Change], batch: usize, samples: Option<&mut Vec<f64>>) {
    match samples {
        None => {
            for &(side, price, qty) in changes {
                black_box(book.apply(side, price, qty));
            }
        }
        Some(samples) => {
            for chunk in changes.chunks(batch) {
                let start = Instant::now();
                for &(side, price, qty) in chunk {
                    black_box(book.apply(side, price, qty));
                }
                let ns = start.elapsed().as_nanos() as f64;
                samples.push(ns / chunk.len() as f64);
            }
        }
    }
}

/// The time-stamp counter: a few ns to read, no syscall.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
#[inline(always)]
fn tsc() -> u64 {
    // SAFETY: `rdtsc` has no preconditions and every x86-64 CPU has it.
    unsafe { std::arch::x86_64::_rdtsc() }
}

/// Ticks per ns, and the ticks an empty pair of reads costs (the median of many).
#[cfg(target_arch = "x86_64")]
fn calibrate() -> (f64, u64) {
    let (t0, i0) = (tsc(), Instant::now());
    while i0.elapsed().as_millis() < 200 {
        std::hint::spin_loop();
    }
    let ticks_per_ns = (tsc() - t0) as f64 / i0.elapsed().as_nanos() as f64;
    let mut empty: Vec<u64> = (0..100_000)
        .map(|_| {
            let a = tsc();
            black_box(());
            tsc() - a
        })
        .collect();
    empty.sort_unstable();
    (ticks_per_ns, empty[empty.len() / 2])
}

/// Every change timed on its own with the TSC, in ns, the empty-read cost subtracted.
#[cfg(target_arch = "x86_64")]
fn run_tsc(snapshot: &OrderBook, changes: &[Change]) -> Option<(f64, f64)> {
    let (ticks_per_ns, overhead) = calibrate();
    let mut book = snapshot.clone();
    for _ in 0..WARM_UP_PASSES {
        book.clone_from(snapshot);
        replay(&mut book, changes, 1, None);
    }
    let mut samples = Vec::with_capacity(PASSES * changes.len());
    for _ in 0..PASSES {
        book.clone_from(snapshot);
        for &(side, price, qty) in changes {
            let start = tsc();
            black_box(book.apply(side, price, qty));
            let ticks = tsc().saturating_sub(start).saturating_sub(overhead);
            samples.push(ticks as f64 / ticks_per_ns);
        }
    }
    samples.sort_by(f64::total_cmp);
    let (p50, p99) = (pct(&samples, 0.50), pct(&samples, 0.99));
    println!(
        "{:<34} p50 {p50:>6.1} ns  p99 {p99:>6.1} ns  p99.9 {:>7.1} ns  max {:>8.1} ns  \
         (TSC {:.3} GHz, empty read pair {:.1} ns subtracted)",
        "each change alone, TSC",
        pct(&samples, 0.999),
        samples[samples.len() - 1],
        ticks_per_ns,
        overhead as f64 / ticks_per_ns,
    );
    Some((p50, p99))
}

#[cfg(not(target_arch = "x86_64"))]
fn run_tsc(_: &OrderBook, _: &[Change]) -> Option<(f64, f64)> {
    println!("each change alone: no time-stamp counter on this architecture, skipped");
    None
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn run(label: &str, batch: usize, snapshot: &OrderBook, changes: &[Change]) -> (f64, f64) {
    let mut book = snapshot.clone();
    for _ in 0..WARM_UP_PASSES {
        book.clone_from(snapshot);
        replay(&mut book, changes, batch, None);
    }
    let mut samples = Vec::with_capacity(PASSES * changes.len() / batch + PASSES);
    let mut total = 0.0;
    for _ in 0..PASSES {
        book.clone_from(snapshot);
        let start = Instant::now();
        replay(&mut book, changes, batch, Some(&mut samples));
        total += start.elapsed().as_secs_f64();
    }
    samples.sort_by(f64::total_cmp);
    let (p50, p99) = (pct(&samples, 0.50), pct(&samples, 0.99));
    let per_second = (PASSES * changes.len()) as f64 / total;
    println!(
        "{label:<34} p50 {p50:>6.1} ns  p99 {p99:>6.1} ns  p99.9 {:>7.1} ns  max {:>8.1} ns  \
         {:>6.1} M changes/s (incl. timer)",
        pct(&samples, 0.999),
        samples[samples.len() - 1],
        per_second / 1e6,
    );
    (p50, p99)
}

fn main() {
    let t = Instant::now();
    let (bids, asks, changes, diffs) = load();
    let mut snapshot = OrderBook::new();
    snapshot.load_snapshot(&bids, &asks);
    let mut end = snapshot.clone();
    replay(&mut end, &changes, 1, None);
    println!("book update bench on {}", machine());
    println!(
        "data: {} ({} snapshot levels, {diffs} diffs, {} level changes; loaded in {:.2} s); \
         book depth at the end: {} bids / {} asks",
        data_file().display(),
        bids.len() + asks.len(),
        changes.len(),
        t.elapsed().as_secs_f64(),
        end.depth(Side::Buy),
        end.depth(Side::Sell),
    );
    println!("{PASSES} timed passes after {WARM_UP_PASSES} warm-up passes; ns per level change:");
    let single = run_tsc(&snapshot, &changes);
    let batched = run("batches of 32 changes, Instant", 32, &snapshot, &changes);
    run("batches of 8 changes, Instant", 8, &snapshot, &changes);
    run("one change, Instant (~timer cost)", 1, &snapshot, &changes);
    let verdict = |ok: bool| if ok { "meets" } else { "MISSES" };
    let (what, (p50, p99)) = match single {
        Some(single) => ("each change alone, TSC", single),
        None => ("batches of 32", batched),
    };
    println!(
        "per level change ({what}): p50 {p50:.1} ns {} the goal <= 15 ns; p99 {p99:.1} ns {} the goal <= 60 ns",
        verdict(p50 <= 15.0),
        verdict(p99 <= 60.0)
    );
}
