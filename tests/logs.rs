//! Full logs through the library: range reads at character boundaries, search, the bounds,
//! removal with the record and at close, and what a full disk or an unusable directory does
//! (the process runs on and its head and tail are complete).

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::eventually;
use procwarden::{Command, Error, Manager, Output, OutputQuery, ProcessId, Started};

const LONG: Duration = Duration::from_secs(20);

fn start_logged(m: &Manager, command: &str) -> Started {
    m.start(Command::shell(command).log(true)).expect("start")
}

fn wait_exit(m: &Manager, id: &ProcessId) -> Output {
    let out = m
        .output(id, None, OutputQuery::until_exit(LONG))
        .expect("output");
    assert!(!out.running, "still running after {LONG:?}");
    out
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}

#[test]
fn the_whole_stream_is_in_the_log_and_reads_in_ranges() {
    let m = Manager::new().expect("manager");
    let started = start_logged(&m, "seq 1 20000");
    let out = wait_exit(&m, &started.id);
    assert!(out.truncated.is_some(), "longer than head and tail");
    assert!(!out.log_truncated);
    let whole: String = (1..=20000).map(|n| format!("{n}\n")).collect();
    let first = m.log_read(&started.id, None, 0, 65536).expect("read");
    assert_eq!(first.output, whole[..65536]);
    assert_eq!((first.offset, first.next_offset), (0, 65536));
    assert_eq!(first.log_bytes, whole.len() as u64);
    assert!(first.complete);
    let rest = m
        .log_read(&started.id, None, first.next_offset, 65536)
        .expect("read");
    assert_eq!(rest.output, whole[65536..]);
    assert_eq!(rest.next_offset, whole.len() as u64);
    // Past the end: nothing, from the end.
    let past = m.log_read(&started.id, None, 1 << 40, 10).expect("read");
    assert_eq!(
        (past.output.as_str(), past.offset),
        ("", whole.len() as u64)
    );
    // A limit over the most is cut to it.
    let capped = m.log_read(&started.id, None, 0, 1 << 20).expect("read");
    assert_eq!(capped.next_offset, 65536);
}

#[test]
fn a_character_cut_by_either_end_is_left_out() {
    let m = Manager::new().expect("manager");
    let started = start_logged(&m, "printf 'a€b€c'");
    wait_exit(&m, &started.id);
    // Bytes: a(0) €(1..4) b(4) €(5..8) c(8).
    let read = |offset, limit| {
        let chunk = m.log_read(&started.id, None, offset, limit).expect("read");
        (chunk.output, chunk.offset, chunk.next_offset)
    };
    assert_eq!(read(0, 9), ("a€b€c".to_string(), 0, 9));
    assert_eq!(read(2, 7), ("b€c".to_string(), 4, 9), "starts inside €");
    assert_eq!(read(0, 3), ("a".to_string(), 0, 1), "ends inside €");
    assert_eq!(read(1, 6), ("€b".to_string(), 1, 5));
    assert_eq!(read(2, 1), (String::new(), 4, 4));
}

#[test]
fn invalid_bytes_are_replaced_but_cut_characters_are_not() {
    let m = Manager::new().expect("manager");
    let started = start_logged(&m, "printf 'x\\377y'");
    wait_exit(&m, &started.id);
    let chunk = m.log_read(&started.id, None, 0, 100).expect("read");
    assert_eq!(chunk.output, "x\u{FFFD}y");
}

#[test]
fn search_finds_lines_in_the_whole_log() {
    let m = Manager::new().expect("manager");
    let started = start_logged(
        &m,
        "seq 1 100000; printf '%s\\n' \"$(printf 'x%.0s' $(seq 3000))\"; printf 'no newline at the end'",
    );
    let out = wait_exit(&m, &started.id);
    assert!(out.truncated.is_some());
    let found = m
        .log_search(&started.id, None, "^5000[0-9]$", 100)
        .expect("search");
    assert_eq!(found.matches.len(), 10);
    assert!(!found.more);
    let first = &found.matches[0];
    assert_eq!((first.line.as_str(), first.line_number), ("50000", 50000));
    let before: usize = (1..50000).map(|n| format!("{n}\n").len()).sum();
    assert_eq!(first.offset, before as u64);
    // The limit, and `more`.
    let some = m.log_search(&started.id, None, "^1", 3).expect("search");
    assert_eq!(
        some.matches
            .iter()
            .map(|m| m.line.as_str())
            .collect::<Vec<_>>(),
        ["1", "10", "11"]
    );
    assert!(some.more);
    // A long line is shown cut; the last line without a line end counts after the exit.
    let long = m.log_search(&started.id, None, "^x+$", 10).expect("search");
    assert_eq!(long.matches.len(), 1);
    assert_eq!(long.matches[0].line_number, 100_001);
    assert_eq!(
        long.matches[0].line,
        format!("{}{}", "x".repeat(2032), procwarden::TRUNCATION_SUFFIX)
    );
    let last = m
        .log_search(&started.id, None, "at the end$", 10)
        .expect("search");
    assert_eq!(last.matches[0].line_number, 100_002);
    assert!(matches!(
        m.log_search(&started.id, None, "(", 10),
        Err(Error::InvalidPattern(_))
    ));
}

