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
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;

use rt_core::Nanos;
use rt_manifest::model::FlightRecorder;
use rt_manifest::Manifest;

use crate::record::{self, Meta, RecordError, Rotation, Writer};

/// Messages the queue between a feed and its writer holds (about 2 minutes of a busy
/// Binance stream); beyond it frames are counted as dropped, never waited for.
const QUEUE: usize = 1 << 16;

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
    let writer = Writer::open(&exchange_dir(cfg, exchange), meta, rotation)?;
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
    mut writer: Writer,
    rx: &Receiver<Rec>,
    budget: u64,
    dropped: &AtomicU64,
) -> Summary {
    // The engine's log (stderr), written directly: the last lines come after housekeeping.
    let log = |line: String| eprintln!("flight recorder {name}: {line}");
    let mut out = Summary::default();
    let mut warned_drop = false;
    let mut failed = false;
    for rec in rx {
        if failed {
            continue;
        }
        let (ts, bytes, snapshot) = match &rec {
            Rec::Frame(ts, b) => (*ts, b, false),
            Rec::Snapshot(ts, b) => (*ts, b, true),
        };
        if !warned_drop && dropped.load(Ordering::Relaxed) > 0 {
            warned_drop = true;
            log("the queue was full: frames were dropped from the recording (counted)".into());
        }
        let Some((line, _)) = record::single_line(bytes) else {
            continue;
        };
        let step = writer.write_line(ts, &line, snapshot).and_then(|()| {
            if writer.rotation_due(ts) {
                rotate(&mut writer, budget, &mut out, &log)?;
            }
            Ok(())
        });
        match step {
            Ok(()) => {
                out.lines += 1;
                out.snapshots += u64::from(snapshot);
            }
            Err(e) => {
                log(format!("{e}; recording stopped (trading goes on)"));
                failed = true;
            }
        }
    }
    if !failed {
        if let Err(e) = rotate(&mut writer, budget, &mut out, &log) {
            log(format!("{e}"));
        }
    }
    out.dropped = dropped.load(Ordering::Relaxed);
    log(format!(
        "{} lines ({} snapshots) in {} files, {} deleted over the budget, {} dropped",
        out.lines, out.snapshots, out.files, out.deleted, out.dropped
    ));
    out
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
