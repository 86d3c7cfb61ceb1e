//! The built-in oracle of the real Binance captures (see `shared/data/README.md`): a book
//! rebuilt with `BookSync` from the REST snapshot plus the diffs must match, exactly, the best
//! bid/ask price and size of every `bookTicker` whose `u` is the final id of the last applied
//! diff. Run over every capture in the shared data directory, through the raw capture reader
//! and through the native file converted from it; plus corrupted streams (a dropped, a
//! duplicated, a malformed and a crossing message) that must be detected, never panic, and
//! never leave a wrong book in use.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use rt_core::{
    Bbo, BookSync, DepthDiff, DiffOutcome, Header, Level, MarketEvent, Price, Side, Snapshot,
    SyncCounters, SyncRule, SyncState, MAX_CROSSED_DIFFS,
};
use rt_venues::{convert, open_any, CaptureReader, EventSource, FrameReader};

/// `../shared/data/binance` beside the project; else the project's bundled copy (one file).
fn data_dir() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shared = root.join("../../../shared/data/binance");
    if shared.is_dir() {
        return shared;
    }
    let bundled = root.join("../../data/binance");
    eprintln!(
        "shared data directory {} is absent: using the bundled copy {}",
        shared.display(),
        bundled.display()
    );
    bundled
}

fn tmp(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)
}

#[derive(Debug, Default)]
struct Outcome {
    events: u64,
    bbos: u64,
    /// Checkpoints compared: a bookTicker whose `u` is the final id of an applied diff, checked
    /// against the book right after that diff, whether the bookTicker came after the diff
    /// (`at_arrival`) or before it (spot's depth@100ms diffs trail the real-time bookTicker).
    checkpoints: u64,
    at_arrival: u64,
    mismatches: u64,
    first_mismatches: Vec<String>,
    decode_errors: u64,
    /// bookTickers seen while the book was not synced (never compared).
    unsynced_bbos: u64,
    counters: SyncCounters,
    diff_outcomes: Vec<DiffOutcome>,
    final_state: Option<SyncState>,
}

/// One instrument: its sync and the bookTickers waiting for the diff that ends at their `u`.
struct Instrument {
    sync: BookSync,
    waiting: BTreeMap<u64, Bbo>,
}

impl Outcome {
    fn compare(&mut self, sync: &BookSync, b: &Bbo) {
        self.checkpoints += 1;
        let book = sync.book();
        let got = (book.best_bid(), book.best_ask());
        if got != (Some(b.bid), Some(b.ask)) {
            self.mismatches += 1;
            if self.first_mismatches.len() < 5 {
                self.first_mismatches.push(format!(
                    "u={} book {got:?} bookTicker {:?} {:?}",
                    b.update_id, b.bid, b.ask
                ));
            }
        }
        assert!(book.check().is_ok(), "synced book fails its invariants");
    }

    /// The book has just reached a new update id: check the bookTicker waiting for it, and
    /// forget those it has passed (they fell inside a diff: unobservable).
    fn reached(&mut self, inst: &mut Instrument) {
        let Some(id) = inst.sync.last_update_id() else {
            return;
        };
        if let Some(b) = inst.waiting.remove(&id) {
            self.compare(&inst.sync, &b);
        }
        inst.waiting = inst.waiting.split_off(&id);
    }
}

