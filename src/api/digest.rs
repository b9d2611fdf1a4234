//! The `input_digest` of a tracked start, byte for byte as coder's `StartProcessDigest` makes
//! it: the SHA-256, in lowercase hex, of what Go's `encoding/json` (1.22 and later) writes for
//! coder's `StartProcessRequest` with both UUIDs nil, the digest empty, the deadline in UTC and
//! an empty `env` as nil.
//!
//! That struct is, in this field order (Go tags):
//!
//! | field | tag |
//! |---|---|
//! | `Command string` | `command` |
//! | `WorkDir string` | `workdir,omitempty` |
//! | `Env map[string]string` | `env,omitempty` |
//! | `Background bool` | `background,omitempty` |
//! | `ProcessID uuid.UUID` | `process_id,omitempty` (a 16-byte array: never empty, always written) |
//! | `AgentInstanceID uuid.UUID` | `agent_instance_id,omitempty` (likewise) |
//! | `Deadline time.Time` | `deadline,omitempty` (a struct: never empty, always written) |
//! | `InputDigest string` | `input_digest,omitempty` (empty here, so left out) |
//!
//! Strings are written as Go writes them: `"` and `\` escaped, `\b \f \n \r \t` by name, other
//! control bytes and the HTML-sensitive `<`, `>`, `&` as `\u00XX` (lowercase hex), U+2028 and
//! U+2029 as `\u2028` and `\u2029`, every byte that does not begin a valid UTF-8 sequence as
//! `\ufffd` (one per byte, as Go's decoder steps), everything else as is. Map keys are sorted
//! by their raw bytes. The time is RFC 3339 with nanoseconds, trailing zeros trimmed (none at
//! all for whole seconds), `Z` for UTC; a year outside 0..=9999 makes Go's `json.Marshal` fail,
//! and coder then hashes the empty input, as [`start_digest`] does.
//!
//! Strings are taken as bytes so that the vectors made by real Go (`tests/go_digest`) can
//! carry invalid UTF-8; the server itself only ever has valid UTF-8 (a JSON body with invalid
//! UTF-8 in a string is refused as invalid JSON before any digest is made).

use std::fmt::Write as _;

use sha2::{Digest as _, Sha256};

/// Seconds from 0001-01-01T00:00:00Z (Go's zero time) to the unix epoch.
const GO_ZERO_UNIX_SECONDS: i64 = -62_135_596_800;
/// Seconds in a day.
const SECONDS_PER_DAY: i64 = 86_400;
/// Nanoseconds in a second.
const NANOS_PER_SECOND: u32 = 1_000_000_000;
/// Largest year Go's `Time.MarshalJSON` writes.
const MAX_JSON_YEAR: i64 = 9999;
/// Largest time-zone offset RFC 3339 parsing accepts, in minutes (23:59, as Go's parser).
const MAX_OFFSET_MINUTES: i64 = 23 * 60 + 59;

/// An instant with nanoseconds, as Go's `time.Time` holds it (the zone only matters for
/// parsing: the digest is made in UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GoTime {
    /// Seconds since the unix epoch (negative before 1970).
    pub unix_seconds: i64,
    /// Nanoseconds within the second, below one billion.
    pub nanos: u32,
}

impl GoTime {
    /// Go's zero time, `0001-01-01T00:00:00Z`: what coder's client sends when it sets no
    /// deadline.
    pub const ZERO: GoTime = GoTime {
        unix_seconds: GO_ZERO_UNIX_SECONDS,
        nanos: 0,
    };

    /// Whether this is Go's zero time (`time.Time.IsZero`: the instant, whatever the zone it
    /// was written in).
    #[must_use]
    pub fn is_zero(&self) -> bool {
        *self == GoTime::ZERO
    }

    /// The instant as nanoseconds since the unix epoch.
    #[must_use]
    pub fn unix_nanos(&self) -> i128 {
        i128::from(self.unix_seconds) * i128::from(NANOS_PER_SECOND) + i128::from(self.nanos)
    }

