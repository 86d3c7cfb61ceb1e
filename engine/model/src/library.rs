//! The ONNX Runtime shared library: where it is found, which version it is, and the one
//! process-wide `ort` environment built on it.
//!
//! Discovery order (first hit wins; a path that is given but does not exist is an error, never a
//! silent fall-through):
//! 1. the explicit path of [`crate::ModelOptions::library_path`] (the manifest's or the CLI's
//!    `onnxruntime` path; `appliance` passes the `onnxruntime` wheel's library in development);
//! 2. the `ORT_DYLIB_PATH` environment variable;
//! 3. beside the executable, as a release ships it: `<exe dir>/lib/` then `<exe dir>/../lib/`
//!    (`libonnxruntime.so` or `libonnxruntime.so.<version>`).
//!
//! `ort` panics when it initialises on a library that is not ONNX Runtime or is older than its
//! C API, so every candidate is probed here first (`OrtGetApiBase`, `GetVersionString`) and
//! refused with a [`ModelError`]; the `ort` initialisation itself then runs under
//! `catch_unwind` as a second guard. `ort` allows one library and one environment per process:
//! asking for a second, different library is refused by name.

use std::ffi::{c_char, CStr};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ort::environment::Environment;

use crate::ModelError;

/// The environment variable `ort` itself reads, honoured here too (step 2 of discovery).
pub const ENV_VAR: &str = "ORT_DYLIB_PATH";

/// The oldest ONNX Runtime minor version this build can drive (`1.<MIN_MINOR>`): the C API
/// version `ort` asks for (no `api-NN` feature: 17).
pub const MIN_MINOR: u32 = ort::MINOR_VERSION;

/// A probed ONNX Runtime library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeInfo {
    /// The canonical path of the library file.
    pub path: PathBuf,
    /// Its version string, e.g. `1.32.0`.
    pub version: String,
    /// The C API version `ort` uses with it.
    pub api_version: u32,
}

/// Finds the library following the discovery order of this module.
pub fn find_library(explicit: Option<&Path>) -> Result<PathBuf, ModelError> {
    if let Some(path) = explicit {
        return existing(path, "the given path");
    }
    if let Some(path) = std::env::var_os(ENV_VAR).filter(|v| !v.is_empty()) {
        return existing(Path::new(&path), ENV_VAR);
    }
    let mut tried = vec![format!("no explicit path, {ENV_VAR} unset")];
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
    {
        for dir in [dir.join("lib"), dir.join("..").join("lib")] {
            if let Some(found) = library_in(&dir) {
                return Ok(found);
            }
            tried.push(dir.display().to_string());
        }
    }
    Err(ModelError::LibraryNotFound {
        tried: tried.join(", "),
    })
}

fn existing(path: &Path, source: &str) -> Result<PathBuf, ModelError> {
    if path.is_file() {
        Ok(path.to_path_buf())
    } else {
        Err(ModelError::LibraryNotFound {
            tried: format!("{} (from {source}) does not exist", path.display()),
        })
    }
}

/// `libonnxruntime.so` or the highest `libonnxruntime.so.<version>` in `dir`.
fn library_in(dir: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| {
                    name == "libonnxruntime.so" || name.starts_with("libonnxruntime.so.")
                })
        })
        .collect();
    found.sort();
    found.pop()
}

/// Opens the library and reads its version without initialising `ort`.
pub fn probe(path: &Path) -> Result<RuntimeInfo, ModelError> {
    let canonical = std::fs::canonicalize(path).map_err(|err| ModelError::LibraryNotFound {
        tried: format!("{}: {err}", path.display()),
    })?;
    let version = version_string(&canonical)?;
    let minor = version
        .split('.')
        .nth(1)
        .and_then(|minor| minor.parse::<u32>().ok())
        .ok_or_else(|| ModelError::LibraryVersion {
            path: canonical.clone(),
            version: version.clone(),
            min_minor: MIN_MINOR,
        })?;
    if !version.starts_with("1.") || minor < MIN_MINOR {
        return Err(ModelError::LibraryVersion {
            path: canonical,
            version,
            min_minor: MIN_MINOR,
        });
    }
    Ok(RuntimeInfo {
        path: canonical,
        version,
        api_version: ort::sys::ORT_API_VERSION,
    })
}

#[allow(unsafe_code)]
fn version_string(path: &Path) -> Result<String, ModelError> {
    type GetApiBase = unsafe extern "C" fn() -> *const ort::sys::OrtApiBase;
    // SAFETY: loading a shared library runs its initialisers; the path is the one the operator
    // named as ONNX Runtime. A file that is not a loadable library is an `Err` from dlopen.
    let lib = unsafe { libloading::Library::new(path) }.map_err(|err| ModelError::LibraryLoad {
        path: path.to_path_buf(),
        reason: err.to_string(),
    })?;
    // SAFETY: the symbol's type is the one ONNX Runtime's C API declares for `OrtGetApiBase`.
    let getter = unsafe { lib.get::<GetApiBase>(b"OrtGetApiBase\0") }.map_err(|_| {
        ModelError::NotOnnxRuntime {
            path: path.to_path_buf(),
        }
    })?;
    // SAFETY: `OrtGetApiBase` takes no arguments and returns a pointer to a static struct.
    let base = unsafe { getter() };
    if base.is_null() {
        return Err(ModelError::NotOnnxRuntime {
            path: path.to_path_buf(),
        });
    }
    // SAFETY: `base` is non-null and points to ONNX Runtime's static `OrtApiBase`;
    // `GetVersionString` returns a static NUL-terminated string.
    let version: *const c_char = unsafe { ((*base).GetVersionString)() };
    if version.is_null() {
        return Err(ModelError::NotOnnxRuntime {
            path: path.to_path_buf(),
        });
    }
    // SAFETY: non-null, NUL-terminated, static (see above); copied before the library closes.
    let text = unsafe { CStr::from_ptr(version) }
        .to_string_lossy()
        .into_owned();
    Ok(text)
}

/// The process-wide ONNX Runtime: its library and the `ort` environment sessions are built in.
#[derive(Debug)]
pub(crate) struct Runtime {
    pub(crate) info: RuntimeInfo,
    pub(crate) env: Environment,
}

static RUNTIME: Mutex<Option<Arc<Runtime>>> = Mutex::new(None);

/// The runtime for the library at `path`, initialised on first use.
pub(crate) fn runtime(path: &Path) -> Result<Arc<Runtime>, ModelError> {
    let info = probe(path)?;
    let mut slot = RUNTIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(current) = slot.as_ref() {
        if current.info.path == info.path {
            return Ok(Arc::clone(current));
        }
        return Err(ModelError::LibraryConflict {
            loaded: current.info.path.clone(),
            requested: info.path,
        });
    }
    let init = panic::catch_unwind(AssertUnwindSafe(|| {
        ort::init_from(&info.path)
            .map_err(|err| err.to_string())?
            .with_name("rt-model")
            .with_telemetry(false)
            .build()
            .map_err(|err| err.to_string())
    }));
    let env = match init {
        Ok(Ok(env)) => env,
        Ok(Err(reason)) => {
            return Err(ModelError::Init {
                path: info.path,
                reason,
            })
        }
        Err(panic) => {
            let reason = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_string()))
                .unwrap_or_else(|| "panicked".to_string());
            return Err(ModelError::Init {
                path: info.path,
                reason: format!("ort panicked: {reason}"),
            });
        }
    };
    let runtime = Arc::new(Runtime { info, env });
    *slot = Some(Arc::clone(&runtime));
    Ok(runtime)
}
