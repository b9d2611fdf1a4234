//! Containment over real sockets, on this machine's cgroup2 hierarchy: every process in a
//! cgroup of its own under a parent each test makes and removes (`common::cgroup`). Escapees
//! (`setsid`, double forks) die by kill, timeout, close, shutdown and the server's SIGKILL; the
//! subreaper leaves no zombie; a dead predecessor's cgroups are swept. The limits (`pids`,
//! `memory_bytes`, `cpu_percent`) are tested where the hierarchy has their controllers, and
//! their 400 where it does not (this build machine: see `.ci/vm-limits.sh`, which runs the
//! tests with "limit" in their name on a kernel that has them).
//!
//! Under `CI=true` these fail instead of skipping where no cgroup2 hierarchy is writable.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::cgroup::{TestCgroup, members};
use common::http::{
    Addr, ServerProc, binary, id_of, ok_json, output, request, serve, serve_command, signal, start,
    wait_for_text,
};
use common::{dead, eventually, zombies_of};
use serde_json::{Value, json};

const LONG: Duration = Duration::from_secs(20);
/// The escapees of [`ESCAPE`]: one in a session of its own, one orphaned by a double fork,
/// each ignoring SIGTERM so that only SIGKILL (or the cgroup) ends them.
const ESCAPE: &str = "setsid sh -c 'trap \"\" TERM; exec sleep 300' & \
                      (sh -c 'trap \"\" TERM; exec sleep 301' &); echo ready; sleep 400";

/// A server whose cgroup parent is `cgroup`, with `extra` flags.
fn serve_in(cgroup: &TestCgroup, extra: &[&str]) -> ServerProc {
    let mut args = vec!["--listen", "127.0.0.1:0", "--cgroup", cgroup.arg()];
    args.extend_from_slice(extra);
    serve(&args, &[])
}

/// `POST start` with `body`, the reply whatever its status.
fn start_reply(addr: &Addr, body: &Value) -> common::http::Reply {
    request(
        addr,
        "POST",
        "/api/v0/processes/start",
        Some(&body.to_string()),
        &[],
    )
}

fn info(addr: &Addr, id: &str) -> Value {
    let list = ok_json(
        &request(addr, "GET", "/api/v0/processes/list?limit=1000", None, &[]),
        "list",
    );
    list["processes"]
        .as_array()
        .expect("processes")
        .iter()
        .find(|p| p["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("{id} not listed: {list}"))
}

/// Starts [`ESCAPE`], waits until both escapees run, and returns the id and every pid under
/// `cgroup` (leader, shells, sleeps; those of earlier starts there too).
fn start_escapees(server: &ServerProc, cgroup: &TestCgroup, body: Value) -> (String, Vec<i32>) {
    // Escapees of earlier starts under the same parent are already there: wait for two more.
    let before = sleeps_among(&members(&cgroup.path));
    let started = start(&server.addr, &body, &[]);
    let id = id_of(&started);
    wait_for_text(&server.addr, &id, "ready");
    assert_eq!(info(&server.addr, &id)["contained"], json!(true));
    let mut pids = Vec::new();
    assert!(
        eventually(LONG, || {
            pids = members(&cgroup.path);
            sleeps_among(&pids) >= before + 2
        }),
        "both escapees start: {pids:?}"
    );
    (id, pids)
}

/// How many of `pids` run `sleep 300` or `sleep 301`.
fn sleeps_among(pids: &[i32]) -> usize {
    pids.iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.starts_with(b"sleep\x00300") || c.starts_with(b"sleep\x00301"))
        })
        .count()
}

fn assert_all_dead(pids: &[i32], limit: Duration, what: &str) {
    assert!(
        eventually(limit, || pids.iter().all(|&p| dead(p))),
        "{what}: still alive after {limit:?}: {:?}",
        pids.iter().filter(|&&p| !dead(p)).collect::<Vec<_>>()
    );
}

#[test]
fn kill_reaches_setsid_and_double_fork_escapees() {
    let Some(cgroup) = TestCgroup::new("kill") else {
        return;
    };
    let server = serve_in(&cgroup, &[]);
    let (id, pids) = start_escapees(&server, &cgroup, json!({ "command": ESCAPE }));
    assert_eq!(signal(&server.addr, &id, &json!({"signal": "kill"})), 200);
    let out = output(&server.addr, &id, "wait=true&timeout_ms=20000");
    assert_eq!(out["running"], json!(false), "{out}");
    assert_all_dead(&pids, Duration::from_secs(1), "after kill");
    // The cgroup's emptying is the kernel's event: members_alive goes, then a signal is 409.
    assert!(eventually(LONG, || info(&server.addr, &id)
        .get("members_alive")
        .is_none()));
    assert_eq!(signal(&server.addr, &id, &json!({"signal": "kill"})), 409);
    // The process's cgroup is removed once empty; the instance stays until the server ends.
    assert!(eventually(LONG, || cgroup
        .children()
        .iter()
        .all(|instance| common::cgroup::subdirs(instance).is_empty())));
}

