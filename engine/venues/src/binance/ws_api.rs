//! Order entry over Binance Spot's WebSocket API (`/ws-api/v3`): `order.place`,
//! `order.cancel` and `order.status` request frames, and their answers read into what the REST
//! answers give (the same error codes, classified by the same rules).
//!
//! A request is `{"id":N,"method":"order.place","params":{...}}`. A signed request carries
//! `apiKey`, `timestamp` and `signature` in its params; the signature signs every other param
//! sorted by name, written `name=value` and joined by `&` (web-socket-api.md, "SIGNED request
//! security"): hex HMAC-SHA256 with an HMAC key, base64 Ed25519 with an Ed25519 key.
//!
//! With an Ed25519 key the connection is authenticated once: `session.logon` (params `apiKey`,
//! `timestamp`, `signature` of `apiKey=..&timestamp=..`; web-socket-api.md, "Session
//! Authentication") is the first request on every connection, and once it is answered the
//! order frames carry no `apiKey` and no `signature`, only `timestamp` as every SIGNED request
//! must: nothing is signed per order ([`WsApiOrders::logon`], [`FrameOrderEntry::logged_on`]).
//! Binance takes `session.logon` from Ed25519 keys only: with an HMAC key every request is
//! signed, as before.
//!
//! [`WsApiOrders`] writes frames into a buffer the caller reuses, without allocating: its
//! params are written once, in name order, into a reused payload buffer, and the frame's JSON
//! copies them from it. The HMAC key schedule is computed once, with the payload's constant
//! head (`apiKey=<key>&`) already absorbed, and cloned per request: no re-keying per order.
//!
//! An answer is `{"id":N,"status":200,"result":{...},"rateLimits":[...]}` or
//! `{"id":N,"status":400,"error":{"code":-2010,"msg":"..."}}` ([`WsAnswer`]); the status means
//! what the HTTP status of the REST answer means (4xx refused, 5xx unknown outcome, 429/418
//! rate-limited, with `retryAfter` in the error's `data`).

use std::fmt::Write as _;

use hmac::Mac;
use rt_core::{OrderKind, SCALE};
use serde::Deserialize;

use super::errors::{ApiError, OrderError};
use super::execution::{classify_answer, NEW_ORDER_REJECTED};
use super::query::{Params, Timing};
use super::signing::{push_ed25519, push_hex_mac, HmacSha256, Keyed, Signer};
use super::vocab::{side_str, StpMode};
use super::wire::{json, json_string};
use crate::execution::{
    ExecError, FrameAnswer, FrameOrderEntry, LogonRefusal, NewOrderSpec, Operation, Outcome,
    RefusalKind,
};
use crate::rate_limits::{Limits, Seen, Usage};

/// The WebSocket API's path on its host (`wss://ws-api.binance.com:443/ws-api/v3`).
pub const WS_API_PATH: &str = "/ws-api/v3";
/// The method that authenticates a connection with an Ed25519 key.
pub const SESSION_LOGON: &str = "session.logon";
/// The method that tells which key (if any) a connection is authenticated with.
pub const SESSION_STATUS: &str = "session.status";

/// The methods the engine sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WsMethod {
    Place,
    Cancel,
    Status,
}

impl WsMethod {
    pub const fn as_str(self) -> &'static str {
        match self {
            WsMethod::Place => "order.place",
            WsMethod::Cancel => "order.cancel",
            WsMethod::Status => "order.status",
        }
    }

    pub fn parse(text: &str) -> Option<WsMethod> {
        [WsMethod::Place, WsMethod::Cancel, WsMethod::Status]
            .into_iter()
            .find(|m| m.as_str() == text)
    }

    /// The REST request the method stands for (`method`, `path`): what the rate limits weigh.
    pub const fn rest_equivalent(self) -> (&'static str, &'static str) {
        match self {
            WsMethod::Place => ("POST", super::requests::ORDER_PATH),
            WsMethod::Cancel => ("DELETE", super::requests::ORDER_PATH),
            WsMethod::Status => ("GET", super::requests::ORDER_PATH),
        }
    }
}

/// The signing half: the account's key, the frame's preformatted key member, and what signs
/// the payload without re-keying (HMAC: keyed once with the payload's head absorbed; Ed25519:
/// a reused buffer for the head and the payload, the message it signs).
#[derive(Clone)]
struct Keys {
    signer: Signer,
    /// `,"apiKey":"<key>","signature":"`: what follows the params, up to the signature.
    key_member: String,
    /// `apiKey=<key>&`: the payload's head (`apiKey` sorts first among every method's params).
    head: String,
    /// HMAC keys: keyed with `head` absorbed.
    hmac_head: Option<HmacSha256>,
    /// Ed25519 keys: `head` and the payload (reused).
    message: String,
}

impl Keys {
    fn new(signer: &Signer) -> Keys {
        let head = format!("apiKey={}&", signer.api_key());
        let hmac_head = match signer.keyed() {
            Keyed::Hmac(keyed) => {
                let mut keyed = keyed.clone();
                keyed.update(head.as_bytes());
                Some(keyed)
            }
            Keyed::Ed25519(_) => None,
        };
        let mut key_member = String::from(",\"apiKey\":");
        json_string(&mut key_member, signer.api_key());
        key_member.push_str(",\"signature\":\"");
        Keys {
            signer: signer.clone(),
            key_member,
            head,
            hmac_head,
            message: String::with_capacity(320),
        }
    }

