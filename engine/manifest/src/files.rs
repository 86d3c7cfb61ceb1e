//! The files a manifest names and the engine reads at start-up: today the model of a model
//! strategy (`strategies.<name>.params.model`).
//!
//! The compiler wrote each file's SHA-256 into the manifest; [`check_files`] refuses a file that
//! is missing or whose content hashes differently (edited or retrained after compilation), each
//! naming the manifest path of the key. Relative paths are resolved against a base directory
//! (the engine's working directory, like `engine.journal.dir`).

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::model::Manifest;
use crate::validate::is_sha256;
use crate::Violation;

/// `path` as the engine opens it: itself when absolute, else under `base`.
pub fn resolve(base: &Path, path: &str) -> PathBuf {
    let path = Path::new(path);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

/// Lowercase hex SHA-256 of a file's content, read in blocks.
pub fn file_sha256(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut block = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut block)?;
        if n == 0 {
            break;
        }
        hasher.update(&block[..n]);
    }
    Ok(crate::hex(&hasher.finalize()))
}

/// Every model file that is missing, unreadable or not the one compiled; empty when all match.
pub fn check_files(manifest: &Manifest, base: &Path) -> Vec<Violation> {
    let mut out = Vec::new();
    for (name, strategy) in &manifest.strategies {
        let Some(model) = strategy.params.model() else {
            continue;
        };
        // A malformed hash or an empty path is already a violation of `validate`.
        if model.path.trim().is_empty() || !is_sha256(&model.sha256) {
            continue;
        }
        let at = |field: &str| format!("strategies.{name}.params.model.{field}");
        let file = resolve(base, &model.path);
        match file_sha256(&file) {
            Ok(found) if found == model.sha256 => {}
            Ok(found) => out.push(Violation::of(
                "manifest.model_sha256",
                at("sha256"),
                format!(
                    "{} but {} hashes to {found} (the model file changed after the manifest \
                     was compiled)",
                    model.sha256,
                    file.display()
                ),
            )),
            Err(err) if err.kind() == io::ErrorKind::NotFound => out.push(Violation::of(
                "manifest.model_file",
                at("path"),
                format!(
                    "{}: no such file (resolved as {})",
                    model.path,
                    file.display()
                ),
            )),
            Err(err) => out.push(Violation::of(
                "manifest.model_file",
                at("path"),
                format!("{}: cannot be read: {err}", file.display()),
            )),
        }
    }
    out
}