/// Replays events through one `BookSync` per symbol and checks every checkpoint.
fn run_oracle(source: &mut dyn EventSource, rule: SyncRule) -> Outcome {
    let mut instruments: Vec<Instrument> = Vec::new();
    let mut out = Outcome::default();
    while let Some(event) = source.next_event() {
        let event = match event {
            Ok(event) => event,
            Err(_) => {
                out.decode_errors += 1;
                continue;
            }
        };
        out.events += 1;
        let symbol = event.header().symbol as usize;
        while instruments.len() <= symbol {
            instruments.push(Instrument {
                sync: BookSync::new(rule),
                waiting: BTreeMap::new(),
            });
        }
        let inst = &mut instruments[symbol];
        match event {
            MarketEvent::Depth(d) => {
                let outcome = inst.sync.on_diff(&d);
                out.diff_outcomes.push(outcome);
                if outcome == DiffOutcome::Applied {
                    out.reached(inst);
                }
            }
            MarketEvent::Snapshot(s) => {
                inst.sync.on_snapshot(&s);
                out.reached(inst);
            }
            MarketEvent::Trade(_) => {}
            MarketEvent::Bbo(b) => {
                out.bbos += 1;
                if !inst.sync.is_synced() {
                    // The book is not in use: it must be empty, never a stale leftover.
                    assert!(inst.sync.book().is_empty(), "an unsynced book holds levels");
                    out.unsynced_bbos += 1;
                }
                match inst.sync.last_update_id() {
                    Some(id) if id == b.update_id => {
                        out.at_arrival += 1;
                        out.compare(&inst.sync, &b);
                    }
                    Some(id) if id > b.update_id => {}
                    _ => {
                        inst.waiting.insert(b.update_id, b);
                    }
                }
            }
        }
    }
    for inst in &instruments {
        let c = inst.sync.counters();
        out.counters.applied += c.applied;
        out.counters.stale += c.stale;
        out.counters.buffered += c.buffered;
        out.counters.gaps += c.gaps;
        out.counters.invalid += c.invalid;
        out.counters.snapshots += c.snapshots;
        out.counters.resyncs += c.resyncs;
    }
    out.final_state = instruments.first().map(|i| i.sync.state());
    out
}

fn rule_for(name: &str) -> SyncRule {
    if name.contains("usdm") || name.contains("FUTURES") {
        SyncRule::UsdM
    } else {
        SyncRule::Spot
    }
}

fn assert_clean(label: &str, out: &Outcome, min_checkpoints: u64) {
    println!(
        "{label}: {} events, {} bookTickers, {} checkpoints compared ({} after their diff, \
         {} before it), {} mismatches, counters {:?}",
        out.events,
        out.bbos,
        out.checkpoints,
        out.at_arrival,
        out.checkpoints - out.at_arrival,
        out.mismatches,
        out.counters
    );
    assert_eq!(out.decode_errors, 0, "{label}: decode errors");
    assert_eq!(
        out.mismatches, 0,
        "{label}: mismatches {:?}",
        out.first_mismatches
    );
    assert_eq!(out.counters.gaps, 0, "{label}: gaps");
    assert_eq!(out.counters.invalid, 0, "{label}: invalid diffs");
    assert!(
        out.checkpoints >= min_checkpoints,
        "{label}: only {} checkpoints (expected >= {min_checkpoints})",
        out.checkpoints
    );
}

/// Minimum checkpoints per capture (measured counts, rounded down), so that a silently
/// skipped comparison fails the test.
fn min_checkpoints(name: &str) -> u64 {
    match name {
        "spot_btcusdt_20240808.gz" => 560,
        "usdm_btcusdt_20240808.gz" => 600,
        _ => 1,
    }
}

fn captures() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(data_dir())
        .expect("the data directory is readable")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            p.is_file() && (name.ends_with(".gz") || name.contains(".ws."))
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no capture found");
    files
}

fn has_snapshot(path: &Path) -> bool {
    let mut reader = CaptureReader::open(path).unwrap();
    while let Some(event) = reader.next_event() {
        if let Ok(MarketEvent::Snapshot(_)) = event {
            return true;
        }
    }
    false
}

