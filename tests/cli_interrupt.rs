//! Ctrl-C during a foreground `procwarden exec`, driven by real SIGINTs: sent to the CLI's pid,
//! and typed into a real terminal (tmux). Each test checks on the agent that the process
//! ended (or, with `--detach-on-interrupt`, that it did not).

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use common::http::{Addr, ServerProc, binary, request, serve, signal, wait_exit, wait_for_text};
use common::{OwnedGroups, assert_group_empties, dead, eventually};

/// Longest the CLI may take to exit after the Ctrl-C that should end it.
const EXIT_WAIT: Duration = Duration::from_secs(15);
/// Longest the test waits for the CLI's process to appear on the agent, or for a line.
const SEEN_WAIT: Duration = Duration::from_secs(10);

/// A `procwarden exec` running in the foreground, its stdout collected and its stderr read
/// line by line.
struct Exec {
    child: Child,
    stderr: mpsc::Receiver<String>,
    stdout: std::thread::JoinHandle<String>,
}

impl Exec {
    fn start(url: &str, args: &[&str]) -> Exec {
        let mut child = Command::new(binary())
            .args(["--url", url, "exec"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env_remove("PROCWARDEN_TOKEN")
            .spawn()
            .expect("procwarden runs");
        let mut stdout = child.stdout.take().expect("stdout");
        let stdout = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stdout.read_to_string(&mut text);
            text
        });
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Exec {
            child,
            stderr: rx,
            stdout,
        }
    }

    /// Sends SIGINT to the CLI (as Ctrl-C does to the terminal's foreground group), by pid.
    fn ctrl_c(&self) {
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// The next stderr line, within [`SEEN_WAIT`].
    fn stderr_line(&self) -> String {
        self.stderr
            .recv_timeout(SEEN_WAIT)
            .expect("a line on stderr")
    }

    /// Waits (at most [`EXIT_WAIT`]) for the exit; returns its status, stdout and the rest of
    /// stderr. A CLI still running at the deadline is killed (by pid) and fails the test.
    fn finish(self) -> (ExitStatus, String, String) {
        let Exec {
            mut child,
            stderr,
            stdout,
        } = self;
        let pid = child.id();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        let Ok(status) = rx.recv_timeout(EXIT_WAIT) else {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("procwarden exec did not exit within {EXIT_WAIT:?} of the Ctrl-C");
        };
        let status = status.expect("reaped");
        let stdout = stdout.join().expect("stdout reader");
        // The reader ends at the pipe's end of file, which comes with the exit.
        let mut rest = Vec::new();
        while let Ok(line) = stderr.recv_timeout(SEEN_WAIT) {
            rest.push(line);
        }
        let stderr = rest;
        (status, stdout, stderr.join("\n"))
    }
}

/// The newest process on the agent, once there is one.
fn newest(addr: &Addr) -> Value {
    let mut found = Value::Null;
    let seen = eventually(SEEN_WAIT, || {
        let reply = request(addr, "GET", "/api/v0/processes/list?limit=1", None, &[]);
        found = reply.json()["processes"][0].clone();
        !found.is_null()
    });
    assert!(seen, "the CLI's process never appeared on the agent");
    found
}

/// A server, the process groups the test started through it (killed at the end if anything
/// is left), and its address.
struct Agent {
    groups: OwnedGroups,
    server: ServerProc,
    url: String,
}

impl Agent {
    fn start() -> Agent {
        let server = serve(&["--listen", "127.0.0.1:0"], &[]);
        let url = server.addr.url();
        Agent {
            groups: OwnedGroups(Vec::new()),
            server,
            url,
        }
    }

