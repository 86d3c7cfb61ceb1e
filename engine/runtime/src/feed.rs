//! A feed thread: one exchange's market data, WebSocket -> decoder -> the market-data ring.
//!
//! The feed drives any venue through the market-data interface (`rt_venues::market::MarketData`,
//! chosen from the manifest by `rt_venues::market::for_exchange`): it connects to the venue's
//! stream URL, sends its subscriptions, hands every frame to its decoder and writes the core
//! events it gives into its ring for the strategy thread, which owns the books (`rt_core::sync`,
//! the one place the id sequence is checked). It names no venue; what differs between venues is
//! the interface's, above all the book's sync rule:
//!
//! - `RestSnapshot` (update ids bridged from a REST snapshot): the feed fetches a snapshot on
//!   connect and whenever the sequence breaks: when the sink asks (`Sink::take_resync`: for the
//!   engine, the strategy thread's book left sync, a gap, a crossed book or a negative size, or
//!   could not bridge the last snapshot), after a full ring (the ring counts the loss and shows
//!   it to the reader as a gap), and on a reconnect. Snapshot requests count against the
//!   exchange's rate limits (`ratelimit`, shared with the gateway): one the limits refuse is not
//!   sent, and a failed one is retried after the jittered backoff or the venue's `Retry-After`,
//!   whichever is later.
//! - `Resubscribe` (the venue's own snapshot on subscription, its checksum verified after every
//!   message): on a checksum mismatch or a sequence gap the decoder hands the core a gap at once
//!   (the core drops that instrument's book, so no strategy quotes or sends an order on it), and
//!   the feed unsubscribes and subscribes that instrument's book again; the book is valid again
//!   with the venue's next snapshot. A book with no message for [`BOOK_STALE_FACTOR`] times
//!   `feed_stale_ms`, a resubscription unanswered for [`RESUBSCRIBE_RETRY`], a sink's resync
//!   request and a lost event are repaired the same way. Each break and resubscription is
//!   counted (`FeedInfo`, the heartbeat's counters) and the feed shows `Resyncing` until every
//!   book is valid again.
//!
//! When the stream breaks or stalls (nothing for `feed_stale_ms`), the feed writes a
//! feed-down marker (the strategy thread drops the exchange's books and cancels their
//! orders) and reconnects with capped exponential backoff and jitter. A frame that does not
//! decode is counted and skipped.
//!
//! The connection logic ([`Feed`]) is generic over a [`Sink`], where its output goes: the
//! engine's market-data ring ([`RingSink`], [`run`]) or a recorder writing every raw frame and
//! snapshot body to files (`record.rs`, [`run_with`]). Monomorphised, so the engine's path pays
//! nothing for the recorder's hooks. In the fused layout (`host.threads.layout: fused`) the
//! feed is a task of the one hot thread ([`serve_fused`]) and its sink turns the strategy loop
//! inline after every event it writes.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hyper::Method;
use rt_core::{MarketEvent, Nanos, SymbolId};
use rt_manifest::model::{Exchange, Market, Venue};
use rt_ring::Producer;
use rt_venues::market::{self, BookNews, MarketData, SyncRule};
use tokio_tungstenite::tungstenite::Message;

use crate::clock::now_ns;
use crate::flight::Tap;
use crate::http::{Base, Client};
use crate::latency::{Stage, Stages};
use crate::shared::{FeedInfo, FeedStatus, Flags, Hk, HkSender};
use crate::trader::StrategyLoop;
use crate::wire::{self, WriteOutcome};

/// What a feed needs to know.
#[derive(Debug, Clone)]
pub struct FeedConfig {
    pub exchange: u32,
    pub name: String,
    pub ws: String,
    pub rest: String,
    /// The venue (manifest `exchanges.<name>.venue`) and the dialect it speaks.
    pub venue: Venue,
    pub market: Market,
    /// The exchange's symbols (config names); the decoder's ids follow this order.
    pub symbols: Vec<String>,
    /// The same instruments as the venue names them (OKX `instId`, Kraken `wsname`).
    pub venue_symbols: Vec<String>,
    pub stale_ms: u64,
    /// Checksummed books: verify every n-th message of an instrument (the exchange's
    /// `book_checksum_every`; 1: every message).
    pub check_every: u64,
    /// Depth levels of a REST snapshot.
    pub snapshot_limit: u32,
    /// The exchange's REST rate limits and usage (shared with its gateway).
    pub limits: Arc<crate::ratelimit::VenueLimits>,
}

/// Depth levels of a REST snapshot (Binance's default for `/api/v3/depth` is 100; 1000 keeps
/// the book deep enough for the strategies).
pub const SNAPSHOT_LIMIT: u32 = 1000;