    /// The instant of `time`, a [`std::time::SystemTime`].
    #[must_use]
    pub fn from_system_time(time: std::time::SystemTime) -> GoTime {
        let nanos = match time.duration_since(std::time::UNIX_EPOCH) {
            Ok(after) => i128::try_from(after.as_nanos()).unwrap_or(i128::MAX),
            Err(before) => -i128::try_from(before.duration().as_nanos()).unwrap_or(i128::MAX),
        };
        let per = i128::from(NANOS_PER_SECOND);
        GoTime {
            unix_seconds: i64::try_from(nanos.div_euclid(per)).unwrap_or(i64::MAX),
            nanos: u32::try_from(nanos.rem_euclid(per)).unwrap_or(0),
        }
    }

    /// Parses an RFC 3339 time as Go's `time.Time.UnmarshalJSON` does
    /// (`YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)`); `None` when it is not one.
    #[must_use]
    pub fn parse_rfc3339(text: &str) -> Option<GoTime> {
        let b = text.as_bytes();
        if b.len() < 20 {
            return None;
        }
        let num = |from: usize, len: usize| -> Option<i64> {
            let part = b.get(from..from + len)?;
            if !part.iter().all(u8::is_ascii_digit) {
                return None;
            }
            part.iter()
                .try_fold(0i64, |n, d| Some(n * 10 + i64::from(d - b'0')))
        };
        let sep = |at: usize, c: u8| b.get(at) == Some(&c);
        if !(sep(4, b'-') && sep(7, b'-') && sep(10, b'T') && sep(13, b':') && sep(16, b':')) {
            return None;
        }
        let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
        let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
        if !(1..=12).contains(&month)
            || day < 1
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second > 59
        {
            return None;
        }
        let mut at = 19;
        let mut nanos: u32 = 0;
        if sep(at, b'.') {
            at += 1;
            let start = at;
            while b.get(at).is_some_and(u8::is_ascii_digit) {
                at += 1;
            }
            if at == start {
                return None;
            }
            // Go keeps nine digits and drops the rest.
            let mut scale = NANOS_PER_SECOND / 10;
            for d in &b[start..at.min(start + 9)] {
                nanos += u32::from(d - b'0') * scale;
                scale /= 10;
            }
        }
        let offset_seconds = match b.get(at)? {
            b'Z' if at + 1 == b.len() => 0,
            sign @ (b'+' | b'-') if at + 6 == b.len() && sep(at + 3, b':') => {
                let (h, m) = (num(at + 1, 2)?, num(at + 4, 2)?);
                if h > 23 || m > 59 || h * 60 + m > MAX_OFFSET_MINUTES {
                    return None;
                }
                let minutes = h * 60 + m;
                if *sign == b'-' {
                    -minutes * 60
                } else {
                    minutes * 60
                }
            }
            _ => return None,
        };
        let days = days_from_civil(year, month, day);
        let local = days * SECONDS_PER_DAY + hour * 3600 + minute * 60 + second;
        Some(GoTime {
            unix_seconds: local - offset_seconds,
            nanos,
        })
    }

    /// The time as Go's `Time.MarshalJSON` writes it in UTC, without the quotes; `None` for a
    /// year outside 0..=9999 (Go's marshal error).
    #[must_use]
    pub fn to_rfc3339_utc(&self) -> Option<String> {
        let days = self.unix_seconds.div_euclid(SECONDS_PER_DAY);
        let secs = self.unix_seconds.rem_euclid(SECONDS_PER_DAY);
        let (year, month, day) = crate::time::civil_from_days(days);
        if !(0..=MAX_JSON_YEAR).contains(&year) {
            return None;
        }
        let mut out = format!(
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
            secs / 3600,
            secs % 3600 / 60,
            secs % 60
        );
        if self.nanos > 0 {
            let digits = format!("{:09}", self.nanos);
            out.push('.');
            out.push_str(digits.trim_end_matches('0'));
        }
        out.push('Z');
        Some(out)
    }
}

