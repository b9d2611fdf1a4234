//! Creating the child on other unix systems: there is no `clone(CLONE_VM | CLONE_VFORK)`, so
//! every spawn forks.

use std::io;
use std::os::fd::OwnedFd;

use crate::sys::child::ChildArgs;
use crate::sys::spawn::SpawnMethod;

/// Other unix systems spawn with `fork` by default: it is all they have.
pub(in crate::sys) const DEFAULT_SPAWN_METHOD: SpawnMethod = SpawnMethod::Fork;

/// No child that shares our memory here: always `Ok(None)`, and the caller forks.
pub(in crate::sys) fn start_vfork(
    _args: &ChildArgs,
) -> io::Result<Option<(libc::pid_t, Option<OwnedFd>)>> {
    Ok(None)
}

/// No `clone3` here.
pub(in crate::sys) const CLONE_INTO_CGROUP_SUPPORTED: bool = false;

/// No `clone3` here; never called (cgroups are off).
pub(in crate::sys) fn start_vfork_into_cgroup(
    _args: &ChildArgs,
    _cgroup: std::os::fd::BorrowedFd<'_>,
) -> io::Result<(libc::pid_t, Option<OwnedFd>)> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}
