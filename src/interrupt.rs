//! [`Interrupt`]: ends blocked waits early, from another thread.
//!
//! A server that holds a client's long poll, or an agent whose call was cancelled, needs to end
//! a wait before its deadline without waiting for the process. A wait given an `Interrupt`
//! returns as soon as [`Interrupt::interrupt`] is called, with the answer it would give had its
//! time run out. No polling: each wait registers how to wake it, and `interrupt` runs that.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

type Wake = Arc<dyn Fn() + Send + Sync>;

/// Ends waits early. Cheap to clone; every clone is the same interrupt, and once interrupted it
/// stays so (a wait started after it returns at once).
///
/// ```
/// use procwarden::{Command, Interrupt, Manager, OutputQuery};
/// use std::time::{Duration, Instant};
///
/// let manager = Manager::new()?;
/// let started = manager.start(Command::shell("sleep 30"))?;
/// let interrupt = Interrupt::new();
/// let from_elsewhere = interrupt.clone();
/// std::thread::spawn(move || {
///     std::thread::sleep(Duration::from_millis(50));
///     from_elsewhere.interrupt();
/// });
/// let begun = Instant::now();
/// let query = OutputQuery::until_exit(Duration::from_secs(300)).interruptible(&interrupt);
/// let out = manager.output(&started.id, None, query)?;
/// assert!(out.running && begun.elapsed() < Duration::from_secs(30));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Default)]
pub struct Interrupt(Arc<Inner>);

#[derive(Default)]
struct Inner {
    interrupted: AtomicBool,
    next_id: AtomicU64,
    /// How to wake each wait that is blocked on this interrupt now.
    wakers: Mutex<Vec<(u64, Wake)>>,
}

impl fmt::Debug for Interrupt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Interrupt")
            .field("interrupted", &self.is_interrupted())
            .finish_non_exhaustive()
    }
}

impl PartialEq for Interrupt {
    /// Two handles are equal when they are the same interrupt.
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Interrupt {}

impl Interrupt {
    /// A new interrupt, not yet interrupted.
    #[must_use]
    pub fn new() -> Self {
        Interrupt::default()
    }

    /// Ends every wait given this interrupt, now and from now on.
    pub fn interrupt(&self) {
        self.0.interrupted.store(true, Ordering::SeqCst);
        let wakers: Vec<Wake> = self
            .0
            .wakers
            .lock()
            .iter()
            .map(|(_, w)| Arc::clone(w))
            .collect();
        for wake in wakers {
            wake();
        }
    }

    /// Whether [`interrupt`](Self::interrupt) has been called.
    #[must_use]
    pub fn is_interrupted(&self) -> bool {
        self.0.interrupted.load(Ordering::SeqCst)
    }

    /// Blocks until this is interrupted or `span` has passed (a huge span: until interrupted);
    /// returns whether it was interrupted. For a pause that a cancel must be able to end, such
    /// as the backoff before a retry.
    #[must_use = "it says whether the pause ended by the interrupt"]
    pub fn wait_for(&self, span: Duration) -> bool {
        let pair = Arc::new((Mutex::new(()), Condvar::new()));
        let waker = Arc::clone(&pair);
        let _registered = self.on_interrupt(move || {
            let _locked = waker.0.lock();
            waker.1.notify_all();
        });
        let deadline = crate::time::deadline_in(span);
        let mut locked = pair.0.lock();
        while !self.is_interrupted() {
            if pair.1.wait_until(&mut locked, deadline).timed_out() {
                break;
            }
        }
        self.is_interrupted()
    }

    /// Whether a wait is blocked on this interrupt right now.
    #[must_use]
    pub fn has_waiters(&self) -> bool {
        !self.0.wakers.lock().is_empty()
    }

    /// Registers how to wake a wait until the returned guard is dropped. The wait must check
    /// [`is_interrupted`](Self::is_interrupted) under the same lock that `wake` takes before it
    /// notifies, after registering: then no interrupt is missed.
    pub(crate) fn on_interrupt(&self, wake: impl Fn() + Send + Sync + 'static) -> Registration {
        let id = self.0.next_id.fetch_add(1, Ordering::Relaxed);
        self.0.wakers.lock().push((id, Arc::new(wake)));
        Registration {
            interrupt: self.clone(),
            id,
        }
    }
}

/// Keeps a wait's waker registered; dropping it deregisters.
pub(crate) struct Registration {
    interrupt: Interrupt,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.interrupt
            .0
            .wakers
            .lock()
            .retain(|(id, _)| *id != self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn interrupting_runs_the_registered_wakers_until_deregistered() {
        let interrupt = Interrupt::new();
        let woken = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&woken);
        let registration = interrupt.on_interrupt(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        assert!(interrupt.has_waiters() && !interrupt.is_interrupted());
        interrupt.clone().interrupt();
        assert_eq!(woken.load(Ordering::SeqCst), 1);
        assert!(interrupt.is_interrupted());
        drop(registration);
        assert!(!interrupt.has_waiters());
        interrupt.interrupt();
        assert_eq!(woken.load(Ordering::SeqCst), 1);
        assert_eq!(interrupt, interrupt.clone());
        assert_ne!(interrupt, Interrupt::new());
    }
}
