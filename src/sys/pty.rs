//! Pseudo-terminals: a new one per terminal process ([`open_pty`]), its window size
//! ([`set_window_size`]), and its end-of-file character ([`eof_char`]).
//!
//! Portable POSIX (`posix_openpt`, `grantpt`, `unlockpt`, then the slave's name from the
//! platform twin `pty.rs`: `ptsname_r` on Linux, `ptsname` under a lock elsewhere), so macOS
//! takes the same path as Linux. Both ends are close-on-exec and opened without becoming our
//! controlling terminal (`O_NOCTTY`); the child makes the slave its own in `child.rs`.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::platform;

/// The two sides of a new pseudo-terminal.
#[derive(Debug)]
pub(crate) struct Pty {
    /// The side the server reads the screen from and writes keystrokes to.
    pub(crate) master: OwnedFd,
    /// The side the child gets as its stdin, stdout, stderr and controlling terminal.
    pub(crate) slave: OwnedFd,
}

/// Opens a new pseudo-terminal of `rows` x `cols`.
pub(crate) fn open_pty(rows: u16, cols: u16) -> io::Result<Pty> {
    // SAFETY: posix_openpt takes flags only and returns a new fd or -1.
    let fd = unsafe { libc::posix_openpt(platform::OPENPT_FLAGS) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the fd was just returned to us and nothing else owns it.
    let master = unsafe { OwnedFd::from_raw_fd(fd) };
    platform::set_cloexec_if_needed(&master)?;
    platform::grant(&master)?;
    // SAFETY: unlockpt takes the master fd, open and ours.
    if unsafe { libc::unlockpt(master.as_raw_fd()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let slave = platform::open_slave(&master)?;
    let pty = Pty { master, slave };
    set_window_size(borrow(&pty.master), rows, cols)?;
    Ok(pty)
}

fn borrow(fd: &OwnedFd) -> BorrowedFd<'_> {
    std::os::fd::AsFd::as_fd(fd)
}

/// Sets the terminal's window size (`TIOCSWINSZ` on either side); the kernel then sends
/// SIGWINCH to the terminal's foreground process group, as any terminal emulator's resize does.
pub(crate) fn set_window_size(fd: BorrowedFd<'_>, rows: u16, cols: u16) -> io::Result<()> {
    let size = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one `struct winsize` from the pointer we pass.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &size) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The terminal's window size `(rows, cols)` (`TIOCGWINSZ`). Tests check what resize set
/// with it; `attach` reads the size of its own terminal.
#[cfg(any(test, feature = "cli"))]
pub(crate) fn window_size(fd: BorrowedFd<'_>) -> io::Result<(u16, u16)> {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `struct winsize` to the pointer we pass.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut size) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((size.ws_row, size.ws_col))
}

/// The terminal's end-of-file character (`VEOF` of its settings, normally ^D), read through
/// either side; ^D when the settings cannot be read or have it disabled.
pub(crate) fn eof_char(fd: BorrowedFd<'_>) -> u8 {
    const CTRL_D: u8 = 4;
    let mut settings = std::mem::MaybeUninit::<libc::termios>::uninit();
    // SAFETY: tcgetattr fills the termios struct we pass, or fails and leaves it unread.
    if unsafe { libc::tcgetattr(fd.as_raw_fd(), settings.as_mut_ptr()) } != 0 {
        return CTRL_D;
    }
    // SAFETY: tcgetattr succeeded, so the struct is initialised.
    let settings = unsafe { settings.assume_init() };
    match settings.c_cc[libc::VEOF] {
        0 => CTRL_D, // _POSIX_VDISABLE on Linux
        c => c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn a_new_pty_has_the_size_asked_for_and_resizes() {
        let pty = open_pty(24, 80).expect("pty");
        assert_eq!(window_size(pty.slave.as_fd()).expect("size"), (24, 80));
        set_window_size(pty.master.as_fd(), 50, 132).expect("resize");
        assert_eq!(window_size(pty.slave.as_fd()).expect("size"), (50, 132));
        assert_eq!(eof_char(pty.master.as_fd()), 4);
    }
}
