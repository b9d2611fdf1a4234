//! The supervisor: the one long-lived thread of a manager.
//!
//! It spawns every child (the parent-death signal is tied to the spawning *thread*, so that
//! thread must outlive the children), reaps leaders as their pidfds become readable, runs every
//! deadline (timeouts, kill escalation, the pipe grace, retention), marks processes exited,
//! fires the on-exit hook, and carries out `close`. It sleeps in `poll(2)` on the pidfds and a
//! wake-up fd, with the nearest deadline as the timeout: no polling loop.
//!
//! Other threads talk to it through a channel and wake it through [`sys::Waker`].

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender};

use crate::manager::Shared;
use crate::process::{Exit, ExitEvent, Leader, Proc, ProcState};
use crate::sys;
use parking_lot::MutexGuard;

/// Work for the supervisor.
pub(crate) enum Job {
    /// Spawn a child and register it; the reply carries the record or the error.
    Spawn(Box<SpawnJob>),
    /// An idle reader thread retired: join it.
    ReaderRetired(std::thread::ThreadId),
    /// A per-child waiter thread saw the leader exit (no pidfd: non-Linux, old kernels).
    LeaderExited(Arc<Proc>),
    /// Watch this child's exit here: its reader thread could not be started.
    Watch(Arc<Proc>),
    /// SIGKILL the group at `at` if it still runs (signal escalation).
    Escalate(Arc<Proc>, Instant),
    /// Stop everything; reply when done.
    Close(Sender<()>),
}

/// Builds the record of a child once its pid is known.
pub(crate) type MakeProc = Box<dyn FnOnce(&sys::SpawnedChild) -> Arc<Proc> + Send>;

/// A spawn request: the prepared spec and the record to create around the child.
pub(crate) struct SpawnJob {
    pub(crate) spec: sys::SpawnSpec,
    pub(crate) make: MakeProc,
    pub(crate) timeout: Option<std::time::Duration>,
    pub(crate) reply: Sender<io::Result<Arc<Proc>>>,
}

#[derive(Debug)]
enum Timer {
    /// The process's timeout: SIGTERM, mark timed out, escalate later.
    Timeout(Weak<Proc>),
    /// SIGKILL the group if it still runs or may have members.
    Escalate(Weak<Proc>),
    /// The leader exited this long ago: mark exited even if the pipe is still open.
    PipeGrace(Weak<Proc>),
    /// Closing: the kill grace is over, SIGKILL every group left.
    CloseKill,
}

/// A deadline queue entry; `seq` keeps equal instants in insertion order.
struct Due(Instant, u64, Timer);

impl PartialEq for Due {
    fn eq(&self, other: &Self) -> bool {
        (self.0, self.1) == (other.0, other.1)
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Due {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.0, self.1).cmp(&(other.0, other.1))
    }
}

struct Supervisor {
    shared: Arc<Shared>,
    jobs: Receiver<Job>,
    /// Leaders not yet reaped that have a pidfd to poll.
    watched: Vec<(Arc<Proc>, Arc<OwnedFd>)>,
    timers: BinaryHeap<Reverse<Due>>,
    timer_seq: u64,
    /// Set once a close has begun: the callers to answer when it completes.
    closing: Option<Vec<Sender<()>>>,
    kill_sent: bool,
    /// Per-child waiter threads (no pidfd), joined as their leaders are reaped.
    waiters: Vec<(i32, std::thread::JoinHandle<()>)>,
}

/// Runs the supervisor until a close completes.
pub(crate) fn run(shared: Arc<Shared>, jobs: Receiver<Job>) {
    let mut sup = Supervisor {
        shared,
        jobs,
        watched: Vec::new(),
        timers: BinaryHeap::new(),
        timer_seq: 0,
        closing: None,
        kill_sent: false,
        waiters: Vec::new(),
    };
    sup.run();
}

impl Supervisor {
    fn run(&mut self) {
        let mut ready = Vec::new();
        loop {
            while let Ok(job) = self.jobs.try_recv() {
                self.handle(job);
            }
            self.fire_due_timers();
            if self.close_complete() {
                break;
            }
            let now = Instant::now();
            if self.shared.next_expiry().is_some_and(|at| at <= now) {
                self.shared.sweep(now);
                self.prune_lingering();
            }
            let next_timer = self.timers.peek().map(|Reverse(Due(at, ..))| *at);
            let timeout = [next_timer, self.shared.next_expiry()]
                .into_iter()
                .flatten()
                .min()
                .map(|at| at.saturating_duration_since(now));
            let mut fds = Vec::with_capacity(self.watched.len() + 1);
            fds.push(self.shared.wake.fd());
            fds.extend(self.watched.iter().map(|(_, fd)| fd.as_fd()));
            if let Err(e) = sys::poll_readable(&fds, timeout, &mut ready) {
                log::error!("supervisor poll failed: {e}");
            }
            drop(fds);
            // Reap in reverse index order so that removals keep earlier indices valid.
            let mut exited: Vec<usize> = ready.iter().filter(|&&i| i > 0).map(|i| i - 1).collect();
            exited.sort_unstable_by(|a, b| b.cmp(a));
            for index in exited {
                let (proc, pidfd) = self.watched.swap_remove(index);
                self.reap(&proc, Some(&pidfd));
            }
            if ready.contains(&0) {
                self.shared.wake.drain();
            }
        }
        self.finish_close();
    }

