//! The ring's model check: a producer and a consumer thread over a 2-slot in-memory ring (and a
//! 4-slot one whose consumer hands slots back two at a time, and one whose slots the producer
//! packs with several messages).
//! Checked: no message lost (unless counted), duplicated, reordered or torn; every drop of
//! `push_or_count` / `with_slot_or_count` counted exactly in the overflow counter; each run of
//! drops reported by one `Pop::Gap { lost }` right before the next message, with `lost` the
//! exact number dropped; the consumer's overflow counter never behind the gaps it has seen.
//!
//! With `--cfg loom` the crate's atomics and slot cells are loom's, and loom explores every
//! interleaving of each scenario (and reports any unsynchronised slot access):
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p rt-ring --release --test loom
//! ```
//!
//! Without it (`cargo test`), the same scenarios run `STRESS_RUNS` times on real threads: a
//! stress test only.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[cfg(loom)]
use loom::thread;
#[cfg(not(loom))]
use std::thread;

use rt_ring::{Consumer, Pop, Producer, PushError, Ring};

#[cfg(not(loom))]
const STRESS_RUNS: usize = 2000;

/// Bounds the spin loops on real threads (loom bounds its own runs): a lost message fails the
/// test instead of hanging it.
#[cfg(not(loom))]
fn patience() -> impl FnMut() {
    let started = std::time::Instant::now();
    move || {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "no progress in 20 s"
        );
        thread::yield_now();
    }
}

#[cfg(loom)]
fn patience() -> impl FnMut() {
    thread::yield_now
}

#[cfg(loom)]
fn check(scenario: impl Fn() + Sync + Send + 'static) {
    loom::model(scenario);
}

#[cfg(not(loom))]
fn check(scenario: impl Fn() + Sync + Send + 'static) {
    for _ in 0..STRESS_RUNS {
        scenario();
    }
}

/// Message `i`: `8 + 8 * i` bytes, all `i + 1` (a torn one mixes values or lengths).
fn message(i: usize) -> Vec<u8> {
    vec![i as u8 + 1; 8 + 8 * i]
}

fn id(bytes: &[u8]) -> usize {
    let i = usize::from(bytes[0]) - 1;
    assert_eq!(bytes, message(i).as_slice(), "message {i} is torn");
    i
}

/// Checks what the consumer saw against what the producer wrote (`written[i]`: message `i`
/// went in) and the final overflow counter.
fn verify(written: &[bool], seen: &[Pop<usize>], overflow: u64) {
    let mut next = 0usize;
    let mut gaps = 0u64;
    let mut after_gap = false;
    for event in seen {
        match *event {
            Pop::Gap { lost } => {
                assert!(!after_gap, "two gaps in a row: {seen:?}");
                after_gap = true;
                let lost = lost as usize;
                assert!(
                    written[next..next + lost].iter().all(|w| !w),
                    "gap of {lost} at {next} covers a written message: {written:?} {seen:?}"
                );
                next += lost;
                gaps += lost as u64;
            }
            Pop::Message(i) => {
                assert_eq!(
                    i, next,
                    "message {i} out of turn (a loss without a gap, or a repeat): {seen:?}"
                );
                assert!(written[i], "message {i} read but not written: {written:?}");
                after_gap = false;
                next += 1;
            }
            Pop::Empty => unreachable!("not recorded"),
        }
    }
    assert!(!after_gap, "a gap not followed by its message: {seen:?}");
    // Drops after the last written message are counted but not reported yet.
    assert!(
        written[next..].iter().all(|w| !w),
        "a written message never read"
    );
    let trailing = (written.len() - next) as u64;
    let dropped = written.iter().filter(|w| !**w).count() as u64;
    assert_eq!(overflow, dropped, "the overflow counter");
    assert_eq!(gaps + trailing, dropped, "gaps + not yet reported = drops");
}

/// One `try_pop`, recorded unless Empty; checks the counter covers the gaps so far.
fn pop(rx: &mut Consumer, seen: &mut Vec<Pop<usize>>, gaps: &mut u64) -> bool {
    match rx.try_pop(id) {
        Pop::Empty => false,
        event => {
            if let Pop::Gap { lost } = event {
                *gaps += lost;
                assert!(rx.overflow() >= *gaps, "the counter is behind a gap");
            }
            seen.push(event);
            true
        }
    }
}

fn drain(rx: &mut Consumer, seen: &mut Vec<Pop<usize>>, gaps: &mut u64) {
    while pop(rx, seen, gaps) {}
}

/// `try_push` retried on Full: all messages arrive, in order, whole.
#[test]
fn try_push_delivers_every_message_once_in_order() {
    check(|| delivery_scenario(2, 1, 4));
}

/// The same with the consumer handing slots back two at a time (a 4-slot ring): the producer
/// never overwrites a slot read but not yet handed back, and never waits forever for one.
#[test]
fn batched_release_delivers_every_message_once_in_order() {
    check(|| delivery_scenario(4, 2, 5));
}

