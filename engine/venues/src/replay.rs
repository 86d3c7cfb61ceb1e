//! Backtests over recorded files: read captures or native files, feed the core's `Backtest`,
//! and sample the mid price and position for reports.
//!
//! The same driver (`rt_core::backtest`) runs strategy, risk and matching; this module only
//! moves events from files into it, so a backtest from Python, a bench and a test all replay
//! the same way.

use std::path::{Path, PathBuf};

use rt_core::backtest::{Backtest, BacktestError, BacktestResult};
use rt_core::{Nanos, Price, Qty};
use rt_manifest::Manifest;

use crate::{open_any, Decoder, Error, EventReader};

/// How often (event time) the mid and position are sampled for reports.
pub const MARK_INTERVAL_NS: Nanos = 100_000_000;

/// Why a replay could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("backtest setup: {0}")]
    Setup(#[from] BacktestError),
    #[error("data: {0}")]
    Data(#[from] Error),
    #[error("the engine trades {0} exchanges; a file replay feeds one (split the deployment or backtest one exchange)")]
    Exchanges(usize),
    #[error("no data file given")]
    NoData,
}

/// Mid price and position of one instrument at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MarkSample {
    pub ts: Nanos,
    pub instrument: u32,
    pub mid: Price,
    pub position: Qty,
}

/// A finished replay: the backtest's records, the marks, and data problems met on the way.
#[derive(Debug)]
pub struct Replay {
    pub result: BacktestResult,
    pub marks: Vec<MarkSample>,
    /// Frames or lines that could not be decoded (counted and skipped).
    pub data_errors: u64,
}

/// Replays `files` (captures or native files, in order, as one stream) through the manifest's
/// strategies. `progress(done, total)` is called every `progress_every` events with bytes (or
/// rows) read over all files.
pub fn run(
    manifest: &Manifest,
    files: &[PathBuf],
    progress_every: u64,
    mut progress: impl FnMut(u64, u64),
) -> Result<Replay, ReplayError> {
    if files.is_empty() {
        return Err(ReplayError::NoData);
    }
    if manifest.exchanges.len() != 1 {
        return Err(ReplayError::Exchanges(manifest.exchanges.len()));
    }
    let mut backtest = Backtest::from_manifest(manifest)?;
    let instruments = backtest.instruments().len();
    let symbols: Vec<String> = backtest
        .instruments()
        .iter()
        .map(|i| i.symbol.clone())
        .collect();
    let sizes: Vec<u64> = files.iter().map(|f| file_len(f)).collect();
    let total: u64 = sizes.iter().sum();
    let mut done_before = 0u64;
    let mut marks = Vec::new();
    let mut next_mark: Nanos = Nanos::MIN;
    let mut data_errors = 0u64;
    let mut events = 0u64;
    for (file, size) in files.iter().zip(&sizes) {
        let mut reader = open_any(file)?;
        if let EventReader::Capture(capture) = reader {
            // Register the traded symbols first, so their ids are known before any event.
            reader = EventReader::Capture(capture.with_decoder(Decoder::with_symbols(&symbols)));
        }
        backtest.set_symbols(0, reader.symbols())?;
        loop {
            let (done, file_total) = reader.progress();
            let Some(next) = reader.next_event() else {
                break;
            };
            match next {
                Ok(event) => backtest.on_event(0, &event),
                Err(_) => {
                    data_errors += 1;
                    continue;
                }
            }
            events += 1;
            let now = backtest.now();
            if now >= next_mark {
                next_mark = now.saturating_add(MARK_INTERVAL_NS);
                for id in 0..instruments as u32 {
                    if let Some(mid) = backtest.book(id).and_then(|b| b.mid()) {
                        marks.push(MarkSample {
                            ts: now,
                            instrument: id,
                            mid,
                            position: backtest.portfolio().qty(id),
                        });
                    }
                }
            }
            if progress_every > 0 && events % progress_every == 0 {
                // Bytes of this file, scaled from the reader's own unit (bytes or rows).
                let scaled = done
                    .saturating_mul(*size)
                    .checked_div(file_total)
                    .unwrap_or(0);
                progress(done_before + scaled, total);
            }
        }
        done_before += size;
        progress(done_before, total);
    }
    Ok(Replay {
        result: backtest.finish(),
        marks,
        data_errors,
    })
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}
