//! The platform layer: every libc call of the crate lives under `sys/`.
//!
//! Why a layer at all: process supervision is mostly a sequence of system calls whose
//! correctness hangs on details (which calls may run between `fork` and `exec`, how to signal a
//! process group without hitting a reused id, how to wait for one child without stealing the
//! host's other children). Keeping them here means the process manager above speaks in terms
//! of `spawn`, `try_reap` and `signal_group` and contains no `unsafe` at all, and a reviewer
//! can audit every `unsafe` block of the crate (each carries a `// SAFETY:` comment) in two
//! files.
//!
//! Layout, in the style of `shared_child` / `duct`: `unix.rs` holds the API and the portable
//! code; `linux.rs` holds the Linux-only system calls (`clone` with `CLONE_VFORK | CLONE_PIDFD`,
//! `pidfd_open`, `pidfd_send_signal`, `close_range`, `eventfd`, `prctl`). Each Linux-only path
//! has a documented fallback in `unix.rs` for the other unix systems (macOS first of all).
//! There is no Windows implementation: the crate is unix-only.
//!
//! The rules this layer enforces (see DESIGN.md, "Hard rules of the domain"):
//! - never `waitpid(-1)`, never a SIGCHLD handler: only the children we started are waited for,
//!   one by one, by pid or pidfd;
//! - a child starts clean: default signal dispositions, empty signal mask, its own process
//!   group, stdin from `/dev/null`, no inherited fd beyond 0, 1, 2;
//! - only async-signal-safe calls and no allocation between `clone`/`fork` and `execve`.

#[cfg(target_os = "linux")]
mod linux;
#[cfg(unix)]
mod procfs;
#[cfg(all(unix, feature = "server"))]
mod signals;
#[cfg(unix)]
mod unix;

#[cfg(unix)]
pub(crate) use procfs::live_groups;
#[cfg(all(unix, feature = "server"))]
pub(crate) use signals::{block_signals, wait_for_signal};
#[cfg(unix)]
pub(crate) use unix::*;
