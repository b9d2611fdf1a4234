//! How the manager behaves in hostile hosts: a host that ignores SIGCHLD, and a host that dies
//! without closing the manager. Each case runs in a fresh copy of this test binary (started
//! with an environment variable that selects the helper role), so that process-wide state and a
//! SIGKILL stay away from the other tests.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use common::{dead, eventually, helper_args};
use procwarden::{Command, Manager, OutputQuery};

const ROLE: &str = "PROCWARDEN_TEST_HELPER";
const LONG: Duration = Duration::from_secs(20);

/// A command line that reruns this test binary as a helper for `test`.
fn helper(test: &str, role: &str) -> std::process::Command {
    let exe = std::env::current_exe().expect("test binary");
    let mut cmd = std::process::Command::new(exe);
    cmd.args(helper_args(test)).env(ROLE, role);
    cmd
}

/// The helper role this process was started for, if any.
fn role() -> Option<String> {
    std::env::var(ROLE).ok()
}

#[test]
#[ignore = "helper: runs only when started by ignored_sigchld_still_gets_exits"]
fn helper_ignored_sigchld() {
    if role().as_deref() != Some("sigchld") {
        return;
    }
    // Make sure the host really ignores SIGCHLD (bit 17 of SigIgn), or the test proves nothing.
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    let ignored = status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .expect("SigIgn");
    assert!(
        ignored & (1 << (17 - 1)) != 0,
        "SIGCHLD is not ignored: {ignored:x}"
    );
    let manager = Manager::new().expect("manager");
    for cmd in ["exit 5", "echo out", "sleep 0.2"] {
        let started = manager.start(Command::shell(cmd)).expect("start");
        let out = manager
            .output(&started.id, None, OutputQuery::until_exit(LONG))
            .expect("output");
        let exit = out.exit.as_ref().map(procwarden::api::exit_code);
        println!(
            "RESULT {cmd:?} running={} code={exit:?} output={:?}",
            out.running, out.output
        );
    }
    manager.close();
}

#[test]
fn ignored_sigchld_still_gets_exits() {
    // coreutils' env sets SIGCHLD to ignored, and an ignored signal stays ignored across exec.
    let inner = helper("helper_ignored_sigchld", "sigchld");
    let mut cmd = std::process::Command::new("env");
    cmd.arg("--ignore-signal=CHLD")
        .arg(inner.get_program())
        .args(inner.get_args())
        .env(ROLE, "sigchld");
    let out = cmd.output().expect("helper runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "helper failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Children reap themselves, so their status is lost: exit code -1, but never a hang.
    for line in [
        "RESULT \"exit 5\" running=false code=Some(-1) output=\"\"",
        "RESULT \"echo out\" running=false code=Some(-1) output=\"out\\n\"",
        "RESULT \"sleep 0.2\" running=false code=Some(-1) output=\"\"",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
}

#[test]
#[ignore = "helper: runs only when started by a parent_death test"]
fn helper_parent_death() {
    let portable = match role().as_deref() {
        Some("pdeath-clone") => false,
        Some("pdeath-fork") => true,
        _ => return,
    };
    let manager = Manager::builder()
        .portable_spawn(portable)
        .build()
        .expect("manager");
    let started = manager.start(Command::shell("sleep 60")).expect("start");
    println!("PID {}", started.pid);
    // Wait to be killed; bounded so a broken parent test cannot leave this running.
    std::thread::sleep(Duration::from_secs(60));
}

fn parent_death_leaves_no_child(role: &str) {
    let mut child = helper("helper_parent_death", role)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("helper starts");
    let stdout = child.stdout.take().expect("stdout");
    let pid: i32 = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        // libtest may print "test name ... " on the same line first.
        .find_map(|l| l.split("PID ").nth(1).and_then(|p| p.trim().parse().ok()))
        .expect("the helper reports its child's pid");
    assert!(!dead(pid), "the child should run while the helper lives");
    child.kill().expect("SIGKILL the helper");
    child.wait().expect("reap the helper");
    assert!(
        eventually(LONG, || dead(pid)),
        "{role}: child {pid} outlived its SIGKILLed parent"
    );
}

#[test]
fn parent_death_kills_children_clone_spawn() {
    parent_death_leaves_no_child("pdeath-clone");
}

#[test]
fn parent_death_kills_children_fork_spawn() {
    parent_death_leaves_no_child("pdeath-fork");
}
