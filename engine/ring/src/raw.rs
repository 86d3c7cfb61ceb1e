//! The one module of rt-ring with `unsafe`: the mapped memory (header and slots), the SPSC
//! protocol that makes sharing it sound, and three small libc calls (fstatfs, fallocate,
//! sched_setaffinity).
//!
//! The protocol lives here, next to the memory it guards: the only way to touch a slot is
//! [`RawProducer::try_write`] or [`RawConsumer::try_read`], and each of them touches only a
//! slot the protocol gives it. Everything this module hands out is a safe function; the message
//! format (length, loss marker) is the caller's business, in `lib.rs`.
//!
//! Protocol, per position `n` (0, 1, 2, ...; slot `n & (slots - 1)`):
//! - the producer may write slot `n` once the consumer's `head` is above `n - slots` (it reads
//!   `head` with Acquire, so the consumer's reads of the slot's previous lap happen before its
//!   writes); it writes the body, then stores the slot's `stamp = n + 1` with Release;
//! - the consumer at `head = n` reads the slot once its `stamp` is `n + 1` (Acquire: the body
//!   writes happen before its reads), then stores `head = n + 1` with Release.
//!
//! The consumer polls the stamp, which sits in the same cache line as the start of the body:
//! a hop moves one line from the producer's core to the consumer's for a message of up to
//! 48 bytes. The producer reads `head` only when its cached copy says the ring is full, and the
//! consumer never reads `tail` in the hot path, so the counters' lines do not ping-pong.
//!
//! The consumer may also publish `head` in batches (every `batch` slots read, and whenever it
//! finds the ring empty): a streaming producer that keeps the ring full then reads `head` once
//! per batch instead of once per message, and the consumer's line stops bouncing between the
//! two cores. Publishing later is always safe (the producer only waits longer); the cost is that
//! a consumer that dies without publishing has its last reads delivered again to the next one.
//!
//! Whatever another process writes into the file, this side makes no out-of-bounds access:
//! positions are masked and the caller clamps lengths. (Two producers or two consumers on one
//! file would corrupt messages; `Ring::create` makes a fresh file per producer and `Ring::open`
//! refuses a second live consumer.)
#![allow(unsafe_code)]

#[cfg(loom)]
use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering};
#[cfg(not(loom))]
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

/// Bytes in front of the slots (the manifest's `RING_HEADER_BYTES`): one page, so the slots
/// start page-aligned and every slot (a multiple of 64 bytes) starts a cache line.
pub const HEADER_BYTES: usize = 4096;
/// Per slot: the stamp (8 bytes, atomic) then the body; the body starts with 8 bytes of
/// message metadata written by `lib.rs`.
pub(crate) const STAMP_BYTES: usize = 8;

/// The ring's identity, written once by the creator before `magic` (Release).
#[repr(C, align(128))]
#[derive(Debug)]
pub(crate) struct Identity {
    pub magic: AtomicU64,
    pub version: AtomicU32,
    pub header_bytes: AtomicU32,
    pub slots: AtomicU64,
    pub slot_bytes: AtomicU64,
}

/// Written by the producer only. 128-byte blocks rather than 64: x86 prefetches cache lines in
/// adjacent pairs, and a neighbour in the pair would be shared falsely all the same.
#[repr(C, align(128))]
#[derive(Debug)]
pub(crate) struct ProducerLine {
    /// Positions written (the next position to write).
    pub tail: AtomicU64,
    /// Messages dropped by `push_or_count` on a full ring (or too long), ever.
    pub overflow: AtomicU64,
}

/// Written by the consumer only.
#[repr(C, align(128))]
#[derive(Debug)]
pub(crate) struct ConsumerLine {
    /// Positions consumed (the next position to read).
    pub head: AtomicU64,
    /// The attached consumer's pid, 0 when none (swapped once at attach and detach).
    pub pid: AtomicU32,
}

/// The file's header: identity at byte 0, producer counters at 128, consumer counters at 256,
/// zeros up to [`HEADER_BYTES`].
#[repr(C)]
#[derive(Debug)]
pub(crate) struct Header {
    pub identity: Identity,
    pub producer: ProducerLine,
    pub consumer: ConsumerLine,
}

#[cfg(not(loom))]
const _: () = {
    assert!(std::mem::size_of::<Header>() <= HEADER_BYTES);
    assert!(std::mem::align_of::<Header>() <= HEADER_BYTES);
    assert!(std::mem::offset_of!(Header, producer) == 128);
    assert!(std::mem::offset_of!(Header, consumer) == 256);
};

/// Why a mapping cannot hold a ring of the asked size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(loom, allow(dead_code))] // no mappings under loom
pub(crate) enum RegionError {
    Slots,
    SlotBytes,
    Length { needed: usize, found: usize },
}

