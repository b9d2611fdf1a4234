//! [`Manager`]: the registry of processes and the blocking API over it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ffi::{CString, OsString};
use std::fmt;
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::Sender;
use parking_lot::{Condvar, Mutex};
use uuid::Uuid;

use crate::buffer::{BufferConfig, HeadTailBuffer};
use crate::error::Error;
use crate::pool::{ReaderPool, ReaderWork};
use crate::process::{
    self, Command, ExitEvent, Leader, Output, OutputQuery, Proc, ProcState, ProcessId, ProcessInfo,
    Signal,
};
use crate::reaper::{self, Job, SpawnJob, proc_label};
use crate::sys;

/// Default limit on processes running at once.
pub const DEFAULT_MAX_RUNNING: usize = 256;
/// Default time between SIGTERM and SIGKILL when a timeout or a close stops a group.
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(2);
/// Default time after the leader's exit that a process counts as running while its output pipe
/// stays open (a grandchild holding it can never make a wait hang for longer).
pub const DEFAULT_PIPE_GRACE: Duration = Duration::from_secs(2);
/// Default time an exited process stays listed (with its output) before it is forgotten.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(5 * 60);
/// Default number of exited processes kept; past it the oldest exited one is forgotten first.
pub const DEFAULT_MAX_EXITED: usize = 1024;
/// Default number of entries a list returns.
pub const DEFAULT_LIST_LIMIT: usize = 10;
/// Longest a single output call may wait.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(5 * 60);
/// The shell that runs [`Command::shell`] commands as `sh -c <command>`.
pub const DEFAULT_SHELL: &str = "/bin/sh";
/// Stack size of the per-child reader threads (and, without pidfds, waiter threads): they
/// copy bytes and nothing else, so a small stack keeps many children cheap.
pub const DEFAULT_THREAD_STACK_BYTES: usize = 64 * 1024;
/// How long a reader thread with no child to watch waits for the next one before it exits.
/// Reusing readers saves creating a thread per start; idle ones cost a mostly untouched stack.
pub const DEFAULT_READER_IDLE: Duration = Duration::from_secs(5);
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
    pub(crate) retention: Duration,
    pub(crate) max_exited: usize,
    pub(crate) max_wait: Duration,
    pub(crate) buffer: BufferConfig,
    pub(crate) shell: PathBuf,
    pub(crate) thread_stack_bytes: usize,
    pub(crate) reader_idle: Duration,
    pub(crate) base_env: BTreeMap<OsString, OsString>,
    pub(crate) env_hook: Option<Box<EnvHook>>,
    pub(crate) workdir_provider: Option<Box<WorkdirProvider>>,
    pub(crate) on_exit: Option<Box<ExitHook>>,
    pub(crate) spawn_method: sys::SpawnMethod,
}

/// Configures and builds a [`Manager`]. Every bound has a documented default.
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
                retention: DEFAULT_RETENTION,
                max_exited: DEFAULT_MAX_EXITED,
                max_wait: DEFAULT_MAX_WAIT,
                buffer: BufferConfig::default(),
                shell: PathBuf::from(DEFAULT_SHELL),
                thread_stack_bytes: DEFAULT_THREAD_STACK_BYTES,
                reader_idle: DEFAULT_READER_IDLE,
                base_env: std::env::vars_os().collect(),
                env_hook: None,
                workdir_provider: None,
                on_exit: None,
                spawn_method: sys::SpawnMethod::default_for_platform(),
            },
        }
    }
}

impl ManagerBuilder {
    /// Most processes running at once (default [`DEFAULT_MAX_RUNNING`]); a start past it fails
    /// with [`Error::TooManyRunning`].
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

    /// Sizes of each process's output buffer (default [`BufferConfig::default`]).
    pub fn buffer(mut self, config: BufferConfig) -> Self {
        self.config.buffer = config;
        self
    }

