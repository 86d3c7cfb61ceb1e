//! Binance Spot behind the execution boundary ([`ExecutionClient`]): signed `/api/v3` requests,
//! Binance's error codes classified, `GET /api/v3/order` and `myTrades` answers read, and the
//! user data stream's `executionReport` turned into venue-neutral order updates.
//!
//! The codes it classifies (binance-spot-api-docs, errors.md): `-1006`/`-1007` and any 5xx
//! leave the outcome unknown; HTTP 429 is a back-off (`Retry-After`), 418 an IP ban; `-1022`,
//! `-2014`, `-2015` refuse the credentials; `-2011` (cancel) and `-2013` (query) name an order
//! the venue does not know; `-2010` on a `LIMIT_MAKER` is a post-only order that would cross.

use rt_core::{OrderKind, Qty};

use super::errors::ApiError;
use super::query::{Timing, DEFAULT_RECV_WINDOW_MS};
use super::requests::{
    AccountQuery, CancelOpenOrders, MyTradesQuery, NewOrder, QueryOrder, MAX_MY_TRADES_LIMIT,
    MY_TRADES_PATH, OPEN_ORDERS_PATH, ORDER_PATH,
};
use super::rest::{parse_listen_key, parse_my_trades, parse_order, CancelResponse};
use super::signing::{Signer, API_KEY_HEADER};
use super::user_stream::{is_listen_key_expired, ExecutionReport, USER_DATA_STREAM_PATH};
use super::vocab::{ExecType, OrderStatus, StpMode};
use crate::execution::{
    Balance, ExecError, ExecutionClient, Method, NewOrderSpec, Operation, OrderState, OrderUpdate,
    Outcome, PrivateEvent, Refusal, RefusalKind, SymbolFilters, UpdateKind, VenueFill,
    VenueRequest, VenueStatus, VenueTrade,
};

/// Binance's codes for a refused key, signature or permission.
pub const AUTH_ERRORS: [i32; 3] = [-1022, -2014, -2015];
/// The outcome is unknown: the order may be live (`-1006` unexpected response, `-1007`
/// timeout waiting for the matching engine).
pub const UNKNOWN_OUTCOME: [i32; 2] = [-1006, -1007];
/// `-2011`: a cancel of an order the venue does not know (filled or cancelled meanwhile);
/// `-2013`: a query of an order that does not exist.
pub const UNKNOWN_ORDER: [i32; 2] = [-2011, -2013];
/// A new order the venue refused (for a `LIMIT_MAKER`: it would match and take).
pub const NEW_ORDER_REJECTED: i32 = -2010;

const VENUE: &str = "binance spot";

/// Binance Spot order entry for one account.
#[derive(Debug, Clone)]
pub struct SpotExecution {
    /// The account's key, keyed once (`None` sends unsigned requests: the paper sim venue
    /// without credentials).
    credentials: Option<Signer>,
    /// `selfTradePreventionMode` sent with every order (`None`: the symbol's default).
    stp: Option<StpMode>,
}

impl SpotExecution {
    /// Signing with `credentials` ([`Signer::new`]: HMAC or Ed25519 keys).
    pub fn new(credentials: Option<Signer>, stp: Option<StpMode>) -> SpotExecution {
        SpotExecution { credentials, stp }
    }

    /// `path?query&signature=..` (the bare query without credentials) and the key header.
    fn signed(&self, method: Method, path: &str, query: &str) -> VenueRequest {
        signed(self.credentials.as_ref(), method, path, query)
    }

    /// A request that needs the API key but no signature.
    fn keyed(&self, method: Method, path: String) -> VenueRequest {
        keyed(self.credentials.as_ref(), method, path)
    }
}

