//! rt-ring: the shared-memory single-producer single-consumer rings that join the engine's
//! pinned threads, or two processes (DESIGN.md section 3, "Shared-memory rings").
//!
//! A ring is a file under `/dev/shm` (backing `shm`) or on a hugetlbfs mount (backing
//! `hugetlbfs`), mapped by both sides: a [`HEADER_BYTES`] header, then `slots` fixed-size slots
//! of `slot_bytes`, both from the manifest (`slots` a power of two in 2..=2^24, `slot_bytes` a
//! multiple of 64 in 64..=65536). The producer [`Ring::create`]s the file and gets the
//! [`Producer`]; the consumer [`Ring::open`]s it and gets the [`Consumer`]. Neither is Clone.
//!
//! ```
//! # fn main() -> Result<(), rt_ring::RingError> {
//! use rt_ring::{Pop, Ring};
//!
//! let path = std::env::temp_dir().join(format!("rt-ring-doc-{}", std::process::id()));
//! let mut tx = Ring::create(&path, 8, 64)?;
//! let mut rx = Ring::open(&path)?;
//! assert!(tx.try_push(b"hello").is_ok());
//! assert_eq!(rx.try_pop(|bytes| bytes.to_vec()), Pop::Message(b"hello".to_vec()));
//! assert_eq!(rx.try_pop(|bytes| bytes.len()), Pop::Empty);
//! # drop((tx, rx));
//! # std::fs::remove_file(&path).ok();
//! # Ok(())
//! # }
//! ```
//!
//! A full ring never blocks the market-data producer: [`Producer::push_or_count`] drops the
//! message, counts it in the header's overflow counter (read by both sides) and marks the next
//! message it does write as following a loss, so that the consumer gets [`Pop::Gap`] (with the
//! number lost) before that message, and resyncs as after an exchange gap.
//!
//! # File layout (version 2, little-endian, `repr(C)`)
//!
//! | bytes | field | written by |
//! |---|---|---|
//! | 0..8 | magic [`MAGIC`] (stored last, Release) | creator |
//! | 8..12, 12..16 | version [`VERSION`], header bytes [`HEADER_BYTES`] | creator |
//! | 16..24, 24..32 | slot count, slot bytes | creator |
//! | 128..136, 136..144 | tail (positions written), overflow (messages dropped) | producer |
//! | 256..264, 264..268 | head (positions read), attached consumer pid (0: none) | consumer |
//! | 4096.. | the slots | |
//!
//! The counters sit 128 bytes apart (x86 fetches cache lines in adjacent pairs). A slot is a
//! stamp (u64: its position + 1 once written), an 8-byte metadata word (bits 0..16 the message
//! length, bits 16..63 the messages lost just before it, bit 63 "packed"), then the payload: a
//! slot carries up to `slot_bytes - 16` bytes ([`Producer::capacity`]). Longer messages are
//! refused: the engine splits its events itself. A packed slot ([`Producer::try_push_many`])
//! carries several messages, each a u16 length (LE) and its bytes, back to back; its length
//! field is then the bytes used. Version 2 added packed slots (a version 1 reader would take
//! the flag for a loss).
//!
//! # Hot path
//!
//! No syscalls and no locks: the producer writes the slot and stores its stamp (Release); the
//! consumer polls the stamp of its next slot (Acquire), which shares a cache line with the
//! payload's first 48 bytes. Each side keeps its own position, the producer a cached copy of
//! the consumer's head that it refreshes only when the ring looks full, and the consumer
//! publishes its head in batches ([`Consumer::set_release_batch`]) and whenever it finds the
//! ring empty, so that a producer streaming into a full ring does not pull the consumer's
//! counter line across once per message. The protocol and all of the crate's `unsafe` are in
//! one module, `raw`.
//!
//! # Throughput
//!
//! One message a slot moves at least one cache line from the producer's core to the
//! consumer's per message (a slot is a whole number of 64-byte lines, and the stamp and the
//! metadata word take 16 of its bytes), and the consumer polls that line for its stamp. The
//! software is not what limits a stream (push + pop of a 32-byte message on one thread:
//! ~7 ns, `examples/push_pop_cost.rs`); the line transfers are: on a 2-vCPU AMD EPYC VM a
//! stream of 32-byte messages one to a 64-byte slot ran at 17-22 M msg/s in the best runs,
//! 45-60 ns per line, where `rtrb` (32-byte elements, two to a line, a separate index line)
//! reached 71-78 M msg/s, 26-28 ns per line (`benches/hop.rs` has the figures). A producer
//! with several messages at hand should write them with [`Producer::try_push_many`]: packed
//! into 256- or 512-byte slots they share lines and one stamp a slot, and the same stream
//! reached 56-78 M msg/s, as fast as rtrb. (In one run, when for a moment a line moved
//! cheaply between the two vCPUs, one message a slot reached 74 M msg/s: the limit is the
//! line transfer, not the ring's code.) The
//! consumer's side of a batch is [`Consumer::set_release_batch`] (one store of its position
//! per batch); it pops packed messages one by one, as if pushed one by one.
//!
//! # Model check
//!
//! `tests/loom.rs` runs producer/consumer scenarios over 2-slot in-memory rings (no message
//! lost, duplicated or torn; every drop counted, and reported by a gap before the next
//! message). Built with `--cfg loom`, the crate's atomics and slot cells come from loom, which
//! explores every interleaving:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p rt-ring --release --test loom
//! ```
//!
//! Without the flag (as in `cargo test --workspace`) the same scenarios run many times on real
//! threads: a stress test, not a proof.

