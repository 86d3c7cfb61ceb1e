//! What the engine's threads share: stop and resync flags, the channel to the housekeeping
//! thread, and the names behind the engine's numeric ids.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, OnceLock};

use rt_core::{Side, TraderEvent};

use crate::latency::Stages;

/// Flags the threads poll (Relaxed loads on the hot path: each is a hint, acted on once seen).
#[derive(Debug)]
pub struct Flags {
    /// SIGTERM/SIGINT: wind down (an `Arc` so the signal handler can set it).
    pub stop: Arc<AtomicBool>,
    /// The strategy thread has cancelled what it could and exited: the others may stop.
    pub trader_done: AtomicBool,
    /// The gateway reconciled open orders with every venue and listens to its user streams.
    pub gateway_ready: AtomicBool,
    /// Per exchange: the strategy thread asks the feed for a fresh snapshot.
    pub resync: Vec<AtomicBool>,
    /// Per exchange: times one of its books left sync (a sequence gap or an invalid diff, as
    /// `BookSync` judged it), counted by the strategy thread for the feed's heartbeat.
    pub gaps: Vec<std::sync::atomic::AtomicU64>,
    /// A thread could not go on (a venue refused our credentials, a socket could not open):
    /// the engine stops and exits non-zero.
    pub fatal: AtomicBool,
    /// The strategy thread, when it parks between messages (not on an isolated core): the
    /// feeds and the gateway unpark it after writing to its rings.
    pub strategy: OnceLock<std::thread::Thread>,
    /// The strategy thread busy-polls: nobody needs to wake it.
    pub strategy_spins: AtomicBool,
    /// Wakes the fused layout's strategy task (a task of the one hot thread's runtime, not a
    /// thread of its own) when fills or commands wait for it.
    pub strategy_wake: tokio::sync::Notify,
    /// Wakes the gateway's runtime when orders were written (it awaits this on a shared core).
    pub gateway_wake: tokio::sync::Notify,
    /// The gateway busy-polls: nobody needs to wake it.
    pub gateway_spins: AtomicBool,
    /// The strategy thread's positions as it last published them (a few times a second), by
    /// (exchange, symbol), signed 10^-8: what the position watch compares with a derivatives
    /// venue's positions. `None` until the strategy thread first published.
    pub positions: Mutex<Option<Positions>>,
    /// Private streams (user data streams) lost and not caught up yet, and how many times one
    /// was lost or came back: the position watch counts a check only when no stream was down
    /// or changed while it was made (`private_streams_live`).
    pub private_down: AtomicU32,
    pub private_changes: AtomicU64,
}

/// Signed positions (10^-8) by (exchange, symbol).
pub type Positions = BTreeMap<(String, String), i64>;

impl Flags {
    pub fn new(exchanges: usize) -> Flags {
        Flags {
            stop: Arc::new(AtomicBool::new(false)),
            trader_done: AtomicBool::new(false),
            gateway_ready: AtomicBool::new(false),
            resync: (0..exchanges).map(|_| AtomicBool::new(false)).collect(),
            gaps: (0..exchanges)
                .map(|_| std::sync::atomic::AtomicU64::new(0))
                .collect(),
            fatal: AtomicBool::new(false),
            strategy: OnceLock::new(),
            strategy_spins: AtomicBool::new(false),
            strategy_wake: tokio::sync::Notify::new(),
            gateway_wake: tokio::sync::Notify::new(),
            gateway_spins: AtomicBool::new(false),
            positions: Mutex::new(None),
            private_down: AtomicU32::new(0),
            private_changes: AtomicU64::new(0),
        }
    }

    /// The gateway lost a venue's private stream: fills may land that it has not seen.
    pub fn private_stream_lost(&self) {
        self.private_down.fetch_add(1, Ordering::SeqCst);
        self.private_changes.fetch_add(1, Ordering::SeqCst);
    }

    /// The gateway has the stream back and caught up with what happened meanwhile.
    pub fn private_stream_back(&self) {
        self.private_changes.fetch_add(1, Ordering::SeqCst);
        self.private_down.fetch_sub(1, Ordering::SeqCst);
    }

    /// `None` while a private stream is down or catching up; else how many times one was lost
    /// or came back so far (equal before and after a check: none was down during it).
    pub fn private_streams_live(&self) -> Option<u64> {
        let changes = self.private_changes.load(Ordering::SeqCst);
        (self.private_down.load(Ordering::SeqCst) == 0).then_some(changes)
    }

    /// The strategy thread publishes its positions (see `positions`).
    pub fn publish_positions(&self, positions: Positions) {
        let mut slot = self.positions.lock().unwrap_or_else(|p| p.into_inner());
        *slot = Some(positions);
    }

