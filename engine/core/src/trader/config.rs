//! The configuration of a run: exchanges, instruments, latencies, strategies, and its errors.

use super::*;

/// Constant latencies of one exchange, in ns of event time. See the module documentation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LatencyModel {
    /// From the strategy's decision to the exchange.
    pub order_entry_ns: Nanos,
    /// From the exchange back to the strategy.
    pub response_ns: Nanos,
    /// How late the recorded market data shows the exchange's book.
    pub feed_ns: Nanos,
}

impl LatencyModel {
    pub const ZERO: LatencyModel = LatencyModel {
        order_entry_ns: 0,
        response_ns: 0,
        feed_ns: 0,
    };

    /// The same one-way latency everywhere (the manifest's `sim.latency_us`).
    pub const fn symmetric(ns: Nanos) -> LatencyModel {
        LatencyModel {
            order_entry_ns: ns,
            response_ns: ns,
            feed_ns: ns,
        }
    }

    /// Clock time from sending to reaching the matcher.
    pub(super) const fn to_matcher(self) -> Nanos {
        self.order_entry_ns.saturating_add(self.feed_ns)
    }

    /// Clock time from the matcher to the strategy.
    pub(super) const fn to_strategy(self) -> Nanos {
        self.response_ns.saturating_sub(self.feed_ns)
    }
}

/// One instrument of an exchange.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstrumentConfig {
    pub symbol: String,
    pub spec: InstrumentSpec,
    /// A futures contract's expiry, ms since the epoch (`listing.expiry_ms`): orders only
    /// reduce its position within `risk.reduce_only_before_expiry_ms` of it, none are sent from
    /// it on, and a simulated venue delivers the position then at the book's mid.
    pub expiry_ms: Option<u64>,
}

/// One exchange: its book sync rule, latency and instruments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExchangeConfig {
    pub name: String,
    pub rule: SyncRule,
    pub latency: LatencyModel,
    pub instruments: Vec<InstrumentConfig>,
}

/// One strategy instance (the manifest's `strategies.<name>`).
#[derive(Clone, Debug, PartialEq)]
pub struct StrategyConfig {
    pub name: String,
    pub strategy: rt_manifest::model::Strategy,
}

/// Everything a backtest needs; [`TraderConfig::from_manifest`] fills it from a manifest,
/// and every field may be changed before [`Trader::new`].
#[derive(Clone, Debug, PartialEq)]
pub struct TraderConfig {
    pub exchanges: Vec<ExchangeConfig>,
    pub strategies: Vec<StrategyConfig>,
    pub risk: Risk,
    /// Equity sampling period in event time (positive).
    pub equity_interval_ns: Nanos,
    /// Bound on the equity curve's length (at least 2).
    pub max_equity_samples: usize,
    /// Bound on each of the order, fill and position records.
    pub max_records: usize,
}

impl TraderConfig {
    pub const DEFAULT_EQUITY_INTERVAL_NS: Nanos = 1_000_000_000;
    pub const DEFAULT_MAX_EQUITY_SAMPLES: usize = 1 << 20;
    pub const DEFAULT_MAX_RECORDS: usize = 10_000_000;

    /// Every exchange of the manifest with all its instruments, every strategy, the risk
    /// section; latencies from `sim.latency_us`.
    pub fn from_manifest(manifest: &Manifest) -> TraderConfig {
        let exchanges = manifest
            .exchanges
            .iter()
            .map(|(name, exchange)| ExchangeConfig {
                name: name.clone(),
                rule: match exchange.market {
                    Market::Spot => SyncRule::Spot,
                    Market::Usdm => SyncRule::UsdM,
                },
                latency: exchange.sim.as_ref().map_or(LatencyModel::ZERO, |sim| {
                    LatencyModel::symmetric(
                        Nanos::try_from(sim.latency_us.saturating_mul(1_000)).unwrap_or(Nanos::MAX),
                    )
                }),
                instruments: exchange
                    .instruments
                    .iter()
                    .map(|(symbol, instrument)| InstrumentConfig {
                        symbol: symbol.clone(),
                        spec: InstrumentSpec::from_manifest(instrument),
                        expiry_ms: instrument.listing.as_ref().and_then(|l| l.expiry_ms),
                    })
                    .collect(),
            })
            .collect();
        let strategies = manifest
            .strategies
            .iter()
            .map(|(name, strategy)| StrategyConfig {
                name: name.clone(),
                strategy: strategy.clone(),
            })
            .collect();
        TraderConfig {
            exchanges,
            strategies,
            risk: manifest.risk.clone(),
            equity_interval_ns: Self::DEFAULT_EQUITY_INTERVAL_NS,
            max_equity_samples: Self::DEFAULT_MAX_EQUITY_SAMPLES,
            max_records: Self::DEFAULT_MAX_RECORDS,
        }
    }
}

/// Why a backtest cannot be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TraderError {
    #[error("strategies.{strategy}: exchange {exchange:?} is not in the backtest")]
    UnknownExchange { strategy: String, exchange: String },
    #[error("strategies.{strategy}: instrument {symbol:?} is not on exchange {exchange:?}")]
    UnknownInstrument {
        strategy: String,
        exchange: String,
        symbol: String,
    },
    #[error("strategies.{strategy}: {source}")]
    Strategy {
        strategy: String,
        #[source]
        source: StrategyError,
    },
    #[error("strategy {strategy}: instrument id {id} is not in the backtest")]
    InstrumentId { strategy: String, id: InstrumentId },
    #[error("exchange index {0} is not in the backtest")]
    ExchangeIndex(ExchangeId),
    #[error("strategy index {0} (or its slot) is not in the backtest")]
    StrategyIndex(usize),
    #[error("{field} must be {rule}, found {value}")]
    Setting {
        field: &'static str,
        rule: &'static str,
        value: i64,
    },
}
