//! Pure rendering functions: UTF-8 unit boundaries, long-line cutting, lossy decoding and the
//! omission marker.
//!
//! These functions know nothing about buffers or processes; [`crate::buffer`] copies the kept
//! bytes out of its lock and calls them.
//!
//! # UTF-8 units
//!
//! The stream is decoded the way [`String::from_utf8_lossy`] decodes it: into *units*, each either
//! one valid character or one maximal invalid sequence (which renders as a single U+FFFD). A unit
//! is at most 4 bytes long, and a unit can only begin at a byte that is not a continuation byte
//! (`0b10xx_xxxx`) or at a stray continuation byte. So whether a position lies inside a unit is
//! decided by at most 3 bytes before it, which is why the buffer keeps 3 bytes of context at each
//! of its edges ([`UNIT_CONTEXT`]).
//!
//! When the rendered output skips part of the stream (the head/tail gap, a cursor), a unit is
//! shown only if it *begins* inside the shown part; a valid character cut by the end of the head is
//! dropped whole. That is what "a multi-byte character split by the boundary is dropped whole,
//! never shown as U+FFFD" means, defined so that it does not depend on how bytes were written.

/// Appended to a line that was cut because it was longer than the line limit.
pub const TRUNCATION_SUFFIX: &str = " ... [truncated]";

/// Bytes of context kept on each side of an edge of the kept stream: the longest run of bytes
/// that can precede a position inside the same UTF-8 unit.
pub const UNIT_CONTEXT: usize = 3;

/// Longest UTF-8 unit in bytes.
const MAX_UNIT: usize = 4;

/// What kind of unit begins at the start of a byte slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    /// A valid character of this many bytes.
    Char(usize),
    /// A maximal invalid sequence of this many bytes (one U+FFFD).
    Invalid(usize),
    /// The slice ends inside a valid prefix of this many bytes: more bytes decide.
    Incomplete(usize),
}

impl Unit {
    /// Bytes the unit covers within the slice it was read from.
    pub(crate) fn len(self) -> usize {
        match self {
            Unit::Char(n) | Unit::Invalid(n) | Unit::Incomplete(n) => n,
        }
    }
}

/// Whether `b` is a UTF-8 continuation byte.
#[inline]
fn is_continuation(b: u8) -> bool {
    b & 0xC0 == 0x80
}

/// Reads the unit that begins at `bytes[0]`. `bytes` must not be empty.
pub(crate) fn unit_at(bytes: &[u8]) -> Unit {
    let window = &bytes[..bytes.len().min(MAX_UNIT)];
    match std::str::from_utf8(window) {
        Ok(_) => Unit::Char(char_width(window[0])),
        Err(e) if e.valid_up_to() > 0 => Unit::Char(char_width(window[0])),
        Err(e) => match e.error_len() {
            Some(n) => Unit::Invalid(n),
            None => Unit::Incomplete(window.len()),
        },
    }
}

/// Width of the character led by `lead`, which must begin a valid character.
fn char_width(lead: u8) -> usize {
    match lead {
        0x00..=0x7F => 1,
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        _ => 4,
    }
}

/// Index of the last non-continuation byte among the last [`UNIT_CONTEXT`] bytes of `bytes`: the
/// only place a unit reaching past the end of `bytes` can begin.
fn last_unit_start(bytes: &[u8]) -> Option<usize> {
    let lo = bytes.len().saturating_sub(UNIT_CONTEXT);
    (lo..bytes.len())
        .rev()
        .find(|&i| !is_continuation(bytes[i]))
}

/// How many leading bytes of `seg` belong to a unit that began in `prev` (the up to
/// [`UNIT_CONTEXT`] stream bytes right before `seg`). Those bytes are not shown.
pub(crate) fn continued_prefix(prev: &[u8], seg: &[u8]) -> usize {
    let Some(p) = last_unit_start(prev) else {
        return 0;
    };
    let before = prev.len() - p;
    let mut window = [0u8; UNIT_CONTEXT + MAX_UNIT];
    window[..before].copy_from_slice(&prev[p..]);
    let after = seg.len().min(MAX_UNIT);
    window[before..before + after].copy_from_slice(&seg[..after]);
    let unit = unit_at(&window[..before + after]);
    unit.len().saturating_sub(before).min(seg.len())
}