mod error;
#[cfg(not(loom))]
mod file;
mod raw;

use std::path::{Path, PathBuf};
use std::sync::Arc;

#[cfg(loom)]
use loom::sync::atomic::Ordering;
#[cfg(not(loom))]
use std::sync::atomic::Ordering;

pub use error::{Full, PushError, RingError};
#[cfg(not(loom))]
pub use raw::pin_current_thread;
pub use raw::HEADER_BYTES;
use raw::{RawConsumer, RawProducer, Region};

/// The header's first 8 bytes: `"py_rtRNG"`.
pub const MAGIC: u64 = u64::from_le_bytes(*b"py_rtRNG");
/// The layout version this crate writes and accepts.
pub const VERSION: u32 = 2;
/// Per slot, in front of the payload: the stamp and the metadata word.
pub const SLOT_HEADER_BYTES: usize = 16;
pub const MIN_SLOTS: u64 = 2;
pub const MAX_SLOTS: u64 = 1 << 24;
pub const MIN_SLOT_BYTES: u64 = 64;
pub const MAX_SLOT_BYTES: u64 = 65536;

/// Bits 16..63 of the metadata word: losses beyond this (2^47 - 1 in a row) are reported as this.
const MAX_LOST: u64 = (1 << 47) - 1;
/// Bit 63 of the metadata word: the slot holds several messages, each a u16 length (LE) and its
/// bytes, back to back; bits 0..16 are then the bytes used.
const PACKED: u64 = 1 << 63;
/// In a packed slot, the length in front of each message.
pub const PACKED_RECORD_BYTES: usize = 2;

/// The largest default [`Consumer::release_batch`].
pub const MAX_RELEASE_BATCH: u64 = 64;

fn default_release_batch(slots: u64) -> u64 {
    (slots / 16).clamp(1, MAX_RELEASE_BATCH)
}

/// Where ring files live, as the manifest's `rings.backing` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backing {
    /// tmpfs, normally `/dev/shm`.
    Shm,
    /// A hugetlbfs mount (the file is rounded up to whole huge pages).
    Hugetlbfs,
}

impl Backing {
    pub const fn as_str(self) -> &'static str {
        match self {
            Backing::Shm => "shm",
            Backing::Hugetlbfs => "hugetlbfs",
        }
    }

    /// The usual mount point: `/dev/shm` or `/dev/hugepages`.
    pub fn default_dir(self) -> &'static Path {
        Path::new(match self {
            Backing::Shm => "/dev/shm",
            Backing::Hugetlbfs => "/dev/hugepages",
        })
    }
}

