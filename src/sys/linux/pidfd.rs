//! pidfds (Linux 5.1+): an fd that names one process, readable once it has exited, that can
//! be waited on and signalled without the risk of a reused pid, and (Linux 6.9+) that names
//! its process group too, even after the leader has been reaped.

use std::ffi::{c_int, c_uint};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr;

use crate::sys::wait::{WaitOutcome, waitid};

/// `PIDFD_SIGNAL_PROCESS_GROUP` from `<linux/pidfd.h>` (Linux 6.9+): makes
/// `pidfd_send_signal` deliver to the whole process group whose leader the pidfd names.
///
/// Defined here rather than taken from `libc` because only recent `libc` 0.2 releases export
/// it and `Cargo.toml` accepts any 0.2. The value is kernel ABI and cannot change.
pub(in crate::sys) const PIDFD_SIGNAL_PROCESS_GROUP: c_uint = 1 << 2;

/// A pidfd for a child just created with `fork`, or `None` (logged at debug level) where the
/// kernel has none (`pidfd_open` needs Linux 5.3+).
///
/// The pidfd is opened by pid right after the fork, so it cannot come atomically with the
/// child as it does with `CLONE_PIDFD`: should the host ignore SIGCHLD (children then reap
/// themselves) and the child exit and its pid be reused within that window, the pidfd would
/// name another process.
pub(in crate::sys) fn pidfd_after_fork(pid: libc::pid_t) -> Option<OwnedFd> {
    match pidfd_open(pid) {
        Ok(fd) => Some(fd),
        Err(err) => {
            log::debug!("pidfd_open({pid}) failed: {err}; going on without a pidfd");
            None
        }
    }
}

/// Opens a pidfd for `pid` (`pidfd_open(2)`, Linux 5.3+), close-on-exec by definition.
/// `ENOSYS` on older kernels, `ESRCH` when no process has that pid.
pub(in crate::sys) fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes two integers and touches no memory of ours.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0 as c_uint) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = c_int::try_from(fd).map_err(|_| io::Error::other("pidfd_open returned a bad fd"))?;
    // SAFETY: the kernel just returned this fd to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `pidfd_send_signal(pidfd, sig, NULL, flags)` (Linux 5.1+; the `flags` other than 0 need
/// Linux 6.9+ and fail with `EINVAL` before).
pub(in crate::sys) fn pidfd_send_signal(
    pidfd: BorrowedFd<'_>,
    sig: c_int,
    flags: c_uint,
) -> io::Result<()> {
    // SAFETY: a NULL siginfo is documented as "like kill(2)"; the fd is borrowed and therefore
    // open for the duration of the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            ptr::null::<libc::siginfo_t>(),
            flags,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The group signal through the leader's pidfd (see `signal::signal_group`):
/// `pidfd_send_signal(pidfd, sig, NULL, PIDFD_SIGNAL_PROCESS_GROUP)`. It names the group's
/// kernel object rather than its number, so it stays right after the leader has been reaped
/// while other members live on, and fails with `ESRCH` once the group is empty.
///
/// `Some(result)` is the answer; `None` when this kernel cannot (`EINVAL` before 6.9, or
/// `ENOSYS`): the caller then falls back to `killpg` if `by_number_ok` (only logged here).
pub(in crate::sys) fn signal_group_via_pidfd(
    pidfd: BorrowedFd<'_>,
    sig: c_int,
    by_number_ok: bool,
) -> Option<io::Result<()>> {
    match pidfd_send_signal(pidfd, sig, PIDFD_SIGNAL_PROCESS_GROUP) {
        Ok(()) => Some(Ok(())),
        Err(err) if matches!(err.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) => {
            log::debug!(
                "pidfd_send_signal(PIDFD_SIGNAL_PROCESS_GROUP) failed: {err}; \
                 killpg allowed: {by_number_ok}"
            );
            None
        }
        Err(err) => Some(Err(err)),
    }
}

/// The reap through the pidfd (see `wait::try_reap`): `waitid(P_PIDFD, pidfd, flags)`
/// (Linux 5.4+). `None` when this kernel cannot (`EINVAL` before 5.4): the caller then waits
/// by pid.
pub(in crate::sys) fn try_reap_via_pidfd(
    pidfd: BorrowedFd<'_>,
    flags: c_int,
) -> Option<io::Result<WaitOutcome>> {
    let id = libc::id_t::try_from(pidfd.as_raw_fd()).unwrap_or(libc::id_t::MAX);
    match waitid(libc::P_PIDFD, id, flags) {
        Err(err) if err.raw_os_error() == Some(libc::EINVAL) => None,
        other => Some(other),
    }
}
