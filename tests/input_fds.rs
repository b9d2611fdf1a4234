//! Exited records keep their output but no descriptor for their input: the pipe's write end,
//! the terminal's master and the input's waker are all let go of. Alone in its binary, so that
//! no other test opens descriptors while it counts them.

use std::time::{Duration, Instant};

use procwarden::{Command, Manager, OutputQuery, ProcessId};

const LONG: Duration = Duration::from_secs(20);

fn wait_exit(m: &Manager, id: &ProcessId) {
    let out = m
        .output(id, None, OutputQuery::until_exit(LONG))
        .expect("output");
    assert!(!out.running, "still running after {LONG:?}: {out:?}");
}

/// Descriptors this process has open.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

#[test]
fn an_exited_record_holds_no_descriptor_for_its_input() {
    let m = Manager::new().expect("manager");
    // Warm up the reader pool and the supervisor, so that their own fds are counted before.
    let warm = m.start(Command::shell("cat").stdin_pipe()).expect("start");
    m.close_input(&warm.id, None).expect("close");
    wait_exit(&m, &warm.id);
    let before = open_fds();
    let mut ids = Vec::new();
    for i in 0..20 {
        let cmd = Command::shell("cat");
        let cmd = if i % 2 == 0 {
            cmd.stdin_pipe()
        } else {
            cmd.tty(24, 80)
        };
        let started = m.start(cmd).expect("start");
        m.input(&started.id, None, b"x\n", true).expect("input");
        wait_exit(&m, &started.id);
        ids.push(started.id);
    }
    // Watchers let go of their copies as they finish; wait for that (nothing signals it).
    let deadline = Instant::now() + LONG;
    while open_fds() > before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        open_fds() <= before,
        "{} fds open, {before} before",
        open_fds()
    );
    for id in &ids {
        assert!(m.info(id, None).is_ok(), "the records are still kept");
    }
}
