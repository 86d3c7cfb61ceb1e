//! AFL++ entry point of the `okx_orders` target (see rt_fuzz::okx_orders); built by `make fuzz`.

fn main() {
    afl::fuzz!(|data: &[u8]| rt_fuzz::okx_orders(data));
}
