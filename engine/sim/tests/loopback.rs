//! The sim venue over real loopback sockets: market data and book sync, order entry with
//! signatures and execution reports, and every injected fault, each seen by a client. Every
//! test is bounded in time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use rt_core::{DiffOutcome, OrderKind, Price, Qty, Side};
use rt_sim::{Fault, ScheduledFault, SimOptions, Speed};
use rt_venues::binance_orders::{
    parse_my_trades, parse_order, signed_query, ApiError, CancelOpenOrders, CancelOrder,
    CancelResponse, ExecType, ExecutionReport, MyTradesQuery, NewOrder, NewOrderResponse,
    OpenOrdersQuery, OrderStatus, QueryOrder, Timing, API_KEY_HEADER, MY_TRADES_PATH, ORDER_PATH,
};

const LIMIT: Duration = Duration::from_secs(60);

async fn bounded<F: std::future::Future<Output = ()>>(f: F) {
    tokio::time::timeout(LIMIT, f)
        .await
        .expect("the test did not finish in time");
}

/// Best bid and ask from the sim's REST snapshot (retrying until it is synced).
async fn touch(rest: std::net::SocketAddr) -> (Price, Price) {
    let mut book = ClientBook::new();
    book.snapshot(rest).await;
    let b = book.sync.book();
    (b.best_bid().unwrap().price, b.best_ask().unwrap().price)
}

async fn post_fault(rest: std::net::SocketAddr, query: &str) {
    let (status, body) = http(rest, "POST", &format!("/sim/fault?{query}"), None, "").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("applied"), "{body}");
}

async fn status(rest: std::net::SocketAddr) -> serde_json::Value {
    let (code, body) = http(rest, "GET", "/sim/status", None, "").await;
    assert_eq!(code, 200);
    serde_json::from_str(&body).unwrap()
}

#[tokio::test]
async fn a_client_syncs_the_book_from_stream_and_snapshot_without_gaps() {
    let sim = Running::start(&manifest("20", 0, None), SimOptions::default());
    bounded(async {
        let mut ws = sim.ws(&format!("/stream?streams={STREAMS}")).await;
        let mut book = ClientBook::new();
        sync_and_apply(&mut ws, &mut book, sim.rest, 150).await;
        // Keep reading for the oracle: every bookTicker at an applied diff's id matches.
        let until = Instant::now() + Duration::from_millis(500);
        while Instant::now() < until {
            let text = next_text(&mut ws).await.unwrap();
            book.on_frame(&text);
        }
        assert_eq!(book.gaps, 0);
        assert_eq!(book.sync.counters().gaps, 0);
        assert_eq!(book.decode_errors, 0);
        assert!(book.sync.is_synced());
        assert!(book.checkpoints >= 10, "{} checkpoints", book.checkpoints);
        assert_eq!(book.mismatches, 0);
        // The raw form gives the bare events of one stream.
        let mut raw = sim.ws("/ws/btcusdt@trade").await;
        let text = next_text(&mut raw).await.unwrap();
        assert!(text.starts_with("{\"e\":\"trade\""), "{text}");
    })
    .await;
    let report = sim.stop();
    assert!(report.frames_published > 150);
    assert!(report.frames_sent > 150);
    assert!(report.snapshots_served >= 1);
    assert_eq!(report.ws_connections, 2);
}

#[tokio::test]
async fn subscribe_messages_and_unknown_paths() {
    let sim = Running::start(&manifest("20", 0, None), SimOptions::default());
    bounded(async {
        use futures_util::SinkExt;
        let mut ws = sim.ws("/ws").await;
        ws.send(tokio_tungstenite::tungstenite::Message::text(
            r#"{"method":"SUBSCRIBE","params":["btcusdt@bookTicker"],"id":7}"#,
        ))
        .await
        .unwrap();
        // The reply, then bookTicker events only.
        let mut replied = false;
        let mut tickers = 0;
        while tickers < 5 {
            let text = next_text(&mut ws).await.unwrap();
            if text == r#"{"id":7,"result":null}"# {
                replied = true;
                continue;
            }
            assert!(text.starts_with("{\"u\":"), "{text}");
            tickers += 1;
        }
        assert!(replied);
        let err = tokio_tungstenite::connect_async(format!("ws://{}/nope", sim.ws)).await;
        assert!(err.is_err());
        let (code, body) = http(sim.rest, "GET", "/api/v3/nothing", None, "").await;
        assert_eq!(code, 404);
        assert!(body.contains("no such endpoint"), "{body}");
    })
    .await;
    sim.stop();
}

fn order_query(kind: OrderKind, side: Side, price: Price, qty: Qty, id: &str) -> String {
    NewOrder::from_kind(
        SYMBOL,
        side,
        kind,
        price,
        qty,
        Some(id.into()),
        Timing::new(now_ms()),
    )
    .to_query()
}

