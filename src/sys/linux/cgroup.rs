//! cgroup v2 (Linux 5.7+ for `CLONE_INTO_CGROUP`, 5.14+ for `cgroup.kill`): finding a writable
//! hierarchy, one directory per process, its events, its kill switch, its freezer and its
//! accounting. Everything here is plain file I/O on the cgroup2 mount (`cgroup.events`, the
//! kernel's event that a cgroup emptied, is watched by polling its open file for `POLLPRI`)
//! except a signal to every member (through a pidfd for each: `pidfd.rs`).

use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use std::time::{Duration, Instant};

/// The controllers whose limits a start may ask for, as `cgroup.controllers` names them.
pub(crate) const LIMIT_CONTROLLERS: [&str; 3] = ["memory", "pids", "cpu"];

/// The cgroup v2 directory this process is in: the cgroup2 mount point (from
/// `/proc/self/mountinfo`) joined with the `0::` line of `/proc/self/cgroup`. `NotFound` when
/// there is no cgroup2 mount or this process's cgroup is not under it (a namespace boundary).
pub(crate) fn own_cgroup_dir() -> io::Result<PathBuf> {
    let mount = cgroup2_mount()?;
    let own = fs::read_to_string("/proc/self/cgroup")?;
    let rel = own
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no cgroup v2 line"))?;
    let dir = mount.join(rel.trim_start_matches('/'));
    if dir.join("cgroup.procs").exists() {
        Ok(dir)
    } else {
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{} is not visible in this mount namespace", dir.display()),
        ))
    }
}

/// Where the cgroup2 hierarchy is mounted (`/sys/fs/cgroup`, or `/sys/fs/cgroup/unified` on a
/// hybrid host).
pub(crate) fn cgroup2_mount() -> io::Result<PathBuf> {
    let info = fs::read_to_string("/proc/self/mountinfo")?;
    for line in info.lines() {
        // "<id> <parent> <maj:min> <root> <mount point> <options> [optional...] - <type> ..."
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        if right.split_ascii_whitespace().next() != Some("cgroup2") {
            continue;
        }
        if let Some(point) = left.split_ascii_whitespace().nth(4) {
            return Ok(PathBuf::from(unescape_mountinfo(point)));
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        "no cgroup2 file system is mounted",
    ))
}

