//! Helpers of the loopback tests: a test manifest, a running sim, an HTTP client, a WebSocket
//! client and a book synced the way a Binance client syncs it.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use futures_util::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rt_core::{BookSync, DiffOutcome, MarketEvent, OrderKind, Price, Qty, Side, SyncRule};
use rt_manifest::Manifest;
use rt_sim::{Sim, SimOptions, SimReport};
use rt_venues::binance::signing::{KeyType, Signer, RFC8032_PEM};
use rt_venues::execution::{Credentials, NewOrderSpec, PositionSide};
use rt_venues::Decoder;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const EXCHANGE: &str = "binance_spot";
pub const SYMBOL: &str = "BTCUSDT";
pub const STREAMS: &str = "btcusdt@depth@100ms/btcusdt@trade/btcusdt@bookTicker";

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn capture() -> PathBuf {
    repo_root().join("data/binance/spot_btcusdt_20240808.gz")
}

/// Test credentials, written to files and referenced as `file:` (never literal).
pub struct Keys {
    pub api_key: String,
    /// The HMAC secret, or the Ed25519 private key's PEM.
    pub secret: String,
    pub key_type: KeyType,
    dir: PathBuf,
}

impl Keys {
    /// As the engine resolves them.
    pub fn credentials(&self) -> Credentials {
        Credentials {
            key: self.api_key.clone(),
            secret: self.secret.clone(),
            passphrase: None,
            key_type: self.key_type,
        }
    }

