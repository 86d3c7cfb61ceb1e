//! rt-model: ONNX models evaluated through ONNX Runtime, for strategies in backtests and live.
//!
//! [`OnnxModel::load`] finds and checks the ONNX Runtime library ([`library`]), builds one
//! session with the thread count and graph optimisation level of [`ModelOptions`], checks the
//! model's signature (one float32 input `[batch, width]`, a float32 output `[batch, k]` or
//! `[batch]`) and preallocates a one-row input and output tensor. [`OnnxModel::predict`] copies a
//! row into the input and returns the output slice; it allocates nothing on the Rust heap (the
//! run goes straight to the C API with prebuilt name arrays, see [`run`]). It implements
//! [`rt_core::model::Predictor`], the seam a strategy in rt-core calls.
//!
//! The `ort` crate is built with default features off and `load-dynamic`: nothing is linked or
//! downloaded at build time; the library is opened at run time by absolute path.

pub mod library;
mod manifest;
mod run;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ort::memory::Allocator;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::{Outlet, Tensor, TensorElementType, ValueType};
use rt_core::model::{PredictError, Predictor};
use thiserror::Error;

pub use library::{find_library, probe, RuntimeInfo, ENV_VAR, MIN_MINOR};
pub use manifest::{load_model, manifest_loader};

/// Everything that can go wrong loading or running a model; each message names the file.
#[derive(Debug, Error)]
pub enum ModelError {
    #[error("ONNX Runtime library not found ({tried}); pass its path (manifest/CLI) or set ORT_DYLIB_PATH")]
    LibraryNotFound { tried: String },
    #[error("ONNX Runtime library {path} cannot be loaded: {reason}")]
    LibraryLoad { path: PathBuf, reason: String },
    #[error("{path} is not an ONNX Runtime library: it does not export OrtGetApiBase")]
    NotOnnxRuntime { path: PathBuf },
    #[error("ONNX Runtime {version} at {path} is not supported: this engine needs 1.{min_minor} or newer")]
    LibraryVersion {
        path: PathBuf,
        version: String,
        min_minor: u32,
    },
    #[error("ONNX Runtime is already loaded from {loaded} in this process; {requested} cannot be loaded as well")]
    LibraryConflict { loaded: PathBuf, requested: PathBuf },
    #[error("ONNX Runtime at {path} failed to initialise: {reason}")]
    Init { path: PathBuf, reason: String },
    #[error("model file {path} does not exist")]
    ModelMissing { path: PathBuf },
    #[error("model file {path} cannot be read: {reason}")]
    ModelUnreadable { path: PathBuf, reason: String },
    #[error("model {path}: {problem}")]
    Signature { path: PathBuf, problem: String },
    #[error("model {path}: the input row has {got} values, the model reads {expected}")]
    Width {
        path: PathBuf,
        expected: usize,
        got: usize,
    },
    #[error("model {path}: run failed: {reason}")]
    Run { path: PathBuf, reason: String },
    #[error("invalid model options: {0}")]
    Options(String),
}

/// ONNX Runtime's graph optimisation level, as the manifest names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Optimization {
    Disable,
    Basic,
    Extended,
    #[default]
    All,
}

impl Optimization {
    /// Parses `disable`, `basic`, `extended` or `all`.
    pub fn parse(text: &str) -> Result<Self, ModelError> {
        match text {
            "disable" => Ok(Self::Disable),
            "basic" => Ok(Self::Basic),
            "extended" => Ok(Self::Extended),
            "all" => Ok(Self::All),
            other => Err(ModelError::Options(format!(
                "optimization {other:?} is not one of disable, basic, extended, all"
            ))),
        }
    }

    fn level(self) -> GraphOptimizationLevel {
        match self {
            Self::Disable => GraphOptimizationLevel::Disable,
            Self::Basic => GraphOptimizationLevel::Level1,
            Self::Extended => GraphOptimizationLevel::Level2,
            Self::All => GraphOptimizationLevel::All,
        }
    }
}

/// How a model's session is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelOptions {
    /// The ONNX Runtime library; `None` follows the discovery order of [`library`].
    pub library_path: Option<PathBuf>,
    /// Intra-op threads of the session (1: the run stays on the calling thread).
    pub intra_threads: usize,
    /// Graph optimisation level.
    pub optimization: Optimization,
    /// The output to read; `None`: the model's first output.
    pub output: Option<String>,
}

impl Default for ModelOptions {
    fn default() -> Self {
        Self {
            library_path: None,
            intra_threads: 1,
            optimization: Optimization::All,
            output: None,
        }
    }
}

/// One ONNX model with its session, ready to evaluate one row at a time.
#[derive(Debug)]
pub struct OnnxModel {
    path: PathBuf,
    session: Session,
    input: Tensor<f32>,
    output: Tensor<f32>,
    names: run::Names,
    input_width: usize,
    output_width: usize,
    runtime: Arc<library::Runtime>,
}

