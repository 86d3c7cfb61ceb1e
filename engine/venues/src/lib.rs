//! rt-venues: exchange protocols without I/O on the hot path.
//!
//! - [`assets`]: a Binance symbol's base and quote assets, and what a commission asset is to
//!   the instrument it was paid on.
//! - [`binance`]: Binance, one module: the market-data codec (WebSocket frames and REST depth
//!   snapshots to [`MarketEvent`]s, allocation-free; book synchronisation is `rt_core::sync`),
//!   Spot order entry by concern (requests, signing, REST answers, the user data stream,
//!   errors; one path for all of it: [`binance_orders`]), the account and rate limits
//!   ([`binance_account`], [`binance_limits`]), shared by the sim venue and the gateway.
//! - [`execution`]: the execution boundary, the [`execution::ExecutionClient`] trait the
//!   gateway calls to build, sign and read order entry ([`binance::SpotExecution`]).
//! - [`recording`]: recorded captures (hftbacktest `*.gz`, cryptofeed `*.ws.1.0`).
//! - [`native`]: the compact native event file and its reader.
//! - [`market`]: the market-data venue interface ([`market::MarketData`]: subscriptions,
//!   decoding, the book's sync rule, symbols, endpoints), implemented for Binance, OKX and
//!   Kraken; the engine's feed drives any venue through it.
//! - [`okx`], [`kraken`]: OKX v5 and Kraken v1 public market data, books verified against the
//!   venues' own checksums ([`checksum`]); [`verify`] checks any capture against its oracle.
//!
//! Open any of those by path with [`open_any`], iterate with [`EventReader::next_event`],
//! convert a capture to a native file with [`convert`], and describe one (time range, counts,
//! sequence gaps) with [`info`].

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use rt_core::{MarketEvent, Nanos};

pub mod assets;
pub mod binance;
pub mod checksum;
pub mod checksummed;
pub mod execution;
pub mod features;
pub mod kraken;
pub mod market;
pub mod metadata;
pub mod native;
pub mod okx;
pub mod order_entry;
pub mod rate_limits;
pub mod recording;
pub mod replay;
mod scan;
pub mod verify;

pub use binance::account as binance_account;
pub use binance::limits as binance_limits;
pub use binance::orders as binance_orders;
pub use binance::{DecodeCounters, DecodeError, Decoder};
pub use native::{NativeReader, NativeWriter};
pub use recording::{CaptureFormat, CaptureReader, CaptureStats, Frame, FrameReader};

/// Errors of reading, decoding and converting market data.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}, line {line}: {source}", path.display())]
    Decode {
        path: PathBuf,
        line: u64,
        source: DecodeError,
    },
    #[error("{}, line {line}: {reason}", path.display())]
    Capture {
        path: PathBuf,
        line: u64,
        reason: &'static str,
    },
    #[error("{}: {reason}", path.display())]
    Native { path: PathBuf, reason: String },
}

/// Anything that yields market events one at a time (lending: an event borrows the source
/// until the next call).
pub trait EventSource {
    /// The next event; `None` at the end. After an error the source may go on (a capture skips
    /// the bad frame) or end (a corrupt native file).
    fn next_event(&mut self) -> Option<Result<MarketEvent<'_>, Error>>;
    /// The symbol table: `SymbolId` indexes it.
    fn symbols(&self) -> &[String];
}

impl EventSource for CaptureReader {
    fn next_event(&mut self) -> Option<Result<MarketEvent<'_>, Error>> {
        CaptureReader::next_event(self)
    }
    fn symbols(&self) -> &[String] {
        CaptureReader::symbols(self)
    }
}

impl EventSource for NativeReader {
    fn next_event(&mut self) -> Option<Result<MarketEvent<'_>, Error>> {
        NativeReader::next_event(self)
    }
    fn symbols(&self) -> &[String] {
        NativeReader::symbols(self)
    }
}

/// A raw capture or a native file, opened by [`open_any`].
#[derive(Debug)]
pub enum EventReader {
    Capture(CaptureReader),
    Native(NativeReader),
}

