//! The platform layer: every libc call of the crate lives under `sys/`.
//!
//! Why a layer at all: process supervision is mostly a sequence of system calls whose
//! correctness hangs on details (which calls may run between `fork` and `exec`, how to signal a
//! process group without hitting a reused id, how to wait for one child without stealing the
//! host's other children). Keeping them here means the process manager above speaks in terms
//! of `spawn`, `try_reap` and `signal_group` and contains no `unsafe` at all, and a reviewer
//! can audit every `unsafe` block of the crate (each carries a `// SAFETY:` comment) in this
//! one folder.
//!
//! # Layout
//!
//! One concern per file, in the style of `shared_child` / `duct` / `process-wrap`:
//! - `spawn.rs`: the parent side of starting a child: [`SpawnSpec`], [`SpawnedChild`],
//!   [`SpawnMethod`], [`spawn`] (and its typed-error form `spawn::start`);
//! - `child.rs`: the child side, everything between `clone`/`fork` and `execve`. The **audit
//!   zone**: only async-signal-safe calls and no allocation (its header says why), together
//!   with its twins `linux/child.rs` and `other/child.rs`;
//! - `fd.rs`: `/dev/null`, non-blocking mode, the child's `dup2` sources, fd counts;
//! - `signal.rs`: [`signal_group`], [`signal_name`], the signal masks around a spawn;
//! - `sigwait.rs`: [`block_signals`] and [`wait_for_signal`] for the `serve` binary (feature
//!   `server`);
//! - `wait.rs`: [`try_reap`], [`WaitOutcome`], [`wait_exit_no_reap`];
//! - `poll.rs`: [`poll_readable`], [`poll_fds`] (readable or writable) and the [`Waker`];
//! - `rlimit.rs`: [`raise_fd_limit`];
//! - `contain` (from `linux/cgroup.rs`, `linux/keeper.rs`, `linux/reap.rs`): cgroup v2, the
//!   keeper, the child subreaper;
//! - `pty.rs`: [`open_pty`], [`set_window_size`], [`eof_char`] (a terminal per process);
//! - `stdin.rs`: [`write_input`] (no SIGPIPE in the host) and [`unread_bytes`] (`FIONREAD`);
//! - `socket.rs`: a listening socket inherited from a service manager, and its readiness
//!   notifications (feature `server`);
//! - `term.rs`: the command's own terminal for `attach`: raw mode and its restoration
//!   (feature `cli`);
//! - `pid.rs`: the crate's one pid type, `u32` (as `std::process::Child::id`), and its checked
//!   conversion to `pid_t`: every function here that takes or returns a pid uses `u32`.
//!
//! # Platform twins
//!
//! What differs between Linux and the other unix systems lives in two folders with the same
//! file names and the same item names and signatures: `linux/` and `other/` (every other unix,
//! macOS first of all). Exactly one is compiled, chosen on its `mod` line below and imported
//! as `platform`, so the portable files above call `platform::pipe_cloexec()` or
//! `platform::DeathSignal` and never say `cfg`. Linux has the better primitives (`clone` with
//! `CLONE_VM | CLONE_VFORK | CLONE_PIDFD`, pidfds, `close_range`, `eventfd`,
//! `prctl(PR_SET_PDEATHSIG)`, `/proc`); `other/` holds the documented fallback for each.
//! `cargo check` on Linux compiles only `linux/`: `other/` keeps the fallback code as it ran
//! before the split, and a change to a twin's signature must be made on both sides. There is
//! no Windows implementation: the crate is unix-only.
//!
//! The rules this layer enforces (see DESIGN.md, "Hard rules of the domain"):
//! - never `waitpid(-1)`, never a SIGCHLD handler: only the children we started are waited for,
//!   one by one, by pid or pidfd;
//! - a child starts clean: default signal dispositions, empty signal mask, its own process
//!   group, stdin from `/dev/null`, no inherited fd beyond 0, 1, 2;
//! - only async-signal-safe calls and no allocation between `clone`/`fork` and `execve`.

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
use linux as platform;
#[cfg(not(target_os = "linux"))]
mod other;
#[cfg(not(target_os = "linux"))]
use other as platform;

mod child;
mod fd;
mod pid;
mod poll;
mod pty;
mod rlimit;
mod signal;
#[cfg(feature = "server")]
mod sigwait;
#[cfg(feature = "server")]
mod socket;
mod spawn;
mod stdin;
#[cfg(feature = "cli")]
mod term;
mod wait;

#[cfg(test)]
mod tests;

#[cfg_attr(not(test), allow(unused_imports))] // for tests and diagnostics
pub(crate) use fd::open_fd_count;
pub(crate) use fd::{open_dev_null, open_null_sink, read_nonblocking, set_nonblocking};
pub(crate) use platform::{
    discard_from_pipe, live_groups, pipe_cloexec, pipe_reader, set_pipe_capacity,
};
pub(crate) use poll::{Interest, Waker, poll_fds, poll_readable};
#[cfg(feature = "cli")]
pub(crate) use pty::window_size;
pub(crate) use pty::{eof_char, open_pty, set_window_size};
#[cfg_attr(not(feature = "server"), allow(unused_imports))] // the server binary's, at start
pub(crate) use rlimit::raise_fd_limit;
pub(crate) use signal::{signal_group, signal_name};
#[cfg(feature = "server")]
pub(crate) use sigwait::{block_signals, unblock_signals, wait_for_signal};
#[cfg(feature = "server")]
pub(crate) use socket::{InheritedListener, inherited_listener, notify};
#[cfg(test)]
pub(crate) use spawn::SpawnedChild;
pub(crate) use spawn::{SpawnFailure, SpawnMethod, SpawnSpec, SpawnStage, spawn};
pub(crate) use stdin::{unread_bytes, write_input};
#[cfg(feature = "cli")]
pub(crate) use term::{SavedMode, make_raw};
pub(crate) use wait::{WaitOutcome, try_reap, wait_exit_no_reap};

/// cgroup v2, the keeper and the child subreaper (Linux; elsewhere each says `Unsupported`
/// and a manager runs without them).
pub(crate) mod contain {
    pub(crate) use super::platform::{
        CgroupLimits, EventsWatch, Keeper, LIMIT_CONTROLLERS, ProcCgroup, all_member_pids,
        available_controllers, cgroup2_mount, clone3_available, enable_controllers, kill_all,
        live_children, member_pids, move_self_into, own_cgroup_dir, own_oom_score_adj,
        process_alive, process_start_ticks, reap_exited, remove_tree, set_child_subreaper,
        signal_child, subtree_controllers, wait_any_exited,
    };

    /// Whether a child can be spawned straight into a cgroup on this platform and
    /// architecture (`clone3` with `CLONE_INTO_CGROUP`, written for x86-64 Linux).
    pub(crate) fn clone_into_cgroup_supported() -> bool {
        super::platform::CLONE_INTO_CGROUP_SUPPORTED && clone3_available()
    }
}
