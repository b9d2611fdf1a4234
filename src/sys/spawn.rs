//! The parent side of starting a child: what to start ([`SpawnSpec`]), how ([`SpawnMethod`]),
//! what comes back ([`SpawnedChild`], [`SpawnError`]), and [`spawn`] itself. What runs in the
//! child is in `child.rs`.

use std::ffi::{CString, c_char, c_int};
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::ptr;
use std::sync::Arc;

use super::child::{ChildArgs, ChildFailure, ChildStep, REPORT_LEN, child_exec};
use super::fd::{DupSource, above_stdio, fd_scan_limit, open_dev_null};
use super::pid::from_pid_t;
use super::platform::ProcCgroup;
use super::platform::{self, pipe_cloexec};
use super::signal::{BlockedSignals, default_action, empty_sigset};
use super::wait::reap_blocking;

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
        platform::DEFAULT_SPAWN_METHOD
    }
}

/// The lowest nice value (the highest priority) the kernel takes.
pub(crate) const MIN_NICE: i32 = -20;
/// The highest nice value (the lowest priority) the kernel takes.
pub(crate) const MAX_NICE: i32 = 19;

/// Everything the child needs, prepared by the parent before the child exists so that the
/// child allocates nothing and looks nothing up.
///
/// Its fds are owned (or shared) by the spec, so they are open for as long as the spec lives:
/// there is no promise for the caller to keep.
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
    /// both streams preserves their interleaving. The spec owns it, and it is closed when the
    /// spec is dropped: drop the spec once [`spawn`] has returned (the child then holds its
    /// own copies), so that the read end sees end of file when the child's copies close. It
    /// may be close-on-exec (it should be) and may even be 0, 1 or 2.
    pub(crate) output: OwnedFd,
    /// The child's stdin: an fd open on `/dev/null` for reading (see [`open_dev_null`]),
    /// `dup2`'d onto fd 0. Shared, so one fd opened once serves every spawn; the spec's
    /// reference keeps it open. It may be close-on-exec (it should be) and may even be 0, 1
    /// or 2. `None` opens `/dev/null` afresh for this spawn (one `open` and one `close` more).
    pub(crate) stdin: Option<Arc<OwnedFd>>,
    /// Linux: `prctl(PR_SET_PDEATHSIG, sig)`, so the child gets `sig` when the *thread* that
    /// spawned it exits (spawn from one long-lived thread). `Some(0)` means the same as `None`.
    /// Ignored on other unix systems, which have no such mechanism.
    pub(crate) parent_death_signal: Option<c_int>,
    /// How to create the child.
    pub(crate) method: SpawnMethod,
    /// The cgroup the child starts in (Linux): created with `clone3(CLONE_INTO_CGROUP)`,
    /// whatever `method` says, so it is a member from its first instruction. `None`: the
    /// child stays in the parent's cgroup.
    pub(crate) cgroup: Option<Arc<ProcCgroup>>,
    /// The child's `oom_score_adj` (-1000..=1000), set before `execve`; `None` leaves the
    /// inherited value.
    pub(crate) oom_score_adj: Option<i32>,
    /// The child's nice value (-20..=19), set before `execve`; `None` leaves the inherited
    /// value.
    pub(crate) nice: Option<i32>,
    /// `output` is the slave side of a pseudo-terminal (opened `O_NOCTTY`; `stdin` should be
    /// it too): the child leads a new session with it as its controlling terminal (`setsid`,
    /// `TIOCSCTTY`) instead of calling `setpgid`. It still leads its own process group.
    pub(crate) terminal: bool,
}

/// A started child. The caller owns reaping it (with `try_reap`); until then its pid, and
/// so its process group id, cannot be reused.
#[derive(Debug)]
pub(crate) struct SpawnedChild {
    /// The child's pid, which is also its process group id (it leads its own group).
    pub(crate) pid: u32,
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

/// Why [`start`] failed: the typed form of [`spawn`]'s error.
#[derive(Debug)]
pub(super) enum SpawnError {
    /// The child was created and reported that a step before or at `execve` failed. It has
    /// been reaped.
    Child(ChildFailed),
    /// The parent could not prepare or create the child, or could not read its report (the
    /// child, if there was one, has then been killed and reaped).
    Parent(io::Error),
}

/// A child's report that one of its steps failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ChildFailed {
    /// The child's pid. It has been reaped, so the number may already be reused: for logs.
    pub(super) pid: u32,
    /// The step that failed.
    pub(super) step: ChildStep,
    /// The step's `errno`.
    pub(super) errno: c_int,
    /// How the report reached the parent.
    pub(super) via: ReportVia,
}