/// Mount points in `mountinfo` escape space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && let Ok(code) = u8::from_str_radix(&field[i + 1..i + 4], 8)
        {
            out.push(code);
            i += 4;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The controllers `dir` offers its children (`cgroup.controllers` of `dir` lists what `dir`
/// itself may use; `cgroup.subtree_control` what its children get).
pub(crate) fn subtree_controllers(dir: &Path) -> HashSet<String> {
    read_words(&dir.join("cgroup.subtree_control"))
}

/// The controllers available to `dir` itself.
pub(crate) fn available_controllers(dir: &Path) -> HashSet<String> {
    read_words(&dir.join("cgroup.controllers"))
}

fn read_words(path: &Path) -> HashSet<String> {
    fs::read_to_string(path)
        .map(|s| s.split_ascii_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// Enables each of `wanted` that `dir` has for its children (`+name` to
/// `cgroup.subtree_control`), one at a time so that one refusal does not stop the others.
/// Returns the first refusal's error.
///
/// A cgroup other than the root that holds processes itself gets none (`EBUSY` at once). The
/// kernel refuses it the domain controllers (memory) but grants it the threaded ones (pids,
/// cpu), and a cgroup with processes and a threaded controller becomes a thread root, below
/// which no cgroup is a valid domain: every `clone3(CLONE_INTO_CGROUP)` into one, and the
/// server's own move into a leaf, then fail with `EOPNOTSUPP`. (Found on a kernel whose
/// cgroup2 has all three: `.ci/vm-limits.sh`.)
pub(crate) fn enable_controllers(dir: &Path, wanted: &[&str]) -> io::Result<()> {
    // Only the root has no `cgroup.type`; it may hold processes and enable controllers.
    if dir.join("cgroup.type").exists() && !member_pids(dir)?.is_empty() {
        return Err(io::Error::from_raw_os_error(libc::EBUSY));
    }
    let have = available_controllers(dir);
    let mut first_error = None;
    for name in wanted.iter().filter(|n| have.contains(**n)) {
        if let Err(e) = fs::write(dir.join("cgroup.subtree_control"), format!("+{name}"))
            && first_error.is_none()
        {
            first_error = Some(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// The pids of `dir`'s own members (not its children's).
pub(crate) fn member_pids(dir: &Path) -> io::Result<Vec<u32>> {
    Ok(fs::read_to_string(dir.join("cgroup.procs"))?
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect())
}

/// Moves the calling process into `dir` (writes its pid to `cgroup.procs`).
pub(crate) fn move_self_into(dir: &Path) -> io::Result<()> {
    fs::write(dir.join("cgroup.procs"), std::process::id().to_string())
}

/// Whether `dir` or a cgroup below it has a live member (`populated 1` in `cgroup.events`).
pub(crate) fn is_populated(dir: &Path) -> io::Result<bool> {
    let events = read_small(&dir.join("cgroup.events"))?;
    Ok(event_value(&events, "populated") == Some(1))
}

/// Most bytes [`read_small`] reads of one file. The files read that way (`cgroup.events`,
/// `cpu.stat`, `memory.peak`, `memory.events`) are each a few hundred bytes at most, and the
/// keys read of them come first or early.
const SMALL_FILE_BYTES: usize = 1024;

/// Reads the start (up to [`SMALL_FILE_BYTES`]) of a small cgroup interface file: open, read
/// to the end into a buffer on the stack, close. Unlike `fs::read_to_string` it does not ask
/// the file's size first (a `statx` per read, and cgroupfs says 0 anyway): these files are
/// read at every contained exit.
fn read_small(path: &Path) -> io::Result<String> {
    use std::io::Read as _;
    let mut file = fs::File::open(path)?;
    let mut buf = [0u8; SMALL_FILE_BYTES];
    let mut len = 0;
    while len < buf.len() {
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(String::from_utf8_lossy(&buf[..len]).into_owned())
}

fn event_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// SIGKILL to every process in `dir` and below, at once and without a window for a fork to
/// escape (`cgroup.kill`, Linux 5.14+).
pub(crate) fn kill_all(dir: &Path) -> io::Result<()> {
    fs::write(dir.join("cgroup.kill"), "1")
}

/// Every member of `dir` and of the cgroups below it, by pid.
pub(crate) fn all_member_pids(dir: &Path) -> io::Result<Vec<u32>> {
    let mut pids = member_pids(dir)?;
    for entry in fs::read_dir(dir)?.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            pids.extend(all_member_pids(&entry.path()).unwrap_or_default());
        }
    }
    Ok(pids)
}

/// Removes `dir` and the cgroups below it (deepest first). Each must be empty of processes.
pub(crate) fn remove_tree(dir: &Path) -> io::Result<()> {
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&entry.path())?;
            }
        }
    }
    match fs::remove_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// A watch on one `cgroup.events` file: the open file itself, which `poll(2)` reports with
/// `POLLPRI` once the kernel has changed it since it was last read (the cgroup emptied,
/// filled, froze or thawed; kernfs's file notification). One fd per cgroup and no `inotify`
/// instance: those are limited per user (`fs.inotify.max_user_instances`, 128 by default),
/// which would cap the processes a manager can contain.
#[derive(Debug)]
pub(crate) struct EventsWatch {
    file: fs::File,
}

impl EventsWatch {
    /// Opens `dir/cgroup.events` and reads it once, which arms the notification.
    pub(crate) fn new(dir: &Path) -> io::Result<EventsWatch> {
        let watch = EventsWatch {
            file: fs::File::open(dir.join("cgroup.events"))?,
        };
        watch.read_events()?;
        Ok(watch)
    }

    /// The fd to poll, for [`crate::sys::Interest::Priority`].
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// Reads the file again from its start, which re-arms the notification, and returns its
    /// text.
    fn read_events(&self) -> io::Result<String> {
        use std::os::unix::fs::FileExt as _;
        let mut buf = [0u8; 256];
        let mut len = 0;
        while len < buf.len() {
            let n = self.file.read_at(&mut buf[len..], len as u64)?;
            if n == 0 {
                break;
            }
            len += n;
        }
        Ok(String::from_utf8_lossy(&buf[..len]).into_owned())
    }

    /// Takes the pending notification, so the fd is not reported until the next change.
    pub(crate) fn drain(&self) {
        let _ = self.read_events();
    }

    /// Whether the cgroup has a live member, read through this open file (a `pread`, where
    /// [`is_populated`] opens the file by its path anew). Takes the pending notification as
    /// [`drain`](Self::drain) does.
    pub(crate) fn populated(&self) -> io::Result<bool> {
        Ok(event_value(&self.read_events()?, "populated") == Some(1))
    }

    /// Blocks until `dir` (the directory this watch is on) has no live member or `timeout`
    /// passes; returns whether it emptied.
    pub(crate) fn wait_empty(&self, dir: &Path, timeout: Duration) -> bool {
        let deadline = Instant::now().checked_add(timeout);
        let mut ready = Vec::new();
        loop {
            if !is_populated(dir).unwrap_or(false) {
                return true;
            }
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            if left.is_some_and(|l| l.is_zero()) {
                return false;
            }
            let fds = [(self.fd(), crate::sys::Interest::Priority)];
            if crate::sys::poll_fds(&fds, left, &mut ready).is_err() {
                return false;
            }
            self.drain();
        }
    }
}

/// One process's cgroup: its directory, an fd on it for `CLONE_INTO_CGROUP` (closed once the
/// child is in), and the watch on its events (taken by whoever watches it, and closed with
/// that watch). Created before the spawn; removed (once empty) by [`ProcCgroup::remove`], or
/// on drop after a last SIGKILL to whatever is left. So an exited process's record holds no
/// descriptor for its cgroup.
#[derive(Debug)]
pub(crate) struct ProcCgroup {
    path: PathBuf,
    dir: Mutex<Option<OwnedFd>>,
    events: Mutex<Option<EventsWatch>>,
    removed: AtomicBool,
    /// Whether the memory controller is enabled for it (else it has no `memory.*` files, and
    /// they are not looked for).
    memory: bool,
}

/// Limits for a new cgroup, each applied only when `Some`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CgroupLimits {
    /// `memory.max` in bytes.
    pub(crate) memory_bytes: Option<u64>,
    /// `pids.max`.
    pub(crate) pids: Option<u64>,
    /// `cpu.max` as a percentage of one CPU.
    pub(crate) cpu_percent: Option<u64>,
}

/// The period `cpu.max` quotas are given against, in microseconds (the kernel's default).
const CPU_PERIOD_US: u64 = 100_000;

/// How many members [`ProcCgroup::signal_members`] holds a pidfd for at once before it reads
/// the member lists again to confirm them: bounds the descriptors one signal takes (and costs
/// one more read of the lists per batch).
const SIGNAL_BATCH: usize = 64;

/// One member to signal, opened before its membership is confirmed.
enum Member {
    /// Its pidfd: a signal through it reaches this process or nobody.
    Pidfd(OwnedFd),
    /// Its pid, where no pidfd could be had: `ENOSYS` (`pidfd_open` is Linux 5.3+), or no
    /// descriptor left (`EMFILE`, `ENFILE`, `ENOMEM`).
    Pid(libc::pid_t),
    /// No process has the pid any more (`ESRCH`), or it is out of range.
    Gone,
}

impl Member {
    fn open(pid: u32) -> Member {
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            return Member::Gone;
        };
        match super::pidfd::pidfd_open(pid) {
            Ok(fd) => Member::Pidfd(fd),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Member::Gone,
            Err(e) => {
                log::debug!("pidfd_open({pid}) failed: {e}; signalling it by pid");
                Member::Pid(pid)
            }
        }
    }

    /// Sends `sig`; whether it was delivered.
    fn signal(&self, sig: i32) -> bool {
        match self {
            Member::Pidfd(fd) => super::pidfd::pidfd_send_signal(fd.as_fd(), sig, 0).is_ok(),
            Member::Pid(pid) => {
                // SAFETY: kill takes integers only; the pid was listed as a member just now.
                let rc = unsafe { libc::kill(*pid, sig) };
                rc == 0
            }
            Member::Gone => false,
        }
    }
}

impl ProcCgroup {
    /// Creates `parent/name`, applies `limits`, opens it and watches its events. `memory`:
    /// whether `parent` enables the memory controller for its children (its
    /// `cgroup.subtree_control`), so whether the new cgroup has `memory.*` files.
    pub(crate) fn create(
        parent: &Path,
        name: &str,
        limits: CgroupLimits,
        memory: bool,
    ) -> io::Result<Self> {
        let path = parent.join(name);
        fs::create_dir(&path)?;
        let made = (|| {
            if let Some(bytes) = limits.memory_bytes {
                fs::write(path.join("memory.max"), bytes.to_string())?;
                // Without swap the limit is the limit (a host with swap would page instead).
                let _ = fs::write(path.join("memory.swap.max"), "0");
            }
            if let Some(pids) = limits.pids {
                fs::write(path.join("pids.max"), pids.to_string())?;
            }
            if let Some(percent) = limits.cpu_percent {
                let quota = percent.saturating_mul(CPU_PERIOD_US / 100).max(1000);
                fs::write(path.join("cpu.max"), format!("{quota} {CPU_PERIOD_US}"))?;
            }
            let events = EventsWatch::new(&path)?;
            let dir = fs::File::open(&path)?;
            Ok(ProcCgroup {
                path: path.clone(),
                dir: Mutex::new(Some(OwnedFd::from(dir))),
                events: Mutex::new(Some(events)),
                removed: AtomicBool::new(false),
                memory,
            })
        })();
        if made.is_err() {
            let _ = fs::remove_dir(&path);
        }
        made
    }

    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `spawn` with an fd on the directory, for `clone3(CLONE_INTO_CGROUP)`, and closes
    /// the fd after a success (the child is in; nothing else needs it). `EBADF` once closed.
    pub(crate) fn spawn_into<T>(
        &self,
        spawn: impl FnOnce(BorrowedFd<'_>) -> io::Result<T>,
    ) -> io::Result<T> {
        let mut dir = self.dir.lock();
        let fd = dir
            .as_ref()
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EBADF))?;
        let spawned = spawn(fd.as_fd())?;
        *dir = None;
        Ok(spawned)
    }

    /// The events watch, for the one who watches this cgroup (once).
    pub(crate) fn take_events(&self) -> Option<EventsWatch> {
        self.events.lock().take()
    }

    /// Whether a live process is left in it. An unreadable events file (removed) counts as
    /// empty.
    pub(crate) fn populated(&self) -> bool {
        !self.removed.load(Ordering::SeqCst) && is_populated(&self.path).unwrap_or(false)
    }

    /// SIGKILL to every member at once.
    pub(crate) fn kill(&self) -> io::Result<()> {
        kill_all(&self.path)
    }

    /// `sig` to every member, one by one; how many were signalled. Members are read again
    /// after each round, so one forked meanwhile is reached too (at most a few rounds).
    ///
    /// Never to a process that is not a member, although a member may exit, be reaped and its
    /// pid be taken by an unrelated process between the read of `cgroup.procs` and the
    /// signal: each pid gets a pidfd first (which names one process for good), the member
    /// lists are read again, and only a pid still listed then is signalled, through its
    /// pidfd. If the process the pidfd names is the one listed, it is a member; if not, it
    /// gave up the pid before the second read, so it has been reaped and the pidfd's signal
    /// reaches nobody (`ESRCH`). Where no pidfd can be had ([`Member::open`]) the pid still
    /// listed is signalled by number, as before pidfds.
    pub(crate) fn signal_members(&self, sig: i32) -> io::Result<usize> {
        const ROUNDS: usize = 4;
        let mut seen: HashSet<u32> = HashSet::new();
        let mut signalled = 0;
        let mut listed = all_member_pids(&self.path)?;
        for _ in 0..ROUNDS {
            let fresh: Vec<u32> = listed.iter().copied().filter(|p| seen.insert(*p)).collect();
            if fresh.is_empty() {
                break;
            }
            for batch in fresh.chunks(SIGNAL_BATCH) {
                let opened: Vec<(u32, Member)> =
                    batch.iter().map(|&pid| (pid, Member::open(pid))).collect();
                listed = all_member_pids(&self.path)?;
                let members: HashSet<u32> = listed.iter().copied().collect();
                for (pid, member) in opened {
                    if members.contains(&pid) && member.signal(sig) {
                        signalled += 1;
                    }
                }
            }
        }
        Ok(signalled)
    }

    /// Freezes (`true`) or thaws the whole cgroup (`cgroup.freeze`).
    pub(crate) fn freeze(&self, frozen: bool) -> io::Result<()> {
        fs::write(
            self.path.join("cgroup.freeze"),
            if frozen { "1" } else { "0" },
        )
    }

    /// User plus system CPU time of every process that ran in it, in microseconds.
    pub(crate) fn cpu_usec(&self) -> Option<u64> {
        let stat = read_small(&self.path.join("cpu.stat")).ok()?;
        event_value(&stat, "usage_usec")
    }

    /// The most memory it used at once (`memory.peak`, Linux 5.19+, memory controller only).
    pub(crate) fn memory_peak(&self) -> Option<u64> {
        if !self.memory {
            return None;
        }
        read_small(&self.path.join("memory.peak"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Whether the OOM killer killed a process in it (`oom_kill` in `memory.events`).
    pub(crate) fn oom_killed(&self) -> bool {
        if !self.memory {
            return false;
        }
        read_small(&self.path.join("memory.events"))
            .ok()
            .and_then(|s| event_value(&s, "oom_kill"))
            .is_some_and(|n| n > 0)
    }

    /// Removes the directory once it is empty; idempotent. `EBUSY` while members remain.
    pub(crate) fn remove(&self) -> io::Result<()> {
        if self.removed.load(Ordering::SeqCst) {
            return Ok(());
        }
        match fs::remove_dir(&self.path) {
            Ok(()) => {
                self.removed.store(true, Ordering::SeqCst);
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.removed.store(true, Ordering::SeqCst);
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Whether [`remove`](Self::remove) has removed it.
    pub(crate) fn is_removed(&self) -> bool {
        self.removed.load(Ordering::SeqCst)
    }
}

impl Drop for ProcCgroup {
    fn drop(&mut self) {
        if self.removed.load(Ordering::SeqCst) {
            return;
        }
        // Forgotten while something may still run in it: nothing outlives its record. The
        // kill is asynchronous, so the directory is left for the manager's close (which
        // removes its whole instance) if it is not empty yet.
        if is_populated(&self.path).unwrap_or(false) {
            let _ = kill_all(&self.path);
            if let Ok(watch) = EventsWatch::new(&self.path) {
                watch.wait_empty(&self.path, DROP_EMPTY_WAIT);
            }
        }
        let _ = fs::remove_dir(&self.path);
    }
}

/// How long dropping a still-populated cgroup waits for its SIGKILLed members to go before it
/// leaves the directory to the instance's removal.
pub(crate) const DROP_EMPTY_WAIT: Duration = Duration::from_secs(1);

/// Whether this kernel has `clone3` (5.3+) and lets us call it (seccomp profiles of some
/// container runtimes answer `ENOSYS` for it): asked with a deliberately invalid size, which a
/// working `clone3` refuses with `EINVAL` without creating anything.
pub(crate) fn clone3_available() -> bool {
    // SAFETY: a NULL argument with size 0 is rejected by the kernel before it reads anything.
    let rc = unsafe { libc::syscall(libc::SYS_clone3, std::ptr::null::<u8>(), 0usize) };
    rc < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL)
}

/// Whether `pid` is alive and started at `start_ticks` (field 22 of `/proc/<pid>/stat`): a
/// pid, unlike this pair, may have been reused.
pub(crate) fn process_alive(pid: u32, start_ticks: u64) -> bool {
    process_start_ticks(pid) == Some(start_ticks)
}

/// Field 22 (`starttime`) of `/proc/<pid>/stat`.
pub(crate) fn process_start_ticks(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    // Fields after the command: state is field 3, so starttime (22) is the 20th from here.
    rest.split_ascii_whitespace().nth(19)?.parse().ok()
}

/// This process's own `oom_score_adj` (`/proc/self/oom_score_adj`).
pub(crate) fn own_oom_score_adj() -> Option<i32> {
    fs::read_to_string("/proc/self/oom_score_adj")
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape_mountinfo(r"/a\040b"), "/a b");
        assert_eq!(unescape_mountinfo("/sys/fs/cgroup"), "/sys/fs/cgroup");
    }

    #[test]
    fn events_are_parsed() {
        let text = "populated 1\nfrozen 0\n";
        assert_eq!(event_value(text, "populated"), Some(1));
        assert_eq!(event_value(text, "frozen"), Some(0));
        assert_eq!(event_value(text, "nope"), None);
    }

    /// A member's handle, opened while it ran, reaches nobody once it has been reaped: never
    /// a later holder of its pid.
    #[test]
    fn a_member_handle_reaches_nobody_after_its_process_is_reaped() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep");
        let member = Member::open(child.id());
        assert!(matches!(member, Member::Pidfd(_)), "a pidfd on Linux 5.3+");
        assert!(member.signal(0), "alive: signal 0 is delivered");
        child.kill().expect("kill");
        child.wait().expect("reaped");
        assert!(
            !member.signal(libc::SIGTERM),
            "reaped: nobody to deliver to"
        );
        assert!(matches!(Member::open(u32::MAX), Member::Gone));
    }

    /// A cgroup of a test's own, removed (once empty) when dropped.
    struct Scratch(PathBuf);

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = remove_tree(&self.0);
        }
    }

    /// A cgroup of this test's own under the cgroup2 mount, or `None` (said on stderr) where
    /// none is writable; a panic instead under `CI=true`, as in the integration tests.
    fn scratch_parent(tag: &str) -> Option<Scratch> {
        let made = cgroup2_mount().and_then(|m| {
            let dir = m.join(format!("pwunit-{tag}-{}", std::process::id()));
            fs::create_dir(&dir).map(|()| dir)
        });
        match made {
            Ok(dir) => Some(Scratch(dir)),
            Err(e) if std::env::var("CI").as_deref() == Ok("true") => {
                panic!("CI=true and no writable cgroup2 hierarchy: {e}")
            }
            Err(e) => {
                eprintln!("skipping: no writable cgroup2 hierarchy ({e})");
                None
            }
        }
    }

    #[test]
    fn signal_members_reaches_every_member_and_only_them() {
        let Some(parent) = scratch_parent("signal") else {
            return;
        };
        let cgroup =
            ProcCgroup::create(&parent.0, "proc", CgroupLimits::default(), false).expect("cgroup");
        // A shell that moves itself in, then a session leader of its own and a plain child.
        let script = format!(
            "echo $$ > {}/cgroup.procs && exec sh -c 'setsid sleep 301 & sleep 302 & wait'",
            cgroup.path().display()
        );
        let mut leader = std::process::Command::new("/bin/sh")
            .args(["-c", &script])
            .spawn()
            .expect("sh");
        let mut outsider = std::process::Command::new("sleep")
            .arg("303")
            .spawn()
            .expect("sleep");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut members = Vec::new();
        // Polled against a deadline: nothing signals that the shell's children have started.
        while Instant::now() < deadline {
            members = all_member_pids(cgroup.path()).expect("members");
            if members.len() == 3 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(members.len(), 3, "{members:?}");
        let live = EventsWatch::new(cgroup.path()).expect("events");
        assert!(live.populated().expect("read"), "members: populated");
        assert!(is_populated(cgroup.path()).expect("read"), "by path too");
        assert_eq!(cgroup.signal_members(libc::SIGTERM).expect("signal"), 3);
        let status = leader.wait().expect("the shell is reaped");
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGTERM)
        );
        let watch = EventsWatch::new(cgroup.path()).expect("events");
        assert!(
            watch.wait_empty(cgroup.path(), Duration::from_secs(10)),
            "every member, the setsid one too, ended: {:?}",
            all_member_pids(cgroup.path())
        );
        assert!(
            !watch.populated().expect("read"),
            "empty, read through the open file"
        );
        assert_eq!(outsider.try_wait().expect("outsider"), None, "not a member");
        outsider.kill().expect("kill");
        outsider.wait().expect("reaped");
        cgroup.remove().expect("removed");
    }

    #[test]
    fn own_start_ticks_are_read() {
        let ticks = process_start_ticks(std::process::id()).expect("own stat");
        assert!(process_alive(std::process::id(), ticks));
        assert!(!process_alive(std::process::id(), ticks + 1));
    }
}
