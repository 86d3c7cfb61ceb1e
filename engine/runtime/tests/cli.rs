//! `rt-engine` as an operator runs it: exit codes, stdout and stderr, snapshot-tested.
//!
//! Snapshots live in tests/snapshots/; after an intended change to the output, regenerate them
//! with `UPDATE_SNAPSHOTS=1 cargo test -p rt-engine --test cli` and review the diff.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

const EXAMPLE: &str = "tests/contract/example.manifest.json";

fn rt_engine(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rt-engine"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("rt-engine runs")
}

fn utf8(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("output is UTF-8")
}

/// Compares `actual` with tests/snapshots/`name`, or rewrites it under UPDATE_SNAPSHOTS=1.
fn snapshot(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("{}: {err} (run with UPDATE_SNAPSHOTS=1)", path.display()));
    assert_eq!(actual, expected, "output differs from {}", path.display());
}

/// The load time differs on every run.
fn without_load_time(stdout: &str) -> String {
    stdout
        .lines()
        .map(|line| match line.strip_prefix("load time  ") {
            Some(rest) => {
                let unit = rest.find(' ').unwrap();
                assert!(rest[..unit].bytes().all(|b| b.is_ascii_digit()), "{line}");
                format!("load time  N{}", &rest[unit..])
            }
            None => line.to_owned(),
        })
        .map(|line| line + "\n")
        .collect()
}

/// The example with `edit` applied and its content hash recomputed, in a file under `dir`.
fn bad_manifest(dir: &Path, name: &str, edit: impl FnOnce(&mut Value)) {
    let mut value: Value =
        serde_json::from_str(&std::fs::read_to_string(workspace().join(EXAMPLE)).unwrap()).unwrap();
    edit(&mut value);
    value["content_sha256"] = json!(rt_manifest::content_sha256(&value));
    std::fs::write(
        dir.join(name),
        serde_json::to_string_pretty(&value).unwrap(),
    )
    .unwrap();
}

#[test]
fn check_accepts_the_example() {
    let out = rt_engine(&workspace(), &["check", "--manifest", EXAMPLE]);
    assert_eq!(out.status.code(), Some(0), "{}", utf8(&out.stderr));
    assert_eq!(utf8(&out.stderr), "");
    let stdout = utf8(&out.stdout);
    let example: Value =
        serde_json::from_str(&std::fs::read_to_string(workspace().join(EXAMPLE)).unwrap()).unwrap();
    let verified = format!("{} (verified)", example["content_sha256"].as_str().unwrap());
    for fact in [
        "engine     spot_a on host ny4_a",
        "mode LIVE",
        verified.as_str(),
        "feed binance_spot        core 2",
        "total 9449472 B",
        "tick 0.01  lot 0.00001",
        "mm_btcusdt_spot  market_maker on binance_spot [BTCUSDT]",
        "kill switch  armed",
        "max position 0.1",
    ] {
        assert!(stdout.contains(fact), "{fact:?} not in\n{stdout}");
    }
    snapshot("check_example.txt", &without_load_time(&stdout));
}

#[test]
fn check_json_is_one_object() {
    let out = rt_engine(
        &workspace(),
        &["check", "--manifest", EXAMPLE, "--format", "json"],
    );
    assert_eq!(out.status.code(), Some(0));
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["accepted"], true);
    assert_eq!(summary["engine_id"], "spot_a");
    assert_eq!(summary["mode"], "live");
    assert_eq!(summary["hash_verified"], true);
    assert!(summary["load_us"].is_u64());
    assert_eq!(
        summary["threads"][0],
        json!({
            "thread": "feed binance_spot", "path": "host.threads.feeds.binance_spot", "core": 2,
            "role": "hot"
        })
    );
    assert_eq!(summary["rings"]["total_bytes"], 9_449_472);
    assert_eq!(summary["rings"]["budget_bytes"], 1_073_741_824);
    assert_eq!(
        summary["strategies"]["mm_btcusdt_spot"]["params"]["quote_qty"],
        "0.002"
    );
    assert_eq!(summary["risk"]["kill_switch"]["enabled"], true);
}

#[test]
fn check_refuses_with_every_problem_and_exit_2() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    bad_manifest(dir, "refused.manifest.json", |v| {
        v["host"]["threads"]["gateway"] = json!(9);
        v["risk"]["instruments"]["BTCUSDT"]["max_order_qty"] = json!("0.5");
    });
    let out = rt_engine(dir, &["check", "--manifest", "refused.manifest.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(utf8(&out.stdout), "");
    snapshot("check_refused.stderr", &utf8(&out.stderr));

    let out = rt_engine(
        dir,
        &[
            "check",
            "--manifest",
            "refused.manifest.json",
            "--format",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["accepted"], false);
    assert_eq!(report["problems"][0]["path"], "host.threads.gateway");
    assert_eq!(
        report["problems"][1]["path"],
        "risk.instruments.BTCUSDT.max_order_qty"
    );
}

#[test]
fn check_names_a_field_of_the_wrong_type() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    bad_manifest(dir, "typed.manifest.json", |v| {
        v["risk"]["instruments"]["BTCUSDT"]["max_position"] = json!(0.1);
    });
    let out = rt_engine(dir, &["check", "--manifest", "typed.manifest.json"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        utf8(&out.stderr),
        "error: typed.manifest.json: refused:\n  - risk.instruments.BTCUSDT.max_position: \
         invalid type: floating point `0.1`, expected a decimal string\n"
    );
}

#[test]
fn check_reports_an_unreadable_file_with_exit_1() {
    let out = rt_engine(
        &workspace(),
        &["check", "--manifest", "no/such.manifest.json"],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = utf8(&out.stderr);
    assert!(
        stderr.starts_with("error: cannot read manifest no/such.manifest.json: "),
        "{stderr}"
    );
}

#[test]
fn schema_and_version() {
    let out = rt_engine(&workspace(), &["schema"]);
    assert_eq!(out.status.code(), Some(0));
    let schema: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert_eq!(schema["title"], "py_rt engine manifest (version 1)");

    // The binary is built with the profile of this test, which names it.
    let out = rt_engine(&workspace(), &["--version"]);
    assert_eq!(out.status.code(), Some(0));
    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    assert_eq!(
        utf8(&out.stdout),
        format!("rt-engine {} ({build} build)\n", env!("CARGO_PKG_VERSION"))
    );
}
