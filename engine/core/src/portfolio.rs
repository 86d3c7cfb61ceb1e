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
//!
//! # Contracts (swaps and futures)
//!
//! A derivative's quantity counts contracts, each worth a fixed amount ([`ContractValue`], from
//! the venue's contract value and multiplier, OKX `ctVal` x `ctMult`):
//! - **linear** (settled in the quote currency): one contract at price `p` is worth
//!   `p * multiplier` of the quote; P&L and fees are in the quote.
//! - **inverse** (settled in the base asset, valued in the quote currency, OKX `BTC-USD-SWAP`):
//!   one contract is worth `multiplier` of the quote, i.e. `multiplier / p` of the base asset.
//!   A long position gains base asset as the price rises: its P&L closing at `p2` what opened
//!   at `p1` is `qty * multiplier * (1/p1 - 1/p2)`, and fees are charged in the base asset on
//!   `qty * multiplier / p`.
//!
//! Both are kept with the same arithmetic as spot, on each contract's **value price** in the
//! settlement currency ([`ContractValue::value_price`]): `p` (spot), `p * multiplier`
//! (linear), `-multiplier / p` (inverse: negative, so that it rises with `p` as a long
//! position's value does). A position's own realised and unrealised P&L, fees and funding are
//! in its settlement currency. The portfolio's totals and every limit add the quote
//! currency: an inverse position's amounts count at its mark (`amount * mark`), and notional
//! and exposure are `p * qty` (spot), `p * multiplier * qty` (linear) and `multiplier * qty`
//! (inverse, the quote value of the contracts whatever the price): [`ContractValue::notional`].
//! Linear values are exact when the tick's and the multiplier's decimals add up to at most 8
//! (the manifest checks it); an inverse value is rounded to the nearest 10^-8 of the base
//! asset per contract.

use crate::types::{Price, Qty, Side, SCALE};

/// Money in units of 10^-8 of the quote currency.
pub type Cash = i64;

/// Index of an instrument in the engine's instrument table.
pub type InstrumentId = u32;

/// 10^-16 quote units per 10^-8 quote unit: the scale of `price.raw * qty.raw`.
const WIDE: i128 = SCALE as i128;
/// bps per 1 (10^4) times the fixed-point scale of the bps value (10^8) times [`WIDE`].
const FEE_DIV: i128 = 10_000 * (SCALE as i128) * WIDE;

/// How a quantity of an instrument is valued: a contract's terms (see the module
/// documentation, "Contracts").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ContractValue {
    /// Spot, or a linear contract on one unit of the base asset: a quantity is of the base
    /// asset, worth price x quantity in the quote currency, which settles.
    #[default]
    Unit,
    /// A linear contract on `multiplier` (10^-8 units, positive) of the base asset, settled in
    /// the quote currency.
    Linear { multiplier: i64 },
    /// An inverse contract worth `multiplier` (10^-8 units, positive) of the quote currency,
    /// settled in the base asset.
    Inverse { multiplier: i64 },
}

impl ContractValue {
    /// The contract terms of a manifest instrument (`listing.contract`: value x multiplier);
    /// spot, and a linear contract on exactly one unit, are [`ContractValue::Unit`].
    pub fn from_manifest(instrument: &rt_manifest::model::Instrument) -> ContractValue {
        let Some(c) = instrument
            .listing
            .as_ref()
            .and_then(|l| l.contract.as_ref())
        else {
            return ContractValue::Unit;
        };
        let product = i128::from(c.value.raw()) * i128::from(c.multiplier.raw()) / WIDE;
        let multiplier = i64::try_from(product).unwrap_or(i64::MAX).max(1);
        match c.kind {
            rt_manifest::model::ContractType::Linear if multiplier == SCALE => ContractValue::Unit,
            rt_manifest::model::ContractType::Linear => ContractValue::Linear { multiplier },
            rt_manifest::model::ContractType::Inverse => ContractValue::Inverse { multiplier },
        }
    }

