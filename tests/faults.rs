//! Faults and abuse against the binary under test, over real sockets and real processes: an output
//! flood, children that ignore SIGTERM, close their output early or leave grandchildren holding
//! the pipe, a fork burst, a low fd limit, a graceful and a hard server death, and hundreds of
//! idle or slow connections.
//!
//! Each test prints its figures on stderr (`cargo test --test faults -- --nocapture`). Every
//! process group a test starts is SIGKILLed on the way out if anything of it is left
//! (`OwnedGroups`), so a failing test leaves nothing behind.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::http::{
    Addr, Conn, ServerProc, binary, output, request, request_bytes, serve, serve_command, signal,
    start_command, wait_exit, wait_for_text,
};
use common::{
    OwnedGroups, assert_group_empties, dead, eventually, fds_of, kill_group_survivors,
    live_group_members, status_kib, threads_of,
};
use serde_json::json;

/// Deadline for what the product cannot signal (a pid leaving the process table).
const SETTLE: Duration = Duration::from_secs(10);
/// The kill grace and the pipe grace of the server (both 2 s, per the contract).
const GRACE: Duration = Duration::from_secs(2);
/// Slack allowed on top of a grace on a loaded 2-core machine.
const MARGIN: Duration = Duration::from_millis(1500);
const GIB: u64 = 1 << 30;

fn listen() -> [&'static str; 2] {
    ["--listen", "127.0.0.1:0"]
}

fn all_gone(pgids: &[i32]) -> bool {
    pgids.iter().all(|&g| live_group_members(g).is_empty())
}

fn survivors(pgids: &[i32]) -> Vec<(i32, Vec<i32>)> {
    pgids
        .iter()
        .map(|&g| (g, live_group_members(g)))
        .filter(|(_, m)| !m.is_empty())
        .collect()
}

// 1. ------------------------------------------------------------------------------------------

#[test]
fn a_1_gib_flood_keeps_server_memory_flat_and_counts_every_byte() {
    let server = serve(&listen(), &[]);
    let addr = server.addr.clone();
    let pid = server.pid();
    let rss = || status_kib(pid, "VmRSS").expect("VmRSS");
    let start_kib = rss();

    let began = Instant::now();
    let (id, pgid) = start_command(&addr, &format!("head -c {GIB} /dev/zero"));
    let _groups = OwnedGroups(vec![pgid]);
    let waiter = {
        let (addr, id) = (addr.clone(), id.clone());
        std::thread::spawn(move || output(&addr, &id, "wait=true&timeout_ms=60000"))
    };
    // Sample while the flood runs (the product cannot signal "memory now").
    let mut max_kib = start_kib;
    let mut samples = 0u32;
    while !waiter.is_finished() && samples < 100_000 && began.elapsed() < Duration::from_secs(90) {
        max_kib = max_kib.max(rss());
        samples += 1;
        std::thread::sleep(Duration::from_millis(2));
    }
    let out = waiter.join().expect("waiter");
    let flood = began.elapsed();
    let end_kib = rss();
    let hwm_kib = status_kib(pid, "VmHWM").expect("VmHWM");
    eprintln!(
        "flood: 1 GiB in {flood:?} ({:.0} MiB/s); server VmRSS start {start_kib} KiB, sampled max \
         {max_kib} KiB over {samples} samples (+{} KiB), end {end_kib} KiB, VmHWM {hwm_kib} KiB",
        1024.0 / flood.as_secs_f64(),
        max_kib - start_kib
    );

    assert_eq!(out["running"], json!(false), "{out}");
    assert_eq!(out["exit_code"], json!(0), "{out}");
    let t = &out["truncated"];
    assert_eq!(t["original_bytes"], json!(GIB), "{out}");
    assert_eq!(t["omitted_bytes"], json!(GIB - 32768), "{out}");
    assert_eq!(t["strategy"], json!("head_tail"));
    assert_eq!(
        t["retained_bytes"],
        json!(out["output"].as_str().expect("output").len())
    );
    assert_eq!(out["next_cursor"], json!(GIB));
    assert!(samples >= 3, "only {samples} samples during the flood");
    assert!(
        max_kib - start_kib < 8 * 1024,
        "server RSS grew from {start_kib} KiB to {max_kib} KiB during the flood"
    );
    assert!(
        hwm_kib.saturating_sub(start_kib) < 8 * 1024,
        "server peak RSS {hwm_kib} KiB vs {start_kib} KiB at the start"
    );
}

