//! Ring hop latency and throughput (goal: hop p50 <= 150 ns, DESIGN.md section 5).
//!
//! Latency is measured as a ping-pong over two rings in /dev/shm: this side writes a message
//! into the ping ring, the echo side (busy-polling) copies it into the pong ring, and this side
//! polls for it; one sample is one round trip timed with `std::time::Instant`, and a hop (one
//! way) is half of it. Both sides are pinned, to CPUs 0 and 1 (a warning, and unpinned, if
//! that fails). Once between two threads, once between two processes (this binary runs itself
//! again as the echo child). Throughput: one producer streaming into one ring, one consumer,
//! with the consumer handing read slots back one at a time and then in its default batches,
//! then with the producer writing bursts packed several messages to a slot (`try_push_many`).
//! `rtrb` (an in-process SPSC queue) runs the same ping-pong and stream for comparison.
//! Messages are 32 bytes in 64-byte slots. Each throughput row also gives the time per 64-byte
//! line of queue memory the messages took: rtrb packs two 32-byte elements to a line where one
//! message a slot takes a whole line, so per message it moves half the lines. Warm-up round trips first, then the samples are
//! sorted for p50/p99/p99.9. For scale, the same round trip over two bare atomics (the floor:
//! what moving a cache line between those CPUs costs). Run with
//! `cargo bench -p rt-ring --bench hop`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rt_ring::{pin_current_thread, Consumer, Pop, Producer, PushError, Ring, RingError};

const SLOTS: u64 = 1024;
const SLOT_BYTES: u64 = 64;
const PAYLOAD: usize = 32;
const WARM_UP: usize = 200_000;
const ROUND_TRIPS: usize = 2_000_000;
/// The samples are taken in rounds, whose p50s are printed too: on a VM the host may move a
/// vCPU during a run, which shows up as rounds at another level.
const ROUNDS: usize = 5;
const STREAM: u64 = 20_000_000;
/// The message that ends an echo loop.
const STOP: u64 = u64::MAX;
const CHILD: &str = "--hop-child";
/// A side that sees no progress for this long gives up (the other side died).
const STALL: Duration = Duration::from_secs(30);

fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or("unknown CPU", str::trim)
        .to_owned();
    let cores = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    format!("{model}, {cores} logical CPUs, load average {load}")
}

fn pin(cpu: usize, who: &str) {
    if let Err(e) = pin_current_thread(cpu) {
        eprintln!("warning: {who} not pinned to CPU {cpu} ({e}); running unpinned");
    }
}

fn ring_path(name: &str) -> PathBuf {
    let dir = Path::new("/dev/shm");
    let dir = if dir.is_dir() {
        dir.to_owned()
    } else {
        std::env::temp_dir()
    };
    dir.join(format!("rt-ring-bench-{}-{name}", std::process::id()))
}

/// Removes the ring files at the end.
struct Files(Vec<PathBuf>);

