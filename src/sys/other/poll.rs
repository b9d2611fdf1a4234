//! The waker on other unix systems: a nonblocking, close-on-exec pipe.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::fd::pipe_cloexec;
use crate::sys::fd::set_nonblocking;

/// What `Waker::wake` writes: one byte into the pipe.
pub(in crate::sys) const WAKE_TOKEN: [u8; 1] = [1];

/// The waker's fds: the two ends of a pipe.
#[derive(Debug)]
pub(in crate::sys) struct WakeFds {
    /// Read end of the pipe (polled and drained).
    read: OwnedFd,
    /// Write end of the pipe (written by `wake`).
    write: OwnedFd,
}

impl WakeFds {
    /// A nonblocking close-on-exec pipe, empty.
    pub(in crate::sys) fn new() -> io::Result<Self> {
        let (read, write) = pipe_cloexec()?;
        set_nonblocking(read.as_fd(), true)?;
        set_nonblocking(write.as_fd(), true)?;
        Ok(WakeFds { read, write })
    }

    /// The end to poll and drain.
    pub(in crate::sys) fn poll_end(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }

    /// The end to write [`WAKE_TOKEN`] to.
    pub(in crate::sys) fn write_end(&self) -> BorrowedFd<'_> {
        self.write.as_fd()
    }
}