/// The shared memory: a header and `slots` slots of `slot_bytes`.
#[cfg(not(loom))]
#[derive(Debug)]
pub(crate) struct Region {
    map: memmap2::MmapRaw,
    slots: usize,
    slot_bytes: usize,
}

#[cfg(not(loom))]
impl Region {
    /// Checks everything the pointer arithmetic below relies on.
    pub(crate) fn new(
        map: memmap2::MmapRaw,
        slots: usize,
        slot_bytes: usize,
    ) -> Result<Region, RegionError> {
        if slots < 2 || !slots.is_power_of_two() {
            return Err(RegionError::Slots);
        }
        // The stamp needs 8-byte alignment and the body at least its metadata.
        if slot_bytes < 2 * STAMP_BYTES || slot_bytes % STAMP_BYTES != 0 {
            return Err(RegionError::SlotBytes);
        }
        let needed = slots
            .checked_mul(slot_bytes)
            .and_then(|b| b.checked_add(HEADER_BYTES))
            .ok_or(RegionError::Slots)?;
        let found = map.len();
        if found < needed || map.as_ptr().align_offset(std::mem::align_of::<Header>()) != 0 {
            return Err(RegionError::Length { needed, found });
        }
        Ok(Region {
            map,
            slots,
            slot_bytes,
        })
    }

    #[inline]
    pub(crate) fn header(&self) -> &Header {
        // SAFETY: new() checked that the mapping holds HEADER_BYTES (>= size_of::<Header>())
        // and is aligned for Header; the rest as in header_of.
        unsafe { &*self.map.as_ptr().cast::<Header>() }
    }

    fn slot_ptr(&self, position: u64) -> *mut u8 {
        let index = (position as usize) & (self.slots - 1);
        // In bounds: index < slots and new() checked HEADER_BYTES + slots * slot_bytes <= len.
        self.map
            .as_mut_ptr()
            .wrapping_add(HEADER_BYTES + index * self.slot_bytes)
    }

    fn stamp(&self, position: u64) -> &AtomicU64 {
        // SAFETY: the slot is in the mapping (slot_ptr) and 8-byte aligned (page-aligned slots
        // start, slot_bytes a multiple of 8); any bit pattern is a valid AtomicU64; the mapping
        // lives as long as `self`; both sides access these 8 bytes only atomically.
        unsafe { &*self.slot_ptr(position).cast::<AtomicU64>() }
    }

    /// # Safety
    /// The caller has exclusive access to the slot's body (the protocol above).
    // Inlined: out of line, the call cost ~3 ns a message (examples/push_pop_cost.rs).
    #[inline(always)]
    unsafe fn body_mut<R>(&self, position: u64, f: impl FnOnce(&mut [u8]) -> R) -> R {
        // SAFETY: the body is the slot minus its stamp, inside the mapping (slot_ptr); the
        // caller guarantees nobody else reads or writes it while `f` runs.
        let body = unsafe {
            std::slice::from_raw_parts_mut(
                self.slot_ptr(position).add(STAMP_BYTES),
                self.slot_bytes - STAMP_BYTES,
            )
        };
        f(body)
    }

    /// # Safety
    /// Nobody writes the slot's body while `f` runs (the protocol above).
    #[inline(always)]
    unsafe fn body<R>(&self, position: u64, f: impl FnOnce(&[u8]) -> R) -> R {
        // SAFETY: as in body_mut; the caller guarantees no concurrent write.
        let body = unsafe {
            std::slice::from_raw_parts(
                self.slot_ptr(position).add(STAMP_BYTES).cast_const(),
                self.slot_bytes - STAMP_BYTES,
            )
        };
        f(body)
    }
}

/// The header of a mapping at least [`HEADER_BYTES`] long and suitably aligned.
#[cfg(not(loom))]
pub(crate) fn header_of(map: &memmap2::MmapRaw) -> Option<&Header> {
    let ptr = map.as_ptr();
    if map.len() < HEADER_BYTES || ptr.align_offset(std::mem::align_of::<Header>()) != 0 {
        return None;
    }
    // SAFETY: in bounds and aligned (checked above); Header is made of atomics only, for which
    // any bit pattern (zeros included) is valid; the borrow of `map` keeps the mapping alive;
    // every access, from either process, goes through the atomics.
    Some(unsafe { &*ptr.cast::<Header>() })
}

/// Under loom the ring lives on the heap, with loom's atomics and cells, so that the model
/// checker sees (and checks) every access of the protocol.
#[cfg(loom)]
#[derive(Debug)]
pub(crate) struct Region {
    header: Header,
    slots: Box<[Slot]>,
}