#[test]
fn a_process_without_a_log_has_none() {
    let m = Manager::new().expect("manager");
    let started = m.start(Command::shell("echo hi")).expect("start");
    wait_exit(&m, &started.id);
    assert!(matches!(
        m.log_read(&started.id, None, 0, 10),
        Err(Error::NoLog(id)) if id == started.id
    ));
    assert!(matches!(
        m.log_search(&started.id, None, "hi", 10),
        Err(Error::NoLog(_))
    ));
    let unknown = ProcessId::from(procwarden::Uuid::new_v4());
    assert!(matches!(
        m.log_read(&unknown, None, 0, 10),
        Err(Error::NotFound(_))
    ));
}

#[test]
fn the_per_file_bound_stops_the_file_not_the_process() {
    let m = Manager::builder()
        .log_max_bytes(1000)
        .build()
        .expect("manager");
    let started = start_logged(&m, "seq 1 10000");
    let out = wait_exit(&m, &started.id);
    assert_eq!(out.exit.and_then(|e| e.code), Some(0));
    assert!(out.log_truncated);
    let expected_total: usize = (1..=10000).map(|n| format!("{n}\n").len()).sum();
    assert_eq!(
        out.truncated.map(|t| t.original_bytes),
        Some(expected_total as u64),
        "the head and tail count everything"
    );
    let chunk = m.log_read(&started.id, None, 0, 65536).expect("read");
    assert_eq!(chunk.log_bytes, 1000);
    assert!(!chunk.complete, "the file does not hold the whole stream");
    assert!(chunk.log_truncated);
}

#[test]
fn the_total_bound_refuses_new_logs() {
    let m = Manager::builder()
        .log_max_total_bytes(100)
        .build()
        .expect("manager");
    let first = start_logged(&m, "seq 1 1000");
    let out = wait_exit(&m, &first.id);
    assert!(out.log_truncated, "the total stops the file too");
    assert_eq!(
        m.log_read(&first.id, None, 0, 1000)
            .expect("read")
            .log_bytes,
        100
    );
    assert!(matches!(
        m.start(Command::shell("true").log(true)),
        Err(Error::LogSpaceFull)
    ));
    // A start without a log is not affected.
    m.start(Command::shell("true"))
        .expect("start without a log");
}

#[test]
fn files_go_with_their_record_and_the_directory_at_close() {
    let m = Manager::builder()
        .retention(Duration::from_millis(50))
        .build()
        .expect("manager");
    let dir = m.log_dir().to_path_buf();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&dir)
        .expect("made at build")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    let started = start_logged(&m, "echo hi");
    assert_eq!(files_in(&dir).len(), 1);
    wait_exit(&m, &started.id);
    assert!(
        eventually(LONG, || files_in(&dir).is_empty()),
        "the file outlived its record: {:?}",
        files_in(&dir)
    );
    let _running = start_logged(&m, "sleep 30");
    m.close();
    assert!(!dir.exists(), "the private directory is removed at close");
}