// 2. ------------------------------------------------------------------------------------------

const IGNORES_TERM: &str = "trap '' TERM; echo ready; sleep 60";

#[test]
fn terminate_with_grace_kills_a_child_that_ignores_sigterm() {
    let server = serve(&listen(), &[]);
    let addr = &server.addr;
    let (id, pgid) = start_command(addr, IGNORES_TERM);
    let _groups = OwnedGroups(vec![pgid]);
    wait_for_text(addr, &id, "ready");

    let sent = Instant::now();
    assert_eq!(
        signal(addr, &id, &json!({"signal": "terminate", "grace_ms": 300})),
        200
    );
    // SIGTERM is ignored: a short wait still finds it running.
    let early = output(addr, &id, "wait=true&timeout_ms=150");
    assert_eq!(early["running"], json!(true), "{early}");
    let out = wait_exit(addr, &id);
    let took = sent.elapsed();
    eprintln!("terminate grace_ms=300 on a TERM-ignoring child: ended after {took:?}: {out}");
    assert_eq!(out["signal"], json!("SIGKILL"), "{out}");
    assert_eq!(out["exit_code"], json!(-1), "{out}");
    assert!(took >= Duration::from_millis(290), "{took:?}");
    assert!(
        took < Duration::from_millis(300) + MARGIN,
        "SIGKILL came late: {took:?}"
    );
    assert_group_empties(pgid, SETTLE, "the test's group");
}

#[test]
fn server_sigterm_ends_a_group_that_ignores_sigterm() {
    let mut server = serve(&listen(), &[]);
    let addr = server.addr.clone();
    let (id, pgid) = start_command(&addr, IGNORES_TERM);
    let _groups = OwnedGroups(vec![pgid]);
    wait_for_text(&addr, &id, "ready");
    assert_eq!(live_group_members(pgid).len(), 2, "sh and sleep");
    let (status, took) = server
        .terminate_within(GRACE + Duration::from_secs(5))
        .expect("server exits after SIGTERM");
    eprintln!("server SIGTERM with a TERM-ignoring group: exit {status:?} after {took:?}");
    assert_eq!(status.code(), Some(0));
    assert!(took < GRACE + Duration::from_secs(3), "{took:?}");
    assert_group_empties(pgid, SETTLE, "the test's group");
}

// 3. ------------------------------------------------------------------------------------------

#[test]
fn closing_stdout_early_does_not_end_a_running_child() {
    let server = serve(&listen(), &[]);
    let addr = &server.addr;
    let began = Instant::now();
    let (id, pgid) = start_command(addr, "echo before; exec >&- 2>&-; sleep 2");
    let _groups = OwnedGroups(vec![pgid]);
    // The pipe reaches end of file almost at once; the leader lives on for 2 s. A wait that
    // ends on its timeout must still say running, and so must the list.
    let mid = output(addr, &id, "wait=true&timeout_ms=1000");
    assert_eq!(mid["running"], json!(true), "marked exited at EOF: {mid}");
    assert_eq!(mid["output"], json!("before\n"));
    assert!(began.elapsed() >= Duration::from_millis(1000));
    let list = request(addr, "GET", "/api/v0/processes/list", None, &[]).json();
    let entry = list["processes"]
        .as_array()
        .and_then(|l| l.iter().find(|p| p["id"] == json!(id)))
        .cloned()
        .expect("listed");
    assert_eq!(entry["running"], json!(true), "{entry}");
    assert!(!dead(pgid), "the leader should still be alive");

    let out = wait_exit(addr, &id);
    let took = began.elapsed();
    eprintln!("stdout closed early: exited after {took:?}: {out}");
    assert_eq!(out["exit_code"], json!(0), "{out}");
    assert_eq!(out["output"], json!("before\n"));
    assert!(
        took >= Duration::from_millis(1900),
        "exited early: {took:?}"
    );
    assert!(
        took < Duration::from_secs(2) + MARGIN,
        "exit noticed late: {took:?}"
    );
}

