//! The sim venue's REST rate limits, kept as Binance keeps them (`rt_venues::binance_limits`):
//! every venue request is weighed, the IP's used weight and the account's order counts go back
//! in the response headers, a request past a limit is answered HTTP 429 with `Retry-After`, and
//! a request before that `Retry-After` is over gets HTTP 418, an IP ban, for `ban_ms` (one that
//! arrives within [`IN_FLIGHT_MS`] of the 429 was on its way already: another 429).
//!
//! The limits start as the manifest's `rate_limits`; a `rate_limit` fault sets or squeezes
//! them, adds usage (another client on the same IP or account), shortens the `Retry-After` of
//! a 429 (a test need not wait for the minute to end) or sets the ban's length; a `ban` fault
//! bans at once. The sim's admin endpoints (`/sim/...`) are not venue requests: never limited.

use rt_venues::binance_limits::{self as bl, Interval, Limits, Usage, Windows};
use rt_venues::binance_orders::ApiError;

/// Requests within this long after a 429 were sent before its answer arrived: they get a 429
/// too, not a ban.
pub const IN_FLIGHT_MS: u64 = 250;

/// A `rate_limit` fault's settings (each optional: only those given change).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateLimitFault {
    pub weight_limit: Option<u32>,
    pub orders_10s_limit: Option<u32>,
    pub orders_1d_limit: Option<u32>,
    pub used_weight: Option<u32>,
    pub used_orders_10s: Option<u32>,
    pub used_orders_1d: Option<u32>,
    /// `Retry-After` of a 429, in seconds, instead of the time to the window's end (0: back to
    /// the window's end).
    pub retry_after_s: Option<u64>,
    /// The length of an IP ban, in seconds.
    pub ban_s: Option<u64>,
}

/// What a venue request gets.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Served; the headers carry `usage` (the order counts when `order`).
    Pass { usage: Usage, order: bool },
    /// Refused with HTTP `status` (429 or 418) and `Retry-After`.
    Refuse {
        status: u16,
        error: ApiError,
        retry_after_s: u64,
        usage: Usage,
    },
}

/// Counters of the meter (the sim's status).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MeterCounts {
    /// Venue requests received (served or refused).
    pub api_requests: u64,
    /// Answered 429.
    pub rate_limited: u64,
    /// Answered 418.
    pub banned: u64,
    /// Milliseconds from the last 429 to the next request served (a client that waited out
    /// `Retry-After`; one that did not was banned instead).
    pub resumed_after_429_ms: Option<u64>,
}

#[derive(Debug)]
pub(crate) struct Meter {
    limits: Limits,
    windows: Windows,
    /// After a 429: a request before this is banned.
    backoff_until: u64,
    /// The limit the back-off is for.
    backoff_interval: Interval,
    banned_until: u64,
    ban_ms: u64,
    retry_after_s: Option<u64>,
    counts: MeterCounts,
    /// When the first 429 of the current back-off was answered, until the next request served.
    throttled_at: Option<u64>,
}

impl Meter {
    pub(crate) fn new(limits: Limits) -> Meter {
        Meter {
            limits,
            windows: Windows::default(),
            backoff_until: 0,
            backoff_interval: Interval::Minute,
            banned_until: 0,
            ban_ms: bl::DEFAULT_BAN_MS,
            retry_after_s: None,
            counts: MeterCounts::default(),
            throttled_at: None,
        }
    }

    pub(crate) fn counts(&self) -> MeterCounts {
        self.counts
    }

    pub(crate) fn limits(&self) -> Limits {
        self.limits
    }

    pub(crate) fn usage(&mut self, now_ms: u64) -> Usage {
        self.windows.usage(now_ms)
    }

