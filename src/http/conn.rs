//! One connection, on its own thread: read a request, call the service, write the response,
//! until the connection ends. Every read and write carries a deadline from [`Limits`]
//! (the socket timeout is set to the time that remains before each call): nothing here
//! polls or sleeps.
//!
//! The read buffer carries over from one request to the next, so pipelined requests are
//! answered in order.
//!
//! [`Limits`]: super::Limits

use std::any::Any;
use std::io;
use std::net::Shutdown;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant, SystemTime};

use super::head::{self, Framing, Head, Parsed};
use super::server::{Shared, State};
use super::stream::Stream;
use super::wire::{self, Connection, ErrorAnswer};
use super::{Request, Response};
use crate::handler::{AfterSent, Body};
use crate::interrupt::Interrupt;
use crate::time::deadline_in;

/// Initial size of a connection's read buffer. It grows as a request needs (up to the head
/// and body limits) and shrinks back to this between requests once over
/// [`RETAINED_BUFFER_BYTES`].
const INITIAL_BUFFER_BYTES: usize = 4 * 1024;
/// Room made for each read (more when a body of known length needs more).
const MIN_READ_BYTES: usize = 4 * 1024;
/// Largest read buffer kept between requests: an idle connection that once received a large
/// body does not keep its memory.
const RETAINED_BUFFER_BYTES: usize = 64 * 1024;

/// Serves connection `id` until it ends, then gives up its slot.
pub(super) fn serve(shared: &Shared, id: u64, stream: &Stream, peer: String) {
    /// Gives up the slot even if this thread panics.
    struct Slot<'a>(&'a Shared, u64);
    impl Drop for Slot<'_> {
        fn drop(&mut self) {
            self.0.leave(self.1);
        }
    }
    let _slot = Slot(shared, id);
    log::debug!("http: connection {id} from {peer} open");
    let mut conn = Conn {
        shared,
        id,
        stream,
        peer,
        buf: vec![0; INITIAL_BUFFER_BYTES],
        start: 0,
        end: 0,
    };
    let why = match stream.set_write_timeout(shared.limits.write_timeout) {
        Ok(()) => conn.run(),
        Err(e) => format!("cannot set the write timeout: {e}"),
    };
    log::debug!("http: connection {id} from {} closed: {why}", conn.peer);
}

/// How reading a request ended early.
enum End {
    /// Close without answering (the client left, or we were evicted).
    Quiet(String),
    /// Answer this, then close.
    Answer(ErrorAnswer),
}

/// Why a read returned no bytes.
enum ReadError {
    /// The client closed its side (or our socket was shut down: evicted).
    Eof,
    /// The deadline passed.
    TimedOut,
    /// The socket failed.
    Failed(io::Error),
}

impl ReadError {
    /// What it means while reading `what` ("request head", "request body").
    fn ends(self, what: &str) -> End {
        match self {
            ReadError::Eof => End::Quiet(format!("end of stream in the middle of a {what}")),
            ReadError::TimedOut => End::Answer(ErrorAnswer::timeout(&format!(
                "the {what} did not arrive in time"
            ))),
            ReadError::Failed(e) => End::Quiet(format!("read failed: {e}")),
        }
    }
}

/// The connection's state on its thread.
struct Conn<'a> {
    /// Limits, service, registry.
    shared: &'a Shared,
    /// Our registry id.
    id: u64,
    /// The socket.
    stream: &'a Stream,
    /// The peer, for the request and logs.
    peer: String,
    /// Read buffer: bytes `start..end` are received and not yet consumed.
    buf: Vec<u8>,
    /// First unconsumed byte.
    start: usize,
    /// End of the received bytes.
    end: usize,
}

