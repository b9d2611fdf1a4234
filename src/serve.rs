//! `procwarden serve`: the HTTP agent. Its options, the bearer token, the listening policy, the
//! access log, and the shutdown on SIGTERM or SIGINT.
//!
//! The command line (`crate::cli`, with every other subcommand's flags) parses the flags into
//! [`ServeOptions`] and calls [`run`]; the policy is here so that it is in the library,
//! documented and testable.

use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::handler::{Body, Handler};
use crate::http::{self, Limits, Listen, Server};
use crate::manager::{
    CgroupMode, DEFAULT_CHILD_OOM_SCORE_ADJ, DEFAULT_MAX_EXITED, DEFAULT_MAX_RUNNING,
    DEFAULT_MAX_TRACKED, Manager,
};
use crate::metrics::{HttpRoute, Metrics};
use crate::sys;

/// Where `serve` listens unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7717";
/// The environment variable that may hold the bearer token (removed from children's
/// environment).
pub const TOKEN_ENV: &str = "PROCWARDEN_TOKEN";

/// The options of `procwarden serve`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeOptions {
    /// `HOST:PORT` or `unix:/path`.
    pub listen: String,
    /// File holding the bearer token; wins over [`TOKEN_ENV`].
    pub token_file: Option<PathBuf>,
    /// Allow a non-loopback TCP address without a token.
    pub allow_unauthenticated: bool,
    /// Default working directory (used when it exists).
    pub workdir: Option<PathBuf>,
    /// Extra variables for every process.
    pub env: Vec<(String, String)>,
    /// Most processes running at once.
    pub max_running: usize,
    /// Most connections served at once (before the file descriptor limit lowers it).
    pub max_connections: usize,
    /// Where full logs go (default: a directory private to this server, made at start and
    /// removed at exit).
    pub log_dir: Option<PathBuf>,
    /// Largest log file, in bytes.
    pub log_max_bytes: u64,
    /// Most bytes all log files together may hold.
    pub log_max_total_bytes: u64,
    /// Where processes' cgroups go (default [`CgroupMode::Auto`]).
    pub cgroup: CgroupMode,
    /// Children's `oom_score_adj` over the server's own (default
    /// [`DEFAULT_CHILD_OOM_SCORE_ADJ`]; 0 leaves it unchanged).
    pub child_oom_score_adj: i32,
    /// Children's nice value (`--child-nice`, -20..=19); `None` (the default) leaves the
    /// server's own.
    pub child_nice: Option<i32>,
    /// Most exited processes kept.
    pub max_exited: usize,
    /// Most tracked-start identities remembered.
    pub max_tracked: usize,
    /// How log lines look on stderr.
    pub log_format: LogFormat,
}

/// How `serve` writes its log lines (`--log-format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum LogFormat {
    /// For a person: `env_logger`'s usual lines; access lines as
    /// `GET /path 200 0.3ms chat=- peer=...`.
    #[default]
    Human,
    /// One JSON object per line (see [`json_log_line`]): for a log shipper.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "human" => Ok(LogFormat::Human),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!("--log-format takes human or json, got \"{s}\"")),
        }
    }
}

/// The `log` target of the access lines (one per request).
pub const ACCESS_LOG_TARGET: &str = "procwarden::access";

/// One log record as a JSON object line (no trailing newline): `ts` (RFC 3339, UTC,
/// milliseconds), `level`, `target`, then `message`; an access line (target
/// [`ACCESS_LOG_TARGET`], logged in [`LogFormat::Json`]) carries its fields instead of a
/// message: `method`, `route` (the path template), `path`, `status`, `duration_ms`,
/// `chat_id` and `process_id` (each `null` when there is none) and `peer`.
#[must_use]
pub fn json_log_line(record: &log::Record<'_>, now: std::time::SystemTime) -> String {
    let quote = |s: &str| serde_json::Value::from(s).to_string();
    let mut line = format!(
        "{{\"ts\":{},\"level\":{},\"target\":{}",
        quote(&rfc3339_millis(now)),
        quote(record.level().as_str()),
        quote(record.target())
    );
    let message = record.args().to_string();
    // Access lines arrive as a JSON object already (see `Api::handle`): its fields join ours.
    match message.strip_prefix('{') {
        Some(fields) if record.target() == ACCESS_LOG_TARGET && fields.len() > 1 => {
            line.push(',');
            line.push_str(fields);
        }
        _ => {
            line.push_str(",\"message\":");
            line.push_str(&quote(&message));
            line.push('}');
        }
    }
    line
}

