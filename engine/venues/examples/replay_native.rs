//! Profiling harness for the warm replay of `make bench-compare`: replays a native file through
//! a compiled manifest's strategies PASSES times (default 21) in one process and prints the
//! median, best and slowest pass and the last summary. Under `perf record` it shows where a
//! replay's time goes without the Python around it.
//!
//! `cargo run --release -p rt-venues --example replay_native -- MANIFEST NATIVE [PASSES]`
#![allow(clippy::expect_used)]
use std::path::PathBuf;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: replay_native MANIFEST NATIVE [PASSES]");
        std::process::exit(2);
    }
    let text = std::fs::read_to_string(&args[1]).expect("manifest");
    let manifest = rt_manifest::load(&text).expect("manifest loads");
    let files = vec![PathBuf::from(&args[2])];
    let passes: usize = args.get(3).map_or(21, |p| p.parse().expect("passes"));
    let mut times = Vec::new();
    let mut summary = String::new();
    for _ in 0..passes {
        let start = Instant::now();
        let replay = rt_venues::replay::run(&manifest, &files, 0, |_, _| {}).expect("replay");
        times.push(start.elapsed().as_secs_f64());
        summary = format!("{:?}", replay.result.summary);
    }
    times.sort_by(f64::total_cmp);
    println!(
        "median {:.2} ms min {:.2} max {:.2} over {passes}",
        times[passes / 2] * 1e3,
        times[0] * 1e3,
        times[passes - 1] * 1e3
    );
    println!("{summary}");
}
