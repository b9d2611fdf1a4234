//! The supervisor: the one long-lived thread of a manager.
//!
//! It spawns every child (the parent-death signal is tied to the spawning *thread*, so that
//! thread must outlive the children), runs every deadline (timeouts, kill escalation, tracked
//! starts' deadlines, retention,
//! and, for children watched here, the pipe grace), runs the on-exit hook, and carries out
//! `close`. Children with a pidfd are watched by their reader thread (see
//! [`crate::process::watch`]); the supervisor watches the others (no pidfd: other unix systems,
//! old kernels, a reader that could not start). It sleeps in `poll(2)` on the pidfds it watches
//! and a wake-up fd, with the nearest deadline as the timeout.
//!
//! Other threads talk to it through a channel and wake it through [`sys::Waker`].

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use crate::info::ExitEvent;
use crate::manager::table::{Job, Shared, SpawnJob};
use crate::process::{Leader, Proc};
use crate::sys;
use crate::time::{deadline_from, deadline_in};

/// While closing, the first re-check of whether the remaining process groups have emptied; it
/// doubles up to [`CLOSE_RECHECK_MAX`]. The kernel has no event for "this group is now empty",
/// so this is the one place the product waits by re-checking; it happens only during a close,
/// and never longer than twice the kill grace.
pub const CLOSE_RECHECK_FIRST: Duration = Duration::from_millis(5);
/// Longest interval between two such re-checks.
pub const CLOSE_RECHECK_MAX: Duration = Duration::from_millis(200);
/// Outside a close, the first re-check of lingering groups (leader gone, members left) after
/// one appears; it doubles up to [`LINGER_RECHECK_MAX`] while any group lingers, and stops when
/// none does. The same missing kernel event as above: without it an emptied group's pidfd would
/// stay open until the next retention sweep.
pub const LINGER_RECHECK_FIRST: Duration = Duration::from_millis(100);
/// Longest interval between two re-checks of lingering groups.
pub const LINGER_RECHECK_MAX: Duration = Duration::from_secs(10);

#[derive(Debug)]
enum Timer {
    /// The process's timeout: SIGTERM, mark timed out, escalate later.
    Timeout(Weak<Proc>),
    /// SIGKILL the group if it still runs or may have members.
    Escalate(Weak<Proc>),
    /// A tracked start's deadline: SIGKILL the group, as an escalation does.
    Deadline(Weak<Proc>),
    /// The leader exited this long ago: mark exited even if the pipe is still open.
    PipeGrace(Weak<Proc>),
    /// Closing: the kill grace is over, SIGKILL every group left.
    CloseKill,
    /// Closing: look again whether the remaining groups have emptied.
    CloseRecheck,
    /// Look again whether lingering groups have emptied.
    LingerRecheck,
}

