//! Agent tools: `execute`, `process_output`, `process_input`, `process_list`,
//! `process_signal`, `process_log_search`, `process_log_read` and `process_wait`, for an AI
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
//! foreground `execute`'s new output as it arrives ([`Progress`]), and the [`ReadPositions`]
//! of a session: where the caller last read each process, so that `process_input` answers with
//! only what is new. The MCP server (`procwarden::mcp`) uses all three, one `ReadPositions` per
//! session.
//!
//! Interactive programs: `execute` takes `stdin` (text written to the command's stdin, then
//! closed) and `tty: true` (the command runs under a pseudo-terminal of [`TOOL_TTY_SIZE`], its
//! output read back as a terminal shows it: escape sequences removed, `\r` redraws collapsed);
//! `process_input` types into a running process and returns what it printed in answer.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
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

/// How long `process_input` waits for output unless `yield_ms` says otherwise.
pub const DEFAULT_INPUT_YIELD: Duration = Duration::from_millis(1000);
/// Longest `yield_ms` of `process_input`; a larger one is clamped to it.
pub const MAX_INPUT_YIELD: Duration = Duration::from_millis(30_000);
/// Once new output has come, `process_input` returns when this long passes without more (or at
/// `yield_ms`, or at the exit): a program that echoes a line and then answers it is read whole,
/// and a quiet one does not cost the whole `yield_ms`.
pub const INPUT_QUIET: Duration = Duration::from_millis(250);
/// Size (`rows`, `cols`) of the terminal of `execute` with `tty: true`.
pub const TOOL_TTY_SIZE: (u16, u16) = (40, 120);
/// Longest `stdin` text of `execute`: the input a process may have pending (the server's
/// default bound, `DEFAULT_MAX_PENDING_INPUT`); a longer one is refused before anything starts.
pub const MAX_EXECUTE_STDIN_BYTES: usize = crate::DEFAULT_MAX_PENDING_INPUT;
/// Most processes a [`ReadPositions`] remembers; past it, the one read longest ago is
/// forgotten (its next `process_input` then answers from the start of its output).
pub const MAX_READ_POSITIONS: usize = 4096;

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
    /// A regular expression: run the command in the background and return once a line of its
    /// output matches (or it exits, or the timeout passes), with the output so far.
    #[serde(default)]
    pub wait_for: Option<String>,
    /// Text written to the command's stdin, which is then closed (without it, stdin is
    /// `/dev/null`, or with `tty` the terminal).
    #[serde(default)]
    pub stdin: Option<String>,
    /// Run under a pseudo-terminal of [`TOOL_TTY_SIZE`] (interactive programs, REPLs,
    /// prompts); its output is read as a terminal shows it.
    #[serde(default)]
    pub tty: Option<bool>,
}

/// The arguments of `process_input`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub struct InputArgs {
    /// The id `execute` returned.
    pub process_id: String,
    /// Text to type (a line needs its `\n`); empty to only wait for output (or only close).
    #[serde(default)]
    pub input: String,
    /// Close the process's input after the text (end of file).
    #[serde(default)]
    pub close: Option<bool>,
    /// How long to wait for output, in milliseconds (default [`DEFAULT_INPUT_YIELD`], at most
    /// [`MAX_INPUT_YIELD`]).
    #[serde(default)]
    pub yield_ms: Option<u64>,
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
    /// A regular expression: wait for a line that matches it (at or after the cursor) rather
    /// than for the exit.
    #[serde(default)]
    pub wait_for: Option<String>,
}

/// Most bytes `process_log_read` returns to the model at once.
pub const MAX_TOOL_LOG_READ_BYTES: u64 = 32 * 1024;

/// The note of a foreground `execute` whose output was cut, when its full log can be searched.
pub const LOG_SEARCH_NOTE: &str = "output truncated; search the full log with process_log_search";

/// The arguments of `process_log_search`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub struct LogSearchArgs {
    /// The process's id (from `execute`).
    pub process_id: String,
    /// A regular expression, matched against each line of the full log.
    pub pattern: String,
    /// Most matches (default [`api::DEFAULT_LOG_SEARCH_LIMIT`], at most
    /// [`api::MAX_LOG_SEARCH_LIMIT`]).
    #[serde(default)]
    pub limit: Option<u64>,
}

/// The arguments of `process_log_read`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub struct LogReadArgs {
    /// The process's id (from `execute`).
    pub process_id: String,
    /// The first stream offset to read (default 0), e.g. a search match's offset.
    #[serde(default)]
    pub offset: Option<u64>,
    /// Most bytes (default and at most [`MAX_TOOL_LOG_READ_BYTES`]).
    #[serde(default)]
    pub limit: Option<u64>,
}

