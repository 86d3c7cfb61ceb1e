//! Positions, P&L and fees per instrument, in integer arithmetic.
//!
//! # Units and rounding
//!
//! - Money ("cash") is an `i64` count of 10^-8 of the quote currency, like [`Price`]. Every
//!   instrument of one portfolio is assumed to share that quote currency (USDT).
//! - Inside, each position keeps its **cost basis** exactly, as `sum(price * signed qty)` in
//!   raw units squared (10^-16 quote, `i128`), and realised P&L the same way. Nothing is rounded
//!   while a position is open or closed; realised and unrealised P&L are floored to 10^-8 only
//!   when read (`div_euclid`, towards negative infinity: a fraction of a unit is never reported
//!   as profit).
//! - When a fill reduces a position, the closed share of the cost basis is
//!   `cost * closed / position` truncated towards zero; the truncation remainder stays in the
//!   cost of what remains open, so a position closed in any number of pieces realises exactly
//!   `sum(sell notional) - sum(buy notional)`.
//! - A fee is `notional * fee_bps / 10_000` computed from the exact notional and **rounded up**
//!   (towards positive infinity) to 10^-8, once per fill: a charge is never understated and a
//!   rebate (negative bps) never overstated. See [`fee`].
//! - Unrealised P&L marks the open position to the mid price (the driver calls
//!   [`Portfolio::mark`]); before any mark, the last fill price is the mark.
//! - Equity = realised + unrealised - fees (floored once, on the sum of the exact parts).

use crate::types::{Price, Qty, Side, SCALE};

/// Money in units of 10^-8 of the quote currency.
pub type Cash = i64;

/// Index of an instrument in the engine's instrument table.
pub type InstrumentId = u32;

/// 10^-16 quote units per 10^-8 quote unit: the scale of `price.raw * qty.raw`.
const WIDE: i128 = SCALE as i128;
/// bps per 1 (10^4) times the fixed-point scale of the bps value (10^8) times [`WIDE`].
const FEE_DIV: i128 = 10_000 * (SCALE as i128) * WIDE;

/// What the portfolio, the risk engine and the matcher need to know about an instrument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InstrumentSpec {
    /// Price increment (positive).
    pub tick: Price,
    /// Quantity increment (positive).
    pub lot: Qty,
    /// Smallest order notional, in [`Cash`] units.
    pub min_notional: Cash,
    /// Maker fee in bps, as 10^-8 bps (`rt_manifest::Fixed::raw`); negative is a rebate.
    pub maker_fee_bps: i64,
    /// Taker fee in bps, as 10^-8 bps.
    pub taker_fee_bps: i64,
}

impl InstrumentSpec {
    /// The manifest's instrument, converted without loss.
    pub fn from_manifest(instrument: &rt_manifest::model::Instrument) -> InstrumentSpec {
        InstrumentSpec {
            tick: Price(instrument.tick_size.raw()),
            lot: Qty(instrument.lot_size.raw()),
            min_notional: instrument.min_notional.raw(),
            maker_fee_bps: instrument.maker_fee_bps.raw(),
            taker_fee_bps: instrument.taker_fee_bps.raw(),
        }
    }

    /// The fee for a fill: maker or taker rate, rounded up (see [`fee`]).
    #[inline]
    pub fn fee(&self, price: Price, qty: Qty, maker: bool) -> Cash {
        let bps = if maker {
            self.maker_fee_bps
        } else {
            self.taker_fee_bps
        };
        fee(price, qty, bps)
    }
}

/// Largest multiple of `step` that is `<= value` (`value` unchanged for a non-positive step).
#[inline]
pub const fn floor_to(value: i64, step: i64) -> i64 {
    if step <= 0 {
        return value;
    }
    value - value.rem_euclid(step)
}

/// Smallest multiple of `step` that is `>= value` (`value` unchanged for a non-positive step).
#[inline]
pub const fn ceil_to(value: i64, step: i64) -> i64 {
    if step <= 0 {
        return value;
    }
    let r = value.rem_euclid(step);
    if r == 0 {
        value
    } else {
        value - r + step
    }
}

/// `ceil(num / den)` for a positive `den`.
#[inline]
fn div_ceil_i128(num: i128, den: i128) -> i128 {
    let q = num.div_euclid(den);
    if num.rem_euclid(den) == 0 {
        q
    } else {
        q + 1
    }
}

