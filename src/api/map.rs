//! Every mapping between the wire types and the library's types, in one place: a start request
//! to a [`Command`], library answers to wire answers, an [`Error`] to its status and message,
//! signal names, and the exit encoding.
//!
//! The wire's sentences live here, not in the library's `Display` impls: a `Display` is for a
//! person reading a log, and changing one must never change what the wire says.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use uuid::Uuid;

use super::digest::{DigestInput, GoTime, start_digest};
use super::{
    Identity, InputRequest, InputResponse, Message, OutputResponse, ProcessInfo, StartRequest,
    StartResponse, Truncation, TtySize,
};
use crate::buffer::TRUNCATION_STRATEGY;
use crate::command::{Command, Signal, Tracking};
use crate::error::Error;
use crate::info::{Exit, InputQueued, Output, ProcessInfo as Info, Started, TerminalSize};

/// The wire name of every signal the API accepts, in the order the answers list them. The one
/// table of signal names: [`Signal::name`], its `FromStr`, the handler, the tools and the CLI
/// all read it.
pub const SIGNAL_NAMES: [(Signal, &str); 5] = [
    (Signal::Terminate, "terminate"),
    (Signal::Kill, "kill"),
    (Signal::Interrupt, "interrupt"),
    (Signal::Stop, "stop"),
    (Signal::Continue, "continue"),
];

/// The wire name of a signal.
#[must_use]
pub fn signal_name(signal: Signal) -> &'static str {
    SIGNAL_NAMES
        .iter()
        .find(|(s, _)| *s == signal)
        .map_or("unknown", |(_, name)| name)
}

/// Parses a wire signal name (exact, lowercase, as the contract spells them).
///
/// # Errors
///
/// [`ParseSignalError`] for any other text.
pub fn parse_signal(name: &str) -> Result<Signal, ParseSignalError> {
    SIGNAL_NAMES
        .iter()
        .find(|(_, n)| *n == name)
        .map(|(s, _)| *s)
        .ok_or_else(|| ParseSignalError {
            name: name.to_string(),
        })
}

// The signal's names are the wire's, so they are given here, beside the one table, rather
// than in `command.rs` (which then knows nothing of the wire).
impl Signal {
    /// The wire name: `terminate`, `kill` or `interrupt` (see [`SIGNAL_NAMES`]).
    #[must_use]
    pub fn name(self) -> &'static str {
        signal_name(self)
    }
}

impl FromStr for Signal {
    type Err = ParseSignalError;

    /// Parses a wire name (`terminate`, `kill`, `interrupt`).
    fn from_str(s: &str) -> Result<Self, ParseSignalError> {
        parse_signal(s)
    }
}

/// A signal name that is not one of [`Signal`]'s wire names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseSignalError {
    name: String,
}

impl ParseSignalError {
    /// The name that was given.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for ParseSignalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&unsupported_signal_message(&self.name))
    }
}

impl std::error::Error for ParseSignalError {}

/// The contract's answer to an unsupported signal name.
#[must_use]
pub fn unsupported_signal_message(name: &str) -> String {
    format!("Unsupported signal \"{name}\". Use \"kill\", \"terminate\" or \"interrupt\".")
}

/// The contract's answer to an id that names no process this caller may see, with the id as
/// the caller spelled it.
#[must_use]
pub fn not_found_message(id: &str) -> String {
    format!("Process \"{id}\" not found.")
}

/// The wire's `exit_code`: the leader's code, or `-1` when a signal ended it or its status is
/// unknown.
#[must_use]
pub fn exit_code(exit: &Exit) -> i32 {
    exit.code.unwrap_or(-1)
}

/// The wire's `signal`: the name of the signal that ended the leader, e.g. `"SIGKILL"`.
#[must_use]
pub fn exit_signal(exit: &Exit) -> Option<String> {
    exit.signal
        .map(|sig| crate::sys::signal_name(sig).into_owned())
}