#[cfg(loom)]
#[derive(Debug)]
struct Slot {
    stamp: AtomicU64,
    body: loom::cell::UnsafeCell<Box<[u8]>>,
}

// SAFETY: the bodies' cells are accessed only through the protocol above, which gives at most
// one side a slot at a time; loom checks exactly that (it reports any concurrent access).
#[cfg(loom)]
unsafe impl Sync for Region {}

#[cfg(loom)]
impl Region {
    pub(crate) fn heap(slots: usize, slot_bytes: usize) -> Result<Region, RegionError> {
        if slots < 2 || !slots.is_power_of_two() {
            return Err(RegionError::Slots);
        }
        if slot_bytes < 2 * STAMP_BYTES || slot_bytes % STAMP_BYTES != 0 {
            return Err(RegionError::SlotBytes);
        }
        let zero = || AtomicU64::new(0);
        let header = Header {
            identity: Identity {
                magic: zero(),
                version: AtomicU32::new(0),
                header_bytes: AtomicU32::new(0),
                slots: zero(),
                slot_bytes: zero(),
            },
            producer: ProducerLine {
                tail: zero(),
                overflow: zero(),
            },
            consumer: ConsumerLine {
                head: zero(),
                pid: AtomicU32::new(0),
            },
        };
        let slots = (0..slots)
            .map(|_| Slot {
                stamp: zero(),
                body: loom::cell::UnsafeCell::new(vec![0; slot_bytes - STAMP_BYTES].into()),
            })
            .collect();
        Ok(Region { header, slots })
    }

    pub(crate) fn header(&self) -> &Header {
        &self.header
    }

    fn slot(&self, position: u64) -> &Slot {
        &self.slots[(position as usize) & (self.slots.len() - 1)]
    }

    fn stamp(&self, position: u64) -> &AtomicU64 {
        &self.slot(position).stamp
    }

    /// # Safety
    /// As the mapped version.
    unsafe fn body_mut<R>(&self, position: u64, f: impl FnOnce(&mut [u8]) -> R) -> R {
        // SAFETY: the caller has exclusive access; loom's cell checks it.
        self.slot(position).body.with_mut(|p| f(unsafe { &mut *p }))
    }

    /// # Safety
    /// As the mapped version.
    unsafe fn body<R>(&self, position: u64, f: impl FnOnce(&[u8]) -> R) -> R {
        // SAFETY: no concurrent writer; loom's cell checks it.
        self.slot(position).body.with(|p| f(unsafe { &*p }))
    }
}

impl Region {
    fn slots(&self) -> u64 {
        #[cfg(not(loom))]
        let slots = self.slots;
        #[cfg(loom)]
        let slots = self.slots.len();
        slots as u64
    }
}

/// The producer's end of the protocol. Exactly one per region (not Clone).
#[derive(Debug)]
pub(crate) struct RawProducer {
    region: Arc<Region>,
    /// The next position to write (this side's copy of `tail`).
    tail: u64,
    /// The consumer's `head` as last read: at most the real one.
    head_cache: u64,
    slots: u64,
}

impl RawProducer {
    /// For a region no other producer writes.
    pub(crate) fn new(region: Arc<Region>) -> RawProducer {
        let header = region.header();
        let tail = header.producer.tail.load(Ordering::Acquire);
        let head_cache = header.consumer.head.load(Ordering::Acquire);
        let slots = region.slots();
        RawProducer {
            region,
            tail,
            head_cache,
            slots,
        }
    }

    pub(crate) fn region(&self) -> &Region {
        &self.region
    }

    /// Calls `f` on the next free slot's body and publishes the slot when `f` returns; `None`
    /// (without calling `f`) if the ring is full. If `f` panics the slot is not published.
    #[inline]
    pub(crate) fn try_write<R>(&mut self, f: impl FnOnce(&mut [u8]) -> R) -> Option<R> {
        let position = self.tail;
        if position.wrapping_sub(self.head_cache) >= self.slots {
            self.head_cache = self.region.header().consumer.head.load(Ordering::Acquire);
            if position.wrapping_sub(self.head_cache) >= self.slots {
                return None;
            }
        }
        // SAFETY: head > position - slots, read with Acquire: the consumer is done with the
        // slot's previous lap (its reads happen before its Release store of head). It reads
        // the slot again only after it sees stamp == position + 1, stored below after `f`.
        let out = unsafe { self.region.body_mut(position, f) };
        let next = position + 1;
        self.region.stamp(position).store(next, Ordering::Release);
        self.tail = next;
        // For observers (backlog); the consumer's hot path never reads it.
        self.region
            .header()
            .producer
            .tail
            .store(next, Ordering::Release);
        Some(out)
    }
}

