//! The numbers behind `GET /metrics`: counters and gauges kept in atomics, and their
//! Prometheus text exposition (format 0.0.4).
//!
//! Everything updated on a hot path (a spawn, a read from a child's pipe, an exit, an HTTP
//! request, a connection) is one relaxed atomic add on a fixed slot: no lock, no allocation,
//! no map lookup. A scrape reads the atomics one by one, so a scrape taken during a burst may
//! see one counter a little ahead of another; each number on its own is exact.
//!
//! Why our own writer and not the `prometheus-client` crate: the text format is a dozen lines
//! of rules, and what we count is fixed at compile time (the routes, the exit reasons, the
//! histogram's buckets), so a registry of dynamically labelled families would only add a
//! dependency and locks. The output is checked against Prometheus's own parser (the Python
//! `prometheus_client` package) in `tests/ops.rs`.
//!
//! ```
//! use procwarden::metrics::Metrics;
//!
//! let metrics = Metrics::new();
//! let mut text = String::new();
//! metrics.write_text(&mut text, 0);
//! assert!(text.contains("# TYPE procwarden_processes_started_total counter\n"));
//! assert!(text.contains("procwarden_processes_started_total 0\n"));
//! ```

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The `Content-Type` of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds (seconds) of the spawn-latency histogram's buckets, `+Inf` implied. A spawn
/// here takes from about 100 µs (vfork-style clone, idle machine) to tens of milliseconds
/// (a loaded machine, a large environment); the buckets cover both ends.
pub const SPAWN_BUCKETS_SECONDS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// Why a process ended, as `procwarden_process_exits_total` labels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExitReason {
    /// It exited by itself (or its status could not be read).
    Exit,
    /// A signal ended it.
    Signal,
    /// Its timeout ended it.
    Timeout,
}

impl ExitReason {
    /// Every reason, in the order they are written.
    pub const ALL: [ExitReason; 3] = [ExitReason::Exit, ExitReason::Signal, ExitReason::Timeout];

    /// The label value.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            ExitReason::Exit => "exit",
            ExitReason::Signal => "signal",
            ExitReason::Timeout => "timeout",
        }
    }
}

/// The route a request was for, as `procwarden_http_requests_total` labels it: the route's
/// path template, so that process ids never become label values (a label per process would
/// grow the exposition without bound).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HttpRoute {
    /// `GET /`.
    Root,
    /// `GET /healthz`.
    Healthz,
    /// `GET /metrics`.
    Metrics,
    /// `GET /ui`.
    Ui,
    /// `POST /api/v0/processes/start`.
    Start,
    /// `POST /api/v0/processes/start-tracked`.
    StartTracked,
    /// `POST /api/v0/processes/cancel-tracked`.
    CancelTracked,
    /// `GET /api/v0/processes/list`.
    List,
    /// `GET /api/v0/processes/{id}/output`.
    Output,
    /// `GET /api/v0/processes/{id}/output-tracked`.
    OutputTracked,
    /// `POST /api/v0/processes/{id}/signal`.
    Signal,
    /// `POST /api/v0/processes/{id}/input`.
    Input,
    /// `POST /api/v0/processes/{id}/resize`.
    Resize,
    /// A path that names no route (answered 404), a request refused before its path was
    /// looked at (401), or one the HTTP front end answered itself (a request it could not
    /// read: 400, 408, 413, 431; a connection refused or evicted: 503; a shutdown: 503).
    Other,
}

impl HttpRoute {
    /// Every route, in the order they are written.
    pub const ALL: [HttpRoute; 14] = [
        HttpRoute::Root,
        HttpRoute::Healthz,
        HttpRoute::Metrics,
        HttpRoute::Ui,
        HttpRoute::Start,
        HttpRoute::StartTracked,
        HttpRoute::CancelTracked,
        HttpRoute::List,
        HttpRoute::Output,
        HttpRoute::OutputTracked,
        HttpRoute::Signal,
        HttpRoute::Input,
        HttpRoute::Resize,
        HttpRoute::Other,
    ];

    /// The label value: the path template.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            HttpRoute::Root => "/",
            HttpRoute::Healthz => "/healthz",
            HttpRoute::Metrics => "/metrics",
            HttpRoute::Ui => "/ui",
            HttpRoute::Start => "/api/v0/processes/start",
            HttpRoute::StartTracked => "/api/v0/processes/start-tracked",
            HttpRoute::CancelTracked => "/api/v0/processes/cancel-tracked",
            HttpRoute::List => "/api/v0/processes/list",
            HttpRoute::Output => "/api/v0/processes/{id}/output",
            HttpRoute::OutputTracked => "/api/v0/processes/{id}/output-tracked",
            HttpRoute::Signal => "/api/v0/processes/{id}/signal",
            HttpRoute::Input => "/api/v0/processes/{id}/input",
            HttpRoute::Resize => "/api/v0/processes/{id}/resize",
            HttpRoute::Other => "other",
        }
    }

    fn index(self) -> usize {
        HttpRoute::ALL
            .iter()
            .position(|r| *r == self)
            .unwrap_or(HttpRoute::ALL.len() - 1)
    }
}