fn timed_out(exit: &Exit) -> Option<bool> {
    exit.timed_out.then_some(true)
}

/// The message of every tracked-process error answer (its `detail` says which), as coder's
/// agent writes it.
pub const TRACKED_FAILED: &str = "Tracked process request failed.";

/// Whether a start request is tracked: any of its four tracked fields is set to something
/// other than its zero (the nil UUID, an empty digest, Go's zero time). A request whose four
/// fields are all zero or absent is an ordinary start.
#[must_use]
pub fn is_tracked(request: &StartRequest) -> bool {
    request.process_id.is_some_and(|id| !id.is_nil())
        || request.agent_instance_id.is_some_and(|id| !id.is_nil())
        || request
            .input_digest
            .as_deref()
            .is_some_and(|d| !d.is_empty())
        || request.deadline.is_some_and(|d| !d.is_zero())
}

/// The `input_digest` of a start request, as coder's `StartProcessDigest` makes it (see
/// [`digest`](super::digest)): coder's fields only, ids nil, the deadline in UTC, an empty
/// `env` as none.
#[must_use]
pub fn input_digest(request: &StartRequest) -> String {
    let env = request
        .env
        .iter()
        .flatten()
        .map(|(k, v)| (k.as_bytes(), v.as_bytes()))
        .collect();
    start_digest(&DigestInput {
        command: request.command.as_deref().unwrap_or_default().as_bytes(),
        workdir: request.workdir.as_deref().unwrap_or_default().as_bytes(),
        env,
        background: request.background.unwrap_or(false),
        deadline: request.deadline.filter(|d| !d.is_zero()),
    })
}

/// `request` as a tracked start of `identity` for the agent instance `instance`: the four
/// tracked fields set, the digest computed.
#[must_use]
pub fn identified(request: &StartRequest, instance: Uuid, identity: &Identity) -> StartRequest {
    let mut tracked = StartRequest {
        process_id: Some(identity.process_id),
        agent_instance_id: Some(instance),
        deadline: Some(identity.deadline.unwrap_or(GoTime::ZERO)),
        input_digest: None,
        ..request.clone()
    };
    tracked.input_digest = Some(input_digest(&tracked));
    tracked
}

/// The wire answer of a tracked-process error: `{"message": TRACKED_FAILED, "detail": ...}`
/// with the status coder's agent gives it (400, 409, 410, 429).
#[must_use]
pub fn tracked_error(error: &Error) -> (u16, Message) {
    let status = match error {
        Error::TrackedInvalid => 400,
        Error::TrackedConflict => 409,
        Error::TrackedExpired => 410,
        Error::TrackedCapacity { .. } => 429,
        _ => 500,
    };
    (
        status,
        Message::with_detail(TRACKED_FAILED, error.to_string()),
    )
}

/// The library's tracking of a tracked start request (checked by the caller: see
/// [`LocalApi`](super::LocalApi)).
pub(crate) fn tracking_of(request: &StartRequest) -> Option<Tracking> {
    if !is_tracked(request) {
        return None;
    }
    let deadline = request
        .deadline
        .filter(|d| !d.is_zero())
        .map(|d| system_time(&d));
    Some(
        Tracking::new(request.process_id.unwrap_or_default())
            .deadline_opt(deadline)
            .input_digest(request.input_digest.clone().unwrap_or_default()),
    )
}

/// The instant of a Go time, saturating at what `SystemTime` can hold.
pub(crate) fn system_time(time: &GoTime) -> SystemTime {
    let nanos = Duration::from_nanos(u64::from(time.nanos));
    let at = match u64::try_from(time.unix_seconds) {
        Ok(secs) => UNIX_EPOCH.checked_add(Duration::from_secs(secs)),
        Err(_) => UNIX_EPOCH.checked_sub(Duration::from_secs(time.unix_seconds.unsigned_abs())),
    };
    at.and_then(|t| t.checked_add(nanos)).unwrap_or_else(|| {
        if time.unix_seconds < 0 {
            UNIX_EPOCH
        } else {
            // A deadline too far ahead to hold: never, in effect.
            UNIX_EPOCH + crate::time::NEVER + crate::time::NEVER
        }
    })
}

