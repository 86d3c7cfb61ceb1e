//! Progress reporting: a reader says how far it got, in bytes of a capture or rows of a native
//! file, and reaches the total exactly at the end.

use std::path::PathBuf;

fn bundled() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/binance/spot_btcusdt_20240808.gz")
}

#[test]
fn capture_progress_reaches_the_file_size() {
    let path = bundled();
    let size = std::fs::metadata(&path).expect("bundled capture").len();
    let mut reader = rt_venues::open_any(&path).expect("open");
    assert_eq!(reader.progress(), (reader.progress().0, size));
    let mut halfway = None;
    let mut events = 0u64;
    while let Some(event) = reader.next_event() {
        event.expect("the bundled capture decodes");
        events += 1;
        if events == 20_000 {
            halfway = Some(reader.progress().0);
        }
    }
    let halfway = halfway.expect("more than 20k events");
    assert!(halfway > 0 && halfway < size, "{halfway} of {size}");
    assert_eq!(reader.progress(), (size, size));
}

#[test]
fn native_progress_counts_rows() {
    let dir = std::env::temp_dir().join(format!("rt-venues-progress-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let native = dir.join("spot.native");
    let stats = rt_venues::convert(&bundled(), &native).expect("convert");
    let mut reader = rt_venues::open_any(&native).expect("open native");
    assert_eq!(reader.progress(), (0, stats.rows));
    while let Some(event) = reader.next_event() {
        event.expect("native decodes");
    }
    assert_eq!(reader.progress(), (stats.rows, stats.rows));
    std::fs::remove_dir_all(&dir).expect("cleanup");
}
