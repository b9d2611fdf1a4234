//! The contract's "Waiting for a pattern" and "Waiting for any of several processes" sections
//! over real sockets, against the `procwarden serve` binary.

mod common;

use std::time::{Duration, Instant};

use common::http::{Addr, ServerProc, id_of, output, request, serve, start, start_command};
use common::{eventually, kill_group_survivors, threads_in_timed_wait};
use serde_json::{Value, json};

const LONG: Duration = Duration::from_secs(20);
/// The name of the server's connection threads (`procwarden-http`, see src/http/server.rs).
const CONNECTION_THREAD: &str = "procwarden-http";

fn server() -> ServerProc {
    serve(&["--listen", "127.0.0.1:0"], &[])
}

/// Percent-encodes a query value.
fn enc(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn gate(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "procwarden-http-output-{name}-{}-{}",
        std::process::id(),
        uuid_like()
    ))
}

fn uuid_like() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// `sh` text that waits until `gate` exists.
fn wait_for_gate(gate: &std::path::Path) -> String {
    format!("while [ ! -e '{}' ]; do sleep 0.01; done", gate.display())
}

/// Sends the GET on a thread and returns once the server's connection thread is blocked in
/// its wait (so the pattern is registered).
fn waiting_get(server: &ServerProc, target: String) -> std::thread::JoinHandle<Value> {
    let addr = server.addr.clone();
    let before = threads_in_timed_wait(server.pid(), CONNECTION_THREAD);
    let handle = std::thread::spawn(move || {
        let reply = request(&addr, "GET", &target, None, &[]);
        assert_eq!(reply.status, 200, "{target}: {:?}", reply.json());
        reply.json()
    });
    assert!(
        eventually(LONG, || threads_in_timed_wait(
            server.pid(),
            CONNECTION_THREAD
        ) > before),
        "the request never blocked"
    );
    handle
}

fn get(addr: &Addr, target: &str) -> (u16, Value) {
    let reply = request(addr, "GET", target, None, &[]);
    (reply.status, reply.json())
}

#[test]
fn until_answers_at_the_first_matching_line_with_the_match() {
    let server = server();
    let addr = &server.addr;
    let (id, pgid) = start_command(
        addr,
        "echo starting; sleep 0.3; echo 'Listening on :8080'; sleep 30",
    );
    let out = output(
        addr,
        &id,
        &format!(
            "wait=true&timeout_ms=20000&until={}",
            enc("^Listening on :\\d+$")
        ),
    );
    assert_eq!(out["running"], json!(true), "{out}");
    assert_eq!(out["matched"], json!(true));
    assert_eq!(
        out["match"],
        json!({"line": "Listening on :8080", "offset": 9})
    );
    assert_eq!(out["output"], json!("starting\nListening on :8080\n"));
    assert_eq!(out["next_cursor"], json!(28));
    // With a cursor past the match: no line at or after it matches, the wait runs out.
    let out = output(
        addr,
        &id,
        &format!(
            "cursor=10&wait=true&timeout_ms=300&until={}",
            enc("Listening")
        ),
    );
    assert_eq!(out["matched"], json!(false));
    assert!(out.get("match").is_none(), "{out}");
    assert_eq!(out["output"], json!("istening on :8080\n"));
    // Without until the fields are absent.
    let plain = output(addr, &id, "");
    assert!(
        plain.get("matched").is_none() && plain.get("match").is_none(),
        "{plain}"
    );
    kill_group_survivors(pgid);
}

