//! The declaration of a feature set, as the manifest contract will carry it for a strategy
//! that computes features (the model strategies), and as `conf/features/<name>.yaml` writes it.
//!
//! JSON shape: `{"features": [{"name": "book_imbalance", "levels": 5}, {"name": "spread"}, ...]}`.
//! Each entry is one feature, internally tagged by `name`, its parameters beside the name; an
//! unknown name or parameter is refused. The order of the list is the order of the columns.
//! Ranges serde cannot express are checked by [`FeatureSetDecl::violations`], with the same
//! rules as the Python model (`appliance/config/schema.py`, `FeatureSetSpec`). The computation
//! itself is `rt_core::features`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::{ManifestError, Violation};

/// Most levels a book feature may sum per side.
pub const MAX_LEVELS: u32 = 50;
/// Longest window of a windowed feature: one day.
pub const MAX_WINDOW_MS: u64 = 86_400_000;

/// Which side of the book a touch feature reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BookSide {
    Bid,
    Ask,
}

impl BookSide {
    pub const fn as_str(self) -> &'static str {
        match self {
            BookSide::Bid => "bid",
            BookSide::Ask => "ask",
        }
    }
}

/// One feature: its name and parameters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "name", rename_all = "snake_case", deny_unknown_fields)]
pub enum FeatureDecl {
    /// `(B - A) / (B + A)` over the best `levels` levels (B, A: bid and ask size).
    BookImbalance {
        #[schemars(range(min = 1, max = 50))]
        levels: u32,
    },
    /// Microprice minus mid, in ticks.
    MicropriceOffset {},
    /// Best ask minus best bid, in ticks.
    Spread {},
    /// `mid(now) / mid(now - window) - 1`, event time.
    MidReturn {
        #[schemars(range(min = 1, max = 86_400_000))]
        window_ms: u64,
    },
    /// `(buy - sell) / (buy + sell)` aggressor volume of the trades in the window.
    TradeImbalance {
        #[schemars(range(min = 1, max = 86_400_000))]
        window_ms: u64,
    },
    /// Square root of the sum of squared log mid changes in the window.
    RealizedVol {
        #[schemars(range(min = 1, max = 86_400_000))]
        window_ms: u64,
    },
    /// Size resting at the best price of one side (base asset units).
    TouchQty { side: BookSide },
    /// The strategy's position (base asset units, signed).
    Inventory {},
}

impl FeatureDecl {
    /// The feature's name, as declared.
    pub const fn kind(&self) -> &'static str {
        match self {
            FeatureDecl::BookImbalance { .. } => "book_imbalance",
            FeatureDecl::MicropriceOffset {} => "microprice_offset",
            FeatureDecl::Spread {} => "spread",
            FeatureDecl::MidReturn { .. } => "mid_return",
            FeatureDecl::TradeImbalance { .. } => "trade_imbalance",
            FeatureDecl::RealizedVol { .. } => "realized_vol",
            FeatureDecl::TouchQty { .. } => "touch_qty",
            FeatureDecl::Inventory {} => "inventory",
        }
    }

    /// The column name: the name and its parameters (`book_imbalance_5`, `mid_return_1000ms`,
    /// `touch_qty_bid`); the Python side derives the same (`FeatureSpec.column`).
    pub fn column(&self) -> String {
        match self {
            FeatureDecl::BookImbalance { levels } => format!("book_imbalance_{levels}"),
            FeatureDecl::MidReturn { window_ms }
            | FeatureDecl::TradeImbalance { window_ms }
            | FeatureDecl::RealizedVol { window_ms } => format!("{}_{window_ms}ms", self.kind()),
            FeatureDecl::TouchQty { side } => format!("touch_qty_{}", side.as_str()),
            FeatureDecl::MicropriceOffset {}
            | FeatureDecl::Spread {}
            | FeatureDecl::Inventory {} => self.kind().to_owned(),
        }
    }
}

/// A declared feature set: the features in column order.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FeatureSetDecl {
    #[schemars(length(min = 1))]
    pub features: Vec<FeatureDecl>,
}

