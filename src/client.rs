//! A blocking HTTP client of the wire API (v0): [`Client`].
//!
//! It speaks plain HTTP/1.1 to a `procwarden serve` (or to coder's workspace agent, for the
//! routes they share) and returns the wire types of [`crate::api`]. It implements
//! [`ProcessApi`], so the agent tools in [`crate::tools`] run unchanged against a remote agent:
//!
//! ```no_run
//! use procwarden::client::Client;
//! use procwarden::tools;
//! use serde_json::json;
//!
//! let api = Client::new("http://127.0.0.1:7717").token(std::env::var("PROCWARDEN_TOKEN").ok());
//! let result = tools::call(&api, "execute", &json!({"command": "uname -a"}));
//! println!("{result}");
//! ```
//!
//! It is built on [`ureq`] (3.x, without TLS, gzip or JSON features): a well-kept, synchronous
//! HTTP client with connection pooling, per-request timeouts and no async runtime. Writing our
//! own would mean owning chunked decoding, keep-alive reuse and timeout bookkeeping a second
//! time. With default features off it adds seven small crates (`ureq`, `ureq-proto`, `http`,
//! `bytes`, `base64`, `percent-encoding`, `utf8-zero`).
//!
//! Errors are [`ApiError`]s: an error answer `{message, detail?}` keeps its status, message and
//! detail; no answer at all (connection refused or reset, a timeout, a cut-off body) has
//! `status: None` and says which server did not answer.
//!
//! Base URLs: `http://HOST:PORT` (a path prefix is kept: `http://host/agent` sends
//! `/agent/api/v0/...`), or `unix:/path/to/socket` for a server started with
//! `--listen unix:/path`. HTTPS is not supported (no TLS is linked in). HTTP proxies from the
//! environment (`HTTP_PROXY`, `ALL_PROXY`) are ignored: the agent is usually on loopback, and the
//! bearer token must not go to a proxy. Redirects are not followed.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use serde::de::DeserializeOwned;
use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, LazyBuffers, NextTimeout, Transport,
};
use uuid::Uuid;

use crate::api::{self, ApiError, ProcessApi};

/// Longest time to establish a TCP connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest time for a whole request that does not wait (start, snapshot, list, signal, version).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// What a waiting output request may take beyond its wait before the client gives up: the
/// server answers when the wait ends, and this covers the rendering and the network.
pub const WAIT_MARGIN: Duration = Duration::from_secs(10);
/// Largest response body the client reads (a list of 1000 processes with commands of a few KiB
/// each fits).
pub const MAX_RESPONSE_BYTES: u64 = 32 << 20;
/// Most bytes of a non-JSON error body kept as the error's detail.
pub const MAX_ERROR_DETAIL_BYTES: usize = 512;
/// The base-URL prefix that selects a unix socket: `unix:/path/to/socket`.
pub const UNIX_PREFIX: &str = "unix:";

/// The URL the requests of a unix-socket client carry (only the path and `Host` matter).
const UNIX_BASE: &str = "http://localhost";

/// A blocking client of one procwarden server, acting for one chat (or none).
///
/// Cheap to clone (connections are pooled and shared between clones); safe to use from many
/// threads at once. Every call blocks the calling thread for at most its timeout:
/// [`REQUEST_TIMEOUT`], or for a waiting [`Client::output`] the wait plus [`WAIT_MARGIN`].
#[derive(Clone)]
pub struct Client {
    /// Where requests go: the base URL without a trailing `/` (for a unix socket,
    /// [`UNIX_BASE`]).
    base: String,
    /// The base URL as given, for messages.
    shown: String,
    agent: ureq::Agent,
    token: Option<String>,
    chat: Option<Uuid>,
    /// Why every request fails at once: a base URL that is neither `http://` nor `unix:`.
    refusal: Option<String>,
    /// The server's agent instance, once a list answer told it (shared between clones):
    /// `Some(None)` for a server that does not track starts.
    instance: Arc<Mutex<Option<Option<Uuid>>>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.shown)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("chat", &self.chat)
            .finish()
    }
}

