//! Waiting for fds to become readable: [`poll_readable`], and the [`Waker`] that lets any
//! thread interrupt such a wait.

use std::ffi::c_int;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::{Duration, Instant};

use super::platform;

/// `poll(2)` on `fds` for readability, with a timeout (`None` waits forever).
///
/// On return `ready` holds the indices (into `fds`) of the fds that are readable or have hung
/// up or failed (`POLLIN`, `POLLHUP`, `POLLERR`, `POLLNVAL`: in each case a `read` will not
/// block and will tell what happened); it is empty on timeout. `EINTR` is retried with the
/// time that remains. Timeouts are rounded up to whole milliseconds, so this never returns
/// before the timeout has fully passed.
pub(crate) fn poll_readable(
    fds: &[BorrowedFd<'_>],
    timeout: Option<Duration>,
    ready: &mut Vec<usize>,
) -> io::Result<()> {
    let fds: Vec<(BorrowedFd<'_>, Interest)> = fds.iter().map(|fd| (*fd, Interest::Read)).collect();
    poll_fds(&fds, timeout, ready)
}

/// What [`poll_fds`] waits for on one fd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Interest {
    /// Readable (`POLLIN`).
    Read,
    /// Writable (`POLLOUT`): a pipe or terminal with room for more input.
    Write,
    /// A priority event (`POLLPRI`): a kernel file that notifies changes (a cgroup's
    /// `cgroup.events`), reported once it changed since it was last read.
    Priority,
}

/// As [`poll_readable`], with each fd's own interest: an fd waited on for writing is ready
/// when it has room, or has hung up or failed (a `write` then tells what happened).
pub(crate) fn poll_fds(
    fds: &[(BorrowedFd<'_>, Interest)],
    timeout: Option<Duration>,
    ready: &mut Vec<usize>,
) -> io::Result<()> {
    ready.clear();
    let mut pollfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|(fd, interest)| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: match interest {
                Interest::Read => libc::POLLIN,
                Interest::Write => libc::POLLOUT,
                Interest::Priority => libc::POLLPRI,
            },
            revents: 0,
        })
        .collect();
    let count = libc::nfds_t::try_from(pollfds.len())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // A timeout too large for an Instant is as good as none.
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    loop {
        let timeout_ms = deadline.map_or(-1, millis_until);
        // SAFETY: `pollfds` is a valid array of `count` pollfd structs we own.
        let n = unsafe { libc::poll(pollfds.as_mut_ptr(), count, timeout_ms) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if n == 0 {
            // Timed out, or a wait capped at i32::MAX ms ended early: go on if time remains.
            if deadline.is_none_or(|d| Instant::now() < d) {
                continue;
            }
            return Ok(());
        }
        ready.extend(
            pollfds
                .iter()
                .enumerate()
                .filter(|(_, p)| p.revents != 0)
                .map(|(i, _)| i),
        );
        return Ok(());
    }
}

/// Milliseconds from now until `deadline`, rounded up and capped at `i32::MAX`.
fn millis_until(deadline: Instant) -> c_int {
    let nanos = deadline
        .saturating_duration_since(Instant::now())
        .as_nanos();
    c_int::try_from(nanos.div_ceil(1_000_000)).unwrap_or(c_int::MAX)
}

/// A self-pipe style wake-up for the supervisor's poll loop: put [`Waker::fd`] in the poll set,
/// call [`Waker::wake`] from any thread, and [`Waker::drain`] after poll reports it readable.
///
/// Linux: one eventfd (`EFD_CLOEXEC | EFD_NONBLOCK`): one fd and an 8-byte counter instead of
/// a pipe's two fds and buffer. Other unix systems: a nonblocking close-on-exec pipe. (The
/// fds are the platform twin `WakeFds`; what is done with them is the same everywhere.)
#[derive(Debug)]
pub(crate) struct Waker {
    /// The end to poll and drain, and the end to write (one fd on Linux).
    fds: platform::WakeFds,
}

impl Waker {
    /// Creates a waker that is not yet readable.
    pub(crate) fn new() -> io::Result<Self> {
        Ok(Waker {
            fds: platform::WakeFds::new()?,
        })
    }

    /// Makes [`Waker::fd`] readable. Never blocks: when the eventfd counter or the pipe is
    /// full, a wake-up is already pending and `EAGAIN` is ignored.
    pub(crate) fn wake(&self) {
        let fd = self.fds.write_end().as_raw_fd();
        let bytes = platform::WAKE_TOKEN;
        loop {
            // SAFETY: the pointer and length describe `bytes`; the fd is ours and open.
            let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
            if n >= 0 {
                return;
            }
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => return,
                _ => {
                    log::debug!("Waker::wake: {err}");
                    return;
                }
            }
        }
    }

    /// Consumes all pending wake-ups (reads until `EAGAIN`), so [`Waker::fd`] is no longer
    /// readable until the next [`Waker::wake`].
    pub(crate) fn drain(&self) {
        let fd = self.fds.poll_end().as_raw_fd();
        let mut buf = [0u8; 64];
        loop {
            // SAFETY: the pointer and length describe `buf`; the fd is ours and open.
            let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
            if n > 0 {
                continue;
            }
            if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return; // EAGAIN: drained (EOF cannot happen: we hold the write end)
        }
    }

    /// The fd to include in the poll set.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fds.poll_end()
    }
}

