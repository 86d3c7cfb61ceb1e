//! `appliance._engine`: the engine's Rust code, callable from Python (built by maturin).
//!
//! Only bindings live here; the contract itself is `rt-manifest`, which knows nothing of Python.
//! Python code imports these through `appliance`, never `_engine` directly.
//!
//! - `load_manifest(text: str) -> dict`: loads a manifest exactly as `rt-engine` does and returns
//!   a summary; raises `ManifestError` (a `ValueError`) listing every problem, one per line.
//! - `manifest_schema() -> str`: the manifest's JSON Schema as JSON text.
//! - `__version__`: the crate version.

use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

create_exception!(
    appliance._engine,
    ManifestError,
    PyValueError,
    "A manifest the engine refuses. str(err) lists every problem, one per line: `path: message`."
);

/// The one place where Rust errors become Python exceptions.
fn to_py_err(err: rt_manifest::ManifestError) -> PyErr {
    ManifestError::new_err(err.to_string())
}

/// Loads and validates a manifest (JSON text) and returns its summary: engine_id, host, mode,
/// deployment, content_sha256, exchanges, strategies, instruments ("exchange:symbol").
#[pyfunction]
fn load_manifest<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyDict>> {
    let manifest = rt_manifest::load(text).map_err(to_py_err)?;
    let summary = PyDict::new(py);
    summary.set_item("engine_id", &manifest.engine.id)?;
    summary.set_item("host", &manifest.host.name)?;
    summary.set_item("mode", manifest.deployment.mode.as_str())?;
    summary.set_item("deployment", &manifest.deployment.name)?;
    summary.set_item("content_sha256", &manifest.content_sha256)?;
    summary.set_item("exchanges", manifest.exchanges.keys().collect::<Vec<_>>())?;
    summary.set_item("strategies", manifest.strategies.keys().collect::<Vec<_>>())?;
    summary.set_item("instruments", manifest.instrument_ids())?;
    Ok(summary)
}

/// The JSON Schema (draft 2020-12) of a manifest, as JSON text.
#[pyfunction]
fn manifest_schema() -> String {
    rt_manifest::schema().to_string()
}

#[pymodule]
fn _engine(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(load_manifest, module)?)?;
    module.add_function(wrap_pyfunction!(manifest_schema, module)?)?;
    module.add("ManifestError", module.py().get_type::<ManifestError>())?;
    module.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const EXAMPLE: &str = include_str!("../../../tests/contract/example.manifest.json");

    #[test]
    fn module_loads_manifests_and_raises_manifest_error() {
        Python::initialize();
        Python::attach(|py| {
            let module = PyModule::new(py, "_engine").unwrap();
            _engine(&module).unwrap();
            let load = module.getattr("load_manifest").unwrap();

            let summary = load.call1((EXAMPLE,)).unwrap();
            let summary = summary.cast::<PyDict>().unwrap();
            let get = |key: &str| summary.get_item(key).unwrap().unwrap().to_string();
            assert_eq!(get("engine_id"), "spot_a");
            assert_eq!(get("mode"), "live");
            assert_eq!(get("instruments"), "['binance_spot:BTCUSDT']");

            let err = load.call1(("{",)).unwrap_err();
            assert!(err.is_instance_of::<ManifestError>(py));
            assert!(err.is_instance_of::<PyValueError>(py));
            assert_eq!(
                err.value(py).to_string(),
                "not valid JSON at line 1 column 1: EOF while parsing an object"
            );
            let schema = module.getattr("manifest_schema").unwrap().call0().unwrap();
            assert!(schema
                .to_string()
                .contains("\"title\":\"py_rt engine manifest (version 1)\""));
        });
    }
}
