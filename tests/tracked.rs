//! Tracked processes (coder's newest agent protocol), every line of the contract's section over
//! real sockets against the binary: the four start fields and the all-zero rule, the instance
//! id in lists, replays, conflicts, fences, deadlines, receipts that outlive output, the 410,
//! `wait_ms`, `command` in output answers; digests made by real Go (tests/digest_vectors.json)
//! and by the library's encoder (checked against the same vectors in tests/digest.rs). Last, the
//! agent tool's retry over a proxy that drops answers.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use common::http::{Addr, Reply, ServerProc, output, request, serve, wait_exit};
use common::{assert_group_empties, eventually};
use procwarden::api::{self, StartRequest, digest::GoTime};
use procwarden::client::Client;
use procwarden::tools;
use serde_json::{Value, json};

const NIL: &str = "00000000-0000-0000-0000-000000000000";
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";
const FAILED: &str = "Tracked process request failed.";
const INVALID: &str = "invalid tracked process identity";
const CONFLICT: &str = "tracked process identity conflicts";
const EXPIRED: &str = "tracked process history expired";
const CAPACITY: &str = "tracked process identity capacity reached";

fn server(args: &[&str]) -> ServerProc {
    let mut all = vec!["--listen", "127.0.0.1:0"];
    all.extend_from_slice(args);
    serve(&all, &[])
}

fn post(addr: &Addr, route: &str, body: &Value, headers: &[(&str, &str)]) -> Reply {
    request(
        addr,
        "POST",
        &format!("/api/v0/processes/{route}"),
        Some(&body.to_string()),
        headers,
    )
}

fn get(addr: &Addr, target: &str) -> Reply {
    request(addr, "GET", target, None, &[])
}

fn instance(addr: &Addr) -> String {
    let list = get(addr, "/api/v0/processes/list").json();
    list["agent_instance_id"]
        .as_str()
        .expect("agent_instance_id")
        .to_string()
}

fn new_id() -> String {
    procwarden::Uuid::new_v4().to_string()
}

/// The digest of a start body, by the library's encoder.
fn digest_of(body: &Value) -> String {
    let request: StartRequest = serde_json::from_value(body.clone()).expect("a start request");
    api::input_digest(&request)
}

/// `body` as a tracked start of `id` for `instance`, with its digest.
fn tracked(mut body: Value, id: &str, instance: &str) -> Value {
    body["process_id"] = json!(id);
    body["agent_instance_id"] = json!(instance);
    let digest = digest_of(&body);
    body["input_digest"] = json!(digest);
    body
}

fn assert_tracked_error(reply: &Reply, status: u16, detail: &str) {
    assert_eq!(
        (reply.status, reply.json()),
        (status, json!({"message": FAILED, "detail": detail})),
        "expected {status} {detail}"
    );
}

/// An RFC 3339 time `ahead` from now, written in the +05:30 zone with nanoseconds (the server
/// must normalise it).
fn deadline_in(ahead: Duration) -> String {
    let at = GoTime::from_system_time(SystemTime::now() + ahead);
    let shifted = GoTime {
        unix_seconds: at.unix_seconds + 5 * 3600 + 1800,
        nanos: at.nanos.max(1),
    };
    let utc = shifted.to_rfc3339_utc().expect("a time");
    let (date_time, _) = utc.split_once(['.', 'Z']).expect("seconds");
    format!("{date_time}.{:09}+05:30", shifted.nanos)
}

#[test]
fn lists_carry_the_protocol_version_and_a_random_instance() {
    let (a, b) = (server(&[]), server(&[]));
    let list = get(&a.addr, "/api/v0/processes/list?limit=1").json();
    assert_eq!(list["protocol_version"], json!(1), "{list}");
    let id = instance(&a.addr);
    assert!(
        procwarden::Uuid::parse_str(&id).is_ok_and(|u| !u.is_nil()),
        "{id}"
    );
    assert_eq!(instance(&a.addr), id, "stable while the server runs");
    assert_ne!(instance(&b.addr), id, "each server chooses its own");
}

#[test]
fn all_zero_fields_are_an_ordinary_start() {
    let srv = server(&[]);
    let zero = json!({
        "command": "echo ordinary",
        "process_id": NIL,
        "agent_instance_id": NIL,
        "input_digest": "",
        "deadline": ZERO_TIME,
    });
    for body in [zero.clone(), json!({"command": "echo ordinary"})] {
        let reply = post(&srv.addr, "start", &body, &[]);
        assert_eq!(reply.status, 200, "{:?}", reply.json());
        let id = reply.json()["id"].as_str().expect("id").to_string();
        assert_ne!(id, NIL);
        assert_eq!(wait_exit(&srv.addr, &id)["output"], json!("ordinary\n"));
    }
    // The zero time in another zone is still zero.
    let mut other_zone = zero.clone();
    other_zone["deadline"] = json!("0001-01-01T01:00:00+01:00");
    assert_eq!(post(&srv.addr, "start", &other_zone, &[]).status, 200);
    // start-tracked needs a process id.
    assert_tracked_error(&post(&srv.addr, "start-tracked", &zero, &[]), 400, INVALID);
    assert_tracked_error(
        &post(&srv.addr, "start-tracked", &json!({"command": "true"}), &[]),
        400,
        INVALID,
    );
}