/// `floor(value / 10^8)`: wide (10^-16) to cash (10^-8) units. Most values fit an `i64`, whose
/// division by a constant is a multiplication; `i128` division is a library call.
#[inline]
fn floor_wide(value: i128) -> i128 {
    match i64::try_from(value) {
        Ok(v) => i128::from(v.div_euclid(SCALE)),
        Err(_) => value.div_euclid(WIDE),
    }
}

/// Saturating conversion of a wide amount to [`Cash`].
#[inline]
pub fn to_cash(value: i128) -> Cash {
    i64::try_from(value).unwrap_or(if value < 0 { i64::MIN } else { i64::MAX })
}

/// Fee of a fill: `price * qty * fee_bps / 10^4`, rounded up to 10^-8 of the quote currency.
///
/// `fee_bps` is in 10^-8 bps (`"7.5"` bps is `750_000_000`). For example 0.002 BTC at 60000.00
/// and 7.5 bps: notional 120 USDT, fee 0.09 USDT = `9_000_000`.
#[inline]
pub fn fee(price: Price, qty: Qty, fee_bps: i64) -> Cash {
    let notional = i128::from(price.0) * i128::from(qty.0);
    let fee = match notional.checked_mul(i128::from(fee_bps)) {
        Some(product) => div_ceil_i128(product, FEE_DIV),
        // Absurd sizes only: round the notional up first, then the fee (still rounds up).
        None => div_ceil_i128(
            div_ceil_i128(notional, WIDE).saturating_mul(i128::from(fee_bps)),
            10_000 * WIDE,
        ),
    };
    to_cash(fee)
}

/// One instrument's position and P&L.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Position {
    qty: Qty,
    /// `sum(price.raw * signed qty.raw)` of the open position (10^-16 quote).
    cost: i128,
    /// Realised P&L, exact (10^-16 quote).
    realised: i128,
    /// Unrealised P&L at the current mark, exact (10^-16 quote).
    unrealised: i128,
    /// Fees paid (negative: rebates received), 10^-8 quote.
    fees: i128,
    mark: Option<Price>,
    /// Sum of fill notionals (10^-16 quote).
    turnover: i128,
    fills: u64,
    /// Funding payments of a perpetual (positive: received), 10^-8 quote; in `realised` too.
    funding: i128,
    /// Marked at the venue's mark price (a derivative): book mids no longer move the mark.
    venue_marked: bool,
}

impl Position {
    /// Signed position: positive long, negative short.
    pub const fn qty(&self) -> Qty {
        self.qty
    }

    /// The mark (last mid, or last fill price before any mid).
    pub const fn mark(&self) -> Option<Price> {
        self.mark
    }

    /// Average entry price of the open position, truncated towards zero; `None` when flat.
    pub fn avg_entry_price(&self) -> Option<Price> {
        if self.qty.0 == 0 {
            return None;
        }
        i64::try_from(self.cost / i128::from(self.qty.0))
            .ok()
            .map(Price)
    }

    /// Realised P&L, floored to 10^-8.
    pub fn realised(&self) -> Cash {
        to_cash(floor_wide(self.realised))
    }

    /// Unrealised P&L at the mark, floored to 10^-8.
    pub fn unrealised(&self) -> Cash {
        to_cash(floor_wide(self.unrealised))
    }

    /// Fees paid (negative when rebates exceed charges).
    pub fn fees(&self) -> Cash {
        to_cash(self.fees)
    }

    /// Realised + unrealised - fees, floored once.
    pub fn equity(&self) -> Cash {
        to_cash(floor_wide(self.realised + self.unrealised) - self.fees)
    }

    /// `|position| * mark` (10^-8 quote, truncated); zero without a mark.
    pub fn exposure(&self) -> Cash {
        to_cash(self.exposure_wide() / WIDE)
    }

    fn exposure_wide(&self) -> i128 {
        self.mark
            .map_or(0, |m| i128::from(self.qty.0).abs() * i128::from(m.0))
    }

    /// Sum of fill notionals, truncated to 10^-8.
    pub fn turnover(&self) -> Cash {
        to_cash(self.turnover / WIDE)
    }

    pub const fn fill_count(&self) -> u64 {
        self.fills
    }

    /// Funding payments received (negative: paid), part of the realised P&L.
    pub fn funding(&self) -> Cash {
        to_cash(self.funding)
    }

