//! The Linux-only system calls: `clone(CLONE_VM | CLONE_VFORK | CLONE_PIDFD)`, pidfds,
//! `close_range`, `eventfd` and `prctl(PR_SET_PDEATHSIG)`.
//!
//! They live apart from `unix.rs` so that the portable file reads the same on every unix and
//! the Linux extras sit in one place. Every function here has exactly one caller in `unix.rs`,
//! which also holds the fallback used on other unix systems.
//!
//! The functions marked *async-signal-safe* are called in the child between `clone`/`fork`
//! and `execve`: they make one system call each, touch no lock and allocate nothing.

use std::cell::Cell;
use std::ffi::{c_int, c_uint, c_ulong, c_void};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr;
use std::sync::atomic::{AtomicU8, Ordering};

/// `PIDFD_SIGNAL_PROCESS_GROUP` from `<linux/pidfd.h>` (Linux 6.9+): makes
/// `pidfd_send_signal` deliver to the whole process group whose leader the pidfd names.
///
/// Defined here rather than taken from `libc` because only recent `libc` 0.2 releases export
/// it and `Cargo.toml` accepts any 0.2. The value is kernel ABI and cannot change.
pub(super) const PIDFD_SIGNAL_PROCESS_GROUP: c_uint = 1 << 2;

/// Usable size of the stack the `CLONE_VM` child runs on before `execve`.
///
/// The child only runs `unix::child_exec`: a few small frames plus libc's thin syscall
/// wrappers, well under 8 KiB even in a debug build. 64 KiB leaves a wide margin; the pages
/// are only touched, and so only cost memory, where the child actually uses them. One such
/// stack is kept per spawning thread (see [`SPARE_STACK`]).
const CHILD_STACK_SIZE: usize = 64 * 1024;

thread_local! {
    /// This thread's stack for `CLONE_VM` children, kept from one spawn to the next: mapping,
    /// guarding and unmapping a fresh one cost three system calls per spawn (`mmap`,
    /// `mprotect`, `munmap`), and the child then faulted its pages in afresh every time.
    ///
    /// One per thread, because the stack is in use only while the thread that owns it is
    /// suspended in [`clone_vfork`] (that is what `CLONE_VFORK` means): a thread never needs
    /// two at once, while two threads spawning at the same time need one each. It is taken
    /// out of the cell for the duration of the call and put back afterwards, so even a
    /// re-entrant call (which the blocked signals rule out anyway) would just map a second,
    /// temporary one. Unmapped by the thread-local destructor when the thread exits.
    static SPARE_STACK: Cell<Option<ChildStack>> = const { Cell::new(None) };
}

/// Whether `close_range(CLOSE_RANGE_CLOEXEC)` works in this process, probed once:
/// 0 not yet known, 1 yes, 2 no.
static CLOSE_RANGE_CLOEXEC: AtomicU8 = AtomicU8::new(0);

/// Opens a pidfd for `pid` (`pidfd_open(2)`, Linux 5.3+), close-on-exec by definition.
///
/// Used after a plain `fork()`, where the pidfd cannot come from the kernel atomically with the
/// child as it does with `CLONE_PIDFD`. `ENOSYS` on older kernels; the caller then goes on
/// without a pidfd.
pub(super) fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes two integers and touches no memory of ours.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0 as c_uint) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    let fd = c_int::try_from(fd).map_err(|_| io::Error::other("pidfd_open returned a bad fd"))?;
    // SAFETY: the kernel just returned this fd to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `pidfd_send_signal(pidfd, sig, NULL, flags)` (Linux 5.1+; the `flags` other than 0 need
