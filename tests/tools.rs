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