/// Reads execution reports of `order_id` until one with a final status.
async fn reports_until_done(ws: &mut Ws, client_id: &str) -> Vec<ExecutionReport> {
    let mut out = Vec::new();
    loop {
        let text = next_text(ws).await.expect("user stream ended");
        let Some(r) = ExecutionReport::parse(&text).unwrap() else {
            continue;
        };
        if r.client_order_id != client_id && r.orig_client_order_id != client_id {
            continue;
        }
        let done = !r.status.is_open();
        out.push(r);
        if done {
            return out;
        }
    }
}

#[tokio::test]
async fn a_signed_order_is_accepted_matched_and_reported() {
    let keys = keys("orders");
    // 0.5 s of order latency on the capture clock: 0.1 s of wall time at 5x.
    let sim = Running::start(&manifest("5", 500_000, Some(&keys)), SimOptions::default());
    let secret = keys.secret.as_bytes();
    bounded(async {
        let (code, body) = http(
            sim.rest,
            "POST",
            "/api/v3/userDataStream",
            Some(&keys.api_key),
            "",
        )
        .await;
        assert_eq!(code, 200, "{body}");
        let listen_key = rt_venues::binance_orders::parse_listen_key(&body).unwrap();
        let mut user = sim.ws(&format!("/ws/{listen_key}")).await;
        let (bid, ask) = touch(sim.rest).await;

        // A marketable IOC buy: it takes the ask (taker), the rest expires.
        let price = Price(ask.0 + 10_000 * 1_000_000); // 100 USDT through the ask
        let query = order_query(OrderKind::Ioc, Side::Buy, price, Qty(100_000), "ioc-1");
        let sent = Instant::now();
        let (code, body) = http(
            sim.rest,
            "POST",
            &format!("/api/v3/order?{}", signed_query(&query, secret)),
            Some(&keys.api_key),
            "",
        )
        .await;
        assert_eq!(code, 200, "{body}");
        // The order waited for its latency before reaching the matcher: 0.5 s of capture
        // time, 0.1 s of wall time at 5x.
        let waited = sent.elapsed();
        assert!(waited >= Duration::from_millis(95), "{waited:?}");
        assert!(waited < Duration::from_millis(450), "{waited:?}");
        let resp = NewOrderResponse::parse(&body).unwrap();
        let info = resp.info.unwrap();
        assert_eq!(info.client_order_id, "ioc-1");
        assert_eq!(info.executed_qty, Qty(100_000));
        assert_eq!(info.status, OrderStatus::Filled);
        assert!(!resp.fills.is_empty());
        assert!(resp
            .fills
            .iter()
            .all(|f| f.price <= price && f.commission > 0));
        assert!(resp.fills.iter().all(|f| f.commission_asset == "USDT"));
        let reports = reports_until_done(&mut user, "ioc-1").await;
        assert_eq!(reports[0].exec_type, ExecType::New);
        assert!(reports[1..]
            .iter()
            .all(|r| r.exec_type == ExecType::Trade && !r.is_maker));
        let last = reports.last().unwrap();
        assert_eq!(
            (last.status, last.cum_qty),
            (OrderStatus::Filled, Qty(100_000))
        );
        let fees: i64 = reports.iter().map(|r| r.commission).sum();
        assert_eq!(fees, resp.fills.iter().map(|f| f.commission).sum::<i64>());

        // A resting bid far below the touch, in the body this time; listed; cancelled.
        let far = Price(bid.0 - 1_000 * 100_000_000);
        let query = order_query(OrderKind::Limit, Side::Buy, far, Qty(100_000), "rest-1");
        let (code, body) = http(
            sim.rest,
            "POST",
            "/api/v3/order",
            Some(&keys.api_key),
            &signed_query(&query, secret),
        )
        .await;
        assert_eq!(code, 200, "{body}");
        let q = OpenOrdersQuery {
            symbol: Some(SYMBOL.into()),
            timing: Timing::new(now_ms()),
        };
        let (code, body) = http(
            sim.rest,
            "GET",
            &format!("/api/v3/openOrders?{}", signed_query(&q.to_query(), secret)),
            Some(&keys.api_key),
            "",
        )
        .await;
        assert_eq!(code, 200, "{body}");
        let open = rt_venues::binance_orders::parse_open_orders(&body).unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!(
            (open[0].client_order_id.as_str(), open[0].price),
            ("rest-1", far)
        );
        let cancel = CancelOrder {
            symbol: SYMBOL.into(),
            order_id: None,
            orig_client_order_id: Some("rest-1".into()),
            timing: Timing::new(now_ms()),
        };
        let (code, body) = http(
            sim.rest,
            "DELETE",
            &format!("/api/v3/order?{}", signed_query(&cancel.to_query(), secret)),
            Some(&keys.api_key),
            "",
        )
        .await;
        assert_eq!(code, 200, "{body}");
        assert_eq!(
            CancelResponse::parse(&body).unwrap().info.status,
            OrderStatus::Canceled
        );
        let reports = reports_until_done(&mut user, "rest-1").await;
        let kinds: Vec<_> = reports.iter().map(|r| r.exec_type).collect();
        assert_eq!(kinds, [ExecType::New, ExecType::Canceled]);
        assert_eq!(reports[1].orig_client_order_id, "rest-1");
        // Nothing left: cancel-all answers Binance's "unknown order".
        let all = CancelOpenOrders {
            symbol: SYMBOL.into(),
            timing: Timing::new(now_ms()),
        };
        let (code, body) = http(
            sim.rest,
            "DELETE",
            &format!(
                "/api/v3/openOrders?{}",
                signed_query(&all.to_query(), secret)
            ),
            Some(&keys.api_key),
            "",
        )
        .await;
        assert_eq!(code, 400);
        assert_eq!(ApiError::parse(&body).unwrap().code, -2011);
        // A post-only order that would cross is refused with Binance's message.
        let query = order_query(OrderKind::PostOnly, Side::Buy, price, Qty(100_000), "pm-1");
        let (code, body) = http(
            sim.rest,
            "POST",
            &format!("/api/v3/order?{}", signed_query(&query, secret)),
            Some(&keys.api_key),
            "",
        )
        .await;
        assert_eq!(code, 400);
        assert_eq!(
            ApiError::parse(&body).unwrap(),
            ApiError::new(-2010, "Order would immediately match and take.")
        );
    })
    .await;
    let report = sim.stop();
    assert_eq!(report.orders, 3);
    assert_eq!(report.orders_rejected, 1);
    assert!(report.fills >= 1);
    assert_eq!(report.cancels, 1);
}

