//! Features: named, parameterised numbers computed from the order book, the public trades and
//! the strategy's own position, for models trained offline and run live on the same values.
//!
//! A [`FeatureSet`] is built from a declaration (`rt_manifest::features::FeatureDecl`, in YAML
//! `conf/features/<name>.yaml`): its width and column order are the declaration's. It is fed
//! incrementally, in event time (ns, no clock of its own): [`FeatureSet::on_book`] after every
//! book change, [`FeatureSet::on_trade`] for every public trade, [`FeatureSet::set_position`]
//! when the position changes, [`FeatureSet::book_lost`] when the book cannot be trusted, and
//! [`FeatureSet::compute`] writes the current values into a caller's `&mut [f32]` (ONNX models
//! take float32). State stays exact (fixed-point integers) where it accumulates; windows are
//! ring buffers whose capacity is kept, so a set in steady state does not allocate.
//!
//! The features (window `W`, event time, half-open `(now - W, now]`):
//!
//! - `book_imbalance{levels}`: `(B - A) / (B + A)`, B and A the total bid and ask size over the
//!   best `levels` levels ([`DepthImbalance`], the rule the imbalance taker trades on).
//! - `microprice_offset`: microprice minus mid, in ticks: `spread_ticks * (b - a) / (2 (b + a))`
//!   with b, a the sizes at the touch.
//! - `spread`: best ask minus best bid, in ticks.
//! - `mid_return{window_ms}`: `mid(now) / mid(now - W) - 1`, where `mid(t)` is the last mid at
//!   or before `t`; NaN until the data covers `W`.
//! - `trade_imbalance{window_ms}`: `(buy - sell) / (buy + sell)` of the aggressor volume of
//!   the trades in the window; 0 without trades.
//! - `realized_vol{window_ms}`: `sqrt(sum r^2)` over the mid changes in the window, `r` the log
//!   change of the mid (no change across a lost book); 0 without changes.
//! - `touch_qty{side}`: the size at the best bid or ask (base units).
//! - `inventory`: the position (base units, signed).
//!
//! A value that cannot be known (no book, a side missing, a window not yet covered) is NaN.

use std::collections::VecDeque;

use rt_manifest::features::{BookSide, FeatureDecl, FeatureSetDecl};

use crate::book::OrderBook;
use crate::event::{Level, Trade};
use crate::types::{Nanos, Price, Qty, Side, SCALE};

/// Why a feature set could not be built or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeatureError {
    #[error("{path}: {message}")]
    Param { path: String, message: String },
    #[error("the tick size must be positive, found {0}")]
    Tick(Price),
    #[error("the output has {found} slots, the feature set is {width} wide")]
    Width { width: usize, found: usize },
}

/// Bid and ask size summed over the best levels of a book: the one definition of book
/// imbalance, as a feature ([`DepthImbalance::value`]) and as a trading rule
/// ([`DepthImbalance::leans`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DepthImbalance {
    pub bid: i128,
    pub ask: i128,
}

impl DepthImbalance {
    /// The sums over the best `levels` levels of each side.
    #[inline]
    pub fn of(book: &OrderBook, levels: usize) -> DepthImbalance {
        DepthImbalance {
            bid: i128::from(book.total_qty(Side::Buy, levels).0),
            ask: i128::from(book.total_qty(Side::Sell, levels).0),
        }
    }

    /// `(B - A) / (B + A)` in [-1, 1]; `None` for an empty book.
    #[inline]
    pub fn value(&self) -> Option<f64> {
        let total = self.bid + self.ask;
        (total > 0).then(|| (self.bid - self.ask) as f64 / total as f64)
    }

