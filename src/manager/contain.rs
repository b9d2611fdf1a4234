//! Containment: a cgroup v2 directory per process, under one directory per manager instance,
//! with a keeper that kills them all should the manager die; and the sweep of what a dead
//! predecessor left.
//!
//! The layout under the parent (`--cgroup PATH`, or `auto`'s `procwarden` directory):
//!
//! ```text
//! <parent>/srv-<pid>-<start ticks>/          one per manager; its `cgroup.kill` ends them all
//! <parent>/srv-<pid>-<start ticks>/<id>/     one per process, removed once it has emptied
//! ```
//!
//! The instance's name carries the owner's pid and start time (`/proc/<pid>/stat` field 22),
//! so a later manager can tell a directory whose owner is dead (even if its pid was reused)
//! from one of a live neighbour, and sweep only the former.

use std::collections::HashSet;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use parking_lot::Mutex;

use crate::id::ProcessId;
use crate::sys::contain::{self as cg, CgroupLimits, EventsWatch, Keeper, ProcCgroup};

/// Where a manager puts its processes' cgroups (see [`ManagerBuilder::cgroup`]).
///
/// [`ManagerBuilder::cgroup`]: crate::ManagerBuilder::cgroup
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CgroupMode {
    /// No cgroups: processes are signalled by process group (the library's default).
    #[default]
    Off,
    /// A `procwarden` child of this process's own cgroup when it may create one (the root of
    /// the cgroup2 hierarchy when running as root with nothing delegated).
    Auto,
    /// This directory on a cgroup2 file system (created if missing).
    Path(PathBuf),
}

impl fmt::Display for CgroupMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CgroupMode::Off => f.write_str("off"),
            CgroupMode::Auto => f.write_str("auto"),
            CgroupMode::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

/// The directory `auto` creates in the server's own cgroup.
pub const AUTO_CGROUP_NAME: &str = "procwarden";
/// The leaf the server moves itself into, under a delegated cgroup that holds it, so that its
/// own cgroup may enable controllers for its children (cgroup v2's no-internal-processes
/// rule).
pub const SERVER_LEAF_NAME: &str = "procwarden-server";
/// Prefix of an instance directory's name: `srv-<pid>-<start ticks>`.
const INSTANCE_PREFIX: &str = "srv-";
/// How long the sweep of a dead predecessor's cgroups, and the removal of this instance's at
/// close, wait for SIGKILLed members to go before giving up on a directory.
pub const CGROUP_EMPTY_WAIT: Duration = Duration::from_secs(5);

/// One manager's cgroups.
pub(crate) struct Containment {
    /// `<parent>/srv-<pid>-<ticks>`.
    instance: PathBuf,
    /// The controllers each process's cgroup has (so the limits that can be applied).
    controllers: HashSet<String>,
    keeper: Mutex<Option<Keeper>>,
}

impl fmt::Debug for Containment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Containment")
            .field("instance", &self.instance)
            .field("controllers", &self.controllers)
            .finish_non_exhaustive()
    }
}

/// What setting up containment found: the containment (or none), and the notes worth one
/// line each on stderr (what is degraded, what a sweep did).
pub(crate) struct Setup {
    pub(crate) containment: Option<Containment>,
    pub(crate) notes: Vec<String>,
}

impl Containment {
    /// Sets up `mode`. Never fails: what does not work becomes a note and no containment.
    pub(crate) fn setup(mode: &CgroupMode) -> Setup {
        let mut notes = Vec::new();
        let containment = match mode {
            CgroupMode::Off => None,
            CgroupMode::Auto | CgroupMode::Path(_) => match Self::try_setup(mode, &mut notes) {
                Ok(c) => Some(c),
                Err(e) => {
                    notes.push(format!(
                        "no cgroup containment (--cgroup {mode}): {e}; kill, timeouts and \
                         close reach process groups only, stop/continue use SIGSTOP/SIGCONT, \
                         limits are not available"
                    ));
                    None
                }
            },
        };
        Setup { containment, notes }
    }