fn query_order(order_id: Option<u64>, client: Option<&str>) -> String {
    QueryOrder {
        symbol: SYMBOL.into(),
        order_id,
        orig_client_order_id: client.map(str::to_owned),
        timing: Timing::new(now_ms()),
    }
    .to_query()
}

fn my_trades(order_id: Option<u64>, from_id: Option<u64>, limit: Option<u32>) -> String {
    MyTradesQuery {
        symbol: SYMBOL.into(),
        order_id,
        from_id,
        limit,
        timing: Timing::new(now_ms()),
    }
    .to_query()
}

#[tokio::test]
async fn fills_are_recovered_with_signed_order_and_trade_queries() {
    let keys = keys("recover");
    let sim = Running::start(&manifest("5", 0, Some(&keys)), SimOptions::default());
    let secret = keys.secret.as_bytes();
    let key = Some(keys.api_key.as_str());
    bounded(async {
        let get = |path: &'static str, query: String| async move {
            http(
                sim.rest,
                "GET",
                &format!("{path}?{}", signed_query(&query, secret)),
                key,
                "",
            )
            .await
        };
        let (code, body) = http(sim.rest, "POST", "/api/v3/userDataStream", key, "").await;
        assert_eq!(code, 200, "{body}");
        let listen_key = rt_venues::binance_orders::parse_listen_key(&body).unwrap();
        let mut user = sim.ws(&format!("/ws/{listen_key}")).await;
        let (bid, ask) = touch(sim.rest).await;

        // A marketable IOC buy, filled on arrival; its reports are what a client may miss.
        let price = Price(ask.0 + 10_000 * 1_000_000);
        let query = order_query(OrderKind::Ioc, Side::Buy, price, Qty(100_000), "rec-1");
        let (code, body) = http(
            sim.rest,
            "POST",
            &format!("{ORDER_PATH}?{}", signed_query(&query, secret)),
            key,
            "",
        )
        .await;
        assert_eq!(code, 200, "{body}");
        let placed = NewOrderResponse::parse(&body).unwrap();
        let reports = reports_until_done(&mut user, "rec-1").await;
        let fills: Vec<&ExecutionReport> = reports
            .iter()
            .filter(|r| r.exec_type == ExecType::Trade)
            .collect();
        assert!(!fills.is_empty());

        // The order, by client id and by id: FILLED, the whole quantity.
        let (code, body) = get(ORDER_PATH, query_order(None, Some("rec-1"))).await;
        assert_eq!(code, 200, "{body}");
        let info = parse_order(&body).unwrap();
        assert_eq!(info.order_id, placed.order_id);
        assert_eq!(info.client_order_id, "rec-1");
        assert_eq!(
            (info.status, info.executed_qty),
            (OrderStatus::Filled, Qty(100_000))
        );
        assert_eq!(info.cum_quote_qty, reports.last().unwrap().cum_quote_qty);
        let value: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(value["orderListId"], -1);
        assert_eq!(value["selfTradePreventionMode"], "NONE");
        let (code, by_id) = get(ORDER_PATH, query_order(Some(placed.order_id), None)).await;
        assert_eq!(code, 200, "{by_id}");
        assert_eq!(parse_order(&by_id).unwrap(), info);

        // Its trades: the reports' trade ids, quantities, prices, commissions, maker flags.
        let (code, body) = get(
            MY_TRADES_PATH,
            my_trades(Some(placed.order_id), Some(0), Some(1000)),
        )
        .await;
        assert_eq!(code, 200, "{body}");
        let trades = parse_my_trades(&body).unwrap();
        assert_eq!(trades.len(), fills.len());
        for (t, r) in trades.iter().zip(&fills) {
            assert_eq!(i64::try_from(t.id).unwrap(), r.trade_id);
            assert_eq!(t.order_id, placed.order_id);
            assert_eq!((t.price, t.qty), (r.last_price, r.last_qty));
            assert_eq!(t.commission, r.commission);
            assert_eq!(
                Some(t.commission_asset.as_str()),
                r.commission_asset.as_deref()
            );
            assert_eq!((t.is_maker, t.is_buyer), (false, true));
            assert_eq!(t.time_ms, r.transaction_time_ms);
        }
        let qty: i64 = trades.iter().map(|t| t.qty.0).sum();
        assert_eq!(qty, info.executed_qty.0);
        // Default parameters: the most recent; the last trade alone with limit=1.
        let (code, body) = get(MY_TRADES_PATH, my_trades(None, None, None)).await;
        assert_eq!(code, 200, "{body}");
        assert_eq!(parse_my_trades(&body).unwrap(), trades);
        let (_, body) = get(MY_TRADES_PATH, my_trades(None, None, Some(1))).await;
        assert_eq!(
            parse_my_trades(&body).unwrap(),
            trades[trades.len() - 1..].to_vec()
        );
        let last = trades.last().unwrap().id;
        let (_, body) = get(MY_TRADES_PATH, my_trades(None, Some(last + 1), None)).await;
        assert_eq!(body, "[]");

        // An open order is found too; an unknown one is Binance's -2013.
        let far = Price(bid.0 - 1_000 * 100_000_000);
        let query = order_query(OrderKind::Limit, Side::Buy, far, Qty(100_000), "rec-2");
        let (code, body) = http(
            sim.rest,
            "POST",
            ORDER_PATH,
            key,
            &signed_query(&query, secret),
        )
        .await;
        assert_eq!(code, 200, "{body}");
        let (code, body) = get(ORDER_PATH, query_order(None, Some("rec-2"))).await;
        assert_eq!(code, 200, "{body}");
        let open = parse_order(&body).unwrap();
        assert_eq!((open.status, open.price), (OrderStatus::New, far));
        assert!(open.is_working);
        let (code, body) = get(ORDER_PATH, query_order(None, Some("never-sent"))).await;
        assert_eq!(code, 400, "{body}");
        assert_eq!(
            ApiError::parse(&body).unwrap(),
            ApiError::new(-2013, "Order does not exist.")
        );
        // Bad parameters are named.
        let (code, body) = get(
            ORDER_PATH,
            format!("symbol={SYMBOL}&timestamp={}", now_ms()),
        )
        .await;
        assert_eq!(code, 400);
        let err = ApiError::parse(&body).unwrap();
        assert_eq!(err.code, -1102);
        assert!(err.msg.contains("'orderId'") && err.msg.contains("'origClientOrderId'"));
        let (code, body) = get(
            MY_TRADES_PATH,
            format!("symbol={SYMBOL}&limit=1001&timestamp={}", now_ms()),
        )
        .await;
        assert_eq!(code, 400);
        let err = ApiError::parse(&body).unwrap();
        assert_eq!(err.code, -1100);
        assert!(err.msg.contains("'limit'"), "{}", err.msg);

        // Refused as the other signed endpoints refuse: no signature, a wrong one, a
        // tampered query, no key, a wrong key, a stale timestamp.
        for (path, query) in [
            (ORDER_PATH, query_order(None, Some("rec-1"))),
            (MY_TRADES_PATH, my_trades(Some(placed.order_id), None, None)),
        ] {
            let signed = signed_query(&query, secret);
            let cases = [
                (query.clone(), key, 400, -1102),
                (signed_query(&query, b"not-the-secret"), key, 400, -1022),
                (
                    signed.replacen(&format!("symbol={SYMBOL}"), "symbol=ETHUSDT", 1),
                    key,
                    400,
                    -1022,
                ),
                (signed.clone(), None, 401, -2014),
                (signed.clone(), Some("someone-else"), 401, -2015),
            ];
            for (q, key, status, code) in cases {
                let (got, body) = http(sim.rest, "GET", &format!("{path}?{q}"), key, "").await;
                assert_eq!(got, status, "{path}?{q}: {body}");
                let err = ApiError::parse(&body).unwrap();
                assert_eq!(err.code, code, "{path}?{q}: {body}");
                assert!(!body.contains("rec-1"), "{body}");
            }
        }
        let stale = QueryOrder {
            symbol: SYMBOL.into(),
            order_id: Some(placed.order_id),
            orig_client_order_id: None,
            timing: Timing::new(now_ms() - 60_000),
        }
        .to_query();
        let (code, body) = get(ORDER_PATH, stale).await;
        assert_eq!(code, 400);
        assert_eq!(ApiError::parse(&body).unwrap().code, -1021);
    })
    .await;
    let report = sim.stop();
    // The queries matched nothing: two orders in all.
    assert_eq!(report.orders, 2);
    assert!(report.fills >= 1);
}

