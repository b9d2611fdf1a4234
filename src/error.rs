//! The one error type of the manager's API.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::id::ProcessId;

/// Why a [`Manager`](crate::Manager) operation failed.
///
/// Each variant corresponds to one answer of the wire contract (noted per variant), so a front
/// end maps it to a status code without inspecting messages: the mapping, and the wire's own
/// sentences, are [`api::error_answer`](crate::api::error_answer)'s. `Display` gives a sentence
/// for a person; [`source`](std::error::Error::source) the underlying system error where there
/// is one.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Neither a shell command nor an argv was given (400).
    CommandRequired,
    /// Both a shell command and an argv were given (400).
    CommandAndArgv,
    /// The argv is empty, or its first word is empty (400).
    EmptyArgv,
    /// A text field contains a NUL byte, which no program can receive (400). `field` names it:
    /// `command`, `argv`, `workdir`, or `env` with the variable's key.
    NulByte {
        /// Which field: `command`, `argv[N]`, `workdir`, `env["KEY"]`.
        field: String,
    },
    /// An environment variable name is empty or contains `=` or NUL (400).
    InvalidEnvKey {
        /// The offending name, with any NUL shown as `\0`.
        key: String,
    },
    /// The working directory is not an absolute path (400).
    RelativeWorkdir(PathBuf),
    /// The working directory does not exist or is not a directory (400).
    WorkdirNotFound(PathBuf),
    /// As many processes as the limit allows are running (429).
    TooManyRunning {
        /// The limit in force.
        limit: usize,
    },
    /// The manager is closing or closed (503).
    ShuttingDown,
    /// The argv program was not found in the child's `PATH` (or at the path given) (400).
    ProgramNotFound {
        /// The program as given.
        program: String,
        /// The system's error.
        source: io::Error,
    },
    /// The argv program exists but cannot be executed: no permission, not an executable
    /// format (400).
    ProgramNotExecutable {
        /// The program as given.
        program: String,
        /// The system's error.
        source: io::Error,
    },
    /// The working directory exists but the process may not enter it (400).
    WorkdirNotEnterable {
        /// The directory.
        dir: PathBuf,
        /// The system's error.
        source: io::Error,
    },
    /// The command, its arguments and its environment are too large for the system (`E2BIG`)
    /// (400).
    TooLarge(io::Error),
    /// Creating the process failed for a reason that is not the caller's (500): out of file
    /// descriptors, memory or threads, a shell that cannot run.
    Spawn(io::Error),
    /// No such process for this caller: unknown, forgotten, or another chat's (404).
    NotFound(ProcessId),
    /// The process has exited (409).
    NotRunning(ProcessId),
    /// A start asked for a limit whose cgroup controller is not enabled here, or the manager
    /// runs without cgroups (400). `limit` is its wire name: `memory_bytes`, `pids` or
    /// `cpu_percent`.
    LimitUnavailable {
        /// The limit's name.
        limit: &'static str,
    },
    /// Sending a signal failed for a reason other than the group being gone (500).
    Signal(io::Error),
    /// A tracked start or cancel whose identity is malformed: a nil process id (on the wire
    /// also a nil agent instance, or an `input_digest` that does not match the request) (400).
    TrackedInvalid,
    /// A tracked identity that conflicts: another agent instance's, one already used with a
    /// different command, chat or deadline, one fenced by a cancel, or the id of an untracked
    /// process (409).
    TrackedConflict,
    /// A tracked start whose deadline has passed, or whose process record is gone although its
    /// receipt says it started (410).
    TrackedExpired,
    /// As many tracked identities as the manager keeps receipts for are known (429).
    TrackedCapacity {
        /// The limit in force.
        limit: usize,
    },
    /// A terminal size outside 1 to [`MAX_TERMINAL_DIMENSION`](crate::MAX_TERMINAL_DIMENSION)
    /// rows or columns (400).
    InvalidTerminalSize {
        /// The rows asked for.
        rows: u64,
        /// The columns asked for.
        cols: u64,
    },
    /// The process was started without input, its input is closed, or it is no longer
    /// running (409).
    NoInput(ProcessId),
    /// The bytes would take the process's pending input past its bound; nothing was queued
    /// (409).
    InputFull(ProcessId),
    /// The process has no terminal, or has exited (409).
    NoTerminal(ProcessId),
    /// Setting the terminal's size failed (500).
    Terminal(io::Error),
}

