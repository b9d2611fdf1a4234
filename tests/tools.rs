//! The agent tools over the in-process manager, and their recovery from transport errors over a
//! fake API.

mod common;

use std::cell::Cell;
use std::sync::Arc;
use std::time::Duration;

use procwarden::Manager;
use procwarden::api;
use procwarden::tools::{self, ApiError, LocalApi, ProcessApi};
use serde_json::{Value, json};

use common::{TOOL_NAMES, background_id, execute};

/// Asserts an `execute` or `process_output` result's `success`, `output` and `exit_code`.
#[track_caller]
fn assert_result(result: &Value, success: bool, output: &str, exit_code: i64) {
    assert_eq!(
        (&result["success"], &result["output"], &result["exit_code"]),
        (&json!(success), &json!(output), &json!(exit_code)),
        "{result}"
    );
}

fn local() -> LocalApi {
    LocalApi::new(Arc::new(Manager::new().expect("manager")), None)
}

#[test]
fn foreground_success_and_failure() {
    let api = local();
    let ok = execute(&api, json!({"command": "echo hi"}));
    assert_result(&ok, true, "hi\n", 0);
    assert!(ok["wall_duration_ms"].is_u64());
    let bad = execute(&api, json!({"command": "echo oops >&2; exit 42"}));
    assert_result(&bad, false, "oops\n", 42);
}

#[test]
fn every_process_gets_the_agent_environment() {
    let out = execute(
        &local(),
        json!({"command": "echo $GIT_EDITOR $EDITOR $GIT_TERMINAL_PROMPT $NO_COLOR $TERM $PAGER $GIT_PAGER $PROCWARDEN_AGENT"}),
    );
    assert_eq!(out["output"], json!("true true 0 1 dumb cat cat 1\n"));
}

#[test]
fn background_and_the_trailing_ampersand() {
    let api = local();
    for args in [
        json!({"command": "echo started; sleep 0.2", "run_in_background": true}),
        json!({"command": "echo started; sleep 0.2 &"}),
    ] {
        let result = execute(&api, args);
        assert_eq!(result["success"], json!(true));
        assert_eq!(
            (&result["exit_code"], &result["wall_duration_ms"]),
            (&json!(0), &json!(0))
        );
        let id = background_id(&result);
        let out = tools::call(
            &api,
            "process_output",
            &json!({"process_id": id, "wait_timeout": "10s"}),
        );
        assert_result(&out, true, "started\n", 0);
    }
}

#[test]
fn a_timeout_leaves_the_process_running_and_readable() {
    let api = local();
    let result = execute(
        &api,
        json!({"command": "echo partial; sleep 30", "timeout": "300ms"}),
    );
    assert_eq!(result["success"], json!(false));
    assert_eq!(result["exit_code"], json!(-1));
    assert_eq!(result["error"], json!("command timed out after 300ms"));
    assert_eq!(result["output"], json!("partial\n"));
    let id = background_id(&result);
    let snapshot = tools::call(
        &api,
        "process_output",
        &json!({"process_id": id, "wait_timeout": "0s"}),
    );
    assert_eq!(
        (&snapshot["success"], &snapshot["note"]),
        (&json!(true), &json!("process is still running"))
    );
    assert_eq!(snapshot["next_cursor"], json!(8));
    let listed = tools::call(&api, "process_list", &json!({}));
    assert_eq!(listed["processes"][0]["id"], json!(id));
    let stopped = tools::call(
        &api,
        "process_signal",
        &json!({"process_id": id, "signal": "kill"}),
    );
    assert_eq!(stopped["success"], json!(true));
    let done = tools::call(
        &api,
        "process_output",
        &json!({"process_id": id, "cursor": 8}),
    );
    assert_eq!(
        (&done["output"], &done["exit_code"]),
        (&json!(""), &json!(-1))
    );
}

#[test]
fn file_dumps_get_a_note() {
    let api = local();
    let out = execute(&api, json!({"command": "cat /etc/hostname"}));
    assert_eq!(out["note"], json!(tools::FILE_DUMP_NOTE));
    let out = execute(&api, json!({"command": "echo cat"}));
    assert!(out.get("note").is_none());
}

