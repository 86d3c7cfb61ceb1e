//! rt-core: the deterministic heart of py_rt, shared by the live engine and by backtests.
//!
//! No I/O and no wall clock: time arrives with events, so the same inputs always give the same
//! outputs, whether they come from a WebSocket or from a recorded file.

pub mod book;
pub mod event;
pub mod sync;
pub mod types;

pub use book::{BookError, OrderBook};
pub use event::{Bbo, DepthDiff, Header, Level, MarketEvent, Snapshot, SymbolId, Trade};
pub use sync::{BookSync, DiffOutcome, SyncCounters, SyncRule, SyncState};
pub use types::{notional, parse_units, Nanos, ParseDecimalError, Price, Qty, Side, SCALE};
