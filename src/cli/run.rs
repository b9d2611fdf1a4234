//! Running the client subcommands against the agent: the requests each one makes, how long it
//! polls, what it prints, and the exit code that stands for the process's status.

use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, bounded, never, select};
use serde::Serialize;

use super::args::{ClientOptions, Command, Usage, check_url};
use super::format::{one_line, ps_table, tools_summary};
use super::{
    DEFAULT_COLUMNS, DEFAULT_URL, EXEC_TIMEOUT_GUARD, EXIT_FAILURE, EXIT_INTERRUPTED,
    EXIT_SIGNAL_BASE, EXIT_STATUS_UNKNOWN, EXIT_TIMED_OUT, KILL_SETTLE, LONG_POLL,
    MAX_SIGNAL_NUMBER, TOKEN_ENV, URL_ENV, attach, ctrl_c, env_value, ids, input,
};
use crate::api;
use crate::client::Client;
use crate::tools::{self, ApiError};

/// Runs a client subcommand against the agent that `options` (or the environment) names;
/// failures are reported on stderr in one line.
pub(super) fn client_command(options: ClientOptions, command: &Command) -> ExitCode {
    let url = match options.url {
        Some(url) => url,
        None => match env_value(URL_ENV) {
            Some(url) => match check_url(&url) {
                Ok(()) => url,
                Err(e) => return usage_exit(&Usage::new(format!("${URL_ENV}: {e}"), None)),
            },
            None => DEFAULT_URL.to_string(),
        },
    };
    let token = match &options.token_file {
        Some(path) => match read_token(path) {
            Ok(token) => Some(token),
            Err(e) => return usage_exit(&Usage::new(e, Some(command.name()))),
        },
        None => env_value(TOKEN_ENV),
    };
    let client = Client::new(url.clone()).token(token);
    let stdout = io::stdout();
    let mut out = stdout.lock();
    match execute(&client, command, options.json, &mut out) {
        Ok(code) => ExitCode::from(code),
        Err(failure) => ExitCode::from(report(failure, &url)),
    }
}

/// Prints a usage error and returns its exit code.
fn usage_exit(usage: &Usage) -> ExitCode {
    eprintln!("procwarden: {usage}");
    ExitCode::from(usage.exit_code())
}

/// Reports a failure on stderr (one line, with the next step where there is an obvious one)
/// and returns its exit code.
fn report(failure: Failure, url: &str) -> u8 {
    match failure {
        Failure::Api(e) => {
            eprintln!("procwarden: {}", with_hint(&e, url));
            EXIT_FAILURE
        }
        Failure::Usage(usage) => {
            eprintln!("procwarden: {usage}");
            usage.exit_code()
        }
        Failure::Output(e) => {
            eprintln!("procwarden: cannot write the output: {e}");
            EXIT_FAILURE
        }
    }
}

/// An error answer as one line, with what to do next for the failures a person meets first:
/// no agent at the URL, a missing token, a URL that is not the agent's base.
pub(super) fn with_hint(e: &ApiError, url: &str) -> String {
    let text = one_line(&e.to_string());
    match e.status {
        None if e.message.starts_with("No answer from") => {
            format!("{text} Is procwarden serve running at {url}?")
        }
        Some(401) => format!(
            "{text} Set {TOKEN_ENV} or --token-file to the agent's token (procwarden serve \
             --token-file)."
        ),
        Some(404) if e.message == "Not found." => {
            format!("{text} --url should be the agent's base URL, e.g. {DEFAULT_URL} (got {url}).")
        }
        _ => text,
    }
}

/// The token in a `--token-file`, trimmed.
fn read_token(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read --token-file {}: {e}", path.display()))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(format!("--token-file {} is empty", path.display()));
    }
    Ok(token.to_string())
}

/// Why a client subcommand failed.
#[derive(Debug)]
pub(super) enum Failure {
    /// An error answer or no answer.
    Api(ApiError),
    /// A usage error found only with the agent's help (an ambiguous ID prefix).
    Usage(Usage),
    /// Writing to stdout failed (other than a closed pipe, which ends the output quietly).
    Output(io::Error),
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Failure::Api(e)
    }
}

/// Writes `text`; a closed pipe (`procwarden ps | head -1`) is not an error.
pub(super) fn emit(out: &mut dyn Write, text: &str) -> Result<(), Failure> {
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(Failure::Output(e)),
        _ => Ok(()),
    }
}