impl Drop for Files {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn message(seq: u64) -> [u8; PAYLOAD] {
    let mut m = [0u8; PAYLOAD];
    m[..8].copy_from_slice(&seq.to_le_bytes());
    m
}

fn seq_of(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(bytes[..8].try_into().unwrap())
}

fn push(tx: &mut Producer, msg: &[u8]) {
    let mut spins = 0u64;
    let mut since = None;
    loop {
        match tx.try_push(msg) {
            Ok(()) => return,
            Err(PushError::Full) => {
                spins += 1;
                if spins % (1 << 20) == 0 {
                    let started = *since.get_or_insert_with(Instant::now);
                    assert!(started.elapsed() < STALL, "the ring stayed full");
                }
                std::hint::spin_loop();
            }
            Err(e) => panic!("{e}"),
        }
    }
}

/// Busy-polls for the next message; returns its sequence number.
fn pop(rx: &mut Consumer) -> u64 {
    let mut spins = 0u64;
    let mut since = None;
    loop {
        match rx.try_pop(seq_of) {
            Pop::Message(seq) => return seq,
            Pop::Gap { lost } => panic!("{lost} messages lost on a lossless run"),
            Pop::Empty => {
                spins += 1;
                if spins % (1 << 20) == 0 {
                    let started = *since.get_or_insert_with(Instant::now);
                    assert!(started.elapsed() < STALL, "no message for {STALL:?}");
                }
                std::hint::spin_loop();
            }
        }
    }
}

/// The echo side: every ping back as a pong, until STOP (echoed too).
fn echo(ping: &mut Consumer, pong: &mut Producer) {
    loop {
        let seq = pop(ping);
        push(pong, &message(seq));
        if seq == STOP {
            return;
        }
    }
}

/// Round trips from this side; returns the round-trip times in ns, in order.
fn ping_pong(ping: &mut Producer, pong: &mut Consumer) -> Vec<u64> {
    for seq in 0..WARM_UP as u64 {
        push(ping, &message(seq));
        assert_eq!(pop(pong), seq);
    }
    let mut rtt = Vec::with_capacity(ROUND_TRIPS);
    for seq in 0..ROUND_TRIPS as u64 {
        let m = message(seq);
        let started = Instant::now();
        push(ping, &m);
        let back = pop(pong);
        rtt.push(started.elapsed().as_nanos() as u64);
        debug_assert_eq!(back, seq);
        black_box(back);
    }
    push(ping, &message(STOP));
    assert_eq!(pop(pong), STOP);
    rtt
}

/// The same round trip over two bare atomics (one 128-byte block each way), on the same CPUs:
/// what the machine charges for moving a cache line there and back, without any ring.
fn floor() -> Vec<u64> {
    #[repr(align(128))]
    struct Block(AtomicU64);
    let flags = Arc::new([Block(AtomicU64::new(0)), Block(AtomicU64::new(0))]);
    let theirs = Arc::clone(&flags);
    let total = (WARM_UP + ROUND_TRIPS) as u64;
    let wait = |flag: &AtomicU64, value: u64| {
        let mut spins = 0u64;
        let mut since = None;
        while flag.load(Ordering::Acquire) != value {
            spins += 1;
            if spins % (1 << 20) == 0 {
                let started = *since.get_or_insert_with(Instant::now);
                assert!(started.elapsed() < STALL, "the other side stalled");
            }
            std::hint::spin_loop();
        }
    };
    let echoer = std::thread::spawn(move || {
        pin(1, "the echo thread");
        for n in 1..=total {
            wait(&theirs[0].0, n);
            theirs[1].0.store(n, Ordering::Release);
        }
    });
    pin(0, "the main thread");
    let mut rtt = Vec::with_capacity(ROUND_TRIPS);
    for n in 1..=total {
        let started = Instant::now();
        flags[0].0.store(n, Ordering::Release);
        wait(&flags[1].0, n);
        if n > WARM_UP as u64 {
            rtt.push(started.elapsed().as_nanos() as u64);
        }
    }
    echoer.join().unwrap();
    rtt
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn report(what: &str, mut rtt: Vec<u64>) {
    let rounds: Vec<String> = rtt
        .chunks(rtt.len().div_ceil(ROUNDS))
        .map(|round| {
            let mut round = round.to_vec();
            round.sort_unstable();
            (percentile(&round, 0.5) / 2).to_string()
        })
        .collect();
    rtt.sort_unstable();
    let p = |q| percentile(&rtt, q);
    println!(
        "{what}: one-way hop p50 {} ns, p99 {} ns, p99.9 {} ns (round trip p50 {} ns, p99 {} ns, p99.9 {} ns, max {} ns; {} samples; hop p50 by round: {})",
        p(0.5) / 2,
        p(0.99) / 2,
        p(0.999) / 2,
        p(0.5),
        p(0.99),
        p(0.999),
        rtt[rtt.len() - 1],
        rtt.len(),
        rounds.join(" ")
    );
}

/// Two rings, both ends in this process.
fn rings(files: &mut Files) -> (Producer, Consumer, Producer, Consumer) {
    let ping_path = ring_path("ping");
    let pong_path = ring_path("pong");
    files.0.extend([ping_path.clone(), pong_path.clone()]);
    let ping_tx = Ring::create(&ping_path, SLOTS, SLOT_BYTES).unwrap();
    let ping_rx = Ring::open(&ping_path).unwrap();
    let pong_tx = Ring::create(&pong_path, SLOTS, SLOT_BYTES).unwrap();
    let pong_rx = Ring::open(&pong_path).unwrap();
    (ping_tx, ping_rx, pong_tx, pong_rx)
}

fn between_threads() {
    let mut files = Files(Vec::new());
    let (mut ping_tx, mut ping_rx, mut pong_tx, mut pong_rx) = rings(&mut files);
    let echoer = std::thread::spawn(move || {
        pin(1, "the echo thread");
        echo(&mut ping_rx, &mut pong_tx);
    });
    pin(0, "the main thread");
    let rtt = ping_pong(&mut ping_tx, &mut pong_rx);
    echoer.join().unwrap();
    report("ring, two threads (CPUs 0, 1)", rtt);
}

fn between_processes() {
    let ping_path = ring_path("ping-2p");
    let pong_path = ring_path("pong-2p");
    let _files = Files(vec![ping_path.clone(), pong_path.clone()]);
    let mut ping_tx = Ring::create(&ping_path, SLOTS, SLOT_BYTES).unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            CHILD,
            ping_path.to_str().unwrap(),
            pong_path.to_str().unwrap(),
        ])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let mut pong_rx = loop {
        match Ring::open(&pong_path) {
            Ok(rx) => break rx,
            Err(RingError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                assert!(child.try_wait().unwrap().is_none(), "the echo child died");
                assert!(started.elapsed() < STALL, "the echo child made no ring");
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => panic!("{e}"),
        }
    };
    pin(0, "the main process");
    let rtt = ping_pong(&mut ping_tx, &mut pong_rx);
    assert!(child.wait().unwrap().success());
    report("ring, two processes (CPUs 0, 1)", rtt);
}

/// The echo child: consumer of the ping ring, producer of the pong ring.
fn child(ping_path: &Path, pong_path: &Path) {
    pin(1, "the echo process");
    let mut ping = Ring::open(ping_path).unwrap();
    let mut pong = Ring::create(pong_path, SLOTS, SLOT_BYTES).unwrap();
    echo(&mut ping, &mut pong);
}

/// Streams STREAM messages through one ring; `batch` is the consumer's release batch (`None`:
/// the default).
fn throughput(batch: Option<u64>) {
    let path = ring_path("stream");
    let _files = Files(vec![path.clone()]);
    let mut tx = Ring::create(&path, SLOTS, SLOT_BYTES).unwrap();
    let mut rx = Ring::open(&path).unwrap();
    if let Some(batch) = batch {
        rx.set_release_batch(batch);
    }
    let release = rx.release_batch();
    let producer = std::thread::spawn(move || {
        pin(1, "the producer thread");
        for seq in 0..STREAM {
            push(&mut tx, &message(seq));
        }
    });
    pin(0, "the consumer thread");
    let started = Instant::now();
    for seq in 0..STREAM {
        let got = pop(&mut rx);
        debug_assert_eq!(got, seq);
        black_box(got);
    }
    let elapsed = started.elapsed();
    producer.join().unwrap();
    print_throughput(
        &format!("ring, read slots handed back {release} at a time"),
        elapsed,
        SLOT_BYTES as f64,
    );
}

/// Streams STREAM messages through one ring whose producer writes them in bursts of `burst`
/// with `try_push_many`, packing as many as fit into each `slot_bytes` slot (the ring has the
/// same bytes of slots as the others: SLOTS * SLOT_BYTES); the consumer pops them one by one.
fn packed_throughput(slot_bytes: u64, burst: usize) {
    let path = ring_path("packed");
    let _files = Files(vec![path.clone()]);
    let slots = SLOTS * SLOT_BYTES / slot_bytes;
    let mut tx = Ring::create(&path, slots, slot_bytes).expect("create");
    let mut rx = Ring::open(&path).expect("open");
    let release = rx.release_batch();
    let per_slot = tx.capacity() / (PAYLOAD + rt_ring::PACKED_RECORD_BYTES);
    let producer = std::thread::spawn(move || {
        pin(1, "the producer thread");
        let mut msgs = vec![[0u8; PAYLOAD]; burst];
        let mut seq = 0;
        while seq < STREAM {
            let n = burst.min((STREAM - seq) as usize);
            for (i, m) in msgs[..n].iter_mut().enumerate() {
                *m = message(seq + i as u64);
            }
            let (mut done, mut spins, mut since) = (0, 0u64, None);
            while done < n {
                let wrote = tx.try_push_many(&msgs[done..n]);
                if wrote == 0 {
                    spins += 1;
                    if spins % (1 << 20) == 0 {
                        let started = *since.get_or_insert_with(Instant::now);
                        assert!(started.elapsed() < STALL, "the consumer stopped reading");
                    }
                    std::hint::spin_loop();
                }
                done += wrote;
            }
            seq += n as u64;
        }
    });
    pin(0, "the consumer thread");
    let started = Instant::now();
    for seq in 0..STREAM {
        let got = pop(&mut rx);
        debug_assert_eq!(got, seq);
        black_box(got);
    }
    let elapsed = started.elapsed();
    producer.join().expect("the producer");
    print_throughput(
        &format!(
            "ring, bursts of {burst} packed {per_slot} to a slot ({slots} slots of {slot_bytes} bytes), read slots handed back {release} at a time"
        ),
        elapsed,
        slot_bytes as f64 / per_slot as f64,
    );
}

/// `bytes_per_message`: the queue memory one message takes (a whole slot when one message
/// fills it, a share of the slot when several are packed, the element size in rtrb). Messages
/// move between the cores a cache line at a time, so the time per 64-byte line of queue compares
/// the queues' mechanics with the message layout taken out: rtrb's 32-byte elements put two
/// messages in a line, one message a slot puts one.
fn print_throughput(what: &str, elapsed: Duration, bytes_per_message: f64) {
    let ns_per_message = elapsed.as_nanos() as f64 / STREAM as f64;
    println!(
        "throughput, one producer thread to one consumer thread, {what}: {:.1}M msg/s ({ns_per_message:.1} ns/msg, {} messages of {PAYLOAD} bytes; {:.1} ns per 64-byte line of queue)",
        STREAM as f64 / elapsed.as_secs_f64() / 1e6,
        STREAM,
        ns_per_message * 64.0 / bytes_per_message,
    );
}

/// The same stream through `rtrb` (a well-kept SPSC queue in process memory, not a shared
/// file) with the same capacity and message size, for comparison.
fn rtrb_throughput() {
    let (mut tx, mut rx) = rtrb::RingBuffer::<[u8; PAYLOAD]>::new(SLOTS as usize);
    let producer = std::thread::spawn(move || {
        pin(1, "the producer thread");
        for seq in 0..STREAM {
            let mut m = message(seq);
            loop {
                match tx.push(m) {
                    Ok(()) => break,
                    Err(rtrb::PushError::Full(back)) => {
                        m = back;
                        std::hint::spin_loop();
                    }
                }
            }
        }
    });
    pin(0, "the consumer thread");
    let started = Instant::now();
    for seq in 0..STREAM {
        let got = loop {
            if let Ok(m) = rx.pop() {
                break seq_of(&m);
            }
            std::hint::spin_loop();
        };
        debug_assert_eq!(got, seq);
        black_box(got);
    }
    let elapsed = started.elapsed();
    producer.join().unwrap();
    print_throughput(
        "rtrb 0.3 (in-process, for comparison)",
        elapsed,
        std::mem::size_of::<[u8; PAYLOAD]>() as f64,
    );
}

/// The ping-pong of `ping_pong` over two `rtrb` queues between two threads.
fn rtrb_between_threads() {
    let (mut ping_tx, mut ping_rx) = rtrb::RingBuffer::<[u8; PAYLOAD]>::new(SLOTS as usize);
    let (mut pong_tx, mut pong_rx) = rtrb::RingBuffer::<[u8; PAYLOAD]>::new(SLOTS as usize);
    let total = (WARM_UP + ROUND_TRIPS) as u64;
    let spin_pop = |rx: &mut rtrb::Consumer<[u8; PAYLOAD]>| loop {
        if let Ok(m) = rx.pop() {
            return seq_of(&m);
        }
        std::hint::spin_loop();
    };
    let echoer = std::thread::spawn(move || {
        pin(1, "the echo thread");
        for _ in 0..total {
            let seq = spin_pop(&mut ping_rx);
            // Never full: one message in flight.
            pong_tx.push(message(seq)).unwrap();
        }
    });
    pin(0, "the main thread");
    let mut rtt = Vec::with_capacity(ROUND_TRIPS);
    for seq in 0..total {
        let started = Instant::now();
        ping_tx.push(message(seq)).unwrap();
        let back = spin_pop(&mut pong_rx);
        if seq >= WARM_UP as u64 {
            rtt.push(started.elapsed().as_nanos() as u64);
        }
        assert_eq!(back, seq);
    }
    echoer.join().unwrap();
    report("rtrb 0.3, two threads (CPUs 0, 1), for comparison", rtt);
}

/// What one `Instant::now()` costs (each round-trip sample includes one).
fn clock_cost() -> f64 {
    const N: u32 = 1_000_000;
    let started = Instant::now();
    for _ in 0..N {
        black_box(Instant::now());
    }
    started.elapsed().as_nanos() as f64 / f64::from(N)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(CHILD) {
        child(Path::new(&args[2]), Path::new(&args[3]));
        return;
    }
    println!("machine: {}", machine());
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus < 2 {
        println!("hop: needs 2 CPUs for two busy-polling sides, found {cpus}: skipped");
        return;
    }
    println!(
        "rings: {SLOTS} slots of {SLOT_BYTES} bytes in /dev/shm, {PAYLOAD}-byte messages; Instant::now() ~{:.0} ns, once per round trip",
        clock_cost()
    );
    // HOP_ONLY=latency or HOP_ONLY=throughput runs one half (for before/after runs).
    let only = std::env::var("HOP_ONLY").unwrap_or_default();
    if only != "throughput" {
        report("floor, two bare atomics, two threads (CPUs 0, 1)", floor());
        between_threads();
        between_processes();
        rtrb_between_threads();
    }
    if only != "latency" {
        throughput(Some(1));
        throughput(None);
        packed_throughput(256, 16);
        packed_throughput(512, 32);
        rtrb_throughput();
    }
}
