//! A book-imbalance taker: buys when the bids outweigh the asks, sells in the opposite case.
//!
//! On every book update, per instrument: `B` and `A` are the total sizes of the best `levels`
//! bid and ask levels, `imbalance = (B - A) / (B + A)` (the `book_imbalance` feature of
//! `crate::features`, compared without division: `(B - A) * 10^8 >= threshold * (B + A)`, all
//! in `i128`, by `DepthImbalance::leans`). When `imbalance >= threshold` it
//! sends an IOC buy limited at best ask + `max_slippage`; when `imbalance <= -threshold` an IOC
//! sell limited at best bid - `max_slippage`. At most one order is in flight per instrument, and
//! `cooldown_ms` of event time separate two orders (a rejection also waits at least
//! [`REJECT_BACKOFF_NS`](super::REJECT_BACKOFF_NS)). While risk is REDUCING it only trades towards flat, for at most the
//! position; while HALTED it does nothing.

use rt_manifest::model::ImbalanceTakerParams;

use super::taker::Taker;
use super::{
    check_instruments, Action, FillReport, OrderUpdate, Strategy, StrategyContext, StrategyError,
};
use crate::book::OrderBook;
use crate::features::DepthImbalance;
use crate::portfolio::{InstrumentId, InstrumentSpec};
use crate::types::{Nanos, Price, Qty, Side, SCALE};

/// The taker's parameters, in engine units.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImbalanceTakerConfig {
    /// Levels per side summed (1..=50).
    pub levels: u32,
    /// Fraction in 10^-8 units, strictly between 0 and 10^8.
    pub threshold: i64,
    pub order_qty: Qty,
    pub max_slippage: Price,
    pub cooldown_ns: Nanos,
}

impl ImbalanceTakerConfig {
    pub fn from_manifest(params: &ImbalanceTakerParams) -> ImbalanceTakerConfig {
        ImbalanceTakerConfig {
            levels: params.levels,
            threshold: params.threshold.raw(),
            order_qty: Qty(params.order_qty.raw()),
            max_slippage: Price(params.max_slippage.raw()),
            cooldown_ns: Nanos::try_from(params.cooldown_ms.saturating_mul(1_000_000))
                .unwrap_or(Nanos::MAX),
        }
    }
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct ImbalanceTaker {
    config: ImbalanceTakerConfig,
    instruments: Vec<InstrumentId>,
    taker: Taker,
}

impl ImbalanceTaker {
    pub fn new(
        config: ImbalanceTakerConfig,
        instruments: &[InstrumentId],
        specs: &[InstrumentSpec],
    ) -> Result<ImbalanceTaker, StrategyError> {
        check_instruments(instruments, specs)?;
        let param = |field: &'static str, ok: bool, value: String| {
            if ok {
                Ok(())
            } else {
                Err(StrategyError::Param {
                    field,
                    message: value,
                })
            }
        };
        param(
            "levels",
            (1..=50).contains(&config.levels),
            format!("must be 1..50, found {}", config.levels),
        )?;
        param(
            "threshold",
            config.threshold > 0 && config.threshold < SCALE,
            format!(
                "must be strictly between 0 and 1, found {}",
                Price(config.threshold)
            ),
        )?;
        let taker = Taker::new(
            config.order_qty,
            config.max_slippage,
            config.cooldown_ns,
            specs,
        )?;
        Ok(ImbalanceTaker {
            config,
            instruments: instruments.to_vec(),
            taker,
        })
    }

    pub fn from_manifest(
        params: &ImbalanceTakerParams,
        instruments: &[InstrumentId],
        specs: &[InstrumentSpec],
    ) -> Result<ImbalanceTaker, StrategyError> {
        ImbalanceTaker::new(
            ImbalanceTakerConfig::from_manifest(params),
            instruments,
            specs,
        )
    }

    pub fn config(&self) -> &ImbalanceTakerConfig {
        &self.config
    }

    /// The side the book leans to, if past the threshold.
    /// The rule is the `book_imbalance` feature's ([`DepthImbalance`]), decided exactly.
    pub fn signal(&self, book: &OrderBook) -> Option<Side> {
        DepthImbalance::of(book, self.config.levels as usize).leans(self.config.threshold)
    }
}