impl EventReader {
    #[inline]
    pub fn next_event(&mut self) -> Option<Result<MarketEvent<'_>, Error>> {
        match self {
            EventReader::Capture(r) => r.next_event(),
            EventReader::Native(r) => r.next_event(),
        }
    }

    /// The symbol table (for a capture, the symbols met so far).
    pub fn symbols(&self) -> &[String] {
        match self {
            EventReader::Capture(r) => r.symbols(),
            EventReader::Native(r) => r.symbols(),
        }
    }

    pub fn is_native(&self) -> bool {
        matches!(self, EventReader::Native(_))
    }

    /// (done, total) in bytes of a capture or rows of a native file, for progress bars.
    pub fn progress(&self) -> (u64, u64) {
        match self {
            EventReader::Capture(r) => r.progress(),
            EventReader::Native(r) => r.progress(),
        }
    }
}

impl EventSource for EventReader {
    fn next_event(&mut self) -> Option<Result<MarketEvent<'_>, Error>> {
        EventReader::next_event(self)
    }
    fn symbols(&self) -> &[String] {
        EventReader::symbols(self)
    }
}

/// Opens a native file (recognised by its magic) or a raw capture (anything else).
pub fn open_any(path: &Path) -> Result<EventReader, Error> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let mut head = [0u8; 8];
    let mut file = File::open(path).map_err(io)?;
    let mut n = 0;
    while n < head.len() {
        match file.read(&mut head[n..]).map_err(io)? {
            0 => break,
            k => n += k,
        }
    }
    if native::is_native(&head[..n]) {
        Ok(EventReader::Native(NativeReader::open(path)?))
    } else {
        Ok(EventReader::Capture(CaptureReader::open(path)?))
    }
}

/// What [`convert`] wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConvertStats {
    pub events: u64,
    pub rows: u64,
    pub depth_diffs: u64,
    pub depth_levels: u64,
    pub snapshots: u64,
    pub snapshot_levels: u64,
    pub trades: u64,
    pub bbos: u64,
    /// Frames (or lines) skipped because they could not be decoded.
    pub decode_errors: u64,
    pub symbols: usize,
}

impl ConvertStats {
    /// Rows counted the way hftbacktest counts its events: depth level changes + trades +
    /// snapshot levels (no headers, no bbo).
    pub fn hftbacktest_rows(&self) -> u64 {
        self.depth_levels + self.trades + self.snapshot_levels
    }

    /// Counts one event by kind.
    fn count(&mut self, event: &MarketEvent<'_>) {
        self.events += 1;
        match event {
            MarketEvent::Depth(d) => {
                self.depth_diffs += 1;
                self.depth_levels += (d.bids.len() + d.asks.len()) as u64;
            }
            MarketEvent::Snapshot(s) => {
                self.snapshots += 1;
                self.snapshot_levels += (s.bids.len() + s.asks.len()) as u64;
            }
            MarketEvent::Trade(_) => self.trades += 1,
            MarketEvent::Bbo(_) => self.bbos += 1,
        }
    }
}

