//! One child process: its record while it runs and after, the loop of the thread that watches
//! it, and marking it exited.
//!
//! Data flows one way out of here: whoever watches a child (its reader thread on Linux, the
//! supervisor elsewhere) calls the methods of [`Proc`], and the process tells its owner about
//! its exit through the one narrow [`ExitSink`] call. Nothing here knows the manager's table.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::{Condvar, Mutex, MutexGuard};
use uuid::Uuid;

use crate::buffer::{BufferConfig, HeadTailBuffer};
use crate::id::ProcessId;
use crate::info::{Exit, ProcessInfo};
use crate::input::{Input, Service};
use crate::log::LogFile;
use crate::sys::{self, Interest};
use crate::time::deadline_in;

/// Bytes read from a child's pipe at once (the default pipe capacity on Linux). The read buffer
/// is allocated when the first output arrives, so a silent process costs none of it.
pub const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Where a process reports what happens to it. The manager's shared state implements it; the
/// process never reaches into the manager otherwise.
pub(crate) trait ExitSink {
    /// The process has just been marked exited. Called once per process, with its lock held and
    /// before any waiter is woken, so that the exit is on record (running slot freed, retention
    /// started, hook queued) before anyone can see it. `lingers`: its group may outlive the
    /// leader (a background member), so a close must still end it.
    fn exited(&self, proc: &Arc<Proc>, exit: &Exit, lingers: bool);

    /// `bytes` were just read from the process's output, `omitted` of them into the omitted
    /// middle of its stream (for the metrics: called once per drained burst, not per read).
    fn output_read(&self, bytes: u64, omitted: u64);

    /// A watcher reached the end of a process's output: a close waiting for groups to empty
    /// should look again.
    fn output_ended(&self);

    /// The process's reader stopped (or failed) before its leader was reaped: somebody else
    /// must watch the leader from now on.
    fn unwatched(&self, proc: Arc<Proc>);

    /// The leader `pid` has just been reaped (its number is free for reuse now).
    fn leader_reaped(&self, pid: u32);

    /// An exited process's cgroup has emptied (the kernel's `populated 0`): nothing of it is
    /// left, so it lingers no more.
    fn group_emptied(&self, proc: &Arc<Proc>);
}

/// What a record is made of, known before the spawn.
pub(crate) struct ProcSpec {
    pub(crate) id: ProcessId,
    pub(crate) chat: Option<Uuid>,
    /// For display: the shell command, or the argv joined with shell quoting.
    pub(crate) command: String,
    pub(crate) workdir: PathBuf,
    pub(crate) background: bool,
    pub(crate) buffer: BufferConfig,
    /// How long an open output pipe keeps the process running after its leader's exit.
    pub(crate) pipe_grace: Duration,
    /// What the output pipe grows to once flooded (0: never).
    pub(crate) flood_pipe_bytes: usize,
    /// The full log, when the start asked for one.
    pub(crate) log: Option<Arc<LogFile>>,
    /// The process's own cgroup (created before the spawn), when the manager contains.
    pub(crate) cgroup: Option<Arc<sys::contain::ProcCgroup>>,
    /// A tracked start: its receipt keeps its final state.
    pub(crate) tracked: bool,
    /// Its input, when started with a stdin pipe or a terminal.
    pub(crate) input: Option<Input>,
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
    /// A tracked start (see [`crate::Tracking`]).
    pub(crate) tracked: bool,
    /// The leader's pid, which is also its process group id.
    pub(crate) pid: u32,
    pub(crate) started_at: SystemTime,
    pub(crate) started: Instant,
    pipe_grace: Duration,
    flood_pipe_bytes: usize,
    /// Its own cgroup, holding the leader and everything it starts: signals, kills and the
    /// question whether anything of it is left go there instead of to the process group.
    pub(crate) cgroup: Option<Arc<sys::contain::ProcCgroup>>,
    pub(crate) buffer: HeadTailBuffer,
    /// The full log, when the start asked for one: the reader appends to it after the buffer.
    pub(crate) log: Option<Arc<LogFile>>,
    pub(crate) state: Mutex<ProcState>,
    exited: Condvar,
    /// Its input (a stdin pipe or a terminal), written by its watcher.
    pub(crate) input: Option<Input>,
}

/// The leader's status as its watcher saw it.
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
    /// Exited, and the group outlived its leader (as far as the last look could tell): the
    /// manager keeps it among the lingering groups until a look finds no live member.
    pub(crate) lingers: bool,
    /// Frozen (or SIGSTOPped) by a `stop` signal, not thawed since.
    pub(crate) stopped: bool,
    /// Its cgroup was seen without a live member after the leader was reaped: nothing can
    /// join it again (only a member forks into it), so it is not read again.
    pub(crate) cgroup_emptied: bool,
    /// The cgroup's accounting, read just before its directory was removed.
    pub(crate) final_stats: Option<CgroupStats>,
}

