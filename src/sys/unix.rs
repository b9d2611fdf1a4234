//! The unix implementation of the platform layer: spawning, waiting, signalling, polling.
//!
//! Linux is the primary target. Where Linux has a better primitive (pidfds, `clone` with
//! `CLONE_VFORK`, `close_range`, `eventfd`) it is used through `super::linux`, and each such
//! place says what other unix systems get instead.

use std::borrow::Cow;
use std::ffi::{CString, c_char, c_int, c_void};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::ptr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicU8, Ordering};
use std::time::{Duration, Instant};

#[cfg(target_os = "linux")]
use super::linux;

/// How to create the child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SpawnMethod {
    /// Linux: `clone(CLONE_VM | CLONE_VFORK | CLONE_PIDFD)` on a dedicated stack, like glibc's
    /// `posix_spawn` and Go's runtime. Fast: no page table is copied, so the cost does not grow
    /// with the parent's memory, and the pidfd comes atomically with the child.
    ///
    /// Other unix systems: falls back to [`SpawnMethod::Fork`].
    CloneVfork,
    /// Portable: `fork()`. On Linux a pidfd is then opened with `pidfd_open` right after the
    /// fork (see [`SpawnedChild::pidfd`] for the small window this leaves).
    Fork,
}

impl SpawnMethod {
    /// [`SpawnMethod::CloneVfork`] on Linux, [`SpawnMethod::Fork`] elsewhere.
    pub(crate) fn default_for_platform() -> Self {
        if cfg!(target_os = "linux") {
            SpawnMethod::CloneVfork
        } else {
            SpawnMethod::Fork
        }
    }
}

/// Everything the child needs, prepared by the parent before the fork so that the child
/// allocates nothing and looks nothing up.
#[derive(Debug)]
pub(crate) struct SpawnSpec {
    /// The executable, already resolved by the caller: the child does no `PATH` search
    /// (searching would allocate and read the environment between fork and exec).
    pub(crate) path: CString,
    /// The argument vector, `argv[0]` included.
    pub(crate) argv: Vec<CString>,
    /// `KEY=VALUE` entries: the child's whole environment, nothing is inherited.
    pub(crate) envp: Arc<Vec<CString>>,
    /// The directory the child `chdir`s into before `execve`.
    pub(crate) cwd: CString,
    /// Write end of the output pipe. It is `dup2`'d onto both fd 1 and fd 2: one pipe for
    /// both streams preserves their interleaving. The caller keeps ownership; it may be
    /// close-on-exec (it should be) and may even be 0, 1 or 2.
    pub(crate) output: RawFd,
    /// The child's stdin: an fd open on `/dev/null` for reading (see [`open_dev_null`]),
    /// `dup2`'d onto fd 0. The caller keeps ownership, so one fd opened once serves every
    /// spawn; it may be close-on-exec (it should be) and may even be 0, 1 or 2. `None` opens
    /// `/dev/null` afresh for this spawn (one `open` and one `close` more).
    pub(crate) stdin: Option<RawFd>,
    /// Linux: `prctl(PR_SET_PDEATHSIG, sig)`, so the child gets `sig` when the *thread* that
    /// spawned it exits (spawn from one long-lived thread). `Some(0)` means the same as `None`.
    /// Ignored on other unix systems, which have no such mechanism.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))] // read on Linux only, see above
    pub(crate) parent_death_signal: Option<c_int>,
    /// How to create the child.
    pub(crate) method: SpawnMethod,
}

/// A started child. The caller owns reaping it (with [`try_reap`]); until then its pid, and
/// so its process group id, cannot be reused.
#[derive(Debug)]
pub(crate) struct SpawnedChild {
    /// The child's pid, which is also its process group id (it leads its own group).
    pub(crate) pid: libc::pid_t,
    /// A pidfd for the child (Linux only): readable once it has exited, usable for
    /// `waitid(P_PIDFD)` and for signalling its process group even after it has been reaped.
    ///
    /// `None` on other unix systems and on Linux kernels older than 5.2 (`CloneVfork`) or 5.3
    /// (`Fork`). With `Fork` the pidfd is opened by pid right after the fork; should the host
    /// ignore SIGCHLD (children then reap themselves) and the child exit and its pid be reused
    /// within that window, the pidfd would name another process. `CloneVfork` has no such
    /// window.
    pub(crate) pidfd: Option<OwnedFd>,
}

/// Starts a child as described by `spec` and returns once it has called `execve`.
///
/// Child-side steps, in order: every catchable signal back to `SIG_DFL`; empty signal mask;
/// `setpgid(0, 0)`; the parent-death signal (Linux), then `_exit` if the parent has already
/// gone; stdin from `/dev/null` (`spec.stdin` or a fresh open); `spec.output` onto fds 1 and
/// 2; `chdir`; every fd >= 3 close-on-exec; `execve`. If any step fails, the child reports
/// `errno` and the step and `_exit(127)`s; the parent then reaps it (by pid) and returns that
/// errno as an `io::Error` (so `raw_os_error()` is e.g. `ENOENT` for a missing executable),
/// logging the step at debug level. Success means `execve` succeeded, not that the program
/// will run well.
///
/// How the report travels depends on how the child was made. `CloneVfork`: through memory
/// the child shares with the parent (see [`ChildFailure`]), as glibc's `posix_spawn` does; no
/// pipe, no read. `Fork`: through a close-on-exec pipe, whose EOF without data means the exec
/// succeeded.
///
/// All signals are blocked in the calling thread while the child is being created, and
/// restored before this returns.
pub(crate) fn spawn(spec: &SpawnSpec) -> io::Result<SpawnedChild> {
    // Everything the child reads is built here, in the parent: the child allocates nothing.
    let argv = null_terminated(&spec.argv);
    let envp = null_terminated(&spec.envp);
    // The child's sources for dup2 must not be 0, 1 or 2, or an earlier dup2 could overwrite a
    // later one's source (and dup2(fd, fd) would leave fd close-on-exec). Such low fds only
    // happen when the host closed its own stdio; then a close-on-exec copy >= 3 is used.
    let (stdin, stdin_owned) = match spec.stdin {
        // SAFETY: the caller promises `fd` is open for the duration of the call.
        Some(fd) => unsafe { source_above_stdio(fd)? },
        None => {
            let fd = above_stdio(open_dev_null()?)?;
            (fd.as_raw_fd(), Some(fd))
        }
    };
    // SAFETY: the caller promises `spec.output` is open for the duration of the call.
    let (output, output_copy) = unsafe { source_above_stdio(spec.output)? };
    #[cfg(target_os = "linux")]
    let death_signal = spec.parent_death_signal.unwrap_or(0);
    // Only needed to check the parent-death signal's race.
    #[cfg(target_os = "linux")]
    let parent_pid = if death_signal != 0 {
        // SAFETY: getpid has no preconditions.
        unsafe { libc::getpid() }
    } else {
        0
    };

    let mut args = ChildArgs {
        path: spec.path.as_ptr(),
        argv: argv.as_ptr(),
        envp: envp.as_ptr(),
        cwd: spec.cwd.as_ptr(),
        stdin,
        output,
        report: -1, // set by start_child if it forks
        failure: ChildFailure::default(),
        #[cfg(target_os = "linux")]
        death_signal,
        #[cfg(target_os = "linux")]
        parent_pid,
        fd_scan_limit: fd_scan_limit(),
        default_action: default_action(),
        empty_mask: empty_sigset(),
    };

    let (pid, pidfd, channel) = start_child(spec.method, &mut args)?;
    // The child has exec'd or exited (CloneVfork) or holds its own copies (Fork).
    drop(stdin_owned);
    drop(output_copy);
    #[cfg(test)]
    let via_pipe = matches!(channel, ReportChannel::Pipe(_));
    let report = match channel {
        ReportChannel::SharedMemory => Ok(args.failure.read()),
        ReportChannel::Pipe(read) => read_report(&read),
    };
    match report {
        Ok(None) => Ok(SpawnedChild { pid, pidfd }),
        Ok(Some((errno, step))) => {
            log::debug!(
                "spawn of {:?} failed in the child at step {} (errno {errno})",
                spec.path,
                ChildStep::describe_code(step),
            );
            reap_blocking(pid);
            #[cfg(test)]
            tests::LAST_FAILED_CHILD.with(|last| {
                last.set(Some(tests::FailedChild {
                    pid,
                    step,
                    via_pipe,
                }))
            });
            Err(io::Error::from_raw_os_error(errno))
        }
        Err(err) => {
            // We cannot know whether exec happened: do not leave a child nobody tracks. The pid
            // is ours and unreaped, so it cannot have been reused.
            // SAFETY: kill takes integers only; `pid` is our unreaped child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            reap_blocking(pid);
            Err(err)
        }
    }
}

/// How a failed child's report reaches the parent.
#[derive(Debug)]
enum ReportChannel {
    /// The child shared our memory (`CLONE_VM | CLONE_VFORK`): it wrote into
    /// [`ChildArgs::failure`], if anything.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))] // only Linux clones with CLONE_VM
    SharedMemory,
    /// The child has its own memory (`fork`): read end of the report pipe.
    Pipe(OwnedFd),
}

