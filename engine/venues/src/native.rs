//! The native event file: market events as fixed-size little-endian rows, replayed without any
//! JSON parsing.
//!
//! # Layout (version 1)
//!
//! All integers little-endian. A 64-byte file header, `row_count` rows of 64 bytes, then the
//! symbol table:
//!
//! ```text
//! header   off size field
//!            0    8 magic  b"PYRTEVT\x01"  (written last: a half-written file has none)
//!            8    4 version (u32) = 1
//!           12    4 row size (u32) = 64
//!           16    8 row_count (u64)
//!           24    8 event_count (u64)
//!           32    8 symbol table offset in bytes (u64) = 64 + 64 * row_count
//!           40   24 reserved, zero
//!
//! row      off size field
//!            0    1 kind (u8, below)
//!            1    1 flags (u8): bit 0 = ask side (level rows) / sell aggressor (trade rows);
//!                              bit 1 = `pu` present (depth rows)
//!            2    2 reserved, zero
//!            4    4 symbol id (u32, index into the symbol table)
//!            8    8 local_ns (i64): receive time
//!           16    8 exchange_ns (i64): exchange time, 0 when the message had none
//!           24    8 f0 (u64/i64)
//!           32    8 f1
//!           40    8 f2
//!           48    8 f3
//!           56    8 f4
//!
//! kind                 f0              f1          f2         f3          f4
//!   1 depth header     U (first id)    u (final)   pu or 0    bid count   ask count
//!   2 depth level      price           qty         0          0           0
//!   3 snapshot header  lastUpdateId    0           0          bid count   ask count
//!   4 snapshot level   price           qty         0          0           0
//!   5 trade            trade id        price       qty        0           0
//!   6 bbo              update id       bid price   bid qty    ask price   ask qty
//!
//! symbol table: count (u32), then per symbol: byte length (u32) + UTF-8 bytes
//! ```
//!
//! Prices and quantities are raw fixed-point units of 10^-8 (`Price.0`, `Qty.0`). A depth or
//! snapshot header is followed by its bid level rows then its ask level rows (flags bit 0 says
//! which); level rows repeat the event's symbol and times so that every row stands alone (the
//! file maps onto a numpy structured array as it is). Rows are 64 bytes like hftbacktest's, so
//! row counts and replay speeds compare directly.

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use rt_core::{
    Bbo, DepthDiff, Header, Level, MarketEvent, Price, Qty, Side, Snapshot, SymbolId, Trade,
};

use crate::Error;

pub const MAGIC: [u8; 8] = *b"PYRTEVT\x01";
pub const VERSION: u32 = 1;
pub const ROW_SIZE: usize = 64;
pub const HEADER_SIZE: usize = 64;

pub const KIND_DEPTH: u8 = 1;
pub const KIND_DEPTH_LEVEL: u8 = 2;
pub const KIND_SNAPSHOT: u8 = 3;
pub const KIND_SNAPSHOT_LEVEL: u8 = 4;
pub const KIND_TRADE: u8 = 5;
pub const KIND_BBO: u8 = 6;

const FLAG_ASK_OR_SELL: u8 = 1;
const FLAG_HAS_PU: u8 = 2;

type Row = [u8; ROW_SIZE];

/// True when `bytes` start with the native magic.
pub fn is_native(bytes: &[u8]) -> bool {
    bytes.starts_with(&MAGIC)
}

struct RowFields {
    kind: u8,
    flags: u8,
    header: Header,
    f: [u64; 5],
}

fn encode_row(r: &RowFields) -> Row {
    let mut row = [0u8; ROW_SIZE];
    row[0] = r.kind;
    row[1] = r.flags;
    row[4..8].copy_from_slice(&r.header.symbol.to_le_bytes());
    row[8..16].copy_from_slice(&r.header.local_ns.to_le_bytes());
    row[16..24].copy_from_slice(&r.header.exchange_ns.to_le_bytes());
    for (i, v) in r.f.iter().enumerate() {
        let at = 24 + 8 * i;
        row[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }
    row
}

#[inline(always)]
fn le_u64(row: &Row, at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&row[at..at + 8]);
    u64::from_le_bytes(b)
}

#[inline(always)]
fn le_i64(row: &Row, at: usize) -> i64 {
    le_u64(row, at) as i64
}

#[inline(always)]
fn row_header(row: &Row) -> Header {
    let mut sym = [0u8; 4];
    sym.copy_from_slice(&row[4..8]);
    Header {
        symbol: SymbolId::from_le_bytes(sym),
        local_ns: le_i64(row, 8),
        exchange_ns: le_i64(row, 16),
    }
}

