//! Waiting for one specific child: reap it if it has exited, or block until it has without
//! reaping it. Never `waitpid(-1)`: the embedding program owns its other children.

use std::ffi::c_int;
use std::io;
use std::os::fd::BorrowedFd;

use super::child::errno;
use super::pid::to_pid_t;
use super::platform;

/// Outcome of a non-blocking reap of one specific child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WaitOutcome {
    /// It has not exited yet.
    Running,
    /// It exited with this code (0..=255).
    Exited(i32),
    /// It was killed by this signal.
    Signaled(c_int),
    /// `ECHILD`: it is not (or no longer) our child to wait for: someone else reaped it, or
    /// the host ignores SIGCHLD so it reaped itself. It has exited; the status is lost.
    Unknown,
}

/// Reaps the given child if it has exited, without blocking.
///
/// Linux with a pidfd: `waitid(P_PIDFD, pidfd, WEXITED | WNOHANG)` (5.4+; `EINVAL` before,
/// then the pid is used). Otherwise `waitid(P_PID, pid, WEXITED | WNOHANG)`. Never
/// `waitpid(-1)`: the embedding program owns its other children. `ECHILD` gives
/// [`WaitOutcome::Unknown`]. Call it once per exit: after a successful reap the pid is free
/// for reuse. A `pid` of 0 or above `i32::MAX` is refused with `EINVAL` (when the pidfd does
/// not answer first).
pub(crate) fn try_reap(pid: u32, pidfd: Option<BorrowedFd<'_>>) -> io::Result<WaitOutcome> {
    let flags = libc::WEXITED | libc::WNOHANG;
    if let Some(pidfd) = pidfd
        && let Some(outcome) = platform::try_reap_via_pidfd(pidfd, flags)
    {
        return outcome;
    }
    waitid(libc::P_PID, pid_as_id(pid)?, flags)
}

/// Blocks until the child has exited, without reaping it (`waitid(P_PID, pid, WEXITED |
/// WNOWAIT)`), retrying on `EINTR`.
///
/// Used by a per-child waiter thread on unix systems without pidfds: the zombie stays, so its
/// pid (and process group id) stays pinned until the reaper reaps it under its own lock.
/// `ECHILD` returns `Ok(())` as well (exited, status unknown; [`try_reap`] then says
/// [`WaitOutcome::Unknown`]). A `pid` of 0 or above `i32::MAX` is refused with `EINVAL`.
pub(crate) fn wait_exit_no_reap(pid: u32) -> io::Result<()> {
    waitid(libc::P_PID, pid_as_id(pid)?, libc::WEXITED | libc::WNOWAIT).map(|_| ())
}

/// A pid as the `id_t` waitid wants; pids that are not positive `pid_t`s are refused with
/// `EINVAL` (0 and what would be negative mean "any child" to other wait calls, which this
/// layer never does).
fn pid_as_id(pid: u32) -> io::Result<libc::id_t> {
    match libc::id_t::try_from(to_pid_t(pid)?) {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(io::Error::from_raw_os_error(libc::EINVAL)),
    }
}

/// `waitid` for one child, retried on `EINTR`, decoded into a [`WaitOutcome`].
pub(super) fn waitid(
    idtype: libc::idtype_t,
    id: libc::id_t,
    flags: c_int,
) -> io::Result<WaitOutcome> {
    loop {
        // SAFETY: siginfo_t is a plain C struct for which all-zero is valid; zeroing is also
        // how WNOHANG's "nothing yet" is told apart (si_pid stays 0).
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid writes into the siginfo_t we pass; idtype is P_PID or P_PIDFD.
        if unsafe { libc::waitid(idtype, id, &mut info, flags) } != 0 {
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::ECHILD) => return Ok(WaitOutcome::Unknown),
                _ => return Err(err),
            }
        }
        // SAFETY: after a successful waitid for a child, the si_pid and si_status members of
        // the union are the ones the kernel filled in (or left zero).
        let (child, status) = unsafe { (info.si_pid(), info.si_status()) };
        if child == 0 {
            return Ok(WaitOutcome::Running);
        }
        return Ok(match info.si_code {
            libc::CLD_EXITED => WaitOutcome::Exited(status),
            libc::CLD_KILLED | libc::CLD_DUMPED => WaitOutcome::Signaled(status),
            _ => WaitOutcome::Unknown,
        });
    }
}

/// Reaps `pid`, blocking until it has exited; used only for a child that failed before or at
/// `execve` and has therefore already called `_exit` (or been sent SIGKILL). `ECHILD` (the
/// host ignores SIGCHLD, so the child reaped itself) is fine.
pub(super) fn reap_blocking(pid: libc::pid_t) {
    loop {
        let mut status = 0;
        // SAFETY: waitpid on one specific pid of ours; `status` is a valid out-pointer.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc >= 0 || errno() != libc::EINTR {
            return;
        }
    }
}