/// What [`Consumer::try_pop`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Pop<R> {
    /// The next message; the value is what the closure returned.
    Message(R),
    /// `lost` messages were dropped on a full ring just before the next message (which the
    /// next call returns). The closure was not called.
    Gap { lost: u64 },
    /// Nothing to read now.
    Empty,
}

/// Constructors of both ends. See the crate docs.
#[derive(Debug)]
pub enum Ring {}

impl Ring {
    /// Creates the ring file at `path` (producer side) and returns its producer.
    ///
    /// The file is built under a temporary name in the same directory, its blocks reserved
    /// (fallocate) and its header written, then renamed over `path`: an `open` never sees a
    /// half-made ring, and a consumer still mapping an older ring at `path` keeps its file
    /// (see [`Consumer::replaced`]). On hugetlbfs the length is rounded up to whole huge pages.
    /// The file stays until removed (a restarted consumer may reattach).
    #[cfg(not(loom))]
    pub fn create(
        path: impl AsRef<Path>,
        slots: u64,
        slot_bytes: u64,
    ) -> Result<Producer, RingError> {
        file::create(path.as_ref(), slots, slot_bytes, None)
    }

    /// As [`Ring::create`], and refuses a `path` that is not on the filesystem `backing` names
    /// (tmpfs for `Shm`).
    #[cfg(not(loom))]
    pub fn create_on(
        backing: Backing,
        path: impl AsRef<Path>,
        slots: u64,
        slot_bytes: u64,
    ) -> Result<Producer, RingError> {
        file::create(path.as_ref(), slots, slot_bytes, Some(backing))
    }

    /// Opens the ring file at `path` (consumer side): checks the header (magic, version,
    /// sizes, file length; the error names the field), attaches as its consumer (refused while
    /// another live process, or this one, is attached) and returns the consumer, positioned
    /// where the previous consumer stopped (at the start for a new ring).
    #[cfg(not(loom))]
    pub fn open(path: impl AsRef<Path>) -> Result<Consumer, RingError> {
        file::open(path.as_ref())
    }

    /// A ring in private memory, both ends at once (two threads of one process; tests).
    pub fn in_memory(slots: u64, slot_bytes: u64) -> Result<(Producer, Consumer), RingError> {
        let (slots, slot_bytes) = check_sizes(slots, slot_bytes)?;
        #[cfg(not(loom))]
        let region = {
            let len = HEADER_BYTES + slots * slot_bytes;
            let map = memmap2::MmapOptions::new()
                .len(len)
                .map_anon()
                .map_err(|source| RingError::Io {
                    path: PathBuf::from("(anonymous)"),
                    op: "map",
                    source,
                })?;
            Region::new(map.into(), slots, slot_bytes)
        };
        #[cfg(loom)]
        let region = Region::heap(slots, slot_bytes);
        let region = Arc::new(region.map_err(|e| region_error(e, slots, slot_bytes))?);
        write_identity(&region, slots, slot_bytes);
        let producer = Producer::new(RawProducer::new(Arc::clone(&region)), None);
        let consumer = Consumer::new(RawConsumer::new(region), None);
        Ok((producer, consumer))
    }
}

