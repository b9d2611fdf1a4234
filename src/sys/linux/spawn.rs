//! Linux's way of creating the child: `clone(CLONE_VM | CLONE_VFORK | CLONE_PIDFD | SIGCHLD)`
//! on a private stack, the way glibc's `posix_spawn` and Go's runtime start children. No page
//! table is copied, so the cost does not grow with the parent's memory, and the pidfd comes
//! atomically with the child.

use std::cell::Cell;
use std::ffi::{c_int, c_void};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr;

use super::child::child_entry;
use crate::sys::child::ChildArgs;
use crate::sys::signal::BlockedSignals;
use crate::sys::spawn::SpawnMethod;

/// Linux spawns with `clone` by default.
pub(in crate::sys) const DEFAULT_SPAWN_METHOD: SpawnMethod = SpawnMethod::CloneVfork;

/// Usable size of the stack the `CLONE_VM` child runs on before `execve`.
///
/// The child only runs `child::child_exec`: a few small frames plus libc's thin syscall
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

/// Creates the child of `args` with `clone(CLONE_VM | CLONE_VFORK | CLONE_PIDFD)`, blocking
/// all signals around the call, and returns once it has exec'd or exited: `(pid, pidfd)`.
/// The child reports a failure through `args.failure`, in the memory it shares with us.
///
/// `Ok(None)` when the kernel or a sandbox refuses this flag combination (`EINVAL`): the
/// caller then forks, which always works.
pub(in crate::sys) fn start_vfork(
    args: &ChildArgs,
) -> io::Result<Option<(libc::pid_t, Option<OwnedFd>)>> {
    let arg = args as *const ChildArgs as *mut c_void;
    let cloned = {
        let _blocked = BlockedSignals::all()?;
        // SAFETY: `child_entry` only runs `child_exec` (async-signal-safe, no allocation,
        // ends in execve or _exit); `args` outlives the call, which returns only after the
        // child has exec'd or exited; all signals are blocked (`_blocked`). The child writes
        // to `args` only through its atomic `failure` fields.
        unsafe { clone_vfork(child_entry, arg) }
    }; // the signal mask is restored here
    match cloned {
        Ok(child) => Ok(Some(child)),
        // EINVAL: a kernel or sandbox refusing this flag combination. fork always works.
        Err(err) if err.raw_os_error() == Some(libc::EINVAL) => {
            log::debug!("clone(CLONE_VM | CLONE_VFORK | CLONE_PIDFD) failed ({err}); using fork");
            Ok(None)
        }
        Err(err) => Err(err),
    }
}

