//! A minimal raw HTTP/1.1 client (full control of the bytes on the wire, malformed requests
//! included), a handle on a running `procwarden serve`, and the API calls the tests make
//! through them.
#![allow(dead_code)] // each test binary uses a different subset

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Read timeout of a [`Conn::open`] connection: no read blocks longer than this.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest a [`run_to_end`] run may take.
pub const RUN_LIMIT: Duration = Duration::from_secs(20);
/// Longest [`wait_for_text`] waits for a process to print what it looks for.
pub const TEXT_WAIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------
// Responses

/// A parsed response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// The first header field called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON; panics if it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// Whether it announces that the server closes the connection.
    pub fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }

    /// The checks every response must pass: JSON type, a length that matches, a JSON body.
    pub fn assert_well_formed(&self) {
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "{self:?}"
        );
        let length: usize = self
            .header("content-length")
            .expect("Content-Length")
            .parse()
            .expect("a numeric Content-Length");
        assert_eq!(length, self.body.len());
        let _ = self.json();
    }
}

/// Whether a read error means the connection ended: a reset, or (from [`read_reply`]) the
/// end of stream before a response began.
fn is_end(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset
    )
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// Reads one response from a buffered stream (`Content-Length` bodies only, as the server
/// sends). The status line must be `HTTP/1.1 NNN ...` and every line of the head must end in
/// CRLF.
///
/// Errors: end of stream before the first byte is `UnexpectedEof`; an error before the first
/// byte keeps its kind (a reset is `ConnectionReset`); anything that goes wrong after the
/// first byte (the stream ending inside the response included) is `InvalidData`.
pub fn read_reply(reader: &mut impl BufRead) -> io::Result<Reply> {
    let mut line = String::new();
    match reader.read_line(&mut line) {
        Ok(0) => {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before a response",
            ));
        }
        Ok(_) => {}
        Err(e) if line.is_empty() => return Err(e),
        Err(e) => return Err(invalid(format!("inside the status line {line:?}: {e}"))),
    }
    read_rest(reader, &line).map_err(|e| match e.kind() {
        io::ErrorKind::InvalidData => e,
        _ => invalid(format!("inside a response after {line:?}: {e}")),
    })
}

/// The rest of a response whose status line is `status_line`.
fn read_rest(reader: &mut impl BufRead, status_line: &str) -> io::Result<Reply> {
    let status: u16 = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid(format!("bad status line {status_line:?}")))?;
    let mut headers = Vec::new();
    loop {
        let mut field = String::new();
        if reader.read_line(&mut field)? == 0 {
            return Err(invalid("the stream ended inside a response head".into()));
        }
        let field = field
            .strip_suffix("\r\n")
            .ok_or_else(|| invalid(format!("a head line without CRLF: {field:?}")))?;
        if field.is_empty() {
            break;
        }
        let (name, value) = field
            .split_once(':')
            .ok_or_else(|| invalid(format!("a header field without a colon: {field:?}")))?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    let chunked = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let body = if chunked {
        read_chunked(reader)?
    } else {
        let length: usize = match headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        {
            Some((_, v)) => v
                .parse()
                .map_err(|e| invalid(format!("Content-Length {v:?}: {e}")))?,
            None => 0,
        };
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        body
    };
    Ok(Reply {
        status,
        headers,
        body,
    })
}

/// A chunked body (a streamed answer, such as a list): chunks up to the last, empty one.
fn read_chunked(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        reader.read_line(&mut size)?;
        let size = size
            .strip_suffix("\r\n")
            .ok_or_else(|| invalid(format!("a chunk size line without CRLF: {size:?}")))?;
        let size = usize::from_str_radix(size, 16)
            .map_err(|e| invalid(format!("chunk size {size:?}: {e}")))?;
        let mut chunk = vec![0; size + 2];
        reader.read_exact(&mut chunk)?;
        if !chunk.ends_with(b"\r\n") {
            return Err(invalid("a chunk without its CRLF".into()));
        }
        if size == 0 {
            return Ok(body);
        }
        body.extend_from_slice(&chunk[..size]);
    }
}

// ---------------------------------------------------------------------------------------
// Connections

/// Where a test server listens.
#[derive(Debug, Clone)]
pub enum Addr {
    Tcp(String),
    Unix(String),
}

impl Addr {
    /// The URL the client and the CLI take: `http://HOST:PORT` or `unix:/path`.
    pub fn url(&self) -> String {
        match self {
            Addr::Tcp(addr) => format!("http://{addr}"),
            Addr::Unix(path) => format!("unix:{path}"),
        }
    }
}

