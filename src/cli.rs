//! The `procwarden` command line: `serve` (the HTTP agent, see [`crate::serve`]) and the client
//! subcommands `exec`, `ps`, `output`, `kill` and `tools`, which talk to a running agent through
//! [`Client`]. The binary's `main` only calls [`run`].
//!
//! Conventions shared by every client subcommand:
//!
//! - `--url URL` (before or after the subcommand) names the agent: `http://HOST:PORT` or
//!   `unix:/path`. Default: the environment variable [`URL_ENV`], else [`DEFAULT_URL`]. The
//!   bearer token comes from [`TOKEN_ENV`] (surrounding whitespace trimmed; empty means none).
//! - `--json` prints the API's answer as JSON (the wire types of [`crate::api`], one object per
//!   line) instead of the human form.
//! - Exit codes: [`EXIT_USAGE`] for a usage error, [`EXIT_FAILURE`] for an error answer or no
//!   answer, each with one line on stderr (`procwarden: message (detail)`). `exec` and
//!   `output` otherwise exit with the process's status: its exit code; 128+N when signal N
//!   ended it (as shells report it); [`EXIT_TIMED_OUT`] when it timed out (`exec --timeout`, like
//!   timeout(1)); [`EXIT_STATUS_UNKNOWN`] when the server could not read its status.