#[test]
fn every_capture_matches_the_oracle() {
    for path in captures() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let rule = rule_for(&name);
        if name.starts_with("cryptofeed_") {
            // These 30 s multi-symbol recordings hold no REST snapshot (only WebSocket frames),
            // so no book can be built and the oracle does not apply: check conformance (every
            // frame decodes, klines are ignored rather than refused) and that each symbol's
            // diffs chain without a gap under the venue's rule.
            cryptofeed_conformance(&path, rule);
            continue;
        }
        if !has_snapshot(&path) {
            // spot_btcusdt_20240809.gz continues 20240808 and holds no snapshot: alone, every
            // diff stays buffered and nothing is compared (it is checked chained below).
            let mut reader = CaptureReader::open(&path).unwrap();
            let out = run_oracle(&mut reader, rule);
            println!(
                "{name} alone: no snapshot, {} events, {} bookTickers, 0 checkpoints (book \
                 never synced, as it must be)",
                out.events, out.bbos
            );
            assert_eq!(out.decode_errors, 0);
            assert_eq!(out.checkpoints, 0);
            assert_eq!(out.counters.applied, 0);
            assert_eq!(out.final_state, Some(SyncState::AwaitingSnapshot));
            continue;
        }
        let mut reader = CaptureReader::open(&path).unwrap();
        let raw = run_oracle(&mut reader, rule);
        assert_clean(&format!("{name} (capture)"), &raw, min_checkpoints(&name));
        assert_eq!(reader.stats().decode.errors, 0);
        assert_eq!(raw.final_state, Some(SyncState::Synced));

        // The same through the native file.
        let native = tmp(&format!("{name}.rtev"));
        let stats = convert(&path, &native).unwrap();
        println!(
            "{name}: converted to {} rows ({} hftbacktest-style rows), {:?}",
            stats.rows,
            stats.hftbacktest_rows(),
            stats
        );
        let mut reader = open_any(&native).unwrap();
        assert!(reader.is_native());
        let out = run_oracle(&mut reader, rule);
        assert_clean(&format!("{name} (native)"), &out, min_checkpoints(&name));
        assert_eq!((out.events, out.checkpoints), (raw.events, raw.checkpoints));
        assert_eq!(stats.events, raw.events);
    }
}

#[test]
fn spot_days_chain_into_one_stream() {
    let dir = data_dir();
    let days = [
        dir.join("spot_btcusdt_20240808.gz"),
        dir.join("spot_btcusdt_20240809.gz"),
    ];
    if !days[1].exists() {
        eprintln!("spot_btcusdt_20240809.gz absent (bundled data): chained check skipped");
        return;
    }
    let mut reader = CaptureReader::open_many(&days).unwrap();
    let out = run_oracle(&mut reader, SyncRule::Spot);
    assert_clean("spot 20240808 + 20240809 (one stream)", &out, 1_050);
    assert_eq!(out.counters.snapshots, 1);
    assert_eq!(out.final_state, Some(SyncState::Synced));
    assert_eq!(reader.symbols(), &["BTCUSDT".to_owned()]);
}

fn cryptofeed_conformance(path: &Path, rule: SyncRule) {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let mut reader = CaptureReader::open(path).unwrap();
    let mut last_final: Vec<Option<u64>> = Vec::new();
    let (mut events, mut chained, mut depth) = (0u64, 0u64, 0u64);
    while let Some(event) = reader.next_event() {
        let event = event.unwrap_or_else(|e| panic!("{name}: {e}"));
        events += 1;
        let MarketEvent::Depth(d) = event else {
            continue;
        };
        depth += 1;
        let symbol = d.header.symbol as usize;
        if last_final.len() <= symbol {
            last_final.resize(symbol + 1, None);
        }
        if let Some(prev) = last_final[symbol] {
            let linked = match rule {
                SyncRule::Spot => d.first_id == prev + 1,
                SyncRule::UsdM => d.prev_final_id == Some(prev),
            };
            assert!(linked, "{name}: gap in {} at U={}", symbol, d.first_id);
            chained += 1;
        }
        last_final[symbol] = Some(d.final_id);
    }
    let stats = reader.stats();
    println!(
        "{name}: no REST snapshot, oracle not applicable; {} frames decoded, {events} events, \
         {} ignored (klines), 0 errors, {depth} depth diffs of {} symbols chained without a \
         gap ({chained} links)",
        stats.decode.frames,
        stats.decode.ignored,
        reader.symbols().len()
    );
    assert_eq!(stats.decode.errors, 0);
    assert_eq!(stats.bad_lines, 0);
    assert_eq!(reader.symbols().len(), 4);
    assert!(depth > 100);
}

// ---- corrupted streams -------------------------------------------------------------------

