//! The strategy thread: market data in, orders out, on the same driver as backtests.
//!
//! It busy-polls its rings (or spins then parks, see [`crate::engine::Spin`]): each feed's
//! market-data ring (book sync, strategies and the risk check all run inside
//! `Trader::on_event`, with the exchanges set to external venues), the fills ring from the
//! gateway (`Trader::on_exec`), and operator commands. The orders the driver sends are
//! written to the orders ring for the gateway, stamped with the time the triggering frame was
//! read (tick-to-order). Everything that happened (orders, fills, positions, risk changes)
//! goes to the housekeeping thread for the bus and the journal.
//!
//! With the flight recorder on, every input the driver consumes (each market event by its
//! frame's receive time, each execution report as delivered, each timer turn, each command)
//! and every decision (orders and cancels, with the book and risk state they were made on) is
//! handed to the decision log ([`DecisionTap`], `rt_core::flightlog`): a non-blocking send of
//! a small value, never a wait. `appliance parity` replays a run from it.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;

use rt_core::flightlog::{self, Entry, LimitField};
use rt_core::{MarketEvent, Nanos, Trader, TraderEvent, VenueRequest};
use rt_manifest::Fixed;
use rt_ring::{Consumer, Pop, Producer};

use crate::clock::now_ns;
use crate::engine::Spin;
use crate::flight::DecisionTap;
use crate::latency::{Stage, Stages};
use crate::shared::{Flags, Hk, HkSender, PositionView, TraderView};
use crate::wire::{Assembled, Assembler, ExecMsg, OrderMsg, ORDER_BYTES};

/// `frame_ns` of an order no market-data frame led to (a report, a timer, a command): the
/// gateway leaves it out of tick-to-order.
pub const NO_TICK: Nanos = 0;

/// An operator's command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Pause,
    Resume,
    Flatten,
    Kill,
    /// (limit path below `risk`, decimal value)
    Tighten(String, String),
    /// The engine's own checks (the balance reconciliation): HALTED with this cause; the
    /// detail goes with the risk event.
    Halt {
        cause: rt_core::RiskCause,
        detail: String,
    },
}

pub type Reply = Result<String, String>;

/// Counters of the strategy thread.
#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    md_slots: u64,
    md_events: u64,
    ring_gaps: u64,
    ring_lost: u64,
    malformed_slots: u64,
    feed_downs: u64,
    execs: u64,
    orders_out: u64,
    cancels_out: u64,
    amends_out: u64,
    orders_ring_waits: u64,
}

/// What one turn of the strategy loop found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// Something was read or done: turn again at once.
    Busy,
    /// Nothing to do: the caller may spin, yield or wait for a wake-up.
    Idle,
    /// Stopped: the last cancels are sent and the open orders settled (or 3 s passed).
    Done,
}

/// The orders ring as the strategy loop writes it. In the pipeline layout a full ring is
/// waited out (the gateway thread drains it); in the fused layout the gateway runs on this
/// very thread, between turns, so what does not fit waits in `backlog` for the next turn:
/// an order or a cancel is never dropped, and never reordered.
pub struct Outbox {
    ring: Producer,
    backlog: std::collections::VecDeque<OrderMsg>,
    /// Spin until the ring has room (pipeline) or keep the rest for the next turn (fused).
    wait: bool,
    /// Something was written since [`Outbox::take_pushed`] last looked.
    pushed: bool,
}

impl Outbox {
    pub fn new(ring: Producer, fused: bool) -> Outbox {
        Outbox {
            ring,
            backlog: std::collections::VecDeque::new(),
            wait: !fused,
            pushed: false,
        }
    }

    /// The fused layout: the gateway of this thread takes what was written at once (built,
    /// journaled and handed to its connection in this call stack).
    #[inline]
    fn hand_over(&self) {
        if !self.wait {
            crate::gateway::take_now_on_this_thread();
        }
    }

    /// Whether a request was written (or queued) since the last call.
    fn take_pushed(&mut self) -> bool {
        std::mem::take(&mut self.pushed)
    }

    /// Writes `msg` into the orders ring if it has room; whether it had.
    fn try_write(&mut self, msg: &OrderMsg) -> bool {
        let mut buf = [0u8; ORDER_BYTES];
        let n = msg.write(&mut buf);
        self.ring.try_push(&buf[..n]).is_ok()
    }