/// `path?query&signature=..` (the bare query without credentials) and the key header: how
/// Binance signs a request, spot and futures alike, with HMAC or Ed25519 keys.
pub(super) fn signed(
    credentials: Option<&Signer>,
    method: Method,
    path: &str,
    query: &str,
) -> VenueRequest {
    // `&signature=` is 11 bytes; the hex HMAC-SHA256 64, the percent-encoded base64 Ed25519
    // signature at most 88 + 2 x 3 x 22.
    let mut out = String::with_capacity(path.len() + query.len() + 160);
    out.push_str(path);
    out.push('?');
    out.push_str(query);
    let mut headers = Vec::new();
    if let Some(c) = credentials {
        if !query.is_empty() {
            out.push('&');
        }
        out.push_str("signature=");
        c.push_query_signature(query.as_bytes(), &mut out);
        headers.push((API_KEY_HEADER, c.api_key().to_owned()));
    }
    VenueRequest {
        method,
        path: out,
        headers,
        body: String::new(),
    }
}

/// A request that needs the API key but no signature.
pub(super) fn keyed(credentials: Option<&Signer>, method: Method, path: String) -> VenueRequest {
    VenueRequest {
        method,
        path,
        headers: credentials
            .iter()
            .map(|c| (API_KEY_HEADER, c.api_key().to_owned()))
            .collect(),
        body: String::new(),
    }
}

/// A signed request naming one order by our client id (`symbol`, `origClientOrderId`): a
/// cancel (`DELETE`) or a query (`GET`), spot and futures alike.
pub(super) fn order_ref_request(
    credentials: Option<&Signer>,
    method: Method,
    path: &str,
    symbol: &str,
    client_id: &str,
    now_ms: u64,
) -> VenueRequest {
    let q = QueryOrder {
        symbol: symbol.to_owned(),
        order_id: None,
        orig_client_order_id: Some(client_id.to_owned()),
        timing: Timing::new(now_ms),
    }
    .to_query();
    signed(credentials, method, path, &q)
}

/// A signed `DELETE` of every open order on `symbol`.
pub(super) fn cancel_all_request(
    credentials: Option<&Signer>,
    path: &str,
    symbol: &str,
    now_ms: u64,
) -> VenueRequest {
    let q = CancelOpenOrders {
        symbol: symbol.to_owned(),
        timing: Timing::new(now_ms),
    }
    .to_query();
    signed(credentials, Method::Delete, path, &q)
}

/// A signed `GET` of a page of one order's trades, from trade id `from_id`.
pub(super) fn trades_request(
    credentials: Option<&Signer>,
    path: &str,
    limit: u32,
    (symbol, venue_order_id, from_id): (&str, u64, u64),
    now_ms: u64,
) -> VenueRequest {
    let q = MyTradesQuery {
        symbol: symbol.to_owned(),
        order_id: Some(venue_order_id),
        from_id: Some(from_id),
        limit: Some(limit),
        timing: Timing::new(now_ms),
    }
    .to_query();
    signed(credentials, Method::Get, path, &q)
}

/// A signed `GET` with no parameter but its timing (balances, account settings).
pub(super) fn timed_get(credentials: Option<&Signer>, path: &str, now_ms: u64) -> VenueRequest {
    let q = AccountQuery {
        timing: Timing::new(now_ms),
    }
    .to_query();
    signed(credentials, Method::Get, path, &q)
}

/// What an answer means (see the module documentation); `post_only_code` is the code a
/// post-only order that would take is refused with (spot `-2010`, futures `-5022`).
pub(super) fn classify_answer(
    op: Operation,
    status: u16,
    body: &str,
    retry_after_s: Option<u64>,
    post_only_code: i32,
) -> Outcome {
    if status == 200 {
        return Outcome::Accepted;
    }
    let api = ApiError::parse(body).ok();
    let code = api.as_ref().map(|e| e.code);
    if status >= 500 || code.is_some_and(|c| UNKNOWN_OUTCOME.contains(&c)) {
        return Outcome::Unknown;
    }
    if matches!(status, 429 | 418) {
        return Outcome::RateLimited {
            banned: status == 418,
            retry_after_ms: retry_after_s.map(|s| s.saturating_mul(1000)),
        };
    }
    let post_only = op
        == (Operation::NewOrder {
            kind: OrderKind::PostOnly,
        });
    let kind = match code {
        Some(c) if AUTH_ERRORS.contains(&c) => RefusalKind::Credentials,
        Some(c) if UNKNOWN_ORDER.contains(&c) => RefusalKind::UnknownOrder,
        Some(c) if c == post_only_code && post_only => RefusalKind::PostOnlyWouldCross,
        _ => RefusalKind::Other,
    };
    Outcome::Rejected(Refusal {
        kind,
        code: code.map(i64::from),
        message: api.map_or_else(|| body.to_owned(), |e| e.msg),
    })
}