    /// The side the book leans to when `|value| >= threshold` (a fraction in 10^-8 units),
    /// decided exactly: `(B - A) * 10^8 >= threshold * (B + A)` in `i128`.
    #[inline]
    pub fn leans(&self, threshold: i64) -> Option<Side> {
        let total = self.bid + self.ask;
        if total <= 0 {
            return None;
        }
        let lean = (self.bid - self.ask) * i128::from(SCALE);
        let bar = i128::from(threshold) * total;
        if lean >= bar {
            Some(Side::Buy)
        } else if -lean >= bar {
            Some(Side::Sell)
        } else {
            None
        }
    }
}

/// Squared log returns are summed in units of 10^-24, exactly (no drift when the window
/// subtracts what it added).
const SQ_SCALE: f64 = 1e24;
/// Ring buffers start with this capacity (and keep what they grow to).
const RING: usize = 256;

/// One feature's state.
#[derive(Clone, Debug)]
enum Slot {
    Imbalance {
        levels: usize,
        value: f64,
    },
    Microprice,
    Spread,
    MidReturn {
        window: Nanos,
        /// `(time, bid + ask)` at every mid change; the front is the last one at or before
        /// `now - window` once the data covers the window.
        history: VecDeque<(Nanos, i64)>,
    },
    TradeImbalance {
        window: Nanos,
        /// `(time, signed size)`: positive for a buy aggressor.
        trades: VecDeque<(Nanos, i64)>,
        buy: i128,
        sell: i128,
    },
    RealizedVol {
        window: Nanos,
        /// `(time, r^2 in 10^-24)` for every mid change.
        moves: VecDeque<(Nanos, u128)>,
        sum: u128,
    },
    Touch(Side),
    Inventory,
}

/// A declared set of features, updated incrementally; see the module documentation.
#[derive(Clone, Debug)]
pub struct FeatureSet {
    decls: Vec<FeatureDecl>,
    names: Vec<String>,
    slots: Vec<Slot>,
    tick: f64,
    now: Nanos,
    bid: Option<Level>,
    ask: Option<Level>,
    /// `bid + ask` (twice the mid, exact) of the current book.
    mid2: Option<i64>,
    /// The previous mid for realised volatility (`None` after a lost book).
    prev_mid2: Option<i64>,
    position: Qty,
}

fn window_ns(path: &str, window_ms: u64) -> Result<Nanos, FeatureError> {
    if window_ms == 0 || window_ms > rt_manifest::features::MAX_WINDOW_MS {
        return Err(FeatureError::Param {
            path: path.to_owned(),
            message: format!(
                "must be 1..{}, found {window_ms}",
                rt_manifest::features::MAX_WINDOW_MS
            ),
        });
    }
    // At most one day: the product fits.
    Ok(window_ms as Nanos * 1_000_000)
}

impl FeatureSet {
    /// A set computing `features` in this order, for an instrument of tick size `tick`.
    pub fn new(features: &[FeatureDecl], tick: Price) -> Result<FeatureSet, FeatureError> {
        if tick.0 <= 0 {
            return Err(FeatureError::Tick(tick));
        }
        let decl = FeatureSetDecl {
            features: features.to_vec(),
        };
        if let Some(v) = decl.violations().into_iter().next() {
            return Err(FeatureError::Param {
                path: v.path,
                message: v.message,
            });
        }
        let mut slots = Vec::with_capacity(features.len());
        for (i, f) in features.iter().enumerate() {
            let path = format!("features[{i}].window_ms");
            slots.push(match *f {
                FeatureDecl::BookImbalance { levels } => Slot::Imbalance {
                    levels: levels as usize,
                    value: f64::NAN,
                },
                FeatureDecl::MicropriceOffset {} => Slot::Microprice,
                FeatureDecl::Spread {} => Slot::Spread,
                FeatureDecl::MidReturn { window_ms } => Slot::MidReturn {
                    window: window_ns(&path, window_ms)?,
                    history: VecDeque::with_capacity(RING),
                },
                FeatureDecl::TradeImbalance { window_ms } => Slot::TradeImbalance {
                    window: window_ns(&path, window_ms)?,
                    trades: VecDeque::with_capacity(RING),
                    buy: 0,
                    sell: 0,
                },
                FeatureDecl::RealizedVol { window_ms } => Slot::RealizedVol {
                    window: window_ns(&path, window_ms)?,
                    moves: VecDeque::with_capacity(RING),
                    sum: 0,
                },
                FeatureDecl::TouchQty { side } => Slot::Touch(match side {
                    BookSide::Bid => Side::Buy,
                    BookSide::Ask => Side::Sell,
                }),
                FeatureDecl::Inventory {} => Slot::Inventory,
            });
        }
        Ok(FeatureSet {
            names: decl.columns(),
            decls: decl.features,
            slots,
            tick: tick.0 as f64,
            now: Nanos::MIN,
            bid: None,
            ask: None,
            mid2: None,
            prev_mid2: None,
            position: Qty::ZERO,
        })
    }