/// The spot capture's frames, in memory.
fn spot_frames() -> Vec<(i64, Vec<u8>)> {
    let mut reader = FrameReader::open(&data_dir().join("spot_btcusdt_20240808.gz")).unwrap();
    let mut frames = Vec::new();
    while let Some(frame) = reader.next_frame() {
        let frame = frame.unwrap();
        frames.push((frame.local_ns, frame.bytes.to_vec()));
    }
    frames
}

fn is_depth(frame: &[u8]) -> bool {
    frame.windows(13).any(|w| w == b"\"depthUpdate\"")
}

/// Index of the `n`-th depth frame after the snapshot.
fn nth_depth_after_snapshot(frames: &[(i64, Vec<u8>)], n: usize) -> usize {
    let snap = frames
        .iter()
        .position(|(_, f)| f.starts_with(b"{\"lastUpdateId\""))
        .unwrap();
    frames
        .iter()
        .enumerate()
        .skip(snap)
        .filter(|(_, (_, f))| is_depth(f))
        .nth(n)
        .unwrap()
        .0
}

fn write_capture(name: &str, frames: &[(i64, Vec<u8>)]) -> PathBuf {
    let path = tmp(name);
    let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    for (ts, frame) in frames {
        write!(out, "{ts} ").unwrap();
        out.write_all(frame).unwrap();
        out.write_all(b"\n").unwrap();
    }
    out.flush().unwrap();
    path
}

#[test]
fn a_dropped_diff_is_a_gap_and_the_book_waits_for_a_snapshot() {
    let mut frames = spot_frames();
    let drop_at = nth_depth_after_snapshot(&frames, 500);
    frames.remove(drop_at);
    let path = write_capture("dropped_diff.txt", &frames);
    let mut reader = CaptureReader::open(&path).unwrap();
    let out = run_oracle(&mut reader, SyncRule::Spot);
    println!(
        "dropped diff: {} checkpoints before the gap, {} bookTickers ignored after it, {:?}",
        out.checkpoints, out.unsynced_bbos, out.counters
    );
    assert_eq!(out.mismatches, 0, "{:?}", out.first_mismatches);
    assert_eq!(out.counters.gaps, 1);
    assert_eq!(out.counters.resyncs, 1);
    assert_eq!(out.final_state, Some(SyncState::Resyncing));
    assert_eq!(
        out.diff_outcomes
            .iter()
            .filter(|o| **o == DiffOutcome::Gap)
            .count(),
        1
    );
    assert!(out.unsynced_bbos > 1_000);
}

#[test]
fn a_snapshot_restores_the_book_after_a_gap() {
    // Feed a reference sync and a victim in lockstep; drop one diff from the victim, then
    // restore it with a snapshot taken from the reference book: from there on it must match
    // the oracle again.
    let frames = spot_frames();
    let drop_at = nth_depth_after_snapshot(&frames, 300);
    let restore_at = nth_depth_after_snapshot(&frames, 600);
    let after_drop = nth_depth_after_snapshot(&frames, 301);
    let mut decoder = rt_venues::Decoder::new();
    let mut reference = BookSync::new(SyncRule::Spot);
    let mut victim = BookSync::new(SyncRule::Spot);
    let mut compared = 0u64;
    let levels = |s: &BookSync, side| s.book().levels(side).copied().collect::<Vec<Level>>();
    for (i, (ts, frame)) in frames.iter().enumerate() {
        let Some(event) = decoder.decode(frame, *ts).unwrap() else {
            continue;
        };
        match event {
            MarketEvent::Depth(d) => {
                reference.on_diff(&d);
                if i == restore_at {
                    let (bids, asks) = (
                        levels(&reference, Side::Buy),
                        levels(&reference, Side::Sell),
                    );
                    assert!(!victim.is_synced());
                    victim.on_snapshot(&Snapshot {
                        header: Header::default(),
                        last_update_id: reference.last_update_id().unwrap(),
                        bids: &bids,
                        asks: &asks,
                    });
                    assert!(victim.is_synced());
                } else if i != drop_at {
                    let outcome = victim.on_diff(&d);
                    if i > drop_at && i < restore_at {
                        assert!(!victim.is_synced());
                        assert!(victim.book().is_empty());
                    }
                    if i == after_drop {
                        assert_eq!(outcome, DiffOutcome::Gap);
                    }
                }
                if i >= restore_at {
                    // The whole book, every level, equals the reference (which the oracle
                    // test checks against Binance's bookTickers).
                    assert_eq!(victim.last_update_id(), reference.last_update_id());
                    assert_eq!(levels(&victim, Side::Buy), levels(&reference, Side::Buy));
                    assert_eq!(levels(&victim, Side::Sell), levels(&reference, Side::Sell));
                    compared += 1;
                }
            }
            MarketEvent::Snapshot(s) => {
                reference.on_snapshot(&s);
                victim.on_snapshot(&s);
            }
            _ => {}
        }
    }
    println!(
        "restored after a gap: full book equal to the reference after {compared} diffs, \
         victim {:?}",
        victim.counters()
    );
    assert!(compared > 2_000);
    assert!(victim.is_synced());
    assert_eq!(victim.counters().gaps, 1);
}