impl Conn<'_> {
    /// Serves requests until the connection ends; returns why, for the log.
    fn run(&mut self) -> String {
        let limits = &self.shared.limits;
        loop {
            if self.shared.enter(self.id, State::Idle).is_none() {
                return "evicted, or the server is shutting down".into();
            }
            self.recycle_buffer();
            if self.pending() == 0 {
                match self.fill(deadline_in(limits.idle_timeout), 0) {
                    Ok(()) => {}
                    Err(ReadError::Eof) => return "closed by the client".into(),
                    Err(ReadError::TimedOut) => return "idle timeout".into(),
                    Err(ReadError::Failed(e)) => return format!("read failed: {e}"),
                }
            }
            if self.shared.enter(self.id, State::ReadingHead).is_none() {
                return "evicted".into();
            }
            let request = self.read_head().and_then(|head| {
                let body = self.read_body(&head)?;
                Ok((head, body))
            });
            let (head, body) = match request {
                Ok(request) => request,
                Err(end) => return self.finish(end),
            };
            match self.respond(head, body) {
                Ok(true) => {}
                Ok(false) => {
                    self.linger();
                    return "closed after the response".into();
                }
                Err(why) => return why,
            }
        }
    }

    /// Bytes received and not yet consumed.
    fn pending(&self) -> usize {
        self.end - self.start
    }

    /// Between requests: moves what is left (a pipelined request) to the front, and gives
    /// back memory a large body took.
    fn recycle_buffer(&mut self) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        if self.buf.len() > RETAINED_BUFFER_BYTES && self.pending() <= RETAINED_BUFFER_BYTES {
            self.compact();
            self.buf.truncate(self.end.max(INITIAL_BUFFER_BYTES));
            self.buf.shrink_to_fit();
        }
    }

    /// Moves the unconsumed bytes to the front of the buffer.
    fn compact(&mut self) {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
    }

    /// Reads at least one more byte before `deadline`, making room for `want` bytes (at
    /// least [`MIN_READ_BYTES`]).
    fn fill(&mut self, deadline: Instant, want: usize) -> Result<(), ReadError> {
        let room = want.max(MIN_READ_BYTES);
        if self.buf.len() - self.end < room {
            self.compact();
            if self.buf.len() - self.end < room {
                self.buf.resize(self.end + room, 0);
            }
        }
        loop {
            let left = time_left(deadline).ok_or(ReadError::TimedOut)?;
            self.stream
                .set_read_timeout(left)
                .map_err(ReadError::Failed)?;
            match self.stream.read(&mut self.buf[self.end..]) {
                Ok(0) => return Err(ReadError::Eof),
                Ok(n) => {
                    self.end += n;
                    return Ok(());
                }
                // A timeout (or a signal) before the deadline: read again for what is left.
                Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ReadError::Failed(e)),
            }
        }
    }

    /// Reads a complete request head; on return `start` is just past it.
    fn read_head(&mut self) -> Result<Head, End> {
        let limits = &self.shared.limits;
        let deadline = deadline_in(limits.head_timeout);
        // Bytes of the pending head already searched for a line end: a head can only become
        // complete (or wrong) at one, so a client that trickles bytes is not parsed per byte.
        let mut searched = 0;
        loop {
            let pending = &self.buf[self.start..self.end];
            let new_line = pending[searched..].contains(&b'\n');
            if new_line || pending.len() >= limits.max_head_bytes {
                match head::parse(pending, limits) {
                    Parsed::Complete(head) => {
                        self.start += head.len;
                        return Ok(head);
                    }
                    Parsed::Rejected(answer) => return Err(End::Answer(answer)),
                    Parsed::Partial => {}
                }
            }
            searched = pending.len();
            self.fill(deadline, 0).map_err(|e| e.ends("request head"))?;
        }
    }

    /// Reads the body the head announced (sending `100 Continue` first if the client waits
    /// for it); on return `start` is just past it.
    fn read_body(&mut self, head: &Head) -> Result<Vec<u8>, End> {
        let limits = &self.shared.limits;
        if head.framing == Framing::None {
            return Ok(Vec::new());
        }
        if self.shared.enter(self.id, State::ReadingBody).is_none() {
            return Err(End::Quiet("evicted".into()));
        }
        let deadline = deadline_in(limits.body_timeout);
        if head.expect_continue && self.pending() == 0 {
            self.write_all(wire::CONTINUE)
                .map_err(|e| End::Quiet(format!("write failed: {e}")))?;
        }
        match head.framing {
            Framing::None => Ok(Vec::new()),
            Framing::Length(n) => {
                // The head parser only lets lengths within the limit through.
                let n =
                    usize::try_from(n).map_err(|_| End::Answer(ErrorAnswer::body_too_large()))?;
                while self.pending() < n {
                    let want = n - self.pending();
                    self.fill(deadline, want)
                        .map_err(|e| e.ends("request body"))?;
                }
                let body = self.buf[self.start..self.start + n].to_vec();
                self.start += n;
                Ok(body)
            }
            Framing::Chunked => self.read_chunked(deadline),
        }
    }

    /// Decodes a chunked body (RFC 9112 §7.1): chunks until the last (size 0), then the
    /// trailer section, which is read and dropped. Chunk extensions are ignored. A chunk-size
    /// line, like the trailer section, may be at most [`Limits::max_head_bytes`] long.
    ///
    /// [`Limits::max_head_bytes`]: super::Limits::max_head_bytes
    fn read_chunked(&mut self, deadline: Instant) -> Result<Vec<u8>, End> {
        let limits = &self.shared.limits;
        let mut body = Vec::new();
        loop {
            let size = loop {
                match httparse::parse_chunk_size(&self.buf[self.start..self.end]) {
                    Ok(httparse::Status::Complete((used, size))) => {
                        self.start += used;
                        break size;
                    }
                    Ok(httparse::Status::Partial) if self.pending() > limits.max_head_bytes => {
                        return Err(End::Answer(ErrorAnswer::bad_request(
                            "chunk-size line too long",
                        )));
                    }
                    Ok(httparse::Status::Partial) => {
                        self.fill(deadline, 0).map_err(|e| e.ends("request body"))?
                    }
                    Err(httparse::InvalidChunkSize) => {
                        return Err(End::Answer(ErrorAnswer::bad_request(
                            "malformed chunk-size line",
                        )));
                    }
                }
            };
            if size == 0 {
                break;
            }
            let total = (body.len() as u64).saturating_add(size);
            if total > limits.max_body_bytes {
                return Err(End::Answer(ErrorAnswer::body_too_large()));
            }
            // Within the body limit, so it fits in memory (and in usize).
            let size =
                usize::try_from(size).map_err(|_| End::Answer(ErrorAnswer::body_too_large()))?;
            while self.pending() < size + 2 {
                let want = size + 2 - self.pending();
                self.fill(deadline, want)
                    .map_err(|e| e.ends("request body"))?;
            }
            let data = self.start..self.start + size;
            if self.buf[data.end..data.end + 2] != *b"\r\n" {
                return Err(End::Answer(ErrorAnswer::bad_request(
                    "chunk data not followed by CRLF",
                )));
            }
            body.extend_from_slice(&self.buf[data.clone()]);
            self.start = data.end + 2;
        }
        // The trailer section: header fields (ignored), then a blank line.
        loop {
            let parsed = {
                let mut slots = vec![httparse::EMPTY_HEADER; limits.max_headers];
                match httparse::parse_headers(&self.buf[self.start..self.end], &mut slots) {
                    Ok(httparse::Status::Complete((used, _))) => Ok(Some(used)),
                    Ok(httparse::Status::Partial) => Ok(None),
                    Err(e) => Err(e),
                }
            };
            match parsed {
                Ok(Some(used)) => {
                    self.start += used;
                    return Ok(body);
                }
                Ok(None) if self.pending() >= limits.max_head_bytes => {
                    return Err(End::Answer(ErrorAnswer::head_too_large()));
                }
                Ok(None) => self.fill(deadline, 0).map_err(|e| e.ends("request body"))?,
                Err(httparse::Error::TooManyHeaders) => {
                    return Err(End::Answer(ErrorAnswer::head_too_large()));
                }
                Err(e) => {
                    return Err(End::Answer(ErrorAnswer::bad_request(format!(
                        "malformed trailer section: {e}"
                    ))));
                }
            }
        }
    }

    /// Calls the service and writes its response. `Ok(true)`: keep the connection open for
    /// the next request; `Ok(false)`: close it (after lingering); `Err`: it is gone.
    fn respond(&mut self, head: Head, body: Vec<u8>) -> Result<bool, String> {
        let interrupt = Interrupt::new();
        if self.shared.enter_busy(self.id, &interrupt).is_none() {
            return Err("evicted".into());
        }
        let Head {
            method,
            target,
            headers,
            minor_version,
            keep_alive,
            ..
        } = head;
        let head_only = method == "HEAD";
        let what = format!("{method} {target}");
        let mut request = Request::new(method, target, headers, body);
        request.peer.clone_from(&self.peer);
        request.interrupt = interrupt;
        let service = &*self.shared.service;
        let call = || {
            if self.shared.is_stopping() {
                // Arrived during a graceful shutdown: told so, and the connection closes.
                service.answered_by_front_end(503);
                return Response::new(503, ErrorAnswer::shutting_down().body());
            }
            service.handle(request)
        };
        let mut response = match catch_unwind(AssertUnwindSafe(call)) {
            Ok(response) if (200..=599).contains(&response.status) => response,
            Ok(response) => {
                log::error!(
                    "http: the service answered {what} with status {}: sending 500",
                    response.status
                );
                service.answered_by_front_end(500);
                internal_error()
            }
            Err(panic) => {
                log::error!(
                    "http: the service panicked on {what}: {}",
                    panic_message(&*panic)
                );
                service.answered_by_front_end(500);
                internal_error()
            }
        };
        // Runs when this function returns, that is after the answer is written or has failed
        // (or the connection was evicted): the service's work that must not delay the answer.
        let _after_sent = AfterSentGuard(response.take_after_sent());
        // Busy connections are not removed by eviction (at most their wait is ended, which
        // closes the connection after this answer), so the slot is still ours.
        let close = self
            .shared
            .enter(self.id, State::Writing)
            .ok_or("evicted")?;
        let keep_alive = keep_alive && !close;
        let connection = match (keep_alive, minor_version) {
            (false, _) => Connection::Close,
            (true, 0) => Connection::KeepAlive,
            (true, _) => Connection::Default,
        };
        let meta = wire::Meta {
            status: response.status,
            head_only,
            connection,
            allow: response.allow,
            content_type: response.content_type,
            now: SystemTime::now(),
        };
        match response.body {
            Body::Full(body) => {
                let bytes = wire::response(&meta, &body);
                self.write_all(&bytes)
                    .map_err(|e| format!("write failed: {e}"))?;
            }
            Body::Stream(write) => {
                return self
                    .write_stream(write, meta, minor_version > 0)
                    .map_err(|e| format!("write failed: {e}"));
            }
        }
        Ok(keep_alive)
    }

    /// Writes a streamed body as the service's function produces it, within one
    /// [`Limits::write_timeout`](super::Limits) for the whole body. A body that fits in
    /// [`STREAM_CHUNK_BYTES`] goes out as a plain response with its length; a larger one in
    /// chunks of that size (to an HTTP/1.0 client, unframed, ending at the close), so at
    /// most one chunk of it is in memory at a time. Returns whether the connection stays
    /// open.
    fn write_stream(
        &self,
        write: crate::handler::StreamFn,
        meta: wire::Meta,
        chunked: bool,
    ) -> io::Result<bool> {
        let deadline = deadline_in(self.shared.limits.write_timeout);
        let mut out = ChunkWriter {
            conn: self,
            buf: Vec::with_capacity(STREAM_CHUNK_BYTES),
            meta,
            chunked,
            head_sent: false,
            deadline,
        };
        write(&mut out)?;
        if !out.head_sent {
            // It all fit: one ordinary response.
            let bytes = wire::response(&out.meta, &out.buf);
            self.write_all_by(&bytes, deadline)?;
            return Ok(out.meta.connection != Connection::Close);
        }
        out.flush_chunk()?;
        if out.chunked && !out.meta.head_only {
            self.write_all_by(b"0\r\n\r\n", deadline)?;
        }
        Ok(out.meta.connection != Connection::Close)
    }

    /// Ends a connection whose request could not be read: answers if there is an answer,
    /// then closes.
    fn finish(&mut self, end: End) -> String {
        match end {
            End::Quiet(why) => why,
            End::Answer(answer) => {
                if self.shared.enter(self.id, State::Writing).is_none() {
                    return "evicted".into();
                }
                match self.write_all(&answer.to_bytes()) {
                    Ok(()) => {
                        self.shared.service.answered_by_front_end(answer.status);
                        self.linger();
                        format!(
                            "answered {} {}",
                            answer.status,
                            answer.detail.as_deref().unwrap_or(answer.message)
                        )
                    }
                    Err(e) => format!("write failed: {e}"),
                }
            }
        }
    }

    /// Writes all of `bytes` within [`Limits::write_timeout`]. The socket's write timeout is
    /// set to the full timeout once per connection, and lowered only when a write is partial.
    ///
    /// [`Limits::write_timeout`]: super::Limits::write_timeout
    fn write_all(&self, bytes: &[u8]) -> io::Result<()> {
        self.write_all_by(bytes, deadline_in(self.shared.limits.write_timeout))
    }

    /// Writes all of `bytes` before `deadline` (see [`write_all`](Self::write_all)).
    fn write_all_by(&self, mut bytes: &[u8], deadline: Instant) -> io::Result<()> {
        let timeout = self.shared.limits.write_timeout;
        let mut lowered = false;
        while !bytes.is_empty() {
            match self.stream.write(bytes) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => bytes = &bytes[n..],
                Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            if !bytes.is_empty() {
                let left = time_left(deadline).ok_or(io::ErrorKind::TimedOut)?;
                self.stream.set_write_timeout(left)?;
                lowered = true;
            }
        }
        if lowered {
            self.stream.set_write_timeout(timeout)?;
        }
        Ok(())
    }

    /// Closes after a final response: ends our side (the client sees end of stream after the
    /// response), then reads and discards what the client still sends, for at most
    /// [`Limits::linger_timeout`] and [`Limits::linger_bytes`], so that closing with unread
    /// data does not reset the connection before the client has read the response.
    ///
    /// [`Limits::linger_timeout`]: super::Limits::linger_timeout
    /// [`Limits::linger_bytes`]: super::Limits::linger_bytes
    fn linger(&mut self) {
        if self.shared.enter(self.id, State::Closing).is_none() {
            return; // evicted, or shutting down: close now
        }
        let limits = &self.shared.limits;
        if self.stream.shutdown(Shutdown::Write).is_err() {
            return;
        }
        let deadline = deadline_in(limits.linger_timeout);
        let mut budget = limits.linger_bytes;
        while budget > 0 {
            let Some(left) = time_left(deadline) else {
                return;
            };
            if self.stream.set_read_timeout(left).is_err() {
                return;
            }
            let room = self.buf.len().min(budget);
            match self.stream.read(&mut self.buf[..room]) {
                Ok(0) => return,
                Ok(n) => budget -= n,
                Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }
}

/// Largest piece of a streamed body held in memory before it is written (one chunk).
pub const STREAM_CHUNK_BYTES: usize = 64 * 1024;

/// Frames a streamed body into chunks (or passes it through, for HTTP/1.0) and writes each
/// as it fills.
struct ChunkWriter<'a, 'b> {
    conn: &'a Conn<'b>,
    buf: Vec<u8>,
    meta: wire::Meta,
    chunked: bool,
    /// Whether the (chunked or unframed) head has gone out.
    head_sent: bool,
    deadline: Instant,
}

impl ChunkWriter<'_, '_> {
    fn flush_chunk(&mut self) -> io::Result<()> {
        if !self.head_sent {
            if !self.chunked {
                // HTTP/1.0 has no chunks: the body ends when the connection closes.
                self.meta.connection = Connection::Close;
            }
            let head = wire::stream_head(&self.meta, self.chunked);
            self.conn.write_all_by(&head, self.deadline)?;
            self.head_sent = true;
        }
        if self.buf.is_empty() || self.meta.head_only {
            self.buf.clear();
            return Ok(());
        }
        if self.chunked {
            let size = format!("{:x}\r\n", self.buf.len());
            self.buf.extend_from_slice(b"\r\n");
            self.conn.write_all_by(size.as_bytes(), self.deadline)?;
        }
        self.conn.write_all_by(&self.buf, self.deadline)?;
        self.buf.clear();
        Ok(())
    }
}

impl io::Write for ChunkWriter<'_, '_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let room = STREAM_CHUNK_BYTES.saturating_sub(self.buf.len());
        let n = bytes.len().min(room);
        self.buf.extend_from_slice(&bytes[..n]);
        if self.buf.len() >= STREAM_CHUNK_BYTES {
            self.flush_chunk()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Time left before `deadline`, or `None` if it has passed.
fn time_left(deadline: Instant) -> Option<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|left| !left.is_zero())
}

/// Whether a socket error is a timeout (`SO_RCVTIMEO`/`SO_SNDTIMEO` give `EAGAIN`).
fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Runs a response's after-sent hook when dropped.
struct AfterSentGuard(Option<AfterSent>);

impl Drop for AfterSentGuard {
    fn drop(&mut self) {
        if let Some(hook) = self.0.take() {
            hook.run();
        }
    }
}

/// `500 {"message":"Internal error."}`.
fn internal_error() -> Response {
    Response::new(500, ErrorAnswer::internal(None).body())
}

/// The message of a panic payload.
fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}
