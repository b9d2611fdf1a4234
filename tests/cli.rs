//! The `procwarden` client subcommands (the built binary) against a real `procwarden serve`:
//! output, exit codes, timeouts, background processes, follow, ps, kill, JSON, usage errors.

mod common;

use std::cell::RefCell;
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::http::{ServerProc, binary, run_to_end, serve};
use common::{OwnedGroups, TOOL_NAMES, dead, eventually, live_group_members};

/// Longest any single CLI run in these tests may take (`run_to_end` has its own 20 s bound).
const LINE_WAIT: Duration = Duration::from_secs(10);

/// A server, its URL, and the process groups the test started through it.
struct Agent {
    /// Dropped first (fields drop in order): what is left of the groups is killed before the
    /// server goes.
    groups: RefCell<OwnedGroups>,
    _server: ServerProc,
    url: String,
}

impl Agent {
    fn start() -> Agent {
        let server = serve(&["--listen", "127.0.0.1:0"], &[]);
        let url = server.addr.url();
        Agent {
            groups: RefCell::default(),
            _server: server,
            url,
        }
    }

    /// Records a process group the test started, to be killed at the end if anything is left.
    fn owns(&self, pgid: i32) {
        self.groups.borrow_mut().0.push(pgid);
    }

    /// Runs `procwarden --url URL ARGS...`: (exit code, stdout, stderr).
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let mut all = vec!["--url", &self.url];
        all.extend_from_slice(args);
        run_to_end(&all, &[])
    }

    /// The process with this id, from `ps --json`.
    fn info(&self, id: &str) -> Value {
        let (code, stdout, stderr) = self.run(&["ps", "--json"]);
        assert_eq!(code, 0, "{stderr}");
        let list: Value = serde_json::from_str(&stdout).expect("ps --json is JSON");
        list["processes"]
            .as_array()
            .expect("processes")
            .iter()
            .find(|p| p["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} is not listed: {stdout}"))
    }

    /// The newest process, from `ps --json`.
    fn newest(&self) -> Value {
        let (code, stdout, stderr) = self.run(&["ps", "--json", "--limit", "1"]);
        assert_eq!(code, 0, "{stderr}");
        let list: Value = serde_json::from_str(&stdout).expect("ps --json is JSON");
        list["processes"][0].clone()
    }

    /// Starts `command` in the background through the CLI; returns its id and pid.
    fn background(&self, command: &str) -> (String, i32) {
        let (code, stdout, stderr) = self.run(&["exec", "--background", "--", command]);
        assert_eq!(code, 0, "{stderr}");
        let id = stdout.trim().to_string();
        assert_eq!(stdout, format!("{id}\n"), "only the id");
        let pid = self.info(&id)["pid"].as_i64().expect("pid") as i32;
        self.owns(pid);
        (id, pid)
    }
}

fn one_line(stderr: &str) -> bool {
    stderr.trim_end().lines().count() == 1
}

#[test]
fn exec_prints_the_output_and_exits_with_the_status() {
    let agent = Agent::start();
    let (code, stdout, stderr) = agent.run(&[
        "exec", "--", "echo", "hello", "world;", "echo", "oops", ">&2",
    ]);
    assert_eq!(
        (code, stdout.as_str(), stderr.as_str()),
        (0, "hello world\noops\n", "")
    );
    let (code, stdout, _) = agent.run(&["exec", "--", "echo bye; exit 42"]);
    assert_eq!((code, stdout.as_str()), (42, "bye\n"));
    // Without `--` the command starts at the first word that is not an option.
    let (code, stdout, _) = agent.run(&["exec", "printf", "%s-%s", "a", "b"]);
    assert_eq!((code, stdout.as_str()), (0, "a-b"));
    // The URL can come from the environment, and after the subcommand.
    let (code, stdout, _) = run_to_end(
        &["exec", "--", "echo env"],
        &[("PROCWARDEN_URL", &agent.url)],
    );
    assert_eq!((code, stdout.as_str()), (0, "env\n"));
    let (code, stdout, _) = run_to_end(&["exec", "--url", &agent.url, "--", "echo late"], &[]);
    assert_eq!((code, stdout.as_str()), (0, "late\n"));
    // --workdir.
    let (code, stdout, _) = agent.run(&["exec", "--workdir", "/tmp", "--", "pwd"]);
    assert_eq!((code, stdout.as_str()), (0, "/tmp\n"));
}

