//! rt-manifest: the manifest contract on the engine side (docs/manifest.md).
//!
//! A manifest is the only input of an engine instance. [`load`] accepts one only if it is valid
//! JSON, of a supported version, unchanged since it was compiled (content hash), shaped exactly
//! like [`Manifest`] (unknown fields refused, decimals exact) and consistent by every semantic
//! rule of the contract; otherwise it says why, naming the path of every problem. The Python
//! compiler implements the same contract independently; `tests/contract/` checks they agree.

mod error;
pub mod features;
pub mod files;
mod fixed;
pub mod model;
mod validate;

use std::io;
use std::path::Path;

use serde::{Serialize, Serializer};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

pub use error::{ManifestError, Violation};
pub use fixed::{
    parse_signed_units, parse_units, DecimalError, Fixed, ParseDecimalError, DECIMAL_PATTERN,
};
pub use model::Manifest;
pub use validate::{client_ids, validate};

/// The manifest version this engine reads.
pub const SUPPORTED_VERSION: u64 = 1;

/// Top-level keys outside the content hash.
const UNHASHED_KEYS: [&str; 2] = ["content_sha256", "provenance"];

/// Parses, verifies and validates a manifest; the files it names (models) are resolved against
/// the working directory. See [`load_with_base`].
pub fn load(text: &str) -> Result<Manifest, ManifestError> {
    load_with_base(text, Path::new("."))
}

/// Parses, verifies and validates a manifest, checking the files it names against `base`.
///
/// Checks run in the order of the contract, and each stage trusts the previous one: JSON syntax,
/// `manifest_version`, `content_sha256`, the shape of every field, then all semantic rules and
/// the named files (missing, or a SHA-256 other than the compiled one) at once.
pub fn load_with_base(text: &str, base: &Path) -> Result<Manifest, ManifestError> {
    let value: Value = serde_json::from_str(text).map_err(json_error)?;
    from_value_with_base(value, base)
}

/// [`load`] for a document already parsed as JSON.
pub fn from_value(value: Value) -> Result<Manifest, ManifestError> {
    from_value_with_base(value, Path::new("."))
}

/// [`load_with_base`] for a document already parsed as JSON.
pub fn from_value_with_base(value: Value, base: &Path) -> Result<Manifest, ManifestError> {
    let manifest = parse_value(value)?;
    let mut violations = validate(&manifest);
    violations.extend(files::check_files(&manifest, base));
    if violations.is_empty() {
        Ok(manifest)
    } else {
        Err(ManifestError::Invalid(violations))
    }
}

/// The structural stages of [`load`] only: JSON syntax, `manifest_version`, `content_sha256`
/// and the shape of every field, stopping at the first problem. The semantic rules are
/// [`validate`]'s, which the caller runs on the result (the compiler collects them as
/// diagnostics instead of a refusal).
pub fn parse(text: &str) -> Result<Manifest, ManifestError> {
    parse_value(serde_json::from_str(text).map_err(json_error)?)
}

fn parse_value(value: Value) -> Result<Manifest, ManifestError> {
    let Some(object) = value.as_object() else {
        return Err(ManifestError::Field {
            path: "(root)".into(),
            message: format!("expected a JSON object, found {}", kind_of(&value)),
        });
    };
    match object.get("manifest_version") {
        Some(Value::Number(n)) if n.as_u64() == Some(SUPPORTED_VERSION) => {}
        Some(other) => {
            return Err(ManifestError::Version {
                found: other.to_string(),
            })
        }
        None => {
            return Err(ManifestError::Version {
                found: "nothing (the key is missing)".into(),
            })
        }
    }
    let expected = content_sha256(&value);
    match object.get("content_sha256") {
        Some(Value::String(found)) if *found == expected => {}
        Some(Value::String(found)) => {
            return Err(ManifestError::Hash {
                expected,
                found: found.clone(),
            });
        }
        Some(other) => {
            return Err(ManifestError::Field {
                path: "content_sha256".into(),
                message: format!("expected a hex string, found {}", kind_of(other)),
            });
        }
        None => {
            return Err(ManifestError::Field {
                path: "content_sha256".into(),
                message: format!("missing (the content hashes to {expected})"),
            });
        }
    }
    serde_path_to_error::deserialize(value).map_err(field_error)
}

