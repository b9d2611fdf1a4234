//! A naive reference model of [`HeadTailBuffer`], and a script interpreter that checks the real
//! buffer against it.
//!
//! The model keeps every byte, decodes the whole stream into UTF-8 units at once and applies the
//! rendering rules to those units directly. It shares no rendering code with the buffer: the two
//! only agree if both follow the rules. It is slow and unbounded; it exists for tests and fuzzing
//! (compiled for the crate's own tests, and for others with the `model` feature).
//!
//! [`check_script`] turns arbitrary bytes into a sequence of writes, renders and a close, runs it
//! against both and panics on the first difference. The property test, the fuzz target and the
//! replay of the committed fuzz corpus all call it.

use crate::buffer::{BufferConfig, HeadTailBuffer, Rendered, Truncation};
use crate::render::TRUNCATION_SUFFIX;

/// One decoded unit of the stream: a character, or an invalid sequence shown as U+FFFD.
#[derive(Debug, Clone, Copy)]
struct Unit {
    start: u64,
    len: u64,
    ch: Option<char>,
}

/// The reference model: every byte kept, rules applied to the whole stream.
#[derive(Debug, Clone, Default)]
pub struct NaiveBuffer {
    config: BufferConfig,
    bytes: Vec<u8>,
    closed: bool,
}

impl NaiveBuffer {
    /// An empty model with the given sizes.
    #[must_use]
    pub fn new(config: BufferConfig) -> Self {
        NaiveBuffer {
            config,
            bytes: Vec::new(),
            closed: false,
        }
    }

    /// Appends bytes unless closed.
    pub fn write(&mut self, bytes: &[u8]) {
        if !self.closed {
            self.bytes.extend_from_slice(bytes);
        }
    }

    /// Seals the stream.
    pub fn close(&mut self) {
        self.closed = true;
    }

    /// The stream decoded into units, and the end of the shown stream (before a trailing
    /// incomplete sequence that is held back while open).
    fn units(&self) -> (Vec<Unit>, u64) {
        let mut units = Vec::new();
        let mut pos = 0u64;
        for chunk in self.bytes.utf8_chunks() {
            for ch in chunk.valid().chars() {
                let len = ch.len_utf8() as u64;
                units.push(Unit {
                    start: pos,
                    len,
                    ch: Some(ch),
                });
                pos += len;
            }
            let invalid = chunk.invalid();
            if invalid.is_empty() {
                continue;
            }
            let at_end = pos as usize + invalid.len() == self.bytes.len();
            let incomplete = std::str::from_utf8(invalid).is_err_and(|e| e.error_len().is_none());
            if at_end && incomplete && !self.closed {
                return (units, pos);
            }
            units.push(Unit {
                start: pos,
                len: invalid.len() as u64,
                ch: None,
            });
            pos += invalid.len() as u64;
        }
        (units, pos)
    }

    /// Renders the stream from `cursor`, by the rules, from the whole stream.
    #[must_use]
    pub fn render_from(&self, cursor: u64) -> Rendered {
        let total = self.bytes.len() as u64;
        let head = self.config.head_bytes as u64;
        let (units, end) = self.units();
        let cursor = cursor.min(end);
        let tail_start = total.saturating_sub(self.config.tail_bytes as u64);
        let omitted = tail_start.saturating_sub(cursor.max(head));
        let mut output = String::new();
        if omitted == 0 {
            let shown: Vec<Unit> = units
                .iter()
                .copied()
                .filter(|u| u.start >= cursor)
                .collect();
            self.push_units(&mut output, &shown);
        } else {
            // The head shows units that begin in it; a character cut by its end is dropped, an
            // invalid sequence cut by it counts only its bytes inside the head.
            let shown: Vec<Unit> = units
                .iter()
                .filter(|u| u.start >= cursor && u.start < head)
                .filter_map(|u| match (u.start + u.len > head, u.ch) {
                    (false, _) => Some(*u),
                    (true, Some(_)) => None,
                    (true, None) => Some(Unit {
                        len: head - u.start,
                        ..*u
                    }),
                })
                .collect();
            self.push_units(&mut output, &shown);
            if output.is_empty() {
                output.push_str(&format!("... [omitted {omitted} bytes] ...\n\n"));
            } else {
                output.push_str(&format!("\n\n... [omitted {omitted} bytes] ...\n\n"));
            }
            let from = cursor.max(tail_start);
            let shown: Vec<Unit> = units.iter().copied().filter(|u| u.start >= from).collect();
            self.push_units(&mut output, &shown);
        }
        let truncated = (omitted > 0).then(|| Truncation {
            original_bytes: total - cursor,
            retained_bytes: output.len() as u64,
            omitted_bytes: omitted,
        });
        Rendered {
            output,
            truncated,
            next_cursor: end,
            closed: self.closed,
        }
    }

