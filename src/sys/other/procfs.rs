//! No `/proc` pass on other unix systems: whether a group has emptied is asked group by group.

use std::collections::HashSet;

/// The process groups that have a member that is not a zombie: `None` here, where `/proc`
/// cannot answer, so callers ask per group.
pub(crate) fn live_groups() -> Option<HashSet<u32>> {
    None
}

/// No `/proc` to open a pipe's read end by: `None`, and what a process never read after its
/// input was closed goes uncounted here.
pub(crate) fn pipe_reader(
    _fd: std::os::fd::BorrowedFd<'_>,
) -> std::io::Result<Option<std::os::fd::OwnedFd>> {
    Ok(None)
}
