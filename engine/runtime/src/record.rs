//! `rt-engine record`: one exchange's market data, written to capture files as received.
//!
//! The recorder drives the engine's own feed ([`crate::feed::run_with`]: the same WebSocket
//! connection, combined-stream subscription, REST snapshots on connect and on every gap, and
//! reconnects with backoff) into a [`RecordSink`] instead of the market-data ring. It runs as a
//! process of its own, never on a trading engine's hot path.
//!
//! What it writes is the format of `data/` (see data/README.md): gzip text, one line per
//! message, `<local_receive_ts_ns> <frame>`, every WebSocket frame byte for byte as received,
//! and each REST depth snapshot's body at its receipt: raw when the exchange has one symbol
//! (as in the bundled file), wrapped as `{"s":"<SYMBOL>","data":<body>}` when it has several
//! (a raw body names no symbol; the decoder reads the wrapper's `s`). A frame that holds line
//! breaks (never the case for Binance's compact JSON) has them replaced by spaces, which JSON
//! treats alike; an empty frame is skipped. Both are counted in the log.
//!
//! Files are named `<exchange>_<symbols>_<UTC start yyyymmddThhmmssZ>.gz` and rotated by
//! compressed size and/or age: when one is due, a fresh snapshot of every symbol is asked for
//! and the next file starts with it, so each file replays on its own. Every finished file
//! (gzip stream finished, fsynced) is listed in `<out>/manifest.json` with its sha256, size,
//! line count, first/last receive times, symbols, exchange, venue and the manifest's
//! `content_sha256`; the list is rewritten atomically (temp file, fsync, rename) after each
//! file, so a crash leaves at worst the file being written unlisted, never a torn manifest.
//! Entries of earlier recordings in the same directory are kept.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use flate2::write::GzEncoder;
use flate2::Compression;
use rt_core::{MarketEvent, Nanos};
use rt_manifest::Manifest;
use rt_venues::replay::iso_utc;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::clock::now_ns;
use crate::feed::{self, FeedConfig, Sink};
use crate::latency::Stages;
use crate::shared::{FeedInfo, FeedStatus};

/// The manifest of a recording directory.
pub const MANIFEST: &str = "manifest.json";
/// A file due for rotation is closed at its next frame after this long even when no snapshot
/// arrives to start the next one (a REST endpoint that keeps failing).
const ROTATE_WAIT_NS: Nanos = 30_000_000_000;
const FORMAT: &str = "gzip text, one message a line: <local_receive_ts_ns> <raw frame>";

/// Why recording failed.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a recording manifest: {reason}")]
    Manifest { path: PathBuf, reason: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RecordError + '_ {
    move |source| RecordError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What every file of a recording is of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Meta {
    pub exchange: String,
    pub venue: String,
    pub market: String,
    pub symbols: Vec<String>,
    pub deployment: String,
    pub engine_id: String,
    /// The manifest's `content_sha256`.
    pub manifest_sha256: String,
}

/// When a file is closed and the next one started (`None`: never for that reason).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rotation {
    /// Compressed bytes written.
    pub max_bytes: Option<u64>,
    /// Receive time since the file's first line.
    pub max_age_ns: Option<Nanos>,
}

/// One finished file, as `manifest.json` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileEntry {
    pub name: String,
    pub sha256: String,
    pub bytes: u64,
    pub lines: u64,
    pub snapshots: u64,
    pub first_local_ns: Nanos,
    pub last_local_ns: Nanos,
    pub first_utc: String,
    pub last_utc: String,
    #[serde(flatten)]
    pub meta: Meta,
}

/// A writer that counts and hashes the (compressed) bytes going to the file.
struct Hashing {
    file: File,
    bytes: u64,
    hash: Sha256,
}

impl Write for Hashing {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.bytes += n as u64;
        self.hash.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

struct OpenFile {
    name: String,
    path: PathBuf,
    gz: GzEncoder<Hashing>,
    lines: u64,
    snapshots: u64,
    first_ns: Nanos,
    last_ns: Nanos,
}

/// Capture files of one exchange in one directory, rotated, listed in `manifest.json`.
pub struct Writer {
    dir: PathBuf,
    meta: Meta,
    rotation: Rotation,
    current: Option<OpenFile>,
    /// Every entry of `manifest.json`: earlier recordings' (kept as they are), then ours.
    listed: Vec<Value>,
    /// This run's finished files.
    written: Vec<FileEntry>,
    line: Vec<u8>,
    /// gzip level of new files.
    level: Compression,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("dir", &self.dir)
            .field("current", &self.current.as_ref().map(|c| &c.name))
            .field("written", &self.written.len())
            .finish_non_exhaustive()
    }
}

