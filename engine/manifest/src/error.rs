//! Why a manifest was refused.
//!
//! Every problem carries the dotted path of the offending key (`risk.instruments.BTCUSDT.
//! max_position`), so an operator can find it in the manifest and the compiler's diagnostics can
//! be matched against the engine's.

use std::fmt;

use crate::SUPPORTED_VERSION;

/// One problem: where (`host.threads.gateway`), by which rule (`thread.hot_core_isolated`) and
/// what, with the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Dotted path of the key; empty when the problem is the whole document.
    pub path: String,
    /// The stable id of the rule (docs/manifest.md, "Rules"), the same name the compiler's
    /// diagnostics carry.
    pub rule: &'static str,
    pub message: String,
}

impl Violation {
    /// The rule of a problem found while the engine loads something a manifest names (a model
    /// session, ...), for callers that have no more specific rule.
    pub const LOAD: &'static str = "engine.load";

    /// A problem found by `rule`.
    pub fn of(
        rule: &'static str,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Violation {
        Violation {
            path: path.into(),
            rule,
            message: message.into(),
        }
    }

    /// A problem of rule [`Violation::LOAD`].
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Violation {
        Violation::of(Violation::LOAD, path, message)
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// A refused manifest. Structural problems (JSON, version, hash, a field of the wrong shape) stop
/// at the first; semantic problems are all collected in [`ManifestError::Invalid`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("not valid JSON at line {line} column {column}: {message}")]
    Json {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("manifest_version: {}", version_message(.found))]
    Version { found: String },
    #[error("content_sha256: {}", hash_message(.expected, .found))]
    Hash { expected: String, found: String },
    #[error("{path}: {message}")]
    Field { path: String, message: String },
    #[error("{}", lines(.0))]
    Invalid(Vec<Violation>),
}

fn version_message(found: &str) -> String {
    format!("found {found}, this engine reads version {SUPPORTED_VERSION}")
}

fn hash_message(expected: &str, found: &str) -> String {
    format!(
        "found {found} but the content hashes to {expected} \
         (the manifest was changed after it was compiled)"
    )
}

fn lines(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(Violation::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

impl ManifestError {
    /// The problems one per entry, whatever the stage that found them.
    pub fn violations(&self) -> Vec<Violation> {
        match self {
            ManifestError::Invalid(violations) => violations.clone(),
            ManifestError::Json { .. } => {
                vec![Violation::of("manifest.json", "", self.to_string())]
            }
            ManifestError::Version { found } => vec![Violation::of(
                "manifest.version",
                "manifest_version",
                version_message(found),
            )],
            ManifestError::Hash { expected, found } => vec![Violation::of(
                "manifest.hash",
                "content_sha256",
                hash_message(expected, found),
            )],
            ManifestError::Field { path, message } => {
                vec![Violation::of("manifest.field", path, message)]
            }
        }
    }
}
