//! A model taker: trades one instrument on the signal of a model (an ONNX model in practice,
//! any [`Predictor`] here).
//!
//! It keeps a [`FeatureSet`] of the declared features up to date on every book update and
//! every trade of its instrument (the position too, for `inventory`). On a book update, when an
//! order could be sent at all (risk not HALTED, none in flight, past the cooldown), it writes
//! the feature row into a preallocated `[f32]`, runs the model and reads `signal = output[0]`:
//! `signal > buy_above` sends an IOC buy limited at best ask + `max_slippage`,
//! `signal < sell_below` an IOC sell limited at best bid - `max_slippage`; otherwise (NaN
//! included) nothing. The order side (one in flight, cooldown, rejection back-off, REDUCING
//! only towards flat) is the imbalance taker's, shared in `taker`.
//!
//! rt-core does no I/O: the model is built outside (the backtest's or live engine's model
//! loader) and handed in. A failed prediction is counted ([`ModelStats`]) and the tick skipped;
//! nothing allocates per tick.

use std::fmt;

use rt_manifest::features::FeatureSetDecl;
use rt_manifest::model::ModelTakerParams;
use rt_manifest::Fixed;

use super::taker::Taker;
use super::{
    check_instruments, Action, FillReport, ModelStats, OrderUpdate, Strategy, StrategyContext,
    StrategyError,
};
use crate::book::OrderBook;
use crate::event::Trade;
use crate::features::FeatureSet;
use crate::model::{PredictError, Predictor};
use crate::portfolio::{InstrumentId, InstrumentSpec};
use crate::types::{Nanos, Price, Qty, Side};

/// The taker's decision parameters, in engine units.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ModelTakerConfig {
    /// Buy when the signal is strictly above.
    pub buy_above: f64,
    /// Sell when the signal is strictly below; below `buy_above`.
    pub sell_below: f64,
    pub order_qty: Qty,
    pub max_slippage: Price,
    pub cooldown_ns: Nanos,
}

fn to_f64(value: Fixed) -> f64 {
    value.raw() as f64 / Fixed::SCALE as f64
}

impl ModelTakerConfig {
    pub fn from_manifest(params: &ModelTakerParams) -> ModelTakerConfig {
        ModelTakerConfig {
            buy_above: to_f64(params.buy_above),
            sell_below: to_f64(params.sell_below),
            order_qty: Qty(params.order_qty.raw()),
            max_slippage: Price(params.max_slippage.raw()),
            cooldown_ns: Nanos::try_from(params.cooldown_ms.saturating_mul(1_000_000))
                .unwrap_or(Nanos::MAX),
        }
    }
}

/// See the module documentation.
pub struct ModelTaker {
    config: ModelTakerConfig,
    instruments: [InstrumentId; 1],
    features: FeatureSet,
    row: Box<[f32]>,
    model: Box<dyn Predictor + Send>,
    taker: Taker,
    stats: ModelStats,
    /// The first prediction error, kept for the report (later ones are only counted).
    first_error: Option<PredictError>,
}