impl Error {
    /// The same error again, for a tracked start's receipt to answer a replay exactly as the
    /// first start was answered (`io::Error` is not `Clone`: its kind, OS code and message are
    /// kept).
    pub(crate) fn replica(&self) -> Error {
        fn io(e: &io::Error) -> io::Error {
            e.raw_os_error().map_or_else(
                || io::Error::new(e.kind(), e.to_string()),
                io::Error::from_raw_os_error,
            )
        }
        match self {
            Error::CommandRequired => Error::CommandRequired,
            Error::CommandAndArgv => Error::CommandAndArgv,
            Error::EmptyArgv => Error::EmptyArgv,
            Error::NulByte { field } => Error::NulByte {
                field: field.clone(),
            },
            Error::InvalidEnvKey { key } => Error::InvalidEnvKey { key: key.clone() },
            Error::RelativeWorkdir(dir) => Error::RelativeWorkdir(dir.clone()),
            Error::WorkdirNotFound(dir) => Error::WorkdirNotFound(dir.clone()),
            Error::TooManyRunning { limit } => Error::TooManyRunning { limit: *limit },
            Error::ShuttingDown => Error::ShuttingDown,
            Error::ProgramNotFound { program, source } => Error::ProgramNotFound {
                program: program.clone(),
                source: io(source),
            },
            Error::ProgramNotExecutable { program, source } => Error::ProgramNotExecutable {
                program: program.clone(),
                source: io(source),
            },
            Error::WorkdirNotEnterable { dir, source } => Error::WorkdirNotEnterable {
                dir: dir.clone(),
                source: io(source),
            },
            Error::TooLarge(e) => Error::TooLarge(io(e)),
            Error::Spawn(e) => Error::Spawn(io(e)),
            Error::NotFound(id) => Error::NotFound(*id),
            Error::NotRunning(id) => Error::NotRunning(*id),
            Error::LimitUnavailable { limit } => Error::LimitUnavailable { limit },
            Error::Signal(e) => Error::Signal(io(e)),
            Error::TrackedInvalid => Error::TrackedInvalid,
            Error::TrackedConflict => Error::TrackedConflict,
            Error::TrackedExpired => Error::TrackedExpired,
            Error::TrackedCapacity { limit } => Error::TrackedCapacity { limit: *limit },
            Error::InvalidTerminalSize { rows, cols } => Error::InvalidTerminalSize {
                rows: *rows,
                cols: *cols,
            },
            Error::NoInput(id) => Error::NoInput(*id),
            Error::InputFull(id) => Error::InputFull(*id),
            Error::NoTerminal(id) => Error::NoTerminal(*id),
            Error::Terminal(e) => Error::Terminal(io(e)),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::CommandRequired => f.write_str("Command is required."),
            Error::CommandAndArgv => f.write_str("Give either \"command\" or \"argv\", not both."),
            Error::EmptyArgv => {
                f.write_str("\"argv\" must be non-empty and its first word must not be empty.")
            }
            Error::NulByte { field } => write!(f, "Field {field} must not contain a NUL byte."),
            Error::InvalidEnvKey { key } => write!(
                f,
                "Environment variable name \"{key}\" is invalid: it must be non-empty and contain neither '=' nor NUL."
            ),
            Error::RelativeWorkdir(dir) => write!(
                f,
                "Working directory \"{}\" must be an absolute path.",
                dir.display()
            ),
            Error::WorkdirNotFound(dir) => {
                write!(f, "Working directory \"{}\" does not exist.", dir.display())
            }
            Error::TooManyRunning { .. } => f.write_str("Too many running processes."),
            Error::ShuttingDown => f.write_str("Server is shutting down."),
            Error::ProgramNotFound { program, .. } => write!(f, "Program \"{program}\" not found."),
            Error::ProgramNotExecutable { program, .. } => {
                write!(f, "Program \"{program}\" cannot be executed.")
            }
            Error::WorkdirNotEnterable { dir, .. } => {
                write!(
                    f,
                    "Working directory \"{}\" cannot be entered.",
                    dir.display()
                )
            }
            Error::TooLarge(_) => {
                f.write_str("The command, its arguments and environment are too large.")
            }
            Error::Spawn(_) => f.write_str("Failed to start process."),
            Error::NotFound(id) => write!(f, "Process \"{id}\" not found."),
            Error::NotRunning(id) => write!(f, "Process \"{id}\" is not running."),
            Error::LimitUnavailable { limit } => {
                write!(f, "Limit \"{limit}\" is not available on this host.")
            }
            Error::Signal(_) => f.write_str("Failed to signal process."),
            Error::InvalidTerminalSize { rows, cols } => write!(
                f,
                "Terminal size {rows}x{cols} is invalid: rows and columns must be 1 to {}.",
                crate::MAX_TERMINAL_DIMENSION
            ),
            Error::NoInput(id) => write!(f, "Process \"{id}\" has no open input."),
            Error::InputFull(id) => write!(f, "Input of process \"{id}\" is full."),
            Error::NoTerminal(id) => write!(f, "Process \"{id}\" has no terminal."),
            Error::Terminal(_) => f.write_str("Failed to resize terminal."),
            Error::TrackedInvalid => f.write_str("invalid tracked process identity"),
            Error::TrackedConflict => f.write_str("tracked process identity conflicts"),
            Error::TrackedExpired => f.write_str("tracked process history expired"),
            Error::TrackedCapacity { .. } => {
                f.write_str("tracked process identity capacity reached")
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Spawn(e) | Error::Signal(e) | Error::TooLarge(e) | Error::Terminal(e) => Some(e),
            Error::ProgramNotFound { source, .. }
            | Error::ProgramNotExecutable { source, .. }
            | Error::WorkdirNotEnterable { source, .. } => Some(source),
            _ => None,
        }
    }
}