/// Linux 6.9+ and fail with `EINVAL` before).
pub(super) fn pidfd_send_signal(
    pidfd: BorrowedFd<'_>,
    sig: c_int,
    flags: c_uint,
) -> io::Result<()> {
    // SAFETY: a NULL siginfo is documented as "like kill(2)"; the fd is borrowed and therefore
    // open for the duration of the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            ptr::null::<libc::siginfo_t>(),
            flags,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Marks every fd from `first` up close-on-exec with one system call:
/// `close_range(first, ~0U, CLOSE_RANGE_CLOEXEC)` (Linux 5.11+).
///
/// Returns 0, or -1 with `errno` set (`ENOSYS` before 5.9, `EINVAL` for the flag before 5.11).
/// Async-signal-safe: a raw syscall, no libc state. Called through the raw syscall rather
/// than glibc's `close_range` so the binary also runs on glibc older than 2.34.
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

/// Does `close_range(CLOSE_RANGE_CLOEXEC)` work here (Linux 5.11+, and no seccomp filter
/// refusing it)? Probed once per process, in the parent, with a call that marks nothing:
/// `close_range(~0U, ~0U, CLOSE_RANGE_CLOEXEC)` (no fd can be numbered `~0U`; the kernel
/// clamps the range to the fd table and finds it empty). Older kernels answer `EINVAL`
/// (unknown flag, 5.9 and 5.10) or `ENOSYS`.
///
/// Only a hint for the parent (it decides whether the child's fallback needs an
/// `RLIMIT_NOFILE` read): the child still makes the real call and falls back on its own
/// should it fail after all (say, a per-thread seccomp filter installed after the probe).
pub(super) fn close_range_cloexec_works() -> bool {
    match CLOSE_RANGE_CLOEXEC.load(Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => {
            let works = close_range_cloexec(c_uint::MAX) == 0;
            // Racing probes all store the same answer.
            CLOSE_RANGE_CLOEXEC.store(if works { 1 } else { 2 }, Ordering::Relaxed);
            works
        }
    }
}

/// `prctl(PR_SET_PDEATHSIG, sig)`: the kernel sends `sig` to the calling process when the
/// *thread* that created it exits. Returns 0 or -1 with `errno` set. Async-signal-safe.
pub(super) fn set_parent_death_signal(sig: c_int) -> c_int {
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

/// Sets `sig` back to `SIG_DFL` with the raw `rt_sigaction` system call; errors (`EINVAL` for
/// SIGKILL, SIGSTOP or numbers past 64) are ignored. Async-signal-safe.
///
/// Raw because glibc's `sigaction` refuses signals 32 and 33 (its internal SIGCANCEL and
/// SIGSETXID) with `EINVAL`, yet a parent may have them ignored, and an ignored signal
/// survives `execve` (glibc's own `posix_spawn` resets them through an internal entry point).
/// An all-zero kernel `struct sigaction` is `SIG_DFL` with no flags and an empty mask whatever
/// the field order, so one zeroed buffer larger than the struct serves every layout listed;
/// the 8-byte signal set size is right on all of them. Architectures not listed (MIPS, whose
/// signal set is 16 bytes; SPARC, which takes an extra argument) use glibc's `sigaction` and
/// so leave 32 and 33 as inherited.
pub(super) fn reset_disposition(sig: c_int, default_action: &libc::sigaction) {
    #[cfg(any(
        target_arch = "x86_64",
        target_arch = "x86",
        target_arch = "aarch64",
        target_arch = "arm",
        target_arch = "riscv64",
        target_arch = "loongarch64",
        target_arch = "powerpc64",
        target_arch = "s390x",
    ))]
    {
        let _ = default_action;
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
    }
    #[cfg(not(any(
        target_arch = "x86_64",
        target_arch = "x86",
        target_arch = "aarch64",
        target_arch = "arm",
        target_arch = "riscv64",
        target_arch = "loongarch64",
        target_arch = "powerpc64",
        target_arch = "s390x",
    )))]
    // SAFETY: sigaction is async-signal-safe; both pointers are valid or NULL.
    unsafe {
        libc::sigaction(sig, default_action, ptr::null_mut())
    };
}

