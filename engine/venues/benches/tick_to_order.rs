//! Tick-to-order in process, on one thread: a recorded Binance frame in memory -> decoded
//! (`Decoder`) -> book sync, market maker and pre-trade risk (`Trader::on_event`, the live
//! engine's driver with its exchange external) -> the order signed as Binance's REST query
//! (`SpotExecution::new_order`, the gateway's call through the execution boundary: query string +
//! HMAC-SHA256, the request path and the key header). This is the engine's hot path without its
//! two ring hops (`cargo bench -p rt-ring --bench hop`: ~50 ns each on a quiet machine) and
//! without the network.
//!
//! The venue is instant and outside the timed region: every order is acknowledged and every
//! cancel confirmed before the next frame, so the market maker keeps quoting. Samples are the
//! frames that produced at least one new order; p50/p99 over all of them, several passes.
//! Goal (DESIGN.md section 5): p50 <= 5 us, p99 <= 20 us.
//!
//! The same market maker is measured twice more, the orders built differently: REST queries
//! signed with an Ed25519 key (RFC 8032's test key), and WebSocket API `order.place` frames on
//! a connection logged on with `session.logon` (no signature per order; one reused buffer).
//!
//! With `ORT_DYLIB_PATH` set, the same is measured for the model strategy (the shipped
//! models/direction_lgbm through rt-model: features, one ONNX inference per decision, IOC
//! orders, cooldown 0) and printed beside it.
//!
//! **Two venues in one engine** (issue 16): the `paper_multi` deployment's manifest (compiled by
//! `make bench` into `build/paper_multi/`, or named by `RT_BENCH_MULTI_MANIFEST`): a market
//! maker quoting BTC-USDT on OKX with its fair value from Binance's BTCUSDT book. The bundled
//! Binance and OKX captures are merged by receive time, OKX's rebased onto Binance's start as a
//! backtest does (`rt_venues::replay`); each frame is decoded by its venue's market-data
//! implementation as the live feed does (`market::for_exchange`; OKX's checksum verified on
//! every book message), handed to the core with its exchange, and the orders signed by the
//! venue's execution client from the order-entry factory (`order_entry::for_exchange`: OKX's
//! REST body and HMAC-SHA256/base64 signature). Printed beside the single-venue figure.
//! Run with `cargo bench -p rt-venues --bench tick_to_order`.
//!
//! Frames back to back keep the book, the decoder and the signer in cache; a live engine's
//! frames arrive milliseconds apart with other work between them.
//! `RT_BENCH_EVICT_MB=N` writes N MiB between frames (outside the timed region; one pass) to
//! measure that cold path. 2026-12-06, AMD EPYC 2 vCPU (L2 1 MiB a core, L3 32 MiB), quiet,
//! logged-on WebSocket API: back to back p50 5.5 us (decode 2.7, book + strategy + risk 1.8,
//! building 0.9); with 4 MiB evicted p50 11.0 us (decode 3.3, book + strategy + risk 4.5,
//! building 2.7).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use rt_core::{Exec, ExecKind, MarketEvent, OrderKind, Qty, Trader, TraderConfig, VenueRequest};
use rt_manifest::model::Venue;
use rt_venues::binance::signing::{KeyType, Signer, RFC8032_PEM};
use rt_venues::binance::ws_api::WsApiOrders;
use rt_venues::binance::SpotExecution;
use rt_venues::execution::{
    Credentials, ExecutionClient, FrameOrderEntry, NewOrderSpec, PositionSide,
    VenueRequest as Signed,
};
use rt_venues::market::{self, MarketData};
use rt_venues::{order_entry, Decoder, FrameReader};

const PASSES: usize = 5;

#[path = "../tests/support/model_manifest.rs"]
mod support;

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or("unknown CPU", str::trim)
        .to_owned();
    let cores = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    format!("{model}, {cores} logical CPUs")
}

