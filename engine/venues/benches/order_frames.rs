//! Building and signing one Binance Spot order, ready for the wire, on one thread:
//!
//! 1. **REST** (`SpotExecution::new_order`, what the gateway sends over REST): the query string
//!    built, HMAC-SHA256 keyed from the secret and run over it, the request's path and key
//!    header allocated.
//! 2. **WebSocket API** (`WsApiOrders::place`, what it sends with `order_entry: websocket`): the
//!    `order.place` frame written into one reused buffer, the HMAC's key schedule (and the
//!    payload's constant `apiKey=<key>&` head) computed once and cloned per order.
//! 3. Both signed with an Ed25519 key (base64 signatures), and the WebSocket API frame on a
//!    connection logged on with `session.logon`: no `apiKey`, no signature.
//!
//! Each sample is one order (a LIMIT buy with a 20-character client id, prices moving by a
//! tick); p50/p99 over 200,000 orders after 20,000 warm-up ones, plain `std::time::Instant`.
//! Run with `cargo bench -p rt-venues --bench order_frames`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Instant;

use rt_core::{OrderKind, Price, Qty, Side};
use rt_venues::binance::signing::{KeyType, Signer, RFC8032_PEM};
use rt_venues::binance::ws_api::WsApiOrders;
use rt_venues::binance::SpotExecution;
use rt_venues::binance_orders::StpMode;
use rt_venues::execution::{
    Credentials, ExecutionClient, FrameOrderEntry, NewOrderSpec, PositionSide,
};

const WARM: usize = 20_000;
const SAMPLES: usize = 200_000;

fn spec(i: usize, client_id: &str) -> NewOrderSpec<'_> {
    NewOrderSpec {
        symbol: "BTCUSDT",
        client_id,
        side: Side::Buy,
        kind: OrderKind::Limit,
        price: Price(6_183_763_000_000 + (i as i64 % 100) * 1_000_000),
        qty: Qty(100_000),
        reduce_only: false,
        position_side: PositionSide::Both,
    }
}

fn report(name: &str, mut ns: Vec<u64>) {
    ns.sort_unstable();
    let at = |q: f64| ns[((ns.len() as f64 * q) as usize).min(ns.len() - 1)];
    println!(
        "{name:<30} p50 {:>6} ns   p99 {:>6} ns   ({} orders)",
        at(0.50),
        at(0.99),
        ns.len()
    );
}

/// A made-up 64-character key (the shape of Binance's) with a made-up HMAC secret, or RFC
/// 8032's published Ed25519 test key: never a real one.
fn signer(key_type: KeyType) -> Signer {
    let creds = Credentials {
        key: "k".repeat(64),
        secret: match key_type {
            KeyType::Hmac => "s".repeat(64),
            KeyType::Ed25519 => RFC8032_PEM.to_owned(),
        },
        passphrase: None,
        key_type,
    };
    Signer::new(&creds).unwrap()
}

/// One way of building an order for the wire.
enum Build {
    Rest(SpotExecution),
    Ws(Box<WsApiOrders>),
}

fn main() {
    let client_ids: Vec<String> = (0..1000).map(|i| format!("rt0-9f3a-{i:011}")).collect();
    let stp = Some(StpMode::ExpireMaker);
    let mut logged_on = WsApiOrders::new(Some(&signer(KeyType::Ed25519)), stp);
    let mut frame = String::with_capacity(512);
    assert!(logged_on.logon(&mut frame, 0, 1));
    // The venue's answer, read as the gateway reads it.
    let accepted = logged_on
        .answer(r#"{"id":0,"status":200,"result":{}}"#, 1)
        .unwrap();
    logged_on.logged_on(&accepted).unwrap();
    let mut builds = [
        (
            "REST query + HMAC",
            Build::Rest(SpotExecution::new(Some(signer(KeyType::Hmac)), stp)),
        ),
        (
            "WebSocket API frame + HMAC",
            Build::Ws(Box::new(WsApiOrders::new(
                Some(&signer(KeyType::Hmac)),
                stp,
            ))),
        ),
        (
            "REST query + Ed25519",
            Build::Rest(SpotExecution::new(Some(signer(KeyType::Ed25519)), stp)),
        ),
        (
            "WebSocket API frame + Ed25519",
            Build::Ws(Box::new(WsApiOrders::new(
                Some(&signer(KeyType::Ed25519)),
                stp,
            ))),
        ),
        ("WebSocket API, logged on", Build::Ws(Box::new(logged_on))),
    ];
    let now = 1_765_000_000_000u64;
    println!("one Binance Spot order, built (and signed) for the wire:");
    for (name, build) in &mut builds {
        let mut ns = Vec::with_capacity(SAMPLES);
        for i in 0..WARM + SAMPLES {
            let id = &client_ids[i % client_ids.len()];
            let order = spec(i, id);
            let t = Instant::now();
            match build {
                Build::Rest(rest) => {
                    let request = rest.new_order(black_box(&order), now + i as u64).unwrap();
                    black_box(&request);
                }
                Build::Ws(ws) => {
                    ws.place(&mut frame, i as u64, black_box(&order), now + i as u64)
                        .unwrap();
                    black_box(&frame);
                }
            }
            let took = t.elapsed();
            if i >= WARM {
                ns.push(took.as_nanos() as u64);
            }
        }
        report(name, ns);
    }
    println!("frame: {} bytes: {frame}", frame.len());
}