/// Writes `value` as one line of JSON.
pub(super) fn emit_json(out: &mut dyn Write, value: &impl Serialize) -> Result<(), Failure> {
    let mut line = serde_json::to_string(value).map_err(|e| Failure::Output(e.into()))?;
    line.push('\n');
    emit(out, &line)
}

/// Writes an answer: as one line of JSON, or as the human form `text`.
fn answer(
    out: &mut dyn Write,
    json: bool,
    value: &impl Serialize,
    text: &str,
) -> Result<(), Failure> {
    if json {
        emit_json(out, value)
    } else {
        emit(out, text)
    }
}

/// Prints an output answer: its text, or its JSON.
pub(super) fn show(
    out: &mut dyn Write,
    response: &api::OutputResponse,
    json: bool,
) -> Result<(), Failure> {
    answer(out, json, response, &response.output)
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
            detach_on_interrupt,
            interrupt_grace,
            tty,
            command,
        } => {
            let exec = Exec {
                command,
                timeout: timeout.as_ref(),
                workdir: workdir.clone(),
                background: *background,
                detach_on_interrupt: *detach_on_interrupt,
                interrupt_grace: *interrupt_grace,
                tty: *tty,
                json,
            };
            exec.run(client, out)
        }
        Command::Ps { limit, wide } => {
            let list = client.list(*limit)?;
            if json {
                emit_json(out, &list)?;
            } else {
                let columns = (!wide).then(terminal_columns);
                emit(out, &ps_table(&list.processes, unix_now(), columns))?;
            }
            Ok(0)
        }
        Command::OutputUntil { id, pattern } => {
            let id = ids::resolve(client, id, "output")?;
            super::waits::output_until(client, &id, pattern, json, out)
        }
        Command::Wait { ids: wanted } => {
            let resolved = wanted
                .iter()
                .map(|id| ids::resolve(client, id, "wait"))
                .collect::<Result<Vec<_>, _>>()?;
            super::waits::wait(client, &resolved, json, out)
        }
        Command::Log {
            id,
            offset,
            search,
            limit,
        } => {
            let id = ids::resolve(client, id, "log")?;
            super::waits::log(client, &id, *offset, search.as_deref(), *limit, json, out)
        }
        Command::Output { id, wait, follow } => {
            let id = ids::resolve(client, id, "output")?;
            output(client, &id, *wait, *follow, json, out)
        }
        Command::Kill { ids, signal } => kill(client, ids, signal, json, out),
        Command::Attach { id } => {
            let id = ids::resolve(client, id, "attach")?;
            attached(client, &id, 0, out)
        }
        Command::Input { id, close, source } => {
            let id = ids::resolve(client, id, "input")?;
            if let Some(queued) = input::send(client, &id, source, *close)?
                && json
            {
                emit_json(out, &queued)?;
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

/// The terminal's width: `$COLUMNS`, else [`DEFAULT_COLUMNS`].
fn terminal_columns() -> usize {
    env_value("COLUMNS")
        .and_then(|c| c.parse::<usize>().ok())
        .filter(|&c| c > 0)
        .unwrap_or(DEFAULT_COLUMNS)
}

/// Whether the agent at `url` runs on this host: a unix socket, or an HTTP address on the
/// loopback (`localhost`, 127.0.0.0/8, `::1`). Then it shares this command's file system.
fn agent_on_this_host(url: &str) -> bool {
    if url.starts_with(crate::client::UNIX_PREFIX) {
        return true;
    }
    let Some(rest) = url.get(7..) else {
        return false;
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `kill ID...`: signals each process in turn; the exit code is 1 when any of them failed
/// (each failure reported on stderr, as kill(1) does), 2 when an ID prefix was ambiguous.
fn kill(
    client: &Client,
    words: &[String],
    signal: &str,
    json: bool,
    out: &mut dyn Write,
) -> Result<u8, Failure> {
    let mut code = 0;
    for word in words {
        let signalled = ids::resolve(client, word, "kill")
            .and_then(|id| client.signal(&id, signal).map_err(Failure::Api));
        match signalled {
            Ok(signalled) => answer(out, json, &signalled, &format!("{}\n", signalled.message))?,
            Err(Failure::Output(e)) => return Err(Failure::Output(e)),
            Err(failure) => code = code.max(report(failure, client.url())),
        }
    }
    Ok(code)
}

/// Attaches this terminal to process `id` from stream offset `cursor` (`attach`, `exec
/// --tty`); returns the process's status once it exits, or after a detach 0 (for the detach
/// key) or 128+N (for signal N to this command), having said how to reattach.
fn attached(client: &Client, id: &str, cursor: u64, out: &mut dyn Write) -> Result<u8, Failure> {
    let reattach = |why: &str| {
        eprintln!(
            "\r\nprocwarden: {why}; process {id} is still running. Reattach with: \
             procwarden attach {id}"
        );
    };
    match attach::attach(client, id, cursor, out)? {
        attach::Attached::Exited(last) => Ok(exit_status(&last)),
        attach::Attached::Detached => {
            reattach("detached");
            Ok(0)
        }
        attach::Attached::Signalled(sig) => {
            reattach(&format!(
                "{} ended the attachment",
                crate::sys::signal_name(sig)
            ));
            Ok(EXIT_SIGNAL_BASE.saturating_add(u8::try_from(sig).unwrap_or(u8::MAX)))
        }
    }
}

/// A foreground or background `exec`, as parsed.
struct Exec<'a> {
    command: &'a str,
    timeout: Option<&'a (Duration, String)>,
    workdir: Option<String>,
    background: bool,
    detach_on_interrupt: bool,
    interrupt_grace: Duration,
    tty: bool,
    json: bool,
}

/// Where a foreground `exec` stands while the process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Waiting for the exit (and for `--timeout` to be enforced by the agent).
    Running,
    /// Ctrl-C sent SIGINT; SIGKILL at the deadline or at a second Ctrl-C.
    Interrupted,
    /// SIGKILL was sent (a second Ctrl-C, or the agent did not end it in time).
    Killed,
}

/// The whole milliseconds of `d`, saturating.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Exec<'_> {
    fn run(self, client: &Client, out: &mut dyn Write) -> Result<u8, Failure> {
        let implicit_workdir = match &self.workdir {
            Some(_) => None,
            None if agent_on_this_host(client.url()) => std::env::current_dir()
                .ok()
                .and_then(|dir| dir.into_os_string().into_string().ok()),
            None => None,
        };
        // A foreground command keeps its whole stream on the agent (`log: true`), so a cut
        // output can be read or searched afterwards with `procwarden log`; an agent that is
        // out of log space (507) gets the start again without it. A background start or a
        // terminal session is read live instead.
        let want_log = !self.background && !self.tty;
        let mut request = api::StartRequest {
            command: Some(self.command.to_string()),
            workdir: self.workdir.clone().or_else(|| implicit_workdir.clone()),
            background: Some(self.background),
            timeout_ms: self.timeout.map(|(d, _)| millis(*d)),
            tty: self.tty.then(|| {
                let (rows, cols) = attach::local_size().unwrap_or(attach::DEFAULT_TTY_SIZE);
                api::TtySize { rows, cols }
            }),
            log: want_log.then_some(true),
            ..api::StartRequest::default()
        };
        // From here on Ctrl-C is a message, not the end of this command (a SIGINT during the
        // start is taken once the process has an id).
        // (Attached to a terminal, Ctrl-C is a key for the process: `attach` takes it.)
        let interrupts = if self.background || self.tty {
            None
        } else {
            match ctrl_c::watch() {
                Ok(rx) => Some(rx),
                Err(e) => {
                    eprintln!("procwarden: Ctrl-C will not reach the process: {e}");
                    None
                }
            }
        };
        let started_at = Instant::now();
        let started = match client.start(&request, None) {
            Err(e) if want_log && e.status == Some(507) => {
                eprintln!(
                    "procwarden: {} Starting without a full log.",
                    e.message.trim_end()
                );
                request.log = None;
                client.start(&request, None)
            }
            other => other,
        };
        let logged = request.log == Some(true);
        let started = started.map_err(|e| match &implicit_workdir {
            Some(dir) if e.status == Some(400) && e.message.contains("does not exist") => {
                ApiError {
                    message: format!(
                        "{} (exec sends the current directory, {dir}, to an agent on this \
                         host; pass --workdir DIR)",
                        e.message
                    ),
                    ..e
                }
            }
            _ => e,
        })?;
        if self.background {
            answer(out, self.json, &started, &format!("{}\n", started.id))?;
            return Ok(0);
        }
        if self.tty {
            return attached(client, &started.id, 0, out);
        }
        self.wait(
            client,
            &started.id,
            started_at,
            interrupts.unwrap_or_else(never),
            logged,
            out,
        )
    }

    /// Waits for the exit of the foreground process `id`, taking Ctrl-C and the timeout
    /// guard as they come, then prints the final output and returns the exit code.
    fn wait(
        &self,
        client: &Client,
        id: &str,
        started_at: Instant,
        interrupts: Receiver<()>,
        logged: bool,
        out: &mut dyn Write,
    ) -> Result<u8, Failure> {
        let still_running = |e: ApiError| -> Failure {
            Failure::Api(ApiError {
                message: format!(
                    "{} Process {id} may still be running (procwarden output {id}).",
                    e.message
                ),
                ..e
            })
        };
        let exited = wait_in_background(client, id);
        let mut stage = Stage::Running;
        let mut interrupted = false;
        let mut guard_killed = false;
        let mut deadline = self.timeout.map(|(d, _)| {
            crate::time::deadline_from(started_at, d.saturating_add(EXEC_TIMEOUT_GUARD))
        });
        let answer = loop {
            let timer = deadline.map_or_else(never, crossbeam_channel::at);
            select! {
                recv(exited) -> answer => {
                    break answer.unwrap_or_else(|_| Err(ApiError {
                        status: None,
                        message: "The wait for the exit ended unexpectedly.".into(),
                        detail: None,
                    })).map_err(still_running)?;
                }
                recv(interrupts) -> _ => {
                    interrupted = true;
                    if self.detach_on_interrupt {
                        eprintln!(
                            "procwarden: interrupted; process {id} still runs on the agent \
                             (procwarden output {id}; end it with: procwarden kill {id})"
                        );
                        return Ok(EXIT_INTERRUPTED);
                    }
                    if stage == Stage::Running {
                        let grace = self.interrupt_grace;
                        let sent = client.signal_with_grace(id, "interrupt", Some(grace));
                        if signal_failed(sent, id, "interrupt") {
                            eprintln!(
                                "procwarden: interrupted; sent SIGINT to process {id} (SIGKILL \
                                 in {}, or at the next Ctrl-C)",
                                human_grace(grace)
                            );
                        }
                        stage = Stage::Interrupted;
                        deadline = Some(crate::time::deadline_in(
                            grace.saturating_add(EXEC_TIMEOUT_GUARD),
                        ));
                    } else {
                        let sent = client.signal(id, "kill");
                        if signal_failed(sent, id, "kill") {
                            eprintln!("procwarden: interrupted again; sent SIGKILL to process {id}");
                        }
                        stage = Stage::Killed;
                        deadline = Some(crate::time::deadline_in(KILL_SETTLE));
                    }
                }
                recv(timer) -> _ => {
                    if stage == Stage::Killed {
                        // SIGKILL did not end it in time: show what there is.
                        let answer = client.output(id, None, None)?;
                        show(out, &answer, self.json)?;
                        eprintln!(
                            "procwarden: sent SIGKILL to process {id}, which still runs \
                             (procwarden ps)"
                        );
                        return Ok(if interrupted { EXIT_INTERRUPTED } else { EXIT_TIMED_OUT });
                    }
                    // The agent did not end it (one that ignores timeout_ms or grace_ms).
                    guard_killed = !interrupted;
                    let _ = signal_failed(client.signal(id, "kill"), id, "kill");
                    stage = Stage::Killed;
                    deadline = Some(crate::time::deadline_in(KILL_SETTLE));
                }
            }
        };
        show(out, &answer, self.json)?;
        if let Some(cut) = &answer.truncated {
            // The log route names the whole stream only where the agent kept one (an agent
            // without logs, such as coder's, ignores `log: true`).
            let has_log = logged && client.log_read(id, 0, 0).is_ok();
            let see = if has_log { "log" } else { "output" };
            eprintln!(
                "procwarden: output truncated ({} bytes omitted); see: procwarden {see} {id}",
                cut.omitted_bytes
            );
        }
        if interrupted {
            return Ok(EXIT_INTERRUPTED);
        }
        if let Some((_, text)) = self.timeout
            && (answer.timed_out == Some(true) || guard_killed)
        {
            eprintln!("procwarden: timed out after {text}; process {id} was ended");
            return Ok(EXIT_TIMED_OUT);
        }
        Ok(exit_status(&answer))
    }
}

/// Whether a signal was sent; a process that exited meanwhile (409) is not a failure, any
/// other error is reported on stderr (the wait goes on: the exit still comes).
fn signal_failed(sent: Result<api::Message, ApiError>, id: &str, signal: &str) -> bool {
    match sent {
        Ok(_) => true,
        Err(e) if e.status == Some(409) => false,
        Err(e) => {
            eprintln!(
                "procwarden: cannot send {signal} to process {id}: {}",
                one_line(&e.to_string())
            );
            false
        }
    }
}

/// A grace as people write it: `2s`, `1500ms`.
fn human_grace(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// Waits for the exit of `id` on a thread of its own (long polls, one after another) and sends
/// the final answer, or the error that ended the wait, on the returned channel.
fn wait_in_background(
    client: &Client,
    id: &str,
) -> Receiver<Result<api::OutputResponse, ApiError>> {
    let (tx, rx) = bounded(1);
    let client = client.clone();
    let id = id.to_string();
    let spawned = std::thread::Builder::new()
        .name("procwarden-exec-wait".into())
        .spawn(move || {
            let result = loop {
                match client.output(&id, None, Some(LONG_POLL)) {
                    Ok(answer) if answer.running => {}
                    done => break done,
                }
            };
            let _ = tx.send(result);
        });
    if let Err(e) = spawned {
        let (tx, rx) = bounded(1);
        let _ = tx.send(Err(ApiError {
            status: None,
            message: "Cannot start the thread that waits for the exit.".into(),
            detail: Some(e.to_string()),
        }));
        return rx;
    }
    rx
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
            show(out, &answer, json)?;
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
pub(super) fn exit_status(answer: &api::OutputResponse) -> u8 {
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
pub(super) fn signal_number(name: &str) -> Option<u8> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn exited(code: Option<i32>, signal: Option<&str>, timed_out: bool) -> api::OutputResponse {
        api::OutputResponse {
            output: String::new(),
            truncated: None,
            running: false,
            exit_code: code,
            signal: signal.map(str::to_string),
            timed_out: timed_out.then_some(true),
            next_cursor: 0,
            command: String::new(),
            stdin_open: None,
            tty: None,
            input_dropped_bytes: None,
            ..api::OutputResponse::default()
        }
    }

    #[test]
    fn an_agent_on_this_host_is_loopback_or_a_unix_socket() {
        for url in [
            "unix:/run/procwarden.sock",
            "http://127.0.0.1:7717",
            "http://127.1.2.3",
            "HTTP://LOCALHOST:1/prefix",
            "http://[::1]:7717",
        ] {
            assert!(agent_on_this_host(url), "{url}");
        }
        for url in [
            "http://10.0.0.1:7717",
            "http://[2001:db8::1]:7717",
            "http://agent.example:7717",
            "http://localhost.example",
        ] {
            assert!(!agent_on_this_host(url), "{url}");
        }
    }

    #[test]
    fn errors_say_what_to_do_next() {
        let e = |status, message: &str| ApiError {
            status,
            message: message.into(),
            detail: None,
        };
        let url = "http://127.0.0.1:1";
        assert_eq!(
            with_hint(&e(None, "No answer from http://127.0.0.1:1."), url),
            "No answer from http://127.0.0.1:1. Is procwarden serve running at http://127.0.0.1:1?"
        );
        assert!(
            with_hint(&e(Some(401), "Unauthorized."), url)
                .starts_with("Unauthorized. Set PROCWARDEN_TOKEN or --token-file")
        );
        assert_eq!(
            with_hint(&e(Some(404), "Not found."), "http://h:1/agent"),
            "Not found. --url should be the agent's base URL, e.g. http://127.0.0.1:7717 (got \
             http://h:1/agent)."
        );
        assert_eq!(
            with_hint(&e(Some(404), "Process \"x\" not found."), url),
            "Process \"x\" not found."
        );
        assert_eq!(human_grace(Duration::from_secs(2)), "2s");
        assert_eq!(human_grace(Duration::from_millis(1500)), "1500ms");
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
}