    /// Renders a run of units: split into lines at `\n`, long lines cut by whole units.
    fn push_units(&self, out: &mut String, units: &[Unit]) {
        let max_line = self.config.max_line_bytes as u64;
        let keep = max_line.saturating_sub(TRUNCATION_SUFFIX.len() as u64);
        for (i, line) in units.split(|u| u.ch == Some('\n')).enumerate() {
            if i > 0 {
                out.push('\n');
            }
            let raw: u64 = line.iter().map(|u| u.len).sum();
            let mut used = 0;
            for unit in line {
                if raw > max_line && used + unit.len > keep {
                    break;
                }
                used += unit.len;
                out.push(unit.ch.unwrap_or(char::REPLACEMENT_CHARACTER));
            }
            if raw > max_line {
                out.push_str(TRUNCATION_SUFFIX);
            }
        }
    }
}

/// Bytes a "palette" write draws from: ASCII, newlines and the pieces of multi-byte characters
/// and invalid sequences, so that short random inputs hit UTF-8 edge cases often.
const PALETTE: [u8; 16] = [
    b'a', b'b', b'\n', b'\n', 0xC3, 0xA9, 0xE2, 0x82, 0xAC, 0xF0, 0x9F, 0x98, 0x80, 0xFF, 0xC0,
    b'z',
];

