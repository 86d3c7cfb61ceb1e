//! Backtests over recorded files: read captures or native files, feed the core's `Trader`,
//! and sample the mid price and position for reports.
//!
//! The same driver (`rt_core::backtest`) runs strategy, risk and matching; this module only
//! moves events from files into it, so a backtest from Python, a bench and a test all replay
//! the same way.
//!
//! A [`Window`] `[start, end)` on the events' local receive time limits what is traded: events
//! before `start` only build the books (a capture has its REST snapshot at its beginning, so
//! the book must be synced before trading starts; see `Trader::set_warmup_until`), and the
//! replay stops at the first event at or after `end` without reading further.
//!
//! An engine of several exchanges replays one stream per exchange ([`run_exchanges_with`]),
//! merged by receive time. Captures of different exchanges are usually recorded at different
//! times (the bundled Binance capture in 2024, OKX's in 2022): each stream is **rebased** onto
//! a common clock, shifted by a constant so that its first event falls on the first event of
//! the stream that starts last (that stream keeps its real times; the others move forward).
//! Order within a stream is kept; across streams, events at the same rebased time go in the
//! manifest's exchange order. The window applies to the rebased times.

use std::fmt;
use std::path::{Path, PathBuf};

use rt_core::event::{Bbo, DepthDiff, Header, Level, MarketEvent, Snapshot, Trade};
use rt_core::trader::{BacktestResult, Trader, TraderError};
use rt_core::{ModelLoader, Nanos, Price, Qty};
use rt_manifest::Manifest;

use crate::{open_any, Decoder, Error, EventReader};

/// How often (event time) the mid and position are sampled for reports.
pub const MARK_INTERVAL_NS: Nanos = 100_000_000;

