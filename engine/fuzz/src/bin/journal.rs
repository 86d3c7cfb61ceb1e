//! AFL++ entry point of the `journal` target (see rt_fuzz::journal); built by `make fuzz`.

fn main() {
    afl::fuzz!(|data: &[u8]| rt_fuzz::journal(data));
}