/// Reads bytes of a script one at a time; zeros once exhausted.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }

    fn take(&mut self, n: usize) -> &[u8] {
        let (taken, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        taken
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Runs a script against the buffer and the model and panics on the first difference.
///
/// The first three bytes choose small sizes (head and tail 0..=40, line limit 0..=63). Then each
/// op byte picks: a raw write, a palette write, a long write (up to 1 KiB, to cross the ring), a
/// render from a cursor near some interesting offset, or a close. After the script, renders from
/// every cursor up to the end and one past it are compared, open and closed.
pub fn check_script(data: &[u8]) {
    let mut r = Reader(data);
    let config = BufferConfig {
        head_bytes: usize::from(r.byte() % 41),
        tail_bytes: usize::from(r.byte() % 41),
        max_line_bytes: usize::from(r.byte() % 64),
    };
    let buffer = HeadTailBuffer::with_config(config);
    let mut model = NaiveBuffer::new(config);
    let mut scratch = Vec::new();
    while !r.is_empty() {
        let op = r.byte();
        match op % 8 {
            0 | 1 => {
                let len = usize::from(r.byte() % 32);
                let bytes = r.take(len).to_vec();
                buffer.write(&bytes);
                model.write(&bytes);
            }
            2..=4 => {
                let len = usize::from(r.byte() % 32);
                scratch.clear();
                scratch.extend(r.take(len).iter().map(|b| PALETTE[usize::from(b % 16)]));
                buffer.write(&scratch);
                model.write(&scratch);
            }
            5 => {
                let len = usize::from(r.byte()) * 4;
                let seed = r.byte();
                scratch.clear();
                scratch.extend((0..len).map(|i| PALETTE[(i * 7 + usize::from(seed)) % 16]));
                buffer.write(&scratch);
                model.write(&scratch);
            }
            6 => {
                let cursor = pick_cursor(r.byte(), &buffer);
                compare(&buffer, &model, cursor, data);
            }
            _ => {
                if op > 200 {
                    buffer.close();
                    model.close();
                }
            }
        }
    }
    compare_all(&buffer, &model, data);
    buffer.close();
    model.close();
    compare_all(&buffer, &model, data);
}

/// A cursor from one script byte: around the start, the head end, the tail start or the end.
fn pick_cursor(b: u8, buffer: &HeadTailBuffer) -> u64 {
    let config = buffer.config();
    let total = buffer.total_bytes();
    let anchors = [
        0,
        config.head_bytes as u64,
        total.saturating_sub(config.tail_bytes as u64),
        total,
    ];
    let anchor = anchors[usize::from(b % 4)];
    let delta = u64::from(b / 4 % 8);
    if b & 0x80 == 0 {
        anchor + delta
    } else {
        anchor.saturating_sub(delta)
    }
}

/// Compares renders from every cursor of a short stream, or from every cursor near the edges
/// (start, head end, tail start, end) of a longer one.
fn compare_all(buffer: &HeadTailBuffer, model: &NaiveBuffer, data: &[u8]) {
    let total = buffer.total_bytes();
    let config = buffer.config();
    let mut cursors: Vec<u64> = if total <= 128 {
        (0..=total + 1).collect()
    } else {
        let edges = [
            0,
            config.head_bytes as u64,
            total.saturating_sub(config.tail_bytes as u64),
            total,
        ];
        edges
            .iter()
            .flat_map(|&e| e.saturating_sub(5)..=e + 5)
            .collect()
    };
    cursors.sort_unstable();
    cursors.dedup();
    for cursor in cursors {
        compare(buffer, model, cursor, data);
    }
}

fn compare(buffer: &HeadTailBuffer, model: &NaiveBuffer, cursor: u64, data: &[u8]) {
    let got = buffer.render_from(cursor);
    let want = model.render_from(cursor);
    assert_eq!(
        got,
        want,
        "buffer differs from the model at cursor {cursor}\nconfig: {:?}\nstream: {:?}\nscript: {data:?}",
        buffer.config(),
        model.bytes,
    );
    if let Some(t) = got.truncated {
        assert_eq!(t.retained_bytes, got.output.len() as u64);
    }
}

/// Runs one arbitrary request through the HTTP request handler and panics if the answer breaks
/// the contract's promises for malformed input: the status is one the contract names, the body
/// is a JSON object (but a 200 of `/metrics` or `/ui`, in their own content types), every
/// error carries a `message`, and nothing is ever a 5xx (the manager behind it runs nothing:
/// its running limit is 0, so no input can start a process).
///
/// Input layout: byte 0 picks the method and whether a token is required; then NUL-separated
/// fields: the target, up to eight `name:value` headers, and the body.
pub fn check_handler_request(data: &[u8]) {
    use crate::handler::{Handler, Request};
    use std::sync::{Arc, OnceLock};

    static OPEN: OnceLock<Handler> = OnceLock::new();
    static GUARDED: OnceLock<Handler> = OnceLock::new();
    let manager = || {
        Arc::new(
            crate::Manager::builder()
                .max_running(0)
                .build()
                .expect("a manager for fuzzing"),
        )
    };
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    const METHODS: [&str; 8] = [
        "GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS", "get",
    ];
    let method = METHODS[usize::from(first % 8)];
    let handler = if first & 0x80 == 0 {
        OPEN.get_or_init(|| Handler::new(manager(), None))
    } else {
        GUARDED.get_or_init(|| Handler::new(manager(), Some("t0ken".into())))
    };
    let mut fields = rest.split(|&b| b == 0);
    let target = String::from_utf8_lossy(fields.next().unwrap_or_default()).into_owned();
    let mut headers = Vec::new();
    let mut body = Vec::new();
    for (i, field) in fields.enumerate() {
        if i < 8
            && let Some(colon) = field.iter().position(|&b| b == b':')
        {
            let name = String::from_utf8_lossy(&field[..colon]).into_owned();
            headers.push((name, field[colon + 1..].to_vec()));
            continue;
        }
        body.extend_from_slice(field);
    }
    let request = Request::new(method, target, headers, body);
    let response = handler.handle(&request);
    let allowed = [200, 400, 401, 404, 405, 409, 410, 429, 503];
    assert!(
        allowed.contains(&response.status),
        "status {} for {request:?}",
        response.status
    );
    let status = response.status;
    if response.content_type != crate::handler::JSON {
        // Only the metrics' text and the status page, and only as a 200.
        assert_eq!(status, 200, "a non-JSON error for {request:?}");
        assert!(
            [
                crate::handler::METRICS_CONTENT_TYPE,
                crate::handler::UI_CONTENT_TYPE
            ]
            .contains(&response.content_type),
            "content type {} for {request:?}",
            response.content_type
        );
        return;
    }
    let value: serde_json::Value =
        serde_json::from_slice(&response.into_body_bytes()).expect("every API body is JSON");
    assert!(value.is_object(), "body is not an object: {value}");
    // The one error answer that is not a message: output-tracked's final state.
    let gone = status == 410 && value["output_unavailable"] == serde_json::json!(true);
    if status >= 400 && !gone {
        assert!(
            value["message"].is_string(),
            "error without message: {value}"
        );
    }
}

/// Parses arbitrary bytes as JSON into each wire type of [`crate::api`] and panics if a value
/// that parses breaks the wire promises: it serializes, parses back to an equal value, and its
/// JSON holds no `null` anywhere (absent optional fields are left out, never sent as `null`;
/// no wire field is nullable).
///
/// Request types ([`crate::api::StartRequest`], [`crate::api::SignalRequest`]) and response
/// types ([`crate::api::StartResponse`], [`crate::api::ProcessInfo`],
/// [`crate::api::ListResponse`], [`crate::api::OutputResponse`], [`crate::api::Truncation`],
/// [`crate::api::Message`]) are all tried on the same input.
pub fn check_wire(data: &[u8]) {
    use crate::api;
    round_trip::<api::StartRequest>(data, "StartRequest");
    round_trip::<api::SignalRequest>(data, "SignalRequest");
    round_trip::<api::StartResponse>(data, "StartResponse");
    round_trip::<api::ProcessInfo>(data, "ProcessInfo");
    round_trip::<api::ListResponse>(data, "ListResponse");
    round_trip::<api::OutputResponse>(data, "OutputResponse");
    round_trip::<api::Truncation>(data, "Truncation");
    round_trip::<api::Message>(data, "Message");
    round_trip::<api::CancelRequest>(data, "CancelRequest");
    round_trip::<api::CancelResponse>(data, "CancelResponse");
    round_trip::<api::OutputUnavailable>(data, "OutputUnavailable");
}

/// One type of [`check_wire`]: whatever parses must survive serialize + parse unchanged, and
/// its JSON must hold no `null`.
fn round_trip<T>(data: &[u8], name: &str)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let Ok(value) = serde_json::from_slice::<T>(data) else {
        return;
    };
    let json = serde_json::to_string(&value)
        .unwrap_or_else(|e| panic!("{name}: {value:?} does not serialize: {e}"));
    let back: T = serde_json::from_str(&json)
        .unwrap_or_else(|e| panic!("{name}: its own JSON {json} does not parse: {e}"));
    assert_eq!(
        back,
        value,
        "{name}: round trip changed the value\njson: {json}\ninput: {:?}",
        String::from_utf8_lossy(data)
    );
    let tree: serde_json::Value =
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("{name}: {json} is not JSON: {e}"));
    assert!(
        !has_null(&tree),
        "{name}: serialized JSON holds a null: {json}\ninput: {:?}",
        String::from_utf8_lossy(data)
    );
}

