//! One child process: what was asked for, its record while it runs and after, and its reader
//! thread.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::{Condvar, Mutex};
use uuid::Uuid;

use crate::buffer::{HeadTailBuffer, Truncation};
use crate::manager::Shared;
use crate::reaper;
use crate::sys;

/// Bytes read from a child's pipe at once (the default pipe capacity on Linux). The read buffer
/// is allocated when the first output arrives, so a silent process costs none of it.
pub const READ_CHUNK_BYTES: usize = 64 * 1024;

/// A process's id: a random (v4) UUID, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProcessId(Uuid);

impl ProcessId {
    pub(crate) fn new_random() -> Self {
        ProcessId(Uuid::new_v4())
    }

    /// The UUID.
    pub fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl fmt::Display for ProcessId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl FromStr for ProcessId {
    type Err = uuid::Error;

    /// Parses a UUID in any of its usual spellings, case-insensitively.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(ProcessId)
    }
}

impl From<Uuid> for ProcessId {
    fn from(uuid: Uuid) -> Self {
        ProcessId(uuid)
    }
}

/// What to run and how. Build one with [`Command::shell`] or [`Command::argv`].
///
/// ```
/// use procwarden::Command;
/// use std::time::Duration;
///
/// let cmd = Command::shell("make test")
///     .workdir("/tmp")
///     .env("CI", "1")
///     .timeout(Duration::from_secs(600));
/// ```
#[derive(Debug, Clone, Default)]
#[must_use = "a Command does nothing until passed to Manager::start"]
pub struct Command {
    pub(crate) shell: Option<String>,
    pub(crate) argv: Option<Vec<String>>,
    pub(crate) workdir: Option<PathBuf>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) background: bool,
    pub(crate) timeout: Option<Duration>,
    pub(crate) chat: Option<Uuid>,
}

impl Command {
    /// Run `command` with `sh -c`.
    pub fn shell(command: impl Into<String>) -> Self {
        Command {
            shell: Some(command.into()),
            ..Command::default()
        }
    }

    /// Run a program directly, no shell. `argv[0]` is the program: a path, or a name looked up
    /// in the child's `PATH`.
    pub fn argv<I, S>(argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Command {
            argv: Some(argv.into_iter().map(Into::into).collect()),
            ..Command::default()
        }
    }

    /// A command given as the wire gives it: either field may be absent; an empty `command`
    /// counts as absent. [`Manager::start`](crate::Manager::start) rejects none or both.
    pub fn from_parts(command: Option<String>, argv: Option<Vec<String>>) -> Self {
        Command {
            shell: command.filter(|c| !c.is_empty()),
            argv,
            ..Command::default()
        }
    }

    /// The working directory: absolute, and it must exist. Default: the manager's configured
    /// directory if it exists, else `$HOME`.
    pub fn workdir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.workdir = Some(dir.into());
        self
    }

    /// Sets one extra environment variable (applied after the manager's environment and hook).
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Sets several extra environment variables.
    pub fn envs<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.env
            .extend(vars.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// Marks the process as a background process (recorded and reported; nothing else changes).
    pub fn background(mut self, background: bool) -> Self {
        self.background = background;
        self
    }

    /// After this long the process group gets SIGTERM, then SIGKILL after the kill grace, and
    /// the process is reported as timed out.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Starts the process for a chat: only that chat (and callers without a chat) see it, and
    /// it gets `CODER_CHAT_ID` in its environment.
    pub fn chat(mut self, chat: Uuid) -> Self {
        self.chat = Some(chat);
        self
    }

    /// Sets or clears the chat.
    pub fn chat_opt(mut self, chat: Option<Uuid>) -> Self {
        self.chat = chat;
        self
    }
}

/// A signal the manager sends to a whole process group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM: ask to stop.
    Terminate,
    /// SIGKILL: stop now.
    Kill,
    /// SIGINT: as Ctrl-C would.
    Interrupt,
}

impl Signal {
    /// The signal number.
    pub fn number(self) -> i32 {
        match self {
            Signal::Terminate => libc::SIGTERM,
            Signal::Kill => libc::SIGKILL,
            Signal::Interrupt => libc::SIGINT,
        }
    }

