//! Books that venues verify with a checksum (OKX `books`, Kraken `book`).
//!
//! OKX and Kraken send, with every book message, a CRC32 of the top of *their* book written in a
//! fixed textual form. Checking it needs the levels' text as the venue wrote it, so this book
//! keeps, per level, the price and size as received (inline, no allocation per level) beside the
//! fixed-point key it is ordered by. The venue modules decide which text goes into the CRC.

use std::collections::HashMap;

use rt_core::{parse_units, Level, Price, Qty};

use crate::binance::DecodeError;
use crate::scan::Scan;

/// The longest price or size text a level keeps (OKX and Kraken send at most ~20 characters).
pub const TEXT_CAP: usize = 31;

/// A decimal exactly as the venue wrote it, inline.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Text {
    len: u8,
    bytes: [u8; TEXT_CAP],
}

impl Text {
    /// `bytes` kept verbatim; refused when longer than [`TEXT_CAP`].
    pub fn new(bytes: &[u8], field: &'static str) -> Result<Text, DecodeError> {
        if bytes.len() > TEXT_CAP {
            return Err(DecodeError::BadDecimal {
                field,
                source: rt_core::ParseDecimalError::TooLarge,
            });
        }
        let mut out = [0u8; TEXT_CAP];
        out[..bytes.len()].copy_from_slice(bytes);
        Ok(Text {
            len: bytes.len() as u8,
            bytes: out,
        })
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl std::fmt::Debug for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

/// A decimal's value in units of 10^-8 (zeros beyond the 8th decimal accepted: Kraken writes
/// some prices with 9 decimals, the last a zero; any other digit there is refused).
pub fn units(bytes: &[u8], field: &'static str) -> Result<i64, DecodeError> {
    parse_units(bytes).map_err(|source| DecodeError::BadDecimal { field, source })
}

/// One level as received: its value (for ordering and the core's events) and its text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TextLevel {
    pub price: i64,
    pub qty: i64,
    pub price_text: Text,
    pub qty_text: Text,
}

impl TextLevel {
    pub fn parse(price: &[u8], qty: &[u8]) -> Result<TextLevel, DecodeError> {
        Ok(TextLevel {
            price: units(price, "price")?,
            qty: units(qty, "size")?,
            price_text: Text::new(price, "price")?,
            qty_text: Text::new(qty, "size")?,
        })
    }

    pub fn level(&self) -> Level {
        Level::new(Price(self.price), Qty(self.qty))
    }
}

/// One side of a book: levels sorted so that the best is *last* (bids ascending, asks
/// descending by price), so the changes a venue sends most (near the top) move few entries.
#[derive(Default, Debug)]
struct Side {
    /// (key, price text, size text); the key is the price for asks negated, so both sides
    /// are ascending with the best last.
    levels: Vec<(i64, Text, Text)>,
}

impl Side {
    fn set(&mut self, key: i64, texts: Option<(Text, Text)>) {
        // Search from the top: most updates are near it.
        let found = self.levels.binary_search_by(|l| l.0.cmp(&key));
        match (found, texts) {
            (Ok(i), Some((p, q))) => self.levels[i] = (key, p, q),
            (Ok(i), None) => {
                self.levels.remove(i);
            }
            (Err(i), Some((p, q))) => self.levels.insert(i, (key, p, q)),
            (Err(_), None) => {}
        }
    }

    fn best_first(&self) -> impl Iterator<Item = (&Text, &Text)> {
        self.levels.iter().rev().map(|(_, p, q)| (p, q))
    }

    /// The side made of `levels` alone (a snapshot): one sort instead of an insert each.
    fn load(&mut self, levels: &[TextLevel], key: impl Fn(i64) -> i64) {
        self.levels.clear();
        self.levels.extend(
            levels
                .iter()
                .filter(|l| l.qty != 0)
                .map(|l| (key(l.price), l.price_text, l.qty_text)),
        );
        // Stable: of two levels at one price the later one stays, as one `set` after another.
        self.levels.sort_by_key(|l| l.0);
        let mut i = 1;
        while i < self.levels.len() {
            if self.levels[i - 1].0 == self.levels[i].0 {
                self.levels.remove(i - 1);
            } else {
                i += 1;
            }
        }
    }

    fn truncate(&mut self, depth: usize) {
        let excess = self.levels.len().saturating_sub(depth);
        self.levels.drain(..excess);
    }
}

/// `[["price","size",...], ..]` appended to `out`: each level's first two strings (OKX sends
/// four, Kraken three or four; the rest is skipped).
pub(crate) fn text_levels(s: &mut Scan<'_>, out: &mut Vec<TextLevel>) -> Result<(), DecodeError> {
    s.expect(b'[', "'['")?;
    if s.peek()? == b']' {
        s.i += 1;
        return Ok(());
    }
    loop {
        s.expect(b'[', "'['")?;
        let price = s.string()?;
        s.expect(b',', "','")?;
        let size = s.string()?;
        out.push(TextLevel::parse(price, size)?);
        while s.more(b']')? {
            s.skip_value()?;
        }
        if !s.more(b']')? {
            return Ok(());
        }
    }
}

/// Both sides of one instrument's book, with each level's text.
#[derive(Default, Debug)]
pub struct TextBook {
    bids: Side,
    asks: Side,
}

impl TextBook {
    pub fn clear(&mut self) {
        self.bids.levels.clear();
        self.asks.levels.clear();
    }