    /// The converter from the manifest contract's declaration.
    pub fn from_decl(decl: &FeatureSetDecl, tick: Price) -> Result<FeatureSet, FeatureError> {
        FeatureSet::new(&decl.features, tick)
    }

    /// Number of features (the length `compute` writes).
    pub fn width(&self) -> usize {
        self.slots.len()
    }

    /// Column names, in order (`book_imbalance_5`, `mid_return_1000ms`, ...).
    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn declaration(&self) -> &[FeatureDecl] {
        &self.decls
    }

    /// The latest event time seen (`Nanos::MIN` before any update).
    pub fn now(&self) -> Nanos {
        self.now
    }

    /// The current mid price (NaN without a two-sided book).
    pub fn mid(&self) -> f64 {
        self.mid2
            .map_or(f64::NAN, |m| m as f64 / (2 * SCALE) as f64)
    }

    /// Moves event time forward to `now` (never back) and drops what left the windows.
    pub fn advance(&mut self, now: Nanos) {
        if now <= self.now {
            return;
        }
        self.now = now;
        for slot in &mut self.slots {
            match slot {
                Slot::MidReturn { window, history } => {
                    let target = now.saturating_sub(*window);
                    while history.len() >= 2 && history[1].0 <= target {
                        history.pop_front();
                    }
                }
                Slot::TradeImbalance {
                    window,
                    trades,
                    buy,
                    sell,
                } => {
                    let target = now.saturating_sub(*window);
                    while let Some(&(t, q)) = trades.front() {
                        if t > target {
                            break;
                        }
                        if q >= 0 {
                            *buy -= i128::from(q);
                        } else {
                            *sell += i128::from(q);
                        }
                        trades.pop_front();
                    }
                }
                Slot::RealizedVol { window, moves, sum } => {
                    let target = now.saturating_sub(*window);
                    while let Some(&(t, sq)) = moves.front() {
                        if t > target {
                            break;
                        }
                        *sum -= sq;
                        moves.pop_front();
                    }
                }
                _ => {}
            }
        }
    }

    /// The book changed (or was loaded) at `now`: reads the touch, the mid and the levels the
    /// set needs. An empty book counts as lost.
    pub fn on_book(&mut self, book: &OrderBook, now: Nanos) {
        self.advance(now);
        let now = self.now;
        self.bid = book.best_bid();
        self.ask = book.best_ask();
        let mid2 = match (self.bid, self.ask) {
            (Some(b), Some(a)) => Some(b.price.0.saturating_add(a.price.0)),
            _ => None,
        };
        let changed = mid2.is_some() && mid2 != self.mid2;
        self.mid2 = mid2;
        let step = match (changed, mid2, self.prev_mid2) {
            (true, Some(m), Some(p)) if p > 0 && m > 0 => {
                let r = (m as f64 / p as f64).ln();
                Some((r * r * SQ_SCALE).round() as u128)
            }
            _ => None,
        };
        if mid2.is_some() {
            self.prev_mid2 = mid2;
        }
        for slot in &mut self.slots {
            match slot {
                Slot::Imbalance { levels, value } => {
                    *value = DepthImbalance::of(book, *levels)
                        .value()
                        .unwrap_or(f64::NAN);
                }
                Slot::MidReturn { history, .. } => {
                    if let (true, Some(m)) = (changed, mid2) {
                        history.push_back((now, m));
                    }
                }
                Slot::RealizedVol { moves, sum, .. } => {
                    if let Some(sq) = step {
                        moves.push_back((now, sq));
                        *sum += sq;
                    }
                }
                _ => {}
            }
        }
    }

