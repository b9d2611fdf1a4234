//! HTTP front end benchmarks, each against a baseline or a fixed goal, over loopback only.
//!
//! Run: `cargo bench --bench http` (needs the `server` feature, on by default).
//!
//! - `roundtrip/http` vs `roundtrip/in_process`: `POST /api/v0/processes/start
//!   {"command":"true"}` then `GET /api/v0/processes/{id}/output?wait=true`, over one
//!   keep-alive loopback connection to an in-process server (its own `Manager`), against the
//!   same two calls made directly on a separate `Manager` in the same process. Goal: median
//!   ratio at most 1.3.
//! - `list_under_load/list`: `GET /api/v0/processes/list?limit=1000` on a fresh keep-alive
//!   connection while 200 `sleep 60` children run and 200 other connections are each blocked
//!   in a long-poll (`output?wait=true&timeout_ms=120000`) on one of them. Goal: median at
//!   most 5 ms.
//!
//! - `input_round_trip/http` vs `input_round_trip/in_process`: a line written to a running
//!   `cat` (`POST {id}/input`) and read back through a cursor wait (`output?cursor=N&wait=true`)
//!   over one keep-alive loopback connection, against the same through the library in the
//!   same process. Goal: HTTP median under 1 ms.
//!
//! Medians are in `target/criterion/<group>/<name>/new/estimates.json`
//! (`.median.point_estimate`, in ns).
//!
//! Every server here is bound to 127.0.0.1:0 and shut down at the end of its group; every
//! socket read has a timeout and every loop a bound in count.

use std::hint::black_box;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use procwarden::handler::Handler;
use procwarden::http::{self, Limits, Listen, Server, ShutdownHandle};
use procwarden::{Command, Manager, OutputQuery};

/// Longest wait for the exit of `true` (in-process baseline).
const WAIT: Duration = Duration::from_secs(10);
/// Read/write timeout of every client socket: no read can block longer than this.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Running children and blocked long-polls in `list_under_load`.
const LOAD: usize = 200;
/// Largest response body the client accepts.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// `Handler` behind the front end, as `procwarden serve` wires it (minus the access log).
struct Api(Handler);

impl http::Service for Api {
    fn handle(&self, request: http::Request) -> http::Response {
        self.0.handle(&request)
    }
}

/// An in-process server on 127.0.0.1 with its own manager, serving on its own thread.
struct TestServer {
    addr: SocketAddr,
    manager: Arc<Manager>,
    stop: ShutdownHandle,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl TestServer {
    fn start() -> TestServer {
        let manager = Arc::new(Manager::new().expect("manager"));
        let service = Arc::new(Api(Handler::new(Arc::clone(&manager), None)));
        let listen = Listen::Tcp("127.0.0.1:0".parse().expect("address"));
        let server = Server::bind(&listen, Limits::default(), service).expect("bind");
        let url = server.local_addr();
        let addr: SocketAddr = url
            .strip_prefix("http://")
            .expect("http URL")
            .parse()
            .expect("IP:PORT");
        assert!(addr.ip().is_loopback());
        let stop = server.shutdown_handle();
        let thread = std::thread::Builder::new()
            .name("bench-http-server".into())
            .spawn(move || server.run())
            .expect("server thread");
        TestServer {
            addr,
            manager,
            stop,
            thread: Some(thread),
        }
    }

    fn connect(&self) -> Client {
        Client::connect(self.addr)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // Stop accepting and close idle connections, then answer every waiter by closing the
        // manager (ends every process group), then join the accept loop.
        self.stop.shutdown();
        self.manager.close();
        if let Some(thread) = self.thread.take() {
            match thread.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => eprintln!("bench server failed: {e}"),
                Err(_) => eprintln!("bench server thread panicked"),
            }
        }
    }
}

