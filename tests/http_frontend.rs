//! The HTTP front end from the outside, over real sockets on 127.0.0.1 and a unix socket in
//! a temporary directory, with hostile clients: huge declared bodies, oversized heads,
//! garbage, trickling heads, idle and busy connections at the limit, a panicking service,
//! and running out of file descriptors (in a re-executed copy of this binary with a low fd
//! limit). Every client read is bounded by [`DEADLINE`]; tests that need timeouts use short
//! ones in their [`Limits`].
#![cfg(feature = "server")]

mod common;

use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::http::{Addr, Conn, Reply};
use common::{eventually, helper_args, server_waits_for_more};
use procwarden::http::{Limits, Listen, Request, Response, Server, Service, ShutdownHandle};
use serde_json::{Value, json};

/// Bound on every wait of a test (a client read, the server's exit).
const DEADLINE: Duration = Duration::from_secs(10);
/// A short timeout for the tests of timeouts.
const SHORT: Duration = Duration::from_millis(300);

// ---------------------------------------------------------------------------------------
// The test service

/// Lets requests to `/block` wait inside the service until the test opens it.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }

    /// Waits until open (at most [`DEADLINE`]).
    fn wait(&self) {
        let open = self.open.lock().unwrap();
        let _unused = self
            .opened
            .wait_timeout_while(open, DEADLINE, |open| !*open)
            .unwrap();
    }
}

/// An echo service: answers what it got as JSON. `/panic` panics; `/big` answers 2 KiB;
/// `/block` reports that it entered, then waits for the gate; `/after-sent` answers at once
/// with a hook that waits for the gate, then reports whether it was open;
/// `/after-sent-panics` has a hook that panics.
struct Echo {
    gate: Arc<Gate>,
    entered: Mutex<Sender<String>>,
}