/// More contained processes at once than this user may have inotify instances (128 by
/// default): each must start, be contained, and end. (An inotify instance per cgroup made the
/// 129th start fail with "Too many open files".)
#[test]
fn more_contained_processes_than_inotify_instances_all_start() {
    let Some(cgroup) = TestCgroup::new("many") else {
        return;
    };
    let instances: usize = std::fs::read_to_string("/proc/sys/fs/inotify/max_user_instances")
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(128);
    let count = (instances + 20).clamp(150, 600);
    let server = serve_in(&cgroup, &[]);
    let mut ids = Vec::with_capacity(count);
    for i in 0..count {
        let body = json!({ "command": "exec sleep 60" });
        let reply = start_reply(&server.addr, &body);
        assert_eq!(
            reply.status,
            200,
            "start {i} of {count}: {:?}",
            reply.json()
        );
        ids.push(id_of(&reply.json()));
    }
    let last = ids.last().expect("started");
    assert_eq!(info(&server.addr, last)["contained"], json!(true));
    for id in &ids {
        assert_eq!(signal(&server.addr, id, &json!({"signal": "kill"})), 200);
    }
    for id in &ids {
        let out = output(&server.addr, id, "wait=true&timeout_ms=20000");
        assert_eq!(out["running"], json!(false), "{out}");
    }
    // Every process's cgroup empties (the kernel's event reached each watcher) and goes.
    assert!(
        eventually(LONG, || cgroup
            .children()
            .iter()
            .all(|instance| common::cgroup::subdirs(instance).is_empty())),
        "every process cgroup removed"
    );
}

#[test]
fn a_timeout_reaches_escapees_that_ignore_sigterm() {
    let Some(cgroup) = TestCgroup::new("timeout") else {
        return;
    };
    let server = serve_in(&cgroup, &[]);
    let (id, pids) = start_escapees(
        &server,
        &cgroup,
        json!({ "command": ESCAPE, "timeout_ms": 1500 }),
    );
    let out = output(&server.addr, &id, "wait=true&timeout_ms=20000");
    assert_eq!(out["running"], json!(false), "{out}");
    assert_eq!(out["timed_out"], json!(true), "{out}");
    // SIGTERM went to every member; the escapees ignore it and die by the SIGKILL that
    // follows the kill grace (2 s).
    assert_all_dead(&pids, Duration::from_secs(10), "after the timeout");
}

#[test]
fn terminate_reaches_every_member_and_a_member_left_after_the_leader_is_signalled() {
    let Some(cgroup) = TestCgroup::new("term") else {
        return;
    };
    let server = serve_in(&cgroup, &[]);
    // Leader exits at once; its setsid'd child (not ignoring SIGTERM) lives on.
    let started = start(
        &server.addr,
        &json!({"command": "setsid sleep 300 > /dev/null 2>&1 & echo ready"}),
        &[],
    );
    let id = id_of(&started);
    let out = output(&server.addr, &id, "wait=true&timeout_ms=20000");
    assert_eq!(out["running"], json!(false), "{out}");
    let mut pids = Vec::new();
    assert!(eventually(LONG, || {
        pids = members(&cgroup.path);
        sleeps_among(&pids) == 1
    }));
    assert_eq!(info(&server.addr, &id)["members_alive"], json!(true));
    assert_eq!(
        signal(&server.addr, &id, &json!({"signal": "terminate"})),
        200
    );
    assert_all_dead(&pids, Duration::from_secs(5), "after terminate");
    assert!(eventually(LONG, || info(&server.addr, &id)
        .get("members_alive")
        .is_none()));
}

#[test]
fn a_graceful_shutdown_reaches_escapees_and_removes_its_cgroups() {
    let Some(cgroup) = TestCgroup::new("shutdown") else {
        return;
    };
    let mut server = serve_in(&cgroup, &[]);
    let (_, pids) = start_escapees(&server, &cgroup, json!({ "command": ESCAPE }));
    let (status, _) = server
        .terminate_within(LONG)
        .expect("the server shuts down");
    assert!(status.success(), "{status:?}");
    assert_all_dead(&pids, Duration::from_secs(1), "after shutdown");
    assert!(
        cgroup.children().is_empty(),
        "instance removed: {:?}",
        cgroup.children()
    );
}

