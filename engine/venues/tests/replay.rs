//! File replay through the core's backtest driver: deterministic, progress to the end, and the
//! native file gives the same result as the raw capture.

use std::path::PathBuf;

use rt_venues::replay;

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
