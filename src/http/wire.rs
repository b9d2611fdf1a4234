//! Response bytes: the status line, the few header fields we send, and the JSON error bodies
//! of the front end. A response is built into one buffer (head and body) and written with
//! one `write_all`, so a small response leaves in one segment.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

/// The `Content-Type` of the front end's own answers (and the default of the service's).
const JSON: &str = "application/json";

/// The interim response to `Expect: 100-continue`.
pub(super) const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// The `Connection` header field of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Connection {
    /// None: the HTTP/1.1 default, keep-alive.
    Default,
    /// `Connection: keep-alive`, for an HTTP/1.0 client that asked for it.
    KeepAlive,
    /// `Connection: close`: this is the last response on the connection.
    Close,
}

/// An error the front end answers itself: `{"message": ..., "detail"?: ...}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ErrorAnswer {
    /// The status code.
    pub(super) status: u16,
    /// The sentence for a person.
    pub(super) message: &'static str,
    /// The underlying error, if there is one.
    pub(super) detail: Option<String>,
}

impl ErrorAnswer {
    /// 400 with a detail saying what was wrong.
    pub(super) fn bad_request(detail: impl Into<String>) -> Self {
        ErrorAnswer {
            status: 400,
            message: "Bad request.",
            detail: Some(detail.into()),
        }
    }

    /// 408: the head or the body did not arrive in time.
    pub(super) fn timeout(detail: &str) -> Self {
        ErrorAnswer {
            status: 408,
            message: "Request timeout.",
            detail: Some(detail.into()),
        }
    }

    /// 413: the body is over the limit.
    pub(super) fn body_too_large() -> Self {
        ErrorAnswer {
            status: 413,
            message: "Request body too large.",
            detail: None,
        }
    }

    /// 431: the head is over the limit.
    pub(super) fn head_too_large() -> Self {
        ErrorAnswer {
            status: 431,
            message: "Request header fields too large.",
            detail: None,
        }
    }

    /// 500: the service failed.
    pub(super) fn internal(detail: Option<String>) -> Self {
        ErrorAnswer {
            status: 500,
            message: "Internal error.",
            detail,
        }
    }

    /// 503: the server is shutting down and takes no more requests.
    pub(super) fn shutting_down() -> Self {
        ErrorAnswer {
            status: 503,
            message: "Server is shutting down.",
            detail: None,
        }
    }

    /// 503: no connection slot is free.
    pub(super) fn busy(detail: Option<String>) -> Self {
        ErrorAnswer {
            status: 503,
            message: "Server is busy.",
            detail,
        }
    }

    /// The JSON body.
    pub(super) fn body(&self) -> Vec<u8> {
        let value = match &self.detail {
            Some(detail) => serde_json::json!({ "message": self.message, "detail": detail }),
            None => serde_json::json!({ "message": self.message }),
        };
        value.to_string().into_bytes()
    }

    /// The whole response, closing the connection.
    pub(super) fn to_bytes(&self) -> Vec<u8> {
        let meta = Meta {
            status: self.status,
            head_only: false,
            connection: Connection::Close,
            allow: None,
            content_type: JSON,
            now: SystemTime::now(),
        };
        response(&meta, &self.body())
    }
}

/// The reason phrase of a status code ("" for codes we do not name: the phrase is optional).
pub(super) fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

/// What a response head says besides its framing.
#[derive(Debug, Clone)]
pub(super) struct Meta {
    /// The status code.
    pub(super) status: u16,
    /// The answer to a `HEAD` request: the head alone.
    pub(super) head_only: bool,
    /// The `Connection` field.
    pub(super) connection: Connection,
    /// The `Allow` field (a 405's methods).
    pub(super) allow: Option<&'static str>,
    /// The `Content-Type` field.
    pub(super) content_type: &'static str,
    /// For the `Date` field.
    pub(super) now: SystemTime,
}

/// How a body is framed.
#[derive(Debug, Clone, Copy)]
enum Framing {
    Length(usize),
    Chunked,
    /// Ends when the connection closes (a streamed body to an HTTP/1.0 client).
    Close,
}

/// The head: status line, `Date`, `Content-Type`, the framing, `Allow` and `Connection` as
/// asked, blank line.
fn head(meta: &Meta, framing: Framing) -> String {
    let status = meta.status;
    let bodyless = matches!(status, 204 | 304);
    let mut head = String::with_capacity(160);
    // Writing to a String cannot fail.
    let _ = write!(
        head,
        "HTTP/1.1 {status} {}\r\nDate: {}\r\nContent-Type: {}\r\n",
        reason(status),
        http_date(meta.now),
        meta.content_type
    );
    if !bodyless {
        match framing {
            Framing::Length(n) => {
                let _ = write!(head, "Content-Length: {n}\r\n");
            }
            Framing::Chunked => head.push_str("Transfer-Encoding: chunked\r\n"),
            Framing::Close => {}
        }
    }
    if let Some(allow) = meta.allow {
        let _ = write!(head, "Allow: {allow}\r\n");
    }
    match meta.connection {
        Connection::Default => {}
        Connection::KeepAlive => head.push_str("Connection: keep-alive\r\n"),
        Connection::Close => head.push_str("Connection: close\r\n"),
    }
    head.push_str("\r\n");
    head
}

