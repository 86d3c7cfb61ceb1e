//! Per-call latency of `OnnxModel::predict` (one row, after warm-up), printed as JSON lines.
//!
//! `cargo bench -p rt-model --bench onnx -- --library LIB [--calls N] MODEL ROWS [MODEL ROWS...]`
//! where ROWS is a file of little-endian float32 rows of the model's input width (written by
//! `bench/onnx_bench.py`, which runs the same rows through Python's `onnxruntime` and prints
//! both side by side). Each call is timed alone with a monotonic clock into an HDR histogram.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use rt_model::{ModelOptions, OnnxModel};

const WARMUP: usize = 2_000;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let mut library = None;
    let mut calls = 20_000_usize;
    let mut files = Vec::new();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--library" => library = args.next().map(PathBuf::from),
            "--calls" => calls = args.next().context("--calls N")?.parse()?,
            _ => files.push(PathBuf::from(arg)),
        }
    }
    if files.is_empty() || files.len() % 2 != 0 {
        bail!("usage: onnx --library LIB [--calls N] MODEL ROWS [MODEL ROWS...]");
    }
    let options = ModelOptions {
        library_path: library,
        ..ModelOptions::default()
    };
    for pair in files.chunks(2) {
        let (model_path, rows_path) = (&pair[0], &pair[1]);
        let mut model = OnnxModel::load(model_path, &options)?;
        let width = model.input_width();
        let bytes = std::fs::read(rows_path)?;
        let rows: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let n_rows = rows.len() / width;
        if n_rows == 0 {
            bail!("{}: no rows of width {width}", rows_path.display());
        }
        let row = |i: usize| &rows[(i % n_rows) * width..(i % n_rows + 1) * width];
        let mut sink = 0.0_f32;
        for i in 0..WARMUP {
            sink += model.predict(row(i))?[0];
        }
        let mut hist = Histogram::<u64>::new_with_bounds(1, 1_000_000_000, 3)?;
        for i in 0..calls {
            let started = Instant::now();
            let out = model.predict(row(i))?[0];
            let ns = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            sink += out;
            hist.saturating_record(ns.max(1));
        }
        println!(
            "{{\"model\": {:?}, \"input_width\": {width}, \"calls\": {calls}, \"p50_ns\": {}, \"p99_ns\": {}, \"max_ns\": {}, \"mean_ns\": {:.0}, \"library\": {:?}, \"checksum\": {sink}}}",
            model_path.display().to_string(),
            hist.value_at_quantile(0.50),
            hist.value_at_quantile(0.99),
            hist.max(),
            hist.mean(),
            model.runtime().version,
        );
    }
    Ok(())
}
