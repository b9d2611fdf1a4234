//! Linux's part of opening a pseudo-terminal: `posix_openpt` takes `O_CLOEXEC` (it opens
//! `/dev/ptmx` with the flags given), and the slave's name comes from the thread-safe
//! `ptsname_r`.

use std::ffi::{CStr, CString, c_char, c_int};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

/// Flags for `posix_openpt`: read-write, not our controlling terminal, close-on-exec
/// atomically.
pub(in crate::sys) const OPENPT_FLAGS: c_int = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;

/// Nothing to do: [`OPENPT_FLAGS`] already made the master close-on-exec.
pub(in crate::sys) fn set_cloexec_if_needed(_master: &OwnedFd) -> io::Result<()> {
    Ok(())
}

/// The path of the master's slave side (`ptsname_r`).
pub(in crate::sys) fn slave_name(master: &OwnedFd) -> io::Result<CString> {
    let mut buf = [0 as c_char; 128];
    // SAFETY: ptsname_r writes a NUL-terminated name of at most `buf.len()` bytes into `buf`.
    let rc = unsafe { libc::ptsname_r(master.as_raw_fd(), buf.as_mut_ptr(), buf.len()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    // SAFETY: on success the buffer holds a NUL-terminated string.
    Ok(unsafe { CStr::from_ptr(buf.as_ptr()) }.to_owned())
}
