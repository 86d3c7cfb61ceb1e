//! The L2 order book: aggregated size per price level, both sides, with fast best-price access.
//!
//! Each side keeps the levels near its best price in a *window*: an array indexed by tick,
//! [`WINDOW`] ticks wide, with a bitmap of the occupied ticks. A change there is an index
//! computation and a store; the best price is an index, and when it is emptied the next one is
//! found in the bitmap 64 ticks at a time. The side learns its tick from the prices it holds
//! (the greatest common divisor of their distances; a later price off that grid refines it),
//! so no caller passes one. Levels further from the best than the window reaches (and all of
//! them before the tick is known) sit in a short list of sorted blocks, the *far* levels.
//!
//! The far blocks hold at most [`BLOCK`] levels each, ordered so that the best price is at the
//! *end* of the last block (bids ascending, asks descending). A change finds its block by
//! bisecting the block heads, bisects inside the block, and an insert or
//! delete moves at most one block's worth of levels. Emptied blocks are kept for reuse, so a
//! book in steady state does not allocate.
//!
//! When the best price moves above the window, the window moves up and the levels it leaves
//! go to the far blocks (at their best end); when the window empties, it moves down to the
//! best far level and takes the far levels it now covers. Both are rare and cost O(window).
//! Measured on real Binance diffs: `benches/book.rs`.

use crate::event::Level;
use crate::types::{Price, Qty, Side};

/// An integrity problem found by [`OrderBook::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BookError {
    #[error("crossed book: best bid {bid} >= best ask {ask}")]
    Crossed { bid: Price, ask: Price },
    #[error("{side:?} level at {price} has non-positive size {qty}")]
    BadSize { side: Side, price: Price, qty: Qty },
    #[error("{side:?} levels are not strictly ordered at {price}")]
    Unordered { side: Side, price: Price },
}

/// Most levels in one block; a fuller block is split in two. 16 rather than 32: an insert or
/// delete moves half as many bytes, for one more bisection step over the block heads.
pub const BLOCK: usize = 16;
/// A block that falls below this is merged with a neighbour when they fit in one.
const MERGE_BELOW: usize = BLOCK / 4;

/// One side of the book: blocks ascending by `key` (best at the end), none empty, and the key of
/// each block's first level.
#[derive(Debug, Clone, Default)]
struct Ladder {
    blocks: Vec<Vec<Level>>,
    firsts: Vec<i64>,
    len: usize,
    /// Emptied blocks, kept with their capacity for reuse.
    spare: Vec<Vec<Level>>,
    /// XORed into a price to give its key: 0 for bids; all ones for asks, which sort by
    /// descending price (`!price` reverses the order and, unlike negation, cannot overflow).
    mask: i64,
}

impl Ladder {
    fn new(descending: bool) -> Ladder {
        Ladder {
            mask: if descending { !0 } else { 0 },
            ..Ladder::default()
        }
    }

    #[inline(always)]
    fn key(&self, price: Price) -> i64 {
        price.0 ^ self.mask
    }

    /// The block that holds `key` or would take it: the last block whose first key is not
    /// greater, or block 0. A branch-free bisection: far changes land anywhere in the far
    /// levels, and a scan from the best end mostly mispredicted its way to the bisection.
    #[inline]
    fn block_of(&self, key: i64) -> usize {
        self.firsts.partition_point(|&x| x <= key).saturating_sub(1)
    }

    #[inline]
    fn find(&self, price: Price) -> Option<(usize, Result<usize, usize>)> {
        if self.blocks.is_empty() {
            return None;
        }
        let key = self.key(price);
        let b = self.block_of(key);
        let mask = self.mask;
        let found = self.blocks[b].binary_search_by(|l| (l.price.0 ^ mask).cmp(&key));
        Some((b, found))
    }

