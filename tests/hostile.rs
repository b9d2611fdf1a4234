//! The attacks of the hostile-load review, one test each, as they were run (bounded in count
//! and time, loopback only), against the `procwarden serve` binary: each asserts the wire
//! contract's "Hardening" answer. The library findings (huge configured durations, a
//! panicking exit hook, a reader that unwinds) are pinned in `tests/manager.rs` and in the
//! unit tests of `src/process.rs`; the OpenAPI findings by the schemathesis run of `.ci/run`.
//! The latency figures under load are measured by `examples/hostile_load.rs`, not here.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use common::http::{
    Addr, Conn, ServerProc, binary, id_of, ok_json, output, request, request_bytes, serve,
    serve_command, signal, start, start_command, wait_exit,
};
use common::{dead, eventually, live_group_members, status_kib};
use serde_json::{Value, json};

const LONG: Duration = Duration::from_secs(20);

/// `procwarden serve ARGS` started through `sh -c 'PREFIX; exec procwarden serve ARGS'`.
fn serve_after(prefix: &str, args: &str) -> ServerProc {
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        // Outside a test-owned cgroup parent: no cgroups (see common::cgroup).
        &format!("{prefix} && exec \"$0\" serve --cgroup off {args}"),
        binary(),
    ])
    .env_remove("PROCWARDEN_TOKEN");
    serve_command(cmd)
}

fn list(addr: &Addr) -> Value {
    ok_json(
        &request(addr, "GET", "/api/v0/processes/list?limit=1000", None, &[]),
        "list",
    )
}

/// The GET request of a long poll for `id`'s exit.
fn long_poll(id: &str) -> String {
    request_bytes(
        "GET",
        &format!("/api/v0/processes/{id}/output?wait=true&timeout_ms=300000"),
        None,
        &[],
    )
}

#[test]
fn blocked_waits_do_not_lock_other_clients_out() {
    // Finding 1: as many long polls as there are connection slots locked every other client
    // out (503 "Server is busy.", the signal that would end them included).
    const SLOTS: usize = 32;
    let server = serve(&["--listen", "127.0.0.1:0", "--max-connections", "32"], &[]);
    let addr = &server.addr;
    let (id, pid) = start_command(addr, "sleep 60");
    let mut waits: Vec<Conn> = (0..SLOTS)
        .map(|_| {
            let mut conn = Conn::open(addr);
            conn.send_raw(long_poll(&id));
            conn
        })
        .collect();
    // Every slot is taken by a blocked wait (the server has no event for "a wait began": its
    // connection threads in a timed wait are counted).
    assert!(eventually(LONG, || {
        common::threads_in_timed_wait(server.pid(), "procwarden-http") >= SLOTS
    }));
    // A list and a signal are served all the same: each ends the oldest wait early.
    let listed = list(addr);
    assert_eq!(listed["processes"][0]["id"], json!(id));
    let killed = signal(addr, &id, &json!({"signal": "kill"}));
    assert_eq!(killed, 200);
    // The waits that were ended answered normally (200) and closed their connections; the
    // others saw the kill end the process and kept theirs. An ended wait usually answers
    // "still running", but its thread may first run after the kill has ended the process
    // (a loaded machine), so it is told apart by its close, not by what it saw.
    let mut ended_early = 0;
    for conn in &mut waits {
        let reply = conn.reply();
        assert_eq!(reply.status, 200, "{:?}", reply.json());
        if reply.closes() {
            ended_early += 1;
        } else {
            assert_eq!(reply.json()["running"], json!(false), "{:?}", reply.json());
        }
    }
    assert!(
        (1..=2).contains(&ended_early),
        "{ended_early} waits ended early"
    );
    assert!(eventually(LONG, || dead(pid)));
}

#[test]
fn idle_connections_give_way_when_file_descriptors_run_out() {
    // Finding 2: with a low RLIMIT_NOFILE, idle connections used up the descriptors before the
    // connection limit, and every newcomer got 503 until they timed out.
    let server = serve_after("ulimit -n 128", "--listen 127.0.0.1:0");
    let addr = &server.addr;
    let Addr::Tcp(tcp) = addr else {
        panic!("a TCP server")
    };
    // More idle connections than the server has descriptors.
    let idle: Vec<TcpStream> = (0..200)
        .map(|_| TcpStream::connect(tcp).expect("connect"))
        .collect();
    let reply = request(addr, "GET", "/", None, &[]);
    assert_eq!(reply.status, 200, "{:?}", reply.json());
    let (id, _) = start_command(addr, "echo served");
    assert_eq!(wait_exit(addr, &id)["output"], json!("served\n"));
    drop(idle);
}

