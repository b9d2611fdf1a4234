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

criterion_group!(benches, start_wait, wakeup, contained);
criterion_main!(benches);
