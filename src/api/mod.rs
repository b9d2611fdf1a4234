//! The wire types of the HTTP API (v0), shared by the server, the client and the agent tools.
//!
//! Field names are those of coder's workspace agent process API, so its clients work unchanged;
//! fields marked *extension* are additive. Optional fields that are absent are left out of the
//! JSON, never sent as `null`.
//!
//! This module is also the one place where the wire meets the library:
//!
//! - the wire types, here;
//! - every mapping between them and the library's types: a start request to a
//!   [`Command`](crate::Command) ([`command_from_start`]), library answers to wire answers
//!   (`From` impls), an [`Error`](crate::Error) to its status and message ([`error_answer`]),
//!   signal names ([`SIGNAL_NAMES`]) and the exit encoding ([`exit_code`], [`exit_signal`]);
//! - the process API as a trait in wire types, [`ProcessApi`], with its error [`ApiError`], and
//!   its in-process implementation [`LocalApi`]. The HTTP handler, the agent tools and the
//!   client all go through it, so they answer alike.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use digest::GoTime;

pub mod digest;
mod local;
mod map;
mod process_api;

pub use local::LocalApi;
pub use map::{
    ParseSignalError, SIGNAL_NAMES, TRACKED_FAILED, command_from_start, decode_input, error_answer,
    exit_code, exit_signal, identified, input_digest, is_tracked, list_command, not_found_message,
    parse_signal, signal_name, stdin_pipe_of, tracked_error, unsupported_signal_message,
};
pub use process_api::{ApiError, ListEntries, MAX_TOOL_OUTPUT_BYTES, ProcessApi, cap_output};

/// Longest `command` in a list entry, in bytes; a longer one is cut at a character boundary and
/// the truncation suffix appended (the output answer keeps the whole command).
pub const MAX_LIST_COMMAND_BYTES: usize = 4096;

/// Path prefix of every process route.
pub const PREFIX: &str = "/api/v0/processes";

/// Most entries a `list` answers unless `limit` says otherwise.
pub const DEFAULT_LIST_LIMIT: usize = crate::manager::DEFAULT_LIST_LIMIT;
/// Largest `limit` a `list` accepts.
pub const MAX_LIST_LIMIT: u64 = 1000;
/// Longest `wait=true` in milliseconds; a larger `timeout_ms` is clamped to it.
pub const MAX_WAIT_MS: u64 = 300_000;
/// Request header that scopes a request to a chat.
pub const CHAT_HEADER: &str = "Coder-Chat-Id";
/// The version of coder's tracked-process protocol this server speaks
/// (`TrackedProcessProtocolVersion`), reported in list answers.
pub const TRACKED_PROTOCOL_VERSION: u32 = 1;

/// `POST /api/v0/processes/start`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartRequest {
    /// Run as `sh -c <command>`; absent or `""` means not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// *Extension*: run this program directly, no shell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argv: Option<Vec<String>>,
    /// Working directory, absolute; `""` counts as absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    /// Extra environment variables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<BTreeMap<String, String>>,
    /// Recorded and reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub background: Option<bool>,
    /// *Extension*: after this long the group gets SIGTERM, then SIGKILL after the kill grace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// *Extension*: also write the whole output stream to a log file on the server (read it
    /// back with the log routes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<bool>,
    /// *Extension*: resource limits for the process's cgroup (`serve --cgroup`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<StartLimits>,
    /// Tracked start: the id the process gets, chosen by the client (nil or absent: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_id: Option<Uuid>,
    /// Tracked start: the agent instance it is meant for (see [`ListResponse`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_instance_id: Option<Uuid>,
    /// Tracked start: the lowercase hex SHA-256 of the request as Go writes it
    /// ([`input_digest`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_digest: Option<String>,
    /// Tracked start: at this time the whole group gets SIGKILL (Go's zero time: none).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "go_time_serde"
    )]
    pub deadline: Option<GoTime>,
    /// *Extension*: `"null"` (the default: stdin is `/dev/null`) or `"pipe"` (stdin is a pipe
    /// written through the input route). Any other value is a 400. Ignored with `tty`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<String>,
    /// *Extension*: run under a new pseudo-terminal of this size (each 1..=1000, else 400; a
    /// value that is not an integer from 0 to 65535 makes the body invalid JSON for this
    /// request, also a 400).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tty: Option<TtySize>,
}