/// `2026-12-02T01:02:03.456Z`.
fn rfc3339_millis(time: std::time::SystemTime) -> String {
    let since = time
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let (y, m, d) = crate::time::civil_from_days(days);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            listen: DEFAULT_LISTEN.into(),
            token_file: None,
            allow_unauthenticated: false,
            workdir: None,
            env: Vec::new(),
            max_running: DEFAULT_MAX_RUNNING,
            max_connections: http::DEFAULT_MAX_CONNECTIONS,
            log_dir: None,
            log_max_bytes: crate::DEFAULT_LOG_MAX_BYTES,
            log_max_total_bytes: crate::DEFAULT_LOG_MAX_TOTAL_BYTES,
            cgroup: CgroupMode::Auto,
            child_oom_score_adj: DEFAULT_CHILD_OOM_SCORE_ADJ,
            child_nice: None,
            log_format: LogFormat::Human,
            max_exited: DEFAULT_MAX_EXITED,
            max_tracked: DEFAULT_MAX_TRACKED,
        }
    }
}

/// Why `serve` did not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServeError {
    /// A refusal at start-up (an empty token file, a `--listen` address that does not parse, a
    /// non-loopback address without a token): exit code 2, as for a bad flag.
    Refused(String),
    /// A failure to start (the address is in use): exit code 1.
    Failed(String),
}

impl ServeError {
    /// The process exit code for this error.
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        match self {
            ServeError::Refused(_) => 2,
            ServeError::Failed(_) => 1,
        }
    }
}

impl fmt::Display for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServeError::Refused(reason) | ServeError::Failed(reason) => f.write_str(reason),
        }
    }
}

impl std::error::Error for ServeError {}

/// The token in force: `--token-file` (trimmed; empty or unreadable is a refusal), else
/// [`TOKEN_ENV`] (trimmed; empty counts as unset).
///
/// # Errors
///
/// [`ServeError::Refused`] when the token file cannot be read or holds only white space.
pub fn resolve_token(opts: &ServeOptions) -> Result<Option<String>, ServeError> {
    if let Some(path) = &opts.token_file {
        let raw = std::fs::read_to_string(path).map_err(|e| {
            ServeError::Refused(format!("cannot read token file {}: {e}", path.display()))
        })?;
        let token = raw.trim();
        if token.is_empty() {
            return Err(ServeError::Refused(format!(
                "token file {} is empty",
                path.display()
            )));
        }
        return Ok(Some(token.to_string()));
    }
    Ok(std::env::var(TOKEN_ENV)
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty()))
}

/// Parses `--listen` (see [`Listen::resolve`]: `unix:/path`, an IP address with port, or a host
/// name with port).
///
/// # Errors
///
/// [`ServeError::Refused`] when `listen` is none of those (or the host name does not resolve).
pub fn resolve_listen(listen: &str) -> Result<Listen, ServeError> {
    Listen::resolve(listen).map_err(|e| ServeError::Refused(format!("--listen: {e}")))
}

