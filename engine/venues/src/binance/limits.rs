//! Binance's REST rate limits, as the venue documents them: the weight of each endpoint, the
//! usage headers every response carries, the fixed windows the limits are counted in, and the
//! answers of a venue whose limit is exceeded (HTTP 429 with `Retry-After`, then HTTP 418, an IP
//! ban). The sim venue serves them (`rt-sim`) and the live engine accounts by them
//! (`rt-runtime`'s `ratelimit`): one definition for both sides.
//!
//! - `X-MBX-USED-WEIGHT-1M`: the request weight the IP used in the current minute, on every
//!   response; the limit is the exchange's `request_weight_per_minute`.
//! - `X-MBX-ORDER-COUNT-10S` / `X-MBX-ORDER-COUNT-1D`: new orders the account placed in the
//!   current 10 seconds / UTC day, on order responses; limits `orders_per_10s`,
//!   `orders_per_day`.
//! - A request past a limit is answered HTTP 429 (`-1003` for weight, `-1015` for orders) with
//!   `Retry-After` (seconds); asking again before then gets HTTP 418 (banned, `-1003`) with
//!   `Retry-After` until the ban is over.
//!
//! The windows are fixed intervals from the epoch (a minute, 10 s, a UTC day), as Binance's
//! interval counters are.

use super::errors::ApiError;
pub use crate::rate_limits::{
    Interval, Limits, RateRules, Seen, Throttle, Usage, UsageHeaders, Windows,
};

/// Header names (lower case, as HTTP/1.1 header names compare; Binance writes them upper case).
pub const USED_WEIGHT_1M: &str = "x-mbx-used-weight-1m";
pub const ORDER_COUNT_10S: &str = "x-mbx-order-count-10s";
pub const ORDER_COUNT_1D: &str = "x-mbx-order-count-1d";
pub const RETRY_AFTER: &str = "retry-after";

/// Error codes: too much request weight (429, and 418 when banned); too many new orders (429).
pub const TOO_MUCH_WEIGHT: i32 = -1003;
pub const TOO_MANY_ORDERS: i32 = -1015;

/// An IP ban's length when the venue does not say (Binance: from 2 minutes to 3 days).
pub const DEFAULT_BAN_MS: u64 = 120_000;

/// The weight of a Spot (`/api/v3`) or USD-M (`/fapi/v1`) REST request.
pub fn weight(method: &str, path: &str, query: &str) -> u32 {
    let param = |name: &str| {
        query
            .split('&')
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    };
    let depth_limit = || param("limit").and_then(|l| l.parse::<u32>().ok());
    match (method, path) {
        ("GET", "/api/v3/depth") => match depth_limit().unwrap_or(100) {
            0..=100 => 5,
            101..=500 => 25,
            501..=1000 => 50,
            _ => 250,
        },
        ("GET", "/fapi/v1/depth") => match depth_limit().unwrap_or(500) {
            0..=50 => 2,
            51..=100 => 5,
            101..=500 => 10,
            _ => 20,
        },
        ("GET", "/api/v3/order") => 4,
        ("GET", "/api/v3/openOrders") if param("symbol").is_some() => 6,
        ("GET", "/api/v3/openOrders") => 80,
        ("GET", "/api/v3/myTrades") if param("orderId").is_some() => 5,
        ("GET", "/api/v3/myTrades") => 20,
        ("GET", "/api/v3/account") => 20,
        ("GET", "/api/v3/exchangeInfo") => 20,
        (_, "/api/v3/userDataStream") => 2,
        // USD-M (derivatives docs, each endpoint's "Request Weight").
        ("GET", "/fapi/v1/openOrders") if param("symbol").is_none() => 40,
        ("GET", "/fapi/v1/userTrades") => 5,
        ("GET", "/fapi/v2/balance") => 5,
        ("GET", "/fapi/v2/positionRisk") => 5,
        ("GET", "/fapi/v1/positionSide/dual") => 30,
        ("GET", "/fapi/v1/income") => 30,
        _ => 1,
    }
}

/// A new order: counts towards the order limits.
pub fn is_new_order(method: &str, path: &str) -> bool {
    method == "POST" && (path == "/api/v3/order" || path == "/fapi/v1/order")
}