#[test]
fn nothing_outlives_a_server_killed_with_sigkill() {
    let Some(cgroup) = TestCgroup::new("sigkill") else {
        return;
    };
    let mut server = serve_in(&cgroup, &[]);
    let mut all = Vec::new();
    for _ in 0..5 {
        let (_, pids) = start_escapees(&server, &cgroup, json!({ "command": ESCAPE }));
        all.extend(pids);
    }
    all.sort_unstable();
    all.dedup();
    assert!(sleeps_among(&all) >= 10, "{all:?}");
    server.kill_hard();
    // The keeper sees its pipe close and kills the instance's whole tree.
    assert_all_dead(&all, Duration::from_secs(1), "after the server's SIGKILL");
    assert!(members(&cgroup.path).is_empty());
}

#[test]
fn a_new_server_sweeps_a_dead_predecessors_cgroups() {
    let Some(cgroup) = TestCgroup::new("sweep") else {
        return;
    };
    // A live neighbour's instance is left alone.
    let neighbour = serve_in(&cgroup, &[]);
    let neighbours_instance = cgroup.children();
    assert_eq!(neighbours_instance.len(), 1, "{neighbours_instance:?}");
    // What a dead server (and its dead keeper) would leave: an instance directory named for
    // a pid that does not run, with a process directory holding a live process.
    let stale = cgroup.path.join("srv-999999999-1");
    std::fs::create_dir(&stale).expect("stale instance");
    let leftover_dir = stale.join("proc");
    std::fs::create_dir(&leftover_dir).expect("stale process cgroup");
    let mut leftover = Command::new("sleep").arg("300").spawn().expect("sleep");
    std::fs::write(leftover_dir.join("cgroup.procs"), leftover.id().to_string())
        .expect("into the stale cgroup");

    let mut cmd = Command::new(binary());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--cgroup", cgroup.arg()])
        .env_remove("PROCWARDEN_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("server");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("listening line");
    assert!(first.starts_with("listening on"), "{first}");
    let swept = rx
        .iter()
        .take(50)
        .find(|line| line.starts_with("procwarden: cgroups: removed"))
        .expect("the sweep is reported");
    assert!(
        swept.contains("removed 1 stale") && swept.contains("killing 1 process"),
        "{swept}"
    );
    let status = leftover.wait().expect("leftover reaped");
    assert!(!status.success(), "killed: {status:?}");
    assert!(!stale.exists(), "stale instance removed");
    assert!(
        neighbours_instance.iter().all(|d| d.exists()),
        "neighbour kept"
    );
    drop(neighbour);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn no_zombie_is_left_by_200_orphaned_grandchildren() {
    for contained in [true, false] {
        let cgroup = if contained {
            let Some(cgroup) = TestCgroup::new("zombies") else {
                continue;
            };
            Some(cgroup)
        } else {
            None
        };
        let server = match &cgroup {
            Some(c) => serve_in(c, &[]),
            None => serve(&["--listen", "127.0.0.1:0", "--cgroup", "off"], &[]),
        };
        // Each grandchild is orphaned at once (its parent subshell exits) and reparented to
        // the server, the child subreaper, which must reap it when it exits.
        // They leave the output pipe, so the process ends while they still run.
        let script = "i=0; while [ $i -lt 200 ]; do (sleep 2 >/dev/null 2>&1 &); \
                      i=$((i+1)); done; echo forked";
        let started = start(&server.addr, &json!({ "command": script }), &[]);
        let id = id_of(&started);
        let out = output(&server.addr, &id, "wait=true&timeout_ms=20000");
        assert_eq!(out["running"], json!(false), "{out}");
        let adopted = || {
            std::fs::read_dir("/proc")
                .map(|entries| {
                    entries
                        .flatten()
                        .filter(|e| {
                            std::fs::read_to_string(e.path().join("stat")).is_ok_and(|s| {
                                s.rsplit_once(") ")
                                    .and_then(|(_, rest)| rest.split(' ').nth(1))
                                    .is_some_and(|ppid| ppid == server.pid().to_string())
                            })
                        })
                        .count()
                })
                .unwrap_or(0)
        };
        let peak = adopted();
        assert!(
            peak > 1,
            "orphans are adopted by the server ({peak} children)"
        );
        assert!(
            eventually(LONG, || adopted() <= 1
                && zombies_of(server.pid()).is_empty()),
            "contained={contained}: zombies of the server: {:?}",
            zombies_of(server.pid())
        );
    }
}

#[test]
fn auto_uses_a_procwarden_child_of_the_servers_own_cgroup() {
    let Some(cgroup) = TestCgroup::new("auto") else {
        return;
    };
    // The server starts inside the test's cgroup, so auto creates `procwarden` there.
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        &format!(
            "echo $$ > {}/cgroup.procs && exec \"$0\" serve --listen 127.0.0.1:0 --cgroup auto",
            cgroup.arg()
        ),
        binary(),
    ])
    .env_remove("PROCWARDEN_TOKEN");
    let mut server = serve_command(cmd);
    let started = start(&server.addr, &json!({"command": "sleep 30"}), &[]);
    let id = id_of(&started);
    assert_eq!(info(&server.addr, &id)["contained"], json!(true));
    let parent = cgroup.path.join("procwarden");
    assert!(parent.is_dir(), "auto's parent");
    let pid = started["pid"].as_i64().expect("pid") as i32;
    assert!(members(&parent).contains(&pid), "the process is under it");
    if cgroup.has_controller("pids") {
        // cgroup v2 gives children controllers only from a cgroup without processes of its
        // own: the server moved itself into a leaf beside `procwarden`, and limits apply.
        let leaf = cgroup.path.join("procwarden-server");
        assert!(members(&leaf).contains(&server.pid()), "the server's leaf");
        let body = json!({"command": "exec sleep 30", "limits": {"pids": 20}});
        let id = id_of(&start(&server.addr, &body, &[]));
        let max = std::fs::read_dir(&parent)
            .expect("auto's parent")
            .flatten()
            .map(|instance| instance.path().join(&id).join("pids.max"))
            .find(|f| f.exists())
            .expect("the limited process's cgroup");
        assert_eq!(std::fs::read_to_string(max).expect("pids.max"), "20\n");
        assert_eq!(signal(&server.addr, &id, &json!({"signal": "kill"})), 200);
    }
    server.terminate_within(LONG).expect("shuts down");
}

