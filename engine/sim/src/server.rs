//! The simulator's I/O: the replay engine task, the REST server (hyper) and the WebSocket
//! server (tokio-tungstenite), on one current-thread tokio runtime.
//!
//! The engine task owns the replay schedule and is the only writer of the venue's books and
//! matchers: it applies each capture line to the venue, then publishes it (one broadcast
//! channel shared by every market-data connection), and it executes orders when their
//! latency has elapsed on the capture clock, in time order with the frames. REST handlers read the venue (depth,
//! open orders, a queried order, the account's trades) under its mutex and send orders to the engine; faults go to the engine too
//! and are acknowledged once applied.

use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::net::TcpListener as StdListener;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rt_core::{MarketEvent, Nanos, SCALE};
use rt_venues::binance_limits as bl;
use rt_venues::binance_orders::{
    self as bo, ApiError, CancelOpenOrders, CancelOrder, ExecutionReport, MyTradesQuery, NewOrder,
    OpenOrdersQuery, Params, QueryOrder, SignedParams,
};
use rt_venues::{Decoder, FrameReader};
use sha2::{Digest, Sha256};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request as WsRequest};
use tokio_tungstenite::tungstenite::http;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::limits::{Meter, Verdict};

#[path = "futures.rs"]
mod futures;
mod ws_api;
use crate::venue::{CommissionSettings, RejectFault, Venue, DEFAULT_DEPTH_LIMIT, MAX_DEPTH_LIMIT};
use crate::{Config, Credentials, Fault, ScheduledFault, SimError, SimReport, Speed};

/// Frames kept for market-data connections; a connection further behind is closed (Binance
/// disconnects slow consumers too).
const MD_CAPACITY: usize = 1 << 14;
/// In as-fast-as-possible mode the replay waits while the slowest connection is this far
/// behind.
const MD_HIGH_WATER: usize = MD_CAPACITY / 2;
const USER_CAPACITY: usize = 1 << 12;
/// Capture lines read ahead of the replay.
const READ_AHEAD: usize = 1024;
/// Largest request body accepted.
const MAX_BODY: usize = 64 * 1024;
/// How often the stop flag is looked at.
const STOP_POLL: Duration = Duration::from_millis(20);
/// Time given to connections to send their close frames at shutdown.
const CLOSE_GRACE: Duration = Duration::from_millis(100);

/// A frame as published: its stream, the combined form (as recorded) and the raw form (the
/// `data` part).
#[derive(Debug)]
struct OutFrame {
    /// Empty for a frame sent to every connection (an injected malformed frame).
    stream: Box<str>,
    combined: Utf8Bytes,
    raw: Utf8Bytes,
    /// Not a frame: the connection drops here (a `drop` fault after N frames, in order with
    /// the frames before it).
    drop: bool,
}

#[derive(Debug, Default)]
struct Counters {
    frames_replayed: AtomicU64,
    frames_published: AtomicU64,
    frames_sent: AtomicU64,
    diffs_skipped: AtomicU64,
    frames_duplicated: AtomicU64,
    malformed_sent: AtomicU64,
    decode_errors: AtomicU64,
    ws_connections: AtomicU64,
    /// WebSocket API: `session.logon`s accepted, requests verified by their signature, and
    /// requests without one on a logged-on connection.
    ws_api_logons: AtomicU64,
    ws_api_signed: AtomicU64,
    ws_api_unsigned: AtomicU64,
    ws_dropped: AtomicU64,
    ws_lagged: AtomicU64,
    http_requests: AtomicU64,
    faults_applied: AtomicU64,
    replay_finished: AtomicBool,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// What the engine is asked to do.
#[derive(Debug)]
enum Cmd {
    Order(NewOrder, oneshot::Sender<Result<String, ApiError>>),
    Cancel(CancelOrder, oneshot::Sender<Result<String, ApiError>>),
    CancelAll(CancelOpenOrders, oneshot::Sender<Result<String, ApiError>>),
    /// USD-M order entry (`futures`).
    Futures(
        futures::FuturesCmd,
        oneshot::Sender<Result<String, ApiError>>,
    ),
    Fault(Fault, oneshot::Sender<()>),
}

/// State shared by the engine and the servers.
#[derive(Debug)]
struct Shared {
    exchange: String,
    venue: Mutex<Venue>,
    md_tx: broadcast::Sender<Arc<OutFrame>>,
    user_tx: broadcast::Sender<Utf8Bytes>,
    /// Bumped by a `drop` fault (now): every connection closes at once.
    drop_tx: watch::Sender<u64>,
    /// Bumped by a `drop_market` fault: market-data connections close, user streams stay.
    drop_md_tx: watch::Sender<u64>,
    /// Bumped by a `drop_user` fault: user data stream connections close.
    drop_user_tx: watch::Sender<u64>,
    /// Bumped by a `drop_ws_api` fault: WebSocket API connections close.
    drop_ws_api_tx: watch::Sender<u64>,
    /// Set by a `drop_ws_api` fault until `clear`: new WebSocket API connections are refused.
    refuse_ws_api: std::sync::atomic::AtomicBool,
    /// Bumped by a `freeze_user` fault: user data stream connections go silent, left open.
    freeze_user_tx: watch::Sender<u64>,
    /// Bumped by a `listen_key_expired` fault: user data streams say so and go quiet.
    expire_user_tx: watch::Sender<u64>,
    /// Set by a `drop_user` fault until `clear`: new listen keys are refused.
    refuse_listen_keys: std::sync::atomic::AtomicBool,
    /// A `reject_logon` fault: how many more `session.logon`s to refuse (`None`: all, until
    /// `clear`) and with which code.
    reject_logons: Mutex<Option<(Option<u32>, i32)>>,
    shutdown_tx: watch::Sender<bool>,
    cmd_tx: mpsc::UnboundedSender<Cmd>,
    listen_keys: Mutex<HashSet<String>>,
    credentials: Option<Credentials>,
    counters: Counters,
    next_key: AtomicU64,
    /// The REST rate limits (weights, order counts, 429/418).
    meter: Mutex<Meter>,
    /// OKX and Kraken books served beside Binance's (`books`).
    books: crate::books::BookVenues,
    /// OKX order entry (`okx_orders`): `/api/v5/...` and `/ws/v5/private`.
    okx: Option<Arc<crate::okx_orders::OkxDesk>>,
    /// OKX's and Kraken's instrument metadata (`metadata`).
    metadata: Arc<crate::metadata::Served>,
}

impl Shared {
    fn venue(&self) -> MutexGuard<'_, Venue> {
        // A panic while holding the lock cannot leave the venue half-updated in a way that
        // matters more than stopping would: keep serving.
        self.venue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn meter(&self) -> MutexGuard<'_, Meter> {
        self.meter.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn listen_keys(&self) -> MutexGuard<'_, HashSet<String>> {
        self.listen_keys.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_reject_logons(&self) -> MutexGuard<'_, Option<(Option<u32>, i32)>> {
        self.reject_logons.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The code to refuse this `session.logon` with, by a `reject_logon` fault (counted).
    fn logon_rejection(&self) -> Option<i32> {
        let mut fault = self.lock_reject_logons();
        let (count, code) = (*fault)?;
        *fault = match count {
            Some(n) if n <= 1 => None,
            Some(n) => Some((Some(n - 1), code)),
            None => Some((None, code)),
        };
        Some(code)
    }

    fn publish_reports(&self, reports: &mut Vec<ExecutionReport>) {
        if reports.is_empty() {
            return;
        }
        // executionReports, or on USD-M the futures stream's events (see `futures_account`).
        for frame in self.venue().user_frames(reports) {
            // No receiver is not an error: nobody listens to the user stream.
            let _ = self.user_tx.send(Utf8Bytes::from(frame));
        }
    }

