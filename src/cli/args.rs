//! The one argument definition of the command line: the usage texts, and the parser that turns
//! the words after the program name into an [`Invocation`], for `serve` and the client
//! subcommands alike. Every usage error is a [`Usage`]: one line that ends with the help to
//! read, and exit code [`EXIT_USAGE`].
//!
//! Every subcommand reads its words through [`Words`], so that all of them spell flags the same
//! way: `--flag value` or `--flag=value` for a flag with a value, a bare `--flag` for a switch,
//! `-h`/`--help` anywhere among the options for the subcommand's help.

use std::path::PathBuf;
use std::time::Duration;

use super::{EXIT_USAGE, INTERRUPT_GRACE, MIN_ID_PREFIX};
use crate::api;
use crate::mcp::McpOptions;
use crate::serve::ServeOptions;
use crate::tools;

// ---------------------------------------------------------------------------------------------
// The usage texts

const USAGE: &str = "\
procwarden: a process runner for AI agents

Usage:
  procwarden serve [OPTIONS]                  run the HTTP agent
  procwarden mcp [OPTIONS]                    an MCP server on stdin/stdout (agents' shell)
  procwarden exec [OPTIONS] -- COMMAND...     run a command, print its output, exit with its status
  procwarden ps [--limit N] [--wide]          list processes
  procwarden output ID [--wait] [--follow]    print a process's output
  procwarden output ID --until REGEX          wait for a line that matches, print the output
  procwarden wait ID...                       wait until any of the processes exits
  procwarden log ID [--offset N] [--search RE]  print or search a process's full log
  procwarden kill ID... [--signal SIGNAL]     signal each process's whole group
  procwarden exec --tty -- COMMAND...         run it under a terminal, attached to this one
  procwarden attach ID                        attach this terminal to a process (Ctrl-] d detaches)
  procwarden input ID [--close] [TEXT | -]    send input to a process
  procwarden tools [--schema]                 the agent tools (no server needed)
  procwarden completions bash|zsh|fish        a shell completion script (no server needed)
  procwarden manpage                          the manual page, as roff (no server needed)
  procwarden --version | --help

Client options (every command but serve and mcp; `procwarden COMMAND --help` for the others):
  --url URL          the agent's base URL: http://HOST:PORT or unix:/path
                     (default: $PROCWARDEN_URL, else http://127.0.0.1:7717)
  --token-file FILE  read the bearer token from FILE (default: $PROCWARDEN_TOKEN)
  --json             print the API's JSON answer instead of the human form
An ID may be given as a unique prefix of at least 4 characters (as `ps` shows it).

Exit codes: 1 error answer or no answer, 2 usage error. exec and output exit with the
process's status: its exit code, 128+N for signal N, 124 for a timeout; exec exits 130
when Ctrl-C interrupted it.";

const SERVE_USAGE: &str = "\
Usage: procwarden serve [--listen ADDR] [--token-file FILE] [--allow-unauthenticated]
                        [--workdir DIR] [--env KEY=VALUE]... [--max-running N]
                        [--max-connections N] [--max-exited N] [--max-tracked N]
                        [--log-format human|json] [--cgroup auto|off|PATH]
                        [--child-oom-score-adj N] [--log-dir DIR] [--log-max-bytes N]
                        [--log-max-total-bytes N]

  --listen ADDR            HOST:PORT (default 127.0.0.1:7717; port 0 picks one) or unix:/path
  --token-file FILE        require `Authorization: Bearer <token>`; the token is read from FILE
                           (PROCWARDEN_TOKEN is used when no file is given)
  --allow-unauthenticated  allow a non-loopback address without a token
  --workdir DIR            default working directory for processes (when it exists)
  --env KEY=VALUE          extra environment variable for every process (repeatable)
  --max-running N          most processes running at once (default 256)
  --max-connections N      most connections served at once (default 1024; lowered to fit
                           the file descriptor limit). At the limit an idle or slow
                           connection is closed, else the oldest blocked wait is answered
  --cgroup auto|off|PATH   a cgroup v2 directory per process (default auto: a `procwarden`
                           child of the server's own cgroup when it may create one; PATH: a
                           cgroup2 directory to use instead; off: process groups only)
  --child-oom-score-adj N  children's oom_score_adj above the server's own (default 500,
                           0 leaves it unchanged), so the OOM killer takes them first
  --child-nice N           children's nice value, -20 to 19 (default: the server's own)
  --max-exited N           most exited processes kept with their output (default 1024)
  --max-tracked N          most tracked-start identities remembered (default 16384); past
                           it new tracked starts are refused (429)
  --log-format FORMAT      human (default) or json: one JSON object per log line; access
                           lines carry method, route, status, duration_ms, chat_id, process_id
  --log-dir DIR            where full logs (`\"log\": true` at start) go, made with mode 0700
                           (default: a directory private to this server, removed at exit)
  --log-max-bytes N        largest log file in bytes (default 1073741824, 1 GiB); past it the
                           file stops growing and answers say log_truncated
  --log-max-total-bytes N  most bytes all log files may hold (default 8589934592, 8 GiB);
                           past it a start with a log answers 507

Prints `listening on <address>` once listening. SIGTERM or SIGINT stops it gracefully.
Logs go to stderr; RUST_LOG sets the level (default info).";

const MCP_USAGE: &str = "\
Usage: procwarden mcp [--url URL] [--workdir DIR] [--max-running N]

A Model Context Protocol server on stdin and stdout (newline-delimited JSON-RPC 2.0, protocol
versions 2025-06-18 and 2025-03-26) offering the agent tools: execute, process_output,
process_list, process_signal, process_input, process_wait (see `procwarden tools`). Set it up in an agent
with, e.g., `claude mcp add procwarden -- procwarden mcp`.

Without --url it runs processes itself; they are all ended when stdin closes, or on SIGTERM or
SIGINT. With --url it drives a running `procwarden serve`, whose processes stay there.

  --url URL          drive the agent at URL (http://HOST:PORT or unix:/path) instead;
                     the bearer token is read from $PROCWARDEN_TOKEN ($PROCWARDEN_URL is
                     not read: only --url selects an agent)
  --workdir DIR      default working directory of processes (an existing directory;
                     default: the current directory); not with --url
  --max-running N    most processes running at once (default 256); not with --url

Only JSON-RPC is written to stdout. Logs go to stderr; RUST_LOG sets the level (default info).";

const EXEC_USAGE: &str = "\
Usage: procwarden exec [--timeout D] [--workdir DIR] [--background] [--detach-on-interrupt]
                       [--interrupt-grace D] [--url URL] [--json] -- COMMAND...
       procwarden exec --tty [--timeout D] [--workdir DIR] [--background] -- COMMAND...

Runs COMMAND through the agent: its words joined with single spaces and run by `sh -c` on the
agent's host (as ssh does), stdout and stderr in one stream, stdin empty. Waits for the exit,
prints the output (the first and last 16 KiB when it is longer, with an omission marker, and
a note on stderr naming what was cut), and exits with the command's status: its exit code,
128+N when signal N ended it.

Ctrl-C sends the process group SIGINT (interrupt) and waits for it to exit: after the interrupt
grace, or at a second Ctrl-C, it gets SIGKILL. Then the output so far is printed and the exit
code is 130.

  --timeout D            the agent ends the process after D (e.g. 30s, 5m, 250ms): SIGTERM,
                         then SIGKILL 2 s later; it is recorded as timed out, its output is
                         printed, and the exit code is 124 (as timeout(1)). Should the agent
                         not have ended it 5 s after D, this command sends SIGKILL itself
  --workdir DIR          absolute working directory on the agent's host. Default: this
                         command's current directory when the agent is on this host (a
                         loopback address or a unix socket), else the agent's own default
                         (which --workdir '' asks for on this host too)
  --background           start it and print its id at once (exit 0); with --timeout the agent
                         ends it after D (SIGTERM, then SIGKILL 2 s later)
  --detach-on-interrupt  Ctrl-C leaves the process running: prints its id and how to end it
                         (procwarden kill ID), and exits 130
  --interrupt-grace D    how long the process has after Ctrl-C before SIGKILL (default 2s)
  --json                 print the final output answer (or the start answer) as JSON
  --tty, -t              run it under a new terminal on the agent's host, the size of this
                         one, and attach this terminal to it as `procwarden attach` does
                         (keys, Ctrl-C included, go to the process; Ctrl-] then d detaches);
                         with --background, only start it and print its id";

