//! What the CLI tells people, checked by the programs that read it: the completion scripts
//! loaded by real bash, zsh and fish, the man page rendered by man and groff, and the README's
//! Quick start run as written against a real `procwarden serve`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use common::http::{binary, serve};
use common::{OwnedGroups, dead, eventually};

/// Whether `program` runs (`program --version` or the given probe). `None` (the test is
/// skipped with a message) when it is missing and `CI` is not set; under CI a missing program
/// fails the test (`.ci/run` installs each of them).
fn require(program: &str, probe: &[&str]) -> Option<()> {
    let found = Command::new(program)
        .args(probe)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return Some(());
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{program} is not installed; CI must run this test (.ci/run installs it)"
    );
    eprintln!("SKIPPED: {program} is not installed");
    None
}

/// Runs `procwarden ARGS` and returns its stdout (asserting exit 0).
fn procwarden(args: &[&str]) -> String {
    let out = Command::new(binary())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("procwarden runs");
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// A scratch directory with `procwarden` on it (a link to the binary under test, for the
/// scripts that call it by name) and the completion scripts written out.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("procwarden-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        std::os::unix::fs::symlink(binary(), dir.join("procwarden")).expect("link");
        for shell in ["bash", "zsh", "fish"] {
            std::fs::write(
                dir.join(format!("procwarden.{shell}")),
                procwarden(&["completions", shell]),
            )
            .expect("script written");
        }
        Scratch(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// `shell -c SCRIPT` with the scratch directory first on `PATH`: (exit code, stdout,
    /// stderr).
    fn shell(&self, shell: &str, script: &str) -> (Option<i32>, String, String) {
        let path = format!(
            "{}:{}",
            self.0.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let out = Command::new(shell)
            .args(["-c", script])
            .env("PATH", path)
            .env_remove("PROCWARDEN_URL")
            .env_remove("PROCWARDEN_TOKEN")
            .stdin(Stdio::null())
            .output()
            .expect("the shell runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What bash's completion function offers for `words` (the last one being completed).
fn bash_complete(scratch: &Scratch, words: &[&str]) -> Vec<String> {
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let script = format!(
        "source '{}' && COMP_WORDS=({}) && COMP_CWORD={} && _procwarden && printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        scratch.path("procwarden.bash").display(),
        quoted.join(" "),
        words.len() - 1
    );
    let (code, stdout, stderr) = scratch.shell("bash", &script);
    assert_eq!(code, Some(0), "{words:?}: {stderr}");
    assert_eq!(stderr, "", "{words:?}");
    stdout.lines().map(str::to_string).collect()
}

#[test]
fn the_bash_completion_loads_and_completes() {
    let scratch = Scratch::new("bash");
    let (code, stdout, stderr) = scratch.shell(
        "bash",
        &format!(
            "source '{}' && complete -p procwarden",
            scratch.path("procwarden.bash").display()
        ),
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, "complete -F _procwarden procwarden\n");
    assert_eq!(bash_complete(&scratch, &["procwarden", "ex"]), ["exec"]);
    assert_eq!(
        bash_complete(&scratch, &["procwarden", "--url", "http://h:1", "o"]),
        ["output"]
    );
    assert_eq!(
        bash_complete(&scratch, &["procwarden", "exec", "--det"]),
        ["--detach-on-interrupt"]
    );
    assert_eq!(
        bash_complete(&scratch, &["procwarden", "completions", "f"]),
        ["fish"]
    );
    assert_eq!(
        bash_complete(&scratch, &["procwarden", "kill", "-s", "ter"]),
        ["terminate"]
    );
    // Directories for --workdir.
    let dirs = bash_complete(&scratch, &["procwarden", "exec", "--workdir", "/"]);
    assert!(dirs.iter().any(|d| d == "/tmp"), "{dirs:?}");
    // Process IDs from the agent on the line.
    let server = serve(&["--listen", "127.0.0.1:0"], &[]);
    let url = server.addr.url();
    let started = procwarden(&["--url", &url, "exec", "--background", "--", "sleep 30"]);
    let id = started.trim().to_string();
    let info: Value =
        serde_json::from_str(&procwarden(&["--url", &url, "--json", "ps"])).expect("ps --json");
    let pid = info["processes"][0]["pid"].as_i64().expect("pid") as i32;
    let _owned = OwnedGroups(vec![pid]);
    assert_eq!(
        bash_complete(&scratch, &["procwarden", "--url", &url, "kill", &id[..3]]),
        std::slice::from_ref(&id)
    );
    procwarden(&["--url", &url, "kill", &id, "-9"]);
    assert!(eventually(std::time::Duration::from_secs(5), || dead(pid)));
}

#[test]
fn the_zsh_completion_loads() {
    let Some(()) = require("zsh", &["-c", "true"]) else {
        return;
    };
    let scratch = Scratch::new("zsh");
    let file = scratch.path("procwarden.zsh");
    let (code, _, stderr) = scratch.shell("zsh", &format!("zsh -n '{}'", file.display()));
    assert_eq!(code, Some(0), "syntax: {stderr}");
    let (code, stdout, stderr) = scratch.shell(
        "zsh",
        &format!(
            "autoload -Uz compinit && compinit -u -D && source '{}' && print -r -- $_comps[procwarden]",
            file.display()
        ),
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, "_procwarden\n", "{stderr}");
}

#[test]
fn the_fish_completion_loads_and_completes() {
    let Some(()) = require("fish", &["--version"]) else {
        return;
    };
    let scratch = Scratch::new("fish");
    let file = scratch.path("procwarden.fish");
    let (code, _, stderr) = scratch.shell("fish", &format!("fish -n '{}'", file.display()));
    assert_eq!(code, Some(0), "syntax: {stderr}");
    let complete = |line: &str| -> Vec<String> {
        let (code, stdout, stderr) = scratch.shell(
            "fish",
            &format!("source '{}'; complete -C '{line}'", file.display()),
        );
        assert_eq!(code, Some(0), "{line}: {stderr}");
        stdout
            .lines()
            .map(|l| l.split('\t').next().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(complete("procwarden ex"), ["exec"]);
    assert_eq!(
        complete("procwarden exec --detach"),
        ["--detach-on-interrupt"]
    );
    assert_eq!(complete("procwarden completions z"), ["zsh"]);
}

#[test]
fn the_man_page_renders() {
    let page = procwarden(&["manpage"]);
    let Some(()) = require("groff", &["--version"]) else {
        return;
    };
    // groff with every warning: none.
    let mut groff = Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("groff runs");
    std::io::Write::write_all(&mut groff.stdin.take().expect("stdin"), page.as_bytes())
        .expect("page written");
    let out = groff.wait_with_output().expect("groff ends");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "groff warnings");
    // man, as a person reads it.
    let Some(()) = require("man", &["--version"]) else {
        return;
    };
    let file = std::env::temp_dir().join(format!("procwarden-{}.1", std::process::id()));
    std::fs::write(&file, &page).expect("page");
    let out = Command::new("man")
        .arg("-l")
        .arg(&file)
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .env("LC_ALL", "C.UTF-8")
        .stdin(Stdio::null())
        .output()
        .expect("man runs");
    let _ = std::fs::remove_file(&file);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("PROCWARDEN(1)"), "{text}");
    for needle in [
        "procwarden - a process runner for AI agents",
        "--detach-on-interrupt",
        "procwarden kill ID... [--signal SIGNAL | -s SIGNAL | -SIGNAL]",
        "EXIT STATUS",
    ] {
        let plain: String = text.replace(['\u{2010}', '\u{2212}'], "-");
        assert!(plain.contains(needle), "{needle}: {text}");
    }
}

// -------------------------------------------------------------------------------------------
// The README's Quick start, as written

/// The shell block of the README's `## Quick start` section.
fn quick_start() -> Vec<String> {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    let section = readme
        .split("\n## ")
        .find(|s| s.starts_with("Quick start"))
        .expect("a Quick start section");
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("a sh block in the Quick start");
    block.lines().map(str::to_string).collect()
}

/// Placeholder ids (`0b6f…`) in `text` replaced by the ids they stand for.
fn substitute(text: &str, ids: &[(String, String)]) -> String {
    let mut text = text.to_string();
    for (placeholder, id) in ids {
        text = text.replace(placeholder, id);
    }
    text
}

/// Compares an answer with the one the README shows: the same fields; the same values except
/// `pid` (any number).
fn assert_answer(command: &str, actual: &Value, shown: &Value) {
    let (Some(actual_fields), Some(shown_fields)) = (actual.as_object(), shown.as_object()) else {
        panic!("{command}: {actual} against {shown}");
    };
    let mut keys: Vec<&String> = actual_fields.keys().collect();
    let mut shown_keys: Vec<&String> = shown_fields.keys().collect();
    keys.sort();
    shown_keys.sort();
    assert_eq!(keys, shown_keys, "{command}: {actual} against {shown}");
    for (key, value) in shown_fields {
        if key == "pid" {
            assert!(actual[key].is_i64(), "{command}: {actual}");
        } else {
            assert_eq!(&actual[key], value, "{command}: {key} in {actual}");
        }
    }
}

#[test]
fn the_quick_start_runs_as_written() {
    let Some(()) = require("curl", &["--version"]) else {
        return;
    };
    let lines = quick_start();
    // The first line starts the server as the README says; the test runs the same binary.
    assert!(
        lines[0].starts_with("cargo run --release -- serve "),
        "{:?}",
        lines[0]
    );
    let documented = "http://127.0.0.1:7717";
    assert!(lines[0].contains(&format!("listening on {documented}")));
    let server = serve(&["--listen", "127.0.0.1:0"], &[]);
    let url = server.addr.url();
    let mut prelude = String::new();
    let mut ids: Vec<(String, String)> = Vec::new();
    let mut last: Option<(String, Value)> = None;
    let mut pids = OwnedGroups(Vec::new());
    let mut ran = 0;
    for line in &lines[1..] {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(shown) = line.strip_prefix("# ") {
            // The answer the README shows for the command before it.
            let (command, actual) = last.take().expect("an answer follows a command");
            let raw: Value = serde_json::from_str(shown)
                .unwrap_or_else(|e| panic!("the README's answer {shown:?} is not JSON: {e}"));
            // A placeholder id names the id of this answer from now on.
            if let (Some(placeholder), Some(id)) = (raw["id"].as_str(), actual["id"].as_str()) {
                ids.push((placeholder.to_string(), id.to_string()));
            }
            let shown: Value = serde_json::from_str(&substitute(shown, &ids)).expect("still JSON");
            assert_answer(&command, &actual, &shown);
            continue;
        }
        let line = substitute(line, &ids).replace(documented, &url);
        if line
            .split('#')
            .next()
            .unwrap_or_default()
            .trim()
            .contains('=')
            && !line.contains(' ')
        {
            prelude.push_str(&line);
            prelude.push('\n');
            continue;
        }
        assert!(
            !line.contains('…'),
            "a placeholder nothing answered: {line}"
        );
        let out = Command::new("sh")
            .args(["-c", &format!("{prelude}{line}")])
            .stdin(Stdio::null())
            .output()
            .expect("sh runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{line}: {out:?}");
        let actual: Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("{line}: the answer {stdout:?} is not JSON: {e}"));
        // Every command of the Quick start succeeds: no error answer.
        assert!(
            actual.get("message").is_none() || line.contains("/signal"),
            "{line}: {actual}"
        );
        if let Some(pid) = actual["pid"].as_i64() {
            pids.0.push(pid as i32);
        }
        if let Some(message) = actual["message"].as_str() {
            assert!(message.starts_with("Signal "), "{line}: {actual}");
        }
        last = Some((line, actual));
        ran += 1;
    }
    assert!(ran >= 4, "the Quick start ran {ran} commands");
}

// -------------------------------------------------------------------------------------------
// Completion typed with Tab in a real terminal (tmux), for zsh and fish

/// A tmux server of the test's own (`-L NAME`), killed at the end.
struct Tmux(String);

impl Tmux {
    fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .args(["-L", &self.0])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("tmux runs")
    }

    /// The screen, once it contains `needle` (polled: a screen has no event to wait on), or
    /// as it is after the deadline.
    fn screen_with(&self, needle: &str) -> String {
        let mut screen = String::new();
        eventually(std::time::Duration::from_secs(30), || {
            let out = self.run(&["capture-pane", "-p", "-t", "sh"]);
            screen = String::from_utf8_lossy(&out.stdout).into_owned();
            screen.contains(needle)
        });
        screen
    }

    /// The screen, once one of its lines ends with `text` (the cursor's line after a
    /// completion; tmux trims trailing blanks).
    fn line_ending(&self, text: &str) -> Option<String> {
        let mut screen = String::new();
        let found = eventually(std::time::Duration::from_secs(30), || {
            let out = self.run(&["capture-pane", "-p", "-t", "sh"]);
            screen = String::from_utf8_lossy(&out.stdout).into_owned();
            screen.lines().any(|l| l.trim_end().ends_with(text))
        });
        found.then_some(screen.clone()).or_else(|| {
            eprintln!("screen: {screen}");
            None
        })
    }

    fn type_line(&self, text: &str) {
        assert!(
            self.run(&["send-keys", "-t", "sh", "-l", text])
                .status
                .success()
        );
        assert!(
            self.run(&["send-keys", "-t", "sh", "Enter"])
                .status
                .success()
        );
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// Starts `shell` in tmux, loads the completion with `setup`, types `line` and Tab, and
/// returns whether the cursor's line then ends with `expected`.
fn tab_in_terminal(shell: &[&str], setup: &str, line: &str, expected: &str) -> bool {
    let scratch = Scratch::new(&format!("tab-{}", shell[0]));
    let tmux = Tmux(format!(
        "procwarden-tab-{}-{}",
        shell[0],
        std::process::id()
    ));
    let path = format!(
        "{}:{}",
        scratch.0.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let started = tmux.run(
        &[
            &[
                "new-session",
                "-d",
                "-s",
                "sh",
                "-x",
                "150",
                "-y",
                "20",
                "env",
            ][..],
            &[&format!("PATH={path}"), "TERM=xterm"],
            shell,
        ]
        .concat(),
    );
    assert!(started.status.success(), "{started:?}");
    let setup = setup.replace(
        "FILE",
        &scratch
            .path(&format!("procwarden.{}", shell[0]))
            .display()
            .to_string(),
    );
    // The quotes keep the typed line itself from looking like the answer.
    tmux.type_line(&format!("{setup}; echo loaded''-ok"));
    let screen = tmux.screen_with("\nloaded-ok\n");
    assert!(screen.contains("\nloaded-ok\n"), "{screen}");
    assert!(
        tmux.run(&["send-keys", "-t", "sh", "-l", line])
            .status
            .success()
    );
    assert!(tmux.run(&["send-keys", "-t", "sh", "Tab"]).status.success());
    tmux.line_ending(expected).is_some()
}

#[test]
fn zsh_completes_with_tab_in_a_terminal() {
    let (Some(()), Some(())) = (require("zsh", &["-c", "true"]), require("tmux", &["-V"])) else {
        return;
    };
    assert!(tab_in_terminal(
        &["zsh", "-f"],
        "autoload -Uz compinit && compinit -u -D && source FILE",
        "procwarden --url http://127.0.0.1:1 ex",
        " procwarden --url http://127.0.0.1:1 exec",
    ));
}

#[test]
fn fish_completes_with_tab_in_a_terminal() {
    let (Some(()), Some(())) = (require("fish", &["--version"]), require("tmux", &["-V"])) else {
        return;
    };
    assert!(tab_in_terminal(
        &["fish", "--no-config"],
        "source FILE",
        "procwarden exec --detach-on",
        " procwarden exec --detach-on-interrupt",
    ));
}
