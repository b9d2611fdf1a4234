//! The wire contract through the pure request handler: every route, every error, the order of
//! checks, scope and auth, without sockets (the HTTP front end is tested separately).

use std::sync::Arc;

use procwarden::Manager;
use procwarden::handler::{Handler, Request, Response};
use serde_json::{Value, json};

fn handler() -> Handler {
    Handler::new(Arc::new(Manager::new().expect("manager")), None)
}

fn req(method: &str, target: &str, body: &str, headers: &[(&str, &str)]) -> Request {
    let mut request = Request::new(
        method,
        target,
        headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect(),
        body.as_bytes().to_vec(),
    );
    request.peer = "test".into();
    request
}

fn call(
    h: &Handler,
    method: &str,
    target: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let response: Response = h.handle(&req(method, target, body, headers));
    let status = response.status;
    let value: Value =
        serde_json::from_slice(&response.into_body_bytes()).expect("every body is JSON");
    (status, value)
}

fn get(h: &Handler, target: &str) -> (u16, Value) {
    call(h, "GET", target, "", &[])
}

/// The list, with the `Coder-Chat-Id` header set to `chat`.
fn list_as(h: &Handler, chat: &str) -> (u16, Value) {
    call(
        h,
        "GET",
        "/api/v0/processes/list",
        "",
        &[("Coder-Chat-Id", chat)],
    )
}

fn start(h: &Handler, body: Value, headers: &[(&str, &str)]) -> (u16, Value) {
    call(
        h,
        "POST",
        "/api/v0/processes/start",
        &body.to_string(),
        headers,
    )
}

fn started_id(h: &Handler, body: Value, headers: &[(&str, &str)]) -> String {
    let (status, value) = start(h, body, headers);
    assert_eq!(status, 200, "{value}");
    assert_eq!(value["started"], json!(true));
    assert!(value["pid"].as_u64().is_some());
    value["id"].as_str().expect("id").to_string()
}

fn wait_output(h: &Handler, id: &str) -> Value {
    let (status, value) = get(
        h,
        &format!("/api/v0/processes/{id}/output?wait=true&timeout_ms=20000"),
    );
    assert_eq!(status, 200, "{value}");
    assert_eq!(value["running"], json!(false), "{value}");
    value
}

/// Starts `command` and returns the output once it has exited.
fn run_shell(h: &Handler, command: &str) -> Value {
    let id = started_id(h, json!({ "command": command }), &[]);
    wait_output(h, &id)
}

fn msg(text: &str) -> Value {
    json!({ "message": text })
}

#[test]
fn root_answers_the_version() {
    let h = handler();
    assert_eq!(
        get(&h, "/"),
        (
            200,
            msg(&format!("procwarden {}", env!("CARGO_PKG_VERSION")))
        )
    );
}

#[test]
fn unknown_paths_are_404_and_wrong_methods_405() {
    let h = handler();
    assert_eq!(get(&h, "/nope").0, 404);
    assert_eq!(get(&h, "/api/v0/processes").0, 404);
    assert_eq!(get(&h, "/api/v0/processes/start").0, 405);
    assert_eq!(call(&h, "POST", "/api/v0/processes/list", "", &[]).0, 405);
    assert_eq!(call(&h, "DELETE", "/", "", &[]).0, 405);
    assert_eq!(
        call(&h, "POST", "/api/v0/processes/x/output", "", &[]).0,
        405
    );
    assert_eq!(get(&h, "/api/v0/processes/x/signal").0, 405);
}

#[test]
fn a_token_guards_every_request_before_routing() {
    let h = Handler::new(
        Arc::new(Manager::new().expect("manager")),
        Some("s3cret".into()),
    );
    assert_eq!(get(&h, "/"), (401, msg("Unauthorized.")));
    assert_eq!(get(&h, "/no/such/path"), (401, msg("Unauthorized.")));
    let wrong = [("Authorization", "Bearer nope")];
    assert_eq!(call(&h, "GET", "/", "", &wrong).0, 401);
    let basic = [("Authorization", "Basic s3cret")];
    assert_eq!(call(&h, "GET", "/", "", &basic).0, 401);
    let right = [("authorization", "Bearer s3cret")];
    assert_eq!(call(&h, "GET", "/", "", &right).0, 200);
    assert_eq!(call(&h, "GET", "/no/such/path", "", &right).0, 404);
}