const ATTACH_USAGE: &str = "\
Usage: procwarden attach ID [--url URL]

Attaches this terminal to a running process that takes input (started with a terminal, as
exec's tty option does, or with a stdin pipe): its kept output is shown, then what it writes as it
comes, and what is typed goes to it. ID may be a unique prefix of at least 4 characters.

With a terminal process this terminal is put in raw mode (restored on every way out): every
key is the process's, and Ctrl-C reaches it as its terminal makes it, SIGINT to its foreground
group. The process's terminal takes this one's size, now and whenever it changes. With a pipe
process lines are sent as they are entered, Ctrl-D closes its input, and Ctrl-C sends it
SIGINT.

Ctrl-] then d detaches: the process keeps running (Ctrl-] twice sends one Ctrl-]). SIGTERM,
SIGHUP or SIGQUIT to this command detaches too. Once the process exits, exits with its status
as exec does.";

const INPUT_USAGE: &str = "\
Usage: procwarden input ID [--close] [TEXT | -] [--url URL] [--json]

Sends input to a process started with a stdin pipe or a terminal: TEXT as it is (no line end is
added: a program reading lines wants $'y\\n'), or with `-` this command's stdin, sent as it
arrives until its end. The answer comes once the input is queued, before the process reads it
(at most 1 MiB may be waiting). ID may be a unique prefix of at least 4 characters.

  --close     then close the process's input: end of file for a pipe, the end-of-file
              character for a terminal; alone, only closes it
  --json      print the input answer (queued_bytes, pending_bytes) as JSON";

const PS_USAGE: &str = "\
Usage: procwarden ps [--limit N] [--wide] [--url URL] [--json]

Lists processes, running first, then newest first: ID, PID, STATUS (running, exit N, the
signal that ended it, or timed out), TIME (how long it has run, or ran) and COMMAND, cut to
the terminal width ($COLUMNS, else 120).

  --limit N   at most N processes (1 to 1000, default 1000)
  --wide      never cut COMMAND
  --json      print the list answer as JSON";

const OUTPUT_USAGE: &str = "\
Usage: procwarden output ID [--wait] [--follow] [--until REGEX] [--url URL] [--json]

Prints a process's output (the first and last 16 KiB, with an omission marker between).
Without options it is a snapshot. Once the process has exited, exits with its status as exec
does (exit code, 128+N for signal N, 124 for a timeout); while it runs, exits 0. ID may be a
unique prefix of at least 4 characters.

  --wait      wait until the process exits, then print its output
  --follow    print output as it arrives until the process exits
  --until RE  wait until a line of the output matches the regular expression RE (Rust regex
              syntax; lines in the omitted middle count too), or the process exits, then
              print the output and the matching line's offset on stderr; exits 0 when a line
              matched, else 1  --json      print the output answer as JSON (with --follow, one answer per line)";

const KILL_USAGE: &str = "\
Usage: procwarden kill ID... [--signal SIGNAL | -s SIGNAL | -SIGNAL] [--url URL] [--json]

Sends a signal to each process's whole group: terminate (SIGTERM, the default), kill (SIGKILL),
interrupt (SIGINT), stop (freeze) or continue (thaw). SIGNAL may also be spelled as kill(1)
does, in any case: TERM, SIGTERM or 15; KILL, SIGKILL or 9; INT, SIGINT or 2; STOP, SIGSTOP;
CONT, SIGCONT (so `kill -9 ID` and `kill -s KILL ID` work).
Each ID may be a unique prefix of at least 4 characters. Every ID is tried; the exit code is 1
when any of them failed.

  --json      print each answer as JSON";

const COMPLETIONS_USAGE: &str = "\
Usage: procwarden completions bash|zsh|fish

Prints a completion script for the shell, made from the same table of subcommands and flags
that the parser reads. Load it with, e.g.:
  bash:  source <(procwarden completions bash)   (or save it as
         /usr/share/bash-completion/completions/procwarden)
  zsh:   procwarden completions zsh > \"${fpath[1]}/_procwarden\"
  fish:  procwarden completions fish > ~/.config/fish/completions/procwarden.fish";

const MANPAGE_USAGE: &str = "\
Usage: procwarden manpage

Prints the manual page procwarden(1) as roff, made from the same help texts that --help
prints. Read it with `procwarden manpage | man -l -`.";

const TOOLS_USAGE: &str = "\
Usage: procwarden tools [--schema]

Lists the agent tools (execute, process_output, process_list, process_signal,
process_input, process_log_search, process_log_read, process_wait). No server is needed.

  --schema, --json   print the tool definitions as JSON: name, description, JSON Schema
                     of the arguments (parameters) and of the result (outputSchema), and
                     annotations (the MCP hints; `procwarden mcp` lists exactly these)";

/// Every subcommand: its name and its help.
pub(super) const SUBCOMMANDS: [(&str, &str); 13] = [
    ("serve", SERVE_USAGE),
    ("mcp", MCP_USAGE),
    ("exec", EXEC_USAGE),
    ("ps", PS_USAGE),
    ("output", OUTPUT_USAGE),
    ("kill", KILL_USAGE),
    ("attach", ATTACH_USAGE),
    ("input", INPUT_USAGE),
    ("wait", WAIT_USAGE),
    ("log", LOG_USAGE),
    ("tools", TOOLS_USAGE),
    ("completions", COMPLETIONS_USAGE),
    ("manpage", MANPAGE_USAGE),
];

/// The overview that `procwarden --help` prints (the man page's synopsis too).
pub(super) const OVERVIEW: &str = USAGE;

/// The flags of `exec` that take a value (so that the word after one is not its command).
const EXEC_VALUE_FLAGS: [&str; 5] = [
    "--timeout",
    "--workdir",
    "--url",
    "--token-file",
    "--interrupt-grace",
];

/// What a flag's value is, for the shell completions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Value {
    /// A switch: no value.
    None,
    /// A file name.
    File,
    /// A directory name.
    Dir,
    /// One of these words.
    OneOf(&'static [&'static str]),
    /// Anything else (a number, a duration, an address).
    Text,
}

/// One flag of a subcommand, for the shell completions and the man page: its spellings
/// (long first) and its value. The parser's match arms take the same spellings; a unit test
/// checks that every flag here is accepted and named in the subcommand's help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Flag {
    /// `--long` and any other spellings (`-s`).
    pub(super) names: &'static [&'static str],
    /// What follows it.
    pub(super) value: Value,
}

const fn flag(names: &'static [&'static str], value: Value) -> Flag {
    Flag { names, value }
}

/// The options every client subcommand takes (before or after the subcommand).
pub(super) const CLIENT_FLAGS: &[Flag] = &[
    flag(&["--url"], Value::Text),
    flag(&["--token-file"], Value::File),
    flag(&["--json"], Value::None),
];

/// What the words after a subcommand's flags are, for the shell completions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Positional {
    /// No words.
    Nothing,
    /// Process ids (completed from `procwarden ps`).
    Ids,
    /// A command line (completed as commands).
    CommandLine,
    /// One of these words.
    OneOf(&'static [&'static str]),
}

/// One subcommand in the table the completions and the man page are made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Spec {
    /// Its name (as in [`SUBCOMMANDS`]).
    pub(super) name: &'static str,
    /// Whether it takes [`CLIENT_FLAGS`].
    pub(super) client: bool,
    /// Its own flags (beside `--help`).
    pub(super) flags: &'static [Flag],
    /// What its other words are.
    pub(super) positional: Positional,
}

