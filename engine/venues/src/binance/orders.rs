//! Binance Spot order entry as Binance documents it, without I/O: shared by the sim venue
//! (server side) and the engine's gateway (client side, through [`super::SpotExecution`]).
//!
//! One path for every piece, whichever file holds it (the crate root re-exports this module
//! as `rt_venues::binance_orders`):
//! - requests ([`super::requests`]): the parameters of `POST /api/v3/order` ([`NewOrder`]),
//!   `DELETE /api/v3/order` ([`CancelOrder`]), `GET /api/v3/order` ([`QueryOrder`]),
//!   `DELETE /api/v3/openOrders` ([`CancelOpenOrders`]), `GET /api/v3/openOrders`
//!   ([`OpenOrdersQuery`]), `GET /api/v3/account` ([`AccountQuery`]) and `GET /api/v3/myTrades`
//!   ([`MyTradesQuery`]), over the query strings and [`Timing`] of [`super::query`];
//! - errors ([`super::errors`]): [`OrderError`] (mapped to Binance's codes) and [`ApiError`];
//! - signing ([`super::signing`]): [`sign`], [`signed_query`], [`SignedParams::split`],
//!   [`verify`];
//! - REST answers ([`super::rest`]): [`NewOrderResponse`], [`CancelResponse`], [`OrderInfo`],
//!   [`TradeInfo`], the listen key;
//! - the user data stream ([`super::user_stream`]): [`ExecutionReport`],
//!   [`is_listen_key_expired`];
//! - the enumerations ([`super::vocab`]) and decimals ([`format_units`], [`parse_decimal`]).
//!
//! Prices, quantities and commissions are decimal strings on the wire and fixed point
//! ([`rt_core::Price`], [`rt_core::Qty`], [`rt_core::Cash`], 10^-8 units) here; nothing goes
//! through a float. Formatted decimals carry 8 fractional digits, as Binance Spot sends them
//! (`"61837.63000000"`).

pub use super::errors::{ApiError, OrderError};
pub use super::query::{
    check_client_id, Params, Timing, DEFAULT_RECV_WINDOW_MS, MAX_CLIENT_ORDER_ID,
    MAX_CLOCK_AHEAD_MS, MAX_RECV_WINDOW_MS,
};
pub use super::requests::{
    AccountQuery, CancelOpenOrders, CancelOrder, MyTradesQuery, NewOrder, OpenOrdersQuery,
    QueryOrder, DEFAULT_MY_TRADES_LIMIT, MAX_MY_TRADES_LIMIT, MY_TRADES_PATH, OPEN_ORDERS_PATH,
    ORDER_PATH,
};
pub use super::rest::{
    format_listen_key, format_open_orders, my_trades_json, order_json, parse_listen_key,
    parse_my_trades, parse_open_orders, parse_order, CancelResponse, FillInfo, NewOrderResponse,
    OrderInfo, TradeInfo,
};
pub use super::signing::{sign, signed_query, verify, SignedParams, API_KEY_HEADER};
pub use super::user_stream::{is_listen_key_expired, ExecutionReport, USER_DATA_STREAM_PATH};
pub use super::vocab::{
    parse_side, side_str, ExecType, OrderStatus, OrderType, RespType, StpMode, TimeInForce,
};
pub use super::wire::{format_units, parse_decimal};
