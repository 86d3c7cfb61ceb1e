//! AFL++ entry point of the `binance_user_stream` target (see rt_fuzz::binance_user_stream); built by `make fuzz`.

fn main() {
    afl::fuzz!(|data: &[u8]| rt_fuzz::binance_user_stream(data));
}