/// Starts `entry(arg)` in a new process with `clone(CLONE_VM | CLONE_VFORK | CLONE_PIDFD |
/// SIGCHLD)` on a private stack.
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
unsafe fn clone_vfork(
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
pub(in crate::sys) fn spare_stack_base() -> Option<usize> {
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

/// `struct clone_args` of `<linux/sched.h>` up to `cgroup` (`CLONE_ARGS_SIZE_VER2`, 88 bytes,
/// Linux 5.7+). Every field is a 64-bit integer; pointers are passed as addresses.
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// `CLONE_INTO_CGROUP` (Linux 5.7+): the child starts as a member of the cgroup whose
/// directory fd is `clone_args.cgroup`. Kernel ABI, defined here because `libc` 0.2 may not
/// export it.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Whether [`start_vfork_into_cgroup`] can run here: the `clone3` entry is written for
/// x86-64 only (it needs a few instructions of assembly, see [`clone3_vm`]).
pub(in crate::sys) const CLONE_INTO_CGROUP_SUPPORTED: bool = cfg!(target_arch = "x86_64");

/// As [`start_vfork`], but with `clone3(CLONE_VM | CLONE_VFORK | CLONE_PIDFD |
/// CLONE_INTO_CGROUP)`: the child is a member of the cgroup `cgroup` names from its first
/// instruction, so there is no moment in which it (or anything it forks) is outside it, and
/// no migration (a write to `cgroup.procs` takes the cgroup core's global lock). Returns
/// `(pid, pidfd)` once the child has exec'd or exited.
pub(in crate::sys) fn start_vfork_into_cgroup(
    args: &ChildArgs,
    cgroup: BorrowedFd<'_>,
) -> io::Result<(libc::pid_t, Option<OwnedFd>)> {
    let arg = args as *const ChildArgs as *mut c_void;
    let stack = match SPARE_STACK.try_with(Cell::take) {
        Ok(Some(stack)) => stack,
        _ => ChildStack::new(CHILD_STACK_SIZE)?,
    };
    let mut pidfd: c_int = -1;
    let mut clone_args = CloneArgs {
        flags: (libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PIDFD) as u64 | CLONE_INTO_CGROUP,
        pidfd: &mut pidfd as *mut c_int as u64,
        exit_signal: libc::SIGCHLD as u64,
        stack: stack.base as u64,
        stack_size: stack.len as u64,
        cgroup: u64::try_from(cgroup.as_raw_fd())
            .map_err(|_| io::Error::from_raw_os_error(libc::EBADF))?,
        ..CloneArgs::default()
    };
    let result = {
        let _blocked = BlockedSignals::all()?;
        // SAFETY: as for `clone_vfork`: `child_entry` only runs `child_exec` (async-signal-
        // safe, no allocation, ends in execve or _exit), `args` outlives the call, which
        // returns only after the child has exec'd or exited (CLONE_VFORK), all signals are
        // blocked, and the stack (including its guard page, below the usable part) is ours
        // alone for the call. `clone_args` and `pidfd` outlive the call.
        unsafe { clone3_vm(&mut clone_args, child_entry, arg) }
    };
    let _ = SPARE_STACK.try_with(move |spare| spare.set(Some(stack)));
    let pid = result?;
    let pidfd = (pidfd >= 0).then(|| {
        // SAFETY: the kernel stored a fresh pidfd here for us; nothing else owns it.
        unsafe { OwnedFd::from_raw_fd(pidfd) }
    });
    Ok((pid, pidfd))
}

/// `clone3(args)` whose child calls `entry(arg)` on the stack `args` names and never comes
/// back. Assembly because a `CLONE_VM` child on a stack of its own cannot return through the
/// caller's frames (the libc `syscall` wrapper would return into the parent's stack), so the
/// child must jump straight to `entry`, as glibc's and musl's `clone` do.
///
/// # Safety
///
/// As [`clone_vfork`]: `entry` must never return and may only make async-signal-safe calls
/// without allocating; `arg` and everything `args` points to must outlive the call; all
/// signals must be blocked; the stack must be a private mapping of this thread.
#[cfg(target_arch = "x86_64")]
unsafe fn clone3_vm(
    args: &mut CloneArgs,
    entry: extern "C" fn(*mut c_void) -> c_int,
    arg: *mut c_void,
) -> io::Result<libc::pid_t> {
    let ret: i64;
    // SAFETY: the system call clobbers rax (result), rcx and r11 (declared). In the parent
    // the block is just that system call. The child starts on the stack `args` names, whose
    // top is page aligned, so `call` leaves it aligned as the ABI wants; it calls `entry`
    // with `arg` in rdi and never returns (`ud2` traps if it did). The kernel reads `args`
    // and writes the pidfd through it: memory is not declared untouched.
    unsafe {
        std::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "mov rdi, r12",
            "call r13",
            "ud2",
            "2:",
            inlateout("rax") libc::SYS_clone3 => ret,
            in("rdi") args as *mut CloneArgs,
            in("rsi") std::mem::size_of::<CloneArgs>(),
            in("r12") arg,
            in("r13") entry as usize,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    if ret < 0 {
        return Err(io::Error::from_raw_os_error(
            i32::try_from(-ret).unwrap_or(libc::EINVAL),
        ));
    }
    libc::pid_t::try_from(ret).map_err(|_| io::Error::other("clone3 returned a bad pid"))
}

/// Not written for this architecture: [`CLONE_INTO_CGROUP_SUPPORTED`] is false, so cgroups
/// are turned off at start and this is never called.
#[cfg(not(target_arch = "x86_64"))]
unsafe fn clone3_vm(
    _args: &mut CloneArgs,
    _entry: extern "C" fn(*mut c_void) -> c_int,
    _arg: *mut c_void,
) -> io::Result<libc::pid_t> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}