    /// The shell for [`Command::shell`] (default [`DEFAULT_SHELL`]).
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
    /// existing directory, else `$HOME` is used.
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
    /// it delays spawns and timers. It may call [`Manager::close`], which then only starts the
    /// close.
    pub fn on_exit(mut self, hook: impl Fn(&ExitEvent) + Send + Sync + 'static) -> Self {
        self.config.on_exit = Some(Box::new(hook));
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

    /// Starts the supervisor thread and returns the manager.
    pub fn build(self) -> io::Result<Manager> {
        let (jobs_tx, jobs_rx) = crossbeam_channel::unbounded();
        let base_envp = Arc::new(envp_of(&self.config.base_env));
        let shared = Arc::new(Shared {
            config: self.config,
            table: Mutex::new(Table::default()),
            running: AtomicUsize::new(0),
            closing: AtomicBool::new(false),
            jobs: jobs_tx,
            wake: sys::Waker::new()?,
            stop_readers: Arc::new(sys::Waker::new()?),
            base_envp,
            lingering: Mutex::new(Vec::new()),
            lingering_added: AtomicBool::new(false),
            readers: ReaderPool::new(),
            dev_null: Arc::new(sys::open_dev_null()?),
            closed: Mutex::new(false),
            closed_cv: Condvar::new(),
            supervisor_thread: std::sync::OnceLock::new(),
        });
        let for_supervisor = Arc::clone(&shared);
        let supervisor = std::thread::Builder::new()
            .name("procwarden-supervisor".into())
            .spawn(move || reaper::run(for_supervisor, jobs_rx))?;
        let _ = shared.supervisor_thread.set(supervisor.thread().id());
        Ok(Manager {
            shared,
            supervisor: Mutex::new(Some(supervisor)),
        })
    }
}

/// State shared by the manager's handle, the supervisor and the reader threads.
pub(crate) struct Shared {
    pub(crate) config: Config,
    table: Mutex<Table>,
    /// Processes started and not yet marked exited (including starts in flight).
    pub(crate) running: AtomicUsize,
    closing: AtomicBool,
    pub(crate) jobs: Sender<Job>,
    /// Wakes the supervisor's poll.
    pub(crate) wake: sys::Waker,
    /// Tells every reader thread to stop (at the end of a close).
    pub(crate) stop_readers: Arc<sys::Waker>,
    /// Processes marked exited whose group may still have members (a background child that
    /// outlived its leader): signalled again at close.
    pub(crate) lingering: Mutex<Vec<Arc<Proc>>>,
    /// Set when a group starts lingering, so the supervisor re-checks soon.
    pub(crate) lingering_added: AtomicBool,
    /// The base environment as `KEY=VALUE` C strings, for starts that change nothing in it.
    base_envp: Arc<Vec<CString>>,
    /// Reader threads, reused across children.
    pub(crate) readers: ReaderPool,
    /// `/dev/null`, opened once: every child's stdin.
    dev_null: Arc<std::os::fd::OwnedFd>,
    closed: Mutex<bool>,
    closed_cv: Condvar,
    /// The supervisor thread, so that a close called from it (the exit hook) does not wait on
    /// itself.
    supervisor_thread: std::sync::OnceLock<std::thread::ThreadId>,
}

#[derive(Default)]
struct Table {
    procs: HashMap<ProcessId, Arc<Proc>>,
    /// Exited processes in the order they exited (oldest first), with when.
    exited: VecDeque<(Instant, ProcessId)>,
    next_seq: u64,
}

impl Shared {
    pub(crate) fn insert(&self, proc: Arc<Proc>) {
        self.table.lock().procs.insert(proc.id, proc);
    }

    pub(crate) fn all(&self) -> Vec<Arc<Proc>> {
        self.table.lock().procs.values().cloned().collect()
    }

    /// Records an exit and forgets the oldest exited processes past the limit. Returns whether
    /// it is the only exit on record (so the first retention deadline is new).
    pub(crate) fn record_exit(&self, id: ProcessId) -> bool {
        let mut table = self.table.lock();
        let first = table.exited.is_empty();
        table.exited.push_back((Instant::now(), id));
        while table.exited.len() > self.config.max_exited {
            if let Some((_, old)) = table.exited.pop_front() {
                table.procs.remove(&old);
            }
        }
        first
    }

    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }

    /// When the oldest exited process's retention ends.
    pub(crate) fn next_expiry(&self) -> Option<Instant> {
        let table = self.table.lock();
        let (at, _) = table.exited.front()?;
        at.checked_add(self.config.retention)
    }

    /// Forgets exited processes whose retention has passed.
    pub(crate) fn sweep(&self, now: Instant) {
        let mut table = self.table.lock();
        while let Some(&(at, id)) = table.exited.front() {
            if now.saturating_duration_since(at) < self.config.retention {
                break;
            }
            table.exited.pop_front();
            table.procs.remove(&id);
        }
    }

    pub(crate) fn next_seq(&self) -> u64 {
        let mut table = self.table.lock();
        table.next_seq += 1;
        table.next_seq
    }

    fn get(&self, id: &ProcessId) -> Option<Arc<Proc>> {
        self.table.lock().procs.get(id).cloned()
    }
}

/// Runs processes and answers questions about them. All methods block the calling thread only
/// as long as the call says (a start: until the child has exec'd; an output wait: until its
/// deadline at most).
///
/// Scope: each call takes the caller's chat (`None` for no chat). A caller with a chat sees
/// only that chat's processes plus, for output and signals, processes started without a chat;
/// lists for a chat show only that chat's. A caller without a chat sees everything.
///
/// Dropping the manager closes it (see [`close`](Self::close)).
pub struct Manager {
    shared: Arc<Shared>,
    supervisor: Mutex<Option<JoinHandle<()>>>,
}

impl fmt::Debug for Manager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Manager")
            .field("running", &self.shared.running.load(Ordering::Relaxed))
            .field("closing", &self.shared.closing.load(Ordering::Relaxed))
            .field("reader_threads", &self.shared.readers.threads())
            .finish_non_exhaustive()
    }
}

/// What [`Manager::start`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    /// The new process's id.
    pub id: ProcessId,
    /// Its pid, which is also its process group id.
    pub pid: u32,
    /// The working directory it was started in.
    pub workdir: PathBuf,
}

impl Manager {
    /// A manager with every default.
    pub fn new() -> io::Result<Manager> {
        Manager::builder().build()
    }

    /// A builder to configure one.
    pub fn builder() -> ManagerBuilder {
        ManagerBuilder::default()
    }

    /// Starts a process: checks the command, resolves the working directory and environment,
    /// spawns the child in its own process group with its output in one pipe, and returns once
    /// it has exec'd.
    ///
    /// Errors come in the wire contract's order: the command's own problems, then the running
    /// limit, then a manager that is closing.
    pub fn start(&self, cmd: Command) -> Result<Started, Error> {
        let prepared = self.prepare(&cmd)?;
        let limit = self.shared.config.max_running;
        if self.shared.running.fetch_add(1, Ordering::SeqCst) >= limit {
            self.release_slot();
            return Err(Error::TooManyRunning { limit });
        }
        if self.shared.closing.load(Ordering::SeqCst) {
            self.release_slot();
            return Err(Error::ShuttingDown);
        }
        match self.spawn(cmd, prepared) {
            Ok(started) => Ok(started),
            Err(Failure::Unspawned(e)) => {
                self.release_slot();
                Err(e)
            }
            // The child exists and owns its slot until it is marked exited.
            Err(Failure::Spawned(e)) => Err(e),
        }
    }

    fn release_slot(&self) {
        self.shared.running.fetch_sub(1, Ordering::SeqCst);
        // A close may be waiting for the count to reach zero.
        self.shared.wake.wake();
    }

