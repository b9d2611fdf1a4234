//! What to run: [`Command`], the [`Tracking`] identity a start may carry, and the [`Signal`]s a
//! running process can be sent.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use sha2::{Digest as _, Sha256};

use uuid::Uuid;

use crate::info::TerminalSize;

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
    pub(crate) limits: Limits,
    pub(crate) tracking: Option<Tracking>,
    pub(crate) stdin_pipe: bool,
    pub(crate) tty: Option<TerminalSize>,
}

/// Resource limits for one process and everything it starts, applied through its cgroup (see
/// [`ManagerBuilder::cgroup`](crate::ManagerBuilder::cgroup)) where the controller is enabled;
/// a start asking for one that is not gets [`Error::LimitUnavailable`](crate::Error::LimitUnavailable).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Most memory at once, in bytes (`memory.max`; swap is not allowed past it). A process
    /// the OOM killer ends for it reports [`ProcessInfo::oom_killed`](crate::ProcessInfo::oom_killed).
    pub memory_bytes: Option<u64>,
    /// Most processes and threads at once (`pids.max`): a fork past it fails with `EAGAIN`.
    pub pids: Option<u64>,
    /// Most CPU time, in percent of one CPU (`cpu.max`; 200 is two CPUs).
    pub cpu_percent: Option<u64>,
}

impl Limits {
    /// No limits.
    #[must_use]
    pub fn new() -> Self {
        Limits::default()
    }

    /// Sets [`Limits::memory_bytes`].
    #[must_use]
    pub fn memory_bytes(mut self, bytes: u64) -> Self {
        self.memory_bytes = Some(bytes);
        self
    }

    /// Sets [`Limits::pids`].
    #[must_use]
    pub fn pids(mut self, pids: u64) -> Self {
        self.pids = Some(pids);
        self
    }

    /// Sets [`Limits::cpu_percent`].
    #[must_use]
    pub fn cpu_percent(mut self, percent: u64) -> Self {
        self.cpu_percent = Some(percent);
        self
    }

    /// Whether no limit is set.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == Limits::default()
    }
}

/// The identity a caller gives a start before it is made, so that a start retried after a lost
/// answer never runs the command twice (coder's tracked processes): the process gets
/// `process_id` as its id; the same id again with the same command, chat and deadline answers
/// the process already started; anything different, or an id fenced by
/// [`Manager::cancel_tracked`](crate::Manager::cancel_tracked) before it arrived, is refused.
/// With a deadline, the whole process group gets SIGKILL when it passes.
///
/// ```
/// use procwarden::{Command, Tracking};
/// use std::time::{Duration, SystemTime};
///
/// let id = procwarden::Uuid::new_v4();
/// let cmd = Command::shell("make deploy")
///     .tracked(Tracking::new(id).deadline(SystemTime::now() + Duration::from_secs(600)));
/// # let _ = cmd;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracking {
    pub(crate) process_id: Uuid,
    pub(crate) deadline: Option<SystemTime>,
    pub(crate) input_digest: Option<String>,
}

impl Tracking {
    /// A start named `process_id` (which must not be the nil UUID), without a deadline.
    #[must_use]
    pub fn new(process_id: Uuid) -> Self {
        Tracking {
            process_id,
            deadline: None,
            input_digest: None,
        }
    }

    /// At `deadline` the process's whole group gets SIGKILL; a start that arrives after it is
    /// refused ([`Error::TrackedExpired`](crate::Error::TrackedExpired)).
    #[must_use]
    pub fn deadline(mut self, deadline: SystemTime) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Sets or clears the deadline.
    #[must_use]
    pub fn deadline_opt(mut self, deadline: Option<SystemTime>) -> Self {
        self.deadline = deadline;
        self
    }

    /// The digest that names what is run (the wire's `input_digest`, already checked by the
    /// caller). Without one the manager makes its own from the command. Either way a replay is
    /// the same start only when its digest is the same.
    #[must_use]
    pub fn input_digest(mut self, digest: impl Into<String>) -> Self {
        self.input_digest = Some(digest.into());
        self
    }

    /// The process id the start will have.
    #[must_use]
    pub fn process_id(&self) -> Uuid {
        self.process_id
    }

    /// The deadline, if any.
    #[must_use]
    pub fn deadline_at(&self) -> Option<SystemTime> {
        self.deadline
    }

    /// The digest given with [`input_digest`](Self::input_digest), if any.
    #[must_use]
    pub fn digest(&self) -> Option<&str> {
        self.input_digest.as_deref()
    }
}