#[test]
fn without_cgroups_nothing_is_marked_contained() {
    let server = serve(&["--listen", "127.0.0.1:0", "--cgroup", "off"], &[]);
    let started = start(&server.addr, &json!({"command": "true"}), &[]);
    let id = id_of(&started);
    let _ = output(&server.addr, &id, "wait=true&timeout_ms=20000");
    assert!(info(&server.addr, &id).get("contained").is_none());
}

/// The counter a looping process has printed so far (its output's byte count grows with it).
fn printed(addr: &Addr, id: &str) -> u64 {
    output(addr, id, "")["next_cursor"]
        .as_u64()
        .expect("next_cursor")
}

#[test]
fn stop_freezes_a_counter_loop_and_continue_thaws_it() {
    let cgroup = TestCgroup::new("freeze");
    let server = match &cgroup {
        Some(c) => serve_in(c, &[]),
        None => return,
    };
    // The counter runs in a child of the shell: a freeze stops the whole tree.
    let script = "sh -c 'i=0; while true; do i=$((i+1)); echo $i; sleep 0.02; done' & wait";
    let started = start(&server.addr, &json!({ "command": script }), &[]);
    let id = id_of(&started);
    wait_for_text(&server.addr, &id, "3\n");
    assert_eq!(signal(&server.addr, &id, &json!({"signal": "stop"})), 200);
    assert_eq!(info(&server.addr, &id)["stopped"], json!(true));
    // The freeze is asynchronous: once it has taken, the count stands still.
    let mut last = printed(&server.addr, &id);
    assert!(
        eventually(LONG, || {
            std::thread::sleep(Duration::from_millis(300));
            let now = printed(&server.addr, &id);
            let still = now == last;
            last = now;
            still
        }),
        "the counter stops"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(printed(&server.addr, &id), last, "still frozen");
    assert_eq!(
        signal(&server.addr, &id, &json!({"signal": "continue"})),
        200
    );
    assert!(info(&server.addr, &id).get("stopped").is_none());
    assert!(
        eventually(LONG, || printed(&server.addr, &id) > last),
        "the counter goes on"
    );
    assert!(
        info(&server.addr, &id)["cpu_ms"].is_u64(),
        "cpu_ms reported"
    );
    // A frozen process is still killed.
    assert_eq!(signal(&server.addr, &id, &json!({"signal": "stop"})), 200);
    assert_eq!(signal(&server.addr, &id, &json!({"signal": "kill"})), 200);
    let out = output(&server.addr, &id, "wait=true&timeout_ms=20000");
    assert_eq!(out["running"], json!(false), "{out}");
}

#[test]
fn without_cgroups_stop_and_continue_are_sigstop_and_sigcont_to_the_group() {
    let server = serve(&["--listen", "127.0.0.1:0", "--cgroup", "off"], &[]);
    let script = "i=0; while true; do i=$((i+1)); echo $i; sleep 0.02; done";
    let started = start(&server.addr, &json!({ "command": script }), &[]);
    let id = id_of(&started);
    let pid = started["pid"].as_i64().expect("pid") as i32;
    wait_for_text(&server.addr, &id, "3\n");
    assert_eq!(signal(&server.addr, &id, &json!({"signal": "stop"})), 200);
    assert_eq!(info(&server.addr, &id)["stopped"], json!(true));
    // `(pid, state, ppid)` of the group's live members (the leader leads it).
    let group = || {
        common::processes()
            .into_iter()
            .filter(|&(_, state, _, pgrp)| pgrp == pid && state != 'Z' && state != 'X')
            .map(|(p, state, ppid, _)| (p, state, ppid))
            .collect::<Vec<_>>()
    };
    // Every member stopped ('T'). A shell that vforked `sleep` (dash does) waits for the
    // child's exec in a killable sleep ('D'): a child stopped before its exec holds its parent
    // there until it continues, so such a parent counts as stopped too.
    let all_stopped = |members: &[(i32, char, i32)]| {
        !members.is_empty()
            && members.iter().all(|&(p, state, _)| {
                state == 'T'
                    || (state == 'D' && members.iter().any(|&(_, s, ppid)| ppid == p && s == 'T'))
            })
    };
    assert!(eventually(LONG, || all_stopped(&group())), "{:?}", group());
    assert_eq!(
        signal(&server.addr, &id, &json!({"signal": "continue"})),
        200
    );
    assert!(
        eventually(LONG, || group().iter().all(|&(_, state, _)| state != 'T')),
        "{:?}",
        group()
    );
    assert!(info(&server.addr, &id).get("stopped").is_none());
    assert!(info(&server.addr, &id).get("cpu_ms").is_none());
    assert_eq!(signal(&server.addr, &id, &json!({"signal": "kill"})), 200);
}

/// Starts `body`, which asks for a limit needing `controller`, on `server` (whose parent is
/// `cgroup`). Where `cgroup` offers the controller: the started process's id. Where it does not
/// (this build machine binds memory, pids and cpu to cgroup v1): checks the contract's 400 for
/// the limit `limit` and returns `None`. (`PROCWARDEN_EXPECT_CONTROLLERS` makes the second case
/// a failure: see `common::cgroup`.)
fn start_limited(
    server: &ServerProc,
    cgroup: &TestCgroup,
    controller: &str,
    limit: &str,
    body: &Value,
) -> Option<String> {
    let has = cgroup.has_controller(controller);
    let reply = start_reply(&server.addr, body);
    if has {
        return Some(id_of(&ok_json(&reply, &format!("start {body}"))));
    }
    assert_eq!(reply.status, 400, "{:?}", reply.json());
    assert_eq!(
        reply.json(),
        json!({"message": format!("Limit \"{limit}\" is not available on this host.")})
    );
    println!("no {controller} controller in this cgroup2 hierarchy: checked the 400 only");
    None
}

/// The final info of `id`: its exit waited for, then its cgroup's end (the accounting is read
/// then, and its directory removed), so that `cpu_ms`, `memory_peak_bytes` and `oom_killed`
/// are the ones it ends with.
fn final_info(server: &ServerProc, cgroup: &TestCgroup, id: &str) -> Value {
    let out = output(&server.addr, id, "wait=true&timeout_ms=20000");
    assert_eq!(out["running"], json!(false), "{out}");
    assert!(
        eventually(LONG, || cgroup
            .children()
            .iter()
            .all(|instance| !instance.join(id).exists())),
        "the cgroup of {id} is removed once it has emptied"
    );
    let info = info(&server.addr, id);
    assert_eq!(info["contained"], json!(true), "{info}");
    assert!(info.get("members_alive").is_none(), "{info}");
    info
}

#[test]
fn a_pids_limit_stops_a_fork_loop_where_the_controller_is_enabled() {
    let Some(cgroup) = TestCgroup::new("pids") else {
        return;
    };
    let server = serve_in(&cgroup, &[]);
    // Forks up to 40 sleepers, saying so after each. With `pids: 20` (the shell and 19
    // sleepers) a fork fails: the shell reports it ("can't fork", "Cannot fork": busybox
    // ash, dash) and gives up, leaving its sleepers in the cgroup.
    let script = "i=0; while [ $i -lt 40 ]; do sleep 30 & i=$((i+1)); echo started $i; done; \
                  echo all started";
    let body = json!({ "command": script, "limits": {"pids": 20} });
    let Some(id) = start_limited(&server, &cgroup, "pids", "pids", &body) else {
        return;
    };
    let out = output(&server.addr, &id, "wait=true&timeout_ms=20000");
    assert_eq!(out["running"], json!(false), "{out}");
    let text = out["output"].as_str().unwrap_or_default();
    let started = text
        .lines()
        .filter_map(|l| l.strip_prefix("started "))
        .filter_map(|n| n.trim().parse::<u32>().ok())
        .max()
        .unwrap_or(0);
    assert!(
        (10..20).contains(&started) && !text.contains("all started"),
        "the limit held: {started} of 40 forks succeeded: {out}"
    );
    assert!(
        text.contains("fork"),
        "the process reports the failed fork: {out}"
    );
    println!(
        "pids: 20: {started} of 40 sleepers started; {:?}",
        text.lines().last()
    );
    assert_ne!(out["exit_code"], json!(0), "{out}");
    // Its sleepers are still members; a kill ends them and the cgroup empties.
    let listed = info(&server.addr, &id);
    assert_eq!(listed["members_alive"], json!(true), "{listed}");
    assert_eq!(signal(&server.addr, &id, &json!({"signal": "kill"})), 200);
    let info = final_info(&server, &cgroup, &id);
    assert!(info["cpu_ms"].is_u64(), "{info}");
}

/// 32 MiB: far above what `dd` with a 1 MiB buffer uses, far below its 128 MiB one.
const MEMORY_LIMIT: u64 = 32 << 20;

#[test]
fn a_memory_limit_oom_kills_what_allocates_beyond_it_and_spares_what_stays_under() {
    let Some(cgroup) = TestCgroup::new("memory") else {
        return;
    };
    let server = serve_in(&cgroup, &[]);
    // dd's buffer is one block, written by every read from /dev/zero: 128 MiB of memory
    // touched at once, four times the limit.
    let body = json!({
        "command": "exec dd if=/dev/zero of=/dev/null bs=128M count=1",
        "limits": {"memory_bytes": MEMORY_LIMIT},
    });
    let Some(id) = start_limited(&server, &cgroup, "memory", "memory_bytes", &body) else {
        return;
    };
    let over = final_info(&server, &cgroup, &id);
    assert_eq!(
        (
            over["oom_killed"].clone(),
            over["signal"].clone(),
            over["exit_code"].clone()
        ),
        (json!(true), json!("SIGKILL"), json!(-1)),
        "killed by the OOM killer: {over}"
    );
    let peak = over["memory_peak_bytes"]
        .as_u64()
        .unwrap_or_else(|| panic!("{over}"));
    assert!(
        (MEMORY_LIMIT * 3 / 4..=MEMORY_LIMIT).contains(&peak),
        "the peak reached the limit and no more: {peak} of {MEMORY_LIMIT}"
    );
    assert!(over["cpu_ms"].is_u64(), "{over}");
    println!("memory_bytes: {MEMORY_LIMIT}: 128 MiB dd OOM-killed at a peak of {peak}");

    let body = json!({
        "command": "exec dd if=/dev/zero of=/dev/null bs=1M count=4",
        "limits": {"memory_bytes": MEMORY_LIMIT},
    });
    let id = id_of(&start(&server.addr, &body, &[]));
    let under = final_info(&server, &cgroup, &id);
    assert_eq!(under["exit_code"], json!(0), "{under}");
    assert!(under.get("oom_killed").is_none(), "{under}");
    let peak = under["memory_peak_bytes"]
        .as_u64()
        .unwrap_or_else(|| panic!("{under}"));
    assert!(
        (512 << 10..MEMORY_LIMIT).contains(&peak),
        "its 1 MiB buffer counted, under the limit: {peak}"
    );
    println!("memory_bytes: {MEMORY_LIMIT}: 1 MiB dd exited 0 at a peak of {peak}");
}

#[test]
fn a_cpu_limit_holds_a_busy_loop_to_its_share() {
    let Some(cgroup) = TestCgroup::new("cpu") else {
        return;
    };
    let server = serve_in(&cgroup, &[]);
    // Two busy loops for a second each (the timeout ends them), one limited to 20% of a CPU.
    let busy = |limits: Value| json!({"command": "while :; do :; done", "timeout_ms": 1000, "limits": limits});
    let free = id_of(&start(&server.addr, &busy(json!({})), &[]));
    let limited = start_limited(
        &server,
        &cgroup,
        "cpu",
        "cpu_percent",
        &busy(json!({"cpu_percent": 20})),
    );
    let free = final_info(&server, &cgroup, &free);
    let free_ms = free["cpu_ms"].as_u64().unwrap_or_else(|| panic!("{free}"));
    let free_wall = free["duration_ms"].as_u64().expect("duration_ms");
    assert_eq!(free["timed_out"], json!(true), "{free}");
    // One shell on one CPU cannot count more than its wall time (plus a tick's rounding).
    assert!(
        free_ms <= free_wall + 20,
        "{free_ms} ms of CPU in {free_wall} ms"
    );
    // `memory_peak_bytes` is there exactly where the memory controller is.
    assert_eq!(
        free["memory_peak_bytes"].is_u64(),
        cgroup.has_controller("memory"),
        "{free}"
    );
    println!("no limit: {free_ms} ms of CPU in {free_wall} ms");
    let Some(limited) = limited else {
        return;
    };
    let limited = final_info(&server, &cgroup, &limited);
    let limited_ms = limited["cpu_ms"]
        .as_u64()
        .unwrap_or_else(|| panic!("{limited}"));
    let limited_wall = limited["duration_ms"].as_u64().expect("duration_ms");
    assert_eq!(limited["timed_out"], json!(true), "{limited}");
    assert!(
        limited_ms * 10 <= limited_wall * 4,
        "20% of a CPU: {limited_ms} ms of CPU in {limited_wall} ms"
    );
    println!("cpu_percent: 20: {limited_ms} ms of CPU in {limited_wall} ms");
    assert!(
        free_ms >= limited_ms * 2,
        "the limit made the difference: {limited_ms} ms limited, {free_ms} ms free"
    );
}

/// cgroup v2 lets a cgroup other than the root that holds processes give its children no
/// controllers, so no limit applies under such a parent (400). But processes still start and
/// are contained there: the server must not enable the threaded controllers (pids, cpu) that
/// the kernel would grant such a parent anyway, since that would make it a thread root below
/// which every spawn into a cgroup fails (`EOPNOTSUPP`, a 500).
#[test]
fn a_limit_under_a_parent_that_holds_processes_is_400_and_processes_still_start() {
    let Some(cgroup) = TestCgroup::new("busy") else {
        return;
    };
    // Asked only so that the VM run fails where the parent could not have had them anyway.
    let _ = cgroup.has_controller("pids") && cgroup.has_controller("cpu");
    let mut resident = Command::new("sleep").arg("300").spawn().expect("sleep");
    std::fs::write(cgroup.path.join("cgroup.procs"), resident.id().to_string())
        .expect("a process in the parent itself");
    let server = serve_in(&cgroup, &[]);
    let started = start(&server.addr, &json!({"command": "echo contained"}), &[]);
    let id = id_of(&started);
    let out = output(&server.addr, &id, "wait=true&timeout_ms=20000");
    assert_eq!(
        (out["output"].clone(), out["exit_code"].clone()),
        (json!("contained\n"), json!(0)),
        "{out}"
    );
    assert_eq!(info(&server.addr, &id)["contained"], json!(true));
    for (name, limits) in [
        ("pids", json!({"pids": 20})),
        ("cpu_percent", json!({"cpu_percent": 50})),
        ("memory_bytes", json!({"memory_bytes": MEMORY_LIMIT})),
    ] {
        let body = json!({"command": "true", "limits": limits});
        let reply = start_reply(&server.addr, &body);
        assert_eq!(
            (reply.status, reply.json()),
            (
                400,
                json!({"message": format!("Limit \"{name}\" is not available on this host.")})
            )
        );
    }
    let _ = resident.kill();
    let _ = resident.wait();
}

#[test]
fn limits_without_cgroups_are_400() {
    let server = serve(&["--listen", "127.0.0.1:0", "--cgroup", "off"], &[]);
    for (name, limits) in [
        ("memory_bytes", json!({"memory_bytes": 1_000_000})),
        ("pids", json!({"pids": 5})),
        ("cpu_percent", json!({"cpu_percent": 50})),
    ] {
        let body = json!({"command": "true", "limits": limits});
        let reply = start_reply(&server.addr, &body);
        assert_eq!(reply.status, 400, "{name}");
        assert_eq!(
            reply.json(),
            json!({"message": format!("Limit \"{name}\" is not available on this host.")})
        );
    }
}

#[test]
fn a_cgroup_that_cannot_be_used_is_reported_once_and_processes_are_not_contained() {
    let mut cmd = Command::new(binary());
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .args(["--cgroup", "/proc/procwarden-not-a-cgroup"])
        .env_remove("PROCWARDEN_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("server");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("listening line");
    let addr = Addr::Tcp(
        first
            .trim()
            .strip_prefix("listening on http://")
            .expect("address")
            .to_string(),
    );
    let note = rx
        .iter()
        .take(50)
        .find(|l| l.starts_with("procwarden: no cgroup containment"))
        .expect("the degraded mode is reported");
    assert!(note.contains("/proc/procwarden-not-a-cgroup"), "{note}");
    let started = start(&addr, &json!({"command": "true"}), &[]);
    let id = id_of(&started);
    let _ = output(&addr, &id, "wait=true&timeout_ms=20000");
    assert!(info(&addr, &id).get("contained").is_none());
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn without_cgroups_a_shutdown_ends_adopted_setsid_escapees() {
    let mut server = serve(&["--listen", "127.0.0.1:0", "--cgroup", "off"], &[]);
    // The subshell exits at once: its setsid'd child, which ignores SIGTERM, is orphaned and
    // adopted by the server (the child subreaper), outside every process group we know.
    let script = "(setsid sh -c 'trap \"\" TERM; exec sleep 302' >/dev/null 2>&1 &); echo ready";
    let started = start(&server.addr, &json!({ "command": script }), &[]);
    let id = id_of(&started);
    let _ = output(&server.addr, &id, "wait=true&timeout_ms=20000");
    let escapee = || {
        std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .find(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| c.starts_with(b"sleep\x00302"))
                    && std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
                        s.rsplit_once(") ")
                            .and_then(|(_, r)| r.split(' ').nth(1))
                            .is_some_and(|ppid| ppid == server.pid().to_string())
                    })
            })
    };
    let mut pid = None;
    assert!(eventually(LONG, || {
        pid = escapee();
        pid.is_some()
    }));
    let pid = pid.expect("escapee");
    let (status, _) = server.terminate_within(LONG).expect("shuts down");
    assert!(status.success(), "{status:?}");
    assert!(dead(pid), "the adopted escapee was ended by the shutdown");
}