    /// Settled in the base asset (an inverse contract): its amounts count at the mark.
    #[inline]
    pub const fn is_inverse(self) -> bool {
        matches!(self, ContractValue::Inverse { .. })
    }

    /// The value of one unit of quantity at `price` (raw), in 10^-8 of the settlement
    /// currency, signed so that P&L is computed as for spot: `price`, `price * multiplier`
    /// (floored), `-multiplier / price` (rounded to nearest; zero for a non-positive price).
    #[inline]
    pub fn value_price(self, price: i64) -> i64 {
        match self {
            ContractValue::Unit => price,
            ContractValue::Linear { multiplier } => {
                saturate((i128::from(price) * i128::from(multiplier)).div_euclid(WIDE))
            }
            ContractValue::Inverse { multiplier } => {
                if price <= 0 {
                    return 0;
                }
                let p = i128::from(price);
                let num = i128::from(multiplier) * WIDE;
                -saturate((num + p / 2) / p)
            }
        }
    }

    /// The price whose [`value_price`](Self::value_price) is `value` (the way back, for an
    /// average entry), truncated; `None` where there is none.
    pub fn price_of_value(self, value: i128) -> Option<i64> {
        let price = match self {
            ContractValue::Unit => value,
            ContractValue::Linear { multiplier } => value * WIDE / i128::from(multiplier),
            ContractValue::Inverse { multiplier } => {
                if value >= 0 {
                    return None;
                }
                i128::from(multiplier) * WIDE / -value
            }
        };
        i64::try_from(price).ok()
    }

    /// The notional of `qty` (raw, any sign gives a same-signed result) at `price` (raw), in
    /// 10^-16 of the quote currency: `price * qty`, `price * multiplier * qty`, and for an
    /// inverse contract `multiplier * qty`, whatever the price. Saturates.
    #[inline]
    pub fn notional_wide(self, price: i128, qty: i128) -> i128 {
        match self {
            ContractValue::Unit => price.saturating_mul(qty),
            ContractValue::Linear { multiplier } => {
                price
                    .saturating_mul(qty)
                    .saturating_mul(i128::from(multiplier))
                    / WIDE
            }
            ContractValue::Inverse { multiplier } => i128::from(multiplier).saturating_mul(qty),
        }
    }

    /// [`notional_wide`](Self::notional_wide) in [`Cash`] units (truncated).
    #[inline]
    pub fn notional(self, price: Price, qty: Qty) -> Cash {
        to_cash(self.notional_wide(i128::from(price.0), i128::from(qty.0)) / WIDE)
    }

    /// A quantity in units of the base asset (raw), for limits on an asset summed over
    /// venues: contracts times the multiplier of a linear contract. An inverse contract has no
    /// fixed base quantity (`None`; the manifest keeps it out of asset limits).
    #[inline]
    pub fn base_qty(self, qty: i128) -> Option<i128> {
        match self {
            ContractValue::Unit => Some(qty),
            ContractValue::Linear { multiplier } => Some(qty * i128::from(multiplier) / WIDE),
            ContractValue::Inverse { .. } => None,
        }
    }
}