#[test]
fn a_signal_exits_with_128_plus_its_number() {
    let agent = Agent::start();
    let (code, _, stderr) = agent.run(&["exec", "--", "kill -9 $$"]);
    assert_eq!(code, 128 + 9, "{stderr}");
    let (code, _, _) = agent.run(&["exec", "--", "kill -TERM $$"]);
    assert_eq!(code, 128 + 15);
}

#[test]
fn an_expired_timeout_exits_124_and_leaves_nothing_running() {
    let agent = Agent::start();
    let began = Instant::now();
    let (code, stdout, stderr) =
        agent.run(&["exec", "--timeout", "300ms", "--", "echo begun; sleep 30"]);
    let took = began.elapsed();
    assert_eq!(code, 124, "{stderr}");
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert_eq!(stdout, "begun\n", "the output so far");
    assert!(
        one_line(&stderr) && stderr.contains("timed out after 300ms"),
        "{stderr:?}"
    );
    // The agent enforced it (timeout_ms): the record says so, and `output` and `ps` agree with
    // exec.
    let info = agent.newest();
    assert_eq!(info["command"], "echo begun; sleep 30");
    assert_eq!(info["running"], false, "{info}");
    assert_eq!(info["timed_out"], true, "{info}");
    assert_eq!(info["signal"], "SIGTERM", "{info}");
    let id = info["id"].as_str().expect("id").to_string();
    let (code, stdout, _) = agent.run(&["output", &id]);
    assert_eq!((code, stdout.as_str()), (124, "begun\n"));
    let (_, table, _) = agent.run(&["ps"]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&id) && l.contains("timed out")),
        "{table}"
    );
    let pid = info["pid"].as_i64().expect("pid") as i32;
    assert!(
        eventually(Duration::from_secs(5), || dead(pid)
            && live_group_members(pid).is_empty()),
        "nothing of the group is left"
    );
    // A command that finishes in time is not affected.
    let (code, stdout, _) = agent.run(&["exec", "--timeout", "10s", "--", "echo quick"]);
    assert_eq!((code, stdout.as_str()), (0, "quick\n"));
}

#[test]
fn background_then_output_wait() {
    let agent = Agent::start();
    let (id, _) = agent.background("echo one; sleep 0.3; echo two; exit 5");
    let (code, stdout, stderr) = agent.run(&["output", &id, "--wait"]);
    assert_eq!((code, stdout.as_str()), (5, "one\ntwo\n"), "{stderr}");
    // A snapshot of an exited process exits with its status too.
    let (code, stdout, _) = agent.run(&["output", &id]);
    assert_eq!((code, stdout.as_str()), (5, "one\ntwo\n"));
    // A snapshot of a running one exits 0.
    let (running, _) = agent.background("echo up; sleep 30");
    let (code, _, _) = agent.run(&["output", &running]);
    assert_eq!(code, 0);
    let (code, _, _) = agent.run(&["kill", &running, "--signal", "kill"]);
    assert_eq!(code, 0);
}

