//! What an idle `procwarden serve` costs the machine while it supervises 50 sleeping children:
//! CPU time over 10 s, resident memory, threads; then a graceful SIGTERM shutdown that must
//! exit 0 and leave none of its children behind; and the size of the stripped binary.
//!
//! Run (the example drives the release binary, so build that first):
//!
//! ```sh
//! cargo build --release
//! cargo run --release --example idle_cost [PATH_TO_PROCWARDEN]
//! ```
//!
//! The binary defaults to `procwarden` beside this example's own directory (that is,
//! `target/release/procwarden` for `target/release/examples/idle_cost`), else
//! `target/release/procwarden` from the current directory.
//!
//! Steps:
//!
//! 1. Start `procwarden serve --listen 127.0.0.1:0` (`RUST_LOG=warn` unless set) and wait for
//!    its `listening on http://IP:PORT` line. Read VmRSS and threads.
//! 2. Start 50 `sleep 600` over one loopback keep-alive connection, then close it. Read VmRSS
//!    and threads again.
//! 3. Wait 1 s to settle, then watch the server for 10 s: CPU time is the sum over all of its
//!    threads (`/proc/PID/task/*/schedstat`, first field, ns on CPU; `/proc/PID/schedstat`
//!    alone is the main thread only), sampled every 100 ms per thread so that a thread that
//!    ends inside the window loses at most one interval. Also reported: times scheduled
//!    (third field), threads that appeared or ended. Goal: under 1 ms of CPU in 10 s. As a
//!    cross-check, the process CPU time (/proc stat ticks) (`clock_getcpuclockid`) over the same window, which
//!    also counts ended threads and a thread on CPU at the time of the read (schedstat only
//!    moves when a thread is descheduled).
//!    VmRSS at the end of the window: goal under 4 MiB.
//! 4. SIGTERM to the server's pid; it must exit with status 0 within 15 s (else SIGKILL), and
//!    no process of the children's groups may be left (a zombie reparented to an init that
//!    does not reap is reported as such).
//! 5. Copy the binary to a temporary file, `strip` it (if `strip` is installed) and report its
//!    size. Goal: under 2 MiB.
//!
//! Exit code 0 when the server behaved (started, answered, exited 0, left no child), 1
//! otherwise; missed goals are printed but do not change the exit code.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

const CHILDREN: usize = 50;
const SETTLE: Duration = Duration::from_secs(1);
const WINDOW: Duration = Duration::from_secs(10);
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
const IO_TIMEOUT: Duration = Duration::from_secs(10);
const EXIT_TIMEOUT: Duration = Duration::from_secs(15);

const GOAL_CPU_NS: u64 = 1_000_000;
const GOAL_RSS_KIB: u64 = 4 * 1024;
const GOAL_STRIPPED_BYTES: u64 = 2 * 1024 * 1024;

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("idle_cost: {e}");
            ExitCode::from(1)
        }
    }
}

type Result<T> = std::result::Result<T, String>;

