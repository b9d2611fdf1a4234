//! The contract's "Interactive processes: stdin and terminals" section over real sockets,
//! against the `procwarden serve` binary: the `stdin` and `tty` start fields, `stdin_open`,
//! `tty` and `input_dropped_bytes` in the answers, `POST {id}/input` and `POST {id}/resize`
//! with every check in the contract's order.

mod common;

use common::http::{
    Addr, Reply, id_of, ok_json, output, request, serve, start, wait_exit, wait_for_text,
};
use serde_json::{Value, json};

fn post(addr: &Addr, id: &str, route: &str, body: &str, headers: &[(&str, &str)]) -> Reply {
    request(
        addr,
        "POST",
        &format!("/api/v0/processes/{id}/{route}"),
        Some(body),
        headers,
    )
}

/// `POST {id}/input` with `body`; returns status and JSON.
fn input(addr: &Addr, id: &str, body: &Value) -> (u16, Value) {
    let reply = post(addr, id, "input", &body.to_string(), &[]);
    (reply.status, reply.json())
}

fn start_status(addr: &Addr, body: &str) -> (u16, Value) {
    let reply = request(addr, "POST", "/api/v0/processes/start", Some(body), &[]);
    (reply.status, reply.json())
}

fn list_entry(addr: &Addr, id: &str) -> Value {
    let list = ok_json(
        &request(addr, "GET", "/api/v0/processes/list?limit=1000", None, &[]),
        "list",
    );
    list["processes"]
        .as_array()
        .expect("processes")
        .iter()
        .find(|p| p["id"] == json!(id))
        .cloned()
        .unwrap_or_else(|| panic!("{id} not listed: {list}"))
}

fn kill(addr: &Addr, id: &str) {
    let reply = post(addr, id, "signal", "{\"signal\":\"kill\"}", &[]);
    assert_eq!(reply.status, 200, "{:?}", reply.json());
}

fn no_open_input(id: &str) -> Value {
    json!({"message": format!("Process \"{id}\" has no open input.")})
}

#[test]
fn stdin_defaults_to_dev_null_and_such_a_process_has_no_input() {
    let server = serve(&["--listen", "127.0.0.1:0"], &[]);
    let addr = &server.addr;
    for body in [
        json!({"command": "cat; echo end"}),
        json!({"command": "cat; echo end", "stdin": "null"}),
    ] {
        let id = id_of(&start(addr, &body, &[]));
        let out = wait_exit(addr, &id);
        assert_eq!(out["output"], json!("end\n"));
        assert!(out.get("stdin_open").is_none(), "{out}");
        assert!(out.get("tty").is_none(), "{out}");
        assert!(out.get("input_dropped_bytes").is_none(), "{out}");
        let entry = list_entry(addr, &id);
        assert!(entry.get("stdin_open").is_none(), "{entry}");
        assert_eq!(
            input(addr, &id, &json!({"data": "x"})),
            (409, no_open_input(&id))
        );
    }
    let id = id_of(&start(addr, &json!({"command": "sleep 30"}), &[]));
    assert_eq!(
        input(addr, &id, &json!({"data": "x"})),
        (409, no_open_input(&id))
    );
    kill(addr, &id);
}

