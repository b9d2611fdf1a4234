//! Linux's fd primitives: an atomic close-on-exec pipe, the `close_range` probe,
//! `/proc/self/fd`, discarding from a pipe without a copy (`splice` to `/dev/null`) and the
//! pipe's capacity.

use std::ffi::{c_int, c_uint};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU8, Ordering};

use super::child::close_range_cloexec;

/// The directory listing this process's open fds, one entry each.
pub(in crate::sys) const FD_DIR: &str = "/proc/self/fd";

/// Whether `close_range(CLOSE_RANGE_CLOEXEC)` works in this process, probed once:
/// 0 not yet known, 1 yes, 2 no.
static CLOSE_RANGE_CLOEXEC: AtomicU8 = AtomicU8::new(0);

/// A pipe whose two ends are close-on-exec: `(read, write)`.
///
/// Linux: `pipe2(O_CLOEXEC)`, atomic: no `fork` in another thread can catch the ends
/// inheritable.
pub(crate) fn pipe_cloexec() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds: [c_int; 2] = [-1, -1];
    // SAFETY: pipe2 writes two fds into the array we pass.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned these two fds to us; nothing else owns them.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Does `close_range(CLOSE_RANGE_CLOEXEC)` work here (Linux 5.11+, and no seccomp filter
/// refusing it)? Probed once per process, in the parent, with a call that marks nothing:
/// `close_range(~0U, ~0U, CLOSE_RANGE_CLOEXEC)` (no fd can be numbered `~0U`; the kernel
/// clamps the range to the fd table and finds it empty). Older kernels answer `EINVAL`
/// (unknown flag, 5.9 and 5.10) or `ENOSYS`.
///
/// Only a hint for the parent (it decides whether the child's fallback needs an
/// `RLIMIT_NOFILE` read): the child still makes the real call and falls back on its own
/// should it fail after all (say, a per-thread seccomp filter installed after the probe).
pub(in crate::sys) fn close_range_cloexec_works() -> bool {
    match CLOSE_RANGE_CLOEXEC.load(Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => {
            let works = close_range_cloexec(c_uint::MAX) == 0;
            // Racing probes all store the same answer.
            CLOSE_RANGE_CLOEXEC.store(if works { 1 } else { 2 }, Ordering::Relaxed);
            works
        }
    }
}

/// Discards up to `len` bytes from the pipe `pipe` without copying them to user space:
/// `splice` into `null` (an fd open for writing on `/dev/null`, whose splice only releases the
/// pipe's pages), non-blocking. Returns how many bytes went; 0 when the pipe was empty.
pub(crate) fn discard_from_pipe(
    pipe: BorrowedFd<'_>,
    null: BorrowedFd<'_>,
    len: usize,
) -> io::Result<usize> {
    // SAFETY: splice takes two fds we borrow, null offsets (both are streams here: a pipe and
    // a character device), a length and flags; it touches no memory of ours.
    crate::sys::fd::nonblocking_count(|| unsafe {
        libc::splice(
            pipe.as_raw_fd(),
            std::ptr::null_mut(),
            null.as_raw_fd(),
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_NONBLOCK,
        )
    })
}

/// Sets the capacity of the pipe `fd` to at least `bytes` (`F_SETPIPE_SZ`; the kernel rounds
/// up to a power of two pages and refuses more than `/proc/sys/fs/pipe-max-size` to
/// unprivileged processes). Returns the capacity now in effect.
pub(crate) fn set_pipe_capacity(fd: BorrowedFd<'_>, bytes: usize) -> io::Result<usize> {
    let wanted = c_int::try_from(bytes).unwrap_or(c_int::MAX);
    // SAFETY: fcntl(F_SETPIPE_SZ) takes an int argument and touches no memory of ours.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, wanted) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc.unsigned_abs() as usize)
}
