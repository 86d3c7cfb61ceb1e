//! The sim's checksummed venues (OKX v5 public, Kraken v1 public): recorded captures replayed as
//! the venues send them, on the sim's WebSocket port at the venue's own path (OKX
//! `/ws/v5/public`, Kraken `/`).
//!
//! One replay per venue, paced by the capture's receive times at the sim's speed and started
//! again from the top when it ends (the capture's snapshots reset every book). The sim keeps
//! its own copy of every book, rebuilt from the replayed messages and verified by the venue's
//! checksum, so that a client subscribing (or resubscribing) mid-stream gets a snapshot of the
//! book as it is now, with the checksum the venue would send, and then every message after it:
//! each published message carries a sequence number taken under the same lock as the
//! snapshot, so none is missed or applied twice.
//!
//! Subscriptions, acknowledgements and errors are each venue's ([`Dialect`]: [`crate::okx`],
//! [`crate::kraken`]), and so are sequence ids where the venue sends them (OKX's `seqId` and
//! `prevSeqId`, which today's API sends and the 2022 capture predates: the sim numbers each
//! instrument's book messages). Faults, `POST /sim/books/fault?venue=okx&instrument=BTC-USDT`:
//! `kind=alter_level` (the default) alters one level's size in the next book update of that
//! instrument as sent (the sim's own book applies the message as recorded, so the checksum the
//! client receives is the venue's, and the client's rebuilt book differs from it on that very
//! message); `kind=skip_update` leaves the next update out of what is sent (its sequence id
//! spent: the client sees a gap in the ids). `GET /sim/books/status` shows the counters.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rt_core::Nanos;
use rt_venues::checksum::{CheckedBooks, TextBook};
use rt_venues::FrameReader;
use tokio::net::TcpStream;
use tokio::sync::broadcast;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use crate::{SimError, Speed};

/// Messages kept for a connection; one further behind is closed.
const CAPACITY: usize = 1 << 12;

/// The pause between the end of a capture and its replay from the top.
const LOOP_PAUSE: Duration = Duration::from_millis(100);

/// What a capture frame is to the replay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FrameInfo {
    pub instrument: String,
    pub book: bool,
    pub snapshot: bool,
    /// The venue's time of the frame (ms), where it sends one.
    pub ts_ms: Option<u64>,
}

/// A client's request, as a dialect reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Request {
    Subscribe {
        instrument: String,
        book: bool,
    },
    Unsubscribe {
        instrument: String,
        book: bool,
    },
    /// Answered at once with the text given (a pong, an error).
    Reply(String),
}

/// One venue's public protocol, as the sim speaks it.
pub(crate) trait Dialect: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// The WebSocket path the venue serves.
    fn path(&self) -> &'static str;
    /// A fresh decoder state of the venue's frames.
    fn books(&self) -> CheckedBooks;
    /// What a recorded frame is (`None`: not market data the sim replays), and applies a book
    /// message to `books`.
    fn read(&self, frame: &[u8], books: &mut CheckedBooks) -> Option<FrameInfo>;
    /// The text sent on connecting, if any.
    fn hello(&self) -> Option<String>;
    /// The client's requests in one text frame.
    fn requests(&self, text: &str, known: &BTreeSet<String>) -> Vec<Request>;
    /// The acknowledgement of a (un)subscription.
    fn ack(&self, subscribe: bool, instrument: &str, book: bool) -> String;
    /// A snapshot of `book` as the venue sends it on subscription (`seq`: its sequence id).
    fn snapshot(&self, instrument: &str, book: &TextBook, ts_ms: u64, seq: i64) -> String;
    /// `frame` (a book message) with the venue's sequence ids, if it sends them (`prev`: the
    /// instrument's previous id, -1 for a snapshot).
    fn sequence(&self, frame: String, _seq: i64, _prev: i64) -> String {
        frame
    }
    /// `frame` (a book update, already applied to `book`) with the size of one of its levels
    /// that the checksum covers altered; `None` when it has none (the next update is tried).
    fn alter(&self, frame: &[u8], book: &TextBook) -> Option<String>;
}

#[derive(Debug)]
struct Published {
    seq: u64,
    instrument: Arc<str>,
    book: bool,
    text: Utf8Bytes,
}