    /// The book cannot be trusted any more (a gap, a resync): book values are NaN until the
    /// next [`FeatureSet::on_book`], and no volatility step spans the loss.
    pub fn book_lost(&mut self, now: Nanos) {
        self.advance(now);
        self.bid = None;
        self.ask = None;
        self.mid2 = None;
        self.prev_mid2 = None;
        for slot in &mut self.slots {
            if let Slot::Imbalance { value, .. } = slot {
                *value = f64::NAN;
            }
        }
    }

    /// A public trade at `now`.
    pub fn on_trade(&mut self, trade: &Trade, now: Nanos) {
        self.advance(now);
        let now = self.now;
        for slot in &mut self.slots {
            if let Slot::TradeImbalance {
                trades, buy, sell, ..
            } = slot
            {
                let q = trade.qty.0.max(0);
                match trade.aggressor {
                    Side::Buy => {
                        trades.push_back((now, q));
                        *buy += i128::from(q);
                    }
                    Side::Sell => {
                        trades.push_back((now, -q));
                        *sell += i128::from(q);
                    }
                }
            }
        }
    }

    /// The strategy's position on the instrument.
    pub fn set_position(&mut self, position: Qty) {
        self.position = position;
    }

    #[inline]
    fn value(&self, slot: &Slot) -> f64 {
        let spread_ticks = || match (self.bid, self.ask) {
            (Some(b), Some(a)) => Some((a.price.0 - b.price.0) as f64 / self.tick),
            _ => None,
        };
        match slot {
            Slot::Imbalance { value, .. } => *value,
            Slot::Spread => spread_ticks().unwrap_or(f64::NAN),
            Slot::Microprice => match (spread_ticks(), self.bid, self.ask) {
                (Some(s), Some(b), Some(a)) => {
                    let (bq, aq) = (b.qty.0 as f64, a.qty.0 as f64);
                    if bq + aq > 0.0 {
                        s * (bq - aq) / (2.0 * (bq + aq))
                    } else {
                        0.0
                    }
                }
                _ => f64::NAN,
            },
            Slot::MidReturn { window, history } => {
                let target = self.now.saturating_sub(*window);
                match (self.mid2, history.front()) {
                    (Some(m), Some(&(t, base))) if t <= target && base > 0 => {
                        m as f64 / base as f64 - 1.0
                    }
                    _ => f64::NAN,
                }
            }
            Slot::TradeImbalance { buy, sell, .. } => {
                let total = buy + sell;
                if total > 0 {
                    (buy - sell) as f64 / total as f64
                } else {
                    0.0
                }
            }
            Slot::RealizedVol { sum, .. } => (*sum as f64 / SQ_SCALE).sqrt(),
            Slot::Touch(side) => {
                let level = match side {
                    Side::Buy => self.bid,
                    Side::Sell => self.ask,
                };
                level.map_or(f64::NAN, |l| l.qty.0 as f64 / SCALE as f64)
            }
            Slot::Inventory => self.position.0 as f64 / SCALE as f64,
        }
    }

    /// Writes the current values, in declaration order, as float32 (ONNX's input type).
    #[inline]
    pub fn compute(&self, out: &mut [f32]) -> Result<(), FeatureError> {
        self.check_width(out.len())?;
        for (o, slot) in out.iter_mut().zip(&self.slots) {
            *o = self.value(slot) as f32;
        }
        Ok(())
    }