/// The status codes counted one by one; any other code is counted as `status="other"`.
/// Every status the server answers is here.
pub const HTTP_STATUSES: [u16; 18] = [
    200, 400, 401, 403, 404, 405, 408, 409, 410, 411, 413, 415, 429, 431, 500, 501, 503, 507,
];

/// Slots per route: one per status in [`HTTP_STATUSES`], and "other".
const STATUS_SLOTS: usize = HTTP_STATUSES.len() + 1;

/// The counters. Share one between the manager ([`ManagerBuilder::metrics`]) and the HTTP
/// front end; [`Manager::metrics`] gives the manager's.
///
/// [`ManagerBuilder::metrics`]: crate::ManagerBuilder::metrics
/// [`Manager::metrics`]: crate::Manager::metrics
#[derive(Debug)]
pub struct Metrics {
    started: AtomicU64,
    exits: [AtomicU64; ExitReason::ALL.len()],
    output_bytes: AtomicU64,
    omitted_bytes: AtomicU64,
    /// Non-cumulative bucket counts; the last one is `+Inf`.
    spawn_buckets: [AtomicU64; SPAWN_BUCKETS_SECONDS.len() + 1],
    spawn_nanos: AtomicU64,
    requests: [[AtomicU64; STATUS_SLOTS]; HttpRoute::ALL.len()],
    connections: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// `n` counters at zero.
fn zeros<const N: usize>() -> [AtomicU64; N] {
    std::array::from_fn(|_| AtomicU64::new(0))
}

impl Metrics {
    /// Every counter at zero.
    #[must_use]
    pub fn new() -> Metrics {
        Metrics {
            started: AtomicU64::new(0),
            exits: zeros(),
            output_bytes: AtomicU64::new(0),
            omitted_bytes: AtomicU64::new(0),
            spawn_buckets: zeros(),
            spawn_nanos: AtomicU64::new(0),
            requests: std::array::from_fn(|_| zeros()),
            connections: AtomicU64::new(0),
        }
    }

