//! The accept loop, the registry of connections, eviction and shutdown.
//!
//! One accept thread (the caller of [`Server::run`]) waits in `poll(2)` on the listener and a
//! waker, so [`ShutdownHandle::shutdown`] can end the wait from any thread. Each accepted
//! connection gets a registry slot and its own thread. The registry records what each
//! connection is doing; at the limit (or out of file descriptors), a newcomer evicts the
//! connection that has waited longest without being served (see `Registry::victim`), by
//! shutting its socket down: its thread's blocked read returns at once and the thread ends.
//! Only when no such connection is left does it end the oldest blocked wait instead (through
//! the request's [`Interrupt`]): that request gets its normal answer early, as if its wait had
//! run out, and its connection closes. So long polls never lock other clients out.

use std::collections::HashMap;
use std::io;
use std::net::Shutdown;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::stream::{Listener, Stream};
use super::wire::ErrorAnswer;
use super::{Limits, Listen, Service, conn};
use crate::interrupt::Interrupt;
use crate::sys;

/// An evicted connection that has been reading its request for longer than this is told 408
/// (it was slow); one evicted sooner is told 503 ("Server is busy."). Either way the answer
/// comes before the close: a request in flight is never dropped silently.
pub const SLOW_REQUEST: Duration = Duration::from_secs(1);

/// What a connection is doing, as its thread last reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum State {
    /// Answered and closing: discarding what the client still sends. First to evict.
    Closing,
    /// Waiting for the first byte of a request (a new or a keep-alive connection).
    Idle,
    /// A request head has begun and is not complete.
    ReadingHead,
    /// Reading a request body.
    ReadingBody,
    /// Writing a response (or a `100 Continue`) to a client that is slow to read it.
    Writing,
    /// Inside the service. Never evicted: this is the work the server is for.
    Busy,
}

impl State {
    /// Whether a newcomer may evict a connection in this state.
    fn evictable(self) -> bool {
        self != State::Busy
    }

    /// Whether shutdown closes a connection in this state at once. A connection whose request
    /// has reached the service (busy, or writing its answer) finishes it.
    fn closed_by_shutdown(self) -> bool {
        !matches!(self, State::Busy | State::Writing)
    }
}

/// One registered connection.
#[derive(Debug)]
struct Entry {
    /// What it is doing.
    state: State,
    /// Since when.
    since: Instant,
    /// Its socket, to shut down from here.
    stream: Arc<Stream>,
    /// While busy: the request's interrupt, which ends its wait if it blocks in one.
    interrupt: Option<Interrupt>,
    /// Its wait was ended to make room: it answers, closes, and no longer counts against
    /// the limit.
    ending: bool,
}

/// How a connection is evicted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Eviction {
    /// Nothing of a request is in flight (idle, lingering): just close.
    Close,
    /// Its request is being read: answer 503 (or 408 when slow), then close.
    Answer,
    /// Its answer is being written to a client that does not read: close.
    Drop,
    /// Blocked in a wait: end the wait; the thread answers and closes.
    EndWait,
}

/// Every connection that holds a slot, and whether the server is shutting down.
#[derive(Debug, Default)]
struct Registry {
    /// Set once the server stops accepting: requests that arrive from then on are answered
    /// 503 "Server is shutting down." and their connections closed.
    stopping: bool,
    /// Set once by the full shutdown, under this lock, so that a connection thread that
    /// reports itself idle either sees it or is seen by the shutdown sweep.
    closing_all: bool,
    /// Id of the next connection.
    next_id: u64,
    /// The connections by id.
    conns: HashMap<u64, Entry>,
}