/// The command a start request asks for, acting for `chat`. An empty `workdir` counts as
/// absent; the request's own checks (command or argv, NUL bytes, the workdir) are the
/// manager's, so they answer the same whoever builds the command.
pub fn command_from_start(request: &StartRequest, chat: Option<Uuid>) -> Command {
    let mut cmd = Command::from_parts(request.command.clone(), request.argv.clone())
        .background(request.background.unwrap_or(false))
        .chat_opt(chat);
    if let Some(dir) = request.workdir.as_deref().filter(|d| !d.is_empty()) {
        cmd = cmd.workdir(dir);
    }
    if let Some(env) = &request.env {
        cmd = cmd.envs(env.clone());
    }
    // 0 means no timeout, as an absent field does (not "kill at once").
    if let Some(ms) = request.timeout_ms.filter(|&ms| ms > 0) {
        cmd = cmd.timeout(Duration::from_millis(ms));
    }
    if let Some(limits) = &request.limits {
        let mut set = crate::command::Limits::new();
        set.memory_bytes = limits.memory_bytes;
        set.pids = limits.pids;
        set.cpu_percent = limits.cpu_percent;
        cmd = cmd.limits(set);
    }
    if let Some(size) = request.tty {
        cmd = cmd.tty(size.rows, size.cols);
    } else if stdin_pipe_of(request) == Ok(true) {
        cmd = cmd.stdin_pipe();
    }
    cmd
}

/// The answer to a terminal size outside 1..=1000.
pub(crate) const TERMINAL_SIZE_MESSAGE: &str =
    "Terminal size must be 1 to 1000 rows and 1 to 1000 columns.";

/// Whether a start request asks for a stdin pipe: `Ok(false)` for `"null"` or no `stdin`,
/// `Ok(true)` for `"pipe"`.
///
/// # Errors
///
/// Any other value: the 400 answer's message.
pub fn stdin_pipe_of(request: &StartRequest) -> Result<bool, String> {
    match request.stdin.as_deref() {
        None | Some("null") => Ok(false),
        Some("pipe") => Ok(true),
        Some(_) => Err("Field stdin must be \"null\" or \"pipe\".".to_string()),
    }
}

/// The bytes and the close an input request asks for, checked in the contract's order: both
/// `data` and `data_base64` (400), invalid base64 (400, the decoder's message as detail),
/// neither data nor `close: true` (400 `Input is required.`).
///
/// # Errors
///
/// The 400 answer's body.
pub fn decode_input(request: &InputRequest) -> Result<(Vec<u8>, bool), Message> {
    use base64::Engine as _;
    let close = request.close == Some(true);
    let bytes = match (&request.data, &request.data_base64) {
        (Some(_), Some(_)) => {
            return Err(Message::new(
                "Give either \"data\" or \"data_base64\", not both.",
            ));
        }
        (Some(text), None) => text.as_bytes().to_vec(),
        (None, Some(encoded)) => base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|e| {
                Message::with_detail("Field data_base64 must be standard base64.", e.to_string())
            })?,
        (None, None) if close => Vec::new(),
        (None, None) => return Err(Message::new("Input is required.")),
    };
    Ok((bytes, close))
}

