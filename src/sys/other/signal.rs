//! The signal names of other unix systems beyond the ones every unix has.

use std::ffi::c_int;

/// The name of a signal that macOS has and Linux has not (`SIGEMT`, `SIGINFO`), or `None`.
pub(in crate::sys) fn extra_signal_name(sig: c_int) -> Option<&'static str> {
    #[cfg(any(target_os = "macos", target_os = "ios"))]
    {
        match sig {
            libc::SIGEMT => Some("SIGEMT"),
            libc::SIGINFO => Some("SIGINFO"),
            _ => None,
        }
    }
    #[cfg(not(any(target_os = "macos", target_os = "ios")))]
    {
        let _ = sig;
        None
    }
}

/// No real-time signals are named here: always `None`.
pub(in crate::sys) fn realtime_signal_name(_sig: c_int) -> Option<String> {
    None
}