impl FeedConfig {
    /// The feed of exchange number `exchange` (`name`, `ex`) of a manifest: its endpoints and
    /// instruments (the decoder's symbol ids follow the instruments' order).
    pub fn for_exchange(exchange: u32, name: &str, ex: &Exchange, stale_ms: u64) -> FeedConfig {
        FeedConfig {
            exchange,
            name: name.to_owned(),
            ws: ex.endpoints.ws.clone(),
            rest: ex.endpoints.rest.clone(),
            venue: ex.venue,
            market: ex.market,
            symbols: ex.instruments.keys().cloned().collect(),
            venue_symbols: market::venue_symbols(ex),
            stale_ms,
            check_every: u64::from(ex.book_checksum_every),
            snapshot_limit: SNAPSHOT_LIMIT,
            limits: Arc::new(crate::ratelimit::VenueLimits::from_manifest(
                &ex.rate_limits,
                ex.venue,
            )),
        }
    }

    /// The URL the feed connects to (the venue's, from the configured endpoint).
    pub fn stream_url(&self) -> String {
        self.market_data().stream_url(&self.ws)
    }

    /// The venue's market data for this feed's instruments.
    pub fn market_data(&self) -> Box<dyn MarketData> {
        let mut md = market::for_venue(self.venue, self.market, &self.venue_symbols);
        md.set_check_every(self.check_every);
        md
    }
}

/// A checksummed book with no message for this many times `feed_stale_ms`, on a connection
/// that is otherwise alive, is stale: dropped and resubscribed. (Quiet instruments send nothing
/// for seconds: the factor keeps them from being resubscribed for being quiet.)
pub const BOOK_STALE_FACTOR: u64 = 30;

/// A resubscription the venue has not answered with a snapshot within this is sent again.
pub const RESUBSCRIBE_RETRY: Duration = Duration::from_secs(5);

/// `Resubscribe`: a resync request of the sink this soon after the feed handed the core a
/// broken book or a snapshot is their echo: the strategy thread reads the ring after the feed
/// wrote it (on loopback the venue's new snapshot can come before the core has read the gap,
/// and the core's check of unsynced books can run just before it reads a snapshot). Shorter
/// than the 200 ms after a snapshot at which the core looks again: a book still out of sync
/// then is asked for again, and that request is honoured.
const RESYNC_ECHO_NS: Nanos = 150_000_000;

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Where a feed's output goes. The feed owns the connection (WebSocket, REST snapshots,
/// sequence checks, reconnects); the sink owns what happens to what arrives.
pub trait Sink {
    /// Wind down: the feed closes the stream and returns.
    fn stopping(&self) -> bool;
    /// A fresh snapshot of every symbol is wanted (asked once: the flag is taken).
    fn take_resync(&mut self) -> bool;
    /// A line for the log.
    fn log(&self, line: String);
    /// The feed's totals or state changed (and once a second).
    fn report(&mut self, info: &mut FeedInfo);
    /// Once a second: the latency recorded since the last call.
    fn latency(&mut self, _stages: Stages) {}
    /// Every data frame (text or binary) as received at `local_ns`, before it is decoded.
    #[inline(always)]
    fn on_raw(&mut self, _frame: &[u8], _local_ns: Nanos) {}
    /// Symbol `symbol`'s REST snapshot: the raw body and its decoding. `false`: not delivered
    /// (fetched again shortly).
    fn on_snapshot(&mut self, symbol: usize, body: &[u8], event: &MarketEvent<'_>) -> bool;
    /// A decoded event. `false`: it was lost (every book needs a new snapshot).
    fn on_event(&mut self, event: &MarketEvent<'_>) -> bool;
    /// The stream broke or stalled.
    fn feed_down(&mut self, local_ns: Nanos);
    /// Orders were decided since the last call (the fused layout's inline strategy): the feed
    /// steps aside for [`HAND_OVER_ROUNDS`] turns of its runtime so the gateway writes them
    /// before more frames are read.
    #[inline(always)]
    fn orders_pending(&mut self) -> bool {
        false
    }
}

/// The fused layout: the runtime turns a feed steps aside for after an order was decided. The
/// gateway took it off the orders ring, built, signed and journaled it and handed it to its
/// connection in the call stack that decided it (`gateway::take_now_on_this_thread`); the
/// connection's task writes it at the next turn, with one to spare.
pub const HAND_OVER_ROUNDS: usize = 2;

/// The engine's sink: events into the market-data ring, state to the housekeeping thread.
#[derive(Debug)]
pub struct RingSink {
    exchange: u32,
    name: String,
    ring: Producer,
    flags: Arc<Flags>,
    hk: HkSender,
    /// The flight recorder's tap (manifest `engine.flight_recorder`), if on.
    tap: Option<Tap>,
    /// The fused layout: the strategy loop of this thread, turned after every event written.
    inline: Option<Inline>,
}

/// The strategy loop a fused feed turns inline: decode -> book -> strategy -> risk -> order
/// in one call stack, no thread hop.
pub struct Inline(pub Rc<RefCell<StrategyLoop>>);

impl std::fmt::Debug for Inline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Inline(strategy loop)")
    }
}

impl RingSink {
    fn new(
        cfg: &FeedConfig,
        ring: Producer,
        flags: Arc<Flags>,
        hk: HkSender,
        tap: Option<Tap>,
        inline: Option<Inline>,
    ) -> RingSink {
        RingSink {
            exchange: cfg.exchange,
            name: cfg.name.clone(),
            ring,
            flags,
            hk,
            tap,
            inline,
        }
    }

