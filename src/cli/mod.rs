//! The `procwarden` command line: `serve` (the HTTP agent, see [`crate::serve`]), `mcp` (the
//! MCP server on stdin and stdout, see [`crate::mcp`]) and the client
//! subcommands `exec`, `ps`, `output`, `kill`, `attach`, `input`, `wait`, `log` and `tools`,
//! which talk to a running agent through [`Client`](crate::client::Client). The binary's `main`
//! only calls [`run()`].
//!
//! Conventions shared by every client subcommand:
//!
//! - `--url URL` (before or after the subcommand) names the agent: `http://HOST:PORT` or
//!   `unix:/path`. Default: the environment variable [`URL_ENV`], else [`DEFAULT_URL`]. The
//!   bearer token comes from `--token-file FILE`, else [`TOKEN_ENV`] (surrounding whitespace
//!   trimmed; empty means none).
//! - Every process ID argument may be a unique prefix of at least [`MIN_ID_PREFIX`]
//!   characters, resolved through the agent's list (`ids`); an ambiguous one is a usage error
//!   that lists the candidates.
//! - `--json` prints the API's answer as JSON (the wire types of [`crate::api`], one object per
//!   line) instead of the human form.
//! - Exit codes: [`EXIT_USAGE`] for a usage error, [`EXIT_FAILURE`] for an error answer or no
//!   answer, each with one line on stderr (`procwarden: message (detail)`). `exec` and
//!   `output` otherwise exit with the process's status: its exit code; 128+N when signal N
//!   ended it (as shells report it); [`EXIT_TIMED_OUT`] when it timed out (`exec --timeout`, like
//!   timeout(1)); [`EXIT_STATUS_UNKNOWN`] when the server could not read its status.
//!
//! The rooms: `args` holds the one argument definition (the usage texts, the table of flags,
//! and the parser, for `serve` and the client subcommands alike), `run` runs the client
//! subcommands against the agent (`ids` resolves ID prefixes for all of them; `attach` attaches
//! the terminal for `attach` and `exec --tty`, `input` sends input for `input`), `format`
//! renders their human output, `complete` and `manpage` make the shell completions and the man
//! page from the definition in `args`. This file dispatches.

mod args;
mod attach;
mod complete;
mod ctrl_c;
mod format;
mod ids;
mod input;
mod manpage;
mod run;
mod waits;

use std::ffi::OsString;
use std::process::ExitCode;
use std::time::Duration;

use crate::api;
use crate::serve::{self, ServeOptions};
use args::Invocation;

/// The environment variable that holds the agent's URL when `--url` is not given.
pub const URL_ENV: &str = "PROCWARDEN_URL";
/// The agent's URL when neither `--url` nor [`URL_ENV`] is given (where `serve` listens by
/// default).
pub const DEFAULT_URL: &str = "http://127.0.0.1:7717";
/// The environment variable that holds the bearer token (the same one `serve` reads).
pub const TOKEN_ENV: &str = serve::TOKEN_ENV;

/// Exit code for an error answer or no answer.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code for a usage error.
pub const EXIT_USAGE: u8 = 2;
/// Exit code of `exec` when `--timeout` expired (as timeout(1)), and of `exec`/`output` for a
/// process the server's own timeout ended.
pub const EXIT_TIMED_OUT: u8 = 124;
/// A process ended by signal N exits with this plus N.
pub const EXIT_SIGNAL_BASE: u8 = 128;
/// Exit code for a process whose status the server could not read (`exit_code` -1 without a
/// signal, or a signal without a number here).
pub const EXIT_STATUS_UNKNOWN: u8 = 255;

