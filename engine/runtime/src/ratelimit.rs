//! Rate-limit accounting for one venue: the request weight its IP used this minute and the new
//! orders its account placed in the last 10 s and today, shared by every thread that talks to
//! the venue's REST API (the gateway's connections, the feed's snapshot fetches).
//!
//! Every request through a limited [`crate::http::Client`] is weighed first
//! ([`VenueLimits::acquire`], by the venue's rules: `rt_venues::rate_limits::for_venue`); one that
//! would take the usage past the exchange's `rate_limits` is refused locally, before the venue
//! would answer 429. Every answer's usage headers (the venue's rules name them)
//! raise the counts to what the venue counted ([`VenueLimits::observe`]: other clients of the
//! same IP count too). A 429 starts a back-off of exactly `Retry-After` seconds (when the venue
//! gives none, as long as its rules say: Binance to the end of the limit's window, OKX 2 s): no
//! request goes out until it is over, except when the venue's rules say the 429 is about new
//! orders (Binance's `-1015`, OKX's 429 on placing an order): then only new orders wait, and
//! cancels and queries still go (a cancel reduces risk). A 418
//! (an IP ban) refuses every request until the ban's `Retry-After` is over; the gateway then
//! also halts the risk engine (cause `venue_ban`), which only an operator's `resume` lifts: so
//! order entry starts again once the ban is over **and** an operator resumed, whichever comes
//! last.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use rt_venues::rate_limits::{Interval, Limits, RateRules, Seen, Usage, Windows};

/// Wall-clock milliseconds (the venue's windows are wall-clock intervals).
pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Why a request was not sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("it would exceed the venue's limit per {}", .0.as_str())]
    Limit(Interval),
    #[error("backing off after HTTP 429 until {until_ms}")]
    Backoff { until_ms: u64 },
    #[error("the venue banned this IP (HTTP 418) until {until_ms}")]
    Banned { until_ms: u64 },
}

/// What an answer changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Within the limits.
    Fine,
    /// HTTP 429: no request before `until_ms`.
    Throttled { until_ms: u64 },
    /// HTTP 418: banned until `until_ms`; the first answer of a ban.
    Banned { until_ms: u64 },
    /// HTTP 418 again during a ban already known.
    StillBanned { until_ms: u64 },
}

/// Totals, for the heartbeat.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Requests refused here (a limit, a back-off or a ban).
    pub refused: u64,
    /// HTTP 429 answers.
    pub throttled: u64,
    /// HTTP 418 answers.
    pub banned: u64,
}

/// The usage against the limits now, for the heartbeat (rate-limit pressure).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pressure {
    pub usage: Usage,
    pub limits: Limits,
    pub counts: Counts,
    /// Milliseconds left of a 429's back-off (0: none).
    pub backoff_ms: u64,
    /// Milliseconds left of an IP ban (0: none).
    pub banned_ms: u64,
}

#[derive(Debug, Default)]
struct Inner {
    windows: Windows,
    /// A 429's back-off for every request...
    backoff_until: u64,
    /// ...and one for new orders only (a limit of new orders).
    order_backoff_until: u64,
    banned_until: u64,
    counts: Counts,
}

/// A venue banned this engine's IP and the strategy thread has not halted for it yet (one
/// engine process, one strategy thread: a process-wide flag).
static BAN_RAISED: AtomicBool = AtomicBool::new(false);

/// Whether a venue began a ban since the last call: the strategy thread halts once for it.
pub fn take_ban() -> bool {
    BAN_RAISED.swap(false, Ordering::AcqRel)
}

/// One venue's limits and usage, shared (`Arc`) by its gateway connections and its feed.
#[derive(Debug)]
pub struct VenueLimits {
    limits: Limits,
    /// The venue's weights, usage headers and answers.
    rules: &'static dyn RateRules,
    inner: Mutex<Inner>,
}

impl VenueLimits {
    /// The limits of an exchange's manifest `rate_limits`, counted by `venue`'s rules.
    pub fn from_manifest(
        limits: &rt_manifest::model::RateLimits,
        venue: rt_manifest::model::Venue,
    ) -> VenueLimits {
        VenueLimits::new(
            Limits::from_manifest(limits),
            rt_venues::rate_limits::for_venue(venue),
        )
    }

