//! Whether a process group still has live members, for the one question the kernel has no event
//! for: has a group emptied? Used only while closing, to end the wait early once a lingering
//! group (leader gone, members left) is down to nothing but zombies.

use std::io;

/// Whether process group `pgid` has a member that is not a zombie.
///
/// Linux: reads `/proc/<pid>/stat` of every process (state and process group). A zombie that
/// PID 1 has not reaped yet does not count: it is dead. Reading numbers is harmless even if the
/// group id was reused: at worst the caller waits longer, within its own bound.
///
/// Other unix systems: `killpg(pgid, 0)`, which counts zombies too.
pub(crate) fn group_has_live_members(pgid: libc::pid_t) -> io::Result<bool> {
    #[cfg(target_os = "linux")]
    {
        for entry in std::fs::read_dir("/proc")?.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            // A process may vanish between listing and reading: skip it.
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // The command name is in parentheses and may hold anything: parse after the last ')'.
            let Some(rest) = stat.rfind(')').and_then(|i| stat.get(i + 2..)) else {
                continue;
            };
            let mut fields = rest.split_ascii_whitespace();
            let state = fields.next().unwrap_or("Z");
            let _ppid = fields.next();
            let pgrp = fields.next().and_then(|f| f.parse::<libc::pid_t>().ok());
            if pgrp == Some(pgid) && state != "Z" && state != "X" {
                return Ok(true);
            }
        }
        Ok(false)
    }
    #[cfg(not(target_os = "linux"))]
    {
        Ok(super::unix::group_alive(pgid))
    }
}