struct State {
    books: CheckedBooks,
    /// The last published message's number.
    seq: u64,
    ts_ms: u64,
    /// Instruments whose next book update is altered.
    alter: HashSet<String>,
    /// Instruments whose next book update is not sent.
    skip: HashSet<String>,
    /// Per instrument: the last book message's sequence id.
    seq_ids: HashMap<String, i64>,
}

#[derive(Debug, Default)]
struct Counters {
    published: AtomicU64,
    loops: AtomicU64,
    connections: AtomicU64,
    subscriptions: AtomicU64,
    unsubscriptions: AtomicU64,
    snapshots: AtomicU64,
    altered: AtomicU64,
    skipped: AtomicU64,
    lagged: AtomicU64,
}

/// One venue's replay and connections.
pub(crate) struct BookVenue {
    dialect: Box<dyn Dialect>,
    frames: Vec<(Nanos, Vec<u8>, FrameInfo)>,
    known: BTreeSet<String>,
    speed: f64,
    state: Mutex<State>,
    tx: broadcast::Sender<Arc<Published>>,
    counters: Counters,
    /// OKX order entry on these books (`okx_orders`): every replayed frame, as recorded.
    desk: std::sync::OnceLock<Arc<crate::okx_orders::OkxDesk>>,
}

impl std::fmt::Debug for BookVenue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BookVenue")
            .field("venue", &self.dialect.name())
            .field("frames", &self.frames.len())
            .finish()
    }
}

/// Every checksummed venue the sim serves.
#[derive(Debug, Default, Clone)]
pub(crate) struct BookVenues {
    venues: Vec<Arc<BookVenue>>,
}

/// The captures to serve: those `given` (venue, path), and for each manifest exchange on OKX or
/// Kraken whose `endpoints.ws` is this sim's WebSocket address `ws`, its venue's bundled capture
/// beside the exchange's metadata file (`data/okx/cryptofeed_OKX.ws.1.0`,
/// `data/kraken/cryptofeed_KRAKEN.ws.50.0`), unless given.
pub(crate) fn captures(
    manifest: &rt_manifest::Manifest,
    ws: std::net::SocketAddr,
    given: &[(String, PathBuf)],
) -> Vec<(String, PathBuf)> {
    use rt_manifest::model::Venue;
    let mut out = given.to_vec();
    for (name, ex) in &manifest.exchanges {
        let (venue, file) = match ex.venue {
            Venue::Okx => ("okx", "cryptofeed_OKX.ws.1.0"),
            Venue::Kraken => ("kraken", "cryptofeed_KRAKEN.ws.50.0"),
            _ => continue,
        };
        let served_here = crate::endpoint(name, "ws", &ex.endpoints.ws, "ws://")
            .is_ok_and(|addr| addr == ws && addr.port() != 0);
        if !served_here || out.iter().any(|(v, _)| v == venue) {
            continue;
        }
        let dir = ex
            .metadata
            .as_deref()
            .and_then(|m| Path::new(m).parent())
            .map_or_else(|| Path::new("data").join(venue), Path::to_path_buf);
        out.push((venue.to_owned(), dir.join(file)));
    }
    out
}

/// The dialect of a venue name (`okx`, `kraken`).
fn dialect(venue: &str) -> Option<Box<dyn Dialect>> {
    match venue {
        "okx" => Some(Box::new(crate::okx::Okx)),
        "kraken" => Some(Box::new(crate::kraken::Kraken)),
        _ => None,
    }
}

impl BookVenues {
    /// Loads each capture (venue name, path): its market-data frames in memory.
    pub fn load(captures: &[(String, PathBuf)], speed: Speed) -> Result<BookVenues, SimError> {
        let speed = match speed {
            Speed::Factor(x) => (x.raw() as f64 / rt_manifest::Fixed::SCALE as f64).max(1e-6),
            // Paced still: these captures are seconds long and replayed in a loop.
            Speed::Max => 1000.0,
        };
        let mut venues = Vec::new();
        for (name, path) in captures {
            let dialect = dialect(name).ok_or_else(|| SimError::Fault {
                spec: name.clone(),
                reason: "the sim replays books of okx and kraken".into(),
            })?;
            venues.push(Arc::new(BookVenue::load(dialect, path, speed)?));
        }
        Ok(BookVenues { venues })
    }