    /// Appends the signature of `head` + `payload`.
    fn push_signature(&mut self, payload: &str, out: &mut String) {
        match (&self.hmac_head, self.signer.keyed()) {
            (Some(keyed), _) => {
                let mut mac = keyed.clone();
                mac.update(payload.as_bytes());
                push_hex_mac(mac, out);
            }
            (None, Keyed::Ed25519(key)) => {
                self.message.clear();
                self.message.push_str(&self.head);
                self.message.push_str(payload);
                push_ed25519(key, self.message.as_bytes(), out, false);
            }
            (None, Keyed::Hmac(_)) => self.signer.push_signature(payload.as_bytes(), out),
        }
    }
}

/// Appends `n` in decimal, without allocating.
fn push_u64(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // ASCII digits.
    out.push_str(std::str::from_utf8(&digits[at..]).unwrap_or(""));
}

/// Appends 10^-8 units in the shortest decimal form (`61837.63`, `0.001`, `1`: what the REST
/// query carries, `rt_core::Price`'s `Display`), without allocating.
fn push_units(out: &mut String, units: i64) {
    if units < 0 {
        out.push('-');
    }
    let abs = units.unsigned_abs();
    let scale = SCALE as u64;
    push_u64(out, abs / scale);
    let mut frac = abs % scale;
    if frac == 0 {
        return;
    }
    let mut len = 8;
    while frac % 10 == 0 {
        frac /= 10;
        len -= 1;
    }
    let mut digits = [b'0'; 8];
    let mut at = len;
    while frac > 0 {
        at -= 1;
        digits[at] = b'0' + (frac % 10) as u8;
        frac /= 10;
    }
    out.push('.');
    out.push_str(std::str::from_utf8(&digits[..len]).unwrap_or(""));
}

/// Appends a JSON string of `text`: as it is when nothing in it needs escaping (our ids,
/// symbols, decimals and names), else escaped.
fn push_json_text(out: &mut String, text: &str) {
    if text.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(text);
        out.push('"');
    } else {
        json_string(out, text);
    }
}

/// Builds WebSocket API order frames for one account: signed per request, or, after
/// `session.logon` (Ed25519 keys), with no key and no signature (see the module documentation).
#[derive(Clone)]
pub struct WsApiOrders {
    /// `None`: unsigned frames (the paper sim venue without credentials).
    keys: Option<Keys>,
    /// The connection is authenticated (`session.logon` answered): frames carry no key and no
    /// signature.
    logged_on: bool,
    stp: Option<StpMode>,
    /// The params after `apiKey`, in name order (reused).
    payload: String,
}

impl std::fmt::Debug for WsApiOrders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsApiOrders")
            .field("signed", &self.keys.is_some())
            .field("logged_on", &self.logged_on)
            .field("stp", &self.stp)
            .finish()
    }
}

impl WsApiOrders {
    pub fn new(credentials: Option<&Signer>, stp: Option<StpMode>) -> WsApiOrders {
        WsApiOrders {
            keys: credentials.map(Keys::new),
            logged_on: false,
            stp,
            payload: String::with_capacity(256),
        }
    }

    /// Whether the connection is authenticated (order frames carry no key, no signature).
    pub fn is_logged_on(&self) -> bool {
        self.logged_on
    }

    /// `order.status` of our order `client_id` on `symbol` as request `id` into `out`.
    pub fn status(&mut self, out: &mut String, id: u64, symbol: &str, client_id: &str, now: u64) {
        self.order_ref(client_id, symbol, now);
        self.frame(out, id, WsMethod::Status.as_str());
    }

    fn order_ref(&mut self, client_id: &str, symbol: &str, now_ms: u64) {
        let p = &mut self.payload;
        p.clear();
        for piece in [
            "origClientOrderId=",
            client_id,
            "&symbol=",
            symbol,
            "&timestamp=",
        ] {
            p.push_str(piece);
        }
        push_u64(p, now_ms);
    }

    /// The frame of the params in `payload`: each `name=value` as a JSON member (`timestamp` a
    /// number), then `apiKey` and `signature` when signed and not logged on.
    fn frame(&mut self, out: &mut String, id: u64, method: &str) {
        out.clear();
        out.push_str("{\"id\":");
        push_u64(out, id);
        out.push_str(",\"method\":\"");
        out.push_str(method);
        out.push_str("\",\"params\":{");
        for (i, pair) in self.payload.split('&').enumerate() {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            if i > 0 {
                out.push(',');
            }
            out.push('"');
            out.push_str(name);
            out.push_str("\":");
            if name == "timestamp" {
                out.push_str(value);
            } else {
                push_json_text(out, value);
            }
        }
        if let (Some(keys), false) = (&mut self.keys, self.logged_on) {
            out.push_str(&keys.key_member);
            keys.push_signature(&self.payload, out);
            out.push('"');
        }
        out.push_str("}}");
    }
}