pub(super) fn unreadable(what: &'static str, e: impl ToString) -> ExecError {
    ExecError::Unreadable {
        what,
        reason: e.to_string(),
    }
}

impl ExecutionClient for SpotExecution {
    fn venue(&self) -> &'static str {
        VENUE
    }

    fn new_order(&self, order: &NewOrderSpec<'_>, now_ms: u64) -> Result<VenueRequest, ExecError> {
        order.spot_only(VENUE)?;
        let mut new = NewOrder::from_kind(
            order.symbol,
            order.side,
            order.kind,
            order.price,
            order.qty,
            Some(order.client_id.to_owned()),
            Timing::new(now_ms),
        );
        new.self_trade_prevention_mode = self.stp;
        Ok(self.signed(Method::Post, ORDER_PATH, &new.to_query()))
    }

    fn cancel(&self, symbol: &str, client_id: &str, now_ms: u64) -> VenueRequest {
        let c = self.credentials.as_ref();
        order_ref_request(c, Method::Delete, ORDER_PATH, symbol, client_id, now_ms)
    }

    fn cancel_all(&self, symbol: &str, now_ms: u64) -> VenueRequest {
        cancel_all_request(self.credentials.as_ref(), OPEN_ORDERS_PATH, symbol, now_ms)
    }

    fn query_order(&self, symbol: &str, client_id: &str, now_ms: u64) -> VenueRequest {
        let c = self.credentials.as_ref();
        order_ref_request(c, Method::Get, ORDER_PATH, symbol, client_id, now_ms)
    }

    fn order_trades(
        &self,
        symbol: &str,
        venue_order_id: u64,
        from_id: u64,
        now_ms: u64,
    ) -> VenueRequest {
        let page = (symbol, venue_order_id, from_id);
        let c = self.credentials.as_ref();
        trades_request(c, MY_TRADES_PATH, MAX_MY_TRADES_LIMIT, page, now_ms)
    }

    fn trades_page(&self) -> usize {
        MAX_MY_TRADES_LIMIT as usize
    }

    fn balances(&self, now_ms: u64) -> VenueRequest {
        timed_get(
            self.credentials.as_ref(),
            super::account::ACCOUNT_PATH,
            now_ms,
        )
    }

    fn exchange_info(&self) -> VenueRequest {
        keyed(
            None,
            Method::Get,
            super::account::EXCHANGE_INFO_PATH.to_owned(),
        )
    }

    fn open_stream(&self) -> Option<VenueRequest> {
        Some(self.keyed(Method::Post, USER_DATA_STREAM_PATH.to_owned()))
    }

    fn keep_stream_alive(&self, key: &str) -> Option<VenueRequest> {
        Some(self.keyed(
            Method::Put,
            format!("{USER_DATA_STREAM_PATH}?listenKey={key}"),
        ))
    }

    /// Binance expires a listen key 60 minutes after its last keepalive: every 30.
    fn keep_stream_alive_every_ms(&self) -> u64 {
        30 * 60 * 1000
    }

    /// `recvWindow`: our requests send none, so Binance's default.
    fn request_window_ms(&self) -> u64 {
        DEFAULT_RECV_WINDOW_MS
    }

    fn stream_key(&self, body: &str) -> Result<String, ExecError> {
        parse_listen_key(body).map_err(|e| unreadable("listen key", e))
    }

    fn stream_url(&self, ws_base: &str, key: &str) -> String {
        format!("{}/ws/{key}", ws_base.trim_end_matches('/'))
    }

    fn classify(
        &self,
        op: Operation,
        status: u16,
        body: &str,
        retry_after_s: Option<u64>,
    ) -> Outcome {
        classify_answer(op, status, body, retry_after_s, NEW_ORDER_REJECTED)
    }

    fn cancelled_count(&self, body: &str) -> usize {
        CancelResponse::parse_many(body).map_or(0, |v| v.len())
    }

    fn frame_order_entry(&self) -> Option<Box<dyn crate::execution::FrameOrderEntry>> {
        Some(Box::new(super::ws_api::WsApiOrders::new(
            self.credentials.as_ref(),
            self.stp,
        )))
    }

    fn order_state(&self, body: &str) -> Result<OrderState, ExecError> {
        let info = parse_order(body).map_err(|e| unreadable("order", e))?;
        Ok(OrderState {
            venue_order_id: info.order_id,
            price: info.price,
            orig_qty: info.orig_qty,
            executed_qty: info.executed_qty,
            status: venue_status(info.status),
        })
    }

    fn trades(&self, body: &str) -> Result<Vec<VenueTrade>, ExecError> {
        let trades = parse_my_trades(body).map_err(|e| unreadable("trades", e))?;
        Ok(trades
            .into_iter()
            .map(|t| VenueTrade {
                id: t.id,
                venue_order_id: t.order_id,
                price: t.price,
                qty: t.qty,
                commission: t.commission,
                commission_asset: t.commission_asset,
                is_maker: t.is_maker,
            })
            .collect())
    }

    fn balance_list(&self, body: &str) -> Result<Vec<Balance>, ExecError> {
        super::account::parse_account(body).map_err(|e| unreadable("account", e))
    }

    fn symbol_filters(&self, body: &str) -> Result<Vec<SymbolFilters>, ExecError> {
        super::account::parse_exchange_info(body).map_err(|e| unreadable("exchangeInfo", e))
    }

    fn private_event(&self, frame: &str) -> Result<PrivateEvent, ExecError> {
        let report = match ExecutionReport::parse(frame) {
            Ok(Some(r)) => r,
            Ok(None) if is_listen_key_expired(frame) => return Ok(PrivateEvent::StreamExpired),
            Ok(None) => return Ok(PrivateEvent::Other),
            Err(e) => return Err(unreadable("executionReport", e)),
        };
        Ok(PrivateEvent::Order(order_update(report)))
    }
}

