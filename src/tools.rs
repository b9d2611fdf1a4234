//! Agent tools: `execute`, `process_output`, `process_list` and `process_signal`, for an AI
//! model calling functions. They run over one trait, [`ProcessApi`], which the in-process
//! [`Manager`](crate::Manager) implements through [`LocalApi`], and the blocking HTTP client
//! implements with the `client` feature. The trait, its error and the output cap live in
//! [`crate::api`]; they are re-exported here under their old paths.
//!
//! The tool layer decides whether an agent hangs on an interactive prompt, loses a server started
//! with `&`, or floods its context, so it: gives every process an environment that disables
//! pagers, editors and prompts ([`AGENT_ENV`]); turns a trailing `&` into a background start;
//! caps what goes back to the model at [`MAX_TOOL_OUTPUT_BYTES`]; and returns every failure as
//! a structured result, never a panic.
//!
//! [`call`] runs a tool; [`call_with`] also takes a [`CallContext`]: an [`Interrupt`] that ends
//! the call early (a caller that no longer wants the answer), and a callback that hears of a
//! foreground `execute`'s new output as it arrives ([`Progress`]). The MCP server
//! (`procwarden::mcp`) uses both.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::api;
pub use crate::api::{ApiError, LocalApi, MAX_TOOL_OUTPUT_BYTES, ProcessApi, cap_output};
use crate::interrupt::Interrupt;

/// Variables every process started by a tool gets: nothing waits for a person.
pub const AGENT_ENV: [(&str, &str); 10] = [
    ("GIT_EDITOR", "true"),
    ("GIT_SEQUENCE_EDITOR", "true"),
    ("EDITOR", "true"),
    ("VISUAL", "true"),
    ("GIT_TERMINAL_PROMPT", "0"),
    ("NO_COLOR", "1"),
    ("TERM", "dumb"),
    ("PAGER", "cat"),
    ("GIT_PAGER", "cat"),
    ("PROCWARDEN_AGENT", "1"),
];

/// How long `execute` waits for a foreground command unless told otherwise.
pub const DEFAULT_EXECUTE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most tries of a start over a remote API whose answer was lost (the first included). Each
/// try carries the same tracked identity, so the command runs at most once however many
/// reach the server.
pub const START_TRIES: u32 = 3;
/// The pause before the first retry of a lost start; it doubles before each further one.
pub const START_RETRY_BACKOFF: Duration = Duration::from_millis(50);

/// How long `process_output` waits for exit unless told otherwise.
pub const DEFAULT_OUTPUT_WAIT: Duration = Duration::from_secs(10);

/// A foreground `execute` with a progress callback reports new output at most this often: it
/// wakes on new output, and after a report waits only for the exit until this much has passed.
pub const PROGRESS_INTERVAL: Duration = Duration::from_millis(250);
/// Longest line a [`Progress`] report carries (longer ones are cut at a character boundary).
pub const MAX_PROGRESS_LINE_BYTES: usize = 256;

/// The note added to foreground commands that dump files.
pub const FILE_DUMP_NOTE: &str =
    "Consider using read_file instead of dumping file contents with shell commands.";

/// Applies the trailing-`&` rule: a foreground command whose trimmed text ends with `&` (but
/// not `&&` or `|&`) runs in the background without the `&`. Returns the command to run and
/// whether it runs in the background. A command already marked background is left as it is.
#[must_use]
pub fn background_from_ampersand(command: &str, run_in_background: bool) -> (String, bool) {
    if run_in_background {
        return (command.to_string(), true);
    }
    let trimmed = command.trim();
    if let Some(rest) = trimmed.strip_suffix('&')
        && !rest.ends_with('&')
        && !rest.ends_with('|')
    {
        return (rest.trim().to_string(), true);
    }
    (command.to_string(), false)
}

/// The file-dump note for foreground commands that print whole files: `cat ...`,
/// `rg|grep ... --include-all`, and `rg|grep -l ...`.
#[must_use]
pub fn file_dump_note(command: &str) -> Option<&'static str> {
    let command = command.trim_start();
    let mut words = command.split_whitespace();
    let first = words.next()?;
    let has_more = |rest: &str| rest.starts_with(char::is_whitespace) && !rest.trim().is_empty();
    let rest = &command[first.len()..];
    let dumps = match first {
        "cat" => has_more(rest),
        "rg" | "grep" => {
            has_more(rest)
                && (rest.split_whitespace().any(|w| w.contains("--include-all"))
                    || words.next() == Some("-l") && words.next().is_some())
        }
        _ => false,
    };
    dumps.then_some(FILE_DUMP_NOTE)
}

