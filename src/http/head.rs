//! Request heads: [`httparse`] for the syntax, then the framing rules of RFC 9112 §6 for the
//! body, strictly: a request whose framing could be read two ways is refused, never guessed.
//! Pure functions over bytes, so every rule is unit-tested without sockets.

use super::Limits;
use super::wire::ErrorAnswer;

/// How the body of a request is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// No body (neither `Content-Length` nor `Transfer-Encoding`).
    None,
    /// Exactly this many bytes (within the limit).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A parsed request head and what it means for the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Head {
    /// Bytes the head took in the buffer, including empty lines before it and the blank line
    /// that ends it.
    pub(super) len: usize,
    /// The method.
    pub(super) method: String,
    /// The raw request-target.
    pub(super) target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub(super) minor_version: u8,
    /// Every header field, names as sent, values raw.
    pub(super) headers: Vec<(String, Vec<u8>)>,
    /// How the body is delimited.
    pub(super) framing: Framing,
    /// Whether the client wants the connection kept open after the response.
    pub(super) keep_alive: bool,
    /// Whether the client waits for `100 Continue` before sending the body.
    pub(super) expect_continue: bool,
}

/// What [`parse`] made of the bytes so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Parsed {
    /// The head is not complete yet (and not yet over the limit).
    Partial,
    /// A complete, acceptable head.
    Complete(Head),
    /// Answer this and close the connection.
    Rejected(ErrorAnswer),
}

/// Parses the head at the start of `buf`, which holds the bytes received so far (possibly
/// more than the head: a body, pipelined requests).
pub(super) fn parse(buf: &[u8], limits: &Limits) -> Parsed {
    let mut slots = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut request = httparse::Request::new(&mut slots);
    let len = match request.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= limits.max_head_bytes => {
            return Parsed::Rejected(ErrorAnswer::head_too_large());
        }
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => {
            return Parsed::Rejected(ErrorAnswer::head_too_large());
        }
        Err(e) => {
            return Parsed::Rejected(ErrorAnswer::bad_request(format!(
                "malformed request head: {e}"
            )));
        }
    };
    if len > limits.max_head_bytes {
        return Parsed::Rejected(ErrorAnswer::head_too_large());
    }
    // Complete means all three are present.
    let (Some(method), Some(target), Some(minor_version)) =
        (request.method, request.path, request.version)
    else {
        return Parsed::Rejected(ErrorAnswer::bad_request("incomplete request line"));
    };
    let headers: Vec<(String, Vec<u8>)> = request
        .headers
        .iter()
        .map(|h| (h.name.to_owned(), trim(h.value).to_vec()))
        .collect();
    let framing = match framing(minor_version, &headers, limits.max_body_bytes) {
        Ok(framing) => framing,
        Err(answer) => return Parsed::Rejected(answer),
    };
    let keep_alive = keep_alive(minor_version, &headers);
    let expect_continue = minor_version >= 1
        && values(&headers, "expect").any(|v| v.eq_ignore_ascii_case(b"100-continue"));
    Parsed::Complete(Head {
        len,
        method: method.to_owned(),
        target: target.to_owned(),
        minor_version,
        headers,
        framing,
        keep_alive,
        expect_continue,
    })
}

/// The body's framing, from `Content-Length` and `Transfer-Encoding` (RFC 9112 §6.1-6.3).
/// Refused: both at once; a transfer coding other than a single `chunked`; transfer coding
/// in HTTP/1.0; a `Content-Length` that is not digits, or several that disagree. A length
/// over `max_body` (also one too large for 64 bits) is 413, before anything else is read.
fn framing(
    minor_version: u8,
    headers: &[(String, Vec<u8>)],
    max_body: u64,
) -> Result<Framing, ErrorAnswer> {
    let mut codings: Vec<Vec<u8>> = Vec::new();
    let mut has_te = false;
    for value in values(headers, "transfer-encoding") {
        has_te = true;
        codings.extend(
            list_elements(value)
                .filter(|c| !c.is_empty())
                .map(|c| c.to_ascii_lowercase()),
        );
    }
    let length = content_length(headers)?;
    if has_te {
        if length.is_some() {
            return Err(ErrorAnswer::bad_request(
                "both Content-Length and Transfer-Encoding",
            ));
        }
        if minor_version == 0 {
            return Err(ErrorAnswer::bad_request(
                "Transfer-Encoding in an HTTP/1.0 request",
            ));
        }
        if codings != [b"chunked".to_vec()] {
            return Err(ErrorAnswer::bad_request(
                "unsupported Transfer-Encoding: only \"chunked\" is accepted",
            ));
        }
        return Ok(Framing::Chunked);
    }
    match length {
        None | Some(Declared::Exact(0)) => Ok(Framing::None),
        Some(Declared::Exact(n)) if n <= max_body => Ok(Framing::Length(n)),
        Some(_) => Err(ErrorAnswer::body_too_large()),
    }
}