use std::ffi::OsString;
use std::io::{self, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::api;
use crate::client::Client;
use crate::serve::{self, SERVE_USAGE};
use crate::tools::{self, ApiError};

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
/// `exec --timeout D` also asks the server to end the process D plus this after its start, so
/// that it ends even when this command is killed before it can send the signal itself.
pub const EXEC_SERVER_BACKSTOP: Duration = Duration::from_secs(10);
/// After `exec --timeout` sent SIGKILL: how long to wait for the process to be reported exited
/// (it takes at most the pipe grace, 2 s, when a grandchild holds the output pipe).
pub const KILL_SETTLE: Duration = Duration::from_secs(10);
/// Width of `ps` output when the environment variable `COLUMNS` does not say.
pub const DEFAULT_COLUMNS: usize = 120;
/// The `COMMAND` column of `ps` is never cut below this many characters.
pub const MIN_COMMAND_COLUMNS: usize = 20;
/// Highest signal number `exec` and `output` map a signal name back to (Linux has 64).
pub const MAX_SIGNAL_NUMBER: i32 = 64;

const USAGE: &str = "\
procwarden: a process runner for AI agents

Usage:
  procwarden serve [OPTIONS]                  run the HTTP agent
  procwarden exec [OPTIONS] -- COMMAND...     run a command, print its output, exit with its status
  procwarden ps [--limit N] [--wide]          list processes
  procwarden output ID [--wait] [--follow]    print a process's output
  procwarden kill ID [--signal SIGNAL]        signal a process's whole group
  procwarden tools [--schema]                 the agent tools (no server needed)
  procwarden --version | --help

Client options (every command but serve; `procwarden COMMAND --help` for the others):
  --url URL   the agent: http://HOST:PORT or unix:/path
              (default: $PROCWARDEN_URL, else http://127.0.0.1:7717)
  --json      print the API's JSON answer instead of the human form
The bearer token is read from $PROCWARDEN_TOKEN.

Exit codes: 1 error answer or no answer, 2 usage error. exec and output exit with the
process's status: its exit code, 128+N for signal N, 124 for a timeout.";

const EXEC_USAGE: &str = "\
Usage: procwarden exec [--timeout D] [--workdir DIR] [--background] [--url URL] [--json] -- COMMAND...

Runs COMMAND through the agent: its words joined with single spaces and run by `sh -c` on the
agent's host (as ssh does), stdout and stderr in one stream, stdin empty. Waits for the exit,
prints the output (the first and last 16 KiB when it is longer, with an omission marker), and
exits with the command's status: its exit code, 128+N when signal N ended it.

  --timeout D      give up after D (e.g. 30s, 5m, 250ms): the process group is sent SIGKILL,
                   so nothing is left running, its output is printed, and the exit code is 124
                   (as timeout(1)); the agent also ends it 10 s after D should this command die
  --workdir DIR    absolute working directory on the agent's host (default: the agent's)
  --background     start it and print its id at once (exit 0); with --timeout the agent ends
                   it after D (SIGTERM, then SIGKILL 2 s later)
  --json           print the final output answer (or the start answer) as JSON";

const PS_USAGE: &str = "\
Usage: procwarden ps [--limit N] [--wide] [--url URL] [--json]

Lists processes, running first, then newest first: ID, PID, STATUS (running, exit N, the
signal that ended it, or timed out), TIME (how long it has run, or ran) and COMMAND, cut to
the terminal width ($COLUMNS, else 120).

  --limit N   at most N processes (1 to 1000, default 1000)
  --wide      never cut COMMAND
  --json      print the list answer as JSON";

const OUTPUT_USAGE: &str = "\
Usage: procwarden output ID [--wait] [--follow] [--url URL] [--json]

Prints a process's output (the first and last 16 KiB, with an omission marker between).
Without options it is a snapshot. Once the process has exited, exits with its status as exec
does (exit code, 128+N for signal N, 124 for a timeout); while it runs, exits 0.

  --wait      wait until the process exits, then print its output
  --follow    print output as it arrives until the process exits
  --json      print the output answer as JSON (with --follow, one answer per line)";

const KILL_USAGE: &str = "\
Usage: procwarden kill ID [--signal terminate|kill|interrupt] [--url URL] [--json]

Sends a signal to the process's whole group: terminate (SIGTERM, the default), kill (SIGKILL)
or interrupt (SIGINT).

  --json      print the answer as JSON";

const TOOLS_USAGE: &str = "\
Usage: procwarden tools [--schema]

Lists the agent tools (execute, process_output, process_list, process_signal). No server is
needed.

  --schema, --json   print the tool definitions (name, description, JSON Schema of the
                     arguments) as JSON";

/// Runs the `procwarden` command with `args` (without the program name) and returns its exit
/// code. Call it from the main thread: `serve` blocks termination signals for its own use.
pub fn run(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let args: Result<Vec<String>, OsString> = args.into_iter().map(OsString::into_string).collect();
    let Ok(args) = args else {
        eprintln!("procwarden: arguments must be valid UTF-8");
        return ExitCode::from(EXIT_USAGE);
    };
    let invocation = match parse(&args) {
        Ok(invocation) => invocation,
        Err(usage) => {
            eprintln!("procwarden: {usage}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    match invocation {
        Invocation::Help(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Invocation::Version => {
            println!("procwarden {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Invocation::Serve(args) => serve_command(&args),
        Invocation::Client { options, command } => {
            let url = options
                .url
                .or_else(|| env_value(URL_ENV))
                .unwrap_or_else(|| DEFAULT_URL.to_string());
            let client = Client::new(url).token(env_value(TOKEN_ENV));
            let stdout = io::stdout();
            let mut out = stdout.lock();
            match execute(&client, &command, options.json, &mut out) {
                Ok(code) => ExitCode::from(code),
                Err(Failure::Api(e)) => {
                    eprintln!("procwarden: {}", one_line(&e.to_string()));
                    ExitCode::from(EXIT_FAILURE)
                }
                Err(Failure::Output(e)) => {
                    eprintln!("procwarden: cannot write the output: {e}");
                    ExitCode::from(EXIT_FAILURE)
                }
            }
        }
    }
}

/// A variable's value, trimmed; unset, empty or not UTF-8 counts as absent.
fn env_value(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

fn serve_command(args: &[String]) -> ExitCode {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{SERVE_USAGE}");
        return ExitCode::SUCCESS;
    }
    let opts = match serve::parse_args(args) {
        Ok(opts) => opts,
        Err(e) => {
            eprintln!("procwarden: {e}");
            return ExitCode::from(e.exit_code());
        }
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .target(env_logger::Target::Stderr)
        .init();
    match serve::run(opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("procwarden: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing

/// What the arguments ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Invocation {
    Help(&'static str),
    Version,
    Serve(Vec<String>),
    Client {
        options: ClientOptions,
        command: Command,
    },
}

/// The options every client subcommand takes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ClientOptions {
    url: Option<String>,
    json: bool,
}

/// A client subcommand.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Command {
    Exec {
        /// The timeout and its text as given (for messages).
        timeout: Option<(Duration, String)>,
        workdir: Option<String>,
        background: bool,
        command: String,
    },
    Ps {
        limit: usize,
        wide: bool,
    },
    Output {
        id: String,
        wait: bool,
        follow: bool,
    },
    Kill {
        id: String,
        signal: String,
    },
    Tools {
        schema: bool,
    },
}

/// A usage error: a message, and the subcommand whose help explains it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Usage {
    message: String,
    command: Option<&'static str>,
}

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.command {
            Some(command) => write!(f, "{} (see procwarden {command} --help)", self.message),
            None => write!(f, "{} (see procwarden --help)", self.message),
        }
    }
}

fn usage(command: Option<&'static str>, message: impl Into<String>) -> Usage {
    Usage {
        message: message.into(),
        command,
    }
}

/// Splits `--flag=value` into the flag and its inline value.
fn split_flag(word: &str) -> (&str, Option<&str>) {
    match word.split_once('=') {
        Some((flag, value)) if flag.starts_with("--") => (flag, Some(value)),
        _ => (word, None),
    }
}

/// The words of one subcommand, read left to right.
struct Words<'a> {
    words: &'a [String],
    next: usize,
    command: Option<&'static str>,
}

impl<'a> Words<'a> {
    fn next(&mut self) -> Option<&'a str> {
        let word = self.words.get(self.next)?;
        self.next += 1;
        Some(word)
    }

    fn rest(&mut self) -> &'a [String] {
        let rest = &self.words[self.next..];
        self.next = self.words.len();
        rest
    }

    /// The value of `flag`: inline (`--flag=value`) or the next word.
    fn value(&mut self, flag: &str, inline: Option<&str>) -> Result<String, Usage> {
        match inline {
            Some(value) => Ok(value.to_string()),
            None => self
                .next()
                .map(str::to_string)
                .ok_or_else(|| usage(self.command, format!("{flag} needs a value"))),
        }
    }

    /// Handles an option every client subcommand takes; returns whether `flag` was one.
    fn common(
        &mut self,
        flag: &str,
        inline: Option<&str>,
        options: &mut ClientOptions,
    ) -> Result<bool, Usage> {
        match flag {
            "--url" => options.url = Some(self.value(flag, inline)?),
            "--json" if inline.is_none() => options.json = true,
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn no_inline(&self, flag: &str, inline: Option<&str>) -> Result<(), Usage> {
        match inline {
            Some(_) => Err(usage(self.command, format!("{flag} takes no value"))),
            None => Ok(()),
        }
    }

    fn unknown(&self, word: &str) -> Usage {
        if word.starts_with('-') {
            usage(self.command, format!("unknown option \"{word}\""))
        } else {
            usage(self.command, format!("unexpected argument \"{word}\""))
        }
    }
}

fn is_help(word: &str) -> bool {
    word == "--help" || word == "-h"
}

fn parse(args: &[String]) -> Result<Invocation, Usage> {
    let mut options = ClientOptions::default();
    let mut words = Words {
        words: args,
        next: 0,
        command: None,
    };
    let mut global = false;
    let name = loop {
        let Some(word) = words.next() else {
            return Err(usage(None, "a command is required"));
        };
        if is_help(word) {
            return Ok(Invocation::Help(USAGE));
        }
        if matches!(word, "--version" | "-V") {
            return Ok(Invocation::Version);
        }
        let (flag, inline) = split_flag(word);
        if words.common(flag, inline, &mut options)? {
            global = true;
            continue;
        }
        if word.starts_with('-') {
            return Err(words.unknown(word));
        }
        break word;
    };
    let (command, help): (&'static str, &'static str) = match name {
        "serve" => {
            if global {
                return Err(usage(
                    Some("serve"),
                    "serve takes no --url or --json (it listens with --listen)",
                ));
            }
            return Ok(Invocation::Serve(words.rest().to_vec()));
        }
        "version" => return Ok(Invocation::Version),
        "help" => {
            return Ok(Invocation::Help(match words.next() {
                None => USAGE,
                Some("serve") => SERVE_USAGE,
                Some(other) => match help_of(other) {
                    Some((_, help)) => help,
                    None => return Err(usage(None, format!("unknown command \"{other}\""))),
                },
            }));
        }
        other => {
            help_of(other).ok_or_else(|| usage(None, format!("unknown command \"{other}\"")))?
        }
    };
    words.command = Some(command);
    let rest = words.rest();
    let wants_help = if command == "exec" {
        exec_help_before_command(rest)
    } else {
        rest.iter().any(|w| is_help(w))
    };
    if wants_help {
        return Ok(Invocation::Help(help));
    }
    let mut words = Words {
        words: rest,
        next: 0,
        command: Some(command),
    };
    let command = match command {
        "exec" => parse_exec(&mut words, &mut options)?,
        "ps" => parse_ps(&mut words, &mut options)?,
        "output" => parse_output(&mut words, &mut options)?,
        "kill" => parse_kill(&mut words, &mut options)?,
        _ => parse_tools(&mut words, &mut options)?,
    };
    Ok(Invocation::Client { options, command })
}

/// The name and help of a client subcommand.
fn help_of(name: &str) -> Option<(&'static str, &'static str)> {
    Some(match name {
        "exec" => ("exec", EXEC_USAGE),
        "ps" => ("ps", PS_USAGE),
        "output" => ("output", OUTPUT_USAGE),
        "kill" => ("kill", KILL_USAGE),
        "tools" => ("tools", TOOLS_USAGE),
        _ => return None,
    })
}

/// Whether `--help` comes among exec's options rather than in its command (`exec -- ls --help`
/// and `exec ls --help` run `ls --help`).
fn exec_help_before_command(rest: &[String]) -> bool {
    let mut takes_value = false;
    for word in rest {
        if takes_value {
            takes_value = false;
            continue;
        }
        if is_help(word) {
            return true;
        }
        if word == "--" || !word.starts_with('-') {
            return false;
        }
        takes_value = matches!(word.as_str(), "--timeout" | "--workdir" | "--url");
    }
    false
}

fn parse_exec(words: &mut Words<'_>, options: &mut ClientOptions) -> Result<Command, Usage> {
    let mut timeout = None;
    let mut workdir = None;
    let mut background = false;
    let mut command: &[String] = &[];
    while let Some(word) = words.next() {
        if word == "--" {
            command = words.rest();
            break;
        }
        if !word.starts_with('-') {
            // The command starts here, as with ssh: everything from here on is its words.
            words.next -= 1;
            command = words.rest();
            break;
        }
        let (flag, inline) = split_flag(word);
        if words.common(flag, inline, options)? {
            continue;
        }
        match flag {
            "--timeout" => {
                let text = words.value(flag, inline)?;
                let d = tools::parse_duration(&text).map_err(|e| usage(words.command, e))?;
                if d.is_zero() {
                    return Err(usage(words.command, "--timeout must be more than 0"));
                }
                timeout = Some((d, text));
            }
            "--workdir" => workdir = Some(words.value(flag, inline)?),
            "--background" => {
                words.no_inline(flag, inline)?;
                background = true;
            }
            _ => return Err(words.unknown(word)),
        }
    }
    if command.is_empty() {
        return Err(usage(words.command, "a command is required after --"));
    }
    let command = command.join(" ");
    if command.trim().is_empty() {
        return Err(usage(words.command, "the command is empty"));
    }
    Ok(Command::Exec {
        timeout,
        workdir,
        background,
        command,
    })
}

fn parse_ps(words: &mut Words<'_>, options: &mut ClientOptions) -> Result<Command, Usage> {
    let mut limit = api::MAX_LIST_LIMIT as usize;
    let mut wide = false;
    while let Some(word) = words.next() {
        let (flag, inline) = split_flag(word);
        if words.common(flag, inline, options)? {
            continue;
        }
        match flag {
            "--limit" => {
                let text = words.value(flag, inline)?;
                limit = match text.parse::<usize>() {
                    Ok(n) if (1..=api::MAX_LIST_LIMIT as usize).contains(&n) => n,
                    _ => {
                        return Err(usage(
                            words.command,
                            format!(
                                "--limit takes a number from 1 to {}, got \"{text}\"",
                                api::MAX_LIST_LIMIT
                            ),
                        ));
                    }
                };
            }
            "--wide" | "-w" => {
                words.no_inline(flag, inline)?;
                wide = true;
            }
            _ => return Err(words.unknown(word)),
        }
    }
    Ok(Command::Ps { limit, wide })
}

/// Sets the one positional ID, or refuses a second.
fn set_id(words: &Words<'_>, id: &mut Option<String>, word: &str) -> Result<(), Usage> {
    if word.starts_with('-') {
        return Err(words.unknown(word));
    }
    if id.is_some() {
        return Err(words.unknown(word));
    }
    *id = Some(word.to_string());
    Ok(())
}

fn required_id(words: &Words<'_>, id: Option<String>) -> Result<String, Usage> {
    id.filter(|id| !id.is_empty())
        .ok_or_else(|| usage(words.command, "a process ID is required"))
}

fn parse_output(words: &mut Words<'_>, options: &mut ClientOptions) -> Result<Command, Usage> {
    let mut id = None;
    let mut wait = false;
    let mut follow = false;
    while let Some(word) = words.next() {
        let (flag, inline) = split_flag(word);
        if words.common(flag, inline, options)? {
            continue;
        }
        match flag {
            "--wait" => {
                words.no_inline(flag, inline)?;
                wait = true;
            }
            "--follow" | "-f" => {
                words.no_inline(flag, inline)?;
                follow = true;
            }
            _ => set_id(words, &mut id, word)?,
        }
    }
    Ok(Command::Output {
        id: required_id(words, id)?,
        wait,
        follow,
    })
}

fn parse_kill(words: &mut Words<'_>, options: &mut ClientOptions) -> Result<Command, Usage> {
    let mut id = None;
    let mut signal = "terminate".to_string();
    while let Some(word) = words.next() {
        let (flag, inline) = split_flag(word);
        if words.common(flag, inline, options)? {
            continue;
        }
        match flag {
            "--signal" | "-s" => {
                signal = words.value(flag, inline)?;
                if !matches!(signal.as_str(), "terminate" | "kill" | "interrupt") {
                    return Err(usage(
                        words.command,
                        format!("--signal takes terminate, kill or interrupt, got \"{signal}\""),
                    ));
                }
            }
            _ => set_id(words, &mut id, word)?,
        }
    }
    Ok(Command::Kill {
        id: required_id(words, id)?,
        signal,
    })
}

fn parse_tools(words: &mut Words<'_>, options: &mut ClientOptions) -> Result<Command, Usage> {
    let mut schema = false;
    while let Some(word) = words.next() {
        let (flag, inline) = split_flag(word);
        if words.common(flag, inline, options)? {
            continue;
        }
        match flag {
            "--schema" => {
                words.no_inline(flag, inline)?;
                schema = true;
            }
            _ => return Err(words.unknown(word)),
        }
    }
    Ok(Command::Tools { schema })
}

// ---------------------------------------------------------------------------------------------
// Running

/// Why a client subcommand failed.
#[derive(Debug)]
enum Failure {
    /// An error answer or no answer.
    Api(ApiError),
    /// Writing to stdout failed (other than a closed pipe, which ends the output quietly).
    Output(io::Error),
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Failure::Api(e)
    }
}

/// Writes `text`; a closed pipe (`procwarden ps | head -1`) is not an error.
fn emit(out: &mut dyn Write, text: &str) -> Result<(), Failure> {
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(Failure::Output(e)),
        _ => Ok(()),
    }
}

/// Writes `value` as one line of JSON.
fn emit_json(out: &mut dyn Write, value: &impl Serialize) -> Result<(), Failure> {
    let mut line = serde_json::to_string(value).map_err(|e| Failure::Output(e.into()))?;
    line.push('\n');
    emit(out, &line)
}

/// Runs a client subcommand; returns the exit code.
fn execute(
    client: &Client,
    command: &Command,
    json: bool,
    out: &mut dyn Write,
) -> Result<u8, Failure> {
    match command {
        Command::Exec {
            timeout,
            workdir,
            background,
            command,
        } => exec(
            client,
            command,
            timeout.as_ref(),
            workdir.as_deref(),
            *background,
            json,
            out,
        ),
        Command::Ps { limit, wide } => {
            let list = client.list(*limit)?;
            if json {
                emit_json(out, &list)?;
            } else {
                let columns = (!wide).then(|| {
                    env_value("COLUMNS")
                        .and_then(|c| c.parse::<usize>().ok())
                        .filter(|&c| c > 0)
                        .unwrap_or(DEFAULT_COLUMNS)
                });
                emit(out, &ps_table(&list.processes, unix_now(), columns))?;
            }
            Ok(0)
        }
        Command::Output { id, wait, follow } => output(client, id, *wait, *follow, json, out),
        Command::Kill { id, signal } => {
            let answer = client.signal(id, signal)?;
            if json {
                emit_json(out, &answer)?;
            } else {
                emit(out, &format!("{}\n", answer.message))?;
            }
            Ok(0)
        }
        Command::Tools { schema } => {
            let definitions = tools::definitions();
            if *schema || json {
                let mut text = serde_json::to_string_pretty(&definitions)
                    .map_err(|e| Failure::Output(e.into()))?;
                text.push('\n');
                emit(out, &text)?;
            } else {
                emit(out, &tools_summary(&definitions))?;
            }
            Ok(0)
        }
    }
}

/// Prints an output answer: its text, or its JSON.
fn show(out: &mut dyn Write, answer: &api::OutputResponse, json: bool) -> Result<(), Failure> {
    if json {
        emit_json(out, answer)
    } else {
        emit(out, &answer.output)
    }
}

/// `d` rounded up to whole milliseconds (a wait the server would round down to 0 ms would
/// otherwise come back at once, again and again, just before a deadline).
fn ceil_millis(d: Duration) -> Duration {
    let ms = d.as_nanos().div_ceil(1_000_000);
    Duration::from_millis(u64::try_from(ms).unwrap_or(u64::MAX))
}

fn exec(
    client: &Client,
    command: &str,
    timeout: Option<&(Duration, String)>,
    workdir: Option<&str>,
    background: bool,
    json: bool,
    out: &mut dyn Write,
) -> Result<u8, Failure> {
    let server_timeout = timeout.map(|(d, _)| {
        if background {
            *d
        } else {
            *d + EXEC_SERVER_BACKSTOP
        }
    });
    let request = api::StartRequest {
        command: Some(command.to_string()),
        workdir: workdir.map(str::to_string),
        background: Some(background),
        timeout_ms: server_timeout.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        ..api::StartRequest::default()
    };
    let started_at = Instant::now();
    let started = client.start(&request)?;
    if background {
        if json {
            emit_json(out, &started)?;
        } else {
            emit(out, &format!("{}\n", started.id))?;
        }
        return Ok(0);
    }
    let id = started.id.as_str();
    let still_running = |e: ApiError| -> Failure {
        Failure::Api(ApiError {
            message: format!(
                "{} Process {id} may still be running (procwarden output {id}).",
                e.message
            ),
            ..e
        })
    };
    let deadline = timeout.map(|(d, _)| started_at + *d);
    loop {
        let wait = match deadline {
            Some(deadline) => ceil_millis(deadline.saturating_duration_since(Instant::now())),
            None => LONG_POLL,
        };
        let answer = client
            .output(id, None, Some(wait.min(LONG_POLL)))
            .map_err(still_running)?;
        if !answer.running {
            show(out, &answer, json)?;
            return Ok(exit_status(&answer));
        }
        if let (Some(deadline), Some((_, text))) = (deadline, timeout)
            && Instant::now() >= deadline
        {
            return timed_out(client, id, text, json, out);
        }
    }
}

/// `exec --timeout` expired: SIGKILL the group, print the final output, exit 124 (or the
/// process's own status if it exited just before the signal).
fn timed_out(
    client: &Client,
    id: &str,
    timeout: &str,
    json: bool,
    out: &mut dyn Write,
) -> Result<u8, Failure> {
    let killed = match client.signal(id, "kill") {
        Ok(_) => true,
        Err(e) if e.status == Some(409) => false, // it exited on its own meanwhile
        Err(e) => return Err(e.into()),
    };
    let answer = client.output(id, None, Some(KILL_SETTLE))?;
    show(out, &answer, json)?;
    if !killed && !answer.running {
        return Ok(exit_status(&answer));
    }
    if answer.running {
        eprintln!(
            "procwarden: timed out after {timeout}; sent SIGKILL to process {id}, which still runs"
        );
    } else {
        eprintln!("procwarden: timed out after {timeout}; process {id} was killed");
    }
    Ok(EXIT_TIMED_OUT)
}

fn output(
    client: &Client,
    id: &str,
    wait: bool,
    follow: bool,
    json: bool,
    out: &mut dyn Write,
) -> Result<u8, Failure> {
    if follow {
        let mut cursor = 0;
        loop {
            let answer = client.output(id, Some(cursor), Some(LONG_POLL))?;
            if json {
                emit_json(out, &answer)?;
            } else {
                emit(out, &answer.output)?;
            }
            cursor = answer.next_cursor;
            if !answer.running {
                return Ok(exit_status(&answer));
            }
        }
    }
    let answer = if wait {
        loop {
            let answer = client.output(id, None, Some(LONG_POLL))?;
            if !answer.running {
                break answer;
            }
        }
    } else {
        client.output(id, None, None)?
    };
    show(out, &answer, json)?;
    Ok(if answer.running {
        0
    } else {
        exit_status(&answer)
    })
}

/// The exit code that stands for an exited process's status.
fn exit_status(answer: &api::OutputResponse) -> u8 {
    if answer.timed_out == Some(true) {
        return EXIT_TIMED_OUT;
    }
    if let Some(name) = &answer.signal {
        return signal_number(name).map_or(EXIT_STATUS_UNKNOWN, |n| EXIT_SIGNAL_BASE + n);
    }
    answer
        .exit_code
        .and_then(|code| u8::try_from(code).ok())
        .unwrap_or(EXIT_STATUS_UNKNOWN)
}

/// The number of a signal named as the server names them (`"SIGKILL"`, `"SIGRTMIN+3"`,
/// `"SIG40"`).
fn signal_number(name: &str) -> Option<u8> {
    let number = name
        .strip_prefix("SIG")
        .and_then(|n| n.parse::<i32>().ok())
        .or_else(|| (1..=MAX_SIGNAL_NUMBER).find(|&n| crate::sys::signal_name(n) == name))?;
    u8::try_from(number)
        .ok()
        .filter(|&n| (1..=MAX_SIGNAL_NUMBER).contains(&i32::from(n)))
}

/// Seconds since the epoch, by this machine's clock.
fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// `850ms`, `12s`, `3m05s`, `2h03m`, `3d04h`.
fn human_duration(ms: u64) -> String {
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let s = ms / 1000;
    if s < 60 {
        return format!("{s}s");
    }
    let m = s / 60;
    if m < 60 {
        return format!("{m}m{:02}s", s % 60);
    }
    let h = m / 60;
    if h < 24 {
        return format!("{h}h{:02}m", m % 60);
    }
    format!("{}d{:02}h", h / 24, h % 24)
}

/// The STATUS column.
fn status_text(p: &api::ProcessInfo) -> String {
    if p.running {
        "running".into()
    } else if p.timed_out == Some(true) {
        "timed out".into()
    } else if let Some(signal) = &p.signal {
        signal.clone()
    } else {
        match p.exit_code {
            Some(code) => format!("exit {code}"),
            None => "exited".into(),
        }
    }
}

/// The `ps` table; `columns: None` never cuts the command.
fn ps_table(processes: &[api::ProcessInfo], now_unix: i64, columns: Option<usize>) -> String {
    let header = ["ID", "PID", "STATUS", "TIME"];
    let rows: Vec<[String; 5]> = processes
        .iter()
        .map(|p| {
            let time = if p.running {
                // Start times are whole seconds: a younger process shows as 0s, not 0ms.
                let age = u64::try_from(now_unix.saturating_sub(p.started_at_unix)).unwrap_or(0);
                if age == 0 {
                    "0s".into()
                } else {
                    human_duration(age.saturating_mul(1000))
                }
            } else {
                p.duration_ms.map_or_else(|| "-".into(), human_duration)
            };
            let command: String = p
                .command
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            [
                p.id.clone(),
                p.pid.map_or_else(|| "-".into(), |pid| pid.to_string()),
                status_text(p),
                time,
                command,
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let used: usize = widths.iter().sum::<usize>() + 2 * widths.len();
    let command_width = columns.map(|c| c.saturating_sub(used).max(MIN_COMMAND_COLUMNS));
    let line = |cells: [&str; 5]| {
        let command = match command_width {
            Some(width) if cells[4].chars().count() > width => {
                let mut cut: String = cells[4].chars().take(width - 1).collect();
                cut.push('…');
                cut
            }
            _ => cells[4].to_string(),
        };
        format!(
            "{:<w0$}  {:>w1$}  {:<w2$}  {:>w3$}  {command}\n",
            cells[0],
            cells[1],
            cells[2],
            cells[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3],
        )
    };
    let mut table = line([header[0], header[1], header[2], header[3], "COMMAND"]);
    for row in &rows {
        table.push_str(&line([&row[0], &row[1], &row[2], &row[3], &row[4]]));
    }
    table
}

/// `tools` without `--schema`: each tool's name and the first sentence of its description.
fn tools_summary(definitions: &serde_json::Value) -> String {
    let mut text = String::new();
    for tool in definitions.as_array().into_iter().flatten() {
        let name = tool["name"].as_str().unwrap_or_default();
        let description = tool["description"].as_str().unwrap_or_default();
        let first = description
            .split_once(". ")
            .map_or(description, |(first, _)| first)
            .trim_end_matches('.');
        text.push_str(&format!("{name:<16}{first}.\n"));
    }
    text
}

/// Joins the lines of a message into one.
fn one_line(text: &str) -> String {
    text.split(['\n', '\r'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn client(list: &[&str]) -> (ClientOptions, Command) {
        match parse(&args(list)) {
            Ok(Invocation::Client { options, command }) => (options, command),
            other => panic!("{list:?}: {other:?}"),
        }
    }

    fn usage_error(list: &[&str]) -> Usage {
        match parse(&args(list)) {
            Err(usage) => usage,
            other => panic!("{list:?}: expected a usage error, got {other:?}"),
        }
    }

    #[test]
    fn exec_joins_the_words_after_the_separator() {
        let (options, command) = client(&[
            "--url",
            "http://h:1",
            "exec",
            "--timeout=1.5s",
            "--workdir",
            "/tmp",
            "--json",
            "--",
            "echo",
            "a  b",
            "--help",
        ]);
        assert_eq!(
            options,
            ClientOptions {
                url: Some("http://h:1".into()),
                json: true
            }
        );
        assert_eq!(
            command,
            Command::Exec {
                timeout: Some((Duration::from_millis(1500), "1.5s".into())),
                workdir: Some("/tmp".into()),
                background: false,
                command: "echo a  b --help".into(),
            }
        );
        // Without `--` the command starts at the first word that is not an option.
        let (_, command) = client(&["exec", "--background", "ls", "-la", "--json"]);
        assert_eq!(
            command,
            Command::Exec {
                timeout: None,
                workdir: None,
                background: true,
                command: "ls -la --json".into(),
            }
        );
        assert_eq!(
            parse(&args(&["exec", "--timeout", "5s", "--help"])),
            Ok(Invocation::Help(EXEC_USAGE))
        );
        assert!(matches!(
            parse(&args(&["exec", "--", "ls", "--help"])),
            Ok(Invocation::Client { .. })
        ));
    }

    #[test]
    fn other_subcommands_parse() {
        assert_eq!(
            client(&["ps"]).1,
            Command::Ps {
                limit: 1000,
                wide: false
            }
        );
        assert_eq!(
            client(&["ps", "--limit", "5", "--wide", "--url=unix:/s"]),
            (
                ClientOptions {
                    url: Some("unix:/s".into()),
                    json: false
                },
                Command::Ps {
                    limit: 5,
                    wide: true
                }
            )
        );
        assert_eq!(
            client(&["output", "--follow", "abc"]).1,
            Command::Output {
                id: "abc".into(),
                wait: false,
                follow: true
            }
        );
        assert_eq!(
            client(&["kill", "abc", "--signal", "kill"]).1,
            Command::Kill {
                id: "abc".into(),
                signal: "kill".into()
            }
        );
        assert_eq!(
            client(&["tools", "--schema"]).1,
            Command::Tools { schema: true }
        );
        assert_eq!(parse(&args(&["ps", "-h"])), Ok(Invocation::Help(PS_USAGE)));
        assert_eq!(
            parse(&args(&["help", "kill"])),
            Ok(Invocation::Help(KILL_USAGE))
        );
        assert_eq!(
            parse(&args(&["serve", "--listen", "x"])),
            Ok(Invocation::Serve(args(&["--listen", "x"])))
        );
    }

    #[test]
    fn usage_errors_name_the_problem() {
        for (list, needle) in [
            (&[][..], "a command is required"),
            (&["frobnicate"], "unknown command \"frobnicate\""),
            (&["exec"], "a command is required after --"),
            (&["exec", "--"], "a command is required after --"),
            (
                &["exec", "--timeout", "soon", "--", "ls"],
                "invalid duration \"soon\"",
            ),
            (&["exec", "--timeout", "0s", "--", "ls"], "more than 0"),
            (&["exec", "--nope", "--", "ls"], "unknown option \"--nope\""),
            (&["ps", "--limit", "0"], "--limit takes a number"),
            (&["output"], "a process ID is required"),
            (&["output", "a", "b"], "unexpected argument \"b\""),
            (
                &["kill", "a", "--signal", "hup"],
                "--signal takes terminate",
            ),
            (&["kill", "a", "--signal"], "--signal needs a value"),
            (&["--url"], "--url needs a value"),
            (&["--url", "x", "serve"], "serve takes no --url"),
            (&["tools", "--schema=yes"], "--schema takes no value"),
        ] {
            let error = usage_error(list);
            assert!(error.message.contains(needle), "{list:?}: {error}");
            assert!(!error.to_string().contains('\n'), "{list:?}: one line");
        }
        assert_eq!(
            usage_error(&["ps", "--bad"]).to_string(),
            "unknown option \"--bad\" (see procwarden ps --help)"
        );
    }

    fn exited(code: Option<i32>, signal: Option<&str>, timed_out: bool) -> api::OutputResponse {
        api::OutputResponse {
            output: String::new(),
            truncated: None,
            running: false,
            exit_code: code,
            signal: signal.map(str::to_string),
            timed_out: timed_out.then_some(true),
            next_cursor: 0,
        }
    }

    #[test]
    fn exit_statuses_map_like_a_shell() {
        assert_eq!(exit_status(&exited(Some(0), None, false)), 0);
        assert_eq!(exit_status(&exited(Some(42), None, false)), 42);
        assert_eq!(exit_status(&exited(Some(-1), Some("SIGKILL"), false)), 137);
        assert_eq!(exit_status(&exited(Some(-1), Some("SIGTERM"), false)), 143);
        assert_eq!(exit_status(&exited(Some(-1), Some("SIGINT"), false)), 130);
        assert_eq!(exit_status(&exited(Some(-1), Some("SIGTERM"), true)), 124);
        assert_eq!(exit_status(&exited(Some(-1), None, false)), 255);
        assert_eq!(exit_status(&exited(Some(-1), Some("SIGWHAT"), false)), 255);
        assert_eq!(signal_number("SIG40"), Some(40));
        assert_eq!(signal_number("SIG0"), None);
        assert_eq!(signal_number("SIG200"), None);
        assert_eq!(signal_number("SIGHUP"), Some(1));
        #[cfg(target_os = "linux")]
        assert_eq!(
            signal_number("SIGRTMIN+2")
                .map(|n| crate::sys::signal_name(i32::from(n)).into_owned())
                .as_deref(),
            Some("SIGRTMIN+2")
        );
    }

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(human_duration(850), "850ms");
        assert_eq!(human_duration(12_400), "12s");
        assert_eq!(human_duration(185_000), "3m05s");
        assert_eq!(human_duration(7_380_000), "2h03m");
        assert_eq!(human_duration(273_600_000), "3d04h");
    }

    fn info(id: &str, running: bool, command: &str) -> api::ProcessInfo {
        api::ProcessInfo {
            id: id.into(),
            command: command.into(),
            workdir: "/".into(),
            background: false,
            running,
            exit_code: (!running).then_some(3),
            started_at_unix: 1000,
            exited_at_unix: (!running).then_some(1001),
            pid: Some(4242),
            signal: None,
            timed_out: None,
            duration_ms: (!running).then_some(1500),
        }
    }

    #[test]
    fn the_ps_table_fits_the_width() {
        let list = [
            info("aaaa", true, "sleep 30"),
            info("bbbb", false, &format!("echo {}\nnext", "x".repeat(100))),
        ];
        assert!(ps_table(&list, 1000, None).contains("aaaa  4242  running    0s  sleep 30"));
        let table = ps_table(&list, 1065, Some(60));
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "ID     PID  STATUS    TIME  COMMAND");
        assert_eq!(lines[1], "aaaa  4242  running  1m05s  sleep 30");
        assert!(
            lines[2].starts_with("bbbb  4242  exit 3      1s  echo xxx"),
            "{table}"
        );
        assert!(lines[2].ends_with('…'), "{table}");
        assert!(lines.iter().all(|l| l.chars().count() <= 60), "{table}");
        let wide = ps_table(&list, 1065, None);
        assert!(
            wide.contains(&format!("echo {} next", "x".repeat(100))),
            "{wide}"
        );
    }

    #[test]
    fn messages_become_one_line() {
        assert_eq!(one_line("a\nb\r\n  c \n"), "a b c");
    }
}