/// Parses a duration such as `30s`, `5m`, `1h`, `250ms`, `1.5s` or `1m30s` (units `ms`, `s`,
/// `m`, `h`; a bare number is seconds).
///
/// # Errors
///
/// A sentence naming the value, for anything else (no unit it knows, a negative number, a
/// duration too long to represent).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let invalid =
        || format!("invalid duration \"{text}\": use a number with a unit, like 30s, 5m or 250ms");
    let s = text.trim();
    if s.is_empty() {
        return Err(invalid());
    }
    if let Ok(seconds) = s.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds).map_err(|_| invalid());
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        if number_len == 0 {
            return Err(invalid());
        }
        let number: f64 = rest[..number_len].parse().map_err(|_| invalid())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(invalid()),
        };
        total += number * scale;
        rest = &rest[unit_len..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| invalid())
}

/// Formats a duration in the syntax [`parse_duration`] reads, largest unit first: `10s`,
/// `1m30s`, `1h`, `1s500ms`; `0s` for anything under a millisecond (which it drops).
#[must_use]
pub fn format_duration(duration: Duration) -> String {
    const MS_PER_SECOND: u128 = 1000;
    const MS_PER_MINUTE: u128 = 60 * MS_PER_SECOND;
    const MS_PER_HOUR: u128 = 60 * MS_PER_MINUTE;
    let ms = duration.as_millis();
    if ms == 0 {
        return "0s".to_string();
    }
    let parts = [
        (ms / MS_PER_HOUR, "h"),
        (ms % MS_PER_HOUR / MS_PER_MINUTE, "m"),
        (ms % MS_PER_MINUTE / MS_PER_SECOND, "s"),
        (ms % MS_PER_SECOND, "ms"),
    ];
    parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect()
}

/// The arguments of `execute`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub struct ExecuteArgs {
    /// The shell command (run with `sh -c`).
    pub command: String,
    /// How long to wait for a foreground command, e.g. `30s` or `5m` (default
    /// [`DEFAULT_EXECUTE_TIMEOUT`]).
    #[serde(default)]
    pub timeout: Option<String>,
    /// Absolute working directory.
    #[serde(default)]
    pub workdir: Option<String>,
    /// Start it in the background and return at once.
    #[serde(default)]
    pub run_in_background: Option<bool>,
}

/// The arguments of `process_output`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub struct OutputArgs {
    /// The id `execute` returned.
    pub process_id: String,
    /// How long to wait for exit, e.g. `30s` (default [`DEFAULT_OUTPUT_WAIT`]; `0s` for a
    /// snapshot).
    #[serde(default)]
    pub wait_timeout: Option<String>,
    /// Read only output after this stream offset (a previous `next_cursor`).
    #[serde(default)]
    pub cursor: Option<u64>,
}

/// The arguments of `process_signal`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub struct SignalArgs {
    /// The id `execute` returned.
    pub process_id: String,
    /// `terminate`, `kill`, `interrupt`, `stop` or `continue` ([`api::SIGNAL_NAMES`]).
    pub signal: String,
}

fn failure(error: impl Into<String>) -> Value {
    json!({"success": false, "error": error.into()})
}

/// What a tool call may be given besides its arguments: an [`Interrupt`] that ends it early,
/// and a callback for the progress of a foreground `execute`. The default has neither.
#[derive(Clone, Copy, Default)]
pub struct CallContext<'a> {
    cancel: Option<&'a Interrupt>,
    progress: Option<&'a dyn Fn(&Progress)>,
}

impl std::fmt::Debug for CallContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallContext")
            .field("cancel", &self.cancel)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

impl<'a> CallContext<'a> {
    /// No interrupt, no progress: what [`call`] uses.
    #[must_use]
    pub fn new() -> Self {
        CallContext::default()
    }

    /// Once `interrupt` is interrupted, the call stops waiting and answers with a failure
    /// (`error` says it was cancelled; a process it started keeps running, and its id is in
    /// `background_process_id`). A call interrupted before it starts starts nothing. To end a
    /// wait that is in progress too, give the same interrupt to the API
    /// ([`LocalApi::interruptible`]); an API whose waits cannot be interrupted (the HTTP
    /// client) ends its current wait first, which is bounded by the wait it asked for.
    #[must_use]
    pub fn cancel(mut self, interrupt: &'a Interrupt) -> Self {
        self.cancel = Some(interrupt);
        self
    }