impl Writer {
    /// Creates `dir` if needed and reads the entries an earlier recording listed there.
    pub fn open(dir: &Path, meta: Meta, rotation: Rotation) -> Result<Writer, RecordError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let path = dir.join(MANIFEST);
        let listed = match std::fs::read(&path) {
            Ok(text) => {
                let bad = |reason: String| RecordError::Manifest {
                    path: path.clone(),
                    reason,
                };
                let doc: Value = serde_json::from_slice(&text).map_err(|e| bad(e.to_string()))?;
                match doc.get("files") {
                    Some(Value::Array(files)) => files.clone(),
                    _ => return Err(bad("no `files` list".to_owned())),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io(&path)(e)),
        };
        Ok(Writer {
            dir: dir.to_owned(),
            meta,
            rotation,
            current: None,
            listed,
            written: Vec::new(),
            line: Vec::with_capacity(1 << 16),
            level: Compression::default(),
        })
    }

    /// Compresses new files at gzip `level` (0-9; the default is 6). The flight recorder
    /// writes at 1: on a small host its writer shares cores with the hot threads.
    pub fn with_level(mut self, level: u32) -> Writer {
        self.level = Compression::new(level.min(9));
        self
    }

    /// The files finished so far by this writer.
    pub fn written(&self) -> &[FileEntry] {
        &self.written
    }

    /// Appends `<ts> <frame>\n` to the open file, opening one (named after `ts`) if none is.
    /// The frame must hold no line break (see [`single_line`]).
    pub fn write_line(
        &mut self,
        ts: Nanos,
        frame: &[u8],
        snapshot: bool,
    ) -> Result<(), RecordError> {
        if self.current.is_none() {
            self.current = Some(self.create(ts)?);
        }
        let Some(file) = self.current.as_mut() else {
            return Ok(());
        };
        self.line.clear();
        self.line.extend_from_slice(ts.to_string().as_bytes());
        self.line.push(b' ');
        self.line.extend_from_slice(frame);
        self.line.push(b'\n');
        file.gz.write_all(&self.line).map_err(io(&file.path))?;
        file.lines += 1;
        file.snapshots += u64::from(snapshot);
        file.last_ns = ts;
        Ok(())
    }

    /// The open file is over its size or age limit at `now`.
    pub fn rotation_due(&self, now: Nanos) -> bool {
        let Some(file) = &self.current else {
            return false;
        };
        let size = self
            .rotation
            .max_bytes
            .is_some_and(|max| file.gz.get_ref().bytes >= max);
        let age = self
            .rotation
            .max_age_ns
            .is_some_and(|max| now.saturating_sub(file.first_ns) >= max);
        size || age
    }

    /// Finishes the open file (if any) and lists it; the next line opens a new one.
    pub fn close(&mut self) -> Result<Option<&FileEntry>, RecordError> {
        let Some(file) = self.current.take() else {
            return Ok(None);
        };
        let path = file.path;
        let mut hashing = file.gz.finish().map_err(io(&path))?;
        hashing.flush().map_err(io(&path))?;
        hashing.file.sync_all().map_err(io(&path))?;
        let entry = FileEntry {
            name: file.name,
            sha256: format!("{:x}", hashing.hash.finalize()),
            bytes: hashing.bytes,
            lines: file.lines,
            snapshots: file.snapshots,
            first_local_ns: file.first_ns,
            last_local_ns: file.last_ns,
            first_utc: utc(file.first_ns, true),
            last_utc: utc(file.last_ns, true),
            meta: self.meta.clone(),
        };
        self.listed.push(
            serde_json::to_value(&entry).map_err(|e| RecordError::Manifest {
                path: self.dir.join(MANIFEST),
                reason: e.to_string(),
            })?,
        );
        self.written.push(entry);
        self.write_manifest()?;
        Ok(self.written.last())
    }

