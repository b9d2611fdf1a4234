//! The agent tools over the Model Context Protocol: [`Server`], a synchronous MCP server that
//! speaks newline-delimited JSON-RPC 2.0 on a reader and a writer (stdin and stdout for
//! `procwarden mcp`), and lists and runs every tool of [`tools::definitions`].
//!
//! The official Rust SDK needs an async runtime, which this crate does not take; the protocol
//! is small, so this layer is our own, over `serde_json`. What it speaks:
//!
//! - Protocol versions [`PROTOCOL_VERSIONS`] (2025-06-18 and 2025-03-26): `initialize` answers
//!   with the client's version when it is one of them, else the newest. Requests other than
//!   `initialize` and `ping` before `initialize` are refused (-32600).
//! - Requests `initialize`, `ping`, `tools/list`, `tools/call`, `logging/setLevel`;
//!   notifications `notifications/initialized` and `notifications/cancelled` (others are
//!   ignored, as the protocol says). Responses from the client are ignored: this server sends
//!   no requests.
//! - `tools/list`: every tool with `inputSchema`, `outputSchema`, `annotations` and `title`.
//!   `tools/call`: `structuredContent` (the tool's result object) and the same JSON as one text
//!   content item; `isError` is true exactly when the result's `success` is not true. A tool
//!   failure (invalid arguments included) is such a result, never a JSON-RPC error; an unknown
//!   tool name or malformed params are -32602. The fields that 2025-06-18 added (`title`,
//!   `outputSchema`, `structuredContent`) are sent to 2025-03-26 clients too: such a client
//!   ignores them, and the text item carries the same JSON.
//! - Errors: -32700 for a line that is not JSON, -32600 for JSON that is not a request, -32601
//!   for an unknown method, -32602 for bad params. Batches (JSON arrays) are taken when the
//!   session speaks 2025-03-26 (which has them) and refused with -32600 otherwise; their
//!   answers come as one array, in the order the calls finish.
//! - Progress: a foreground `execute` whose request carries `_meta.progressToken` sends
//!   `notifications/progress` when new output arrives (at most once per
//!   [`tools::PROGRESS_INTERVAL`]): `progress` is the seconds since the start, `message` the
//!   newest output line. It is driven by the output waits (a cursor wait wakes on new output),
//!   not by a timer: a silent command sends none.
//! - Cancellation: `notifications/cancelled` for a call in flight ends its wait at once when
//!   the backend can interrupt waits (in process), and its answer is never sent; a process it
//!   started keeps running (`process_list` shows it). Over HTTP (`--url`) the client's wait
//!   cannot be interrupted: the answer is dropped all the same, the worker is replaced at once
//!   so the pool keeps its size (at most [`MAX_ABANDONED_WORKERS`] replaced ones at a time),
//!   and the old worker ends when its HTTP wait ends (bounded by the wait it asked for, at most
//!   five minutes, plus the client's margin).
//! - `logging/setLevel`: once set, the server's own events at or above the level are also sent
//!   as `notifications/message` (they always go to the log, on stderr).
//!
//! Concurrency: `initialize`, `ping`, `tools/list` and `logging/setLevel` are answered on the
//! reading thread; each `tools/call` goes to a small pool of worker threads ([`Limits`]), so a
//! long `execute` never holds up a `process_list`. At most [`Limits::max_pending_calls`] calls
//! wait for a worker; past that a call is answered at once with a tool failure that says the
//! server is busy. Every message is written as one whole line under one lock, and nothing but
//! JSON-RPC is ever written to the writer.
//!
//! ```
//! use std::io::{BufRead, BufReader, Write};
//! use std::sync::Arc;
//! use procwarden::{Manager, mcp, tools::LocalApi};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let manager = Arc::new(Manager::new()?);
//! let (answers, mut read_answers) = std::os::unix::net::UnixStream::pair()?;
//! let server = mcp::Server::new(Arc::new(LocalApi::new(manager, None)), answers)?;
//! server.handle_line(br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#);
//! let mut line = String::new();
//! BufReader::new(&mut read_answers).read_line(&mut line)?;
//! assert_eq!(line, "{\"id\":1,\"jsonrpc\":\"2.0\",\"result\":{}}\n");
//! server.shutdown();
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::io::{self, BufRead, Write};
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use parking_lot::Mutex;
use serde_json::{Map, Value, json};

use crate::api::{LocalApi, ProcessApi};
use crate::interrupt::Interrupt;
use crate::tools;

#[cfg(feature = "cli")]
mod command;
mod protocol;
mod workers;

use protocol::{Batch, LogLevel, Output, Reply, error_answer, id_key, read_line, result_answer};
use workers::spawn_worker;

#[cfg(feature = "cli")]
#[doc(hidden)]
pub use command::{McpError, McpOptions, run};

/// The protocol versions this server speaks, newest first.
pub const PROTOCOL_VERSIONS: [&str; 2] = ["2025-06-18", "2025-03-26"];
/// The version that has batches (JSON arrays of messages); the newer one removed them.
const BATCH_VERSION: &str = "2025-03-26";

/// JSON-RPC: the line is not JSON.
pub const PARSE_ERROR: i64 = -32700;
/// JSON-RPC: the JSON is not a valid request (or the session is not in a state to take it).
pub const INVALID_REQUEST: i64 = -32600;
/// JSON-RPC: no such method.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// JSON-RPC: the method's params are wrong.
pub const INVALID_PARAMS: i64 = -32602;
/// JSON-RPC: the server failed (a tool call that panicked: a bug).
pub const INTERNAL_ERROR: i64 = -32603;

/// Worker threads that run tool calls, unless [`Limits`] says otherwise.
pub const DEFAULT_WORKERS: usize = 8;
/// Tool calls that may wait for a worker, unless [`Limits`] says otherwise.
pub const MAX_PENDING_CALLS: usize = 64;
/// Longest message (one line) read, unless [`Limits`] says otherwise; a longer one is answered
/// with -32600 and skipped.
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;
/// Most workers that may be replaced at once because a cancelled call keeps them blocked in a
/// wait that cannot be interrupted (over HTTP). Past it, a cancelled call's worker is not
/// replaced: the pool shrinks by one until that wait ends.
pub const MAX_ABANDONED_WORKERS: usize = 16;
/// Stack of each worker thread (a tool call and serde_json; recursion is bounded by
/// serde_json's depth limit on the reading thread).
pub const WORKER_STACK_BYTES: usize = 256 << 10;
/// The name this server gives in `initialize`.
pub const SERVER_NAME: &str = "procwarden";

/// What `initialize` tells the model about using the tools.
const INSTRUCTIONS: &str = "procwarden runs shell commands on this host. Use execute for a command and its output (it waits up to its timeout); use run_in_background for servers, watchers and long builds, then process_output (with next_cursor as cursor for new output), process_list and process_signal. Output keeps the first and last 16 KiB of each process.";