#[test]
fn a_duplicated_diff_is_stale_and_the_book_still_matches() {
    let mut frames = spot_frames();
    let clean = run_oracle(
        &mut CaptureReader::open(&write_capture("clean.txt", &frames)).unwrap(),
        SyncRule::Spot,
    );
    let dup_at = nth_depth_after_snapshot(&frames, 700);
    let dup = frames[dup_at].clone();
    frames.insert(dup_at + 1, dup.clone());
    // And once more much later (re-delivered out of order).
    let late = nth_depth_after_snapshot(&frames, 1_500);
    frames.insert(late, dup);
    let path = write_capture("duplicated_diff.txt", &frames);
    let out = run_oracle(&mut CaptureReader::open(&path).unwrap(), SyncRule::Spot);
    println!(
        "duplicated diff: {} checkpoints, {:?}",
        out.checkpoints, out.counters
    );
    assert_eq!(out.mismatches, 0, "{:?}", out.first_mismatches);
    assert_eq!(out.counters.stale, clean.counters.stale + 2);
    assert_eq!(out.counters.gaps, 0);
    assert_eq!(out.checkpoints, clean.checkpoints);
    assert_eq!(out.final_state, Some(SyncState::Synced));
}

#[test]
fn a_malformed_frame_is_counted_and_skipped() {
    let mut frames = spot_frames();
    let at = nth_depth_after_snapshot(&frames, 200);
    // A truncated copy of a bookTicker and garbage, placed between two frames; then a bad
    // timestamp line. None of them touches the book.
    let tick = frames
        .iter()
        .skip(at)
        .find(|(_, f)| f.windows(12).any(|w| w == b"@bookTicker\""))
        .unwrap()
        .clone();
    frames.insert(at, (tick.0, tick.1[..tick.1.len() / 2].to_vec()));
    frames.insert(
        at + 1,
        (
            tick.0,
            b"{\"stream\":\"x\",\"data\":{\"e\":\"trade\",\"p\":}}".to_vec(),
        ),
    );
    let path = write_capture("malformed.txt", &frames);
    // A line whose timestamp is not a number, appended by hand.
    {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"not-a-timestamp {}\n").unwrap();
    }
    let mut reader = CaptureReader::open(&path).unwrap();
    let out = run_oracle(&mut reader, SyncRule::Spot);
    let stats = reader.stats();
    println!(
        "malformed frames: {} errors returned, decoder {:?}, {} checkpoints",
        out.decode_errors, stats, out.checkpoints
    );
    assert_eq!(out.decode_errors, 3);
    assert_eq!(stats.decode.errors, 2);
    assert_eq!(stats.bad_lines, 1);
    assert_eq!(out.mismatches, 0);
    assert_eq!(out.counters.gaps, 0);
    assert_eq!(out.final_state, Some(SyncState::Synced));
    assert!(out.checkpoints >= 560);
}

