//! The child subreaper's other half: reaping what is adopted.
//!
//! A child subreaper (`PR_SET_CHILD_SUBREAPER`) becomes the parent of every descendant
//! orphaned below it, and so must reap them or they stay zombies. The kernel tells a parent
//! of a child's exit only through `SIGCHLD` or a wait, and this crate installs no signal
//! handler, so one thread blocks in `waitid(P_ALL, WEXITED | WNOWAIT)`: it learns of each
//! exited child without reaping it, and reaps it only if it is not one of the manager's own
//! leaders (whose watchers reap them, keeping their exit statuses). The leaders are known
//! exactly: the supervisor spawns holding [`Managed`]'s lock and records the pid before
//! releasing it, so an exited child the reaper looks up is either recorded or not ours.
//!
//! The trade-off that makes this opt-in in the library: `waitid(P_ALL)` reaps *every* child of
//! the process that is not a manager's leader, so an embedding program that starts children of
//! its own would lose their exit statuses (its waits would fail with `ECHILD`). The server owns
//! all its children and turns it on.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::{Condvar, Mutex, MutexGuard};

use crate::sys::contain as sys;

/// The manager's leaders that are not reaped yet, for the orphan reaper to leave alone.
#[derive(Default)]
pub(crate) struct Managed {
    pids: Mutex<ManagedPids>,
    changed: Condvar,
    stopping: AtomicBool,
    /// Adopted orphans reaped so far.
    pub(crate) reaped: AtomicU64,
}

impl Managed {
    /// The live children of this process that are not leaders: the adopted descendants,
    /// which a close without cgroups counts as members too.
    pub(crate) fn adopted(&self) -> Vec<u32> {
        let children = sys::live_children();
        let pids = self.pids.lock();
        children
            .into_iter()
            .filter(|p| !pids.pids.contains(p))
            .collect()
    }
}

#[derive(Default)]
pub(crate) struct ManagedPids {
    pids: HashSet<u32>,
    /// Bumped at every spawn, so a reaper with no child to wait for knows when one exists.
    spawns: u64,
}

impl ManagedPids {
    /// Records a freshly spawned leader (call with the lock held across the spawn).
    pub(crate) fn insert(&mut self, pid: u32) {
        self.pids.insert(pid);
        self.spawns = self.spawns.wrapping_add(1);
    }
}

impl Managed {
    /// The lock to hold across a spawn.
    pub(crate) fn lock(&self) -> MutexGuard<'_, ManagedPids> {
        self.pids.lock()
    }

    /// A spawn happened (call after releasing the lock).
    pub(crate) fn spawned(&self) {
        self.changed.notify_all();
    }

    /// The leader `pid` was reaped by its watcher.
    pub(crate) fn reaped_leader(&self, pid: u32) {
        let removed = self.pids.lock().pids.remove(&pid);
        if removed {
            self.changed.notify_all();
        }
    }

    /// Ends the reaper at its next wake-up.
    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let _guard = self.pids.lock();
        self.changed.notify_all();
    }
}

/// The reaper thread's body: runs until [`Managed::stop`] (and then returns at its next
/// wake-up; blocked in `waitid`, that is when a child next exits).
pub(crate) fn run(managed: &Arc<Managed>, reaped_one: &dyn Fn()) {
    while !managed.stopping.load(Ordering::SeqCst) {
        // Read before the wait: a spawn between an ECHILD and the lock is not missed.
        let seen = managed.pids.lock().spawns;
        match sys::wait_any_exited() {
            Ok(Some(pid)) => {
                let mut pids = managed.pids.lock();
                if pids.pids.contains(&pid) {
                    // One of ours: its watcher reaps it; wait until it has (the zombie would
                    // otherwise be reported again at once).
                    while pids.pids.contains(&pid) && !managed.stopping.load(Ordering::SeqCst) {
                        managed.changed.wait(&mut pids);
                    }
                } else {
                    drop(pids);
                    if sys::reap_exited(pid) {
                        managed.reaped.fetch_add(1, Ordering::Relaxed);
                        log::debug!("reaped adopted orphan {pid}");
                        reaped_one();
                    }
                }
            }
            Ok(None) => {
                // No child at all: wait for the next spawn.
                let mut pids = managed.pids.lock();
                while pids.spawns == seen && !managed.stopping.load(Ordering::SeqCst) {
                    managed.changed.wait(&mut pids);
                }
            }
            Err(e) => {
                log::error!("the orphan reaper stopped: waitid failed: {e}");
                return;
            }
        }
    }
}
