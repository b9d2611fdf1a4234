//! Linux's part of the child side: **audit zone**, like `sys/child.rs` (read its header for
//! the rules). Everything here except [`DeathSignal::new`] and [`close_range_cloexec`]'s use
//! by the parent's probe runs in the child between `clone` and `execve`: one system call each,
//! no lock, no allocation, no panic.

use std::ffi::{c_int, c_uint, c_ulong, c_void};
use std::ptr;

use crate::sys::child::{ChildArgs, ChildStep, child_exec, errno};

/// Highest signal number reset to `SIG_DFL` in the child: `_NSIG - 1` = 64, the real-time
/// signals included.
pub(in crate::sys) const LAST_SIGNAL: c_int = 64;

/// The trampoline `clone` calls in the child: `arg` is the parent's `&ChildArgs`.
pub(super) extern "C" fn child_entry(arg: *mut c_void) -> c_int {
    // SAFETY: `start_vfork` passes a pointer to a live ChildArgs and stays suspended
    // (CLONE_VFORK) until we have exec'd or exited, so the reference is valid for as long as
    // we use it.
    let args = unsafe { &*(arg as *const ChildArgs) };
    // SAFETY: we are the freshly cloned child, running on our own stack, with all signals
    // blocked (`start_vfork` blocks them around the clone).
    unsafe { child_exec(args) }
}

/// Sets `sig` back to `SIG_DFL` with the raw `rt_sigaction` system call; errors (`EINVAL` for
/// SIGKILL, SIGSTOP or numbers past 64) are ignored. Async-signal-safe.
///
/// Raw because glibc's `sigaction` refuses signals 32 and 33 (its internal SIGCANCEL and
/// SIGSETXID) with `EINVAL`, yet a parent may have them ignored (`cargo test` hands its test
/// binaries signal 32 ignored), and an ignored signal survives `execve` (glibc's own
/// `posix_spawn` resets them through an internal entry point). An all-zero kernel `struct
/// sigaction` is `SIG_DFL` with no flags and an empty mask whatever the field order, so one
/// zeroed buffer larger than the struct serves every layout listed; the 8-byte signal set
/// size is right on all of them. Architectures not listed (MIPS, whose signal set is 16
/// bytes; SPARC, which takes an extra argument) use glibc's `sigaction` with
/// `default_action` and so leave 32 and 33 as inherited.
pub(in crate::sys) fn reset_disposition(sig: c_int, default_action: &libc::sigaction) {
    if KERNEL_SIGACTION_IS_32_BYTES {
        let zeroed_action = [0u64; 4];
        // SAFETY: rt_sigaction reads a kernel `struct sigaction` (at most 32 bytes on these
        // architectures) from a buffer of 32 zeroed bytes and writes nothing (NULL oldact).
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                zeroed_action.as_ptr(),
                ptr::null_mut::<c_void>(),
                8usize,
            )
        };
    } else {
        // SAFETY: sigaction is async-signal-safe; both pointers are valid or NULL.
        unsafe { libc::sigaction(sig, default_action, ptr::null_mut()) };
    }
}

/// Whether the kernel's `struct sigaction` fits the 32 zeroed bytes that
/// [`reset_disposition`] hands to `rt_sigaction`, with an 8-byte signal set.
const KERNEL_SIGACTION_IS_32_BYTES: bool = cfg!(any(
    target_arch = "x86_64",
    target_arch = "x86",
    target_arch = "aarch64",
    target_arch = "arm",
    target_arch = "riscv64",
    target_arch = "loongarch64",
    target_arch = "powerpc64",
    target_arch = "s390x",
));

/// Marks every fd from `first` up close-on-exec with one system call,
/// `close_range(CLOSE_RANGE_CLOEXEC)` (Linux 5.11+). `false` if the kernel refused it
/// (`ENOSYS` before 5.9, `EINVAL` for the flag before 5.11, or a seccomp filter): the caller
/// then marks fd by fd. Async-signal-safe.
pub(in crate::sys) fn mark_all_cloexec_from(first: c_uint) -> bool {
    close_range_cloexec(first) == 0
}

/// `close_range(first, ~0U, CLOSE_RANGE_CLOEXEC)`: returns 0, or -1 with `errno` set.
///
/// Async-signal-safe: a raw syscall, no libc state. Called through the raw syscall rather
/// than glibc's `close_range` so the binary also runs on glibc older than 2.34. Also the
/// parent's probe (see `fd::close_range_cloexec_works`).
pub(super) fn close_range_cloexec(first: c_uint) -> c_int {
    // SAFETY: close_range takes integers only. CLOSE_RANGE_CLOEXEC closes nothing, so no fd
    // that Rust code owns is invalidated (and in the child nothing Rust owns is used again).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if rc < 0 { -1 } else { 0 }
}

/// The parent-death signal (`prctl(PR_SET_PDEATHSIG)`): prepared in the parent, armed in the
/// child, which then gets the signal when the *thread* that spawned it exits.
#[derive(Debug, Clone, Copy)]
pub(in crate::sys) struct DeathSignal {
    /// The signal, or 0 for none.
    signal: c_int,
    /// `getpid()` of the parent, to detect that it died before the signal was armed (only
    /// read when `signal` is not 0).
    parent_pid: libc::pid_t,
}

impl DeathSignal {
    /// Parent side: `requested` as in `SpawnSpec::parent_death_signal` (`None` and `Some(0)`
    /// both mean none).
    pub(in crate::sys) fn new(requested: Option<c_int>) -> Self {
        let signal = requested.unwrap_or(0);
        // Only needed to check the parent-death signal's race.
        let parent_pid = if signal != 0 {
            // SAFETY: getpid has no preconditions.
            unsafe { libc::getpid() }
        } else {
            0
        };
        DeathSignal { signal, parent_pid }
    }

    /// Child side: arms the signal, then checks the race where the parent died before it was
    /// armed (the child was then reparented and `getppid()` changed). `Err((errno, step))`
    /// for the step that failed. Async-signal-safe.
    pub(in crate::sys) fn arm(&self) -> Result<(), (c_int, ChildStep)> {
        if self.signal == 0 {
            return Ok(());
        }
        if set_parent_death_signal(self.signal) != 0 {
            return Err((errno(), ChildStep::DeathSignal));
        }
        // SAFETY: getppid is async-signal-safe.
        if unsafe { libc::getppid() } != self.parent_pid {
            return Err((libc::ESRCH, ChildStep::ParentGone));
        }
        Ok(())
    }
}

/// `prctl(PR_SET_PDEATHSIG, sig)`: returns 0 or -1 with `errno` set. Async-signal-safe.
fn set_parent_death_signal(sig: c_int) -> c_int {
    // The signal travels as an unsigned long argument, as prctl(2) specifies.
    let sig = c_ulong::try_from(sig).unwrap_or(0);
    // SAFETY: PR_SET_PDEATHSIG reads its integer argument only; the trailing zeros are the
    // unused arguments prctl(2) asks callers to pass as 0.
    unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            sig,
            0 as c_ulong,
            0 as c_ulong,
            0 as c_ulong,
        )
    }
}