    fn new_block(&mut self) -> Vec<Level> {
        self.spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(BLOCK + 1))
    }

    fn drop_block(&mut self, b: usize) {
        let mut block = self.blocks.remove(b);
        self.firsts.remove(b);
        block.clear();
        self.spare.push(block);
    }

    #[inline]
    fn set(&mut self, price: Price, qty: Qty) {
        let Some((b, found)) = self.find(price) else {
            if !qty.is_zero() {
                let mut block = self.new_block();
                block.push(Level { price, qty });
                self.blocks.push(block);
                self.firsts.push(self.key(price));
                self.len = 1;
            }
            return;
        };
        match (found, qty.is_zero()) {
            (Ok(i), false) => self.blocks[b][i].qty = qty,
            (Err(_), true) => {}
            (Ok(i), true) => {
                self.len -= 1;
                let mask = self.mask;
                let block = &mut self.blocks[b];
                block.remove(i);
                if let Some(first) = block.first() {
                    if i == 0 {
                        self.firsts[b] = first.price.0 ^ mask;
                    }
                    if block.len() < MERGE_BELOW {
                        self.merge_around(b);
                    }
                } else {
                    self.drop_block(b);
                }
            }
            (Err(i), false) => {
                self.len += 1;
                let key = self.key(price);
                let block = &mut self.blocks[b];
                block.insert(i, Level { price, qty });
                if i == 0 {
                    self.firsts[b] = key;
                }
                if block.len() > BLOCK {
                    self.split(b);
                }
            }
        }
    }

    /// Splits a full block in two halves.
    fn split(&mut self, b: usize) {
        let mut upper = self.new_block();
        upper.extend_from_slice(&self.blocks[b][BLOCK / 2..]);
        self.blocks[b].truncate(BLOCK / 2);
        let first = self.key(upper[0].price);
        self.blocks.insert(b + 1, upper);
        self.firsts.insert(b + 1, first);
    }

    /// Merges a small block into a neighbour when both fit in one block, so that the number of
    /// blocks stays proportional to the number of levels.
    fn merge_around(&mut self, b: usize) {
        let len = self.blocks[b].len();
        if b + 1 < self.blocks.len() && len + self.blocks[b + 1].len() <= BLOCK {
            let (left, right) = self.blocks.split_at_mut(b + 1);
            left[b].extend_from_slice(&right[0]);
            self.drop_block(b + 1);
        } else if b > 0 && self.blocks[b - 1].len() + len <= BLOCK {
            let (left, right) = self.blocks.split_at_mut(b);
            left[b - 1].extend_from_slice(&right[0]);
            self.drop_block(b);
        }
    }

    fn qty_at(&self, price: Price) -> Qty {
        match self.find(price) {
            Some((b, Ok(i))) => self.blocks[b][i].qty,
            _ => Qty::ZERO,
        }
    }

    #[inline]
    fn best(&self) -> Option<Level> {
        self.blocks.last().and_then(|b| b.last()).copied()
    }

    /// Removes and returns the best level.
    fn pop_best(&mut self) -> Option<Level> {
        let b = self.blocks.len().checked_sub(1)?;
        let level = self.blocks[b].pop()?;
        self.len -= 1;
        if self.blocks[b].is_empty() {
            self.drop_block(b);
        }
        Some(level)
    }

    fn clear(&mut self) {
        while let Some(mut block) = self.blocks.pop() {
            block.clear();
            self.spare.push(block);
        }
        self.firsts.clear();
        self.len = 0;
    }

    /// Levels from the best outwards.
    fn iter(&self) -> impl Iterator<Item = &Level> + '_ {
        self.blocks.iter().rev().flat_map(|b| b.iter().rev())
    }
}

