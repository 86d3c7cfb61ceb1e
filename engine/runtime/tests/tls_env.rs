//! `RT_ENGINE_EXTRA_CA` as `rt-engine run` reads it at start: a file that cannot be used stops
//! the engine before it reads the manifest or connects anywhere (the loopback TLS handshakes
//! themselves are tested in src/tls.rs).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn run_with_extra_ca(value: &std::ffi::OsStr) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rt-engine"))
        .args(["run", "--manifest", "/nonexistent/manifest.json"])
        .env("RT_ENGINE_EXTRA_CA", value)
        .output()
        .expect("rt-engine runs")
}

#[test]
fn an_unreadable_extra_ca_stops_the_engine_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("ca.pem");
    let out = run_with_extra_ca(missing.as_os_str());
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let expected = format!(
        "error: TLS: RT_ENGINE_EXTRA_CA={}: cannot read {}:",
        missing.display(),
        missing.display()
    );
    assert!(stderr.starts_with(&expected), "{stderr}");

    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "no certificate here\n").unwrap();
    let out = run_with_extra_ca(junk.as_os_str());
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("no CERTIFICATE in it"), "{stderr}");
}

#[test]
fn an_empty_extra_ca_is_none() {
    // Past the TLS set-up: the manifest is what fails.
    let out = run_with_extra_ca(std::ffi::OsStr::new(""));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!stderr.contains("TLS"), "{stderr}");
    assert!(stderr.contains("cannot read manifest"), "{stderr}");
}
