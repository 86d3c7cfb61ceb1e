//! Every fuzz target over its committed seed corpus (`corpus/<target>/`), under `cargo test`:
//! the harness keeps compiling and running as the decoders change, and no seed panics. The
//! fuzzing itself is `make fuzz`.

use std::path::PathBuf;

fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let mut out: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .path();
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path, bytes)
        })
        .collect();
    out.sort();
    out
}

fn run(target: &str) {
    let (_, function) = rt_fuzz::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .unwrap_or_else(|| panic!("no target {target}"));
    let seeds = seeds(target);
    assert!(!seeds.is_empty(), "corpus/{target} is empty");
    for (path, bytes) in seeds {
        let outcome = std::panic::catch_unwind(|| function(&bytes));
        assert!(outcome.is_ok(), "{target} panicked on {}", path.display());
    }
}

#[test]
fn every_target_has_a_test_here() {
    let names: Vec<&str> = rt_fuzz::TARGETS.iter().map(|(name, _)| *name).collect();
    assert_eq!(
        names,
        [
            "binance_market",
            "binance_user_stream",
            "binance_rest",
            "okx",
            "okx_orders",
            "kraken",
            "manifest",
            "journal"
        ]
    );
}

#[test]
fn binance_market() {
    run("binance_market");
}

#[test]
fn binance_user_stream() {
    run("binance_user_stream");
}

#[test]
fn binance_rest() {
    run("binance_rest");
}

#[test]
fn okx() {
    run("okx");
}

#[test]
fn okx_orders() {
    run("okx_orders");
}

#[test]
fn kraken() {
    run("kraken");
}

#[test]
fn manifest() {
    run("manifest");
}

#[test]
fn journal() {
    run("journal");
    rt_fuzz::remove_scratch();
}