    /// Deletes the oldest listed files (and their entries) while the listed files hold more
    /// than `budget_bytes`, keeping at least the newest; rewrites `manifest.json` when it
    /// deleted any. Returns the names deleted.
    pub fn prune(&mut self, budget_bytes: u64) -> Result<Vec<String>, RecordError> {
        let size = |v: &Value| v.get("bytes").and_then(Value::as_u64).unwrap_or(0);
        let mut total: u64 = self.listed.iter().map(size).sum();
        let mut deleted = Vec::new();
        while total > budget_bytes && self.listed.len() > 1 {
            let entry = self.listed.remove(0);
            total -= size(&entry);
            if let Some(name) = entry.get("name").and_then(Value::as_str) {
                let path = self.dir.join(name);
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io(&path)(e)),
                }
                deleted.push(name.to_owned());
            }
        }
        if !deleted.is_empty() {
            self.write_manifest()?;
        }
        Ok(deleted)
    }

    /// Writes `manifest.json` atomically: a temp file, fsynced, renamed over the old one.
    pub fn write_manifest(&self) -> Result<(), RecordError> {
        let doc = serde_json::json!({ "format": FORMAT, "files": self.listed });
        let path = self.dir.join(MANIFEST);
        let tmp = self
            .dir
            .join(format!(".{MANIFEST}.{}.tmp", std::process::id()));
        let text = serde_json::to_string_pretty(&doc).map_err(|e| RecordError::Manifest {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let mut f = File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(text.as_bytes()).map_err(io(&tmp))?;
        f.write_all(b"\n").map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        drop(f);
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        // The rename itself is durable once the directory is synced.
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&self.dir))
    }

    fn create(&self, ts: Nanos) -> Result<OpenFile, RecordError> {
        let stem = format!(
            "{}_{}_{}",
            self.meta.exchange,
            symbols_part(&self.meta.symbols),
            utc(ts, false)
        );
        let taken = |name: &str| {
            self.dir.join(name).exists()
                || self
                    .listed
                    .iter()
                    .any(|e| e.get("name").and_then(Value::as_str) == Some(name))
        };
        let mut name = format!("{stem}.gz");
        let mut n = 2;
        while taken(&name) {
            name = format!("{stem}_{n}.gz");
            n += 1;
        }
        let path = self.dir.join(&name);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io(&path))?;
        let hashing = Hashing {
            file,
            bytes: 0,
            hash: Sha256::new(),
        };
        Ok(OpenFile {
            name,
            path,
            gz: GzEncoder::new(hashing, self.level),
            lines: 0,
            snapshots: 0,
            first_ns: ts,
            last_ns: ts,
        })
    }
}

/// The symbols in a file name: lowercase, `-` between them (a count when that gets long).
fn symbols_part(symbols: &[String]) -> String {
    let joined = symbols
        .iter()
        .map(|s| s.to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join("-");
    if joined.len() > 80 {
        format!("{}symbols", symbols.len())
    } else {
        joined
    }
}

/// A frame as one line: `None` when empty; line breaks become spaces (`true` when it had any).
pub fn single_line(frame: &[u8]) -> Option<(std::borrow::Cow<'_, [u8]>, bool)> {
    if frame.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    if frame.iter().any(|&b| b == b'\n' || b == b'\r') {
        let fixed = frame
            .iter()
            .map(|&b| if b == b'\n' || b == b'\r' { b' ' } else { b })
            .collect();
        return Some((std::borrow::Cow::Owned(fixed), true));
    }
    Some((std::borrow::Cow::Borrowed(frame), false))
}

/// UTC of a Unix time in ns: `2024-08-08T23:54:13.937085768Z`, or `20240808T235413Z` (a file
/// name's form, whole seconds) when `full` is false.
pub fn utc(ns: Nanos, full: bool) -> String {
    if full {
        return iso_utc(ns);
    }
    let whole = ns.div_euclid(1_000_000_000) * 1_000_000_000;
    iso_utc(whole).replace(['-', ':'], "")
}

/// The feed's sink while recording: raw frames and snapshot bodies into a [`Writer`].
pub struct RecordSink {
    name: String,
    writer: Writer,
    symbols: Vec<String>,
    stop: Arc<AtomicBool>,
    deadline: Option<Instant>,
    /// A file is due: the next snapshot starts a new one (since this receive time).
    rotate_pending: Option<Nanos>,
    /// The feed's state and gap count last logged.
    status: Option<(FeedStatus, u64)>,
    rewritten: u64,
    empty: u64,
    error: Option<RecordError>,
    /// One book per symbol, kept only to know when the sequence breaks (Binance's rule, in
    /// `rt_core::BookSync`): a snapshot is then fetched, so the file can be replayed.
    books: Vec<rt_core::BookSync>,
    /// A book left sync: a fresh snapshot of every symbol is wanted.
    resync: bool,
    gaps: u64,
}

impl std::fmt::Debug for RecordSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordSink")
            .field("name", &self.name)
            .field("writer", &self.writer)
            .finish_non_exhaustive()
    }
}

