//! [`Manager`]: the registry of processes and the blocking API over it.
//!
//! Its rooms: `builder.rs` (every bound and the builder), `prepare.rs` (what a start checks and
//! resolves before the spawn), `table.rs` (the state shared with the supervisor and the readers,
//! where exits are recorded). This file is the public API: start, list, info, output, signal,
//! close, and the scope rule.

use std::ffi::CString;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant, SystemTime};

use parking_lot::{Condvar, Mutex};
use uuid::Uuid;

use crate::command::Tracking;
use crate::command::{Command, Signal};
use crate::error::Error;
use crate::id::ProcessId;
use crate::info::{
    Cancelled, InputQueued, LogChunk, LogSearch, Output, OutputQuery, ProcessInfo, Started,
    TerminalSize, TrackedOutput, WaitAny,
};
use crate::input::{Input, InputKind, Refused};
use crate::interrupt::Interrupt;
use crate::log::LogRefusal;
use crate::metrics::Metrics;
use crate::pattern::Pattern;
use crate::pool::{PoolConfig, ReaderPool};
use crate::process::{self, Proc, ProcSpec};
use crate::reaper;
use crate::sys;
use crate::time::deadline_in;

mod builder;
mod contain;
mod orphans;
mod prepare;
mod receipts;
pub(crate) mod table;

pub(crate) use builder::Config;
pub use builder::{
    CHAT_ID_ENV, DEFAULT_FLOOD_PIPE_BYTES, DEFAULT_KILL_GRACE, DEFAULT_LIST_LIMIT,
    DEFAULT_MAX_EXITED, DEFAULT_MAX_PENDING_INPUT, DEFAULT_MAX_RUNNING, DEFAULT_MAX_TRACKED,
    DEFAULT_MAX_WAIT, DEFAULT_PIPE_GRACE, DEFAULT_READER_IDLE, DEFAULT_RETENTION, DEFAULT_SHELL,
    DEFAULT_TERMINAL_TERM, DEFAULT_THREAD_STACK_BYTES, ManagerBuilder,
};
pub use builder::{CgroupMode, DEFAULT_CHILD_OOM_SCORE_ADJ};
use contain::Containment;
pub use contain::{AUTO_CGROUP_NAME, CGROUP_EMPTY_WAIT, SERVER_LEAF_NAME};
use prepare::{Prepared, chat_suffix, cmd_label};
use receipts::{Claim, Found};
use table::{Job, Shared, SpawnJob};

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
    /// The supervisor thread, so that a close called from it (the exit hook) does not wait on
    /// itself.
    supervisor_thread: ThreadId,
    /// The base environment as `KEY=VALUE` C strings, for starts that change nothing in it.
    base_envp: Arc<Vec<CString>>,
    /// `/dev/null`, opened once: every child's stdin.
    dev_null: Arc<OwnedFd>,
    closed: Mutex<bool>,
    closed_cv: Condvar,
    /// What setting up containment and the subreaper found worth telling (see
    /// [`Manager::startup_notes`]).
    notes: Vec<String>,
    /// Every child's `oom_score_adj`, when it is to differ from ours.
    child_oom_score_adj: Option<i32>,
    /// Every child's nice value, when it is to differ from ours.
    child_nice: Option<i32>,
    /// This manager's random id, which tracked starts must name (coder's agent instance).
    instance_id: Uuid,
}

impl fmt::Debug for Manager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Manager")
            .field("running", &self.shared.running.load(Ordering::Relaxed))
            .field("closing", &self.shared.is_closing())
            .field("reader_threads", &self.shared.readers.threads())
            .finish_non_exhaustive()
    }
}

/// The entries of a list, made one at a time (see [`Manager::listing`]).
pub struct Listing {
    procs: std::vec::IntoIter<Arc<Proc>>,
}

impl fmt::Debug for Listing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listing")
            .field("left", &self.procs.len())
            .finish()
    }
}

impl Iterator for Listing {
    type Item = ProcessInfo;

    fn next(&mut self) -> Option<ProcessInfo> {
        self.procs.next().map(|p| p.info())
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.procs.size_hint()
    }
}

impl ExactSizeIterator for Listing {}

/// Why a spawn failed, and so who owns the running slot: before the child exists the caller
/// releases it; after, the child holds it until it is marked exited.
enum Failure {
    Unspawned(Error),
    Spawned(Error),
}

/// What a start answers for the process `proc`.
fn started_of(proc: &Proc) -> Started {
    Started {
        id: proc.id,
        pid: proc.pid,
        workdir: proc.workdir.clone(),
    }
}