    /// The wire name: `terminate`, `kill` or `interrupt`.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Terminate => "terminate",
            Signal::Kill => "kill",
            Signal::Interrupt => "interrupt",
        }
    }
}

impl FromStr for Signal {
    type Err = ();

    /// Parses a wire name (`terminate`, `kill`, `interrupt`).
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "terminate" => Ok(Signal::Terminate),
            "kill" => Ok(Signal::Kill),
            "interrupt" => Ok(Signal::Interrupt),
            _ => Err(()),
        }
    }
}

/// How a process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    /// The leader's exit code; -1 when a signal ended it or the status could not be read
    /// (the embedding program, or a host ignoring SIGCHLD, reaped it).
    pub code: i32,
    /// The signal that ended the leader, e.g. `"SIGKILL"`.
    pub signal: Option<String>,
    /// Whether the process's timeout ended it.
    pub timed_out: bool,
    /// When the process was marked exited.
    pub exited_at: SystemTime,
    /// From start to being marked exited.
    pub duration: Duration,
}

/// A snapshot of one process, as `list` and `info` report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    /// The process's id.
    pub id: ProcessId,
    /// The chat it was started for, if any.
    pub chat: Option<Uuid>,
    /// The command: the shell command, or the argv joined with POSIX shell quoting.
    pub command: String,
    /// The working directory actually used.
    pub workdir: PathBuf,
    /// Whether it was started as a background process.
    pub background: bool,
    /// False once the leader has exited and its output is complete (or the pipe grace passed).
    pub running: bool,
    /// The leader's pid (also its process group id).
    pub pid: u32,
    /// When it was started.
    pub started_at: SystemTime,
    /// How it ended; `None` while running.
    pub exit: Option<Exit>,
}

/// What [`Manager::output`](crate::Manager::output) returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// The rendered output (valid UTF-8; see [`HeadTailBuffer`] for the rules).
    pub output: String,
    /// Present exactly when some covered stream bytes were not kept.
    pub truncated: Option<Truncation>,
    /// Stream offset just past what this answer covers; pass it back as the cursor.
    pub next_cursor: u64,
    /// Whether the process is still running. When false, `output` is final.
    pub running: bool,
    /// How it ended, once it has.
    pub exit: Option<Exit>,
}

/// How to read output: from where, and whether to wait.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutputQuery {
    /// Cover only stream bytes at offsets `>= cursor`. With `wait`, wait for new output past it
    /// rather than for exit.
    pub cursor: Option<u64>,
    /// Block up to this long (at most the manager's wait limit) for the process to exit, or, with
    /// a cursor, for output past the cursor. `None`: an immediate snapshot.
    pub wait: Option<Duration>,
}

/// Passed to the on-exit hook once a process has been marked exited.
#[derive(Debug, Clone)]
pub struct ExitEvent {
    /// The process's id.
    pub id: ProcessId,
    /// The chat it was started for.
    pub chat: Option<Uuid>,
    /// Its working directory: files under it may have changed.
    pub workdir: PathBuf,
    /// How it ended.
    pub exit: Exit,
}

/// The manager's record of one process. Immutable fields, the output buffer, and the mutable
/// state under a lock with a condition variable for exit waiters.
pub(crate) struct Proc {
    pub(crate) id: ProcessId,
    /// Start order, for sorting lists (several starts can share a second).
    pub(crate) seq: u64,
    pub(crate) chat: Option<Uuid>,
    pub(crate) command: String,
    pub(crate) workdir: PathBuf,
    pub(crate) background: bool,
    pub(crate) pid: i32,
    pub(crate) started_at: SystemTime,
    pub(crate) started: Instant,
    pub(crate) buffer: HeadTailBuffer,
    pub(crate) state: Mutex<ProcState>,
    pub(crate) exited: Condvar,
}

/// The leader's status as the reaper saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Leader {
    Alive,
    Reaped(sys::WaitOutcome),
}

