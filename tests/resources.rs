//! Resources come back: many start/wait cycles leave no zombie, reuse their reader threads,
//! and the process's fd count and thread count return to where they started once idle readers
//! retire. Alone in its binary, because fd and thread
//! counts are process-wide and other tests would move them.

mod common;

use std::time::Duration;

use common::{eventually, fd_count, own_children, own_zombies, thread_count};
use procwarden::{Command, Manager, OutputQuery};

const SETTLE: Duration = Duration::from_secs(10);

fn cycles(manager: &Manager, n: usize) {
    for i in 0..n {
        let started = manager
            .start(Command::shell(if i % 2 == 0 {
                "true"
            } else {
                "echo out; echo err >&2"
            }))
            .expect("start");
        let out = manager
            .output(
                &started.id,
                None,
                OutputQuery::until_exit(Duration::from_secs(20)),
            )
            .expect("output");
        assert!(!out.running, "cycle {i} did not finish");
        assert_eq!(out.exit.expect("exit").code, Some(0));
    }
}

#[test]
fn start_wait_cycles_leave_no_zombie_fd_or_thread() {
    let (threads_before, fds_before) = (thread_count(), fd_count());
    for portable in [false, true] {
        let manager = Manager::builder()
            .portable_spawn(portable)
            .reader_idle(Duration::from_millis(200))
            .build()
            .expect("manager");
        let (threads, fds) = (thread_count(), fd_count());
        cycles(&manager, if portable { 100 } else { 500 });
        // Reader threads are reused: a handful (a start can come before the last reader is idle
        // again), never one per cycle.
        assert!(
            thread_count() <= threads + 8,
            "reader threads were not reused: {threads} -> {}",
            thread_count()
        );
        assert!(own_zombies().is_empty(), "zombies: {:?}", own_zombies());
        assert!(
            eventually(SETTLE, || thread_count() == threads && fd_count() == fds),
            "portable={portable}: threads {threads} -> {}, fds {fds} -> {}",
            thread_count(),
            fd_count()
        );
        manager.close();
        assert!(
            own_children().is_empty(),
            "children left: {:?}",
            own_children()
        );
    }
    // Closed managers leave nothing behind either.
    assert!(
        eventually(SETTLE, || thread_count() == threads_before
            && fd_count() == fds_before),
        "after close: threads {threads_before} -> {}, fds {fds_before} -> {}",
        thread_count(),
        fd_count()
    );
    assert!(own_zombies().is_empty());
}