/// Ticks in a side's window: 65536 levels of 16 bytes (1 MiB) and an 8 KiB bitmap per side.
/// Real books are sparse at their tick (spot BTCUSDT at 0.01: about 40 levels in 2048 ticks),
/// so a narrow window misses most changes: on the bundled capture 2048 ticks caught 20% of
/// the level changes and cut the cost per change by 10%; 32768 ticks cut it by 2.5x. The
/// window's misses make the p99: a far change costs 3-5x a window change, and with 32768 ticks
/// (a quarter above the best) 10% of the capture's changes were far and 11% of all changes took
/// over 60 ns; with 65536 ticks (an eighth above the best) about 6% and 5% (`benches/book.rs`).
/// 131072 ticks did no better.
pub const WINDOW: usize = 65536;
const WORDS: usize = WINDOW / 64;
/// Where the best level sits in a window placed around it: an eighth of the window above it
/// is left for better prices (8192 ticks, as before the window grew; the window moves, an
/// O(window) step, when the best passes them: with a sixteenth, 4096 ticks, the bench's p99.9
/// of batches rose from ~60 to ~370 ns), the rest is for the levels behind the best, where the
/// changes are.
const BEST_AT: usize = WINDOW - WINDOW / 8;

/// Where a key falls against the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    At(usize),
    Below,
    Above,
    OffGrid,
}

/// The levels near a side's best price, indexed by tick (keys as in [`Ladder`]: larger is
/// better). Empty until the side knows its tick.
#[derive(Debug, Clone, Default)]
struct Window {
    /// The grid's step in key units; 0 until learned.
    tick: i64,
    /// `floor((2^64 - 1) / tick)`: the index of a key inside the window is the high word of
    /// its product with the distance, at most one below the exact quotient (see `locate`).
    recip: u64,
    /// The key of slot 0 (on the grid).
    lo: i64,
    /// `WINDOW` levels once the tick is known; a zero size is an empty slot.
    slots: Vec<Level>,
    /// Bit `i % 64` of word `i / 64`: slot `i` holds a level.
    bits: Vec<u64>,
    len: usize,
    /// The best occupied slot (when `len > 0`).
    top: usize,
}

impl Window {
    #[inline(always)]
    fn enabled(&self) -> bool {
        self.tick > 0
    }

    /// The slot of `key`, or where it falls.
    #[inline(always)]
    fn locate(&self, key: i64) -> Slot {
        let Some(d) = key.checked_sub(self.lo) else {
            return if key < self.lo {
                Slot::Below
            } else {
                Slot::Above
            };
        };
        if d < 0 {
            return Slot::Below;
        }
        // WINDOW * tick cannot overflow: the tick is a distance between two i64 keys divided by
        // at least 1, and a window that would not fit is never placed (see `place`).
        if d >= WINDOW as i64 * self.tick {
            return Slot::Above;
        }
        // 0 <= d < 2^63: with recip = floor((2^64 - 1) / tick), d * recip / 2^64 lies in
        // (d / tick - 1, d / tick), so its floor is the quotient or one below it. One multiply
        // instead of the float round trip (and its saturating conversion) this replaced.
        let mut q = ((d as u64 as u128 * self.recip as u128) >> 64) as i64;
        let mut r = d - q * self.tick;
        if r >= self.tick {
            q += 1;
            r -= self.tick;
        }
        if r != 0 {
            return Slot::OffGrid;
        }
        Slot::At(q as usize)
    }

    #[inline(always)]
    fn occupied(&self, i: usize) -> bool {
        self.bits[i / 64] & (1 << (i % 64)) != 0
    }

    /// Sets slot `i` (a zero size empties it); keeps `len` and `top`.
    #[inline(always)]
    fn set(&mut self, i: usize, level: Level) {
        let was = self.occupied(i);
        if level.qty.is_zero() {
            if was {
                self.bits[i / 64] &= !(1 << (i % 64));
                self.len -= 1;
                if i == self.top && self.len > 0 {
                    self.top = self.below(i).unwrap_or(0);
                }
            }
        } else {
            self.slots[i] = level;
            if !was {
                self.bits[i / 64] |= 1 << (i % 64);
                if self.len == 0 || i > self.top {
                    self.top = i;
                }
                self.len += 1;
            }
        }
    }