impl fmt::Debug for ModelTaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelTaker")
            .field("config", &self.config)
            .field("instruments", &self.instruments)
            .field("features", &self.features.names())
            .field("model_input_width", &self.model.input_width())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl ModelTaker {
    /// A taker of the one instrument in `instruments`, computing `features` for `model`.
    /// The model must read exactly the declared features and write at least one value.
    pub fn new(
        config: ModelTakerConfig,
        features: &FeatureSetDecl,
        model: Box<dyn Predictor + Send>,
        instruments: &[InstrumentId],
        specs: &[InstrumentSpec],
    ) -> Result<ModelTaker, StrategyError> {
        check_instruments(instruments, specs)?;
        let (&[instrument], &[spec]) = (instruments, specs) else {
            return Err(StrategyError::OneInstrument {
                count: instruments.len(),
            });
        };
        if config.sell_below.is_nan()
            || config.buy_above.is_nan()
            || config.sell_below >= config.buy_above
        {
            return Err(StrategyError::Param {
                field: "sell_below",
                message: format!(
                    "must be below buy_above {}, found {}",
                    config.buy_above, config.sell_below
                ),
            });
        }
        let features =
            FeatureSet::from_decl(features, spec.tick).map_err(|err| StrategyError::Param {
                field: "features",
                message: err.to_string(),
            })?;
        if model.input_width() != features.width() {
            return Err(StrategyError::Model(format!(
                "the model reads {} features, params.features declares {} ({})",
                model.input_width(),
                features.width(),
                features.names().join(", ")
            )));
        }
        if model.output_width() == 0 {
            return Err(StrategyError::Model(
                "the model writes no output value (the signal is output[0])".to_owned(),
            ));
        }
        let taker = Taker::new(
            config.order_qty,
            config.max_slippage,
            config.cooldown_ns,
            specs,
        )?;
        Ok(ModelTaker {
            config,
            instruments: [instrument],
            row: vec![0.0; features.width()].into_boxed_slice(),
            features,
            model,
            taker,
            stats: ModelStats::default(),
            first_error: None,
        })
    }

    /// From the manifest's parameters; the model's widths must also be the ones the manifest
    /// declares (`params.model.input_width`, `output_width`).
    pub fn from_manifest(
        params: &ModelTakerParams,
        model: Box<dyn Predictor + Send>,
        instruments: &[InstrumentId],
        specs: &[InstrumentSpec],
    ) -> Result<ModelTaker, StrategyError> {
        let declared = (
            params.model.input_width as usize,
            params.model.output_width as usize,
        );
        let found = (model.input_width(), model.output_width());
        if declared != found {
            return Err(StrategyError::Model(format!(
                "{} reads {} and writes {} values per row, the manifest declares input_width {} \
                 and output_width {}",
                params.model.path, found.0, found.1, declared.0, declared.1
            )));
        }
        ModelTaker::new(
            ModelTakerConfig::from_manifest(params),
            &params.features,
            model,
            instruments,
            specs,
        )
    }

    pub fn config(&self) -> &ModelTakerConfig {
        &self.config
    }

    /// The feature set as the strategy last updated it.
    pub fn features(&self) -> &FeatureSet {
        &self.features
    }

    /// The first prediction error, if any.
    pub fn first_error(&self) -> Option<&PredictError> {
        self.first_error.as_ref()
    }

    /// The side a signal asks for, if past a threshold (NaN: none).
    pub fn decide(&self, signal: f32) -> Option<Side> {
        let signal = f64::from(signal);
        if signal > self.config.buy_above {
            Some(Side::Buy)
        } else if signal < self.config.sell_below {
            Some(Side::Sell)
        } else {
            None
        }
    }

    /// Runs the model on the current features; `None` (counted) when it fails.
    fn signal(&mut self) -> Option<f32> {
        if self.features.compute(&mut self.row).is_err() {
            // The row is the set's width by construction.
            return None;
        }
        self.stats.predictions += 1;
        match self.model.predict(&self.row) {
            Ok(out) => out.first().copied(),
            Err(err) => {
                self.stats.errors += 1;
                if self.first_error.is_none() {
                    self.first_error = Some(err);
                }
                None
            }
        }
    }
}