#[test]
fn tool_errors_are_structured_results() {
    let api = local();
    assert_eq!(
        execute(&api, json!({"command": "  "})),
        json!({"success": false, "error": "command is required"})
    );
    let bad_timeout = execute(&api, json!({"command": "true", "timeout": "soon"}));
    assert!(
        bad_timeout["error"]
            .as_str()
            .is_some_and(|e| e.contains("\"soon\"")),
        "{bad_timeout}"
    );
    let missing = execute(&api, json!({"timeout": "1s"}));
    assert_eq!(missing["success"], json!(false));
    let unknown = tools::call(&api, "rm_rf", &json!({}));
    assert_eq!(unknown["success"], json!(false));
    let bad_dir = execute(&api, json!({"command": "true", "workdir": "/no/such/dir"}));
    assert_eq!(
        bad_dir["error"],
        json!("Working directory \"/no/such/dir\" does not exist.")
    );
    let not_found = tools::call(&api, "process_output", &json!({"process_id": "nope"}));
    assert_eq!(not_found["error"], json!("Process \"nope\" not found."));
    let bad_signal = tools::call(
        &api,
        "process_signal",
        &json!({"process_id": "x", "signal": "hup"}),
    );
    assert_eq!(bad_signal["success"], json!(false));
}

#[test]
fn definitions_name_the_four_tools_with_schemas() {
    let defs = tools::definitions();
    let names: Vec<&str> = defs
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|d| d["name"].as_str())
        .collect();
    assert_eq!(names, TOOL_NAMES);
    for def in defs.as_array().expect("array") {
        assert_eq!(def["parameters"]["type"], json!("object"));
        assert!(def["description"].as_str().is_some_and(|d| d.len() > 20));
    }
    let description = &defs[0]["description"];
    for phrase in ["sh -c", "run_in_background", "&"] {
        assert!(
            description.as_str().is_some_and(|d| d.contains(phrase)),
            "{phrase}"
        );
    }
}

/// A fake API whose blocking wait always fails to transport, and whose snapshot answers as told.
struct Flaky {
    snapshot: Result<api::OutputResponse, ApiError>,
    waits: Cell<u32>,
}

fn transport() -> ApiError {
    ApiError {
        status: None,
        message: "connection reset".into(),
        detail: None,
    }
}

fn out(running: bool) -> api::OutputResponse {
    api::OutputResponse {
        output: "so far\n".into(),
        truncated: None,
        running,
        exit_code: (!running).then_some(0),
        signal: None,
        timed_out: None,
        next_cursor: 7,
        matched: None,
        line_match: None,
        log_truncated: None,
        log_error: None,
        command: "c".into(),
        stdin_open: None,
        tty: None,
        input_dropped_bytes: None,
    }
}

impl ProcessApi for Flaky {
    fn start(&self, _: &api::StartRequest) -> Result<api::StartResponse, ApiError> {
        Ok(api::StartResponse {
            id: "p1".into(),
            started: true,
            pid: Some(1),
        })
    }
    fn output(
        &self,
        _: &str,
        _: Option<u64>,
        wait: Option<Duration>,
    ) -> Result<api::OutputResponse, ApiError> {
        if wait.is_some() {
            self.waits.set(self.waits.get() + 1);
            return Err(transport());
        }
        self.snapshot.clone()
    }
    fn list(&self, _: usize) -> Result<api::ListResponse, ApiError> {
        Ok(api::ListResponse {
            processes: vec![],
            protocol_version: None,
            agent_instance_id: None,
        })
    }
    fn signal(&self, _: &str, _: &str) -> Result<api::Message, ApiError> {
        Ok(api::Message::new("ok"))
    }
}

