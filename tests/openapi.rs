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
        limits: Some(api::StartLimits {
            memory_bytes: Some(1),
            pids: Some(1),
            cpu_percent: Some(1),
        }),
        process_id: Some(procwarden::Uuid::nil()),
        agent_instance_id: Some(procwarden::Uuid::nil()),
        input_digest: Some(String::new()),
        deadline: Some(api::digest::GoTime::ZERO),
        stdin: Some("pipe".into()),
        tty: Some(api::TtySize { rows: 1, cols: 1 }),
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
        contained: Some(true),
        stopped: Some(true),
        cpu_ms: Some(1),
        memory_peak_bytes: Some(1),
        oom_killed: Some(true),
        stdin_open: Some(true),
        tty: Some(api::TtySize { rows: 1, cols: 1 }),
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
        command: "c".into(),
        stdin_open: Some(true),
        tty: Some(api::TtySize { rows: 1, cols: 1 }),
        input_dropped_bytes: Some(1),
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
    let list = api::ListResponse {
        processes: vec![],
        protocol_version: Some(1),
        agent_instance_id: Some(procwarden::Uuid::nil()),
    };
    let cancel = api::CancelRequest {
        process_id: Some(procwarden::Uuid::nil()),
        agent_instance_id: Some(procwarden::Uuid::nil()),
        input_digest: Some(String::new()),
        deadline: Some(api::digest::GoTime::ZERO),
        wait_ms: Some(1),
    };
    let cancelled = api::CancelResponse {
        agent_instance_id: procwarden::Uuid::nil(),
        fenced: false,
        process: Some(info.clone()),
    };
    let gone = api::OutputUnavailable {
        agent_instance_id: procwarden::Uuid::nil(),
        input_digest: String::new(),
        output_unavailable: true,
        process: info.clone(),
    };
    let message = api::Message::with_detail("m", "d");
    let input = api::InputRequest {
        data: Some("a".into()),
        data_base64: Some("YQ==".into()),
        close: Some(true),
    };
    let queued = api::InputResponse {
        queued_bytes: 1,
        pending_bytes: 1,
    };
    let resize = api::ResizeRequest { rows: 1, cols: 1 };
    let size = api::TtySize { rows: 1, cols: 1 };
    assert_eq!(properties(&spec, "InputRequest"), keys(&input));
    assert_eq!(properties(&spec, "InputResponse"), keys(&queued));
    assert_eq!(properties(&spec, "ResizeRequest"), keys(&resize));
    assert_eq!(properties(&spec, "TtySize"), keys(&size));
    assert_eq!(properties(&spec, "StartRequest"), keys(&start));
    assert_eq!(properties(&spec, "StartResponse"), keys(&started));
    assert_eq!(properties(&spec, "ProcessInfo"), keys(&info));
    assert_eq!(properties(&spec, "ListResponse"), keys(&list));
    assert_eq!(properties(&spec, "Truncation"), keys(&truncation));
    assert_eq!(properties(&spec, "OutputResponse"), keys(&output));
    assert_eq!(properties(&spec, "SignalRequest"), keys(&signal));
    assert_eq!(properties(&spec, "Message"), keys(&message));
    assert_eq!(properties(&spec, "CancelRequest"), keys(&cancel));
    assert_eq!(properties(&spec, "CancelResponse"), keys(&cancelled));
    assert_eq!(properties(&spec, "OutputUnavailable"), keys(&gone));
    let handler = Handler::new(Arc::new(procwarden::Manager::new().expect("manager")), None);
    let health: Value = serde_json::from_slice(
        &handler
            .handle(&Request::new("GET", "/healthz", vec![], vec![]))
            .into_body_bytes(),
    )
    .expect("JSON");
    assert_eq!(properties(&spec, "Health"), keys(&health));
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
    assert_eq!(
        paths.len(),
        13,
        "the four routes, input, resize, the three tracked ones, GET /, and /healthz, /metrics, /ui"
    );
}

/// Every operation of the document, with its path and method.
fn operations(spec: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            out.push((path.clone(), method.to_uppercase(), op.clone()));
        }
    }
    out
}

