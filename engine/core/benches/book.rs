//! L2 book update cost on real data: every level change of the real Binance Spot BTCUSDT diffs
//! (`shared/data/binance/spot_btcusdt_20240808.gz`, after its REST snapshot), applied to an
//! `OrderBook` loaded from that snapshot. Goal (DESIGN.md section 5): p50 <= 15 ns, p99 <= 60 ns
//! per level change.
//!
//! The changes are decoded beforehand into a `Vec<(Side, Price, Qty)>` (a minimal extractor
//! here: rt-core cannot depend on the venue codec). The headline times every change on its own
//! with the CPU's time-stamp counter, calibrated against `Instant` over 200 ms, so its p50/p99
//! are percentiles of single changes, not of batch averages. The reads are fenced (`lfence;
//! rdtsc; lfence` before the change, `rdtscp; lfence` after): a bare `rdtsc` (what `quanta`'s
//! clock reads) is not ordered with the code around it, so the out-of-order core runs a ~15 ns
//! change in the shadow of the reads and, once the cost of an empty pair is subtracted, most
//! samples came out as 0 ns (p50 0.0 ns here). The fenced empty pair's cost (its median) is
//! subtracted and the samples it swallows whole are counted. For scale the replay is also timed in
//! batches of consecutive changes with `std::time::Instant` (a batch's time divided by its size
//! is one sample). Warm-up passes first, then the samples of several passes are sorted.
//! Run with `cargo bench -p rt-core --bench book`.
//!
//! Figures (AMD EPYC, 2 vCPUs shared with other work, 2026-12-06; builds run alternately;
//! "fenced" is each change alone, "b32" batches of 32; ns, and M changes/s):
//!
//! | book | load | fenced p99 | fenced mean | b32 p99 | b32 p99.9 | b32 M/s |
//! |---|---|---|---|---|---|---|
//! | before: window 32768 ticks, best at 3/4, blocks of 32 | 2.6 | 90.1 / 100.1 | 18.2 / 18.9 | 42.6 / 42.6 | 58.8 / 60.7 | 66.8 / 67.8 |
//! | 65536 ticks, best at 15/16, blocks of 16, bisected heads | 2.6 | 100.1 / 90.1 | 16.4 / 16.6 | 25.3 / 26.3 | 360.2 / 371.8 | 79.6 / 77.9 |
//! | before | 3.3-3.5 | 110.2 x3 | 40.1 / 32.9 / 21.4 | 42.9 / 49.4 / 46.9 | 634.7 / 1174.6 / 63.5 | 64.1 / 46.2 / 59.5 |
//! | best at 15/16 | 3.3-3.5 | 110.2 / 90.1 / 100.1 | 24.5 / 16.9 / 17.3 | 28.5 / 26.6 / 25.7 | 791.8 / 395.9 / 378.7 | 61.5 / 76.5 / 78.1 |
//! | after: best at 7/8 (the rest as above) | 3.3-3.5 | 120.2 / 100.1 / 110.2 | 19.3 / 15.9 / 19.9 | 28.2 / 28.5 / 25.7 | 86.4 / 52.9 / 726.7 | 75.5 / 71.0 / 70.9 |
//!
//! The p50 is 10.0 ns in all (20.0 in a few loaded runs). With the best at 15/16 the window
//! moves (an O(window) step) whenever the best rises 4096 ticks past its placing instead of
//! 8192, and the b32 p99.9 stayed above 360 ns in every run; at 7/8 it is back to the old
//! level in its quieter runs.
//!
//! What the p99 is: the changes that miss the window. Timed one by one in a probe run and
//! grouped by their distance from the side's best, a change inside the window costs ~10 ns
//! whatever its kind; an insert or delete among the far levels 50-70 ns (two bisections
//! over cold lines, an out-of-line call and a block shift). With the old window 10% of this
//! capture's changes were far (the Binance diffs reach levels over 128k ticks, $1280, from the
//! touch) and 9.5-11.5% of all changes took over 60 ns; with the new one about 6% are far and
//! 4.7-5.2% take over 60 ns. The p99 still falls among the far changes, so the goal of
//! <= 60 ns is not met: that needs the far levels to cost what the window does (e.g. a paged
//! tick index beyond the window instead of sorted blocks), not a wider window (131072 ticks
//! did no better).

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

/// The time-stamp counter read before the timed code: `lfence` waits for the instructions
/// before it to finish, the second keeps the timed code from starting before the read.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
#[inline(always)]
fn tsc_start() -> u64 {
    use std::arch::x86_64::{_mm_lfence, _rdtsc};
    // SAFETY: `lfence` (SSE2) and `rdtsc` are baseline x86-64 instructions with no
    // preconditions; they read a counter and order execution, nothing else.
    unsafe {
        _mm_lfence();
        let t = _rdtsc();
        _mm_lfence();
        t
    }
}