/// A nonblocking, close-on-exec eventfd with a zero counter: the Linux form of the waker.
pub(super) fn eventfd_nonblocking() -> io::Result<OwnedFd> {
    // SAFETY: eventfd takes integers only.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this fd to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Starts `entry(arg)` in a new process with `clone(CLONE_VM | CLONE_VFORK | CLONE_PIDFD |
/// SIGCHLD)` on a private stack, the way glibc's `posix_spawn` and Go's runtime start
/// children: no page table is copied, so the cost does not grow with the parent's memory.
///
/// Returns once the child has called `execve` or exited (that is what `CLONE_VFORK` means),
/// with its pid and, when the kernel supports `CLONE_PIDFD` (5.2+), a pidfd obtained
/// atomically with the child: no window in which the pid could be reaped and reused.
///
/// The stack is this thread's [`SPARE_STACK`], mapped on the first call and reused after.
///
/// # Safety
///
/// - `entry` must only make async-signal-safe calls, allocate nothing, never unwind and never
///   return (it must end in `execve` or `_exit`): it runs on the parent's memory, with the
///   parent thread's TLS, on a 64 KiB stack that the next spawn of this thread reuses.
/// - `arg` must stay valid until this function returns; the parent thread is suspended until
///   then, so anything borrowed by the caller is.
/// - The caller must block all signals in this thread around the call, so that no signal
///   handler of the parent runs in the child on borrowed memory before the child resets the
///   dispositions.
pub(super) unsafe fn clone_vfork(
    entry: extern "C" fn(*mut c_void) -> c_int,
    arg: *mut c_void,
) -> io::Result<(libc::pid_t, Option<OwnedFd>)> {
    // Taken out of the cell, not borrowed: nothing else can reach it while we use it. Fails
    // only while this thread's thread-locals are being destroyed; a fresh stack then.
    let stack = match SPARE_STACK.try_with(Cell::take) {
        Ok(Some(stack)) => stack,
        _ => ChildStack::new(CHILD_STACK_SIZE)?,
    };
    let mut pidfd: c_int = -1;
    let flags = libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PIDFD | libc::SIGCHLD;
    // SAFETY: the stack is a private mapping that no one else uses during the call (it was
    // taken out of this thread's cell) and that outlives the child's use of it: CLONE_VFORK
    // suspends us until the child has exec'd (it then runs on a new address space) or exited
    // (it then runs no more user code), so by the time clone returns the child is done with
    // it, and whatever it left there is dead data. With CLONE_PIDFD glibc passes `&mut pidfd`
    // as parent_tid and the kernel stores the pidfd there before returning. The tls and
    // child_tid arguments are ignored without CLONE_SETTLS / CLONE_CHILD_*TID and passed as
    // NULL. The requirements on `entry` and `arg` are this function's own safety contract.
    let pid = unsafe {
        libc::clone(
            entry,
            stack.top(),
            flags,
            arg,
            &mut pidfd as *mut c_int,
            ptr::null_mut::<c_void>(),
            ptr::null_mut::<c_int>(),
        )
    };
    let clone_error = (pid < 0).then(io::Error::last_os_error);
    // Back into the cell for the next spawn (after a failed clone too: the stack is intact).
    // Should the cell be gone (thread exiting), the closure, and with it the stack, is
    // dropped instead, which unmaps it.
    let _ = SPARE_STACK.try_with(move |spare| spare.set(Some(stack)));
    if let Some(err) = clone_error {
        return Err(err);
    }
    // A kernel older than 5.2 ignores the unknown flag and leaves -1 here.
    let pidfd = (pidfd >= 0).then(|| {
        // SAFETY: the kernel stored a fresh pidfd here for us; nothing else owns it.
        unsafe { OwnedFd::from_raw_fd(pidfd) }
    });
    Ok((pid, pidfd))
}

/// The lowest address (the guard page) of this thread's spare child stack, if it has one:
/// lets tests check that spawns reuse it and that thread exit unmaps it.
#[cfg(test)]
pub(super) fn spare_stack_base() -> Option<usize> {
    SPARE_STACK
        .try_with(|spare| {
            let stack = spare.take();
            let base = stack.as_ref().map(|s| s.base as usize);
            spare.set(stack);
            base
        })
        .ok()
        .flatten()
}

/// The stack a `CLONE_VM` child runs on: an anonymous private mapping with a `PROT_NONE`
/// guard page at its low end, so an overflow faults in the child instead of silently
/// overwriting the parent's memory (which the child shares).
struct ChildStack {
    /// Lowest address of the mapping (the guard page).
    base: *mut c_void,
    /// Length of the whole mapping, guard page included.
    len: usize,
}

impl ChildStack {
    /// Maps `usable` bytes (rounded up to whole pages) plus one guard page.
    fn new(usable: usize) -> io::Result<Self> {
        // SAFETY: sysconf takes an integer and returns one.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        let page = usize::try_from(page)
            .ok()
            .filter(|p| *p > 0)
            .unwrap_or(4096);
        let len = usable.div_ceil(page) * page + page;
        // SAFETY: an anonymous private mapping at an address of the kernel's choosing aliases
        // nothing of ours.
        let base = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let stack = ChildStack { base, len };
        // SAFETY: the first page lies inside the mapping we just created and holds no data.
        if unsafe { libc::mprotect(base, page, libc::PROT_NONE) } != 0 {
            return Err(io::Error::last_os_error()); // `stack` unmaps on drop
        }
        Ok(stack)
    }

    /// The highest address of the mapping: the initial stack pointer, since the stack grows
    /// down on every architecture Linux runs Rust on. Page-aligned, so also 16-byte aligned
    /// as the x86-64 and AArch64 ABIs require.
    fn top(&self) -> *mut c_void {
        // SAFETY: base + len is one past the end of our mapping, a valid pointer to form.
        unsafe { self.base.cast::<u8>().add(self.len).cast::<c_void>() }
    }
}

impl Drop for ChildStack {
    fn drop(&mut self) {
        // SAFETY: we mapped exactly [base, base + len) and nothing uses it any more: a stack
        // is only dropped outside `clone_vfork` (or after its clone returned), when the
        // CLONE_VFORK child that ran on it has exec'd (leaving our address space) or exited.
        unsafe { libc::munmap(self.base, self.len) };
    }
}