/// What a process's cgroup counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CgroupStats {
    cpu_usec: Option<u64>,
    memory_peak: Option<u64>,
    oom_killed: bool,
}

impl CgroupStats {
    fn read(cgroup: &sys::contain::ProcCgroup) -> CgroupStats {
        CgroupStats {
            cpu_usec: cgroup.cpu_usec(),
            memory_peak: cgroup.memory_peak(),
            oom_killed: cgroup.oom_killed(),
        }
    }
}

impl ProcState {
    /// Whether anything of the process may still be alive: it runs, or its group may have
    /// members (the pidfd is kept for that, or the pipe is still held).
    pub(crate) fn may_have_members(&self) -> bool {
        self.exit.is_none() || self.pidfd.is_some() || self.pipe_open || self.lingers
    }
}

impl Proc {
    /// The record of a child that has just been spawned with `pid` as the `seq`-th start.
    pub(crate) fn new(spec: ProcSpec, pid: u32, seq: u64, pidfd: Option<OwnedFd>) -> Arc<Proc> {
        Arc::new(Proc {
            id: spec.id,
            seq,
            chat: spec.chat,
            command: spec.command,
            workdir: spec.workdir,
            background: spec.background,
            tracked: spec.tracked,
            pid,
            started_at: SystemTime::now(),
            started: Instant::now(),
            pipe_grace: spec.pipe_grace,
            flood_pipe_bytes: spec.flood_pipe_bytes,
            cgroup: spec.cgroup,
            buffer: HeadTailBuffer::with_config(spec.buffer),
            log: spec.log,
            state: Mutex::new(ProcState {
                leader: Leader::Alive,
                pipe_open: true,
                timed_out: false,
                exit: None,
                pidfd: pidfd.map(Arc::new),
                lingers: false,
                stopped: false,
                cgroup_emptied: false,
                final_stats: None,
            }),
            exited: Condvar::new(),
            input: spec.input,
        })
    }

    pub(crate) fn info(&self) -> ProcessInfo {
        let state = self.state.lock();
        let exit = state.exit.clone();
        let members_alive = exit.is_some() && state.lingers;
        let stopped = state.stopped && (exit.is_none() || members_alive);
        let stats = match (&self.cgroup, state.final_stats) {
            (_, Some(stats)) => Some(stats),
            (Some(cgroup), None) if !cgroup.is_removed() => Some(CgroupStats::read(cgroup)),
            _ => None,
        };
        drop(state);
        let stats = stats.unwrap_or_default();
        ProcessInfo {
            members_alive,
            contained: self.cgroup.is_some(),
            stopped,
            cpu_ms: stats.cpu_usec.map(|us| us / 1000),
            memory_peak_bytes: stats.memory_peak,
            oom_killed: stats.oom_killed,
            id: self.id,
            chat: self.chat,
            command: self.command.clone(),
            workdir: self.workdir.clone(),
            background: self.background,
            running: exit.is_none(),
            pid: self.pid,
            started_at: self.started_at,
            exit,
            stdin_open: self.input.as_ref().map(Input::is_open),
            tty: self.input.as_ref().and_then(Input::size),
        }
    }

    /// The snapshot of a process that has just been marked `exit`, made without its lock
    /// (the caller holds it).
    pub(crate) fn info_at_exit(&self, exit: &Exit) -> ProcessInfo {
        ProcessInfo {
            members_alive: false,
            // The cgroup's accounting is read once it has emptied, not here under the lock.
            contained: self.cgroup.is_some(),
            stopped: false,
            cpu_ms: None,
            memory_peak_bytes: None,
            oom_killed: false,
            id: self.id,
            chat: self.chat,
            command: self.command.clone(),
            workdir: self.workdir.clone(),
            background: self.background,
            running: false,
            pid: self.pid,
            started_at: self.started_at,
            exit: Some(exit.clone()),
            // Lock order: the process's state (held), then its input's.
            stdin_open: self.input.as_ref().map(|_| false),
            tty: self.input.as_ref().and_then(Input::size),
        }
    }

    /// `process <id> chat=<chat>` for log lines.
    pub(crate) fn label(&self) -> String {
        match self.chat {
            Some(chat) => format!("process {} chat={chat}", self.id),
            None => format!("process {} chat=-", self.id),
        }
    }