/// Reads a capture or native file to the end, skipping (and counting) frames that do not
/// decode; stops at an I/O error or a corrupt native row.
fn read_all(
    reader: &mut EventReader,
    stats: &mut ConvertStats,
    mut each: impl FnMut(&MarketEvent<'_>) -> Result<(), Error>,
) -> Result<(), Error> {
    while let Some(event) = reader.next_event() {
        let event = match event {
            Ok(event) => event,
            Err(Error::Decode { .. } | Error::Capture { .. }) => {
                stats.decode_errors += 1;
                continue;
            }
            Err(e) => return Err(e),
        };
        stats.count(&event);
        each(&event)?;
    }
    stats.symbols = reader.symbols().len();
    Ok(())
}

/// Converts a capture (or a native file) at `src` into a native file at `dst`. Frames that do
/// not decode are skipped and counted; I/O errors stop the conversion.
///
/// The file is written beside `dst` under a temporary name and renamed over it when complete:
/// a reader that has `dst` mapped (see [`NativeReader::open`]) keeps the old file's bytes.
pub fn convert(src: &Path, dst: &Path) -> Result<ConvertStats, Error> {
    let mut reader = open_any(src)?;
    // Unique per conversion (process and a counter), so that two conversions to one `dst`
    // at once, even from two threads, never write the same temporary file.
    static CONVERSIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = CONVERSIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut name = dst.file_name().unwrap_or_default().to_owned();
    name.push(format!(".tmp-{}-{n}", std::process::id()));
    let tmp = dst.with_file_name(name);
    let written = (|| {
        let mut writer = NativeWriter::create(&tmp)?;
        let io = |source| Error::Io {
            path: dst.to_owned(),
            source,
        };
        let mut stats = ConvertStats::default();
        read_all(&mut reader, &mut stats, |event| {
            writer.write_event(event).map_err(io)
        })?;
        stats.rows = writer.rows();
        writer.finish(reader.symbols()).map_err(io)?;
        std::fs::rename(&tmp, dst).map_err(io)?;
        Ok(stats)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// The market a capture's depth diffs look like: USD-M futures diffs carry the previous final
/// update id (`pu`), spot diffs do not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MarketGuess {
    Spot,
    Usdm,
}

impl MarketGuess {
    pub const fn as_str(self) -> &'static str {
        match self {
            MarketGuess::Spot => "spot",
            MarketGuess::Usdm => "usdm",
        }
    }
}

/// What a data file holds, from [`info`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DataInfo {
    /// `native`, `hftbacktest` (`<ts_ns> <frame>` lines) or `cryptofeed`.
    pub format: &'static str,
    pub symbols: Vec<String>,
    pub counts: ConvertStats,
    /// Local receive time of the first and last events (the replay's clock).
    pub first_local_ns: Option<Nanos>,
    pub last_local_ns: Option<Nanos>,
    /// The exchange's event time of the first and last events that carry one.
    pub first_exchange_ns: Option<Nanos>,
    pub last_exchange_ns: Option<Nanos>,
    /// Depth diffs that do not follow the previous diff of their symbol (spot: first id =
    /// previous final id + 1; USD-M: `pu` = previous final id), as the book sync would see
    /// them. Duplicates (final id not past the previous one) are not gaps.
    pub gaps: u64,
    /// Events whose local time is before an earlier event's (the replay's clock holds still).
    pub out_of_order: u64,
    /// Binance spot or USD-M, from the diffs (None for other venues and native files).
    pub market: Option<MarketGuess>,
    /// The venue whose protocol a capture holds (None for a native file).
    pub venue: Option<verify::Venue>,
}

/// Reads a capture or native file once and describes it.
pub fn info(path: &Path) -> Result<DataInfo, Error> {
    let mut reader = open_any(path)?;
    let venue = match &reader {
        EventReader::Native(_) => None,
        EventReader::Capture(c) => Some(c.venue()),
    };
    let mut out = DataInfo {
        venue,
        format: match &reader {
            EventReader::Native(_) => "native",
            EventReader::Capture(c) => match c.format() {
                CaptureFormat::TimestampNs => "hftbacktest",
                CaptureFormat::Cryptofeed => "cryptofeed",
            },
        },
        ..DataInfo::default()
    };
    // Last final update id of each symbol's diffs.
    let mut last_ids: Vec<Option<u64>> = Vec::new();
    let mut counts = ConvertStats::default();
    read_all(&mut reader, &mut counts, |event| {
        let h = event.header();
        if out.last_local_ns.is_some_and(|last| h.local_ns < last) {
            out.out_of_order += 1;
        }
        out.first_local_ns.get_or_insert(h.local_ns);
        out.last_local_ns = Some(out.last_local_ns.map_or(h.local_ns, |l| l.max(h.local_ns)));
        if h.exchange_ns > 0 {
            out.first_exchange_ns.get_or_insert(h.exchange_ns);
            out.last_exchange_ns = Some(h.exchange_ns);
        }
        if let MarketEvent::Depth(d) = event {
            let usdm = d.prev_final_id.is_some();
            if venue != Some(verify::Venue::Okx) && venue != Some(verify::Venue::Kraken) {
                out.market = Some(if usdm {
                    MarketGuess::Usdm
                } else {
                    MarketGuess::Spot
                });
            }
            let i = h.symbol as usize;
            if last_ids.len() <= i {
                last_ids.resize(i + 1, None);
            }
            if let Some(last) = last_ids[i] {
                let follows = match d.prev_final_id {
                    Some(pu) => pu == last,
                    None => last.checked_add(1) == Some(d.first_id),
                };
                if d.final_id > last && !follows {
                    out.gaps += 1;
                }
            }
            last_ids[i] = Some(last_ids[i].map_or(d.final_id, |l| l.max(d.final_id)));
        }
        Ok(())
    })?;
    out.symbols = reader.symbols().to_vec();
    out.counts = counts;
    Ok(out)
}
