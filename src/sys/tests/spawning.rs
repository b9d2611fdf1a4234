//! What a child starts with (output, stdin, environment, cwd, group, signals, fds), how a
//! failed spawn is reported, and spawns from several threads at once.

use super::*;

for_each_method! {
    fn stdout_and_stderr_share_one_pipe_in_order(method) {
        let (output, outcome) = run(sh(method, "echo hi; echo err >&2"));
        assert_eq!(output, "hi\nerr\n");
        assert_eq!(outcome, WaitOutcome::Exited(0));
    }

    fn missing_executable_is_enoent_and_the_child_is_reaped(method) {
        let spec = spec(method, cstring("/nonexistent/procwarden-test"), &["x"]);
        assert_spawn_fails(&spec, libc::ENOENT, ChildStep::Exec);
    }

    fn non_executable_file_is_eacces_and_the_child_is_reaped(method) {
        let spec = spec(method, cstring("/dev/null"), &["x"]);
        assert_spawn_fails(&spec, libc::EACCES, ChildStep::Exec);
    }

    fn script_without_execute_permission_is_eacces_at_exec(method) {
        // Mode 0644: no execute bit for anyone, so even root gets EACCES.
        let script = TempFile::new("script", "#!/bin/sh\nexit 0\n", 0o644);
        let failing = spec(method, script.cstring(), &["script"]);
        assert_spawn_fails(&failing, libc::EACCES, ChildStep::Exec);
        // The same file made executable runs: the failure was the mode, nothing else.
        let script = TempFile::new("script", "#!/bin/sh\necho ran\n", 0o755);
        let working = spec(method, script.cstring(), &["script"]);
        assert_eq!(run(working), ("ran\n".to_owned(), WaitOutcome::Exited(0)));
    }

    fn missing_cwd_is_enoent_and_the_child_is_reaped(method) {
        let mut spec = sh(method, "exit 0");
        spec.cwd = cstring("/nonexistent/procwarden-test-dir");
        assert_spawn_fails(&spec, libc::ENOENT, ChildStep::Chdir);
    }

    fn cwd_that_is_a_file_is_enotdir_at_chdir(method) {
        let file = TempFile::new("not-a-dir", "", 0o644);
        let mut spec = sh(method, "exit 0");
        spec.cwd = file.cstring();
        assert_spawn_fails(&spec, libc::ENOTDIR, ChildStep::Chdir);
    }

    fn failures_and_successes_alternate_without_mixing_up(method) {
        // A report left over from a failed spawn must not leak into the next one.
        for i in 0..6 {
            if i % 2 == 0 {
                assert_spawn_fails(
                    &spec(method, cstring("/nonexistent/x"), &["x"]),
                    libc::ENOENT,
                    ChildStep::Exec,
                );
            } else {
                assert_eq!(run(sh(method, "exit 5")), (String::new(), WaitOutcome::Exited(5)));
            }
        }
    }

    #[cfg(target_os = "linux")]
    fn given_stdin_fd_is_dev_null_and_reads_eof(method) {
        let devnull = Arc::new(open_dev_null().unwrap());
        for _ in 0..3 {
            let mut spec = sh(method, "readlink /proc/self/fd/0; cat; echo \"eof $?\"");
            spec.stdin = Some(Arc::clone(&devnull));
            assert_eq!(
                run(spec),
                ("/dev/null\neof 0\n".to_owned(), WaitOutcome::Exited(0))
            );
            // The caller's fd is still open (and still close-on-exec) after each spawn.
            // SAFETY: F_GETFD on an fd we own.
            let flags = unsafe { libc::fcntl(devnull.as_raw_fd(), libc::F_GETFD) };
            assert_eq!(flags, libc::FD_CLOEXEC);
        }
    }

    fn cwd_is_applied(method) {
        let dir = std::env::temp_dir()
            .join(format!("procwarden-sys-cwd-{}-{method:?}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let dir = dir.canonicalize().unwrap();
        let mut spec = sh(method, "pwd -P");
        spec.cwd = cstring(dir.to_str().unwrap());
        let (output, outcome) = run(spec);
        std::fs::remove_dir(&dir).unwrap();
        assert_eq!(output, format!("{}\n", dir.display()));
        assert_eq!(outcome, WaitOutcome::Exited(0));
    }

    fn environment_is_exactly_envp(method) {
        let mut spec = spec(method, tool("env"), &["env"]);
        spec.envp = Arc::new(["FOO=bar baz", "EMPTY=", "PATH=/nowhere"].map(cstring).to_vec());
        let (output, outcome) = run(spec);
        assert_eq!(output, "FOO=bar baz\nEMPTY=\nPATH=/nowhere\n");
        assert_eq!(outcome, WaitOutcome::Exited(0));
    }

    fn shell_sees_envp_and_nothing_inherited(method) {
        // HOME is set in almost every parent environment; the child must not inherit it.
        let mut spec = sh(method, r#"echo "$FOO"; echo "${HOME-unset}""#);
        Arc::make_mut(&mut spec.envp).push(cstring("FOO=bar"));
        let (output, outcome) = run(spec);
        assert_eq!(output, "bar\nunset\n");
        assert_eq!(outcome, WaitOutcome::Exited(0));
    }

    fn child_leads_its_own_process_group(method) {
        let mut child = TestChild::spawn(&spec(method, tool("sleep"), &["sleep", "30"]));
        let pid = pid_t(child.pid);
        // SAFETY: getpgid takes integers only; the child is unreaped, its pid is pinned.
        let (child_group, our_group) = unsafe { (libc::getpgid(pid), libc::getpgid(0)) };
        assert_eq!(child_group, pid);
        assert_ne!(child_group, our_group);
        // Same session: setpgid, not setsid.
        // SAFETY: getsid takes integers only.
        let (child_session, our_session) = unsafe { (libc::getsid(pid), libc::getsid(0)) };
        assert_eq!(child_session, our_session);
        signal_group(child.pidfd(), child.pid, libc::SIGKILL, true).unwrap();
        assert_eq!(child.wait(), WaitOutcome::Signaled(libc::SIGKILL));
    }

    #[cfg(target_os = "linux")]
    fn child_starts_with_default_dispositions_and_an_empty_mask(method) {
        use crate::sys::signal::empty_sigset;

        // The Rust runtime ignores SIGPIPE in this process: the child must not inherit it.
        // SAFETY: querying a disposition (NULL new action) changes nothing.
        // SAFETY: sigaction is plain data for which all-zero is valid.
        let mut current: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: a NULL new action only reads the disposition into `current`.
        unsafe { libc::sigaction(libc::SIGPIPE, ptr::null(), &mut current) };
        assert_eq!(current.sa_sigaction, libc::SIG_IGN, "precondition: SIGPIPE ignored");

        // Block SIGTERM in this thread only, as a sigwait-style host would.
        let mut term = empty_sigset();
        let mut previous = empty_sigset();
        // SAFETY: valid sigset pointers; only this test thread's mask changes.
        unsafe {
            libc::sigaddset(&mut term, libc::SIGTERM);
            libc::pthread_sigmask(libc::SIG_BLOCK, &term, &mut previous);
        }
        let grep = spec(
            method,
            tool("grep"),
            &["grep", "-E", "^(SigBlk|SigIgn)", "/proc/self/status"],
        );
        let (read, write) = pipe_cloexec().unwrap();
        let mut grep = grep;
        grep.output = write;
        let spawned = spawn(&grep);
        // spawn restored our mask: SIGTERM is still blocked here, and only SIGTERM.
        let mut now = empty_sigset();
        // SAFETY: reading the mask (NULL new set) changes nothing.
        let (term_blocked, usr1_blocked) = unsafe {
            libc::pthread_sigmask(libc::SIG_BLOCK, ptr::null(), &mut now);
            let flags = (libc::sigismember(&now, libc::SIGTERM), libc::sigismember(&now, libc::SIGUSR1));
            libc::pthread_sigmask(libc::SIG_SETMASK, &previous, ptr::null_mut());
            flags
        };
        let mut child = TestChild::from(spawned.expect("spawn"));
        drop(grep); // our copy of the write end
        let output = read_to_eof(read);
        assert_eq!(child.wait(), WaitOutcome::Exited(0));
        assert_eq!((term_blocked, usr1_blocked), (1, 0), "the caller's mask is restored");
        assert_eq!(output, "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");
    }

    #[cfg(target_os = "linux")]
    fn stdin_is_dev_null(method) {
        let spec = spec(method, tool("readlink"), &["readlink", "/proc/self/fd/0"]);
        assert_eq!(run(spec), ("/dev/null\n".to_owned(), WaitOutcome::Exited(0)));
    }

    #[cfg(target_os = "linux")]
    fn no_fd_beyond_stdio_leaks_into_the_child(method) {
        // An fd opened without O_CLOEXEC, as careless library code would.
        let (keep_read, _keep_write) = pipe_cloexec().unwrap();
        // SAFETY: F_DUPFD (no CLOEXEC) on an open fd; the copy is owned right away.
        let leaky = unsafe { libc::fcntl(keep_read.as_raw_fd(), libc::F_DUPFD, 100) };
        assert!(leaky >= 100, "{}", io::Error::last_os_error());
        // SAFETY: the kernel just gave us this fd; nothing else owns it.
        let leaky = unsafe { OwnedFd::from_raw_fd(leaky) };
        // SAFETY: F_GETFD on an open fd.
        let fd_flags = unsafe { libc::fcntl(leaky.as_raw_fd(), libc::F_GETFD) };
        assert_eq!(fd_flags & libc::FD_CLOEXEC, 0, "the leaky fd is inheritable");

        let (output, outcome) = run(spec(method, tool("ls"), &["ls", "/proc/self/fd"]));
        // 0, 1, 2, and the fd ls itself holds on /proc/self/fd while listing it. Nothing else:
        // not the leaky fd, not the report pipe, not /dev/null's source fd.
        assert_eq!(output, "0\n1\n2\n3\n");
        assert_eq!(outcome, WaitOutcome::Exited(0));
        drop(leaky);
    }

    #[cfg(target_os = "linux")]
    fn parent_death_signal_fires_when_the_spawning_thread_exits(method) {
        let mut spec = spec(method, tool("sleep"), &["sleep", "30"]);
        spec.parent_death_signal = Some(libc::SIGKILL);
        let spawned = std::thread::spawn(move || spawn(&spec).expect("spawn"))
            .join()
            .expect("spawning thread");
        // The spawning thread has exited: the kernel sends the child SIGKILL.
        let mut child = TestChild::from(spawned);
        assert_eq!(child.wait(), WaitOutcome::Signaled(libc::SIGKILL));
    }

    fn parent_death_signal_is_not_sent_while_the_spawning_thread_lives(method) {
        let mut spec = sh(method, "exit 3");
        spec.parent_death_signal = Some(libc::SIGKILL);
        assert_eq!(run(spec).1, WaitOutcome::Exited(3));
    }

    fn many_spawns_in_a_row_each_report_their_own_exit(method) {
        for code in 0..40 {
            let (output, outcome) = run(sh(method, &format!("echo {code}; exit {code}")));
            assert_eq!((output, outcome), (format!("{code}\n"), WaitOutcome::Exited(code)));
            if code % 10 == 0 {
                assert_spawn_fails(
                    &spec(method, cstring("/nonexistent/x"), &["x"]),
                    libc::ENOENT,
                    ChildStep::Exec,
                );
            }
        }
    }
}

#[test]
fn default_method_is_clone_vfork_on_linux_only() {
    let expected = if cfg!(target_os = "linux") {
        SpawnMethod::CloneVfork
    } else {
        SpawnMethod::Fork
    };
    assert_eq!(SpawnMethod::default_for_platform(), expected);
}

#[test]
fn concurrent_spawns_from_several_threads_do_not_mix_up() {
    let threads: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..15 {
                    let method = METHODS[(t + i) % 2];
                    let code = (t * 16 + i) as i32;
                    let (output, outcome) = run(sh(method, &format!("echo {code}; exit {code}")));
                    assert_eq!(
                        (output, outcome),
                        (format!("{code}\n"), WaitOutcome::Exited(code))
                    );
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("spawning thread");
    }
}

#[test]
fn four_threads_spawning_fifty_each_at_once_get_their_own_reports() {
    // Each thread has its own ChildArgs (reports) and its own child stack; one /dev/null
    // fd serves them all. Failures are mixed in so that a report landing in the wrong
    // thread's memory would show.
    let devnull = Arc::new(open_dev_null().unwrap());
    let start = std::sync::Barrier::new(4);
    std::thread::scope(|scope| {
        for t in 0..4 {
            let (start, devnull) = (&start, &devnull);
            scope.spawn(move || {
                start.wait();
                for i in 0..50 {
                    let method = SpawnMethod::CloneVfork;
                    if (t + i) % 10 == 0 {
                        assert_spawn_fails(
                            &spec(method, cstring("/nonexistent/x"), &["x"]),
                            libc::ENOENT,
                            ChildStep::Exec,
                        );
                        continue;
                    }
                    let code: i32 = (t * 50 + i) % 256;
                    let mut spec = sh(method, &format!("echo {code}; exit {code}"));
                    spec.stdin = (i % 2 == 0).then(|| Arc::clone(devnull));
                    assert_eq!(run(spec), (format!("{code}\n"), WaitOutcome::Exited(code)));
                }
            });
        }
    });
}

#[test]
fn every_step_code_decodes_to_its_step_and_no_other_code_does() {
    // The steps are numbered 1 to 9 (0 is "nothing failed" in the shared report): each of
    // those codes decodes to the step with that code, every other code to nothing.
    for code in 0..=u8::MAX {
        match ChildStep::try_from(code) {
            Ok(step) => assert_eq!(step as u8, code),
            Err(refused) => {
                assert_eq!(refused, code);
                assert!(code == 0 || code > 9, "code {code} is a step");
            }
        }
    }
    assert!((1..=9).all(|code| ChildStep::try_from(code).is_ok()));
}
