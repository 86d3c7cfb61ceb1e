//! The append-only journal: every order sent, every execution report received and every risk
//! state change, one JSON object per line, in `journal.dir/journal.jsonl`.
//!
//! The gateway journals orders and executions the moment it sends or reads them (before the
//! strategy thread hears of a fill) through the journal ring (`journal_ring`: the journal writer
//! thread appends them, off the order path; a restart replays what a crashed run left in it),
//! and a record is on disk as soon as the fsync policy says once appended: `always` (fsync after
//! every record), `interval` (at most `fsync_interval_ms` after it), `never` (the OS decides). On start, [`recover`] rebuilds the
//! positions from the fills and the next order id from the orders; a torn last line (a crash
//! in the middle of a write) is skipped and counted, never fatal.
//!
//! It also restores what keeps a restart safe: the last risk state (a HALTED account stays
//! halted), the loss limits' anchors (the day's start equity and the peak, so a restart does not
//! forget the day's losses), whether an operator paused trading, and the limits an operator
//! tightened while the same manifest runs (a new manifest's reviewed limits replace them).

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rt_manifest::model::Fsync;
use serde::{Deserialize, Serialize};

/// Why the journal cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal {}: cannot {op}: {source}", path.display())]
    Io {
        path: PathBuf,
        op: &'static str,
        source: std::io::Error,
    },
    #[error("journal {}, line {line}: {reason}", path.display())]
    Corrupt {
        path: PathBuf,
        line: u64,
        reason: String,
    },
}

/// One journal line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case", deny_unknown_fields)]
pub enum Record {
    /// The engine started with this manifest.
    Start {
        ts: i64,
        engine: String,
        manifest_sha256: String,
        pid: u32,
    },
    /// An order was written to the venue.
    Order {
        ts: i64,
        id: u64,
        exchange: String,
        symbol: String,
        side: String,
        kind: String,
        price: String,
        qty: String,
    },
    /// A cancel was written to the venue.
    Cancel { ts: i64, id: u64 },
    /// An amendment of order `id` to `price` and `qty` ordered (fills included) was written
    /// to the venue; its outcome is an `Exec` of kind `amended` or `amend_rejected`.
    Amend {
        ts: i64,
        id: u64,
        price: String,
        qty: String,
    },
    /// An execution report was read from the venue.
    Exec {
        ts: i64,
        id: u64,
        exchange: String,
        symbol: String,
        side: String,
        /// accepted | fill | cancelled | expired | rejected | cancel_rejected | closed (the
        /// start-up catch-up found it finished at the venue with nothing more to journal)
        kind: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        price: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        qty: Option<String>,
        /// The commission in the quote asset as booked (see `fees`): a quote commission, or
        /// another asset's at its price; zero for a base-asset commission.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fee: Option<String>,
        /// The commission as the venue charged it: the amount, in `commission_asset`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        commission: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        commission_asset: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        maker: Option<bool>,
        /// Quantity still working after this report.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        leaves: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// The risk state changed.
    Risk {
        ts: i64,
        from: String,
        to: String,
        cause: String,
        /// What the cause found (a balance mismatch's asset and values), when it says more.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
    },
    /// The loss limits' reference points changed: a new UTC day (days since the epoch) or a
    /// new equity peak. Written when the day or its start changes, and for a new peak at most
    /// once a second (and at a clean stop).
    Anchors {
        ts: i64,
        day: i64,
        day_start_equity: String,
        peak_equity: String,
    },
    /// An operator's command that the engine carried out (pause, resume, flatten, kill,
    /// tighten).
    Control {
        ts: i64,
        command: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        value: Option<String>,
    },
    /// A clean shutdown: every open order was cancelled.
    Stop { ts: i64, open_orders: u32 },
    /// A funding payment of a perpetual as the venue's account update reported it (positive:
    /// received), booked into the instrument's realised P&L (replayed at restart).
    Funding {
        ts: i64,
        exchange: String,
        symbol: String,
        asset: String,
        amount: String,
        /// The venue's id of the payment, when it was read from the venue's funding history
        /// (an update on the stream names none); absent in journals written before it was.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// The venue's time of the payment (ms since the epoch); absent in older journals.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        time_ms: Option<u64>,
    },
    /// A futures contract delivered at expiry: the venue closed whatever position the engine
    /// held at the delivery `price` it published, without a fill of ours. Booked into the
    /// instrument's realised P&L, replayed at restart after the fills (`delivery`); a contract
    /// is delivered once, so a journaled delivery is never asked for or booked again.
    Delivery {
        ts: i64,
        exchange: String,
        symbol: String,
        price: String,
        /// The venue's time of the delivery (ms since the epoch).
        time_ms: u64,
    },
}

/// The journal writer.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
    fsync: Fsync,
    interval: Duration,
    last_sync: Instant,
    dirty: bool,
    line: Vec<u8>,
    records: u64,
    /// Records known to be on stable storage (an fsync that covered them completed).
    durable: u64,
    /// When the oldest record not yet known durable was appended (an upper bound on its age:
    /// records appended while a sync was in flight count from when that sync began).
    unsynced_since: Option<Instant>,
    /// fsyncs that failed (what they covered is not durable; the next one tries again).
    fsync_errors: u64,
}

/// How far the journal's durability trails its writes (the heartbeat's `journal_*` figures).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lag {
    /// Records appended since the engine started.
    pub records: u64,
    /// Records appended but not yet known to be on stable storage.
    pub unsynced: u64,
    /// Age of the oldest of them, ms (0: none).
    pub age_ms: u64,
    /// fsyncs that failed since the engine started.
    pub fsync_errors: u64,
    /// The policy's sync interval, ms (0 with `fsync: always`): the lag a healthy disk shows.
    pub interval_ms: u64,
}

/// What a sync handed out by [`Journal::due_sync`] covers, for [`Journal::synced`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct SyncTicket {
    upto: u64,
    at: Instant,
}

pub const FILE_NAME: &str = "journal.jsonl";

