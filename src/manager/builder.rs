//! Configuring a manager: every bound as a named default, and the builder that sets them.
//!
//! Durations are saturating: `Duration::MAX` (or any huge value) for a grace, a retention, a
//! wait or an idle time means "never", not an overflow.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::buffer::BufferConfig;
use crate::info::ExitEvent;
use crate::metrics::Metrics;
use crate::sys;

pub use super::contain::CgroupMode;

/// The `oom_score_adj` the server gives children over its own (see
/// [`ManagerBuilder::child_oom_score_adj`]): high enough that the OOM killer picks a runaway
/// build before the agent.
pub const DEFAULT_CHILD_OOM_SCORE_ADJ: i32 = 500;

/// Default limit on processes running at once.
pub const DEFAULT_MAX_RUNNING: usize = 256;
/// Default time between SIGTERM and SIGKILL when a timeout or a close stops a group.
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(2);
/// Default time after the leader's exit that a process counts as running while its output pipe
/// stays open (a grandchild holding it can never make a wait hang for longer).
pub const DEFAULT_PIPE_GRACE: Duration = Duration::from_secs(2);
/// The capacity a child's output pipe grows to once the child floods it (a drain finds a full
/// read waiting): 1 MiB, the kernel's default `pipe-max-size`. A larger pipe lets a fast
/// writer go on while the reader sleeps, so the reader wakes once per megabyte instead of
/// once per write, and the part of it the tail cannot keep is discarded without a copy.
/// Only flooding pipes grow: the kernel counts pipe capacity against a per-user budget
/// (`pipe-user-pages-soft`). 0 leaves every pipe at the kernel's default (64 KiB).
pub const DEFAULT_FLOOD_PIPE_BYTES: usize = 1 << 20;
/// Default time an exited process stays listed (with its output) before it is forgotten.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(5 * 60);
/// Default number of exited processes kept; past it the oldest exited one is forgotten first.
pub const DEFAULT_MAX_EXITED: usize = 1024;
/// Default number of entries a list returns.
pub const DEFAULT_LIST_LIMIT: usize = 10;
/// Longest a single output call may wait.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(5 * 60);
/// The shell that runs [`Command::shell`](crate::Command::shell) commands as `sh -c <command>`.
pub const DEFAULT_SHELL: &str = "/bin/sh";
/// Stack size of the per-child reader threads (and, without pidfds, waiter threads): they
/// copy bytes and nothing else, so a small stack keeps many children cheap.
pub const DEFAULT_THREAD_STACK_BYTES: usize = 64 * 1024;
/// How long a reader thread with no child to watch waits for the next one before it exits.
/// Reusing readers saves creating a thread per start (starts in a row, a few milliseconds
/// apart, reuse one); idle ones cost a mostly untouched stack and a thread, so after a burst
/// of 200 exits the server is back to its idle threads within half a second.
pub const DEFAULT_READER_IDLE: Duration = Duration::from_millis(250);
/// Default number of tracked identities a manager keeps receipts for. Receipts are small and
/// outlive the process records (an id is never reused within a manager); past this many, new
/// tracked starts and fences are refused
/// ([`Error::TrackedCapacity`](crate::Error::TrackedCapacity)), as coder's agent does.
pub const DEFAULT_MAX_TRACKED: usize = 16384;
/// Default bound on a process's pending input (bytes queued and not yet read by it): a write
/// that would go past it queues nothing and fails with
/// [`Error::InputFull`](crate::Error::InputFull).
pub const DEFAULT_MAX_PENDING_INPUT: usize = 1024 * 1024;
/// Default `TERM` of terminal processes whose own environment does not set it (the manager's
/// base environment's `TERM` describes the host's terminal, not theirs).
pub const DEFAULT_TERMINAL_TERM: &str = "xterm-256color";
/// Environment variable set to the chat id for processes started for a chat.
pub const CHAT_ID_ENV: &str = "CODER_CHAT_ID";

type EnvHook = dyn Fn(&mut BTreeMap<OsString, OsString>) -> io::Result<()> + Send + Sync;
type WorkdirProvider = dyn Fn() -> Option<PathBuf> + Send + Sync;
type ExitHook = dyn Fn(&ExitEvent) + Send + Sync;

