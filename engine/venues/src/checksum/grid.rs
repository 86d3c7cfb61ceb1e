//! A side of a checksummed book indexed by tick: where a level's texts live (their slot in the
//! side's slab) for each price of a window of ticks, with a bitmap of the occupied ones.
//!
//! A change is one multiply (the price's index) and a store, with no search and nothing
//! shifted: OKX's 400-level books change near the touch and at the far end, where a sorted list
//! shifts ~33 entries an insert or delete. The tick is learned from the prices (the greatest
//! common divisor of their distances; a later price off that grid refines it), the window is
//! placed around them with as much room again, and a price outside it places it anew, all
//! rare and O(window). A side whose prices span more than [`MAX_TICKS`]` / 2` ticks is not
//! kept here (the caller keeps it sorted).

use std::collections::VecDeque;

/// The widest window (ticks): 512 KB of slots. A side spanning more than half of it is not
/// gridded.
pub(super) const MAX_TICKS: usize = 1 << 17;
/// The narrowest window, so that a thin snapshot still leaves room to move.
const MIN_TICKS: usize = 1 << 10;

/// Where a key falls against the window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Locate {
    At(usize),
    /// Below or above the window (or no window).
    Outside,
    /// Inside, between two ticks.
    OffGrid,
}

/// Keys as in the side (larger is better); index `i` is the key `lo + i * tick`.
#[derive(Default, Debug)]
pub(super) struct Grid {
    /// The step between keys; 0 while no window is placed.
    tick: i64,
    /// `floor((2^64 - 1) / tick)`: a key's index is the high word of its product with the
    /// distance from `lo`, or one below it (corrected in `locate`).
    recip: u64,
    lo: i64,
    /// `window * tick` (0 while none is placed: every key is outside).
    reach: i64,
    /// The text slot of each occupied index (stale where the bit is clear).
    slots: Vec<u32>,
    /// Bit `i % 64` of word `i / 64`: index `i` holds a level. All clear while `len` is 0.
    bits: Vec<u64>,
    len: usize,
    /// The best and worst occupied indices (when `len > 0`).
    top: usize,
    bottom: usize,
}

impl Grid {
    #[inline(always)]
    pub(super) fn on(&self) -> bool {
        self.tick > 0
    }