impl Registry {
    /// The connection a newcomer should evict: one that is closing anyway, else the one that
    /// has waited longest in its state (idle since its last response, or stuck in a head, a
    /// body or a write since it began), never one inside the service.
    ///
    /// Why age and not "idle before slow": a newcomer is idle until its first bytes arrive,
    /// so ranking every idle connection first would let a flood of new connections evict
    /// each legitimate newcomer before it could send its request. By age, a newcomer is
    /// evicted only after every connection older than it.
    ///
    /// Only when none of those is left: the connection blocked longest in a wait inside the
    /// service (its wait is ended; see [`Eviction::EndWait`]).
    fn victim(&self) -> Option<u64> {
        let not_busy = self
            .conns
            .iter()
            .filter(|(_, e)| e.state.evictable())
            .min_by_key(|(id, e)| (e.state != State::Closing, e.since, **id));
        let waiting = || {
            self.conns
                .iter()
                .filter(|(_, e)| e.is_waiting())
                .min_by_key(|(id, e)| (e.since, **id))
        };
        not_busy.or_else(waiting).map(|(id, _)| *id)
    }

    /// Connections that hold a slot: all but those whose wait was ended to make room.
    fn occupied(&self) -> usize {
        self.conns.values().filter(|e| !e.ending).count()
    }

    /// Evicts connection `id` (see [`Eviction`]). Returns the status of the answer it was
    /// given, if it was answered.
    fn evict(&mut self, id: u64, why: &str) -> Option<u16> {
        let entry = self.conns.get_mut(&id)?;
        let mut how = entry.eviction();
        if how == Eviction::Close && entry.state == State::Idle && entry.stream.has_unread() {
            // Its request has begun arriving, but its thread has not read it yet (a newly
            // accepted connection, say): it gets the answer a request being read gets.
            how = Eviction::Answer;
        }
        log::debug!(
            "http: evicting connection {id} ({:?}, {how:?}): {why}",
            entry.state
        );
        if how == Eviction::EndWait {
            entry.ending = true;
            if let Some(interrupt) = &entry.interrupt {
                interrupt.interrupt();
            }
            return None;
        }
        let entry = self.conns.remove(&id)?;
        let mut answered = None;
        if how == Eviction::Answer {
            let answer = if self.closing_all {
                ErrorAnswer::shutting_down()
            } else if entry.since.elapsed() >= SLOW_REQUEST {
                ErrorAnswer::timeout("evicted to make room: the request was too slow")
            } else {
                ErrorAnswer::busy(None)
            };
            refuse(&entry.stream, &answer);
            answered = Some(answer.status);
        }
        // It may already be closed by its peer: nothing to do then.
        let _ = entry.stream.shutdown(Shutdown::Both);
        answered
    }
}

impl Entry {
    /// A new connection: idle until its first bytes arrive.
    fn new(stream: Arc<Stream>) -> Entry {
        Entry {
            state: State::Idle,
            since: Instant::now(),
            stream,
            interrupt: None,
            ending: false,
        }
    }

    /// Busy inside the service and blocked in a wait that may be ended early.
    fn is_waiting(&self) -> bool {
        self.state == State::Busy
            && !self.ending
            && self.interrupt.as_ref().is_some_and(Interrupt::has_waiters)
    }

    fn eviction(&self) -> Eviction {
        match self.state {
            State::Closing | State::Idle => Eviction::Close,
            State::ReadingHead | State::ReadingBody => Eviction::Answer,
            State::Writing => Eviction::Drop,
            State::Busy => Eviction::EndWait,
        }
    }
}

/// What the accept thread and the connection threads share.
pub(super) struct Shared {
    /// The bounds.
    pub(super) limits: Limits,
    /// The application.
    pub(super) service: Arc<dyn Service>,
    /// The connections.
    registry: Mutex<Registry>,
    /// Mirror of `Registry::stopping`, read without the lock by the accept loop and the
    /// connections.
    stopping: AtomicBool,
    /// Wakes the accept loop's poll (and its back-off waits) on shutdown.
    waker: sys::Waker,
}