    /// Feeds the replayed books of `venue` to its order entry (`okx_orders`); `false` when
    /// the sim replays no books of that venue.
    pub fn attach_desk(&self, venue: &str, desk: Arc<crate::okx_orders::OkxDesk>) -> bool {
        self.venues
            .iter()
            .find(|v| v.dialect.name() == venue)
            .is_some_and(|v| v.desk.set(desk).is_ok())
    }

    /// The venue served at WebSocket path `path`.
    pub fn route(&self, path: &str) -> Option<Arc<BookVenue>> {
        self.venues
            .iter()
            .find(|v| v.dialect.path() == path)
            .cloned()
    }

    /// Starts every venue's replay on the current runtime.
    pub fn spawn(&self) {
        for v in &self.venues {
            tokio::spawn(Arc::clone(v).replay());
        }
    }

    /// `POST /sim/books/fault?venue=..&instrument=..`: the next book update of the instrument
    /// is sent with one level altered.
    pub fn fault(&self, query: &str) -> Result<String, String> {
        let mut venue = None;
        let mut instrument = None;
        let mut skip = false;
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some(("venue", v)) => venue = Some(v),
                Some(("instrument", v)) => instrument = Some(v.replace("%2F", "/")),
                Some(("kind", "alter_level")) | None => {}
                Some(("kind", "skip_update")) => skip = true,
                Some((k, v)) => return Err(format!("unknown parameter {k}={v}")),
            }
        }
        let (Some(venue), Some(instrument)) = (venue, instrument) else {
            return Err("venue and instrument are required".into());
        };
        let v = self
            .venues
            .iter()
            .find(|v| v.dialect.name() == venue)
            .ok_or_else(|| format!("the sim serves no {venue} books"))?;
        if !v.known.contains(&instrument) {
            return Err(format!(
                "{venue}: no instrument {instrument} in the capture"
            ));
        }
        let kind = if skip {
            v.lock().skip.insert(instrument.clone());
            "skip_update"
        } else {
            v.lock().alter.insert(instrument.clone());
            "alter_level"
        };
        Ok(format!(
            "{{\"fault\":\"{kind}\",\"venue\":\"{venue}\",\"instrument\":{}}}",
            json(&instrument)
        ))
    }

    /// `GET /sim/books/status`.
    pub fn status(&self) -> String {
        let venues: Vec<String> = self
            .venues
            .iter()
            .map(|v| {
                let c = &v.counters;
                let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
                format!(
                    "{}:{{\"published\":{},\"loops\":{},\"connections\":{},\"subscriptions\":{},\
                     \"unsubscriptions\":{},\"snapshots\":{},\"altered\":{},\"skipped\":{},\
                     \"lagged\":{}}}",
                    json(v.dialect.name()),
                    get(&c.published),
                    get(&c.loops),
                    get(&c.connections),
                    get(&c.subscriptions),
                    get(&c.unsubscriptions),
                    get(&c.snapshots),
                    get(&c.altered),
                    get(&c.skipped),
                    get(&c.lagged)
                )
            })
            .collect();
        format!("{{{}}}", venues.join(","))
    }
}

/// Alters the size of the first level of `levels` (`[[price, size, ..], ..]`) whose price is in
/// `top` and whose size is not zero: its last digit moves by one (never to a zero size).
/// `true` when one was altered.
pub(crate) fn alter_levels(levels: &mut serde_json::Value, top: &BTreeSet<Vec<u8>>) -> bool {
    let Some(levels) = levels.as_array_mut() else {
        return false;
    };
    for level in levels {
        let Some(price) = level.get(0).and_then(serde_json::Value::as_str) else {
            continue;
        };
        if !top.contains(price.as_bytes()) {
            continue;
        }
        let Some(size) = level.get(1).and_then(serde_json::Value::as_str) else {
            continue;
        };
        if !size.bytes().any(|c| matches!(c, b'1'..=b'9')) {
            continue;
        }
        let mut bytes = size.as_bytes().to_vec();
        let Some(last) = bytes.iter_mut().rev().find(|c| c.is_ascii_digit()) else {
            continue;
        };
        *last = if *last == b'9' { b'8' } else { *last + 1 };
        level[1] = serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned());
        return true;
    }
    false
}

