//! No pidfds on other unix systems: a child is waited for by pid (a waiter thread per child
//! blocks in `waitid(WNOWAIT)`), and its group is signalled with `killpg` only while the number
//! is known to be safe. Every function here answers "not available".

use std::ffi::c_int;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};

use crate::sys::wait::WaitOutcome;

/// No pidfd for a forked child here: always `None`.
pub(in crate::sys) fn pidfd_after_fork(_pid: libc::pid_t) -> Option<OwnedFd> {
    None
}

/// No group signal through a pidfd here: always `None`, and the caller uses `killpg` if the
/// number is safe.
pub(in crate::sys) fn signal_group_via_pidfd(
    _pidfd: BorrowedFd<'_>,
    _sig: c_int,
    _by_number_ok: bool,
) -> Option<io::Result<()>> {
    None
}

/// No reap through a pidfd here: always `None`, and the caller waits by pid.
pub(in crate::sys) fn try_reap_via_pidfd(
    _pidfd: BorrowedFd<'_>,
    _flags: c_int,
) -> Option<io::Result<WaitOutcome>> {
    None
}
