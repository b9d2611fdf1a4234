//! Start + wait, and exit -> waiter wake-up, with every process in a cgroup of its own against
//! the same manager without, alternating in rounds so that both see the same machine load.
//!
//! Run (as root, on a host with a writable cgroup2 hierarchy):
//! `cargo run --release --example contained_cost [ROUNDS]`. It makes a parent cgroup at the top
//! of the hierarchy and removes it.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use procwarden::{CgroupMode, Command, Manager, OutputQuery};

const PER_ROUND: usize = 25;

fn cgroup2_mount() -> Option<std::path::PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        (right.split_whitespace().next() == Some("cgroup2"))
            .then(|| left.split_whitespace().nth(4).map(std::path::PathBuf::from))
            .flatten()
    })
}

fn start_wait(manager: &Manager) -> Duration {
    let t = Instant::now();
    let started = manager.start(Command::shell("true")).expect("start");
    let out = manager
        .output(
            &started.id,
            None,
            OutputQuery::until_exit(Duration::from_secs(10)),
        )
        .expect("output");
    assert!(!out.running);
    t.elapsed()
}

fn wakeup(manager: &Manager) -> Duration {
    let started = manager
        .start(Command::shell("exec date +%s%N"))
        .expect("start");
    let out = manager
        .output(
            &started.id,
            None,
            OutputQuery::until_exit(Duration::from_secs(10)),
        )
        .expect("output");
    let back = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    let printed: u128 = out.output.trim().parse().expect("nanoseconds");
    Duration::from_nanos(back.saturating_sub(printed) as u64)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
    let parent = cgroup2_mount()
        .expect("a cgroup2 mount")
        .join(format!("pwcost-{}", std::process::id()));
    std::fs::create_dir(&parent).expect("a writable cgroup2 hierarchy");
    let plain = Manager::new().expect("manager");
    let boxed = Manager::builder()
        .cgroup(CgroupMode::Path(parent.clone()))
        .build()
        .expect("manager");
    assert!(boxed.contained(), "{:?}", boxed.startup_notes());
    let (mut sw_box, mut sw_plain, mut wk_box, mut wk_plain) = (vec![], vec![], vec![], vec![]);
    for _ in 0..3 {
        start_wait(&boxed);
        start_wait(&plain);
    }
    for _ in 0..rounds {
        for _ in 0..PER_ROUND {
            sw_box.push(start_wait(&boxed));
            sw_plain.push(start_wait(&plain));
        }
        for _ in 0..PER_ROUND / 5 {
            wk_box.push(wakeup(&boxed));
            wk_plain.push(wakeup(&plain));
        }
    }
    let (a, b) = (median(sw_box), median(sw_plain));
    println!(
        "start+wait: contained {a:?}, uncontained {b:?}: {:.3}x",
        a.as_secs_f64() / b.as_secs_f64()
    );
    let (c, d) = (median(wk_box), median(wk_plain));
    println!(
        "wake-up: contained {c:?}, uncontained {d:?}: {:+.1} us",
        (c.as_secs_f64() - d.as_secs_f64()) * 1e6
    );
    drop(boxed);
    let _ = std::fs::remove_dir(&parent);
}
