//! OKX v5 spot order entry as the sim speaks it, over the sim's matching engine
//! ([`crate::venue::Venue`]) on the OKX books it replays (`books`, `okx`): the REST trade and
//! account endpoints on the sim's REST port and the private WebSocket (`/ws/v5/private`) on its
//! WebSocket port, for a manifest exchange on OKX whose `endpoints.rest` is the sim's.
//!
//! - The book: every OKX frame the sim replays is decoded by the engine's own OKX market data
//!   (`rt_venues::market::for_exchange`) into the matcher's book and trades, so resting orders
//!   fill as the recorded market moves through them.
//! - Requests are verified as OKX does when the manifest has credentials (`rt_venues::okx::
//!   signing`: the key, the passphrase, the base64 HMAC-SHA256 of timestamp + method + path +
//!   body, a timestamp within 30 s; refused with `50111` invalid key, `50105` wrong passphrase,
//!   `50113` invalid signature, `50102` an expired timestamp, `50103`-`50107` a missing
//!   header, HTTP 401), and accepted unsigned without them.
//! - `POST /api/v5/trade/order` (spot: `tdMode` `cash`, a swap or futures: `cross` or
//!   `isolated`, sized in contracts, without margin (`crate::okx_account` keeps the swaps'
//!   positions, leverage and funding bills, and serves `account/config`, `set-leverage`,
//!   `positions`, `bills`); `ordType` `limit`, `post_only`,
//!   `ioc`, `market`, spot's with `tgtCcy` `base_ccy`; a derivative's `reduceOnly` order must
//!   be against the account's net position and no larger, checked when placed),
//!   `cancel-order`, `cancel-batch-orders`, `amend-order` (`newPx`, `newSz` the quantity
//!   ordered with fills; by `clOrdId`: made at once by the matcher, `rt_core::Matcher::amend`,
//!   and pushed with `amendResult` `0` and the request's `reqId`, or refused in the answer: `51503` an order not open,
//!   `51000` a bad parameter or a post-only order moved across the book, `51006` anything else
//!   the matcher refuses), `GET /api/v5/trade/order`, `orders-pending`,
//!   `fills` (newest first, `after` a bill id: a fill's bill id is its trade id here), `GET
//!   /api/v5/account/balance` (`GET /api/v5/public/instruments` is the sim's `metadata`). A
//!   post-only order that would take is accepted and cancelled, as OKX does. Orders reach the
//!   matcher at once (the Binance side's `sim.latency_us` is not applied here).
//! - The private stream: `login` (verified like a request, over timestamp + `GET` +
//!   `/users/self/verify`; `60009` when refused), `subscribe` to `orders`, `account` and
//!   `balance_and_position` (acknowledged; `balance_and_position` pushes the `funding`
//!   fault's payments; `orders` pushes every order's new state: `live`, `partially_filled` and
//!   `filled` with the fill's `tradeId`, `fillPx`, `fillSz`, `fillFee` negative as charged in
//!   `fillFeeCcy`, `execType`, and `canceled`), `ping` answered `pong`. Commissions are charged
//!   in the currency received (a buy's fee in the base asset, a sell's in the quote), as OKX
//!   charges spot fees; a contract's in its settlement currency (`settleCcy`), on the
//!   contracts' value (`rt_core::ContractValue`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use rt_core::{Nanos, OrderKind, Price, Qty, Side};
use rt_manifest::model::{Exchange, SimCommission};
use rt_venues::binance_orders::{
    parse_my_trades, parse_open_orders, parse_order, ApiError, CancelOrder, ExecType,
    ExecutionReport, MyTradesQuery, NewOrder, OrderInfo, OrderStatus, OrderType, QueryOrder,
    TimeInForce, Timing,
};
use rt_venues::market::MarketData;
use rt_venues::okx::account::BALANCE_AND_POSITION;
use rt_venues::okx::execution::{
    answer, decode_client_id, encode_client_id, order_answer, OkxFill, OkxOrder,
};
use rt_venues::okx::signing::{
    parse_iso_timestamp, sign_login, sign_request, KEY_HEADER, PASSPHRASE_HEADER, SIGN_HEADER,
    TIMESTAMP_HEADER,
};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use crate::okx_account::{Listed, OkxAccount};
use crate::venue::{CommissionSettings, Venue};
use crate::SimError;

/// How far a request's timestamp may be from the sim's clock (OKX: 30 s).
const MAX_SKEW_MS: u64 = 30_000;
/// Pushes kept for a private connection; one further behind is closed.
const PUSH_CAPACITY: usize = 1 << 12;
const CONN_ID: &str = "9c3d51b2";

/// The key, secret and passphrase the sim verifies with.
#[derive(Clone)]
pub(crate) struct OkxKeys {
    pub key: String,
    pub secret: Vec<u8>,
    pub passphrase: String,
}

impl std::fmt::Debug for OkxKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OkxKeys(<redacted>)")
    }
}

struct DeskState {
    venue: Venue,
    market: Box<dyn MarketData>,
    reports: Vec<ExecutionReport>,
    last_ns: Nanos,
    /// Post-only orders OKX accepted and cancelled because they would have taken, by client id.
    cancelled_post_only: HashMap<String, OkxOrder>,
    /// Their client ids, oldest first: at most [`CANCELLED_POST_ONLY_MAX`] are kept.
    cancelled_post_only_order: std::collections::VecDeque<String>,
    next_synthetic_id: u64,
    /// `POST /sim/okx/fault?kind=rate_limit&count=N`: order placements still to answer 429.
    throttle_orders: u32,
    throttled: Throttled,
    /// The account's swaps (`crate::okx_account`): net positions from the fills (what a
    /// `reduceOnly` order may reduce), leverage, funding bills.
    account: OkxAccount,
    /// The `reqId` of the amendment being made, echoed by its push.
    amend_req: String,
}

/// Post-only orders cancelled at acceptance that the desk still answers queries about; the
/// oldest is forgotten first (OKX too forgets cancelled orders after a while).
const CANCELLED_POST_ONLY_MAX: usize = 4096;