/// Why a replay could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("backtest setup: {0}")]
    Setup(#[from] TraderError),
    #[error("data: {0}")]
    Data(#[from] Error),
    #[error("the engine trades {0} exchanges; a file replay feeds one (split the deployment or backtest one exchange)")]
    Exchanges(usize),
    #[error("no data file given")]
    NoData,
    #[error("data for {given} exchange(s) given for an engine of {expected}")]
    StreamCount { given: usize, expected: usize },
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
        Some(models) => Trader::from_manifest_with(manifest, models)?,
        None => Trader::from_manifest(manifest)?,
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
            sample_marks(&backtest, instruments, &mut next_mark, &mut marks);
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

/// Every `MARK_INTERVAL_NS` of event time, each synced book's mid and its position.
fn sample_marks(
    backtest: &Trader,
    instruments: usize,
    next_mark: &mut Nanos,
    marks: &mut Vec<MarkSample>,
) {
    let now = backtest.now();
    if now < *next_mark {
        return;
    }
    *next_mark = now.saturating_add(MARK_INTERVAL_NS);
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

/// [`run_window_with`] for an engine of several exchanges: `streams[x]` are the files of the
/// manifest's `x`-th exchange (in name order), one stream each (empty: no data for it). The
/// streams are rebased onto one clock and merged (see the module documentation); the offsets
/// applied are in [`MultiReplay::offsets_ns`].
pub fn run_exchanges_with(
    manifest: &Manifest,
    streams: &[Vec<PathBuf>],
    window: Window,
    models: &mut ModelLoader<'_>,
    progress_every: u64,
    mut progress: impl FnMut(u64, u64),
) -> Result<MultiReplay, ReplayError> {
    if streams.len() != manifest.exchanges.len() {
        return Err(ReplayError::StreamCount {
            given: streams.len(),
            expected: manifest.exchanges.len(),
        });
    }
    if streams.iter().all(Vec::is_empty) {
        return Err(ReplayError::NoData);
    }
    if let (Some(start), Some(end)) = (window.start_ns, window.end_ns) {
        if start >= end {
            return Err(ReplayError::BadWindow(window));
        }
    }
    let mut backtest = Trader::from_manifest_with(manifest, models)?;
    if let Some(start) = window.start_ns {
        backtest.set_warmup_until(start);
    }
    let instruments = backtest.instruments().len();
    let total: u64 = streams.iter().flatten().map(|f| file_len(f)).sum();
    let mut open = Vec::new();
    for (x, (files, exchange)) in streams.iter().zip(manifest.exchanges.values()).enumerate() {
        if files.is_empty() {
            continue;
        }
        let symbols: Vec<String> = exchange.instruments.keys().cloned().collect();
        let mut stream = Stream::open(x, files, &symbols)?;
        // A venue that lists its instruments under other symbols (OKX `BTC-USDT`): the
        // capture's symbols name them so; the backtest knows the config names.
        stream.aliases = exchange
            .instruments
            .iter()
            .filter_map(|(name, i)| Some((i.listing.as_ref()?.symbol.clone(), name.clone())))
            .collect();
        if stream.refill() {
            open.push(stream);
        }
    }
    // The stream that starts last keeps its times; the others are shifted onto it.
    let reference = open.iter().map(|s| s.first_ns).max().unwrap_or(0);
    let mut offsets_ns = vec![0; streams.len()];
    for stream in &mut open {
        stream.offset = reference - stream.first_ns;
        stream.held.shift(stream.offset);
        offsets_ns[stream.exchange] = stream.offset;
    }
    let mut marks = Vec::new();
    let mut next_mark: Nanos = Nanos::MIN;
    let (mut events, mut in_window) = (0u64, 0u64);
    while let Some(k) = (0..open.len())
        .filter(|&k| open[k].live)
        .min_by_key(|&k| (open[k].held.header.local_ns, open[k].exchange))
    {
        let stream = &mut open[k];
        if !window.before_end(stream.held.header.local_ns) {
            break;
        }
        let x = stream.exchange;
        if let Some(symbols) = stream.new_symbols() {
            backtest.set_symbols(x, symbols)?;
        }
        backtest.on_event(x, &stream.held.event());
        stream.refill();
        events += 1;
        if backtest.is_warming_up() {
            continue;
        }
        in_window += 1;
        sample_marks(&backtest, instruments, &mut next_mark, &mut marks);
        if progress_every > 0 && events % progress_every == 0 {
            progress(open.iter().map(Stream::bytes_done).sum(), total);
        }
    }
    progress(total, total);
    if in_window == 0 && !window.is_all() {
        let first = open.iter().map(|s| s.first_ns + s.offset).min();
        return Err(ReplayError::EmptyWindow {
            window,
            range: first.map(|f| (f, backtest.now().max(f))),
        });
    }
    let data_errors = open.iter().map(|s| s.errors).sum();
    Ok(MultiReplay {
        replay: Replay {
            result: backtest.finish(),
            marks,
            data_errors,
        },
        offsets_ns,
    })
}

/// A finished replay of several exchanges, and the constant added to each exchange's times.
#[derive(Debug)]
pub struct MultiReplay {
    pub replay: Replay,
    /// By exchange (manifest order), ns added to its receive and exchange times.
    pub offsets_ns: Vec<Nanos>,
}

/// One exchange's files, read one event ahead: the event is copied out of the reader (its
/// levels into reused buffers) so that several streams can be compared by time.
struct Stream {
    exchange: usize,
    /// The reader of `files[next_file - 1]`; `None` before the first and after the last.
    reader: Option<EventReader>,
    symbols: Vec<String>,
    /// (venue symbol, config name) of the instruments the venue lists under another symbol.
    aliases: Vec<(String, String)>,
    /// The current file's symbol table in config names.
    names: Vec<String>,
    files: Vec<PathBuf>,
    next_file: usize,
    /// Bytes of the files before the current one.
    bytes_before: u64,
    /// The symbol table's length when it was last given to the backtest (`usize::MAX`: a new
    /// file's table, not given yet).
    symbols_known: usize,
    held: Held,
    /// `held` holds an event not yet replayed.
    live: bool,
    /// Receive time of the stream's first event, before any shift.
    first_ns: Nanos,
    offset: Nanos,
    errors: u64,
}

impl Stream {
    fn open(exchange: usize, files: &[PathBuf], symbols: &[String]) -> Result<Stream, Error> {
        let mut stream = Stream {
            exchange,
            reader: None,
            symbols: symbols.to_vec(),
            aliases: Vec::new(),
            names: Vec::new(),
            files: files.to_vec(),
            next_file: 0,
            bytes_before: 0,
            symbols_known: usize::MAX,
            held: Held::default(),
            live: false,
            first_ns: Nanos::MIN,
            offset: 0,
            errors: 0,
        };
        stream.open_next()?;
        Ok(stream)
    }

    /// Opens the next file; false when there is none.
    fn open_next(&mut self) -> Result<bool, Error> {
        if self.reader.take().is_some() {
            self.bytes_before += file_len(&self.files[self.next_file - 1]);
        }
        let Some(path) = self.files.get(self.next_file) else {
            return Ok(false);
        };
        let mut reader = open_any(path)?;
        if let EventReader::Capture(capture) = reader {
            // The traded symbols first, so their ids are known before any event.
            reader =
                EventReader::Capture(capture.with_decoder(Decoder::with_symbols(&self.symbols)));
        }
        self.reader = Some(reader);
        self.next_file += 1;
        self.symbols_known = usize::MAX;
        Ok(true)
    }

    /// The symbol table of the current file in config names, when it changed since the last
    /// call.
    fn new_symbols(&mut self) -> Option<&[String]> {
        let symbols = self.reader.as_ref()?.symbols();
        if symbols.len() == self.symbols_known {
            return None;
        }
        self.symbols_known = symbols.len();
        self.names = symbols
            .iter()
            .map(|s| {
                self.aliases
                    .iter()
                    .find(|(venue, _)| venue == s)
                    .map_or_else(|| s.clone(), |(_, name)| name.clone())
            })
            .collect();
        Some(&self.names)
    }

    /// Reads the next event into `held` (shifted by the offset); false at the end of the
    /// stream (a file that cannot be opened ends it, counted as an error).
    fn refill(&mut self) -> bool {
        self.live = false;
        loop {
            let Some(reader) = self.reader.as_mut() else {
                return false;
            };
            match reader.next_event() {
                Some(Ok(event)) => {
                    self.held.copy(&event);
                    if self.first_ns == Nanos::MIN {
                        self.first_ns = self.held.header.local_ns;
                    }
                    self.held.shift(self.offset);
                    self.live = true;
                    return true;
                }
                Some(Err(_)) => self.errors += 1,
                None => match self.open_next() {
                    Ok(true) => {}
                    Ok(false) => return false,
                    Err(_) => {
                        self.errors += 1;
                        return false;
                    }
                },
            }
        }
    }

    fn bytes_done(&self) -> u64 {
        let Some(reader) = &self.reader else {
            return self.bytes_before;
        };
        let (done, total) = reader.progress();
        let size = self
            .files
            .get(self.next_file - 1)
            .map_or(0, |f| file_len(f));
        self.bytes_before + done.saturating_mul(size).checked_div(total).unwrap_or(0)
    }
}

/// What a held event is, besides its header and levels.
#[derive(Clone, Copy, Debug)]
enum HeldKind {
    Depth {
        first_id: u64,
        final_id: u64,
        prev_final_id: Option<u64>,
    },
    Snapshot {
        last_update_id: u64,
    },
    Trade(Trade),
    Bbo(Bbo),
}

/// A market event copied out of its reader's buffers.
#[derive(Clone, Debug)]
struct Held {
    header: Header,
    kind: HeldKind,
    bids: Vec<Level>,
    asks: Vec<Level>,
}

impl Default for Held {
    fn default() -> Held {
        Held {
            header: Header::default(),
            kind: HeldKind::Snapshot { last_update_id: 0 },
            bids: Vec::new(),
            asks: Vec::new(),
        }
    }
}

impl Held {
    fn copy(&mut self, event: &MarketEvent<'_>) {
        self.header = *event.header();
        self.bids.clear();
        self.asks.clear();
        self.kind = match event {
            MarketEvent::Depth(d) => {
                self.bids.extend_from_slice(d.bids);
                self.asks.extend_from_slice(d.asks);
                HeldKind::Depth {
                    first_id: d.first_id,
                    final_id: d.final_id,
                    prev_final_id: d.prev_final_id,
                }
            }
            MarketEvent::Snapshot(s) => {
                self.bids.extend_from_slice(s.bids);
                self.asks.extend_from_slice(s.asks);
                HeldKind::Snapshot {
                    last_update_id: s.last_update_id,
                }
            }
            MarketEvent::Trade(t) => HeldKind::Trade(*t),
            MarketEvent::Bbo(b) => HeldKind::Bbo(*b),
        };
    }

    /// Adds `offset` to the receive and exchange times.
    fn shift(&mut self, offset: Nanos) {
        let shift = |h: &mut Header| {
            h.local_ns = h.local_ns.saturating_add(offset);
            h.exchange_ns = h.exchange_ns.saturating_add(offset);
        };
        shift(&mut self.header);
        match &mut self.kind {
            HeldKind::Trade(t) => shift(&mut t.header),
            HeldKind::Bbo(b) => shift(&mut b.header),
            HeldKind::Depth { .. } | HeldKind::Snapshot { .. } => {}
        }
    }

    fn event(&self) -> MarketEvent<'_> {
        match self.kind {
            HeldKind::Depth {
                first_id,
                final_id,
                prev_final_id,
            } => MarketEvent::Depth(DepthDiff {
                header: self.header,
                first_id,
                final_id,
                prev_final_id,
                bids: &self.bids,
                asks: &self.asks,
            }),
            HeldKind::Snapshot { last_update_id } => MarketEvent::Snapshot(Snapshot {
                header: self.header,
                last_update_id,
                bids: &self.bids,
                asks: &self.asks,
            }),
            HeldKind::Trade(t) => MarketEvent::Trade(t),
            HeldKind::Bbo(b) => MarketEvent::Bbo(b),
        }
    }
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