/// Everything a manager is configured with; built by [`ManagerBuilder`].
pub(crate) struct Config {
    pub(crate) max_running: usize,
    pub(crate) kill_grace: Duration,
    pub(crate) pipe_grace: Duration,
    pub(crate) flood_pipe_bytes: usize,
    pub(crate) retention: Duration,
    pub(crate) max_exited: usize,
    pub(crate) max_wait: Duration,
    pub(crate) max_pattern_bytes: usize,
    pub(crate) log_dir: Option<PathBuf>,
    pub(crate) log_max_bytes: u64,
    pub(crate) log_max_total_bytes: u64,
    pub(crate) buffer: BufferConfig,
    pub(crate) shell: PathBuf,
    pub(crate) thread_stack_bytes: usize,
    pub(crate) reader_idle: Duration,
    pub(crate) base_env: BTreeMap<OsString, OsString>,
    pub(crate) env_hook: Option<Box<EnvHook>>,
    pub(crate) workdir_provider: Option<Box<WorkdirProvider>>,
    pub(crate) on_exit: Option<Box<ExitHook>>,
    pub(crate) spawn_method: sys::SpawnMethod,
    pub(crate) cgroup: CgroupMode,
    pub(crate) subreaper: bool,
    pub(crate) child_oom_score_adj: i32,
    pub(crate) child_nice: Option<i32>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) max_tracked: usize,
    pub(crate) max_pending_input: usize,
    pub(crate) terminal_term: String,
}

/// Configures and builds a [`Manager`](crate::Manager). Every bound has a documented default.
///
/// ```
/// use procwarden::Manager;
/// use std::time::Duration;
///
/// let manager = Manager::builder()
///     .max_running(32)
///     .retention(Duration::from_secs(60))
///     .env("CI", "1")
///     .build()
///     .expect("manager");
/// ```
#[must_use = "a builder does nothing until build() is called"]
pub struct ManagerBuilder {
    config: Config,
}

impl fmt::Debug for ManagerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManagerBuilder")
            .field("max_running", &self.config.max_running)
            .finish_non_exhaustive()
    }
}

impl Default for ManagerBuilder {
    fn default() -> Self {
        ManagerBuilder {
            config: Config {
                max_running: DEFAULT_MAX_RUNNING,
                kill_grace: DEFAULT_KILL_GRACE,
                pipe_grace: DEFAULT_PIPE_GRACE,
                flood_pipe_bytes: DEFAULT_FLOOD_PIPE_BYTES,
                retention: DEFAULT_RETENTION,
                max_exited: DEFAULT_MAX_EXITED,
                max_wait: DEFAULT_MAX_WAIT,
                max_pattern_bytes: crate::pattern::MAX_PATTERN_BYTES,
                log_dir: None,
                log_max_bytes: crate::log::DEFAULT_LOG_MAX_BYTES,
                log_max_total_bytes: crate::log::DEFAULT_LOG_MAX_TOTAL_BYTES,
                buffer: BufferConfig::default(),
                shell: PathBuf::from(DEFAULT_SHELL),
                thread_stack_bytes: DEFAULT_THREAD_STACK_BYTES,
                reader_idle: DEFAULT_READER_IDLE,
                base_env: std::env::vars_os().collect(),
                env_hook: None,
                workdir_provider: None,
                on_exit: None,
                spawn_method: sys::SpawnMethod::default_for_platform(),
                cgroup: CgroupMode::Off,
                subreaper: false,
                child_oom_score_adj: 0,
                child_nice: None,
                metrics: Arc::new(Metrics::new()),
                max_tracked: DEFAULT_MAX_TRACKED,
                max_pending_input: DEFAULT_MAX_PENDING_INPUT,
                terminal_term: DEFAULT_TERMINAL_TERM.to_string(),
            },
        }
    }
}

impl ManagerBuilder {
    /// Most processes running at once (default [`DEFAULT_MAX_RUNNING`]); a start past it fails
    /// with [`Error::TooManyRunning`](crate::Error::TooManyRunning).
    pub fn max_running(mut self, n: usize) -> Self {
        self.config.max_running = n;
        self
    }

    /// Time between SIGTERM and SIGKILL for timeouts and close (default [`DEFAULT_KILL_GRACE`]).
    pub fn kill_grace(mut self, grace: Duration) -> Self {
        self.config.kill_grace = grace;
        self
    }

    /// How long after the leader's exit an open output pipe keeps a process running (default
    /// [`DEFAULT_PIPE_GRACE`]).
    pub fn pipe_grace(mut self, grace: Duration) -> Self {
        self.config.pipe_grace = grace;
        self
    }

    /// The capacity a flooded output pipe grows to (default [`DEFAULT_FLOOD_PIPE_BYTES`]; 0:
    /// never grow). The kernel caps it at `/proc/sys/fs/pipe-max-size` for unprivileged
    /// processes and refuses it past the user's pipe budget; a refused growth leaves the pipe
    /// as it was.
    pub fn flood_pipe_bytes(mut self, bytes: usize) -> Self {
        self.config.flood_pipe_bytes = bytes;
        self
    }