    /// The highest occupied slot below `i`.
    #[inline]
    fn below(&self, i: usize) -> Option<usize> {
        let mut w = i / 64;
        let mut word = self.bits[w] & ((1u64 << (i % 64)) - 1);
        loop {
            if word != 0 {
                return Some(w * 64 + 63 - word.leading_zeros() as usize);
            }
            w = w.checked_sub(1)?;
            word = self.bits[w];
        }
    }

    /// Empties every slot (keeps the tick). A slot's level is read only while its bit is set,
    /// so clearing the bitmap is enough.
    fn clear(&mut self) {
        if self.len > 0 {
            for w in &mut self.bits {
                *w = 0;
            }
        }
        self.len = 0;
        self.top = 0;
    }

    /// The occupied slots, best first.
    fn iter(&self) -> WindowIter<'_> {
        let (word, bits) = if self.len == 0 {
            (0, 0)
        } else {
            let w = self.top / 64;
            let upto = self.top % 64;
            let mask = if upto == 63 {
                !0
            } else {
                (1u64 << (upto + 1)) - 1
            };
            (w, self.bits[w] & mask)
        };
        WindowIter {
            window: self,
            word,
            bits,
        }
    }
}

/// A window's levels from its best down.
struct WindowIter<'a> {
    window: &'a Window,
    word: usize,
    bits: u64,
}

impl<'a> Iterator for WindowIter<'a> {
    type Item = &'a Level;

    #[inline]
    fn next(&mut self) -> Option<&'a Level> {
        while self.bits == 0 {
            self.word = self.word.checked_sub(1)?;
            self.bits = self.window.bits[self.word];
        }
        let b = 63 - self.bits.leading_zeros() as usize;
        self.bits &= !(1 << b);
        Some(&self.window.slots[self.word * 64 + b])
    }
}

