//! What the manager reports: how a process ended ([`Exit`]), a snapshot of one
//! ([`ProcessInfo`]), its output ([`Output`], read as an [`OutputQuery`] says), what a start
//! returns ([`Started`]), and what the exit hook is given ([`ExitEvent`]).

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use uuid::Uuid;

use crate::buffer::Truncation;
use crate::id::ProcessId;
use crate::interrupt::Interrupt;
use crate::pattern::LineMatch;

/// How a process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Exit {
    /// The leader's exit code, when it exited by itself. `None` when a signal ended it, or when
    /// its status could not be read (the embedding program, or a host ignoring SIGCHLD, reaped
    /// it): then `signal` tells which.
    pub code: Option<i32>,
    /// The number of the signal that ended the leader, e.g. 9 for SIGKILL.
    pub signal: Option<i32>,
    /// Whether the process's timeout ended it.
    pub timed_out: bool,
    /// When the process was marked exited.
    pub exited_at: SystemTime,
    /// From start to being marked exited.
    pub duration: Duration,
}

impl Exit {
    /// Whether the leader's status could not be read (neither a code nor a signal).
    #[must_use]
    pub fn status_unknown(&self) -> bool {
        self.code.is_none() && self.signal.is_none()
    }
}

/// A snapshot of one process, as `list` and `info` report it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProcessInfo {
    /// The process's id.
    pub id: ProcessId,
    /// The chat it was started for, if any.
    pub chat: Option<Uuid>,
    /// The command: the shell command, or the argv joined with POSIX shell quoting.
    pub command: String,
    /// The working directory actually used.
    pub workdir: PathBuf,
    /// Whether it was started as a background process.
    pub background: bool,
    /// False once the leader has exited and its output is complete (or the pipe grace passed).
    pub running: bool,
    /// The leader's pid (also its process group id).
    pub pid: u32,
    /// When it was started.
    pub started_at: SystemTime,
    /// Exited, but its process group still has live members (a background child outlived
    /// the leader): a signal still reaches them.
    pub members_alive: bool,
    /// It runs in a cgroup of its own (see [`ManagerBuilder::cgroup`]): kills and close reach
    /// everything it started, whatever process group or session that is in.
    ///
    /// [`ManagerBuilder::cgroup`]: crate::ManagerBuilder::cgroup
    pub contained: bool,
    /// Frozen by [`Signal::Stop`](crate::Signal::Stop) and not thawed since.
    pub stopped: bool,
    /// User plus system CPU time of the whole tree, in milliseconds (contained processes).
    pub cpu_ms: Option<u64>,
    /// The most memory the tree used at once, in bytes (where the memory controller is
    /// enabled for its cgroup).
    pub memory_peak_bytes: Option<u64>,
    /// The kernel's OOM killer killed a process of the tree (its memory limit was reached).
    pub oom_killed: bool,
    /// How it ended; `None` while running.
    pub exit: Option<Exit>,
    /// For a process started with input ([`Command::stdin_pipe`](crate::Command::stdin_pipe)
    /// or [`Command::tty`](crate::Command::tty)): whether it still takes input (until the
    /// input is closed or the process exits). `None` for a process without input.
    pub stdin_open: Option<bool>,
    /// For a terminal process: the terminal's current size.
    pub tty: Option<TerminalSize>,
}

/// The size of a process's terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TerminalSize {
    /// Rows (lines), 1 to [`MAX_TERMINAL_DIMENSION`](crate::MAX_TERMINAL_DIMENSION).
    pub rows: u16,
    /// Columns, 1 to [`MAX_TERMINAL_DIMENSION`](crate::MAX_TERMINAL_DIMENSION).
    pub cols: u16,
}

/// What [`Manager::write_input`](crate::Manager::write_input) (and the other input calls)
/// return: the bytes were queued, the process reads them when it will.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct InputQueued {
    /// Bytes this call queued.
    pub queued_bytes: u64,
    /// Bytes queued and not yet read by the process, this call's included: for a pipe also
    /// what sits unread in the kernel's pipe buffer; for a terminal only the manager's own
    /// queue.
    pub pending_bytes: u64,
}