/// systemd's socket activation: how many listening sockets were passed (from
/// [`LISTEN_FDS_START`] on).
pub const LISTEN_FDS_ENV: &str = "LISTEN_FDS";
/// systemd's socket activation: the pid the sockets were passed to (a child that inherits
/// the variables by mistake must not take them).
pub const LISTEN_PID_ENV: &str = "LISTEN_PID";
/// systemd's socket activation: the names of the passed sockets.
pub const LISTEN_FDNAMES_ENV: &str = "LISTEN_FDNAMES";
/// The service manager's notification socket (`READY=1`, `STOPPING=1`).
pub const NOTIFY_SOCKET_ENV: &str = "NOTIFY_SOCKET";
/// The first descriptor socket activation passes (`SD_LISTEN_FDS_START`).
pub const LISTEN_FDS_START: std::os::fd::RawFd = 3;
/// The service manager's variables: none of them reaches a child process.
const SERVICE_MANAGER_ENV: [&str; 4] = [
    LISTEN_FDS_ENV,
    LISTEN_PID_ENV,
    LISTEN_FDNAMES_ENV,
    NOTIFY_SOCKET_ENV,
];

/// The listening socket that socket activation passed to this process, if any: with
/// [`LISTEN_PID_ENV`] naming this process and [`LISTEN_FDS_ENV`] at least 1, descriptor
/// [`LISTEN_FDS_START`] (a unit with several sockets: the first; the others are left alone).
/// Variables meant for another process (another pid) are ignored.
///
/// # Errors
///
/// [`ServeError::Refused`] when the variables are set for this process but do not parse.
pub fn activation_fd() -> Result<Option<std::os::fd::RawFd>, ServeError> {
    let Some(count) = std::env::var_os(LISTEN_FDS_ENV) else {
        return Ok(None);
    };
    let pid = std::env::var(LISTEN_PID_ENV).unwrap_or_default();
    if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
        log::debug!("{LISTEN_FDS_ENV} is set for pid {pid:?}, not for this process: ignored");
        return Ok(None);
    }
    let count = count.to_string_lossy();
    let n: u32 = count
        .trim()
        .parse()
        .map_err(|_| ServeError::Refused(format!("{LISTEN_FDS_ENV}={count:?} is not a number")))?;
    if n > 1 {
        log::warn!("{n} sockets were passed; serving the first (fd {LISTEN_FDS_START}) only");
    }
    Ok((n > 0).then_some(LISTEN_FDS_START))
}

/// Tells the service manager `state` (`READY=1`, `STOPPING=1`) when it asked to be told
/// ([`NOTIFY_SOCKET_ENV`]); a failure is logged, never fatal.
fn notify(socket: Option<&std::ffi::OsStr>, state: &str) {
    if let Some(socket) = socket
        && let Err(e) = sys::notify(socket, state)
    {
        log::warn!("cannot notify the service manager ({state}): {e}");
    }
}

/// The termination signals `serve` handles.
const TERMINATION: [i32; 2] = [libc::SIGTERM, libc::SIGINT];