    /// Blocks until the process is marked exited, `deadline` passes, or `stop` holds (checked
    /// under the process's lock; whoever makes it hold then calls [`wake_waiters`]); returns
    /// the exit.
    ///
    /// [`wake_waiters`]: Self::wake_waiters
    pub(crate) fn wait_exit(&self, deadline: Instant, stop: impl Fn() -> bool) -> Option<Exit> {
        let mut state = self.state.lock();
        while state.exit.is_none() {
            if stop() || self.exited.wait_until(&mut state, deadline).timed_out() {
                break;
            }
        }
        state.exit.clone()
    }

    /// Wakes every wait on this process (for output or for its exit) so that each checks its
    /// condition again.
    pub(crate) fn wake_waiters(&self) {
        self.buffer.wake_waiters();
        let _state = self.state.lock();
        self.exited.notify_all();
    }

    /// Sends `sig` to the process's group, never to an id that may have been reused: through
    /// the pidfd (which names the group itself), or by number only while the unreaped leader
    /// pins the id, or while the open pipe shows that members remain. `Ok(false)` when nothing
    /// was left to signal. The caller holds the process's lock (`state`).
    pub(crate) fn signal_locked(&self, state: &ProcState, sig: i32) -> io::Result<bool> {
        if let Some(cgroup) = &self.cgroup {
            return signal_cgroup(cgroup, sig);
        }
        let by_number_safe = state.leader == Leader::Alive || state.pipe_open;
        let pidfd = state.pidfd.as_deref().map(AsFd::as_fd);
        if pidfd.is_none() && !by_number_safe {
            return Ok(false);
        }
        match sys::signal_group(pidfd, self.pid, sig, by_number_safe) {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// SIGKILL to the group if the process runs or its group may still have members.
    pub(crate) fn kill_if_alive(&self) {
        let state = self.state.lock();
        if !state.may_have_members() {
            return;
        }
        let sent = self.signal_locked(&state, libc::SIGKILL);
        drop(state);
        match sent {
            Ok(true) => log::info!("{}: sent SIGKILL to its group", self.label()),
            Ok(false) => {}
            Err(e) => log::warn!("{}: SIGKILL failed: {e}", self.label()),
        }
    }

    /// Whether an exited process's group may still have members: asked through the pidfd
    /// (which names the group itself) where the kernel can (Linux 6.9+); elsewhere an open
    /// output pipe is taken as the sign that a member holds it. Forgets the pidfd when not.
    pub(crate) fn group_may_have_members(&self) -> bool {
        let mut state = self.state.lock();
        self.group_may_have_members_locked(&mut state)
    }

    pub(crate) fn group_may_have_members_locked(&self, state: &mut ProcState) -> bool {
        if let Some(cgroup) = &self.cgroup {
            if state.cgroup_emptied {
                return false;
            }
            // Exact: the kernel counts the cgroup's live members (zombies are not).
            let populated = cgroup.populated();
            if !populated {
                self.cgroup_seen_empty(state);
            }
            return populated;
        }
        let by_pidfd = state.pidfd.as_deref().map(|fd| {
            sys::signal_group(Some(fd.as_fd()), self.pid, 0, false)
                .map_or_else(|e| e.raw_os_error() != Some(libc::ESRCH), |()| true)
        });
        // ESRCH here also means "the kernel cannot ask by group": fall back to the pipe.
        let may = by_pidfd == Some(true) || state.pipe_open;
        if !may {
            self.forget_group(state);
        }
        may
    }

    /// Its cgroup was seen without a live member: the group is forgotten, and once the leader
    /// is reaped the cgroup is not read again (nothing can join it).
    fn cgroup_seen_empty(&self, state: &mut ProcState) {
        state.cgroup_emptied = state.leader != Leader::Alive;
        self.forget_group(state);
    }

    /// For the watcher of a contained process: reads the cgroup's state through the watcher's
    /// own open `cgroup.events` (a `pread`; a lookup by path opens the file anew, a path walk
    /// through cgroupfs on the way from the exit to the answer), taking its notification, and
    /// records an empty cgroup as a lookup would.
    fn note_cgroup_events(&self, state: &mut ProcState, events: &sys::contain::EventsWatch) {
        if let Ok(false) = events.populated()
            && !state.cgroup_emptied
        {
            self.cgroup_seen_empty(state);
        }
    }

    /// The group has no live member left: nothing of the process can be signalled any more.
    pub(crate) fn forget_group(&self, state: &mut ProcState) {
        state.pidfd = None;
        state.lingers = false;
    }

    /// Whether the exited process's group still has a live member, looked up exactly: a group
    /// member that is only a zombie (dead, waiting for its parent) counts as gone, which the
    /// pidfd cannot tell. Costs a scan of `/proc` where there is one.
    pub(crate) fn group_has_live_members(&self, state: &mut ProcState) -> bool {
        if self.cgroup.is_some() {
            return state.lingers && self.group_may_have_members_locked(state);
        }
        if !state.lingers || !self.group_may_have_members_locked(state) {
            return false;
        }
        match sys::live_groups() {
            Some(groups) if !groups.contains(&self.pid) => {
                self.forget_group(state);
                false
            }
            _ => true,
        }
    }

    /// Reaps the leader if it has exited, under the process's lock (which signalling by number
    /// also takes, so the id cannot be freed under a signal). Returns whether it was reaped
    /// now. A failed wait (ECHILD: the host reaped it) counts as exited with an unknown status.
    pub(crate) fn reap_leader(&self, state: &mut ProcState, pidfd: Option<BorrowedFd<'_>>) -> bool {
        if state.leader != Leader::Alive {
            return false;
        }
        let outcome = match sys::try_reap(self.pid, pidfd) {
            Ok(sys::WaitOutcome::Running) => return false,
            Ok(outcome) => outcome,
            Err(e) => {
                log::debug!("{}: reaping pid {} failed: {e}", self.label(), self.pid);
                sys::WaitOutcome::Unknown
            }
        };
        state.leader = Leader::Reaped(outcome);
        true
    }

    /// The leader has been reaped. If the output is complete, marks the process exited;
    /// otherwise returns when the pipe grace ends, for the watcher to call
    /// [`pipe_grace_over`](Self::pipe_grace_over) then. The one pipe-grace path, whoever
    /// watches the process.
    #[must_use]
    pub(crate) fn leader_reaped(
        self: &Arc<Self>,
        state: MutexGuard<'_, ProcState>,
        sink: &dyn ExitSink,
    ) -> Option<Instant> {
        if state.pipe_open {
            Some(deadline_in(self.pipe_grace))
        } else {
            self.mark_exited(state, sink);
            None
        }
    }

    /// The pipe grace has ended: marks the process exited even though its pipe is still held.
    pub(crate) fn pipe_grace_over(self: &Arc<Self>, sink: &dyn ExitSink) {
        let state = self.state.lock();
        if state.exit.is_none() {
            log::debug!(
                "{}: output pipe still open {} ms after exit; marking exited",
                self.label(),
                self.pipe_grace.as_millis()
            );
            self.mark_exited(state, sink);
        }
    }

    /// The output reached end of file (or its reader stopped): marks the process exited if the
    /// leader was already reaped.
    fn output_closed(self: &Arc<Self>, sink: &dyn ExitSink) {
        let mut state = self.state.lock();
        state.pipe_open = false;
        // A terminal's output ends when its last slave side closes: nothing reads its input
        // any more either.
        if let Some(input) = self.input.as_ref().filter(|i| i.is_terminal()) {
            input.end();
        }
        if state.leader != Leader::Alive {
            self.mark_exited(state, sink);
        }
    }

    /// Marks the process exited: seals the output first, then records the exit (the sink frees
    /// the running slot under the lock), then wakes waiters. So anyone who sees
    /// `running: false` reads final output, and a start right after it finds the slot free.
    ///
    /// Called by whichever of the two events comes last, with the process's lock held: the
    /// leader being reaped (pipe already at end of file), or the end of the output (leader
    /// already reaped), or the end of the pipe grace. Either way the waiters are one wake-up
    /// away from the exit, not two.
    fn mark_exited(self: &Arc<Self>, mut state: MutexGuard<'_, ProcState>, sink: &dyn ExitSink) {
        if state.exit.is_some() {
            return;
        }
        self.buffer.close();
        if let Some(log) = &self.log {
            log.end();
        }
        let (code, signal) = match state.leader {
            Leader::Reaped(sys::WaitOutcome::Exited(code)) => (Some(code), None),
            Leader::Reaped(sys::WaitOutcome::Signaled(sig)) => (None, Some(sig)),
            _ => (None, None),
        };
        let exit = Exit {
            code,
            signal,
            timed_out: state.timed_out,
            exited_at: SystemTime::now(),
            duration: self.started.elapsed(),
        };
        state.exit = Some(exit.clone());
        if let Some(input) = &self.input {
            input.end();
        }
        let lingers = self.group_may_have_members_locked(&mut state);
        state.lingers = lingers;
        sink.exited(self, &exit, lingers);
        drop(state);
        self.exited.notify_all();
        log::info!(
            "{}: exited: code {}{}{}, {} ms, {} output bytes",
            self.label(),
            exit.code.unwrap_or(-1),
            exit.signal
                .map(|s| format!(", signal {}", sys::signal_name(s)))
                .unwrap_or_default(),
            if exit.timed_out { ", timed out" } else { "" },
            exit.duration.as_millis(),
            self.buffer.total_bytes(),
        );
    }
}

/// The reader thread's body: copies the pipe into the buffer until end of file, writes the
/// process's queued input (if it has any) as the child makes room for it, and, when the
/// child has a pidfd, watches it too: reaps the leader when it exits, runs the pipe grace as its
/// poll timeout, and marks the process exited as soon as both the leader and the output are
/// done. So an exit wakes this one thread, which wakes the waiters: no hop through the
/// supervisor. Returns at end of file once the process is marked exited, or when `stop` becomes
/// readable (the end of a close).
pub(crate) fn watch(
    proc: &Arc<Proc>,
    pipe: OwnedFd,
    mut pidfd: Option<Arc<OwnedFd>>,
    stop: BorrowedFd<'_>,
    null: Option<BorrowedFd<'_>>,
    sink: &dyn ExitSink,
) -> io::Result<()> {
    sys::set_nonblocking(pipe.as_fd(), true)?;
    let mut pipe = Some(File::from(pipe));
    let mut grace_until: Option<Instant> = None;
    let mut input = proc.input.as_ref();
    let mut ready = Vec::with_capacity(6);
    let mut chunk: Vec<u8> = Vec::new();
    // The cgroup is watched until it has emptied after the exit (`populated 0`); the watch's
    // fd is closed then.
    let mut cgroup = proc.cgroup.as_ref().and_then(|c| c.take_events());
    // Bytes read so far and the most the buffer keeps, for the metrics' omitted bytes.
    let mut total: u64 = 0;
    let config = proc.buffer.config();
    let kept = (config.head_bytes as u64).saturating_add(config.tail_bytes as u64);
    let mut input_waker = input.and_then(Input::waker);
    // Without a full log, bytes the tail cannot keep need not be read (see `drain`); a
    // terminal's master cannot be spliced from.
    let mut discard =
        null.is_some() && proc.log.is_none() && !input.is_some_and(Input::is_terminal);
    // Whether the output pipe has grown (once, at its first flood).
    let mut grown = input.is_some_and(Input::is_terminal);
    let result = loop {
        // The input first: write what the child has room for, and learn what to wait for.
        let input_fd = match input.map(Input::service) {
            None => None,
            Some(Service::Done) => {
                input = None;
                input_waker = None;
                None
            }
            Some(Service::Idle) => None,
            Some(Service::Write(fd)) => Some(fd),
        };
        if pipe.is_none()
            && pidfd.is_none()
            && grace_until.is_none()
            && input.is_none()
            && cgroup.is_none()
        {
            break Ok(());
        }
        // Index 0: stop; then the pipe, the pidfd, the cgroup's events and the input's waker
        // and fd while they matter.
        let mut fds = [(stop, Interest::Read); 6];
        let mut n = 1;
        let pipe_at = pipe.as_ref().map(|p| {
            fds[n] = (p.as_fd(), Interest::Read);
            n += 1;
            n - 1
        });
        let pidfd_at = pidfd.as_ref().map(|p| {
            fds[n] = (p.as_fd(), Interest::Read);
            n += 1;
            n - 1
        });
        let events_at = cgroup.as_ref().map(|events| {
            fds[n] = (events.fd(), Interest::Priority);
            n += 1;
            n - 1
        });
        if let Some(waker) = &input_waker {
            fds[n] = (waker.fd(), Interest::Read);
            n += 1;
        }
        if let Some(fd) = &input_fd {
            fds[n] = (fd.as_fd(), Interest::Write);
            n += 1;
        }
        let timeout = grace_until.map(|at| at.saturating_duration_since(Instant::now()));
        if let Err(e) = sys::poll_fds(&fds[..n], timeout, &mut ready) {
            break Err(e);
        }
        drop(input_fd);
        if ready.contains(&0) {
            break Ok(());
        }
        if pipe_at.is_some_and(|i| ready.contains(&i)) {
            let drained = drain(
                proc,
                pipe.as_mut().expect("polled pipe"),
                &mut chunk,
                null.filter(|_| discard),
                &mut discard,
                &mut grown,
            );
            let read = match &drained {
                Ok((_, read)) => *read,
                Err((_, read)) => *read,
            };
            if read > 0 {
                let after = total.saturating_add(read);
                let omitted = after.saturating_sub(kept) - total.saturating_sub(kept);
                sink.output_read(read, omitted);
                total = after;
            }
            match drained.map(|(open, _)| open).map_err(|(e, _)| e) {
                Ok(true) => {}
                Ok(false) => {
                    pipe = None;
                    grace_until = None;
                    proc.output_closed(sink);
                    sink.output_ended();
                }
                Err(e) => break Err(e),
            }
        }
        // Whether this round read the cgroup's events file already (which took its
        // notification).
        let mut events_read = false;
        if let Some(i) = pidfd_at
            && ready.contains(&i)
        {
            let fd = pidfd.take().expect("polled pidfd");
            let mut state = proc.state.lock();
            let reaped = proc.reap_leader(&mut state, Some(fd.as_fd()));
            if reaped || state.leader != Leader::Alive {
                // The exit is about to ask whether the group lingers: answered from the open
                // events file when the cgroup is empty already (the usual case).
                if let Some(events) = &cgroup {
                    proc.note_cgroup_events(&mut state, events);
                    events_read = true;
                }
                // Marked exited (and its waiters woken) first; the orphan reaper, which only
                // waits to hear that this pid is reaped, after.
                grace_until = proc.leader_reaped(state, sink);
            } else {
                drop(state);
                pidfd = Some(fd);
            }
            if reaped {
                sink.leader_reaped(proc.pid);
            }
        }
        if grace_until.is_some_and(|at| at <= Instant::now()) {
            grace_until = None;
            proc.pipe_grace_over(sink);
        }
        if let Some(events) = &cgroup {
            if events_at.is_some_and(|i| ready.contains(&i)) && !events_read {
                proc.note_cgroup_events(&mut proc.state.lock(), events);
            }
            if proc.cgroup_emptied_after_exit(sink) {
                cgroup = None;
            }
        }
    };
    proc.watcher_gone(sink);
    result
}

/// [`watch`], and if it panics, the process is not left without a watcher: the panic is
/// logged and the process handed on as after a failed read. So a reader thread that unwinds
/// never leaves a process running forever (nor its waiters blocked until their deadline).
pub(crate) fn watch_guarded(
    proc: &Arc<Proc>,
    pipe: OwnedFd,
    pidfd: Option<Arc<OwnedFd>>,
    stop: BorrowedFd<'_>,
    null: Option<BorrowedFd<'_>>,
    sink: &dyn ExitSink,
) {
    let watched = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        watch(proc, pipe, pidfd, stop, null, sink)
    }));
    match watched {
        Ok(Ok(())) => {}
        Ok(Err(e)) => log::warn!("{}: reading output failed: {e}", proc.label()),
        Err(_) => {
            log::error!("{}: its reader panicked; handing it on", proc.label());
            proc.watcher_gone(sink);
        }
    }
}