impl Journal {
    /// Opens (creating) `dir/journal.jsonl` for appending.
    pub fn open(dir: &Path, fsync: Fsync, interval_ms: u32) -> Result<Journal, JournalError> {
        std::fs::create_dir_all(dir).map_err(|source| JournalError::Io {
            path: dir.to_owned(),
            op: "create the directory",
            source,
        })?;
        let path = dir.join(FILE_NAME);
        repair_tail(&path)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|source| JournalError::Io {
                path: path.clone(),
                op: "open for appending",
                source,
            })?;
        Ok(Journal {
            path,
            file,
            fsync,
            interval: Duration::from_millis(u64::from(interval_ms)),
            last_sync: Instant::now(),
            dirty: false,
            line: Vec::with_capacity(512),
            records: 0,
            durable: 0,
            unsynced_since: None,
            fsync_errors: 0,
        })
    }

    /// Appends one record (one `write` call, so a crash leaves at most a torn last line),
    /// then syncs as the policy says.
    pub fn append(&mut self, record: &Record) -> Result<(), JournalError> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, record).map_err(|e| JournalError::Io {
            path: self.path.clone(),
            op: "encode a record",
            source: std::io::Error::other(e),
        })?;
        self.write_line()
    }

    /// Appends one journal line as the journal ring carries it (a record's JSON, without its
    /// newline): the same as [`Journal::append`] of that record.
    pub fn append_line(&mut self, line: &[u8]) -> Result<(), JournalError> {
        self.line.clear();
        self.line.extend_from_slice(line);
        self.write_line()
    }

    /// Writes the line in `self.line` and its newline with one `write` call, then syncs as the
    /// policy says.
    fn write_line(&mut self) -> Result<(), JournalError> {
        self.line.push(b'\n');
        self.file
            .write_all(&self.line)
            .map_err(|source| JournalError::Io {
                path: self.path.clone(),
                op: "append",
                source,
            })?;
        self.records += 1;
        self.dirty = true;
        self.unsynced_since.get_or_insert_with(Instant::now);
        match self.fsync {
            Fsync::Always => self.sync()?,
            // The housekeeping thread syncs (`due_sync`), off the order path.
            Fsync::Interval | Fsync::Never => {}
        }
        Ok(())
    }

    /// With the interval policy, when a sync is due: a handle to sync *outside* the journal's
    /// lock (so the gateway never waits for an fsync to append), and the ticket to hand back
    /// to [`Journal::synced`] once that sync completed. The housekeeping thread calls this
    /// every few ms.
    pub fn due_sync(&mut self) -> Result<Option<(File, SyncTicket)>, JournalError> {
        if !(self.dirty
            && self.fsync == Fsync::Interval
            && self.last_sync.elapsed() >= self.interval)
        {
            return Ok(None);
        }
        let handle = self.file.try_clone().map_err(|source| JournalError::Io {
            path: self.path.clone(),
            op: "duplicate the handle of",
            source,
        })?;
        self.dirty = false;
        self.last_sync = Instant::now();
        let ticket = SyncTicket {
            upto: self.records,
            at: self.last_sync,
        };
        Ok(Some((handle, ticket)))
    }

    /// The sync of `ticket` completed: the records it covered are durable.
    pub fn synced(&mut self, ticket: SyncTicket) {
        self.durable = self.durable.max(ticket.upto);
        self.unsynced_since = (self.records > self.durable).then_some(ticket.at);
    }

    /// The sync of `ticket` failed: nothing it covered is known durable, and the next due
    /// sync tries again (even with no new record).
    pub fn sync_failed(&mut self, _ticket: SyncTicket) {
        self.fsync_errors += 1;
        self.dirty = true;
    }

    /// How far durability trails the writes; None with `fsync: never` (nothing is ever
    /// synced here: the kernel writes back when it will).
    pub fn lag(&self) -> Option<Lag> {
        if self.fsync == Fsync::Never {
            return None;
        }
        let unsynced = self.records - self.durable;
        let age_ms = match self.unsynced_since {
            Some(t) if unsynced > 0 => u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX),
            _ => 0,
        };
        let interval_ms = match self.fsync {
            Fsync::Interval => u64::try_from(self.interval.as_millis()).unwrap_or(u64::MAX),
            Fsync::Always | Fsync::Never => 0,
        };
        Some(Lag {
            records: self.records,
            unsynced,
            age_ms,
            fsync_errors: self.fsync_errors,
            interval_ms,
        })
    }

    /// Flushes to stable storage now (shutdown). Also when nothing was appended since the
    /// last sync but that sync failed: its records are not durable yet.
    pub fn sync(&mut self) -> Result<(), JournalError> {
        let pending = self.dirty || self.durable < self.records;
        if pending && self.fsync != Fsync::Never {
            if let Err(source) = self.file.sync_data() {
                self.fsync_errors += 1;
                return Err(JournalError::Io {
                    path: self.path.clone(),
                    op: "fsync",
                    source,
                });
            }
        }
        self.dirty = false;
        self.last_sync = Instant::now();
        if self.fsync != Fsync::Never {
            self.durable = self.records;
            self.unsynced_since = None;
        }
        Ok(())
    }
}