/// How many trailing bytes of `seg` form a valid character that `next` (the up to
/// [`UNIT_CONTEXT`] stream bytes right after `seg`) completes: a character split by the end of the
/// segment, to be dropped whole. An invalid sequence that merely continues is kept (it shows as
/// U+FFFD, as it would in the whole stream).
pub(crate) fn split_char_suffix(seg: &[u8], next: &[u8]) -> usize {
    let Some(p) = last_unit_start(seg) else {
        return 0;
    };
    let before = seg.len() - p;
    let mut window = [0u8; UNIT_CONTEXT + MAX_UNIT];
    window[..before].copy_from_slice(&seg[p..]);
    let after = next.len().min(MAX_UNIT);
    window[before..before + after].copy_from_slice(&next[..after]);
    match unit_at(&window[..before + after]) {
        Unit::Char(n) if n > before => before,
        _ => 0,
    }
}

/// Length of the incomplete but still valid UTF-8 prefix at the very end of `bytes` (0 when the
/// end is a unit boundary). While a stream is open these bytes are held back: the next write may
/// complete the character.
pub(crate) fn incomplete_suffix(bytes: &[u8]) -> usize {
    let Some(p) = last_unit_start(bytes) else {
        return 0;
    };
    match unit_at(&bytes[p..]) {
        Unit::Incomplete(n) => n,
        _ => 0,
    }
}

/// Largest unit boundary at or below `pos` in `bytes`, where `bytes[0]` begins a unit.
fn floor_boundary(bytes: &[u8], pos: usize) -> usize {
    if pos >= bytes.len() {
        return bytes.len();
    }
    let lo = pos.saturating_sub(UNIT_CONTEXT);
    match (lo..pos).rev().find(|&i| !is_continuation(bytes[i])) {
        Some(start) if start + unit_at(&bytes[start..]).len() > pos => start,
        _ => pos,
    }
}

/// Appends `bytes` decoded as [`String::from_utf8_lossy`] would.
fn push_lossy(out: &mut String, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(s) => out.push_str(s),
        Err(_) => {
            for chunk in bytes.utf8_chunks() {
                out.push_str(chunk.valid());
                if !chunk.invalid().is_empty() {
                    out.push(char::REPLACEMENT_CHARACTER);
                }
            }
        }
    }
}

