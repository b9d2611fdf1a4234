//! Linux's signal names beyond the ones every unix has.

use std::ffi::c_int;

/// The name of a signal only Linux has (`SIGSTKFLT`, `SIGPWR`), or `None`.
pub(in crate::sys) fn extra_signal_name(sig: c_int) -> Option<&'static str> {
    match sig {
        libc::SIGSTKFLT => Some("SIGSTKFLT"),
        libc::SIGPWR => Some("SIGPWR"),
        _ => None,
    }
}

/// A real-time signal's name as `kill -l` in bash gives it: `"SIGRTMIN"`, `"SIGRTMIN+3"`;
/// `None` for a number outside `SIGRTMIN()..=SIGRTMAX()`.
pub(in crate::sys) fn realtime_signal_name(sig: c_int) -> Option<String> {
    let (min, max) = (libc::SIGRTMIN(), libc::SIGRTMAX());
    if sig == min {
        return Some("SIGRTMIN".to_owned());
    }
    if sig > min && sig <= max {
        return Some(format!("SIGRTMIN+{}", sig - min));
    }
    None
}

#[cfg(test)]
mod tests {
    use crate::sys::signal_name;

    #[test]
    fn linux_signals_and_the_real_time_ones_have_names() {
        assert_eq!(signal_name(libc::SIGRTMIN()), "SIGRTMIN");
        assert_eq!(signal_name(libc::SIGRTMIN() + 3), "SIGRTMIN+3");
        assert_eq!(
            signal_name(libc::SIGRTMAX()),
            format!("SIGRTMIN+{}", libc::SIGRTMAX() - libc::SIGRTMIN())
        );
        assert_eq!(signal_name(libc::SIGPWR), "SIGPWR");
        assert_eq!(signal_name(libc::SIGSTKFLT), "SIGSTKFLT");
        assert_eq!(
            signal_name(libc::SIGRTMAX() + 1),
            format!("SIG{}", libc::SIGRTMAX() + 1)
        );
    }
}
