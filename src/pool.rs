//! Reader threads, reused from one child to the next.
//!
//! Every running child has exactly one reader thread (it runs
//! [`process::watch`](crate::process::watch)). Creating and joining a thread per child costs
//! about 50 µs of CPU here (stack mapping, clone, the thread's set-up and tear-down), taken from
//! the two cores the child itself needs, so a finished reader waits a while for the next child
//! instead of exiting. Idle readers retire after the configured idle time (a deadline, not a
//! poll) and tell the pool's owner, which joins them; a close stops and joins them all.
//!
//! The pool knows nothing of processes: it runs tasks, one per thread at a time.
//!
//! Hand-off protocol: `idle` counts idle readers that nobody has claimed. A dispatch claims one
//! by decrementing it (only from a positive value) and then sends the task; if it cannot claim
//! one, it starts a new thread. A reader whose idle deadline passes retires only if it can
//! still decrement `idle`; if the count is zero, a claim is in flight and a task is on its way
//! to some idle reader, so it goes on waiting. Counts are interchangeable between readers, so
//! no task ever waits in the channel without an idle reader to take it.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::{JoinHandle, ThreadId};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use parking_lot::Mutex;

/// One reader's work: watch one child until it is done.
pub(crate) type Task = Box<dyn FnOnce() + Send>;

/// Told the id of each reader that retired while the pool is open, so that its owner joins it
/// (through [`ReaderPool::join_retired`]) from a thread of its own.
pub(crate) type OnRetire = Box<dyn Fn(ThreadId) + Send + Sync>;

/// How the pool's threads are made.
pub(crate) struct PoolConfig {
    /// Stack size of each reader thread.
    pub(crate) stack_bytes: usize,
    /// How long an idle reader waits for the next task before it retires.
    pub(crate) idle: Duration,
}

pub(crate) struct ReaderPool {
    inner: Arc<Inner>,
}

struct Inner {
    config: PoolConfig,
    on_retire: OnRetire,
    /// `None` once closed: idle readers then see the channel disconnect and exit.
    tx: Mutex<Option<Sender<Task>>>,
    rx: Receiver<Task>,
    /// Idle readers not yet claimed by a dispatch.
    idle: AtomicUsize,
    /// Reader threads by id; `None` once closed (no new thread may start then).
    threads: Mutex<Option<HashMap<ThreadId, JoinHandle<()>>>>,
}

impl ReaderPool {
    pub(crate) fn new(config: PoolConfig, on_retire: OnRetire) -> Self {
        let (tx, rx) = crossbeam_channel::unbounded();
        ReaderPool {
            inner: Arc::new(Inner {
                config,
                on_retire,
                tx: Mutex::new(Some(tx)),
                rx,
                idle: AtomicUsize::new(0),
                threads: Mutex::new(Some(HashMap::new())),
            }),
        }
    }

    /// Gives the task to an idle reader, or to a new one.
    ///
    /// # Errors
    ///
    /// When the pool is closed or no thread can be started; the task is dropped then.
    pub(crate) fn dispatch(&self, task: Task) -> io::Result<()> {
        let inner = &self.inner;
        if claim(&inner.idle) {
            return match inner.tx.lock().as_ref() {
                // Cannot fail: the pool holds the receiver.
                Some(tx) => tx
                    .send(task)
                    .map_err(|_| io::Error::other("reader pool closed")),
                None => Err(io::Error::other("reader pool closed")),
            };
        }
        // Spawn and record under one lock, so that a close cannot miss a thread started just
        // before it, and no thread starts after it.
        let mut threads = inner.threads.lock();
        let Some(threads) = threads.as_mut() else {
            return Err(io::Error::other("reader pool closed"));
        };
        let worker = Arc::clone(inner);
        let handle = std::thread::Builder::new()
            .name("procwarden-read".into())
            .stack_size(inner.config.stack_bytes)
            .spawn(move || reader_main(&worker, task))?;
        threads.insert(handle.thread().id(), handle);
        Ok(())
    }

    /// Joins a reader that has retired.
    pub(crate) fn join_retired(&self, id: ThreadId) {
        let handle = self
            .inner
            .threads
            .lock()
            .as_mut()
            .and_then(|t| t.remove(&id));
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }

    /// Closes the pool and joins every reader. Readers still running a task must have been
    /// told to stop first (the manager's stop signal).
    pub(crate) fn close_and_join(&self) {
        self.inner.tx.lock().take();
        let threads: Vec<JoinHandle<()>> = self
            .inner
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
        self.inner.threads.lock().as_ref().map_or(0, HashMap::len)
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

fn reader_main(inner: &Inner, first: Task) {
    let mut task = Some(first);
    while let Some(next) = task.take() {
        next();
        inner.idle.fetch_add(1, Ordering::SeqCst);
        task = loop {
            match inner.rx.recv_timeout(inner.config.idle) {
                Ok(next) => break Some(next),
                // Retire, unless every idle slot has been claimed: then a task is coming.
                Err(RecvTimeoutError::Timeout) if claim(&inner.idle) => break None,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break None,
            }
        };
    }
    // Once closed, the closer joins every thread itself.
    if inner.tx.lock().is_some() {
        (inner.on_retire)(std::thread::current().id());
    }
}