fn delivery_scenario(slots: u64, batch: u64, messages: usize) {
    let (mut tx, mut rx) = Ring::in_memory(slots, 64).unwrap();
    rx.set_release_batch(batch);
    let producer = thread::spawn(move || {
        let mut wait = patience();
        for i in 0..messages {
            loop {
                match tx.try_push(&message(i)) {
                    Ok(()) => break,
                    Err(PushError::Full) => wait(),
                    Err(e) => panic!("{e}"),
                }
            }
        }
        tx.overflow()
    });
    let mut seen = Vec::new();
    let mut gaps = 0;
    let mut wait = patience();
    while seen.len() < messages {
        if !pop(&mut rx, &mut seen, &mut gaps) {
            wait();
        }
    }
    let overflow = producer.join().unwrap();
    assert_eq!(rx.try_pop(id), Pop::Empty);
    verify(&vec![true; messages], &seen, overflow);
    assert_eq!(rx.overflow(), 0);
}

/// `try_push_many` retried from the first message not written: several messages share a slot
/// (2-slot ring of 128-byte slots: messages 0..4 in one slot, 4 and 5 in the next), the consumer
/// reads them one by one and hands a slot back only after its last message, so the producer
/// never overwrites a slot partly read.
#[test]
fn packed_slots_deliver_every_message_once_in_order() {
    check(|| packed_delivery_scenario(6));
}

fn packed_delivery_scenario(messages: usize) {
    let (mut tx, mut rx) = Ring::in_memory(2, 128).expect("a ring");
    rx.set_release_batch(1);
    let producer = thread::spawn(move || {
        let all: Vec<Vec<u8>> = (0..messages).map(message).collect();
        let mut wait = patience();
        let mut done = 0;
        while done < messages {
            let n = tx.try_push_many(&all[done..]);
            if n == 0 {
                wait();
            }
            done += n;
        }
        tx.overflow()
    });
    let mut seen = Vec::new();
    let mut gaps = 0;
    let mut wait = patience();
    while seen.len() < messages {
        if !pop(&mut rx, &mut seen, &mut gaps) {
            wait();
        }
    }
    let overflow = producer.join().expect("the producer");
    assert_eq!(rx.try_pop(id), Pop::Empty);
    verify(&vec![true; messages], &seen, overflow);
}

/// The non-blocking producer against a consumer reading concurrently: whatever the
/// interleaving, the drops are counted and reported exactly.
fn overflow_scenario(write: fn(&mut Producer, usize) -> bool, messages: usize, pops: usize) {
    batched_overflow_scenario(write, (2, 1), messages, pops);
}

/// As `overflow_scenario` on a ring of `slots` whose consumer hands slots back `batch` at a time.
fn batched_overflow_scenario(
    write: fn(&mut Producer, usize) -> bool,
    (slots, batch): (u64, u64),
    messages: usize,
    pops: usize,
) {
    let (mut tx, mut rx) = Ring::in_memory(slots, 64).unwrap();
    rx.set_release_batch(batch);
    let producer = thread::spawn(move || {
        let written: Vec<bool> = (0..messages).map(|i| write(&mut tx, i)).collect();
        (written, tx.overflow())
    });
    let mut seen = Vec::new();
    let mut gaps = 0;
    for _ in 0..pops {
        pop(&mut rx, &mut seen, &mut gaps);
    }
    let (written, overflow) = producer.join().unwrap();
    drain(&mut rx, &mut seen, &mut gaps);
    verify(&written, &seen, overflow);
    assert_eq!(rx.overflow(), overflow);
}

fn push_or_count(tx: &mut Producer, i: usize) -> bool {
    tx.push_or_count(&message(i))
}

/// Alternates the copying and the zero-copy writes.
fn mixed(tx: &mut Producer, i: usize) -> bool {
    if i % 2 == 0 {
        tx.push_or_count(&message(i))
    } else {
        tx.with_slot_or_count(|buf| {
            let m = message(i);
            buf[..m.len()].copy_from_slice(&m);
            m.len()
        })
    }
}

#[test]
fn push_or_count_counts_drops_and_reports_a_gap() {
    check(|| overflow_scenario(push_or_count, 5, 3));
}

#[test]
fn zero_copy_writes_count_drops_and_report_a_gap() {
    check(|| overflow_scenario(mixed, 5, 3));
}

#[test]
fn batched_release_counts_drops_and_reports_a_gap() {
    check(|| batched_overflow_scenario(push_or_count, (4, 2), 7, 4));
}

/// Two runs of drops separated by writes: two gaps, each with its own count.
#[test]
fn separate_drop_runs_give_separate_gaps() {
    check(|| {
        let (mut tx, mut rx) = Ring::in_memory(2, 64).unwrap();
        // Full before the consumer starts: message 2 is dropped for sure.
        let mut written = vec![
            tx.push_or_count(&message(0)),
            tx.push_or_count(&message(1)),
            tx.push_or_count(&message(2)),
        ];
        let producer = thread::spawn(move || {
            let more: Vec<bool> = (3..6).map(|i| tx.push_or_count(&message(i))).collect();
            (more, tx.overflow())
        });
        let mut seen = Vec::new();
        let mut gaps = 0;
        for _ in 0..3 {
            pop(&mut rx, &mut seen, &mut gaps);
        }
        let (more, overflow) = producer.join().unwrap();
        written.extend(more);
        drain(&mut rx, &mut seen, &mut gaps);
        assert_eq!(&written[..3], &[true, true, false]);
        verify(&written, &seen, overflow);
    });
}