const fn spec(
    name: &'static str,
    client: bool,
    flags: &'static [Flag],
    positional: Positional,
) -> Spec {
    Spec {
        name,
        client,
        flags,
        positional,
    }
}

/// The flags of every subcommand, for the shell completions (`procwarden completions`); one
/// entry per member of [`SUBCOMMANDS`], in the same order.
pub(super) const FLAGS: &[Spec] = &[
    spec(
        "serve",
        false,
        &[
            flag(&["--listen"], Value::Text),
            flag(&["--token-file"], Value::File),
            flag(&["--allow-unauthenticated"], Value::None),
            flag(&["--workdir"], Value::Dir),
            flag(&["--env"], Value::Text),
            flag(&["--max-running"], Value::Text),
            flag(&["--max-connections"], Value::Text),
            flag(&["--cgroup"], Value::Text),
            flag(&["--child-oom-score-adj"], Value::Text),
            flag(&["--child-nice"], Value::Text),
            flag(&["--log-format"], Value::OneOf(&["human", "json"])),
            flag(&["--max-exited"], Value::Text),
            flag(&["--max-tracked"], Value::Text),
            flag(&["--log-dir"], Value::Dir),
            flag(&["--log-max-bytes"], Value::Text),
            flag(&["--log-max-total-bytes"], Value::Text),
        ],
        Positional::Nothing,
    ),
    spec(
        "mcp",
        false,
        &[
            flag(&["--url"], Value::Text),
            flag(&["--workdir"], Value::Dir),
            flag(&["--max-running"], Value::Text),
        ],
        Positional::Nothing,
    ),
    spec(
        "exec",
        true,
        &[
            flag(&["--timeout"], Value::Text),
            flag(&["--workdir"], Value::Dir),
            flag(&["--background"], Value::None),
            flag(&["--detach-on-interrupt"], Value::None),
            flag(&["--interrupt-grace"], Value::Text),
            flag(&["--tty", "-t"], Value::None),
        ],
        Positional::CommandLine,
    ),
    spec(
        "ps",
        true,
        &[
            flag(&["--limit"], Value::Text),
            flag(&["--wide", "-w"], Value::None),
        ],
        Positional::Nothing,
    ),
    spec(
        "output",
        true,
        &[
            flag(&["--wait"], Value::None),
            flag(&["--follow", "-f"], Value::None),
            flag(&["--until"], Value::Text),
        ],
        Positional::Ids,
    ),
    spec(
        "kill",
        true,
        &[flag(
            &["--signal", "-s"],
            Value::OneOf(&["terminate", "kill", "interrupt", "TERM", "KILL", "INT"]),
        )],
        Positional::Ids,
    ),
    spec("attach", true, &[], Positional::Ids),
    spec(
        "input",
        true,
        &[flag(&["--close"], Value::None)],
        Positional::Ids,
    ),
    spec("wait", true, &[], Positional::Ids),
    spec(
        "log",
        true,
        &[
            flag(&["--offset"], Value::Text),
            flag(&["--search"], Value::Text),
            flag(&["--limit"], Value::Text),
        ],
        Positional::Ids,
    ),
    spec(
        "tools",
        true,
        &[flag(&["--schema"], Value::None)],
        Positional::Nothing,
    ),
    spec(
        "completions",
        false,
        &[],
        Positional::OneOf(&["bash", "zsh", "fish"]),
    ),
    spec("manpage", false, &[], Positional::Nothing),
];

// ---------------------------------------------------------------------------------------------
// What the words ask for

/// What the arguments ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Invocation {
    /// Print this help and exit 0.
    Help(&'static str),
    /// Print the version and exit 0.
    Version,
    /// Run the agent.
    Serve(ServeOptions),
    /// Run the MCP server on stdin and stdout.
    Mcp(McpOptions),
    /// Print the completion script for this shell (`bash`, `zsh` or `fish`).
    Completions(&'static str),
    /// Print the man page.
    Manpage,
    /// Run a client subcommand.
    Client {
        /// The options every client subcommand takes.
        options: ClientOptions,
        /// The subcommand and its own options.
        command: Command,
    },
}

/// The options every client subcommand takes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct ClientOptions {
    /// `--url` (checked by [`check_url`]).
    pub(super) url: Option<String>,
    /// `--token-file`.
    pub(super) token_file: Option<PathBuf>,
    /// `--json`.
    pub(super) json: bool,
}

/// A client subcommand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Command {
    /// `exec`.
    Exec {
        /// The timeout and its text as given (for messages).
        timeout: Option<(Duration, String)>,
        /// `--workdir`.
        workdir: Option<String>,
        /// `--background`.
        background: bool,
        /// `--detach-on-interrupt`.
        detach_on_interrupt: bool,
        /// `--interrupt-grace` (default [`INTERRUPT_GRACE`]).
        interrupt_grace: Duration,
        /// `--tty`.
        tty: bool,
        /// The command's words joined with single spaces.
        command: String,
    },
    /// `ps`.
    Ps {
        /// `--limit`.
        limit: usize,
        /// `--wide`.
        wide: bool,
    },
    /// `output`.
    Output {
        /// The process ID.
        id: String,
        /// `--wait`.
        wait: bool,
        /// `--follow`.
        follow: bool,
    },
    /// `output --until`.
    OutputUntil {
        /// The process ID.
        id: String,
        /// The pattern.
        pattern: String,
    },
    /// `log`.
    Log {
        /// The process ID.
        id: String,
        /// `--offset`.
        offset: u64,
        /// `--search`.
        search: Option<String>,
        /// `--limit` (of a search).
        limit: u64,
    },
    /// `wait`.
    Wait {
        /// The process IDs.
        ids: Vec<String>,
    },
    /// `kill`.
    Kill {
        /// The process IDs (or unique prefixes), at least one.
        ids: Vec<String>,
        /// The wire name of the signal.
        signal: String,
    },
    /// `attach`.
    Attach {
        /// The process ID.
        id: String,
    },
    /// `input`.
    Input {
        /// The process ID.
        id: String,
        /// `--close`.
        close: bool,
        /// What to send.
        source: super::input::Source,
    },
    /// `tools`.
    Tools {
        /// `--schema`.
        schema: bool,
    },
}

impl Command {
    /// The subcommand's name, as typed.
    pub(super) fn name(&self) -> &'static str {
        match self {
            Command::Exec { .. } => "exec",
            Command::Ps { .. } => "ps",
            Command::Output { .. } | Command::OutputUntil { .. } => "output",
            Command::Wait { .. } => "wait",
            Command::Log { .. } => "log",
            Command::Kill { .. } => "kill",
            Command::Attach { .. } => "attach",
            Command::Input { .. } => "input",
            Command::Tools { .. } => "tools",
        }
    }
}

/// A usage error: a message, and the subcommand whose help explains it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Usage {
    message: String,
    command: Option<&'static str>,
}

impl Usage {
    /// A usage error of `command` (`None`: of the command line as a whole).
    pub(super) fn new(message: impl Into<String>, command: Option<&'static str>) -> Usage {
        Usage {
            message: message.into(),
            command,
        }
    }

    /// The process exit code for a usage error.
    pub(super) fn exit_code(&self) -> u8 {
        EXIT_USAGE
    }
}

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.command {
            Some(command) => write!(f, "{} (see procwarden {command} --help)", self.message),
            None => write!(f, "{} (see procwarden --help)", self.message),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reading words

/// One word as a subcommand sees it: the word, and split into `--flag` and its inline
/// `=value` (a word that is not a `--flag=value` is its own flag, without a value).
struct Arg<'a> {
    word: &'a str,
    flag: &'a str,
    inline: Option<&'a str>,
}

/// The words of the command line, read left to right, and the subcommand they belong to (for
/// the help that usage errors point to).
struct Words<'a> {
    words: &'a [String],
    next: usize,
    command: Option<&'static str>,
}

