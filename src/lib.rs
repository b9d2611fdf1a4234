//! procwarden: run commands for AI agents and synchronous programs, keep a bounded head and tail
//! of their output, and wake waiters the moment they exit.
//!
//! Everything here is blocking and thread-based: no async runtime. A [`Manager`] owns one
//! supervisor thread and one reader thread per running child; calls block the calling thread
//! only as long as they say.
//!
//! # Running commands
//!
//! ```
//! use procwarden::{Command, Manager, OutputQuery, Signal};
//! use std::time::Duration;
//!
//! let manager = Manager::new()?;
//!
//! // Start, then block until it exits (or 10 s pass).
//! let started = manager.start(Command::shell("echo hello; echo oops >&2; exit 3"))?;
//! let done = manager.output(&started.id, None, OutputQuery::until_exit(Duration::from_secs(10)))?;
//! assert!(!done.running);
//! assert_eq!(done.output, "hello\noops\n"); // stdout and stderr share one pipe, in order
//! assert_eq!(done.exit.and_then(|e| e.code), Some(3));
//!
//! // A long-running process: read what is new as it comes, then stop its whole group.
//! let server = manager.start(Command::shell("echo ready; sleep 60").background(true))?;
//! let first = manager.output(&server.id, None, OutputQuery::after(0, Duration::from_secs(10)))?;
//! assert_eq!(first.output, "ready\n");
//! manager.signal(&server.id, None, Signal::Terminate, Some(Duration::from_secs(2)))?;
//!
//! // Dropping (or closing) the manager ends every process group and joins every thread.
//! drop(manager);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! What the manager guarantees:
//!
//! - Each child leads its own process group, with stdin from `/dev/null`, stdout and stderr in
//!   one pipe, default signal dispositions, an empty signal mask, no inherited descriptors, and
//!   a parent-death signal (SIGKILL) in case the program dies without closing the manager.
//! - Signals go to the whole group and never to a reused id: on Linux 6.9+ through the leader's
//!   pidfd, which names the group itself; elsewhere by number only while the unreaped leader
//!   (or an open output pipe) pins the group.
//! - A process counts as running until its leader has exited *and* its output pipe is closed,
//!   or for at most [`DEFAULT_PIPE_GRACE`] after the leader's exit: a background grandchild
//!   that keeps the pipe open can never make a wait hang.
//! - Once an answer says `running: false`, its output is final.
//! - It never calls `waitpid(-1)` and installs no SIGCHLD handler: the embedding program's
//!   other children are its own. A host that ignores SIGCHLD still gets every exit (with exit
//!   no code and no signal: the status is lost).
//! - Every bound is a named constant with a builder method: [`DEFAULT_MAX_RUNNING`],
//!   [`DEFAULT_RETENTION`], [`DEFAULT_MAX_EXITED`], [`DEFAULT_MAX_WAIT`], [`DEFAULT_KILL_GRACE`],
//!   the buffer sizes in [`BufferConfig`], and so on.
//!
//! Scope: every call takes the caller's chat (`None` for none). See [`Manager`] for the rules.
//!
//! # Tracked starts
//!
//! A start can carry an identity chosen before it is made ([`Tracking`], coder's tracked
//! processes): the process gets that id, the same start again answers the process already
//! started instead of running a second one, [`Manager::cancel_tracked`] fences an identity
//! whose start has not arrived (it will never run) or kills its process, a deadline SIGKILLs
//! the group, and [`Manager::output_tracked`] still gives the final state once the output is
//! gone. The manager remembers at most [`DEFAULT_MAX_TRACKED`] identities.
//!
//! ```
//! use procwarden::{Command, Manager, Tracking, Uuid};
//!
//! let manager = Manager::new()?;
//! let id = Uuid::new_v4();
//! let first = manager.start(Command::shell("echo once").tracked(Tracking::new(id)))?;
//! let again = manager.start(Command::shell("echo once").tracked(Tracking::new(id)))?;
//! assert_eq!(first.id, again.id); // one process
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The output buffer on its own
//!
//! [`HeadTailBuffer`] keeps the first and last 16 KiB of a stream and counts every byte. It
//! renders valid UTF-8 text with an omission marker and cut long lines, supports cursors for
//! reading only what is new, and lets threads block until more output arrives or the stream
//! closes.
//!
//! ```
//! use procwarden::{BufferConfig, HeadTailBuffer};
//! use std::time::{Duration, Instant};
//!
//! let buffer = HeadTailBuffer::with_config(BufferConfig {
//!     head_bytes: 10,
//!     tail_bytes: 10,
//!     ..BufferConfig::default()
//! });
//! buffer.write(&[b'A'; 50]);
//! buffer.write(&[b'Z'; 50]);
//!
//! let shown = buffer.render();
//! assert_eq!(shown.output, "AAAAAAAAAA\n\n... [omitted 80 bytes] ...\n\nZZZZZZZZZZ");
//! let cut = shown.truncated.expect("80 bytes were not kept");
//! assert_eq!((cut.original_bytes, cut.omitted_bytes), (100, 80));
//!
//! // Read only what comes after what was already seen.
//! buffer.write(b"!");
//! let new = buffer.render_from(shown.next_cursor);
//! assert_eq!(new.output, "!");
//!
//! // Waiting: returns as soon as the buffer is closed (or the deadline passes).
//! buffer.close();
//! assert!(buffer.wait_closed(Instant::now() + Duration::from_secs(1)));
//! ```
//!
//! # Agent tools and remote agents
//!
//! [`tools`] holds the tools an AI model calls (`execute`, `process_output`, `process_list`,
//! `process_signal`) and their definitions. They run over [`api::ProcessApi`], the same trait
//! the HTTP handler answers through: in process through [`api::LocalApi`], or against a
//! `procwarden serve` through `client::Client` (the blocking HTTP client, feature `client`).
//! Feature `mcp` adds `procwarden::mcp` (`mcp::Server`): the same tools over the Model Context Protocol,
//! a synchronous JSON-RPC server on any reader and writer (`procwarden mcp` runs it on stdin
//! and stdout). Feature `cli` adds the command line, `cli::run`.
//!
//! # Platforms
//!
//! Linux first: children are created with a vfork-style `clone` (fast whatever the size of the
//! parent) and watched through pidfds. Other unix systems (macOS) use `fork`, a waiter thread
//! per child (`waitid` with `WNOWAIT`), and `killpg`; they have no parent-death signal.
#![deny(missing_docs)]
#![warn(unsafe_op_in_unsafe_fn)]

