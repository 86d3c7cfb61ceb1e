//! A feed thread: one exchange's market data, WebSocket -> decoder -> the market-data ring.
//!
//! Connects to the combined stream of its instruments (depth diffs, trades, best bid/offer),
//! fetches a REST depth snapshot on connect and whenever the sequence breaks, and writes
//! normalised events into its ring for the strategy thread, which owns the books and applies
//! Binance's sync rules (`rt_core::sync`, the one place the id sequence is checked). The feed
//! fetches a snapshot:
//! - when the sink asks (`Sink::take_resync`): for the engine, the strategy thread's book left
//!   sync (a sequence gap, a crossed book or a negative size: `BookSync`) or could not bridge
//!   the last snapshot;
//! - after a full ring (the ring counts the loss and shows it to the reader as a gap);
//! - on a reconnect.
//!
//! When the stream breaks or stalls (nothing for `feed_stale_ms`), the feed writes a
//! feed-down marker (the strategy thread drops the exchange's books and cancels their
//! orders) and reconnects with capped exponential backoff and jitter. A frame that does not
//! decode is counted and skipped.
//!
//! Snapshot requests count against the exchange's rate limits (`ratelimit`, shared with the
//! gateway): one the limits refuse is not sent, and a failed one is retried after the jittered
//! backoff or the venue's `Retry-After` (a 429's back-off, an IP ban), whichever is later.
//!
//! The connection logic ([`Feed`]) is generic over a [`Sink`], where its output goes: the
//! engine's market-data ring ([`RingSink`], [`run`]) or a recorder writing every raw frame and
//! snapshot body to files (`record.rs`, [`run_with`]). Monomorphised, so the engine's path pays
//! nothing for the recorder's hooks.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hyper::Method;
use rt_core::{MarketEvent, Nanos};
use rt_manifest::model::{Exchange, Market};
use rt_ring::Producer;
use rt_venues::Decoder;
use tokio_tungstenite::tungstenite::Message;

use crate::clock::now_ns;
use crate::flight::Tap;
use crate::http::{Base, Client};
use crate::latency::{Stage, Stages};
use crate::shared::{FeedInfo, FeedStatus, Flags, Hk, HkSender};
use crate::wire::{self, WriteOutcome};

/// What a feed needs to know.
#[derive(Debug, Clone)]
pub struct FeedConfig {
    pub exchange: u32,
    pub name: String,
    pub ws: String,
    pub rest: String,
    pub market: Market,
    /// The exchange's symbols; the decoder's ids follow this order.
    pub symbols: Vec<String>,
    pub stale_ms: u64,
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
            market: ex.market,
            symbols: ex.instruments.keys().cloned().collect(),
            stale_ms,
            snapshot_limit: SNAPSHOT_LIMIT,
            limits: Arc::new(crate::ratelimit::VenueLimits::new(
                rt_venues::binance_limits::Limits::from_manifest(&ex.rate_limits),
            )),
        }
    }

    /// The combined-stream URL of every instrument's depth, trade and bookTicker streams.
    pub fn stream_url(&self) -> String {
        let trade = match self.market {
            Market::Spot => "trade",
            Market::Usdm => "aggTrade",
        };
        let streams: Vec<String> = self
            .symbols
            .iter()
            .flat_map(|s| {
                let s = s.to_ascii_lowercase();
                [
                    format!("{s}@depth@100ms"),
                    format!("{s}@{trade}"),
                    format!("{s}@bookTicker"),
                ]
            })
            .collect();
        format!(
            "{}/stream?streams={}",
            self.ws.trim_end_matches('/'),
            streams.join("/")
        )
    }

    pub fn snapshot_path(&self, symbol: &str) -> String {
        let path = match self.market {
            Market::Spot => "/api/v3/depth",
            Market::Usdm => "/fapi/v1/depth",
        };
        format!("{path}?symbol={symbol}&limit={}", self.snapshot_limit)
    }
}

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
}

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
        outcome != WriteOutcome::Dropped
    }

    fn feed_down(&mut self, local_ns: Nanos) {
        self.ring
            .with_slot_or_count(|buf| wire::write_feed_down(buf, local_ns));
        self.flags.wake_strategy();
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
    let sink = RingSink {
        exchange: cfg.exchange,
        name: cfg.name.clone(),
        ring,
        flags,
        hk,
        tap,
    };
    run_with(cfg, sink).0
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
    decoder: Decoder,
    info: FeedInfo,
    stages: Stages,
    need_snapshot: Vec<bool>,
    /// No snapshot request before this time (a failed one is retried after a pause).
    snapshot_after: Nanos,
    /// The wait before the next retry of a failed snapshot request.
    snapshot_retry: Duration,
    rng: u64,
}

impl<S: Sink> Feed<S> {
    fn new(cfg: FeedConfig, sink: S) -> Feed<S> {
        let n = cfg.symbols.len();
        let decoder = Decoder::with_symbols(&cfg.symbols);
        let info = FeedInfo {
            exchange: cfg.exchange,
            ..FeedInfo::default()
        };
        Feed {
            rng: (now_ns() as u64) | 1,
            cfg,
            sink,
            decoder,
            info,
            stages: Stages::new(),
            need_snapshot: vec![true; n],
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
        let url = self.cfg.stream_url();
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
            let stale = Duration::from_millis(self.cfg.stale_ms.max(1));
            let mut report_at = now_ns() + 1_000_000_000;
            let mut last_rx = Instant::now();
            loop {
                if self.sink.stopping() {
                    let _ = ws.close(None).await;
                    return;
                }
                if self.sink.take_resync() {
                    self.need_snapshot.iter_mut().for_each(|n| *n = true);
                    self.set_status(FeedStatus::Resyncing);
                }
                if let Some(k) = self.need_snapshot.iter().position(|n| *n) {
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
        let path = self.cfg.snapshot_path(&self.cfg.symbols[k]);
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
        let delivered = match self.decoder.decode_snapshot(&body, symbol, t) {
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
        let ev = match self.decoder.decode(frame, t0) {
            Ok(Some(ev)) => ev,
            Ok(None) => return,
            Err(_) => {
                self.info.malformed += 1;
                return;
            }
        };
        self.stages.record(Stage::FrameToParsed, now_ns() - t0);
        let delivered = self.sink.on_event(&ev);
        if !delivered {
            // The reader sees a gap; every book of this feed may have lost a diff.
            self.need_snapshot.iter_mut().for_each(|n| *n = true);
            self.info.status = FeedStatus::Resyncing;
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
    fn stream_url_names_every_stream() {
        let cfg = FeedConfig {
            exchange: 0,
            name: "x".into(),
            ws: "ws://127.0.0.1:1/".into(),
            rest: "http://127.0.0.1:2".into(),
            market: Market::Spot,
            symbols: vec!["BTCUSDT".into()],
            stale_ms: 100,
            snapshot_limit: 1000,
            limits: Arc::new(crate::ratelimit::VenueLimits::new(
                rt_venues::binance_limits::Limits {
                    weight_per_minute: 6000,
                    orders_per_10s: 100,
                    orders_per_day: 1000,
                },
            )),
        };
        assert_eq!(
            cfg.stream_url(),
            "ws://127.0.0.1:1/stream?streams=btcusdt@depth@100ms/btcusdt@trade/btcusdt@bookTicker"
        );
        assert_eq!(
            cfg.snapshot_path("BTCUSDT"),
            "/api/v3/depth?symbol=BTCUSDT&limit=1000"
        );
    }
}
