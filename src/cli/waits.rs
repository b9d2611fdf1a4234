//! The client subcommands of the output issue: `output --until` (wait for a line that
//! matches), `wait` (any of several processes) and `log` (read or search a full log).

use std::io::Write;

use super::run::{Failure, emit, emit_json, exit_status, show, signal_number};
use super::{EXIT_FAILURE, EXIT_SIGNAL_BASE, EXIT_STATUS_UNKNOWN, EXIT_TIMED_OUT, LONG_POLL};
use crate::api;
use crate::client::Client;

/// `output ID --until REGEX`: long polls until a line matches or the process exits; prints the
/// output (and, on stderr, where the line was). Exits 0 when a line matched, else 1.
pub(super) fn output_until(
    client: &Client,
    id: &str,
    pattern: &str,
    json: bool,
    out: &mut dyn Write,
) -> Result<u8, Failure> {
    let options = api::OutputOptions {
        wait: Some(LONG_POLL),
        until: Some(pattern.to_string()),
        ..api::OutputOptions::default()
    };
    let answer = loop {
        let answer = client.output_with(id, &options)?;
        if answer.matched == Some(true) || !answer.running {
            break answer;
        }
    };
    show(out, &answer, json)?;
    match &answer.line_match {
        Some(found) => {
            if !json {
                eprintln!(
                    "procwarden: matched at offset {}: {}",
                    found.offset, found.line
                );
            }
            Ok(0)
        }
        None => {
            eprintln!(
                "procwarden: no line matched before the process exited (status {})",
                exit_status(&answer)
            );
            Ok(EXIT_FAILURE)
        }
    }
}

/// `wait ID...`: long polls until any of them exits; prints the exited ones; exits with the
/// status of the first of them to finish.
pub(super) fn wait(
    client: &Client,
    ids: &[String],
    json: bool,
    out: &mut dyn Write,
) -> Result<u8, Failure> {
    let answer = loop {
        let answer = client.wait_any(ids, Some(LONG_POLL))?;
        if !answer.exited.is_empty() {
            break answer;
        }
    };
    let mut exited = answer.exited.clone();
    // The first to finish: the earliest exit (by whole seconds, then by the order given).
    exited.sort_by_key(|p| p.exited_at_unix.unwrap_or(i64::MAX));
    let status = exited.first().map_or(EXIT_STATUS_UNKNOWN, info_status);
    if json {
        emit_json(out, &answer)?;
    } else {
        let mut text = String::new();
        for info in &answer.exited {
            text.push_str(&format!("{} {}\n", info.id, status_text(info)));
        }
        emit(out, &text)?;
    }
    Ok(status)
}

/// The exit code that stands for an exited process's status (as [`exit_status`] for an
/// output answer).
fn info_status(info: &api::ProcessInfo) -> u8 {
    if info.timed_out == Some(true) {
        return EXIT_TIMED_OUT;
    }
    if let Some(name) = &info.signal {
        return signal_number(name).map_or(EXIT_STATUS_UNKNOWN, |n| EXIT_SIGNAL_BASE + n);
    }
    info.exit_code
        .and_then(|code| u8::try_from(code).ok())
        .unwrap_or(EXIT_STATUS_UNKNOWN)
}

/// `exit 3`, `SIGKILL`, `timed out`.
fn status_text(info: &api::ProcessInfo) -> String {
    if info.timed_out == Some(true) {
        return "timed out".into();
    }
    match (&info.signal, info.exit_code) {
        (Some(signal), _) => signal.clone(),
        (None, Some(code)) => format!("exit {code}"),
        (None, None) => "exited".into(),
    }
}

/// `log ID [--offset N] [--search RE]`: the full log from `offset` to its end (read in ranges
/// of at most [`api::MAX_LOG_LIMIT`]), or the lines that match.
pub(super) fn log(
    client: &Client,
    id: &str,
    offset: u64,
    search: Option<&str>,
    limit: u64,
    json: bool,
    out: &mut dyn Write,
) -> Result<u8, Failure> {
    if let Some(pattern) = search {
        let found = client.log_search(id, pattern, limit)?;
        if json {
            emit_json(out, &found)?;
        } else {
            let mut text = String::new();
            for m in &found.matches {
                text.push_str(&format!("{}:{}:{}\n", m.line_number, m.offset, m.line));
            }
            emit(out, &text)?;
            if found.more {
                eprintln!(
                    "procwarden: more lines matched; raise --limit (at most {})",
                    api::MAX_LOG_SEARCH_LIMIT
                );
            }
        }
        return Ok(0);
    }
    let mut at = offset;
    // Each read moves forward by at least one byte until the end of the file, so this ends
    // once the log is read (a log is at most its size bound).
    loop {
        let chunk = client.log_read(id, at, api::MAX_LOG_LIMIT)?;
        if json {
            emit_json(out, &chunk)?;
        } else {
            emit(out, &chunk.output)?;
        }
        if chunk.next_offset >= chunk.log_bytes || chunk.next_offset <= at {
            if let Some(error) = &chunk.log_error {
                eprintln!("procwarden: the log is incomplete: {error}");
            } else if chunk.log_truncated == Some(true) {
                eprintln!("procwarden: the log stopped at its size bound");
            }
            return Ok(0);
        }
        at = chunk.next_offset;
    }
}