    /// Applies a fill. `fee` is what [`fee`] charged for it (in the quote currency).
    fn fill(&mut self, side: Side, price: Price, qty: Qty, fee: Cash) {
        self.turnover += i128::from(price.0) * i128::from(qty.0);
        self.fees += i128::from(fee);
        self.fills += 1;
        self.trade(side, price, qty);
        if self.mark.is_none() {
            self.mark = Some(price);
        }
        self.revalue();
    }

    /// A commission the venue took in the base asset: `qty` of the instrument leaves the
    /// position as if sold at price zero (a long position shrinks, its cost basis with it, and
    /// the commission's value at cost is realised as a loss; flat or short, it grows the short
    /// at zero cost). Not a fill: turnover and fill counts are unchanged.
    fn debit(&mut self, qty: Qty) {
        if qty.0 <= 0 {
            return;
        }
        self.trade(Side::Sell, Price::ZERO, qty);
        self.revalue();
    }

    /// Moves the position and its cost basis by a trade of `qty` at `price`.
    fn trade(&mut self, side: Side, price: Price, qty: Qty) {
        let px = i128::from(price.0);
        let mut q = i128::from(qty.0) * i128::from(side.sign());
        let pos = i128::from(self.qty.0);
        if pos != 0 && (pos > 0) != (q > 0) {
            // Reducing (and maybe flipping): close `k` of the position.
            let k = q.abs().min(pos.abs());
            let removed = self.cost * k / pos.abs();
            self.realised += pos.signum() * px * k - removed;
            self.cost -= removed;
            let closed = pos - pos.signum() * k;
            q += pos.signum() * k;
            self.qty = Qty(i64::try_from(closed).unwrap_or(0));
            if closed == 0 {
                // Exact by construction (k == |pos| gives removed == cost), but a flat position
                // carries no cost whatever happened before.
                self.cost = 0;
            }
        }
        if q != 0 {
            self.cost += px * q;
            let open = i128::from(self.qty.0) + q;
            self.qty =
                Qty(i64::try_from(open).unwrap_or(if open < 0 { i64::MIN } else { i64::MAX }));
        }
    }

    fn revalue(&mut self) {
        self.unrealised = match self.mark {
            Some(m) => i128::from(self.qty.0) * i128::from(m.0) - self.cost,
            None => 0,
        };
    }
}

/// Positions of every instrument of one account, with running totals.
#[derive(Clone, Debug, Default)]
pub struct Portfolio {
    positions: Vec<Position>,
    /// Sums over positions, kept incrementally so that reading equity is O(1).
    realised: i128,
    unrealised: i128,
    fees: i128,
}

impl Portfolio {
    /// A flat portfolio of `instruments` instruments (ids `0..instruments`).
    pub fn new(instruments: usize) -> Portfolio {
        Portfolio {
            positions: vec![Position::default(); instruments],
            ..Portfolio::default()
        }
    }

    pub fn len(&self) -> usize {
        self.positions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }

    /// The position of an instrument (a flat default for an unknown id).
    #[inline]
    pub fn position(&self, instrument: InstrumentId) -> Position {
        self.positions
            .get(instrument as usize)
            .copied()
            .unwrap_or_default()
    }

    /// The signed position quantity.
    #[inline]
    pub fn qty(&self, instrument: InstrumentId) -> Qty {
        self.positions
            .get(instrument as usize)
            .map_or(Qty::ZERO, |p| p.qty)
    }

    pub fn positions(&self) -> &[Position] {
        &self.positions
    }

    /// Applies a fill (an unknown instrument is ignored).
    pub fn on_fill(
        &mut self,
        instrument: InstrumentId,
        side: Side,
        price: Price,
        qty: Qty,
        fee: Cash,
    ) {
        let Some(p) = self.positions.get_mut(instrument as usize) else {
            return;
        };
        let (r0, u0, f0) = (p.realised, p.unrealised, p.fees);
        p.fill(side, price, qty, fee);
        self.realised += p.realised - r0;
        self.unrealised += p.unrealised - u0;
        self.fees += p.fees - f0;
    }

    /// A commission paid in the instrument's base asset (see [`Position`]'s `debit`): the
    /// position shrinks by `qty` (an unknown instrument is ignored).
    pub fn on_base_commission(&mut self, instrument: InstrumentId, qty: Qty) {
        let Some(p) = self.positions.get_mut(instrument as usize) else {
            return;
        };
        let (r0, u0) = (p.realised, p.unrealised);
        p.debit(qty);
        self.realised += p.realised - r0;
        self.unrealised += p.unrealised - u0;
    }

