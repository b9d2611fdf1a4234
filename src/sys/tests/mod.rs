//! Tests over real processes, by concern: `spawning.rs` (what a child starts with, and how a
//! failed spawn is reported), `waiting.rs`, `signalling.rs`, `fresh_process.rs` (exact fd and
//! memory-mapping accounting, in a process of their own) and `benchmark.rs` (a measurement
//! to run by hand). The tests that need no child sit beside their code.
//!
//! Every wait is bounded by [`DEADLINE`]; every child is killed (its group, through its pidfd
//! or while it is unreaped) and reaped if a test fails early; nothing that these tests did
//! not start is ever signalled.

use std::ffi::{CString, c_int};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::ptr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::child::{ChildStep, errno};
use super::pid::to_pid_t;
use super::spawn::{ReportVia, SpawnError, start};
use super::wait::reap_blocking;
use super::*;

/// Upper bound on anything a test waits for.
const DEADLINE: Duration = Duration::from_secs(10);

/// Both ways of creating a child; every spawn behaviour is pinned for each.
const METHODS: [SpawnMethod; 2] = [SpawnMethod::CloneVfork, SpawnMethod::Fork];

/// Environment for test children: enough for `sh` to find tools, and a fixed locale.
const TEST_ENV: [&str; 2] = ["PATH=/usr/bin:/bin", "LC_ALL=C"];

/// A `CString` from a test literal.
fn cstring(s: &str) -> CString {
    CString::new(s).expect("test strings have no NUL")
}

/// The absolute path of a standard tool (the child does no PATH search).
fn tool(name: &str) -> CString {
    ["/usr/bin", "/bin"]
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|path| path.exists())
        .map(|path| cstring(path.to_str().expect("utf-8 path")))
        .unwrap_or_else(|| panic!("{name} not found in /usr/bin or /bin"))
}

/// A close-on-exec copy (numbered 3 or more) of this process's stderr: the output of a child
/// whose output no test reads (as fd 2 itself was before the spec owned its output).
fn stderr_copy() -> OwnedFd {
    io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .expect("a copy of stderr")
}

/// A spec with [`TEST_ENV`], cwd `/`, no parent-death signal and its output into a copy of
/// stderr; [`run`] replaces that output with a pipe of its own, and a test that reads the
/// output otherwise sets `output` itself.
fn spec(method: SpawnMethod, path: CString, argv: &[&str]) -> SpawnSpec {
    SpawnSpec {
        path,
        argv: argv.iter().map(|a| cstring(a)).collect(),
        envp: Arc::new(TEST_ENV.iter().map(|e| cstring(e)).collect()),
        cwd: cstring("/"),
        output: stderr_copy(),
        stdin: None,
        parent_death_signal: None,
        method,
        cgroup: None,
        oom_score_adj: None,
        nice: None,
        terminal: false,
    }
}

/// A spec running `/bin/sh -c script`.
fn sh(method: SpawnMethod, script: &str) -> SpawnSpec {
    spec(method, cstring("/bin/sh"), &["sh", "-c", script])
}

/// `pid` as the `pid_t` of a libc call in a test (a pid from `spawn` always fits).
fn pid_t(pid: u32) -> libc::pid_t {
    to_pid_t(pid).expect("a pid from spawn fits pid_t")
}

/// A child under test: killed (whole group) and reaped on drop unless the test reaped it.
struct TestChild {
    pid: u32,
    pidfd: Option<OwnedFd>,
    reaped: bool,
}

impl TestChild {
    /// Spawns `spec`, failing the test on error.
    fn spawn(spec: &SpawnSpec) -> Self {
        Self::from(spawn(spec).expect("spawn"))
    }

