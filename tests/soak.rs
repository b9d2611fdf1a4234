//! A bounded soak of the binary under test (this build's, or `PROCWARDEN_TEST_BINARY`): many clients, each on its own keep-alive connection,
//! start processes and wait for them over loopback HTTP; afterwards the server has no zombie
//! child, and its fd and thread counts come back to what they were when it was idle.
//!
//! Ignored by default (it takes a few seconds plus the readers' idle retirement). Run:
//! `cargo test --all-features --test soak -- --ignored --nocapture` (CI does).
//!
//! Bounds: `CLIENTS` threads of at most `CYCLES` cycles each, all stopping at `DEADLINE`; every
//! socket read has a 30 s timeout; the settle polls stop after `SETTLE`.

mod common;

use std::time::{Duration, Instant};

use common::http::{Addr, Conn, Reply, request_bytes, serve};
use common::{eventually, fd_targets, fds_of, thread_names, threads_of, zombies_of};
use serde_json::Value;

/// Concurrent clients, one keep-alive connection each.
const CLIENTS: usize = 16;
/// Cycles per client.
const CYCLES: usize = 150;
/// Every client stops at this deadline, finished or not (unfinished counts as an error).
const DEADLINE: Duration = Duration::from_secs(60);
/// How long fd and thread counts may take to come back: idle reader threads retire after
/// `procwarden::DEFAULT_READER_IDLE` (5 s), plus margin.
const SETTLE: Duration = Duration::from_secs(10);
/// How long the server may take to reach idle after printing its listening line.
const STARTUP: Duration = Duration::from_secs(10);
/// Error descriptions kept per client (all are counted).
const KEPT_ERRORS: usize = 5;

/// One request on a keep-alive connection; an I/O error is returned, not a panic.
fn call(conn: &mut Conn, method: &str, target: &str, body: Option<&str>) -> Result<Reply, String> {
    let json_type: &[(&str, &str)] = match body {
        Some(_) => &[("Content-Type", "application/json")],
        None => &[],
    };
    conn.send_raw(request_bytes(method, target, body, json_type));
    conn.try_reply()
        .map_err(|e| format!("{method} {target}: no reply: {e}"))
}

/// A 200 with a JSON body, or a description of what came instead.
fn ok_json(reply: &Reply, what: &str) -> Result<Value, String> {
    if reply.status != 200 {
        return Err(format!(
            "{what}: status {}: {}",
            reply.status,
            String::from_utf8_lossy(&reply.body)
        ));
    }
    serde_json::from_slice(&reply.body).map_err(|e| format!("{what}: body is not JSON: {e}"))
}

/// One start + wait (+ list) cycle; `Err` describes the first broken expectation. An I/O
/// failure is reported as `Err` too, with `fatal` set: the connection is then unusable.
fn cycle(conn: &mut Conn, client: usize, i: usize, fatal: &mut bool) -> Result<(), String> {
    let io = |fatal: &mut bool, e: String| {
        *fatal = true;
        e
    };
    let failing = i % 5 == 4;
    let body = if failing {
        r#"{"command":"echo x; exit 3"}"#
    } else {
        r#"{"command":"true"}"#
    };
    let reply =
        call(conn, "POST", "/api/v0/processes/start", Some(body)).map_err(|e| io(fatal, e))?;
    let started = ok_json(&reply, "start")?;
    if started["started"] != true {
        return Err(format!("start: {started}"));
    }
    let id = started["id"]
        .as_str()
        .ok_or_else(|| format!("start without id: {started}"))?;
    let target = format!("/api/v0/processes/{id}/output?wait=true");
    let reply = call(conn, "GET", &target, None).map_err(|e| io(fatal, e))?;
    let out = ok_json(&reply, "output")?;
    let (want_code, want_output) = if failing { (3, "x\n") } else { (0, "") };
    if out["running"] != false || out["exit_code"] != want_code || out["output"] != want_output {
        return Err(format!(
            "client {client} cycle {i}: want exit {want_code} and output {want_output:?}, got {out}"
        ));
    }
    if i % 10 == 9 {
        let reply = call(conn, "GET", "/api/v0/processes/list", None).map_err(|e| io(fatal, e))?;
        let list = ok_json(&reply, "list")?;
        if !list["processes"].is_array() {
            return Err(format!("list without processes: {list}"));
        }
    }
    Ok(())
}

