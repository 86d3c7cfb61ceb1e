//! OKX's REST rate limits as the engine accounts them (`rt_venues::rate_limits`).
//!
//! OKX limits each endpoint separately over 2 s (by user ID for private endpoints, by IP for
//! public ones; placing orders per instrument), reports no usage in headers and sends no
//! `Retry-After`: a request past a limit is answered HTTP 429 with code `50011` ("Too Many
//! Requests"), `50061` a sub-account's order limit (OKX v5 docs, "Rate limit" and "REST API
//! Error Codes"). So the engine:
//!
//! - counts every request as weight 1 against the exchange's `request_weight_per_minute`;
//! - counts placing and amending an order (`POST /api/v5/trade/order`, `batch-orders`,
//!   `amend-order`, `amend-batch-orders`) as a new order against `orders_per_10s` and
//!   `orders_per_day` (the engine's budget is the exchange's `rate_limits`);
//! - backs off a 429 for [`BACKOFF_MS`] (OKX's window); a 429 on placing or amending holds
//!   back new orders only, so a cancel (which reduces risk) still goes.

use super::execution::ORDER_PATH;
use crate::rate_limits::{Interval, RateRules, Throttle, UsageHeaders};

/// OKX's rate-limit window, and the back-off of a 429 (OKX sends no `Retry-After`).
pub const BACKOFF_MS: u64 = 2_000;

/// Placing several orders at once.
pub const BATCH_ORDERS_PATH: &str = "/api/v5/trade/batch-orders";
/// Amending an order (the engine cancels and places; counted in case it amends one day).
pub const AMEND_PATH: &str = "/api/v5/trade/amend-order";
pub const AMEND_BATCH_PATH: &str = "/api/v5/trade/amend-batch-orders";

/// The request places or amends orders: counts towards the order limits.
pub fn is_new_order(method: &str, path: &str) -> bool {
    method == "POST"
        && matches!(
            path,
            ORDER_PATH | BATCH_ORDERS_PATH | AMEND_PATH | AMEND_BATCH_PATH
        )
}

const HEADERS: UsageHeaders = UsageHeaders {
    weight_1m: None,
    orders_10s: None,
    orders_1d: None,
    // OKX sends none; honoured if it ever does.
    retry_after: "retry-after",
};

/// OKX's rules for the runtime's rate-limit accounting.
#[derive(Debug, Clone, Copy, Default)]
pub struct OkxRules;

/// The one instance.
pub static RULES: OkxRules = OkxRules;

impl RateRules for OkxRules {
    fn weight(&self, _method: &str, _path: &str, _query: &str) -> u32 {
        1
    }

    fn is_new_order(&self, method: &str, path: &str) -> bool {
        is_new_order(method, path)
    }

    fn headers(&self) -> &UsageHeaders {
        &HEADERS
    }

    /// [`BACKOFF_MS`] from now, whatever the body says (`50011` or `50061`); new orders only
    /// when the throttled request placed or amended orders.
    fn throttled(&self, method: &str, path: &str, _body: &[u8], now_ms: u64) -> Throttle {
        Throttle {
            until_ms: now_ms.saturating_add(BACKOFF_MS),
            orders_only: is_new_order(method, path),
        }
    }

    /// OKX documents no IP ban (HTTP 418); one is held for two minutes, as an unmodelled
    /// venue's.
    fn default_ban_ms(&self) -> u64 {
        2 * Interval::Minute.ms()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::okx::execution::{CANCEL_BATCH_PATH, CANCEL_PATH, PENDING_PATH};

    #[test]
    fn placing_and_amending_count_as_orders_and_a_429_backs_off_two_seconds() {
        for path in [ORDER_PATH, BATCH_ORDERS_PATH, AMEND_PATH, AMEND_BATCH_PATH] {
            assert!(RULES.is_new_order("POST", path), "{path}");
        }
        for path in [CANCEL_PATH, CANCEL_BATCH_PATH] {
            assert!(!RULES.is_new_order("POST", path), "{path}");
        }
        assert!(!RULES.is_new_order("GET", ORDER_PATH), "an order query");
        assert!(!RULES.is_new_order("GET", PENDING_PATH));
        let t = 1_700_000_030_500;
        let body = br#"{"code":"50011","msg":"Too Many Requests","data":[]}"#;
        assert_eq!(
            RULES.throttled("POST", ORDER_PATH, body, t),
            Throttle {
                until_ms: t + 2_000,
                orders_only: true
            }
        );
        assert_eq!(
            RULES.throttled("POST", CANCEL_PATH, body, t),
            Throttle {
                until_ms: t + 2_000,
                orders_only: false
            }
        );
        assert_eq!(RULES.headers().weight_1m, None);
    }
}