/// How a failed child's report reaches the parent, which depends on how the child was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ReportVia {
    /// `CloneVfork`: through memory the child shares with the parent (see [`ChildFailure`]),
    /// as glibc's `posix_spawn` does; no pipe, no read.
    SharedMemory,
    /// `Fork`: through a close-on-exec pipe, whose EOF without data means the exec succeeded.
    Pipe,
}

impl From<io::Error> for SpawnError {
    fn from(err: io::Error) -> Self {
        SpawnError::Parent(err)
    }
}

impl From<SpawnError> for io::Error {
    /// A child's failure becomes its `errno` (so `raw_os_error()` is e.g. `ENOENT` for a
    /// missing executable); a parent's failure stays as it was.
    fn from(err: SpawnError) -> Self {
        match err {
            SpawnError::Child(failed) => io::Error::from_raw_os_error(failed.errno),
            SpawnError::Parent(err) => err,
        }
    }
}

/// Starts a child as described by `spec` and returns once it has called `execve`.
///
/// Child-side steps, in order (see `child.rs`): every catchable signal back to `SIG_DFL`;
/// empty signal mask; `setpgid(0, 0)`; the parent-death signal (Linux), then `_exit` if the
/// parent has already gone; stdin from `/dev/null` (`spec.stdin` or a fresh open);
/// `spec.output` onto fds 1 and 2; `chdir`; every fd >= 3 close-on-exec; `execve`. If any step
/// fails, the child reports `errno` and the step and `_exit(127)`s; the parent then reaps it
/// (by pid) and returns that errno as an `io::Error` (so `raw_os_error()` is e.g. `ENOENT` for
/// a missing executable), logging the step at debug level. Success means `execve` succeeded,
/// not that the program will run well.
///
/// All signals are blocked in the calling thread while the child is being created, and
/// restored before this returns. [`start`] is the same with a typed error.
pub(crate) fn spawn(spec: &SpawnSpec) -> Result<SpawnedChild, SpawnFailure> {
    start(spec).map_err(|err| {
        let stage = match &err {
            SpawnError::Child(failed) => {
                log::debug!(
                    "spawn of {:?} failed in the child (pid {}, reaped) at step {} (errno {}, \
                     reported through {:?})",
                    spec.path,
                    failed.pid,
                    failed.step,
                    failed.errno,
                    failed.via,
                );
                match failed.step {
                    ChildStep::Chdir => SpawnStage::Workdir,
                    ChildStep::Exec => SpawnStage::Exec,
                    _ => SpawnStage::Setup,
                }
            }
            SpawnError::Parent(_) => SpawnStage::Setup,
        };
        SpawnFailure {
            stage,
            error: io::Error::from(err),
        }
    })
}

/// Where a start failed: what the caller asked for (the working directory, the program and
/// its arguments) or the setting up of the child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SpawnStage {
    /// `chdir` to the working directory.
    Workdir,
    /// `execve` of the program with its arguments and environment.
    Exec,
    /// Anything else: creating the child, its descriptors, its signal state.
    Setup,
}

/// A failed start: where, and the system's error (`raw_os_error()` is the child's `errno`).
#[derive(Debug)]
pub(crate) struct SpawnFailure {
    pub(crate) stage: SpawnStage,
    pub(crate) error: io::Error,
}

