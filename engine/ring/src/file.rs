//! Ring files: `create` (a temporary file, its blocks reserved, the header written, renamed
//! into place) and `open` (the header checked field by field, then the consumer attached).

use std::fs::{self, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use memmap2::MmapOptions;

use crate::raw::{self, RawConsumer, RawProducer, Region, HEADER_BYTES};
use crate::{
    check_sizes, region_error, write_identity, Backing, Consumer, ConsumerFile, Producer,
    ProducerFile, RingError, MAGIC, VERSION,
};

fn io_error<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(std::io::Error) -> RingError + 'a {
    move |source| RingError::Io {
        path: path.to_owned(),
        op,
        source,
    }
}

/// Removes the temporary file unless the ring made it to its final name.
struct Temporary<'a>(Option<&'a Path>);

impl Drop for Temporary<'_> {
    fn drop(&mut self) {
        if let Some(path) = self.0 {
            let _ = fs::remove_file(path);
        }
    }
}

pub(crate) fn create(
    path: &Path,
    slots: u64,
    slot_bytes: u64,
    backing: Option<Backing>,
) -> Result<Producer, RingError> {
    let (slots, slot_bytes) = check_sizes(slots, slot_bytes)?;
    let name = path.file_name().ok_or_else(|| RingError::Io {
        path: path.to_owned(),
        op: "create",
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "no file name"),
    })?;
    let dir = path.parent().unwrap_or(Path::new(""));
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    // Left by a crashed earlier process with this pid, or a failed create: never mapped.
    let _ = fs::remove_file(&tmp);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_error(path, "create"))?;
    let mut guard = Temporary(Some(&tmp));

    let fs_info = raw::fs_info(&file).map_err(io_error(path, "statfs"))?;
    let found = if fs_info.hugetlbfs {
        Some(Backing::Hugetlbfs)
    } else if fs_info.tmpfs {
        Some(Backing::Shm)
    } else {
        None
    };
    if let Some(expected) = backing {
        if found != Some(expected) {
            return Err(RingError::Backing {
                path: path.to_owned(),
                expected,
                found: fs_info.magic,
            });
        }
    }
    let mut len = (HEADER_BYTES + slots * slot_bytes) as u64;
    if fs_info.hugetlbfs && fs_info.block_bytes > 0 {
        len = len.div_ceil(fs_info.block_bytes) * fs_info.block_bytes;
    }
    if !raw::allocate(&file, len).map_err(io_error(path, "allocate"))? {
        file.set_len(len).map_err(io_error(path, "set length"))?;
    }
    let map_len = usize::try_from(len).map_err(|_| RingError::Size {
        field: "slots",
        value: slots as u64,
        rule: "the ring does not fit the address space",
    })?;
    let map = MmapOptions::new()
        .len(map_len)
        .populate()
        .map_raw(&file)
        .map_err(io_error(path, "map"))?;
    let region =
        Region::new(map, slots, slot_bytes).map_err(|e| region_error(e, slots, slot_bytes))?;
    write_identity(&region, slots, slot_bytes);
    fs::rename(&tmp, path).map_err(io_error(path, "rename"))?;
    guard.0 = None;

    let file = ProducerFile {
        path: path.to_owned(),
        backing: found,
    };
    Ok(Producer::new(
        RawProducer::new(Arc::new(region)),
        Some(file),
    ))
}

pub(crate) fn open(path: &Path) -> Result<Consumer, RingError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_error(path, "open"))?;
    let meta = file.metadata().map_err(io_error(path, "stat"))?;
    let refuse = |field: &'static str, found: String, expected: String| RingError::Header {
        path: path.to_owned(),
        field,
        found,
        expected,
    };
    let len = meta.len();
    if len < HEADER_BYTES as u64 {
        return Err(refuse(
            "file length",
            len.to_string(),
            format!("at least the {HEADER_BYTES}-byte header"),
        ));
    }
    let map_len = usize::try_from(len).map_err(|_| {
        refuse(
            "file length",
            len.to_string(),
            "one that fits the address space".into(),
        )
    })?;
    let map = MmapOptions::new()
        .len(map_len)
        .populate()
        .map_raw(&file)
        .map_err(io_error(path, "map"))?;
    let header = raw::header_of(&map).ok_or_else(|| {
        refuse(
            "file length",
            len.to_string(),
            "a page-aligned mapping".into(),
        )
    })?;

    let id = &header.identity;
    // Acquire: the creator stores magic last, so the other fields are complete once it is seen.
    let magic = id.magic.load(Ordering::Acquire);
    if magic != MAGIC {
        return Err(refuse(
            "magic",
            format!("{magic:#018x}"),
            format!("{MAGIC:#018x} (a py_rt ring, fully created)"),
        ));
    }
    let version = id.version.load(Ordering::Relaxed);
    if version != VERSION {
        return Err(refuse("version", version.to_string(), VERSION.to_string()));
    }
    let header_bytes = id.header_bytes.load(Ordering::Relaxed);
    if header_bytes as usize != HEADER_BYTES {
        return Err(refuse(
            "header_bytes",
            header_bytes.to_string(),
            HEADER_BYTES.to_string(),
        ));
    }
    let (slots, slot_bytes) = check_sizes(
        id.slots.load(Ordering::Relaxed),
        id.slot_bytes.load(Ordering::Relaxed),
    )
    .map_err(|e| match e {
        RingError::Size { field, value, rule } => refuse(field, value.to_string(), rule.into()),
        other => other,
    })?;
    let needed = (HEADER_BYTES + slots * slot_bytes) as u64;
    if len < needed {
        return Err(refuse(
            "file length",
            len.to_string(),
            format!("at least {needed} ({slots} slots of {slot_bytes} bytes after the header)"),
        ));
    }
    let region =
        Region::new(map, slots, slot_bytes).map_err(|e| region_error(e, slots, slot_bytes))?;
    let pid = attach(&region, path)?;
    let file = ConsumerFile {
        path: path.to_owned(),
        id: (meta.dev(), meta.ino()),
        pid,
    };
    Ok(Consumer::new(
        RawConsumer::new(Arc::new(region)),
        Some(file),
    ))
}

/// Claims the header's consumer pid for this process: refused while a live process holds it.
fn attach(region: &Region, path: &Path) -> Result<u32, RingError> {
    let me = std::process::id();
    let slot = &region.header().consumer.pid;
    let mut holder = slot.load(Ordering::Acquire);
    loop {
        if holder != 0 && (holder == me || alive(holder)) {
            return Err(RingError::Attached {
                path: path.to_owned(),
                pid: holder,
            });
        }
        // Acquire: a previous consumer's last head store happens before its detach (Release).
        match slot.compare_exchange(holder, me, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return Ok(me),
            Err(now) => holder = now,
        }
    }
}

/// Whether `pid` is a running (not zombie) process in this pid namespace.
fn alive(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // "pid (comm) S ...": the state follows the last ')' (comm may hold one).
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next());
    !matches!(state, Some("Z" | "X" | "x"))
}

/// (device, inode) of the file at `path`.
pub(crate) fn file_id(path: &Path) -> std::io::Result<(u64, u64)> {
    let meta = fs::metadata(path)?;
    Ok((meta.dev(), meta.ino()))
}