/// Creates the child with `method`, blocking all signals around the creation.
fn start_child(
    method: SpawnMethod,
    args: &mut ChildArgs,
) -> io::Result<(libc::pid_t, Option<OwnedFd>, ReportChannel)> {
    #[cfg(target_os = "linux")]
    if method == SpawnMethod::CloneVfork {
        let arg = &*args as *const ChildArgs as *mut c_void;
        let cloned = {
            let _blocked = BlockedSignals::all()?;
            // SAFETY: `child_entry` only runs `child_exec` (async-signal-safe, no allocation,
            // ends in execve or _exit); `args` outlives the call, which returns only after the
            // child has exec'd or exited; all signals are blocked (`_blocked`). The child
            // writes to `args` only through its atomic `failure` fields.
            unsafe { linux::clone_vfork(child_entry, arg) }
        }; // the signal mask is restored here
        match cloned {
            Ok((pid, pidfd)) => return Ok((pid, pidfd, ReportChannel::SharedMemory)),
            // EINVAL: a kernel or sandbox refusing this flag combination. fork always works.
            Err(err) if err.raw_os_error() == Some(libc::EINVAL) => {
                log::debug!(
                    "clone(CLONE_VM | CLONE_VFORK | CLONE_PIDFD) failed ({err}); using fork"
                );
            }
            Err(err) => return Err(err),
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = method; // CloneVfork is Linux-only; everything else forks.

    // A forked child's memory is its own: it reports through a pipe instead.
    let (report_read, report_write) = pipe_cloexec()?;
    let report_write = above_stdio(report_write)?;
    args.report = report_write.as_raw_fd();
    let pid = {
        let _blocked = BlockedSignals::all()?;
        // SAFETY: in the child, only `child_exec` runs, which makes async-signal-safe calls
        // only and allocates nothing, as required after fork in a multithreaded process; it
        // never returns. `args` lives in the copied address space. All signals are blocked.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: we are the freshly forked child; `args` is valid (copied memory).
            unsafe { child_exec(args) }
        }
        pid
    }; // the signal mask is restored here
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    // Only the child may hold the write end now, so EOF means "exec succeeded".
    drop(report_write);
    #[cfg(target_os = "linux")]
    let pidfd = match linux::pidfd_open(pid) {
        Ok(fd) => Some(fd),
        Err(err) => {
            log::debug!("pidfd_open({pid}) failed: {err}; going on without a pidfd");
            None
        }
    };
    #[cfg(not(target_os = "linux"))]
    let pidfd = None;
    Ok((pid, pidfd, ReportChannel::Pipe(report_read)))
}

/// What the child routine reads: plain integers and pointers into memory the parent keeps
/// alive until the child has exec'd, all prepared before the fork.
struct ChildArgs {
    /// NUL-terminated executable path.
    path: *const c_char,
    /// NULL-terminated array of NUL-terminated arguments.
    argv: *const *const c_char,
    /// NULL-terminated array of NUL-terminated `KEY=VALUE` strings.
    envp: *const *const c_char,
    /// NUL-terminated directory for `chdir`.
    cwd: *const c_char,
    /// `/dev/null`, opened read-only in the parent; >= 3.
    stdin: c_int,
    /// Where fds 1 and 2 go; >= 3.
    output: c_int,
    /// Write end of the report pipe (close-on-exec, >= 3) when the child was forked; -1 when
    /// it shares our memory and reports through `failure` alone.
    report: c_int,
    /// Where a child that shares our memory leaves its failure report.
    failure: ChildFailure,
    /// Parent-death signal, or 0 for none (Linux only: nothing else has one).
    #[cfg(target_os = "linux")]
    death_signal: c_int,
    /// `getpid()` of the parent, to detect that it died before the death signal was armed.
    #[cfg(target_os = "linux")]
    parent_pid: libc::pid_t,
    /// One past the highest fd the fallback loop marks close-on-exec.
    fd_scan_limit: c_int,
    /// A `SIG_DFL` action with an empty mask and no flags.
    default_action: libc::sigaction,
    /// An empty signal set.
    empty_mask: libc::sigset_t,
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
struct ChildFailure {
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

    /// `Some((errno, step))` if the child recorded a failure. Call only after `clone` has
    /// returned, when the child can no longer write.
    fn read(&self) -> Option<(c_int, u8)> {
        match self.step.load(Ordering::Relaxed) {
            0 => None,
            step => Some((self.errno.load(Ordering::Relaxed), step)),
        }
    }
}

/// The step of the child routine that failed, reported to the parent with `errno`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum ChildStep {
    /// `sigprocmask(SIG_SETMASK, {})`.
    SignalMask = 1,
    /// `setpgid(0, 0)`.
    ProcessGroup = 2,
    /// `prctl(PR_SET_PDEATHSIG)`.
    #[cfg(target_os = "linux")]
    DeathSignal = 3,
    /// The parent died before the death signal was armed (errno is `ESRCH`).
    #[cfg(target_os = "linux")]
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
}

impl ChildStep {
    /// Human-readable name of a step code received from the child, for the debug log.
    fn describe_code(code: u8) -> &'static str {
        match code {
            1 => "sigprocmask",
            2 => "setpgid",
            3 => "prctl(PR_SET_PDEATHSIG)",
            4 => "parent exited before PR_SET_PDEATHSIG",
            5 => "dup2(stdin)",
            6 => "dup2(stdout)",
            7 => "dup2(stderr)",
            8 => "chdir",
            9 => "execve",
            _ => "unknown",
        }
    }
}

/// Highest signal number reset to `SIG_DFL` in the child. Linux: `_NSIG - 1` = 64, real-time
/// signals included. macOS: 31 (`NSIG` is 32). Other unix systems: up to 128 (FreeBSD's
/// maximum); numbers a system does not have just fail with `EINVAL`, which is ignored.
#[cfg(target_os = "linux")]
const LAST_SIGNAL: c_int = 64;
/// See the Linux definition.
#[cfg(any(target_os = "macos", target_os = "ios"))]
const LAST_SIGNAL: c_int = 31;
/// See the Linux definition.
#[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "ios")))]
const LAST_SIGNAL: c_int = 128;

/// Cap on the fd-by-fd close-on-exec loop used where `close_range` is unavailable (macOS,
/// other unix systems, Linux before 5.11): one `fcntl` per fd, so a huge `RLIMIT_NOFILE`
/// (some containers set 2^30) must not make every spawn take seconds. Fds above the cap would
/// leak into the child on those systems; they only exist if the program opened that many.
/// Also the whole scan range on Linux when `close_range` works in the parent but fails in the
/// child after all (see [`fd_scan_limit`]).
const FD_SCAN_CAP: c_int = 65_536;

/// The trampoline `clone` calls in the child: `arg` is the parent's `&ChildArgs`.
#[cfg(target_os = "linux")]
extern "C" fn child_entry(arg: *mut c_void) -> c_int {
    // SAFETY: `spawn` passes a pointer to a live ChildArgs and stays suspended (CLONE_VFORK)
    // until we have exec'd or exited, so the reference is valid for as long as we use it.
    let args = unsafe { &*(arg as *const ChildArgs) };
    // SAFETY: we are the freshly cloned child, running on our own stack.
    unsafe { child_exec(args) }
}

/// The child's side of [`spawn`]: sets the process up and calls `execve`; never returns.
///
/// Every call here is async-signal-safe and nothing allocates, locks or unwinds: with `fork`
/// another thread may have held the allocator's lock at the moment of the fork; with
/// `CLONE_VM` this runs on the parent's memory and the parent thread's TLS. There is no
/// indexing that could panic and no formatting.
///
/// # Safety
///
/// Must only be called in a freshly created child process (after `fork` or `clone`), with all
/// signals blocked and `args` pointing to data that stays valid until `execve`.
unsafe fn child_exec(args: &ChildArgs) -> ! {
    // 1. Signal dispositions back to the default: an ignored signal (the Rust runtime ignores
    // SIGPIPE; a host may ignore others) survives execve. Errors (EINVAL for numbers the
    // system lacks or reserves) are ignored on purpose.
    let mut sig: c_int = 1;
    while sig <= LAST_SIGNAL {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            reset_disposition(sig, &args.default_action);
        }
        sig += 1;
    }
    // 2. An empty mask, only now that no handler is left to run: a blocked SIGTERM would make
    // terminate and timeouts do nothing.
    // SAFETY: sigprocmask is async-signal-safe; the child is single-threaded.
    if unsafe { libc::sigprocmask(libc::SIG_SETMASK, &args.empty_mask, ptr::null_mut()) } != 0 {
        report_and_exit(args, errno(), ChildStep::SignalMask);
    }
    // 3. Lead a new process group, so the whole tree can be signalled at once.
    // SAFETY: setpgid is async-signal-safe.
    if unsafe { libc::setpgid(0, 0) } != 0 {
        report_and_exit(args, errno(), ChildStep::ProcessGroup);
    }
    // 4. The parent-death signal, then the race where the parent died before it was armed:
    // the child was then reparented and getppid() changed.
    #[cfg(target_os = "linux")]
    if args.death_signal != 0 {
        if linux::set_parent_death_signal(args.death_signal) != 0 {
            report_and_exit(args, errno(), ChildStep::DeathSignal);
        }
        // SAFETY: getppid is async-signal-safe.
        if unsafe { libc::getppid() } != args.parent_pid {
            report_and_exit(args, libc::ESRCH, ChildStep::ParentGone);
        }
    }
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

/// Sets `sig` back to `SIG_DFL`; errors are ignored. Async-signal-safe.
///
/// Linux: the raw `rt_sigaction` system call (see `linux::reset_disposition`), because glibc's
/// `sigaction` refuses to touch signals 32 and 33 (its internal SIGCANCEL and SIGSETXID) and a
/// parent may well have them ignored: `cargo test` hands its test binaries signal 32 ignored.
/// Elsewhere `sigaction` with `default_action`.
fn reset_disposition(sig: c_int, default_action: &libc::sigaction) {
    #[cfg(target_os = "linux")]
    linux::reset_disposition(sig, default_action);
    #[cfg(not(target_os = "linux"))]
    // SAFETY: sigaction is async-signal-safe; both pointers are valid or NULL.
    unsafe {
        libc::sigaction(sig, default_action, ptr::null_mut())
    };
}

/// Marks every fd >= 3 close-on-exec: `close_range(CLOSE_RANGE_CLOEXEC)` on Linux 5.11+, else
/// (older Linux, seccomp refusing it, other unix systems) `fcntl(F_SETFD)` on each fd below
/// `limit`. Async-signal-safe.
fn mark_cloexec_from_3(limit: c_int) {
    #[cfg(target_os = "linux")]
    if linux::close_range_cloexec(3) == 0 {
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

/// Reports `errno` and `step` to the parent, then `_exit(127)`s. Async-signal-safe.
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

/// Writes `code` and `step` to the report pipe `fd`, retrying on `EINTR`. Async-signal-safe.
fn write_report(fd: c_int, code: c_int, step: ChildStep) {
    let e = code.to_ne_bytes();
    let message = [e[0], e[1], e[2], e[3], step as u8];
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
fn errno() -> c_int {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Reads the child's failure report: `Ok(None)` on EOF without data (exec succeeded),
/// `Ok(Some((errno, step)))` on a full report.
fn read_report(fd: &OwnedFd) -> io::Result<Option<(c_int, u8)>> {
    let mut buf = [0u8; 5];
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: the pointer and length describe `rest`, which we own mutably.
        let n = unsafe { libc::read(fd.as_raw_fd(), rest.as_mut_ptr().cast(), rest.len()) };
        if n == 0 {
            break;
        }
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        filled += n.unsigned_abs();
    }
    match filled {
        0 => Ok(None),
        5 => Ok(Some((
            c_int::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]),
            buf[4],
        ))),
        _ => Err(io::Error::other(
            "spawn: the child's failure report was cut short",
        )),
    }
}

/// Reaps `pid`, blocking until it has exited; used only for a child that failed before or at
/// `execve` and has therefore already called `_exit` (or been sent SIGKILL). `ECHILD` (the
/// host ignores SIGCHLD, so the child reaped itself) is fine.
fn reap_blocking(pid: libc::pid_t) {
    loop {
        let mut status = 0;
        // SAFETY: waitpid on one specific pid of ours; `status` is a valid out-pointer.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc >= 0 || errno() != libc::EINTR {
            return;
        }
    }
}

/// Blocks every signal in the calling thread until dropped, then restores the previous mask.
///
/// Around `clone(CLONE_VM)` this keeps any handler of the parent from running in the child on
/// borrowed memory before the child resets the dispositions; around `fork` it keeps handlers
/// from running in the child at all.
struct BlockedSignals {
    /// The mask to restore.
    previous: libc::sigset_t,
}

