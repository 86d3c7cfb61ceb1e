//! The OKX and Kraken captures of the shared data carry each venue's own checksum with every
//! book message (191 on OKX, 2,372 on Kraken): a rebuilt book must give every one of them.
//! Also: one altered level of one OKX update is caught on that very message, and the Binance
//! captures' bookTicker oracle through the same `verify` entry point.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use rt_venues::checksum::Checked;
use rt_venues::kraken::asset_pairs;
use rt_venues::okx::{OkxBooks, OkxDecoder};
use rt_venues::verify::{verify, Venue};
use rt_venues::FrameReader;

fn shared(venue: &str) -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data")
        .join(venue);
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("{} is absent: skipped", dir.display());
        None
    }
}

#[test]
fn okx_every_checksum_matches() {
    let Some(dir) = shared("okx") else { return };
    let v = verify(&[dir.join("cryptofeed_OKX.ws.1.0")]).unwrap();
    assert_eq!(v.venue, Venue::Okx);
    assert_eq!(v.decode_errors, 0, "{:?}", v.first_decode_error);
    let checked: u64 = v.instruments.iter().map(|i| i.checked).sum();
    let matched: u64 = v.instruments.iter().map(|i| i.matched).sum();
    println!("OKX: {matched}/{checked} checksums, {:?}", v.instruments);
    assert_eq!((checked, matched), (191, 191));
    assert!(v.passed());
    let names: Vec<&str> = v
        .instruments
        .iter()
        .map(|i| i.instrument.as_str())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn kraken_every_checksum_matches() {
    let Some(dir) = shared("kraken") else { return };
    let v = verify(&[dir.join("cryptofeed_KRAKEN.ws.50.0")]).unwrap();
    assert_eq!(v.venue, Venue::Kraken);
    assert_eq!(v.decode_errors, 0, "{:?}", v.first_decode_error);
    let checked: u64 = v.instruments.iter().map(|i| i.checked).sum();
    let matched: u64 = v.instruments.iter().map(|i| i.matched).sum();
    println!(
        "Kraken: {matched}/{checked} checksums over {} pairs",
        v.instruments.len()
    );
    assert_eq!((checked, matched), (2372, 2372), "{:?}", v.instruments);
    assert_eq!(v.instruments.len(), 5);
    assert!(v.passed());
    // The pairs' metadata parses (the declared instruments are checked against it).
    let pairs = asset_pairs(&std::fs::read_to_string(dir.join("asset_pairs.json")).unwrap());
    assert_eq!(pairs.unwrap().len(), 5);
}

#[test]
fn one_altered_okx_level_is_caught_on_that_message() {
    let Some(dir) = shared("okx") else { return };
    let mut frames = FrameReader::open(&dir.join("cryptofeed_OKX.ws.1.0")).unwrap();
    let mut decoder = OkxDecoder::new();
    let mut books = OkxBooks::new();
    let mut updates = 0;
    let mut altered_line = None;
    let mut outcomes = Vec::new();
    while let Some(frame) = frames.next_frame() {
        let frame = frame.unwrap();
        let mut bytes = frame.bytes.to_vec();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if text.contains("\"action\":\"update\"") && text.contains("\"BTC-USDT\"") {
            updates += 1;
            if updates == 5 {
                // Change the first level's size by one digit.
                let level = text.find("[[\"").unwrap();
                let at = level + text[level..].find("\",\"").unwrap() + 3;
                bytes[at] = if bytes[at] == b'9' { b'8' } else { b'9' };
                altered_line = Some(frame.line);
            }
        }
        let f = decoder.decode(&bytes).unwrap();
        if let Some(outcome) = books.apply(&f, &decoder) {
            outcomes.push((frame.line, f.inst_id == b"BTC-USDT", outcome));
        }
    }
    let altered = altered_line.unwrap();
    let first_bad = outcomes
        .iter()
        .find(|(_, _, o)| matches!(o, Checked::Mismatch { .. }))
        .unwrap();
    assert_eq!(
        (first_bad.0, first_bad.1),
        (altered, true),
        "caught on the altered message"
    );
    // Every later BTC-USDT book message is refused until a snapshot; the other instrument is
    // unaffected.
    assert!(outcomes
        .iter()
        .filter(|(line, btc, _)| *btc && *line > altered)
        .all(|(_, _, o)| *o == Checked::Invalid));
    assert!(outcomes
        .iter()
        .filter(|(_, btc, _)| !*btc)
        .all(|(_, _, o)| matches!(o, Checked::Verified | Checked::Unchecked)));
}

#[test]
fn binance_captures_verify_through_the_same_entry_point() {
    let Some(dir) = shared("binance") else { return };
    let bundled_only = !dir.join("usdm_btcusdt_20240808.gz").exists();
    for (files, min) in [
        (vec!["spot_btcusdt_20240808.gz"], 560),
        (vec!["usdm_btcusdt_20240808.gz"], 600),
        (
            vec!["spot_btcusdt_20240808.gz", "spot_btcusdt_20240809.gz"],
            1000,
        ),
    ] {
        let paths: Vec<PathBuf> = files.iter().map(|f| dir.join(f)).collect();
        if bundled_only && files != ["spot_btcusdt_20240808.gz"] {
            continue;
        }
        let v = verify(&paths).unwrap();
        assert_eq!(v.venue, Venue::Binance);
        let i = &v.instruments[0];
        println!(
            "{files:?}: {}/{} bookTicker checkpoints",
            i.matched, i.checked
        );
        assert!(v.passed(), "{files:?}: {:?}", v.instruments);
        assert!(
            i.checked >= min,
            "{files:?}: only {} checkpoints",
            i.checked
        );
    }
}

/// OKX and Kraken captures replay as the core's events: every book message becomes a snapshot
/// or a diff that `BookSync` applies in order (no gap, never invalid), trades come through one
/// by one, and the native file converted from the capture replays the same events.
#[test]
fn okx_and_kraken_captures_replay_through_book_sync() {
    use rt_core::{BookSync, DiffOutcome, MarketEvent, SyncRule};
    use rt_venues::{convert, open_any};

    for (venue, file, books, min_trades) in [
        ("okx", "cryptofeed_OKX.ws.1.0", 191, 1),
        ("kraken", "cryptofeed_KRAKEN.ws.50.0", 2377, 0),
        ("kraken", "cryptofeed_KRAKEN.ws.48.0", 0, 3),
    ] {
        let Some(dir) = shared(venue) else { return };
        let path = dir.join(file);
        let mut counts = Vec::new();
        for native in [false, true] {
            let mut reader = if native {
                let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{file}.native"));
                convert(&path, &out).unwrap();
                open_any(&out).unwrap()
            } else {
                open_any(&path).unwrap()
            };
            let mut syncs: Vec<BookSync> = Vec::new();
            let (mut book_events, mut trades, mut applied) = (0u64, 0u64, 0u64);
            while let Some(event) = reader.next_event() {
                let event = event.unwrap();
                let symbol = event.header().symbol as usize;
                while syncs.len() <= symbol {
                    syncs.push(BookSync::new(SyncRule::Spot));
                }
                match event {
                    MarketEvent::Snapshot(s) => {
                        book_events += 1;
                        syncs[symbol].on_snapshot(&s);
                    }
                    MarketEvent::Depth(d) => {
                        book_events += 1;
                        let outcome = syncs[symbol].on_diff(&d);
                        assert_eq!(outcome, DiffOutcome::Applied, "{file}");
                        applied += 1;
                    }
                    MarketEvent::Trade(t) => {
                        trades += 1;
                        assert!(t.price.0 > 0 && t.qty.0 > 0);
                    }
                    MarketEvent::Bbo(_) => {}
                }
            }
            assert!(syncs
                .iter()
                .all(|s| s.counters().gaps == 0 && s.counters().invalid == 0));
            if books > 0 {
                assert!(syncs.iter().all(BookSync::is_synced), "{file}");
            }
            assert!(trades >= min_trades, "{file}: {trades} trades");
            counts.push((book_events, applied, trades, reader.symbols().to_vec()));
        }
        assert_eq!(
            counts[0], counts[1],
            "{file}: the native file replays the same events"
        );
        println!("{file}: {:?}", counts[0]);
    }
}
