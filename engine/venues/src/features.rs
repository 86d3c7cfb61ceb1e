//! Feature rows from recorded files: the data replayed as backtests replay it (the same
//! readers, the same Binance book sync, the same [`Window`] on local receive time), one
//! instrument's book and trades fed to an `rt_core::FeatureSet`, a row sampled on every book
//! update or on a fixed time grid, and optional labels: the mid's move over each horizon.
//!
//! Time is the replay's clock (the latest local receive time), as in `rt_core::backtest`.
//! Events before the window's start only build the book and the windows; reading stops at the
//! first event at or after its end. A row needs a synced, two-sided book. Labels look only at
//! the data read: a row whose horizon ends after the last event read has a NaN label. Nothing
//! trades here, so `inventory` is 0.

use std::path::PathBuf;

use rt_core::features::FeatureError;
use rt_core::{BookSync, DiffOutcome, FeatureSet, MarketEvent, Nanos, Price, SyncRule};
use rt_manifest::features::FeatureSetDecl;
use rt_manifest::model::Market;
use rt_manifest::Manifest;

use crate::replay::{time_range, ReplayError, Window};
use crate::{open_any, Decoder, Error, EventReader};

/// Why feature rows could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum FeaturesError {
    #[error(transparent)]
    Replay(#[from] ReplayError),
    #[error("data: {0}")]
    Data(#[from] Error),
    #[error("features: {0}")]
    Features(#[from] FeatureError),
    #[error("instrument: {0}")]
    Instrument(String),
    #[error("every_ns must be positive, found {0}")]
    Every(Nanos),
    #[error("horizons must be positive, found {0} ns")]
    Horizon(Nanos),
}

/// What to compute: the instrument (default: the manifest's first strategy's first
/// instrument), the window, the sampling and the label horizons.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FeatureRequest {
    pub symbol: Option<String>,
    pub window: Window,
    /// `None`: a row on every book update; `Some(n)`: a row at every multiple of `n` ns since
    /// the epoch inside the window (the state after every event at or before that time).
    pub every_ns: Option<Nanos>,
    pub horizons_ns: Vec<Nanos>,
}

/// The rows, column by column.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FeatureRows {
    pub symbol: String,
    pub names: Vec<String>,
    pub ts_ns: Vec<Nanos>,
    pub mid: Vec<f64>,
    /// One column per feature, in declaration order.
    pub columns: Vec<Vec<f32>>,
    /// `(horizon, mid(ts + horizon) - mid(ts))` per horizon asked for.
    pub labels: Vec<(Nanos, Vec<f64>)>,
    pub events: u64,
    pub book_updates: u64,
    pub trades: u64,
    pub data_errors: u64,
}

impl FeatureRows {
    pub fn rows(&self) -> usize {
        self.ts_ns.len()
    }
}

/// The exchange rule and tick size of the instrument rows are computed for.
fn instrument(
    manifest: &Manifest,
    symbol: Option<&str>,
) -> Result<(String, SyncRule, Price), FeaturesError> {
    let symbol = match symbol {
        Some(s) => s.to_owned(),
        None => manifest
            .strategies
            .values()
            .find_map(|s| s.instruments.first().cloned())
            .ok_or_else(|| {
                FeaturesError::Instrument("the manifest has no strategy instrument".into())
            })?,
    };
    for exchange in manifest.exchanges.values() {
        if let Some(inst) = exchange.instruments.get(&symbol) {
            let rule = match exchange.market {
                Market::Spot => SyncRule::Spot,
                Market::Usdm => SyncRule::UsdM,
            };
            return Ok((symbol, rule, Price(inst.tick_size.raw())));
        }
    }
    let known = manifest.instrument_ids().join(", ");
    Err(FeaturesError::Instrument(format!(
        "no instrument {symbol} in the manifest (instruments: {known})"
    )))
}

/// The replay state between events.
struct Sampler {
    features: FeatureSet,
    row: Vec<f32>,
    out: FeatureRows,
    start: Option<Nanos>,
    every: Option<Nanos>,
    next_grid: Nanos,
    /// `(time, mid)` at every change of the mid (NaN while the book is lost), for labels.
    mids: Vec<(Nanos, f64)>,
    want_mids: bool,
}

impl Sampler {
    fn in_window(&self, ts: Nanos) -> bool {
        self.start.map_or(true, |s| ts >= s)
    }

    fn emit(&mut self, ts: Nanos) {
        let mid = self.features.mid();
        if mid.is_nan() || !self.in_window(ts) {
            return;
        }
        if self.features.compute(&mut self.row).is_err() {
            return; // the row is the set's width by construction
        }
        self.out.ts_ns.push(ts);
        self.out.mid.push(mid);
        for (col, v) in self.out.columns.iter_mut().zip(&self.row) {
            col.push(*v);
        }
    }

    /// Grid rows strictly before `ts` (the state before the event at `ts`).
    fn grid_until(&mut self, ts: Nanos, synced: bool) {
        let Some(every) = self.every else { return };
        while self.next_grid < ts {
            let t = self.next_grid;
            self.next_grid = self.next_grid.saturating_add(every);
            if synced {
                self.features.advance(t);
                self.emit(t);
            }
        }
    }

    fn note_mid(&mut self, ts: Nanos) {
        if !self.want_mids {
            return;
        }
        let mid = self.features.mid();
        let same = self
            .mids
            .last()
            .is_some_and(|&(_, m)| m == mid || (m.is_nan() && mid.is_nan()));
        if !same {
            self.mids.push((ts, mid));
        }
    }
}