/// Checks the manifest's rules on ring sizes.
fn check_sizes(slots: u64, slot_bytes: u64) -> Result<(usize, usize), RingError> {
    let size = |field, value, rule| RingError::Size { field, value, rule };
    if !(MIN_SLOTS..=MAX_SLOTS).contains(&slots) || !slots.is_power_of_two() {
        return Err(size(
            "slots",
            slots,
            "must be a power of two in 2..=16777216",
        ));
    }
    if !(MIN_SLOT_BYTES..=MAX_SLOT_BYTES).contains(&slot_bytes) || slot_bytes % 64 != 0 {
        return Err(size(
            "slot_bytes",
            slot_bytes,
            "must be a multiple of 64 in 64..=65536",
        ));
    }
    let slots = usize::try_from(slots).map_err(|_| size("slots", slots, "too large here"))?;
    let slot_bytes = usize::try_from(slot_bytes)
        .map_err(|_| size("slot_bytes", slot_bytes, "too large here"))?;
    if slots.checked_mul(slot_bytes).is_none() {
        return Err(size("slots", slots as u64, "times slot_bytes overflows"));
    }
    Ok((slots, slot_bytes))
}

/// Region::new refusing sizes that check_sizes (and, in `open`, the header checks) accepted
/// would be a bug here; still an error rather than a panic.
fn region_error(e: raw::RegionError, slots: usize, slot_bytes: usize) -> RingError {
    let (field, value) = match e {
        raw::RegionError::Slots => ("slots", slots as u64),
        raw::RegionError::SlotBytes => ("slot_bytes", slot_bytes as u64),
        raw::RegionError::Length { found, .. } => ("mapping length", found as u64),
    };
    RingError::Size {
        field,
        value,
        rule: "does not fit the ring's layout",
    }
}

/// Writes the header's identity, `magic` last (Release), on a region no one else sees yet.
fn write_identity(region: &Region, slots: usize, slot_bytes: usize) {
    let id = &region.header().identity;
    id.version.store(VERSION, Ordering::Relaxed);
    id.header_bytes
        .store(HEADER_BYTES as u32, Ordering::Relaxed);
    id.slots.store(slots as u64, Ordering::Relaxed);
    id.slot_bytes.store(slot_bytes as u64, Ordering::Relaxed);
    id.magic.store(MAGIC, Ordering::Release);
}

fn encode_meta(len: usize, lost: u64, packed: bool) -> u64 {
    let packed = if packed { PACKED } else { 0 };
    len as u64 | (lost.min(MAX_LOST) << 16) | packed
}

/// (length or bytes used, messages lost before the slot, packed).
fn decode_meta(meta: u64) -> (usize, u64, bool) {
    (
        (meta & 0xffff) as usize,
        (meta & !PACKED) >> 16,
        meta & PACKED != 0,
    )
}

/// The file behind a producer.
#[derive(Debug)]
#[cfg_attr(loom, allow(dead_code))] // no files under loom
struct ProducerFile {
    path: PathBuf,
    backing: Option<Backing>,
}

/// The writing end. One per ring: not Clone; Send, so it can move to its thread.
///
/// ```compile_fail
/// let (tx, _rx) = rt_ring::Ring::in_memory(2, 64).unwrap();
/// let _again = tx.clone();
/// ```
#[derive(Debug)]
pub struct Producer {
    raw: RawProducer,
    capacity: usize,
    /// Dropped since the last message written: goes into the next slot's metadata.
    pending_lost: u64,
    /// This side's copy of the header's overflow counter.
    overflow: u64,
    file: Option<ProducerFile>,
}

impl Producer {
    fn new(raw: RawProducer, file: Option<ProducerFile>) -> Producer {
        let region = raw.region();
        let slot_bytes = region.header().identity.slot_bytes.load(Ordering::Relaxed);
        let overflow = region.header().producer.overflow.load(Ordering::Relaxed);
        Producer {
            capacity: slot_bytes as usize - SLOT_HEADER_BYTES,
            raw,
            pending_lost: 0,
            overflow,
            file,
        }
    }

    /// Copies `msg` into the next slot; refuses it if the ring is full (the caller keeps it,
    /// nothing is counted) or if it is longer than [`Producer::capacity`].
    #[inline]
    pub fn try_push(&mut self, msg: &[u8]) -> Result<(), PushError> {
        if msg.len() > self.capacity {
            return Err(PushError::TooLong {
                len: msg.len(),
                capacity: self.capacity,
            });
        }
        self.write(|buf| {
            buf[..msg.len()].copy_from_slice(msg);
            msg.len()
        })
        .ok_or(PushError::Full)
    }