impl Shared {
    /// Records that connection `id` now does `state`. Returns `None` if the connection must
    /// end instead: it was evicted, or it would go idle while the server shuts down (it is
    /// then deregistered). Otherwise returns whether the server is shutting down (a response
    /// written now should close the connection).
    pub(super) fn enter(&self, id: u64, state: State) -> Option<bool> {
        self.enter_with(id, state, None)
    }

    /// As [`enter`](Self::enter) for [`State::Busy`], with the request's interrupt: a
    /// newcomer may end the request's wait through it when no other room is left. The answer
    /// of a request whose wait was ended closes its connection.
    pub(super) fn enter_busy(&self, id: u64, interrupt: &Interrupt) -> Option<bool> {
        self.enter_with(id, State::Busy, Some(interrupt))
    }

    fn enter_with(&self, id: u64, state: State, interrupt: Option<&Interrupt>) -> Option<bool> {
        let mut registry = self.registry.lock();
        let stopping = registry.stopping;
        if registry.closing_all && state.closed_by_shutdown() {
            registry.conns.remove(&id);
            return None;
        }
        let entry = registry.conns.get_mut(&id)?;
        entry.state = state;
        entry.since = Instant::now();
        entry.interrupt = interrupt.cloned();
        Some(stopping || entry.ending)
    }

    /// Whether the server has stopped accepting (requests now get 503).
    pub(super) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Gives up connection `id`'s slot (when its thread ends).
    pub(super) fn leave(&self, id: u64) {
        self.registry.lock().conns.remove(&id);
    }

    /// Stops accepting: the accept loop ends (and the listener closes); connections stay,
    /// and a request that arrives on one is answered 503 "Server is shutting down." and its
    /// connection closed.
    fn stop_accepting(&self) {
        let mut registry = self.registry.lock();
        registry.stopping = true;
        self.stopping.store(true, Ordering::SeqCst);
        drop(registry);
        self.waker.wake();
    }

    /// The full shutdown: stops accepting, and closes every connection that is not serving
    /// a request.
    fn shutdown(&self) {
        let mut registry = self.registry.lock();
        registry.stopping = true;
        self.stopping.store(true, Ordering::SeqCst);
        if !registry.closing_all {
            registry.closing_all = true;
            let ids: Vec<u64> = registry
                .conns
                .iter()
                .filter(|(_, e)| e.state.closed_by_shutdown())
                .map(|(id, _)| *id)
                .collect();
            for id in ids {
                if let Some(status) = registry.evict(id, "server shutting down") {
                    self.service.answered_by_front_end(status);
                }
            }
        }
        drop(registry);
        self.waker.wake();
    }

    /// Waits up to `timeout` or until shutdown, whichever is first, without polling: the
    /// waker's fd becomes readable on shutdown.
    fn wait_or_shutdown(&self, timeout: Duration) {
        let mut ready = Vec::new();
        if let Err(e) = sys::poll_readable(&[self.waker.fd()], Some(timeout), &mut ready) {
            log::warn!("http: waiting after an accept error: {e}");
        }
    }
}

/// A bound HTTP server. [`Server::run`] serves until [`ShutdownHandle::shutdown`].
pub struct Server {
    /// Shared with the connection threads and the shutdown handles.
    shared: Arc<Shared>,
    /// The listener and the spare fd (see [`Server::run`]); `run` takes them, and drops the
    /// listener (removing a unix socket file) when done.
    listener: Mutex<Option<(Listener, Option<OwnedFd>)>>,
    /// What `local_addr` says.
    url: String,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// Stops a [`Server`] from any thread. Cheap to clone.
#[derive(Clone)]
pub struct ShutdownHandle {
    /// The server's shared state.
    shared: Arc<Shared>,
}

impl std::fmt::Debug for ShutdownHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShutdownHandle").finish_non_exhaustive()
    }
}