#[test]
fn the_chat_header_must_be_a_uuid() {
    let h = handler();
    let invalid = msg("Invalid Coder-Chat-Id header.");
    for bad in ["nope", "00000000-0000-0000-0000-000000000000", "1234"] {
        assert_eq!(list_as(&h, bad), (400, invalid.clone()), "{bad}");
    }
    // Empty counts as absent.
    assert_eq!(list_as(&h, "").0, 200);
    // Case-insensitive: the same chat either way.
    let chat = uuid::Uuid::new_v4().to_string();
    let id = started_id(
        &h,
        json!({"command": "true"}),
        &[("Coder-Chat-Id", &chat.to_uppercase())],
    );
    let (_, list) = call(
        &h,
        "GET",
        "/api/v0/processes/list",
        "",
        &[("coder-chat-id", &chat)],
    );
    assert_eq!(list["processes"][0]["id"], json!(id));
}

#[test]
fn start_errors_in_order() {
    let h = handler();
    let (status, value) = call(&h, "POST", "/api/v0/processes/start", "{not json", &[]);
    assert_eq!(status, 400);
    assert_eq!(value["message"], json!("Request body must be valid JSON."));
    assert!(value["detail"].is_string());
    let (status, value) = start(&h, json!({"command": 5}), &[]);
    assert_eq!(
        (status, &value["message"]),
        (400, &json!("Request body must be valid JSON."))
    );
    assert_eq!(
        start(&h, json!({}), &[]),
        (400, msg("Command is required."))
    );
    assert_eq!(
        start(&h, json!({"command": ""}), &[]),
        (400, msg("Command is required."))
    );
    assert_eq!(start(&h, json!({"command": "", "argv": null}), &[]).0, 400);
    for body in [
        json!({"command": "true", "argv": ["true"]}),
        json!({"argv": []}),
        json!({"argv": [""]}),
        json!({"command": "true", "env": {"A=B": "x"}}),
        json!({"command": "true", "env": {"": "x"}}),
        json!({"command": "true", "env": {"A": "x\u{0}"}}),
        json!({"command": "a\u{0}b"}),
        json!({"command": "true", "workdir": "relative"}),
    ] {
        let (status, value) = start(&h, body.clone(), &[]);
        assert_eq!(status, 400, "{body}: {value}");
        assert!(value["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let (status, value) = start(
        &h,
        json!({"command": "true", "workdir": "/no/such/dir"}),
        &[],
    );
    assert_eq!(
        (status, value),
        (
            400,
            msg("Working directory \"/no/such/dir\" does not exist.")
        )
    );
    // Unknown fields are ignored, missing optional ones take defaults, "" workdir is absent.
    let id = started_id(
        &h,
        json!({"command": "pwd", "workdir": "", "extra": [1, 2]}),
        &[],
    );
    assert_eq!(wait_output(&h, &id)["exit_code"], json!(0));
}

#[test]
fn a_missing_program_is_the_callers_400_with_detail() {
    let h = handler();
    let (status, value) = start(&h, json!({"argv": ["/no/such/program"]}), &[]);
    assert_eq!(status, 400);
    assert_eq!(
        value["message"],
        json!("Program \"/no/such/program\" not found.")
    );
    assert!(value["detail"].is_string());
    let (status, value) = start(&h, json!({"argv": ["procwarden-no-such-program"]}), &[]);
    assert_eq!(
        (status, value["message"].clone()),
        (
            400,
            json!("Program \"procwarden-no-such-program\" not found.")
        )
    );
    let (status, value) = start(&h, json!({"command": "x".repeat(200 * 1024)}), &[]);
    assert_eq!(status, 400, "{value}");
}

#[test]
fn the_running_limit_answers_429() {
    let manager = Manager::builder().max_running(1).build().expect("manager");
    let h = Handler::new(Arc::new(manager), None);
    let id = started_id(&h, json!({"command": "sleep 30"}), &[]);
    assert_eq!(
        start(&h, json!({"command": "true"}), &[]),
        (429, msg("Too many running processes."))
    );
    let signal = json!({"signal": "kill"}).to_string();
    assert_eq!(
        call(
            &h,
            "POST",
            &format!("/api/v0/processes/{id}/signal"),
            &signal,
            &[]
        )
        .0,
        200
    );
}

#[test]
fn a_closed_manager_answers_503() {
    let manager = Arc::new(Manager::new().expect("manager"));
    let h = Handler::new(Arc::clone(&manager), None);
    manager.close();
    assert_eq!(
        start(&h, json!({"command": "true"}), &[]),
        (503, msg("Server is shutting down."))
    );
    // Validation still comes first.
    assert_eq!(start(&h, json!({}), &[]).0, 400);
}

#[test]
fn output_reports_exit_and_fields() {
    let h = handler();
    let value = run_shell(&h, "echo out; echo err >&2; exit 3");
    assert_eq!(
        value,
        json!({"output": "out\nerr\n", "running": false, "exit_code": 3, "next_cursor": 8,
               "command": "echo out; echo err >&2; exit 3"})
    );
    let id = started_id(&h, json!({"argv": ["true"]}), &[]);
    assert_eq!(
        wait_output(&h, &id)["exit_code"],
        json!(0),
        "exit code 0 is present"
    );
    // A cursor reads only what is new.
    let (_, value) = get(&h, &format!("/api/v0/processes/{id}/output?cursor=0"));
    assert_eq!(value["next_cursor"], json!(0));
}

#[test]
fn output_of_a_big_stream_carries_truncation() {
    let h = handler();
    let value = run_shell(&h, "head -c 100000 /dev/zero | tr '\\0' 'a'");
    let omitted = 100_000 - 32_768;
    assert_eq!(
        value["truncated"],
        json!({
            "original_bytes": 100_000,
            "retained_bytes": value["output"].as_str().map(str::len),
            "omitted_bytes": omitted,
            "strategy": "head_tail"
        })
    );
}

#[test]
fn output_query_parameters_are_checked() {
    let h = handler();
    let id = started_id(&h, json!({"command": "sleep 30"}), &[]);
    for query in [
        "cursor=",
        "cursor=x",
        "cursor=-1",
        "timeout_ms=",
        "timeout_ms=1.5",
        "cursor=99999999999999999999",
    ] {
        let (status, _) = get(&h, &format!("/api/v0/processes/{id}/output?{query}"));
        assert_eq!(status, 400, "{query}");
    }
    // wait other than "true" means no wait.
    let (status, value) = get(&h, &format!("/api/v0/processes/{id}/output?wait=yes"));
    assert_eq!((status, &value["running"]), (200, &json!(true)));
    // A wait that ends before exit still answers 200, running.
    let (status, value) = get(
        &h,
        &format!("/api/v0/processes/{id}/output?wait=true&timeout_ms=50"),
    );
    assert_eq!((status, &value["running"]), (200, &json!(true)));
    assert!(value.get("exit_code").is_none());
    // A cursor past the end is clamped.
    let (status, value) = get(
        &h,
        &format!("/api/v0/processes/{id}/output?cursor=18446744073709551615"),
    );
    assert_eq!((status, &value["next_cursor"]), (200, &json!(0)));
    let kill = json!({"signal": "kill"}).to_string();
    call(
        &h,
        "POST",
        &format!("/api/v0/processes/{id}/signal"),
        &kill,
        &[],
    );
}

#[test]
fn unknown_and_foreign_processes_are_not_found() {
    let h = handler();
    let unknown = uuid::Uuid::new_v4().to_string();
    let expected = |id: &str| (404, msg(&format!("Process \"{id}\" not found.")));
    assert_eq!(
        get(&h, &format!("/api/v0/processes/{unknown}/output")),
        expected(&unknown)
    );
    assert_eq!(
        get(&h, "/api/v0/processes/not-a-uuid/output"),
        expected("not-a-uuid")
    );
    let (one, two) = (
        uuid::Uuid::new_v4().to_string(),
        uuid::Uuid::new_v4().to_string(),
    );
    let mine = started_id(&h, json!({"command": "true"}), &[("Coder-Chat-Id", &one)]);
    let shared = started_id(&h, json!({"command": "true"}), &[]);
    let target = |id: &str| format!("/api/v0/processes/{id}/output");
    assert_eq!(
        call(&h, "GET", &target(&mine), "", &[("Coder-Chat-Id", &two)]),
        expected(&mine)
    );
    assert_eq!(
        call(&h, "GET", &target(&mine), "", &[("Coder-Chat-Id", &one)]).0,
        200
    );
    assert_eq!(
        call(&h, "GET", &target(&shared), "", &[("Coder-Chat-Id", &two)]).0,
        200
    );
    // Lists: a chat sees only its own; no chat sees all.
    assert_eq!(list_as(&h, &two).1["processes"], json!([]));
    let (_, list) = get(&h, "/api/v0/processes/list");
    assert_eq!(list["processes"].as_array().map(Vec::len), Some(2));
}

#[test]
fn list_limit_is_checked_and_applied() {
    let h = handler();
    for _ in 0..12 {
        let id = started_id(&h, json!({"command": "true"}), &[]);
        wait_output(&h, &id);
    }
    let count = |target: &str| get(&h, target).1["processes"].as_array().map(Vec::len);
    assert_eq!(count("/api/v0/processes/list"), Some(10));
    assert_eq!(count("/api/v0/processes/list?limit=3"), Some(3));
    assert_eq!(count("/api/v0/processes/list?limit=1000"), Some(12));
    for bad in ["limit=0", "limit=1001", "limit=", "limit=x", "limit=-1"] {
        assert_eq!(
            get(&h, &format!("/api/v0/processes/list?{bad}")).0,
            400,
            "{bad}"
        );
    }
    let (_, list) = get(&h, "/api/v0/processes/list?limit=1");
    let row = &list["processes"][0];
    for field in [
        "id",
        "command",
        "workdir",
        "background",
        "running",
        "exit_code",
        "started_at_unix",
        "exited_at_unix",
        "pid",
        "duration_ms",
    ] {
        assert!(row.get(field).is_some(), "{field} missing in {row}");
    }
    assert!(row.get("signal").is_none() && row.get("timed_out").is_none());
}

#[test]
fn signal_checks_in_order() {
    let h = handler();
    let (one, two) = (
        uuid::Uuid::new_v4().to_string(),
        uuid::Uuid::new_v4().to_string(),
    );
    let id = started_id(
        &h,
        json!({"command": "sleep 30"}),
        &[("Coder-Chat-Id", &one)],
    );
    let target = format!("/api/v0/processes/{id}/signal");
    let post = |body: &str, chat: &str| call(&h, "POST", &target, body, &[("Coder-Chat-Id", chat)]);
    // 1. Another chat's process: 404 even before the body is looked at.
    assert_eq!(post("{broken", &two).0, 404);
    // 2-4. The body.
    assert_eq!(
        post("{broken", &one).1["message"],
        json!("Request body must be valid JSON.")
    );
    assert_eq!(post("{\"signal\": 9}", &one).0, 400);
    for missing in ["{}", "{\"signal\": null}", "{\"signal\": \"\"}"] {
        assert_eq!(
            post(missing, &one),
            (400, msg("Signal is required.")),
            "{missing}"
        );
    }
    assert_eq!(
        post("{\"signal\": \"hup\"}", &one),
        (
            400,
            msg("Unsupported signal \"hup\". Use \"kill\", \"terminate\" or \"interrupt\".")
        )
    );
    // 5. Unknown id: after the body checks.
    let unknown = uuid::Uuid::new_v4().to_string();
    let unknown_target = format!("/api/v0/processes/{unknown}/signal");
    assert_eq!(call(&h, "POST", &unknown_target, "{broken", &[]).0, 400);
    assert_eq!(
        call(&h, "POST", &unknown_target, "{\"signal\": \"kill\"}", &[]),
        (404, msg(&format!("Process \"{unknown}\" not found.")))
    );
    // Success, then 6. not running.
    assert_eq!(
        post("{\"signal\": \"kill\"}", &one),
        (
            200,
            msg(&format!("Signal \"kill\" sent to process \"{id}\"."))
        )
    );
    let value = wait_output(&h, &id);
    assert_eq!(
        (&value["exit_code"], &value["signal"]),
        (&json!(-1), &json!("SIGKILL"))
    );
    assert_eq!(
        post("{\"signal\": \"terminate\"}", &one),
        (409, msg(&format!("Process \"{id}\" is not running.")))
    );
}

#[test]
fn timeouts_are_reported() {
    let h = handler();
    let id = started_id(&h, json!({"command": "sleep 30", "timeout_ms": 100}), &[]);
    let value = wait_output(&h, &id);
    assert_eq!(value["timed_out"], json!(true));
    assert_eq!(value["signal"], json!("SIGTERM"));
    let (_, list) = get(&h, "/api/v0/processes/list");
    assert_eq!(list["processes"][0]["timed_out"], json!(true));
}

#[test]
fn argv_is_listed_with_shell_quoting() {
    let h = handler();
    let id = started_id(&h, json!({"argv": ["echo", "a b", "it's"]}), &[]);
    assert_eq!(wait_output(&h, &id)["output"], json!("a b it's\n"));
    let (_, list) = get(&h, "/api/v0/processes/list");
    assert_eq!(
        list["processes"][0]["command"],
        json!("echo 'a b' 'it'\"'\"'s'")
    );
}
