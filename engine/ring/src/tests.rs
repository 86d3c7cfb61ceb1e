//! Unit tests: the message API over in-memory rings, the files (create, open, header checks,
//! attach), and a property test against a VecDeque model.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;

use super::*;

/// A ring path under /dev/shm (or the temp dir), removed when dropped.
struct TempPath(PathBuf);

impl TempPath {
    fn new(tag: &str) -> TempPath {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = Path::new("/dev/shm");
        let dir = if dir.is_dir() {
            dir.to_owned()
        } else {
            std::env::temp_dir()
        };
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        TempPath(dir.join(format!("rt-ring-test-{}-{n}-{tag}", std::process::id())))
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn pop_vec(c: &mut Consumer) -> Pop<Vec<u8>> {
    c.try_pop(<[u8]>::to_vec)
}

fn msg(bytes: &[u8]) -> Pop<Vec<u8>> {
    Pop::Message(bytes.to_vec())
}

#[test]
fn round_trip_in_order_every_length() {
    let (mut tx, mut rx) = Ring::in_memory(8, 128).unwrap();
    assert_eq!(tx.capacity(), 112);
    assert_eq!(rx.capacity(), 112);
    assert_eq!((tx.slots(), rx.slots()), (8, 8));
    for len in 0..=tx.capacity() {
        let m: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
        tx.try_push(&m).unwrap();
        assert_eq!(rx.backlog(), 1);
        assert_eq!(pop_vec(&mut rx), Pop::Message(m));
    }
    assert_eq!(pop_vec(&mut rx), Pop::Empty);
    assert_eq!(rx.backlog(), 0);
}

#[test]
fn full_ring_refuses_without_counting() {
    let (mut tx, mut rx) = Ring::in_memory(4, 64).unwrap();
    for i in 0..4u8 {
        tx.try_push(&[i]).unwrap();
    }
    assert_eq!(tx.try_push(&[9]), Err(PushError::Full));
    assert_eq!(
        tx.with_slot(|_| unreachable!("not called on a full ring")),
        Err(Full)
    );
    assert_eq!((tx.overflow(), rx.overflow()), (0, 0));
    assert_eq!(rx.backlog(), 4);
    assert_eq!(pop_vec(&mut rx), msg(&[0]));
    tx.try_push(&[4]).unwrap();
    for i in 1..5u8 {
        assert_eq!(pop_vec(&mut rx), msg(&[i]));
    }
    assert_eq!(pop_vec(&mut rx), Pop::Empty);
}

#[test]
fn too_long_is_refused() {
    let (mut tx, mut rx) = Ring::in_memory(2, 64).unwrap();
    let long = [1u8; 49];
    assert_eq!(
        tx.try_push(&long),
        Err(PushError::TooLong {
            len: 49,
            capacity: 48
        })
    );
    assert_eq!(
        PushError::TooLong {
            len: 49,
            capacity: 48
        }
        .to_string(),
        "message of 49 bytes is longer than a slot's 48-byte payload"
    );
    tx.try_push(&long[..48]).unwrap();
    // push_or_count drops it, and counts it: the consumer must resync either way.
    assert!(!tx.push_or_count(&long));
    assert_eq!(tx.overflow(), 1);
    assert!(tx.push_or_count(b"next"));
    assert_eq!(pop_vec(&mut rx), msg(&long[..48]));
    assert_eq!(rx.try_pop(|_| ()), Pop::Gap { lost: 1 });
    assert_eq!(pop_vec(&mut rx), msg(b"next"));
}

#[test]
fn overflow_is_counted_and_reported_as_a_gap_before_the_next_message() {
    let (mut tx, mut rx) = Ring::in_memory(2, 64).unwrap();
    assert!(tx.push_or_count(b"a"));
    assert!(tx.push_or_count(b"b"));
    for _ in 0..3 {
        assert!(!tx.push_or_count(b"lost"));
    }
    assert_eq!((tx.overflow(), rx.overflow()), (3, 3));
    assert_eq!(pop_vec(&mut rx), msg(b"a"));
    assert_eq!(pop_vec(&mut rx), msg(b"b"));
    // The drops are pending until the next message written.
    assert_eq!(pop_vec(&mut rx), Pop::Empty);
    assert!(tx.push_or_count(b"c"));
    assert!(tx.push_or_count(b"d"));
    let mut called = false;
    assert_eq!(rx.try_pop(|_| called = true), Pop::Gap { lost: 3 });
    assert!(!called, "a gap does not call the closure");
    assert_eq!(pop_vec(&mut rx), msg(b"c"));
    assert_eq!(pop_vec(&mut rx), msg(b"d"), "one gap, then plain messages");
    assert_eq!(pop_vec(&mut rx), Pop::Empty);
    assert_eq!(rx.overflow(), 3);
}

#[test]
fn with_slot_writes_in_place() {
    let (mut tx, mut rx) = Ring::in_memory(2, 64).unwrap();
    tx.with_slot(|buf| {
        assert_eq!(buf.len(), 48);
        buf[..3].copy_from_slice(b"abc");
        3
    })
    .unwrap();
    assert!(tx.with_slot_or_count(|buf| {
        buf[0] = b'z';
        1
    }));
    assert!(!tx.with_slot_or_count(|_| unreachable!("not called on a full ring")));
    assert_eq!(tx.overflow(), 1);
    assert_eq!(pop_vec(&mut rx), msg(b"abc"));
    assert_eq!(pop_vec(&mut rx), msg(b"z"));
    tx.with_slot(|buf| buf.len()).unwrap();
    assert_eq!(rx.try_pop(|_| ()), Pop::Gap { lost: 1 });
    assert_eq!(rx.try_pop(<[u8]>::len), Pop::Message(48));
}

#[test]
fn with_slot_overlong_length_panics_and_publishes_nothing() {
    let (mut tx, mut rx) = Ring::in_memory(2, 64).unwrap();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = tx.with_slot(|buf| buf.len() + 1);
    }));
    let err = result.unwrap_err();
    let text = err.downcast_ref::<String>().unwrap();
    assert!(
        text.contains("returned 49, more than the slot's 48"),
        "{text}"
    );
    assert_eq!(pop_vec(&mut rx), Pop::Empty);
    tx.try_push(b"ok").unwrap();
    assert_eq!(pop_vec(&mut rx), msg(b"ok"));
}