#[test]
fn a_crossing_that_persists_is_resynced_after_max_crossed_diffs() {
    // On the real stream: one diff, in sequence, is replaced by a bid far above every ask (a
    // level the venue's later diffs never touch). The book is kept crossed and unused for
    // MAX_CROSSED_DIFFS diffs, then judged wrong and resynced; never handed out crossed.
    let frames = spot_frames();
    let mut decoder = rt_venues::Decoder::new();
    let mut sync = BookSync::new(SyncRule::Spot);
    let at = nth_depth_after_snapshot(&frames, 400);
    let mut outcomes = Vec::new();
    for (i, (ts, frame)) in frames.iter().enumerate() {
        let Some(event) = decoder.decode(frame, *ts).unwrap() else {
            continue;
        };
        match event {
            MarketEvent::Depth(d) if i == at => {
                let ask = sync.book().best_ask().unwrap();
                let bids = [Level::new(Price(ask.price.0 * 2), ask.qty)];
                let crossing = DepthDiff {
                    bids: &bids,
                    asks: &[],
                    ..d
                };
                outcomes.push(sync.on_diff(&crossing));
                assert!(sync.is_synced() && sync.is_crossed());
            }
            MarketEvent::Depth(d) => {
                let o = sync.on_diff(&d);
                if i > at && outcomes.len() <= MAX_CROSSED_DIFFS as usize {
                    outcomes.push(o);
                }
            }
            MarketEvent::Snapshot(s) => sync.on_snapshot(&s),
            _ => {}
        }
    }
    let crossed = vec![DiffOutcome::Crossed; MAX_CROSSED_DIFFS as usize];
    assert_eq!(outcomes[..crossed.len()], crossed[..]);
    assert_eq!(outcomes[crossed.len()], DiffOutcome::Invalid);
    let c = sync.counters();
    println!("persistent crossing: {outcomes:?}, {c:?}");
    assert_eq!((c.crossings, c.crossings_repaired), (1, 0));
    assert_eq!((c.invalid, c.resyncs), (1, 1));
    // The stream's own snapshots bring it back (the capture has them after the resync).
    assert!(!sync.is_crossed());
}

#[test]
fn native_files_replay_captures_event_for_event() {
    for path in captures() {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let native = tmp(&format!("lockstep_{name}.rtev"));
        let stats = convert(&path, &native).unwrap();
        let mut capture = open_any(&path).unwrap();
        let mut replay = open_any(&native).unwrap();
        assert!(!capture.is_native() && replay.is_native());
        let mut n = 0u64;
        loop {
            match (capture.next_event(), replay.next_event()) {
                (None, None) => break,
                (Some(Ok(a)), Some(Ok(b))) => assert_eq!(a, b, "{name}: event {n} differs"),
                (a, b) => panic!("{name}: event {n}: {a:?} vs {b:?}"),
            }
            n += 1;
        }
        assert_eq!(n, stats.events);
        assert_eq!(capture.symbols(), replay.symbols());
        println!(
            "{name}: {n} events identical through the native file ({} rows)",
            stats.rows
        );
    }
}

#[test]
fn a_truncated_gzip_capture_ends_with_an_error_not_a_panic() {
    let src = std::fs::read(data_dir().join("spot_btcusdt_20240808.gz")).unwrap();
    let path = tmp("truncated.gz");
    std::fs::write(&path, &src[..src.len() / 2]).unwrap();
    let mut reader = open_any(&path).unwrap();
    let (mut events, mut errors) = (0u64, 0u64);
    while let Some(event) = reader.next_event() {
        match event {
            Ok(_) => events += 1,
            Err(e) => {
                errors += 1;
                println!("truncated capture: {e}");
            }
        }
    }
    assert!(events > 10_000);
    assert!(errors >= 1);
    // Garbage with no magic is read as a (bad) capture, never as a native file.
    let path = tmp("garbage.bin");
    std::fs::write(&path, [0u8, 1, 2, 3, 0xff, b'\n', b'x']).unwrap();
    let mut reader = open_any(&path).unwrap();
    assert!(!reader.is_native());
    while reader.next_event().is_some() {}
}