    /// Copies `msg` into the next slot, or, if the ring is full (or `msg` too long), drops it:
    /// never blocks. A drop adds one to the overflow counter and makes the consumer see a
    /// [`Pop::Gap`] before the next message written. Returns whether `msg` was written.
    #[inline]
    pub fn push_or_count(&mut self, msg: &[u8]) -> bool {
        let written = self.try_push(msg).is_ok();
        if !written {
            self.count_lost();
        }
        written
    }

    /// Zero-copy write: `f` fills the next slot's payload (`capacity()` bytes, holding stale
    /// bytes) and returns the message length; the slot is published when `f` returns. If the
    /// ring is full `f` is not called and nothing is counted.
    ///
    /// # Panics
    /// If `f` returns a length above the payload's; the slot is then not published.
    #[inline]
    pub fn with_slot(&mut self, f: impl FnOnce(&mut [u8]) -> usize) -> Result<(), Full> {
        self.write(f).ok_or(Full)
    }

    /// [`Producer::with_slot`] that, on a full ring, counts the drop as
    /// [`Producer::push_or_count`] does. Returns whether `f` was called and its message written.
    #[inline]
    pub fn with_slot_or_count(&mut self, f: impl FnOnce(&mut [u8]) -> usize) -> bool {
        let written = self.write(f).is_some();
        if !written {
            self.count_lost();
        }
        written
    }

    #[inline]
    fn write(&mut self, f: impl FnOnce(&mut [u8]) -> usize) -> Option<()> {
        self.write_slot(false, f)
    }

    #[inline]
    fn write_slot(&mut self, packed: bool, f: impl FnOnce(&mut [u8]) -> usize) -> Option<()> {
        let capacity = self.capacity;
        let lost = self.pending_lost;
        self.raw.try_write(|body| {
            let (meta, payload) = body.split_at_mut(SLOT_HEADER_BYTES - raw::STAMP_BYTES);
            let len = f(&mut payload[..capacity]);
            assert!(
                len <= capacity,
                "with_slot: the closure returned {len}, more than the slot's {capacity} bytes"
            );
            meta.copy_from_slice(&encode_meta(len, lost, packed).to_le_bytes());
        })?;
        self.pending_lost = 0;
        Some(())
    }

    /// Writes `msgs` in order, packing consecutive messages into one slot while they fit
    /// (each takes [`PACKED_RECORD_BYTES`] + its length of the slot's [`Producer::capacity`]),
    /// and returns how many were written: all of them, or fewer when the ring filled up (the
    /// rest are not written, nothing is counted) or when the next one is too long for a slot
    /// (which `try_push` of that message then reports).
    ///
    /// The consumer pops them one by one as if pushed one by one; a slot is handed back when
    /// its last message is read. For messages much shorter than a slot this moves several
    /// messages per cache line and publishes once per slot instead of once per message: with
    /// 256-byte slots, seven 32-byte messages a slot.
    pub fn try_push_many<M: AsRef<[u8]>>(&mut self, msgs: &[M]) -> usize {
        let capacity = self.capacity;
        let mut done = 0;
        while done < msgs.len() {
            let mut used = 0;
            let mut n = 0;
            for m in &msgs[done..] {
                let need = PACKED_RECORD_BYTES + m.as_ref().len();
                if used + need > capacity {
                    break;
                }
                used += need;
                n += 1;
            }
            if n <= 1 {
                // One message (or one too long to pack): a plain slot, as try_push writes it.
                if self.try_push(msgs[done].as_ref()).is_err() {
                    break;
                }
                done += 1;
                continue;
            }
            let batch = &msgs[done..done + n];
            let written = self.write_slot(true, |buf| {
                let mut at = 0;
                for m in batch {
                    let m = m.as_ref();
                    buf[at..at + PACKED_RECORD_BYTES]
                        .copy_from_slice(&(m.len() as u16).to_le_bytes());
                    at += PACKED_RECORD_BYTES;
                    buf[at..at + m.len()].copy_from_slice(m);
                    at += m.len();
                }
                at
            });
            if written.is_none() {
                break;
            }
            done += n;
        }
        done
    }

