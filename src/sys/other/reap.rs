//! No child subreaper outside Linux (FreeBSD's `procctl(PROC_REAP_ACQUIRE)` is not used):
//! orphans go to PID 1 as usual.

use std::io;

pub(crate) fn set_child_subreaper() -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "no child subreaper on this system",
    ))
}

pub(crate) fn wait_any_exited() -> io::Result<Option<u32>> {
    Ok(None)
}

pub(crate) fn reap_exited(_pid: u32) -> bool {
    false
}

/// No `/proc` to list children from here.
pub(crate) fn live_children() -> Vec<u32> {
    Vec::new()
}

/// No adopted children here; nothing to signal.
pub(crate) fn signal_child(_pid: u32, _sig: i32) {}
