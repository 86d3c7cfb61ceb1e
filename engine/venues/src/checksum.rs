//! Books that venues verify with a checksum (OKX `books`, Kraken `book`).
//!
//! OKX and Kraken send, with every book message, a CRC32 of the top of *their* book written in a
//! fixed textual form. Checking it needs the levels' text as the venue wrote it, so this book
//! keeps, per level, the price and size as received (inline, no allocation per level) beside the
//! fixed-point key it is ordered by. The venue modules decide which text goes into the CRC.

use std::collections::{HashMap, VecDeque};

use rt_core::{parse_units, Level, Price, Qty};

use crate::binance::DecodeError;
use crate::scan::{digit_run, load8, quote_or_escape, text_decimal, Scan};

mod grid;
use grid::{Grid, Locate};

/// The longest price or size text a level keeps (OKX and Kraken send at most ~20 characters;
/// a decimal the engine accepts has at most 11 integer digits).
pub const TEXT_CAP: usize = 29;

/// Where a [`Text`]'s bytes start in its block (after `len`, `dot`, `lead`).
const HEAD: usize = 3;

/// A decimal exactly as the venue wrote it, inline in one 32-byte block, with the two
/// positions Kraken's checksum form needs found once, when the text is made (not on every
/// checksum): `[len, dot, lead, text.., scratch..]`, where `dot` is the index of the `.`
/// (`len` when there is none) and `lead` how many leading bytes are `0` or `.` (`len` for a
/// text of zeros); a `dot` of `u8::MAX` means they were not looked for yet. Made from a
/// frame as two 16-byte words, so that moving it later reads what was written at the same
/// width (no store-forwarding stall).
#[derive(Clone, Copy)]
pub struct Text {
    raw: [u8; HEAD + TEXT_CAP],
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
        let len = bytes.len();
        let (dot, lead) = marks(bytes);
        let mut raw = [0u8; HEAD + TEXT_CAP];
        raw[..HEAD].copy_from_slice(&[len as u8, dot as u8, lead as u8]);
        raw[HEAD..HEAD + len].copy_from_slice(bytes);
        Ok(Text { raw })
    }

    /// The text `frame[start..end]` (`None` when longer than [`TEXT_CAP`]). The fast way, when
    /// the frame has room around it: two 16-byte loads, the head merged in a register. Without
    /// `marked`, `dot` and `lead` are left to be found if ever needed (OKX's checksum keeps the
    /// text verbatim; Kraken's decoder asks for them).
    #[inline(always)]
    pub(crate) fn from_frame(frame: &[u8], start: usize, end: usize, marked: bool) -> Option<Text> {
        let len = end.checked_sub(start)?;
        if len > TEXT_CAP {
            return None;
        }
        let (Some(lo), Some(hi)) = (
            start.checked_sub(HEAD).and_then(|s| frame.get(s..s + 16)),
            frame.get(start + 16 - HEAD..start + TEXT_CAP),
        ) else {
            return Text::new(frame.get(start..end)?, "").ok();
        };
        let lo = u128::from_le_bytes(lo.try_into().ok()?);
        let hi = u128::from_le_bytes(hi.try_into().ok()?);
        let mut raw = [0u8; HEAD + TEXT_CAP];
        if !marked {
            let head = len as u128 | u128::from(UNMARKED) << 8;
            raw[..16].copy_from_slice(&((lo & !0xFF_FFFF) | head).to_le_bytes());
            raw[16..].copy_from_slice(&hi.to_le_bytes());
            return Some(Text { raw });
        }
        // The text's first 8 bytes (and what follows it there) answer both questions for
        // nearly every decimal; the rest, one by one.
        let w = (lo >> (8 * HEAD)) as u64;
        let dots = zero_bytes(w ^ (ONES * u64::from(b'.')));
        let zeros = zero_bytes(w ^ (ONES * u64::from(b'0')));
        let mut dot = (dots.trailing_zeros() / 8) as usize;
        let mut lead = ((!(dots | zeros) & HIGH).trailing_zeros() / 8) as usize;
        if dot == 8 && len > 8 {
            dot = frame[start + 8..end]
                .iter()
                .position(|&c| c == b'.')
                .map_or(len, |k| k + 8);
        }
        if lead == 8 && len > 8 {
            lead = frame[start + 8..end]
                .iter()
                .position(|&c| c != b'0' && c != b'.')
                .map_or(len, |k| k + 8);
        }
        let head = len as u128 | (dot.min(len) as u128) << 8 | (lead.min(len) as u128) << 16;
        let lo = (lo & !0xFF_FFFF) | head;
        raw[..16].copy_from_slice(&lo.to_le_bytes());
        raw[16..].copy_from_slice(&hi.to_le_bytes());
        Some(Text { raw })
    }

    #[inline(always)]
    pub fn as_bytes(&self) -> &[u8] {
        &self.raw[HEAD..HEAD + usize::from(self.raw[0])]
    }

    /// Writes the text at `out[pos..]` and returns the index after it. `out` must have
    /// [`TEXT_SLACK`] bytes from `pos` (one fixed-size copy; bytes past the text are scratch
    /// the next write covers).
    #[inline(always)]
    pub fn write(&self, out: &mut [u8], pos: usize) -> usize {
        let len = usize::from(self.raw[0]);
        // Prices and sizes are nearly always short: one 16-byte copy.
        if len <= 16 {
            out[pos..pos + 16].copy_from_slice(&self.raw[HEAD..HEAD + 16]);
        } else {
            out[pos..pos + TEXT_CAP].copy_from_slice(&self.raw[HEAD..]);
        }
        pos + len
    }

    /// Writes the text with the `.` removed and leading zeros stripped (`0` for zero) at
    /// `out[pos..]`, Kraken's checksum form, and returns the index after it. `out` must have
    /// [`TEXT_SLACK`] bytes from `pos`.
    #[inline(always)]
    pub fn write_digits(&self, out: &mut [u8], pos: usize) -> usize {
        let len = usize::from(self.raw[0]);
        let (dot, lead) = match self.raw[1] {
            UNMARKED => marks(self.as_bytes()),
            dot => (usize::from(dot), usize::from(self.raw[2])),
        };
        if lead == len {
            out[pos] = b'0';
            return pos + 1;
        }
        // One or two fixed 16-byte copies (the integer digits, then the fraction over the `.`)
        // when they stay inside the block; else byte by byte.
        const REACH: usize = TEXT_CAP - 16;
        if lead > dot || dot == len {
            if lead <= REACH {
                out[pos..pos + 16].copy_from_slice(&self.raw[HEAD + lead..HEAD + lead + 16]);
                return pos + len - lead;
            }
        } else if dot < REACH {
            let mid = pos + dot - lead;
            out[pos..pos + 16].copy_from_slice(&self.raw[HEAD + lead..HEAD + lead + 16]);
            out[mid..mid + 16].copy_from_slice(&self.raw[HEAD + dot + 1..HEAD + dot + 17]);
            return mid + len - dot - 1;
        }
        let mut end = pos;
        for &c in &self.raw[HEAD + lead..HEAD + len] {
            out[end] = c;
            end += usize::from(c != b'.');
        }
        end
    }
}