pub(crate) struct ProcState {
    pub(crate) leader: Leader,
    /// The output pipe has not reached end of file: someone may still hold its write end.
    pub(crate) pipe_open: bool,
    pub(crate) timed_out: bool,
    /// Set once the process is marked exited (`running: false`).
    pub(crate) exit: Option<Exit>,
    /// Kept while the group may have members: it names the group even after the leader is
    /// reaped (Linux 6.9+), so signals never reach a reused id.
    pub(crate) pidfd: Option<Arc<OwnedFd>>,
}

impl Proc {
    pub(crate) fn info(&self) -> ProcessInfo {
        let exit = self.state.lock().exit.clone();
        ProcessInfo {
            id: self.id,
            chat: self.chat,
            command: self.command.clone(),
            workdir: self.workdir.clone(),
            background: self.background,
            running: exit.is_none(),
            pid: self.pid as u32,
            started_at: self.started_at,
            exit,
        }
    }

    /// Blocks until the process is marked exited or `deadline` passes; returns the exit.
    pub(crate) fn wait_exit(&self, deadline: Instant) -> Option<Exit> {
        let mut state = self.state.lock();
        while state.exit.is_none() {
            if self.exited.wait_until(&mut state, deadline).timed_out() {
                break;
            }
        }
        state.exit.clone()
    }