#[test]
fn packed_messages_share_slots_and_pop_one_by_one() {
    let (mut tx, mut rx) = Ring::in_memory(4, 64).expect("a ring");
    // 48 bytes of payload: eight 4-byte messages (6 bytes each with their length) a slot.
    let msgs: Vec<[u8; 4]> = (0..40u32).map(u32::to_le_bytes).collect();
    assert_eq!(
        tx.try_push_many(&msgs),
        32,
        "four slots of eight, then full"
    );
    assert_eq!(rx.backlog(), 4);
    for m in &msgs[..12] {
        assert_eq!(pop_vec(&mut rx), msg(m));
    }
    // The first slot is handed back after its eighth message, the second is half read.
    assert_eq!(rx.backlog(), 3);
    rx.set_release_batch(1);
    assert_eq!(tx.try_push_many(&msgs[32..]), 8);
    for m in &msgs[12..] {
        assert_eq!(pop_vec(&mut rx), msg(m));
    }
    assert_eq!(pop_vec(&mut rx), Pop::Empty);
    // A message too long to pack with another goes alone; one too long for a slot stops it.
    let long = [7u8; 47];
    let over = [8u8; 49];
    let batch: [&[u8]; 4] = [b"ab", &long, b"cd", &over];
    assert_eq!(tx.try_push_many(&batch), 3);
    assert_eq!(
        tx.try_push(&over),
        Err(PushError::TooLong {
            len: 49,
            capacity: 48
        })
    );
    for m in &batch[..3] {
        assert_eq!(pop_vec(&mut rx), msg(m));
    }
}

