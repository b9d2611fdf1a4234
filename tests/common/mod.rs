//! Helpers shared by the integration tests: deadlines, /proc inspection for what the product
//! cannot signal (a pid leaving the process table, thread and fd counts settling, what a thread
//! is blocked in, what a socket has queued), and the clean-up of process groups a test started.
#![allow(dead_code)] // each test binary uses a different subset

pub mod cgroup;
pub mod http;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use procwarden::tools::{self, ProcessApi};
use serde_json::Value;

/// The agent tools, in the order `tools::definitions()` and `procwarden tools` list them.
pub const TOOL_NAMES: [&str; 8] = [
    "execute",
    "process_output",
    "process_list",
    "process_signal",
    "process_input",
    "process_log_search",
    "process_log_read",
    "process_wait",
];

/// Calls the `execute` tool with `args`.
pub fn execute(api: &dyn ProcessApi, args: Value) -> Value {
    tools::call(api, "execute", &args)
}

/// The `background_process_id` of an `execute` result (which must have one).
pub fn background_id(result: &Value) -> String {
    result["background_process_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no background process id: {result}"))
        .to_string()
}

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

/// The arguments that rerun this test binary for `test` alone (an ignored helper test, which
/// the caller selects a role for through an environment variable).
pub fn helper_args(test: &str) -> [&str; 5] {
    [
        "--exact",
        test,
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]
}

// ---------------------------------------------------------------------------------------
// Processes and process groups

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

/// Asserts that process group `pgid` has no live member within `limit` (a group emptying is
/// not something the product signals: this polls /proc). `what` says which group, for the
/// failure message.
#[track_caller]
pub fn assert_group_empties(pgid: i32, limit: Duration, what: &str) {
    assert!(
        eventually(limit, || live_group_members(pgid).is_empty()),
        "{what}: group {pgid} still has live members after {limit:?}: {:?}",
        live_group_members(pgid)
    );
}

/// Whether `pid` is gone or a zombie (dead, whoever has still to reap it).
pub fn dead(pid: i32) -> bool {
    processes()
        .into_iter()
        .find(|&(p, ..)| p == pid)
        .is_none_or(|(_, state, ..)| state == 'Z' || state == 'X')
}

/// This process's pid, as /proc names it.
fn own_pid() -> i32 {
    std::process::id() as i32
}

/// Zombie children of process `pid`: children it failed to reap.
pub fn zombies_of(pid: i32) -> Vec<i32> {
    processes()
        .into_iter()
        .filter(|&(_, state, ppid, _)| ppid == pid && state == 'Z')
        .map(|(p, ..)| p)
        .collect()
}

/// Zombie children of this process: children it failed to reap.
pub fn own_zombies() -> Vec<i32> {
    zombies_of(own_pid())
}

/// Live children of this process.
pub fn own_children() -> Vec<i32> {
    let me = own_pid();
    processes()
        .into_iter()
        .filter(|&(_, state, ppid, _)| ppid == me && state != 'Z')
        .map(|(pid, ..)| pid)
        .collect()
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

// ---------------------------------------------------------------------------------------
// Threads, fds and memory of a process

/// Threads of process `pid` (0 if it is gone).
pub fn threads_of(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count())
}

/// Open file descriptors of process `pid` (0 if it is gone).
pub fn fds_of(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Threads of this process.
pub fn thread_count() -> usize {
    threads_of(own_pid())
}

/// Open file descriptors of this process.
pub fn fd_count() -> usize {
    fds_of(own_pid())
}

/// Thread names of `pid` (from `/proc/PID/task/*/comm`), sorted, for diagnostics.
pub fn thread_names(pid: i32) -> Vec<String> {
    let mut names: Vec<String> = tasks(pid).into_iter().map(|(_, name)| name).collect();
    names.sort();
    names
}

/// What `/proc/PID/fd/*` point to, sorted, for diagnostics.
pub fn fd_targets(pid: i32) -> Vec<String> {
    let mut targets: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.flatten()
                .map(|fd| {
                    let link = std::fs::read_link(fd.path())
                        .map_or_else(|e| format!("? ({e})"), |p| p.display().to_string());
                    format!("{}->{link}", fd.file_name().to_string_lossy())
                })
                .collect()
        })
        .unwrap_or_default();
    targets.sort();
    targets
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

// ---------------------------------------------------------------------------------------
// What a thread is blocked in

/// `(tid, name)` of every thread of process `pid`.
fn tasks(pid: i32) -> Vec<(i32, String)> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|task| {
            let tid = task.file_name().to_str()?.parse().ok()?;
            let name = std::fs::read_to_string(task.path().join("comm")).ok()?;
            Some((tid, name.trim_end().to_string()))
        })
        .collect()
}

