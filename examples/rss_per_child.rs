//! Measures how much resident memory each running child costs the manager's process.
//!
//! Run: `cargo run --release --example rss_per_child [N]` (default 500 children of `sleep 60`).
//! Prints VmRSS before and after starting them, the growth per child, and the thread count.
//! The children are stopped by `close` at the end.

use procwarden::{Command, Manager};

fn status_field(name: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .expect("/proc/self/status")
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(500);
    let manager = Manager::builder()
        .max_running(n + 1)
        .build()
        .expect("manager");
    // Warm up: the first start and exit allocate the manager's own structures.
    let warm = manager.start(Command::shell("true")).expect("start");
    let _ = manager.output(
        &warm.id,
        None,
        procwarden::OutputQuery::until_exit(std::time::Duration::from_secs(10)),
    );
    let before = status_field("VmRSS:");
    for _ in 0..n {
        manager.start(Command::shell("sleep 60")).expect("start");
    }
    let after = status_field("VmRSS:");
    let threads = status_field("Threads:");
    let per_child = (after.saturating_sub(before) as f64) / n as f64;
    println!(
        "children: {n}\nVmRSS before: {before} KiB\nVmRSS after:  {after} KiB\ngrowth per child: {per_child:.1} KiB\nthreads: {threads}"
    );
    manager.close();
}
