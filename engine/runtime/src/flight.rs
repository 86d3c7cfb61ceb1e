//! The flight recorder: the market data a live engine actually consumed, recorded as captures.
//!
//! With `engine.flight_recorder` in the manifest, each feed hands every raw frame it receives
//! (before decoding, with its local receive time) and every REST depth snapshot it fetched to a
//! [`Tap`]: one copy of the bytes and a non-blocking send into a bounded queue. A writer thread
//! of its own per exchange (`flight-<exchange>`) writes them with the recorder's
//! [`Writer`](crate::record::Writer) in the capture format of `data/` under
//! `<dir>/<exchange>/`: gzip text files rotated at `file_mb`, each finished file listed in
//! `manifest.json` with its hash, the oldest deleted beyond `budget_mb`. The feed never waits
//! for the disk: when the queue is full the frame is not recorded, counted, and logged.
//!
//! A recording replays through the same decoder and book sync as `data/` captures. Unlike
//! `rt-engine record`, a rotation asks for no snapshot (that would cost the trading engine
//! request weight): a file begins where the previous one ended, so a recording replays from its
//! first snapshot on; once the budget has deleted the oldest files, replay starts at the next
//! snapshot the engine fetched (on a reconnect or a gap). The order side of a live run (intents,
//! acknowledgements, fills, cancels, with their times) is the journal next to it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;

use rt_core::flightlog::Entry;
use rt_core::Nanos;
use rt_manifest::model::FlightRecorder;
use rt_manifest::Manifest;

use crate::record::{self, Meta, RecordError, Rotation, Writer};

/// Messages the queue between a feed and its writer holds (about 2 minutes of a busy
/// Binance stream); beyond it frames are counted as dropped, never waited for.
const QUEUE: usize = 1 << 16;

/// gzip level of the recordings: the fastest. Measured with `tap_cost` on the bundled
/// capture (2 vCPU, loaded): level 1 costs the writer thread 3.9 us a line against 20.3 us at
/// the default 6, for a file 1.56x larger; on a 2-core host the writer competes with the hot
/// threads for CPU, so its CPU is what counts.
pub const LEVEL: u32 = 1;

/// One thing to record.
enum Rec {
    Frame(Nanos, Vec<u8>),
    Snapshot(Nanos, Vec<u8>),
}

/// A feed's end of the flight recorder.
#[derive(Debug, Clone)]
pub struct Tap {
    tx: SyncSender<Rec>,
    symbols: Arc<[String]>,
    dropped: Arc<AtomicU64>,
}

impl Tap {
    /// A raw frame as received at `local_ns`: copied and queued, or counted as dropped.
    #[inline]
    pub fn frame(&self, frame: &[u8], local_ns: Nanos) {
        self.send(Rec::Frame(local_ns, frame.to_vec()));
    }

    /// Symbol number `symbol`'s REST snapshot body, fetched at `local_ns`.
    pub fn snapshot(&self, symbol: usize, body: &[u8], local_ns: Nanos) {
        let line = record::snapshot_line(&self.symbols, symbol, body).into_owned();
        self.send(Rec::Snapshot(local_ns, line));
    }