impl DeskState {
    /// Remembers a post-only order cancelled at acceptance, forgetting the oldest beyond
    /// [`CANCELLED_POST_ONLY_MAX`].
    fn remember_cancelled_post_only(&mut self, client: String, order: OkxOrder) {
        if self
            .cancelled_post_only
            .insert(client.clone(), order)
            .is_none()
        {
            self.cancelled_post_only_order.push_back(client);
        }
        while self.cancelled_post_only_order.len() > CANCELLED_POST_ONLY_MAX {
            if let Some(old) = self.cancelled_post_only_order.pop_front() {
                self.cancelled_post_only.remove(&old);
            }
        }
    }
}

/// Orders placed this soon after a 429 were sent before the 429 was answered.
const IN_FLIGHT_MS: u64 = 250;

/// What the rate-limit fault did (`GET /sim/okx/status`).
#[derive(Debug, Default, Clone, Copy)]
struct Throttled {
    /// HTTP 429 answers.
    answered: u64,
    /// The last one, wall-clock ms.
    last_ms: Option<u64>,
    /// From the last 429 to the next order placed, ms (an order placed within
    /// [`IN_FLIGHT_MS`] of it is not counted: it was on its way when the 429 was answered).
    order_after_ms: Option<u64>,
    /// Cancel requests (`cancel-order`, `cancel-batch-orders`) since the last 429.
    cancels_after: u64,
    /// From the last 429 to the next request that places no order (a cancel, a listing of
    /// open orders, a query), ms.
    other_after_ms: Option<u64>,
    /// Orders placed (answered `sCode` 0) in all.
    orders: u64,
}

/// A private channel the desk pushes on (`account` is acknowledged and pushes nothing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Channel {
    Orders,
    BalanceAndPosition,
}

/// One OKX exchange's order entry on the sim.
pub(crate) struct OkxDesk {
    /// (config name, instId).
    instruments: Vec<(String, String)>,
    keys: Option<OkxKeys>,
    state: Mutex<DeskState>,
    tx: broadcast::Sender<(Channel, Utf8Bytes)>,
}

impl std::fmt::Debug for OkxDesk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OkxDesk")
            .field("instruments", &self.instruments)
            .finish_non_exhaustive()
    }
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn wall_ns() -> Nanos {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn units(v: &Value, key: &str) -> Option<i64> {
    rt_core::parse_signed_units(text(v, key).as_bytes()).ok()
}

/// An answer with its HTTP status.
pub(crate) type Answer = (u16, String);

fn refused(code: i64, msg: &str) -> Answer {
    (200, answer(code, msg, Vec::new()))
}

fn auth_refused(code: i64, msg: &str) -> Answer {
    (401, answer(code, msg, Vec::new()))
}

fn ord_type(order_type: OrderType, tif: Option<TimeInForce>) -> &'static str {
    match order_type {
        OrderType::Market => "market",
        OrderType::LimitMaker => "post_only",
        _ if tif == Some(TimeInForce::Ioc) => "ioc",
        _ => "limit",
    }
}

fn state_of(status: OrderStatus) -> &'static str {
    match status {
        OrderStatus::New => "live",
        OrderStatus::PartiallyFilled => "partially_filled",
        OrderStatus::Filled => "filled",
        _ => "canceled",
    }
}

impl OkxDesk {
    /// The desk of a manifest OKX exchange; its metadata file is read for the instruments
    /// endpoint.
    pub fn new(exchange: &Exchange, keys: Option<OkxKeys>) -> Result<OkxDesk, SimError> {
        let instruments: Vec<(String, String)> = exchange
            .instruments
            .iter()
            .map(|(name, inst)| {
                let listed = inst.listing.as_ref().map(|l| l.symbol.as_str());
                (name.clone(), rt_venues::market::venue_symbol(name, listed))
            })
            .collect();
        let contracts = exchange
            .instruments
            .iter()
            .filter_map(|(name, inst)| {
                let listing = inst.listing.as_ref()?;
                let contract = listing.contract.as_ref()?;
                Some(Listed {
                    name: name.clone(),
                    inst_id: listing.symbol.clone(),
                    terms: rt_core::ContractValue::from_manifest(inst),
                    settle: contract.settle_currency.clone(),
                    expiry_ms: listing.expiry_ms,
                })
            })
            .collect();
        let mut venue = Venue::new(exchange.market, exchange.instruments.iter());
        venue.set_commission(CommissionSettings {
            asset: SimCommission::Received,
            ..CommissionSettings::default()
        });
        if let Some(r) = &exchange.reconcile {
            venue.set_balances(
                r.starting_balances
                    .iter()
                    .map(|(a, v)| (a.clone(), v.raw())),
            );
        }
        Ok(OkxDesk {
            instruments,
            keys,
            state: Mutex::new(DeskState {
                venue,
                market: rt_venues::market::for_exchange(exchange),
                reports: Vec::new(),
                last_ns: 0,
                cancelled_post_only: HashMap::new(),
                cancelled_post_only_order: std::collections::VecDeque::new(),
                account: OkxAccount::new(contracts),
                next_synthetic_id: 1 << 40,
                throttle_orders: 0,
                throttled: Throttled::default(),
                amend_req: String::new(),
            }),
            tx: broadcast::channel(PUSH_CAPACITY).0,
        })
    }

