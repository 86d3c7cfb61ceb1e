//! Binance, one venue in one module: everything the engine and the sim venue know of its
//! protocols, without I/O.
//!
//! - Market data ([`market`], re-exported here): WebSocket frames and REST depth snapshots to
//!   core events ([`Decoder`]).
//! - Order entry, one concern a file, with one path for all of it ([`orders`], also
//!   `rt_venues::binance_orders`): [`requests`] (request parameters to and from query strings),
//!   [`query`] (query strings, `timestamp`/`recvWindow`), [`signing`] (HMAC-SHA256),
//!   [`rest`] (order, cancel, open-orders, myTrades and listen-key answers), [`user_stream`]
//!   (`executionReport`, `listenKeyExpired`), [`errors`] (refusals and error bodies),
//!   [`vocab`] (the enumerations), [`wire`] (decimals, JSON writing).
//! - [`ws_api`]: order entry over the WebSocket API (`order.place`, `order.cancel`,
//!   `order.status` frames signed per request into a reused buffer, their answers read).
//! - [`execution`]: the execution boundary, [`crate::execution::ExecutionClient`] for Binance
//!   Spot ([`SpotExecution`]): what the gateway calls to build, sign and read order entry.
//! - USD-M futures ([`usdm`]: `/fapi` requests, answers, `ORDER_TRADE_UPDATE`,
//!   `ACCOUNT_UPDATE`, `markPriceUpdate`) and its execution client ([`USdmExecution`]).
//! - [`account`]: balances (`GET /api/v3/account`) and symbol filters (`exchangeInfo`).
//! - [`limits`]: the REST rate limits (weights, usage headers, 429/418).

pub mod account;
pub mod errors;
pub mod execution;
pub mod limits;
pub mod market;
pub mod orders;
pub mod query;
pub mod requests;
pub mod rest;
pub mod signing;
#[cfg(test)]
mod test_support;
pub mod usdm;
pub mod usdm_execution;
pub mod usdm_income;
pub mod user_stream;
pub mod vocab;
pub mod wire;
pub mod ws_api;

pub use execution::SpotExecution;
pub use market::*;
pub use usdm_execution::USdmExecution;