    /// The newest process once it has printed `ready`: its id and pid (recorded as owned).
    fn ready(&mut self) -> (String, i32) {
        let info = newest(&self.server.addr);
        let id = info["id"].as_str().expect("id").to_string();
        let pid = info["pid"].as_i64().expect("pid") as i32;
        self.groups.0.push(pid);
        wait_for_text(&self.server.addr, &id, "ready");
        (id, pid)
    }
}

#[test]
fn ctrl_c_interrupts_the_process_and_prints_its_output_so_far() {
    let mut agent = Agent::start();
    let exec = Exec::start(&agent.url, &["--", "echo ready; sleep 30"]);
    let (id, pid) = agent.ready();
    exec.ctrl_c();
    let line = exec.stderr_line();
    assert!(
        line.starts_with(&format!(
            "procwarden: interrupted; sent SIGINT to process {id}"
        )),
        "{line}"
    );
    let (status, stdout, _) = exec.finish();
    assert_eq!(status.code(), Some(130));
    assert_eq!(stdout, "ready\n", "the output so far");
    let record = wait_exit(&agent.server.addr, &id);
    assert_eq!(record["signal"], "SIGINT", "{record}");
    assert!(eventually(Duration::from_secs(5), || dead(pid)));
    assert_group_empties(pid, Duration::from_secs(5), "the interrupted group");
}

#[test]
fn a_second_ctrl_c_kills_at_once() {
    let mut agent = Agent::start();
    // The shell survives SIGINT (its `sleep` does not), so only SIGKILL ends it; the grace is
    // long, so only the second Ctrl-C can.
    let exec = Exec::start(
        &agent.url,
        &[
            "--interrupt-grace",
            "120s",
            "--",
            "trap 'echo got-int' INT; echo ready; while :; do sleep 1; done",
        ],
    );
    let (id, pid) = agent.ready();
    let began = Instant::now();
    exec.ctrl_c();
    let line = exec.stderr_line();
    assert!(line.contains("sent SIGINT"), "{line}");
    wait_for_text(&agent.server.addr, &id, "got-int");
    exec.ctrl_c();
    let line = exec.stderr_line();
    assert_eq!(
        line,
        format!("procwarden: interrupted again; sent SIGKILL to process {id}")
    );
    let (status, stdout, _) = exec.finish();
    assert!(began.elapsed() < Duration::from_secs(60), "not the grace");
    assert_eq!(status.code(), Some(130));
    assert_eq!(stdout, "ready\ngot-int\n");
    let record = wait_exit(&agent.server.addr, &id);
    assert_eq!(record["signal"], "SIGKILL", "{record}");
    assert_group_empties(pid, Duration::from_secs(5), "the killed group");
}

#[test]
fn a_process_that_ignores_ctrl_c_is_killed_after_the_grace() {
    let mut agent = Agent::start();
    let exec = Exec::start(
        &agent.url,
        &[
            "--interrupt-grace",
            "500ms",
            "--",
            "trap '' INT; echo ready; sleep 30",
        ],
    );
    let (id, pid) = agent.ready();
    exec.ctrl_c();
    let line = exec.stderr_line();
    assert!(line.contains("SIGKILL in 500ms"), "{line}");
    let (status, stdout, _) = exec.finish();
    assert_eq!(status.code(), Some(130));
    assert_eq!(stdout, "ready\n");
    let record = wait_exit(&agent.server.addr, &id);
    assert_eq!(record["signal"], "SIGKILL", "{record}");
    assert_group_empties(pid, Duration::from_secs(5), "the group that ignored SIGINT");
}

#[test]
fn detach_on_interrupt_leaves_the_process_running() {
    let mut agent = Agent::start();
    let exec = Exec::start(
        &agent.url,
        &["--detach-on-interrupt", "--", "echo ready; sleep 30"],
    );
    let (id, pid) = agent.ready();
    exec.ctrl_c();
    let (status, stdout, stderr) = exec.finish();
    assert_eq!(status.code(), Some(130));
    assert_eq!(stdout, "");
    assert!(
        stderr.contains(&format!("process {id} still runs"))
            && stderr.contains(&format!("procwarden kill {id}")),
        "{stderr}"
    );
    let snapshot = request(
        &agent.server.addr,
        "GET",
        &format!("/api/v0/processes/{id}/output"),
        None,
        &[],
    )
    .json();
    assert_eq!(snapshot["running"], true, "{snapshot}");
    assert!(!dead(pid));
    assert_eq!(
        signal(&agent.server.addr, &id, &json!({"signal": "kill"})),
        200
    );
    assert_group_empties(pid, Duration::from_secs(5), "the detached group");
}

/// The tmux binary, or `None` (the test is skipped with a message) when it is missing and
/// `CI` is not set; under CI a missing tmux fails the test (`.ci/run` installs it).
fn tmux() -> Option<&'static str> {
    let found = Command::new("tmux")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return Some("tmux");
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "tmux is not installed; CI must run this test (.ci/run installs it)"
    );
    eprintln!("SKIPPED: tmux is not installed");
    None
}

/// A tmux server of the test's own (`-L NAME`), killed at the end.
struct Tmux {
    name: String,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .args(["-L", &self.name])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("tmux runs")
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// Ctrl-C typed into a real terminal: the terminal's settings are as they were, the output so
/// far is on the screen, the exit code is 130, and the process ended on the agent.
#[test]
fn ctrl_c_in_a_terminal_leaves_it_as_found() {
    let Some(_) = tmux() else { return };
    let mut agent = Agent::start();
    let dir: PathBuf = std::env::temp_dir().join(format!("procwarden-tmux-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let script = dir.join("run.sh");
    // bash, not sh: a non-interactive bash waits for a foreground child that handles SIGINT
    // itself, and goes on when it exits normally.
    std::fs::write(
        &script,
        format!(
            "stty -g > '{d}/before'\n'{bin}' --url '{url}' exec -- 'echo ready; sleep 30'\necho $? > '{d}/rc.tmp'; mv '{d}/rc.tmp' '{d}/rc'\nstty -g > '{d}/after.tmp'; mv '{d}/after.tmp' '{d}/after'\nsleep 30\n",
            d = dir.display(),
            bin = binary(),
            url = agent.url
        ),
    )
    .expect("script");
    let tmux = Tmux {
        name: format!("procwarden-test-{}", std::process::id()),
    };
    let started = tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "cli",
        "-x",
        "120",
        "-y",
        "30",
        &format!("bash '{}'", script.display()),
    ]);
    assert!(started.status.success(), "{started:?}");
    let (id, pid) = agent.ready();
    let typed = tmux.run(&["send-keys", "-t", "cli", "C-c"]);
    assert!(typed.status.success(), "{typed:?}");
    let rc = dir.join("rc");
    assert!(
        eventually(EXIT_WAIT, || rc.exists()),
        "the CLI did not exit after Ctrl-C"
    );
    assert!(eventually(SEEN_WAIT, || dir.join("after").exists()));
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).expect(name);
    assert_eq!(read("rc").trim(), "130");
    assert_eq!(read("before"), read("after"), "the terminal's settings");
    let screen = tmux.run(&["capture-pane", "-p", "-t", "cli"]);
    let screen = String::from_utf8_lossy(&screen.stdout);
    assert!(screen.contains("ready"), "{screen}");
    assert!(
        screen.contains(&format!("sent SIGINT to process {id}")),
        "{screen}"
    );
    let record = wait_exit(&agent.server.addr, &id);
    assert_eq!(record["signal"], "SIGINT", "{record}");
    assert_group_empties(
        pid,
        Duration::from_secs(5),
        "the group interrupted from tmux",
    );
    drop(tmux);
    let _ = std::fs::remove_dir_all(&dir);
}