impl FeatureSetDecl {
    /// Parses the JSON declaration; a shape error names its path (`features[2].levels`), and
    /// the range rules are checked too (every problem listed).
    pub fn from_json(text: &str) -> Result<FeatureSetDecl, ManifestError> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let decl: FeatureSetDecl = serde_path_to_error::deserialize(de).map_err(|err| {
            let path = err.path().to_string();
            ManifestError::Field {
                path: if path == "." { String::new() } else { path },
                message: err.into_inner().to_string(),
            }
        })?;
        let problems = decl.violations();
        if problems.is_empty() {
            Ok(decl)
        } else {
            Err(ManifestError::Invalid(problems))
        }
    }

    /// The rules serde does not check: at least one feature, ranges, no column twice.
    pub fn violations(&self) -> Vec<Violation> {
        let mut out = Vec::new();
        if self.features.is_empty() {
            out.push(Violation::of(
                "features.not_empty",
                "features",
                "must declare at least one feature",
            ));
        }
        for (i, f) in self.features.iter().enumerate() {
            match f {
                FeatureDecl::BookImbalance { levels } if !(1..=MAX_LEVELS).contains(levels) => {
                    out.push(Violation::of(
                        "features.range",
                        format!("features[{i}].levels"),
                        format!("must be 1..{MAX_LEVELS}, found {levels}"),
                    ));
                }
                FeatureDecl::MidReturn { window_ms }
                | FeatureDecl::TradeImbalance { window_ms }
                | FeatureDecl::RealizedVol { window_ms }
                    if !(1..=MAX_WINDOW_MS).contains(window_ms) =>
                {
                    out.push(Violation::of(
                        "features.range",
                        format!("features[{i}].window_ms"),
                        format!("must be 1..{MAX_WINDOW_MS} (one day), found {window_ms}"),
                    ));
                }
                _ => {}
            }
            if let Some(first) = self.features[..i].iter().position(|g| g == f) {
                out.push(Violation::of(
                    "features.no_duplicates",
                    format!("features[{i}]"),
                    format!("{} is declared twice (also features[{first}])", f.column()),
                ));
            }
        }
        out
    }

    /// Column names in order.
    pub fn columns(&self) -> Vec<String> {
        self.features.iter().map(FeatureDecl::column).collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn parses_the_yaml_shape_and_names_columns() {
        let decl = FeatureSetDecl::from_json(
            r#"{"features": [{"name": "book_imbalance", "levels": 5}, {"name": "spread"},
                {"name": "mid_return", "window_ms": 1000}, {"name": "touch_qty", "side": "ask"},
                {"name": "inventory"}]}"#,
        )
        .unwrap();
        assert_eq!(
            decl.columns(),
            [
                "book_imbalance_5",
                "spread",
                "mid_return_1000ms",
                "touch_qty_ask",
                "inventory"
            ]
        );
        let back = serde_json::to_string(&decl).unwrap();
        assert_eq!(FeatureSetDecl::from_json(&back).unwrap(), decl);
    }

    #[test]
    fn refuses_unknown_names_params_ranges_and_duplicates() {
        let err = |text: &str| FeatureSetDecl::from_json(text).unwrap_err().to_string();
        assert!(err(r#"{"features": [{"name": "magic"}]}"#).starts_with(
            "features[0].name: unknown variant `magic`, expected one of `book_imbalance`"
        ));
        assert!(err(r#"{"features": [{"name": "spread", "levels": 3}]}"#)
            .starts_with("features[0]: unknown field `levels`"));
        assert!(err(r#"{"features": [{"name": "book_imbalance"}]}"#)
            .starts_with("features[0]: missing field `levels`"));
        assert_eq!(
            err(r#"{"features": [{"name": "book_imbalance", "levels": 0},
                {"name": "realized_vol", "window_ms": 0}, {"name": "realized_vol", "window_ms": 0}]}"#),
            "features[0].levels: must be 1..50, found 0\n\
             features[1].window_ms: must be 1..86400000 (one day), found 0\n\
             features[2].window_ms: must be 1..86400000 (one day), found 0\n\
             features[2]: realized_vol_0ms is declared twice (also features[1])"
        );
        assert_eq!(
            err(r#"{"features": []}"#),
            "features: must declare at least one feature"
        );
        assert!(err(r#"{"features": [], "x": 1}"#).contains("unknown field `x`"));
    }
}
