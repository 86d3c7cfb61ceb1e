//! The gateway thread: orders out to the venues, execution reports back.
//!
//! The venue's side of order entry is behind the execution boundary
//! (`rt_venues::execution::ExecutionClient`; Binance Spot: `rt_venues::binance::SpotExecution`):
//! it builds and signs each request, classifies each answer (accepted, rejected, rate-limited,
//! outcome unknown) and decodes the private stream into order updates. This module keeps the
//! I/O: REST requests over a few keep-alive connections per venue, the private stream (its key,
//! then order updates over WebSocket) for every status change and fill, the rings, the journal,
//! the rate-limit hooks and the catch-ups. Before the engine trades, every open order the venue
//! still holds for this account and symbol is cancelled (a restarted engine starts clean).
//!
//! Every order written and every report read is journaled here, before the strategy thread
//! hears of it, so a fill seen is a fill kept: handed to the journal ring (`journal_ring`: a
//! file-backed ring the journal writer thread empties into the journal, and the next start
//! replays if the process died first), so that the order path never waits for file I/O. Reports
//! go to the strategy thread through the fills ring; a venue's refusal of an order or a cancel
//! becomes a report too.
//!
//! Client order ids are `<engine prefix><order id>`; reports for other ids are not ours and
//! are ignored (counted).
//!
//! Every REST request counts against the venue's rate limits (`ratelimit`, shared with the
//! feed): a new order that would exceed them, or comes during a 429's back-off or an IP ban,
//! is refused here (`venue_rate_limit`) before it is journaled or sent; a cancel waits out a
//! back-off (it is refused only during a ban). A 418 is paged (logged `PAGE`) and halts the
//! risk engine (`venue_ban`, by the strategy thread); see `ratelimit` for when orders flow
//! again.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use hyper::Method;
use rt_core::{Exec, ExecKind, OrderLifecycle, Qty, RejectReason};
use rt_ring::{Consumer, Pop, Producer};
use rt_venues::execution::{
    AccountChange, AccountReason, ExecutionClient, Handshake, NewOrderSpec, Operation, OrderUpdate,
    Outcome, PositionSide, PrivateEvent, RefusalKind, UpdateKind, VenueRequest, VenueStatus,
};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::clock::now_ns;
use crate::http::{Base, Client, HttpError};
use crate::journal::Record;
use crate::journal_ring::JournalTx;
use crate::latency::{Stage, Stages};
use crate::shared::{dec, side_str, Flags, Hk, HkSender, Names};
use crate::wire::{ExecMsg, OrderMsg};

/// The journal's reason of an order self-trade prevention expired.
pub(crate) const STP_REASON: &str = "self_trade_prevention";

/// Connections (and so requests in flight) per venue.
const CONNECTIONS: usize = 4;
/// A REST request without an answer by then is given up (its outcome: the user stream).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// One venue's order entry.
#[derive(Debug, Clone)]
pub struct VenueConfig {
    pub exchange: u32,
    pub name: String,
    pub rest: String,
    pub ws: String,
    /// The venue's WebSocket API when its new orders and cancels go over it (`order_entry:
    /// websocket`; see `ws_orders`), REST the fallback; `None`: REST only.
    pub ws_api: Option<String>,
    /// The venue's order entry (its credentials, when it has any, and the self-trade
    /// prevention mode sent with every order are the client's).
    pub client: Arc<dyn ExecutionClient>,
    pub symbols: Vec<String>,
    /// The instruments the engine's strategies trade on this venue: the only ones whose open
    /// orders it cancels (another instrument may be read only, its orders someone else's).
    pub traded: Vec<String>,
    /// Prices of commission assets (shared by every venue; see `fees`).
    pub marks: Arc<crate::fees::FeeMarks>,
    /// The venue's rate limits and usage (shared with its feed).
    pub limits: Arc<crate::ratelimit::VenueLimits>,
    /// (symbol, settlement currency) of the venue's contracts (swaps and futures with a
    /// listing's contract terms): their commissions in it are fees as they stand.
    pub settlements: Vec<(String, String)>,
    /// The venue's futures contracts, their expiry, and whether the journal holds their
    /// delivery (`delivery`).
    pub futures: Vec<crate::delivery::Future>,
}

impl VenueConfig {
    /// The venue's derivatives account when a strategy trades a derivative on it (a swap on
    /// OKX, any USD-M symbol); `None` for spot, and for an account whose swaps are read only
    /// (their positions, settings and funding are another desk's).
    pub fn derivatives(&self) -> Option<&dyn rt_venues::execution::DerivativesAccount> {
        let account = self.client.derivatives()?;
        self.traded
            .iter()
            .any(|s| self.client.reduce_only(s))
            .then_some(account)
    }

    /// The settlement currency of `symbol` if it is a contract.
    pub fn settlement(&self, symbol: &str) -> Option<&str> {
        self.settlements
            .iter()
            .find(|(s, _)| s == symbol)
            .map(|(_, c)| c.as_str())
    }

    /// Books a commission of `amount` `asset` charged on a fill of `symbol` (see `fees`).
    pub fn book_commission(&self, symbol: &str, asset: &str, amount: i64) -> crate::fees::Booked {
        crate::fees::book(symbol, asset, amount, self.settlement(symbol), |a| {
            self.marks.price(self.exchange, a)
        })
    }
}

/// What the gateway needs.
#[derive(Debug)]
pub struct GatewayConfig {
    pub venues: Vec<VenueConfig>,
    pub names: Names,
    /// Prefix of our client order ids.
    pub client_prefix: String,
    /// The funding payments the journal holds, and when it began (ms; `None`: a new one):
    /// the funding history is read from there at start ([`FundingStart`]).
    pub funding: FundingStart,
}

/// What the journal says of funding at start: its payments, and when it began (ms since the
/// epoch; `None` for a new journal). The gateway reads the venue's funding history from the
/// newest journaled payment's time (or the journal's start) and books the payments the journal
/// does not hold: a payment made while the engine was down is booked once, and one already
/// journaled is not booked again (by the venue's id; one journaled without an id, as an update
/// on the stream books it, by its symbol, asset, amount and time).
#[derive(Debug, Clone, Default)]
pub struct FundingStart {
    pub journaled: Vec<crate::journal::RecoveredFunding>,
    pub journal_start_ms: Option<u64>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    orders: u64,
    cancels: u64,
    cancel_alls: u64,
    /// Amendments sent, and those whose outcome was asked of the venue (no push came).
    amends: u64,
    amends_settled: u64,
    reports: u64,
    foreign_reports: u64,
    venue_rejects: u64,
    request_errors: u64,
    reconciled_cancels: u64,
    fills_ring_full: u64,
    /// Journal records that found the journal ring full and waited for the writer.
    journal_ring_waits: u64,
    stream_reconnects: u64,
    refused_stream_down: u64,
    caught_up_fills: u64,
    base_commissions: u64,
    self_trade_prevented: u64,
    unreadable_reports: u64,
    listen_key_expiries: u64,
    other_asset_commissions: u64,
    unpriced_commissions: u64,
    /// New orders refused by the venue's rate limits (here, or by a 429/418).
    rate_limited: u64,
    /// Account changes of a futures venue (`ACCOUNT_UPDATE`), and the funding payments among
    /// them.
    account_updates: u64,
    funding_payments: u64,
    /// Mark prices read off a futures venue's stream.
    venue_marks: u64,
    /// Requests (new orders and cancels) sent over a venue's WebSocket API (`ws_orders`).
    ws_api_requests: u64,
    /// New orders handed to a connection busy with another request: they waited for it.
    orders_queued: u64,
}

impl Counters {
    fn named(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("gw_orders", self.orders),
            ("gw_cancels", self.cancels),
            ("gw_cancel_alls", self.cancel_alls),
            ("gw_amends", self.amends),
            ("gw_amends_settled", self.amends_settled),
            ("gw_reports", self.reports),
            ("gw_foreign_reports", self.foreign_reports),
            ("gw_venue_rejects", self.venue_rejects),
            ("gw_request_errors", self.request_errors),
            ("gw_reconciled_cancels", self.reconciled_cancels),
            ("gw_fills_ring_full", self.fills_ring_full),
            ("gw_journal_ring_waits", self.journal_ring_waits),
            ("gw_stream_reconnects", self.stream_reconnects),
            ("gw_refused_stream_down", self.refused_stream_down),
            ("gw_caught_up_fills", self.caught_up_fills),
            ("gw_base_commissions", self.base_commissions),
            ("gw_self_trade_prevented", self.self_trade_prevented),
            ("gw_unreadable_reports", self.unreadable_reports),
            ("gw_listen_key_expiries", self.listen_key_expiries),
            ("gw_other_asset_commissions", self.other_asset_commissions),
            ("gw_unpriced_commissions", self.unpriced_commissions),
            ("gw_rate_limited", self.rate_limited),
            ("gw_account_updates", self.account_updates),
            ("gw_funding_payments", self.funding_payments),
            ("gw_venue_marks", self.venue_marks),
            ("gw_ws_api_requests", self.ws_api_requests),
            ("gw_orders_queued", self.orders_queued),
        ]
    }
}

struct State {
    fills: Producer,
    journal: JournalTx,
    hk: HkSender,
    names: Names,
    prefix: String,
    counters: Counters,
    stages: Stages,
    /// Order id -> when it was written (order_to_ack).
    written: std::collections::HashMap<u64, i64>,
    flags: Arc<Flags>,
    /// Reports waiting for room in the fills ring, oldest first.
    pending: std::collections::VecDeque<ExecMsg>,
    /// Orders sent and not finished, by id: what a user-stream reconnect catches up.
    working: std::collections::HashMap<u64, Working>,
    /// Amendments sent whose outcome has not been reported: order id -> (price, quantity
    /// ordered) asked.
    amending: std::collections::HashMap<u64, Amending>,
    /// The number of the last amendment sent (its `request` at the venue).
    amend_seq: u64,
    /// Exchanges whose user data stream is down (reconnecting): new orders are refused.
    down: std::collections::HashSet<u32>,
    /// (order id, trade id) of fills a catch-up reported, so the stream does not report them
    /// again (it may deliver them after the catch-up): the newest [`CAUGHT_KEPT`].
    caught: std::collections::HashSet<(u64, i64)>,
    caught_order: std::collections::VecDeque<(u64, i64)>,
    /// Per exchange: funding payments attributed from the venue's history (by its id), and the
    /// time (ms) the next query of that history starts from.
    funding_seen: std::collections::HashSet<(u32, u64)>,
    funding_since: std::collections::HashMap<u32, u64>,
    /// Per exchange: traded symbols a funding update named without amounts (OKX), not yet
    /// found in the history; and whether a task is asking the history for them.
    funding_awaiting: std::collections::HashMap<u32, std::collections::BTreeSet<String>>,
    funding_asking: std::collections::HashSet<u32>,
    /// Funding payments booked by one path and not yet matched by the other (see
    /// [`FundingLedger`]).
    funding_booked: FundingLedger,
    /// The funding history is read from then on (ms): when the journal began (this run, for
    /// a new journal); the newest payment seen (`funding_since`, from the journal's at start)
    /// narrows it.
    funding_from_ms: u64,
    /// Exchanges whose funding history was read once since the start (the read at start
    /// books what the journal lacks, and retires the journal's payments without an id).
    funding_read: std::collections::HashSet<u32>,
}

/// A funding payment booked from the stream (`history: false`) or from the venue's history.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FundingBooked {
    exchange: u32,
    symbol: String,
    asset: String,
    amount: i64,
    history: bool,
    /// The venue's time of the payment (ms), for one from the journal.
    time_ms: u64,
    /// Booked by an earlier run, journaled without the venue's id (from the stream): the
    /// history's listing of it is matched within [`FUNDING_TIME_SLACK_MS`] of its time, and
    /// only by the first read of the history (it is then forgotten).
    journaled: bool,
}

/// How far apart the venue's time of a payment and its journaled time may be for the history's
/// listing to be that journaled payment (an older journal has only the local clock's time): a
/// symbol's funding periods are an hour apart or more.
const FUNDING_TIME_SLACK_MS: u64 = 300_000;

/// Funding payments remembered for the match between the stream and the history.
const FUNDING_KEPT: usize = 256;

/// Funding payments booked by one path and not yet matched by the other, newest last (at
/// most [`FUNDING_KEPT`]): an update naming its position (isolated margin) is booked at once,
/// a cross-margin one from the venue's history, which lists the isolated payment too;
/// whichever path comes second finds the payment here and does not book it again.
#[derive(Debug, Default)]
struct FundingLedger {
    booked: std::collections::VecDeque<FundingBooked>,
}

impl FundingLedger {
    /// Whether the other path already booked this payment (it is then forgotten: matched);
    /// otherwise it is remembered as booked by this path.
    fn booked_before(&mut self, payment: FundingBooked) -> bool {
        let matched = self.booked.iter().position(|b| {
            b.history != payment.history
                && b.exchange == payment.exchange
                && b.symbol == payment.symbol
                && b.asset == payment.asset
                && b.amount == payment.amount
                && (!b.journaled || b.time_ms.abs_diff(payment.time_ms) <= FUNDING_TIME_SLACK_MS)
        });
        if let Some(i) = matched {
            self.booked.remove(i);
            return true;
        }
        self.booked.push_back(payment);
        while self.booked.len() > FUNDING_KEPT {
            self.booked.pop_front();
        }
        false
    }

    /// Forgets the journal's payments of `exchange` that the history did not list.
    fn forget_journaled(&mut self, exchange: u32) {
        self.booked
            .retain(|b| !(b.journaled && b.exchange == exchange));
    }
}

/// The funding state the journal gives the gateway at start ([`funding_from_journal`]).
#[derive(Debug, Default)]
struct JournaledFunding {
    /// The ids of the journaled payments (never booked again).
    seen: std::collections::HashSet<(u32, u64)>,
    /// The newest journaled payment's time, per exchange.
    since: std::collections::HashMap<u32, u64>,
    /// The payments journaled without an id that the history's window may list.
    ledger: FundingLedger,
    /// The time the history is read from (the journal's start).
    from_ms: u64,
}