fn run() -> Result<bool> {
    let binary = binary_path()?;
    warn_if_stale(&binary);
    println!("binary: {}", binary.display());

    let mut server = ServerProcess::spawn(&binary)?;
    let pid = server.pid;
    println!("server: pid {pid}, {}", server.addr);

    let rss_start = status_kib(pid, "VmRSS:")?;
    let threads_start = status_kib(pid, "Threads:")?;
    println!("VmRSS before any child:    {rss_start} KiB ({threads_start} threads)");

    let mut client = Client::connect(server.addr)?;
    let mut leaders = Vec::with_capacity(CHILDREN);
    for _ in 0..CHILDREN {
        let (status, body) = client.call(
            "POST",
            "/api/v0/processes/start",
            br#"{"command":"sleep 600"}"#,
        )?;
        let body: serde_json::Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        if status != 200 || body["started"] != true {
            return Err(format!("start answered {status}: {body}"));
        }
        let leader = body["pid"].as_i64().ok_or("start answered no pid")?;
        leaders.push(leader as i32);
    }
    drop(client);
    let rss_children = status_kib(pid, "VmRSS:")?;
    let threads_children = status_kib(pid, "Threads:")?;
    println!(
        "VmRSS after {CHILDREN} children:     {rss_children} KiB ({threads_children} threads)"
    );

    std::thread::sleep(SETTLE);
    let idle = watch_cpu(pid, WINDOW)?;
    let rss_idle = status_kib(pid, "VmRSS:")?;
    let threads_idle = status_kib(pid, "Threads:")?;
    println!(
        "CPU over {:.1} s idle:        {:.3} ms ({} ns; scheduled {} times; threads {} -> {}, {} appeared, {} ended)",
        idle.elapsed.as_secs_f64(),
        idle.cpu_ns as f64 / 1e6,
        idle.cpu_ns,
        idle.switches,
        idle.threads_at_start,
        idle.threads_at_end,
        idle.appeared,
        idle.ended,
    );
    match idle.clock_ns {
        Some(ns) => println!(
            "  cross-check, process CPU time (/proc stat ticks): {:.3} ms ({ns} ns)",
            ns as f64 / 1e6
        ),
        None => println!("  cross-check, process CPU time (/proc stat ticks): not readable"),
    }
    println!("VmRSS idle:                {rss_idle} KiB ({threads_idle} threads)");

    // Shutdown: SIGTERM by pid, then the exit status and what is left of the children.
    let before = Instant::now();
    server.terminate()?;
    let status = server.wait(EXIT_TIMEOUT)?;
    println!(
        "SIGTERM -> exit in {:.0} ms: {}",
        before.elapsed().as_secs_f64() * 1e3,
        match status {
            Some(code) => format!("status {code}"),
            None => format!("no exit within {EXIT_TIMEOUT:?}, killed"),
        }
    );
    let left = leftover_children(pid, &leaders, Duration::from_secs(3));
    if left.alive.is_empty() && left.zombies.is_empty() {
        println!("children left: none (of {CHILDREN} groups)");
    } else {
        println!(
            "children left: {} alive {:?}, {} zombies {:?}",
            left.alive.len(),
            left.alive,
            left.zombies.len(),
            left.zombies
        );
    }

    let sizes = binary_sizes(&binary);
    match &sizes {
        Ok((size, Some(stripped))) => {
            println!("binary size: {size} bytes, stripped {stripped} bytes")
        }
        Ok((size, None)) => println!("binary size: {size} bytes (strip not found)"),
        Err(e) => println!("binary size: {e}"),
    }

    println!("goals:");
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    println!(
        "  CPU idle < 1 ms / 10 s:   {} ({:.3} ms)",
        verdict(idle.cpu_ns < GOAL_CPU_NS),
        idle.cpu_ns as f64 / 1e6
    );
    println!(
        "  VmRSS idle < 4 MiB:       {} ({rss_idle} KiB)",
        verdict(rss_idle < GOAL_RSS_KIB)
    );
    if let Ok((size, stripped)) = sizes {
        let stripped = stripped.unwrap_or(size);
        println!(
            "  stripped binary < 2 MiB: {} ({stripped} bytes)",
            verdict(stripped < GOAL_STRIPPED_BYTES)
        );
    }
    let behaved = status == Some(0) && left.alive.is_empty();
    println!(
        "  exit 0, no child left:    {}",
        if behaved { "yes" } else { "NO" }
    );
    Ok(behaved)
}

/// The release binary: the first argument, else `../procwarden` from this example's
/// directory, else `target/release/procwarden`.
fn binary_path() -> Result<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(arg) = std::env::args_os().nth(1) {
        candidates.push(PathBuf::from(arg));
    } else {
        if let Ok(exe) = std::env::current_exe()
            && let Some(profile_dir) = exe.parent().and_then(Path::parent)
        {
            candidates.push(profile_dir.join("procwarden"));
        }
        candidates.push(PathBuf::from("target/release/procwarden"));
    }
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| {
            format!(
                "no procwarden binary at {}: run `cargo build --release` first (or pass its path)",
                candidates
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" or ")
            )
        })
}

/// Warns when a source file is newer than the binary (a forgotten `cargo build --release`).
fn warn_if_stale(binary: &Path) {
    let Ok(built) = std::fs::metadata(binary).and_then(|m| m.modified()) else {
        return;
    };
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    if let Some(newest) = newest_file(&src, 4)
        && newest.1 > built
    {
        eprintln!(
            "warning: {} is newer than {}; run `cargo build --release` to measure the current code",
            newest.0.display(),
            binary.display()
        );
    }
}

/// The most recently modified file under `dir`, `depth` levels deep at most.
fn newest_file(dir: &Path, depth: u32) -> Option<(PathBuf, SystemTime)> {
    let mut newest: Option<(PathBuf, SystemTime)> = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten().take(10_000) {
        let path = entry.path();
        let found = if path.is_dir() {
            if depth == 0 {
                continue;
            }
            newest_file(&path, depth - 1)
        } else {
            entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .map(|t| (path, t))
        };
        if let Some(found) = found
            && newest.as_ref().is_none_or(|n| found.1 > n.1)
        {
            newest = Some(found);
        }
    }
    newest
}

/// The running server. Dropping it without a successful wait kills it.
struct ServerProcess {
    child: Child,
    pid: i32,
    addr: SocketAddr,
    exited: bool,
}

