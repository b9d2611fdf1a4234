//! A process's input: the bounded queue that requests fill ([`Input::push`]) and that the
//! thread watching the process drains into the child's stdin ([`Input::service`]).
//!
//! Why a queue and the watcher: a child that does not read must never block a request, nor
//! another process. So a request only appends to the queue (under a short lock), wakes the
//! watcher, and answers at once; the watcher writes in non-blocking mode as the child reads,
//! polling the fd for room in between, in the order the bytes were queued. A close is one more
//! entry in that order: the pipe's write end is closed (EOF), or the terminal's end-of-file
//! character is written at the start of a line, once everything queued before it is written.
//!
//! Bytes that never reach the process are counted ([`Input::dropped`]): what is still queued
//! when the process exits or closes its end, and for a pipe also what sits unread in the
//! kernel's pipe buffer (`FIONREAD` on the write end), so the count is exactly what the
//! process never read.
//!
//! Lock order: a process's state lock may be held while this one is taken, never the other
//! way round.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::info::{InputQueued, TerminalSize};
use crate::sys;

/// What a process's input is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InputKind {
    /// The write end of the pipe that is the child's stdin.
    Pipe,
    /// The master side of the child's terminal (its stdin, stdout and stderr).
    Terminal,
}

/// Why a push was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The input was closed, or the process ended or closed its end.
    NotOpen,
    /// The bytes would take the pending bytes past the bound: nothing was queued.
    Full,
}

/// What the watcher has to do about the input after [`Input::service`].
pub(crate) enum Service {
    /// Nothing to write now: wait for the waker.
    Idle,
    /// Bytes wait for room in the child's input: poll this fd for writing (and the waker).
    Write(Arc<OwnedFd>),
    /// Nothing will ever be written again: stop watching the input.
    Done,
}

/// One process's input.
pub(crate) struct Input {
    kind: InputKind,
    /// Wakes the watcher: bytes were queued, a close was asked for, or the process ended.
    /// Let go of once the watcher is done with the input for good, so that an exited record
    /// kept for its output holds no descriptor for it (the watcher holds its own copy while it
    /// polls).
    waker: Mutex<Option<Arc<sys::Waker>>>,
    /// Most bytes pending at once (queued, and for a pipe, unread in the kernel's buffer).
    max_pending: usize,
    /// The terminal's end-of-file character (terminals only).
    eof_char: u8,
    state: Mutex<InputState>,
}

struct InputState {
    /// The pipe's write end or the terminal's master; `None` once closed. Shared so that the
    /// watcher can poll it without holding the lock: whoever sets this to `None`, the fd is
    /// closed only when the watcher has let go of its copy too, so its number is never reused
    /// under a poll.
    fd: Option<Arc<OwnedFd>>,
    /// After a pipe's close: a read end of the same pipe, opened just before our write end
    /// was closed (where the platform can), so that what the process never read can still be
    /// counted when it exits.
    unread_probe: Option<OwnedFd>,
    queue: VecDeque<u8>,
    /// A close was asked for: nothing more is accepted.
    close_requested: bool,
    /// End-of-file characters still to write (terminal close); `None` until the close is
    /// reached in the queue.
    eof_left: Option<u8>,
    /// The close has taken effect (pipe closed, or end-of-file written).
    closed: bool,
    /// The process exited or closed its end: nothing is written any more.
    ended: bool,
    /// Bytes the process never read.
    dropped: u64,
    /// The last byte written to a terminal, to tell whether a line is open.
    last_written: Option<u8>,
    /// The terminal's size as last set.
    size: Option<TerminalSize>,
}

/// A queue that has grown this large is given its memory back once empty.
const SHRINK_ABOVE_BYTES: usize = 64 * 1024;

impl Input {
    /// The input of a new child: `fd` is the pipe's write end or the terminal's master (set
    /// non-blocking here; for a terminal with its size).
    pub(crate) fn new(
        kind: InputKind,
        fd: OwnedFd,
        size: Option<TerminalSize>,
        max_pending: usize,
    ) -> io::Result<Input> {
        sys::set_nonblocking(fd.as_fd(), true)?;
        let eof_char = match kind {
            InputKind::Terminal => sys::eof_char(fd.as_fd()),
            InputKind::Pipe => 0,
        };
        Ok(Input {
            kind,
            waker: Mutex::new(Some(Arc::new(sys::Waker::new()?))),
            max_pending,
            eof_char,
            state: Mutex::new(InputState {
                fd: Some(Arc::new(fd)),
                unread_probe: None,
                queue: VecDeque::new(),
                close_requested: false,
                eof_left: None,
                closed: false,
                ended: false,
                dropped: 0,
                last_written: None,
                size,
            }),
        })
    }

    /// Whether the input is a terminal.
    pub(crate) fn is_terminal(&self) -> bool {
        self.kind == InputKind::Terminal
    }

    /// Queues `bytes`, then with `close` the close, and wakes the watcher. Never blocks on
    /// the child. Nothing is queued (nor closed) when the bytes do not fit.
    pub(crate) fn push(&self, bytes: &[u8], close: bool) -> Result<InputQueued, Refused> {
        let mut state = self.state.lock();
        if state.ended || state.close_requested {
            return Err(Refused::NotOpen);
        }
        let pending = self.pending_locked(&state);
        if pending.saturating_add(bytes.len()) > self.max_pending {
            return Err(Refused::Full);
        }
        state.queue.extend(bytes);
        state.close_requested = close;
        drop(state);
        self.wake();
        Ok(InputQueued {
            queued_bytes: bytes.len() as u64,
            pending_bytes: (pending + bytes.len()) as u64,
        })
    }

