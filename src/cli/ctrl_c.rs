//! Ctrl-C during a foreground `exec`: SIGINT is blocked in this thread (and so in every thread
//! started after it) and received by one thread in `sigwait` (`crate::sys`), which turns each
//! one into a message on a channel. No handler runs in signal context, nothing polls, and the
//! terminal's settings are never touched.

use std::io;

use crossbeam_channel::{Receiver, unbounded};

/// The signal that Ctrl-C sends.
const SIGINT: i32 = libc::SIGINT;

/// Takes SIGINT over for the rest of this process's life: from now on each SIGINT is a message
/// on the returned channel instead of the end of the process. Call it before starting any
/// other thread that should not receive SIGINT itself (every thread started later inherits the
/// blocked mask).
///
/// # Errors
///
/// When SIGINT cannot be blocked or the thread cannot be started (then SIGINT keeps its
/// default action).
pub(super) fn watch() -> io::Result<Receiver<()>> {
    crate::sys::block_signals(&[SIGINT])?;
    let (tx, rx) = unbounded();
    let started = std::thread::Builder::new()
        .name("procwarden-sigint".into())
        .spawn(move || {
            while crate::sys::wait_for_signal(&[SIGINT]).is_ok() {
                if tx.send(()).is_err() {
                    break;
                }
            }
        });
    if let Err(e) = started {
        // Ctrl-C must still end this command.
        let _ = crate::sys::unblock_signals(&[SIGINT]);
        return Err(e);
    }
    Ok(rx)
}