    /// Writes one request to the orders ring, after any still waiting.
    fn push(&mut self, msg: &OrderMsg, c: &mut Counters, flags: &Flags) {
        self.pushed = true;
        if !self.backlog.is_empty() {
            self.backlog.push_back(*msg);
            return;
        }
        while !self.try_write(msg) {
            c.orders_ring_waits += 1;
            flags.wake_gateway();
            if !self.wait {
                self.backlog.push_back(*msg);
                return;
            }
            std::hint::spin_loop();
        }
        self.hand_over();
    }

    /// Moves what waited in the backlog into the ring, as far as it has room; whether any
    /// moved.
    fn flush(&mut self, flags: &Flags) -> bool {
        let mut moved = false;
        while let Some(&msg) = self.backlog.front() {
            if !self.try_write(&msg) {
                break;
            }
            self.backlog.pop_front();
            moved = true;
        }
        if moved {
            flags.wake_gateway();
            self.hand_over();
        }
        moved
    }
}

/// The strategy loop: the driver (`Trader`) with its rings, commands and timers. The
/// pipeline layout turns it on its own thread ([`run`]); the fused layout turns it on the
/// one hot thread, inline after every market event a feed delivers and as a task of that
/// thread's runtime for fills, commands and timers ([`run_task`]).
pub struct StrategyLoop {
    bt: Trader,
    md: Vec<Consumer>,
    fills: Consumer,
    out: Outbox,
    commands: Receiver<(Command, Sender<Reply>)>,
    flags: Arc<Flags>,
    hk: HkSender,
    marks: Arc<crate::fees::FeeMarks>,
    log: Log,
    /// Fault injection for tests (see [`StrategyLoop::start`]).
    stall: Option<(Nanos, u64)>,
    started: bool,
    /// Stopped: further turns do nothing.
    done: bool,
    asm: Vec<Assembler>,
    requests: Vec<VenueRequest>,
    events: Vec<TraderEvent>,
    stages: Stages,
    c: Counters,
    next_view: Nanos,
    next_latency: Nanos,
    next_resync_check: Nanos,
    stop_deadline: Option<Nanos>,
}

/// Stalls the calling thread once (fault injection).
fn stall_now(hk: &HkSender, ms: u64) {
    let _ = hk.send(Hk::Log(format!(
        "strategy: stalling {ms} ms (fault injection)"
    )));
    std::thread::sleep(std::time::Duration::from_millis(ms));
}