    pub fn signer(&self) -> Signer {
        Signer::new(&self.credentials()).unwrap()
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn keys(tag: &str) -> Keys {
    write_keys(tag, KeyType::Hmac, format!("testsecret-{tag}-0123456789"))
}

/// An Ed25519 key: RFC 8032's published test key, never an account's.
pub fn ed25519_keys(tag: &str) -> Keys {
    write_keys(tag, KeyType::Ed25519, RFC8032_PEM.to_owned())
}

fn write_keys(tag: &str, key_type: KeyType, secret: String) -> Keys {
    let dir = std::env::temp_dir().join(format!("rt-sim-test-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let keys = Keys {
        api_key: format!("testkey{tag}"),
        secret,
        key_type,
        dir,
    };
    std::fs::write(keys.dir.join("key"), &keys.api_key).unwrap();
    std::fs::write(keys.dir.join("secret"), &keys.secret).unwrap();
    keys
}

/// The contract example, turned into a paper deployment on a sim venue bound to port 0,
/// re-hashed the way rt-manifest hashes.
pub fn manifest(speed: &str, latency_us: u64, keys: Option<&Keys>) -> Manifest {
    let text =
        std::fs::read_to_string(repo_root().join("tests/contract/example.manifest.json")).unwrap();
    let mut v: Value = serde_json::from_str(&text).unwrap();
    v["deployment"]["mode"] = json!("paper");
    let ex = &mut v["exchanges"][EXCHANGE];
    ex["venue"] = json!("sim");
    ex["endpoints"] = json!({"ws": "ws://127.0.0.1:0", "rest": "http://127.0.0.1:0"});
    ex["sim"] = json!({
        "capture": capture().display().to_string(),
        "speed": speed,
        "latency_us": latency_us,
    });
    ex["credentials"] = match keys {
        Some(k) => json!({
            "api_key": format!("file:{}", k.dir.join("key").display()),
            "api_secret": format!("file:{}", k.dir.join("secret").display()),
            "key_type": k.key_type,
        }),
        None => Value::Null,
    };
    v["content_sha256"] = json!(rt_manifest::content_sha256(&v));
    rt_manifest::load(&serde_json::to_string(&v).unwrap()).unwrap()
}

/// A sim running on its own thread.
pub struct Running {
    pub ws: SocketAddr,
    pub rest: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<SimReport, rt_sim::SimError>>>,
}

impl Running {
    pub fn start(manifest: &Manifest, opts: SimOptions) -> Running {
        let sim = Sim::bind(manifest, EXCHANGE, opts).unwrap();
        let (ws, rest) = (sim.ws_addr(), sim.rest_addr());
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || sim.run(flag));
        Running {
            ws,
            rest,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the sim and returns its counters (bounded: it must stop within 5 s).
    pub fn stop(mut self) -> SimReport {
        self.stop.store(true, Ordering::Relaxed);
        self.join()
    }

    /// Waits for a sim that ends by itself (exit_at_end), at most `limit`.
    pub fn wait(mut self, limit: Duration) -> SimReport {
        let thread = self.thread.take().unwrap();
        let deadline = std::time::Instant::now() + limit;
        while !thread.is_finished() {
            assert!(
                std::time::Instant::now() < deadline,
                "the sim did not end in {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        thread.join().unwrap().unwrap()
    }

    fn join(&mut self) -> SimReport {
        let thread = self.thread.take().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !thread.is_finished() {
            assert!(std::time::Instant::now() < deadline, "the sim did not stop");
            std::thread::sleep(Duration::from_millis(5));
        }
        thread.join().unwrap().unwrap()
    }

    pub async fn ws(&self, path: &str) -> Ws {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{}{path}", self.ws))
            .await
            .unwrap();
        ws
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// One HTTP/1.1 request on a fresh connection: (status, body).
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path_and_query: &str,
    api_key: Option<&str>,
    body: &str,
) -> (u16, String) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path_and_query)
        .header("host", addr.to_string());
    if let Some(key) = api_key {
        req = req.header("X-MBX-APIKEY", key);
    }
    if !body.is_empty() {
        req = req.header("content-type", "application/x-www-form-urlencoded");
    }
    let req = req.body(Full::new(Bytes::from(body.to_owned()))).unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

/// The next text frame, or `None` when the connection ended (closed, dropped or failed).
pub async fn next_text(ws: &mut Ws) -> Option<String> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return Some(t.to_string()),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => continue,
        }
    }
}

/// Milliseconds since the epoch, for request timestamps.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A client's book: BookSync fed by the stream, resynced from the REST snapshot on a gap, as
/// Binance documents it.
pub struct ClientBook {
    pub sync: BookSync,
    pub decoder: Decoder,
    pub gaps: u64,
    pub applied: u64,
    pub decode_errors: u64,
    /// bookTicker checkpoints compared with the book (u == last applied diff's u).
    pub checkpoints: u64,
    pub mismatches: u64,
    /// bookTickers ahead of the book (spot's depth@100ms trails the real-time bookTicker).
    waiting: std::collections::BTreeMap<u64, rt_core::Bbo>,
}

impl ClientBook {
    pub fn new() -> ClientBook {
        ClientBook {
            sync: BookSync::new(SyncRule::Spot),
            decoder: Decoder::with_symbols(&[SYMBOL]),
            gaps: 0,
            applied: 0,
            decode_errors: 0,
            checkpoints: 0,
            mismatches: 0,
            waiting: std::collections::BTreeMap::new(),
        }
    }

    /// Takes one frame; returns the diff outcome for a depth frame.
    pub fn on_frame(&mut self, text: &str) -> Option<DiffOutcome> {
        match self.decoder.decode(text.as_bytes(), 0) {
            Ok(Some(MarketEvent::Depth(d))) => {
                let outcome = self.sync.on_diff(&d);
                match outcome {
                    DiffOutcome::Applied => {
                        self.applied += 1;
                        if let Some(b) = self.waiting.remove(&d.final_id) {
                            compare(&self.sync, &b, &mut self.checkpoints, &mut self.mismatches);
                        }
                        self.waiting = self.waiting.split_off(&d.final_id);
                    }
                    DiffOutcome::Gap => self.gaps += 1,
                    _ => {}
                }
                Some(outcome)
            }
            Ok(Some(MarketEvent::Bbo(b))) => {
                match self.sync.last_update_id() {
                    Some(last) if last == b.update_id => {
                        compare(&self.sync, &b, &mut self.checkpoints, &mut self.mismatches)
                    }
                    Some(last) if last > b.update_id => {}
                    _ => {
                        if self.waiting.len() < 10_000 {
                            self.waiting.insert(b.update_id, b);
                        }
                    }
                }
                None
            }
            Ok(_) => None,
            Err(_) => {
                self.decode_errors += 1;
                None
            }
        }
    }

    /// Fetches the REST snapshot (retrying while the sim's book is not ready) and loads it.
    pub async fn snapshot(&mut self, rest: SocketAddr) {
        for _ in 0..200 {
            let (status, body) = http(
                rest,
                "GET",
                &format!("/api/v3/depth?symbol={SYMBOL}&limit=1000"),
                None,
                "",
            )
            .await;
            if status == 200 {
                let event = self.decoder.decode_snapshot(body.as_bytes(), 0, 0).unwrap();
                let MarketEvent::Snapshot(s) = event else {
                    panic!("not a snapshot: {body}");
                };
                self.sync.on_snapshot(&s);
                return;
            }
            assert_eq!(status, 503, "{body}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no depth snapshot after 200 tries");
    }
}

/// One oracle checkpoint: the book's top against a bookTicker at the book's update id.
fn compare(sync: &BookSync, b: &rt_core::Bbo, checkpoints: &mut u64, mismatches: &mut u64) {
    *checkpoints += 1;
    let book = sync.book();
    if book.best_bid() != Some(b.bid) || book.best_ask() != Some(b.ask) {
        *mismatches += 1;
    }
}

/// Waits for `n` applied diffs (resyncing on gaps), reading `ws`.
pub async fn sync_and_apply(ws: &mut Ws, book: &mut ClientBook, rest: SocketAddr, n: u64) {
    let target = book.applied + n;
    while book.applied < target {
        let text = next_text(ws).await.expect("the stream ended");
        let outcome = book.on_frame(&text);
        // Not synced (first diff, or a gap): a snapshot taken now bridges the buffered diffs.
        if matches!(outcome, Some(DiffOutcome::Buffered | DiffOutcome::Gap)) {
            book.snapshot(rest).await;
        }
    }
}

/// A limit buy 1,000 below `bid`: it rests.
pub fn far_buy(bid: Price, client_id: &str) -> NewOrderSpec<'_> {
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
