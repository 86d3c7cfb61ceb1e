//! rt-venues: exchange protocols without I/O on the hot path.
//!
//! - [`binance`]: the Binance market-data codec (WebSocket frames and REST depth snapshots to
//!   [`MarketEvent`]s, allocation-free). Book synchronisation is `rt_core::sync`.
//! - [`binance_orders`]: Binance Spot order entry (signed REST requests, responses, the
//!   user-data stream's `executionReport`), shared by the sim venue and the gateway.
//! - [`recording`]: recorded captures (hftbacktest `*.gz`, cryptofeed `*.ws.1.0`).
//! - [`native`]: the compact native event file and its reader.
//!
//! Open any of those by path with [`open_any`], iterate with [`EventReader::next_event`], and
//! convert a capture to a native file with [`convert`].

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use rt_core::MarketEvent;

pub mod binance;
pub mod binance_orders;
pub mod native;
pub mod recording;
pub mod replay;

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
}

/// Converts a capture (or a native file) at `src` into a native file at `dst`. Frames that do
/// not decode are skipped and counted; I/O errors stop the conversion.
pub fn convert(src: &Path, dst: &Path) -> Result<ConvertStats, Error> {
    let mut reader = open_any(src)?;
    let mut writer = NativeWriter::create(dst)?;
    let io = |source| Error::Io {
        path: dst.to_owned(),
        source,
    };
    let mut stats = ConvertStats::default();
    while let Some(event) = reader.next_event() {
        let event = match event {
            Ok(event) => event,
            Err(Error::Decode { .. } | Error::Capture { .. }) => {
                stats.decode_errors += 1;
                continue;
            }
            Err(e) => return Err(e),
        };
        stats.events += 1;
        match &event {
            MarketEvent::Depth(d) => {
                stats.depth_diffs += 1;
                stats.depth_levels += (d.bids.len() + d.asks.len()) as u64;
            }
            MarketEvent::Snapshot(s) => {
                stats.snapshots += 1;
                stats.snapshot_levels += (s.bids.len() + s.asks.len()) as u64;
            }
            MarketEvent::Trade(_) => stats.trades += 1,
            MarketEvent::Bbo(_) => stats.bbos += 1,
        }
        writer.write_event(&event).map_err(io)?;
    }
    stats.rows = writer.rows();
    stats.symbols = reader.symbols().len();
    writer.finish(reader.symbols()).map_err(io)?;
    Ok(stats)
}