/// The arguments of `process_wait`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub struct WaitArgs {
    /// The ids to wait for (1 to [`api::MAX_WAIT_IDS`]).
    pub process_ids: Vec<String>,
    /// How long to wait at most, e.g. `30s` (default [`DEFAULT_OUTPUT_WAIT`]).
    #[serde(default)]
    pub timeout: Option<String>,
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
    positions: Option<&'a ReadPositions>,
}

/// Where one caller (an agent's session) last read each process's output: the stream offset
/// its tools have shown up to, and whether the process has a terminal. `execute`,
/// `process_output` and `process_input` keep it up to date, and `process_input` answers with
/// the output past it. At most [`MAX_READ_POSITIONS`] processes are remembered.
#[derive(Debug, Default)]
pub struct ReadPositions {
    table: Mutex<PositionTable>,
}

#[derive(Debug, Default)]
struct PositionTable {
    by_id: HashMap<String, Position>,
    /// Incremented on every update: the entry with the smallest goes first when full.
    clock: u64,
}

/// One process's read position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Position {
    cursor: u64,
    tty: bool,
    updated: u64,
}

impl ReadPositions {
    /// An empty table.
    #[must_use]
    pub fn new() -> Self {
        ReadPositions::default()
    }

    /// The read position of process `id` and whether it has a terminal, if known.
    #[must_use]
    pub fn get(&self, id: &str) -> Option<(u64, bool)> {
        self.table
            .lock()
            .by_id
            .get(id)
            .map(|position| (position.cursor, position.tty))
    }

    /// Records that process `id` has been read up to `cursor` (a position never moves back).
    pub fn set(&self, id: &str, cursor: u64, tty: bool) {
        let mut table = self.table.lock();
        table.clock += 1;
        let updated = table.clock;
        if let Some(position) = table.by_id.get_mut(id) {
            *position = Position {
                cursor: position.cursor.max(cursor),
                tty,
                updated,
            };
            return;
        }
        if table.by_id.len() >= MAX_READ_POSITIONS {
            let oldest = table
                .by_id
                .iter()
                .min_by_key(|(_, position)| position.updated)
                .map(|(id, _)| id.clone());
            if let Some(oldest) = oldest {
                table.by_id.remove(&oldest);
            }
        }
        table.by_id.insert(
            id.to_string(),
            Position {
                cursor,
                tty,
                updated,
            },
        );
    }

    /// How many processes are remembered.
    #[must_use]
    pub fn len(&self) -> usize {
        self.table.lock().by_id.len()
    }

    /// Whether no process is remembered.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Debug for CallContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallContext")
            .field("cancel", &self.cancel)
            .field("progress", &self.progress.is_some())
            .field("positions", &self.positions.map(ReadPositions::len))
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

    /// The tools record in `positions` how far they have shown each process's output, and
    /// `process_input` answers with only what comes after (give every call of one agent
    /// session the same table). Without it, `process_input` answers with the output that
    /// comes after the call begins.
    #[must_use]
    pub fn positions(mut self, positions: &'a ReadPositions) -> Self {
        self.positions = Some(positions);
        self
    }

