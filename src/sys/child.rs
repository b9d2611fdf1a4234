//! The child side of a spawn: everything that runs in the new process between `clone`/`fork`
//! and `execve`.
//!
//! # The audit zone
//!
//! This file, with its platform twins `linux/child.rs` and `other/child.rs`, is the only code
//! that runs in the child before `execve`. In it only **async-signal-safe calls** are allowed,
//! and **nothing may allocate**, take a lock, panic, unwind or format. Why:
//! - after `fork` in a multithreaded parent, only the forking thread exists in the child; a
//!   lock that another thread held at the moment of the fork (the allocator's, stdio's, the
//!   logger's) stays locked forever, so a single `malloc` can hang the child. POSIX allows
//!   only async-signal-safe functions there until `execve`;
//! - with `clone(CLONE_VM | CLONE_VFORK)` (Linux) the child runs on the parent's memory and
//!   with the parent thread's TLS, on a small stack: an allocation would change the parent's
//!   heap under it, a panic would unwind through state that is not the child's, and the
//!   only writes that reach the parent on purpose are the two atomic stores of
//!   [`ChildFailure`];
//! - there is no indexing that could panic, no formatting, no `Drop` with side effects.
//!
//! What the child may use: the plain integers and pointers of [`ChildArgs`], all prepared by
//! the parent (in `spawn.rs`) before the child exists; the system calls named in each function
//! here (`sigaction`/`rt_sigaction`, `sigprocmask`, `setpgid`, `setsid`, `ioctl(TIOCSCTTY)`, `prctl`, `getppid`, `dup2`,
//! `chdir`, `close_range`, `fcntl`, `execve`, `write`, `_exit`); and lock-free atomic stores.
//! A reviewer checks every line of these three files against that list; nothing outside them
//! runs in the child.

use std::ffi::{c_char, c_int, c_uint, c_void};
use std::fmt;
use std::io;
use std::ptr;
use std::sync::atomic::{AtomicI32, AtomicU8, Ordering};

use super::platform;

/// What the child routine reads: plain integers and pointers into memory the parent keeps
/// alive until the child has exec'd, all prepared before the child is created.
pub(super) struct ChildArgs {
    /// NUL-terminated executable path.
    pub(super) path: *const c_char,
    /// NULL-terminated array of NUL-terminated arguments.
    pub(super) argv: *const *const c_char,
    /// NULL-terminated array of NUL-terminated `KEY=VALUE` strings.
    pub(super) envp: *const *const c_char,
    /// NUL-terminated directory for `chdir`.
    pub(super) cwd: *const c_char,
    /// `/dev/null`, opened read-only in the parent; >= 3.
    pub(super) stdin: c_int,
    /// Where fds 1 and 2 go; >= 3.
    pub(super) output: c_int,
    /// Write end of the report pipe (close-on-exec, >= 3) when the child was forked; -1 when
    /// it shares our memory and reports through `failure` alone.
    pub(super) report: c_int,
    /// Where a child that shares our memory leaves its failure report.
    pub(super) failure: ChildFailure,
    /// The parent-death signal to arm (Linux; nothing on other unix systems).
    pub(super) death_signal: platform::DeathSignal,
    /// One past the highest fd the fallback loop marks close-on-exec.
    pub(super) fd_scan_limit: c_int,
    /// A `SIG_DFL` action with an empty mask and no flags.
    pub(super) default_action: libc::sigaction,
    /// An empty signal set.
    pub(super) empty_mask: libc::sigset_t,
    /// The child's `oom_score_adj` as decimal ASCII (`oom_score_adj_len` bytes, not
    /// NUL-terminated), written to `/proc/self/oom_score_adj`; length 0: left as inherited.
    pub(super) oom_score_adj: *const u8,
    /// Length of `oom_score_adj`.
    pub(super) oom_score_adj_len: usize,
    /// The child's nice value, set with `setpriority` before `execve`; `None` leaves the
    /// inherited one.
    pub(super) nice: Option<c_int>,
    /// `output` is a terminal's slave side: lead a new session with it as the controlling
    /// terminal (see [`take_terminal`]) instead of only a new process group.
    pub(super) terminal: bool,
}