/// A complete response: the head with `Content-Length`, then the body unless `head_only` (a
/// `HEAD` request) or the status forbids one (204, 304).
pub(super) fn response(meta: &Meta, body: &[u8]) -> Vec<u8> {
    let mut out = head(meta, Framing::Length(body.len())).into_bytes();
    if !meta.head_only && !matches!(meta.status, 204 | 304) {
        out.extend_from_slice(body);
    }
    out
}

/// The head of a streamed response: chunked, or (for an HTTP/1.0 client, whose connection
/// then closes) delimited by the close.
pub(super) fn stream_head(meta: &Meta, chunked: bool) -> Vec<u8> {
    let framing = if chunked {
        Framing::Chunked
    } else {
        Framing::Close
    };
    head(meta, framing).into_bytes()
}

/// An IMF-fixdate (RFC 9110 §5.6.7), e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
pub(super) fn http_date(time: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    // A clock before 1970 is wrong; show the epoch rather than fail.
    let secs = time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// (year, month 1..=12, day 1..=31) of a count of days since 1970-01-01.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let days = i64::try_from(days).unwrap_or(i64::MAX / 2);
    let (y, m, d) = crate::time::civil_from_days(days);
    let unsigned = |n: i64| u64::try_from(n).unwrap_or(0);
    (unsigned(y), unsigned(m), unsigned(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(
        status: u16,
        body: &[u8],
        head_only: bool,
        connection: Connection,
        now: SystemTime,
    ) -> Vec<u8> {
        let meta = Meta {
            status,
            head_only,
            connection,
            allow: None,
            content_type: JSON,
            now,
        };
        response(&meta, body)
    }
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn http_date_formats_known_instants() {
        assert_eq!(http_date(at(0)), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(at(784_111_777)), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(at(951_782_400)), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(
            http_date(at(4_107_542_399)),
            "Sun, 28 Feb 2100 23:59:59 GMT"
        ); // 2100 is no leap year
        assert_eq!(
            http_date(at(4_133_980_799)),
            "Fri, 31 Dec 2100 23:59:59 GMT"
        );
        assert_eq!(
            http_date(UNIX_EPOCH - Duration::from_secs(5)),
            "Thu, 01 Jan 1970 00:00:00 GMT"
        );
    }

    #[test]
    fn response_has_json_type_length_and_body() {
        let out = resp(200, b"{}", false, Connection::Default, at(0));
        assert_eq!(
            out,
            b"HTTP/1.1 200 OK\r\nDate: Thu, 01 Jan 1970 00:00:00 GMT\r\n\
              Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
        );
    }

    #[test]
    fn response_to_head_keeps_length_but_drops_body() {
        let out = resp(404, b"{\"a\":1}", true, Connection::Close, at(0));
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(text.contains("Content-Length: 7\r\n"));
        assert!(text.ends_with("Connection: close\r\n\r\n"));
    }

    #[test]
    fn bodyless_statuses_send_no_body_and_no_length() {
        let text =
            String::from_utf8(resp(204, b"{}", false, Connection::KeepAlive, at(0))).unwrap();
        assert!(!text.contains("Content-Length"));
        assert!(text.ends_with("Connection: keep-alive\r\n\r\n"));
    }

    #[test]
    fn unnamed_status_has_empty_reason() {
        let out = resp(299, b"{}", false, Connection::Default, at(0));
        assert!(out.starts_with(b"HTTP/1.1 299 \r\n"));
    }

    #[test]
    fn error_bodies_are_json_with_optional_detail() {
        let with: serde_json::Value =
            serde_json::from_slice(&ErrorAnswer::bad_request("bad \"x\"").body()).unwrap();
        assert_eq!(
            with,
            serde_json::json!({"message": "Bad request.", "detail": "bad \"x\""})
        );
        let without: serde_json::Value =
            serde_json::from_slice(&ErrorAnswer::body_too_large().body()).unwrap();
        assert_eq!(
            without,
            serde_json::json!({"message": "Request body too large."})
        );
        let bytes = ErrorAnswer::head_too_large().to_bytes();
        assert!(bytes.starts_with(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"));
    }
}
