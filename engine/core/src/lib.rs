//! rt-core: the deterministic heart of py_rt, shared by the live engine and by backtests.
//!
//! No I/O and no wall clock: time arrives with events, so the same inputs always give the same
//! outputs, whether they come from a WebSocket or from a recorded file.

pub mod book;
pub mod event;
pub mod features;
pub mod flightlog;
pub mod markout;
pub mod matching;
pub mod model;
pub mod order;
pub mod portfolio;
pub mod risk;
pub mod strategy;
pub mod sync;
pub mod trader;
pub mod types;

pub use book::{BookError, OrderBook};
pub use event::{Bbo, DepthDiff, Header, Level, MarketEvent, Snapshot, SymbolId, Trade};
pub use features::{DepthImbalance, FeatureError, FeatureSet};
pub use matching::{Exec, ExecKind, Matcher, SimOrder, SimRequest};
pub use order::{LifecycleError, LifecycleStatus, OrderEvent, OrderLifecycle};
pub use portfolio::{Cash, ContractValue, InstrumentId, InstrumentSpec, Portfolio, Position};
pub use risk::{
    InstrumentLimits, InstrumentRisk, RejectReason, RiskAnchors, RiskCause, RiskConfig, RiskEngine,
    RiskRestore, RiskState, RiskTransition, TightenError,
};
pub use strategy::{
    Action, Amend, FillReport, ModelLoader, ModelStats, NewOrder, OrderKind, OrderStatus,
    OrderUpdate, Strategy, StrategyContext, StrategyError,
};
pub use sync::{BookSync, DiffOutcome, SyncCounters, SyncRule, SyncState, MAX_CROSSED_DIFFS};
pub use trader::{
    BacktestResult, BacktestSummary, EquitySample, ExchangeConfig, ExchangeId, FillRecord,
    InstrumentConfig, InstrumentInfo, LatencyModel, OrderRecord, PositionRecord, RiskEventRecord,
    StrategyConfig, Trader, TraderConfig, TraderCounters, TraderError, TraderEvent, VenueRequest,
};
pub use types::{
    notional, parse_signed_units, parse_units, Nanos, ParseDecimalError, Price, Qty, Side, SCALE,
};