/// A client socket, TCP or unix.
pub trait Socket: Read + Write + Send {
    /// The TCP stream, if it is one.
    fn tcp(&self) -> Option<&TcpStream>;
    /// Switches non-blocking mode on or off.
    fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()>;
}

impl Socket for TcpStream {
    fn tcp(&self) -> Option<&TcpStream> {
        Some(self)
    }
    fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        TcpStream::set_nonblocking(self, nonblocking)
    }
}

impl Socket for UnixStream {
    fn tcp(&self) -> Option<&TcpStream> {
        None
    }
    fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        UnixStream::set_nonblocking(self, nonblocking)
    }
}

/// One client connection (keep-alive capable). Every read is bounded by the connection's read
/// timeout.
pub struct Conn {
    reader: BufReader<Box<dyn Socket>>,
}

impl Conn {
    /// Connects with reads bounded by [`IO_TIMEOUT`].
    pub fn open(addr: &Addr) -> Conn {
        Conn::connect(addr, IO_TIMEOUT)
    }

    /// Connects with reads bounded by `read_timeout` (TCP without Nagle's delay).
    pub fn connect(addr: &Addr, read_timeout: Duration) -> Conn {
        let stream: Box<dyn Socket> = match addr {
            Addr::Tcp(a) => {
                let s = TcpStream::connect(a).expect("connect");
                s.set_read_timeout(Some(read_timeout))
                    .expect("read timeout");
                s.set_nodelay(true).expect("TCP_NODELAY");
                Box::new(s)
            }
            Addr::Unix(p) => {
                let s = UnixStream::connect(p).expect("connect unix");
                s.set_read_timeout(Some(read_timeout))
                    .expect("read timeout");
                Box::new(s)
            }
        };
        Conn {
            reader: BufReader::new(stream),
        }
    }

    fn tcp(&self) -> &TcpStream {
        self.reader.get_ref().tcp().expect("a TCP connection")
    }

    /// A clone of the TCP socket, for a writer thread.
    pub fn tcp_clone(&self) -> TcpStream {
        self.tcp().try_clone().expect("clone the socket")
    }

    /// This end's address (TCP).
    pub fn local_addr(&self) -> SocketAddr {
        self.tcp().local_addr().expect("local address")
    }

    pub fn send_raw(&mut self, bytes: impl AsRef<[u8]>) {
        self.reader
            .get_mut()
            .write_all(bytes.as_ref())
            .expect("write");
    }

    /// Reads one response (see [`read_reply`] for the errors).
    pub fn try_reply(&mut self) -> io::Result<Reply> {
        read_reply(&mut self.reader)
    }

    /// Reads one response; panics if none comes.
    pub fn reply(&mut self) -> Reply {
        self.try_reply()
            .unwrap_or_else(|e| panic!("no response: {e}"))
    }

    /// Sends a request (see [`request_bytes`]) and reads its response; panics if none comes.
    pub fn request(
        &mut self,
        method: &str,
        target: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Reply {
        self.send_raw(request_bytes(method, target, body, headers));
        self.try_reply()
            .unwrap_or_else(|e| panic!("{method} {target}: no response: {e}"))
    }

    /// `GET target`.
    pub fn get(&mut self, target: &str) -> Reply {
        self.request("GET", target, None, &[])
    }

    /// `GET target` on a connection that may have been closed: `None` if it was (the request
    /// cannot be sent, or the stream ends, or is reset, before a response begins).
    pub fn try_get(&mut self, target: &str) -> Option<Reply> {
        let request = request_bytes("GET", target, None, &[]);
        self.reader.get_mut().write_all(request.as_bytes()).ok()?;
        match self.try_reply() {
            Ok(reply) => Some(reply),
            Err(e) if is_end(&e) => None,
            Err(e) => panic!("GET {target}: {e}"),
        }
    }

    /// Reads exactly `n` raw bytes.
    pub fn raw(&mut self, n: usize) -> Vec<u8> {
        let mut bytes = vec![0; n];
        self.reader.read_exact(&mut bytes).expect("raw bytes");
        bytes
    }

    /// Reads a response head raw, up to and including its blank line.
    pub fn raw_head(&mut self) -> String {
        let mut head = String::new();
        loop {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line).expect("a head line");
            assert!(n > 0, "the stream ended inside a head: {head:?}");
            head.push_str(&line);
            if line == "\r\n" {
                return head;
            }
        }
    }