#[test]
fn a_start_whose_fields_are_only_partly_set_is_invalid() {
    let srv = server(&[]);
    let inst = instance(&srv.addr);
    let full = tracked(json!({"command": "true"}), &new_id(), &inst);
    let mut no_instance = full.clone();
    no_instance["agent_instance_id"] = json!(NIL);
    let mut no_process = full.clone();
    no_process["process_id"] = json!(NIL);
    let mut wrong_digest = full.clone();
    wrong_digest["input_digest"] = json!("0".repeat(64));
    let mut upper_digest = full.clone();
    upper_digest["input_digest"] = json!(full["input_digest"].as_str().unwrap().to_uppercase());
    let only_deadline =
        json!({"command": "true", "deadline": deadline_in(Duration::from_secs(60))});
    let only_digest = json!({"command": "true", "input_digest": full["input_digest"]});
    for body in [
        no_instance,
        no_process,
        wrong_digest,
        upper_digest,
        only_deadline,
        only_digest,
    ] {
        assert_tracked_error(&post(&srv.addr, "start", &body, &[]), 400, INVALID);
    }
    // Another instance's identity conflicts.
    let other = tracked(json!({"command": "true"}), &new_id(), &new_id());
    assert_tracked_error(&post(&srv.addr, "start", &other, &[]), 409, CONFLICT);
    // "Command is required." comes before the identity's checks, as in coder's agent.
    let mut no_command = full.clone();
    no_command["command"] = json!("");
    no_command["input_digest"] = json!("bad");
    let reply = post(&srv.addr, "start", &no_command, &[]);
    assert_eq!(
        (reply.status, reply.json()["message"].clone()),
        (400, json!("Command is required."))
    );
    // A malformed id or deadline is not JSON of the request's type.
    for (field, value) in [("process_id", "not-a-uuid"), ("deadline", "tomorrow")] {
        let mut body = full.clone();
        body[field] = json!(value);
        let reply = post(&srv.addr, "start", &body, &[]);
        assert_eq!(reply.status, 400);
        assert_eq!(
            reply.json()["message"],
            json!("Request body must be valid JSON.")
        );
    }
}