/// Saturating `i128` to `i64`.
#[inline]
fn saturate(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

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
    /// How a quantity is valued (spot: [`ContractValue::Unit`]).
    pub contract: ContractValue,
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
            contract: ContractValue::from_manifest(instrument),
        }
    }

    /// The fee for a fill: maker or taker rate on the fill's value in the settlement currency
    /// (a contract's value price), rounded up (see [`fee`]).
    #[inline]
    pub fn fee(&self, price: Price, qty: Qty, maker: bool) -> Cash {
        let bps = if maker {
            self.maker_fee_bps
        } else {
            self.taker_fee_bps
        };
        match self.contract {
            ContractValue::Unit => fee(price, qty, bps),
            c => fee(Price(c.value_price(price.0).saturating_abs()), qty, bps),
        }
    }

    /// The notional of `qty` at `price` in the quote currency (see [`ContractValue::notional`]).
    #[inline]
    pub fn notional(&self, price: Price, qty: Qty) -> Cash {
        self.contract.notional(price, qty)
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

/// One instrument's position and P&L, in its settlement currency (the quote currency, or the
/// base asset of an inverse contract: see the module documentation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Position {
    qty: Qty,
    /// `sum(value_price.raw * signed qty.raw)` of the open position (10^-16 settlement).
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
    contract: ContractValue,
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
    /// A contract's is the price of its average value (for an inverse contract the harmonic
    /// mean of the entry prices, as the venue reports it).
    pub fn avg_entry_price(&self) -> Option<Price> {
        if self.qty.0 == 0 {
            return None;
        }
        self.contract
            .price_of_value(self.cost / i128::from(self.qty.0))
            .map(Price)
    }

    /// How the position's quantity is valued.
    pub const fn contract(&self) -> ContractValue {
        self.contract
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

    /// The notional of `|position|` at the mark (10^-8 quote, truncated; see
    /// [`ContractValue::notional`]); zero without a mark.
    pub fn exposure(&self) -> Cash {
        to_cash(self.exposure_wide() / WIDE)
    }

    /// [`exposure`](Self::exposure) in 10^-16 of the quote currency.
    pub fn exposure_wide(&self) -> i128 {
        self.mark.map_or(0, |m| {
            self.contract
                .notional_wide(i128::from(m.0), i128::from(self.qty.0).abs())
        })
    }

    /// The signed notional of the position at the mark (10^-16 quote).
    fn net_exposure_wide(&self) -> i128 {
        self.mark.map_or(0, |m| {
            self.contract
                .notional_wide(i128::from(m.0), i128::from(self.qty.0))
        })
    }

    /// (realised, unrealised, fees) in the quote currency: as they are, or an inverse
    /// contract's (in the base asset) at the mark. Realised and unrealised in 10^-16
    /// (floored), fees in 10^-8 (rounded up).
    #[inline]
    fn quote_parts(&self) -> (i128, i128, i128) {
        if !self.contract.is_inverse() {
            return (self.realised, self.unrealised, self.fees);
        }
        let m = i128::from(self.mark.map_or(0, |m| m.0));
        (
            (self.realised * m).div_euclid(WIDE),
            (self.unrealised * m).div_euclid(WIDE),
            div_ceil_i128(self.fees * m, WIDE),
        )
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

    /// Applies a fill. `fee` is what [`fee`] charged for it (in the settlement currency).
    fn fill(&mut self, side: Side, price: Price, qty: Qty, fee: Cash) {
        self.turnover += self
            .contract
            .notional_wide(i128::from(price.0), i128::from(qty.0));
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
    /// at zero cost). A negative `qty` is a rebate paid in the base asset: it joins the
    /// position as if bought at price zero (a gain once marked). Not a fill: turnover and fill
    /// counts are unchanged.
    fn debit(&mut self, qty: Qty) {
        match qty.0 {
            0 => return,
            q if q > 0 => self.trade(Side::Sell, Price::ZERO, qty),
            q => self.trade(Side::Buy, Price::ZERO, Qty(q.saturating_neg())),
        }
        self.revalue();
    }

    /// Moves the position and its cost basis by a trade of `qty` at `price`.
    fn trade(&mut self, side: Side, price: Price, qty: Qty) {
        let px = i128::from(self.contract.value_price(price.0));
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
            Some(m) => {
                i128::from(self.qty.0) * i128::from(self.contract.value_price(m.0)) - self.cost
            }
            None => 0,
        };
    }
}

/// Positions of every instrument of one account, with running totals.
#[derive(Clone, Debug, Default)]
pub struct Portfolio {
    positions: Vec<Position>,
    /// Sums over positions in the quote currency (an inverse contract's at its mark), kept
    /// incrementally so that reading equity is O(1).
    realised: i128,
    unrealised: i128,
    fees: i128,
}

impl Portfolio {
    /// A flat portfolio of `instruments` instruments (ids `0..instruments`), valued as spot.
    pub fn new(instruments: usize) -> Portfolio {
        Portfolio {
            positions: vec![Position::default(); instruments],
            ..Portfolio::default()
        }
    }

    /// A flat portfolio of one instrument per contract term (ids in order).
    pub fn with_contracts(contracts: impl IntoIterator<Item = ContractValue>) -> Portfolio {
        Portfolio {
            positions: contracts
                .into_iter()
                .map(|contract| Position {
                    contract,
                    ..Position::default()
                })
                .collect(),
            ..Portfolio::default()
        }
    }

    /// Changes position `instrument` with `change`, keeping the totals: O(1).
    #[inline]
    fn update(&mut self, instrument: InstrumentId, change: impl FnOnce(&mut Position)) {
        let Some(p) = self.positions.get_mut(instrument as usize) else {
            return;
        };
        let (r0, u0, f0) = p.quote_parts();
        change(p);
        let (r1, u1, f1) = p.quote_parts();
        self.realised += r1 - r0;
        self.unrealised += u1 - u0;
        self.fees += f1 - f0;
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
        self.update(instrument, |p| p.fill(side, price, qty, fee));
    }

    /// A commission paid in the instrument's base asset (see [`Position`]'s `debit`): the
    /// position shrinks by `qty`, or grows by a rebate's (negative `qty`); an unknown
    /// instrument is ignored.
    pub fn on_base_commission(&mut self, instrument: InstrumentId, qty: Qty) {
        self.update(instrument, |p| p.debit(qty));
    }

    /// A funding payment of a perpetual (positive: received), in the instrument's settlement
    /// currency: realised P&L of the instrument it was paid on (an unknown instrument is
    /// ignored).
    pub fn on_funding(&mut self, instrument: InstrumentId, amount: Cash) {
        self.update(instrument, |p| {
            p.realised += i128::from(amount) * WIDE;
            p.funding += i128::from(amount);
        });
    }

    /// A futures contract delivered at expiry: the venue closed the whole position at the
    /// delivery `price` without a fill of ours. Its P&L is realised at that price by the
    /// contract's terms (linear or inverse, as a fill's), no fee, no turnover, no fill counted;
    /// the instrument is marked at `price`. Returns the quantity delivered (the signed position
    /// before; zero when flat or unknown).
    pub fn on_delivery(&mut self, instrument: InstrumentId, price: Price) -> Qty {
        let qty = self.qty(instrument);
        if qty.0 == 0 {
            return Qty::ZERO;
        }
        let side = if qty.0 > 0 { Side::Sell } else { Side::Buy };
        self.update(instrument, |p| {
            p.trade(side, price, Qty(qty.0.saturating_abs()));
            p.mark = Some(price);
            p.revalue();
        });
        qty
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
        if p.qty.0 == 0 && !p.contract.is_inverse() {
            // Nothing to revalue; an inverse contract's realised P&L counts at the mark.
            p.mark = Some(price);
            return;
        }
        self.update(instrument, |p| {
            p.mark = Some(price);
            p.revalue();
        });
    }

    /// The venue's mark price of a derivative (Binance USD-M `markPrice`): from now on its
    /// unrealised P&L and exposure are valued at the venue's mark, not at the book's mid.
    pub fn venue_mark(&mut self, instrument: InstrumentId, price: Price) {
        self.update(instrument, |p| {
            p.venue_marked = true;
            p.mark = Some(price);
            p.revalue();
        });
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

    /// One instrument's realised + unrealised - fees in the quote currency (an inverse
    /// contract's counted at its mark), floored once: its share of [`equity`](Self::equity)
    /// (0 for an unknown instrument).
    pub fn equity_of(&self, instrument: InstrumentId) -> Cash {
        self.positions.get(instrument as usize).map_or(0, |p| {
            let (r, u, f) = p.quote_parts();
            to_cash(floor_wide(r + u) - f)
        })
    }

    /// Realised + unrealised - fees, floored once.
    #[inline]
    pub fn equity(&self) -> Cash {
        to_cash(floor_wide(self.realised + self.unrealised) - self.fees)
    }

    /// `sum(|position| * mark)` over instruments (notional: see [`ContractValue::notional`]),
    /// truncated to 10^-8.
    pub fn gross_exposure(&self) -> Cash {
        to_cash(
            self.positions
                .iter()
                .map(Position::exposure_wide)
                .sum::<i128>()
                / WIDE,
        )
    }

    /// `sum(position * mark)` (signed notional), truncated to 10^-8.
    pub fn net_exposure(&self) -> Cash {
        to_cash(
            self.positions
                .iter()
                .map(Position::net_exposure_wide)
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
        // A zero commission changes nothing; an unknown instrument is ignored.
        pf.on_base_commission(0, Qty::ZERO);
        pf.on_base_commission(7, q("1"));
        assert_eq!(pf.qty(0), Qty::ZERO);
    }

    #[test]
    fn a_rebate_in_the_base_asset_joins_the_position_at_no_cost() {
        let mut pf = Portfolio::new(1);
        // Buy 1 at 60000 as maker; the venue pays a rebate of 0.0001 of the base asset.
        pf.on_fill(0, Side::Buy, px("60000"), q("1"), 0);
        pf.on_base_commission(0, q("-0.0001"));
        let p = pf.position(0);
        assert_eq!(p.qty(), q("1.0001"));
        assert_eq!(p.fill_count(), 1);
        // Marked at 60000 the rebate is worth 6.
        pf.mark(0, px("60000"));
        assert_eq!(pf.equity(), 6 * ONE);
        // Selling the whole 1.0001 at 60000 realises it.
        pf.on_fill(0, Side::Sell, px("60000"), q("1.0001"), 0);
        assert_eq!(pf.qty(0), Qty::ZERO);
        assert_eq!(pf.realised(), 6 * ONE);
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

    /// OKX BTC-USDT-SWAP: a linear contract on 0.01 BTC, settled in USDT.
    const LINEAR: ContractValue = ContractValue::Linear {
        multiplier: ONE / 100,
    };
    /// OKX UNI-USD-SWAP: an inverse contract worth 10 USD, settled in UNI.
    const INVERSE: ContractValue = ContractValue::Inverse {
        multiplier: 10 * ONE,
    };

    #[test]
    fn a_linear_contract_counts_its_multiplier_in_pnl_fees_and_notional() {
        let spec = InstrumentSpec {
            tick: px("0.1"),
            lot: q("1"),
            min_notional: 0,
            maker_fee_bps: 200_000_000,
            taker_fee_bps: 500_000_000,
            contract: LINEAR,
        };
        // 3 contracts at 30000.1: 0.03 BTC, 900.003 USDT; 5 bps = 0.4500015 -> 0.45000150.
        let fee = spec.fee(px("30000.1"), q("3"), false);
        assert_eq!(fee, 45_000_150);
        assert_eq!(spec.notional(px("30000.1"), q("3")), 900_003 * ONE / 1000);
        let mut pf = Portfolio::with_contracts([LINEAR]);
        pf.on_fill(0, Side::Buy, px("30000.1"), q("3"), fee);
        assert_eq!(pf.qty(0), q("3"));
        assert_eq!(pf.position(0).avg_entry_price(), Some(px("30000.1")));
        pf.mark(0, px("30005"));
        // 3 * 0.01 * (30005 - 30000.1) = 0.147.
        assert_eq!(pf.unrealised(), 147 * ONE / 1000);
        assert_eq!(pf.gross_exposure(), 90_015 * ONE / 100);
        assert_eq!(pf.net_exposure(), 90_015 * ONE / 100);
        pf.on_fill(0, Side::Sell, px("30010.1"), q("3"), 0);
        // 3 * 0.01 * 10 = 0.3 realised; the turnover counts both legs' notional.
        assert_eq!(pf.realised(), 3 * ONE / 10);
        assert_eq!(pf.equity(), 3 * ONE / 10 - fee);
        assert_eq!(pf.turnover(), 900_003 * ONE / 1000 + 900_303 * ONE / 1000);
        // An asset limit counts the BTC the contracts are on.
        assert_eq!(
            LINEAR.base_qty(3 * ONE as i128),
            Some(3 * ONE as i128 / 100)
        );
    }

    #[test]
    fn a_delivered_future_is_closed_at_the_delivery_price_without_a_fill() {
        // Linear: long 3 contracts of 0.01 BTC at 30000.1, delivered at 30100.1:
        // 3 * 0.01 * 100 = 3 USDT realised; no fee, no turnover, no fill.
        let mut pf = Portfolio::with_contracts([LINEAR, INVERSE]);
        pf.on_fill(0, Side::Buy, px("30000.1"), q("3"), 45_000_150);
        let turnover = pf.turnover();
        assert_eq!(pf.on_delivery(0, px("30100.1")), q("3"));
        let p = pf.position(0);
        assert_eq!(
            (p.qty(), p.realised(), p.unrealised()),
            (Qty::ZERO, 3 * ONE, 0)
        );
        assert_eq!((p.fees(), p.fill_count()), (45_000_150, 1));
        assert_eq!(pf.turnover(), turnover);
        assert_eq!(pf.equity(), 3 * ONE - 45_000_150);
        // Flat: nothing more is delivered.
        assert_eq!(pf.on_delivery(0, px("1")), Qty::ZERO);
        assert_eq!(pf.position(0).realised(), 3 * ONE);
        // Inverse: short 2 contracts of 10 USD at 5, delivered at 4: 2 * 10 * (1/4 - 1/5) =
        // 1 UNI realised (OKX's short P&L of an inverse contract), in USD at 4: 4.
        pf.on_fill(1, Side::Sell, px("5"), q("2"), 0);
        assert_eq!(pf.on_delivery(1, px("4")), q("-2"));
        let p = pf.position(1);
        assert_eq!(
            (p.qty(), p.realised(), p.mark()),
            (Qty::ZERO, ONE, Some(px("4")))
        );
        assert_eq!(pf.realised(), 3 * ONE + 4 * ONE);
    }

    #[test]
    fn an_inverse_contract_settles_in_the_base_asset_and_counts_at_the_mark() {
        // 2 contracts of 10 USD at 5: each worth 2 UNI.
        assert_eq!(INVERSE.value_price(px("5").0), -2 * ONE);
        assert_eq!(INVERSE.notional(px("5"), q("2")), 20 * ONE);
        // The notional of an inverse contract is its USD value whatever the price.
        assert_eq!(INVERSE.notional(px("7.3"), q("2")), 20 * ONE);
        let spec = InstrumentSpec {
            tick: px("0.001"),
            lot: q("1"),
            min_notional: 0,
            maker_fee_bps: 200_000_000,
            taker_fee_bps: 500_000_000,
            contract: INVERSE,
        };
        // 5 bps of 4 UNI, charged in UNI.
        assert_eq!(spec.fee(px("5"), q("2"), false), 200_000);
        let mut pf = Portfolio::with_contracts([ContractValue::Unit, INVERSE]);
        pf.on_fill(1, Side::Buy, px("5"), q("2"), 0);
        pf.mark(1, px("5.5"));
        // 2 * 10 * (1/5 - 1/5.5) = 0.36363636 UNI (10 / 5.5 rounds to 1.81818182), and in
        // USD at the mark 5.5: 1.99999998.
        let p = pf.position(1);
        assert_eq!(p.unrealised(), 36_363_636);
        assert_eq!(pf.unrealised(), 199_999_998);
        assert_eq!(pf.gross_exposure(), 20 * ONE);
        assert_eq!(p.avg_entry_price(), Some(px("5")));
        // Close at 4: 2 * (10/5 - 10/4) = -1 UNI realised, in USD at the mark.
        pf.on_fill(1, Side::Sell, px("4"), q("2"), 0);
        assert_eq!(pf.position(1).realised(), -ONE);
        assert_eq!(pf.position(1).qty(), Qty::ZERO);
        assert_eq!(pf.realised(), -55 * ONE / 10);
        assert_eq!(pf.equity(), -55 * ONE / 10);
        // Flat, the UNI lost is still valued at the mark as it moves.
        pf.mark(1, px("4"));
        assert_eq!(pf.realised(), -4 * ONE);
        assert_eq!(pf.equity(), -4 * ONE);
        // The instrument's share of the equity is in the quote currency too.
        assert_eq!(
            (pf.equity_of(1), pf.equity_of(0), pf.equity_of(9)),
            (-4 * ONE, 0, 0)
        );
        assert_eq!(pf.gross_exposure(), 0);
        // A fee in UNI counts at the mark too, rounded up.
        pf.on_fill(1, Side::Sell, px("4"), q("1"), 125_000);
        assert_eq!(pf.fees(), 500_000);
        assert_eq!(pf.net_exposure(), -10 * ONE);
        assert_eq!(INVERSE.base_qty(1), None);
    }

    #[test]
    fn an_inverse_average_entry_is_the_harmonic_mean() {
        let mut pf = Portfolio::with_contracts([INVERSE]);
        pf.on_fill(0, Side::Buy, px("4"), q("1"), 0);
        pf.on_fill(0, Side::Buy, px("6"), q("1"), 0);
        // 2 / (1/4 + 1/6) = 4.8.
        assert_eq!(pf.position(0).avg_entry_price(), Some(px("4.8")));
        // Half closed at 4.8: nothing realised beyond the value rounding (10^-8 UNI).
        pf.on_fill(0, Side::Sell, px("4.8"), q("1"), 0);
        assert!(pf.position(0).realised().abs() <= 1);
    }

    #[test]
    fn contract_terms_come_from_the_manifest_listing() {
        let text = include_str!("../../../tests/contract/example.manifest.json");
        let m = rt_manifest::load(text).expect("the example is valid");
        let mut inst = m
            .exchanges
            .values()
            .next()
            .expect("an exchange")
            .instruments
            .values()
            .next()
            .expect("an instrument")
            .clone();
        assert_eq!(ContractValue::from_manifest(&inst), ContractValue::Unit);
        let contract = |kind, value: &str, multiplier: &str| {
            use rt_manifest::model::{Contract, InstrumentType, Listing};
            let fixed = |v: &str| rt_manifest::Fixed::parse(v).expect("decimal");
            Listing {
                symbol: "X-USD-SWAP".to_owned(),
                kind: InstrumentType::Swap,
                min_size: fixed("1"),
                contract: Some(Contract {
                    value: fixed(value),
                    multiplier: fixed(multiplier),
                    value_currency: "USD".to_owned(),
                    kind,
                    settle_currency: "X".to_owned(),
                }),
                expiry_ms: None,
            }
        };
        use rt_manifest::model::ContractType::{Inverse, Linear};
        inst.listing = Some(contract(Inverse, "10", "1"));
        assert_eq!(ContractValue::from_manifest(&inst), INVERSE);
        inst.listing = Some(contract(Linear, "0.1", "0.1"));
        assert_eq!(ContractValue::from_manifest(&inst), LINEAR);
        // A linear contract on exactly one unit is valued as spot.
        inst.listing = Some(contract(Linear, "1", "1"));
        assert_eq!(ContractValue::from_manifest(&inst), ContractValue::Unit);
    }
}