impl BlockedSignals {
    /// Blocks all signals (glibc silently keeps its two internal ones deliverable).
    fn all() -> io::Result<Self> {
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
fn default_action() -> libc::sigaction {
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
fn empty_sigset() -> libc::sigset_t {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the whole set.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        set.assume_init()
    }
}

/// The NULL-terminated pointer array `execve` wants, pointing into `strings`.
fn null_terminated(strings: &[CString]) -> Vec<*const c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(ptr::null()))
        .collect()
}

/// One past the highest fd the child's fallback loop visits (the loop runs only if
/// `close_range(CLOSE_RANGE_CLOEXEC)` fails in the child).
///
/// Where `close_range` works (probed once per process, see
/// `linux::close_range_cloexec_works`), the fallback should never run and no `getrlimit` is
/// spent per spawn: the limit is then [`FD_SCAN_CAP`], which covers at least as many fds as
/// the soft limit would, so the rare child that falls back anyway (a seccomp filter installed
/// after the probe) is slower, never leakier. Elsewhere: the soft `RLIMIT_NOFILE`, capped at
/// [`FD_SCAN_CAP`], read afresh each spawn. Not cached: the host may raise the limit at any
/// time (our own server does at start, see [`raise_fd_limit`]), and a stale, lower value
/// would leave the fds above it open in the child. Read in the parent because `getrlimit` in
/// the child would be one more call to audit.
fn fd_scan_limit() -> c_int {
    #[cfg(target_os = "linux")]
    if linux::close_range_cloexec_works() {
        return FD_SCAN_CAP;
    }
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return FD_SCAN_CAP;
    }
    c_int::try_from(limit.rlim_cur).map_or(FD_SCAN_CAP, |soft| soft.min(FD_SCAN_CAP))
}

/// Opens `/dev/null` read-only and close-on-exec, as the child's stdin (opened in the parent
/// so the child does not call `open`). Open it once and pass it as [`SpawnSpec::stdin`] to
/// every spawn to save an `open` and a `close` per spawn.
pub(crate) fn open_dev_null() -> io::Result<OwnedFd> {
    // SAFETY: the path is a valid C string literal.
    let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `(fd, None)` if `fd` is not 0, 1 or 2; else `(copy, Some(copy))` with a close-on-exec
/// copy >= 3 that the caller closes once the child has its own (a dup2 source of the child).
///
/// # Safety
///
/// If `fd` is 0, 1 or 2 it must be open for the duration of the call.
unsafe fn source_above_stdio(fd: RawFd) -> io::Result<(RawFd, Option<OwnedFd>)> {
    if !(0..3).contains(&fd) {
        return Ok((fd, None));
    }
    // SAFETY: the caller promises that `fd` is open; it is not -1.
    let copy = dup_above_stdio(unsafe { BorrowedFd::borrow_raw(fd) })?;
    Ok((copy.as_raw_fd(), Some(copy)))
}

/// Returns `fd` if it is >= 3, else a close-on-exec copy >= 3 (and closes the original).
fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() >= 3 {
        return Ok(fd);
    }
    dup_above_stdio(fd.as_fd())
}

/// A close-on-exec duplicate of `fd` numbered 3 or more (`F_DUPFD_CLOEXEC`).
fn dup_above_stdio(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) on a borrowed, hence open, fd.
    let copy = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if copy < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(copy) })
}

