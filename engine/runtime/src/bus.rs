//! The event bus and the control socket (ZeroMQ, protobuf from `proto/bus.proto`), run by the
//! housekeeping thread, which also journals risk changes and keeps the engine's view for
//! status replies and heartbeats.
//!
//! Events: an XPUB socket with the manifest's high-water mark; every message an `Event` with
//! the engine id and a sequence number (1, 2, ...), so a subscriber detects loss. The engine
//! sees loss begin too (`bus_subscriber_overflows`): with `ZMQ_XPUB_NODROP` a send that would
//! overflow a slow subscriber's queue fails instead of dropping silently; the event then goes
//! out to every subscriber with room and the overflow is counted ([`Bus::send_event`]). Heartbeats
//! every second carry counters, positions, feed states and latency percentiles. Control: a REP
//! socket; status is answered here, other commands go to the strategy thread, which answers
//! within its next loop turn (bounded wait here).

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message as _;
use rt_core::{OrderKind, OrderStatus, RiskState, Side, TraderEvent};

use crate::anomaly::{self, Detector, Totals};
use crate::clock::{now_ns, uptime_ms};
use crate::journal::{Journal, Record};
use crate::latency::{Stage, Stages};
use crate::metrics::{self, Page};
use crate::shared::{dec, FeedInfo, FeedStatus, Flags, Hk, Names, TraderView};
use crate::trader::{Command, Reply};

/// The generated bus messages.
#[allow(clippy::all, clippy::pedantic, missing_debug_implementations)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/pyrt.bus.v1.rs"));
}

/// Why the bus could not start.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("bus: cannot {op} {endpoint}: {source}")]
    Socket {
        op: &'static str,
        endpoint: String,
        source: zmq::Error,
    },
}

/// Identity of this engine on the bus.
#[derive(Debug, Clone)]
pub struct Identity {
    pub engine_id: String,
    pub host: String,
    pub deployment: String,
    pub mode: String,
    pub manifest_sha256: String,
    /// The manifest's `engine.metrics.tick_to_order_p99_alert_us`.
    pub tick_to_order_p99_alert_us: u32,
}

/// The bus sockets, bound.
pub struct Bus {
    _ctx: zmq::Context,
    events: zmq::Socket,
    control: zmq::Socket,
    endpoints: (String, String),
    /// Times a subscriber's queue was found full ([`Bus::send_event`]).
    overflows: u64,
    /// Sends that failed for another reason (logged at 1, 2, 4, 8, ...).
    send_errors: u64,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus")
            .field("events", &self.endpoints.0)
            .field("control", &self.endpoints.1)
            .finish()
    }
}

impl Bus {
    /// Binds both sockets (before any thread starts: a port in use is a start-up error).
    pub fn bind(events: &str, control: &str, hwm: u32) -> Result<Bus, BusError> {
        let ctx = zmq::Context::new();
        fn err(op: &'static str, endpoint: &str) -> impl FnOnce(zmq::Error) -> BusError {
            let endpoint = endpoint.to_owned();
            move |source| BusError::Socket {
                op,
                endpoint,
                source,
            }
        }
        let mut pub_socket = ctx.socket(zmq::XPUB).map_err(err("create", events))?;
        crate::sys::set_xpub_nodrop(&mut pub_socket, true)
            .map_err(err("set XPUB_NODROP on", events))?;
        pub_socket
            .set_sndhwm(i32::try_from(hwm).unwrap_or(i32::MAX))
            .map_err(err("set the HWM of", events))?;
        pub_socket
            .set_linger(200)
            .map_err(err("set linger on", events))?;
        pub_socket.bind(events).map_err(err("bind", events))?;
        let rep = ctx.socket(zmq::REP).map_err(err("create", control))?;
        rep.set_linger(0).map_err(err("set linger on", control))?;
        rep.bind(control).map_err(err("bind", control))?;
        Ok(Bus {
            _ctx: ctx,
            events: pub_socket,
            control: rep,
            endpoints: (events.to_owned(), control.to_owned()),
            overflows: 0,
            send_errors: 0,
        })
    }