    /// The fused layout: the strategy reads what was just written, on this thread.
    #[inline]
    fn turn_inline(&self) {
        if let Some(Inline(strategy)) = &self.inline {
            strategy.borrow_mut().turn();
        }
    }
}

impl Sink for RingSink {
    #[inline]
    fn stopping(&self) -> bool {
        self.flags.stopping()
    }

    #[inline]
    fn take_resync(&mut self) -> bool {
        self.flags.resync[self.exchange as usize].swap(false, Ordering::Relaxed)
    }

    fn log(&self, line: String) {
        let _ = self.hk.send(Hk::Log(format!("feed {}: {line}", self.name)));
    }

    fn report(&mut self, info: &mut FeedInfo) {
        info.ring_overflows = self.ring.overflow();
        info.gaps = self.flags.gaps[self.exchange as usize].load(Ordering::Relaxed);
        let _ = self.hk.send(Hk::Feed(*info));
    }

    fn latency(&mut self, stages: Stages) {
        let _ = self.hk.send(Hk::Latency(Box::new(stages)));
    }

    #[inline]
    fn on_raw(&mut self, frame: &[u8], local_ns: Nanos) {
        if let Some(tap) = &self.tap {
            tap.frame(frame, local_ns);
        }
    }

    fn on_snapshot(&mut self, symbol: usize, body: &[u8], event: &MarketEvent<'_>) -> bool {
        if let (Some(tap), MarketEvent::Snapshot(snap)) = (&self.tap, event) {
            tap.snapshot(symbol, body, snap.header.local_ns);
        }
        self.on_event(event)
    }

    #[inline]
    fn on_event(&mut self, event: &MarketEvent<'_>) -> bool {
        let ring = &mut self.ring;
        let outcome = wire::write_event(event, ring.capacity(), |fill| {
            ring.with_slot_or_count(|buf| fill(buf))
        });
        self.flags.wake_strategy();
        self.turn_inline();
        outcome != WriteOutcome::Dropped
    }

    #[inline]
    fn orders_pending(&mut self) -> bool {
        self.inline
            .as_ref()
            .is_some_and(|Inline(strategy)| strategy.borrow_mut().take_sent())
    }

    fn feed_down(&mut self, local_ns: Nanos) {
        self.ring
            .with_slot_or_count(|buf| wire::write_feed_down(buf, local_ns));
        self.flags.wake_strategy();
        self.turn_inline();
    }
}

/// Runs the engine's feed until `flags.stop`, recording what it receives into `tap` when
/// given (the flight recorder); returns its totals.
pub fn run(
    cfg: FeedConfig,
    ring: Producer,
    flags: Arc<Flags>,
    hk: HkSender,
    tap: Option<Tap>,
) -> FeedInfo {
    let sink = RingSink::new(&cfg, ring, flags, hk, tap, None);
    run_with(cfg, sink).0
}

/// The fused layout's feed: a task of the one hot thread's runtime, turning `strategy` after
/// every event it writes; until `flags.stop`, returns its totals.
pub async fn serve_fused(
    cfg: FeedConfig,
    ring: Producer,
    flags: Arc<Flags>,
    hk: HkSender,
    tap: Option<Tap>,
    strategy: Rc<RefCell<StrategyLoop>>,
) -> FeedInfo {
    let sink = RingSink::new(&cfg, ring, flags, hk, tap, Some(Inline(strategy)));
    let mut feed = Feed::new(cfg, sink);
    feed.run().await;
    feed.info
}

/// Runs a feed into any sink until `sink.stopping()`, on a runtime of the calling thread;
/// returns its totals and the sink.
pub fn run_with<S: Sink>(cfg: FeedConfig, sink: S) -> (FeedInfo, S) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            sink.log(format!("no runtime: {e}"));
            return (FeedInfo::default(), sink);
        }
    };
    let local = tokio::task::LocalSet::new();
    let mut feed = Feed::new(cfg, sink);
    local.block_on(&runtime, async move {
        feed.run().await;
        (feed.info, feed.sink)
    })
}

/// The first wait before a failed snapshot request is retried; each further failure doubles
/// it up to [`SNAPSHOT_RETRY_MAX`] (with jitter), a success resets it: a venue refusing or
/// failing snapshots is not asked every 500 ms.
const SNAPSHOT_RETRY_MIN: Duration = Duration::from_millis(500);
const SNAPSHOT_RETRY_MAX: Duration = Duration::from_secs(8);

/// The wait after `retry` before the next failed snapshot request is retried.
fn next_snapshot_retry(retry: Duration) -> Duration {
    (retry * 2).clamp(SNAPSHOT_RETRY_MIN, SNAPSHOT_RETRY_MAX)
}

/// At most this long between two looks at `stopping()` while the stream is quiet.
const POLL: Duration = Duration::from_millis(200);