    fn handle(&mut self, job: Job) {
        match job {
            Job::Spawn(job) => self.spawn(*job),
            Job::ReaderRetired(id) => self.shared.readers.join_retired(id),
            Job::LeaderExited(proc) => {
                if let Some(at) = self.waiters.iter().position(|(pid, _)| *pid == proc.pid) {
                    let (_, handle) = self.waiters.swap_remove(at);
                    let _ = handle.join();
                }
                self.reap(&proc, None);
            }
            Job::Escalate(proc, at) => self.add_timer(at, Timer::Escalate(Arc::downgrade(&proc))),
            Job::Watch(proc) => self.watch(proc),
            Job::Close(reply) => self.begin_close(reply),
        }
    }

    fn add_timer(&mut self, at: Instant, timer: Timer) {
        self.timer_seq += 1;
        self.timers.push(Reverse(Due(at, self.timer_seq, timer)));
    }

    fn spawn(&mut self, job: SpawnJob) {
        if self.closing.is_some() {
            let _ = job.reply.send(Err(io::Error::other("shutting down")));
            return;
        }
        let child = match sys::spawn(&job.spec) {
            Ok(child) => child,
            Err(e) => {
                let _ = job.reply.send(Err(e));
                return;
            }
        };
        let proc = (job.make)(&child);
        match child.pidfd {
            // The reader thread watches the pidfd (see `process::watch`).
            Some(fd) => proc.state.lock().pidfd = Some(Arc::new(fd)),
            None => self.start_waiter(&proc),
        }
        if let Some(timeout) = job.timeout
            && let Some(at) = proc.started.checked_add(timeout)
        {
            self.add_timer(at, Timer::Timeout(Arc::downgrade(&proc)));
        }
        self.shared.insert(Arc::clone(&proc));
        let _ = job.reply.send(Ok(proc));
    }

    /// Without a pidfd, a small thread blocks in `waitid(WNOWAIT)` for the leader and tells us;
    /// the reaping itself still happens here, under the process's lock.
    fn start_waiter(&mut self, proc: &Arc<Proc>) {
        let pid = proc.pid;
        let waiter_proc = Arc::clone(proc);
        let tx = self.shared.jobs.clone();
        let shared = Arc::clone(&self.shared);
        let spawned = std::thread::Builder::new()
            .name(format!("procwarden-wait-{pid}"))
            .stack_size(self.shared.config.thread_stack_bytes)
            .spawn(move || {
                if let Err(e) = sys::wait_exit_no_reap(pid) {
                    log::warn!("waiting for pid {pid} failed: {e}");
                }
                let _ = tx.send(Job::LeaderExited(waiter_proc));
                shared.wake.wake();
            });
        match spawned {
            Ok(handle) => self.waiters.push((pid, handle)),
            Err(e) => log::error!("cannot start a waiter thread for pid {pid}: {e}"),
        }
    }

    /// Reaps the leader (under the process's lock, so no signal by number can race with the
    /// id being freed) and marks the process exited if its output is complete.
    fn reap(&mut self, proc: &Arc<Proc>, pidfd: Option<&Arc<OwnedFd>>) {
        let mut state = proc.state.lock();
        if state.leader != Leader::Alive {
            return;
        }
        if !reap_leader(proc, &mut state, pidfd.map(|fd| fd.as_fd())) {
            // Spurious wake-up: keep watching.
            drop(state);
            if let Some(fd) = pidfd {
                self.watched.push((Arc::clone(proc), Arc::clone(fd)));
            }
            return;
        }
        if state.pipe_open {
            drop(state);
            let at = Instant::now() + self.shared.config.pipe_grace;
            self.add_timer(at, Timer::PipeGrace(Arc::downgrade(proc)));
        } else {
            self.finalize(proc, state);
        }
    }

    /// Watches a child's pidfd here, because no reader thread could be started for it.
    fn watch(&mut self, proc: Arc<Proc>) {
        let pidfd = proc.state.lock().pidfd.clone();
        match pidfd {
            Some(fd) => self.watched.push((proc, fd)),
            None => self.start_waiter(&proc),
        }
    }