/// How long each long poll of `exec`, `output --wait` and `output --follow` asks the server to
/// wait (the longest wait the server grants); they poll again until the process exits.
pub const LONG_POLL: Duration = Duration::from_millis(api::MAX_WAIT_MS);
/// `exec --timeout D` asks the agent to end the process after D (`timeout_ms`: SIGTERM, then
/// SIGKILL after the agent's kill grace, 2 s). If it is still reported running this long after
/// D (an agent that ignores `timeout_ms`, such as coder's), `exec` sends SIGKILL itself.
pub const EXEC_TIMEOUT_GUARD: Duration = Duration::from_secs(5);
/// After `exec` sent SIGKILL: how long to wait for the process to be reported exited (it takes
/// at most the pipe grace, 2 s, when a grandchild holds the output pipe).
pub const KILL_SETTLE: Duration = Duration::from_secs(10);
/// How long a process interrupted by Ctrl-C during `exec` has to exit before it gets SIGKILL
/// (`exec --interrupt-grace` changes it; the agent's own kill grace is the same 2 s).
pub const INTERRUPT_GRACE: Duration = crate::DEFAULT_KILL_GRACE;
/// The shortest process ID prefix that `kill`, `output` and every other subcommand taking IDs
/// accept (resolved against the agent's list, as docker and git resolve short ids).
pub const MIN_ID_PREFIX: usize = 4;
/// Exit code of `exec` when Ctrl-C interrupted it (128 + SIGINT, as shells report it).
pub const EXIT_INTERRUPTED: u8 = 130;
/// Width of `ps` output when the environment variable `COLUMNS` does not say.
pub const DEFAULT_COLUMNS: usize = 120;
/// The `COMMAND` column of `ps` is never cut below this many characters.
pub const MIN_COMMAND_COLUMNS: usize = 20;
/// Highest signal number `exec` and `output` map a signal name back to (Linux has 64).
pub const MAX_SIGNAL_NUMBER: i32 = 64;

/// Runs the `procwarden` command with `args` (without the program name) and returns its exit
/// code. Call it from the main thread: `serve` blocks termination signals for its own use.
pub fn run(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let args: Result<Vec<String>, OsString> = args.into_iter().map(OsString::into_string).collect();
    let Ok(args) = args else {
        eprintln!("procwarden: arguments must be valid UTF-8");
        return ExitCode::from(EXIT_USAGE);
    };
    match args::parse(&args) {
        Err(usage) => {
            eprintln!("procwarden: {usage}");
            ExitCode::from(usage.exit_code())
        }
        Ok(Invocation::Help(text)) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Ok(Invocation::Version) => {
            println!("procwarden {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Ok(Invocation::Serve(options)) => serve_command(options),
        Ok(Invocation::Mcp(options)) => mcp_command(options),
        Ok(Invocation::Completions(shell)) => {
            print!("{}", complete::script(shell));
            ExitCode::SUCCESS
        }
        Ok(Invocation::Manpage) => {
            print!("{}", manpage::page());
            ExitCode::SUCCESS
        }
        Ok(Invocation::Client { options, command }) => run::client_command(options, &command),
    }
}

/// Runs the agent with its parsed flags, logging to stderr.
fn serve_command(options: ServeOptions) -> ExitCode {
    let mut logger =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    logger.target(env_logger::Target::Stderr);
    if options.log_format == serve::LogFormat::Json {
        logger.format(|out, record| {
            use std::io::Write as _;
            writeln!(
                out,
                "{}",
                serve::json_log_line(record, std::time::SystemTime::now())
            )
        });
    }
    logger.init();
    match serve::run(options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => refusal(&e.to_string(), e.exit_code(), "serve"),
    }
}

/// Runs the MCP server with its parsed flags (the token from [`TOKEN_ENV`] when it drives an
/// agent), logging to stderr.
fn mcp_command(mut options: crate::mcp::McpOptions) -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .target(env_logger::Target::Stderr)
        .init();
    if options.url.is_some() {
        options.token = env_value(TOKEN_ENV);
    }
    match crate::mcp::run(options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => refusal(&e.to_string(), e.exit_code(), "mcp"),
    }
}

/// Reports why `serve` or `mcp` did not run: a refusal at start (exit code [`EXIT_USAGE`]) ends
/// with the same pointer to the help as every other usage error.
fn refusal(message: &str, code: u8, command: &'static str) -> ExitCode {
    if code == EXIT_USAGE {
        eprintln!("procwarden: {}", args::Usage::new(message, Some(command)));
    } else {
        eprintln!("procwarden: {message}");
    }
    ExitCode::from(code)
}

/// A variable's value, trimmed; unset, empty or not UTF-8 counts as absent.
fn env_value(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}