#[cfg(test)]
mod tests {
    use std::fs::File;
    use std::io::Read;
    use std::os::fd::AsFd;

    use super::*;

    /// Upper bound on anything these tests wait for.
    const DEADLINE: Duration = Duration::from_secs(10);

    #[test]
    fn poll_readable_reports_only_the_ready_fds() {
        let (quiet, _quiet_write) = platform::pipe_cloexec().unwrap();
        let (busy, busy_write) = platform::pipe_cloexec().unwrap();
        let mut ready = vec![99];
        poll_readable(
            &[quiet.as_fd(), busy.as_fd()],
            Some(Duration::ZERO),
            &mut ready,
        )
        .unwrap();
        assert!(ready.is_empty(), "nothing is readable yet: {ready:?}");

        let mut writer = File::from(busy_write);
        std::io::Write::write_all(&mut writer, b"x").unwrap();
        poll_readable(&[quiet.as_fd(), busy.as_fd()], Some(DEADLINE), &mut ready).unwrap();
        assert_eq!(ready, [1]);

        // A hang-up counts as readable too: read() will report EOF without blocking.
        drop(writer);
        let mut buf = [0u8; 1];
        File::from(busy.try_clone().unwrap())
            .read_exact(&mut buf)
            .unwrap();
        poll_readable(&[quiet.as_fd(), busy.as_fd()], None, &mut ready).unwrap();
        assert_eq!(ready, [1]);
    }

    #[test]
    fn poll_readable_waits_out_the_whole_timeout() {
        let (quiet, _write) = platform::pipe_cloexec().unwrap();
        let start = Instant::now();
        let mut ready = Vec::new();
        poll_readable(
            &[quiet.as_fd()],
            Some(Duration::from_millis(30)),
            &mut ready,
        )
        .unwrap();
        assert!(ready.is_empty());
        assert!(
            start.elapsed() >= Duration::from_millis(30),
            "returned early: {:?}",
            start.elapsed()
        );
    }

    #[test]
    fn waker_wakes_the_poll_and_drains() {
        let waker = Waker::new().unwrap();
        let mut ready = Vec::new();
        poll_readable(&[waker.fd()], Some(Duration::ZERO), &mut ready).unwrap();
        assert!(ready.is_empty(), "a new waker is quiet");

        // From another thread, and many times: never blocks, coalesces into one wake-up.
        std::thread::scope(|scope| {
            scope.spawn(|| {
                for _ in 0..100_000 {
                    waker.wake();
                }
            });
        });
        poll_readable(&[waker.fd()], Some(DEADLINE), &mut ready).unwrap();
        assert_eq!(ready, [0]);
        waker.drain();
        poll_readable(&[waker.fd()], Some(Duration::ZERO), &mut ready).unwrap();
        assert!(ready.is_empty(), "drained");
        waker.drain(); // draining a quiet waker returns at once

        waker.wake();
        poll_readable(&[waker.fd()], Some(DEADLINE), &mut ready).unwrap();
        assert_eq!(ready, [0]);
    }
}