impl Service for Echo {
    fn handle(&self, request: Request) -> Response {
        match request.target.as_str() {
            "/panic" => panic!("the test service panics on purpose"),
            "/big" => Response::new(200, json!({ "data": "x".repeat(2048 - 11) }).to_string()),
            "/parse" => match serde_json::from_slice::<Value>(&request.body) {
                Ok(value) => Response::new(
                    200,
                    json!({ "parsed": value.to_string().len() }).to_string(),
                ),
                Err(e) => Response::new(400, json!({ "message": e.to_string() }).to_string()),
            },
            "/block" => {
                let _ = self.entered.lock().unwrap().send(request.peer.clone());
                self.gate.wait();
                Response::message(200, "unblocked")
            }
            "/after-sent" => {
                // The hook waits for the gate, which the test opens only once it has the
                // answer: run before the answer is written, it would find the gate shut.
                let gate = Arc::clone(&self.gate);
                let entered = self.entered.lock().unwrap().clone();
                Response::message(200, "answered").after_sent(move || {
                    gate.wait();
                    let open = *gate.open.lock().unwrap();
                    let _ = entered.send(format!("after-sent, gate open: {open}"));
                })
            }
            "/after-sent-panics" => Response::message(200, "answered")
                .after_sent(|| panic!("the test hook panics on purpose")),
            _ => {
                let body = json!({
                    "method": request.method,
                    "target": request.target,
                    "body": String::from_utf8_lossy(&request.body),
                    "peer": request.peer,
                    "header_count": request.headers.len(),
                    "x_test": request.header("x-test").map(|v| String::from_utf8_lossy(v).into_owned()),
                });
                Response::new(200, body.to_string())
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// A server on a thread

struct Running {
    url: String,
    addr: Option<SocketAddr>,
    handle: ShutdownHandle,
    gate: Arc<Gate>,
    entered: Receiver<String>,
    done: Receiver<io::Result<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Running {
    fn start(limits: Limits) -> Running {
        Running::start_on(&Listen::Tcp("127.0.0.1:0".parse().unwrap()), limits)
    }

    fn start_on(listen: &Listen, limits: Limits) -> Running {
        let gate = Arc::new(Gate::default());
        let (entered_tx, entered) = mpsc::channel();
        let service = Arc::new(Echo {
            gate: Arc::clone(&gate),
            entered: Mutex::new(entered_tx),
        });
        let server = Server::bind(listen, limits, service).expect("bind");
        let url = server.local_addr();
        let addr = url.strip_prefix("http://").map(|a| a.parse().unwrap());
        let handle = server.shutdown_handle();
        let (done_tx, done) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let _ = done_tx.send(server.run());
        });
        Running {
            url,
            addr,
            handle,
            gate,
            entered,
            done,
            thread: Some(thread),
        }
    }

    /// A new TCP client, its reads bounded by [`DEADLINE`].
    fn tcp(&self) -> Conn {
        let addr = self.addr.expect("a TCP server");
        Conn::connect(&Addr::Tcp(addr.to_string()), DEADLINE)
    }

    /// Waits until a request is inside `/block`; returns its peer.
    fn wait_entered(&self) -> String {
        self.entered
            .recv_timeout(DEADLINE)
            .expect("a request entered /block")
    }

    /// Shuts down and waits for `run` to return.
    fn stop(mut self) {
        self.handle.shutdown();
        self.gate.open();
        let result = self.done.recv_timeout(DEADLINE).expect("run returned");
        result.expect("run succeeded");
        self.thread.take().unwrap().join().unwrap();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // After a failed assertion: stop the server, but never hang the test run.
        self.handle.shutdown();
        self.gate.open();
        if let Some(thread) = self.thread.take() {
            if self.done.recv_timeout(DEADLINE).is_ok() {
                let _ = thread.join();
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// A raw client (common::http::Conn)

/// A client of the unix socket at `path`, its reads bounded by [`DEADLINE`].
fn unix_client(path: &std::path::Path) -> Conn {
    let path = path.to_str().expect("a UTF-8 socket path").to_string();
    Conn::connect(&Addr::Unix(path), DEADLINE)
}

/// Sends `request` on a new connection and expects an error answer with `status` and
/// `message`, then the connection closed.
fn expect_refusal(server: &Running, request: &[u8], status: u16, message: &str) -> Reply {
    let mut client = server.tcp();
    client.send_raw(request);
    let reply = client.reply();
    assert_eq!(reply.status, status, "{reply:?}");
    reply.assert_well_formed();
    assert_eq!(reply.json()["message"], message);
    assert!(reply.closes(), "{reply:?}");
    assert!(client.closed(), "connection left open");
    reply
}

/// Asserts that `waited` is [`SHORT`], give or take what a loaded machine adds (and 60 ms of
/// timer slack below).
#[track_caller]
fn assert_about_short(waited: Duration) {
    assert!(waited >= SHORT - Duration::from_millis(60), "{waited:?}");
    assert!(waited < SHORT + Duration::from_secs(2), "{waited:?}");
}

/// The server still serves a fresh client.
fn assert_serves(server: &Running) {
    let reply = server.tcp().get("/still-there");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["target"], "/still-there");
}

// ---------------------------------------------------------------------------------------
// Keep-alive, pipelining, HTTP/1.0, HEAD

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let server = Running::start(Limits::default());
    let mut client = server.tcp();
    for i in 0..5 {
        let reply = client.get(&format!("/n/{i}"));
        assert_eq!(reply.status, 200);
        reply.assert_well_formed();
        assert!(!reply.closes());
        assert!(reply.header("date").is_some_and(|d| d.ends_with(" GMT")));
        assert_eq!(reply.json()["target"], format!("/n/{i}"));
        assert!(
            reply.json()["peer"]
                .as_str()
                .unwrap()
                .starts_with("127.0.0.1:")
        );
    }
    server.stop();
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = Running::start(Limits::default());
    let mut client = server.tcp();
    client.send_raw(
        "GET /first HTTP/1.1\r\nHost: t\r\n\r\n\
         POST /second HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello\
         POST /third HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
         GET /fourth HTTP/1.1\r\nX-Test: yes\r\nConnection: close\r\n\r\n",
    );
    let replies: Vec<Value> = (0..4).map(|_| client.reply().json()).collect();
    assert_eq!(replies[0]["target"], "/first");
    assert_eq!(replies[1]["target"], "/second");
    assert_eq!(replies[1]["body"], "hello");
    assert_eq!(replies[2]["body"], "abc");
    assert_eq!(replies[3]["target"], "/fourth");
    assert_eq!(replies[3]["x_test"], "yes");
    assert!(client.closed());
    server.stop();
}

#[test]
fn http_1_0_closes_unless_keep_alive() {
    let server = Running::start(Limits::default());
    let mut client = server.tcp();
    client.send_raw("GET /old HTTP/1.0\r\n\r\n");
    let reply = client.reply();
    assert_eq!(reply.status, 200);
    assert!(reply.closes());
    assert!(client.closed());

    let mut client = server.tcp();
    for _ in 0..2 {
        client.send_raw("GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        let reply = client.reply();
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("connection"), Some("keep-alive"));
    }
    server.stop();
}

#[test]
fn connection_close_is_honoured() {
    let server = Running::start(Limits::default());
    let mut client = server.tcp();
    client.send_raw("GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert!(client.reply().closes());
    assert!(client.closed());
    server.stop();
}

#[test]
fn head_requests_get_the_length_but_no_body() {
    let server = Running::start(Limits::default());
    let mut client = server.tcp();
    client.send_raw("HEAD /big HTTP/1.1\r\n\r\nGET /after HTTP/1.1\r\n\r\n");
    // The HEAD answer announces 2 KiB but sends none: the next bytes are the next response.
    let head = client.raw_head();
    assert!(head.contains("Content-Length: 2048\r\n"), "{head}");
    let next = client.reply();
    assert_eq!(next.json()["target"], "/after");
    server.stop();
}

// ---------------------------------------------------------------------------------------
// Bodies: limits, chunked, 100-continue

#[test]
fn declared_body_over_the_limit_gets_413_without_reading_it() {
    let server = Running::start(Limits::default());
    for length in ["1048577", "1000000000000000", "99999999999999999999999"] {
        // The client sends the head only: the answer must come without the body.
        let request =
            format!("POST /api/v0/processes/start HTTP/1.1\r\nContent-Length: {length}\r\n\r\n");
        let reply = expect_refusal(&server, request.as_bytes(), 413, "Request body too large.");
        assert_eq!(reply.json(), json!({"message": "Request body too large."}));
    }
    // Also when the client goes on sending: the answer comes first, the rest is discarded.
    let mut client = server.tcp();
    client.send_raw("POST / HTTP/1.1\r\nContent-Length: 1000000000000000\r\n\r\n");
    client.send_raw(vec![b'x'; 64 * 1024]);
    assert_eq!(client.reply().status, 413);
    assert_serves(&server);
    server.stop();
}

#[test]
fn a_body_at_the_limit_is_read() {
    let limits = Limits {
        max_body_bytes: 100_000,
        ..Limits::default()
    };
    let server = Running::start(limits);
    let mut client = server.tcp();
    client.send_raw("POST /exact HTTP/1.1\r\nContent-Length: 100000\r\n\r\n");
    client.send_raw(vec![b'y'; 100_000]);
    let reply = client.reply();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["body"].as_str().unwrap().len(), 100_000);
    server.stop();
}

#[test]
fn chunked_bodies_are_decoded_and_bounded() {
    let limits = Limits {
        max_body_bytes: 1024,
        ..Limits::default()
    };
    let server = Running::start(limits);
    let mut client = server.tcp();
    client.send_raw(
        "POST /chunks HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\
         5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
    );
    let reply = client.reply();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["body"], "hello world");
    // The connection goes on after a chunked body.
    assert_eq!(client.get("/next").status, 200);

    // Over the limit, even in pieces each under it: 413, then closed.
    let mut client = server.tcp();
    let chunk = format!("258\r\n{}\r\n", "z".repeat(600));
    client.send_raw(format!(
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n{chunk}{chunk}"
    ));
    let reply = client.reply();
    assert_eq!(reply.status, 413);
    reply.assert_well_formed();
    assert!(client.closed());

    // Malformed chunks: 400, then closed.
    for body in ["zz\r\nhello\r\n0\r\n\r\n", "5\r\nhelloXX0\r\n\r\n"] {
        let request = format!("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n{body}");
        let reply = expect_refusal(&server, request.as_bytes(), 400, "Bad request.");
        assert!(reply.json()["detail"].as_str().unwrap().contains("chunk"));
    }
    assert_serves(&server);
    server.stop();
}

#[test]
fn expect_100_continue_gets_an_interim_response() {
    let server = Running::start(Limits::default());
    let mut client = server.tcp();
    client.send_raw("POST /upload HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    assert_eq!(client.raw(25), b"HTTP/1.1 100 Continue\r\n\r\n");
    client.send_raw("12345");
    let reply = client.reply();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["body"], "12345");

    // Over the limit: no 100, a 413.
    let mut client = server.tcp();
    client.send_raw("POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2000000\r\n\r\n");
    assert_eq!(client.reply().status, 413);
    assert!(client.closed());
    server.stop();
}

// ---------------------------------------------------------------------------------------
// Malformed requests

#[test]
fn an_oversized_head_gets_431() {
    let server = Running::start(Limits::default());
    let request = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(20 * 1024));
    expect_refusal(
        &server,
        request.as_bytes(),
        431,
        "Request header fields too large.",
    );
    // Also when it never ends: the answer comes as soon as the limit is passed.
    let mut client = server.tcp();
    client.send_raw(format!(
        "GET / HTTP/1.1\r\nX-Big: {}",
        "a".repeat(20 * 1024)
    ));
    assert_eq!(client.reply().status, 431);
    assert_serves(&server);
    server.stop();
}

#[test]
fn malformed_requests_get_a_json_400() {
    let server = Running::start(Limits::default());
    let cases: &[&[u8]] = &[
        b"garbage\r\n\r\n",
        b"GET / HTTP/2.0\r\n\r\n",
        b"GET / HTTP/1.1\r\nno colon here\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
    ];
    for request in cases {
        let reply = expect_refusal(&server, request, 400, "Bad request.");
        assert!(
            reply.json()["detail"].is_string(),
            "{:?}: {reply:?}",
            String::from_utf8_lossy(request)
        );
    }
    // A garbage request line is answered at once, without waiting for a blank line.
    let mut client = server.tcp();
    client.send_raw(b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n");
    assert_eq!(client.reply().status, 400);
    assert_serves(&server);
    server.stop();
}

// ---------------------------------------------------------------------------------------
// Timeouts

#[test]
fn a_head_trickling_in_slower_than_the_head_timeout_is_cut_off() {
    let limits = Limits {
        head_timeout: SHORT,
        ..Limits::default()
    };
    let server = Running::start(limits);
    let mut client = server.tcp();
    let mut stream = client.tcp_clone();
    let writer = std::thread::spawn(move || {
        // A complete header line every 50 ms: the head keeps growing, never completes.
        let _ = stream.write_all(b"GET / HTTP/1.1\r\n");
        for _ in 0..30 {
            std::thread::sleep(Duration::from_millis(50));
            if stream.write_all(b"X-Slow: y\r\n").is_err() {
                break;
            }
        }
    });
    let started = Instant::now();
    let reply = client.reply();
    let waited = started.elapsed();
    assert_eq!(reply.status, 408);
    reply.assert_well_formed();
    assert_about_short(waited);
    writer.join().unwrap();
    assert_serves(&server);
    server.stop();
}

#[test]
fn idle_connections_are_closed_after_the_idle_timeout() {
    let limits = Limits {
        idle_timeout: SHORT,
        ..Limits::default()
    };
    let server = Running::start(limits);
    // A keep-alive connection after a request.
    let mut client = server.tcp();
    assert_eq!(client.get("/").status, 200);
    let started = Instant::now();
    assert!(client.closed(), "not closed within {DEADLINE:?}");
    let waited = started.elapsed();
    assert_about_short(waited);
    // A connection that never sends anything.
    let mut silent = server.tcp();
    assert!(silent.closed());
    assert_serves(&server);
    server.stop();
}

// ---------------------------------------------------------------------------------------
// The connection limit

#[test]
fn idle_and_slow_connections_do_not_keep_a_new_client_out() {
    let limits = Limits {
        max_connections: 4,
        ..Limits::default()
    };
    let server = Running::start(limits);
    let server_addr = server.addr.expect("a TCP server");
    // Two idle keep-alive connections and two that sent half a head.
    let mut held: Vec<Conn> = Vec::new();
    for i in 0..4 {
        let mut client = server.tcp();
        if i < 2 {
            assert_eq!(client.get("/").status, 200);
        } else {
            client.send_raw("GET / HTTP/1.1\r\nX-Half: ");
        }
        held.push(client);
    }
    // The limit is reached. Before any newcomer, each of the four is what this test says it
    // is: in the server's hands, with everything it sent read (its server-side receive queue
    // is empty) and a server thread blocked reading it for more (idle, or inside a half
    // head); and from the client's side open and unanswered (a non-blocking read finds no
    // byte and no end of stream). The product cannot signal this: it is polled for (the
    // server runs in this process, so its threads and sockets are this process's).
    let me = std::process::id() as i32;
    for (i, client) in held.iter_mut().enumerate() {
        let local = client.local_addr();
        assert!(
            eventually(DEADLINE, || server_waits_for_more(me, server_addr, local)),
            "held connection {i} ({local}): the server is not waiting for more of it"
        );
        assert!(
            client.open_and_unanswered(),
            "held connection {i} ({local}) was answered or closed before any newcomer"
        );
    }
    // Each newcomer is served, and stays connected: each evicts one connection (the one that
    // has waited longest: the order is pinned by the unit tests, here only the counts).
    let mut newcomers: Vec<Conn> = Vec::new();
    for round in 0..6 {
        let mut client = server.tcp();
        let reply = client.get(&format!("/newcomer/{round}"));
        assert_eq!(reply.status, 200, "round {round}");
        newcomers.push(client);
    }
    // The four held connections waited longest, so the first four newcomers evicted them:
    // the idle ones are closed without an answer; the two whose request was in flight (half
    // a head) are told 503 first (408 had they been slow for a second), never closed
    // silently.
    for (i, client) in held.iter_mut().enumerate() {
        if i < 2 {
            assert!(client.closed(), "held connection {i} was not evicted");
        } else {
            let reply = client.reply();
            let answer = (
                reply.status,
                reply.json()["message"].as_str().map(String::from),
            );
            assert!(
                matches!(&answer, (503, Some(m)) if m == "Server is busy.")
                    || matches!(&answer, (408, Some(m)) if m == "Request timeout."),
                "held connection {i}: {answer:?}"
            );
            assert!(reply.closes() && client.closed(), "held connection {i}");
        }
    }
    // Ten connections, four slots: six were closed, the four others still serve.
    let mut open = 0;
    for client in held.iter_mut().chain(newcomers.iter_mut()) {
        if let Some(reply) = client.try_get("/again") {
            assert_eq!(reply.status, 200);
            open += 1;
        }
    }
    assert_eq!(open, 4);
    server.stop();
}

#[test]
fn when_every_connection_is_busy_a_newcomer_gets_503() {
    let limits = Limits {
        max_connections: 2,
        ..Limits::default()
    };
    let server = Running::start(limits);
    let mut busy: Vec<Conn> = (0..2).map(|_| server.tcp()).collect();
    for client in &mut busy {
        client.send_raw("GET /block HTTP/1.1\r\n\r\n");
        server.wait_entered();
    }
    let reply = expect_refusal(&server, b"GET / HTTP/1.1\r\n\r\n", 503, "Server is busy.");
    assert_eq!(reply.json(), json!({"message": "Server is busy."}));
    server.gate.open();
    for client in &mut busy {
        let reply = client.reply();
        assert_eq!(reply.status, 200);
        assert_eq!(reply.json()["message"], "unblocked");
    }
    // The slots are free again (the two keep-alive connections are idle: one is evicted).
    assert_serves(&server);
    server.stop();
}

// ---------------------------------------------------------------------------------------
// Service failures, unix sockets, shutdown

#[test]
fn the_default_stack_fits_json_at_serde_jsons_nesting_limit() {
    // serde_json stops at 128 levels; parsing and dropping 127 takes more than 128 KiB of
    // stack in a debug build. A stack overflow would abort the whole server.
    let server = Running::start(Limits::default());
    let mut client = server.tcp();
    for depth in [127, 200] {
        let body = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        client.send_raw(format!(
            "POST /parse HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
        let reply = client.reply();
        assert_eq!(
            reply.status,
            if depth < 128 { 200 } else { 400 },
            "{reply:?}"
        );
    }
    server.stop();
}

#[test]
fn a_panicking_service_gives_500_and_the_connection_goes_on() {
    let server = Running::start(Limits::default());
    let mut client = server.tcp();
    let reply = client.get("/panic");
    assert_eq!(reply.status, 500);
    reply.assert_well_formed();
    assert_eq!(reply.json(), json!({"message": "Internal error."}));
    assert!(!reply.closes());
    assert_eq!(client.get("/after-panic").status, 200);
    assert_serves(&server);
    server.stop();
}

#[test]
fn after_sent_hooks_run_once_the_answer_is_out() {
    let server = Running::start(Limits::default());
    let mut client = server.tcp();
    let reply = client.get("/after-sent");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["message"], "answered");
    server.gate.open();
    assert_eq!(
        server.wait_entered(),
        "after-sent, gate open: true",
        "the hook ran before the answer was written"
    );
    // A hook that panics costs neither the answer nor the connection.
    let reply = client.get("/after-sent-panics");
    assert_eq!(reply.status, 200);
    assert!(!reply.closes());
    assert_eq!(client.get("/after-hook-panic").status, 200);
    assert_serves(&server);
    server.stop();
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("pw-http-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The kind of error with which binding a second server to `listen` fails (`what` says why
/// it should, if it does not).
fn refused_bind(listen: &Listen, what: &str) -> io::ErrorKind {
    Server::bind(
        listen,
        Limits::default(),
        Arc::new(|_: Request| Response::new(200, "{}")),
    )
    .expect_err(what)
    .kind()
}

#[test]
fn a_unix_socket_serves_and_is_removed_after_shutdown() {
    let dir = TempDir::new();
    let path = dir.0.join("pw.sock");
    let listen = Listen::Unix(path.clone());
    let server = Running::start_on(&listen, Limits::default());
    assert_eq!(server.url, format!("unix:{}", path.display()));

    let mut client = unix_client(&path);
    for _ in 0..2 {
        let reply = client.get("/over-unix");
        assert_eq!(reply.status, 200);
        assert_eq!(reply.json()["peer"], "unix");
    }
    // A live socket is not taken over.
    assert_eq!(
        refused_bind(&listen, "bound over a live socket"),
        io::ErrorKind::AddrInUse
    );
    drop(client);
    server.stop();
    assert!(!path.exists(), "socket file left behind");

    // A stale socket file (nobody listening) is replaced.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let server = Running::start_on(&listen, Limits::default());
    assert_eq!(unix_client(&path).get("/").status, 200);
    server.stop();

    // A file that is not a socket is left alone.
    std::fs::write(&path, "precious").unwrap();
    assert_eq!(
        refused_bind(&listen, "bound over a regular file"),
        io::ErrorKind::AddrInUse
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "precious");
}

#[test]
fn shutdown_lets_an_in_flight_request_finish() {
    let server = Running::start(Limits::default());
    // Connections are accepted in order: once the request behind it is in the service, the
    // half-sent one has been accepted too.
    let mut half = server.tcp();
    half.send_raw("GET / HTTP/1.1\r\n");
    let mut in_flight = server.tcp();
    in_flight.send_raw("GET /block HTTP/1.1\r\n\r\n");
    server.wait_entered();
    let mut idle = server.tcp();
    assert_eq!(idle.get("/").status, 200);

    server.handle.shutdown();
    // Connections that are not serving a request close at once (one whose request was in
    // flight is told so first) ...
    assert!(idle.closed());
    let reply = half.reply();
    assert_eq!(
        (reply.status, reply.json()["message"].as_str()),
        (503, Some("Server is shutting down."))
    );
    assert!(half.closed());
    // ... while run() waits for the one inside the service.
    let early = server.done.recv_timeout(Duration::from_millis(200));
    assert!(matches!(early, Err(RecvTimeoutError::Timeout)), "{early:?}");
    // New connections are refused at once.
    assert!(TcpStream::connect(server.addr.unwrap()).is_err());
    server.gate.open();
    let reply = in_flight.reply();
    assert_eq!(reply.status, 200);
    assert!(reply.closes());
    assert!(in_flight.closed());
    server.stop();
}

#[test]
fn run_twice_is_refused_and_shutdown_before_run_returns_at_once() {
    let server = Server::bind(
        &Listen::Tcp("127.0.0.1:0".parse().unwrap()),
        Limits::default(),
        Arc::new(|_: Request| Response::new(200, "{}")),
    )
    .unwrap();
    server.shutdown_handle().shutdown();
    server.run().expect("first run");
    assert_eq!(server.run().unwrap_err().kind(), io::ErrorKind::WouldBlock);
}

// ---------------------------------------------------------------------------------------
// Running out of file descriptors (in a child process with a low limit)

const ROLE: &str = "PROCWARDEN_HTTP_TEST_HELPER";

#[test]
#[ignore = "helper: runs only when started by accept_survives_running_out_of_fds"]
fn helper_out_of_fds() {
    if std::env::var(ROLE).as_deref() != Ok("emfile") {
        return;
    }
    // The server holds its listener, its waker and its spare fd from `bind` on: nothing
    // else, so using up every fd now leaves it none.
    let server = Running::start(Limits::default());
    // Use up every fd.
    let mut files = Vec::new();
    let exhausted = loop {
        match std::fs::File::open("/dev/null") {
            Ok(f) => files.push(f),
            Err(e) => break e,
        }
        assert!(files.len() < 100_000, "no fd limit");
    };
    println!("RESULT exhausted after {} files: {exhausted}", files.len());
    // Free one, for the client's socket: the server cannot accept it without its spare fd.
    files.pop();
    let mut client = server.tcp();
    client.send_raw("GET / HTTP/1.1\r\n\r\n");
    let reply = client.reply();
    println!(
        "RESULT out of fds: {} {}",
        reply.status,
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.status, 503);
    assert_eq!(reply.json()["detail"], "too many open files");
    drop(client);
    // Free the rest: the accept loop is still alive and serves.
    files.clear();
    let reply = server.tcp().get("/recovered");
    println!("RESULT after: {}", reply.status);
    assert_eq!(reply.status, 200);
    server.stop();
    println!("RESULT ok");
}

#[test]
fn accept_survives_running_out_of_fds() {
    let exe = std::env::current_exe().expect("test binary");
    let output = std::process::Command::new("/bin/sh")
        .args(["-c", "ulimit -n 64 && exec \"$0\" \"$@\""])
        .arg(exe)
        .args(helper_args("helper_out_of_fds"))
        .env(ROLE, "emfile")
        .output()
        .expect("helper");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    for line in stdout.lines().filter(|l| l.starts_with("RESULT")) {
        println!("helper: {line}");
    }
    assert!(
        output.status.success() && stdout.contains("RESULT ok"),
        "helper failed: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
}

// ---------------------------------------------------------------------------------------
// Latency (run on demand: `cargo test --features server --test http_frontend -- --ignored
// keep_alive_latency --nocapture`)

#[test]
#[ignore = "a measurement: run on demand"]
fn keep_alive_latency_of_a_2_kib_response() {
    let server = Running::start(Limits::default());
    let mut client = server.tcp();
    let mut times = Vec::with_capacity(1000);
    for _ in 0..1000 {
        let started = Instant::now();
        let reply = client.get("/big");
        times.push(started.elapsed());
        assert_eq!(reply.body.len(), 2048);
    }
    times.sort();
    println!(
        "keep-alive round trip, 2 KiB JSON response, 1000 requests: median {:?}, p99 {:?}, max {:?}",
        times[500], times[990], times[999]
    );
    // Nagle plus delayed ACKs would make this about 40 ms.
    assert!(times[500] < Duration::from_millis(5), "{:?}", times[500]);
    server.stop();
}