    #[cold]
    fn count_lost(&mut self) {
        self.overflow += 1;
        self.pending_lost = self.pending_lost.saturating_add(1);
        // Relaxed is enough: the next slot's stamp (Release) carries it to the consumer.
        self.raw
            .region()
            .header()
            .producer
            .overflow
            .store(self.overflow, Ordering::Relaxed);
    }

    /// The longest message a slot holds: `slot_bytes - 16`.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn slots(&self) -> usize {
        self.raw
            .region()
            .header()
            .identity
            .slots
            .load(Ordering::Relaxed) as usize
    }

    /// Messages dropped on this ring so far (the header's overflow counter).
    pub fn overflow(&self) -> u64 {
        self.overflow
    }

    /// The ring's file (`None` for [`Ring::in_memory`]).
    pub fn path(&self) -> Option<&Path> {
        self.file.as_ref().map(|f| f.path.as_path())
    }

    /// The pid of the consumer attached to the ring file, if one is (`None` for
    /// [`Ring::in_memory`]): lets the producer wait for its reader before it starts.
    pub fn consumer_pid(&self) -> Option<u32> {
        let pid = self
            .raw
            .region()
            .header()
            .consumer
            .pid
            .load(Ordering::Acquire);
        (pid != 0).then_some(pid)
    }

    /// The filesystem the file is on, if tmpfs or hugetlbfs.
    pub fn backing(&self) -> Option<Backing> {
        self.file.as_ref().and_then(|f| f.backing)
    }
}

/// The file behind a consumer.
#[derive(Debug)]
#[cfg_attr(loom, allow(dead_code))] // no files under loom
struct ConsumerFile {
    path: PathBuf,
    /// (device, inode) of the mapped file.
    id: (u64, u64),
    /// This process's pid, as attached in the header.
    pid: u32,
}

/// The reading end. One per ring: not Clone; Send, so it can move to its thread.
///
/// ```compile_fail
/// let (_tx, rx) = rt_ring::Ring::in_memory(2, 64).unwrap();
/// let _again = rx.clone();
/// ```
#[derive(Debug)]
pub struct Consumer {
    raw: RawConsumer,
    capacity: usize,
    /// The gap of the next message was returned already.
    gap_reported: bool,
    /// In a packed slot: where its next message starts (0 at a slot's start).
    offset: usize,
    file: Option<ConsumerFile>,
}

impl Consumer {
    fn new(raw: RawConsumer, file: Option<ConsumerFile>) -> Consumer {
        let slot_bytes = raw
            .region()
            .header()
            .identity
            .slot_bytes
            .load(Ordering::Relaxed);
        let slots = raw.region().header().identity.slots.load(Ordering::Relaxed);
        let mut raw = raw;
        raw.set_batch(default_release_batch(slots));
        Consumer {
            capacity: slot_bytes as usize - SLOT_HEADER_BYTES,
            raw,
            gap_reported: false,
            offset: 0,
            file,
        }
    }

    /// How many read slots this side hands back to the producer at once (see
    /// [`Consumer::set_release_batch`]).
    pub fn release_batch(&self) -> u64 {
        self.raw.batch()
    }

    /// Hands read slots back to the producer (publishes the read position) every `batch`
    /// messages (at least 1) instead of after each, and always as soon as the ring is found
    /// empty or this end is dropped. A streaming producer then reads the consumer's counter
    /// once per batch, not once per message. The default is `slots / 16`, between 1 and
    /// [`MAX_RELEASE_BATCH`]: a ring of fewer than 32 slots releases every message.
    ///
    /// The price: the producer sees up to `batch - 1` slots as used that are already read (a
    /// `push_or_count` on a ring that full drops), and a consumer process killed before it
    /// published has up to `batch - 1` messages delivered again to the next consumer that
    /// attaches (a clean drop publishes).
    pub fn set_release_batch(&mut self, batch: u64) {
        self.raw.set_batch(batch);
    }