impl Manifest {
    /// All semantic rules (no file is read); `Err(ManifestError::Invalid)` lists every
    /// violation.
    pub fn check(&self) -> Result<(), ManifestError> {
        let violations = validate(self);
        if violations.is_empty() {
            Ok(())
        } else {
            Err(ManifestError::Invalid(violations))
        }
    }
}

/// The lowercase hex SHA-256 of a manifest's canonical payload: the object without
/// `content_sha256` and `provenance`, compact, keys sorted, non-ASCII as UTF-8.
///
/// `serde_json`'s map is a `BTreeMap` (the `preserve_order` feature must stay off), so its
/// compact output is exactly Python's `json.dumps(sort_keys=True, separators=(",", ":"),
/// ensure_ascii=False)`.
pub fn content_sha256(manifest: &Value) -> String {
    /// The top-level object minus the unhashed keys, serialised without copying it.
    struct Payload<'a>(&'a Map<String, Value>);

    impl Serialize for Payload<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.collect_map(
                self.0
                    .iter()
                    .filter(|(key, _)| !UNHASHED_KEYS.contains(&key.as_str())),
            )
        }
    }

    let mut hasher = HashWriter(Sha256::new());
    let written = match manifest {
        Value::Object(object) => serde_json::to_writer(&mut hasher, &Payload(object)),
        other => serde_json::to_writer(&mut hasher, other),
    };
    written.expect("serialising a JSON value into a hasher cannot fail");
    hex(&hasher.0.finalize())
}

/// Feeds serialised bytes straight into the hash.
struct HashWriter(Sha256);

impl io::Write for HashWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0xf)]));
    }
    out
}

/// The JSON Schema (draft 2020-12) of [`Manifest`]. It states the shape; the semantic rules are
/// only in [`validate`].
pub fn schema() -> Value {
    schemars::schema_for!(Manifest).to_value()
}

fn json_error(err: serde_json::Error) -> ManifestError {
    let (line, column) = (err.line(), err.column());
    let full = err.to_string();
    // serde_json appends the position; it is already in the variant's own fields.
    let message = full
        .strip_suffix(&format!(" at line {line} column {column}"))
        .unwrap_or(&full)
        .to_owned();
    ManifestError::Json {
        line,
        column,
        message,
    }
}