    /// Bytes queued and not yet read by the process: the queue, and for a pipe what its kernel
    /// buffer holds unread.
    fn pending_locked(&self, state: &InputState) -> usize {
        let probe = state
            .fd
            .as_deref()
            .or(state.unread_probe.as_ref())
            .filter(|_| self.kind == InputKind::Pipe);
        let unread = probe.map_or(0, |fd| sys::unread_bytes(fd.as_fd()).unwrap_or(0));
        state.queue.len() + unread
    }

    /// Whether the input still takes bytes (`stdin_open`).
    pub(crate) fn is_open(&self) -> bool {
        let state = self.state.lock();
        !state.ended && !state.close_requested
    }

    /// Bytes the process never read.
    pub(crate) fn dropped(&self) -> u64 {
        self.state.lock().dropped
    }

    /// The terminal's size as last set (`None` for a pipe).
    pub(crate) fn size(&self) -> Option<TerminalSize> {
        self.state.lock().size
    }

    /// Sets the terminal's size (the process gets SIGWINCH). `Ok(false)` when there is no
    /// terminal (any more) to resize.
    pub(crate) fn resize(&self, size: TerminalSize) -> io::Result<bool> {
        let mut state = self.state.lock();
        let Some(fd) = state
            .fd
            .as_ref()
            .filter(|_| self.is_terminal() && !state.ended)
        else {
            return Ok(false);
        };
        sys::set_window_size(fd.as_fd(), size.rows, size.cols)?;
        state.size = Some(size);
        Ok(true)
    }

    /// The process has exited, or its output ended (a terminal whose every slave side is
    /// closed): what is still pending is dropped and counted, our end is let go of, and the
    /// watcher is woken to stop watching.
    pub(crate) fn end(&self) {
        let mut state = self.state.lock();
        self.end_locked(&mut state);
        drop(state);
        self.wake();
    }

    fn end_locked(&self, state: &mut InputState) {
        if state.ended {
            return;
        }
        let pending = self.pending_locked(state);
        state.dropped += pending as u64;
        state.queue = VecDeque::new();
        state.ended = true;
        state.fd = None;
        state.unread_probe = None;
    }

    fn wake(&self) {
        if let Some(waker) = &*self.waker.lock() {
            waker.wake();
        }
    }

    /// The waker the watcher polls (`None` once it is done with the input).
    pub(crate) fn waker(&self) -> Option<Arc<sys::Waker>> {
        self.waker.lock().clone()
    }

    /// Watcher side: consumes wake-ups, writes what the child has room for, carries out a
    /// close that has been reached, and says what to wait for next. Once it answers
    /// [`Service::Done`] it always will, and the input's waker is let go of.
    pub(crate) fn service(&self) -> Service {
        // Wake-ups are consumed before the state is looked at, so none that comes after the
        // look is lost.
        if let Some(waker) = &*self.waker.lock() {
            waker.drain();
        }
        let service = self.write_what_fits();
        if matches!(service, Service::Done) {
            *self.waker.lock() = None;
        }
        service
    }

    fn write_what_fits(&self) -> Service {
        let mut state = self.state.lock();
        loop {
            // After a close nothing is written any more (a terminal's master stays open for
            // resizes).
            if state.ended || state.closed {
                return Service::Done;
            }
            let Some(fd) = state.fd.clone() else {
                return Service::Done;
            };
            let eof = [self.eof_char];
            let chunk: &[u8] = if !state.queue.is_empty() {
                state.queue.as_slices().0
            } else if state.eof_left.is_some_and(|n| n > 0) {
                &eof
            } else if state.close_requested {
                match self.kind {
                    InputKind::Pipe => {
                        // Everything queued is in the pipe: closing our end is the EOF.
                        state.unread_probe = sys::pipe_reader(fd.as_fd()).unwrap_or(None);
                        state.fd = None;
                        state.closed = true;
                        return Service::Done;
                    }
                    InputKind::Terminal => {
                        if state.eof_left.is_some() {
                            state.closed = true;
                            return Service::Done;
                        }
                        // VEOF ends a read only at the start of a line; inside one it first
                        // hands over the line so far, and a second one is then at the start.
                        let at_line_start =
                            matches!(state.last_written, None | Some(b'\n' | b'\r'));
                        state.eof_left = Some(if at_line_start { 1 } else { 2 });
                        continue;
                    }
                }
            } else {
                if state.queue.capacity() > SHRINK_ABOVE_BYTES {
                    state.queue = VecDeque::new();
                }
                return Service::Idle;
            };
            match sys::write_input(fd.as_fd(), chunk) {
                Ok(0) => return Service::Write(fd),
                Ok(n) => {
                    let last = chunk[n - 1];
                    if state.queue.is_empty() {
                        state.eof_left = state.eof_left.map(|left| left - 1);
                    } else {
                        state.queue.drain(..n);
                    }
                    state.last_written = Some(last);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Service::Write(fd),
                Err(e) => {
                    // EPIPE: the process closed its end (or exited); EIO: the terminal's
                    // every slave side is closed. Either way nothing is read any more.
                    log::debug!("writing input failed: {e}; dropping what is pending");
                    self.end_locked(&mut state);
                    return Service::Done;
                }
            }
        }
    }
}