    /// A funding payment of a perpetual (positive: received): realised P&L of the instrument
    /// it was paid on (an unknown instrument is ignored).
    pub fn on_funding(&mut self, instrument: InstrumentId, amount: Cash) {
        let Some(p) = self.positions.get_mut(instrument as usize) else {
            return;
        };
        let wide = i128::from(amount) * WIDE;
        p.realised += wide;
        p.funding += i128::from(amount);
        self.realised += wide;
    }

    /// Marks an instrument to `price` (the mid), unless the venue marks it. O(1).
    #[inline]
    pub fn mark(&mut self, instrument: InstrumentId, price: Price) {
        let Some(p) = self.positions.get_mut(instrument as usize) else {
            return;
        };
        if p.venue_marked {
            return;
        }
        p.mark = Some(price);
        if p.qty.0 != 0 {
            let u0 = p.unrealised;
            p.revalue();
            self.unrealised += p.unrealised - u0;
        }
    }

    /// The venue's mark price of a derivative (Binance USD-M `markPrice`): from now on its
    /// unrealised P&L and exposure are valued at the venue's mark, not at the book's mid.
    pub fn venue_mark(&mut self, instrument: InstrumentId, price: Price) {
        let Some(p) = self.positions.get_mut(instrument as usize) else {
            return;
        };
        p.venue_marked = true;
        p.mark = Some(price);
        if p.qty.0 != 0 {
            let u0 = p.unrealised;
            p.revalue();
            self.unrealised += p.unrealised - u0;
        }
    }

    /// Total realised P&L, floored.
    pub fn realised(&self) -> Cash {
        to_cash(floor_wide(self.realised))
    }

    /// Total unrealised P&L, floored.
    pub fn unrealised(&self) -> Cash {
        to_cash(floor_wide(self.unrealised))
    }

    /// Total fees (negative for net rebates).
    pub fn fees(&self) -> Cash {
        to_cash(self.fees)
    }

    /// Realised + unrealised - fees, floored once.
    #[inline]
    pub fn equity(&self) -> Cash {
        to_cash(floor_wide(self.realised + self.unrealised) - self.fees)
    }

    /// `sum(|position| * mark)` over instruments, truncated to 10^-8.
    pub fn gross_exposure(&self) -> Cash {
        to_cash(
            self.positions
                .iter()
                .map(Position::exposure_wide)
                .sum::<i128>()
                / WIDE,
        )
    }

    /// `sum(position * mark)` (signed), truncated to 10^-8.
    pub fn net_exposure(&self) -> Cash {
        to_cash(
            self.positions
                .iter()
                .map(|p| p.mark.map_or(0, |m| i128::from(p.qty.0) * i128::from(m.0)))
                .sum::<i128>()
                / WIDE,
        )
    }

