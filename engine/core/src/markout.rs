//! Markouts: how the market moved for or against each fill a fixed horizon after it, the
//! adverse-selection figure anomaly detection watches live (`markout_bps`, docs/operations.md).
//!
//! A fill's markout is `sign * (mid - price) / price * 10^4` basis points, with `mid` the
//! instrument's mark (the book's mid the portfolio is marked to) in effect [`HORIZON_NS`]
//! after the fill on the core's clock, and `sign` +1 for a buy, -1 for a sell: positive when
//! the market moved in the fill's favour. This is the research reports' `markout_1s_bps`
//! (appliance/research/metrics.py), which takes the first mark at or after the horizon; a
//! fill whose instrument has no mark when its horizon passes has no markout.
//!
//! The running totals are counters (whole hundredths of a basis point, the favourable and the
//! adverse kept apart so that both only grow): the engine's heartbeat carries them and the
//! anomaly detector divides their change over a window by the markouts taken in it.

use std::collections::VecDeque;

use crate::portfolio::InstrumentId;
use crate::types::{Nanos, Price, Side};

/// How long after a fill its markout is taken (the research's 1 s horizon).
pub const HORIZON_NS: Nanos = 1_000_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Pending {
    due: Nanos,
    instrument: InstrumentId,
    side: Side,
    price: Price,
}

/// The running totals of the markouts taken.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MarkoutTotals {
    /// Fills whose markout was taken.
    pub count: u64,
    /// Sum of the positive markouts, in hundredths of a basis point.
    pub favourable_cbps: u64,
    /// Sum of the negative markouts' magnitudes, in hundredths of a basis point.
    pub adverse_cbps: u64,
}

impl MarkoutTotals {
    /// The mean markout in basis points of the markouts taken between `base` and `self`
    /// (None when none was).
    pub fn mean_bps_since(&self, base: &MarkoutTotals) -> Option<f64> {
        let n = self.count.checked_sub(base.count).filter(|n| *n > 0)?;
        let gained = self.favourable_cbps.saturating_sub(base.favourable_cbps) as f64;
        let lost = self.adverse_cbps.saturating_sub(base.adverse_cbps) as f64;
        Some((gained - lost) / 100.0 / n as f64)
    }
}

/// Fills waiting for their horizon, and the totals of those past it.
#[derive(Clone, Debug, Default)]
pub struct Markouts {
    /// In fill order, so in due order (one horizon for all).
    pending: VecDeque<Pending>,
    totals: MarkoutTotals,
}

/// A fill's markout in basis points against `mid`.
pub fn markout_bps(side: Side, price: Price, mid: Price) -> f64 {
    if price.0 <= 0 {
        return 0.0;
    }
    let sign = match side {
        Side::Buy => 1.0,
        Side::Sell => -1.0,
    };
    sign * (mid.0 - price.0) as f64 / price.0 as f64 * 1e4
}

impl Markouts {
    /// A fill at `ts`: its markout is taken once the clock passes `ts + HORIZON_NS`.
    pub fn on_fill(&mut self, ts: Nanos, instrument: InstrumentId, side: Side, price: Price) {
        self.pending.push_back(Pending {
            due: ts.saturating_add(HORIZON_NS),
            instrument,
            side,
            price,
        });
    }

    /// Whether a fill's horizon has passed at `now` (the hot path's check).
    #[inline]
    pub fn due(&self, now: Nanos) -> bool {
        self.pending.front().is_some_and(|p| p.due <= now)
    }

    /// Takes the markout of every fill whose horizon has passed at `now`, against `mid`
    /// (the instrument's mark; None: no markout for that fill).
    pub fn take_due(&mut self, now: Nanos, mid: impl Fn(InstrumentId) -> Option<Price>) {
        while let Some(p) = self.pending.front().copied().filter(|p| p.due <= now) {
            self.pending.pop_front();
            let Some(mid) = mid(p.instrument) else {
                continue;
            };
            let bps = markout_bps(p.side, p.price, mid);
            let cbps = (bps.abs() * 100.0).round() as u64;
            self.totals.count += 1;
            if bps >= 0.0 {
                self.totals.favourable_cbps += cbps;
            } else {
                self.totals.adverse_cbps += cbps;
            }
        }
    }

    pub fn totals(&self) -> MarkoutTotals {
        self.totals
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Nanos = 1_000_000_000;

    #[test]
    fn a_fill_is_marked_out_at_its_horizon_with_the_sign_of_its_side() {
        let mut m = Markouts::default();
        // A buy at 100 and a sell at 100; the mid is 99 a second later: the buy lost 100 bps,
        // the sell gained 100.
        m.on_fill(0, 0, Side::Buy, Price(100 * crate::SCALE));
        m.on_fill(S / 2, 1, Side::Sell, Price(100 * crate::SCALE));
        let mid = |_| Some(Price(99 * crate::SCALE));
        assert!(!m.due(S - 1));
        m.take_due(S - 1, mid);
        assert_eq!(m.totals().count, 0);
        assert!(m.due(S));
        m.take_due(S, mid);
        assert_eq!(
            m.totals(),
            MarkoutTotals {
                count: 1,
                favourable_cbps: 0,
                adverse_cbps: 10_000
            }
        );
        m.take_due(2 * S, mid);
        let t = m.totals();
        assert_eq!((t.count, t.favourable_cbps), (2, 10_000));
        assert_eq!(t.mean_bps_since(&MarkoutTotals::default()), Some(0.0));
        // Over the second alone: +100 bps.
        let first = MarkoutTotals {
            count: 1,
            favourable_cbps: 0,
            adverse_cbps: 10_000,
        };
        assert_eq!(t.mean_bps_since(&first), Some(100.0));
        assert_eq!(t.mean_bps_since(&t), None);
    }

    #[test]
    fn a_fill_without_a_mark_at_its_horizon_has_no_markout() {
        let mut m = Markouts::default();
        m.on_fill(0, 3, Side::Buy, Price(50 * crate::SCALE));
        m.take_due(S, |_| None);
        assert_eq!(m.totals(), MarkoutTotals::default());
        assert!(!m.due(10 * S));
    }

    #[test]
    fn markouts_are_in_basis_points_of_the_fill_price() {
        let p = Price(20_000 * crate::SCALE);
        let up = Price(20_002 * crate::SCALE);
        assert!((markout_bps(Side::Buy, p, up) - 1.0).abs() < 1e-12);
        assert!((markout_bps(Side::Sell, p, up) + 1.0).abs() < 1e-12);
    }
}