/// What the journal says of funding, for the gateway's state (see [`JournaledFunding`]).
fn funding_from_journal(
    exchange_of: impl Fn(&str) -> Option<u32>,
    start: &FundingStart,
    now_ms: u64,
) -> JournaledFunding {
    let mut seen = std::collections::HashSet::new();
    let mut newest: std::collections::HashMap<u32, u64> = std::collections::HashMap::new();
    for f in &start.journaled {
        let Some(exchange) = exchange_of(&f.exchange) else {
            continue;
        };
        if let Some(id) = f.id {
            seen.insert((exchange, id));
        }
        let t = newest.entry(exchange).or_insert(0);
        *t = (*t).max(f.paid_ms());
    }
    let mut ledger = FundingLedger::default();
    for f in &start.journaled {
        let (Some(exchange), None) = (exchange_of(&f.exchange), f.id) else {
            continue;
        };
        let Ok(amount) = crate::journal::signed_units(&f.amount) else {
            continue;
        };
        // Older than any window the history is read in: never listed again.
        let window = newest.get(&exchange).copied().unwrap_or(0);
        if f.paid_ms() + FUNDING_LOOKBACK_MS + FUNDING_TIME_SLACK_MS < window {
            continue;
        }
        ledger.booked.push_back(FundingBooked {
            exchange,
            symbol: f.symbol.clone(),
            asset: f.asset.clone(),
            amount,
            history: false,
            time_ms: f.paid_ms(),
            journaled: true,
        });
    }
    while ledger.booked.len() > FUNDING_KEPT {
        ledger.booked.pop_front();
    }
    let from = start.journal_start_ms.unwrap_or(now_ms).min(now_ms);
    JournaledFunding {
        seen,
        since: newest,
        ledger,
        from_ms: from,
    }
}

/// What the gateway knows of an order it sent that has not finished: where it went and the
/// order's lifecycle (side, quantity, fills, acknowledged or not: `rt_core::order`).
#[derive(Debug, Clone)]
struct Working {
    exchange: u32,
    symbol: String,
    life: OrderLifecycle,
    /// When its request was written.
    sent_ns: i64,
    /// The venue's trade ids of the fills reported (a fill is reported once, whether the user
    /// stream or a catch-up saw it first).
    trades: Vec<i64>,
}

/// Fills a catch-up reported that are remembered against a late duplicate on the stream.
const CAUGHT_KEPT: usize = 8192;

impl State {
    fn remember_caught(&mut self, order_id: u64, trade_id: i64) {
        if self.caught.insert((order_id, trade_id)) {
            self.caught_order.push_back((order_id, trade_id));
        }
        while self.caught_order.len() > CAUGHT_KEPT {
            if let Some(old) = self.caught_order.pop_front() {
                self.caught.remove(&old);
            }
        }
    }

    /// Hands over the reports that were waiting for room, in order.
    fn flush(&mut self) {
        while let Some(exec) = self.pending.front().copied() {
            if !self.deliver(exec) {
                return;
            }
            self.pending.pop_front();
        }
    }

    /// Hands a record to the journal writer (never dropped: a full ring is waited out).
    fn journal(&mut self, record: &Record) {
        self.journal.record(record);
        self.counters.journal_ring_waits = self.journal.waits();
    }

    /// Hands a report to the strategy thread. A full fills ring is waited out (briefly
    /// yielding): a report is never dropped.
    fn deliver(&mut self, msg: ExecMsg) -> bool {
        let mut buf = [0u8; crate::wire::EXEC_BYTES];
        let n = msg.write(&mut buf);
        if self.fills.try_push(&buf[..n]).is_ok() {
            return true;
        }
        self.counters.fills_ring_full += 1;
        false
    }

    fn log(&self, line: String) {
        let _ = self.hk.send(Hk::Log(format!("gateway: {line}")));
    }
}

type Shared = Rc<RefCell<State>>;

/// A request for a venue worker.
#[derive(Debug, Clone, Copy)]
struct Job {
    msg: OrderMsg,
}

/// A venue's connections as the gateway's loop hands them requests. Each connection's worker
/// writes one request and reads its answer before the next (HTTP/1.1 without pipelining), so
/// a new order goes to the connection with the fewest requests queued or in flight: it never
/// waits behind another order's answer while a connection is free. A cancel or an amendment
/// follows the connection its order went down, so it never overtakes the order. While a
/// cancel-all is queued or in flight, new orders go down its connection, behind it: a
/// cancel-all never cancels an order decided after it.
struct Lanes {
    exchange: u32,
    txs: Vec<mpsc::UnboundedSender<Job>>,
    /// Per connection: requests handed to its worker and not finished (queued or in flight).
    load: Vec<Rc<std::cell::Cell<u32>>>,
    /// Per connection: cancel-alls handed to its worker and not finished.
    sweeps: Vec<Rc<std::cell::Cell<u32>>>,
    /// Order id -> its connection, and when it was routed (ms, for pruning).
    route: std::collections::HashMap<u64, (usize, u64)>,
}

/// A cancel of every open order of `msg.instrument` (order id 0).
fn is_cancel_all(msg: &OrderMsg) -> bool {
    msg.cancel && msg.order_id == 0
}

/// A routed order's entry is kept at least this long, and then while the order is working.
const ROUTE_KEEP_MS: u64 = 60_000;

impl Lanes {
    /// The connection for `msg`: its order's for a cancel or an amendment, else the least
    /// loaded (the order id's own on a tie, which spreads an idle venue's orders).
    fn pick(&mut self, msg: &OrderMsg, now_ms: u64) -> usize {
        let n = self.txs.len();
        let own = (msg.order_id % n as u64) as usize;
        if (msg.cancel || msg.amend) && msg.order_id != 0 {
            return self.route.get(&msg.order_id).map_or(own, |&(k, _)| k);
        }
        let sweeping = (!msg.cancel)
            .then(|| (0..n).find(|&k| self.sweeps[k].get() > 0))
            .flatten();
        let k = sweeping.unwrap_or_else(|| {
            (0..n)
                .map(|i| (own + i) % n)
                .min_by_key(|&k| self.load[k].get())
                .unwrap_or(own)
        });
        if msg.order_id != 0 {
            self.route.insert(msg.order_id, (k, now_ms));
        }
        k
    }

    /// Hands `msg` to its connection's worker; whether that connection was busy with
    /// another request (`msg` waits for it).
    fn send(&mut self, msg: OrderMsg, now_ms: u64) -> bool {
        let k = self.pick(&msg, now_ms);
        let busy = self.load[k].get() > 0;
        self.load[k].set(self.load[k].get() + 1);
        if is_cancel_all(&msg) {
            self.sweeps[k].set(self.sweeps[k].get() + 1);
        }
        let _ = self.txs[k].send(Job { msg });
        busy
    }

    /// Forgets the routes of orders no longer working, routed long enough ago, on a connection
    /// with nothing queued or in flight (so their request was written: an order's request may
    /// wait a long time behind cancels sleeping out a venue's back-off, and a cancel must still
    /// find its connection then).
    fn prune(&mut self, working: &std::collections::HashMap<u64, Working>, now_ms: u64) {
        let load = &self.load;
        self.route.retain(|id, (k, at)| {
            working.contains_key(id)
                || now_ms.saturating_sub(*at) < ROUTE_KEEP_MS
                || load[*k].get() > 0
        });
    }
}

/// An order-entry request built for its transport: REST, or the WebSocket API's (`ws_api`
/// written into its connection's buffer).
enum Request<'a> {
    Rest(VenueRequest),
    WsApi(&'a crate::ws_orders::WsOrders, crate::ws_orders::Prepared),
}