fn gcd(mut a: i64, mut b: i64) -> i64 {
    // Distances between keys: non-negative and below 2^63 here (checked by the callers).
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// One side of the book: the window near the best, the far levels beyond it. Every far level
/// is below the window (`key < window.lo`) while the window is enabled, and the window is empty
/// only when the whole side is.
#[derive(Debug, Clone)]
struct BookSide {
    window: Window,
    far: Ladder,
    mask: i64,
}

impl BookSide {
    fn new(descending: bool) -> BookSide {
        BookSide {
            window: Window::default(),
            far: Ladder::new(descending),
            mask: if descending { !0 } else { 0 },
        }
    }

    #[inline(always)]
    fn key(&self, price: Price) -> i64 {
        price.0 ^ self.mask
    }

    fn len(&self) -> usize {
        self.window.len + self.far.len
    }

    /// The common case inline (a price inside the window); everything else in `set_slow`.
    #[inline(always)]
    fn set(&mut self, price: Price, qty: Qty) {
        if self.window.enabled() {
            if let Slot::At(i) = self.window.locate(self.key(price)) {
                self.window.set(i, Level { price, qty });
                if self.window.len == 0 && self.far.len > 0 {
                    self.refill();
                }
                return;
            }
        }
        self.set_slow(price, qty);
    }

    #[inline(never)]
    fn set_slow(&mut self, price: Price, qty: Qty) {
        if !self.window.enabled() {
            self.far.set(price, qty);
            if self.far.len >= 2 && !qty.is_zero() {
                self.learn();
            }
            return;
        }
        let key = self.key(price);
        match self.window.locate(key) {
            Slot::At(i) => {
                self.window.set(i, Level { price, qty });
                if self.window.len == 0 && self.far.len > 0 {
                    self.refill();
                }
            }
            Slot::Below if self.window.len > 0 => self.far.set(price, qty),
            // An empty side: the window goes where the level is.
            Slot::Below | Slot::Above if qty.is_zero() => {}
            Slot::Below | Slot::Above => {
                self.place(key);
                self.set(price, qty);
            }
            Slot::OffGrid => {
                // A finer grid than learned: refine the tick, then place again.
                let d = key.abs_diff(self.window.lo);
                let tick = match i64::try_from(d) {
                    Ok(d) => gcd(self.window.tick, d),
                    Err(_) => 0,
                };
                self.regrid(tick);
                self.set(price, qty);
            }
        }
    }

    /// Learns the tick from the far levels and moves the window over them.
    fn learn(&mut self) {
        let Some(best) = self.far.best() else {
            return;
        };
        let top = self.key(best.price);
        let mut tick = 0;
        for l in self.far.iter() {
            match i64::try_from(top.abs_diff(self.key(l.price))) {
                Ok(d) => tick = gcd(tick, d),
                // Keys further apart than i64 holds: no window for such a side.
                Err(_) => return,
            }
        }
        self.regrid(tick);
    }

    /// Everything back into the far levels, then a window on a grid of `tick` (0: none)
    /// around the best.
    fn regrid(&mut self, tick: i64) {
        let levels: Vec<Level> = self.window.iter().copied().collect();
        self.window.clear();
        for l in levels {
            self.far.set(l.price, l.qty);
        }
        self.window.tick = 0;
        if tick <= 0 || tick.checked_mul(WINDOW as i64).is_none() {
            return;
        }
        self.window.tick = tick;
        self.window.recip = u64::MAX / tick as u64;
        if self.window.slots.len() != WINDOW {
            self.window.slots = vec![Level::new(Price::ZERO, Qty::ZERO); WINDOW];
            self.window.bits = vec![0; WORDS];
        }
        if let Some(best) = self.far.best() {
            let key = self.key(best.price);
            self.place(key);
        }
    }

    /// Moves the window so that `key` falls at [`BEST_AT`]: window levels below the new
    /// range go to the far levels, far levels inside it come in.
    fn place(&mut self, key: i64) {
        let tick = self.window.tick;
        let span = BEST_AT as i64 * tick;
        let Some(lo) = key.checked_sub(span) else {
            // So low a key that the window cannot sit under it: no window.
            self.regrid(0);
            return;
        };
        if lo.checked_add(WINDOW as i64 * tick).is_none() {
            self.regrid(0);
            return;
        }
        let levels: Vec<Level> = self.window.iter().copied().collect();
        self.window.clear();
        self.window.lo = lo;
        // Old window levels first (all above the far ones), best first.
        for l in levels {
            match self.window.locate(self.key(l.price)) {
                Slot::At(i) => self.window.set(i, l),
                _ => self.far.set(l.price, l.qty),
            }
        }
        while let Some(best) = self.far.best() {
            match self.window.locate(self.key(best.price)) {
                Slot::At(i) => {
                    self.far.pop_best();
                    self.window.set(i, best);
                }
                Slot::OffGrid => {
                    // A far level off the grid (kept from before the tick was known).
                    let d = self.key(best.price).abs_diff(lo);
                    let tick = i64::try_from(d).map_or(0, |d| gcd(tick, d));
                    self.regrid(tick);
                    return;
                }
                Slot::Below | Slot::Above => break,
            }
        }
    }

    /// The window emptied: it moves down to the best far level.
    fn refill(&mut self) {
        if let Some(best) = self.far.best() {
            let key = self.key(best.price);
            self.place(key);
        }
    }

    fn qty_at(&self, price: Price) -> Qty {
        if !self.window.enabled() {
            return self.far.qty_at(price);
        }
        match self.window.locate(self.key(price)) {
            Slot::At(i) if self.window.occupied(i) => self.window.slots[i].qty,
            Slot::Below => self.far.qty_at(price),
            _ => Qty::ZERO,
        }
    }

    #[inline]
    fn best(&self) -> Option<Level> {
        if self.window.len > 0 {
            Some(self.window.slots[self.window.top])
        } else {
            self.far.best()
        }
    }

    fn clear(&mut self) {
        self.window.clear();
        self.far.clear();
    }

    /// Levels from the best outwards.
    fn iter(&self) -> impl Iterator<Item = &Level> + '_ {
        self.window.iter().chain(self.far.iter())
    }

    /// The window's own invariants (the levels' order and sizes are checked by the caller).
    fn consistent(&self) -> bool {
        let w = &self.window;
        if !w.enabled() {
            return w.len == 0;
        }
        let mut count = 0;
        let mut top = None;
        for (n, &word) in w.bits.iter().enumerate() {
            let mut bits = word;
            while bits != 0 {
                let i = n * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                count += 1;
                top = Some(i);
                let l = &w.slots[i];
                if l.qty.is_zero() || w.locate(self.key(l.price)) != Slot::At(i) {
                    return false;
                }
            }
        }
        let below = match self.far.best() {
            None => true,
            Some(l) => self.key(l.price) < w.lo && w.len > 0,
        };
        count == w.len && (w.len == 0 || top == Some(w.top)) && below
    }
}