    pub fn new(limits: Limits, rules: &'static dyn RateRules) -> VenueLimits {
        VenueLimits {
            limits,
            rules,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The venue's rules (a request's weight, the usage headers).
    pub fn rules(&self) -> &'static dyn RateRules {
        self.rules
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Why a request of `weight` (a new order when `order`) must not go at `now_ms`, if it
    /// must not; nothing is counted.
    pub fn peek(&self, now_ms: u64, weight: u32, order: bool) -> Result<(), Refusal> {
        let mut s = self.inner();
        match self.verdict(&mut s, now_ms, weight, order) {
            Some(r) => Err(r),
            None => Ok(()),
        }
    }

    /// [`VenueLimits::peek`], counting a refusal.
    pub fn check(&self, now_ms: u64, weight: u32, order: bool) -> Result<(), Refusal> {
        let mut s = self.inner();
        match self.verdict(&mut s, now_ms, weight, order) {
            Some(r) => {
                s.counts.refused += 1;
                Err(r)
            }
            None => Ok(()),
        }
    }

    fn verdict(&self, s: &mut Inner, now_ms: u64, weight: u32, order: bool) -> Option<Refusal> {
        if now_ms < s.banned_until {
            Some(Refusal::Banned {
                until_ms: s.banned_until,
            })
        } else if now_ms < s.backoff_until {
            Some(Refusal::Backoff {
                until_ms: s.backoff_until,
            })
        } else if order && now_ms < s.order_backoff_until {
            Some(Refusal::Backoff {
                until_ms: s.order_backoff_until,
            })
        } else {
            s.windows
                .would_exceed(now_ms, &self.limits, weight, order)
                .map(Refusal::Limit)
        }
    }

    /// Counts a request of `weight` (a new order when `order`) about to be sent at `now_ms`, or
    /// says why it must not be (counting the refusal).
    pub fn acquire(&self, now_ms: u64, weight: u32, order: bool) -> Result<(), Refusal> {
        let mut s = self.inner();
        match self.verdict(&mut s, now_ms, weight, order) {
            Some(r) => {
                s.counts.refused += 1;
                Err(r)
            }
            None => {
                s.windows.add(now_ms, weight, order);
                Ok(())
            }
        }
    }

    /// Takes in the answer to `method` `path`: its usage headers, and a 429's or 418's
    /// `Retry-After`. `body` is the answer's body (which limit a 429 is about, and how long it
    /// lasts without `Retry-After`, as the venue's rules read it).
    pub fn observe(
        &self,
        now_ms: u64,
        (method, path): (&str, &str),
        status: u16,
        seen: &Seen,
        body: &[u8],
    ) -> Answer {
        let mut s = self.inner();
        s.windows.raise_to(now_ms, seen.usage());
        let told = seen.retry_after_s.map(|r| now_ms + r.saturating_mul(1000));
        match status {
            429 => {
                let throttle = self.rules.throttled(method, path, body, now_ms);
                let until = told.unwrap_or(throttle.until_ms);
                s.counts.throttled += 1;
                if throttle.orders_only {
                    s.order_backoff_until = s.order_backoff_until.max(until);
                } else {
                    s.backoff_until = s.backoff_until.max(until);
                }
                Answer::Throttled { until_ms: until }
            }
            418 => {
                let until = told.unwrap_or(now_ms + self.rules.default_ban_ms());
                s.counts.banned += 1;
                let known = now_ms < s.banned_until;
                s.banned_until = s.banned_until.max(until);
                if known {
                    Answer::StillBanned { until_ms: until }
                } else {
                    BAN_RAISED.store(true, Ordering::Release);
                    Answer::Banned { until_ms: until }
                }
            }
            _ => Answer::Fine,
        }
    }

    /// Milliseconds until a request that is no new order may go (a back-off or a ban; 0: now).
    pub fn wait_ms(&self, now_ms: u64) -> u64 {
        let s = self.inner();
        s.backoff_until.max(s.banned_until).saturating_sub(now_ms)
    }

    pub fn pressure(&self, now_ms: u64) -> Pressure {
        let mut s = self.inner();
        Pressure {
            usage: s.windows.usage(now_ms),
            limits: self.limits,
            counts: s.counts,
            backoff_ms: s
                .backoff_until
                .max(s.order_backoff_until)
                .saturating_sub(now_ms),
            banned_ms: s.banned_until.saturating_sub(now_ms),
        }
    }
}

/// The heartbeat's counters of one venue's pressure: `rl.<exchange>.<figure>` names, made once
/// per venue (they live as long as the engine).
#[derive(Debug, Clone, Copy)]
pub struct PressureNames([&'static str; 11]);

impl PressureNames {
    pub fn new(exchange: &str) -> PressureNames {
        let name = |what: &str| -> &'static str {
            Box::leak(format!("rl.{exchange}.{what}").into_boxed_str())
        };
        PressureNames([
            name("weight_1m"),
            name("weight_1m_limit"),
            name("orders_10s"),
            name("orders_10s_limit"),
            name("orders_1d"),
            name("orders_1d_limit"),
            name("refused"),
            name("throttled_429"),
            name("banned_418"),
            name("backoff_ms"),
            name("banned_ms"),
        ])
    }

    /// (name, value) of each figure.
    pub fn named(&self, p: &Pressure) -> impl Iterator<Item = (&'static str, u64)> {
        let values = [
            u64::from(p.usage.weight_1m),
            u64::from(p.limits.weight_per_minute),
            u64::from(p.usage.orders_10s),
            u64::from(p.limits.orders_per_10s),
            u64::from(p.usage.orders_1d),
            u64::from(p.limits.orders_per_day),
            p.counts.refused,
            p.counts.throttled,
            p.counts.banned,
            p.backoff_ms,
            p.banned_ms,
        ];
        self.0.into_iter().zip(values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 30 s into a minute, at the start of a 10 s window.
    const T: u64 = 1_700_000_070_000;

    /// A Binance-shaped venue's (the sim's) limits.
    fn limits() -> VenueLimits {
        let limits = Limits {
            weight_per_minute: 100,
            orders_per_10s: 2,
            orders_per_day: 1000,
        };
        VenueLimits::new(
            limits,
            rt_venues::rate_limits::for_venue(rt_manifest::model::Venue::Sim),
        )
    }

    const GET: (&str, &str) = ("GET", "/api/v3/depth");
    const ORDER: (&str, &str) = ("POST", "/api/v3/order");
    const TOO_MUCH_WEIGHT: &[u8] = br#"{"code":-1003,"msg":"Too much request weight used"}"#;
    const TOO_MANY_ORDERS: &[u8] = br#"{"code":-1015,"msg":"Too many new orders"}"#;

    fn seen(weight: u32, retry_after_s: Option<u64>) -> Seen {
        Seen {
            weight_1m: Some(weight),
            retry_after_s,
            ..Seen::default()
        }
    }

    #[test]
    fn refuses_locally_before_the_venue_would() {
        let l = limits();
        assert_eq!(l.acquire(T, 50, false), Ok(()));
        // The venue says more was used (another client of the IP): that counts.
        assert_eq!(l.observe(T, GET, 200, &seen(95, None), b""), Answer::Fine);
        assert_eq!(l.acquire(T, 5, false), Ok(()));
        assert_eq!(l.peek(T, 1, false), Err(Refusal::Limit(Interval::Minute)));
        assert_eq!(l.pressure(T).counts.refused, 0, "a peek counts nothing");
        assert_eq!(l.check(T, 1, false), Err(Refusal::Limit(Interval::Minute)));
        assert_eq!(l.pressure(T).counts.refused, 1);
        assert_eq!(l.acquire(T, 0, false), Ok(()));
        // Orders: two per 10 s.
        let l = limits();
        assert_eq!(l.acquire(T, 1, true), Ok(()));
        assert_eq!(l.acquire(T, 1, true), Ok(()));
        assert_eq!(
            l.acquire(T, 1, true),
            Err(Refusal::Limit(Interval::TenSeconds))
        );
        assert_eq!(l.acquire(T, 1, false), Ok(()), "a cancel is no order");
        assert_eq!(l.acquire(T + 10_000, 1, true), Ok(()), "a new window");
        let p = l.pressure(T + 10_000);
        assert_eq!((p.usage.orders_10s, p.usage.orders_1d), (1, 3));
        assert_eq!(p.counts.refused, 1);
    }

    #[test]
    fn a_429_backs_off_exactly_retry_after() {
        let l = limits();
        let a = l.observe(T, GET, 429, &seen(100, Some(3)), TOO_MUCH_WEIGHT);
        assert_eq!(a, Answer::Throttled { until_ms: T + 3000 });
        assert_eq!(
            l.acquire(T + 2999, 0, false),
            Err(Refusal::Backoff { until_ms: T + 3000 })
        );
        assert_eq!(l.wait_ms(T + 1000), 2000);
        // Over at Retry-After (the weight is still counted: a request of weight 0 passes).
        assert_eq!(l.acquire(T + 3000, 0, false), Ok(()));
        // No Retry-After: to the end of the limit's window.
        let l = limits();
        let a = l.observe(T, ORDER, 429, &Seen::default(), TOO_MANY_ORDERS);
        assert_eq!(
            a,
            Answer::Throttled {
                until_ms: T + 10_000
            }
        );
        // Too many new orders holds back new orders only: a cancel still goes.
        assert_eq!(
            l.acquire(T + 1, 1, true),
            Err(Refusal::Backoff {
                until_ms: T + 10_000
            })
        );
        assert_eq!(l.acquire(T + 1, 1, false), Ok(()));
        assert_eq!(l.wait_ms(T + 1), 0);
        assert_eq!(l.pressure(T + 1).backoff_ms, 9_999);
        let l = limits();
        let a = l.observe(T, GET, 429, &Seen::default(), TOO_MUCH_WEIGHT);
        assert_eq!(
            a,
            Answer::Throttled {
                until_ms: T + 30_000
            }
        );
    }

    #[test]
    fn a_418_bans_until_retry_after_and_is_raised_once() {
        let l = limits();
        let a = l.observe(T, GET, 418, &seen(0, Some(60)), TOO_MUCH_WEIGHT);
        assert_eq!(
            a,
            Answer::Banned {
                until_ms: T + 60_000
            }
        );
        assert_eq!(
            l.observe(T + 1, GET, 418, &seen(0, Some(60)), b""),
            Answer::StillBanned {
                until_ms: T + 60_001
            }
        );
        // Raised once for the strategy thread (process-wide: no other test bans).
        assert!(take_ban());
        assert!(!take_ban());
        assert_eq!(
            l.acquire(T + 59_000, 1, true),
            Err(Refusal::Banned {
                until_ms: T + 60_001
            })
        );
        assert_eq!(l.acquire(T + 60_001, 1, true), Ok(()));
        let p = l.pressure(T);
        assert_eq!((p.counts.banned, p.banned_ms), (2, 60_001));
        let names = PressureNames::new("x");
        let named: Vec<_> = names.named(&p).collect();
        assert!(named.contains(&("rl.x.banned_418", 2)));
        assert!(named.contains(&("rl.x.weight_1m_limit", 100)));
    }

    /// OKX: the orders counted by the exchange's limits, and a 429 without `Retry-After` (OKX
    /// sends none) waited out for OKX's 2 s window, not to the end of the minute; one on
    /// placing an order holds back new orders only.
    #[test]
    fn okx_counts_orders_and_backs_off_two_seconds() {
        use rt_venues::okx::execution::{CANCEL_PATH, ORDER_PATH};
        let l = VenueLimits::new(
            Limits {
                weight_per_minute: 1200,
                orders_per_10s: 2,
                orders_per_day: 100,
            },
            rt_venues::rate_limits::for_venue(rt_manifest::model::Venue::Okx),
        );
        let rules = l.rules();
        let order = rules.is_new_order("POST", ORDER_PATH);
        let cancel = rules.is_new_order("POST", CANCEL_PATH);
        assert!(order && !cancel);
        assert_eq!(l.acquire(T, 1, order), Ok(()));
        assert_eq!(l.acquire(T, 1, order), Ok(()));
        assert_eq!(
            l.acquire(T, 1, order),
            Err(Refusal::Limit(Interval::TenSeconds))
        );
        assert_eq!(l.acquire(T, 1, cancel), Ok(()));
        assert_eq!(l.pressure(T).usage.orders_1d, 2);
        let too_many = br#"{"code":"50011","msg":"Too Many Requests","data":[]}"#;
        let placing = ("POST", ORDER_PATH);
        let l = VenueLimits::new(l.limits, l.rules);
        let a = l.observe(T, placing, 429, &Seen::default(), too_many);
        assert_eq!(a, Answer::Throttled { until_ms: T + 2000 });
        assert_eq!(
            l.acquire(T + 1999, 1, true),
            Err(Refusal::Backoff { until_ms: T + 2000 })
        );
        assert_eq!(l.acquire(T + 1999, 1, false), Ok(()), "a cancel goes");
        assert_eq!(l.acquire(T + 2000, 1, true), Ok(()));
        // A 429 on any other request holds every request back, 2 s too.
        let a = l.observe(
            T + 3000,
            ("POST", CANCEL_PATH),
            429,
            &Seen::default(),
            too_many,
        );
        assert_eq!(a, Answer::Throttled { until_ms: T + 5000 });
        assert_eq!(
            l.acquire(T + 4000, 1, false),
            Err(Refusal::Backoff { until_ms: T + 5000 })
        );
        assert_eq!(l.wait_ms(T + 4000), 1000);
    }
}