    #[inline]
    fn send(&self, rec: Rec) {
        match self.tx.try_send(rec) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// What a writer thread did, for the log at the end.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub lines: u64,
    pub snapshots: u64,
    pub files: u64,
    pub deleted: u64,
    pub dropped: u64,
}

/// The directory of `exchange`'s recordings.
pub fn exchange_dir(cfg: &FlightRecorder, exchange: &str) -> PathBuf {
    Path::new(&cfg.dir).join(exchange)
}

/// Starts the writer of exchange `exchange` (its `symbols` in the decoder's order): opens the
/// recording directory (an error here is the caller's to report; the engine trades on) and
/// returns the feed's tap and the thread, which ends when every tap is dropped.
pub fn start(
    manifest: &Manifest,
    cfg: &FlightRecorder,
    exchange: &str,
    symbols: &[String],
) -> Result<(Tap, JoinHandle<Summary>), RecordError> {
    let ex = manifest.exchanges.get(exchange);
    let meta = Meta {
        exchange: exchange.to_owned(),
        venue: ex.map(|e| record::json_name(&e.venue)).unwrap_or_default(),
        market: ex.map(|e| record::json_name(&e.market)).unwrap_or_default(),
        symbols: symbols.to_vec(),
        deployment: manifest.deployment.name.clone(),
        engine_id: manifest.engine.id.clone(),
        manifest_sha256: manifest.content_sha256.clone(),
    };
    let mib = 1u64 << 20;
    let rotation = Rotation {
        max_bytes: Some(u64::from(cfg.file_mb) * mib),
        max_age_ns: None,
    };
    let budget = u64::from(cfg.budget_mb) * mib;
    let writer = Writer::open(&exchange_dir(cfg, exchange), meta, rotation)?.with_level(LEVEL);
    let (tx, rx) = sync_channel(QUEUE);
    let dropped = Arc::new(AtomicU64::new(0));
    let tap = Tap {
        tx,
        symbols: symbols.into(),
        dropped: dropped.clone(),
    };
    let name = exchange.to_owned();
    let handle = std::thread::Builder::new()
        .name(format!("flight-{name}"))
        .spawn(move || write_all(&name, writer, &rx, budget, &dropped))
        .map_err(|source| RecordError::Io {
            path: PathBuf::from(format!("flight-{exchange}")),
            source,
        })?;
    Ok((tap, handle))
}

/// The writer thread: records until every tap is gone, then finishes the open file.
fn write_all(
    name: &str,
    writer: Writer,
    rx: &Receiver<Rec>,
    budget: u64,
    dropped: &AtomicU64,
) -> Summary {
    // The engine's log (stderr), written directly: the last lines come after housekeeping.
    let log = |line: String| eprintln!("flight recorder {name}: {line}");
    let mut w = Rotating::new(writer, budget, &log);
    let mut warned_drop = false;
    drain_polling(rx, |rec| {
        let (ts, bytes, snapshot) = match &rec {
            Rec::Frame(ts, b) => (*ts, b, false),
            Rec::Snapshot(ts, b) => (*ts, b, true),
        };
        if !warned_drop && dropped.load(Ordering::Relaxed) > 0 {
            warned_drop = true;
            log("the queue was full: frames were dropped from the recording (counted)".into());
        }
        if let Some((line, _)) = record::single_line(bytes) {
            w.write(ts, &line, snapshot);
        }
    });
    let out = w.finish(dropped);
    log(format!(
        "{} lines ({} snapshots) in {} files, {} deleted over the budget, {} dropped",
        out.lines, out.snapshots, out.files, out.deleted, out.dropped
    ));
    out
}

/// How long a writer sleeps when its queue is empty. Writers poll instead of blocking in
/// `recv`, so that a hot thread's send never has to wake one (a futex call: microseconds on
/// a busy 2-core host, measured in `tap_cost`).
const POLL: std::time::Duration = std::time::Duration::from_millis(2);

/// Runs `each` on everything `rx` receives until every sender is gone, sleeping [`POLL`]
/// whenever it is empty.
fn drain_polling<T>(rx: &Receiver<T>, mut each: impl FnMut(T)) {
    loop {
        match rx.try_recv() {
            Ok(item) => each(item),
            Err(TryRecvError::Empty) => std::thread::sleep(POLL),
            Err(TryRecvError::Disconnected) => return,
        }
    }
}

/// A writer that rotates and prunes as it goes, and stops (logged once) at its first error:
/// a recording that fails costs the recording, never the trading.
struct Rotating<'a> {
    writer: Writer,
    budget: u64,
    out: Summary,
    failed: bool,
    log: &'a dyn Fn(String),
}

