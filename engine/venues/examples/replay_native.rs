//! Profiling harness for the warm replay of `make bench-compare`: replays a native file through
//! a compiled manifest's strategies PASSES times (default 21) in one process and prints the
//! median, best and slowest pass and the last summary. Under `perf record` it shows where a
//! replay's time goes without the Python around it.
//!
//! `cargo run --release -p rt-venues --example replay_native -- MANIFEST DATA [PASSES]`: DATA is
//! a native file, or a capture, converted first to a native file in the temporary directory.
#![allow(clippy::expect_used)]
use std::path::PathBuf;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: replay_native MANIFEST DATA [PASSES]");
        std::process::exit(2);
    }
    let text = std::fs::read_to_string(&args[1]).expect("manifest");
    let manifest = rt_manifest::load(&text).expect("manifest loads");
    let mut data = PathBuf::from(&args[2]);
    if !rt_venues::open_any(&data).expect("data").is_native() {
        let native =
            std::env::temp_dir().join(format!("replay-native-{}.native", std::process::id()));
        rt_venues::convert(&data, &native).expect("convert");
        data = native;
    }
    let files = vec![data.clone()];
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
    if data.to_string_lossy() != args[2] {
        std::fs::remove_file(&data).expect("remove the converted file");
    }
}
