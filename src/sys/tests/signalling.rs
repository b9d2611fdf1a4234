//! Signalling a whole process group: every member, after the leader is reaped, and never a
//! number that is not ours.

use super::*;

for_each_method! {
    #[cfg(target_os = "linux")]
    fn signal_group_kills_every_member_of_a_pipeline(method) {
        let (read, write) = pipe_cloexec().unwrap();
        let script = "sleep 100 | sleep 100 & echo started; wait";
        // The spec (and with it our copy of the write end) is dropped right after the spawn.
        let mut child = TestChild::spawn(&SpawnSpec {
            output: write,
            ..sh(method, script)
        });
        assert_eq!(read_line(&read), "started\n");
        let pgid = child.pid;
        // Both sleeps were forked before "started" was printed: the shell and them.
        assert!(live_group_members(pgid) >= 3, "{:?}", group_members(pgid));

        signal_group(child.pidfd(), pgid, libc::SIGKILL, true).unwrap();
        assert_eq!(child.wait(), WaitOutcome::Signaled(libc::SIGKILL));
        wait_until("no member of the pipeline runs", Duration::from_secs(5), || {
            live_group_members(pgid) == 0
        });
        // The orphaned sleeps are zombies of init until it reaps them; init here reaps
        // lazily (every ~2 s was seen), so this waits longer than the kill itself.
        wait_until("the group is empty", Duration::from_secs(15), || !group_alive(pgid));
    }

    #[cfg(target_os = "linux")]
    fn signal_group_reaches_members_after_the_leader_is_reaped(method) {
        let (read, write) = pipe_cloexec().unwrap();
        let script = "sleep 30 & echo started; exit 0";
        // The spec (and with it our copy of the write end) is dropped right after the spawn.
        let mut child = TestChild::spawn(&SpawnSpec {
            output: write,
            ..sh(method, script)
        });
        assert_eq!(read_line(&read), "started\n");
        assert_eq!(child.wait(), WaitOutcome::Exited(0));
        let pgid = child.pid;
        assert_eq!(live_group_members(pgid), 1, "the background sleep outlives its leader");
        assert!(group_alive(pgid));

        // Through the reaped leader's pidfd: PIDFD_SIGNAL_PROCESS_GROUP (Linux 6.9+).
        let pidfd = child.pidfd().expect("a pidfd on Linux");
        if let Err(err) = linux::pidfd_send_signal(pidfd, 0, linux::PIDFD_SIGNAL_PROCESS_GROUP) {
            eprintln!("skipped: this kernel has no PIDFD_SIGNAL_PROCESS_GROUP ({err})");
            return;
        }
        // The number is not pinned any more: the pidfd alone must do it.
        signal_group(Some(pidfd), pgid, libc::SIGKILL, false)
            .expect("group signal via a reaped leader's pidfd");
        wait_until("the background sleep is killed", Duration::from_secs(5), || {
            live_group_members(pgid) == 0
        });
        wait_until("the group is empty", Duration::from_secs(15), || !group_alive(pgid));
        let err = signal_group(Some(pidfd), pgid, libc::SIGKILL, false)
            .expect_err("nothing is left");
        assert_eq!(err.raw_os_error(), Some(libc::ESRCH));
    }
}

#[test]
fn signal_group_refuses_our_own_group_and_everyone() {
    // 0, 1, what -1 becomes as u32 (bit for bit), and the first u32 past the largest pid_t.
    for pgid in [0, 1, (-1i32) as u32, 1 << 31] {
        let err = signal_group(None, pgid, 0, true).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
        assert!(!group_alive(pgid));
    }
}
