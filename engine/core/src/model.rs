//! The model seam: what a strategy calls to get a prediction, without knowing how it is made.
//!
//! rt-core only declares the trait (no I/O here); `rt-model` implements it with ONNX Runtime.
//! A strategy holds a `Box<dyn Predictor>` built by its driver (backtest or live engine), so the
//! same strategy code runs a model in backtests and live alike.

use thiserror::Error;

/// Why a prediction failed. The message says which model and what went wrong.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PredictError {
    /// The caller passed a feature row of the wrong width.
    #[error("model input has {expected} features, got a row of {got}")]
    Width { expected: usize, got: usize },
    /// The model's runtime failed to evaluate the row.
    #[error("model run failed: {0}")]
    Run(String),
}

/// A model evaluated one feature row at a time.
///
/// `predict` must not allocate on success: it runs on the strategy thread for every decision.
pub trait Predictor {
    /// The number of features the model reads (the row width).
    fn input_width(&self) -> usize;
    /// The number of values the model writes per row.
    fn output_width(&self) -> usize;
    /// Evaluates one row of `input_width()` features; the slice returned holds
    /// `output_width()` values and is valid until the next call.
    fn predict(&mut self, input: &[f32]) -> Result<&[f32], PredictError>;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A reference predictor: the sum of the row, checked for width.
    struct Sum {
        width: usize,
        out: [f32; 1],
    }

    impl Predictor for Sum {
        fn input_width(&self) -> usize {
            self.width
        }
        fn output_width(&self) -> usize {
            1
        }
        fn predict(&mut self, input: &[f32]) -> Result<&[f32], PredictError> {
            if input.len() != self.width {
                return Err(PredictError::Width {
                    expected: self.width,
                    got: input.len(),
                });
            }
            self.out[0] = input.iter().sum();
            Ok(&self.out)
        }
    }

    #[test]
    fn a_strategy_can_hold_a_boxed_predictor() {
        let mut model: Box<dyn Predictor> = Box::new(Sum {
            width: 3,
            out: [0.0],
        });
        assert_eq!(model.predict(&[1.0, 2.0, 3.5]), Ok(&[6.5f32][..]));
        let err = model.predict(&[1.0]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "model input has 3 features, got a row of 1"
        );
    }
}