#[tokio::test]
async fn wrong_or_missing_signatures_and_keys_are_refused() {
    let keys = keys("sig");
    let sim = Running::start(&manifest("5", 0, Some(&keys)), SimOptions::default());
    bounded(async {
        let (_, ask) = touch(sim.rest).await;
        let query = order_query(OrderKind::Ioc, Side::Buy, ask, Qty(100_000), "bad-1");
        let cases = [
            // Signed with another secret.
            (
                signed_query(&query, b"not-the-secret"),
                Some(keys.api_key.as_str()),
                400,
                -1022,
            ),
            // Signed, then tampered with.
            (
                signed_query(&query, keys.secret.as_bytes())
                    .replace("quantity=0.001", "quantity=0.002"),
                Some(keys.api_key.as_str()),
                400,
                -1022,
            ),
            // No signature.
            (query.clone(), Some(keys.api_key.as_str()), 400, -1102),
            // No API key, then a wrong one.
            (
                signed_query(&query, keys.secret.as_bytes()),
                None,
                401,
                -2014,
            ),
            (
                signed_query(&query, keys.secret.as_bytes()),
                Some("someone-else"),
                401,
                -2015,
            ),
        ];
        for (q, key, http_status, code) in cases {
            let (status, body) =
                http(sim.rest, "POST", &format!("/api/v3/order?{q}"), key, "").await;
            assert_eq!(status, http_status, "{q}: {body}");
            assert_eq!(ApiError::parse(&body).unwrap().code, code, "{q}: {body}");
        }
        // An old timestamp, correctly signed.
        let stale = NewOrder::from_kind(
            SYMBOL,
            Side::Buy,
            OrderKind::Ioc,
            ask,
            Qty(100_000),
            None,
            Timing::new(now_ms() - 60_000),
        )
        .to_query();
        let (status, body) = http(
            sim.rest,
            "POST",
            &format!(
                "/api/v3/order?{}",
                signed_query(&stale, keys.secret.as_bytes())
            ),
            Some(&keys.api_key),
            "",
        )
        .await;
        assert_eq!(status, 400);
        assert_eq!(ApiError::parse(&body).unwrap().code, -1021);
        // A bad parameter is named.
        let bad = query.replace("side=BUY", "side=UP");
        let (_, body) = http(
            sim.rest,
            "POST",
            &format!(
                "/api/v3/order?{}",
                signed_query(&bad, keys.secret.as_bytes())
            ),
            Some(&keys.api_key),
            "",
        )
        .await;
        let err = ApiError::parse(&body).unwrap();
        assert_eq!(err.code, -1117);
        assert!(err.msg.contains("'side'"), "{}", err.msg);
        // The user data stream needs the key too.
        let (status, _) = http(sim.rest, "POST", "/api/v3/userDataStream", None, "").await;
        assert_eq!(status, 401);
        // None of those reached the matcher.
        assert_eq!(status_of(&sim).await["orders"], 0);
    })
    .await;
    let report = sim.stop();
    assert_eq!(report.orders, 0);
}