/// `output --follow` prints each line as it arrives: the first line is read while the
/// process still waits for the test's go-ahead.
#[test]
fn output_follow_streams_until_exit() {
    let agent = Agent::start();
    let gate = std::env::temp_dir().join(format!("procwarden-cli-gate-{}", std::process::id()));
    let _ = std::fs::remove_file(&gate);
    let script = format!(
        "echo one; for i in $(seq 200); do [ -e '{}' ] && break; sleep 0.05; done; echo two; exit 3",
        gate.display()
    );
    let (id, _) = agent.background(&script);
    let mut follow = Command::new(binary())
        .args(["--url", &agent.url, "output", &id, "--follow"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("procwarden runs");
    let follow_pid = follow.id();
    let stdout = follow.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            }
        }
    });
    let first = rx.recv_timeout(LINE_WAIT);
    let ending = std::fs::write(&gate, b"go");
    let second = rx.recv_timeout(LINE_WAIT);
    // Once the output has ended the command exits right after.
    let exited =
        second.is_ok() && eventually(LINE_WAIT, || matches!(follow.try_wait(), Ok(Some(_))));
    if !exited {
        let _ = Command::new("kill")
            .args(["-KILL", &follow_pid.to_string()])
            .status();
    }
    let status = follow.wait().expect("reaped");
    let _ = std::fs::remove_file(&gate);
    ending.expect("gate written");
    assert_eq!(first.as_deref(), Ok("one\n"));
    assert_eq!(second.as_deref(), Ok("two\n"));
    assert!(exited, "follow exits once the process has");
    assert_eq!(status.code(), Some(3));
    let mut stderr = String::new();
    follow
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("stderr");
    assert_eq!(stderr, "");

    // Following a process that has already exited prints everything and exits with its status.
    let (code, stdout, _) = agent.run(&["output", &id, "--follow"]);
    assert_eq!((code, stdout.as_str()), (3, "one\ntwo\n"));
}

#[test]
fn ps_lists_and_kill_terminates() {
    let agent = Agent::start();
    let (id, pid) = agent.background("sleep 30");
    let (code, stdout, stderr) = agent.run(&["exec", "--", "exit 7"]);
    assert_eq!(code, 7, "{stderr}{stdout}");
    let (code, table, _) = agent.run(&["ps"]);
    assert_eq!(code, 0);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    for column in ["ID", "PID", "STATUS", "TIME", "COMMAND"] {
        assert!(lines[0].contains(column), "{table}");
    }
    assert!(lines[1].starts_with(&id), "running first: {table}");
    assert!(
        lines[1].contains(&pid.to_string()) && lines[1].contains("running"),
        "{table}"
    );
    assert!(lines[1].ends_with("sleep 30"), "{table}");
    assert!(
        lines[2].contains("exit 7") && lines[2].ends_with("exit 7"),
        "{table}"
    );

    let (code, stdout, stderr) = agent.run(&["kill", &id]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stdout,
        format!("Signal \"terminate\" sent to process \"{id}\".\n")
    );
    let (code, _, _) = agent.run(&["output", &id, "--wait"]);
    assert_eq!(code, 128 + 15, "ended by SIGTERM");
    assert!(eventually(Duration::from_secs(5), || dead(pid)));
    let (_, table, _) = agent.run(&["ps"]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(&id) && l.contains("SIGTERM")),
        "{table}"
    );
    // Killing it again: the server's 409, exit 1, one line.
    let (code, stdout, stderr) = agent.run(&["kill", &id, "--signal", "kill"]);
    assert_eq!((code, stdout.as_str()), (1, ""));
    assert!(
        one_line(&stderr) && stderr.contains("is not running"),
        "{stderr:?}"
    );
}

