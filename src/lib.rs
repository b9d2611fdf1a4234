//! procwarden: run commands for AI agents and synchronous programs, keep a bounded head and tail
//! of their output, and wake waiters the moment they exit.
//!
//! This crate is being built in layers. Available now:
//!
//! - [`HeadTailBuffer`]: the bounded output record every process writes into. It keeps the first
//!   and last 16 KiB of a stream, counts every byte, renders valid UTF-8 text with an omission
//!   marker and cut long lines, supports cursors for reading only what is new, and lets threads
//!   block until more output arrives or the stream closes. It is usable on its own.
//!
//! # The output buffer
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
#![deny(missing_docs)]
#![warn(unsafe_op_in_unsafe_fn)]

pub mod buffer;
mod error;
mod manager;
#[cfg(any(test, feature = "model"))]
pub mod model;
mod process;
mod reaper;
mod render;
pub(crate) mod sys;

pub use buffer::{BufferConfig, HeadTailBuffer, Rendered, TRUNCATION_SUFFIX, Truncation};
pub use error::Error;
pub use manager::{
    CHAT_ID_ENV, DEFAULT_KILL_GRACE, DEFAULT_LIST_LIMIT, DEFAULT_MAX_EXITED, DEFAULT_MAX_RUNNING,
    DEFAULT_MAX_WAIT, DEFAULT_PIPE_GRACE, DEFAULT_RETENTION, DEFAULT_SHELL,
    DEFAULT_THREAD_STACK_BYTES, Manager, ManagerBuilder, Started,
};
pub use process::{
    Command, Exit, ExitEvent, Output, OutputQuery, ProcessId, ProcessInfo, READ_CHUNK_BYTES, Signal,
};
pub use uuid::Uuid;