/// Where the tools run, for a [`Server`]: in process ([`LocalApi`]) or against a
/// `procwarden serve` (`client::Client`, feature `client`).
pub trait Backend: Send + Sync {
    /// The process API for one tool call. `cancel` is the call's interrupt: an API that can,
    /// lets it end its waits early.
    fn api(&self, cancel: &Interrupt) -> Box<dyn ProcessApi + '_>;

    /// Whether `cancel` ends this backend's waits at once. When it does not, a cancelled
    /// call's worker is replaced while its wait runs out (see [`MAX_ABANDONED_WORKERS`]).
    fn interrupts_waits(&self) -> bool;
}

impl Backend for LocalApi {
    fn api(&self, cancel: &Interrupt) -> Box<dyn ProcessApi + '_> {
        Box::new(self.clone().interruptible(cancel))
    }

    fn interrupts_waits(&self) -> bool {
        true
    }
}

#[cfg(feature = "client")]
impl Backend for crate::client::Client {
    fn api(&self, _cancel: &Interrupt) -> Box<dyn ProcessApi + '_> {
        Box::new(self.clone())
    }

    fn interrupts_waits(&self) -> bool {
        false
    }
}

/// The bounds of a [`Server`]. Construct with `Limits::default()` and change fields.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Worker threads that run tool calls ([`DEFAULT_WORKERS`]; at least one is started).
    pub workers: usize,
    /// Tool calls that may wait for a worker ([`MAX_PENDING_CALLS`]).
    pub max_pending_calls: usize,
    /// Longest message read by [`Server::read_from`] ([`MAX_MESSAGE_BYTES`]).
    pub max_message_bytes: usize,
    /// Most replaced workers at once ([`MAX_ABANDONED_WORKERS`]).
    pub max_abandoned_workers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            workers: DEFAULT_WORKERS,
            max_pending_calls: MAX_PENDING_CALLS,
            max_message_bytes: MAX_MESSAGE_BYTES,
            max_abandoned_workers: MAX_ABANDONED_WORKERS,
        }
    }
}

/// The tool call result of MCP for one tool result object: the object as `structuredContent`,
/// the same JSON as one text content item, and `isError` when `success` is not true.
#[must_use]
pub fn tool_result(result: Value) -> Value {
    let is_error = result.get("success") != Some(&Value::Bool(true));
    json!({
        "content": [{"type": "text", "text": result.to_string()}],
        "structuredContent": result,
        "isError": is_error,
    })
}

/// The MCP tool list for tool definitions (as [`tools::definitions`] gives them): each with
/// `name`, `title`, `description`, `inputSchema`, `outputSchema` and `annotations`.
#[must_use]
pub fn tool_list(definitions: &Value) -> Value {
    let tools: Vec<Value> = definitions
        .as_array()
        .into_iter()
        .flatten()
        .map(|def| {
            let mut tool = Map::new();
            tool.insert("name".into(), def["name"].clone());
            if let Some(title) = def.pointer("/annotations/title") {
                tool.insert("title".into(), title.clone());
            }
            for (from, to) in [
                ("description", "description"),
                ("parameters", "inputSchema"),
                ("outputSchema", "outputSchema"),
                ("annotations", "annotations"),
            ] {
                if let Some(value) = def.get(from) {
                    tool.insert(to.into(), value.clone());
                }
            }
            Value::Object(tool)
        })
        .collect();
    json!({ "tools": tools })
}

/// An MCP server over a [`Backend`]: feed it lines ([`Server::read_from`] or
/// [`Server::handle_line`]); it writes its answers and notifications, one JSON-RPC message per
/// line, to its writer. Cheap to clone (clones share everything); when the last clone is
/// dropped it shuts down as [`Server::shutdown`] does.
#[derive(Clone)]
pub struct Server {
    inner: Arc<Inner>,
    _last: Arc<ShutdownOnDrop>,
}

/// Held by every clone of a [`Server`] (the workers hold only [`Inner`]): the last one to go
/// shuts the server down.
struct ShutdownOnDrop(Arc<Inner>);

impl Drop for ShutdownOnDrop {
    fn drop(&mut self) {
        self.0.shutdown();
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("limits", &self.inner.limits)
            .finish_non_exhaustive()
    }
}

struct Inner {
    backend: Arc<dyn Backend>,
    limits: Limits,
    out: Arc<Output>,
    session: Mutex<Session>,
    calls: Mutex<Calls>,
    /// Where tool calls go to the workers; `None` once shut down.
    jobs: Mutex<Option<Sender<Job>>>,
    /// Where the workers take them from (kept to start replacements).
    queue: Receiver<Job>,
    workers: Mutex<Vec<std::thread::JoinHandle<()>>>,
    /// The `tools/list` result and the tool names, computed once.
    tool_list: Value,
    tool_names: Vec<String>,
    /// How far this session's tool calls have read each process (`process_input` answers
    /// with what comes after).
    positions: tools::ReadPositions,
}

/// The protocol state of the session.
#[derive(Debug, Default)]
struct Session {
    /// The version agreed in `initialize`; `None` before it.
    version: Option<&'static str>,
    /// `logging/setLevel`: server events at or above it go to the client too.
    log_level: Option<LogLevel>,
}

/// The tool calls in flight (queued or running), by request id.
#[derive(Default)]
struct Calls {
    by_id: HashMap<String, CallState>,
    /// Workers replaced while a cancelled call keeps them blocked.
    abandoned: usize,
    /// Set by [`Server::shutdown`]: no more calls are taken.
    closed: bool,
}

struct CallState {
    interrupt: Interrupt,
    started: bool,
    /// `notifications/cancelled` came: no answer is sent.
    cancelled: bool,
    /// Its worker was replaced and ends after this call.
    replaced: bool,
}

/// One `tools/call` for a worker.
struct Job {
    id: Value,
    key: String,
    name: String,
    arguments: Value,
    progress_token: Option<Value>,
    interrupt: Interrupt,
    reply: Reply,
}

impl Server {
    /// A server over `backend` that writes to `output`, with the default [`Limits`]. Starts
    /// its worker threads.
    ///
    /// # Errors
    ///
    /// When a worker thread cannot be started.
    pub fn new(
        backend: Arc<dyn Backend>,
        output: impl Write + Send + 'static,
    ) -> io::Result<Server> {
        Server::with_limits(backend, output, Limits::default())
    }