/// Makes the journal end with a whole line before anything is appended: a torn last line (a
/// crash mid-write; [`recover`] skipped it) is cut off, also when it ends with a newline, and a
/// whole record that only lacks its newline gets one. Otherwise the next record would be glued
/// to the fragment, or follow it, which makes it a corrupt line in the middle.
fn repair_tail(path: &Path) -> Result<(), JournalError> {
    use std::io::{Read, Seek, SeekFrom};
    let io = |op: &'static str| {
        let path = path.to_owned();
        move |source| JournalError::Io { path, op, source }
    };
    let mut file = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io("open to check its end")(e)),
    };
    let len = file.metadata().map_err(io("stat"))?.len();
    if len == 0 {
        return Ok(());
    }
    let mut byte = [0u8; 1];
    file.seek(SeekFrom::Start(len - 1)).map_err(io("seek"))?;
    file.read_exact(&mut byte).map_err(io("read its end"))?;
    let newline = byte[0] == b'\n';
    // Back to the newline before the last line (or the start of the file).
    let mut buf = [0u8; 4096];
    let mut pos = if newline { len - 1 } else { len };
    let mut start_of_last = 0;
    while pos > 0 {
        let from = pos.saturating_sub(buf.len() as u64);
        let n = usize::try_from(pos - from).unwrap_or(0);
        file.seek(SeekFrom::Start(from)).map_err(io("seek"))?;
        file.read_exact(&mut buf[..n]).map_err(io("read its end"))?;
        if let Some(i) = buf[..n].iter().rposition(|&b| b == b'\n') {
            start_of_last = from + i as u64 + 1;
            break;
        }
        pos = from;
    }
    let mut last = Vec::new();
    file.seek(SeekFrom::Start(start_of_last))
        .map_err(io("seek"))?;
    file.read_to_end(&mut last).map_err(io("read its end"))?;
    let last = last.strip_suffix(b"\n").unwrap_or(&last);
    if serde_json::from_slice::<Record>(last).is_ok() {
        if newline {
            return Ok(());
        }
        file.seek(SeekFrom::End(0)).map_err(io("seek"))?;
        file.write_all(b"\n").map_err(io("end its last line"))?;
    } else {
        file.set_len(start_of_last)
            .map_err(io("cut a torn last line"))?;
    }
    file.sync_data().map_err(io("fsync"))
}

/// A fill, as recovered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveredFill {
    pub exchange: String,
    pub symbol: String,
    pub side: String,
    pub price: String,
    pub qty: String,
    pub fee: String,
    /// The commission the venue took in the instrument's base asset ("0" for none).
    pub base_commission: String,
    /// The commission as the venue charged it, and its asset (empty when the journal did not
    /// record them: the fee was then charged in the quote asset). For balance reconciliation.
    pub commission: String,
    pub commission_asset: String,
}

/// What a journal tells a restarting engine.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    pub fills: Vec<RecoveredFill>,
    /// Funding payments, in order.
    pub fundings: Vec<RecoveredFunding>,
    /// Deliveries of futures contracts, in order (one a contract).
    pub deliveries: Vec<RecoveredDelivery>,
    /// One more than the largest order id ever sent (1 for a new journal).
    pub next_order_id: u64,
    /// Orders sent with no final report, by id: the venue may have filled or may still hold
    /// them (caught up with the venue at start, see `catchup`).
    pub unfinished_orders: Vec<UnfinishedOrder>,
    pub records: u64,
    /// A torn last line (a crash mid-write), skipped.
    pub torn_tail: bool,
    /// Whether the previous run ended with a clean stop.
    pub clean_stop: bool,
    pub starts: u64,
    /// The last risk state change.
    pub risk: Option<RecoveredRisk>,
    /// The last anchors of the loss limits.
    pub anchors: Option<RecoveredAnchors>,
    /// An operator paused (pause, flatten or kill) and did not resume.
    pub paused: bool,
    /// An operator engaged the kill switch and did not resume (also when the account was
    /// HALTED already, which writes no risk record).
    pub killed: bool,
    /// The manifest the last run started with.
    pub manifest_sha256: Option<String>,
    /// When the journal began: its first start's time (ns since the epoch, the local clock).
    pub first_start_ts: Option<i64>,
    /// (limit, value) tightened by an operator since that manifest first ran, in order.
    pub tightened: Vec<(String, String)>,
}

/// A journaled funding payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveredFunding {
    pub exchange: String,
    pub symbol: String,
    /// The asset it was paid in: the instrument's settlement currency when it was booked.
    pub asset: String,
    /// Signed decimal, in `asset`: positive received.
    pub amount: String,
    /// When it was journaled (ns since the epoch, the local clock).
    pub ts: i64,
    /// The venue's id of the payment, when the journal has it (see [`Record::Funding`]).
    pub id: Option<u64>,
    /// The venue's time of the payment (ms), when the journal has it.
    pub time_ms: Option<u64>,
}

impl RecoveredFunding {
    /// The payment's time (ms): the venue's, else when it was journaled (older journals).
    pub fn paid_ms(&self) -> u64 {
        self.time_ms
            .unwrap_or_else(|| u64::try_from(self.ts / 1_000_000).unwrap_or(0))
    }
}

/// A journaled delivery of a futures contract (see [`Record::Delivery`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveredDelivery {
    pub exchange: String,
    pub symbol: String,
    /// The delivery price, a decimal.
    pub price: String,
    pub time_ms: u64,
}

/// An order with no final report in the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnfinishedOrder {
    pub id: u64,
    /// The engine id it was sent under (its client order id's prefix).
    pub engine: String,
    pub exchange: String,
    pub symbol: String,
    /// Its side, price and quantity as journaled, replayed through the order lifecycle: its
    /// journaled fills (`filled()`), acknowledged or not (an accepted report or a fill).
    pub life: rt_core::OrderLifecycle,
    /// Journaled fills beyond the order's quantity as journaled (an amendment up whose report
    /// was lost): filled at the venue all the same.
    pub filled_beyond: i64,
}

/// A risk state change, as recovered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveredRisk {
    pub ts: i64,
    pub state: String,
    pub cause: String,
}

/// The loss limits' anchors, as recovered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveredAnchors {
    pub day: i64,
    pub day_start_equity: String,
    pub peak_equity: String,
}

/// A signed decimal (`-12.5`) in units of 10^-8, as the journal writes money: the engine's one
/// decimal parser (`rt_core::parse_signed_units`), the error naming the text.
pub fn signed_units(s: &str) -> Result<i64, String> {
    rt_core::parse_signed_units(s.as_bytes()).map_err(|e| format!("{s:?}: {e}"))
}