/// Runs the agent until SIGTERM or SIGINT, then shuts down gracefully: stop accepting, end every
/// process group (SIGTERM, then SIGKILL after the kill grace), answer blocked waiters, join
/// everything. Call it from the main thread before starting any other thread: it blocks the
/// termination signals so that only its signal thread receives them.
///
/// It serves the socket a service manager passed ([`activation_fd`]) instead of
/// [`ServeOptions::listen`] when there is one, and tells the service manager `READY=1` once
/// serving and `STOPPING=1` when the shutdown begins when [`NOTIFY_SOCKET_ENV`] is set.
///
/// # Errors
///
/// [`ServeError::Refused`] for a token file that cannot be read or is empty, a `--listen`
/// address that does not parse, or a non-loopback TCP address without a token (and without
/// [`ServeOptions::allow_unauthenticated`]); [`ServeError::Failed`] when the termination
/// signals cannot be blocked, the address cannot be bound, the manager or the signal thread
/// cannot start, or the server fails.
pub fn run(opts: ServeOptions) -> Result<(), ServeError> {
    sys::block_signals(&TERMINATION)
        .map_err(|e| ServeError::Failed(format!("cannot block termination signals: {e}")))?;
    let token = resolve_token(&opts)?;
    let notify_socket = std::env::var_os(NOTIFY_SOCKET_ENV).filter(|s| !s.is_empty());
    let listen = match activation_fd()? {
        Some(fd) => Listen::Inherited(fd),
        None => resolve_listen(&opts.listen)?,
    };
    let refuse_open = |addr: &std::net::SocketAddr| {
        if !addr.ip().is_loopback() && token.is_none() && !opts.allow_unauthenticated {
            return Err(ServeError::Refused(format!(
                "refusing to listen on {addr} without a token: set {TOKEN_ENV} or --token-file, or pass --allow-unauthenticated"
            )));
        }
        Ok(())
    };
    if let Listen::Tcp(addr) = &listen {
        refuse_open(addr)?;
    }
    let fd_limit = match sys::raise_fd_limit() {
        Ok(limit) => {
            log::debug!("file descriptor limit: {limit}");
            Some(limit)
        }
        Err(e) => {
            log::warn!("cannot raise the file descriptor limit: {e}");
            None
        }
    };
    let limits = Limits {
        max_connections: connection_limit(opts.max_connections, fd_limit),
        ..Limits::default()
    };
    if limits.max_connections < opts.max_connections {
        log::info!(
            "serving at most {} connections: the file descriptor limit is {}",
            limits.max_connections,
            fd_limit.unwrap_or_default()
        );
    }

    // Bind before the manager exists: a failure to listen then reports one line and nothing
    // else. The accept loop starts only after the handler is installed below.
    let metrics = Arc::new(Metrics::new());
    let service = Arc::new(Api {
        handler: OnceLock::new(),
        metrics: Arc::clone(&metrics),
        log_format: opts.log_format,
    });
    let server = Server::bind(
        &listen,
        limits,
        Arc::clone(&service) as Arc<dyn http::Service>,
    )
    .map_err(|e| match listen {
        Listen::Inherited(fd) => {
            ServeError::Failed(format!("cannot serve the socket passed as fd {fd}: {e}"))
        }
        _ => ServeError::Failed(format!("cannot listen on {}: {e}", opts.listen)),
    })?;
    if let Listen::Inherited(fd) = listen {
        // A passed TCP socket gets the same rule as --listen.
        let bound = server.local_addr();
        if let Some(addr) = bound
            .strip_prefix("http://")
            .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
        {
            refuse_open(&addr)?;
        }
        log::info!("serving the socket passed by the service manager (fd {fd}), not --listen");
    }

    let mut builder = Manager::builder()
        .metrics(metrics)
        .env_remove(TOKEN_ENV)
        .max_running(opts.max_running)
        .max_exited(opts.max_exited)
        .max_tracked(opts.max_tracked)
        // The server owns every child: it adopts and reaps orphans, and contains.
        .subreaper(true)
        .cgroup(opts.cgroup.clone())
        .child_oom_score_adj(opts.child_oom_score_adj)
        .child_nice(opts.child_nice)
        .log_max_bytes(opts.log_max_bytes)
        .log_max_total_bytes(opts.log_max_total_bytes);
    if let Some(dir) = &opts.log_dir {
        builder = builder.log_dir(dir);
    }
    for name in SERVICE_MANAGER_ENV {
        builder = builder.env_remove(name);
    }
    for (key, value) in &opts.env {
        builder = builder.env(key, value);
        // The contract: a terminal process's TERM is `--env`'s, if given; never the server's.
        if key == "TERM" {
            builder = builder.terminal_term(value);
        }
    }
    // The contract's chain: `--workdir` if it is a directory, else `$HOME` (the library's own
    // fallback, the current directory, is not the server's).
    let configured = opts.workdir.clone();
    if let Some(dir) = configured.as_ref().filter(|dir| !dir.is_dir()) {
        eprintln!(
            "procwarden: warning: --workdir {} is not a directory (yet); processes start in $HOME until it is",
            dir.display()
        );
    }
    builder = builder.workdir_provider(move || {
        configured
            .clone()
            .filter(|dir| dir.is_dir())
            .or_else(home_dir)
    });
    let manager = Arc::new(
        builder
            .build()
            .map_err(|e| ServeError::Failed(format!("cannot start the process manager: {e}")))?,
    );
    // Once, at start: what is degraded, what a sweep of a dead predecessor's cgroups did.
    for note in manager.startup_notes() {
        eprintln!("procwarden: {note}");
    }
    let _ = service
        .handler
        .set(Handler::new(Arc::clone(&manager), token));
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "listening on {}", server.local_addr());
    let _ = stdout.flush();
    drop(stdout);
    log::info!(
        "procwarden {} listening on {}",
        env!("CARGO_PKG_VERSION"),
        server.local_addr()
    );

    let shutdown = server.shutdown_handle();
    let closer = Arc::clone(&manager);
    let stopping_socket = notify_socket.clone();
    std::thread::Builder::new()
        .name("procwarden-signals".into())
        .spawn(move || match sys::wait_for_signal(&TERMINATION) {
            Ok(sig) => {
                log::info!("{}: shutting down", sys::signal_name(sig));
                notify(stopping_socket.as_deref(), "STOPPING=1");
                // Stop accepting first: a request on a kept-alive connection is told 503
                // "Server is shutting down." while the process groups end. Once they have
                // (every waiter answered), close what is left.
                shutdown.stop_accepting();
                closer.close();
                shutdown.shutdown();
            }
            Err(e) => log::error!("waiting for termination signals failed: {e}"),
        })
        .map_err(|e| ServeError::Failed(format!("cannot start the signal thread: {e}")))?;

    // Connections queue on the bound socket from here on, and the accept loop starts now.
    notify(notify_socket.as_deref(), "READY=1");
    let served = server.run();
    manager.close();
    served.map_err(|e| ServeError::Failed(format!("server failed: {e}")))?;
    log::info!("stopped");
    Ok(())
}