impl<'a> Words<'a> {
    fn new(words: &'a [String]) -> Self {
        Words {
            words,
            next: 0,
            command: None,
        }
    }

    fn next(&mut self) -> Option<&'a str> {
        let word = self.words.get(self.next)?;
        self.next += 1;
        Some(word)
    }

    /// The next word, split into flag and inline value.
    fn next_arg(&mut self) -> Option<Arg<'a>> {
        let word = self.next()?;
        let (flag, inline) = match word.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value)),
            _ => (word, None),
        };
        Some(Arg { word, flag, inline })
    }

    /// The next word that is not an option every client subcommand takes; those it meets on
    /// the way are recorded in `options`.
    fn next_client_arg(&mut self, options: &mut ClientOptions) -> Result<Option<Arg<'a>>, Usage> {
        while let Some(arg) = self.next_arg() {
            match arg.flag {
                "--url" => {
                    let url = self.value(&arg)?;
                    check_url(&url).map_err(|e| self.error(e))?;
                    options.url = Some(url);
                }
                "--token-file" => options.token_file = Some(PathBuf::from(self.value(&arg)?)),
                "--json" if arg.inline.is_none() => options.json = true,
                _ => return Ok(Some(arg)),
            }
        }
        Ok(None)
    }

    /// The words not read yet, left unread.
    fn remaining(&self) -> &'a [String] {
        &self.words[self.next..]
    }

    /// The words not read yet, now read.
    fn rest(&mut self) -> &'a [String] {
        let rest = self.remaining();
        self.next = self.words.len();
        rest
    }

    /// Steps back over the word just read.
    fn unread(&mut self) {
        self.next -= 1;
    }

    /// The value of a flag: inline (`--flag=value`) or the next word.
    fn value(&mut self, arg: &Arg<'_>) -> Result<String, Usage> {
        match arg.inline {
            Some(value) => Ok(value.to_string()),
            None => self
                .next()
                .map(str::to_string)
                .ok_or_else(|| self.error(format!("{} needs a value", arg.flag))),
        }
    }

    /// A switch: `true`, or an error if it was given a value.
    fn switch(&self, arg: &Arg<'_>) -> Result<bool, Usage> {
        match arg.inline {
            Some(_) => Err(self.error(format!("{} takes no value", arg.flag))),
            None => Ok(true),
        }
    }

    /// A usage error of the current subcommand.
    fn error(&self, message: impl Into<String>) -> Usage {
        Usage {
            message: message.into(),
            command: self.command,
        }
    }

    /// The error for a word the subcommand does not take.
    fn unknown(&self, word: &str) -> Usage {
        if word.starts_with('-') {
            self.error(format!("unknown option \"{word}\""))
        } else {
            self.error(format!("unexpected argument \"{word}\""))
        }
    }
}

fn is_help(word: &str) -> bool {
    word == "--help" || word == "-h"
}

/// The help of a subcommand, if there is one by that name.
fn help_of(name: &str) -> Option<(&'static str, &'static str)> {
    SUBCOMMANDS.into_iter().find(|&(known, _)| known == name)
}

