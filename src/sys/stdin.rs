//! Writing a child's input: [`write_input`] (a non-blocking write that never raises SIGPIPE in
//! the host) and [`unread_bytes`] (what sits in a pipe that the reader has not read yet).

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr;

/// Writes what it can of `bytes` to `fd` (a pipe's write end or a terminal's master, in
/// non-blocking mode) and returns how many bytes went. `EINTR` is retried; `WouldBlock` means
/// the reader is behind.
///
/// A write to a pipe whose reader has gone fails with `EPIPE` and would also raise SIGPIPE,
/// whose default action ends the whole host program (an embedding program need not ignore it
/// as Rust binaries do). So SIGPIPE is blocked in this thread around the write, and a SIGPIPE
/// the write itself left pending is taken back with `sigwait` before the mask is restored.
pub(crate) fn write_input(fd: BorrowedFd<'_>, bytes: &[u8]) -> io::Result<usize> {
    let pipe_only = sigset_of(libc::SIGPIPE);
    let mut previous = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: pthread_sigmask reads the set we pass and writes the previous mask.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &pipe_only, previous.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    // SAFETY: pthread_sigmask succeeded and wrote the previous mask.
    let previous = unsafe { previous.assume_init() };
    let was_pending = sigpipe_pending();
    let result = loop {
        // SAFETY: the pointer and length describe `bytes`; the fd is borrowed, hence open.
        let n = unsafe { libc::write(fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len()) };
        if n >= 0 {
            break Ok(n.unsigned_abs());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            break Err(err);
        }
    };
    if matches!(&result, Err(e) if e.raw_os_error() == Some(libc::EPIPE))
        && !was_pending
        && sigpipe_pending()
    {
        let mut taken: libc::c_int = 0;
        // SAFETY: SIGPIPE is blocked and pending for this thread, so sigwait returns at once
        // with it; both pointers are valid.
        unsafe { libc::sigwait(&pipe_only, &mut taken) };
    }
    // SAFETY: restores the mask pthread_sigmask returned above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &previous, ptr::null_mut()) };
    result
}

/// Bytes written into the pipe of `fd` (either end) that its reader has not read yet
/// (`FIONREAD`; on Linux it answers on the write end too).
pub(crate) fn unread_bytes(fd: BorrowedFd<'_>) -> io::Result<usize> {
    let mut count: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int to the pointer we pass.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut count) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(usize::try_from(count).unwrap_or(0))
}

fn sigset_of(sig: libc::c_int) -> libc::sigset_t {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the set; sigaddset adds a valid signal number to it.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        libc::sigaddset(set.as_mut_ptr(), sig);
        set.assume_init()
    }
}

/// Whether SIGPIPE is pending for this thread or the process.
fn sigpipe_pending() -> bool {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigpending fills the set we pass; sigismember reads it.
    unsafe {
        if libc::sigpending(set.as_mut_ptr()) != 0 {
            return false;
        }
        libc::sigismember(set.as_ptr(), libc::SIGPIPE) == 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn unread_bytes_on_the_write_end_counts_what_the_reader_has_not_read() {
        let (read, write) = crate::sys::pipe_cloexec().expect("pipe");
        assert_eq!(unread_bytes(write.as_fd()).expect("fionread"), 0);
        assert_eq!(write_input(write.as_fd(), b"hello").expect("write"), 5);
        assert_eq!(unread_bytes(write.as_fd()).expect("fionread"), 5);
        let mut buf = [0u8; 2];
        // SAFETY: reads into our own buffer.
        let n = unsafe { libc::read(read.as_raw_fd(), buf.as_mut_ptr().cast(), 2) };
        assert_eq!(n, 2);
        assert_eq!(unread_bytes(write.as_fd()).expect("fionread"), 3);
    }

    #[test]
    fn a_write_to_a_pipe_without_reader_fails_without_raising_sigpipe() {
        let (read, write) = crate::sys::pipe_cloexec().expect("pipe");
        drop(read);
        let err = write_input(write.as_fd(), b"x").expect_err("no reader");
        assert_eq!(err.raw_os_error(), Some(libc::EPIPE));
        assert!(!sigpipe_pending(), "the SIGPIPE was taken back");
    }
}