/// File descriptors kept out of the connection limit: the listener, the spare, the process
/// manager's own, stdio, and the pipes and pidfds of a few dozen children (at most a quarter
/// of a small limit). Past it, running out of descriptors is still handled (idle connections,
/// then the oldest waits, make room).
pub const FD_RESERVE: u64 = 64;

/// The connection limit: the configured one, lowered so that connections alone cannot use
/// up the file descriptor limit.
fn connection_limit(configured: usize, fd_limit: Option<u64>) -> usize {
    let Some(fds) = fd_limit else {
        return configured;
    };
    let reserve = FD_RESERVE.min(fds / 4);
    let room = usize::try_from(fds.saturating_sub(reserve)).unwrap_or(usize::MAX);
    configured.min(room.max(1))
}

/// `$HOME` when it names an existing absolute directory, else `/`.
fn home_dir() -> Option<PathBuf> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    Some(
        home.filter(|h| h.is_absolute() && h.is_dir())
            .unwrap_or_else(|| PathBuf::from("/")),
    )
}

/// The HTTP service: the handler plus one access-log line per request, and the connection
/// gauge of the metrics.
struct Api {
    /// Set once the manager exists, before the first connection is accepted.
    handler: OnceLock<Handler>,
    /// The manager's metrics (the connection gauge is kept here).
    metrics: Arc<Metrics>,
    /// How access lines are written.
    log_format: LogFormat,
}

impl http::Service for Api {
    fn handle(&self, request: http::Request) -> http::Response {
        let started = Instant::now();
        let response = match self.handler.get() {
            Some(handler) => handler.handle(&request),
            None => http::Response::message(503, "Server is starting."),
        };
        if !log::log_enabled!(target: ACCESS_LOG_TARGET, log::Level::Info) {
            return response;
        }
        // Written once the answer is out: the client does not wait for the log (a write to
        // stderr, under the logger's lock, which the exit lines of readers take too), and the
        // time logged includes sending the answer.
        let line = self.access_line(&request, &response);
        response.after_sent(move || line.log(started.elapsed()))
    }

    fn answered_by_front_end(&self, status: u16) {
        self.metrics.http_request(HttpRoute::Other, status);
    }

    fn connection_opened(&self) {
        self.metrics.connection_opened();
    }

    fn connection_closed(&self) {
        self.metrics.connection_closed();
    }
}

