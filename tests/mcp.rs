//! `procwarden mcp` from outside, against the built binary: the official MCP Python SDK client
//! (`tests/mcp_client.py`, see [`python`] for where its virtualenv comes from), and raw
//! JSON-RPC over the server's pipes: a 50 MB output flood that must leave stdout pure
//! JSON-RPC, SIGTERM, `--url` against a real `procwarden serve`, the flags.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use common::http::{Addr, binary, request, run_to_end, serve};
use common::{dead, eventually};

/// The variable naming the Python interpreter that has the `mcp` package (`.ci/run` sets it).
const PYTHON_ENV: &str = "PROCWARDEN_MCP_PYTHON";
/// Where `.ci/run` makes the virtualenv when the variable is not set.
const DEFAULT_VENV_PYTHON: &str = "target/mcp-venv/bin/python";
/// Longest a Python scenario may run (the script bounds itself at 90 s).
const SCENARIO_LIMIT: Duration = Duration::from_secs(150);
/// Longest wait for one message from the server.
const MESSAGE_WAIT: Duration = Duration::from_secs(60);
/// Longest wait for the server to exit once told to.
const EXIT_WAIT: Duration = Duration::from_secs(15);

/// The Python interpreter with the MCP SDK: `$PROCWARDEN_MCP_PYTHON`, else the virtualenv that
/// `.ci/run` makes in `target/mcp-venv`. `None` (the test is skipped, with a message) only when
/// the SDK is not installed and `CI` is not set; under CI a missing SDK fails the test.
fn python() -> Option<PathBuf> {
    let python = std::env::var_os(PYTHON_ENV).map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_VENV_PYTHON),
        PathBuf::from,
    );
    let has_sdk = Command::new(&python)
        .args(["-c", "import mcp, jsonschema, anyio"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if has_sdk {
        return Some(python);
    }
    let why = format!(
        "the MCP Python SDK is not installed for {} (set {PYTHON_ENV}, or run: python3 -m venv target/mcp-venv && target/mcp-venv/bin/pip install -r tests/mcp_requirements.txt)",
        python.display()
    );
    assert!(
        std::env::var_os("CI").is_none(),
        "{why}; CI must run this test (.ci/run installs the SDK)"
    );
    eprintln!("SKIPPED: {why}");
    None
}

/// Runs a scenario of `tests/mcp_client.py` and requires it to pass.
fn python_scenario(scenario: &str) {
    let Some(python) = python() else {
        return;
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp_client.py");
    let child = Command::new(python)
        .arg(script)
        .arg(scenario)
        .arg(binary())
        .env_remove("PROCWARDEN_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python runs");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let Ok(out) = rx.recv_timeout(SCENARIO_LIMIT) else {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
        panic!("the {scenario} scenario did not end within {SCENARIO_LIMIT:?}");
    };
    let out = out.expect("output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success() && stdout.contains(&format!("all checks passed: {scenario}")),
        "the {scenario} scenario failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
}

#[test]
fn the_python_sdk_client_lists_and_calls_the_tools() {
    python_scenario("session");
}

#[test]
fn the_python_sdk_client_cancels_a_call_and_closing_stdin_ends_everything() {
    python_scenario("lifecycle");
}

/// A `procwarden mcp` on pipes, spoken to in raw JSON-RPC. Every line it writes is checked to
/// be a JSON-RPC message; killed on drop if still running.
struct Mcp {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<Value>,
    /// Bytes written to stdout so far (set by the reader thread; read at the end).
    bytes: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    notifications: Vec<Value>,
}

/// Whether `message` is a JSON-RPC 2.0 response or notification as a server may send.
fn is_json_rpc(message: &Value) -> bool {
    let Some(object) = message.as_object() else {
        return false;
    };
    let version = object.get("jsonrpc") == Some(&json!("2.0"));
    let response = object.contains_key("id")
        && (object.contains_key("result") != object.contains_key("error"))
        && !object.contains_key("method");
    let notification = object.get("method").is_some_and(Value::is_string)
        && !object.contains_key("id")
        && !object.contains_key("result");
    version && (response || notification)
}

impl Mcp {
    fn start(args: &[&str], env: &[(&str, &str)]) -> Mcp {
        let mut cmd = Command::new(binary());
        cmd.arg("mcp")
            .args(args)
            .env_remove("PROCWARDEN_TOKEN")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("procwarden mcp starts");
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let (tx, lines) = mpsc::channel();
        let bytes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = std::sync::Arc::clone(&bytes);
        std::thread::spawn(move || {
            let mut line = Vec::new();
            loop {
                line.clear();
                match stdout.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        counted.fetch_add(n, std::sync::atomic::Ordering::SeqCst);
                    }
                }
                assert_eq!(line.last(), Some(&b'\n'), "a whole line");
                let text = std::str::from_utf8(&line).expect("stdout is UTF-8");
                let message: Value = serde_json::from_str(text).unwrap_or_else(|e| {
                    panic!("stdout carried a line that is not JSON ({e}): {text:.200}")
                });
                assert!(is_json_rpc(&message), "not a JSON-RPC message: {text:.200}");
                if tx.send(message).is_err() {
                    return;
                }
            }
        });
        Mcp {
            child,
            stdin,
            lines,
            bytes,
            notifications: Vec::new(),
        }
    }

    fn send(&mut self, message: &Value) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{message}").expect("write to the server");
        stdin.flush().expect("flush");
    }

    /// The answer to request `id`; notifications on the way are kept.
    fn answer(&mut self, id: &Value) -> Value {
        loop {
            let message = self
                .lines
                .recv_timeout(MESSAGE_WAIT)
                .unwrap_or_else(|e| panic!("no answer to {id} ({e})"));
            if message.get("method").is_some() {
                self.notifications.push(message);
            } else if &message["id"] == id {
                return message;
            } else {
                panic!("an answer to another request: {message}");
            }
        }
    }

    fn request(&mut self, id: u64, method: &str, params: Value) -> Value {
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        self.answer(&json!(id))
    }

    fn initialize(&mut self) {
        let answer = self.request(
            0,
            "initialize",
            json!({"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "tests/mcp.rs", "version": "0"}}),
        );
        assert_eq!(answer["result"]["protocolVersion"], json!("2025-06-18"));
        self.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    }

    /// Calls a tool; returns its `structuredContent` and `isError`.
    fn call(&mut self, id: u64, name: &str, arguments: Value) -> (Value, bool) {
        let answer = self.request(
            id,
            "tools/call",
            json!({"name": name, "arguments": arguments}),
        );
        let result = &answer["result"];
        let is_error = result["isError"].as_bool().expect("isError");
        (result["structuredContent"].clone(), is_error)
    }

    /// The pid of the running process whose command is `command`.
    fn pid_of(&mut self, id: u64, command: &str) -> i32 {
        let (list, _) = self.call(id, "process_list", json!({}));
        list["processes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["command"] == json!(command) && p["running"] == json!(true))
            .and_then(|p| p["pid"].as_i64())
            .unwrap_or_else(|| panic!("{command} is not running: {list}")) as i32
    }

    fn close_stdin(&mut self) {
        drop(self.stdin.take());
    }

    /// Waits at most [`EXIT_WAIT`] for the exit (the product's exit cannot be waited for with
    /// a deadline otherwise).
    fn exit_status(&mut self) -> ExitStatus {
        let mut status = None;
        assert!(
            eventually(EXIT_WAIT, || {
                status = self.child.try_wait().expect("try_wait");
                status.is_some()
            }),
            "procwarden mcp did not exit within {EXIT_WAIT:?}"
        );
        status.expect("exited")
    }

    /// Every message still to come, up to the end of stdout.
    fn rest(&mut self) -> Vec<Value> {
        let mut rest = Vec::new();
        while let Ok(message) = self.lines.recv_timeout(MESSAGE_WAIT) {
            rest.push(message);
        }
        rest
    }
}

impl Drop for Mcp {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[test]
fn a_50_mb_flood_leaves_stdout_pure_json_rpc() {
    const FLOOD: u64 = 50_000_000;
    let mut mcp = Mcp::start(&[], &[]);
    mcp.initialize();
    // Random bytes: newlines, escape sequences, NULs and invalid UTF-8 all through the stream.
    let flood = format!("head -c {FLOOD} /dev/urandom");
    let (started, _) = mcp.call(
        1,
        "execute",
        json!({"command": format!("{flood}; printf '\\nend\\n'"), "run_in_background": true}),
    );
    let id = started["background_process_id"].clone();
    mcp.send(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "execute", "arguments": {"command": flood, "timeout": "5m"},
                   "_meta": {"progressToken": "flood"}}}));
    let answer = mcp.answer(&json!(2));
    let result = &answer["result"]["structuredContent"];
    assert_eq!(result["exit_code"], json!(0), "{result:.300}");
    assert_eq!(result["truncated"]["original_bytes"], json!(FLOOD));
    let (read, is_error) = mcp.call(
        3,
        "process_output",
        json!({"process_id": id, "wait_timeout": "5m"}),
    );
    assert!(!is_error, "{read:.300}");
    assert_eq!(read["truncated"]["original_bytes"], json!(FLOOD + 5));
    assert_eq!(read["exit_code"], json!(0));
    let progress = mcp
        .notifications
        .iter()
        .filter(|n| n["method"] == json!("notifications/progress"))
        .count();
    mcp.close_stdin();
    assert!(mcp.exit_status().success());
    let rest = mcp.rest();
    assert!(rest.is_empty(), "nothing after the last answer: {rest:?}");
    // Every line was checked as JSON-RPC by the reader; and the flood itself never passed.
    let written = mcp.bytes.load(std::sync::atomic::Ordering::SeqCst);
    assert!(written < 1 << 20, "{written} bytes on stdout");
    println!("{written} bytes of JSON-RPC on stdout, {progress} progress notifications");
}

/// Sends `signal` to a server with a background process and a call in flight: the call is
/// answered, the server exits 0, and no process is left.
fn a_signal_answers_calls_in_flight_and_ends_every_process(signal: &str) {
    let mut mcp = Mcp::start(&[], &[]);
    mcp.initialize();
    let (started, _) = mcp.call(
        1,
        "execute",
        json!({"command": "sleep 300", "run_in_background": true}),
    );
    assert_eq!(started["success"], json!(true));
    mcp.send(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "execute", "arguments": {"command": "echo up; sleep 301", "timeout": "10m"},
                   "_meta": {"progressToken": 2}}}));
    let first = mcp.lines.recv_timeout(MESSAGE_WAIT).expect("progress");
    assert_eq!(first["method"], json!("notifications/progress"), "{first}");
    let pids = [
        mcp.pid_of(3, "sleep 300"),
        mcp.pid_of(4, "echo up; sleep 301"),
    ];
    let status = Command::new("kill")
        .args([signal, &mcp.child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let interrupted = mcp.answer(&json!(2));
    let error = interrupted["result"]["structuredContent"]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(error.contains("cancelled"), "{interrupted}");
    assert_eq!(mcp.exit_status().code(), Some(0));
    assert!(
        eventually(Duration::from_secs(10), || pids.iter().all(|&p| dead(p))),
        "processes left: {pids:?}"
    );
}

#[test]
fn sigterm_answers_calls_in_flight_and_ends_every_process() {
    a_signal_answers_calls_in_flight_and_ends_every_process("-TERM");
}

#[test]
fn sigint_answers_calls_in_flight_and_ends_every_process() {
    a_signal_answers_calls_in_flight_and_ends_every_process("-INT");
}

#[test]
fn with_url_it_drives_a_serve_and_cancelled_calls_do_not_exhaust_the_workers() {
    /// As many as the server's workers: every one of them blocked in an HTTP wait.
    const CALLS: u64 = procwarden::mcp::DEFAULT_WORKERS as u64;
    let mut server = serve(
        &["--listen", "127.0.0.1:0"],
        &[("PROCWARDEN_TOKEN", "sekrit")],
    );
    let Addr::Tcp(addr) = server.addr.clone() else {
        panic!("TCP")
    };
    let url = format!("http://{addr}");
    let mut mcp = Mcp::start(&["--url", &url], &[("PROCWARDEN_TOKEN", "sekrit")]);
    mcp.initialize();
    let (hello, is_error) = mcp.call(1, "execute", json!({"command": "echo via serve"}));
    assert!(!is_error, "{hello}");
    assert_eq!(hello["output"], json!("via serve\n"));
    let (started, _) = mcp.call(
        2,
        "execute",
        json!({"command": "sleep 300", "run_in_background": true}),
    );
    assert_eq!(started["success"], json!(true));
    let background = mcp.pid_of(3, "sleep 300");

    // Calls whose HTTP waits cannot be interrupted, all cancelled: the pool keeps serving.
    for id in 10..10 + CALLS {
        mcp.send(&json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": "execute",
                       "arguments": {"command": format!("sleep 30{id}"), "timeout": "10m"}}}));
    }
    // Every worker is now blocked, so ask the serve itself what runs.
    let running_on_serve = || {
        let list = request(
            &server.addr,
            "GET",
            "/api/v0/processes/list?limit=100",
            None,
            &[("Authorization", "Bearer sekrit")],
        )
        .json();
        list["processes"].as_array().map_or(0, |p| {
            p.iter().filter(|p| p["running"] == json!(true)).count()
        })
    };
    assert!(
        eventually(Duration::from_secs(20), || running_on_serve() as u64
            == CALLS + 1),
        "the calls did not all start"
    );
    for id in 10..10 + CALLS {
        mcp.send(
            &json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
            "params": {"requestId": id}}),
        );
    }
    let asked = Instant::now();
    let (list, is_error) = mcp.call(4, "process_list", json!({}));
    assert!(!is_error);
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "{:?}",
        asked.elapsed()
    );
    let running = list["processes"].as_array().map_or(0, |p| {
        p.iter().filter(|p| p["running"] == json!(true)).count()
    });
    assert_eq!(running as u64, CALLS + 1, "{list}");

    // Closing stdin ends the MCP server at once; the serve's processes are its own.
    let closed = Instant::now();
    mcp.close_stdin();
    assert!(mcp.exit_status().success());
    assert!(closed.elapsed() < Duration::from_secs(10));
    let answers: Vec<Value> = mcp.rest();
    assert!(
        answers.is_empty(),
        "no cancelled call was answered: {answers:?}"
    );
    assert!(!dead(background), "the serve's process runs on");
    let (status, _) = server
        .terminate_within(Duration::from_secs(20))
        .expect("serve exits");
    assert!(status.success());
    assert!(eventually(Duration::from_secs(10), || dead(background)));

    // A wrong token: every call is a tool failure that says so.
    let server = serve(
        &["--listen", "127.0.0.1:0"],
        &[("PROCWARDEN_TOKEN", "sekrit")],
    );
    let Addr::Tcp(addr) = server.addr.clone() else {
        panic!("TCP")
    };
    let mut wrong = Mcp::start(
        &[&format!("--url=http://{addr}")],
        &[("PROCWARDEN_TOKEN", "guess")],
    );
    wrong.initialize();
    let (refused, is_error) = wrong.call(1, "process_list", json!({}));
    assert!(is_error);
    assert!(
        refused["error"]
            .as_str()
            .is_some_and(|e| e.contains("Unauthorized")),
        "{refused}"
    );
}

