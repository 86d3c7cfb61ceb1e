//! The contract test, Rust side: the example manifest loads, and every fault of the shared
//! corpus (tests/contract/bad_manifests.json) is refused with a message that names it. The Python
//! side runs the same corpus against the compiler's checks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use rt_manifest::{content_sha256, load, load_with_base, ManifestError};
use serde_json::Value;

fn contract_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/contract")
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(name: &str) -> String {
    let path = contract_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

#[test]
fn example_loads() {
    let text = read("example.manifest.json");
    let manifest = load(&text).unwrap_or_else(|err| panic!("example refused:\n{err}"));
    let value: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        manifest.content_sha256,
        value["content_sha256"].as_str().unwrap()
    );
    assert_eq!(manifest.content_sha256, content_sha256(&value));
    assert_eq!(manifest.engine.id, "spot_a");
    assert_eq!(manifest.instrument_ids(), ["binance_spot:BTCUSDT"]);
    // Every field is modelled: serialising the typed manifest gives back the document.
    assert_eq!(serde_json::to_value(&manifest).unwrap(), value);
}

/// Follows `path` (keys and indices) to the parent of its last step.
fn parent<'a>(root: &'a mut Value, path: &'a [Value]) -> (&'a mut Value, &'a Value) {
    let (last, init) = path.split_last().expect("an op path is never empty");
    let mut node = root;
    for step in init {
        node = match step {
            Value::String(key) => node.get_mut(key.as_str()),
            Value::Number(index) => node.get_mut(index.as_u64().unwrap() as usize),
            other => panic!("bad path step {other}"),
        }
        .unwrap_or_else(|| panic!("path {path:?} does not exist"));
    }
    (node, last)
}

fn apply(doc: &mut Value, op: &Value) {
    let path = op["path"].as_array().unwrap();
    let (node, last) = parent(doc, path);
    match (op["op"].as_str().unwrap(), last) {
        ("set", Value::String(key)) => {
            node.as_object_mut()
                .unwrap()
                .insert(key.clone(), op["value"].clone());
        }
        ("set", Value::Number(index)) => {
            node[index.as_u64().unwrap() as usize] = op["value"].clone();
        }
        ("remove", Value::String(key)) => {
            node.as_object_mut()
                .unwrap()
                .remove(key)
                .expect("removed key exists");
        }
        ("remove", Value::Number(index)) => {
            node.as_array_mut()
                .unwrap()
                .remove(index.as_u64().unwrap() as usize);
        }
        (kind, step) => panic!("bad op {kind} at {step}"),
    }
}

#[test]
fn corpus_of_bad_manifests_is_refused() {
    let example: Value = serde_json::from_str(&read("example.manifest.json")).unwrap();
    let corpus: Vec<Value> = serde_json::from_str(&read("bad_manifests.json")).unwrap();
    assert!(
        corpus.len() >= 32,
        "the corpus has only {} faults",
        corpus.len()
    );

    let mut names = BTreeSet::new();
    let mut failures = Vec::new();
    for case in &corpus {
        let name = case["name"].as_str().unwrap();
        assert!(names.insert(name), "duplicate case {name}");
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "{name} is not snake_case"
        );
        assert!(case["fault"]
            .as_str()
            .is_some_and(|f| !f.is_empty() && !f.contains('\n')));

        let mut doc = example.clone();
        for op in case["ops"].as_array().unwrap() {
            apply(&mut doc, op);
        }
        let rehash = case["rehash"].as_bool().unwrap();
        if rehash {
            let hash = content_sha256(&doc);
            doc["content_sha256"] = Value::String(hash);
        }
        let text = serde_json::to_string_pretty(&doc).unwrap();
        // Paths in the corpus (model files) are relative to the repository, as pytest runs.
        let err = match load_with_base(&text, &repo_root()) {
            Ok(_) => {
                failures.push(format!("{name}: accepted"));
                continue;
            }
            Err(err) => err,
        };
        let message = err.to_string();
        println!("{name}:\n  {}", message.replace('\n', "\n  "));
        if rehash && matches!(err, ManifestError::Hash { .. }) {
            failures.push(format!(
                "{name}: refused for its hash despite the rehash: {message}"
            ));
        }
        for expected in case["expect"].as_array().unwrap() {
            let expected = expected.as_str().unwrap();
            if !message.contains(expected) {
                failures.push(format!("{name}: {expected:?} not in {message:?}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
