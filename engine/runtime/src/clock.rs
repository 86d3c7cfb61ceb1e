//! The engine's one clock: nanoseconds since the Unix epoch as of process start, advanced by
//! the monotonic clock (`Instant`, a vDSO call: tens of ns). It never goes backwards (NTP steps
//! do not move it) and it is anchored to wall time, so the risk engine's trading day is the
//! UTC day. Every thread reads the same clock, so stamps taken on one thread and compared on
//! another (tick-to-order) are consistent.

use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rt_core::Nanos;

struct Epoch {
    instant: Instant,
    wall_ns: Nanos,
}

fn epoch() -> &'static Epoch {
    static EPOCH: OnceLock<Epoch> = OnceLock::new();
    EPOCH.get_or_init(|| Epoch {
        instant: Instant::now(),
        wall_ns: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| Nanos::try_from(d.as_nanos()).unwrap_or(Nanos::MAX)),
    })
}

/// Now, in ns (see the module documentation).
#[inline]
pub fn now_ns() -> Nanos {
    let e = epoch();
    let elapsed = Nanos::try_from(e.instant.elapsed().as_nanos()).unwrap_or(Nanos::MAX);
    e.wall_ns.saturating_add(elapsed)
}

/// Milliseconds since the process started.
pub fn uptime_ms() -> u64 {
    u64::try_from(epoch().instant.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Fixes the epoch (call first thing in `main`).
pub fn init() {
    let _ = epoch();
}
