//! The one system call the engine makes without a safe wrapper: `mlockall`.
#![allow(unsafe_code)]

/// Locks every current and future page of the process in RAM (no page faults on the hot
/// path). Needs `LimitMEMLOCK=infinity` (the systemd unit sets it) or CAP_IPC_LOCK.
pub fn mlockall() -> std::io::Result<()> {
    // SAFETY: mlockall takes flags only and touches no memory of ours.
    let rc = unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
