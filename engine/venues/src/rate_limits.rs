//! Rate limits, venue-neutral: the limits an exchange is configured with
//! (`exchanges.<name>.rate_limits`: request weight per minute, new orders per 10 s and per UTC
//! day), the fixed windows they are counted in, the usage an answer reports, and the venue's
//! rules ([`RateRules`]: the weight of a request, which requests are new orders, the headers
//! that report usage, what a throttled answer is about, how long a ban lasts when the venue
//! does not say). The runtime accounts every REST request through them (its `ratelimit` and
//! HTTP client) and names no venue; [`for_venue`] picks a venue's rules, the one place that
//! does. Binance's are in `binance::limits` (the sim serves them), OKX's in `okx::limits`.

use std::fmt;

use rt_manifest::model::Venue as VenueKind;

/// The exchange's limits (`exchanges.<name>.rate_limits`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub weight_per_minute: u32,
    pub orders_per_10s: u32,
    pub orders_per_day: u32,
}

impl Limits {
    pub fn from_manifest(r: &rt_manifest::model::RateLimits) -> Limits {
        Limits {
            weight_per_minute: r.request_weight_per_minute,
            orders_per_10s: r.orders_per_10s,
            orders_per_day: r.orders_per_day,
        }
    }
}

/// One of the limited intervals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interval {
    /// Request weight per minute.
    Minute,
    /// New orders per 10 seconds.
    TenSeconds,
    /// New orders per UTC day.
    Day,
}

impl Interval {
    pub const fn ms(self) -> u64 {
        match self {
            Interval::Minute => 60_000,
            Interval::TenSeconds => 10_000,
            Interval::Day => 86_400_000,
        }
    }

    /// When the window holding `now_ms` ends.
    pub const fn window_end(self, now_ms: u64) -> u64 {
        (now_ms / self.ms() + 1) * self.ms()
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Interval::Minute => "1 MINUTE",
            Interval::TenSeconds => "10 SECOND",
            Interval::Day => "1 DAY",
        }
    }
}

/// What was used in the current windows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub weight_1m: u32,
    pub orders_10s: u32,
    pub orders_1d: u32,
}

/// The usage in fixed windows: counters reset when their window changes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Windows {
    /// Window numbers (`now_ms / interval`) the counters belong to.
    minute: u64,
    ten_s: u64,
    day: u64,
    usage: Usage,
}

impl Windows {
    fn roll(&mut self, now_ms: u64) {
        let (m, t, d) = (
            now_ms / Interval::Minute.ms(),
            now_ms / Interval::TenSeconds.ms(),
            now_ms / Interval::Day.ms(),
        );
        if m != self.minute {
            self.minute = m;
            self.usage.weight_1m = 0;
        }
        if t != self.ten_s {
            self.ten_s = t;
            self.usage.orders_10s = 0;
        }
        if d != self.day {
            self.day = d;
            self.usage.orders_1d = 0;
        }
    }

    /// The usage of the windows holding `now_ms`.
    pub fn usage(&mut self, now_ms: u64) -> Usage {
        self.roll(now_ms);
        self.usage
    }

    /// Counts a request of `weight` (and a new order when `order`).
    pub fn add(&mut self, now_ms: u64, weight: u32, order: bool) {
        self.roll(now_ms);
        let u = &mut self.usage;
        u.weight_1m = u.weight_1m.saturating_add(weight);
        if order {
            u.orders_10s = u.orders_10s.saturating_add(1);
            u.orders_1d = u.orders_1d.saturating_add(1);
        }
    }

    /// Sets the counters to `usage` where it says more (what the venue reported, or another
    /// client of the same IP or account used).
    pub fn raise_to(&mut self, now_ms: u64, usage: Usage) {
        self.roll(now_ms);
        let u = &mut self.usage;
        u.weight_1m = u.weight_1m.max(usage.weight_1m);
        u.orders_10s = u.orders_10s.max(usage.orders_10s);
        u.orders_1d = u.orders_1d.max(usage.orders_1d);
    }

    /// The limit that a request of `weight` (a new order when `order`) would exceed now.
    pub fn would_exceed(
        &mut self,
        now_ms: u64,
        limits: &Limits,
        weight: u32,
        order: bool,
    ) -> Option<Interval> {
        let u = self.usage(now_ms);
        if u64::from(u.weight_1m) + u64::from(weight) > u64::from(limits.weight_per_minute) {
            Some(Interval::Minute)
        } else if order && u.orders_10s >= limits.orders_per_10s {
            Some(Interval::TenSeconds)
        } else if order && u.orders_1d >= limits.orders_per_day {
            Some(Interval::Day)
        } else {
            None
        }
    }
}

/// The rate-limit headers of a response.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Seen {
    pub weight_1m: Option<u32>,
    pub orders_10s: Option<u32>,
    pub orders_1d: Option<u32>,
    /// `Retry-After`, in seconds.
    pub retry_after_s: Option<u64>,
}

impl Seen {
    /// Reads the headers a venue names (`names`) through `get` (a header's value by lower-case
    /// name).
    pub fn parse<'a>(names: &UsageHeaders, get: impl Fn(&str) -> Option<&'a str>) -> Seen {
        let num = |name: &str| get(name).and_then(|v| v.trim().parse::<u64>().ok());
        let small = |name: Option<&str>| {
            name.and_then(num)
                .map(|v| u32::try_from(v).unwrap_or(u32::MAX))
        };
        Seen {
            weight_1m: small(names.weight_1m),
            orders_10s: small(names.orders_10s),
            orders_1d: small(names.orders_1d),
            retry_after_s: num(names.retry_after),
        }
    }

    /// The usage the headers report (0 where they say nothing).
    pub fn usage(&self) -> Usage {
        Usage {
            weight_1m: self.weight_1m.unwrap_or(0),
            orders_10s: self.orders_10s.unwrap_or(0),
            orders_1d: self.orders_1d.unwrap_or(0),
        }
    }
}