/// The instant of a wall-clock deadline: now if it has passed, never if it is too far ahead.
fn instant_of(deadline: SystemTime) -> std::time::Instant {
    deadline_in(
        deadline
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// A child's stdin and output as [`Manager::child_io`] makes them.
struct ChildIo {
    /// The child's fds 1 and 2 (a pipe's write end, or the terminal's slave side).
    output: OwnedFd,
    /// The child's fd 0.
    stdin: Arc<OwnedFd>,
    /// What the watcher reads the output from.
    read_end: OwnedFd,
    /// Whether `output` is a terminal the child takes as its controlling terminal.
    terminal: bool,
    /// The input the manager writes, if any.
    input: Option<Input>,
}

/// Whether a process of `owner` may be read and signalled by a caller acting for `caller`: a
/// process started without a chat by anyone, a chat's process by that chat and by callers
/// without a chat.
fn visible_for_access(owner: Option<Uuid>, caller: Option<Uuid>) -> bool {
    caller.is_none() || owner.is_none() || owner == caller
}

/// Whether a process of `owner` is listed to a caller acting for `caller`: a caller with a
/// chat lists that chat's processes only.
fn visible_in_list(owner: Option<Uuid>, caller: Option<Uuid>) -> bool {
    caller.is_none() || owner == caller
}

impl ManagerBuilder {
    /// Starts the supervisor thread and returns the manager. (Defined here, beside the
    /// manager it makes, so that the builder's room knows nothing of the manager.)
    ///
    /// # Errors
    ///
    /// When the supervisor thread or its wake-up descriptors cannot be created (out of threads
    /// or file descriptors).
    pub fn build(self) -> io::Result<Manager> {
        Manager::from_config(self.into_config())
    }
}

impl Manager {
    /// A manager with every default.
    ///
    /// # Errors
    ///
    /// As [`ManagerBuilder::build`].
    pub fn new() -> io::Result<Manager> {
        Manager::builder().build()
    }

    /// A builder to configure one.
    pub fn builder() -> ManagerBuilder {
        ManagerBuilder::default()
    }

    fn from_config(config: Config) -> io::Result<Manager> {
        let (jobs_tx, jobs_rx) = crossbeam_channel::unbounded();
        let base_envp = Arc::new(prepare::envp_of(&config.base_env));
        let wake = Arc::new(sys::Waker::new()?);
        let pool_config = PoolConfig {
            stack_bytes: config.thread_stack_bytes,
            idle: config.reader_idle,
        };
        let (retired_tx, retired_wake) = (jobs_tx.clone(), Arc::clone(&wake));
        let readers = ReaderPool::new(
            pool_config,
            Box::new(move |id| {
                let _ = retired_tx.send(Job::ReaderRetired(id));
                retired_wake.wake();
            }),
        );
        let setup = Containment::setup(&config.cgroup);
        let mut notes = setup.notes;
        let subreaper = config.subreaper;
        let child_nice = config.child_nice;
        let child_oom_score_adj = match config.child_oom_score_adj {
            0 => None,
            delta => sys::contain::own_oom_score_adj()
                .map(|own| own.saturating_add(delta).clamp(-1000, 1000)),
        };
        let shared = Arc::new(Shared::new(
            config,
            jobs_tx,
            wake,
            readers,
            setup.containment,
        )?);
        if subreaper {
            match sys::contain::set_child_subreaper() {
                Ok(()) => {
                    let managed = Arc::clone(&shared.managed);
                    let weak = Arc::downgrade(&shared);
                    // A close without cgroups waits for adopted descendants too: tell it.
                    let reaped_one = move || {
                        if let Some(shared) = weak.upgrade()
                            && shared.is_closing()
                        {
                            shared.wake.wake();
                        }
                    };
                    std::thread::Builder::new()
                        .name("procwarden-orphans".into())
                        .stack_size(shared.config.thread_stack_bytes)
                        .spawn(move || orphans::run(&managed, &reaped_one))?;
                }
                Err(e) => notes.push(format!(
                    "not a child subreaper ({e}): orphaned descendants go to PID 1"
                )),
            }
        }
        for note in &notes {
            log::debug!("{note}");
        }
        let dev_null = Arc::new(sys::open_dev_null()?);
        let for_supervisor = Arc::clone(&shared);
        let supervisor = std::thread::Builder::new()
            .name("procwarden-supervisor".into())
            .spawn(move || reaper::run(for_supervisor, jobs_rx))?;
        Ok(Manager {
            shared,
            supervisor_thread: supervisor.thread().id(),
            supervisor: Mutex::new(Some(supervisor)),
            base_envp,
            dev_null,
            closed: Mutex::new(false),
            closed_cv: Condvar::new(),
            notes,
            child_oom_score_adj,
            child_nice,
            instance_id: Uuid::new_v4(),
        })
    }

    /// Starts a process: checks the command, resolves the working directory and environment,
    /// spawns the child in its own process group with its output in one pipe, and returns once
    /// it has exec'd.
    ///
    /// # Errors
    ///
    /// In the wire contract's order: the command's own problems ([`Error::CommandRequired`]
    /// and the other 400s), then [`Error::TooManyRunning`], then [`Error::ShuttingDown`], then
    /// [`Error::Spawn`] when the system could not create it.
    pub fn start(&self, mut cmd: Command) -> Result<Started, Error> {
        let claim = match &cmd.tracking {
            Some(_) => Some(self.tracked_claim(&mut cmd)?),
            None => None,
        };
        if let Some(claim) = &claim
            && let Found::Existing(proc) = self.check_claim(claim, false)?
        {
            return Ok(started_of(&proc));
        }
        let prepared = prepare::prepare(&self.shared.config, &self.base_envp, &cmd)?;
        self.check_limits(&cmd)?;
        let limit = self.shared.config.max_running;
        if self.shared.running.fetch_add(1, Ordering::SeqCst) >= limit {
            self.release_slot();
            return Err(Error::TooManyRunning { limit });
        }
        if self.shared.is_closing() {
            self.release_slot();
            return Err(Error::ShuttingDown);
        }
        // The last check and the reservation are one step under the receipts' lock, so a
        // fence or a concurrent replay of the same identity sees either nothing or this start.
        if let Some(claim) = &claim {
            match self.check_claim(claim, true) {
                Ok(Found::New) => {}
                Ok(Found::Existing(proc)) => {
                    self.release_slot();
                    return Ok(started_of(&proc));
                }
                Err(e) => {
                    self.release_slot();
                    return Err(e);
                }
            }
        }
        let result = match self.spawn(cmd, prepared) {
            Ok(started) => Ok(started),
            Err(Failure::Unspawned(e)) => {
                self.release_slot();
                Err(e)
            }
            // The child exists and owns its slot until it is marked exited.
            Err(Failure::Spawned(e)) => Err(e),
        };
        if let Some(claim) = &claim {
            self.shared
                .receipts
                .finish(&claim.id, result.as_ref().err());
        }
        result
    }

    /// The receipt claim of a tracked start, after the checks that come before it on the
    /// wire (a command is required; the process id must not be nil).
    fn tracked_claim(&self, cmd: &mut Command) -> Result<Claim, Error> {
        if cmd.shell.is_none() && cmd.argv.is_none() {
            return Err(Error::CommandRequired);
        }
        let own = cmd.fingerprint();
        let Some(tracking) = &cmd.tracking else {
            return Err(Error::TrackedInvalid);
        };
        if tracking.process_id.is_nil() {
            return Err(Error::TrackedInvalid);
        }
        let digest = tracking.input_digest.clone().unwrap_or_else(|| {
            own.iter().fold(String::with_capacity(64), |mut hex, b| {
                use std::fmt::Write as _;
                let _ = write!(hex, "{b:02x}");
                hex
            })
        });
        Ok(Claim {
            id: ProcessId::from(tracking.process_id),
            digest: Some(digest),
            chat: cmd.chat,
            deadline: tracking.deadline,
            own: Some(own),
        })
    }

    fn check_claim(&self, claim: &Claim, reserve: bool) -> Result<Found, Error> {
        self.shared
            .receipts
            .check_start(claim, reserve, |id| self.shared.get(id))
    }

    /// Every limit asked for must have its controller in the process's cgroup.
    fn check_limits(&self, cmd: &Command) -> Result<(), Error> {
        let limits = &cmd.limits;
        let asked = [
            ("memory_bytes", limits.memory_bytes.is_some(), "memory"),
            ("pids", limits.pids.is_some(), "pids"),
            ("cpu_percent", limits.cpu_percent.is_some(), "cpu"),
        ];
        for (limit, set, controller) in asked {
            let available = self
                .shared
                .containment
                .as_ref()
                .is_some_and(|c| c.has_controller(controller));
            if set && !available {
                return Err(Error::LimitUnavailable { limit });
            }
        }
        Ok(())
    }

    fn release_slot(&self) {
        self.shared.running.fetch_sub(1, Ordering::SeqCst);
        // A close may be waiting for the count to reach zero.
        self.shared.wake.wake();
    }

    fn spawn(&self, cmd: Command, prepared: Prepared) -> Result<Started, Failure> {
        let config = &self.shared.config;
        let unspawned = |e: io::Error| Failure::Unspawned(Error::Spawn(e));
        let to_cstring = |bytes: Vec<u8>| {
            CString::new(bytes)
                .map_err(|e| unspawned(io::Error::new(io::ErrorKind::InvalidInput, e)))
        };
        // The argv program as the caller named it (`None` for a shell command).
        let named = cmd.argv.as_ref().and_then(|a| a.first()).cloned();
        let program = match &named {
            None => config.shell.clone(),
            Some(name) => {
                prepare::resolve_program(name, prepared.path_var.as_ref()).map_err(|source| {
                    Failure::Unspawned(Error::ProgramNotFound {
                        program: name.clone(),
                        source,
                    })
                })?
            }
        };
        // A tracked start names its id; the cgroup (made before the spawn) and the log are
        // named for it.
        let id = cmd
            .tracking
            .as_ref()
            .map_or_else(ProcessId::new_random, |t| ProcessId::from(t.process_id));
        let cgroup = match &self.shared.containment {
            Some(containment) => Some(Arc::new(
                containment
                    .create(
                        &id,
                        sys::contain::CgroupLimits {
                            memory_bytes: cmd.limits.memory_bytes,
                            pids: cmd.limits.pids,
                            cpu_percent: cmd.limits.cpu_percent,
                        },
                    )
                    .map_err(unspawned)?,
            )),
            None => None,
        };
        let io = self.child_io(&cmd).map_err(unspawned)?;
        let spec = sys::SpawnSpec {
            path: to_cstring(program.into_os_string().into_vec())?,
            argv: prepared
                .argv
                .into_iter()
                .map(to_cstring)
                .collect::<Result<_, _>>()?,
            envp: prepared.envp,
            cwd: to_cstring(prepared.workdir.clone().into_os_string().into_vec())?,
            output: io.output,
            stdin: Some(io.stdin),
            // With cgroups the keeper kills every member should this process die, so the
            // child needs no parent-death signal, and then it can be spawned on any thread
            // (the signal fires when the spawning *thread* ends). Without, the supervisor, a
            // thread as long-lived as the manager, spawns it with SIGKILL as that signal.
            parent_death_signal: if self.shared.containment.is_some() {
                None
            } else {
                Some(libc::SIGKILL)
            },
            method: config.spawn_method,
            cgroup: cgroup.clone(),
            oom_score_adj: self.child_oom_score_adj,
            nice: self.child_nice,
            terminal: io.terminal,
        };
        let read_end = io.read_end;
        let chat = cmd.chat;
        let workdir = prepared.workdir.clone();
        let tracking = cmd.tracking.as_ref();
        let log = if cmd.log {
            let log = self.shared.logs.create(id).map_err(|refusal| {
                Failure::Unspawned(match refusal {
                    LogRefusal::Full => Error::LogSpaceFull,
                    LogRefusal::Unusable(e) => Error::LogUnavailable(e),
                })
            })?;
            Some(log)
        } else {
            None
        };
        let proc = ProcSpec {
            id,
            log,
            tracked: tracking.is_some(),
            chat,
            command: prepared.display,
            workdir: prepared.workdir,
            background: cmd.background,
            buffer: config.buffer,
            pipe_grace: config.pipe_grace,
            flood_pipe_bytes: config.flood_pipe_bytes,
            cgroup,
            input: io.input,
        };
        let timeout = cmd.timeout;
        let deadline = tracking.and_then(|t| t.deadline).map(instant_of);
        let handed = Instant::now();
        let spawned = if spec.parent_death_signal.is_none() {
            // Spawned here, on the caller's thread: the answer goes out as soon as the child
            // has exec'd, without a hand-off to the supervisor and back (two wake-ups, each
            // of which can wait for an idle CPU to wake, or behind the child on a busy one).
            // The gate keeps a close from sweeping the table while this spawn is between its
            // check and its insert.
            let gate = self.shared.spawn_gate.read();
            if self.shared.is_closing() {
                return Err(Failure::Unspawned(Error::ShuttingDown));
            }
            let spawned = reaper::spawn_child(&self.shared, spec, proc);
            drop(gate);
            if let Ok(proc) = &spawned
                && (timeout.is_some() || deadline.is_some() || proc.state.lock().pidfd.is_none())
            {
                self.shared.send(Job::Supervise {
                    proc: Arc::clone(proc),
                    timeout,
                    deadline,
                });
            }
            spawned
        } else {
            let (reply_tx, reply_rx) = crossbeam_channel::bounded(1);
            let job = Job::Spawn(Box::new(SpawnJob {
                spec,
                proc,
                timeout,
                deadline,
                reply: reply_tx,
            }));
            if !self.shared.send(job) {
                return Err(Failure::Unspawned(Error::ShuttingDown));
            }
            match reply_rx.recv() {
                Ok(spawned) => spawned,
                Err(_) => return Err(Failure::Unspawned(Error::ShuttingDown)),
            }
        };
        let proc = match spawned {
            Ok(proc) => {
                self.shared.config.metrics.process_started(handed.elapsed());
                proc
            }
            Err(e) if self.shared.is_closing() => {
                log::debug!("start refused while closing: {}", e.error);
                return Err(Failure::Unspawned(Error::ShuttingDown));
            }
            Err(e) => {
                log::warn!(
                    "failed to start {:?}: {}{}",
                    crate::command::log_excerpt(&cmd_label(&cmd)),
                    e.error,
                    chat_suffix(chat)
                );
                let error = prepare::spawn_error(e, named, &workdir);
                return Err(Failure::Unspawned(error));
            }
        };
        self.start_reader(&proc, read_end)
            .map_err(Failure::Spawned)?;
        Ok(started_of(&proc))
    }

    /// The child's stdin and output, and what the manager keeps of them: `/dev/null` and one
    /// output pipe; a stdin pipe besides (its write end for the input); or a new terminal (its
    /// master read for the output and written for the input).
    fn child_io(&self, cmd: &Command) -> io::Result<ChildIo> {
        let max_pending = self.shared.config.max_pending_input;
        if let Some(size) = cmd.tty {
            let pty = sys::open_pty(size.rows, size.cols)?;
            let read_end = pty.master.try_clone()?;
            let stdin = Arc::new(pty.slave.try_clone()?);
            let input = Input::new(InputKind::Terminal, pty.master, Some(size), max_pending)?;
            return Ok(ChildIo {
                output: pty.slave,
                stdin,
                read_end,
                terminal: true,
                input: Some(input),
            });
        }
        let (read_end, write_end) = sys::pipe_cloexec()?;
        let (stdin, input) = if cmd.stdin_pipe {
            let (stdin_read, stdin_write) = sys::pipe_cloexec()?;
            let input = Input::new(InputKind::Pipe, stdin_write, None, max_pending)?;
            (Arc::new(stdin_read), Some(input))
        } else {
            (Arc::clone(&self.dev_null), None)
        };
        Ok(ChildIo {
            output: write_end,
            stdin,
            read_end,
            terminal: false,
            input,
        })
    }

    fn start_reader(&self, proc: &Arc<Proc>, pipe: OwnedFd) -> Result<(), Error> {
        let pidfd = proc.state.lock().pidfd.clone();
        let shared = Arc::clone(&self.shared);
        let watched = Arc::clone(proc);
        let task = Box::new(move || {
            let stop = shared.stop_readers.fd();
            let null = shared.null_sink.as_ref().map(AsFd::as_fd);
            process::watch_guarded(&watched, pipe, pidfd, stop, null, &*shared);
        });
        if let Err(e) = self.shared.readers.dispatch(task) {
            // Without a reader nobody drains the pipe (now closed) or watches the exit: stop
            // the process, let the supervisor reap it, and report the failure.
            let mut state = proc.state.lock();
            state.pipe_open = false;
            let _ = proc.signal_locked(&state, libc::SIGKILL);
            drop(state);
            self.shared.send(Job::Watch(Arc::clone(proc)));
            return Err(Error::Spawn(e));
        }
        Ok(())
    }

    /// Finds a process visible to `chat` for reading or signalling.
    fn find(&self, id: &ProcessId, chat: Option<Uuid>) -> Result<Arc<Proc>, Error> {
        match self.shared.get(id) {
            Some(proc) if visible_for_access(proc.chat, chat) => Ok(proc),
            _ => Err(Error::NotFound(*id)),
        }
    }

    /// The processes visible to `chat` in list order (running first, then newest start first),
    /// at most `limit` of them.
    #[must_use]
    pub fn list(&self, chat: Option<Uuid>, limit: usize) -> Vec<ProcessInfo> {
        self.listing(chat, limit).collect()
    }

    /// As [`list`](Self::list), but each entry is made only when the iterator reaches it, so
    /// a large list (long commands) is never in memory whole: a server writes each entry as
    /// it goes. The order and the membership are fixed when this is called; a process
    /// forgotten meanwhile is still listed as it is now.
    #[must_use]
    pub fn listing(&self, chat: Option<Uuid>, limit: usize) -> Listing {
        let mut rows: Vec<(bool, u64, Arc<Proc>)> = self
            .shared
            .all()
            .into_iter()
            .filter(|p| visible_in_list(p.chat, chat))
            .map(|p| {
                let running = p.state.lock().exit.is_none();
                (running, p.seq, p)
            })
            .collect();
        rows.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
        rows.truncate(limit);
        Listing {
            procs: rows
                .into_iter()
                .map(|(_, _, p)| p)
                .collect::<Vec<_>>()
                .into_iter(),
        }
    }

    /// One process, if visible to `chat`.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when there is no such process for this caller.
    pub fn info(&self, id: &ProcessId, chat: Option<Uuid>) -> Result<ProcessInfo, Error> {
        Ok(self.find(id, chat)?.info())
    }

    /// Reads a process's output: a snapshot, or after waiting for exit, or (with a cursor)
    /// after waiting for output past the cursor; each wait bounded by the query's wait and the
    /// manager's wait limit. When the answer says `running: false`, its output is final.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when there is no such process for this caller.
    pub fn output(
        &self,
        id: &ProcessId,
        chat: Option<Uuid>,
        query: OutputQuery,
    ) -> Result<Output, Error> {
        let pattern = self.query_pattern(&query)?;
        let proc = self.find(id, chat)?;
        Ok(self.output_of(&proc, &query, pattern.as_ref()))
    }

    /// The query's pattern, compiled.
    fn query_pattern(&self, query: &OutputQuery) -> Result<Option<Arc<Pattern>>, Error> {
        match query.pattern() {
            Some(text) => Ok(Some(Arc::new(self.pattern(text)?))),
            None => Ok(None),
        }
    }

    fn output_of(
        &self,
        proc: &Arc<Proc>,
        query: &OutputQuery,
        pattern: Option<&Arc<Pattern>>,
    ) -> Output {
        let mut line_match = None;
        if let Some(wait) = query.wait() {
            let deadline = deadline_in(wait.min(self.shared.config.max_wait));
            let interrupt = query.interrupt().cloned();
            let _woken_by = interrupt.as_ref().map(|i| {
                let waiting = Arc::clone(proc);
                i.on_interrupt(move || waiting.wake_waiters())
            });
            let stop = || interrupt.as_ref().is_some_and(Interrupt::is_interrupted);
            match (pattern, query.cursor()) {
                (Some(pattern), cursor) => {
                    line_match = proc.buffer.wait_for_line_unless(
                        pattern,
                        cursor.unwrap_or(0),
                        deadline,
                        stop,
                    );
                    if proc.buffer.is_closed() {
                        proc.wait_exit(deadline, stop);
                    }
                }
                (None, Some(cursor)) => {
                    proc.buffer.wait_for_output_unless(cursor, deadline, stop);
                    // The buffer is sealed just before the process is marked exited: if it is
                    // sealed, the exit is a moment away.
                    if proc.buffer.is_closed() {
                        proc.wait_exit(deadline, stop);
                    }
                }
                (None, None) => {
                    proc.wait_exit(deadline, stop);
                }
            }
        } else if let Some(pattern) = pattern {
            line_match = proc.buffer.find_line(pattern, query.cursor().unwrap_or(0));
        }
        // State first, then output: if the state says exited, the buffer was already sealed.
        let exit = proc.state.lock().exit.clone();
        if line_match.is_none()
            && exit.is_some()
            && let Some(pattern) = pattern
        {
            // The wait ended at the exit: the last line without a line end now counts.
            line_match = proc.buffer.find_line(pattern, query.cursor().unwrap_or(0));
        }
        let cursor = query.cursor().unwrap_or(0);
        let rendered = if query.is_plain() {
            proc.buffer.render_plain_from(cursor)
        } else {
            proc.buffer.render_from(cursor)
        };
        let log = proc.log.as_ref().map(|log| log.state());
        Output {
            log_truncated: log.as_ref().is_some_and(|l| l.truncated),
            log_error: log.and_then(|l| l.error),
            matched: pattern.map(|_| line_match.is_some()),
            line_match,
            output: rendered.output,
            truncated: rendered.truncated,
            next_cursor: rendered.next_cursor,
            running: exit.is_none(),
            exit,
            command: proc.command.clone(),
            stdin_open: proc.input.as_ref().map(Input::is_open),
            tty: proc.input.as_ref().and_then(Input::size),
            input_dropped_bytes: proc.input.as_ref().map_or(0, Input::dropped),
        }
    }

    /// Reads stream bytes `[offset, offset + limit)` of a process's full log (`limit` at most
    /// [`MAX_LOG_READ_BYTES`](crate::MAX_LOG_READ_BYTES)) as text: a character cut by either
    /// end is left out, never replaced; while the process runs, an incomplete character at the
    /// end of the file waits for its rest. An offset past the end reads nothing from the end.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`], [`Error::NoLog`] for a process started without a log,
    /// [`Error::LogRead`] when reading the file failed.
    pub fn log_read(
        &self,
        id: &ProcessId,
        chat: Option<Uuid>,
        offset: u64,
        limit: u64,
    ) -> Result<LogChunk, Error> {
        let proc = self.find(id, chat)?;
        let log = proc.log.as_ref().ok_or(Error::NoLog(*id))?;
        log.read(offset, limit.min(crate::log::MAX_LOG_READ_BYTES))
            .map_err(Error::LogRead)
    }

    /// The first `limit` lines of a process's full log that match `pattern` (lines as an
    /// output wait sees them: split on `\n`, matched as lossy UTF-8 on their first 2048 bytes,
    /// shown cut as the output rules cut long lines), with 1-based line numbers, and whether
    /// more matched. A last line without `\n` counts once the process has exited.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPattern`], [`Error::NotFound`], [`Error::NoLog`], [`Error::LogRead`].
    pub fn log_search(
        &self,
        id: &ProcessId,
        chat: Option<Uuid>,
        pattern: &str,
        limit: usize,
    ) -> Result<LogSearch, Error> {
        let pattern = self.pattern(pattern)?;
        let proc = self.find(id, chat)?;
        let log = proc.log.as_ref().ok_or(Error::NoLog(*id))?;
        log.search(&pattern, limit, self.shared.config.buffer.max_line_bytes)
            .map_err(Error::LogRead)
    }

    /// The directory full logs are written to.
    #[must_use]
    pub fn log_dir(&self) -> &std::path::Path {
        self.shared.logs.dir()
    }

    /// Compiles a pattern as an output wait would: the `regex` crate's syntax, at most the
    /// configured number of bytes ([`ManagerBuilder::max_pattern_bytes`]).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPattern`] for a pattern that is too long or does not compile.
    pub fn pattern(&self, text: &str) -> Result<Pattern, Error> {
        Pattern::new(text, self.shared.config.max_pattern_bytes).map_err(Error::InvalidPattern)
    }

    /// Waits until any of `ids` is no longer running, or `wait` (at most the manager's wait
    /// limit) passes, or `interrupt` ends the wait; returns every id in exactly one of the two
    /// lists, in the order given. It sleeps on the manager's exit notifications: no polling.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] for the first id that names no process this caller may see.
    pub fn wait_any(
        &self,
        ids: &[ProcessId],
        chat: Option<Uuid>,
        wait: Duration,
        interrupt: Option<&Interrupt>,
    ) -> Result<WaitAny, Error> {
        let procs = ids
            .iter()
            .map(|id| self.find(id, chat))
            .collect::<Result<Vec<_>, _>>()?;
        let deadline = deadline_in(wait.min(self.shared.config.max_wait));
        let _woken_by = interrupt.map(|i| {
            let shared = Arc::clone(&self.shared);
            i.on_interrupt(move || shared.wake_exit_waiters())
        });
        let stopped = || interrupt.is_some_and(Interrupt::is_interrupted);
        loop {
            // The count first, then the states: an exit after this look changes the count.
            let seen = *self.shared.exits.lock();
            let any = procs.iter().any(|p| p.state.lock().exit.is_some());
            if any || stopped() || self.shared.is_closing() {
                break;
            }
            let mut exits = self.shared.exits.lock();
            while *exits == seen {
                if self
                    .shared
                    .exit_cv
                    .wait_until(&mut exits, deadline)
                    .timed_out()
                {
                    break;
                }
            }
            if std::time::Instant::now() >= deadline {
                break;
            }
        }
        let mut answer = WaitAny {
            exited: Vec::new(),
            running: Vec::new(),
        };
        for proc in procs {
            let info = proc.info();
            if info.running {
                answer.running.push(proc.id);
            } else {
                answer.exited.push(info);
            }
        }
        Ok(answer)
    }

    /// This manager's agent instance id: random, chosen when it was built. Tracked starts
    /// made through the wire must name it (coder's `agent_instance_id`).
    #[must_use]
    pub fn instance_id(&self) -> Uuid {
        self.instance_id
    }

    /// How many tracked identities this manager knows (started, failed or fenced); at most
    /// [`ManagerBuilder::max_tracked`].
    #[must_use]
    pub fn tracked_identities(&self) -> usize {
        self.shared.receipts.len()
    }

    /// Cancels a tracked start, for `chat`: an identity never seen is fenced (a start with it
    /// that arrives later is refused with [`Error::TrackedConflict`]); a known process gets
    /// SIGKILL to its whole group and is waited for up to `wait` (at most the manager's wait
    /// limit; `interrupt` ends the wait early). `tracking` must match the start's: its
    /// deadline, and its digest if it has one.
    ///
    /// # Errors
    ///
    /// [`Error::TrackedInvalid`] for a nil process id; [`Error::TrackedConflict`] when the
    /// manager is closing or the identity was used differently (or names an untracked
    /// process); [`Error::TrackedCapacity`] when no more identities can be kept.
    pub fn cancel_tracked(
        &self,
        tracking: &Tracking,
        chat: Option<Uuid>,
        wait: Duration,
        interrupt: Option<&Interrupt>,
    ) -> Result<Cancelled, Error> {
        if tracking.process_id.is_nil() {
            return Err(Error::TrackedInvalid);
        }
        let claim = Claim {
            id: ProcessId::from(tracking.process_id),
            digest: tracking.input_digest.clone(),
            chat,
            deadline: tracking.deadline,
            own: None,
        };
        let found = self
            .shared
            .receipts
            .fence_or_find(&claim, self.shared.is_closing(), |id| self.shared.get(id))?;
        let Some(proc) = found.proc else {
            return Ok(Cancelled {
                fenced: found.fenced,
                process: found.terminal,
            });
        };
        proc.kill_if_alive();
        if !wait.is_zero() {
            let deadline = deadline_in(wait.min(self.shared.config.max_wait));
            let _woken_by = interrupt.map(|i| {
                let waiting = Arc::clone(&proc);
                i.on_interrupt(move || waiting.wake_waiters())
            });
            proc.wait_exit(deadline, || {
                interrupt.is_some_and(Interrupt::is_interrupted)
            });
        }
        Ok(Cancelled {
            fenced: found.fenced,
            process: Some(proc.info()),
        })
    }

    /// Reads a tracked process's output as coder's `output-tracked` does: while its record
    /// exists, as [`output`](Self::output) (but only for exactly the chat it was started
    /// for); once forgotten, the final state its receipt kept, when `digest` is the start's.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] for an id this chat did not start (or never seen, or without a kept
    /// final state); [`Error::TrackedConflict`] when `digest` is given and is not the start's.
    pub fn output_tracked(
        &self,
        id: &ProcessId,
        chat: Option<Uuid>,
        digest: Option<&str>,
        query: OutputQuery,
    ) -> Result<TrackedOutput, Error> {
        let known = self.shared.receipts.known(id);
        let proc = self.shared.get(id);
        if known.as_ref().is_some_and(|k| k.chat != chat)
            || proc.as_ref().is_some_and(|p| p.chat != chat)
        {
            return Err(Error::NotFound(*id));
        }
        let digest = digest.filter(|d| !d.is_empty());
        if let (Some(known), Some(digest)) = (&known, digest)
            && known.digest != digest
        {
            return Err(Error::TrackedConflict);
        }
        if let Some(proc) = proc {
            let pattern = self.query_pattern(&query)?;
            return Ok(TrackedOutput::Output(self.output_of(
                &proc,
                &query,
                pattern.as_ref(),
            )));
        }
        match known {
            Some(known) if digest == Some(known.digest.as_str()) => match known.terminal {
                Some(process) => Ok(TrackedOutput::Unavailable {
                    input_digest: known.digest,
                    process,
                }),
                None => Err(Error::NotFound(*id)),
            },
            _ => Err(Error::NotFound(*id)),
        }
    }

    /// Queues `bytes` for the process's input (see [`Command::stdin_pipe`] and
    /// [`Command::tty`]) and returns at once: the process reads them when it will, in the
    /// order they were queued, and a process that does not read never blocks this call.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when there is no such process for this caller;
    /// [`Error::NoInput`] when it was started without input, its input is closed, or it is no
    /// longer running; [`Error::InputFull`] when the bytes would take its pending input past
    /// the bound ([`ManagerBuilder::max_pending_input`]), in which case nothing was queued.
    pub fn write_input(
        &self,
        id: &ProcessId,
        chat: Option<Uuid>,
        bytes: &[u8],
    ) -> Result<InputQueued, Error> {
        self.input(id, chat, bytes, false)
    }

    /// Closes the process's input once everything queued before has been written: end of
    /// file for a pipe; for a terminal its end-of-file character (VEOF, normally ^D) at the
    /// start of a line (twice when a line is open: the first hands over the line so far).
    /// Later input fails with [`Error::NoInput`].
    ///
    /// # Errors
    ///
    /// As [`write_input`](Self::write_input).
    pub fn close_input(&self, id: &ProcessId, chat: Option<Uuid>) -> Result<InputQueued, Error> {
        self.input(id, chat, &[], true)
    }

    /// [`write_input`](Self::write_input), then with `close` [`close_input`](Self::close_input),
    /// as one step: no other caller's input comes between, and when the bytes do not fit
    /// neither happens.
    ///
    /// # Errors
    ///
    /// As [`write_input`](Self::write_input).
    pub fn input(
        &self,
        id: &ProcessId,
        chat: Option<Uuid>,
        bytes: &[u8],
        close: bool,
    ) -> Result<InputQueued, Error> {
        let proc = self.find(id, chat)?;
        let Some(input) = &proc.input else {
            return Err(Error::NoInput(*id));
        };
        if proc.state.lock().exit.is_some() {
            return Err(Error::NoInput(*id));
        }
        input.push(bytes, close).map_err(|refused| match refused {
            Refused::NotOpen => Error::NoInput(*id),
            Refused::Full => Error::InputFull(*id),
        })
    }

    /// Sets the size of the process's terminal; the process gets SIGWINCH.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when there is no such process for this caller;
    /// [`Error::InvalidTerminalSize`] for a size outside 1 to
    /// [`MAX_TERMINAL_DIMENSION`](crate::MAX_TERMINAL_DIMENSION); [`Error::NoTerminal`] when
    /// it has no terminal or has exited; [`Error::Terminal`] when the system refused.
    pub fn resize(
        &self,
        id: &ProcessId,
        chat: Option<Uuid>,
        rows: u16,
        cols: u16,
    ) -> Result<(), Error> {
        let proc = self.find(id, chat)?;
        prepare::check_terminal_size(u64::from(rows), u64::from(cols))?;
        let Some(input) = proc.input.as_ref().filter(|i| i.is_terminal()) else {
            return Err(Error::NoTerminal(*id));
        };
        if proc.state.lock().exit.is_some() {
            return Err(Error::NoTerminal(*id));
        }
        match input.resize(TerminalSize { rows, cols }) {
            Ok(true) => Ok(()),
            Ok(false) => Err(Error::NoTerminal(*id)),
            Err(e) => Err(Error::Terminal(e)),
        }
    }

    /// Sends a signal to the process's whole group; with `grace`, SIGKILL follows that much
    /// later if the process still runs (only for [`Signal::Terminate`] and [`Signal::Interrupt`]). A process that has
    /// exited but whose group still has live members ([`ProcessInfo::members_alive`]) is
    /// signalled too: the signal reaches what is left of the group.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when there is no such process for this caller,
    /// [`Error::NotRunning`] once nothing of it is left, [`Error::Signal`] when the system
    /// refused.
    pub fn signal(
        &self,
        id: &ProcessId,
        chat: Option<Uuid>,
        signal: Signal,
        grace: Option<Duration>,
    ) -> Result<(), Error> {
        let proc = self.find(id, chat)?;
        let mut state = proc.state.lock();
        // Exited, but a background member may outlive the leader: it is still reachable (the
        // pidfd names the group), so the signal goes to what is left; 409 only when nothing
        // is.
        if state.exit.is_some() && !proc.group_has_live_members(&mut state) {
            return Err(Error::NotRunning(*id));
        }
        let sent = proc.signal_locked(&state, signal.number());
        match (signal, &sent) {
            (Signal::Stop, Ok(true)) => state.stopped = true,
            (Signal::Continue, Ok(true)) => state.stopped = false,
            _ => {}
        }
        drop(state);
        match sent {
            Ok(false) if proc.state.lock().exit.is_some() => {
                return Err(Error::NotRunning(*id));
            }
            Ok(_) => log::info!("{}: sent {}", proc.label(), signal.name()),
            Err(e) => {
                log::warn!("{}: sending {} failed: {e}", proc.label(), signal.name());
                return Err(Error::Signal(e));
            }
        }
        let escalates = matches!(signal, Signal::Terminate | Signal::Interrupt);
        if let Some(grace) = grace.filter(|_| escalates) {
            self.shared
                .send(Job::Escalate(Arc::clone(&proc), deadline_in(grace)));
        }
        Ok(())
    }

    /// What the manager could not set up as configured, and what it cleaned up at start, one
    /// line each (no cgroups, and why; no subreaper; a dead predecessor's cgroups removed):
    /// a server prints them once at start.
    #[must_use]
    pub fn startup_notes(&self) -> &[String] {
        &self.notes
    }

    /// Whether processes run in cgroups of their own (see [`ManagerBuilder::cgroup`]).
    #[must_use]
    pub fn contained(&self) -> bool {
        self.shared.containment.is_some()
    }

    /// The keeper's pid while cgroups are on (the process that kills them all should this one
    /// die); for diagnostics and tests.
    #[must_use]
    pub fn keeper_pid(&self) -> Option<u32> {
        self.shared
            .containment
            .as_ref()
            .and_then(|c| c.keeper_pid())
    }

    /// The counters this manager updates (starts, spawn latency, exits, output bytes), for
    /// `GET /metrics`: its own, or the set given to
    /// [`ManagerBuilder::metrics`](crate::ManagerBuilder::metrics).
    #[must_use]
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.shared.config.metrics
    }

    /// Processes started and not yet marked exited.
    #[must_use]
    pub fn running(&self) -> usize {
        self.shared.running.load(Ordering::SeqCst)
    }

    /// Stops everything: new starts fail, every group that may still have members gets
    /// SIGTERM, then SIGKILL after the kill grace; every waiter wakes; every thread is joined;
    /// no zombie is left. Returns once done. Idempotent and safe to call from several threads.
    ///
    /// Called from the on-exit hook (which runs on the supervisor thread), it starts the close
    /// and returns at once: the supervisor cannot wait for itself. A close from any other
    /// thread then waits for that close to complete, as after any other.
    pub fn close(&self) {
        let on_supervisor = self.supervisor_thread == std::thread::current().id();
        let first = self.shared.begin_closing();
        // Spawns on callers' threads that passed their closing check finish (and are in the
        // table for the close to find) before the close begins; later ones are refused.
        drop(self.shared.spawn_gate.write());
        // Wait-any calls answer at once once closing.
        self.shared.wake_exit_waiters();
        if first {
            // The supervisor carries the close out and then ends; its reply is not needed:
            // joining it below waits for the same.
            let (tx, _rx) = crossbeam_channel::bounded(1);
            self.shared.send(Job::Close(tx));
        }
        if on_supervisor {
            return;
        }
        // Whichever other thread comes first (the one that began the close, or the first
        // after a close begun by the exit hook on the supervisor) waits for the supervisor to
        // end and finishes; any other waits for it.
        let handle = self.supervisor.lock().take();
        if let Some(handle) = handle {
            let _ = handle.join();
            self.shared.logs.remove_all();
            *self.closed.lock() = true;
            self.closed_cv.notify_all();
        } else {
            let mut closed = self.closed.lock();
            while !*closed {
                self.closed_cv.wait(&mut closed);
            }
        }
    }

    /// Whether `id` names a process that exists but that `chat` may not see: one started for
    /// another chat. False for an unknown id, and for a process `chat` may read and signal.
    /// The HTTP signal route asks this before it looks at the body, as the contract orders.
    #[must_use]
    pub fn is_other_chats(&self, id: &ProcessId, chat: Option<Uuid>) -> bool {
        self.shared
            .get(id)
            .is_some_and(|proc| !visible_for_access(proc.chat, chat))
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scope_rule() {
        let (a, b) = (Some(Uuid::new_v4()), Some(Uuid::new_v4()));
        // Access: own chat, no-chat processes, and callers without a chat.
        assert!(visible_for_access(a, a));
        assert!(visible_for_access(None, a));
        assert!(visible_for_access(a, None));
        assert!(!visible_for_access(a, b));
        // Lists: a chat lists its own only.
        assert!(visible_in_list(a, a));
        assert!(!visible_in_list(None, a));
        assert!(visible_in_list(a, None));
        assert!(!visible_in_list(a, b));
    }
}
