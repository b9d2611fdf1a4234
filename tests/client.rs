//! The blocking client against a real `procwarden serve`: the agent tools through
//! `procwarden::client::Client`, error mapping, the token and chat headers, unix sockets.

mod common;

use std::time::{Duration, Instant};

use procwarden::Uuid;
use procwarden::api;
use procwarden::client::Client;
use procwarden::tools::{self, ProcessApi};
use serde_json::json;

use common::http::{ServerProc, serve};
use common::{OwnedGroups, background_id, dead, eventually, execute, live_group_members};

fn local_server() -> (ServerProc, Client) {
    let server = serve(&["--listen", "127.0.0.1:0"], &[]);
    let client = Client::new(server.addr.url());
    (server, client)
}

#[test]
fn execute_in_the_foreground() {
    let (_server, client) = local_server();
    let api: &dyn ProcessApi = &client;
    let result = execute(api, json!({"command": "echo hello; echo oops >&2"}));
    assert_eq!(result["success"], true, "{result}");
    assert_eq!(result["output"], "hello\noops\n", "{result}");
    assert_eq!(result["exit_code"], 0, "{result}");
    // Every agent variable reached the process.
    let result = execute(
        &client,
        json!({"command": "echo $PAGER $GIT_TERMINAL_PROMPT"}),
    );
    assert_eq!(result["output"], "cat 0\n", "{result}");
}

#[test]
fn a_non_zero_exit_is_reported() {
    let (_server, client) = local_server();
    let result = execute(&client, json!({"command": "echo failing; exit 3"}));
    assert_eq!(result["success"], false, "{result}");
    assert_eq!(result["exit_code"], 3, "{result}");
    assert_eq!(result["output"], "failing\n", "{result}");
}

#[test]
fn background_then_process_output() {
    let (_server, client) = local_server();
    let started = execute(
        &client,
        json!({"command": "echo one; sleep 0.2; echo two", "run_in_background": true}),
    );
    assert_eq!(started["success"], true, "{started}");
    let id = background_id(&started);
    let done = tools::call(
        &client,
        "process_output",
        &json!({"process_id": id, "wait_timeout": "10s"}),
    );
    assert_eq!(done["success"], true, "{done}");
    assert_eq!(done["output"], "one\ntwo\n", "{done}");
    assert_eq!(done["exit_code"], 0, "{done}");
    assert_eq!(done["next_cursor"], 8, "{done}");
    // Reading from the cursor: nothing new.
    let rest = tools::call(
        &client,
        "process_output",
        &json!({"process_id": id, "wait_timeout": "0s", "cursor": 8}),
    );
    assert_eq!(rest["output"], "", "{rest}");
    let listed = tools::call(&client, "process_list", &json!({}));
    assert_eq!(listed["processes"][0]["id"], id.as_str(), "{listed}");
    assert_eq!(listed["processes"][0]["background"], true, "{listed}");
}

#[test]
fn a_timed_out_command_keeps_running_until_signalled() {
    let (_server, client) = local_server();
    let mut groups = OwnedGroups::default();
    let began = Instant::now();
    let result = execute(
        &client,
        json!({"command": "echo started; sleep 30", "timeout": "300ms"}),
    );
    let took = began.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert_eq!(result["success"], false, "{result}");
    assert!(
        result["error"]
            .as_str()
            .is_some_and(|e| e.contains("timed out after 300ms")),
        "{result}"
    );
    assert_eq!(result["output"], "started\n", "{result}");
    let id = background_id(&result);
    let list = client.list(10).expect("list");
    let info = list.processes.iter().find(|p| p.id == id).expect("listed");
    assert!(info.running);
    let pid = info.pid.expect("pid") as i32;
    groups.0.push(pid);
    assert!(!live_group_members(pid).is_empty(), "still running");

    let signalled = tools::call(
        &client,
        "process_signal",
        &json!({"process_id": id, "signal": "kill"}),
    );
    assert_eq!(signalled["success"], true, "{signalled}");
    let done = client
        .output(&id, None, Some(Duration::from_secs(10)))
        .expect("output");
    assert!(!done.running);
    assert_eq!(done.signal.as_deref(), Some("SIGKILL"));
    assert_eq!(done.exit_code, Some(-1));
    assert!(
        eventually(Duration::from_secs(5), || dead(pid)
            && live_group_members(pid).is_empty()),
        "the group is gone"
    );
}