/// The time-stamp counter read after the timed code: `rdtscp` waits for every earlier
/// instruction to execute, `lfence` keeps later ones from starting before the read.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
#[inline(always)]
fn tsc_end() -> u64 {
    use std::arch::x86_64::{__rdtscp, _mm_lfence};
    let mut aux = 0u32;
    // SAFETY: `rdtscp` (every x86-64 CPU this runs on has it: /proc/cpuinfo `rdtscp`) writes the
    // processor id into `aux`, a live local; `lfence` has no preconditions.
    unsafe {
        let t = __rdtscp(&mut aux);
        _mm_lfence();
        t
    }
}

/// The step the counter is seen to take between back-to-back reads, in ticks (the median of
/// the non-zero differences): a counter that advances in coarse steps (AMD Zen's TSC does, from
/// a 100 MHz reference, ~10 ns) makes every single sample a multiple of it, so the percentiles
/// come in steps of it; the mean does not.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
fn granularity() -> u64 {
    // Bare reads, back to back: the fenced ones take longer than a step.
    // SAFETY: `rdtsc` has no preconditions and every x86-64 CPU has it.
    let read = || unsafe { std::arch::x86_64::_rdtsc() };
    let mut last = read();
    let mut steps: Vec<u64> = (0..100_000)
        .filter_map(|_| {
            let now = read();
            let step = now.saturating_sub(last);
            last = now;
            (step > 0).then_some(step)
        })
        .collect();
    steps.sort_unstable();
    steps.get(steps.len() / 2).copied().unwrap_or(0)
}

/// Ticks per ns, and the ticks an empty fenced pair of reads costs (the median of many, and
/// the mean).
#[cfg(target_arch = "x86_64")]
fn calibrate() -> (f64, u64, f64) {
    let (t0, i0) = (tsc_start(), Instant::now());
    while i0.elapsed().as_millis() < 200 {
        std::hint::spin_loop();
    }
    let ticks_per_ns = (tsc_end() - t0) as f64 / i0.elapsed().as_nanos() as f64;
    let mut empty: Vec<u64> = (0..100_000)
        .map(|_| {
            let a = tsc_start();
            black_box(());
            tsc_end() - a
        })
        .collect();
    let mean = empty.iter().sum::<u64>() as f64 / empty.len() as f64;
    empty.sort_unstable();
    (ticks_per_ns, empty[empty.len() / 2], mean)
}

/// Every change timed on its own with the fenced TSC, in ns, the empty-pair cost subtracted:
/// p50 and p99, and a note on how fine they are (the counter's step, the mean).
#[cfg(target_arch = "x86_64")]
fn run_tsc(snapshot: &OrderBook, changes: &[Change]) -> Option<((f64, f64), String)> {
    let (ticks_per_ns, overhead, overhead_mean) = calibrate();
    let step = granularity();
    let mut book = snapshot.clone();
    for _ in 0..WARM_UP_PASSES {
        book.clone_from(snapshot);
        replay(&mut book, changes, 1, None);
    }
    let mut samples = Vec::with_capacity(PASSES * changes.len());
    let mut swallowed = 0usize;
    let mut total_ticks = 0u64;
    for _ in 0..PASSES {
        book.clone_from(snapshot);
        for &(side, price, qty) in changes {
            let start = tsc_start();
            black_box(book.apply(side, price, qty));
            let ticks = tsc_end().saturating_sub(start);
            swallowed += usize::from(ticks <= overhead);
            total_ticks += ticks;
            samples.push(ticks.saturating_sub(overhead) as f64 / ticks_per_ns);
        }
    }
    let mean = (total_ticks as f64 / samples.len() as f64 - overhead_mean).max(0.0) / ticks_per_ns;
    samples.sort_by(f64::total_cmp);
    let (p50, p99) = (pct(&samples, 0.50), pct(&samples, 0.99));
    println!(
        "{:<34} p50 {p50:>6.1} ns  p99 {p99:>6.1} ns  p99.9 {:>7.1} ns  max {:>8.1} ns  \
         mean {mean:.1} ns",
        "each change alone, fenced TSC",
        pct(&samples, 0.999),
        samples[samples.len() - 1],
    );
    println!(
        "{:<34} TSC {:.3} GHz, read to read {:.1} ns (median step); empty fenced pair {:.1} ns (median; mean \
         {:.1} ns) subtracted; {:.1}% of samples within it",
        "",
        ticks_per_ns,
        step as f64 / ticks_per_ns,
        overhead as f64 / ticks_per_ns,
        overhead_mean / ticks_per_ns,
        100.0 * swallowed as f64 / samples.len() as f64,
    );
    let note = format!(
        " (single samples are multiples of the counter's {:.1} ns step; the mean is {mean:.1} ns)",
        step as f64 / ticks_per_ns
    );
    Some(((p50, p99), note))
}

#[cfg(not(target_arch = "x86_64"))]
fn run_tsc(_: &OrderBook, _: &[Change]) -> Option<((f64, f64), String)> {
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
    let (what, (p50, p99), note) = match single {
        Some((single, note)) => ("each change alone, fenced TSC", single, note),
        None => ("batches of 32", batched, String::new()),
    };
    println!(
        "per level change ({what}): p50 {p50:.1} ns {} the goal <= 15 ns; p99 {p99:.1} ns {} the goal <= 60 ns{note}",
        verdict(p50 <= 15.0),
        verdict(p99 <= 60.0)
    );
}