#[test]
fn a_transport_error_recovers_through_one_snapshot() {
    let exited = Flaky {
        snapshot: Ok(out(false)),
        waits: Cell::new(0),
    };
    let result = execute(&exited, json!({"command": "make"}));
    assert_result(&result, true, "so far\n", 0);
    assert_eq!(exited.waits.get(), 1);

    let running = Flaky {
        snapshot: Ok(out(true)),
        waits: Cell::new(0),
    };
    let result = execute(&running, json!({"command": "make"}));
    assert_eq!(
        (&result["success"], &result["background_process_id"]),
        (&json!(false), &json!("p1"))
    );
    assert_eq!(result["output"], json!("so far\n"));
    assert!(
        result["error"]
            .as_str()
            .is_some_and(|e| e.contains("process_output")),
        "{result}"
    );

    let broken = Flaky {
        snapshot: Err(transport()),
        waits: Cell::new(0),
    };
    let result = execute(&broken, json!({"command": "make"}));
    assert_eq!(
        (&result["success"], &result["background_process_id"]),
        (&json!(false), &json!("p1"))
    );
    assert!(
        result["error"]
            .as_str()
            .is_some_and(|e| e.contains("connection reset")),
        "{result}"
    );
}

/// Checks `value` against the part of JSON Schema the tool schemas use (`type`, `properties`,
/// `required`, `items`, `enum`, `minimum`), and more strictly than a validator: every key of an
/// object must be one its schema names, so a field added to a result without its schema fails.
fn conforms(schema: &Value, value: &Value, path: &str) -> Result<(), String> {
    let kind = schema["type"].as_str().unwrap_or_default();
    let type_ok = match kind {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "boolean" => value.is_boolean(),
        other => return Err(format!("{path}: schema type {other:?} not handled")),
    };
    if !type_ok {
        return Err(format!("{path}: {value} is not {kind}"));
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        return Err(format!("{path}: {value} not in {allowed:?}"));
    }
    if let Some(min) = schema["minimum"].as_i64()
        && value.as_i64().is_some_and(|v| v < min)
    {
        return Err(format!("{path}: {value} below {min}"));
    }
    if let Some(object) = value.as_object() {
        for required in schema["required"].as_array().into_iter().flatten() {
            let key = required.as_str().unwrap_or_default();
            if !object.contains_key(key) {
                return Err(format!("{path}: missing {key}"));
            }
        }
        for (key, field) in object {
            let field_schema = &schema["properties"][key];
            if field_schema.is_null() {
                return Err(format!("{path}: {key} is not in the schema"));
            }
            conforms(field_schema, field, &format!("{path}.{key}"))?;
        }
    }
    if let Some(items) = value.as_array() {
        for (i, item) in items.iter().enumerate() {
            conforms(&schema["items"], item, &format!("{path}[{i}]"))?;
        }
    }
    Ok(())
}

/// An API whose every call fails to transport (a server that is down).
struct Down;

impl ProcessApi for Down {
    fn start(&self, _: &api::StartRequest) -> Result<api::StartResponse, ApiError> {
        Err(transport())
    }
    fn output(
        &self,
        _: &str,
        _: Option<u64>,
        _: Option<Duration>,
    ) -> Result<api::OutputResponse, ApiError> {
        Err(transport())
    }
    fn list(&self, _: usize) -> Result<api::ListResponse, ApiError> {
        Err(transport())
    }
    fn signal(&self, _: &str, _: &str) -> Result<api::Message, ApiError> {
        Err(transport())
    }
}