impl Timer {
    /// Whether the timer can still do anything (its process is alive and running).
    fn is_live(&self) -> bool {
        match self {
            Timer::Timeout(p) | Timer::PipeGrace(p) => {
                p.upgrade().is_some_and(|p| p.state.lock().exit.is_none())
            }
            Timer::Escalate(p) => p.strong_count() > 0,
            Timer::Deadline(p) => p
                .upgrade()
                .is_some_and(|p| p.state.lock().may_have_members()),
            Timer::CloseKill | Timer::CloseRecheck | Timer::LingerRecheck => true,
        }
    }
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

/// Where a close stands.
struct Closing {
    /// Callers to answer when the close completes.
    replies: Vec<Sender<()>>,
    /// When SIGKILL went to every remaining group (after the kill grace).
    kill_sent_at: Option<Instant>,
    /// Next interval between re-checks of the remaining groups.
    recheck: Duration,
    /// Whether a re-check timer is pending.
    recheck_pending: bool,
}

struct Supervisor {
    shared: Arc<Shared>,
    jobs: Receiver<Job>,
    /// Leaders not yet reaped that are watched here (their reader could not watch them).
    watched: Vec<(Arc<Proc>, Arc<OwnedFd>)>,
    timers: BinaryHeap<Reverse<Due>>,
    timer_seq: u64,
    closing: Option<Closing>,
    /// Per-child waiter threads (no pidfd), joined as their leaders are reaped.
    waiters: Vec<(u32, std::thread::JoinHandle<()>)>,
    /// When the pending lingering re-check is due, if one is.
    linger_due: Option<Instant>,
    /// Interval to the next lingering re-check.
    linger_interval: Duration,
}

/// Runs the supervisor until a close completes.
/// Spawns a child and registers it: under `Managed`'s lock (the orphan reaper that finds this
/// child exited must find it recorded as ours, see `manager::orphans`), `sys::spawn`, the start
/// order, `Proc::new`, the table. Called by the supervisor, or by the caller's own thread when
/// the child needs no parent-death signal (see `Manager::spawn`); what only the supervisor
/// does (waiter thread, timers) follows in `Supervisor::supervise`.
pub(crate) fn spawn_child(
    shared: &Shared,
    spec: sys::SpawnSpec,
    proc: crate::process::ProcSpec,
) -> Result<Arc<Proc>, sys::SpawnFailure> {
    let mut managed = shared.managed.lock();
    let spawned = sys::spawn(&spec);
    // The start order is taken here, where spawns happen one at a time.
    let seq = spawned.as_ref().ok().map(|child| {
        managed.insert(child.pid);
        shared.next_seq()
    });
    drop(managed);
    shared.managed.spawned();
    // The child has its copy of the output's write end; ours must go so that end of file
    // arrives.
    drop(spec);
    let child = spawned?;
    // With a pidfd the reader thread watches the exit (see `process::watch`); without, a
    // waiter thread of the supervisor's.
    let proc = Proc::new(proc, child.pid, seq.unwrap_or_default(), child.pidfd);
    shared.insert(Arc::clone(&proc));
    log::info!(
        "{}: started pid {} in {}: {}",
        proc.label(),
        proc.pid,
        proc.workdir.display(),
        crate::command::log_excerpt(&proc.command)
    );
    Ok(proc)
}

pub(crate) fn run(shared: Arc<Shared>, jobs: Receiver<Job>) {
    let mut sup = Supervisor {
        shared,
        jobs,
        watched: Vec::new(),
        timers: BinaryHeap::new(),
        timer_seq: 0,
        closing: None,
        waiters: Vec::new(),
        linger_due: None,
        linger_interval: LINGER_RECHECK_FIRST,
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
            self.schedule_linger_recheck(now);
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
            Job::Supervise {
                proc,
                timeout,
                deadline,
            } => self.supervise(&proc, timeout, deadline),
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
            Job::ExitHook(event) => self.run_hook(&event),
            Job::Close(reply) => self.begin_close(reply),
        }
    }