    fn report(&self) -> SimReport {
        let c = &self.counters;
        let v = self.venue().counters();
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SimReport {
            frames_replayed: get(&c.frames_replayed),
            frames_published: get(&c.frames_published),
            frames_sent: get(&c.frames_sent),
            diffs_skipped: get(&c.diffs_skipped),
            frames_duplicated: get(&c.frames_duplicated),
            malformed_sent: get(&c.malformed_sent),
            decode_errors: get(&c.decode_errors),
            ws_connections: get(&c.ws_connections),
            ws_api_logons: get(&c.ws_api_logons),
            ws_api_signed: get(&c.ws_api_signed),
            ws_api_unsigned: get(&c.ws_api_unsigned),
            ws_dropped: get(&c.ws_dropped),
            ws_lagged: get(&c.ws_lagged),
            http_requests: get(&c.http_requests),
            snapshots_served: v.snapshots_served,
            orders: v.orders,
            orders_rejected: v.orders_rejected,
            cancels: v.cancels,
            fills: v.fills,
            exec_reports: v.exec_reports,
            faults_applied: get(&c.faults_applied),
            replay_finished: c.replay_finished.load(Ordering::Relaxed),
        }
    }
}

/// One capture line, read ahead by the reader thread.
#[derive(Debug)]
struct Line {
    local_ns: Nanos,
    bytes: Vec<u8>,
}

pub(crate) fn run(
    config: Config,
    ws: StdListener,
    rest: StdListener,
    stop: Arc<AtomicBool>,
) -> Result<SimReport, SimError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(SimError::Runtime)?;
    let reader = FrameReader::open(&config.capture)?;
    let (line_tx, line_rx) = mpsc::channel::<Line>(READ_AHEAD);
    let reader_thread = std::thread::Builder::new()
        .name("sim-capture".into())
        .spawn(move || read_capture(reader, line_tx))
        .map_err(SimError::Runtime)?;
    let result = runtime.block_on(serve(config, ws, rest, line_rx, stop));
    drop(runtime);
    // The reader ends when the engine's receiver is gone (or at the end of the file).
    match reader_thread.join() {
        Ok(Ok(())) => {}
        Ok(Err(e)) if result.is_ok() => return Err(e),
        Ok(Err(_)) => {}
        Err(_) => return Err(SimError::Reader("the reader thread panicked".into())),
    }
    result
}

/// Reads the capture into the channel; stops early when the engine is gone.
fn read_capture(mut reader: FrameReader, tx: mpsc::Sender<Line>) -> Result<(), SimError> {
    while let Some(frame) = reader.next_frame() {
        let frame = frame?;
        let line = Line {
            local_ns: frame.local_ns,
            bytes: frame.bytes.to_vec(),
        };
        if tx.blocking_send(line).is_err() {
            break;
        }
    }
    Ok(())
}

async fn serve(
    config: Config,
    ws: StdListener,
    rest: StdListener,
    lines: mpsc::Receiver<Line>,
    stop: Arc<AtomicBool>,
) -> Result<SimReport, SimError> {
    let ws = TcpListener::from_std(ws).map_err(SimError::Runtime)?;
    let rest = TcpListener::from_std(rest).map_err(SimError::Runtime)?;
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let symbols: Vec<String> = config.exchange.instruments.keys().cloned().collect();
    let shared = Arc::new(Shared {
        exchange: config.exchange_name.clone(),
        venue: Mutex::new({
            let mut venue = Venue::new(config.exchange.market, config.exchange.instruments.iter());
            if let Some(sim) = &config.exchange.sim {
                venue.set_commission(CommissionSettings::from_manifest(sim));
            }
            if let Some(r) = &config.exchange.reconcile {
                venue.set_balances(
                    r.starting_balances
                        .iter()
                        .map(|(a, v)| (a.clone(), v.raw())),
                );
            }
            venue
        }),
        md_tx: broadcast::channel(MD_CAPACITY).0,
        user_tx: broadcast::channel(USER_CAPACITY).0,
        drop_tx: watch::channel(0).0,
        drop_md_tx: watch::channel(0).0,
        drop_user_tx: watch::channel(0).0,
        drop_ws_api_tx: watch::channel(0).0,
        refuse_ws_api: std::sync::atomic::AtomicBool::new(false),
        freeze_user_tx: watch::channel(0).0,
        expire_user_tx: watch::channel(0).0,
        refuse_listen_keys: std::sync::atomic::AtomicBool::new(false),
        reject_logons: Mutex::new(None),
        shutdown_tx: watch::channel(false).0,
        cmd_tx,
        listen_keys: Mutex::new(HashSet::new()),
        credentials: config.credentials.clone(),
        counters: Counters::default(),
        next_key: AtomicU64::new(1),
        meter: Mutex::new(Meter::new(bl::Limits::from_manifest(
            &config.exchange.rate_limits,
        ))),
        books: config.books.clone(),
        okx: config.okx.clone(),
        metadata: Arc::clone(&config.metadata),
    });
    let ws_task = tokio::spawn(accept_ws(Arc::clone(&shared), ws));
    let rest_task = tokio::spawn(accept_rest(Arc::clone(&shared), rest));
    shared.books.spawn();
    let mut engine = Engine {
        shared: Arc::clone(&shared),
        lines,
        cmds: cmd_rx,
        decoder: Decoder::with_symbols(&symbols),
        speed: config.speed,
        t0: Instant::now(),
        first_ns: None,
        offset: Duration::ZERO,
        stall_until: None,
        peeked: None,
        eof: false,
        pending: VecDeque::new(),
        latency_ns: i64::try_from(config.latency_us.saturating_mul(1_000)).unwrap_or(i64::MAX),
        configured_latency_ns: i64::try_from(config.latency_us.saturating_mul(1_000))
            .unwrap_or(i64::MAX),
        duplicate: 0,
        copies: 0,
        scheduled: {
            let mut f = config.faults.clone();
            f.sort_by_key(|f| f.at_frame);
            f.into()
        },
        skip_diffs: 0,
        cross_next: false,
        uncross_after: false,
        uncross_next: false,
        reorder_next: false,
        held: None,
        drop_at: None,
        published: 0,
        last_ts: 0,
        reports: Vec::new(),
        exit_at_end: config.exit_at_end,
    };
    engine.run(&stop).await;
    let _ = shared.shutdown_tx.send(true);
    tokio::time::sleep(CLOSE_GRACE).await;
    ws_task.abort();
    rest_task.abort();
    Ok(shared.report())
}

// ---------------------------------------------------------------------------------------------
// The engine

struct Engine {
    shared: Arc<Shared>,
    lines: mpsc::Receiver<Line>,
    cmds: mpsc::UnboundedReceiver<Cmd>,
    decoder: Decoder,
    speed: Speed,
    /// When the replay started.
    t0: Instant,
    /// `local_ns` of the first line.
    first_ns: Option<Nanos>,
    /// Added to the schedule by stalls.
    offset: Duration,
    stall_until: Option<Instant>,
    peeked: Option<Line>,
    eof: bool,
    /// Commands waiting for their latency, in arrival (= due) order, with the capture time
    /// at which they reach the matcher.
    pending: VecDeque<(Nanos, Cmd)>,
    /// `sim.latency_us` on the capture clock (or a `latency` fault's).
    latency_ns: Nanos,
    /// The manifest's `sim.latency_us` on the capture clock (`clear` restores it).
    configured_latency_ns: Nanos,
    /// A `duplicate` fault: market-data frames still to be repeated, and how often each.
    duplicate: u64,
    copies: u32,
    scheduled: VecDeque<ScheduledFault>,
    skip_diffs: u64,
    /// A `crossed` fault: the next depth diff gets a bid above every ask.
    cross_next: bool,
    /// `transient=1`: the diff after the crossed one removes that bid (`uncross_next`).
    uncross_after: bool,
    uncross_next: bool,
    /// A `reorder` fault: the next depth diff is held back and sent after the one after it.
    reorder_next: bool,
    held: Option<OutFrame>,
    /// Drop every connection once this many frames have been published.
    drop_at: Option<u64>,
    published: u64,
    /// The latest capture time applied (the matcher's clock).
    last_ts: Nanos,
    reports: Vec<ExecutionReport>,
    exit_at_end: bool,
}