#[test]
fn until_finds_a_line_in_the_omitted_middle() {
    let server = server();
    let addr = &server.addr;
    let gate = gate("middle");
    let a_line = "a".repeat(79);
    let command = format!(
        "{}; yes {a_line} | head -c 2097120; echo 'error[E0308]: mismatched types'; yes {a_line} | head -c 2097120; sleep 30",
        wait_for_gate(&gate)
    );
    let (id, pgid) = start_command(addr, &command);
    let waiter = waiting_get(
        &server,
        format!(
            "/api/v0/processes/{id}/output?wait=true&timeout_ms=20000&until={}",
            enc(r"^error\[E\d+\]")
        ),
    );
    std::fs::write(&gate, "").expect("open the gate");
    let out = waiter.join().expect("waiter");
    let mut shown = out.clone();
    shown["output"] = json!(
        out["output"]
            .as_str()
            .map(|o| &o[o.len().saturating_sub(300)..])
    );
    assert_eq!(
        out["match"],
        json!({"line": "error[E0308]: mismatched types", "offset": 2_097_120}),
        "{shown}"
    );
    let _ = std::fs::remove_file(&gate);
    kill_group_survivors(pgid);
}

#[test]
fn a_pattern_that_never_matches_answers_at_the_exit() {
    let server = server();
    let addr = &server.addr;
    let id = id_of(&start(
        addr,
        &json!({"command": "echo a; sleep 0.2; printf 'last line'"}),
        &[],
    ));
    let began = Instant::now();
    let out = output(addr, &id, "wait=true&until=nothing-like-this");
    assert!(began.elapsed() < LONG);
    assert_eq!(out["running"], json!(false));
    assert_eq!(out["exit_code"], json!(0));
    assert_eq!(out["matched"], json!(false));
    assert!(out.get("match").is_none());
    // The last line without a line end counts once the process has exited.
    let out = output(
        addr,
        &id,
        &format!("wait=true&until={}", enc("^last line$")),
    );
    assert_eq!(out["match"], json!({"line": "last line", "offset": 2}));
}

#[test]
fn bad_patterns_are_400_with_the_compiler_message() {
    let server = server();
    let addr = &server.addr;
    let (id, pgid) = start_command(addr, "sleep 30");
    let (status, body) = get(
        addr,
        &format!(
            "/api/v0/processes/{id}/output?wait=true&until={}",
            enc("(unclosed")
        ),
    );
    assert_eq!(status, 400);
    assert_eq!(body["message"], json!("Invalid pattern."));
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("unclosed group")),
        "{body}"
    );
    let long = "a".repeat(1025);
    let (status, body) = get(addr, &format!("/api/v0/processes/{id}/output?until={long}"));
    assert_eq!(status, 400);
    assert!(
        body["detail"].as_str().is_some_and(|d| d.contains("1024")),
        "{body}"
    );
    // 1024 bytes is allowed.
    let ok = "a".repeat(1024);
    let (status, body) = get(addr, &format!("/api/v0/processes/{id}/output?until={ok}"));
    assert_eq!(status, 200);
    assert_eq!(body["matched"], json!(false));
    kill_group_survivors(pgid);
}

#[test]
fn wait_returns_when_any_exits() {
    let server = server();
    let addr = &server.addr;
    let (slow, slow_pgid) = start_command(addr, "sleep 30");
    let (quick, _) = start_command(addr, "sleep 0.3; exit 7");
    let began = Instant::now();
    let (status, body) = get(
        addr,
        &format!("/api/v0/processes/wait?ids={slow},{quick}&timeout_ms=20000"),
    );
    assert!(began.elapsed() < LONG);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["running"], json!([slow]));
    let exited = body["exited"].as_array().expect("exited");
    assert_eq!(exited.len(), 1);
    assert_eq!(exited[0]["id"], json!(quick));
    assert_eq!(exited[0]["exit_code"], json!(7));
    assert_eq!(exited[0]["running"], json!(false));
    // The wait runs out: everything is running, in the order given.
    let (quick2, quick2_pgid) = start_command(addr, "sleep 30");
    let (status, body) = get(
        addr,
        &format!("/api/v0/processes/wait?ids={quick2},{slow}&timeout_ms=100"),
    );
    assert_eq!(status, 200);
    assert_eq!(body, json!({"exited": [], "running": [quick2, slow]}));
    kill_group_survivors(slow_pgid);
    kill_group_survivors(quick2_pgid);
}