/// A minimal blocking HTTP/1.1 client over one keep-alive TCP connection.
struct Client {
    reader: BufReader<TcpStream>,
    request: Vec<u8>,
    line: String,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        assert!(addr.ip().is_loopback(), "benchmarks talk to loopback only");
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).expect("connect");
        stream.set_nodelay(true).expect("TCP_NODELAY");
        stream.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
        stream.set_write_timeout(Some(IO_TIMEOUT)).expect("timeout");
        Client {
            reader: BufReader::with_capacity(64 * 1024, stream),
            request: Vec::with_capacity(512),
            line: String::with_capacity(256),
        }
    }

    /// Writes one request in a single write.
    fn send(&mut self, method: &str, target: &str, body: &[u8]) {
        self.request.clear();
        write!(
            self.request,
            "{method} {target} HTTP/1.1\r\nHost: bench\r\nContent-Length: {}\r\n",
            body.len()
        )
        .expect("format");
        if !body.is_empty() {
            self.request
                .extend_from_slice(b"Content-Type: application/json\r\n");
        }
        self.request.extend_from_slice(b"\r\n");
        self.request.extend_from_slice(body);
        self.reader
            .get_mut()
            .write_all(&self.request)
            .expect("write request");
    }

    /// Reads one response: status line, header fields, a `Content-Length` body.
    fn receive(&mut self) -> (u16, Vec<u8>) {
        self.line.clear();
        self.reader.read_line(&mut self.line).expect("status line");
        let status: u16 = self
            .line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {:?}", self.line));
        let mut length = None;
        // A response head has a bounded number of fields.
        for _ in 0..200 {
            self.line.clear();
            let n = self.reader.read_line(&mut self.line).expect("header");
            assert!(n > 0, "connection closed inside a response head");
            let field = self.line.trim_end();
            if field.is_empty() {
                let length = length.expect("Content-Length");
                assert!(length <= MAX_BODY, "body of {length} bytes");
                let mut body = vec![0; length];
                self.reader.read_exact(&mut body).expect("body");
                return (status, body);
            }
            if let Some((name, value)) = field.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = Some(value.trim().parse::<usize>().expect("Content-Length value"));
            }
        }
        panic!("response head with more than 200 fields");
    }

    fn call(&mut self, method: &str, target: &str, body: &[u8]) -> (u16, Vec<u8>) {
        self.send(method, target, body);
        self.receive()
    }

    fn call_ok(&mut self, method: &str, target: &str, body: &[u8]) -> serde_json::Value {
        let (status, body) = self.call(method, target, body);
        assert_eq!(
            status,
            200,
            "{method} {target}: {}",
            String::from_utf8_lossy(&body)
        );
        serde_json::from_slice(&body).expect("JSON body")
    }

    fn start(&mut self, command: &str) -> String {
        let body = serde_json::json!({ "command": command }).to_string();
        let started = self.call_ok("POST", "/api/v0/processes/start", body.as_bytes());
        started["id"].as_str().expect("id").to_string()
    }
}

fn roundtrip(c: &mut Criterion) {
    let server = TestServer::start();
    let mut client = server.connect();
    let manager = Manager::new().expect("manager");
    let mut group = c.benchmark_group("roundtrip");
    group.sample_size(200);
    group.measurement_time(Duration::from_secs(8));
    group.bench_function("http", |b| {
        b.iter(|| {
            let id = client.start("true");
            let out = client.call_ok(
                "GET",
                &format!("/api/v0/processes/{id}/output?wait=true"),
                b"",
            );
            assert_eq!(out["running"], false);
            black_box(out);
        });
    });
    group.bench_function("in_process", |b| {
        b.iter(|| {
            let started = manager.start(Command::shell("true")).expect("start");
            let out = manager
                .output(&started.id, None, OutputQuery::until_exit(WAIT))
                .expect("output");
            assert!(!out.running);
            black_box(out);
        });
    });
    group.finish();
    drop(client);
    manager.close();
    drop(server);
}

