//! The ring's errors: one enum for creating and opening, two small ones for pushing.

use std::path::PathBuf;

use crate::Backing;

/// Creating, opening or attaching to a ring failed.
#[derive(Debug, thiserror::Error)]
pub enum RingError {
    /// A size given to `create` (or `in_memory`) breaks a rule.
    #[error("ring {field} = {value}: {rule}")]
    Size {
        field: &'static str,
        value: u64,
        rule: &'static str,
    },
    /// A system call on the ring's file failed.
    #[error("ring {path}: {op}: {source}", path = .path.display())]
    Io {
        path: PathBuf,
        op: &'static str,
        source: std::io::Error,
    },
    /// `open` found a header field it does not accept.
    #[error("ring {path}: header field `{field}` is {found}, expected {expected}", path = .path.display())]
    Header {
        path: PathBuf,
        field: &'static str,
        found: String,
        expected: String,
    },
    /// `create_on` found the directory on another filesystem than the backing asks for.
    #[error("ring {path}: backing `{expected}` wants a {expected} filesystem, found filesystem magic {found:#x}", path = .path.display(), expected = .expected.as_str())]
    Backing {
        path: PathBuf,
        expected: Backing,
        found: u64,
    },
    /// Another live process (or this one) already consumes the ring.
    #[error("ring {path}: a consumer is already attached (pid {pid})", path = .path.display())]
    Attached { path: PathBuf, pid: u32 },
}

/// The ring is full: nothing was written, the message is still the caller's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("ring full")]
pub struct Full;

/// `try_push` refused the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    #[error("ring full")]
    Full,
    /// Longer than a slot's payload: the caller splits its messages.
    #[error("message of {len} bytes is longer than a slot's {capacity}-byte payload")]
    TooLong { len: usize, capacity: usize },
}

impl From<Full> for PushError {
    fn from(_: Full) -> PushError {
        PushError::Full
    }
}