    /// The pidfd, borrowed.
    fn pidfd(&self) -> Option<BorrowedFd<'_>> {
        self.pidfd.as_ref().map(|fd| fd.as_fd())
    }

    /// Waits (pidfd readability; without a pidfd, `wait_exit_no_reap`) and reaps.
    fn wait(&mut self) -> WaitOutcome {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let outcome = try_reap(self.pid, self.pidfd()).expect("try_reap");
            if outcome != WaitOutcome::Running {
                self.reaped = true;
                return outcome;
            }
            let remaining = deadline
                .checked_duration_since(Instant::now())
                .unwrap_or_else(|| panic!("child {} did not exit within {DEADLINE:?}", self.pid));
            match self.pidfd() {
                Some(fd) => poll_readable(&[fd], Some(remaining), &mut Vec::new()).expect("poll"),
                None => wait_exit_no_reap(self.pid).expect("wait_exit_no_reap"),
            }
        }
    }
}

impl From<SpawnedChild> for TestChild {
    fn from(child: SpawnedChild) -> Self {
        TestChild {
            pid: child.pid,
            pidfd: child.pidfd,
            reaped: false,
        }
    }
}

impl Drop for TestChild {
    fn drop(&mut self) {
        // Unreaped, the zombie pins the group id and killpg is safe; reaped, only the
        // pidfd still names the group.
        let _ = signal_group(self.pidfd(), self.pid, libc::SIGKILL, !self.reaped);
        if !self.reaped {
            reap_blocking(pid_t(self.pid));
        }
    }
}