/// Writes events as native rows. Call [`NativeWriter::finish`] at the end: until then the file
/// has no magic and is refused by the reader.
#[derive(Debug)]
pub struct NativeWriter<W: Write + Seek> {
    out: W,
    rows: u64,
    events: u64,
}

impl NativeWriter<BufWriter<File>> {
    pub fn create(path: &Path) -> Result<NativeWriter<BufWriter<File>>, Error> {
        let file = File::create(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        NativeWriter::new(BufWriter::with_capacity(1 << 20, file)).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })
    }
}

impl<W: Write + Seek> NativeWriter<W> {
    pub fn new(mut out: W) -> std::io::Result<NativeWriter<W>> {
        out.write_all(&[0u8; HEADER_SIZE])?;
        Ok(NativeWriter {
            out,
            rows: 0,
            events: 0,
        })
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    fn row(&mut self, r: &RowFields) -> std::io::Result<()> {
        self.rows += 1;
        self.out.write_all(&encode_row(r))
    }

    fn levels(
        &mut self,
        kind: u8,
        header: Header,
        bids: &[Level],
        asks: &[Level],
    ) -> std::io::Result<()> {
        for (flags, levels) in [(0, bids), (FLAG_ASK_OR_SELL, asks)] {
            for l in levels {
                self.row(&RowFields {
                    kind,
                    flags,
                    header,
                    f: [l.price.0 as u64, l.qty.0 as u64, 0, 0, 0],
                })?;
            }
        }
        Ok(())
    }

    /// Appends one event (one header row plus its level rows).
    pub fn write_event(&mut self, event: &MarketEvent<'_>) -> std::io::Result<()> {
        self.events += 1;
        match event {
            MarketEvent::Depth(d) => {
                let flags = if d.prev_final_id.is_some() {
                    FLAG_HAS_PU
                } else {
                    0
                };
                self.row(&RowFields {
                    kind: KIND_DEPTH,
                    flags,
                    header: d.header,
                    f: [
                        d.first_id,
                        d.final_id,
                        d.prev_final_id.unwrap_or(0),
                        d.bids.len() as u64,
                        d.asks.len() as u64,
                    ],
                })?;
                self.levels(KIND_DEPTH_LEVEL, d.header, d.bids, d.asks)
            }
            MarketEvent::Snapshot(s) => {
                self.row(&RowFields {
                    kind: KIND_SNAPSHOT,
                    flags: 0,
                    header: s.header,
                    f: [
                        s.last_update_id,
                        0,
                        0,
                        s.bids.len() as u64,
                        s.asks.len() as u64,
                    ],
                })?;
                self.levels(KIND_SNAPSHOT_LEVEL, s.header, s.bids, s.asks)
            }
            MarketEvent::Trade(t) => self.row(&RowFields {
                kind: KIND_TRADE,
                flags: if t.aggressor == Side::Sell {
                    FLAG_ASK_OR_SELL
                } else {
                    0
                },
                header: t.header,
                f: [t.id, t.price.0 as u64, t.qty.0 as u64, 0, 0],
            }),
            MarketEvent::Bbo(b) => self.row(&RowFields {
                kind: KIND_BBO,
                flags: 0,
                header: b.header,
                f: [
                    b.update_id,
                    b.bid.price.0 as u64,
                    b.bid.qty.0 as u64,
                    b.ask.price.0 as u64,
                    b.ask.qty.0 as u64,
                ],
            }),
        }
    }

    /// Writes the symbol table and the header (with the magic), and flushes.
    pub fn finish(mut self, symbols: &[String]) -> std::io::Result<W> {
        let too_many = |_| std::io::Error::other("too many symbols");
        self.out.write_all(
            &u32::try_from(symbols.len())
                .map_err(too_many)?
                .to_le_bytes(),
        )?;
        for s in symbols {
            let len =
                u32::try_from(s.len()).map_err(|_| std::io::Error::other("symbol too long"))?;
            self.out.write_all(&len.to_le_bytes())?;
            self.out.write_all(s.as_bytes())?;
        }
        let mut header = [0u8; HEADER_SIZE];
        header[0..8].copy_from_slice(&MAGIC);
        header[8..12].copy_from_slice(&VERSION.to_le_bytes());
        header[12..16].copy_from_slice(&(ROW_SIZE as u32).to_le_bytes());
        header[16..24].copy_from_slice(&self.rows.to_le_bytes());
        header[24..32].copy_from_slice(&self.events.to_le_bytes());
        let symtab = HEADER_SIZE as u64 + ROW_SIZE as u64 * self.rows;
        header[32..40].copy_from_slice(&symtab.to_le_bytes());
        self.out.seek(SeekFrom::Start(0))?;
        self.out.write_all(&header)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

#[derive(Clone, Copy, Debug)]
enum Last {
    Depth {
        header: Header,
        first_id: u64,
        final_id: u64,
        prev_final_id: Option<u64>,
    },
    Snapshot {
        header: Header,
        last_update_id: u64,
    },
    Trade(Trade),
    Bbo(Bbo),
}

/// The bytes of a native file: read into memory, or mapped from the file.
#[derive(Debug)]
enum Data {
    Memory(Vec<u8>),
    Mapped(memmap2::Mmap),
}

impl std::ops::Deref for Data {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Data::Memory(bytes) => bytes,
            Data::Mapped(map) => map,
        }
    }
}

/// Replays a native file: mapped ([`NativeReader::open`]) or from memory
/// ([`NativeReader::from_bytes`]).
#[derive(Debug)]
pub struct NativeReader {
    path: PathBuf,
    data: Data,
    rows: usize,
    events: u64,
    /// Next row to read.
    next: usize,
    symbols: Vec<String>,
    bids: Vec<Level>,
    asks: Vec<Level>,
    failed: bool,
}

/// `(rows, events, symbol table offset)` of a native file's 64-byte header, checked against the
/// file's length.
fn parse_header(head: &[u8], file_len: u64, path: &Path) -> Result<(u64, u64, u64), Error> {
    let bad = |reason: String| Error::Native {
        path: path.to_owned(),
        reason,
    };
    if head.len() < HEADER_SIZE || !is_native(head) {
        return Err(bad("no native magic (an unfinished or foreign file)".into()));
    }
    let word = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&head[at..at + 8]);
        u64::from_le_bytes(b)
    };
    let version = word(8) as u32;
    let row_size = (word(8) >> 32) as u32;
    if version != VERSION || row_size as usize != ROW_SIZE {
        return Err(bad(format!(
            "version {version} with {row_size}-byte rows; this reader knows version {VERSION} with {ROW_SIZE}-byte rows"
        )));
    }
    let rows = word(16);
    let events = word(24);
    let symtab = word(32);
    let expected = rows
        .checked_mul(ROW_SIZE as u64)
        .and_then(|n| n.checked_add(HEADER_SIZE as u64));
    if expected != Some(symtab) || symtab > file_len {
        return Err(bad(format!(
            "{rows} rows do not fit: symbol table at {symtab}, file of {file_len} bytes"
        )));
    }
    Ok((rows, events, symtab))
}