impl StrategyLoop {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        bt: Trader,
        md: Vec<Consumer>,
        fills: Consumer,
        out: Outbox,
        commands: Receiver<(Command, Sender<Reply>)>,
        flags: Arc<Flags>,
        hk: HkSender,
        marks: Arc<crate::fees::FeeMarks>,
        log: Option<DecisionTap>,
    ) -> StrategyLoop {
        let asm = md.iter().map(|_| Assembler::new()).collect();
        StrategyLoop {
            bt,
            md,
            fills,
            out,
            commands,
            flags,
            hk,
            marks,
            log: Log(log),
            stall: None,
            started: false,
            done: false,
            asm,
            requests: Vec::with_capacity(64),
            events: Vec::with_capacity(64),
            stages: Stages::recycled(),
            c: Counters::default(),
            next_view: 0,
            next_latency: now_ns() + 1_000_000_000,
            next_resync_check: 0,
            stop_deadline: None,
        }
    }

    /// Whether requests (orders, cancels, amendments) went to the gateway since the last call.
    pub fn take_sent(&mut self) -> bool {
        self.out.take_pushed()
    }

    /// Trading begins once the gateway reconciled with the venues (or the engine stops).
    fn start(&mut self) {
        // Fault injection for tests: the strategy thread stalls once, so its ring fills up: at
        // once, or RT_ENGINE_FAULT_STRATEGY_STALL_AFTER_MS after it began trading (checked
        // with the once-a-second latency report, off the per-message path).
        let env_ms = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
        self.stall = env_ms("RT_ENGINE_FAULT_STRATEGY_STALL_MS").map(|ms| {
            let after = env_ms("RT_ENGINE_FAULT_STRATEGY_STALL_AFTER_MS").unwrap_or(0);
            (now_ns() + i64::try_from(after).unwrap_or(0) * 1_000_000, ms)
        });
        if let Some((at, ms)) = self.stall {
            if at <= now_ns() {
                stall_now(&self.hk, ms);
                self.stall = None;
            }
        }
        let bt = &self.bt;
        let restored_fills = self.log.0.as_ref().map_or(0, |t| t.restored_fills);
        self.log.push(now_ns(), || Entry::Start {
            next_order_id: bt.next_order_id(),
            restored_fills,
            paused: bt.is_paused(),
            risk: bt.risk_state(),
        });
        self.started = true;
    }

    /// One turn: the market data waiting in every feed's ring (at most 256 messages a ring),
    /// the fills, one command, the timers, the stop; then what is left of the orders backlog.
    pub fn turn(&mut self) -> Turn {
        if self.done {
            return Turn::Done;
        }
        if !self.started {
            // Orders wait for the gateway to reconcile with the venues.
            if !self.flags.gateway_ready.load(Ordering::Acquire) && !self.flags.stopping() {
                return Turn::Idle;
            }
            self.start();
        }
        let StrategyLoop {
            bt,
            md,
            fills,
            out,
            commands,
            flags,
            hk,
            marks,
            log,
            stall,
            asm,
            requests,
            events,
            stages,
            c,
            next_view,
            next_latency,
            next_resync_check,
            stop_deadline,
            done,
            ..
        } = self;
        let mut busy = out.flush(flags);
        for (x, ring) in md.iter_mut().enumerate() {
            // Bounded per turn so fills and commands are never starved by a burst.
            for _ in 0..256 {
                let a = &mut asm[x];
                match ring.try_pop(|slot| a.on_slot(slot)) {
                    Pop::Empty => break,
                    Pop::Gap { lost } => {
                        busy = true;
                        c.ring_gaps += 1;
                        c.ring_lost += lost;
                        a.reset();
                        log.push(now_ns(), || Entry::Gap {
                            exchange: x as u32,
                            lost,
                        });
                        // Whatever was lost (diffs, a feed-down marker), the books of this
                        // exchange cannot be trusted until the next snapshot.
                        bt.feed_lost(x);
                        flags.resync[x].store(true, Ordering::Relaxed);
                    }
                    Pop::Message(Assembled::Partial) => {
                        busy = true;
                        c.md_slots += 1;
                    }
                    Pop::Message(Assembled::Malformed) => {
                        busy = true;
                        c.malformed_slots += 1;
                    }
                    Pop::Message(Assembled::FeedDown { .. }) => {
                        busy = true;
                        c.feed_downs += 1;
                        log.push(now_ns(), || Entry::Down { exchange: x as u32 });
                        bt.feed_lost(x);
                    }
                    Pop::Message(Assembled::Event) => {
                        busy = true;
                        c.md_slots += 1;
                        c.md_events += 1;
                        let Some(ev) = a.event() else {
                            c.malformed_slots += 1;
                            continue;
                        };
                        let t_pop = now_ns();
                        let frame_ns = ev.header().local_ns;
                        stages.record(Stage::FrameToStrategy, t_pop - frame_ns);
                        stages.record_venue(x, t_pop - frame_ns);
                        let is_snapshot = matches!(ev, MarketEvent::Snapshot(_));
                        log.push(frame_ns, || Entry::Md { exchange: x as u32 });
                        bt.on_event(x, &ev);
                        if bt.take_snapshot_request(x) {
                            // A book left sync (gap, crossed or negative diff): a snapshot now,
                            // not at the next reconnect.
                            flags.gaps[x].fetch_add(1, Ordering::Relaxed);
                            flags.resync[x].store(true, Ordering::Relaxed);
                        }
                        if bt.has_requests() {
                            let decided = now_ns();
                            stages.record(Stage::BookStrategyRisk, decided - t_pop);
                            send(bt, requests, out, frame_ns, decided, c, flags, log);
                        }
                        if is_snapshot {
                            *next_resync_check = now_ns() + 200_000_000;
                        }
                    }
                }
            }
        }
        loop {
            match fills.try_pop(ExecMsg::read) {
                Pop::Message(Some(e)) => {
                    busy = true;
                    c.execs += 1;
                    let now = now_ns();
                    log.push(now, || Entry::Exec {
                        exchange: e.exchange,
                        recv_ns: e.recv_ns,
                        exec: e.exec,
                        base_commission: e.base_commission,
                    });
                    bt.on_exec_charged(now, e.exec, e.base_commission);
                    if bt.has_requests() {
                        send(bt, requests, out, NO_TICK, now_ns(), c, flags, log);
                    }
                }
                Pop::Message(None) => c.malformed_slots += 1,
                Pop::Gap { .. } => {} // the gateway never drops a report
                Pop::Empty => break,
            }
        }
        publish(bt, events, hk);

        let now = now_ns();
        if let Ok((cmd, reply)) = commands.try_recv() {
            busy = true;
            if let Command::Halt { detail, .. } = &cmd {
                let _ = hk.send(Hk::RiskDetail(detail.clone()));
            }
            let answer = command(bt, &cmd);
            if answer.is_ok() {
                if let Some(applied) = applied(bt, &cmd) {
                    log.push(now_ns(), || Entry::Cmd(applied));
                }
            }
            if matches!(cmd, Command::Kill | Command::Flatten | Command::Pause) {
                cancel_everything_at_venues(bt, out, c, flags, log);
            }
            if bt.has_requests() {
                send(bt, requests, out, NO_TICK, now_ns(), c, flags, log);
            }
            publish(bt, events, hk);
            let _ = hk.send(Hk::View(Box::new(view(bt, c))));
            let _ = reply.send(answer);
        }
        if now >= *next_view {
            *next_view = now + 250_000_000;
            // Commission assets' mids for the gateway (a BNB fee's value).
            for (k, instrument) in marks.books() {
                if let Some(b) = bt.book(instrument) {
                    if let (Some(bid), Some(ask)) = (b.best_bid(), b.best_ask()) {
                        marks.publish(k, rt_core::Price((bid.price.0 + ask.price.0) / 2));
                    }
                }
            }
            // Funding payments of perpetuals the gateway read and journaled.
            // Both are inputs of the decision log: parity replays them.
            for (instrument, amount) in marks.take_funding() {
                log.push(now, || Entry::Funding { instrument, amount });
                let _ = bt.book_funding(instrument, amount);
            }
            // Futures delivered at expiry, journaled by the gateway: closed at the venue's
            // delivery price (once a contract).
            for (instrument, price) in marks.take_deliveries() {
                log.push(now, || Entry::Delivery { instrument, price });
                let _ = bt.book_delivery(instrument, price);
            }
            // Derivatives' mark prices from the venue: their unrealised P&L is valued at them.
            for (instrument, price) in marks.take_venue_marks() {
                log.push(now, || Entry::VenueMark { instrument, price });
                let _ = bt.venue_mark(instrument, price);
            }
            // A venue banned our IP (HTTP 418): HALTED until an operator resumes.
            if crate::ratelimit::take_ban() {
                log.push(now, || Entry::Ban);
                bt.halt(rt_core::RiskCause::VenueBan);
            }
            // Timers (staleness, equity samples) run on the clock even without data.
            log.push(now, || Entry::Timer);
            bt.advance(now);
            if bt.has_requests() {
                send(bt, requests, out, NO_TICK, now_ns(), c, flags, log);
            }
            let _ = hk.send(Hk::View(Box::new(view(bt, c))));
            flags.publish_positions(positions(bt));
        }
        if *next_resync_check != 0 && now >= *next_resync_check {
            *next_resync_check = 0;
            // A snapshot that could not bridge the buffered diffs: ask for a newer one.
            for x in 0..md.len() {
                let unsynced = bt
                    .instruments()
                    .iter()
                    .filter(|i| bt.exchange_id(&i.exchange) == Some(x))
                    .any(|i| bt.book(i.id).map_or(true, |b| b.best_bid().is_none()));
                if unsynced {
                    flags.resync[x].store(true, Ordering::Relaxed);
                }
            }
        }
        if now >= *next_latency {
            *next_latency = now + 1_000_000_000;
            let _ = hk.send(Hk::Latency(Box::new(stages.take())));
            if let Some((at, ms)) = *stall {
                if now >= at {
                    stall_now(hk, ms);
                    *stall = None;
                }
            }
        }

        if flags.stopping() {
            match *stop_deadline {
                None => {
                    // Stop quoting and cancel everything; wait (bounded) for the venue.
                    *stop_deadline = Some(now + 3_000_000_000);
                    log.push(now, || Entry::Cmd(flightlog::Command::Stop));
                    bt.set_paused(true);
                    cancel_everything_at_venues(bt, out, c, flags, log);
                    if bt.has_requests() {
                        send(bt, requests, out, NO_TICK, now_ns(), c, flags, log);
                    }
                }
                Some(deadline) => {
                    // Done when nothing is open and nothing waits to be written (the fused
                    // layout's backlog, flushed at the start of every turn), or at the deadline.
                    let written = out.backlog.is_empty();
                    if (bt.open_orders().next().is_none() && written) || now >= deadline {
                        publish(bt, events, hk);
                        let _ = hk.send(Hk::View(Box::new(view(bt, c))));
                        let _ = hk.send(Hk::Latency(Box::new(stages.take())));
                        let left = bt.open_orders().count();
                        if left > 0 {
                            let _ = hk.send(Hk::Log(format!(
                                "strategy: {left} order(s) still open at the venue after 3 s"
                            )));
                        }
                        if !out.backlog.is_empty() {
                            let _ = hk.send(Hk::Log(format!(
                                "strategy: {} request(s) not handed to the gateway after 3 s",
                                out.backlog.len()
                            )));
                        }
                        flags.trader_done.store(true, Ordering::Release);
                        *done = true;
                        return Turn::Done;
                    }
                }
            }
        }
        if busy {
            Turn::Busy
        } else {
            Turn::Idle
        }
    }
}

