//! Waiting for a pattern and for any of several processes, through the library: a match in
//! the omitted middle of a 10 MiB stream, a pattern that never matches, a line split across
//! writes, a 2049-byte line, the last line without a line end, cursors, bad patterns, and
//! `wait_any`.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{eventually, kill_group_survivors, threads_in_timed_wait};
use procwarden::{Command, Error, Manager, Output, OutputQuery, ProcessId};

const LONG: Duration = Duration::from_secs(20);

fn manager() -> Arc<Manager> {
    Arc::new(Manager::new().expect("manager"))
}

/// A file that does not exist yet, for a child to wait on (the gate opens when it appears).
fn gate(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "procwarden-until-{name}-{}-{}",
        std::process::id(),
        ProcessId::from(procwarden::Uuid::new_v4())
    ));
    let _ = std::fs::remove_file(&path);
    path
}

/// `sh` text that waits until `gate` exists.
fn wait_for_gate(gate: &std::path::Path) -> String {
    format!("while [ ! -e '{}' ]; do sleep 0.01; done", gate.display())
}

/// Runs an output wait for `pattern` on a thread named `name`, and returns once that thread is
/// blocked in its wait (so the pattern is registered with the process's reader).
fn waiting_thread(
    m: &Arc<Manager>,
    id: ProcessId,
    query: OutputQuery,
    name: &str,
) -> std::thread::JoinHandle<Output> {
    let waiter = Arc::clone(m);
    let handle = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || waiter.output(&id, None, query).expect("output"))
        .expect("thread");
    let me = std::process::id() as i32;
    assert!(
        eventually(LONG, || threads_in_timed_wait(me, name) == 1),
        "the waiter never blocked"
    );
    handle
}

#[test]
fn a_match_in_the_omitted_middle_of_a_10_mib_stream_is_found() {
    let m = manager();
    let gate = gate("middle");
    // 5 MiB of 80-byte lines, the needle, 5 MiB more: the needle is never in the kept text.
    let a_line = "a".repeat(79);
    let command = format!(
        "{}; yes {a_line} | head -c 5242880; echo 'NEEDLE 42'; yes {a_line} | head -c 5242880; sleep 30",
        wait_for_gate(&gate)
    );
    let started = m.start(Command::shell(command)).expect("start");
    let waiter = waiting_thread(
        &m,
        started.id,
        OutputQuery::until_exit(LONG).until(r"^NEEDLE \d+$"),
        "until-middle",
    );
    std::fs::write(&gate, "").expect("open the gate");
    let out = waiter.join().expect("waiter");
    assert_eq!(out.matched, Some(true), "{:?}", out.line_match);
    let found = out.line_match.expect("a match");
    assert_eq!(found.line, "NEEDLE 42");
    assert_eq!(found.offset, 5_242_880);
    assert!(out.running, "answered at the match, not at the exit");
    // Once the stream is past it, the needle is in the omitted middle: not in the output.
    let total = 5_242_880 + 10 + 5_242_880;
    let deadline = Instant::now() + LONG;
    let mut cursor = 0;
    while cursor < total && Instant::now() < deadline {
        cursor = m
            .output(&started.id, None, OutputQuery::after(cursor, LONG))
            .expect("output")
            .next_cursor;
    }
    assert_eq!(cursor, total);
    let after = m
        .output(&started.id, None, OutputQuery::snapshot())
        .expect("output");
    assert!(after.truncated.is_some());
    assert!(!after.output.contains("NEEDLE"));
    let _ = std::fs::remove_file(&gate);
    kill_group_survivors(started.pid as i32);
}