enum Wake {
    Line(Option<Line>),
    Cmd(Option<Cmd>),
    Timer,
}

impl Engine {
    /// The wall time at which the schedule reaches capture time `local_ns` (`now` when the
    /// replay is not paced, or has not started).
    fn wall_at(&self, local_ns: Nanos, now: Instant) -> Instant {
        match (self.speed, self.first_ns) {
            (Speed::Max, _) | (_, None) => now,
            (Speed::Factor(speed), Some(first)) => {
                let elapsed = i128::from(local_ns.saturating_sub(first).max(0));
                let scaled = elapsed * i128::from(SCALE) / i128::from(speed.raw().max(1));
                let scaled = u64::try_from(scaled).unwrap_or(u64::MAX);
                self.t0 + self.offset + Duration::from_nanos(scaled)
            }
        }
    }

    /// When a line recorded at `local_ns` is due.
    fn due(&self, local_ns: Nanos, now: Instant) -> Instant {
        let base = self.wall_at(local_ns, now);
        match self.stall_until {
            Some(until) if until > base => until,
            _ => base,
        }
    }

    /// The capture time now (the matcher's clock for orders): the schedule run backwards,
    /// never before the last applied line.
    fn capture_now(&self) -> Nanos {
        let mapped = match (self.speed, self.first_ns) {
            (Speed::Factor(speed), Some(first)) => {
                let wall = Instant::now().saturating_duration_since(self.t0 + self.offset);
                let scaled = i128::try_from(wall.as_nanos()).unwrap_or(i128::MAX / 4)
                    * i128::from(speed.raw())
                    / i128::from(SCALE);
                first.saturating_add(i64::try_from(scaled).unwrap_or(i64::MAX / 2))
            }
            _ => self.last_ts,
        };
        mapped.max(self.last_ts)
    }

    async fn run(&mut self, stop: &AtomicBool) {
        let mut poll = tokio::time::interval(STOP_POLL);
        let far = Duration::from_secs(3600);
        loop {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            while let Ok(cmd) = self.cmds.try_recv() {
                self.take_cmd(cmd);
            }
            if self.peeked.is_none() && !self.eof {
                match self.lines.try_recv() {
                    Ok(line) => self.peeked = Some(line),
                    Err(mpsc::error::TryRecvError::Disconnected) => self.end_of_capture(),
                    Err(mpsc::error::TryRecvError::Empty) => {}
                }
            }
            let now = Instant::now();
            let frame_due = self.peeked.as_ref().map(|l| self.due(l.local_ns, now));
            // A request reaches the matcher at its capture time: after the frames recorded
            // before it, before the frames recorded at or after it (as in backtests).
            let cmd_due = match (self.pending.front(), &self.peeked) {
                (Some((at, _)), Some(line)) if line.local_ns < *at => None,
                (Some((at, _)), _) => Some(self.wall_at(*at, now)),
                (None, _) => None,
            };
            if cmd_due.is_some_and(|due| due <= now) {
                if let Some((at, cmd)) = self.pending.pop_front() {
                    self.execute(at, cmd);
                }
                continue;
            }
            if let Some(due) = frame_due {
                if due <= now {
                    if self.speed == Speed::Max && self.shared.md_tx.len() > MD_HIGH_WATER {
                        // Backpressure: let the connections catch up.
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        continue;
                    }
                    if let Some(line) = self.peeked.take() {
                        self.replay(line);
                    }
                    // Let the servers run between frames (one thread for everything).
                    tokio::task::yield_now().await;
                    continue;
                }
            }
            if self.eof && self.peeked.is_none() && self.pending.is_empty() && self.exit_at_end {
                return;
            }
            let wake_at = [frame_due, cmd_due]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(now + far);
            let need_line = self.peeked.is_none() && !self.eof;
            let wake = tokio::select! {
                cmd = self.cmds.recv() => Wake::Cmd(cmd),
                line = self.lines.recv(), if need_line => Wake::Line(line),
                _ = tokio::time::sleep_until(wake_at) => Wake::Timer,
                _ = poll.tick() => Wake::Timer,
            };
            match wake {
                Wake::Cmd(Some(cmd)) => self.take_cmd(cmd),
                // The servers hold senders: this does not happen while they run.
                Wake::Cmd(None) => return,
                Wake::Line(Some(line)) => self.peeked = Some(line),
                Wake::Line(None) => self.end_of_capture(),
                Wake::Timer => {}
            }
        }
    }

    fn end_of_capture(&mut self) {
        self.eof = true;
        self.shared
            .counters
            .replay_finished
            .store(true, Ordering::Relaxed);
    }