/// An L2 book for one instrument.
#[derive(Debug, Clone)]
pub struct OrderBook {
    bids: BookSide,
    asks: BookSide,
}

impl Default for OrderBook {
    fn default() -> OrderBook {
        OrderBook::new()
    }
}

impl OrderBook {
    pub fn new() -> OrderBook {
        OrderBook {
            bids: BookSide::new(false),
            asks: BookSide::new(true),
        }
    }

    pub fn clear(&mut self) {
        self.bids.clear();
        self.asks.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.bids.len() == 0 && self.asks.len() == 0
    }

    #[inline(always)]
    fn side(&self, side: Side) -> &BookSide {
        match side {
            Side::Buy => &self.bids,
            Side::Sell => &self.asks,
        }
    }

    /// Sets the absolute size at `price`; a zero size removes the level. Negative sizes are
    /// refused (returns false and changes nothing): the caller counts them as bad data.
    #[inline]
    pub fn apply(&mut self, side: Side, price: Price, qty: Qty) -> bool {
        if qty.0 < 0 {
            return false;
        }
        match side {
            Side::Buy => self.bids.set(price, qty),
            Side::Sell => self.asks.set(price, qty),
        }
        true
    }

    /// Replaces the whole book with a snapshot (levels in any order; zero sizes skipped; for a
    /// price given twice the later one wins).
    pub fn load_snapshot(&mut self, bids: &[Level], asks: &[Level]) {
        self.clear();
        for l in bids {
            self.apply(Side::Buy, l.price, l.qty);
        }
        for l in asks {
            self.apply(Side::Sell, l.price, l.qty);
        }
    }

    #[inline]
    pub fn best_bid(&self) -> Option<Level> {
        self.bids.best()
    }

    #[inline]
    pub fn best_ask(&self) -> Option<Level> {
        self.asks.best()
    }

