//! [`LocalApi`]: the process API over an in-process [`Manager`], answering exactly as the wire
//! does. The HTTP handler answers through it, and the agent tools run over it in process.

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use super::process_api::{ApiError, ListEntries, ProcessApi};
use super::{
    InputRequest, InputResponse, ListResponse, Message, OutputOptions, OutputResponse, ProcessInfo,
    StartRequest, StartResponse, command_from_start, decode_input, error_answer, parse_signal,
    signal_name, stdin_pipe_of, unsupported_signal_message,
};
use crate::error::Error;
use crate::id::ProcessId;
use crate::info::OutputQuery;
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

fn parse_id(id: &str) -> Result<ProcessId, ApiError> {
    id.parse().map_err(|_| ApiError::not_found(id))
}

impl ProcessApi for LocalApi {
    fn start(&self, request: &StartRequest) -> Result<StartResponse, ApiError> {
        if let Err(message) = stdin_pipe_of(request) {
            return Err(ApiError::answer(400, Message::new(message)));
        }
        self.manager
            .start(command_from_start(request, self.chat))
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
        let pid = parse_id(id)?;
        self.manager
            .output(&pid, self.chat, self.query(options))
            .map(|out| OutputResponse::from(&out))
            .map_err(|e| answer(&e, Some(id)))
    }

    fn list(&self, limit: usize) -> Result<ListResponse, ApiError> {
        Ok(ListResponse {
            processes: self.list_entries(limit)?.collect(),
        })
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