/// The usage headers Binance writes (the generic accounting reads them through [`RULES`]).
pub const HEADERS: UsageHeaders = UsageHeaders {
    weight_1m: Some(USED_WEIGHT_1M),
    orders_10s: Some(ORDER_COUNT_10S),
    orders_1d: Some(ORDER_COUNT_1D),
    retry_after: RETRY_AFTER,
};

/// Binance's rules for the runtime's rate-limit accounting (Spot, USD-M and the sim, which
/// serves them).
#[derive(Debug, Clone, Copy, Default)]
pub struct BinanceRules;

/// The one instance.
pub static RULES: BinanceRules = BinanceRules;

impl RateRules for BinanceRules {
    fn weight(&self, method: &str, path: &str, query: &str) -> u32 {
        weight(method, path, query)
    }

    fn is_new_order(&self, method: &str, path: &str) -> bool {
        is_new_order(method, path)
    }

    fn headers(&self) -> &UsageHeaders {
        &HEADERS
    }

    /// `-1015` (too many new orders) is about the account's 10 s order window: new orders
    /// wait for its end, cancels and queries (no orders) do not; anything else (`-1003`) about
    /// the IP's weight per minute, which every request waits for.
    fn throttled(&self, _method: &str, _path: &str, body: &[u8], now_ms: u64) -> Throttle {
        match ApiError::parse(&String::from_utf8_lossy(body)) {
            Ok(e) if e.code == TOO_MANY_ORDERS => Throttle {
                until_ms: Interval::TenSeconds.window_end(now_ms),
                orders_only: true,
            },
            _ => Throttle {
                until_ms: Interval::Minute.window_end(now_ms),
                orders_only: false,
            },
        }
    }

    fn default_ban_ms(&self) -> u64 {
        DEFAULT_BAN_MS
    }
}

/// The 429 body for a broken limit.
pub fn exceeded(interval: Interval, limits: &Limits) -> ApiError {
    match interval {
        Interval::Minute => ApiError::new(
            TOO_MUCH_WEIGHT,
            format!(
                "Too much request weight used; current limit is {} request weight per 1 MINUTE. \
                 Please use WebSocket Streams for live updates to avoid polling the API.",
                limits.weight_per_minute
            ),
        ),
        Interval::TenSeconds | Interval::Day => ApiError::new(
            TOO_MANY_ORDERS,
            format!(
                "Too many new orders; current limit is {} orders per {}.",
                if interval == Interval::Day {
                    limits.orders_per_day
                } else {
                    limits.orders_per_10s
                },
                interval.as_str()
            ),
        ),
    }
}

/// The 418 body.
pub fn banned(until_ms: u64) -> ApiError {
    ApiError::new(
        TOO_MUCH_WEIGHT,
        format!(
            "Way too much request weight used; IP banned until {until_ms}. Please use WebSocket \
             Streams for live updates to avoid bans."
        ),
    )
}