pub(super) fn venue_status(status: OrderStatus) -> VenueStatus {
    match status {
        OrderStatus::New => VenueStatus::New,
        OrderStatus::PartiallyFilled => VenueStatus::PartiallyFilled,
        OrderStatus::Filled => VenueStatus::Filled,
        OrderStatus::Canceled => VenueStatus::Cancelled,
        OrderStatus::Rejected => VenueStatus::Rejected,
        OrderStatus::Expired => VenueStatus::Expired,
        OrderStatus::ExpiredInMatch => VenueStatus::ExpiredBySelfTradePrevention,
    }
}

/// An `executionReport` as a venue-neutral update. A cancel names the cancelled order in `C`
/// (its own id, the cancel request's, in `c`).
fn order_update(er: ExecutionReport) -> OrderUpdate {
    let leaves = Qty(er.quantity.0.saturating_sub(er.cum_qty.0).max(0));
    let client_id = if er.exec_type == ExecType::Canceled && !er.orig_client_order_id.is_empty() {
        er.orig_client_order_id
    } else {
        er.client_order_id
    };
    let kind = match er.exec_type {
        ExecType::New => UpdateKind::Accepted,
        ExecType::Trade => UpdateKind::Fill(VenueFill {
            trade_id: er.trade_id,
            price: er.last_price,
            qty: er.last_qty,
            is_maker: er.is_maker,
            commission: er.commission,
            commission_asset: er.commission_asset.unwrap_or_default(),
        }),
        ExecType::Canceled => UpdateKind::Cancelled,
        ExecType::Expired => UpdateKind::Expired,
        ExecType::TradePrevention => UpdateKind::ExpiredBySelfTradePrevention,
        ExecType::Rejected => UpdateKind::Rejected,
        ExecType::Replaced => UpdateKind::Amended {
            price: er.price,
            qty: er.quantity,
            request: None,
        },
    };
    OrderUpdate {
        symbol: er.symbol,
        client_id,
        side: er.side,
        kind,
        leaves,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use rt_core::{Price, Side};

    use super::*;
    use crate::binance::signing::signed_query;
    use crate::binance::test_support::{doc_signer, DOC_API_KEY, DOC_SECRET};
    use crate::execution::PositionSide;

    fn client() -> SpotExecution {
        SpotExecution::new(Some(doc_signer()), Some(StpMode::ExpireMaker))
    }

    fn spec(kind: OrderKind) -> NewOrderSpec<'static> {
        NewOrderSpec {
            symbol: "BTCUSDT",
            client_id: "paper_1-7",
            side: Side::Buy,
            kind,
            price: Price(6_183_763_000_000),
            qty: Qty(200_000),
            reduce_only: false,
            position_side: PositionSide::Both,
        }
    }

    #[test]
    fn a_new_order_is_the_signed_query_the_gateway_sent_before() {
        let r = client()
            .new_order(&spec(OrderKind::PostOnly), 1_700_000_000_000)
            .unwrap();
        let mut order = NewOrder::from_kind(
            "BTCUSDT",
            Side::Buy,
            OrderKind::PostOnly,
            Price(6_183_763_000_000),
            Qty(200_000),
            Some("paper_1-7".into()),
            Timing::new(1_700_000_000_000),
        );
        order.self_trade_prevention_mode = Some(StpMode::ExpireMaker);
        let want = format!(
            "{ORDER_PATH}?{}",
            signed_query(&order.to_query(), DOC_SECRET.as_bytes())
        );
        assert_eq!(r.method, Method::Post);
        assert_eq!(r.path, want);
        assert_eq!(r.header_refs(), vec![(API_KEY_HEADER, DOC_API_KEY)]);
        // Without credentials: the bare query, no key.
        let bare = SpotExecution::new(None, None)
            .new_order(&spec(OrderKind::Market), 1)
            .unwrap();
        assert!(!bare.path.contains("signature"), "{}", bare.path);
        assert!(bare.headers.is_empty());
        assert!(bare.path.ends_with("&timestamp=1"), "{}", bare.path);
        // The listen key lives 60 minutes; requests are valid for the default recvWindow.
        assert_eq!(client().keep_stream_alive_every_ms(), 1_800_000);
        assert_eq!(client().request_window_ms(), 5_000);
        let keep = client().keep_stream_alive("abc").unwrap();
        assert_eq!(
            (keep.method, keep.path.as_str()),
            (Method::Put, "/api/v3/userDataStream?listenKey=abc")
        );
        assert_eq!(
            client().stream_url("wss://stream.binance.com:9443/", "abc"),
            "wss://stream.binance.com:9443/ws/abc"
        );
        // Spot has no reduce-only and no hedge mode.
        let mut derivative = spec(OrderKind::Limit);
        derivative.reduce_only = true;
        assert!(client().new_order(&derivative, 1).is_err());
        derivative.reduce_only = false;
        derivative.position_side = PositionSide::Long;
        assert!(client().new_order(&derivative, 1).is_err());
    }

    #[test]
    fn an_ed25519_key_signs_every_rest_request_in_base64() {
        use crate::binance::signing::tests::{ed25519_credentials, RFC8032_PEM};
        use crate::binance::signing::{KeyType, SignedParams, Signer, Verifier};
        let c = SpotExecution::new(
            Some(Signer::new(&ed25519_credentials()).unwrap()),
            Some(StpMode::ExpireMaker),
        );
        let verifier = Verifier::new(KeyType::Ed25519, RFC8032_PEM).unwrap();
        let requests = [
            c.new_order(&spec(OrderKind::Limit), 1_700_000_000_000)
                .unwrap(),
            c.cancel("BTCUSDT", "paper_1-7", 1),
            c.query_order("BTCUSDT", "paper_1-7", 1),
            c.cancel_all("BTCUSDT", 1),
            c.balances(1),
        ];
        for r in requests {
            let (_, query) = r.path.split_once('?').unwrap();
            let signed = SignedParams::split(query, "").unwrap();
            // Percent-encoded base64 (`%2B`, `%2F`, `%3D`): the query has no other `=` in it.
            let signature = signed.signature.as_deref().unwrap();
            assert!(signature.ends_with("%3D%3D"), "{signature}");
            assert!(!signature.contains(['+', '/']), "{signature}");
            assert_eq!(signed.verify(&verifier), Ok(()), "{}", r.path);
            assert_eq!(r.header_refs(), vec![(API_KEY_HEADER, DOC_API_KEY)]);
        }
    }

    #[test]
    fn answers_are_classified_as_the_gateway_acts_on_them() {
        let c = client();
        let post_only = Operation::NewOrder {
            kind: OrderKind::PostOnly,
        };
        let limit = Operation::NewOrder {
            kind: OrderKind::Limit,
        };
        let body = |code: i32| ApiError::new(code, "m").to_json();
        assert_eq!(c.classify(limit, 200, "{}", None), Outcome::Accepted);
        assert_eq!(c.classify(limit, 502, "", None), Outcome::Unknown);
        assert_eq!(c.classify(limit, 400, &body(-1007), None), Outcome::Unknown);
        assert_eq!(
            c.classify(limit, 429, &body(-1003), Some(7)),
            Outcome::RateLimited {
                banned: false,
                retry_after_ms: Some(7000)
            }
        );
        assert!(matches!(
            c.classify(limit, 418, &body(-1003), None),
            Outcome::RateLimited { banned: true, .. }
        ));
        let kind = |op, status, text: &str| match c.classify(op, status, text, None) {
            Outcome::Rejected(r) => Some(r.kind),
            _ => None,
        };
        assert_eq!(
            kind(post_only, 400, &body(-2010)),
            Some(RefusalKind::PostOnlyWouldCross)
        );
        assert_eq!(kind(limit, 400, &body(-2010)), Some(RefusalKind::Other));
        assert_eq!(
            kind(Operation::Cancel, 400, &body(-2011)),
            Some(RefusalKind::UnknownOrder)
        );
        assert_eq!(
            kind(Operation::Query, 400, &body(-2013)),
            Some(RefusalKind::UnknownOrder)
        );
        assert_eq!(
            kind(limit, 401, &body(-2015)),
            Some(RefusalKind::Credentials)
        );
        let Outcome::Rejected(r) = c.classify(limit, 400, "not json", None) else {
            panic!("a body without a code is a refusal");
        };
        assert_eq!((r.code, r.message.as_str()), (None, "not json"));
    }

    #[test]
    fn execution_reports_become_order_updates() {
        let frame = r#"{"e":"executionReport","E":1,"s":"BTCUSDT","c":"x-cancel","S":"SELL","o":"LIMIT","f":"GTC","q":"0.00300000","p":"61837.63000000","C":"paper_1-9","x":"CANCELED","X":"CANCELED","r":"NONE","i":5,"l":"0.00000000","z":"0.00100000","L":"0.00000000","n":"0","N":null,"T":2,"t":-1,"w":false,"m":false,"O":1,"Z":"0.00000000"}"#;
        let PrivateEvent::Order(u) = client().private_event(frame).unwrap() else {
            panic!("an order update");
        };
        assert_eq!(
            (u.client_id.as_str(), u.kind, u.leaves, u.side),
            ("paper_1-9", UpdateKind::Cancelled, Qty(200_000), Side::Sell)
        );
        let fill = frame
            .replace("\"x\":\"CANCELED\"", "\"x\":\"TRADE\"")
            .replace("\"N\":null", "\"N\":\"BNB\"")
            .replace("\"n\":\"0\"", "\"n\":\"0.00001000\"")
            .replace("\"t\":-1", "\"t\":42");
        let PrivateEvent::Order(u) = client().private_event(&fill).unwrap() else {
            panic!("an order update");
        };
        assert_eq!(u.client_id, "x-cancel");
        let UpdateKind::Fill(f) = u.kind else {
            panic!("a fill");
        };
        assert_eq!(
            (f.trade_id, f.commission, f.commission_asset.as_str()),
            (42, 1000, "BNB")
        );
        assert_eq!(
            client().private_event(r#"{"e":"listenKeyExpired","E":1,"listenKey":"k"}"#),
            Ok(PrivateEvent::StreamExpired)
        );
        assert_eq!(
            client().private_event(r#"{"e":"outboundAccountPosition","E":1}"#),
            Ok(PrivateEvent::Other)
        );
        assert!(client().private_event("{").is_err());
    }
}