    fn lock(&self) -> MutexGuard<'_, DeskState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn config_name(&self, inst_id: &str) -> Option<&str> {
        self.instruments
            .iter()
            .find(|(_, i)| i == inst_id)
            .map(|(n, _)| n.as_str())
    }

    fn inst_id<'a>(&'a self, name: &'a str) -> &'a str {
        self.instruments
            .iter()
            .find(|(n, _)| n == name)
            .map_or(name, |(_, i)| i.as_str())
    }

    /// One replayed OKX frame (as recorded): the matcher's book and trades move.
    pub fn on_frame(&self, frame: &[u8]) {
        let mut guard = self.lock();
        let st = &mut *guard;
        let ts = wall_ns().max(st.last_ns);
        st.last_ns = ts;
        let (venue, reports) = (&mut st.venue, &mut st.reports);
        let _ = st.market.decode(frame, ts, &mut |event| {
            venue.on_event(ts, event, reports);
            true
        });
        self.publish(st);
        self.deliver_due(st);
    }

    /// Delivers the futures whose expiry the wall clock reached (`crate::okx_account`): each
    /// at the book's mid then (a contract without a book yet waits for one), its resting orders
    /// cancelled, the position change pushed on `balance_and_position`.
    fn deliver_due(&self, st: &mut DeskState) {
        let now = wall_ms();
        for name in st.account.due(now) {
            let Some(mid) = st.venue.mark(&name) else {
                continue;
            };
            let ts = wall_ns().max(st.last_ns);
            st.last_ns = ts;
            let cancel = rt_venues::binance_orders::CancelOpenOrders {
                symbol: name.clone(),
                timing: Timing::new(now),
            };
            // None resting: nothing to cancel.
            let _ = st.venue.cancel_all(ts, &cancel, &mut st.reports);
            self.publish(st);
            if let Some(push) = st.account.deliver(&name, mid, now) {
                let _ = self
                    .tx
                    .send((Channel::BalanceAndPosition, Utf8Bytes::from(push)));
            }
        }
    }

    /// Pushes the matcher's reports on the `orders` channel (drained).
    fn publish(&self, st: &mut DeskState) {
        for r in st.reports.drain(..) {
            if r.status == OrderStatus::Rejected {
                continue;
            }
            let client = if r.exec_type == ExecType::Canceled && !r.orig_client_order_id.is_empty()
            {
                &r.orig_client_order_id
            } else {
                &r.client_order_id
            };
            if r.exec_type == ExecType::Trade {
                st.account
                    .on_fill(&r.symbol, r.side, r.last_price, r.last_qty.0);
            }
            let fill = (r.exec_type == ExecType::Trade).then(|| OkxFill {
                trade_id: u64::try_from(r.trade_id).unwrap_or(0),
                ord_id: r.order_id,
                px: r.last_price.0,
                sz: r.last_qty.0,
                fee: -r.commission,
                fee_ccy: r.commission_asset.clone().unwrap_or_default(),
                maker: r.is_maker,
                ts_ms: r.transaction_time_ms,
            });
            let order = OkxOrder {
                inst_id: self.inst_id(&r.symbol).to_owned(),
                ord_id: r.order_id,
                cl_ord_id: encode_client_id(client).unwrap_or_else(|| client.clone()),
                buy: r.side == Side::Buy,
                ord_type: ord_type(r.order_type, Some(r.time_in_force)),
                px: r.price.0,
                sz: r.quantity.0,
                acc_fill_sz: r.cum_qty.0,
                state: state_of(r.status),
                fill,
                u_time_ms: r.event_time_ms,
                isolated: st.account.isolated(&r.symbol),
            };
            let push = if r.exec_type == ExecType::Replaced {
                order.amend_push(true, &st.amend_req)
            } else {
                order.push()
            };
            let _ = self.tx.send((Channel::Orders, Utf8Bytes::from(push)));
        }
    }

    /// Verifies a request's headers and signature (`path` with its query).
    fn authorize(
        &self,
        method: &str,
        path: &str,
        body: &str,
        header: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(), Answer> {
        let Some(keys) = &self.keys else {
            return Ok(());
        };
        let need = |name: &str, code: i64| {
            header(name).ok_or_else(|| {
                auth_refused(code, &format!("Request header \"{name}\" cannot be empty."))
            })
        };
        let key = need(KEY_HEADER, 50103)?;
        let passphrase = need(PASSPHRASE_HEADER, 50104)?;
        let sign = need(SIGN_HEADER, 50106)?;
        let ts = need(TIMESTAMP_HEADER, 50107)?;
        if key != keys.key {
            return Err(auth_refused(50111, "Invalid OK-ACCESS-KEY."));
        }
        if passphrase != keys.passphrase {
            return Err(auth_refused(
                50105,
                "Request header \"OK-ACCESS-PASSPHRASE\" incorrect.",
            ));
        }
        let Some(at) = parse_iso_timestamp(&ts) else {
            return Err(auth_refused(50112, "Invalid OK-ACCESS-TIMESTAMP."));
        };
        if wall_ms().abs_diff(at) > MAX_SKEW_MS {
            return Err(auth_refused(50102, "Timestamp request expired."));
        }
        if sign_request(&keys.secret, &ts, method, path, body) != sign {
            return Err(auth_refused(50113, "Invalid signature."));
        }
        Ok(())
    }

    /// A REST request under `/api/v5/`: its answer.
    pub fn handle(
        &self,
        method: &str,
        path: &str,
        query: &str,
        body: &str,
        header: &dyn Fn(&str) -> Option<String>,
    ) -> Answer {
        let full = if query.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{query}")
        };
        let params: HashMap<&str, &str> = query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .collect();
        use rt_venues::okx::account as oa;
        use rt_venues::okx::execution as ox;
        {
            let mut st = self.lock();
            self.deliver_due(&mut st);
        }
        // Public: unsigned.
        if method == "GET" && path == oa::DELIVERY_PATH {
            return match (
                params.get("instType"),
                params.get("instFamily").or(params.get("uly")),
            ) {
                (Some(&"FUTURES"), Some(family)) => (
                    200,
                    answer(0, "", self.lock().account.delivery_history(family)),
                ),
                _ => refused(51000, "Parameter instType or instFamily error"),
            };
        }
        if let Err(refusal) = self.authorize(method, &full, body, header) {
            return refusal;
        }
        if !(method == "POST" && path == ox::ORDER_PATH) {
            let mut st = self.lock();
            let t = &mut st.throttled;
            if let (Some(at), None) = (t.last_ms, t.other_after_ms) {
                t.other_after_ms = Some(wall_ms().saturating_sub(at));
            }
            if t.last_ms.is_some() && (path == ox::CANCEL_PATH || path == ox::CANCEL_BATCH_PATH) {
                t.cancels_after += 1;
            }
        }
        match (method, path) {
            ("POST", ox::ORDER_PATH) => {
                if let Some(throttled) = self.throttle() {
                    return throttled;
                }
                let answered = self.place(body);
                if answered.0 == 200 && answered.1.contains("\"sCode\":\"0\"") {
                    let mut st = self.lock();
                    let t = &mut st.throttled;
                    t.orders += 1;
                    if let (Some(at), None) = (t.last_ms, t.order_after_ms) {
                        let after = wall_ms().saturating_sub(at);
                        // Sooner, it was on its way when the 429 was answered.
                        if after >= IN_FLIGHT_MS {
                            t.order_after_ms = Some(after);
                        }
                    }
                }
                answered
            }
            ("POST", rt_venues::okx::limits::AMEND_PATH) => {
                if let Some(throttled) = self.throttle() {
                    return throttled;
                }
                self.amend(body)
            }
            ("POST", ox::CANCEL_PATH) => match serde_json::from_str::<Value>(body) {
                Ok(v) => {
                    let (code, entry) = self.cancel_one(&v);
                    (200, answer(i64::from(code != 0), "", vec![entry]))
                }
                Err(e) => refused(50002, &format!("JSON syntax error: {e}")),
            },
            ("POST", ox::CANCEL_BATCH_PATH) => match serde_json::from_str::<Value>(body) {
                Ok(Value::Array(items)) => {
                    let done: Vec<(i64, Value)> = items.iter().map(|v| self.cancel_one(v)).collect();
                    let failed = done.iter().filter(|(c, _)| *c != 0).count();
                    let code = match failed {
                        0 => 0,
                        n if n == done.len() => 1,
                        _ => 2,
                    };
                    (200, answer(code, "", done.into_iter().map(|(_, e)| e).collect()))
                }
                _ => refused(50002, "JSON syntax error: an array of orders"),
            },
            ("GET", ox::ORDER_PATH) => self.query(&params),
            ("GET", ox::PENDING_PATH) => {
                let symbol = params
                    .get("instId")
                    .and_then(|i| self.config_name(i))
                    .map(str::to_owned);
                // Newest first, `limit` a page (at most 100), `after` an `ordId`: older ones.
                let limit = params
                    .get("limit")
                    .and_then(|l| l.parse::<usize>().ok())
                    .unwrap_or(100)
                    .clamp(1, 100);
                let after = params.get("after").and_then(|a| a.parse::<u64>().ok());
                let st = self.lock();
                match st.venue.open_orders(symbol.as_deref()) {
                    Ok(body) => match parse_open_orders(&body) {
                        Ok(mut orders) => {
                            orders.sort_by_key(|o| std::cmp::Reverse(o.order_id));
                            let page = orders
                                .iter()
                                .filter(|o| after.map_or(true, |a| o.order_id < a))
                                .take(limit)
                                .map(|o| {
                                    let isolated = st.account.isolated(&o.symbol);
                                    self.okx_order(o, isolated).to_json()
                                })
                                .collect();
                            (200, answer(0, "", page))
                        }
                        Err(e) => refused(50026, &e.to_string()),
                    },
                    Err(e) => refused(51000, &e.msg),
                }
            }
            ("GET", ox::FILLS_PATH) => self.fills(&params),
            ("GET", oa::CONFIG_PATH) => (200, answer(0, "", vec![self.lock().account.config()])),
            ("POST", oa::SET_LEVERAGE_PATH) => match serde_json::from_str::<Value>(body) {
                Ok(v) => match self.lock().account.set_leverage(&v) {
                    Ok(set) => (200, answer(0, "", vec![set])),
                    Err((code, msg)) => (200, answer(code, &msg, Vec::new())),
                },
                Err(e) => refused(50002, &format!("JSON syntax error: {e}")),
            },
            ("GET", oa::POSITIONS_PATH) => {
                let st = self.lock();
                let mark = |name: &str| st.venue.mark(name);
                (200, answer(0, "", st.account.positions(&mark, wall_ms())))
            }
            ("GET", oa::BILLS_PATH) => {
                let begin = params.get("begin").and_then(|b| b.parse::<u64>().ok()).unwrap_or(0);
                let limit = params
                    .get("limit")
                    .and_then(|l| l.parse::<usize>().ok())
                    .unwrap_or(oa::BILLS_LIMIT)
                    .clamp(1, oa::BILLS_LIMIT);
                let bills = self.lock().account.bills(params.get("type").copied(), begin, limit);
                (200, answer(0, "", bills))
            }
            ("GET", ox::BALANCE_PATH) => {
                let account = self.lock().venue.account(wall_ms());
                match rt_venues::binance_account::parse_account(&account) {
                    Ok(balances) => {
                        let details: Vec<Value> = balances
                            .iter()
                            .map(|b| {
                                let total = b.free.saturating_add(b.locked);
                                json!({
                                    "ccy": b.asset,
                                    "availBal": ox::format_decimal(b.free),
                                    "frozenBal": ox::format_decimal(b.locked),
                                    "cashBal": ox::format_decimal(total),
                                    "eq": ox::format_decimal(total),
                                })
                            })
                            .collect();
                        (200, answer(0, "", vec![json!({"details": details, "uTime": wall_ms().to_string()})]))
                    }
                    Err(e) => refused(50026, &e.to_string()),
                }
            }
            _ => (
                404,
                answer(
                    50005,
                    &format!("the simulator serves OKX's spot trade and balance endpoints, not {method} {path}"),
                    Vec::new(),
                ),
            ),
        }
    }

    /// HTTP 429 `50011` for an order placement while the rate-limit fault lasts, as OKX answers
    /// a request past an endpoint's limit (no `Retry-After`).
    fn throttle(&self) -> Option<Answer> {
        let mut st = self.lock();
        if st.throttle_orders == 0 {
            return None;
        }
        st.throttle_orders -= 1;
        let t = &mut st.throttled;
        t.answered += 1;
        t.last_ms = Some(wall_ms());
        t.order_after_ms = None;
        t.other_after_ms = None;
        t.cancels_after = 0;
        Some((429, answer(50011, "Too Many Requests", Vec::new())))
    }

    /// `POST /sim/okx/fault?kind=rate_limit&count=N`: the next `N` order placements (default 1)
    /// are answered HTTP 429 `50011`; `kind=clear` ends it.
    pub fn fault(&self, query: &str) -> Result<String, String> {
        let params: HashMap<&str, &str> = query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .collect();
        let mut st = self.lock();
        match params.get("kind").copied() {
            Some("rate_limit") => {
                let count = match params.get("count") {
                    None => 1,
                    Some(c) => c.parse::<u32>().map_err(|e| format!("count={c:?}: {e}"))?,
                };
                st.throttle_orders = count;
                Ok(format!("{{\"applied\":\"rate_limit count={count}\"}}"))
            }
            Some("funding") => {
                let rate = params
                    .get("rate")
                    .and_then(|r| rt_core::parse_signed_units(r.as_bytes()).ok())
                    .ok_or_else(|| "kind=funding needs rate=<signed decimal>".to_owned())?;
                let st = &mut *st;
                let venue = &st.venue;
                let mark = |name: &str| venue.mark(name);
                let pushes = st.account.fund(rate, &mark, wall_ms());
                let paid = pushes.len();
                for push in pushes {
                    let _ = self
                        .tx
                        .send((Channel::BalanceAndPosition, Utf8Bytes::from(push)));
                }
                Ok(format!(
                    "{{\"applied\":\"funding rate={}\",\"positions\":{paid}}}",
                    rt_venues::okx::execution::format_decimal(rate)
                ))
            }
            Some("hedge_mode") => {
                let on = params.get("on").copied() != Some("0");
                st.account.hedge_mode = on;
                Ok(format!("{{\"applied\":\"hedge_mode on={on}\"}}"))
            }
            Some("clear") => {
                st.throttle_orders = 0;
                st.account.hedge_mode = false;
                Ok("{\"applied\":\"clear\"}".to_owned())
            }
            other => Err(format!(
                "kind={other:?}: the OKX desk's faults are rate_limit (count=N), funding \
                 (rate=R), hedge_mode (on=1|0) and clear"
            )),
        }
    }

    /// `GET /sim/okx/status`: what the rate-limit fault did, and the amendments made.
    pub fn status(&self) -> String {
        let st = self.lock();
        let t = st.throttled;
        json!({
            "rate_limited": t.answered,
            "last_429_ms": t.last_ms,
            "order_after_429_ms": t.order_after_ms,
            "cancels_after_429": t.cancels_after,
            "other_after_429_ms": t.other_after_ms,
            "orders": t.orders,
            "throttle_pending": st.throttle_orders,
            "funding_payments": st.account.funding_payments,
            "amends": st.venue.counters().amends,
        })
        .to_string()
    }

    fn okx_order(&self, o: &OrderInfo, isolated: bool) -> OkxOrder {
        OkxOrder {
            inst_id: self.inst_id(&o.symbol).to_owned(),
            ord_id: o.order_id,
            cl_ord_id: encode_client_id(&o.client_order_id)
                .unwrap_or_else(|| o.client_order_id.clone()),
            buy: o.side == Side::Buy,
            ord_type: ord_type(o.order_type, Some(o.time_in_force)),
            px: o.price.0,
            sz: o.orig_qty.0,
            acc_fill_sz: o.executed_qty.0,
            state: state_of(o.status),
            fill: None,
            u_time_ms: o.update_time_ms,
            isolated,
        }
    }

    /// An order request's body: its JSON, its `clOrdId` and the config name of its `instId`;
    /// refused (`50002` bad JSON, `51001` an instrument the desk does not serve) otherwise.
    fn order_body(&self, body: &str) -> Result<(Value, String, String), Answer> {
        let v: Value = serde_json::from_str(body)
            .map_err(|e| refused(50002, &format!("JSON syntax error: {e}")))?;
        let cl = text(&v, "clOrdId").to_owned();
        let Some(symbol) = self.config_name(text(&v, "instId")).map(str::to_owned) else {
            return Err((
                200,
                order_answer(0, &cl, 51001, "Instrument ID does not exist."),
            ));
        };
        Ok((v, cl, symbol))
    }

    fn place(&self, body: &str) -> Answer {
        let (v, cl, symbol) = match self.order_body(body) {
            Ok(parts) => parts,
            Err(answer) => return answer,
        };
        let refuse = |code: i64, msg: &str| (200, order_answer(0, &cl, code, msg));
        // A delivered future takes no order (OKX: 51027 "Contract expired").
        if self.lock().account.expired(&symbol, wall_ms()) {
            return refuse(51027, "Contract expired.");
        }
        // Spot trades in cash; a swap or futures on margin (the sim keeps no margin account:
        // cross and isolated trade alike).
        let derivative = rt_venues::okx::execution::inst_type(text(&v, "instId")) != "SPOT";
        match (derivative, text(&v, "tdMode")) {
            (false, "cash") | (true, "cross" | "isolated") => {}
            (false, _) => return refuse(51000, "Parameter tdMode error (a spot order: cash)"),
            (true, _) => {
                return refuse(
                    51000,
                    "Parameter tdMode error (a swap or futures order: cross or isolated)",
                )
            }
        }
        let reduce_only = v
            .get("reduceOnly")
            .is_some_and(|r| r.as_bool() == Some(true));
        if reduce_only && !derivative {
            return refuse(
                51000,
                "Parameter reduceOnly error (spot has no reduce-only)",
            );
        }
        let side = match text(&v, "side") {
            "buy" => Side::Buy,
            "sell" => Side::Sell,
            _ => return refuse(51000, "Parameter side error"),
        };
        let kind = match text(&v, "ordType") {
            "limit" => OrderKind::Limit,
            "post_only" => OrderKind::PostOnly,
            "ioc" => OrderKind::Ioc,
            "market" if derivative || text(&v, "tgtCcy") == "base_ccy" => OrderKind::Market,
            "market" => return refuse(
                51000,
                "Parameter tgtCcy error (the sim sizes market orders in the base currency only)",
            ),
            _ => return refuse(51000, "Parameter ordType error"),
        };
        let Some(qty) = units(&v, "sz").filter(|q| *q > 0) else {
            return refuse(51000, "Parameter sz error");
        };
        let price = if kind == OrderKind::Market {
            0
        } else {
            match units(&v, "px").filter(|p| *p > 0) {
                Some(p) => p,
                None => return refuse(51000, "Parameter px error"),
            }
        };
        if !cl.is_empty() && (cl.len() > 32 || !cl.chars().all(|c| c.is_ascii_alphanumeric())) {
            return refuse(51000, "Parameter clOrdId error");
        }
        if reduce_only {
            // Net mode: the order must be against the position and no larger than it (checked
            // when placed; the sim does not shrink a resting one as the position moves).
            let pos = self.lock().account.position(&symbol);
            let reduces = match side {
                Side::Buy => pos < 0 && qty <= pos.saturating_neg(),
                Side::Sell => pos > 0 && qty <= pos,
            };
            if !reduces {
                return refuse(
                    51000,
                    "Order failed: a reduce-only order must close part of the position, against it",
                );
            }
        }
        let client = decode_client_id(&cl);
        let order = NewOrder::from_kind(
            &symbol,
            side,
            kind,
            Price(price),
            Qty(qty),
            (!client.is_empty()).then(|| client.clone()),
            Timing::new(wall_ms()),
        );
        let mut guard = self.lock();
        let st = &mut *guard;
        st.account
            .order_mode(&symbol, text(&v, "tdMode") == "isolated");
        let ts = wall_ns().max(st.last_ns);
        st.last_ns = ts;
        let result = st.venue.new_order(ts, &order, &mut st.reports);
        let answered = match result {
            Ok(json) => {
                let ord_id = serde_json::from_str::<Value>(&json)
                    .ok()
                    .and_then(|j| j.get("orderId").and_then(Value::as_u64))
                    .unwrap_or(0);
                (200, order_answer(ord_id, &cl, 0, "Order placed"))
            }
            Err(e) if e.msg.contains("would immediately match") => {
                // OKX accepts a post-only order that would take and cancels it.
                let ord_id = st.next_synthetic_id;
                st.next_synthetic_id += 1;
                let cancelled = OkxOrder {
                    inst_id: self.inst_id(&symbol).to_owned(),
                    ord_id,
                    cl_ord_id: cl.clone(),
                    buy: side == Side::Buy,
                    ord_type: "post_only",
                    px: price,
                    sz: qty,
                    acc_fill_sz: 0,
                    state: "canceled",
                    fill: None,
                    u_time_ms: wall_ms(),
                    isolated: text(&v, "tdMode") == "isolated",
                };
                let _ = self
                    .tx
                    .send((Channel::Orders, Utf8Bytes::from(cancelled.push())));
                st.remember_cancelled_post_only(client.clone(), cancelled);
                (200, order_answer(ord_id, &cl, 0, "Order placed"))
            }
            Err(e) if e.msg.contains("Duplicate") => refuse(51016, "Duplicated clOrdId"),
            Err(e) => refuse(51000, &sim_reason(&e)),
        };
        self.publish(st);
        answered
    }

    /// `amend-order` (`{"instId","clOrdId","newPx","newSz"}`): made by the matcher and pushed,
    /// or refused in the answer.
    fn amend(&self, body: &str) -> Answer {
        let (v, cl, symbol) = match self.order_body(body) {
            Ok(parts) => parts,
            Err(answer) => return answer,
        };
        let refuse = |code: i64, msg: &str| (200, order_answer(0, &cl, code, msg));
        if cl.is_empty() {
            return refuse(51000, "Parameter clOrdId error (the sim amends by clOrdId)");
        }
        let (Some(price), Some(qty)) = (
            units(&v, "newPx").filter(|p| *p > 0),
            units(&v, "newSz").filter(|q| *q > 0),
        ) else {
            return refuse(
                51000,
                "Parameter newPx or newSz error (both are required here)",
            );
        };
        let mut guard = self.lock();
        let st = &mut *guard;
        let ts = wall_ns().max(st.last_ns);
        st.last_ns = ts;
        let client = decode_client_id(&cl);
        st.amend_req = text(&v, "reqId").to_owned();
        let result = st.venue.amend(
            ts,
            &symbol,
            &client,
            Price(price),
            Qty(qty),
            &mut st.reports,
        );
        let answered = match result {
            Ok(()) => {
                let ord_id = st
                    .reports
                    .first()
                    .map_or(0, |r| r.order_id);
                (200, order_answer(ord_id, &cl, 0, ""))
            }
            Err(e) if e.code == -2011 => refuse(
                51503,
                "Order modification failed as the order has been filled, canceled or does not exist.",
            ),
            Err(e) if e.code == -1013 || e.code == -2010 => refuse(51000, &sim_reason(&e)),
            Err(e) => refuse(51006, &sim_reason(&e)),
        };
        self.publish(st);
        answered
    }

    /// One cancel (`{"instId", "clOrdId" | "ordId"}`): its `sCode` and answer entry.
    fn cancel_one(&self, v: &Value) -> (i64, Value) {
        let cl = text(v, "clOrdId").to_owned();
        let ord = text(v, "ordId").parse::<u64>().ok();
        let entry = |code: i64, ord_id: Option<u64>, msg: &str| {
            (
                code,
                json!({
                    "clOrdId": cl, "ordId": ord_id.map(|o| o.to_string()).unwrap_or_default(),
                    "sCode": code.to_string(), "sMsg": msg,
                }),
            )
        };
        let Some(symbol) = self.config_name(text(v, "instId")).map(str::to_owned) else {
            return entry(51001, ord, "Instrument ID does not exist.");
        };
        let req = CancelOrder {
            symbol,
            order_id: ord,
            orig_client_order_id: (!cl.is_empty()).then(|| decode_client_id(&cl)),
            timing: Timing::new(wall_ms()),
        };
        let mut guard = self.lock();
        let st = &mut *guard;
        let ts = wall_ns().max(st.last_ns);
        st.last_ns = ts;
        let out = match st.venue.cancel(ts, &req, &mut st.reports) {
            Ok(json) => {
                let id = serde_json::from_str::<Value>(&json)
                    .ok()
                    .and_then(|j| j.get("orderId").and_then(Value::as_u64));
                entry(0, id.or(ord), "")
            }
            Err(_) => entry(
                51400,
                ord,
                "Order cancellation failed as the order has been filled, canceled or does not exist.",
            ),
        };
        self.publish(st);
        out
    }

    fn query(&self, params: &HashMap<&str, &str>) -> Answer {
        let Some(symbol) = params
            .get("instId")
            .and_then(|i| self.config_name(i))
            .map(str::to_owned)
        else {
            return refused(51001, "Instrument ID does not exist.");
        };
        let client = params.get("clOrdId").map(|c| decode_client_id(c));
        let st = self.lock();
        if let Some(o) = client.as_ref().and_then(|c| st.cancelled_post_only.get(c)) {
            return (200, answer(0, "", vec![o.to_json()]));
        }
        let q = QueryOrder {
            symbol,
            order_id: params.get("ordId").and_then(|o| o.parse().ok()),
            orig_client_order_id: client,
            timing: Timing::new(wall_ms()),
        };
        match st.venue.query_order(&q).map(|b| parse_order(&b)) {
            Ok(Ok(info)) => {
                let isolated = st.account.isolated(&info.symbol);
                (
                    200,
                    answer(0, "", vec![self.okx_order(&info, isolated).to_json()]),
                )
            }
            Ok(Err(e)) => refused(50026, &e.to_string()),
            Err(_) => refused(51603, "Order does not exist"),
        }
    }

    fn fills(&self, params: &HashMap<&str, &str>) -> Answer {
        let Some(symbol) = params
            .get("instId")
            .and_then(|i| self.config_name(i))
            .map(str::to_owned)
        else {
            return refused(51001, "Instrument ID does not exist.");
        };
        let limit = params
            .get("limit")
            .and_then(|l| l.parse::<u32>().ok())
            .unwrap_or(100)
            .clamp(1, 100);
        let q = MyTradesQuery {
            symbol: symbol.clone(),
            order_id: params.get("ordId").and_then(|o| o.parse().ok()),
            from_id: None,
            // The newest `limit`: all of them, newest kept.
            limit: Some(1000),
            timing: Timing::new(wall_ms()),
        };
        let body = match self.lock().venue.my_trades(&q) {
            Ok(b) => b,
            Err(e) => return refused(51000, &e.msg),
        };
        match parse_my_trades(&body) {
            Ok(trades) => {
                let inst = self.inst_id(&symbol).to_owned();
                // `after`: records older than that bill id (a fill's bill id is its trade id
                // here), OKX's pagination.
                let after = params.get("after").and_then(|a| a.parse::<u64>().ok());
                let data = trades
                    .iter()
                    .rev()
                    .filter(|t| after.map_or(true, |a| t.id < a))
                    .take(limit as usize)
                    .map(|t| {
                        OkxFill {
                            trade_id: t.id,
                            ord_id: t.order_id,
                            px: t.price.0,
                            sz: t.qty.0,
                            fee: -t.commission,
                            fee_ccy: t.commission_asset.clone(),
                            maker: t.is_maker,
                            ts_ms: t.time_ms,
                        }
                        .to_json(&inst, "", t.is_buyer)
                    })
                    .collect();
                (200, answer(0, "", data))
            }
            Err(e) => refused(50026, &e.to_string()),
        }
    }

    /// A login's verdict.
    fn login_ok(&self, args: &Value) -> bool {
        let Some(keys) = &self.keys else {
            return true;
        };
        let a = args.get(0).unwrap_or(&Value::Null);
        let ts = text(a, "timestamp");
        let fresh = ts
            .parse::<u64>()
            .is_ok_and(|s| wall_ms().abs_diff(s.saturating_mul(1000)) <= MAX_SKEW_MS);
        text(a, "apiKey") == keys.key
            && text(a, "passphrase") == keys.passphrase
            && fresh
            && sign_login(&keys.secret, ts) == text(a, "sign")
    }

    /// Serves one private WebSocket connection until it closes.
    pub async fn serve(self: Arc<Self>, ws: WebSocketStream<TcpStream>) {
        let mut rx = self.tx.subscribe();
        let (mut sink, mut incoming) = ws.split();
        let mut logged_in = self.keys.is_none();
        let mut subscribed = Vec::new();
        loop {
            let out: Vec<String> = tokio::select! {
                push = rx.recv() => match push {
                    Ok((channel, text)) if subscribed.contains(&channel) => {
                        if sink.send(Message::Text(text)).await.is_err() {
                            return;
                        }
                        continue;
                    }
                    Ok(_) => continue,
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let _ = sink.close().await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                msg = incoming.next() => match msg {
                    Some(Ok(Message::Text(t))) => {
                        self.on_text(t.as_str(), &mut logged_in, &mut subscribed)
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => continue,
                },
            };
            for text in out {
                if sink.send(Message::text(text)).await.is_err() {
                    return;
                }
            }
        }
    }

    fn on_text(
        &self,
        text: &str,
        logged_in: &mut bool,
        subscribed: &mut Vec<Channel>,
    ) -> Vec<String> {
        if text == "ping" {
            return vec!["pong".into()];
        }
        let error = |code: &str, msg: &str| {
            json!({"event": "error", "code": code, "msg": msg, "connId": CONN_ID}).to_string()
        };
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            return vec![error("60012", "Invalid request")];
        };
        let args = v.get("args").cloned().unwrap_or(Value::Null);
        match text_of(&v, "op") {
            "login" => {
                if self.login_ok(&args) {
                    *logged_in = true;
                    vec![
                        json!({"event": "login", "code": "0", "msg": "", "connId": CONN_ID})
                            .to_string(),
                    ]
                } else {
                    vec![error("60009", "Login failed.")]
                }
            }
            "subscribe" if !*logged_in => vec![error("60011", "Please log in")],
            "subscribe" => args
                .as_array()
                .map(|a| a.as_slice())
                .unwrap_or_default()
                .iter()
                .map(|arg| match text_of(arg, "channel") {
                    "orders" | "account" | BALANCE_AND_POSITION => {
                        let channel = match text_of(arg, "channel") {
                            "orders" => Some(Channel::Orders),
                            BALANCE_AND_POSITION => Some(Channel::BalanceAndPosition),
                            _ => None,
                        };
                        if let Some(c) = channel.filter(|c| !subscribed.contains(c)) {
                            subscribed.push(c);
                        }
                        json!({"event": "subscribe", "arg": arg, "connId": CONN_ID}).to_string()
                    }
                    other => error(
                        "60018",
                        &format!("Wrong URL or channel:{other} doesn't exist."),
                    ),
                })
                .collect(),
            _ => vec![error("60012", "Invalid request")],
        }
    }
}