/// Reads `dir/journal.jsonl` (absent: a fresh start).
pub fn recover(dir: &Path) -> Result<Recovery, JournalError> {
    let path = dir.join(FILE_NAME);
    let mut out = Recovery {
        next_order_id: 1,
        ..Recovery::default()
    };
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(source) => {
            return Err(JournalError::Io {
                path,
                op: "open for reading",
                source,
            })
        }
    };
    let mut open: std::collections::BTreeMap<u64, UnfinishedOrder> =
        std::collections::BTreeMap::new();
    let mut current_engine = String::new();
    // Lines as bytes: a crash can tear a line inside a multi-byte character, and that torn
    // last line must be skipped like any other, not stop the recovery as invalid UTF-8.
    let lines: Vec<std::io::Result<Vec<u8>>> = BufReader::new(file).split(b'\n').collect();
    let n = lines.len();
    for (k, line) in lines.into_iter().enumerate() {
        let line_no = k as u64 + 1;
        let line = line.map_err(|source| JournalError::Io {
            path: path.clone(),
            op: "read",
            source,
        })?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let record: Record = match serde_json::from_slice(&line) {
            Ok(r) => r,
            Err(_) if k + 1 == n => {
                out.torn_tail = true;
                continue;
            }
            Err(e) => {
                return Err(JournalError::Corrupt {
                    path,
                    line: line_no,
                    reason: e.to_string(),
                })
            }
        };
        out.records += 1;
        out.clean_stop = matches!(record, Record::Stop { .. });
        // A funding payment's journaled time and the venue's id and time.
        let paid = match &record {
            Record::Funding {
                ts, id, time_ms, ..
            } => (*ts, *id, *time_ms),
            _ => (0, None, None),
        };
        match record {
            Record::Start {
                ts,
                manifest_sha256,
                engine,
                ..
            } => {
                out.starts += 1;
                out.first_start_ts.get_or_insert(ts);
                current_engine = engine;
                if out.manifest_sha256.as_deref() != Some(manifest_sha256.as_str()) {
                    // A new manifest: its reviewed limits replace what an operator tightened.
                    out.tightened.clear();
                }
                out.manifest_sha256 = Some(manifest_sha256);
            }
            Record::Risk { ts, to, cause, .. } => {
                out.risk = Some(RecoveredRisk {
                    ts,
                    state: to,
                    cause,
                });
            }
            Record::Anchors {
                day,
                day_start_equity,
                peak_equity,
                ..
            } => {
                out.anchors = Some(RecoveredAnchors {
                    day,
                    day_start_equity,
                    peak_equity,
                });
            }
            Record::Control {
                command,
                limit,
                value,
                ..
            } => match command.as_str() {
                "pause" | "flatten" => out.paused = true,
                "kill" => {
                    out.paused = true;
                    out.killed = true;
                }
                "resume" => {
                    out.paused = false;
                    out.killed = false;
                }
                "tighten" => {
                    let (Some(limit), Some(value)) = (limit, value) else {
                        return Err(JournalError::Corrupt {
                            path,
                            line: line_no,
                            reason: "a tighten without limit or value".to_owned(),
                        });
                    };
                    out.tightened.push((limit, value));
                }
                other => {
                    return Err(JournalError::Corrupt {
                        path,
                        line: line_no,
                        reason: format!("an unknown control command {other:?}"),
                    })
                }
            },
            Record::Order {
                id,
                exchange,
                symbol,
                side,
                price,
                qty,
                ..
            } => {
                out.next_order_id = out.next_order_id.max(id.saturating_add(1));
                let corrupt = |reason: String| JournalError::Corrupt {
                    path: path.clone(),
                    line: line_no,
                    reason,
                };
                let side = match side.as_str() {
                    "buy" => rt_core::Side::Buy,
                    "sell" => rt_core::Side::Sell,
                    other => return Err(corrupt(format!("an order's side {other:?}"))),
                };
                let price =
                    signed_units(&price).map_err(|e| corrupt(format!("an order's price {e}")))?;
                let qty = signed_units(&qty).map_err(|e| corrupt(format!("an order's qty {e}")))?;
                open.insert(
                    id,
                    UnfinishedOrder {
                        id,
                        engine: current_engine.clone(),
                        exchange,
                        symbol,
                        life: rt_core::OrderLifecycle::sent(
                            side,
                            rt_core::Price(price),
                            rt_core::Qty(qty),
                        ),
                        filled_beyond: 0,
                    },
                );
            }
            Record::Exec {
                id,
                exchange,
                symbol,
                side,
                kind,
                price,
                qty,
                fee,
                commission,
                commission_asset,
                leaves,
                ..
            } => match kind.as_str() {
                "fill" => {
                    // A fill that leaves nothing finishes the order (`rt_core::Exec::status`).
                    let left = leaves
                        .as_deref()
                        .map(|l| rt_core::parse_signed_units(l.as_bytes()));
                    if matches!(left, Some(Ok(units)) if units <= 0) {
                        open.remove(&id);
                    }
                    let (Some(price), Some(qty)) = (price, qty) else {
                        return Err(JournalError::Corrupt {
                            path,
                            line: line_no,
                            reason: "a fill without price or qty".to_owned(),
                        });
                    };
                    if let Some(o) = open.get_mut(&id) {
                        let units = signed_units(&qty).map_err(|e| JournalError::Corrupt {
                            path: path.clone(),
                            line: line_no,
                            reason: format!("a fill's qty {e}"),
                        })?;
                        // The venue's fill, as journaled: the order takes what fits it, the rest
                        // is counted beyond it (an amendment up the journal never saw), and the
                        // catch-up compares all of it with the venue's executed quantity.
                        let beyond =
                            o.life.apply_fill_capped(rt_core::Qty(units)).map_err(|e| {
                                JournalError::Corrupt {
                                    path: path.clone(),
                                    line: line_no,
                                    reason: format!("a fill of order {id}: {e}"),
                                }
                            })?;
                        o.filled_beyond = o.filled_beyond.saturating_add(beyond.0);
                    }
                    let base = commission_asset.as_deref().is_some_and(|a| {
                        rt_venues::assets::CommissionAsset::of(&symbol, a)
                            == rt_venues::assets::CommissionAsset::Base
                    });
                    out.fills.push(RecoveredFill {
                        exchange,
                        symbol,
                        side,
                        price,
                        qty,
                        fee: fee.unwrap_or_else(|| "0".to_owned()),
                        base_commission: match &commission {
                            Some(c) if base => c.clone(),
                            _ => "0".to_owned(),
                        },
                        commission: commission.unwrap_or_default(),
                        commission_asset: commission_asset.unwrap_or_default(),
                    });
                }
                // `closed`: the catch-up found it finished at the venue with nothing to add.
                "cancelled" | "expired" | "rejected" | "closed" => {
                    open.remove(&id);
                }
                "accepted" => {
                    if let Some(o) = open.get_mut(&id) {
                        // Never refused: an open order is not final.
                        let _late_or_first = o.life.accept();
                    }
                }
                "amended" => {
                    let (Some(price), Some(qty)) = (price, qty) else {
                        return Err(JournalError::Corrupt {
                            path,
                            line: line_no,
                            reason: "an amendment without price or qty".to_owned(),
                        });
                    };
                    if let Some(o) = open.get_mut(&id) {
                        let corrupt = |what: &str, e| JournalError::Corrupt {
                            path: path.clone(),
                            line: line_no,
                            reason: format!("an amendment's {what} {e}"),
                        };
                        let price = signed_units(&price).map_err(|e| corrupt("price", e))?;
                        let qty = signed_units(&qty).map_err(|e| corrupt("qty", e))?;
                        let amended = rt_core::OrderEvent::Amended {
                            price: rt_core::Price(price),
                            qty: rt_core::Qty(qty),
                        };
                        // One the lifecycle refuses (the order filled past it as journaled) is
                        // left, as the live path left it: the start's catch-up asks the venue.
                        let _refused = o.life.apply(amended);
                    }
                }
                _ => {}
            },
            Record::Cancel { .. } | Record::Amend { .. } | Record::Stop { .. } => {}
            Record::Funding {
                exchange,
                symbol,
                asset,
                amount,
                ..
            } => out.fundings.push(RecoveredFunding {
                exchange,
                symbol,
                asset,
                amount,
                ts: paid.0,
                id: paid.1,
                time_ms: paid.2,
            }),
            Record::Delivery {
                exchange,
                symbol,
                price,
                time_ms,
                ..
            } => {
                if !out
                    .deliveries
                    .iter()
                    .any(|d| d.exchange == exchange && d.symbol == symbol)
                {
                    out.deliveries.push(RecoveredDelivery {
                        exchange,
                        symbol,
                        price,
                        time_ms,
                    });
                }
            }
        }
    }
    out.unfinished_orders = open.into_values().collect();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(id: u64, side: &str, qty: &str) -> Record {
        fill_charged(id, side, qty, ("0.01", "0.01", "USDT"))
    }

    /// A fill with its (fee booked, commission, commission asset).
    fn fill_charged(id: u64, side: &str, qty: &str, charged: (&str, &str, &str)) -> Record {
        Record::Exec {
            ts: 1,
            id,
            exchange: "x".into(),
            symbol: "BTCUSDT".into(),
            side: side.into(),
            kind: "fill".into(),
            price: Some("100".into()),
            qty: Some(qty.into()),
            fee: Some(charged.0.into()),
            commission: Some(charged.1.into()),
            commission_asset: Some(charged.2.into()),
            maker: Some(true),
            leaves: Some("0.5".into()),
            reason: None,
        }
    }

    fn order(id: u64) -> Record {
        Record::Order {
            ts: 1,
            id,
            exchange: "x".into(),
            symbol: "BTCUSDT".into(),
            side: "buy".into(),
            kind: "limit".into(),
            price: "100".into(),
            qty: "1".into(),
        }
    }

    /// Unfinished orders replay through the order lifecycle: an acknowledgement, fills that
    /// add up (a fill beyond the order is capped at its quantity: the position still books it
    /// all), and an order the journal cannot read is refused, naming its line.
    #[test]
    fn unfinished_orders_replay_through_the_lifecycle() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let mut j = Journal::open(dir.path(), Fsync::Always, 10).expect("open");
            j.append(&order(1)).expect("append");
            j.append(&order(2)).expect("append");
            j.append(&fill(2, "buy", "0.75")).expect("append");
            j.append(&fill(2, "buy", "0.5")).expect("append");
            // Another fill of the order that is filled already (the venue overfilled it): the
            // journal still starts, and the fill is booked (the venue traded it).
            j.append(&fill(2, "buy", "0.25")).expect("append");
        }
        let r = recover(dir.path()).expect("recover");
        let open: Vec<(u64, bool, i64)> = r
            .unfinished_orders
            .iter()
            .map(|o| (o.id, o.life.status().is_acknowledged(), o.life.filled().0))
            .collect();
        assert_eq!(open, vec![(1, false, 0), (2, true, 100_000_000)]);
        assert_eq!(r.fills.len(), 3, "every fill is booked");

        let bad = tempfile::tempdir().expect("tempdir");
        {
            let mut j = Journal::open(bad.path(), Fsync::Always, 10).expect("open");
            j.append(&order(1)).expect("append");
            let mut o = order(2);
            if let Record::Order { side, .. } = &mut o {
                *side = "hold".into();
            }
            j.append(&o).expect("append");
            j.append(&order(3)).expect("append");
        }
        let e = recover(bad.path()).expect_err("an unreadable side");
        assert!(e.to_string().contains("line 2"), "{e}");
        assert!(e.to_string().contains("\"hold\""), "{e}");
    }

    /// An amendment the venue made changes the unfinished order's price and quantity (its
    /// request alone, or a refusal, changes nothing).
    #[test]
    fn an_amended_order_recovers_with_its_new_price_and_quantity() {
        let dir = tempfile::tempdir().expect("tempdir");
        let answer = |kind: &str, price: Option<&str>, qty: Option<&str>| Record::Exec {
            ts: 2,
            id: 1,
            exchange: "x".into(),
            symbol: "BTCUSDT".into(),
            side: "buy".into(),
            kind: kind.into(),
            price: price.map(Into::into),
            qty: qty.map(Into::into),
            fee: None,
            commission: None,
            commission_asset: None,
            maker: None,
            leaves: None,
            reason: (kind == "amend_rejected").then(|| "venue_rejected".into()),
        };
        {
            let mut j = Journal::open(dir.path(), Fsync::Always, 10).expect("open");
            j.append(&order(1)).expect("append");
            j.append(&fill(1, "buy", "0.25")).expect("append");
            for (price, qty) in [("99", "2"), ("98", "3")] {
                let asked = Record::Amend {
                    ts: 2,
                    id: 1,
                    price: price.into(),
                    qty: qty.into(),
                };
                j.append(&asked).expect("append");
            }
            j.append(&answer("amended", Some("99"), Some("2")))
                .expect("append");
            j.append(&answer("amend_rejected", None, None))
                .expect("append");
        }
        let r = recover(dir.path()).expect("recover");
        let o = &r.unfinished_orders[0].life;
        assert_eq!(
            (o.price().0, o.qty().0, o.leaves().0),
            (9_900_000_000, 200_000_000, 175_000_000)
        );
        // A fill past the order as journaled (an amendment up whose report was lost): the
        // order takes what fits, the rest is counted beyond it for the start's catch-up.
        {
            let mut j = Journal::open(dir.path(), Fsync::Always, 10).expect("open");
            j.append(&fill(1, "buy", "2")).expect("append");
        }
        let r = recover(dir.path()).expect("recover");
        let o = &r.unfinished_orders[0];
        assert_eq!(
            (o.life.filled().0, o.filled_beyond),
            (200_000_000, 25_000_000)
        );
        // An amendment journaled without its price: the journal names the line.
        let bad = tempfile::tempdir().expect("tempdir");
        {
            let mut j = Journal::open(bad.path(), Fsync::Always, 10).expect("open");
            j.append(&order(1)).expect("append");
            j.append(&answer("amended", None, Some("2")))
                .expect("append");
        }
        let e = recover(bad.path()).expect_err("no price");
        assert!(e.to_string().contains("line 2"), "{e}");
    }

    #[test]
    fn lag_counts_what_no_completed_fsync_covered_yet() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Interval: appends wait for the housekeeping thread's sync.
        let mut j = Journal::open(dir.path(), Fsync::Interval, 1).expect("open");
        let none = Lag {
            records: 0,
            unsynced: 0,
            age_ms: 0,
            fsync_errors: 0,
            interval_ms: 1,
        };
        assert_eq!(j.lag(), Some(none));
        j.append(&order(1)).expect("append");
        j.append(&order(2)).expect("append");
        std::thread::sleep(Duration::from_millis(5));
        let lag = j.lag().expect("interval");
        assert_eq!((lag.records, lag.unsynced), (2, 2));
        assert!(lag.age_ms >= 5, "{lag:?}");
        let (handle, ticket) = j.due_sync().expect("due").expect("a sync is due");
        // Appended while the sync is in flight: not covered by it.
        j.append(&order(3)).expect("append");
        handle.sync_data().expect("fsync");
        j.synced(ticket);
        let lag = j.lag().expect("interval");
        assert_eq!((lag.records, lag.unsynced), (3, 1), "{lag:?}");
        std::thread::sleep(Duration::from_millis(2));
        let (handle, ticket) = j.due_sync().expect("due").expect("a sync is due");
        handle.sync_data().expect("fsync");
        j.synced(ticket);
        assert_eq!(
            j.lag(),
            Some(Lag {
                records: 3,
                unsynced: 0,
                age_ms: 0,
                fsync_errors: 0,
                interval_ms: 1,
            })
        );
        // A failed fsync leaves its records unsynced and is tried again at the next due sync,
        // though nothing new was appended.
        j.append(&order(4)).expect("append");
        std::thread::sleep(Duration::from_millis(2));
        let (_handle, ticket) = j.due_sync().expect("due").expect("a sync is due");
        j.sync_failed(ticket);
        let lag = j.lag().expect("interval");
        assert_eq!((lag.unsynced, lag.fsync_errors), (1, 1), "{lag:?}");
        std::thread::sleep(Duration::from_millis(2));
        let (handle, ticket) = j
            .due_sync()
            .expect("due")
            .expect("retried with no new record");
        handle.sync_data().expect("fsync");
        j.synced(ticket);
        assert_eq!(j.lag().map(|l| l.unsynced), Some(0));
        // Always: every append is synced before it returns.
        let dir = tempfile::tempdir().expect("tempdir");
        let mut j = Journal::open(dir.path(), Fsync::Always, 1).expect("open");
        j.append(&order(1)).expect("append");
        assert_eq!(j.lag().map(|l| (l.records, l.unsynced)), Some((1, 0)));
        // Never: nothing is synced here, so there is no lag to report.
        let dir = tempfile::tempdir().expect("tempdir");
        let mut j = Journal::open(dir.path(), Fsync::Never, 1).expect("open");
        j.append(&order(1)).expect("append");
        assert_eq!(j.lag(), None);
    }

    #[test]
    fn recovers_fills_ids_and_open_orders_and_survives_a_torn_tail() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let mut j = Journal::open(dir.path(), Fsync::Always, 10).expect("open");
            j.append(&order(1)).expect("append");
            j.append(&fill(1, "buy", "0.5")).expect("append");
            j.append(&order(7)).expect("append");
            j.append(&fill_charged(7, "buy", "0.25", ("0", "0.00025", "BTC")))
                .expect("append");
            j.append(&Record::Exec {
                ts: 2,
                id: 1,
                exchange: "x".into(),
                symbol: "BTCUSDT".into(),
                side: "buy".into(),
                kind: "cancelled".into(),
                price: None,
                qty: None,
                fee: None,
                commission: None,
                commission_asset: None,
                maker: None,
                leaves: None,
                reason: None,
            })
            .expect("append");
        }
        // A crash in the middle of a write.
        let path = dir.path().join(FILE_NAME);
        let mut f = OpenOptions::new().append(true).open(&path).expect("reopen");
        f.write_all(b"{\"t\":\"exec\",\"ts\":3,\"id\":7,\"exch")
            .expect("write");
        drop(f);
        let r = recover(dir.path()).expect("recover");
        assert_eq!(r.records, 5);
        assert!(r.torn_tail);
        assert_eq!(r.next_order_id, 8);
        let ids: Vec<u64> = r.unfinished_orders.iter().map(|o| o.id).collect();
        assert_eq!(ids, vec![7]);
        // Its journaled fills: what a catch-up with the venue starts from.
        assert_eq!(
            r.unfinished_orders[0].life.filled(),
            rt_core::Qty(25_000_000)
        );
        assert_eq!(r.unfinished_orders[0].life.qty(), rt_core::Qty(100_000_000));
        assert!(r.unfinished_orders[0].life.status().is_acknowledged());
        assert_eq!(r.fills.len(), 2);
        assert_eq!(r.fills[0].qty, "0.5");
        // A quote commission is a fee; a base one leaves the position at restart too.
        assert_eq!(r.fills[0].base_commission, "0");
        assert_eq!(r.fills[1].base_commission, "0.00025");
        assert!(!r.clean_stop);
    }

    #[test]
    fn a_delivery_round_trips_and_a_contract_is_recovered_as_delivered_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let delivery = |ts: i64, price: &str| Record::Delivery {
            ts,
            exchange: "okx".into(),
            symbol: "BTCUSD270326".into(),
            price: price.into(),
            time_ms: 1_806_048_000_000,
        };
        {
            let mut j = Journal::open(dir.path(), Fsync::Always, 10).expect("open");
            j.append(&start("a")).expect("append");
            j.append(&fill(1, "SELL", "3")).expect("append");
            j.append(&delivery(9_000_000, "61234.5")).expect("append");
            // A second record of the same contract's delivery (never written by the gateway,
            // which books a contract once) does not deliver it twice.
            j.append(&delivery(9_500_000, "1")).expect("append");
        }
        let text = std::fs::read_to_string(dir.path().join(FILE_NAME)).expect("read");
        assert!(
            text.contains(
                "{\"t\":\"delivery\",\"ts\":9000000,\"exchange\":\"okx\",\
                 \"symbol\":\"BTCUSD270326\",\"price\":\"61234.5\",\
                 \"time_ms\":1806048000000}"
            ),
            "{text}"
        );
        let r = recover(dir.path()).expect("recover");
        assert_eq!(
            r.deliveries,
            [RecoveredDelivery {
                exchange: "okx".into(),
                symbol: "BTCUSD270326".into(),
                price: "61234.5".into(),
                time_ms: 1_806_048_000_000,
            }]
        );
        assert_eq!(r.fills.len(), 1);
    }

    #[test]
    fn a_funding_payment_keeps_the_venues_id_and_time_and_an_older_one_recovers_without() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(FILE_NAME);
        // A journal written before payments carried the venue's id and time.
        std::fs::write(
            &path,
            "{\"t\":\"start\",\"ts\":5000000,\"engine\":\"e\",\"manifest_sha256\":\"a\",\"pid\":1}\n\
             {\"t\":\"funding\",\"ts\":7000000,\"exchange\":\"x\",\"symbol\":\"BTCUSDT\",\
             \"asset\":\"USDT\",\"amount\":\"-1.5\"}\n",
        )
        .expect("write");
        {
            let mut j = Journal::open(dir.path(), Fsync::Always, 10).expect("open");
            j.append(&start("a")).expect("append");
            j.append(&Record::Funding {
                ts: 9_000_000,
                exchange: "x".into(),
                symbol: "BTCUSDT".into(),
                asset: "USDT".into(),
                amount: "0.25".into(),
                id: Some(42),
                time_ms: Some(8),
            })
            .expect("append");
        }
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.contains("\"id\":42,\"time_ms\":8"), "{text}");
        let r = recover(dir.path()).expect("recover");
        assert_eq!(r.first_start_ts, Some(5_000_000));
        let got: Vec<_> = r
            .fundings
            .iter()
            .map(|f| (f.amount.as_str(), f.id, f.time_ms, f.paid_ms()))
            .collect();
        // The older payment's time is when it was journaled.
        assert_eq!(
            got,
            vec![("-1.5", None, None, 7), ("0.25", Some(42), Some(8), 8)]
        );
    }

    fn start(sha: &str) -> Record {
        Record::Start {
            ts: 1,
            engine: "e".into(),
            manifest_sha256: sha.into(),
            pid: 1,
        }
    }

    fn control(command: &str, tighten: Option<(&str, &str)>) -> Record {
        Record::Control {
            ts: 1,
            command: command.into(),
            limit: tighten.map(|t| t.0.to_owned()),
            value: tighten.map(|t| t.1.to_owned()),
        }
    }

    #[test]
    fn recovers_the_risk_state_the_anchors_a_pause_and_the_tightened_limits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let records = [
            start("aaa"),
            control("tighten", Some(("max_open_orders", "2"))),
            Record::Risk {
                ts: 5,
                from: "active".into(),
                to: "reducing".into(),
                cause: "daily_loss".into(),
                detail: None,
            },
            Record::Anchors {
                ts: 6,
                day: 20_000,
                day_start_equity: "-1.5".into(),
                peak_equity: "3".into(),
            },
            control("kill", None),
            Record::Risk {
                ts: 7,
                from: "reducing".into(),
                to: "halted".into(),
                cause: "kill_switch".into(),
                detail: None,
            },
            Record::Stop {
                ts: 8,
                open_orders: 0,
            },
            // The same manifest again: the tightened limit is still in force.
            start("aaa"),
            control(
                "tighten",
                Some(("instruments.BTCUSDT.max_position", "0.01")),
            ),
        ];
        {
            let mut j = Journal::open(dir.path(), Fsync::Never, 10).expect("open");
            for r in &records {
                j.append(r).expect("append");
            }
        }
        let r = recover(dir.path()).expect("recover");
        assert_eq!(
            r.risk,
            Some(RecoveredRisk {
                ts: 7,
                state: "halted".into(),
                cause: "kill_switch".into()
            })
        );
        let a = r.anchors.expect("anchors");
        assert_eq!((a.day, a.day_start_equity.as_str()), (20_000, "-1.5"));
        assert_eq!(signed_units(&a.day_start_equity), Ok(-150_000_000));
        assert_eq!(signed_units(&a.peak_equity), Ok(300_000_000));
        // What the engine writes (`dec`) reads back, negative or not.
        for units in [-150_000_000, 0, 1, 123_456_789_012] {
            assert_eq!(signed_units(&crate::shared::dec(units)), Ok(units));
        }
        assert!(r.paused && r.killed);
        assert_eq!(r.manifest_sha256.as_deref(), Some("aaa"));
        assert_eq!(
            r.tightened,
            vec![
                ("max_open_orders".to_owned(), "2".to_owned()),
                (
                    "instruments.BTCUSDT.max_position".to_owned(),
                    "0.01".to_owned()
                ),
            ]
        );

        // A resume lifts the pause; a new manifest drops the tightened limits.
        {
            let mut j = Journal::open(dir.path(), Fsync::Never, 10).expect("open");
            j.append(&control("resume", None)).expect("append");
            j.append(&start("bbb")).expect("append");
        }
        let r = recover(dir.path()).expect("recover");
        assert!(!r.paused && !r.killed);
        assert!(r.tightened.is_empty());
        assert_eq!(r.manifest_sha256.as_deref(), Some("bbb"));
    }

    #[test]
    fn an_unknown_control_command_is_an_error_naming_its_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join(FILE_NAME),
            "{\"t\":\"control\",\"ts\":1,\"command\":\"dance\"}\n{\"t\":\"stop\",\"ts\":2,\"open_orders\":0}\n",
        )
        .expect("write");
        let err = recover(dir.path()).expect_err("corrupt");
        assert!(err.to_string().contains("line 1"), "{err}");
        assert!(err.to_string().contains("dance"), "{err}");
    }

    #[test]
    fn appending_after_a_torn_tail_cuts_it_off_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(FILE_NAME);
        {
            let mut j = Journal::open(dir.path(), Fsync::Never, 10).expect("open");
            j.append(&order(1)).expect("append");
        }
        let mut f = OpenOptions::new().append(true).open(&path).expect("reopen");
        f.write_all(b"{\"t\":\"exec\",\"ts\":3,\"id\":1,\"exch")
            .expect("write");
        drop(f);
        assert!(recover(dir.path()).expect("recover").torn_tail);
        // The restart's catch-up appends two records: both must read back, whole.
        {
            let mut j = Journal::open(dir.path(), Fsync::Never, 10).expect("open");
            j.append(&fill(1, "buy", "0.5")).expect("append");
            j.append(&order(2)).expect("append");
        }
        let r = recover(dir.path()).expect("no glued line in the middle");
        assert!(!r.torn_tail);
        assert_eq!(r.records, 3);
        assert_eq!(r.fills.len(), 1);

        // A whole record that only lacks its newline is kept, not cut.
        let mut f = OpenOptions::new().append(true).open(&path).expect("reopen");
        let line = serde_json::to_vec(&order(3)).expect("encode");
        f.write_all(&line).expect("write");
        drop(f);
        {
            let mut j = Journal::open(dir.path(), Fsync::Never, 10).expect("open");
            j.append(&order(4)).expect("append");
        }
        let r = recover(dir.path()).expect("recover");
        assert_eq!(r.records, 5);
        assert_eq!(r.next_order_id, 5);
    }

    #[test]
    fn a_torn_last_line_that_ends_with_a_newline_is_cut_off_too() {
        // Found by fuzzing (engine/fuzz, target journal): a last line that is not a record but
        // ends with a newline was skipped as torn and kept, so the next start's records followed
        // it and it became a corrupt line in the middle: the restart after that one failed.
        for tail in [&b"a\n"[..], b"{\"t\":\"exec\",\"ts\":3,\"id\":1,\"exch\n"] {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join(FILE_NAME);
            let mut journal = serde_json::to_vec(&order(1)).expect("encode");
            journal.push(b'\n');
            journal.extend_from_slice(tail);
            std::fs::write(&path, &journal).expect("write");
            let r = recover(dir.path()).expect("recover");
            assert_eq!((r.records, r.torn_tail), (1, true));
            {
                let mut j = Journal::open(dir.path(), Fsync::Never, 10).expect("open");
                j.append(&order(2)).expect("append");
            }
            let r = recover(dir.path()).expect("the torn line is gone");
            assert_eq!((r.records, r.torn_tail, r.next_order_id), (2, false, 3));
        }
    }

    #[test]
    fn a_last_line_torn_inside_a_character_is_skipped_and_cut_off() {
        // Found by fuzzing (engine/fuzz, target journal): a crash that tears the last line in
        // the middle of a multi-byte character left bytes that are not UTF-8, and recovery
        // stopped with an I/O error instead of skipping the torn line: the engine could not
        // restart. A journal with such a line in the middle is still refused, naming it.
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(FILE_NAME);
        let mut journal = serde_json::to_vec(&order(1)).expect("encode");
        journal.push(b'\n');
        // "{"t":"risk","cause":"é" torn after the first byte of the é.
        journal.extend_from_slice(b"{\"t\":\"risk\",\"cause\":\"\xc3");
        std::fs::write(&path, &journal).expect("write");
        let r = recover(dir.path()).expect("recover past the torn character");
        assert_eq!((r.records, r.torn_tail, r.next_order_id), (1, true, 2));
        {
            let mut j = Journal::open(dir.path(), Fsync::Never, 10).expect("open");
            j.append(&order(2)).expect("append");
        }
        let r = recover(dir.path()).expect("the torn line is gone");
        assert_eq!((r.records, r.torn_tail, r.next_order_id), (2, false, 3));

        let mut middle = serde_json::to_vec(&order(1)).expect("encode");
        middle.extend_from_slice(b"\n\xff\xfe\n");
        middle.extend_from_slice(&serde_json::to_vec(&order(2)).expect("encode"));
        middle.push(b'\n');
        std::fs::write(&path, &middle).expect("write");
        let err = recover(dir.path()).expect_err("a bad line in the middle");
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn a_corrupt_line_in_the_middle_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join(FILE_NAME),
            "{\"t\":\"stop\",\"ts\":1,\"open_orders\":0}\nnot json\n{\"t\":\"stop\",\"ts\":2,\"open_orders\":0}\n",
        )
        .expect("write");
        let err = recover(dir.path()).expect_err("corrupt");
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn a_missing_journal_is_a_fresh_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let r = recover(&dir.path().join("nothing")).expect("recover");
        assert_eq!(r.next_order_id, 1);
        assert!(r.fills.is_empty());
    }
}
