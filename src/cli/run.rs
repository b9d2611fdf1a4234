//! Running the client subcommands against the agent: the requests each one makes, how long it
//! polls, what it prints, and the exit code that stands for the process's status.

use std::io::{self, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::args::{ClientOptions, Command};
use super::format::{one_line, ps_table, tools_summary};
use super::{
    DEFAULT_COLUMNS, DEFAULT_URL, EXEC_SERVER_BACKSTOP, EXIT_FAILURE, EXIT_SIGNAL_BASE,
    EXIT_STATUS_UNKNOWN, EXIT_TIMED_OUT, KILL_SETTLE, LONG_POLL, MAX_SIGNAL_NUMBER, TOKEN_ENV,
    URL_ENV, env_value,
};
use crate::api;
use crate::client::Client;
use crate::tools::{self, ApiError};

/// Runs a client subcommand against the agent that `options` (or the environment) names;
/// failures are reported on stderr in one line.
pub(super) fn client_command(options: ClientOptions, command: &Command) -> ExitCode {
    let url = options
        .url
        .or_else(|| env_value(URL_ENV))
        .unwrap_or_else(|| DEFAULT_URL.to_string());
    let client = Client::new(url).token(env_value(TOKEN_ENV));
    let stdout = io::stdout();
    let mut out = stdout.lock();
    match execute(&client, command, options.json, &mut out) {
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
fn show(out: &mut dyn Write, response: &api::OutputResponse, json: bool) -> Result<(), Failure> {
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
                let columns = (!wide).then(terminal_columns);
                emit(out, &ps_table(&list.processes, unix_now(), columns))?;
            }
            Ok(0)
        }
        Command::Output { id, wait, follow } => output(client, id, *wait, *follow, json, out),
        Command::Kill { id, signal } => {
            let signalled = client.signal(id, signal)?;
            answer(out, json, &signalled, &format!("{}\n", signalled.message))?;
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
        answer(out, json, &started, &format!("{}\n", started.id))?;
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
    let deadline = timeout.map(|(d, _)| crate::time::deadline_from(started_at, *d));
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
            stdin_open: None,
            tty: None,
            input_dropped_bytes: None,
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
}