    /// Reads the next message in place: calls `f` on its bytes and returns what `f` returned,
    /// then frees the slot. Before a message that follows drops, returns [`Pop::Gap`] once
    /// (without calling `f`). Never blocks, no syscall: poll it.
    #[inline]
    pub fn try_pop<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Pop<R> {
        let capacity = self.capacity;
        let gap_reported = &mut self.gap_reported;
        let offset = &mut self.offset;
        let read = self.raw.try_read(|body| {
            let (meta, payload) = body.split_at(SLOT_HEADER_BYTES - raw::STAMP_BYTES);
            let mut word = [0; 8];
            word.copy_from_slice(meta);
            let (len, lost, packed) = decode_meta(u64::from_le_bytes(word));
            if lost > 0 && !*gap_reported && *offset == 0 {
                *gap_reported = true;
                return (Pop::Gap { lost }, false);
            }
            *gap_reported = false;
            // Clamped: a foreign writer could put anything there.
            let used = len.min(capacity);
            if !packed {
                return (Pop::Message(f(&payload[..used])), true);
            }
            // The record at `offset`, clamped to the bytes used; the slot is released after
            // its last record (when no further record header fits).
            // In bounds: `offset` is 0 (capacity >= 48) or a record's end with room for
            // another length after it (below).
            let at = *offset;
            let mut n = [0; PACKED_RECORD_BYTES];
            n.copy_from_slice(&payload[at..at + PACKED_RECORD_BYTES]);
            let start = (at + PACKED_RECORD_BYTES).min(used);
            let end = (start + u16::from_le_bytes(n) as usize).min(used);
            let message = f(&payload[start..end]);
            let done = end + PACKED_RECORD_BYTES > used;
            *offset = if done { 0 } else { end };
            (Pop::Message(message), done)
        });
        read.unwrap_or(Pop::Empty)
    }

    /// Messages dropped on this ring so far (the header's overflow counter). At least the sum
    /// of the gaps returned; a drop after the last message written shows here before any gap.
    pub fn overflow(&self) -> u64 {
        self.raw
            .region()
            .header()
            .producer
            .overflow
            .load(Ordering::Acquire)
    }

    /// Slots written and not yet read: messages, but a packed slot counts once until its last
    /// message is read (a snapshot; reads the producer's counter line).
    pub fn backlog(&self) -> u64 {
        let tail = self
            .raw
            .region()
            .header()
            .producer
            .tail
            .load(Ordering::Acquire);
        tail.saturating_sub(self.raw.head())
    }

    /// The longest message a slot holds: `slot_bytes - 16`.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn slots(&self) -> usize {
        self.raw
            .region()
            .header()
            .identity
            .slots
            .load(Ordering::Relaxed) as usize
    }

    /// The ring's file (`None` for [`Ring::in_memory`]).
    pub fn path(&self) -> Option<&Path> {
        self.file.as_ref().map(|f| f.path.as_path())
    }

    /// Whether the file at [`Consumer::path`] is gone or is another ring now (a producer
    /// re-created it): this consumer then reads a ring no one writes, and should reopen.
    /// One `stat`: not for the hot path. Always false for [`Ring::in_memory`].
    #[cfg(not(loom))]
    pub fn replaced(&self) -> bool {
        self.file
            .as_ref()
            .is_some_and(|f| file::file_id(&f.path).map_or(true, |id| id != f.id))
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        // Every message read is handed back, so that a later consumer starts after it.
        self.raw.publish();
        if let Some(f) = &self.file {
            // Detach, so that a later consumer may attach; only if still ours.
            let _ = self.raw.region().header().consumer.pid.compare_exchange(
                f.pid,
                0,
                Ordering::Release,
                Ordering::Relaxed,
            );
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests;
