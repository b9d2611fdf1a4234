//! Output capture throughput: a child writes 256 MiB as fast as it can, against a plain drain of
//! the same child's pipe in the same run.
//!
//! Run: `cargo bench --bench capture`.
//!
//! - `capture/manager`: `Manager::start(Command::shell("head -c 268435456 /dev/zero"))`, then
//!   `output(.., wait: 60 s)` until it has exited; the answer must count all 256 MiB
//!   (`truncated.original_bytes`).
//! - `capture/plain_drain`: `sh -c` the same command with `Stdio::piped()` stdout, read to end
//!   of file into one reused 64 KiB buffer (discarded), then `wait`.
//!
//! - `capture/manager_log`: as `capture/manager` with a full log (`Command::log(true)`): every
//!   byte also goes to a log file in the manager's private log directory (under the system's
//!   temporary directory); the log must hold all 256 MiB. That manager keeps one exited
//!   record (`max_exited(1)`), so the logs of earlier iterations are removed as it goes.
//! - `capture/cat_to_file`: `sh -c 'head -c 268435456 /dev/zero | cat > FILE'` with FILE in the
//!   same temporary directory: the same stream drained from a pipe into a file by `cat`.
//!
//! Goal: the manager's throughput at least 0.9x the plain drain's; with a log, at least 0.8x
//! `cat > file`'s. Medians are in
//! `target/criterion/capture/<name>/new/estimates.json` (`.median.point_estimate`, ns per
//! 256 MiB).
//!
//! Bounds: every wait is at most 60 s and the manager's output loop makes at most 10 waits.

use std::hint::black_box;
use std::io::{ErrorKind, Read};
use std::process::Stdio;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use procwarden::{Command, Manager, OutputQuery};

/// Bytes the child writes.
const BYTES: u64 = 256 * 1024 * 1024;
/// The child: writes `BYTES` zero bytes to stdout as fast as it can.
const SCRIPT: &str = "head -c 268435456 /dev/zero";
/// Longest single wait for the child's exit.
const WAIT: Duration = Duration::from_secs(60);
/// Most waits before giving up on one run.
const MAX_WAITS: usize = 10;
/// The plain drain's read buffer.
const DRAIN_BUFFER: usize = 64 * 1024;

/// Starts the child through the manager and waits until it has exited; returns the bytes the
/// final answer says the stream held.
fn through_manager(manager: &Manager) -> u64 {
    let started = manager.start(Command::shell(SCRIPT)).expect("start");
    for _ in 0..MAX_WAITS {
        let out = manager
            .output(&started.id, None, OutputQuery::until_exit(WAIT))
            .expect("output");
        if !out.running {
            let exit = out.exit.expect("exit once not running");
            assert_eq!(exit.code, Some(0), "{exit:?}");
            let truncated = out.truncated.expect("256 MiB cannot fit the buffer");
            return truncated.original_bytes;
        }
    }
    panic!("the child did not exit within {MAX_WAITS} waits of {WAIT:?}");
}

/// As [`through_manager`], with a full log; returns the bytes the log holds.
fn through_manager_with_log(manager: &Manager) -> u64 {
    let started = manager
        .start(Command::shell(SCRIPT).log(true))
        .expect("start");
    for _ in 0..MAX_WAITS {
        let out = manager
            .output(&started.id, None, OutputQuery::until_exit(WAIT))
            .expect("output");
        if !out.running {
            assert!(!out.log_truncated, "{:?}", out.log_error);
            let chunk = manager.log_read(&started.id, None, 0, 0).expect("log read");
            assert!(chunk.complete);
            return chunk.log_bytes;
        }
    }
    panic!("the child did not exit within {MAX_WAITS} waits of {WAIT:?}");
}

/// `cat > file` of the same stream; returns the file's length.
fn cat_to_file(file: &std::path::Path) -> u64 {
    let script = format!("{SCRIPT} | cat > '{}'", file.display());
    let status = std::process::Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .status()
        .expect("spawn");
    assert!(status.success(), "{status}");
    let len = std::fs::metadata(file).expect("the file").len();
    std::fs::remove_file(file).expect("remove");
    len
}

/// Spawns the same child with a piped stdout, reads it to end of file, waits; returns the
/// bytes read.
fn plain_drain(buffer: &mut [u8]) -> u64 {
    let mut child = std::process::Command::new("sh")
        .args(["-c", SCRIPT])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut total = 0u64;
    // A pipe read returns at least one byte until end of file: at most BYTES reads.
    for _ in 0..=BYTES {
        match stdout.read(buffer) {
            Ok(0) => break,
            Ok(n) => total += n as u64,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("read: {e}"),
        }
    }
    drop(stdout);
    let status = child.wait().expect("wait");
    assert!(status.success(), "{status}");
    total
}

fn capture(c: &mut Criterion) {
    let manager = Manager::new().expect("manager");
    let mut buffer = vec![0u8; DRAIN_BUFFER];
    let mut group = c.benchmark_group("capture");
    group.throughput(Throughput::Bytes(BYTES));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.warm_up_time(Duration::from_secs(2));
    group.bench_function("manager", |b| {
        b.iter(|| {
            let bytes = through_manager(&manager);
            assert_eq!(bytes, BYTES);
            black_box(bytes);
        });
    });
    // Exited records (and so their 256 MiB logs) are kept for 5 minutes by default: keep one.
    let logging = Manager::builder().max_exited(1).build().expect("manager");
    group.bench_function("manager_log", |b| {
        b.iter(|| {
            let bytes = through_manager_with_log(&logging);
            assert_eq!(bytes, BYTES);
            black_box(bytes);
        });
    });
    let file = std::env::temp_dir().join(format!("procwarden-bench-cat-{}", std::process::id()));
    group.bench_function("cat_to_file", |b| {
        b.iter(|| {
            let bytes = cat_to_file(&file);
            assert_eq!(bytes, BYTES);
            black_box(bytes);
        });
    });
    group.bench_function("plain_drain", |b| {
        b.iter(|| {
            let bytes = plain_drain(&mut buffer);
            assert_eq!(bytes, BYTES);
            black_box(bytes);
        });
    });
    group.finish();
    manager.close();
    logging.close();
}

criterion_group!(benches, capture);
criterion_main!(benches);