#[test]
fn every_result_matches_its_output_schema() {
    let api = local();
    let defs = tools::definitions();
    let schema = |name: &str| -> Value {
        defs.as_array()
            .expect("array")
            .iter()
            .find(|d| d["name"] == json!(name))
            .map(|d| d["outputSchema"].clone())
            .expect(name)
    };
    let background = execute(
        &api,
        json!({"command": "echo bg; sleep 30", "run_in_background": true}),
    );
    let id = background["background_process_id"]
        .as_str()
        .expect("id")
        .to_string();
    let big = execute(
        &api,
        json!({"command": "head -c 100000 /dev/zero | tr '\\0' x", "run_in_background": true}),
    );
    let big_id = big["background_process_id"]
        .as_str()
        .expect("id")
        .to_string();
    // A stdin pipe that is never read (started through the API: `execute` closes the pipes it
    // makes): the input is dropped at the exit, and counted.
    let sleeper = api
        .start(&api::StartRequest {
            command: Some("sleep 1".into()),
            stdin: Some("pipe".into()),
            ..api::StartRequest::default()
        })
        .expect("start");
    let input_dropped = tools::call(
        &api,
        "process_input",
        &json!({"process_id": sleeper.id, "input": "z".repeat(100_000), "yield_ms": 10_000}),
    );
    assert!(
        input_dropped["input_dropped_bytes"].as_u64() > Some(0),
        "{input_dropped}"
    );
    // More new output than a tool answer carries.
    let chatty = api
        .start(&api::StartRequest {
            command: Some("read x; seq 1 20000; sleep 30".into()),
            stdin: Some("pipe".into()),
            ..api::StartRequest::default()
        })
        .expect("start");
    let input_big = tools::call(
        &api,
        "process_input",
        &json!({"process_id": chatty.id, "input": "go\n", "yield_ms": 3000}),
    );
    assert!(input_big["truncated"].is_object(), "{input_big}");
    assert!(input_big["note"].is_string(), "{input_big}");
    let done = execute(&api, json!({"command": "echo done"}));
    let done_id = {
        let list = tools::call(&api, "process_list", &json!({}));
        list["processes"]
            .as_array()
            .and_then(|p| p.iter().find(|p| p["running"] == json!(false)))
            .and_then(|p| p["id"].as_str())
            .expect("an exited process")
            .to_string()
    };
    let logged = execute(&api, json!({"command": "seq 1 20000"}));
    let logged_id = logged["process_id"].as_str().expect("id").to_string();
    let cases = [
        ("execute", logged),
        (
            "process_log_search",
            tools::call(
                &api,
                "process_log_search",
                &json!({"process_id": logged_id, "pattern": "^1", "limit": 2}),
            ),
        ),
        (
            "process_log_search",
            tools::call(
                &api,
                "process_log_search",
                &json!({"process_id": logged_id, "pattern": "", "limit": 1000}),
            ),
        ),
        (
            "process_log_search",
            tools::call(
                &api,
                "process_log_search",
                &json!({"process_id": id, "pattern": "x"}),
            ),
        ),
        (
            "process_log_read",
            tools::call(&api, "process_log_read", &json!({"process_id": logged_id})),
        ),
        (
            "process_log_read",
            tools::call(&api, "process_log_read", &json!({"process_id": id})),
        ),
        ("execute", background),
        ("execute", done),
        ("execute", execute(&api, json!({"command": "exit 4"}))),
        (
            "execute",
            execute(&api, json!({"command": "cat /etc/hostname"})),
        ),
        // Over 32 KiB: truncated, and a note that it was cut.
        (
            "execute",
            execute(
                &api,
                json!({"command": "head -c 100000 /dev/zero | tr '\\0' x"}),
            ),
        ),
        (
            "execute",
            execute(&api, json!({"command": "sleep 5", "timeout": "100ms"})),
        ),
        (
            "execute",
            execute(&api, json!({"command": "true", "timeout": "soon"})),
        ),
        ("execute", execute(&api, json!({"command": ""}))),
        (
            "execute",
            execute(&api, json!({"command": "true", "workdir": "/no/such/dir"})),
        ),
        (
            "execute",
            tools::call(&api, "execute", &json!({"timeout": 1})),
        ),
        (
            "process_output",
            tools::call(
                &api,
                "process_output",
                &json!({"process_id": id, "wait_timeout": "0s"}),
            ),
        ),
        (
            "process_output",
            tools::call(
                &api,
                "process_output",
                &json!({"process_id": done_id, "cursor": 2}),
            ),
        ),
        (
            "process_output",
            tools::call(&api, "process_output", &json!({"process_id": "nope"})),
        ),
        (
            "process_output",
            tools::call(
                &api,
                "process_output",
                &json!({"process_id": big_id, "wait_timeout": "10s"}),
            ),
        ),
        (
            "process_list",
            tools::call(&api, "process_list", &json!({})),
        ),
        (
            "process_list",
            tools::call(&Down, "process_list", &json!({})),
        ),
        ("execute", execute(&Down, json!({"command": "true"}))),
        (
            "process_signal",
            tools::call(
                &api,
                "process_signal",
                &json!({"process_id": id, "signal": "kill"}),
            ),
        ),
        (
            "process_signal",
            tools::call(
                &api,
                "process_signal",
                &json!({"process_id": done_id, "signal": "kill"}),
            ),
        ),
        (
            "process_signal",
            tools::call(&api, "process_signal", &json!({})),
        ),
        (
            "execute",
            execute(
                &api,
                json!({"command": "echo up; sleep 30", "wait_for": "^up$", "timeout": "20s"}),
            ),
        ),
        (
            "execute",
            execute(&api, json!({"command": "exit 2", "wait_for": "up"})),
        ),
        (
            "process_output",
            tools::call(
                &api,
                "process_output",
                &json!({"process_id": done_id, "wait_for": "."}),
            ),
        ),
        (
            "process_wait",
            tools::call(
                &api,
                "process_wait",
                &json!({"process_ids": [done_id], "timeout": "1s"}),
            ),
        ),
        (
            "process_wait",
            tools::call(&api, "process_wait", &json!({"process_ids": ["nope"]})),
        ),
        ("process_input", input_dropped),
        ("process_input", input_big),
        (
            "process_input",
            tools::call(
                &api,
                "process_input",
                &json!({"process_id": "nope", "input": "x"}),
            ),
        ),
    ];
    let mut fields = std::collections::BTreeSet::new();
    for (name, result) in &cases {
        if let Err(e) = conforms(&schema(name), result, name) {
            panic!("{e}\n{result:#}");
        }
        fields.extend(
            result
                .as_object()
                .expect("object")
                .keys()
                .map(|k| format!("{name}.{k}")),
        );
    }
    // The cases reach every field the schemas name, so none is described but never produced.
    for name in [
        "execute",
        "process_output",
        "process_list",
        "process_signal",
        "process_wait",
        "process_log_search",
        "process_input",
    ] {
        for key in schema(name)["properties"]
            .as_object()
            .expect("properties")
            .keys()
        {
            assert!(
                fields.contains(&format!("{name}.{key}")),
                "{name}.{key} never produced"
            );
        }
    }
}