impl ShutdownHandle {
    /// The first step of a graceful shutdown: stops accepting (the listener closes, so new
    /// connections are refused) but keeps the open connections, so that a client whose
    /// request arrives on a kept-alive connection is told 503 `Server is shutting down.`
    /// (and the connection closed) rather than finding it silently gone. Requests already
    /// inside the service finish. Call [`shutdown`](Self::shutdown) once the application's
    /// blocking work has ended. Returns at once; idempotent.
    pub fn stop_accepting(&self) {
        self.shared.stop_accepting();
    }

    /// Stops accepting, closes every connection that is not serving a request (idle, or still
    /// sending its request), and lets requests already inside the service finish: their
    /// responses are written, with `Connection: close`. [`Server::run`] then returns once
    /// every connection thread has been joined. Returns at once; idempotent.
    ///
    /// A service call that blocks (a long-poll) delays `run`'s return until it answers, so
    /// end the application's blocking work as well (e.g. close the process manager, which
    /// answers every waiter).
    pub fn shutdown(&self) {
        self.shared.shutdown();
    }
}

impl Server {
    /// Binds to `listen` (TCP port 0 picks a free port; for unix sockets see [`Listen::Unix`]).
    /// Nothing is accepted until [`Server::run`].
    ///
    /// # Errors
    ///
    /// When the address cannot be bound (in use, not permitted), or the spare descriptor kept
    /// for running out of descriptors cannot be opened.
    pub fn bind(listen: &Listen, limits: Limits, service: Arc<dyn Service>) -> io::Result<Server> {
        let listener = Listener::bind(listen)?;
        let url = listener.url()?;
        // Opened now, not when `run` starts, so that it is there even if the process runs
        // out of fds in between.
        let spare = open_spare();
        Ok(Server {
            shared: Arc::new(Shared {
                limits,
                service,
                registry: Mutex::new(Registry::default()),
                stopping: AtomicBool::new(false),
                waker: sys::Waker::new()?,
            }),
            listener: Mutex::new(Some((listener, spare))),
            url,
        })
    }

    /// The address actually bound: `http://127.0.0.1:PORT`, `http://[::1]:PORT`, or
    /// `unix:/path`.
    pub fn local_addr(&self) -> String {
        self.url.clone()
    }