impl GoTime {
    /// The time as RFC 3339 text that [`parse_rfc3339`](Self::parse_rfc3339) reads back to the
    /// same instant: in UTC when its year is in 0..=9999, else in the zone (at most 23:59 away)
    /// that brings it into that range; `None` when no zone does. Every time that
    /// `parse_rfc3339` accepts can be written so.
    #[must_use]
    pub fn to_rfc3339(&self) -> Option<String> {
        if let Some(utc) = self.to_rfc3339_utc() {
            return Some(utc);
        }
        let offset = if self.unix_seconds < 0 {
            MAX_OFFSET_MINUTES
        } else {
            -MAX_OFFSET_MINUTES
        };
        let local = GoTime {
            unix_seconds: self.unix_seconds.checked_add(offset * 60)?,
            nanos: self.nanos,
        };
        let text = local.to_rfc3339_utc()?;
        let sign = if offset < 0 { '-' } else { '+' };
        let minutes = offset.abs();
        Some(format!(
            "{}{sign}{:02}:{:02}",
            text.strip_suffix('Z')?,
            minutes / 60,
            minutes % 60
        ))
    }
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// What the digest covers of a start: coder's fields only (procwarden's own, `argv` and
/// `timeout_ms`, are not in it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DigestInput<'a> {
    /// `command` (empty when absent).
    pub command: &'a [u8],
    /// `workdir` as sent (empty when absent).
    pub workdir: &'a [u8],
    /// `env` entries in any order (keys distinct, as in a Go map).
    pub env: Vec<(&'a [u8], &'a [u8])>,
    /// `background`.
    pub background: bool,
    /// `deadline`, `None` for Go's zero time.
    pub deadline: Option<GoTime>,
}

/// The JSON Go's `encoding/json` writes for `input` (see the module docs); `None` when Go's
/// marshal fails (a deadline year outside 0..=9999).
#[must_use]
pub fn go_json(input: &DigestInput<'_>) -> Option<Vec<u8>> {
    const NIL_UUID: &str = "00000000-0000-0000-0000-000000000000";
    let deadline = input.deadline.unwrap_or(GoTime::ZERO).to_rfc3339_utc()?;
    let mut out = Vec::with_capacity(128 + input.command.len());
    out.extend_from_slice(b"{\"command\":");
    write_go_string(&mut out, input.command);
    if !input.workdir.is_empty() {
        out.extend_from_slice(b",\"workdir\":");
        write_go_string(&mut out, input.workdir);
    }
    if !input.env.is_empty() {
        let mut env = input.env.clone();
        env.sort_unstable();
        out.extend_from_slice(b",\"env\":{");
        for (i, (key, value)) in env.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_go_string(&mut out, key);
            out.push(b':');
            write_go_string(&mut out, value);
        }
        out.push(b'}');
    }
    if input.background {
        out.extend_from_slice(b",\"background\":true");
    }
    out.extend_from_slice(format!(",\"process_id\":\"{NIL_UUID}\"").as_bytes());
    out.extend_from_slice(format!(",\"agent_instance_id\":\"{NIL_UUID}\"").as_bytes());
    out.extend_from_slice(format!(",\"deadline\":\"{deadline}\"}}").as_bytes());
    Some(out)
}

