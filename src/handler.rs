//! Request handling as a pure function: a request value in, a response value out, with the
//! manager behind it. The HTTP front end only parses bytes into a [`Request`] and writes the
//! [`Response`] back, so everything here can be tested and fuzzed without sockets.
//!
//! The handler is HTTP only: authentication, route and method, the chat header, query
//! parameters and JSON bodies. What a route then does, and every answer about a process, comes
//! from the same [`ProcessApi`] the agent tools use ([`LocalApi`] for the request's chat), so
//! the mapping between wire and library exists once, in [`crate::api`].
//!
//! Order of checks, as the wire contract fixes it: body size (done by the front end, from the
//! declared length), then the bearer token, then route and method, then the route's own checks.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use uuid::Uuid;

use crate::api::{self, ApiError, LocalApi, Message, ProcessApi};
use crate::id::ProcessId;
use crate::interrupt::Interrupt;
use crate::manager::Manager;
use crate::metrics::HttpRoute;

/// A request: what the HTTP front end (`procwarden::http`, feature `server`) parsed, and what the handler answers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Request {
    /// The method as sent, e.g. `GET` (case-sensitive, as HTTP methods are).
    pub method: String,
    /// The raw request target: usually a path with an optional `?query`, not decoded.
    pub target: String,
    /// Every header field in order: names as sent (compare them case-insensitively, or use
    /// [`Request::header`]), values as raw bytes with surrounding whitespace removed.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body (already bounded by the front end); empty when the request had none.
    pub body: Vec<u8>,
    /// Who sent it, for logs: `127.0.0.1:5555`, `[::1]:5555`, or `unix`; empty when unknown.
    pub peer: String,
    /// Ends the request's wait early (a long poll answers as if its time ran out): the front
    /// end uses it to make room when every connection is taken.
    pub interrupt: Interrupt,
}

impl Request {
    /// A request with this method, target, header fields and body (no peer, its own
    /// interrupt).
    #[must_use]
    pub fn new(
        method: impl Into<String>,
        target: impl Into<String>,
        headers: Vec<(String, Vec<u8>)>,
        body: Vec<u8>,
    ) -> Self {
        Request {
            method: method.into(),
            target: target.into(),
            headers,
            body,
            ..Request::default()
        }
    }

    /// How many header fields are called `name` (compared case-insensitively).
    #[must_use]
    pub fn header_count(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count()
    }

    /// The value of the first header field called `name` (compared case-insensitively).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
}

/// Writes a streamed body (see [`Body::Stream`]).
pub type StreamFn = Box<dyn FnOnce(&mut dyn io::Write) -> io::Result<()> + Send>;

/// A response body.
pub enum Body {
    /// The whole body, sent with its length.
    Full(Vec<u8>),
    /// A large answer, written by the function as it is sent (chunked), so that it never sits
    /// whole in memory however slowly the client reads.
    Stream(StreamFn),
}

impl Body {
    /// The whole body as bytes (a stream is run into memory: for tests and small answers).
    #[must_use]
    pub fn into_bytes(self) -> Vec<u8> {
        match self {
            Body::Full(bytes) => bytes,
            Body::Stream(write) => {
                let mut out = Vec::new();
                // Writing into a Vec cannot fail; a serializer error leaves what was written.
                let _ = write(&mut out);
                out
            }
        }
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Body::Full(bytes) => f
                .debug_tuple("Full")
                .field(&String::from_utf8_lossy(bytes))
                .finish(),
            Body::Stream(_) => f.write_str("Stream(..)"),
        }
    }
}

impl PartialEq for Body {
    /// Full bodies compare by bytes; a stream equals nothing (it is not known until written).
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Body::Full(a), Body::Full(b)) => a == b,
            _ => false,
        }
    }
}

/// A response: a status and a body (JSON but for `/metrics` and `/ui`). The front end adds
/// `Content-Type` (from [`Response::content_type`]), `Content-Length` (or chunked framing for a stream), `Date` and `Connection` as needed.
#[derive(Debug)]
#[non_exhaustive]
pub struct Response {
    /// The status code, 200 to 599.
    pub status: u16,
    /// The JSON body.
    pub body: Body,
    /// The `Allow` header field of a 405: the route's methods.
    pub allow: Option<&'static str>,
    /// The `Content-Type` header field: [`JSON`] except for `/metrics` and `/ui`.
    pub content_type: &'static str,
    /// Work for after the answer is out (see [`Response::after_sent`]).
    after_sent: Option<AfterSent>,
}