#[test]
fn a_gap_comes_before_a_packed_slot_not_inside_it() {
    let (mut tx, mut rx) = Ring::in_memory(2, 64).expect("a ring");
    assert!(tx.push_or_count(b"one"));
    assert!(tx.push_or_count(b"two"));
    assert!(!tx.push_or_count(b"lost"));
    assert_eq!(pop_vec(&mut rx), msg(b"one"));
    assert_eq!(pop_vec(&mut rx), msg(b"two"));
    let batch: [&[u8]; 3] = [b"a", b"b", b"c"];
    assert_eq!(tx.try_push_many(&batch), 3);
    assert_eq!(pop_vec(&mut rx), Pop::Gap { lost: 1 });
    assert_eq!(pop_vec(&mut rx), msg(b"a"));
    assert_eq!(pop_vec(&mut rx), msg(b"b"));
    assert_eq!(pop_vec(&mut rx), msg(b"c"));
    assert_eq!(pop_vec(&mut rx), Pop::Empty);
}

#[test]
fn many_laps_of_a_small_ring() {
    let (mut tx, mut rx) = Ring::in_memory(2, 64).unwrap();
    for i in 0..10_000u64 {
        tx.try_push(&i.to_le_bytes()).unwrap();
        if i % 2 == 1 {
            for j in [i - 1, i] {
                assert_eq!(pop_vec(&mut rx), msg(&j.to_le_bytes()));
            }
        }
    }
    assert_eq!(pop_vec(&mut rx), Pop::Empty);
}

#[test]
fn sizes_are_checked() {
    for (slots, slot_bytes, field) in [
        (0, 64, "slots"),
        (1, 64, "slots"),
        (3, 64, "slots"),
        (1 << 25, 64, "slots"),
        (4, 0, "slot_bytes"),
        (4, 32, "slot_bytes"),
        (4, 100, "slot_bytes"),
        (4, 131_072, "slot_bytes"),
    ] {
        let err = Ring::in_memory(slots, slot_bytes).unwrap_err().to_string();
        assert!(err.starts_with(&format!("ring {field} = ")), "{err}");
        let path = TempPath::new("sizes");
        let err = Ring::create(&path.0, slots, slot_bytes)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(&format!("ring {field} = ")), "{err}");
        assert!(!path.0.exists());
    }
    assert_eq!(
        Ring::in_memory(3, 64).unwrap_err().to_string(),
        "ring slots = 3: must be a power of two in 2..=16777216"
    );
    assert!(Ring::in_memory(1 << 24, 64).is_ok());
    assert!(Ring::in_memory(2, 65536).is_ok());
}

#[test]
fn file_round_trip_and_layout() {
    let path = TempPath::new("layout");
    let mut tx = Ring::create(&path.0, 16, 256).unwrap();
    assert_eq!(tx.path(), Some(path.0.as_path()));
    let mut rx = Ring::open(&path.0).unwrap();
    assert_eq!((rx.slots(), rx.capacity()), (16, 240));
    for i in 0..100u32 {
        tx.try_push(&i.to_le_bytes()).unwrap();
        assert_eq!(pop_vec(&mut rx), msg(&i.to_le_bytes()));
    }
    let bytes = std::fs::read(&path.0).unwrap();
    assert_eq!(bytes.len(), HEADER_BYTES + 16 * 256);
    let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
    let half = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    assert_eq!(&bytes[..8], b"py_rtRNG");
    assert_eq!(half(8), VERSION);
    assert_eq!(half(12), HEADER_BYTES as u32);
    assert_eq!((word(16), word(24)), (16, 256));
    assert_eq!((word(128), word(136)), (100, 0), "tail, overflow");
    assert_eq!(word(256), 100, "head");
    assert_eq!(half(264), std::process::id(), "attached consumer");
    // Message 99 sits in slot 99 % 16 = 3: stamp 100, metadata length 4, then the payload.
    let slot = HEADER_BYTES + 3 * 256;
    assert_eq!((word(slot), word(slot + 8)), (100, 4));
    assert_eq!(&bytes[slot + 16..slot + 20], &99u32.to_le_bytes());
    drop(rx);
    assert_eq!(half_at(&path.0, 264), 0, "detached on drop");
}

fn half_at(path: &Path, at: u64) -> u32 {
    let mut b = [0; 4];
    std::fs::File::open(path)
        .unwrap()
        .read_exact_at(&mut b, at)
        .unwrap();
    u32::from_le_bytes(b)
}