/// Runs the strategy loop on its own thread until `flags.stop`; then cancels every open order
/// (waiting a bounded time for the venue to confirm) and returns.
pub fn run(mut strategy: StrategyLoop, spin: Spin) {
    let mut idle: u32 = 0;
    loop {
        match strategy.turn() {
            Turn::Done => return,
            Turn::Busy => idle = 0,
            Turn::Idle => {
                idle = idle.saturating_add(1);
                spin.idle(idle);
            }
        }
    }
}

/// The fused layout's strategy task, on the one hot thread's runtime: turns the loop for what
/// does not come with a market event (fills, commands, timers, the stop; the feeds turn it
/// inline after each event) and yields between turns so the feeds and the gateway run.
pub async fn run_task(
    strategy: std::rc::Rc<std::cell::RefCell<StrategyLoop>>,
    flags: Arc<Flags>,
    spin: Spin,
) {
    let mut idle: u32 = 0;
    loop {
        let turn = strategy.borrow_mut().turn();
        match turn {
            Turn::Done => return,
            Turn::Busy => {
                idle = 0;
                tokio::task::yield_now().await;
            }
            Turn::Idle => {
                idle = idle.saturating_add(1);
                spin.idle_async(idle, &flags.strategy_wake).await;
            }
        }
    }
}