#[test]
fn wait_refuses_bad_ids_and_queries() {
    let server = server();
    let addr = &server.addr;
    let (id, pgid) = start_command(addr, "sleep 30");
    let unknown = "0b6f4a1e-0000-4000-8000-000000000001";
    let (status, body) = get(
        addr,
        &format!("/api/v0/processes/wait?ids={id},{unknown},nope"),
    );
    assert_eq!(status, 404);
    assert_eq!(
        body["message"],
        json!(format!("Process \"{unknown}\" not found."))
    );
    let (status, body) = get(
        addr,
        &format!("/api/v0/processes/wait?ids={id},nope,{unknown}"),
    );
    assert_eq!(status, 404);
    assert_eq!(body["message"], json!("Process \"nope\" not found."));
    // Another chat's process is not found either.
    let chat = "6f1c9a52-2f5d-4c1e-9b0a-1d2e3f405162";
    let other = "7f1c9a52-2f5d-4c1e-9b0a-1d2e3f405162";
    let theirs = id_of(&start(
        addr,
        &json!({"command": "sleep 30"}),
        &[("Coder-Chat-Id", chat)],
    ));
    let reply = request(
        addr,
        "GET",
        &format!("/api/v0/processes/wait?ids={theirs}&timeout_ms=0"),
        None,
        &[("Coder-Chat-Id", other)],
    );
    assert_eq!(reply.status, 404);
    let reply = request(
        addr,
        "GET",
        &format!("/api/v0/processes/wait?ids={theirs}&timeout_ms=0"),
        None,
        &[("Coder-Chat-Id", chat)],
    );
    assert_eq!(reply.status, 200);
    // 1..=64 ids.
    for query in ["", "ids=", "timeout_ms=5"] {
        let (status, _) = get(addr, &format!("/api/v0/processes/wait?{query}"));
        assert_eq!(status, 400, "{query}");
    }
    let many = vec![id.as_str(); 65].join(",");
    let (status, _) = get(
        addr,
        &format!("/api/v0/processes/wait?ids={many}&timeout_ms=0"),
    );
    assert_eq!(status, 400);
    let max = vec![id.as_str(); 64].join(",");
    let (status, body) = get(
        addr,
        &format!("/api/v0/processes/wait?ids={max}&timeout_ms=0"),
    );
    assert_eq!(status, 200);
    assert_eq!(body["running"].as_array().map(Vec::len), Some(64));
    for bad in ["timeout_ms=", "timeout_ms=-1", "timeout_ms=x"] {
        let (status, _) = get(addr, &format!("/api/v0/processes/wait?ids={id}&{bad}"));
        assert_eq!(status, 400, "{bad}");
    }
    let reply = request(addr, "POST", "/api/v0/processes/wait", Some("{}"), &[]);
    assert_eq!(reply.status, 405);
    assert_eq!(reply.header("allow"), Some("GET"));
    kill_group_survivors(pgid);
    let _ = server;
}

#[test]
fn a_blocked_wait_wakes_within_milliseconds_of_the_exit() {
    let server = server();
    let addr = &server.addr;
    let (id, pgid) = start_command(addr, "sleep 30");
    let waiter = waiting_get(
        &server,
        format!("/api/v0/processes/wait?ids={id}&timeout_ms=20000"),
    );
    let sent = Instant::now();
    let reply = request(
        addr,
        "POST",
        &format!("/api/v0/processes/{id}/signal"),
        Some("{\"signal\":\"kill\"}"),
        &[],
    );
    assert_eq!(reply.status, 200);
    let body = waiter.join().expect("waiter");
    assert!(sent.elapsed() < Duration::from_secs(5));
    assert_eq!(body["exited"][0]["signal"], json!("SIGKILL"));
    kill_group_survivors(pgid);
}