    /// Weighs one venue request at `now_ms`.
    pub(crate) fn admit(&mut self, now_ms: u64, method: &str, path: &str, query: &str) -> Verdict {
        self.counts.api_requests += 1;
        if now_ms < self.backoff_until && now_ms >= self.banned_until {
            let since = now_ms.saturating_sub(self.throttled_at.unwrap_or(0));
            if since < IN_FLIGHT_MS {
                self.counts.rate_limited += 1;
                return Verdict::Refuse {
                    status: 429,
                    error: bl::exceeded(self.backoff_interval, &self.limits),
                    retry_after_s: bl::retry_after_s(now_ms, self.backoff_until),
                    usage: self.windows.usage(now_ms),
                };
            }
            // Asked again within the Retry-After of a 429: banned.
            self.banned_until = now_ms + self.ban_ms;
            self.backoff_until = 0;
            self.throttled_at = None;
        }
        if now_ms < self.banned_until {
            self.counts.banned += 1;
            return Verdict::Refuse {
                status: 418,
                error: bl::banned(self.banned_until),
                retry_after_s: bl::retry_after_s(now_ms, self.banned_until),
                usage: self.windows.usage(now_ms),
            };
        }
        let weight = bl::weight(method, path, query);
        let order = bl::is_new_order(method, path);
        if let Some(interval) = self
            .windows
            .would_exceed(now_ms, &self.limits, weight, order)
        {
            let until = match self.retry_after_s {
                Some(s) => now_ms + s * 1000,
                None => interval.window_end(now_ms),
            };
            self.backoff_until = until;
            self.backoff_interval = interval;
            self.throttled_at = Some(now_ms);
            self.counts.rate_limited += 1;
            return Verdict::Refuse {
                status: 429,
                error: bl::exceeded(interval, &self.limits),
                retry_after_s: bl::retry_after_s(now_ms, until),
                usage: self.windows.usage(now_ms),
            };
        }
        self.windows.add(now_ms, weight, order);
        if let Some(at) = self.throttled_at.take() {
            self.counts.resumed_after_429_ms = Some(now_ms - at);
        }
        Verdict::Pass {
            usage: self.windows.usage(now_ms),
            order,
        }
    }

    pub(crate) fn apply(&mut self, now_ms: u64, f: &RateLimitFault) {
        let l = &mut self.limits;
        l.weight_per_minute = f.weight_limit.unwrap_or(l.weight_per_minute);
        l.orders_per_10s = f.orders_10s_limit.unwrap_or(l.orders_per_10s);
        l.orders_per_day = f.orders_1d_limit.unwrap_or(l.orders_per_day);
        let now = self.windows.usage(now_ms);
        self.windows.raise_to(
            now_ms,
            Usage {
                weight_1m: f.used_weight.unwrap_or(now.weight_1m),
                orders_10s: f.used_orders_10s.unwrap_or(now.orders_10s),
                orders_1d: f.used_orders_1d.unwrap_or(now.orders_1d),
            },
        );
        if let Some(s) = f.retry_after_s {
            self.retry_after_s = (s > 0).then_some(s);
        }
        if let Some(s) = f.ban_s {
            self.ban_ms = s.saturating_mul(1000).max(1);
        }
    }

    /// Bans the IP from `now_ms` for `ms` (the ban's configured length when `None`).
    pub(crate) fn ban(&mut self, now_ms: u64, ms: Option<u64>) {
        self.banned_until = now_ms + ms.unwrap_or(self.ban_ms);
    }