struct Feed<S: Sink> {
    cfg: FeedConfig,
    sink: S,
    md: Box<dyn MarketData>,
    rule: SyncRule,
    info: FeedInfo,
    stages: Stages,
    /// Per symbol: the book waits for its snapshot (REST, or the stream's after a
    /// (re)subscription).
    need_snapshot: Vec<bool>,
    /// Per symbol (`Resubscribe`): when its (re)subscription was sent.
    asked_at: Vec<Nanos>,
    /// Per symbol (`Resubscribe`): when its last book message arrived.
    last_book: Vec<Nanos>,
    /// Frames to send to the venue (subscriptions), in order.
    outbox: Vec<String>,
    /// When the feed last handed the core a broken book or a snapshot (`Resubscribe`).
    told_at: Nanos,
    /// No snapshot request before this time (a failed one is retried after a pause).
    snapshot_after: Nanos,
    /// The wait before the next retry of a failed snapshot request.
    snapshot_retry: Duration,
    rng: u64,
}

impl<S: Sink> Feed<S> {
    fn new(cfg: FeedConfig, sink: S) -> Feed<S> {
        let n = cfg.symbols.len();
        let md = cfg.market_data();
        let info = FeedInfo {
            exchange: cfg.exchange,
            ..FeedInfo::default()
        };
        Feed {
            rng: (now_ns() as u64) | 1,
            cfg,
            sink,
            rule: md.sync_rule(),
            md,
            info,
            stages: Stages::recycled(),
            need_snapshot: vec![true; n],
            asked_at: vec![0; n],
            last_book: vec![0; n],
            outbox: Vec::new(),
            told_at: i64::MIN / 2,
            snapshot_after: 0,
            snapshot_retry: SNAPSHOT_RETRY_MIN,
        }
    }

    fn log(&self, line: String) {
        self.sink.log(line);
    }

    fn set_status(&mut self, status: FeedStatus) {
        if self.info.status != status {
            self.info.status = status;
            self.report();
        }
    }

    fn report(&mut self) {
        let checks = self.md.checks();
        self.info.checksums_checked = checks.checked;
        self.info.checksums_matched = checks.matched;
        self.info.sequence_gaps = checks.gaps;
        self.info.books_invalid = self.need_snapshot.iter().filter(|n| **n).count() as u64;
        self.sink.report(&mut self.info);
    }

    /// Jittered backoff: uniform in [d/2, d].
    fn jitter(&mut self, d: Duration) -> Duration {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let ms = d.as_millis() as u64;
        Duration::from_millis(ms / 2 + self.rng % (ms / 2 + 1))
    }