/// The system call thread `tid` of process `pid` is blocked in, from
/// `/proc/PID/task/TID/syscall`: its number and its six arguments. `None` while the thread
/// runs (or if it is gone, or the file cannot be read).
fn blocked_syscall(pid: i32, tid: i32) -> Option<(libc::c_long, [u64; 6])> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/syscall")).ok()?;
    let mut fields = text.split_whitespace();
    let number: libc::c_long = fields.next()?.parse().ok()?;
    let mut args = [0u64; 6];
    for arg in &mut args {
        *arg = u64::from_str_radix(fields.next()?.trim_start_matches("0x"), 16).ok()?;
    }
    Some((number, args))
}

/// Whether a blocked system call is a futex wait with a timeout. Locks (std's and
/// parking_lot's mutexes, glibc's allocator locks) wait on a futex without one; condition
/// variable waits with a deadline (`wait_timeout`, `wait_until`) pass one.
fn is_timed_futex_wait((number, args): (libc::c_long, [u64; 6])) -> bool {
    // The constants only name the kernel's numbers here: nothing calls libc.
    let command_mask = !((libc::FUTEX_PRIVATE_FLAG | libc::FUTEX_CLOCK_REALTIME) as u64);
    let command = args[1] & command_mask;
    number == libc::SYS_futex
        && (command == libc::FUTEX_WAIT as u64 || command == libc::FUTEX_WAIT_BITSET as u64)
        && args[3] != 0
}

/// Threads of process `pid` named `name` that are blocked in a futex wait with a timeout (see
/// [`is_timed_futex_wait`]).
pub fn threads_in_timed_wait(pid: i32, name: &str) -> usize {
    tasks(pid)
        .into_iter()
        .filter(|(_, n)| n == name)
        .filter(|&(tid, _)| blocked_syscall(pid, tid).is_some_and(is_timed_futex_wait))
        .count()
}

/// Threads of process `pid` blocked reading from its file descriptor `fd` (in `read` or
/// `recvfrom`, which is what `recv` is on Linux).
pub fn threads_reading(pid: i32, fd: u64) -> usize {
    let reads = [libc::SYS_read, libc::SYS_recvfrom];
    tasks(pid)
        .into_iter()
        .filter(|&(tid, _)| {
            blocked_syscall(pid, tid)
                .is_some_and(|(number, args)| reads.contains(&number) && args[0] == fd)
        })
        .count()
}

// ---------------------------------------------------------------------------------------
// Sockets

/// One IPv4 TCP socket of this network namespace, from `/proc/net/tcp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSocket {
    /// Bytes received and not yet read by the socket's owner.
    pub receive_queue: u64,
    /// The socket's inode (what `/proc/PID/fd/N` names as `socket:[INODE]`).
    pub inode: u64,
}

/// Parses an `ADDRESS:PORT` of `/proc/net/tcp`: the address is the network-order `u32`
/// printed as a native one, the port is printed in host order.
fn parse_proc_v4(field: &str) -> Option<SocketAddr> {
    let (address, port) = field.split_once(':')?;
    let address = u32::from_str_radix(address, 16).ok()?;
    let port = u16::from_str_radix(port, 16).ok()?;
    Some(SocketAddr::V4(SocketAddrV4::new(
        Ipv4Addr::from(address.to_ne_bytes()),
        port,
    )))
}

/// The IPv4 TCP socket bound to `local` and connected to `remote`, if there is one.
pub fn tcp_socket(local: SocketAddr, remote: SocketAddr) -> Option<TcpSocket> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|line| {
        // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 10
            || parse_proc_v4(fields[1])? != local
            || parse_proc_v4(fields[2])? != remote
        {
            return None;
        }
        let (_, receive_queue) = fields[4].split_once(':')?;
        Some(TcpSocket {
            receive_queue: u64::from_str_radix(receive_queue, 16).ok()?,
            inode: fields[9].parse().ok()?,
        })
    })
}

/// The file descriptor through which process `pid` holds the socket with inode `inode`.
pub fn socket_fd(pid: i32, inode: u64) -> Option<u64> {
    let name = format!("socket:[{inode}]");
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .flatten()
        .find(|fd| std::fs::read_link(fd.path()).is_ok_and(|link| link.as_os_str() == &*name))
        .and_then(|fd| fd.file_name().to_str()?.parse().ok())
}

/// Whether process `pid`, which owns the server side of the loopback TCP connection from
/// `client` to `server`, has read everything the client sent on it (nothing left in the
/// socket's receive queue) and has a thread blocked reading it for more: the connection is
/// idle, or holds an incomplete request, in the server's hands.
pub fn server_waits_for_more(pid: i32, server: SocketAddr, client: SocketAddr) -> bool {
    tcp_socket(server, client).is_some_and(|socket| {
        socket.receive_queue == 0
            && socket_fd(pid, socket.inode).is_some_and(|fd| threads_reading(pid, fd) > 0)
    })
}
