//! The crate's one pid type is `u32`, as `std::process::Child::id` returns it; libc speaks
//! `pid_t`, a signed 32-bit integer. Every entry point of this layer converts here, checked:
//! an `as` cast would turn a `u32` above `i32::MAX` negative, and a negative pid means "a
//! whole group" or "every process" to `kill` and "any child" to the wait calls.

use std::io;

/// `pid` as a `pid_t`; `EINVAL` if it does not fit (no process can have such a pid).
pub(super) fn to_pid_t(pid: u32) -> io::Result<libc::pid_t> {
    libc::pid_t::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

/// A pid that the kernel returned for a child it created, as the crate's `u32`. Such a pid is
/// positive; a negative one (which no kernel returns) would become 0, a pid that every wait
/// and signal of this layer refuses with `EINVAL`, rather than a panic.
pub(super) fn from_pid_t(pid: libc::pid_t) -> u32 {
    u32::try_from(pid).unwrap_or(0)
}