/// `sig` to every member of `cgroup`: SIGKILL through `cgroup.kill` (all at once, no fork
/// escapes), SIGSTOP and SIGCONT as freezing and thawing the cgroup (`cgroup.freeze`: the
/// whole tree at once, and nothing it does can undo it), any other signal to each member. `Ok(false)` when nothing is left in it.
fn signal_cgroup(cgroup: &sys::contain::ProcCgroup, sig: i32) -> io::Result<bool> {
    if !cgroup.populated() {
        return Ok(false);
    }
    match sig {
        libc::SIGKILL => cgroup.kill()?,
        libc::SIGSTOP => cgroup.freeze(true)?,
        libc::SIGCONT => cgroup.freeze(false)?,
        _ => return Ok(cgroup.signal_members(sig)? > 0),
    }
    Ok(true)
}

impl Proc {
    /// For the watcher of a contained process: once it is marked exited and its cgroup has no
    /// live member left, the group is forgotten, the owner told, and the directory removed.
    /// Returns whether that happened (nothing more to watch).
    fn cgroup_emptied_after_exit(self: &Arc<Self>, sink: &dyn ExitSink) -> bool {
        let Some(cgroup) = &self.cgroup else {
            return true;
        };
        let mut state = self.state.lock();
        if state.exit.is_none() || self.group_may_have_members_locked(&mut state) {
            return false;
        }
        state.final_stats = Some(CgroupStats::read(cgroup));
        drop(state);
        sink.group_emptied(self);
        if let Err(e) = cgroup.remove() {
            log::debug!(
                "{}: removing {}: {e}",
                self.label(),
                cgroup.path().display()
            );
        }
        true
    }