    /// A foreground `execute` calls `report` when new output arrives (at most once per
    /// [`PROGRESS_INTERVAL`]), with the time since the start and the newest line. It is called
    /// on the calling thread, between waits: keep it short.
    #[must_use]
    pub fn progress(mut self, report: &'a dyn Fn(&Progress)) -> Self {
        self.progress = Some(report);
        self
    }

    /// Whether the call has been cancelled.
    #[must_use]
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_some_and(Interrupt::is_interrupted)
    }
}

/// The progress of a foreground `execute`: how long it has run, and its newest output line.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// Time since the command was started.
    pub elapsed: Duration,
    /// The last non-blank line of the output that arrived since the previous report (at most
    /// [`MAX_PROGRESS_LINE_BYTES`], without its line end); empty when the new output was only
    /// blank lines.
    pub line: String,
}

/// The message of a call that was cancelled.
pub const CANCELLED: &str = "the call was cancelled";

/// Runs a tool by name with JSON arguments; always returns a JSON result (errors included).
pub fn call(api: &dyn ProcessApi, name: &str, arguments: &Value) -> Value {
    call_with(api, name, arguments, &CallContext::new())
}

/// [`call`] with a [`CallContext`]: cancellation and progress.
pub fn call_with(
    api: &dyn ProcessApi,
    name: &str,
    arguments: &Value,
    context: &CallContext<'_>,
) -> Value {
    fn args<T: serde::de::DeserializeOwned>(arguments: &Value) -> Result<T, Value> {
        serde_json::from_value(arguments.clone())
            .map_err(|e| failure(format!("invalid arguments: {e}")))
    }
    if context.is_cancelled() {
        return failure(CANCELLED);
    }
    let result = match name {
        "execute" => args(arguments).map(|a| execute_with(api, &a, context)),
        "process_output" => args(arguments).map(|a| process_output(api, &a)),
        "process_list" => Ok(process_list(api)),
        "process_signal" => args(arguments).map(|a| process_signal(api, &a)),
        other => Err(failure(format!("unknown tool \"{other}\""))),
    };
    result.unwrap_or_else(|e| e)
}

/// `execute`: runs a command; in the foreground, waits for it up to its timeout.
pub fn execute(api: &dyn ProcessApi, args: &ExecuteArgs) -> Value {
    execute_with(api, args, &CallContext::new())
}

