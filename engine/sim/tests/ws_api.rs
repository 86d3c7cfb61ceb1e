//! The sim's Binance WebSocket API (`/ws-api/v3`) over real loopback sockets: signed
//! `order.place`, `order.status` and `order.cancel` served by the same matcher as REST, refused
//! signatures and keys, the reject fault's codes with REST's statuses, and a `drop` fault.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use futures_util::SinkExt;
use rt_core::{Price, Qty};
use rt_sim::SimOptions;
use rt_venues::binance::signing::Signer;
use rt_venues::binance::ws_api::{WsAnswer, WsApiOrders, WS_API_PATH};
use rt_venues::binance_orders::{parse_order, ApiError, OrderStatus};
use rt_venues::execution::{Credentials, FrameOrderEntry};
use tokio_tungstenite::tungstenite::Message;

async fn bounded<F: std::future::Future<Output = ()>>(f: F) {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .expect("the test did not finish in time");
}

async fn touch(rest: std::net::SocketAddr) -> Price {
    let mut book = ClientBook::new();
    book.snapshot(rest).await;
    book.sync.book().best_bid().unwrap().price
}

/// Sends `frame` and reads its answer.
async fn ask(ws: &mut Ws, frame: &str) -> WsAnswer {
    ws.send(Message::Text(frame.to_owned().into()))
        .await
        .unwrap();
    let text = next_text(ws).await.expect("the connection ended");
    WsAnswer::parse(&text, now_ms()).unwrap()
}