/// [`spawn`] with a typed error: tells a step that failed in the child (and how it was
/// reported) from a failure of the parent.
pub(super) fn start(spec: &SpawnSpec) -> Result<SpawnedChild, SpawnError> {
    // Everything the child reads is built here, in the parent: the child allocates nothing.
    let argv = null_terminated(&spec.argv);
    let envp = null_terminated(&spec.envp);
    // The child's sources for dup2 must not be 0, 1 or 2 (see `DupSource`). Such low fds only
    // happen when the host closed its own stdio; then a close-on-exec copy >= 3 is used.
    let stdin = match &spec.stdin {
        Some(fd) => DupSource::new(fd.as_fd())?,
        None => DupSource::owned(open_dev_null()?)?,
    };
    let output = DupSource::new(spec.output.as_fd())?;
    let oom_score_adj = spec
        .oom_score_adj
        .map(|v| v.clamp(-1000, 1000).to_string().into_bytes())
        .unwrap_or_default();

    let mut args = ChildArgs {
        path: spec.path.as_ptr(),
        argv: argv.as_ptr(),
        envp: envp.as_ptr(),
        cwd: spec.cwd.as_ptr(),
        stdin: stdin.as_raw_fd(),
        output: output.as_raw_fd(),
        report: -1, // set by start_child if it forks
        failure: ChildFailure::default(),
        death_signal: platform::DeathSignal::new(spec.parent_death_signal),
        fd_scan_limit: fd_scan_limit(),
        default_action: default_action(),
        empty_mask: empty_sigset(),
        oom_score_adj: oom_score_adj.as_ptr(),
        oom_score_adj_len: oom_score_adj.len(),
        nice: spec.nice.map(|n| n.clamp(MIN_NICE, MAX_NICE)),
        terminal: spec.terminal,
    };

    let (pid, pidfd, channel) = match &spec.cgroup {
        Some(cgroup) => {
            let (pid, pidfd) =
                cgroup.spawn_into(|dir| platform::start_vfork_into_cgroup(&args, dir))?;
            (pid, pidfd, ReportChannel::SharedMemory)
        }
        None => start_child(spec.method, &mut args)?,
    };
    // The child has exec'd or exited (CloneVfork) or holds its own copies (Fork).
    drop(stdin);
    drop(output);
    let (report, via) = match channel {
        ReportChannel::SharedMemory => (Ok(args.failure.read()), ReportVia::SharedMemory),
        ReportChannel::Pipe(read) => (read_report(&read), ReportVia::Pipe),
    };
    let failure = match report {
        Ok(None) => {
            return Ok(SpawnedChild {
                pid: from_pid_t(pid),
                pidfd,
            });
        }
        Ok(Some((errno, code))) => {
            ChildStep::try_from(code)
                .map(|step| (errno, step))
                .map_err(|code| {
                    io::Error::other(format!("spawn: the child reported an unknown step {code}"))
                })
        }
        Err(err) => Err(err),
    };
    match failure {
        Ok((errno, step)) => {
            reap_blocking(pid);
            Err(SpawnError::Child(ChildFailed {
                pid: from_pid_t(pid),
                step,
                errno,
                via,
            }))
        }
        Err(err) => {
            // We cannot know whether exec happened: do not leave a child nobody tracks. The pid
            // is ours and unreaped, so it cannot have been reused.
            // SAFETY: kill takes integers only; `pid` is our unreaped child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            reap_blocking(pid);
            Err(SpawnError::Parent(err))
        }
    }
}

/// Where a failed child's report is to be read.
#[derive(Debug)]
enum ReportChannel {
    /// The child shared our memory (`CLONE_VM | CLONE_VFORK`): it wrote into
    /// [`ChildArgs::failure`], if anything.
    SharedMemory,
    /// The child has its own memory (`fork`): read end of the report pipe.
    Pipe(OwnedFd),
}

/// Creates the child with `method`, blocking all signals around the creation.
fn start_child(
    method: SpawnMethod,
    args: &mut ChildArgs,
) -> io::Result<(libc::pid_t, Option<OwnedFd>, ReportChannel)> {
    // CloneVfork where the platform has it (Linux); `None` means fork instead.
    if method == SpawnMethod::CloneVfork
        && let Some((pid, pidfd)) = platform::start_vfork(args)?
    {
        return Ok((pid, pidfd, ReportChannel::SharedMemory));
    }

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
    let pidfd = platform::pidfd_after_fork(pid);
    Ok((pid, pidfd, ReportChannel::Pipe(report_read)))
}

/// Reads the child's failure report: `Ok(None)` on EOF without data (exec succeeded),
/// `Ok(Some((errno, step code)))` on a full report.
fn read_report(fd: &OwnedFd) -> io::Result<Option<(c_int, u8)>> {
    let mut buf = [0u8; REPORT_LEN];
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
        REPORT_LEN => Ok(Some((
            c_int::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]),
            buf[4],
        ))),
        _ => Err(io::Error::other(
            "spawn: the child's failure report was cut short",
        )),
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