#[test]
fn a_cancelled_call_stops_waiting_and_leaves_the_process_running() {
    let manager = Arc::new(Manager::new().expect("manager"));
    let interrupt = procwarden::Interrupt::new();
    let api = LocalApi::new(Arc::clone(&manager), None).interruptible(&interrupt);
    let lines = std::sync::Mutex::new(Vec::new());
    let report = |p: &tools::Progress| {
        lines.lock().expect("lock").push(p.line.clone());
        interrupt.interrupt();
    };
    let context = tools::CallContext::new()
        .cancel(&interrupt)
        .progress(&report);
    let begun = std::time::Instant::now();
    let result = tools::call_with(
        &api,
        "execute",
        &json!({"command": "echo started; sleep 30", "timeout": "5m"}),
        &context,
    );
    assert!(begun.elapsed() < Duration::from_secs(10), "{result}");
    assert_eq!(*lines.lock().expect("lock"), ["started"]);
    assert_eq!(result["success"], json!(false));
    assert!(
        result["error"]
            .as_str()
            .is_some_and(|e| e.contains(tools::CANCELLED)),
        "{result}"
    );
    let id = result["background_process_id"].as_str().expect("id");
    let list = tools::call(&local_of(&manager), "process_list", &json!({}));
    assert_eq!(list["processes"][0]["id"], json!(id));
    assert_eq!(list["processes"][0]["running"], json!(true));
    // Already cancelled: nothing more starts.
    let again = tools::call_with(&api, "execute", &json!({"command": "true"}), &context);
    assert_eq!(again["error"], json!(tools::CANCELLED));
    let list = tools::call(&local_of(&manager), "process_list", &json!({}));
    assert_eq!(list["processes"].as_array().map(Vec::len), Some(1));
    manager.close();
}

fn local_of(manager: &Arc<Manager>) -> LocalApi {
    LocalApi::new(Arc::clone(manager), None)
}