/// Appends `seg` to `out`, cutting every line (split on `\n`) longer than `max_line` bytes to at
/// most `max_line - TRUNCATION_SUFFIX.len()` bytes at a unit boundary followed by
/// [`TRUNCATION_SUFFIX`], and replacing invalid UTF-8 with U+FFFD. `seg` must begin at a unit
/// boundary. Line lengths are raw byte counts.
pub(crate) fn push_lines(out: &mut String, seg: &[u8], max_line: usize) {
    let keep = max_line.saturating_sub(TRUNCATION_SUFFIX.len());
    // Short lines are decoded in runs: a `\n` never lies inside a unit, so decoding a run of whole
    // lines at once gives the same text as decoding them one by one.
    let mut run_start = 0;
    let mut line_start = 0;
    while line_start < seg.len() {
        let line_end = seg[line_start..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(seg.len(), |i| line_start + i);
        if line_end - line_start > max_line {
            push_lossy(out, &seg[run_start..line_start]);
            let line = &seg[line_start..line_end];
            push_lossy(out, &line[..floor_boundary(line, keep)]);
            out.push_str(TRUNCATION_SUFFIX);
            run_start = line_end;
        }
        line_start = line_end + 1;
    }
    push_lossy(out, &seg[run_start..]);
}

/// Appends the omission marker for `omitted` bytes. `opens` is true when nothing precedes it in
/// the output, in which case the leading blank line is left out.
pub(crate) fn push_marker(out: &mut String, omitted: u64, opens: bool) {
    use std::fmt::Write as _;
    if !opens {
        out.push_str("\n\n");
    }
    // Writing into a String cannot fail.
    let _ = write!(out, "... [omitted {omitted} bytes] ...\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_kinds() {
        assert_eq!(unit_at(b"a"), Unit::Char(1));
        assert_eq!(unit_at("€x".as_bytes()), Unit::Char(3));
        assert_eq!(unit_at(&[0xE2, 0x82]), Unit::Incomplete(2));
        assert_eq!(unit_at(&[0xE2, 0x82, b'a']), Unit::Invalid(2));
        assert_eq!(unit_at(&[0x80, 0x80]), Unit::Invalid(1));
        assert_eq!(unit_at(&[0xFF]), Unit::Invalid(1));
        assert_eq!(unit_at(&[0xF0, 0x9F, 0x98, 0x80, b'z']), Unit::Char(4));
    }

    #[test]
    fn continued_prefix_skips_the_rest_of_a_split_character() {
        let euro = "€".as_bytes();
        assert_eq!(continued_prefix(&euro[..1], &euro[1..]), 2);
        assert_eq!(continued_prefix(&euro[..2], &euro[2..]), 1);
        assert_eq!(continued_prefix(b"ab", b"cd"), 0);
        // A stray continuation byte after ASCII begins its own (invalid) unit.
        assert_eq!(continued_prefix(b"a", &[0x80, b'b']), 0);
        // An invalid sequence begun before the edge swallows the bytes it covers.
        assert_eq!(continued_prefix(&[0xE2], &[0x82, b'a']), 1);
        assert_eq!(continued_prefix(&[], &[0x82]), 0);
    }

    #[test]
    fn split_char_suffix_drops_only_valid_characters() {
        let euro = "€".as_bytes();
        assert_eq!(split_char_suffix(&[b'a', euro[0]], &euro[1..]), 1);
        assert_eq!(split_char_suffix(&[b'a', euro[0], euro[1]], &euro[2..]), 2);
        assert_eq!(split_char_suffix(&[b'a', euro[0]], b"zz"), 0);
        assert_eq!(split_char_suffix("a€".as_bytes(), b"z"), 0);
    }

    #[test]
    fn incomplete_suffix_finds_held_back_bytes() {
        assert_eq!(incomplete_suffix(b"abc"), 0);
        assert_eq!(incomplete_suffix(&[b'a', 0xF0, 0x9F, 0x98]), 3);
        assert_eq!(incomplete_suffix(&[b'a', 0xE2]), 1);
        assert_eq!(incomplete_suffix(&[0xE2, b'a']), 0);
        assert_eq!(incomplete_suffix(&[0xF0, 0x9F, 0x98, 0x80]), 0);
        assert_eq!(incomplete_suffix(&[0xFF]), 0);
    }

    #[test]
    fn long_line_is_cut_at_a_character_boundary() {
        let mut line = "x".repeat(2031).into_bytes();
        line.extend_from_slice("€".as_bytes()); // bytes 2031..2034 straddle the cut
        line.extend(std::iter::repeat_n(b'y', 100));
        let mut out = String::new();
        push_lines(&mut out, &line, 2048);
        assert_eq!(out, format!("{}{}", "x".repeat(2031), TRUNCATION_SUFFIX));
    }

    #[test]
    fn lines_at_the_limit_are_kept() {
        let line = "a".repeat(2048);
        let mut out = String::new();
        push_lines(&mut out, format!("{line}\n{line}").as_bytes(), 2048);
        assert_eq!(out, format!("{line}\n{line}"));
    }

    #[test]
    fn marker_forms() {
        let mut out = String::from("x");
        push_marker(&mut out, 7, false);
        assert_eq!(out, "x\n\n... [omitted 7 bytes] ...\n\n");
        let mut out = String::new();
        push_marker(&mut out, 7, true);
        assert_eq!(out, "... [omitted 7 bytes] ...\n\n");
    }
}
