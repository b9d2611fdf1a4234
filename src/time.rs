//! Deadlines from configured durations, saturating: a huge duration (`Duration::MAX` included)
//! means "never", not an overflow panic.

use std::time::{Duration, Instant};

/// The longest span a deadline is set in the future: about a century. Any longer configured
/// duration is cut to it, which is the same as never for a running program, and keeps every
/// `Instant` arithmetic below it in range on every platform.
pub(crate) const NEVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// `from + span`, or [`NEVER`] past `from` when the sum does not fit.
#[must_use]
pub(crate) fn deadline_from(from: Instant, span: Duration) -> Instant {
    from.checked_add(span.min(NEVER))
        .or_else(|| from.checked_add(Duration::from_secs(365 * 24 * 3600)))
        .unwrap_or(from)
}

/// `span` from now, saturating as [`deadline_from`] does.
#[must_use]
pub(crate) fn deadline_in(span: Duration) -> Instant {
    deadline_from(Instant::now(), span)
}

/// The proleptic Gregorian date (year, month 1..=12, day 1..=31) of a count of days since
/// 1970-01-01, negative counts included (Howard Hinnant's `civil_from_days`). For the HTTP
/// `Date` header and Go's RFC 3339 times in the tracked-process digest.
pub(crate) fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_spans_saturate() {
        let now = Instant::now();
        assert_eq!(deadline_from(now, Duration::ZERO), now);
        assert_eq!(
            deadline_from(now, Duration::from_secs(3)),
            now + Duration::from_secs(3)
        );
        let never = deadline_from(now, Duration::MAX);
        assert!(never >= now + Duration::from_secs(50 * 365 * 24 * 3600));
        assert!(deadline_in(Duration::MAX) > now);
    }
}
