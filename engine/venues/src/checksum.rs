//! Books that venues verify with a checksum (OKX `books`, Kraken `book`).
//!
//! OKX and Kraken send, with every book message, a CRC32 of the top of *their* book written in a
//! fixed textual form. Checking it needs the levels' text as the venue wrote it, so this book
//! keeps, per level, the price and size as received (inline, no allocation per level) beside the
//! fixed-point key it is ordered by. The venue modules decide which text goes into the CRC.

use std::cmp::Reverse;
use std::collections::BTreeMap;

use rt_core::{parse_units, Level, Price, Qty};

use crate::binance::DecodeError;

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

/// Both sides of one instrument's book, best first, with each level's text.
#[derive(Default, Debug)]
pub struct TextBook {
    bids: BTreeMap<Reverse<i64>, (Text, Text)>,
    asks: BTreeMap<i64, (Text, Text)>,
}

impl TextBook {
    pub fn clear(&mut self) {
        self.bids.clear();
        self.asks.clear();
    }

    /// Sets (or, with a zero size, deletes) one level.
    pub fn set(&mut self, bid: bool, level: &TextLevel) {
        let texts = (level.price_text, level.qty_text);
        match (bid, level.qty == 0) {
            (true, true) => {
                self.bids.remove(&Reverse(level.price));
            }
            (true, false) => {
                self.bids.insert(Reverse(level.price), texts);
            }
            (false, true) => {
                self.asks.remove(&level.price);
            }
            (false, false) => {
                self.asks.insert(level.price, texts);
            }
        }
    }

    /// Drops the levels beyond the best `depth` of each side.
    pub fn truncate(&mut self, depth: usize) {
        while self.bids.len() > depth {
            self.bids.pop_last();
        }
        while self.asks.len() > depth {
            self.asks.pop_last();
        }
    }

    /// Bids best (highest) first: (price text, size text).
    pub fn bids(&self) -> impl Iterator<Item = &(Text, Text)> {
        self.bids.values()
    }

    /// Asks best (lowest) first.
    pub fn asks(&self) -> impl Iterator<Item = &(Text, Text)> {
        self.asks.values()
    }

    pub fn depth(&self) -> (usize, usize) {
        (self.bids.len(), self.asks.len())
    }

    /// Best bid and ask prices in units, if any.
    pub fn top(&self) -> (Option<i64>, Option<i64>) {
        (
            self.bids.keys().next().map(|r| r.0),
            self.asks.keys().next().copied(),
        )
    }

    /// A crossed or locked book (best bid at or above best ask) cannot be the venue's.
    pub fn crossed(&self) -> bool {
        matches!(self.top(), (Some(b), Some(a)) if b >= a)
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
    /// Dropped: the book is invalid (waiting for a snapshot).
    Invalid,
}
