//! The JSON-RPC side of the MCP server: writing whole lines, batches, log levels, answers,
//! and reading bounded lines.

use std::io::{self, BufRead, Write};
use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::{Value, json};

/// The writer, shared: each message is written whole, under the lock, and flushed.
pub(super) struct Output {
    pub(super) writer: Mutex<Box<dyn Write + Send>>,
}

impl Output {
    pub(super) fn send(&self, message: &Value) {
        let mut line = message.to_string().into_bytes();
        line.push(b'\n');
        let mut writer = self.writer.lock();
        if let Err(e) = writer.write_all(&line).and_then(|()| writer.flush()) {
            log::debug!("cannot write an MCP message: {e}");
        }
    }
}

/// Where an answer goes: its own line, or its batch's array.
pub(super) enum Reply {
    Line(Arc<Output>),
    Batch(Arc<Batch>),
}

impl Reply {
    pub(super) fn send(self, message: Value) {
        match self {
            Reply::Line(out) => out.send(&message),
            Reply::Batch(batch) => batch.answers.lock().push(message),
        }
    }
}

/// The answers of one batch; written as one array when the last request of the batch has
/// been answered (or dropped unanswered, when cancelled): that is when the last `Arc` goes.
pub(super) struct Batch {
    pub(super) out: Arc<Output>,
    pub(super) answers: Mutex<Vec<Value>>,
}

impl Drop for Batch {
    fn drop(&mut self) {
        let answers = std::mem::take(&mut *self.answers.lock());
        if !answers.is_empty() {
            self.out.send(&Value::Array(answers));
        }
    }
}

/// The log levels of MCP, least severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum LogLevel {
    Debug,
    Info,
    Notice,
    Warning,
    Error,
    Critical,
    Alert,
    Emergency,
}

impl LogLevel {
    pub(super) const ALL: [(LogLevel, &'static str); 8] = [
        (LogLevel::Debug, "debug"),
        (LogLevel::Info, "info"),
        (LogLevel::Notice, "notice"),
        (LogLevel::Warning, "warning"),
        (LogLevel::Error, "error"),
        (LogLevel::Critical, "critical"),
        (LogLevel::Alert, "alert"),
        (LogLevel::Emergency, "emergency"),
    ];

    pub(super) fn parse(name: &str) -> Option<LogLevel> {
        LogLevel::ALL
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(level, _)| *level)
    }

    pub(super) fn name(self) -> &'static str {
        LogLevel::ALL
            .iter()
            .find(|(level, _)| *level == self)
            .map_or("info", |(_, n)| n)
    }
}

/// A JSON-RPC error answer.
pub(super) fn error_answer(id: &Value, code: i64, message: impl Into<String>) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message.into()}})
}

/// A JSON-RPC result answer.
pub(super) fn result_answer(id: &Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

/// The key of a request id in the table of calls in flight (`1` and `"1"` differ).
pub(super) fn id_key(id: &Value) -> String {
    id.to_string()
}

/// Reads one line (without its `\n`) into `line`, keeping at most `max` bytes. `None` at the
/// end of input; `Some(true)` when the line was longer than `max` (its rest is skipped).
pub(super) fn read_line(
    input: &mut impl BufRead,
    line: &mut Vec<u8>,
    max: usize,
) -> io::Result<Option<bool>> {
    let mut too_long = false;
    let mut any = false;
    loop {
        let available = match input.fill_buf() {
            Ok(available) => available,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok(any.then_some(too_long));
        }
        any = true;
        let (chunk, end) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..i], Some(i + 1)),
            None => (available, None),
        };
        if line.len() + chunk.len() > max {
            too_long = true;
        } else if !too_long {
            line.extend_from_slice(chunk);
        }
        let used = end.unwrap_or(chunk.len());
        input.consume(used);
        if end.is_some() {
            return Ok(Some(too_long));
        }
    }
}