fn write_at(path: &Path, at: u64, bytes: &[u8]) {
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.write_all_at(bytes, at).unwrap();
}

#[test]
fn open_names_the_bad_header_field() {
    let cases: [(&str, u64, &[u8], &str); 7] = [
        ("magic", 0, b"notaring", "header field `magic` is 0x676e6972"),
        ("version", 8, &1u32.to_le_bytes(), "header field `version` is 1, expected 2"),
        ("header_bytes", 12, &64u32.to_le_bytes(), "header field `header_bytes` is 64, expected 4096"),
        ("slots", 16, &3u64.to_le_bytes(), "header field `slots` is 3, expected must be a power of two"),
        ("slots", 16, &64u64.to_le_bytes(), "header field `file length` is 5120, expected at least 8192 (64 slots of 64 bytes"),
        ("slot_bytes", 24, &96u64.to_le_bytes(), "header field `slot_bytes` is 96"),
        ("magic", 0, &[0; 8], "header field `magic` is 0x0000000000000000, expected 0x474e5274725f7970 (a py_rt ring, fully created)"),
    ];
    for (what, at, bytes, expected) in cases {
        let path = TempPath::new("bad");
        drop(Ring::create(&path.0, 16, 64).unwrap());
        write_at(&path.0, at, bytes);
        let err = Ring::open(&path.0).unwrap_err().to_string();
        assert!(err.contains(expected), "{what}: {err}");
        assert!(
            err.starts_with(&format!("ring {}: ", path.0.display())),
            "{err}"
        );
    }

    let short = TempPath::new("short");
    std::fs::write(&short.0, [0; 100]).unwrap();
    let err = Ring::open(&short.0).unwrap_err().to_string();
    assert!(
        err.ends_with("header field `file length` is 100, expected at least the 4096-byte header"),
        "{err}"
    );
    let missing = TempPath::new("missing");
    let err = Ring::open(&missing.0).unwrap_err();
    assert!(matches!(err, RingError::Io { op: "open", .. }), "{err}");
}

#[test]
fn one_consumer_at_a_time() {
    let path = TempPath::new("attach");
    let mut tx = Ring::create(&path.0, 4, 64).unwrap();
    let mut first = Ring::open(&path.0).unwrap();
    let err = Ring::open(&path.0).unwrap_err();
    assert!(
        matches!(err, RingError::Attached { pid, .. } if pid == std::process::id()),
        "{err}"
    );
    assert!(err.to_string().ends_with(&format!(
        "a consumer is already attached (pid {})",
        std::process::id()
    )));
    for m in [b"1", b"2", b"3"] {
        tx.try_push(m).unwrap();
    }
    assert_eq!(pop_vec(&mut first), msg(b"1"));
    drop(first);
    // The next consumer resumes where the first stopped.
    let mut second = Ring::open(&path.0).unwrap();
    assert_eq!(pop_vec(&mut second), msg(b"2"));
    assert_eq!(pop_vec(&mut second), msg(b"3"));
    assert_eq!(second.backlog(), 0);
}

#[test]
fn read_slots_are_handed_back_in_batches() {
    let (mut tx, mut rx) = Ring::in_memory(64, 64).unwrap();
    assert_eq!(rx.release_batch(), 4, "64 slots / 16");
    for i in 0..64u8 {
        tx.try_push(&[i]).unwrap();
    }
    assert_eq!(tx.try_push(b"x"), Err(PushError::Full));
    // Three reads: not handed back yet, the producer still sees a full ring.
    for i in 0..3u8 {
        assert_eq!(pop_vec(&mut rx), msg(&[i]));
    }
    assert_eq!(tx.try_push(b"x"), Err(PushError::Full));
    // The fourth completes the batch: four slots free at once.
    assert_eq!(pop_vec(&mut rx), msg(&[3]));
    for i in 64..68u8 {
        tx.try_push(&[i]).unwrap();
    }
    assert_eq!(tx.try_push(b"x"), Err(PushError::Full));
    // A consumer that drains the ring hands back everything as soon as it finds it empty.
    for i in 4..68u8 {
        assert_eq!(pop_vec(&mut rx), msg(&[i]));
    }
    assert_eq!(pop_vec(&mut rx), Pop::Empty);
    for i in 0..64u8 {
        tx.try_push(&[i]).unwrap();
    }
    assert_eq!(tx.try_push(b"x"), Err(PushError::Full));
}