/// Follows a local `$ref` (one level, as the document uses them).
fn resolve<'a>(spec: &'a Value, value: &'a Value) -> &'a Value {
    match value["$ref"].as_str() {
        Some(reference) => {
            let pointer = reference.strip_prefix('#').expect("a local $ref");
            spec.pointer(pointer)
                .unwrap_or_else(|| panic!("{reference} resolves"))
        }
        None => value,
    }
}

#[test]
fn every_operation_documents_what_the_front_end_and_handler_answer() {
    let spec = spec();
    let handler = Handler::new(
        Arc::new(procwarden::Manager::new().expect("manager")),
        Some("secret".into()),
    );
    let auth = || ("Authorization".to_string(), b"Bearer secret".to_vec());
    // Served without the token; without the chat header's checks; not JSON on success.
    let open = ["/healthz", "/ui"];
    let chatless = ["/healthz", "/metrics", "/ui"];
    let text = [("/metrics", "text/plain"), ("/ui", "text/html")];
    for (path, method, op) in operations(&spec) {
        let responses = op["responses"].as_object().expect("responses");
        let concrete = path.replace("{id}", "00000000-0000-4000-8000-000000000000");
        let is_open = open.contains(&path.as_str());
        // What any route can answer: a head the front end refuses (400), no token (401), a
        // wrong method (405), a slow request (408), a body or head over the limit (413, 431),
        // busy or shutting down (503); and what this route answers on success.
        for status in ["200", "400", "401", "405", "408", "413", "431", "503"] {
            assert_eq!(
                responses.contains_key(status),
                status != "401" || !is_open,
                "{method} {path} documents {status} exactly when it can answer it"
            );
        }
        for (status, response) in responses {
            let response = resolve(&spec, response);
            if let Some((_, media)) = text.iter().find(|(p, _)| *p == path && status == "200") {
                assert_eq!(
                    response["content"][media]["schema"]["type"], "string",
                    "{path} answers {media}"
                );
                assert_eq!(response["content"].as_object().map(|c| c.len()), Some(1));
                continue;
            }
            let schema = resolve(&spec, &response["content"]["application/json"]["schema"]);
            assert!(
                schema.is_object() && !schema.as_object().expect("schema").is_empty(),
                "{method} {path} {status} has a JSON body schema"
            );
            // The one error that is not a message: output-tracked's 410 (the final state).
            let gone = path.ends_with("/output-tracked") && status == "410";
            if status != "200" && !gone {
                assert_eq!(
                    response["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/Message",
                    "{method} {path} {status}: errors are Message bodies"
                );
            }
        }
        // The 405's Allow header is what the handler sends.
        let other = if method == "GET" { "POST" } else { "GET" };
        let refused = handler.handle(&Request::new(other, concrete.clone(), vec![auth()], vec![]));
        assert_eq!(refused.status, 405, "{other} {path}");
        let allow = &responses["405"]["headers"]["Allow"];
        assert_eq!(allow["required"], true, "{path}: Allow is required on 405");
        assert_eq!(
            allow["schema"]["const"].as_str(),
            refused.allow,
            "{path}: the documented Allow"
        );
        // Without the token: 401 (200 for the open routes); a repeated chat header: 400
        // (both documented above).
        let unauthorized =
            handler.handle(&Request::new(&*method, concrete.clone(), vec![], vec![]));
        assert_eq!(
            unauthorized.status,
            if is_open { 200 } else { 401 },
            "{method} {path}"
        );
        if chatless.contains(&path.as_str()) {
            assert!(
                op.get("parameters").is_none(),
                "{path} takes no chat header"
            );
            continue;
        }
        let chat = |v: &str| ("Coder-Chat-Id".to_string(), v.as_bytes().to_vec());
        let duplicate = handler.handle(&Request::new(
            &*method,
            concrete.clone(),
            vec![
                auth(),
                chat(""),
                chat("3f2b8c1e-6d4a-4b8e-9c3f-0a1b2c3d4e5f"),
            ],
            vec![],
        ));
        assert_eq!(duplicate.status, 400, "{method} {path}");
        // Every operation takes the chat header, and documents it as UUID-or-empty.
        let parameters = op["parameters"].as_array().expect("parameters");
        let chat_param = parameters
            .iter()
            .map(|p| resolve(&spec, p))
            .find(|p| p["name"] == api::CHAT_HEADER)
            .unwrap_or_else(|| panic!("{method} {path} documents the chat header"));
        let schema = &chat_param["schema"];
        assert!(schema.get("format").is_none(), "an empty header is no UUID");
        assert!(
            schema["anyOf"]
                .as_array()
                .expect("anyOf")
                .iter()
                .any(|branch| branch["maxLength"] == 0),
            "the chat header may be empty"
        );
    }
    let statuses = |path: &str, method: &str| -> BTreeSet<String> {
        spec["paths"][path][method]["responses"]
            .as_object()
            .expect("responses")
            .keys()
            .cloned()
            .collect()
    };
    let start = statuses("/api/v0/processes/start", "post");
    assert!(start.contains("429") && start.contains("500"));
    let output = statuses("/api/v0/processes/{id}/output", "get");
    assert!(output.contains("404"));
    let signal = statuses("/api/v0/processes/{id}/signal", "post");
    assert!(signal.contains("404") && signal.contains("409") && signal.contains("500"));
}

#[test]
fn request_schemas_state_the_required_fields_and_bounds() {
    let spec = spec();
    let schemas = &spec["components"]["schemas"];
    // Exactly one of command and argv: two branches, each requiring its field.
    let branches = schemas["StartRequest"]["anyOf"].as_array().expect("anyOf");
    let required: BTreeSet<String> = branches
        .iter()
        .map(|b| b["required"][0].as_str().expect("required").to_string())
        .collect();
    assert_eq!(
        required,
        ["argv", "command"].map(String::from).into_iter().collect()
    );
    // A signal is required, and named as the API names them.
    let signal = &schemas["SignalRequest"];
    assert_eq!(signal["required"], serde_json::json!(["signal"]));
    let names: Vec<&str> = api::SIGNAL_NAMES.iter().map(|(_, name)| *name).collect();
    assert_eq!(
        signal["properties"]["signal"]["enum"],
        serde_json::json!(names)
    );
    // Integer query parameters are digits on the wire, with the contract's bounds.
    let query = |path: &str, name: &str| -> Value {
        spec["paths"][path]["get"]["parameters"]
            .as_array()
            .expect("parameters")
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{path} documents {name}"))["schema"]
            .clone()
    };
    let limit = query("/api/v0/processes/list", "limit");
    assert_eq!(limit["type"], "string");
    let pattern = limit["pattern"].as_str().expect("pattern");
    assert!(
        pattern.ends_with(&format!("|{})$", api::MAX_LIST_LIMIT)),
        "{pattern}"
    );
    for name in ["cursor", "timeout_ms"] {
        let schema = query("/api/v0/processes/{id}/output", name);
        assert_eq!(schema["type"], "string", "{name}");
        let pattern = schema["pattern"].as_str().expect("pattern");
        assert!(pattern.starts_with("^0*([0-9]{1,19}|"), "{name}: {pattern}");
        assert!(
            pattern.ends_with(&format!("|{})$", u64::MAX)),
            "{name}: {pattern}"
        );
    }
    // Every documented example of a query parameter is one the handler accepts.
    let handler = Handler::new(Arc::new(procwarden::Manager::new().expect("manager")), None);
    let examples = [
        ("/api/v0/processes/list", "limit"),
        ("/api/v0/processes/{id}/output", "cursor"),
        ("/api/v0/processes/{id}/output", "timeout_ms"),
    ];
    for (path, name) in examples {
        for example in query(path, name)["examples"].as_array().expect("examples") {
            let target = format!(
                "{}?{name}={}",
                path.replace("{id}", "00000000-0000-4000-8000-000000000000"),
                example.as_str().expect("a string")
            );
            let status = handler
                .handle(&Request::new("GET", target.clone(), vec![], vec![]))
                .status;
            assert!(status == 200 || status == 404, "{target}: {status}");
        }
    }
}