    async fn run(&mut self) {
        let mut backoff = BACKOFF_MIN;
        let url = self.md.stream_url(&self.cfg.ws);
        let rest = match Base::parse(&self.cfg.rest) {
            Ok(b) => b,
            Err(e) => {
                self.log(format!("{e}"));
                return;
            }
        };
        let mut http = Client::with_limits(rest, self.cfg.limits.clone());
        let mut first = true;
        while !self.sink.stopping() {
            if !first {
                self.info.reconnects += 1;
                let wait = self.jitter(backoff);
                backoff = (backoff * 2).min(BACKOFF_MAX);
                self.sleep_unless_stopped(wait).await;
                if self.sink.stopping() {
                    break;
                }
            }
            first = false;
            self.set_status(FeedStatus::Connecting);
            let connect =
                tokio::time::timeout(Duration::from_secs(5), crate::tls::connect_ws(url.as_str()))
                    .await;
            let mut ws = match connect {
                Ok(Ok((ws, _))) => ws,
                Ok(Err(e)) => {
                    self.log(format!("cannot connect to {url}: {e}"));
                    continue;
                }
                Err(_) => {
                    self.log(format!("connecting to {url} timed out"));
                    continue;
                }
            };
            self.set_status(FeedStatus::Syncing);
            self.need_snapshot.iter_mut().for_each(|n| *n = true);
            self.outbox.clear();
            if self.rule == SyncRule::Resubscribe {
                let all: Vec<SymbolId> = (0..self.need_snapshot.len() as SymbolId).collect();
                self.outbox = self.md.subscribe(&all);
                let t = now_ns();
                self.asked_at.iter_mut().for_each(|a| *a = t);
                self.last_book.iter_mut().for_each(|a| *a = t);
            }
            let stale = Duration::from_millis(self.cfg.stale_ms.max(1));
            let mut report_at = now_ns() + 1_000_000_000;
            let mut last_rx = Instant::now();
            loop {
                if self.sink.stopping() {
                    let _ = ws.close(None).await;
                    return;
                }
                if self.sink.take_resync() {
                    self.resync_all("the book left sync", false);
                }
                if self.rule == SyncRule::Resubscribe {
                    self.watch_books();
                }
                if !self.outbox.is_empty() {
                    let mut failed = None;
                    for text in std::mem::take(&mut self.outbox) {
                        if let Err(e) = ws.send(Message::text(text)).await {
                            failed = Some(e);
                            break;
                        }
                    }
                    if let Some(e) = failed {
                        self.log(format!("cannot send a subscription: {e}; reconnecting"));
                        self.feed_down();
                        break;
                    }
                }
                let rest_snapshot = self.rule == SyncRule::RestSnapshot;
                if let Some(k) = self
                    .need_snapshot
                    .iter()
                    .position(|n| *n)
                    .filter(|_| rest_snapshot)
                {
                    // Frames arriving meanwhile wait in the socket; the strategy thread's
                    // book buffers the diffs before the snapshot and replays them after it.
                    if now_ns() >= self.snapshot_after {
                        if self.fetch_snapshot(&mut http, k).await {
                            backoff = BACKOFF_MIN;
                            self.snapshot_retry = SNAPSHOT_RETRY_MIN;
                        } else {
                            // Not before the venue's Retry-After (a back-off, a ban) either.
                            let told = self.cfg.limits.wait_ms(crate::ratelimit::wall_ms());
                            let wait = self
                                .jitter(self.snapshot_retry)
                                .max(Duration::from_millis(told));
                            self.snapshot_after = now_ns() + wait.as_nanos() as i64;
                            self.snapshot_retry = next_snapshot_retry(self.snapshot_retry);
                        }
                        // The stream was not read meanwhile: its silence counts from now.
                        last_rx = Instant::now();
                    }
                }
                // Waits in slices (a quiet stream must not delay a stop); stale counts from the
                // last frame (or snapshot request).
                let wait = stale.saturating_sub(last_rx.elapsed()).min(POLL);
                let next = tokio::time::timeout(wait, ws.next()).await;
                match next {
                    Err(_) if last_rx.elapsed() < stale => {}
                    Err(_) => {
                        self.log(format!(
                            "no data for {} ms: stale, reconnecting",
                            stale.as_millis()
                        ));
                        self.set_status(FeedStatus::Stale);
                        self.feed_down();
                        break;
                    }
                    Ok(None) => {
                        self.log("stream closed, reconnecting".to_owned());
                        self.feed_down();
                        break;
                    }
                    Ok(Some(Err(e))) => {
                        self.log(format!("stream error: {e}; reconnecting"));
                        self.feed_down();
                        break;
                    }
                    Ok(Some(Ok(msg))) => {
                        let t0 = now_ns();
                        last_rx = Instant::now();
                        match msg {
                            Message::Text(text) => {
                                self.sink.on_raw(text.as_bytes(), t0);
                                self.on_frame(text.as_bytes(), t0);
                            }
                            Message::Binary(bytes) => {
                                self.sink.on_raw(&bytes, t0);
                                self.on_frame(&bytes, t0);
                            }
                            Message::Close(_) => {
                                self.log("venue closed the stream, reconnecting".to_owned());
                                self.feed_down();
                                break;
                            }
                            _ => {}
                        }
                        if self.sink.orders_pending() {
                            for _ in 0..HAND_OVER_ROUNDS {
                                tokio::task::yield_now().await;
                            }
                        }
                    }
                }
                if now_ns() >= report_at {
                    report_at = now_ns() + 1_000_000_000;
                    self.report();
                    self.sink.latency(self.stages.take());
                }
            }
        }
    }

    async fn sleep_unless_stopped(&self, d: Duration) {
        let end = tokio::time::Instant::now() + d;
        while tokio::time::Instant::now() < end && !self.sink.stopping() {
            tokio::time::sleep(Duration::from_millis(20).min(d)).await;
        }
    }

    fn feed_down(&mut self) {
        self.sink.feed_down(now_ns());
        self.report();
    }

    /// Fetches and writes one symbol's snapshot; true when it arrived.
    async fn fetch_snapshot(&mut self, http: &mut Client, k: usize) -> bool {
        let Some(path) = self
            .md
            .snapshot_path(k as SymbolId, self.cfg.snapshot_limit)
        else {
            return false;
        };
        let response = tokio::time::timeout(
            Duration::from_secs(5),
            http.request(Method::GET, &path, &[]),
        )
        .await;
        let body = match response {
            Ok(Ok(r)) if r.status == 200 => r.body,
            Ok(Ok(r)) => {
                self.log(format!(
                    "snapshot {path}: HTTP {}: {}",
                    r.status,
                    String::from_utf8_lossy(&r.body[..r.body.len().min(200)])
                ));
                return false;
            }
            Ok(Err(e)) => {
                self.log(format!("snapshot {path}: {e}"));
                return false;
            }
            Err(_) => {
                self.log(format!("snapshot {path}: timed out"));
                return false;
            }
        };
        // The feed is live once this snapshot is in the ring: say so *before* writing it, so
        // that on the bus the feed's LIVE comes before any order the synced book leads to.
        let last = self
            .need_snapshot
            .iter()
            .enumerate()
            .all(|(j, n)| j == k || !n);
        if last {
            self.set_status(FeedStatus::Live);
        }
        let t = now_ns();
        let symbol = k as u32;
        let delivered = match self.md.decode_snapshot(&body, symbol, t) {
            Ok(ev) => self.sink.on_snapshot(k, &body, &ev),
            Err(e) => {
                self.info.malformed += 1;
                self.log(format!("snapshot {path}: {e}"));
                self.set_status(FeedStatus::Resyncing);
                return false;
            }
        };
        if !delivered {
            // Retried shortly: the snapshot is what resyncs the book.
            self.set_status(FeedStatus::Resyncing);
            return false;
        }
        self.need_snapshot[k] = false;
        self.info.snapshots += 1;
        true
    }