fn pct(sorted: &[u64], q: f64) -> u64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let manifest_text =
        std::fs::read_to_string(root.join("tests/contract/example.manifest.json")).unwrap();
    let manifest = rt_manifest::load(&manifest_text).unwrap();
    let (exchange, ex) = manifest.exchanges.iter().next().unwrap();
    let symbols: Vec<String> = ex.instruments.keys().cloned().collect();

    let frames = read_frames(&root.join("data/binance/spot_btcusdt_20240808.gz"));
    let secret = b"bench-only-secret-not-a-credential";
    println!("machine: {}", machine());
    println!(
        "data: {} frames of spot_btcusdt_20240808.gz, {PASSES} passes; manifest: example ({exchange})",
        frames.len()
    );
    let market_maker = || {
        let mut config = TraderConfig::from_manifest(&manifest);
        config.max_records = 0;
        Trader::new(config).unwrap()
    };
    let hmac = Transport::Rest(rest_client(KeyType::Hmac, secret));
    let mm = measure(&frames, &symbols, &hmac, &mut &market_maker);
    mm.print("market maker (example)");
    // The same orders signed with an Ed25519 key (REST), and as WebSocket API frames on a
    // connection authenticated by `session.logon` (Ed25519): no signature per order.
    let ed25519 = Transport::Rest(rest_client(KeyType::Ed25519, secret));
    measure(&frames, &symbols, &ed25519, &mut &market_maker)
        .print("market maker, REST query signed with an Ed25519 key");
    let logged_on = Transport::WsApiLoggedOn(Box::new(RefCell::new(logged_on_frames())));
    measure(&frames, &symbols, &logged_on, &mut &market_maker)
        .print("market maker, WebSocket API order.place after session.logon (no signature)");
    two_venues(&root, secret);

    // The model strategy: the shipped ONNX model through rt-model, when a library is given.
    if std::env::var_os(rt_model::ENV_VAR).is_none() {
        println!(
            "model_taker: skipped (set {} to an ONNX Runtime library)",
            rt_model::ENV_VAR
        );
        return;
    }
    let model = support::model_manifest(&root, 0);
    let measured = measure(&frames, &symbols, &hmac, &mut || {
        let mut config = TraderConfig::from_manifest(&model);
        config.max_records = 0;
        let mut models = rt_model::manifest_loader(root.clone(), None);
        Trader::with_models(config, &mut models).unwrap()
    });
    measured.print("model_taker (models/direction_lgbm, 11 features, IOC)");
}

fn read_frames(path: &Path) -> Vec<(i64, Vec<u8>)> {
    let mut frames = Vec::new();
    let mut reader = FrameReader::open(path).unwrap();
    while let Some(f) = reader.next_frame() {
        let f = f.unwrap();
        frames.push((f.local_ns, f.bytes.to_vec()));
    }
    frames
}

/// One exchange's decoder, as its live feed has it: Binance's capture holds its REST snapshot
/// as a frame (the spot `Decoder` reads both), OKX's sends its snapshot on the stream.
enum VenueDecoder {
    Binance(Decoder),
    Stream(Box<dyn MarketData>),
}

