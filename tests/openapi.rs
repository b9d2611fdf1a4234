//! `docs/openapi.json` describes the wire: its routes are the handler's routes, and each
//! schema's properties are exactly the fields the wire types serialize.

use std::collections::BTreeSet;
use std::sync::Arc;

use procwarden::api;
use procwarden::handler::{Handler, Request};
use serde_json::Value;

fn spec() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("docs/openapi.json"))
        .expect("valid JSON")
}

fn properties(spec: &Value, schema: &str) -> BTreeSet<String> {
    spec["components"]["schemas"][schema]["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("schema {schema} has properties"))
        .keys()
        .cloned()
        .collect()
}

/// The keys a fully populated value serializes to.
fn keys(value: &impl serde::Serialize) -> BTreeSet<String> {
    serde_json::to_value(value)
        .expect("serializes")
        .as_object()
        .expect("an object")
        .keys()
        .cloned()
        .collect()
}

#[test]
fn schemas_match_the_wire_types() {
    let spec = spec();
    let start = api::StartRequest {
        command: Some("c".into()),
        argv: Some(vec![]),
        workdir: Some("/".into()),
        env: Some(Default::default()),
        background: Some(true),
        timeout_ms: Some(1),
    };
    let info = api::ProcessInfo {
        id: "i".into(),
        command: "c".into(),
        workdir: "/".into(),
        background: false,
        running: false,
        exit_code: Some(0),
        started_at_unix: 0,
        exited_at_unix: Some(0),
        pid: Some(1),
        signal: Some("SIGKILL".into()),
        timed_out: Some(true),
        duration_ms: Some(1),
        members_alive: Some(true),
    };
    let truncation = api::Truncation {
        original_bytes: 1,
        retained_bytes: 1,
        omitted_bytes: 1,
        strategy: "head_tail".into(),
    };
    let output = api::OutputResponse {
        output: String::new(),
        truncated: Some(truncation.clone()),
        running: false,
        exit_code: Some(0),
        signal: Some("SIGKILL".into()),
        timed_out: Some(true),
        next_cursor: 0,
    };
    let signal = api::SignalRequest {
        signal: Some("kill".into()),
        grace_ms: Some(1),
    };
    let started = api::StartResponse {
        id: "i".into(),
        started: true,
        pid: Some(1),
    };
    let list = api::ListResponse { processes: vec![] };
    let message = api::Message::with_detail("m", "d");
    assert_eq!(properties(&spec, "StartRequest"), keys(&start));
    assert_eq!(properties(&spec, "StartResponse"), keys(&started));
    assert_eq!(properties(&spec, "ProcessInfo"), keys(&info));
    assert_eq!(properties(&spec, "ListResponse"), keys(&list));
    assert_eq!(properties(&spec, "Truncation"), keys(&truncation));
    assert_eq!(properties(&spec, "OutputResponse"), keys(&output));
    assert_eq!(properties(&spec, "SignalRequest"), keys(&signal));
    assert_eq!(properties(&spec, "Message"), keys(&message));
}

#[test]
fn routes_and_methods_match_the_handler() {
    let spec = spec();
    let paths = spec["paths"].as_object().expect("paths");
    let handler = Handler::new(Arc::new(procwarden::Manager::new().expect("manager")), None);
    let methods = ["GET", "POST", "PUT", "DELETE", "PATCH"];
    for (path, item) in paths {
        let concrete = path.replace("{id}", "00000000-0000-4000-8000-000000000000");
        let documented: BTreeSet<String> = item
            .as_object()
            .expect("path item")
            .keys()
            .map(|m| m.to_uppercase())
            .collect();
        for method in methods {
            let response = handler.handle(&Request::new(
                method,
                concrete.clone(),
                Vec::new(),
                Vec::new(),
            ));
            let routed = response.status != 404 || concrete.contains("0000-4000");
            assert!(
                routed,
                "{method} {path}: the handler does not know this path"
            );
            if documented.contains(method) {
                assert_ne!(
                    response.status, 405,
                    "{method} {path} is documented but refused"
                );
            } else {
                assert_eq!(
                    response.status, 405,
                    "{method} {path} is not documented but accepted"
                );
            }
        }
    }
    assert_eq!(paths.len(), 5, "the four routes and GET /");
}