#[test]
fn tools_schema_needs_no_server() {
    let (code, stdout, stderr) =
        run_to_end(&["--url", "http://127.0.0.1:1", "tools", "--schema"], &[]);
    assert_eq!(code, 0, "{stderr}");
    let tools: Value = serde_json::from_str(&stdout).expect("the schema is JSON");
    let names: Vec<&str> = tools
        .as_array()
        .expect("a list of tools")
        .iter()
        .map(|t| t["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, TOOL_NAMES);
    assert!(stdout.contains("\n  "), "pretty-printed");
    for tool in tools.as_array().expect("tools") {
        assert_eq!(tool["parameters"]["type"], "object", "{tool}");
    }
    let (code, stdout, _) = run_to_end(&["tools"], &[]);
    assert_eq!(code, 0);
    assert_eq!(stdout.lines().count(), TOOL_NAMES.len(), "{stdout}");
}

#[test]
fn json_answers_parse() {
    let agent = Agent::start();
    let json = |args: &[&str]| -> Vec<Value> {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let (_, stdout, stderr) = agent.run(&all);
        assert!(!stdout.is_empty(), "{args:?}: {stderr}");
        stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{args:?}: {e}: {l:?}")))
            .collect()
    };
    let done = json(&["exec", "--", "echo hi; exit 4"]);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0]["output"], "hi\n");
    assert_eq!(done[0]["exit_code"], 4);
    assert_eq!(done[0]["running"], false);
    let started = json(&["exec", "--background", "--", "echo bg; sleep 30"]);
    let id = started[0]["id"].as_str().expect("id").to_string();
    assert_eq!(started[0]["started"], true);
    agent.owns(started[0]["pid"].as_i64().expect("pid") as i32);
    let list = json(&["ps"]);
    assert_eq!(list[0]["processes"][0]["id"], id.as_str());
    let snapshot = json(&["output", &id]);
    assert_eq!(snapshot[0]["running"], true);
    let signalled = json(&["kill", &id, "--signal", "kill"]);
    assert_eq!(
        signalled[0]["message"],
        format!("Signal \"kill\" sent to process \"{id}\".")
    );
    let followed = json(&["output", &id, "--follow"]);
    let last = followed.last().expect("answers");
    assert_eq!(last["running"], false);
    assert_eq!(last["signal"], "SIGKILL");
    let text: String = followed
        .iter()
        .map(|a| a["output"].as_str().expect("output"))
        .collect();
    assert_eq!(text, "bg\n");
    // `tools --json` is the (pretty) schema: one document over many lines.
    let (code, stdout, _) = run_to_end(&["--json", "tools"], &[]);
    assert_eq!(code, 0);
    let schema: Value = serde_json::from_str(&stdout).expect("tools --json is JSON");
    assert_eq!(schema.as_array().map(Vec::len), Some(TOOL_NAMES.len()));
}

#[test]
fn usage_errors_exit_2_with_one_line() {
    for args in [
        &[][..],
        &["frobnicate"],
        &["exec"],
        &["exec", "--"],
        &["exec", "--timeout", "soon", "--", "true"],
        &["exec", "--no-such-flag", "--", "true"],
        &["ps", "--limit", "0"],
        &["ps", "extra"],
        &["output"],
        &["output", "a", "b"],
        &["kill", "x", "--signal", "hup"],
        &["kill"],
        &["--url"],
        &["--url", "http://127.0.0.1:1", "serve"],
        &["tools", "--bogus"],
        &["kill", "abc"],
        &["output", "ab"],
        &["--url", "localhost:7717", "ps"],
        &["--url", "http://127.0.0.1:port", "ps"],
        &["--url", "https://127.0.0.1:1", "ps"],
        &[
            "--url",
            "http://127.0.0.1:1/api/v0/processes",
            "kill",
            "abcd",
        ],
        &["serve", "--bogus"],
        &["serve", "--listen", "not an address"],
        &["serve", "--listen", "0.0.0.0:0"],
        &["mcp", "--bogus"],
        &["completions", "csh"],
        &["manpage", "--json"],
    ] {
        let (code, stdout, stderr) = run_to_end(args, &[]);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert_eq!(stdout, "", "{args:?}");
        assert!(one_line(&stderr), "{args:?}: {stderr:?}");
        assert!(stderr.starts_with("procwarden: "), "{args:?}: {stderr:?}");
        // The same tail everywhere: the help to read.
        let tail = stderr.trim_end();
        assert!(
            tail.ends_with(" --help)") && tail.contains("(see procwarden "),
            "{args:?}: {stderr:?}"
        );
    }
    // A malformed $PROCWARDEN_URL is a usage error too.
    let (code, _, stderr) = run_to_end(&["ps"], &[("PROCWARDEN_URL", "127.0.0.1:7717")]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("$PROCWARDEN_URL: --url takes http://"),
        "{stderr}"
    );
}