/// Runs the gateway on its own thread until the strategy thread is done (it sends the last
/// cancels).
pub fn run(
    cfg: GatewayConfig,
    orders: Consumer,
    fills: Producer,
    journal: JournalTx,
    flags: Arc<Flags>,
    hk: HkSender,
    spin: crate::engine::Spin,
) {
    let runtime = match crate::engine::hot_runtime(spin) {
        Ok(r) => r,
        Err(e) => {
            let _ = hk.send(Hk::Log(format!("gateway: no runtime: {e}")));
            return;
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(
        &runtime,
        serve(
            cfg,
            orders,
            fills,
            journal,
            flags,
            hk,
            spin,
            Handoff::default(),
        ),
    );
}

/// The gateway, on the runtime of the calling thread (its own, or in the fused layout the one
/// hot thread's, beside the feeds and the strategy), inside a `LocalSet`: until the strategy
/// is done.
#[allow(clippy::too_many_arguments)]
pub async fn serve(
    cfg: GatewayConfig,
    orders: Consumer,
    fills: Producer,
    journal: JournalTx,
    flags: Arc<Flags>,
    hk: HkSender,
    spin: crate::engine::Spin,
    handoff: Handoff,
) {
    let journaled = funding_from_journal(
        |name| {
            cfg.venues
                .iter()
                .find(|v| v.name == name)
                .map(|v| v.exchange)
        },
        &cfg.funding,
        now_ms(),
    );
    let state = Rc::new(RefCell::new(State {
        fills,
        journal,
        hk: hk.clone(),
        names: cfg.names.clone(),
        prefix: cfg.client_prefix.clone(),
        counters: Counters::default(),
        stages: Stages::recycled(),
        written: std::collections::HashMap::new(),
        flags: flags.clone(),
        pending: std::collections::VecDeque::new(),
        working: std::collections::HashMap::new(),
        amending: std::collections::HashMap::new(),
        amend_seq: 0,
        down: std::collections::HashSet::new(),
        caught: std::collections::HashSet::new(),
        caught_order: std::collections::VecDeque::new(),
        funding_seen: std::collections::HashSet::new(),
        funding_since: std::collections::HashMap::new(),
        funding_awaiting: std::collections::HashMap::new(),
        funding_asking: std::collections::HashSet::new(),
        funding_booked: FundingLedger::default(),
        funding_from_ms: journaled.from_ms,
        funding_read: std::collections::HashSet::new(),
    }));
    {
        // The journal's payments: their ids, the newest one's time, those without an id.
        let mut s = state.borrow_mut();
        s.funding_seen = journaled.seen;
        s.funding_since = journaled.since;
        s.funding_booked = journaled.ledger;
    }
    {
        let mut queues = Vec::new();
        // The connections' workers, polled by this task itself (not tasks of their own): an
        // order handed to an idle connection is built, journaled and handed to the connection
        // in the same poll that took it off the orders ring, with no task hop in between.
        let workers: Workers = futures_util::stream::FuturesUnordered::new();
        for venue in &cfg.venues {
            let base = match Base::parse(&venue.rest) {
                Ok(b) => b,
                Err(e) => {
                    state.borrow().log(format!("{}: {e}", venue.name));
                    flags.fail();
                    return;
                }
            };
            let mut client = Client::with_limits(base.clone(), venue.limits.clone());
            if let Err(e) = reconcile(&state, &mut client, venue).await {
                state
                    .borrow()
                    .log(format!("{}: {e}; not trading", venue.name));
                flags.fail();
                return;
            }
            // The user stream first: no report of an order may be missed.
            let (ws, listen_key) = match open_stream(&mut client, venue).await {
                Ok(opened) => opened,
                Err(e) => {
                    state
                        .borrow()
                        .log(format!("{}: no user data stream: {e}", venue.name));
                    flags.stop.store(true, Ordering::Relaxed);
                    return;
                }
            };
            let listen_key = Rc::new(RefCell::new(listen_key));
            tokio::task::spawn_local(user_stream(
                state.clone(),
                venue.clone(),
                ws,
                listen_key.clone(),
                flags.clone(),
            ));
            // Funding paid while the engine was down: the history from the journal's newest
            // payment on (the stream is open: what is paid from now on, it reports).
            ask_funding(&state, venue);
            // Futures delivered at expiry, booked once (`delivery`).
            watch_deliveries(&state, venue);
            // New orders and cancels over the venue's WebSocket API (`ws_orders`), when the
            // manifest says so: one connection, shared by this venue's workers.
            let ws_api = venue
                .ws_api
                .as_deref()
                .zip(venue.client.frame_order_entry())
                .map(|(url, entry)| {
                    crate::ws_orders::WsOrders::start(
                        &venue.name,
                        url,
                        entry,
                        venue.limits.clone(),
                        flags.clone(),
                        hk.clone(),
                    )
                });
            if let Some(w) = &ws_api {
                // Trading starts with the connection open, or with REST if it will not open.
                if !w.wait_up(Duration::from_secs(5)).await {
                    state.borrow().log(format!(
                        "{}: the WebSocket API is not connected yet; orders over REST until it is",
                        venue.name
                    ));
                }
            }
            // One queue per connection ([`Lanes`]): a new order to the least loaded, its
            // cancel down the same connection, in order (a cancel never overtakes its order).
            let mut txs = Vec::with_capacity(CONNECTIONS);
            let mut load = Vec::with_capacity(CONNECTIONS);
            let mut sweeps = Vec::with_capacity(CONNECTIONS);
            for _ in 0..CONNECTIONS {
                let (tx, rx) = mpsc::unbounded_channel::<Job>();
                let busy = Rc::new(std::cell::Cell::new(0u32));
                let sweeping = Rc::new(std::cell::Cell::new(0u32));
                workers.push(Box::pin(worker(
                    state.clone(),
                    venue.clone(),
                    base.clone(),
                    ws_api.clone(),
                    rx,
                    (busy.clone(), sweeping.clone()),
                )));
                txs.push(tx);
                load.push(busy);
                sweeps.push(sweeping);
            }
            tokio::task::spawn_local(keep_alive(
                state.clone(),
                venue.clone(),
                Client::with_limits(base.clone(), venue.limits.clone()),
                listen_key,
                flags.clone(),
            ));
            queues.push(Lanes {
                exchange: venue.exchange,
                txs,
                load,
                sweeps,
                route: std::collections::HashMap::new(),
            });
        }
        let venues = queues.len();
        *handoff.0.borrow_mut() = Some(Intake {
            orders,
            queues,
            workers,
            state: state.clone(),
            waker: None,
        });
        flags.gateway_ready.store(true, Ordering::Release);
        state
            .borrow()
            .log(format!("ready: {venues} venue(s), user streams open"));

        // The heartbeat's rate-limit pressure, per venue.
        let pressure: Vec<_> = cfg
            .venues
            .iter()
            .map(|v| crate::ratelimit::PressureNames::new(&v.name))
            .collect();
        let mut idle: u32 = 0;
        let mut report_at = now_ns() + 1_000_000_000;
        loop {
            // Read before the ring is drained: the strategy writes its last requests, then
            // says it is done; an empty drain ends the gateway only if it was done before it.
            let done_before = flags.trader_done.load(Ordering::Acquire);
            let mut got = std::future::poll_fn(|cx| {
                std::task::Poll::Ready(handoff.with(|intake| {
                    if !intake
                        .waker
                        .as_ref()
                        .is_some_and(|w| w.will_wake(cx.waker()))
                    {
                        intake.waker = Some(cx.waker().clone());
                    }
                    intake.take(cx)
                }))
            })
            .await
            .unwrap_or(false);
            if !state.borrow().pending.is_empty() {
                if flags.trader_done.load(Ordering::Acquire) {
                    // Nobody reads the ring any more; the journal holds these reports.
                    state.borrow_mut().pending.clear();
                } else {
                    state.borrow_mut().flush();
                    got = true;
                }
            }
            if now_ns() >= report_at {
                report_at = now_ns() + 1_000_000_000;
                let mut s = state.borrow_mut();
                let mut named = s.counters.named();
                let now = crate::ratelimit::wall_ms();
                for (venue, names) in cfg.venues.iter().zip(&pressure) {
                    named.extend(names.named(&venue.limits.pressure(now)));
                }
                let _ = s.hk.send(Hk::Gateway(named));
                let stages = s.stages.take();
                let _ = s.hk.send(Hk::Latency(Box::new(stages)));
                handoff.with(|intake| {
                    for lanes in &mut intake.queues {
                        lanes.prune(&s.working, now_ms());
                    }
                });
            }
            if done_before && !got {
                // The strategy thread sent its last cancels: give the workers a moment to
                // write them and read the answers.
                handoff
                    .beside(tokio::time::sleep(Duration::from_millis(300)))
                    .await;
                break;
            }
            if got {
                idle = 0;
                handoff.beside(tokio::task::yield_now()).await;
            } else {
                idle = idle.saturating_add(1);
                handoff
                    .beside(spin.idle_async(idle, &flags.gateway_wake))
                    .await;
            }
        }
        // The workers end with their requests: the engine stops.
        handoff.0.borrow_mut().take();
        let s = state.borrow();
        let _ = s.hk.send(Hk::Gateway(s.counters.named()));
    }
}

/// The wall clock in ms, for request timestamps.
pub(crate) fn now_ms() -> u64 {
    u64::try_from(now_ns() / 1_000_000).unwrap_or(0)
}

/// Sends a request the venue's client built.
pub(crate) async fn send_request(
    client: &mut Client,
    request: &VenueRequest,
) -> Result<crate::http::Response, HttpError> {
    use rt_venues::execution::Method as M;
    let method = match request.method {
        M::Get => Method::GET,
        M::Post => Method::POST,
        M::Put => Method::PUT,
        M::Delete => Method::DELETE,
    };
    client
        .request_with_body(method, &request.path, &request.header_refs(), &request.body)
        .await
}

/// What the venue's client makes of an answer.
pub(crate) fn classify(venue: &VenueConfig, op: Operation, r: &crate::http::Response) -> Outcome {
    venue.client.classify(
        op,
        r.status,
        &String::from_utf8_lossy(&r.body),
        r.limits.retry_after_s,
    )
}

/// The private stream's key (a new one each time); empty for a venue whose stream needs none.
async fn listen_key(client: &mut Client, venue: &VenueConfig) -> Result<String, String> {
    let Some(open) = venue.client.open_stream() else {
        return Ok(String::new());
    };
    let r = send_request(client, &open)
        .await
        .map_err(|e| e.to_string())?;
    let body = String::from_utf8_lossy(&r.body);
    if r.status != 200 {
        return Err(format!("HTTP {}: {body}", r.status));
    }
    venue.client.stream_key(&body).map_err(|e| e.to_string())
}

/// Opens the private stream: its key (if the venue has one), the connection, and the venue's
/// handshake (OKX: the login, then the subscriptions), each frame answered before the next.
async fn open_stream(client: &mut Client, venue: &VenueConfig) -> Result<(Ws, String), String> {
    use futures_util::SinkExt;
    let key = listen_key(client, venue).await?;
    let url = venue.client.stream_url(&venue.ws, &key);
    let (mut ws, _) = crate::tls::connect_ws(url.as_str())
        .await
        .map_err(|e| format!("user stream {e}"))?;
    for frame in venue.client.stream_handshake(now_ms()) {
        ws.send(Message::Text(frame.into()))
            .await
            .map_err(|e| format!("user stream handshake: {e}"))?;
        let answered = async {
            loop {
                let text = match ws.next().await {
                    Some(Ok(Message::Text(t))) => t.as_str().to_owned(),
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Err(e.to_string()),
                    None => return Err("closed by the venue".to_owned()),
                };
                match venue.client.handshake_reply(&text) {
                    Handshake::Done => return Ok(()),
                    Handshake::Pending => {}
                    Handshake::Refused(why) => return Err(format!("refused: {why}")),
                }
            }
        };
        tokio::time::timeout(REQUEST_TIMEOUT, answered)
            .await
            .map_err(|_| "user stream handshake: no answer".to_owned())?
            .map_err(|e| format!("user stream handshake: {e}"))?;
    }
    Ok((ws, key))
}

/// Cancels every open order the venue holds on the instruments we trade (a restart starts
/// clean). A cancel the venue does not carry out (an authentication refusal, a 429, a 5xx) is
/// an error: an engine must not start trading beside orders of a previous run.
async fn reconcile(state: &Shared, client: &mut Client, venue: &VenueConfig) -> Result<(), String> {
    for (symbol, n) in cancel_open_orders(client, venue, &venue.traded).await? {
        let mut s = state.borrow_mut();
        s.counters.reconciled_cancels += n as u64;
        if n > 0 {
            s.log(format!(
                "{}: cancelled {n} open order(s) on {symbol} left by a previous run",
                venue.name
            ));
        }
    }
    Ok(())
}

/// Cancels every open order on each of `symbols` (the venue's config names): (symbol, orders
/// cancelled).
pub(crate) async fn cancel_open_orders(
    client: &mut Client,
    venue: &VenueConfig,
    symbols: &[String],
) -> Result<Vec<(String, usize)>, String> {
    let mut out = Vec::with_capacity(symbols.len());
    for symbol in symbols {
        if let Some(listing) = venue.client.open_orders(symbol, now_ms()) {
            let n = cancel_listed(client, venue, symbol, &listing).await?;
            out.push((symbol.clone(), n));
            continue;
        }
        let request = venue.client.cancel_all(symbol, now_ms());
        let r = send_request(client, &request)
            .await
            .map_err(|e| format!("reconcile {symbol}: {e}"))?;
        let body = String::from_utf8_lossy(&r.body);
        match classify(venue, Operation::CancelAll, &r) {
            Outcome::Accepted => out.push((symbol.clone(), venue.client.cancelled_count(&body))),
            // Nothing was open.
            Outcome::Rejected(refusal) if refusal.kind == RefusalKind::UnknownOrder => {
                out.push((symbol.clone(), 0));
            }
            outcome => {
                check_auth(&outcome, venue)?;
                // The venue may still hold orders of a previous run: do not start.
                return Err(format!(
                    "cannot cancel the open orders on {symbol} left by a previous run: HTTP {}: {body}",
                    r.status
                ));
            }
        }
    }
    Ok(out)
}

/// The instruments of `exchange` the manifest's strategies trade (in the exchange's order):
/// the ones order entry cancels at start and on a cancel-all.
pub(crate) fn traded_instruments(manifest: &rt_manifest::Manifest, exchange: &str) -> Vec<String> {
    let Some(ex) = manifest.exchanges.get(exchange) else {
        return Vec::new();
    };
    ex.instruments
        .keys()
        .filter(|symbol| {
            manifest
                .strategies
                .values()
                .any(|st| st.exchange == exchange && st.instruments.contains(symbol))
        })
        .cloned()
        .collect()
}

/// Pages of open orders read at most by one [`cancel_listed`] (OKX: 100 a page).
const MAX_OPEN_ORDER_PAGES: usize = 100;

/// Cancels the orders of `symbol` a venue without a cancel-all request lists as open
/// (`listing`: OKX's pending orders, page after page), in batches; returns how many the venue
/// cancelled. A batch the venue does not carry out (a 429, a 5xx, a refusal) is an error.
pub(crate) async fn cancel_listed(
    client: &mut Client,
    venue: &VenueConfig,
    symbol: &str,
    listing: &VenueRequest,
) -> Result<usize, String> {
    let mut ids: Vec<u64> = Vec::new();
    let mut page_request = listing.clone();
    for _ in 0..MAX_OPEN_ORDER_PAGES {
        let r = send_request(client, &page_request)
            .await
            .map_err(|e| format!("open orders on {symbol}: {e}"))?;
        let body = String::from_utf8_lossy(&r.body);
        let outcome = classify(venue, Operation::Read, &r);
        if outcome != Outcome::Accepted {
            check_auth(&outcome, venue)?;
            return Err(format!(
                "open orders on {symbol}: HTTP {}: {body}",
                r.status
            ));
        }
        let page = venue
            .client
            .open_order_ids(&body)
            .map_err(|e| format!("open orders on {symbol}: {e}"))?;
        let full = page.len() >= venue.client.open_orders_page();
        let last = page.last().copied();
        ids.extend(page);
        let next = match last {
            Some(after) if full => venue.client.open_orders_after(symbol, after, now_ms()),
            _ => None,
        };
        match next {
            Some(n) => page_request = n,
            None => break,
        }
    }
    ids.sort_unstable();
    ids.dedup();
    let mut cancelled = 0;
    for batch in ids.chunks(venue.client.cancel_batch_max().max(1)) {
        let Some(request) = venue.client.cancel_orders(symbol, batch, now_ms()) else {
            return Err(format!(
                "{} cannot cancel orders by id",
                venue.client.venue()
            ));
        };
        let r = send_request(client, &request)
            .await
            .map_err(|e| format!("cancel on {symbol}: {e}"))?;
        match classify(venue, Operation::CancelAll, &r) {
            Outcome::Accepted => {}
            outcome => {
                check_auth(&outcome, venue)?;
                return Err(format!(
                    "cancel on {symbol}: {} of {} order(s) not cancelled: HTTP {}: {}",
                    batch.len()
                        - venue
                            .client
                            .cancelled_count(&String::from_utf8_lossy(&r.body)),
                    batch.len(),
                    r.status,
                    String::from_utf8_lossy(&r.body)
                ));
            }
        }
        cancelled += venue
            .client
            .cancelled_count(&String::from_utf8_lossy(&r.body));
    }
    Ok(cancelled)
}

/// An authentication refusal (a bad key, signature or permission) as the error to stop on.
pub(crate) fn check_auth(outcome: &Outcome, venue: &VenueConfig) -> Result<(), String> {
    match outcome {
        Outcome::Rejected(e) if e.kind == RefusalKind::Credentials => Err(format!(
            "the venue refused our credentials ({} {}): check exchanges.{}.credentials",
            e.code.map_or_else(String::new, |c| c.to_string()),
            e.message,
            venue.name
        )),
        _ => Ok(()),
    }
}

/// The gateway's connection workers, polled by the task that owns [`Intake`] (not tasks of
/// their own): an order handed to an idle connection is built, journaled and handed to the
/// connection in the same poll that took it off the orders ring, with no task hop between.
type Workers = futures_util::stream::FuturesUnordered<
    std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>,
>;

/// The gateway's intake of orders: the orders ring, each venue's connections and their
/// workers.
pub struct Intake {
    orders: Consumer,
    queues: Vec<Lanes>,
    workers: Workers,
    state: Shared,
    /// The gateway task's waker. The fused layout's feeds poll the workers with it, so what
    /// wakes a worker later (its answer read) wakes the gateway, which polls it then.
    waker: Option<std::task::Waker>,
}

impl Intake {
    /// Takes every order off the ring and hands each to its connection's worker, which takes
    /// it at once (polled here with `cx`): built, journaled and handed to its connection
    /// before the next is popped. Whether anything was read.
    fn take(&mut self, cx: &mut std::task::Context<'_>) -> bool {
        let mut got = false;
        loop {
            match self.orders.try_pop(OrderMsg::read) {
                Pop::Message(Some(msg)) => {
                    got = true;
                    match self.queues.iter_mut().find(|l| l.exchange == msg.exchange) {
                        Some(lanes) => {
                            if lanes.send(msg, now_ms()) && !msg.cancel && !msg.amend {
                                self.state.borrow_mut().counters.orders_queued += 1;
                            }
                            self.poll(cx);
                        }
                        None => self
                            .state
                            .borrow()
                            .log(format!("an order for unknown exchange {}", msg.exchange)),
                    }
                }
                Pop::Message(None) => {
                    got = true;
                    self.state
                        .borrow()
                        .log("a malformed order slot, skipped".to_owned());
                }
                Pop::Gap { lost } => {
                    got = true;
                    // The strategy never drops orders (it waits for room, or keeps them).
                    self.state
                        .borrow()
                        .log(format!("orders ring reported {lost} lost"));
                }
                Pop::Empty => break,
            }
        }
        self.poll(cx);
        got
    }

    /// Polls the workers that were woken (a request handed to them, an answer read).
    fn poll(&mut self, cx: &mut std::task::Context<'_>) {
        // A worker ends only when its queue's sender is gone (the gateway's end).
        while let std::task::Poll::Ready(Some(())) = self.workers.poll_next_unpin(cx) {}
    }
}

thread_local! {
    /// The fused layout's gateway intake, on its one hot thread.
    static THIS_THREAD: RefCell<Option<Handoff>> = const { RefCell::new(None) };
}

/// The fused layout: the gateway of this thread takes the requests just written to the orders
/// ring ([`Handoff::take_now`]); nothing on a thread without one.
#[inline]
pub fn take_now_on_this_thread() {
    THIS_THREAD.with(|h| {
        if let Some(handoff) = h.borrow().as_ref() {
            handoff.take_now();
        }
    });
}

/// The gateway's [`Intake`], shared in the fused layout with the strategy loop of its thread
/// (installed for the thread: [`take_now_on_this_thread`], called by `trader::Outbox`):
/// empty until the gateway is ready, and again once it ended.
#[derive(Clone, Default)]
pub struct Handoff(Rc<RefCell<Option<Intake>>>);

impl Handoff {
    /// The fused layout: takes the orders the strategy just decided, now, in the caller's call
    /// stack (a feed that turned the strategy inline, or the strategy's task), instead of at
    /// the gateway task's next turn. Nothing before the gateway is ready: it takes them then.
    pub fn take_now(&self) {
        // Not re-entered: the gateway's own poll, or a worker's, never turns the strategy.
        let Ok(mut slot) = self.0.try_borrow_mut() else {
            return;
        };
        if let Some(intake) = slot.as_mut() {
            if let Some(waker) = intake.waker.clone() {
                intake.take(&mut std::task::Context::from_waker(&waker));
            }
        }
    }

    /// The fused layout: the strategy loop of this thread hands its requests to this intake
    /// ([`take_now_on_this_thread`]).
    pub fn install_on_this_thread(&self) {
        THIS_THREAD.with(|h| *h.borrow_mut() = Some(self.clone()));
    }

    fn with<R>(&self, f: impl FnOnce(&mut Intake) -> R) -> Option<R> {
        self.0.borrow_mut().as_mut().map(f)
    }

    /// Awaits `wait` while the workers run (polled whenever one is woken).
    async fn beside(&self, wait: impl std::future::Future<Output = ()>) {
        let mut wait = std::pin::pin!(wait);
        std::future::poll_fn(|cx| {
            self.with(|intake| intake.poll(cx));
            wait.as_mut().poll(cx)
        })
        .await;
    }
}

async fn worker(
    state: Shared,
    venue: VenueConfig,
    base: Base,
    ws_api: Option<crate::ws_orders::WsOrders>,
    mut jobs: mpsc::UnboundedReceiver<Job>,
    (load, sweeps): (Rc<std::cell::Cell<u32>>, Rc<std::cell::Cell<u32>>),
) {
    let mut client = Client::with_limits(base, venue.limits.clone());
    while let Some(job) = jobs.recv().await {
        send(&state, &venue, &mut client, ws_api.as_ref(), job.msg).await;
        load.set(load.get().saturating_sub(1));
        if is_cancel_all(&job.msg) {
            sweeps.set(sweeps.get().saturating_sub(1));
        }
    }
}

/// Keeps the private stream's key alive, as often as the venue's client says (Binance expires a
/// listen key 60 minutes after its last keepalive: every 30 minutes).
async fn keep_alive(
    state: Shared,
    venue: VenueConfig,
    mut client: Client,
    listen_key: Rc<RefCell<String>>,
    flags: Arc<Flags>,
) {
    let every = Duration::from_millis(venue.client.keep_stream_alive_every_ms());
    let mut next = tokio::time::Instant::now() + every;
    while !flags.stopping() {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if tokio::time::Instant::now() < next {
            continue;
        }
        next += every;
        let Some(request) = venue.client.keep_stream_alive(&listen_key.borrow()) else {
            continue;
        };
        let sent = tokio::time::timeout(REQUEST_TIMEOUT, send_request(&mut client, &request)).await;
        match sent {
            Ok(Ok(r)) if r.status == 200 => {}
            Ok(Ok(r)) => state.borrow().log(format!(
                "{}: listen key keepalive: HTTP {}: {}",
                venue.name,
                r.status,
                String::from_utf8_lossy(&r.body)
            )),
            Ok(Err(e)) => state
                .borrow()
                .log(format!("{}: listen key keepalive: {e}", venue.name)),
            Err(_) => state
                .borrow()
                .log(format!("{}: listen key keepalive timed out", venue.name)),
        }
    }
}

async fn send(
    state: &Shared,
    venue: &VenueConfig,
    client: &mut Client,
    ws_api: Option<&crate::ws_orders::WsOrders>,
    msg: OrderMsg,
) {
    let (exchange, symbol) = {
        let s = state.borrow();
        let (x, sym) = s.names.instrument(msg.instrument);
        (x.to_owned(), sym.to_owned())
    };
    if msg.amend {
        return send_amend(state, venue, client, &msg, &exchange, &symbol).await;
    }
    if !msg.cancel && state.borrow().down.contains(&msg.exchange) {
        // Its fills could not be seen: refused before it leaves (cancels still go out).
        state.borrow_mut().counters.refused_stream_down += 1;
        let kind = ExecKind::Rejected(RejectReason::VenueRejected);
        let exec = local_exec(msg.exchange, msg.order_id, kind, Qty::ZERO);
        report(state, exec, &exchange, &symbol, msg.side, Detail::default());
        return;
    }
    if !admitted(state, venue, &msg, &exchange, &symbol).await {
        return;
    }
    let client_id = format!("{}{}", state.borrow().prefix, msg.order_id);
    // Over the WebSocket API while its connection is up (a cancel-all stays on REST); the
    // request is written into its buffer here and sent after the journal, with no await in
    // between.
    let over_ws_api = ws_api.filter(|w| w.is_up() && !is_cancel_all(&msg));
    let (op, request) = if !msg.cancel {
        let spec = NewOrderSpec {
            symbol: &symbol,
            client_id: &client_id,
            side: msg.side,
            kind: msg.kind,
            price: msg.price,
            qty: msg.qty,
            // Only a derivative knows reduce-only (spot refuses the flag).
            reduce_only: msg.reduce_only && venue.client.reduce_only(&symbol),
            position_side: PositionSide::Both,
        };
        let built = match over_ws_api {
            Some(w) => w
                .prepare_order(&spec, now_ms())
                .map(|p| Request::WsApi(w, p)),
            None => venue.client.new_order(&spec, now_ms()).map(Request::Rest),
        };
        match built {
            Ok(r) => (Operation::NewOrder { kind: msg.kind }, r),
            Err(e) => {
                // Not sendable on this venue: refused before it is journaled or sent.
                state
                    .borrow()
                    .log(format!("{}: order {}: {e}", venue.name, msg.order_id));
                state.borrow_mut().counters.venue_rejects += 1;
                let kind = ExecKind::Rejected(RejectReason::VenueRejected);
                let exec = local_exec(msg.exchange, msg.order_id, kind, Qty::ZERO);
                report(state, exec, &exchange, &symbol, msg.side, Detail::default());
                return;
            }
        }
    } else if msg.order_id == 0 {
        if !venue.traded.contains(&symbol) {
            // No strategy trades it (read only): nothing of ours is open there, and what is
            // open is someone else's.
            return;
        }
        if let Some(listing) = venue.client.open_orders(&symbol, now_ms()) {
            // A venue without a cancel-all request: what it lists, cancelled by id.
            state.borrow_mut().counters.cancel_alls += 1;
            if let Err(e) = cancel_listed(client, venue, &symbol, &listing).await {
                state
                    .borrow()
                    .log(format!("{}: cancel-all: {e}", venue.name));
            }
            return;
        }
        (
            Operation::CancelAll,
            Request::Rest(venue.client.cancel_all(&symbol, now_ms())),
        )
    } else {
        let request = match over_ws_api {
            Some(w) => Request::WsApi(w, w.prepare_cancel(&symbol, &client_id, now_ms())),
            None => Request::Rest(venue.client.cancel(&symbol, &client_id, now_ms())),
        };
        (Operation::Cancel, request)
    };
    let journaled_at = now_ns();
    {
        // Into the journal ring (a copy into shared memory, no I/O): the writer thread
        // appends it, and a restart after a crash replays what it had not.
        let mut s = state.borrow_mut();
        if !msg.cancel {
            s.counters.orders += 1;
            s.journal.order(journaled_at, &msg, &exchange, &symbol);
        } else if msg.order_id == 0 {
            s.counters.cancel_alls += 1;
        } else {
            s.counters.cancels += 1;
            s.journal.cancel(journaled_at, msg.order_id);
        }
        s.counters.journal_ring_waits = s.journal.waits();
    }
    // Stamped after the journal push: the order is handed to the connection next.
    let written = now_ns();
    if !msg.cancel {
        let mut s = state.borrow_mut();
        if msg.frame_ns != crate::trader::NO_TICK {
            s.stages.record(Stage::TickToOrder, written - msg.frame_ns);
        }
        s.stages
            .record(Stage::DecisionToWire, written - msg.decided_ns);
        s.written.insert(msg.order_id, written);
        s.working.insert(
            msg.order_id,
            Working {
                exchange: msg.exchange,
                symbol: symbol.clone(),
                life: OrderLifecycle::sent(msg.side, msg.price, msg.qty),
                sent_ns: written,
                trades: Vec::new(),
            },
        );
    }
    // An order request of unknown outcome: ask the venue later, unless a report settles it.
    let settle_later = || {
        if !msg.cancel {
            tokio::task::spawn_local(settle_unknown(state.clone(), venue.clone(), msg.order_id));
        }
    };
    let (sent, limits_answer) = match request {
        Request::WsApi(w, prepared) => {
            state.borrow_mut().counters.ws_api_requests += 1;
            w.transmit(prepared, REQUEST_TIMEOUT).await
        }
        Request::Rest(request) => {
            let sent = tokio::time::timeout(REQUEST_TIMEOUT, send_request(client, &request)).await;
            (sent.ok(), client.last_answer())
        }
    };
    let result = match sent {
        Some(r) => r,
        None => {
            // The order may or may not have reached the venue: its user stream will say, or
            // the venue when asked.
            settle_later();
            state.borrow_mut().counters.request_errors += 1;
            state.borrow().log(format!(
                "{}: {} {}: no answer within {} s{}",
                venue.name,
                if msg.cancel { "cancel of" } else { "order" },
                msg.order_id,
                REQUEST_TIMEOUT.as_secs(),
                if over_ws_api.is_some() {
                    " (or the WebSocket API connection was lost first)"
                } else {
                    ""
                }
            ));
            return;
        }
    };
    rate_limit_answer(state, venue, limits_answer);
    let what = if msg.cancel { "cancel of" } else { "order" };
    let log_answer = |r: &crate::http::Response, how: &str| {
        state.borrow().log(format!(
            "{}: {what} {} {how}: HTTP {}: {}",
            venue.name,
            msg.order_id,
            r.status,
            String::from_utf8_lossy(&r.body)
        ));
    };
    let refused = match result {
        Ok(r) => match classify(venue, op, &r) {
            Outcome::Accepted => return,
            Outcome::Unknown => {
                // The order may be live: it stays open here and the private stream reports
                // what happened, or the venue when asked.
                log_answer(&r, "has an unknown outcome");
                state.borrow_mut().counters.request_errors += 1;
                settle_later();
                return;
            }
            // The venue's limits (429 back-off, 418 ban: `ratelimit` took in Retry-After).
            Outcome::RateLimited { .. } => {
                log_answer(&r, "refused");
                Some(RejectReason::VenueRateLimit)
            }
            Outcome::Rejected(refusal) => {
                // A cancel that crossed a fill (an unknown order) is routine: not logged.
                let raced = msg.cancel && refusal.kind == RefusalKind::UnknownOrder;
                if !raced {
                    log_answer(&r, "refused");
                }
                match refusal.kind {
                    RefusalKind::Credentials => {
                        stop_on_credentials(state, venue);
                        None
                    }
                    RefusalKind::PostOnlyWouldCross => Some(RejectReason::PostOnlyWouldCross),
                    RefusalKind::UnknownOrder | RefusalKind::Other => None,
                }
            }
        },
        // Not sent: refused by the venue's limits here (another thread took the weight).
        Err(HttpError::RateLimited { .. }) => Some(RejectReason::VenueRateLimit),
        Err(e) => {
            state.borrow_mut().counters.request_errors += 1;
            state
                .borrow()
                .log(format!("{}: order {}: {e}", venue.name, msg.order_id));
            if matches!(e, HttpError::Connect { .. }) {
                None
            } else {
                // The request may or may not have reached the venue: its user stream says, or
                // the venue when asked.
                settle_later();
                return;
            }
        }
    };
    if is_cancel_all(&msg) {
        return;
    }
    let kind = if msg.cancel {
        ExecKind::CancelRejected
    } else {
        state.borrow_mut().counters.venue_rejects += 1;
        ExecKind::Rejected(refused.unwrap_or(RejectReason::VenueRejected))
    };
    let exec = local_exec(msg.exchange, msg.order_id, kind, Qty::ZERO);
    report(state, exec, &exchange, &symbol, msg.side, Detail::default());
}

/// The venue refused our credentials: every further request would be refused the same way,
/// so the engine stops rather than spin.
fn stop_on_credentials(state: &Shared, venue: &VenueConfig) {
    let s = state.borrow();
    s.log(format!(
        "{}: the venue refused our credentials: check exchanges.{}.credentials; stopping",
        venue.name, venue.name
    ));
    s.flags.fail();
}

/// Whether `msg` may go now by the venue's rate limits. A new order that may not is refused
/// here (`venue_rate_limit`, journaled and reported); a cancel waits out a 429's back-off or a
/// full minute and is refused only during an IP ban.
async fn admitted(
    state: &Shared,
    venue: &VenueConfig,
    msg: &OrderMsg,
    exchange: &str,
    symbol: &str,
) -> bool {
    use crate::ratelimit::{wall_ms, Refusal};
    let order = !msg.cancel;
    loop {
        let now = wall_ms();
        let refusal = if order {
            venue.limits.check(now, 1, true)
        } else {
            venue.limits.peek(now, 1, false)
        };
        let wait_until = match refusal {
            Ok(()) => return true,
            Err(Refusal::Backoff { until_ms }) if !order => until_ms,
            Err(Refusal::Limit(interval)) if !order => interval.window_end(now),
            Err(_) => break,
        };
        tokio::time::sleep(Duration::from_millis(wait_until.saturating_sub(now))).await;
    }
    if is_cancel_all(msg) {
        return false;
    }
    if msg.amend {
        state.borrow_mut().counters.rate_limited += 1;
        refuse_amend(state, msg, exchange, symbol, RejectReason::VenueRateLimit);
        return false;
    }
    let kind = if order {
        state.borrow_mut().counters.rate_limited += 1;
        ExecKind::Rejected(RejectReason::VenueRateLimit)
    } else {
        ExecKind::CancelRejected
    };
    let exec = local_exec(msg.exchange, msg.order_id, kind, Qty::ZERO);
    report(state, exec, exchange, symbol, msg.side, Detail::default());
    false
}

/// Reports an amendment of `msg.order_id` refused (`reason`): the order is as it was.
fn refuse_amend(
    state: &Shared,
    msg: &OrderMsg,
    exchange: &str,
    symbol: &str,
    reason: RejectReason,
) {
    let (side, leaves) = {
        let mut s = state.borrow_mut();
        s.amending.remove(&msg.order_id);
        s.working
            .get(&msg.order_id)
            .map_or((msg.side, Qty::ZERO), |w| (w.life.side(), w.life.leaves()))
    };
    let kind = ExecKind::AmendRejected(reason);
    let exec = local_exec(msg.exchange, msg.order_id, kind, leaves);
    report(state, exec, exchange, symbol, side, Detail::default());
}

/// An amendment sent and not answered: what it asked, and its number (the venue's answer
/// names it: a late answer to an earlier amendment of the order is told apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Amending {
    price: rt_core::Price,
    qty: Qty,
    seq: u64,
}

/// How many times, [`SETTLE_RETRY`] apart, an unanswered amendment's order is asked before
/// the gateway gives up on it (logged; a stream catch-up or the order's end settles it).
const SETTLE_TRIES: u32 = 10;
const SETTLE_RETRY: Duration = Duration::from_secs(2);

/// Sends an amendment of a working order over REST (a venue whose client amends: OKX),
/// journaled first. Refused here, the order as it was (`AmendRejected`): on a venue that does
/// not amend, for an order this gateway no longer holds (finished meanwhile), while the
/// exchange's private stream is down (the outcome could not be seen), by the venue's rate
/// limits (an amendment counts as an order). Its outcome is the private stream's push (OKX
/// `amendResult`); a refusal in the answer is reported at once, and an answer that settles
/// nothing (accepted, unknown, none) has the venue asked after [`settle_after`] unless the
/// push came first ([`settle_amend`]).
async fn send_amend(
    state: &Shared,
    venue: &VenueConfig,
    client: &mut Client,
    msg: &OrderMsg,
    exchange: &str,
    symbol: &str,
) {
    let id = msg.order_id;
    let client_id = format!("{}{id}", state.borrow().prefix);
    let seq = {
        let mut s = state.borrow_mut();
        s.amend_seq += 1;
        s.amend_seq
    };
    let request = {
        let s = state.borrow();
        let held = s.working.contains_key(&id) && !s.down.contains(&msg.exchange);
        held.then(|| {
            venue
                .client
                .amend(symbol, &client_id, msg.price, msg.qty, seq, now_ms())
        })
        .flatten()
    };
    let Some(request) = request else {
        refuse_amend(state, msg, exchange, symbol, RejectReason::NotAmendable);
        return;
    };
    if !admitted(state, venue, msg, exchange, symbol).await {
        return;
    }
    {
        let mut s = state.borrow_mut();
        s.counters.amends += 1;
        s.journal.amend(now_ns(), id, msg.price.0, msg.qty.0);
        s.counters.journal_ring_waits = s.journal.waits();
        let asked = Amending {
            price: msg.price,
            qty: msg.qty,
            seq,
        };
        s.amending.insert(id, asked);
    }
    let sent = tokio::time::timeout(REQUEST_TIMEOUT, send_request(client, &request)).await;
    rate_limit_answer(state, venue, client.last_answer());
    let settle_later = || {
        tokio::task::spawn_local(settle_amend(state.clone(), venue.clone(), id, seq));
    };
    let answer = match sent {
        Ok(Ok(r)) => r,
        Ok(Err(HttpError::Connect { .. })) => {
            // Never sent.
            state.borrow_mut().counters.request_errors += 1;
            refuse_amend(state, msg, exchange, symbol, RejectReason::VenueRejected);
            return;
        }
        Ok(Err(HttpError::RateLimited { .. })) => {
            refuse_amend(state, msg, exchange, symbol, RejectReason::VenueRateLimit);
            return;
        }
        Ok(Err(_)) | Err(_) => {
            state.borrow_mut().counters.request_errors += 1;
            state.borrow().log(format!(
                "{}: amendment of order {id}: no clear answer within {} s",
                venue.name,
                REQUEST_TIMEOUT.as_secs()
            ));
            settle_later();
            return;
        }
    };
    let reason = match classify(venue, Operation::Amend, &answer) {
        Outcome::Accepted => {
            // Made or not, the push says; asked later if it never comes.
            settle_later();
            return;
        }
        Outcome::Unknown => {
            state.borrow_mut().counters.request_errors += 1;
            settle_later();
            return;
        }
        Outcome::RateLimited { .. } => RejectReason::VenueRateLimit,
        Outcome::Rejected(refusal) => {
            if refusal.kind == RefusalKind::Credentials {
                stop_on_credentials(state, venue);
            }
            if refusal.kind != RefusalKind::UnknownOrder {
                state.borrow().log(format!(
                    "{}: amendment of order {id} refused: HTTP {}: {}",
                    venue.name,
                    answer.status,
                    String::from_utf8_lossy(&answer.body)
                ));
            }
            match refusal.kind {
                // Filled or cancelled meanwhile: its final report is on its way.
                RefusalKind::UnknownOrder => RejectReason::NotAmendable,
                RefusalKind::PostOnlyWouldCross => RejectReason::PostOnlyWouldCross,
                RefusalKind::Credentials | RefusalKind::Other => RejectReason::VenueRejected,
            }
        }
    };
    refuse_amend(state, msg, exchange, symbol, reason);
}

/// Settles amendment `seq` of order `id` if no push answered it within [`settle_after`]: the
/// venue's order shows the amended price and quantity (made) or not (refused). Asked again
/// [`SETTLE_RETRY`] apart while the venue cannot be asked (the stream is down, an error), up
/// to [`SETTLE_TRIES`] times. A later amendment of the order, or the order's end, makes this
/// one moot (its final report releases what the amendment reserved).
async fn settle_amend(state: Shared, venue: VenueConfig, id: u64, seq: u64) {
    tokio::time::sleep(settle_after(&venue)).await;
    for _ in 0..SETTLE_TRIES {
        let pending = {
            let s = state.borrow();
            let working = s
                .working
                .get(&id)
                .map(|w| (w.symbol.clone(), w.life.side()));
            let ours = s.amending.get(&id).copied().filter(|a| a.seq == seq);
            (ours.zip(working), s.down.contains(&venue.exchange))
        };
        let (asked, symbol, side) = match pending {
            (None, _) => return,
            // The stream's catch-up settles it when the stream is back, or the next try.
            (Some(_), true) => {
                tokio::time::sleep(SETTLE_RETRY).await;
                continue;
            }
            (Some((asked, (symbol, side))), false) => (asked, symbol, side),
        };
        let Ok(base) = Base::parse(&venue.rest) else {
            return;
        };
        let mut client = Client::new(base);
        let client_id = format!("{}{id}", state.borrow().prefix);
        let info = crate::catchup::query_order(&mut client, &venue, &symbol, &client_id).await;
        let info = match info {
            Ok(Some(info)) if info.status.is_open() => info,
            // Finished (its final report settles it) or unknown: nothing to say of it.
            Ok(_) => {
                let mut s = state.borrow_mut();
                if s.amending.get(&id).is_some_and(|a| a.seq == seq) {
                    s.amending.remove(&id);
                }
                return;
            }
            Err(e) => {
                state.borrow().log(format!(
                    "{}: amendment of order {id}: cannot settle its outcome yet: {e}",
                    venue.name
                ));
                tokio::time::sleep(SETTLE_RETRY).await;
                continue;
            }
        };
        settle_amend_with(&state, &venue, id, asked, &info, &symbol, side);
        return;
    }
    state.borrow().log(format!(
        "{}: amendment of order {id}: its outcome is still unknown after {SETTLE_TRIES} tries",
        venue.name
    ));
}

/// Whether a pushed amendment result answers the amendment `asked` (the one of its order
/// still unanswered): the push names it (OKX `reqId`), or, without a name, a made amendment's
/// price and quantity are the ones asked. A late answer to an earlier amendment is not it.
fn answers(update: &UpdateKind, asked: Option<Amending>) -> bool {
    let Some(a) = asked else {
        return false;
    };
    match update {
        UpdateKind::Amended {
            request: Some(r), ..
        }
        | UpdateKind::AmendRejected { request: Some(r) } => *r == a.seq,
        UpdateKind::Amended { price, qty, .. } => (*price, *qty) == (a.price, a.qty),
        _ => true,
    }
}

/// Reports amendment `asked` of order `id` made (the venue's order has its price and
/// quantity) or refused, from the venue's order `info`, unless it was answered meanwhile.
fn settle_amend_with(
    state: &Shared,
    venue: &VenueConfig,
    id: u64,
    asked: Amending,
    info: &rt_venues::execution::OrderState,
    symbol: &str,
    side: rt_core::Side,
) {
    {
        let mut s = state.borrow_mut();
        if s.amending.get(&id) != Some(&asked) {
            return; // answered while the venue was asked
        }
        s.amending.remove(&id);
        s.counters.amends_settled += 1;
    }
    let leaves = Qty((info.orig_qty.0 - info.executed_qty.0).max(0));
    let kind = if info.price == asked.price && info.orig_qty == asked.qty {
        ExecKind::Amended {
            price: asked.price,
            qty: asked.qty,
        }
    } else {
        ExecKind::AmendRejected(RejectReason::VenueRejected)
    };
    let exec = local_exec(venue.exchange, id, kind, leaves);
    report(state, exec, &venue.name, symbol, side, Detail::default());
}

/// Logs what an answer did to the venue's rate limits; a ban is paged.
fn rate_limit_answer(state: &Shared, venue: &VenueConfig, answer: crate::ratelimit::Answer) {
    use crate::ratelimit::{wall_ms, Answer};
    match answer {
        Answer::Fine | Answer::StillBanned { .. } => {}
        Answer::Throttled { until_ms } => state.borrow().log(format!(
            "{}: HTTP 429: no request for {} ms (Retry-After)",
            venue.name,
            until_ms.saturating_sub(wall_ms())
        )),
        Answer::Banned { until_ms } => state.borrow().log(format!(
            "PAGE {}: HTTP 418: the venue banned this IP for {} ms; order entry stopped \
             (risk HALTED, venue_ban) until the ban is over and an operator resumes",
            venue.name,
            until_ms.saturating_sub(wall_ms())
        )),
    }
}

/// A report the gateway makes itself (a refusal, a catch-up), stamped now.
fn local_exec(exchange: u32, order_id: u64, kind: ExecKind, leaves: Qty) -> ExecMsg {
    let now = now_ns();
    ExecMsg {
        exchange,
        exec: Exec {
            ts: now,
            order_id,
            kind,
            leaves,
        },
        recv_ns: now,
        base_commission: Qty::ZERO,
    }
}

/// What a report carries besides the execution, for the journal and the de-duplication.
#[derive(Debug, Clone, Copy, Default)]
struct Detail<'a> {
    /// The venue's trade id of a fill.
    trade_id: Option<i64>,
    /// A fill's commission as charged.
    charged: Option<Charged<'a>>,
    /// Why the order ended, when the kind does not say (`self_trade_prevention`).
    reason: Option<&'static str>,
}

