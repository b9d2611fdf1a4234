//! Signals: sending one to a whole process group safely, naming signals for reports, and the
//! signal masks and dispositions a spawn needs.

use std::borrow::Cow;
use std::ffi::c_int;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::BorrowedFd;
use std::ptr;

use super::pid::to_pid_t;
use super::platform;

/// Sends `sig` to a whole process group, never to a number that may have been reused.
///
/// Linux 6.9+ with a pidfd: `pidfd_send_signal(pidfd, sig, NULL, PIDFD_SIGNAL_PROCESS_GROUP)`.
/// It names the group's kernel object rather than its number, so it stays right after the
/// leader has been reaped while other members live on (and fails with `ESRCH` once the group
/// is empty, even if the number has been reused since).
///
/// Otherwise (no pidfd, other unix, or `EINVAL`/`ENOSYS` from an older kernel), and only if
/// `by_number_ok`: `killpg(pgid, sig)`. The caller says whether the number is safe: true while
/// the leader is unreaped (its zombie pins the id) or while members are known to remain (the
/// output pipe is still open). Without a safe route nothing is sent and the answer is `ESRCH`:
/// no member can be named, so none is known to be left.
///
/// `ESRCH` when nothing is left to signal. A `pgid` of 0 or 1, or above `i32::MAX`, is refused
/// with `EINVAL` without any system call: `killpg(0)` would hit our own group, `killpg(1)`
/// every process we may signal, and a number above `i32::MAX` would turn negative as a
/// `pid_t`.
pub(crate) fn signal_group(
    pidfd: Option<BorrowedFd<'_>>,
    pgid: u32,
    sig: c_int,
    by_number_ok: bool,
) -> io::Result<()> {
    if let Some(pidfd) = pidfd
        && let Some(sent) = platform::signal_group_via_pidfd(pidfd, sig, by_number_ok)
    {
        return sent;
    }
    if !by_number_ok {
        return Err(io::Error::from_raw_os_error(libc::ESRCH));
    }
    let pgid = match to_pid_t(pgid) {
        Ok(pgid) if pgid > 1 => pgid,
        _ => return Err(io::Error::from_raw_os_error(libc::EINVAL)),
    };
    // SAFETY: killpg takes integers only; pgid > 1 was checked above, and the caller vouches
    // that the number still names our group.
    if unsafe { libc::killpg(pgid, sig) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The name of a signal for reports: `"SIGKILL"`, `"SIGTERM"`, ...; on Linux the real-time
/// signals as `"SIGRTMIN+3"` (as `kill -l` in bash names them); anything else `"SIG<n>"`.
pub(crate) fn signal_name(sig: c_int) -> Cow<'static, str> {
    let name = match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGCHLD => "SIGCHLD",
        libc::SIGCONT => "SIGCONT",
        libc::SIGSTOP => "SIGSTOP",
        libc::SIGTSTP => "SIGTSTP",
        libc::SIGTTIN => "SIGTTIN",
        libc::SIGTTOU => "SIGTTOU",
        libc::SIGURG => "SIGURG",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGVTALRM => "SIGVTALRM",
        libc::SIGPROF => "SIGPROF",
        libc::SIGWINCH => "SIGWINCH",
        libc::SIGIO => "SIGIO",
        libc::SIGSYS => "SIGSYS",
        _ => match platform::extra_signal_name(sig) {
            Some(name) => name,
            None => return Cow::Owned(unnamed_signal(sig)),
        },
    };
    Cow::Borrowed(name)
}

/// Names a signal outside the static tables: a real-time signal where the platform has them,
/// else `"SIG<n>"`.
fn unnamed_signal(sig: c_int) -> String {
    platform::realtime_signal_name(sig).unwrap_or_else(|| format!("SIG{sig}"))
}

/// Blocks every signal in the calling thread until dropped, then restores the previous mask.
///
/// Around `clone(CLONE_VM)` this keeps any handler of the parent from running in the child on
/// borrowed memory before the child resets the dispositions; around `fork` it keeps handlers
/// from running in the child at all.
pub(super) struct BlockedSignals {
    /// The mask to restore.
    previous: libc::sigset_t,
}

impl BlockedSignals {
    /// Blocks all signals (glibc silently keeps its two internal ones deliverable).
    pub(super) fn all() -> io::Result<Self> {
        let mut all = MaybeUninit::<libc::sigset_t>::uninit();
        let mut previous = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigfillset initialises `all`; pthread_sigmask reads `all` and writes
        // `previous`, both valid pointers; on success `previous` is initialised.
        unsafe {
            libc::sigfillset(all.as_mut_ptr());
            let rc = libc::pthread_sigmask(libc::SIG_SETMASK, all.as_ptr(), previous.as_mut_ptr());
            if rc != 0 {
                return Err(io::Error::from_raw_os_error(rc));
            }
            Ok(BlockedSignals {
                previous: previous.assume_init(),
            })
        }
    }
}

impl Drop for BlockedSignals {
    fn drop(&mut self) {
        // SAFETY: restores a mask previously returned by pthread_sigmask.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.previous, ptr::null_mut()) };
    }
}

/// `SIG_DFL` with an empty mask and no flags, for the child's reset loop.
pub(super) fn default_action() -> libc::sigaction {
    // SAFETY: sigaction is a plain C struct for which all-zero is a valid value (zero is
    // SIG_DFL and no flags); sigemptyset then initialises the mask properly.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = libc::SIG_DFL;
        libc::sigemptyset(&mut action.sa_mask);
        action
    }
}

/// An empty signal set.
pub(super) fn empty_sigset() -> libc::sigset_t {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the whole set.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        set.assume_init()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_group_without_a_safe_route_sends_nothing() {
        // No pidfd and the number not vouched for: ESRCH, and no killpg on a number that may
        // now belong to someone else (signal 0 here, so even a bug would harm nothing).
        let err = signal_group(None, std::process::id(), 0, false).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ESRCH));
    }

    #[test]
    fn signal_names() {
        assert_eq!(signal_name(libc::SIGKILL), "SIGKILL");
        assert_eq!(signal_name(libc::SIGTERM), "SIGTERM");
        assert_eq!(signal_name(libc::SIGINT), "SIGINT");
        assert_eq!(signal_name(libc::SIGHUP), "SIGHUP");
        assert_eq!(signal_name(libc::SIGPIPE), "SIGPIPE");
        assert_eq!(signal_name(libc::SIGSEGV), "SIGSEGV");
        assert_eq!(signal_name(0), "SIG0");
        assert_eq!(signal_name(200), "SIG200");
        assert_eq!(signal_name(-3), "SIG-3");
        // The platform's own names are pinned beside them (`linux/signal.rs`).
        // Every standard signal (1 to 31 on Linux and macOS) has a static name.
        for sig in 1..32 {
            let name = signal_name(sig);
            assert!(
                matches!(name, Cow::Borrowed(_)),
                "{sig} has no table entry: {name}"
            );
        }
    }
}