    /// A handle that stops this server from any thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Serves until shutdown: accepts connections and gives each its own thread. Returns
    /// `Ok` after a shutdown, once every connection thread has been joined and the listener
    /// closed (a unix socket file removed). Accept errors never end it: `EMFILE`/`ENFILE` are
    /// handled with a spare fd (see below), errors about one connection are skipped, and
    /// any other error (`ENOMEM`, `ENOBUFS`, ...) is logged and followed by a back-off wait
    /// ([`Limits::accept_backoff_min`] doubling to [`Limits::accept_backoff_max`]) that
    /// shutdown interrupts.
    ///
    /// Out of file descriptors: a pending connection cannot be accepted, so it would stay
    /// pending and `poll` would report it again at once, a busy loop. The server keeps one
    /// spare fd (`/dev/null`, opened by [`Server::bind`]) for this: it closes the spare,
    /// accepts the connection, answers it 503 and closes it, reopens the spare, and goes back
    /// to `poll` (which blocks until the next connection is pending).
    ///
    /// # Errors
    ///
    /// Only if called a second time (`WouldBlock`).
    pub fn run(&self) -> io::Result<()> {
        let Some((listener, spare)) = self.listener.lock().take() else {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "Server::run was already called",
            ));
        };
        let mut threads: Vec<JoinHandle<()>> = Vec::new();
        let result = self.accept_loop(&listener, spare, &mut threads);
        // Close the listener first: connections still in its backlog are refused now rather
        // than after the requests in flight, and a unix socket file goes away.
        drop(listener);
        // After `stop_accepting` the open connections stay until `shutdown`; otherwise (a
        // full shutdown, or an accept loop that failed) every connection that is not serving
        // a request closes now. Then wait for them all.
        if result.is_err() || !self.shared.is_stopping() {
            self.shared.shutdown();
        }
        for thread in threads {
            if thread.join().is_err() {
                log::error!("http: a connection thread panicked");
            }
        }
        log::debug!("http: server on {} stopped", self.url);
        result
    }

    /// Accepts until shutdown. See [`Server::run`].
    fn accept_loop(
        &self,
        listener: &Listener,
        mut spare: Option<OwnedFd>,
        threads: &mut Vec<JoinHandle<()>>,
    ) -> io::Result<()> {
        let shared = &*self.shared;
        let limits = &shared.limits;
        let mut backoff = limits.accept_backoff_min;
        let mut ready = Vec::with_capacity(2);
        while !shared.stopping.load(Ordering::SeqCst) {
            if let Err(e) =
                sys::poll_readable(&[listener.fd(), shared.waker.fd()], None, &mut ready)
            {
                log::warn!("http: poll on the listener failed: {e}");
                shared.wait_or_shutdown(backoff);
                backoff = backoff.saturating_mul(2).min(limits.accept_backoff_max);
                continue;
            }
            if ready.contains(&1) {
                shared.waker.drain();
                continue; // the loop condition tells whether this was a shutdown
            }
            if spare.is_none() {
                spare = open_spare();
            }
            // Accept everything pending, then poll again.
            while !shared.stopping.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, peer)) => {
                        backoff = limits.accept_backoff_min;
                        join_finished(threads);
                        if let Some(thread) = self.admit(stream, peer) {
                            threads.push(thread);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => match accept_error_action(&e) {
                        AcceptAction::Retry => {
                            log::debug!("http: accept: {e}");
                        }
                        AcceptAction::UseSpareFd if spare.is_some() => {
                            // Out of fds: make room as at the connection limit (an idle or
                            // slow connection first, else the oldest wait), and serve the
                            // newcomer on the spare's fd; refuse it only if nothing can go.
                            drop(spare.take()); // closes it
                            match listener.accept() {
                                Ok((stream, peer)) => {
                                    if self.make_room("out of file descriptors") {
                                        log::warn!("http: accept: {e}: made room for {peer}");
                                        if let Some(thread) = self.admit(stream, peer) {
                                            threads.push(thread);
                                        }
                                    } else {
                                        log::warn!("http: accept: {e}: refusing {peer}");
                                        refuse_counted(
                                            &*shared.service,
                                            &stream,
                                            &ErrorAnswer::busy(Some("too many open files".into())),
                                        );
                                    }
                                }
                                Err(e) => log::debug!("http: accept with the spare fd: {e}"),
                            }
                            spare = open_spare();
                            // Back to poll: accept(2) fails with EMFILE before it looks for
                            // a pending connection, so accepting on until WouldBlock would
                            // spin while the process is out of fds. Poll blocks until a
                            // connection is really pending.
                            break;
                        }
                        AcceptAction::UseSpareFd | AcceptAction::BackOff => {
                            if accept_error_action(&e) == AcceptAction::UseSpareFd {
                                // No spare left: free an fd for the next try.
                                self.make_room("out of file descriptors, no spare");
                            }
                            log::warn!("http: accept: {e}; waiting {backoff:?}");
                            shared.wait_or_shutdown(backoff);
                            backoff = backoff.saturating_mul(2).min(limits.accept_backoff_max);
                            break;
                        }
                    },
                }
            }
        }
        Ok(())
    }

    /// Evicts one connection (see `Registry::victim`) to free its slot and its fd. Returns
    /// whether there was one to evict.
    fn make_room(&self, why: &str) -> bool {
        let mut registry = self.shared.registry.lock();
        match registry.victim() {
            Some(victim) => {
                if let Some(status) = registry.evict(victim, why) {
                    self.shared.service.answered_by_front_end(status);
                }
                true
            }
            None => false,
        }
    }

    /// Gives a new connection a slot (evicting another if needed) and a thread; or refuses it
    /// with 503 when every slot is busy inside the service.
    fn admit(&self, stream: Stream, peer: String) -> Option<JoinHandle<()>> {
        let shared = &self.shared;
        if let Err(e) = stream.prepare() {
            log::debug!("http: dropping connection from {peer}: {e}");
            return None;
        }
        let stream = Arc::new(stream);
        let id = {
            let mut registry = shared.registry.lock();
            if registry.stopping {
                drop(registry);
                refuse_counted(&*shared.service, &stream, &ErrorAnswer::shutting_down());
                return None;
            }
            if registry.occupied() >= shared.limits.max_connections {
                match registry.victim() {
                    Some(victim) => {
                        if let Some(status) = registry.evict(victim, "connection limit reached") {
                            shared.service.answered_by_front_end(status);
                        }
                    }
                    None => {
                        drop(registry);
                        log::warn!(
                            "http: all {} connections are busy: refusing {peer}",
                            shared.limits.max_connections
                        );
                        refuse_counted(&*shared.service, &stream, &ErrorAnswer::busy(None));
                        return None;
                    }
                }
            }
            let id = registry.next_id;
            registry.next_id += 1;
            registry.conns.insert(id, Entry::new(Arc::clone(&stream)));
            id
        };
        let thread_shared = Arc::clone(shared);
        let thread_stream = Arc::clone(&stream);
        shared.service.connection_opened();
        let spawned = std::thread::Builder::new()
            .name("procwarden-http".into())
            .stack_size(shared.limits.connection_stack_bytes)
            .spawn(move || {
                conn::serve(&thread_shared, id, &thread_stream, peer);
                thread_shared.service.connection_closed();
            });
        match spawned {
            Ok(thread) => Some(thread),
            Err(e) => {
                shared.service.connection_closed();
                log::warn!("http: cannot start a connection thread: {e}");
                shared.leave(id);
                refuse_counted(
                    &*shared.service,
                    &stream,
                    &ErrorAnswer::busy(Some("cannot start a thread".into())),
                );
                None
            }
        }
    }
}