    /// How long exited processes stay listed (default [`DEFAULT_RETENTION`]).
    pub fn retention(mut self, retention: Duration) -> Self {
        self.config.retention = retention;
        self
    }

    /// Most exited processes kept (default [`DEFAULT_MAX_EXITED`]).
    pub fn max_exited(mut self, n: usize) -> Self {
        self.config.max_exited = n;
        self
    }

    /// Longest an output call may wait (default [`DEFAULT_MAX_WAIT`]).
    pub fn max_wait(mut self, wait: Duration) -> Self {
        self.config.max_wait = wait;
        self
    }

    /// Longest pattern an output wait accepts, in bytes (default
    /// [`MAX_PATTERN_BYTES`](crate::MAX_PATTERN_BYTES)); a longer one is
    /// [`Error::InvalidPattern`](crate::Error::InvalidPattern).
    pub fn max_pattern_bytes(mut self, n: usize) -> Self {
        self.config.max_pattern_bytes = n;
        self
    }

    /// Where full logs go (see [`Command::log`](crate::Command::log)): the directory is made
    /// with mode 0700 when missing, and its log files are removed at close (the directory too
    /// when the manager made it). Default: a new directory private to this manager under the
    /// system's temporary directory, made when the manager is built and removed at close.
    pub fn log_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config.log_dir = Some(dir.into());
        self
    }

    /// Largest log file, in bytes (default [`DEFAULT_LOG_MAX_BYTES`](crate::DEFAULT_LOG_MAX_BYTES));
    /// past it the file stops growing and answers say `log_truncated`.
    pub fn log_max_bytes(mut self, bytes: u64) -> Self {
        self.config.log_max_bytes = bytes;
        self
    }

    /// Most bytes all log files together may hold (default
    /// [`DEFAULT_LOG_MAX_TOTAL_BYTES`](crate::DEFAULT_LOG_MAX_TOTAL_BYTES)): a start asking for
    /// a log is refused with [`Error::LogSpaceFull`](crate::Error::LogSpaceFull) once they do,
    /// and a file stops growing when the total would pass it.
    pub fn log_max_total_bytes(mut self, bytes: u64) -> Self {
        self.config.log_max_total_bytes = bytes;
        self
    }

    /// Sizes of each process's output buffer (default [`BufferConfig::default`]).
    pub fn buffer(mut self, config: BufferConfig) -> Self {
        self.config.buffer = config;
        self
    }

    /// The shell for [`Command::shell`](crate::Command::shell) (default [`DEFAULT_SHELL`]).
    pub fn shell(mut self, shell: impl Into<PathBuf>) -> Self {
        self.config.shell = shell.into();
        self
    }

    /// Stack size of reader threads (default [`DEFAULT_THREAD_STACK_BYTES`]).
    pub fn thread_stack_bytes(mut self, bytes: usize) -> Self {
        self.config.thread_stack_bytes = bytes;
        self
    }

    /// How long an idle reader thread waits for the next child before it exits (default
    /// [`DEFAULT_READER_IDLE`]).
    pub fn reader_idle(mut self, idle: Duration) -> Self {
        self.config.reader_idle = idle;
        self
    }

    /// Replaces the base environment (default: this process's environment when the builder was
    /// made).
    pub fn base_env<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<OsString>,
        V: Into<OsString>,
    {
        self.config.base_env = vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        self
    }

    /// Adds or replaces one variable of the base environment (an agent-level variable every
    /// process gets).
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.config.base_env.insert(key.into(), value.into());
        self
    }

    /// Removes a variable from the base environment (e.g. a secret the manager itself uses).
    pub fn env_remove(mut self, key: impl AsRef<std::ffi::OsStr>) -> Self {
        self.config.base_env.remove(key.as_ref());
        self
    }

    /// A hook that may rewrite the base environment before each start. If it fails, the
    /// failure is logged and the base environment is used unchanged. A request's own variables
    /// and `CODER_CHAT_ID` are applied after it.
    pub fn env_hook(
        mut self,
        hook: impl Fn(&mut BTreeMap<OsString, OsString>) -> io::Result<()> + Send + Sync + 'static,
    ) -> Self {
        self.config.env_hook = Some(Box::new(hook));
        self
    }

    /// The default working directory, asked at each start that gives none; used if it names an
    /// existing directory, else the calling process's current directory is used (as
    /// `std::process::Command` does; `/` if even that is gone).
    pub fn workdir_provider(
        mut self,
        provider: impl Fn() -> Option<PathBuf> + Send + Sync + 'static,
    ) -> Self {
        self.config.workdir_provider = Some(Box::new(provider));
        self
    }

    /// A fixed default working directory (see [`workdir_provider`](Self::workdir_provider)).
    pub fn default_workdir(self, dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        self.workdir_provider(move || Some(dir.clone()))
    }

    /// Called on the supervisor thread (a full-size stack) each time a process is marked exited,
    /// with its id, chat and working directory (files there may have changed). Keep it short:
    /// it delays spawns and timers. It may call [`Manager::close`](crate::Manager::close), which then only starts the
    /// close.
    pub fn on_exit(mut self, hook: impl Fn(&ExitEvent) + Send + Sync + 'static) -> Self {
        self.config.on_exit = Some(Box::new(hook));
        self
    }

    /// Counts into `metrics` (shared with, say, the HTTP front end) instead of a set of the
    /// manager's own; see [`Manager::metrics`](crate::Manager::metrics).
    pub fn metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.config.metrics = metrics;
        self
    }

    /// Uses the portable fork-based spawn instead of the default vfork-style clone on Linux.
    /// Slower (fork copies the parent's page tables); there for testing and odd platforms.
    pub fn portable_spawn(mut self, portable: bool) -> Self {
        self.config.spawn_method = if portable {
            sys::SpawnMethod::Fork
        } else {
            sys::SpawnMethod::default_for_platform()
        };
        self
    }

    /// Puts every process in a cgroup v2 directory of its own (Linux 5.14+, x86-64), so
    /// that kills, timeouts and a close reach everything it started, `setsid` daemons and
    /// double forks included, a signal reaches what is left of it after the leader's exit,
    /// the end of the whole tree is the kernel's event, and limits can be applied. Default
    /// [`CgroupMode::Off`]: the library does not touch the embedding program's cgroups unless
    /// asked. A mode that cannot be set up leaves the manager without cgroups and says why
    /// in [`Manager::startup_notes`](crate::Manager::startup_notes).
    ///
    /// While cgroups are on, a keeper process (forked at build) kills every one of them
    /// should this process die without closing the manager, SIGKILL included.
    pub fn cgroup(mut self, mode: CgroupMode) -> Self {
        self.config.cgroup = mode;
        self
    }

    /// Makes this process a child subreaper (Linux `PR_SET_CHILD_SUBREAPER`): descendants
    /// orphaned by a process's exit are reparented here instead of to PID 1, and a thread
    /// reaps them, so no zombie is left (also when this process is PID 1 in a container).
    /// Default off, because the reaping waits for *any* child: an embedding program that
    /// starts children of its own would find them reaped (its waits failing with `ECHILD`)
    /// unless they are a manager's. The server turns it on: it owns every child.
    pub fn subreaper(mut self, on: bool) -> Self {
        self.config.subreaper = on;
        self
    }

    /// Children's `oom_score_adj`: this much above this process's own (clamped to the
    /// kernel's -1000..=1000), so the kernel's OOM killer takes a runaway command before
    /// its supervisor. Default 0 (unchanged); the server uses
    /// [`DEFAULT_CHILD_OOM_SCORE_ADJ`].
    pub fn child_oom_score_adj(mut self, delta: i32) -> Self {
        self.config.child_oom_score_adj = delta;
        self
    }

    /// Children's nice value (clamped to the kernel's -20..=19; what they fork inherits it),
    /// so that a build does not take the CPU from its supervisor. Default `None`: inherited.
    /// A value below this process's own needs `CAP_SYS_NICE`; without it the child keeps the
    /// inherited value (not a spawn failure).
    pub fn child_nice(mut self, nice: Option<i32>) -> Self {
        self.config.child_nice = nice;
        self
    }

    /// Most tracked identities kept (default [`DEFAULT_MAX_TRACKED`]); past it a tracked start
    /// or fence of a new identity fails with
    /// [`Error::TrackedCapacity`](crate::Error::TrackedCapacity).
    pub fn max_tracked(mut self, n: usize) -> Self {
        self.config.max_tracked = n;
        self
    }

    /// Most input bytes pending per process (default [`DEFAULT_MAX_PENDING_INPUT`]);
    /// `usize::MAX` means no bound.
    pub fn max_pending_input(mut self, bytes: usize) -> Self {
        self.config.max_pending_input = bytes;
        self
    }

    /// `TERM` for terminal processes whose own environment does not set it (default
    /// [`DEFAULT_TERMINAL_TERM`]). The base environment's `TERM` is not used for them: it
    /// describes the terminal the host runs in, if any.
    pub fn terminal_term(mut self, term: impl Into<String>) -> Self {
        self.config.terminal_term = term.into();
        self
    }

    /// The configuration as set so far.
    pub(crate) fn into_config(self) -> Config {
        self.config
    }
}