    /// Everything checked and resolved before the spawn.
    fn prepare(&self, cmd: &Command) -> Result<Prepared, Error> {
        let config = &self.shared.config;
        let (argv, display) = match (&cmd.shell, &cmd.argv) {
            (None, None) => return Err(Error::CommandRequired),
            (Some(_), Some(_)) => return Err(Error::CommandAndArgv),
            (Some(shell), None) => {
                check_nul("command", shell)?;
                let sh = config.shell.as_os_str().as_bytes().to_vec();
                (
                    vec![sh, b"-c".to_vec(), shell.clone().into_bytes()],
                    shell.clone(),
                )
            }
            (None, Some(argv)) => {
                if argv.first().is_none_or(String::is_empty) {
                    return Err(Error::EmptyArgv);
                }
                for (i, arg) in argv.iter().enumerate() {
                    check_nul(&format!("argv[{i}]"), arg)?;
                }
                let words = argv.iter().map(|a| a.clone().into_bytes()).collect();
                (words, process::shell_join(argv))
            }
        };
        for (key, value) in &cmd.env {
            if key.is_empty() || key.contains('=') || key.contains('\0') {
                return Err(Error::InvalidEnvKey {
                    key: key.replace('\0', "\\0"),
                });
            }
            check_nul(&format!("env[\"{key}\"]"), value)?;
        }
        let workdir = self.resolve_workdir(cmd.workdir.as_deref())?;
        // Without a hook, request variables or a chat, every child gets the base environment:
        // built once, shared.
        let fast = config.env_hook.is_none() && cmd.env.is_empty() && cmd.chat.is_none();
        let env = (!fast).then(|| self.build_env(cmd));
        // The program is looked up later, after the running limit: a program that cannot be
        // found is a failed spawn (500), which the contract puts after 429 and 503.
        let path_var = env
            .as_ref()
            .unwrap_or(&config.base_env)
            .get(std::ffi::OsStr::new("PATH"))
            .cloned();
        let envp = match env {
            Some(env) => Arc::new(envp_of(&env)),
            None => Arc::clone(&self.shared.base_envp),
        };
        Ok(Prepared {
            path_var,
            argv,
            envp,
            workdir,
            display,
        })
    }

    fn resolve_workdir(&self, explicit: Option<&Path>) -> Result<PathBuf, Error> {
        if let Some(dir) = explicit.filter(|d| !d.as_os_str().is_empty()) {
            if dir.as_os_str().as_bytes().contains(&0) {
                return Err(Error::NulByte {
                    field: "workdir".into(),
                });
            }
            if !dir.is_absolute() {
                return Err(Error::RelativeWorkdir(dir.to_path_buf()));
            }
            if !dir.is_dir() {
                return Err(Error::WorkdirNotFound(dir.to_path_buf()));
            }
            return Ok(dir.to_path_buf());
        }
        if let Some(provider) = &self.shared.config.workdir_provider
            && let Some(dir) = provider()
            && dir.is_absolute()
            && dir.is_dir()
        {
            return Ok(dir);
        }
        match std::env::var_os("HOME").map(PathBuf::from) {
            Some(home) if home.is_absolute() && home.is_dir() => Ok(home),
            _ => Ok(PathBuf::from("/")),
        }
    }

    /// Base environment, then the hook, then the request's variables, then the chat id.
    fn build_env(&self, cmd: &Command) -> BTreeMap<OsString, OsString> {
        let config = &self.shared.config;
        let mut env = config.base_env.clone();
        if let Some(hook) = &config.env_hook {
            let mut rewritten = env.clone();
            match hook(&mut rewritten) {
                Ok(()) => env = rewritten,
                Err(e) => log::warn!(
                    "environment hook failed, using the base environment: {e}{}",
                    chat_suffix(cmd.chat)
                ),
            }
        }
        for (key, value) in &cmd.env {
            env.insert(key.into(), value.into());
        }
        if let Some(chat) = cmd.chat {
            env.insert(CHAT_ID_ENV.into(), chat.to_string().into());
        }
        env
    }