impl RecordSink {
    fn fail(&mut self, err: RecordError) {
        self.log(format!("{err}; stopping"));
        if self.error.is_none() {
            self.error = Some(err);
        }
        self.stop.store(true, Ordering::Relaxed);
    }

    fn rotate(&mut self) {
        self.rotate_pending = None;
        match self.writer.close() {
            Ok(Some(entry)) => {
                let line = closed_line(entry);
                self.log(line);
            }
            Ok(None) => {}
            Err(e) => self.fail(e),
        }
    }

    fn write(&mut self, ts: Nanos, frame: &[u8], snapshot: bool) {
        if self.error.is_some() {
            return;
        }
        let Some((line, rewritten)) = single_line(frame) else {
            self.empty += 1;
            return;
        };
        self.rewritten += u64::from(rewritten);
        if let Err(e) = self.writer.write_line(ts, &line, snapshot) {
            self.fail(e);
        }
    }
}

/// A REST snapshot's line: the body as received when the exchange has one symbol, wrapped as
/// `{"s":"<SYMBOL>","data":<body>}` when it has several (a raw body names no symbol).
pub fn snapshot_line<'a>(
    symbols: &[String],
    symbol: usize,
    body: &'a [u8],
) -> std::borrow::Cow<'a, [u8]> {
    if symbols.len() == 1 {
        return std::borrow::Cow::Borrowed(body);
    }
    let name = symbols.get(symbol).map_or("", String::as_str);
    let mut wrapped = Vec::with_capacity(body.len() + name.len() + 20);
    wrapped.extend_from_slice(b"{\"s\":\"");
    wrapped.extend_from_slice(name.as_bytes());
    wrapped.extend_from_slice(b"\",\"data\":");
    wrapped.extend_from_slice(body.trim_ascii());
    wrapped.push(b'}');
    std::borrow::Cow::Owned(wrapped)
}

pub fn closed_line(e: &FileEntry) -> String {
    format!(
        "closed {}: {} lines ({} snapshots), {} bytes, sha256 {}",
        e.name, e.lines, e.snapshots, e.bytes, e.sha256
    )
}

impl Sink for RecordSink {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    fn take_resync(&mut self) -> bool {
        if self.rotate_pending.is_none() && self.writer.rotation_due(now_ns()) {
            self.rotate_pending = Some(now_ns());
            self.resync = false;
            return true;
        }
        std::mem::take(&mut self.resync)
    }

    fn log(&self, line: String) {
        eprintln!("record {}: {line}", self.name);
    }

    fn report(&mut self, info: &mut FeedInfo) {
        info.gaps = self.gaps;
        // Logged when the state changes or a gap was met (a snapshot follows in the file).
        if self.status != Some((info.status, info.gaps)) {
            self.status = Some((info.status, info.gaps));
            self.log(format!(
                "{:?} (frames {}, snapshots {}, gaps {}, reconnects {})",
                info.status, info.messages, info.snapshots, info.gaps, info.reconnects
            ));
        }
    }

    fn latency(&mut self, _stages: Stages) {}

    fn on_raw(&mut self, frame: &[u8], local_ns: Nanos) {
        if self
            .rotate_pending
            .is_some_and(|since| local_ns.saturating_sub(since) >= ROTATE_WAIT_NS)
        {
            self.rotate();
        }
        self.write(local_ns, frame, false);
    }

    fn on_snapshot(&mut self, symbol: usize, body: &[u8], event: &MarketEvent<'_>) -> bool {
        if self.rotate_pending.is_some() {
            self.rotate();
        }
        if let (Some(book), MarketEvent::Snapshot(s)) = (self.books.get_mut(symbol), event) {
            book.on_snapshot(s);
        }
        let ts = match event {
            MarketEvent::Snapshot(s) => s.header.local_ns,
            _ => now_ns(),
        };
        let line = snapshot_line(&self.symbols, symbol, body);
        self.write(ts, &line, true);
        true
    }

