//! Linux's soft fd limit: any value up to the hard limit is accepted.

/// The soft `RLIMIT_NOFILE` that `raise_fd_limit` asks for, given the hard limit: the hard
/// limit itself.
pub(in crate::sys) fn fd_limit_target(hard: libc::rlim_t) -> libc::rlim_t {
    hard
}
