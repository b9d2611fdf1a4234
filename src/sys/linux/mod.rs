//! The Linux side of the platform twins: the paths where Linux has a better primitive than
//! the rest of unix.
//!
//! Every file here has a twin of the same name in `other/`, with the same item names and
//! signatures; `sys/mod.rs` compiles exactly one of the two folders and names it `platform`,
//! so the portable files call `platform::pipe_cloexec()` and never say `cfg`. What Linux uses:
//! - `spawn.rs`: `clone(CLONE_VM | CLONE_VFORK | CLONE_PIDFD)` on a per-thread stack;
//! - `child.rs` (audit zone, see `sys/child.rs`): the raw `rt_sigaction` reset,
//!   `close_range(CLOSE_RANGE_CLOEXEC)`, `prctl(PR_SET_PDEATHSIG)`;
//! - `pidfd.rs`: `pidfd_open`, `pidfd_send_signal(PIDFD_SIGNAL_PROCESS_GROUP)`,
//!   `waitid(P_PIDFD)`;
//! - `fd.rs`: `pipe2(O_CLOEXEC)`, the `close_range` probe, `/proc/self/fd`, `splice` to
//!   `/dev/null`, `F_SETPIPE_SZ`;
//! - `poll.rs`: an `eventfd` waker;
//! - `procfs.rs`: one pass over `/proc` for the groups that still have live members;
//! - `pty.rs`: `posix_openpt(O_CLOEXEC)`, no `grantpt`, the slave by `TIOCGPTPEER`;
//! - `signal.rs`: the Linux-only signal names and the real-time signals;
//! - `rlimit.rs`: no cap on the soft fd limit;
//! - `cgroup.rs`: cgroup v2, one cgroup per process (`clone3(CLONE_INTO_CGROUP)` in
//!   `spawn.rs`); `keeper.rs`: the process that kills them all if the manager dies;
//! - `reap.rs`: the child subreaper and the reaping of adopted orphans.
//! - `socket.rs`: abstract unix socket addresses for `$NOTIFY_SOCKET`.

mod cgroup;
mod child;
mod fd;
mod keeper;
mod pidfd;
mod poll;
mod procfs;
mod pty;
mod reap;
mod rlimit;
mod signal;
#[cfg(feature = "server")]
mod socket;
mod spawn;

pub(crate) use cgroup::*;
pub(in crate::sys) use child::{
    DeathSignal, LAST_SIGNAL, mark_all_cloexec_from, reset_disposition,
};
pub(in crate::sys) use fd::{FD_DIR, close_range_cloexec_works};
pub(crate) use fd::{discard_from_pipe, pipe_cloexec, set_pipe_capacity};
pub(crate) use keeper::Keeper;
#[cfg(test)]
pub(in crate::sys) use pidfd::{PIDFD_SIGNAL_PROCESS_GROUP, pidfd_send_signal};
pub(in crate::sys) use pidfd::{pidfd_after_fork, signal_group_via_pidfd, try_reap_via_pidfd};
pub(in crate::sys) use poll::{WAKE_TOKEN, WakeFds};
pub(crate) use procfs::{live_groups, pipe_reader};
pub(in crate::sys) use pty::{OPENPT_FLAGS, grant, open_slave, set_cloexec_if_needed};
pub(crate) use reap::*;
pub(in crate::sys) use rlimit::fd_limit_target;
pub(in crate::sys) use signal::{extra_signal_name, realtime_signal_name};
#[cfg(feature = "server")]
pub(in crate::sys) use socket::send_to_abstract;
#[cfg(test)]
pub(in crate::sys) use spawn::spare_stack_base;
pub(in crate::sys) use spawn::{
    CLONE_INTO_CGROUP_SUPPORTED, DEFAULT_SPAWN_METHOD, start_vfork, start_vfork_into_cgroup,
};
