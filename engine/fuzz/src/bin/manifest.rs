//! AFL++ entry point of the `manifest` target (see rt_fuzz::manifest); built by `make fuzz`.

fn main() {
    afl::fuzz!(|data: &[u8]| rt_fuzz::manifest(data));
}