#[test]
fn a_dropped_consumer_hands_back_what_it_read() {
    let path = TempPath::new("batch");
    let mut tx = Ring::create(&path.0, 64, 64).unwrap();
    let mut first = Ring::open(&path.0).unwrap();
    for i in 0..5u8 {
        tx.try_push(&[i]).unwrap();
    }
    // Two reads, fewer than the batch of 4: only this side knows them.
    assert_eq!(pop_vec(&mut first), msg(&[0]));
    assert_eq!(pop_vec(&mut first), msg(&[1]));
    drop(first);
    let mut second = Ring::open(&path.0).unwrap();
    assert_eq!(
        pop_vec(&mut second),
        msg(&[2]),
        "resumes after the first's reads"
    );
    assert_eq!(second.backlog(), 2);
}

#[test]
fn a_dead_consumers_claim_is_taken_over() {
    let path = TempPath::new("stale");
    let _tx = Ring::create(&path.0, 4, 64).unwrap();
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    write_at(&path.0, 264, &dead.to_le_bytes());
    let rx = Ring::open(&path.0).unwrap();
    assert_eq!(half_at(&path.0, 264), std::process::id());
    drop(rx);
}

#[test]
fn create_replaces_the_file_atomically() {
    let path = TempPath::new("replace");
    let mut old_tx = Ring::create(&path.0, 4, 64).unwrap();
    let mut old_rx = Ring::open(&path.0).unwrap();
    assert!(!old_rx.replaced());
    let mut new_tx = Ring::create(&path.0, 8, 128).unwrap();
    assert!(old_rx.replaced());
    // The old pair keeps its own (now unlinked) file.
    old_tx.try_push(b"old").unwrap();
    assert_eq!(pop_vec(&mut old_rx), msg(b"old"));
    let mut new_rx = Ring::open(&path.0).unwrap();
    assert_eq!(new_rx.slots(), 8);
    new_tx.try_push(b"new").unwrap();
    assert_eq!(pop_vec(&mut new_rx), msg(b"new"));
    assert_eq!(pop_vec(&mut old_rx), Pop::Empty);
    drop(new_rx);
    std::fs::remove_file(&path.0).unwrap();
    assert!(old_rx.replaced(), "gone counts as replaced");
    // No temporary file is left behind.
    let dir = path.0.parent().unwrap();
    let name = path.0.file_name().unwrap().to_string_lossy().into_owned();
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(&name))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn create_on_checks_the_backing() {
    let path = TempPath::new("backing");
    if !path.0.starts_with("/dev/shm") {
        eprintln!("no /dev/shm here: the shm backing is not checked");
        return;
    }
    let tx = Ring::create_on(Backing::Shm, &path.0, 4, 64).unwrap();
    assert_eq!(tx.backing(), Some(Backing::Shm));
    drop(tx);
    std::fs::remove_file(&path.0).unwrap();
    let err = Ring::create_on(Backing::Hugetlbfs, &path.0, 4, 64).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "ring {}: backing `hugetlbfs` wants a hugetlbfs filesystem, found filesystem magic 0x1021994",
            path.0.display()
        )
    );
    assert!(!path.0.exists());
    assert_eq!(Backing::Shm.default_dir(), Path::new("/dev/shm"));
    assert_eq!(Backing::Hugetlbfs.as_str(), "hugetlbfs");
}

