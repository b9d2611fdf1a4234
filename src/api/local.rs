//! [`LocalApi`]: the process API over an in-process [`Manager`], answering exactly as the wire
//! does. The HTTP handler answers through it, and the agent tools run over it in process.

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use super::map::{system_time, tracking_of};
use super::process_api::{ApiError, ListEntries, ProcessApi};
use super::{
    CancelRequest, CancelResponse, InputRequest, InputResponse, ListResponse, LogResponse,
    LogSearchResponse, MAX_LOG_LIMIT, MAX_LOG_SEARCH_LIMIT, MAX_WAIT_IDS, MAX_WAIT_MS, Message,
    OutputOptions, OutputResponse, OutputUnavailable, ProcessInfo, StartRequest, StartResponse,
    TRACKED_PROTOCOL_VERSION, TrackedOutputResponse, WaitResponse, command_from_start,
    decode_input, error_answer, input_digest, is_tracked, parse_signal, signal_name, stdin_pipe_of,
    tracked_error, unsupported_signal_message,
};
use crate::command::Tracking;
use crate::error::Error;
use crate::id::ProcessId;
use crate::info::{OutputQuery, TrackedOutput};
use crate::interrupt::Interrupt;
use crate::manager::Manager;

/// The in-process implementation of [`ProcessApi`], acting for one chat (or none). Cheap to
/// build: it holds the manager's `Arc` and the chat.
#[derive(Debug, Clone)]
pub struct LocalApi {
    manager: Arc<Manager>,
    chat: Option<Uuid>,
    interrupt: Option<Interrupt>,
}

impl LocalApi {
    /// The API over `manager`, acting for `chat`.
    #[must_use]
    pub fn new(manager: Arc<Manager>, chat: Option<Uuid>) -> Self {
        LocalApi {
            manager,
            chat,
            interrupt: None,
        }
    }

    /// Lets `interrupt` end this API's output waits early (each then answers as if its wait
    /// ran out): a server ending a long poll, an agent cancelling a call.
    #[must_use]
    pub fn interruptible(mut self, interrupt: &Interrupt) -> Self {
        self.interrupt = Some(interrupt.clone());
        self
    }
}

impl LocalApi {
    fn query(&self, options: &OutputOptions) -> OutputQuery {
        let mut query = OutputQuery::from_parts(options.cursor, options.wait);
        if options.plain {
            query = query.plain();
        }
        if let Some(pattern) = &options.until {
            query = query.until(pattern.clone());
        }
        match &self.interrupt {
            Some(interrupt) => query.interruptible(interrupt),
            None => query,
        }
    }
}

/// The wire's answer to `error`, with `id` as the caller spelled it.
fn answer(error: &Error, id: Option<&str>) -> ApiError {
    let (status, message) = error_answer(error, id);
    ApiError::answer(status, message)
}

/// The 400 of a `limit` outside `low..=high`.
fn limit_out_of_range(low: u64, high: u64) -> ApiError {
    ApiError::answer(
        400,
        Message::new(format!(
            "Query parameter \"limit\" must be between {low} and {high}."
        )),
    )
}

fn parse_id(id: &str) -> Result<ProcessId, ApiError> {
    id.parse().map_err(|_| ApiError::not_found(id))
}

/// A tracked-process error answer.
fn tracked(error: &Error) -> ApiError {
    let (status, message) = tracked_error(error);
    ApiError::answer(status, message)
}

/// Longest wait of a cancel (coder's five-minute cap).
const MAX_CANCEL_WAIT_MS: i64 = 300_000;

impl LocalApi {
    /// The checks of a tracked start that come before the manager's receipts, in coder's
    /// order: a command is required; both ids are set and the digest is the request's; the
    /// instance is this server's.
    fn check_tracked(&self, request: &StartRequest) -> Result<(), ApiError> {
        if request.command.as_deref().is_none_or(str::is_empty) && request.argv.is_none() {
            return Err(answer(&Error::CommandRequired, None));
        }
        let nil = |id: Option<uuid::Uuid>| id.is_none_or(|id| id.is_nil());
        if nil(request.process_id)
            || nil(request.agent_instance_id)
            || request.input_digest.as_deref() != Some(input_digest(request).as_str())
        {
            return Err(tracked(&Error::TrackedInvalid));
        }
        if request.agent_instance_id != Some(self.manager.instance_id()) {
            return Err(tracked(&Error::TrackedConflict));
        }
        Ok(())
    }
}

