//! Binance's WebSocket API order frames are built without allocating: `order.place` and
//! `order.cancel` written into a reused buffer, signed with the pre-keyed HMAC or the decoded
//! Ed25519 key, or (an Ed25519 key after `session.logon`) not signed at all, counted by a
//! global allocator.
//!
//! In its own test binary; only the test's own thread is counted (the test harness's threads
//! allocate when they please).
#![allow(unsafe_code, clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use rt_core::{OrderKind, Price, Qty, Side};
use rt_venues::binance::signing::{KeyType, Signer, RFC8032_PEM};
use rt_venues::binance::ws_api::WsApiOrders;
use rt_venues::binance_orders::StpMode;
use rt_venues::execution::{Credentials, FrameOrderEntry, NewOrderSpec, PositionSide};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Set on the thread whose allocations are counted.
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    if COUNTED.try_with(Cell::get).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn orders(key_type: KeyType) -> WsApiOrders {
    // A made-up 64-character key and secret (the shape of Binance's), never a real one.
    let creds = Credentials {
        key: "k".repeat(64),
        secret: match key_type {
            KeyType::Hmac => "s".repeat(64),
            KeyType::Ed25519 => RFC8032_PEM.to_owned(),
        },
        passphrase: None,
        key_type,
    };
    WsApiOrders::new(
        Some(&Signer::new(&creds).unwrap()),
        Some(StpMode::ExpireMaker),
    )
}

#[test]
fn order_frames_do_not_allocate() {
    // HMAC and Ed25519 keys signing each request, and an Ed25519 key logged on.
    let mut logged_on = orders(KeyType::Ed25519);
    let mut logon = String::new();
    assert!(logged_on.logon(&mut logon, 1, 1));
    // The venue's answer, read as the gateway reads it.
    let ok = logged_on
        .answer(r#"{"id":1,"status":200,"result":{}}"#, 1)
        .unwrap();
    logged_on.logged_on(&ok).unwrap();
    for (what, orders) in [
        ("hmac", orders(KeyType::Hmac)),
        ("ed25519", orders(KeyType::Ed25519)),
        ("logged on", logged_on),
    ] {
        without_allocating(what, orders);
    }
}

fn without_allocating(what: &str, mut orders: WsApiOrders) {
    let ids: Vec<String> = (0..100).map(|i| format!("rt0-{i:08}")).collect();
    let mut frame = String::with_capacity(1024);
    let kinds = [
        OrderKind::Limit,
        OrderKind::Ioc,
        OrderKind::PostOnly,
        OrderKind::Market,
    ];
    let spec = |i: usize| NewOrderSpec {
        symbol: "BTCUSDT",
        client_id: &ids[i % ids.len()],
        side: if i % 2 == 0 { Side::Buy } else { Side::Sell },
        kind: kinds[i % kinds.len()],
        price: Price(6_183_763_000_000 + i as i64 * 1_000_000),
        qty: Qty(100_000 + i as i64),
        reduce_only: false,
        position_side: PositionSide::Both,
    };
    // Warm: the reused buffers reach their size.
    for (i, id) in ids.iter().enumerate().take(8) {
        orders.place(&mut frame, i as u64, &spec(i), 1).unwrap();
        orders.cancel(&mut frame, i as u64, "BTCUSDT", id, 1);
    }
    COUNTED.with(|c| c.set(true));
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for i in 0..10_000 {
        let now = 1_765_000_000_000 + i as u64;
        orders.place(&mut frame, i as u64, &spec(i), now).unwrap();
        orders.cancel(&mut frame, i as u64, "BTCUSDT", &ids[i % ids.len()], now);
    }
    let allocated = ALLOCATIONS.load(Ordering::Relaxed) - before;
    COUNTED.with(|c| c.set(false));
    assert_eq!(
        allocated, 0,
        "{what}: {allocated} allocations in 10,000 orders and cancels"
    );
    assert!(frame.contains("\"method\":\"order.cancel\""), "{frame}");
    assert_eq!(
        frame.contains("\"signature\""),
        what != "logged on",
        "{frame}"
    );
}