/// A failed child's report, written by the child into memory it shares with the parent.
///
/// Why this is sound with `clone(CLONE_VM | CLONE_VFORK)` (glibc's `posix_spawn` reports its
/// child's errors exactly this way, through a field of the argument struct):
/// - the child runs on the parent's memory, so its stores land in the parent's `ChildArgs`;
/// - `CLONE_VFORK` keeps the parent suspended until the child has either called `execve`
///   successfully (its old address space, ours, is then released: it can no longer write to
///   it) or exited; the child writes only on a failure path, right before `_exit`. So when
///   `clone` returns in the parent the child has stopped touching this memory for good, and
///   a report is there if and only if a step failed (a successful exec means no write);
/// - the kernel's wake-up of the vfork parent orders the child's stores before the parent's
///   loads (it completes a `struct completion` under a spinlock), and the fields are atomics,
///   so the child may write them through a shared reference and the compiler must load them
///   afresh after the opaque `clone` call, which received a pointer to them.
///
/// A child killed by a signal before it could write (or between the two stores) leaves
/// `step` at 0: it looks like a successful exec, and the caller's reaping then reports the
/// signal, exactly as the pipe's EOF did.
///
/// A forked child writes into its own copy, which the parent never sees: it uses the pipe.
#[derive(Debug, Default)]
pub(super) struct ChildFailure {
    /// The failed step's `errno`.
    errno: AtomicI32,
    /// The [`ChildStep`] that failed, as its code; 0 while nothing failed.
    step: AtomicU8,
}

impl ChildFailure {
    /// Records a failure. Async-signal-safe: two lock-free atomic stores.
    fn write(&self, errno: c_int, step: ChildStep) {
        // Relaxed: the ordering comes from the vfork wake-up (see the type's docs).
        self.errno.store(errno, Ordering::Relaxed);
        self.step.store(step as u8, Ordering::Relaxed);
    }

    /// `Some((errno, step code))` if the child recorded a failure. Parent side: call only
    /// after `clone` has returned, when the child can no longer write.
    pub(super) fn read(&self) -> Option<(c_int, u8)> {
        match self.step.load(Ordering::Relaxed) {
            0 => None,
            step => Some((self.errno.load(Ordering::Relaxed), step)),
        }
    }
}

/// The step of the child routine that failed, reported to the parent with `errno` as its
/// code (`step as u8`; 0 is no step) and decoded there with `ChildStep::try_from`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum ChildStep {
    /// `sigprocmask(SIG_SETMASK, {})`.
    SignalMask = 1,
    /// `setpgid(0, 0)`.
    ProcessGroup = 2,
    /// `prctl(PR_SET_PDEATHSIG)` (Linux only).
    DeathSignal = 3,
    /// The parent died before the death signal was armed (errno is `ESRCH`; Linux only).
    ParentGone = 4,
    /// `dup2(/dev/null, 0)`.
    Stdin = 5,
    /// `dup2(output, 1)`.
    Stdout = 6,
    /// `dup2(output, 2)`.
    Stderr = 7,
    /// `chdir(cwd)`.
    Chdir = 8,
    /// `execve`.
    Exec = 9,
    /// `setsid()` (terminal processes).
    Session = 10,
    /// `ioctl(TIOCSCTTY)` (terminal processes).
    ControllingTerminal = 11,
}

impl ChildStep {
    /// Every step, for decoding a code: the discriminants above are the only table.
    const ALL: [ChildStep; 11] = [
        ChildStep::SignalMask,
        ChildStep::ProcessGroup,
        ChildStep::DeathSignal,
        ChildStep::ParentGone,
        ChildStep::Stdin,
        ChildStep::Stdout,
        ChildStep::Stderr,
        ChildStep::Chdir,
        ChildStep::Exec,
        ChildStep::Session,
        ChildStep::ControllingTerminal,
    ];

    /// What the step calls, for the debug log.
    fn name(self) -> &'static str {
        match self {
            ChildStep::SignalMask => "sigprocmask",
            ChildStep::ProcessGroup => "setpgid",
            ChildStep::DeathSignal => "prctl(PR_SET_PDEATHSIG)",
            ChildStep::ParentGone => "parent exited before PR_SET_PDEATHSIG",
            ChildStep::Stdin => "dup2(stdin)",
            ChildStep::Stdout => "dup2(stdout)",
            ChildStep::Stderr => "dup2(stderr)",
            ChildStep::Chdir => "chdir",
            ChildStep::Exec => "execve",
            ChildStep::Session => "setsid",
            ChildStep::ControllingTerminal => "ioctl(TIOCSCTTY)",
        }
    }
}

impl TryFrom<u8> for ChildStep {
    /// The code that names no step.
    type Error = u8;

    /// Decodes a step code received from the child (parent side).
    fn try_from(code: u8) -> Result<Self, u8> {
        ChildStep::ALL
            .into_iter()
            .find(|step| *step as u8 == code)
            .ok_or(code)
    }
}

