//! File descriptors: `/dev/null`, non-blocking mode, the child's `dup2` sources, how far the
//! child's close-on-exec loop scans, and fd counts. (The close-on-exec pipe is a platform
//! twin: `linux/fd.rs`, `other/fd.rs`.)

use std::ffi::c_int;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use super::platform;
use super::rlimit::nofile_limit;

/// Cap on the fd-by-fd close-on-exec loop used where `close_range` is unavailable (macOS,
/// other unix systems, Linux before 5.11): one `fcntl` per fd, so a huge `RLIMIT_NOFILE`
/// (some containers set 2^30) must not make every spawn take seconds. Fds above the cap would
/// leak into the child on those systems; they only exist if the program opened that many.
/// Also the whole scan range on Linux when `close_range` works in the parent but fails in the
/// child after all (see [`fd_scan_limit`]).
pub(super) const FD_SCAN_CAP: c_int = 65_536;

/// Opens `/dev/null` read-only and close-on-exec, as the child's stdin (opened in the parent
/// so the child does not call `open`). Open it once and pass it as `SpawnSpec::stdin` to
/// every spawn to save an `open` and a `close` per spawn.
pub(crate) fn open_dev_null() -> io::Result<OwnedFd> {
    // SAFETY: the path is a valid C string literal.
    let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `/dev/null` open for writing: where a pipe's surplus is discarded to (see
/// `discard_from_pipe`).
pub(crate) fn open_null_sink() -> io::Result<OwnedFd> {
    // SAFETY: the path is a valid C string literal.
    let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// One `read(2)` into `out` from a non-blocking fd: the bytes read, 0 when none wait (or at
/// end of file; the next ordinary read tells which). `EINTR` is retried.
pub(crate) fn read_nonblocking(fd: BorrowedFd<'_>, out: &mut [u8]) -> io::Result<usize> {
    // SAFETY: the pointer and length describe `out`; the fd is borrowed for the call.
    nonblocking_count(|| unsafe { libc::read(fd.as_raw_fd(), out.as_mut_ptr().cast(), out.len()) })
}

/// Runs `call` (a system call on a non-blocking fd that returns a byte count or -1) until it
/// is not interrupted: the count, 0 for `EAGAIN`, or the error.
pub(in crate::sys) fn nonblocking_count(mut call: impl FnMut() -> isize) -> io::Result<usize> {
    loop {
        let n = call();
        if n >= 0 {
            return Ok(n.unsigned_abs());
        }
        let err = io::Error::last_os_error();
        match err.kind() {
            io::ErrorKind::Interrupted => {}
            io::ErrorKind::WouldBlock => return Ok(0),
            _ => return Err(err),
        }
    }
}

/// Switches `O_NONBLOCK` on or off for `fd` (it applies to the open file description, so to
/// every duplicate of the fd too).
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>, nonblocking: bool) -> io::Result<()> {
    // SAFETY: fcntl(F_GETFL) on a borrowed, hence open, fd.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    let new = if nonblocking {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    // SAFETY: fcntl(F_SETFL) on a borrowed, hence open, fd.
    if new != flags && unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, new) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// An fd the child may use as a `dup2` source for 0, 1 or 2: never 0, 1 or 2 itself, or an
/// earlier `dup2` could overwrite a later one's source (and `dup2(fd, fd)` would leave `fd`
/// close-on-exec). Open for as long as this value lives.
#[derive(Debug)]
pub(super) enum DupSource<'a> {
    /// The caller's own fd, already >= 3.
    Borrowed(BorrowedFd<'a>),
    /// A close-on-exec fd >= 3 of our own: a copy of a low fd, or one opened for this spawn.
    Owned(OwnedFd),
}

impl<'a> DupSource<'a> {
    /// `fd` itself if it is >= 3; else (the host closed its own stdio, so the caller's fd got
    /// a low number) a close-on-exec copy >= 3, closed when this value is dropped.
    pub(super) fn new(fd: BorrowedFd<'a>) -> io::Result<Self> {
        if fd.as_raw_fd() >= 3 {
            return Ok(DupSource::Borrowed(fd));
        }
        dup_above_stdio(fd).map(DupSource::Owned)
    }

    /// An fd we own, renumbered to 3 or more if it is 0, 1 or 2 (see [`above_stdio`]).
    pub(super) fn owned(fd: OwnedFd) -> io::Result<Self> {
        above_stdio(fd).map(DupSource::Owned)
    }
}

impl AsRawFd for DupSource<'_> {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            DupSource::Borrowed(fd) => fd.as_raw_fd(),
            DupSource::Owned(fd) => fd.as_raw_fd(),
        }
    }
}