/// What [`Manager::output`](crate::Manager::output) returns.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Output {
    /// The rendered output (valid UTF-8; see [`HeadTailBuffer`](crate::HeadTailBuffer) for the rules).
    pub output: String,
    /// Present exactly when some covered stream bytes were not kept.
    pub truncated: Option<Truncation>,
    /// Stream offset just past what this answer covers; pass it back as the cursor.
    pub next_cursor: u64,
    /// Whether the process is still running. When false, `output` is final.
    pub running: bool,
    /// How it ended, once it has.
    pub exit: Option<Exit>,
    /// With a pattern ([`OutputQuery::until`]): whether a line matched. `None` without one.
    pub matched: Option<bool>,
    /// With a pattern: the first matching line at or after the cursor, when one matched.
    pub line_match: Option<LineMatch>,
    /// The process has a full log, and it stopped growing before the stream's end (its size
    /// bound, or a failed write).
    pub log_truncated: bool,
    /// Why writing the full log failed, if it did (a full disk).
    pub log_error: Option<String>,
    /// The command (the whole of it; a list cuts long ones).
    pub command: String,
    /// As [`ProcessInfo::stdin_open`].
    pub stdin_open: Option<bool>,
    /// As [`ProcessInfo::tty`].
    pub tty: Option<TerminalSize>,
    /// Input bytes the process never read (still queued, or unread in its pipe, when it
    /// exited or closed its end).
    pub input_dropped_bytes: u64,
}

/// What [`Manager::output_tracked`](crate::Manager::output_tracked) returns.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrackedOutput {
    /// The process record exists: its output, as [`Manager::output`](crate::Manager::output)
    /// reads it.
    Output(Output),
    /// The record and its output are gone; the receipt keeps the final state (command and
    /// workdir blanked), so "output gone" is never mistaken for "never ran".
    Unavailable {
        /// The receipt's digest.
        input_digest: String,
        /// The final state.
        process: ProcessInfo,
    },
}

/// What [`Manager::cancel_tracked`](crate::Manager::cancel_tracked) returns.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Cancelled {
    /// The identity never started: it was fenced (now or before) or its start failed. No start
    /// with it will run.
    pub fenced: bool,
    /// The process as observed after the kill and the wait (it may still be running if the
    /// wait ended first), or the final state its receipt kept; `None` when neither is known.
    pub process: Option<ProcessInfo>,
}

/// One range read of a process's full log ([`Manager::log_read`](crate::Manager::log_read)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogChunk {
    /// The bytes read, as lossy UTF-8; a character cut by either end is left out.
    pub output: String,
    /// Where `output` starts: the offset asked for, moved forward to a character boundary.
    pub offset: u64,
    /// Just past the bytes `output` covers: the offset of the next read.
    pub next_offset: u64,
    /// The file's length.
    pub log_bytes: u64,
    /// Whether the process has exited and its whole stream is in the file.
    pub complete: bool,
    /// The file stopped growing before the stream's end (its size bound, or a failed write).
    pub log_truncated: bool,
    /// Why writing the file failed, if it did (a full disk).
    pub log_error: Option<String>,
}

/// What [`Manager::log_search`](crate::Manager::log_search) returns.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogSearch {
    /// The first matching lines, in stream order.
    pub matches: Vec<LogMatch>,
    /// Whether more lines matched than were returned.
    pub more: bool,
}

/// One line a log search found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogMatch {
    /// Stream offset of the line's first byte.
    pub offset: u64,
    /// Its number, from 1.
    pub line_number: u64,
    /// The line without its `\n` (lossy UTF-8; a long line cut as the output rules cut it).
    pub line: String,
}

/// What [`Manager::wait_any`](crate::Manager::wait_any) returns: every id asked about, in
/// exactly one of the two lists, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WaitAny {
    /// The processes that are no longer running.
    pub exited: Vec<ProcessInfo>,
    /// The ids of those still running.
    pub running: Vec<ProcessId>,
}

/// How to read output: from where, and whether to wait. Build one with [`snapshot`],
/// [`snapshot_from`], [`until_exit`] or [`after`].
///
/// ```
/// use procwarden::OutputQuery;
/// use std::time::Duration;
///
/// let now = OutputQuery::snapshot();
/// let done = OutputQuery::until_exit(Duration::from_secs(300));
/// let more = OutputQuery::after(1024, Duration::from_secs(30));
/// assert_eq!(more.cursor(), Some(1024));
/// assert_eq!(now.wait(), None);
/// # let _ = done;
/// ```
///
/// [`snapshot`]: OutputQuery::snapshot
/// [`snapshot_from`]: OutputQuery::snapshot_from
/// [`until_exit`]: OutputQuery::until_exit
/// [`after`]: OutputQuery::after
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutputQuery {
    cursor: Option<u64>,
    wait: Option<Duration>,
    interrupt: Option<Interrupt>,
    until: Option<String>,
    plain: bool,
}

