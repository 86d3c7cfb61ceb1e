//! Manifest load time: `rt_manifest::load` on the example manifest, end to end (JSON parse,
//! version and content-hash check, typed deserialization, every semantic rule), plus its stages
//! alone to show where the time goes. Goal: <= 1 ms per load.
//!
//! Plain `std::time::Instant` sampling (no criterion): warm up, then time each iteration, sort
//! the samples and report p50/p99/mean. Run with `cargo bench -p rt-manifest`.

#![allow(clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

const WARM_UP: usize = 2_000;
const ITERATIONS: usize = 20_000;
const GOAL: Duration = Duration::from_millis(1);

fn sample(label: &str, bytes: usize, mut run: impl FnMut()) -> Duration {
    for _ in 0..WARM_UP {
        run();
    }
    let mut samples = Vec::with_capacity(ITERATIONS);
    for _ in 0..ITERATIONS {
        let start = Instant::now();
        run();
        samples.push(start.elapsed());
    }
    samples.sort_unstable();
    let total: Duration = samples.iter().sum();
    let mean = total / ITERATIONS as u32;
    let p50 = samples[ITERATIONS / 2];
    let p99 = samples[ITERATIONS * 99 / 100];
    let per_second = ITERATIONS as f64 / total.as_secs_f64();
    let mib_per_second = per_second * bytes as f64 / f64::from(1 << 20);
    println!(
        "{label:<28} p50 {:>8.2} us  p99 {:>8.2} us  mean {:>8.2} us  max {:>8.2} us  \
         {per_second:>9.0} loads/s  {mib_per_second:>7.1} MiB/s",
        micros(p50),
        micros(p99),
        micros(mean),
        micros(samples[ITERATIONS - 1]),
    );
    p99
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/contract/example.manifest.json"
    );
    let text = std::fs::read_to_string(path).expect("the example manifest is readable");
    let value: serde_json::Value = serde_json::from_str(&text).expect("the example is JSON");
    let manifest = rt_manifest::load(&text).expect("the example loads");
    println!(
        "manifest load: {} bytes, {ITERATIONS} iterations after {WARM_UP} warm-up",
        text.len()
    );

    let p99 = sample("load (full)", text.len(), || {
        black_box(rt_manifest::load(black_box(&text)).expect("loads"));
    });
    sample("  parse JSON to Value", text.len(), || {
        black_box(serde_json::from_str::<serde_json::Value>(black_box(&text)).expect("JSON"));
    });
    sample("  content hash", text.len(), || {
        black_box(rt_manifest::content_sha256(black_box(&value)));
    });
    sample("  Value clone + typed", text.len(), || {
        let owned = black_box(&value).clone();
        let typed: rt_manifest::Manifest =
            serde_path_to_error::deserialize(owned).expect("deserializes");
        black_box(typed);
    });
    sample("  validate", text.len(), || {
        black_box(rt_manifest::validate(black_box(&manifest)));
    });

    let verdict = if p99 <= GOAL { "meets" } else { "MISSES" };
    println!(
        "full load p99 {:.2} us {verdict} the goal of <= 1 ms",
        micros(p99)
    );
}
