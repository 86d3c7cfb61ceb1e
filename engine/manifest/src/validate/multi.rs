//! The rules of several venues in one engine: a market maker's signal book
//! (`strategies.<name>.params.signal`) and the per-asset limits across venues
//! (`risk.assets.<asset>`).
//!
//! - `strategy.signal_exchange`: the signal's exchange is an exchange of this engine.
//! - `strategy.signal_instrument`: the signal's instrument is listed on that exchange, and is
//!   not the quoted instrument itself (that is the market maker without a signal).
//! - `strategy.signal_one_instrument`: a market maker with a signal quotes one instrument (one
//!   fair value, one basis).
//! - `strategy.param_range`: `basis_updates` at least 1.
//! - `risk.positive`: an asset's `max_position` is positive.
//! - `risk.asset_instrument`: an asset lists at least one instrument, each with
//!   `risk.instruments` limits and in no other asset.

use std::collections::BTreeMap;

use crate::model::{Manifest, Signal, Strategy};

use super::Checker;

impl Checker {
    pub(super) fn signal(
        &mut self,
        name: &str,
        strategy: &Strategy,
        signal: &Signal,
        m: &Manifest,
    ) {
        let path = format_args!("strategies.{name}.params.signal");
        self.at_least(
            "strategy.param_range",
            format_args!("{path}.basis_updates"),
            signal.basis_updates.into(),
            1,
        );
        if strategy.instruments.len() > 1 {
            self.fail(
                "strategy.signal_one_instrument",
                format_args!("strategies.{name}.instruments"),
                format_args!(
                    "{} instruments: a market maker with a signal quotes exactly one",
                    strategy.instruments.len()
                ),
            );
        }
        let Some(exchange) = m.exchanges.get(&signal.exchange) else {
            self.fail(
                "strategy.signal_exchange",
                format_args!("{path}.exchange"),
                format_args!(
                    "{} is not an exchange of this engine {:?}",
                    signal.exchange,
                    m.exchanges.keys().collect::<Vec<_>>()
                ),
            );
            return;
        };
        if !exchange.instruments.contains_key(&signal.instrument) {
            self.fail(
                "strategy.signal_instrument",
                format_args!("{path}.instrument"),
                format_args!(
                    "{} is not an instrument of exchange {} {:?}",
                    signal.instrument,
                    signal.exchange,
                    exchange.instruments.keys().collect::<Vec<_>>()
                ),
            );
        } else if signal.exchange == strategy.exchange
            && strategy.instruments.contains(&signal.instrument)
        {
            self.fail(
                "strategy.signal_instrument",
                format_args!("{path}.instrument"),
                format_args!(
                    "{} on {} is the quoted instrument itself (drop the signal to quote \
                     around its own book)",
                    signal.instrument, signal.exchange
                ),
            );
        }
    }

    pub(super) fn assets(&mut self, m: &Manifest) {
        let Some(assets) = &m.risk.assets else {
            return;
        };
        let mut owner: BTreeMap<&str, &str> = BTreeMap::new();
        for (asset, limits) in assets {
            self.positive(
                "risk.positive",
                format_args!("risk.assets.{asset}.max_position"),
                limits.max_position,
            );
            if limits.instruments.is_empty() {
                self.fail(
                    "risk.asset_instrument",
                    format_args!("risk.assets.{asset}.instruments"),
                    "empty (an asset limit counts the positions of at least one instrument)",
                );
            }
            for (i, symbol) in limits.instruments.iter().enumerate() {
                self.inverse_in_asset(asset, i, symbol, m);
                let path = format_args!("risk.assets.{asset}.instruments[{i}]");
                if !m.risk.instruments.contains_key(symbol) {
                    self.fail(
                        "risk.asset_instrument",
                        path,
                        format_args!(
                            "{symbol} has no risk.instruments entry {:?}",
                            m.risk.instruments.keys().collect::<Vec<_>>()
                        ),
                    );
                } else if let Some(other) = owner.insert(symbol, asset) {
                    self.fail(
                        "risk.asset_instrument",
                        path,
                        format_args!(
                            "{symbol} is already counted in risk.assets.{other} (an instrument \
                             has one base asset)"
                        ),
                    );
                }
            }
        }
    }
}
