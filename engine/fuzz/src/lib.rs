//! Fuzz targets for everything the engine decodes from outside: one function per target, taking
//! the fuzzer's bytes, that must never panic, hang or abort whatever the bytes are.
//!
//! `make fuzz` builds `src/bin/<target>.rs` with AFL++ (cargo-afl, stable Rust) and runs each
//! target for a bounded time from its seed corpus under `corpus/<target>/` (real frames cut from
//! the captures, see `corpus/README.md`). `tests/corpus.rs` runs every target over its corpus
//! under `cargo test`, so the harness cannot rot.
//!
//! A target that reads a stream (market data, user stream, journal) takes several messages in one
//! input, one per line, through one decoder, so state carried from message to message (symbol
//! tables, checked books, sequence ids) is fuzzed too.

use std::fmt::Debug;
use std::hint::black_box;
use std::path::{Path, PathBuf};

use rt_venues::binance::signing::{KeyType, Verifier, RFC8032_PEM};
use rt_venues::binance::SpotExecution;
use rt_venues::binance_orders as orders;
use rt_venues::checksummed::ChecksumDecoder;
use rt_venues::execution::{ExecutionClient, Operation, PrivateEvent};
use rt_venues::verify::Venue;
use rt_venues::Decoder;

/// The journal reader is part of the engine binary (`rt-engine`, no library target): its source
/// is compiled in here as it is, and only [`journal`] uses it.
#[allow(dead_code)]
#[path = "../../runtime/src/journal.rs"]
mod engine_journal;

/// A fuzz target: must return (not panic, hang or abort) whatever the bytes.
pub type Target = fn(&[u8]);

/// Every target, by name (the names of `src/bin/*.rs` and of the corpus directories).
pub const TARGETS: [(&str, Target); 8] = [
    ("binance_market", binance_market),
    ("binance_user_stream", binance_user_stream),
    ("binance_rest", binance_rest),
    ("okx", okx),
    ("okx_orders", okx_orders),
    ("kraken", kraken),
    ("manifest", manifest),
    ("journal", journal),
];

fn lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    data.split(|&b| b == b'\n')
}

/// Binance market data (`rt_venues::binance`): each line a WebSocket frame (combined stream or
/// bare; depth, trade, bookTicker, ...), then the whole input as a REST depth snapshot.
pub fn binance_market(data: &[u8]) {
    let mut decoder = Decoder::new();
    for (i, frame) in lines(data).enumerate() {
        if let Ok(true) = decoder.decode_in_place(frame, i as i64) {
            black_box(decoder.event());
        }
    }
    let _ = black_box(decoder.decode_snapshot(data, 0, 0));
    black_box(decoder.counters());
}

/// Binance user data stream (`rt_venues::binance_orders`): each line an event. An execution
/// report that parses is written back as the sim writes it and must read back the same.
pub fn binance_user_stream(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let client = SpotExecution::new(None, None);
    for frame in text.split('\n') {
        black_box(orders::is_listen_key_expired(frame));
        let parsed = orders::ExecutionReport::parse(frame);
        // The gateway reads the stream through the execution boundary: it must see an order
        // update exactly where the report parses, and fail exactly where it does not.
        let event = client.private_event(frame);
        match (&parsed, &event) {
            (Ok(Some(_)), Ok(PrivateEvent::Order(_)))
            | (Ok(None), Ok(PrivateEvent::StreamExpired | PrivateEvent::Other))
            | (Err(_), Err(_)) => {}
            _ => panic!("the execution boundary read {event:?} where the report is {parsed:?}"),
        }
        if let Ok(Some(report)) = parsed {
            let again = orders::ExecutionReport::parse(&report.to_json());
            assert_eq!(again, Ok(Some(report)), "an execution report round trip");
        }
    }
}