impl ProcessApi for LocalApi {
    fn start(&self, request: &StartRequest) -> Result<StartResponse, ApiError> {
        if let Err(message) = stdin_pipe_of(request) {
            return Err(ApiError::answer(400, Message::new(message)));
        }
        if is_tracked(request) {
            self.check_tracked(request)?;
        }
        let cmd = command_from_start(request, self.chat).tracked_opt(tracking_of(request));
        self.manager
            .start(cmd)
            .map(|started| StartResponse::from(&started))
            .map_err(|e| answer(&e, None))
    }

    fn output(
        &self,
        id: &str,
        cursor: Option<u64>,
        wait: Option<Duration>,
    ) -> Result<OutputResponse, ApiError> {
        let options = OutputOptions {
            cursor,
            wait,
            ..OutputOptions::default()
        };
        self.output_with(id, &options)
    }

    fn output_with(&self, id: &str, options: &OutputOptions) -> Result<OutputResponse, ApiError> {
        // A bad pattern is the request's own problem: answered before the id is looked up.
        if let Some(pattern) = &options.until {
            self.manager
                .pattern(pattern)
                .map_err(|e| answer(&e, Some(id)))?;
        }
        let pid = parse_id(id)?;
        self.manager
            .output(&pid, self.chat, self.query(options))
            .map(|out| OutputResponse::from(&out))
            .map_err(|e| answer(&e, Some(id)))
    }

    fn log_read(&self, id: &str, offset: u64, limit: u64) -> Result<LogResponse, ApiError> {
        if limit > MAX_LOG_LIMIT {
            return Err(limit_out_of_range(0, MAX_LOG_LIMIT));
        }
        let pid = parse_id(id)?;
        self.manager
            .log_read(&pid, self.chat, offset, limit)
            .map(|chunk| LogResponse::from(&chunk))
            .map_err(|e| answer(&e, Some(id)))
    }

    fn log_search(
        &self,
        id: &str,
        pattern: &str,
        limit: u64,
    ) -> Result<LogSearchResponse, ApiError> {
        if !(1..=MAX_LOG_SEARCH_LIMIT).contains(&limit) {
            return Err(limit_out_of_range(1, MAX_LOG_SEARCH_LIMIT));
        }
        self.manager
            .pattern(pattern)
            .map_err(|e| answer(&e, Some(id)))?;
        let pid = parse_id(id)?;
        // At most MAX_LOG_SEARCH_LIMIT, which fits any usize.
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        self.manager
            .log_search(&pid, self.chat, pattern, limit)
            .map(|found| LogSearchResponse::from(&found))
            .map_err(|e| answer(&e, Some(id)))
    }

    fn wait_any(&self, ids: &[String], wait: Option<Duration>) -> Result<WaitResponse, ApiError> {
        if ids.is_empty() || ids.len() > MAX_WAIT_IDS {
            return Err(ApiError::answer(
                400,
                Message::new(format!(
                    "Query parameter \"ids\" must name 1 to {MAX_WAIT_IDS} processes."
                )),
            ));
        }
        // The first id, in the order given, that this caller cannot see is the one named.
        let mut parsed = Vec::with_capacity(ids.len());
        for id in ids {
            let pid = parse_id(id)?;
            self.manager
                .info(&pid, self.chat)
                .map_err(|e| answer(&e, Some(id)))?;
            parsed.push(pid);
        }
        let wait = wait.unwrap_or(Duration::from_millis(MAX_WAIT_MS));
        self.manager
            .wait_any(&parsed, self.chat, wait, self.interrupt.as_ref())
            .map(|w| WaitResponse::from(&w))
            .map_err(|e| answer(&e, None))
    }

    fn list(&self, limit: usize) -> Result<ListResponse, ApiError> {
        Ok(ListResponse {
            processes: self.list_entries(limit)?.collect(),
            protocol_version: Some(TRACKED_PROTOCOL_VERSION),
            agent_instance_id: Some(self.manager.instance_id()),
        })
    }

    fn agent_instance_id(&self) -> Result<Option<uuid::Uuid>, ApiError> {
        Ok(Some(self.manager.instance_id()))
    }