#[tokio::test]
async fn rest_requests_signed_with_an_ed25519_key_are_verified() {
    use rt_venues::binance::SpotExecution;
    use rt_venues::execution::ExecutionClient;
    let keys = ed25519_keys("rest-ed25519");
    let sim = Running::start(&manifest("5", 0, Some(&keys)), SimOptions::default());
    bounded(async {
        let (bid, _) = touch(sim.rest).await;
        let client = SpotExecution::new(Some(keys.signer()), None);
        let spec = far_buy(bid, "ed-rest-1");
        let placed = client.new_order(&spec, now_ms()).unwrap();
        let (status, body) = http(sim.rest, "POST", &placed.path, Some(&keys.api_key), "").await;
        assert_eq!(status, 200, "{body}");
        // Tampered after signing, and signed by HMAC with the PEM as the secret: refused.
        let tampered = placed.path.replace("quantity=0.001", "quantity=0.002");
        let hmac = format!(
            "/api/v3/order?{}",
            signed_query(
                &order_query(
                    OrderKind::Limit,
                    Side::Buy,
                    spec.price,
                    spec.qty,
                    "ed-rest-2"
                ),
                keys.secret.as_bytes()
            )
        );
        for path in [tampered, hmac] {
            let (status, body) = http(sim.rest, "POST", &path, Some(&keys.api_key), "").await;
            assert_eq!(status, 400, "{body}");
            assert_eq!(ApiError::parse(&body).unwrap().code, -1022, "{body}");
        }
        let cancel = client.cancel(SYMBOL, "ed-rest-1", now_ms());
        let (status, body) = http(sim.rest, "DELETE", &cancel.path, Some(&keys.api_key), "").await;
        assert_eq!(status, 200, "{body}");
    })
    .await;
    let report = sim.stop();
    assert_eq!((report.orders, report.cancels), (1, 1));
}