    /// Faults apply at once; order entry waits for its latency, on the capture clock.
    fn take_cmd(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Fault(fault, ack) => {
                self.apply_fault(&fault);
                let _ = ack.send(());
            }
            cmd => {
                let at = self.capture_now().saturating_add(self.latency_ns);
                self.pending.push_back((at, cmd));
            }
        }
    }

    /// Runs a request at capture time `at`.
    fn execute(&mut self, at: Nanos, cmd: Cmd) {
        let ts = at.max(self.last_ts);
        let shared = Arc::clone(&self.shared);
        let mut venue = shared.venue();
        let (reply, result) = match cmd {
            Cmd::Order(order, reply) => (reply, venue.new_order(ts, &order, &mut self.reports)),
            Cmd::Cancel(cancel, reply) => (reply, venue.cancel(ts, &cancel, &mut self.reports)),
            Cmd::CancelAll(cancel, reply) => {
                (reply, venue.cancel_all(ts, &cancel, &mut self.reports))
            }
            Cmd::Futures(cmd, reply) => (
                reply,
                futures::execute(&mut venue, ts, cmd, &mut self.reports),
            ),
            Cmd::Fault(fault, ack) => {
                drop(venue);
                self.apply_fault(&fault);
                let _ = ack.send(());
                return;
            }
        };
        drop(venue);
        self.last_ts = ts;
        // Reports first: Binance's user stream usually beats the REST answer.
        shared.publish_reports(&mut self.reports);
        let _ = reply.send(result);
    }

    fn apply_fault(&mut self, fault: &Fault) {
        bump(&self.shared.counters.faults_applied);
        match *fault {
            Fault::Drop { after_frames: 0 } => self.drop_all(),
            Fault::Drop { after_frames } => self.drop_at = Some(self.published + after_frames),
            Fault::DropMarket => self.shared.drop_md_tx.send_modify(|g| *g += 1),
            Fault::DropUser => {
                self.shared
                    .refuse_listen_keys
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                self.shared.drop_user_tx.send_modify(|g| *g += 1);
            }
            Fault::DropWsApi => {
                self.shared
                    .refuse_ws_api
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                self.shared.drop_ws_api_tx.send_modify(|g| *g += 1);
            }
            Fault::RejectLogon { count, code } => {
                *self.shared.lock_reject_logons() = Some((count, code));
            }
            Fault::FreezeUser => self.shared.freeze_user_tx.send_modify(|g| *g += 1),
            Fault::ListenKeyExpired => self.shared.expire_user_tx.send_modify(|g| *g += 1),
            Fault::Crossed { transient } => {
                self.cross_next = true;
                self.uncross_after = transient;
            }
            Fault::Reorder => self.reorder_next = true,
            Fault::Gap { count } => self.skip_diffs += u64::from(count),
            Fault::Malformed => {
                // A frame cut in the middle of its data, on every connection.
                let text = "{\"stream\":\"malformed\",\"data\":{\"e\":\"depthUpdate\",\"E\":17231";
                let frame = OutFrame {
                    stream: "".into(),
                    combined: Utf8Bytes::from(text),
                    raw: Utf8Bytes::from(&text[text.len() - 22..]),
                    drop: false,
                };
                bump(&self.shared.counters.malformed_sent);
                let _ = self.shared.md_tx.send(Arc::new(frame));
            }
            Fault::Stall { ms } => {
                let d = Duration::from_millis(ms);
                let until = Instant::now() + d;
                self.stall_until = Some(self.stall_until.map_or(until, |u| u.max(until)));
                self.offset += d;
            }
            Fault::Latency { ms } => {
                self.latency_ns = i64::try_from(ms.saturating_mul(1_000_000)).unwrap_or(i64::MAX);
            }
            Fault::Duplicate { count, copies } => {
                self.duplicate = count;
                self.copies = copies;
            }
            Fault::Fee { bps } => self.shared.venue().set_fee_surcharge_bps(bps),
            Fault::Slippage { bps } => self.shared.venue().set_slippage_bps(bps),
            Fault::RejectOrders { count, code } => {
                self.shared.venue().set_reject(Some(RejectFault {
                    remaining: count,
                    code,
                }))
            }
            Fault::Commission { asset, bnb_balance } => {
                let mut venue = self.shared.venue();
                let mut c = venue.commission();
                c.asset = asset;
                if let Some(b) = bnb_balance {
                    c.bnb_balance = b;
                }
                venue.set_commission(c);
            }
            Fault::RateLimit(r) => self.shared.meter().apply(wall_ms(), &r),
            Fault::Funding { rate } => futures::fund(&self.shared, rate),
            Fault::Mark { ref symbol, offset } => {
                if let Some(f) = self.shared.venue().futures_mut() {
                    f.set_mark_offset(symbol, offset);
                }
            }
            Fault::Position {
                ref symbol,
                side,
                qty,
                price,
            } => {
                if let Some(f) = self.shared.venue().futures_mut() {
                    f.trade_elsewhere(symbol, side, rt_core::Price(price), qty);
                }
            }
            Fault::Ban { s } => self
                .shared
                .meter()
                .ban(wall_ms(), s.map(|s| s.saturating_mul(1000))),
            Fault::Balance { ref asset, delta } => self.shared.venue().adjust_balance(asset, delta),
            Fault::Filters {
                ref symbol,
                tick_size,
                step_size,
                min_notional,
            } => {
                // The route refused a symbol the venue does not list.
                let _ = self.shared.venue().set_served_filters(
                    symbol,
                    tick_size,
                    step_size,
                    min_notional,
                );
            }
            Fault::Clear => {
                self.shared.meter().clear();
                *self.shared.lock_reject_logons() = None;
                self.shared.venue().set_reject(None);
                self.shared
                    .refuse_ws_api
                    .store(false, std::sync::atomic::Ordering::SeqCst);
                self.shared
                    .refuse_listen_keys
                    .store(false, std::sync::atomic::Ordering::SeqCst);
                self.skip_diffs = 0;
                self.drop_at = None;
                self.stall_until = None;
                self.latency_ns = self.configured_latency_ns;
                self.duplicate = 0;
                self.shared.venue().set_fee_surcharge_bps(0);
                self.shared.venue().set_slippage_bps(0);
            }
        }
    }

    /// Publishes the in-order drop marker once `drop_at` frames have been published.
    fn drop_marker(&mut self) {
        if self.drop_at.is_some_and(|at| self.published >= at) {
            self.drop_at = None;
            let marker = OutFrame {
                stream: "".into(),
                combined: Utf8Bytes::from_static(""),
                raw: Utf8Bytes::from_static(""),
                drop: true,
            };
            let _ = self.shared.md_tx.send(Arc::new(marker));
        }
    }

    fn drop_all(&mut self) {
        self.shared.drop_tx.send_modify(|g| *g += 1);
    }

    /// Applies one capture line to the venue and publishes it.
    fn replay(&mut self, line: Line) {
        let shared = Arc::clone(&self.shared);
        let counters = &shared.counters;
        bump(&counters.frames_replayed);
        if self.first_ns.is_none() {
            self.first_ns = Some(line.local_ns);
            // The schedule starts with the first line.
            self.t0 = Instant::now();
        }
        let replayed = counters.frames_replayed.load(Ordering::Relaxed);
        while self
            .scheduled
            .front()
            .is_some_and(|f| f.at_frame < replayed)
        {
            if let Some(f) = self.scheduled.pop_front() {
                match f.fault {
                    // In order with the frames: the ones before it are all delivered.
                    Fault::Drop { after_frames: 0 } => {
                        bump(&counters.faults_applied);
                        self.drop_at = Some(self.published);
                    }
                    other => self.apply_fault(&other),
                }
            }
        }
        self.drop_marker();
        let ts = line.local_ns.max(self.last_ts);
        self.last_ts = ts;
        let bytes = trim(&line.bytes);
        let mut venue = shared.venue();
        let mut is_depth = false;
        let mut is_snapshot = false;
        match self.decoder.decode_in_place(bytes, line.local_ns) {
            Ok(true) => {
                if let Some(event) = self.decoder.event() {
                    is_depth = matches!(event, MarketEvent::Depth(_));
                    is_snapshot = matches!(event, MarketEvent::Snapshot(_));
                    venue.on_event(ts, &event, &mut self.reports);
                }
            }
            Ok(false) => {}
            Err(_) => bump(&counters.decode_errors),
        }
        // Published while the venue is locked: a depth request sees the book and the stream
        // at the same position.
        if !is_snapshot {
            if is_depth && self.skip_diffs > 0 {
                self.skip_diffs -= 1;
                bump(&counters.diffs_skipped);
            } else {
                let mut bytes = line.bytes;
                if is_depth && std::mem::take(&mut self.uncross_next) {
                    bytes = with_bid(&bytes, UNCROSS_LEVEL);
                }
                if is_depth && std::mem::take(&mut self.cross_next) {
                    bytes = with_bid(&bytes, CROSS_LEVEL);
                    self.uncross_next = std::mem::take(&mut self.uncross_after);
                }
                if let Some(frame) = out_frame(bytes) {
                    if is_depth && std::mem::take(&mut self.reorder_next) {
                        self.held = Some(frame);
                    } else {
                        let held = if is_depth { self.held.take() } else { None };
                        for frame in std::iter::once(frame).chain(held) {
                            let frame = Arc::new(frame);
                            // A `duplicate` fault: the same frame again, right after.
                            let times = if self.duplicate > 0 {
                                self.duplicate -= 1;
                                counters
                                    .frames_duplicated
                                    .fetch_add(u64::from(self.copies), Ordering::Relaxed);
                                1 + self.copies
                            } else {
                                1
                            };
                            for _ in 0..times {
                                bump(&counters.frames_published);
                                self.published += 1;
                                let _ = shared.md_tx.send(Arc::clone(&frame));
                            }
                        }
                    }
                }
            }
        }
        // USD-M: each symbol's mark price, once a second of capture time.
        for frame in venue.mark_frames(ts) {
            if let Some(frame) = out_frame(frame.into_bytes()) {
                bump(&counters.frames_published);
                self.published += 1;
                let _ = shared.md_tx.send(Arc::new(frame));
            }
        }
        drop(venue);
        shared.publish_reports(&mut self.reports);
        self.drop_marker();
    }
}