#[test]
fn children_get_an_oom_score_adj_above_the_servers() {
    for (flag, delta) in [(None, 500), (Some("0"), 0), (Some("200"), 200)] {
        let mut args = vec!["--listen", "127.0.0.1:0", "--cgroup", "off"];
        if let Some(n) = flag {
            args.extend(["--child-oom-score-adj", n]);
        }
        let server = serve(&args, &[]);
        let own: i32 = std::fs::read_to_string(format!("/proc/{}/oom_score_adj", server.pid()))
            .expect("server's")
            .trim()
            .parse()
            .expect("number");
        // The child reads its own value: the one it got before exec, inherited by what it
        // starts.
        let started = start(
            &server.addr,
            &json!({"command": "sh -c 'cat /proc/self/oom_score_adj'"}),
            &[],
        );
        let out = output(&server.addr, &id_of(&started), "wait=true&timeout_ms=20000");
        let expected = (own + delta).clamp(-1000, 1000);
        assert_eq!(
            out["output"].as_str().map(str::trim),
            Some(expected.to_string().as_str()),
            "--child-oom-score-adj {flag:?}: {out}"
        );
    }
}

/// `--child-nice N` sets what children (and what they fork) run at; without it they keep the
/// server's own. Read back through `/proc/self/stat` (field 19, nice) in the child's child.
#[test]
fn children_run_at_the_configured_nice_value() {
    for (flag, expected) in [(None, None), (Some("7"), Some(7)), (Some("19"), Some(19))] {
        let mut args = vec!["--listen", "127.0.0.1:0", "--cgroup", "off"];
        if let Some(n) = flag {
            args.extend(["--child-nice", n]);
        }
        let server = serve(&args, &[]);
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", server.pid())).expect("server's stat");
        let own: i32 = nice_of(&stat);
        let started = start(
            &server.addr,
            &json!({"command": "sh -c 'cat /proc/self/stat'"}),
            &[],
        );
        let out = output(&server.addr, &id_of(&started), "wait=true&timeout_ms=20000");
        let text = out["output"].as_str().expect("output");
        assert_eq!(
            nice_of(text),
            expected.unwrap_or(own),
            "--child-nice {flag:?}: {out}"
        );
    }
}

/// The nice field of a `/proc/PID/stat` line (the 19th; the command name, field 2, may hold
/// spaces, so count from its closing parenthesis).
fn nice_of(stat: &str) -> i32 {
    let after = &stat[stat.rfind(')').expect("stat line") + 2..];
    after
        .split_whitespace()
        .nth(16)
        .expect("nice field")
        .parse()
        .expect("number")
}
