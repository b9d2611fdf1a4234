//! Spawn and wake-up benchmarks for the manager, each against a baseline in the same run.
//!
//! Run: `cargo bench --bench spawn`.
//!
//! - `start_wait/manager` vs `start_wait/std_status`: in-process start of `sh -c true` plus a
//!   wait for its exit, against `std::process::Command::new("sh").args(["-c", "true"]).status()`.
//!   Goal: median ratio at most 1.15.
//! - `wakeup/manager` vs `wakeup/std_waitpid`: the child runs `exec date +%s%N`, printing the
//!   time just before it exits; the measured value is how long after that the waiter returned.
//!   Goal: the manager's median at most 300 µs above the bare spawn + waitpid median.
//! - `contained/start_wait` vs `contained/start_wait_uncontained`, and `contained/wakeup` vs
//!   `contained/wakeup_uncontained`: the same two with every process in a cgroup of its own
//!   (`ManagerBuilder::cgroup`, under a parent directory the benchmark makes at the top of the
//!   cgroup2 hierarchy and removes; skipped with a message where there is none writable).
//!   Goals: start + wait at most 1.25x of the uncontained manager; the wake-up within 0.2 ms
//!   of the uncontained (pidfd) path.
//! - `tty_start/tty` vs `tty_start/plain`: start and wait for `sh -c true` under a new
//!   pseudo-terminal (`Command::tty(24, 80)`), against the same without one. Goal: median
//!   ratio at most 1.3. `tty_start/tty_start_only` vs `tty_start/plain_start_only`: the start
//!   alone (until the child has exec'd), the wait outside the timed part. Each iteration runs
//!   one start of each kind and times its own, so both kinds see the same load.
//! - `input_round_trip_library/manager` vs `input_round_trip_library/raw_pipes`: a line written
//!   to a running `cat` with `Manager::write_input` and read back with a cursor wait, against
//!   the same line through a bare pipe pair to a `cat` child.

use std::hint::black_box;
use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use criterion::{Criterion, criterion_group, criterion_main};
use procwarden::{CgroupMode, Command, Manager, OutputQuery};

const WAIT: Duration = Duration::from_secs(10);

fn wait_query() -> OutputQuery {
    OutputQuery::until_exit(WAIT)
}

fn start_wait(c: &mut Criterion) {
    let manager = Manager::new().expect("manager");
    let mut group = c.benchmark_group("start_wait");
    group.sample_size(200);
    group.measurement_time(Duration::from_secs(8));
    group.bench_function("manager", |b| {
        b.iter(|| {
            let started = manager.start(Command::shell("true")).expect("start");
            let out = manager
                .output(&started.id, None, wait_query())
                .expect("output");
            assert!(!out.running);
            black_box(out);
        });
    });
    group.bench_function("std_status", |b| {
        b.iter(|| {
            let status = std::process::Command::new("sh")
                .args(["-c", "true"])
                .status()
                .expect("status");
            black_box(status);
        });
    });
    group.finish();
}

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos()
}

fn printed_nanos(output: &str) -> u128 {
    output
        .trim()
        .parse()
        .expect("date +%s%N prints nanoseconds")
}

/// How long after the child printed its time (just before exiting) the waiter was back.
fn wakeup(c: &mut Criterion) {
    let manager = Manager::new().expect("manager");
    let mut group = c.benchmark_group("wakeup");
    group.sample_size(200);
    group.measurement_time(Duration::from_secs(8));
    group.bench_function("manager", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let started = manager
                    .start(Command::shell("exec date +%s%N"))
                    .expect("start");
                let out = manager
                    .output(&started.id, None, wait_query())
                    .expect("output");
                let back = now_nanos();
                assert!(!out.running);
                let late = back.saturating_sub(printed_nanos(&out.output));
                total += Duration::from_nanos(late as u64);
            }
            total
        });
    });
    group.bench_function("std_waitpid", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut child = std::process::Command::new("sh")
                    .args(["-c", "exec date +%s%N"])
                    .stdout(Stdio::piped())
                    .spawn()
                    .expect("spawn");
                let status = child.wait().expect("waitpid");
                let back = now_nanos();
                assert!(status.success());
                let mut printed = String::new();
                child
                    .stdout
                    .take()
                    .expect("stdout")
                    .read_to_string(&mut printed)
                    .expect("read");
                let late = back.saturating_sub(printed_nanos(&printed));
                total += Duration::from_nanos(late as u64);
            }
            total
        });
    });
    group.finish();
}

/// Starts `sh -c true` (under a terminal with `tty`) and waits for its exit; returns how long
/// the start alone took and how long start and wait took.
fn start_and_wait(manager: &Manager, tty: bool) -> (Duration, Duration) {
    let cmd = Command::shell("true");
    let cmd = if tty { cmd.tty(24, 80) } else { cmd };
    let began = std::time::Instant::now();
    let started = manager.start(cmd).expect("start");
    let start = began.elapsed();
    let out = manager
        .output(&started.id, None, wait_query())
        .expect("output");
    let total = began.elapsed();
    assert!(!out.running);
    black_box(out);
    (start, total)
}