/// OKX order entry (`rt_venues::okx::execution`): each line a private-stream frame (`orders`
/// pushes, login and subscribe answers) through the client the gateway uses, and the whole
/// input as every REST answer it reads (classified for each operation, then read as an order,
/// open orders, fills, balances, instruments, a cancel batch). An `orders` push the client
/// reads is one it could have been sent: its client id escapes back to the one it carries.
pub fn okx_orders(data: &[u8]) {
    use rt_venues::okx::execution as okx;
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let client = okx::OkxExecution::new(None, [("BTCUSDT".to_owned(), "BTC-USDT".to_owned())]);
    for frame in text.split('\n') {
        black_box(client.handshake_reply(frame));
        let updates = match client.private_event(frame) {
            Ok(PrivateEvent::Order(u)) => vec![u],
            Ok(PrivateEvent::Orders(us)) => us,
            _ => Vec::new(),
        };
        for u in updates {
            let wire = client.wire_client_id(&u.client_id);
            assert_eq!(
                okx::decode_client_id(&wire),
                u.client_id,
                "a client id round trip"
            );
        }
    }
    for op in [
        Operation::NewOrder {
            kind: rt_core::OrderKind::PostOnly,
        },
        Operation::Cancel,
        Operation::CancelAll,
        Operation::Query,
        Operation::Read,
    ] {
        for status in [200, 401, 429, 500] {
            black_box(client.classify(op, status, text, Some(1)));
        }
    }
    black_box(client.order_state(text).ok());
    black_box(client.open_order_ids(text).ok());
    black_box(client.trades(text).ok());
    black_box(client.balance_list(text).ok());
    black_box(client.symbol_filters(text).ok());
    black_box(client.cancelled_count(text));
}

/// Binance REST bodies (`rt_venues::binance_orders`): the first byte picks the endpoint, the rest
/// is the body. Responses the engine reads (orders, cancels, open orders, trades, listen keys,
/// errors), and the requests the sim venue reads (query strings, signed bodies). A response
/// that parses is written back as the sim writes it and must read back the same.
pub fn binance_rest(data: &[u8]) {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    let Ok(body) = std::str::from_utf8(body) else {
        return;
    };
    match which.wrapping_sub(b'a') % 14 {
        0 => {
            black_box(orders::NewOrderResponse::parse(body).ok());
        }
        1 => round_trip(
            body,
            orders::CancelResponse::parse,
            orders::CancelResponse::to_json,
            "a cancel response",
        ),
        2 => round_trip(
            body,
            orders::CancelResponse::parse_many,
            |cancels: &Vec<_>| orders::CancelResponse::format_many(cancels),
            "a cancel-all response",
        ),
        3 => round_trip(
            body,
            orders::parse_open_orders,
            |open: &Vec<_>| orders::format_open_orders(open),
            "an open-orders response",
        ),
        4 => round_trip(body, orders::parse_order, orders::order_json, "an order"),
        5 => round_trip(
            body,
            orders::parse_my_trades,
            |trades: &Vec<_>| orders::my_trades_json(trades),
            "a my-trades response",
        ),
        6 => round_trip(
            body,
            orders::parse_listen_key,
            |key: &String| orders::format_listen_key(key),
            "a listen key",
        ),
        7 => {
            black_box(orders::ApiError::parse(body).ok());
            // The gateway's classification of an error body, for each kind of request.
            let client = SpotExecution::new(None, None);
            for status in [400, 401, 418, 429, 503] {
                for op in [Operation::Cancel, Operation::Query, Operation::Read] {
                    black_box(client.classify(op, status, body, Some(1)));
                }
            }
        }
        8 => {
            if let Ok(order) = orders::NewOrder::parse(body) {
                black_box(order.to_query());
            }
        }
        9 => {
            black_box(orders::CancelOrder::parse(body).ok());
        }
        10 => {
            black_box(orders::QueryOrder::parse(body).ok());
        }
        11 => {
            black_box(orders::MyTradesQuery::parse(body).ok());
        }
        12 => {
            let (query, form) = body.split_once('\n').unwrap_or((body, ""));
            if let Ok(signed) = orders::SignedParams::split(query, form) {
                // Both kinds of key: hex HMAC, and percent-encoded base64 Ed25519.
                for key in signature_keys() {
                    black_box(signed.verify(key).ok());
                }
            }
        }
        _ => {
            black_box(orders::parse_decimal(body, "fuzz").ok());
        }
    }
}