#[tokio::test]
async fn signed_orders_are_placed_queried_and_cancelled_over_the_ws_api() {
    let keys = keys("wsapi");
    let sim = Running::start(&manifest("5", 0, Some(&keys)), SimOptions::default());
    let creds = keys.credentials();
    bounded(async {
        let bid = touch(sim.rest).await;
        let mut ws = sim.ws(WS_API_PATH).await;
        let mut orders = WsApiOrders::new(Some(&keys.signer()), None);
        let mut out = String::new();

        orders
            .place(&mut out, 1, &far_buy(bid, "ws-1"), now_ms())
            .unwrap();
        let placed = ask(&mut ws, &out).await;
        assert_eq!((placed.id, placed.status), (Some(1), 200), "{placed:?}");
        // The usage, as REST's headers report it: the order counted.
        assert_eq!(placed.seen.orders_10s, Some(1), "{placed:?}");
        assert!(placed.seen.weight_1m.is_some_and(|w| w >= 1), "{placed:?}");
        assert_eq!(
            parse_order(&placed.result).unwrap().status,
            OrderStatus::New
        );

        orders.status(&mut out, 2, SYMBOL, "ws-1", now_ms());
        let status = ask(&mut ws, &out).await;
        assert_eq!((status.id, status.status), (Some(2), 200), "{status:?}");
        let state = parse_order(&status.result).unwrap();
        assert_eq!(
            (state.status, state.orig_qty),
            (OrderStatus::New, Qty(100_000))
        );

        orders.cancel(&mut out, 3, SYMBOL, "ws-1", now_ms());
        let cancelled = ask(&mut ws, &out).await;
        assert_eq!(
            (cancelled.id, cancelled.status),
            (Some(3), 200),
            "{cancelled:?}"
        );
        // Cancelled twice: the venue no longer knows it open (REST's -2011, status 400).
        orders.cancel(&mut out, 4, SYMBOL, "ws-1", now_ms());
        let again = ask(&mut ws, &out).await;
        assert_eq!(again.status, 400);
        assert_eq!(ApiError::parse(again.body()).unwrap().code, -2011);

        // Another secret, another key: refused as REST refuses them, before the matcher.
        let wrong = Credentials {
            secret: "not-the-secret".into(),
            ..creds.clone()
        };
        WsApiOrders::new(Some(&Signer::new(&wrong).unwrap()), None)
            .place(&mut out, 5, &far_buy(bid, "ws-2"), now_ms())
            .unwrap();
        let refused = ask(&mut ws, &out).await;
        assert_eq!(refused.status, 400);
        assert_eq!(ApiError::parse(refused.body()).unwrap().code, -1022);
        let other = Credentials {
            key: "someone-else".into(),
            ..creds.clone()
        };
        WsApiOrders::new(Some(&Signer::new(&other).unwrap()), None)
            .place(&mut out, 6, &far_buy(bid, "ws-2"), now_ms())
            .unwrap();
        let refused = ask(&mut ws, &out).await;
        assert_eq!(refused.status, 401);
        assert_eq!(ApiError::parse(refused.body()).unwrap().code, -2015);
        // Unsigned, on a connection not logged on: refused as a missing mandatory parameter.
        WsApiOrders::new(None, None)
            .place(&mut out, 7, &far_buy(bid, "ws-2"), now_ms())
            .unwrap();
        let refused = ask(&mut ws, &out).await;
        assert_eq!(ApiError::parse(refused.body()).unwrap().code, -1102);
        // An HMAC key cannot log on (Binance: Ed25519 keys only).
        let logon = format!(
            r#"{{"id":9,"method":"session.logon","params":{{"apiKey":"{}","timestamp":{},"signature":"00"}}}}"#,
            keys.api_key,
            now_ms()
        );
        let refused = ask(&mut ws, &logon).await;
        assert_eq!(refused.status, 400, "{refused:?}");
        // An unknown method is named; an unreadable frame is answered with a null id.
        let unknown = ask(&mut ws, r#"{"id":8,"method":"order.amend","params":{}}"#).await;
        assert_eq!((unknown.id, unknown.status), (Some(8), 400));
        assert!(unknown.body().contains("order.amend"), "{unknown:?}");
        let garbage = ask(&mut ws, "{").await;
        assert_eq!((garbage.id, garbage.status), (None, 400));
    })
    .await;
    let report = sim.stop();
    // One order, one cancel made (the second found nothing open).
    assert_eq!((report.orders, report.cancels), (1, 1));
}

#[tokio::test]
async fn an_ed25519_key_logs_on_and_orders_then_go_unsigned() {
    let keys = ed25519_keys("wsapi-ed25519");
    let sim = Running::start(&manifest("5", 0, Some(&keys)), SimOptions::default());
    bounded(async {
        let bid = touch(sim.rest).await;
        let mut ws = sim.ws(WS_API_PATH).await;
        let mut orders = WsApiOrders::new(Some(&keys.signer()), None);
        let mut plain = WsApiOrders::new(None, None);
        let mut out = String::new();
        // Not logged on: an unsigned order is refused; an Ed25519-signed one is placed.
        plain
            .place(&mut out, 1, &far_buy(bid, "ed-1"), now_ms())
            .unwrap();
        let refused = ask(&mut ws, &out).await;
        assert_eq!(ApiError::parse(refused.body()).unwrap().code, -1102);
        orders
            .place(&mut out, 2, &far_buy(bid, "ed-1"), now_ms())
            .unwrap();
        assert!(out.contains("\"signature\""), "{out}");
        assert_eq!(ask(&mut ws, &out).await.status, 200);
        let session = ask(&mut ws, r#"{"id":3,"method":"session.status"}"#).await;
        assert!(session.result.contains("\"apiKey\":null"), "{session:?}");
        // A logon signed by another key, and one with a stale timestamp: refused.
        let stranger = Credentials {
            secret: "not a PEM".into(),
            ..keys.credentials()
        };
        assert!(Signer::new(&stranger).is_err());
        let mut forged = WsApiOrders::new(Some(&keys.signer()), None);
        assert!(forged.logon(&mut out, 4, now_ms()));
        let tampered = out.replace("\"timestamp\":", "\"timestamp\":1");
        let refused = ask(&mut ws, &tampered).await;
        assert_eq!(ApiError::parse(refused.body()).unwrap().code, -1022);
        assert!(forged.logon(&mut out, 5, now_ms() - 600_000));
        let refused = ask(&mut ws, &out).await;
        assert_eq!(ApiError::parse(refused.body()).unwrap().code, -1021);
        // session.logon, verified with the public key the sim derives from the PEM.
        assert!(orders.logon(&mut out, 6, now_ms()));
        let answer = ask(&mut ws, &out).await;
        assert_eq!((answer.id, answer.status), (Some(6), 200), "{answer:?}");
        let frame = orders.answer(&answer_text(&answer), now_ms()).unwrap();
        orders.logged_on(&frame).unwrap();
        let session = ask(&mut ws, r#"{"id":7,"method":"session.status"}"#).await;
        assert!(session.result.contains(&keys.api_key), "{session:?}");
        // Logged on: orders, queries and cancels carry no key and no signature.
        orders
            .place(&mut out, 8, &far_buy(bid, "ed-2"), now_ms())
            .unwrap();
        assert!(
            !out.contains("signature") && !out.contains("apiKey"),
            "{out}"
        );
        let placed = ask(&mut ws, &out).await;
        assert_eq!((placed.id, placed.status), (Some(8), 200), "{placed:?}");
        orders.status(&mut out, 9, SYMBOL, "ed-2", now_ms());
        assert_eq!(ask(&mut ws, &out).await.status, 200);
        for (id, client_id) in [(10, "ed-1"), (11, "ed-2")] {
            orders.cancel(&mut out, id, SYMBOL, client_id, now_ms());
            assert_eq!(ask(&mut ws, &out).await.status, 200);
        }
        // A `reject_logon` fault refuses the next logon with its code; the one after works.
        let (status, _) = http(
            sim.rest,
            "POST",
            "/sim/fault?kind=reject_logon&count=1&code=-1007",
            None,
            "",
        )
        .await;
        assert_eq!(status, 200);
        let mut again = WsApiOrders::new(Some(&keys.signer()), None);
        assert!(again.logon(&mut out, 13, now_ms()));
        let refused = ask(&mut ws, &out).await;
        assert_eq!(refused.status, 503, "{refused:?}");
        assert_eq!(ApiError::parse(refused.body()).unwrap().code, -1007);
        assert!(again.logon(&mut out, 14, now_ms()));
        assert_eq!(ask(&mut ws, &out).await.status, 200);
        // Another connection is not logged on.
        let mut other = sim.ws(WS_API_PATH).await;
        orders.status(&mut out, 12, SYMBOL, "ed-2", now_ms());
        let refused = ask(&mut other, &out).await;
        assert_eq!(ApiError::parse(refused.body()).unwrap().code, -1102);
        let (code, body) = http(sim.rest, "GET", "/sim/status", None, "").await;
        assert_eq!(code, 200);
        let stats: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(stats["ws_api_logons"], 2, "{stats}");
        assert_eq!(stats["ws_api_signed"], 1, "{stats}");
        assert_eq!(stats["ws_api_unsigned"], 4, "{stats}");
    })
    .await;
    let report = sim.stop();
    assert_eq!((report.orders, report.cancels), (2, 2));
    assert_eq!(report.ws_api_logons, 2);
}

/// The frame an answer was read from, written back (the client reads frames).
fn answer_text(a: &WsAnswer) -> String {
    let mut body = serde_json::json!({"id": a.id, "status": a.status});
    body["result"] = serde_json::from_str(&a.result).unwrap_or(serde_json::Value::Null);
    body.to_string()
}

#[tokio::test]
async fn reject_faults_answer_with_rest_statuses_and_a_drop_closes_the_connection() {
    let sim = Running::start(&manifest("5", 0, None), SimOptions::default());
    bounded(async {
        let bid = touch(sim.rest).await;
        let mut ws = sim.ws(WS_API_PATH).await;
        let mut orders = WsApiOrders::new(None, None);
        let mut out = String::new();
        // -1007: the outcome is unknown (503, as REST answers it).
        let (status, _) = http(
            sim.rest,
            "POST",
            "/sim/fault?kind=reject&count=1&code=-1007",
            None,
            "",
        )
        .await;
        assert_eq!(status, 200);
        orders
            .place(&mut out, 1, &far_buy(bid, "f-1"), now_ms())
            .unwrap();
        let unknown = ask(&mut ws, &out).await;
        assert_eq!(unknown.status, 503);
        assert_eq!(ApiError::parse(unknown.body()).unwrap().code, -1007);
        // -1015: too many orders (429).
        let (status, _) = http(
            sim.rest,
            "POST",
            "/sim/fault?kind=reject&count=1&code=-1015",
            None,
            "",
        )
        .await;
        assert_eq!(status, 200);
        orders
            .place(&mut out, 2, &far_buy(bid, "f-2"), now_ms())
            .unwrap();
        assert_eq!(ask(&mut ws, &out).await.status, 429);
        orders
            .place(&mut out, 3, &far_buy(bid, "f-3"), now_ms())
            .unwrap();
        assert_eq!(ask(&mut ws, &out).await.status, 200);
        // A drop: the connection goes without a close frame; a new one works.
        let (status, _) = http(sim.rest, "POST", "/sim/fault?kind=drop", None, "").await;
        assert_eq!(status, 200);
        assert!(next_text(&mut ws).await.is_none());
        let mut ws = sim.ws(WS_API_PATH).await;
        orders.cancel(&mut out, 4, SYMBOL, "f-3", now_ms());
        assert_eq!(ask(&mut ws, &out).await.status, 200);
        // `drop_ws_api`: this connection goes, new ones are refused (503) until `clear`; the
        // market data stays.
        let mut md = sim.ws("/ws/btcusdt@bookTicker").await;
        let (status, _) = http(sim.rest, "POST", "/sim/fault?kind=drop_ws_api", None, "").await;
        assert_eq!(status, 200);
        assert!(next_text(&mut ws).await.is_none());
        let url = format!("ws://{}{WS_API_PATH}", sim.ws);
        match tokio_tungstenite::connect_async(url.as_str()).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 503),
            other => panic!("{:?}", other.map(|_| ())),
        }
        assert!(next_text(&mut md).await.is_some());
        let (status, _) = http(sim.rest, "POST", "/sim/fault?kind=clear", None, "").await;
        assert_eq!(status, 200);
        let mut ws = sim.ws(WS_API_PATH).await;
        orders
            .place(&mut out, 5, &far_buy(bid, "f-4"), now_ms())
            .unwrap();
        assert_eq!(ask(&mut ws, &out).await.status, 200);
    })
    .await;
    let report = sim.stop();
    assert_eq!(report.orders_rejected, 2);
    assert_eq!(report.ws_dropped, 2);
}