/// Calls `process_input` on `id` until the output gathered (each answer holds only what is
/// new) contains `needle`, against a deadline; returns the gathered output and the last answer.
#[track_caller]
fn gather(
    api: &dyn ProcessApi,
    context: &tools::CallContext<'_>,
    id: &str,
    input: &str,
    needle: &str,
) -> (String, Value) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut seen = String::new();
    let mut args = json!({"process_id": id, "input": input, "yield_ms": 2000});
    loop {
        let answer = tools::call_with(api, "process_input", &args, context);
        assert_eq!(answer["success"], json!(true), "{answer}");
        seen.push_str(answer["output"].as_str().expect("output"));
        if seen.contains(needle) || answer["running"] == json!(false) {
            return (seen, answer);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{needle:?} not seen; so far {seen:?}"
        );
        // Only wait for more from now on.
        args["input"] = json!("");
    }
}

#[test]
fn execute_writes_stdin_then_closes_it() {
    let api = local();
    let text = "line one\nline two\nno newline at the end";
    let result = execute(&api, json!({"command": "cat", "stdin": text}));
    assert_result(&result, true, text, 0);
    // A program that reads to the end gets exactly the bytes, and then end of file.
    let result = execute(
        &api,
        json!({"command": "wc -c; read x || echo eof", "stdin": "12345"}),
    );
    assert_result(&result, true, "5\neof\n", 0);
    let result = execute(&api, json!({"command": "cat; echo done", "stdin": ""}));
    assert_result(&result, true, "done\n", 0);
    // Too much is refused before anything starts.
    let huge = "x".repeat(tools::MAX_EXECUTE_STDIN_BYTES + 1);
    let result = execute(&api, json!({"command": "cat", "stdin": huge}));
    assert_eq!(result["success"], json!(false), "{}", result["error"]);
    assert!(
        result["error"]
            .as_str()
            .is_some_and(|e| e.contains("stdin"))
    );
}

#[test]
fn execute_under_a_terminal_reads_it_plain() {
    let api = local();
    let (rows, cols) = tools::TOOL_TTY_SIZE;
    let result = execute(
        &api,
        json!({"command": "test -t 0 && test -t 1 && echo terminal; stty size; printf '\\033[1;31mred\\033[0m 10%%\\r20%%\\r30%%\\n'", "tty": true}),
    );
    assert_result(
        &result,
        true,
        &format!("terminal\n{rows} {cols}\n30% 10%\n"),
        0,
    );
    // Text on stdin reaches a terminal too, and the end of file after it.
    let result = execute(
        &api,
        json!({"command": "read a; echo \"got $a\"; cat; echo end", "tty": true, "stdin": "hello\n"}),
    );
    assert_eq!(result["exit_code"], json!(0), "{result}");
    let output = result["output"].as_str().expect("output");
    assert!(output.ends_with("got hello\nend\n"), "{output:?}");
}

#[test]
fn process_input_answers_a_prompt_and_returns_only_what_is_new() {
    let api = local();
    let positions = tools::ReadPositions::new();
    let context = tools::CallContext::new().positions(&positions);
    let started = tools::call_with(
        &api,
        "execute",
        &json!({"command": "echo ready; while read -r line; do echo \"got $line\"; done; echo bye", "tty": true, "run_in_background": true}),
        &context,
    );
    let id = background_id(&started);
    // The first answer starts where this session last read: the start, so `ready` is in it.
    // (Waiting for it before typing: a terminal echoes what is typed ahead at once.)
    let (seen, _) = gather(&api, &context, &id, "", "ready");
    assert_eq!(seen, "ready\n");
    let (seen, _) = gather(&api, &context, &id, "one\n", "got one");
    assert_eq!(seen, "one\ngot one\n");
    // The next has only what is new.
    let (seen, answer) = gather(&api, &context, &id, "two\n", "got two");
    assert_eq!(seen, "two\ngot two\n");
    assert_eq!(answer["running"], json!(true));
    assert_eq!(positions.get(&id).map(|(_, tty)| tty), Some(true));
    // Close: the terminal's end of file ends the loop, and the exit is reported.
    let answer = tools::call_with(
        &api,
        "process_input",
        &json!({"process_id": id, "input": "", "close": true, "yield_ms": 5000}),
        &context,
    );
    let (rest, last) = if answer["running"] == json!(false) {
        (
            answer["output"].as_str().unwrap_or_default().to_string(),
            answer,
        )
    } else {
        let (more, last) = gather(&api, &context, &id, "", "never printed");
        (
            format!("{}{more}", answer["output"].as_str().unwrap_or_default()),
            last,
        )
    };
    assert!(rest.ends_with("bye\n"), "{rest:?}");
    assert_eq!(last["running"], json!(false), "{last}");
    assert_eq!(last["exit_code"], json!(0), "{last}");
}