    /// The step between keys (0: no window).
    pub(super) fn tick(&self) -> i64 {
        self.tick
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    fn key(&self, i: usize) -> i64 {
        // In range: `lo + reach` was checked when the window was placed.
        self.lo + i as i64 * self.tick
    }

    pub(super) fn best(&self) -> Option<i64> {
        (self.len > 0).then(|| self.key(self.top))
    }

    #[inline(always)]
    pub(super) fn locate(&self, key: i64) -> Locate {
        let Some(d) = key.checked_sub(self.lo) else {
            return Locate::Outside;
        };
        if d < 0 || d >= self.reach {
            return Locate::Outside;
        }
        // 0 <= d < 2^63: d * recip / 2^64 lies in (d / tick - 1, d / tick].
        let mut q = ((d as u64 as u128 * self.recip as u128) >> 64) as i64;
        let mut r = d - q * self.tick;
        if r >= self.tick {
            q += 1;
            r -= self.tick;
        }
        if r != 0 {
            return Locate::OffGrid;
        }
        Locate::At(q as usize)
    }

    /// The slot at index `i` (from [`Grid::locate`]), if occupied.
    #[inline(always)]
    pub(super) fn get(&self, i: usize) -> Option<u32> {
        (self.bits[i / 64] & (1 << (i % 64)) != 0).then(|| self.slots[i])
    }

    /// Puts `slot` at the unoccupied index `i`.
    #[inline(always)]
    pub(super) fn insert(&mut self, i: usize, slot: u32) {
        self.slots[i] = slot;
        self.bits[i / 64] |= 1 << (i % 64);
        if self.len == 0 {
            (self.top, self.bottom) = (i, i);
        } else {
            self.top = self.top.max(i);
            self.bottom = self.bottom.min(i);
        }
        self.len += 1;
    }

    /// Empties index `i`; its slot, if it was occupied.
    #[inline(always)]
    pub(super) fn remove(&mut self, i: usize) -> Option<u32> {
        let slot = self.get(i)?;
        self.bits[i / 64] &= !(1 << (i % 64));
        self.len -= 1;
        if self.len > 0 {
            if i == self.top {
                self.top = self.below(i).unwrap_or(self.bottom);
            }
            if i == self.bottom {
                self.bottom = self.above(i).unwrap_or(self.top);
            }
        }
        Some(slot)
    }

    /// Removes the worst level; its slot.
    pub(super) fn pop_worst(&mut self) -> Option<u32> {
        if self.len == 0 {
            return None;
        }
        self.remove(self.bottom)
    }

    /// The highest occupied index below `i`.
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

    /// The lowest occupied index above `i`.
    fn above(&self, i: usize) -> Option<usize> {
        let mut w = i / 64;
        let mut word = self.bits[w] & !(u64::MAX >> (63 - i % 64));
        loop {
            if word != 0 {
                return Some(w * 64 + word.trailing_zeros() as usize);
            }
            w += 1;
            word = *self.bits.get(w)?;
        }
    }

    /// Every level, (key, slot) ascending, appended to `out`; the grid is left empty and off.
    pub(super) fn drain_into(&mut self, out: &mut VecDeque<(i64, u32)>) {
        if self.len > 0 {
            for w in self.bottom / 64..=self.top / 64 {
                let mut word = std::mem::take(&mut self.bits[w]);
                while word != 0 {
                    let i = w * 64 + word.trailing_zeros() as usize;
                    out.push_back((self.key(i), self.slots[i]));
                    word &= word - 1;
                }
            }
        }
        self.off();
    }

    /// No levels and no window (the bitmap is all clear: `len` 0 keeps it so).
    pub(super) fn clear(&mut self) {
        if self.len > 0 {
            for w in &mut self.bits[self.bottom / 64..=self.top / 64] {
                *w = 0;
            }
        }
        self.off();
    }

    fn off(&mut self) {
        self.len = 0;
        self.tick = 0;
        self.reach = 0;
    }

    /// Places a window over `levels` (distinct keys, with their slots) and `extra` (a key to
    /// be set next), on the greatest common divisor of their distances and `tick` (0: none
    /// known), with room around them; `false` (and no window) when their keys do not fit one.
    /// The grid must be off.
    pub(super) fn place(
        &mut self,
        levels: &VecDeque<(i64, u32)>,
        extra: Option<i64>,
        tick: i64,
    ) -> bool {
        debug_assert!(!self.on() && self.len == 0);
        let keys = || levels.iter().map(|l| l.0).chain(extra);
        let Some(first) = keys().next() else {
            return false;
        };
        let (mut tick, mut min, mut max) = (tick, first, first);
        for k in keys() {
            let Some(d) = k.checked_sub(first).and_then(i64::checked_abs) else {
                return false;
            };
            tick = gcd(tick, d);
            (min, max) = (min.min(k), max.max(k));
        }
        if tick <= 0 {
            return false;
        }
        // Every distance is checked: keys near the ends of i64 (or a tick that large) give no
        // window rather than an overflow.
        let Some(span) = max.checked_sub(min).map(|d| d / tick + 1) else {
            return false;
        };
        if span as usize > MAX_TICKS / 2 {
            return false;
        }
        let size = (2 * span as usize).max(MIN_TICKS).next_power_of_two();
        let room = (size - span as usize) as i64 / 2;
        let (Some(lo), Some(reach)) = (
            room.checked_mul(tick).and_then(|r| min.checked_sub(r)),
            (size as i64).checked_mul(tick),
        ) else {
            return false;
        };
        if lo.checked_add(reach).is_none() {
            return false;
        }
        (self.tick, self.recip, self.lo, self.reach) = (tick, u64::MAX / tick as u64, lo, reach);
        self.slots.resize(size, 0);
        self.bits.resize(size / 64, 0);
        for &(k, slot) in levels {
            if let Locate::At(i) = self.locate(k) {
                self.insert(i, slot);
            }
        }
        true
    }

    /// The occupied slots, best first.
    pub(super) fn iter(&self) -> BestFirst<'_> {
        let (word, bits) = if self.len == 0 {
            (0, 0)
        } else {
            let w = self.top / 64;
            (w, self.bits[w] & (u64::MAX >> (63 - self.top % 64)))
        };
        BestFirst {
            grid: self,
            word,
            bits,
        }
    }
}

/// A grid's slots from its best down.
pub(super) struct BestFirst<'a> {
    grid: &'a Grid,
    word: usize,
    bits: u64,
}

impl Iterator for BestFirst<'_> {
    type Item = u32;

    #[inline]
    fn next(&mut self) -> Option<u32> {
        while self.bits == 0 {
            self.word = self.word.checked_sub(1)?;
            self.bits = self.grid.bits[self.word];
        }
        let b = 63 - self.bits.leading_zeros() as usize;
        self.bits &= !(1 << b);
        Some(self.grid.slots[self.word * 64 + b])
    }
}

/// Of two non-negative distances (0: none).
fn gcd(mut a: i64, mut b: i64) -> i64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}
