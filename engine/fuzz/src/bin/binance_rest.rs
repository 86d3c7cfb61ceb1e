//! AFL++ entry point of the `binance_rest` target (see rt_fuzz::binance_rest); built by `make fuzz`.

fn main() {
    afl::fuzz!(|data: &[u8]| rt_fuzz::binance_rest(data));
}