/// On a hugetlbfs mount with free huge pages (found in /proc/mounts), the file is rounded up
/// to whole huge pages and works as any ring. Says so and passes where there is none.
#[test]
fn hugetlbfs_ring_when_mounted() {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let Some(dir) = mounts
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.get(2) == Some(&"hugetlbfs"))
        .map(|f| PathBuf::from(f[1]))
    else {
        eprintln!("no hugetlbfs mount: the hugetlbfs backing is not exercised");
        return;
    };
    let path = TempPath(dir.join(format!("rt-ring-test-{}-huge", std::process::id())));
    let mut tx = match Ring::create_on(Backing::Hugetlbfs, &path.0, 64, 64) {
        Ok(tx) => tx,
        Err(RingError::Io { op, source, .. }) if op == "allocate" || op == "map" => {
            eprintln!(
                "hugetlbfs at {}: no free huge pages ({source})",
                dir.display()
            );
            return;
        }
        Err(e) => panic!("{e}"),
    };
    assert_eq!(tx.backing(), Some(Backing::Hugetlbfs));
    let len = std::fs::metadata(&path.0).unwrap().len();
    assert_eq!(len % (2 << 20), 0, "whole huge pages: {len}");
    let mut rx = Ring::open(&path.0).unwrap();
    tx.try_push(b"huge").unwrap();
    assert_eq!(pop_vec(&mut rx), msg(b"huge"));
}

#[test]
fn ends_are_send() {
    fn send<T: Send>() {}
    send::<Producer>();
    send::<Consumer>();
    let (tx, mut rx) = Ring::in_memory(2, 64).unwrap();
    let writer = std::thread::spawn(move || {
        let mut tx = tx;
        tx.try_push(b"from a thread").unwrap();
    });
    writer.join().unwrap();
    assert_eq!(pop_vec(&mut rx), msg(b"from a thread"));
}

#[test]
fn pins_the_thread_or_says_why() {
    std::thread::spawn(|| {
        pin_current_thread(0).unwrap();
        let err = pin_current_thread(1 << 20).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    })
    .join()
    .unwrap();
}

/// The reference: a VecDeque of slots, each its messages (one, or several packed by
/// `try_push_many`) and the messages lost before it.
#[derive(Debug)]
struct Model {
    slots: usize,
    capacity: usize,
    queue: VecDeque<(Vec<Vec<u8>>, u64)>,
    /// Messages of the front slot already read.
    read: usize,
    pending_lost: u64,
    overflow: u64,
    gap_reported: bool,
    /// The consumer's release batch, and the slots it read but has not handed back yet.
    batch: usize,
    unreleased: usize,
}

impl Model {
    fn push_slot(&mut self, messages: Vec<Vec<u8>>) -> Result<(), PushError> {
        if self.queue.len() + self.unreleased == self.slots {
            return Err(PushError::Full);
        }
        self.queue.push_back((messages, self.pending_lost));
        self.pending_lost = 0;
        Ok(())
    }

    fn push(&mut self, m: &[u8]) -> Result<(), PushError> {
        if m.len() > self.capacity {
            return Err(PushError::TooLong {
                len: m.len(),
                capacity: self.capacity,
            });
        }
        self.push_slot(vec![m.to_vec()])
    }

    fn push_or_count(&mut self, m: &[u8]) -> bool {
        let ok = self.push(m).is_ok();
        if !ok {
            self.overflow += 1;
            self.pending_lost += 1;
        }
        ok
    }

    /// Greedy packing: as many messages as fit (2 + length each) in a slot; a slot that would
    /// hold one is a plain one.
    fn push_many(&mut self, msgs: &[Vec<u8>]) -> usize {
        let mut done = 0;
        while done < msgs.len() {
            let (mut used, mut n) = (0, 0);
            for m in &msgs[done..] {
                if used + 2 + m.len() > self.capacity {
                    break;
                }
                used += 2 + m.len();
                n += 1;
            }
            let ok = if n <= 1 {
                n = 1;
                self.push(&msgs[done]).is_ok()
            } else {
                self.push_slot(msgs[done..done + n].to_vec()).is_ok()
            };
            if !ok {
                break;
            }
            done += n;
        }
        done
    }

