//! The native event file: market events as little-endian rows, replayed without any JSON
//! parsing.
//!
//! # Layout (version 2)
//!
//! All integers little-endian. A 64-byte file header, the rows (`row_count` of them: 64-byte
//! event rows, each depth or snapshot row followed by its 16-byte level rows), then the symbol
//! table:
//!
//! ```text
//! header   off size field
//!            0    8 magic  b"PYRTEVT\x01"  (written last: a half-written file has none)
//!            8    4 version (u32) = 2
//!           12    4 event row size (u32) = 64
//!           16    8 row_count (u64): event rows + level rows
//!           24    8 event_count (u64)
//!           32    8 symbol table offset in bytes (u64) = 64 + 64 * event rows + 16 * level rows
//!           40   24 reserved, zero
//!
//! event row off size field
//!            0    1 kind (u8, below)
//!            1    1 flags (u8): bit 0 = sell aggressor (trade rows); bit 1 = `pu` present
//!                              (depth rows)
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
//!   3 snapshot header  lastUpdateId    0           0          bid count   ask count
//!   5 trade            trade id        price       qty        0           0
//!   6 bbo              update id       bid price   bid qty    ask price   ask qty
//!
//! level row off size field
//!            0    8 price (i64)
//!            8    8 qty (i64)
//!
//! symbol table: count (u32), then per symbol: byte length (u32) + UTF-8 bytes
//! ```
//!
//! Prices and quantities are raw fixed-point units of 10^-8 (`Price.0`, `Qty.0`). A depth or
//! snapshot row is followed by its bid level rows then its ask level rows (its counts say
//! where the asks start). Row counts are hftbacktest's (one row per level, trade, bbo or event
//! header), so replay speeds per row compare directly.
//!
//! Version 1 (still read) had 64-byte level rows (kinds 2 and 4) repeating the event's kind
//! byte, side flag, symbol and times; a level then cost a whole cache line to replay, and a
//! replay of the USD-M capture read 2.6 times the bytes (34.5 MB against 13.2 MB).

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use rt_core::{
    Bbo, DepthDiff, Header, Level, MarketEvent, Price, Qty, Side, Snapshot, SymbolId, Trade,
};

use crate::Error;

pub const MAGIC: [u8; 8] = *b"PYRTEVT\x01";
pub const VERSION: u32 = 2;
/// Bytes of an event row (and of every row of a version 1 file).
pub const ROW_SIZE: usize = 64;
/// Bytes of a level row (version 2).
pub const LEVEL_ROW_SIZE: usize = 16;
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
    /// Of `rows`, the 16-byte level rows.
    level_rows: u64,
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
            level_rows: 0,
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

    fn levels(&mut self, bids: &[Level], asks: &[Level]) -> std::io::Result<()> {
        for l in bids.iter().chain(asks) {
            let mut row = [0u8; LEVEL_ROW_SIZE];
            row[..8].copy_from_slice(&l.price.0.to_le_bytes());
            row[8..].copy_from_slice(&l.qty.0.to_le_bytes());
            self.out.write_all(&row)?;
        }
        let n = (bids.len() + asks.len()) as u64;
        self.rows += n;
        self.level_rows += n;
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
                self.levels(d.bids, d.asks)
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
                self.levels(s.bids, s.asks)
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
        let events = self.rows - self.level_rows;
        let symtab =
            HEADER_SIZE as u64 + ROW_SIZE as u64 * events + LEVEL_ROW_SIZE as u64 * self.level_rows;
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
    /// The file's layout version (1 or 2).
    version: u32,
    /// Where the rows end (the symbol table's offset).
    end: usize,
    rows: usize,
    events: u64,
    /// Byte offset of the next row, and rows read before it.
    pos: usize,
    next: usize,
    symbols: Vec<String>,
    bids: Vec<Level>,
    asks: Vec<Level>,
    failed: bool,
}

