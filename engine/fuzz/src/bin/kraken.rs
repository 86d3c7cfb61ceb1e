//! AFL++ entry point of the `kraken` target (see rt_fuzz::kraken); built by `make fuzz`.

fn main() {
    afl::fuzz!(|data: &[u8]| rt_fuzz::kraken(data));
}