    fn on_event(&mut self, event: &MarketEvent<'_>) -> bool {
        if let MarketEvent::Depth(d) = event {
            if let Some(book) = self.books.get_mut(d.header.symbol as usize) {
                let was = book.is_synced();
                book.on_diff(d);
                if was && !book.is_synced() {
                    self.gaps += 1;
                    self.resync = true;
                }
            }
        }
        true
    }

    fn feed_down(&mut self, _local_ns: Nanos) {}
}

/// Binance's sequencing rule of a market.
pub fn sync_rule(market: rt_manifest::model::Market) -> rt_core::SyncRule {
    match market {
        rt_manifest::model::Market::Spot => rt_core::SyncRule::Spot,
        rt_manifest::model::Market::Usdm => rt_core::SyncRule::UsdM,
    }
}

/// A unit enum's name as the manifest spells it (`sim`, `spot`).
pub fn json_name<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(Value::String(s)) => s,
        _ => String::new(),
    }
}

/// What `rt-engine record` was asked.
#[derive(Debug, Clone)]
pub struct RecordOptions {
    pub exchange: String,
    pub out: PathBuf,
    pub duration: Option<Duration>,
    pub rotation: Rotation,
}

/// Records until SIGINT/SIGTERM or the duration; exit code 0 when at least one file was
/// written, 1 when nothing arrived or a write failed (the files finished before it are listed).
pub fn run(manifest: &Manifest, opts: &RecordOptions) -> anyhow::Result<ExitCode> {
    let Some((x, ex)) = manifest
        .exchanges
        .iter()
        .enumerate()
        .find(|(_, (name, _))| **name == opts.exchange)
        .map(|(x, (_, ex))| (x, ex))
    else {
        let names: Vec<&str> = manifest.exchanges.keys().map(String::as_str).collect();
        eprintln!(
            "error: no exchange {:?} in the manifest (exchanges: {})",
            opts.exchange,
            names.join(", ")
        );
        return Ok(ExitCode::from(2));
    };
    let cfg = FeedConfig::for_exchange(x as u32, &opts.exchange, ex, manifest.risk.feed_stale_ms);
    let meta = Meta {
        exchange: opts.exchange.clone(),
        venue: json_name(&ex.venue),
        market: json_name(&ex.market),
        symbols: cfg.symbols.clone(),
        deployment: manifest.deployment.name.clone(),
        engine_id: manifest.engine.id.clone(),
        manifest_sha256: manifest.content_sha256.clone(),
    };
    let writer = Writer::open(&opts.out, meta, opts.rotation)?;
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGTERM, stop.clone())
        .context("cannot install the SIGTERM handler")?;
    signal_hook::flag::register(signal_hook::consts::SIGINT, stop.clone())
        .context("cannot install the SIGINT handler")?;
    eprintln!(
        "record {}: {} -> {} ({})",
        opts.exchange,
        cfg.stream_url(),
        opts.out.display(),
        opts.duration
            .map_or("until SIGINT/SIGTERM".to_owned(), |d| format!(
                "for {:.1} s",
                d.as_secs_f64()
            ))
    );
    let sink = RecordSink {
        name: opts.exchange.clone(),
        writer,
        symbols: cfg.symbols.clone(),
        stop,
        deadline: opts.duration.map(|d| Instant::now() + d),
        rotate_pending: None,
        status: None,
        rewritten: 0,
        empty: 0,
        error: None,
        books: cfg
            .symbols
            .iter()
            .map(|_| rt_core::BookSync::new(sync_rule(cfg.market)))
            .collect(),
        resync: false,
        gaps: 0,
    };
    let (info, mut sink) = feed::run_with(cfg, sink);
    if sink.error.is_none() {
        sink.rotate();
    }
    if let Err(e) = sink.writer.write_manifest() {
        sink.fail(e);
    }
    if sink.rewritten + sink.empty > 0 {
        sink.log(format!(
            "{} frames had line breaks (replaced by spaces), {} empty frames skipped",
            sink.rewritten, sink.empty
        ));
    }
    let mut out = std::io::stdout().lock();
    for e in sink.writer.written() {
        writeln!(out, "{}", closed_line(e)).context("cannot write to stdout")?;
    }
    writeln!(
        out,
        "record {} stopped: {} files, {} frames, {} snapshots, {} gaps, {} reconnects",
        opts.exchange,
        sink.writer.written().len(),
        info.messages,
        info.snapshots,
        info.gaps,
        info.reconnects
    )
    .context("cannot write to stdout")?;
    if let Some(e) = sink.error {
        eprintln!("error: record {}: {e}", opts.exchange);
        return Ok(ExitCode::FAILURE);
    }
    if sink.writer.written().is_empty() {
        eprintln!(
            "error: record {}: nothing was received, no file written",
            opts.exchange
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::io::Read;

    use rt_core::{Header, Snapshot};
    use rt_venues::{CaptureReader, Decoder};

    use super::*;

    const SNAPSHOT: &[u8] =
        br#"{"lastUpdateId":100,"bids":[["10.00","1.0"]],"asks":[["11.00","2.0"]]}"#;
    const DIFF: &[u8] = br#"{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1723161255208,"s":"BTCUSDT","U":101,"u":101,"b":[["10.00","3.0"]],"a":[]}}"#;

    fn meta(symbols: &[&str]) -> Meta {
        Meta {
            exchange: "sim_binance".into(),
            venue: "sim".into(),
            market: "spot".into(),
            symbols: symbols.iter().map(|s| (*s).to_owned()).collect(),
            deployment: "paper_local".into(),
            engine_id: "paper_1".into(),
            manifest_sha256: "ab".repeat(32),
        }
    }

    fn manifest_files(dir: &Path) -> Vec<Value> {
        let doc: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join(MANIFEST)).unwrap()).unwrap();
        doc["files"].as_array().unwrap().clone()
    }

    /// Decompresses strictly: a gzip stream that was not finished is an error here.
    fn gunzip(path: &Path) -> String {
        let mut text = String::new();
        flate2::read::GzDecoder::new(File::open(path).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        text
    }

    fn sha256(path: &Path) -> String {
        format!("{:x}", Sha256::digest(std::fs::read(path).unwrap()))
    }

    #[test]
    fn rotates_by_size_and_lists_every_finished_file() {
        let dir = tempfile::tempdir().unwrap();
        let rotation = Rotation {
            max_bytes: Some(200),
            max_age_ns: None,
        };
        let mut w = Writer::open(dir.path(), meta(&["BTCUSDT"]), rotation).unwrap();
        let t0: Nanos = 1_723_161_253_937_085_768;
        let mut files = 0;
        let mut ts = t0;
        for _ in 0..3 {
            w.write_line(ts, SNAPSHOT, true).unwrap();
            // Distinct lines, so the compressed size grows.
            while !w.rotation_due(ts) {
                ts += 1_000_003;
                let frame = String::from_utf8_lossy(DIFF).replace("101", &ts.to_string());
                w.write_line(ts, frame.as_bytes(), false).unwrap();
                // GzEncoder buffers: flush it through now and then to see the size.
                w.current.as_mut().unwrap().gz.flush().unwrap();
            }
            let entry = w.close().unwrap().unwrap().clone();
            files += 1;
            assert!(entry.bytes >= 200, "{entry:?}");
            assert_eq!(entry.snapshots, 1);
            ts += 1_000_000_000;
        }
        assert_eq!(w.written().len(), files);
        let listed = manifest_files(dir.path());
        assert_eq!(listed.len(), 3);
        let names: Vec<&str> = listed.iter().map(|e| e["name"].as_str().unwrap()).collect();
        assert_eq!(names[0], "sim_binance_btcusdt_20240808T235413Z.gz");
        for (e, entry) in listed.iter().zip(w.written()) {
            let path = dir.path().join(e["name"].as_str().unwrap());
            assert_eq!(e["sha256"].as_str().unwrap(), sha256(&path));
            assert_eq!(
                e["bytes"].as_u64().unwrap(),
                std::fs::metadata(&path).unwrap().len()
            );
            let text = gunzip(&path);
            assert_eq!(text.lines().count() as u64, entry.lines);
            assert_eq!(e["lines"].as_u64().unwrap(), entry.lines);
            assert_eq!(e["manifest_sha256"].as_str().unwrap(), "ab".repeat(32));
            assert_eq!(e["symbols"][0], "BTCUSDT");
            // Each file replays on its own: its first line is the snapshot.
            let mut reader = CaptureReader::open(&path).unwrap();
            let first = reader.next_event().unwrap().unwrap();
            assert!(matches!(first, MarketEvent::Snapshot(s) if s.last_update_id == 100));
            let mut events = 1;
            while let Some(ev) = reader.next_event() {
                ev.unwrap();
                events += 1;
            }
            assert_eq!(events, entry.lines);
        }
        assert_eq!(listed[0]["first_utc"], "2024-08-08T23:54:13.937085768Z");
        // Nothing but the files and the manifest (no temp file left).
        let mut names_on_disk: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names_on_disk.sort();
        assert_eq!(names_on_disk.len(), 4, "{names_on_disk:?}");
    }

    #[test]
    fn prune_deletes_the_oldest_files_beyond_the_budget_and_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Writer::open(dir.path(), meta(&["BTCUSDT"]), Rotation::default()).unwrap();
        let mut ts: Nanos = 1_723_161_253_937_085_768;
        let mut sizes = Vec::new();
        for _ in 0..3 {
            w.write_line(ts, SNAPSHOT, true).unwrap();
            w.write_line(ts + 1, DIFF, false).unwrap();
            sizes.push(w.close().unwrap().unwrap().bytes);
            ts += 2_000_000_000;
        }
        let names: Vec<String> = w.written().iter().map(|e| e.name.clone()).collect();
        // Within the budget: nothing goes.
        assert!(w.prune(sizes.iter().sum()).unwrap().is_empty());
        // The two newest fit: the oldest is deleted, from the disk and the manifest.
        assert_eq!(
            w.prune(sizes[1] + sizes[2]).unwrap(),
            vec![names[0].clone()]
        );
        assert!(!dir.path().join(&names[0]).exists());
        let listed = manifest_files(dir.path());
        let left: Vec<&str> = listed.iter().map(|e| e["name"].as_str().unwrap()).collect();
        assert_eq!(left, [names[1].as_str(), names[2].as_str()]);
        // A budget below one file still keeps the newest.
        assert_eq!(w.prune(1).unwrap(), vec![names[1].clone()]);
        assert_eq!(manifest_files(dir.path()).len(), 1);
        assert!(dir.path().join(&names[2]).exists());
    }

    #[test]
    fn rotates_by_age_and_names_files_apart() {
        let dir = tempfile::tempdir().unwrap();
        let rotation = Rotation {
            max_bytes: None,
            max_age_ns: Some(60_000_000_000),
        };
        let mut w = Writer::open(dir.path(), meta(&["BTCUSDT", "ETHUSDT"]), rotation).unwrap();
        assert!(!w.rotation_due(0), "no file open: nothing to rotate");
        let t0: Nanos = 1_723_161_253_000_000_000;
        w.write_line(t0, DIFF, false).unwrap();
        assert!(!w.rotation_due(t0 + 59_999_999_999));
        assert!(w.rotation_due(t0 + 60_000_000_000));
        w.close().unwrap();
        // A second file starting in the same second gets a suffix, never overwrites.
        w.write_line(t0 + 1, DIFF, false).unwrap();
        let second = w.close().unwrap().unwrap().name.clone();
        assert_eq!(
            w.written()[0].name,
            "sim_binance_btcusdt-ethusdt_20240808T235413Z.gz"
        );
        assert_eq!(second, "sim_binance_btcusdt-ethusdt_20240808T235413Z_2.gz");
        assert!(w.close().unwrap().is_none());
    }

    #[test]
    fn manifest_keeps_earlier_entries_and_never_lists_an_open_file() {
        let dir = tempfile::tempdir().unwrap();
        let t0: Nanos = 1_723_161_253_000_000_000;
        let mut w = Writer::open(dir.path(), meta(&["BTCUSDT"]), Rotation::default()).unwrap();
        w.write_line(t0, SNAPSHOT, true).unwrap();
        w.close().unwrap();
        drop(w);
        // A second recording into the same directory, "crashing" with its file open.
        let mut w = Writer::open(dir.path(), meta(&["BTCUSDT"]), Rotation::default()).unwrap();
        w.write_line(t0 + 2_000_000_000, SNAPSHOT, true).unwrap();
        w.write_line(t0 + 3_000_000_000, DIFF, false).unwrap();
        w.close().unwrap();
        w.write_line(t0 + 5_000_000_000, DIFF, false).unwrap();
        drop(w);
        let listed = manifest_files(dir.path());
        assert_eq!(listed.len(), 2, "the open file is not listed");
        assert_eq!(listed[1]["lines"], 2);
        assert_eq!(listed[1]["last_local_ns"], t0 + 3_000_000_000);
        // A manifest that is not one is refused, not overwritten.
        std::fs::write(dir.path().join(MANIFEST), "{").unwrap();
        let err = Writer::open(dir.path(), meta(&["BTCUSDT"]), Rotation::default()).unwrap_err();
        assert!(matches!(err, RecordError::Manifest { .. }), "{err}");
    }

    fn sink(dir: &Path, symbols: &[&str]) -> RecordSink {
        RecordSink {
            name: "sim_binance".into(),
            writer: Writer::open(dir, meta(symbols), Rotation::default()).unwrap(),
            symbols: symbols.iter().map(|s| (*s).to_owned()).collect(),
            stop: Arc::new(AtomicBool::new(false)),
            deadline: None,
            rotate_pending: None,
            status: None,
            rewritten: 0,
            empty: 0,
            error: None,
            books: Vec::new(),
            resync: false,
            gaps: 0,
        }
    }

    fn snapshot_event(local_ns: Nanos) -> MarketEvent<'static> {
        MarketEvent::Snapshot(Snapshot {
            header: Header {
                symbol: 0,
                exchange_ns: 0,
                local_ns,
            },
            last_update_id: 100,
            bids: &[],
            asks: &[],
        })
    }

    #[test]
    fn snapshots_of_several_symbols_are_attributed_on_replay() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = sink(dir.path(), &["BTCUSDT", "ETHUSDT"]);
        let t0: Nanos = 1_723_161_253_000_000_000;
        s.on_raw(DIFF, t0);
        s.on_snapshot(1, SNAPSHOT, &snapshot_event(t0 + 1));
        s.on_snapshot(0, SNAPSHOT, &snapshot_event(t0 + 2));
        s.on_raw(b"  ", t0 + 3);
        s.on_raw(b"{\"result\":null,\n\"id\":1}", t0 + 4);
        s.rotate();
        assert_eq!((s.empty, s.rewritten), (1, 1));
        let path = dir.path().join(&s.writer.written()[0].name);
        let text = gunzip(&path);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(
            lines[0].as_bytes(),
            [format!("{t0} ").as_bytes(), DIFF].concat()
        );
        assert!(lines[1].starts_with(&format!(
            "{} {{\"s\":\"ETHUSDT\",\"data\":{{\"lastUpdateId\"",
            t0 + 1
        )));
        assert_eq!(
            lines[3],
            format!("{} {{\"result\":null, \"id\":1}}", t0 + 4)
        );
        let mut reader = CaptureReader::open(&path)
            .unwrap()
            .with_decoder(Decoder::with_symbols(&["BTCUSDT", "ETHUSDT"]));
        let mut snapshot_symbols = Vec::new();
        while let Some(ev) = reader.next_event() {
            if let MarketEvent::Snapshot(snap) = ev.unwrap() {
                snapshot_symbols.push(snap.header.symbol);
            }
        }
        // After a BTCUSDT diff, the first snapshot is still ETHUSDT's: named, not guessed.
        assert_eq!(snapshot_symbols, [1, 0]);
        assert_eq!(reader.stats().decode.errors, 0);
    }

    #[test]
    fn a_due_file_ends_before_the_next_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = sink(dir.path(), &["BTCUSDT"]);
        s.writer.rotation.max_age_ns = Some(1);
        let t0 = now_ns();
        s.on_snapshot(0, SNAPSHOT, &snapshot_event(t0));
        s.on_raw(DIFF, t0 + 1);
        assert!(s.take_resync(), "due: a snapshot is asked for");
        assert!(!s.take_resync(), "asked once");
        s.on_raw(DIFF, t0 + 2);
        s.on_snapshot(0, SNAPSHOT, &snapshot_event(t0 + 3));
        s.on_raw(DIFF, t0 + 4);
        s.rotate();
        let files = s.writer.written();
        assert_eq!(files.len(), 2);
        assert_eq!((files[0].lines, files[0].snapshots), (3, 1));
        assert_eq!((files[1].lines, files[1].snapshots), (2, 1));
        assert_eq!(files[1].first_local_ns, t0 + 3);
    }

    #[test]
    fn utc_times() {
        assert_eq!(utc(0, true), "1970-01-01T00:00:00Z");
        assert_eq!(utc(1_723_161_599_999_000_000, false), "20240808T235959Z");
        assert_eq!(
            utc(951_782_400_000_000_001, true),
            "2000-02-29T00:00:00.000000001Z"
        );
        assert_eq!(utc(-1, true), "1969-12-31T23:59:59.999999999Z");
    }
}