/// A tracked start's identity, as a client chooses it before the start (see
/// [`identified`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    /// The id the process will have.
    pub process_id: Uuid,
    /// When the agent kills the process's group, if ever.
    pub deadline: Option<GoTime>,
}

impl Identity {
    /// A fresh identity: a random process id, no deadline.
    #[must_use]
    pub fn new_random() -> Identity {
        Identity {
            process_id: Uuid::new_v4(),
            deadline: None,
        }
    }
}

/// `POST /api/v0/processes/cancel-tracked`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelRequest {
    /// The tracked start's process id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_id: Option<Uuid>,
    /// The agent instance it was meant for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_instance_id: Option<Uuid>,
    /// The start's `input_digest` (64 hex digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_digest: Option<String>,
    /// The start's deadline.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "go_time_serde"
    )]
    pub deadline: Option<GoTime>,
    /// How long to wait for the killed process to exit, in ms (absent or 0: no wait; at most
    /// five minutes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<i64>,
}

/// Answer to a cancel-tracked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelResponse {
    /// This server's agent instance.
    pub agent_instance_id: Uuid,
    /// The identity never started (fenced now or before, or its start failed): nothing with
    /// it will run.
    pub fenced: bool,
    /// The process as observed after the kill and the wait, or its kept final state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<ProcessInfo>,
}

/// The `410` answer of an output-tracked whose output is gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputUnavailable {
    /// This server's agent instance.
    pub agent_instance_id: Uuid,
    /// The start's digest.
    pub input_digest: String,
    /// Always true.
    pub output_unavailable: bool,
    /// The final state (command and workdir blanked).
    pub process: ProcessInfo,
}

/// Answer to an output-tracked: the output (`200`) or, once it is gone, the final state
/// (`410`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackedOutputResponse {
    /// `200`: the record exists.
    Output(OutputResponse),
    /// `410`: the output is gone; the final state is known.
    Unavailable(OutputUnavailable),
}

/// (De)serializes a [`GoTime`] as RFC 3339 (in UTC, as Go writes a `time.Time` there, unless
/// the year is out of RFC 3339's range in UTC: see [`GoTime::to_rfc3339`]); `null` or absent:
/// none.
mod go_time_serde {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::GoTime;

    #[allow(clippy::ref_option)] // serde's `with` hands over `&Option<T>`.
    pub(super) fn serialize<S: Serializer>(
        time: &Option<GoTime>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let time = time.unwrap_or(GoTime::ZERO);
        match time.to_rfc3339() {
            Some(text) => serializer.serialize_str(&text),
            None => Err(serde::ser::Error::custom("a time RFC 3339 cannot write")),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<GoTime>, D::Error> {
        let Some(text) = Option::<String>::deserialize(deserializer)? else {
            return Ok(None);
        };
        GoTime::parse_rfc3339(&text)
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("parsing time {text:?} as RFC 3339")))
    }
}

/// The size of a terminal on the wire: `{"rows": int, "cols": int}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TtySize {
    /// Rows (lines), 1..=1000.
    pub rows: u16,
    /// Columns, 1..=1000.
    pub cols: u16,
}

/// The `stdin` values a start accepts.
pub const STDIN_VALUES: [&str; 2] = ["null", "pipe"];

/// `POST /api/v0/processes/{id}/input`: text or raw bytes (at most one of the two), and
/// optionally the close.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputRequest {
    /// UTF-8 text to queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// Raw bytes to queue, standard base64 (with padding).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_base64: Option<String>,
    /// Close the input once everything queued before (this request's bytes included) has been
    /// written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub close: Option<bool>,
}

/// Answer to an input request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputResponse {
    /// Bytes this request queued.
    pub queued_bytes: u64,
    /// Bytes queued and not yet read by the process, this request's included (for a pipe also
    /// what is unread in its kernel buffer; for a terminal only the server's own queue).
    pub pending_bytes: u64,
}

/// `POST /api/v0/processes/{id}/resize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResizeRequest {
    /// Rows, 1..=1000.
    pub rows: u16,
    /// Columns, 1..=1000.
    pub cols: u16,
}

/// The `limits` of a start: each optional, each applied where its cgroup controller is
/// enabled (400 `Limit "<name>" is not available on this host.` otherwise).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartLimits {
    /// `memory.max`, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// `pids.max`: most processes and threads at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<u64>,
    /// `cpu.max`, percent of one CPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_percent: Option<u64>,
}

