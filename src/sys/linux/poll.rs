//! Linux's waker: one eventfd (`EFD_CLOEXEC | EFD_NONBLOCK`), one fd and an 8-byte counter
//! instead of a pipe's two fds and buffer.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};

/// What `Waker::wake` writes: an eventfd takes exactly one 8-byte counter increment.
pub(in crate::sys) const WAKE_TOKEN: [u8; 8] = 1u64.to_ne_bytes();

/// The waker's fds: an eventfd is both the end to poll and the end to write.
#[derive(Debug)]
pub(in crate::sys) struct WakeFds {
    /// The eventfd, nonblocking, with a zero counter to begin with.
    fd: OwnedFd,
}

impl WakeFds {
    /// A nonblocking, close-on-exec eventfd with a zero counter.
    pub(in crate::sys) fn new() -> io::Result<Self> {
        // SAFETY: eventfd takes integers only.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel just returned this fd to us; nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(WakeFds { fd })
    }

    /// The end to poll and drain.
    pub(in crate::sys) fn poll_end(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The end to write [`WAKE_TOKEN`] to.
    pub(in crate::sys) fn write_end(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
