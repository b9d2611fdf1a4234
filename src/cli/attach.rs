//! `procwarden attach ID` and `procwarden exec --tty`: the local terminal attached to a process
//! of the agent.
//!
//! Three threads and the calling one, all blocking, none polling:
//!
//! - **output**: long polls of the output route on a cursor (`wait=true`, the longest wait the
//!   agent grants), each answer's text handed to the calling thread, which writes it to the
//!   command's output at once, until the process exits;
//! - **keys**: blocking reads of stdin, each read sent through the input route at once (raw
//!   bytes, base64). The detach key (`Ctrl-]` then `d`) is taken out of the stream;
//! - **signals**: `sigwait` for SIGWINCH (the local window changed: the resize route),
//!   SIGINT (from the local terminal when it is not in raw mode: passed on), SIGTERM, SIGHUP
//!   and SIGQUIT (this command is asked to end: it detaches). The signals are blocked in every
//!   thread, so no handler ever runs;
//! - the calling thread waits for the first event that ends the attachment, restores the
//!   terminal (a guard does it on every path, a panic's unwinding included) and reports.
//!
//! With a terminal process the local terminal is put in raw mode: every key, Ctrl-C included,
//! is a byte for the process, and the process's terminal turns Ctrl-C into SIGINT for its
//! foreground group, exactly as a local terminal would. With a pipe process (`stdin: "pipe"`)
//! the local terminal stays as it is: lines are sent as they are entered, end of file (Ctrl-D)
//! closes the process's input, and Ctrl-C sends it SIGINT through the signal route.

use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::thread;

use base64::Engine as _;
use crossbeam_channel::{Sender, unbounded};

use super::LONG_POLL;
use crate::api::{self, ApiError, OutputOptions};
use crate::client::Client;

/// The first key of the detach sequence: `Ctrl-]` (the telnet escape).
pub const DETACH_PREFIX: u8 = 0x1d;
/// The key after [`DETACH_PREFIX`] that detaches. Any other key after the prefix sends both;
/// the prefix twice sends it once.
pub const DETACH_KEY: u8 = b'd';
/// Most bytes one read of stdin takes (and so one input request carries).
pub const KEY_READ_BYTES: usize = 16384;
/// Size of a terminal started by `exec --tty` when this command's output is not a terminal.
pub const DEFAULT_TTY_SIZE: (u16, u16) = (24, 80);
/// Largest rows or columns the agent accepts; a larger local terminal is sent as this.
pub const MAX_TTY_SIDE: u16 = 1000;

/// The signals the signal thread takes.
const SIGNALS: [i32; 5] = [
    libc::SIGWINCH,
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
];

/// How an attachment ended.
#[derive(Debug)]
// One value per attach session, returned once: boxing the answer would buy nothing.
#[allow(clippy::large_enum_variant)]
pub(super) enum Attached {
    /// The process exited: the last output answer (its output already written).
    Exited(api::OutputResponse),
    /// The detach key: the process runs on.
    Detached,
    /// This command got a signal that ends it (SIGTERM, SIGHUP, SIGQUIT): the process runs
    /// on.
    Signalled(i32),
}

/// What the threads tell the calling one.
enum Event {
    /// Text to show.
    Output(String),
    Exited(api::OutputResponse),
    Detach,
    Signal(i32),
    /// Something to tell the person without ending the attachment.
    Notice(String),
    Failed(ApiError),
}

/// The size of the local terminal (stdin's, else stdout's), clamped to what the agent accepts.
pub(super) fn local_size() -> Option<(u16, u16)> {
    let size = crate::sys::window_size(io::stdin().as_fd())
        .or_else(|_| crate::sys::window_size(io::stdout().as_fd()))
        .ok()?;
    let clamp = |n: u16| n.clamp(1, MAX_TTY_SIDE);
    Some((clamp(size.0), clamp(size.1)))
}

/// Puts the terminal back when dropped.
struct RawGuard(Option<crate::sys::SavedMode>);

impl Drop for RawGuard {
    fn drop(&mut self) {
        if let Some(saved) = self.0.take() {
            let _ = saved.restore();
        }
    }
}