    /// The book made of a snapshot's levels.
    pub fn load(&mut self, bids: &[TextLevel], asks: &[TextLevel]) {
        self.bids.load(bids, |p| p);
        self.asks.load(asks, |p| -p);
    }

    /// Sets (or, with a zero size, deletes) one level.
    pub fn set(&mut self, bid: bool, level: &TextLevel) {
        let texts = (level.qty != 0).then_some((level.price_text, level.qty_text));
        if bid {
            self.bids.set(level.price, texts);
        } else {
            self.asks.set(-level.price, texts);
        }
    }

    /// Drops the levels beyond the best `depth` of each side.
    pub fn truncate(&mut self, depth: usize) {
        self.bids.truncate(depth);
        self.asks.truncate(depth);
    }

    /// Bids best (highest) first: (price text, size text).
    pub fn bids(&self) -> impl Iterator<Item = (&Text, &Text)> {
        self.bids.best_first()
    }

    /// Asks best (lowest) first.
    pub fn asks(&self) -> impl Iterator<Item = (&Text, &Text)> {
        self.asks.best_first()
    }

    pub fn depth(&self) -> (usize, usize) {
        (self.bids.levels.len(), self.asks.levels.len())
    }

    /// Best bid and ask prices in units, if any.
    pub fn top(&self) -> (Option<i64>, Option<i64>) {
        (
            self.bids.levels.last().map(|l| l.0),
            self.asks.levels.last().map(|l| -l.0),
        )
    }

    /// A crossed or locked book (best bid at or above best ask) cannot be the venue's.
    pub fn crossed(&self) -> bool {
        matches!(self.top(), (Some(b), Some(a)) if b >= a)
    }
}

/// One book message as a venue codec decoded it.
#[derive(Clone, Copy, Debug)]
pub struct BookMessage<'a> {
    pub snapshot: bool,
    pub bids: &'a [TextLevel],
    pub asks: &'a [TextLevel],
    /// The subscribed depth the book is cut back to after each message (Kraken).
    pub depth: Option<usize>,
    /// The venue's sequence ids, when it sends them (OKX `seqId`/`prevSeqId`).
    pub seq_id: Option<i64>,
    pub prev_seq_id: Option<i64>,
    /// The venue's checksum of its book after this message.
    pub checksum: Option<u32>,
}

/// One instrument's book, checked message by message.
#[derive(Default, Debug)]
pub struct CheckedBook {
    pub book: TextBook,
    pub counters: CheckCounters,
    /// Set by a snapshot, cleared by a mismatch or a sequence gap.
    pub valid: bool,
    /// Sequence gaps found (`prev_seq_id` not the last `seq_id`).
    pub gaps: u64,
    last_seq: Option<i64>,
}

/// Every instrument's book on one connection of a checksummed venue (OKX, Kraken): the rule
/// both follow. A snapshot makes a book valid; a checksum mismatch or a sequence gap makes it
/// invalid until the next snapshot, and the messages meanwhile are not applied.
#[derive(Default, Debug)]
pub struct CheckedBooks {
    index: HashMap<Vec<u8>, usize>,
    names: Vec<String>,
    books: Vec<CheckedBook>,
    buf: Vec<u8>,
    /// Verify every n-th checksum of an instrument (1: every message, the default).
    pub check_every: u64,
}

impl CheckedBooks {
    pub fn new() -> CheckedBooks {
        CheckedBooks {
            check_every: 1,
            ..CheckedBooks::default()
        }
    }

    /// Instrument names in the order first seen, with their books.
    pub fn books(&self) -> impl Iterator<Item = (&str, &CheckedBook)> {
        self.names.iter().map(String::as_str).zip(&self.books)
    }