    fn cancel_tracked(&self, request: &CancelRequest) -> Result<CancelResponse, ApiError> {
        // coder's order: the wait, then the identity's form, then the instance.
        let wait_ms = request.wait_ms.unwrap_or(0);
        if wait_ms < 0 {
            return Err(tracked(&Error::TrackedInvalid));
        }
        let wait = Duration::from_millis(wait_ms.min(MAX_CANCEL_WAIT_MS).unsigned_abs());
        let digest = request.input_digest.as_deref().unwrap_or_default();
        let hex_ok = digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit());
        let nil = |id: Option<uuid::Uuid>| id.is_none_or(|id| id.is_nil());
        if nil(request.process_id) || nil(request.agent_instance_id) || !hex_ok {
            return Err(tracked(&Error::TrackedInvalid));
        }
        if request.agent_instance_id != Some(self.manager.instance_id()) {
            return Err(tracked(&Error::TrackedConflict));
        }
        let deadline = request
            .deadline
            .filter(|d| !d.is_zero())
            .map(|d| system_time(&d));
        let tracking = Tracking::new(request.process_id.unwrap_or_default())
            .deadline_opt(deadline)
            .input_digest(digest);
        let cancelled = self
            .manager
            .cancel_tracked(&tracking, self.chat, wait, self.interrupt.as_ref())
            .map_err(|e| tracked(&e))?;
        Ok(CancelResponse {
            agent_instance_id: self.manager.instance_id(),
            fenced: cancelled.fenced,
            process: cancelled.process.as_ref().map(ProcessInfo::from),
        })
    }

    fn output_tracked(
        &self,
        id: &str,
        agent_instance_id: &str,
        input_digest: &str,
        wait: Option<Duration>,
    ) -> Result<TrackedOutputResponse, ApiError> {
        let instance = agent_instance_id.parse::<uuid::Uuid>().ok();
        if instance != Some(self.manager.instance_id()) {
            return Err(tracked(&Error::TrackedConflict));
        }
        let pid = parse_id(id)?;
        let digest = Some(input_digest).filter(|d| !d.is_empty());
        match self.manager.output_tracked(
            &pid,
            self.chat,
            digest,
            self.query(&OutputOptions {
                wait,
                ..OutputOptions::default()
            }),
        ) {
            Ok(TrackedOutput::Output(out)) => {
                Ok(TrackedOutputResponse::Output(OutputResponse::from(&out)))
            }
            Ok(TrackedOutput::Unavailable {
                input_digest,
                process,
            }) => Ok(TrackedOutputResponse::Unavailable(OutputUnavailable {
                agent_instance_id: self.manager.instance_id(),
                input_digest,
                output_unavailable: true,
                process: ProcessInfo::from(&process),
            })),
            Err(e @ Error::TrackedConflict) => Err(tracked(&e)),
            Err(e) => Err(answer(&e, Some(id))),
        }
    }

    fn list_entries(&self, limit: usize) -> Result<ListEntries, ApiError> {
        let listing = self.manager.listing(self.chat, limit);
        Ok(Box::new(listing.map(|info| ProcessInfo::from(&info))))
    }

    fn input(&self, id: &str, request: &InputRequest) -> Result<InputResponse, ApiError> {
        // The contract's order: the process, then the body's own checks.
        let pid = parse_id(id)?;
        self.manager
            .info(&pid, self.chat)
            .map_err(|e| answer(&e, Some(id)))?;
        let (bytes, close) = decode_input(request).map_err(|m| ApiError::answer(400, m))?;
        self.manager
            .input(&pid, self.chat, &bytes, close)
            .map(|queued| InputResponse::from(&queued))
            .map_err(|e| answer(&e, Some(id)))
    }

    fn resize(&self, id: &str, rows: u16, cols: u16) -> Result<Message, ApiError> {
        let pid = parse_id(id)?;
        self.manager
            .resize(&pid, self.chat, rows, cols)
            .map_err(|e| answer(&e, Some(id)))?;
        Ok(Message::new(format!(
            "Resized process \"{id}\" to {rows}x{cols}."
        )))
    }

    fn signal(&self, id: &str, signal: &str) -> Result<Message, ApiError> {
        self.signal_with_grace(id, signal, None)
    }

    fn signal_with_grace(
        &self,
        id: &str,
        signal: &str,
        grace: Option<Duration>,
    ) -> Result<Message, ApiError> {
        // The contract's order: the signal name, then the process.
        let Ok(sig) = parse_signal(signal) else {
            return Err(ApiError::answer(
                400,
                Message::new(unsupported_signal_message(signal)),
            ));
        };
        let pid = parse_id(id)?;
        self.manager
            .signal(&pid, self.chat, sig, grace)
            .map_err(|e| answer(&e, Some(id)))?;
        Ok(Message::new(format!(
            "Signal \"{}\" sent to process \"{id}\".",
            signal_name(sig)
        )))
    }
}