impl ServerProcess {
    fn spawn(binary: &Path) -> Result<ServerProcess> {
        let log = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into());
        let mut child = std::process::Command::new(binary)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("RUST_LOG", log)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
        let pid = child.id() as i32;
        let stdout = child.stdout.take().expect("piped stdout");
        let mut server = ServerProcess {
            child,
            pid,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            exited: false,
        };
        // The first line, read on a helper thread so that the wait is bounded.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let mut reader = BufReader::new(stdout);
            let _ = tx.send(reader.read_line(&mut line).map(|_| line));
            // Keep the pipe open (and drained) until the server exits.
            let mut sink = Vec::new();
            let _ = reader.take(1 << 20).read_to_end(&mut sink);
        });
        let line = match rx.recv_timeout(IO_TIMEOUT) {
            Ok(Ok(line)) => line,
            Ok(Err(e)) => return Err(format!("reading the server's stdout: {e}")),
            Err(_) => return Err("the server printed no listening line within 10 s".into()),
        };
        server.addr = line
            .trim()
            .strip_prefix("listening on http://")
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| format!("unexpected first line {line:?}"))?;
        if !server.addr.ip().is_loopback() {
            return Err(format!("server listens on {}, not loopback", server.addr));
        }
        Ok(server)
    }

    fn terminate(&self) -> Result<()> {
        // Our own child, not yet waited for: its pid cannot have been reused.
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .map_err(|e| format!("kill -TERM {}: {e}", self.pid))?;
        if !status.success() {
            return Err(format!("kill -TERM {} failed: {status}", self.pid));
        }
        Ok(())
    }

    /// The exit code, or `None` if it did not exit within `timeout` (it is then killed).
    fn wait(&mut self, timeout: Duration) -> Result<Option<i32>> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                self.exited = true;
                return Ok(Some(status.code().unwrap_or(-1)));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.exited = true;
        Ok(None)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if !self.exited {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One thread's `/proc/PID/task/TID/schedstat`: ns on CPU, times scheduled.
fn thread_stats(pid: i32) -> Result<HashMap<u32, (u64, u64)>> {
    let dir = format!("/proc/{pid}/task");
    let mut stats = HashMap::new();
    for entry in std::fs::read_dir(&dir)
        .map_err(|e| format!("{dir}: {e}"))?
        .flatten()
        .take(100_000)
    {
        let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        // A thread may end between the listing and the read.
        let Ok(text) = std::fs::read_to_string(entry.path().join("schedstat")) else {
            continue;
        };
        let mut fields = text
            .split_whitespace()
            .map(|f| f.parse::<u64>().unwrap_or(0));
        let cpu = fields.next().unwrap_or(0);
        let _wait = fields.next();
        let slices = fields.next().unwrap_or(0);
        stats.insert(tid, (cpu, slices));
    }
    Ok(stats)
}

struct Idle {
    elapsed: Duration,
    cpu_ns: u64,
    switches: u64,
    threads_at_start: usize,
    threads_at_end: usize,
    appeared: usize,
    ended: usize,
    /// The same window on the process CPU time (/proc stat ticks), if readable.
    clock_ns: Option<u64>,
}

/// CPU time and scheduling count of all of `pid`'s threads over `window`.
fn watch_cpu(pid: i32, window: Duration) -> Result<Idle> {
    let started = Instant::now();
    let clock0 = process_cpu_ns(pid);
    let first = thread_stats(pid)?;
    let mut last = first.clone();
    let mut current = first.clone();
    let deadline = started + window;
    let max_samples = window.as_millis() / SAMPLE_EVERY.as_millis() + 1;
    for _ in 0..max_samples {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        std::thread::sleep(SAMPLE_EVERY.min(deadline - now));
        current = thread_stats(pid)?;
        for (tid, value) in &current {
            last.insert(*tid, *value);
        }
    }
    let clock1 = process_cpu_ns(pid);
    let elapsed = started.elapsed();
    let mut cpu_ns = 0;
    let mut switches = 0;
    for (tid, (cpu, slices)) in &last {
        let (cpu0, slices0) = first.get(tid).copied().unwrap_or((0, 0));
        cpu_ns += cpu.saturating_sub(cpu0);
        switches += slices.saturating_sub(slices0);
    }
    Ok(Idle {
        elapsed,
        cpu_ns,
        switches,
        threads_at_start: first.len(),
        threads_at_end: current.len(),
        appeared: last.keys().filter(|t| !first.contains_key(t)).count(),
        ended: last.keys().filter(|t| !current.contains_key(t)).count(),
        clock_ns: match (clock0, clock1) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a)),
            _ => None,
        },
    })
}