#[test]
fn error_answers_keep_status_message_and_detail() {
    let (mut server, client) = local_server();
    let unknown = "00000000-0000-4000-8000-000000000000";
    let e = client.output(unknown, None, None).expect_err("unknown id");
    assert_eq!(e.status, Some(404));
    assert_eq!(e.message, format!("Process \"{unknown}\" not found."));
    assert!(!e.is_transport());
    // An id that is no UUID (and needs escaping in the path) is just not found.
    let e = client.output("not/an id", None, None).expect_err("bad id");
    assert_eq!(e.status, Some(404), "{e:?}");
    let e = client.signal(unknown, "hup").expect_err("bad signal");
    assert_eq!(e.status, Some(400), "{e:?}");
    assert!(e.message.contains("Unsupported signal"), "{e:?}");
    let e = client
        .start(
            &api::StartRequest {
                command: Some("true".into()),
                workdir: Some("relative/dir".into()),
                ..api::StartRequest::default()
            },
            None,
        )
        .expect_err("relative workdir");
    assert_eq!(e.status, Some(400), "{e:?}");
    let e = client
        .start(&api::StartRequest::default(), None)
        .expect_err("no command");
    assert_eq!(
        (e.status, e.message.as_str()),
        (Some(400), "Command is required.")
    );
    // Through the tools, the message reaches the model.
    let result = tools::call(&client, "process_output", &json!({"process_id": unknown}));
    assert_eq!(result["success"], false);
    assert_eq!(result["error"], format!("Process \"{unknown}\" not found."));
    // A signal to an exited process: 409.
    let started = client
        .start(
            &api::StartRequest {
                command: Some("true".into()),
                ..api::StartRequest::default()
            },
            None,
        )
        .expect("start");
    client
        .output(&started.id, None, Some(Duration::from_secs(10)))
        .expect("wait");
    let e = client.signal(&started.id, "kill").expect_err("exited");
    assert_eq!(e.status, Some(409), "{e:?}");

    // The server is gone: no answer at all.
    server.kill_hard();
    let began = Instant::now();
    let e = client.list(10).expect_err("no server");
    assert!(began.elapsed() < Duration::from_secs(5));
    assert_eq!(e.status, None, "{e:?}");
    assert!(e.is_transport());
    assert!(e.message.contains(&server.addr.url()), "{e:?}");
    assert!(e.detail.is_some(), "{e:?}");
    let result = tools::call(&client, "process_list", &json!({}));
    assert_eq!(result["success"], false, "{result}");
}

