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
