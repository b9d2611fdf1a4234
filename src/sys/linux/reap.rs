//! The child subreaper: descendants orphaned by a process's exit are reparented to us instead
//! of to PID 1, and we reap them. Only the server (or a library user who opts in) does this:
//! the reaping waits for *any* child (`waitid(P_ALL)`), which would steal the exit statuses of
//! an embedding program's own children.

use std::io;

/// Marks this process a child subreaper (`prctl(PR_SET_CHILD_SUBREAPER)`, Linux 3.4+).
pub(crate) fn set_child_subreaper() -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Blocks until some child has exited and returns its pid without reaping it
/// (`waitid(P_ALL, WEXITED | WNOWAIT)`); `Ok(None)` when there is no child at all (`ECHILD`).
pub(crate) fn wait_any_exited() -> io::Result<Option<u32>> {
    loop {
        // SAFETY: siginfo_t is plain data for which all-zero is valid.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid writes into the siginfo_t we pass.
        let rc = unsafe { libc::waitid(libc::P_ALL, 0, &mut info, libc::WEXITED | libc::WNOWAIT) };
        if rc != 0 {
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::ECHILD) => return Ok(None),
                _ => return Err(err),
            }
        }
        // SAFETY: after a successful waitid the si_pid member is the one filled in.
        let pid = unsafe { info.si_pid() };
        return Ok(u32::try_from(pid).ok().filter(|&p| p > 0));
    }
}

/// Reaps `pid` if it has exited (`waitid(P_PID, WEXITED | WNOHANG)`); whether it did.
pub(crate) fn reap_exited(pid: u32) -> bool {
    let id: libc::id_t = pid;
    // SAFETY: siginfo_t is plain data for which all-zero is valid.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waitid for one pid, writing into our siginfo_t.
    let rc = unsafe { libc::waitid(libc::P_PID, id, &mut info, libc::WEXITED | libc::WNOHANG) };
    // SAFETY: after a successful waitid the si_pid member is the one filled in (0: nothing).
    rc == 0 && unsafe { info.si_pid() } != 0
}

/// This process's children that are alive (not zombies), from one pass over `/proc`.
pub(crate) fn live_children() -> Vec<u32> {
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let rest = stat.get(stat.rfind(')')? + 2..)?;
            let mut fields = rest.split_ascii_whitespace();
            let state = fields.next()?;
            let ppid: u32 = fields.next()?.parse().ok()?;
            (ppid == me && state != "Z" && state != "X").then_some(pid)
        })
        .collect()
}

/// `sig` to `pid`, one of our children that is not reaped (so its number is not reused).
pub(crate) fn signal_child(pid: u32, sig: i32) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: kill takes integers only.
        unsafe { libc::kill(pid, sig) };
    }
}