/// A shape error, named by the path of the offending key. serde reports a missing field at its
/// parent path (`engine.journal`); it is moved to the field itself (`engine.journal.fsync`),
/// which is where a reader looks and what the compiler reports.
fn field_error(err: serde_path_to_error::Error<serde_json::Error>) -> ManifestError {
    let parent = err.path().to_string();
    let message = err.inner().to_string();
    let missing = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.strip_suffix('`'));
    let path = match (parent.as_str(), missing) {
        (".", Some(field)) => field.to_owned(),
        (_, Some(field)) => format!("{parent}.{field}"),
        (".", None) => "(root)".to_owned(),
        (_, None) => parent,
    };
    ManifestError::Field { path, message }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    const EXAMPLE: &str = include_str!("../../../tests/contract/example.manifest.json");

    fn example() -> Value {
        serde_json::from_str(EXAMPLE).unwrap()
    }

    fn rehashed(mut value: Value) -> String {
        value["content_sha256"] = json!(content_sha256(&value));
        value.to_string()
    }

    #[test]
    fn loads_the_example() {
        let manifest = load(EXAMPLE).unwrap();
        assert_eq!(manifest.host.name, "ny4_a");
        assert_eq!(
            manifest.risk.instruments["BTCUSDT"].max_position,
            Fixed::parse("0.1").unwrap()
        );
    }

    #[test]
    fn hash_matches_python_json_dumps() {
        // The payload without content_sha256 and provenance, hashed by Python:
        // python3 -c 'import json,hashlib; print(hashlib.sha256(json.dumps({"b": "é€\n\u0001",
        //   "a": [1, -2, True, None]}, sort_keys=True, separators=(",", ":"),
        //   ensure_ascii=False).encode()).hexdigest())'
        let value = json!({"b": "é€\n\u{1}", "a": [1, -2, true, null], "content_sha256": "x",
                           "provenance": {}});
        assert_eq!(
            content_sha256(&value),
            "7382c18166dc774783988c640918e20152f59b2fa47edb065fcdbc766b56fa97"
        );
    }

    #[test]
    fn provenance_is_outside_the_hash() {
        let mut value = example();
        value["provenance"]["git_commit"] = json!("0123abc");
        value["provenance"]["git_dirty"] = json!(true);
        assert!(load(&value.to_string()).is_ok());
    }

    #[test]
    fn stages_report_in_order() {
        let err = load("{\n  \"manifest_version\": 1,\n}").unwrap_err();
        assert_eq!(
            err,
            ManifestError::Json {
                line: 3,
                column: 1,
                message: "trailing comma".into(),
            }
        );
        assert_eq!(
            err.to_string(),
            "not valid JSON at line 3 column 1: trailing comma"
        );

        let err = load("[1]").unwrap_err();
        assert_eq!(
            err.to_string(),
            "(root): expected a JSON object, found an array"
        );

        // The version is checked before the hash, so a newer manifest says so, not "tampered".
        let mut value = example();
        value["manifest_version"] = json!(2);
        assert_eq!(
            load(&value.to_string()).unwrap_err().to_string(),
            "manifest_version: found 2, this engine reads version 1"
        );

        let mut value = example();
        let declared = value["content_sha256"].as_str().unwrap().to_owned();
        value["risk"]["max_daily_loss"] = json!("25000");
        let err = load(&value.to_string()).unwrap_err();
        assert!(matches!(&err, ManifestError::Hash { found, .. } if *found == declared));

        let mut value = example();
        value["content_sha256"] = json!(7);
        assert_eq!(
            load(&value.to_string()).unwrap_err().to_string(),
            "content_sha256: expected a hex string, found a number"
        );
    }

    #[test]
    fn field_errors_name_the_path() {
        let cases = [
            (json!(["risk", "instruments", "BTCUSDT", "max_position"]), json!(0.1),
             "risk.instruments.BTCUSDT.max_position: invalid type: floating point `0.1`, expected a decimal string"),
            (json!(["host", "threads", "strategy"]), json!("3"),
             "host.threads.strategy: invalid type: string \"3\", expected u32"),
            (json!(["strategies", "mm_btcusdt_spot", "params", "reference"]), json!("last"),
             "strategies.mm_btcusdt_spot.params.reference: unknown variant `last`, expected `mid` or `microprice`"),
            (json!(["host", "cpu", "numa_nodes", 0, 3]), json!(-3),
             "host.cpu.numa_nodes[0][3]: invalid value: integer `-3`, expected u32"),
        ];
        for (path, bad, expected) in cases {
            let mut value = example();
            let mut node = &mut value;
            for step in path.as_array().unwrap() {
                node = match step {
                    Value::String(key) => &mut node[key.as_str()],
                    _ => &mut node[step.as_u64().unwrap() as usize],
                };
            }
            *node = bad;
            assert_eq!(load(&rehashed(value)).unwrap_err().to_string(), expected);
        }
    }

    #[test]
    fn missing_fields_are_named_at_their_own_path() {
        let mut value = example();
        value["engine"]["journal"]
            .as_object_mut()
            .unwrap()
            .remove("dir");
        let err = load(&rehashed(value)).unwrap_err();
        assert_eq!(
            err,
            ManifestError::Field {
                path: "engine.journal.dir".into(),
                message: "missing field `dir`".into()
            }
        );
        // Nullable is not optional: the key must be there.
        let mut value = example();
        value["exchanges"]["binance_spot"]
            .as_object_mut()
            .unwrap()
            .remove("credentials");
        let err = load(&rehashed(value)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "exchanges.binance_spot.credentials: missing field `credentials`"
        );
    }

    #[test]
    fn strategy_refuses_unknown_fields_with_their_path() {
        let mut value = example();
        value["strategies"]["mm_btcusdt_spot"]["params"]["turbo"] = json!(true);
        let message = load(&rehashed(value)).unwrap_err().to_string();
        assert!(
            message.starts_with("strategies.mm_btcusdt_spot.params.turbo: unknown field `turbo`"),
            "{message}"
        );
        let mut value = example();
        value["strategies"]["mm_btcusdt_spot"]["weight"] = json!(1);
        let message = load(&rehashed(value)).unwrap_err().to_string();
        assert!(
            message.starts_with("strategies.mm_btcusdt_spot.weight: unknown field `weight`"),
            "{message}"
        );
        let mut value = example();
        value["strategies"]["mm_btcusdt_spot"]
            .as_object_mut()
            .unwrap()
            .remove("kind");
        assert_eq!(
            load(&rehashed(value)).unwrap_err().to_string(),
            "strategies.mm_btcusdt_spot.kind: missing field `kind`"
        );
    }

    #[test]
    fn strategy_params_before_kind_still_load() {
        // Keys out of order (not from `load`, whose maps are sorted) take the buffered path.
        let text = r#"{"params": {"cooldown_ms": 1, "levels": 5, "max_slippage": "0.05",
                       "order_qty": "0.001", "threshold": "0.6"},
                       "kind": "imbalance_taker", "exchange": "x", "instruments": ["A"]}"#;
        let strategy: model::Strategy = serde_json::from_str(text).unwrap();
        assert_eq!(strategy.params.kind(), model::StrategyKind::ImbalanceTaker);
        let bad = text.replace("\"levels\"", "\"depth\"");
        let err = serde_json::from_str::<model::Strategy>(&bad)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("params: unknown field `depth`"), "{err}");
    }

    #[test]
    fn invalid_lists_every_violation_one_per_line() {
        let mut value = example();
        value["host"]["threads"]["gateway"] = json!(9);
        value["risk"]["order_rate"]["burst"] = json!(5);
        let err = load(&rehashed(value)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "host.threads.gateway: core 9 is not in cpu.isolated [2, 3, 4, 5, 6, 7] (hot threads \
             must run on isolated cores)\nrisk.order_rate.burst: 5 is below per_second 10 (a \
             burst allows at least one second's orders)"
        );
        assert_eq!(err.violations().len(), 2);
    }

    #[test]
    fn schema_describes_the_manifest() {
        let schema = schema();
        assert_eq!(
            schema["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
        assert_eq!(schema["additionalProperties"], false);
        let defs = &schema["$defs"];
        assert_eq!(
            defs["Decimal"],
            json!({"type": "string", "pattern": DECIMAL_PATTERN})
        );
        // Nullable fields are required and admit null.
        assert_eq!(
            defs["Threads"]["properties"]["strategy"]["type"],
            json!(["integer", "null"])
        );
        assert!(defs["Threads"]["required"]
            .as_array()
            .unwrap()
            .contains(&json!("strategy")));
        let kinds: Vec<_> = defs["Strategy"]["oneOf"]
            .as_array()
            .unwrap()
            .iter()
            .map(|variant| variant["properties"]["kind"]["const"].clone())
            .collect();
        assert_eq!(
            kinds,
            [
                json!("market_maker"),
                json!("imbalance_taker"),
                json!("model_taker")
            ]
        );
    }

    /// The example with its strategy replaced by a model taker reading `path`.
    fn with_model(path: &str, sha256: &str) -> Value {
        let mut value = example();
        value["strategies"]["mm_btcusdt_spot"] = json!({
            "kind": "model_taker", "exchange": "binance_spot", "instruments": ["BTCUSDT"],
            "params": {
                "model": {"path": path, "sha256": sha256, "input_name": "features",
                          "input_width": 2, "output_name": "signal", "output_width": 1,
                          "opset": 15, "intra_op_threads": 1, "optimization": "all"},
                "features": {"features": [{"name": "book_imbalance", "levels": 1},
                                          {"name": "spread"}]},
                "buy_above": "0.65", "sell_below": "0.35", "order_qty": "0.001",
                "max_slippage": "0.5", "cooldown_ms": 1000
            }
        });
        value
    }

    #[test]
    fn model_files_are_checked_at_load_against_the_base() {
        let dir = std::env::temp_dir().join(format!("rt-manifest-files-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("models")).unwrap();
        let file = dir.join("models/m.onnx");
        std::fs::write(&file, b"not really onnx").unwrap();
        let sha = files::file_sha256(&file).unwrap();
        // sha256 of the 15 bytes, by `printf 'not really onnx' | sha256sum`.
        assert_eq!(
            sha,
            "566d60bdbce622616878c49421531dda7d25885168779a37fa6b87703f86ed3a"
        );
        let text = rehashed(with_model("models/m.onnx", &sha));
        let manifest = load_with_base(&text, &dir).unwrap();
        let model = manifest.strategies["mm_btcusdt_spot"]
            .params
            .model()
            .unwrap();
        assert_eq!(model.optimization, model::Optimization::All);
        // Round trip: the serialised manifest has the same shape.
        let back = serde_json::to_value(&manifest).unwrap();
        assert_eq!(
            back["strategies"],
            with_model("models/m.onnx", &sha)["strategies"]
        );
        // An absolute path ignores the base.
        let absolute = rehashed(with_model(file.to_str().unwrap(), &sha));
        assert!(load_with_base(&absolute, Path::new("/nonexistent")).is_ok());

        // Relative to another base: missing, named at .path.
        let err = load_with_base(&text, Path::new("/nonexistent")).unwrap_err();
        let v = err.violations();
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].path, "strategies.mm_btcusdt_spot.params.model.path");
        assert!(v[0].message.contains("no such file"), "{}", v[0].message);

        // Edited after compilation: named at .sha256.
        std::fs::write(&file, b"retrained").unwrap();
        let err = load_with_base(&text, &dir).unwrap_err();
        let v = err.violations();
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].path, "strategies.mm_btcusdt_spot.params.model.sha256");
        assert!(v[0].message.contains("changed after"), "{}", v[0].message);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn model_taker_shape_is_strict() {
        let sha = "0".repeat(64);
        let mut value = with_model("m.onnx", &sha);
        value["strategies"]["mm_btcusdt_spot"]["params"]["model"]["turbo"] = json!(1);
        let message = load(&rehashed(value)).unwrap_err().to_string();
        assert!(
            message.starts_with("strategies.mm_btcusdt_spot.params.model.turbo: unknown field"),
            "{message}"
        );
        let mut value = with_model("m.onnx", &sha);
        value["strategies"]["mm_btcusdt_spot"]["params"]["model"]["optimization"] = json!("max");
        let message = load(&rehashed(value)).unwrap_err().to_string();
        assert!(
            message.starts_with(
                "strategies.mm_btcusdt_spot.params.model.optimization: unknown variant `max`"
            ),
            "{message}"
        );
        let mut value = with_model("m.onnx", &sha);
        value["strategies"]["mm_btcusdt_spot"]["params"]["buy_above"] = json!(0.6);
        let message = load(&rehashed(value)).unwrap_err().to_string();
        assert!(
            message.starts_with("strategies.mm_btcusdt_spot.params.buy_above: invalid type"),
            "{message}"
        );
    }
}