    fn finalize(&mut self, proc: &Arc<Proc>, state: parking_lot::MutexGuard<'_, ProcState>) {
        finalize(&self.shared, proc, state);
    }

    fn fire_due_timers(&mut self) {
        let now = Instant::now();
        while let Some(Reverse(Due(at, ..))) = self.timers.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse(Due(_, _, timer))) = self.timers.pop() else {
                break;
            };
            match timer {
                Timer::Timeout(proc) => {
                    if let Some(proc) = proc.upgrade() {
                        self.time_out(&proc);
                    }
                }
                Timer::Escalate(proc) => {
                    if let Some(proc) = proc.upgrade() {
                        self.kill_if_alive(&proc);
                    }
                }
                Timer::PipeGrace(proc) => {
                    if let Some(proc) = proc.upgrade() {
                        let state = proc.state.lock();
                        if state.exit.is_none() {
                            log::debug!(
                                "{}: output pipe still open {} ms after exit; marking exited",
                                proc_label(&proc),
                                self.shared.config.pipe_grace.as_millis()
                            );
                            self.finalize(&proc, state);
                        }
                    }
                }
                Timer::CloseKill => self.close_kill(),
            }
        }
    }

    fn time_out(&mut self, proc: &Arc<Proc>) {
        let mut state = proc.state.lock();
        if state.exit.is_some() {
            return;
        }
        state.timed_out = true;
        match Proc::signal_group(&state, proc.pid, libc::SIGTERM) {
            Ok(_) => log::info!("{}: timed out; sent SIGTERM to its group", proc_label(proc)),
            Err(e) => log::warn!("{}: timed out; SIGTERM failed: {e}", proc_label(proc)),
        }
        drop(state);
        let at = Instant::now() + self.shared.config.kill_grace;
        self.add_timer(at, Timer::Escalate(Arc::downgrade(proc)));
    }

    /// SIGKILL the group if the process runs or its group may still have members.
    fn kill_if_alive(&mut self, proc: &Arc<Proc>) {
        let state = proc.state.lock();
        if state.exit.is_some() && state.pidfd.is_none() {
            return;
        }
        match Proc::signal_group(&state, proc.pid, libc::SIGKILL) {
            Ok(true) => log::info!("{}: sent SIGKILL to its group", proc_label(proc)),
            Ok(false) => {}
            Err(e) => log::warn!("{}: SIGKILL failed: {e}", proc_label(proc)),
        }
    }

    /// Drops lingering groups that have emptied.
    fn prune_lingering(&mut self) {
        self.shared.lingering.lock().retain(|proc| {
            let mut state = proc.state.lock();
            let alive = state
                .pidfd
                .as_deref()
                .is_some_and(|fd| sys::signal_group(Some(fd.as_fd()), proc.pid, 0, false).is_ok());
            if !alive {
                state.pidfd = None;
            }
            alive
        });
    }

    fn begin_close(&mut self, reply: Sender<()>) {
        if let Some(waiting) = &mut self.closing {
            waiting.push(reply);
            return;
        }
        self.closing = Some(vec![reply]);
        let procs = self.shared.all();
        let lingering = self.shared.lingering.lock().clone();
        let mut signalled = 0;
        for proc in procs.iter().chain(lingering.iter()) {
            let state = proc.state.lock();
            if state.exit.is_some() && state.pidfd.is_none() {
                continue;
            }
            if let Ok(true) = Proc::signal_group(&state, proc.pid, libc::SIGTERM) {
                signalled += 1;
            }
        }
        log::info!("closing: sent SIGTERM to {signalled} process groups");
        let at = Instant::now() + self.shared.config.kill_grace;
        self.add_timer(at, Timer::CloseKill);
    }

    fn close_kill(&mut self) {
        if self.closing.is_none() || self.kill_sent {
            return;
        }
        self.kill_sent = true;
        let procs = self.shared.all();
        let lingering = self.shared.lingering.lock().clone();
        let mut killed = 0;
        for proc in procs.iter().chain(lingering.iter()) {
            let state = proc.state.lock();
            if state.exit.is_some() && state.pidfd.is_none() {
                continue;
            }
            if let Ok(true) = Proc::signal_group(&state, proc.pid, libc::SIGKILL) {
                killed += 1;
            }
        }
        if killed > 0 {
            log::info!("closing: sent SIGKILL to {killed} process groups after the kill grace");
        }
    }

    /// Closing is complete when every process is marked exited and no group is left (every
    /// lingering group has emptied, or the kill grace has passed and SIGKILL was sent).
    fn close_complete(&mut self) -> bool {
        if self.closing.is_none() {
            return false;
        }
        if self.shared.running.load(Ordering::SeqCst) > 0 {
            return false;
        }
        if !self.kill_sent {
            self.prune_lingering();
            if !self.shared.lingering.lock().is_empty() {
                return false;
            }
        }
        true
    }

    fn finish_close(&mut self) {
        // Every group was signalled and every leader reaped. A reader can still be blocked on
        // a pipe held by a process that left its group (setsid): stop them all, then join.
        self.shared.stop_readers.wake();
        self.shared.readers.close_and_join();
        for (_, waiter) in self.waiters.drain(..) {
            let _ = waiter.join();
        }
        // Drain late jobs (e.g. spawns that raced with the close) so that nobody waits on a
        // reply forever.
        while let Ok(job) = self.jobs.try_recv() {
            match job {
                Job::Spawn(job) => {
                    let _ = job.reply.send(Err(io::Error::other("shutting down")));
                }
                Job::Close(reply) => {
                    let _ = reply.send(());
                }
                _ => {}
            }
        }
        self.shared.lingering.lock().clear();
        for reply in self.closing.take().unwrap_or_default() {
            let _ = reply.send(());
        }
        log::info!("closed: every process group ended, every thread joined");
    }
}