/// Work the front end runs once a response has been written, or its write has failed: see
/// [`Response::after_sent`]. Two responses compare equal whatever their hooks (see the
/// `PartialEq` of [`Response`]).
pub struct AfterSent(Box<dyn FnOnce() + Send>);

impl AfterSent {
    /// Runs the hook; a panic in it is contained and logged (the answer is already out, and
    /// the connection goes on). A front end of the embedder's own calls this once it has
    /// written the response the hook came from.
    pub fn run(self) {
        let hook = self.0;
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(hook)).is_err() {
            log::error!("http: a response's after-sent hook panicked");
        }
    }
}

impl std::fmt::Debug for AfterSent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AfterSent(..)")
    }
}

/// Two responses are equal when their status, body, `Allow` and `Content-Type` are: an
/// after-sent hook says nothing about the answer itself, so it is left out.
impl PartialEq for Response {
    fn eq(&self, other: &Self) -> bool {
        self.status == other.status
            && self.body == other.body
            && self.allow == other.allow
            && self.content_type == other.content_type
    }
}

/// The `Content-Type` of every API answer.
pub const JSON: &str = "application/json";
/// The `Content-Type` of `GET /metrics` (the Prometheus text format, version 0.0.4).
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4";
/// The `Content-Type` of `GET /ui` (the document declares its UTF-8 encoding itself).
pub const UI_CONTENT_TYPE: &str = "text/html";
/// The status page, one self-contained HTML document.
const UI_HTML: &str = include_str!("ui.html");

impl Response {
    /// A response with this status and (JSON) body.
    #[must_use]
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status,
            body: Body::Full(body.into()),
            allow: None,
            content_type: JSON,
            after_sent: None,
        }
    }

    /// A 200 whose JSON body is written as it is sent.
    #[must_use]
    pub fn stream(write: StreamFn) -> Self {
        Response {
            status: 200,
            body: Body::Stream(write),
            allow: None,
            content_type: JSON,
            after_sent: None,
        }
    }

    /// A JSON response from any serializable value.
    #[must_use]
    pub fn json(status: u16, value: &impl Serialize) -> Self {
        let body = serde_json::to_vec(value).unwrap_or_else(|e| {
            // Our wire types always serialize; keep the promise of a JSON body regardless.
            serde_json::to_vec(&Message::with_detail("Internal error.", e.to_string()))
                .unwrap_or_default()
        });
        Response::new(status, body)
    }

    /// The body as bytes (see [`Body::into_bytes`]).
    #[must_use]
    pub fn into_body_bytes(self) -> Vec<u8> {
        self.body.into_bytes()
    }

    /// A 200 whose body is not JSON (the metrics' text, the status page).
    #[must_use]
    pub fn other(content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Response {
            content_type,
            ..Response::new(200, body)
        }
    }

    /// A `{"message": ...}` response.
    #[must_use]
    pub fn message(status: u16, message: impl Into<String>) -> Self {
        Response::json(status, &Message::new(message))
    }

    /// Has the HTTP front end run `hook` on the connection's thread once this response has
    /// been written (or its write has failed), before the connection reads its next request:
    /// for work that must not delay the answer, such as the server's access line. A second
    /// call replaces the first hook.
    #[must_use]
    pub fn after_sent(mut self, hook: impl FnOnce() + Send + 'static) -> Self {
        self.after_sent = Some(AfterSent(Box::new(hook)));
        self
    }

    /// Takes the after-sent hook out, if there is one: a front end runs it with
    /// [`AfterSent::run`] once the response is written. The built-in front end (feature
    /// `server`) does this itself; an embedder serving [`Handler`] some other way does it too.
    pub fn take_after_sent(&mut self) -> Option<AfterSent> {
        self.after_sent.take()
    }
}

/// The application: maps the four routes and `GET /` onto a [`Manager`], through a
/// [`LocalApi`] acting for each request's chat.
pub struct Handler {
    manager: Arc<Manager>,
    token: Option<Vec<u8>>,
    /// When the handler was made: the server's start, for `/healthz`'s uptime.
    started: Instant,
}

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handler")
            .field("manager", &self.manager)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .finish()
    }
}