impl NativeReader {
    /// Maps the file (read-only) rather than reading it: a warm replay then reads the page
    /// cache in place, where reading the file cost a copy and a fresh zeroed page per 4 KiB,
    /// more than the replay itself (34 MB for the USD-M capture).
    ///
    /// A mapped file must not be truncated while it is read (the reader would get SIGBUS):
    /// [`crate::convert`] and the Python cache write a new file and rename it over the old one,
    /// which leaves a reader's mapping intact.
    pub fn open(path: &Path) -> Result<NativeReader, Error> {
        let io = |source| Error::Io {
            path: path.to_owned(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        if file.metadata().map_err(io)?.len() < HEADER_SIZE as u64 {
            return NativeReader::from_bytes(std::fs::read(path).map_err(io)?, path);
        }
        #[allow(unsafe_code)]
        // SAFETY: the mapping is read-only and private to this reader; the file's bytes are
        // only read through bounds-checked slices, so any content is safe. Our writers never
        // change a finished file in place (see above); a file truncated by someone else while
        // mapped would stop the process with SIGBUS, as for any mapped file.
        let map = unsafe { memmap2::MmapOptions::new().map(&file) }.map_err(io)?;
        // Read front to back: let the kernel read ahead and map pages in larger batches.
        let _ = map.advise(memmap2::Advice::Sequential);
        NativeReader::from_data(Data::Mapped(map), path)
    }

    /// Checks the header and the symbol table; `path` names the data in errors.
    pub fn from_bytes(data: Vec<u8>, path: &Path) -> Result<NativeReader, Error> {
        NativeReader::from_data(Data::Memory(data), path)
    }

    fn from_data(data: Data, path: &Path) -> Result<NativeReader, Error> {
        let (rows, events, symtab) = parse_header(&data, data.len() as u64, path)?;
        let symbols = read_symbols(&data[symtab as usize..]).ok_or_else(|| Error::Native {
            path: path.to_owned(),
            reason: "bad symbol table".into(),
        })?;
        Ok(NativeReader {
            path: path.to_owned(),
            data,
            rows: rows as usize,
            events,
            next: 0,
            symbols,
            bids: Vec::with_capacity(1024),
            asks: Vec::with_capacity(1024),
            failed: false,
        })
    }

    pub fn symbols(&self) -> &[String] {
        &self.symbols
    }

    /// (rows read, total rows): progress reporting.
    pub fn progress(&self) -> (u64, u64) {
        (self.next as u64, self.rows as u64)
    }

    pub fn row_count(&self) -> u64 {
        self.rows as u64
    }

    pub fn event_count(&self) -> u64 {
        self.events
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Back to the first event (for repeated replays of the same data).
    pub fn rewind(&mut self) {
        self.next = 0;
        self.failed = false;
    }

    #[inline(always)]
    fn row(&self, i: usize) -> Option<&Row> {
        let at = HEADER_SIZE + i * ROW_SIZE;
        self.data.get(at..at + ROW_SIZE)?.try_into().ok()
    }

    fn corrupt(&mut self, row: usize, reason: String) -> Error {
        self.failed = true;
        Error::Native {
            path: self.path.clone(),
            reason: format!("row {row}: {reason}"),
        }
    }

    /// Reads `n_bids + n_asks` level rows of `kind` after the header row `at`.
    fn read_levels(&mut self, at: usize, kind: u8, n_bids: u64, n_asks: u64) -> Result<(), Error> {
        self.bids.clear();
        self.asks.clear();
        let total = n_bids
            .checked_add(n_asks)
            .and_then(|n| usize::try_from(n).ok());
        let end = total.and_then(|n| (at + 1).checked_add(n));
        let Some(end) = end.filter(|&e| e <= self.rows) else {
            return Err(self.corrupt(at, format!("{n_bids} + {n_asks} levels overrun the file")));
        };
        let n_bids = n_bids as usize;
        for i in at + 1..end {
            let Some(row) = self.row(i) else {
                return Err(self.corrupt(i, "missing".into()));
            };
            let is_ask = row[1] & FLAG_ASK_OR_SELL != 0;
            if row[0] != kind || is_ask != (i - at > n_bids) {
                let (k, f) = (row[0], row[1]);
                return Err(self.corrupt(
                    i,
                    format!("kind {k} flags {f} where a level of kind {kind} was due"),
                ));
            }
            let level = Level::new(Price(le_i64(row, 24)), Qty(le_i64(row, 32)));
            if is_ask {
                self.asks.push(level);
            } else {
                self.bids.push(level);
            }
        }
        self.next = end;
        Ok(())
    }

    /// The next event; `None` at the end, or after a corrupt row was reported.
    pub fn next_event(&mut self) -> Option<Result<MarketEvent<'_>, Error>> {
        if self.failed || self.next >= self.rows {
            return None;
        }
        let at = self.next;
        let row = *self.row(at)?;
        let header = row_header(&row);
        let f = |i: usize| le_u64(&row, 24 + 8 * i);
        let last = match row[0] {
            KIND_DEPTH => {
                if let Err(e) = self.read_levels(at, KIND_DEPTH_LEVEL, f(3), f(4)) {
                    return Some(Err(e));
                }
                Last::Depth {
                    header,
                    first_id: f(0),
                    final_id: f(1),
                    prev_final_id: (row[1] & FLAG_HAS_PU != 0).then(|| f(2)),
                }
            }
            KIND_SNAPSHOT => {
                if let Err(e) = self.read_levels(at, KIND_SNAPSHOT_LEVEL, f(3), f(4)) {
                    return Some(Err(e));
                }
                Last::Snapshot {
                    header,
                    last_update_id: f(0),
                }
            }
            KIND_TRADE => {
                self.next = at + 1;
                Last::Trade(Trade {
                    header,
                    id: f(0),
                    price: Price(f(1) as i64),
                    qty: Qty(f(2) as i64),
                    aggressor: if row[1] & FLAG_ASK_OR_SELL != 0 {
                        Side::Sell
                    } else {
                        Side::Buy
                    },
                })
            }
            KIND_BBO => {
                self.next = at + 1;
                Last::Bbo(Bbo {
                    header,
                    update_id: f(0),
                    bid: Level::new(Price(f(1) as i64), Qty(f(2) as i64)),
                    ask: Level::new(Price(f(3) as i64), Qty(f(4) as i64)),
                })
            }
            kind => {
                return Some(Err(
                    self.corrupt(at, format!("unknown or stray row kind {kind}"))
                ))
            }
        };
        Some(Ok(match last {
            Last::Depth {
                header,
                first_id,
                final_id,
                prev_final_id,
            } => MarketEvent::Depth(DepthDiff {
                header,
                first_id,
                final_id,
                prev_final_id,
                bids: &self.bids,
                asks: &self.asks,
            }),
            Last::Snapshot {
                header,
                last_update_id,
            } => MarketEvent::Snapshot(Snapshot {
                header,
                last_update_id,
                bids: &self.bids,
                asks: &self.asks,
            }),
            Last::Trade(t) => MarketEvent::Trade(t),
            Last::Bbo(b) => MarketEvent::Bbo(b),
        }))
    }
}

fn read_symbols(mut bytes: &[u8]) -> Option<Vec<String>> {
    let mut take = |n: usize| -> Option<&[u8]> {
        let (head, rest) = bytes.split_at_checked(n)?;
        bytes = rest;
        Some(head)
    };
    let count = u32::from_le_bytes(take(4)?.try_into().ok()?);
    let mut symbols = Vec::with_capacity(count.min(65_536) as usize);
    for _ in 0..count {
        let len = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
        symbols.push(String::from_utf8(take(len)?.to_vec()).ok()?);
    }
    Some(symbols)
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    fn sample() -> Vec<u8> {
        let h = |s| Header {
            symbol: s,
            exchange_ns: 5,
            local_ns: -3,
        };
        let bids = [
            Level::new(Price(100), Qty(2)),
            Level::new(Price(99), Qty(0)),
        ];
        let asks = [Level::new(Price(101), Qty(7))];
        let events = [
            MarketEvent::Snapshot(Snapshot {
                header: h(0),
                last_update_id: 9,
                bids: &bids,
                asks: &asks,
            }),
            MarketEvent::Depth(DepthDiff {
                header: h(1),
                first_id: 10,
                final_id: 12,
                prev_final_id: Some(9),
                bids: &[],
                asks: &asks,
            }),
            MarketEvent::Trade(Trade {
                header: h(0),
                id: u64::MAX,
                price: Price(i64::MAX),
                qty: Qty(1),
                aggressor: Side::Sell,
            }),
            MarketEvent::Bbo(Bbo {
                header: h(1),
                update_id: 12,
                bid: bids[0],
                ask: asks[0],
            }),
        ];
        let mut w = NativeWriter::new(Cursor::new(Vec::new())).unwrap_or_else(|_| unreachable!());
        for e in &events {
            assert!(w.write_event(e).is_ok());
        }
        let symbols = ["A".to_owned(), "B".to_owned()];
        let bytes = w
            .finish(&symbols)
            .map(Cursor::into_inner)
            .unwrap_or_default();
        let mut r = NativeReader::from_bytes(bytes.clone(), Path::new("t"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.symbols(), &symbols);
        assert_eq!((r.row_count(), r.event_count()), (3 + 1 + 2 + 1 + 1, 4));
        for e in &events {
            match r.next_event() {
                Some(Ok(got)) => assert_eq!(&got, e),
                other => panic!("{other:?}"),
            }
        }
        assert!(r.next_event().is_none());
        bytes
    }

    #[test]
    fn round_trips_every_kind() {
        sample();
    }

    #[test]
    fn corrupt_files_are_errors_not_panics() {
        let bytes = sample();
        for n in 0..bytes.len() {
            // A truncated file is refused up front or reads to an error/end, never panics.
            if let Ok(mut r) = NativeReader::from_bytes(bytes[..n].to_vec(), Path::new("t")) {
                while let Some(e) = r.next_event() {
                    if e.is_err() {
                        break;
                    }
                }
            }
        }
        // Flip every byte of the rows: errors or different values, never a panic.
        for i in HEADER_SIZE..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0xff;
            if let Ok(mut r) = NativeReader::from_bytes(b, Path::new("t")) {
                while r.next_event().is_some() {}
            }
        }
        let mut b = bytes.clone();
        b[0] = b'X';
        assert!(NativeReader::from_bytes(b, Path::new("t")).is_err());
        let mut b = bytes;
        b[HEADER_SIZE] = 42;
        let mut r = NativeReader::from_bytes(b, Path::new("t")).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(r.next_event(), Some(Err(Error::Native { .. }))));
        assert!(r.next_event().is_none());
    }
}