/// The extra bid of a `crossed` fault (far above any ask) and the level removing it again.
const CROSS_LEVEL: &[u8] = b"[\"9999999.00\",\"1.00000000\"]";
const UNCROSS_LEVEL: &[u8] = b"[\"9999999.00\",\"0.00000000\"]";

/// A recorded depth diff with one more bid level, first (a `crossed` fault and its undoing).
fn with_bid(bytes: &[u8], level: &[u8]) -> Vec<u8> {
    const BIDS: &[u8] = b"\"b\":[";
    let Some(at) = bytes.windows(BIDS.len()).position(|w| w == BIDS) else {
        return bytes.to_vec();
    };
    let at = at + BIDS.len();
    let mut out = Vec::with_capacity(bytes.len() + level.len() + 1);
    out.extend_from_slice(&bytes[..at]);
    out.extend_from_slice(level);
    if bytes.get(at) != Some(&b']') {
        out.push(b',');
    }
    out.extend_from_slice(&bytes[at..]);
    out
}

fn trim(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    &bytes[..end]
}

/// The stream name and both forms of a combined-stream frame; `None` for anything else.
fn out_frame(mut bytes: Vec<u8>) -> Option<OutFrame> {
    let len = trim(&bytes).len();
    bytes.truncate(len);
    let (stream, data) = envelope(&bytes)?;
    let stream: Box<str> = std::str::from_utf8(&bytes[stream.0..stream.1]).ok()?.into();
    let all = Bytes::from(bytes);
    let raw = Utf8Bytes::try_from(all.slice(data.0..data.1)).ok()?;
    let combined = Utf8Bytes::try_from(all).ok()?;
    Some(OutFrame {
        stream,
        combined,
        raw,
        drop: false,
    })
}

/// Byte ranges of the stream name and of the data object in
/// `{"stream":"<name>","data":{...}}` (the recorder's layout).
fn envelope(bytes: &[u8]) -> Option<((usize, usize), (usize, usize))> {
    const STREAM: &[u8] = b"\"stream\":\"";
    const DATA: &[u8] = b"\"data\":";
    let find = |needle: &[u8], from: usize| {
        bytes
            .get(from..)?
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|p| p + from)
    };
    let s = find(STREAM, 0)? + STREAM.len();
    let s_end = s + bytes.get(s..)?.iter().position(|&b| b == b'"')?;
    let d = find(DATA, s_end)? + DATA.len();
    let d = d + bytes
        .get(d..)?
        .iter()
        .position(|b| !b.is_ascii_whitespace())?;
    // The data object runs to the envelope's closing brace.
    let close = bytes.iter().rposition(|&b| b == b'}')?;
    (close > d).then_some(((s, s_end), (d, close)))
}

// ---------------------------------------------------------------------------------------------
// REST