impl fmt::Display for ChildStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The child's side of `spawn`: sets the process up and calls `execve`; never returns.
///
/// Steps, in order: every catchable signal back to `SIG_DFL`; empty signal mask;
/// `setpgid(0, 0)`; the parent-death signal (Linux); stdin; fds 1 and 2; `chdir`; every fd
/// >= 3 close-on-exec; `execve`. A failed step is reported with [`report_and_exit`].
///
/// # Safety
///
/// Must only be called in a freshly created child process (after `fork` or `clone`), with all
/// signals blocked and `args` pointing to data that stays valid until `execve`.
pub(super) unsafe fn child_exec(args: &ChildArgs) -> ! {
    // 1. Signal dispositions back to the default: an ignored signal (the Rust runtime ignores
    // SIGPIPE; a host may ignore others) survives execve. Errors (EINVAL for numbers the
    // system lacks or reserves) are ignored on purpose.
    let mut sig: c_int = 1;
    while sig <= platform::LAST_SIGNAL {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            platform::reset_disposition(sig, &args.default_action);
        }
        sig += 1;
    }
    // 2. An empty mask, only now that no handler is left to run: a blocked SIGTERM would make
    // terminate and timeouts do nothing.
    // SAFETY: sigprocmask is async-signal-safe; the child is single-threaded.
    if unsafe { libc::sigprocmask(libc::SIG_SETMASK, &args.empty_mask, ptr::null_mut()) } != 0 {
        report_and_exit(args, errno(), ChildStep::SignalMask);
    }
    // 3. Lead a new process group, so the whole tree can be signalled at once. A terminal
    // process leads a new session instead, which makes it a group leader as well.
    if args.terminal {
        take_terminal(args);
    } else {
        // SAFETY: setpgid is async-signal-safe.
        if unsafe { libc::setpgid(0, 0) } != 0 {
            report_and_exit(args, errno(), ChildStep::ProcessGroup);
        }
    }
    // 4. The parent-death signal where the platform has one, then the race where the parent
    // died before it was armed.
    if let Err((code, step)) = args.death_signal.arm() {
        report_and_exit(args, code, step);
    }
    // 4b. The OOM killer's preference (see `set_oom_score_adj`).
    set_oom_score_adj(args);
    // 4c. The scheduling priority (see `set_nice`).
    set_nice(args);
    // 5. stdin from /dev/null; stdout and stderr into the one output pipe. All sources are
    // >= 3, so no dup2 overwrites another's source and each clears close-on-exec on 0, 1, 2.
    // SAFETY: dup2 is async-signal-safe; both fds are open (the parent keeps them open).
    if unsafe { libc::dup2(args.stdin, 0) } < 0 {
        report_and_exit(args, errno(), ChildStep::Stdin);
    }
    // SAFETY: as above.
    if unsafe { libc::dup2(args.output, 1) } < 0 {
        report_and_exit(args, errno(), ChildStep::Stdout);
    }
    // SAFETY: as above.
    if unsafe { libc::dup2(args.output, 2) } < 0 {
        report_and_exit(args, errno(), ChildStep::Stderr);
    }
    // 6. The working directory.
    // SAFETY: chdir is async-signal-safe; cwd is a valid C string.
    if unsafe { libc::chdir(args.cwd) } != 0 {
        report_and_exit(args, errno(), ChildStep::Chdir);
    }
    // 7. No fd beyond 0, 1, 2 survives exec, whoever opened it without O_CLOEXEC. Marking
    // (rather than closing) keeps the report pipe open until execve itself.
    mark_cloexec_from_3(args.fd_scan_limit);
    // 8. Exec.
    // SAFETY: execve is async-signal-safe; all three arrays are valid and NULL-terminated.
    unsafe { libc::execve(args.path, args.argv, args.envp) };
    report_and_exit(args, errno(), ChildStep::Exec)
}

/// Containment: writes `args.oom_score_adj` to `/proc/self/oom_score_adj`, so the kernel's
/// OOM killer prefers this child (and what it forks, which inherits the value) to the
/// supervisor. Best effort: a failure (no `/proc`, a value below the parent's without
/// `CAP_SYS_RESOURCE`) leaves the inherited value and is not a spawn failure.
/// Async-signal-safe: `open`, `write`, `close` on memory the parent prepared.
fn set_oom_score_adj(args: &ChildArgs) {
    if args.oom_score_adj_len == 0 {
        return;
    }
    // SAFETY: open, write and close are async-signal-safe; the path is a C string literal and
    // the value points at `oom_score_adj_len` bytes the parent keeps alive.
    unsafe {
        let fd = libc::open(
            c"/proc/self/oom_score_adj".as_ptr(),
            libc::O_WRONLY | libc::O_CLOEXEC,
        );
        if fd >= 0 {
            libc::write(fd, args.oom_score_adj.cast(), args.oom_score_adj_len);
            libc::close(fd);
        }
    }
}