    fn spawn(&self, cmd: Command, prepared: Prepared) -> Result<Started, Failure> {
        let config = &self.shared.config;
        let to_cstring = |bytes: Vec<u8>| {
            CString::new(bytes).map_err(|e| {
                Failure::Unspawned(Error::Spawn(io::Error::new(io::ErrorKind::InvalidInput, e)))
            })
        };
        let program = match (&cmd.shell, &cmd.argv) {
            (Some(_), _) => config.shell.clone(),
            (None, argv) => {
                let name = argv.as_ref().and_then(|a| a.first()).cloned();
                resolve_program(
                    name.as_deref().unwrap_or_default(),
                    prepared.path_var.as_ref(),
                )
                .map_err(|e| Failure::Unspawned(Error::Spawn(e)))?
            }
        };
        let (read_end, write_end) =
            sys::pipe_cloexec().map_err(|e| Failure::Unspawned(Error::Spawn(e)))?;
        let spec = sys::SpawnSpec {
            path: to_cstring(program.into_os_string().into_vec())?,
            argv: prepared
                .argv
                .into_iter()
                .map(to_cstring)
                .collect::<Result<_, _>>()?,
            envp: prepared.envp,
            cwd: to_cstring(prepared.workdir.clone().into_os_string().into_vec())?,
            output: write_end,
            stdin: Some(Arc::clone(&self.shared.dev_null)),
            parent_death_signal: Some(libc::SIGKILL),
            method: config.spawn_method,
        };
        let id = ProcessId::new_random();
        let buffer_config = config.buffer;
        let (chat, background, workdir, display) = (
            cmd.chat,
            cmd.background,
            prepared.workdir.clone(),
            prepared.display,
        );
        let make = Box::new(move |child: &sys::SpawnedChild, seq: u64| {
            Arc::new(Proc {
                id,
                seq,
                chat,
                command: display,
                workdir,
                background,
                pid: child.pid as i32,
                started_at: SystemTime::now(),
                started: Instant::now(),
                buffer: HeadTailBuffer::with_config(buffer_config),
                state: Mutex::new(ProcState {
                    leader: Leader::Alive,
                    pipe_open: true,
                    timed_out: false,
                    exit: None,
                    pidfd: None,
                }),
                exited: Condvar::new(),
            })
        });
        let (reply_tx, reply_rx) = crossbeam_channel::bounded(1);
        let job = Job::Spawn(Box::new(SpawnJob {
            spec,
            make,
            timeout: cmd.timeout,
            reply: reply_tx,
        }));
        if self.shared.jobs.send(job).is_err() {
            return Err(Failure::Unspawned(Error::ShuttingDown));
        }
        self.shared.wake.wake();
        let proc = match reply_rx.recv() {
            Ok(Ok(proc)) => proc,
            Ok(Err(e)) if self.shared.closing.load(Ordering::SeqCst) => {
                log::debug!("start refused while closing: {e}");
                return Err(Failure::Unspawned(Error::ShuttingDown));
            }
            Ok(Err(e)) => {
                log::warn!(
                    "failed to start {:?}: {e}{}",
                    cmd_label(&cmd),
                    chat_suffix(chat)
                );
                return Err(Failure::Unspawned(Error::Spawn(e)));
            }
            Err(_) => return Err(Failure::Unspawned(Error::ShuttingDown)),
        };
        self.start_reader(&proc, read_end)
            .map_err(Failure::Spawned)?;
        Ok(Started {
            id: proc.id,
            pid: proc.pid as u32,
            workdir: proc.workdir.clone(),
        })
    }

    fn start_reader(&self, proc: &Arc<Proc>, pipe: std::os::fd::OwnedFd) -> Result<(), Error> {
        let pidfd = proc.state.lock().pidfd.clone();
        let work = ReaderWork {
            proc: Arc::clone(proc),
            pipe,
            pidfd,
        };
        if let Err(e) = self.shared.readers.dispatch(&self.shared, work) {
            // Without a reader nobody drains the pipe (now closed) or watches the exit: stop
            // the process, let the supervisor reap it, and report the failure.
            let mut state = proc.state.lock();
            state.pipe_open = false;
            let _ = Proc::signal_group(&state, proc.pid, libc::SIGKILL);
            drop(state);
            let _ = self.shared.jobs.send(Job::Watch(Arc::clone(proc)));
            self.shared.wake.wake();
            return Err(Error::Spawn(e));
        }
        Ok(())
    }

