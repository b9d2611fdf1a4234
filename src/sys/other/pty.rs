//! Opening a pseudo-terminal on other unix systems: `posix_openpt` there accepts only
//! `O_RDWR | O_NOCTTY` (macOS refuses other flags), so close-on-exec is set right after,
//! `grantpt` is called as POSIX asks, and the slave is opened by the name `ptsname` gives,
//! whose static buffer is guarded by a lock.

use std::ffi::{CStr, c_int};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Mutex;

/// Flags for `posix_openpt`: read-write, not our controlling terminal.
pub(in crate::sys) const OPENPT_FLAGS: c_int = libc::O_RDWR | libc::O_NOCTTY;

/// Marks the master close-on-exec (a fork elsewhere in the host between the open and this
/// call could still inherit it; our own children mark every fd >= 3 close-on-exec anyway).
pub(in crate::sys) fn set_cloexec_if_needed(master: &OwnedFd) -> io::Result<()> {
    // SAFETY: fcntl(F_SETFD) on an fd we own.
    if unsafe { libc::fcntl(master.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `grantpt`: the slave's owner and mode made right for us.
pub(in crate::sys) fn grant(master: &OwnedFd) -> io::Result<()> {
    // SAFETY: grantpt takes the master fd, open and ours.
    if unsafe { libc::grantpt(master.as_raw_fd()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `ptsname` returns a pointer into a static buffer: one caller at a time.
static PTSNAME: Mutex<()> = Mutex::new(());

/// The slave side of `master`, by the name `ptsname` gives (under [`PTSNAME`]), opened
/// read-write, not as our controlling terminal, close-on-exec.
pub(in crate::sys) fn open_slave(master: &OwnedFd) -> io::Result<OwnedFd> {
    let name = {
        let _guard = PTSNAME
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // SAFETY: ptsname returns NULL or a NUL-terminated string in its static buffer, which
        // the lock keeps from being overwritten until we have copied it.
        let name = unsafe { libc::ptsname(master.as_raw_fd()) };
        if name.is_null() {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: non-NULL, NUL-terminated (see above).
        unsafe { CStr::from_ptr(name) }.to_owned()
    };
    // SAFETY: `name` is a valid C string; open returns a new fd or -1.
    let fd = unsafe {
        libc::open(
            name.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
