//! Two processes share one ring file under /dev/shm. This test binary (harness = false) runs
//! itself again as the child, the producer: it creates the ring and writes 1M messages, each
//! with its sequence number and a filler derived from it; the parent opens the ring and checks
//! every message (order, length, content, no duplicate).
//!
//! - `lossless_across_processes`: the child retries a full ring (`try_push`): all 1M arrive, no
//!   gap.
//! - `overflow_across_processes`: the child never waits (`push_or_count`, `with_slot_or_count`)
//!   while the parent reads slowly; every drop is counted, and the gaps the parent sees add up
//!   to the overflow counter and account for every missing sequence number.
//!
//! Each run is bounded (`DEADLINE`, the child killed past it); the ring file is removed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rt_ring::{Consumer, Pop, Producer, PushError, Ring, RingError};

const MESSAGES: u64 = 1_000_000;
const SLOTS: u64 = 256;
const SLOT_BYTES: u64 = 64;
const DEADLINE: Duration = Duration::from_secs(60);
/// The last message of the overflow run: the child's totals, written without loss.
const END: u64 = u64::MAX;
const CHILD: &str = "--ring-child";

/// The parent's side of one test: reads the ring the child writes.
type Check = fn(&mut Consumer, &mut ChildGuard);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(CHILD) {
        let mode = args[2].as_str();
        let path = PathBuf::from(&args[3]);
        std::process::exit(match child(mode, &path) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("two_process child ({mode}): {e}");
                1
            }
        });
    }
    let tests: [(&str, Check); 2] = [
        ("lossless_across_processes", lossless),
        ("overflow_across_processes", overflow),
    ];
    println!("running {} tests", tests.len());
    for (name, test) in tests {
        let started = Instant::now();
        let path = RingFile::new(name);
        let mode = name.split('_').next().unwrap();
        let mut child = ChildGuard(
            Command::new(std::env::current_exe().unwrap())
                .args([CHILD, mode, path.0.to_str().unwrap()])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let mut rx = open_when_created(&path.0, &mut child);
        test(&mut rx, &mut child);
        println!("test {name} ... ok ({:.2?})", started.elapsed());
    }
    println!("test result: ok. {} passed", tests.len());
}

/// The ring path, removed at the end (also on a panic).
struct RingFile(PathBuf);

impl RingFile {
    fn new(name: &str) -> RingFile {
        let dir = Path::new("/dev/shm");
        let dir = if dir.is_dir() {
            dir.to_owned()
        } else {
            std::env::temp_dir()
        };
        RingFile(dir.join(format!("rt-ring-2p-{}-{name}", std::process::id())))
    }
}

impl Drop for RingFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Kills the child if the test ends (or panics) before it exits.
struct ChildGuard(Child);