    /// Sum of fill notionals over instruments, truncated to 10^-8.
    pub fn turnover(&self) -> Cash {
        to_cash(self.positions.iter().map(|p| p.turnover).sum::<i128>() / WIDE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn px(s: &str) -> Price {
        Price::parse(s.as_bytes()).expect("a price")
    }

    fn q(s: &str) -> Qty {
        match s.strip_prefix('-') {
            Some(abs) => -Qty::parse(abs.as_bytes()).expect("a qty"),
            None => Qty::parse(s.as_bytes()).expect("a qty"),
        }
    }

    /// 1.0 quote in cash units.
    const ONE: Cash = SCALE;

    #[test]
    fn fee_rounds_up_and_rebates_round_towards_zero() {
        // 0.002 * 60000 = 120 USDT; 7.5 bps = 0.09 USDT.
        assert_eq!(fee(px("60000"), q("0.002"), 750_000_000), 9_000_000);
        // 0.00001 * 60000.01 = 0.6000001; 7.5 bps = 0.000450000075 -> 0.00045001 (up).
        assert_eq!(fee(px("60000.01"), q("0.00001"), 750_000_000), 45_001);
        // Rebate of 1 bp: -0.00006000001 -> -0.00006 (towards zero, i.e. up).
        assert_eq!(fee(px("60000.01"), q("0.00001"), -100_000_000), -6_000);
        assert_eq!(fee(px("60000"), q("1"), 0), 0);
    }

    #[test]
    fn a_commission_in_the_base_asset_shrinks_the_position_and_costs_its_value() {
        let mut pf = Portfolio::new(1);
        // Buy 1 at 60000, the venue keeps 0.001 of it as commission.
        pf.on_fill(0, Side::Buy, px("60000"), q("1"), 0);
        pf.on_base_commission(0, q("0.001"));
        let p = pf.position(0);
        assert_eq!(p.qty(), q("0.999"));
        assert_eq!(p.fill_count(), 1);
        assert_eq!(pf.turnover(), 60_000 * ONE);
        // The commission's value at cost (0.001 * 60000 = 60) is lost, at any mark.
        assert_eq!(pf.equity(), -60 * ONE);
        pf.mark(0, px("61000"));
        // 0.999 * 61000 - 60000 = 939.
        assert_eq!(pf.equity(), 939 * ONE);
        // Selling what is left closes the position: nothing of the commission is recovered.
        pf.on_fill(0, Side::Sell, px("61000"), q("0.999"), 0);
        assert_eq!(pf.qty(0), Qty::ZERO);
        assert_eq!(pf.realised(), 939 * ONE);
        assert_eq!(pf.equity(), 939 * ONE);
        // A non-positive commission changes nothing; an unknown instrument is ignored.
        pf.on_base_commission(0, Qty::ZERO);
        pf.on_base_commission(7, q("1"));
        assert_eq!(pf.qty(0), Qty::ZERO);
    }

    #[test]
    fn long_round_trip_realises_the_difference() {
        let mut pf = Portfolio::new(1);
        pf.on_fill(0, Side::Buy, px("100"), q("2"), 0);
        pf.on_fill(0, Side::Buy, px("103"), q("1"), 0);
        let p = pf.position(0);
        assert_eq!(p.qty(), q("3"));
        // avg (200 + 103) / 3 = 101.
        assert_eq!(p.avg_entry_price(), Some(px("101")));
        pf.mark(0, px("104"));
        assert_eq!(pf.unrealised(), 9 * ONE);
        // Sell 1.5 at 105: realised 1.5 * (105 - 101) = 6.
        pf.on_fill(0, Side::Sell, px("105"), q("1.5"), 0);
        assert_eq!(pf.realised(), 6 * ONE);
        assert_eq!(pf.qty(0), q("1.5"));
        assert_eq!(pf.position(0).avg_entry_price(), Some(px("101")));
        // Mark 104 -> unrealised 1.5 * 3 = 4.5.
        assert_eq!(pf.unrealised(), 45 * ONE / 10);
        pf.on_fill(0, Side::Sell, px("99"), q("1.5"), 0);
        // Total: sells 157.5 + 148.5 = 306, buys 303: +3.
        assert_eq!(pf.realised(), 3 * ONE);
        assert_eq!(pf.unrealised(), 0);
        assert_eq!(pf.qty(0), Qty::ZERO);
        assert_eq!(pf.position(0).avg_entry_price(), None);
        assert_eq!(pf.turnover(), 609 * ONE);
    }

    #[test]
    fn short_and_flip() {
        let mut pf = Portfolio::new(2);
        pf.on_fill(1, Side::Sell, px("50"), q("4"), ONE); // fee 1
        assert_eq!(pf.qty(1), q("-4"));
        assert_eq!(pf.position(1).avg_entry_price(), Some(px("50")));
        pf.mark(1, px("48"));
        assert_eq!(pf.unrealised(), 8 * ONE);
        assert_eq!(pf.equity(), 7 * ONE);
        // Buy 6 at 47: closes 4 (+12), opens long 2 at 47.
        pf.on_fill(1, Side::Buy, px("47"), q("6"), 2 * ONE);
        assert_eq!(pf.realised(), 12 * ONE);
        assert_eq!(pf.qty(1), q("2"));
        assert_eq!(pf.position(1).avg_entry_price(), Some(px("47")));
        // The mark is still 48: unrealised 2.
        assert_eq!(pf.unrealised(), 2 * ONE);
        assert_eq!(pf.fees(), 3 * ONE);
        assert_eq!(pf.equity(), 11 * ONE);
        assert_eq!(pf.gross_exposure(), 96 * ONE);
        assert_eq!(pf.net_exposure(), 96 * ONE);
        assert_eq!(pf.position(0), Position::default());
    }

    #[test]
    fn partial_closes_conserve_the_cost_exactly() {
        // Buy 3 lots at prices whose average is not a whole unit, close in 3 odd pieces.
        let mut pf = Portfolio::new(1);
        pf.on_fill(0, Side::Buy, px("100.00000001"), q("0.00000001"), 0);
        pf.on_fill(0, Side::Buy, px("100.00000002"), q("0.00000002"), 0);
        // Cost: 100.00000001e8*1 + 100.00000002e8*2 (raw units squared).
        pf.on_fill(0, Side::Sell, px("100"), q("0.00000001"), 0);
        pf.on_fill(0, Side::Sell, px("100"), q("0.00000001"), 0);
        pf.on_fill(0, Side::Sell, px("100"), q("0.00000001"), 0);
        // Exactly -(1 + 2*2) raw price units * 1 raw qty unit = -5e-16 quote: floors to -1e-8.
        assert_eq!(pf.realised(), -1);
        assert_eq!(pf.qty(0), Qty::ZERO);
        assert_eq!(pf.position(0).cost, 0);
        assert_eq!(pf.position(0).realised, -5);
    }

    #[test]
    fn floor_wide_is_floor_division_on_both_paths() {
        for v in [
            0,
            1,
            -1,
            WIDE - 1,
            -WIDE + 1,
            WIDE,
            -WIDE,
            i128::from(i64::MAX),
            i128::from(i64::MIN),
            i128::from(i64::MAX) + 1,
            i128::from(i64::MIN) - 1,
            10i128.pow(30) + 7,
            -(10i128.pow(30)) - 7,
        ] {
            assert_eq!(floor_wide(v), v.div_euclid(WIDE), "{v}");
        }
    }

    #[test]
    fn rounding_helpers() {
        assert_eq!(floor_to(105, 10), 100);
        assert_eq!(floor_to(-105, 10), -110);
        assert_eq!(ceil_to(101, 10), 110);
        assert_eq!(ceil_to(100, 10), 100);
        assert_eq!(ceil_to(-105, 10), -100);
        assert_eq!(to_cash(i128::MAX), i64::MAX);
        assert_eq!(to_cash(i128::MIN), i64::MIN);
    }

    #[test]
    fn a_venue_mark_values_the_position_and_mids_no_longer_do() {
        let mut p = Portfolio::new(1);
        p.on_fill(0, Side::Buy, px("100"), q("2"), 0);
        p.mark(0, px("101"));
        assert_eq!(p.unrealised(), 2 * ONE);
        p.venue_mark(0, px("99"));
        assert_eq!(p.unrealised(), -2 * ONE);
        p.mark(0, px("105"));
        assert_eq!(
            (p.unrealised(), p.position(0).mark()),
            (-2 * ONE, Some(px("99")))
        );
    }

    #[test]
    fn funding_is_realised_pnl() {
        let mut p = Portfolio::new(1);
        p.on_fill(0, Side::Sell, px("100"), q("1"), 0);
        p.on_funding(0, 25 * ONE / 100);
        p.on_funding(0, -5 * ONE / 100);
        assert_eq!(p.realised(), 20 * ONE / 100);
        assert_eq!(p.position(0).funding(), 20 * ONE / 100);
        assert_eq!(p.equity(), p.realised() + p.unrealised() - p.fees());
        p.on_funding(7, ONE);
        assert_eq!(p.realised(), 20 * ONE / 100);
    }

    #[test]
    fn instrument_spec_from_manifest() {
        let instrument = rt_manifest::model::Instrument {
            tick_size: rt_manifest::Fixed::parse("0.01").expect("decimal"),
            lot_size: rt_manifest::Fixed::parse("0.00001").expect("decimal"),
            min_notional: rt_manifest::Fixed::parse("5").expect("decimal"),
            maker_fee_bps: rt_manifest::Fixed::parse("-1").expect("decimal"),
            taker_fee_bps: rt_manifest::Fixed::parse("7.5").expect("decimal"),
            listing: None,
            leverage: None,
            margin_type: None,
        };
        let spec = InstrumentSpec::from_manifest(&instrument);
        assert_eq!(spec.tick, px("0.01"));
        assert_eq!(spec.lot, q("0.00001"));
        assert_eq!(spec.min_notional, 5 * ONE);
        assert_eq!(spec.fee(px("60000"), q("0.002"), false), 9_000_000);
        assert_eq!(spec.fee(px("60000"), q("0.002"), true), -1_200_000);
    }
}