/// The wire status and message of a library error. `id` is the process id as the caller spelled
/// it, which the 404 and 409 answers repeat (without one, they show the parsed id). The
/// `detail` is the underlying error ([`std::error::Error::source`]), where there is one.
///
/// One exhaustive `match`: a new [`Error`] variant does not compile until it has its answer.
#[must_use]
pub fn error_answer(error: &Error, id: Option<&str>) -> (u16, Message) {
    let id = |parsed: &crate::id::ProcessId| id.map_or_else(|| parsed.to_string(), str::to_string);
    let (status, message) = match error {
        Error::CommandRequired => (400, "Command is required.".to_string()),
        Error::CommandAndArgv => (
            400,
            "Give either \"command\" or \"argv\", not both.".to_string(),
        ),
        Error::EmptyArgv => (
            400,
            "\"argv\" must be non-empty and its first word must not be empty.".to_string(),
        ),
        Error::NulByte { field } => (400, format!("Field {field} must not contain a NUL byte.")),
        Error::InvalidEnvKey { key } => (
            400,
            format!(
                "Environment variable name \"{key}\" is invalid: it must be non-empty and contain neither '=' nor NUL."
            ),
        ),
        Error::RelativeWorkdir(dir) => (
            400,
            format!(
                "Working directory \"{}\" must be an absolute path.",
                dir.display()
            ),
        ),
        Error::WorkdirNotFound(dir) => (
            400,
            format!("Working directory \"{}\" does not exist.", dir.display()),
        ),
        Error::TooManyRunning { .. } => (429, "Too many running processes.".to_string()),
        Error::ShuttingDown => (503, "Server is shutting down.".to_string()),
        Error::ProgramNotFound { program, .. } => {
            (400, format!("Program \"{program}\" not found."))
        }
        Error::ProgramNotExecutable { program, .. } => {
            (400, format!("Program \"{program}\" cannot be executed."))
        }
        Error::WorkdirNotEnterable { dir, .. } => (
            400,
            format!("Working directory \"{}\" cannot be entered.", dir.display()),
        ),
        Error::TooLarge(_) => (
            400,
            "The command, its arguments and environment are too large for the system.".to_string(),
        ),
        Error::Spawn(_) => (500, "Failed to start process.".to_string()),
        Error::NotFound(parsed) => (404, not_found_message(&id(parsed))),
        Error::NotRunning(parsed) => (409, format!("Process \"{}\" is not running.", id(parsed))),
        Error::LimitUnavailable { limit } => (
            400,
            format!("Limit \"{limit}\" is not available on this host."),
        ),
        Error::Signal(_) => (500, "Failed to signal process.".to_string()),
        Error::TrackedInvalid
        | Error::TrackedConflict
        | Error::TrackedExpired
        | Error::TrackedCapacity { .. } => return tracked_error(error),
        Error::InvalidTerminalSize { .. } => (400, TERMINAL_SIZE_MESSAGE.to_string()),
        Error::NoInput(parsed) => (
            409,
            format!("Process \"{}\" has no open input.", id(parsed)),
        ),
        Error::InputFull(parsed) => (409, format!("Input of process \"{}\" is full.", id(parsed))),
        Error::NoTerminal(parsed) => (409, format!("Process \"{}\" has no terminal.", id(parsed))),
        Error::Terminal(_) => (500, "Failed to resize terminal.".to_string()),
    };
    let detail = std::error::Error::source(error).map(ToString::to_string);
    (status, Message { message, detail })
}

fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl From<&Started> for StartResponse {
    fn from(started: &Started) -> Self {
        StartResponse {
            id: started.id.to_string(),
            started: true,
            pid: Some(started.pid),
        }
    }
}

impl From<&Info> for ProcessInfo {
    fn from(info: &Info) -> Self {
        let exit = info.exit.as_ref();
        ProcessInfo {
            id: info.id.to_string(),
            command: list_command(&info.command),
            workdir: info.workdir.to_string_lossy().into_owned(),
            background: info.background,
            running: info.running,
            exit_code: exit.map(exit_code),
            started_at_unix: unix_seconds(info.started_at),
            exited_at_unix: exit.map(|e| unix_seconds(e.exited_at)),
            pid: Some(info.pid),
            signal: exit.and_then(exit_signal),
            timed_out: exit.and_then(timed_out),
            duration_ms: exit.map(|e| duration_ms(e.duration)),
            members_alive: info.members_alive.then_some(true),
            contained: info.contained.then_some(true),
            stopped: info.stopped.then_some(true),
            cpu_ms: info.cpu_ms,
            memory_peak_bytes: info.memory_peak_bytes,
            oom_killed: info.oom_killed.then_some(true),
            stdin_open: info.stdin_open,
            tty: info.tty.map(TtySize::from),
        }
    }
}

