//! The sim's Binance WebSocket API (`/ws-api/v3`) over real loopback sockets: signed
//! `order.place`, `order.status` and `order.cancel` served by the same matcher as REST, refused
//! signatures and keys, the reject fault's codes with REST's statuses, and a `drop` fault.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use futures_util::SinkExt;
use rt_core::{OrderKind, Price, Qty, Side};
use rt_sim::SimOptions;
use rt_venues::binance::ws_api::{WsAnswer, WsApiOrders, WS_API_PATH};
use rt_venues::binance_orders::{parse_order, ApiError, OrderStatus};
use rt_venues::execution::{Credentials, FrameOrderEntry, NewOrderSpec, PositionSide};
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

fn far_buy(bid: Price, client_id: &str) -> NewOrderSpec<'_> {
    NewOrderSpec {
        symbol: SYMBOL,
        client_id,
        side: Side::Buy,
        kind: OrderKind::Limit,
        price: Price(bid.0 - 1_000 * 100_000_000),
        qty: Qty(100_000),
        reduce_only: false,
        position_side: PositionSide::Both,
    }
}

#[tokio::test]
async fn signed_orders_are_placed_queried_and_cancelled_over_the_ws_api() {
    let keys = keys("wsapi");
    let sim = Running::start(&manifest("5", 0, Some(&keys)), SimOptions::default());
    let creds = Credentials {
        key: keys.api_key.clone(),
        secret: keys.secret.clone(),
        passphrase: None,
    };
    bounded(async {
        let bid = touch(sim.rest).await;
        let mut ws = sim.ws(WS_API_PATH).await;
        let mut orders = WsApiOrders::new(Some(&creds), None);
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
        WsApiOrders::new(Some(&wrong), None)
            .place(&mut out, 5, &far_buy(bid, "ws-2"), now_ms())
            .unwrap();
        let refused = ask(&mut ws, &out).await;
        assert_eq!(refused.status, 400);
        assert_eq!(ApiError::parse(refused.body()).unwrap().code, -1022);
        let other = Credentials {
            key: "someone-else".into(),
            ..creds.clone()
        };
        WsApiOrders::new(Some(&other), None)
            .place(&mut out, 6, &far_buy(bid, "ws-2"), now_ms())
            .unwrap();
        let refused = ask(&mut ws, &out).await;
        assert_eq!(refused.status, 401);
        assert_eq!(ApiError::parse(refused.body()).unwrap().code, -2015);
        // Unsigned: refused.
        WsApiOrders::new(None, None)
            .place(&mut out, 7, &far_buy(bid, "ws-2"), now_ms())
            .unwrap();
        let refused = ask(&mut ws, &out).await;
        assert_eq!(ApiError::parse(refused.body()).unwrap().code, -2014);
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