    /// Records a read of `id` up to `cursor`, when the call has a table.
    fn record(&self, id: &str, cursor: u64, tty: bool) {
        if let Some(positions) = self.positions {
            positions.set(id, cursor, tty);
        }
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
        "process_output" => args(arguments).map(|a| process_output_with(api, &a, context)),
        "process_input" => args(arguments).map(|a| process_input_with(api, &a, context)),
        "process_list" => Ok(process_list(api)),
        "process_signal" => args(arguments).map(|a| process_signal(api, &a)),
        "process_wait" => args(arguments).map(|a| process_wait(api, &a)),
        "process_log_search" => args(arguments).map(|a| process_log_search(api, &a)),
        "process_log_read" => args(arguments).map(|a| process_log_read(api, &a)),
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
    if let Some(stdin) = &args.stdin
        && stdin.len() > MAX_EXECUTE_STDIN_BYTES
    {
        return failure(format!(
            "stdin is {} bytes; at most {MAX_EXECUTE_STDIN_BYTES} can be given (write the text to a file and redirect it instead)",
            stdin.len()
        ));
    }
    let tty = args.tty.unwrap_or(false);
    let wait_for = args.wait_for.as_deref().filter(|p| !p.is_empty());
    let (command, background) = background_from_ampersand(
        &args.command,
        args.run_in_background.unwrap_or(false) || wait_for.is_some(),
    );
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
        // A foreground command's full output stays searchable when its answer is cut.
        log: (!background).then_some(true),
        // A terminal always takes input; `stdin` is for a pipe.
        stdin: (args.stdin.is_some() && !tty).then(|| "pipe".to_string()),
        tty: tty.then_some(api::TtySize {
            rows: TOOL_TTY_SIZE.0,
            cols: TOOL_TTY_SIZE.1,
        }),
        ..api::StartRequest::default()
    };
    let started_at = Instant::now();
    let started = match start_once(api, &request, context) {
        Ok(started) => started,
        Err(result) => return result,
    };
    if let Some(pattern) = wait_for {
        return ready(api, &started.id, pattern, timeout, &timeout_shown);
    }
    context.record(&started.id, 0, tty);
    let stdin_note = args.stdin.as_ref().and_then(|text| {
        let input = api::InputRequest {
            data: (!text.is_empty()).then(|| text.clone()),
            data_base64: None,
            close: Some(true),
        };
        api.input(&started.id, &input)
            .err()
            .map(|e| format!("stdin was not written: {e}"))
    });
    let mut result = execute_started(
        api,
        &started.id,
        &command,
        background,
        (timeout, &timeout_shown),
        started_at,
        tty,
        context,
    );
    if let Some(note) = stdin_note {
        add_note(&mut result, &note);
    }
    result
}

/// Appends `note` to a result's `note`.
fn add_note(result: &mut Value, note: &str) {
    let text = match result["note"].as_str() {
        Some(before) => format!("{before} {note}"),
        None => note.to_string(),
    };
    result["note"] = json!(text);
}

/// Reads output as `cursor`, `wait` and `plain` say.
fn read(
    api: &dyn ProcessApi,
    id: &str,
    cursor: Option<u64>,
    wait: Option<Duration>,
    plain: bool,
) -> Result<api::OutputResponse, ApiError> {
    api.output_with(
        id,
        &api::OutputOptions {
            cursor,
            wait,
            plain,
            ..api::OutputOptions::default()
        },
    )
}

/// The rest of [`execute_with`], once the process has started: a background answer, or the
/// foreground wait. The output of a terminal (`tty`) is read plain.
#[allow(clippy::too_many_arguments)] // one call site; each argument is a distinct fact of the call
fn execute_started(
    api: &dyn ProcessApi,
    id: &str,
    command: &str,
    background: bool,
    (timeout, timeout_shown): (Duration, &str),
    started_at: Instant,
    tty: bool,
    context: &CallContext<'_>,
) -> Value {
    if background {
        return json!({
            "success": true,
            "exit_code": 0,
            "wall_duration_ms": 0,
            "background_process_id": id,
        });
    }
    let deadline = crate::time::deadline_from(started_at, timeout);
    let mut watch = context.progress.map(|report| Watch {
        report,
        started_at,
        cursor: 0,
        quiet_until: None,
        plain: tty,
    });
    let out = loop {
        let waited = match &mut watch {
            None => {
                let left = deadline.saturating_duration_since(Instant::now());
                read(api, id, None, Some(left), tty).map(Waited::from)
            }
            Some(watch) => watch.wait(api, id, deadline),
        };
        match waited {
            Ok(Waited::Exited(out)) => {
                return finished(command, id, &out, started_at.elapsed());
            }
            Ok(_) if context.is_cancelled() => {
                return json!({
                    "success": false,
                    "error": format!("{CANCELLED} while waiting; the command is still running: use process_output to read it"),
                    "background_process_id": id,
                });
            }
            Ok(waited) if Instant::now() >= deadline => match waited {
                Waited::Running(Some(out)) => break out,
                _ => match read(api, id, None, None, tty) {
                    Ok(out) if !out.running => {
                        return finished(command, id, &out, started_at.elapsed());
                    }
                    Ok(out) => break out,
                    Err(e) => return recover(api, id, command, started_at, &e, tty),
                },
            },
            Ok(_) => {}
            Err(e) if e.is_transport() => {
                return recover(api, id, command, started_at, &e, tty);
            }
            Err(e) => return failure(e.to_string()),
        }
    };
    context.record(id, out.next_cursor, tty);
    let (output, _) = cap_output(&out.output, MAX_TOOL_OUTPUT_BYTES);
    let mut result = json!({
        "success": false,
        "output": output,
        "exit_code": -1,
        "error": format!("command timed out after {timeout_shown}"),
        "background_process_id": id,
    });
    if tty || out.stdin_open == Some(true) {
        result["note"] =
            json!("It is still running and takes input: use process_input to answer it.");
    }
    result
}