/// Containment: the child's nice value (`setpriority(PRIO_PROCESS, 0, nice)`), inherited by
/// what it forks, so a build cannot starve the supervisor of CPU. Best effort like
/// `set_oom_score_adj`: a value below the parent's without `CAP_SYS_NICE` leaves the inherited
/// one and is not a spawn failure. Async-signal-safe: one system call.
fn set_nice(args: &ChildArgs) {
    let Some(nice) = args.nice else {
        return;
    };
    // SAFETY: setpriority is a plain system call, async-signal-safe; who 0 is this process.
    // The `as _` covers the `which` parameter's type, which differs between libcs.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS as _, 0, nice);
    }
}

/// Terminal processes: a new session (`setsid`, which also makes the child the leader of a
/// new process group whose id is its pid, so group signals and timeouts work as for any
/// process), then the terminal's slave side (`args.output`, opened `O_NOCTTY` by the parent)
/// as its controlling terminal (`TIOCSCTTY`), which also makes the child's group the
/// terminal's foreground group (so ^C and SIGWINCH reach it). Async-signal-safe.
fn take_terminal(args: &ChildArgs) {
    // SAFETY: setsid is async-signal-safe; a fresh child is never a group leader, so it
    // cannot fail with EPERM.
    if unsafe { libc::setsid() } < 0 {
        report_and_exit(args, errno(), ChildStep::Session);
    }
    // SAFETY: ioctl(TIOCSCTTY) is a single system call on an fd the parent keeps open; the
    // argument 0 means "do not steal it from another session".
    if unsafe { libc::ioctl(args.output, libc::TIOCSCTTY as _, 0) } < 0 {
        report_and_exit(args, errno(), ChildStep::ControllingTerminal);
    }
}

/// Marks every fd >= 3 close-on-exec: in one system call where the platform has one (Linux
/// 5.11+: `close_range(CLOSE_RANGE_CLOEXEC)`), else (older Linux, seccomp refusing it, other
/// unix systems) `fcntl(F_SETFD)` on each fd below `limit`. Async-signal-safe.
fn mark_cloexec_from_3(limit: c_int) {
    const FIRST: c_uint = 3;
    if platform::mark_all_cloexec_from(FIRST) {
        return;
    }
    let mut fd: c_int = 3;
    while fd < limit {
        // EBADF for fds that are not open is expected and ignored. FD_CLOEXEC is the only
        // fd flag, so setting rather than or-ing loses nothing.
        // SAFETY: fcntl(F_SETFD) is async-signal-safe and harmless on a closed fd.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        fd += 1;
    }
}

/// Reports `code` (an errno) and `step` to the parent, then `_exit(127)`s. Async-signal-safe.
///
/// Always into [`ChildArgs::failure`]: for a child that shares our memory that is the report
/// (see [`ChildFailure`]); for a forked child it is a harmless store into its own copy. A
/// forked child (`args.report >= 0`) also sends `errno` (4 bytes, native endian) and `step`
/// through the report pipe; a failed write is ignored: the parent then sees EOF from a child
/// that exited 127, as a shell would report a failed exec.
fn report_and_exit(args: &ChildArgs, code: c_int, step: ChildStep) -> ! {
    args.failure.write(code, step);
    if args.report >= 0 {
        write_report(args.report, code, step);
    }
    // SAFETY: _exit is async-signal-safe and ends the process without running atexit
    // handlers or flushing stdio buffers that belong to the parent.
    unsafe { libc::_exit(127) }
}

/// Length of a report on the pipe: the errno (4 bytes, native endian), then the step code.
pub(super) const REPORT_LEN: usize = 5;

/// Writes `code` and `step` to the report pipe `fd`, retrying on `EINTR`. Async-signal-safe.
fn write_report(fd: c_int, code: c_int, step: ChildStep) {
    let e = code.to_ne_bytes();
    let message: [u8; REPORT_LEN] = [e[0], e[1], e[2], e[3], step as u8];
    let mut written = 0;
    while written < message.len() {
        // SAFETY: write is async-signal-safe; the pointer and length stay inside `message`.
        let n = unsafe {
            libc::write(
                fd,
                message.as_ptr().add(written).cast::<c_void>(),
                message.len() - written,
            )
        };
        if n > 0 {
            written += n.unsigned_abs();
        } else if n == 0 || errno() != libc::EINTR {
            break;
        }
    }
}

/// The calling thread's `errno` (async-signal-safe: it reads one thread-local integer).
pub(super) fn errno() -> c_int {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}