/// [`execute`] with a [`CallContext`]: a foreground wait ends when the call is cancelled, and
/// reports new output to the progress callback.
pub fn execute_with(api: &dyn ProcessApi, args: &ExecuteArgs, context: &CallContext<'_>) -> Value {
    if args.command.trim().is_empty() {
        return failure("command is required");
    }
    let (timeout, timeout_shown) = match args.timeout.as_deref() {
        None | Some("") => (
            DEFAULT_EXECUTE_TIMEOUT,
            format_duration(DEFAULT_EXECUTE_TIMEOUT),
        ),
        Some(text) => match parse_duration(text) {
            Ok(t) => (t, text.to_string()),
            Err(e) => return failure(e),
        },
    };
    let (command, background) =
        background_from_ampersand(&args.command, args.run_in_background.unwrap_or(false));
    let request = api::StartRequest {
        command: Some(command.clone()),
        workdir: args.workdir.clone().filter(|w| !w.is_empty()),
        env: Some(
            AGENT_ENV
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        background: Some(background),
        ..api::StartRequest::default()
    };
    let started_at = Instant::now();
    let started = match start_once(api, &request, context) {
        Ok(started) => started,
        Err(result) => return result,
    };
    if background {
        return json!({
            "success": true,
            "exit_code": 0,
            "wall_duration_ms": 0,
            "background_process_id": started.id,
        });
    }
    let deadline = crate::time::deadline_from(started_at, timeout);
    let mut watch = context.progress.map(|report| Watch {
        report,
        started_at,
        cursor: 0,
        quiet_until: None,
    });
    let out = loop {
        let waited = match &mut watch {
            None => {
                let left = deadline.saturating_duration_since(Instant::now());
                api.output(&started.id, None, Some(left)).map(Waited::from)
            }
            Some(watch) => watch.wait(api, &started.id, deadline),
        };
        match waited {
            Ok(Waited::Exited(out)) => {
                return finished(&command, &out, started_at.elapsed());
            }
            Ok(_) if context.is_cancelled() => {
                return json!({
                    "success": false,
                    "error": format!("{CANCELLED} while waiting; the command is still running: use process_output to read it"),
                    "background_process_id": started.id,
                });
            }
            Ok(waited) if Instant::now() >= deadline => match waited {
                Waited::Running(Some(out)) => break out,
                _ => match api.output(&started.id, None, None) {
                    Ok(out) if !out.running => {
                        return finished(&command, &out, started_at.elapsed());
                    }
                    Ok(out) => break out,
                    Err(e) => return recover(api, &started.id, &command, started_at, &e),
                },
            },
            Ok(_) => {}
            Err(e) if e.is_transport() => {
                return recover(api, &started.id, &command, started_at, &e);
            }
            Err(e) => return failure(e.to_string()),
        }
    };
    let (output, _) = cap_output(&out.output, MAX_TOOL_OUTPUT_BYTES);
    json!({
        "success": false,
        "output": output,
        "exit_code": -1,
        "error": format!("command timed out after {timeout_shown}"),
        "background_process_id": started.id,
    })
}

/// Starts `request` exactly once. In process a start cannot lose its answer; over a remote
/// API that speaks coder's tracked-process protocol the start carries an identity made for
/// this call, and a start whose answer was lost (a transport error) is tried again with the
/// same identity, at most [`START_TRIES`] times with a doubling pause: the server answers a
/// repeat with the process it already started. If every answer was lost, a snapshot of the
/// process id decides: it exists (it started), or the identity is fenced so that a start
/// still on its way never runs, and the call fails saying so.
fn start_once(
    api: &dyn ProcessApi,
    request: &api::StartRequest,
    context: &CallContext<'_>,
) -> Result<api::StartResponse, Value> {
    if !api.is_remote() {
        return api.start(request).map_err(|e| failure(e.to_string()));
    }
    let identity = api::Identity::new_random();
    let mut lost: Option<ApiError> = None;
    for attempt in 0..START_TRIES {
        if attempt > 0 {
            let pause = START_RETRY_BACKOFF.saturating_mul(1 << (attempt - 1).min(16));
            // A pause, not a synchronization: the lost answer gives nothing to wait on. A
            // cancel ends it.
            let cancelled = match context.cancel {
                Some(cancel) => cancel.wait_for(pause),
                None => Interrupt::new().wait_for(pause),
            };
            if cancelled {
                break;
            }
        }
        match api.agent_instance_id() {
            // A server without tracked starts: today's start.
            Ok(None) => return api.start(request).map_err(|e| failure(e.to_string())),
            Ok(Some(_)) => {}
            Err(e) if e.is_transport() => {
                lost = Some(e);
                continue;
            }
            Err(e) => return Err(failure(e.to_string())),
        }
        match api.start_identified(request, &identity) {
            Ok(started) => return Ok(started),
            Err(e) if e.is_transport() => lost = Some(e),
            // Capacity reached: the server keeps no more identities; an ordinary start.
            Err(e) if e.status == Some(429) && e.message == api::TRACKED_FAILED => {
                return api.start(request).map_err(|e| failure(e.to_string()));
            }
            // Nothing was lost before, so the identity is new: the server restarted and has
            // another instance. Ask it again.
            Err(e) if e.status == Some(409) && lost.is_none() && attempt + 1 < START_TRIES => {
                api.forget_agent_instance();
            }
            Err(e) => return Err(failure(e.to_string())),
        }
    }
    let lost = lost.map_or_else(|| CANCELLED.to_string(), |e| e.to_string());
    let id = identity.process_id.to_string();
    match api.output(&id, None, None) {
        // It did start: go on as if the answer had arrived.
        Ok(_) => Ok(api::StartResponse {
            id,
            started: true,
            pid: None,
        }),
        Err(e) if e.status == Some(404) => Err(fence(api, request, &identity, &lost)),
        Err(e) => Err(json!({
            "success": false,
            "error": format!("starting the command got no answer ({lost}), and neither did asking whether it runs ({e}): it may be running as process {id}"),
            "background_process_id": id,
        })),
    }
}

/// A start whose every answer was lost and whose process does not exist: fence its identity,
/// so that a start still on its way never runs, and tell the model what is known.
fn fence(
    api: &dyn ProcessApi,
    request: &api::StartRequest,
    identity: &api::Identity,
    lost: &str,
) -> Value {
    let id = identity.process_id.to_string();
    let cancel = api.agent_instance_id().ok().flatten().map(|instance| {
        let tracked = api::identified(request, instance, identity);
        api::CancelRequest {
            process_id: tracked.process_id,
            agent_instance_id: tracked.agent_instance_id,
            input_digest: tracked.input_digest,
            deadline: tracked.deadline,
            wait_ms: None,
        }
    });
    match cancel.map(|c| api.cancel_tracked(&c)) {
        Some(Ok(answer)) if answer.fenced => failure(format!(
            "starting the command got no answer ({lost}); it did not run, and will not: run it again"
        )),
        Some(Ok(_)) => json!({
            "success": false,
            "error": format!("starting the command got no answer ({lost}); it started meanwhile and was killed: run it again"),
            "background_process_id": id,
        }),
        _ => json!({
            "success": false,
            "error": format!("starting the command got no answer ({lost}); it has not started, but a delayed start may still run it as process {id}"),
            "background_process_id": id,
        }),
    }
}

/// What one wait of a foreground `execute` found.
enum Waited {
    /// The process has exited: its whole, final output.
    Exited(api::OutputResponse),
    /// It still runs; the whole output when the wait read it (a cursor wait reads only what
    /// is new).
    Running(Option<api::OutputResponse>),
}

impl From<api::OutputResponse> for Waited {
    fn from(out: api::OutputResponse) -> Self {
        if out.running {
            Waited::Running(Some(out))
        } else {
            Waited::Exited(out)
        }
    }
}

/// A foreground `execute` that reports progress: it waits on a cursor, so that new output
/// wakes it, and after each report waits only for the exit until [`PROGRESS_INTERVAL`] has
/// passed (so a chatty command costs a report per interval, not one per write).
struct Watch<'a> {
    report: &'a dyn Fn(&Progress),
    started_at: Instant,
    /// Where the output not yet reported starts.
    cursor: u64,
    /// No report before this.
    quiet_until: Option<Instant>,
}

