//! The files a manifest names and the engine reads at start-up: the model of a model strategy
//! (`strategies.<name>.params.model`) and an OKX or Kraken exchange's metadata file
//! (`exchanges.<name>.metadata`).
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

/// Every named file (a model strategy's model, an OKX or Kraken exchange's metadata) that is
/// missing, unreadable or not the one compiled; empty when all match.
pub fn check_files(manifest: &Manifest, base: &Path) -> Vec<Violation> {
    let mut out = Vec::new();
    for (name, strategy) in &manifest.strategies {
        let Some(model) = strategy.params.model() else {
            continue;
        };
        let at = format!("strategies.{name}.params.model");
        let named = Named {
            path: &model.path,
            sha256: &model.sha256,
            path_at: format!("{at}.path"),
            sha256_at: format!("{at}.sha256"),
            rules: ("manifest.model_file", "manifest.model_sha256"),
            changed: "the model file changed after the manifest was compiled",
        };
        check_file(&named, base, &mut out);
    }
    for (name, exchange) in &manifest.exchanges {
        let (Some(path), Some(sha256)) = (&exchange.metadata, &exchange.metadata_sha256) else {
            continue;
        };
        let named = Named {
            path,
            sha256,
            path_at: format!("exchanges.{name}.metadata"),
            sha256_at: format!("exchanges.{name}.metadata_sha256"),
            rules: ("manifest.metadata_file", "manifest.metadata_sha256"),
            changed: "the venue's metadata changed after the manifest was compiled: compile \
                      and plan again",
        };
        check_file(&named, base, &mut out);
    }
    out
}

/// A file a manifest names with its SHA-256, the manifest paths of both keys and the rules.
struct Named<'a> {
    path: &'a str,
    sha256: &'a str,
    path_at: String,
    sha256_at: String,
    /// (missing or unreadable, hashes differently)
    rules: (&'static str, &'static str),
    changed: &'static str,
}

fn check_file(named: &Named<'_>, base: &Path, out: &mut Vec<Violation>) {
    // A malformed hash or an empty path is already a violation of `validate`.
    if named.path.trim().is_empty() || !is_sha256(named.sha256) {
        return;
    }
    let file = resolve(base, named.path);
    match file_sha256(&file) {
        Ok(found) if found == named.sha256 => {}
        Ok(found) => out.push(Violation::of(
            named.rules.1,
            named.sha256_at.clone(),
            format!(
                "{} but {} hashes to {found} ({})",
                named.sha256,
                file.display(),
                named.changed
            ),
        )),
        Err(err) if err.kind() == io::ErrorKind::NotFound => out.push(Violation::of(
            named.rules.0,
            named.path_at.clone(),
            format!(
                "{}: no such file (resolved as {})",
                named.path,
                file.display()
            ),
        )),
        Err(err) => out.push(Violation::of(
            named.rules.0,
            named.path_at.clone(),
            format!("{}: cannot be read: {err}", file.display()),
        )),
    }
}