    /// Levels of one side from the best outwards.
    pub fn levels(&self, side: Side) -> impl Iterator<Item = &Level> + '_ {
        self.side(side).iter()
    }

    pub fn depth(&self, side: Side) -> usize {
        self.side(side).len()
    }

    /// Resting size at `price` (zero when there is no level).
    pub fn qty_at(&self, side: Side, price: Price) -> Qty {
        self.side(side).qty_at(price)
    }

    /// Sum of sizes over the best `n` levels of a side (saturating: it cannot overflow).
    pub fn total_qty(&self, side: Side, n: usize) -> Qty {
        Qty(self
            .levels(side)
            .take(n)
            .fold(0i64, |sum, l| sum.saturating_add(l.qty.0)))
    }

    /// Mid price, rounded down to the 10^-8 unit (computed wide: it cannot overflow).
    pub fn mid(&self) -> Option<Price> {
        let (b, a) = (self.best_bid()?, self.best_ask()?);
        let mid = (i128::from(b.price.0) + i128::from(a.price.0)).div_euclid(2);
        i64::try_from(mid).ok().map(Price)
    }

    /// Size-weighted mid: leans towards the side with less size (the likelier next price).
    pub fn microprice(&self) -> Option<Price> {
        let (b, a) = (self.best_bid()?, self.best_ask()?);
        let total = i128::from(b.qty.0) + i128::from(a.qty.0);
        if total == 0 {
            return self.mid();
        }
        let num = i128::from(b.price.0) * i128::from(a.qty.0)
            + i128::from(a.price.0) * i128::from(b.qty.0);
        i64::try_from(num / total).ok().map(Price)
    }

    /// Verifies the invariants: strictly ordered sides, positive sizes, not crossed (and the
    /// internal block index agrees with the levels).
    pub fn check(&self) -> Result<(), BookError> {
        for (side, book_side) in [(Side::Buy, &self.bids), (Side::Sell, &self.asks)] {
            let ladder = &book_side.far;
            let mut better: Option<Price> = None;
            for l in book_side.iter() {
                if let Some(b) = better {
                    let ordered = match side {
                        Side::Buy => l.price < b,
                        Side::Sell => l.price > b,
                    };
                    if !ordered {
                        return Err(BookError::Unordered {
                            side,
                            price: l.price,
                        });
                    }
                }
                if l.qty.0 <= 0 {
                    return Err(BookError::BadSize {
                        side,
                        price: l.price,
                        qty: l.qty,
                    });
                }
                better = Some(l.price);
            }
            let heads_agree = ladder.blocks.len() == ladder.firsts.len()
                && ladder.blocks.iter().zip(&ladder.firsts).all(|(b, &f)| {
                    b.first().is_some_and(|l| ladder.key(l.price) == f) && b.len() <= BLOCK
                })
                && ladder.blocks.iter().map(Vec::len).sum::<usize>() == ladder.len
                && book_side.consistent();
            if !heads_agree {
                let price = book_side.best().map_or(Price::ZERO, |l| l.price);
                return Err(BookError::Unordered { side, price });
            }
        }
        if let (Some(b), Some(a)) = (self.best_bid(), self.best_ask()) {
            if b.price >= a.price {
                return Err(BookError::Crossed {
                    bid: b.price,
                    ask: a.price,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 0.01 in the 10^-8 unit: BTCUSDT's tick.
    const TICK: i64 = 1_000_000;

    fn px(ticks: i64) -> Price {
        Price(6_000_000 * TICK + ticks * TICK)
    }

    /// `locate` is exact for every tick the window accepts (any tick with `WINDOW * tick`
    /// in range) and every distance inside the window: on the grid at the quotient, off it
    /// otherwise. Ticks and distances from small to the largest, plus pseudo-random ones.
    #[test]
    fn locate_is_the_exact_quotient_for_any_tick() {
        let max_tick = i64::MAX / WINDOW as i64;
        let mut ticks = vec![
            1,
            2,
            3,
            7,
            10,
            1_000_000,
            10_000_000,
            123_456_789,
            max_tick - 1,
            max_tick,
        ];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..64 {
            ticks.push(1 + (next() % max_tick as u64) as i64);
        }
        for tick in ticks {
            let w = Window {
                tick,
                recip: u64::MAX / tick as u64,
                lo: -7,
                ..Window::default()
            };
            let span = WINDOW as i64 * tick;
            let mut ds = vec![0, 1, tick - 1, tick, tick + 1, span - tick, span - 1];
            for _ in 0..2_000 {
                ds.push((next() % span as u64) as i64);
                ds.push((next() % WINDOW as u64) as i64 * tick);
            }
            for d in ds.into_iter().filter(|&d| (0..span).contains(&d)) {
                let want = if d % tick == 0 {
                    Slot::At((d / tick) as usize)
                } else {
                    Slot::OffGrid
                };
                assert_eq!(w.locate(w.lo + d), want, "tick {tick}, distance {d}");
            }
            assert_eq!(w.locate(w.lo + span), Slot::Above);
            assert_eq!(w.locate(w.lo - 1), Slot::Below);
        }
    }

    fn window(book: &OrderBook, side: Side) -> &Window {
        match side {
            Side::Buy => &book.bids.window,
            Side::Sell => &book.asks.window,
        }
    }

    #[test]
    fn the_window_learns_the_tick_and_follows_the_best() {
        let mut b = OrderBook::new();
        let mut bids: Vec<Level> = (0..3000).map(|i| Level::new(px(-i * 2), Qty(1))).collect();
        // One bid deeper than the window reaches.
        let deep = px(-2 * WINDOW as i64);
        bids.push(Level::new(deep, Qty(9)));
        b.load_snapshot(&bids, &[Level::new(px(1), Qty(5))]);
        // Bids two ticks apart: the grid is learned as 2 ticks for now.
        assert_eq!(window(&b, Side::Buy).tick, 2 * TICK);
        assert_eq!(window(&b, Side::Buy).len, 3000);
        assert_eq!(b.bids.far.best(), Some(Level::new(deep, Qty(9))));
        // A bid one tick off that grid refines it to one tick; nothing is lost.
        b.apply(Side::Buy, px(-1), Qty(7));
        assert_eq!(window(&b, Side::Buy).tick, TICK);
        assert_eq!(b.depth(Side::Buy), 3002);
        assert_eq!(b.qty_at(Side::Buy, px(-1)), Qty(7));
        assert_eq!(b.qty_at(Side::Buy, deep), Qty(9));
        // A better bid beyond the window's top: the window moves up, the old levels go far.
        let up = px(WINDOW as i64);
        b.apply(Side::Buy, up, Qty(3));
        assert_eq!(b.best_bid(), Some(Level::new(up, Qty(3))));
        assert_eq!(window(&b, Side::Buy).len, 1);
        assert_eq!(b.bids.far.best(), Some(Level::new(px(0), Qty(1))));
        assert!(
            matches!(b.check(), Err(BookError::Crossed { .. })),
            "and only crossed"
        );
        // Removing it empties the window: it moves back down over the far levels.
        b.apply(Side::Buy, up, Qty(0));
        assert_eq!(b.best_bid(), Some(Level::new(px(0), Qty(1))));
        assert_eq!(window(&b, Side::Buy).len, 3001);
        assert_eq!(b.depth(Side::Buy), 3002);
        assert_eq!(b.check(), Ok(()));
        // The asks' window is on their own grid (descending keys).
        assert_eq!(b.best_ask(), Some(Level::new(px(1), Qty(5))));
        b.apply(Side::Sell, px(3), Qty(4));
        assert_eq!(window(&b, Side::Sell).tick, 2 * TICK);
        assert_eq!(
            b.levels(Side::Sell).copied().collect::<Vec<_>>(),
            [Level::new(px(1), Qty(5)), Level::new(px(3), Qty(4))]
        );
        assert_eq!(b.check(), Ok(()));
    }

    #[test]
    fn extreme_prices_leave_the_window_or_do_without_one() {
        let mut b = OrderBook::new();
        for p in [i64::MAX, i64::MAX - 10, 0, i64::MIN + 5] {
            b.apply(Side::Buy, Price(p), Qty(1));
            b.apply(Side::Sell, Price(p), Qty(1));
        }
        assert_eq!(b.depth(Side::Buy), 4);
        assert_eq!(b.best_bid().map(|l| l.price), Some(Price(i64::MAX)));
        assert_eq!(b.best_ask().map(|l| l.price), Some(Price(i64::MIN + 5)));
        assert_eq!(b.qty_at(Side::Buy, Price(0)), Qty(1));
        b.apply(Side::Buy, Price(i64::MAX), Qty(0));
        assert_eq!(b.best_bid().map(|l| l.price), Some(Price(i64::MAX - 10)));
    }
}
