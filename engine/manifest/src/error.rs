//! Why a manifest was refused.
//!
//! Every problem carries the dotted path of the offending key (`risk.instruments.BTCUSDT.
//! max_position`), so an operator can find it in the manifest and the compiler's diagnostics can
//! be matched against the engine's.

use std::fmt;

use crate::SUPPORTED_VERSION;

/// One problem: where (`host.threads.gateway`) and what, with the value and the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Dotted path of the key; empty when the problem is the whole document.
    pub path: String,
    pub message: String,
}

impl Violation {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Violation {
        Violation {
            path: path.into(),
            message: message.into(),
        }
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
            ManifestError::Json { .. } => vec![Violation::new("", self.to_string())],
            ManifestError::Version { found } => {
                vec![Violation::new("manifest_version", version_message(found))]
            }
            ManifestError::Hash { expected, found } => {
                vec![Violation::new(
                    "content_sha256",
                    hash_message(expected, found),
                )]
            }
            ManifestError::Field { path, message } => vec![Violation::new(path, message)],
        }
    }
}