/// The `paper_multi` engine: Binance's book as the signal, OKX's BTC-USDT quoted (see the
/// module documentation). Skipped, saying why, without its compiled manifest.
fn two_venues(root: &Path, secret: &[u8]) {
    let path = std::env::var_os("RT_BENCH_MULTI_MANIFEST").map_or_else(
        || root.join("build/paper_multi/local.manifest.json"),
        PathBuf::from,
    );
    let Ok(text) = std::fs::read_to_string(&path) else {
        println!(
            "two venues: skipped ({} not found: `appliance compile deployment=paper_multi` writes it)",
            path.display()
        );
        return;
    };
    let manifest = rt_manifest::load_with_base(&text, root).unwrap();
    let mut streams: Vec<Vec<(i64, Vec<u8>)>> = Vec::new();
    let mut clients: Vec<Arc<dyn ExecutionClient>> = Vec::new();
    for ex in manifest.exchanges.values() {
        let capture = match ex.venue {
            Venue::Okx => "data/okx/cryptofeed_OKX.ws.1.0",
            _ => "data/binance/spot_btcusdt_20240808.gz",
        };
        streams.push(read_frames(&root.join(capture)));
        let credentials = Credentials {
            key: "bench-key".to_owned(),
            secret: String::from_utf8_lossy(secret).into_owned(),
            passphrase: Some("bench-passphrase".to_owned()),
            key_type: KeyType::Hmac,
        };
        clients.push(order_entry::for_exchange(ex, Some(credentials)).unwrap());
    }
    // Rebased as a backtest rebases: the stream that starts last keeps its times.
    let reference = streams
        .iter()
        .filter_map(|s| s.first())
        .map(|f| f.0)
        .max()
        .unwrap();
    let mut merged: Vec<(i64, usize, &[u8])> = Vec::new();
    for (x, stream) in streams.iter().enumerate() {
        let offset = stream.first().map_or(0, |f| reference - f.0);
        merged.extend(stream.iter().map(|(t, b)| (t + offset, x, b.as_slice())));
    }
    merged.sort_by_key(|&(t, x, _)| (t, x));
    let names: Vec<String> = manifest.exchanges.keys().cloned().collect();
    println!(
        "data: {} frames of spot_btcusdt_20240808.gz and cryptofeed_OKX.ws.1.0 merged (OKX rebased), {PASSES} passes; manifest: paper_multi ({})",
        merged.len(),
        names.join(" + ")
    );
    let mut m = Measured::default();
    for _ in 0..PASSES {
        let mut config = TraderConfig::from_manifest(&manifest);
        config.max_records = 0;
        let mut bt = Trader::new(config).unwrap();
        bt.enable_event_log();
        let mut decoders = Vec::new();
        for (x, ex) in manifest.exchanges.values().enumerate() {
            bt.set_external(x).unwrap();
            let symbols: Vec<String> = ex.instruments.keys().cloned().collect();
            bt.set_symbols(x, &symbols).unwrap();
            decoders.push(match ex.venue {
                Venue::Okx | Venue::Kraken => VenueDecoder::Stream(market::for_exchange(ex)),
                _ => VenueDecoder::Binance(Decoder::with_symbols(&symbols)),
            });
        }
        let symbols: Vec<String> = bt.instruments().iter().map(|i| i.symbol.clone()).collect();
        let mut requests: Vec<VenueRequest> = Vec::new();
        let mut events = Vec::new();
        let mut wire: Vec<Signed> = Vec::new();
        for &(local_ns, x, bytes) in &merged {
            let t0 = Instant::now();
            match &mut decoders[x] {
                VenueDecoder::Binance(d) => {
                    let Ok(Some(ev)) = d.decode(bytes, local_ns) else {
                        continue;
                    };
                    bt.on_event(x, &ev);
                }
                VenueDecoder::Stream(d) => {
                    let mut each = |ev: &MarketEvent<'_>| {
                        bt.on_event(x, ev);
                        true
                    };
                    if d.decode(bytes, local_ns, &mut each).is_err() {
                        continue;
                    }
                }
            }
            bt.drain_requests(&mut requests);
            let t_decided = Instant::now();
            let new = sign_orders(&requests, &symbols, &|x| &*clients[x], &mut wire);
            m.record(t0, t_decided, new);
            black_box(&wire);
            wire.clear();
            instant_venue(&mut bt, local_ns, &mut requests);
            bt.drain_events(&mut events);
            events.clear();
        }
    }
    m.print("two venues (paper_multi: quotes on OKX, fair value from Binance)");
}

/// The core's new order as the execution boundary takes it.
fn new_order_spec<'a>(
    symbol: &'a str,
    client_id: &'a str,
    request: &rt_core::SimRequest,
) -> NewOrderSpec<'a> {
    NewOrderSpec {
        symbol,
        client_id,
        side: request.side,
        kind: request.kind,
        price: request.price,
        qty: request.qty,
        reduce_only: false,
        position_side: PositionSide::Both,
    }
}

/// Signs every new order of `requests` as its exchange's client does (`client(exchange)`),
/// into `wire`; how many there were. The gateway's work for an order, without the network.
fn sign_orders<'a>(
    requests: &[VenueRequest],
    symbols: &[String],
    client: &dyn Fn(usize) -> &'a dyn ExecutionClient,
    wire: &mut Vec<Signed>,
) -> u64 {
    let mut new = 0;
    for r in requests {
        if let VenueRequest::New {
            exchange,
            instrument,
            request,
        } = r
        {
            let client_id = format!("paper_1-{}", request.order_id);
            let order = new_order_spec(&symbols[*instrument as usize], &client_id, request);
            wire.push(
                client(*exchange)
                    .new_order(&order, 1_723_161_253_937)
                    .unwrap(),
            );
            new += 1;
        }
    }
    new
}

/// Writes every new order of `requests` as a WebSocket API `order.place` frame into `frame`
/// (the gateway writes one, sends it, writes the next); how many there were.
fn frame_orders(
    requests: &[VenueRequest],
    symbols: &[String],
    orders: &mut WsApiOrders,
    frame: &mut String,
) -> u64 {
    let mut new = 0;
    for r in requests {
        if let VenueRequest::New {
            instrument,
            request,
            ..
        } = r
        {
            let client_id = format!("paper_1-{}", request.order_id);
            let order = new_order_spec(&symbols[*instrument as usize], &client_id, request);
            orders
                .place(frame, request.order_id, &order, 1_723_161_253_937)
                .unwrap();
            black_box(&*frame);
            new += 1;
        }
    }
    new
}

