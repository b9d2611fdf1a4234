//! The fd primitives of other unix systems: a pipe made close-on-exec after the fact, no
//! `close_range`, and `/dev/fd`.

use std::ffi::c_int;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// The directory listing this process's open fds, one entry each.
pub(in crate::sys) const FD_DIR: &str = "/dev/fd";

/// A pipe whose two ends are close-on-exec: `(read, write)`.
///
/// Other unix systems: `pipe` then `fcntl(FD_CLOEXEC)` on each end; a `fork` in another
/// thread between the two calls would leak the ends into that child (our own `spawn` is
/// immune: it marks every fd >= 3 close-on-exec in the child).
pub(crate) fn pipe_cloexec() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds: [c_int; 2] = [-1, -1];
    // SAFETY: pipe writes two fds into the array we pass.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned these two fds to us; nothing else owns them.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    for fd in [&read, &write] {
        set_cloexec(fd.as_fd())?;
    }
    Ok((read, write))
}

/// Sets `FD_CLOEXEC` on `fd`.
fn set_cloexec(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: fcntl(F_SETFD) on a borrowed, hence open, fd.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// No `close_range` here: always `false`, so the child's fd-by-fd loop is bounded by the soft
/// `RLIMIT_NOFILE`.
pub(in crate::sys) fn close_range_cloexec_works() -> bool {
    false
}

/// Other unix systems have no `splice`: nothing is discarded (the caller reads instead).
pub(crate) fn discard_from_pipe(
    _pipe: BorrowedFd<'_>,
    _null: BorrowedFd<'_>,
    _len: usize,
) -> io::Result<usize> {
    Ok(0)
}

/// Other unix systems cannot resize a pipe: it keeps the capacity it has.
pub(crate) fn set_pipe_capacity(_fd: BorrowedFd<'_>, _bytes: usize) -> io::Result<usize> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}