impl FrameOrderEntry for WsApiOrders {
    /// `order.place` of `order` as request `id` into `out` (cleared first).
    fn place(
        &mut self,
        out: &mut String,
        id: u64,
        order: &NewOrderSpec<'_>,
        now_ms: u64,
    ) -> Result<(), ExecError> {
        order.spot_only("binance spot")?;
        let (order_type, time_in_force, price) = match order.kind {
            OrderKind::Limit => ("LIMIT", Some("GTC"), Some(order.price)),
            OrderKind::Ioc => ("LIMIT", Some("IOC"), Some(order.price)),
            OrderKind::PostOnly => ("LIMIT_MAKER", None, Some(order.price)),
            OrderKind::Market => ("MARKET", None, None),
        };
        // In name order: newClientOrderId, price, quantity, selfTradePreventionMode, side,
        // symbol, timeInForce, timestamp, type.
        let p = &mut self.payload;
        p.clear();
        p.push_str("newClientOrderId=");
        p.push_str(order.client_id);
        if let Some(price) = price {
            p.push_str("&price=");
            push_units(p, price.0);
        }
        p.push_str("&quantity=");
        push_units(p, order.qty.0);
        if let Some(stp) = self.stp {
            p.push_str("&selfTradePreventionMode=");
            p.push_str(stp.as_str());
        }
        for piece in ["&side=", side_str(order.side), "&symbol=", order.symbol] {
            p.push_str(piece);
        }
        if let Some(tif) = time_in_force {
            p.push_str("&timeInForce=");
            p.push_str(tif);
        }
        p.push_str("&timestamp=");
        push_u64(p, now_ms);
        p.push_str("&type=");
        p.push_str(order_type);
        self.frame(out, id, WsMethod::Place.as_str());
        Ok(())
    }

    /// `order.cancel` of our order `client_id` on `symbol` as request `id` into `out`.
    fn cancel(&mut self, out: &mut String, id: u64, symbol: &str, client_id: &str, now: u64) {
        self.order_ref(client_id, symbol, now);
        self.frame(out, id, WsMethod::Cancel.as_str());
    }

    fn answer(&self, frame: &str, now_ms: u64) -> Result<FrameAnswer, ExecError> {
        let a = WsAnswer::parse(frame, now_ms).map_err(|e| ExecError::Unreadable {
            what: "WebSocket API answer",
            reason: e.to_string(),
        })?;
        Ok(FrameAnswer {
            id: a.id,
            status: a.status,
            body: a.body().to_owned(),
            seen: a.seen,
        })
    }

    fn weighed_as(&self, cancel: bool) -> (&'static str, &'static str) {
        if cancel {
            WsMethod::Cancel.rest_equivalent()
        } else {
            WsMethod::Place.rest_equivalent()
        }
    }

    /// `session.logon` with an Ed25519 key (the only kind Binance takes it from): its
    /// `apiKey`, `timestamp` and the signature of both. Until it is answered, frames are
    /// signed per request.
    fn logon(&mut self, out: &mut String, id: u64, now_ms: u64) -> bool {
        self.logged_on = false;
        let Some(keys) = &self.keys else {
            return false;
        };
        if !matches!(keys.signer.keyed(), Keyed::Ed25519(_)) {
            return false;
        }
        // Params `apiKey` and `timestamp` (the key is `Keys::head`).
        self.payload.clear();
        self.payload.push_str("timestamp=");
        push_u64(&mut self.payload, now_ms);
        self.frame(out, id, SESSION_LOGON);
        true
    }

    /// The answer to [`FrameOrderEntry::logon`]: authenticated, or refused for the key (a bad
    /// key, signature or permission: `-1022`, `-2014`, `-2015`, what REST's answers are
    /// classified by) or for a while (anything else: busy, rate-limited, a clock off).
    fn logged_on(&mut self, answer: &FrameAnswer) -> Result<(), LogonRefusal> {
        match classify_answer(
            Operation::Read,
            answer.status,
            &answer.body,
            answer.seen.retry_after_s,
            NEW_ORDER_REJECTED,
        ) {
            Outcome::Accepted => {
                self.logged_on = true;
                Ok(())
            }
            Outcome::Rejected(r) if r.kind == RefusalKind::Credentials => {
                Err(LogonRefusal::Credentials(r))
            }
            _ => Err(LogonRefusal::Transient(format!(
                "status {}: {}",
                answer.status, answer.body
            ))),
        }
    }
}

/// One answer of the WebSocket API, read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WsAnswer {
    /// The request's id (`None`: the venue could not read the request's).
    pub id: Option<u64>,
    /// What the HTTP status of the REST answer would be.
    pub status: u16,
    /// The error as the REST error body (`{"code":..,"msg":".."}`); empty when accepted.
    pub error_body: String,
    /// A 429's or 418's `retryAfter`, as REST's `Retry-After` (seconds from `now_ms`).
    pub retry_after_s: Option<u64>,
    /// The usage `rateLimits` reports, as REST's headers do.
    pub seen: Seen,
    /// `result`, as the REST answer's body (an order for `order.status`); empty on an error.
    pub result: String,
}