/// Attaches the local terminal to process `id`, showing its output from stream offset
/// `cursor` on, until it exits, the detach key, or a signal that ends this command.
///
/// # Errors
///
/// The agent's error answer, or no answer, for the first read; later failures end the
/// attachment with the error (the terminal restored first).
pub(super) fn attach(
    client: &Client,
    id: &str,
    cursor: u64,
    out: &mut dyn Write,
) -> Result<Attached, ApiError> {
    let first = client.output(id, Some(u64::MAX), None)?;
    if !first.running {
        // Nothing to attach to: show what it wrote and how it ended.
        let all = client.output(id, Some(cursor), None)?;
        write_out(out, &all.output)?;
        return Ok(Attached::Exited(all));
    }
    let tty = first.tty.is_some();
    if !tty && first.stdin_open != Some(true) {
        return Err(ApiError {
            status: None,
            message: format!(
                "Process \"{id}\" takes no input (it was started without a terminal or stdin pipe); \
                 procwarden output --follow {id} shows its output."
            ),
            detail: None,
        });
    }
    // Blocked before any thread starts, so that every thread inherits the mask and only the
    // signal thread receives them.
    crate::sys::block_signals(&SIGNALS).map_err(|e| local_error("cannot block signals", &e))?;
    let stdin = io::stdin();
    let local_tty = crate::sys::window_size(stdin.as_fd()).is_ok();
    let _guard = RawGuard(if tty && local_tty {
        Some(
            crate::sys::make_raw(stdin.as_fd())
                .map_err(|e| local_error("cannot put the terminal in raw mode", &e))?,
        )
    } else {
        None
    });
    if tty && let Some((rows, cols)) = local_size() {
        // The process gets this terminal's size now, and SIGWINCH if it differed.
        client.resize(id, rows, cols)?;
    }
    let (events, inbox) = unbounded();
    spawn("procwarden-output", &events, {
        let (client, id, events) = (client.clone(), id.to_string(), events.clone());
        move || follow(&client, &id, cursor, &events)
    })?;
    spawn("procwarden-keys", &events, {
        let (client, id, events) = (client.clone(), id.to_string(), events.clone());
        move || keys(&client, &id, &events)
    })?;
    spawn("procwarden-signals", &events, {
        let (client, id, events) = (client.clone(), id.to_string(), events.clone());
        move || signals(&client, &id, tty, &events)
    })?;
    drop(events);
    loop {
        // Every thread holds a sender until it has sent its last event, and the output thread
        // ends only with one: the channel cannot run dry while the attachment lasts.
        let Ok(event) = inbox.recv() else {
            return Err(local_error(
                "the attachment's threads ended",
                &io::Error::other("no thread left"),
            ));
        };
        match event {
            Event::Output(text) => write_out(out, &text)?,
            Event::Exited(last) => return Ok(Attached::Exited(last)),
            Event::Detach => return Ok(Attached::Detached),
            Event::Signal(sig) => return Ok(Attached::Signalled(sig)),
            Event::Notice(text) => {
                eprint!("\r\nprocwarden: {text}\r\n");
            }
            Event::Failed(e) => return Err(e),
        }
    }
}

/// Starts a thread running `body`; a panic in it becomes a failure event.
fn spawn(
    name: &str,
    events: &Sender<Event>,
    body: impl FnOnce() + Send + 'static,
) -> Result<(), ApiError> {
    let on_panic = events.clone();
    thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).is_err() {
                let _ = on_panic.send(Event::Failed(local_error(
                    "a thread of the attachment panicked",
                    &io::Error::other("panic"),
                )));
            }
        })
        .map(drop)
        .map_err(|e| local_error("cannot start a thread", &e))
}

/// An error of this command's own (no answer involved).
fn local_error(what: &str, e: &io::Error) -> ApiError {
    ApiError {
        status: None,
        message: format!("Attach failed: {what}."),
        detail: Some(e.to_string()),
    }
}

/// Shows `text` at once. A closed output ends the attachment (an error, not a detach).
fn write_out(out: &mut dyn Write, text: &str) -> Result<(), ApiError> {
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| local_error("cannot write the output", &e))
}

/// The output thread: long polls from `cursor` until the process exits.
fn follow(client: &Client, id: &str, mut cursor: u64, events: &Sender<Event>) {
    let options = |cursor| OutputOptions {
        cursor: Some(cursor),
        wait: Some(LONG_POLL),
        ..OutputOptions::default()
    };
    loop {
        match client.output_with(id, &options(cursor)) {
            Ok(answer) => {
                cursor = answer.next_cursor;
                if !answer.running {
                    // Its output first: the channel keeps the order.
                    let _ = events.send(Event::Output(answer.output.clone()));
                    let _ = events.send(Event::Exited(answer));
                    return;
                }
                if !answer.output.is_empty() && events.send(Event::Output(answer.output)).is_err() {
                    return;
                }
            }
            Err(e) => {
                let _ = events.send(Event::Failed(e));
                return;
            }
        }
    }
}

/// Takes the detach sequence out of `input`, appending what is to be sent to `out`; `pending`
/// carries a prefix that ended the previous read. Returns whether the detach key came (what
/// preceded it is in `out`; what follows it is dropped).
pub(super) fn scan_keys(pending: &mut bool, input: &[u8], out: &mut Vec<u8>) -> bool {
    for &byte in input {
        if std::mem::take(pending) {
            match byte {
                DETACH_KEY => return true,
                DETACH_PREFIX => out.push(DETACH_PREFIX),
                other => out.extend_from_slice(&[DETACH_PREFIX, other]),
            }
        } else if byte == DETACH_PREFIX {
            *pending = true;
        } else {
            out.push(byte);
        }
    }
    false
}

