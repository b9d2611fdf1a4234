//! Which process groups still have live members, for the one question the kernel has no event
//! for: has a group emptied? A lingering group (leader gone, members left) that is down to
//! zombies waiting for PID 1 counts as empty.

use std::collections::HashSet;
use std::os::unix::fs::OpenOptionsExt;

/// The process groups that have a member that is not a zombie: one pass over `/proc`.
/// `None` where `/proc` cannot be read (on other unix systems always: callers then ask per
/// group).
pub(crate) fn live_groups() -> Option<HashSet<u32>> {
    let mut groups = HashSet::new();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(rest) = stat.rfind(')').and_then(|i| stat.get(i + 2..)) else {
            continue;
        };
        let mut fields = rest.split_ascii_whitespace();
        let state = fields.next().unwrap_or("Z");
        let _ppid = fields.next();
        if let Some(pgrp) = fields.next().and_then(|f| f.parse::<u32>().ok())
            && state != "Z"
            && state != "X"
        {
            groups.insert(pgrp);
        }
    }
    Some(groups)
}

/// A new read end of the pipe whose end `fd` is: `/proc/self/fd/N` opened for reading (a
/// pipe's magic link opens the pipe itself), non-blocking and close-on-exec. Holding it does
/// not delay the end of file a reader sees (only writers do), and `FIONREAD` on it counts what
/// is still unread after our write end is gone.
pub(crate) fn pipe_reader(
    fd: std::os::fd::BorrowedFd<'_>,
) -> std::io::Result<Option<std::os::fd::OwnedFd>> {
    use std::os::fd::AsRawFd;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(format!("/proc/self/fd/{}", fd.as_raw_fd()))?;
    Ok(Some(file.into()))
}