/// Runs `procwarden --url URL ARGS...`: (exit code, stdout, stderr).
fn cli(server: &ServerProc, args: &[&str]) -> (i32, String, String) {
    let url = server.addr.url();
    let mut all = vec!["--url", url.as_str()];
    all.extend_from_slice(args);
    common::http::run_to_end(&all, &[])
}

#[test]
fn cli_output_until_and_wait() {
    let server = server();
    let addr = &server.addr;
    let (id, pgid) = start_command(
        addr,
        "echo booting; sleep 0.2; echo 'ready on 3000'; sleep 30",
    );
    let (code, stdout, stderr) = cli(&server, &["output", &id, "--until", "^ready on \\d+$"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, "booting\nready on 3000\n");
    assert!(
        stderr.contains("matched at offset 8: ready on 3000"),
        "{stderr}"
    );
    let (code, stdout, _) = cli(&server, &["output", &id, "--until=booting", "--json"]);
    assert_eq!(code, 0);
    let answer: Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(answer["match"], json!({"line": "booting", "offset": 0}));
    // Exits without a match: 1, and says so.
    let (quick, _) = start_command(addr, "echo nothing; exit 5");
    let (code, _, stderr) = cli(&server, &["output", &quick, "--until", "ready"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("no line matched"), "{stderr}");
    // A pattern that does not compile: the server's 400.
    let (code, _, stderr) = cli(&server, &["output", &id, "--until", "("]);
    assert_eq!(code, 1);
    assert!(stderr.contains("Invalid pattern."), "{stderr}");
    let (code, _, stderr) = cli(&server, &["output", &id, "--until", "x", "--follow"]);
    assert_eq!(code, 2, "{stderr}");
    // wait: the status of the first to finish.
    let (short, _) = start_command(addr, "sleep 0.3; exit 7");
    let (code, stdout, stderr) = cli(&server, &["wait", &id, &short]);
    assert_eq!(code, 7, "{stderr}");
    assert_eq!(stdout, format!("{short} exit 7\n"));
    let (code, stdout, _) = cli(&server, &["wait", &id, &short, "--json"]);
    assert_eq!(code, 7);
    let answer: Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(answer["running"], json!([id]));
    let (code, _, stderr) = cli(&server, &["wait"]);
    assert_eq!(code, 2, "{stderr}");
    let (code, _, stderr) = cli(&server, &["wait", "0b6f4a1e-0000-4000-8000-000000000001"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("not found"), "{stderr}");
    kill_group_survivors(pgid);
}

// ---------------------------------------------------------------------------------------
// Full logs and search

#[test]
fn log_reads_ranges_of_the_whole_stream() {
    let server = server();
    let addr = &server.addr;
    let id = id_of(&start(
        addr,
        &json!({"command": "seq 1 20000; printf '€'", "log": true}),
        &[],
    ));
    let out = output(addr, &id, "wait=true");
    assert_eq!(out["running"], json!(false));
    assert!(
        out.get("log_truncated").is_none(),
        "{}",
        out["log_truncated"]
    );
    let whole: String = (1..=20000).map(|n| format!("{n}\n")).collect::<String>() + "€";
    let (status, first) = get(addr, &format!("/api/v0/processes/{id}/log"));
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["output"], json!(&whole[..65536]));
    assert_eq!(first["offset"], json!(0));
    assert_eq!(first["next_offset"], json!(65536));
    assert_eq!(first["log_bytes"], json!(whole.len()));
    assert_eq!(first["complete"], json!(true));
    let (_, rest) = get(
        addr,
        &format!("/api/v0/processes/{id}/log?offset=65536&limit=65536"),
    );
    assert_eq!(rest["output"], json!(&whole[65536..]));
    // Cut characters: the euro sign is the last 3 bytes.
    let euro = whole.len() as u64 - 3;
    let (_, cut) = get(
        addr,
        &format!("/api/v0/processes/{id}/log?offset={}&limit=2", euro + 1),
    );
    assert_eq!(cut["output"], json!(""));
    assert_eq!(cut["offset"], json!(euro + 3));
    let (_, cut) = get(
        addr,
        &format!("/api/v0/processes/{id}/log?offset={}&limit=2", euro - 1),
    );
    assert_eq!(
        (cut["output"].clone(), cut["next_offset"].clone()),
        (json!("\n"), json!(euro))
    );
    // The query's rules.
    for bad in [
        "limit=65537",
        "limit=",
        "offset=-1",
        "offset=x",
        "limit=18446744073709551616",
    ] {
        let (status, _) = get(addr, &format!("/api/v0/processes/{id}/log?{bad}"));
        assert_eq!(status, 400, "{bad}");
    }
    let (status, _) = get(addr, &format!("/api/v0/processes/{id}/log?limit=0"));
    assert_eq!(status, 200);
}

#[test]
fn log_search_finds_lines_the_output_left_out() {
    let server = server();
    let addr = &server.addr;
    let id = id_of(&start(
        addr,
        &json!({"command": "seq 1 100000; echo 'error: the middle'; seq 1 100000", "log": true}),
        &[],
    ));
    let out = output(addr, &id, "wait=true");
    assert!(!out["output"].as_str().unwrap_or_default().contains("error"));
    let (status, found) = get(
        addr,
        &format!(
            "/api/v0/processes/{id}/log/search?pattern={}",
            enc("^error: ")
        ),
    );
    assert_eq!(status, 200, "{found}");
    let before: usize = (1..=100000).map(|n| format!("{n}\n").len()).sum();
    assert_eq!(
        found,
        json!({"matches": [{"offset": before, "line_number": 100001, "line": "error: the middle"}], "more": false})
    );
    let (_, some) = get(
        addr,
        &format!(
            "/api/v0/processes/{id}/log/search?pattern={}&limit=2",
            enc("^9999$")
        ),
    );
    assert_eq!(some["matches"].as_array().map(Vec::len), Some(2));
    assert_eq!(some["more"], json!(false));
    let (_, some) = get(
        addr,
        &format!(
            "/api/v0/processes/{id}/log/search?pattern={}&limit=1",
            enc("^9999$")
        ),
    );
    assert_eq!(some["more"], json!(true));
    assert_eq!(some["matches"][0]["line_number"], json!(9999));
    for bad in [
        "",
        "pattern=x&limit=0",
        "pattern=x&limit=1001",
        "pattern=x&limit=",
        "pattern=%28",
    ] {
        let (status, body) = get(addr, &format!("/api/v0/processes/{id}/log/search?{bad}"));
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (_, body) = get(
        addr,
        &format!("/api/v0/processes/{id}/log/search?pattern=%28"),
    );
    assert_eq!(body["message"], json!("Invalid pattern."));
    assert!(body["detail"].is_string());
}

#[test]
fn log_routes_answer_409_without_a_log_and_404_for_others() {
    let server = server();
    let addr = &server.addr;
    let id = id_of(&start(addr, &json!({"command": "echo hi"}), &[]));
    for route in ["log", "log/search?pattern=hi"] {
        let (status, body) = get(addr, &format!("/api/v0/processes/{id}/{route}"));
        assert_eq!(status, 409, "{route}");
        assert_eq!(
            body,
            json!({"message": format!("Process \"{id}\" has no log.")})
        );
        let (status, _) = get(addr, &format!("/api/v0/processes/nope/{route}"));
        assert_eq!(status, 404);
    }
    let chat = "6f1c9a52-2f5d-4c1e-9b0a-1d2e3f405162";
    let theirs = id_of(&start(
        addr,
        &json!({"command": "echo hi", "log": true}),
        &[("Coder-Chat-Id", chat)],
    ));
    let reply = request(
        addr,
        "GET",
        &format!("/api/v0/processes/{theirs}/log"),
        None,
        &[("Coder-Chat-Id", "7f1c9a52-2f5d-4c1e-9b0a-1d2e3f405162")],
    );
    assert_eq!(reply.status, 404);
    let reply = request(
        addr,
        "POST",
        &format!("/api/v0/processes/{id}/log"),
        Some("{}"),
        &[],
    );
    assert_eq!(reply.status, 405);
    assert_eq!(reply.header("allow"), Some("GET"));
}

#[test]
fn log_bounds_and_the_directory_over_the_wire() {
    let dir = std::env::temp_dir().join(format!("procwarden-http-logs-{}", uuid_like()));
    let dir_arg = dir.to_string_lossy().into_owned();
    let mut server = serve(
        &[
            "--listen",
            "127.0.0.1:0",
            "--log-dir",
            &dir_arg,
            "--log-max-bytes",
            "1000",
            "--log-max-total-bytes",
            "1500",
        ],
        &[],
    );
    let addr = server.addr.clone();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&dir)
        .expect("made at start")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    let id = id_of(&start(
        &addr,
        &json!({"command": "seq 1 10000", "log": true}),
        &[],
    ));
    let out = output(&addr, &id, "wait=true");
    assert_eq!(out["exit_code"], json!(0));
    assert_eq!(out["log_truncated"], json!(true));
    let (_, log) = get(&addr, &format!("/api/v0/processes/{id}/log"));
    assert_eq!(log["log_bytes"], json!(1000));
    assert_eq!(log["complete"], json!(false));
    assert_eq!(log["log_truncated"], json!(true));
    let second = id_of(&start(
        &addr,
        &json!({"command": "seq 1 10000", "log": true}),
        &[],
    ));
    output(&addr, &second, "wait=true");
    // 1500 bytes are now used: a start with a log is refused, one without is not.
    let reply = request(
        &addr,
        "POST",
        "/api/v0/processes/start",
        Some(&json!({"command": "true", "log": true}).to_string()),
        &[],
    );
    assert_eq!(reply.status, 507);
    assert_eq!(reply.json(), json!({"message": "Log space is full."}));
    start(&addr, &json!({"command": "true"}), &[]);
    assert!(server.terminate().success());
    assert!(
        !dir.join(format!("{id}.log")).exists(),
        "logs are removed at exit"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_private_log_directory_is_removed_at_exit() {
    let mut server = server();
    let addr = server.addr.clone();
    let id = id_of(&start(
        &addr,
        &json!({"command": "echo hi", "log": true}),
        &[],
    ));
    output(&addr, &id, "wait=true");
    let path = format!("/proc/{}/fd", server.pid());
    // The server keeps the log file open: its path names the private directory.
    let dir = std::fs::read_dir(&path)
        .expect("fds")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .find(|target| target.to_string_lossy().ends_with(&format!("{id}.log")))
        .and_then(|file| file.parent().map(std::path::Path::to_path_buf))
        .expect("an open log file");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&dir).expect("dir").permissions().mode() & 0o777,
        0o700
    );
    assert!(server.terminate().success());
    assert!(!dir.exists(), "{} outlived the server", dir.display());
}

#[test]
fn an_unusable_log_directory_is_507_and_the_rest_works() {
    let server = serve(
        &["--listen", "127.0.0.1:0", "--log-dir", "/etc/passwd/logs"],
        &[],
    );
    let addr = &server.addr;
    let reply = request(
        addr,
        "POST",
        "/api/v0/processes/start",
        Some(&json!({"command": "true", "log": true}).to_string()),
        &[],
    );
    assert_eq!(reply.status, 507);
    assert_eq!(
        reply.json()["message"],
        json!("Log directory is not usable.")
    );
    assert!(
        reply.json()["detail"]
            .as_str()
            .is_some_and(|d| d.contains("/etc/passwd/logs"))
    );
    let id = id_of(&start(addr, &json!({"command": "echo fine"}), &[]));
    assert_eq!(output(addr, &id, "wait=true")["output"], json!("fine\n"));
}

#[test]
fn cli_log_prints_and_searches_the_full_log() {
    let server = server();
    let addr = &server.addr;
    let id = id_of(&start(
        addr,
        &json!({"command": "seq 1 30000", "log": true}),
        &[],
    ));
    output(addr, &id, "wait=true");
    let whole: String = (1..=30000).map(|n| format!("{n}\n")).collect();
    let (code, stdout, stderr) = cli(&server, &["log", &id]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, whole, "the whole stream, in several reads");
    let (code, stdout, _) = cli(&server, &["log", &id, "--offset", "100000"]);
    assert_eq!(code, 0);
    assert_eq!(stdout, whole[100000..]);
    let (code, stdout, _) = cli(
        &server,
        &["log", &id, "--search", "^2999[0-9]$", "--limit", "3"],
    );
    assert_eq!(code, 0);
    let offset: usize = (1..29990).map(|n| format!("{n}\n").len()).sum();
    assert_eq!(
        stdout.lines().next(),
        Some(format!("29990:{offset}:29990").as_str())
    );
    assert_eq!(stdout.lines().count(), 3);
    let (code, _, stderr) = cli(&server, &["log", &id, "--limit", "0", "--search", "x"]);
    assert_eq!(code, 2, "{stderr}");
    let plain = id_of(&start(addr, &json!({"command": "true"}), &[]));
    let (code, _, stderr) = cli(&server, &["log", &plain]);
    assert_eq!(code, 1);
    assert!(stderr.contains("has no log"), "{stderr}");
}

#[test]
fn a_full_log_disk_is_reported_and_loses_nothing_else() {
    let dir = std::env::temp_dir().join(format!("procwarden-http-full-{}", uuid_like()));
    std::fs::create_dir_all(&dir).expect("dir");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&dir)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        let _ = std::fs::remove_dir(&dir);
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI runs as root and must be able to mount a tmpfs for this test"
        );
        eprintln!("skipped: cannot mount a tmpfs here (not root)");
        return;
    }
    let dir_arg = dir.to_string_lossy().into_owned();
    let mut server = serve(&["--listen", "127.0.0.1:0", "--log-dir", &dir_arg], &[]);
    let addr = server.addr.clone();
    let id = id_of(&start(
        &addr,
        &json!({"command": "head -c 4194304 /dev/zero | tr '\\0' z; echo; echo done", "log": true}),
        &[],
    ));
    let out = output(&addr, &id, "wait=true");
    assert_eq!(out["exit_code"], json!(0));
    assert_eq!(out["truncated"]["original_bytes"], json!(4_194_304 + 6));
    assert!(
        out["output"]
            .as_str()
            .is_some_and(|o| o.ends_with("\ndone\n"))
    );
    assert_eq!(out["log_truncated"], json!(true));
    assert!(
        out["log_error"]
            .as_str()
            .is_some_and(|e| e.contains("No space left on device")),
        "{}",
        out["log_error"]
    );
    let (status, log) = get(&addr, &format!("/api/v0/processes/{id}/log?limit=4"));
    assert_eq!(status, 200);
    assert_eq!(log["output"], json!("zzzz"));
    assert_eq!(log["complete"], json!(false));
    assert_eq!(log["log_truncated"], json!(true));
    assert!(log["log_error"].is_string());
    // A start without a log still works; one with a log gets a file while there is room.
    let other = id_of(&start(&addr, &json!({"command": "echo still fine"}), &[]));
    assert_eq!(
        output(&addr, &other, "wait=true")["output"],
        json!("still fine\n")
    );
    assert!(server.terminate().success());
    let _ = std::process::Command::new("umount").arg(&dir).status();
    let _ = std::fs::remove_dir(&dir);
}