/// The error for a subcommand name that is none of [`SUBCOMMANDS`].
fn unknown_command(name: &str) -> Usage {
    Usage {
        message: format!("unknown command \"{name}\""),
        command: None,
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing

/// Parses the words after the program name.
pub(super) fn parse(args: &[String]) -> Result<Invocation, Usage> {
    let mut options = ClientOptions::default();
    let mut words = Words::new(args);
    let name = match words.next_client_arg(&mut options)? {
        None => return Err(words.error("a command is required")),
        Some(arg) if is_help(arg.word) => return Ok(Invocation::Help(USAGE)),
        Some(arg) if matches!(arg.word, "--version" | "-V") => return Ok(Invocation::Version),
        Some(arg) if arg.word.starts_with('-') => return Err(words.unknown(arg.word)),
        Some(arg) => arg.word,
    };
    let (command, help) = match name {
        "version" => return Ok(Invocation::Version),
        "help" => {
            return match words.next() {
                None => Ok(Invocation::Help(USAGE)),
                Some(other) => help_of(other)
                    .map(|(_, help)| Invocation::Help(help))
                    .ok_or_else(|| unknown_command(other)),
            };
        }
        other => help_of(other).ok_or_else(|| unknown_command(other))?,
    };
    words.command = Some(command);
    if command == "serve" && options != ClientOptions::default() {
        return Err(
            words.error("serve takes no --url, --token-file or --json (it listens with --listen)")
        );
    }
    if command == "mcp" && options.token_file.is_some() {
        return Err(words.error("mcp takes no --token-file (it reads $PROCWARDEN_TOKEN)"));
    }
    if command == "mcp" && options.json {
        return Err(words.error("mcp takes no --json (it speaks JSON-RPC)"));
    }
    let wants_help = if command == "exec" {
        exec_help_before_command(words.remaining())
    } else {
        words.remaining().iter().any(|w| is_help(w))
    };
    if wants_help {
        return Ok(Invocation::Help(help));
    }
    let command = match command {
        "serve" => return parse_serve(&mut words).map(Invocation::Serve),
        "mcp" => return parse_mcp(&mut words, options.url).map(Invocation::Mcp),
        "exec" => parse_exec(&mut words, &mut options)?,
        "ps" => parse_ps(&mut words, &mut options)?,
        "output" => parse_output(&mut words, &mut options)?,
        "kill" => parse_kill(&mut words, &mut options)?,
        "wait" => parse_wait(&mut words, &mut options)?,
        "log" => parse_log(&mut words, &mut options)?,
        "attach" => parse_attach(&mut words, &mut options)?,
        "input" => parse_input(&mut words, &mut options)?,
        "tools" => parse_tools(&mut words, &mut options)?,
        "completions" => return parse_completions(&mut words, &options),
        _ => {
            no_client_options(&words, &options)?;
            return match words.next() {
                None => Ok(Invocation::Manpage),
                Some(word) => Err(words.unknown(word)),
            };
        }
    };
    Ok(Invocation::Client { options, command })
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
        takes_value = EXEC_VALUE_FLAGS.contains(&word.as_str());
    }
    false
}

fn parse_serve(words: &mut Words<'_>) -> Result<ServeOptions, Usage> {
    let mut opts = ServeOptions::default();
    while let Some(arg) = words.next_arg() {
        match arg.flag {
            "--listen" => opts.listen = words.value(&arg)?,
            "--token-file" => opts.token_file = Some(PathBuf::from(words.value(&arg)?)),
            "--allow-unauthenticated" => opts.allow_unauthenticated = words.switch(&arg)?,
            "--workdir" => opts.workdir = Some(PathBuf::from(words.value(&arg)?)),
            "--env" => {
                let pair = words.value(&arg)?;
                match pair.split_once('=') {
                    Some((key, val))
                        if !key.is_empty() && !key.contains('\0') && !val.contains('\0') =>
                    {
                        opts.env.push((key.to_string(), val.to_string()));
                    }
                    _ => {
                        return Err(words.error(format!(
                            "--env takes KEY=VALUE with a non-empty KEY, got \"{pair}\""
                        )));
                    }
                }
            }
            "--max-running" => {
                let n = words.value(&arg)?;
                opts.max_running = n.parse().map_err(|_| {
                    words.error(format!("--max-running takes a whole number, got \"{n}\""))
                })?;
            }
            "--max-connections" => {
                let n = words.value(&arg)?;
                opts.max_connections = n.parse().ok().filter(|&n| n > 0).ok_or_else(|| {
                    words.error(format!(
                        "--max-connections takes a whole number above 0, got \"{n}\""
                    ))
                })?;
            }
            flag if serve_log_flag(words, &arg, flag, &mut opts)? => {}
            "--cgroup" => {
                let mode = words.value(&arg)?;
                opts.cgroup = match mode.as_str() {
                    "auto" => crate::CgroupMode::Auto,
                    "off" => crate::CgroupMode::Off,
                    path if path.starts_with('/') => crate::CgroupMode::Path(path.into()),
                    _ => {
                        return Err(words.error(format!(
                            "--cgroup takes auto, off or an absolute path, got \"{mode}\""
                        )));
                    }
                };
            }
            "--child-oom-score-adj" => {
                let n = words.value(&arg)?;
                opts.child_oom_score_adj = n
                    .parse()
                    .ok()
                    .filter(|n: &i32| (-2000..=2000).contains(n))
                    .ok_or_else(|| {
                        words.error(format!(
                            "--child-oom-score-adj takes a whole number from -2000 to 2000, got \"{n}\""
                        ))
                    })?;
            }
            "--child-nice" => {
                let n = words.value(&arg)?;
                opts.child_nice = Some(
                    n.parse()
                        .ok()
                        .filter(|n: &i32| (-20..=19).contains(n))
                        .ok_or_else(|| {
                            words.error(format!(
                                "--child-nice takes a whole number from -20 to 19, got \"{n}\""
                            ))
                        })?,
                );
            }
            "--max-exited" => {
                let n = words.value(&arg)?;
                opts.max_exited = n.parse().map_err(|_| {
                    words.error(format!("--max-exited takes a whole number, got \"{n}\""))
                })?;
            }
            "--max-tracked" => {
                let n = words.value(&arg)?;
                opts.max_tracked = n.parse().map_err(|_| {
                    words.error(format!("--max-tracked takes a whole number, got \"{n}\""))
                })?;
            }
            "--log-format" => {
                let format = words.value(&arg)?;
                opts.log_format = format.parse().map_err(|e: String| words.error(e))?;
            }
            _ => return Err(words.unknown(arg.word)),
        }
    }
    Ok(opts)
}

/// The flags of `mcp`; `url` is a `--url` given before the subcommand. The token is not read
/// here (the caller takes it from the environment).
fn parse_mcp(words: &mut Words<'_>, url: Option<String>) -> Result<McpOptions, Usage> {
    let mut opts = McpOptions {
        url,
        ..McpOptions::default()
    };
    let mut local_flag = None;
    while let Some(arg) = words.next_arg() {
        match arg.flag {
            "--url" => {
                let url = words.value(&arg)?;
                if !url.is_empty() {
                    check_url(&url).map_err(|e| words.error(e))?;
                }
                opts.url = Some(url);
            }
            "--workdir" => {
                opts.workdir = Some(PathBuf::from(words.value(&arg)?));
                local_flag = Some("--workdir");
            }
            "--max-running" => {
                let n = words.value(&arg)?;
                opts.max_running = n.parse().map_err(|_| {
                    words.error(format!("--max-running takes a whole number, got \"{n}\""))
                })?;
                local_flag = Some("--max-running");
            }
            _ => return Err(words.unknown(arg.word)),
        }
    }
    if let (Some(flag), Some(_)) = (local_flag, &opts.url) {
        return Err(words.error(format!(
            "{flag} is for processes run in process; with --url the agent's own applies"
        )));
    }
    if opts.url.as_deref() == Some("") {
        return Err(words.error("--url needs a value"));
    }
    Ok(opts)
}

fn parse_exec(words: &mut Words<'_>, options: &mut ClientOptions) -> Result<Command, Usage> {
    let mut timeout = None;
    let mut workdir = None;
    let mut background = false;
    let mut detach_on_interrupt = false;
    let mut interrupt_grace = INTERRUPT_GRACE;
    let mut tty = false;
    let mut command: &[String] = &[];
    while let Some(arg) = words.next_client_arg(options)? {
        if arg.word == "--" {
            command = words.rest();
            break;
        }
        if !arg.word.starts_with('-') {
            // The command starts here, as with ssh: everything from here on is its words.
            words.unread();
            command = words.rest();
            break;
        }
        match arg.flag {
            "--timeout" => {
                let text = words.value(&arg)?;
                let d = tools::parse_duration(&text).map_err(|e| words.error(e))?;
                if d.is_zero() {
                    return Err(words.error("--timeout must be more than 0"));
                }
                timeout = Some((d, text));
            }
            "--workdir" => workdir = Some(words.value(&arg)?),
            "--background" => background = words.switch(&arg)?,
            "--detach-on-interrupt" => detach_on_interrupt = words.switch(&arg)?,
            "--tty" | "-t" => tty = words.switch(&arg)?,
            "--interrupt-grace" => {
                let text = words.value(&arg)?;
                interrupt_grace = tools::parse_duration(&text).map_err(|e| words.error(e))?;
            }
            _ => return Err(words.unknown(arg.word)),
        }
    }
    if command.is_empty() {
        return Err(words.error("a command is required after --"));
    }
    let command = command.join(" ");
    if command.trim().is_empty() {
        return Err(words.error("the command is empty"));
    }
    if tty && !background && (options.json || detach_on_interrupt) {
        return Err(words.error(
            "--tty attaches this terminal (Ctrl-C goes to the process, Ctrl-] d detaches): \
             it takes no --json or --detach-on-interrupt",
        ));
    }
    Ok(Command::Exec {
        timeout,
        workdir,
        background,
        detach_on_interrupt,
        interrupt_grace,
        tty,
        command,
    })
}

fn parse_ps(words: &mut Words<'_>, options: &mut ClientOptions) -> Result<Command, Usage> {
    let max = api::MAX_LIST_LIMIT as usize;
    let mut limit = max;
    let mut wide = false;
    while let Some(arg) = words.next_client_arg(options)? {
        match arg.flag {
            "--limit" => {
                let text = words.value(&arg)?;
                limit = text
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=max).contains(n))
                    .ok_or_else(|| {
                        words.error(format!(
                            "--limit takes a number from 1 to {max}, got \"{text}\""
                        ))
                    })?;
            }
            "--wide" | "-w" => wide = words.switch(&arg)?,
            _ => return Err(words.unknown(arg.word)),
        }
    }
    Ok(Command::Ps { limit, wide })
}

/// Sets the one positional ID, or refuses an option or a second ID.
fn set_id(words: &Words<'_>, id: &mut Option<String>, word: &str) -> Result<(), Usage> {
    if word.starts_with('-') || id.is_some() {
        return Err(words.unknown(word));
    }
    *id = Some(id_word(words, word)?);
    Ok(())
}

/// A word that names a process: a whole id, or a prefix of at least [`MIN_ID_PREFIX`]
/// characters (resolved against the agent's list when the command runs: see `cli::ids`).
/// Every subcommand that takes an id reads it through here.
fn id_word(words: &Words<'_>, word: &str) -> Result<String, Usage> {
    if word.chars().count() < MIN_ID_PREFIX {
        return Err(words.error(format!(
            "process ID \"{word}\" is too short: give the whole ID or at least \
             {MIN_ID_PREFIX} characters of it"
        )));
    }
    Ok(word.to_string())
}

fn required_id(words: &Words<'_>, id: Option<String>) -> Result<String, Usage> {
    id.ok_or_else(|| words.error("a process ID is required"))
}

/// Refuses client options given to a subcommand that talks to no agent.
fn no_client_options(words: &Words<'_>, options: &ClientOptions) -> Result<(), Usage> {
    if *options != ClientOptions::default() {
        return Err(words
            .error("this command talks to no agent: it takes no --url, --token-file or --json"));
    }
    Ok(())
}