/// Asks the gateway to cancel, per instrument, whatever the venue holds for the account (one
/// round trip, orders the engine may not know about included).
fn cancel_everything_at_venues(
    bt: &Trader,
    out: &mut Outbox,
    c: &mut Counters,
    flags: &Flags,
    log: &Log,
) {
    for i in bt.instruments() {
        let Some(exchange) = bt.exchange_id(&i.exchange) else {
            continue;
        };
        let msg = OrderMsg {
            cancel: true,
            amend: false,
            exchange: exchange as u32,
            instrument: i.id,
            // 0: every open order of the instrument.
            order_id: 0,
            side: rt_core::Side::Buy,
            kind: rt_core::OrderKind::Limit,
            price: rt_core::Price::ZERO,
            qty: rt_core::Qty::ZERO,
            frame_ns: NO_TICK,
            decided_ns: now_ns(),
            reduce_only: false,
        };
        log.push(msg.decided_ns, || Entry::CancelAll {
            exchange: msg.exchange,
            instrument: i.id,
        });
        out.push(&msg, c, flags);
        c.cancels_out += 1;
    }
    flags.wake_gateway();
}

/// Hands what happened (orders, fills, positions, risk changes) to the housekeeping thread.
fn publish(bt: &mut Trader, events: &mut Vec<TraderEvent>, hk: &HkSender) {
    bt.drain_events(events);
    for ev in events.drain(..) {
        let _ = hk.send(Hk::Trader(ev));
    }
}