    /// Its watcher stopped (at the end of a close, on an error, or by unwinding): the pipe
    /// counts as closed from here on, and if the leader is still to be reaped, the watch is
    /// handed on (to the supervisor).
    fn watcher_gone(self: &Arc<Self>, sink: &dyn ExitSink) {
        self.output_closed(sink);
        if self.state.lock().leader == Leader::Alive {
            sink.unwatched(Arc::clone(self));
        }
    }
}

/// Reads what the pipe holds into the buffer. `Ok(false)` at end of file.
/// Reads what the pipe holds into the buffer: whether the pipe is still open, and how many
/// bytes were read (also on an error, for what came before it).
fn drain(
    proc: &Proc,
    pipe: &mut File,
    chunk: &mut Vec<u8>,
    null: Option<BorrowedFd<'_>>,
    discard: &mut bool,
    grown: &mut bool,
) -> Result<(bool, u64), (io::Error, u64)> {
    if chunk.is_empty() {
        *chunk = vec![0; READ_CHUNK_BYTES];
    }
    let mut read: u64 = 0;
    // Whether the last read filled `chunk`: more may wait.
    let mut full = false;
    loop {
        // A flood (the last read was full): what waits in the pipe beyond what the tail keeps
        // is discarded in the kernel (never copied here), then the rest read, under the
        // buffer's lock as one write (see `HeadTailBuffer::write_discarding`).
        if let Some(null) = null.filter(|_| *discard && full) {
            full = false;
            let fd = pipe.as_fd();
            let taken = proc
                .buffer
                .write_discarding(chunk, |keep, out| discard_then_read(fd, null, keep, out));
            match taken {
                Some(Ok((0, 0))) | None => {}
                Some(Ok((discarded, got))) => {
                    read += discarded + got as u64;
                    continue;
                }
                Some(Err(e)) => {
                    log::debug!("{}: discarding from the pipe failed: {e}", proc.label());
                    *discard = false;
                }
            }
        }
        match pipe.read(chunk) {
            Ok(0) => {
                if let Some(log) = &proc.log {
                    log.flush();
                }
                return Ok((false, read));
            }
            Ok(n) => {
                full = n == chunk.len();
                if full && proc.flood_pipe_bytes > 0 && !*grown {
                    // A full read: the child writes faster than this thread wakes.
                    *grown = true;
                    if let Err(e) = sys::set_pipe_capacity(pipe.as_fd(), proc.flood_pipe_bytes) {
                        log::debug!("{}: the output pipe stays as it is: {e}", proc.label());
                    }
                }
                proc.buffer.write(&chunk[..n]);
                if let Some(log) = &proc.log {
                    log.append(&chunk[..n]);
                }
                read += n as u64;
                if !full && !proc.input.as_ref().is_some_and(Input::is_terminal) {
                    // A pipe's read returns less than asked only when it has emptied the
                    // pipe (Linux's `pipe_read`): a second read would only say `EAGAIN`. The
                    // next poll reports whatever comes after, or the end of file; where a
                    // short read could leave bytes behind, that poll returns at once. One
                    // syscall fewer per wake-up of a flood, which wakes this thread at every
                    // write of the child's.
                    if let Some(log) = &proc.log {
                        log.flush();
                    }
                    return Ok((true, read));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                // Drained: what the log gathered goes to its file, so readers see it all.
                if let Some(log) = &proc.log {
                    log.flush();
                }
                return Ok((true, read));
            }
            // A terminal's master answers EIO once the last slave side has closed: its end
            // of file. (A pipe never does.)
            Err(e) if e.raw_os_error() == Some(libc::EIO) => {
                if let Some(log) = &proc.log {
                    log.flush();
                }
                return Ok((false, read));
            }
            Err(e) => return Err((e, read)),
        }
    }
}

/// Below this many bytes beyond the tail's, a flood's surplus is read as usual: a discard
/// costs a `FIONREAD` and a `splice`, worth it only against a copy of this size or more.
pub const DISCARD_MIN_BYTES: usize = 16 * 1024;

/// For [`HeadTailBuffer::write_discarding`]: if more than `keep` + [`DISCARD_MIN_BYTES`]
/// bytes wait in `pipe`, discards all but the last `keep` of them into `null` and reads
/// those into `out`. `(0, 0)` when not worth it.
fn discard_then_read(
    pipe: std::os::fd::BorrowedFd<'_>,
    null: std::os::fd::BorrowedFd<'_>,
    keep: usize,
    out: &mut [u8],
) -> io::Result<(u64, usize)> {
    let waiting = sys::unread_bytes(pipe)?;
    if waiting < keep.saturating_add(DISCARD_MIN_BYTES) {
        return Ok((0, 0));
    }
    let discarded = sys::discard_from_pipe(pipe, null, waiting - keep)?;
    let got = sys::read_nonblocking(pipe, out)?;
    Ok((discarded as u64, got))
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex as PlMutex;

    /// A sink whose `output_ended` panics, as a bug in the reader's path would.
    #[derive(Default)]
    struct PanickingSink {
        unwatched: PlMutex<Vec<ProcessId>>,
    }

    impl ExitSink for PanickingSink {
        fn exited(&self, _: &Arc<Proc>, _: &Exit, _: bool) {}
        fn output_read(&self, _: u64, _: u64) {}
        fn output_ended(&self) {
            panic!("a bug in the reader's path");
        }
        fn unwatched(&self, proc: Arc<Proc>) {
            self.unwatched.lock().push(proc.id);
        }
        fn leader_reaped(&self, _: u32) {}
        fn group_emptied(&self, _: &Arc<Proc>) {}
    }

    #[test]
    fn a_reader_that_unwinds_hands_its_process_on() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep");
        let (read_end, write_end) = sys::pipe_cloexec().expect("pipe");
        let spec = ProcSpec {
            id: ProcessId::new_random(),
            chat: None,
            command: "sleep 30".into(),
            workdir: PathBuf::from("/"),
            background: false,
            buffer: BufferConfig::default(),
            pipe_grace: Duration::from_secs(2),
            flood_pipe_bytes: 0,
            log: None,
            cgroup: None,
            tracked: false,
            input: None,
        };
        let proc = Proc::new(spec, child.id(), 1, None);
        let stop = sys::Waker::new().expect("waker");
        let sink = PanickingSink::default();
        // End of file at once: the reader's end-of-output path panics.
        drop(write_end);
        watch_guarded(&proc, read_end, None, stop.fd(), None, &sink);
        assert_eq!(*sink.unwatched.lock(), vec![proc.id], "handed on");
        assert!(!proc.state.lock().pipe_open);
        child.kill().expect("kill");
        child.wait().expect("reap");
    }

    /// A record with no child behind it (pid 0 is never signalled here), for drain tests.
    fn record_for_drain() -> Arc<Proc> {
        let spec = ProcSpec {
            id: ProcessId::new_random(),
            chat: None,
            command: "flood".into(),
            workdir: PathBuf::from("/"),
            background: false,
            buffer: BufferConfig::default(),
            pipe_grace: Duration::from_secs(2),
            flood_pipe_bytes: 1 << 20,
            log: None,
            cgroup: None,
            tracked: false,
            input: None,
        };
        Proc::new(spec, 0, 1, None)
    }

    /// Distinct lines, so that any byte out of place shows.
    fn numbered(len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 16);
        let mut i = 0u64;
        while out.len() < len {
            out.extend_from_slice(format!("{i}\n").as_bytes());
            i += 1;
        }
        out.truncate(len);
        out
    }

    /// Fills a 1 MiB pipe with `data` (at most its capacity) and closes the write end.
    fn filled_pipe(data: &[u8]) -> File {
        let (read_end, write_end) = sys::pipe_cloexec().expect("pipe");
        let capacity = sys::set_pipe_capacity(read_end.as_fd(), 1 << 20).expect("pipe size");
        assert!(capacity >= data.len(), "capacity {capacity}");
        let mut writer = File::from(write_end);
        std::io::Write::write_all(&mut writer, data).expect("fill");
        drop(writer);
        sys::set_nonblocking(read_end.as_fd(), true).expect("nonblocking");
        File::from(read_end)
    }

    /// What waits in a flooded pipe beyond the tail is discarded, and the rest arrives: the
    /// rendering is exactly what reading every byte gives, and the count is exact.
    #[test]
    fn a_flood_drained_with_discards_renders_as_one_read_in_full() {
        let data = numbered(900 * 1024);
        let proc = record_for_drain();
        let mut pipe = filled_pipe(&data);
        let mut chunk = Vec::new();
        let (mut discard, mut grown) = (true, true);
        let null = sys::open_null_sink().expect("/dev/null");
        let drained = drain(
            &proc,
            &mut pipe,
            &mut chunk,
            Some(null.as_fd()),
            &mut discard,
            &mut grown,
        );
        assert!(
            matches!(drained, Ok((false, n)) if n == data.len() as u64),
            "{drained:?}"
        );
        assert!(discard, "the discard path worked");
        let expected = HeadTailBuffer::new();
        expected.write(&data);
        proc.buffer.close();
        expected.close();
        assert_eq!(proc.buffer.render(), expected.render());
    }

    /// The discard itself: all but the tail's bytes go without a copy, the tail's arrive.
    #[test]
    fn discard_then_read_leaves_exactly_the_bytes_the_tail_keeps() {
        let data = numbered(700 * 1024);
        let pipe = filled_pipe(&data);
        let sink = sys::open_null_sink().expect("/dev/null");
        let null = sink.as_fd();
        let keep = 16 * 1024 + 3;
        let mut out = vec![0u8; READ_CHUNK_BYTES];
        let (discarded, got) = discard_then_read(pipe.as_fd(), null, keep, &mut out).expect("ok");
        assert_eq!(discarded, (data.len() - keep) as u64);
        assert_eq!(&out[..got], &data[data.len() - keep..]);
        // Too little waiting: nothing is done.
        let small = filled_pipe(&data[..keep + 100]);
        assert_eq!(
            discard_then_read(small.as_fd(), null, keep, &mut out).expect("ok"),
            (0, 0)
        );
    }
}
