//! Lines that match a pattern: [`Pattern`] (a compiled, size-bounded regular expression),
//! [`LineMatch`] (the line found and where), and the line splitting shared by the output
//! buffer's waits and the full log's search.
//!
//! A line is the bytes between two `\n`s (without them), matched as lossy UTF-8 on at most its
//! first `max_line` bytes (the buffer's long-line limit, 2048 by default), so that one huge
//! line costs no more to match than a long one. A line is shown as the output rules cut it:
//! over `max_line` bytes, its first `max_line - 16` bytes at a character boundary and
//! [`TRUNCATION_SUFFIX`](crate::TRUNCATION_SUFFIX).

use std::borrow::Cow;
use std::fmt;

use crate::render;

/// Longest pattern (in bytes) an output wait or a log search accepts.
pub const MAX_PATTERN_BYTES: usize = 1024;

/// A compiled pattern (the syntax of the `regex` crate).
#[derive(Clone)]
pub struct Pattern {
    regex: regex::Regex,
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Pattern")
            .field(&self.regex.as_str())
            .finish()
    }
}

/// Why a pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PatternError {
    /// Longer than the limit (in bytes).
    TooLong {
        /// The limit in force.
        limit: usize,
    },
    /// It does not compile; the compiler's message.
    Invalid(String),
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PatternError::TooLong { limit } => {
                write!(f, "the pattern is longer than {limit} bytes")
            }
            PatternError::Invalid(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for PatternError {}

impl Pattern {
    /// Compiles `pattern`, refusing one over `max_bytes` bytes.
    ///
    /// # Errors
    ///
    /// [`PatternError::TooLong`], or [`PatternError::Invalid`] with the compiler's message
    /// (a syntax error, or a pattern whose compiled form exceeds the `regex` crate's size
    /// limit).
    pub fn new(pattern: &str, max_bytes: usize) -> Result<Pattern, PatternError> {
        if pattern.len() > max_bytes {
            return Err(PatternError::TooLong { limit: max_bytes });
        }
        regex::Regex::new(pattern)
            .map(|regex| Pattern { regex })
            .map_err(|e| PatternError::Invalid(e.to_string()))
    }

    /// The pattern as given.
    #[must_use]
    pub fn as_str(&self) -> &str {
        self.regex.as_str()
    }

    /// Whether a line matches: `line` is the line's raw bytes (without its `\n`), of which at
    /// most the first `max_line` are looked at, decoded as lossy UTF-8.
    #[must_use]
    pub fn matches_line(&self, line: &[u8], max_line: usize) -> bool {
        let line = &line[..line.len().min(max_line)];
        let text: Cow<'_, str> = String::from_utf8_lossy(line);
        self.regex.is_match(&text)
    }
}

/// A line that matched: its text as shown, and the stream offset of its first byte.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LineMatch {
    /// The line without its `\n`, lossy UTF-8, cut as the output rules cut long lines.
    pub line: String,
    /// Stream offset of the line's first byte.
    pub offset: u64,
}

impl LineMatch {
    /// The match of the line at `offset` whose first bytes are `kept` (at least `max_line + 1`
    /// of them when the line is longer than `max_line`, so that the cut shows).
    pub(crate) fn new(kept: &[u8], offset: u64, max_line: usize) -> LineMatch {
        LineMatch {
            line: shown_line(kept, max_line),
            offset,
        }
    }
}

/// A line as the output rules show it (see the [module docs](self)).
pub(crate) fn shown_line(kept: &[u8], max_line: usize) -> String {
    let mut line = String::new();
    let kept = &kept[..kept.len().min(max_line.saturating_add(1))];
    render::push_lines(&mut line, kept, max_line);
    line
}

/// The lines of a stream as it arrives in pieces: keeps the current line's first bytes and
/// where it began, and hands each complete line to a callback.
#[derive(Debug, Clone)]
pub(crate) struct LineSplitter {
    /// Stream offset of the current (incomplete) line's first byte.
    start: u64,
    /// Its first bytes: up to `keep` of them.
    head: Vec<u8>,
    keep: usize,
}

impl LineSplitter {
    /// A splitter whose current line begins at `start` with the bytes `head` so far; it keeps
    /// `max_line + 1` bytes of each line (one more than is matched, so that a cut can be shown).
    pub(crate) fn new(start: u64, head: &[u8], max_line: usize) -> LineSplitter {
        let keep = max_line.saturating_add(1);
        let mut kept = Vec::new();
        kept.extend_from_slice(&head[..head.len().min(keep)]);
        LineSplitter {
            start,
            head: kept,
            keep,
        }
    }

    /// Feeds `bytes`, which begin at stream offset `at`; calls `line(offset, first_bytes)` for
    /// each line they complete.
    pub(crate) fn feed(&mut self, bytes: &[u8], at: u64, mut line: impl FnMut(u64, &[u8])) {
        let mut pos = 0;
        for nl in memchr::memchr_iter(b'\n', bytes) {
            self.extend(&bytes[pos..nl]);
            line(self.start, &self.head);
            self.head.clear();
            self.start = at + nl as u64 + 1;
            pos = nl + 1;
        }
        self.extend(&bytes[pos..]);
    }

