//! The ring's software cost per message, without the cache-line traffic between cores: one
//! thread pushes a burst into an in-memory ring and pops it back, 20M messages of 32 bytes,
//! best of 5 runs; one message per 64-byte slot (`try_push`), then bursts packed 7 to a
//! 256-byte slot and 14 to a 512-byte slot (`try_push_many`). One thread, so the figure hardly
//! moves with the machine's load, unlike the two-thread stream of `benches/hop.rs`.
//!
//! `cargo run --release -p rt-ring --example push_pop_cost`

#![allow(clippy::expect_used)]

use std::hint::black_box;
use std::time::Instant;

use rt_ring::{Pop, Ring};

fn main() {
    for (slot_bytes, burst) in [(64u64, 1usize), (256, 7), (512, 14)] {
        let (mut tx, mut rx) = Ring::in_memory(65536 / slot_bytes, slot_bytes).expect("ring");
        let msgs = vec![[7u8; 32]; burst];
        let bursts = 20_000_000 / burst;
        let mut best = f64::MAX;
        for _ in 0..5 {
            let started = Instant::now();
            let mut sum = 0u64;
            for _ in 0..bursts {
                if burst == 1 {
                    tx.try_push(&msgs[0]).expect("room for one");
                } else {
                    assert_eq!(tx.try_push_many(&msgs), burst, "room for a burst");
                }
                for _ in 0..burst {
                    if let Pop::Message(v) = rx.try_pop(|b| u64::from(b[0])) {
                        sum += v;
                    }
                }
            }
            assert_eq!(sum, 7 * (bursts * burst) as u64, "every message popped");
            black_box(sum);
            let ns = started.elapsed().as_nanos() as f64 / (bursts * burst) as f64;
            best = best.min(ns);
        }
        println!("{slot_bytes}-byte slots, bursts of {burst}: {best:.2} ns a message (push + pop, one thread)");
    }
}