/// Replays `files` (one stream) and computes `decl` for one instrument; see the module
/// documentation.
pub fn compute(
    manifest: &Manifest,
    decl: &FeatureSetDecl,
    files: &[PathBuf],
    request: &FeatureRequest,
) -> Result<FeatureRows, FeaturesError> {
    if files.is_empty() {
        return Err(ReplayError::NoData.into());
    }
    let window = request.window;
    if let (Some(start), Some(end)) = (window.start_ns, window.end_ns) {
        if start >= end {
            return Err(ReplayError::BadWindow(window).into());
        }
    }
    if let Some(every) = request.every_ns.filter(|&e| e <= 0) {
        return Err(FeaturesError::Every(every));
    }
    if let Some(&h) = request.horizons_ns.iter().find(|&&h| h <= 0) {
        return Err(FeaturesError::Horizon(h));
    }
    let (symbol, rule, tick) = instrument(manifest, request.symbol.as_deref())?;
    let features = FeatureSet::from_decl(decl, tick)?;
    let width = features.width();
    let mut s = Sampler {
        row: vec![0.0; width],
        out: FeatureRows {
            symbol: symbol.clone(),
            names: features.names().to_vec(),
            columns: vec![Vec::new(); width],
            ..FeatureRows::default()
        },
        features,
        start: window.start_ns,
        every: request.every_ns,
        next_grid: Nanos::MIN,
        mids: Vec::new(),
        want_mids: !request.horizons_ns.is_empty(),
    };
    let mut sync = BookSync::new(rule);
    let mut clock = Nanos::MIN;
    let mut ended = false;
    for file in files {
        let mut reader = open_any(file)?;
        if let EventReader::Capture(capture) = reader {
            reader = EventReader::Capture(capture.with_decoder(Decoder::with_symbols(&[&symbol])));
        }
        let Some(id) = reader.symbols().iter().position(|s| *s == symbol) else {
            continue;
        };
        let id = id as u32;
        while let Some(next) = reader.next_event() {
            let event = match next {
                Ok(event) => event,
                Err(_) => {
                    s.out.data_errors += 1;
                    continue;
                }
            };
            let header = *event.header();
            if window.end_ns.is_some_and(|end| header.local_ns >= end) {
                ended = true;
                break;
            }
            s.out.events += 1;
            let now = clock.max(header.local_ns);
            if s.next_grid == Nanos::MIN {
                if let Some(every) = s.every {
                    // The first grid time at or after the start (or the first event).
                    let from = window.start_ns.unwrap_or(now);
                    let up = i64::from(from.rem_euclid(every) != 0);
                    s.next_grid = (from.div_euclid(every) + up).saturating_mul(every);
                }
            }
            s.grid_until(now, sync.is_synced());
            clock = now;
            if header.symbol != id {
                continue;
            }
            let was_synced = sync.is_synced();
            let mut changed = false;
            match &event {
                MarketEvent::Depth(d) => changed = sync.on_diff(d) == DiffOutcome::Applied,
                MarketEvent::Snapshot(snap) => {
                    let loaded = sync.counters().snapshots;
                    sync.on_snapshot(snap);
                    changed = sync.is_synced() && sync.counters().snapshots != loaded;
                }
                MarketEvent::Trade(t) => {
                    s.out.trades += 1;
                    s.features.on_trade(t, clock);
                }
                MarketEvent::Bbo(_) => {}
            }
            if was_synced && !sync.is_synced() {
                s.features.book_lost(clock);
                s.note_mid(clock);
            }
            if changed && sync.is_synced() {
                s.out.book_updates += 1;
                s.features.on_book(sync.book(), clock);
                s.note_mid(clock);
                if s.every.is_none() {
                    s.emit(clock);
                }
            }
        }
        if ended {
            break;
        }
    }
    // Grid times up to the last event read.
    if clock != Nanos::MIN {
        s.grid_until(clock.saturating_add(1), sync.is_synced());
    }
    if s.out.rows() == 0 && !window.is_all() {
        return Err(ReplayError::EmptyWindow {
            window,
            range: time_range(files)?,
        }
        .into());
    }
    let last = clock;
    for &h in &request.horizons_ns {
        let labels = label(&s.out.ts_ns, &s.out.mid, &s.mids, h, last);
        s.out.labels.push((h, labels));
    }
    Ok(s.out)
}

/// `mid(ts + h) - mid(ts)` per row, `mid(t)` the last mid at or before `t` (NaN when `ts + h`
/// is after `last`, the time of the last event read). Rows and mids are sorted by time.
fn label(ts: &[Nanos], mid: &[f64], mids: &[(Nanos, f64)], h: Nanos, last: Nanos) -> Vec<f64> {
    let mut out = Vec::with_capacity(ts.len());
    let mut j = 0usize;
    for (&t, &m) in ts.iter().zip(mid) {
        let target = t.saturating_add(h);
        if target > last {
            out.push(f64::NAN);
            continue;
        }
        while j + 1 < mids.len() && mids[j + 1].0 <= target {
            j += 1;
        }
        out.push(match mids.get(j) {
            Some(&(at, future)) if at <= target => future - m,
            _ => f64::NAN,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_the_mid_move_over_the_horizon() {
        let mids = [(10, 100.0), (20, 101.0), (30, f64::NAN), (40, 103.0)];
        let ts = [10, 15, 20, 25, 40];
        let mid = [100.0, 100.0, 101.0, 101.0, 103.0];
        let got = label(&ts, &mid, &mids, 10, 45);
        assert_eq!(got[..2], [1.0, 1.0]);
        assert!(got[2].is_nan(), "the book was lost at 30");
        assert!(got[3].is_nan());
        assert!(got[4].is_nan(), "50 is after the data");
        assert_eq!(label(&ts, &mid, &mids, 15, 45)[3], 2.0);
    }
}