/// Reads until EOF, failing the test at the deadline.
fn read_to_eof(read: OwnedFd) -> String {
    let deadline = Instant::now() + DEADLINE;
    let mut out = Vec::new();
    let mut file = File::from(read);
    let mut chunk = [0u8; 4096];
    loop {
        let remaining = deadline
            .checked_duration_since(Instant::now())
            .expect("no EOF on the output pipe before the deadline");
        let mut ready = Vec::new();
        poll_readable(&[file.as_fd()], Some(remaining), &mut ready).expect("poll");
        if ready.is_empty() {
            continue;
        }
        match file.read(&mut chunk).expect("read") {
            0 => return String::from_utf8(out).expect("utf-8 output"),
            n => out.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Reads until the output holds a newline (for children whose pipe stays open).
#[cfg(target_os = "linux")]
fn read_line(read: &OwnedFd) -> String {
    let deadline = Instant::now() + DEADLINE;
    let mut out = Vec::new();
    let mut chunk = [0u8; 256];
    while !out.contains(&b'\n') {
        let remaining = deadline
            .checked_duration_since(Instant::now())
            .expect("no line on the output pipe before the deadline");
        let mut ready = Vec::new();
        poll_readable(&[read.as_fd()], Some(remaining), &mut ready).expect("poll");
        if ready.is_empty() {
            continue;
        }
        // SAFETY: the pointer and length describe `chunk`; the fd is open.
        let n = unsafe { libc::read(read.as_raw_fd(), chunk.as_mut_ptr().cast(), chunk.len()) };
        assert!(
            n > 0,
            "EOF or error before a full line: {}",
            io::Error::last_os_error()
        );
        out.extend_from_slice(&chunk[..n.unsigned_abs()]);
    }
    String::from_utf8(out).expect("utf-8 output")
}

/// Runs `spec` with its output into a fresh pipe; returns everything it wrote and how it
/// ended.
fn run(mut spec: SpawnSpec) -> (String, WaitOutcome) {
    let (read, write) = pipe_cloexec().expect("pipe");
    spec.output = write;
    let mut child = TestChild::spawn(&spec);
    drop(spec); // our copy of the write end, so that EOF arrives
    let output = read_to_eof(read);
    (output, child.wait())
}

/// Asserts `spawn(spec)` fails with `errno`, reported by the child at `step` through the
/// channel its method uses (shared memory for `CloneVfork` on Linux, else the pipe), and
/// reaped the child it started.
fn assert_spawn_fails(spec: &SpawnSpec, errno: c_int, step: ChildStep) {
    let failed = match start(spec) {
        Err(SpawnError::Child(failed)) => failed,
        Err(SpawnError::Parent(err)) => panic!("spawn failed in the parent, not the child: {err}"),
        Ok(child) => {
            drop(TestChild::from(child));
            panic!("spawn should fail");
        }
    };
    // What `spawn` returns for it.
    let err = io::Error::from(SpawnError::Child(failed));
    assert_eq!(err.raw_os_error(), Some(errno), "{err}");
    assert_eq!(failed.step, step);
    let shared_memory = cfg!(target_os = "linux") && spec.method == SpawnMethod::CloneVfork;
    let via = if shared_memory {
        ReportVia::SharedMemory
    } else {
        ReportVia::Pipe
    };
    assert_eq!(failed.via, via, "report channel");
    assert!(failed.pid > 0);
    assert_not_our_child(failed.pid);
}

/// A regular file `name` in a fresh temporary directory, with `contents` and `mode`;
/// removed (with its directory) on drop.
struct TempFile {
    dir: std::path::PathBuf,
    path: std::path::PathBuf,
}

impl TempFile {
    fn new(name: &str, contents: &str, mode: u32) -> Self {
        use std::os::unix::fs::PermissionsExt;
        use std::sync::atomic::AtomicUsize;
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "procwarden-sys-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, contents).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        TempFile { dir, path }
    }

    fn cstring(&self) -> CString {
        cstring(self.path.to_str().expect("utf-8 temp path"))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `pid` is not (any more) a child of ours: it was reaped, so no zombie is left behind.
fn assert_not_our_child(pid: u32) {
    // SAFETY: siginfo_t is plain data for which all-zero is valid.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
    let id = libc::id_t::from(pid);
    // SAFETY: waitid writes `info`; WNOWAIT | WNOHANG on one pid changes nothing.
    let rc = unsafe { libc::waitid(libc::P_PID, id, &mut info, flags) };
    assert_eq!(rc, -1, "pid {pid} is still our child (a zombie?)");
    assert_eq!(errno(), libc::ECHILD);
}

/// Does the process group `pgid` still have members? `killpg(pgid, 0)`: `ESRCH` means no,
/// success or `EPERM` (a member we may not signal, e.g. after a setuid exec) mean yes.
///
/// An unreaped zombie counts as a member, and so does an orphaned member that exited but
/// that its new parent (init or a subreaper) has not reaped yet. `pgid <= 1` (or above
/// `i32::MAX`) is never a group we started: `false`.
fn group_alive(pgid: u32) -> bool {
    match to_pid_t(pgid) {
        Ok(pgid) if pgid > 1 => {
            // SAFETY: killpg with signal 0 sends nothing; it only checks existence and
            // permission.
            unsafe { libc::killpg(pgid, 0) == 0 || errno() != libc::ESRCH }
        }
        _ => false,
    }
}

/// Polls `condition` against the deadline, for what the kernel cannot signal (a process
/// leaving /proc, init reaping an orphan).
#[cfg(target_os = "linux")]
fn wait_until(what: &str, deadline: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + deadline;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Members of process group `pgid` per /proc: `(pid, state)`; state `Z` is a zombie.
#[cfg(target_os = "linux")]
fn group_members(pgid: u32) -> Vec<(u32, char)> {
    let mut members = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        // The process may vanish while we look: skip it then.
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        let Some(after_comm) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let fields: Vec<&str> = after_comm.split_whitespace().collect();
        if fields.get(2).and_then(|f| f.parse::<u32>().ok()) == Some(pgid) {
            let state = fields[0].chars().next().unwrap_or('?');
            members.push((pid, state));
        }
    }
    members
}

/// How many members of `pgid` are running (not zombies).
#[cfg(target_os = "linux")]
fn live_group_members(pgid: u32) -> usize {
    group_members(pgid)
        .iter()
        .filter(|(_, state)| *state != 'Z')
        .count()
}

/// Generates one `#[test]` per spawn method: `<name>::clone_vfork` and `<name>::fork`.
macro_rules! for_each_method {
    ($($(#[$attr:meta])* fn $name:ident($method:ident) $body:block)*) => {$(
        $(#[$attr])*
        mod $name {
            #[allow(unused_imports)] // not every body needs every helper
            use super::*;

            fn check($method: SpawnMethod) $body

            #[test]
            fn clone_vfork() {
                check(SpawnMethod::CloneVfork)
            }

            #[test]
            fn fork() {
                check(SpawnMethod::Fork)
            }
        }
    )*};
}

mod benchmark;
mod fresh_process;
mod signalling;
mod spawning;
mod waiting;