/// Joins the connection threads that have ended (instant: they have), so the list stays as
/// long as the number of live connections.
fn join_finished(threads: &mut Vec<JoinHandle<()>>) {
    let mut i = 0;
    while i < threads.len() {
        if threads[i].is_finished() {
            if threads.swap_remove(i).join().is_err() {
                log::error!("http: a connection thread panicked");
            }
        } else {
            i += 1;
        }
    }
}

/// What to do about an accept error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AcceptAction {
    /// It concerned one connection (aborted before we accepted it) or was an interruption:
    /// accept the next one.
    Retry,
    /// Out of file descriptors (`EMFILE`, `ENFILE`): free the spare fd to accept and refuse
    /// the pending connection.
    UseSpareFd,
    /// Anything else (`ENOMEM`, `ENOBUFS`, unknown): wait before trying again.
    BackOff,
}

/// Classifies an accept error (see [`AcceptAction`]).
fn accept_error_action(e: &io::Error) -> AcceptAction {
    match e.raw_os_error() {
        Some(libc::EMFILE | libc::ENFILE) => AcceptAction::UseSpareFd,
        // Linux passes pending network errors of the new socket on to accept (see accept(2)):
        // they concern that connection only.
        Some(
            libc::ECONNABORTED
            | libc::EINTR
            | libc::EPROTO
            | libc::EPERM
            | libc::ENETDOWN
            | libc::ENOPROTOOPT
            | libc::EHOSTDOWN
            | libc::ENONET
            | libc::EHOSTUNREACH
            | libc::EOPNOTSUPP
            | libc::ENETUNREACH
            | libc::ETIMEDOUT,
        ) => AcceptAction::Retry,
        _ => match e.kind() {
            io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted => AcceptAction::Retry,
            _ => AcceptAction::BackOff,
        },
    }
}