impl Strategy for ModelTaker {
    fn kind(&self) -> &'static str {
        "model_taker"
    }

    fn instruments(&self) -> &[InstrumentId] {
        &self.instruments
    }

    fn on_book(&mut self, ctx: &StrategyContext, book: &OrderBook, out: &mut Vec<Action>) {
        if ctx.slot != 0 {
            return;
        }
        self.features.set_position(ctx.position);
        self.features.on_book(book, ctx.now);
        if !self.taker.ready(ctx) {
            return;
        }
        if let Some(side) = self.signal().and_then(|s| self.decide(s)) {
            self.taker.take(ctx, book, side, out);
        }
    }

    fn on_trade(
        &mut self,
        ctx: &StrategyContext,
        _book: &OrderBook,
        trade: &Trade,
        _out: &mut Vec<Action>,
    ) {
        if ctx.slot == 0 {
            self.features.set_position(ctx.position);
            self.features.on_trade(trade, ctx.now);
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
        if ctx.slot == 0 {
            self.features.book_lost(ctx.now);
        }
        self.taker.on_book_lost(ctx);
    }

    fn model_stats(&self) -> Option<ModelStats> {
        Some(self.stats)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use rt_manifest::features::FeatureDecl;

    use super::*;
    use crate::risk::{RejectReason, RiskState};
    use crate::strategy::taker::testkit::{self, ctx, done, placed, px, q, spec};
    use crate::strategy::{OrderStatus, REJECT_BACKOFF_NS};

    /// A deterministic model: `signal = row[0] + 100 * row[1]` (book imbalance over one level,
    /// plus the inventory feature), or an error when `fail` is set. Width-checked.
    struct Fake {
        width: usize,
        fail: bool,
        out: [f32; 2],
    }

    impl Predictor for Fake {
        fn input_width(&self) -> usize {
            self.width
        }
        fn output_width(&self) -> usize {
            2
        }
        fn predict(&mut self, input: &[f32]) -> Result<&[f32], PredictError> {
            if input.len() != self.width {
                return Err(PredictError::Width {
                    expected: self.width,
                    got: input.len(),
                });
            }
            if self.fail {
                return Err(PredictError::Run("the fake fails".into()));
            }
            self.out = [input[0] + 100.0 * input[1], -1.0];
            Ok(&self.out)
        }
    }

    fn fake(width: usize, fail: bool) -> Box<dyn Predictor + Send> {
        Box::new(Fake {
            width,
            fail,
            out: [0.0; 2],
        })
    }

    fn decl() -> FeatureSetDecl {
        FeatureSetDecl {
            features: vec![
                FeatureDecl::BookImbalance { levels: 1 },
                FeatureDecl::Inventory {},
            ],
        }
    }

    fn config(cooldown_ms: i64) -> ModelTakerConfig {
        ModelTakerConfig {
            buy_above: 0.5,
            sell_below: -0.5,
            order_qty: q("0.005"),
            max_slippage: px("0.05"),
            cooldown_ns: cooldown_ms * 1_000_000,
        }
    }

    fn taker(cooldown_ms: i64, fail: bool) -> ModelTaker {
        ModelTaker::new(config(cooldown_ms), &decl(), fake(2, fail), &[3], &[spec()]).unwrap()
    }

    /// One level a side: bid 100 x `bid`, ask 100.01 x `ask`.
    fn book(bid: &str, ask: &str) -> OrderBook {
        testkit::book(&[bid], &[ask])
    }

    #[test]
    fn thresholds_map_the_signal_to_a_side() {
        let t = taker(0, false);
        assert_eq!(t.decide(0.51), Some(Side::Buy));
        assert_eq!(t.decide(0.5), None, "strictly above");
        assert_eq!(t.decide(-0.5), None, "strictly below");
        assert_eq!(t.decide(-0.51), Some(Side::Sell));
        assert_eq!(t.decide(f32::NAN), None);
    }

    #[test]
    fn trades_on_the_model_signal_with_slippage_and_cooldown() {
        let mut t = taker(100, false);
        let mut out = Vec::new();
        // Imbalance (4 - 1) / 5 = 0.6 > 0.5: buy at the ask + slippage.
        let long = book("4", "1");
        t.on_book(&ctx(0, "0", RiskState::Active), &long, &mut out);
        assert_eq!(placed(&out), [(Side::Buy, px("100.06"), q("0.005"))]);
        assert_eq!(
            t.model_stats(),
            Some(ModelStats {
                predictions: 1,
                errors: 0
            })
        );
        // In flight: no order, and the model is not even asked.
        out.clear();
        t.on_book(&ctx(1, "0", RiskState::Active), &long, &mut out);
        assert!(out.is_empty());
        assert_eq!(t.model_stats().unwrap().predictions, 1);
        t.on_order_update(
            &ctx(2, "0", RiskState::Active),
            &done(1, OrderStatus::Filled, None),
            &mut out,
        );
        // Within the cooldown: nothing.
        t.on_book(&ctx(99_999_999, "0", RiskState::Active), &long, &mut out);
        assert!(out.is_empty());
        // Balanced book, flat: signal 0, nothing.
        t.on_book(
            &ctx(100_000_000, "0", RiskState::Active),
            &book("1", "1"),
            &mut out,
        );
        assert!(out.is_empty());
        // The inventory feature follows the position: 0.01 long makes the signal 1.0.
        t.on_book(
            &ctx(100_000_001, "0.01", RiskState::Active),
            &book("1", "1"),
            &mut out,
        );
        assert_eq!(placed(&out), [(Side::Buy, px("100.06"), q("0.005"))]);
        let mut row = [0.0f32; 2];
        t.features().compute(&mut row).unwrap();
        assert_eq!(row, [0.0, 0.01]);
        t.on_order_update(
            &ctx(100_000_002, "0", RiskState::Active),
            &done(2, OrderStatus::Expired, None),
            &mut out,
        );
        // A sell signal sells at the bid - slippage.
        out.clear();
        t.on_book(
            &ctx(300_000_000, "0", RiskState::Active),
            &book("1", "4"),
            &mut out,
        );
        assert_eq!(placed(&out), [(Side::Sell, px("99.95"), q("0.005"))]);
    }

    #[test]
    fn risk_states_and_rejections_are_the_imbalance_takers() {
        let mut t = taker(0, false);
        let mut out = Vec::new();
        let long = book("4", "1");
        t.on_book(&ctx(0, "0", RiskState::Active), &long, &mut out);
        t.on_order_update(
            &ctx(5, "0", RiskState::Active),
            &done(1, OrderStatus::Rejected, Some(RejectReason::MaxPosition)),
            &mut out,
        );
        out.clear();
        t.on_book(&ctx(6, "0", RiskState::Active), &long, &mut out);
        assert!(out.is_empty(), "backing off after a rejection");
        // Reducing, short 0.002: the buy signal buys back the position only.
        t.on_book(
            &ctx(5 + REJECT_BACKOFF_NS, "-0.002", RiskState::Reducing),
            &book("9", "1"),
            &mut out,
        );
        assert_eq!(placed(&out), [(Side::Buy, px("100.06"), q("0.002"))]);
        t.on_book_lost(
            &ctx(6 + REJECT_BACKOFF_NS, "0", RiskState::Active),
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
    fn a_failed_prediction_is_counted_and_skipped() {
        let mut t = taker(0, true);
        let mut out = Vec::new();
        for now in 0..3 {
            t.on_book(&ctx(now, "0", RiskState::Active), &book("4", "1"), &mut out);
        }
        assert!(out.is_empty());
        assert_eq!(
            t.model_stats(),
            Some(ModelStats {
                predictions: 3,
                errors: 3
            })
        );
        assert_eq!(
            t.first_error().unwrap().to_string(),
            "model run failed: the fake fails"
        );
    }

    #[test]
    fn trades_feed_the_features() {
        let decl = FeatureSetDecl {
            features: vec![
                FeatureDecl::TradeImbalance { window_ms: 1000 },
                FeatureDecl::Spread {},
            ],
        };
        let mut t = ModelTaker::new(config(0), &decl, fake(2, false), &[3], &[spec()]).unwrap();
        let mut out = Vec::new();
        let b = book("1", "1");
        t.on_book(&ctx(0, "0", RiskState::Active), &b, &mut out);
        let trade = Trade {
            header: crate::event::Header::default(),
            id: 1,
            price: px("100.01"),
            qty: q("0.3"),
            aggressor: Side::Buy,
        };
        t.on_trade(&ctx(10, "0", RiskState::Active), &b, &trade, &mut out);
        let mut row = [0.0f32; 2];
        t.features().compute(&mut row).unwrap();
        assert_eq!(row, [1.0, 1.0]);
    }

    #[test]
    fn refuses_a_model_that_does_not_read_the_features() {
        let err = ModelTaker::new(config(0), &decl(), fake(3, false), &[3], &[spec()]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "params.model: the model reads 3 features, params.features declares 2 \
             (book_imbalance_1, inventory)"
        );
        let err = ModelTaker::new(
            config(0),
            &decl(),
            fake(2, false),
            &[3, 4],
            &[spec(), spec()],
        )
        .unwrap_err();
        assert_eq!(err, StrategyError::OneInstrument { count: 2 });
        let mut c = config(0);
        c.sell_below = c.buy_above;
        let err = ModelTaker::new(c, &decl(), fake(2, false), &[3], &[spec()]).unwrap_err();
        assert!(matches!(
            err,
            StrategyError::Param {
                field: "sell_below",
                ..
            }
        ));
    }
}