async fn accept_rest(shared: Arc<Shared>, listener: TcpListener) {
    let mut shutdown = shared.shutdown_tx.subscribe();
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(conn) => conn,
                Err(_) => continue,
            },
            _ = shutdown.changed() => return,
        };
        let _ = stream.set_nodelay(true);
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let shared = Arc::clone(&shared);
                async move { Ok::<_, Infallible>(handle(&shared, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

type Reply = Response<Full<Bytes>>;

fn json_reply(status: StatusCode, body: String) -> Reply {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json;charset=UTF-8"),
    );
    resp
}

fn ok(body: String) -> Reply {
    json_reply(StatusCode::OK, body)
}

fn api_error(e: &ApiError) -> Reply {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    json_reply(status, e.to_json())
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

async fn handle(shared: &Shared, req: Request<Incoming>) -> Reply {
    bump(&shared.counters.http_requests);
    // OKX's and Kraken's public metadata, in their own formats (not weighed by Binance's
    // limits).
    if let Some((status, body)) = shared.metadata.answer(
        req.method().as_str(),
        req.uri().path(),
        req.uri().query().unwrap_or(""),
    ) {
        return json_reply(StatusCode::from_u16(status).unwrap_or(StatusCode::OK), body);
    }
    if let (Some(desk), true) = (&shared.okx, req.uri().path().starts_with("/api/v5/")) {
        return okx_request(desk, req).await;
    }
    // Venue requests are weighed (the sim's admin endpoints are not).
    let verdict = (!req.uri().path().starts_with("/sim/")).then(|| {
        shared.meter().admit(
            wall_ms(),
            req.method().as_str(),
            req.uri().path(),
            req.uri().query().unwrap_or(""),
        )
    });
    let mut reply = match verdict {
        Some(Verdict::Refuse {
            status,
            ref error,
            retry_after_s,
            usage,
        }) => {
            let mut reply = json_reply(
                StatusCode::from_u16(status).unwrap_or(StatusCode::TOO_MANY_REQUESTS),
                error.to_json(),
            );
            set_header(&mut reply, bl::RETRY_AFTER, retry_after_s);
            set_header(&mut reply, bl::USED_WEIGHT_1M, usage.weight_1m);
            return reply;
        }
        _ => {
            let mut not_found = false;
            match route(shared, req, &mut not_found).await {
                Ok(body) => ok(body),
                // No such endpoint: HTTP 404, as Binance answers.
                Err(e) if not_found => json_reply(StatusCode::NOT_FOUND, e.to_json()),
                Err(e) => api_error(&e),
            }
        }
    };
    if let Some(Verdict::Pass { usage, order }) = verdict {
        set_header(&mut reply, bl::USED_WEIGHT_1M, usage.weight_1m);
        if order {
            set_header(&mut reply, bl::ORDER_COUNT_10S, usage.orders_10s);
            set_header(&mut reply, bl::ORDER_COUNT_1D, usage.orders_1d);
        }
    }
    reply
}

/// An OKX request, answered by the OKX desk (OKX's own format; not weighed by Binance's
/// limits).
async fn okx_request(desk: &crate::okx_orders::OkxDesk, req: Request<Incoming>) -> Reply {
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let headers = req.headers().clone();
    let (status, body) = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(collected) => {
            let bytes = collected.to_bytes();
            let body = String::from_utf8_lossy(&bytes);
            let header = |name: &str| -> Option<String> {
                Some(headers.get(name)?.to_str().ok()?.to_owned())
            };
            desk.handle(&method, &path, &query, &body, &header)
        }
        Err(_) => (
            400,
            rt_venues::okx::execution::answer(50000, "Body cannot be empty", Vec::new()),
        ),
    };
    json_reply(StatusCode::from_u16(status).unwrap_or(StatusCode::OK), body)
}

fn set_header(reply: &mut Reply, name: &'static str, value: impl Into<u64>) {
    let value: u64 = value.into();
    reply.headers_mut().insert(
        hyper::header::HeaderName::from_static(name),
        hyper::header::HeaderValue::from(value),
    );
}

async fn route(
    shared: &Shared,
    req: Request<Incoming>,
    not_found: &mut bool,
) -> Result<String, ApiError> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let api_key = req
        .headers()
        .get(bo::API_KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Err(ApiError::new(-1000, "the request body could not be read")),
    };
    let body = std::str::from_utf8(&body)
        .map_err(|_| ApiError::new(-1100, "Illegal characters found in the request body."))?;
    let p = path.as_str();
    if p.starts_with("/fapi/") {
        return futures::route(
            shared,
            &method,
            p,
            &query,
            body,
            api_key.as_deref(),
            not_found,
        )
        .await;
    }
    match (&method, p) {
        (&Method::GET, "/api/v3/ping") => Ok("{}".into()),
        (&Method::GET, "/api/v3/time") => Ok(format!("{{\"serverTime\":{}}}", wall_ms())),
        (&Method::GET, "/api/v3/depth") => depth(shared, &query),
        (&Method::GET, rt_venues::binance_account::EXCHANGE_INFO_PATH) => {
            let mut p = Params::parse(&query).map_err(|e| e.to_api_error())?;
            let symbol = p.take("symbol").map(|s| s.into_owned());
            p.finish().map_err(|e| e.to_api_error())?;
            shared.venue().exchange_info(symbol.as_deref(), wall_ms())
        }
        (&Method::GET, rt_venues::binance_account::ACCOUNT_PATH) => {
            let params = authorize(shared, api_key.as_deref(), &query, body)?;
            let q = bo::AccountQuery::parse(&params).map_err(|e| e.to_api_error())?;
            q.timing.check(wall_ms()).map_err(|e| e.to_api_error())?;
            Ok(shared.venue().account(wall_ms()))
        }
        (&Method::POST, bo::ORDER_PATH) => {
            let params = authorize(shared, api_key.as_deref(), &query, body)?;
            let order = NewOrder::parse(&params).map_err(|e| e.to_api_error())?;
            order
                .timing
                .check(wall_ms())
                .map_err(|e| e.to_api_error())?;
            engine_call(shared, |tx| Cmd::Order(order, tx)).await
        }
        (&Method::DELETE, bo::ORDER_PATH) => {
            let params = authorize(shared, api_key.as_deref(), &query, body)?;
            let cancel = CancelOrder::parse(&params).map_err(|e| e.to_api_error())?;
            cancel
                .timing
                .check(wall_ms())
                .map_err(|e| e.to_api_error())?;
            engine_call(shared, |tx| Cmd::Cancel(cancel, tx)).await
        }
        (&Method::DELETE, bo::OPEN_ORDERS_PATH) => {
            let params = authorize(shared, api_key.as_deref(), &query, body)?;
            let cancel = CancelOpenOrders::parse(&params).map_err(|e| e.to_api_error())?;
            cancel
                .timing
                .check(wall_ms())
                .map_err(|e| e.to_api_error())?;
            engine_call(shared, |tx| Cmd::CancelAll(cancel, tx)).await
        }
        (&Method::GET, bo::OPEN_ORDERS_PATH) => {
            let params = authorize(shared, api_key.as_deref(), &query, body)?;
            let q = OpenOrdersQuery::parse(&params).map_err(|e| e.to_api_error())?;
            q.timing.check(wall_ms()).map_err(|e| e.to_api_error())?;
            shared.venue().open_orders(q.symbol.as_deref())
        }
        (&Method::GET, bo::ORDER_PATH) => {
            let params = authorize(shared, api_key.as_deref(), &query, body)?;
            let q = QueryOrder::parse(&params).map_err(|e| e.to_api_error())?;
            q.timing.check(wall_ms()).map_err(|e| e.to_api_error())?;
            shared.venue().query_order(&q)
        }
        (&Method::GET, bo::MY_TRADES_PATH) => {
            let params = authorize(shared, api_key.as_deref(), &query, body)?;
            let q = MyTradesQuery::parse(&params).map_err(|e| e.to_api_error())?;
            q.timing.check(wall_ms()).map_err(|e| e.to_api_error())?;
            shared.venue().my_trades(&q)
        }
        (&Method::POST, bo::USER_DATA_STREAM_PATH) => open_listen_key(shared, api_key.as_deref()),
        (&Method::PUT | &Method::DELETE, bo::USER_DATA_STREAM_PATH) => {
            check_api_key(shared, api_key.as_deref())?;
            let joined = [query.as_str(), body].join("&");
            let mut params = Params::parse(&joined).map_err(|e| e.to_api_error())?;
            let key = params
                .take("listenKey")
                .ok_or_else(|| bo::OrderError::Missing("listenKey").to_api_error())?;
            let mut keys = shared.listen_keys();
            let known = if method == Method::DELETE {
                keys.remove(key.as_ref())
            } else {
                keys.contains(key.as_ref())
            };
            if known {
                Ok("{}".into())
            } else {
                Err(ApiError::new(-1125, "This listenKey does not exist."))
            }
        }
        (&Method::POST, "/sim/okx/fault") => match &shared.okx {
            Some(desk) => desk.fault(&query).map_err(|e| ApiError::new(-1100, e)),
            None => Err(ApiError::new(-1100, "the sim serves no OKX order entry")),
        },
        (&Method::GET, "/sim/okx/status") => match &shared.okx {
            Some(desk) => Ok(desk.status()),
            None => Err(ApiError::new(-1100, "the sim serves no OKX order entry")),
        },
        (&Method::POST, "/sim/fault") => {
            let fault = Fault::parse(&query).map_err(|e| ApiError::new(-1100, e.to_string()))?;
            if let Fault::Filters { symbol, .. } = &fault {
                if !shared.venue().symbols().any(|s| s == symbol) {
                    return Err(ApiError::new(-1121, format!("Invalid symbol '{symbol}'.")));
                }
            }
            let (tx, rx) = oneshot::channel();
            let text = fault.to_string();
            shared
                .cmd_tx
                .send(Cmd::Fault(fault, tx))
                .map_err(|_| stopping())?;
            rx.await.map_err(|_| stopping())?;
            Ok(format!("{{\"applied\":\"{text}\"}}"))
        }
        (&Method::GET, "/sim/status") => Ok(status_json(shared)),
        (&Method::POST, "/sim/books/fault") => shared
            .books
            .fault(&query)
            .map_err(|e| ApiError::new(-1100, e)),
        (&Method::GET, "/sim/books/status") => Ok(shared.books.status()),
        (&Method::POST, "/sim/metadata/fault") => shared
            .metadata
            .fault(&query)
            .map_err(|e| ApiError::new(-1100, e)),
        _ => {
            *not_found = true;
            Err(ApiError::new(
                -1000,
                format!("no such endpoint: {method} {path} (the simulator serves Binance Spot's order entry, depth and user data stream)"),
            ))
        }
    }
}

fn stopping() -> ApiError {
    ApiError::new(-1001, "Internal error; the simulator is stopping.")
}

/// Sends a command to the engine (which applies the order latency) and waits for its answer.
async fn engine_call(
    shared: &Shared,
    make: impl FnOnce(oneshot::Sender<Result<String, ApiError>>) -> Cmd,
) -> Result<String, ApiError> {
    let (tx, rx) = oneshot::channel();
    shared.cmd_tx.send(make(tx)).map_err(|_| stopping())?;
    rx.await.map_err(|_| stopping())?
}

fn depth(shared: &Shared, query: &str) -> Result<String, ApiError> {
    let mut p = Params::parse(query).map_err(|e| e.to_api_error())?;
    let symbol = p
        .take("symbol")
        .ok_or_else(|| bo::OrderError::Missing("symbol").to_api_error())?;
    let limit = match p.take("limit") {
        None => DEFAULT_DEPTH_LIMIT,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=MAX_DEPTH_LIMIT).contains(&n) => n,
            _ => {
                return Err(ApiError::new(
                    -1100,
                    format!("Illegal characters found in parameter 'limit'; legal range is 1-{MAX_DEPTH_LIMIT}, got {l:?}."),
                ))
            }
        },
    };
    p.finish().map_err(|e| e.to_api_error())?;
    let symbol = symbol.into_owned();
    shared.venue().depth(&symbol, limit)
}