#[test]
fn a_pipe_takes_input_in_order_and_close_gives_eof() {
    let server = serve(&["--listen", "127.0.0.1:0"], &[]);
    let addr = &server.addr;
    let id = id_of(&start(
        addr,
        &json!({"command": "cat; echo end", "stdin": "pipe"}),
        &[],
    ));
    assert_eq!(list_entry(addr, &id)["stdin_open"], json!(true));
    assert_eq!(output(addr, &id, "")["stdin_open"], json!(true));
    let (status, body) = input(addr, &id, &json!({"data": "one\n"}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["queued_bytes"], json!(4));
    wait_for_text(addr, &id, "one\n");
    // Raw bytes through base64 (here "two\n"), then text with the close.
    let (status, body) = input(addr, &id, &json!({"data_base64": "dHdvCg=="}));
    assert_eq!((status, &body["queued_bytes"]), (200, &json!(4)), "{body}");
    let (status, body) = input(addr, &id, &json!({"data": "three\n", "close": true}));
    assert_eq!((status, &body["queued_bytes"]), (200, &json!(6)), "{body}");
    let out = wait_exit(addr, &id);
    assert_eq!(out["output"], json!("one\ntwo\nthree\nend\n"));
    assert_eq!(out["exit_code"], json!(0));
    assert_eq!(out["stdin_open"], json!(false));
    assert!(out.get("input_dropped_bytes").is_none(), "{out}");
    assert_eq!(list_entry(addr, &id)["stdin_open"], json!(false));
    assert_eq!(
        input(addr, &id, &json!({"data": "x"})),
        (409, no_open_input(&id))
    );
}

#[test]
fn input_is_queued_at_once_and_bounded_per_process() {
    let server = serve(&["--listen", "127.0.0.1:0"], &[]);
    let addr = &server.addr;
    // A process that never reads: the answer still comes at once, and counts what waits.
    let id = id_of(&start(
        addr,
        &json!({"command": "sleep 30", "stdin": "pipe"}),
        &[],
    ));
    let chunk = "x".repeat(600 * 1024);
    let (status, body) = input(addr, &id, &json!({"data": chunk}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"queued_bytes": 614_400, "pending_bytes": 614_400})
    );
    // The second would take the pending bytes past 1 MiB: refused, and nothing is queued.
    let full = json!({"message": format!("Input of process \"{id}\" is full.")});
    assert_eq!(
        input(addr, &id, &json!({"data": chunk})),
        (409, full.clone())
    );
    assert_eq!(
        input(addr, &id, &json!({"data": chunk, "close": true})),
        (409, full)
    );
    let (status, body) = input(addr, &id, &json!({"data": ""}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"queued_bytes": 0, "pending_bytes": 614_400}));
    // Up to exactly 1 MiB fits.
    let rest = "y".repeat(1024 * 1024 - 614_400);
    let (status, body) = input(addr, &id, &json!({"data": rest}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["pending_bytes"], json!(1024 * 1024));
    // Meanwhile another process's input flows.
    let other = id_of(&start(
        addr,
        &json!({"command": "cat", "stdin": "pipe"}),
        &[],
    ));
    assert_eq!(
        input(addr, &other, &json!({"data": "hi\n", "close": true})).0,
        200
    );
    assert_eq!(wait_exit(addr, &other)["output"], json!("hi\n"));
    // What the process never read is counted when it exits.
    kill(addr, &id);
    let out = wait_exit(addr, &id);
    assert_eq!(out["input_dropped_bytes"], json!(1024 * 1024));
    assert_eq!(out["stdin_open"], json!(false));
    assert_eq!(
        input(addr, &id, &json!({"data": "x"})),
        (409, no_open_input(&id))
    );
}

#[test]
fn bytes_left_in_the_pipe_are_dropped_and_counted() {
    let server = serve(&["--listen", "127.0.0.1:0"], &[]);
    let addr = &server.addr;
    let id = id_of(&start(
        addr,
        &json!({"command": "read -r line; echo \"got $line\"", "stdin": "pipe"}),
        &[],
    ));
    assert_eq!(input(addr, &id, &json!({"data": "first\nunread"})).0, 200);
    let out = wait_exit(addr, &id);
    assert_eq!(out["output"], json!("got first\n"));
    assert_eq!(out["input_dropped_bytes"], json!(6));
}