/// The spare fd for [`AcceptAction::UseSpareFd`], if one can be opened.
fn open_spare() -> Option<OwnedFd> {
    match sys::open_dev_null() {
        Ok(fd) => Some(fd),
        Err(e) => {
            log::warn!("http: cannot open the spare fd: {e}");
            None
        }
    }
}

/// [`refuse`], and tells the service (for its request counters).
fn refuse_counted(service: &dyn Service, stream: &Stream, answer: &ErrorAnswer) {
    refuse(stream, answer);
    service.answered_by_front_end(answer.status);
}

/// Answers a connection we will not serve, from the accept thread, without ever blocking:
/// one nonblocking write of the answer (a fresh socket's send buffer always has room for it),
/// end of our side, then whatever the client already sent is read and discarded (nonblocking)
/// so that closing does not reset the connection under the answer.
fn refuse(stream: &Stream, answer: &ErrorAnswer) {
    if stream.set_nonblocking(true).is_err() {
        return;
    }
    let _ = stream.write(&answer.to_bytes());
    let _ = stream.shutdown(Shutdown::Write);
    let mut sink = [0u8; 4096];
    for _ in 0..REFUSE_DRAIN_READS {
        match stream.read(&mut sink) {
            Ok(n) if n > 0 => {}
            _ => break,
        }
    }
}