impl Client {
    /// A client of the server at `base_url`: `http://HOST:PORT` or `unix:/path/to/socket`. Any
    /// other URL (`https://` included: no TLS is linked in) makes every request fail with a
    /// transport error (`status: None`) that says so; so does a malformed one.
    #[must_use]
    pub fn new(base_url: impl Into<String>) -> Client {
        let shown: String = base_url.into();
        let scheme_ok = shown.starts_with(UNIX_PREFIX)
            || shown
                .get(..7)
                .is_some_and(|s| s.eq_ignore_ascii_case("http://"));
        let refusal = (!scheme_ok).then(|| {
            format!("Unsupported URL \"{shown}\": use http://HOST:PORT or unix:/path (no HTTPS).")
        });
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .user_agent(format!("procwarden/{}", env!("CARGO_PKG_VERSION")))
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_global(Some(REQUEST_TIMEOUT))
            .build();
        let (base, agent) = match shown.strip_prefix(UNIX_PREFIX) {
            Some(path) => (
                UNIX_BASE.to_string(),
                ureq::Agent::with_parts(
                    config,
                    UnixConnector {
                        path: PathBuf::from(path),
                    },
                    UnixResolver,
                ),
            ),
            None => (
                shown.trim_end_matches('/').to_string(),
                ureq::Agent::new_with_config(config),
            ),
        };
        Client {
            base,
            shown,
            agent,
            token: None,
            chat: None,
            refusal,
            instance: Arc::new(Mutex::new(None)),
        }
    }

    /// Sends `Authorization: Bearer <token>` with every request (`None`: no header).
    #[must_use]
    pub fn token(mut self, token: Option<String>) -> Client {
        self.token = token;
        self
    }

    /// Acts for `chat`: sends `Coder-Chat-Id: <uuid>` with every request (`None`: no header).
    #[must_use]
    pub fn chat(mut self, chat: Option<Uuid>) -> Client {
        self.chat = chat;
        self
    }

    /// The base URL as given to [`Client::new`].
    #[must_use]
    pub fn url(&self) -> &str {
        &self.shown
    }

    /// `POST /api/v0/processes/start`.
    ///
    /// # Errors
    ///
    /// An error answer keeps the server's status, message and detail (400, 401, 429, 500,
    /// 503); no answer at all (refused, reset, timed out, an unsupported URL) is a transport
    /// error with `status: None`; a 2xx body that is not the expected JSON keeps its status and
    /// says so.
    ///
    /// With an `identity`, a tracked start (`POST /api/v0/processes/start-tracked`): the
    /// request gets the identity's process id and deadline, the server's agent instance (see
    /// [`Client::agent_instance_id`]) and its `input_digest`, so that the same call repeated
    /// after a lost answer answers the process already started instead of running it again.
    /// 409 then means the identity conflicts: used differently, fenced, or meant for another
    /// instance of the server (it restarted).
    pub fn start(
        &self,
        request: &api::StartRequest,
        identity: Option<&api::Identity>,
    ) -> Result<api::StartResponse, ApiError> {
        let (route, tracked);
        let request = match identity {
            None => {
                route = "start";
                request
            }
            Some(identity) => {
                let Some(instance) = self.agent_instance_id()? else {
                    return Err(ApiError {
                        status: None,
                        message: format!("{} does not track starts.", self.shown),
                        detail: None,
                    });
                };
                route = "start-tracked";
                tracked = api::identified(request, instance, identity);
                &tracked
            }
        };
        let body = encode(request)?;
        self.send(
            &format!("{}/{route}", api::PREFIX),
            Some(body),
            REQUEST_TIMEOUT,
        )
    }

    /// The server's agent instance as its list answer reports it, `None` for a server that
    /// does not speak coder's tracked-process protocol. Asked once (`GET list?limit=1`) and
    /// kept; [`Client::forget_agent_instance`] asks again next time.
    ///
    /// # Errors
    ///
    /// As [`Client::start`].
    pub fn agent_instance_id(&self) -> Result<Option<Uuid>, ApiError> {
        if let Some(known) = *self.instance.lock() {
            return Ok(known);
        }
        let list = self.list(1)?;
        let instance = list
            .agent_instance_id
            .filter(|_| list.protocol_version == Some(api::TRACKED_PROTOCOL_VERSION));
        *self.instance.lock() = Some(instance);
        Ok(instance)
    }