/// The route a path names.
enum Route<'a> {
    Root,
    Healthz,
    Metrics,
    Ui,
    Start,
    StartTracked,
    CancelTracked,
    List,
    Wait,
    Output(&'a str),
    OutputTracked(&'a str),
    Signal(&'a str),
    Log(&'a str),
    LogSearch(&'a str),
    Input(&'a str),
    Resize(&'a str),
}

impl Route<'_> {
    /// How the metrics count it.
    fn metric(&self) -> HttpRoute {
        match self {
            Route::Root => HttpRoute::Root,
            Route::Healthz => HttpRoute::Healthz,
            Route::Metrics => HttpRoute::Metrics,
            Route::Ui => HttpRoute::Ui,
            Route::Start => HttpRoute::Start,
            Route::StartTracked => HttpRoute::StartTracked,
            Route::CancelTracked => HttpRoute::CancelTracked,
            Route::List => HttpRoute::List,
            Route::Output(_) => HttpRoute::Output,
            Route::OutputTracked(_) => HttpRoute::OutputTracked,
            Route::Signal(_) => HttpRoute::Signal,
            Route::Input(_) => HttpRoute::Input,
            Route::Resize(_) => HttpRoute::Resize,
            Route::Wait => HttpRoute::Wait,
            Route::Log(_) => HttpRoute::Log,
            Route::LogSearch(_) => HttpRoute::LogSearch,
        }
    }

    /// Whether it is served without the token: the health check (it tells nothing but that
    /// the server is up) and the status page's document (it holds no data; every call it
    /// makes carries the token the user typed).
    fn is_open(&self) -> bool {
        matches!(self, Route::Healthz | Route::Ui)
    }
}

/// `GET /healthz`.
#[derive(Serialize)]
struct Health {
    status: &'static str,
    version: &'static str,
    running: usize,
    uptime_s: u64,
}

impl Handler {
    /// A handler for `manager`; with a token, every request needs `Authorization: Bearer <token>`.
    #[must_use]
    pub fn new(manager: Arc<Manager>, token: Option<String>) -> Self {
        Handler {
            manager,
            token: token.map(String::into_bytes),
            started: Instant::now(),
        }
    }

    /// The manager behind this handler.
    #[must_use]
    pub fn manager(&self) -> &Arc<Manager> {
        &self.manager
    }

    /// Answers one request (and counts it in the manager's metrics). Never panics on any
    /// input.
    #[must_use]
    pub fn handle(&self, req: &Request) -> Response {
        let (route, response) = self.answer(req);
        self.manager.metrics().http_request(route, response.status);
        response
    }

    /// The answer, and the route it counts under.
    fn answer(&self, req: &Request) -> (HttpRoute, Response) {
        let (path, query) = match origin_form(&req.target).split_once('?') {
            Some((path, query)) => (path, query),
            None => (origin_form(&req.target), ""),
        };
        let route = route(path);
        let metric = route.as_ref().map_or(HttpRoute::Other, Route::metric);
        let open = route.as_ref().is_some_and(Route::is_open);
        if !open && !self.authorized(req) {
            return (metric, Response::message(401, "Unauthorized."));
        }
        let Some(route) = route else {
            return (metric, Response::message(404, "Not found."));
        };
        (metric, self.route(req, route, query))
    }

    /// Method, chat header, then the route's own work.
    fn route(&self, req: &Request, route: Route<'_>, query: &str) -> Response {
        let allowed = match route {
            Route::Root
            | Route::Healthz
            | Route::Metrics
            | Route::Ui
            | Route::List
            | Route::Wait
            | Route::Output(_)
            | Route::OutputTracked(_)
            | Route::Log(_)
            | Route::LogSearch(_) => "GET",
            Route::Start
            | Route::StartTracked
            | Route::CancelTracked
            | Route::Signal(_)
            | Route::Input(_)
            | Route::Resize(_) => "POST",
        };
        if req.method != allowed {
            let mut response = Response::message(405, "Method not allowed.");
            response.allow = Some(allowed);
            return response;
        }
        match route {
            Route::Healthz => self.health(),
            Route::Ui => Response::other(UI_CONTENT_TYPE, UI_HTML),
            Route::Metrics => self.metrics(),
            route => self.api_route(req, route, query),
        }
    }

    /// The routes that act for the request's chat.
    fn api_route(&self, req: &Request, route: Route<'_>, query: &str) -> Response {
        let chat = match chat_of(req) {
            Ok(chat) => chat,
            Err(response) => return response,
        };
        // The front end may end this request's wait early to make room (see `http`).
        let api = LocalApi::new(Arc::clone(&self.manager), chat).interruptible(&req.interrupt);
        match route {
            Route::Root => {
                Response::message(200, format!("procwarden {}", env!("CARGO_PKG_VERSION")))
            }
            Route::Start => start(&api, req, false),
            Route::StartTracked => start(&api, req, true),
            Route::CancelTracked => cancel_tracked(&api, req),
            Route::List => list(&api, query, self.manager.instance_id()),
            Route::Output(id) => output(&api, id, query),
            Route::OutputTracked(id) => output_tracked(&api, id, query),
            Route::Wait => wait_any(&api, query),
            Route::Log(id) => log_read(&api, id, query),
            Route::LogSearch(id) => log_search(&api, id, query),
            Route::Signal(id) => self.signal(&api, id, req, chat),
            Route::Input(id) => self.input(&api, id, req, chat),
            Route::Resize(id) => self.resize(&api, id, req, chat),
            // Answered by `route` without a chat.
            Route::Healthz | Route::Ui | Route::Metrics => Response::message(404, "Not found."),
        }
    }

    /// The first check of the input and resize routes: another chat's process, or an unknown
    /// id, is not found before the body is looked at.
    fn visible(&self, raw_id: &str, chat: Option<Uuid>) -> Result<(), Response> {
        let found = raw_id
            .parse::<ProcessId>()
            .is_ok_and(|id| self.manager.info(&id, chat).is_ok());
        if found {
            Ok(())
        } else {
            Err(error_response(&ApiError::not_found(raw_id)))
        }
    }

    /// `POST {id}/input`: the process (404), the body (400), then the input's own checks.
    fn input(
        &self,
        api: &dyn ProcessApi,
        raw_id: &str,
        req: &Request,
        chat: Option<Uuid>,
    ) -> Response {
        if let Err(response) = self.visible(raw_id, chat) {
            return response;
        }
        match json_object::<api::InputRequest>(&req.body) {
            Ok(body) => answer(api.input(raw_id, &body)),
            Err(response) => response,
        }
    }

    /// `POST {id}/resize`: the process (404), the body (400), the size (400), then whether it
    /// has a terminal (409).
    fn resize(
        &self,
        api: &dyn ProcessApi,
        raw_id: &str,
        req: &Request,
        chat: Option<Uuid>,
    ) -> Response {
        if let Err(response) = self.visible(raw_id, chat) {
            return response;
        }
        match json_object::<api::ResizeRequest>(&req.body) {
            Ok(body) => answer(api.resize(raw_id, body.rows, body.cols)),
            Err(response) => response,
        }
    }

    /// `GET /healthz`: up, which version, how many processes run, since when.
    fn health(&self) -> Response {
        Response::json(
            200,
            &Health {
                status: "ok",
                version: env!("CARGO_PKG_VERSION"),
                running: self.manager.running(),
                uptime_s: self.started.elapsed().as_secs(),
            },
        )
    }

    /// `GET /metrics`.
    fn metrics(&self) -> Response {
        let mut text = String::with_capacity(4096);
        self.manager
            .metrics()
            .write_text(&mut text, self.manager.running());
        Response::other(METRICS_CONTENT_TYPE, text)
    }

    /// Compares the bearer token in constant time (for a given token length).
    fn authorized(&self, req: &Request) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        if req.header_count("Authorization") > 1 {
            return false;
        }
        let Some(value) = req.header("Authorization") else {
            return false;
        };
        let value = trim_ascii(value);
        let Some(given) = value.strip_prefix(b"Bearer ") else {
            return false;
        };
        constant_time_eq(trim_ascii(given), token)
    }

    /// `POST {id}/signal`. Another chat's process is not found before the body is looked at;
    /// an unknown id only after the body's checks.
    fn signal(
        &self,
        api: &dyn ProcessApi,
        raw_id: &str,
        req: &Request,
        chat: Option<Uuid>,
    ) -> Response {
        // 1. Another chat's process is not found, before the body is even looked at.
        if let Ok(id) = raw_id.parse::<ProcessId>()
            && self.manager.is_other_chats(&id, chat)
        {
            return error_response(&ApiError::not_found(raw_id));
        }
        // 2-3. The body.
        let body: api::SignalRequest = match json_object(&req.body) {
            Ok(body) => body,
            Err(response) => return response,
        };
        let name = match body.signal.as_deref() {
            None | Some("") => return Response::message(400, "Signal is required."),
            Some(name) => name,
        };
        // 4-6. The signal's name, then the process itself.
        let grace = body.grace_ms.map(Duration::from_millis);
        answer(api.signal_with_grace(raw_id, name, grace))
    }
}

/// `POST start` and `POST start-tracked` (which requires a `process_id`).
fn start(api: &dyn ProcessApi, req: &Request, tracked: bool) -> Response {
    match json_object::<api::StartRequest>(&req.body) {
        Ok(body) if tracked && body.process_id.is_none_or(|id| id.is_nil()) => {
            let (status, message) = api::tracked_error(&crate::Error::TrackedInvalid);
            Response::json(status, &message)
        }
        Ok(body) => answer(api.start(&body)),
        Err(response) => response,
    }
}

/// `POST cancel-tracked`.
fn cancel_tracked(api: &dyn ProcessApi, req: &Request) -> Response {
    match json_object::<api::CancelRequest>(&req.body) {
        Ok(body) => answer(api.cancel_tracked(&body)),
        Err(response) => response,
    }
}

/// `GET {id}/output-tracked?agent_instance_id=&input_digest=`: the output answer, or `410`
/// with the final state once the output is gone.
fn output_tracked(api: &dyn ProcessApi, raw_id: &str, query: &str) -> Response {
    let instance = query_value(query, "agent_instance_id").unwrap_or_default();
    let digest = query_value(query, "input_digest").unwrap_or_default();
    let wait = match output_wait(query) {
        Ok(wait) => wait,
        Err(response) => return response,
    };
    match api.output_tracked(raw_id, &instance, &digest, wait) {
        Ok(api::TrackedOutputResponse::Output(out)) => Response::json(200, &out),
        Ok(api::TrackedOutputResponse::Unavailable(gone)) => Response::json(410, &gone),
        Err(e) => error_response(&e),
    }
}

/// `GET list`.
fn list(api: &dyn ProcessApi, query: &str, instance: Uuid) -> Response {
    let limit = match query_u64(query, "limit") {
        Ok(None) => api::DEFAULT_LIST_LIMIT,
        Ok(Some(n)) if (1..=api::MAX_LIST_LIMIT).contains(&n) => {
            // At most MAX_LIST_LIMIT, which fits any usize.
            usize::try_from(n).unwrap_or(usize::MAX)
        }
        Ok(Some(_)) => {
            return Response::message(
                400,
                format!(
                    "Query parameter \"limit\" must be between 1 and {}.",
                    api::MAX_LIST_LIMIT
                ),
            );
        }
        Err(response) => return response,
    };
    match api.list_entries(limit) {
        Ok(entries) => Response::stream(Box::new(move |out| write_list(out, entries, instance))),
        Err(e) => error_response(&e),
    }
}

/// Writes `{"processes":[...],"protocol_version":1,"agent_instance_id":...}` an entry at a
/// time, so that a list of long commands never sits whole in memory however slowly the client
/// reads.
fn write_list(
    out: &mut dyn io::Write,
    entries: api::ListEntries,
    instance: Uuid,
) -> io::Result<()> {
    out.write_all(b"{\"processes\":[")?;
    for (i, entry) in entries.enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        serde_json::to_writer(&mut *out, &entry).map_err(io::Error::other)?;
    }
    write!(
        out,
        "],\"protocol_version\":{},\"agent_instance_id\":\"{instance}\"}}",
        api::TRACKED_PROTOCOL_VERSION
    )
}

/// `GET {id}/output`.
fn output(api: &dyn ProcessApi, raw_id: &str, query: &str) -> Response {
    let cursor = match query_u64(query, "cursor") {
        Ok(cursor) => cursor,
        Err(response) => return response,
    };
    // As with `wait`, anything but `true` is the default.
    let plain = query_value(query, "plain").as_deref() == Some("true");
    match output_wait(query) {
        Ok(wait) => answer(api.output_with(
            raw_id,
            &api::OutputOptions {
                cursor,
                wait,
                plain,
                until: query_value(query, "until"),
            },
        )),
        Err(response) => response,
    }
}

/// The wait of an output request: none without `wait=true`; else the shorter of `timeout_ms`
/// (our extension) and coder's `wait_ms` (empty or `0`: the cap), at most the cap.
fn output_wait(query: &str) -> Result<Option<Duration>, Response> {
    let timeout_ms =
        query_u64(query, "timeout_ms")?.map_or(api::MAX_WAIT_MS, |ms| ms.min(api::MAX_WAIT_MS));
    if query_value(query, "wait").as_deref() != Some("true") {
        return Ok(None);
    }
    let wait_ms = match query_value(query, "wait_ms") {
        None => api::MAX_WAIT_MS,
        Some(value) => coder_wait_ms(&value).ok_or_else(|| {
            let (status, message) = api::tracked_error(&crate::Error::TrackedInvalid);
            Response::json(status, &message)
        })?,
    };
    Ok(Some(Duration::from_millis(timeout_ms.min(wait_ms))))
}

/// coder's `wait_ms` as its agent reads it: `""` or `"0"` is the cap; otherwise a base-10
/// integer with an optional sign (Go's `strconv.ParseInt`) that is not negative, clamped to
/// the cap. `None` when it is not one.
fn coder_wait_ms(value: &str) -> Option<u64> {
    if value.is_empty() || value == "0" {
        return Some(api::MAX_WAIT_MS);
    }
    let digits = value.strip_prefix('+').unwrap_or(value);
    let negative = digits.starts_with('-');
    let digits = digits.strip_prefix('-').unwrap_or(digits);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Beyond 64 bits ParseInt fails; "-0" is zero, not negative.
    let n = digits.parse::<i64>().ok()?;
    if negative && n != 0 {
        return None;
    }
    Some(n.unsigned_abs().min(api::MAX_WAIT_MS))
}

/// `GET {id}/log?offset=O&limit=L`.
fn log_read(api: &dyn ProcessApi, raw_id: &str, query: &str) -> Response {
    let offset = match query_u64(query, "offset") {
        Ok(offset) => offset.unwrap_or(0),
        Err(response) => return response,
    };
    let limit = match query_u64(query, "limit") {
        Ok(limit) => limit.unwrap_or(api::MAX_LOG_LIMIT),
        Err(response) => return response,
    };
    answer(api.log_read(raw_id, offset, limit))
}

/// `GET {id}/log/search?pattern=P&limit=N`.
fn log_search(api: &dyn ProcessApi, raw_id: &str, query: &str) -> Response {
    let limit = match query_u64(query, "limit") {
        Ok(limit) => limit.unwrap_or(api::DEFAULT_LOG_SEARCH_LIMIT),
        Err(response) => return response,
    };
    let Some(pattern) = query_value(query, "pattern") else {
        return Response::message(400, "Query parameter \"pattern\" is required.");
    };
    answer(api.log_search(raw_id, &pattern, limit))
}

/// `GET wait?ids=A,B&timeout_ms=N`.
fn wait_any(api: &dyn ProcessApi, query: &str) -> Response {
    let timeout_ms = match query_u64(query, "timeout_ms") {
        Ok(ms) => ms.unwrap_or(api::MAX_WAIT_MS).min(api::MAX_WAIT_MS),
        Err(response) => return response,
    };
    let ids: Vec<String> = match query_value(query, "ids") {
        Some(ids) if !ids.is_empty() => ids.split(',').map(str::to_string).collect(),
        _ => return Response::message(400, "Query parameter \"ids\" is required."),
    };
    answer(api.wait_any(&ids, Some(Duration::from_millis(timeout_ms))))
}

/// A 200 with the answer, or the error's status and body.
fn answer<T: Serialize>(result: Result<T, ApiError>) -> Response {
    match result {
        Ok(value) => Response::json(200, &value),
        Err(e) => error_response(&e),
    }
}

/// The wire answer of an error. The in-process API always has a status; a transport error,
/// which it never makes, would be an internal error.
fn error_response(e: &ApiError) -> Response {
    Response::json(e.status.unwrap_or(500), &e.to_message())
}

/// The path and query of a request target: an absolute-form target (`http://host/path?q`,
/// which HTTP/1.1 servers must accept) loses its scheme and authority.
fn origin_form(target: &str) -> &str {
    for scheme in ["http://", "https://"] {
        if let Some(rest) = target
            .get(..scheme.len())
            .filter(|s| s.eq_ignore_ascii_case(scheme))
            .map(|_| &target[scheme.len()..])
        {
            return rest.find('/').map_or("/", |i| &rest[i..]);
        }
    }
    target
}

/// The route a request target names, as the metrics count it, and the process id its path
/// carries (for access logs). The target's query is ignored.
///
/// ```
/// use procwarden::handler::route_of;
/// use procwarden::metrics::HttpRoute;
///
/// assert_eq!(route_of("/api/v0/processes/abc/output?wait=true"), (HttpRoute::Output, Some("abc")));
/// assert_eq!(route_of("/healthz"), (HttpRoute::Healthz, None));
/// assert_eq!(route_of("/nowhere"), (HttpRoute::Other, None));
/// ```
#[must_use]
pub fn route_of(target: &str) -> (HttpRoute, Option<&str>) {
    let path = origin_form(target).split('?').next().unwrap_or_default();
    match route(path) {
        Some(
            route @ (Route::Output(id)
            | Route::OutputTracked(id)
            | Route::Signal(id)
            | Route::Input(id)
            | Route::Resize(id)),
        ) => (route.metric(), Some(id)),
        Some(route) => (route.metric(), None),
        None => (HttpRoute::Other, None),
    }
}

/// Which route a path names, if any.
fn route(path: &str) -> Option<Route<'_>> {
    match path {
        "/" => return Some(Route::Root),
        "/healthz" => return Some(Route::Healthz),
        "/metrics" => return Some(Route::Metrics),
        "/ui" => return Some(Route::Ui),
        _ => {}
    }
    let rest = path.strip_prefix(api::PREFIX)?.strip_prefix('/')?;
    match rest {
        "start" => Some(Route::Start),
        "start-tracked" => Some(Route::StartTracked),
        "cancel-tracked" => Some(Route::CancelTracked),
        "list" => Some(Route::List),
        "wait" => Some(Route::Wait),
        _ => {
            let (id, action) = rest.split_once('/')?;
            if id.is_empty() {
                return None;
            }
            match action {
                "output" => Some(Route::Output(id)),
                "output-tracked" => Some(Route::OutputTracked(id)),
                "signal" => Some(Route::Signal(id)),
                "log" => Some(Route::Log(id)),
                "log/search" => Some(Route::LogSearch(id)),
                "input" => Some(Route::Input(id)),
                "resize" => Some(Route::Resize(id)),
                _ => None,
            }
        }
    }
}

/// The chat a request acts for: absent or empty header means none; anything else must be a
/// UUID other than the nil UUID.
fn chat_of(req: &Request) -> Result<Option<Uuid>, Response> {
    // A gateway that adds its own header must not be bypassed by a client that sent one
    // first: more than one line is refused, whatever they say.
    if req.header_count(api::CHAT_HEADER) > 1 {
        return Err(Response::message(400, "Duplicate Coder-Chat-Id header."));
    }
    let Some(raw) = req.header(api::CHAT_HEADER) else {
        return Ok(None);
    };
    let raw = trim_ascii(raw);
    if raw.is_empty() {
        return Ok(None);
    }
    match std::str::from_utf8(raw)
        .ok()
        .and_then(|s| Uuid::parse_str(s).ok())
    {
        Some(uuid) if !uuid.is_nil() => Ok(Some(uuid)),
        _ => Err(Response::message(400, "Invalid Coder-Chat-Id header.")),
    }
}

/// Parses a body that must be one JSON object (serde would otherwise also fill a struct from
/// an array, by position).
fn json_object<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Response> {
    let invalid = |detail: String| {
        Response::json(
            400,
            &Message::with_detail("Request body must be valid JSON.", detail),
        )
    };
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| invalid(e.to_string()))?;
    if !value.is_object() {
        return Err(invalid("expected a JSON object".into()));
    }
    serde_json::from_value(value).map_err(|e| invalid(e.to_string()))
}

/// The first value of a query parameter, percent-decoded; `None` if absent.
fn query_value(query: &str, key: &str) -> Option<String> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k).as_deref() == Some(key)).then(|| percent_decode(v))
        })
        .map(|v| v.unwrap_or_else(|| "\u{FFFD}".to_string()))
}

