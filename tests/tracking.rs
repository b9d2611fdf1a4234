//! Tracked starts through the library: `Command::tracked`, `Manager::cancel_tracked` and
//! `Manager::output_tracked`, over real processes.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use common::assert_group_empties;
use procwarden::{Command, Error, Manager, OutputQuery, ProcessId, TrackedOutput, Tracking, Uuid};

const LONG: Duration = Duration::from_secs(20);

fn scratch(what: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("procwarden-tracking-{what}-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

#[test]
fn the_same_tracked_start_twice_runs_once_and_answers_the_same_process() {
    let m = Manager::new().expect("manager");
    let dir = scratch("twice");
    let file = dir.join("runs");
    let id = Uuid::new_v4();
    let cmd =
        || Command::shell(format!("echo run >> {}", file.display())).tracked(Tracking::new(id));
    let first = m.start(cmd()).expect("start");
    assert_eq!(*first.id.as_uuid(), id, "the process id is the tracked id");
    m.output(&first.id, None, OutputQuery::until_exit(LONG))
        .expect("output");
    let again = m.start(cmd()).expect("replay");
    assert_eq!((again.id, again.pid), (first.id, first.pid));
    assert_eq!(std::fs::read_to_string(&file).expect("runs"), "run\n");
    assert_eq!(m.tracked_identities(), 1);
    // Its own fields differ: a conflict. So does another chat.
    let timed = cmd().timeout(Duration::from_secs(60));
    assert!(matches!(m.start(timed), Err(Error::TrackedConflict)));
    assert!(matches!(
        m.start(cmd().chat(Uuid::new_v4())),
        Err(Error::TrackedConflict)
    ));
    // An untracked process's id is not a tracked identity to take.
    let plain = m.start(Command::shell("true")).expect("plain");
    let taken = Command::shell("true").tracked(Tracking::new(*plain.id.as_uuid()));
    assert!(matches!(m.start(taken), Err(Error::TrackedConflict)));
    // The nil id is invalid; a command is required first.
    assert!(matches!(
        m.start(Command::shell("true").tracked(Tracking::new(Uuid::nil()))),
        Err(Error::TrackedInvalid)
    ));
    assert!(matches!(
        m.start(Command::from_parts(None, None).tracked(Tracking::new(Uuid::nil()))),
        Err(Error::CommandRequired)
    ));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_fence_stops_a_start_that_races_with_it() {
    // Many rounds of a start and a cancel of the same identity at once: each round either
    // runs the command (and the cancel kills it) or fences it (and the start is refused);
    // never both refused, never run after a fence.
    let m = Arc::new(Manager::new().expect("manager"));
    for round in 0..50 {
        let id = Uuid::new_v4();
        let tracking = Tracking::new(id);
        let starter = {
            let (m, tracking) = (Arc::clone(&m), tracking.clone());
            std::thread::spawn(move || m.start(Command::shell("sleep 30").tracked(tracking)))
        };
        let cancelled = m
            .cancel_tracked(&tracking, None, LONG, None)
            .expect("cancel");
        let started = starter.join().expect("starter");
        match (&started, cancelled.fenced) {
            (Err(Error::TrackedConflict), true) => assert!(cancelled.process.is_none()),
            (Ok(_), false) => {
                let info = cancelled.process.expect("the process");
                assert!(
                    !info.running,
                    "round {round}: the cancel waited for the kill"
                );
            }
            (Ok(started), true) => {
                panic!("round {round}: fenced, yet started {}", started.id)
            }
            (other, fenced) => panic!("round {round}: {other:?}, fenced {fenced}"),
        }
        if let Ok(started) = started {
            // The cancel came first but found the start reserving: it killed it.
            let out = m
                .output(&started.id, None, OutputQuery::until_exit(LONG))
                .expect("output");
            assert!(!out.running);
        }
    }
}

#[test]
fn the_deadline_kills_the_group_through_the_supervisor() {
    let m = Manager::new().expect("manager");
    let deadline = SystemTime::now() + Duration::from_millis(1500);
    let started = m
        .start(
            Command::shell("trap '' TERM; sleep 60 & wait")
                .tracked(Tracking::new(Uuid::new_v4()).deadline(deadline)),
        )
        .expect("start");
    let begun = Instant::now();
    let out = m
        .output(&started.id, None, OutputQuery::until_exit(LONG))
        .expect("output");
    assert!(!out.running, "ended by its deadline");
    assert!(begun.elapsed() >= Duration::from_millis(500));
    let exit = out.exit.expect("exit");
    assert_eq!(exit.signal, Some(libc::SIGKILL));
    assert!(!exit.timed_out);
    assert_group_empties(started.pid as i32, Duration::from_secs(5), "deadline");
    // A deadline that has passed refuses the start.
    let late = Tracking::new(Uuid::new_v4()).deadline(SystemTime::now() - Duration::from_secs(1));
    assert!(matches!(
        m.start(Command::shell("true").tracked(late)),
        Err(Error::TrackedExpired)
    ));
}

#[test]
fn receipts_outlive_the_record_and_keep_the_final_state() {
    let m = Manager::builder()
        .max_exited(1)
        .max_tracked(3)
        .build()
        .expect("manager");
    let id = Uuid::new_v4();
    let tracking = Tracking::new(id).input_digest("d1");
    let pid = ProcessId::from(id);
    m.start(Command::shell("echo out; exit 7").tracked(tracking.clone()))
        .expect("start");
    match m
        .output_tracked(&pid, None, Some("d1"), OutputQuery::until_exit(LONG))
        .expect("output")
    {
        TrackedOutput::Output(out) => {
            assert_eq!(
                (out.output.as_str(), out.command.as_str()),
                ("out\n", "echo out; exit 7")
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        m.output_tracked(&pid, None, Some("d2"), OutputQuery::snapshot()),
        Err(Error::TrackedConflict)
    ));
    // Another exit forgets the record (max_exited 1).
    let other = m.start(Command::shell("true")).expect("other");
    m.output(&other.id, None, OutputQuery::until_exit(LONG))
        .expect("other exits");
    assert!(matches!(m.info(&pid, None), Err(Error::NotFound(_))));
    match m.output_tracked(&pid, None, Some("d1"), OutputQuery::snapshot()) {
        Ok(TrackedOutput::Unavailable {
            input_digest,
            process,
        }) => {
            assert_eq!(input_digest, "d1");
            assert_eq!(process.id, pid);
            assert!(process.command.is_empty() && process.workdir.as_os_str().is_empty());
            assert_eq!(process.exit.expect("exit").code, Some(7));
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        m.start(Command::shell("echo out; exit 7").tracked(tracking.clone())),
        Err(Error::TrackedExpired)
    ));
    let cancelled = m
        .cancel_tracked(&tracking, None, Duration::ZERO, None)
        .expect("cancel");
    assert!(!cancelled.fenced);
    assert_eq!(
        cancelled.process.and_then(|p| p.exit).and_then(|e| e.code),
        Some(7)
    );
    // Capacity: two more identities fit, the next does not.
    m.cancel_tracked(&Tracking::new(Uuid::new_v4()), None, Duration::ZERO, None)
        .expect("a fence");
    m.start(Command::shell("true").tracked(Tracking::new(Uuid::new_v4())))
        .expect("a third identity");
    assert!(matches!(
        m.start(Command::shell("true").tracked(Tracking::new(Uuid::new_v4()))),
        Err(Error::TrackedCapacity { limit: 3 })
    ));
    assert_eq!(m.tracked_identities(), 3);
}

#[test]
fn a_failed_tracked_start_answers_its_replay_with_the_same_error() {
    let m = Manager::new().expect("manager");
    let tracking = Tracking::new(Uuid::new_v4());
    let cmd = || Command::argv(["procwarden-no-such-program"]).tracked(tracking.clone());
    let first = m.start(cmd()).expect_err("not found");
    let again = m.start(cmd()).expect_err("not found again");
    assert!(matches!(first, Error::ProgramNotFound { .. }), "{first:?}");
    assert_eq!(first.to_string(), again.to_string());
    let cancelled = m
        .cancel_tracked(&tracking, None, Duration::ZERO, None)
        .expect("cancel");
    assert!(cancelled.fenced, "a start that failed never ran");
}
