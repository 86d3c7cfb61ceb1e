//! `compute_features`: feature rows over recorded data, from rt-core's feature code through
//! `rt_venues::features` (the backtest's replay), the GIL released.
//!
//! `compute_features(declaration_json, manifest_text, files, start_ns=None, end_ns=None,
//! every_ns=None, horizons_ns=[], symbol=None) -> dict`: `names` (feature columns in declaration
//! order), `symbol`, `rows`, `ts_ns` (int64 bytes), `mid` (float64 bytes), `features`
//! (name -> float32 bytes), `labels` (horizon ns -> float64 bytes), `counters`. Columns travel
//! as little-endian bytes (one copy; `appliance.engine` views them as numpy arrays). Raises
//! `FeatureError` (a `ValueError`) for a bad declaration, `ManifestError`, `WindowError` for a
//! window without data and `BacktestError` otherwise.

use std::path::PathBuf;

use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use rt_manifest::features::FeatureSetDecl;
use rt_venues::features::{self, FeatureRequest, FeaturesError};
use rt_venues::replay::Window;

use crate::{replay_err, to_py_err, BacktestError};

create_exception!(
    appliance._engine,
    FeatureError,
    PyValueError,
    "A feature declaration or request the engine refuses; the message names the key."
);

fn features_err(err: FeaturesError) -> PyErr {
    match err {
        FeaturesError::Replay(e) => replay_err(e),
        FeaturesError::Features(_) | FeaturesError::Every(_) | FeaturesError::Horizon(_) => {
            FeatureError::new_err(err.to_string())
        }
        FeaturesError::Data(_) | FeaturesError::Instrument(_) => {
            BacktestError::new_err(err.to_string())
        }
    }
}

/// Little-endian bytes of a column, written straight into the Python object.
fn bytes<'py, T: Copy, const N: usize>(
    py: Python<'py>,
    values: &[T],
    le: fn(T) -> [u8; N],
) -> PyResult<Bound<'py, PyBytes>> {
    PyBytes::new_with(py, values.len() * N, |buf| {
        for (chunk, v) in buf.chunks_exact_mut(N).zip(values) {
            chunk.copy_from_slice(&le(*v));
        }
        Ok(())
    })
}

#[pyfunction]
#[pyo3(signature = (declaration_json, manifest_text, files, start_ns=None, end_ns=None,
    every_ns=None, horizons_ns=Vec::new(), symbol=None))]
#[allow(clippy::too_many_arguments)]
fn compute_features<'py>(
    py: Python<'py>,
    declaration_json: &str,
    manifest_text: &str,
    files: Vec<PathBuf>,
    start_ns: Option<i64>,
    end_ns: Option<i64>,
    every_ns: Option<i64>,
    horizons_ns: Vec<i64>,
    symbol: Option<String>,
) -> PyResult<Bound<'py, PyDict>> {
    let decl = FeatureSetDecl::from_json(declaration_json)
        .map_err(|e| FeatureError::new_err(e.to_string()))?;
    let manifest = rt_manifest::load(manifest_text).map_err(to_py_err)?;
    let request = FeatureRequest {
        symbol,
        window: Window { start_ns, end_ns },
        every_ns,
        horizons_ns,
    };
    let rows = py
        .detach(|| features::compute(&manifest, &decl, &files, &request))
        .map_err(features_err)?;
    let out = PyDict::new(py);
    out.set_item("symbol", &rows.symbol)?;
    out.set_item("names", &rows.names)?;
    out.set_item("rows", rows.rows())?;
    out.set_item("ts_ns", bytes(py, &rows.ts_ns, i64::to_le_bytes)?)?;
    out.set_item("mid", bytes(py, &rows.mid, f64::to_le_bytes)?)?;
    let cols = PyDict::new(py);
    for (name, col) in rows.names.iter().zip(&rows.columns) {
        cols.set_item(name, bytes(py, col, f32::to_le_bytes)?)?;
    }
    out.set_item("features", cols)?;
    let labels = PyDict::new(py);
    for (h, col) in &rows.labels {
        labels.set_item(h, bytes(py, col, f64::to_le_bytes)?)?;
    }
    out.set_item("labels", labels)?;
    let counters = PyDict::new(py);
    counters.set_item("events", rows.events)?;
    counters.set_item("book_updates", rows.book_updates)?;
    counters.set_item("trades", rows.trades)?;
    counters.set_item("data_errors", rows.data_errors)?;
    out.set_item("counters", counters)?;
    Ok(out)
}

/// Adds `compute_features` and `FeatureError` to the module.
pub(crate) fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(compute_features, module)?)?;
    module.add("FeatureError", module.py().get_type::<FeatureError>())?;
    Ok(())
}