    /// Finds a process visible to `chat` for reading or signalling.
    fn find(&self, id: &ProcessId, chat: Option<Uuid>) -> Result<Arc<Proc>, Error> {
        match self.shared.get(id) {
            Some(proc) if visible_for_access(&proc, chat) => Ok(proc),
            _ => Err(Error::NotFound(*id)),
        }
    }

    /// The processes visible to `chat` in list order (running first, then newest start first),
    /// at most `limit` of them.
    pub fn list(&self, chat: Option<Uuid>, limit: usize) -> Vec<ProcessInfo> {
        let procs: Vec<Arc<Proc>> = self
            .shared
            .table
            .lock()
            .procs
            .values()
            .filter(|p| chat.is_none() || p.chat == chat)
            .cloned()
            .collect();
        let mut rows: Vec<(bool, u64, ProcessInfo)> = procs
            .iter()
            .map(|p| {
                let info = p.info();
                (info.running, p.seq, info)
            })
            .collect();
        rows.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
        rows.into_iter()
            .take(limit)
            .map(|(_, _, info)| info)
            .collect()
    }

    /// One process, if visible to `chat`.
    pub fn info(&self, id: &ProcessId, chat: Option<Uuid>) -> Result<ProcessInfo, Error> {
        Ok(self.find(id, chat)?.info())
    }

    /// Reads a process's output: a snapshot, or after waiting for exit, or (with a cursor)
    /// after waiting for output past the cursor; each wait bounded by `query.wait` and the
    /// manager's wait limit. When the answer says `running: false`, its output is final.
    pub fn output(
        &self,
        id: &ProcessId,
        chat: Option<Uuid>,
        query: OutputQuery,
    ) -> Result<Output, Error> {
        let proc = self.find(id, chat)?;
        if let Some(wait) = query.wait {
            let wait = wait.min(self.shared.config.max_wait);
            let deadline = Instant::now().checked_add(wait).unwrap_or_else(far_future);
            match query.cursor {
                Some(cursor) => {
                    proc.buffer.wait_for_output(cursor, deadline);
                    // The buffer is sealed just before the process is marked exited: if it is
                    // sealed, the exit is a moment away.
                    if proc.buffer.is_closed() {
                        proc.wait_exit(deadline);
                    }
                }
                None => {
                    proc.wait_exit(deadline);
                }
            }
        }
        // State first, then output: if the state says exited, the buffer was already sealed.
        let exit = proc.state.lock().exit.clone();
        let rendered = proc.buffer.render_from(query.cursor.unwrap_or(0));
        Ok(Output {
            output: rendered.output,
            truncated: rendered.truncated,
            next_cursor: rendered.next_cursor,
            running: exit.is_none(),
            exit,
        })
    }

    /// Sends a signal to the process's whole group; with `grace`, SIGKILL follows that much
    /// later if the process still runs (ignored for [`Signal::Kill`]).
    pub fn signal(
        &self,
        id: &ProcessId,
        chat: Option<Uuid>,
        signal: Signal,
        grace: Option<Duration>,
    ) -> Result<(), Error> {
        let proc = self.find(id, chat)?;
        let state = proc.state.lock();
        if state.exit.is_some() {
            return Err(Error::NotRunning(*id));
        }
        let sent = Proc::signal_group(&state, proc.pid, signal.number());
        drop(state);
        match sent {
            Ok(_) => {
                log::info!("{}: sent {}", proc_label(&proc), signal.name());
            }
            Err(e) => {
                log::warn!(
                    "{}: sending {} failed: {e}",
                    proc_label(&proc),
                    signal.name()
                );
                return Err(Error::Signal(e));
            }
        }
        if let Some(grace) = grace.filter(|_| signal != Signal::Kill)
            && let Some(at) = Instant::now().checked_add(grace)
        {
            let _ = self.shared.jobs.send(Job::Escalate(Arc::clone(&proc), at));
            self.shared.wake.wake();
        }
        Ok(())
    }

    /// Processes started and not yet marked exited.
    pub fn running(&self) -> usize {
        self.shared.running.load(Ordering::SeqCst)
    }

