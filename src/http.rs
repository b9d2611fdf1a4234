//! A minimal, blocking HTTP/1.1 front end: sockets in, [`Request`] values to a [`Service`],
//! JSON [`Response`] values back out. No async runtime: one accept thread and one thread per
//! connection, every wait bounded by a deadline from [`Limits`].
//!
//! Why our own and not a crate: `tiny_http` 0.12 (the first choice) aborts the whole process
//! when a request declares a huge `Content-Length` and is answered without reading its body,
//! writes through a 1 KiB buffer without `TCP_NODELAY` (about 44 ms per keep-alive response
//! over ~900 bytes), has no head-size limit, no read timeout and no bound on threads, and its
//! accept loop dies on the first accept error. The wire contract forbids each of those. What
//! is left is small: [`httparse`] parses the head; this module frames bodies, enforces limits
//! and writes responses.
//!
//! ```no_run
//! use procwarden::http::{Limits, Listen, Request, Response, Server};
//! use std::sync::Arc;
//!
//! let service = Arc::new(|request: Request| {
//!     Response::message(200, format!("you asked for {}", request.target))
//! });
//! let server = Server::bind(&Listen::Tcp("127.0.0.1:0".parse()?), Limits::default(), service)?;
//! println!("listening on {}", server.local_addr());
//! let stop = server.shutdown_handle();
//! // Elsewhere (a signal thread, say): `stop.shutdown()` makes `run` return.
//! # stop.shutdown();
//! server.run()?; // blocks until shut down
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! What the front end answers itself, always with a JSON body, `Content-Type:
//! application/json` and `Content-Length`, closing the connection afterwards:
//!
//! | case | status |
//! |---|---|
//! | request line or header that cannot be parsed, not HTTP/1.x, bad or conflicting `Content-Length`, both `Content-Length` and `Transfer-Encoding`, a transfer coding other than `chunked`, a malformed chunk | 400 |
//! | the head does not arrive within [`Limits::head_timeout`] of its first byte, or the body within [`Limits::body_timeout`] | 408 |
//! | declared body over [`Limits::max_body_bytes`] (answered without reading it, whatever the length, also one too large for 64 bits), or a chunked body growing past it | 413 |
//! | head over [`Limits::max_head_bytes`], or more than [`Limits::max_headers`] header fields | 431 |
//! | the service panicked (the connection stays open) | 500 |
//! | every connection slot is busy inside the service | 503 |
//!
//! Connections are HTTP/1.1 keep-alive (HTTP/1.0 only with `Connection: keep-alive`),
//! pipelined requests are answered in order, `Expect: 100-continue` gets its interim response
//! when the body is within limits. At [`Limits::max_connections`], a new connection evicts
//! the connection that has waited longest without being served (idle since its last
//! response, or stuck in a head, a body or a write), so no number of idle or slow clients
//! keeps another from being served; only when every slot is busy inside the service does the
//! newcomer get a 503.
//!
//! `HEAD` requests get the head of the service's answer without its body. The service must
//! not answer 1xx; 204 and 304 are sent without a body.

mod conn;
mod head;
mod server;
mod stream;
mod wire;

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

pub use server::{Server, ShutdownHandle};