impl WsAnswer {
    /// Reads a text frame of the WebSocket API at `now_ms` (for `retryAfter`).
    pub fn parse(frame: &str, now_ms: u64) -> Result<WsAnswer, OrderError> {
        #[derive(Deserialize)]
        struct Data {
            #[serde(rename = "retryAfter")]
            retry_after: Option<u64>,
        }
        #[derive(Deserialize)]
        struct Error {
            code: i32,
            msg: String,
            data: Option<Data>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Limit {
            rate_limit_type: String,
            interval: String,
            interval_num: u32,
            count: u32,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Raw {
            id: Option<serde_json::Value>,
            status: u16,
            result: Option<serde_json::Value>,
            error: Option<Error>,
            #[serde(default)]
            rate_limits: Vec<Limit>,
        }
        let raw: Raw = json(frame, "WebSocket API answer")?;
        let mut seen = Seen::default();
        for l in &raw.rate_limits {
            match (
                l.rate_limit_type.as_str(),
                l.interval.as_str(),
                l.interval_num,
            ) {
                ("REQUEST_WEIGHT", "MINUTE", 1) => seen.weight_1m = Some(l.count),
                ("ORDERS", "SECOND", 10) => seen.orders_10s = Some(l.count),
                ("ORDERS", "DAY", 1) => seen.orders_1d = Some(l.count),
                _ => {}
            }
        }
        let (error_body, retry_after_s) = match &raw.error {
            Some(e) => {
                let until = e.data.as_ref().and_then(|d| d.retry_after);
                // Whole seconds from now, rounded up (a back-off never ends early).
                let after = until.map(|t| t.saturating_sub(now_ms).div_ceil(1000));
                (ApiError::new(e.code, e.msg.clone()).to_json(), after)
            }
            None => (String::new(), None),
        };
        seen.retry_after_s = retry_after_s;
        Ok(WsAnswer {
            // Our ids are numbers; another's (a string) is not one of ours.
            id: raw.id.as_ref().and_then(serde_json::Value::as_u64),
            status: raw.status,
            error_body,
            retry_after_s,
            seen,
            result: raw.result.map(|r| r.to_string()).unwrap_or_default(),
        })
    }

    /// The body [`crate::execution::ExecutionClient::classify`] reads: the error, or `result`.
    pub fn body(&self) -> &str {
        if self.error_body.is_empty() {
            &self.result
        } else {
            &self.error_body
        }
    }
}

/// A request as the sim's server reads it: its id, method and params.
#[derive(Clone, Debug, PartialEq)]
pub struct WsRequest {
    /// As the client sent it (echoed in the answer).
    pub id: serde_json::Value,
    pub method: String,
    /// The params but `signature`, sorted by name, as a query string: what the signature
    /// covers, and what the REST request parsers take.
    pub params: String,
    pub signature: Option<String>,
    pub api_key: Option<String>,
}

impl WsRequest {
    /// Reads a request frame (server side).
    pub fn parse(frame: &str) -> Result<WsRequest, OrderError> {
        #[derive(Deserialize)]
        struct Raw {
            id: serde_json::Value,
            method: String,
            #[serde(default)]
            params: serde_json::Map<String, serde_json::Value>,
        }
        let raw: Raw = json(frame, "WebSocket API request")?;
        // serde_json's map is sorted by key (no "preserve_order"): the signature's order.
        let mut params = String::new();
        let mut signature = None;
        let mut api_key = None;
        for (name, value) in &raw.params {
            let text = match value {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                _ => {
                    return Err(OrderError::Invalid {
                        name: "params",
                        value: name.clone(),
                        reason: "a parameter must be a string, a number or a boolean",
                    })
                }
            };
            if name == "signature" {
                signature = Some(text);
                continue;
            }
            if name == "apiKey" {
                api_key = Some(text.clone());
            }
            if !params.is_empty() {
                params.push('&');
            }
            let _ = write!(params, "{name}={text}");
        }
        Ok(WsRequest {
            id: raw.id,
            method: raw.method,
            params,
            signature,
            api_key,
        })
    }

    /// The params without `apiKey` (what the REST parsers take: REST sends the key in a
    /// header).
    pub fn params_without_key(&self) -> String {
        self.params
            .split('&')
            .filter(|p| !p.starts_with("apiKey="))
            .collect::<Vec<_>>()
            .join("&")
    }

    /// The answer to this request: `result` (a JSON text) with status 200, or `error` (with
    /// `retry_after_ms`, the time a 429's or 418's wait ends, as `data.retryAfter`), and the
    /// usage as `rateLimits` when given ([`rate_limits_json`]).
    pub fn answer(
        &self,
        outcome: Result<&str, (u16, &ApiError)>,
        retry_after_ms: Option<u64>,
        rate_limits: Option<&str>,
    ) -> String {
        let mut out = String::with_capacity(128);
        out.push_str("{\"id\":");
        out.push_str(&self.id.to_string());
        match outcome {
            Ok(result) => {
                let _ = write!(out, ",\"status\":200,\"result\":{result}");
            }
            Err((status, e)) => {
                let _ = write!(
                    out,
                    ",\"status\":{status},\"error\":{{\"code\":{},\"msg\":",
                    e.code
                );
                json_string(&mut out, &e.msg);
                if let Some(at) = retry_after_ms {
                    let _ = write!(out, ",\"data\":{{\"retryAfter\":{at}}}");
                }
                out.push('}');
            }
        }
        if let Some(limits) = rate_limits {
            out.push_str(",\"rateLimits\":");
            out.push_str(limits);
        }
        out.push('}');
        out
    }
}

/// The params of a `session.logon` but `apiKey` (server side): its `timestamp` and
/// `recvWindow`, nothing else.
pub fn logon_timing(params_without_key: &str) -> Result<Timing, OrderError> {
    let mut p = Params::parse(params_without_key)?;
    let timing = p.timing()?;
    p.finish()?;
    Ok(timing)
}

/// The `result` of `session.logon` and `session.status` (server side): the key the connection
/// is authenticated with and since when (`null` both when it is not), since when it is
/// connected, the server's time.
pub fn session_json(
    api_key: Option<&str>,
    authorized_since: Option<u64>,
    connected_since: u64,
    server_time: u64,
) -> String {
    let mut out = String::with_capacity(192);
    out.push_str("{\"apiKey\":");
    match api_key {
        Some(key) => json_string(&mut out, key),
        None => out.push_str("null"),
    }
    out.push_str(",\"authorizedSince\":");
    match authorized_since {
        Some(t) => push_u64(&mut out, t),
        None => out.push_str("null"),
    }
    let _ = write!(
        out,
        ",\"connectedSince\":{connected_since},\"returnRateLimits\":false,\
         \"serverTime\":{server_time},\"userDataStream\":false}}"
    );
    out
}

/// `rateLimits` of an answer: the request weight of the minute and, for a new order (`order`),
/// the order counts of 10 s and of the day, each with its limit (what REST's usage headers
/// say).
pub fn rate_limits_json(usage: &Usage, limits: &Limits, order: bool) -> String {
    let mut out = String::with_capacity(256);
    let mut entry = |kind: &str, interval: &str, num: u32, limit: u32, count: u32| {
        out.push(if out.is_empty() { '[' } else { ',' });
        let _ = write!(
            out,
            "{{\"rateLimitType\":\"{kind}\",\"interval\":\"{interval}\",\"intervalNum\":{num},\
             \"limit\":{limit},\"count\":{count}}}"
        );
    };
    if order {
        entry(
            "ORDERS",
            "SECOND",
            10,
            limits.orders_per_10s,
            usage.orders_10s,
        );
        entry("ORDERS", "DAY", 1, limits.orders_per_day, usage.orders_1d);
    }
    entry(
        "REQUEST_WEIGHT",
        "MINUTE",
        1,
        limits.weight_per_minute,
        usage.weight_1m,
    );
    out.push(']');
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::binance::execution::classify_answer;
    use crate::binance::requests::{CancelOrder, NewOrder, QueryOrder};
    use crate::binance::signing::tests::{ed25519_credentials, RFC8032_PEM};
    use crate::binance::signing::verify;
    use crate::binance::signing::{KeyType, Verifier};
    use crate::binance::test_support::{doc_signer, DOC_API_KEY, DOC_SECRET};
    use crate::execution::PositionSide;
    use rt_core::{Price, Qty, Side};

    fn creds() -> Signer {
        doc_signer()
    }

    fn docs(name: &str) -> String {
        let path = format!(
            "{}/../../../shared/data/binance_docs/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(path).unwrap()
    }

    #[test]
    fn the_pre_keyed_signer_signs_binances_documented_ws_api_payload() {
        // web-socket-api.md, "SIGNED request example (HMAC)": the payload's params after
        // `apiKey` and the documented signature.
        let rest = "newOrderRespType=ACK&price=52000.00&quantity=0.01000000&recvWindow=100\
                    &side=SELL&symbol=BTCUSDT&timeInForce=GTC&timestamp=1645423376532&type=LIMIT";
        let mut b = WsApiOrders::new(Some(&creds()), None);
        b.payload.push_str(rest);
        let mut out = String::new();
        b.frame(&mut out, 7, WsMethod::Place.as_str());
        assert!(out.ends_with(
            "\"signature\":\"cc15477742bd704c29492d96c7ead9414dfd8e0ec4a00f947bb5bb454ddbd08a\"}}"
        ));
        // And the server side reads it back: sorted params, the same signature verified.
        let req = WsRequest::parse(&out).unwrap();
        assert_eq!(req.params, format!("apiKey={DOC_API_KEY}&{rest}"));
        let sig = req.signature.as_deref().unwrap();
        assert_eq!(
            verify(DOC_SECRET.as_bytes(), req.params.as_bytes(), sig),
            Ok(())
        );
    }

    fn spec<'a>(kind: OrderKind) -> NewOrderSpec<'a> {
        NewOrderSpec {
            symbol: "BTCUSDT",
            client_id: "rt1-42",
            side: Side::Sell,
            kind,
            price: Price(2_341_610_000_000),
            qty: Qty(847_000),
            reduce_only: false,
            position_side: PositionSide::Both,
        }
    }

    #[test]
    fn order_frames_carry_what_the_rest_query_does_and_verify() {
        let mut b = WsApiOrders::new(Some(&creds()), Some(StpMode::ExpireMaker));
        let mut out = String::new();
        for kind in [
            OrderKind::Limit,
            OrderKind::Ioc,
            OrderKind::PostOnly,
            OrderKind::Market,
        ] {
            b.place(&mut out, 3, &spec(kind), 1_660_801_715_431)
                .unwrap();
            let req = WsRequest::parse(&out).unwrap();
            assert_eq!(req.method, "order.place");
            assert_eq!(req.id, serde_json::json!(3));
            assert_eq!(req.api_key.as_deref(), Some(DOC_API_KEY));
            let sig = req.signature.as_deref().unwrap();
            assert_eq!(
                verify(DOC_SECRET.as_bytes(), req.params.as_bytes(), sig),
                Ok(())
            );
            // The REST parser reads the same order the REST builder writes.
            let order = NewOrder::parse(&req.params_without_key()).unwrap();
            let mut rest = NewOrder::from_kind(
                "BTCUSDT",
                Side::Sell,
                kind,
                Price(2_341_610_000_000),
                Qty(847_000),
                Some("rt1-42".into()),
                crate::binance::query::Timing::new(1_660_801_715_431),
            );
            rest.self_trade_prevention_mode = Some(StpMode::ExpireMaker);
            assert_eq!(order, rest, "{kind:?}");
        }
        // Binance's documented request's shape: the LIMIT sell with its values.
        b.place(&mut out, 3, &spec(OrderKind::Limit), 1_660_801_715_431)
            .unwrap();
        let doc: serde_json::Value =
            serde_json::from_str(&docs("spot_wsapi_order.place_request.json")).unwrap();
        let ours: serde_json::Value = serde_json::from_str(&out).unwrap();
        for key in [
            "symbol",
            "side",
            "type",
            "timeInForce",
            "timestamp",
            "apiKey",
        ] {
            assert_eq!(ours["params"][key], doc["params"][key], "{key}");
        }
        // Prices in the shortest form (the documented 23416.10000000 is the same decimal).
        assert_eq!(ours["params"]["price"], "23416.1");
        assert_eq!(ours["params"]["quantity"], "0.00847");

        b.cancel(&mut out, 4, "BTCUSDT", "rt1-42", 1_660_801_715_431);
        let req = WsRequest::parse(&out).unwrap();
        assert_eq!(req.method, "order.cancel");
        let sig = req.signature.as_deref().unwrap();
        assert_eq!(
            verify(DOC_SECRET.as_bytes(), req.params.as_bytes(), sig),
            Ok(())
        );
        let cancel = CancelOrder::parse(&req.params_without_key()).unwrap();
        assert_eq!(cancel.orig_client_order_id.as_deref(), Some("rt1-42"));
        b.status(&mut out, 5, "BTCUSDT", "rt1-42", 1_660_801_715_431);
        let req = WsRequest::parse(&out).unwrap();
        assert_eq!(req.method, "order.status");
        let q = QueryOrder::parse(&req.params_without_key()).unwrap();
        assert_eq!(q.orig_client_order_id.as_deref(), Some("rt1-42"));

        // Unsigned without credentials; spot refuses the derivative fields.
        let mut plain = WsApiOrders::new(None, None);
        plain
            .place(&mut out, 1, &spec(OrderKind::Limit), 1)
            .unwrap();
        let req = WsRequest::parse(&out).unwrap();
        assert_eq!((req.signature, req.api_key), (None, None));
        let mut reduce = spec(OrderKind::Limit);
        reduce.reduce_only = true;
        assert!(plain.place(&mut out, 1, &reduce, 1).is_err());
    }

    fn ed25519_orders() -> WsApiOrders {
        let signer = Signer::new(&ed25519_credentials()).unwrap();
        WsApiOrders::new(Some(&signer), Some(StpMode::ExpireMaker))
    }

    #[test]
    fn an_ed25519_key_logs_on_once_and_order_frames_then_carry_no_signature() {
        let verifier = Verifier::new(KeyType::Ed25519, RFC8032_PEM).unwrap();
        let mut b = ed25519_orders();
        let mut out = String::with_capacity(512);
        // Before the logon is answered, each request is signed (base64 Ed25519).
        b.place(&mut out, 1, &spec(OrderKind::Limit), 1_649_729_878_000)
            .unwrap();
        let req = WsRequest::parse(&out).unwrap();
        assert_eq!(req.api_key.as_deref(), Some(DOC_API_KEY));
        let sig = req.signature.as_deref().unwrap();
        assert_eq!(verifier.verify(req.params.as_bytes(), sig), Ok(()));
        // session.logon: apiKey, timestamp and the signature of `apiKey=..&timestamp=..`: the
        // signature RFC 8032's key gives (Python's `cryptography` gives the same).
        assert!(b.logon(&mut out, 2, 1_649_729_878_532));
        let logon = WsRequest::parse(&out).unwrap();
        assert_eq!(logon.method, SESSION_LOGON);
        assert_eq!(
            logon.params,
            format!("apiKey={DOC_API_KEY}&timestamp=1649729878532")
        );
        assert_eq!(
            logon.signature.as_deref(),
            Some(
                "763GJeFgG09B/06V/dq24cLu6f0R57whgDMyOCubDex4CTTElmDgPSIQqLdOsvW5TBxyaaFotVCI8tUm\
                 QMChAA=="
            )
        );
        assert!(!b.is_logged_on());
        // Binance's documented answer (web-socket-api.md, session.logon).
        let ok = r#"{"id":2,"status":200,"result":{"apiKey":"vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A","authorizedSince":1649729878532,"connectedSince":1649729873021,"returnRateLimits":false,"serverTime":1649729878630,"userDataStream":false}}"#;
        let answer = b.answer(ok, 1_649_729_878_630).unwrap();
        assert_eq!(answer.id, Some(2));
        assert_eq!(b.logged_on(&answer), Ok(()));
        assert!(b.is_logged_on());
        // Logged on: no apiKey, no signature; the timestamp stays (SIGNED requests need it).
        b.place(&mut out, 3, &spec(OrderKind::PostOnly), 1_649_729_879_000)
            .unwrap();
        let (frame_at, payload_at) = (out.as_ptr(), b.payload.as_ptr());
        let req = WsRequest::parse(&out).unwrap();
        assert_eq!((req.api_key, req.signature), (None, None));
        assert!(out.contains("\"timestamp\":1649729879000"), "{out}");
        let order = NewOrder::parse(&req.params).unwrap();
        assert_eq!(order.new_client_order_id.as_deref(), Some("rt1-42"));
        assert_eq!(order.timing.timestamp_ms, 1_649_729_879_000);
        b.cancel(&mut out, 4, "BTCUSDT", "rt1-42", 1_649_729_879_001);
        let req = WsRequest::parse(&out).unwrap();
        assert_eq!((req.method.as_str(), req.signature), ("order.cancel", None));
        assert!(CancelOrder::parse(&req.params).is_ok());
        b.status(&mut out, 5, "BTCUSDT", "rt1-42", 1_649_729_879_002);
        assert!(
            !out.contains("signature") && !out.contains("apiKey"),
            "{out}"
        );
        // The same buffers, reused without growing.
        for id in 6..100 {
            b.place(&mut out, id, &spec(OrderKind::Limit), id).unwrap();
        }
        assert_eq!((out.as_ptr(), b.payload.as_ptr()), (frame_at, payload_at));
        // A new connection logs on again: signed per request until that is answered.
        assert!(b.logon(&mut out, 100, 1));
        assert!(!b.is_logged_on());
        b.place(&mut out, 101, &spec(OrderKind::Limit), 2).unwrap();
        assert!(WsRequest::parse(&out).unwrap().signature.is_some());
    }

    #[test]
    fn logon_answers_are_classified_bad_key_apart_from_transient() {
        let mut b = ed25519_orders();
        let mut out = String::new();
        let req = WsRequest::parse(r#"{"id":1,"method":"session.logon","params":{}}"#).unwrap();
        let refused = |status: u16, code: i32, msg: &str| {
            req.answer(Err((status, &ApiError::new(code, msg))), None, None)
        };
        for (status, code) in [(401, -2015), (400, -1022), (400, -2014)] {
            assert!(b.logon(&mut out, 1, 1));
            let answer = b.answer(&refused(status, code, "no"), 1).unwrap();
            match b.logged_on(&answer) {
                Err(LogonRefusal::Credentials(r)) => assert_eq!(r.code, Some(i64::from(code))),
                other => panic!("{code}: {other:?}"),
            }
            assert!(!b.is_logged_on());
        }
        for (status, code) in [(503, -1007), (429, -1003), (400, -1021), (400, -1100)] {
            let answer = b.answer(&refused(status, code, "later"), 1).unwrap();
            assert!(
                matches!(b.logged_on(&answer), Err(LogonRefusal::Transient(_))),
                "{code}"
            );
            assert!(!b.is_logged_on());
        }
        // HMAC keys and no keys: no logon (Binance takes it from Ed25519 keys only).
        for mut plain in [
            WsApiOrders::new(Some(&creds()), None),
            WsApiOrders::new(None, None),
        ] {
            out.clear();
            assert!(!plain.logon(&mut out, 1, 1));
            assert!(out.is_empty());
        }
    }

    #[test]
    fn decimals_are_written_as_the_rest_query_writes_them() {
        let mut out = String::new();
        for units in [
            0,
            1,
            -1,
            10,
            100_000_000,
            -100_000_000,
            2_341_610_000_000,
            847_000,
            6_183_763_000_000,
            123_456_789,
            i64::MAX,
            i64::MIN + 1,
        ] {
            out.clear();
            push_units(&mut out, units);
            assert_eq!(out, Price(units).to_string(), "{units}");
        }
        out.clear();
        push_u64(&mut out, u64::MAX);
        assert_eq!(out, u64::MAX.to_string());
    }

    #[test]
    fn the_frame_buffer_is_reused_without_growing() {
        let mut b = WsApiOrders::new(Some(&creds()), Some(StpMode::ExpireMaker));
        let mut out = String::with_capacity(512);
        b.place(&mut out, 1, &spec(OrderKind::Limit), 1).unwrap();
        let (frame_at, payload_at) = (out.as_ptr(), b.payload.as_ptr());
        for id in 2..100 {
            b.place(&mut out, id, &spec(OrderKind::PostOnly), id)
                .unwrap();
        }
        assert_eq!((out.as_ptr(), b.payload.as_ptr()), (frame_at, payload_at));
    }

    #[test]
    fn answers_classify_as_their_rest_equivalents() {
        let op = Operation::NewOrder {
            kind: OrderKind::Limit,
        };
        let now = 1_659_142_907_531;
        let ack = WsAnswer::parse(&docs("spot_wsapi_order.place_response_ACK.json"), now).unwrap();
        assert_eq!(ack.status, 200);
        // The documented id is a UUID: not one of ours.
        assert_eq!(ack.id, None);
        assert_eq!(ack.seen.orders_10s, Some(1));
        assert_eq!(ack.seen.weight_1m, Some(1));
        assert!(ack.result.contains("\"orderId\":12569099453"));
        assert_eq!(
            classify_answer(op, ack.status, ack.body(), ack.retry_after_s, -2010),
            Outcome::Accepted
        );
        let refused = WsAnswer::parse(&docs("spot_wsapi_error_-2010_status400.json"), now).unwrap();
        assert_eq!(refused.seen.orders_10s, Some(13));
        match classify_answer(op, refused.status, refused.body(), None, -2010) {
            Outcome::Rejected(r) => {
                assert_eq!((r.kind, r.code), (RefusalKind::Other, Some(-2010)));
                assert_eq!(
                    r.message,
                    "Account has insufficient balance for requested action."
                );
            }
            other => panic!("{other:?}"),
        }
        let post_only = Operation::NewOrder {
            kind: OrderKind::PostOnly,
        };
        match classify_answer(post_only, refused.status, refused.body(), None, -2010) {
            Outcome::Rejected(r) => assert_eq!(r.kind, RefusalKind::PostOnlyWouldCross),
            other => panic!("{other:?}"),
        }
        let banned =
            WsAnswer::parse(&docs("spot_wsapi_error_-1003_status418_banned.json"), now).unwrap();
        // retryAfter 1659146400000 is 3492.469 s after `now`: 3493 whole seconds.
        assert_eq!(banned.retry_after_s, Some(3493));
        assert_eq!(
            classify_answer(
                op,
                banned.status,
                banned.body(),
                banned.retry_after_s,
                -2010
            ),
            Outcome::RateLimited {
                banned: true,
                retry_after_ms: Some(3_493_000)
            }
        );
        // An unknown outcome (-1007, status 503, as the sim answers it and as REST is read).
        let req = WsRequest::parse(r#"{"id":9,"method":"order.place","params":{}}"#).unwrap();
        let e = ApiError::new(-1007, "Timeout waiting for response from backend server.");
        let frame = req.answer(Err((e.http_status(), &e)), None, None);
        let unknown = WsAnswer::parse(&frame, now).unwrap();
        assert_eq!((unknown.id, unknown.status), (Some(9), 503));
        assert_eq!(
            classify_answer(op, unknown.status, unknown.body(), None, -2010),
            Outcome::Unknown
        );
        let usage = Usage {
            weight_1m: 7,
            orders_10s: 2,
            orders_1d: 40,
        };
        let limits = Limits {
            weight_per_minute: 6000,
            orders_per_10s: 100,
            orders_per_day: 200_000,
        };
        let counted = rate_limits_json(&usage, &limits, true);
        let ok = WsAnswer::parse(
            &req.answer(Ok("{\"orderId\":1}"), None, Some(&counted)),
            now,
        )
        .unwrap();
        assert_eq!(
            (ok.seen.weight_1m, ok.seen.orders_10s, ok.seen.orders_1d),
            (Some(7), Some(2), Some(40))
        );
        let cancel = rate_limits_json(&usage, &limits, false);
        let seen = WsAnswer::parse(&req.answer(Ok("{}"), None, Some(&cancel)), now)
            .unwrap()
            .seen;
        assert_eq!((seen.weight_1m, seen.orders_10s), (Some(7), None));
        let throttled = req.answer(
            Err((429, &ApiError::new(-1015, "Too many new orders."))),
            Some(now + 1500),
            None,
        );
        let throttled = WsAnswer::parse(&throttled, now).unwrap();
        assert_eq!((throttled.status, throttled.retry_after_s), (429, Some(2)));
        assert_eq!(
            classify_answer(op, 429, throttled.body(), throttled.retry_after_s, -2010),
            Outcome::RateLimited {
                banned: false,
                retry_after_ms: Some(2000)
            }
        );
        assert_eq!(
            (ok.id, ok.status, ok.body()),
            (Some(9), 200, "{\"orderId\":1}")
        );
        assert!(WsAnswer::parse("{\"id\":1}", now).is_err());
    }
}
