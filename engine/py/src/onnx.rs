//! ONNX inference from Python through `rt-model`, the same code the engine runs: for parity
//! tests against Python's `onnxruntime` and for `appliance` to check a library.
//!
//! - `onnx_predict(model_path, rows, library_path=None, intra_threads=1, optimization="all")
//!   -> list[list[float]]`: loads the model once and evaluates the rows one at a time (the
//!   engine's path, GIL released); `rows` is a list of rows or a 2-D float32 numpy array.
//! - `onnx_runtime_info(library_path=None) -> dict`: the library found (same discovery order as
//!   the engine), its version, the C API version and the oldest minor version this build drives.
//!
//! Errors raise `ModelError` (a `RuntimeError`) with rt-model's message.

use std::path::PathBuf;

use pyo3::create_exception;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use rt_model::{ModelOptions, OnnxModel, Optimization};

create_exception!(
    appliance._engine,
    ModelError,
    PyRuntimeError,
    "An ONNX model or ONNX Runtime library the engine refuses, or a failed run; the message \
     names the file and the problem."
);

fn model_err(err: rt_model::ModelError) -> PyErr {
    ModelError::new_err(err.to_string())
}

#[pyfunction]
#[pyo3(signature = (model_path, rows, library_path=None, intra_threads=1, optimization="all"))]
fn onnx_predict(
    py: Python<'_>,
    model_path: PathBuf,
    rows: Vec<Vec<f32>>,
    library_path: Option<PathBuf>,
    intra_threads: usize,
    optimization: &str,
) -> PyResult<Vec<Vec<f32>>> {
    let options = ModelOptions {
        library_path,
        intra_threads,
        optimization: Optimization::parse(optimization).map_err(model_err)?,
        output: None,
    };
    py.detach(|| {
        let mut model = OnnxModel::load(&model_path, &options)?;
        rows.iter()
            .map(|row| model.predict(row).map(<[f32]>::to_vec))
            .collect::<Result<Vec<_>, _>>()
    })
    .map_err(model_err)
}

#[pyfunction]
#[pyo3(signature = (library_path=None))]
fn onnx_runtime_info(py: Python<'_>, library_path: Option<PathBuf>) -> PyResult<Bound<'_, PyDict>> {
    let info = rt_model::find_library(library_path.as_deref())
        .and_then(|path| rt_model::probe(&path))
        .map_err(model_err)?;
    let dict = PyDict::new(py);
    dict.set_item("path", info.path)?;
    dict.set_item("version", info.version)?;
    dict.set_item("api_version", info.api_version)?;
    dict.set_item("min_version", format!("1.{}", rt_model::MIN_MINOR))?;
    Ok(dict)
}

/// Adds the ONNX functions and `ModelError` to the extension module.
pub(crate) fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(onnx_predict, module)?)?;
    module.add_function(wrap_pyfunction!(onnx_runtime_info, module)?)?;
    module.add("ModelError", module.py().get_type::<ModelError>())?;
    Ok(())
}