    /// Publishes one encoded event without ever waiting. Normally it reaches every
    /// subscriber. When a subscriber's queue is at the high-water mark the socket refuses it
    /// whole (NODROP); it is then sent once more lossy, so every subscriber with room still
    /// gets it and only the slow ones miss it, and the overflow is counted
    /// ([`Bus::overflows`]). ZeroMQ then sets the full queue aside until its reader has
    /// caught up: the events it misses meanwhile go unseen by this socket (libzmq does not
    /// count them), so the count is of overflow episodes, not of events lost; the subscriber
    /// itself counts those from the gap in sequence numbers. Returns whether every subscriber
    /// got the event.
    pub fn send_event(&mut self, bytes: &[u8]) -> bool {
        loop {
            match self.events.send(bytes, zmq::DONTWAIT) {
                Ok(()) => return true,
                Err(zmq::Error::EAGAIN) => break,
                // A signal arrived during the call: nothing was sent, try again.
                Err(zmq::Error::EINTR) => continue,
                // The context is ending (shutdown) or the socket is unusable: not an overflow.
                Err(e) => {
                    self.send_errors += 1;
                    if self.send_errors.is_power_of_two() {
                        eprintln!(
                            "bus: cannot publish an event: {e} ({} so far)",
                            self.send_errors
                        );
                    }
                    return false;
                }
            }
        }
        self.overflows += 1;
        if crate::sys::set_xpub_nodrop(&mut self.events, false).is_ok() {
            let _ = self.events.send(bytes, zmq::DONTWAIT);
            if let Err(e) = crate::sys::set_xpub_nodrop(&mut self.events, true) {
                eprintln!("bus: cannot turn XPUB_NODROP back on ({e}): loss is no longer counted");
            }
        }
        false
    }

    /// Times a subscriber's queue was found at the high-water mark (since start): each
    /// begins a stretch of events that subscriber misses.
    pub fn overflows(&self) -> u64 {
        self.overflows
    }

    /// Reads and discards the subscription messages an XPUB socket hands up, so that they do
    /// not pile up in it (one per subscriber joining or leaving).
    fn drain_subscriptions(&mut self) {
        while self.events.recv_bytes(zmq::DONTWAIT).is_ok() {}
    }
}

/// Risk state on the wire.
pub fn risk_kind(s: RiskState) -> i32 {
    (match s {
        RiskState::Active => pb::RiskStateKind::Active,
        RiskState::Reducing => pb::RiskStateKind::Reducing,
        RiskState::Halted => pb::RiskStateKind::Halted,
    }) as i32
}

fn side_kind(s: Side) -> i32 {
    (match s {
        Side::Buy => pb::Side::Buy,
        Side::Sell => pb::Side::Sell,
    }) as i32
}

fn order_kind(k: OrderKind) -> i32 {
    (match k {
        OrderKind::Limit => pb::OrderKind::Limit,
        OrderKind::Market => pb::OrderKind::Market,
        OrderKind::Ioc => pb::OrderKind::Ioc,
        OrderKind::PostOnly => pb::OrderKind::PostOnly,
    }) as i32
}

fn status_kind(s: OrderStatus) -> i32 {
    (match s {
        OrderStatus::Sent => pb::OrderStatus::Sent,
        OrderStatus::Accepted => pb::OrderStatus::Accepted,
        OrderStatus::PartiallyFilled => pb::OrderStatus::PartiallyFilled,
        OrderStatus::Filled => pb::OrderStatus::Filled,
        OrderStatus::Cancelled => pb::OrderStatus::Cancelled,
        OrderStatus::Rejected => pb::OrderStatus::Rejected,
        OrderStatus::Expired => pb::OrderStatus::Expired,
    }) as i32
}

fn feed_kind(s: FeedStatus) -> i32 {
    (match s {
        FeedStatus::Connecting => pb::FeedStateKind::Connecting,
        FeedStatus::Syncing => pb::FeedStateKind::Syncing,
        FeedStatus::Live => pb::FeedStateKind::Live,
        FeedStatus::Stale => pb::FeedStateKind::Stale,
        FeedStatus::Resyncing => pb::FeedStateKind::Resyncing,
    }) as i32
}

/// One turn of the interval policy's syncing: when a sync is due, fdatasync on a duplicate
/// of the journal's descriptor (the same file) with no lock held, then record what it made
/// durable, or that it failed (tried again at the next turn; the heartbeat counts it).
fn journal_tick(journal: &Mutex<Journal>) {
    let due = match journal.lock() {
        Ok(mut j) => j.due_sync(),
        Err(_) => return,
    };
    match due {
        Ok(Some((handle, ticket))) => {
            let result = handle.sync_data();
            if let Ok(mut j) = journal.lock() {
                match result {
                    Ok(()) => j.synced(ticket),
                    Err(e) => {
                        eprintln!("journal: fsync: {e}");
                        j.sync_failed(ticket);
                    }
                }
            }
        }
        Ok(None) => {}
        Err(e) => eprintln!("{e}"),
    }
}