/// Reaps the leader if it has exited, under the process's lock (which signalling by number
/// also takes, so the id cannot be freed under a signal). Returns whether it was reaped now.
/// A failed wait (ECHILD: the host reaped it) counts as exited with an unknown status.
pub(crate) fn reap_leader(
    proc: &Proc,
    state: &mut ProcState,
    pidfd: Option<BorrowedFd<'_>>,
) -> bool {
    if state.leader != Leader::Alive {
        return false;
    }
    let outcome = match sys::try_reap(proc.pid, pidfd) {
        Ok(sys::WaitOutcome::Running) => return false,
        Ok(outcome) => outcome,
        Err(e) => {
            log::warn!("{}: reaping pid {} failed: {e}", proc_label(proc), proc.pid);
            sys::WaitOutcome::Unknown
        }
    };
    state.leader = Leader::Reaped(outcome);
    true
}

/// Marks the process exited: seal the output first, then the state, then wake waiters, so
/// that anyone who sees `running: false` reads final output.
///
/// Called by whichever of the two events comes last, with the process's lock held: the
/// supervisor reaping the leader (pipe already at end of file), or the reader thread reaching
/// end of file (leader already reaped). Either way the waiters are one wake-up away from the
/// exit, not two.
pub(crate) fn finalize(shared: &Shared, proc: &Arc<Proc>, mut state: MutexGuard<'_, ProcState>) {
    if state.exit.is_some() {
        return;
    }
    proc.buffer.close();
    let (code, signal) = match state.leader {
        Leader::Reaped(sys::WaitOutcome::Exited(code)) => (code, None),
        Leader::Reaped(sys::WaitOutcome::Signaled(sig)) => {
            (-1, Some(sys::signal_name(sig).into_owned()))
        }
        _ => (-1, None),
    };
    let exit = Exit {
        code,
        signal,
        timed_out: state.timed_out,
        exited_at: SystemTime::now(),
        duration: proc.started.elapsed(),
    };
    state.exit = Some(exit.clone());
    // Does the group outlive its leader? Ask through the pidfd (which names the group, not a
    // number); if it is empty, let the pidfd go.
    let lingering = match state.pidfd.as_deref() {
        Some(fd) => sys::signal_group(Some(fd.as_fd()), proc.pid, 0, false).is_ok(),
        None => false,
    };
    if !lingering {
        state.pidfd = None;
    }
    drop(state);
    proc.exited.notify_all();
    shared.running.fetch_sub(1, Ordering::SeqCst);
    if lingering {
        shared.lingering.lock().push(Arc::clone(proc));
    }
    log::info!(
        "{}: exited: code {}{}{}, {} ms, {} output bytes",
        proc_label(proc),
        exit.code,
        exit.signal
            .as_deref()
            .map(|s| format!(", signal {s}"))
            .unwrap_or_default(),
        if exit.timed_out { ", timed out" } else { "" },
        exit.duration.as_millis(),
        proc.buffer.total_bytes(),
    );
    // The supervisor sleeps until its nearest deadline: tell it when this exit is the first
    // retention deadline it has, or when a close waits for the last exit.
    if shared.record_exit(proc.id) || shared.is_closing() {
        shared.wake.wake();
    }
    if let Some(hook) = &shared.config.on_exit {
        hook(&ExitEvent {
            id: proc.id,
            chat: proc.chat,
            workdir: proc.workdir.clone(),
            exit,
        });
    }
}

/// `process <id> (chat <chat>)` for log lines.
pub(crate) fn proc_label(proc: &Proc) -> String {
    match proc.chat {
        Some(chat) => format!("process {} chat={chat}", proc.id),
        None => format!("process {} chat=-", proc.id),
    }
}