#[test]
fn a_pattern_that_never_matches_ends_the_wait_at_the_exit() {
    let m = manager();
    let started = m
        .start(Command::shell("echo one; sleep 0.3; echo two"))
        .expect("start");
    let began = Instant::now();
    let out = m
        .output(
            &started.id,
            None,
            OutputQuery::until_exit(LONG).until("never-printed"),
        )
        .expect("output");
    assert!(began.elapsed() < LONG);
    assert!(!out.running, "{out:?}");
    assert_eq!(out.matched, Some(false));
    assert_eq!(out.line_match, None);
    assert_eq!(
        out.output, "one\ntwo\n",
        "the output is as without a pattern"
    );
}

#[test]
fn a_line_split_across_writes_matches_whole() {
    let m = manager();
    let gate = gate("split");
    let command = format!(
        "printf 'rea'; {}; printf 'dy\\n'; sleep 30",
        wait_for_gate(&gate)
    );
    let started = m.start(Command::shell(command)).expect("start");
    let first = m
        .output(&started.id, None, OutputQuery::after(0, LONG))
        .expect("first output");
    assert_eq!(first.output, "rea");
    let waiter = waiting_thread(
        &m,
        started.id,
        OutputQuery::until_exit(LONG).until("^ready$"),
        "until-split",
    );
    std::fs::write(&gate, "").expect("open the gate");
    let out = waiter.join().expect("waiter");
    let found = out.line_match.expect("matched");
    assert_eq!((found.line.as_str(), found.offset), ("ready", 0));
    let _ = std::fs::remove_file(&gate);
    kill_group_survivors(started.pid as i32);
}

#[test]
fn a_2049_byte_line_is_matched_on_its_first_2048_bytes() {
    let m = manager();
    let gate = gate("long");
    // Line 1: END in bytes 2046..2049, past the first 2048; line 2: END ends at byte 2048.
    let command = format!(
        "{}; printf '%s\\n' \"$(printf 'x%.0s' $(seq 2046))END\" \"$(printf 'x%.0s' $(seq 2045))ENDy\"; sleep 30",
        wait_for_gate(&gate)
    );
    let started = m.start(Command::shell(command)).expect("start");
    let waiter = waiting_thread(
        &m,
        started.id,
        OutputQuery::until_exit(LONG).until("END"),
        "until-long",
    );
    std::fs::write(&gate, "").expect("open the gate");
    let out = waiter.join().expect("waiter");
    let found = out.line_match.expect("the second line matches");
    assert_eq!(found.offset, 2050);
    assert_eq!(
        found.line,
        format!("{}{}", "x".repeat(2032), procwarden::TRUNCATION_SUFFIX),
        "shown cut as the output rules cut it"
    );
    // The same answer from the kept text, for a wait that begins after both lines.
    let again = m
        .output(
            &started.id,
            None,
            OutputQuery::until_exit(LONG).until("END"),
        )
        .expect("output");
    assert_eq!(again.line_match.map(|f| f.offset), Some(2050));
    let _ = std::fs::remove_file(&gate);
    kill_group_survivors(started.pid as i32);
}

#[test]
fn a_last_line_without_a_line_end_counts_once_exited() {
    let m = manager();
    let gate = gate("last");
    let command = format!("{}; printf 'done without newline'", wait_for_gate(&gate));
    let started = m.start(Command::shell(command)).expect("start");
    let waiter = waiting_thread(
        &m,
        started.id,
        OutputQuery::until_exit(LONG).until("newline$"),
        "until-last",
    );
    std::fs::write(&gate, "").expect("open the gate");
    let out = waiter.join().expect("waiter");
    assert!(!out.running);
    assert_eq!(
        out.line_match.map(|f| (f.line, f.offset)),
        Some(("done without newline".to_string(), 0))
    );
    // And for a wait that arrives after the exit.
    let later = m
        .output(
            &started.id,
            None,
            OutputQuery::until_exit(LONG).until("newline$"),
        )
        .expect("output");
    assert_eq!(later.matched, Some(true));
    let _ = std::fs::remove_file(&gate);
}