    /// The current line, if it has any bytes: at the end of the stream it counts as a line.
    pub(crate) fn last_line(&self, end: u64) -> Option<(u64, &[u8])> {
        (end > self.start).then_some((self.start, &self.head[..]))
    }

    fn extend(&mut self, bytes: &[u8]) {
        let room = self.keep - self.head.len().min(self.keep);
        self.head.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }
}

/// Calls `line(offset, bytes)` for each line of `bytes` (stream bytes from offset `at`) that
/// begins at or after `from`: whole lines, and the last one (without `\n`) only when `last`
/// says it counts. `starts_line`: whether `bytes` begins at a line start (else its first
/// fragment, whose start is not known, is skipped). Stops when `line` returns true; returns
/// whether it did.
pub(crate) fn each_line(
    bytes: &[u8],
    at: u64,
    from: u64,
    starts_line: bool,
    last: bool,
    mut line: impl FnMut(u64, &[u8]) -> bool,
) -> bool {
    let mut pos = 0;
    let mut known = starts_line;
    for nl in memchr::memchr_iter(b'\n', bytes) {
        if known && at + pos as u64 >= from && line(at + pos as u64, &bytes[pos..nl]) {
            return true;
        }
        known = true;
        pos = nl + 1;
    }
    known
        && last
        && pos < bytes.len()
        && at + pos as u64 >= from
        && line(at + pos as u64, &bytes[pos..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pattern_over_the_limit_or_broken_is_refused() {
        assert_eq!(
            Pattern::new(&"a".repeat(1025), MAX_PATTERN_BYTES).err(),
            Some(PatternError::TooLong { limit: 1024 })
        );
        assert!(Pattern::new(&"a".repeat(1024), MAX_PATTERN_BYTES).is_ok());
        match Pattern::new("(", MAX_PATTERN_BYTES) {
            Err(PatternError::Invalid(message)) => {
                assert!(message.contains("unclosed"), "{message}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn only_the_first_max_line_bytes_are_matched() {
        let p = Pattern::new("END", MAX_PATTERN_BYTES).expect("compiles");
        let mut line = vec![b'x'; 2045];
        line.extend_from_slice(b"END");
        assert!(p.matches_line(&line, 2048));
        line.insert(0, b'x');
        assert!(!p.matches_line(&line, 2048), "END starts at byte 2046");
    }

    #[test]
    fn invalid_utf8_is_matched_as_replacement() {
        let p = Pattern::new("^a\u{FFFD}b$", MAX_PATTERN_BYTES).expect("compiles");
        assert!(p.matches_line(b"a\xffb", 2048));
    }

    #[test]
    fn the_splitter_joins_lines_split_across_writes() {
        let mut s = LineSplitter::new(0, b"", 2048);
        let mut lines = Vec::new();
        s.feed(b"rea", 0, |o, l| lines.push((o, l.to_vec())));
        s.feed(b"dy\nne", 3, |o, l| lines.push((o, l.to_vec())));
        s.feed(b"xt\n", 8, |o, l| lines.push((o, l.to_vec())));
        assert_eq!(lines, vec![(0, b"ready".to_vec()), (6, b"next".to_vec())]);
        assert_eq!(s.last_line(11), None);
        s.feed(b"tail", 11, |_, _| panic!("no newline"));
        assert_eq!(s.last_line(15), Some((11, &b"tail"[..])));
    }

    #[test]
    fn the_splitter_keeps_one_byte_past_the_limit() {
        let mut s = LineSplitter::new(0, b"", 4);
        let mut got = Vec::new();
        s.feed(b"abcdefgh\nxy\n", 0, |o, l| got.push((o, l.to_vec())));
        assert_eq!(got, vec![(0, b"abcde".to_vec()), (9, b"xy".to_vec())]);
    }

    #[test]
    fn a_long_line_is_shown_cut() {
        let line = vec![b'a'; 3000];
        let shown = shown_line(&line, 2048);
        assert_eq!(shown.len(), 2032 + crate::TRUNCATION_SUFFIX.len());
        assert!(shown.ends_with(crate::TRUNCATION_SUFFIX));
        assert_eq!(shown_line(b"short", 2048), "short");
    }

    #[test]
    fn each_line_skips_an_unknown_start_and_a_trailing_fragment() {
        let mut got = Vec::new();
        each_line(b"tail\none\ntwo\nthr", 100, 0, false, false, |o, l| {
            got.push((o, l.to_vec()));
            false
        });
        assert_eq!(got, vec![(105, b"one".to_vec()), (109, b"two".to_vec())]);
        got.clear();
        each_line(b"one\ntwo", 0, 1, true, true, |o, l| {
            got.push((o, l.to_vec()));
            false
        });
        assert_eq!(got, vec![(4, b"two".to_vec())]);
    }
}