/// `Retry-After` for a wait until `until_ms`: whole seconds, rounded up, at least 1.
pub fn retry_after_s(now_ms: u64, until_ms: u64) -> u64 {
    until_ms.saturating_sub(now_ms).div_ceil(1000).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        weight_per_minute: 100,
        orders_per_10s: 2,
        orders_per_day: 3,
    };

    #[test]
    fn weights_of_the_endpoints_served() {
        assert_eq!(weight("GET", "/api/v3/depth", "symbol=X"), 5);
        assert_eq!(weight("GET", "/api/v3/depth", "symbol=X&limit=500"), 25);
        assert_eq!(weight("GET", "/api/v3/depth", "symbol=X&limit=1000"), 50);
        assert_eq!(weight("GET", "/api/v3/depth", "symbol=X&limit=5000"), 250);
        assert_eq!(weight("GET", "/fapi/v1/depth", "symbol=X&limit=1000"), 20);
        assert_eq!(weight("POST", "/api/v3/order", ""), 1);
        assert_eq!(weight("DELETE", "/api/v3/order", ""), 1);
        assert_eq!(weight("DELETE", "/api/v3/openOrders", "symbol=X"), 1);
        assert_eq!(weight("GET", "/api/v3/order", "symbol=X"), 4);
        assert_eq!(weight("GET", "/api/v3/openOrders", "symbol=X"), 6);
        assert_eq!(weight("GET", "/api/v3/openOrders", ""), 80);
        assert_eq!(weight("GET", "/api/v3/myTrades", "symbol=X"), 20);
        assert_eq!(weight("GET", "/api/v3/myTrades", "symbol=X&orderId=1"), 5);
        assert_eq!(weight("GET", "/api/v3/account", ""), 20);
        assert_eq!(weight("POST", "/api/v3/userDataStream", ""), 2);
        assert_eq!(weight("PUT", "/api/v3/userDataStream", "listenKey=k"), 2);
        assert_eq!(weight("GET", "/api/v3/ping", ""), 1);
        assert!(is_new_order("POST", "/api/v3/order"));
        assert!(!is_new_order("DELETE", "/api/v3/order"));
    }

    #[test]
    fn windows_count_and_reset_at_their_boundaries() {
        let mut w = Windows::default();
        let t = 1_700_000_000_000 / 86_400_000 * 86_400_000 + 5_000;
        w.add(t, 60, true);
        w.add(t + 1, 30, true);
        assert_eq!(
            w.usage(t + 2),
            Usage {
                weight_1m: 90,
                orders_10s: 2,
                orders_1d: 2
            }
        );
        assert_eq!(w.would_exceed(t + 2, &LIMITS, 10, false), None);
        assert_eq!(
            w.would_exceed(t + 2, &LIMITS, 11, false),
            Some(Interval::Minute)
        );
        assert_eq!(
            w.would_exceed(t + 2, &LIMITS, 1, true),
            Some(Interval::TenSeconds)
        );
        // The next 10 s: the day's count is what stops the fourth order.
        let t2 = Interval::TenSeconds.window_end(t);
        assert_eq!(w.would_exceed(t2, &LIMITS, 1, true), None);
        w.add(t2, 1, true);
        assert_eq!(w.would_exceed(t2, &LIMITS, 1, true), Some(Interval::Day));
        // A new minute: the weight starts again.
        let m = Interval::Minute.window_end(t);
        assert_eq!(w.usage(m).weight_1m, 0);
        assert_eq!(w.usage(m).orders_1d, 3);
        // Raised to what the venue says, never lowered.
        w.raise_to(
            m,
            Usage {
                weight_1m: 40,
                orders_10s: 0,
                orders_1d: 1,
            },
        );
        assert_eq!(w.usage(m).weight_1m, 40);
        assert_eq!(w.usage(m).orders_1d, 3);
    }

    #[test]
    fn headers_and_answers() {
        let headers = [
            (USED_WEIGHT_1M, "57"),
            (ORDER_COUNT_10S, "3"),
            (RETRY_AFTER, "12"),
        ];
        let seen = Seen::parse(&HEADERS, |n| {
            headers.iter().find(|(k, _)| *k == n).map(|(_, v)| *v)
        });
        assert_eq!(seen.weight_1m, Some(57));
        assert_eq!(seen.orders_10s, Some(3));
        assert_eq!(seen.orders_1d, None);
        assert_eq!(seen.retry_after_s, Some(12));
        assert_eq!(seen.usage().orders_1d, 0);
        let e = exceeded(Interval::Minute, &LIMITS);
        assert_eq!(e.code, TOO_MUCH_WEIGHT);
        assert!(
            e.msg.contains("100 request weight per 1 MINUTE"),
            "{}",
            e.msg
        );
        let e = exceeded(Interval::TenSeconds, &LIMITS);
        assert_eq!(e.code, TOO_MANY_ORDERS);
        assert!(e.msg.contains("2 orders per 10 SECOND"), "{}", e.msg);
        assert!(banned(5).msg.contains("IP banned until 5"));
        assert_eq!(retry_after_s(1_000, 1_001), 1);
        assert_eq!(retry_after_s(1_000, 3_500), 3);
        assert_eq!(retry_after_s(5_000, 1_000), 1);
    }
}