/// A pipe whose two ends are close-on-exec: `(read, write)`.
///
/// Linux: `pipe2(O_CLOEXEC)`, atomic. Other unix systems: `pipe` then `fcntl(FD_CLOEXEC)` on
/// each end; a `fork` in another thread between the two calls would leak the ends into that
/// child (our own [`spawn`] is immune: it marks every fd >= 3 close-on-exec in the child).
pub(crate) fn pipe_cloexec() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds: [c_int; 2] = [-1, -1];
    #[cfg(target_os = "linux")]
    // SAFETY: pipe2 writes two fds into the array we pass.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    #[cfg(not(target_os = "linux"))]
    // SAFETY: pipe writes two fds into the array we pass.
    let rc = unsafe { libc::pipe(fds.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned these two fds to us; nothing else owns them.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    #[cfg(not(target_os = "linux"))]
    for fd in [&read, &write] {
        set_cloexec(fd.as_fd())?;
    }
    Ok((read, write))
}

/// Sets `FD_CLOEXEC` on `fd` (the non-Linux half of [`pipe_cloexec`]).
#[cfg(not(target_os = "linux"))]
fn set_cloexec(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: fcntl(F_SETFD) on a borrowed, hence open, fd.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Switches `O_NONBLOCK` on or off for `fd` (it applies to the open file description, so to
/// every duplicate of the fd too).
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>, nonblocking: bool) -> io::Result<()> {
    // SAFETY: fcntl(F_GETFL) on a borrowed, hence open, fd.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    let new = if nonblocking {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    // SAFETY: fcntl(F_SETFL) on a borrowed, hence open, fd.
    if new != flags && unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, new) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

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
/// `ESRCH` when nothing is left to signal. A `pgid` of 1 or less is refused with `EINVAL`
/// without any system call: `killpg(0)` would hit our own group and `killpg(1)` every
/// process we may signal.
pub(crate) fn signal_group(
    pidfd: Option<BorrowedFd<'_>>,
    pgid: libc::pid_t,
    sig: c_int,
    by_number_ok: bool,
) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    if let Some(pidfd) = pidfd {
        match linux::pidfd_send_signal(pidfd, sig, linux::PIDFD_SIGNAL_PROCESS_GROUP) {
            Ok(()) => return Ok(()),
            Err(err) if matches!(err.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) => {
                log::debug!(
                    "pidfd_send_signal(PIDFD_SIGNAL_PROCESS_GROUP) failed: {err}; \
                     killpg allowed: {by_number_ok}"
                );
            }
            Err(err) => return Err(err),
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = pidfd;
    if !by_number_ok {
        return Err(io::Error::from_raw_os_error(libc::ESRCH));
    }
    if pgid <= 1 {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: killpg takes integers only; pgid > 1 was checked above, and the caller vouches
    // that the number still names our group.
    if unsafe { libc::killpg(pgid, sig) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Does the process group `pgid` still have members? `killpg(pgid, 0)`: `ESRCH` means no,
/// success or `EPERM` (a member we may not signal, e.g. after a setuid exec) mean yes.
///
/// An unreaped zombie counts as a member, and so does an orphaned member that exited but
/// that its new parent (init or a subreaper) has not reaped yet. `pgid <= 1` is never a group
/// we started: `false`.
#[allow(dead_code)] // used by the process manager (next step)
pub(crate) fn group_alive(pgid: libc::pid_t) -> bool {
    if pgid <= 1 {
        return false;
    }
    // SAFETY: killpg with signal 0 sends nothing; it only checks existence and permission.
    if unsafe { libc::killpg(pgid, 0) } == 0 {
        return true;
    }
    errno() != libc::ESRCH
}

/// Outcome of a non-blocking reap of one specific child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WaitOutcome {
    /// It has not exited yet.
    Running,
    /// It exited with this code (0..=255).
    Exited(i32),
    /// It was killed by this signal.
    Signaled(c_int),
    /// `ECHILD`: it is not (or no longer) our child to wait for: someone else reaped it, or
    /// the host ignores SIGCHLD so it reaped itself. It has exited; the status is lost.
    Unknown,
}

/// Reaps the given child if it has exited, without blocking.
///
/// Linux with a pidfd: `waitid(P_PIDFD, pidfd, WEXITED | WNOHANG)` (5.4+; `EINVAL` before,
/// then the pid is used). Otherwise `waitid(P_PID, pid, WEXITED | WNOHANG)`. Never
/// `waitpid(-1)`: the embedding program owns its other children. `ECHILD` gives
/// [`WaitOutcome::Unknown`]. Call it once per exit: after a successful reap the pid is free
/// for reuse.
pub(crate) fn try_reap(pid: libc::pid_t, pidfd: Option<BorrowedFd<'_>>) -> io::Result<WaitOutcome> {
    let flags = libc::WEXITED | libc::WNOHANG;
    #[cfg(target_os = "linux")]
    if let Some(pidfd) = pidfd {
        let id = libc::id_t::try_from(pidfd.as_raw_fd()).unwrap_or(libc::id_t::MAX);
        match waitid(libc::P_PIDFD, id, flags) {
            Err(err) if err.raw_os_error() == Some(libc::EINVAL) => {}
            other => return other,
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = pidfd;
    waitid(libc::P_PID, pid_as_id(pid)?, flags)
}

/// Blocks until the child has exited, without reaping it (`waitid(P_PID, pid, WEXITED |
/// WNOWAIT)`), retrying on `EINTR`.
///
/// Used by a per-child waiter thread on unix systems without pidfds: the zombie stays, so its
/// pid (and process group id) stays pinned until the reaper reaps it under its own lock.
/// `ECHILD` returns `Ok(())` as well (exited, status unknown; [`try_reap`] then says
/// [`WaitOutcome::Unknown`]).
pub(crate) fn wait_exit_no_reap(pid: libc::pid_t) -> io::Result<()> {
    waitid(libc::P_PID, pid_as_id(pid)?, libc::WEXITED | libc::WNOWAIT).map(|_| ())
}

/// A pid as the `id_t` waitid wants; pids <= 0 are refused (they mean "any child" to other
/// wait calls, which this layer never does).
fn pid_as_id(pid: libc::pid_t) -> io::Result<libc::id_t> {
    match libc::id_t::try_from(pid) {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(io::Error::from_raw_os_error(libc::EINVAL)),
    }
}

/// `waitid` for one child, retried on `EINTR`, decoded into a [`WaitOutcome`].
fn waitid(idtype: libc::idtype_t, id: libc::id_t, flags: c_int) -> io::Result<WaitOutcome> {
    loop {
        // SAFETY: siginfo_t is a plain C struct for which all-zero is valid; zeroing is also
        // how WNOHANG's "nothing yet" is told apart (si_pid stays 0).
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid writes into the siginfo_t we pass; idtype is P_PID or P_PIDFD.
        if unsafe { libc::waitid(idtype, id, &mut info, flags) } != 0 {
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::ECHILD) => return Ok(WaitOutcome::Unknown),
                _ => return Err(err),
            }
        }
        // SAFETY: after a successful waitid for a child, the si_pid and si_status members of
        // the union are the ones the kernel filled in (or left zero).
        let (child, status) = unsafe { (info.si_pid(), info.si_status()) };
        if child == 0 {
            return Ok(WaitOutcome::Running);
        }
        return Ok(match info.si_code {
            libc::CLD_EXITED => WaitOutcome::Exited(status),
            libc::CLD_KILLED | libc::CLD_DUMPED => WaitOutcome::Signaled(status),
            _ => WaitOutcome::Unknown,
        });
    }
}

/// `poll(2)` on `fds` for readability, with a timeout (`None` waits forever).
///
/// On return `ready` holds the indices (into `fds`) of the fds that are readable or have hung
/// up or failed (`POLLIN`, `POLLHUP`, `POLLERR`, `POLLNVAL`: in each case a `read` will not
/// block and will tell what happened); it is empty on timeout. `EINTR` is retried with the
/// time that remains. Timeouts are rounded up to whole milliseconds, so this never returns
/// before the timeout has fully passed.
pub(crate) fn poll_readable(
    fds: &[BorrowedFd<'_>],
    timeout: Option<Duration>,
    ready: &mut Vec<usize>,
) -> io::Result<()> {
    ready.clear();
    let mut pollfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let count = libc::nfds_t::try_from(pollfds.len())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // A timeout too large for an Instant is as good as none.
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    loop {
        let timeout_ms = deadline.map_or(-1, millis_until);
        // SAFETY: `pollfds` is a valid array of `count` pollfd structs we own.
        let n = unsafe { libc::poll(pollfds.as_mut_ptr(), count, timeout_ms) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if n == 0 {
            // Timed out, or a wait capped at i32::MAX ms ended early: go on if time remains.
            if deadline.is_none_or(|d| Instant::now() < d) {
                continue;
            }
            return Ok(());
        }
        ready.extend(
            pollfds
                .iter()
                .enumerate()
                .filter(|(_, p)| p.revents != 0)
                .map(|(i, _)| i),
        );
        return Ok(());
    }
}

/// Milliseconds from now until `deadline`, rounded up and capped at `i32::MAX`.
fn millis_until(deadline: Instant) -> c_int {
    let nanos = deadline
        .saturating_duration_since(Instant::now())
        .as_nanos();
    c_int::try_from(nanos.div_ceil(1_000_000)).unwrap_or(c_int::MAX)
}

/// A self-pipe style wake-up for the supervisor's poll loop: put [`Waker::fd`] in the poll set,
/// call [`Waker::wake`] from any thread, and [`Waker::drain`] after poll reports it readable.
///
/// Linux: one eventfd (`EFD_CLOEXEC | EFD_NONBLOCK`): one fd and an 8-byte counter instead of
/// a pipe's two fds and buffer. Other unix systems: a nonblocking close-on-exec pipe.
#[derive(Debug)]
pub(crate) struct Waker {
    /// The eventfd: both the end to poll and the end to write.
    #[cfg(target_os = "linux")]
    fd: OwnedFd,
    /// Read end of the pipe (polled and drained).
    #[cfg(not(target_os = "linux"))]
    read: OwnedFd,
    /// Write end of the pipe (written by `wake`).
    #[cfg(not(target_os = "linux"))]
    write: OwnedFd,
}

impl Waker {
    /// Creates a waker that is not yet readable.
    pub(crate) fn new() -> io::Result<Self> {
        #[cfg(target_os = "linux")]
        {
            Ok(Waker {
                fd: linux::eventfd_nonblocking()?,
            })
        }
        #[cfg(not(target_os = "linux"))]
        {
            let (read, write) = pipe_cloexec()?;
            set_nonblocking(read.as_fd(), true)?;
            set_nonblocking(write.as_fd(), true)?;
            Ok(Waker { read, write })
        }
    }

    /// Makes [`Waker::fd`] readable. Never blocks: when the eventfd counter or the pipe is
    /// full, a wake-up is already pending and `EAGAIN` is ignored.
    pub(crate) fn wake(&self) {
        #[cfg(target_os = "linux")]
        let (fd, bytes) = (self.fd.as_raw_fd(), 1u64.to_ne_bytes());
        #[cfg(not(target_os = "linux"))]
        let (fd, bytes) = (self.write.as_raw_fd(), [1u8]);
        loop {
            // SAFETY: the pointer and length describe `bytes`; the fd is ours and open.
            let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
            if n >= 0 {
                return;
            }
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => return,
                _ => {
                    log::debug!("Waker::wake: {err}");
                    return;
                }
            }
        }
    }

    /// Consumes all pending wake-ups (reads until `EAGAIN`), so [`Waker::fd`] is no longer
    /// readable until the next [`Waker::wake`].
    pub(crate) fn drain(&self) {
        #[cfg(target_os = "linux")]
        let fd = self.fd.as_raw_fd();
        #[cfg(not(target_os = "linux"))]
        let fd = self.read.as_raw_fd();
        let mut buf = [0u8; 64];
        loop {
            // SAFETY: the pointer and length describe `buf`; the fd is ours and open.
            let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
            if n > 0 {
                continue;
            }
            if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return; // EAGAIN: drained (EOF cannot happen: we hold the write end)
        }
    }

    /// The fd to include in the poll set.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        #[cfg(target_os = "linux")]
        {
            self.fd.as_fd()
        }
        #[cfg(not(target_os = "linux"))]
        {
            self.read.as_fd()
        }
    }
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
        #[cfg(target_os = "linux")]
        libc::SIGSTKFLT => "SIGSTKFLT",
        #[cfg(target_os = "linux")]
        libc::SIGPWR => "SIGPWR",
        #[cfg(any(target_os = "macos", target_os = "ios"))]
        libc::SIGEMT => "SIGEMT",
        #[cfg(any(target_os = "macos", target_os = "ios"))]
        libc::SIGINFO => "SIGINFO",
        _ => return Cow::Owned(unnamed_signal(sig)),
    };
    Cow::Borrowed(name)
}

/// Names a signal outside the static table.
fn unnamed_signal(sig: c_int) -> String {
    #[cfg(target_os = "linux")]
    {
        let (min, max) = (libc::SIGRTMIN(), libc::SIGRTMAX());
        if sig == min {
            return "SIGRTMIN".to_owned();
        }
        if sig > min && sig <= max {
            return format!("SIGRTMIN+{}", sig - min);
        }
    }
    format!("SIG{sig}")
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns the new soft limit (used by
/// the server binary at start: every child costs the supervisor a pipe and a pidfd).
///
/// macOS refuses a soft limit above `OPEN_MAX` (10240) even when the hard limit is
/// "unlimited", so there the limit is capped at 10240.
#[allow(dead_code)] // used by the server binary at start (next step)
pub(crate) fn raise_fd_limit() -> io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    #[cfg(any(target_os = "macos", target_os = "ios"))]
    let target = limit.rlim_max.min(10_240);
    #[cfg(not(any(target_os = "macos", target_os = "ios")))]
    let target = limit.rlim_max;
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

/// The number of fds this process has open, for tests and diagnostics: the entries of
/// `/proc/self/fd` (Linux) or `/dev/fd` (elsewhere), minus the one fd the listing itself
/// holds open while it is read.
#[cfg_attr(not(test), allow(dead_code))] // for tests and diagnostics
pub(crate) fn open_fd_count() -> io::Result<usize> {
    let dir = if cfg!(target_os = "linux") {
        "/proc/self/fd"
    } else {
        "/dev/fd"
    };
    let mut count = 0usize;
    for entry in std::fs::read_dir(dir)? {
        entry?;
        count += 1;
    }
    Ok(count.saturating_sub(1))
}

#[cfg(test)]
mod tests {
    //! Tests over real processes. Every wait is bounded by [`DEADLINE`]; every child is killed
    //! (its group, through its pidfd or while it is unreaped) and reaped if a test fails early;
    //! nothing that these tests did not start is ever signalled.

    use super::*;
    use std::cell::Cell;
    use std::fs::File;
    use std::io::Read;
    use std::path::Path;

    /// What `spawn` learnt about the last child that failed on this thread.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(super) struct FailedChild {
        /// Its pid, so a test can check that `spawn` reaped it.
        pub(super) pid: libc::pid_t,
        /// The step code it reported.
        pub(super) step: u8,
        /// Whether the report came through the pipe (else through shared memory).
        pub(super) via_pipe: bool,
    }

    thread_local! {
        /// The last child whose spawn failed on this thread.
        pub(super) static LAST_FAILED_CHILD: Cell<Option<FailedChild>> = const { Cell::new(None) };
    }

    /// Upper bound on anything a test waits for.
    const DEADLINE: Duration = Duration::from_secs(10);

    /// Both ways of creating a child; every spawn behaviour is pinned for each.
    const METHODS: [SpawnMethod; 2] = [SpawnMethod::CloneVfork, SpawnMethod::Fork];

    /// Environment for test children: enough for `sh` to find tools, and a fixed locale.
    const TEST_ENV: [&str; 2] = ["PATH=/usr/bin:/bin", "LC_ALL=C"];

    /// A `CString` from a test literal.
    fn cstring(s: &str) -> CString {
        CString::new(s).expect("test strings have no NUL")
    }

    /// The absolute path of a standard tool (the child does no PATH search).
    fn tool(name: &str) -> CString {
        ["/usr/bin", "/bin"]
            .iter()
            .map(|dir| Path::new(dir).join(name))
            .find(|path| path.exists())
            .map(|path| cstring(path.to_str().expect("utf-8 path")))
            .unwrap_or_else(|| panic!("{name} not found in /usr/bin or /bin"))
    }

    /// A spec with [`TEST_ENV`], cwd `/` and no parent-death signal.
    fn spec(method: SpawnMethod, path: CString, argv: &[&str], output: RawFd) -> SpawnSpec {
        SpawnSpec {
            path,
            argv: argv.iter().map(|a| cstring(a)).collect(),
            envp: Arc::new(TEST_ENV.iter().map(|e| cstring(e)).collect()),
            cwd: cstring("/"),
            output,
            stdin: None,
            parent_death_signal: None,
            method,
        }
    }

    /// A spec running `/bin/sh -c script`.
    fn sh(method: SpawnMethod, script: &str, output: RawFd) -> SpawnSpec {
        spec(method, cstring("/bin/sh"), &["sh", "-c", script], output)
    }

    /// A child under test: killed (whole group) and reaped on drop unless the test reaped it.
    struct TestChild {
        pid: libc::pid_t,
        pidfd: Option<OwnedFd>,
        reaped: bool,
    }

    impl TestChild {
        /// Spawns `spec`, failing the test on error.
        fn spawn(spec: &SpawnSpec) -> Self {
            Self::from(spawn(spec).expect("spawn"))
        }

        /// The pidfd, borrowed.
        fn pidfd(&self) -> Option<BorrowedFd<'_>> {
            self.pidfd.as_ref().map(|fd| fd.as_fd())
        }

        /// Waits (pidfd readability; without a pidfd, `wait_exit_no_reap`) and reaps.
        fn wait(&mut self) -> WaitOutcome {
            let deadline = Instant::now() + DEADLINE;
            loop {
                let outcome = try_reap(self.pid, self.pidfd()).expect("try_reap");
                if outcome != WaitOutcome::Running {
                    self.reaped = true;
                    return outcome;
                }
                let remaining = deadline
                    .checked_duration_since(Instant::now())
                    .unwrap_or_else(|| {
                        panic!("child {} did not exit within {DEADLINE:?}", self.pid)
                    });
                match self.pidfd() {
                    Some(fd) => {
                        poll_readable(&[fd], Some(remaining), &mut Vec::new()).expect("poll")
                    }
                    None => wait_exit_no_reap(self.pid).expect("wait_exit_no_reap"),
                }
            }
        }
    }

    impl From<SpawnedChild> for TestChild {
        fn from(child: SpawnedChild) -> Self {
            TestChild {
                pid: child.pid,
                pidfd: child.pidfd,
                reaped: false,
            }
        }
    }

    impl Drop for TestChild {
        fn drop(&mut self) {
            // Unreaped, the zombie pins the group id and killpg is safe; reaped, only the
            // pidfd still names the group.
            let _ = signal_group(self.pidfd(), self.pid, libc::SIGKILL, !self.reaped);
            if !self.reaped {
                reap_blocking(self.pid);
            }
        }
    }

    /// Reads until EOF, failing the test at the deadline.
    fn read_to_eof(read: OwnedFd) -> String {
        let deadline = Instant::now() + DEADLINE;
        let mut out = Vec::new();
        let mut file = File::from(read);
        let mut chunk = [0u8; 4096];
        loop {
            let remaining = deadline
                .checked_duration_since(Instant::now())
                .expect("no EOF on the output pipe before the deadline");
            let mut ready = Vec::new();
            poll_readable(&[file.as_fd()], Some(remaining), &mut ready).expect("poll");
            if ready.is_empty() {
                continue;
            }
            match file.read(&mut chunk).expect("read") {
                0 => return String::from_utf8(out).expect("utf-8 output"),
                n => out.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Reads until the output holds a newline (for children whose pipe stays open).
    #[cfg(target_os = "linux")]
    fn read_line(read: &OwnedFd) -> String {
        let deadline = Instant::now() + DEADLINE;
        let mut out = Vec::new();
        let mut chunk = [0u8; 256];
        while !out.contains(&b'\n') {
            let remaining = deadline
                .checked_duration_since(Instant::now())
                .expect("no line on the output pipe before the deadline");
            let mut ready = Vec::new();
            poll_readable(&[read.as_fd()], Some(remaining), &mut ready).expect("poll");
            if ready.is_empty() {
                continue;
            }
            // SAFETY: the pointer and length describe `chunk`; the fd is open.
            let n = unsafe { libc::read(read.as_raw_fd(), chunk.as_mut_ptr().cast(), chunk.len()) };
            assert!(
                n > 0,
                "EOF or error before a full line: {}",
                io::Error::last_os_error()
            );
            out.extend_from_slice(&chunk[..n.unsigned_abs()]);
        }
        String::from_utf8(out).expect("utf-8 output")
    }

    /// Runs `spec` with its output into a fresh pipe; returns everything it wrote and how it
    /// ended.
    fn run(mut spec: SpawnSpec) -> (String, WaitOutcome) {
        let (read, write) = pipe_cloexec().expect("pipe");
        spec.output = write.as_raw_fd();
        let mut child = TestChild::spawn(&spec);
        drop(write);
        let output = read_to_eof(read);
        (output, child.wait())
    }

    /// Asserts `spawn(spec)` fails with `errno`, reported by the child at `step` through the
    /// channel its method uses (shared memory for `CloneVfork` on Linux, else the pipe), and
    /// reaped the child it started.
    fn assert_spawn_fails(spec: &SpawnSpec, errno: c_int, step: ChildStep) {
        LAST_FAILED_CHILD.with(|last| last.set(None));
        let err = spawn(spec).expect_err("spawn should fail");
        assert_eq!(err.raw_os_error(), Some(errno), "{err}");
        let failed = LAST_FAILED_CHILD
            .with(Cell::get)
            .expect("the failure was reported by a child");
        assert_eq!(
            ChildStep::describe_code(failed.step),
            ChildStep::describe_code(step as u8)
        );
        let shared_memory = cfg!(target_os = "linux") && spec.method == SpawnMethod::CloneVfork;
        assert_eq!(failed.via_pipe, !shared_memory, "report channel");
        assert!(failed.pid > 0);
        assert_not_our_child(failed.pid);
    }

    /// A regular file `name` in a fresh temporary directory, with `contents` and `mode`;
    /// removed (with its directory) on drop.
    struct TempFile {
        dir: std::path::PathBuf,
        path: std::path::PathBuf,
    }

    impl TempFile {
        fn new(name: &str, contents: &str, mode: u32) -> Self {
            use std::os::unix::fs::PermissionsExt;
            use std::sync::atomic::AtomicUsize;
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "procwarden-sys-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join(name);
            std::fs::write(&path, contents).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            TempFile { dir, path }
        }

        fn cstring(&self) -> CString {
            cstring(self.path.to_str().expect("utf-8 temp path"))
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// `pid` is not (any more) a child of ours: it was reaped, so no zombie is left behind.
    fn assert_not_our_child(pid: libc::pid_t) {
        // SAFETY: siginfo_t is plain data for which all-zero is valid.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
        // SAFETY: waitid writes `info`; WNOWAIT | WNOHANG on one pid changes nothing.
        let rc = unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, flags) };
        assert_eq!(rc, -1, "pid {pid} is still our child (a zombie?)");
        assert_eq!(errno(), libc::ECHILD);
    }

    /// Polls `condition` against the deadline, for what the kernel cannot signal (a process
    /// leaving /proc, init reaping an orphan).
    #[cfg(target_os = "linux")]
    fn wait_until(what: &str, deadline: Duration, mut condition: impl FnMut() -> bool) {
        let deadline = Instant::now() + deadline;
        while !condition() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Members of process group `pgid` per /proc: `(pid, state)`; state `Z` is a zombie.
    #[cfg(target_os = "linux")]
    fn group_members(pgid: libc::pid_t) -> Vec<(libc::pid_t, char)> {
        let mut members = Vec::new();
        for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<libc::pid_t>() else {
                continue;
            };
            // The process may vanish while we look: skip it then.
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
            let Some(after_comm) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                continue;
            };
            let fields: Vec<&str> = after_comm.split_whitespace().collect();
            if fields.get(2).and_then(|f| f.parse::<libc::pid_t>().ok()) == Some(pgid) {
                let state = fields[0].chars().next().unwrap_or('?');
                members.push((pid, state));
            }
        }
        members
    }

    /// How many members of `pgid` are running (not zombies).
    #[cfg(target_os = "linux")]
    fn live_group_members(pgid: libc::pid_t) -> usize {
        group_members(pgid)
            .iter()
            .filter(|(_, state)| *state != 'Z')
            .count()
    }

    /// Generates one `#[test]` per spawn method: `<name>::clone_vfork` and `<name>::fork`.
    macro_rules! for_each_method {
        ($($(#[$attr:meta])* fn $name:ident($method:ident) $body:block)*) => {$(
            $(#[$attr])*
            mod $name {
                #[allow(unused_imports)] // not every body needs every helper
                use super::*;

                fn check($method: SpawnMethod) $body

                #[test]
                fn clone_vfork() {
                    check(SpawnMethod::CloneVfork)
                }

                #[test]
                fn fork() {
                    check(SpawnMethod::Fork)
                }
            }
        )*};
    }

    for_each_method! {
        fn stdout_and_stderr_share_one_pipe_in_order(method) {
            let (output, outcome) = run(sh(method, "echo hi; echo err >&2", -1));
            assert_eq!(output, "hi\nerr\n");
            assert_eq!(outcome, WaitOutcome::Exited(0));
        }

        #[cfg(target_os = "linux")]
        fn exit_code_is_reaped_once_the_pidfd_is_readable(method) {
            let mut child = TestChild::spawn(&sh(method, "exit 42", 2));
            let pidfd = child.pidfd().expect("a pidfd on Linux 5.3+");
            let mut ready = Vec::new();
            poll_readable(&[pidfd], Some(DEADLINE), &mut ready).expect("poll");
            assert_eq!(ready, [0], "the pidfd becomes readable when the child exits");
            assert_eq!(try_reap(child.pid, child.pidfd()).unwrap(), WaitOutcome::Exited(42));
            child.reaped = true;
            // Reaped once: a second reap finds nothing to wait for.
            assert_eq!(try_reap(child.pid, child.pidfd()).unwrap(), WaitOutcome::Unknown);
        }

        fn missing_executable_is_enoent_and_the_child_is_reaped(method) {
            let spec = spec(method, cstring("/nonexistent/procwarden-test"), &["x"], 2);
            assert_spawn_fails(&spec, libc::ENOENT, ChildStep::Exec);
        }

        fn non_executable_file_is_eacces_and_the_child_is_reaped(method) {
            let spec = spec(method, cstring("/dev/null"), &["x"], 2);
            assert_spawn_fails(&spec, libc::EACCES, ChildStep::Exec);
        }

        fn script_without_execute_permission_is_eacces_at_exec(method) {
            // Mode 0644: no execute bit for anyone, so even root gets EACCES.
            let script = TempFile::new("script", "#!/bin/sh\nexit 0\n", 0o644);
            let failing = spec(method, script.cstring(), &["script"], 2);
            assert_spawn_fails(&failing, libc::EACCES, ChildStep::Exec);
            // The same file made executable runs: the failure was the mode, nothing else.
            let script = TempFile::new("script", "#!/bin/sh\necho ran\n", 0o755);
            let working = spec(method, script.cstring(), &["script"], -1);
            assert_eq!(run(working), ("ran\n".to_owned(), WaitOutcome::Exited(0)));
        }

        fn missing_cwd_is_enoent_and_the_child_is_reaped(method) {
            let mut spec = sh(method, "exit 0", 2);
            spec.cwd = cstring("/nonexistent/procwarden-test-dir");
            assert_spawn_fails(&spec, libc::ENOENT, ChildStep::Chdir);
        }

        fn cwd_that_is_a_file_is_enotdir_at_chdir(method) {
            let file = TempFile::new("not-a-dir", "", 0o644);
            let mut spec = sh(method, "exit 0", 2);
            spec.cwd = file.cstring();
            assert_spawn_fails(&spec, libc::ENOTDIR, ChildStep::Chdir);
        }

        fn failures_and_successes_alternate_without_mixing_up(method) {
            // A report left over from a failed spawn must not leak into the next one.
            for i in 0..6 {
                if i % 2 == 0 {
                    assert_spawn_fails(
                        &spec(method, cstring("/nonexistent/x"), &["x"], 2),
                        libc::ENOENT,
                        ChildStep::Exec,
                    );
                } else {
                    assert_eq!(run(sh(method, "exit 5", -1)), (String::new(), WaitOutcome::Exited(5)));
                }
            }
        }

        #[cfg(target_os = "linux")]
        fn given_stdin_fd_is_dev_null_and_reads_eof(method) {
            let devnull = open_dev_null().unwrap();
            for _ in 0..3 {
                let mut spec = sh(method, "readlink /proc/self/fd/0; cat; echo \"eof $?\"", -1);
                spec.stdin = Some(devnull.as_raw_fd());
                assert_eq!(
                    run(spec),
                    ("/dev/null\neof 0\n".to_owned(), WaitOutcome::Exited(0))
                );
                // The caller's fd is still open (and still close-on-exec) after each spawn.
                // SAFETY: F_GETFD on an fd we own.
                let flags = unsafe { libc::fcntl(devnull.as_raw_fd(), libc::F_GETFD) };
                assert_eq!(flags, libc::FD_CLOEXEC);
            }
        }

        fn cwd_is_applied(method) {
            let dir = std::env::temp_dir()
                .join(format!("procwarden-sys-cwd-{}-{method:?}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let dir = dir.canonicalize().unwrap();
            let mut spec = sh(method, "pwd -P", -1);
            spec.cwd = cstring(dir.to_str().unwrap());
            let (output, outcome) = run(spec);
            std::fs::remove_dir(&dir).unwrap();
            assert_eq!(output, format!("{}\n", dir.display()));
            assert_eq!(outcome, WaitOutcome::Exited(0));
        }

        fn environment_is_exactly_envp(method) {
            let mut spec = spec(method, tool("env"), &["env"], -1);
            spec.envp = Arc::new(["FOO=bar baz", "EMPTY=", "PATH=/nowhere"].map(cstring).to_vec());
            let (output, outcome) = run(spec);
            assert_eq!(output, "FOO=bar baz\nEMPTY=\nPATH=/nowhere\n");
            assert_eq!(outcome, WaitOutcome::Exited(0));
        }

        fn shell_sees_envp_and_nothing_inherited(method) {
            // HOME is set in almost every parent environment; the child must not inherit it.
            let mut spec = sh(method, r#"echo "$FOO"; echo "${HOME-unset}""#, -1);
            Arc::make_mut(&mut spec.envp).push(cstring("FOO=bar"));
            let (output, outcome) = run(spec);
            assert_eq!(output, "bar\nunset\n");
            assert_eq!(outcome, WaitOutcome::Exited(0));
        }

        fn child_leads_its_own_process_group(method) {
            let mut child = TestChild::spawn(&spec(method, tool("sleep"), &["sleep", "30"], 2));
            // SAFETY: getpgid/getsid take integers only; the child is unreaped.
            // SAFETY: getpgid takes integers only; the child is unreaped, its pid is pinned.
            let (child_group, our_group) = unsafe { (libc::getpgid(child.pid), libc::getpgid(0)) };
            assert_eq!(child_group, child.pid);
            assert_ne!(child_group, our_group);
            // Same session: setpgid, not setsid.
            // SAFETY: getsid takes integers only.
            let (child_session, our_session) = unsafe { (libc::getsid(child.pid), libc::getsid(0)) };
            assert_eq!(child_session, our_session);
            signal_group(child.pidfd(), child.pid, libc::SIGKILL, true).unwrap();
            assert_eq!(child.wait(), WaitOutcome::Signaled(libc::SIGKILL));
        }

        #[cfg(target_os = "linux")]
        fn child_starts_with_default_dispositions_and_an_empty_mask(method) {
            // The Rust runtime ignores SIGPIPE in this process: the child must not inherit it.
            // SAFETY: querying a disposition (NULL new action) changes nothing.
            // SAFETY: sigaction is plain data for which all-zero is valid.
            let mut current: libc::sigaction = unsafe { std::mem::zeroed() };
            // SAFETY: a NULL new action only reads the disposition into `current`.
            unsafe { libc::sigaction(libc::SIGPIPE, ptr::null(), &mut current) };
            assert_eq!(current.sa_sigaction, libc::SIG_IGN, "precondition: SIGPIPE ignored");

            // Block SIGTERM in this thread only, as a sigwait-style host would.
            let mut term = empty_sigset();
            let mut previous = empty_sigset();
            // SAFETY: valid sigset pointers; only this test thread's mask changes.
            unsafe {
                libc::sigaddset(&mut term, libc::SIGTERM);
                libc::pthread_sigmask(libc::SIG_BLOCK, &term, &mut previous);
            }
            let grep = spec(
                method,
                tool("grep"),
                &["grep", "-E", "^(SigBlk|SigIgn)", "/proc/self/status"],
                -1,
            );
            let (read, write) = pipe_cloexec().unwrap();
            let mut grep = grep;
            grep.output = write.as_raw_fd();
            let spawned = spawn(&grep);
            // spawn restored our mask: SIGTERM is still blocked here, and only SIGTERM.
            let mut now = empty_sigset();
            // SAFETY: reading the mask (NULL new set) changes nothing.
            let (term_blocked, usr1_blocked) = unsafe {
                libc::pthread_sigmask(libc::SIG_BLOCK, ptr::null(), &mut now);
                let flags = (libc::sigismember(&now, libc::SIGTERM), libc::sigismember(&now, libc::SIGUSR1));
                libc::pthread_sigmask(libc::SIG_SETMASK, &previous, ptr::null_mut());
                flags
            };
            let mut child = TestChild::from(spawned.expect("spawn"));
            drop(write);
            let output = read_to_eof(read);
            assert_eq!(child.wait(), WaitOutcome::Exited(0));
            assert_eq!((term_blocked, usr1_blocked), (1, 0), "the caller's mask is restored");
            assert_eq!(output, "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");
        }

        #[cfg(target_os = "linux")]
        fn stdin_is_dev_null(method) {
            let spec = spec(method, tool("readlink"), &["readlink", "/proc/self/fd/0"], -1);
            assert_eq!(run(spec), ("/dev/null\n".to_owned(), WaitOutcome::Exited(0)));
        }

        #[cfg(target_os = "linux")]
        fn no_fd_beyond_stdio_leaks_into_the_child(method) {
            // An fd opened without O_CLOEXEC, as careless library code would.
            let (keep_read, _keep_write) = pipe_cloexec().unwrap();
            // SAFETY: F_DUPFD (no CLOEXEC) on an open fd; the copy is owned right away.
            let leaky = unsafe { libc::fcntl(keep_read.as_raw_fd(), libc::F_DUPFD, 100) };
            assert!(leaky >= 100, "{}", io::Error::last_os_error());
            // SAFETY: the kernel just gave us this fd; nothing else owns it.
            let leaky = unsafe { OwnedFd::from_raw_fd(leaky) };
            // SAFETY: F_GETFD on an open fd.
            let fd_flags = unsafe { libc::fcntl(leaky.as_raw_fd(), libc::F_GETFD) };
            assert_eq!(fd_flags & libc::FD_CLOEXEC, 0, "the leaky fd is inheritable");

            let (output, outcome) = run(spec(method, tool("ls"), &["ls", "/proc/self/fd"], -1));
            // 0, 1, 2, and the fd ls itself holds on /proc/self/fd while listing it. Nothing else:
            // not the leaky fd, not the report pipe, not /dev/null's source fd.
            assert_eq!(output, "0\n1\n2\n3\n");
            assert_eq!(outcome, WaitOutcome::Exited(0));
            drop(leaky);
        }

        #[cfg(target_os = "linux")]
        fn signal_group_kills_every_member_of_a_pipeline(method) {
            let (read, write) = pipe_cloexec().unwrap();
            let script = "sleep 100 | sleep 100 & echo started; wait";
            let mut child = TestChild::spawn(&sh(method, script, write.as_raw_fd()));
            drop(write);
            assert_eq!(read_line(&read), "started\n");
            let pgid = child.pid;
            // Both sleeps were forked before "started" was printed: the shell and them.
            assert!(live_group_members(pgid) >= 3, "{:?}", group_members(pgid));

            signal_group(child.pidfd(), pgid, libc::SIGKILL, true).unwrap();
            assert_eq!(child.wait(), WaitOutcome::Signaled(libc::SIGKILL));
            wait_until("no member of the pipeline runs", Duration::from_secs(5), || {
                live_group_members(pgid) == 0
            });
            // The orphaned sleeps are zombies of init until it reaps them; init here reaps
            // lazily (every ~2 s was seen), so this waits longer than the kill itself.
            wait_until("the group is empty", Duration::from_secs(15), || !group_alive(pgid));
        }

        #[cfg(target_os = "linux")]
        fn signal_group_reaches_members_after_the_leader_is_reaped(method) {
            let (read, write) = pipe_cloexec().unwrap();
            let script = "sleep 30 & echo started; exit 0";
            let mut child = TestChild::spawn(&sh(method, script, write.as_raw_fd()));
            drop(write);
            assert_eq!(read_line(&read), "started\n");
            assert_eq!(child.wait(), WaitOutcome::Exited(0));
            let pgid = child.pid;
            assert_eq!(live_group_members(pgid), 1, "the background sleep outlives its leader");
            assert!(group_alive(pgid));

            // Through the reaped leader's pidfd: PIDFD_SIGNAL_PROCESS_GROUP (Linux 6.9+).
            let pidfd = child.pidfd().expect("a pidfd on Linux");
            if let Err(err) = linux::pidfd_send_signal(pidfd, 0, linux::PIDFD_SIGNAL_PROCESS_GROUP) {
                eprintln!("skipped: this kernel has no PIDFD_SIGNAL_PROCESS_GROUP ({err})");
                return;
            }
            // The number is not pinned any more: the pidfd alone must do it.
            signal_group(Some(pidfd), pgid, libc::SIGKILL, false)
                .expect("group signal via a reaped leader's pidfd");
            wait_until("the background sleep is killed", Duration::from_secs(5), || {
                live_group_members(pgid) == 0
            });
            wait_until("the group is empty", Duration::from_secs(15), || !group_alive(pgid));
            let err = signal_group(Some(pidfd), pgid, libc::SIGKILL, false)
                .expect_err("nothing is left");
            assert_eq!(err.raw_os_error(), Some(libc::ESRCH));
        }

        #[cfg(target_os = "linux")]
        fn parent_death_signal_fires_when_the_spawning_thread_exits(method) {
            let mut spec = spec(method, tool("sleep"), &["sleep", "30"], 2);
            spec.parent_death_signal = Some(libc::SIGKILL);
            let spawned = std::thread::spawn(move || spawn(&spec).expect("spawn"))
                .join()
                .expect("spawning thread");
            // The spawning thread has exited: the kernel sends the child SIGKILL.
            let mut child = TestChild::from(spawned);
            assert_eq!(child.wait(), WaitOutcome::Signaled(libc::SIGKILL));
        }

        fn parent_death_signal_is_not_sent_while_the_spawning_thread_lives(method) {
            let mut spec = sh(method, "exit 3", -1);
            spec.parent_death_signal = Some(libc::SIGKILL);
            assert_eq!(run(spec).1, WaitOutcome::Exited(3));
        }

        fn wait_exit_no_reap_leaves_the_status_for_try_reap(method) {
            let mut child = TestChild::spawn(&sh(method, "exit 7", 2));
            wait_exit_no_reap(child.pid).unwrap();
            // Still unreaped, so still in its (zombie) group.
            assert!(group_alive(child.pid));
            assert_eq!(try_reap(child.pid, None).unwrap(), WaitOutcome::Exited(7));
            child.reaped = true;
        }

        fn try_reap_reports_running_then_the_signal(method) {
            let mut child = TestChild::spawn(&spec(method, tool("sleep"), &["sleep", "30"], 2));
            assert_eq!(try_reap(child.pid, child.pidfd()).unwrap(), WaitOutcome::Running);
            assert_eq!(try_reap(child.pid, None).unwrap(), WaitOutcome::Running);
            signal_group(child.pidfd(), child.pid, libc::SIGTERM, true).unwrap();
            assert_eq!(child.wait(), WaitOutcome::Signaled(libc::SIGTERM));
        }

        fn many_spawns_in_a_row_each_report_their_own_exit(method) {
            for code in 0..40 {
                let (output, outcome) = run(sh(method, &format!("echo {code}; exit {code}"), -1));
                assert_eq!((output, outcome), (format!("{code}\n"), WaitOutcome::Exited(code)));
                if code % 10 == 0 {
                    assert_spawn_fails(
                        &spec(method, cstring("/nonexistent/x"), &["x"], 2),
                        libc::ENOENT,
                        ChildStep::Exec,
                    );
                }
            }
        }
    }

    #[test]
    fn default_method_is_clone_vfork_on_linux_only() {
        let expected = if cfg!(target_os = "linux") {
            SpawnMethod::CloneVfork
        } else {
            SpawnMethod::Fork
        };
        assert_eq!(SpawnMethod::default_for_platform(), expected);
    }

    #[test]
    fn concurrent_spawns_from_several_threads_do_not_mix_up() {
        let threads: Vec<_> = (0..4)
            .map(|t| {
                std::thread::spawn(move || {
                    for i in 0..15 {
                        let method = METHODS[(t + i) % 2];
                        let code = (t * 16 + i) as i32;
                        let (output, outcome) =
                            run(sh(method, &format!("echo {code}; exit {code}"), -1));
                        assert_eq!(
                            (output, outcome),
                            (format!("{code}\n"), WaitOutcome::Exited(code))
                        );
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("spawning thread");
        }
    }

    #[test]
    fn four_threads_spawning_fifty_each_at_once_get_their_own_reports() {
        // Each thread has its own ChildArgs (reports) and its own child stack; one /dev/null
        // fd serves them all. Failures are mixed in so that a report landing in the wrong
        // thread's memory would show.
        let devnull = open_dev_null().unwrap();
        let devnull = devnull.as_raw_fd();
        let start = std::sync::Barrier::new(4);
        std::thread::scope(|scope| {
            for t in 0..4 {
                let start = &start;
                scope.spawn(move || {
                    start.wait();
                    for i in 0..50 {
                        let method = SpawnMethod::CloneVfork;
                        if (t + i) % 10 == 0 {
                            assert_spawn_fails(
                                &spec(method, cstring("/nonexistent/x"), &["x"], 2),
                                libc::ENOENT,
                                ChildStep::Exec,
                            );
                            continue;
                        }
                        let code: i32 = (t * 50 + i) % 256;
                        let mut spec = sh(method, &format!("echo {code}; exit {code}"), -1);
                        spec.stdin = (i % 2 == 0).then_some(devnull);
                        assert_eq!(run(spec), (format!("{code}\n"), WaitOutcome::Exited(code)));
                    }
                });
            }
        });
    }

    #[test]
    fn waits_never_touch_other_children() {
        // pid 1 is never our child: ECHILD, reported as "exited, status unknown".
        assert_eq!(try_reap(1, None).unwrap(), WaitOutcome::Unknown);
        wait_exit_no_reap(1).unwrap();
        // pids that mean "any child" or "my group" to wait calls are refused outright.
        for pid in [0, -1, -42] {
            assert_eq!(
                try_reap(pid, None).unwrap_err().raw_os_error(),
                Some(libc::EINVAL)
            );
            assert_eq!(
                wait_exit_no_reap(pid).unwrap_err().raw_os_error(),
                Some(libc::EINVAL)
            );
        }
    }

    #[test]
    fn signal_group_refuses_our_own_group_and_everyone() {
        for pgid in [-1, 0, 1] {
            let err = signal_group(None, pgid, 0, true).unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
            assert!(!group_alive(pgid));
        }
    }

    #[test]
    fn signal_group_without_a_safe_route_sends_nothing() {
        // No pidfd and the number not vouched for: ESRCH, and no killpg on a number that may
        // now belong to someone else (signal 0 here, so even a bug would harm nothing).
        let err = signal_group(None, std::process::id() as libc::pid_t, 0, false).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ESRCH));
    }

    #[test]
    fn pipe_cloexec_marks_both_ends() {
        let (read, write) = pipe_cloexec().unwrap();
        for fd in [&read, &write] {
            // SAFETY: F_GETFD on an open fd.
            let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
            assert_eq!(flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
        }
    }

    #[test]
    fn set_nonblocking_makes_an_empty_read_would_block() {
        let (read, _write) = pipe_cloexec().unwrap();
        set_nonblocking(read.as_fd(), true).unwrap();
        let mut file = File::from(read);
        let err = file.read(&mut [0u8; 8]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        set_nonblocking(file.as_fd(), false).unwrap();
        // SAFETY: F_GETFL on an open fd.
        let flags = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETFL) };
        assert_eq!(flags & libc::O_NONBLOCK, 0);
    }

    #[test]
    fn poll_readable_reports_only_the_ready_fds() {
        let (quiet, _quiet_write) = pipe_cloexec().unwrap();
        let (busy, busy_write) = pipe_cloexec().unwrap();
        let mut ready = vec![99];
        poll_readable(
            &[quiet.as_fd(), busy.as_fd()],
            Some(Duration::ZERO),
            &mut ready,
        )
        .unwrap();
        assert!(ready.is_empty(), "nothing is readable yet: {ready:?}");

        let mut writer = File::from(busy_write);
        std::io::Write::write_all(&mut writer, b"x").unwrap();
        poll_readable(&[quiet.as_fd(), busy.as_fd()], Some(DEADLINE), &mut ready).unwrap();
        assert_eq!(ready, [1]);

        // A hang-up counts as readable too: read() will report EOF without blocking.
        drop(writer);
        let mut buf = [0u8; 1];
        File::from(busy.try_clone().unwrap())
            .read_exact(&mut buf)
            .unwrap();
        poll_readable(&[quiet.as_fd(), busy.as_fd()], None, &mut ready).unwrap();
        assert_eq!(ready, [1]);
    }

    #[test]
    fn poll_readable_waits_out_the_whole_timeout() {
        let (quiet, _write) = pipe_cloexec().unwrap();
        let start = Instant::now();
        let mut ready = Vec::new();
        poll_readable(
            &[quiet.as_fd()],
            Some(Duration::from_millis(30)),
            &mut ready,
        )
        .unwrap();
        assert!(ready.is_empty());
        assert!(
            start.elapsed() >= Duration::from_millis(30),
            "returned early: {:?}",
            start.elapsed()
        );
    }

    #[test]
    fn waker_wakes_the_poll_and_drains() {
        let waker = Waker::new().unwrap();
        let mut ready = Vec::new();
        poll_readable(&[waker.fd()], Some(Duration::ZERO), &mut ready).unwrap();
        assert!(ready.is_empty(), "a new waker is quiet");

        // From another thread, and many times: never blocks, coalesces into one wake-up.
        std::thread::scope(|scope| {
            scope.spawn(|| {
                for _ in 0..100_000 {
                    waker.wake();
                }
            });
        });
        poll_readable(&[waker.fd()], Some(DEADLINE), &mut ready).unwrap();
        assert_eq!(ready, [0]);
        waker.drain();
        poll_readable(&[waker.fd()], Some(Duration::ZERO), &mut ready).unwrap();
        assert!(ready.is_empty(), "drained");
        waker.drain(); // draining a quiet waker returns at once

        waker.wake();
        poll_readable(&[waker.fd()], Some(DEADLINE), &mut ready).unwrap();
        assert_eq!(ready, [0]);
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
        #[cfg(target_os = "linux")]
        {
            assert_eq!(signal_name(libc::SIGRTMIN()), "SIGRTMIN");
            assert_eq!(signal_name(libc::SIGRTMIN() + 3), "SIGRTMIN+3");
            assert_eq!(signal_name(libc::SIGPWR), "SIGPWR");
        }
        // Every standard signal (1 to 31 on Linux and macOS) has a static name.
        for sig in 1..32 {
            let name = signal_name(sig);
            assert!(
                matches!(name, Cow::Borrowed(_)),
                "{sig} has no table entry: {name}"
            );
        }
    }

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

    #[test]
    fn open_fd_count_sees_our_fds() {
        let (_read, _write) = pipe_cloexec().unwrap();
        assert!(open_fd_count().unwrap() >= 2);
    }

    /// Set in the environment of the fresh processes that run [`fresh_process_fd_checks`] and
    /// [`fresh_process_stack_checks`].
    const FRESH_PROCESS_ENV: &str = "PROCWARDEN_SYS_FRESH_PROCESS";

    /// Exact fd accounting needs a process where no other test opens fds meanwhile: re-run
    /// this test binary, alone, for the one ignored test below.
    #[test]
    fn spawn_leaks_no_fd_and_copes_with_closed_stdio() {
        run_in_fresh_process("fresh_process_fd_checks");
    }

    /// Exact accounting of memory mappings needs a process where no other test maps or
    /// unmaps meanwhile.
    #[test]
    #[cfg(target_os = "linux")]
    fn spawns_reuse_one_child_stack_per_thread_and_thread_exit_unmaps_it() {
        run_in_fresh_process("fresh_process_stack_checks");
    }

    /// Re-runs this test binary for the one ignored test `test` of this module, alone, and
    /// fails unless it ran and passed.
    fn run_in_fresh_process(test: &str) {
        let module = module_path!().split_once("::").expect("crate::module").1;
        let name = format!("{module}::{test}");
        let exe = std::env::current_exe().unwrap();
        let out = std::process::Command::new(exe)
            .args([
                "--exact",
                &name,
                "--ignored",
                "--test-threads=1",
                "--nocapture",
            ])
            .env(FRESH_PROCESS_ENV, "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stdout}\n{stderr}");
        assert!(
            stdout.contains("1 passed"),
            "the fresh-process test did not run:\n{stdout}"
        );
    }

    /// A shell command showing that stdin is `/dev/null`, and what it prints then. Linux names
    /// the file; elsewhere an immediate EOF (not EBADF, as a closed fd 0 would give) shows it.
    const STDIN_PROBE: (&str, &str) = if cfg!(target_os = "linux") {
        ("readlink /proc/self/fd/0", "/dev/null\n")
    } else {
        ("cat && echo empty", "empty\n")
    };

    #[test]
    #[ignore = "runs in a fresh process, started by spawn_leaks_no_fd_and_copes_with_closed_stdio"]
    fn fresh_process_fd_checks() {
        if std::env::var_os(FRESH_PROCESS_ENV).is_none() {
            return; // run by hand among other tests: the counts would not be exact
        }
        for method in METHODS {
            assert_eq!(run(sh(method, "true", -1)).1, WaitOutcome::Exited(0)); // warm-up
        }
        let devnull = open_dev_null().unwrap();
        let before = open_fd_count().unwrap();
        for method in METHODS {
            for _ in 0..10 {
                assert_eq!(
                    run(sh(method, "echo x", -1)),
                    ("x\n".to_owned(), WaitOutcome::Exited(0))
                );
                assert_spawn_fails(
                    &spec(method, cstring("/nonexistent/x"), &["x"], 2),
                    libc::ENOENT,
                    ChildStep::Exec,
                );
                let mut bad_cwd = sh(method, "true", 2);
                bad_cwd.cwd = cstring("/nonexistent/dir");
                assert_spawn_fails(&bad_cwd, libc::ENOENT, ChildStep::Chdir);
                // With the caller's /dev/null: nothing opened, nothing closed of it.
                let mut given = sh(method, "echo y", -1);
                given.stdin = Some(devnull.as_raw_fd());
                assert_eq!(run(given), ("y\n".to_owned(), WaitOutcome::Exited(0)));
                let mut given = spec(method, cstring("/nonexistent/x"), &["x"], 2);
                given.stdin = Some(devnull.as_raw_fd());
                assert_spawn_fails(&given, libc::ENOENT, ChildStep::Exec);
            }
        }
        assert_eq!(
            open_fd_count().unwrap(),
            before,
            "spawn leaked fds into the parent"
        );

        // The host closed its stdin: /dev/null then opens as fd 0 inside spawn, and the
        // caller's output fd, or its stdin fd, can itself be 0.
        drop(devnull);
        // SAFETY: this process is ours alone; nothing else uses fd 0.
        unsafe { libc::close(0) };
        let before = open_fd_count().unwrap();
        for method in METHODS {
            let (probe, expected) = STDIN_PROBE;
            assert_eq!(
                run(sh(method, probe, -1)),
                (expected.to_owned(), WaitOutcome::Exited(0))
            );

            // The caller's /dev/null is fd 0 itself (still close-on-exec).
            let devnull = open_dev_null().unwrap();
            assert_eq!(devnull.as_raw_fd(), 0);
            let mut given = sh(method, probe, -1);
            given.stdin = Some(devnull.as_raw_fd());
            assert_eq!(run(given), (expected.to_owned(), WaitOutcome::Exited(0)));
            drop(devnull);

            // Keep fd 0 taken while the pipe is made, so neither end lands on it.
            let placeholder = File::open("/dev/null").unwrap();
            assert_eq!(placeholder.as_raw_fd(), 0);
            let (read, write) = pipe_cloexec().unwrap();
            drop(placeholder);
            // SAFETY: dup returns the lowest free fd, 0, which we own from here on.
            let output = unsafe { libc::dup(write.as_raw_fd()) };
            assert_eq!(output, 0);
            // SAFETY: fd 0 is ours (see above).
            let output = unsafe { OwnedFd::from_raw_fd(output) };
            drop(write);
            let script = format!("echo out; echo err >&2; {}", STDIN_PROBE.0);
            let mut child = TestChild::spawn(&sh(method, &script, output.as_raw_fd()));
            drop(output);
            assert_eq!(read_to_eof(read), format!("out\nerr\n{}", STDIN_PROBE.1));
            assert_eq!(child.wait(), WaitOutcome::Exited(0));
        }
        assert_eq!(
            open_fd_count().unwrap(),
            before,
            "spawn leaked fds into the parent"
        );
    }

    /// The lines of `/proc/self/maps`: one per memory mapping.
    #[cfg(target_os = "linux")]
    fn mappings() -> Vec<String> {
        std::fs::read_to_string("/proc/self/maps")
            .expect("/proc/self/maps")
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Whether a mapping starts at `base` (the child stack's guard page).
    #[cfg(target_os = "linux")]
    fn mapped_at(base: usize) -> bool {
        let prefix = format!("{base:x}-");
        mappings().iter().any(|line| line.starts_with(&prefix))
    }

    #[test]
    #[cfg(target_os = "linux")]
    #[ignore = "runs in a fresh process, started by \
                spawns_reuse_one_child_stack_per_thread_and_thread_exit_unmaps_it"]
    fn fresh_process_stack_checks() {
        if std::env::var_os(FRESH_PROCESS_ENV).is_none() {
            return; // run by hand among other tests: the counts would not be exact
        }
        let method = SpawnMethod::CloneVfork;
        let devnull = open_dev_null().unwrap();
        let missing = spec(method, cstring("/nonexistent/x"), &["x"], 2);

        // This thread: the first spawn maps the stack; 200 more, failures among them, reuse it.
        assert_eq!(
            linux::spare_stack_base(),
            None,
            "no spawn on this thread yet"
        );
        assert_eq!(run(sh(method, "true", -1)).1, WaitOutcome::Exited(0));
        let base = linux::spare_stack_base().expect("a stack kept after the first spawn");
        assert!(mapped_at(base));
        let before = mappings().len();
        for i in 0..200 {
            if i % 20 == 0 {
                assert_spawn_fails(&missing, libc::ENOENT, ChildStep::Exec);
            } else {
                let mut spec = sh(method, "true", -1);
                spec.stdin = (i % 2 == 0).then_some(devnull.as_raw_fd());
                assert_eq!(run(spec).1, WaitOutcome::Exited(0));
            }
        }
        let after = mappings();
        assert_eq!(
            after.len(),
            before,
            "mappings grew over 200 spawns:\n{}",
            after.join("\n")
        );
        assert_eq!(
            linux::spare_stack_base(),
            Some(base),
            "the same stack, reused"
        );

        // Other threads: each maps its own, and its exit unmaps it. A first thread that
        // spawns with Fork (no child stack) warms up what any thread costs (glibc keeps a
        // joined thread's stack for the next one, malloc keeps its arena).
        std::thread::spawn(move || {
            assert_eq!(
                run(sh(SpawnMethod::Fork, "true", -1)).1,
                WaitOutcome::Exited(0)
            );
            assert_eq!(linux::spare_stack_base(), None, "Fork maps no child stack");
        })
        .join()
        .unwrap();
        let before = mappings().len();
        let thread_base = std::thread::spawn(move || {
            assert_eq!(run(sh(method, "true", -1)).1, WaitOutcome::Exited(0));
            let thread_base = linux::spare_stack_base().expect("this thread's own stack");
            assert!(mapped_at(thread_base));
            thread_base
        })
        .join()
        .unwrap();
        assert_ne!(thread_base, base, "threads do not share a stack");
        assert!(!mapped_at(thread_base), "thread exit unmapped its stack");
        let after = mappings();
        assert_eq!(
            after.len(),
            before,
            "a spawning thread left mappings behind:\n{}",
            after.join("\n")
        );
        assert!(mapped_at(base), "this thread's stack is untouched");
    }

    /// Median wall time of `n` runs of `f`.
    fn median_of(n: usize, mut f: impl FnMut()) -> Duration {
        let mut times: Vec<Duration> = (0..n)
            .map(|_| {
                let start = Instant::now();
                f();
                start.elapsed()
            })
            .collect();
        times.sort();
        times[n / 2]
    }

    /// Something started that the spawn-only measurement reaps outside the timed part.
    trait Reap {
        /// Waits for the child and checks it exited 0.
        fn reap(self);
    }

    impl Reap for SpawnedChild {
        fn reap(self) {
            assert_eq!(TestChild::from(self).wait(), WaitOutcome::Exited(0));
        }
    }

    impl Reap for std::process::Child {
        fn reap(mut self) {
            assert!(self.wait().expect("wait").success());
        }
    }

    /// Median wall time of `n` calls of `start` alone (until it returns); each child is
    /// reaped after its time is taken, so none overlaps the next measurement.
    fn median_of_starts<C: Reap>(n: usize, mut start: impl FnMut() -> C) -> Duration {
        let mut times: Vec<Duration> = (0..n)
            .map(|_| {
                let began = Instant::now();
                let child = start();
                let took = began.elapsed();
                child.reap();
                took
            })
            .collect();
        times.sort();
        times[n / 2]
    }

    /// Not a test: a measurement to read (`cargo test --release spawn_micro_benchmark --
    /// --ignored --nocapture`). Spawn + reap of `/bin/sh -c true`, 200 times each way; then
    /// `spawn` alone (until it returns, reaping excluded), 500 times each way, with stdin
    /// opened per spawn (`stdin: None`) and with one cached `/dev/null` fd, against std's
    /// `Command::spawn()`.
    #[test]
    #[ignore = "micro-measurement; run by hand with --release --ignored --nocapture"]
    fn spawn_micro_benchmark() {
        const RUNS: usize = 200;
        const SPAWN_ONLY_RUNS: usize = 500;
        fn measure(label: &str) {
            let devnull = std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/null")
                .unwrap();
            let stdin = open_dev_null().unwrap();
            for method in METHODS {
                let spec = sh(method, "true", devnull.as_raw_fd());
                let median = median_of(RUNS, || {
                    let mut child = TestChild::spawn(&spec);
                    assert_eq!(child.wait(), WaitOutcome::Exited(0));
                });
                println!("{label}: {method:?}: median {median:?}");
                let median = median_of_starts(SPAWN_ONLY_RUNS, || spawn(&spec).expect("spawn"));
                println!("{label}: {method:?}: spawn alone, stdin: None: median {median:?}");
                let mut cached = sh(method, "true", devnull.as_raw_fd());
                cached.stdin = Some(stdin.as_raw_fd());
                let median = median_of_starts(SPAWN_ONLY_RUNS, || spawn(&cached).expect("spawn"));
                println!("{label}: {method:?}: spawn alone, stdin: Some: median {median:?}");
            }
            let median = median_of_starts(SPAWN_ONLY_RUNS, || {
                std::process::Command::new("/bin/sh")
                    .args(["-c", "true"])
                    .spawn()
                    .expect("spawn")
            });
            println!("{label}: std Command::new(\"/bin/sh\").spawn() alone: median {median:?}");
            for program in ["sh", "/bin/sh"] {
                let median = median_of(RUNS, || {
                    let status = std::process::Command::new(program)
                        .args(["-c", "true"])
                        .status()
                        .unwrap();
                    assert!(status.success());
                });
                println!("{label}: std Command::new({program:?}).status(): median {median:?}");
            }
        }
        measure("small parent");

        // Fork copies page tables: its cost grows with the parent's resident memory. Make
        // 512 MiB resident in 4 KiB pages (no transparent huge pages, which would hide it).
        const BALLAST: usize = 512 << 20;
        // SAFETY: a fresh private anonymous mapping; only this function uses it.
        let ballast = unsafe {
            libc::mmap(
                ptr::null_mut(),
                BALLAST,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(ballast, libc::MAP_FAILED);
        #[cfg(target_os = "linux")]
        // SAFETY: advice on our own mapping.
        unsafe {
            libc::madvise(ballast, BALLAST, libc::MADV_NOHUGEPAGE)
        };
        for offset in (0..BALLAST).step_by(4096) {
            // SAFETY: inside the mapping; volatile so the writes are not optimised away.
            unsafe { ballast.cast::<u8>().add(offset).write_volatile(1) };
        }
        measure("parent with 512 MiB resident in 4 KiB pages");
        // SAFETY: unmapping our own mapping, no longer used.
        unsafe { libc::munmap(ballast, BALLAST) };
    }
}
