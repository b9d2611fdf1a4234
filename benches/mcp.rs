//! The MCP layer's overhead: a tool call as an MCP `tools/call` against the same
//! `tools::call` made directly, each group on its own `Manager` in this process.
//!
//! Run: `cargo bench --bench mcp` (feature `mcp`, on by default).
//!
//! - `mcp_process_list/{direct,mcp}`: `process_list` (an empty table, so the call itself costs
//!   microseconds and the difference is the layer's).
//! - `mcp_execute/{direct,mcp}`: `execute` of `true` (start, wait for the exit: what an agent
//!   does most).
//!
//! The MCP side is the whole path of `procwarden mcp` but the file descriptors: the request
//! line goes through `Server::read_from` on a reader thread (from an in-memory reader), is
//! parsed and handed to a worker thread, which runs `tools::call_with` and writes the answer
//! line to an in-memory writer; the bench thread waits for that line. Goal: the median of
//! `mcp` minus the median of `direct` (the p50 overhead) under 1 ms.
//!
//! Medians are in `target/criterion/<group>/<name>/new/estimates.json`
//! (`.median.point_estimate`, in ns).

use std::hint::black_box;
use std::io::{self, BufRead, Read, Write};
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use crossbeam_channel::{Receiver, Sender};
use procwarden::tools::{self, LocalApi};
use procwarden::{Manager, mcp};
use serde_json::{Value, json};

/// Longest wait for one answer (a hung server fails the bench instead of hanging it).
const ANSWER_WAIT: Duration = Duration::from_secs(30);

/// An in-memory reader fed line by line from the bench thread; ends when the sender goes.
struct Lines {
    from: Receiver<Vec<u8>>,
    current: Vec<u8>,
    at: usize,
}

impl Read for Lines {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for Lines {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.at == self.current.len() {
            match self.from.recv() {
                Ok(next) => {
                    self.current = next;
                    self.at = 0;
                }
                Err(_) => return Ok(&[]),
            }
        }
        Ok(&self.current[self.at..])
    }

    fn consume(&mut self, n: usize) {
        self.at += n;
    }
}

/// An in-memory writer: each message the server writes (one whole line) goes to the bench.
struct Answers(Sender<Vec<u8>>);

impl Write for Answers {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .send(buf.to_vec())
            .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A server on its own manager, read by its own thread, as `procwarden mcp` runs it.
struct Session {
    requests: Option<Sender<Vec<u8>>>,
    answers: Receiver<Vec<u8>>,
    server: mcp::Server,
    reader: Option<std::thread::JoinHandle<()>>,
    next_id: u64,
}

impl Session {
    fn start(manager: &Arc<Manager>) -> Session {
        let (requests, from) = crossbeam_channel::unbounded();
        let (to, answers) = crossbeam_channel::unbounded();
        let backend = Arc::new(LocalApi::new(Arc::clone(manager), None));
        let server = mcp::Server::new(backend, Answers(to)).expect("server");
        let reading = server.clone();
        let reader = std::thread::spawn(move || {
            let input = Lines {
                from,
                current: Vec::new(),
                at: 0,
            };
            reading.read_from(input).expect("read");
        });
        let mut session = Session {
            requests: Some(requests),
            answers,
            server,
            reader: Some(reader),
            next_id: 0,
        };
        let init = session.request(
            "initialize",
            json!({"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "bench", "version": "0"}}),
        );
        assert_eq!(init["result"]["protocolVersion"], json!("2025-06-18"));
        session
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let mut line =
            json!({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params})
                .to_string()
                .into_bytes();
        line.push(b'\n');
        self.requests
            .as_ref()
            .expect("open")
            .send(line)
            .expect("send");
        let answer = self.answers.recv_timeout(ANSWER_WAIT).expect("an answer");
        serde_json::from_slice(&answer).expect("JSON")
    }

    fn call(&mut self, name: &str, arguments: &Value) -> Value {
        self.request("tools/call", json!({"name": name, "arguments": arguments}))
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        drop(self.requests.take());
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        self.server.shutdown();
    }
}

/// `name` with `arguments`, directly and through MCP, on managers of their own.
fn compare(c: &mut Criterion, group: &str, name: &str, arguments: &Value) {
    let direct_manager = Arc::new(Manager::new().expect("manager"));
    let direct = LocalApi::new(Arc::clone(&direct_manager), None);
    let mcp_manager = Arc::new(Manager::new().expect("manager"));
    let mut session = Session::start(&mcp_manager);
    let check = session.call(name, arguments);
    assert_eq!(check["result"]["isError"], json!(false), "{check}");
    assert_eq!(
        tools::call(&direct, name, arguments)["success"],
        json!(true)
    );

    let mut g = c.benchmark_group(group);
    g.bench_function("direct", |b| {
        b.iter(|| black_box(tools::call(&direct, name, black_box(arguments))));
    });
    g.bench_function("mcp", |b| {
        b.iter(|| black_box(session.call(name, black_box(arguments))));
    });
    g.finish();
    drop(session);
    mcp_manager.close();
    direct_manager.close();
}

fn process_list(c: &mut Criterion) {
    compare(c, "mcp_process_list", "process_list", &json!({}));
}

fn execute(c: &mut Criterion) {
    compare(c, "mcp_execute", "execute", &json!({"command": "true"}));
}

criterion_group!(benches, process_list, execute);
criterion_main!(benches);