/// The Go vectors' requests as the server receives them: the server must accept Go's digest.
#[test]
fn digests_made_by_go_are_accepted() {
    let vectors: Value = serde_json::from_str(include_str!("digest_vectors.json")).expect("json");
    let srv = server(&[]);
    let inst = instance(&srv.addr);
    let text = |v: &Value, key: &str| String::from_utf8(hex(v[key].as_str().expect("hex"))).ok();
    let mut accepted = 0;
    let mut expired = 0;
    for v in vectors["vectors"].as_array().expect("vectors") {
        let name = v["name"].as_str().unwrap_or_default();
        let (Some(command), Some(workdir)) = (text(v, "command_hex"), text(v, "workdir_hex"))
        else {
            continue; // invalid UTF-8 cannot travel in JSON
        };
        let mut env = serde_json::Map::new();
        for pair in v["env_hex"].as_array().expect("env") {
            let key = String::from_utf8(hex(pair[0].as_str().unwrap())).expect("utf-8");
            let value = String::from_utf8(hex(pair[1].as_str().unwrap())).expect("utf-8");
            env.insert(key, json!(value));
        }
        let deadline = v["deadline"].as_str().unwrap_or_default();
        let mut body = json!({
            "command": command,
            "process_id": new_id(),
            "agent_instance_id": inst,
            "input_digest": v["digest"],
            "background": v["background"],
        });
        if !workdir.is_empty() {
            body["workdir"] = json!(workdir);
        }
        if !env.is_empty() {
            body["env"] = Value::Object(env);
        }
        if !deadline.is_empty() {
            body["deadline"] = json!(deadline);
        }
        let reply = post(&srv.addr, "start", &body, &[]);
        let message = reply.json()["message"].clone();
        let passed = GoTime::parse_rfc3339(deadline)
            .is_some_and(|d| !d.is_zero() && d < GoTime::from_system_time(SystemTime::now()));
        if command.is_empty() {
            assert_eq!(
                (reply.status, message),
                (400, json!("Command is required.")),
                "{name}"
            );
        } else if command.contains('\0') {
            assert_eq!(
                reply.status, 400,
                "{name}: a NUL is refused after the digest passed"
            );
            assert_ne!(message, json!(FAILED), "{name}");
        } else if !workdir.is_empty() && !std::path::Path::new(&workdir).is_dir() {
            assert_eq!(reply.status, 400, "{name}");
            assert!(
                message
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("Working directory"),
                "{name}"
            );
        } else if passed {
            assert_tracked_error(&reply, 410, EXPIRED);
            expired += 1;
        } else {
            assert_eq!(reply.status, 200, "{name}: {:?}", reply.json());
            assert_eq!(
                reply.json()["id"],
                body["process_id"],
                "{name}: the id is the process_id"
            );
            accepted += 1;
            // The same digest with one byte of the command changed is refused.
            let mut changed = body.clone();
            changed["process_id"] = json!(new_id());
            changed["command"] = json!(format!("{command} "));
            assert_tracked_error(&post(&srv.addr, "start", &changed, &[]), 400, INVALID);
        }
    }
    assert!(accepted >= 8, "{accepted} vectors started");
    assert!(expired >= 2, "{expired} vectors with passed deadlines");
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

#[test]
fn a_replay_answers_the_same_process_and_runs_nothing_new() {
    let srv = server(&[]);
    let inst = instance(&srv.addr);
    let dir = tempdir("replay");
    let file = format!("{dir}/runs");
    let id = new_id();
    let deadline = deadline_in(Duration::from_secs(600));
    let body = tracked(
        json!({"command": format!("echo run >> {file}"), "env": {"A": "1"}, "deadline": deadline}),
        &id,
        &inst,
    );
    let first = post(&srv.addr, "start-tracked", &body, &[]);
    assert_eq!(first.status, 200, "{:?}", first.json());
    assert_eq!(first.json()["id"], json!(id));
    wait_exit(&srv.addr, &id);
    for route in ["start", "start-tracked"] {
        let again = post(&srv.addr, route, &body, &[]);
        assert_eq!((again.status, again.json()), (200, first.json()), "{route}");
    }
    // The deadline written in UTC is the same instant: the same digest, the same start.
    let mut utc = body.clone();
    let instant = GoTime::parse_rfc3339(&deadline).expect("deadline");
    utc["deadline"] = json!(instant.to_rfc3339_utc().expect("utc"));
    assert_eq!(digest_of(&utc), body["input_digest"].as_str().unwrap());
    assert_eq!(post(&srv.addr, "start", &utc, &[]).json(), first.json());
    assert_eq!(
        std::fs::read_to_string(&file).expect("runs"),
        "run\n",
        "ran once"
    );
    // Anything different conflicts: the command, the environment, the chat, the deadline,
    // and procwarden's own fields.
    let mut other_command = body.clone();
    other_command["command"] = json!("echo other");
    let mut other_env = body.clone();
    other_env["env"] = json!({"A": "2"});
    let mut other_deadline = body.clone();
    other_deadline["deadline"] = json!(deadline_in(Duration::from_secs(600)));
    for mut changed in [other_command, other_env, other_deadline] {
        let digest = digest_of(&changed);
        changed["input_digest"] = json!(digest);
        assert_tracked_error(&post(&srv.addr, "start", &changed, &[]), 409, CONFLICT);
    }
    for (field, value) in [
        ("timeout_ms", json!(60_000)),
        ("stdin", json!("pipe")),
        ("tty", json!({"rows": 24, "cols": 80})),
    ] {
        let mut own = body.clone();
        own[field] = value;
        assert_tracked_error(&post(&srv.addr, "start", &own, &[]), 409, CONFLICT);
    }
    let chat = new_id();
    let reply = post(&srv.addr, "start", &body, &[("Coder-Chat-Id", &chat)]);
    assert_tracked_error(&reply, 409, CONFLICT);
    assert_eq!(
        std::fs::read_to_string(&file).expect("runs"),
        "run\n",
        "still once"
    );
    // An argv start is tracked too: its argv is kept with the receipt.
    let argv_id = new_id();
    let argv = tracked(json!({"argv": ["echo", "a"]}), &argv_id, &inst);
    assert_eq!(post(&srv.addr, "start", &argv, &[]).status, 200);
    assert_eq!(
        post(&srv.addr, "start", &argv, &[]).json()["id"],
        json!(argv_id)
    );
    let mut other_argv = argv.clone();
    other_argv["argv"] = json!(["echo", "b"]);
    assert_tracked_error(&post(&srv.addr, "start", &other_argv, &[]), 409, CONFLICT);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn concurrent_replays_start_one_process() {
    let srv = server(&[]);
    let inst = instance(&srv.addr);
    let dir = tempdir("concurrent");
    let file = format!("{dir}/runs");
    let id = new_id();
    let body = tracked(
        json!({"command": format!("echo run >> {file}")}),
        &id,
        &inst,
    );
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (addr, body) = (srv.addr.clone(), body.clone());
            std::thread::spawn(move || post(&addr, "start-tracked", &body, &[]))
        })
        .collect();
    let pids: Vec<Value> = threads
        .into_iter()
        .map(|t| {
            let reply = t.join().expect("thread");
            assert_eq!(reply.status, 200, "{:?}", reply.json());
            assert_eq!(reply.json()["id"], json!(id));
            reply.json()["pid"].clone()
        })
        .collect();
    assert!(
        pids.windows(2).all(|w| w[0] == w[1]),
        "one process: {pids:?}"
    );
    wait_exit(&srv.addr, &id);
    assert_eq!(std::fs::read_to_string(&file).expect("runs"), "run\n");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_passed_deadline_is_410_and_runs_nothing() {
    let srv = server(&[]);
    let inst = instance(&srv.addr);
    let dir = tempdir("expired");
    let file = format!("{dir}/ran");
    let mut body =
        json!({"command": format!("touch {file}"), "deadline": "2020-01-01T00:00:00.5-03:00"});
    body = tracked(body, &new_id(), &inst);
    assert_tracked_error(&post(&srv.addr, "start", &body, &[]), 410, EXPIRED);
    assert!(!std::path::Path::new(&file).exists());
    let list = get(&srv.addr, "/api/v0/processes/list").json();
    assert_eq!(list["processes"], json!([]));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn at_the_deadline_the_whole_group_gets_sigkill() {
    let srv = server(&[]);
    let inst = instance(&srv.addr);
    let id = new_id();
    // The shell ignores SIGTERM: only SIGKILL ends it; a background member must die too.
    let body = json!({
        "command": "trap '' TERM; sleep 60 & echo started; wait",
        "deadline": deadline_in(Duration::from_secs(2)),
    });
    let body = tracked(body, &id, &inst);
    let started = post(&srv.addr, "start", &body, &[]);
    assert_eq!(started.status, 200, "{:?}", started.json());
    let pgid = started.json()["pid"].as_i64().expect("pid") as i32;
    let begun = Instant::now();
    let out = wait_exit(&srv.addr, &id);
    assert!(
        begun.elapsed() >= Duration::from_millis(500),
        "not before the deadline"
    );
    assert_eq!(out["signal"], json!("SIGKILL"), "{out}");
    assert_eq!(out["exit_code"], json!(-1), "{out}");
    assert_eq!(
        out["timed_out"],
        Value::Null,
        "a deadline is not the timeout: {out}"
    );
    assert_group_empties(pgid, Duration::from_secs(5), "after the deadline");
}

#[test]
fn a_cancel_fences_an_identity_never_seen() {
    let srv = server(&[]);
    let inst = instance(&srv.addr);
    let dir = tempdir("fence");
    let file = format!("{dir}/ran");
    let id = new_id();
    let body = tracked(json!({"command": format!("touch {file}")}), &id, &inst);
    let cancel = json!({
        "process_id": id,
        "agent_instance_id": inst,
        "input_digest": body["input_digest"],
        "deadline": ZERO_TIME,
    });
    let reply = post(&srv.addr, "cancel-tracked", &cancel, &[]);
    assert_eq!(
        (reply.status, reply.json()),
        (200, json!({"agent_instance_id": inst, "fenced": true}))
    );
    // The start that arrives later is refused, and nothing ran.
    assert_tracked_error(&post(&srv.addr, "start-tracked", &body, &[]), 409, CONFLICT);
    assert!(!std::path::Path::new(&file).exists());
    // Fencing again answers the same; a different deadline conflicts.
    assert_eq!(
        post(&srv.addr, "cancel-tracked", &cancel, &[]).json()["fenced"],
        json!(true)
    );
    let mut changed = cancel.clone();
    changed["deadline"] = json!(deadline_in(Duration::from_secs(60)));
    assert_tracked_error(
        &post(&srv.addr, "cancel-tracked", &changed, &[]),
        409,
        CONFLICT,
    );
    // Malformed cancels.
    for (field, value) in [
        ("process_id", json!(NIL)),
        ("agent_instance_id", json!(NIL)),
        ("input_digest", json!("abc")),
        ("input_digest", json!("z".repeat(64))),
        ("wait_ms", json!(-1)),
    ] {
        let mut bad = cancel.clone();
        bad[field] = value;
        assert_tracked_error(&post(&srv.addr, "cancel-tracked", &bad, &[]), 400, INVALID);
    }
    let mut other = cancel.clone();
    other["agent_instance_id"] = json!(new_id());
    assert_tracked_error(
        &post(&srv.addr, "cancel-tracked", &other, &[]),
        409,
        CONFLICT,
    );
    let reply = request(
        &srv.addr,
        "POST",
        "/api/v0/processes/cancel-tracked",
        Some("{"),
        &[],
    );
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.json()["message"],
        json!("Request body must be valid JSON.")
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_cancel_kills_a_running_process_and_waits_for_it() {
    let srv = server(&[]);
    let inst = instance(&srv.addr);
    let id = new_id();
    let body = tracked(
        json!({"command": "trap '' TERM; sleep 60 & wait"}),
        &id,
        &inst,
    );
    let started = post(&srv.addr, "start", &body, &[]);
    assert_eq!(started.status, 200);
    let pgid = started.json()["pid"].as_i64().expect("pid") as i32;
    let cancel = json!({
        "process_id": id,
        "agent_instance_id": inst,
        "input_digest": body["input_digest"],
        "wait_ms": 10_000,
    });
    let reply = post(&srv.addr, "cancel-tracked", &cancel, &[]);
    assert_eq!(reply.status, 200, "{:?}", reply.json());
    let answer = reply.json();
    assert_eq!(answer["fenced"], json!(false));
    assert_eq!(answer["agent_instance_id"], json!(inst));
    assert_eq!(answer["process"]["id"], json!(id));
    assert_eq!(answer["process"]["running"], json!(false), "{answer}");
    assert_eq!(answer["process"]["signal"], json!("SIGKILL"), "{answer}");
    assert_group_empties(pgid, Duration::from_secs(5), "after the cancel");
    // A replay of the start still answers the (now exited) process: nothing new runs.
    assert_eq!(post(&srv.addr, "start", &body, &[]).json()["id"], json!(id));
}

#[test]
fn output_tracked_answers_the_output_then_410_once_forgotten() {
    let srv = server(&["--max-exited", "1"]);
    let inst = instance(&srv.addr);
    let chat = new_id();
    let id = new_id();
    let body = tracked(json!({"command": "echo tracked; exit 3"}), &id, &inst);
    let chat_header = [("Coder-Chat-Id", chat.as_str())];
    assert_eq!(post(&srv.addr, "start", &body, &chat_header).status, 200);
    let digest = body["input_digest"].as_str().unwrap().to_string();
    let target = |instance: &str, digest: &str, extra: &str| {
        format!(
            "/api/v0/processes/{id}/output-tracked?agent_instance_id={instance}&input_digest={digest}{extra}"
        )
    };
    let out = request(
        &srv.addr,
        "GET",
        &target(&inst, &digest, "&wait=true&wait_ms=20000"),
        None,
        &chat_header,
    );
    assert_eq!(out.status, 200, "{:?}", out.json());
    let out = out.json();
    assert_eq!(
        (
            out["output"].clone(),
            out["exit_code"].clone(),
            out["command"].clone()
        ),
        (json!("tracked\n"), json!(3), json!("echo tracked; exit 3"))
    );
    // Another instance or digest conflicts; another chat (or none) does not see it.
    let other = request(
        &srv.addr,
        "GET",
        &target(&new_id(), &digest, ""),
        None,
        &chat_header,
    );
    assert_tracked_error(&other, 409, CONFLICT);
    let other = request(
        &srv.addr,
        "GET",
        &target(&inst, &"0".repeat(64), ""),
        None,
        &chat_header,
    );
    assert_tracked_error(&other, 409, CONFLICT);
    assert_eq!(
        request(&srv.addr, "GET", &target(&inst, &digest, ""), None, &[]).status,
        404
    );
    let stranger = new_id();
    let reply = request(
        &srv.addr,
        "GET",
        &target(&inst, &digest, ""),
        None,
        &[("Coder-Chat-Id", &stranger)],
    );
    assert_eq!(reply.status, 404);
    // Another exit evicts the record (--max-exited 1): the receipt answers 410.
    let (other_id, _) = common::http::start_command(&srv.addr, "true");
    wait_exit(&srv.addr, &other_id);
    assert_eq!(
        get(&srv.addr, &format!("/api/v0/processes/{id}/output")).status,
        404
    );
    let gone = request(
        &srv.addr,
        "GET",
        &target(&inst, &digest, ""),
        None,
        &chat_header,
    );
    assert_eq!(gone.status, 410, "{:?}", gone.json());
    let gone = gone.json();
    assert_eq!(gone["agent_instance_id"], json!(inst));
    assert_eq!(gone["input_digest"], json!(digest));
    assert_eq!(gone["output_unavailable"], json!(true));
    let process = &gone["process"];
    assert_eq!(
        (
            process["id"].clone(),
            process["command"].clone(),
            process["workdir"].clone()
        ),
        (json!(id), json!(""), json!(""))
    );
    assert_eq!(
        (process["running"].clone(), process["exit_code"].clone()),
        (json!(false), json!(3))
    );
    // Without the digest the receipt does not answer; a replay of the start is "expired";
    // a cancel reports the final state.
    assert_eq!(
        request(&srv.addr, "GET", &target(&inst, "", ""), None, &chat_header).status,
        404
    );
    assert_tracked_error(&post(&srv.addr, "start", &body, &chat_header), 410, EXPIRED);
    let cancel = json!({"process_id": id, "agent_instance_id": inst, "input_digest": digest});
    let reply = post(&srv.addr, "cancel-tracked", &cancel, &chat_header);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["fenced"], json!(false));
    assert_eq!(reply.json()["process"]["exit_code"], json!(3));
    // An id never seen is 404.
    assert_eq!(
        request(
            &srv.addr,
            "GET",
            &target(&inst, &digest, "").replace(&id, &new_id()),
            None,
            &[]
        )
        .status,
        404
    );
}

/// The final info a receipt keeps is the process's own final info, accounting included: a
/// contained process's `cpu_ms` (and `memory_peak_bytes` and `oom_killed` where the memory
/// controller is there) are read when its cgroup empties, after the exit, and reach the 410
/// and the cancel answer all the same.
#[test]
fn the_final_info_of_a_forgotten_contained_process_keeps_its_accounting() {
    let srv = server(&["--max-exited", "1"]);
    let inst = instance(&srv.addr);
    let id = new_id();
    // A few thousand rounds of shell arithmetic: some CPU time to count.
    let command = "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; exit 3";
    let body = tracked(json!({ "command": command }), &id, &inst);
    assert_eq!(post(&srv.addr, "start", &body, &[]).status, 200);
    let out = output(&srv.addr, &id, "wait=true&timeout_ms=20000");
    assert_eq!(out["exit_code"], json!(3), "{out}");
    if let Some(cgroup) = &srv.cgroup {
        // The accounting is final once the process's cgroup is gone.
        assert!(
            eventually(Duration::from_secs(20), || cgroup
                .children()
                .iter()
                .all(|instance| !instance.join(&id).exists())),
            "the cgroup of {id} is removed"
        );
    }
    let list = get(&srv.addr, "/api/v0/processes/list").json();
    let listed = list["processes"]
        .as_array()
        .and_then(|all| all.iter().find(|p| p["id"] == json!(id)))
        .cloned()
        .unwrap_or_else(|| panic!("{id} not listed: {list}"));
    let accounting = |info: &Value| {
        (
            info["contained"].clone(),
            info["cpu_ms"].clone(),
            info["memory_peak_bytes"].clone(),
            info["oom_killed"].clone(),
        )
    };
    if srv.cgroup.is_some() {
        assert_eq!(listed["contained"], json!(true), "{listed}");
        assert!(listed["cpu_ms"].is_u64(), "{listed}");
    }
    // Another exit evicts the record (--max-exited 1): the receipt answers.
    let (other, _) = common::http::start_command(&srv.addr, "true");
    wait_exit(&srv.addr, &other);
    let digest = body["input_digest"].as_str().expect("digest");
    let gone = get(
        &srv.addr,
        &format!(
            "/api/v0/processes/{id}/output-tracked?agent_instance_id={inst}&input_digest={digest}"
        ),
    );
    assert_eq!(gone.status, 410, "{:?}", gone.json());
    let kept = gone.json()["process"].clone();
    assert_eq!(accounting(&kept), accounting(&listed), "410: {kept}");
    let cancel = json!({"process_id": id, "agent_instance_id": inst, "input_digest": digest});
    let cancelled = post(&srv.addr, "cancel-tracked", &cancel, &[]).json();
    assert_eq!(
        accounting(&cancelled["process"]),
        accounting(&listed),
        "cancel: {cancelled}"
    );
}

#[test]
fn receipts_are_bounded_and_distinct_from_the_running_limit() {
    let srv = server(&["--max-tracked", "2"]);
    let inst = instance(&srv.addr);
    let first = tracked(json!({"command": "true"}), &new_id(), &inst);
    assert_eq!(post(&srv.addr, "start", &first, &[]).status, 200);
    let fence =
        json!({"process_id": new_id(), "agent_instance_id": inst, "input_digest": "a".repeat(64)});
    assert_eq!(post(&srv.addr, "cancel-tracked", &fence, &[]).status, 200);
    let third = tracked(json!({"command": "true"}), &new_id(), &inst);
    assert_tracked_error(&post(&srv.addr, "start", &third, &[]), 429, CAPACITY);
    let mut fence2 = fence.clone();
    fence2["process_id"] = json!(new_id());
    assert_tracked_error(
        &post(&srv.addr, "cancel-tracked", &fence2, &[]),
        429,
        CAPACITY,
    );
    // A known identity still replays, and ordinary starts are not limited by receipts.
    assert_eq!(post(&srv.addr, "start", &first, &[]).status, 200);
    assert_eq!(
        post(&srv.addr, "start", &json!({"command": "true"}), &[]).status,
        200
    );
}

#[test]
fn output_answers_carry_the_command_and_accept_wait_ms() {
    let srv = server(&[]);
    let (id, pgid) = common::http::start_command(&srv.addr, "sleep 30");
    let begun = Instant::now();
    let out = output(&srv.addr, &id, "wait=true&wait_ms=300");
    assert!(
        begun.elapsed() < Duration::from_secs(10),
        "wait_ms bounds the wait"
    );
    assert_eq!(
        (out["running"].clone(), out["command"].clone()),
        (json!(true), json!("sleep 30"))
    );
    // The smaller of timeout_ms and wait_ms wins.
    let begun = Instant::now();
    output(&srv.addr, &id, "wait=true&wait_ms=100000&timeout_ms=200");
    assert!(begun.elapsed() < Duration::from_secs(10));
    // Without wait=true wait_ms is not even read.
    assert_eq!(
        get(
            &srv.addr,
            &format!("/api/v0/processes/{id}/output?wait_ms=x")
        )
        .status,
        200
    );
    for bad in ["x", "-5", "1.5", "99999999999999999999"] {
        let reply = get(
            &srv.addr,
            &format!("/api/v0/processes/{id}/output?wait=true&wait_ms={bad}"),
        );
        assert_tracked_error(&reply, 400, INVALID);
    }
    common::http::signal(&srv.addr, &id, &json!({"signal": "kill"}));
    assert_group_empties(pgid, Duration::from_secs(5), "killed");
    // Empty or 0 mean the cap: the wait lasts until the exit.
    let (short, _) = common::http::start_command(&srv.addr, "sleep 1; echo done");
    for value in ["", "0"] {
        let out = output(&srv.addr, &short, &format!("wait=true&wait_ms={value}"));
        assert_eq!(
            (out["running"].clone(), out["output"].clone()),
            (json!(false), json!("done\n"))
        );
    }
}

fn tempdir(what: &str) -> String {
    let dir = std::env::temp_dir().join(format!("procwarden-tracked-{what}-{}", new_id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.to_string_lossy().into_owned()
}

/// A loopback HTTP proxy in front of `upstream` that drops the answer to every other
/// `start-tracked` request (the 1st, 3rd, ...): the request reaches the server, its answer is
/// read and then the client's connection is closed without it. Every connection carries one
/// request (`Connection: close`).
struct DroppingProxy {
    addr: String,
    starts: Arc<AtomicUsize>,
    dropped: Arc<AtomicUsize>,
}

impl DroppingProxy {
    fn start(upstream: String) -> DroppingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let starts = Arc::new(AtomicUsize::new(0));
        let dropped = Arc::new(AtomicUsize::new(0));
        let (s, d) = (Arc::clone(&starts), Arc::clone(&dropped));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { break };
                let (s, d, up) = (Arc::clone(&s), Arc::clone(&d), upstream.clone());
                std::thread::spawn(move || {
                    let _ = relay(client, &up, &s, &d);
                });
            }
        });
        DroppingProxy {
            addr,
            starts,
            dropped,
        }
    }
}

