//! File replay through the core's backtest driver: deterministic, progress to the end, the
//! native file gives the same result as the raw capture; time windows (warm-up before the
//! window, nothing traded outside it), a chain of consecutive captures as one stream, and data
//! descriptions (`info`).

use std::path::PathBuf;

use rt_core::Nanos;
use rt_venues::replay::{self, ReplayError, Window};

const SEC: Nanos = 1_000_000_000;
/// The bundled capture's first and last local receive times.
const FIRST: Nanos = 1_723_161_253_937_085_768;
const LAST: Nanos = 1_723_161_599_999_231_384;
/// 2024-08-08 23:56 UTC.
const T_2356: Nanos = 1_723_161_360 * SEC;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn manifest() -> rt_manifest::Manifest {
    let text = std::fs::read_to_string(root().join("tests/contract/example.manifest.json"))
        .expect("example manifest");
    rt_manifest::load(&text).expect("the example is valid")
}

fn capture() -> PathBuf {
    root().join("data/binance/spot_btcusdt_20240808.gz")
}

#[test]
fn replay_is_deterministic_and_reports_progress() {
    let m = manifest();
    let mut last = (0, 0);
    let first = replay::run(&m, &[capture()], 10_000, |d, t| last = (d, t)).expect("replay");
    let size = std::fs::metadata(capture()).expect("capture").len();
    assert_eq!(last, (size, size));
    assert_eq!(first.data_errors, 0);
    assert_eq!(first.result.counters.events, 41_249);
    assert!(
        first.result.counters.orders_placed > 0,
        "the market maker quoted"
    );
    assert!(!first.marks.is_empty());
    let second = replay::run(&m, &[capture()], 0, |_, _| {}).expect("replay");
    assert_eq!(first.result.fills, second.result.fills);
    assert_eq!(first.result.orders, second.result.orders);
    assert_eq!(first.marks, second.marks);
}