/// The `input_digest` of `input`: lowercase hex SHA-256 of [`go_json`] (of nothing when Go's
/// marshal would fail, as coder ignores that error).
#[must_use]
pub fn start_digest(input: &DigestInput<'_>) -> String {
    let json = go_json(input).unwrap_or_default();
    let hash = Sha256::digest(&json);
    let mut hex = String::with_capacity(64);
    for byte in hash {
        // Writing to a String cannot fail.
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// Length of the UTF-8 sequence `first` begins, or `None` when it begins none.
fn utf8_len(first: u8) -> Option<usize> {
    match first {
        0xC2..=0xDF => Some(2),
        0xE0..=0xEF => Some(3),
        0xF0..=0xF4 => Some(4),
        _ => None,
    }
}

/// Appends `s` as Go's `encoding/json` writes a string with HTML escaping on.
fn write_go_string(out: &mut Vec<u8>, s: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        if b < 0x80 {
            match b {
                b'"' => out.extend_from_slice(b"\\\""),
                b'\\' => out.extend_from_slice(b"\\\\"),
                0x08 => out.extend_from_slice(b"\\b"),
                0x0C => out.extend_from_slice(b"\\f"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                0x00..=0x1F | b'<' | b'>' | b'&' => {
                    out.extend_from_slice(b"\\u00");
                    out.push(HEX[usize::from(b >> 4)]);
                    out.push(HEX[usize::from(b & 0xF)]);
                }
                _ => out.push(b),
            }
            i += 1;
            continue;
        }
        let valid = utf8_len(b).and_then(|len| {
            let seq = s.get(i..i + len)?;
            std::str::from_utf8(seq).ok().map(|text| (text, len))
        });
        match valid {
            Some(("\u{2028}", len)) => {
                out.extend_from_slice(b"\\u2028");
                i += len;
            }
            Some(("\u{2029}", len)) => {
                out.extend_from_slice(b"\\u2029");
                i += len;
            }
            Some((text, len)) => {
                out.extend_from_slice(text.as_bytes());
                i += len;
            }
            None => {
                out.extend_from_slice(b"\\ufffd");
                i += 1;
            }
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(input: &DigestInput<'_>) -> String {
        String::from_utf8(go_json(input).unwrap()).unwrap()
    }

    #[test]
    fn a_plain_request_is_written_in_go_field_order() {
        let input = DigestInput {
            command: b"echo hi",
            ..DigestInput::default()
        };
        assert_eq!(
            json(&input),
            "{\"command\":\"echo hi\",\"process_id\":\"00000000-0000-0000-0000-000000000000\",\
             \"agent_instance_id\":\"00000000-0000-0000-0000-000000000000\",\
             \"deadline\":\"0001-01-01T00:00:00Z\"}"
        );
    }

    #[test]
    fn strings_are_escaped_as_go_escapes_them() {
        let mut out = Vec::new();
        write_go_string(
            &mut out,
            "a<b>&\"\\\u{8}\u{c}\n\r\t\u{1}\u{7f}\u{2028}\u{2029}é".as_bytes(),
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"a\\u003cb\\u003e\\u0026\\\"\\\\\\b\\f\\n\\r\\t\\u0001\u{7f}\\u2028\\u2029é\""
        );
        let mut out = Vec::new();
        write_go_string(&mut out, b"x\xE2\x82y\xED\xA0\x80\xFF\xEF\xBF\xBD");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"x\\ufffd\\ufffdy\\ufffd\\ufffd\\ufffd\\ufffd\u{fffd}\""
        );
    }

    #[test]
    fn times_parse_and_print_as_go_does() {
        let t = GoTime::parse_rfc3339("2026-03-04T05:06:07.120000+02:30").unwrap();
        assert_eq!(t.to_rfc3339_utc().unwrap(), "2026-03-04T02:36:07.12Z");
        let zero = GoTime::parse_rfc3339("0001-01-01T01:00:00+01:00").unwrap();
        assert!(zero.is_zero());
        assert_eq!(
            GoTime::ZERO.to_rfc3339_utc().unwrap(),
            "0001-01-01T00:00:00Z"
        );
        let past_year_zero = GoTime::parse_rfc3339("0000-01-01T00:00:00+01:00").unwrap();
        assert_eq!(past_year_zero.to_rfc3339_utc(), None);
        for bad in [
            "2026-02-30T00:00:00Z",
            "2026-01-01 00:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T00:00:60Z",
            "2026-01-01T00:00:00",
            "2026-01-01T00:00:00.Z",
            "2026-01-01T00:00:00+24:00",
            "2026-01-01T00:00:00z",
        ] {
            assert_eq!(GoTime::parse_rfc3339(bad), None, "{bad}");
        }
        assert_eq!(
            GoTime::parse_rfc3339("1970-01-01T00:00:01.0000000019Z"),
            Some(GoTime {
                unix_seconds: 1,
                nanos: 1
            })
        );
    }

    #[test]
    fn every_parsed_time_can_be_written_back() {
        for text in [
            "2026-12-01T23:30:05.123456789+01:30",
            "0000-01-01T00:00:00+00:01",
            "0000-01-01T00:00:00+23:59",
            "9999-12-31T23:59:59.5-23:59",
        ] {
            let time = GoTime::parse_rfc3339(text).expect(text);
            let written = time.to_rfc3339().expect(text);
            assert_eq!(
                GoTime::parse_rfc3339(&written),
                Some(time),
                "{text} as {written}"
            );
        }
        let early = GoTime::parse_rfc3339("0000-01-01T00:00:00+00:01").expect("time");
        assert_eq!(
            early.to_rfc3339().as_deref(),
            Some("0000-01-01T23:58:00+23:59")
        );
    }

    #[test]
    fn a_marshal_error_hashes_nothing() {
        let input = DigestInput {
            deadline: GoTime::parse_rfc3339("0000-01-01T00:00:00+00:01"),
            ..DigestInput::default()
        };
        assert_eq!(
            start_digest(&input),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
