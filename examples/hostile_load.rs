//! How fast `list` and `signal` answer while the server is flooded: 1100 blocked long polls
//! and 1100 idle connections against a server whose `RLIMIT_NOFILE` is 1024.
//!
//! ```sh
//! cargo build --release && cargo run --release --example hostile_load
//! ```
//!
//! The server is the release binary beside this example (`target/release/procwarden`),
//! started under `ulimit -n 1024`; this process needs about 2300 descriptors of its own (the
//! usual soft limit of 1024 is not enough: raise it with `ulimit -n 4096` first). Everything
//! runs on loopback, every loop is bounded, and the server is stopped by its pid at the end.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const WAITS: usize = 1100;
const IDLE: usize = 1100;
const ROUNDS: usize = 9;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let binary = std::env::current_exe()?
        .parent()
        .and_then(|examples| examples.parent())
        .map(|release| release.join("procwarden"))
        .ok_or("no target directory")?;
    if !binary.exists() {
        return Err(format!(
            "{} is missing: run `cargo build --release` first",
            binary.display()
        )
        .into());
    }
    let mut server = Command::new("sh")
        .args([
            "-c",
            "ulimit -n 1024 && exec \"$0\" serve --listen 127.0.0.1:0",
            &binary.to_string_lossy(),
        ])
        .env_remove("PROCWARDEN_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let result = run(&mut server);
    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    let _ = server.wait();
    result
}

fn run(server: &mut Child) -> Result<(), Box<dyn std::error::Error>> {
    let mut line = String::new();
    BufReader::new(server.stdout.take().ok_or("stdout")?).read_line(&mut line)?;
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .ok_or("no listening line")?
        .to_string();
    let (target, _) = call(
        &addr,
        "POST",
        "/api/v0/processes/start",
        r#"{"command":"sleep 120"}"#,
    )?;
    let id = json_field(&target, "id").ok_or("no id")?;
    let poll = format!(
        "GET /api/v0/processes/{id}/output?wait=true&timeout_ms=300000 HTTP/1.1\r\nHost: x\r\n\r\n"
    );
    let began = Instant::now();
    let mut held = Vec::with_capacity(WAITS + IDLE);
    for _ in 0..WAITS {
        let mut conn = TcpStream::connect(&addr)?;
        conn.write_all(poll.as_bytes())?;
        held.push(conn);
    }
    for _ in 0..IDLE {
        held.push(TcpStream::connect(&addr)?);
    }
    println!(
        "{WAITS} long polls and {IDLE} idle connections opened in {:?}",
        began.elapsed()
    );
    let mut lists = Vec::new();
    let mut signals = Vec::new();
    for _ in 0..ROUNDS {
        let (started, _) = call(
            &addr,
            "POST",
            "/api/v0/processes/start",
            r#"{"command":"sleep 120"}"#,
        )?;
        let victim = json_field(&started, "id").ok_or("no id")?;
        let (_, took) = call(&addr, "GET", "/api/v0/processes/list", "")?;
        lists.push(took);
        let target = format!("/api/v0/processes/{victim}/signal");
        let (answer, took) = call(&addr, "POST", &target, r#"{"signal":"kill"}"#)?;
        if !answer.contains("sent to process") {
            return Err(format!("signal answered {answer}").into());
        }
        signals.push(took);
    }
    lists.sort();
    signals.sort();
    println!(
        "list:   median {:?}, max {:?} ({ROUNDS} rounds)",
        lists[ROUNDS / 2],
        lists[ROUNDS - 1]
    );
    println!(
        "signal: median {:?}, max {:?} ({ROUNDS} rounds)",
        signals[ROUNDS / 2],
        signals[ROUNDS - 1]
    );
    call(
        &addr,
        "POST",
        &format!("/api/v0/processes/{id}/signal"),
        r#"{"signal":"kill"}"#,
    )?;
    drop(held);
    Ok(())
}

/// One request on a fresh connection: the answer's body and how long it took.
fn call(
    addr: &str,
    method: &str,
    target: &str,
    body: &str,
) -> Result<(String, Duration), Box<dyn std::error::Error>> {
    let began = Instant::now();
    let mut conn = TcpStream::connect(addr)?;
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        conn,
        "{method} {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut answer = String::new();
    conn.read_to_string(&mut answer)?;
    let took = began.elapsed();
    if !answer.starts_with("HTTP/1.1 200") {
        return Err(format!("{method} {target}: {answer}").into());
    }
    let body = answer
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    Ok((body, took))
}

/// A string field of a flat JSON object, without a JSON parser.
fn json_field(json: &str, name: &str) -> Option<String> {
    let key = format!("\"{name}\":\"");
    let start = json.find(&key)? + key.len();
    let end = json[start..].find('"')? + start;
    Some(json[start..end].to_string())
}