    /// Stops everything: new starts fail, every group that may still have members gets
    /// SIGTERM, then SIGKILL after the kill grace; every waiter wakes; every thread is joined;
    /// no zombie is left. Returns once done. Idempotent and safe to call from several threads.
    ///
    /// Called from the on-exit hook (which runs on the supervisor thread), it starts the close
    /// and returns at once: the supervisor cannot wait for itself.
    pub fn close(&self) {
        let on_supervisor =
            self.shared.supervisor_thread.get() == Some(&std::thread::current().id());
        let first = !self.shared.closing.swap(true, Ordering::SeqCst);
        if on_supervisor {
            if first {
                let (tx, _rx) = crossbeam_channel::bounded(1);
                let _ = self.shared.jobs.send(Job::Close(tx));
                self.shared.wake.wake();
            }
            return;
        }
        if first {
            let (tx, rx) = crossbeam_channel::bounded(1);
            if self.shared.jobs.send(Job::Close(tx)).is_ok() {
                self.shared.wake.wake();
                let _ = rx.recv();
            }
            let handle = self.supervisor.lock().take();
            if let Some(handle) = handle {
                let _ = handle.join();
            }
            *self.shared.closed.lock() = true;
            self.shared.closed_cv.notify_all();
        } else {
            let mut closed = self.shared.closed.lock();
            while !*closed {
                self.shared.closed_cv.wait(&mut closed);
            }
        }
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        self.close();
    }
}

/// Why a spawn failed, and so who owns the running slot: before the child exists the caller
/// releases it; after, the child holds it until it is marked exited.
enum Failure {
    Unspawned(Error),
    Spawned(Error),
}

/// What `prepare` resolved.
struct Prepared {
    /// `PATH` of the child's environment, for looking up an argv program.
    path_var: Option<OsString>,
    argv: Vec<Vec<u8>>,
    envp: Arc<Vec<CString>>,
    workdir: PathBuf,
    display: String,
}

/// A process started without a chat may be read and signalled under any chat.
fn visible_for_access(proc: &Proc, chat: Option<Uuid>) -> bool {
    chat.is_none() || proc.chat.is_none() || proc.chat == chat
}

fn check_nul(field: &str, value: &str) -> Result<(), Error> {
    if value.contains('\0') {
        return Err(Error::NulByte {
            field: field.to_string(),
        });
    }
    Ok(())
}

/// Finds a program the way `execvp` would, but in the parent, before the spawn: a name with a
/// slash is used as it is; otherwise the first executable file of that name in the child's
/// `PATH` (or the default search path when it has none).
fn resolve_program(name: &str, path: Option<&OsString>) -> io::Result<PathBuf> {
    if name.contains('/') {
        return Ok(PathBuf::from(name));
    }
    let path = path
        .cloned()
        .unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    for dir in std::env::split_paths(&path) {
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        let candidate = dir.join(name);
        if let Ok(meta) = std::fs::metadata(&candidate)
            && meta.is_file()
            && meta.permissions().mode() & 0o111 != 0
        {
            return Ok(candidate);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!("program \"{name}\" not found in PATH"),
    ))
}

/// `KEY=VALUE` C strings of an environment, leaving out what no program can receive (a name
/// that is empty or has `=`, a NUL anywhere: requests are checked before this; the base
/// environment and the hook's result are filtered here).
fn envp_of(env: &BTreeMap<OsString, OsString>) -> Vec<CString> {
    env.iter()
        .filter(|(k, _)| !k.is_empty() && !k.as_bytes().contains(&b'='))
        .filter_map(|(k, v)| {
            let mut entry = k.as_bytes().to_vec();
            entry.push(b'=');
            entry.extend_from_slice(v.as_bytes());
            CString::new(entry).ok()
        })
        .collect()
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(365 * 24 * 3600)
}

fn chat_suffix(chat: Option<Uuid>) -> String {
    chat.map(|c| format!(" chat={c}")).unwrap_or_default()
}

fn cmd_label(cmd: &Command) -> String {
    match (&cmd.shell, &cmd.argv) {
        (Some(shell), _) => shell.clone(),
        (_, Some(argv)) => process::shell_join(argv),
        _ => String::new(),
    }
}
