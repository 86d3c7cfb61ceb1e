//! Models named by a manifest (`strategies.<name>.params.model`): the one way the backtest
//! (PyO3) and the live engine build them, so both run the same session settings and checks.
//!
//! [`load_model`] resolves the path against a base directory (the engine's working directory),
//! builds the session with the manifest's intra-op threads and optimisation level, reads the
//! named output, and checks the model's input name and widths against what the compiler wrote
//! (a mismatch is [`ModelError::Signature`]). [`manifest_loader`] wraps it as the
//! `rt_core::strategy::ModelLoader` the backtest driver calls.

use std::path::{Path, PathBuf};

use rt_core::model::Predictor;
use rt_manifest::files::resolve;
use rt_manifest::model::{ModelRef, Optimization as ManifestOptimization};

use crate::{ModelError, ModelOptions, OnnxModel, Optimization};

impl From<ManifestOptimization> for Optimization {
    fn from(level: ManifestOptimization) -> Self {
        match level {
            ManifestOptimization::Disable => Optimization::Disable,
            ManifestOptimization::Basic => Optimization::Basic,
            ManifestOptimization::Extended => Optimization::Extended,
            ManifestOptimization::All => Optimization::All,
        }
    }
}

/// Loads the model of a manifest's model section, `library` as in [`ModelOptions`].
pub fn load_model(
    model: &ModelRef,
    base: &Path,
    library: Option<&Path>,
) -> Result<OnnxModel, ModelError> {
    let path = resolve(base, &model.path);
    let options = ModelOptions {
        library_path: library.map(Path::to_path_buf),
        intra_threads: model.intra_op_threads as usize,
        optimization: model.optimization.into(),
        output: Some(model.output_name.clone()),
    };
    let loaded = OnnxModel::load(&path, &options)?;
    let mut problems = Vec::new();
    if loaded.input_name() != model.input_name {
        problems.push(format!(
            "its input is {:?}, the manifest declares input_name {:?}",
            loaded.input_name(),
            model.input_name
        ));
    }
    for (what, found, declared) in [
        ("input_width", loaded.input_width(), model.input_width),
        ("output_width", loaded.output_width(), model.output_width),
    ] {
        if found != declared as usize {
            problems.push(format!(
                "{what} is {found}, the manifest declares {declared}"
            ));
        }
    }
    if problems.is_empty() {
        Ok(loaded)
    } else {
        Err(ModelError::Signature {
            path,
            problem: problems.join("; "),
        })
    }
}

/// The model loader of a backtest or engine: every model from `base` on `library` (`None`:
/// the discovery order of [`crate::library`]). Errors are rt-model's messages.
pub fn manifest_loader(
    base: PathBuf,
    library: Option<PathBuf>,
) -> impl FnMut(&str, &ModelRef) -> Result<Box<dyn Predictor + Send>, String> {
    move |_name, model| {
        load_model(model, &base, library.as_deref())
            .map(|m| Box::new(m) as Box<dyn Predictor + Send>)
            .map_err(|err| err.to_string())
    }
}