#[test]
fn every_subcommand_has_help() {
    for command in [
        "exec",
        "ps",
        "output",
        "kill",
        "tools",
        "serve",
        "completions",
        "manpage",
    ] {
        let (code, stdout, stderr) = run_to_end(&[command, "--help"], &[]);
        assert_eq!(code, 0, "{command}: {stderr}");
        assert!(
            stdout.starts_with("Usage: procwarden "),
            "{command}: {stdout}"
        );
        assert!(stdout.contains(command), "{command}: {stdout}");
    }
    // exec's help says which directory a command runs in.
    let (_, stdout, _) = run_to_end(&["exec", "--help"], &[]);
    assert!(
        stdout.contains("current directory when the agent is on this host"),
        "{stdout}"
    );
    let (code, stdout, _) = run_to_end(&["--help"], &[]);
    assert_eq!(code, 0);
    for command in [
        "serve",
        "exec",
        "ps",
        "output",
        "kill",
        "tools",
        "completions",
        "manpage",
        "--url",
        "--json",
        "--token-file",
    ] {
        assert!(stdout.contains(command), "{command}: {stdout}");
    }
    let (code, stdout, _) = run_to_end(&["--version"], &[]);
    assert_eq!(
        (code, stdout),
        (0, format!("procwarden {}\n", env!("CARGO_PKG_VERSION")))
    );
}

#[test]
fn no_answer_exits_1_with_one_line() {
    for args in [
        &["--url", "http://127.0.0.1:1", "ps"][..],
        &["--url", "http://127.0.0.1:1", "exec", "--", "true"],
        &["output", "--url=http://127.0.0.1:1", "some-id"],
        &[
            "--url",
            "unix:/nonexistent/procwarden.sock",
            "kill",
            "some-id",
        ],
    ] {
        let began = Instant::now();
        let (code, stdout, stderr) = run_to_end(args, &[]);
        assert!(began.elapsed() < Duration::from_secs(10), "{args:?}");
        assert_eq!(code, 1, "{args:?}: {stderr}");
        assert_eq!(stdout, "", "{args:?}");
        assert!(one_line(&stderr), "{args:?}: {stderr:?}");
    }
    let (_, _, stderr) = run_to_end(&["--url", "http://127.0.0.1:1", "ps"], &[]);
    assert!(
        stderr.starts_with("procwarden: No answer from http://127.0.0.1:1."),
        "{stderr:?}"
    );
    assert!(
        stderr
            .trim_end()
            .ends_with("Is procwarden serve running at http://127.0.0.1:1?"),
        "the next step: {stderr:?}"
    );
}

#[test]
fn the_token_comes_from_the_environment() {
    let server = serve(
        &["--listen", "127.0.0.1:0"],
        &[("PROCWARDEN_TOKEN", "s3cret")],
    );
    let url = server.addr.url();
    let (code, stdout, stderr) = run_to_end(
        &["--url", &url, "exec", "--", "echo in"],
        &[("PROCWARDEN_TOKEN", "s3cret\n")],
    );
    assert_eq!((code, stdout.as_str()), (0, "in\n"), "{stderr}");
    let (code, stdout, stderr) = run_to_end(&["--url", &url, "ps"], &[]);
    assert_eq!((code, stdout.as_str()), (1, ""));
    assert_eq!(
        stderr,
        "procwarden: Unauthorized. Set PROCWARDEN_TOKEN or --token-file to the agent's token \
         (procwarden serve --token-file).\n"
    );
    // --token-file, before or after the subcommand.
    let file = std::env::temp_dir().join(format!("procwarden-cli-token-{}", std::process::id()));
    std::fs::write(&file, "s3cret\n").expect("token file");
    let file_arg = file.display().to_string();
    let (code, stdout, stderr) = run_to_end(
        &[
            "--token-file",
            &file_arg,
            "--url",
            &url,
            "exec",
            "--",
            "echo file",
        ],
        &[],
    );
    assert_eq!((code, stdout.as_str()), (0, "file\n"), "{stderr}");
    let (code, _, stderr) = run_to_end(&["--url", &url, "ps", "--token-file", &file_arg], &[]);
    assert_eq!(code, 0, "{stderr}");
    let _ = std::fs::remove_file(&file);
    let (code, _, stderr) = run_to_end(&["--url", &url, "ps", "--token-file", &file_arg], &[]);
    assert_eq!(code, 2, "a missing token file is a usage error: {stderr}");
    assert!(stderr.contains("cannot read --token-file"), "{stderr}");
    // A URL with the API's path: the answer would be a 404; the CLI says what to give.
    let (code, _, stderr) = run_to_end(&["--url", &format!("{url}/api/v0"), "ps"], &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "--url should be the agent's base URL, e.g. {url} (without /api/v0)"
        )),
        "{stderr}"
    );
}

