//! The example manifest trading the shipped model (models/direction_lgbm), for the model
//! replay test and the tick-to-order bench.

use std::path::Path;

use serde_json::{json, Value};

/// The example manifest trading the shipped model: its features from model.json, its file's
/// sha256, thresholds around the up-probability's middle.
pub fn model_manifest(root: &Path, cooldown_ms: u64) -> rt_manifest::Manifest {
    let read = |path: &str| {
        let path = root.join(path);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let mut m: Value = serde_json::from_str(&read("tests/contract/example.manifest.json"))
        .expect("the example is JSON");
    let card: Value =
        serde_json::from_str(&read("models/direction_lgbm/model.json")).expect("model.json");
    let file = "models/direction_lgbm/model.onnx";
    let sha256 = rt_manifest::files::file_sha256(&root.join(file)).expect("the model file");
    let features = card["features"].as_array().expect("features").len();
    m["strategies"] = json!({"model_btcusdt": {
        "kind": "model_taker", "exchange": "binance_spot", "instruments": ["BTCUSDT"],
        "params": {
            "model": {"path": file, "sha256": sha256, "input_name": card["input"]["name"],
                      "input_width": features, "output_name": card["output"]["name"],
                      "output_width": 1, "opset": 15, "intra_op_threads": 1,
                      "optimization": "all"},
            "features": {"features": card["features"]},
            "buy_above": "0.6", "sell_below": "0.4", "order_qty": "0.001",
            "max_slippage": "0.5", "cooldown_ms": cooldown_ms
        }
    }});
    m["content_sha256"] = json!(rt_manifest::content_sha256(&m));
    rt_manifest::load_with_base(&m.to_string(), root).expect("the model manifest is valid")
}