/// Writes the driver's requests to the orders ring. A full orders ring is waited out: an
/// order or a cancel is never dropped (the gateway drains it continuously).
#[allow(clippy::too_many_arguments)]
fn send(
    bt: &mut Trader,
    requests: &mut Vec<VenueRequest>,
    out: &mut Outbox,
    frame_ns: Nanos,
    decided_ns: Nanos,
    c: &mut Counters,
    flags: &Flags,
    log: &Log,
) {
    bt.drain_requests(requests);
    for r in requests.drain(..) {
        log.push(decided_ns, || flightlog::decision(bt, &r));
        let msg = match r {
            VenueRequest::New {
                exchange,
                instrument,
                request,
            } => {
                c.orders_out += 1;
                OrderMsg {
                    cancel: false,
                    amend: false,
                    exchange: exchange as u32,
                    instrument,
                    order_id: request.order_id,
                    side: request.side,
                    kind: request.kind,
                    price: request.price,
                    qty: request.qty,
                    frame_ns,
                    decided_ns,
                    // Risk lets only reducing orders through (REDUCING, or a future near its
                    // expiry): the venue enforces it too.
                    reduce_only: bt.reduce_only(instrument)
                        && crate::wire::reduces(
                            bt.portfolio().qty(instrument),
                            request.side,
                            request.qty,
                        ),
                }
            }
            VenueRequest::Cancel {
                exchange,
                instrument,
                order_id,
            } => {
                c.cancels_out += 1;
                OrderMsg {
                    cancel: true,
                    amend: false,
                    exchange: exchange as u32,
                    instrument,
                    order_id,
                    side: rt_core::Side::Buy,
                    kind: rt_core::OrderKind::Limit,
                    price: rt_core::Price::ZERO,
                    qty: rt_core::Qty::ZERO,
                    frame_ns,
                    decided_ns,
                    reduce_only: false,
                }
            }
            VenueRequest::Amend {
                exchange,
                instrument,
                order_id,
                side,
                price,
                qty,
            } => {
                c.amends_out += 1;
                OrderMsg {
                    cancel: false,
                    amend: true,
                    exchange: exchange as u32,
                    instrument,
                    order_id,
                    side,
                    kind: rt_core::OrderKind::Limit,
                    price,
                    qty,
                    frame_ns,
                    decided_ns,
                    reduce_only: false,
                }
            }
        };
        out.push(&msg, c, flags);
    }
    flags.wake_gateway();
}

/// Carries out an operator's command (also used at start to re-apply the journaled ones).
pub fn command(bt: &mut Trader, cmd: &Command) -> Reply {
    match cmd {
        Command::Pause => {
            bt.set_paused(true);
            Ok("paused: open orders cancelled, no new orders".to_owned())
        }
        Command::Resume => {
            bt.set_paused(false);
            if bt.risk_state() == rt_core::RiskState::Halted {
                bt.resume();
            }
            Ok(format!("resumed: risk state {}", bt.risk_state().as_str()))
        }
        Command::Flatten => {
            let n = bt.flatten();
            Ok(format!(
                "flattening: open orders cancelled, {n} closing order(s) sent; paused"
            ))
        }
        Command::Halt { cause, detail } => {
            bt.halt(*cause);
            Ok(format!(
                "risk state {} ({}): {detail}",
                bt.risk_state().as_str(),
                cause.as_str()
            ))
        }
        Command::Kill => {
            bt.kill();
            bt.set_paused(true);
            Ok(format!(
                "killed: risk state {}, every open order cancelled",
                bt.risk_state().as_str()
            ))
        }
        Command::Tighten(limit, value) => {
            let (scope, field, units) = tighten_args(limit, value)?;
            let integer = matches!(field, "max_open_orders" | "price_band_bps");
            let done = match scope {
                Scope::Account => bt.tighten_risk(None, field, units),
                Scope::Symbol(symbol) => bt.tighten_risk(Some(symbol), field, units),
                Scope::Asset(asset) => bt.tighten_asset(asset, units).map(|_| ()),
            };
            done.map_err(|e| match e {
                // In the operator's units, not the engine's fixed point.
                rt_core::TightenError::WouldLoosen { current, .. } => format!(
                    "risk.{limit}: {value} would loosen the limit (now {}); only tightening is \
                     allowed at run time",
                    if integer {
                        current.to_string()
                    } else {
                        crate::shared::dec(current)
                    }
                ),
                other => format!("risk.{limit}: {other}"),
            })?;
            Ok(format!("risk.{limit} tightened to {value}"))
        }
    }
}

