//! `plain=true` on the output route, over real sockets against the `procwarden serve` binary
//! (raw HTTP and the client), and in process through `LocalApi`: a `\r` progress bar and colored
//! `ls` become clean text, while cursors and `next_cursor` stay raw stream offsets.

mod common;

use std::sync::Arc;
use std::time::Duration;

use procwarden::api::{self, LocalApi, OutputOptions, ProcessApi};
use procwarden::client::Client;
use procwarden::{Manager, Uuid};
use serde_json::json;

use common::http::{output, serve, start, wait_exit};

/// A progress bar as tools draw one: green, redrawn with `\r`, a shorter last state after an
/// erase, then a line of its own.
const PROGRESS: &str = r"for p in 10 20 30 40 50 60 70 80 90 100; do printf '\r\033[32m[%-10s]\033[0m %3d%%' \
    $(printf '%*s' $((p / 10)) '' | tr ' ' '#') $p; done; printf '\r\033[Kdone\r\nnext line\n'";

/// `ls --color=always` of a directory holding a directory and an executable.
const COLORED_LS: &str = "d=$(mktemp -d) && mkdir \"$d/subdir\" && : > \"$d/tool\" && \
    chmod +x \"$d/tool\" && cd \"$d\" && ls --color=always; cd / && rm -rf \"$d\"";

#[test]
fn plain_output_over_http() {
    let server = serve(&["--listen", "127.0.0.1:0"], &[]);
    let addr = &server.addr;

    let id = start(addr, &json!({"command": PROGRESS}), &[])["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let raw = wait_exit(addr, &id);
    let raw_text = raw["output"].as_str().expect("output");
    assert!(raw_text.contains("\r\x1b[32m[##"), "{raw}");
    let plain = output(addr, &id, "plain=true");
    assert_eq!(plain["output"], "done\nnext line\n", "{plain}");
    assert_eq!(plain["running"], false);
    assert_eq!(plain["exit_code"], 0);
    // The cursor stays in raw bytes: the same as the raw answer's, past every escape byte.
    assert_eq!(plain["next_cursor"], raw["next_cursor"]);
    assert_eq!(
        plain["next_cursor"].as_u64().expect("next_cursor"),
        raw_text.len() as u64
    );
    // Reading on from a raw cursor inside the stream renders from there.
    let tail = raw_text.find("\r\x1b[Kdone").expect("the erase") as u64;
    let from = output(addr, &id, &format!("plain=true&cursor={tail}"));
    assert_eq!(from["output"], "done\nnext line\n", "{from}");
    // Anything but `true` is the raw rendering, as for `wait`.
    let not_plain = output(addr, &id, "plain=yes");
    assert_eq!(not_plain["output"], raw["output"]);

    let id = start(addr, &json!({"command": COLORED_LS}), &[])["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let raw = wait_exit(addr, &id);
    assert!(
        raw["output"].as_str().expect("output").contains("\x1b["),
        "ls --color=always wrote no color: {raw}"
    );
    let plain = output(addr, &id, "plain=true&wait=true&timeout_ms=1000");
    assert_eq!(plain["output"], "subdir\ntool\n", "{plain}");
}

#[test]
fn plain_truncation_counts_the_returned_text() {
    let server = serve(&["--listen", "127.0.0.1:0"], &[]);
    let addr = &server.addr;
    // 40000 colored lines: far over head + tail, so something is omitted.
    let command = "i=0; while [ $i -lt 4000 ]; do printf '\\033[1mline %05d\\033[0m\\n' $i; \
                   i=$((i + 1)); done";
    let id = start(addr, &json!({"command": command}), &[])["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let raw = wait_exit(addr, &id);
    let plain = output(addr, &id, "plain=true");
    let text = plain["output"].as_str().expect("output");
    assert!(!text.contains('\x1b'), "{text:?}");
    assert!(text.starts_with("line 00000\nline 00001\n"), "{text:?}");
    assert!(text.ends_with("line 03999\n"), "{text:?}");
    let truncated = &plain["truncated"];
    assert_eq!(truncated["retained_bytes"], text.len() as u64, "{plain}");
    // What was kept and left out is counted in raw bytes, as without plain.
    assert_eq!(
        truncated["original_bytes"],
        raw["truncated"]["original_bytes"]
    );
    assert_eq!(
        truncated["omitted_bytes"],
        raw["truncated"]["omitted_bytes"]
    );
    assert_eq!(plain["next_cursor"], raw["next_cursor"]);
}

#[test]
fn the_client_and_the_local_api_read_plain() {
    let server = serve(&["--listen", "127.0.0.1:0"], &[]);
    let client = Client::new(server.addr.url());
    let manager = Arc::new(Manager::new().expect("manager"));
    let local = LocalApi::new(Arc::clone(&manager), None::<Uuid>);
    for api in [&client as &dyn ProcessApi, &local] {
        let started = api
            .start(&api::StartRequest {
                command: Some(PROGRESS.into()),
                ..api::StartRequest::default()
            })
            .expect("start");
        let wait = Some(Duration::from_secs(20));
        let raw = api.output(&started.id, None, wait).expect("raw output");
        assert!(!raw.running);
        let options = OutputOptions {
            plain: true,
            ..OutputOptions::default()
        };
        let plain = api
            .output_with(&started.id, &options)
            .expect("plain output");
        assert_eq!(plain.output, "done\nnext line\n");
        assert_eq!(plain.next_cursor, raw.next_cursor);
        // With a cursor and a wait: the wait ends at once (the process has exited).
        let options = OutputOptions {
            cursor: Some(0),
            wait,
            plain: true,
            ..OutputOptions::default()
        };
        let plain = api.output_with(&started.id, &options).expect("plain wait");
        assert_eq!(plain.output, "done\nnext line\n");
    }
    manager.close();
}