/// Checks a `--url` (or `$PROCWARDEN_URL`): `http://HOST[:PORT][/PREFIX]` or `unix:/path`.
/// A path that names the API itself (`/api/...`) is refused: the URL is the agent's base.
pub(super) fn check_url(url: &str) -> Result<(), String> {
    const EXAMPLE: &str = "e.g. http://127.0.0.1:7717 or unix:/path/to/socket";
    if let Some(path) = url.strip_prefix(crate::client::UNIX_PREFIX) {
        if path.is_empty() {
            return Err(format!("--url unix: needs a socket path ({EXAMPLE})"));
        }
        return Ok(());
    }
    let scheme = url.get(..8).map(str::to_ascii_lowercase);
    if scheme.as_deref() == Some("https://") {
        return Err(format!(
            "--url \"{url}\": HTTPS is not supported (no TLS is linked in); use http:// or unix: ({EXAMPLE})"
        ));
    }
    let rest = match url.get(..7) {
        Some(scheme) if scheme.eq_ignore_ascii_case("http://") => &url[7..],
        _ => {
            return Err(format!(
                "--url takes http://HOST:PORT or unix:/path, got \"{url}\" ({EXAMPLE})"
            ));
        }
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let malformed = || format!("--url \"{url}\" is not a valid URL ({EXAMPLE})");
    if authority.is_empty()
        || url.contains(['?', '#', ' ', '@'])
        || url.chars().any(char::is_control)
    {
        return Err(malformed());
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6.split_once(']').ok_or_else(malformed)?;
            host.parse::<std::net::Ipv6Addr>()
                .map_err(|_| malformed())?;
            match after {
                "" => (host, None),
                _ => (host, Some(after.strip_prefix(':').ok_or_else(malformed)?)),
            }
        }
        None => match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    if host.is_empty() || port.is_some_and(|p| p.parse::<u16>().is_err()) {
        return Err(malformed());
    }
    let path = path.trim_end_matches('/');
    if path.split('/').any(|segment| segment == "api") {
        let base = &url[..url.len() - rest.len() + authority.len()];
        return Err(format!(
            "--url should be the agent's base URL, e.g. {base} (without {path})"
        ));
    }
    Ok(())
}

fn parse_output(words: &mut Words<'_>, options: &mut ClientOptions) -> Result<Command, Usage> {
    let mut id = None;
    let mut wait = false;
    let mut follow = false;
    let mut until = None;
    while let Some(arg) = words.next_client_arg(options)? {
        match arg.flag {
            "--wait" => wait = words.switch(&arg)?,
            "--follow" | "-f" => follow = words.switch(&arg)?,
            "--until" => until = Some(words.value(&arg)?),
            _ => set_id(words, &mut id, arg.word)?,
        }
    }
    if let Some(pattern) = until {
        return output_until(words, id, pattern, follow);
    }
    Ok(Command::Output {
        id: required_id(words, id)?,
        wait,
        follow,
    })
}

fn parse_kill(words: &mut Words<'_>, options: &mut ClientOptions) -> Result<Command, Usage> {
    let mut ids = Vec::new();
    let mut signal = "terminate".to_string();
    while let Some(arg) = words.next_client_arg(options)? {
        match arg.flag {
            "--signal" | "-s" => {
                signal = words.value(&arg)?;
                if let Some(wire) = signal_alias(&signal) {
                    signal = wire.to_string();
                }
                if crate::api::parse_signal(&signal).is_err() {
                    let names: Vec<&str> =
                        crate::api::SIGNAL_NAMES.iter().map(|(_, n)| *n).collect();
                    return Err(words.error(format!(
                        "--signal takes {}, got \"{signal}\"",
                        names.join(", ")
                    )));
                }
            }
            flag if flag.len() > 1 && flag.starts_with('-') && !flag.starts_with("--") => {
                match signal_alias(&flag[1..]) {
                    Some(wire) => signal = wire.to_string(),
                    None => return Err(words.unknown(arg.word)),
                }
            }
            _ if arg.word.starts_with('-') => return Err(words.unknown(arg.word)),
            _ => ids.push(id_word(words, arg.word)?),
        }
    }
    if ids.is_empty() {
        return Err(words.error("a process ID is required"));
    }
    Ok(Command::Kill { ids, signal })
}

/// The spellings of kill(1) that `kill` accepts beside the wire names: `TERM`, `SIGTERM`, `15`,
/// `KILL`, `SIGKILL`, `9`, `INT`, `SIGINT`, `2`, in any case. Returns the wire name, or `None`
/// when `word` is none of these.
fn signal_alias(word: &str) -> Option<&'static str> {
    let upper = word.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    match name {
        "TERM" | "15" | "TERMINATE" => Some("terminate"),
        "KILL" | "9" => Some("kill"),
        "INT" | "2" | "INTERRUPT" => Some("interrupt"),
        // No numbers: SIGSTOP and SIGCONT differ between architectures.
        "STOP" => Some("stop"),
        "CONT" | "CONTINUE" => Some("continue"),
        _ => None,
    }
}

fn parse_completions(words: &mut Words<'_>, options: &ClientOptions) -> Result<Invocation, Usage> {
    no_client_options(words, options)?;
    let Some(shell) = words.next() else {
        return Err(words.error("a shell is required: bash, zsh or fish"));
    };
    let shell = ["bash", "zsh", "fish"]
        .into_iter()
        .find(|&known| known == shell)
        .ok_or_else(|| words.error(format!("unknown shell \"{shell}\": bash, zsh or fish")))?;
    match words.next() {
        None => Ok(Invocation::Completions(shell)),
        Some(word) => Err(words.unknown(word)),
    }
}

fn parse_attach(words: &mut Words<'_>, options: &mut ClientOptions) -> Result<Command, Usage> {
    let mut id = None;
    while let Some(arg) = words.next_client_arg(options)? {
        set_id(words, &mut id, arg.word)?;
    }
    if options.json {
        return Err(words.error("attach shows the process's terminal: it takes no --json"));
    }
    Ok(Command::Attach {
        id: required_id(words, id)?,
    })
}

fn parse_input(words: &mut Words<'_>, options: &mut ClientOptions) -> Result<Command, Usage> {
    use super::input::Source;
    /// The next word that is not an option: the ID, then the TEXT (`-`: stdin, unless it came
    /// after `--`).
    fn positional(
        words: &Words<'_>,
        (id, source): (&mut Option<String>, &mut Option<Source>),
        word: &str,
        literal: bool,
    ) -> Result<(), Usage> {
        if id.is_none() {
            *id = Some(id_word(words, word)?);
        } else if source.is_none() {
            *source = Some(if word == "-" && !literal {
                Source::Stdin
            } else {
                Source::Text(word.to_string())
            });
        } else {
            return Err(words.error("input takes one TEXT (quote it)"));
        }
        Ok(())
    }
    let mut id = None;
    let mut close = false;
    let mut source = None;
    while let Some(arg) = words.next_client_arg(options)? {
        match arg.flag {
            "--close" => close = words.switch(&arg)?,
            "--" => {
                // What follows is TEXT (or the ID), even if it looks like an option.
                for word in words.rest() {
                    positional(words, (&mut id, &mut source), word, true)?;
                }
                break;
            }
            "-" => positional(words, (&mut id, &mut source), arg.word, false)?,
            flag if flag.starts_with('-') => return Err(words.unknown(arg.word)),
            _ => positional(words, (&mut id, &mut source), arg.word, false)?,
        }
    }
    let id = required_id(words, id)?;
    let source = match source {
        Some(source) => source,
        None if close => Source::Nothing,
        None => return Err(words.error("give TEXT, - (stdin) or --close")),
    };
    Ok(Command::Input { id, close, source })
}

fn parse_tools(words: &mut Words<'_>, options: &mut ClientOptions) -> Result<Command, Usage> {
    let mut schema = false;
    while let Some(arg) = words.next_client_arg(options)? {
        match arg.flag {
            "--schema" => schema = words.switch(&arg)?,
            _ => return Err(words.unknown(arg.word)),
        }
    }
    Ok(Command::Tools { schema })
}

// ---------------------------------------------------------------------------------------------
// Waiting for a line, and for any of several processes

const WAIT_USAGE: &str = "\
Usage: procwarden wait ID... [--url URL] [--json]