#[test]
fn the_wait_is_bounded_and_cursors_work() {
    let (_server, client) = local_server();
    let mut groups = OwnedGroups::default();
    let started = client
        .start(
            &api::StartRequest {
                command: Some("echo first; sleep 30".into()),
                ..api::StartRequest::default()
            },
            None,
        )
        .expect("start");
    groups.0.push(started.pid.expect("pid") as i32);
    let first = client
        .output(&started.id, Some(0), Some(Duration::from_secs(10)))
        .expect("output past 0");
    assert_eq!(first.output, "first\n");
    assert!(first.running);
    let began = Instant::now();
    let later = client
        .output(
            &started.id,
            Some(first.next_cursor),
            Some(Duration::from_millis(200)),
        )
        .expect("nothing new");
    let took = began.elapsed();
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert_eq!(later.output, "");
    assert!(later.running);
    client.signal(&started.id, "kill").expect("kill");
    let done = client
        .output(&started.id, None, Some(Duration::from_secs(10)))
        .expect("exit");
    assert!(!done.running);
    // A limit out of the server's range is clamped, not refused.
    assert_eq!(client.list(0).expect("list").processes.len(), 1);
    assert_eq!(client.list(usize::MAX).expect("list").processes.len(), 1);
    assert_eq!(
        client.version().expect("version"),
        format!("procwarden {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn the_token_and_the_chat_are_sent() {
    let server = serve(
        &["--listen", "127.0.0.1:0"],
        &[("PROCWARDEN_TOKEN", "s3cret")],
    );
    let anonymous = Client::new(server.addr.url());
    let e = anonymous.list(10).expect_err("no token");
    assert_eq!((e.status, e.message.as_str()), (Some(401), "Unauthorized."));
    let e = anonymous
        .clone()
        .token(Some("wrong".into()))
        .version()
        .expect_err("wrong token");
    assert_eq!(e.status, Some(401));

    let chat = Uuid::new_v4();
    let other = Uuid::new_v4();
    let mine = anonymous
        .clone()
        .token(Some("s3cret".into()))
        .chat(Some(chat));
    let result = execute(&mine, json!({"command": "echo $CODER_CHAT_ID"}));
    assert_eq!(result["output"], format!("{chat}\n"), "{result}");
    let started = mine
        .start(
            &api::StartRequest {
                command: Some("true".into()),
                ..api::StartRequest::default()
            },
            None,
        )
        .expect("start");
    let theirs = mine.clone().chat(Some(other));
    let e = theirs
        .output(&started.id, None, None)
        .expect_err("another chat's process");
    assert_eq!(e.status, Some(404));
    assert!(theirs.list(10).expect("list").processes.is_empty());
    assert_eq!(mine.list(10).expect("list").processes.len(), 2);
    // Without a chat the client sees everything.
    let everyone = mine.clone().chat(None);
    assert_eq!(everyone.list(10).expect("list").processes.len(), 2);
}

#[test]
fn a_unix_socket_works_too() {
    let path = std::env::temp_dir().join(format!("procwarden-client-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let listen = format!("unix:{}", path.display());
    let mut server = serve(&["--listen", &listen], &[]);
    let client = Client::new(listen.clone());
    assert_eq!(client.url(), listen);
    assert!(
        client
            .version()
            .expect("version")
            .starts_with("procwarden ")
    );
    // Several requests in a row reuse the pooled connection.
    for n in 0..3 {
        let result = execute(&client, json!({"command": format!("echo {n}")}));
        assert_eq!(result["output"], format!("{n}\n"), "{result}");
    }
    server.terminate();
    let e = client.list(10).expect_err("gone");
    assert_eq!(e.status, None, "{e:?}");
    let _ = std::fs::remove_file(&path);
}

#[test]
fn bad_urls_are_transport_errors() {
    // Refused before anything is sent (an https URL would otherwise send the token in clear).
    for bad in ["not a url", "https://127.0.0.1:1", "ftp://127.0.0.1:1/", ""] {
        let e = Client::new(bad).version().expect_err(bad);
        assert_eq!(e.status, None, "{bad}: {e:?}");
        assert!(
            e.message.starts_with(&format!(
                "Unsupported URL \"{bad}\": use http://HOST:PORT or unix:/path"
            )),
            "{bad}: {e:?}"
        );
    }
    // Malformed after the scheme: ureq refuses it, also as a transport error.
    let e = Client::new("http://[bad").version().expect_err("malformed");
    assert_eq!(e.status, None, "{e:?}");
    // Nothing listens on port 1; a unix socket path that does not exist.
    for unreachable in ["http://127.0.0.1:1", "unix:/nonexistent/procwarden.sock"] {
        let e = Client::new(unreachable).version().expect_err(unreachable);
        assert_eq!(e.status, None, "{e:?}");
        assert_eq!(e.message, format!("No answer from {unreachable}."));
        assert!(e.detail.is_some(), "{e:?}");
    }
}
