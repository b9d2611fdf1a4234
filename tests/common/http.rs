//! A minimal raw HTTP/1.1 client and a handle on a running `procwarden serve`, for tests that
//! need full control of the bytes on the wire (malformed requests included).
#![allow(dead_code)] // each test binary uses a different subset

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A parsed response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// Reads one response from a buffered stream (Content-Length bodies only, as the server sends).
pub fn read_reply(reader: &mut impl BufRead) -> std::io::Result<Reply> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed",
        ));
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((n, v)) = h.split_once(':') {
            headers.push((n.trim().to_string(), v.trim().to_string()));
        }
    }
    let len: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body)?;
    Ok(Reply {
        status,
        headers,
        body,
    })
}

/// Where a test server listens.
#[derive(Debug, Clone)]
pub enum Addr {
    Tcp(String),
    Unix(String),
}

/// One connection (keep-alive capable).
pub struct Conn {
    reader: BufReader<Box<dyn ReadWrite>>,
}

pub trait ReadWrite: Read + Write + Send {}
impl<T: Read + Write + Send> ReadWrite for T {}

impl Conn {
    pub fn open(addr: &Addr) -> Conn {
        let stream: Box<dyn ReadWrite> = match addr {
            Addr::Tcp(a) => {
                let s = TcpStream::connect(a).expect("connect");
                s.set_read_timeout(Some(Duration::from_secs(30))).ok();
                Box::new(s)
            }
            Addr::Unix(p) => {
                let s = UnixStream::connect(p).expect("connect unix");
                s.set_read_timeout(Some(Duration::from_secs(30))).ok();
                Box::new(s)
            }
        };
        Conn {
            reader: BufReader::new(stream),
        }
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).expect("write");
    }

    pub fn reply(&mut self) -> std::io::Result<Reply> {
        read_reply(&mut self.reader)
    }

    pub fn request(
        &mut self,
        method: &str,
        target: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = format!("{method} {target} HTTP/1.1\r\nHost: test\r\n");
        for (n, v) in headers {
            req.push_str(&format!("{n}: {v}\r\n"));
        }
        if let Some(body) = body {
            req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        } else {
            req.push_str("\r\n");
        }
        self.send_raw(req.as_bytes());
        self.reply().expect("a reply")
    }

    /// Whether the server has closed the connection (reads EOF).
    pub fn closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.reader.read(&mut byte), Ok(0) | Err(_))
    }
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

/// A running `procwarden serve`; killed (SIGKILL) on drop if still running.
pub struct ServerProc {
    pub child: Child,
    pub addr: Addr,
    pub line: String,
    pub stderr: Option<std::process::ChildStderr>,
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_procwarden")
}

/// Starts `procwarden serve ARGS` and waits for its `listening on` line.
pub fn serve(args: &[&str], env: &[(&str, &str)]) -> ServerProc {
    let mut cmd = Command::new(binary());
    cmd.arg("serve")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null());
    cmd.env_remove("PROCWARDEN_TOKEN");
    for (k, v) in env {
        cmd.env(k, v);
    }
    serve_command(cmd)
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
    let stderr = child.stderr.take();
    // Drain stderr in the background so the server never blocks on a full pipe.
    let stderr = stderr.map(|mut e| {
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = e.read_to_end(&mut sink);
        });
    });
    let _ = stderr;
    ServerProc {
        child,
        addr,
        line,
        stderr: None,
    }
}

impl ServerProc {
    /// The server's pid.
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends SIGTERM (through the `kill` command, by pid) and waits at most `limit` for the
    /// exit. Returns the status and how long the exit took, or `None` if the server was still
    /// running at the deadline (it is then SIGKILLed and reaped).
    pub fn terminate_within(
        &mut self,
        limit: Duration,
    ) -> Option<(std::process::ExitStatus, Duration)> {
        let sent = std::time::Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
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

    /// SIGKILLs the server (through the `kill` command, by pid) and reaps it.
    pub fn kill_hard(&mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-KILL", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        self.child.wait().expect("server reaped")
    }

    /// Sends SIGTERM (through the `kill` command, by pid) and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
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
/// goes on past 20 s is killed (by its pid) and fails the test.
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
    match rx.recv_timeout(Duration::from_secs(20)) {
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
            panic!("procwarden {args:?} did not exit within 20 s");
        }
    }
}
