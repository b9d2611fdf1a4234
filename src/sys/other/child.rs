//! The child side on other unix systems: **audit zone**, like `sys/child.rs` (read its header
//! for the rules). Everything here runs in the forked child between `fork` and `execve`,
//! except [`DeathSignal::new`].

use std::ffi::{c_int, c_uint};
use std::ptr;

use crate::sys::child::ChildStep;

/// Highest signal number reset to `SIG_DFL` in the child. macOS: 31 (`NSIG` is 32).
#[cfg(any(target_os = "macos", target_os = "ios"))]
pub(in crate::sys) const LAST_SIGNAL: c_int = 31;
/// Highest signal number reset to `SIG_DFL` in the child. Other unix systems: up to 128
/// (FreeBSD's maximum); numbers a system does not have just fail with `EINVAL`, which is
/// ignored.
#[cfg(not(any(target_os = "macos", target_os = "ios")))]
pub(in crate::sys) const LAST_SIGNAL: c_int = 128;

/// Sets `sig` back to `SIG_DFL` with `sigaction` and `default_action`; errors are ignored.
/// Async-signal-safe.
pub(in crate::sys) fn reset_disposition(sig: c_int, default_action: &libc::sigaction) {
    // SAFETY: sigaction is async-signal-safe; both pointers are valid or NULL.
    unsafe { libc::sigaction(sig, default_action, ptr::null_mut()) };
}

/// No system call marks a whole fd range close-on-exec here: always `false`, and the caller
/// marks fd by fd. Async-signal-safe (it does nothing).
pub(in crate::sys) fn mark_all_cloexec_from(_first: c_uint) -> bool {
    false
}

/// The parent-death signal: other unix systems have no such mechanism, so the request is
/// ignored (see `SpawnSpec::parent_death_signal`).
#[derive(Debug, Clone, Copy)]
pub(in crate::sys) struct DeathSignal;

impl DeathSignal {
    /// Parent side: nothing to prepare.
    pub(in crate::sys) fn new(_requested: Option<c_int>) -> Self {
        DeathSignal
    }

    /// Child side: nothing to arm, never fails. Async-signal-safe (it does nothing).
    pub(in crate::sys) fn arm(&self) -> Result<(), (c_int, ChildStep)> {
        Ok(())
    }
}
