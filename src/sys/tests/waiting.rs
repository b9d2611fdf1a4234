//! Waiting for and reaping one child: by pidfd, by pid, without reaping, and never anyone
//! else's.

use super::*;

for_each_method! {
    #[cfg(target_os = "linux")]
    fn exit_code_is_reaped_once_the_pidfd_is_readable(method) {
        let mut child = TestChild::spawn(&sh(method, "exit 42"));
        let pidfd = child.pidfd().expect("a pidfd on Linux 5.3+");
        let mut ready = Vec::new();
        poll_readable(&[pidfd], Some(DEADLINE), &mut ready).expect("poll");
        assert_eq!(ready, [0], "the pidfd becomes readable when the child exits");
        assert_eq!(try_reap(child.pid, child.pidfd()).unwrap(), WaitOutcome::Exited(42));
        child.reaped = true;
        // Reaped once: a second reap finds nothing to wait for.
        assert_eq!(try_reap(child.pid, child.pidfd()).unwrap(), WaitOutcome::Unknown);
    }

    fn wait_exit_no_reap_leaves_the_status_for_try_reap(method) {
        let mut child = TestChild::spawn(&sh(method, "exit 7"));
        wait_exit_no_reap(child.pid).unwrap();
        // Still unreaped, so still in its (zombie) group.
        assert!(group_alive(child.pid));
        assert_eq!(try_reap(child.pid, None).unwrap(), WaitOutcome::Exited(7));
        child.reaped = true;
    }

    fn try_reap_reports_running_then_the_signal(method) {
        let mut child = TestChild::spawn(&spec(method, tool("sleep"), &["sleep", "30"]));
        assert_eq!(try_reap(child.pid, child.pidfd()).unwrap(), WaitOutcome::Running);
        assert_eq!(try_reap(child.pid, None).unwrap(), WaitOutcome::Running);
        signal_group(child.pidfd(), child.pid, libc::SIGTERM, true).unwrap();
        assert_eq!(child.wait(), WaitOutcome::Signaled(libc::SIGTERM));
    }
}

#[test]
fn waits_never_touch_other_children() {
    // pid 1 is never our child: ECHILD, reported as "exited, status unknown".
    assert_eq!(try_reap(1, None).unwrap(), WaitOutcome::Unknown);
    wait_exit_no_reap(1).unwrap();
    // pids that mean "any child" or "my group" to wait calls are refused outright: 0, what -1
    // and -42 become as u32 (bit for bit), and the first u32 past the largest pid_t.
    for pid in [0, (-1i32) as u32, (-42i32) as u32, 1 << 31] {
        assert_eq!(
            try_reap(pid, None).unwrap_err().raw_os_error(),
            Some(libc::EINVAL)
        );
        assert_eq!(
            wait_exit_no_reap(pid).unwrap_err().raw_os_error(),
            Some(libc::EINVAL)
        );
    }
}
