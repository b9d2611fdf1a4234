//! A cgroup v2 parent directory a test makes and removes: `procwarden serve --cgroup PATH`
//! puts its instance under it, and dropping the guard kills whatever is left in it
//! (`cgroup.kill`) and removes it, also when the test failed.
//!
//! Where no cgroup2 hierarchy is writable [`TestCgroup::new`] returns `None` with a message
//! (the caller skips), except under `CI=true`, where it fails: CI runs as root on a machine
//! with cgroup2, and these tests must not silently skip there.
//!
//! A limit test asks [`TestCgroup::has_controller`] whether the processes a server puts under
//! the directory can have the controller its limit needs; without it the test checks the
//! contract's 400 instead. `PROCWARDEN_EXPECT_CONTROLLERS` (comma-separated names; the VM run
//! of `.ci/vm-limits.sh` sets `memory,pids,cpu`) turns a named controller's absence into a
//! failure, so that a run meant to test the limits can never fall back to the 400.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long the guard waits for killed members to go before removing the directories.
const EMPTY_WAIT: Duration = Duration::from_secs(5);

/// A test-owned cgroup directory.
#[derive(Debug)]
pub struct TestCgroup {
    pub path: PathBuf,
}

/// Where cgroup2 is mounted, from /proc/self/mountinfo.
pub fn cgroup2_mount() -> Option<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        (right.split_whitespace().next() == Some("cgroup2"))
            .then(|| left.split_whitespace().nth(4).map(PathBuf::from))
            .flatten()
    })
}

impl TestCgroup {
    /// A fresh, uniquely named directory at the top of the cgroup2 hierarchy. `None` (after
    /// saying why) where there is none or it is not writable; a panic instead under `CI=true`.
    pub fn new(tag: &str) -> Option<TestCgroup> {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let made = cgroup2_mount()
            .ok_or_else(|| "no cgroup2 mount".to_string())
            .and_then(|m| {
                let path = m.join(format!(
                    "pwtest-{tag}-{}-{}",
                    std::process::id(),
                    SEQ.fetch_add(1, Ordering::SeqCst)
                ));
                std::fs::create_dir(&path)
                    .map(|()| path.clone())
                    .map_err(|e| format!("cannot create {}: {e}", path.display()))
            });
        match made {
            Ok(path) => Some(TestCgroup { path }),
            Err(why) if std::env::var("CI").as_deref() == Ok("true") => {
                panic!("CI=true and no writable cgroup2 hierarchy: {why}")
            }
            Err(why) => {
                eprintln!("skipping: no writable cgroup2 hierarchy ({why})");
                None
            }
        }
    }

    /// The directory as a `--cgroup` argument.
    pub fn arg(&self) -> &str {
        self.path.to_str().expect("utf-8 path")
    }

    /// Whether the directory offers controller `name` (`memory`, `pids`, `cpu`) to the
    /// cgroups below it, which a server may then enable for its processes: it is listed in
    /// the directory's `cgroup.controllers`. Panics where it is not but
    /// `PROCWARDEN_EXPECT_CONTROLLERS` names it.
    pub fn has_controller(&self, name: &str) -> bool {
        let listed =
            std::fs::read_to_string(self.path.join("cgroup.controllers")).unwrap_or_default();
        let has = listed.split_whitespace().any(|c| c == name);
        let expected = std::env::var("PROCWARDEN_EXPECT_CONTROLLERS").unwrap_or_default();
        if !has && expected.split(',').any(|c| c.trim() == name) {
            panic!(
                "PROCWARDEN_EXPECT_CONTROLLERS={expected} but {} offers only {listed:?}",
                self.path.display()
            );
        }
        has
    }

    /// Every pid in the directory or below it.
    pub fn members(&self) -> Vec<i32> {
        members(&self.path)
    }

    /// The subdirectories (one per server instance).
    pub fn children(&self) -> Vec<PathBuf> {
        subdirs(&self.path)
    }
}

/// Every pid in `dir` or below.
pub fn members(dir: &Path) -> Vec<i32> {
    let mut pids: Vec<i32> = std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    for sub in subdirs(dir) {
        pids.extend(members(&sub));
    }
    pids
}

/// The cgroup subdirectories of `dir`.
pub fn subdirs(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

fn remove_tree(dir: &Path) {
    for sub in subdirs(dir) {
        remove_tree(&sub);
    }
    let _ = std::fs::remove_dir(dir);
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let _ = std::fs::write(self.path.join("cgroup.kill"), "1");
        let deadline = Instant::now() + EMPTY_WAIT;
        // Polled: the test has no event loop of its own; bounded by the deadline.
        while !members(&self.path).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        remove_tree(&self.path);
    }
}