/// `[["price","size"<tail>],..]` into `out`: a book side in a venue's JSON, best first
/// (`tail`: the venue's further fields and the closing `]`, e.g. `,"0","1"]`).
pub(crate) fn write_levels<'a>(
    out: &mut String,
    levels: impl Iterator<Item = (&'a [u8], &'a [u8])>,
    tail: &str,
) {
    out.push('[');
    for (i, (px, sz)) in levels.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("[\"");
        out.push_str(&String::from_utf8_lossy(px));
        out.push_str("\",\"");
        out.push_str(&String::from_utf8_lossy(sz));
        out.push('"');
        out.push_str(tail);
    }
    out.push(']');
}

/// `s` as a JSON string.
pub(crate) fn json(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

impl BookVenue {
    fn load(dialect: Box<dyn Dialect>, path: &Path, speed: f64) -> Result<BookVenue, SimError> {
        let mut reader = FrameReader::open(path)?;
        let mut books = dialect.books();
        let mut frames = Vec::new();
        let mut known = BTreeSet::new();
        while let Some(frame) = reader.next_frame() {
            let frame = frame?;
            if let Some(info) = dialect.read(frame.bytes, &mut books) {
                known.insert(info.instrument.clone());
                frames.push((frame.local_ns, frame.bytes.to_vec(), info));
            }
        }
        let (tx, _) = broadcast::channel(CAPACITY);
        Ok(BookVenue {
            state: Mutex::new(State {
                books: dialect.books(),
                seq: 0,
                ts_ms: 0,
                alter: HashSet::new(),
                skip: HashSet::new(),
                seq_ids: HashMap::new(),
            }),
            dialect,
            frames,
            known,
            speed,
            tx,
            counters: Counters::default(),
            desk: std::sync::OnceLock::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replays the capture in a loop, paced by its receive times.
    async fn replay(self: Arc<Self>) {
        let Some(first) = self.frames.first().map(|f| f.0) else {
            return;
        };
        let names: HashMap<&str, Arc<str>> = self
            .known
            .iter()
            .map(|k| (k.as_str(), Arc::from(k.as_str())))
            .collect();
        loop {
            let start = Instant::now();
            for (local_ns, bytes, info) in &self.frames {
                let offset = (local_ns - first).max(0) as f64 / self.speed;
                tokio::time::sleep_until(start + Duration::from_nanos(offset as u64)).await;
                let mut state = self.lock();
                // The sim's own book takes the message as recorded.
                self.dialect.read(bytes, &mut state.books);
                if let Some(desk) = self.desk.get() {
                    desk.on_frame(bytes);
                }
                if let Some(ts) = info.ts_ms {
                    state.ts_ms = ts;
                }
                let mut text = None;
                if info.book && !info.snapshot && state.alter.remove(&info.instrument) {
                    text = state
                        .books
                        .books()
                        .find(|(name, _)| *name == info.instrument)
                        .and_then(|(_, b)| self.dialect.alter(bytes, &b.book));
                    if text.is_some() {
                        self.counters.altered.fetch_add(1, Ordering::Relaxed);
                    } else {
                        state.alter.insert(info.instrument.clone());
                    }
                }
                let mut text = text.unwrap_or_else(|| String::from_utf8_lossy(bytes).into_owned());
                if info.book {
                    let last = state.seq_ids.entry(info.instrument.clone()).or_insert(0);
                    let prev = if info.snapshot { -1 } else { *last };
                    *last += 1;
                    text = self.dialect.sequence(text, *last, prev);
                    if !info.snapshot && state.skip.remove(&info.instrument) {
                        self.counters.skipped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                }
                state.seq += 1;
                let Some(instrument) = names.get(info.instrument.as_str()) else {
                    continue;
                };
                let _ = self.tx.send(Arc::new(Published {
                    seq: state.seq,
                    instrument: Arc::clone(instrument),
                    book: info.book,
                    text: Utf8Bytes::from(text),
                }));
                self.counters.published.fetch_add(1, Ordering::Relaxed);
            }
            self.counters.loops.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(LOOP_PAUSE).await;
        }
    }

    /// Serves one client connection until it closes.
    pub async fn serve(self: Arc<Self>, ws: WebSocketStream<TcpStream>) {
        self.counters.connections.fetch_add(1, Ordering::Relaxed);
        let mut rx = self.tx.subscribe();
        // (instrument, book) -> messages after this number are the connection's.
        let mut subs: HashMap<(Arc<str>, bool), u64> = HashMap::new();
        let (mut sink, mut incoming) = ws.split();
        if let Some(hello) = self.dialect.hello() {
            if sink.send(Message::text(hello)).await.is_err() {
                return;
            }
        }
        loop {
            let out: Vec<String> = tokio::select! {
                p = rx.recv() => match p {
                    Ok(p) => match subs.get(&(Arc::clone(&p.instrument), p.book)) {
                        Some(&from) if p.seq > from => {
                            if sink.send(Message::Text(p.text.clone())).await.is_err() {
                                return;
                            }
                            continue;
                        }
                        _ => continue,
                    },
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        self.counters.lagged.fetch_add(1, Ordering::Relaxed);
                        let _ = sink.close().await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                msg = incoming.next() => match msg {
                    Some(Ok(Message::Text(text))) => self.on_text(text.as_str(), &mut subs),
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => continue,
                },
            };
            for text in out {
                if sink.send(Message::text(text)).await.is_err() {
                    return;
                }
            }
        }
    }

    /// A client's text frame: its replies, in order (acks, snapshots, errors).
    fn on_text(&self, text: &str, subs: &mut HashMap<(Arc<str>, bool), u64>) -> Vec<String> {
        let mut out = Vec::new();
        for request in self.dialect.requests(text, &self.known) {
            match request {
                Request::Reply(reply) => out.push(reply),
                Request::Subscribe { instrument, book } => {
                    self.counters.subscriptions.fetch_add(1, Ordering::Relaxed);
                    out.push(self.dialect.ack(true, &instrument, book));
                    let key: Arc<str> = Arc::from(instrument.as_str());
                    let state = self.lock();
                    if book {
                        // The book as it is now, when the sim has one; otherwise the client
                        // waits for the capture's next snapshot.
                        if let Some((_, b)) = state
                            .books
                            .books()
                            .find(|(name, b)| *name == instrument && b.valid)
                        {
                            let seq = state.seq_ids.get(&instrument).copied().unwrap_or(0);
                            let snapshot =
                                self.dialect
                                    .snapshot(&instrument, &b.book, state.ts_ms, seq);
                            out.push(snapshot);
                            self.counters.snapshots.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    subs.insert((key, book), state.seq);
                }
                Request::Unsubscribe { instrument, book } => {
                    self.counters
                        .unsubscriptions
                        .fetch_add(1, Ordering::Relaxed);
                    subs.remove(&(Arc::from(instrument.as_str()), book));
                    out.push(self.dialect.ack(false, &instrument, book));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rt_venues::market::{BookNews, ChecksumMarket, MarketData};
    use rt_venues::verify::Venue;

    fn data(rel: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join(rel)
    }

    /// The replay's book of `instrument` after its first `n` frames, as a subscriber's
    /// snapshot, then the rest of the capture: every checksum matches on the client's side.
    fn snapshot_mid_stream_then_the_rest_verifies(venue: &str, rel: &str, instrument: &str) {
        let dialect = dialect(venue).unwrap();
        let v = BookVenue::load(dialect, &data(rel), 1.0).unwrap();
        let mut books = v.dialect.books();
        let n = v.frames.len() / 2;
        let mut ts = 0;
        for (_, bytes, info) in &v.frames[..n] {
            v.dialect.read(bytes, &mut books);
            ts = info.ts_ms.unwrap_or(ts);
        }
        let (_, b) = books.books().find(|(name, _)| *name == instrument).unwrap();
        let snapshot = v.dialect.snapshot(instrument, &b.book, ts, 0);
        let kind = if venue == "okx" {
            Venue::Okx
        } else {
            Venue::Kraken
        };
        let mut client = ChecksumMarket::new(kind, &[instrument]);
        let d = client
            .decode(snapshot.as_bytes(), 1, &mut |_| true)
            .unwrap();
        assert_eq!(d.book, Some((0, BookNews::Snapshot)), "{snapshot:.300}");
        let mut verified = 0;
        for (_, bytes, _) in &v.frames[n..] {
            let d = client.decode(bytes, 2, &mut |_| true).unwrap();
            if let Some((_, news)) = d.book {
                assert!(!news.broke(), "{news:?}");
                verified += u64::from(news == BookNews::Verified);
            }
        }
        assert!(verified > 5, "{verified}");
        assert_eq!(client.checks().mismatched(), 0);
    }

    #[test]
    fn an_okx_snapshot_taken_mid_stream_verifies_with_what_follows() {
        snapshot_mid_stream_then_the_rest_verifies(
            "okx",
            "data/okx/cryptofeed_OKX.ws.1.0",
            "BTC-USDT",
        );
    }

    #[test]
    fn a_kraken_snapshot_taken_mid_stream_verifies_with_what_follows() {
        snapshot_mid_stream_then_the_rest_verifies(
            "kraken",
            "data/kraken/cryptofeed_KRAKEN.ws.50.0",
            "XBT/CHF",
        );
    }

    #[test]
    fn okx_messages_carry_sequence_ids_and_a_skipped_one_is_a_gap() {
        let v = BookVenue::load(
            dialect("okx").unwrap(),
            &data("data/okx/cryptofeed_OKX.ws.1.0"),
            1.0,
        )
        .unwrap();
        let mut client = ChecksumMarket::new(Venue::Okx, &["BTC-USDT"]);
        let mut seq = 0;
        let mut updates = 0;
        for (_, bytes, info) in &v.frames {
            if !info.book || info.instrument != "BTC-USDT" {
                continue;
            }
            let prev = if info.snapshot { -1 } else { seq };
            seq += 1;
            let text = v
                .dialect
                .sequence(String::from_utf8_lossy(bytes).into_owned(), seq, prev);
            assert!(text.ends_with(&format!(",\"prevSeqId\":{prev},\"seqId\":{seq}}}]}}")));
            updates += u32::from(!info.snapshot);
            if updates == 5 {
                continue; // not sent
            }
            let d = client.decode(text.as_bytes(), 1, &mut |_| true).unwrap();
            let news = d.book.unwrap().1;
            if updates == 6 {
                assert_eq!(news, BookNews::Gap);
                assert_eq!(client.checks().gaps, 1);
                return;
            }
            assert!(!news.broke(), "{news:?}");
        }
        panic!("too few updates");
    }

    #[test]
    fn an_altered_level_is_found_on_that_message() {
        for (venue, rel, instrument) in [
            ("okx", "data/okx/cryptofeed_OKX.ws.1.0", "BTC-USDT"),
            ("kraken", "data/kraken/cryptofeed_KRAKEN.ws.50.0", "XBT/CHF"),
        ] {
            let v = BookVenue::load(dialect(venue).unwrap(), &data(rel), 1.0).unwrap();
            let kind = if venue == "okx" {
                Venue::Okx
            } else {
                Venue::Kraken
            };
            let mut client = ChecksumMarket::new(kind, &[instrument]);
            let mut books = v.dialect.books();
            let mut altered = false;
            for (k, (_, bytes, info)) in v.frames.iter().enumerate() {
                v.dialect.read(bytes, &mut books);
                let text = (k > 3 && info.book && !info.snapshot && info.instrument == instrument)
                    .then(|| {
                        let (_, b) = books.books().find(|(n, _)| *n == instrument).unwrap();
                        v.dialect.alter(bytes, &b.book)
                    })
                    .flatten();
                let frame = text.as_deref().map_or(&bytes[..], str::as_bytes);
                let d = client.decode(frame, 1, &mut |_| true).unwrap();
                if text.is_some() {
                    assert_eq!(d.book, Some((0, BookNews::Mismatch)), "{venue}: {text:?}");
                    altered = true;
                    break;
                }
                assert!(!d.book.is_some_and(|b| b.1.broke()), "{venue}");
            }
            assert!(altered, "{venue}");
        }
    }
}