// 4. ------------------------------------------------------------------------------------------

#[test]
fn a_grandchild_holding_the_pipe_delays_the_exit_by_the_pipe_grace_only() {
    let mut server = serve(&listen(), &[]);
    let addr = server.addr.clone();
    let began = Instant::now();
    let (id, pgid) = start_command(&addr, "sleep 30 & echo started");
    let _groups = OwnedGroups(vec![pgid]);
    let out = wait_exit(&addr, &id);
    let took = began.elapsed();
    eprintln!("grandchild holds the pipe: wait returned after {took:?}: {out}");
    assert_eq!(out["exit_code"], json!(0), "{out}");
    assert_eq!(out["output"], json!("started\n"));
    assert!(took < GRACE + MARGIN, "wait took {took:?}");
    assert!(
        took >= GRACE - Duration::from_millis(200),
        "returned before the pipe grace ({took:?}) although the pipe is held"
    );
    let left = live_group_members(pgid);
    assert_eq!(left.len(), 1, "the background sleep lives on: {left:?}");

    let (status, shut) = server
        .terminate_within(GRACE + Duration::from_secs(5))
        .expect("server exits");
    eprintln!("  server SIGTERM: exit {status:?} after {shut:?}");
    assert_eq!(status.code(), Some(0));
    assert_group_empties(pgid, SETTLE, "the test's group");
}

// 5. ------------------------------------------------------------------------------------------

#[test]
fn two_hundred_forked_grandchildren_are_gone_after_server_sigterm() {
    let mut server = serve(&listen(), &[]);
    let addr = server.addr.clone();
    let began = Instant::now();
    let (id, pgid) = start_command(
        &addr,
        "for i in $(seq 200); do sleep 60 & done; echo forked",
    );
    let _groups = OwnedGroups(vec![pgid]);
    let out = wait_exit(&addr, &id);
    eprintln!(
        "fork 200: leader done after {:?}: exit {}",
        began.elapsed(),
        out["exit_code"]
    );
    assert_eq!(out["exit_code"], json!(0), "{out}");
    assert_eq!(out["output"], json!("forked\n"));
    assert_eq!(live_group_members(pgid).len(), 200);

    let (status, shut) = server
        .terminate_within(GRACE + Duration::from_secs(5))
        .expect("server exits");
    let gone = eventually(SETTLE, || live_group_members(pgid).is_empty());
    eprintln!(
        "  server SIGTERM: exit {status:?} after {shut:?}; group empty: {gone} ({} left)",
        live_group_members(pgid).len()
    );
    assert_eq!(status.code(), Some(0));
    assert!(
        gone,
        "{} of the 200 survived",
        live_group_members(pgid).len()
    );
}

// 6. ------------------------------------------------------------------------------------------

