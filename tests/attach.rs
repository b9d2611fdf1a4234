//! The interactive command line against a real `procwarden serve`: `procwarden input` from a
//! script, and `procwarden exec --tty` and `procwarden attach` in a real terminal: tmux runs a
//! shell in a pane of a private tmux server (`tmux -L <unique name>`, killed at the end, and
//! only that one), the test types with `send-keys` and reads the screen with `capture-pane`.
//! The attached program is a real interactive `sh -i` under the agent's pseudo-terminal.
//!
//! tmux must be installed (`.ci/run` installs it): without it the tmux test is skipped, and
//! under `CI` it fails.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::http::{ServerProc, binary, request, run_to_end, serve, start, wait_exit};

/// Longest wait for something to appear on the screen.
const SCREEN_WAIT: Duration = Duration::from_secs(20);
/// The remote shell's prompt (set through `serve --env`, so no quoting reaches tmux).
const PROMPT: &str = "pw>";
/// A foreground child of the remote shell that reports SIGINT (`int=2`) and exits; what is
/// typed shows `$((1+1))`, so only the trap prints `int=2`.
const TRAPPER: &str =
    "sh -c 'trap \"echo int=$((1+1)); exit 0\" INT; echo waiting$((0)); while :; do sleep 1; done'";

/// Whether tmux can be run; under `CI` its absence fails the test.
fn have_tmux() -> bool {
    let found = Command::new("tmux")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "tmux is not installed; CI must run this test (.ci/run installs tmux)"
        );
        eprintln!("SKIPPED: tmux is not installed (apt-get install tmux)");
    }
    found
}