    /// Sends `sig` to the process's group, never to an id that may have been reused: through
    /// the pidfd (which names the group itself), or by number only while the unreaped leader
    /// pins the id, or while the open pipe shows that members remain. `Ok(false)` when nothing
    /// was left to signal.
    pub(crate) fn signal_group(state: &ProcState, pid: i32, sig: i32) -> io::Result<bool> {
        let by_number_safe = state.leader == Leader::Alive || state.pipe_open;
        let pidfd = state.pidfd.as_deref().map(AsFd::as_fd);
        if pidfd.is_none() && !by_number_safe {
            return Ok(false);
        }
        match sys::signal_group(pidfd, pid as u32, sig, by_number_safe) {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// The reader thread's body: copies the pipe into the buffer until end of file, and, when the
/// child has a pidfd, watches it too: reaps the leader when it exits, runs the pipe grace as its
/// poll timeout, and marks the process exited as soon as both the leader and the output are
/// done. So an exit wakes this one thread, which wakes the waiters: no hop through the
/// supervisor. Returns at end of file once the process is marked exited, or at the manager's
/// stop signal (end of a close).
pub(crate) fn watch(
    shared: &Shared,
    proc: &Arc<Proc>,
    pipe: OwnedFd,
    mut pidfd: Option<Arc<OwnedFd>>,
) -> io::Result<()> {
    sys::set_nonblocking(pipe.as_fd(), true)?;
    let stop = &shared.stop_readers;
    let mut pipe = Some(File::from(pipe));
    let mut grace_until: Option<Instant> = None;
    let mut ready = Vec::with_capacity(3);
    let mut chunk: Vec<u8> = Vec::new();
    let result = loop {
        if pipe.is_none() && pidfd.is_none() && grace_until.is_none() {
            break Ok(());
        }
        // Index 0: stop; then the pipe and the pidfd while they matter.
        let mut fds = [stop.fd(); 3];
        let mut n = 1;
        let pipe_at = pipe.as_ref().map(|p| {
            fds[n] = p.as_fd();
            n += 1;
            n - 1
        });
        let pidfd_at = pidfd.as_ref().map(|p| {
            fds[n] = p.as_fd();
            n += 1;
            n - 1
        });
        let timeout = grace_until.map(|at| at.saturating_duration_since(Instant::now()));
        if let Err(e) = sys::poll_readable(&fds[..n], timeout, &mut ready) {
            break Err(e);
        }
        if ready.contains(&0) {
            break Ok(());
        }
        if pipe_at.is_some_and(|i| ready.contains(&i)) {
            match drain(proc, pipe.as_mut().expect("polled pipe"), &mut chunk) {
                Ok(true) => {}
                Ok(false) => {
                    pipe = None;
                    let mut state = proc.state.lock();
                    state.pipe_open = false;
                    if state.leader != Leader::Alive {
                        grace_until = None;
                        reaper::finalize(shared, proc, state);
                    } else {
                        drop(state);
                    }
                    // A close may be waiting for this group's last member (the pipe's holder).
                    if shared.is_closing() {
                        shared.wake.wake();
                    }
                }
                Err(e) => break Err(e),
            }
        }
        if let Some(i) = pidfd_at
            && ready.contains(&i)
        {
            let fd = pidfd.take().expect("polled pidfd");
            let mut state = proc.state.lock();
            if reaper::reap_leader(proc, &mut state, Some(fd.as_fd()))
                || state.leader != Leader::Alive
            {
                if state.pipe_open {
                    grace_until = Some(Instant::now() + shared.config.pipe_grace);
                } else {
                    reaper::finalize(shared, proc, state);
                }
            } else {
                pidfd = Some(fd);
            }
        }
        if grace_until.is_some_and(|at| at <= Instant::now()) {
            grace_until = None;
            let state = proc.state.lock();
            if state.exit.is_none() {
                log::debug!(
                    "{}: output pipe still open {} ms after exit; marking exited",
                    reaper::proc_label(proc),
                    shared.config.pipe_grace.as_millis()
                );
                reaper::finalize(shared, proc, state);
            }
        }
    };
    // Stopped or failed: the pipe counts as closed from here on. If the leader is still to be
    // reaped (a poll or read error), hand its watch to the supervisor.
    let mut state = proc.state.lock();
    state.pipe_open = false;
    if state.leader != Leader::Alive {
        reaper::finalize(shared, proc, state);
    } else {
        drop(state);
        let _ = shared.jobs.send(reaper::Job::Watch(Arc::clone(proc)));
        shared.wake.wake();
    }
    result
}

/// Reads what the pipe holds into the buffer. `Ok(false)` at end of file.
fn drain(proc: &Proc, pipe: &mut File, chunk: &mut Vec<u8>) -> io::Result<bool> {
    if chunk.is_empty() {
        *chunk = vec![0; READ_CHUNK_BYTES];
    }
    loop {
        match pipe.read(chunk) {
            Ok(0) => return Ok(false),
            Ok(n) => proc.buffer.write(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
            Err(e) => return Err(e),
        }
    }
}

/// Joins words with POSIX shell quoting, as Python's `shlex.join` does: a word made only of
/// `[A-Za-z0-9_@%+=:,./-]` stays as it is, the empty word becomes `''`, anything else is put in
/// single quotes with each `'` written as `'"'"'`.
pub(crate) fn shell_join(words: &[String]) -> String {
    let mut out = String::new();
    for (i, word) in words.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let safe = |c: char| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c);
        if word.is_empty() {
            out.push_str("''");
        } else if word.chars().all(safe) {
            out.push_str(word);
        } else {
            out.push('\'');
            out.push_str(&word.replace('\'', "'\"'\"'"));
            out.push('\'');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_join_quotes_like_shlex() {
        let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(shell_join(&words(&["echo", "hi"])), "echo hi");
        assert_eq!(shell_join(&words(&["echo", "a b"])), "echo 'a b'");
        assert_eq!(shell_join(&words(&["echo", ""])), "echo ''");
        assert_eq!(shell_join(&words(&["echo", "it's"])), "echo 'it'\"'\"'s'");
        assert_eq!(
            shell_join(&words(&["a@b%c+d=e:f,g./-_"])),
            "a@b%c+d=e:f,g./-_"
        );
        assert_eq!(shell_join(&words(&["$HOME", "x*"])), "'$HOME' 'x*'");
        assert_eq!(shell_join(&words(&["é"])), "'é'");
    }

    #[test]
    fn process_ids_parse_case_insensitively() {
        let id = ProcessId::new_random();
        let upper = id.to_string().to_uppercase();
        assert_eq!(upper.parse::<ProcessId>().ok(), Some(id));
        assert!("not-a-uuid".parse::<ProcessId>().is_err());
    }

    #[test]
    fn signal_names_round_trip() {
        for s in [Signal::Terminate, Signal::Kill, Signal::Interrupt] {
            assert_eq!(s.name().parse::<Signal>(), Ok(s));
        }
        assert!("hup".parse::<Signal>().is_err());
    }
}
