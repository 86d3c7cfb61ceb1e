//! Backtests over recorded files: read captures or native files, feed the core's `Backtest`,
//! and sample the mid price and position for reports.
//!
//! The same driver (`rt_core::backtest`) runs strategy, risk and matching; this module only
//! moves events from files into it, so a backtest from Python, a bench and a test all replay
//! the same way.
//!
//! A [`Window`] `[start, end)` on the events' local receive time limits what is traded: events
//! before `start` only build the books (a capture has its REST snapshot at its beginning, so
//! the book must be synced before trading starts; see `Backtest::set_warmup_until`), and the
//! replay stops at the first event at or after `end` without reading further.

use std::fmt;
use std::path::{Path, PathBuf};

use rt_core::backtest::{Backtest, BacktestError, BacktestResult};
use rt_core::{ModelLoader, Nanos, Price, Qty};
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
    #[error("the window {0} is empty: its start must be before its end")]
    BadWindow(Window),
    #[error("the window {window} holds no events of the data ({})", range_text(*.range))]
    EmptyWindow {
        window: Window,
        /// Local receive time of the data's first and last events, if it has any.
        range: Option<(Nanos, Nanos)>,
    },
}

fn range_text(range: Option<(Nanos, Nanos)>) -> String {
    match range {
        Some((first, last)) => format!("it runs from {} to {}", utc(first), utc(last)),
        None => "it has no events".to_owned(),
    }
}

/// A time window `[start, end)` on the events' local receive time, in ns since the epoch (UTC);
/// `None` leaves that side open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Window {
    pub start_ns: Option<Nanos>,
    pub end_ns: Option<Nanos>,
}

impl Window {
    /// All the data.
    pub const ALL: Window = Window {
        start_ns: None,
        end_ns: None,
    };

    pub fn is_all(&self) -> bool {
        self.start_ns.is_none() && self.end_ns.is_none()
    }

    /// Whether an event received at `ts` is before the window's end.
    fn before_end(&self, ts: Nanos) -> bool {
        !self.end_ns.is_some_and(|end| ts >= end)
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let side = |t: Option<Nanos>| t.map_or_else(|| "open".to_owned(), utc);
        write!(f, "[{}, {})", side(self.start_ns), side(self.end_ns))
    }
}

/// `2024-08-08T23:55:00.123456789Z (1723161300123456789 ns)`: a UTC time for messages, with the
/// exact number.
fn utc(ns: Nanos) -> String {
    format!("{} ({ns} ns)", iso_utc(ns))
}

/// `2024-08-08T23:55:00Z`, or `2024-08-08T23:55:00.123456789Z` when there is a fraction.
pub fn iso_utc(ns: Nanos) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let frac = ns.rem_euclid(1_000_000_000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days since 1970-01-01 to a civil date (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s) = (rem / 3_600, rem % 3_600 / 60, rem % 60);
    let frac = if frac == 0 {
        String::new()
    } else {
        format!(".{frac:09}")
    };
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}{frac}Z")
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
    progress: impl FnMut(u64, u64),
) -> Result<Replay, ReplayError> {
    run_window(manifest, files, Window::ALL, progress_every, progress)
}

/// [`run`] trading only inside `window` (see the module documentation): the result's orders,
/// fills, equity, marks, summary and counters cover the window, and
/// `counters.warmup_events` says how many events built the books before it. A window that
/// holds no event of the data is [`ReplayError::EmptyWindow`].
pub fn run_window(
    manifest: &Manifest,
    files: &[PathBuf],
    window: Window,
    progress_every: u64,
    progress: impl FnMut(u64, u64),
) -> Result<Replay, ReplayError> {
    replay(manifest, files, window, None, progress_every, progress)
}

/// [`run_window`] for a manifest whose strategies may run models: `models` builds each one
/// (see `rt_core::strategy::ModelLoader`; `rt_model::manifest_loader` in practice).
pub fn run_window_with(
    manifest: &Manifest,
    files: &[PathBuf],
    window: Window,
    models: &mut ModelLoader<'_>,
    progress_every: u64,
    progress: impl FnMut(u64, u64),
) -> Result<Replay, ReplayError> {
    replay(
        manifest,
        files,
        window,
        Some(models),
        progress_every,
        progress,
    )
}

fn replay(
    manifest: &Manifest,
    files: &[PathBuf],
    window: Window,
    models: Option<&mut ModelLoader<'_>>,
    progress_every: u64,
    mut progress: impl FnMut(u64, u64),
) -> Result<Replay, ReplayError> {
    if files.is_empty() {
        return Err(ReplayError::NoData);
    }
    if let (Some(start), Some(end)) = (window.start_ns, window.end_ns) {
        if start >= end {
            return Err(ReplayError::BadWindow(window));
        }
    }
    if manifest.exchanges.len() != 1 {
        return Err(ReplayError::Exchanges(manifest.exchanges.len()));
    }
    let mut backtest = match models {
        Some(models) => Backtest::from_manifest_with(manifest, models)?,
        None => Backtest::from_manifest(manifest)?,
    };
    if let Some(start) = window.start_ns {
        backtest.set_warmup_until(start);
    }
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
    let mut in_window = 0u64;
    let mut ended = false;
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
                Ok(event) => {
                    if !window.before_end(event.header().local_ns) {
                        ended = true;
                        break;
                    }
                    backtest.on_event(0, &event);
                }
                Err(_) => {
                    data_errors += 1;
                    continue;
                }
            }
            events += 1;
            if backtest.is_warming_up() {
                continue;
            }
            in_window += 1;
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
        if ended {
            break;
        }
        progress(done_before, total);
    }
    if ended {
        progress(total, total);
    }
    if in_window == 0 && !window.is_all() {
        return Err(ReplayError::EmptyWindow {
            window,
            range: time_range(files)?,
        });
    }
    Ok(Replay {
        result: backtest.finish(),
        marks,
        data_errors,
    })
}

/// Local receive time of the first and last events of `files` read as one stream.
pub fn time_range(files: &[PathBuf]) -> Result<Option<(Nanos, Nanos)>, Error> {
    let mut range: Option<(Nanos, Nanos)> = None;
    for file in files {
        let mut reader = open_any(file)?;
        while let Some(next) = reader.next_event() {
            if let Ok(event) = next {
                let ts = event.header().local_ns;
                range = Some(range.map_or((ts, ts), |(a, b)| (a.min(ts), b.max(ts))));
            }
        }
    }
    Ok(range)
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_times_read_like_iso_8601() {
        assert_eq!(iso_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso_utc(1_723_161_300_000_000_000), "2024-08-08T23:55:00Z");
        assert_eq!(
            iso_utc(951_782_400_000_000_001),
            "2000-02-29T00:00:00.000000001Z"
        );
        assert_eq!(iso_utc(-1), "1969-12-31T23:59:59.999999999Z");
        let w = Window {
            start_ns: Some(0),
            end_ns: None,
        };
        assert_eq!(w.to_string(), "[1970-01-01T00:00:00Z (0 ns), open)");
    }
}
