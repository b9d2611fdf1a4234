//! The keeper: a tiny process that outlives its manager just long enough to kill what the
//! manager started. It is forked when a manager puts its processes in cgroups, sits blocked in
//! `read` on a pipe whose only write end the manager holds, and when that read returns (end of
//! file: the manager closed it, exited, or was killed with SIGKILL, which no handler can
//! catch) writes `1` to the manager's instance cgroup's `cgroup.kill`, which kills every
//! process in every cgroup below it, `setsid` daemons and double forks included. Then it exits.
//!
//! It leaves the manager's session and process group (so a signal to the server's group, a
//! terminal's Ctrl-C or `kill -KILL -- -PGID`, does not take it along), blocks every signal
//! that can be blocked, and closes every descriptor but the pipe.

use std::ffi::{CString, c_int};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::fd::pipe_cloexec;
use crate::sys::child::errno;

/// A running keeper: its pid and the write end of its pipe.
#[derive(Debug)]
pub(crate) struct Keeper {
    pid: libc::pid_t,
    /// Closing it (or the manager's death) sets the keeper off.
    pipe: Option<OwnedFd>,
}

impl Keeper {
    /// Forks a keeper that writes `1` to `kill_file` (a `cgroup.kill`) once the returned
    /// handle is dropped or this process dies.
    pub(crate) fn start(kill_file: &Path) -> io::Result<Keeper> {
        let path = CString::new(kill_file.as_os_str().as_bytes())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let (read, write) = pipe_cloexec()?;
        // SAFETY: sigset_t is plain data; sigfillset initialises it.
        let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `all` is a valid sigset_t we own.
        unsafe { libc::sigfillset(&mut all) };
        let read_fd = read.as_raw_fd();
        // SAFETY: in the child only async-signal-safe system calls run (no allocation, no
        // locks): everything it uses (`path`, `all`, `read_fd`) was prepared before the fork
        // and is in its copy of our memory. It ends in `_exit`.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: we are the freshly forked keeper; see `keep`.
            unsafe { keep(read_fd, &path, &all) }
        }
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        drop(read);
        Ok(Keeper {
            pid,
            pipe: Some(write),
        })
    }

    /// The keeper's pid.
    pub(crate) fn pid(&self) -> u32 {
        self.pid.unsigned_abs()
    }

    /// Sets the keeper off now (its kill finds whatever is left) and reaps it.
    pub(crate) fn dismiss(&mut self) {
        if self.pipe.take().is_none() {
            return;
        }
        loop {
            let mut status = 0;
            // SAFETY: waitpid on our own child; `status` is a valid out-pointer. ECHILD (a
            // subreaper thread reaped it first) ends the wait as well.
            let rc = unsafe { libc::waitpid(self.pid, &mut status, 0) };
            if rc >= 0 || errno() != libc::EINTR {
                return;
            }
        }
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        self.dismiss();
    }
}

/// The keeper's body.
///
/// # Safety
///
/// Call only in a freshly forked child; it never returns.
unsafe fn keep(pipe: c_int, kill_file: &CString, all: &libc::sigset_t) -> ! {
    // SAFETY: each call is async-signal-safe and takes integers or pointers to memory this
    // process owns (its copy of the parent's).
    unsafe {
        libc::sigprocmask(libc::SIG_SETMASK, all, std::ptr::null_mut());
        libc::setsid();
        libc::chdir(c"/".as_ptr());
        libc::dup2(pipe, 0);
        libc::syscall(libc::SYS_close_range, 1u32, u32::MAX, 0u32);
        let mut byte = 0u8;
        loop {
            let n = libc::read(0, (&raw mut byte).cast(), 1);
            if n == 0 || (n < 0 && errno() != libc::EINTR) {
                break;
            }
        }
        let fd = libc::open(kill_file.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd >= 0 {
            libc::write(fd, c"1".as_ptr().cast(), 1);
            libc::close(fd);
        }
        libc::_exit(0)
    }
}
