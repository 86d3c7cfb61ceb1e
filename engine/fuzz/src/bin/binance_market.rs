//! AFL++ entry point of the `binance_market` target (see rt_fuzz::binance_market); built by `make fuzz`.

fn main() {
    afl::fuzz!(|data: &[u8]| rt_fuzz::binance_market(data));
}
