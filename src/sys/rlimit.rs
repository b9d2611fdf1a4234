//! `RLIMIT_NOFILE`: how many fds this process may open.

use std::io;

use super::platform;

/// The current `RLIMIT_NOFILE` (soft and hard).
pub(super) fn nofile_limit() -> io::Result<libc::rlimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(limit)
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns the new soft limit (used by
/// the server binary at start: every child costs the supervisor a pipe and a pidfd).
///
/// macOS refuses a soft limit above `OPEN_MAX` (10240) even when the hard limit is
/// "unlimited", so there the limit is capped at 10240 (see `other/rlimit.rs`).
#[allow(dead_code)] // used by the server binary at start, absent without the `server` feature
pub(crate) fn raise_fd_limit() -> io::Result<u64> {
    let mut limit = nofile_limit()?;
    let target = platform::fd_limit_target(limit.rlim_max);
    if limit.rlim_cur < target {
        limit.rlim_cur = target;
        // SAFETY: setrlimit reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    #[allow(clippy::unnecessary_cast)] // rlim_t is u64 here, but u32 on some 32-bit targets
    Ok(limit.rlim_cur as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raise_fd_limit_returns_the_new_soft_limit() {
        let soft = raise_fd_limit().unwrap();
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes the struct we pass.
        let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
        assert_eq!(rc, 0);
        #[allow(clippy::unnecessary_cast)] // rlim_t is u64 here, but u32 on some 32-bit targets
        let current = limit.rlim_cur as u64;
        assert_eq!(soft, current);
        assert!(soft >= 3);
        // Idempotent.
        assert_eq!(raise_fd_limit().unwrap(), soft);
    }
}