/// One client: its own connection, up to `CYCLES` cycles, stopping at `deadline`. Returns
/// (cycles done, error count, the first few errors).
fn client(addr: &Addr, client: usize, deadline: Instant) -> (usize, usize, Vec<String>) {
    let mut conn = Conn::open(addr);
    let (mut done, mut errors, mut kept) = (0, 0, Vec::new());
    for i in 0..CYCLES {
        if Instant::now() >= deadline {
            errors += 1;
            kept.push(format!(
                "client {client}: deadline reached after {done} of {CYCLES} cycles"
            ));
            break;
        }
        let mut fatal = false;
        match cycle(&mut conn, client, i, &mut fatal) {
            Ok(()) => done += 1,
            Err(e) => {
                errors += 1;
                if kept.len() < KEPT_ERRORS {
                    kept.push(e);
                }
            }
        }
        if fatal {
            kept.push(format!("client {client}: connection lost at cycle {i}"));
            errors += 1;
            break;
        }
    }
    (done, errors, kept)
}

#[test]
#[ignore = "soak: run with --ignored (CI runs it as its own step)"]
fn soak_many_clients_leave_no_zombie_fd_or_thread() {
    let mut server = serve(&["--listen", "127.0.0.1:0"], &[]);
    let pid = server.pid();
    let addr = server.addr.clone();
    if let Addr::Tcp(a) = &addr {
        assert!(a.starts_with("127.0.0.1:"), "loopback only: {a}");
    }

    // Idle: the signal thread (spawned right after the listening line) is up, and no request
    // has been made yet, so no connection or reader thread exists.
    assert!(
        eventually(STARTUP, || thread_names(pid)
            .iter()
            .any(|n| n.starts_with("procwarden-sig"))),
        "the server's signal thread never appeared: {:?}",
        thread_names(pid)
    );
    let (fds_before, threads_before) = (fds_of(pid), threads_of(pid));
    let names_before = thread_names(pid);
    let fd_list_before = fd_targets(pid);
    println!(
        "soak: server pid {pid} idle: {fds_before} fds, {threads_before} threads {names_before:?}"
    );

    let started = Instant::now();
    let deadline = started + DEADLINE;
    let results: Vec<(usize, usize, Vec<String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let addr = &addr;
                s.spawn(move || client(addr, c, deadline))
            })
            .collect();
        handles
            .into_iter()
            .enumerate()
            .map(|(c, h)| {
                h.join()
                    .unwrap_or_else(|_| (0, 1, vec![format!("client {c} panicked")]))
            })
            .collect()
    });
    let elapsed = started.elapsed();
    let cycles: usize = results.iter().map(|r| r.0).sum();
    let errors: usize = results.iter().map(|r| r.1).sum();
    let during = (fds_of(pid), threads_of(pid));
    println!(
        "soak: {cycles} cycles by {CLIENTS} clients in {:.2} s: {:.0} cycles/s; {errors} errors; right after: {} fds, {} threads",
        elapsed.as_secs_f64(),
        cycles as f64 / elapsed.as_secs_f64(),
        during.0,
        during.1,
    );
    let kept: Vec<&String> = results.iter().flat_map(|r| &r.2).collect();
    assert_eq!(errors, 0, "errors: {kept:#?}");
    assert_eq!(cycles, CLIENTS * CYCLES);

    // Every cycle waited for `running: false`, which comes only after the leader was reaped.
    let zombies = zombies_of(pid);
    assert!(
        zombies.is_empty(),
        "zombie children of the server: {zombies:?}"
    );

    // Connection threads end when their client closes (done above, at the end of each client);
    // reader threads retire after 5 s idle.
    let settle_start = Instant::now();
    let settled = eventually(SETTLE, || {
        fds_of(pid) == fds_before && threads_of(pid) == threads_before
    });
    let (fds_after, threads_after) = (fds_of(pid), threads_of(pid));
    println!(
        "soak: fds {fds_before} -> {fds_after}, threads {threads_before} -> {threads_after} ({} after {:.2} s)",
        if settled { "settled" } else { "NOT settled" },
        settle_start.elapsed().as_secs_f64()
    );
    assert!(
        settled,
        "fds {fds_before} -> {fds_after}, threads {threads_before} -> {threads_after}\nthreads before {names_before:?}\nthreads after  {:?}\nfds before {fd_list_before:?}\nfds after  {:?}",
        thread_names(pid),
        fd_targets(pid)
    );
    let zombies = zombies_of(pid);
    assert!(
        zombies.is_empty(),
        "zombie children of the server: {zombies:?}"
    );

    let status = server.terminate();
    assert_eq!(status.code(), Some(0), "SIGTERM exit status: {status}");
}
