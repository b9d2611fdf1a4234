//! No cgroups outside Linux: every function says so (`Unsupported`), and a manager asked for
//! cgroups runs without them (reported once at start).

use std::collections::HashSet;
use std::io;
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// As on Linux; nothing to enable here.
pub(crate) const LIMIT_CONTROLLERS: [&str; 3] = ["memory", "pids", "cpu"];
/// As on Linux.
pub(crate) const DROP_EMPTY_WAIT: Duration = Duration::from_secs(1);

fn unsupported<T>() -> io::Result<T> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "cgroups are Linux only",
    ))
}

pub(crate) fn own_cgroup_dir() -> io::Result<PathBuf> {
    unsupported()
}
pub(crate) fn cgroup2_mount() -> io::Result<PathBuf> {
    unsupported()
}
pub(crate) fn subtree_controllers(_dir: &Path) -> HashSet<String> {
    HashSet::new()
}
pub(crate) fn available_controllers(_dir: &Path) -> HashSet<String> {
    HashSet::new()
}
pub(crate) fn enable_controllers(_dir: &Path, _wanted: &[&str]) -> io::Result<()> {
    unsupported()
}
pub(crate) fn member_pids(_dir: &Path) -> io::Result<Vec<u32>> {
    unsupported()
}
pub(crate) fn move_self_into(_dir: &Path) -> io::Result<()> {
    unsupported()
}
pub(crate) fn is_populated(_dir: &Path) -> io::Result<bool> {
    unsupported()
}
pub(crate) fn kill_all(_dir: &Path) -> io::Result<()> {
    unsupported()
}
pub(crate) fn all_member_pids(_dir: &Path) -> io::Result<Vec<u32>> {
    unsupported()
}
pub(crate) fn remove_tree(_dir: &Path) -> io::Result<()> {
    unsupported()
}
pub(crate) fn clone3_available() -> bool {
    false
}
pub(crate) fn process_alive(_pid: u32, _start_ticks: u64) -> bool {
    false
}
pub(crate) fn process_start_ticks(_pid: u32) -> Option<u64> {
    None
}

/// Never made here.
#[derive(Debug)]
pub(crate) struct EventsWatch {
    never: std::convert::Infallible,
}

impl EventsWatch {
    pub(crate) fn new(_dir: &Path) -> io::Result<EventsWatch> {
        unsupported()
    }
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        match self.never {}
    }
    pub(crate) fn drain(&self) {}
    pub(crate) fn populated(&self) -> io::Result<bool> {
        match self.never {}
    }
    pub(crate) fn wait_empty(&self, _dir: &Path, _timeout: Duration) -> bool {
        match self.never {}
    }
}

/// As on Linux.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CgroupLimits {
    pub(crate) memory_bytes: Option<u64>,
    pub(crate) pids: Option<u64>,
    pub(crate) cpu_percent: Option<u64>,
}

/// Never made here.
#[derive(Debug)]
pub(crate) struct ProcCgroup {
    never: std::convert::Infallible,
}

impl ProcCgroup {
    pub(crate) fn create(
        _parent: &Path,
        _name: &str,
        _limits: CgroupLimits,
        _memory: bool,
    ) -> io::Result<Self> {
        unsupported()
    }
    pub(crate) fn path(&self) -> &Path {
        match self.never {}
    }
    pub(crate) fn spawn_into<T>(
        &self,
        _spawn: impl FnOnce(BorrowedFd<'_>) -> io::Result<T>,
    ) -> io::Result<T> {
        match self.never {}
    }
    pub(crate) fn take_events(&self) -> Option<EventsWatch> {
        match self.never {}
    }
    pub(crate) fn populated(&self) -> bool {
        match self.never {}
    }
    pub(crate) fn kill(&self) -> io::Result<()> {
        match self.never {}
    }
    pub(crate) fn signal_members(&self, _sig: i32) -> io::Result<usize> {
        match self.never {}
    }
    pub(crate) fn freeze(&self, _frozen: bool) -> io::Result<()> {
        match self.never {}
    }
    pub(crate) fn cpu_usec(&self) -> Option<u64> {
        match self.never {}
    }
    pub(crate) fn memory_peak(&self) -> Option<u64> {
        match self.never {}
    }
    pub(crate) fn oom_killed(&self) -> bool {
        match self.never {}
    }
    pub(crate) fn remove(&self) -> io::Result<()> {
        match self.never {}
    }
    pub(crate) fn is_removed(&self) -> bool {
        match self.never {}
    }
}

/// No `oom_score_adj` here.
pub(crate) fn own_oom_score_adj() -> Option<i32> {
    None
}