#[test]
fn a_given_directory_is_made_and_only_its_logs_are_removed() {
    let base = std::env::temp_dir().join(format!("procwarden-logs-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).expect("base");
    let mine = base.join("keep.txt");
    std::fs::write(&mine, "not a log").expect("write");
    let m = Manager::builder().log_dir(&base).build().expect("manager");
    let started = start_logged(&m, "echo hi");
    wait_exit(&m, &started.id);
    assert_eq!(files_in(&base).len(), 2);
    m.close();
    assert_eq!(files_in(&base), vec![mine]);
    let _ = std::fs::remove_dir_all(&base);
}

#[test]
fn an_unusable_directory_refuses_the_log_and_nothing_else() {
    // A directory under a regular file can be neither made nor written, even by root.
    let m = Manager::builder()
        .log_dir("/etc/passwd/logs")
        .build()
        .expect("manager");
    match m.start(Command::shell("true").log(true)) {
        Err(e @ Error::LogUnavailable(_)) => {
            let detail = std::error::Error::source(&e).map(ToString::to_string);
            assert!(
                detail
                    .as_deref()
                    .is_some_and(|d| d.contains("/etc/passwd/logs")),
                "{detail:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    let started = m.start(Command::shell("echo fine")).expect("start");
    assert_eq!(wait_exit(&m, &started.id).output, "fine\n");
}

/// A 1 MiB tmpfs mounted for the test (as root), unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount() -> Option<SmallDisk> {
        let dir = std::env::temp_dir().join(format!("procwarden-full-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok()?;
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        if mounted {
            Some(SmallDisk(dir))
        } else {
            let _ = std::fs::remove_dir(&dir);
            None
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
fn a_full_disk_stops_the_log_and_loses_nothing_else() {
    let Some(disk) = SmallDisk::mount() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI runs as root and must be able to mount a tmpfs for this test"
        );
        eprintln!("skipped: cannot mount a tmpfs here (not root)");
        return;
    };
    let m = Manager::builder()
        .log_dir(&disk.0)
        .build()
        .expect("manager");
    // 4 MiB into a 1 MiB disk.
    let started = start_logged(
        &m,
        "head -c 4194304 /dev/zero | tr '\\0' z; echo; echo done",
    );
    let out = wait_exit(&m, &started.id);
    assert_eq!(out.exit.as_ref().and_then(|e| e.code), Some(0));
    assert_eq!(
        out.truncated.map(|t| t.original_bytes),
        Some(4_194_304 + 6),
        "the head and tail counted every byte"
    );
    assert!(out.output.ends_with("\ndone\n"), "the tail is complete");
    assert!(out.log_truncated);
    let error = out.log_error.expect("the failed write is reported");
    assert!(error.contains("No space left on device"), "{error}");
    let chunk = m.log_read(&started.id, None, 0, 16).expect("read");
    assert!(!chunk.complete);
    assert_eq!(
        chunk.output,
        "z".repeat(16),
        "what reached the disk reads back"
    );
    assert!(chunk.log_bytes > 0 && chunk.log_bytes <= 1 << 20);
    m.close();
    drop(disk);
}

#[test]
fn the_tools_point_a_cut_answer_at_the_full_log() {
    use procwarden::api::LocalApi;
    use procwarden::tools;
    use serde_json::json;
    let m = std::sync::Arc::new(Manager::new().expect("manager"));
    let api = LocalApi::new(std::sync::Arc::clone(&m), None);
    let result = tools::call(
        &api,
        "execute",
        &json!({"command": "seq 1 50000; echo 'error: deep in the middle'; seq 1 50000", "timeout": "20s"}),
    );
    assert_eq!(result["success"], json!(true), "{result}");
    let note = result["note"].as_str().unwrap_or_default();
    assert!(note.contains(tools::LOG_SEARCH_NOTE), "{note}");
    let id = result["process_id"]
        .as_str()
        .expect("the process id")
        .to_string();
    let found = tools::call(
        &api,
        "process_log_search",
        &json!({"process_id": id, "pattern": "^error: "}),
    );
    assert_eq!(found["success"], json!(true), "{found}");
    assert_eq!(
        found["matches"][0]["line"],
        json!("error: deep in the middle")
    );
    assert_eq!(found["matches"][0]["line_number"], json!(50001));
    let offset = found["matches"][0]["offset"].as_u64().expect("offset");
    let read = tools::call(
        &api,
        "process_log_read",
        &json!({"process_id": id, "offset": offset, "limit": 24}),
    );
    assert_eq!(read["output"], json!("error: deep in the middl"));
    assert_eq!(read["complete"], json!(true));
    // Capped at 32 KiB for the model.
    let big = tools::call(
        &api,
        "process_log_read",
        &json!({"process_id": id, "limit": 1_000_000}),
    );
    assert_eq!(big["next_offset"], json!(tools::MAX_TOOL_LOG_READ_BYTES));
    // A short answer has no note, and a background start no log.
    let short = tools::call(&api, "execute", &json!({"command": "echo hi"}));
    assert!(
        short.get("note").is_none() && short.get("process_id").is_none(),
        "{short}"
    );
    let bg = tools::call(
        &api,
        "execute",
        &json!({"command": "echo hi", "run_in_background": true}),
    );
    let bg_id = bg["background_process_id"].as_str().expect("id");
    let none = tools::call(&api, "process_log_read", &json!({"process_id": bg_id}));
    assert_eq!(none["success"], json!(false));
    assert!(
        none["error"]
            .as_str()
            .is_some_and(|e| e.contains("has no log")),
        "{none}"
    );
}
