//! The models of a manifest's model strategies, for `rt-engine run` and `check`.
//!
//! The ONNX Runtime library is host-specific, so it is not in the manifest: `--onnxruntime
//! PATH`, else `ORT_DYLIB_PATH`, else the release's `lib/` beside the executable (rt-model's
//! discovery order). Model paths are relative to the working directory, like
//! `engine.journal.dir`. A model or library that cannot be loaded, or a model that does not
//! match its manifest section, stops the start-up with exit code 2, as a refused manifest does.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rt_core::model::Predictor;
use rt_manifest::model::ModelRef;
use rt_manifest::{Manifest, Violation};
use serde_json::{json, Value};

/// Where model paths are resolved: the working directory.
pub fn base() -> PathBuf {
    PathBuf::from(".")
}

/// The run's model loader: builds each session once at start-up and says so on stderr.
pub fn loader(
    library: Option<PathBuf>,
) -> impl FnMut(&str, &ModelRef) -> Result<Box<dyn Predictor + Send>, String> {
    move |name, model| {
        let start = Instant::now();
        let loaded = rt_model::load_model(model, &base(), library.as_deref())
            .map_err(|err| err.to_string())?;
        let runtime = loaded.runtime();
        eprintln!(
            "model {name}: {} ({} features in, {} out, {} intra-op threads, optimization {}) on \
             ONNX Runtime {} ({}), loaded in {} ms",
            model.path,
            loaded.input_width(),
            loaded.output_width(),
            model.intra_op_threads,
            model.optimization.as_str(),
            runtime.version,
            runtime.path.display(),
            start.elapsed().as_millis()
        );
        Ok(Box::new(loaded))
    }
}

/// What `rt-engine check` says about each model: a line and a JSON object per model, or the
/// problems (the manifest's own load already verified each file's sha256).
pub struct Checked {
    pub lines: Vec<String>,
    pub json: Value,
    pub problems: Vec<Violation>,
}

/// Loads every model of `manifest` as `run` would, without keeping them.
pub fn check(manifest: &Manifest, library: Option<&Path>) -> Checked {
    let mut out = Checked {
        lines: Vec::new(),
        json: json!({}),
        problems: Vec::new(),
    };
    for (name, strategy) in &manifest.strategies {
        let Some(model) = strategy.params.model() else {
            continue;
        };
        match rt_model::load_model(model, &base(), library) {
            Ok(loaded) => {
                let runtime = loaded.runtime();
                out.lines.push(format!(
                    "model {name}: {} sha256 {} ok, input {:?} width {} ok, output {:?} width \
                     {} ok, ONNX Runtime {} ({})",
                    model.path,
                    &model.sha256[..12],
                    model.input_name,
                    loaded.input_width(),
                    model.output_name,
                    loaded.output_width(),
                    runtime.version,
                    runtime.path.display()
                ));
                out.json[name] = json!({
                    "path": model.path,
                    "sha256": model.sha256,
                    "sha256_ok": true,
                    "input_width": loaded.input_width(),
                    "output_width": loaded.output_width(),
                    "onnxruntime": {"version": runtime.version, "path": runtime.path},
                });
            }
            Err(err) => out.problems.push(Violation::new(
                format!("strategies.{name}.params.model"),
                err.to_string(),
            )),
        }
    }
    out
}
