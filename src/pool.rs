//! Reader threads, reused from one child to the next.
//!
//! Every running child has exactly one reader thread (see [`process::watch`]). Creating and
//! joining a thread per child costs about 50 µs of CPU here (stack mapping, clone, the thread's
//! set-up and tear-down), taken from the two cores the child itself needs, so a finished reader
//! waits a while for the next child instead of exiting. Idle readers retire after
//! [`DEFAULT_READER_IDLE`](crate::DEFAULT_READER_IDLE) (a deadline, not a poll), and the
//! supervisor joins them; a close stops and joins them all.
//!
//! Hand-off protocol: `idle` counts idle readers that nobody has claimed. A start claims one by
//! decrementing it (only from a positive value) and then sends the work; if it cannot claim
//! one, it starts a new thread. A reader whose idle deadline passes retires only if it can
//! still decrement `idle`; if the count is zero, a claim is in flight and work is on its way to
//! some idle reader, so it goes on waiting. Counts are interchangeable between readers, so no
//! work ever waits in the channel without an idle reader to take it.

use std::collections::HashMap;
use std::io;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::{JoinHandle, ThreadId};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use parking_lot::Mutex;

use crate::manager::Shared;
use crate::process::{self, Proc};
use crate::reaper::{Job, proc_label};

/// What a reader needs for one child.
pub(crate) struct ReaderWork {
    pub(crate) proc: Arc<Proc>,
    pub(crate) pipe: OwnedFd,
    pub(crate) pidfd: Option<Arc<OwnedFd>>,
}

pub(crate) struct ReaderPool {
    /// `None` once closed: idle readers then see the channel disconnect and exit.
    tx: Mutex<Option<Sender<ReaderWork>>>,
    rx: Receiver<ReaderWork>,
    /// Idle readers not yet claimed by a start.
    idle: AtomicUsize,
    /// Reader threads by id; `None` once closed (no new thread may start then).
    threads: Mutex<Option<HashMap<ThreadId, JoinHandle<()>>>>,
}

impl ReaderPool {
    pub(crate) fn new() -> Self {
        let (tx, rx) = crossbeam_channel::unbounded();
        ReaderPool {
            tx: Mutex::new(Some(tx)),
            rx,
            idle: AtomicUsize::new(0),
            threads: Mutex::new(Some(HashMap::new())),
        }
    }

    /// Gives the child to an idle reader, or to a new one. Fails only if no thread can be
    /// started (the work is dropped: its pipe closes).
    pub(crate) fn dispatch(&self, shared: &Arc<Shared>, work: ReaderWork) -> io::Result<()> {
        if claim(&self.idle) {
            match self.tx.lock().as_ref() {
                Some(tx) => {
                    // Cannot fail: the pool holds the receiver.
                    let _ = tx.send(work);
                    return Ok(());
                }
                None => return Err(io::Error::other("reader pool closed")),
            }
        }
        // Spawn and record under one lock, so that a close cannot miss a thread started just
        // before it, and no thread starts after it.
        let mut threads = self.threads.lock();
        let Some(threads) = threads.as_mut() else {
            return Err(io::Error::other("reader pool closed"));
        };
        let worker_shared = Arc::clone(shared);
        let handle = std::thread::Builder::new()
            .name("procwarden-read".into())
            .stack_size(shared.config.thread_stack_bytes)
            .spawn(move || reader_main(&worker_shared, work))?;
        threads.insert(handle.thread().id(), handle);
        Ok(())
    }

    /// Joins a reader that has retired.
    pub(crate) fn join_retired(&self, id: ThreadId) {
        let handle = self.threads.lock().as_mut().and_then(|t| t.remove(&id));
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }

    /// Closes the pool and joins every reader. Readers still watching a child must have been
    /// told to stop first (the manager's stop signal).
    pub(crate) fn close_and_join(&self) {
        self.tx.lock().take();
        let threads: Vec<JoinHandle<()>> = self
            .threads
            .lock()
            .take()
            .map(|t| t.into_values().collect())
            .unwrap_or_default();
        for handle in threads {
            let _ = handle.join();
        }
    }

    /// Reader threads alive (busy or idle).
    pub(crate) fn threads(&self) -> usize {
        self.threads.lock().as_ref().map_or(0, HashMap::len)
    }
}

/// Takes one unclaimed idle reader, if there is one.
fn claim(idle: &AtomicUsize) -> bool {
    let mut n = idle.load(Ordering::SeqCst);
    while n > 0 {
        match idle.compare_exchange(n, n - 1, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => return true,
            Err(now) => n = now,
        }
    }
    false
}

fn reader_main(shared: &Arc<Shared>, first: ReaderWork) {
    let pool = &shared.readers;
    let mut work = Some(first);
    while let Some(next) = work.take() {
        run(shared, next);
        pool.idle.fetch_add(1, Ordering::SeqCst);
        work = loop {
            match pool.rx.recv_timeout(shared.config.reader_idle) {
                Ok(next) => break Some(next),
                // Retire, unless every idle slot has been claimed: then work is coming.
                Err(RecvTimeoutError::Timeout) if claim(&pool.idle) => break None,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break None,
            }
        };
    }
    if !shared.is_closing() {
        let _ = shared
            .jobs
            .send(Job::ReaderRetired(std::thread::current().id()));
        shared.wake.wake();
    }
}

fn run(shared: &Shared, work: ReaderWork) {
    let ReaderWork { proc, pipe, pidfd } = work;
    if let Err(e) = process::watch(shared, &proc, pipe, pidfd) {
        log::warn!("{}: reading output failed: {e}", proc_label(&proc));
    }
}