#[test]
fn a_unix_socket_url() {
    let path = std::env::temp_dir().join(format!("procwarden-cli-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let listen = format!("unix:{}", path.display());
    let _server = serve(&["--listen", &listen], &[]);
    let (code, stdout, stderr) =
        run_to_end(&["--url", &listen, "exec", "--", "echo over unix"], &[]);
    assert_eq!((code, stdout.as_str()), (0, "over unix\n"), "{stderr}");
    let (code, stdout, _) = run_to_end(&["--url", &listen, "ps"], &[]);
    assert_eq!(code, 0);
    assert!(stdout.contains("echo over unix"), "{stdout}");
    let _ = std::fs::remove_file(&path);
}

#[test]
fn kill_takes_the_signal_spellings_of_kill_1() {
    let agent = Agent::start();
    for (spelling, name) in [
        (vec!["-9"], "kill"),
        (vec!["-s", "TERM"], "terminate"),
        (vec!["--signal", "SIGINT"], "interrupt"),
        (vec!["-KILL"], "kill"),
    ] {
        let (id, pid) = agent.background("sleep 30");
        let mut args = vec!["kill", id.as_str()];
        args.extend(spelling.iter().copied());
        let (code, stdout, stderr) = agent.run(&args);
        assert_eq!(code, 0, "{spelling:?}: {stderr}");
        assert_eq!(
            stdout,
            format!("Signal \"{name}\" sent to process \"{id}\".\n"),
            "{spelling:?}"
        );
        assert!(
            eventually(Duration::from_secs(5), || dead(pid)),
            "{spelling:?}"
        );
    }
}

/// `exec` on an agent on this host runs in the caller's directory unless --workdir says
/// otherwise.
#[test]
fn exec_runs_in_the_callers_directory_on_a_local_agent() {
    let agent = Agent::start();
    let dir = std::env::temp_dir().join(format!("procwarden-cli-cwd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let dir = dir.canonicalize().expect("canonical");
    let run_in = |args: &[&str]| {
        let out = Command::new(binary())
            .args(["--url", &agent.url])
            .args(args)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .env_remove("PROCWARDEN_TOKEN")
            .output()
            .expect("procwarden runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    assert_eq!(
        run_in(&["exec", "--", "pwd"]),
        (Some(0), format!("{}\n", dir.display()))
    );
    assert_eq!(
        run_in(&["exec", "--workdir", "/tmp", "--", "pwd"]),
        (Some(0), "/tmp\n".to_string())
    );
    // An empty --workdir asks for the agent's own default (here its $HOME).
    let home = std::fs::canonicalize(std::env::var("HOME").expect("HOME")).expect("HOME");
    assert_eq!(
        run_in(&["exec", "--workdir", "", "--", "pwd -P"]),
        (Some(0), format!("{}\n", home.display()))
    );
    // The record says where it ran.
    let (code, _) = run_in(&["exec", "--background", "--", "true"]);
    assert_eq!(code, Some(0));
    assert_eq!(agent.newest()["workdir"], dir.display().to_string());
    let _ = std::fs::remove_dir(&dir);
}

/// IDs may be given as unique prefixes (at least 4 characters); `kill` takes several.
#[test]
fn ids_take_unique_prefixes_and_kill_takes_several() {
    let agent = Agent::start();
    let (first, first_pid) = agent.background("echo first; sleep 30");
    let (second, second_pid) = agent.background("sleep 30");
    let (code, stdout, stderr) = agent.run(&["output", &first[..8]]);
    assert_eq!((code, stdout.as_str()), (0, "first\n"), "{stderr}");
    let upper = first[..6].to_ascii_uppercase();
    let (code, stdout, stderr) = agent.run(&["kill", &upper, &second[..4], "-9"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stdout,
        format!(
            "Signal \"kill\" sent to process \"{first}\".\nSignal \"kill\" sent to process \"{second}\".\n"
        )
    );
    assert!(eventually(Duration::from_secs(5), || dead(first_pid)
        && dead(second_pid)));
    // Every id is tried; one that fails makes the exit code 1, with one line each.
    let (third, third_pid) = agent.background("sleep 30");
    let (code, stdout, stderr) =
        agent.run(&["kill", "ffffffff-ffff-4fff-bfff-ffffffffffff", &third]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(
        stdout,
        format!("Signal \"terminate\" sent to process \"{third}\".\n")
    );
    assert!(
        one_line(&stderr) && stderr.contains("not found"),
        "{stderr:?}"
    );
    assert!(eventually(Duration::from_secs(5), || dead(third_pid)));
    // A prefix that matches nothing.
    let (code, _, stderr) = agent.run(&["output", "zzzz"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("No process ID starts with \"zzzz\""),
        "{stderr}"
    );
}

/// `exec` says on stderr when the output it printed was cut, and where the rest is named.
#[test]
fn exec_reports_truncated_output_on_stderr() {
    let agent = Agent::start();
    let (code, stdout, stderr) =
        agent.run(&["exec", "--", "head -c 100000 /dev/zero | tr '\\0' x; echo"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("[omitted 67233 bytes]"),
        "{}",
        &stdout[..100]
    );
    let id = agent.newest()["id"].as_str().expect("id").to_string();
    assert_eq!(
        stderr,
        format!("procwarden: output truncated (67233 bytes omitted); see: procwarden log {id}\n")
    );
    // The command the note names holds what the output left out: the whole stream.
    let (code, log, stderr) = agent.run(&["log", &id[..8]]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(log.matches('x').count(), 100_000, "{}", &log[..100]);
    // Output that fits says nothing.
    let (_, _, stderr) = agent.run(&["exec", "--", "echo short"]);
    assert_eq!(stderr, "");
}

/// An agent out of log space (507) still runs the command: `exec` starts it again without a
/// log, says so, and the truncation note then names `output`, which the agent does have.
#[test]
fn exec_starts_without_a_log_when_the_agent_has_no_log_space() {
    let server = serve(
        &["--listen", "127.0.0.1:0", "--log-max-total-bytes", "0"],
        &[],
    );
    let url = server.addr.url();
    let (code, stdout, stderr) = run_to_end(
        &[
            "--url",
            &url,
            "exec",
            "--",
            "head -c 100000 /dev/zero | tr '\\0' x; echo",
        ],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("[omitted 67233 bytes]"),
        "{}",
        &stdout[..100]
    );
    let mut lines = stderr.lines();
    assert_eq!(
        lines.next(),
        Some("procwarden: Log space is full. Starting without a full log."),
        "{stderr}"
    );
    let note = lines.next().unwrap_or_default();
    assert!(
        note.starts_with(
            "procwarden: output truncated (67233 bytes omitted); see: procwarden output "
        ),
        "{stderr}"
    );
    assert_eq!(lines.next(), None, "{stderr}");
}