fn relay(
    client: TcpStream,
    upstream: &str,
    starts: &AtomicUsize,
    dropped: &AtomicUsize,
) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(client.try_clone()?);
    let mut head = String::new();
    let mut length = 0usize;
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    if request_line.is_empty() {
        return Ok(());
    }
    head.push_str(&request_line);
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(value) = lower.strip_prefix("content-length:") {
            length = value.trim().parse().unwrap_or(0);
        }
        if !lower.starts_with("connection:") {
            head.push_str(&line);
        }
    }
    head.push_str("Connection: close\r\n\r\n");
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let mut server = TcpStream::connect(upstream)?;
    server.set_read_timeout(Some(Duration::from_secs(60)))?;
    server.write_all(head.as_bytes())?;
    server.write_all(&body)?;
    let mut answer = Vec::new();
    server.read_to_end(&mut answer)?;
    let drop_it =
        request_line.contains("/start-tracked") && starts.fetch_add(1, Ordering::SeqCst) % 2 == 0;
    let mut client = client;
    if drop_it {
        dropped.fetch_add(1, Ordering::SeqCst);
        // The answer is lost: close without a byte of it.
        client.shutdown(Shutdown::Both)?;
        return Ok(());
    }
    client.write_all(&answer)?;
    client.shutdown(Shutdown::Both)
}

