//! The model strategy over the bundled capture, with the shipped model
//! (models/direction_lgbm/model.onnx) through rt-model: it trades, no prediction fails, and
//! two runs are identical. Needs an ONNX Runtime library: `ORT_DYLIB_PATH` (the pytest suite
//! runs the same backtest through the extension with the onnxruntime wheel's library); without
//! it the test says so and passes.

use std::path::PathBuf;

use rt_venues::replay::{self, Window};

#[path = "support/model_manifest.rs"]
mod support;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_shipped_model_trades_the_capture_identically_twice() {
    if std::env::var_os(rt_model::ENV_VAR).is_none() {
        eprintln!(
            "skipped: set {} to an ONNX Runtime library to run the model replay",
            rt_model::ENV_VAR
        );
        return;
    }
    let manifest = support::model_manifest(&root(), 1000);
    let files = [root().join("data/binance/spot_btcusdt_20240808.gz")];
    let run = || {
        let mut models = rt_model::manifest_loader(root(), None);
        replay::run_window_with(
            &manifest,
            &files,
            Window::ALL,
            &mut models,
            100_000,
            |_, _| {},
        )
        .expect("the model replay runs")
    };
    let first = run();
    let c = &first.result.counters;
    let s = &first.result.summary;
    eprintln!(
        "model replay: {} book updates, {} predictions, {} orders sent, {} fills, pnl {}",
        c.book_updates, c.model_predictions, c.orders_sent, s.fills, s.pnl
    );
    assert_eq!(c.model_errors, 0);
    assert!(
        c.model_predictions >= c.orders_placed && c.model_predictions > 100,
        "{c:?}"
    );
    assert!(c.orders_sent > 0, "{c:?}");
    assert!(s.fills > 0, "{s:?}");
    assert_eq!(s.maker_fills, 0, "IOC orders only take");
    let second = run();
    assert_eq!(first.result, second.result, "two runs differ");
    assert_eq!(first.marks, second.marks);

    // The model without a loader is a clear setup error.
    let err = replay::run_window(&manifest, &files, Window::ALL, 100_000, |_, _| {})
        .expect_err("a model strategy needs a loader");
    assert!(err.to_string().contains("needs a model loader"), "{err}");
}
