//! Linux's part of opening a pseudo-terminal: `posix_openpt` takes `O_CLOEXEC` (it opens
//! `/dev/ptmx` with the flags given), `grantpt` has nothing to do on devpts, and the slave is
//! opened straight from the master with `TIOCGPTPEER` (Linux 4.13+; by its `ptsname_r` name
//! before), which saves the name lookup and a path walk per terminal.

use std::ffi::{CStr, c_char, c_int};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Flags for `posix_openpt`: read-write, not our controlling terminal, close-on-exec
/// atomically.
pub(in crate::sys) const OPENPT_FLAGS: c_int = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;

/// Nothing to do: [`OPENPT_FLAGS`] already made the master close-on-exec.
pub(in crate::sys) fn set_cloexec_if_needed(_master: &OwnedFd) -> io::Result<()> {
    Ok(())
}

/// Nothing to do: devpts creates the slave with its owner, group and mode already right (what
/// `grantpt` once arranged through a set-uid helper); glibc's `grantpt` only checks that the
/// fd is a master, which `posix_openpt` just guaranteed.
pub(in crate::sys) fn grant(_master: &OwnedFd) -> io::Result<()> {
    Ok(())
}

/// The slave side of `master`, read-write, not our controlling terminal, close-on-exec.
pub(in crate::sys) fn open_slave(master: &OwnedFd) -> io::Result<OwnedFd> {
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: TIOCGPTPEER takes the open flags as its argument and returns a new fd or -1.
    let fd = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, flags) };
    if fd >= 0 {
        // SAFETY: the kernel just returned this fd to us; nothing else owns it.
        return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    let err = io::Error::last_os_error();
    if !matches!(err.raw_os_error(), Some(libc::EINVAL | libc::ENOTTY)) {
        return Err(err);
    }
    // A kernel before 4.13: open the slave by its name.
    let mut buf = [0 as c_char; 128];
    // SAFETY: ptsname_r writes a NUL-terminated name of at most `buf.len()` bytes into `buf`.
    let rc = unsafe { libc::ptsname_r(master.as_raw_fd(), buf.as_mut_ptr(), buf.len()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    // SAFETY: on success the buffer holds a NUL-terminated string.
    let name = unsafe { CStr::from_ptr(buf.as_ptr()) };
    // SAFETY: `name` is a valid C string; open returns a new fd or -1.
    let fd = unsafe { libc::open(name.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