/// Whether a JSON value holds `null` anywhere (a string's text `"null"` does not count).
fn has_null(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Null => true,
        serde_json::Value::Array(items) => items.iter().any(has_null),
        serde_json::Value::Object(fields) => fields.values().any(has_null),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::check_script;
    use std::path::Path;

    /// Every seed committed under `fuzz/corpus/buffer` passes the model check, so a fresh clone
    /// exercises the fuzz target's inputs without cargo-fuzz.
    #[test]
    fn committed_fuzz_corpus_replays() {
        replay("buffer", check_script);
    }

    /// The same for the request handler's corpus.
    #[test]
    fn committed_handler_corpus_replays() {
        replay("handler", super::check_handler_request);
    }

    /// The same for the wire types' corpus.
    #[test]
    fn the_operations_routes_pass_the_handler_check() {
        // Byte 0: the method (low bits) and whether a token is required (0x80); then the
        // target and NUL-separated `name:value` headers.
        for method in 0..8u8 {
            for guarded in [0, 0x80] {
                for target in ["/healthz", "/metrics", "/ui", "/metrics?x=1", "/ui/"] {
                    for headers in ["", "\0Authorization:Bearer t0ken", "\0Coder-Chat-Id:x"] {
                        let mut bytes = vec![method | guarded];
                        bytes.extend_from_slice(target.as_bytes());
                        bytes.extend_from_slice(headers.as_bytes());
                        super::check_handler_request(&bytes);
                    }
                }
            }
        }
    }

    #[test]
    fn committed_wire_corpus_replays() {
        replay("wire", super::check_wire);
    }

    fn replay(target: &str, check: fn(&[u8])) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/corpus")
            .join(target);
        let mut count = 0;
        for entry in std::fs::read_dir(&dir).expect("fuzz/corpus/buffer exists") {
            let path = entry.expect("corpus entry").path();
            if path.is_file() {
                let data = std::fs::read(&path).expect("readable corpus file");
                let run = std::panic::catch_unwind(|| check(&data));
                assert!(run.is_ok(), "corpus input {} fails", path.display());
                count += 1;
            }
        }
        assert!(count >= 5, "expected the committed seeds, found {count}");
    }
}