impl Watch<'_> {
    fn wait(
        &mut self,
        api: &dyn ProcessApi,
        id: &str,
        deadline: Instant,
    ) -> Result<Waited, ApiError> {
        if let Some(quiet_until) = self.quiet_until.take() {
            let now = Instant::now();
            if quiet_until > now {
                let until = quiet_until.min(deadline);
                let out = api.output(id, None, Some(until.saturating_duration_since(now)))?;
                if !out.running || until == deadline {
                    return Ok(Waited::from(out));
                }
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let new = api.output(id, Some(self.cursor), Some(left))?;
        if !new.running {
            // The cursor answer holds only the tail end: the final answer is the whole output.
            return api.output(id, None, None).map(Waited::from);
        }
        if new.next_cursor > self.cursor {
            self.cursor = new.next_cursor;
            (self.report)(&Progress {
                elapsed: self.started_at.elapsed(),
                line: newest_line(&new.output).to_string(),
            });
            self.quiet_until = Some(crate::time::deadline_in(PROGRESS_INTERVAL));
        }
        Ok(Waited::Running(None))
    }
}

/// The last non-blank line of `output`, without its line end, cut to
/// [`MAX_PROGRESS_LINE_BYTES`].
fn newest_line(output: &str) -> &str {
    let line = output
        .lines()
        .rev()
        .map(str::trim_end)
        .find(|line| !line.trim_start().is_empty())
        .unwrap_or_default();
    cap_output(line, MAX_PROGRESS_LINE_BYTES).0
}

/// After a transport error while waiting: one snapshot decides what the model is told.
fn recover(
    api: &dyn ProcessApi,
    id: &str,
    command: &str,
    started_at: Instant,
    error: &ApiError,
) -> Value {
    match api.output(id, None, None) {
        Ok(out) if !out.running => finished(command, &out, started_at.elapsed()),
        Ok(out) => {
            let (output, _) = cap_output(&out.output, MAX_TOOL_OUTPUT_BYTES);
            json!({
                "success": false,
                "output": output,
                "error": format!("waiting for the command failed ({error}); it is still running: use process_output to read it"),
                "background_process_id": id,
            })
        }
        Err(again) => json!({
            "success": false,
            "error": format!("waiting for the command failed ({error}), and so did reading its state ({again})"),
            "background_process_id": id,
        }),
    }
}

/// The result of a foreground command that has exited.
fn finished(command: &str, out: &api::OutputResponse, wall: Duration) -> Value {
    let exit_code = out.exit_code.unwrap_or(-1);
    let (output, capped) = cap_output(&out.output, MAX_TOOL_OUTPUT_BYTES);
    let mut result = json!({
        "success": exit_code == 0,
        "output": output,
        "exit_code": exit_code,
        "wall_duration_ms": u64::try_from(wall.as_millis()).unwrap_or(u64::MAX),
    });
    if let Some(t) = &out.truncated {
        result["truncated"] = json!(t);
    }
    let mut notes = Vec::new();
    if let Some(note) = file_dump_note(command) {
        notes.push(note.to_string());
    }
    if capped {
        notes.push(format!(
            "Output cut to its first {MAX_TOOL_OUTPUT_BYTES} bytes."
        ));
    }
    if !notes.is_empty() {
        result["note"] = json!(notes.join(" "));
    }
    result
}

/// `process_output`: a process's output, waiting up to `wait_timeout` for its exit.
pub fn process_output(api: &dyn ProcessApi, args: &OutputArgs) -> Value {
    let wait = match args.wait_timeout.as_deref() {
        None | Some("") => Some(DEFAULT_OUTPUT_WAIT),
        Some(text) => match parse_duration(text) {
            Ok(d) if d.is_zero() => None,
            Ok(d) => Some(d),
            Err(e) => return failure(e),
        },
    };
    match api.output(&args.process_id, args.cursor, wait) {
        Ok(out) => {
            let (output, capped) = cap_output(&out.output, MAX_TOOL_OUTPUT_BYTES);
            let mut result = json!({
                "success": out.running || out.exit_code == Some(0),
                "output": output,
                "next_cursor": out.next_cursor,
            });
            if let Some(code) = out.exit_code {
                result["exit_code"] = json!(code);
            }
            if let Some(t) = &out.truncated {
                result["truncated"] = json!(t);
            }
            if out.running {
                result["note"] = json!("process is still running");
            } else if capped {
                result["note"] = json!(format!(
                    "Output cut to its first {MAX_TOOL_OUTPUT_BYTES} bytes."
                ));
            }
            result
        }
        Err(e) => failure(e.to_string()),
    }
}

/// `process_list`: the processes, running first.
pub fn process_list(api: &dyn ProcessApi) -> Value {
    match api.list(api::MAX_LIST_LIMIT as usize) {
        Ok(list) => json!({"success": true, "processes": list.processes}),
        Err(e) => failure(e.to_string()),
    }
}

/// `process_signal`: terminate, kill, interrupt, stop or continue a process's whole group.
pub fn process_signal(api: &dyn ProcessApi, args: &SignalArgs) -> Value {
    match api.signal(&args.process_id, &args.signal) {
        Ok(message) => json!({"success": true, "message": message.message}),
        Err(e) => failure(e.to_string()),
    }
}

/// The tool definitions for a model. Each has `name`, `description` and `parameters` (a JSON
/// Schema of the arguments: with these three it is the `function` object of the common
/// function-calling APIs), and also `outputSchema` (a JSON Schema of the result object, failures
/// included) and `annotations` (`title` and the MCP behaviour hints `readOnlyHint`,
/// `destructiveHint`, `idempotentHint`, `openWorldHint`). The MCP server lists exactly these.
#[must_use]
pub fn definitions() -> Value {
    let execute_timeout = format_duration(DEFAULT_EXECUTE_TIMEOUT);
    let output_wait = format_duration(DEFAULT_OUTPUT_WAIT);
    let signal_names: Vec<&str> = api::SIGNAL_NAMES.iter().map(|(_, name)| *name).collect();
    json!([
        {
            "name": "execute",
            "description": format!("Run a shell command on the host. Commands run under `sh -c` in their own process group, with no terminal: pagers, editors and prompts are disabled. In the foreground the call waits until the command exits or its timeout passes (default {execute_timeout}); a command that times out keeps running and can be read with process_output. Use run_in_background for servers, watchers and long builds; do not end a command with shell `&` to background it."),
            "parameters": {
                "type": "object",
                "properties": {
                    "command": {"type": "string", "description": "The shell command."},
                    "timeout": {"type": "string", "description": format!("How long to wait in the foreground, e.g. \"30s\" or \"5m\". Default \"{execute_timeout}\".")},
                    "workdir": {"type": "string", "description": "Absolute working directory."},
                    "run_in_background": {"type": "boolean", "description": "Start and return at once with a background_process_id (for servers, watchers, long builds)."}
                },
                "required": ["command"]
            },
            "outputSchema": result_schema(json!({
                "output": {"type": "string", "description": format!("The combined stdout and stderr (the first and last 16 KiB when longer, with an omission marker), at most {MAX_TOOL_OUTPUT_BYTES} bytes.")},
                "exit_code": {"type": "integer", "description": "The exit code; -1 when a signal ended it, when its status is unknown, or on a timeout; 0 for a background start."},
                "wall_duration_ms": {"type": "integer", "minimum": 0, "description": "Milliseconds from the start to the exit (0 for a background start)."},
                "background_process_id": {"type": "string", "description": "The id of a process that runs on: started in the background, or still running when the call ended; or, when the start's answers were lost, the id it has or would have. Use it with process_output and process_signal."},
                "truncated": truncation_schema(),
                "note": {"type": "string", "description": "Advice about the result."}
            })),
            "annotations": {
                "title": "Run a shell command",
                "readOnlyHint": false,
                "destructiveHint": true,
                "idempotentHint": false,
                "openWorldHint": true
            }
        },
        {
            "name": "process_output",
            "description": format!("Read the output of a process started by execute. Waits up to wait_timeout (default {output_wait}, \"0s\" for an immediate snapshot) for it to exit. Output keeps the first and last 16 KiB; pass the returned next_cursor as cursor to read only what is new."),
            "parameters": {
                "type": "object",
                "properties": {
                    "process_id": {"type": "string"},
                    "wait_timeout": {"type": "string", "description": "e.g. \"30s\"; \"0s\" for no wait."},
                    "cursor": {"type": "integer", "minimum": 0, "description": "Only output after this offset (a previous next_cursor)."}
                },
                "required": ["process_id"]
            },
            "outputSchema": result_schema(json!({
                "output": {"type": "string", "description": format!("The output (from the cursor, when one was given), at most {MAX_TOOL_OUTPUT_BYTES} bytes.")},
                "next_cursor": {"type": "integer", "minimum": 0, "description": "Pass as cursor to read only what comes after this answer."},
                "exit_code": {"type": "integer", "description": "Present once the process has exited; -1 when a signal ended it or its status is unknown."},
                "truncated": truncation_schema(),
                "note": {"type": "string", "description": "Says when the process is still running, or the output was cut."}
            })),
            "annotations": {
                "title": "Read a process's output",
                "readOnlyHint": true,
                "openWorldHint": false
            }
        },
        {
            "name": "process_list",
            "description": "List processes: running ones first, then the most recently started.",
            "parameters": {"type": "object", "properties": {}},
            "outputSchema": result_schema(json!({
                "processes": {"type": "array", "items": process_info_schema()}
            })),
            "annotations": {
                "title": "List processes",
                "readOnlyHint": true,
                "openWorldHint": false
            }
        },
        {
            "name": "process_signal",
            "description": "Stop a process and everything it started (its whole process group).",
            "parameters": {
                "type": "object",
                "properties": {
                    "process_id": {"type": "string"},
                    "signal": {"type": "string", "enum": signal_names, "description": "terminate asks it to end, kill ends it now, interrupt is Ctrl-C; stop freezes it and everything it started, continue thaws it."}
                },
                "required": ["process_id", "signal"]
            },
            "outputSchema": result_schema(json!({
                "message": {"type": "string", "description": "Which signal went to which process."}
            })),
            "annotations": {
                "title": "Signal a process group",
                "readOnlyHint": false,
                "destructiveHint": true,
                "idempotentHint": false,
                "openWorldHint": false
            }
        }
    ])
}

/// The schema of a tool result: `properties` plus the two every result may have, `success`
/// (always there) and `error` (on a failure).
fn result_schema(properties: Value) -> Value {
    let mut properties = properties;
    properties["success"] = json!({"type": "boolean", "description": "Whether the call (and, for a command, its exit) succeeded."});
    properties["error"] = json!({"type": "string", "description": "Why the call failed."});
    json!({"type": "object", "properties": properties, "required": ["success"]})
}

/// The schema of `truncated`: what the head+tail rendering left out.
fn truncation_schema() -> Value {
    let count = json!({"type": "integer", "minimum": 0});
    json!({
        "type": "object",
        "description": "Present when stream bytes were left out of output.",
        "properties": {
            "original_bytes": count,
            "retained_bytes": count,
            "omitted_bytes": count,
            "strategy": {"type": "string"}
        },
        "required": ["original_bytes", "retained_bytes", "omitted_bytes", "strategy"]
    })
}

/// The schema of one process as `process_list` reports it (the wire's `ProcessInfo`).
fn process_info_schema() -> Value {
    let int = json!({"type": "integer"});
    json!({
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "command": {"type": "string"},
            "workdir": {"type": "string"},
            "background": {"type": "boolean"},
            "running": {"type": "boolean"},
            "exit_code": int,
            "started_at_unix": int,
            "exited_at_unix": int,
            "pid": {"type": "integer", "minimum": 0},
            "signal": {"type": "string"},
            "timed_out": {"type": "boolean"},
            "duration_ms": {"type": "integer", "minimum": 0},
            "members_alive": {"type": "boolean"},
            "contained": {"type": "boolean"},
            "stopped": {"type": "boolean"},
            "cpu_ms": {"type": "integer", "minimum": 0},
            "memory_peak_bytes": {"type": "integer", "minimum": 0},
            "oom_killed": {"type": "boolean"},
            "stdin_open": {"type": "boolean"},
            "tty": {
                "type": "object",
                "properties": {
                    "rows": {"type": "integer", "minimum": 1},
                    "cols": {"type": "integer", "minimum": 1}
                },
                "required": ["rows", "cols"]
            }
        },
        "required": ["id", "command", "workdir", "background", "running", "started_at_unix"]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ampersand_table() {
        let cases = [
            ("cmd &", false, "cmd", true),
            ("cmd&", false, "cmd", true),
            ("  npm run dev &  ", false, "npm run dev", true),
            ("a && b &", false, "a && b", true),
            ("cmd &&", false, "cmd &&", false),
            ("cmd |&", false, "cmd |&", false),
            ("cmd", false, "cmd", false),
            ("cmd &", true, "cmd &", true),
            ("echo '&'", false, "echo '&'", false),
        ];
        for (input, background, want, want_background) in cases {
            assert_eq!(
                background_from_ampersand(input, background),
                (want.to_string(), want_background),
                "{input:?}"
            );
        }
    }

    #[test]
    fn the_file_dump_table() {
        for dumps in [
            "cat foo.txt",
            "  cat a b",
            "cat\tx",
            "grep -r foo --include-all .",
            "rg foo --include-all",
            "grep -l pattern src",
            "rg -l pattern",
        ] {
            assert_eq!(file_dump_note(dumps), Some(FILE_DUMP_NOTE), "{dumps:?}");
        }
        for fine in [
            "concatenate foo",
            "grep -r x",
            "cat",
            "cat ",
            "rg foo",
            "grep -l",
            "echo cat foo",
            "catalog x",
        ] {
            assert_eq!(file_dump_note(fine), None, "{fine:?}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("12"), Ok(Duration::from_secs(12)));
        for bad in ["", "s", "10x", "-5s", "abc", "5 m", "1e999"] {
            let err = parse_duration(bad).expect_err(bad);
            assert!(err.contains(&format!("\"{bad}\"")), "{err}");
        }
    }

    #[test]
    fn durations_format_as_they_parse() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_micros(999), "0s"),
            (Duration::from_millis(250), "250ms"),
            (Duration::from_secs(10), "10s"),
            (Duration::from_millis(1500), "1s500ms"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(3600), "1h"),
            (Duration::from_secs(3661), "1h1m1s"),
        ];
        for (duration, text) in cases {
            assert_eq!(format_duration(duration), text);
            if duration.subsec_nanos() % 1_000_000 == 0 {
                assert_eq!(parse_duration(text), Ok(duration), "{text}");
            }
        }
        assert_eq!(format_duration(DEFAULT_EXECUTE_TIMEOUT), "10s");
    }

    #[test]
    fn definitions_read_the_defaults_and_the_signal_table() {
        let defs = definitions();
        let execute = defs[0]["description"].as_str().unwrap_or_default();
        assert!(execute.contains("(default 10s)"), "{execute}");
        let timeout = defs[0]["parameters"]["properties"]["timeout"]["description"]
            .as_str()
            .unwrap_or_default();
        assert!(timeout.ends_with("Default \"10s\"."), "{timeout}");
        let output = defs[1]["description"].as_str().unwrap_or_default();
        assert!(output.contains("(default 10s, "), "{output}");
        assert_eq!(
            defs[3]["parameters"]["properties"]["signal"]["enum"],
            json!(["terminate", "kill", "interrupt", "stop", "continue"])
        );
    }
}