#[test]
fn only_lines_at_or_after_the_cursor_count() {
    let m = manager();
    let started = m
        .start(Command::shell("printf 'ready 1\\nready 2\\n'; sleep 30"))
        .expect("start");
    let first = m
        .output(
            &started.id,
            None,
            OutputQuery::until_exit(LONG).until("^ready"),
        )
        .expect("output");
    assert_eq!(first.line_match.as_ref().map(|f| f.offset), Some(0));
    // A cursor inside the first line skips it: the second one is the first at or after it.
    let query = OutputQuery::after(1, LONG).until("^ready");
    let second = m.output(&started.id, None, query).expect("output");
    assert_eq!(
        second.line_match.map(|f| (f.line, f.offset)),
        Some(("ready 2".to_string(), 8))
    );
    assert_eq!(
        second.output, "eady 1\nready 2\n",
        "rendered from the cursor"
    );
    // Past both, the wait runs out unmatched (a snapshot here, with no wait).
    let none = m
        .output(
            &started.id,
            None,
            OutputQuery::snapshot_from(9).until("^ready"),
        )
        .expect("output");
    assert_eq!(none.matched, Some(false));
    kill_group_survivors(started.pid as i32);
}

#[test]
fn a_wait_that_runs_out_answers_unmatched() {
    let m = manager();
    let started = m.start(Command::shell("sleep 30")).expect("start");
    let out = m
        .output(
            &started.id,
            None,
            OutputQuery::until_exit(Duration::from_millis(200)).until("x"),
        )
        .expect("output");
    assert!(out.running);
    assert_eq!(out.matched, Some(false));
    kill_group_survivors(started.pid as i32);
}

#[test]
fn bad_patterns_are_refused_before_the_lookup() {
    let m = manager();
    let unknown = ProcessId::from(procwarden::Uuid::new_v4());
    match m.output(&unknown, None, OutputQuery::snapshot().until("(")) {
        Err(Error::InvalidPattern(e)) => assert!(e.to_string().contains("unclosed"), "{e}"),
        other => panic!("{other:?}"),
    }
    match m.output(
        &unknown,
        None,
        OutputQuery::snapshot().until("a".repeat(1025)),
    ) {
        Err(Error::InvalidPattern(e)) => assert!(e.to_string().contains("1024"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        m.output(
            &unknown,
            None,
            OutputQuery::snapshot().until("a".repeat(1024))
        ),
        Err(Error::NotFound(_))
    ));
}

#[test]
fn wait_any_returns_when_the_first_exits() {
    let m = manager();
    let slow = m.start(Command::shell("sleep 30")).expect("start");
    let quick = m.start(Command::shell("sleep 0.2; exit 3")).expect("start");
    let began = Instant::now();
    let answer = m
        .wait_any(&[slow.id, quick.id], None, LONG, None)
        .expect("wait");
    assert!(began.elapsed() < LONG);
    assert_eq!(answer.running, vec![slow.id]);
    assert_eq!(answer.exited.len(), 1);
    assert_eq!(answer.exited[0].id, quick.id);
    assert_eq!(answer.exited[0].exit.as_ref().and_then(|e| e.code), Some(3));
    // Already exited: at once.
    let again = m
        .wait_any(&[quick.id, slow.id], None, LONG, None)
        .expect("wait");
    assert_eq!(again.exited[0].id, quick.id);
    assert_eq!(again.running, vec![slow.id]);
    // None exits: the wait runs out with all running.
    let out = m
        .wait_any(&[slow.id], None, Duration::from_millis(200), None)
        .expect("wait");
    assert!(out.exited.is_empty());
    assert_eq!(out.running, vec![slow.id]);
    // An unknown id, or another chat's process, is not found: the first such is named.
    let unknown = ProcessId::from(procwarden::Uuid::new_v4());
    match m.wait_any(&[slow.id, unknown], None, LONG, None) {
        Err(Error::NotFound(id)) => assert_eq!(id, unknown),
        other => panic!("{other:?}"),
    }
    let chat = procwarden::Uuid::new_v4();
    let theirs = m
        .start(Command::shell("sleep 30").chat(chat))
        .expect("start");
    assert!(matches!(
        m.wait_any(&[theirs.id], Some(procwarden::Uuid::new_v4()), LONG, None),
        Err(Error::NotFound(_))
    ));
    kill_group_survivors(slow.pid as i32);
    kill_group_survivors(theirs.pid as i32);
}

#[test]
fn an_interrupt_ends_wait_any() {
    let m = manager();
    let slow = m.start(Command::shell("sleep 30")).expect("start");
    let interrupt = procwarden::Interrupt::new();
    let trigger = interrupt.clone();
    let ender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        trigger.interrupt();
    });
    let began = Instant::now();
    let out = m
        .wait_any(&[slow.id], None, LONG, Some(&interrupt))
        .expect("wait");
    assert!(began.elapsed() < LONG);
    assert_eq!(out.running, vec![slow.id]);
    ender.join().expect("ender");
    kill_group_survivors(slow.pid as i32);
}

