//! Test helpers: the fixture models and the ONNX Runtime library of the development venv.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// `ORT_DYLIB_PATH`, else the library of the `onnxruntime` wheel in the project's `.venv`
/// (`make setup` installs it with the research extra).
pub fn library() -> PathBuf {
    if let Some(path) = std::env::var_os("ORT_DYLIB_PATH").filter(|v| !v.is_empty()) {
        return PathBuf::from(path);
    }
    let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/lib");
    let found = std::fs::read_dir(&lib)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|python| python.path().join("site-packages/onnxruntime/capi"))
        .filter_map(|capi| std::fs::read_dir(capi).ok())
        .flatten()
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libonnxruntime.so."))
        });
    found.expect("no ONNX Runtime library: run `make setup` (research extra) or set ORT_DYLIB_PATH")
}

pub fn options() -> rt_model::ModelOptions {
    rt_model::ModelOptions {
        library_path: Some(library()),
        ..rt_model::ModelOptions::default()
    }
}

/// The first three training rows of make_models.py (seed 7) and the outputs Python's
/// `onnxruntime` gave for them.
pub const ROWS: [[f32; 4]; 3] = [
    [0.001_230_153_4, 0.298_745_54, -0.274_137_85, -0.890_591_86],
    [-0.454_670_8, -0.991_646_5, 0.060_143_6, 1.340_215_2],
    [-0.492_206_5, -0.620_474_9, 0.489_842_06, 0.356_887],
];
pub const MLP_OUT: [f32; 3] = [-0.008_595_869, 0.174_895_26, -0.186_667_5];
pub const TREE_OUT: [f32; 3] = [-0.131_848_42, 0.134_905_03, -0.053_999_625];
