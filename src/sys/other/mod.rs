//! The fallback side of the platform twins: every unix other than Linux (macOS first of
//! all), where the portable POSIX calls do what Linux does with its own primitives.
//!
//! Every file here has a twin of the same name in `linux/`, with the same item names and
//! signatures, and says what these systems get instead of the Linux primitive. These files
//! are not compiled on Linux, so `cargo check` there does not see them: they hold the code
//! that ran before the platform layer was split into twins, moved unchanged, and any change
//! to a twin's signature must be made on both sides by hand.
//!
//! What other unix systems get:
//! - `spawn.rs`: no `CLONE_VM` child: every spawn forks;
//! - `child.rs` (audit zone, see `sys/child.rs`): `sigaction` for the reset, the fd-by-fd
//!   close-on-exec loop, no parent-death signal;
//! - `pidfd.rs`: no pidfds: a waiter thread per child (`waitid(WNOWAIT)`), `killpg` only while
//!   the number is safe;
//! - `fd.rs`: `pipe` then `fcntl(FD_CLOEXEC)`, `/dev/fd`;
//! - `poll.rs`: a nonblocking pipe as the waker;
//! - `procfs.rs`: no `/proc` pass: groups are asked one by one;
//! - `pty.rs`: close-on-exec after `posix_openpt`, `grantpt`, the slave by `ptsname` (locked);
//! - `signal.rs`: the macOS-only signal names, no real-time signals;
//! - `rlimit.rs`: the macOS cap on the soft fd limit;
//! - `cgroup.rs`, `keeper.rs`, `reap.rs`: no cgroups, no keeper, no subreaper.
//! - `socket.rs`: no abstract unix socket addresses.

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
pub(in crate::sys) use pidfd::{pidfd_after_fork, signal_group_via_pidfd, try_reap_via_pidfd};
pub(in crate::sys) use poll::{WAKE_TOKEN, WakeFds};
pub(crate) use procfs::{live_groups, pipe_reader};
pub(in crate::sys) use pty::{OPENPT_FLAGS, grant, open_slave, set_cloexec_if_needed};
pub(crate) use reap::*;
pub(in crate::sys) use rlimit::fd_limit_target;
pub(in crate::sys) use signal::{extra_signal_name, realtime_signal_name};
#[cfg(feature = "server")]
pub(in crate::sys) use socket::send_to_abstract;
pub(in crate::sys) use spawn::{
    CLONE_INTO_CGROUP_SUPPORTED, DEFAULT_SPAWN_METHOD, start_vfork, start_vfork_into_cgroup,
};
