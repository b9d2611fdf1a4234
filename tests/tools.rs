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
        Ok(api::ListResponse { processes: vec![] })
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
    let cases = [
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