/// What a tightening applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope<'a> {
    /// An account limit (`max_open_orders`, ...).
    Account,
    /// `instruments.<SYMBOL>.<limit>`: the symbol's limit, on every venue.
    Symbol(&'a str),
    /// `assets.<ASSET>.max_position`: an asset's limit across venues.
    Asset(&'a str),
}

/// A tightening's (scope, limit field, units) from its operator form.
fn tighten_args<'a>(limit: &'a str, value: &str) -> Result<(Scope<'a>, &'a str, i64), String> {
    let scoped = |rest: &'a str, what: &str| match rest.split_once('.') {
        Some((name, field)) => Ok((name, field)),
        None => Err(format!("{limit}: expected {what}")),
    };
    let (scope, field) = if let Some(rest) = limit.strip_prefix("instruments.") {
        let (sym, field) = scoped(rest, "instruments.<SYMBOL>.<limit>")?;
        (Scope::Symbol(sym), field)
    } else if let Some(rest) = limit.strip_prefix("assets.") {
        let (asset, field) = scoped(rest, "assets.<ASSET>.max_position")?;
        if field != "max_position" {
            return Err(format!(
                "{limit}: an asset has one limit, max_position (assets.{asset}.max_position)"
            ));
        }
        (Scope::Asset(asset), field)
    } else {
        (Scope::Account, limit)
    };
    let units = match field {
        "max_open_orders" | "price_band_bps" => value
            .parse::<u32>()
            .map(i64::from)
            .map_err(|_| format!("{limit}: {value:?} is not a whole number"))?,
        _ => Fixed::parse(value)
            .map_err(|e| format!("{limit}: {value:?}: {e}"))?
            .raw(),
    };
    Ok((scope, field, units))
}

/// A command that was carried out, as the decision log holds it.
fn applied(bt: &Trader, cmd: &Command) -> Option<flightlog::Command> {
    use flightlog::Command as C;
    Some(match cmd {
        Command::Pause => C::Pause,
        Command::Resume => C::Resume,
        Command::Flatten => C::Flatten,
        Command::Kill => C::Kill,
        Command::Halt { cause, .. } => C::Halt(*cause),
        Command::Tighten(limit, value) => {
            let (scope, field, units) = tighten_args(limit, value).ok()?;
            // An instrument's limit is logged by the first instrument of its symbol and
            // replayed by that symbol (every venue's), as it was applied.
            let instrument = match scope {
                Scope::Account => None,
                Scope::Symbol(s) => Some(bt.instruments().iter().find(|i| i.symbol == s)?.id),
                Scope::Asset(a) => {
                    let index = bt.risk().config().assets.iter().position(|x| x.name == a)?;
                    return Some(C::TightenAsset(u32::try_from(index).ok()?, units));
                }
            };
            C::Tighten(instrument, LimitField::parse(field)?, units)
        }
    })
}

/// The decision log, if the flight recorder is on.
struct Log(Option<DecisionTap>);

impl Log {
    /// Builds and sends the entry only when recording.
    #[inline]
    fn push(&self, ts: Nanos, entry: impl FnOnce() -> Entry) {
        if let Some(tap) = &self.0 {
            tap.push(ts, entry());
        }
    }
}

/// Every instrument's position by (exchange, symbol), for the position watch.
fn positions(bt: &Trader) -> crate::shared::Positions {
    let p = bt.portfolio();
    bt.instruments()
        .iter()
        .map(|i| {
            let key = (i.exchange.clone(), i.symbol.clone());
            (key, p.position(i.id).qty().0)
        })
        .collect()
}