/// Answer to a start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartResponse {
    /// The new process's id (a v4 UUID).
    pub id: String,
    /// Always true.
    pub started: bool,
    /// *Extension*: the leader's pid (also its process group id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
}

/// One process, as `list` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessInfo {
    /// The process's id.
    pub id: String,
    /// The shell command, or the argv joined with POSIX shell quoting.
    pub command: String,
    /// The working directory used.
    pub workdir: String,
    /// Whether it was started as a background process.
    pub background: bool,
    /// Whether it is still running.
    pub running: bool,
    /// Present once exited: the leader's exit code, -1 for a signal or an unknown status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Start time, unix seconds.
    pub started_at_unix: i64,
    /// Present once exited: exit time, unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exited_at_unix: Option<i64>,
    /// *Extension*: the leader's pid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// *Extension*: the signal that ended the leader, e.g. `"SIGKILL"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// *Extension*: present and true when the timeout ended it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timed_out: Option<bool>,
    /// *Extension*: present once exited: milliseconds from start to exit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// *Extension*: present and true while the process has exited but its group still has
    /// live members (a signal still reaches them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members_alive: Option<bool>,
    /// *Extension*: present and true when the process runs in a cgroup of its own (`serve
    /// --cgroup`): kills, timeouts and close reach everything it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contained: Option<bool>,
    /// *Extension*: present and true while a `stop` signal has it frozen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<bool>,
    /// *Extension* (contained processes): user plus system CPU time of the whole tree, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_ms: Option<u64>,
    /// *Extension* (where the memory controller is enabled): the tree's peak memory, bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_peak_bytes: Option<u64>,
    /// *Extension*: present and true when the memory limit's OOM kill ended part of the tree.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom_killed: Option<bool>,
    /// *Extension*: present for a process started with `stdin: "pipe"` or `tty`: true until
    /// its input is closed or it exits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin_open: Option<bool>,
    /// *Extension*: present for a terminal process: the terminal's current size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tty: Option<TtySize>,
}

/// Answer to a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListResponse {
    /// Running first, then newest start first.
    pub processes: Vec<ProcessInfo>,
    /// The tracked-process protocol the server speaks ([`TRACKED_PROTOCOL_VERSION`]); absent
    /// from servers that do not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<u32>,
    /// The server's agent instance: random, chosen when it started. Tracked starts name it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_instance_id: Option<Uuid>,
}

/// What was left out of an output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Truncation {
    /// Stream bytes the answer covers.
    pub original_bytes: u64,
    /// Byte length of the returned `output`.
    pub retained_bytes: u64,
    /// Stream bytes not kept, shown by the omission marker.
    pub omitted_bytes: u64,
    /// Always `"head_tail"`.
    pub strategy: String,
}

/// Answer to an output request. (`Default`: every field empty, zero or false, for building
/// one field by field.)
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputResponse {
    /// The rendered output, valid UTF-8.
    pub output: String,
    /// Present exactly when stream bytes were not kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated: Option<Truncation>,
    /// Whether the process is still running; when false, `output` is final.
    pub running: bool,
    /// Present once exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// *Extension*: the signal that ended the leader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// *Extension*: present and true when the timeout ended it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timed_out: Option<bool>,
    /// *Extension*: stream offset just past the bytes this answer covers.
    #[serde(default)]
    pub next_cursor: u64,
    /// *Extension*, present when the request had `until`: whether a line matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matched: Option<bool>,
    /// *Extension*, present when `until` matched: the first matching line at or after the
    /// cursor.
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub line_match: Option<LineMatch>,
    /// *Extension*, present and true when the process's full log stopped growing before the
    /// stream's end (its size bound, or a failed write).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_truncated: Option<bool>,
    /// *Extension*, present when writing the full log failed (a full disk): why. The process
    /// and its head and tail are not affected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_error: Option<String>,
    /// The process's command, whole (as coder's agent reports it).
    #[serde(default)]
    pub command: String,
    /// *Extension*: as in [`ProcessInfo::stdin_open`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin_open: Option<bool>,
    /// *Extension*: as in [`ProcessInfo::tty`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tty: Option<TtySize>,
    /// *Extension*: present when > 0: input bytes the process never read (queued or unread in
    /// its pipe when it exited or closed its end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_dropped_bytes: Option<u64>,
}