#[test]
fn native_file_replays_like_the_capture() {
    let dir = std::env::temp_dir().join(format!("rt-venues-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let native = dir.join("spot.native");
    rt_venues::convert(&capture(), &native).expect("convert");
    let m = manifest();
    let raw = replay::run(&m, &[capture()], 0, |_, _| {}).expect("raw");
    let fast = replay::run(&m, &[native], 0, |_, _| {}).expect("native");
    assert_eq!(raw.result.fills, fast.result.fills);
    assert_eq!(raw.result.summary, fast.result.summary);
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

/// A native file is mapped while it is replayed; converting again to the same path (a cache
/// refresh) writes a new file and renames it over the old one, so a reader that has the old one
/// open still reads every event (an in-place rewrite would truncate it under the reader).
#[test]
fn converting_over_a_native_file_being_read_leaves_its_reader_intact() {
    let dir = std::env::temp_dir().join(format!("rt-venues-remap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let native = dir.join("spot.native");
    let stats = rt_venues::convert(&capture(), &native).expect("convert");
    let mut reader = rt_venues::open_any(&native).expect("open");
    let mut events = 0u64;
    while let Some(event) = reader.next_event() {
        event.expect("an event");
        events += 1;
        if events == 10 {
            let again = rt_venues::convert(&native, &native).expect("convert over it");
            assert_eq!(again.events, stats.events);
        }
    }
    assert_eq!(events, stats.events);
    let names: Vec<_> = std::fs::read_dir(&dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, ["spot.native"], "no temporary file left");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

/// Two conversions to one path at once (two threads of one process) each write their own
/// temporary file: both succeed and the file left is whole.
#[test]
fn concurrent_conversions_to_one_path_both_succeed() {
    let dir = std::env::temp_dir().join(format!("rt-venues-twice-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let native = dir.join("spot.native");
    let start = std::sync::Barrier::new(2);
    let results: Vec<_> = std::thread::scope(|scope| {
        let convert = || {
            start.wait();
            rt_venues::convert(&capture(), &native)
        };
        let (a, b) = (scope.spawn(convert), scope.spawn(convert));
        [a, b]
            .map(|t| t.join().expect("a converting thread"))
            .into_iter()
            .collect()
    });
    for r in &results {
        assert_eq!(r.as_ref().expect("converted").events, 41_249);
    }
    let m = manifest();
    let replayed = replay::run(&m, &[native], 0, |_, _| {}).expect("the file left replays");
    assert_eq!(replayed.result.counters.events, 41_249);
    let names: Vec<_> = std::fs::read_dir(&dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, ["spot.native"], "no temporary file left");
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn missing_data_is_an_error_not_a_panic() {
    let m = manifest();
    assert!(matches!(
        replay::run(&m, &[], 0, |_, _| {}),
        Err(replay::ReplayError::NoData)
    ));
    let err =
        replay::run(&m, &[root().join("no-such-file.gz")], 0, |_, _| {}).expect_err("no file");
    assert!(err.to_string().contains("no-such-file.gz"), "{err}");
}

/// The shared two-day chain, beside the repository (`../shared/data/binance`), if present.
fn shared_chain() -> Option<Vec<PathBuf>> {
    let dir = root().join("../shared/data/binance");
    let files: Vec<PathBuf> = ["spot_btcusdt_20240808.gz", "spot_btcusdt_20240809.gz"]
        .iter()
        .map(|f| dir.join(f))
        .collect();
    files.iter().all(|f| f.is_file()).then_some(files)
}

fn window(start: Nanos, end: Nanos) -> Window {
    Window {
        start_ns: Some(start),
        end_ns: Some(end),
    }
}

#[test]
fn a_window_in_the_middle_trades_only_inside_it() {
    let (start, end) = (T_2356, T_2356 + 120 * SEC);
    let m = manifest();
    let mut last = (0, 0);
    let r = replay::run_window(&m, &[capture()], window(start, end), 5_000, |d, t| {
        last = (d, t)
    })
    .expect("replay");
    let c = &r.result.counters;
    let s = &r.result.summary;
    assert!(c.warmup_events > 0, "{c:?}");
    // It stopped at the end: fewer events than the file holds (41 249).
    assert!(c.warmup_events + c.events < 41_249, "{c:?}");
    assert!(c.orders_placed > 0 && s.fills > 0, "{c:?} {s:?}");
    assert!(s.start_ns >= start && s.end_ns < end, "{s:?}");
    let inside = |ts: Nanos| (start..end).contains(&ts);
    assert!(r.result.orders.iter().all(|o| inside(o.ts)));
    assert!(r.result.fills.iter().all(|f| inside(f.ts)));
    assert!(r.result.equity.iter().all(|e| inside(e.ts)));
    assert!(r.marks.iter().all(|k| inside(k.ts)));
    assert!(!r.marks.is_empty());
    // The book was synced by the warm-up: the first mark is at the window's first event.
    assert_eq!(r.marks[0].ts, s.start_ns);
    assert!(s.start_ns - start < SEC);
    // The progress bar still reaches its end.
    assert_eq!(last.0, last.1);

    // An open end runs to the end of the data; an open start trades from the first event.
    let tail = replay::run_window(
        &m,
        &[capture()],
        Window {
            start_ns: Some(start),
            end_ns: None,
        },
        0,
        |_, _| {},
    )
    .expect("tail");
    assert_eq!(
        tail.result.counters.events + tail.result.counters.warmup_events,
        41_249
    );
    assert_eq!(tail.result.summary.end_ns, LAST);
    let all = replay::run(&m, &[capture()], 0, |_, _| {}).expect("all");
    let head = replay::run_window(
        &m,
        &[capture()],
        Window {
            start_ns: None,
            end_ns: Some(LAST + 1),
        },
        0,
        |_, _| {},
    )
    .expect("head");
    assert_eq!(head.result, all.result);
    assert_eq!(all.result.counters.warmup_events, 0);
}

#[test]
fn windows_outside_the_data_are_errors_naming_the_range() {
    let m = manifest();
    for w in [
        window(LAST + SEC, LAST + 60 * SEC),
        window(FIRST - 60 * SEC, FIRST - SEC),
    ] {
        let err = replay::run_window(&m, &[capture()], w, 0, |_, _| {}).expect_err("empty");
        match &err {
            ReplayError::EmptyWindow { window, range } => {
                assert_eq!(*window, w);
                assert_eq!(*range, Some((FIRST, LAST)));
            }
            other => panic!("{other}"),
        }
        let text = err.to_string();
        assert!(text.contains("2024-08-08T23:54:13.937085768Z"), "{text}");
        assert!(text.contains("2024-08-08T23:59:59.999231384Z"), "{text}");
    }
    let err = replay::run_window(&m, &[capture()], window(T_2356, T_2356), 0, |_, _| {})
        .expect_err("start == end");
    assert!(matches!(err, ReplayError::BadWindow(_)), "{err}");
}

#[test]
fn consecutive_captures_replay_as_one_stream() {
    let Some(chain) = shared_chain() else {
        eprintln!("skipped: ../shared/data/binance (the two-day spot chain) is not there");
        return;
    };
    let m = manifest();
    let day1 = rt_venues::info(&chain[0]).expect("day 1");
    let day2 = rt_venues::info(&chain[1]).expect("day 2");
    let second_day = day2.first_local_ns.expect("day 2 has events");
    // The second file has no REST snapshot: its book continues from the first file's.
    assert_eq!(day2.counts.snapshots, 0);
    let both = replay::run(&m, &chain, 0, |_, _| {}).expect("chain");
    let c = &both.result.counters;
    assert_eq!(c.events, day1.counts.events + day2.counts.events);
    assert_eq!(c.gaps + c.resyncs + c.invalid, 0, "{c:?}");
    assert!(both.result.orders.iter().any(|o| o.ts >= second_day));
    assert!(both.marks.iter().any(|k| k.ts >= second_day));

    // A window on the second day: the first day warms the books up.
    let start = second_day + 60 * SEC;
    let w = replay::run_window(&m, &chain, window(start, start + 120 * SEC), 0, |_, _| {})
        .expect("window on day 2");
    let wc = &w.result.counters;
    assert!(wc.warmup_events > day1.counts.events, "{wc:?}");
    assert!(wc.orders_placed > 0, "{wc:?}");
    assert!(w.result.orders.iter().all(|o| o.ts >= start));
}

#[test]
fn info_describes_captures_and_native_files_alike() {
    let raw = rt_venues::info(&capture()).expect("info");
    assert_eq!(raw.format, "hftbacktest");
    assert_eq!(raw.symbols, ["BTCUSDT"]);
    assert_eq!(raw.counts.events, 41_249);
    assert_eq!(
        raw.counts.depth_diffs + raw.counts.snapshots + raw.counts.trades + raw.counts.bbos,
        41_249
    );
    assert_eq!(raw.counts.snapshots, 1);
    assert_eq!(raw.counts.decode_errors, 0);
    assert_eq!(
        (raw.first_local_ns, raw.last_local_ns),
        (Some(FIRST), Some(LAST))
    );
    assert!(raw.first_exchange_ns.is_some_and(|e| e > FIRST));
    assert_eq!(raw.market, Some(rt_venues::MarketGuess::Spot));
    assert_eq!(raw.gaps, 0);
    let dir = std::env::temp_dir().join(format!("rt-venues-window-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let native = dir.join("spot.native");
    rt_venues::convert(&capture(), &native).expect("convert");
    let fast = rt_venues::info(&native).expect("native info");
    assert_eq!(fast.format, "native");
    assert_eq!(
        (fast.counts.events, fast.counts.depth_diffs, fast.gaps),
        (raw.counts.events, raw.counts.depth_diffs, raw.gaps)
    );
    assert_eq!(
        (fast.first_local_ns, fast.last_local_ns, fast.market),
        (raw.first_local_ns, raw.last_local_ns, raw.market)
    );
    std::fs::remove_dir_all(&dir).expect("cleanup");
}
