//! `predict` allocates nothing on the Rust heap: a counting global allocator around 10,000 calls.
//!
//! In its own test binary: the allocator counts every thread of the process.
#![allow(unsafe_code, clippy::unwrap_used)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{fixture, options, ROWS};
use rt_model::OnnxModel;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn predict_does_not_allocate() {
    for name in ["mlp_4.onnx", "tree_4.onnx"] {
        let at_start = ALLOCATIONS.load(Ordering::SeqCst);
        let mut model = OnnxModel::load(fixture(name), &options()).unwrap();
        // The counter sees this binary's allocations: loading a model makes some.
        assert!(ALLOCATIONS.load(Ordering::SeqCst) > at_start);
        let mut sum = 0.0;
        for row in ROWS {
            sum += model.predict(&row).unwrap()[0];
        }
        let before = ALLOCATIONS.load(Ordering::SeqCst);
        for i in 0..10_000 {
            sum += model.predict(&ROWS[i % 3]).unwrap()[0];
        }
        let after = ALLOCATIONS.load(Ordering::SeqCst);
        assert!(sum.is_finite());
        assert_eq!(
            after - before,
            0,
            "{name}: {} allocations in 10,000 calls",
            after - before
        );
    }
}