    fn on_frame(&mut self, frame: &[u8], t0: Nanos) {
        self.info.messages += 1;
        let sink = &mut self.sink;
        let mut parsed_at = 0;
        let decoded = self.md.decode(frame, t0, &mut |ev| {
            if parsed_at == 0 {
                parsed_at = now_ns();
            }
            sink.on_event(ev)
        });
        let decoded = match decoded {
            Ok(d) => d,
            Err(_) => {
                self.info.malformed += 1;
                return;
            }
        };
        if parsed_at != 0 {
            self.stages.record(Stage::FrameToParsed, parsed_at - t0);
        }
        if let Some((k, news)) = decoded.book {
            self.on_book(k as usize, news, t0);
        }
        if decoded.lost > 0 {
            // The reader sees a gap; every book of this feed may have lost a diff.
            self.resync_all("an event was lost", true);
        }
    }

    /// What a checksummed book message found (`Resubscribe`).
    fn on_book(&mut self, k: usize, news: BookNews, t0: Nanos) {
        if let Some(last) = self.last_book.get_mut(k) {
            *last = t0;
        }
        match news {
            BookNews::Snapshot if self.need_snapshot.get(k) == Some(&true) => {
                self.told_at = now_ns();
                self.need_snapshot[k] = false;
                self.info.snapshots += 1;
                if self.need_snapshot.iter().all(|n| !n) {
                    self.set_status(FeedStatus::Live);
                } else {
                    self.report();
                }
            }
            news if news.broke() => {
                self.info.book_breaks += 1;
                let what = if news == BookNews::Gap {
                    "sequence gap"
                } else {
                    "checksum mismatch"
                };
                self.log(format!(
                    "book {}: {what}; invalid until the venue's next snapshot, resubscribing",
                    self.md.symbols().get(k).map_or("?", String::as_str)
                ));
                // The decoder has handed the core its gap already: no invalidation event.
                self.told_at = now_ns();
                self.resubscribe(&[k as SymbolId], false);
                self.info.status = FeedStatus::Resyncing;
                self.report();
            }
            _ => {}
        }
    }

    /// `Resubscribe`: resubscribes the books of `ks`, each invalid until its new snapshot
    /// (`invalidate`: the core is told now, with a gap).
    fn resubscribe(&mut self, ks: &[SymbolId], invalidate: bool) {
        if ks.is_empty() {
            return;
        }
        let t = now_ns();
        if invalidate {
            self.told_at = t;
            let sink = &mut self.sink;
            for &k in ks {
                self.md.invalidate(k, t, &mut |ev| sink.on_event(ev));
            }
        }
        for &k in ks {
            self.need_snapshot[k as usize] = true;
            self.asked_at[k as usize] = t;
            self.last_book[k as usize] = t;
        }
        self.info.resubscribes += ks.len() as u64;
        let frames = self.md.resubscribe(ks);
        self.outbox.extend(frames);
    }

    /// Every book needs a new snapshot (`why`, for the log). `Resubscribe`: the feed sees its
    /// books break before the core does, so a request of the sink (`lost`: false) while a book
    /// waits for its snapshot, or within [`RESYNC_ECHO_NS`] of a break or a snapshot the feed
    /// handed the core, is theirs, and the resubscription under way answers it (the core asks
    /// again, 200 ms after that snapshot, if a book is still out of sync); any other, or a
    /// lost event, resubscribes every book.
    fn resync_all(&mut self, why: &str, lost: bool) {
        let echo = self.need_snapshot.iter().any(|n| *n)
            || now_ns().saturating_sub(self.told_at) < RESYNC_ECHO_NS;
        match self.rule {
            SyncRule::RestSnapshot => {
                self.need_snapshot.iter_mut().for_each(|n| *n = true);
            }
            SyncRule::Resubscribe if !lost && echo => return,
            SyncRule::Resubscribe => {
                // Books already waiting for their snapshot are not asked twice.
                let ks: Vec<SymbolId> = (0..self.need_snapshot.len())
                    .filter(|&k| !self.need_snapshot[k])
                    .map(|k| k as SymbolId)
                    .collect();
                if !ks.is_empty() {
                    self.log(format!("{why}: resubscribing {} book(s)", ks.len()));
                }
                self.resubscribe(&ks, true);
            }
        }
        self.set_status(FeedStatus::Resyncing);
    }