#[test]
fn a_list_of_huge_commands_read_slowly_stays_small_in_memory() {
    // Finding 3: `list?limit=1000` over 100 processes with ~900 KB commands was built whole
    // (90 MB) per reader; 5 readers that did not read took the server to 1.26 GB.
    let server = serve(&["--listen", "127.0.0.1:0"], &[]);
    let addr = &server.addr;
    // argv words under the kernel's 128 KiB per-string limit: 9 of 100 KB each.
    let padding: Vec<String> = (0..9).map(|i| format!("{i}").repeat(100_000)).collect();
    let mut pids = Vec::new();
    for _ in 0..100 {
        let mut argv = vec!["sh".to_string(), "-c".into(), "sleep 60".into()];
        argv.extend(padding.iter().cloned());
        let started = start(addr, &json!({ "argv": argv }), &[]);
        pids.push(started["pid"].as_i64().expect("pid") as i32);
    }
    let before = status_kib(server.pid(), "VmRSS").expect("VmRSS");
    // Five readers send the request and never read the answer.
    let readers: Vec<Conn> = (0..5)
        .map(|_| {
            let mut conn = Conn::open(addr);
            conn.send_raw(request_bytes(
                "GET",
                "/api/v0/processes/list?limit=1000",
                None,
                &[],
            ));
            conn
        })
        .collect();
    // Let the server write until each socket is full (it has no event for that: the peak is
    // sampled while they stall, for a bounded time).
    let mut peak = before;
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(50));
        peak = peak.max(status_kib(server.pid(), "VmRSS").expect("VmRSS"));
    }
    let grew_mib = peak.saturating_sub(before) / 1024;
    println!("list attack: VmRSS {before} KiB before, peak {peak} KiB (+{grew_mib} MiB)");
    assert!(grew_mib < 64, "+{grew_mib} MiB");
    drop(readers);
    // A list's commands are cut at 4096 bytes (the output answer keeps the whole command).
    let listed = list(addr);
    let command = listed["processes"][0]["command"].as_str().expect("command");
    assert!(command.len() <= 4096 + " ... [truncated]".len());
    assert!(command.ends_with(" ... [truncated]"));
    for pid in pids {
        // `kill -KILL -- -PGID`: without `--`, procps kill reads "-PGID" as an option.
        common::kill_group_survivors(pid);
    }
}

#[test]
fn repeated_scope_and_auth_headers_are_refused() {
    // Finding 4: with two Coder-Chat-Id lines the first won, so an empty one before a
    // gateway's real one acted as "no chat" and saw everything; Authorization likewise.
    let server = serve(
        &["--listen", "127.0.0.1:0"],
        &[("PROCWARDEN_TOKEN", "s3cret")],
    );
    let addr = &server.addr;
    let auth = ("Authorization", "Bearer s3cret");
    let chat = "0b6f4a1e-0000-4000-8000-000000000001";
    let reply = request(
        addr,
        "GET",
        "/api/v0/processes/list",
        None,
        &[auth, ("Coder-Chat-Id", ""), ("Coder-Chat-Id", chat)],
    );
    assert_eq!(
        (reply.status, reply.json()),
        (400, json!({"message": "Duplicate Coder-Chat-Id header."}))
    );
    let reply = request(
        addr,
        "GET",
        "/",
        None,
        &[("Authorization", "Bearer wrong"), auth],
    );
    assert_eq!(
        (reply.status, reply.json()),
        (401, json!({"message": "Unauthorized."}))
    );
    let reply = request(addr, "GET", "/", None, &[auth]);
    assert_eq!(reply.status, 200);
}