/// A declared `Content-Length`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Declared {
    /// A length that fits in 64 bits.
    Exact(u64),
    /// A length too large for 64 bits: its digits without leading zeros.
    Huge(Vec<u8>),
}

/// The `Content-Length`, if any. Several fields, or a comma-separated list, are accepted only
/// when every value is the same number (RFC 9110 §8.6).
fn content_length(headers: &[(String, Vec<u8>)]) -> Result<Option<Declared>, ErrorAnswer> {
    let mut found: Option<Declared> = None;
    for value in values(headers, "content-length") {
        for element in list_elements(value) {
            if element.is_empty() || !element.iter().all(u8::is_ascii_digit) {
                return Err(ErrorAnswer::bad_request(format!(
                    "invalid Content-Length: {:?}",
                    String::from_utf8_lossy(value)
                )));
            }
            let declared = parse_digits(element);
            match &found {
                Some(previous) if *previous != declared => {
                    return Err(ErrorAnswer::bad_request(
                        "conflicting Content-Length values",
                    ));
                }
                _ => found = Some(declared),
            }
        }
    }
    Ok(found)
}

/// The number that ASCII `digits` (at least one, all digits) spell.
fn parse_digits(digits: &[u8]) -> Declared {
    let mut n: u64 = 0;
    for &d in digits {
        match n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(d - b'0')))
        {
            Some(next) => n = next,
            None => {
                let first = digits.iter().position(|&d| d != b'0').unwrap_or(0);
                return Declared::Huge(digits[first..].to_vec());
            }
        }
    }
    Declared::Exact(n)
}

/// Whether the connection stays open after this request (RFC 9112 §9.3): HTTP/1.1 unless
/// `Connection: close`; HTTP/1.0 only with `Connection: keep-alive` (and no `close`).
fn keep_alive(minor_version: u8, headers: &[(String, Vec<u8>)]) -> bool {
    let mut close = false;
    let mut keep = false;
    for value in values(headers, "connection") {
        for option in list_elements(value) {
            close |= option.eq_ignore_ascii_case(b"close");
            keep |= option.eq_ignore_ascii_case(b"keep-alive");
        }
    }
    !close && (minor_version >= 1 || keep)
}

/// The values of every header field called `name` (lowercase), in order.
fn values<'a>(
    headers: &'a [(String, Vec<u8>)],
    name: &'a str,
) -> impl Iterator<Item = &'a [u8]> + 'a {
    headers
        .iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_slice())
}

/// The elements of a comma-separated field value, each without surrounding whitespace
/// (empty elements included, so that `Content-Length: 5,` is refused).
fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(trim)
}