/// Start and wait for `sh -c true` under a new terminal, against the same without one. The
/// two are measured in pairs: every iteration runs one of each kind, in turn, and times only
/// its own, so both see the same mix of work and the same load (on a shared machine, two
/// groups measured one after the other drift apart by more than the difference sought).
fn tty_start(c: &mut Criterion) {
    let manager = Manager::new().expect("manager");
    let mut group = c.benchmark_group("tty_start");
    group.sample_size(200);
    group.measurement_time(Duration::from_secs(10));
    for (name, tty) in [("plain", false), ("tty", true)] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        start_and_wait(&manager, !tty);
                        start_and_wait(&manager, tty).1
                    })
                    .sum()
            });
        });
        // The start alone (until the child has exec'd); the wait is outside the timed part.
        group.bench_function(format!("{name}_start_only"), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        start_and_wait(&manager, !tty);
                        start_and_wait(&manager, tty).0
                    })
                    .sum()
            });
        });
    }
    group.finish();
}

/// A line written to a running `cat` through the manager's input and read back through a
/// cursor wait, against the same line through a bare pipe pair to a `cat` child.
fn input_round_trip(c: &mut Criterion) {
    const LINE: &[u8] = b"ping\n";
    let manager = Manager::new().expect("manager");
    let started = manager
        .start(Command::shell("cat").stdin_pipe())
        .expect("start");
    let mut group = c.benchmark_group("input_round_trip_library");
    group.sample_size(500);
    group.measurement_time(Duration::from_secs(8));
    let mut cursor = 0u64;
    group.bench_function("manager", |b| {
        b.iter(|| {
            manager.write_input(&started.id, None, LINE).expect("input");
            let want = cursor + LINE.len() as u64;
            for _ in 0..LINE.len() {
                let out = manager
                    .output(&started.id, None, OutputQuery::after(cursor, WAIT))
                    .expect("output");
                cursor = out.next_cursor;
                if cursor >= want {
                    break;
                }
            }
            assert_eq!(cursor, want);
        });
    });
    let mut child = std::process::Command::new("cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("cat");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = child.stdout.take().expect("stdout");
    group.bench_function("raw_pipes", |b| {
        b.iter(|| {
            std::io::Write::write_all(&mut stdin, LINE).expect("write");
            let mut back = [0u8; LINE.len()];
            stdout.read_exact(&mut back).expect("read");
            black_box(back);
        });
    });
    drop(stdin);
    let _ = child.wait();
    group.finish();
}

/// A cgroup parent for the contained benchmarks, removed on drop.
struct BenchCgroup(std::path::PathBuf);

impl BenchCgroup {
    fn new() -> Option<BenchCgroup> {
        let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
        let mount = info.lines().find_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            (right.split_whitespace().next() == Some("cgroup2"))
                .then(|| left.split_whitespace().nth(4).map(std::path::PathBuf::from))
                .flatten()
        })?;
        let dir = mount.join(format!("pwbench-{}", std::process::id()));
        std::fs::create_dir(&dir).ok()?;
        Some(BenchCgroup(dir))
    }
}

impl Drop for BenchCgroup {
    fn drop(&mut self) {
        let _ = std::fs::write(self.0.join("cgroup.kill"), "1");
        // The manager removed its instance at close; only the parent is left.
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Milliseconds late, as `wakeup` measures them, for one start on `manager`.
fn late_once(manager: &Manager) -> Duration {
    let started = manager
        .start(Command::shell("exec date +%s%N"))
        .expect("start");
    let out = manager
        .output(&started.id, None, wait_query())
        .expect("output");
    let back = now_nanos();
    assert!(!out.running);
    Duration::from_nanos(back.saturating_sub(printed_nanos(&out.output)) as u64)
}

fn contained(c: &mut Criterion) {
    let Some(parent) = BenchCgroup::new() else {
        eprintln!("contained benchmarks skipped: no writable cgroup2 hierarchy");
        return;
    };
    let plain = Manager::new().expect("manager");
    let boxed = Manager::builder()
        .cgroup(CgroupMode::Path(parent.0.clone()))
        .build()
        .expect("contained manager");
    assert!(boxed.contained(), "{:?}", boxed.startup_notes());
    let mut group = c.benchmark_group("contained");
    group.sample_size(200);
    group.measurement_time(Duration::from_secs(8));
    for (name, manager) in [("start_wait", &boxed), ("start_wait_uncontained", &plain)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let started = manager.start(Command::shell("true")).expect("start");
                let out = manager
                    .output(&started.id, None, wait_query())
                    .expect("output");
                assert!(!out.running);
                black_box(out);
            });
        });
    }
    for (name, manager) in [("wakeup", &boxed), ("wakeup_uncontained", &plain)] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| (0..iters).map(|_| late_once(manager)).sum());
        });
    }
    group.finish();
    drop(boxed);
    drop(parent);
}

criterion_group!(
    benches,
    start_wait,
    wakeup,
    tty_start,
    input_round_trip,
    contained
);
criterion_main!(benches);