impl From<TerminalSize> for TtySize {
    fn from(size: TerminalSize) -> Self {
        TtySize {
            rows: size.rows,
            cols: size.cols,
        }
    }
}

impl From<&InputQueued> for InputResponse {
    fn from(queued: &InputQueued) -> Self {
        InputResponse {
            queued_bytes: queued.queued_bytes,
            pending_bytes: queued.pending_bytes,
        }
    }
}

/// A command as a list shows it: at most [`MAX_LIST_COMMAND_BYTES`](super::MAX_LIST_COMMAND_BYTES) of it, cut at a character
/// boundary, followed by the truncation suffix when cut.
#[must_use]
pub fn list_command(command: &str) -> String {
    if command.len() <= super::MAX_LIST_COMMAND_BYTES {
        return command.to_string();
    }
    let mut end = super::MAX_LIST_COMMAND_BYTES;
    while !command.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{}", &command[..end], crate::buffer::TRUNCATION_SUFFIX)
}

impl From<&Output> for OutputResponse {
    fn from(out: &Output) -> Self {
        let exit = out.exit.as_ref();
        OutputResponse {
            output: out.output.clone(),
            truncated: out.truncated.map(|t| Truncation {
                original_bytes: t.original_bytes,
                retained_bytes: t.retained_bytes,
                omitted_bytes: t.omitted_bytes,
                strategy: TRUNCATION_STRATEGY.to_string(),
            }),
            running: out.running,
            exit_code: exit.map(exit_code),
            signal: exit.and_then(exit_signal),
            timed_out: exit.and_then(timed_out),
            next_cursor: out.next_cursor,
            command: out.command.clone(),
            stdin_open: out.stdin_open,
            tty: out.tty.map(TtySize::from),
            input_dropped_bytes: (out.input_dropped_bytes > 0).then_some(out.input_dropped_bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::path::PathBuf;

    use super::*;
    use crate::id::ProcessId;

    #[test]
    fn every_error_has_its_status_and_sentence() {
        let id = ProcessId::from(Uuid::from_u128(0x0b6f_4a1e_0000_4000_8000_0000_0000_0001));
        let cases: [(Error, u16, &str); 26] = [
            (
                Error::InvalidTerminalSize { rows: 0, cols: 80 },
                400,
                "Terminal size must be 1 to 1000 rows and 1 to 1000 columns.",
            ),
            (
                Error::NoInput(id),
                409,
                "Process \"0b6f4a1e-0000-4000-8000-000000000001\" has no open input.",
            ),
            (
                Error::InputFull(id),
                409,
                "Input of process \"0b6f4a1e-0000-4000-8000-000000000001\" is full.",
            ),
            (
                Error::NoTerminal(id),
                409,
                "Process \"0b6f4a1e-0000-4000-8000-000000000001\" has no terminal.",
            ),
            (
                Error::Terminal(io::Error::other("denied")),
                500,
                "Failed to resize terminal.",
            ),
            (Error::CommandRequired, 400, "Command is required."),
            (
                Error::CommandAndArgv,
                400,
                "Give either \"command\" or \"argv\", not both.",
            ),
            (
                Error::EmptyArgv,
                400,
                "\"argv\" must be non-empty and its first word must not be empty.",
            ),
            (
                Error::NulByte {
                    field: "command".into(),
                },
                400,
                "Field command must not contain a NUL byte.",
            ),
            (
                Error::InvalidEnvKey { key: "A=B".into() },
                400,
                "Environment variable name \"A=B\" is invalid: it must be non-empty and contain neither '=' nor NUL.",
            ),
            (
                Error::RelativeWorkdir(PathBuf::from("rel")),
                400,
                "Working directory \"rel\" must be an absolute path.",
            ),
            (
                Error::WorkdirNotFound(PathBuf::from("/no")),
                400,
                "Working directory \"/no\" does not exist.",
            ),
            (
                Error::TooManyRunning { limit: 1 },
                429,
                "Too many running processes.",
            ),
            (Error::ShuttingDown, 503, "Server is shutting down."),
            (
                Error::Spawn(io::Error::other("out of threads")),
                500,
                "Failed to start process.",
            ),
            (
                Error::ProgramNotFound {
                    program: "nope".into(),
                    source: io::Error::from_raw_os_error(libc::ENOENT),
                },
                400,
                "Program \"nope\" not found.",
            ),
            (
                Error::ProgramNotExecutable {
                    program: "/etc/passwd".into(),
                    source: io::Error::from_raw_os_error(libc::EACCES),
                },
                400,
                "Program \"/etc/passwd\" cannot be executed.",
            ),
            (
                Error::WorkdirNotEnterable {
                    dir: PathBuf::from("/root"),
                    source: io::Error::from_raw_os_error(libc::EACCES),
                },
                400,
                "Working directory \"/root\" cannot be entered.",
            ),
            (
                Error::TooLarge(io::Error::from_raw_os_error(libc::E2BIG)),
                400,
                "The command, its arguments and environment are too large for the system.",
            ),
            (
                Error::NotFound(id),
                404,
                "Process \"0b6f4a1e-0000-4000-8000-000000000001\" not found.",
            ),
            (
                Error::NotRunning(id),
                409,
                "Process \"0b6f4a1e-0000-4000-8000-000000000001\" is not running.",
            ),
            (
                Error::Signal(io::Error::other("denied")),
                500,
                "Failed to signal process.",
            ),
            (Error::TrackedInvalid, 400, TRACKED_FAILED),
            (Error::TrackedConflict, 409, TRACKED_FAILED),
            (Error::TrackedExpired, 410, TRACKED_FAILED),
            (Error::TrackedCapacity { limit: 1 }, 429, TRACKED_FAILED),
        ];
        for (error, status, sentence) in cases {
            let (got, message) = error_answer(&error, None);
            assert_eq!(
                (got, message.message.as_str()),
                (status, sentence),
                "{error:?}"
            );
            let has_source = matches!(
                error,
                Error::Spawn(_)
                    | Error::Signal(_)
                    | Error::TooLarge(_)
                    | Error::Terminal(_)
                    | Error::ProgramNotFound { .. }
                    | Error::ProgramNotExecutable { .. }
                    | Error::WorkdirNotEnterable { .. }
                    | Error::TrackedInvalid
                    | Error::TrackedConflict
                    | Error::TrackedExpired
                    | Error::TrackedCapacity { .. }
            );
            assert_eq!(message.detail.is_some(), has_source, "{error:?}");
        }
    }

    #[test]
    fn not_found_and_not_running_repeat_the_id_as_spelled() {
        let id: ProcessId = "0B6F4A1E-0000-4000-8000-000000000001"
            .parse()
            .expect("a uuid");
        let (_, message) = error_answer(
            &Error::NotFound(id),
            Some("0B6F4A1E-0000-4000-8000-000000000001"),
        );
        assert_eq!(
            message.message,
            "Process \"0B6F4A1E-0000-4000-8000-000000000001\" not found."
        );
        let (_, message) = error_answer(&Error::NotRunning(id), None);
        assert_eq!(message.message, format!("Process \"{id}\" is not running."));
    }

    #[test]
    fn detail_is_the_source() {
        let (_, message) = error_answer(&Error::Spawn(io::Error::other("boom")), None);
        assert_eq!(message.detail.as_deref(), Some("boom"));
    }

    #[test]
    fn the_all_zero_rule_and_an_identified_request() {
        let plain = StartRequest {
            command: Some("echo hi".into()),
            ..StartRequest::default()
        };
        let zero = StartRequest {
            process_id: Some(Uuid::nil()),
            agent_instance_id: Some(Uuid::nil()),
            input_digest: Some(String::new()),
            deadline: Some(GoTime::ZERO),
            ..plain.clone()
        };
        assert!(!is_tracked(&plain) && !is_tracked(&zero));
        assert!(tracking_of(&zero).is_none());
        // Go's vector "plain command".
        let digest = "12d549f9ef80bf4b94c5a92f1556c3e96bebc5eb250537454c33ea8cfa181408";
        assert_eq!(input_digest(&plain), digest);
        assert_eq!(input_digest(&zero), digest);
        let identity = Identity::new_random();
        let instance = Uuid::new_v4();
        let tracked = identified(&plain, instance, &identity);
        assert!(is_tracked(&tracked));
        assert_eq!(tracked.process_id, Some(identity.process_id));
        assert_eq!(tracked.agent_instance_id, Some(instance));
        assert_eq!(tracked.input_digest.as_deref(), Some(digest));
        let tracking = tracking_of(&tracked).expect("tracked");
        assert_eq!(tracking.process_id(), identity.process_id);
        assert_eq!(tracking.deadline_at(), None);
        assert_eq!(tracking.digest(), Some(digest));
    }

    #[test]
    fn go_times_become_system_times() {
        let t = GoTime::parse_rfc3339("2026-12-01T23:30:05.123456789+01:30").expect("time");
        let at = system_time(&t);
        let since = at.duration_since(UNIX_EPOCH).expect("after 1970");
        assert_eq!(since.as_secs(), 1_796_162_405);
        assert_eq!(since.subsec_nanos(), 123_456_789);
        let before = GoTime::parse_rfc3339("1969-12-31T23:59:59.5Z").expect("time");
        assert_eq!(
            UNIX_EPOCH
                .duration_since(system_time(&before))
                .expect("before"),
            Duration::from_millis(500)
        );
    }

    #[test]
    fn input_requests_are_checked_in_the_contracts_order() {
        let req = |data: Option<&str>, b64: Option<&str>, close: Option<bool>| InputRequest {
            data: data.map(str::to_string),
            data_base64: b64.map(str::to_string),
            close,
        };
        let err = |r: InputRequest| decode_input(&r).expect_err("refused").message;
        assert!(err(req(Some("a"), Some("!!"), None)).contains("not both"));
        assert_eq!(
            err(req(None, Some("!!"), Some(true))),
            "Field data_base64 must be standard base64."
        );
        assert_eq!(err(req(None, None, None)), "Input is required.");
        assert_eq!(err(req(None, None, Some(false))), "Input is required.");
        assert_eq!(
            decode_input(&req(None, None, Some(true))).ok(),
            Some((Vec::new(), true))
        );
        assert_eq!(
            decode_input(&req(None, Some("AP8K"), None)).ok(),
            Some((vec![0, 0xff, b'\n'], false))
        );
        assert_eq!(
            decode_input(&req(Some("hé"), None, None)).ok(),
            Some(("hé".as_bytes().to_vec(), false))
        );
    }

    #[test]
    fn stdin_takes_null_or_pipe() {
        let with = |stdin: Option<&str>| StartRequest {
            stdin: stdin.map(str::to_string),
            ..StartRequest::default()
        };
        assert_eq!(stdin_pipe_of(&with(None)), Ok(false));
        assert_eq!(stdin_pipe_of(&with(Some("null"))), Ok(false));
        assert_eq!(stdin_pipe_of(&with(Some("pipe"))), Ok(true));
        assert!(stdin_pipe_of(&with(Some("PIPE"))).is_err());
        assert!(stdin_pipe_of(&with(Some(""))).is_err());
    }

    #[test]
    fn signal_names_round_trip() {
        for (signal, name) in SIGNAL_NAMES {
            assert_eq!(signal_name(signal), name);
            assert_eq!(parse_signal(name).ok(), Some(signal));
        }
        assert!(parse_signal("KILL").is_err());
    }
}