#[test]
fn process_input_talks_to_a_python_repl() {
    let api = local();
    let positions = tools::ReadPositions::new();
    let context = tools::CallContext::new().positions(&positions);
    let started = tools::call_with(
        &api,
        "execute",
        &json!({"command": "PYTHON_BASIC_REPL=1 exec python3 -q -i", "tty": true, "run_in_background": true}),
        &context,
    );
    let id = background_id(&started);
    // The prompt first: what is typed ahead would be echoed before it.
    gather(&api, &context, &id, "", ">>> ");
    let (seen, _) = gather(&api, &context, &id, "print(6 * 7)\n", "42\n");
    assert!(seen.starts_with("print(6 * 7)\n42\n"), "{seen:?}");
    // Ctrl-C is a byte for the terminal, which turns it into KeyboardInterrupt.
    let (seen, _) = gather(
        &api,
        &context,
        &id,
        "import time; time.sleep(60)\n",
        "time.sleep(60)",
    );
    assert!(!seen.contains("KeyboardInterrupt"), "{seen:?}");
    let (seen, _) = gather(&api, &context, &id, "\u{3}", "KeyboardInterrupt");
    assert!(seen.contains("KeyboardInterrupt"), "{seen:?}");
    // Ctrl-D at the prompt ends it. (Its exit status is SIGINT's: Python re-raises an
    // interrupt that reached its prompt when it exits.)
    let (_, last) = gather(&api, &context, &id, "\u{4}", "never printed");
    assert_eq!(last["running"], json!(false), "{last}");
}

#[test]
fn process_input_without_a_session_reads_from_the_call_on() {
    let api = local();
    let started = execute(
        &api,
        json!({"command": "echo early; cat", "run_in_background": true, "stdin": "first\n"}),
    );
    let id = background_id(&started);
    // `stdin` closes the input: cat ends.
    let out = tools::call(
        &api,
        "process_output",
        &json!({"process_id": id, "wait_timeout": "10s"}),
    );
    assert_result(&out, true, "early\nfirst\n", 0);
    let answer = tools::call(
        &api,
        "process_input",
        &json!({"process_id": id, "input": "late\n"}),
    );
    assert_eq!(answer["success"], json!(false), "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.contains("has no open input")),
        "{answer}"
    );
    // No table: the answer holds what came after the call began.
    let started = tools::call(
        &api,
        "execute",
        &json!({"command": "echo before; while read -r l; do echo \"[$l]\"; done", "tty": true, "run_in_background": true}),
    );
    let id = background_id(&started);
    let printed = common::eventually(Duration::from_secs(20), || {
        let out = tools::call(
            &api,
            "process_output",
            &json!({"process_id": id, "wait_timeout": "0s"}),
        );
        out["output"].as_str().is_some_and(|o| o.contains("before"))
    });
    assert!(printed, "before never printed");
    let answer = tools::call(
        &api,
        "process_input",
        &json!({"process_id": id, "input": "x\n", "yield_ms": 5000}),
    );
    let output = answer["output"].as_str().expect("output");
    assert!(!output.contains("before"), "{answer}");
    assert!(output.starts_with("x\n"), "{answer}");
    tools::call(
        &api,
        "process_signal",
        &json!({"process_id": id, "signal": "kill"}),
    );
}