/// Answer to `GET /api/v0/processes/{id}/log`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogResponse {
    /// The bytes read, as lossy UTF-8 (a character cut by either end left out).
    pub output: String,
    /// Where `output` starts (the offset asked for, moved to a character boundary).
    pub offset: u64,
    /// Just past the returned bytes.
    pub next_offset: u64,
    /// The log file's length.
    pub log_bytes: u64,
    /// Whether the process has exited and its whole stream is in the file.
    pub complete: bool,
    /// *Extension*, present and true when the file stopped growing before the stream's end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_truncated: Option<bool>,
    /// *Extension*, present when writing the file failed: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_error: Option<String>,
}

/// Answer to `GET /api/v0/processes/{id}/log/search`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogSearchResponse {
    /// The first matching lines, in stream order.
    pub matches: Vec<LogMatch>,
    /// Whether more lines matched than were returned.
    pub more: bool,
}

/// One line a log search found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogMatch {
    /// Stream offset of the line's first byte.
    pub offset: u64,
    /// Its number, from 1.
    pub line_number: u64,
    /// The line without its `\n` (over 2048 bytes: cut to 2032 and the truncation suffix).
    pub line: String,
}

/// Most bytes a `/log` read returns, and its default `limit`.
pub const MAX_LOG_LIMIT: u64 = crate::log::MAX_LOG_READ_BYTES;
/// Most matches a `/log/search` returns (its `limit` is 1 to this).
pub const MAX_LOG_SEARCH_LIMIT: u64 = crate::log::MAX_LOG_SEARCH_MATCHES as u64;
/// Matches a `/log/search` returns without a `limit`.
pub const DEFAULT_LOG_SEARCH_LIMIT: u64 = crate::log::DEFAULT_LOG_SEARCH_MATCHES as u64;

/// A line that matched a pattern.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineMatch {
    /// The line without its `\n` (lossy UTF-8; a line over 2048 bytes cut as in the output
    /// rules).
    pub line: String,
    /// Stream offset of the line's first byte.
    pub offset: u64,
}

/// Most ids one `GET /api/v0/processes/wait` may name.
pub const MAX_WAIT_IDS: usize = 64;

/// Answer to `GET /api/v0/processes/wait`: every id asked about in exactly one list, in the
/// order given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitResponse {
    /// The processes that are no longer running.
    pub exited: Vec<ProcessInfo>,
    /// The ids of those still running.
    pub running: Vec<String>,
}

/// How to read output through [`ProcessApi::output_with`]: the query parameters of
/// `GET /api/v0/processes/{id}/output`. `Default` is a snapshot of the whole kept output.
///
/// A plain struct of named fields (build it with `..Default::default()`): each field is one
/// query parameter, and a new parameter is a new field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutputOptions {
    /// `cursor=N`: only stream bytes at offsets `>= N`.
    pub cursor: Option<u64>,
    /// `wait=true&timeout_ms=N`: wait up to this long (for exit, or with a cursor for output
    /// past it); `None` is a snapshot.
    pub wait: Option<Duration>,
    /// `plain=true`: render as a terminal shows the text (escape sequences removed, `\r\n` as
    /// `\n`, a lone `\r` overwriting its line); cursors stay raw stream offsets.
    pub plain: bool,
    /// `until=<regex>` (the `regex` crate's syntax, at most
    /// [`MAX_PATTERN_BYTES`](crate::MAX_PATTERN_BYTES) bytes): with a wait, wait for a line at
    /// or after the cursor that matches it rather than for the exit or any output.
    pub until: Option<String>,
}

/// `POST /api/v0/processes/{id}/signal`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignalRequest {
    /// `"terminate"`, `"kill"` or (*extension*) `"interrupt"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// *Extension*: with terminate or interrupt, SIGKILL the group this many ms later if it
    /// still runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_ms: Option<u64>,
}

/// Every other answer, errors included: `{"message": ..., "detail"?: ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// A sentence for a person.
    pub message: String,
    /// The underlying error, where there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Message {
    /// A message without detail.
    pub fn new(message: impl Into<String>) -> Self {
        Message {
            message: message.into(),
            detail: None,
        }
    }

    /// A message with detail.
    pub fn with_detail(message: impl Into<String>, detail: impl Into<String>) -> Self {
        Message {
            message: message.into(),
            detail: Some(detail.into()),
        }
    }
}