#[test]
fn a_unix_socket_is_private_whatever_the_umask() {
    // Finding 5: the socket's mode followed the umask (0777 under umask 0).
    let dir = std::env::temp_dir().join(format!("procwarden-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("agent.sock");
    let server = serve_after("umask 0", &format!("--listen unix:{}", path.display()));
    let mode = std::fs::metadata(&path)
        .expect("socket")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "{mode:o}");
    assert_eq!(request(&server.addr, "GET", "/", None, &[]).status, 200);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_request_during_a_graceful_shutdown_is_told_so() {
    // Finding 6: a request on a kept-alive connection during the graceful shutdown was closed
    // with no answer.
    let mut server = serve(&["--listen", "127.0.0.1:0"], &[]);
    let addr = server.addr.clone();
    // A group that ignores SIGTERM keeps the shutdown going for the kill grace (2 s).
    let (id, pid) = start_command(&addr, "trap '' TERM; echo ready; sleep 30");
    common::http::wait_for_text(&addr, &id, "ready");
    let mut kept = Conn::open(&addr);
    assert_eq!(kept.get("/").status, 200);
    let sent = std::time::Instant::now();
    Command::new("kill")
        .args(["-TERM", &server.pid().to_string()])
        .status()
        .expect("kill");
    // The listener closes at once; then the request on the kept-alive connection.
    let Addr::Tcp(tcp) = &addr else {
        panic!("a TCP server")
    };
    assert!(eventually(LONG, || TcpStream::connect(tcp).is_err()));
    let reply = kept.get("/api/v0/processes/list");
    assert!(
        sent.elapsed() < Duration::from_secs(2),
        "inside the kill grace"
    );
    assert_eq!(
        (reply.status, reply.json()),
        (503, json!({"message": "Server is shutting down."}))
    );
    assert!(reply.closes() && kept.closed());
    assert!(server.child.wait().expect("exit").success());
    assert!(dead(pid));
}

#[test]
fn an_evicted_request_in_flight_is_answered_not_dropped() {
    // Finding 6 (second half): a connection evicted mid-request was closed silently.
    let server = serve(&["--listen", "127.0.0.1:0", "--max-connections", "2"], &[]);
    let addr = &server.addr;
    let Addr::Tcp(tcp) = addr else {
        panic!("a TCP server")
    };
    let server_addr: std::net::SocketAddr = tcp.parse().expect("address");
    let mut half = Conn::open(addr);
    half.send_raw("GET / HTTP/1.1\r\nX-Half: ");
    // The server has read the half head (its receive queue is empty and a thread waits for
    // more): the request is in flight. The product has no event for this; it is polled for.
    let half_addr = half.local_addr();
    assert!(eventually(LONG, || {
        common::server_waits_for_more(server.pid(), server_addr, half_addr)
    }));
    let mut idle = Conn::open(addr);
    assert_eq!(idle.get("/").status, 200);
    // The limit is reached; a newcomer evicts the oldest: the one with a request in flight.
    assert!(half.open_and_unanswered());
    assert_eq!(request(addr, "GET", "/", None, &[]).status, 200);
    let reply = half.reply();
    let message = reply.json()["message"].clone();
    assert!(
        (reply.status == 503 && message == json!("Server is busy."))
            || (reply.status == 408 && message == json!("Request timeout.")),
        "{} {message}",
        reply.status
    );
    assert!(half.closed());
}

#[test]
fn wrong_methods_name_the_allowed_ones() {
    // Finding 7a: 405 answers had no Allow header.
    let server = serve(&["--listen", "127.0.0.1:0"], &[]);
    for (method, target, allow) in [
        ("POST", "/api/v0/processes/list", "GET"),
        ("GET", "/api/v0/processes/start", "POST"),
        ("DELETE", "/", "GET"),
        ("GET", "/api/v0/processes/x/signal", "POST"),
        ("PUT", "/api/v0/processes/x/output", "GET"),
    ] {
        let reply = request(&server.addr, method, target, None, &[]);
        assert_eq!(reply.status, 405, "{method} {target}");
        assert_eq!(reply.header("allow"), Some(allow), "{method} {target}");
    }
}

#[test]
fn spawn_failures_that_are_the_callers_are_400() {
    // Finding 7b: a missing or non-executable argv program, a workdir the server may not
    // enter, and a command too large for the system were 500s. The server runs as `nobody`
    // here, so that a directory it may not enter exists (root may enter any).
    let dir = std::env::temp_dir().join(format!("procwarden-closed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("mode");
    let script = dir.join("script");
    std::fs::write(&script, "echo hi\n").expect("script");
    let open_dir = std::env::temp_dir().join(format!("procwarden-open-{}", std::process::id()));
    std::fs::create_dir_all(&open_dir).expect("dir");
    std::fs::set_permissions(&open_dir, std::fs::Permissions::from_mode(0o755)).expect("mode");
    let plain = open_dir.join("plain");
    std::fs::write(&plain, "echo hi\n").expect("file");
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).expect("mode");
    let as_nobody = "setpriv --reuid=65534 --regid=65534 --clear-groups true";
    let nobody = Command::new("sh").args(["-c", as_nobody]).status();
    let server = if nobody.is_ok_and(|s| s.success()) {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", binary()])
            .args(["serve", "--listen", "127.0.0.1:0", "--workdir", "/tmp"])
            .args(["--cgroup", "off"])
            .env("HOME", "/tmp")
            .env_remove("PROCWARDEN_TOKEN");
        Some(serve_command(cmd))
    } else {
        println!("setpriv cannot drop to nobody here: the not-enterable workdir case is skipped");
        None
    };
    let fallback = serve(&["--listen", "127.0.0.1:0"], &[]);
    let addr = server.as_ref().map_or(&fallback.addr, |s| &s.addr);
    let start_answer = |body: Value| {
        let reply = request(
            addr,
            "POST",
            "/api/v0/processes/start",
            Some(&body.to_string()),
            &[],
        );
        (reply.status, reply.json())
    };
    let (status, v) = start_answer(json!({"argv": ["procwarden-no-such-program"]}));
    assert_eq!(
        (status, v["message"].clone()),
        (
            400,
            json!("Program \"procwarden-no-such-program\" not found.")
        )
    );
    let (status, v) = start_answer(json!({"argv": [plain.to_string_lossy()]}));
    assert_eq!(status, 400, "{v}");
    let (status, v) = start_answer(json!({"command": "true", "env": {"BIG": "x".repeat(200_000)}}));
    assert_eq!(status, 400, "{v}");
    if server.is_some() {
        let (status, v) =
            start_answer(json!({"command": "true", "workdir": dir.to_string_lossy()}));
        assert_eq!(status, 400, "{v}");
        assert!(
            v["message"]
                .as_str()
                .is_some_and(|m| m.contains("cannot be entered")),
            "{v}"
        );
    }
    // A spawn failure that is the system's stays 500 (shown by the fd-limit fault test).
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&open_dir);
}

#[test]
fn a_start_timeout_of_zero_means_none() {
    // Finding 7c: `timeout_ms: 0` killed the process at once.
    let server = serve(&["--listen", "127.0.0.1:0"], &[]);
    let addr = &server.addr;
    let id = id_of(&start(
        addr,
        &json!({"command": "sleep 0.3; echo finished", "timeout_ms": 0}),
        &[],
    ));
    let done = wait_exit(addr, &id);
    assert_eq!(done["output"], json!("finished\n"));
    assert_eq!(done["exit_code"], json!(0));
    assert!(done.get("timed_out").is_none(), "{done}");
}

#[test]
fn what_outlives_the_leader_can_still_be_signalled() {
    // Finding 7d: once the leader had exited (and the pipe grace passed), its surviving group
    // members could no longer be signalled through the API.
    let server = serve(&["--listen", "127.0.0.1:0"], &[]);
    let addr = &server.addr;
    let (id, pid) = start_command(addr, "sleep 60 >/dev/null 2>&1 & echo started");
    let done = wait_exit(addr, &id);
    assert_eq!(done["output"], json!("started\n"));
    assert!(
        !live_group_members(pid).is_empty(),
        "the background member lives"
    );
    let entry = list(addr)["processes"][0].clone();
    assert_eq!(entry["members_alive"], json!(true), "{entry}");
    assert_eq!(signal(addr, &id, &json!({"signal": "kill"})), 200);
    assert!(eventually(LONG, || live_group_members(pid).is_empty()));
    // Nothing is left: now it is "not running", and the list says so.
    assert!(eventually(LONG, || signal(
        addr,
        &id,
        &json!({"signal": "kill"})
    ) == 409));
    let entry = list(addr)["processes"][0].clone();
    assert!(entry.get("members_alive").is_none(), "{entry}");
    let out = output(addr, &id, "");
    assert_eq!(out["running"], json!(false));
}

#[test]
fn a_slow_reader_of_a_large_list_gets_it_chunked_and_whole() {
    // Finding 3 (the shape of the answer): a large list is streamed in chunks, and a client
    // that reads it gets every entry.
    let server = serve(&["--listen", "127.0.0.1:0"], &[]);
    let addr = &server.addr;
    let padding = "p".repeat(4000);
    let mut ids = Vec::new();
    for _ in 0..40 {
        let (id, _) = start_command(addr, &format!("sleep 60 # {padding}"));
        ids.push(id);
    }
    let Addr::Tcp(tcp) = addr else {
        panic!("a TCP server")
    };
    let mut stream = TcpStream::connect(tcp).expect("connect");
    stream
        .write_all(request_bytes("GET", "/api/v0/processes/list?limit=1000", None, &[]).as_bytes())
        .expect("send");
    // Read slowly, a little at a time.
    let mut raw = Vec::new();
    let mut chunk = [0u8; 4096];
    stream.set_read_timeout(Some(LONG)).expect("timeout");
    while !raw.ends_with(b"0\r\n\r\n") {
        let n = stream.read(&mut chunk).expect("read");
        assert!(n > 0, "closed early");
        raw.extend_from_slice(&chunk[..n]);
        std::thread::sleep(Duration::from_millis(2));
    }
    let text = String::from_utf8_lossy(&raw);
    assert!(
        text.contains("Transfer-Encoding: chunked"),
        "{}",
        &text[..200]
    );
    let listed = list(addr);
    assert_eq!(listed["processes"].as_array().map(Vec::len), Some(40));
    for id in ids {
        assert_eq!(signal(addr, &id, &json!({"signal": "kill"})), 200);
    }
}
