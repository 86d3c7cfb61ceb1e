//! AFL++ entry point of the `okx` target (see rt_fuzz::okx); built by `make fuzz`.

fn main() {
    afl::fuzz!(|data: &[u8]| rt_fuzz::okx(data));
}