    /// `Resubscribe`: stale books and unanswered resubscriptions are resubscribed.
    fn watch_books(&mut self) {
        let now = now_ns();
        let stale = (self.cfg.stale_ms.max(1) * BOOK_STALE_FACTOR) as i64 * 1_000_000;
        let retry = RESUBSCRIBE_RETRY.as_nanos() as i64;
        let mut stale_books = Vec::new();
        let mut unanswered = Vec::new();
        for k in 0..self.need_snapshot.len() {
            if self.need_snapshot[k] {
                if now - self.asked_at[k] >= retry {
                    unanswered.push(k as SymbolId);
                }
            } else if now - self.last_book[k] >= stale {
                stale_books.push(k as SymbolId);
            }
        }
        if !stale_books.is_empty() {
            self.info.book_breaks += stale_books.len() as u64;
            self.log(format!(
                "{} book(s) stale (no message for {} ms): resubscribing",
                stale_books.len(),
                stale / 1_000_000
            ));
            self.resubscribe(&stale_books, true);
            self.set_status(FeedStatus::Resyncing);
        }
        if !unanswered.is_empty() {
            self.log(format!(
                "{} resubscription(s) unanswered for {} ms: sending again",
                unanswered.len(),
                RESUBSCRIBE_RETRY.as_millis()
            ));
            self.resubscribe(&unanswered, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_snapshots_are_retried_ever_more_slowly_up_to_a_cap() {
        let mut retry = SNAPSHOT_RETRY_MIN;
        let mut waits = Vec::new();
        for _ in 0..6 {
            waits.push(retry.as_millis());
            retry = next_snapshot_retry(retry);
        }
        assert_eq!(waits, [500, 1000, 2000, 4000, 8000, 8000]);
    }

    #[test]
    fn the_checksum_interval_is_the_exchanges() {
        let mut m: rt_manifest::Manifest = serde_json::from_str(include_str!(
            "../../../tests/contract/example.manifest.json"
        ))
        .expect("the example manifest");
        let ex = m.exchanges.values_mut().next().expect("an exchange");
        assert_eq!(FeedConfig::for_exchange(0, "x", ex, 100).check_every, 1);
        ex.book_checksum_every = 7;
        assert_eq!(FeedConfig::for_exchange(0, "x", ex, 100).check_every, 7);
    }

    fn config(venue: Venue, symbols: &[&str], venue_symbols: &[&str]) -> FeedConfig {
        FeedConfig {
            exchange: 0,
            name: "x".into(),
            ws: "ws://127.0.0.1:1/".into(),
            rest: "http://127.0.0.1:2".into(),
            venue,
            market: Market::Spot,
            symbols: symbols.iter().map(|s| (*s).to_owned()).collect(),
            venue_symbols: venue_symbols.iter().map(|s| (*s).to_owned()).collect(),
            stale_ms: 100,
            check_every: 1,
            snapshot_limit: 1000,
            limits: Arc::new(crate::ratelimit::VenueLimits::from_manifest(
                &rt_manifest::model::RateLimits {
                    request_weight_per_minute: 6000,
                    orders_per_10s: 100,
                    orders_per_day: 1000,
                },
                venue,
            )),
        }
    }

    /// A sink that keeps what it is given: (kind, first id, final id) per event.
    #[derive(Default)]
    struct Kept {
        events: Vec<(char, u64, u64)>,
        lines: std::cell::RefCell<Vec<String>>,
        statuses: Vec<FeedStatus>,
        resync: bool,
    }

    impl Sink for Kept {
        fn stopping(&self) -> bool {
            false
        }
        fn take_resync(&mut self) -> bool {
            std::mem::take(&mut self.resync)
        }
        fn log(&self, line: String) {
            self.lines.borrow_mut().push(line);
        }
        fn report(&mut self, info: &mut FeedInfo) {
            if self.statuses.last() != Some(&info.status) {
                self.statuses.push(info.status);
            }
        }
        fn on_snapshot(&mut self, _: usize, _: &[u8], event: &MarketEvent<'_>) -> bool {
            self.on_event(event)
        }
        fn on_event(&mut self, event: &MarketEvent<'_>) -> bool {
            self.events.push(match event {
                MarketEvent::Snapshot(s) => ('s', s.last_update_id, s.last_update_id),
                MarketEvent::Depth(d) => ('d', d.first_id, d.final_id),
                MarketEvent::Trade(t) => ('t', t.id, t.id),
                MarketEvent::Bbo(b) => ('b', b.update_id, b.update_id),
            });
            true
        }
        fn feed_down(&mut self, _: Nanos) {}
    }

    /// An OKX `books` message of BTC-USDT with one bid and one ask and its right checksum
    /// (`wrong`: the checksum of another book).
    fn okx_books(action: &str, bid_size: &str, wrong: bool) -> String {
        let text = format!("100.1:{bid_size}:100.2:3");
        let crc = crc32fast_hash(if wrong { b"x" } else { text.as_bytes() }) as i32;
        format!(
            r#"{{"arg":{{"channel":"books","instId":"BTC-USDT"}},"action":"{action}","data":[{{"asks":[["100.2","3","0","1"]],"bids":[["100.1","{bid_size}","0","1"]],"ts":"1","checksum":{crc}}}]}}"#
        )
    }

    fn crc32fast_hash(bytes: &[u8]) -> u32 {
        // CRC-32 (IEEE), bitwise: the tests need no crate for it.
        let mut crc = !0u32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    fn okx_feed() -> Feed<Kept> {
        let mut cfg = config(
            Venue::Okx,
            &["BTCUSDT", "UNIUSDSWAP"],
            &["BTC-USDT", "UNI-USD-SWAP"],
        );
        cfg.stale_ms = 1000;
        let mut feed = Feed::new(cfg, Kept::default());
        // As after connecting: every book waits for its snapshot.
        feed.resubscribe(&[0, 1], false);
        feed.outbox.clear();
        feed
    }

    #[test]
    fn a_checksum_mismatch_drops_the_book_at_once_and_resubscribes_it_alone() {
        let mut feed = okx_feed();
        feed.on_frame(okx_books("snapshot", "2", false).as_bytes(), 1);
        feed.on_frame(okx_books("update", "5", false).as_bytes(), 2);
        feed.report();
        assert_eq!(
            (feed.info.checksums_checked, feed.info.checksums_matched),
            (2, 2)
        );
        assert_eq!(feed.need_snapshot, [false, true]);
        // The venue's book differs from ours on this message.
        feed.on_frame(okx_books("update", "6", true).as_bytes(), now_ns());
        assert_eq!(
            feed.sink.events,
            [('s', 1, 1), ('d', 2, 2), ('d', 4, 4)],
            "a gap"
        );
        assert_eq!(feed.need_snapshot, [true, true]);
        assert_eq!((feed.info.book_breaks, feed.info.resubscribes), (1, 3));
        assert_eq!(
            feed.outbox,
            [
                r#"{"op":"unsubscribe","args":[{"channel":"books","instId":"BTC-USDT"}]}"#,
                r#"{"op":"subscribe","args":[{"channel":"books","instId":"BTC-USDT"}]}"#
            ]
        );
        assert_eq!(feed.sink.statuses.last(), Some(&FeedStatus::Resyncing));
        assert!(feed.sink.lines.borrow()[0].contains("BTC-USDT: checksum mismatch"));
        // Nothing reaches the core until the venue's new snapshot; the core's own request
        // meanwhile is that break's: nothing more is resubscribed.
        feed.on_frame(okx_books("update", "7", false).as_bytes(), 4);
        feed.sink.resync = true;
        if feed.sink.take_resync() {
            feed.resync_all("the book left sync", false);
        }
        assert_eq!(feed.info.resubscribes, 3);
        feed.on_frame(okx_books("snapshot", "7", false).as_bytes(), 5);
        assert_eq!(feed.sink.events.last(), Some(&('s', 5, 5)));
        assert_eq!(feed.need_snapshot, [false, true]);
        // The core's request can also come after the new snapshot (it reads the gap later):
        // still the same break's.
        feed.need_snapshot[1] = false;
        feed.resync_all("the book left sync", false);
        assert_eq!(feed.info.resubscribes, 3);
        feed.told_at -= RESYNC_ECHO_NS;
        feed.resync_all("the book left sync", false);
        assert_eq!(
            feed.info.resubscribes, 5,
            "a request of its own: every book"
        );
        feed.report();
        assert_eq!(feed.info.books_invalid, 2);
    }

    #[test]
    fn a_stale_book_is_dropped_and_resubscribed() {
        let mut feed = okx_feed();
        feed.on_frame(okx_books("snapshot", "2", false).as_bytes(), now_ns());
        feed.need_snapshot[1] = false;
        feed.watch_books();
        assert!(feed.outbox.is_empty(), "fresh books are left alone");
        let old = now_ns() - (BOOK_STALE_FACTOR * 1000 + 1) as i64 * 1_000_000;
        feed.last_book[0] = old;
        feed.watch_books();
        assert_eq!(feed.info.book_breaks, 1);
        assert_eq!(feed.need_snapshot, [true, false]);
        assert_eq!(feed.outbox.len(), 2);
        assert_eq!(
            feed.sink.events.last(),
            Some(&('d', 3, 3)),
            "the core drops it too"
        );
        // Unanswered: asked again after RESUBSCRIBE_RETRY, not counted as a break.
        feed.outbox.clear();
        feed.asked_at[0] = now_ns() - RESUBSCRIBE_RETRY.as_nanos() as i64;
        feed.watch_books();
        assert_eq!((feed.info.book_breaks, feed.outbox.len()), (1, 2));
    }

    #[test]
    fn the_feed_takes_the_url_subscriptions_and_snapshots_from_the_venue() {
        let cfg = config(Venue::Sim, &["BTCUSDT"], &["BTCUSDT"]);
        let md = cfg.market_data();
        assert_eq!(md.sync_rule(), SyncRule::RestSnapshot);
        assert_eq!(
            md.stream_url(&cfg.ws),
            "ws://127.0.0.1:1/stream?streams=btcusdt@depth@100ms/btcusdt@trade/btcusdt@bookTicker"
        );
        assert_eq!(
            md.snapshot_path(0, cfg.snapshot_limit).as_deref(),
            Some("/api/v3/depth?symbol=BTCUSDT&limit=1000")
        );
        let cfg = config(Venue::Okx, &["BTCUSDT"], &["BTC-USDT"]);
        let md = cfg.market_data();
        assert_eq!(md.sync_rule(), SyncRule::Resubscribe);
        assert_eq!(md.stream_url(&cfg.ws), cfg.ws);
        assert!(md.subscribe(&[0])[0].contains("\"instId\":\"BTC-USDT\""));
    }
}