/// A query parameter that must be a non-negative integer fitting in 64 bits when present.
fn query_u64(query: &str, key: &str) -> Result<Option<u64>, Response> {
    let Some(value) = query_value(query, key) else {
        return Ok(None);
    };
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad_query(key));
    }
    value.parse::<u64>().map(Some).map_err(|_| bad_query(key))
}

fn bad_query(key: &str) -> Response {
    Response::message(
        400,
        format!("Query parameter \"{key}\" must be a non-negative integer."),
    )
}

/// Decodes `%XX` escapes and `+` (as a space); `None` for a broken escape or invalid UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn trim_ascii(bytes: &[u8]) -> &[u8] {
    bytes.trim_ascii()
}

/// Equality whose time depends only on the lengths, not on where the bytes differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_after_sent_hook_is_taken_once_and_a_panic_in_it_is_contained() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let ran = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&ran);
        let mut response = Response::message(200, "ok").after_sent(move || {
            counter.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(response, Response::message(200, "ok"));
        let hook = response.take_after_sent().expect("the hook is there");
        assert!(response.take_after_sent().is_none(), "taken once");
        assert_eq!(
            ran.load(Ordering::SeqCst),
            0,
            "not run before the front end says"
        );
        hook.run();
        assert_eq!(ran.load(Ordering::SeqCst), 1);

        let mut panicking = Response::message(200, "ok").after_sent(|| panic!("a hook panics"));
        panicking
            .take_after_sent()
            .expect("the hook is there")
            .run();
    }

    #[test]
    fn routes() {
        assert!(matches!(route("/"), Some(Route::Root)));
        assert!(matches!(
            route("/api/v0/processes/start"),
            Some(Route::Start)
        ));
        assert!(matches!(route("/api/v0/processes/list"), Some(Route::List)));
        assert!(matches!(route("/api/v0/processes/wait"), Some(Route::Wait)));
        assert!(matches!(
            route("/api/v0/processes/abc/log"),
            Some(Route::Log("abc"))
        ));
        assert!(matches!(
            route("/api/v0/processes/abc/log/search"),
            Some(Route::LogSearch("abc"))
        ));
        assert!(matches!(
            route("/api/v0/processes/abc/output"),
            Some(Route::Output("abc"))
        ));
        assert!(matches!(
            route("/api/v0/processes/abc/signal"),
            Some(Route::Signal("abc"))
        ));
        assert!(matches!(
            route("/api/v0/processes/start-tracked"),
            Some(Route::StartTracked)
        ));
        assert!(matches!(
            route("/api/v0/processes/cancel-tracked"),
            Some(Route::CancelTracked)
        ));
        assert!(matches!(
            route("/api/v0/processes/abc/output-tracked"),
            Some(Route::OutputTracked("abc"))
        ));
        assert!(matches!(
            route("/api/v0/processes/abc/input"),
            Some(Route::Input("abc"))
        ));
        assert!(matches!(
            route("/api/v0/processes/abc/resize"),
            Some(Route::Resize("abc"))
        ));
        for path in [
            "",
            "/api",
            "/api/v0/processes",
            "/api/v0/processes/",
            "/api/v0/processes//output",
            "/api/v0/processes/abc",
            "/api/v0/processes/abc/other",
            "/api/v0/processes/abc/output/x",
            "/api/v0/processesx/start",
        ] {
            assert!(route(path).is_none(), "{path:?}");
        }
    }

    #[test]
    fn absolute_form_targets() {
        assert_eq!(
            origin_form("http://h:1/api/v0/processes/list?limit=2"),
            "/api/v0/processes/list?limit=2"
        );
        assert_eq!(origin_form("HTTP://h"), "/");
        assert_eq!(origin_form("/x"), "/x");
    }

    #[test]
    fn query_parsing() {
        assert_eq!(query_value("a=1&b=2", "b").as_deref(), Some("2"));
        assert_eq!(query_value("b=1&b=2", "b").as_deref(), Some("1"));
        assert_eq!(query_value("wait", "wait").as_deref(), Some(""));
        assert_eq!(
            query_value("w%61it=tr%75e", "wait").as_deref(),
            Some("true")
        );
        assert_eq!(query_value("", "wait"), None);
        assert!(query_u64("cursor=", "cursor").is_err());
        assert!(query_u64("cursor=-1", "cursor").is_err());
        assert!(query_u64("cursor=+1", "cursor").is_err());
        assert!(query_u64("cursor=18446744073709551616", "cursor").is_err());
        assert_eq!(
            query_u64("cursor=18446744073709551615", "cursor").ok(),
            Some(Some(u64::MAX))
        );
        assert_eq!(query_u64("cursor=007", "cursor").ok(), Some(Some(7)));
        assert!(query_u64("cursor=%zz", "cursor").is_err());
    }

    #[test]
    fn wait_ms_is_read_as_coders_agent_reads_it() {
        let cap = api::MAX_WAIT_MS;
        for (value, expected) in [
            ("", Some(cap)),
            ("0", Some(cap)),
            ("00", Some(0)),
            ("+0", Some(0)),
            ("-0", Some(0)),
            ("250", Some(250)),
            ("+250", Some(250)),
            ("999999999999", Some(cap)),
            ("9223372036854775807", Some(cap)),
            ("9223372036854775808", None),
            ("-1", None),
            ("1.5", None),
            ("+", None),
            ("x", None),
            (" 1", None),
        ] {
            assert_eq!(coder_wait_ms(value), expected, "{value:?}");
        }
        let wait = |q: &str| output_wait(q).ok().flatten();
        assert_eq!(wait("wait_ms=5"), None, "no wait without wait=true");
        assert_eq!(wait("wait=true&wait_ms=5"), Some(Duration::from_millis(5)));
        assert_eq!(
            wait("wait=true&wait_ms=500&timeout_ms=7"),
            Some(Duration::from_millis(7))
        );
        assert_eq!(wait("wait=true"), Some(Duration::from_millis(cap)));
        assert!(output_wait("wait=true&wait_ms=-3").is_err());
    }

    #[test]
    fn constant_time_compare() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secrets"));
    }
}
