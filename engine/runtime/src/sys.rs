//! The system calls the engine makes without a safe wrapper: `mlockall`, the timer slack.
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

/// Sets the calling thread's timer slack (how late the kernel may wake a sleep), in ns.
pub fn set_timer_slack_ns(ns: u64) -> std::io::Result<()> {
    // SAFETY: PR_SET_TIMERSLACK takes a plain integer and touches no memory of ours.
    let rc = unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, ns as libc::c_ulong, 0, 0, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