Waits until any of the processes (at most 64) is no longer running, prints each one that has
exited (ID, exit status) and exits with the status of the first of them to finish as exec
does (exit code, 128+N for signal N, 124 for a timeout).

  --json      print the wait answer as JSON: {\"exited\": [...], \"running\": [...]}";

/// The full-log flags of `serve`; returns whether `flag` was one.
fn serve_log_flag(
    words: &mut Words<'_>,
    arg: &Arg<'_>,
    flag: &str,
    opts: &mut ServeOptions,
) -> Result<bool, Usage> {
    let bytes = |words: &mut Words<'_>| -> Result<u64, Usage> {
        let n = words.value(arg)?;
        n.parse()
            .map_err(|_| words.error(format!("{flag} takes a whole number of bytes, got \"{n}\"")))
    };
    match flag {
        "--log-dir" => opts.log_dir = Some(PathBuf::from(words.value(arg)?)),
        "--log-max-bytes" => opts.log_max_bytes = bytes(words)?,
        "--log-max-total-bytes" => opts.log_max_total_bytes = bytes(words)?,
        _ => return Ok(false),
    }
    Ok(true)
}

const LOG_USAGE: &str = "\
Usage: procwarden log ID [--offset N] [--search RE [--limit N]] [--url URL] [--json]