fn list_under_load(c: &mut Criterion) {
    let server = TestServer::start();
    let mut control = server.connect();
    let ids: Vec<String> = (0..LOAD).map(|_| control.start("sleep 60")).collect();
    let mut waiters: Vec<Client> = ids
        .iter()
        .map(|id| {
            let mut waiter = server.connect();
            waiter.send(
                "GET",
                &format!("/api/v0/processes/{id}/output?wait=true&timeout_ms=120000"),
                b"",
            );
            waiter
        })
        .collect();
    // Make sure the long-polls are in the service before measuring: the 200 server-side
    // connection threads should be blocked in the manager's wait, not still parsing.
    std::thread::sleep(Duration::from_millis(500));

    let mut lister = server.connect();
    let listed = lister.call_ok("GET", "/api/v0/processes/list?limit=1000", b"");
    let running = listed["processes"]
        .as_array()
        .expect("processes")
        .iter()
        .filter(|p| p["running"] == true)
        .count();
    assert_eq!(running, LOAD, "every sleep should be running");

    let mut group = c.benchmark_group("list_under_load");
    group.sample_size(200);
    group.measurement_time(Duration::from_secs(8));
    group.bench_function("list", |b| {
        b.iter(|| {
            let (status, body) = lister.call("GET", "/api/v0/processes/list?limit=1000", b"");
            assert_eq!(status, 200);
            black_box(body);
        });
    });
    group.finish();

    // Clean up: kill every sleep, then each long-poll must answer with `running: false`.
    let deadline = Instant::now() + Duration::from_secs(60);
    for id in &ids {
        control.call_ok(
            "POST",
            &format!("/api/v0/processes/{id}/signal"),
            br#"{"signal":"kill"}"#,
        );
    }
    for waiter in &mut waiters {
        assert!(Instant::now() < deadline, "cleanup took over 60 s");
        let (status, body) = waiter.receive();
        let out: serde_json::Value = serde_json::from_slice(&body).expect("JSON body");
        assert_eq!(status, 200, "{out}");
        assert_eq!(out["running"], false, "{out}");
    }
    drop(waiters);
    drop(lister);
    drop(control);
    drop(server);
}

/// One line through `cat` and back: `POST {id}/input {"data":"ping\n"}`, then
/// `GET {id}/output?cursor=N&wait=true` until the line is back, over one keep-alive loopback
/// connection; against the same through the library (`Manager::write_input`, then
/// `Manager::output` with a cursor wait) in the same process.
fn input_round_trip(c: &mut Criterion) {
    const LINE: &str = "ping\n";
    let server = TestServer::start();
    let mut client = server.connect();
    let body = serde_json::json!({"command": "cat", "stdin": "pipe"}).to_string();
    let started = client.call_ok("POST", "/api/v0/processes/start", body.as_bytes());
    let id = started["id"].as_str().expect("id").to_string();
    let input_target = format!("/api/v0/processes/{id}/input");
    let input_body = serde_json::json!({ "data": LINE }).to_string();
    let mut cursor = 0u64;
    let mut group = c.benchmark_group("input_round_trip");
    group.sample_size(500);
    group.measurement_time(Duration::from_secs(8));
    group.bench_function("http", |b| {
        b.iter(|| {
            client.call_ok("POST", &input_target, input_body.as_bytes());
            let want = cursor + LINE.len() as u64;
            // The line may come back in pieces; each wait returns as soon as any arrives.
            for _ in 0..LINE.len() {
                let target = format!(
                    "/api/v0/processes/{id}/output?cursor={cursor}&wait=true&timeout_ms=10000"
                );
                let out = client.call_ok("GET", &target, b"");
                cursor = out["next_cursor"].as_u64().expect("next_cursor");
                if cursor >= want {
                    break;
                }
            }
            assert_eq!(cursor, want, "the line came back");
        });
    });
    let local = Manager::new().expect("manager");
    let started = local
        .start(Command::shell("cat").stdin_pipe())
        .expect("start");
    let mut cursor = 0u64;
    group.bench_function("in_process", |b| {
        b.iter(|| {
            local
                .write_input(&started.id, None, LINE.as_bytes())
                .expect("input");
            let want = cursor + LINE.len() as u64;
            for _ in 0..LINE.len() {
                let out = local
                    .output(&started.id, None, OutputQuery::after(cursor, WAIT))
                    .expect("output");
                cursor = out.next_cursor;
                if cursor >= want {
                    break;
                }
            }
            assert_eq!(cursor, want, "the line came back");
        });
    });
    group.finish();
}

criterion_group!(benches, roundtrip, list_under_load, input_round_trip);
criterion_main!(benches);
