//! `appliance data verify`: rebuild every instrument's book from a capture and check it against
//! the oracle the data carries.
//!
//! - Binance: the best bid and ask (price and size) of every `bookTicker` whose `u` is the final
//!   update id of an applied depth diff must equal the rebuilt book's at that id (the bookTicker
//!   may come before or after its diff). Books are synchronised with `rt_core::BookSync`, the
//!   live feed's own rule (USD-M's when the capture's diffs carry `pu`).
//! - OKX: every `books` message's CRC32 `checksum` ([`crate::okx`]).
//! - Kraken: every `book` message's CRC32 `c` ([`crate::kraken`]).
//!
//! Every instrument in the capture is checked, declared in a config or not. The venue is read
//! from the capture (a cryptofeed header's URL, else the frames' shape).

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

use rt_core::{Bbo, BookSync, DiffOutcome, MarketEvent, SyncRule};

use crate::checksum::{Checked, CheckedBooks};
use crate::kraken::{KrakenBooks, KrakenDecoder};
use crate::okx::{OkxBooks, OkxDecoder};
use crate::{CaptureReader, Error, FrameReader};

/// The venue whose protocol a capture holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Venue {
    Binance,
    Okx,
    Kraken,
}

impl Venue {
    pub const fn name(self) -> &'static str {
        match self {
            Venue::Binance => "binance",
            Venue::Okx => "okx",
            Venue::Kraken => "kraken",
        }
    }
}

/// What checking one instrument found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InstrumentCheck {
    pub instrument: String,
    /// `checksum` (OKX, Kraken) or `bookTicker` (Binance).
    pub oracle: &'static str,
    /// Book messages applied (diffs, snapshots, or checksummed messages).
    pub messages: u64,
    /// Oracle checkpoints compared with the rebuilt book, and how many matched.
    pub checked: u64,
    pub matched: u64,
    /// Sequence gaps (Binance ids, OKX seqId) found.
    pub gaps: u64,
    /// Times the book was rebuilt from a new snapshot.
    pub resyncs: u64,
    /// Book messages skipped while the book was not valid.
    pub unverified: u64,
    /// Where the first mismatch was, and what differed.
    pub first_mismatch: Option<String>,
}

impl InstrumentCheck {
    pub fn mismatched(&self) -> u64 {
        self.checked - self.matched
    }
}

/// The whole capture's outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verification {
    pub venue: Venue,
    pub files: Vec<PathBuf>,
    pub instruments: Vec<InstrumentCheck>,
    /// Frames that could not be decoded (each is also a failed verification).
    pub decode_errors: u64,
    pub first_decode_error: Option<String>,
}

impl Verification {
    /// Every checkpoint matched, at least one was checked, and every frame decoded.
    pub fn passed(&self) -> bool {
        self.decode_errors == 0
            && self.instruments.iter().any(|i| i.checked > 0)
            && self.instruments.iter().all(|i| i.mismatched() == 0)
    }
}