fn view(bt: &Trader, c: &Counters) -> TraderView {
    let p = bt.portfolio();
    let k = bt.counters();
    let m = bt.markout_totals();
    TraderView {
        risk_state: Some(bt.risk_state()),
        anchors: bt.risk_anchors(),
        paused: bt.is_paused(),
        open_orders: u32::try_from(bt.open_orders().count()).unwrap_or(u32::MAX),
        equity: p.equity(),
        realised: p.realised(),
        fees: p.fees(),
        positions: bt
            .instruments()
            .iter()
            .map(|i| {
                let pos = p.position(i.id);
                PositionView {
                    instrument: i.id,
                    qty: pos.qty().0,
                    avg_price: pos.avg_entry_price().map_or(0, |x| x.0),
                    realised: pos.realised(),
                    unrealised: pos.unrealised(),
                    fees: pos.fees(),
                    mark_age_ms: bt.mark_age(i.id).map_or(-1, |ns| ns / 1_000_000),
                }
            })
            .collect(),
        counters: vec![
            ("md_slots", c.md_slots),
            ("md_events", c.md_events),
            ("ring_gaps", c.ring_gaps),
            ("ring_lost", c.ring_lost),
            ("malformed_slots", c.malformed_slots),
            ("feed_downs", c.feed_downs),
            ("execs", c.execs),
            ("orders_out", c.orders_out),
            ("cancels_out", c.cancels_out),
            ("amends_out", c.amends_out),
            ("amends_done", k.amends_done),
            ("amends_rejected", k.amends_rejected),
            ("orders_ring_waits", c.orders_ring_waits),
            ("book_updates", k.book_updates),
            ("gaps", k.gaps),
            ("resyncs", k.resyncs),
            ("book_crossings", k.crossings),
            ("book_crossings_repaired", k.crossings_repaired),
            ("orders_placed", k.orders_placed),
            ("orders_sent", k.orders_sent),
            ("orders_rejected", k.orders_rejected),
            ("fills", k.fills),
            ("strategy_calls", k.strategy_calls),
            // Markouts of fills (rt_core::markout), for anomaly detection's `markout_bps`.
            ("markouts", m.count),
            ("markout_favourable_cbps", m.favourable_cbps),
            ("markout_adverse_cbps", m.adverse_cbps),
        ],
        rejections: k
            .rejections()
            .into_iter()
            .map(|(r, n)| (r.as_str(), n))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::test_request as request;

    fn drain(rx: &mut Consumer) -> Vec<(u64, bool)> {
        let mut seen = Vec::new();
        while let Pop::Message(Some(m)) = rx.try_pop(OrderMsg::read) {
            seen.push((m.order_id, m.cancel));
        }
        seen
    }

    #[test]
    fn a_full_orders_ring_keeps_the_fused_layouts_requests_in_order_and_drops_none() {
        let (tx, mut rx) = rt_ring::Ring::in_memory(2, 128).expect("an in-memory ring");
        let flags = Flags::new(1);
        let mut c = Counters::default();
        let mut out = Outbox::new(tx, true);
        // Two fit; the rest wait in the backlog, and a cancel never passes its order.
        for (id, cancel) in [(1, false), (2, false), (3, false), (3, true), (4, false)] {
            out.push(&request(id, cancel), &mut c, &flags);
        }
        assert!(out.take_pushed());
        assert_eq!(out.backlog.len(), 3);
        assert_eq!(c.orders_ring_waits, 1);
        assert_eq!(drain(&mut rx), [(1, false), (2, false)]);
        // A push while requests wait goes behind them, even with room in the ring.
        out.push(&request(5, true), &mut c, &flags);
        assert!(out.flush(&flags));
        assert_eq!(drain(&mut rx), [(3, false), (3, true)]);
        assert!(out.flush(&flags));
        assert_eq!(drain(&mut rx), [(4, false), (5, true)]);
        assert!(out.backlog.is_empty() && !out.flush(&flags));
        // Every field survives the wait.
        let (tx, mut rx) = rt_ring::Ring::in_memory(2, 128).expect("an in-memory ring");
        let mut out = Outbox::new(tx, true);
        for id in 1..=3 {
            out.push(&request(id, false), &mut c, &flags);
        }
        drain(&mut rx);
        out.flush(&flags);
        match rx.try_pop(OrderMsg::read) {
            Pop::Message(Some(m)) => assert_eq!(m, request(3, false)),
            _ => panic!("the waiting order was not written"),
        }
    }
}