/// Largest request head (request line and header fields) in bytes: past it, 431. The wire
/// contract fixes 16 KiB.
pub const DEFAULT_MAX_HEAD_BYTES: usize = 16 * 1024;
/// Most header fields in one request head (or in the trailer of a chunked body): past it, 431.
/// Each field costs a slot in the parser's table, allocated per parse.
pub const DEFAULT_MAX_HEADERS: usize = 128;
/// Largest request body in bytes: a larger declared `Content-Length` is answered 413 without
/// reading the body; a chunked body is cut off with 413 once it grows past it. The wire
/// contract fixes 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 1024 * 1024;
/// How long a request head may take to arrive, from its first byte (the wire contract's 10 s).
pub const DEFAULT_HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request body may take to arrive, from the end of its head: 1 MiB in 30 s is a
/// floor of about 35 KB/s.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a connection may wait for the first byte of its next request (the wire
/// contract's 60 s for idle keep-alive connections; also applies to a new connection).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long writing one response (or a `100 Continue`) may take before the connection is
/// dropped: a client that stops reading cannot hold a thread longer than this.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most connections served at once, each by its own thread. At the limit a newcomer evicts
/// a connection that is not inside the service (or gets 503 if all are); an evicted
/// connection's thread ends as soon as its blocked read or write returns, which the eviction
/// makes immediate. Each connection may buffer up to a head and a body
/// ([`DEFAULT_MAX_HEAD_BYTES`] + [`DEFAULT_MAX_BODY_BYTES`]) while it is read.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Stack size of a connection thread. The service runs on it (and may block there for
/// minutes in a long-poll). Measured here: parsing and dropping JSON at `serde_json`'s
/// nesting limit (127 levels) takes under 48 KiB in a release build but about 224 KiB in a
/// debug build, and a stack overflow aborts the whole process. Only touched pages cost
/// memory.
pub const DEFAULT_CONNECTION_STACK_BYTES: usize = 256 * 1024;
/// After answering and closing a connection that may still be sending (an error response, a
/// `Connection: close`), how long to keep reading and discarding what it sends, so that the
/// close does not reset the connection before the client has read the answer.
pub const DEFAULT_LINGER_TIMEOUT: Duration = Duration::from_secs(2);
/// Most bytes discarded while lingering (see [`DEFAULT_LINGER_TIMEOUT`]).
pub const DEFAULT_LINGER_BYTES: usize = 256 * 1024;
/// First wait after an accept error that is not about one connection (`ENOMEM`, `ENOBUFS`, an
/// fd limit with no spare fd left, ...). The wait doubles per consecutive error, up to
/// [`DEFAULT_ACCEPT_BACKOFF_MAX`], and ends at once on shutdown.
pub const DEFAULT_ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
/// Longest wait after consecutive accept errors (see [`DEFAULT_ACCEPT_BACKOFF_MIN`]).
pub const DEFAULT_ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Every bound of the front end. [`Limits::default`] gives the wire contract's values.
///
/// ```
/// use procwarden::http::Limits;
/// use std::time::Duration;
///
/// let short = Limits { idle_timeout: Duration::from_secs(5), ..Limits::default() };
/// assert_eq!(short.max_head_bytes, 16 * 1024);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// See [`DEFAULT_MAX_HEAD_BYTES`].
    pub max_head_bytes: usize,
    /// See [`DEFAULT_MAX_HEADERS`].
    pub max_headers: usize,
    /// See [`DEFAULT_MAX_BODY_BYTES`].
    pub max_body_bytes: u64,
    /// See [`DEFAULT_HEAD_TIMEOUT`].
    pub head_timeout: Duration,
    /// See [`DEFAULT_BODY_TIMEOUT`].
    pub body_timeout: Duration,
    /// See [`DEFAULT_IDLE_TIMEOUT`].
    pub idle_timeout: Duration,
    /// See [`DEFAULT_WRITE_TIMEOUT`].
    pub write_timeout: Duration,
    /// See [`DEFAULT_MAX_CONNECTIONS`].
    pub max_connections: usize,
    /// See [`DEFAULT_CONNECTION_STACK_BYTES`].
    pub connection_stack_bytes: usize,
    /// See [`DEFAULT_LINGER_TIMEOUT`].
    pub linger_timeout: Duration,
    /// See [`DEFAULT_LINGER_BYTES`].
    pub linger_bytes: usize,
    /// See [`DEFAULT_ACCEPT_BACKOFF_MIN`].
    pub accept_backoff_min: Duration,
    /// See [`DEFAULT_ACCEPT_BACKOFF_MAX`].
    pub accept_backoff_max: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head_bytes: DEFAULT_MAX_HEAD_BYTES,
            max_headers: DEFAULT_MAX_HEADERS,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            head_timeout: DEFAULT_HEAD_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            connection_stack_bytes: DEFAULT_CONNECTION_STACK_BYTES,
            linger_timeout: DEFAULT_LINGER_TIMEOUT,
            linger_bytes: DEFAULT_LINGER_BYTES,
            accept_backoff_min: DEFAULT_ACCEPT_BACKOFF_MIN,
            accept_backoff_max: DEFAULT_ACCEPT_BACKOFF_MAX,
        }
    }
}

/// The request as the service sees it (head parsed, body read in full within
/// [`Limits::max_body_bytes`], chunked bodies decoded) and what it answers: the same types the
/// request handler works on.
pub use crate::handler::{Request, Response};