    /// Lifts a ban and a back-off (`clear`).
    pub(crate) fn clear(&mut self) {
        self.banned_until = 0;
        self.backoff_until = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 40 s into a minute, at the start of a 10 s window.
    const T: u64 = 1_700_000_080_000;

    fn meter() -> Meter {
        Meter::new(Limits {
            weight_per_minute: 60,
            orders_per_10s: 2,
            orders_per_day: 100,
        })
    }

    fn status(v: &Verdict) -> u16 {
        match v {
            Verdict::Pass { .. } => 200,
            Verdict::Refuse { status, .. } => *status,
        }
    }

    #[test]
    fn weighs_requests_and_answers_429_then_418_within_retry_after() {
        let mut m = meter();
        // A depth of 1000 levels weighs 50.
        let v = m.admit(T, "GET", "/api/v3/depth", "symbol=X&limit=1000");
        match v {
            Verdict::Pass { usage, order } => {
                assert_eq!(usage.weight_1m, 50);
                assert!(!order);
            }
            other => panic!("{other:?}"),
        }
        // 50 + 25 > 60: 429 until the minute ends.
        let v = m.admit(T + 1, "GET", "/api/v3/depth", "symbol=X&limit=500");
        match &v {
            Verdict::Refuse {
                status,
                error,
                retry_after_s,
                ..
            } => {
                assert_eq!(*status, 429);
                assert_eq!(error.code, bl::TOO_MUCH_WEIGHT);
                assert_eq!(*retry_after_s, 20, "to the end of the minute");
            }
            other => panic!("{other:?}"),
        }
        // In flight when the 429 was answered: another 429, to the same end.
        match m.admit(T + 1 + IN_FLIGHT_MS - 1, "GET", "/api/v3/ping", "") {
            Verdict::Refuse {
                status,
                retry_after_s,
                ..
            } => assert_eq!((status, retry_after_s), (429, 20)),
            other => panic!("{other:?}"),
        }
        // Again before Retry-After: banned for the ban's length.
        let v = m.admit(T + 2 + IN_FLIGHT_MS, "GET", "/api/v3/ping", "");
        match &v {
            Verdict::Refuse {
                status,
                retry_after_s,
                ..
            } => {
                assert_eq!(*status, 418);
                assert_eq!(*retry_after_s, 120);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(status(&m.admit(T + 60_000, "GET", "/api/v3/ping", "")), 418);
        assert_eq!(
            status(&m.admit(T + 120_002 + IN_FLIGHT_MS, "GET", "/api/v3/ping", "")),
            200
        );
        assert_eq!(
            m.counts(),
            MeterCounts {
                api_requests: 6,
                rate_limited: 2,
                banned: 2,
                resumed_after_429_ms: None,
            }
        );
    }

    #[test]
    fn waiting_out_retry_after_is_not_banned_and_orders_are_counted() {
        let mut m = meter();
        assert_eq!(status(&m.admit(T, "POST", "/api/v3/order", "")), 200);
        match m.admit(T, "POST", "/api/v3/order", "") {
            Verdict::Pass { usage, order } => {
                assert!(order);
                assert_eq!((usage.orders_10s, usage.orders_1d), (2, 2));
            }
            other => panic!("{other:?}"),
        }
        // A cancel is not an order.
        assert_eq!(status(&m.admit(T, "DELETE", "/api/v3/order", "")), 200);
        match m.admit(T, "POST", "/api/v3/order", "") {
            Verdict::Refuse {
                status,
                error,
                retry_after_s,
                ..
            } => {
                assert_eq!((status, error.code), (429, bl::TOO_MANY_ORDERS));
                assert_eq!(retry_after_s, 10);
            }
            other => panic!("{other:?}"),
        }
        // After Retry-After: a new window, served.
        assert_eq!(
            status(&m.admit(T + 10_000, "POST", "/api/v3/order", "")),
            200
        );
        assert_eq!(m.counts().resumed_after_429_ms, Some(10_000));
        assert_eq!(m.counts().banned, 0);
    }

    #[test]
    fn faults_squeeze_limits_add_usage_shorten_retry_after_and_ban() {
        let mut m = meter();
        m.apply(
            T,
            &RateLimitFault {
                weight_limit: Some(10),
                used_weight: Some(9),
                retry_after_s: Some(3),
                ban_s: Some(7),
                ..RateLimitFault::default()
            },
        );
        assert_eq!(m.limits().weight_per_minute, 10);
        assert_eq!(m.usage(T).weight_1m, 9);
        assert_eq!(status(&m.admit(T, "GET", "/api/v3/ping", "")), 200);
        match m.admit(T + 1, "GET", "/api/v3/ping", "") {
            Verdict::Refuse { retry_after_s, .. } => assert_eq!(retry_after_s, 3),
            other => panic!("{other:?}"),
        }
        match m.admit(T + 1 + IN_FLIGHT_MS, "GET", "/api/v3/ping", "") {
            Verdict::Refuse {
                status,
                retry_after_s,
                ..
            } => assert_eq!((status, retry_after_s), (418, 7)),
            other => panic!("{other:?}"),
        }
        m.clear();
        m.apply(
            T + 3,
            &RateLimitFault {
                weight_limit: Some(100),
                ..RateLimitFault::default()
            },
        );
        assert_eq!(status(&m.admit(T + 3, "GET", "/api/v3/ping", "")), 200);
        m.ban(T + 4, Some(2_000));
        assert_eq!(status(&m.admit(T + 5, "GET", "/api/v3/ping", "")), 418);
        assert_eq!(status(&m.admit(T + 2_004, "GET", "/api/v3/ping", "")), 200);
    }
}