impl OutputQuery {
    /// The whole kept output, at once.
    #[must_use]
    pub fn snapshot() -> Self {
        OutputQuery::default()
    }

    /// Only stream bytes at offsets `>= cursor`, at once.
    #[must_use]
    pub fn snapshot_from(cursor: u64) -> Self {
        OutputQuery {
            cursor: Some(cursor),
            ..OutputQuery::default()
        }
    }

    /// The whole kept output, after waiting up to `wait` (at most the manager's wait limit) for
    /// the process to exit.
    #[must_use]
    pub fn until_exit(wait: Duration) -> Self {
        OutputQuery {
            wait: Some(wait),
            ..OutputQuery::default()
        }
    }

    /// Stream bytes at offsets `>= cursor`, after waiting up to `wait` (at most the manager's
    /// wait limit) for output past the cursor or for the exit.
    #[must_use]
    pub fn after(cursor: u64, wait: Duration) -> Self {
        OutputQuery {
            cursor: Some(cursor),
            wait: Some(wait),
            ..OutputQuery::default()
        }
    }

    /// A query as the wire gives it: either part may be absent.
    #[must_use]
    pub fn from_parts(cursor: Option<u64>, wait: Option<Duration>) -> Self {
        OutputQuery {
            cursor,
            wait,
            ..OutputQuery::default()
        }
    }

    /// The cursor, if any.
    #[must_use]
    pub fn cursor(&self) -> Option<u64> {
        self.cursor
    }

    /// How long to wait, if at all.
    #[must_use]
    pub fn wait(&self) -> Option<Duration> {
        self.wait
    }

    /// Lets `interrupt` end the wait early: the answer is then what it would be had the wait
    /// run out.
    #[must_use]
    pub fn interruptible(mut self, interrupt: &Interrupt) -> Self {
        self.interrupt = Some(interrupt.clone());
        self
    }

    /// Waits (if the query waits) for a line that matches `pattern` (the `regex` crate's
    /// syntax, at most [`MAX_PATTERN_BYTES`](crate::MAX_PATTERN_BYTES) bytes) at or after the
    /// cursor, rather than for the exit or for any output: the wait ends at the first such
    /// line, at the exit, or when it runs out. Lines are matched as they arrive, so one in the
    /// omitted middle of a long output is found. The answer says whether one matched, and
    /// which ([`Output::line_match`]); its rendered output is what it would be without a
    /// pattern.
    ///
    /// ```
    /// use procwarden::OutputQuery;
    /// use std::time::Duration;
    ///
    /// let ready = OutputQuery::until_exit(Duration::from_secs(60)).until("listening on");
    /// assert_eq!(ready.pattern(), Some("listening on"));
    /// ```
    #[must_use]
    pub fn until(mut self, pattern: impl Into<String>) -> Self {
        self.until = Some(pattern.into());
        self
    }

    /// The pattern to wait for, if any.
    #[must_use]
    pub fn pattern(&self) -> Option<&str> {
        self.until.as_deref()
    }

    /// Renders the output as a terminal shows it (see
    /// [`HeadTailBuffer::render_plain_from`](crate::HeadTailBuffer::render_plain_from)): escape
    /// sequences removed, `\r\n` as `\n`, a lone `\r` overwriting its line. Cursors stay raw
    /// stream offsets.
    #[must_use]
    pub fn plain(mut self) -> Self {
        self.plain = true;
        self
    }

    /// Whether the output is rendered plain (see [`plain`](Self::plain)).
    #[must_use]
    pub fn is_plain(&self) -> bool {
        self.plain
    }

    /// The interrupt that may end the wait, if any.
    #[must_use]
    pub fn interrupt(&self) -> Option<&Interrupt> {
        self.interrupt.as_ref()
    }
}

/// Passed to the on-exit hook once a process has been marked exited.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ExitEvent {
    /// The process's id.
    pub id: ProcessId,
    /// The chat it was started for.
    pub chat: Option<Uuid>,
    /// Its working directory: files under it may have changed.
    pub workdir: PathBuf,
    /// How it ended.
    pub exit: Exit,
}

/// What [`Manager::start`](crate::Manager::start) returns.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Started {
    /// The new process's id.
    pub id: ProcessId,
    /// Its pid, which is also its process group id.
    pub pid: u32,
    /// The working directory it was started in.
    pub workdir: PathBuf,
}