/// The consumer's end of the protocol. Exactly one per region (not Clone).
#[derive(Debug)]
pub(crate) struct RawConsumer {
    region: Arc<Region>,
    /// The next position to read (this side's copy of `head`).
    head: u64,
    /// The `head` last stored in the header: slots from here to `head` are read and released
    /// by this side, but the producer does not know it yet (it may not write them).
    published: u64,
    /// Store `head` once this many slots are released unpublished (>= 1).
    batch: u64,
}

impl RawConsumer {
    /// For a region no other consumer reads.
    pub(crate) fn new(region: Arc<Region>) -> RawConsumer {
        let head = region.header().consumer.head.load(Ordering::Acquire);
        RawConsumer {
            region,
            head,
            published: head,
            batch: 1,
        }
    }

    /// Publish the read position every `batch` released slots (at least 1), and whenever the
    /// ring is found empty. Until then the producer sees those slots as still in use.
    pub(crate) fn set_batch(&mut self, batch: u64) {
        self.batch = batch.max(1);
        if self.head.wrapping_sub(self.published) >= self.batch {
            self.publish();
        }
    }

    pub(crate) fn batch(&self) -> u64 {
        self.batch
    }

    /// Stores `head` in the header (Release): the producer may now reuse every slot read.
    #[inline]
    pub(crate) fn publish(&mut self) {
        if self.published != self.head {
            self.published = self.head;
            self.region
                .header()
                .consumer
                .head
                .store(self.head, Ordering::Release);
        }
    }

    pub(crate) fn region(&self) -> &Region {
        &self.region
    }

    pub(crate) fn head(&self) -> u64 {
        self.head
    }

    /// If the next slot is published, calls `f` on its body; `f` says whether to release the
    /// slot (`true`) or leave it to be read again. `None` (without calling `f`) if empty.
    #[inline]
    pub(crate) fn try_read<R>(&mut self, f: impl FnOnce(&[u8]) -> (R, bool)) -> Option<R> {
        let position = self.head;
        if self.region.stamp(position).load(Ordering::Acquire) != position + 1 {
            // Nothing to read: hand every slot read back to the producer now.
            self.publish();
            return None;
        }
        // SAFETY: stamp == position + 1 (Acquire) means the producer's writes of this lap
        // happen before these reads; it will not write the slot again before it reads a head
        // above `position`, which this side stores only after `f` returns (in `publish`).
        let (out, release) = unsafe { self.region.body(position, f) };
        if release {
            self.head = position + 1;
            if self.head.wrapping_sub(self.published) >= self.batch {
                self.publish();
            }
        }
        Some(out)
    }
}

/// What fstatfs says about a file's filesystem.
#[cfg(not(loom))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FsInfo {
    pub hugetlbfs: bool,
    pub tmpfs: bool,
    /// The filesystem's block size: the huge page size on hugetlbfs.
    pub block_bytes: u64,
    pub magic: u64,
}

#[cfg(not(loom))]
pub(crate) fn fs_info(file: &std::fs::File) -> std::io::Result<FsInfo> {
    use std::os::fd::AsRawFd;
    // SAFETY: statfs is plain data, valid zeroed; fstatfs writes it for a valid open fd, which
    // `file` keeps open for the call.
    let (rc, st) = unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        (libc::fstatfs(file.as_raw_fd(), &mut st), st)
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // f_type is a signed word holding a 32-bit magic (HUGETLBFS_MAGIC has its top bit set).
    let magic = st.f_type as u64 & 0xffff_ffff;
    Ok(FsInfo {
        hugetlbfs: magic == libc::HUGETLBFS_MAGIC as u64 & 0xffff_ffff,
        tmpfs: magic == libc::TMPFS_MAGIC as u64,
        block_bytes: st.f_bsize as u64,
        magic,
    })
}

/// Reserves the file's blocks so that touching the mapping later cannot fail (SIGBUS) on a full
/// tmpfs or a hugetlbfs without free huge pages. `Ok(false)` if the filesystem cannot.
#[cfg(not(loom))]
pub(crate) fn allocate(file: &std::fs::File, len: u64) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    let len = libc::off_t::try_from(len)
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: a plain syscall on a valid open fd, no memory passed.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len) };
    if rc == 0 {
        return Ok(true);
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EOPNOTSUPP) => Ok(false),
        _ => Err(err),
    }
}

/// Pins the calling thread to one CPU (sched_setaffinity).
#[cfg(not(loom))]
pub fn pin_current_thread(cpu: usize) -> std::io::Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("cpu {cpu} is beyond CPU_SETSIZE"),
        ));
    }
    // SAFETY: cpu_set_t is plain data, valid zeroed; CPU_SET stays in bounds (cpu checked
    // above); sched_setaffinity reads `size_of` bytes of the set, which lives across the call.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