/// Largest number of rows or columns a terminal may have (and the smallest is 1).
pub const MAX_TERMINAL_DIMENSION: u16 = 1000;

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
    /// directory (see [`ManagerBuilder::workdir_provider`](crate::ManagerBuilder::workdir_provider))
    /// if it names an existing directory, else the calling process's current directory, as
    /// `std::process::Command` does.
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

    /// Resource limits (see [`Limits`]).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets or clears the chat.
    pub fn chat_opt(mut self, chat: Option<Uuid>) -> Self {
        self.chat = chat;
        self
    }

    /// Gives the process a pipe as its stdin (instead of `/dev/null`), written through
    /// [`Manager::write_input`](crate::Manager::write_input) and closed (end of file) with
    /// [`Manager::close_input`](crate::Manager::close_input). Ignored with [`tty`](Self::tty).
    pub fn stdin_pipe(mut self) -> Self {
        self.stdin_pipe = true;
        self
    }

    /// Runs the process under a new pseudo-terminal of `rows` x `cols` (each 1 to
    /// [`MAX_TERMINAL_DIMENSION`], else the start fails with
    /// [`Error::InvalidTerminalSize`](crate::Error::InvalidTerminalSize)). The process leads a
    /// new session with the terminal as its controlling terminal, and still leads its own
    /// process group; its stdin, stdout and stderr are the terminal, so the output is what the
    /// terminal shows (escape sequences and `\r\n` included). It always takes input. `TERM`
    /// is the manager's [terminal `TERM`](crate::ManagerBuilder::terminal_term) unless the
    /// command's own environment sets it.
    pub fn tty(mut self, rows: u16, cols: u16) -> Self {
        self.tty = Some(TerminalSize { rows, cols });
        self
    }
    /// Makes this a tracked start (see [`Tracking`]).
    pub fn tracked(mut self, tracking: Tracking) -> Self {
        self.tracking = Some(tracking);
        self
    }

    /// Sets or clears the tracking.
    pub fn tracked_opt(mut self, tracking: Option<Tracking>) -> Self {
        self.tracking = tracking;
        self
    }

    /// The tracking identity, if this is a tracked start.
    #[must_use]
    pub fn tracking(&self) -> Option<&Tracking> {
        self.tracking.as_ref()
    }

    /// A SHA-256 of everything this command runs and how, except its chat and its tracking
    /// (which a receipt keeps and compares apart): what a receipt remembers so that a replay
    /// whose own fields differ (`argv`, a timeout, and whatever later fields a start gains) is
    /// refused. It hashes the `Debug` form of the whole command, so a field added to
    /// [`Command`] is covered without more work here.
    pub(crate) fn fingerprint(&mut self) -> [u8; 32] {
        let (chat, tracking) = (self.chat.take(), self.tracking.take());
        let mut hasher = Sha256::new();
        hasher.update(format!("{self:?}").as_bytes());
        (self.chat, self.tracking) = (chat, tracking);
        hasher.finalize().into()
    }
}

/// A signal the manager sends to a whole process group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Signal {
    /// SIGTERM: ask to stop.
    Terminate,
    /// SIGKILL: stop now.
    Kill,
    /// SIGINT: as Ctrl-C would.
    Interrupt,
    /// Freezes the whole tree: `cgroup.freeze` where the process has a cgroup, else SIGSTOP to
    /// its group.
    Stop,
    /// Thaws what [`Signal::Stop`] froze (`cgroup.freeze` 0, else SIGCONT to the group).
    Continue,
}

impl Signal {
    /// Every signal, in the order the wire lists them.
    pub const ALL: [Signal; 5] = [
        Signal::Terminate,
        Signal::Kill,
        Signal::Interrupt,
        Signal::Stop,
        Signal::Continue,
    ];

    /// The signal number.
    #[must_use]
    pub fn number(self) -> i32 {
        match self {
            Signal::Terminate => libc::SIGTERM,
            Signal::Kill => libc::SIGKILL,
            Signal::Interrupt => libc::SIGINT,
            Signal::Stop => libc::SIGSTOP,
            Signal::Continue => libc::SIGCONT,
        }
    }
}

/// Most bytes of a command that a log line shows: a command may be up to a request body long
/// (1 MiB), and a log line per start must stay a line.
pub const LOG_COMMAND_BYTES: usize = 256;

/// `command` as a log line shows it: at most [`LOG_COMMAND_BYTES`], cut at a character
/// boundary, with the full length noted when cut.
pub(crate) fn log_excerpt(command: &str) -> std::borrow::Cow<'_, str> {
    if command.len() <= LOG_COMMAND_BYTES {
        return command.into();
    }
    let mut end = LOG_COMMAND_BYTES;
    while !command.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes)", &command[..end], command.len()).into()
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
    fn log_lines_show_a_bounded_excerpt() {
        assert_eq!(log_excerpt("echo hi"), "echo hi");
        let long = "é".repeat(1000);
        let shown = log_excerpt(&long);
        assert!(shown.len() <= LOG_COMMAND_BYTES + 20, "{}", shown.len());
        assert!(shown.ends_with("... (2000 bytes)"), "{shown}");
    }

    #[test]
    fn signal_names_round_trip() {
        for s in Signal::ALL {
            assert_eq!(s.name().parse::<Signal>(), Ok(s));
        }
        assert!("hup".parse::<Signal>().is_err());
    }
}
