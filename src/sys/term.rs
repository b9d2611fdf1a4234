//! The local terminal of the `procwarden` command (`attach`, `exec --tty`): raw mode and its
//! restoration ([`make_raw`], [`SavedMode::restore`]). (Its window size is read with
//! `pty::window_size`, which the terminal tests use too.)
//!
//! Portable POSIX termios (`tcgetattr`, `cfmakeraw`, `tcsetattr`), the same on Linux and
//! macOS, so there is no platform twin.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

/// A terminal's settings as they were before [`make_raw`] changed them.
///
/// `Copy`, so that every path that may end the command (the main thread, a signal thread) can
/// hold it and put the terminal back; restoring twice is harmless.
#[derive(Clone, Copy)]
pub(crate) struct SavedMode {
    fd: RawFd,
    termios: libc::termios,
}

impl std::fmt::Debug for SavedMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SavedMode").field("fd", &self.fd).finish()
    }
}

/// Puts the terminal on `fd` into raw mode: no echo, no line editing, and no signals from keys
/// (Ctrl-C, Ctrl-Z and Ctrl-\ become bytes to pass on), no output processing. Returns the
/// settings to restore.
///
/// # Errors
///
/// When `fd` is not a terminal or its settings cannot be read or changed.
pub(crate) fn make_raw(fd: BorrowedFd<'_>) -> io::Result<SavedMode> {
    let fd = fd.as_raw_fd();
    // SAFETY: termios is plain data; tcgetattr fills it before it is read.
    let mut termios: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: `termios` is a valid, writable termios; an fd that is not a terminal is ENOTTY.
    if unsafe { libc::tcgetattr(fd, &mut termios) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let saved = SavedMode { fd, termios };
    let mut raw = termios;
    // SAFETY: cfmakeraw only edits the termios it is given, which is valid.
    unsafe { libc::cfmakeraw(&mut raw) };
    // SAFETY: `raw` is a valid termios for this terminal (derived from its own settings).
    if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &raw) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(saved)
}

impl SavedMode {
    /// Puts the terminal's settings back as they were, after the output written so far has been
    /// sent (`TCSADRAIN`).
    ///
    /// # Errors
    ///
    /// When the settings cannot be set (the terminal is gone, for example).
    pub(crate) fn restore(&self) -> io::Result<()> {
        // SAFETY: `self.termios` was read from this terminal by tcgetattr.
        if unsafe { libc::tcsetattr(self.fd, libc::TCSADRAIN, &self.termios) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    fn settings(fd: BorrowedFd<'_>) -> libc::termios {
        // SAFETY: termios is plain data; tcgetattr fills it.
        let mut termios: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: `termios` is valid and writable; `fd` is open.
        assert_eq!(unsafe { libc::tcgetattr(fd.as_raw_fd(), &mut termios) }, 0);
        termios
    }

    #[test]
    fn raw_mode_is_entered_and_restored_on_a_real_terminal() {
        let pty = crate::sys::open_pty(24, 80).expect("a pseudo-terminal");
        let fd = pty.slave.as_fd();
        let before = settings(fd);
        assert_ne!(before.c_lflag & libc::ECHO, 0, "a new terminal echoes");
        assert_ne!(
            before.c_lflag & libc::ISIG,
            0,
            "and makes signals from keys"
        );
        let saved = make_raw(fd).expect("raw mode");
        let raw = settings(fd);
        assert_eq!(raw.c_lflag & (libc::ECHO | libc::ICANON | libc::ISIG), 0);
        assert_eq!(raw.c_oflag & libc::OPOST, 0);
        saved.restore().expect("restore");
        let after = settings(fd);
        assert_eq!(
            (after.c_lflag, after.c_iflag, after.c_oflag, after.c_cflag),
            (
                before.c_lflag,
                before.c_iflag,
                before.c_oflag,
                before.c_cflag
            )
        );
        // Restoring twice is harmless.
        saved.restore().expect("restore again");
    }

    #[test]
    fn a_pipe_is_not_a_terminal() {
        let (reader, _writer) = crate::sys::pipe_cloexec().expect("pipe");
        assert_eq!(
            make_raw(reader.as_fd())
                .expect_err("raw mode on a pipe")
                .raw_os_error(),
            Some(libc::ENOTTY)
        );
    }
}