/// The acceptance test of the retry: `execute` over a remote client whose first start answer
/// is lost every time. The server ran the command before the answer was lost; the retry with
/// the same identity answers that process, so the side effect happens exactly once per call.
#[test]
fn execute_retries_a_lost_start_and_runs_the_command_once() {
    const RUNS: usize = 100;
    let srv = server(&[]);
    let Addr::Tcp(upstream) = srv.addr.clone() else {
        panic!("tcp")
    };
    let proxy = DroppingProxy::start(upstream);
    let client = Client::new(format!("http://{}", proxy.addr));
    let dir = tempdir("retry");
    let file = format!("{dir}/runs");
    for run in 0..RUNS {
        let result = tools::call(
            &client,
            "execute",
            &json!({"command": format!("echo {run} >> {file}; echo ok"), "timeout": "20s"}),
        );
        assert_eq!(result["success"], json!(true), "run {run}: {result}");
        assert_eq!(result["output"], json!("ok\n"), "run {run}: {result}");
    }
    assert_eq!(
        proxy.dropped.load(Ordering::SeqCst),
        RUNS,
        "every first answer was lost"
    );
    assert_eq!(
        proxy.starts.load(Ordering::SeqCst),
        2 * RUNS,
        "one retry each"
    );
    let lines: Vec<String> = std::fs::read_to_string(&file)
        .expect("runs")
        .lines()
        .map(str::to_string)
        .collect();
    let expected: Vec<String> = (0..RUNS).map(|r| r.to_string()).collect();
    assert_eq!(lines, expected, "each command ran exactly once, in order");
    std::fs::remove_dir_all(&dir).ok();
}