pub mod api;
pub mod buffer;
#[cfg(feature = "cli")]
#[doc(hidden)]
pub mod cli;
#[cfg(feature = "client")]
pub mod client;
mod command;
mod error;
pub mod handler;
#[cfg(feature = "server")]
pub mod http;
mod id;
mod info;
mod input;
mod interrupt;
mod log;
mod manager;
#[cfg(feature = "mcp")]
pub mod mcp;
pub mod metrics;
#[cfg(any(test, feature = "model"))]
#[doc(hidden)]
pub mod model;
mod pattern;
mod plain;
mod pool;
mod process;
mod reaper;
mod render;
#[cfg(feature = "server")]
#[doc(hidden)]
pub mod serve;
pub(crate) mod sys;
mod time;
pub mod tools;

pub use api::ParseSignalError;
pub use buffer::{BufferConfig, HeadTailBuffer, Rendered, TRUNCATION_SUFFIX, Truncation};
pub use command::{Command, LOG_COMMAND_BYTES, Limits, MAX_TERMINAL_DIMENSION, Signal, Tracking};
pub use error::Error;
pub use id::ProcessId;
pub use info::{
    Cancelled, Exit, ExitEvent, InputQueued, LogChunk, LogMatch, LogSearch, Output, OutputQuery,
    ProcessInfo, Started, TerminalSize, TrackedOutput, WaitAny,
};
pub use interrupt::Interrupt;
pub use log::{
    DEFAULT_LOG_MAX_BYTES, DEFAULT_LOG_MAX_TOTAL_BYTES, DEFAULT_LOG_SEARCH_MATCHES,
    LOG_WRITE_BUFFER_BYTES, MAX_LOG_READ_BYTES, MAX_LOG_SEARCH_MATCHES,
};
pub use manager::{
    AUTO_CGROUP_NAME, CGROUP_EMPTY_WAIT, CgroupMode, DEFAULT_CHILD_OOM_SCORE_ADJ, SERVER_LEAF_NAME,
};
pub use manager::{
    CHAT_ID_ENV, DEFAULT_FLOOD_PIPE_BYTES, DEFAULT_KILL_GRACE, DEFAULT_LIST_LIMIT,
    DEFAULT_MAX_EXITED, DEFAULT_MAX_PENDING_INPUT, DEFAULT_MAX_RUNNING, DEFAULT_MAX_TRACKED,
    DEFAULT_MAX_WAIT, DEFAULT_PIPE_GRACE, DEFAULT_READER_IDLE, DEFAULT_RETENTION, DEFAULT_SHELL,
    DEFAULT_TERMINAL_TERM, DEFAULT_THREAD_STACK_BYTES, Listing, Manager, ManagerBuilder,
};
pub use pattern::{LineMatch, MAX_PATTERN_BYTES, Pattern, PatternError};
pub use process::READ_CHUNK_BYTES;
pub use uuid::Uuid;

// The types programs share between threads: checked when the crate compiles.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Manager>();
    send_sync::<HeadTailBuffer>();
    #[cfg(feature = "client")]
    send_sync::<client::Client>();
};