fn text_of<'a>(v: &'a Value, key: &str) -> &'a str {
    text(v, key)
}

/// A matcher refusal as the sim words it (the Binance code it has on that side, for tests).
fn sim_reason(e: &ApiError) -> String {
    format!("Order failed: {} (sim {})", e.msg, e.code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desk(keys: Option<OkxKeys>) -> OkxDesk {
        OkxDesk::new(&example_exchange(), keys).expect("a desk")
    }

    /// The example manifest's exchange, without a metadata file.
    fn example_exchange() -> Exchange {
        let manifest: rt_manifest::Manifest = serde_json::from_str(
            &std::fs::read_to_string(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../../tests/contract/example.manifest.json"),
            )
            .expect("the example manifest"),
        )
        .expect("a manifest");
        let mut ex = manifest
            .exchanges
            .values()
            .next()
            .cloned()
            .expect("an exchange");
        ex.metadata = None;
        ex
    }

    #[test]
    fn a_reduce_only_order_must_close_part_of_the_position() {
        use rt_manifest::model::{Contract, ContractType, InstrumentType, Listing};
        let spot = desk(None);
        let order = |inst: &str, side: &str, sz: &str| {
            json!({"instId": inst, "tdMode": if inst.ends_with("-SWAP") { "cross" } else { "cash" },
                   "side": side, "ordType": "limit", "px": "5", "sz": sz, "reduceOnly": true,
                   "clOrdId": "t1"})
            .to_string()
        };
        let (_, answer) = spot.place(&order("BTCUSDT", "sell", "0.001"));
        assert!(answer.contains("spot has no reduce-only"), "{answer}");
        // A swap: UNI-USD-SWAP (the example's BTCUSDT filters, OKX's listing).
        let mut ex = example_exchange();
        let mut inst = ex
            .instruments
            .values()
            .next()
            .cloned()
            .expect("an instrument");
        let fixed = |v: &str| rt_manifest::Fixed::parse(v).expect("decimal");
        inst.listing = Some(Listing {
            symbol: "UNI-USD-SWAP".to_owned(),
            kind: InstrumentType::Swap,
            min_size: fixed("1"),
            contract: Some(Contract {
                value: fixed("10"),
                multiplier: fixed("1"),
                value_currency: "USD".to_owned(),
                kind: ContractType::Inverse,
                settle_currency: "UNI".to_owned(),
            }),
            expiry_ms: None,
        });
        ex.instruments = [("UNIUSDSWAP".to_owned(), inst)].into_iter().collect();
        let swap = OkxDesk::new(&ex, None).expect("a desk");
        let refused = |side: &str, sz: &str| {
            let (_, answer) = swap.place(&order("UNI-USD-SWAP", side, sz));
            answer.contains("reduce-only order must close part of the position")
        };
        // Flat: nothing to reduce, either way.
        assert!(refused("sell", "1") && refused("buy", "1"));
        // Long 5: a sell of up to 5 reduces; a buy, or a sell of 6, does not.
        swap.lock()
            .account
            .on_fill("UNIUSDSWAP", Side::Buy, Price(500_000_000), 5 * 100_000_000);
        assert_eq!(swap.lock().account.position("UNIUSDSWAP"), 5 * 100_000_000);
        assert!(!refused("sell", "3") && !refused("sell", "5"));
        assert!(refused("buy", "1") && refused("sell", "6"));
    }

    #[test]
    fn cancelled_post_only_orders_are_bounded_oldest_forgotten_first() {
        let d = desk(None);
        let mut st = d.lock();
        let n = CANCELLED_POST_ONLY_MAX + 10;
        for i in 0..n {
            st.remember_cancelled_post_only(format!("c{i}"), OkxOrder::default());
        }
        // The same client id again takes no second place.
        st.remember_cancelled_post_only(format!("c{}", n - 1), OkxOrder::default());
        assert_eq!(st.cancelled_post_only.len(), CANCELLED_POST_ONLY_MAX);
        assert_eq!(st.cancelled_post_only_order.len(), CANCELLED_POST_ONLY_MAX);
        assert!(!st.cancelled_post_only.contains_key("c9"));
        assert!(st.cancelled_post_only.contains_key("c10"));
        assert!(st.cancelled_post_only.contains_key(&format!("c{}", n - 1)));
    }

    #[test]
    fn requests_are_verified_with_the_key_passphrase_and_signature() {
        let keys = OkxKeys {
            key: "k".into(),
            secret: b"s".to_vec(),
            passphrase: "p".into(),
        };
        let d = desk(Some(keys));
        let ts = rt_venues::okx::signing::iso_timestamp(wall_ms());
        let path = "/api/v5/account/balance";
        let good = sign_request(b"s", &ts, "GET", path, "");
        let headers = |key: &'static str, pass: &'static str, sign: String, ts: String| {
            move |name: &str| match name {
                KEY_HEADER => Some(key.to_owned()),
                PASSPHRASE_HEADER => Some(pass.to_owned()),
                SIGN_HEADER => Some(sign.clone()),
                TIMESTAMP_HEADER => Some(ts.clone()),
                _ => None,
            }
        };
        let (status, body) = d.handle(
            "GET",
            path,
            "",
            "",
            &headers("k", "p", good.clone(), ts.clone()),
        );
        assert_eq!(status, 200, "{body}");
        let (status, body) = d.handle(
            "GET",
            path,
            "",
            "",
            &headers("k", "p", "bad".into(), ts.clone()),
        );
        assert_eq!((status, body.contains("50113")), (401, true), "{body}");
        let (_, body) = d.handle(
            "GET",
            path,
            "",
            "",
            &headers("k", "x", good.clone(), ts.clone()),
        );
        assert!(body.contains("50105"), "{body}");
        let (_, body) = d.handle("GET", path, "", "", &headers("x", "p", good, ts));
        assert!(body.contains("50111"), "{body}");
        let (_, body) = d.handle("GET", path, "", "", &|_: &str| None);
        assert!(body.contains("50103"), "{body}");
        // The login.
        let (mut logged_in, mut orders) = (false, Vec::new());
        let now = (wall_ms() / 1000).to_string();
        let login = json!({"op": "login", "args": [{"apiKey": "k", "passphrase": "p",
            "timestamp": now, "sign": sign_login(b"s", &now)}]});
        let early = d.on_text(
            r#"{"op":"subscribe","args":[{"channel":"orders","instType":"SPOT"}]}"#,
            &mut logged_in,
            &mut orders,
        );
        assert!(early[0].contains("\"error\""), "{early:?}");
        let out = d.on_text(&login.to_string(), &mut logged_in, &mut orders);
        assert!(out[0].contains("\"login\"") && logged_in, "{out:?}");
        let out = d.on_text(r#"{"op":"subscribe","args":[{"channel":"orders","instType":"SPOT"},{"channel":"account"}]}"#, &mut logged_in, &mut orders);
        assert_eq!(out.len(), 2);
        assert_eq!(orders, vec![Channel::Orders]);
        assert_eq!(
            d.on_text("ping", &mut logged_in, &mut orders),
            vec!["pong".to_owned()]
        );
        let bad = json!({"op": "login", "args": [{"apiKey": "k", "passphrase": "p",
            "timestamp": now, "sign": "x"}]});
        let out = d.on_text(&bad.to_string(), &mut false, &mut Vec::new());
        assert!(out[0].contains("60009"), "{out:?}");
    }
}
