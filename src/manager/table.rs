//! The state a manager shares with its supervisor and its reader threads: the table of
//! processes, the running count, the groups that outlive their leaders, and the supervisor's
//! mailbox. Processes report their exits here through [`ExitSink`]; the supervisor reads and
//! sweeps the table; nothing here calls back into either.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use parking_lot::{Condvar, Mutex, RwLock};

use crate::id::ProcessId;
use crate::info::{Exit, ExitEvent};
use crate::manager::builder::Config;
use crate::manager::contain::Containment;
use crate::manager::orphans::Managed;
use crate::manager::receipts::Receipts;
use crate::metrics::ExitReason;
use crate::pool::ReaderPool;
use crate::process::{ExitSink, Proc, ProcSpec};
use crate::sys;
use crate::time::deadline_from;

/// Work for the supervisor.
pub(crate) enum Job {
    /// Spawn a child and register it; the reply carries the record or the error.
    Spawn(Box<SpawnJob>),
    /// A child spawned on its caller's thread: start its waiter (no pidfd) and its timers.
    Supervise {
        /// The fresh child.
        proc: Arc<Proc>,
        /// Its timeout.
        timeout: Option<Duration>,
        /// A tracked start's deadline.
        deadline: Option<Instant>,
    },
    /// An idle reader thread retired: join it.
    ReaderRetired(std::thread::ThreadId),
    /// A per-child waiter thread saw the leader exit (no pidfd: non-Linux, old kernels).
    LeaderExited(Arc<Proc>),
    /// Watch this child's exit here: its reader thread could not be started or failed.
    Watch(Arc<Proc>),
    /// SIGKILL the group at `at` if it still runs (signal escalation).
    Escalate(Arc<Proc>, Instant),
    /// Run the on-exit hook for this exit (here, on the supervisor's full-size stack).
    ExitHook(ExitEvent),
    /// Stop everything; reply when done.
    Close(Sender<()>),
}

/// A spawn request: the prepared spec and what the record around the child is made of.
pub(crate) struct SpawnJob {
    pub(crate) spec: sys::SpawnSpec,
    pub(crate) proc: ProcSpec,
    pub(crate) timeout: Option<Duration>,
    /// A tracked start's deadline: SIGKILL to the group then.
    pub(crate) deadline: Option<Instant>,
    pub(crate) reply: Sender<Result<Arc<Proc>, sys::SpawnFailure>>,
}

/// State shared by the manager's handle, the supervisor and the reader threads.
pub(crate) struct Shared {
    pub(crate) config: Config,
    table: Mutex<Table>,
    /// Processes started and not yet marked exited (including starts in flight).
    pub(crate) running: AtomicUsize,
    closing: AtomicBool,
    /// Held (shared) by a spawn on its caller's thread from its closing check to its insert
    /// into the table; taken (exclusively) by a close once it is marked closing.
    pub(crate) spawn_gate: RwLock<()>,
    pub(crate) jobs: Sender<Job>,
    /// Wakes the supervisor's poll.
    pub(crate) wake: Arc<sys::Waker>,
    /// Tells every reader thread to stop (at the end of a close).
    pub(crate) stop_readers: sys::Waker,
    /// `/dev/null` for writing, where readers discard a flood's surplus (`None`: they read
    /// every byte).
    pub(crate) null_sink: Option<std::os::fd::OwnedFd>,
    /// Processes marked exited whose group may still have members (a background child that
    /// outlived its leader): signalled again at close. Lock order: never hold this while
    /// taking a process's lock (a process's lock may be held while this is taken).
    lingering: Mutex<Vec<Arc<Proc>>>,
    /// Set when a group starts lingering, so the supervisor re-checks soon.
    pub(crate) lingering_added: AtomicBool,
    /// Reader threads, reused across children.
    pub(crate) readers: ReaderPool,
    /// Counts exits (and wake-ups of wait-any calls): a wait-any call sleeps on `exit_cv` until
    /// it changes. Lock order: a process's lock may be held while this is taken, never the
    /// other way round.
    pub(crate) exits: Mutex<u64>,
    pub(crate) exit_cv: Condvar,
    /// The full logs' directory and bounds.
    pub(crate) logs: Arc<crate::log::LogStore>,
    /// The cgroups of this manager's processes, when it contains them.
    pub(crate) containment: Option<Containment>,
    /// The leaders not reaped yet, for the orphan reaper (and the lock spawns hold).
    pub(crate) managed: Arc<Managed>,
    /// The receipts of tracked starts.
    pub(crate) receipts: Receipts,
}

#[derive(Default)]
struct Table {
    procs: HashMap<ProcessId, Arc<Proc>>,
    /// Exited processes in the order they exited (oldest first), with when.
    exited: VecDeque<(Instant, ProcessId)>,
    next_seq: u64,
}

impl Shared {
    pub(crate) fn new(
        config: Config,
        jobs: Sender<Job>,
        wake: Arc<sys::Waker>,
        readers: ReaderPool,
        containment: Option<Containment>,
    ) -> io::Result<Shared> {
        Ok(Shared {
            table: Mutex::new(Table::default()),
            running: AtomicUsize::new(0),
            closing: AtomicBool::new(false),
            spawn_gate: RwLock::new(()),
            jobs,
            wake,
            stop_readers: sys::Waker::new()?,
            null_sink: sys::open_null_sink()
                .inspect_err(|e| log::debug!("no /dev/null to discard floods into: {e}"))
                .ok(),
            lingering: Mutex::new(Vec::new()),
            lingering_added: AtomicBool::new(false),
            readers,
            exits: Mutex::new(0),
            exit_cv: Condvar::new(),
            logs: Arc::new(crate::log::LogStore::new(
                config.log_dir.as_deref(),
                config.log_max_bytes,
                config.log_max_total_bytes,
            )),
            containment,
            managed: Arc::new(Managed::default()),
            receipts: Receipts::new(config.max_tracked),
            config,
        })
    }

