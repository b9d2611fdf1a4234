//! `procwarden mcp`: the MCP server on stdin and stdout. Without `--url` it runs processes
//! itself, in an in-process [`Manager`] that is closed (every process group ended) when stdin
//! closes or on SIGTERM or SIGINT; with `--url` it drives a running `procwarden serve` through
//! the HTTP client, and processes there are that server's to keep.
//!
//! The command line (`crate::cli`) parses the flags into [`McpOptions`] and calls [`run`].

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use super::{Backend, Server};
use crate::api::LocalApi;
use crate::client::Client;
use crate::manager::{DEFAULT_MAX_RUNNING, Manager};
use crate::serve::TOKEN_ENV;
use crate::sys;

/// The termination signals `procwarden mcp` handles.
const TERMINATION: [i32; 2] = [libc::SIGTERM, libc::SIGINT];

/// The options of `procwarden mcp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpOptions {
    /// `--url`: drive this `procwarden serve` instead of running processes in process.
    pub url: Option<String>,
    /// The bearer token for `--url` (the CLI reads it from `PROCWARDEN_TOKEN`).
    pub token: Option<String>,
    /// `--workdir`: the default working directory of the in-process manager (an existing
    /// directory; default: the current directory).
    pub workdir: Option<PathBuf>,
    /// `--max-running`: most processes the in-process manager runs at once.
    pub max_running: usize,
}

impl Default for McpOptions {
    fn default() -> Self {
        McpOptions {
            url: None,
            token: None,
            workdir: None,
            max_running: DEFAULT_MAX_RUNNING,
        }
    }
}

/// Why `procwarden mcp` did not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum McpError {
    /// A refusal at start-up (a `--workdir` that is not a directory): exit code 2, as for a
    /// bad flag.
    Refused(String),
    /// A failure to start (the manager or a thread could not start) or to read stdin: exit
    /// code 1.
    Failed(String),
}

impl McpError {
    /// The process exit code for this error.
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        match self {
            McpError::Refused(_) => 2,
            McpError::Failed(_) => 1,
        }
    }
}

impl fmt::Display for McpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            McpError::Refused(reason) | McpError::Failed(reason) => f.write_str(reason),
        }
    }
}

impl std::error::Error for McpError {}

/// What ends the session.
enum End {
    /// stdin ended (or could not be read).
    Input(io::Result<()>),
    /// A termination signal.
    Signal(i32),
}

/// Serves MCP on stdin and stdout until stdin ends or SIGTERM or SIGINT comes, then shuts down:
/// calls in flight are interrupted, and without `--url` every process is ended (SIGTERM, then
/// SIGKILL after the kill grace) and every thread joined. Call it from the main thread before
/// starting any other thread: it blocks the termination signals so that only its signal thread
/// receives them. Nothing but JSON-RPC is written to stdout; logs go to stderr.
///
/// # Errors
///
/// [`McpError::Refused`] for a `--workdir` that is not an existing directory;
/// [`McpError::Failed`] when the termination signals cannot be blocked, the manager or a
/// thread cannot start, or reading stdin fails.
pub fn run(options: McpOptions) -> Result<(), McpError> {
    sys::block_signals(&TERMINATION)
        .map_err(|e| McpError::Failed(format!("cannot block termination signals: {e}")))?;
    let (backend, manager): (Arc<dyn Backend>, Option<Arc<Manager>>) = match &options.url {
        Some(url) => {
            let client = Client::new(url.clone()).token(options.token.clone());
            probe(&client);
            (Arc::new(client), None)
        }
        None => {
            let manager = Arc::new(local_manager(&options)?);
            let api = LocalApi::new(Arc::clone(&manager), None);
            (Arc::new(api), Some(manager))
        }
    };
    let server = Server::new(backend, io::stdout())
        .map_err(|e| McpError::Failed(format!("cannot start the MCP workers: {e}")))?;
    let (ended, end) = crossbeam_channel::bounded(2);
    let reader = server.clone();
    let input_ended = ended.clone();
    std::thread::Builder::new()
        .name("procwarden-mcp-stdin".into())
        .spawn(move || {
            let read = reader.read_from(io::stdin().lock());
            let _ = input_ended.send(End::Input(read));
        })
        .map_err(|e| McpError::Failed(format!("cannot start the stdin thread: {e}")))?;
    std::thread::Builder::new()
        .name("procwarden-signals".into())
        .spawn(move || match sys::wait_for_signal(&TERMINATION) {
            Ok(sig) => {
                let _ = ended.send(End::Signal(sig));
            }
            Err(e) => log::error!("waiting for termination signals failed: {e}"),
        })
        .map_err(|e| McpError::Failed(format!("cannot start the signal thread: {e}")))?;

    let outcome = match end.recv() {
        Ok(End::Input(Ok(()))) => {
            log::info!("stdin closed: shutting down");
            Ok(())
        }
        Ok(End::Input(Err(e))) => Err(McpError::Failed(format!("cannot read stdin: {e}"))),
        Ok(End::Signal(sig)) => {
            log::info!("{}: shutting down", sys::signal_name(sig));
            Ok(())
        }
        Err(_) => Err(McpError::Failed(
            "the stdin thread ended without a word".into(),
        )),
    };
    server.shutdown();
    if let Some(manager) = manager {
        manager.close();
    }
    log::info!("stopped");
    outcome
}

/// The in-process manager: `--max-running`, `--workdir`, and no `PROCWARDEN_TOKEN` in the
/// children's environment (as `serve` does).
fn local_manager(options: &McpOptions) -> Result<Manager, McpError> {
    let mut builder = Manager::builder()
        .env_remove(TOKEN_ENV)
        .max_running(options.max_running);
    if let Some(dir) = &options.workdir {
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
        if !dir.is_dir() {
            return Err(McpError::Refused(format!(
                "--workdir {} is not an existing directory",
                dir.display()
            )));
        }
        builder = builder.default_workdir(dir);
    }
    builder
        .build()
        .map_err(|e| McpError::Failed(format!("cannot start the process manager: {e}")))
}

/// Says in the log, without delaying the start, whether the server at `--url` answers.
fn probe(client: &Client) {
    let client = client.clone();
    let spawned = std::thread::Builder::new()
        .name("procwarden-mcp-probe".into())
        .spawn(move || match client.version() {
            Ok(version) => log::info!("driving {version} at {}", client.url()),
            Err(e) => log::warn!(
                "{} does not answer ({e}); tool calls fail until it does",
                client.url()
            ),
        });
    if let Err(e) = spawned {
        log::debug!("cannot start the probe thread: {e}");
    }
}