    /// A process was started; its spawn took `latency` (from handing it to the supervisor
    /// until the child had exec'd).
    pub fn process_started(&self, latency: Duration) {
        self.started.fetch_add(1, Ordering::Relaxed);
        let seconds = latency.as_secs_f64();
        let bucket = SPAWN_BUCKETS_SECONDS
            .iter()
            .position(|&le| seconds <= le)
            .unwrap_or(SPAWN_BUCKETS_SECONDS.len());
        self.spawn_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.spawn_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// A process was marked exited.
    pub fn process_exited(&self, reason: ExitReason) {
        let i = ExitReason::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(0);
        self.exits[i].fetch_add(1, Ordering::Relaxed);
    }

    /// `bytes` were read from a child's output, of which `omitted` fell into the omitted
    /// middle of its stream (kept neither in the head nor in the tail).
    pub fn output_read(&self, bytes: u64, omitted: u64) {
        self.output_bytes.fetch_add(bytes, Ordering::Relaxed);
        if omitted > 0 {
            self.omitted_bytes.fetch_add(omitted, Ordering::Relaxed);
        }
    }

    /// A request was answered with `status`.
    pub fn http_request(&self, route: HttpRoute, status: u16) {
        let slot = HTTP_STATUSES
            .iter()
            .position(|&s| s == status)
            .unwrap_or(STATUS_SLOTS - 1);
        self.requests[route.index()][slot].fetch_add(1, Ordering::Relaxed);
    }

    /// A connection was accepted.
    pub fn connection_opened(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection was closed.
    pub fn connection_closed(&self) {
        // Never below zero, whatever the order of the calls.
        let _ = self
            .connections
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// Processes started so far.
    #[must_use]
    pub fn started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }

    /// Writes the exposition, with `running` (the manager's count of running processes)
    /// as `procwarden_processes_running`.
    pub fn write_text(&self, out: &mut String, running: usize) {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        family(
            out,
            "procwarden_processes_started_total",
            "counter",
            "Processes started.",
        );
        sample(
            out,
            "procwarden_processes_started_total",
            "",
            load(&self.started),
        );
        family(
            out,
            "procwarden_processes_running",
            "gauge",
            "Processes running now (started and not yet marked exited).",
        );
        sample(out, "procwarden_processes_running", "", running as u64);
        family(
            out,
            "procwarden_process_exits_total",
            "counter",
            "Processes marked exited, by what ended them.",
        );
        for (reason, count) in ExitReason::ALL.iter().zip(&self.exits) {
            let labels = format!("reason=\"{}\"", reason.label());
            sample(out, "procwarden_process_exits_total", &labels, load(count));
        }
        family(
            out,
            "procwarden_output_bytes_total",
            "counter",
            "Bytes read from processes' output.",
        );
        sample(
            out,
            "procwarden_output_bytes_total",
            "",
            load(&self.output_bytes),
        );
        family(
            out,
            "procwarden_output_omitted_bytes_total",
            "counter",
            "Bytes of output kept neither in a process's head nor in its tail.",
        );
        let omitted = load(&self.omitted_bytes);
        sample(out, "procwarden_output_omitted_bytes_total", "", omitted);
        self.write_spawn_histogram(out);
        family(
            out,
            "procwarden_http_requests_total",
            "counter",
            "HTTP requests answered, by route (its path template) and status.",
        );
        for (route, slots) in HttpRoute::ALL.iter().zip(&self.requests) {
            for (i, count) in slots.iter().enumerate() {
                let count = load(count);
                if count == 0 {
                    continue;
                }
                let status = HTTP_STATUSES
                    .get(i)
                    .map_or_else(|| "other".to_string(), u16::to_string);
                let labels = format!("route=\"{}\",status=\"{status}\"", escape(route.label()));
                sample(out, "procwarden_http_requests_total", &labels, count);
            }
        }
        family(
            out,
            "procwarden_http_connections",
            "gauge",
            "HTTP connections open now.",
        );
        sample(
            out,
            "procwarden_http_connections",
            "",
            load(&self.connections),
        );
    }

    fn write_spawn_histogram(&self, out: &mut String) {
        let name = "procwarden_spawn_seconds";
        family(
            out,
            name,
            "histogram",
            "Time a start takes from handing the spawn to the supervisor until the child has exec'd.",
        );
        // The count is the buckets' own sum, so that `+Inf` and `_count` always agree.
        let mut cumulative = 0u64;
        for (i, bucket) in self.spawn_buckets.iter().enumerate() {
            cumulative += bucket.load(Ordering::Relaxed);
            let le = SPAWN_BUCKETS_SECONDS
                .get(i)
                .map_or_else(|| "+Inf".to_string(), |le| le.to_string());
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        let sum = Duration::from_nanos(self.spawn_nanos.load(Ordering::Relaxed)).as_secs_f64();
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {cumulative}");
    }
}

/// The `# HELP` and `# TYPE` lines of a metric family.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// One sample line; `labels` without braces, empty for none.
fn sample(out: &mut String, name: &str, labels: &str, value: u64) {
    if labels.is_empty() {
        let _ = writeln!(out, "{name} {value}");
    } else {
        let _ = writeln!(out, "{name}{{{labels}}} {value}");
    }
}

/// A label value as the format wants it: backslash, double quote and line feed escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(metrics: &Metrics, running: usize) -> String {
        let mut out = String::new();
        metrics.write_text(&mut out, running);
        out
    }

    #[test]
    fn counters_and_the_histogram_move() {
        let m = Metrics::new();
        m.process_started(Duration::from_micros(300));
        m.process_started(Duration::from_secs(5));
        m.process_exited(ExitReason::Signal);
        m.output_read(40_000, 7_232);
        m.http_request(HttpRoute::Output, 200);
        m.http_request(HttpRoute::Output, 200);
        m.http_request(HttpRoute::Other, 404);
        m.http_request(HttpRoute::Start, 299);
        m.connection_opened();
        m.connection_opened();
        m.connection_closed();
        let t = text(&m, 1);
        for line in [
            "procwarden_processes_started_total 2",
            "procwarden_processes_running 1",
            "procwarden_process_exits_total{reason=\"signal\"} 1",
            "procwarden_process_exits_total{reason=\"exit\"} 0",
            "procwarden_output_bytes_total 40000",
            "procwarden_output_omitted_bytes_total 7232",
            "procwarden_spawn_seconds_bucket{le=\"0.00025\"} 0",
            "procwarden_spawn_seconds_bucket{le=\"0.0005\"} 1",
            "procwarden_spawn_seconds_bucket{le=\"1\"} 1",
            "procwarden_spawn_seconds_bucket{le=\"+Inf\"} 2",
            "procwarden_spawn_seconds_count 2",
            "procwarden_spawn_seconds_sum 5.0003",
            "procwarden_http_requests_total{route=\"/api/v0/processes/{id}/output\",status=\"200\"} 2",
            "procwarden_http_requests_total{route=\"other\",status=\"404\"} 1",
            "procwarden_http_requests_total{route=\"/api/v0/processes/start\",status=\"other\"} 1",
            "procwarden_http_connections 1",
        ] {
            assert!(t.lines().any(|l| l == line), "{line:?} missing in\n{t}");
        }
    }

    #[test]
    fn every_family_has_help_and_type_once() {
        let t = text(&Metrics::new(), 0);
        let types = t.lines().filter(|l| l.starts_with("# TYPE ")).count();
        let helps = t.lines().filter(|l| l.starts_with("# HELP ")).count();
        assert_eq!(types, 8);
        assert_eq!(helps, 8);
        assert!(t.ends_with('\n'));
    }

    #[test]
    fn the_connection_gauge_never_goes_below_zero() {
        let m = Metrics::new();
        m.connection_closed();
        assert!(text(&m, 0).contains("\nprocwarden_http_connections 0\n"));
    }

    #[test]
    fn huge_latencies_saturate() {
        let m = Metrics::new();
        m.process_started(Duration::MAX);
        assert!(text(&m, 0).contains("procwarden_spawn_seconds_bucket{le=\"+Inf\"} 1"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