    /// Asks the supervisor to do `job` and wakes it.
    pub(crate) fn send(&self, job: Job) -> bool {
        let sent = self.jobs.send(job).is_ok();
        self.wake.wake();
        sent
    }

    pub(crate) fn insert(&self, proc: Arc<Proc>) {
        self.table.lock().procs.insert(proc.id, proc);
    }

    pub(crate) fn get(&self, id: &ProcessId) -> Option<Arc<Proc>> {
        self.table.lock().procs.get(id).cloned()
    }

    pub(crate) fn all(&self) -> Vec<Arc<Proc>> {
        self.table.lock().procs.values().cloned().collect()
    }

    pub(crate) fn next_seq(&self) -> u64 {
        let mut table = self.table.lock();
        table.next_seq += 1;
        table.next_seq
    }

    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }

    /// Marks the manager closing; returns whether it was the first to.
    pub(crate) fn begin_closing(&self) -> bool {
        !self.closing.swap(true, Ordering::SeqCst)
    }

    /// When the oldest exited process's retention ends.
    pub(crate) fn next_expiry(&self) -> Option<Instant> {
        let table = self.table.lock();
        let (at, _) = table.exited.front()?;
        Some(deadline_from(*at, self.config.retention))
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

    /// The lingering groups (a copy: the caller may take their locks).
    pub(crate) fn lingering(&self) -> Vec<Arc<Proc>> {
        self.lingering.lock().clone()
    }

    /// Keeps only the lingering groups for which `keep` holds. `keep` may take the processes'
    /// locks: the list is taken out while it runs, and groups added meanwhile are kept.
    pub(crate) fn retain_lingering(&self, mut keep: impl FnMut(&Arc<Proc>) -> bool) {
        let list = std::mem::take(&mut *self.lingering.lock());
        let kept: Vec<Arc<Proc>> = list.into_iter().filter(|p| keep(p)).collect();
        self.lingering.lock().extend(kept);
    }

    /// Wakes every wait-any call, so that each looks at its processes again.
    pub(crate) fn wake_exit_waiters(&self) {
        *self.exits.lock() += 1;
        self.exit_cv.notify_all();
    }

    pub(crate) fn clear_lingering(&self) {
        self.lingering.lock().clear();
    }

    /// Records an exit and forgets the oldest exited processes past the limit. Returns whether
    /// it is the only exit on record (so the first retention deadline is new).
    fn record_exit(&self, id: ProcessId) -> bool {
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
}

impl ExitSink for Shared {
    fn exited(&self, proc: &Arc<Proc>, exit: &Exit, lingers: bool) {
        // The slot first: a waiter woken by this exit may start the next process at once.
        self.running.fetch_sub(1, Ordering::SeqCst);
        let reason = if exit.timed_out {
            ExitReason::Timeout
        } else if exit.signal.is_some() {
            ExitReason::Signal
        } else {
            ExitReason::Exit
        };
        self.config.metrics.process_exited(reason);
        // Recorded (and the oldest exited process evicted past the limit) before anyone can
        // see this exit. Lock order: a process's state, then the table (or the lingering
        // list); nothing takes them the other way round.
        let first_expiry = self.record_exit(proc.id);
        self.wake_exit_waiters();
        if proc.tracked {
            // Lock order: the process's state (held), then the receipts.
            self.receipts
                .record_terminal(&proc.id, proc.info_at_exit(exit));
        }
        if lingers {
            self.lingering.lock().push(Arc::clone(proc));
            self.lingering_added.store(true, Ordering::SeqCst);
        }
        // The supervisor sleeps until its nearest deadline: tell it when this exit brings the
        // first retention deadline, a lingering group, a hook to run, or the last exit a close
        // waits for.
        if self.config.on_exit.is_some() {
            let _ = self.jobs.send(Job::ExitHook(ExitEvent {
                id: proc.id,
                chat: proc.chat,
                workdir: proc.workdir.clone(),
                exit: exit.clone(),
            }));
            self.wake.wake();
        } else if first_expiry || lingers || self.is_closing() {
            self.wake.wake();
        }
    }

    fn output_read(&self, bytes: u64, omitted: u64) {
        self.config.metrics.output_read(bytes, omitted);
    }

    fn output_ended(&self) {
        // A close may be waiting for a lingering group's last member (the pipe's holder).
        if self.is_closing() {
            self.wake.wake();
        }
    }

    fn unwatched(&self, proc: Arc<Proc>) {
        self.send(Job::Watch(proc));
    }

    fn leader_reaped(&self, pid: u32) {
        self.managed.reaped_leader(pid);
    }

    fn group_emptied(&self, proc: &Arc<Proc>) {
        self.lingering.lock().retain(|p| !Arc::ptr_eq(p, proc));
        if proc.tracked {
            // The accounting was read just now, as the cgroup emptied. Lock order: the
            // process's state (taken and released by `info`), then the receipts.
            self.receipts.record_accounting(&proc.id, &proc.info());
        }
        // A close waits for the last lingering group to empty: this is the event it waits on.
        if self.is_closing() {
            self.wake.wake();
        }
    }
}
