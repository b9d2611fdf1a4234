//! The process manager over real processes: exit codes, output, list and scope rules,
//! environment and working directory, waiting, signals, timeouts, the pipe grace, limits,
//! retention, hooks and close.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{assert_group_empties, dead, eventually, live_group_members};
use procwarden::api::{exit_code, exit_signal};
use procwarden::{Command, Error, Manager, Output, OutputQuery, ProcessId, Signal, Started, Uuid};

const LONG: Duration = Duration::from_secs(20);

/// A manager for each spawn path: the vfork-style clone and the portable fork.
fn both() -> [(&'static str, Manager); 2] {
    [
        ("clone", Manager::builder().build().expect("manager")),
        (
            "fork",
            Manager::builder()
                .portable_spawn(true)
                .build()
                .expect("manager"),
        ),
    ]
}

/// A manager whose SIGKILL follows a SIGTERM after `grace`.
fn with_kill_grace(grace: Duration) -> Manager {
    Manager::builder()
        .kill_grace(grace)
        .build()
        .expect("manager")
}

/// Starts `command` through the shell.
fn start_shell(m: &Manager, command: &str) -> Started {
    m.start(Command::shell(command)).expect("start")
}

/// Waits (up to `LONG`) for the process's first output.
fn first_output(m: &Manager, id: &ProcessId) -> Output {
    m.output(id, None, OutputQuery::after(0, LONG))
        .expect("first output")
}

/// Wait (up to `LONG`) for the process to exit.
fn waiting() -> OutputQuery {
    OutputQuery::until_exit(LONG)
}

fn wait_exit(m: &Manager, id: &ProcessId) -> Output {
    let out = m.output(id, None, waiting()).expect("output");
    assert!(
        !out.running,
        "process still running after {LONG:?}: {out:?}"
    );
    out
}

fn run(m: &Manager, cmd: Command) -> Output {
    let started = m.start(cmd).expect("start");
    wait_exit(m, &started.id)
}

fn chat() -> Uuid {
    Uuid::new_v4()
}

#[test]
fn exit_codes_zero_and_42() {
    for (how, m) in both() {
        let out = run(&m, Command::shell("true"));
        let exit = out.exit.expect("exit");
        assert_eq!((exit.code, exit.signal), (Some(0), None), "{how}");
        let out = run(&m, Command::shell("exit 42"));
        assert_eq!(out.exit.expect("exit").code, Some(42), "{how}");
    }
}

#[test]
fn two_echoes_and_stderr_keep_their_order() {
    for (how, m) in both() {
        let out = run(&m, Command::shell("echo one; echo two >&2; echo three"));
        assert_eq!(out.output, "one\ntwo\nthree\n", "{how}");
        assert_eq!(out.truncated, None);
        assert_eq!(out.next_cursor, 14);
    }
}

#[test]
fn argv_runs_without_a_shell_and_is_listed_shell_quoted() {
    let m = Manager::new().expect("manager");
    let argv = ["printf", "%s|", "a b", "it's", "$HOME"];
    let started = m.start(Command::argv(argv)).expect("start");
    let out = wait_exit(&m, &started.id);
    assert_eq!(out.output, "a b|it's|$HOME|");
    let info = m.info(&started.id, None).expect("info");
    assert_eq!(info.command, "printf '%s|' 'a b' 'it'\"'\"'s' '$HOME'");
}

#[test]
fn a_missing_program_fails_to_start() {
    // The caller's mistakes are told apart from the system's failures (the wire answers them
    // 400, not 500): not in PATH, no such file, not executable, not enterable.
    let m = Manager::new().expect("manager");
    let err = m
        .start(Command::argv(["procwarden-no-such-program"]))
        .expect_err("no such program");
    assert!(
        matches!(&err, Error::ProgramNotFound { program, .. } if program == "procwarden-no-such-program"),
        "{err:?}"
    );
    let err = m
        .start(Command::argv(["/nonexistent/program"]))
        .expect_err("no such file");
    match err {
        Error::ProgramNotFound { program, source } => {
            assert_eq!(program, "/nonexistent/program");
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("{other:?}"),
    }
    let dir = std::env::temp_dir().join(format!("procwarden-noexec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let plain = dir.join("plain");
    std::fs::write(&plain, "echo hi\n").expect("file");
    let err = m
        .start(Command::argv([plain.to_string_lossy().into_owned()]))
        .expect_err("not executable");
    assert!(matches!(err, Error::ProgramNotExecutable { .. }), "{err:?}");
    let err = m
        .start(Command::argv([dir.to_string_lossy().into_owned()]))
        .expect_err("a directory");
    assert!(matches!(err, Error::ProgramNotExecutable { .. }), "{err:?}");
    std::fs::remove_dir_all(&dir).expect("clean up");
    // One argument over the kernel's limit for a single string (128 KiB on Linux).
    let err = m
        .start(Command::argv(["true".to_string(), "x".repeat(200 * 1024)]))
        .expect_err("too large");
    assert!(matches!(err, Error::TooLarge(_)), "{err:?}");
    assert_eq!(m.running(), 0, "failed starts release their slot");
}

#[test]
fn stdin_is_dev_null_and_the_child_starts_clean() {
    for (how, m) in both() {
        assert_eq!(run(&m, Command::shell("cat")).output, "", "{how}");
        let out = run(
            &m,
            Command::shell("grep -E '^(SigBlk|SigIgn)' /proc/self/status; ls /proc/self/fd"),
        );
        assert_eq!(
            out.output, "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n0\n1\n2\n3\n",
            "{how}: default dispositions, empty mask, only fds 0-2 (3 is ls's own)"
        );
    }
}

#[test]
fn list_sorts_running_first_then_newest_start_first() {
    let m = Manager::new().expect("manager");
    let a = m.start(Command::shell("sleep 30")).expect("a").id;
    let b = m.start(Command::shell("true")).expect("b").id;
    let c = m.start(Command::shell("sleep 30")).expect("c").id;
    let d = m.start(Command::shell("true")).expect("d").id;
    wait_exit(&m, &b);
    wait_exit(&m, &d);
    let order: Vec<ProcessId> = m.list(None, 10).into_iter().map(|p| p.id).collect();
    assert_eq!(order, vec![c, a, d, b]);
    let rows = m.list(None, 10);
    assert!(rows[0].running && rows[1].running && !rows[2].running);
    assert_eq!(rows[2].exit.as_ref().and_then(|e| e.code), Some(0));
}

#[test]
fn list_is_capped() {
    let m = Manager::new().expect("manager");
    for _ in 0..12 {
        let id = start_shell(&m, "true").id;
        wait_exit(&m, &id);
    }
    assert_eq!(m.list(None, procwarden::DEFAULT_LIST_LIMIT).len(), 10);
    assert_eq!(m.list(None, 1000).len(), 12);
    assert_eq!(m.list(None, 1).len(), 1);
}

#[test]
fn scope_rules_follow_the_chat() {
    let m = Manager::new().expect("manager");
    let (one, two) = (chat(), chat());
    let p1 = m
        .start(Command::shell("sleep 30").chat(one))
        .expect("p1")
        .id;
    let p2 = m
        .start(Command::shell("sleep 30").chat(two))
        .expect("p2")
        .id;
    let p0 = m.start(Command::shell("sleep 30")).expect("p0").id;

    let listed = |c| -> Vec<ProcessId> { m.list(c, 100).into_iter().map(|p| p.id).collect() };
    assert_eq!(listed(Some(one)), vec![p1], "a chat lists only its own");
    assert_eq!(listed(None).len(), 3, "no chat lists everything");

    assert!(matches!(m.info(&p2, Some(one)), Err(Error::NotFound(_))));
    let snapshot = OutputQuery::snapshot;
    assert!(matches!(
        m.output(&p2, Some(one), snapshot()),
        Err(Error::NotFound(_))
    ));
    assert!(m.output(&p1, Some(one), snapshot()).is_ok());
    assert!(
        m.output(&p0, Some(one), snapshot()).is_ok(),
        "no-chat processes are readable"
    );
    assert!(
        m.output(&p2, None, snapshot()).is_ok(),
        "no chat reads everything"
    );
    assert!(matches!(
        m.signal(&p2, Some(one), Signal::Kill, None),
        Err(Error::NotFound(_))
    ));
    m.signal(&p0, Some(one), Signal::Kill, None)
        .expect("no-chat processes can be signalled");
    m.signal(&p1, Some(one), Signal::Kill, None)
        .expect("own process");
    m.signal(&p2, None, Signal::Kill, None)
        .expect("no chat signals everything");
    for id in [p0, p1, p2] {
        wait_exit(&m, &id);
    }
}

#[test]
fn environment_precedence_base_hook_request_chat() {
    for portable in [false, true] {
        let m = Manager::builder()
            .portable_spawn(portable)
            .base_env([
                ("A", "base"),
                ("B", "base"),
                ("C", "base"),
                ("CODER_CHAT_ID", "base"),
            ])
            .env("PATH", "/usr/bin:/bin")
            .env_hook(|env| {
                env.insert("B".into(), "hook".into());
                env.insert("H".into(), "hook".into());
                Ok(())
            })
            .build()
            .expect("manager");
        let c = chat();
        let cmd = Command::shell("echo \"$A $B $C $H $CODER_CHAT_ID\"")
            .env("C", "request")
            .env("CODER_CHAT_ID", "request")
            .chat(c);
        assert_eq!(run(&m, cmd).output, format!("base hook request hook {c}\n"));
        // Without a chat, the request's own value stands.
        let cmd = Command::shell("echo \"$CODER_CHAT_ID\"").env("CODER_CHAT_ID", "request");
        assert_eq!(run(&m, cmd).output, "request\n");
    }
}

#[test]
fn a_failing_env_hook_leaves_the_base_environment() {
    let m = Manager::builder()
        .base_env([("PATH", "/usr/bin:/bin"), ("B", "base")])
        .env_hook(|env| {
            env.insert("B".into(), "half-done".into());
            Err(std::io::Error::other("hook failed"))
        })
        .build()
        .expect("manager");
    assert_eq!(run(&m, Command::shell("echo \"$B\"")).output, "base\n");
}

#[test]
fn the_manager_environment_is_inherited_without_removed_variables() {
    let m = Manager::builder()
        .env("AGENT_LEVEL", "1")
        .env_remove("HOME")
        .build()
        .expect("manager");
    let out = run(&m, Command::shell("echo \"${AGENT_LEVEL}-${HOME:-unset}\""));
    assert_eq!(out.output, "1-unset\n");
}

#[test]
fn working_directory_chain() {
    // The library's fallback is the calling process's current directory, as for
    // std::process::Command (the server's fallback, $HOME, is tested in tests/http.rs).
    let here = std::env::current_dir().expect("current dir");
    let tmp = std::env::temp_dir().canonicalize().expect("temp dir");

    // Explicit and existing: used.
    let m = Manager::new().expect("manager");
    let started = m.start(Command::shell("pwd").workdir(&tmp)).expect("start");
    assert_eq!(started.workdir, tmp);
    assert_eq!(
        wait_exit(&m, &started.id).output,
        format!("{}\n", tmp.display())
    );
    assert_eq!(m.info(&started.id, None).expect("info").workdir, tmp);

    // Explicit but missing, or relative: refused.
    let missing = tmp.join("procwarden-no-such-dir");
    match m.start(Command::shell("pwd").workdir(&missing)) {
        Err(Error::WorkdirNotFound(dir)) => assert_eq!(dir, missing),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        m.start(Command::shell("pwd").workdir("relative/dir")),
        Err(Error::RelativeWorkdir(_))
    ));
    // Empty counts as absent.
    let started = m.start(Command::shell("pwd").workdir("")).expect("start");
    assert_eq!(started.workdir, here);

    // Configured and existing: used; configured but missing: the current directory.
    let m = Manager::builder()
        .default_workdir(&tmp)
        .build()
        .expect("manager");
    assert_eq!(start_shell(&m, "pwd").workdir, tmp);
    let m = Manager::builder()
        .default_workdir(&missing)
        .build()
        .expect("manager");
    let started = start_shell(&m, "pwd");
    assert_eq!(started.workdir, here);
    assert_eq!(
        wait_exit(&m, &started.id).output,
        format!("{}\n", here.display())
    );
}

#[test]
fn invalid_commands_are_refused_with_a_named_field() {
    let m = Manager::new().expect("manager");
    let start = |cmd| m.start(cmd).expect_err("refused");
    assert!(matches!(
        start(Command::from_parts(None, None)),
        Error::CommandRequired
    ));
    assert!(matches!(
        start(Command::from_parts(Some(String::new()), None)),
        Error::CommandRequired
    ));
    assert!(matches!(
        start(Command::from_parts(
            Some("true".into()),
            Some(vec!["true".into()])
        )),
        Error::CommandAndArgv
    ));
    assert!(matches!(
        start(Command::argv(Vec::<String>::new())),
        Error::EmptyArgv
    ));
    assert!(matches!(start(Command::argv([""])), Error::EmptyArgv));
    match start(Command::shell("a\0b")) {
        Error::NulByte { field } => assert_eq!(field, "command"),
        other => panic!("{other:?}"),
    }
    match start(Command::argv(["echo", "a\0b"])) {
        Error::NulByte { field } => assert_eq!(field, "argv[1]"),
        other => panic!("{other:?}"),
    }
    match start(Command::shell("true").env("K", "v\0")) {
        Error::NulByte { field } => assert_eq!(field, "env[\"K\"]"),
        other => panic!("{other:?}"),
    }
    match start(Command::shell("true").workdir("/tmp\0x")) {
        Error::NulByte { field } => assert_eq!(field, "workdir"),
        other => panic!("{other:?}"),
    }
    for key in ["", "A=B", "A\0B"] {
        assert!(matches!(
            start(Command::shell("true").env(key, "v")),
            Error::InvalidEnvKey { .. }
        ));
    }
    assert_eq!(m.running(), 0);
}

#[test]
fn two_concurrent_waiters_are_woken_by_a_kill() {
    let m = Arc::new(Manager::new().expect("manager"));
    let id = start_shell(&m, "sleep 30").id;
    let waiters: Vec<_> = (0..2)
        .map(|_| {
            let m = Arc::clone(&m);
            std::thread::spawn(move || m.output(&id, None, waiting()).expect("output"))
        })
        .collect();
    m.signal(&id, None, Signal::Kill, None).expect("kill");
    for waiter in waiters {
        let out = waiter.join().expect("waiter");
        assert!(!out.running);
        let exit = out.exit.expect("exit");
        assert_eq!(
            (exit_code(&exit), exit_signal(&exit).as_deref()),
            (-1, Some("SIGKILL"))
        );
        assert!(!exit.timed_out);
    }
}

#[test]
fn a_wait_on_an_exited_process_returns_at_once() {
    let m = Manager::new().expect("manager");
    let id = start_shell(&m, "echo done").id;
    wait_exit(&m, &id);
    let asked = Instant::now();
    let out = m
        .output(&id, None, OutputQuery::until_exit(Duration::from_secs(60)))
        .expect("output");
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "a wait on an exited process blocked"
    );
    assert_eq!((out.output.as_str(), out.running), ("done\n", false));
}

#[test]
fn a_wait_with_a_short_deadline_reports_running() {
    let m = Manager::new().expect("manager");
    let id = start_shell(&m, "echo hi; sleep 30").id;
    let out = m
        .output(
            &id,
            None,
            OutputQuery::until_exit(Duration::from_millis(50)),
        )
        .expect("output");
    assert!(out.running);
    assert_eq!(out.exit, None);
    m.signal(&id, None, Signal::Kill, None).expect("kill");
}

#[test]
fn a_cursor_wait_returns_each_piece_of_output_as_it_comes() {
    let m = Manager::new().expect("manager");
    let id = start_shell(&m, "echo a; sleep 0.3; echo b; sleep 0.3").id;
    let query = |cursor| OutputQuery::after(cursor, LONG);
    let first = m.output(&id, None, query(0)).expect("first");
    assert_eq!((first.output.as_str(), first.running), ("a\n", true));
    let second = m
        .output(&id, None, query(first.next_cursor))
        .expect("second");
    assert_eq!((second.output.as_str(), second.running), ("b\n", true));
    let last = m
        .output(&id, None, query(second.next_cursor))
        .expect("last");
    assert_eq!((last.output.as_str(), last.running), ("", false));
    assert_eq!(last.next_cursor, 4);
}

#[test]
fn terminate_kills_a_whole_pipeline() {
    for (how, m) in both() {
        let started = start_shell(&m, "sleep 100 | sleep 100");
        let pgid = started.pid as i32;
        assert!(
            eventually(LONG, || live_group_members(pgid).len() >= 3),
            "{how}: the pipeline did not start"
        );
        m.signal(&started.id, None, Signal::Terminate, None)
            .expect("terminate");
        let exit = wait_exit(&m, &started.id).exit.expect("exit");
        assert_eq!(exit_signal(&exit).as_deref(), Some("SIGTERM"), "{how}");
        assert_group_empties(pgid, LONG, &format!("{how}: the terminated pipeline"));
    }
}

#[test]
fn terminate_escalates_to_kill_after_the_grace() {
    let m = Manager::new().expect("manager");
    // An ignored signal stays ignored in the shell's children: the whole group ignores TERM.
    let id = start_shell(&m, "trap '' TERM; echo ready; sleep 30").id;
    let ready = first_output(&m, &id);
    assert_eq!(ready.output, "ready\n");
    m.signal(
        &id,
        None,
        Signal::Terminate,
        Some(Duration::from_millis(200)),
    )
    .expect("terminate");
    let exit = wait_exit(&m, &id).exit.expect("exit");
    assert_eq!(exit_signal(&exit).as_deref(), Some("SIGKILL"));
    assert!(!exit.timed_out);
}

#[test]
fn interrupt_sends_sigint() {
    let m = Manager::new().expect("manager");
    // `exec`: a shell caught between fork and exec of its child may handle SIGINT itself.
    let id = start_shell(&m, "exec sleep 30").id;
    m.signal(&id, None, Signal::Interrupt, None)
        .expect("interrupt");
    let exit = wait_exit(&m, &id).exit.expect("exit");
    assert_eq!(exit_signal(&exit).as_deref(), Some("SIGINT"));
}

#[test]
fn a_timeout_terminates_and_is_reported() {
    let m = Manager::new().expect("manager");
    let id = m
        .start(Command::shell("sleep 30").timeout(Duration::from_millis(100)))
        .expect("start")
        .id;
    let exit = wait_exit(&m, &id).exit.expect("exit");
    assert!(exit.timed_out);
    assert_eq!(
        (exit_code(&exit), exit_signal(&exit).as_deref()),
        (-1, Some("SIGTERM"))
    );
}

#[test]
fn a_timeout_escalates_when_terminate_is_ignored() {
    let m = with_kill_grace(Duration::from_millis(200));
    let id = m
        .start(Command::shell("trap '' TERM; echo ready; sleep 30").timeout(Duration::from_secs(1)))
        .expect("start")
        .id;
    let out = wait_exit(&m, &id);
    assert_eq!(
        out.output, "ready\n",
        "the trap was set long before the timeout"
    );
    let exit = out.exit.expect("exit");
    assert!(exit.timed_out);
    assert_eq!(exit_signal(&exit).as_deref(), Some("SIGKILL"));
}

#[test]
fn a_grandchild_holding_the_pipe_cannot_hold_the_exit_past_the_pipe_grace() {
    let m = Manager::new().expect("manager");
    let started = start_shell(&m, "sleep 30 & echo started");
    let out = wait_exit(&m, &started.id);
    assert_eq!(out.output, "started\n");
    let exit = out.exit.expect("exit");
    assert_eq!(exit.code, Some(0));
    assert!(
        exit.duration >= Duration::from_millis(1900) && exit.duration < Duration::from_secs(10),
        "marked exited after {:?}, expected about the 2 s pipe grace",
        exit.duration
    );
    // Close ends the group the background member still lives in.
    let pgid = started.pid as i32;
    assert!(
        !live_group_members(pgid).is_empty(),
        "the background sleep should still run"
    );
    m.close();
    assert_group_empties(pgid, LONG, "after close");
}

#[test]
fn a_signal_during_the_pipe_grace_reaches_what_is_left_of_the_group() {
    let m = Manager::builder()
        .pipe_grace(Duration::from_secs(30))
        .build()
        .expect("manager");
    let started = start_shell(&m, "sleep 30 & exit 3");
    let pgid = started.pid as i32;
    // The leader exits at once; wait until it has been reaped (nothing to wait on for that).
    assert!(eventually(LONG, || dead(pgid)));
    assert!(
        m.info(&started.id, None).expect("info").running,
        "within the pipe grace"
    );
    m.signal(&started.id, None, Signal::Kill, None)
        .expect("kill during the grace");
    let exit = wait_exit(&m, &started.id).exit.expect("exit");
    assert_eq!(
        (exit.code, exit.signal),
        (Some(3), None),
        "the leader's own status"
    );
    assert_group_empties(pgid, LONG, "after the kill during the pipe grace");
}

#[test]
fn signals_after_exit_are_refused_and_unknown_ids_not_found() {
    let m = Manager::new().expect("manager");
    let id = start_shell(&m, "true").id;
    wait_exit(&m, &id);
    assert!(matches!(
        m.signal(&id, None, Signal::Terminate, None),
        Err(Error::NotRunning(_))
    ));
    let unknown: ProcessId = Uuid::new_v4().into();
    assert!(matches!(
        m.signal(&unknown, None, Signal::Kill, None),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        m.output(&unknown, None, OutputQuery::default()),
        Err(Error::NotFound(_))
    ));
}

#[test]
fn the_running_limit_is_enforced() {
    let m = Manager::builder().max_running(2).build().expect("manager");
    let a = m.start(Command::shell("sleep 30")).expect("a").id;
    let _b = m.start(Command::shell("sleep 30")).expect("b").id;
    assert!(matches!(
        m.start(Command::shell("true")),
        Err(Error::TooManyRunning { limit: 2 })
    ));
    m.signal(&a, None, Signal::Kill, None).expect("kill");
    wait_exit(&m, &a);
    m.start(Command::shell("true"))
        .expect("a slot is free again");
}

#[test]
fn exited_processes_are_forgotten_after_the_retention() {
    let m = Manager::builder()
        .retention(Duration::from_millis(200))
        .build()
        .expect("manager");
    let id = start_shell(&m, "true").id;
    wait_exit(&m, &id);
    // The supervisor sweeps on its own deadline: nobody lists in between.
    assert!(eventually(LONG, || matches!(
        m.info(&id, None),
        Err(Error::NotFound(_))
    )));
}

#[test]
fn the_oldest_exited_process_goes_first_past_the_limit() {
    let m = Manager::builder().max_exited(3).build().expect("manager");
    let ids: Vec<ProcessId> = (0..5)
        .map(|_| {
            let id = start_shell(&m, "true").id;
            wait_exit(&m, &id);
            id
        })
        .collect();
    let listed: Vec<ProcessId> = m.list(None, 100).into_iter().map(|p| p.id).collect();
    assert_eq!(listed, vec![ids[4], ids[3], ids[2]]);
}

#[test]
fn the_exit_hook_reports_id_chat_and_workdir() {
    let (tx, rx) = crossbeam_channel::unbounded();
    let m = Manager::builder()
        .on_exit(move |event| {
            let _ = tx.send(event.clone());
        })
        .build()
        .expect("manager");
    let c = chat();
    let dir = std::env::temp_dir().canonicalize().expect("temp dir");
    let id = m
        .start(Command::shell("exit 7").chat(c).workdir(&dir))
        .expect("start")
        .id;
    let event = rx.recv_timeout(LONG).expect("exit event");
    assert_eq!((event.id, event.chat, event.workdir), (id, Some(c), dir));
    assert_eq!(event.exit.code, Some(7));
}

#[test]
fn close_refuses_new_starts_wakes_waiters_and_is_idempotent() {
    let m = Arc::new(Manager::new().expect("manager"));
    let started = start_shell(&m, "sleep 30");
    let waiter = {
        let m = Arc::clone(&m);
        let id = started.id;
        std::thread::spawn(move || m.output(&id, None, waiting()).expect("output"))
    };
    let closers: Vec<_> = (0..2)
        .map(|_| {
            let m = Arc::clone(&m);
            std::thread::spawn(move || m.close())
        })
        .collect();
    for closer in closers {
        closer.join().expect("closer");
    }
    let out = waiter.join().expect("waiter");
    assert!(!out.running);
    assert_eq!(
        out.exit.as_ref().and_then(exit_signal).as_deref(),
        Some("SIGTERM")
    );
    assert!(matches!(
        m.start(Command::shell("true")),
        Err(Error::ShuttingDown)
    ));
    assert!(dead(started.pid as i32));
    m.close();
}

#[test]
fn close_kills_a_group_that_ignores_terminate() {
    let m = with_kill_grace(Duration::from_millis(200));
    let started = start_shell(&m, "trap '' TERM; echo ready; sleep 30");
    // Close only once the trap is in place.
    let ready = first_output(&m, &started.id);
    assert_eq!(ready.output, "ready\n");
    m.close();
    let exit = m.info(&started.id, None).expect("info").exit.expect("exit");
    assert_eq!(exit_signal(&exit).as_deref(), Some("SIGKILL"));
    assert_group_empties(started.pid as i32, LONG, "after close");
}

#[test]
fn starts_racing_with_close_fail_cleanly() {
    let m = Arc::new(Manager::new().expect("manager"));
    let starters: Vec<_> = (0..4)
        .map(|_| {
            let m = Arc::clone(&m);
            std::thread::spawn(move || {
                let mut pids = Vec::new();
                for _ in 0..20 {
                    match m.start(Command::shell("sleep 30")) {
                        Ok(s) => pids.push(s.pid as i32),
                        Err(Error::ShuttingDown) => break,
                        Err(e) => panic!("unexpected error {e:?}"),
                    }
                }
                pids
            })
        })
        .collect();
    m.close();
    let pids: Vec<i32> = starters
        .into_iter()
        .flat_map(|s| s.join().expect("starter"))
        .collect();
    for pid in pids {
        assert!(eventually(LONG, || dead(pid)), "pid {pid} outlived close");
    }
}

#[test]
fn an_exit_seen_by_a_waiter_has_freed_its_running_slot() {
    let m = Manager::builder().max_running(1).build().expect("manager");
    for i in 0..300 {
        let started = match m.start(Command::argv(["/bin/true"])) {
            Ok(s) => s,
            Err(e) => panic!("cycle {i}: a start right after a seen exit failed: {e:?}"),
        };
        wait_exit(&m, &started.id);
        assert_eq!(
            m.running(),
            0,
            "cycle {i}: the slot is still taken after the exit"
        );
    }
}

#[test]
fn a_reader_that_cannot_start_leaves_the_count_and_close_intact() {
    // A stack no thread can have: the reader thread cannot be created.
    let m = Manager::builder()
        .thread_stack_bytes(1 << 50)
        .build()
        .expect("manager");
    let err = m
        .start(Command::shell("sleep 30"))
        .expect_err("no reader thread");
    assert!(matches!(err, Error::Spawn(_)), "{err:?}");
    assert!(
        eventually(LONG, || m.running() == 0),
        "running = {}",
        m.running()
    );
    let (tx, rx) = crossbeam_channel::bounded(1);
    std::thread::spawn(move || {
        m.close();
        let _ = tx.send(());
    });
    assert!(rx.recv_timeout(LONG).is_ok(), "close hung");
}

#[test]
fn the_running_limit_comes_before_the_program_lookup() {
    let m = Manager::builder().max_running(1).build().expect("manager");
    let id = start_shell(&m, "sleep 30").id;
    let err = m
        .start(Command::argv(["procwarden-no-such-program"]))
        .expect_err("refused");
    assert!(matches!(err, Error::TooManyRunning { .. }), "{err:?}");
    m.signal(&id, None, Signal::Kill, None).expect("kill");
}

#[test]
fn close_ends_as_soon_as_a_lingering_group_is_gone() {
    let m = with_kill_grace(Duration::from_secs(10));
    let started = start_shell(&m, "sleep 30 >/dev/null 2>&1 & echo $!");
    let out = wait_exit(&m, &started.id);
    let member: i32 = out.output.trim().parse().expect("the member's pid");
    assert!(!dead(member));
    let asked = Instant::now();
    m.close();
    assert!(dead(member), "close returned while the member lives");
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "close waited {:?}: it should end once SIGTERM has emptied the group, not at the 10 s kill grace",
        asked.elapsed()
    );
}

#[test]
fn close_returns_only_once_killed_members_are_gone() {
    let m = with_kill_grace(Duration::from_millis(100));
    let started = m
        .start(Command::shell(
            "trap '' TERM; sleep 30 >/dev/null 2>&1 & sleep 30 >/dev/null 2>&1 & echo go",
        ))
        .expect("start");
    assert_eq!(first_output(&m, &started.id).output, "go\n");
    let pgid = started.pid as i32;
    m.close();
    assert_eq!(
        live_group_members(pgid),
        Vec::<i32>::new(),
        "members alive after close returned"
    );
}

#[test]
fn the_exit_hook_runs_on_the_supervisor_and_may_close_the_manager() {
    let slot: Arc<std::sync::OnceLock<Arc<Manager>>> = Arc::new(std::sync::OnceLock::new());
    let hook_slot = Arc::clone(&slot);
    let (tx, rx) = crossbeam_channel::unbounded();
    let m = Arc::new(
        Manager::builder()
            .on_exit(move |_| {
                let name = std::thread::current().name().map(str::to_string);
                if let Some(m) = hook_slot.get() {
                    m.close();
                }
                let _ = tx.send(name);
            })
            .build()
            .expect("manager"),
    );
    let _ = slot.set(Arc::clone(&m));
    start_shell(&m, "true");
    let name = rx
        .recv_timeout(LONG)
        .expect("the hook ran without deadlocking");
    assert_eq!(name.as_deref(), Some("procwarden-supervisor"));
    assert!(matches!(
        m.start(Command::shell("true")),
        Err(Error::ShuttingDown)
    ));
    // A later close from another thread finishes the close the hook began, and returns.
    let closer = {
        let m = Arc::clone(&m);
        std::thread::spawn(move || m.close())
    };
    let deadline = std::time::Instant::now() + LONG;
    while !closer.is_finished() {
        assert!(
            std::time::Instant::now() < deadline,
            "a close after the hook's close did not return"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    closer.join().expect("closer");
}

#[test]
fn an_interrupt_ends_waits_early_with_the_answer_of_a_wait_that_ran_out() {
    let m = Manager::new().expect("manager");
    let id = m
        .start(Command::shell("echo first; sleep 30"))
        .expect("start")
        .id;
    let first = m
        .output(&id, None, OutputQuery::after(0, LONG))
        .expect("first line");
    assert_eq!(first.output, "first\n");
    for query in [
        OutputQuery::until_exit(Duration::from_secs(300)),
        OutputQuery::after(first.next_cursor, Duration::from_secs(300)),
    ] {
        let interrupt = procwarden::Interrupt::new();
        let waiting = interrupt.clone();
        let begun = Instant::now();
        let (m2, id2) = (&m, id);
        let out = std::thread::scope(|s| {
            let waiter = s.spawn(move || m2.output(&id2, None, query.interruptible(&waiting)));
            // The product has no event for "a wait has begun": watch for its registration.
            assert!(eventually(LONG, || interrupt.has_waiters()));
            interrupt.interrupt();
            waiter.join().expect("waiter").expect("output")
        });
        assert!(out.running && out.exit.is_none());
        assert!(begun.elapsed() < Duration::from_secs(20));
        // Once interrupted, a wait returns at once.
        let again = m
            .output(
                &id,
                None,
                OutputQuery::until_exit(Duration::from_secs(300)).interruptible(&interrupt),
            )
            .expect("output");
        assert!(again.running);
    }
    m.signal(&id, None, Signal::Kill, None).expect("kill");
}

#[test]
fn a_huge_duration_in_any_builder_method_means_never_not_a_panic() {
    // The pipe grace never ends: a background member holding the pipe keeps the process
    // running until close, which ends its group and returns.
    let m = Manager::builder()
        .pipe_grace(Duration::MAX)
        .build()
        .expect("manager");
    let id = start_shell(&m, "sleep 30 & echo started").id;
    let first = m
        .output(&id, None, OutputQuery::after(0, LONG))
        .expect("output");
    assert_eq!(first.output, "started\n");
    let later = m
        .output(
            &id,
            None,
            OutputQuery::until_exit(Duration::from_millis(300)),
        )
        .expect("output");
    assert!(later.running, "the grace never ends");
    m.close();
    assert!(!m.info(&id, None).expect("info").running);

    // The kill grace never ends: a timeout's SIGTERM still ends a child that heeds it, and
    // close returns once everything has exited.
    let m = Manager::builder()
        .kill_grace(Duration::MAX)
        .build()
        .expect("manager");
    let id = m
        .start(Command::shell("sleep 30").timeout(Duration::from_millis(100)))
        .expect("start")
        .id;
    let exit = wait_exit(&m, &id).exit.expect("exit");
    assert!(exit.timed_out);
    m.close();

    // Retention, the longest wait, the reader idle time and a timeout: never.
    let m = Manager::builder()
        .retention(Duration::MAX)
        .max_wait(Duration::MAX)
        .reader_idle(Duration::MAX)
        .build()
        .expect("manager");
    for _ in 0..2 {
        let started = m
            .start(Command::shell("sleep 0.1").timeout(Duration::MAX))
            .expect("start");
        let out = m
            .output(&started.id, None, OutputQuery::until_exit(Duration::MAX))
            .expect("output");
        assert!(!out.running && out.exit.and_then(|e| e.code) == Some(0));
    }
    assert_eq!(m.list(None, 10).len(), 2, "kept");
    m.close();
}

#[test]
fn a_panicking_exit_hook_is_survived_and_the_next_exit_runs_it() {
    let (tx, rx) = std::sync::mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let m = Manager::builder()
        .on_exit(move |event| {
            let first = event.exit.code == Some(1);
            let _ = tx.lock().expect("sender").send(event.id);
            assert!(!first, "a hook that panics on the first exit");
        })
        .build()
        .expect("manager");
    let failing = run(&m, Command::shell("exit 1"));
    assert!(!failing.running);
    let first = rx.recv_timeout(LONG).expect("the hook ran once");
    // The supervisor is still there: starts work, and the next exit runs the hook again.
    let ok = start_shell(&m, "exit 0").id;
    assert_eq!(wait_exit(&m, &ok).exit.and_then(|e| e.code), Some(0));
    let second = rx.recv_timeout(LONG).expect("the hook ran again");
    assert_eq!(second, ok);
    assert_ne!(first, second);
    m.close();
}