/// The keys the signed-request arm verifies with: an HMAC secret, and RFC 8032's Ed25519 test
/// key (decoded once: the fuzzer runs the target millions of times).
fn signature_keys() -> &'static [Verifier] {
    static KEYS: std::sync::OnceLock<Vec<Verifier>> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        let mut keys = vec![Verifier::Hmac(b"secret".to_vec())];
        keys.extend(Verifier::new(KeyType::Ed25519, RFC8032_PEM).ok());
        keys
    })
}

/// What `parse` accepts, written back with `write` (as the sim venue writes it), must parse to
/// the same value.
fn round_trip<T: PartialEq + Debug>(
    body: &str,
    parse: fn(&str) -> Result<T, orders::OrderError>,
    write: fn(&T) -> String,
    what: &str,
) {
    if let Ok(value) = parse(body) {
        assert_eq!(parse(&write(&value)), Ok(value), "{what}: a round trip");
    }
}

fn checked_stream(venue: Venue, data: &[u8]) {
    let mut decoder = ChecksumDecoder::new(venue);
    for (i, frame) in lines(data).enumerate() {
        if let Ok(true) = decoder.decode_in_place(frame, i as i64) {
            black_box(decoder.event());
            while decoder.next_pending() {
                black_box(decoder.event());
            }
        }
    }
    black_box(decoder.counters());
}

/// OKX v5 public data (`rt_venues::okx`, through `checksummed`): each line a frame; books are
/// applied and checked against their checksums, trades handed out one by one.
pub fn okx(data: &[u8]) {
    checked_stream(Venue::Okx, data);
}

/// Kraken v1 public data (`rt_venues::kraken`, through `checksummed`): each line a frame, as for
/// [`okx`]; the whole input is also read as an `AssetPairs` answer.
pub fn kraken(data: &[u8]) {
    checked_stream(Venue::Kraken, data);
    if let Ok(text) = std::str::from_utf8(data) {
        black_box(rt_venues::kraken::asset_pairs(text).ok());
    }
}

/// This process's own directory under the temporary directory (`make fuzz` points `TMPDIR`
/// into `target/` and removes it after each target; see [`remove_scratch`]).
fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rt-fuzz-{}", std::process::id()));
    if !dir.is_dir() {
        let _ = std::fs::create_dir_all(&dir);
    }
    dir
}

/// Removes this process's scratch directory (the corpus test, when done).
pub fn remove_scratch() {
    let _ = std::fs::remove_dir_all(scratch());
}

/// The manifest loader (`rt_manifest`): the input as a manifest, then, when it is a JSON object,
/// again with its `content_sha256` made right, so the shape and the semantic rules are reached
/// (a mutated document almost never carries its own hash).
pub fn manifest(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The files a manifest names (models) are looked for where there are none.
    let base = Path::new("rt-fuzz-no-such-directory");
    black_box(rt_manifest::load_with_base(text, base).ok());
    let Ok(mut value) = serde_json::from_str::<serde_json::Value>(text) else {
        return;
    };
    let hash = rt_manifest::content_sha256(&value);
    if let Some(object) = value.as_object_mut() {
        object.insert("content_sha256".to_owned(), serde_json::Value::String(hash));
        black_box(rt_manifest::from_value_with_base(value, base).ok());
    }
}

/// The journal reader (`engine/runtime/src/journal.rs`): the input as `journal.jsonl`. A
/// journal that reads is opened for appending (which cuts a torn last line) and must then
/// read back the same, without a torn line.
pub fn journal(data: &[u8]) {
    let dir = scratch();
    let path = dir.join(engine_journal::FILE_NAME);
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let Ok(first) = engine_journal::recover(&dir) else {
        return;
    };
    if engine_journal::Journal::open(&dir, rt_manifest::model::Fsync::Never, 0).is_err() {
        return;
    }
    let again = engine_journal::recover(&dir).map(|r| (r.torn_tail, r.records, r.fills));
    assert!(
        matches!(&again, Ok((false, records, fills)) if *records == first.records && *fills == first.fills),
        "the journal reads differently once its tail is repaired: {again:?}"
    );
}