    /// The positions last published, if any.
    pub fn published_positions(&self) -> Option<Positions> {
        self.positions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// After writing to the strategy thread's rings: wake it if it may be parked (an atomic
    /// swap when it is awake, a futex wake when it sleeps).
    #[inline]
    pub fn wake_strategy(&self) {
        if !self.strategy_spins.load(Ordering::Relaxed) {
            match self.strategy.get() {
                Some(t) => t.unpark(),
                // The fused layout's strategy task (or a strategy thread not started yet).
                None => self.strategy_wake.notify_one(),
            }
        }
    }

    /// After writing to the orders ring: wake the gateway if it may be waiting.
    #[inline]
    pub fn wake_gateway(&self) {
        if !self.gateway_spins.load(Ordering::Relaxed) {
            self.gateway_wake.notify_one();
        }
    }

    /// Stops the engine because of an error.
    pub fn fail(&self) {
        self.fatal.store(true, Ordering::Relaxed);
        self.stop.store(true, Ordering::Relaxed);
    }

    #[inline]
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// A feed's state, as the bus reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FeedStatus {
    #[default]
    Connecting,
    Syncing,
    Live,
    Stale,
    Resyncing,
}

/// A feed's running totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FeedInfo {
    pub exchange: u32,
    pub status: FeedStatus,
    pub reconnects: u64,
    pub gaps: u64,
    pub malformed: u64,
    pub ring_overflows: u64,
    pub snapshots: u64,
    pub messages: u64,
    /// Checksummed books: checksums compared with the rebuilt book, and how many matched.
    pub checksums_checked: u64,
    pub checksums_matched: u64,
    /// Checksummed books: gaps in the venue's sequence ids.
    pub sequence_gaps: u64,
    /// Books that broke (a checksum mismatch, a sequence gap, a stale book).
    pub book_breaks: u64,
    /// Books unsubscribed and subscribed again to repair them.
    pub resubscribes: u64,
    /// Books waiting for their snapshot now (invalid: no strategy acts on them).
    pub books_invalid: u64,
}

/// A position as the strategy thread last saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PositionView {
    pub instrument: u32,
    pub qty: i64,
    pub avg_price: i64,
    pub realised: i64,
    pub unrealised: i64,
    pub fees: i64,
    /// How old the mark is (ms of the engine's clock since the last trade or book mid the
    /// position is valued at); -1 without a mark.
    pub mark_age_ms: i64,
}

/// The strategy thread's view, sent a few times a second (status replies, heartbeats).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TraderView {
    pub risk_state: Option<rt_core::RiskState>,
    pub paused: bool,
    pub open_orders: u32,
    pub equity: i64,
    pub realised: i64,
    pub fees: i64,
    pub positions: Vec<PositionView>,
    /// (name, value) running totals.
    pub counters: Vec<(&'static str, u64)>,
    /// Orders refused, by reason code (risk, engine or venue).
    pub rejections: Vec<(&'static str, u64)>,
    /// The loss limits' anchors (journaled, for a restart).
    pub anchors: Option<rt_core::RiskAnchors>,
}

/// Messages to the housekeeping thread.
#[derive(Debug)]
pub enum Hk {
    Trader(TraderEvent),
    View(Box<TraderView>),
    Feed(FeedInfo),
    Latency(Box<Stages>),
    /// Gateway totals (name, value).
    Gateway(Vec<(&'static str, u64)>),
    /// A line for the engine's log (stderr), from any thread.
    Log(String),
    /// The reconciliation thread's totals (name, value).
    Reconcile(Vec<(&'static str, u64)>),
    /// What the next risk change to HALTED found (its detail, see `bus.proto` RiskChange).
    RiskDetail(String),
}

pub type HkSender = Sender<Hk>;

/// The names behind numeric ids, for events and the journal.
#[derive(Debug, Clone, Default)]
pub struct Names {
    pub exchanges: Vec<String>,
    /// Per instrument id: (exchange index, symbol).
    pub instruments: Vec<(u32, String)>,
    pub strategies: Vec<String>,
}

impl Names {
    pub fn exchange(&self, x: u32) -> &str {
        self.exchanges.get(x as usize).map_or("?", String::as_str)
    }
    pub fn instrument(&self, i: u32) -> (&str, &str) {
        match self.instruments.get(i as usize) {
            Some((x, s)) => (self.exchange(*x), s.as_str()),
            None => ("?", "?"),
        }
    }
    pub fn strategy(&self, s: u32) -> &str {
        self.strategies.get(s as usize).map_or("?", String::as_str)
    }
}

pub const fn side_str(side: Side) -> &'static str {
    match side {
        Side::Buy => "buy",
        Side::Sell => "sell",
    }
}

/// A decimal string of a fixed-point value (10^-8 units).
pub fn dec(units: i64) -> String {
    rt_core::Qty(units).to_string()
}