/// When every answer is lost and the start never arrived, the tool fences the identity and
/// says it did not run; nothing runs later.
#[test]
fn execute_fences_a_start_whose_every_answer_was_lost() {
    let srv = server(&[]);
    let Addr::Tcp(upstream) = srv.addr.clone() else {
        panic!("tcp")
    };
    // A proxy that refuses every start-tracked outright (never forwards it).
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let proxy_addr = listener.local_addr().expect("addr").to_string();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { break };
            let up = upstream.clone();
            std::thread::spawn(move || {
                let mut peek = [0u8; 64];
                let n = client.peek(&mut peek).unwrap_or(0);
                if String::from_utf8_lossy(&peek[..n]).contains("/start-tracked") {
                    let _ = client.shutdown(Shutdown::Both);
                    return;
                }
                let (s, d) = (AtomicUsize::new(1), AtomicUsize::new(0));
                let _ = relay(client, &up, &s, &d);
            });
        }
    });
    let client = Client::new(format!("http://{proxy_addr}"));
    let dir = tempdir("fenced");
    let file = format!("{dir}/ran");
    let result = tools::call(
        &client,
        "execute",
        &json!({"command": format!("touch {file}")}),
    );
    assert_eq!(result["success"], json!(false), "{result}");
    let error = result["error"].as_str().unwrap_or_default();
    assert!(error.contains("did not run, and will not"), "{result}");
    assert!(!eventually(Duration::from_millis(300), || {
        std::path::Path::new(&file).exists()
    }));
    std::fs::remove_dir_all(&dir).ok();
}

/// A server that restarted has another instance: the client's cached one is refused (409) on
/// a first try, which cannot have run anything, so `execute` asks again and starts.
#[test]
fn execute_asks_again_for_the_instance_of_a_restarted_server() {
    let dir = tempdir("restart");
    let listen = format!("unix:{dir}/agent.sock");
    let mut first = serve(&["--listen", &listen], &[]);
    let client = Client::new(&listen);
    let result = tools::call(&client, "execute", &json!({"command": "echo one"}));
    assert_eq!(
        (result["success"].clone(), result["output"].clone()),
        (json!(true), json!("one\n")),
        "{result}"
    );
    let old = client
        .agent_instance_id()
        .expect("answer")
        .expect("tracked");
    first.terminate();
    let second = serve(&["--listen", &listen], &[]);
    let result = tools::call(&client, "execute", &json!({"command": "echo two"}));
    assert_eq!(
        (result["success"].clone(), result["output"].clone()),
        (json!(true), json!("two\n")),
        "{result}"
    );
    let new = client
        .agent_instance_id()
        .expect("answer")
        .expect("tracked");
    assert_ne!(new, old);
    assert_eq!(new.to_string(), instance(&second.addr));
    drop(second);
    std::fs::remove_dir_all(&dir).ok();
}