/// A commission as the venue charged it: `amount` (10^-8) of `asset`.
#[derive(Debug, Clone, Copy)]
struct Charged<'a> {
    asset: &'a str,
    amount: i64,
}

impl Charged<'_> {
    /// Books it (see `fees`): (the fee in the quote asset, what leaves the position), counted.
    fn book(&self, state: &Shared, venue: &VenueConfig, symbol: &str) -> (rt_core::Cash, Qty) {
        let booked = venue.book_commission(symbol, self.asset, self.amount);
        let mut s = state.borrow_mut();
        if booked.base.0 != 0 {
            s.counters.base_commissions += 1;
        } else if booked.unpriced {
            s.counters.unpriced_commissions += 1;
            s.log(format!(
                "{}: a commission of {} {} on {symbol} has no price (no book, no \
                 exchanges.{}.commission_reference_prices.{}): booked at 0",
                venue.name,
                dec(self.amount),
                self.asset,
                venue.name,
                self.asset
            ));
        } else if self.amount != 0 && booked.fee != self.amount {
            s.counters.other_asset_commissions += 1;
        }
        (booked.fee, booked.base)
    }
}

/// Journals a report and hands it to the strategy thread (waiting for room if need be).
fn report(
    state: &Shared,
    exec: ExecMsg,
    exchange: &str,
    symbol: &str,
    side: rt_core::Side,
    detail: Detail<'_>,
) {
    let Detail {
        trade_id,
        charged,
        reason: why,
    } = detail;
    let mut s = state.borrow_mut();
    let id = exec.exec.order_id;
    if let Some(w) = s.working.get_mut(&id) {
        // The venue's report is booked whatever the lifecycle says (a fill beyond the order
        // is traded all the same); one the lifecycle refuses is logged.
        let applied = match exec.exec.kind {
            ExecKind::Fill { qty, .. } => {
                w.trades.extend(trade_id);
                w.life
                    .apply_fill_capped(qty)
                    .and_then(|beyond| match beyond.0 {
                        0 => Ok(w.life.status()),
                        _ => Err(rt_core::LifecycleError::Overfill {
                            ordered: w.life.qty(),
                            filled: w.life.filled(),
                            fill: beyond,
                        }),
                    })
            }
            kind => w.life.apply_exec(&kind),
        };
        if let Err(e) = applied {
            let line = format!("order {id} on {symbol}: the venue's report: {e}");
            s.log(line);
        }
    }
    if exec.exec.finishes() {
        s.working.remove(&id);
    }
    let (kind, price, qty, fee, maker) = match exec.exec.kind {
        ExecKind::Accepted => ("accepted", None, None, None, None),
        ExecKind::Rejected(_) => ("rejected", None, None, None, None),
        ExecKind::Fill {
            price,
            qty,
            maker,
            fee,
        } => (
            "fill",
            Some(dec(price.0)),
            Some(dec(qty.0)),
            Some(dec(fee)),
            Some(maker),
        ),
        ExecKind::Cancelled => ("cancelled", None, None, None, None),
        ExecKind::Expired => ("expired", None, None, None, None),
        ExecKind::CancelRejected => ("cancel_rejected", None, None, None, None),
        ExecKind::Amended { price, qty } => {
            ("amended", Some(dec(price.0)), Some(dec(qty.0)), None, None)
        }
        ExecKind::AmendRejected(_) => ("amend_rejected", None, None, None, None),
    };
    let reason = match exec.exec.kind {
        ExecKind::Rejected(r) | ExecKind::AmendRejected(r) => Some(r.as_str().to_owned()),
        _ => why.map(str::to_owned),
    };
    s.journal(&Record::Exec {
        ts: exec.recv_ns,
        id: exec.exec.order_id,
        exchange: exchange.to_owned(),
        symbol: symbol.to_owned(),
        side: side_str(side).to_owned(),
        kind: kind.to_owned(),
        price,
        qty,
        fee,
        commission: charged.map(|c| dec(c.amount)),
        commission_asset: charged.map(|c| c.asset.to_owned()),
        maker,
        leaves: Some(dec(exec.exec.leaves.0)),
        reason,
    });
    s.counters.reports += 1;
    if matches!(exec.exec.kind, ExecKind::Accepted) {
        if let Some(t) = s.written.get(&exec.exec.order_id).copied() {
            s.stages.record(Stage::OrderToAck, exec.recv_ns - t);
        }
    }
    if exec.exec.kind != ExecKind::Accepted
        && !matches!(exec.exec.kind, ExecKind::Fill { .. } if exec.exec.leaves.0 > 0)
        && !matches!(
            exec.exec.kind,
            ExecKind::Amended { .. } | ExecKind::AmendRejected(_)
        )
    {
        s.written.remove(&exec.exec.order_id);
    }
    // In order behind any report still waiting for room; the main loop retries (never a
    // spin here: the strategy thread may itself be waiting for room in the orders ring).
    if !s.pending.is_empty() || !s.deliver(exec) {
        s.pending.push_back(exec);
    }
    s.flags.wake_strategy();
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// How long a venue's user data stream may stay lost (reconnect attempts with capped backoff)
/// before the engine gives up and stops.
const USER_STREAM_DEADLINE: Duration = Duration::from_secs(30);

/// Reads one venue's user data stream until the engine stops. When the stream is lost, new
/// orders to the venue are refused (cancels still go out), the stream is reconnected (a new
/// listen key) with capped exponential backoff and jitter, and every working order is caught
/// up over REST before orders flow again: what filled or finished meanwhile is reported once.
/// A stream still lost after [`USER_STREAM_DEADLINE`] stops the engine (no fill may go unseen).
async fn user_stream(
    state: Shared,
    venue: VenueConfig,
    mut ws: Ws,
    listen_key: Rc<RefCell<String>>,
    flags: Arc<Flags>,
) {
    loop {
        let Some(why) = read_stream(&state, &venue, &mut ws, &flags).await else {
            return;
        };
        let lost_at = now_ns();
        {
            let mut s = state.borrow_mut();
            if s.down.insert(venue.exchange) {
                s.flags.private_stream_lost();
            }
            s.log(format!(
                "{}: user data stream lost ({why}); refusing new orders while it reconnects",
                venue.name
            ));
        }
        match reconnect(&state, &venue, &flags).await {
            Ok((new_ws, key, mut client)) => {
                ws = new_ws;
                *listen_key.borrow_mut() = key;
                let caught = match catch_up_working(&state, &venue, &mut client).await {
                    Ok(n) => n,
                    Err(e) => {
                        state.borrow().log(format!(
                            "{}: cannot catch up after the user stream came back: {e}; stopping",
                            venue.name
                        ));
                        state.borrow().flags.fail();
                        return;
                    }
                };
                // Funding paid while the stream was down: its updates are lost, the
                // history is not.
                ask_funding(&state, &venue);
                let mut s = state.borrow_mut();
                if s.down.remove(&venue.exchange) {
                    // Caught up: the position watch counts differences again.
                    s.flags.private_stream_back();
                }
                s.counters.stream_reconnects += 1;
                s.counters.caught_up_fills += caught as u64;
                s.log(format!(
                    "{}: user data stream back after {} ms; caught up {caught} fill(s); trading",
                    venue.name,
                    (now_ns() - lost_at) / 1_000_000
                ));
            }
            Err(e) => {
                if !flags.stopping() {
                    state.borrow().log(format!(
                        "{}: user data stream: {e}; stopping (no fill may go unseen)",
                        venue.name
                    ));
                    flags.fail();
                }
                return;
            }
        }
    }
}

/// A new listen key and stream, retried with capped exponential backoff and jitter until
/// [`USER_STREAM_DEADLINE`]; also returns a client for the catch-up.
async fn reconnect(
    state: &Shared,
    venue: &VenueConfig,
    flags: &Flags,
) -> Result<(Ws, String, Client), String> {
    let base = Base::parse(&venue.rest).map_err(|e| e.to_string())?;
    let deadline = tokio::time::Instant::now() + USER_STREAM_DEADLINE;
    let mut backoff = Duration::from_millis(100);
    let mut last = String::new();
    while tokio::time::Instant::now() < deadline {
        if flags.stopping() {
            return Err("the engine is stopping".to_owned());
        }
        let mut client = Client::with_limits(base.clone(), venue.limits.clone());
        let attempt = open_stream(&mut client, venue);
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(REQUEST_TIMEOUT.min(left), attempt).await {
            Ok(Ok((ws, key))) => return Ok((ws, key, client)),
            Ok(Err(e)) => last = e,
            Err(_) => last = format!("no answer within {} s", REQUEST_TIMEOUT.as_secs()),
        }
        // Jitter of up to a quarter of the wait, from the clock's low bits.
        let jitter = backoff.as_millis() as i64 / 4;
        let wait = backoff + Duration::from_millis((now_ns() % (jitter.max(1))) as u64);
        state.borrow().log(format!(
            "{}: user stream reconnect: {last}; again in {} ms",
            venue.name,
            wait.as_millis()
        ));
        tokio::time::sleep(wait).await;
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
    Err(format!(
        "lost for {} s, the last attempt: {last}",
        USER_STREAM_DEADLINE.as_secs()
    ))
}

/// After a reconnect: what became of every working order on the venue while its stream was
/// lost (the client's order query, and its trades for the fills). Fills not reported
/// yet (by trade id) and final states are reported; returns the fills reported.
async fn catch_up_working(
    state: &Shared,
    venue: &VenueConfig,
    client: &mut Client,
) -> Result<usize, String> {
    let mut ids: Vec<u64> = state
        .borrow()
        .working
        .iter()
        .filter(|(_, w)| w.exchange == venue.exchange)
        .map(|(id, _)| *id)
        .collect();
    ids.sort_unstable();
    catch_up_orders(state, venue, client, &ids).await
}

/// How long after an order request of unknown outcome (no answer, a 5xx) the gateway asks the
/// venue what became of it, unless a report settled it first: a second past the time the venue
/// may still accept the request (Binance: the default `recvWindow`, 5 s, which our requests
/// leave as is), so a request still on its way can no longer be accepted.
fn settle_after(venue: &VenueConfig) -> Duration {
    Duration::from_millis(venue.client.request_window_ms() + 1_000)
}

/// Settles an order whose request had an unknown outcome: if no report arrived within
/// [`settle_after`], the venue is asked; an order it does not know is reported rejected (it
/// never reached the venue), one it knows is caught up. Without this, such an order would stay
/// open forever and count against `max_open_orders`.
async fn settle_unknown(state: Shared, venue: VenueConfig, id: u64) {
    tokio::time::sleep(settle_after(&venue)).await;
    let unsettled = {
        let s = state.borrow();
        s.working
            .get(&id)
            .is_some_and(|w| !w.life.status().is_acknowledged())
            && !s.down.contains(&venue.exchange)
    };
    if !unsettled {
        return;
    }
    let Ok(base) = Base::parse(&venue.rest) else {
        return;
    };
    let mut client = Client::new(base);
    match catch_up_orders(&state, &venue, &mut client, &[id]).await {
        Ok(_) => {}
        Err(e) => state.borrow().log(format!(
            "{}: order {id}: cannot settle its unknown outcome: {e}",
            venue.name
        )),
    }
}

/// Asks the venue about each order of `ids` still working and reports what it missed: an
/// acceptance, fills not reported yet (by trade id), a final state. An order the venue does not
/// know is left alone while its request may still be on its way ([`settle_after`]), and
/// reported rejected after that. Returns the fills reported.
async fn catch_up_orders(
    state: &Shared,
    venue: &VenueConfig,
    client: &mut Client,
    ids: &[u64],
) -> Result<usize, String> {
    let prefix = state.borrow().prefix.clone();
    let mut fills = 0;
    for &id in ids {
        let Some(w) = state.borrow().working.get(&id).cloned() else {
            continue; // finished meanwhile (a report on the stream)
        };
        let info =
            crate::catchup::query_order(client, venue, &w.symbol, &format!("{prefix}{id}")).await?;
        let report_with = |kind: ExecKind, leaves: i64, base: Qty, detail: Detail<'_>| {
            let mut exec = local_exec(venue.exchange, id, kind, Qty(leaves.max(0)));
            exec.base_commission = base;
            report(state, exec, &venue.name, &w.symbol, w.life.side(), detail);
        };
        let report_one = |kind: ExecKind, leaves: i64| {
            report_with(kind, leaves, Qty::ZERO, Detail::default());
        };
        let Some(info) = info else {
            let settled_out = now_ns() - w.sent_ns >= settle_after(venue).as_nanos() as i64;
            if settled_out && state.borrow().working.contains_key(&id) {
                state.borrow().log(format!(
                    "{}: order {id}: its request had no clear answer and the venue does not \
                     know it: rejected",
                    venue.name
                ));
                report_one(ExecKind::Rejected(RejectReason::VenueRejected), 0);
            }
            continue;
        };
        let acknowledged = |w: &Working| w.life.status().is_acknowledged();
        if state
            .borrow()
            .working
            .get(&id)
            .is_some_and(|w| !acknowledged(w))
        {
            report_one(ExecKind::Accepted, info.orig_qty.0);
        }
        // An amendment whose push the stream may have missed: made if the venue's order has
        // its price and quantity (before its fills, which it may explain); otherwise its
        // settle asks again.
        let asked = state.borrow().amending.get(&id).copied();
        if let Some(asked) = asked {
            if info.status.is_open() && (info.price, info.orig_qty) == (asked.price, asked.qty) {
                settle_amend_with(state, venue, id, asked, &info, &w.symbol, w.life.side());
            }
        }
        let mut info = info;
        if info.executed_qty.0 > 0 {
            // Asked again while the trades do not add up (a venue's fills may lag its order).
            let client_id = format!("{prefix}{id}");
            let mut at = crate::catchup::AtVenue {
                client: &mut *client,
                venue,
                symbol: &w.symbol,
                client_id: &client_id,
            };
            let delay = crate::catchup::TRADES_RETRY_DELAY;
            let (now, trades) = crate::catchup::trades_adding_up(&mut at, info, delay).await?;
            info = now;
            let mut cum = 0;
            for t in &trades {
                cum += t.qty.0;
                let Ok(trade_id) = i64::try_from(t.id) else {
                    continue;
                };
                let seen = state
                    .borrow()
                    .working
                    .get(&id)
                    .map_or(true, |w| w.trades.contains(&trade_id));
                if seen {
                    continue;
                }
                state.borrow_mut().remember_caught(id, trade_id);
                let charged = Charged {
                    asset: &t.commission_asset,
                    amount: t.commission,
                };
                let (fee, base) = charged.book(state, venue, &w.symbol);
                let fill = ExecKind::Fill {
                    price: t.price,
                    qty: t.qty,
                    maker: t.is_maker,
                    fee,
                };
                let detail = Detail {
                    trade_id: Some(trade_id),
                    charged: Some(charged),
                    reason: None,
                };
                report_with(fill, info.orig_qty.0 - cum, base, detail);
                fills += 1;
            }
            if cum != info.executed_qty.0 {
                return Err(format!(
                    "order {id}: the venue executed {} but its trades add up to {}: the position \
                     cannot be known",
                    dec(info.executed_qty.0),
                    dec(cum)
                ));
            }
        }
        let last = match info.status {
            VenueStatus::Cancelled => Some((ExecKind::Cancelled, None)),
            VenueStatus::Expired => Some((ExecKind::Expired, None)),
            VenueStatus::ExpiredBySelfTradePrevention => {
                Some((ExecKind::Expired, Some(STP_REASON)))
            }
            VenueStatus::Rejected => Some((ExecKind::Rejected(RejectReason::VenueRejected), None)),
            _ => None,
        };
        if let Some((kind, reason)) = last {
            if state.borrow().working.contains_key(&id) {
                let detail = Detail {
                    reason,
                    ..Detail::default()
                };
                report_with(kind, 0, Qty::ZERO, detail);
            }
        }
    }
    Ok(fills)
}

/// A user stream quiet for this long is pinged...
const PING_AFTER: Duration = Duration::from_secs(10);
/// ...and lost when nothing (not even the pong) arrives this long after the ping: a half-open
/// connection is otherwise silent forever.
const PONG_DEADLINE: Duration = Duration::from_secs(5);

/// An account change of a futures venue, counted. A funding payment (in the instrument's
/// quote asset) is journaled and handed to the strategy thread, which books it into the
/// instrument's realised P&L: the instrument is the one the update names (isolated margin
/// lists the position). A cross-margin update names none, and its payment may be for symbols
/// the engine does not trade on the same account: each symbol's payment is read from the
/// venue's funding history ([`attribute_funding`]), which lists the isolated payments too;
/// a payment is booked once whichever path sees it first (`funding_booked`).
fn account_change(state: &Shared, venue: &VenueConfig, change: &AccountChange) {
    state.borrow_mut().counters.account_updates += 1;
    if change.reason != AccountReason::Funding {
        return;
    }
    if change.balance_changes.is_empty() {
        // The update says a payment was made, not how much (OKX's `funding_fee`): the
        // amounts are the venue's history's, awaited for each traded symbol it names.
        let named = change
            .positions
            .iter()
            .filter(|p| venue.traded.contains(&p.symbol))
            .map(|p| p.symbol.clone());
        state
            .borrow_mut()
            .funding_awaiting
            .entry(venue.exchange)
            .or_default()
            .extend(named);
        ask_funding(state, venue);
        return;
    }
    let named = change
        .positions
        .iter()
        .map(|p| p.symbol.as_str())
        .find(|s| venue.traded.iter().any(|v| v == s));
    let Some(symbol) = named else {
        let announced = change.balance_changes.clone();
        tokio::task::spawn_local(attribute_funding(
            state.clone(),
            venue.clone(),
            Announced::Amounts(announced),
        ));
        return;
    };
    for (asset, amount) in &change.balance_changes {
        let payment = FundingBooked {
            exchange: venue.exchange,
            symbol: symbol.to_owned(),
            asset: asset.clone(),
            amount: *amount,
            history: false,
            time_ms: change.time_ms,
            journaled: false,
        };
        if state.borrow_mut().funding_booked.booked_before(payment) {
            continue;
        }
        let paid = Paid {
            id: None,
            time_ms: change.time_ms,
        };
        book_funding(state, venue, symbol, asset, *amount, paid);
    }
}

/// The venue's id of a funding payment (when known: its history's) and its time (ms).
#[derive(Debug, Clone, Copy)]
struct Paid {
    id: Option<u64>,
    time_ms: u64,
}

/// Journals a funding payment of `symbol` (with the venue's id and time, see [`Paid`]) and
/// hands it to the strategy thread (booked when it is in the instrument's settlement currency:
/// a contract's `settleCcy`, else the quote).
fn book_funding(
    state: &Shared,
    venue: &VenueConfig,
    symbol: &str,
    asset: &str,
    amount: i64,
    paid: Paid,
) {
    let instrument = {
        let s = state.borrow();
        s.names
            .instruments
            .iter()
            .position(|(x, sym)| *x == venue.exchange && sym == symbol)
    };
    let quote = venue
        .settlement(symbol)
        .unwrap_or_else(|| rt_venues::assets::quote_asset(symbol));
    let mut s = state.borrow_mut();
    s.counters.funding_payments += 1;
    s.log(format!(
        "{}: funding payment {} {asset} on {symbol}",
        venue.name,
        dec(amount)
    ));
    if asset != quote {
        s.log(format!(
            "{}: a funding payment in {asset}, not {quote}: journaled, not booked",
            venue.name
        ));
    }
    s.journal(&Record::Funding {
        ts: now_ns(),
        exchange: venue.name.clone(),
        symbol: symbol.to_owned(),
        asset: asset.to_owned(),
        amount: dec(amount),
        id: paid.id,
        time_ms: Some(paid.time_ms),
    });
    if let (Some(id), true) = (instrument, asset == quote) {
        venue
            .marks
            .push_funding(id as rt_core::InstrumentId, amount);
        s.flags.wake_strategy();
    }
}

/// Watches each traded future of `venue` whose delivery the journal does not hold
/// ([`crate::delivery::watch`]): at its expiry the venue's delivery is journaled and handed to
/// the strategy thread (which books it), once.
fn watch_deliveries(state: &Shared, venue: &VenueConfig) {
    for future in venue.futures.iter().filter(|f| !f.delivered) {
        let instrument = {
            let s = state.borrow();
            s.names
                .instruments
                .iter()
                .position(|(x, sym)| *x == venue.exchange && *sym == future.symbol)
        };
        let (Some(id), true) = (instrument, venue.traded.contains(&future.symbol)) else {
            continue;
        };
        let (booking, logging) = (state.clone(), state.clone());
        let v = venue.clone();
        tokio::task::spawn_local(crate::delivery::watch(
            venue.clone(),
            future.clone(),
            id as rt_core::InstrumentId,
            move |d| {
                let symbol = booking.borrow().names.instruments[d.instrument as usize]
                    .1
                    .clone();
                let mut s = booking.borrow_mut();
                s.log(format!(
                    "{}: {symbol} delivered at {} (the venue's delivery price, {} ms)",
                    v.name,
                    dec(d.price.0),
                    d.time_ms
                ));
                s.journal(&Record::Delivery {
                    ts: now_ns(),
                    exchange: v.name.clone(),
                    symbol,
                    price: dec(d.price.0),
                    time_ms: d.time_ms,
                });
                v.marks.push_delivery(d.instrument, d.price);
                s.flags.wake_strategy();
            },
            move |line| logging.borrow().log(line),
        ));
    }
}

/// How often, and how far apart, the funding history is asked until it holds the payments a
/// cross-margin update announced (the venue's history may trail its stream).
const FUNDING_TRIES: u32 = 5;
const FUNDING_RETRY: Duration = Duration::from_secs(1);

/// What a funding update said of its payments.
#[derive(Debug)]
enum Announced {
    /// (asset, total) of a cross-margin update (Binance USD-M).
    Amounts(Vec<(String, i64)>),
    /// The exchange's awaited symbols (`funding_awaiting`): an update that named them
    /// without amounts (OKX), or none (after the private stream came back: payments made
    /// while it was down). One such task an exchange at a time (`funding_asking`).
    Awaited,
}

/// Starts asking the funding history for the exchange's awaited symbols, unless a task is
/// already asking (it then finds them too: it asks until none is awaited).
fn ask_funding(state: &Shared, venue: &VenueConfig) {
    if venue.derivatives().is_none() || !state.borrow_mut().funding_asking.insert(venue.exchange) {
        return;
    }
    let (state, venue) = (state.clone(), venue.clone());
    tokio::task::spawn_local(async move {
        attribute_funding(state.clone(), venue.clone(), Announced::Awaited).await;
        state.borrow_mut().funding_asking.remove(&venue.exchange);
    });
}

/// How far before the newest payment seen the funding history is asked again: a payment the
/// venue lists late with an earlier time is still found (ids already booked are skipped).
const FUNDING_LOOKBACK_MS: u64 = 3_600_000;

/// Attributes funding payments to the venue's symbols from its funding history: the payments
/// it lists that were not attributed yet (by id), each booked on its own symbol when a
/// strategy trades it (others, another desk's on the same account, are logged). Asked again
/// until the new payments add up to what a cross-margin update announced
/// ([`Announced::Amounts`]), or until no awaited symbol is left ([`Announced::Awaited`]: at
/// least once); what is found is booked either way, and what is missing is logged.
async fn attribute_funding(state: Shared, venue: VenueConfig, announced: Announced) {
    let Some(account) = venue.derivatives() else {
        return;
    };
    let Ok(base) = Base::parse(&venue.rest) else {
        return;
    };
    let mut client = Client::with_limits(base, venue.limits.clone());
    let mut found: Vec<(String, i64)> = Vec::new();
    for attempt in 0..FUNDING_TRIES {
        if attempt > 0 {
            tokio::time::sleep(FUNDING_RETRY).await;
        }
        let since = {
            let s = state.borrow();
            let newest = s.funding_since.get(&venue.exchange).copied().unwrap_or(0);
            s.funding_from_ms
                .max(newest.saturating_sub(FUNDING_LOOKBACK_MS))
        };
        let request = account.funding_history(since, now_ms());
        let r = match send_request(&mut client, &request).await {
            Ok(r) if r.status == 200 => r,
            Ok(r) => {
                state.borrow().log(format!(
                    "{}: funding history: HTTP {}: {}",
                    venue.name,
                    r.status,
                    String::from_utf8_lossy(&r.body)
                ));
                continue;
            }
            Err(e) => {
                state
                    .borrow()
                    .log(format!("{}: funding history: {e}", venue.name));
                continue;
            }
        };
        let payments = match account.funding_payments(&String::from_utf8_lossy(&r.body)) {
            Ok(p) => p,
            Err(e) => {
                state
                    .borrow()
                    .log(format!("{}: funding history: {e}", venue.name));
                continue;
            }
        };
        let (listed, mut booked) = (payments.len(), 0usize);
        for p in payments {
            let new = {
                let mut s = state.borrow_mut();
                let since = s.funding_since.entry(venue.exchange).or_insert(0);
                *since = (*since).max(p.time_ms);
                s.funding_seen.insert((venue.exchange, p.id))
            };
            if !new {
                continue;
            }
            if venue.traded.contains(&p.symbol) {
                let payment = FundingBooked {
                    exchange: venue.exchange,
                    symbol: p.symbol.clone(),
                    asset: p.asset.clone(),
                    amount: p.amount,
                    history: true,
                    time_ms: p.time_ms,
                    journaled: false,
                };
                // An isolated payment its own update booked already (another update's).
                if state.borrow_mut().funding_booked.booked_before(payment) {
                    continue;
                }
            }
            match found.iter_mut().find(|(a, _)| *a == p.asset) {
                Some((_, total)) => *total += p.amount,
                None => found.push((p.asset.clone(), p.amount)),
            }
            if venue.traded.contains(&p.symbol) {
                if let Some(awaited) = state.borrow_mut().funding_awaiting.get_mut(&venue.exchange)
                {
                    awaited.remove(&p.symbol);
                }
                booked += 1;
                let paid = Paid {
                    id: Some(p.id),
                    time_ms: p.time_ms,
                };
                book_funding(&state, &venue, &p.symbol, &p.asset, p.amount, paid);
            } else {
                state.borrow().log(format!(
                    "{}: funding payment {} {} on {}, which this engine does not trade: not booked",
                    venue.name,
                    dec(p.amount),
                    p.asset,
                    p.symbol
                ));
            }
        }
        {
            let mut s = state.borrow_mut();
            if s.funding_read.insert(venue.exchange) {
                // The journal's payments without an id that this read did not list are not
                // in its window: none is matched later.
                s.funding_booked.forget_journaled(venue.exchange);
                s.log(format!(
                    "{}: funding history read from {since} (ms): {listed} payment(s) listed, \
                     {booked} booked that the journal did not hold",
                    venue.name
                ));
            }
        }
        let covered = match &announced {
            Announced::Amounts(announced) => announced
                .iter()
                .all(|(asset, total)| found.iter().any(|(a, t)| a == asset && t == total)),
            Announced::Awaited => state
                .borrow()
                .funding_awaiting
                .get(&venue.exchange)
                .map_or(true, |a| a.is_empty()),
        };
        if covered {
            return;
        }
    }
    let missing = match announced {
        Announced::Amounts(a) => format!("announced {a:?}"),
        Announced::Awaited => {
            let awaited = state
                .borrow_mut()
                .funding_awaiting
                .remove(&venue.exchange)
                .unwrap_or_default();
            format!("announced payments on {awaited:?} without amounts")
        }
    };
    state.borrow().log(format!(
        "{}: a funding update {missing}; its history gave {found:?} after {FUNDING_TRIES} tries",
        venue.name,
    ));
}

/// A derivative's mark price from the venue, for the strategy thread (unrealised P&L).
fn venue_mark(state: &Shared, venue: &VenueConfig, symbol: &str, price: rt_core::Price) {
    let mut s = state.borrow_mut();
    s.counters.venue_marks += 1;
    let instrument = s
        .names
        .instruments
        .iter()
        .position(|(x, sym)| *x == venue.exchange && sym == symbol);
    if let Some(id) = instrument {
        venue
            .marks
            .push_venue_mark(id as rt_core::InstrumentId, price);
    }
}

/// Reads the stream until it is lost (`Some(why)`) or the engine stops (`None`).
async fn read_stream(
    state: &Shared,
    venue: &VenueConfig,
    ws: &mut Ws,
    flags: &Flags,
) -> Option<String> {
    use futures_util::SinkExt;
    let prefix = state.borrow().prefix.clone();
    // Our ids as the venue writes them (OKX escapes them into `clOrdId`).
    let wire_prefix = venue.client.wire_client_id(&prefix);
    let mut heard = tokio::time::Instant::now();
    let mut pinged: Option<tokio::time::Instant> = None;
    loop {
        let next = tokio::time::timeout(Duration::from_millis(200), ws.next()).await;
        let msg = match next {
            Err(_) => {
                if flags.trader_done.load(Ordering::Acquire) {
                    return None;
                }
                match pinged {
                    Some(at) if at.elapsed() >= PONG_DEADLINE => {
                        return (!flags.stopping()).then(|| {
                            format!("no answer to a ping within {} s", PONG_DEADLINE.as_secs())
                        });
                    }
                    None if heard.elapsed() >= PING_AFTER => {
                        let ping = match venue.client.stream_ping() {
                            Some(text) => Message::Text(text.into()),
                            None => Message::Ping(Vec::new().into()),
                        };
                        if let Err(e) = ws.send(ping).await {
                            return (!flags.stopping()).then(|| format!("ping: {e}"));
                        }
                        pinged = Some(tokio::time::Instant::now());
                    }
                    _ => {}
                }
                continue;
            }
            Ok(None) => {
                return (!flags.stopping()).then(|| "closed by the venue".to_owned());
            }
            Ok(Some(Err(e))) => {
                return (!flags.stopping()).then(|| e.to_string());
            }
            Ok(Some(Ok(m))) => {
                heard = tokio::time::Instant::now();
                pinged = None;
                m
            }
        };
        let recv = now_ns();
        let text = match &msg {
            Message::Text(t) => t.as_str().to_owned(),
            Message::Binary(b) => String::from_utf8_lossy(b).into_owned(),
            _ => continue,
        };
        // One update, or several in order (a fill and the order's end, several orders).
        let (one, several) = match venue.client.private_event(&text) {
            Ok(PrivateEvent::Order(u)) => (Some(u), Vec::new()),
            Ok(PrivateEvent::Orders(updates)) => (None, updates),
            // Nothing more comes on an expired key: a new one, and a catch-up.
            Ok(PrivateEvent::StreamExpired) => {
                state.borrow_mut().counters.listen_key_expiries += 1;
                return Some("the venue expired the listen key".to_owned());
            }
            Ok(PrivateEvent::Account(change)) => {
                account_change(state, venue, &change);
                continue;
            }
            Ok(PrivateEvent::Mark { symbol, price }) => {
                venue_mark(state, venue, &symbol, price);
                continue;
            }
            Ok(PrivateEvent::Other) => continue,
            // One of ours that cannot be read may be a fill or an end: never dropped, the
            // stream counts as lost and every working order is caught up over REST.
            Err(e) if text.contains(&format!("\"{wire_prefix}")) => {
                state.borrow_mut().counters.unreadable_reports += 1;
                return Some(format!("a report of ours could not be read ({e})"));
            }
            Err(e) => {
                state
                    .borrow()
                    .log(format!("{}: bad report: {e}", venue.name));
                continue;
            }
        };
        for update in one.into_iter().chain(several) {
            if let Err(lost) = stream_update(state, venue, &prefix, recv, update) {
                return Some(lost);
            }
        }
    }
}

/// One order update of the private stream, reported (unless a catch-up reported its fill
/// already); an error when the stream must count as lost (an id of ours that cannot be read).
fn stream_update(
    state: &Shared,
    venue: &VenueConfig,
    prefix: &str,
    recv: i64,
    update: OrderUpdate,
) -> Result<(), String> {
    let OrderUpdate {
        symbol,
        client_id,
        side,
        kind: update,
        leaves,
    } = update;
    let Some(id) = client_id.strip_prefix(prefix) else {
        state.borrow_mut().counters.foreign_reports += 1;
        return Ok(());
    };
    let Ok(order_id) = id.parse::<u64>() else {
        state.borrow_mut().counters.unreadable_reports += 1;
        return Err(format!(
            "a report of ours names order {client_id:?}, not an id of ours"
        ));
    };
    if let UpdateKind::Fill(f) = &update {
        // A catch-up after a reconnect may have reported it already: nothing of it is booked
        // or counted twice (the commission's counters included).
        let seen = state
            .borrow()
            .working
            .get(&order_id)
            .is_some_and(|w| w.trades.contains(&f.trade_id));
        if seen || state.borrow_mut().caught.remove(&(order_id, f.trade_id)) {
            return Ok(());
        }
    }
    let (kind, trade, charged, base_commission, reason) = match &update {
        UpdateKind::Accepted => (ExecKind::Accepted, None, None, Qty::ZERO, None),
        UpdateKind::Fill(f) => {
            let charged = Charged {
                asset: &f.commission_asset,
                amount: f.commission,
            };
            let (fee, base) = charged.book(state, venue, &symbol);
            let kind = ExecKind::Fill {
                price: f.price,
                qty: f.qty,
                maker: f.is_maker,
                fee,
            };
            (kind, Some(f.trade_id), Some(charged), base, None)
        }
        UpdateKind::Cancelled => (ExecKind::Cancelled, None, None, Qty::ZERO, None),
        UpdateKind::Expired => (ExecKind::Expired, None, None, Qty::ZERO, None),
        // Self-trade prevention expired it (EXPIRED_IN_MATCH): finished, like an expiry.
        UpdateKind::ExpiredBySelfTradePrevention => {
            state.borrow_mut().counters.self_trade_prevented += 1;
            (ExecKind::Expired, None, None, Qty::ZERO, Some(STP_REASON))
        }
        UpdateKind::Rejected => (
            ExecKind::Rejected(RejectReason::VenueRejected),
            None,
            None,
            Qty::ZERO,
            None,
        ),
        UpdateKind::Amended { .. } | UpdateKind::AmendRejected { .. } => {
            // Reported once, for the amendment of ours still unanswered (a settle may have
            // asked the venue first): the push names it (OKX `reqId`), or without a name its
            // price and quantity must be the ones asked. A late answer to an earlier
            // amendment of the order is left out.
            let asked = state.borrow().amending.get(&order_id).copied();
            if !answers(&update, asked) {
                return Ok(());
            }
            state.borrow_mut().amending.remove(&order_id);
            let kind = match update {
                UpdateKind::Amended { price, qty, .. } => ExecKind::Amended { price, qty },
                _ => ExecKind::AmendRejected(RejectReason::VenueRejected),
            };
            (kind, None, None, Qty::ZERO, None)
        }
    };
    let exec = ExecMsg {
        exchange: venue.exchange,
        exec: Exec {
            ts: recv,
            order_id,
            kind,
            leaves,
        },
        recv_ns: recv,
        base_commission,
    };
    report(
        state,
        exec,
        &venue.name,
        &symbol,
        side,
        Detail {
            trade_id: trade,
            charged,
            reason,
        },
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::RecoveredFunding;
    use crate::wire::test_request as request;

    fn paid(symbol: &str, amount: i64, history: bool) -> FundingBooked {
        FundingBooked {
            exchange: 0,
            symbol: symbol.into(),
            asset: "USDT".into(),
            amount,
            history,
            time_ms: 0,
            journaled: false,
        }
    }

    /// Lanes over `n` connections whose workers take nothing (the channels are kept open).
    fn lanes_of(n: usize) -> (Lanes, Vec<mpsc::UnboundedReceiver<Job>>) {
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..n).map(|_| mpsc::unbounded_channel()).unzip();
        let load = (0..n).map(|_| Rc::new(std::cell::Cell::new(0))).collect();
        let sweeps = (0..n).map(|_| Rc::new(std::cell::Cell::new(0))).collect();
        let lanes = Lanes {
            exchange: 0,
            txs,
            load,
            sweeps,
            route: std::collections::HashMap::new(),
        };
        (lanes, rxs)
    }

    #[test]
    fn a_new_order_takes_a_free_connection_and_its_cancel_follows_it() {
        let (mut lanes, mut rxs) = lanes_of(4);
        // Order 8 would go down connection 0 by its id: busy with two requests, it goes to 1.
        lanes.load[0].set(2);
        lanes.send(request(8, false), 0);
        assert_eq!(rxs[1].try_recv().map(|j| j.msg.order_id).ok(), Some(8));
        assert_eq!(lanes.load[1].get(), 1);
        // Its cancel follows it, though connection 1 is now the busier.
        lanes.load[1].set(5);
        lanes.send(request(8, true), 0);
        assert_eq!(rxs[1].try_recv().map(|j| j.msg.cancel).ok(), Some(true));
        // An idle venue spreads its orders by id.
        let (mut idle, mut rxs) = lanes_of(4);
        idle.send(request(6, false), 0);
        assert_eq!(rxs[2].try_recv().map(|j| j.msg.order_id).ok(), Some(6));
        // A cancel of an order never routed (sent before a restart) goes by its id.
        idle.send(request(13, true), 0);
        assert_eq!(rxs[1].try_recv().map(|j| j.msg.order_id).ok(), Some(13));
        // Routes of orders no longer working are forgotten once old enough and once their
        // connection has nothing queued or in flight (the order's request was written).
        let none = std::collections::HashMap::new();
        lanes.prune(&none, 1_000);
        assert!(lanes.route.contains_key(&8));
        lanes.prune(&none, ROUTE_KEEP_MS + 1);
        assert!(lanes.route.contains_key(&8), "connection 1 still busy");
        lanes.load[1].set(0);
        lanes.prune(&none, ROUTE_KEEP_MS + 1);
        assert!(lanes.route.is_empty());
    }

    #[test]
    fn a_new_order_goes_behind_a_cancel_all_still_queued_or_in_flight() {
        let (mut lanes, mut rxs) = lanes_of(4);
        // The cancel-all takes the least loaded connection (2; 0 and 1 busy).
        lanes.load[0].set(1);
        lanes.load[1].set(1);
        lanes.send(request(0, true), 0);
        assert_eq!(rxs[2].try_recv().map(|j| j.msg.order_id).ok(), Some(0));
        assert_eq!(lanes.sweeps[2].get(), 1);
        // A new order decided after it goes behind it, though connection 3 is idle.
        lanes.send(request(7, false), 0);
        assert_eq!(rxs[2].try_recv().map(|j| j.msg.order_id).ok(), Some(7));
        assert!(rxs[3].try_recv().is_err());
        // Its answer read (the worker's count back to 0): orders spread again.
        lanes.sweeps[2].set(0);
        lanes.load[2].set(0);
        lanes.send(request(11, false), 0);
        assert_eq!(rxs[3].try_recv().map(|j| j.msg.order_id).ok(), Some(11));
    }

    #[test]
    fn a_pushed_amendment_result_answers_only_the_amendment_it_names() {
        let asked = Amending {
            price: rt_core::Price(5),
            qty: Qty(3),
            seq: 9,
        };
        let made = |price, qty, request| UpdateKind::Amended {
            price: rt_core::Price(price),
            qty: Qty(qty),
            request,
        };
        assert!(answers(&made(5, 3, Some(9)), Some(asked)));
        // An earlier amendment's late push, even at the same price and quantity.
        assert!(!answers(&made(5, 3, Some(8)), Some(asked)));
        assert!(!answers(
            &UpdateKind::AmendRejected { request: Some(8) },
            Some(asked)
        ));
        assert!(answers(
            &UpdateKind::AmendRejected { request: Some(9) },
            Some(asked)
        ));
        // No name (a venue that echoes none): a made one must be what was asked.
        assert!(answers(&made(5, 3, None), Some(asked)));
        assert!(!answers(&made(6, 3, None), Some(asked)));
        // Nothing pending: no answer is ours.
        assert!(!answers(&made(5, 3, Some(9)), None));
    }

    #[test]
    fn a_funding_payment_is_booked_once_whichever_path_sees_it_first() {
        let mut ledger = FundingLedger::default();
        // Isolated BTCUSDT: its own update first, then the history a cross update reads.
        assert!(!ledger.booked_before(paid("BTCUSDT", -120, false)));
        assert!(!ledger.booked_before(paid("ETHUSDT", 45, true)));
        assert!(ledger.booked_before(paid("BTCUSDT", -120, true)));
        // The history first, then the isolated update.
        assert!(!ledger.booked_before(paid("BTCUSDT", -80, true)));
        assert!(ledger.booked_before(paid("BTCUSDT", -80, false)));
        // Matched payments are forgotten: the next funding period's equal payment is new.
        assert!(!ledger.booked_before(paid("BTCUSDT", -80, false)));
        // The same path twice is two payments (the history's dedup is by the venue's id).
        assert!(!ledger.booked_before(paid("ETHUSDT", 45, true)));
        assert_eq!(ledger.booked.len(), 3);
        // Bounded.
        for i in 0..2 * FUNDING_KEPT as i64 {
            ledger.booked_before(paid("XRPUSDT", i, false));
        }
        assert_eq!(ledger.booked.len(), FUNDING_KEPT);
    }

    fn journaled(symbol: &str, amount: &str, id: Option<u64>, time_ms: u64) -> RecoveredFunding {
        RecoveredFunding {
            exchange: "okx".into(),
            symbol: symbol.into(),
            asset: "USDT".into(),
            amount: amount.into(),
            ts: 0,
            id,
            time_ms: Some(time_ms),
        }
    }

    #[test]
    fn at_start_the_journals_payments_are_never_booked_again() {
        const HOUR: u64 = 3_600_000;
        let t = 100 * HOUR;
        let start = FundingStart {
            journaled: vec![
                // Long ago, without an id (from the stream): outside any window read again.
                journaled("BTCUSDT", "-1.2", None, t - 8 * HOUR),
                // From the history: its id.
                journaled("ETHUSDT", "0.5", Some(7), t - 1000),
                // From the stream, the newest.
                journaled("BTCUSDT", "-1.2", None, t),
                // Another engine's venue, not this gateway's.
                RecoveredFunding {
                    exchange: "binance".into(),
                    ..journaled("BTCUSDT", "-9", Some(9), t + HOUR)
                },
            ],
            journal_start_ms: Some(t - 50 * HOUR),
        };
        let exchange_of = |name: &str| (name == "okx").then_some(3);
        let journaled = funding_from_journal(exchange_of, &start, 2 * t);
        assert_eq!(journaled.seen, [(3, 7)].into_iter().collect());
        assert_eq!(journaled.since.get(&3), Some(&t));
        assert_eq!(journaled.since.len(), 1);
        assert_eq!(journaled.from_ms, t - 50 * HOUR);
        // A new journal: read from now.
        let fresh = FundingStart::default();
        assert_eq!(funding_from_journal(exchange_of, &fresh, t).from_ms, t);
        let mut ledger = journaled.ledger;
        assert_eq!(ledger.booked.len(), 1);
        let listed = |amount: i64, time_ms: u64| FundingBooked {
            exchange: 3,
            symbol: "BTCUSDT".into(),
            asset: "USDT".into(),
            amount,
            history: true,
            time_ms,
            journaled: false,
        };
        // The next period's equal payment (made while the engine was down) is new...
        assert!(!ledger.booked_before(listed(-120_000_000, t + 8 * HOUR)));
        // ...the journaled one, listed by the history with its id, is not booked again.
        assert!(ledger.booked_before(listed(-120_000_000, t + 2_000)));
        assert!(!ledger.booked.iter().any(|b| b.journaled));
        // Unmatched journaled payments are forgotten after the first read.
        let mut ledger = funding_from_journal(exchange_of, &start, 2 * t).ledger;
        ledger.forget_journaled(3);
        assert!(!ledger.booked_before(listed(-120_000_000, t)));
    }
}