/// Returns `fd` if it is >= 3, else a close-on-exec copy >= 3 (and closes the original): for
/// fds of ours that must survive the child's `dup2` onto 0, 1 and 2.
pub(super) fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() >= 3 {
        return Ok(fd);
    }
    dup_above_stdio(fd.as_fd())
}

/// A close-on-exec duplicate of `fd` numbered 3 or more (`F_DUPFD_CLOEXEC`).
fn dup_above_stdio(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) on a borrowed, hence open, fd.
    let copy = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if copy < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(copy) })
}

/// One past the highest fd the child's fallback loop visits (the loop runs only if
/// `close_range(CLOSE_RANGE_CLOEXEC)` fails in the child, or the platform has none).
///
/// Where `close_range` works (probed once per process, see
/// `linux::close_range_cloexec_works`), the fallback should never run and no `getrlimit` is
/// spent per spawn: the limit is then [`FD_SCAN_CAP`], which covers at least as many fds as
/// the soft limit would, so the rare child that falls back anyway (a seccomp filter installed
/// after the probe) is slower, never leakier. Elsewhere: the soft `RLIMIT_NOFILE`, capped at
/// [`FD_SCAN_CAP`], read afresh each spawn. Not cached: the host may raise the limit at any
/// time (our own server does at start, see `raise_fd_limit`), and a stale, lower value would
/// leave the fds above it open in the child. Read in the parent because `getrlimit` in the
/// child would be one more call to audit.
pub(super) fn fd_scan_limit() -> c_int {
    if platform::close_range_cloexec_works() {
        return FD_SCAN_CAP;
    }
    match nofile_limit() {
        Ok(limit) => {
            c_int::try_from(limit.rlim_cur).map_or(FD_SCAN_CAP, |soft| soft.min(FD_SCAN_CAP))
        }
        Err(_) => FD_SCAN_CAP,
    }
}

/// The number of fds this process has open, for tests and diagnostics: the entries of
/// `/proc/self/fd` (Linux) or `/dev/fd` (elsewhere), minus the one fd the listing itself
/// holds open while it is read.
#[cfg_attr(not(test), allow(dead_code))] // for tests and diagnostics
pub(crate) fn open_fd_count() -> io::Result<usize> {
    let mut count = 0usize;
    for entry in std::fs::read_dir(platform::FD_DIR)? {
        entry?;
        count += 1;
    }
    Ok(count.saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use std::fs::File;
    use std::io::Read;

    use super::*;

    #[test]
    fn pipe_cloexec_marks_both_ends() {
        let (read, write) = platform::pipe_cloexec().unwrap();
        for fd in [&read, &write] {
            // SAFETY: F_GETFD on an open fd.
            let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
            assert_eq!(flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
        }
    }

    #[test]
    fn set_nonblocking_makes_an_empty_read_would_block() {
        let (read, _write) = platform::pipe_cloexec().unwrap();
        set_nonblocking(read.as_fd(), true).unwrap();
        let mut file = File::from(read);
        let err = file.read(&mut [0u8; 8]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        set_nonblocking(file.as_fd(), false).unwrap();
        // SAFETY: F_GETFL on an open fd.
        let flags = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETFL) };
        assert_eq!(flags & libc::O_NONBLOCK, 0);
    }

    #[test]
    fn open_fd_count_sees_our_fds() {
        let (_read, _write) = platform::pipe_cloexec().unwrap();
        assert!(open_fd_count().unwrap() >= 2);
    }

    #[test]
    fn dup_sources_are_never_stdio_and_keep_high_fds_as_they_are() {
        let (read, _write) = platform::pipe_cloexec().unwrap();
        let high = read.as_raw_fd();
        assert!(high >= 3);
        let source = DupSource::new(read.as_fd()).unwrap();
        assert!(matches!(source, DupSource::Borrowed(_)));
        assert_eq!(source.as_raw_fd(), high);
        // Fd 2 (the test's stderr) gets a close-on-exec copy above it.
        let stderr = std::io::stderr();
        let copy = DupSource::new(stderr.as_fd()).unwrap();
        assert!(matches!(copy, DupSource::Owned(_)));
        assert!(copy.as_raw_fd() >= 3);
        // SAFETY: F_GETFD on an fd the copy owns.
        let flags = unsafe { libc::fcntl(copy.as_raw_fd(), libc::F_GETFD) };
        assert_eq!(flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
    }
}