async fn status_of(sim: &Running) -> serde_json::Value {
    status(sim.rest).await
}

#[tokio::test]
async fn unsigned_orders_are_accepted_without_credentials_and_reject_faults_apply() {
    let sim = Running::start(&manifest("5", 0, None), SimOptions::default());
    bounded(async {
        let (bid, _) = touch(sim.rest).await;
        let far = Price(bid.0 - 1_000 * 100_000_000);
        post_fault(sim.rest, "kind=reject&count=1&code=-1015").await;
        let query = order_query(OrderKind::Limit, Side::Buy, far, Qty(100_000), "u-1");
        let (status, body) = http(
            sim.rest,
            "POST",
            &format!("/api/v3/order?{query}"),
            None,
            "",
        )
        .await;
        assert_eq!(status, 429, "{body}");
        assert_eq!(ApiError::parse(&body).unwrap().code, -1015);
        // The fault was for one order only.
        let (status, body) = http(
            sim.rest,
            "POST",
            &format!("/api/v3/order?{query}"),
            None,
            "",
        )
        .await;
        assert_eq!(status, 200, "{body}");
        // Until cleared: every order refused with the given code.
        post_fault(sim.rest, "kind=reject&code=-2010").await;
        let query = order_query(OrderKind::Limit, Side::Buy, far, Qty(100_000), "u-2");
        for _ in 0..3 {
            let (status, body) = http(
                sim.rest,
                "POST",
                &format!("/api/v3/order?{query}"),
                None,
                "",
            )
            .await;
            assert_eq!(status, 400, "{body}");
            assert_eq!(ApiError::parse(&body).unwrap().code, -2010);
        }
        post_fault(sim.rest, "kind=clear").await;
        let (status, body) = http(
            sim.rest,
            "POST",
            &format!("/api/v3/order?{query}"),
            None,
            "",
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = http(sim.rest, "POST", "/sim/fault?kind=boom", None, "").await;
        assert_eq!(status, 400);
        assert!(body.contains("unknown kind"), "{body}");
    })
    .await;
    let report = sim.stop();
    assert_eq!(report.orders, 6);
    assert_eq!(report.orders_rejected, 4);
}

#[tokio::test]
async fn drop_faults_close_every_connection() {
    let sim = Running::start(&manifest("10", 0, None), SimOptions::default());
    bounded(async {
        // Now.
        let mut a = sim.ws(&format!("/stream?streams={STREAMS}")).await;
        let mut b = sim.ws("/ws/btcusdt@bookTicker").await;
        assert!(next_text(&mut a).await.is_some());
        assert!(next_text(&mut b).await.is_some());
        post_fault(sim.rest, "kind=drop").await;
        for ws in [&mut a, &mut b] {
            let mut after = 0;
            while next_text(ws).await.is_some() {
                after += 1;
                assert!(after < 10_000);
            }
        }
        // After N frames: at least N more arrive, then the connection goes.
        let mut c = sim.ws(&format!("/stream?streams={STREAMS}")).await;
        assert!(next_text(&mut c).await.is_some());
        post_fault(sim.rest, "kind=drop&after=20").await;
        let mut after = 0;
        while next_text(&mut c).await.is_some() {
            after += 1;
        }
        assert!((20..200).contains(&after), "{after} frames after the fault");
        // A new connection works.
        let mut d = sim.ws(&format!("/stream?streams={STREAMS}")).await;
        assert!(next_text(&mut d).await.is_some());
    })
    .await;
    let report = sim.stop();
    assert_eq!(report.ws_dropped, 3);
}

#[tokio::test]
async fn drop_user_closes_user_streams_and_refuses_listen_keys_until_cleared() {
    let sim = Running::start(&manifest("10", 0, None), SimOptions::default());
    bounded(async {
        let (code, body) = http(sim.rest, "POST", "/api/v3/userDataStream", None, "").await;
        assert_eq!(code, 200, "{body}");
        let listen_key = rt_venues::binance_orders::parse_listen_key(&body).unwrap();
        let mut user = sim.ws(&format!("/ws/{listen_key}")).await;
        let mut market = sim.ws(&format!("/stream?streams={STREAMS}")).await;
        assert!(next_text(&mut market).await.is_some());
        post_fault(sim.rest, "kind=drop_user").await;
        // The user stream goes; market data keeps flowing.
        assert!(next_text(&mut user).await.is_none());
        for _ in 0..5 {
            assert!(next_text(&mut market).await.is_some());
        }
        // No new stream until the fault is cleared.
        let (code, body) = http(sim.rest, "POST", "/api/v3/userDataStream", None, "").await;
        assert_ne!(code, 200, "{body}");
        assert_eq!(ApiError::parse(&body).unwrap().code, -1001);
        post_fault(sim.rest, "kind=clear").await;
        let (code, body) = http(sim.rest, "POST", "/api/v3/userDataStream", None, "").await;
        assert_eq!(code, 200, "{body}");
    })
    .await;
    let report = sim.stop();
    assert_eq!(report.ws_dropped, 1);
}

#[tokio::test]
async fn a_scheduled_drop_from_the_options() {
    let opts = SimOptions {
        faults: vec!["300:kind=drop".parse::<ScheduledFault>().unwrap()],
        speed: Some("2".parse::<Speed>().unwrap()),
        ..SimOptions::default()
    };
    let sim = Running::start(&manifest("1", 0, None), opts);
    bounded(async {
        let mut ws = sim.ws(&format!("/stream?streams={STREAMS}")).await;
        let mut n = 0;
        while next_text(&mut ws).await.is_some() {
            n += 1;
        }
        // Lines 1..=300 hold the capture's REST snapshot (not a stream frame): 299 frames,
        // less the few replayed before the client connected.
        assert!((250..=299).contains(&n), "{n} frames before the drop");
    })
    .await;
    let report = sim.stop();
    assert_eq!(report.ws_dropped, 1);
    assert_eq!(report.faults_applied, 1);
}

#[tokio::test]
async fn a_gap_fault_is_seen_as_a_sequence_gap_and_a_snapshot_bridges_it() {
    let sim = Running::start(&manifest("20", 0, None), SimOptions::default());
    bounded(async {
        let mut ws = sim.ws(&format!("/stream?streams={STREAMS}")).await;
        let mut book = ClientBook::new();
        sync_and_apply(&mut ws, &mut book, sim.rest, 20).await;
        assert_eq!(book.gaps, 0);
        post_fault(sim.rest, "kind=gap").await;
        // The gap shows on the next diffs...
        let deadline = Instant::now() + Duration::from_secs(10);
        while book.gaps == 0 {
            assert!(Instant::now() < deadline, "no gap seen");
            let text = next_text(&mut ws).await.unwrap();
            if book.on_frame(&text) == Some(DiffOutcome::Gap) {
                break;
            }
        }
        assert_eq!(book.gaps, 1);
        assert!(!book.sync.is_synced());
        // ...and a fresh snapshot bridges it exactly.
        book.snapshot(sim.rest).await;
        sync_and_apply(&mut ws, &mut book, sim.rest, 30).await;
        assert!(book.sync.is_synced());
        assert_eq!(book.gaps, 1);
        assert_eq!(book.mismatches, 0);
    })
    .await;
    let report = sim.stop();
    assert_eq!(report.diffs_skipped, 1);
}

#[tokio::test]
async fn a_malformed_frame_reaches_every_client() {
    let sim = Running::start(&manifest("5", 0, None), SimOptions::default());
    bounded(async {
        let mut ws = sim.ws("/stream?streams=btcusdt@trade").await;
        let mut book = ClientBook::new();
        assert!(next_text(&mut ws).await.is_some());
        post_fault(sim.rest, "kind=malformed").await;
        let deadline = Instant::now() + Duration::from_secs(10);
        while book.decode_errors == 0 {
            assert!(Instant::now() < deadline, "no malformed frame");
            let text = next_text(&mut ws).await.unwrap();
            book.on_frame(&text);
        }
        // The stream goes on after it.
        let text = next_text(&mut ws).await.unwrap();
        assert!(text.contains("\"e\":\"trade\""), "{text}");
    })
    .await;
    assert_eq!(sim.stop().malformed_sent, 1);
}

#[tokio::test]
async fn a_stall_fault_silences_the_stream() {
    let sim = Running::start(&manifest("20", 0, None), SimOptions::default());
    bounded(async {
        let mut ws = sim.ws(&format!("/stream?streams={STREAMS}")).await;
        // The stream's normal spacing at 20x: far below 100 ms.
        let mut last = Instant::now();
        let mut normal = Duration::ZERO;
        for _ in 0..200 {
            next_text(&mut ws).await.unwrap();
            normal = normal.max(last.elapsed());
            last = Instant::now();
        }
        assert!(normal < Duration::from_millis(400), "{normal:?}");
        post_fault(sim.rest, "kind=stall&ms=1500").await;
        let t = Instant::now();
        // Frames already on their way may still come; then a silence of about 1.5 s.
        let mut longest = Duration::ZERO;
        let mut last = Instant::now();
        while t.elapsed() < Duration::from_millis(2500) {
            next_text(&mut ws).await.unwrap();
            longest = longest.max(last.elapsed());
            last = Instant::now();
        }
        assert!(longest >= Duration::from_millis(1300), "{longest:?}");
    })
    .await;
    sim.stop();
}

#[test]
fn the_whole_capture_replays_as_fast_as_possible_and_exits_at_the_end() {
    let opts = SimOptions {
        speed: Some(rt_sim::Speed::Max),
        exit_at_end: true,
        ..SimOptions::default()
    };
    let sim = Running::start(&manifest("1", 0, None), opts);
    let report = sim.wait(Duration::from_secs(60));
    // data/README.md: 1 snapshot + 3,451 depth + 28,040 bookTicker + 9,757 trade.
    assert!(report.replay_finished);
    assert_eq!(report.frames_replayed, 41_249);
    assert_eq!(report.frames_published, 3_451 + 28_040 + 9_757);
    assert_eq!(report.decode_errors, 0);
}

#[test]
fn fault_specs_from_the_command_line() {
    let f: ScheduledFault = "1000:kind=stall&ms=250".parse().unwrap();
    assert_eq!((f.at_frame, f.fault), (1000, Fault::Stall { ms: 250 }));
    let bind = rt_sim::Sim::bind(&manifest("1", 0, None), "nope", SimOptions::default());
    let err = bind.unwrap_err().to_string();
    assert!(
        err.contains("no exchange \"nope\"") && err.contains(EXCHANGE),
        "{err}"
    );
    let _ = API_KEY_HEADER;
}

#[tokio::test]
async fn resting_quotes_fill_as_makers_from_the_replayed_market() {
    // No credentials (paper_local): unsigned order entry; the combined user stream form.
    let sim = Running::start(&manifest("40", 500, None), SimOptions::default());
    bounded(async {
        let (code, body) = http(sim.rest, "POST", "/api/v3/userDataStream", None, "").await;
        assert_eq!(code, 200, "{body}");
        let key = rt_venues::binance_orders::parse_listen_key(&body).unwrap();
        let mut user = sim.ws(&format!("/stream?streams={key}")).await;
        // Keep-alive answers {}; an unknown key is Binance's -1125.
        let (code, body) = http(
            sim.rest,
            "PUT",
            &format!("/api/v3/userDataStream?listenKey={key}"),
            None,
            "",
        )
        .await;
        assert_eq!((code, body.as_str()), (200, "{}"));
        let (code, body) = http(
            sim.rest,
            "PUT",
            "/api/v3/userDataStream?listenKey=nope",
            None,
            "",
        )
        .await;
        assert_eq!(code, 400);
        assert_eq!(ApiError::parse(&body).unwrap().code, -1125);
        let (bid, ask) = touch(sim.rest).await;
        // A bid and an ask at the touch, post-only: whichever way the market goes, one of them
        // is traded through.
        for (side, price, id) in [(Side::Buy, bid, "q-bid"), (Side::Sell, ask, "q-ask")] {
            let query = order_query(OrderKind::PostOnly, side, price, Qty(100_000), id);
            let (code, body) = http(
                sim.rest,
                "POST",
                &format!("/api/v3/order?{query}"),
                None,
                "",
            )
            .await;
            if code != 200 {
                // The touch moved between the snapshot and the order: it would have crossed.
                assert_eq!(ApiError::parse(&body).unwrap().code, -2010, "{body}");
            }
        }
        let mut maker_fill = None;
        while maker_fill.is_none() {
            let text = next_text(&mut user).await.expect("user stream ended");
            let value: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(value["stream"], key.as_str());
            let r = ExecutionReport::parse(&text).unwrap().unwrap();
            if r.exec_type == ExecType::Trade {
                maker_fill = Some(r);
            }
        }
        let r = maker_fill.unwrap();
        assert!(r.is_maker);
        assert_eq!(r.last_price, r.price);
        // The instrument's maker fee (7.5 bps in the example manifest): price * qty * 7.5 /
        // 10^4, rounded up to 10^-8.
        let expected = rt_core::portfolio::fee(r.last_price, r.last_qty, 750_000_000);
        assert_eq!(r.commission, expected);
    })
    .await;
    let report = sim.stop();
    assert!(report.fills >= 1);
}

#[tokio::test]
async fn a_late_client_joins_the_replay_where_it_is() {
    let sim = Running::start(&manifest("20", 0, None), SimOptions::default());
    bounded(async {
        let event_ms = |text: &str| -> u64 {
            let v: serde_json::Value = serde_json::from_str(text).unwrap();
            v["data"]["E"].as_u64().unwrap()
        };
        let mut early = sim.ws("/stream?streams=btcusdt@depth@100ms").await;
        let first = event_ms(&next_text(&mut early).await.unwrap());
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let mut late = sim.ws("/stream?streams=btcusdt@depth@100ms").await;
        let joined = event_ms(&next_text(&mut late).await.unwrap());
        // One second at 20x is about 20 s of capture.
        assert!(joined >= first + 15_000, "first {first}, joined {joined}");
        assert!(joined <= first + 30_000, "first {first}, joined {joined}");
    })
    .await;
    sim.stop();
}

#[test]
fn run_blocking_serves_until_the_stop_signal() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let manifest = manifest("10", 0, None);
    let thread = std::thread::spawn(move || {
        rt_sim::run_blocking(&manifest, EXCHANGE, SimOptions::default(), flag)
    });
    std::thread::sleep(Duration::from_millis(500));
    let asked = Instant::now();
    stop.store(true, Ordering::Relaxed);
    let report = thread.join().unwrap().unwrap();
    assert!(asked.elapsed() < Duration::from_secs(2));
    assert!(report.frames_replayed > 10);
    assert!(!report.replay_finished);
}