impl ChildGuard {
    /// Waits for a clean exit within the deadline; returns its stdout.
    fn finish(&mut self, deadline: Instant) -> String {
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                assert!(status.success(), "the child failed: {status}");
                let mut out = String::new();
                std::io::Read::read_to_string(&mut self.0.stdout.take().unwrap(), &mut out)
                    .unwrap();
                return out;
            }
            assert!(Instant::now() < deadline, "the child did not exit in time");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn open_when_created(path: &Path, child: &mut ChildGuard) -> Consumer {
    let deadline = Instant::now() + DEADLINE;
    loop {
        match Ring::open(path) {
            Ok(rx) => return rx,
            Err(RingError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                assert!(
                    child.0.try_wait().unwrap().is_none(),
                    "the child exited before creating the ring"
                );
                assert!(
                    Instant::now() < deadline,
                    "the ring was not created in time"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => panic!("{e}"),
        }
    }
}

/// Message `seq`: its number, then `seq % 41` filler bytes derived from it.
fn encode(seq: u64, buf: &mut [u8]) -> usize {
    buf[..8].copy_from_slice(&seq.to_le_bytes());
    let filler = (seq % 41) as usize;
    for (i, b) in buf[8..8 + filler].iter_mut().enumerate() {
        *b = (seq as u8).wrapping_mul(31).wrapping_add(i as u8);
    }
    8 + filler
}

/// The sequence number of a well-formed message; panics on a torn or malformed one.
fn decode(bytes: &[u8]) -> u64 {
    let seq = u64::from_le_bytes(bytes[..8].try_into().unwrap());
    let mut expected = [0u8; 64];
    let len = encode(seq, &mut expected);
    assert_eq!(bytes, &expected[..len], "message {seq} is malformed");
    seq
}

fn child(mode: &str, path: &Path) -> Result<(), String> {
    let mut tx = Ring::create(path, SLOTS, SLOT_BYTES).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + DEADLINE;
    // Start once the parent reads: otherwise the overflow run would drop nearly everything.
    while tx.consumer_pid().is_none() {
        if Instant::now() > deadline {
            return Err("no consumer attached in time".into());
        }
        std::thread::yield_now();
    }
    let mut buf = [0u8; 64];
    match mode {
        "lossless" => {
            for seq in 0..MESSAGES {
                let len = encode(seq, &mut buf);
                push_retrying(&mut tx, &buf[..len], deadline)?;
            }
        }
        "overflow" => {
            let mut dropped = 0u64;
            for seq in 0..MESSAGES {
                let written = if seq % 2 == 0 {
                    let len = encode(seq, &mut buf);
                    tx.push_or_count(&buf[..len])
                } else {
                    tx.with_slot_or_count(|slot| encode(seq, slot))
                };
                dropped += u64::from(!written);
            }
            if dropped != tx.overflow() {
                return Err(format!(
                    "{dropped} dropped, overflow says {}",
                    tx.overflow()
                ));
            }
            buf[..8].copy_from_slice(&END.to_le_bytes());
            buf[8..16].copy_from_slice(&dropped.to_le_bytes());
            push_retrying(&mut tx, &buf[..16], deadline)?;
            println!("dropped {dropped}");
        }
        _ => return Err(format!("unknown mode {mode}")),
    }
    Ok(())
}

fn push_retrying(tx: &mut Producer, msg: &[u8], deadline: Instant) -> Result<(), String> {
    let mut tries = 0u32;
    loop {
        match tx.try_push(msg) {
            Ok(()) => return Ok(()),
            Err(PushError::Full) => {
                tries += 1;
                if tries % 1024 == 0 {
                    if Instant::now() > deadline {
                        return Err("the ring stayed full past the deadline".into());
                    }
                    std::thread::yield_now();
                }
                std::hint::spin_loop();
            }
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Polls until something other than Empty, within the deadline.
fn next(rx: &mut Consumer, deadline: Instant) -> Pop<Vec<u8>> {
    let mut polls = 0u32;
    loop {
        match rx.try_pop(<[u8]>::to_vec) {
            Pop::Empty => {
                polls += 1;
                if polls % 1024 == 0 {
                    assert!(Instant::now() < deadline, "no message in time");
                    std::thread::yield_now();
                }
                std::hint::spin_loop();
            }
            other => return other,
        }
    }
}

fn lossless(rx: &mut Consumer, child: &mut ChildGuard) {
    let deadline = Instant::now() + DEADLINE;
    for expected in 0..MESSAGES {
        match next(rx, deadline) {
            Pop::Message(bytes) => assert_eq!(decode(&bytes), expected),
            other => panic!("at {expected}: {other:?}"),
        }
    }
    child.finish(deadline);
    assert_eq!(
        rx.try_pop(|_| ()),
        Pop::Empty,
        "nothing after the last message"
    );
    assert_eq!(rx.overflow(), 0);
}

fn overflow(rx: &mut Consumer, child: &mut ChildGuard) {
    let deadline = Instant::now() + DEADLINE;
    let (mut expected, mut received, mut lost_in_gaps) = (0u64, 0u64, 0u64);
    let mut after_gap = false;
    loop {
        match next(rx, deadline) {
            Pop::Gap { lost } => {
                assert!(!after_gap, "two gaps in a row");
                assert!(lost > 0);
                after_gap = true;
                expected += lost;
                lost_in_gaps += lost;
                assert!(rx.overflow() >= lost_in_gaps, "a gap beyond the counter");
            }
            Pop::Message(bytes) => {
                after_gap = false;
                let seq = u64::from_le_bytes(bytes[..8].try_into().unwrap());
                if seq == END {
                    let dropped = u64::from_le_bytes(bytes[8..16].try_into().unwrap());
                    assert_eq!(expected, MESSAGES, "every number received or lost");
                    assert_eq!(lost_in_gaps, dropped, "gaps = the child's drops");
                    assert_eq!(rx.overflow(), dropped, "the header's counter");
                    break;
                }
                assert_eq!(decode(&bytes), expected, "in order, after the gaps");
                expected += 1;
                received += 1;
                // A slow reader: the ring overflows now and then.
                if seq % 4096 == 0 {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
            Pop::Empty => unreachable!("next() skips Empty"),
        }
    }
    let out = child.finish(deadline);
    assert_eq!(out.trim(), format!("dropped {lost_in_gaps}"));
    assert!(lost_in_gaps > 0, "the run overflowed");
    assert!(received > 0);
    println!("  received {received}, lost {lost_in_gaps} in gaps, all accounted for");
}