#[test]
fn the_tools_wait_for_a_line_and_for_any_process() {
    use procwarden::api::LocalApi;
    use procwarden::tools;
    use serde_json::json;
    let m = manager();
    let api = LocalApi::new(Arc::clone(&m), None);
    let result = tools::call(
        &api,
        "execute",
        &json!({"command": "echo booting; sleep 0.2; echo 'ready on 3000'; sleep 30", "wait_for": "^ready on \\d+", "timeout": "20s"}),
    );
    assert_eq!(result["success"], json!(true), "{result}");
    assert_eq!(
        result["match"],
        json!({"line": "ready on 3000", "offset": 8})
    );
    assert_eq!(result["output"], json!("booting\nready on 3000\n"));
    let id = result["background_process_id"]
        .as_str()
        .expect("id")
        .to_string();
    // process_output with wait_for: a line that never comes, within a short wait.
    let out = tools::call(
        &api,
        "process_output",
        &json!({"process_id": id, "wait_for": "never", "wait_timeout": "200ms"}),
    );
    assert_eq!(out["matched"], json!(false), "{out}");
    let out = tools::call(
        &api,
        "process_output",
        &json!({"process_id": id, "wait_for": "booting", "wait_timeout": "20s"}),
    );
    assert_eq!(out["match"]["offset"], json!(0), "{out}");
    // A command that exits before the line: not a success, and says why.
    let early = tools::call(
        &api,
        "execute",
        &json!({"command": "exit 3", "wait_for": "ready", "timeout": "20s"}),
    );
    assert_eq!(early["success"], json!(false));
    assert_eq!(early["exit_code"], json!(3));
    assert!(
        early["error"]
            .as_str()
            .is_some_and(|e| e.contains("before a line matched")),
        "{early}"
    );
    let bad = tools::call(
        &api,
        "execute",
        &json!({"command": "true", "wait_for": "("}),
    );
    assert_eq!(bad["success"], json!(false));
    assert!(
        bad["error"]
            .as_str()
            .is_some_and(|e| e.contains("Invalid pattern")),
        "{bad}"
    );
    // process_wait: the quick one exits first.
    let quick = tools::call(
        &api,
        "execute",
        &json!({"command": "sleep 0.2", "run_in_background": true}),
    );
    let quick_id = quick["background_process_id"]
        .as_str()
        .expect("id")
        .to_string();
    let waited = tools::call(
        &api,
        "process_wait",
        &json!({"process_ids": [id, quick_id], "timeout": "20s"}),
    );
    assert_eq!(waited["success"], json!(true), "{waited}");
    assert_eq!(waited["running"], json!([id]));
    assert_eq!(waited["exited"][0]["id"], json!(quick_id));
    let none = tools::call(&api, "process_wait", &json!({"process_ids": []}));
    assert_eq!(none["success"], json!(false));
    m.close();
}