    fn pop(&mut self) -> Pop<Vec<u8>> {
        let read = self.read;
        match self.queue.front_mut() {
            None => {
                self.unreleased = 0;
                Pop::Empty
            }
            Some(&mut (_, lost)) if lost > 0 && !self.gap_reported && read == 0 => {
                self.gap_reported = true;
                Pop::Gap { lost }
            }
            Some((messages, _)) => {
                self.gap_reported = false;
                let m = std::mem::take(&mut messages[read]);
                if read + 1 < messages.len() {
                    self.read += 1;
                    return Pop::Message(m);
                }
                self.queue.pop_front();
                self.read = 0;
                self.unreleased += 1;
                if self.unreleased >= self.batch {
                    self.unreleased = 0;
                }
                Pop::Message(m)
            }
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    TryPush(Vec<u8>),
    PushOrCount(Vec<u8>),
    WithSlot(Vec<u8>),
    WithSlotOrCount(Vec<u8>),
    PushMany(Vec<Vec<u8>>),
    Pop,
}

fn op(capacity: usize) -> impl Strategy<Value = Op> {
    let any_len = proptest::collection::vec(any::<u8>(), 0..=capacity + 4);
    let fits = proptest::collection::vec(any::<u8>(), 0..=capacity);
    // Mostly short messages (several fit a slot), now and then one that does not pack.
    let short = proptest::collection::vec(any::<u8>(), 0..=capacity / 3);
    let one = prop_oneof![4 => short, 1 => any_len.clone()];
    prop_oneof![
        2 => any_len.clone().prop_map(Op::TryPush),
        3 => any_len.prop_map(Op::PushOrCount),
        1 => fits.clone().prop_map(Op::WithSlot),
        1 => fits.prop_map(Op::WithSlotOrCount),
        2 => proptest::collection::vec(one, 0..8).prop_map(Op::PushMany),
        5 => Just(Op::Pop),
    ]
}

/// Ring size, slot bytes, the consumer's release batch (`None`: the default), operations.
fn case() -> impl Strategy<Value = (u64, u64, Option<u64>, Vec<Op>)> {
    let slots = prop_oneof![Just(2u64), Just(4), Just(8), Just(32), Just(64)];
    (slots, prop_oneof![Just(64u64), Just(128)]).prop_flat_map(|(slots, slot_bytes)| {
        (
            Just(slots),
            Just(slot_bytes),
            proptest::option::of(1..=slots + 1),
            proptest::collection::vec(op(slot_bytes as usize - 16), 0..300),
        )
    })
}

fn fill(m: &[u8]) -> impl FnOnce(&mut [u8]) -> usize + '_ {
    move |buf: &mut [u8]| {
        buf[..m.len()].copy_from_slice(m);
        m.len()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn behaves_as_the_vecdeque_model((slots, slot_bytes, batch, ops) in case()) {
        let (mut tx, mut rx) = Ring::in_memory(slots, slot_bytes).unwrap();
        if let Some(batch) = batch {
            rx.set_release_batch(batch);
        }
        let mut model = Model {
            slots: slots as usize,
            capacity: slot_bytes as usize - 16,
            queue: VecDeque::new(),
            read: 0,
            pending_lost: 0,
            overflow: 0,
            gap_reported: false,
            batch: rx.release_batch() as usize,
            unreleased: 0,
        };
        for op in &ops {
            match op {
                Op::TryPush(m) => prop_assert_eq!(tx.try_push(m), model.push(m)),
                Op::PushOrCount(m) => prop_assert_eq!(tx.push_or_count(m), model.push_or_count(m)),
                Op::WithSlot(m) => {
                    prop_assert_eq!(tx.with_slot(fill(m)), model.push(m).map_err(|_| Full));
                }
                Op::WithSlotOrCount(m) => {
                    prop_assert_eq!(tx.with_slot_or_count(fill(m)), model.push_or_count(m));
                }
                Op::PushMany(ms) => prop_assert_eq!(tx.try_push_many(ms), model.push_many(ms)),
                Op::Pop => prop_assert_eq!(pop_vec(&mut rx), model.pop()),
            }
            prop_assert_eq!(tx.overflow(), model.overflow);
            prop_assert_eq!(rx.overflow(), model.overflow);
            prop_assert_eq!(rx.backlog(), model.queue.len() as u64);
        }
        // Drain: the same messages and gaps, then both empty.
        loop {
            let (got, want) = (pop_vec(&mut rx), model.pop());
            prop_assert_eq!(&got, &want);
            if got == Pop::Empty {
                break;
            }
        }
    }
}