Prints the full log of a process started with a log (`\"log\": true`; the agent tools'
foreground commands have one): everything it wrote, not only the first and last 16 KiB, from
byte N on (default 0).

  --offset N   start at stream offset N (e.g. a search match's offset)
  --search RE  print the lines that match the regular expression RE instead, as
               LINE_NUMBER:OFFSET:LINE (at most --limit, default 100, at most 1000)
  --json       print the API's answers as JSON (one range read or the search answer per line)";

fn parse_log(words: &mut Words<'_>, options: &mut ClientOptions) -> Result<Command, Usage> {
    let mut id = None;
    let mut offset = 0;
    let mut search = None;
    let mut limit = api::DEFAULT_LOG_SEARCH_LIMIT;
    while let Some(arg) = words.next_client_arg(options)? {
        match arg.flag {
            "--offset" => {
                let n = words.value(&arg)?;
                offset = n.parse().map_err(|_| {
                    words.error(format!("--offset takes a whole number, got \"{n}\""))
                })?;
            }
            "--search" => search = Some(words.value(&arg)?),
            "--limit" => {
                let n = words.value(&arg)?;
                limit = n
                    .parse()
                    .ok()
                    .filter(|n| (1..=api::MAX_LOG_SEARCH_LIMIT).contains(n))
                    .ok_or_else(|| {
                        words.error(format!(
                            "--limit takes a number from 1 to {}, got \"{n}\"",
                            api::MAX_LOG_SEARCH_LIMIT
                        ))
                    })?;
            }
            _ => set_id(words, &mut id, arg.word)?,
        }
    }
    Ok(Command::Log {
        id: required_id(words, id)?,
        offset,
        search,
        limit,
    })
}

/// `output ID --until REGEX`.
fn output_until(
    words: &Words<'_>,
    id: Option<String>,
    pattern: String,
    follow: bool,
) -> Result<Command, Usage> {
    if follow {
        return Err(words.error("--until cannot be combined with --follow"));
    }
    if pattern.len() > crate::MAX_PATTERN_BYTES {
        return Err(words.error(format!(
            "--until takes a pattern of at most {} bytes",
            crate::MAX_PATTERN_BYTES
        )));
    }
    Ok(Command::OutputUntil {
        id: required_id(words, id)?,
        pattern,
    })
}

fn parse_wait(words: &mut Words<'_>, options: &mut ClientOptions) -> Result<Command, Usage> {
    let mut ids = Vec::new();
    while let Some(arg) = words.next_client_arg(options)? {
        if arg.word.starts_with('-') {
            return Err(words.unknown(arg.word));
        }
        ids.push(arg.word.to_string());
    }
    if ids.is_empty() {
        return Err(words.error("at least one process ID is required"));
    }
    if ids.len() > api::MAX_WAIT_IDS {
        return Err(words.error(format!(
            "at most {} process IDs can be waited for",
            api::MAX_WAIT_IDS
        )));
    }
    Ok(Command::Wait { ids })
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

    /// The flags that follow `serve`, parsed.
    fn parse_args(list: &[String]) -> Result<ServeOptions, Usage> {
        let mut words = Words::new(list);
        words.command = Some("serve");
        parse_serve(&mut words)
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
                token_file: None,
                json: true
            }
        );
        assert_eq!(
            command,
            Command::Exec {
                timeout: Some((Duration::from_millis(1500), "1.5s".into())),
                workdir: Some("/tmp".into()),
                background: false,
                detach_on_interrupt: false,
                interrupt_grace: INTERRUPT_GRACE,
                tty: false,
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
                detach_on_interrupt: false,
                interrupt_grace: INTERRUPT_GRACE,
                tty: false,
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
                    token_file: None,
                    json: false
                },
                Command::Ps {
                    limit: 5,
                    wide: true
                }
            )
        );
        assert_eq!(
            client(&["output", "--follow", "abcd"]).1,
            Command::Output {
                id: "abcd".into(),
                wait: false,
                follow: true
            }
        );
        assert_eq!(
            client(&["kill", "abcd", "--signal", "kill"]).1,
            Command::Kill {
                ids: vec!["abcd".into()],
                signal: "kill".into()
            }
        );
        for (words, wire) in [
            (&["kill", "abcd", "--signal", "TERM"][..], "terminate"),
            (&["kill", "abcd", "--signal", "sigterm"], "terminate"),
            (&["kill", "abcd", "--signal=15"], "terminate"),
            (&["kill", "abcd", "-s", "KILL"], "kill"),
            (&["kill", "abcd", "--signal", "SIGKILL"], "kill"),
            (&["kill", "-9", "abcd"], "kill"),
            (&["kill", "-KILL", "abcd"], "kill"),
            (&["kill", "abcd", "-s", "int"], "interrupt"),
            (&["kill", "-SIGINT", "abcd"], "interrupt"),
            (&["kill", "-2", "abcd"], "interrupt"),
            (&["kill", "-STOP", "abcd"], "stop"),
            (&["kill", "abcd", "-s", "SIGCONT"], "continue"),
        ] {
            assert_eq!(
                client(words).1,
                Command::Kill {
                    ids: vec!["abcd".into()],
                    signal: wire.into()
                },
                "{words:?}"
            );
        }
        assert_eq!(
            client(&["tools", "--schema"]).1,
            Command::Tools { schema: true }
        );
        assert_eq!(
            client(&["kill", "abcd", "-9", "ef01", "0b6f1c2d"]).1,
            Command::Kill {
                ids: vec!["abcd".into(), "ef01".into(), "0b6f1c2d".into()],
                signal: "kill".into()
            }
        );
        let (options, command) = client(&[
            "exec",
            "--token-file=/t",
            "--detach-on-interrupt",
            "--interrupt-grace",
            "250ms",
            "--",
            "sleep 1",
        ]);
        assert_eq!(options.token_file, Some(PathBuf::from("/t")));
        assert!(matches!(
            command,
            Command::Exec {
                detach_on_interrupt: true,
                interrupt_grace,
                ..
            } if interrupt_grace == Duration::from_millis(250)
        ));
        assert_eq!(
            parse(&args(&["completions", "zsh"])),
            Ok(Invocation::Completions("zsh"))
        );
        assert_eq!(parse(&args(&["manpage"])), Ok(Invocation::Manpage));
        for good in [
            "http://127.0.0.1:7717",
            "http://[::1]:7717/",
            "HTTP://h",
            "http://proxy:8080/agent",
            "unix:/run/p.sock",
        ] {
            assert_eq!(check_url(good), Ok(()), "{good}");
        }
        assert_eq!(parse(&args(&["ps", "-h"])), Ok(Invocation::Help(PS_USAGE)));
        assert_eq!(
            parse(&args(&["help", "kill"])),
            Ok(Invocation::Help(KILL_USAGE))
        );
        assert_eq!(
            parse(&args(&["serve", "--listen", "x"])),
            Ok(Invocation::Serve(ServeOptions {
                listen: "x".into(),
                ..ServeOptions::default()
            }))
        );
        assert_eq!(
            parse(&args(&["help", "serve"])),
            Ok(Invocation::Help(SERVE_USAGE))
        );
        assert_eq!(
            parse(&args(&["mcp"])),
            Ok(Invocation::Mcp(McpOptions::default()))
        );
        assert_eq!(
            parse(&args(&["mcp", "--workdir=/srv", "--max-running", "3"])),
            Ok(Invocation::Mcp(McpOptions {
                workdir: Some(PathBuf::from("/srv")),
                max_running: 3,
                ..McpOptions::default()
            }))
        );
        for list in [
            &["mcp", "--url", "unix:/s"][..],
            &["--url", "unix:/s", "mcp"],
            &["mcp", "--url=unix:/s"],
        ] {
            assert_eq!(
                parse(&args(list)),
                Ok(Invocation::Mcp(McpOptions {
                    url: Some("unix:/s".into()),
                    ..McpOptions::default()
                })),
                "{list:?}"
            );
        }
        assert_eq!(
            parse(&args(&["mcp", "--url", "x", "--help"])),
            Ok(Invocation::Help(MCP_USAGE))
        );
        assert_eq!(
            parse(&args(&["help", "mcp"])),
            Ok(Invocation::Help(MCP_USAGE))
        );
        assert_eq!(
            parse(&args(&["serve", "--listen", "x", "-h"])),
            Ok(Invocation::Help(SERVE_USAGE))
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
            (&["output", "abcd", "efgh"], "unexpected argument \"efgh\""),
            (&["output", "abc"], "process ID \"abc\" is too short"),
            (&["kill", "abcd", "ab"], "process ID \"ab\" is too short"),
            (&["kill", "abcd", "-HUP"], "unknown option \"-HUP\""),
            (
                &["--url", "http://h:1/api/v0", "ps"],
                "--url should be the agent's base URL, e.g. http://h:1 (without /api/v0)",
            ),
            (
                &["--url", "localhost:7717", "ps"],
                "--url takes http://HOST:PORT or unix:/path",
            ),
            (&["--url", "http://h:port", "ps"], "is not a valid URL"),
            (&["--url", "https://h:1", "ps"], "HTTPS is not supported"),
            (&["--url", "unix:", "ps"], "needs a socket path"),
            (&["mcp", "--url", "ftp://x"], "--url takes http://"),
            (&["completions"], "a shell is required"),
            (&["completions", "tcsh"], "unknown shell \"tcsh\""),
            (&["--json", "manpage"], "talks to no agent"),
            (&["manpage", "x"], "unexpected argument \"x\""),
            (
                &["exec", "--interrupt-grace", "x", "--", "ls"],
                "invalid duration",
            ),
            (
                &["kill", "abcd", "--signal", "hup"],
                "--signal takes terminate",
            ),
            (&["kill", "abcd", "--signal"], "--signal needs a value"),
            (&["--url"], "--url needs a value"),
            (&["--url", "http://h:1", "serve"], "serve takes no --url"),
            (&["tools", "--schema=yes"], "--schema takes no value"),
            (&["serve", "--nope"], "unknown option \"--nope\""),
            (&["serve", "--max-running", "many"], "--max-running takes"),
            (&["mcp", "--json"], "unknown option \"--json\""),
            (&["--json", "mcp"], "mcp takes no --json"),
            (&["mcp", "--nope"], "unknown option \"--nope\""),
            (&["mcp", "stray"], "unexpected argument \"stray\""),
            (&["mcp", "--url"], "--url needs a value"),
            (&["mcp", "--url="], "--url needs a value"),
            (
                &["mcp", "--max-running", "x"],
                "--max-running takes a whole number",
            ),
            (
                &["mcp", "--url", "http://h:1", "--workdir", "/w"],
                "--workdir is for processes run in process",
            ),
            (
                &["mcp", "--max-running", "2", "--url", "http://h:1"],
                "--max-running is for processes run in process",
            ),
        ] {
            let error = usage_error(list);
            assert!(error.message.contains(needle), "{list:?}: {error}");
            assert!(!error.to_string().contains('\n'), "{list:?}: one line");
            assert_eq!(error.exit_code(), EXIT_USAGE, "{list:?}");
        }
        assert_eq!(
            usage_error(&["ps", "--bad"]).to_string(),
            "unknown option \"--bad\" (see procwarden ps --help)"
        );
        assert_eq!(
            usage_error(&["serve", "--listen"]).to_string(),
            "--listen needs a value (see procwarden serve --help)"
        );
    }

    #[test]
    fn tty_attach_and_input_parse() {
        let (_, command) = client(&["exec", "--tty", "--", "python3", "-i"]);
        assert!(
            matches!(&command, Command::Exec { tty: true, command, .. } if command == "python3 -i"),
            "{command:?}"
        );
        let (_, command) = client(&["exec", "-t", "--background", "sh"]);
        assert!(matches!(
            command,
            Command::Exec {
                tty: true,
                background: true,
                ..
            }
        ));
        assert_eq!(
            client(&["attach", "abcd"]).1,
            Command::Attach { id: "abcd".into() }
        );
        use crate::cli::input::Source;
        let input = |words: &[&str]| client(words).1;
        assert_eq!(
            input(&["input", "abcd", "y\n"]),
            Command::Input {
                id: "abcd".into(),
                close: false,
                source: Source::Text("y\n".into())
            }
        );
        assert_eq!(
            input(&["input", "--close", "abcd", "-"]),
            Command::Input {
                id: "abcd".into(),
                close: true,
                source: Source::Stdin
            }
        );
        assert_eq!(
            input(&["input", "abcd", "--close"]),
            Command::Input {
                id: "abcd".into(),
                close: true,
                source: Source::Nothing
            }
        );
        // After `--`, TEXT may look like an option, and `-` is text.
        assert_eq!(
            input(&["input", "abcd", "--", "--yes"]),
            Command::Input {
                id: "abcd".into(),
                close: false,
                source: Source::Text("--yes".into())
            }
        );
        assert_eq!(
            input(&["input", "abcd", "--", "-"]),
            Command::Input {
                id: "abcd".into(),
                close: false,
                source: Source::Text("-".into())
            }
        );
        for bad in [
            &["input", "abcd"][..],
            &["input", "abcd", "a", "b"],
            &["input", "abcd", "--nope"],
            &["attach"],
            &["attach", "abcd", "efgh"],
            &["attach", "abcd", "--json"],
            &["exec", "--tty", "--json", "--", "sh"],
        ] {
            assert!(parse(&args(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn flags_parse_in_both_spellings() {
        let opts = parse_args(&args(&[
            "--listen",
            "0.0.0.0:0",
            "--token-file=/tmp/t",
            "--allow-unauthenticated",
            "--workdir",
            "/srv",
            "--env",
            "A=1",
            "--env=B=x=y",
            "--max-running",
            "7",
            "--max-connections=9",
        ]))
        .expect("valid flags");
        assert_eq!(opts.max_connections, 9);
        assert_eq!(opts.listen, "0.0.0.0:0");
        assert_eq!(opts.token_file, Some(PathBuf::from("/tmp/t")));
        assert!(opts.allow_unauthenticated);
        assert_eq!(opts.workdir, Some(PathBuf::from("/srv")));
        assert_eq!(
            opts.env,
            vec![("A".into(), "1".into()), ("B".into(), "x=y".into())]
        );
        assert_eq!(opts.max_running, 7);
    }

    #[test]
    fn bad_flags_are_refusals() {
        for bad in [
            &["--nope"][..],
            &["--listen"],
            &["--max-running", "many"],
            &["--env", "NOEQUALS"],
            &["--env", "=v"],
            &["--allow-unauthenticated=yes"],
        ] {
            let err = parse_args(&args(bad)).expect_err("refused");
            assert_eq!(err.exit_code(), 2, "{bad:?}");
        }
    }
}