    /// Whether the server closes the connection (end of stream or a reset, and nothing else)
    /// before the read timeout. Panics if bytes come instead.
    pub fn closed(&mut self) -> bool {
        let mut chunk = [0u8; 1024];
        match self.reader.read(&mut chunk) {
            Ok(0) => true,
            Ok(n) => panic!(
                "unexpected bytes: {:?}",
                String::from_utf8_lossy(&chunk[..n])
            ),
            Err(e) if is_end(&e) => true,
            // The read timeout (reported as either, depending on the platform).
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                false
            }
            Err(e) => panic!("read: {e}"),
        }
    }

    /// Whether the connection is open with nothing received: nothing buffered, and a
    /// non-blocking read finds no byte and no end of stream (`WouldBlock`). Does not wait.
    pub fn open_and_unanswered(&mut self) -> bool {
        if !self.reader.buffer().is_empty() {
            return false;
        }
        let socket = self.reader.get_mut();
        socket.set_nonblocking(true).expect("non-blocking");
        let mut byte = [0u8; 1];
        let read = socket.read(&mut byte);
        socket.set_nonblocking(false).expect("blocking again");
        matches!(read, Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

/// The bytes of a request: `Host: test`, `headers`, and the body with its length.
pub fn request_bytes(
    method: &str,
    target: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> String {
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: test\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    match body {
        Some(body) => req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len())),
        None => req.push_str("\r\n"),
    }
    req
}

/// One request on a fresh connection.
pub fn request(
    addr: &Addr,
    method: &str,
    target: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> Reply {
    Conn::open(addr).request(method, target, body, headers)
}

// ---------------------------------------------------------------------------------------
// The API over a fresh connection per call, each asserting a 200

/// Asserts that `reply`, the answer to `what`, is a 200, and returns its JSON.
pub fn ok_json(reply: &Reply, what: &str) -> Value {
    assert_eq!(reply.status, 200, "{what}: {:?}", reply.json());
    reply.json()
}

/// `POST /api/v0/processes/start` with `body`; asserts a 200 and returns its JSON.
pub fn start(addr: &Addr, body: &Value, headers: &[(&str, &str)]) -> Value {
    let body = body.to_string();
    let reply = request(
        addr,
        "POST",
        "/api/v0/processes/start",
        Some(&body),
        headers,
    );
    ok_json(&reply, &format!("start {body}"))
}

/// The `id` of a start answer.
pub fn id_of(started: &Value) -> String {
    started["id"].as_str().expect("id").to_string()
}

/// Starts `command`; returns `(id, pid)`. The pid is also the process group id.
pub fn start_command(addr: &Addr, command: &str) -> (String, i32) {
    let started = start(addr, &json!({ "command": command }), &[]);
    (
        id_of(&started),
        started["pid"].as_i64().expect("pid") as i32,
    )
}

/// `GET .../output?QUERY` (`query` already URL-ready) with `headers`; asserts a 200 and
/// returns its JSON.
pub fn output_with_headers(addr: &Addr, id: &str, query: &str, headers: &[(&str, &str)]) -> Value {
    let target = format!("/api/v0/processes/{id}/output?{query}");
    ok_json(&request(addr, "GET", &target, None, headers), &target)
}

/// `GET .../output?QUERY` (`query` already URL-ready); asserts a 200 and returns its JSON.
pub fn output(addr: &Addr, id: &str, query: &str) -> Value {
    output_with_headers(addr, id, query, &[])
}

/// Waits (at most 20 s) for the process to exit; returns the final answer.
pub fn wait_exit(addr: &Addr, id: &str) -> Value {
    let out = output(addr, id, "wait=true&timeout_ms=20000");
    assert_eq!(
        out["running"],
        json!(false),
        "still running after 20 s: {out}"
    );
    out
}

/// Waits (at most [`TEXT_WAIT`]) until the process's output contains `needle`, using
/// `cursor=N&wait=true`.
pub fn wait_for_text(addr: &Addr, id: &str, needle: &str) {
    let deadline = Instant::now() + TEXT_WAIT;
    let mut cursor = 0u64;
    let mut seen = String::new();
    while Instant::now() < deadline {
        let out = output(
            addr,
            id,
            &format!("cursor={cursor}&wait=true&timeout_ms=2000"),
        );
        seen.push_str(out["output"].as_str().unwrap_or_default());
        cursor = out["next_cursor"].as_u64().expect("next_cursor");
        if seen.contains(needle) {
            return;
        }
        assert_eq!(
            out["running"],
            json!(true),
            "exited before printing {needle:?}: {out}"
        );
    }
    panic!("{needle:?} not seen within {TEXT_WAIT:?}; output so far {seen:?}");
}

/// `POST .../signal` with `body`; returns the status.
pub fn signal(addr: &Addr, id: &str, body: &Value) -> u16 {
    request(
        addr,
        "POST",
        &format!("/api/v0/processes/{id}/signal"),
        Some(&body.to_string()),
        &[],
    )
    .status
}

// ---------------------------------------------------------------------------------------
// The binary

/// A running `procwarden serve`; killed (SIGKILL) on drop if still running.
pub struct ServerProc {
    pub child: Child,
    pub addr: Addr,
    /// Its first line of output (`listening on ...`).
    pub line: String,
    /// The test-owned cgroup parent it was given (`--cgroup PATH`), removed after it.
    pub cgroup: Option<super::cgroup::TestCgroup>,
}

/// The `procwarden` binary under test: this build's, or the one `PROCWARDEN_TEST_BINARY`
/// names (to run a suite against another build, e.g. to show that a test fails before its
/// fix).
pub fn binary() -> &'static str {
    static BINARY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BINARY.get_or_init(|| {
        std::env::var("PROCWARDEN_TEST_BINARY")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_procwarden").to_string())
    })
}

/// Starts `procwarden serve ARGS` (without the caller's `PROCWARDEN_TOKEN`, plus `env`) and
/// waits for its `listening on` line.
///
/// Unless `args` say `--cgroup`, the server gets a cgroup parent of the test's own (see
/// [`super::cgroup::TestCgroup`]), so its processes are contained as in production and
/// nothing is left behind; where there is none it runs with `--cgroup off`.
pub fn serve(args: &[&str], env: &[(&str, &str)]) -> ServerProc {
    let mut cmd = Command::new(binary());
    cmd.arg("serve").args(args).env_remove("PROCWARDEN_TOKEN");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let cgroup = if args.iter().any(|a| a.starts_with("--cgroup")) {
        None
    } else {
        let cgroup = super::cgroup::TestCgroup::new("serve");
        match &cgroup {
            Some(c) => cmd.args(["--cgroup", c.arg()]),
            None => cmd.args(["--cgroup", "off"]),
        };
        cgroup
    };
    let mut server = serve_command(cmd);
    server.cgroup = cgroup;
    server
}

/// Starts a prepared command that ends up running `procwarden serve` in its own process (e.g.
/// through `sh -c '...; exec "$0" serve ...'`), with stdout and stderr piped, and waits for its
/// `listening on` line.
pub fn serve_command(mut cmd: Command) -> ServerProc {
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null());
    let mut child = cmd.spawn().expect("procwarden starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the listening line");
    let line = line.trim_end().to_string();
    let addr = if let Some(rest) = line.strip_prefix("listening on http://") {
        Addr::Tcp(rest.to_string())
    } else if let Some(rest) = line.strip_prefix("listening on unix:") {
        Addr::Unix(rest.to_string())
    } else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("unexpected first line {line:?}");
    };
    // Drain stderr in the background so the server never blocks on a full pipe.
    if let Some(mut stderr) = child.stderr.take() {
        std::thread::spawn(move || {
            let _ = io::copy(&mut stderr, &mut io::sink());
        });
    }
    ServerProc {
        child,
        addr,
        line,
        cgroup: None,
    }
}