fn check_api_key(shared: &Shared, key: Option<&str>) -> Result<(), ApiError> {
    let Some(creds) = &shared.credentials else {
        return Ok(());
    };
    match key {
        None => Err(ApiError::new(-2014, "API-key format invalid.")),
        // Compared in full: key equality is not secret (the key travels in clear).
        Some(k) if k == creds.api_key => Ok(()),
        Some(_) => Err(ApiError::new(
            -2015,
            "Invalid API-key, IP, or permissions for action.",
        )),
    }
}

/// Checks the key and the signature (when the manifest has credentials) and returns the
/// request's parameters without the signature.
fn authorize(
    shared: &Shared,
    api_key: Option<&str>,
    query: &str,
    body: &str,
) -> Result<String, ApiError> {
    let signed = SignedParams::split(query, body).map_err(|e| e.to_api_error())?;
    if let Some(creds) = &shared.credentials {
        check_api_key(shared, api_key)?;
        signed.verify(&creds.key).map_err(|e| match e {
            bo::OrderError::BadSignature => {
                ApiError::new(-1022, "Signature for this request is not valid.")
            }
            other => other.to_api_error(),
        })?;
    }
    Ok(signed.params)
}

/// A new listen key (`POST` of the user data stream's path, spot and futures alike).
fn open_listen_key(shared: &Shared, api_key: Option<&str>) -> Result<String, ApiError> {
    check_api_key(shared, api_key)?;
    if shared
        .refuse_listen_keys
        .load(std::sync::atomic::Ordering::SeqCst)
    {
        return Err(ApiError::new(
            -1001,
            "Internal error; unable to process your request. Please try again.",
        ));
    }
    let key = new_listen_key(shared);
    shared.listen_keys().insert(key.clone());
    Ok(bo::format_listen_key(&key))
}

fn new_listen_key(shared: &Shared) -> String {
    let n = shared.next_key.fetch_add(1, Ordering::Relaxed);
    let mut h = Sha256::new();
    h.update(shared.exchange.as_bytes());
    h.update(n.to_le_bytes());
    h.update(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
            .to_le_bytes(),
    );
    // 60 characters, like Binance's.
    let mut key = hex::encode(h.finalize());
    key.truncate(60);
    key
}

fn status_json(shared: &Shared) -> String {
    let r = shared.report();
    let reject = shared.venue().reject().cloned();
    let (counts, usage, limits) = {
        let mut m = shared.meter();
        (m.counts(), m.usage(wall_ms()), m.limits())
    };
    let limits = format!(
        ",\"api_requests\":{},\"rate_limited\":{},\"banned\":{},\"used_weight_1m\":{},\
         \"order_count_10s\":{},\"order_count_1d\":{},\"weight_limit\":{},\
         \"orders_10s_limit\":{},\"orders_1d_limit\":{},\"resumed_after_429_ms\":{}}}",
        counts.api_requests,
        counts.rate_limited,
        counts.banned,
        usage.weight_1m,
        usage.orders_10s,
        usage.orders_1d,
        limits.weight_per_minute,
        limits.orders_per_10s,
        limits.orders_per_day,
        counts
            .resumed_after_429_ms
            .map_or_else(|| "null".to_owned(), |ms| ms.to_string()),
    );
    let mut text = format!(
        "{{\"exchange\":\"{}\",\"frames_replayed\":{},\"frames_published\":{},\"frames_sent\":{},\
         \"diffs_skipped\":{},\"malformed_sent\":{},\"decode_errors\":{},\"ws_connections\":{},\
         \"ws_dropped\":{},\"ws_lagged\":{},\"http_requests\":{},\"snapshots_served\":{},\
         \"orders\":{},\"orders_rejected\":{},\"cancels\":{},\"fills\":{},\"exec_reports\":{},\
         \"faults_applied\":{},\"replay_finished\":{},\"rejecting_orders\":{},\
         \"frames_duplicated\":{},\"ws_api_logons\":{},\"ws_api_signed\":{},\
         \"ws_api_unsigned\":{}}}",
        shared.exchange,
        r.frames_replayed,
        r.frames_published,
        r.frames_sent,
        r.diffs_skipped,
        r.malformed_sent,
        r.decode_errors,
        r.ws_connections,
        r.ws_dropped,
        r.ws_lagged,
        r.http_requests,
        r.snapshots_served,
        r.orders,
        r.orders_rejected,
        r.cancels,
        r.fills,
        r.exec_reports,
        r.faults_applied,
        r.replay_finished,
        reject.is_some(),
        r.frames_duplicated,
        r.ws_api_logons,
        r.ws_api_signed,
        r.ws_api_unsigned,
    );
    // The meter's figures go inside the same object.
    text.pop();
    text.push_str(&limits);
    text
}

// ---------------------------------------------------------------------------------------------
// WebSocket

/// What a connection receives.
#[derive(Debug, Default)]
struct Subscription {
    /// Combined-stream envelope (`/stream`), or raw events (`/ws`).
    combined: bool,
    /// Market streams (see [`stream_name`]).
    streams: Vec<String>,
    /// Listen keys (user data).
    user: Vec<String>,
}

impl Subscription {
    fn add(&mut self, name: &str, shared: &Shared) {
        if shared.listen_keys().contains(name) {
            if !self.user.iter().any(|k| k == name) {
                self.user.push(name.to_owned());
            }
        } else {
            let name = stream_name(name);
            if !self.streams.contains(&name) {
                self.streams.push(name);
            }
        }
    }

    fn remove(&mut self, name: &str) {
        let normal = stream_name(name);
        self.streams.retain(|s| *s != normal);
        self.user.retain(|k| k != name);
    }
}

/// A stream name as Binance spells it: the symbol in lower case, the channel as given
/// (`BTCUSDT@bookTicker` -> `btcusdt@bookTicker`).
fn stream_name(name: &str) -> String {
    match name.split_once('@') {
        Some((symbol, channel)) => format!("{}@{channel}", symbol.to_ascii_lowercase()),
        None => name.to_ascii_lowercase(),
    }
}

/// `/stream?streams=a/b`, `/stream`, `/ws/<name>`, `/ws`.
fn parse_ws_path(uri: &http::Uri, shared: &Shared) -> Result<Subscription, String> {
    let mut sub = Subscription::default();
    let path = uri.path();
    if path == "/stream" || path == "/stream/" {
        sub.combined = true;
        for pair in uri.query().unwrap_or("").split('&') {
            if let Some(list) = pair.strip_prefix("streams=") {
                for name in list.split('/').filter(|n| !n.is_empty()) {
                    sub.add(name, shared);
                }
            }
        }
    } else if path == "/ws" || path == "/ws/" {
    } else if let Some(rest) = path.strip_prefix("/ws/") {
        for name in rest.split('/').filter(|n| !n.is_empty()) {
            sub.add(name, shared);
        }
    } else {
        return Err(format!(
            "no WebSocket endpoint at {path} (use /stream?streams=... or /ws/<stream>)"
        ));
    }
    Ok(sub)
}

async fn accept_ws(shared: Arc<Shared>, listener: TcpListener) {
    let mut shutdown = shared.shutdown_tx.subscribe();
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(conn) => conn,
                Err(_) => continue,
            },
            _ = shutdown.changed() => return,
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(ws_connection(Arc::clone(&shared), stream));
    }
}