/// Most reads (of 4 KiB) with which [`refuse`] discards what a refused client already sent.
const REFUSE_DRAIN_READS: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;

    fn os_error(code: i32) -> io::Error {
        io::Error::from_raw_os_error(code)
    }

    #[test]
    fn accept_errors_are_classified() {
        let table = [
            // Out of fds: the spare fd makes room.
            (libc::EMFILE, AcceptAction::UseSpareFd),
            (libc::ENFILE, AcceptAction::UseSpareFd),
            // About one connection: the next one is accepted.
            (libc::ECONNABORTED, AcceptAction::Retry),
            (libc::EINTR, AcceptAction::Retry),
            (libc::EPROTO, AcceptAction::Retry),
            (libc::EPERM, AcceptAction::Retry),
            // Resources: back off.
            (libc::ENOMEM, AcceptAction::BackOff),
            (libc::ENOBUFS, AcceptAction::BackOff),
            (libc::EBADF, AcceptAction::BackOff),
            (libc::EINVAL, AcceptAction::BackOff),
        ];
        for (code, action) in table {
            assert_eq!(accept_error_action(&os_error(code)), action, "{code}");
        }
        let aborted = io::Error::from(io::ErrorKind::ConnectionAborted);
        assert_eq!(accept_error_action(&aborted), AcceptAction::Retry);
        let other = io::Error::other("strange");
        assert_eq!(accept_error_action(&other), AcceptAction::BackOff);
    }

    fn entry(state: State, age_ms: u64) -> Entry {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        Entry {
            state,
            since: Instant::now() - Duration::from_millis(age_ms),
            stream: Arc::new(Stream::Unix(a)),
            interrupt: None,
            ending: false,
        }
    }

    #[test]
    fn victims_are_closing_first_then_the_longest_waiting_never_busy() {
        let mut registry = Registry::default();
        registry.conns.insert(1, entry(State::Busy, 900));
        assert_eq!(
            registry.victim(),
            None,
            "busy connections are never evicted"
        );
        registry.conns.insert(2, entry(State::ReadingHead, 300));
        assert_eq!(registry.victim(), Some(2));
        registry.conns.insert(3, entry(State::Idle, 10));
        registry.conns.insert(4, entry(State::Idle, 500));
        registry.conns.insert(6, entry(State::Writing, 400));
        assert_eq!(registry.victim(), Some(4), "the longest waiting goes first");
        registry.conns.insert(5, entry(State::Closing, 1));
        assert_eq!(registry.victim(), Some(5), "closing goes before anything");
        registry.evict(5, "test");
        registry.evict(4, "test");
        assert_eq!(registry.victim(), Some(6));
        registry.evict(6, "test");
        assert_eq!(registry.victim(), Some(2));
        registry.evict(2, "test");
        assert_eq!(
            registry.victim(),
            Some(3),
            "a fresh idle connection goes last"
        );
    }

    #[test]
    fn blocked_waits_are_ended_only_when_nothing_else_can_go() {
        let mut registry = Registry::default();
        let waiting = |age_ms| {
            let interrupt = Interrupt::new();
            // A wait registers itself on its request's interrupt while it blocks.
            let registration = interrupt.on_interrupt(|| {});
            let mut e = entry(State::Busy, age_ms);
            e.interrupt = Some(interrupt.clone());
            (e, interrupt, registration)
        };
        let (old, old_interrupt, _old_wait) = waiting(900);
        let (young, young_interrupt, _young_wait) = waiting(100);
        registry.conns.insert(1, old);
        registry.conns.insert(2, young);
        registry.conns.insert(3, entry(State::Busy, 5000));
        registry.conns.insert(4, entry(State::Idle, 1));
        assert_eq!(
            registry.victim(),
            Some(4),
            "an idle connection goes before any wait"
        );
        registry.evict(4, "test");
        assert_eq!(registry.victim(), Some(1), "then the oldest wait");
        assert_eq!(registry.occupied(), 3);
        registry.evict(1, "test");
        assert!(old_interrupt.is_interrupted() && !young_interrupt.is_interrupted());
        assert!(
            registry.conns.contains_key(&1),
            "it answers and leaves by itself"
        );
        assert_eq!(
            registry.occupied(),
            2,
            "an ended wait no longer holds a slot"
        );
        assert_eq!(registry.victim(), Some(2), "never the same one twice");
        registry.evict(2, "test");
        assert_eq!(
            registry.victim(),
            None,
            "a busy request that is not waiting is never evicted"
        );
    }

    const READER_NAME: &str = "evict-reader";

    /// Whether this process's thread called `name` is blocked in `read` or `recvfrom` (its
    /// `/proc/self/task/*/syscall` line starts with that system call's number).
    fn thread_blocked_in_read(name: &str) -> bool {
        let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
            return false;
        };
        tasks.flatten().any(|task| {
            let path = task.path();
            let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
            let syscall = std::fs::read_to_string(path.join("syscall")).unwrap_or_default();
            let number: Option<libc::c_long> = syscall
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok());
            comm.trim() == name
                && matches!(number, Some(n) if n == libc::SYS_read || n == libc::SYS_recvfrom)
        })
    }

    #[test]
    fn eviction_wakes_a_blocked_reader() {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let stream = Arc::new(Stream::Unix(a));
        let mut registry = Registry::default();
        registry.conns.insert(7, Entry::new(Arc::clone(&stream)));
        let reader = std::thread::Builder::new()
            .name(READER_NAME.into())
            .spawn(move || {
                stream.set_read_timeout(Duration::from_secs(10)).unwrap();
                let started = Instant::now();
                let mut buf = [0u8; 8];
                (stream.read(&mut buf).unwrap(), started.elapsed())
            })
            .unwrap();
        // The reader must really be blocked in its read when the eviction comes (nothing in
        // the product can signal that: watch the thread's system call, against a deadline).
        let deadline = Instant::now() + Duration::from_secs(10);
        while !thread_blocked_in_read(READER_NAME) {
            assert!(Instant::now() < deadline, "the reader never blocked");
            std::thread::yield_now();
        }
        registry.evict(7, "test");
        let (n, waited) = reader.join().unwrap();
        assert_eq!(n, 0);
        assert!(waited < Duration::from_secs(5), "{waited:?}");
        assert!(registry.conns.is_empty());
        drop(b);
    }
}