#[test]
fn flags_set_the_working_directory_and_the_running_limit() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("mcp-workdir");
    std::fs::create_dir_all(&dir).expect("dir");
    let dir = dir.canonicalize().expect("canonical");
    let dir_text = dir.to_str().expect("UTF-8");
    let mut mcp = Mcp::start(&["--workdir", dir_text, "--max-running", "1"], &[]);
    mcp.initialize();
    let (pwd, _) = mcp.call(1, "execute", json!({"command": "pwd -P"}));
    assert_eq!(pwd["output"], json!(format!("{dir_text}\n")));
    let (_, is_error) = mcp.call(
        2,
        "execute",
        json!({"command": "sleep 300", "run_in_background": true}),
    );
    assert!(!is_error);
    let (full, is_error) = mcp.call(3, "execute", json!({"command": "true"}));
    assert!(is_error);
    assert_eq!(full["error"], json!("Too many running processes."));
    let pid = mcp.pid_of(4, "sleep 300");
    mcp.close_stdin();
    assert!(mcp.exit_status().success());
    assert!(eventually(Duration::from_secs(10), || dead(pid)));
}

#[test]
fn usage_and_start_up_refusals() {
    let (code, stdout, _) = run_to_end(&["mcp", "--help"], &[]);
    assert_eq!(code, 0);
    assert!(stdout.starts_with("Usage: procwarden mcp"), "{stdout}");
    assert!(stdout.contains("claude mcp add procwarden -- procwarden mcp"));
    // stdin at its end at once: a session with no messages, which ends cleanly and silently.
    let (code, stdout, _) = run_to_end(&["mcp"], &[]);
    assert_eq!((code, stdout.as_str()), (0, ""));
    for (args, needle) in [
        (
            &["mcp", "--workdir", "/no/such/dir"][..],
            "is not an existing directory",
        ),
        (
            &["mcp", "--url", "http://127.0.0.1:1", "--max-running", "3"],
            "--max-running is for",
        ),
        (&["mcp", "--frobnicate"], "unknown option"),
        (&["--json", "mcp"], "mcp takes no --json"),
    ] {
        let (code, stdout, stderr) = run_to_end(args, &[]);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert_eq!(stdout, "", "{args:?}: nothing on stdout");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

#[test]
fn process_input_through_mcp_answers_with_what_is_new_for_the_session() {
    let mut mcp = Mcp::start(&[], &[]);
    mcp.initialize();
    let answer = mcp.request(1, "tools/list", json!({}));
    let input_tool = answer["result"]["tools"]
        .as_array()
        .and_then(|tools| tools.iter().find(|t| t["name"] == json!("process_input")))
        .cloned()
        .expect("process_input is listed");
    assert!(input_tool["outputSchema"].is_object(), "{input_tool}");
    assert_eq!(
        input_tool["inputSchema"]["required"],
        json!(["process_id", "input"])
    );
    let (started, is_error) = mcp.call(
        2,
        "execute",
        json!({"command": "echo banner; while read -r l; do echo \"<$l>\"; done", "tty": true, "run_in_background": true}),
    );
    assert!(!is_error, "{started}");
    let id = started["background_process_id"]
        .as_str()
        .expect("id")
        .to_string();
    // The session has read nothing of it yet: the answer starts at the banner. Each answer
    // holds only what is new, so the pieces add up to the terminal's text, once.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = String::new();
    // Nothing is typed before the banner is seen: a terminal echoes what is typed ahead at
    // once, before the program's own first words.
    let mut typed = false;
    let mut call = 3;
    while !seen.contains("<first>") {
        assert!(Instant::now() < deadline, "so far {seen:?}");
        let input = if !typed && seen.contains("banner\n") {
            typed = true;
            "first\n"
        } else {
            ""
        };
        let (answer, is_error) = mcp.call(
            call,
            "process_input",
            json!({"process_id": id, "input": input, "yield_ms": 2000}),
        );
        assert!(!is_error, "{answer}");
        assert_eq!(answer["running"], json!(true), "{answer}");
        seen.push_str(answer["output"].as_str().expect("output"));
        call += 1;
    }
    assert_eq!(seen, "banner\nfirst\n<first>\n");
    // Ctrl-D at the start of a line: the loop's read ends, and so does the process.
    let (answer, is_error) = mcp.call(
        call,
        "process_input",
        json!({"process_id": id, "input": "", "close": true, "yield_ms": 10000}),
    );
    assert!(!is_error, "{answer}");
    assert_eq!(answer["running"], json!(false), "{answer}");
    assert_eq!(answer["exit_code"], json!(0), "{answer}");
    mcp.close_stdin();
    assert!(mcp.exit_status().success());
}
