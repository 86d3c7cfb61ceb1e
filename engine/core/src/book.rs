//! The L2 order book: aggregated size per price level, both sides, with fast best-price access.
//!
//! Each side is a vector sorted so that the best price is at the *end* (bids ascending, asks
//! descending). Market data changes cluster near the top of the book, so inserts and deletes
//! there move only a few elements, the best level is a `last()`, and a lookup is a binary
//! search over contiguous memory.

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

/// An L2 book for one instrument.
#[derive(Debug, Clone, Default)]
pub struct OrderBook {
    /// Ascending by price: the best bid is last.
    bids: Vec<Level>,
    /// Descending by price: the best ask is last.
    asks: Vec<Level>,
}

impl OrderBook {
    pub fn new() -> OrderBook {
        OrderBook {
            bids: Vec::with_capacity(2048),
            asks: Vec::with_capacity(2048),
        }
    }

    pub fn clear(&mut self) {
        self.bids.clear();
        self.asks.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.bids.is_empty() && self.asks.is_empty()
    }

    /// Sets the absolute size at `price`; a zero size removes the level. Negative sizes are
    /// refused (returns false and changes nothing): the caller counts them as bad data.
    #[inline]
    pub fn apply(&mut self, side: Side, price: Price, qty: Qty) -> bool {
        if qty.0 < 0 {
            return false;
        }
        let levels = match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        };
        // Position of `price` in a side sorted towards the best price at the end.
        let found = match side {
            Side::Buy => levels.binary_search_by(|l| l.price.cmp(&price)),
            Side::Sell => levels.binary_search_by(|l| price.cmp(&l.price)),
        };
        match (found, qty.is_zero()) {
            (Ok(i), true) => {
                levels.remove(i);
            }
            (Ok(i), false) => levels[i].qty = qty,
            (Err(_), true) => {}
            (Err(i), false) => levels.insert(i, Level { price, qty }),
        }
        true
    }

    /// Replaces the whole book with a snapshot (levels in any order; zero sizes skipped).
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
        self.bids.last().copied()
    }

    #[inline]
    pub fn best_ask(&self) -> Option<Level> {
        self.asks.last().copied()
    }

    /// Levels of one side from the best outwards.
    pub fn levels(&self, side: Side) -> impl Iterator<Item = &Level> + '_ {
        match side {
            Side::Buy => self.bids.iter().rev(),
            Side::Sell => self.asks.iter().rev(),
        }
    }

    pub fn depth(&self, side: Side) -> usize {
        match side {
            Side::Buy => self.bids.len(),
            Side::Sell => self.asks.len(),
        }
    }

    /// Resting size at `price` (zero when there is no level).
    pub fn qty_at(&self, side: Side, price: Price) -> Qty {
        let (levels, found) = match side {
            Side::Buy => (
                &self.bids,
                self.bids.binary_search_by(|l| l.price.cmp(&price)),
            ),
            Side::Sell => (
                &self.asks,
                self.asks.binary_search_by(|l| price.cmp(&l.price)),
            ),
        };
        found.map_or(Qty::ZERO, |i| levels[i].qty)
    }

    /// Sum of sizes over the best `n` levels of a side.
    pub fn total_qty(&self, side: Side, n: usize) -> Qty {
        Qty(self.levels(side).take(n).map(|l| l.qty.0).sum())
    }

    /// Mid price, rounded down to the 10^-8 unit.
    pub fn mid(&self) -> Option<Price> {
        let (b, a) = (self.best_bid()?, self.best_ask()?);
        Some(Price((b.price.0 + a.price.0).div_euclid(2)))
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

    /// Verifies the invariants: strictly ordered sides, positive sizes, not crossed.
    pub fn check(&self) -> Result<(), BookError> {
        for (side, levels) in [(Side::Buy, &self.bids), (Side::Sell, &self.asks)] {
            for w in levels.windows(2) {
                let ordered = match side {
                    Side::Buy => w[0].price < w[1].price,
                    Side::Sell => w[0].price > w[1].price,
                };
                if !ordered {
                    return Err(BookError::Unordered {
                        side,
                        price: w[1].price,
                    });
                }
            }
            if let Some(l) = levels.iter().find(|l| l.qty.0 <= 0) {
                return Err(BookError::BadSize {
                    side,
                    price: l.price,
                    qty: l.qty,
                });
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