/// The instant venue (not timed): a new order is acknowledged (an IOC expired), a cancel
/// confirmed and an amendment made at once.
fn instant_venue(bt: &mut Trader, local_ns: i64, requests: &mut Vec<VenueRequest>) {
    for r in requests.drain(..) {
        let (order_id, kind) = match r {
            VenueRequest::New { request, .. } if request.kind == OrderKind::Ioc => {
                (request.order_id, ExecKind::Expired)
            }
            VenueRequest::New { request, .. } => (request.order_id, ExecKind::Accepted),
            VenueRequest::Cancel { order_id, .. } => (order_id, ExecKind::Cancelled),
            VenueRequest::Amend {
                order_id,
                price,
                qty,
                ..
            } => (order_id, ExecKind::Amended { price, qty }),
        };
        bt.on_exec(
            local_ns,
            Exec {
                ts: local_ns,
                order_id,
                kind,
                leaves: Qty::ZERO,
            },
        );
    }
    bt.drain_requests(requests);
    requests.clear();
}

/// Latencies of one strategy over every pass, in ns.
#[derive(Default)]
struct Measured {
    samples: Vec<u64>,
    per_frame: Vec<u64>,
    signing: Vec<u64>,
    /// Of the frames that led to orders: decoding, book + strategy + risk, and the bytes
    /// decoded.
    decoding: Vec<u64>,
    deciding: Vec<u64>,
    sizes: Vec<u64>,
    orders: u64,
}

impl Measured {
    /// One frame, decoded from `t0`, decided at `t_decided` with `new` orders signed since.
    fn record(&mut self, t0: Instant, t_decided: Instant, new: u64) {
        let dt = t0.elapsed().as_nanos() as u64;
        self.per_frame.push(dt);
        if new > 0 {
            self.samples.push(dt);
            self.signing.push(t_decided.elapsed().as_nanos() as u64);
            self.orders += new;
        }
    }

    /// Of a frame that led to requests: book + strategy + risk, from `t_decoded` to
    /// `t_decided`.
    fn record_deciding(&mut self, t_decoded: Instant, t_decided: Instant, requests: usize) {
        if requests > 0 {
            self.deciding
                .push((t_decided - t_decoded).as_nanos() as u64);
        }
    }

    /// Of a frame that led to orders (`new` > 0): decoded at `t_decoded`, `bytes` long.
    fn record_decoding(&mut self, t0: Instant, t_decoded: Instant, bytes: usize, new: u64) {
        if new > 0 {
            self.decoding.push((t_decoded - t0).as_nanos() as u64);
            self.sizes.push(bytes as u64);
        }
    }

    fn print(mut self, what: &str) {
        self.samples.sort_unstable();
        self.per_frame.sort_unstable();
        self.signing.sort_unstable();
        if self.samples.is_empty() {
            println!("{what}: no frame produced an order");
            return;
        }
        println!(
            "{what}: tick-to-order (frame -> signed order bytes), {} samples, {} orders: p50 {} ns, p99 {} ns, max {} ns (goal p50 <= 5000, p99 <= 20000)",
            self.samples.len(),
            self.orders,
            pct(&self.samples, 0.5),
            pct(&self.samples, 0.99),
            self.samples[self.samples.len() - 1]
        );
        println!(
            "  of which building and signing the orders' queries: p50 {} ns, p99 {} ns",
            pct(&self.signing, 0.5),
            pct(&self.signing, 0.99)
        );
        if !self.decoding.is_empty() {
            self.decoding.sort_unstable();
            self.sizes.sort_unstable();
            println!(
                "  of which decoding those frames: p50 {} ns, p99 {} ns (frames of p50 {} bytes, p99 {} bytes)",
                pct(&self.decoding, 0.5),
                pct(&self.decoding, 0.99),
                pct(&self.sizes, 0.5),
                pct(&self.sizes, 0.99)
            );
        }
        if !self.deciding.is_empty() {
            self.deciding.sort_unstable();
            println!(
                "  of which book + strategy + risk on the frames that led to requests: p50 {} ns, p99 {} ns",
                pct(&self.deciding, 0.5),
                pct(&self.deciding, 0.99)
            );
        }
        println!(
            "  every frame (decode + book + strategy + risk): p50 {} ns, p99 {} ns",
            pct(&self.per_frame, 0.5),
            pct(&self.per_frame, 0.99)
        );
    }
}