    fn try_setup(mode: &CgroupMode, notes: &mut Vec<String>) -> io::Result<Containment> {
        if !cg::clone_into_cgroup_supported() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "clone3 with CLONE_INTO_CGROUP is not available here",
            ));
        }
        let parent = match mode {
            CgroupMode::Path(path) => {
                match std::fs::create_dir(path) {
                    Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                        return Err(with_path(e, path));
                    }
                    _ => {}
                }
                path.clone()
            }
            _ => auto_parent(notes)?,
        };
        if !parent.join("cgroup.procs").exists() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a cgroup v2 directory", parent.display()),
            ));
        }
        // Controllers for the instances: fails (EBUSY) if the parent holds processes itself.
        let _ = cg::enable_controllers(&parent, &cg::LIMIT_CONTROLLERS);
        sweep_stale(&parent, notes);
        let me = std::process::id();
        let ticks = cg::process_start_ticks(me).unwrap_or(0);
        let instance = parent.join(format!("{INSTANCE_PREFIX}{me}-{ticks}"));
        match std::fs::create_dir(&instance) {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                return Err(with_path(e, &instance));
            }
            _ => {}
        }
        if !instance.join("cgroup.kill").exists() {
            let _ = std::fs::remove_dir(&instance);
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the kernel has no cgroup.kill (Linux 5.14+)",
            ));
        }
        let _ = cg::enable_controllers(&instance, &cg::LIMIT_CONTROLLERS);
        let controllers = cg::subtree_controllers(&instance);
        let keeper = Keeper::start(&instance.join("cgroup.kill")).inspect_err(|_| {
            let _ = std::fs::remove_dir(&instance);
        })?;
        log::info!(
            "cgroups: one per process under {} (controllers: {}; keeper pid {})",
            instance.display(),
            if controllers.is_empty() {
                "none".to_string()
            } else {
                let mut names: Vec<&str> = controllers.iter().map(String::as_str).collect();
                names.sort_unstable();
                names.join(" ")
            },
            keeper.pid()
        );
        Ok(Containment {
            instance,
            controllers,
            keeper: Mutex::new(Some(keeper)),
        })
    }

    /// Whether per-process cgroups have controller `name` (`memory`, `pids`, `cpu`).
    pub(crate) fn has_controller(&self, name: &str) -> bool {
        self.controllers.contains(name)
    }

    /// The pid of the keeper, if it runs.
    pub(crate) fn keeper_pid(&self) -> Option<u32> {
        self.keeper.lock().as_ref().map(Keeper::pid)
    }

    /// A new, empty cgroup for process `id`, with `limits`.
    pub(crate) fn create(&self, id: &ProcessId, limits: CgroupLimits) -> io::Result<ProcCgroup> {
        let memory = self.controllers.contains("memory");
        ProcCgroup::create(&self.instance, &id.to_string(), limits, memory)
    }

    /// At the end of a close: SIGKILL to whatever is left anywhere below the instance, its
    /// directories removed, the keeper dismissed.
    pub(crate) fn close(&self) {
        let _ = cg::kill_all(&self.instance);
        if let Ok(watch) = EventsWatch::new(&self.instance)
            && !watch.wait_empty(&self.instance, CGROUP_EMPTY_WAIT)
        {
            log::warn!(
                "cgroups: {} still has members after SIGKILL",
                self.instance.display()
            );
        }
        if let Err(e) = cg::remove_tree(&self.instance) {
            log::warn!("cgroups: cannot remove {}: {e}", self.instance.display());
        }
        if let Some(mut keeper) = self.keeper.lock().take() {
            keeper.dismiss();
        }
    }
}

impl Drop for Containment {
    fn drop(&mut self) {
        if self.keeper.lock().is_some() {
            self.close();
        }
    }
}

fn with_path(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// `auto`: `procwarden` under this process's own cgroup, created if it may be. Under a
/// delegated cgroup that holds this process, the process first moves into a leaf of its own
/// ([`SERVER_LEAF_NAME`]) so that its cgroup may enable controllers for the new child.
fn auto_parent(notes: &mut Vec<String>) -> io::Result<PathBuf> {
    let own = cg::own_cgroup_dir()?;
    let parent = own.join(AUTO_CGROUP_NAME);
    match std::fs::create_dir(&parent) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
            return Err(with_path(e, &parent));
        }
        _ => {}
    }
    let is_root = cg::cgroup2_mount().is_ok_and(|m| m == own);
    let wanted: Vec<&str> = cg::LIMIT_CONTROLLERS
        .into_iter()
        .filter(|c| cg::available_controllers(&own).contains(*c))
        .collect();
    let enabled = cg::subtree_controllers(&own);
    if !is_root
        && wanted.iter().any(|c| !enabled.contains(*c))
        && cg::enable_controllers(&own, &wanted).is_err()
        && cg::member_pids(&own).is_ok_and(|m| m.contains(&std::process::id()))
    {
        // No internal processes: leave our own cgroup for a leaf, then enable again.
        let leaf = own.join(SERVER_LEAF_NAME);
        let moved = std::fs::create_dir(&leaf)
            .or_else(|e| match e.kind() {
                io::ErrorKind::AlreadyExists => Ok(()),
                _ => Err(e),
            })
            .and_then(|()| cg::move_self_into(&leaf));
        match moved.and_then(|()| cg::enable_controllers(&own, &wanted)) {
            Ok(()) => log::info!("cgroups: moved the server into {}", leaf.display()),
            Err(e) => notes.push(format!(
                "cgroups: cannot enable controllers in {} ({e}): limits are not available",
                own.display()
            )),
        }
    }
    Ok(parent)
}

/// Kills and removes every instance directory under `parent` whose owner is dead; notes how
/// many there were and how many processes they still held.
fn sweep_stale(parent: &Path, notes: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    let (mut dirs, mut procs) = (0usize, 0usize);
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(owner) = name.to_str().and_then(parse_instance) else {
            continue;
        };
        if cg::process_alive(owner.0, owner.1) {
            continue;
        }
        let dir = entry.path();
        procs += cg::all_member_pids(&dir).map_or(0, |p| p.len());
        let _ = cg::kill_all(&dir);
        if let Ok(watch) = EventsWatch::new(&dir) {
            watch.wait_empty(&dir, CGROUP_EMPTY_WAIT);
        }
        match cg::remove_tree(&dir) {
            Ok(()) => dirs += 1,
            Err(e) => log::warn!("cgroups: cannot remove stale {}: {e}", dir.display()),
        }
    }
    if dirs > 0 {
        notes.push(format!(
            "cgroups: removed {dirs} stale cgroup instance(s) of an earlier server under {}, \
             killing {procs} process(es) left in them",
            parent.display()
        ));
    }
}

/// `srv-<pid>-<ticks>` to `(pid, ticks)`.
fn parse_instance(name: &str) -> Option<(u32, u64)> {
    let rest = name.strip_prefix(INSTANCE_PREFIX)?;
    let (pid, ticks) = rest.split_once('-')?;
    Some((pid.parse().ok()?, ticks.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_names() {
        assert_eq!(parse_instance("srv-12-345"), Some((12, 345)));
        assert_eq!(parse_instance("srv-12"), None);
        assert_eq!(parse_instance("other"), None);
        assert_eq!(CgroupMode::Auto.to_string(), "auto");
    }
}