impl Strategy for ImbalanceTaker {
    fn kind(&self) -> &'static str {
        "imbalance_taker"
    }

    fn instruments(&self) -> &[InstrumentId] {
        &self.instruments
    }

    fn wants_trades(&self) -> bool {
        false
    }

    fn on_book(&mut self, ctx: &StrategyContext, book: &OrderBook, out: &mut Vec<Action>) {
        if !self.taker.ready(ctx) {
            return;
        }
        if let Some(side) = self.signal(book) {
            self.taker.take(ctx, book, side, out);
        }
    }

    fn on_fill(&mut self, _ctx: &StrategyContext, _fill: &FillReport, _out: &mut Vec<Action>) {}

    fn on_order_update(
        &mut self,
        ctx: &StrategyContext,
        update: &OrderUpdate,
        _out: &mut Vec<Action>,
    ) {
        self.taker.on_order_update(ctx, update);
    }

    fn on_book_lost(&mut self, ctx: &StrategyContext, _out: &mut Vec<Action>) {
        self.taker.on_book_lost(ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::risk::{RejectReason, RiskState};
    use crate::strategy::taker::testkit::{book, ctx, done, placed, px, q, spec};
    use crate::strategy::{OrderStatus, REJECT_BACKOFF_NS};

    fn taker(levels: u32, threshold: &str, cooldown_ms: u64) -> ImbalanceTaker {
        let config = ImbalanceTakerConfig {
            levels,
            threshold: px(threshold).0,
            order_qty: q("0.005"),
            max_slippage: px("0.05"),
            cooldown_ns: Nanos::try_from(cooldown_ms * 1_000_000).expect("fits"),
        };
        ImbalanceTaker::new(config, &[3], &[spec()]).expect("valid")
    }

    #[test]
    fn imbalance_over_n_levels_against_the_threshold() {
        let t = taker(2, "0.5", 0);
        // 2 levels: B = 3 + 3 = 6, A = 1 + 1 = 2: (6 - 2) / 8 = 0.5 -> buy (>= threshold).
        assert_eq!(
            t.signal(&book(&["3", "3", "100"], &["1", "1"])),
            Some(Side::Buy)
        );
        // B = 5, A = 2: 3 / 7 = 0.43 -> nothing.
        assert_eq!(t.signal(&book(&["3", "2"], &["1", "1"])), None);
        // Mirror: sell.
        assert_eq!(t.signal(&book(&["1", "1"], &["3", "3"])), Some(Side::Sell));
        // Only one level counted.
        let t1 = taker(1, "0.5", 0);
        assert_eq!(t1.signal(&book(&["1", "9"], &["1", "1"])), None);
        assert_eq!(t1.signal(&OrderBook::new()), None);
    }

    #[test]
    fn sends_an_ioc_limited_by_the_slippage_then_waits() {
        let mut t = taker(1, "0.6", 100);
        let mut out = Vec::new();
        let long = book(&["4"], &["1"]);
        t.on_book(&ctx(0, "0", RiskState::Active), &long, &mut out);
        assert_eq!(placed(&out), [(Side::Buy, px("100.06"), q("0.005"))]);
        // In flight: nothing more.
        out.clear();
        t.on_book(&ctx(1, "0", RiskState::Active), &long, &mut out);
        assert!(out.is_empty());
        // Done, but within the cooldown.
        t.on_order_update(
            &ctx(2, "0", RiskState::Active),
            &done(1, OrderStatus::Filled, None),
            &mut out,
        );
        t.on_book(
            &ctx(99_999_999, "0.005", RiskState::Active),
            &long,
            &mut out,
        );
        assert!(out.is_empty());
        // After the cooldown a sell signal sells at best bid - slippage.
        t.on_book(
            &ctx(100_000_000, "0.005", RiskState::Active),
            &book(&["1"], &["4"]),
            &mut out,
        );
        assert_eq!(placed(&out), [(Side::Sell, px("99.95"), q("0.005"))]);
    }

    #[test]
    fn rejection_backs_off_and_risk_states_restrict() {
        let mut t = taker(1, "0.6", 0);
        let mut out = Vec::new();
        let long = book(&["4"], &["1"]);
        t.on_book(&ctx(0, "0", RiskState::Active), &long, &mut out);
        t.on_order_update(
            &ctx(5, "0", RiskState::Active),
            &done(1, OrderStatus::Rejected, Some(RejectReason::MaxPosition)),
            &mut out,
        );
        out.clear();
        t.on_book(&ctx(6, "0", RiskState::Active), &long, &mut out);
        assert!(out.is_empty());
        // Reducing: a buy signal with a long position does nothing, with a short one buys
        // back at most the position.
        t.on_book(
            &ctx(5 + REJECT_BACKOFF_NS, "0.002", RiskState::Reducing),
            &long,
            &mut out,
        );
        assert!(out.is_empty());
        t.on_book(
            &ctx(5 + REJECT_BACKOFF_NS, "-0.002", RiskState::Reducing),
            &long,
            &mut out,
        );
        assert_eq!(placed(&out), [(Side::Buy, px("100.06"), q("0.002"))]);
        t.on_order_update(
            &ctx(7, "0", RiskState::Active),
            &done(2, OrderStatus::Expired, None),
            &mut out,
        );
        out.clear();
        t.on_book(
            &ctx(REJECT_BACKOFF_NS * 2, "0", RiskState::Halted),
            &long,
            &mut out,
        );
        assert!(out.is_empty());
    }

    #[test]
    fn refuses_bad_params() {
        let mut c = *taker(1, "0.5", 0).config();
        c.threshold = SCALE;
        assert!(matches!(
            ImbalanceTaker::new(c, &[0], &[spec()]),
            Err(StrategyError::Param {
                field: "threshold",
                ..
            })
        ));
        c.threshold = 1;
        c.levels = 51;
        assert!(matches!(
            ImbalanceTaker::new(c, &[0], &[spec()]),
            Err(StrategyError::Param {
                field: "levels",
                ..
            })
        ));
    }
}