    /// Runs the exit hook. A hook that panics is logged and the supervisor goes on: the next
    /// exit still runs its hook, and no child loses its supervisor (whose exit would fire every
    /// parent-death signal).
    fn run_hook(&self, event: &ExitEvent) {
        if let Some(hook) = &self.shared.config.on_exit {
            let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| hook(event)));
            if ran.is_err() {
                log::error!("the exit hook panicked for process {}; going on", event.id);
            }
        }
    }

    fn add_timer(&mut self, at: Instant, timer: Timer) {
        // Timers of processes that exited early stay queued until due; drop the dead ones when
        // they pile up, so that long timeouts cannot grow the queue without bound.
        let running = self.shared.running.load(Ordering::SeqCst);
        if self.timers.len() > 1024 + 4 * running {
            let live: Vec<Reverse<Due>> = std::mem::take(&mut self.timers)
                .into_iter()
                .filter(|Reverse(Due(_, _, t))| t.is_live())
                .collect();
            self.timers = live.into();
        }
        self.timer_seq += 1;
        self.timers.push(Reverse(Due(at, self.timer_seq, timer)));
    }

    fn spawn(&mut self, job: SpawnJob) {
        if self.closing.is_some() {
            let _ = job.reply.send(Err(shutting_down()));
            return;
        }
        let SpawnJob {
            spec,
            proc,
            timeout,
            deadline,
            reply,
        } = job;
        match spawn_child(&self.shared, spec, proc) {
            Ok(proc) => {
                self.supervise(&proc, timeout, deadline);
                let _ = reply.send(Ok(proc));
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    /// What only this thread does for a fresh child: its waiter thread where there is no
    /// pidfd, its timeout and its deadline.
    fn supervise(
        &mut self,
        proc: &Arc<Proc>,
        timeout: Option<Duration>,
        deadline: Option<Instant>,
    ) {
        if proc.state.lock().pidfd.is_none() {
            self.start_waiter(proc);
        }
        if let Some(timeout) = timeout {
            let at = deadline_from(proc.started, timeout);
            self.add_timer(at, Timer::Timeout(Arc::downgrade(proc)));
        }
        if let Some(at) = deadline {
            self.add_timer(at, Timer::Deadline(Arc::downgrade(proc)));
        }
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
        if !proc.reap_leader(&mut state, pidfd.map(|fd| fd.as_fd())) {
            // Spurious wake-up: keep watching.
            drop(state);
            if let Some(fd) = pidfd {
                self.watched.push((Arc::clone(proc), Arc::clone(fd)));
            }
            return;
        }
        // Marked exited (and its waiters woken) first; the orphan reaper after.
        if let Some(at) = proc.leader_reaped(state, &*self.shared) {
            self.add_timer(at, Timer::PipeGrace(Arc::downgrade(proc)));
        }
        self.shared.managed.reaped_leader(proc.pid);
    }

    /// Watches a child's exit here, because its reader thread could not start or failed. A
    /// child without a pidfd already has its waiter thread.
    fn watch(&mut self, proc: Arc<Proc>) {
        let state = proc.state.lock();
        if state.leader != Leader::Alive {
            return;
        }
        let pidfd = state.pidfd.clone();
        drop(state);
        if let Some(fd) = pidfd {
            self.watched.push((proc, fd));
        }
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
                        proc.kill_if_alive();
                    }
                }
                Timer::Deadline(proc) => {
                    if let Some(proc) = proc.upgrade() {
                        log::info!("{}: its deadline passed", proc.label());
                        proc.kill_if_alive();
                    }
                }
                Timer::PipeGrace(proc) => {
                    if let Some(proc) = proc.upgrade() {
                        proc.pipe_grace_over(&*self.shared);
                    }
                }
                Timer::CloseKill => self.close_kill(),
                Timer::CloseRecheck => {
                    if let Some(closing) = &mut self.closing {
                        closing.recheck_pending = false;
                    }
                }
                Timer::LingerRecheck => {
                    if self.linger_due.is_some_and(|due| due <= now) {
                        self.linger_due = None;
                        self.prune_lingering();
                    }
                }
            }
        }
    }

    fn time_out(&mut self, proc: &Arc<Proc>) {
        let mut state = proc.state.lock();
        if state.exit.is_some() {
            return;
        }
        state.timed_out = true;
        let sent = proc.signal_locked(&state, libc::SIGTERM);
        drop(state);
        match sent {
            Ok(_) => log::info!("{}: timed out; sent SIGTERM to its group", proc.label()),
            Err(e) => log::warn!("{}: timed out; SIGTERM failed: {e}", proc.label()),
        }
        let at = deadline_in(self.shared.config.kill_grace);
        self.add_timer(at, Timer::Escalate(Arc::downgrade(proc)));
    }

    /// Drops lingering groups that have emptied: no live (non-zombie) member in `/proc` where it
    /// can tell, and the pidfd (which names the group itself) agreeing that members remain.
    fn prune_lingering(&mut self) {
        let live = sys::live_groups();
        self.shared.retain_lingering(|proc| {
            if live
                .as_ref()
                .is_some_and(|groups| !groups.contains(&proc.pid))
            {
                proc.forget_group(&mut proc.state.lock());
                return false;
            }
            proc.group_may_have_members()
        });
    }

    /// Keeps a re-check of lingering groups pending while any group lingers: soon after a new
    /// one appears, then on a doubling interval.
    fn schedule_linger_recheck(&mut self, now: Instant) {
        if self.shared.lingering_added.swap(false, Ordering::SeqCst) {
            self.linger_interval = LINGER_RECHECK_FIRST;
        }
        // Contained groups need no re-check: their watcher has the kernel's event.
        if !self.shared.lingering().iter().any(|p| p.cgroup.is_none()) {
            self.linger_interval = LINGER_RECHECK_FIRST;
            return;
        }
        let due = now + self.linger_interval;
        if self.linger_due.is_none_or(|pending| pending > due) {
            self.linger_due = Some(due);
            self.add_timer(due, Timer::LingerRecheck);
            self.linger_interval = (self.linger_interval * 2).min(LINGER_RECHECK_MAX);
        }
    }

    fn begin_close(&mut self, reply: Sender<()>) {
        if let Some(closing) = &mut self.closing {
            closing.replies.push(reply);
            return;
        }
        self.closing = Some(Closing {
            replies: vec![reply],
            kill_sent_at: None,
            recheck: CLOSE_RECHECK_FIRST,
            recheck_pending: false,
        });
        let signalled = self.signal_remaining(libc::SIGTERM);
        let adopted = self.signal_adopted(libc::SIGTERM);
        log::info!(
            "closing: sent SIGTERM to {signalled} process groups and {adopted} adopted processes"
        );
        let at = deadline_in(self.shared.config.kill_grace);
        self.add_timer(at, Timer::CloseKill);
    }

    /// Sends `sig` to every group that runs or may still have members; returns how many.
    fn signal_remaining(&self, sig: i32) -> usize {
        let procs = self.shared.all();
        let lingering = self.shared.lingering();
        let mut signalled = 0;
        for proc in procs.iter().chain(lingering.iter()) {
            let state = proc.state.lock();
            if !state.may_have_members() {
                continue;
            }
            if let Ok(true) = proc.signal_locked(&state, sig) {
                signalled += 1;
            }
        }
        signalled
    }

    /// Without cgroups, a child subreaper's adopted descendants (orphans reparented to it) are
    /// members of the processes they came from: a close ends them too. With cgroups they are
    /// in their process's cgroup already.
    fn adopted(&self) -> Vec<u32> {
        if !self.shared.config.subreaper || self.shared.containment.is_some() {
            return Vec::new();
        }
        self.shared.managed.adopted()
    }

    /// `sig` to every adopted descendant (see [`adopted`](Self::adopted)); how many.
    fn signal_adopted(&self, sig: i32) -> usize {
        let adopted = self.adopted();
        for &pid in &adopted {
            sys::contain::signal_child(pid, sig);
        }
        adopted.len()
    }

    fn close_kill(&mut self) {
        let Some(closing) = &mut self.closing else {
            return;
        };
        if closing.kill_sent_at.is_some() {
            return;
        }
        closing.kill_sent_at = Some(Instant::now());
        let killed = self.signal_remaining(libc::SIGKILL) + self.signal_adopted(libc::SIGKILL);
        if killed > 0 {
            log::info!("closing: sent SIGKILL to {killed} process groups after the kill grace");
        }
    }

    /// A close is complete when every process is marked exited and every lingering group has
    /// no live member left. Group emptiness has no kernel event, so until then this re-checks
    /// on a doubling interval; after SIGKILL it gives up once another kill grace has passed.
    fn close_complete(&mut self) -> bool {
        let Some(closing) = &self.closing else {
            return false;
        };
        let (kill_sent_at, recheck, recheck_pending) = (
            closing.kill_sent_at,
            closing.recheck,
            closing.recheck_pending,
        );
        if self.shared.running.load(Ordering::SeqCst) > 0 {
            return false;
        }
        self.prune_lingering();
        let adopted = self.adopted();
        if kill_sent_at.is_some() {
            // Killing an adopted process can orphan its children to us: they go too.
            for &pid in &adopted {
                sys::contain::signal_child(pid, libc::SIGKILL);
            }
        }
        if self.shared.lingering().is_empty() && adopted.is_empty() {
            return true;
        }
        let now = Instant::now();
        if let Some(sent) = kill_sent_at
            && now >= deadline_from(sent, self.shared.config.kill_grace)
        {
            log::warn!(
                "closing: process groups still have members after SIGKILL; giving up on them"
            );
            return true;
        }
        let uncontained =
            !adopted.is_empty() || self.shared.lingering().iter().any(|p| p.cgroup.is_none());
        if !uncontained {
            // Contained groups tell us when they empty (`ExitSink::group_emptied`); only the
            // give-up deadline after SIGKILL needs a timer.
            if let Some(sent) = kill_sent_at
                && !recheck_pending
            {
                if let Some(closing) = &mut self.closing {
                    closing.recheck_pending = true;
                }
                self.add_timer(
                    deadline_from(sent, self.shared.config.kill_grace),
                    Timer::CloseRecheck,
                );
            }
            return false;
        }
        if !recheck_pending {
            if let Some(closing) = &mut self.closing {
                closing.recheck = (recheck * 2).min(CLOSE_RECHECK_MAX);
                closing.recheck_pending = true;
            }
            self.add_timer(now + recheck, Timer::CloseRecheck);
        }
        false
    }

    fn finish_close(&mut self) {
        // Every group was signalled and every leader reaped. A reader can still be blocked on
        // a pipe held by a process that left its group (setsid): stop them all, then join.
        self.shared.stop_readers.wake();
        self.shared.readers.close_and_join();
        for (_, waiter) in self.waiters.drain(..) {
            let _ = waiter.join();
        }
        // Late jobs: run the last exit hooks, refuse spawns that raced with the close, answer
        // other closers.
        while let Ok(job) = self.jobs.try_recv() {
            match job {
                Job::Spawn(job) => {
                    let _ = job.reply.send(Err(shutting_down()));
                }
                Job::ExitHook(event) => self.run_hook(&event),
                Job::Close(reply) => {
                    let _ = reply.send(());
                }
                _ => {}
            }
        }
        self.shared.clear_lingering();
        if let Some(containment) = &self.shared.containment {
            containment.close();
        }
        self.shared.managed.stop();
        for reply in self.closing.take().map(|c| c.replies).unwrap_or_default() {
            let _ = reply.send(());
        }
        log::info!("closed: every process group ended, every thread joined");
    }
}

/// The answer to a spawn that raced with a close.
fn shutting_down() -> sys::SpawnFailure {
    sys::SpawnFailure {
        stage: sys::SpawnStage::Setup,
        error: io::Error::other("shutting down"),
    }
}
