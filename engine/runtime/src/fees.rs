//! Commissions as the venue charged them: booked by their asset.
//!
//! A Binance fill names its commission `n` and the asset `N` it was taken in:
//! - the symbol's quote asset: a fee in cash, as it stands;
//! - the symbol's base asset: that much of the instrument never reaches the account, so it
//!   leaves the position (`Trader::on_exec_charged`); its quote value is in the P&L through
//!   the position, not in the fees;
//! - a contract's settlement currency (OKX `fillFeeCcy` of a swap: USDT for a linear one, the
//!   base asset of an inverse one): a fee as it stands, in the currency the position's P&L is
//!   kept in (`rt_core::portfolio`, "Contracts"); nothing leaves the position;
//! - any other asset (BNB): a fee worth its price in the quote asset, taken from the mid of
//!   the engine's `<asset><quote>` book when the engine has one on that exchange (the strategy
//!   thread publishes it into [`FeeMarks`] a few times a second), else the exchange's
//!   `commission_reference_prices`. A commission with neither is booked at zero and counted.
//!
//! Every commission is journaled with its asset and amount beside the quote value booked, so
//! a restart rebuilds the same positions.

use std::sync::atomic::{AtomicI64, Ordering};

use rt_core::{Cash, InstrumentId, Price, Qty, SCALE};
use rt_venues::assets::CommissionAsset;

/// One exchange's price source for a commission asset.
#[derive(Debug)]
pub struct FeeMark {
    pub exchange: u32,
    pub asset: String,
    /// The `<asset><quote>` instrument the engine keeps a book of, if any.
    pub instrument: Option<InstrumentId>,
    /// The configured reference price (10^-8 quote), 0 when none.
    pub reference: i64,
    /// The book's last mid (10^-8 quote), 0 before any.
    last: AtomicI64,
}

/// Price sources of every commission asset the engine knows, shared by the strategy thread
/// (writer of book mids) and the gateway (reader); and the funding payments the gateway read
/// off a futures user stream (already journaled), which the strategy thread books into the
/// portfolio on its next turn.
#[derive(Debug, Default)]
pub struct FeeMarks {
    marks: Vec<FeeMark>,
    funding: std::sync::Mutex<Vec<(InstrumentId, Cash)>>,
    /// Futures deliveries (instrument, delivery price) journaled by the gateway, to book.
    deliveries: std::sync::Mutex<Vec<(InstrumentId, Price)>>,
    /// The venue's latest mark price of derivatives, for the strategy thread to value them at.
    venue_marks: std::sync::Mutex<Vec<(InstrumentId, Price)>>,
}

impl FeeMarks {
    /// `sources`: (exchange, asset, book instrument, reference price).
    pub fn new(
        sources: impl IntoIterator<Item = (u32, String, Option<InstrumentId>, i64)>,
    ) -> Self {
        FeeMarks {
            marks: sources
                .into_iter()
                .map(|(exchange, asset, instrument, reference)| FeeMark {
                    exchange,
                    asset,
                    instrument,
                    reference,
                    last: AtomicI64::new(0),
                })
                .collect(),
            funding: std::sync::Mutex::new(Vec::new()),
            deliveries: std::sync::Mutex::new(Vec::new()),
            venue_marks: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// A derivative's mark price from the venue (the gateway), the latest one kept.
    pub fn push_venue_mark(&self, instrument: InstrumentId, price: Price) {
        let mut q = self.venue_marks.lock().unwrap_or_else(|e| e.into_inner());
        q.retain(|(i, _)| *i != instrument);
        q.push((instrument, price));
    }

    /// The marks not applied yet.
    pub fn take_venue_marks(&self) -> Vec<(InstrumentId, Price)> {
        let mut q = self.venue_marks.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut *q)
    }

    /// A funding payment for the strategy thread to book (the gateway, after journaling it).
    pub fn push_funding(&self, instrument: InstrumentId, amount: Cash) {
        let mut q = self.funding.lock().unwrap_or_else(|e| e.into_inner());
        q.push((instrument, amount));
    }

    /// The funding payments not booked yet, oldest first.
    pub fn take_funding(&self) -> Vec<(InstrumentId, Cash)> {
        let mut q = self.funding.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut *q)
    }

    /// A futures delivery for the strategy thread to book (the gateway, after journaling it).
    pub fn push_delivery(&self, instrument: InstrumentId, price: Price) {
        let mut q = self.deliveries.lock().unwrap_or_else(|e| e.into_inner());
        q.push((instrument, price));
    }

