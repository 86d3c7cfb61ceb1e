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

/// Turns `ZMQ_XPUB_NODROP` on or off on an XPUB socket (the zmq crate has no setter for it).
/// On, a send that would overflow any subscriber's queue (its high-water mark) fails with
/// EAGAIN instead of dropping the message for that subscriber without a word.
pub fn set_xpub_nodrop(socket: &mut zmq::Socket, on: bool) -> Result<(), zmq::Error> {
    let value: libc::c_int = libc::c_int::from(on);
    // SAFETY: the socket pointer is valid for the socket's lifetime (we hold `&mut`), and
    // ZMQ_XPUB_NODROP reads exactly one int from the pointer and size given.
    let rc = unsafe {
        zmq_sys::zmq_setsockopt(
            socket.as_mut_ptr(),
            zmq_sys::ZMQ_XPUB_NODROP as libc::c_int,
            std::ptr::addr_of!(value).cast(),
            std::mem::size_of::<libc::c_int>(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        // SAFETY: zmq_errno only reads the calling thread's errno.
        Err(zmq::Error::from_raw(unsafe { zmq_sys::zmq_errno() }))
    }
}