#[test]
fn out_of_fds_a_start_fails_cleanly_and_the_server_recovers() {
    // `ulimit -n` in sh sets the soft and the hard limit, so the server cannot raise it.
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        "ulimit -n 64 && exec \"$0\" serve --listen 127.0.0.1:0 --cgroup off",
        binary(),
    ])
    .env_remove("PROCWARDEN_TOKEN");
    let server = serve_command(cmd);
    let addr = server.addr.clone();
    let pid = server.pid();
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let nofile = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("nofile line")
        .to_string();
    assert!(
        nofile.split_whitespace().filter(|w| *w == "64").count() == 2,
        "{nofile}"
    );

    let mut conn = Conn::open(&addr);
    let fds_idle = fds_of(pid);
    let body = json!({"command": "sleep 5"}).to_string();
    let (mut ok, mut failed, mut reconnects) = (Vec::new(), 0usize, 0usize);
    let mut details = std::collections::BTreeMap::<String, usize>::new();
    let mut slowest = Duration::ZERO;
    for i in 0..100 {
        let sent = Instant::now();
        conn.send_raw(request_bytes(
            "POST",
            "/api/v0/processes/start",
            Some(&body),
            &[],
        ));
        let reply = match conn.try_reply() {
            Ok(r) => r,
            Err(e) => panic!("start {i}: no answer ({e}) after {:?}", sent.elapsed()),
        };
        slowest = slowest.max(sent.elapsed());
        assert!(
            sent.elapsed() < Duration::from_secs(5),
            "start {i} took {:?}",
            sent.elapsed()
        );
        assert_eq!(reply.header("content-type"), Some("application/json"));
        let v = reply.json();
        match reply.status {
            200 => ok.push((
                v["id"].as_str().expect("id").to_string(),
                v["pid"].as_i64().expect("pid") as i32,
            )),
            500 => {
                failed += 1;
                assert_eq!(v["message"], json!("Failed to start process."), "{v}");
                let detail = v["detail"].as_str().expect("a detail").to_string();
                *details.entry(detail).or_default() += 1;
            }
            other => panic!("start {i}: unexpected {other}: {v}"),
        }
        if reply
            .header("connection")
            .is_some_and(|c| c.eq_ignore_ascii_case("close"))
        {
            reconnects += 1;
            assert!(reconnects < 20, "the server keeps closing the connection");
            conn = Conn::open(&addr);
        }
    }
    let _groups = OwnedGroups(ok.iter().map(|&(_, pgid)| pgid).collect());
    let fds_full = fds_of(pid);
    eprintln!(
        "fd limit 64: {} starts succeeded, {failed} failed (500), slowest answer {slowest:?}, \
         reconnects {reconnects}; server fds idle {fds_idle}, at the end of the burst {fds_full}; \
         details {details:?}",
        ok.len()
    );
    assert!(!ok.is_empty(), "no start succeeded");
    assert!(
        failed > 0,
        "expected some starts to fail under a 64-fd limit"
    );

    // Out of fds, a new connection is refused with a JSON 503 through the spare fd (or served,
    // if a child's fds came back meanwhile); the open keep-alive connection is still served.
    let fresh = request(&addr, "GET", "/", None, &[]);
    eprintln!(
        "  a new connection while out of fds: {} {}",
        fresh.status,
        String::from_utf8_lossy(&fresh.body)
    );
    match fresh.status {
        200 => {}
        503 => assert_eq!(
            fresh.json(),
            json!({"message": "Server is busy.", "detail": "too many open files"})
        ),
        other => panic!("new connection while out of fds: {other}"),
    }
    assert_eq!(conn.request("GET", "/", None, &[]).status, 200);
    let mut killed = Vec::new();
    for (id, _) in &ok {
        let reply = conn.request(
            "POST",
            &format!("/api/v0/processes/{id}/signal"),
            Some("{\"signal\":\"kill\"}"),
            &[],
        );
        match reply.status {
            200 => killed.push(id),
            409 => {} // its 5 s were up already
            status => panic!("kill {id}: {status} {:?}", reply.json()),
        }
    }
    for (id, _) in &ok {
        let reply = conn.request(
            "GET",
            &format!("/api/v0/processes/{id}/output?wait=true&timeout_ms=20000"),
            None,
            &[],
        );
        assert_eq!(reply.status, 200);
        let out = reply.json();
        assert_eq!(out["running"], json!(false), "{out}");
        if killed.contains(&id) {
            assert_eq!(out["signal"], json!("SIGKILL"), "{out}");
        }
    }
    // Not asserted here (see `the_fds_of_an_emptied_group_come_back_promptly`): a killed
    // `sh -c 'sleep 5'` leaves its orphaned sleep in the group until init reaps it, and the
    // server then keeps the group's pidfd until its next retention sweep.
    let fds_after = fds_of(pid);
    eprintln!(
        "  after killing them and waiting for every exit: server fds {fds_after} (idle was {fds_idle})"
    );
    assert_eq!(request(&addr, "GET", "/", None, &[]).status, 200);
    let (id, pgid) = start_command(&addr, "echo again");
    let _more = OwnedGroups(vec![pgid]);
    let out = wait_exit(&addr, &id);
    assert_eq!(out["output"], json!("again\n"));
    assert_eq!(out["exit_code"], json!(0));
    let mut server = server;
    assert!(
        server.child.try_wait().expect("try_wait").is_none(),
        "the server died"
    );
}