/// Queues `bytes` (and the close, if asked) for the process.
fn send_input(client: &Client, id: &str, bytes: &[u8], close: bool) -> Result<(), ApiError> {
    let request = api::InputRequest {
        data: None,
        data_base64: (!bytes.is_empty())
            .then(|| base64::engine::general_purpose::STANDARD.encode(bytes)),
        close: close.then_some(true),
    };
    client.input(id, &request).map(drop)
}

/// The keys thread: reads stdin and sends what it reads, until the detach key, the end of
/// stdin (which closes the process's input), or the process's input is closed.
fn keys(client: &Client, id: &str, events: &Sender<Event>) {
    let mut stdin = io::stdin().lock();
    let mut buf = vec![0u8; KEY_READ_BYTES];
    let mut pending = false;
    let mut send = Vec::with_capacity(KEY_READ_BYTES + 1);
    loop {
        let n = match stdin.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = events.send(Event::Failed(local_error("cannot read the keyboard", &e)));
                return;
            }
        };
        send.clear();
        let detach = n > 0 && scan_keys(&mut pending, &buf[..n], &mut send);
        if n == 0 && pending {
            send.push(DETACH_PREFIX);
        }
        let close = n == 0;
        if !send.is_empty() || close {
            match send_input(client, id, &send, close) {
                Ok(()) => {}
                // The process's input is closed, or it is exiting: the output thread reports
                // the exit; keys are of no more use.
                Err(e) if e.status == Some(409) && !e.message.contains("full") => return,
                Err(e) if e.status == Some(409) => {
                    let _ = events.send(Event::Notice(e.message));
                }
                Err(e) => {
                    let _ = events.send(Event::Failed(e));
                    return;
                }
            }
        }
        if detach {
            let _ = events.send(Event::Detach);
            return;
        }
        if close {
            // The end of stdin (never in raw mode: only when stdin is not the terminal, or the
            // terminal's end-of-file key for a pipe process). The process was sent its end of
            // file (for a terminal, VEOF); its exit, if it comes, is the output thread's.
            return;
        }
    }
}

/// The signals thread: the window size follows the local terminal; Ctrl-C outside raw mode is
/// passed on; a request to end this command detaches.
fn signals(client: &Client, id: &str, tty: bool, events: &Sender<Event>) {
    loop {
        let sig = match crate::sys::wait_for_signal(&SIGNALS) {
            Ok(sig) => sig,
            Err(e) => {
                let _ = events.send(Event::Failed(local_error("cannot wait for signals", &e)));
                return;
            }
        };
        let result = match sig {
            libc::SIGWINCH if tty => match local_size() {
                Some((rows, cols)) => client.resize(id, rows, cols).map(drop),
                None => Ok(()),
            },
            libc::SIGWINCH => Ok(()),
            // Ctrl-C in a terminal that is not in raw mode (stdin is not the terminal, or the
            // process has a pipe): what Ctrl-C would have done had the key reached it.
            libc::SIGINT if tty => send_input(client, id, &[0x03], false),
            libc::SIGINT => client.signal(id, "interrupt").map(drop),
            other => {
                let _ = events.send(Event::Signal(other));
                return;
            }
        };
        match result {
            Ok(()) => {}
            // The process exited meanwhile: the output thread reports it.
            Err(e) if e.status == Some(409) => {}
            Err(e) => {
                let _ = events.send(Event::Notice(e.to_string()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(pending: &mut bool, input: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::new();
        let detach = scan_keys(pending, input, &mut out);
        (out, detach)
    }

    #[test]
    fn the_detach_sequence_is_taken_out() {
        let mut pending = false;
        assert_eq!(scan(&mut pending, b"ls\r"), (b"ls\r".to_vec(), false));
        assert_eq!(scan(&mut pending, b"ab\x1dd rest"), (b"ab".to_vec(), true));
        // Split across reads.
        let mut pending = false;
        assert_eq!(scan(&mut pending, b"x\x1d"), (b"x".to_vec(), false));
        assert!(pending);
        assert_eq!(scan(&mut pending, b"d"), (Vec::new(), true));
    }

    #[test]
    fn the_prefix_alone_is_passed_on() {
        let mut pending = false;
        assert_eq!(scan(&mut pending, b"\x1dx"), (b"\x1dx".to_vec(), false));
        assert_eq!(scan(&mut pending, b"\x1d\x1d"), (b"\x1d".to_vec(), false));
        assert!(!pending);
        assert_eq!(scan(&mut pending, b"\x03"), (b"\x03".to_vec(), false));
        assert_eq!(scan(&mut pending, b"\x1d"), (Vec::new(), false));
        assert_eq!(scan(&mut pending, b"\x1d"), (b"\x1d".to_vec(), false));
    }
}