impl OnnxModel {
    /// Loads the model at `path`: library, session, signature, preallocated tensors.
    pub fn load(path: impl AsRef<Path>, options: &ModelOptions) -> Result<Self, ModelError> {
        let path = path.as_ref().to_path_buf();
        if options.intra_threads == 0 {
            return Err(ModelError::Options(
                "intra_threads must be at least 1".to_string(),
            ));
        }
        let library = find_library(options.library_path.as_deref())?;
        let runtime = library::runtime(&library)?;
        let bytes = std::fs::read(&path).map_err(|err| match err.kind() {
            std::io::ErrorKind::NotFound => ModelError::ModelMissing { path: path.clone() },
            _ => ModelError::ModelUnreadable {
                path: path.clone(),
                reason: err.to_string(),
            },
        })?;
        let unreadable = |err: ort::Error| ModelError::ModelUnreadable {
            path: path.clone(),
            reason: err.to_string(),
        };
        let option = |err: String| ModelError::Options(err);
        let session = Session::builder(&runtime.env)
            .map_err(|err| option(err.to_string()))?
            .with_intra_threads(options.intra_threads)
            .map_err(|err| option(err.to_string()))?
            .with_inter_threads(1)
            .map_err(|err| option(err.to_string()))?
            .with_optimization_level(options.optimization.level())
            .map_err(|err| option(err.to_string()))?
            .commit_from_memory(&bytes)
            .map_err(unreadable)?;

        let signature = |problem: String| ModelError::Signature {
            path: path.clone(),
            problem,
        };
        let [input] = session.inputs() else {
            return Err(signature(format!(
                "expected exactly one input, found {}: {}",
                session.inputs().len(),
                names_of(session.inputs())
            )));
        };
        let input_width = row_width(input, false).map_err(|p| signature(format!("input {p}")))?;
        let output = match &options.output {
            None => session.outputs().first(),
            Some(name) => session.outputs().iter().find(|o| o.name() == name),
        }
        .ok_or_else(|| {
            signature(format!(
                "no output {} (outputs: {})",
                options.output.as_deref().unwrap_or("at all"),
                names_of(session.outputs())
            ))
        })?;
        let output_width = row_width(output, true).map_err(|p| signature(format!("output {p}")))?;
        let output_rank = match output.dtype() {
            ValueType::Tensor { shape, .. } => shape.len(),
            _ => 2,
        };
        let names = run::Names::new(input.name(), output.name()).map_err(signature)?;

        let allocator = Allocator::default();
        let tensor_err = |err: ort::Error| ModelError::Options(err.to_string());
        let input = Tensor::<f32>::new(&allocator, [1_usize, input_width]).map_err(tensor_err)?;
        let output = if output_rank == 1 {
            Tensor::<f32>::new(&allocator, [1_usize])
        } else {
            Tensor::<f32>::new(&allocator, [1_usize, output_width])
        }
        .map_err(tensor_err)?;
        Ok(Self {
            path,
            session,
            input,
            output,
            names,
            input_width,
            output_width,
            runtime,
        })
    }

    /// The model file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The ONNX Runtime library this model runs on.
    pub fn runtime(&self) -> &RuntimeInfo {
        &self.runtime.info
    }

    /// The name of the model's input.
    pub fn input_name(&self) -> &str {
        self.names.input_name()
    }

    /// The name of the output read.
    pub fn output_name(&self) -> &str {
        self.names.output_name()
    }

    /// Features per row.
    pub fn input_width(&self) -> usize {
        self.input_width
    }

    /// Values per row out.
    pub fn output_width(&self) -> usize {
        self.output_width
    }

    /// Evaluates one row; the result is valid until the next call. No heap allocation.
    pub fn predict(&mut self, row: &[f32]) -> Result<&[f32], ModelError> {
        if row.len() != self.input_width {
            return Err(ModelError::Width {
                path: self.path.clone(),
                expected: self.input_width,
                got: row.len(),
            });
        }
        self.input.extract_tensor_mut().1.copy_from_slice(row);
        run::run(&self.session, &self.input, &mut self.output, &self.names).map_err(|err| {
            ModelError::Run {
                path: self.path.clone(),
                reason: err.to_string(),
            }
        })?;
        Ok(self.output.extract_tensor().1)
    }
}

impl Predictor for OnnxModel {
    fn input_width(&self) -> usize {
        self.input_width
    }

    fn output_width(&self) -> usize {
        self.output_width
    }

    fn predict(&mut self, input: &[f32]) -> Result<&[f32], PredictError> {
        let (expected, got) = (self.input_width, input.len());
        OnnxModel::predict(self, input).map_err(|err| match err {
            ModelError::Width { .. } => PredictError::Width { expected, got },
            other => PredictError::Run(other.to_string()),
        })
    }
}

fn names_of(outlets: &[Outlet]) -> String {
    outlets
        .iter()
        .map(|o| format!("{} {}", o.name(), o.dtype()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The row width of a `[batch, width]` float32 tensor (`[batch]` counts as width 1 for an
/// output); the batch dimension must be dynamic or 1.
fn row_width(outlet: &Outlet, is_output: bool) -> Result<usize, String> {
    let describe = || format!("{} is {}", outlet.name(), outlet.dtype());
    let ValueType::Tensor { ty, shape, .. } = outlet.dtype() else {
        return Err(format!("{}: expected a float32 tensor", describe()));
    };
    if *ty != TensorElementType::Float32 {
        return Err(format!("{}: expected float32", describe()));
    }
    let batch_ok = |dim: i64| dim == -1 || dim == 1;
    match shape.as_ref() {
        [batch] if is_output && batch_ok(*batch) => Ok(1),
        [batch, width] if batch_ok(*batch) && *width > 0 => {
            usize::try_from(*width).map_err(|_| describe())
        }
        _ => Err(format!(
            "{}: expected shape [batch, width] with a fixed width",
            describe()
        )),
    }
}