#[test]
fn the_fds_of_an_emptied_group_come_back_promptly() {
    let server = serve(&listen(), &[]);
    let addr = server.addr.clone();
    let pid = server.pid();
    let fds_idle = fds_of(pid);
    // The leader exits at once and closes the pipe (the background sleep does not hold it):
    // the process is marked exited while its group still has a live member for 1 s.
    let (id, pgid) = start_command(&addr, "sleep 1 >/dev/null 2>&1 & echo bg");
    let _groups = OwnedGroups(vec![pgid]);
    let out = wait_exit(&addr, &id);
    assert_eq!(out["exit_code"], json!(0), "{out}");
    assert_group_empties(pgid, SETTLE, "the background sleep");
    // The group is empty (once init has reaped the orphan): its pidfd should be closed soon.
    let released = eventually(SETTLE, || fds_of(pid) <= fds_idle);
    eprintln!(
        "emptied lingering group: server fds {fds_idle} before, {} 10 s after the group emptied",
        fds_of(pid)
    );
    assert!(
        released,
        "server fds {fds_idle} -> {}: the emptied group's pidfd is still open",
        fds_of(pid)
    );
}

// 7. ------------------------------------------------------------------------------------------

/// Twenty groups of five kinds, each added to `groups` as soon as it starts; returns once
/// each is fully set up.
fn twenty_mixed_groups(addr: &Addr, groups: &mut OwnedGroups) {
    let kinds = [
        ("sleep 60", None, 1),
        ("sleep 60 | sleep 60", None, 3),
        (IGNORES_TERM, Some("ready"), 2),
        ("sleep 60 & echo bg; sleep 60", Some("bg"), 2),
        ("sh -c 'sleep 60 | cat' | cat", None, 4),
    ];
    for i in 0..20 {
        let (cmd, marker, members) = kinds[i % kinds.len()];
        let (id, pgid) = start_command(addr, cmd);
        groups.0.push(pgid);
        if let Some(marker) = marker {
            wait_for_text(addr, &id, marker);
        }
        assert!(
            eventually(SETTLE, || live_group_members(pgid).len() >= members),
            "{cmd:?}: expected {members} members, got {:?}",
            live_group_members(pgid)
        );
    }
}

/// A server with [`twenty_mixed_groups`]: the server, the groups (owned), their pgids and how
/// many live members they have in all.
fn server_with_twenty_groups() -> (ServerProc, OwnedGroups, Vec<i32>, usize) {
    let server = serve(&listen(), &[]);
    let mut groups = OwnedGroups::default();
    twenty_mixed_groups(&server.addr, &mut groups);
    let pgids = groups.0.clone();
    let members: usize = pgids.iter().map(|&g| live_group_members(g).len()).sum();
    (server, groups, pgids, members)
}

#[test]
fn server_sigterm_with_twenty_groups_exits_0_and_leaves_nothing() {
    let (mut server, _groups, pgids, members) = server_with_twenty_groups();
    let (status, took) = server
        .terminate_within(GRACE + Duration::from_secs(8))
        .expect("server exits after SIGTERM");
    let gone = eventually(SETTLE, || all_gone(&pgids));
    eprintln!(
        "server SIGTERM with 20 groups ({members} processes): exit {status:?} after {took:?}; \
         all gone: {gone}"
    );
    assert_eq!(status.code(), Some(0));
    assert!(gone, "survivors: {:?}", survivors(&pgids));
}