/// One request's access line, all but its duration, which is known once the answer is out.
enum AccessLine {
    /// `METHOD PATH STATUS`, then the duration, then `chat=… peer=…`.
    Human {
        /// Before the duration.
        head: String,
        /// After it.
        tail: String,
    },
    /// The JSON fields (`duration_ms` is added when logged).
    Json(serde_json::Map<String, serde_json::Value>),
}

impl AccessLine {
    /// Logs the line, with the time the request took from its parse to the end of its answer.
    fn log(self, took: Duration) {
        let ms = took.as_secs_f64() * 1000.0;
        match self {
            AccessLine::Human { head, tail } => {
                log::info!(target: ACCESS_LOG_TARGET, "{head} {ms:.1}ms {tail}");
            }
            AccessLine::Json(mut fields) => {
                fields.insert(
                    "duration_ms".into(),
                    serde_json::json!((ms * 1000.0).round() / 1000.0),
                );
                let fields = serde_json::Value::Object(fields);
                log::info!(target: ACCESS_LOG_TARGET, "{fields}");
            }
        }
    }
}

impl Api {
    /// The access line of one request, but for its duration.
    fn access_line(&self, request: &http::Request, response: &http::Response) -> AccessLine {
        let path = request.target.split('?').next().unwrap_or_default();
        let chat = request
            .header(crate::api::CHAT_HEADER)
            .map(|v| String::from_utf8_lossy(v).trim().to_string())
            .filter(|v| !v.is_empty());
        let (route, id) = crate::handler::route_of(&request.target);
        match self.log_format {
            LogFormat::Human => AccessLine::Human {
                head: format!("{} {} {}", request.method, path, response.status),
                tail: format!(
                    "chat={} peer={}",
                    chat.as_deref().unwrap_or("-"),
                    request.peer
                ),
            },
            LogFormat::Json => {
                // A start's id is in its answer (a small JSON body), the others' in the path.
                let id = id
                    .map(str::to_string)
                    .or_else(|| match (&response.body, route) {
                        (Body::Full(body), HttpRoute::Start) if response.status == 200 => {
                            serde_json::from_slice::<serde_json::Value>(body)
                                .ok()
                                .and_then(|v| v.get("id")?.as_str().map(str::to_string))
                        }
                        _ => None,
                    });
                let fields = [
                    ("method", serde_json::json!(request.method)),
                    ("route", serde_json::json!(route.label())),
                    ("path", serde_json::json!(path)),
                    ("status", serde_json::json!(response.status)),
                    ("chat_id", serde_json::json!(chat)),
                    ("process_id", serde_json::json!(id)),
                    ("peer", serde_json::json!(request.peer)),
                ];
                AccessLine::Json(fields.into_iter().map(|(k, v)| (k.into(), v)).collect())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_limit_fits_the_fd_limit() {
        assert_eq!(connection_limit(1024, None), 1024);
        assert_eq!(connection_limit(1024, Some(20_000)), 1024);
        assert_eq!(connection_limit(1024, Some(1024)), 960);
        assert_eq!(connection_limit(10, Some(1024)), 10);
        assert_eq!(connection_limit(1024, Some(64)), 48);
        assert_eq!(connection_limit(1024, Some(0)), 1, "never zero");
        assert!(
            connection_limit(usize::MAX, Some(u64::MAX)) > 1 << 40,
            "huge means huge"
        );
    }

    #[test]
    fn listen_addresses() {
        assert!(
            matches!(resolve_listen("127.0.0.1:0"), Ok(Listen::Tcp(a)) if a.ip().is_loopback())
        );
        assert!(matches!(resolve_listen("[::1]:0"), Ok(Listen::Tcp(a)) if a.is_ipv6()));
        assert!(
            matches!(resolve_listen("localhost:0"), Ok(Listen::Tcp(a)) if a.ip().is_loopback())
        );
        assert!(matches!(
            resolve_listen("unix:/tmp/x.sock"),
            Ok(Listen::Unix(_))
        ));
        assert!(resolve_listen("unix:").is_err());
        assert!(resolve_listen("nonsense").is_err());
    }
}
