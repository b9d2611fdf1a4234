//! Helpers shared by the integration tests: deadlines and /proc inspection for what the product
//! cannot signal (a pid leaving the process table, thread and fd counts settling).
#![allow(dead_code)] // each test binary uses a different subset

pub mod http;

use std::time::{Duration, Instant};

/// Polls `cond` every 10 ms until it holds or `limit` passes; returns whether it held. Only for
/// conditions the product cannot signal.
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `(pid, state, ppid, pgrp)` of every process in /proc.
pub fn processes() -> Vec<(i32, char, i32, i32)> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The command name is in parentheses and may contain spaces: parse after the last ')'.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() < 3 {
            continue;
        }
        let state = fields[0].chars().next().unwrap_or('?');
        let ppid = fields[1].parse().unwrap_or(0);
        let pgrp = fields[2].parse().unwrap_or(0);
        out.push((pid, state, ppid, pgrp));
    }
    out
}

/// Live (not zombie) members of process group `pgid`.
pub fn live_group_members(pgid: i32) -> Vec<i32> {
    processes()
        .into_iter()
        .filter(|&(_, state, _, pgrp)| pgrp == pgid && state != 'Z' && state != 'X')
        .map(|(pid, ..)| pid)
        .collect()
}

/// Whether `pid` is gone or a zombie (dead, whoever has still to reap it).
pub fn dead(pid: i32) -> bool {
    processes()
        .into_iter()
        .find(|&(p, ..)| p == pid)
        .is_none_or(|(_, state, ..)| state == 'Z' || state == 'X')
}

/// Zombie children of this process: children it failed to reap.
pub fn own_zombies() -> Vec<i32> {
    let me = std::process::id() as i32;
    processes()
        .into_iter()
        .filter(|&(_, state, ppid, _)| ppid == me && state == 'Z')
        .map(|(pid, ..)| pid)
        .collect()
}

/// Live children of this process.
pub fn own_children() -> Vec<i32> {
    let me = std::process::id() as i32;
    processes()
        .into_iter()
        .filter(|&(_, state, ppid, _)| ppid == me && state != 'Z')
        .map(|(pid, ..)| pid)
        .collect()
}

/// Threads of this process.
pub fn thread_count() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Open file descriptors of this process.
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// A `kB` field (`VmRSS`, `VmHWM`, ...) of `/proc/PID/status`, in KiB.
pub fn status_kib(pid: i32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| {
        l.strip_prefix(field)?
            .strip_prefix(':')?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()
    })
}

/// Threads of process `pid` (0 if it is gone).
pub fn threads_of(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count())
}

/// Open file descriptors of process `pid` (0 if it is gone).
pub fn fds_of(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// SIGKILLs what is left of process group `pgid` (a group this test started), through the
/// `kill` command, only while it has live members (a group with members cannot have been
/// reused). Returns how many live members it had.
pub fn kill_group_survivors(pgid: i32) -> usize {
    let members = live_group_members(pgid).len();
    if members > 0 {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{pgid}")])
            .stderr(std::process::Stdio::null())
            .status();
    }
    members
}

/// Process groups a test started; whatever is left of them is SIGKILLed on drop (so a failing
/// test leaves nothing behind).
#[derive(Debug, Default)]
pub struct OwnedGroups(pub Vec<i32>);

impl Drop for OwnedGroups {
    fn drop(&mut self) {
        for &pgid in &self.0 {
            kill_group_survivors(pgid);
        }
    }
}