// 8. ------------------------------------------------------------------------------------------

#[test]
fn server_sigkill_takes_every_leader_with_it() {
    let (mut server, _groups, pgids, members) = server_with_twenty_groups();
    // The leaders of "sleep 60 & echo bg; sleep 60" are alive too (they sleep in the
    // foreground), so every pgid here is a live leader.
    assert!(pgids.iter().all(|&p| !dead(p)));
    let status = server.kill_hard();
    let killed_at = Instant::now();
    let leaders_gone = eventually(SETTLE, || pgids.iter().all(|&p| dead(p)));
    let took = killed_at.elapsed();
    let left = survivors(&pgids);
    let left_count: usize = left.iter().map(|(_, m)| m.len()).sum();
    eprintln!(
        "server SIGKILL ({status:?}) with 20 groups ({members} processes): every leader dead: \
         {leaders_gone} after {took:?}; {left_count} grandchildren survive in {} groups \
         (cleaned up by the test)",
        left.len()
    );
    assert!(
        leaders_gone,
        "live leaders: {:?}",
        pgids.iter().filter(|&&p| !dead(p)).collect::<Vec<_>>()
    );
    for &pgid in &pgids {
        kill_group_survivors(pgid);
    }
    assert!(
        eventually(SETTLE, || all_gone(&pgids)),
        "cleanup failed: {:?}",
        survivors(&pgids)
    );
}

// 9. ------------------------------------------------------------------------------------------

/// Opens `n` loopback connections (each sending `prefix` if not empty), makes sure the server
/// holds a thread for each, and checks that a new client is served promptly.
fn hold_connections_and_list(server_pid: i32, addr: &Addr, n: usize, prefix: &[u8], what: &str) {
    let Addr::Tcp(target) = addr else {
        unreachable!()
    };
    let threads_before = threads_of(server_pid);
    let mut held = Vec::with_capacity(n);
    for i in 0..n {
        let mut s = TcpStream::connect(target).unwrap_or_else(|e| panic!("connect {i}: {e}"));
        if !prefix.is_empty() {
            s.write_all(prefix).expect("half a head");
        }
        held.push(s);
    }
    // Every connection is accepted (one thread each): the product cannot signal that.
    let accepted = eventually(SETTLE, || threads_of(server_pid) >= threads_before + n);
    let threads_held = threads_of(server_pid);
    assert!(
        accepted,
        "{what}: server threads {threads_before} -> {threads_held}"
    );
    let asked = Instant::now();
    let reply = request(addr, "GET", "/api/v0/processes/list", None, &[]);
    let took = asked.elapsed();
    assert_eq!(reply.status, 200, "{:?}", reply.json());
    assert!(reply.json()["processes"].is_array());
    drop(held);
    // One thread of slack: the server starts its signal thread just after printing its
    // address, so `threads_before` may have been counted without it.
    let released = eventually(SETTLE, || threads_of(server_pid) <= threads_before + 1);
    eprintln!(
        "{n} {what} connections: server threads {threads_before} -> {threads_held}; list answered \
         200 in {took:?}; after closing them: {} threads",
        threads_of(server_pid)
    );
    assert!(took < Duration::from_secs(3), "{what}: list took {took:?}");
    assert!(
        released,
        "{what}: threads did not come back: {}",
        threads_of(server_pid)
    );
}

#[test]
fn idle_and_slowloris_connections_do_not_lock_a_client_out() {
    let server = serve(&listen(), &[]);
    let pid = server.pid();
    hold_connections_and_list(pid, &server.addr, 300, b"", "idle");
    hold_connections_and_list(
        pid,
        &server.addr,
        300,
        b"GET /api/v0/processes/list HTTP/1.1\r\nHost: slow\r\nX-Half: ",
        "half-head (slowloris)",
    );
    assert_eq!(request(&server.addr, "GET", "/", None, &[]).status, 200);
}