/// `(version, rows, events, symbol table offset)` of a native file's 64-byte header, checked
/// against the file's length.
fn parse_header(head: &[u8], file_len: u64, path: &Path) -> Result<(u32, u64, u64, u64), Error> {
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
    if !(1..=VERSION).contains(&version) || row_size as usize != ROW_SIZE {
        return Err(bad(format!(
            "version {version} with {row_size}-byte rows; this reader knows versions 1 to {VERSION} with {ROW_SIZE}-byte rows"
        )));
    }
    let rows = word(16);
    let events = word(24);
    let symtab = word(32);
    // Version 1: every row 64 bytes. Version 2: between 16 and 64 bytes a row.
    let (least, most) = if version == 1 {
        (ROW_SIZE, ROW_SIZE)
    } else {
        (LEVEL_ROW_SIZE, ROW_SIZE)
    };
    let bound = |size: usize| {
        rows.checked_mul(size as u64)
            .and_then(|n| n.checked_add(HEADER_SIZE as u64))
    };
    let fits =
        matches!((bound(least), bound(most)), (Some(lo), Some(hi)) if (lo..=hi).contains(&symtab));
    if !fits || symtab > file_len {
        return Err(bad(format!(
            "{rows} rows do not fit: symbol table at {symtab}, file of {file_len} bytes"
        )));
    }
    Ok((version, rows, events, symtab))
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
        let (version, rows, events, symtab) = parse_header(&data, data.len() as u64, path)?;
        let symbols = read_symbols(&data[symtab as usize..]).ok_or_else(|| Error::Native {
            path: path.to_owned(),
            reason: "bad symbol table".into(),
        })?;
        Ok(NativeReader {
            path: path.to_owned(),
            data,
            version,
            end: symtab as usize,
            rows: rows as usize,
            events,
            pos: HEADER_SIZE,
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
        self.pos = HEADER_SIZE;
        self.next = 0;
        self.failed = false;
    }

    /// The event row at byte `at`, if it ends before the rows do.
    #[inline(always)]
    fn row(&self, at: usize) -> Option<&Row> {
        let rows = self.data.get(..self.end)?;
        rows.get(at..at.checked_add(ROW_SIZE)?)?.try_into().ok()
    }

    fn corrupt(&mut self, row: usize, reason: String) -> Error {
        self.failed = true;
        Error::Native {
            path: self.path.clone(),
            reason: format!("row {row}: {reason}"),
        }
    }

    /// Reads the `n_bids + n_asks` level rows from byte `self.pos` (after their event row,
    /// row number `at`); `kind` is their kind in a version 1 file.
    fn read_levels(&mut self, at: usize, kind: u8, n_bids: u64, n_asks: u64) -> Result<(), Error> {
        self.bids.clear();
        self.asks.clear();
        let stride = if self.version == 1 {
            ROW_SIZE
        } else {
            LEVEL_ROW_SIZE
        };
        let total = n_bids
            .checked_add(n_asks)
            .and_then(|n| usize::try_from(n).ok());
        let end = total
            .and_then(|n| n.checked_mul(stride))
            .and_then(|n| self.pos.checked_add(n));
        let (Some(total), Some(end)) = (total, end.filter(|&e| e <= self.end)) else {
            return Err(self.corrupt(at, format!("{n_bids} + {n_asks} levels overrun the file")));
        };
        let n_bids = n_bids as usize;
        let le = |b: &[u8], at: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[at..at + 8]);
            i64::from_le_bytes(w)
        };
        let rows = &self.data[self.pos..end];
        if self.version != 1 {
            let (bids, asks) = rows.split_at(n_bids * LEVEL_ROW_SIZE);
            let level = |r: &[u8]| Level::new(Price(le(r, 0)), Qty(le(r, 8)));
            self.bids
                .extend(bids.chunks_exact(LEVEL_ROW_SIZE).map(level));
            self.asks
                .extend(asks.chunks_exact(LEVEL_ROW_SIZE).map(level));
        } else {
            for (i, row) in rows.chunks_exact(ROW_SIZE).enumerate() {
                let is_ask = row[1] & FLAG_ASK_OR_SELL != 0;
                if row[0] != kind || is_ask != (i >= n_bids) {
                    let (k, f) = (row[0], row[1]);
                    return Err(self.corrupt(
                        at + 1 + i,
                        format!("kind {k} flags {f} where a level of kind {kind} was due"),
                    ));
                }
                let level = Level::new(Price(le(row, 24)), Qty(le(row, 32)));
                if is_ask {
                    self.asks.push(level);
                } else {
                    self.bids.push(level);
                }
            }
        }
        self.pos = end;
        self.next += total;
        Ok(())
    }

    /// The next event; `None` at the end, or after a corrupt row was reported.
    pub fn next_event(&mut self) -> Option<Result<MarketEvent<'_>, Error>> {
        if self.failed || self.next >= self.rows {
            return None;
        }
        let at = self.next;
        let Some(&row) = self.row(self.pos) else {
            return Some(Err(self.corrupt(at, "beyond the end of the rows".into())));
        };
        self.pos += ROW_SIZE;
        self.next = at + 1;
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
            KIND_TRADE => Last::Trade(Trade {
                header,
                id: f(0),
                price: Price(f(1) as i64),
                qty: Qty(f(2) as i64),
                aggressor: if row[1] & FLAG_ASK_OR_SELL != 0 {
                    Side::Sell
                } else {
                    Side::Buy
                },
            }),
            KIND_BBO => Last::Bbo(Bbo {
                header,
                update_id: f(0),
                bid: Level::new(Price(f(1) as i64), Qty(f(2) as i64)),
                ask: Level::new(Price(f(3) as i64), Qty(f(4) as i64)),
            }),
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
        let bytes = sample();
        // Level rows take 16 bytes: the header, 4 event rows, 4 level rows, the symbol table.
        let symtab = HEADER_SIZE + 4 * ROW_SIZE + 4 * LEVEL_ROW_SIZE;
        assert_eq!(bytes.len(), symtab + 4 + 2 * (4 + 1));
        assert_eq!(&bytes[32..40], &(symtab as u64).to_le_bytes());
    }

    /// The sample's events as version 1 wrote them: 64-byte level rows.
    fn sample_v1() -> Vec<u8> {
        let h = |symbol| Header {
            symbol,
            exchange_ns: 5,
            local_ns: -3,
        };
        let row = |kind, flags, header, f| {
            encode_row(&RowFields {
                kind,
                flags,
                header,
                f,
            })
        };
        let rows = [
            row(KIND_SNAPSHOT, 0, h(0), [9, 0, 0, 2, 1]),
            row(KIND_SNAPSHOT_LEVEL, 0, h(0), [100, 2, 0, 0, 0]),
            row(KIND_SNAPSHOT_LEVEL, 0, h(0), [99, 0, 0, 0, 0]),
            row(
                KIND_SNAPSHOT_LEVEL,
                FLAG_ASK_OR_SELL,
                h(0),
                [101, 7, 0, 0, 0],
            ),
            row(KIND_DEPTH, FLAG_HAS_PU, h(1), [10, 12, 9, 0, 1]),
            row(KIND_DEPTH_LEVEL, FLAG_ASK_OR_SELL, h(1), [101, 7, 0, 0, 0]),
            row(
                KIND_TRADE,
                FLAG_ASK_OR_SELL,
                h(0),
                [u64::MAX, i64::MAX as u64, 1, 0, 0],
            ),
            row(KIND_BBO, 0, h(1), [12, 100, 2, 101, 7]),
        ];
        let mut bytes = vec![0u8; HEADER_SIZE];
        bytes[0..8].copy_from_slice(&MAGIC);
        bytes[8..12].copy_from_slice(&1u32.to_le_bytes());
        bytes[12..16].copy_from_slice(&(ROW_SIZE as u32).to_le_bytes());
        bytes[16..24].copy_from_slice(&8u64.to_le_bytes());
        bytes[24..32].copy_from_slice(&4u64.to_le_bytes());
        bytes[32..40].copy_from_slice(&((HEADER_SIZE + 8 * ROW_SIZE) as u64).to_le_bytes());
        for r in rows {
            bytes.extend_from_slice(&r);
        }
        bytes.extend_from_slice(&2u32.to_le_bytes());
        for s in ["A", "B"] {
            bytes.extend_from_slice(&1u32.to_le_bytes());
            bytes.extend_from_slice(s.as_bytes());
        }
        bytes
    }

    #[test]
    fn version_1_files_still_replay() {
        let events = |bytes: Vec<u8>| {
            let mut r =
                NativeReader::from_bytes(bytes, Path::new("t")).unwrap_or_else(|e| panic!("{e}"));
            let mut out = Vec::new();
            while let Some(e) = r.next_event() {
                out.push(format!("{:?}", e.unwrap_or_else(|e| panic!("{e}"))));
            }
            (out, r.progress(), r.symbols().to_vec())
        };
        let (v1, v2) = (events(sample_v1()), events(sample()));
        assert_eq!(v1.0.len(), 4);
        assert_eq!(v1, v2);
        // A version 1 level row of the wrong side is reported, not misread.
        let mut bad = sample_v1();
        bad[HEADER_SIZE + ROW_SIZE + 1] = FLAG_ASK_OR_SELL;
        let mut r = NativeReader::from_bytes(bad, Path::new("t")).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(r.next_event(), Some(Err(Error::Native { .. }))));
    }

    #[test]
    fn corrupt_files_are_errors_not_panics() {
        corrupt_copies_are_errors_not_panics(sample_v1());
        let bytes = sample();
        corrupt_copies_are_errors_not_panics(bytes.clone());
        let mut b = bytes.clone();
        b[0] = b'X';
        assert!(NativeReader::from_bytes(b, Path::new("t")).is_err());
        let mut b = bytes;
        b[HEADER_SIZE] = 42;
        let mut r = NativeReader::from_bytes(b, Path::new("t")).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(r.next_event(), Some(Err(Error::Native { .. }))));
        assert!(r.next_event().is_none());
    }

    fn corrupt_copies_are_errors_not_panics(bytes: Vec<u8>) {
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
        // Flip every byte after the magic (header fields, rows, symbols): errors or different
        // values, never a panic.
        for i in MAGIC.len()..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0xff;
            if let Ok(mut r) = NativeReader::from_bytes(b, Path::new("t")) {
                while r.next_event().is_some() {}
            }
        }
    }
}