/// The application behind the front end. Called on the connection's own thread, once per
/// request, in order; it may block (a long-poll), but every connection busy inside it holds
/// one of the [`Limits::max_connections`] slots. A panic is caught and answered 500.
pub trait Service: Send + Sync + 'static {
    /// Answers one request.
    fn handle(&self, request: Request) -> Response;

    /// A connection was accepted and is about to be served (for a connection gauge; called
    /// on the accept thread). Does nothing unless implemented.
    fn connection_opened(&self) {}

    /// The front end answered a request itself, without calling [`handle`](Self::handle):
    /// one it could not read (400, 408, 413, 431), a connection refused or evicted to make
    /// room or during a shutdown (503, 408), a request during a graceful shutdown (503), or
    /// a service that panicked (500). For request counters. Does nothing unless implemented.
    fn answered_by_front_end(&self, status: u16) {
        let _ = status;
    }

    /// A connection accepted earlier has been served and closed (called on its own thread,
    /// once per [`connection_opened`](Self::connection_opened)). Does nothing unless
    /// implemented.
    fn connection_closed(&self) {}
}

impl<F> Service for F
where
    F: Fn(Request) -> Response + Send + Sync + 'static,
{
    fn handle(&self, request: Request) -> Response {
        self(request)
    }
}

/// Where to listen.
///
/// Parses from the `--listen` syntax: `HOST:PORT` with a literal IP (`127.0.0.1:7717`,
/// `[::1]:0`) or `unix:/path/to/socket`. [`Listen::resolve`] also takes a host name.
///
/// ```
/// use procwarden::http::Listen;
///
/// let tcp: Listen = "127.0.0.1:7717".parse().unwrap();
/// assert_eq!(tcp, Listen::Tcp("127.0.0.1:7717".parse().unwrap()));
/// let unix: Listen = "unix:/run/pw.sock".parse().unwrap();
/// assert_eq!(unix, Listen::Unix("/run/pw.sock".into()));
/// assert!("localhost".parse::<Listen>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// A TCP address; port 0 picks a free port.
    Tcp(SocketAddr),
    /// A unix socket path. A stale socket file there (nobody listening) is replaced; a live
    /// one, or a file that is not a socket, is an "address in use" error. The file is removed
    /// when the server has shut down.
    Unix(PathBuf),
    /// A listening TCP or unix stream socket this process inherited at this descriptor, as
    /// a service manager passes one (systemd's socket activation: fd 3 on). The server takes
    /// it over (marks it close-on-exec, closes it when done) and never removes a unix
    /// socket's file, which belongs to whoever made it. Not part of the `--listen` syntax.
    Inherited(std::os::fd::RawFd),
}

/// Why a `--listen` value could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenParseError(String);

impl fmt::Display for ListenParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ListenParseError {}

impl Listen {
    /// Parses like [`FromStr`], and also takes a host name with a port (`localhost:7717`),
    /// resolved to its first address; the system resolver may be asked.
    ///
    /// ```
    /// use procwarden::http::Listen;
    ///
    /// let local = Listen::resolve("localhost:0").unwrap();
    /// assert!(matches!(local, Listen::Tcp(addr) if addr.ip().is_loopback()));
    /// assert!(Listen::resolve("localhost").is_err());
    /// ```
    ///
    /// # Errors
    ///
    /// A [`ListenParseError`] for `unix:` without a path, or for anything that is neither
    /// `HOST:PORT` (with a host that resolves) nor `unix:/path`.
    pub fn resolve(s: &str) -> Result<Listen, ListenParseError> {
        let parsed = s.parse::<Listen>();
        if parsed.is_ok() || s.starts_with(UNIX_PREFIX) {
            return parsed;
        }
        s.to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.next())
            .map(Listen::Tcp)
            .ok_or_else(|| ListenParseError(format!("{s:?} is neither HOST:PORT nor unix:/path")))
    }
}

/// The prefix of a unix socket address in the `--listen` syntax.
const UNIX_PREFIX: &str = "unix:";

impl FromStr for Listen {
    type Err = ListenParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(path) = s.strip_prefix(UNIX_PREFIX) {
            if path.is_empty() {
                return Err(ListenParseError("unix: needs a socket path".into()));
            }
            return Ok(Listen::Unix(PathBuf::from(path)));
        }
        s.parse().map(Listen::Tcp).map_err(|_| {
            ListenParseError(format!(
                "{s:?} is neither IP:PORT (e.g. 127.0.0.1:7717, [::1]:7717) nor unix:/path"
            ))
        })
    }
}
