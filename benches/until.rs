//! Wake-up latency of an output wait for a pattern (`until`), against a plain cursor wait in
//! the same run: from the moment a line is written to the moment the waiting `output` call
//! returns.
//!
//! Run: `cargo bench --bench until`.
//!
//! The child is `cat FIFO`: the benchmark writes one line `ping N\n` into the FIFO, `cat`
//! copies it to its stdout (the manager's pipe), the reader thread puts it in the buffer. Each
//! iteration the waiting thread (the benchmark's) calls `output` with the cursor of the
//! previous answer, and a writer thread, told to go, waits 1 ms (so that the wait has begun)
//! and then writes the line, stamping the time just before its `write`. The measured time is
//! from that stamp to the return of `output`.
//!
//! - `until/cursor_wait`: `OutputQuery::after(cursor, 10 s)`: returns at any new output.
//! - `until/pattern_wait`: the same with `.until("^ping [0-9]+$")`: returns at the matching
//!   line (found by the reader thread as the line arrives).
//!
//! Goal: the pattern wait's median at most 1 ms above the cursor wait's. Medians are in
//! `target/criterion/until/<name>/new/estimates.json` (`.median.point_estimate`, ns per wake-up).
//!
//! Bounds: every wait is at most 10 s; each iteration writes one line.

use std::io::Write;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use procwarden::{Command, Manager, OutputQuery, ProcessId};

/// Longest single wait.
const WAIT: Duration = Duration::from_secs(10);
/// How long the writer waits after being told to go, so that the wait has begun.
const SETTLE: Duration = Duration::from_millis(1);
/// The pattern of the pattern wait.
const PATTERN: &str = "^ping [0-9]+$";

/// The child and the FIFO that feeds it.
struct Feed {
    manager: Manager,
    id: ProcessId,
    pid: u32,
    dir: std::path::PathBuf,
    go: mpsc::Sender<u64>,
    written: Arc<Mutex<Option<Instant>>>,
    writer: Option<std::thread::JoinHandle<()>>,
    cursor: u64,
}

impl Feed {
    fn new() -> Feed {
        let dir =
            std::env::temp_dir().join(format!("procwarden-bench-until-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let fifo = dir.join("feed");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo");
        assert!(made.success());
        let manager = Manager::new().expect("manager");
        let started = manager
            .start(Command::argv(["cat", &fifo.to_string_lossy()]))
            .expect("start");
        // Opening for writing blocks until `cat` has opened it for reading.
        let mut pipe = std::fs::OpenOptions::new()
            .write(true)
            .open(&fifo)
            .expect("open the fifo");
        let (go, orders) = mpsc::channel::<u64>();
        let written = Arc::new(Mutex::new(None));
        let stamp = Arc::clone(&written);
        let writer = std::thread::spawn(move || {
            for n in orders {
                std::thread::sleep(SETTLE);
                let line = format!("ping {n}\n");
                *stamp.lock().expect("stamp") = Some(Instant::now());
                pipe.write_all(line.as_bytes()).expect("write the line");
            }
        });
        Feed {
            manager,
            id: started.id,
            pid: started.pid,
            dir,
            go,
            written,
            writer: Some(writer),
            cursor: 0,
        }
    }

    /// One wake-up: tells the writer to go, waits, returns the time from the write to the
    /// answer.
    fn wake(&mut self, n: u64, pattern: bool) -> Duration {
        let mut query = OutputQuery::after(self.cursor, WAIT);
        if pattern {
            query = query.until(PATTERN);
        }
        self.go.send(n).expect("writer alive");
        let out = self.manager.output(&self.id, None, query).expect("output");
        let answered = Instant::now();
        assert!(out.running);
        if pattern {
            assert_eq!(out.matched, Some(true), "{out:?}");
        }
        // Wait for the whole line before the next iteration (a cursor wait may return early,
        // on part of it).
        let mut next = out.next_cursor;
        let want = self.cursor + format!("ping {n}\n").len() as u64;
        while next < want {
            next = self
                .manager
                .output(&self.id, None, OutputQuery::after(next, WAIT))
                .expect("output")
                .next_cursor;
        }
        self.cursor = next;
        let written = self.written.lock().expect("stamp").take().expect("stamped");
        answered.saturating_duration_since(written)
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        let (tx, _) = mpsc::channel();
        drop(std::mem::replace(&mut self.go, tx));
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &self.pid.to_string()])
            .status();
        self.manager.close();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn until(c: &mut Criterion) {
    let mut feed = Feed::new();
    let mut n = 0u64;
    let mut group = c.benchmark_group("until");
    // The measured time leaves out each iteration's settle: flat sampling and a short
    // measured time keep the run to a few seconds of wall time per function.
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(20);
    group.measurement_time(Duration::from_millis(300));
    group.warm_up_time(Duration::from_millis(50));
    for (name, pattern) in [("cursor_wait", false), ("pattern_wait", true)] {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    n += 1;
                    total += feed.wake(n, pattern);
                }
                total
            });
        });
    }
    group.finish();
}

criterion_group!(benches, until);
criterion_main!(benches);