/// A tmux server of this test's own, with one session `t` whose pane runs a plain shell.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(url: &str, rows: u16, cols: u16) -> Tmux {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let socket = format!("procwarden-attach-{}-{nanos}", std::process::id());
        let tmux = Tmux { socket };
        // The pane's shell: a known prompt, the agent's URL, and nothing from the user's rc.
        let status = tmux
            .command()
            .args(["new-session", "-d", "-s", "t"])
            .args(["-x", &cols.to_string(), "-y", &rows.to_string()])
            .args([
                "env",
                "PS1=outer>",
                &format!("PROCWARDEN_URL={url}"),
                "ENV=",
                "sh",
            ])
            .status()
            .expect("tmux runs");
        assert!(status.success(), "tmux new-session failed");
        tmux
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new("tmux");
        cmd.args(["-L", &self.socket, "-f", "/dev/null"])
            .stdin(Stdio::null());
        cmd
    }

    fn run(&self, args: &[&str]) -> String {
        let out = self.command().args(args).output().expect("tmux runs");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Types `text` literally.
    fn type_text(&self, text: &str) {
        self.run(&["send-keys", "-t", "t", "-l", text]);
    }

    /// Presses keys by tmux's names (`Enter`, `C-c`, `C-]`).
    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "t"];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    /// Types a line and presses Enter.
    fn line(&self, text: &str) {
        self.type_text(text);
        self.keys(&["Enter"]);
    }

    /// The screen and its scrollback, as text.
    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-J", "-S", "-1000", "-t", "t"])
    }

    /// Waits until some screen line, trimmed, is exactly `wanted`; returns the screen.
    #[track_caller]
    fn wait_for_line(&self, wanted: &str) -> String {
        self.wait_for(|screen| screen.lines().any(|l| l.trim() == wanted), wanted)
    }

    /// Waits until `test` holds for the screen (the screen cannot be waited for otherwise).
    #[track_caller]
    fn wait_for(&self, test: impl Fn(&str) -> bool, what: &str) -> String {
        let deadline = Instant::now() + SCREEN_WAIT;
        loop {
            let screen = self.screen();
            if test(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "{what:?} not on the screen within {SCREEN_WAIT:?}:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The pane's size as `stty size` prints it: `rows cols`.
    fn pane_size(&self) -> String {
        self.run(&[
            "display-message",
            "-p",
            "-t",
            "t",
            "#{pane_height} #{pane_width}",
        ])
        .trim()
        .to_string()
    }

    /// How many screen lines, trimmed, are exactly `wanted`.
    fn count_lines(&self, wanted: &str) -> usize {
        self.screen().lines().filter(|l| l.trim() == wanted).count()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        // Only this test's server, by its socket.
        let _ = self
            .command()
            .arg("kill-server")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// How many screen lines end with the trapper's `int=2`.
fn interrupts(screen: &str) -> usize {
    screen
        .lines()
        .filter(|l| l.trim_end().ends_with("int=2"))
        .count()
}

/// The running processes of the agent whose command is `command`.
fn running(server: &ServerProc, command: &str) -> Vec<Value> {
    let reply = request(&server.addr, "GET", "/api/v0/processes/list", None, &[]);
    assert_eq!(reply.status, 200);
    reply.json()["processes"]
        .as_array()
        .expect("processes")
        .iter()
        .filter(|p| p["command"] == command && p["running"] == true)
        .cloned()
        .collect()
}

#[test]
fn exec_tty_then_detach_and_attach_in_tmux() {
    if !have_tmux() {
        return;
    }
    let server = serve(
        &["--listen", "127.0.0.1:0", "--env", &format!("PS1={PROMPT}")],
        &[],
    );
    let tmux = Tmux::start(&server.addr.url(), 30, 100);
    tmux.wait_for(|s| s.contains("outer>"), "the outer prompt");

    // exec --tty: the local terminal is the process's.
    tmux.line(&format!("{} exec --tty -- sh -i", binary()));
    tmux.wait_for(|s| s.contains(PROMPT), "the remote prompt");
    // Typed keys reach it and its output comes back (the sum is not in what was typed).
    tmux.line("echo sum=$((20+22)); test -t 0 && echo on-a-terminal");
    tmux.wait_for_line("sum=42");
    tmux.wait_for_line("on-a-terminal");

    // The terminal's size is the pane's, and follows it.
    tmux.line("stty size");
    tmux.wait_for_line(&tmux.pane_size());
    tmux.run(&["resize-window", "-t", "t", "-x", "120", "-y", "40"]);
    let resized = tmux.pane_size();
    assert_ne!(resized, "30 100");
    let deadline = Instant::now() + SCREEN_WAIT;
    loop {
        // The resize travels through the agent while the shell waits; ask again until the
        // new size shows (a screen cannot be waited for otherwise).
        tmux.line("stty size");
        std::thread::sleep(Duration::from_millis(300));
        if tmux.count_lines(&resized) > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the resize never reached the process:\n{}",
            tmux.screen()
        );
    }

    // Ctrl-C is a byte in raw mode; the process's terminal turns it into SIGINT for its
    // foreground group: a foreground child that traps it reports it.
    tmux.line(TRAPPER);
    tmux.wait_for_line("waiting0");
    tmux.keys(&["C-c"]);
    // (After the `^C` that the terminal echoes.)
    tmux.wait_for(|s| interrupts(s) == 1, "int=2");
    // And this command is still attached, the shell still there.
    tmux.line("X=kept; echo still=$((3*3))");
    tmux.wait_for_line("still=9");

    // Detach: Ctrl-] then d. The process keeps running, and the way back is printed.
    tmux.keys(&["C-]", "d"]);
    let screen = tmux.wait_for(|s| s.contains("procwarden attach "), "the reattach hint");
    let shells = running(&server, "sh -i");
    assert_eq!(shells.len(), 1, "{shells:?}");
    let id = shells[0]["id"].as_str().expect("id").to_string();
    assert!(
        screen.contains(&format!("procwarden attach {id}")),
        "{screen}"
    );
    tmux.line("echo outer=$((5+5))");
    tmux.wait_for_line("outer=10");

    // Reattach in a pane of another size: the same shell, its state kept.
    tmux.run(&["resize-window", "-t", "t", "-x", "90", "-y", "25"]);
    let size = tmux.pane_size();
    tmux.line(&format!("{} attach {id}", binary()));
    tmux.line("echo again=$((7*6)) $X; stty size");
    tmux.wait_for_line("again=42 kept");
    tmux.wait_for_line(&size);
    // The kept output was shown again on attach: count the interrupts seen so far.
    let seen = interrupts(&tmux.screen());
    let waiting = tmux.count_lines("waiting0");
    tmux.line(TRAPPER);
    tmux.wait_for(
        |s| s.lines().filter(|l| l.trim() == "waiting0").count() > waiting,
        "the second trapper",
    );
    tmux.keys(&["C-c"]);
    tmux.wait_for(|s| interrupts(s) > seen, "another int=2");

    // The process exits: attach exits with its status, and the outer shell is back.
    let outer_prompts = tmux.screen().matches("outer>").count();
    tmux.line("exit 7");
    tmux.wait_for(
        |s| s.matches("outer>").count() > outer_prompts,
        "the outer prompt again",
    );
    tmux.line("echo status=$?");
    tmux.wait_for_line("status=7");
    assert!(running(&server, "sh -i").is_empty());
}

#[test]
fn input_sends_text_stdin_and_the_close() {
    let server = serve(&["--listen", "127.0.0.1:0"], &[]);
    let url = server.addr.url();
    let started = start(
        &server.addr,
        &serde_json::json!({"command": "cat", "stdin": "pipe"}),
        &[],
    );
    let id = started["id"].as_str().expect("id").to_string();
    // TEXT as it is; --json shows the answer.
    let (code, out, err) = run_to_end(&["--url", &url, "--json", "input", &id, "one\n"], &[]);
    assert_eq!(code, 0, "{err}");
    let answer: Value = serde_json::from_str(out.trim()).expect("JSON");
    assert_eq!(answer["queued_bytes"], 4, "{answer}");
    // `-`: stdin as it comes; a prefix of the ID will do.
    let mut piped = Command::new(binary())
        .args(["--url", &url, "input", &id[..8], "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("procwarden input runs");
    {
        use std::io::Write as _;
        let mut stdin = piped.stdin.take().expect("stdin");
        stdin.write_all(b"two\nthree").expect("write");
    }
    let done = piped.wait_with_output().expect("input ends");
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert!(done.stdout.is_empty());
    // After `--`, text that looks like an option; then --close alone ends the input.
    let (code, _, err) = run_to_end(&["--url", &url, "input", &id, "--", "--four"], &[]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run_to_end(&["--url", &url, "input", &id, "--close"], &[]);
    assert_eq!(code, 0, "{err}");
    let last = wait_exit(&server.addr, &id);
    assert_eq!(last["output"], "one\ntwo\nthree--four", "{last}");
    assert_eq!(last["exit_code"], 0);
    // The input is closed now: the agent's 409, one line, exit 1.
    let (code, _, err) = run_to_end(&["--url", &url, "input", &id, "more"], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("has no open input"), "{err}");
    // A usage error names what is missing.
    let (code, _, err) = run_to_end(&["--url", &url, "input", &id], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("TEXT"), "{err}");
}
