//! Declares the `loom` cfg so that `unexpected_cfgs` accepts `#[cfg(loom)]`: the crate takes the
//! workspace lints as they are and so cannot add a `[lints.rust]` table of its own.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(loom)");
    println!("cargo::rerun-if-changed=build.rs");
}