/// A background start with `wait_for`: waits up to `timeout` for a matching line.
fn ready(
    api: &dyn ProcessApi,
    id: &str,
    pattern: &str,
    timeout: Duration,
    timeout_shown: &str,
) -> Value {
    let options = api::OutputOptions {
        wait: Some(timeout),
        until: Some(pattern.to_string()),
        ..api::OutputOptions::default()
    };
    let out = match api.output_with(id, &options) {
        Ok(out) => out,
        Err(e) => {
            return json!({
                "success": false,
                "error": format!("waiting for a line matching {pattern:?} failed: {e}"),
                "background_process_id": id,
            });
        }
    };
    let (output, _) = cap_output(&out.output, MAX_TOOL_OUTPUT_BYTES);
    let mut result = json!({
        "success": out.matched == Some(true),
        "output": output,
        "matched": out.matched == Some(true),
        "background_process_id": id,
    });
    if let Some(m) = &out.line_match {
        result["match"] = json!(m);
    }
    if let Some(t) = &out.truncated {
        result["truncated"] = json!(t);
    }
    if let Some(code) = out.exit_code {
        result["exit_code"] = json!(code);
    }
    if out.matched != Some(true) {
        result["error"] = json!(match out.exit_code {
            Some(code) => format!("the command exited (code {code}) before a line matched"),
            None => format!(
                "no line matched within {timeout_shown}; the command is still running: use process_output to read it"
            ),
        });
    }
    result
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
    /// Read the output plain (a terminal's).
    plain: bool,
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
                let wait = until.saturating_duration_since(now);
                let out = read(api, id, None, Some(wait), self.plain)?;
                if !out.running || until == deadline {
                    return Ok(Waited::from(out));
                }
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let new = read(api, id, Some(self.cursor), Some(left), self.plain)?;
        if !new.running {
            // The cursor answer holds only the tail end: the final answer is the whole output.
            return read(api, id, None, None, self.plain).map(Waited::from);
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
    plain: bool,
) -> Value {
    match read(api, id, None, None, plain) {
        Ok(out) if !out.running => finished(command, id, &out, started_at.elapsed()),
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
fn finished(command: &str, id: &str, out: &api::OutputResponse, wall: Duration) -> Value {
    let exit_code = out.exit_code.unwrap_or(-1);
    let (output, capped) = cap_output(&out.output, MAX_TOOL_OUTPUT_BYTES);
    let mut result = json!({
        "success": exit_code == 0,
        "output": output,
        "exit_code": exit_code,
        "wall_duration_ms": u64::try_from(wall.as_millis()).unwrap_or(u64::MAX),
    });
    let mut notes = Vec::new();
    if let Some(t) = &out.truncated {
        result["truncated"] = json!(t);
        // The full stream is in the log (unless the log itself stopped early).
        result["process_id"] = json!(id);
        notes.push(LOG_SEARCH_NOTE.to_string());
    }
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
    process_output_with(api, args, &CallContext::new())
}

/// [`process_output`] with a [`CallContext`]: the read is recorded in its [`ReadPositions`].
/// A terminal's output is read plain.
pub fn process_output_with(
    api: &dyn ProcessApi,
    args: &OutputArgs,
    context: &CallContext<'_>,
) -> Value {
    let wait = match args.wait_timeout.as_deref() {
        None | Some("") => Some(DEFAULT_OUTPUT_WAIT),
        Some(text) => match parse_duration(text) {
            Ok(d) if d.is_zero() => None,
            Ok(d) => Some(d),
            Err(e) => return failure(e),
        },
    };
    let known_tty = context
        .positions
        .and_then(|positions| positions.get(&args.process_id))
        .is_some_and(|(_, tty)| tty);
    let read_plain = |wait| read(api, &args.process_id, args.cursor, wait, true);
    let until = args.wait_for.clone().filter(|p| !p.is_empty());
    let answer = match until {
        Some(pattern) => api.output_with(
            &args.process_id,
            &api::OutputOptions {
                cursor: args.cursor,
                wait,
                plain: known_tty,
                until: Some(pattern),
            },
        ),
        None => match read(api, &args.process_id, args.cursor, wait, known_tty) {
            // A terminal read raw: read again, plain (at once: the wait is over).
            Ok(out) if out.tty.is_some() && !known_tty => read_plain(None),
            other => other,
        },
    };
    match answer {
        Ok(out) => {
            context.record(&args.process_id, out.next_cursor, out.tty.is_some());
            let (output, capped) = cap_output(&out.output, MAX_TOOL_OUTPUT_BYTES);
            let mut result = json!({
                "success": out.running || out.exit_code == Some(0),
                "output": output,
                "next_cursor": out.next_cursor,
            });
            if let Some(matched) = out.matched {
                result["matched"] = json!(matched);
            }
            if let Some(m) = &out.line_match {
                result["match"] = json!(m);
            }
            if let Some(code) = out.exit_code {
                result["exit_code"] = json!(code);
            }
            if let Some(t) = &out.truncated {
                result["truncated"] = json!(t);
            }
            if out.running {
                result["note"] = json!(if out.stdin_open == Some(true) {
                    "process is still running and takes input (process_input)"
                } else {
                    "process is still running"
                });
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

/// `process_log_search`: the lines of a process's full log that match a pattern.
pub fn process_log_search(api: &dyn ProcessApi, args: &LogSearchArgs) -> Value {
    let limit = args.limit.unwrap_or(api::DEFAULT_LOG_SEARCH_LIMIT);
    match api.log_search(&args.process_id, &args.pattern, limit) {
        Ok(found) => {
            let mut result = json!({"success": true, "matches": found.matches, "more": found.more});
            // Many long lines could still exceed what the model should get at once.
            let size = result.to_string().len();
            if size > MAX_TOOL_OUTPUT_BYTES {
                let mut matches = found.matches;
                let mut total = 0;
                let keep = matches
                    .iter()
                    .take_while(|m| {
                        total += m.line.len() + 64;
                        total <= MAX_TOOL_OUTPUT_BYTES
                    })
                    .count();
                matches.truncate(keep);
                result = json!({
                    "success": true,
                    "matches": matches,
                    "more": true,
                    "note": format!("matches cut to {MAX_TOOL_OUTPUT_BYTES} bytes; narrow the pattern or lower limit"),
                });
            }
            result
        }
        Err(e) => failure(e.to_string()),
    }
}

/// `process_log_read`: a range of a process's full log, at most [`MAX_TOOL_LOG_READ_BYTES`].
pub fn process_log_read(api: &dyn ProcessApi, args: &LogReadArgs) -> Value {
    let limit = args
        .limit
        .unwrap_or(MAX_TOOL_LOG_READ_BYTES)
        .min(MAX_TOOL_LOG_READ_BYTES);
    match api.log_read(&args.process_id, args.offset.unwrap_or(0), limit) {
        Ok(chunk) => {
            let mut result = json!({
                "success": true,
                "output": chunk.output,
                "offset": chunk.offset,
                "next_offset": chunk.next_offset,
                "log_bytes": chunk.log_bytes,
                "complete": chunk.complete,
            });
            if chunk.log_truncated == Some(true) {
                result["log_truncated"] = json!(true);
            }
            if let Some(error) = chunk.log_error {
                result["log_error"] = json!(error);
            }
            result
        }
        Err(e) => failure(e.to_string()),
    }
}

/// `process_wait`: waits until any of the processes exits (or the timeout passes).
pub fn process_wait(api: &dyn ProcessApi, args: &WaitArgs) -> Value {
    let wait = match args.timeout.as_deref() {
        None | Some("") => DEFAULT_OUTPUT_WAIT,
        Some(text) => match parse_duration(text) {
            Ok(d) => d,
            Err(e) => return failure(e),
        },
    };
    match api.wait_any(&args.process_ids, Some(wait)) {
        Ok(answer) => json!({
            "success": true,
            "exited": answer.exited,
            "running": answer.running,
        }),
        Err(e) => failure(e.to_string()),
    }
}

/// `process_input`: types `input` into a running process (and closes its input if asked),
/// then waits up to `yield_ms` for what it prints in answer.
pub fn process_input(api: &dyn ProcessApi, args: &InputArgs) -> Value {
    process_input_with(api, args, &CallContext::new())
}

/// [`process_input`] with a [`CallContext`]. The answer is the output past the process's read
/// position in the context's [`ReadPositions`] (0 for a process it does not know); without a
/// table, the output that comes after the call begins. Once output has come, the call returns
/// when [`INPUT_QUIET`] passes without more, at `yield_ms`, at the exit, or when cancelled. A
/// terminal's output is read plain.
pub fn process_input_with(
    api: &dyn ProcessApi,
    args: &InputArgs,
    context: &CallContext<'_>,
) -> Value {
    let id = args.process_id.as_str();
    let yield_for = args
        .yield_ms
        .map_or(DEFAULT_INPUT_YIELD, Duration::from_millis)
        .min(MAX_INPUT_YIELD);
    let close = args.close.unwrap_or(false);
    let known = context.positions.and_then(|positions| positions.get(id));
    let (start, tty) = match known {
        Some(known) => known,
        None => {
            // A snapshot past the end: where the output ends now, and whether it is a
            // terminal's.
            match read(api, id, Some(u64::MAX), None, false) {
                Ok(out) => {
                    let start = if context.positions.is_some() {
                        0
                    } else {
                        out.next_cursor
                    };
                    (start, out.tty.is_some())
                }
                Err(e) => return failure(e.to_string()),
            }
        }
    };
    let mut queued = 0;
    if !args.input.is_empty() || close {
        let request = api::InputRequest {
            data: (!args.input.is_empty()).then(|| args.input.clone()),
            data_base64: None,
            close: close.then_some(true),
        };
        match api.input(id, &request) {
            Ok(answer) => queued = answer.queued_bytes,
            Err(e) => return failure(e.to_string()),
        }
    }
    let deadline = crate::time::deadline_in(yield_for);
    let mut seen = start;
    while !context.is_cancelled() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let wait = if seen > start {
            left.min(INPUT_QUIET)
        } else {
            left
        };
        match read(api, id, Some(seen), Some(wait), false) {
            Ok(out) if !out.running => break,
            Ok(out) if out.next_cursor > seen => seen = out.next_cursor,
            // Quiet for INPUT_QUIET after output, or nothing until the deadline.
            Ok(_) => break,
            Err(e) if e.is_transport() => break,
            Err(e) => return failure(e.to_string()),
        }
    }
    // One rendering of everything new, so that a line redrawn across reads shows once.
    let out = match read(api, id, Some(start), None, tty) {
        Ok(out) => out,
        Err(e) => return failure(e.to_string()),
    };
    context.record(id, out.next_cursor, tty);
    let (output, capped) = cap_output(&out.output, MAX_TOOL_OUTPUT_BYTES);
    let mut result = json!({
        "success": true,
        "output": output,
        "running": out.running,
        "queued_bytes": queued,
        "next_cursor": out.next_cursor,
    });
    if let Some(code) = out.exit_code {
        result["exit_code"] = json!(code);
    }
    if let Some(t) = &out.truncated {
        result["truncated"] = json!(t);
    }
    if let Some(dropped) = out.input_dropped_bytes {
        result["input_dropped_bytes"] = json!(dropped);
    }
    if context.is_cancelled() {
        add_note(&mut result, &format!("{CANCELLED}; the input was sent."));
    }
    if capped {
        add_note(
            &mut result,
            &format!("Output cut to its first {MAX_TOOL_OUTPUT_BYTES} bytes."),
        );
    }
    result
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
            "description": format!("Run a shell command on the host. Commands run under `sh -c` in their own process group, with no terminal unless tty is true: pagers, editors and prompts are disabled, and stdin is empty unless stdin is given. In the foreground the call waits until the command exits or its timeout passes (default {execute_timeout}); a command that times out keeps running and can be read with process_output. Use run_in_background for servers, watchers and long builds; do not end a command with shell `&` to background it. To feed a command text on stdin (what `echo text | command` would do), pass stdin. For an interactive program that needs a terminal or asks questions (a REPL such as python3 or node, a [y/N] prompt, an installer, a password prompt), set tty: true, usually with run_in_background, then answer it with process_input; its output is returned as the terminal shows it."),
            "parameters": {
                "type": "object",
                "properties": {
                    "command": {"type": "string", "description": "The shell command."},
                    "timeout": {"type": "string", "description": format!("How long to wait in the foreground, e.g. \"30s\" or \"5m\". Default \"{execute_timeout}\".")},
                    "workdir": {"type": "string", "description": "Absolute working directory."},
                    "run_in_background": {"type": "boolean", "description": "Start and return at once with a background_process_id (for servers, watchers, long builds, interactive programs)."},
                    "stdin": {"type": "string", "description": format!("Text written to the command's stdin, which is then closed (end of file). Lines need their \"\\n\". At most {MAX_EXECUTE_STDIN_BYTES} bytes.")},
                    "tty": {"type": "boolean", "description": format!("Run under a pseudo-terminal ({} rows x {} columns) that takes input through process_input: for REPLs, prompts and programs that behave differently without a terminal.", TOOL_TTY_SIZE.0, TOOL_TTY_SIZE.1)},
                    "wait_for": {"type": "string", "description": format!("A regular expression (Rust regex syntax, at most {} bytes), e.g. \"Listening on\": run the command in the background and return once a line of its output matches, with the output so far and the match (or when it exits, or at the timeout).", crate::MAX_PATTERN_BYTES)}
                },
                "required": ["command"]
            },
            "outputSchema": result_schema(json!({
                "output": {"type": "string", "description": format!("The combined stdout and stderr (the first and last 16 KiB when longer, with an omission marker), at most {MAX_TOOL_OUTPUT_BYTES} bytes.")},
                "exit_code": {"type": "integer", "description": "The exit code; -1 when a signal ended it, when its status is unknown, or on a timeout; 0 for a background start."},
                "wall_duration_ms": {"type": "integer", "minimum": 0, "description": "Milliseconds from the start to the exit (0 for a background start)."},
                "background_process_id": {"type": "string", "description": "The id of a process that runs on: started in the background, or still running when the call ended; or, when the start's answers were lost, the id it has or would have. Use it with process_output and process_signal."},
                "truncated": truncation_schema(),
                "matched": {"type": "boolean", "description": "With wait_for: whether a line matched."},
                "match": match_schema(),
                "process_id": {"type": "string", "description": "When the output was truncated: the id of the finished process, whose full log process_log_search and process_log_read read."},
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
                    "cursor": {"type": "integer", "minimum": 0, "description": "Only output after this offset (a previous next_cursor)."},
                    "wait_for": {"type": "string", "description": "A regular expression: wait (up to wait_timeout) for a line at or after the cursor that matches it, rather than for the exit. Lines in the middle of a long output that the answer leaves out are matched too."}
                },
                "required": ["process_id"]
            },
            "outputSchema": result_schema(json!({
                "output": {"type": "string", "description": format!("The output (from the cursor, when one was given), at most {MAX_TOOL_OUTPUT_BYTES} bytes.")},
                "next_cursor": {"type": "integer", "minimum": 0, "description": "Pass as cursor to read only what comes after this answer."},
                "exit_code": {"type": "integer", "description": "Present once the process has exited; -1 when a signal ended it or its status is unknown."},
                "truncated": truncation_schema(),
                "matched": {"type": "boolean", "description": "With wait_for: whether a line matched."},
                "match": match_schema(),
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
        },
        {
            "name": "process_input",
            "description": format!("Type input into a running process and read what it prints in answer. The process must take input: started by execute with tty: true (a REPL, a prompt, an interactive program), or with a stdin pipe. After queueing the input the call waits up to yield_ms (default {}, at most {}) for output. Returns only the output that is new since this session last read the process (a terminal's as it shows on screen), and whether the process still runs. A line of input needs its \"\\n\" (\"y\\n\" answers a [y/N] prompt, \"print(1+1)\\n\" a Python prompt); \"\\u0003\" is Ctrl-C and \"\\u0004\" Ctrl-D for a terminal. An empty input only waits for new output; close: true ends the input (end of file).", DEFAULT_INPUT_YIELD.as_millis(), MAX_INPUT_YIELD.as_millis()),
            "parameters": {
                "type": "object",
                "properties": {
                    "process_id": {"type": "string"},
                    "input": {"type": "string", "description": "The text to type, with \"\\n\" to end a line; empty to only wait for output."},
                    "close": {"type": "boolean", "description": "Close the process's input after the text (end of file; for a terminal, its end-of-file character at the start of a line)."},
                    "yield_ms": {"type": "integer", "minimum": 0, "description": format!("How long to wait for output, in milliseconds (default {}, at most {}). The call returns sooner when the output has gone quiet for {} ms or the process exits.", DEFAULT_INPUT_YIELD.as_millis(), MAX_INPUT_YIELD.as_millis(), INPUT_QUIET.as_millis())}
                },
                "required": ["process_id", "input"]
            },
            "outputSchema": result_schema(json!({
                "output": {"type": "string", "description": format!("The output that is new since the last read (a terminal's with escape sequences removed and redrawn lines collapsed), at most {MAX_TOOL_OUTPUT_BYTES} bytes.")},
                "running": {"type": "boolean", "description": "Whether the process still runs."},
                "exit_code": {"type": "integer", "description": "Present once the process has exited; -1 when a signal ended it or its status is unknown."},
                "queued_bytes": {"type": "integer", "minimum": 0, "description": "Bytes of input queued for the process."},
                "next_cursor": {"type": "integer", "minimum": 0, "description": "The stream offset this answer read up to (process_output's cursor)."},
                "input_dropped_bytes": {"type": "integer", "minimum": 0, "description": "Input bytes the process never read (it exited or closed its input first)."},
                "truncated": truncation_schema(),
                "note": {"type": "string", "description": "Advice about the result."}
            })),
            "annotations": {
                "title": "Type into a process",
                "readOnlyHint": false,
                "destructiveHint": true,
                "idempotentHint": false,
                "openWorldHint": false
            }
        },
        {
            "name": "process_log_search",
            "description": format!("Search the full log of a process for lines that match a regular expression (Rust regex syntax): for errors in the middle of a long output that execute and process_output leave out. Foreground execute commands keep a full log. Returns at most limit matches (default {}, at most {}) with their line numbers and offsets (use process_log_read at an offset for the context).", api::DEFAULT_LOG_SEARCH_LIMIT, api::MAX_LOG_SEARCH_LIMIT),
            "parameters": {
                "type": "object",
                "properties": {
                    "process_id": {"type": "string"},
                    "pattern": {"type": "string", "description": "e.g. \"error|warning\"."},
                    "limit": {"type": "integer", "minimum": 1, "maximum": api::MAX_LOG_SEARCH_LIMIT}
                },
                "required": ["process_id", "pattern"]
            },
            "outputSchema": result_schema(json!({
                "matches": {"type": "array", "items": {
                    "type": "object",
                    "properties": {
                        "offset": {"type": "integer", "minimum": 0},
                        "line_number": {"type": "integer", "minimum": 1},
                        "line": {"type": "string"}
                    },
                    "required": ["offset", "line_number", "line"]
                }},
                "more": {"type": "boolean", "description": "Whether more lines matched than were returned."},
                "note": {"type": "string", "description": "Says when the matches were cut to fit."}
            })),
            "annotations": {
                "title": "Search a process's full log",
                "readOnlyHint": true,
                "openWorldHint": false
            }
        },
        {
            "name": "process_log_read",
            "description": format!("Read a range of the full log of a process, from offset (default 0), at most {MAX_TOOL_LOG_READ_BYTES} bytes; pass next_offset back to read on."),
            "parameters": {
                "type": "object",
                "properties": {
                    "process_id": {"type": "string"},
                    "offset": {"type": "integer", "minimum": 0},
                    "limit": {"type": "integer", "minimum": 0, "maximum": MAX_TOOL_LOG_READ_BYTES}
                },
                "required": ["process_id"]
            },
            "outputSchema": result_schema(json!({
                "output": {"type": "string"},
                "offset": {"type": "integer", "minimum": 0, "description": "Where output starts."},
                "next_offset": {"type": "integer", "minimum": 0, "description": "Pass as offset to read on."},
                "log_bytes": {"type": "integer", "minimum": 0, "description": "The log's length."},
                "complete": {"type": "boolean", "description": "Whether the process has exited and its whole output is in the log."},
                "log_truncated": {"type": "boolean", "description": "The log stopped before the end of the output."},
                "log_error": {"type": "string", "description": "Why writing the log failed."}
            })),
            "annotations": {
                "title": "Read a process's full log",
                "readOnlyHint": true,
                "openWorldHint": false
            }
        },
        {
            "name": "process_wait",
            "description": format!("Wait until any of several processes started by execute exits, or the timeout passes (default {output_wait}). Returns the exited ones and the ids still running."),
            "parameters": {
                "type": "object",
                "properties": {
                    "process_ids": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": api::MAX_WAIT_IDS},
                    "timeout": {"type": "string", "description": "e.g. \"5m\"."}
                },
                "required": ["process_ids"]
            },
            "outputSchema": result_schema(json!({
                "exited": {"type": "array", "items": process_info_schema(), "description": "The processes that have exited."},
                "running": {"type": "array", "items": {"type": "string"}, "description": "The ids still running."}
            })),
            "annotations": {
                "title": "Wait for any of several processes",
                "readOnlyHint": true,
                "openWorldHint": false
            }
        }
    ])
}

/// The schema of `match`: the line a pattern matched.
fn match_schema() -> Value {
    json!({
        "type": "object",
        "description": "With wait_for, when a line matched: the line and the stream offset of its first byte.",
        "properties": {
            "line": {"type": "string"},
            "offset": {"type": "integer", "minimum": 0}
        },
        "required": ["line", "offset"]
    })
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