    /// Forgets the agent instance (a server that restarted has a new one).
    pub fn forget_agent_instance(&self) {
        *self.instance.lock() = None;
    }

    /// `POST /api/v0/processes/cancel-tracked`: fences an identity the server has not seen,
    /// or kills a tracked process's group and waits up to `wait_ms` for its exit.
    ///
    /// # Errors
    ///
    /// As [`Client::start`]; the tracked answers (400, 409, 429).
    pub fn cancel_tracked(
        &self,
        request: &api::CancelRequest,
    ) -> Result<api::CancelResponse, ApiError> {
        let wait = request.wait_ms.map_or(0, |ms| {
            ms.clamp(0, i64::try_from(api::MAX_WAIT_MS).unwrap_or(i64::MAX))
        });
        let timeout = REQUEST_TIMEOUT + Duration::from_millis(wait.unsigned_abs());
        self.send(
            &format!("{}/cancel-tracked", api::PREFIX),
            Some(encode(request)?),
            timeout,
        )
    }

    /// `GET /api/v0/processes/{id}/output-tracked`: the output answer, or once the output is
    /// gone the final state ([`api::TrackedOutputResponse::Unavailable`], the `410`). With
    /// `wait`, `wait=true&wait_ms=N` (at most [`api::MAX_WAIT_MS`]; `0` is sent as `1`, since
    /// the server reads `0` as its cap).
    ///
    /// # Errors
    ///
    /// As [`Client::start`]; 404, 409.
    pub fn output_tracked(
        &self,
        id: &str,
        agent_instance_id: &str,
        input_digest: &str,
        wait: Option<Duration>,
    ) -> Result<api::TrackedOutputResponse, ApiError> {
        let mut target = format!(
            "{}/{}/output-tracked?agent_instance_id={}&input_digest={}",
            api::PREFIX,
            escape_segment(id),
            escape_segment(agent_instance_id),
            escape_segment(input_digest)
        );
        let mut timeout = REQUEST_TIMEOUT;
        if let Some(wait) = wait {
            let ms = u64::try_from(wait.as_millis())
                .unwrap_or(u64::MAX)
                .clamp(1, api::MAX_WAIT_MS);
            target.push_str(&format!("&wait=true&wait_ms={ms}"));
            timeout = Duration::from_millis(ms) + WAIT_MARGIN;
        }
        match self.send::<api::OutputResponse>(&target, None, timeout) {
            Ok(out) => Ok(api::TrackedOutputResponse::Output(out)),
            Err(e) if e.status == Some(410) => {
                match e.detail.as_deref().map(serde_json::from_str) {
                    Some(Ok(gone)) => Ok(api::TrackedOutputResponse::Unavailable(gone)),
                    _ => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// `GET /api/v0/processes/{id}/output`: a snapshot (`wait: None`), or with
    /// `wait=true&timeout_ms=N` a wait of up to `wait` (at most [`api::MAX_WAIT_MS`]) for the
    /// exit, or with a `cursor` for output past it. The request itself may take `wait` plus
    /// [`WAIT_MARGIN`].
    ///
    /// # Errors
    ///
    /// As [`Client::start`]; the answers are those of the output route (400 for a bad query,
    /// 404 for an id this chat cannot see).
    pub fn output(
        &self,
        id: &str,
        cursor: Option<u64>,
        wait: Option<Duration>,
    ) -> Result<api::OutputResponse, ApiError> {
        self.output_with(
            id,
            &api::OutputOptions {
                cursor,
                wait,
                ..api::OutputOptions::default()
            },
        )
    }

    /// `GET /api/v0/processes/{id}/output` with every query parameter `options` sets
    /// (`cursor`, `wait=true&timeout_ms`, `plain=true`, `until=<regex>`).
    ///
    /// # Errors
    ///
    /// As [`Client::output`]; 400 for a pattern that is too long or does not compile.
    pub fn output_with(
        &self,
        id: &str,
        options: &api::OutputOptions,
    ) -> Result<api::OutputResponse, ApiError> {
        let mut target = format!("{}/{}/output", api::PREFIX, escape_segment(id));
        let mut params = Vec::new();
        let mut timeout = REQUEST_TIMEOUT;
        if let Some(cursor) = options.cursor {
            params.push(format!("cursor={cursor}"));
        }
        if let Some(wait) = options.wait {
            let ms = u64::try_from(wait.as_millis())
                .unwrap_or(u64::MAX)
                .min(api::MAX_WAIT_MS);
            params.push(format!("wait=true&timeout_ms={ms}"));
            timeout = Duration::from_millis(ms) + WAIT_MARGIN;
        }
        if options.plain {
            params.push("plain=true".to_owned());
        }
        if let Some(pattern) = &options.until {
            params.push(format!("until={}", escape_segment(pattern)));
        }
        if !params.is_empty() {
            target.push('?');
            target.push_str(&params.join("&"));
        }
        self.send(&target, None, timeout)
    }

    /// `GET /api/v0/processes/{id}/log?offset=O&limit=L`: stream bytes `[O, O+L)` of the
    /// process's full log.
    ///
    /// # Errors
    ///
    /// As [`Client::start`]; 400 for a `limit` over [`api::MAX_LOG_LIMIT`], 404, 409 for a
    /// process without a log.
    pub fn log_read(
        &self,
        id: &str,
        offset: u64,
        limit: u64,
    ) -> Result<api::LogResponse, ApiError> {
        self.send(
            &format!(
                "{}/{}/log?offset={offset}&limit={limit}",
                api::PREFIX,
                escape_segment(id)
            ),
            None,
            REQUEST_TIMEOUT,
        )
    }

    /// `GET /api/v0/processes/{id}/log/search?pattern=P&limit=N`.
    ///
    /// # Errors
    ///
    /// As [`Client::log_read`]; 400 for a bad pattern or a `limit` outside 1 to
    /// [`api::MAX_LOG_SEARCH_LIMIT`].
    pub fn log_search(
        &self,
        id: &str,
        pattern: &str,
        limit: u64,
    ) -> Result<api::LogSearchResponse, ApiError> {
        self.send(
            &format!(
                "{}/{}/log/search?pattern={}&limit={limit}",
                api::PREFIX,
                escape_segment(id),
                escape_segment(pattern)
            ),
            None,
            REQUEST_TIMEOUT,
        )
    }

    /// `GET /api/v0/processes/wait?ids=...&timeout_ms=N`: waits up to `wait` (default and at
    /// most [`api::MAX_WAIT_MS`]) until any of `ids` is no longer running.
    ///
    /// # Errors
    ///
    /// As [`Client::start`]; 400 for no ids or too many, 404 naming the first unknown id.
    pub fn wait_any(
        &self,
        ids: &[String],
        wait: Option<Duration>,
    ) -> Result<api::WaitResponse, ApiError> {
        let ms = wait.map_or(api::MAX_WAIT_MS, wait_ms);
        let ids: Vec<String> = ids.iter().map(|id| escape_segment(id)).collect();
        let target = format!("{}/wait?ids={}&timeout_ms={ms}", api::PREFIX, ids.join(","));
        self.send(&target, None, Duration::from_millis(ms) + WAIT_MARGIN)
    }

    /// `GET /api/v0/processes/list?limit=N`, with `limit` clamped to `1..=`[`api::MAX_LIST_LIMIT`].
    ///
    /// # Errors
    ///
    /// As [`Client::start`].
    pub fn list(&self, limit: usize) -> Result<api::ListResponse, ApiError> {
        let limit = u64::try_from(limit)
            .unwrap_or(u64::MAX)
            .clamp(1, api::MAX_LIST_LIMIT);
        self.send(
            &format!("{}/list?limit={limit}", api::PREFIX),
            None,
            REQUEST_TIMEOUT,
        )
    }

    /// `POST /api/v0/processes/{id}/signal` with `{"signal": signal}` (`terminate`, `kill` or
    /// `interrupt`).
    ///
    /// # Errors
    ///
    /// As [`Client::start`]; the answers are those of the signal route (400 for an unsupported
    /// signal, 404, 409, 500).
    pub fn signal(&self, id: &str, signal: &str) -> Result<api::Message, ApiError> {
        self.signal_with_grace(id, signal, None)
    }

    /// [`Client::signal`] with `grace_ms`: with `terminate` or `interrupt`, the server SIGKILLs
    /// the group `grace` later if it still runs (whole milliseconds, saturating).
    ///
    /// # Errors
    ///
    /// As [`Client::signal`].
    pub fn signal_with_grace(
        &self,
        id: &str,
        signal: &str,
        grace: Option<Duration>,
    ) -> Result<api::Message, ApiError> {
        let request = api::SignalRequest {
            signal: Some(signal.to_string()),
            grace_ms: grace.map(|g| u64::try_from(g.as_millis()).unwrap_or(u64::MAX)),
        };
        let body = encode(&request)?;
        self.send(
            &format!("{}/{}/signal", api::PREFIX, escape_segment(id)),
            Some(body),
            REQUEST_TIMEOUT,
        )
    }

    /// `POST /api/v0/processes/{id}/input`: queues text or bytes (and with `close: true`
    /// closes the input after them) for a process started with `stdin: "pipe"` or `tty`.
    ///
    /// # Errors
    ///
    /// As [`Client::start`]; the answers are those of the input route (400 for a body the
    /// server refuses, 404, 409 for no open input or a full queue).
    pub fn input(
        &self,
        id: &str,
        request: &api::InputRequest,
    ) -> Result<api::InputResponse, ApiError> {
        let body = encode(request)?;
        self.send(
            &format!("{}/{}/input", api::PREFIX, escape_segment(id)),
            Some(body),
            REQUEST_TIMEOUT,
        )
    }

    /// `POST /api/v0/processes/{id}/resize` with `{"rows": rows, "cols": cols}`.
    ///
    /// # Errors
    ///
    /// As [`Client::start`]; the answers are those of the resize route (400 for a size out of
    /// range, 404, 409 for a process without a terminal).
    pub fn resize(&self, id: &str, rows: u16, cols: u16) -> Result<api::Message, ApiError> {
        let body = encode(&api::ResizeRequest { rows, cols })?;
        self.send(
            &format!("{}/{}/resize", api::PREFIX, escape_segment(id)),
            Some(body),
            REQUEST_TIMEOUT,
        )
    }

    /// `GET /`: the server's name and version, e.g. `"procwarden 0.1.0"`.
    ///
    /// # Errors
    ///
    /// As [`Client::start`].
    pub fn version(&self) -> Result<String, ApiError> {
        let answer: api::Message = self.send("/", None, REQUEST_TIMEOUT)?;
        Ok(answer.message)
    }

    /// Sends one request (a POST with a JSON body when `body` is given, else a GET) and decodes
    /// the answer.
    fn send<T: DeserializeOwned>(
        &self,
        target: &str,
        body: Option<Vec<u8>>,
        timeout: Duration,
    ) -> Result<T, ApiError> {
        if let Some(refusal) = &self.refusal {
            return Err(ApiError {
                status: None,
                message: refusal.clone(),
                detail: None,
            });
        }
        let url = format!("{}{target}", self.base);
        let answer = match body {
            None => self
                .headers(self.agent.get(&url))
                .config()
                .timeout_global(Some(timeout))
                .build()
                .call(),
            Some(body) => self
                .headers(self.agent.post(&url))
                .content_type("application/json")
                .config()
                .timeout_global(Some(timeout))
                .build()
                .send(body),
        };
        let mut answer = answer.map_err(|e| self.no_answer(&e))?;
        let status = answer.status().as_u16();
        let bytes = answer
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .read_to_vec()
            .map_err(|e| self.no_answer(&e))?;
        if (200..300).contains(&status) {
            return serde_json::from_slice(&bytes).map_err(|e| ApiError {
                status: Some(status),
                message: format!(
                    "The answer from {} is not what the API defines.",
                    self.shown
                ),
                detail: Some(e.to_string()),
            });
        }
        if status == 410 && serde_json::from_slice::<api::Message>(&bytes).is_err() {
            // The output-tracked answer of a gone output is not a message: keep it whole.
            return Err(ApiError {
                status: Some(status),
                message: format!("{} answered HTTP 410.", self.shown),
                detail: Some(String::from_utf8_lossy(&bytes).into_owned()),
            });
        }
        Err(match serde_json::from_slice::<api::Message>(&bytes) {
            Ok(m) => ApiError {
                status: Some(status),
                message: m.message,
                detail: m.detail,
            },
            Err(_) => {
                let text = String::from_utf8_lossy(&bytes);
                let (text, _) = api::cap_output(text.trim(), MAX_ERROR_DETAIL_BYTES);
                ApiError {
                    status: Some(status),
                    message: format!("{} answered HTTP {status}.", self.shown),
                    detail: (!text.is_empty()).then(|| text.to_string()),
                }
            }
        })
    }

    fn headers<B>(&self, mut request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        if let Some(token) = &self.token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        if let Some(chat) = self.chat {
            request = request.header(api::CHAT_HEADER, chat.to_string());
        }
        request
    }

    fn no_answer(&self, e: &ureq::Error) -> ApiError {
        ApiError {
            status: None,
            message: format!("No answer from {}.", self.shown),
            detail: Some(e.to_string()),
        }
    }
}

impl ProcessApi for Client {
    fn start(&self, request: &api::StartRequest) -> Result<api::StartResponse, ApiError> {
        Client::start(self, request, None)
    }

    fn is_remote(&self) -> bool {
        true
    }

    fn agent_instance_id(&self) -> Result<Option<Uuid>, ApiError> {
        Client::agent_instance_id(self)
    }

    fn forget_agent_instance(&self) {
        Client::forget_agent_instance(self);
    }

    fn start_identified(
        &self,
        request: &api::StartRequest,
        identity: &api::Identity,
    ) -> Result<api::StartResponse, ApiError> {
        Client::start(self, request, Some(identity))
    }

    fn cancel_tracked(
        &self,
        request: &api::CancelRequest,
    ) -> Result<api::CancelResponse, ApiError> {
        Client::cancel_tracked(self, request)
    }

    fn output_tracked(
        &self,
        id: &str,
        agent_instance_id: &str,
        input_digest: &str,
        wait: Option<Duration>,
    ) -> Result<api::TrackedOutputResponse, ApiError> {
        Client::output_tracked(self, id, agent_instance_id, input_digest, wait)
    }

    fn output(
        &self,
        id: &str,
        cursor: Option<u64>,
        wait: Option<Duration>,
    ) -> Result<api::OutputResponse, ApiError> {
        Client::output(self, id, cursor, wait)
    }

    fn output_with(
        &self,
        id: &str,
        options: &api::OutputOptions,
    ) -> Result<api::OutputResponse, ApiError> {
        Client::output_with(self, id, options)
    }

    fn wait_any(
        &self,
        ids: &[String],
        wait: Option<Duration>,
    ) -> Result<api::WaitResponse, ApiError> {
        Client::wait_any(self, ids, wait)
    }

    fn log_read(&self, id: &str, offset: u64, limit: u64) -> Result<api::LogResponse, ApiError> {
        Client::log_read(self, id, offset, limit)
    }

    fn log_search(
        &self,
        id: &str,
        pattern: &str,
        limit: u64,
    ) -> Result<api::LogSearchResponse, ApiError> {
        Client::log_search(self, id, pattern, limit)
    }

    fn list(&self, limit: usize) -> Result<api::ListResponse, ApiError> {
        Client::list(self, limit)
    }

    fn signal(&self, id: &str, signal: &str) -> Result<api::Message, ApiError> {
        Client::signal(self, id, signal)
    }

    fn signal_with_grace(
        &self,
        id: &str,
        signal: &str,
        grace: Option<Duration>,
    ) -> Result<api::Message, ApiError> {
        Client::signal_with_grace(self, id, signal, grace)
    }

    fn input(&self, id: &str, request: &api::InputRequest) -> Result<api::InputResponse, ApiError> {
        Client::input(self, id, request)
    }

    fn resize(&self, id: &str, rows: u16, cols: u16) -> Result<api::Message, ApiError> {
        Client::resize(self, id, rows, cols)
    }
}

/// A request body as JSON.
fn encode(request: &impl serde::Serialize) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(request).map_err(|e| ApiError {
        status: None,
        message: "Cannot encode the request.".into(),
        detail: Some(e.to_string()),
    })
}

/// A wait in whole milliseconds, at most the longest wait the server grants.
fn wait_ms(wait: Duration) -> u64 {
    u64::try_from(wait.as_millis())
        .unwrap_or(u64::MAX)
        .min(api::MAX_WAIT_MS)
}

/// Percent-encodes a path segment or a query value (a process id is a UUID, but the caller may pass anything).
fn escape_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

// A unix-socket transport for ureq. The connector and transport traits live in ureq's
// `unversioned` module (outside its semver promise), so Cargo.toml pins ureq to 3.5.x.

/// Opens a connection to the socket at `path`, whatever the URL says.
#[derive(Debug)]
struct UnixConnector {
    path: PathBuf,
}

impl Connector<()> for UnixConnector {
    type Out = UnixTransport;

    fn connect(
        &self,
        details: &ConnectionDetails,
        _chained: Option<()>,
    ) -> Result<Option<UnixTransport>, ureq::Error> {
        let stream = UnixStream::connect(&self.path)?;
        let buffers = LazyBuffers::new(
            details.config.input_buffer_size(),
            details.config.output_buffer_size(),
        );
        Ok(Some(UnixTransport { stream, buffers }))
    }
}

/// No name to resolve: the connector ignores the address.
#[derive(Debug)]
struct UnixResolver;

impl Resolver for UnixResolver {
    fn resolve(
        &self,
        _uri: &ureq::http::Uri,
        _config: &ureq::config::Config,
        _timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let mut addrs = self.empty();
        addrs.push(SocketAddr::from(([127, 0, 0, 1], 0)));
        Ok(addrs)
    }
}

#[derive(Debug)]
struct UnixTransport {
    stream: UnixStream,
    buffers: LazyBuffers,
}

/// The socket timeout for `timeout`, or the timeout error when it has already passed.
fn socket_timeout(timeout: &NextTimeout) -> Result<Option<Duration>, ureq::Error> {
    if timeout.after.is_not_happening() {
        return Ok(None);
    }
    if timeout.after.is_zero() {
        return Err(ureq::Error::Timeout(timeout.reason));
    }
    Ok(Some(*timeout.after))
}

fn io_error(e: io::Error, timeout: &NextTimeout) -> ureq::Error {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ureq::Error::Timeout(timeout.reason),
        _ => e.into(),
    }
}

impl Transport for UnixTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        let timeout = timeout.for_write();
        self.stream.set_write_timeout(socket_timeout(&timeout)?)?;
        let output = &self.buffers.output()[..amount];
        self.stream
            .write_all(output)
            .map_err(|e| io_error(e, &timeout))
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        let timeout = timeout.for_read();
        self.stream.set_read_timeout(socket_timeout(&timeout)?)?;
        let input = self.buffers.input_append_buf();
        let read = loop {
            match self.stream.read(input) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        let amount = read.map_err(|e| io_error(e, &timeout))?;
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        // A pooled connection is reusable when nothing is waiting to be read (no stray bytes,
        // no end of file, no error).
        if self.stream.set_nonblocking(true).is_err() {
            return false;
        }
        let mut byte = [0u8; 1];
        let open = matches!(
            self.stream.read(&mut byte),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock
        );
        open && self.stream.set_nonblocking(false).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(
            escape_segment("0b6f4a1e-0000-4000-8000-000000000000"),
            "0b6f4a1e-0000-4000-8000-000000000000"
        );
        assert_eq!(escape_segment("a/b c?d"), "a%2Fb%20c%3Fd");
        assert_eq!(escape_segment("é"), "%C3%A9");
    }

    #[test]
    fn debug_hides_the_token() {
        let client = Client::new("http://127.0.0.1:1").token(Some("secret".into()));
        let shown = format!("{client:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("<set>"), "{shown}");
    }
}