/// The venue of a capture, from its first bytes (a cryptofeed header names the URL).
pub fn detect_venue(path: &Path) -> Result<Venue, Error> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut head = [0u8; 2];
    let n = file.read(&mut head).map_err(io)?;
    let file = std::fs::File::open(path).map_err(io)?;
    let mut input: Box<dyn Read> = if n == 2 && head == [0x1f, 0x8b] {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut buf = vec![0u8; 8192];
    let mut filled = 0;
    while filled < buf.len() {
        let n = input.read(&mut buf[filled..]).map_err(io)?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    let text = String::from_utf8_lossy(&buf[..filled]);
    let first = text.lines().next().unwrap_or_default();
    if first.contains("okx.com") || first.contains("okex.com") || text.contains("{\"arg\":{") {
        Ok(Venue::Okx)
    } else if first.contains("kraken.com") || text.contains("\"book-") {
        Ok(Venue::Kraken)
    } else {
        Ok(Venue::Binance)
    }
}

/// Verifies `paths` (one capture, or the chained files of one).
pub fn verify(paths: &[PathBuf]) -> Result<Verification, Error> {
    let Some(first) = paths.first() else {
        return Err(Error::Native {
            path: PathBuf::new(),
            reason: "no capture given".to_string(),
        });
    };
    let venue = detect_venue(first)?;
    for path in &paths[1..] {
        let other = detect_venue(path)?;
        if other != venue {
            return Err(Error::Native {
                path: path.clone(),
                reason: format!(
                    "holds {} data, the first file {} data: verify one venue's files at a time",
                    other.name(),
                    venue.name()
                ),
            });
        }
    }
    let mut out = match venue {
        Venue::Binance => binance(paths)?,
        Venue::Okx | Venue::Kraken => checksummed(venue, paths)?,
    };
    out.files = paths.to_vec();
    Ok(out)
}

fn checksummed(venue: Venue, paths: &[PathBuf]) -> Result<Verification, Error> {
    let mut okx = (OkxDecoder::new(), OkxBooks::new());
    let mut kraken = (KrakenDecoder::new(), KrakenBooks::new());
    let mut decode_errors = 0;
    let mut first_decode_error = None;
    let mut first_mismatch: HashMap<String, String> = HashMap::new();
    for path in paths {
        let mut frames = FrameReader::open(path)?;
        while let Some(frame) = frames.next_frame() {
            let frame = frame?;
            let (outcome, name) = match venue {
                Venue::Okx => match okx.0.decode(frame.bytes) {
                    Ok(f) => (okx.1.apply(&f, &okx.0), f.inst_id),
                    Err(e) => {
                        decode_errors += 1;
                        first_decode_error.get_or_insert_with(|| {
                            format!("{}, line {}: {e}", path.display(), frame.line)
                        });
                        continue;
                    }
                },
                _ => match kraken.0.decode(frame.bytes) {
                    Ok(f) => (kraken.1.apply(&f, &kraken.0), f.pair),
                    Err(e) => {
                        decode_errors += 1;
                        first_decode_error.get_or_insert_with(|| {
                            format!("{}, line {}: {e}", path.display(), frame.line)
                        });
                        continue;
                    }
                },
            };
            if let Some(Checked::Mismatch { expected, computed }) = outcome {
                let name = String::from_utf8_lossy(name).into_owned();
                first_mismatch.entry(name).or_insert_with(|| {
                    format!(
                        "{}, line {}: the venue's checksum is {expected}, the rebuilt book's \
                         {computed}",
                        path.display(),
                        frame.line
                    )
                });
            }
        }
    }
    let books: &CheckedBooks = match venue {
        Venue::Okx => &okx.1,
        _ => &kraken.1,
    };
    let instruments = books
        .books()
        .map(|(name, b)| InstrumentCheck {
            instrument: name.to_string(),
            oracle: "checksum",
            messages: b.counters.messages,
            checked: b.counters.checked,
            matched: b.counters.matched,
            gaps: b.gaps,
            resyncs: b.counters.resyncs,
            unverified: b.counters.unverified,
            first_mismatch: first_mismatch.get(name).cloned(),
        })
        .collect();
    Ok(Verification {
        venue,
        files: Vec::new(),
        instruments,
        decode_errors,
        first_decode_error,
    })
}

/// One Binance instrument: its sync, the bookTickers waiting for the diff that ends at their
/// `u`, and its report.
struct Binance {
    sync: BookSync,
    waiting: BTreeMap<u64, Bbo>,
    check: InstrumentCheck,
}

impl Binance {
    fn compare(&mut self, b: &Bbo) {
        self.check.checked += 1;
        let book = self.sync.book();
        let got = (book.best_bid(), book.best_ask());
        if got == (Some(b.bid), Some(b.ask)) {
            self.check.matched += 1;
        } else if self.check.first_mismatch.is_none() {
            self.check.first_mismatch = Some(format!(
                "update id {}: the book's best bid/ask {got:?}, the bookTicker's {:?} {:?}",
                b.update_id, b.bid, b.ask
            ));
        }
    }

    /// The book reached a new update id: check the bookTicker waiting for it and forget those
    /// it passed (they fell inside a diff: unobservable).
    fn reached(&mut self) {
        let Some(id) = self.sync.last_update_id() else {
            return;
        };
        if let Some(b) = self.waiting.remove(&id) {
            self.compare(&b);
        }
        self.waiting = self.waiting.split_off(&id);
    }
}

fn binance(paths: &[PathBuf]) -> Result<Verification, Error> {
    // USD-M diffs carry `pu`: the rule is read from the capture before the replay.
    let mut rule = SyncRule::Spot;
    let mut probe = CaptureReader::open_many(paths)?;
    while let Some(event) = probe.next_event() {
        if let Ok(MarketEvent::Depth(d)) = event {
            if d.prev_final_id.is_some() {
                rule = SyncRule::UsdM;
            }
            break;
        }
    }
    let mut reader = CaptureReader::open_many(paths)?;
    let mut instruments: Vec<Binance> = Vec::new();
    let mut decode_errors = 0;
    let mut first_decode_error = None;
    while let Some(event) = reader.next_event() {
        let event = match event {
            Ok(event) => event,
            Err(e) => {
                decode_errors += 1;
                first_decode_error.get_or_insert_with(|| e.to_string());
                continue;
            }
        };
        let symbol = event.header().symbol as usize;
        while instruments.len() <= symbol {
            instruments.push(Binance {
                sync: BookSync::new(rule),
                waiting: BTreeMap::new(),
                check: InstrumentCheck {
                    oracle: "bookTicker",
                    ..InstrumentCheck::default()
                },
            });
        }
        let inst = &mut instruments[symbol];
        match event {
            MarketEvent::Depth(d) => {
                inst.check.messages += 1;
                match inst.sync.on_diff(&d) {
                    DiffOutcome::Applied => inst.reached(),
                    DiffOutcome::Stale | DiffOutcome::Buffered => {}
                    // A crossed book (kept, unusable) is not one the exchange ever showed.
                    DiffOutcome::Crossed | DiffOutcome::Gap | DiffOutcome::Invalid => {
                        inst.check.unverified += 1
                    }
                }
            }
            MarketEvent::Snapshot(s) => {
                inst.check.messages += 1;
                inst.sync.on_snapshot(&s);
                inst.reached();
            }
            MarketEvent::Trade(_) => {}
            MarketEvent::Bbo(b) => match inst.sync.last_update_id() {
                Some(id) if id == b.update_id => inst.compare(&b),
                Some(id) if id > b.update_id => {}
                _ => {
                    inst.waiting.insert(b.update_id, b);
                }
            },
        }
    }
    let names = reader.symbols().to_vec();
    let instruments = instruments
        .into_iter()
        .enumerate()
        .map(|(i, mut inst)| {
            let c = inst.sync.counters();
            inst.check.instrument = names.get(i).cloned().unwrap_or_else(|| i.to_string());
            inst.check.gaps = c.gaps;
            inst.check.resyncs = c.resyncs;
            inst.check
        })
        .collect();
    Ok(Verification {
        venue: Venue::Binance,
        files: Vec::new(),
        instruments,
        decode_errors,
        first_decode_error,
    })
}