#[test]
fn the_input_route_checks_in_the_contracts_order() {
    let server = serve(&["--listen", "127.0.0.1:0"], &[]);
    let addr = &server.addr;
    let chat = "6f1c1f0e-6b1a-4c57-9a0e-3c1f4f6f0a01";
    let other_chat = "6f1c1f0e-6b1a-4c57-9a0e-3c1f4f6f0a02";
    let id = id_of(&start(
        addr,
        &json!({"command": "sleep 30", "stdin": "pipe"}),
        &[("Coder-Chat-Id", chat)],
    ));
    // 1. Another chat's process, or an unknown id: 404, whatever the body.
    let not_found = |id: &str| json!({"message": format!("Process \"{id}\" not found.")});
    let reply = post(
        addr,
        &id,
        "input",
        "not json",
        &[("Coder-Chat-Id", other_chat)],
    );
    assert_eq!((reply.status, reply.json()), (404, not_found(&id)));
    let unknown = "0b6f4a1e-0000-4000-8000-000000000001";
    let reply = post(addr, unknown, "input", "not json", &[]);
    assert_eq!((reply.status, reply.json()), (404, not_found(unknown)));
    let reply = post(addr, "not-a-uuid", "input", "{}", &[]);
    assert_eq!(reply.status, 404);
    // 2. The body: not JSON, not an object, a field of the wrong type.
    for body in [
        "not json",
        "[1]",
        "{\"data\": 5}",
        "{\"close\": \"yes\"}",
        "{\"data_base64\": []}",
    ] {
        let reply = post(addr, &id, "input", body, &[]);
        assert_eq!(reply.status, 400, "{body}");
        assert_eq!(
            reply.json()["message"],
            json!("Request body must be valid JSON."),
            "{body}"
        );
    }
    // 3. Both kinds of data; 4. invalid base64; 5. neither data nor close.
    let (status, body) = input(addr, &id, &json!({"data": "a", "data_base64": "YQ=="}));
    assert_eq!(status, 400, "{body}");
    let (status, body) = input(addr, &id, &json!({"data_base64": "not base64!"}));
    assert_eq!(status, 400, "{body}");
    assert!(body.get("detail").is_some(), "{body}");
    for body in [json!({}), json!({"close": false}), json!({"data": null})] {
        assert_eq!(
            input(addr, &id, &body),
            (400, json!({"message": "Input is required."})),
            "{body}"
        );
    }
    // The body's checks come before the input's state: even a process without input.
    let plain = id_of(&start(addr, &json!({"command": "sleep 30"}), &[]));
    assert_eq!(
        input(addr, &plain, &json!({})),
        (400, json!({"message": "Input is required."}))
    );
    assert_eq!(
        input(addr, &plain, &json!({"close": true})),
        (409, no_open_input(&plain))
    );
    // The chat that owns it, and callers without a chat, may write.
    let reply = post(
        addr,
        &id,
        "input",
        "{\"data\":\"a\"}",
        &[("Coder-Chat-Id", chat)],
    );
    assert_eq!(reply.status, 200, "{:?}", reply.json());
    // A close alone answers 200; after it, 409.
    let (status, body) = input(addr, &id, &json!({"close": true}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["queued_bytes"], json!(0));
    assert_eq!(
        input(addr, &id, &json!({"data": "b"})),
        (409, no_open_input(&id))
    );
    assert_eq!(
        input(addr, &id, &json!({"close": true})),
        (409, no_open_input(&id))
    );
    // Wrong method.
    let reply = request(
        addr,
        "GET",
        &format!("/api/v0/processes/{id}/input"),
        None,
        &[],
    );
    assert_eq!(reply.status, 405);
    assert_eq!(reply.header("allow"), Some("POST"));
    kill(addr, &id);
    kill(addr, &plain);
}

#[test]
fn start_refuses_bad_stdin_and_tty_fields() {
    let server = serve(&["--listen", "127.0.0.1:0"], &[]);
    let addr = &server.addr;
    for stdin in ["\"PIPE\"", "\"\"", "\"file\""] {
        let (status, body) =
            start_status(addr, &format!("{{\"command\":\"true\",\"stdin\":{stdin}}}"));
        assert_eq!(status, 400, "{stdin}: {body}");
        assert_eq!(
            body["message"],
            json!("Field stdin must be \"null\" or \"pipe\".")
        );
    }
    let size_message = json!("Terminal size must be 1 to 1000 rows and 1 to 1000 columns.");
    for tty in [
        "{\"rows\":0,\"cols\":80}",
        "{\"rows\":24,\"cols\":0}",
        "{\"rows\":1001,\"cols\":80}",
        "{\"rows\":24,\"cols\":1001}",
    ] {
        let (status, body) = start_status(addr, &format!("{{\"command\":\"true\",\"tty\":{tty}}}"));
        assert_eq!((status, &body["message"]), (400, &size_message), "{tty}");
    }
    // Not integers that fit, or missing: the body is not what the route takes.
    for field in [
        "\"stdin\":5",
        "\"tty\":true",
        "\"tty\":{\"rows\":24}",
        "\"tty\":{\"rows\":\"24\",\"cols\":80}",
        "\"tty\":{\"rows\":-1,\"cols\":80}",
        "\"tty\":{\"rows\":70000,\"cols\":80}",
        "\"tty\":{\"rows\":2.5,\"cols\":80}",
    ] {
        let (status, body) = start_status(addr, &format!("{{\"command\":\"true\",{field}}}"));
        assert_eq!(status, 400, "{field}: {body}");
        assert_eq!(
            body["message"],
            json!("Request body must be valid JSON."),
            "{field}"
        );
    }
    // The extremes are fine.
    for tty in [
        json!({"rows": 1, "cols": 1}),
        json!({"rows": 1000, "cols": 1000}),
    ] {
        let id = id_of(&start(
            addr,
            &json!({"command": "stty size", "tty": tty}),
            &[],
        ));
        let expected = format!("{} {}\r\n", tty["rows"], tty["cols"]);
        assert_eq!(wait_exit(addr, &id)["output"], json!(expected));
    }
}

#[test]
fn a_terminal_process_runs_under_a_terminal_of_its_size() {
    // The server's own TERM does not count.
    let server = serve(&["--listen", "127.0.0.1:0"], &[("TERM", "dumb")]);
    let addr = &server.addr;
    let id = id_of(&start(
        addr,
        &json!({
            "command": "test -t 0 && test -t 1 && test -t 2 && echo tty; stty size; echo \"T=$TERM\"",
            "tty": {"rows": 24, "cols": 80},
        }),
        &[],
    ));
    let out = wait_exit(addr, &id);
    assert_eq!(out["output"], json!("tty\r\n24 80\r\nT=xterm-256color\r\n"));
    assert_eq!(out["tty"], json!({"rows": 24, "cols": 80}));
    assert_eq!(out["stdin_open"], json!(false));
    assert_eq!(
        list_entry(addr, &id)["tty"],
        json!({"rows": 24, "cols": 80})
    );
    // The request's env sets TERM.
    let id = id_of(&start(
        addr,
        &json!({"command": "echo $TERM", "tty": {"rows": 5, "cols": 5}, "env": {"TERM": "vt100"}}),
        &[],
    ));
    assert_eq!(wait_exit(addr, &id)["output"], json!("vt100\r\n"));
    // A process without a terminal keeps the server's TERM.
    let id = id_of(&start(addr, &json!({"command": "echo $TERM"}), &[]));
    assert_eq!(wait_exit(addr, &id)["output"], json!("dumb\n"));
    drop(server);
    // --env sets it for terminals too.
    let server = serve(
        &["--listen", "127.0.0.1:0", "--env", "TERM=screen"],
        &[("TERM", "dumb")],
    );
    let addr = &server.addr;
    let id = id_of(&start(
        addr,
        &json!({"command": "echo $TERM", "tty": {"rows": 5, "cols": 5}}),
        &[],
    ));
    assert_eq!(wait_exit(addr, &id)["output"], json!("screen\r\n"));
}

#[test]
fn a_terminal_process_leads_a_session_and_its_group_takes_signals() {
    let server = serve(&["--listen", "127.0.0.1:0"], &[]);
    let addr = &server.addr;
    let started = start(
        addr,
        // `stdin` is ignored with `tty`: a terminal always takes input.
        &json!({"command": "sleep 30 & echo ready; wait", "tty": {"rows": 24, "cols": 80}, "stdin": "null"}),
        &[],
    );
    let (id, pid) = (id_of(&started), started["pid"].as_i64().expect("pid"));
    wait_for_text(addr, &id, "ready");
    assert_eq!(output(addr, &id, "")["stdin_open"], json!(true));
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let fields: Vec<&str> = stat[stat.rfind(')').expect("comm") + 2..]
        .split(' ')
        .collect();
    assert_eq!(fields[2], pid.to_string(), "leads its group: {stat}");
    assert_eq!(fields[3], pid.to_string(), "leads its session: {stat}");
    assert_eq!(
        fields[5],
        pid.to_string(),
        "is the terminal's foreground group: {stat}"
    );
    let reply = post(addr, &id, "signal", "{\"signal\":\"terminate\"}", &[]);
    assert_eq!(reply.status, 200);
    let out = wait_exit(addr, &id);
    assert_eq!(out["signal"], json!("SIGTERM"));
    // A timeout reaches it as any other.
    let id = id_of(&start(
        addr,
        &json!({"command": "sleep 30", "tty": {"rows": 24, "cols": 80}, "timeout_ms": 200}),
        &[],
    ));
    assert_eq!(wait_exit(addr, &id)["timed_out"], json!(true));
}

#[test]
fn a_terminal_takes_input_and_close_writes_its_end_of_file() {
    let server = serve(&["--listen", "127.0.0.1:0"], &[]);
    let addr = &server.addr;
    let id = id_of(&start(
        addr,
        &json!({"command": "cat; echo end", "tty": {"rows": 24, "cols": 80}}),
        &[],
    ));
    let (status, body) = input(addr, &id, &json!({"data": "hello\n"}));
    assert_eq!(status, 200, "{body}");
    // For a terminal the pending count is the server's own queue only.
    assert!(
        body["pending_bytes"].as_u64().expect("pending") <= 6,
        "{body}"
    );
    wait_for_text(addr, &id, "hello\r\nhello\r\n");
    let (status, body) = input(addr, &id, &json!({"data": "tail", "close": true}));
    assert_eq!(status, 200, "{body}");
    let out = wait_exit(addr, &id);
    assert_eq!(out["exit_code"], json!(0));
    assert_eq!(out["output"], json!("hello\r\nhello\r\ntailtailend\r\n"));
    assert_eq!(
        input(addr, &id, &json!({"data": "x"})),
        (409, no_open_input(&id))
    );
}

#[test]
fn resize_sets_the_size_and_the_process_gets_sigwinch() {
    let server = serve(&["--listen", "127.0.0.1:0"], &[]);
    let addr = &server.addr;
    let id = id_of(&start(
        addr,
        &json!({
            "command": "trap 'stty size; kill $!; exit 0' WINCH; sleep 30 & echo ready; wait",
            "tty": {"rows": 24, "cols": 80},
        }),
        &[],
    ));
    wait_for_text(addr, &id, "ready");
    // Out of range, or not integers: 400, and nothing changes.
    for body in ["{\"rows\":0,\"cols\":80}", "{\"rows\":24,\"cols\":1001}"] {
        let reply = post(addr, &id, "resize", body, &[]);
        assert_eq!(reply.status, 400, "{body}");
        assert_eq!(
            reply.json()["message"],
            json!("Terminal size must be 1 to 1000 rows and 1 to 1000 columns.")
        );
    }
    for body in [
        "{\"rows\":24}",
        "{\"rows\":\"a\",\"cols\":80}",
        "{\"rows\":-5,\"cols\":80}",
        "[]",
        "x",
    ] {
        let reply = post(addr, &id, "resize", body, &[]);
        assert_eq!(reply.status, 400, "{body}");
        assert_eq!(
            reply.json()["message"],
            json!("Request body must be valid JSON.")
        );
    }
    assert_eq!(
        output(addr, &id, "")["tty"],
        json!({"rows": 24, "cols": 80})
    );
    let reply = post(addr, &id, "resize", "{\"rows\":50,\"cols\":132}", &[]);
    assert_eq!(
        (reply.status, reply.json()),
        (
            200,
            json!({"message": format!("Resized process \"{id}\" to 50x132.")})
        )
    );
    let out = wait_exit(addr, &id);
    assert_eq!(out["output"], json!("ready\r\n50 132\r\n"));
    assert_eq!(out["tty"], json!({"rows": 50, "cols": 132}));
    // Exited: no terminal any more.
    let no_terminal = |id: &str| json!({"message": format!("Process \"{id}\" has no terminal.")});
    let reply = post(addr, &id, "resize", "{\"rows\":10,\"cols\":10}", &[]);
    assert_eq!((reply.status, reply.json()), (409, no_terminal(&id)));
    // Without a terminal (a pipe, or nothing).
    for body in [
        json!({"command": "sleep 30", "stdin": "pipe"}),
        json!({"command": "sleep 30"}),
    ] {
        let id = id_of(&start(addr, &body, &[]));
        let reply = post(addr, &id, "resize", "{\"rows\":10,\"cols\":10}", &[]);
        assert_eq!((reply.status, reply.json()), (409, no_terminal(&id)));
        kill(addr, &id);
    }
    // Another chat's, or an unknown id: 404 before the body.
    let chat = "6f1c1f0e-6b1a-4c57-9a0e-3c1f4f6f0a01";
    let id = id_of(&start(
        addr,
        &json!({"command": "sleep 30", "tty": {"rows": 5, "cols": 5}}),
        &[("Coder-Chat-Id", chat)],
    ));
    let reply = post(
        addr,
        &id,
        "resize",
        "x",
        &[("Coder-Chat-Id", "6f1c1f0e-6b1a-4c57-9a0e-3c1f4f6f0a02")],
    );
    assert_eq!(reply.status, 404);
    let reply = post(
        addr,
        "0b6f4a1e-0000-4000-8000-000000000001",
        "resize",
        "x",
        &[],
    );
    assert_eq!(reply.status, 404);
    let reply = request(
        addr,
        "GET",
        &format!("/api/v0/processes/{id}/resize"),
        None,
        &[],
    );
    assert_eq!(reply.status, 405);
    kill(addr, &id);
}