    /// [`Server::new`] with other [`Limits`].
    ///
    /// # Errors
    ///
    /// When a worker thread cannot be started.
    pub fn with_limits(
        backend: Arc<dyn Backend>,
        output: impl Write + Send + 'static,
        limits: Limits,
    ) -> io::Result<Server> {
        let definitions = tools::definitions();
        let tool_names = definitions
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d["name"].as_str().map(str::to_string))
            .collect();
        let (jobs, queue) = crossbeam_channel::bounded(limits.max_pending_calls);
        let inner = Arc::new(Inner {
            backend,
            out: Arc::new(Output {
                writer: Mutex::new(Box::new(output)),
            }),
            session: Mutex::new(Session::default()),
            calls: Mutex::new(Calls::default()),
            jobs: Mutex::new(Some(jobs)),
            queue,
            workers: Mutex::new(Vec::new()),
            tool_list: tool_list(&definitions),
            tool_names,
            positions: tools::ReadPositions::new(),
            limits,
        });
        let last = Arc::new(ShutdownOnDrop(Arc::clone(&inner)));
        for _ in 0..inner.limits.workers.max(1) {
            let handle = spawn_worker(&inner)?;
            inner.workers.lock().push(handle);
        }
        Ok(Server { inner, _last: last })
    }

    /// Reads messages, one per line, until `input` ends, and handles each as
    /// [`Server::handle_line`] does. A line longer than [`Limits::max_message_bytes`] is
    /// answered with -32600 and skipped. Returns at the end of `input`; calls still in flight
    /// go on (see [`Server::shutdown`]).
    ///
    /// # Errors
    ///
    /// A read error of `input`.
    pub fn read_from(&self, mut input: impl BufRead) -> io::Result<()> {
        let max = self.inner.limits.max_message_bytes;
        let mut line = Vec::new();
        loop {
            line.clear();
            match read_line(&mut input, &mut line, max)? {
                None => return Ok(()),
                Some(true) => self.inner.out.send(&error_answer(
                    &Value::Null,
                    INVALID_REQUEST,
                    format!("Message longer than {max} bytes."),
                )),
                Some(false) => self.handle_line(&line),
            }
        }
    }

    /// Handles one message (one line without its line end; surrounding white space is
    /// ignored, and so is a blank line). Answers that need no tool are written before this
    /// returns; a tool call's answer is written by a worker when it is done.
    pub fn handle_line(&self, line: &[u8]) {
        let line = line.trim_ascii();
        if line.is_empty() {
            return;
        }
        let message: Value = match serde_json::from_slice(line) {
            Ok(message) => message,
            Err(e) => {
                self.inner.out.send(&error_answer(
                    &Value::Null,
                    PARSE_ERROR,
                    format!("Parse error: {e}"),
                ));
                return;
            }
        };
        match message {
            Value::Array(messages) => self.handle_batch(messages),
            message => self.handle_message(message, Reply::Line(Arc::clone(&self.inner.out))),
        }
    }

    /// Ends the session: takes no more tool calls, interrupts every call in flight (each still
    /// answers, with what it has: the writer may be gone), and when the backend interrupts
    /// waits, joins the workers. Over a backend that does not (HTTP), workers blocked in a wait
    /// are left to end by themselves. Processes keep running: closing the manager is the
    /// owner's job.
    pub fn shutdown(&self) {
        self.inner.shutdown();
    }

    fn handle_batch(&self, messages: Vec<Value>) {
        let version = self.inner.session.lock().version;
        if version != Some(BATCH_VERSION) {
            let why = match version {
                Some(v) => format!("Batches are not part of protocol version {v}."),
                None => "A batch cannot come before initialize.".to_string(),
            };
            self.inner
                .out
                .send(&error_answer(&Value::Null, INVALID_REQUEST, why));
            return;
        }
        if messages.is_empty() {
            self.inner
                .out
                .send(&error_answer(&Value::Null, INVALID_REQUEST, "Empty batch."));
            return;
        }
        let batch = Arc::new(Batch {
            out: Arc::clone(&self.inner.out),
            answers: Mutex::new(Vec::new()),
        });
        for message in messages {
            self.handle_message(message, Reply::Batch(Arc::clone(&batch)));
        }
    }

    fn handle_message(&self, message: Value, reply: Reply) {
        let Value::Object(mut message) = message else {
            reply.send(error_answer(
                &Value::Null,
                INVALID_REQUEST,
                "A message must be a JSON object.",
            ));
            return;
        };
        let id = match message.remove("id") {
            None => None,
            Some(id @ (Value::String(_) | Value::Number(_))) => Some(id),
            Some(_) => {
                reply.send(error_answer(
                    &Value::Null,
                    INVALID_REQUEST,
                    "A request id must be a string or a number.",
                ));
                return;
            }
        };
        let answer_id = id.clone().unwrap_or(Value::Null);
        if message.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
            reply.send(error_answer(
                &answer_id,
                INVALID_REQUEST,
                "\"jsonrpc\" must be \"2.0\".",
            ));
            return;
        }
        let method = match message.remove("method") {
            Some(Value::String(method)) => method,
            None if id.is_some()
                && (message.contains_key("result") || message.contains_key("error")) =>
            {
                // A response: this server sends no requests, so there is nothing to match.
                log::debug!("ignoring a response from the client");
                return;
            }
            _ => {
                reply.send(error_answer(
                    &answer_id,
                    INVALID_REQUEST,
                    "\"method\" must be a string.",
                ));
                return;
            }
        };
        let params = match message.remove("params") {
            None | Some(Value::Null) => None,
            Some(params @ (Value::Object(_) | Value::Array(_))) => Some(params),
            Some(_) => {
                reply.send(error_answer(
                    &answer_id,
                    INVALID_REQUEST,
                    "\"params\" must be an object.",
                ));
                return;
            }
        };
        let Some(id) = id else {
            self.handle_notification(&method, params.as_ref());
            return;
        };
        let params = match params {
            None => Map::new(),
            Some(Value::Object(params)) => params,
            Some(_) => {
                reply.send(error_answer(
                    &id,
                    INVALID_PARAMS,
                    "\"params\" must be an object.",
                ));
                return;
            }
        };
        self.handle_request(&id, &method, params, reply);
    }

    /// Handles a request; answers it through `reply`, now or (a tool call) from a worker.
    fn handle_request(&self, id: &Value, method: &str, params: Map<String, Value>, reply: Reply) {
        let initialized = self.inner.session.lock().version.is_some();
        let answer = match method {
            "initialize" => self.initialize(id, &params),
            "ping" => result_answer(id, json!({})),
            "tools/list" | "tools/call" | "logging/setLevel" if !initialized => error_answer(
                id,
                INVALID_REQUEST,
                "The session is not initialized: send initialize first.",
            ),
            "tools/list" => match params.get("cursor") {
                None | Some(Value::Null) => result_answer(id, self.inner.tool_list.clone()),
                Some(_) => error_answer(id, INVALID_PARAMS, "Unknown cursor."),
            },
            "logging/setLevel" => self.set_level(id, &params),
            "tools/call" => return self.call_tool(id, params, reply),
            other => error_answer(id, METHOD_NOT_FOUND, format!("Method not found: {other}")),
        };
        reply.send(answer);
    }

    fn handle_notification(&self, method: &str, params: Option<&Value>) {
        match method {
            "notifications/initialized" => log::debug!("the client is initialized"),
            "notifications/cancelled" => match params.and_then(|p| p.get("requestId")) {
                Some(id @ (Value::String(_) | Value::Number(_))) => self.cancel(id),
                _ => log::debug!("ignoring a cancellation without a request id"),
            },
            other => log::debug!("ignoring the notification {other}"),
        }
    }

    fn initialize(&self, id: &Value, params: &Map<String, Value>) -> Value {
        let Some(asked) = params.get("protocolVersion").and_then(Value::as_str) else {
            return error_answer(
                id,
                INVALID_PARAMS,
                "initialize needs a string protocolVersion.",
            );
        };
        let version = PROTOCOL_VERSIONS
            .iter()
            .copied()
            .find(|v| *v == asked)
            .unwrap_or(PROTOCOL_VERSIONS[0]);
        {
            let mut session = self.inner.session.lock();
            if session.version.is_some() {
                return error_answer(id, INVALID_REQUEST, "The session is already initialized.");
            }
            session.version = Some(version);
        }
        let client = params
            .get("clientInfo")
            .and_then(|c| c.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("an unnamed client");
        log::info!("MCP session with {client}: protocol {version} (asked {asked})");
        let server_info = json!({
            "name": SERVER_NAME,
            "title": "procwarden process runner",
            "version": env!("CARGO_PKG_VERSION"),
        });
        result_answer(
            id,
            json!({
                "protocolVersion": version,
                "capabilities": {"tools": {"listChanged": false}, "logging": {}},
                "serverInfo": server_info,
                "instructions": INSTRUCTIONS,
            }),
        )
    }

    fn set_level(&self, id: &Value, params: &Map<String, Value>) -> Value {
        let Some(level) = params
            .get("level")
            .and_then(Value::as_str)
            .and_then(LogLevel::parse)
        else {
            return error_answer(
                id,
                INVALID_PARAMS,
                "level must be one of debug, info, notice, warning, error, critical, alert, emergency.",
            );
        };
        self.inner.session.lock().log_level = Some(level);
        result_answer(id, json!({}))
    }

    /// Checks a `tools/call` and hands it to a worker.
    fn call_tool(&self, id: &Value, mut params: Map<String, Value>, reply: Reply) {
        let name = match params.remove("name") {
            Some(Value::String(name)) if self.inner.tool_names.contains(&name) => name,
            Some(Value::String(name)) => {
                reply.send(error_answer(
                    id,
                    INVALID_PARAMS,
                    format!("Unknown tool: {name}"),
                ));
                return;
            }
            _ => {
                reply.send(error_answer(
                    id,
                    INVALID_PARAMS,
                    "tools/call needs a string name.",
                ));
                return;
            }
        };
        let arguments = match params.remove("arguments") {
            None | Some(Value::Null) => Value::Object(Map::new()),
            Some(arguments @ Value::Object(_)) => arguments,
            Some(_) => {
                reply.send(error_answer(
                    id,
                    INVALID_PARAMS,
                    "tools/call arguments must be an object.",
                ));
                return;
            }
        };
        let progress_token = match params.get("_meta").and_then(|m| m.get("progressToken")) {
            None | Some(Value::Null) => None,
            Some(token @ (Value::String(_) | Value::Number(_))) => Some(token.clone()),
            Some(_) => {
                reply.send(error_answer(
                    id,
                    INVALID_PARAMS,
                    "_meta.progressToken must be a string or a number.",
                ));
                return;
            }
        };
        let key = id_key(id);
        let interrupt = Interrupt::new();
        let mut calls = self.inner.calls.lock();
        if calls.closed {
            drop(calls);
            reply.send(result_answer(
                id,
                tool_result(json!({"success": false, "error": "The server is shutting down."})),
            ));
            return;
        }
        if calls.by_id.contains_key(&key) {
            drop(calls);
            reply.send(error_answer(
                id,
                INVALID_REQUEST,
                format!("Request id {key} is already in use by a call in flight."),
            ));
            return;
        }
        let job = Job {
            id: id.clone(),
            key: key.clone(),
            name,
            arguments,
            progress_token,
            interrupt: interrupt.clone(),
            reply,
        };
        let sent = match self.inner.jobs.lock().as_ref() {
            Some(jobs) => jobs.try_send(job),
            None => Err(TrySendError::Disconnected(job)),
        };
        match sent {
            Ok(()) => {
                calls.by_id.insert(
                    key,
                    CallState {
                        interrupt,
                        started: false,
                        cancelled: false,
                        replaced: false,
                    },
                );
            }
            Err(TrySendError::Full(job)) => {
                drop(calls);
                let error = format!(
                    "The server is busy: {} tool calls are waiting for one of its {} workers. Try again when one has finished.",
                    self.inner.limits.max_pending_calls, self.inner.limits.workers
                );
                self.log(LogLevel::Warning, &error);
                job.reply.send(result_answer(
                    id,
                    tool_result(json!({"success": false, "error": error})),
                ));
            }
            Err(TrySendError::Disconnected(job)) => {
                drop(calls);
                job.reply.send(result_answer(
                    id,
                    tool_result(json!({"success": false, "error": "The server is shutting down."})),
                ));
            }
        }
    }

    /// `notifications/cancelled`: the call's answer is never sent and its waits end; a worker
    /// that cannot be woken is replaced.
    fn cancel(&self, id: &Value) {
        let key = id_key(id);
        let mut calls = self.inner.calls.lock();
        let abandoned = calls.abandoned;
        let Some(call) = calls.by_id.get_mut(&key) else {
            log::debug!("cancellation of {key}, which is not in flight");
            return;
        };
        if call.cancelled {
            return;
        }
        call.cancelled = true;
        call.interrupt.interrupt();
        let replace = call.started
            && !self.inner.backend.interrupts_waits()
            && abandoned < self.inner.limits.max_abandoned_workers;
        if !replace {
            drop(calls);
            self.log(LogLevel::Info, &format!("call {key} cancelled"));
            return;
        }
        match spawn_worker(&self.inner) {
            Ok(_detached) => {
                if let Some(call) = calls.by_id.get_mut(&key) {
                    call.replaced = true;
                }
                calls.abandoned += 1;
                drop(calls);
                self.log(
                    LogLevel::Info,
                    &format!("call {key} cancelled; its worker ends when its HTTP wait does"),
                );
            }
            Err(e) => {
                drop(calls);
                self.log(
                    LogLevel::Warning,
                    &format!("call {key} cancelled; cannot start a worker in its place: {e}"),
                );
            }
        }
    }

    /// Logs `text` (to stderr), and sends it to the client when it asked for that level.
    fn log(&self, level: LogLevel, text: &str) {
        self.inner.log(level, text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api;
    use crate::manager::Manager;
    use crossbeam_channel::RecvTimeoutError;
    use std::time::{Duration, Instant};

    /// How long a test waits for an answer that must come.
    const ANSWER_WAIT: Duration = Duration::from_secs(20);

    /// A writer that hands each write to the test; the server writes each message with one
    /// `write_all`, which this takes whole.
    struct Sink(Sender<Vec<u8>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let _ = self.0.send(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    struct Peer {
        server: Server,
        lines: Receiver<Vec<u8>>,
    }

    impl Peer {
        fn new(backend: Arc<dyn Backend>, limits: Limits) -> Peer {
            let (tx, lines) = crossbeam_channel::unbounded();
            let server = Server::with_limits(backend, Sink(tx), limits).expect("server");
            Peer { server, lines }
        }

        fn local() -> (Peer, Arc<Manager>) {
            let manager = Arc::new(Manager::new().expect("manager"));
            let api = LocalApi::new(Arc::clone(&manager), None);
            (Peer::new(Arc::new(api), Limits::default()), manager)
        }

        fn send(&self, message: &Value) {
            self.server.handle_line(message.to_string().as_bytes());
        }

        /// The next message, which must come; each is exactly one line.
        fn next(&self) -> Value {
            let bytes = self.lines.recv_timeout(ANSWER_WAIT).expect("a message");
            assert_eq!(
                bytes.iter().filter(|&&b| b == b'\n').count(),
                1,
                "one line per write: {:?}",
                String::from_utf8_lossy(&bytes)
            );
            assert_eq!(bytes.last(), Some(&b'\n'));
            serde_json::from_slice(&bytes).expect("JSON")
        }

        /// The next message that is not a notification.
        fn answer(&self) -> Value {
            loop {
                let message = self.next();
                if message.get("method").is_none() {
                    return message;
                }
            }
        }

        fn request(&self, id: u64, method: &str, params: Value) -> Value {
            self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
            let answer = self.answer();
            assert_eq!(answer["id"], json!(id), "{answer}");
            answer
        }

        fn initialize(&self, version: &str) -> Value {
            self.request(
                0,
                "initialize",
                json!({"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}}),
            )
        }

        fn call(&self, id: u64, name: &str, arguments: Value) -> Value {
            self.request(
                id,
                "tools/call",
                json!({"name": name, "arguments": arguments}),
            )["result"]
                .clone()
        }

        /// Nothing is written now (checked after a ping's answer, which comes after anything
        /// already written by the reading thread).
        fn assert_quiet(&self) {
            self.send(&json!({"jsonrpc": "2.0", "id": "quiet", "method": "ping"}));
            assert_eq!(self.next()["id"], json!("quiet"));
        }

        /// Waits until no call is in flight (the product has no event for it: tests only).
        fn settle(&self) {
            let deadline = Instant::now() + ANSWER_WAIT;
            while !self.server.inner.calls.lock().by_id.is_empty() {
                assert!(Instant::now() < deadline, "calls still in flight");
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }

    fn code(answer: &Value) -> i64 {
        answer["error"]["code"]
            .as_i64()
            .unwrap_or_else(|| panic!("not an error: {answer}"))
    }

    #[test]
    fn initialize_negotiates_the_version() {
        for (asked, agreed) in [
            ("2025-06-18", "2025-06-18"),
            ("2025-03-26", "2025-03-26"),
            ("2024-11-05", "2025-06-18"),
            ("2099-01-01", "2025-06-18"),
        ] {
            let (peer, _manager) = Peer::local();
            let answer = peer.initialize(asked);
            let result = &answer["result"];
            assert_eq!(result["protocolVersion"], json!(agreed), "{asked}");
            assert_eq!(result["serverInfo"]["name"], json!("procwarden"));
            assert_eq!(
                result["capabilities"]["tools"],
                json!({"listChanged": false})
            );
            assert_eq!(result["capabilities"]["logging"], json!({}));
            assert!(
                result["instructions"]
                    .as_str()
                    .is_some_and(|i| i.contains("execute"))
            );
            assert!(result["serverInfo"]["title"].is_string());
            assert_eq!(
                result["serverInfo"]["version"],
                json!(env!("CARGO_PKG_VERSION"))
            );
            assert_eq!(code(&peer.initialize(asked)), INVALID_REQUEST, "only once");
        }
        let (peer, _manager) = Peer::local();
        for params in [json!({}), json!({"protocolVersion": 20250618})] {
            let answer = peer.request(1, "initialize", params);
            assert_eq!(code(&answer), INVALID_PARAMS, "{answer}");
        }
        assert_eq!(
            code(&peer.request(2, "initialize", json!(null))),
            INVALID_PARAMS
        );
    }

    #[test]
    fn malformed_messages_get_the_json_rpc_errors() {
        let (peer, _manager) = Peer::local();
        let raw = |line: &str| {
            peer.server.handle_line(line.as_bytes());
            peer.next()
        };
        let parse = raw("{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": \"ping\"");
        assert_eq!((code(&parse), &parse["id"]), (PARSE_ERROR, &Value::Null));
        assert_eq!(code(&raw("not json")), PARSE_ERROR);
        for line in ["5", "\"ping\"", "null", "true"] {
            let answer = raw(line);
            assert_eq!(
                (code(&answer), &answer["id"]),
                (INVALID_REQUEST, &Value::Null),
                "{line}"
            );
        }
        for (line, id) in [
            (r#"{"id": 7, "method": "ping"}"#, json!(7)),
            (r#"{"jsonrpc": "1.0", "id": 7, "method": "ping"}"#, json!(7)),
            (r#"{"jsonrpc": "2.0", "id": 7, "method": 5}"#, json!(7)),
            (r#"{"jsonrpc": "2.0", "id": "s", "params": {}}"#, json!("s")),
            (
                r#"{"jsonrpc": "2.0", "id": 7, "method": "ping", "params": "x"}"#,
                json!(7),
            ),
            (
                r#"{"jsonrpc": "2.0", "id": null, "method": "ping"}"#,
                Value::Null,
            ),
            (
                r#"{"jsonrpc": "2.0", "id": {"a": 1}, "method": "ping"}"#,
                Value::Null,
            ),
            (r#"{"jsonrpc": "2.0", "method": 5}"#, Value::Null),
        ] {
            let answer = raw(line);
            assert_eq!(
                (code(&answer), &answer["id"]),
                (INVALID_REQUEST, &id),
                "{line}"
            );
        }
        let array_params = raw(r#"{"jsonrpc": "2.0", "id": 8, "method": "ping", "params": [1]}"#);
        assert_eq!(
            (code(&array_params), &array_params["id"]),
            (INVALID_PARAMS, &json!(8))
        );
        // Unknown methods are -32601, before initialize too (a client may probe).
        let unknown = peer.request(9, "server/discover", json!({}));
        assert_eq!(code(&unknown), METHOD_NOT_FOUND);
        assert!(
            unknown["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("server/discover"))
        );
        let ping = peer.request(10, "ping", json!(null));
        assert_eq!(ping["result"], json!({}));
        // Before initialize nothing else is served.
        for method in ["tools/list", "tools/call", "logging/setLevel"] {
            assert_eq!(
                code(&peer.request(11, method, json!({}))),
                INVALID_REQUEST,
                "{method}"
            );
        }
        peer.initialize("2025-06-18");
        assert_eq!(
            code(&peer.request(12, "resources/list", json!({}))),
            METHOD_NOT_FOUND
        );
        assert_eq!(
            code(&peer.request(13, "notifications/initialized", json!({}))),
            METHOD_NOT_FOUND
        );
    }

    #[test]
    fn notifications_and_responses_get_no_answer() {
        let (peer, _manager) = Peer::local();
        peer.initialize("2025-06-18");
        for line in [
            r#"{"jsonrpc": "2.0", "method": "notifications/initialized"}"#,
            r#"{"jsonrpc": "2.0", "method": "notifications/roots/list_changed", "params": {}}"#,
            r#"{"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 99}}"#,
            r#"{"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {}}"#,
            r#"{"jsonrpc": "2.0", "method": "no/such/notification"}"#,
            r#"{"jsonrpc": "2.0", "id": 5, "result": {}}"#,
            r#"{"jsonrpc": "2.0", "id": 6, "error": {"code": -1, "message": "x"}}"#,
            "",
            "   \r",
        ] {
            peer.server.handle_line(line.as_bytes());
        }
        peer.assert_quiet();
    }

    #[test]
    fn tools_list_gives_every_tool_with_its_schemas_and_hints() {
        let (peer, _manager) = Peer::local();
        peer.initialize("2025-06-18");
        let tools = peer.request(1, "tools/list", json!({}))["result"]["tools"].clone();
        let definitions = tools::definitions();
        let defs = definitions.as_array().expect("definitions");
        let tools = tools.as_array().expect("tools");
        assert_eq!(tools.len(), defs.len());
        for (tool, def) in tools.iter().zip(defs) {
            assert_eq!(tool["name"], def["name"]);
            assert_eq!(tool["description"], def["description"]);
            assert_eq!(tool["inputSchema"], def["parameters"]);
            assert_eq!(tool["inputSchema"]["type"], json!("object"));
            assert_eq!(tool["outputSchema"], def["outputSchema"]);
            assert_eq!(tool["outputSchema"]["type"], json!("object"));
            assert_eq!(tool["outputSchema"]["required"], json!(["success"]));
            assert_eq!(tool["annotations"], def["annotations"]);
            assert_eq!(tool["title"], def["annotations"]["title"]);
            assert!(tool["title"].is_string());
        }
        let hints = |name: &str| {
            let tool = tools.iter().find(|t| t["name"] == json!(name)).expect(name);
            (
                tool["annotations"]["readOnlyHint"].clone(),
                tool["annotations"]["destructiveHint"].clone(),
            )
        };
        assert_eq!(hints("process_output").0, json!(true));
        assert_eq!(hints("process_list").0, json!(true));
        assert_eq!(hints("process_signal"), (json!(false), json!(true)));
        assert_eq!(hints("execute"), (json!(false), json!(true)));
        let cursor = peer.request(2, "tools/list", json!({"cursor": "next"}));
        assert_eq!(code(&cursor), INVALID_PARAMS);
    }

    #[test]
    fn tool_calls_answer_with_structured_content_and_the_same_text() {
        let (peer, _manager) = Peer::local();
        peer.initialize("2025-06-18");
        let ok = peer.call(1, "execute", json!({"command": "echo hello"}));
        assert_eq!(ok["isError"], json!(false));
        assert_eq!(ok["structuredContent"]["output"], json!("hello\n"));
        assert_eq!(ok["content"].as_array().map(Vec::len), Some(1));
        assert_eq!(ok["content"][0]["type"], json!("text"));
        let text: Value =
            serde_json::from_str(ok["content"][0]["text"].as_str().expect("text")).expect("JSON");
        assert_eq!(text, ok["structuredContent"]);

        let exit = peer.call(2, "execute", json!({"command": "exit 3"}));
        assert_eq!(
            (&exit["isError"], &exit["structuredContent"]["exit_code"]),
            (&json!(true), &json!(3))
        );
        // Invalid arguments are a tool failure, not a protocol error.
        let invalid = peer.call(3, "execute", json!({"timeout": 5}));
        assert_eq!(invalid["isError"], json!(true));
        assert!(
            invalid["structuredContent"]["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("invalid arguments")),
            "{invalid}"
        );
        let missing = peer.call(4, "process_output", json!({"process_id": "nope"}));
        assert_eq!(missing["isError"], json!(true));
        let list = peer.call(5, "process_list", json!({}));
        assert_eq!(list["isError"], json!(false));
        let no_arguments = peer.request(6, "tools/call", json!({"name": "process_list"}));
        assert_eq!(no_arguments["result"]["isError"], json!(false));

        for (params, why) in [
            (
                json!({"name": "rm_rf", "arguments": {}}),
                "Unknown tool: rm_rf",
            ),
            (json!({"arguments": {}}), "string name"),
            (json!({"name": 5}), "string name"),
            (
                json!({"name": "execute", "arguments": "echo"}),
                "arguments must be an object",
            ),
            (
                json!({"name": "process_list", "_meta": {"progressToken": {"a": 1}}}),
                "progressToken",
            ),
        ] {
            let answer = peer.request(7, "tools/call", params.clone());
            assert_eq!(code(&answer), INVALID_PARAMS, "{params}");
            assert!(
                answer["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains(why)),
                "{answer}"
            );
        }
    }

    #[test]
    fn tool_results_are_errors_unless_they_succeeded() {
        for (result, is_error) in [
            (json!({"success": true}), false),
            (json!({"success": false, "error": "x"}), true),
            (json!({"error": "x"}), true),
            (json!({"success": "true"}), true),
        ] {
            let answer = tool_result(result.clone());
            assert_eq!(answer["isError"], json!(is_error), "{result}");
            assert_eq!(answer["structuredContent"], result);
            assert_eq!(answer["content"][0]["text"], json!(result.to_string()));
        }
    }

    #[test]
    fn batches_belong_to_2025_03_26_only() {
        let (peer, _manager) = Peer::local();
        let batch = json!([{"jsonrpc": "2.0", "id": 1, "method": "ping"}]);
        peer.send(&batch);
        assert_eq!(code(&peer.next()), INVALID_REQUEST, "not before initialize");
        peer.initialize("2025-06-18");
        peer.send(&batch);
        let refused = peer.next();
        assert_eq!(
            (code(&refused), &refused["id"]),
            (INVALID_REQUEST, &Value::Null)
        );

        let (peer, _manager) = Peer::local();
        peer.initialize("2025-03-26");
        peer.send(&json!([]));
        assert_eq!(code(&peer.next()), INVALID_REQUEST);
        peer.send(&json!([
            {"jsonrpc": "2.0", "id": 1, "method": "ping"},
            {"jsonrpc": "2.0", "method": "notifications/initialized"},
            {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "process_list"}},
            {"jsonrpc": "2.0", "id": 3, "method": "nope"},
            7,
        ]));
        let answers = peer.next();
        let answers = answers.as_array().expect("one array for the batch");
        let mut ids: Vec<String> = answers.iter().map(|a| a["id"].to_string()).collect();
        ids.sort();
        assert_eq!(ids, ["1", "2", "3", "null"]);
        let call = answers
            .iter()
            .find(|a| a["id"] == json!(2))
            .expect("the call");
        assert_eq!(call["result"]["isError"], json!(false));
        // Only notifications: no answer at all.
        peer.send(&json!([{"jsonrpc": "2.0", "method": "notifications/initialized"}]));
        peer.assert_quiet();
    }

    #[test]
    fn reading_lines_skips_blank_and_too_long_ones() {
        let (tx, lines) = crossbeam_channel::unbounded();
        let manager = Arc::new(Manager::new().expect("manager"));
        let limits = Limits {
            max_message_bytes: 64,
            ..Limits::default()
        };
        let server = Server::with_limits(Arc::new(LocalApi::new(manager, None)), Sink(tx), limits)
            .expect("server");
        let long = format!(
            "{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"x\":\"{}\"}}",
            "a".repeat(100)
        );
        let input = format!(
            "\n{long}\r\n{{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\"}}\r\n\n{{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"ping\"}}"
        );
        // A reader that hands out a few bytes at a time, so lines cross buffer boundaries.
        let reader = io::BufReader::with_capacity(7, input.as_bytes());
        server.read_from(reader).expect("read");
        let next = || -> Value {
            serde_json::from_slice(&lines.recv_timeout(ANSWER_WAIT).expect("answer")).expect("JSON")
        };
        let too_long = next();
        assert_eq!(
            (code(&too_long), &too_long["id"]),
            (INVALID_REQUEST, &Value::Null)
        );
        assert_eq!(next()["id"], json!(2));
        assert_eq!(
            next()["id"],
            json!(3),
            "a last line without a newline counts"
        );
        assert_eq!(
            lines.try_recv(),
            Err(crossbeam_channel::TryRecvError::Empty)
        );
    }

    /// A process API whose waits block until the test opens the gate, and cannot be
    /// interrupted (like the HTTP client's).
    #[derive(Clone)]
    struct Gate {
        waiting: Sender<()>,
        open: Receiver<()>,
    }

    impl ProcessApi for Gate {
        fn start(&self, _: &api::StartRequest) -> Result<api::StartResponse, crate::api::ApiError> {
            Ok(api::StartResponse {
                id: "p1".into(),
                started: true,
                pid: Some(1),
            })
        }
        fn output(
            &self,
            _: &str,
            _: Option<u64>,
            wait: Option<Duration>,
        ) -> Result<api::OutputResponse, crate::api::ApiError> {
            if wait.is_some() {
                let _ = self.waiting.send(());
                let _ = self.open.recv();
            }
            Ok(api::OutputResponse {
                output: "done\n".into(),
                truncated: None,
                running: false,
                exit_code: Some(0),
                signal: None,
                timed_out: None,
                next_cursor: 5,
                command: "c".into(),
                stdin_open: None,
                tty: None,
                input_dropped_bytes: None,
                ..api::OutputResponse::default()
            })
        }
        fn list(&self, _: usize) -> Result<api::ListResponse, crate::api::ApiError> {
            Ok(api::ListResponse {
                processes: vec![],
                protocol_version: None,
                agent_instance_id: None,
            })
        }
        fn signal(&self, _: &str, _: &str) -> Result<api::Message, crate::api::ApiError> {
            Ok(api::Message::new("ok"))
        }
    }

    impl Backend for Gate {
        fn api(&self, _: &Interrupt) -> Box<dyn ProcessApi + '_> {
            Box::new(self.clone())
        }
        fn interrupts_waits(&self) -> bool {
            false
        }
    }

    fn gate(limits: Limits) -> (Peer, Receiver<()>, Sender<()>) {
        let (waiting, waits) = crossbeam_channel::unbounded();
        let (opener, open) = crossbeam_channel::unbounded();
        let peer = Peer::new(Arc::new(Gate { waiting, open }), limits);
        peer.initialize("2025-06-18");
        (peer, waits, opener)
    }

    fn start_call(peer: &Peer, id: u64) {
        peer.send(&json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": "execute", "arguments": {"command": "make"}}}));
    }

    /// A backend whose every call panics (a bug in a tool).
    struct Panics;

    impl Backend for Panics {
        fn api(&self, _: &Interrupt) -> Box<dyn ProcessApi + '_> {
            panic!("a bug")
        }
        fn interrupts_waits(&self) -> bool {
            true
        }
    }

    #[test]
    fn a_panicking_tool_is_an_internal_error_and_its_worker_lives_on() {
        let limits = Limits {
            workers: 1,
            ..Limits::default()
        };
        let peer = Peer::new(Arc::new(Panics), limits);
        peer.initialize("2025-06-18");
        for id in 1..=2 {
            let answer = peer.request(id, "tools/call", json!({"name": "process_list"}));
            assert_eq!(code(&answer), INTERNAL_ERROR, "{answer}");
        }
        peer.settle();
    }

    #[test]
    fn a_long_call_does_not_hold_up_others() {
        let (peer, waits, opener) = gate(Limits::default());
        start_call(&peer, 1);
        waits.recv_timeout(ANSWER_WAIT).expect("call 1 waits");
        let list = peer.call(2, "process_list", json!({}));
        assert_eq!(list["isError"], json!(false));
        opener.send(()).expect("open");
        let done = peer.answer();
        assert_eq!(
            (&done["id"], &done["result"]["structuredContent"]["output"]),
            (&json!(1), &json!("done\n"))
        );
    }

    #[test]
    fn a_busy_server_answers_with_a_tool_failure() {
        let limits = Limits {
            workers: 1,
            max_pending_calls: 1,
            ..Limits::default()
        };
        let (peer, waits, opener) = gate(limits);
        start_call(&peer, 1);
        waits.recv_timeout(ANSWER_WAIT).expect("call 1 runs");
        start_call(&peer, 2); // waits for the worker
        let busy = peer.call(3, "process_list", json!({}));
        assert_eq!(busy["isError"], json!(true));
        assert!(
            busy["structuredContent"]["error"]
                .as_str()
                .is_some_and(|e| e.contains("busy")),
            "{busy}"
        );
        for _ in 0..2 {
            opener.send(()).expect("open");
        }
        let mut ids = [peer.answer()["id"].clone(), peer.answer()["id"].clone()];
        ids.sort_by_key(Value::to_string);
        assert_eq!(ids, [json!(1), json!(2)]);
    }

    #[test]
    fn a_cancelled_call_on_an_uninterruptible_wait_frees_its_worker() {
        let limits = Limits {
            workers: 1,
            max_abandoned_workers: 1,
            ..Limits::default()
        };
        let (peer, waits, opener) = gate(limits);
        peer.request(9, "logging/setLevel", json!({"level": "info"}));
        start_call(&peer, 1);
        waits
            .recv_timeout(ANSWER_WAIT)
            .expect("call 1 blocks its worker");
        peer.send(
            &json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
            "params": {"requestId": 1, "reason": "the user stopped it"}}),
        );
        let logged = peer.next();
        assert_eq!(logged["method"], json!("notifications/message"), "{logged}");
        assert_eq!(logged["params"]["level"], json!("info"));
        assert_eq!(peer.server.inner.calls.lock().abandoned, 1);
        // The only worker is blocked, yet calls are served: its replacement takes them.
        assert_eq!(
            peer.call(2, "process_list", json!({}))["isError"],
            json!(false)
        );
        // At the limit of replaced workers, a second blocked call is not replaced.
        start_call(&peer, 3);
        waits
            .recv_timeout(ANSWER_WAIT)
            .expect("call 3 blocks the replacement");
        peer.send(
            &json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
            "params": {"requestId": 3}}),
        );
        assert_eq!(peer.next()["method"], json!("notifications/message"));
        assert_eq!(peer.server.inner.calls.lock().abandoned, 1);
        opener.send(()).expect("open");
        opener.send(()).expect("open");
        peer.settle();
        assert_eq!(peer.server.inner.calls.lock().abandoned, 0);
        // Neither cancelled call was answered, and the pool still serves.
        assert_eq!(
            peer.call(4, "process_list", json!({}))["isError"],
            json!(false)
        );
        peer.assert_quiet();
    }

    #[test]
    fn a_cancelled_call_is_never_answered_and_its_process_runs_on() {
        let (peer, manager) = Peer::local();
        peer.initialize("2025-06-18");
        peer.send(&json!({"jsonrpc": "2.0", "id": "long", "method": "tools/call",
            "params": {"name": "execute", "arguments": {"command": "echo started; sleep 30", "timeout": "5m"},
                       "_meta": {"progressToken": "tok"}}}));
        let progress = peer.next();
        assert_eq!(
            progress["method"],
            json!("notifications/progress"),
            "{progress}"
        );
        assert_eq!(progress["params"]["progressToken"], json!("tok"));
        assert_eq!(progress["params"]["message"], json!("started"));
        let begun = Instant::now();
        peer.send(
            &json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
            "params": {"requestId": "long"}}),
        );
        peer.settle();
        assert!(
            begun.elapsed() < Duration::from_secs(5),
            "the wait ended at once"
        );
        peer.assert_quiet();
        let list = peer.call(1, "process_list", json!({}));
        let processes = list["structuredContent"]["processes"]
            .as_array()
            .expect("processes")
            .clone();
        assert_eq!(processes.len(), 1);
        assert_eq!(processes[0]["running"], json!(true));
        assert_eq!(processes[0]["command"], json!("echo started; sleep 30"));
        manager.close();
    }

    #[test]
    fn progress_reports_elapsed_time_and_the_newest_line() {
        let (peer, _manager) = Peer::local();
        peer.initialize("2025-06-18");
        peer.send(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "execute",
                       "arguments": {"command": "echo one; sleep 0.6; printf 'two\\n\\n'; sleep 0.6; echo three"},
                       "_meta": {"progressToken": 42}}}));
        let mut reports = Vec::new();
        let answer = loop {
            let message = peer.next();
            if message["method"] == json!("notifications/progress") {
                reports.push(message["params"].clone());
            } else {
                break message;
            }
        };
        assert_eq!(
            answer["result"]["structuredContent"]["output"],
            json!("one\ntwo\n\nthree\n"),
            "{answer}"
        );
        let lines: Vec<&str> = reports
            .iter()
            .filter_map(|r| r["message"].as_str())
            .collect();
        assert!(lines.starts_with(&["one", "two"]), "{reports:?}");
        let progress: Vec<f64> = reports
            .iter()
            .filter_map(|r| r["progress"].as_f64())
            .collect();
        assert_eq!(progress.len(), reports.len());
        assert!(
            progress.windows(2).all(|w| w[0] < w[1]),
            "increasing: {progress:?}"
        );
        assert!(progress[1] >= 0.5, "{progress:?}");
        assert!(reports.iter().all(|r| r["progressToken"] == json!(42)));
        // Without a token, no progress.
        peer.send(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": "execute", "arguments": {"command": "echo a; sleep 0.3; echo b"}}}));
        assert_eq!(peer.next()["id"], json!(2));
    }

    #[test]
    fn set_level_takes_the_mcp_levels_only() {
        let (peer, _manager) = Peer::local();
        peer.initialize("2025-06-18");
        for level in ["debug", "emergency", "warning"] {
            assert_eq!(
                peer.request(1, "logging/setLevel", json!({"level": level}))["result"],
                json!({})
            );
        }
        for params in [json!({"level": "verbose"}), json!({}), json!({"level": 3})] {
            assert_eq!(
                code(&peer.request(2, "logging/setLevel", params)),
                INVALID_PARAMS
            );
        }
        assert!(LogLevel::Debug < LogLevel::Emergency);
        for (level, name) in LogLevel::ALL {
            assert_eq!((LogLevel::parse(name), level.name()), (Some(level), name));
        }
    }

    #[test]
    fn shutdown_interrupts_calls_in_flight_and_joins_the_workers() {
        let (peer, manager) = Peer::local();
        peer.initialize("2025-06-18");
        peer.send(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "execute", "arguments": {"command": "echo started; sleep 30", "timeout": "5m"},
                       "_meta": {"progressToken": 1}}}));
        assert_eq!(peer.next()["method"], json!("notifications/progress"));
        let begun = Instant::now();
        peer.server.shutdown();
        assert!(begun.elapsed() < Duration::from_secs(5));
        let answer = peer.answer();
        assert_eq!(answer["id"], json!(1));
        assert!(
            answer["result"]["structuredContent"]["error"]
                .as_str()
                .is_some_and(|e| e.contains(tools::CANCELLED)),
            "{answer}"
        );
        let refused = peer.call(2, "process_list", json!({}));
        assert_eq!(refused["isError"], json!(true));
        assert!(peer.server.inner.workers.lock().is_empty());
        manager.close();
        match peer.lines.recv_timeout(Duration::from_millis(50)) {
            Err(RecvTimeoutError::Timeout) => {}
            other => panic!("nothing more is written: {other:?}"),
        }
    }
}
