//! The soft fd limit on other unix systems.

/// The soft `RLIMIT_NOFILE` that `raise_fd_limit` asks for, given the hard limit. macOS
/// refuses a soft limit above `OPEN_MAX` (10240) even when the hard limit is "unlimited", so
/// there it is capped at 10240; elsewhere the hard limit itself.
pub(in crate::sys) fn fd_limit_target(hard: libc::rlim_t) -> libc::rlim_t {
    #[cfg(any(target_os = "macos", target_os = "ios"))]
    {
        hard.min(10_240)
    }
    #[cfg(not(any(target_os = "macos", target_os = "ios")))]
    {
        hard
    }
}