    /// Applies `msg` to the book of `name` and compares the venue's checksum with `checksum`
    /// of the rebuilt book.
    pub fn apply(
        &mut self,
        name: &[u8],
        msg: &BookMessage<'_>,
        checksum: fn(&TextBook, &mut Vec<u8>) -> u32,
    ) -> Checked {
        let id = match self.index.get(name) {
            Some(&id) => id,
            None => {
                let id = self.books.len();
                self.index.insert(name.to_vec(), id);
                self.names.push(String::from_utf8_lossy(name).into_owned());
                self.books.push(CheckedBook::default());
                id
            }
        };
        let book = &mut self.books[id];
        book.counters.messages += 1;
        if msg.snapshot {
            book.counters.snapshots += 1;
            if book.counters.snapshots > 1 {
                book.counters.resyncs += 1;
            }
            book.valid = true;
        } else if !book.valid {
            book.counters.unverified += 1;
            return Checked::Invalid;
        } else if let (Some(prev), Some(last)) = (msg.prev_seq_id, book.last_seq) {
            if prev != last {
                book.gaps += 1;
                book.valid = false;
                book.counters.unverified += 1;
                return Checked::Gap;
            }
        }
        book.last_seq = msg.seq_id.or(book.last_seq);
        if msg.snapshot {
            book.book.load(msg.bids, msg.asks);
        } else {
            for level in msg.bids {
                book.book.set(true, level);
            }
            for level in msg.asks {
                book.book.set(false, level);
            }
        }
        if let Some(depth) = msg.depth {
            book.book.truncate(depth);
        }
        let Some(expected) = msg.checksum else {
            return Checked::Unchecked;
        };
        if book.counters.messages % self.check_every.max(1) != 0 {
            return Checked::Unchecked;
        }
        book.counters.checked += 1;
        let computed = checksum(&book.book, &mut self.buf);
        if computed == expected {
            book.counters.matched += 1;
            Checked::Verified
        } else {
            book.valid = false;
            Checked::Mismatch { expected, computed }
        }
    }
}

impl CheckedBooks {
    /// Marks the book of `name` invalid (a stale book, a resubscription): its messages are
    /// dropped until the next snapshot. `false` when the instrument was never seen.
    pub fn invalidate(&mut self, name: &[u8]) -> bool {
        match self.index.get(name) {
            Some(&id) => {
                self.books[id].valid = false;
                true
            }
            None => false,
        }
    }

    /// Every instrument's counters summed, and the sequence gaps.
    pub fn totals(&self) -> (CheckCounters, u64) {
        self.books
            .iter()
            .fold((CheckCounters::default(), 0), |(mut c, gaps), b| {
                c.messages += b.counters.messages;
                c.snapshots += b.counters.snapshots;
                c.checked += b.counters.checked;
                c.matched += b.counters.matched;
                c.unverified += b.counters.unverified;
                c.resyncs += b.counters.resyncs;
                (c, gaps + b.gaps)
            })
    }
}

/// What checking one instrument's book against the venue's checksums found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CheckCounters {
    /// Book messages applied (snapshots and updates).
    pub messages: u64,
    pub snapshots: u64,
    /// Checksums compared with the rebuilt book, and how many matched.
    pub checked: u64,
    pub matched: u64,
    /// Book messages that came while the book was invalid (after a mismatch, before the next
    /// snapshot): not applied, not checked.
    pub unverified: u64,
    /// Snapshots after the first: the book was rebuilt from scratch.
    pub resyncs: u64,
}

impl CheckCounters {
    pub fn mismatched(&self) -> u64 {
        self.checked - self.matched
    }
}

/// The outcome of one book message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checked {
    /// Applied, and the venue's checksum equals the rebuilt book's.
    Verified,
    /// Applied; the message carried no checksum (or checking is off for it).
    Unchecked,
    /// The rebuilt book differs from the venue's: the book is invalid until a new snapshot.
    Mismatch { expected: u32, computed: u32 },
    /// Dropped: the venue's sequence ids skipped a message (`prevSeqId` is not the last
    /// `seqId`); the book is invalid until a new snapshot.
    Gap,
    /// Dropped: the book is invalid (waiting for a snapshot).
    Invalid,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn level(p: &str, q: &str) -> TextLevel {
        TextLevel::parse(p.as_bytes(), q.as_bytes()).unwrap()
    }

    #[test]
    fn a_snapshot_loads_as_the_same_book_as_one_set_per_level() {
        let bids = [
            level("10", "1"),
            level("9.5", "2"),
            level("11", "0"),
            level("10", "3"),
        ];
        let asks = [level("12", "1"), level("12.5", "4"), level("13", "2")];
        let mut loaded = TextBook::default();
        loaded.load(&bids, &asks);
        let mut set = TextBook::default();
        for l in &bids {
            set.set(true, l);
        }
        for l in &asks {
            set.set(false, l);
        }
        let texts = |b: &TextBook| {
            let side = |it: &mut dyn Iterator<Item = (&Text, &Text)>| {
                it.map(|(p, q)| format!("{p:?}:{q:?}")).collect::<Vec<_>>()
            };
            (side(&mut b.bids()), side(&mut b.asks()))
        };
        assert_eq!(texts(&loaded), texts(&set));
        assert_eq!(loaded.top(), (Some(1_000_000_000), Some(1_200_000_000)));
        assert_eq!(texts(&loaded).0, ["\"10\":\"3\"", "\"9.5\":\"2\""]);
        loaded.truncate(1);
        assert_eq!(loaded.depth(), (1, 1));
        assert_eq!(loaded.top(), (Some(1_000_000_000), Some(1_200_000_000)));
        assert!(!loaded.crossed());
        loaded.set(true, &level("12", "1"));
        assert!(loaded.crossed());
    }
}