impl ServerProc {
    /// The server's pid.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends `signal` (`-TERM`, `-KILL`) through the `kill` command, by pid.
    fn send(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Sends SIGTERM and waits at most `limit` for the exit. Returns the status and how long
    /// the exit took, or `None` if the server was still running at the deadline (it is then
    /// SIGKILLed and reaped).
    pub fn terminate_within(&mut self, limit: Duration) -> Option<(ExitStatus, Duration)> {
        let sent = Instant::now();
        self.send("-TERM");
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some((status, sent.elapsed()));
            }
            if sent.elapsed() >= limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGKILLs the server and reaps it.
    pub fn kill_hard(&mut self) -> ExitStatus {
        self.send("-KILL");
        self.child.wait().expect("server reaped")
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        self.send("-TERM");
        self.child.wait().expect("server exits")
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `procwarden ARGS` to completion and returns (exit code, stdout, stderr). A run that
/// goes on past [`RUN_LIMIT`] is killed (by its pid) and fails the test.
pub fn run_to_end(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(binary());
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("PROCWARDEN_TOKEN");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("procwarden runs");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(RUN_LIMIT) {
        Ok(out) => {
            let out = out.expect("output");
            (
                out.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("procwarden {args:?} did not exit within {RUN_LIMIT:?}");
        }
    }
}
