//! The rules of `engine.anomaly` (rule `engine.anomaly`): a window the detector can measure,
//! a baseline named with its hash and derivation, and ranges only for figures the engine
//! measures (`md_messages_per_s.<exchange>` for an exchange of this engine), each with
//! `low <= high`.

use crate::model::{Anomaly, Manifest, ANOMALY_FIGURES, ANOMALY_MD_RATE};

use super::Checker;

const RULE: &str = "engine.anomaly";

impl Checker {
    pub(super) fn anomaly(&mut self, m: &Manifest, a: &Anomaly) {
        self.within(
            RULE,
            format_args!("engine.anomaly.window_s"),
            a.window_s.into(),
            5,
            86_400,
        );
        if a.baseline.trim().is_empty() {
            self.fail(
                RULE,
                "engine.anomaly.baseline",
                "is empty (the baseline file)",
            );
        }
        if !super::is_sha256(&a.baseline_sha256) {
            self.fail(
                RULE,
                "engine.anomaly.baseline_sha256",
                format_args!("{:?} is not a lowercase hex SHA-256", a.baseline_sha256),
            );
        }
        if a.derivation.trim().is_empty() {
            self.fail(
                RULE,
                "engine.anomaly.derivation",
                "is empty (how the ranges were derived is carried into every anomaly)",
            );
        }
        if a.figures.is_empty() {
            self.fail(
                RULE,
                "engine.anomaly.figures",
                "is empty (no figure to watch: set engine.anomaly to null instead)",
            );
        }
        for (name, range) in &a.figures {
            let path = format_args!("engine.anomaly.figures.{name}");
            let known = match name.strip_prefix(ANOMALY_MD_RATE) {
                Some(exchange) => m.exchanges.contains_key(exchange),
                None => ANOMALY_FIGURES.contains(&name.as_str()),
            };
            if !known {
                let exchanges: Vec<String> = m
                    .exchanges
                    .keys()
                    .map(|x| format!("{ANOMALY_MD_RATE}{x}"))
                    .collect();
                self.fail(
                    RULE,
                    path,
                    format_args!(
                        "is not a figure this engine measures (known: {}, {})",
                        ANOMALY_FIGURES.join(", "),
                        exchanges.join(", ")
                    ),
                );
            } else if range.low > range.high {
                self.fail(
                    RULE,
                    path,
                    format_args!("low {} is above high {}", range.low, range.high),
                );
            }
        }
    }
}