/// How the orders leave: signed REST queries (HMAC or Ed25519), or WebSocket API frames on a
/// logged-on connection (one reused buffer).
enum Transport {
    Rest(SpotExecution),
    WsApiLoggedOn(Box<RefCell<(WsApiOrders, String)>>),
}

/// The key travels in a header; the secret (an HMAC secret, or RFC 8032's test key) signs. No
/// self-trade prevention mode, as the bench measured before the execution boundary (the
/// gateway sends the configured one).
fn rest_client(key_type: KeyType, secret: &[u8]) -> SpotExecution {
    SpotExecution::new(
        Some(Signer::new(&bench_credentials(key_type, secret)).unwrap()),
        None,
    )
}

fn bench_credentials(key_type: KeyType, secret: &[u8]) -> Credentials {
    Credentials {
        key: "bench-key".to_owned(),
        secret: match key_type {
            KeyType::Hmac => String::from_utf8_lossy(secret).into_owned(),
            KeyType::Ed25519 => RFC8032_PEM.to_owned(),
        },
        passphrase: None,
        key_type,
    }
}

/// WebSocket API frames of an Ed25519 key whose `session.logon` was answered.
fn logged_on_frames() -> (WsApiOrders, String) {
    let signer = Signer::new(&bench_credentials(KeyType::Ed25519, b"")).unwrap();
    let mut orders = WsApiOrders::new(Some(&signer), None);
    let mut frame = String::with_capacity(512);
    assert!(orders.logon(&mut frame, 0, 1_723_161_253_937));
    // The venue's answer, read as the gateway reads it.
    let ok = orders
        .answer(r#"{"id":0,"status":200,"result":{}}"#, 1)
        .unwrap();
    orders.logged_on(&ok).unwrap();
    (orders, frame)
}

/// Replays the frames `PASSES` times through a fresh backtest from `make`, its exchange
/// external and the venue instant (untimed): a new order is acknowledged (an IOC expired) and a
/// cancel confirmed before the next frame.
/// `RT_BENCH_EVICT_MB=N`: N MiB written between frames, outside the timed region, so that
/// each frame meets caches as a live engine's does (its frames arrive milliseconds apart,
/// with the venue connection, the kernel and other processes running between them).
fn evictor() -> Option<Vec<u8>> {
    let mb: usize = std::env::var("RT_BENCH_EVICT_MB").ok()?.parse().ok()?;
    (mb > 0).then(|| vec![0u8; mb << 20])
}

fn evict(buffer: &mut Option<Vec<u8>>) {
    if let Some(b) = buffer {
        for line in b.chunks_mut(64) {
            line[0] = line[0].wrapping_add(1);
        }
        black_box(&b);
    }
}

fn measure(
    frames: &[(i64, Vec<u8>)],
    symbols: &[String],
    transport: &Transport,
    make: &mut dyn FnMut() -> Trader,
) -> Measured {
    let mut m = Measured::default();
    let mut eviction = evictor();
    // Evicting is slow: one pass then.
    let passes = if eviction.is_some() { 1 } else { PASSES };
    for _ in 0..passes {
        let mut bt = make();
        bt.set_external(0).unwrap();
        bt.enable_event_log();
        let mut decoder = Decoder::with_symbols(symbols);
        bt.set_symbols(0, decoder.symbols()).unwrap();
        let mut requests: Vec<VenueRequest> = Vec::new();
        let mut events = Vec::new();
        let mut wire: Vec<Signed> = Vec::new();
        for (local_ns, bytes) in frames {
            evict(&mut eviction);
            let t0 = Instant::now();
            let Ok(Some(ev)) = decoder.decode(bytes, *local_ns) else {
                continue;
            };
            let t_decoded = Instant::now();
            bt.on_event(0, &ev);
            bt.drain_requests(&mut requests);
            let t_decided = Instant::now();
            m.record_deciding(t_decoded, t_decided, requests.len());
            let new = match transport {
                Transport::Rest(client) => sign_orders(&requests, symbols, &|_| client, &mut wire),
                Transport::WsApiLoggedOn(ws) => {
                    let (orders, frame) = &mut *ws.borrow_mut();
                    frame_orders(&requests, symbols, orders, frame)
                }
            };
            m.record(t0, t_decided, new);
            m.record_decoding(t0, t_decoded, bytes.len(), new);
            black_box(&wire);
            wire.clear();
            instant_venue(&mut bt, *local_ns, &mut requests);
            bt.drain_events(&mut events);
            events.clear();
        }
    }
    m
}
