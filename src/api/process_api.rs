//! The process API in wire types, as one trait: [`ProcessApi`]. The agent tools run over it, the
//! HTTP handler answers through it, and the in-process [`LocalApi`](super::LocalApi) and the
//! remote `client::Client` implement it, so every caller sees the same answers and errors.

use std::time::Duration;

use uuid::Uuid;

use super::{
    CancelRequest, CancelResponse, Identity, InputRequest, InputResponse, ListResponse,
    LogResponse, LogSearchResponse, Message, OutputOptions, OutputResponse, ProcessInfo,
    StartRequest, StartResponse, TrackedOutputResponse, WaitResponse,
};

/// Most bytes of output a tool result carries back to the model.
pub const MAX_TOOL_OUTPUT_BYTES: usize = 32768;

/// List entries made one at a time (see [`ProcessApi::list_entries`]).
pub type ListEntries = Box<dyn Iterator<Item = ProcessInfo> + Send>;

/// Why a call through [`ProcessApi`] failed: the HTTP status the wire would answer, its
/// message, and the underlying detail. A transport failure (no answer at all) has no status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The wire status (400, 404, 409, 429, 500, 503), or `None` when nothing answered.
    pub status: Option<u16>,
    /// A sentence for a person.
    pub message: String,
    /// The underlying error, where there is one.
    pub detail: Option<String>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)?;
        if let Some(detail) = &self.detail {
            write!(f, " ({detail})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    /// An error answer: `status` with the wire body `message`.
    #[must_use]
    pub fn answer(status: u16, message: Message) -> ApiError {
        ApiError {
            status: Some(status),
            message: message.message,
            detail: message.detail,
        }
    }

    /// The answer to an id that names no process this caller may see (404), with the id as the
    /// caller spelled it.
    #[must_use]
    pub fn not_found(id: &str) -> ApiError {
        ApiError::answer(404, Message::new(super::not_found_message(id)))
    }

    /// Whether nothing answered (a transport error), as opposed to an error answer.
    #[must_use]
    pub fn is_transport(&self) -> bool {
        self.status.is_none()
    }

    /// The wire body of this error: `{"message": ..., "detail"?: ...}`.
    #[must_use]
    pub fn to_message(&self) -> Message {
        Message {
            message: self.message.clone(),
            detail: self.detail.clone(),
        }
    }
}

/// The four operations of the process API, in wire types. Implemented in process by
/// [`LocalApi`](super::LocalApi), and remotely by `client::Client` (feature `client`).
///
/// Ids and signal names are taken as the caller spelled them: an implementation answers for
/// them exactly as the wire does (an id that is not a UUID is a 404, an unknown signal a 400).
pub trait ProcessApi {
    /// Starts a process.
    ///
    /// # Errors
    ///
    /// The wire's answer to a refused start (400, 429, 500, 503), or a transport error.
    fn start(&self, request: &StartRequest) -> Result<StartResponse, ApiError>;

    /// Reads output: a snapshot, or after waiting up to `wait` (for exit, or with a cursor for
    /// output past it).
    ///
    /// # Errors
    ///
    /// 404 for an id this caller cannot see, or a transport error.
    fn output(
        &self,
        id: &str,
        cursor: Option<u64>,
        wait: Option<Duration>,
    ) -> Result<OutputResponse, ApiError>;

    /// Reads output as `options` say (a cursor, a wait, plain rendering). Both implementations
    /// of the crate honour every option; the provided one handles the options that
    /// [`output`](Self::output) takes through it and refuses the others, without reading
    /// anything, rather than drop them silently.
    ///
    /// # Errors
    ///
    /// Those of [`output`](Self::output); from the provided implementation, a transport-style
    /// error (`status: None`) for `plain`.
    fn output_with(&self, id: &str, options: &OutputOptions) -> Result<OutputResponse, ApiError> {
        if options.until.is_some() {
            return Err(unsupported("wait for a pattern"));
        }
        if options.plain {
            return Err(ApiError {
                status: None,
                message: "This process API cannot render output plain.".into(),
                detail: None,
            });
        }
        self.output(id, options.cursor, options.wait)
    }

    /// Waits until any of `ids` is no longer running, or `wait` passes (`None`: the longest
    /// wait, [`MAX_WAIT_MS`](super::MAX_WAIT_MS)). The provided implementation refuses.
    ///
    /// # Errors
    ///
    /// 400 for no ids or more than [`MAX_WAIT_IDS`](super::MAX_WAIT_IDS), 404 naming the first
    /// id this caller cannot see, or a transport error; from the provided implementation, a
    /// transport-style error (`status: None`).
    fn wait_any(&self, ids: &[String], wait: Option<Duration>) -> Result<WaitResponse, ApiError> {
        let _ = (ids, wait);
        Err(unsupported("wait for any of several processes"))
    }

    /// Reads stream bytes `[offset, offset + limit)` of a process's full log (`limit` at most
    /// [`MAX_LOG_LIMIT`](super::MAX_LOG_LIMIT)). The provided implementation refuses.
    ///
    /// # Errors
    ///
    /// 400 for a `limit` out of range, 404, 409 for a process without a log, 500 when reading
    /// failed, or a transport error; from the provided implementation, a transport-style error.
    fn log_read(&self, id: &str, offset: u64, limit: u64) -> Result<LogResponse, ApiError> {
        let _ = (id, offset, limit);
        Err(unsupported("read full logs"))
    }

    /// The first `limit` lines of a process's full log that match `pattern`. The provided
    /// implementation refuses.
    ///
    /// # Errors
    ///
    /// 400 for a bad pattern or `limit`, 404, 409 for a process without a log, 500 when
    /// reading failed, or a transport error; from the provided implementation, a
    /// transport-style error.
    fn log_search(
        &self,
        id: &str,
        pattern: &str,
        limit: u64,
    ) -> Result<LogSearchResponse, ApiError> {
        let _ = (id, pattern, limit);
        Err(unsupported("search full logs"))
    }

    /// Lists at most `limit` processes (running first, then newest first).
    ///
    /// # Errors
    ///
    /// A transport error, or whatever error a remote server answers.
    fn list(&self, limit: usize) -> Result<ListResponse, ApiError>;

    /// The entries of [`list`](Self::list), made as the iterator reaches them (in process, a
    /// large list is then never whole in memory: the HTTP handler streams it).
    ///
    /// # Errors
    ///
    /// As [`list`](Self::list).
    fn list_entries(&self, limit: usize) -> Result<ListEntries, ApiError> {
        Ok(Box::new(self.list(limit)?.processes.into_iter()))
    }

    /// Signals a process's group: `terminate`, `kill` or `interrupt` (see
    /// [`SIGNAL_NAMES`](super::SIGNAL_NAMES)).
    ///
    /// # Errors
    ///
    /// 400 for an unsupported signal name, 404 for an id this caller cannot see, 409 for a
    /// process that has exited, 500 when sending failed, or a transport error.
    fn signal(&self, id: &str, signal: &str) -> Result<Message, ApiError>;

    /// Like [`ProcessApi::signal`], and with `grace`, SIGKILLs the group that much later if it
    /// still runs (ignored for `kill`). Both implementations of the crate send the grace; the
    /// provided one handles `grace: None` through [`ProcessApi::signal`] and refuses a grace,
    /// without sending anything, rather than drop it silently.
    ///
    /// # Errors
    ///
    /// Those of [`ProcessApi::signal`]; from the provided implementation, a transport-style
    /// error (`status: None`) for any `grace`.
    fn signal_with_grace(
        &self,
        id: &str,
        signal: &str,
        grace: Option<Duration>,
    ) -> Result<Message, ApiError> {
        match grace {
            None => self.signal(id, signal),
            Some(_) => Err(unsupported("send a signal with a kill grace")),
        }
    }

    /// Whether calls cross a transport that can lose an answer (a remote server): then a
    /// start is worth making retry-safe with an [`Identity`]. The provided one says no.
    fn is_remote(&self) -> bool {
        false
    }

    /// The agent instance that tracked starts through this API must name, or `None` when the
    /// other side does not speak coder's tracked-process protocol. The provided one says
    /// `None`.
    ///
    /// # Errors
    ///
    /// A transport error, or whatever error a remote server answers.
    fn agent_instance_id(&self) -> Result<Option<Uuid>, ApiError> {
        Ok(None)
    }

    /// Forgets a cached agent instance, so that the next
    /// [`agent_instance_id`](Self::agent_instance_id) asks again (a remote server that
    /// restarted has a new one). The provided one does nothing.
    fn forget_agent_instance(&self) {}

    /// Starts `request` as the tracked start of `identity` (see [`super::identified`]): the
    /// same call again answers the process already started, never a second one. The provided
    /// one fills the tracked fields from [`agent_instance_id`](Self::agent_instance_id) and
    /// calls [`start`](Self::start).
    ///
    /// # Errors
    ///
    /// Those of [`start`](Self::start), the tracked answers (400, 409, 410, 429 with
    /// [`TRACKED_FAILED`](super::TRACKED_FAILED)), or a transport-style error when the other
    /// side does not track starts.
    fn start_identified(
        &self,
        request: &StartRequest,
        identity: &Identity,
    ) -> Result<StartResponse, ApiError> {
        let Some(instance) = self.agent_instance_id()? else {
            return Err(unsupported("make tracked starts"));
        };
        self.start(&super::identified(request, instance, identity))
    }

    /// Cancels a tracked start: fences an identity never seen, kills a known process's group
    /// and waits up to `wait_ms` for it. The provided one refuses.
    ///
    /// # Errors
    ///
    /// The tracked answers (400, 409, 429), a transport error, or a transport-style error when
    /// unsupported.
    fn cancel_tracked(&self, request: &CancelRequest) -> Result<CancelResponse, ApiError> {
        let _ = request;
        Err(unsupported("cancel tracked starts"))
    }

    /// Reads a tracked process's output, or its final state once the output is gone. The
    /// provided one refuses.
    ///
    /// # Errors
    ///
    /// 404, 409 (another instance or digest), a transport error, or a transport-style error
    /// when unsupported.
    fn output_tracked(
        &self,
        id: &str,
        agent_instance_id: &str,
        input_digest: &str,
        wait: Option<Duration>,
    ) -> Result<TrackedOutputResponse, ApiError> {
        let _ = (id, agent_instance_id, input_digest, wait);
        Err(unsupported("read tracked output"))
    }
    /// Queues input for a process started with `stdin: "pipe"` or `tty` (see
    /// [`InputRequest`]), and with `close: true` closes it after. Answers at once, without
    /// waiting for the process to read. The provided implementation refuses (an API of a
    /// third party that predates input); both of the crate's implement it.
    ///
    /// # Errors
    ///
    /// 404 for an id this caller cannot see; 400 for both `data` and `data_base64`, invalid
    /// base64, or neither data nor `close`; 409 when the process has no open input or its
    /// pending input would exceed the bound; or a transport error.
    fn input(&self, id: &str, request: &InputRequest) -> Result<InputResponse, ApiError> {
        let _ = (id, request);
        Err(unsupported("write input"))
    }

    /// Sets the size of a terminal process's terminal (`rows` and `cols` 1..=1000); the
    /// process gets SIGWINCH. The provided implementation refuses, as for
    /// [`input`](Self::input).
    ///
    /// # Errors
    ///
    /// 404 for an id this caller cannot see; 400 for a size out of range; 409 when the
    /// process has no terminal or has exited; or a transport error.
    fn resize(&self, id: &str, rows: u16, cols: u16) -> Result<Message, ApiError> {
        let _ = (id, rows, cols);
        Err(unsupported("resize a terminal"))
    }
}

/// The provided answer of an API that lacks a call: a transport-style error (no status).
fn unsupported(what: &str) -> ApiError {
    ApiError {
        status: None,
        message: format!("This process API cannot {what}."),
        detail: None,
    }
}

/// Cuts `output` to at most `max` bytes at a character boundary; returns whether it cut.
#[must_use]
pub fn cap_output(output: &str, max: usize) -> (&str, bool) {
    if output.len() <= max {
        return (output, false);
    }
    let mut end = max;
    while !output.is_char_boundary(end) {
        end -= 1;
    }
    (&output[..end], true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_capped_at_a_character_boundary() {
        let text = format!("{}€tail", "a".repeat(32767)); // the euro sign straddles 32768
        let (capped, cut) = cap_output(&text, MAX_TOOL_OUTPUT_BYTES);
        assert!(cut);
        assert_eq!(capped.len(), 32767);
        assert!(capped.chars().all(|c| c == 'a'));
        let (same, cut) = cap_output("short", MAX_TOOL_OUTPUT_BYTES);
        assert_eq!((same, cut), ("short", false));
    }

    #[test]
    fn an_error_answer_round_trips_its_body() {
        let body = Message::with_detail("Failed to start process.", "no such file");
        let error = ApiError::answer(500, body.clone());
        assert_eq!(error.status, Some(500));
        assert!(!error.is_transport());
        assert_eq!(error.to_message(), body);
        assert_eq!(error.to_string(), "Failed to start process. (no such file)");
    }
}
