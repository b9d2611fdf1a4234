//! Termination signals for a program that embeds the manager (the `serve` binary): block them in
//! every thread, and wait for them in one thread with `sigwait`. No handler is installed, so no
//! code runs in signal context, and children are unaffected (the spawn resets their mask).

use std::io;

use libc::c_int;

/// Builds a signal set from a list of signal numbers.
fn sigset_of(signals: &[c_int]) -> io::Result<libc::sigset_t> {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it before any other use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable sigset_t.
    if unsafe { libc::sigemptyset(&mut set) } != 0 {
        return Err(io::Error::last_os_error());
    }
    for &sig in signals {
        // SAFETY: `set` was initialised by sigemptyset; an invalid number is reported as EINVAL.
        if unsafe { libc::sigaddset(&mut set, sig) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(set)
}

/// Blocks `signals` in the calling thread. Threads started afterwards inherit the mask, so call
/// this before starting any thread; then only [`wait_for_signal`] receives them.
pub(crate) fn block_signals(signals: &[c_int]) -> io::Result<()> {
    let set = sigset_of(signals)?;
    // SAFETY: `set` is initialised; a null old-set pointer is allowed.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// Unblocks `signals` in the calling thread (undoes [`block_signals`]).
pub(crate) fn unblock_signals(signals: &[c_int]) -> io::Result<()> {
    let set = sigset_of(signals)?;
    // SAFETY: `set` is initialised; a null old-set pointer is allowed.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// Blocks until one of `signals` (blocked in every thread) is pending, consumes it and returns
/// its number.
pub(crate) fn wait_for_signal(signals: &[c_int]) -> io::Result<c_int> {
    let set = sigset_of(signals)?;
    loop {
        let mut sig: c_int = 0;
        // SAFETY: `set` is initialised and `sig` is a valid place for the result.
        let rc = unsafe { libc::sigwait(&set, &mut sig) };
        match rc {
            0 => return Ok(sig),
            libc::EINTR => continue,
            rc => return Err(io::Error::from_raw_os_error(rc)),
        }
    }
}