/// Room a [`Text::write`] or [`Text::write_digits`] needs after its position.
pub const TEXT_SLACK: usize = 32;

/// `dot` of a [`Text`] whose marks were not found when it was made.
const UNMARKED: u8 = u8::MAX;

/// A text's `dot` and `lead` (see [`Text`]), byte by byte.
fn marks(bytes: &[u8]) -> (usize, usize) {
    let len = bytes.len();
    let dot = bytes.iter().position(|&c| c == b'.').unwrap_or(len);
    let lead = bytes
        .iter()
        .position(|&c| c != b'0' && c != b'.')
        .unwrap_or(len);
    (dot, lead)
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The high bit of each byte of `x` that is zero, exactly (no borrow between bytes).
#[inline(always)]
fn zero_bytes(x: u64) -> u64 {
    !(((x & !HIGH).wrapping_add(!HIGH)) | x) & HIGH
}

impl PartialEq for Text {
    fn eq(&self, other: &Text) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Text {}

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

/// One side of a book. The texts live in `texts`, a slab indexed by slot that never moves; the
/// order is kept one of two ways. Once a snapshot has shown the side's tick, in `grid`
/// ([`grid::Grid`]): each price's slot at its tick, so a change is an index and a store. Before
/// that, or when the prices spread too far for a window: in `order`, (key, slot) sorted by key
/// with the best *last*, the key being the price (asks: negated, so both sides ascend toward
/// the best); a level changed in place writes its slot, one added or deleted shifts 16-byte
/// entries, and only on the shorter side of it (a ring buffer).
#[derive(Default, Debug)]
struct Side {
    grid: Grid,
    /// The sorted levels while the grid is off (empty while it is on).
    order: VecDeque<(i64, u32)>,
    texts: Vec<(Text, Text)>,
    /// Slots of `texts` no level uses.
    free: Vec<u32>,
}

impl Side {
    #[inline]
    fn set(&mut self, key: i64, level: &TextLevel) {
        if self.grid.on() {
            self.set_grid(key, level);
        } else {
            self.set_below(key, level, usize::MAX);
        }
    }

    /// Sets the level at `key` in the grid (which is on).
    #[inline(always)]
    fn set_grid(&mut self, key: i64, level: &TextLevel) {
        match self.grid.locate(key) {
            Locate::At(i) => match (self.grid.get(i), level.qty != 0) {
                (Some(slot), true) => {
                    self.texts[slot as usize] = (level.price_text, level.qty_text);
                }
                (Some(_), false) => {
                    if let Some(slot) = self.grid.remove(i) {
                        self.free.push(slot);
                    }
                }
                (None, true) => {
                    let slot = self.slot(level);
                    self.grid.insert(i, slot);
                }
                (None, false) => {}
            },
            // Every level is inside the window, on its grid: nothing to delete there.
            _ if level.qty == 0 => {}
            _ => self.regrid(key, level),
        }
    }

    /// Adds the level at `key`, outside the window or off its grid: the window is placed
    /// anew over every level and `key` (the tick refined if need be), or, when they no longer
    /// fit one, the side is kept sorted from now on.
    #[cold]
    #[inline(never)]
    fn regrid(&mut self, key: i64, level: &TextLevel) {
        let tick = self.grid.tick();
        self.grid.drain_into(&mut self.order);
        if self.grid.place(&self.order, Some(key), tick) {
            self.order.clear();
            if let Locate::At(i) = self.grid.locate(key) {
                let slot = self.slot(level);
                self.grid.insert(i, slot);
                return;
            }
            // Not reached (the window was placed over `key`); kept sorted if it were.
            self.grid.drain_into(&mut self.order);
        }
        self.set_below(key, level, usize::MAX);
    }

    /// Where `key` is or would go, knowing it is below index `hi`. Most changes land near
    /// the touch or just below the last level set: the `WINDOW` entries below `hi` are
    /// counted without branches (independent loads, no chain of dependent ones as in a
    /// binary search); a key below them is searched for in one or both halves of the ring.
    #[inline(always)]
    fn search(&self, key: i64, hi: usize) -> Result<usize, usize> {
        const WINDOW: usize = 16;
        let (a, b) = self.order.as_slices();
        let hi = hi.min(self.order.len());
        let window = match hi.checked_sub(WINDOW) {
            Some(lo) if lo >= a.len() => b.get(lo - a.len()..hi - a.len()).map(|w| (lo, w)),
            Some(lo) if hi <= a.len() => a.get(lo..hi).map(|w| (lo, w)),
            _ => None,
        };
        if let Some((lo, w)) = window {
            if w[0].0 <= key {
                let i = lo + w.iter().map(|l| usize::from(l.0 < key)).sum::<usize>();
                return match self.order.get(i) {
                    Some(l) if i < hi && l.0 == key => Ok(i),
                    _ => Err(i),
                };
            }
        }
        let i = match b.first() {
            Some(first) if hi > a.len() && first.0 <= key => {
                a.len() + b[..hi - a.len()].partition_point(|l| l.0 < key)
            }
            _ => a[..hi.min(a.len())].partition_point(|l| l.0 < key),
        };
        match self.order.get(i) {
            Some(l) if i < hi && l.0 == key => Ok(i),
            _ => Err(i),
        }
    }

    /// Sets the level at `key`, known to be below index `hi`; returns where it is or was (every
    /// key below it stays below that index).
    #[inline(always)]
    fn set_below(&mut self, key: i64, level: &TextLevel, hi: usize) -> usize {
        let found = self.search(key, hi);
        let at = match found {
            Ok(i) | Err(i) => i,
        };
        // The texts go straight from the level to their slot (no copy on the way).
        match (found, level.qty != 0) {
            (Ok(i), true) => {
                let slot = &mut self.texts[self.order[i].1 as usize];
                *slot = (level.price_text, level.qty_text);
            }
            (Ok(i), false) => {
                if let Some((_, slot)) = self.order.remove(i) {
                    self.free.push(slot);
                }
            }
            (Err(i), true) => {
                let slot = self.slot(level);
                self.order.insert(i, (key, slot));
            }
            (Err(_), false) => {}
        }
        at
    }

    /// Sets `levels` in turn. A venue sends a side's levels best first, so each key is
    /// usually below the last one set: the search then covers only the entries below it.
    #[inline]
    fn set_all(&mut self, levels: &[TextLevel], key: impl Fn(i64) -> i64) {
        let mut rest = levels;
        while self.grid.on() {
            let Some((l, tail)) = rest.split_first() else {
                return;
            };
            self.set_grid(key(l.price), l);
            rest = tail;
        }
        let mut last: Option<(i64, usize)> = None;
        for l in rest {
            let k = key(l.price);
            let hi = match last {
                Some((prev, at)) if k < prev => at,
                _ => usize::MAX,
            };
            last = Some((k, self.set_below(k, l, hi)));
        }
    }

    #[inline]
    fn slot(&mut self, level: &TextLevel) -> u32 {
        match self.free.pop() {
            Some(slot) => {
                self.texts[slot as usize] = (level.price_text, level.qty_text);
                slot
            }
            None => {
                self.texts.push((level.price_text, level.qty_text));
                (self.texts.len() - 1) as u32
            }
        }
    }

    fn clear(&mut self) {
        self.grid.clear();
        self.order.clear();
        self.texts.clear();
        self.free.clear();
    }

    fn best_first(&self) -> impl Iterator<Item = (&Text, &Text)> {
        let slots = if self.grid.on() {
            Slots::Grid(self.grid.iter())
        } else {
            Slots::Sorted(self.order.iter().rev())
        };
        slots.map(|slot| {
            let (p, q) = &self.texts[slot as usize];
            (p, q)
        })
    }

    /// The side made of `levels` alone (a snapshot): one sort instead of an insert each.
    fn load(&mut self, levels: &[TextLevel], key: impl Fn(i64) -> i64) {
        self.clear();
        self.texts.reserve(levels.len());
        self.order.reserve(levels.len());
        for l in levels.iter().filter(|l| l.qty != 0) {
            self.texts.push((l.price_text, l.qty_text));
            let slot = (self.texts.len() - 1) as u32;
            self.order.push_back((key(l.price), slot));
        }
        // Slots ascend in message order: of two levels at one price the later one stays, as
        // one `set` after another.
        let order = self.order.make_contiguous();
        order.sort_unstable();
        let mut kept = 0;
        for i in 0..order.len() {
            if i + 1 < order.len() && order[i + 1].0 == order[i].0 {
                self.free.push(order[i].1);
            } else {
                order[kept] = order[i];
                kept += 1;
            }
        }
        self.order.truncate(kept);
        // The tick is learned afresh from each snapshot.
        if self.grid.place(&self.order, None, 0) {
            self.order.clear();
        }
    }

    fn truncate(&mut self, depth: usize) {
        while self.grid.len() > depth {
            if let Some(slot) = self.grid.pop_worst() {
                self.free.push(slot);
            }
        }
        let excess = self.order.len().saturating_sub(depth);
        self.free
            .extend(self.order.drain(..excess).map(|(_, slot)| slot));
    }

    fn len(&self) -> usize {
        self.grid.len() + self.order.len()
    }

    fn best(&self) -> Option<i64> {
        match self.grid.best() {
            Some(best) => Some(best),
            None => self.order.back().map(|l| l.0),
        }
    }
}

/// A side's text slots best first, from whichever of its two orders holds them (one branch a
/// level, where chaining the two iterators measured slower on Kraken's checksum).
enum Slots<'a> {
    Grid(grid::BestFirst<'a>),
    Sorted(std::iter::Rev<std::collections::vec_deque::Iter<'a, (i64, u32)>>),
}

impl Iterator for Slots<'_> {
    type Item = u32;

    #[inline]
    fn next(&mut self) -> Option<u32> {
        match self {
            Slots::Grid(grid) => grid.next(),
            Slots::Sorted(sorted) => sorted.next().map(|&(_, slot)| slot),
        }
    }
}

/// `[["price","size",...], ..]` appended to `out`: each level's first two strings (OKX sends
/// four, Kraken three or four; the rest is skipped). Levels written compactly, as both venues
/// do, take [`fast_text_level`]; anything else the general path, which gives the errors.
///
/// `marked`: find each text's checksum-form marks now (Kraken, whose checksum needs them on
/// every message) rather than when first needed.
pub(crate) fn text_levels(
    s: &mut Scan<'_>,
    out: &mut Vec<TextLevel>,
    marked: bool,
) -> Result<(), DecodeError> {
    // One loop compiled for each (the flag is a constant inside).
    if marked {
        levels_loop::<true>(s, out)
    } else {
        levels_loop::<false>(s, out)
    }
}

#[inline(always)]
fn levels_loop<const MARKED: bool>(
    s: &mut Scan<'_>,
    out: &mut Vec<TextLevel>,
) -> Result<(), DecodeError> {
    s.expect(b'[', "'['")?;
    if s.peek()? == b']' {
        s.i += 1;
        return Ok(());
    }
    loop {
        match fast_text_level(s.b, s.i, MARKED, out) {
            // The usual separator straight away, the rest through `more`.
            Some(end) if s.b.get(end) == Some(&b',') => {
                s.i = end + 1;
                continue;
            }
            Some(end) => s.i = end,
            None => out.push(text_level(s)?),
        }
        if !s.more(b']')? {
            return Ok(());
        }
    }
}

/// One level, `["price","size",..]`, the general way: blanks allowed, anything after the size
/// skipped, the errors named.
fn text_level(s: &mut Scan<'_>) -> Result<TextLevel, DecodeError> {
    s.expect(b'[', "'['")?;
    let price = s.string()?;
    s.expect(b',', "','")?;
    let size = s.string()?;
    let level = TextLevel::parse(price, size)?;
    while s.more(b']')? {
        s.skip_value()?;
    }
    Ok(level)
}

/// `["price","size"(,"string")*]` at `b[i]`, without blanks or escapes: the level (values by
/// the SWAR decimal parser, which agrees with `rt_core::parse_units`) pushed on `out`, and the
/// index after `]`; `None` (nothing pushed) for anything else. Pushed here rather than
/// returned: an 80-byte level returned in an `Option` is copied once more on its way.
#[inline(always)]
fn fast_text_level(b: &[u8], i: usize, marked: bool, out: &mut Vec<TextLevel>) -> Option<usize> {
    // The same start as Binance's `scan::fast_level`, written out: shared through a helper
    // returning both ends, it measured ~10% slower here.
    if *b.get(i)? != b'[' {
        return None;
    }
    let (price, j) = text_decimal(b, i + 1)?;
    if *b.get(j)? != b',' {
        return None;
    }
    let (qty, k) = text_decimal(b, j + 1)?;
    let level = TextLevel {
        price,
        qty,
        price_text: Text::from_frame(b, i + 2, j - 1, marked)?,
        qty_text: Text::from_frame(b, j + 2, k - 1, marked)?,
    };
    // OKX's tail, `,"0","<orders>"]`, in two loads; anything else string by string.
    if let (Some(tail), Some(orders)) = (load8(b, k), load8(b, k + 6)) {
        let n = digit_run(orders);
        if tail & 0xFFFF_FFFF_FFFF == u64::from_le_bytes(*b",\"0\",\"\0\0") && n > 0 && n < 7 {
            let close = orders >> (8 * n) & 0xFFFF;
            if close == u64::from(u16::from_le_bytes(*b"\"]")) {
                out.push(level);
                return Some(k + 8 + n);
            }
        }
    }
    let mut m = k;
    loop {
        match *b.get(m)? {
            b']' => {
                out.push(level);
                return Some(m + 1);
            }
            b',' if *b.get(m + 1)? == b'"' => m = string_end(b, m + 2)? + 1,
            _ => return None,
        }
    }
}

/// The index of the quote closing a string whose text starts at `b[i]`; `None` at an escape.
#[inline(always)]
fn string_end(b: &[u8], i: usize) -> Option<usize> {
    let end = quote_or_escape(b, i);
    (*b.get(end)? == b'"').then_some(end)
}

/// Both sides of one instrument's book, with each level's text.
#[derive(Default, Debug)]
pub struct TextBook {
    bids: Side,
    asks: Side,
}

impl TextBook {
    pub fn clear(&mut self) {
        self.bids.clear();
        self.asks.clear();
    }

    /// The book made of a snapshot's levels.
    pub fn load(&mut self, bids: &[TextLevel], asks: &[TextLevel]) {
        self.bids.load(bids, |p| p);
        self.asks.load(asks, |p| -p);
    }

    /// Sets (or, with a zero size, deletes) one level.
    #[inline]
    pub fn set(&mut self, bid: bool, level: &TextLevel) {
        if bid {
            self.bids.set(level.price, level);
        } else {
            self.asks.set(-level.price, level);
        }
    }

    /// Sets (or deletes) every level of one side of a message, in order: the same as one
    /// [`TextBook::set`] after another.
    pub fn set_levels(&mut self, bid: bool, levels: &[TextLevel]) {
        if bid {
            self.bids.set_all(levels, |p| p);
        } else {
            self.asks.set_all(levels, |p| -p);
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
        (self.bids.len(), self.asks.len())
    }

    /// Best bid and ask prices in units, if any.
    pub fn top(&self) -> (Option<i64>, Option<i64>) {
        (self.bids.best(), self.asks.best().map(|k| -k))
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

/// Up to this many instruments, a name is found by comparing it with each.
const FEW: usize = 16;

/// Every instrument's book on one connection of a checksummed venue (OKX, Kraken): the rule
/// both follow. A snapshot makes a book valid; a checksum mismatch or a sequence gap makes it
/// invalid until the next snapshot, and the messages meanwhile are not applied.
#[derive(Default, Debug)]
pub struct CheckedBooks {
    index: HashMap<Vec<u8>, usize>,
    /// Names as received, by book id (beside `names`, their text for people).
    raw_names: Vec<Vec<u8>>,
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
        let id = match self.find(name) {
            Some(id) => id,
            None => {
                let id = self.books.len();
                self.index.insert(name.to_vec(), id);
                self.raw_names.push(name.to_vec());
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
            book.book.set_levels(true, msg.bids);
            book.book.set_levels(false, msg.asks);
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
    /// The book of `name`: a few instruments (a connection's usual load) are compared in
    /// turn, which beats hashing the name; many are looked up.
    #[inline]
    fn find(&self, name: &[u8]) -> Option<usize> {
        if self.raw_names.len() <= FEW {
            self.raw_names.iter().position(|n| n.as_slice() == name)
        } else {
            self.index.get(name).copied()
        }
    }

    /// Marks the book of `name` invalid (a stale book, a resubscription): its messages are
    /// dropped until the next snapshot. `false` when the instrument was never seen.
    pub fn invalidate(&mut self, name: &[u8]) -> bool {
        match self.find(name) {
            Some(id) => {
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

    /// A book against a simple model (a sorted map per side), over a long run of messages
    /// (batches of one side's levels, mostly best first as venues send them, sometimes in any
    /// order or one `set` at a time) at prices from `price` (of the step and a random word),
    /// with truncations and snapshot reloads between: the window is placed and moved, the
    /// ring wraps, slots are reused, and the order and texts stay the model's. Returns how
    /// many steps from the second snapshot on (the first may find no bids) ended with the
    /// bid side on its grid.
    fn agrees_with_a_sorted_map(price: &dyn Fn(u32, u64) -> String) -> u32 {
        use std::collections::BTreeMap;
        type Model = BTreeMap<i64, (String, String)>;
        let mut book = TextBook::default();
        let mut model: [Model; 2] = Default::default();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let text = |t: &Text| String::from_utf8_lossy(t.as_bytes()).into_owned();
        let side = |it: &mut dyn Iterator<Item = (&Text, &Text)>| {
            it.map(|(p, q)| (text(p), text(q))).collect::<Vec<_>>()
        };
        let mut gridded = 0;
        for step in 0..4_000u32 {
            let r = next();
            let bid = r & 1 == 0;
            let mut batch: Vec<TextLevel> = (0..1 + (r >> 4) % 30)
                .map(|_| {
                    let r = next();
                    let qty = if r % 3 == 0 { 0 } else { (r >> 24) % 1000 };
                    level(&price(step, r >> 8), &format!("0.{qty:03}"))
                })
                .collect();
            if (r >> 40) % 4 != 0 {
                batch.sort_by_key(|l| if bid { -l.price } else { l.price });
            }
            if (r >> 44) % 8 == 0 {
                for l in &batch {
                    book.set(bid, l);
                }
            } else {
                book.set_levels(bid, &batch);
            }
            let side_model = &mut model[usize::from(!bid)];
            for l in &batch {
                if l.qty == 0 {
                    side_model.remove(&l.price);
                } else {
                    side_model.insert(l.price, (text(&l.price_text), text(&l.qty_text)));
                }
            }
            if step % 197 == 0 {
                let depth = 50 + (next() % 200) as usize;
                book.truncate(depth);
                while model[0].len() > depth {
                    model[0].pop_first();
                }
                while model[1].len() > depth {
                    model[1].pop_last();
                }
            }
            if step % 801 == 0 {
                // Reload as a snapshot of the model's own levels (one price twice: the later
                // one stays).
                let levels = |m: &Model| m.values().map(|(p, q)| level(p, q)).collect::<Vec<_>>();
                let mut bids = levels(&model[0]);
                if let Some(first) = bids.first().copied() {
                    bids.insert(0, level(&text(&first.price_text), "9"));
                }
                book.load(&bids, &levels(&model[1]));
            }
            if step % 50 == 0 {
                assert_eq!(
                    side(&mut book.bids()),
                    model[0].values().rev().cloned().collect::<Vec<_>>(),
                    "step {step}"
                );
                assert_eq!(book.top().0, model[0].keys().next_back().copied());
                assert_eq!(book.top().1, model[1].keys().next().copied());
            }
            gridded += u32::from(step >= 801 && book.bids.grid.on());
        }
        assert!(model[0].len() > 100 && model[1].len() > 100);
        assert_eq!(
            side(&mut book.bids()),
            model[0].values().rev().cloned().collect::<Vec<_>>()
        );
        assert_eq!(
            side(&mut book.asks()),
            model[1].values().cloned().collect::<Vec<_>>()
        );
        assert_eq!(book.depth(), (model[0].len(), model[1].len()));
        gridded
    }

    /// Prices on one tick, spread like OKX's: on the grid from the first snapshot on.
    #[test]
    fn the_book_agrees_with_a_sorted_map_on_its_grid() {
        let gridded = agrees_with_a_sorted_map(&|_, r| format!("{}.5", 1000 + r % 500));
        assert_eq!(gridded, 3_199);
    }

    /// Prices that move (the window is placed again above and below) and later come with a
    /// finer tick (the grid refined).
    #[test]
    fn the_book_agrees_with_a_sorted_map_as_prices_move_and_the_tick_narrows() {
        let gridded = agrees_with_a_sorted_map(&|step, r| {
            let base = 1000 + i64::from(step) / 3 - 400 * i64::from(step > 2_500);
            let int = base + (r % 60) as i64;
            match step {
                0..=1_499 => format!("{int}"),
                _ => format!("{int}.{}5", (r >> 10) % 10),
            }
        });
        assert_eq!(gridded, 3_199);
    }

    /// Prices too far apart for a window: kept sorted until a snapshot fits one again (here
    /// after the far bids, the worst, were truncated).
    #[test]
    fn the_book_agrees_with_a_sorted_map_when_prices_spread_too_far() {
        let gridded = agrees_with_a_sorted_map(&|step, r| match step {
            1_000..=1_999 if r % 10 == 0 => format!("{}.5", 1000 + r % 1_000_000),
            _ => format!("{}.5", 2_000_000 + r % 500),
        });
        assert!((1_000..3_000).contains(&gridded), "{gridded}");
    }

    /// Prices whose tick is so large that no window over them fits in an i64 (a case the
    /// fuzzer found): the side stays sorted, and reads as set.
    #[test]
    fn prices_too_far_apart_for_any_window_stay_sorted() {
        let mut book = TextBook::default();
        let asks = [level("9000000001", "1")];
        book.load(&[level("9000000000", "1"), level("4500000000", "2")], &asks);
        assert!(!book.bids.grid.on());
        book.set(true, &level("1", "3"));
        let bids: Vec<String> = book
            .bids()
            .map(|(p, _)| String::from_utf8_lossy(p.as_bytes()).into_owned())
            .collect();
        assert_eq!(bids, ["9000000000", "4500000000", "1"]);
        assert_eq!(
            book.top(),
            (Some(900_000_000_000_000_000), Some(900_000_000_100_000_000))
        );
    }

    /// Kraken's checksum form and the verbatim text, written with fixed-size copies, against
    /// the plain definition, for texts made both ways (from a frame and from bytes).
    #[test]
    fn texts_write_verbatim_and_in_checksum_form() {
        fn digits(text: &[u8]) -> Vec<u8> {
            let kept: Vec<u8> = text.iter().copied().filter(|&c| c != b'.').collect();
            let start = kept.iter().position(|&c| c != b'0').unwrap_or(kept.len());
            if start == kept.len() {
                b"0".to_vec()
            } else {
                kept[start..].to_vec()
            }
        }
        let cases = [
            "0",
            "0.0",
            "0.00000000",
            "5",
            "10",
            "100.5",
            "354.15000000",
            "0.000022900",
            "0.00000500",
            "13355.87450757",
            "1234567890.12345678",
            "00.10",
            "0.123456789012",
            "12345678901.000000000000000",
            "0.000000000000000001",
            "00000000000000.5",
            "1234567890123.5",
        ];
        for case in cases {
            let framed = format!("[\"{case}\",\"{case}\",\"0.5.9\"]");
            let f = framed.as_bytes();
            let marked = Text::from_frame(f, 2, 2 + case.len(), true).unwrap();
            let unmarked = Text::from_frame(f, 2, 2 + case.len(), false).unwrap();
            let new = Text::new(case.as_bytes(), "t").unwrap();
            for t in [marked, unmarked, new] {
                assert_eq!(t.as_bytes(), case.as_bytes());
                let mut out = vec![b'x'; 8 + TEXT_SLACK];
                let end = t.write_digits(&mut out, 3);
                assert_eq!(&out[3..end], digits(case.as_bytes()), "{case}");
                assert_eq!(&out[..3], b"xxx");
                let end = t.write(&mut out, 1);
                assert_eq!(&out[1..end], case.as_bytes());
            }
        }
        assert!(Text::new(&[b'1'; TEXT_CAP + 1], "t").is_err());
        assert!(Text::from_frame(&[b'1'; 64], 3, 4 + TEXT_CAP, true).is_none());
    }

    /// Every level of the OKX and Kraken captures: the fast path reads what the general one
    /// does (values by `rt_core::parse_units`, texts verbatim), and takes nearly all of them.
    #[test]
    fn the_fast_level_path_agrees_with_the_general_one_on_the_captures() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data");
        let mut fast = 0;
        let mut total = 0;
        for file in [
            "okx/cryptofeed_OKX.ws.1.0",
            "kraken/cryptofeed_KRAKEN.ws.50.0",
        ] {
            let mut frames = crate::FrameReader::open(&root.join(file)).unwrap();
            while let Some(frame) = frames.next_frame() {
                let b = frame.unwrap().bytes;
                for i in 0..b.len() {
                    if b[i] != b'[' || b.get(i + 1) != Some(&b'"') {
                        continue;
                    }
                    let mut s = Scan { b, i };
                    let general = text_level(&mut s);
                    total += 1;
                    let mut out = Vec::new();
                    if let Some(end) = fast_text_level(b, i, file.starts_with('k'), &mut out) {
                        assert_eq!(out.len(), 1);
                        assert_eq!(Some(out[0]), general.ok());
                        assert_eq!(end, s.i);
                        fast += 1;
                    } else {
                        assert!(out.is_empty());
                    }
                }
            }
        }
        assert!(
            fast > 12_000 && fast * 100 > total * 95,
            "{fast} of {total}"
        );
    }
}