impl<'a> Rotating<'a> {
    fn new(writer: Writer, budget: u64, log: &'a dyn Fn(String)) -> Rotating<'a> {
        Rotating {
            writer,
            budget,
            out: Summary::default(),
            failed: false,
            log,
        }
    }

    fn write(&mut self, ts: Nanos, line: &[u8], snapshot: bool) {
        if self.failed {
            return;
        }
        let step = self.writer.write_line(ts, line, snapshot).and_then(|()| {
            if self.writer.rotation_due(ts) {
                rotate(&mut self.writer, self.budget, &mut self.out, self.log)?;
            }
            Ok(())
        });
        match step {
            Ok(()) => {
                self.out.lines += 1;
                self.out.snapshots += u64::from(snapshot);
            }
            Err(e) => {
                (self.log)(format!("{e}; recording stopped (trading goes on)"));
                self.failed = true;
            }
        }
    }

    /// Finishes the open file; the totals, with the drops counted.
    fn finish(mut self, dropped: &AtomicU64) -> Summary {
        if !self.failed {
            if let Err(e) = rotate(&mut self.writer, self.budget, &mut self.out, self.log) {
                (self.log)(format!("{e}"));
            }
        }
        self.out.dropped = dropped.load(Ordering::Relaxed);
        self.out
    }
}

/// Closes the open file (listing it) and deletes the oldest beyond the budget.
fn rotate(
    writer: &mut Writer,
    budget: u64,
    out: &mut Summary,
    log: &dyn Fn(String),
) -> Result<(), RecordError> {
    if let Some(entry) = writer.close()? {
        out.files += 1;
        log(record::closed_line(entry));
    }
    for name in writer.prune(budget)? {
        out.deleted += 1;
        log(format!("deleted {name} (over the budget)"));
    }
    Ok(())
}

/// Entries the queue between the strategy thread and its writer holds; beyond it entries are
/// counted as dropped (and `appliance parity` refuses the recording as incomplete).
const DECISIONS_QUEUE: usize = 1 << 17;

/// The directory of the decision log (`rt_core::flightlog`) in a recording.
pub const DECISIONS_DIR: &str = "strategy";

/// The manifest the engine ran, copied beside the decision log (what `appliance parity`
/// replays with by default).
pub const ENGINE_MANIFEST: &str = "engine.manifest.json";

/// The strategy thread's end of the decision log: a non-blocking send of a small `Copy`
/// entry; a full queue drops it, counted.
#[derive(Debug, Clone)]
pub struct DecisionTap {
    tx: SyncSender<(Nanos, Entry)>,
    dropped: Arc<AtomicU64>,
    /// Fills the engine restored from its journal before this run (a recording that does not
    /// start flat: parity says so).
    pub restored_fills: u64,
}

impl DecisionTap {
    /// One entry at `ts` (see `rt_core::flightlog` for what `ts` is of each kind).
    #[inline]
    pub fn push(&self, ts: Nanos, entry: Entry) {
        if self.tx.try_send((ts, entry)).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Starts the decision log's writer (`flight-strategy`) under `<dir>/strategy/`, after copying
/// the manifest the engine runs beside it. The thread ends when the tap is dropped.
pub fn start_decisions(
    manifest: &Manifest,
    manifest_text: &str,
    cfg: &FlightRecorder,
    restored_fills: u64,
) -> Result<(DecisionTap, JoinHandle<Summary>), RecordError> {
    let dir = Path::new(&cfg.dir).join(DECISIONS_DIR);
    let meta = Meta {
        exchange: DECISIONS_DIR.to_owned(),
        venue: String::new(),
        market: String::new(),
        symbols: vec!["decisions".to_owned()],
        deployment: manifest.deployment.name.clone(),
        engine_id: manifest.engine.id.clone(),
        manifest_sha256: manifest.content_sha256.clone(),
    };
    let rotation = Rotation {
        max_bytes: Some(u64::from(cfg.file_mb) << 20),
        max_age_ns: None,
    };
    let budget = u64::from(cfg.budget_mb) << 20;
    let writer = Writer::open(&dir, meta, rotation)?.with_level(LEVEL);
    let copy = dir.join(ENGINE_MANIFEST);
    std::fs::write(&copy, manifest_text)
        .map_err(|source| RecordError::Io { path: copy, source })?;
    let (tx, rx) = sync_channel(DECISIONS_QUEUE);
    let dropped = Arc::new(AtomicU64::new(0));
    let tap = DecisionTap {
        tx,
        dropped: dropped.clone(),
        restored_fills,
    };
    let handle = std::thread::Builder::new()
        .name("flight-strategy".into())
        .spawn(move || write_decisions(writer, &rx, budget, &dropped))
        .map_err(|source| RecordError::Io {
            path: dir.clone(),
            source,
        })?;
    Ok((tap, handle))
}

/// The decision log's writer: drains the queue (polling), ends (and finishes the open file)
/// when the tap is gone.
fn write_decisions(
    writer: Writer,
    rx: &Receiver<(Nanos, Entry)>,
    budget: u64,
    dropped: &AtomicU64,
) -> Summary {
    let log = |line: String| eprintln!("flight recorder {DECISIONS_DIR}: {line}");
    let mut w = Rotating::new(writer, budget, &log);
    let mut text = String::with_capacity(256);
    let mut warned_drop = false;
    drain_polling(rx, |(ts, entry)| {
        if !warned_drop && dropped.load(Ordering::Relaxed) > 0 {
            warned_drop = true;
            log("the queue was full: entries were dropped (counted); parity will refuse it".into());
        }
        text.clear();
        entry.write(&mut text);
        w.write(ts, text.as_bytes(), false);
    });
    let out = w.finish(dropped);
    log(format!(
        "{} entries in {} files, {} deleted over the budget, {} dropped",
        out.lines, out.files, out.deleted, out.dropped
    ));
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::clock::now_ns;

    /// The tap's cost on the feed thread, with the writer running: `cargo test -p rt-engine
    /// --release tap_cost -- --ignored --nocapture` (a measurement, not a check: ignored).
    /// Real frames of the bundled capture, one every 20 us (a busy stream's pace on a fast
    /// day), timed one by one; the figures are the calls' own time (two clock reads removed).
    #[test]
    #[ignore = "a measurement; run by hand"]
    fn tap_cost() {
        use rt_venues::recording::FrameReader;
        let m: Manifest = serde_json::from_str(include_str!(
            "../../../tests/contract/example.manifest.json"
        ))
        .unwrap();
        let data = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../data/binance/spot_btcusdt_20240808.gz");
        let mut reader = FrameReader::open(&data).unwrap();
        let mut frames = Vec::new();
        while let Some(Ok(f)) = reader.next_frame() {
            frames.push((f.local_ns, f.bytes.to_vec()));
            if frames.len() == 100_000 {
                break;
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let cfg = FlightRecorder {
            dir: dir.path().display().to_string(),
            file_mb: 64,
            budget_mb: 1024,
        };
        let (tap, writer) = start(&m, &cfg, "bench", &["BTCUSDT".to_owned()]).unwrap();
        let mut clock = Vec::with_capacity(frames.len());
        let mut took = Vec::with_capacity(frames.len());
        for (ns, frame) in &frames {
            let due = now_ns() + 20_000;
            let t0 = now_ns();
            let t1 = now_ns();
            clock.push(t1 - t0);
            let t0 = now_ns();
            tap.frame(frame, *ns);
            let t1 = now_ns();
            took.push(t1 - t0);
            while now_ns() < due {
                std::hint::spin_loop();
            }
        }
        drop(tap);
        let summary = writer.join().unwrap();
        // The strategy thread's side: one `md` entry per market event at the same pace.
        let (log, log_writer) = start_decisions(&m, "{}", &cfg, 0).unwrap();
        let mut pushed = Vec::with_capacity(frames.len());
        for (ns, _) in &frames {
            let due = now_ns() + 20_000;
            let t0 = now_ns();
            log.push(*ns, Entry::Md { exchange: 0 });
            let t1 = now_ns();
            pushed.push(t1 - t0);
            while now_ns() < due {
                std::hint::spin_loop();
            }
        }
        drop(log);
        let logged = log_writer.join().unwrap();
        pushed.sort_unstable();
        // The writer thread's own work per line, by gzip level.
        for level in [6, LEVEL] {
            let out = tempfile::tempdir().unwrap();
            let meta = record::Meta {
                exchange: "bench".into(),
                venue: String::new(),
                market: String::new(),
                symbols: vec!["BTCUSDT".into()],
                deployment: String::new(),
                engine_id: String::new(),
                manifest_sha256: String::new(),
            };
            let mut w = Writer::open(out.path(), meta, Rotation::default())
                .unwrap()
                .with_level(level);
            let t0 = std::time::Instant::now();
            for (ns, frame) in &frames {
                w.write_line(*ns, frame, false).unwrap();
            }
            let bytes = w.close().unwrap().unwrap().bytes;
            let per_line = t0.elapsed().as_nanos() / frames.len() as u128;
            println!("writer at gzip level {level}: {per_line} ns a line, {bytes} bytes");
        }
        clock.sort_unstable();
        took.sort_unstable();
        let q = |v: &[i64], p: f64| v[((v.len() - 1) as f64 * p) as usize];
        let base = q(&clock, 0.5);
        println!(
            "tap.frame: {} frames, p50 {} ns, p90 {} ns, p99 {} ns, p99.9 {} ns (clock reads {} ns \
             removed); recorded {} lines, dropped {}",
            frames.len(),
            q(&took, 0.5) - base,
            q(&took, 0.9) - base,
            q(&took, 0.99) - base,
            q(&took, 0.999) - base,
            base,
            summary.lines,
            summary.dropped
        );
        println!(
            "decisions.push(md): p50 {} ns, p90 {} ns, p99 {} ns, p99.9 {} ns; logged {}, dropped {}",
            q(&pushed, 0.5) - base,
            q(&pushed, 0.9) - base,
            q(&pushed, 0.99) - base,
            q(&pushed, 0.999) - base,
            logged.lines,
            logged.dropped
        );
    }
}