// The handshake callback's error type is tungstenite's (an HTTP response).
#[allow(clippy::result_large_err)]
async fn ws_connection(shared: Arc<Shared>, stream: TcpStream) {
    let mut sub = None;
    // OKX's and Kraken's paths are served by `books`.
    let mut books = None;
    // OKX's private stream is served by `okx_orders`.
    let mut okx = None;
    // Binance's WebSocket API (order entry) is served by `ws_api`.
    let mut ws_api = false;
    let callback = |req: &WsRequest, resp| match shared.books.route(req.uri().path()) {
        _ if req.uri().path() == rt_venues::binance::ws_api::WS_API_PATH => {
            if shared.refuse_ws_api.load(Ordering::SeqCst) {
                // A `drop_ws_api` fault until `clear`.
                let mut err = ErrorResponse::new(Some("the WebSocket API is down".into()));
                *err.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
                return Err(err);
            }
            ws_api = true;
            Ok(resp)
        }
        _ if req.uri().path() == rt_venues::okx::execution::PRIVATE_PATH
            && shared.okx.is_some() =>
        {
            okx = shared.okx.clone();
            Ok(resp)
        }
        Some(venue) => {
            books = Some(venue);
            Ok(resp)
        }
        None => match parse_ws_path(req.uri(), &shared) {
            Ok(s) => {
                sub = Some(s);
                Ok(resp)
            }
            Err(msg) => {
                let mut err = ErrorResponse::new(Some(msg));
                *err.status_mut() = http::StatusCode::NOT_FOUND;
                Err(err)
            }
        },
    };
    let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
        return;
    };
    if let Some(venue) = books {
        return venue.serve(ws).await;
    }
    if let Some(desk) = okx {
        return desk.serve(ws).await;
    }
    if ws_api {
        return ws_api::serve(shared, ws).await;
    }
    let Some(mut sub) = sub else {
        return;
    };
    bump(&shared.counters.ws_connections);
    // Subscribed before anything else: frames from now on are this connection's.
    let mut md = shared.md_tx.subscribe();
    let mut user = shared.user_tx.subscribe();
    let mut drops = shared.drop_tx.subscribe();
    let mut md_drops = shared.drop_md_tx.subscribe();
    let mut user_drops = shared.drop_user_tx.subscribe();
    let mut user_freezes = shared.freeze_user_tx.subscribe();
    let mut user_expiries = shared.expire_user_tx.subscribe();
    // The listen key expired: no more events (pings are still answered).
    let mut expired = false;
    let user_conn = !sub.user.is_empty();
    // A connection that carries only a user data stream survives a `drop_market`.
    let market = !sub.streams.is_empty() || sub.user.is_empty();
    let mut shutdown = shared.shutdown_tx.subscribe();
    let (mut sink, mut incoming) = ws.split();
    loop {
        let out = tokio::select! {
            frame = md.recv() => match frame {
                Ok(f) if f.drop => {
                    bump(&shared.counters.ws_dropped);
                    return;
                }
                Ok(f) => {
                    let wanted = f.stream.is_empty()
                        || sub.streams.iter().any(|s| futures::serves(s, &f.stream));
                    if !wanted {
                        continue;
                    }
                    Message::Text(if sub.combined { f.combined.clone() } else { f.raw.clone() })
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    bump(&shared.counters.ws_lagged);
                    let _ = sink.close().await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            event = user.recv(), if !sub.user.is_empty() && !expired => match event {
                Ok(text) => {
                    if sub.combined {
                        // The envelope names the connection's (first) listen key.
                        let key = &sub.user[0];
                        let mut s = String::with_capacity(text.len() + key.len() + 24);
                        s.push_str("{\"stream\":\"");
                        s.push_str(key);
                        s.push_str("\",\"data\":");
                        s.push_str(text.as_str());
                        s.push('}');
                        Message::Text(Utf8Bytes::from(s))
                    } else {
                        Message::Text(text)
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    bump(&shared.counters.ws_lagged);
                    let _ = sink.close().await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = drops.changed() => {
                // No close frame: the connection just goes, as a network drop does.
                bump(&shared.counters.ws_dropped);
                return;
            }
            _ = md_drops.changed(), if market => {
                bump(&shared.counters.ws_dropped);
                return;
            }
            _ = user_drops.changed(), if user_conn => {
                bump(&shared.counters.ws_dropped);
                return;
            }
            _ = user_expiries.changed(), if user_conn && !expired => {
                expired = true;
                let ms = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis());
                let event = format!(
                    "{{\"e\":\"listenKeyExpired\",\"E\":{ms},\"listenKey\":\"{}\"}}",
                    sub.user[0]
                );
                Message::Text(Utf8Bytes::from(event))
            }
            _ = user_freezes.changed(), if user_conn => {
                // Half-open: nothing is read or written any more, and the socket stays open
                // (both halves are held) until the sim stops.
                let _ = shutdown.changed().await;
                return;
            }
            _ = shutdown.changed() => {
                let _ = sink.close().await;
                return;
            }
            msg = incoming.next() => match msg {
                Some(Ok(Message::Text(text))) => match control_reply(&text, &mut sub, &shared) {
                    Some(reply) => Message::Text(Utf8Bytes::from(reply)),
                    None => continue,
                },
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                // Pings are answered by tungstenite itself.
                Some(Ok(_)) => continue,
            },
        };
        if sink.send(out).await.is_err() {
            return;
        }
        bump(&shared.counters.frames_sent);
    }
}

/// Answers `SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS` as Binance does.
fn control_reply(text: &str, sub: &mut Subscription, shared: &Shared) -> Option<String> {
    let value: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(_) => return Some("{\"error\":{\"code\":3,\"msg\":\"Invalid JSON\"}}".into()),
    };
    let id = value.get("id").cloned().unwrap_or(serde_json::Value::Null);
    let params: Vec<String> = value
        .get("params")
        .and_then(|p| p.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let result = match value.get("method").and_then(|m| m.as_str()) {
        Some("SUBSCRIBE") => {
            for p in &params {
                sub.add(p, shared);
            }
            serde_json::Value::Null
        }
        Some("UNSUBSCRIBE") => {
            for p in &params {
                sub.remove(p);
            }
            serde_json::Value::Null
        }
        Some("LIST_SUBSCRIPTIONS") => serde_json::Value::from(
            sub.streams
                .iter()
                .chain(&sub.user)
                .cloned()
                .collect::<Vec<_>>(),
        ),
        _ => {
            return Some(
                serde_json::json!({"error": {"code": 2, "msg": "Invalid request: unknown method"}, "id": id})
                    .to_string(),
            )
        }
    };
    Some(serde_json::json!({"result": result, "id": id}).to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn envelopes_split_into_stream_and_data() {
        let frame = br#"{"stream":"btcusdt@trade","data":{"e":"trade","p":"1"}}"#.to_vec();
        let out = out_frame(frame).unwrap();
        assert_eq!(&*out.stream, "btcusdt@trade");
        assert_eq!(out.raw.as_str(), r#"{"e":"trade","p":"1"}"#);
        assert!(out.combined.as_str().starts_with("{\"stream\""));
        let spaced = b"{\"stream\": \"x\"}\n".to_vec();
        assert!(out_frame(spaced).is_none());
        assert!(out_frame(br#"{"lastUpdateId":1}"#.to_vec()).is_none());
    }

    #[test]
    fn stream_names_keep_the_channel_case() {
        assert_eq!(stream_name("BTCUSDT@bookTicker"), "btcusdt@bookTicker");
        assert_eq!(stream_name("btcusdt@depth@100ms"), "btcusdt@depth@100ms");
        assert_eq!(stream_name("ABC"), "abc");
    }

    #[test]
    fn trims_line_ends() {
        assert_eq!(trim(b"{}\r\n"), b"{}");
        assert_eq!(trim(b"  "), b"");
    }
}