    /// [`FeatureSet::compute`] at full precision (tests, analysis).
    pub fn compute_f64(&self, out: &mut [f64]) -> Result<(), FeatureError> {
        self.check_width(out.len())?;
        for (o, slot) in out.iter_mut().zip(&self.slots) {
            *o = self.value(slot);
        }
        Ok(())
    }

    fn check_width(&self, found: usize) -> Result<(), FeatureError> {
        if found == self.slots.len() {
            Ok(())
        } else {
            Err(FeatureError::Width {
                width: self.slots.len(),
                found,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;

    use super::*;
    use crate::event::Header;

    fn px(s: &str) -> Price {
        Price::parse(s.as_bytes()).unwrap()
    }

    fn q(s: &str) -> Qty {
        Qty::parse(s.as_bytes()).unwrap()
    }

    /// Bids from `bid` down and asks from `ask` up, one tick (0.01) apart.
    fn book(bid: &str, bids: &[&str], ask: &str, asks: &[&str]) -> OrderBook {
        let lv = |base: Price, step: i64, sizes: &[&str]| -> Vec<Level> {
            sizes
                .iter()
                .enumerate()
                .map(|(i, s)| Level::new(Price(base.0 + step * i as i64), q(s)))
                .collect()
        };
        let mut b = OrderBook::new();
        b.load_snapshot(
            &lv(px(bid), -1_000_000, bids),
            &lv(px(ask), 1_000_000, asks),
        );
        b
    }

    fn trade(qty: &str, aggressor: Side) -> Trade {
        Trade {
            header: Header::default(),
            id: 0,
            price: px("100"),
            qty: q(qty),
            aggressor,
        }
    }

    fn set(json: &str) -> FeatureSet {
        let decl = FeatureSetDecl::from_json(json).unwrap();
        FeatureSet::from_decl(&decl, px("0.01")).unwrap()
    }

    fn values(fs: &FeatureSet) -> Vec<f64> {
        let mut out = vec![0.0; fs.width()];
        fs.compute_f64(&mut out).unwrap();
        out
    }

    const MS: Nanos = 1_000_000;

    #[test]
    fn book_features_against_hand_computed_values() {
        let mut fs = set(r#"{"features": [
            {"name": "book_imbalance", "levels": 2}, {"name": "book_imbalance", "levels": 1},
            {"name": "spread"}, {"name": "microprice_offset"},
            {"name": "touch_qty", "side": "bid"}, {"name": "touch_qty", "side": "ask"},
            {"name": "inventory"}]}"#);
        assert_eq!(
            fs.names(),
            [
                "book_imbalance_2",
                "book_imbalance_1",
                "spread",
                "microprice_offset",
                "touch_qty_bid",
                "touch_qty_ask",
                "inventory"
            ]
        );
        // Before any book: NaN everywhere but the inventory.
        let v = values(&fs);
        assert!(v[..6].iter().all(|x| x.is_nan()));
        assert_eq!(v[6], 0.0);
        // Bids 100.00 x3, 99.99 x1, 99.98 x100; asks 100.03 x1, 100.04 x4.
        fs.on_book(&book("100", &["3", "1", "100"], "100.03", &["1", "4"]), 0);
        fs.set_position(Qty(-250_000_000));
        let v = values(&fs);
        // 2 levels: B = 4, A = 5: -1/9. 1 level: (3 - 1) / 4 = 0.5.
        assert!((v[0] - (-1.0 / 9.0)).abs() < 1e-15);
        assert_eq!(v[1], 0.5);
        // Spread 0.03 = 3 ticks; microprice = (100 * 1 + 100.03 * 3) / 4 = 100.0225,
        // mid 100.015: +0.0075 = 0.75 ticks (= 3 * 0.5 / 2).
        assert!((v[2] - 3.0).abs() < 1e-12);
        assert!((v[3] - 0.75).abs() < 1e-12);
        assert_eq!((v[4], v[5], v[6]), (3.0, 1.0, -2.5));
        assert!((fs.mid() - 100.015).abs() < 1e-12);
        let mut out32 = [0f32; 7];
        fs.compute(&mut out32).unwrap();
        assert_eq!(out32[1], 0.5);
        assert_eq!(
            fs.compute(&mut [0f32; 3]),
            Err(FeatureError::Width { width: 7, found: 3 })
        );
        // One side gone: imbalance -1 (all ask), spread and touch bid NaN.
        fs.on_book(&book("100", &[], "100.03", &["1"]), 1);
        let v = values(&fs);
        assert_eq!(v[0], -1.0);
        assert!(v[2].is_nan() && v[3].is_nan() && v[4].is_nan());
        fs.book_lost(2);
        assert!(values(&fs)[..6].iter().all(|x| x.is_nan()));
    }

    #[test]
    fn windows_against_hand_computed_values() {
        let mut fs = set(r#"{"features": [
            {"name": "mid_return", "window_ms": 10}, {"name": "trade_imbalance", "window_ms": 10},
            {"name": "realized_vol", "window_ms": 10}]}"#);
        // Mid 100 at t=0.
        fs.on_book(&book("99.99", &["1"], "100.01", &["1"]), 0);
        let v = values(&fs);
        assert!(v[0].is_nan(), "the window is not covered yet");
        assert_eq!((v[1], v[2]), (0.0, 0.0));
        fs.on_trade(&trade("3", Side::Buy), 2 * MS);
        fs.on_trade(&trade("1", Side::Sell), 4 * MS);
        // Mid 101 at t=5ms.
        fs.on_book(&book("100.99", &["1"], "101.01", &["1"]), 5 * MS);
        let v = values(&fs);
        assert!(v[0].is_nan());
        assert_eq!(v[1], 0.5);
        assert!((v[2] - (101f64 / 100.0).ln().abs()).abs() < 1e-12);
        // Mid 102 at t=11ms: 10 ms back is t=1ms, the mid then was 100.
        fs.on_book(&book("101.99", &["1"], "102.01", &["1"]), 11 * MS);
        let v = values(&fs);
        assert!((v[0] - 0.02).abs() < 1e-12);
        // The buy at 2ms is still in (1ms, 11ms]; the vol holds both moves.
        assert_eq!(v[1], 0.5);
        let r1 = (101f64 / 100.0).ln();
        let r2 = (102f64 / 101.0).ln();
        assert!((v[2] - (r1 * r1 + r2 * r2).sqrt()).abs() < 1e-12);
        // At 15ms: base is the mid at 5ms (101); trades at 2 and 4 ms are gone; one move left.
        fs.advance(15 * MS);
        let v = values(&fs);
        assert!((v[0] - (102.0 / 101.0 - 1.0)).abs() < 1e-12);
        assert_eq!(v[1], 0.0);
        assert!((v[2] - r2.abs()).abs() < 1e-12);
        // Time never goes back.
        fs.advance(3 * MS);
        assert_eq!(fs.now(), 15 * MS);
        // A lost book: no step across it.
        fs.book_lost(16 * MS);
        assert!(values(&fs)[0].is_nan());
        fs.on_book(&book("199.99", &["1"], "200.01", &["1"]), 17 * MS);
        assert!((values(&fs)[2] - r2.abs()).abs() < 1e-12);
    }

    #[test]
    fn refuses_a_bad_tick_and_bad_declarations() {
        let decl = [FeatureDecl::Spread {}];
        assert_eq!(
            FeatureSet::new(&decl, Price(0)).unwrap_err(),
            FeatureError::Tick(Price(0))
        );
        let err =
            FeatureSet::new(&[FeatureDecl::BookImbalance { levels: 51 }], px("0.01")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "features[0].levels: must be 1..50, found 51"
        );
    }

    #[test]
    fn leans_exactly_like_the_value() {
        let d = DepthImbalance { bid: 6, ask: 2 };
        assert_eq!(d.value(), Some(0.5));
        assert_eq!(d.leans(SCALE / 2), Some(Side::Buy));
        assert_eq!(d.leans(SCALE / 2 + 1), None);
        assert_eq!(
            DepthImbalance { bid: 2, ask: 6 }.leans(SCALE / 2),
            Some(Side::Sell)
        );
        assert_eq!(DepthImbalance { bid: 0, ask: 0 }.value(), None);
    }

    /// An event of the property test: a mid (in ticks of 0.01, around 100) or a trade.
    #[derive(Clone, Debug)]
    enum Ev {
        Mid(i64),
        Trade(i64, bool),
    }

    fn events() -> impl Strategy<Value = Vec<(Nanos, Ev)>> {
        let ev = prop_oneof![
            (9_000i64..11_000).prop_map(Ev::Mid),
            (1i64..1_000_000_000, any::<bool>()).prop_map(|(q, b)| Ev::Trade(q, b)),
        ];
        prop::collection::vec((0i64..5 * MS, ev), 1..200).prop_map(|v| {
            let mut t = 0;
            v.into_iter()
                .map(|(dt, e)| {
                    t += dt;
                    (t, e)
                })
                .collect()
        })
    }

    proptest! {
        /// The windows against a naive recomputation from the whole history at every step.
        #[test]
        fn windows_match_a_naive_reference(evs in events(), w_ms in 1u64..30) {
            let w = w_ms as Nanos * MS;
            let json = format!(
                r#"{{"features": [{{"name": "mid_return", "window_ms": {w_ms}}},
                {{"name": "trade_imbalance", "window_ms": {w_ms}}},
                {{"name": "realized_vol", "window_ms": {w_ms}}}]}}"#
            );
            let mut fs = set(&json);
            let mut mids: Vec<(Nanos, f64)> = Vec::new();
            let mut trades: Vec<(Nanos, f64)> = Vec::new();
            for (t, e) in &evs {
                match *e {
                    Ev::Mid(ticks) => {
                        // Bid and ask one tick either side of `ticks`.
                        let mut b = OrderBook::new();
                        b.apply(Side::Buy, Price((ticks - 1) * 1_000_000), Qty(SCALE));
                        b.apply(Side::Sell, Price((ticks + 1) * 1_000_000), Qty(SCALE));
                        fs.on_book(&b, *t);
                        if mids.last().map_or(true, |m| m.1 != ticks as f64 / 100.0) {
                            mids.push((*t, ticks as f64 / 100.0));
                        }
                    }
                    Ev::Trade(qty, buy) => {
                        let mut tr = trade("1", if buy { Side::Buy } else { Side::Sell });
                        tr.qty = Qty(qty);
                        fs.on_trade(&tr, *t);
                        trades.push((*t, if buy { qty as f64 } else { -(qty as f64) }));
                    }
                }
                let v = values(&fs);
                let lo = t - w;
                // mid_return: last mid at or before t - w.
                let base = mids.iter().rev().find(|m| m.0 <= lo).map(|m| m.1);
                let cur = mids.last().map(|m| m.1);
                match (cur, base) {
                    (Some(c), Some(b)) => prop_assert!((v[0] - (c / b - 1.0)).abs() < 1e-12),
                    _ => prop_assert!(v[0].is_nan()),
                }
                let (buy, sell) = trades.iter().filter(|x| x.0 > lo).fold((0.0, 0.0), |(b, s), x| {
                    if x.1 > 0.0 { (b + x.1, s) } else { (b, s - x.1) }
                });
                let ti = if buy + sell > 0.0 { (buy - sell) / (buy + sell) } else { 0.0 };
                prop_assert!((v[1] - ti).abs() < 1e-12);
                let sq: f64 = mids.windows(2).filter(|p| p[1].0 > lo)
                    .map(|p| (p[1].1 / p[0].1).ln().powi(2)).sum();
                prop_assert!((v[2] - sq.sqrt()).abs() < 1e-9, "{} vs {}", v[2], sq.sqrt());
            }
        }
    }
}