/// `bytes` without leading and trailing spaces and tabs.
fn trim(bytes: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes.iter().position(|b| !is_ows(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits::default()
    }

    fn head(raw: &str) -> Head {
        match parse(raw.as_bytes(), &limits()) {
            Parsed::Complete(head) => head,
            other => panic!("{raw:?}: {other:?}"),
        }
    }

    fn status(raw: &[u8]) -> u16 {
        match parse(raw, &limits()) {
            Parsed::Rejected(answer) => answer.status,
            other => panic!(
                "{:?}: not rejected: {other:?}",
                String::from_utf8_lossy(raw)
            ),
        }
    }

    #[test]
    fn parses_a_plain_get() {
        let h = head(
            "GET /api/v0/processes/list?limit=3 HTTP/1.1\r\nHost: x\r\nCoder-Chat-Id:  abc \r\n\r\nrest",
        );
        assert_eq!(h.method, "GET");
        assert_eq!(h.target, "/api/v0/processes/list?limit=3");
        assert_eq!(h.minor_version, 1);
        assert_eq!(h.len, "GET /api/v0/processes/list?limit=3 HTTP/1.1\r\nHost: x\r\nCoder-Chat-Id:  abc \r\n\r\n".len());
        assert_eq!(h.headers[1], ("Coder-Chat-Id".to_owned(), b"abc".to_vec()));
        assert_eq!(h.framing, Framing::None);
        assert!(h.keep_alive);
        assert!(!h.expect_continue);
    }

    #[test]
    fn empty_lines_before_a_request_are_skipped() {
        let h = head("\r\n\r\nGET / HTTP/1.1\r\n\r\n");
        assert_eq!(h.len, 4 + "GET / HTTP/1.1\r\n\r\n".len());
    }

    #[test]
    fn partial_until_the_blank_line() {
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nHost: x\r\n", &limits()),
            Parsed::Partial
        );
        assert_eq!(parse(b"", &limits()), Parsed::Partial);
    }

    #[test]
    fn garbage_and_other_versions_are_400() {
        assert_eq!(status(b"garbage\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/2.0\r\n\r\n"), 400);
        assert_eq!(status(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 400);
        assert_eq!(status(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nno colon\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n"), 400);
        assert_eq!(status(b"GET / HTTP/1.1\r\n folded: x\r\n\r\n"), 400);
    }

    #[test]
    fn oversized_heads_are_431_complete_or_not() {
        let limits = Limits {
            max_head_bytes: 64,
            ..Limits::default()
        };
        let long = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(64));
        assert!(matches!(parse(long.as_bytes(), &limits), Parsed::Rejected(a) if a.status == 431));
        let complete = format!("{long}\r\n");
        assert!(
            matches!(parse(complete.as_bytes(), &limits), Parsed::Rejected(a) if a.status == 431)
        );
        let exact = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(64 - 23));
        assert_eq!(exact.len(), 64);
        assert!(matches!(
            parse(exact.as_bytes(), &limits),
            Parsed::Complete(_)
        ));
    }

    #[test]
    fn too_many_header_fields_are_431() {
        let limits = Limits {
            max_headers: 3,
            ..Limits::default()
        };
        let raw = "GET / HTTP/1.1\r\na: 1\r\nb: 2\r\nc: 3\r\nd: 4\r\n\r\n";
        assert!(matches!(parse(raw.as_bytes(), &limits), Parsed::Rejected(a) if a.status == 431));
    }

    #[test]
    fn content_length_framing() {
        let h = head("POST / HTTP/1.1\r\nContent-Length: 12\r\n\r\n");
        assert_eq!(h.framing, Framing::Length(12));
        assert_eq!(
            head("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n").framing,
            Framing::None
        );
        // Repeated identical values, as a list or as fields, are one length.
        let h = head("POST / HTTP/1.1\r\nContent-Length: 7, 7\r\ncontent-length: 007\r\n\r\n");
        assert_eq!(h.framing, Framing::Length(7));
    }

    #[test]
    fn bad_content_lengths_are_400() {
        for value in ["abc", "-1", "+5", "5 5", "0x10", "", "5,", "1.0", "٣"] {
            let raw = format!("POST / HTTP/1.1\r\nContent-Length: {value}\r\n\r\n");
            assert_eq!(status(raw.as_bytes()), 400, "{value:?}");
        }
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"),
            400
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\n"),
            400
        );
    }

    #[test]
    fn declared_lengths_over_the_limit_are_413_however_large() {
        for value in [
            "1048577",
            "1000000000000000",
            "18446744073709551615",
            "18446744073709551616",
            "99999999999999999999999",
        ] {
            let raw = format!("POST / HTTP/1.1\r\nContent-Length: {value}\r\n\r\n");
            assert_eq!(status(raw.as_bytes()), 413, "{value}");
        }
        let at_limit = "POST / HTTP/1.1\r\nContent-Length: 1048576\r\n\r\n";
        assert_eq!(head(at_limit).framing, Framing::Length(1 << 20));
        // Huge values still have to agree with each other.
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999, 0099999999999999999999\r\n\r\n"),
            413
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999, 99999999999999999998\r\n\r\n"),
            400
        );
    }

    #[test]
    fn transfer_encoding_rules() {
        let h = head("POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n");
        assert_eq!(h.framing, Framing::Chunked);
        for raw in [
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: \r\n\r\n",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert_eq!(status(raw.as_bytes()), 400, "{raw:?}");
        }
    }

    #[test]
    fn keep_alive_by_version_and_connection_options() {
        assert!(head("GET / HTTP/1.1\r\n\r\n").keep_alive);
        assert!(!head("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive);
        assert!(!head("GET / HTTP/1.1\r\nConnection: Upgrade, CLOSE\r\n\r\n").keep_alive);
        assert!(!head("GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
        assert!(!head("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n").keep_alive);
    }

    #[test]
    fn expect_continue_only_in_http_1_1() {
        assert!(
            head("POST / HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n")
                .expect_continue
        );
        assert!(
            !head("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n")
                .expect_continue
        );
        assert!(!head("POST / HTTP/1.1\r\nExpect: something\r\n\r\n").expect_continue);
    }

    #[test]
    fn trim_removes_only_spaces_and_tabs() {
        assert_eq!(trim(b" \t a b \t"), b"a b");
        assert_eq!(trim(b"   "), b"");
        assert_eq!(trim(b""), b"");
    }
}