    /// The deliveries not booked yet, oldest first.
    pub fn take_deliveries(&self) -> Vec<(InstrumentId, Price)> {
        let mut q = self.deliveries.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut *q)
    }

    /// The instruments whose mids the strategy thread publishes, with their index.
    pub fn books(&self) -> impl Iterator<Item = (usize, InstrumentId)> + '_ {
        self.marks
            .iter()
            .enumerate()
            .filter_map(|(k, m)| m.instrument.map(|i| (k, i)))
    }

    /// The strategy thread's latest mid of mark `k`.
    pub fn publish(&self, k: usize, mid: Price) {
        if let Some(m) = self.marks.get(k) {
            m.last.store(mid.0, Ordering::Relaxed);
        }
    }

    /// The price of `asset` on `exchange` in its quote asset: the book's mid, else the
    /// reference.
    pub fn price(&self, exchange: u32, asset: &str) -> Option<i64> {
        let m = self
            .marks
            .iter()
            .find(|m| m.exchange == exchange && m.asset == asset)?;
        let last = m.last.load(Ordering::Relaxed);
        if last > 0 {
            Some(last)
        } else {
            (m.reference > 0).then_some(m.reference)
        }
    }
}

/// A commission as booked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Booked {
    /// The fee in the quote asset (a quote commission, or another asset's at its price).
    pub fee: Cash,
    /// What leaves the position (a base-asset commission).
    pub base: Qty,
    /// Another asset's commission with no price to value it at (booked at zero).
    pub unpriced: bool,
}

/// Books `amount` (10^-8 of `asset`) charged on a fill of `symbol`, a contract settled in
/// `settle` (`None`: spot); `price` values an asset that is neither the symbol's base nor its
/// quote nor its settlement currency.
pub fn book(
    symbol: &str,
    asset: &str,
    amount: i64,
    settle: Option<&str>,
    price: impl Fn(&str) -> Option<i64>,
) -> Booked {
    match CommissionAsset::of(symbol, asset) {
        // An empty asset (no trade, or a venue that does not say): the quote, as before. A
        // contract's settlement currency: the fee as it stands (never a base debit).
        _ if asset.is_empty() || settle == Some(asset) => Booked {
            fee: amount,
            base: Qty::ZERO,
            unpriced: false,
        },
        CommissionAsset::Quote => Booked {
            fee: amount,
            base: Qty::ZERO,
            unpriced: false,
        },
        CommissionAsset::Base => Booked {
            fee: 0,
            base: Qty(amount),
            unpriced: false,
        },
        CommissionAsset::Other(other) => match price(other) {
            Some(p) => {
                // Rounded up: a charge is never understated.
                let wide = i128::from(amount) * i128::from(p);
                let den = i128::from(SCALE);
                let fee = wide.div_euclid(den) + i128::from(wide.rem_euclid(den) != 0);
                Booked {
                    fee: i64::try_from(fee).unwrap_or(i64::MAX),
                    base: Qty::ZERO,
                    unpriced: false,
                }
            }
            None => Booked {
                fee: 0,
                base: Qty::ZERO,
                unpriced: true,
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: i64 = SCALE;

    #[test]
    fn books_each_asset_its_way() {
        let none = |_: &str| None;
        let q = book("BTCUSDT", "USDT", 6 * ONE, None, none);
        assert_eq!((q.fee, q.base, q.unpriced), (6 * ONE, Qty::ZERO, false));
        let b = book("BTCUSDT", "BTC", ONE / 1000, None, none);
        assert_eq!((b.fee, b.base), (0, Qty(ONE / 1000)));
        // 0.01 BNB at 600 = 6 USDT.
        let bnb = book("BTCUSDT", "BNB", ONE / 100, None, |a| {
            (a == "BNB").then_some(600 * ONE)
        });
        assert_eq!(
            (bnb.fee, bnb.base, bnb.unpriced),
            (6 * ONE, Qty::ZERO, false)
        );
        // 0.00000001 BNB at 600.00000001: rounded up.
        let tiny = book("BTCUSDT", "BNB", 1, None, |_| Some(600 * ONE + 1));
        assert_eq!(tiny.fee, 601);
        let unpriced = book("BTCUSDT", "BNB", ONE, None, none);
        assert_eq!((unpriced.fee, unpriced.unpriced), (0, true));
        assert_eq!(book("BTCUSDT", "", 5, None, none).fee, 5);
    }

    #[test]
    fn marks_prefer_the_book_over_the_reference() {
        let marks = FeeMarks::new([(0, "BNB".to_owned(), Some(3), 600 * ONE)]);
        assert_eq!(marks.price(0, "BNB"), Some(600 * ONE));
        assert_eq!(marks.books().collect::<Vec<_>>(), vec![(0, 3)]);
        marks.publish(0, Price(610 * ONE));
        assert_eq!(marks.price(0, "BNB"), Some(610 * ONE));
        assert_eq!(marks.price(1, "BNB"), None);
        assert_eq!(marks.price(0, "ETH"), None);
    }
}