/// What the housekeeping thread prints at shutdown.
#[derive(Debug, Default)]
pub struct Final {
    pub latency: Stages,
    pub view: TraderView,
    pub feeds: Vec<FeedInfo>,
    pub gateway: Vec<(&'static str, u64)>,
    pub fills: u64,
    pub risk_events: Vec<String>,
    pub events_published: u64,
    /// Times a subscriber's queue was full: it missed events from then until it caught up.
    pub subscriber_overflows: u64,
}

/// The housekeeping loop: runs until every other thread is done (`rx` disconnected, or the
/// trader done and `until_done` says so), then returns the totals.
#[allow(clippy::too_many_arguments)]
pub fn housekeeping(
    bus: Bus,
    id: Identity,
    names: Names,
    rx: Receiver<Hk>,
    commands: Sender<(Command, Sender<Reply>)>,
    journal: Arc<Mutex<Journal>>,
    flags: Arc<Flags>,
    verbose: bool,
    metrics: Option<Page>,
    anomaly: Option<Detector>,
) -> Final {
    let mut hk = Housekeeper {
        bus,
        id,
        names,
        seq: 0,
        view: TraderView::default(),
        feeds: HashMap::new(),
        gateway: Vec::new(),
        reconcile: Vec::new(),
        risk_detail: None,
        latency: Stages::new(),
        fills: 0,
        risk_events: Vec::new(),
        journal,
        anchors_written: None,
        verbose,
        metrics,
        anomaly,
        anomaly_started: false,
    };
    let mut next_heartbeat = now_ns();
    // The interval policy's fsyncs run on a thread of their own: a disk that hangs in fsync
    // stalls neither heartbeats, /metrics (where the growing lag shows) nor control.
    let syncing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let syncer = {
        let (journal, syncing) = (hk.journal.clone(), syncing.clone());
        std::thread::Builder::new()
            .name("journal-sync".into())
            .spawn(move || {
                while syncing.load(std::sync::atomic::Ordering::Acquire) {
                    journal_tick(&journal);
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
    };
    if let Err(e) = &syncer {
        eprintln!("journal: cannot start the sync thread ({e}); syncing from housekeeping");
    }
    let mut next_sync = now_ns();
    loop {
        // Control first: an operator's kill must not wait behind a burst of events.
        let mut items = [hk.bus.control.as_poll_item(zmq::POLLIN)];
        if zmq::poll(&mut items, 2).is_ok() && items[0].is_readable() {
            hk.on_control(&commands, &rx);
        }
        hk.bus.drain_subscriptions();
        let mut disconnected = false;
        for _ in 0..10_000 {
            match rx.try_recv() {
                Ok(msg) => hk.on_message(msg),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    disconnected = true;
                    break;
                }
            }
        }
        let now = now_ns();
        if now >= next_heartbeat {
            next_heartbeat = now + 1_000_000_000;
            hk.heartbeat();
        }
        if syncer.is_err() && now >= next_sync {
            next_sync = now + 5_000_000;
            journal_tick(&hk.journal);
        }
        if disconnected {
            break;
        }
    }
    syncing.store(false, std::sync::atomic::Ordering::Release);
    if let Ok(handle) = syncer {
        let _ = handle.join();
    }
    hk.heartbeat();
    hk.journal_anchors(true);
    if let Ok(mut j) = hk.journal.lock() {
        if let Err(e) = j.sync() {
            eprintln!("{e}");
        }
    }
    let _ = flags;
    // Give subscribers a moment to get the last messages (linger).
    std::thread::sleep(Duration::from_millis(50));
    Final {
        latency: hk.latency.clone(),
        view: hk.view.clone(),
        feeds: hk.feeds.values().copied().collect(),
        gateway: hk.gateway.clone(),
        fills: hk.fills,
        risk_events: hk.risk_events.clone(),
        events_published: hk.seq,
        subscriber_overflows: hk.bus.overflows(),
    }
}

struct Housekeeper {
    bus: Bus,
    id: Identity,
    names: Names,
    seq: u64,
    view: TraderView,
    feeds: HashMap<u32, FeedInfo>,
    gateway: Vec<(&'static str, u64)>,
    reconcile: Vec<(&'static str, u64)>,
    /// The detail of the next risk change to HALTED ([`Hk::RiskDetail`]).
    risk_detail: Option<String>,
    latency: Stages,
    fills: u64,
    risk_events: Vec<String>,
    journal: Arc<Mutex<Journal>>,
    /// The anchors last journaled, and when.
    anchors_written: Option<(rt_core::RiskAnchors, i64)>,
    verbose: bool,
    /// The Prometheus page, rendered at each heartbeat (None: no exporter).
    metrics: Option<Page>,
    /// Anomaly detection against the manifest's baseline (None: off).
    anomaly: Option<Detector>,
    /// Whether the detector has begun (the trader reported and every feed was live).
    anomaly_started: bool,
}

impl Housekeeper {
    fn publish(&mut self, body: pb::event::Body) {
        self.seq += 1;
        let ev = pb::Event {
            engine_id: self.id.engine_id.clone(),
            seq: self.seq,
            ts_ns: now_ns(),
            wall_ns: now_ns(),
            body: Some(body),
        };
        // Never waits: a slow subscriber never stalls the engine; what it misses is counted
        // here and shows to it as a gap in the sequence numbers.
        self.bus.send_event(&ev.encode_to_vec());
    }

    /// Journals a command the engine carried out, synced before the operator hears back, so a
    /// restart keeps a pause, a kill or a tightened limit.
    fn journal_control(&mut self, cmd: &Command) {
        let (command, limit, value) = match cmd {
            Command::Pause => ("pause", None, None),
            Command::Resume => ("resume", None, None),
            Command::Flatten => ("flatten", None, None),
            Command::Kill => ("kill", None, None),
            Command::Tighten(l, v) => ("tighten", Some(l.clone()), Some(v.clone())),
            Command::Halt { .. } => ("halt", None, None),
        };
        if let Ok(mut j) = self.journal.lock() {
            let written = j
                .append(&Record::Control {
                    ts: now_ns(),
                    command: command.to_owned(),
                    limit,
                    value,
                })
                .and_then(|()| j.sync());
            if let Err(e) = written {
                eprintln!("{e}");
            }
        }
    }

    /// Journals the loss limits' anchors when the day or its start changed, or the peak did
    /// (at most once a second unless `force`).
    fn journal_anchors(&mut self, force: bool) {
        let Some(a) = self.view.anchors else {
            return;
        };
        let now = now_ns();
        let due = match self.anchors_written {
            None => true,
            Some((w, at)) => {
                w.day != a.day
                    || w.day_start_equity != a.day_start_equity
                    || (w.peak_equity != a.peak_equity && (force || now - at >= 1_000_000_000))
            }
        };
        if !due {
            return;
        }
        if let Ok(mut j) = self.journal.lock() {
            if let Err(e) = j.append(&Record::Anchors {
                ts: now,
                day: a.day,
                day_start_equity: dec(a.day_start_equity),
                peak_equity: dec(a.peak_equity),
            }) {
                eprintln!("{e}");
                return;
            }
        }
        self.anchors_written = Some((a, now));
    }

    fn on_message(&mut self, msg: Hk) {
        match msg {
            Hk::Trader(ev) => self.on_trader(ev),
            Hk::View(v) => {
                self.view = *v;
                self.journal_anchors(false);
            }
            Hk::Feed(f) => {
                let changed = self.feeds.get(&f.exchange).map(|o| o.status) != Some(f.status);
                self.feeds.insert(f.exchange, f);
                if changed {
                    let body = pb::event::Body::Feed(self.feed_pb(&f));
                    self.publish(body);
                    if self.verbose {
                        eprintln!("feed {}: {:?}", self.names.exchange(f.exchange), f.status);
                    }
                }
            }
            Hk::Latency(s) => self.latency.merge(&s),
            Hk::Gateway(c) => self.gateway = c,
            Hk::Log(line) => eprintln!("{line}"),
            // Several threads report (the balance check, the position watch): by name.
            Hk::Reconcile(c) => {
                for (name, value) in c {
                    match self.reconcile.iter_mut().find(|(n, _)| *n == name) {
                        Some(slot) => slot.1 = value,
                        None => self.reconcile.push((name, value)),
                    }
                }
            }
            Hk::RiskDetail(d) => self.risk_detail = Some(d),
        }
    }

    fn feed_pb(&self, f: &FeedInfo) -> pb::FeedState {
        pb::FeedState {
            exchange: self.names.exchange(f.exchange).to_owned(),
            state: feed_kind(f.status),
            reconnects: f.reconnects,
            gaps: f.gaps,
            malformed: f.malformed,
            ring_overflows: f.ring_overflows,
            snapshots: f.snapshots,
        }
    }

    fn on_trader(&mut self, ev: TraderEvent) {
        let body = match ev {
            TraderEvent::Order(o) => {
                let (exchange, symbol) = self.names.instrument(o.instrument);
                pb::event::Body::Order(pb::OrderUpdate {
                    order_id: o.order_id,
                    strategy: self.names.strategy(o.strategy).to_owned(),
                    exchange: exchange.to_owned(),
                    symbol: symbol.to_owned(),
                    side: side_kind(o.side),
                    kind: order_kind(o.kind),
                    price: dec(o.price.0),
                    qty: dec(o.qty.0),
                    filled_qty: dec(o.filled_qty.0),
                    status: status_kind(o.status),
                    reject_reason: o
                        .reject_reason
                        .map(|r| r.as_str().to_owned())
                        .unwrap_or_default(),
                })
            }
            TraderEvent::Fill(f) => {
                self.fills += 1;
                let (exchange, symbol) = self.names.instrument(f.instrument);
                pb::event::Body::Fill(pb::Fill {
                    order_id: f.order_id,
                    strategy: self.names.strategy(f.strategy).to_owned(),
                    exchange: exchange.to_owned(),
                    symbol: symbol.to_owned(),
                    side: side_kind(f.side),
                    price: dec(f.price.0),
                    qty: dec(f.qty.0),
                    fee: dec(f.fee),
                    maker: f.maker,
                    leaves_qty: String::new(),
                })
            }
            TraderEvent::Position(p) => {
                let (exchange, symbol) = self.names.instrument(p.instrument);
                pb::event::Body::Position(pb::Position {
                    exchange: exchange.to_owned(),
                    symbol: symbol.to_owned(),
                    qty: dec(p.position.0),
                    avg_entry_price: dec(p.avg_entry_price.0),
                    realised_pnl: dec(p.realised_pnl),
                    unrealised_pnl: dec(p.unrealised_pnl),
                    fees: dec(p.fees),
                    mark_age_ms: 0,
                })
            }
            TraderEvent::Risk(r) => {
                let detail = if r.to == RiskState::Halted {
                    self.risk_detail.take().unwrap_or_default()
                } else {
                    String::new()
                };
                let mut line = format!(
                    "{} -> {} ({})",
                    r.from.as_str(),
                    r.to.as_str(),
                    r.cause.as_str()
                );
                if !detail.is_empty() {
                    line = format!("{line}: {detail}");
                }
                eprintln!("risk: {line}");
                self.risk_events.push(line);
                if let Ok(mut j) = self.journal.lock() {
                    let _ = j.append(&Record::Risk {
                        ts: r.ts,
                        from: r.from.as_str().to_owned(),
                        to: r.to.as_str().to_owned(),
                        cause: r.cause.as_str().to_owned(),
                        detail: (!detail.is_empty()).then(|| detail.clone()),
                    });
                }
                pb::event::Body::Risk(pb::RiskChange {
                    from_state: risk_kind(r.from),
                    to_state: risk_kind(r.to),
                    cause: r.cause.as_str().to_owned(),
                    detail,
                })
            }
        };
        self.publish(body);
    }

    fn positions(&self) -> Vec<pb::Position> {
        self.view
            .positions
            .iter()
            .map(|p| {
                let (exchange, symbol) = self.names.instrument(p.instrument);
                pb::Position {
                    exchange: exchange.to_owned(),
                    symbol: symbol.to_owned(),
                    qty: dec(p.qty),
                    avg_entry_price: dec(p.avg_price),
                    realised_pnl: dec(p.realised),
                    unrealised_pnl: dec(p.unrealised),
                    fees: dec(p.fees),
                    mark_age_ms: p.mark_age_ms,
                }
            })
            .collect()
    }

    fn feeds_pb(&self) -> Vec<pb::FeedState> {
        let mut feeds: Vec<&FeedInfo> = self.feeds.values().collect();
        feeds.sort_by_key(|f| f.exchange);
        feeds.into_iter().map(|f| self.feed_pb(f)).collect()
    }

    fn heartbeat(&mut self) {
        let mut counters: HashMap<String, u64> = self
            .view
            .counters
            .iter()
            .chain(self.gateway.iter())
            .chain(self.reconcile.iter())
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect();
        let (md, snapshots, reconnects) = self.feeds.values().fold((0, 0, 0), |a, f| {
            (a.0 + f.messages, a.1 + f.snapshots, a.2 + f.reconnects)
        });
        counters.insert("md_messages".to_owned(), md);
        counters.insert("snapshots".to_owned(), snapshots);
        counters.insert("reconnects".to_owned(), reconnects);
        // Checksummed books (feed.rs): verified, broken and repaired, over every feed and per
        // exchange (`<name>.<exchange>`, for exchanges that have checksummed books).
        for f in self.feeds.values() {
            let exchange = self.names.exchange(f.exchange);
            for (name, n) in [
                ("book_checksums_checked", f.checksums_checked),
                ("book_checksums_matched", f.checksums_matched),
                ("book_sequence_gaps", f.sequence_gaps),
                ("book_breaks", f.book_breaks),
                ("book_resubscribes", f.resubscribes),
                ("books_invalid", f.books_invalid),
            ] {
                *counters.entry(name.to_owned()).or_insert(0) += n;
                if f.checksums_checked > 0 {
                    counters.insert(format!("{name}.{exchange}"), n);
                }
            }
        }
        counters.insert("bus_events".to_owned(), self.seq);
        counters.insert("bus_subscriber_overflows".to_owned(), self.bus.overflows());
        // How far the journal's durability trails its writes (none with fsync: never).
        if let Some(lag) = self.journal.lock().ok().and_then(|j| j.lag()) {
            counters.insert("journal_records".to_owned(), lag.records);
            counters.insert("journal_unsynced_records".to_owned(), lag.unsynced);
            counters.insert("journal_unsynced_age_ms".to_owned(), lag.age_ms);
            counters.insert("journal_fsync_errors".to_owned(), lag.fsync_errors);
            counters.insert("journal_fsync_interval_ms".to_owned(), lag.interval_ms);
        }
        for (reason, n) in &self.view.rejections {
            counters.insert(format!("rejected.{reason}"), *n);
        }
        let stage = |stage: String, f: crate::latency::Figures| pb::StageLatency {
            stage,
            count: f.count,
            p50_ns: f.p50_ns,
            p99_ns: f.p99_ns,
            max_ns: f.max_ns,
        };
        let mut latency: Vec<pb::StageLatency> = Stage::ALL
            .iter()
            .map(|s| stage(s.name().to_owned(), self.latency.figures(*s)))
            .collect();
        // Each exchange's frame -> strategy, for an engine of several venues.
        for (x, name) in self.names.exchanges.iter().enumerate() {
            let f = self.latency.venue_figures(x);
            latency.push(stage(
                format!("{}.{name}", Stage::FrameToStrategy.name()),
                f,
            ));
        }
        let anomalies = self.anomalies(&counters);
        let hb = pb::Heartbeat {
            uptime_ms: uptime_ms(),
            risk_state: self.view.risk_state.map_or(0, risk_kind),
            paused: self.view.paused,
            open_orders: self.view.open_orders,
            equity: dec(self.view.equity),
            realised_pnl: dec(self.view.realised),
            fees: dec(self.view.fees),
            counters,
            latency,
            positions: self.positions(),
            feeds: self.feeds_pb(),
            manifest_sha256: self.id.manifest_sha256.clone(),
            anomalies,
        };
        if let Some(page) = &self.metrics {
            let id = metrics::Identity {
                engine_id: &self.id.engine_id,
                deployment: &self.id.deployment,
                mode: &self.id.mode,
                tick_to_order_p99_alert_us: self.id.tick_to_order_p99_alert_us,
            };
            page.set(metrics::render(&hb, &self.latency, id));
        }
        self.publish(pb::event::Body::Heartbeat(hb));
    }

    /// Feeds the detector this heartbeat's totals, publishes (and logs) what it raised or
    /// cleared, and returns the anomalies active now.
    fn anomalies(&mut self, counters: &HashMap<String, u64>) -> Vec<pb::Anomaly> {
        // Measured from the first heartbeat after the trader reported (its equity, restored
        // after a restart, is the first sample's) with every feed live: connecting and the
        // first snapshot are not the market's message rate.
        if !self.anomaly_started {
            let feeds_live = self.feeds.len() == self.names.exchanges.len()
                && self.feeds.values().all(|f| f.status == FeedStatus::Live);
            if self.view.risk_state.is_none() || !feeds_live {
                return Vec::new();
            }
            self.anomaly_started = true;
        }
        let Some(detector) = self.anomaly.as_mut() else {
            return Vec::new();
        };
        let mut per_exchange = vec![0; self.names.exchanges.len()];
        for f in self.feeds.values() {
            if let Some(n) = per_exchange.get_mut(f.exchange as usize) {
                *n += f.messages;
            }
        }
        let totals = Totals {
            t_ns: now_ns(),
            orders_sent: counters.get("orders_sent").copied().unwrap_or(0),
            fills: counters.get("fills").copied().unwrap_or(0),
            md_messages: counters.get("md_messages").copied().unwrap_or(0),
            per_exchange,
            equity: self.view.equity as f64 / rt_core::SCALE as f64,
            trading: self.view.risk_state == Some(RiskState::Active) && !self.view.paused,
            markouts: rt_core::markout::MarkoutTotals {
                count: counters.get("markouts").copied().unwrap_or(0),
                favourable_cbps: counters
                    .get("markout_favourable_cbps")
                    .copied()
                    .unwrap_or(0),
                adverse_cbps: counters.get("markout_adverse_cbps").copied().unwrap_or(0),
            },
            tick_to_order: anomaly::latency_counts(self.latency.histogram(Stage::TickToOrder)),
        };
        let changes = detector.observe(totals);
        let states = detector.states();
        for change in changes {
            eprintln!("{}", anomaly::describe(&change));
            self.publish(pb::event::Body::Anomaly(change));
        }
        states
    }

    fn status(&self) -> pb::Status {
        pb::Status {
            engine_id: self.id.engine_id.clone(),
            host: self.id.host.clone(),
            deployment: self.id.deployment.clone(),
            mode: self.id.mode.clone(),
            manifest_sha256: self.id.manifest_sha256.clone(),
            risk_state: self.view.risk_state.map_or(0, risk_kind),
            paused: self.view.paused,
            uptime_ms: uptime_ms(),
            open_orders: self.view.open_orders,
            equity: dec(self.view.equity),
            positions: self.positions(),
            feeds: self.feeds_pb(),
            last_event_seq: self.seq,
            pid: std::process::id(),
        }
    }

    fn on_control(&mut self, commands: &Sender<(Command, Sender<Reply>)>, rx: &Receiver<Hk>) {
        let Ok(bytes) = self.bus.control.recv_bytes(zmq::DONTWAIT) else {
            return;
        };
        use pb::control_request::Command as C;
        let reply = match pb::ControlRequest::decode(bytes.as_slice()) {
            Err(e) => pb::ControlReply {
                ok: false,
                error: format!("not a ControlRequest: {e}"),
                status: Some(self.status()),
            },
            Ok(req) => {
                let cmd = match req.command {
                    None => Err("an empty ControlRequest (no command)".to_owned()),
                    Some(C::Status(_)) => Ok(None),
                    Some(C::Pause(_)) => Ok(Some(Command::Pause)),
                    Some(C::Resume(_)) => Ok(Some(Command::Resume)),
                    Some(C::Flatten(_)) => Ok(Some(Command::Flatten)),
                    Some(C::Kill(_)) => Ok(Some(Command::Kill)),
                    Some(C::Tighten(t)) => Ok(Some(Command::Tighten(t.limit, t.value))),
                };
                match cmd {
                    Err(error) => pb::ControlReply {
                        ok: false,
                        error,
                        status: Some(self.status()),
                    },
                    Ok(None) => pb::ControlReply {
                        ok: true,
                        error: String::new(),
                        status: Some(self.status()),
                    },
                    Ok(Some(cmd)) => {
                        eprintln!("control: {cmd:?}");
                        let (tx, answer_rx) = std::sync::mpsc::channel();
                        let answer = if commands.send((cmd.clone(), tx)).is_err() {
                            Err("the strategy thread has stopped".to_owned())
                        } else {
                            // Meanwhile the strategy thread's events pile up in the channel;
                            // they are published right after.
                            answer_rx
                                .recv_timeout(Duration::from_secs(2))
                                .unwrap_or_else(|_| {
                                    Err("the strategy thread did not answer within 2 s".to_owned())
                                })
                        };
                        // The strategy thread sent its events and a fresh view before answering:
                        // publish them, so the reply's status reflects the command.
                        while let Ok(msg) = rx.try_recv() {
                            self.on_message(msg);
                        }
                        let error = match &answer {
                            Ok(_) => {
                                self.journal_control(&cmd);
                                String::new()
                            }
                            Err(e) => e.clone(),
                        };
                        pb::ControlReply {
                            ok: answer.is_ok(),
                            error,
                            status: Some(self.status()),
                        }
                    }
                }
            }
        };
        if let Err(e) = self.bus.control.send(reply.encode_to_vec(), 0) {
            eprintln!("control: cannot reply: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Bus;
    use std::time::{Duration, Instant};

    fn bind() -> (Bus, String) {
        let bus = Bus::bind("tcp://127.0.0.1:*", "tcp://127.0.0.1:*", 1000).expect("bind");
        let endpoint = bus
            .events
            .get_last_endpoint()
            .expect("endpoint")
            .expect("utf-8 endpoint");
        (bus, endpoint)
    }

    fn subscriber(ctx: &zmq::Context, endpoint: &str, rcvhwm: i32) -> zmq::Socket {
        let s = ctx.socket(zmq::SUB).expect("sub");
        s.set_rcvhwm(rcvhwm).expect("rcvhwm");
        s.set_rcvtimeo(50).expect("rcvtimeo");
        s.connect(endpoint).expect("connect");
        s.set_subscribe(b"").expect("subscribe");
        s
    }

    /// Publishes probes until every subscriber has one (subscriptions travel asynchronously),
    /// then empties them.
    fn await_subscribed(bus: &mut Bus, subs: &[&zmq::Socket]) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = vec![false; subs.len()];
        while !seen.iter().all(|s| *s) {
            assert!(Instant::now() < deadline, "subscribers never joined");
            bus.drain_subscriptions();
            assert!(bus.send_event(b"probe"), "a probe was refused");
            for (i, s) in subs.iter().enumerate() {
                while s.recv_bytes(0).is_ok() {
                    seen[i] = true;
                }
            }
        }
        assert_eq!(bus.overflows(), 0);
    }

    /// Reads until nothing arrives for a while; the count of messages (after the probes).
    fn read_all(s: &zmq::Socket) -> u64 {
        let mut n = 0;
        let mut quiet = 0;
        while quiet < 20 {
            match s.recv_bytes(0) {
                Ok(m) if m.as_slice() != b"probe" => {
                    n += 1;
                    quiet = 0;
                }
                Ok(_) => {}
                Err(_) => quiet += 1,
            }
        }
        n
    }

    /// The indices (first 8 bytes) of every event read until nothing arrives for a while.
    fn received(s: &zmq::Socket) -> std::collections::HashSet<u64> {
        let mut seen = std::collections::HashSet::new();
        let mut quiet = 0;
        while quiet < 20 {
            match s.recv_bytes(0) {
                Ok(m) if m.len() == 64 => {
                    let mut index = [0u8; 8];
                    index.copy_from_slice(&m[..8]);
                    seen.insert(u64::from_le_bytes(index));
                    quiet = 0;
                }
                Ok(_) => {}
                Err(_) => quiet += 1,
            }
        }
        seen
    }

    #[test]
    fn every_subscriber_that_keeps_up_gets_every_event_and_nothing_is_lost() {
        let (mut bus, endpoint) = bind();
        let ctx = zmq::Context::new();
        let sub = subscriber(&ctx, &endpoint, 1000);
        await_subscribed(&mut bus, &[&sub]);
        for i in 0u64..500 {
            assert!(bus.send_event(&i.to_le_bytes()));
        }
        assert_eq!(read_all(&sub), 500);
        assert_eq!(bus.overflows(), 0);
    }

    #[test]
    fn a_subscriber_that_stops_reading_is_seen_overflowing_and_the_others_keep_receiving() {
        let (mut bus, endpoint) = bind();
        let ctx = zmq::Context::new();
        let slow = subscriber(&ctx, &endpoint, 1);
        slow.set_rcvbuf(4096).expect("rcvbuf");
        let fast = subscriber(&ctx, &endpoint, 0);
        await_subscribed(&mut bus, &[&slow, &fast]);
        // The fast subscriber reads all along; the slow one reads nothing until the end.
        let reader = std::thread::spawn(move || received(&fast));
        const N: u64 = 200_000;
        let mut refused = Vec::new();
        for i in 0..N {
            let mut payload = [7u8; 64];
            payload[..8].copy_from_slice(&i.to_le_bytes());
            if !bus.send_event(&payload) {
                refused.push(i);
            }
            // At most a few hundred thousand events a second, as a busy engine publishes
            // (unpaced, this loop outruns ZeroMQ's I/O thread for every subscriber).
            if i % 64 == 63 {
                std::thread::sleep(Duration::from_micros(100));
            }
        }
        let fast_seen = reader.join().expect("fast reader");
        let fast_got = fast_seen.len() as u64;
        let slow_got = read_all(&slow);
        assert!(
            slow_got < N,
            "the slow subscriber got every event ({slow_got})"
        );
        // The overflow that began the slow subscriber's loss is seen (a plain PUB drops
        // without a word: 0 here).
        assert!(
            bus.overflows() >= 1,
            "no overflow seen; slow got {slow_got} of {N}"
        );
        assert_eq!(bus.overflows(), refused.len() as u64);
        // ...and only the slow subscriber paid for it: an event that overflowed still went
        // to everyone with room (the re-send), and the fast one got far more than the slow.
        assert!(
            refused.iter().any(|i| fast_seen.contains(i)),
            "none of the {} refused events reached the fast subscriber",
            refused.len()
        );
        assert!(
            fast_got > slow_got + N / 2,
            "fast got {fast_got}, slow {slow_got} of {N}"
        );
    }
}