/// A coarse cross-check of the schedstat sum: the process's user + system time from
/// `/proc/PID/stat` (fields 14 and 15, in clock ticks of 10 ms), in nanoseconds. It includes
/// threads that have ended; its resolution is too coarse for the goal itself.
fn process_cpu_ns(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the command name: field 3 is index 0, so utime (14) and stime (15) are 11 and 12.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks * 10_000_000)
}

/// A field of `/proc/PID/status` (in kB for memory fields).
fn status_kib(pid: i32, name: &str) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("{path}: no {name}"))
}

struct Leftovers {
    /// `pid comm` of live processes in a child's group, or children of the server.
    alive: Vec<String>,
    /// The same, dead but not reaped.
    zombies: Vec<String>,
}

/// Processes left in the children's process groups (or with the server as parent), waiting
/// up to `grace` for them to go.
fn leftover_children(server: i32, leaders: &[i32], grace: Duration) -> Leftovers {
    let groups: HashSet<i32> = leaders.iter().copied().collect();
    let deadline = Instant::now() + grace;
    loop {
        let mut left = Leftovers {
            alive: Vec::new(),
            zombies: Vec::new(),
        };
        for entry in std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .take(1_000_000)
        {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<i32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses.
            let Some(close) = stat.rfind(')') else {
                continue;
            };
            let comm = stat[stat.find('(').map_or(0, |i| i + 1)..close].to_string();
            let mut rest = stat[close + 1..].split_whitespace();
            let state = rest.next().unwrap_or("?");
            let ppid: i32 = rest.next().and_then(|s| s.parse().ok()).unwrap_or(0);
            let pgrp: i32 = rest.next().and_then(|s| s.parse().ok()).unwrap_or(0);
            if groups.contains(&pgrp) || ppid == server {
                let what = format!("{pid} {comm}");
                if state == "Z" {
                    left.zombies.push(what);
                } else {
                    left.alive.push(what);
                }
            }
        }
        if (left.alive.is_empty() && left.zombies.is_empty()) || Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The binary's size, and the size of a stripped copy (`None` without `strip`).
fn binary_sizes(binary: &Path) -> Result<(u64, Option<u64>)> {
    let size = std::fs::metadata(binary)
        .map_err(|e| format!("{}: {e}", binary.display()))?
        .len();
    let copy = std::env::temp_dir().join(format!("idle_cost-{}-procwarden", std::process::id()));
    std::fs::copy(binary, &copy).map_err(|e| format!("copy to {}: {e}", copy.display()))?;
    let stripped = match std::process::Command::new("strip")
        .arg(&copy)
        .stdin(Stdio::null())
        .status()
    {
        Ok(status) if status.success() => std::fs::metadata(&copy).ok().map(|m| m.len()),
        Ok(status) => {
            eprintln!("strip failed: {status}");
            None
        }
        Err(_) => None,
    };
    let _ = std::fs::remove_file(&copy);
    Ok((size, stripped))
}

/// A minimal blocking HTTP/1.1 client over one keep-alive loopback connection.
struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Result<Client> {
        let stream =
            TcpStream::connect_timeout(&addr, IO_TIMEOUT).map_err(|e| format!("connect: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(IO_TIMEOUT))
            .map_err(|e| e.to_string())?;
        stream
            .set_write_timeout(Some(IO_TIMEOUT))
            .map_err(|e| e.to_string())?;
        Ok(Client {
            reader: BufReader::new(stream),
        })
    }

    fn call(&mut self, method: &str, target: &str, body: &[u8]) -> Result<(u16, Vec<u8>)> {
        let mut request = format!(
            "{method} {target} HTTP/1.1\r\nHost: idle-cost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body);
        let io = |e: std::io::Error| format!("{method} {target}: {e}");
        self.reader.get_mut().write_all(&request).map_err(io)?;
        let mut line = String::new();
        self.reader.read_line(&mut line).map_err(io)?;
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line {line:?}"))?;
        let mut length = 0;
        for _ in 0..200 {
            line.clear();
            if self.reader.read_line(&mut line).map_err(io)? == 0 {
                return Err("connection closed inside a response head".into());
            }
            let field = line.trim_end();
            if field.is_empty() {
                if length > 16 << 20 {
                    return Err(format!("response body of {length} bytes"));
                }
                let mut body = vec![0; length];
                self.reader.read_exact(&mut body).map_err(io)?;
                return Ok((status, body));
            }
            if let Some((name, value)) = field.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().map_err(|_| "bad Content-Length")?;
            }
        }
        Err("response head with more than 200 fields".into())
    }
}