/// The headers an answer reports usage in (lower-case names; `None`: the venue sends none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UsageHeaders {
    pub weight_1m: Option<&'static str>,
    pub orders_10s: Option<&'static str>,
    pub orders_1d: Option<&'static str>,
    /// How long to wait, in seconds, on a throttled or banned answer.
    pub retry_after: &'static str,
}

/// A venue's rate-limit rules (see the module documentation).
pub trait RateRules: fmt::Debug + Send + Sync {
    /// The weight of a REST request (`path` without its query).
    fn weight(&self, method: &str, path: &str, query: &str) -> u32;
    /// The request places a new order (counts towards the order limits).
    fn is_new_order(&self, method: &str, path: &str) -> bool;
    /// The headers that report usage.
    fn headers(&self) -> &UsageHeaders;
    /// What a throttled answer (HTTP 429) to `method` `path` is about, from its body: how long
    /// to back off when the venue sends no `Retry-After` (from `now_ms`), and whether the limit
    /// is one of new orders (then only new orders wait: a cancel, which reduces risk, still
    /// goes).
    fn throttled(&self, method: &str, path: &str, body: &[u8], now_ms: u64) -> Throttle;
    /// An IP ban's length when the venue does not say, ms.
    fn default_ban_ms(&self) -> u64;
}

/// What a throttled answer is about ([`RateRules::throttled`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Throttle {
    /// The back-off's end when the venue sends no `Retry-After`, wall-clock ms.
    pub until_ms: u64,
    /// The limit is one of new orders: other requests (cancels, queries) are not held back.
    pub orders_only: bool,
}

/// Rules for a venue whose limits the engine does not model: every request weighs 1, none
/// counts as an order, no usage header, `Retry-After` honoured, a throttled answer is about the
/// minute, a ban without `Retry-After` lasts two minutes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unmodelled;

const UNMODELLED_HEADERS: UsageHeaders = UsageHeaders {
    weight_1m: None,
    orders_10s: None,
    orders_1d: None,
    retry_after: "retry-after",
};

impl RateRules for Unmodelled {
    fn weight(&self, _method: &str, _path: &str, _query: &str) -> u32 {
        1
    }

    fn is_new_order(&self, _method: &str, _path: &str) -> bool {
        false
    }

    fn headers(&self) -> &UsageHeaders {
        &UNMODELLED_HEADERS
    }

    fn throttled(&self, _method: &str, _path: &str, _body: &[u8], now_ms: u64) -> Throttle {
        Throttle {
            until_ms: Interval::Minute.window_end(now_ms),
            orders_only: false,
        }
    }

    fn default_ban_ms(&self) -> u64 {
        120_000
    }
}

/// The one instance of [`Unmodelled`].
pub static UNMODELLED: Unmodelled = Unmodelled;

/// The rate-limit rules of `venue`.
pub fn for_venue(venue: VenueKind) -> &'static dyn RateRules {
    match venue {
        VenueKind::BinanceSpot | VenueKind::BinanceUsdm | VenueKind::Sim => {
            &crate::binance::limits::RULES
        }
        VenueKind::Okx => &crate::okx::limits::RULES,
        VenueKind::Kraken => &UNMODELLED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_venue_has_its_rules() {
        let binance = for_venue(VenueKind::Sim);
        assert_eq!(binance.weight("GET", "/api/v3/depth", "limit=1000"), 50);
        assert!(binance.is_new_order("POST", "/api/v3/order"));
        assert_eq!(binance.headers().weight_1m, Some("x-mbx-used-weight-1m"));
        // 30 s into a minute, 5 s into a 10 s window.
        let t = 1_700_000_075_000;
        let orders = br#"{"code":-1015,"msg":"Too many new orders"}"#;
        let throttled = binance.throttled("POST", "/api/v3/order", orders, t);
        assert_eq!(
            throttled,
            Throttle {
                until_ms: Interval::TenSeconds.window_end(t),
                orders_only: true
            }
        );
        let weight = br#"{"code":-1003,"msg":"Too much request weight used"}"#;
        let throttled = binance.throttled("GET", "/api/v3/depth", weight, t);
        assert_eq!(
            throttled,
            Throttle {
                until_ms: Interval::Minute.window_end(t),
                orders_only: false
            }
        );
        let garbled = binance.throttled("GET", "/api/v3/depth", b"not json", t);
        assert_eq!(garbled.until_ms, Interval::Minute.window_end(t));
        let okx = for_venue(VenueKind::Okx);
        assert_eq!(okx.weight("GET", "/api/v3/depth", "limit=1000"), 1);
        assert!(!okx.is_new_order("POST", "/api/v3/order"));
        assert!(okx.is_new_order("POST", "/api/v5/trade/order"));
        let kraken = for_venue(VenueKind::Kraken);
        assert_eq!(
            kraken
                .throttled("GET", "/0/public/Depth", orders, t)
                .until_ms,
            Interval::Minute.window_end(t)
        );
        let headers = [("x-mbx-used-weight-1m", "57"), ("retry-after", "3")];
        let get = |n: &str| headers.iter().find(|(k, _)| *k == n).map(|(_, v)| *v);
        assert_eq!(Seen::parse(okx.headers(), get).weight_1m, None);
        assert_eq!(Seen::parse(okx.headers(), get).retry_after_s, Some(3));
        assert_eq!(Seen::parse(binance.headers(), get).weight_1m, Some(57));
    }
}
