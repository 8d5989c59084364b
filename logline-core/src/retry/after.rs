//! The server's requested wait: `retry-after-ms` and `retry-after` (seconds or an HTTP date),
//! parsed without panics and bounded by a maximum.

use std::time::{Duration, SystemTime};

/// The longest server-requested wait honoured by default.
pub const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// The server's requested wait, at most `max`: `retry-after-ms` (milliseconds, possibly
/// fractional) when it parses, else `retry-after` (seconds, possibly fractional, or an HTTP
/// date, relative to `now`).
///
/// Pass the raw header values. Hostile values never panic: negative, `NaN`, infinite and
/// unparsable values are ignored, and any wait above `max` (`1e300`, a huge integer, a date
/// in a far future) becomes `max`. A date in the past is a zero wait.
pub fn parse_retry_after(
    retry_after_ms: Option<&str>,
    retry_after: Option<&str>,
    now: SystemTime,
    max: Duration,
) -> Option<Duration> {
    if let Some(wait) = retry_after_ms.and_then(|v| parse_number(v, 1e-3, max)) {
        return Some(wait);
    }
    let value = retry_after?.trim();
    if let Some(wait) = parse_number(value, 1.0, max) {
        return Some(wait);
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO).min(max))
}

/// `x-should-retry: true|false` (case-insensitive), when present and one of those.
pub fn parse_should_retry(value: Option<&str>) -> Option<bool> {
    match value?.trim() {
        v if v.eq_ignore_ascii_case("true") => Some(true),
        v if v.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// A non-negative number of `unit` seconds, at most `max`. A number too large for `f64`
/// (`1e400`, 400 digits) is the maximum; the words `inf` and `NaN` are not numbers.
fn parse_number(text: &str, unit: f64, max: Duration) -> Option<Duration> {
    let text = text.trim();
    let value = text.parse::<f64>().ok()?;
    let digits_only = text
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
    if value == f64::INFINITY && digits_only {
        return Some(max);
    }
    if !value.is_finite() || value < 0.0 {
        return None;
    }
    let secs = value * unit;
    if secs >= max.as_secs_f64() {
        return Some(max);
    }
    Some(Duration::try_from_secs_f64(secs).ok()?.min(max))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MAX: Duration = DEFAULT_MAX_RETRY_AFTER;

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    fn parse(ms: Option<&str>, secs: Option<&str>) -> Option<Duration> {
        parse_retry_after(ms, secs, now(), MAX)
    }

    #[test]
    fn milliseconds_win_over_seconds() {
        assert_eq!(parse(Some("1500"), None), Some(Duration::from_millis(1500)));
        assert_eq!(
            parse(Some(" 250 "), Some("9")),
            Some(Duration::from_millis(250))
        );
        assert_eq!(parse(Some("0.5"), None), Some(Duration::from_micros(500)));
        // An unusable `retry-after-ms` falls back to `retry-after`.
        assert_eq!(parse(Some("soon"), Some("9")), Some(Duration::from_secs(9)));
    }

    #[test]
    fn seconds_and_http_dates() {
        assert_eq!(parse(None, Some("2.5")), Some(Duration::from_millis(2500)));
        assert_eq!(parse(None, Some("0")), Some(Duration::ZERO));
        let date = httpdate::fmt_http_date(now() + Duration::from_secs(7));
        assert_eq!(parse(None, Some(&date)), Some(Duration::from_secs(7)));
        let past = httpdate::fmt_http_date(now() - Duration::from_secs(7));
        assert_eq!(parse(None, Some(&past)), Some(Duration::ZERO));
        // The obsolete HTTP date formats are accepted too.
        let rfc850 = "Tuesday, 14-Nov-23 22:13:27 GMT";
        assert_eq!(parse(None, Some(rfc850)), Some(Duration::from_secs(7)));
        assert_eq!(parse(None, Some("soon")), None);
        assert_eq!(parse(None, None), None);
    }

    #[test]
    fn hostile_values_are_ignored_or_clamped() {
        let many_digits = "9".repeat(400);
        for huge in [
            "1e20",
            "1e300",
            "1e400",
            "18446744073709551616",
            &many_digits,
        ] {
            assert_eq!(parse(None, Some(huge)), Some(MAX), "{huge}");
            assert_eq!(parse(Some(huge), None), Some(MAX), "{huge}");
        }
        for bad in [
            "-1", "NaN", "inf", "-inf", "infinity", "", "1s", "0x10", "1e", "--1",
        ] {
            assert_eq!(parse(None, Some(bad)), None, "{bad}");
            assert_eq!(parse(Some(bad), None), None, "{bad}");
        }
        let far = "Fri, 31 Dec 9999 23:59:59 GMT";
        assert_eq!(parse(None, Some(far)), Some(MAX));
        // A zero maximum clamps everything to zero.
        assert_eq!(
            parse_retry_after(None, Some("5"), now(), Duration::ZERO),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn should_retry_header() {
        assert_eq!(parse_should_retry(Some("true")), Some(true));
        assert_eq!(parse_should_retry(Some(" FALSE ")), Some(false));
        assert_eq!(parse_should_retry(Some("maybe")), None);
        assert_eq!(parse_should_retry(None), None);
    }

    fn header_value() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            any::<f64>().prop_map(|f| f.to_string()),
            any::<f64>().prop_map(|f| format!("{f:e}")),
            any::<u128>().prop_map(|n| n.to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            "[0-9eE.+-]{1,40}",
            "(Mon|Sun), [0-9]{1,3} (Jan|Dec) [0-9]{1,6} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5_000))]

        #[test]
        fn never_panics_and_never_exceeds_the_maximum(
            ms in proptest::option::of(header_value()),
            secs in proptest::option::of(header_value()),
            max_ms in 0u64..=3_600_000,
            now_secs in 0u64..=253_402_300_799,
        ) {
            let max = Duration::from_millis(max_ms);
            let now = SystemTime::UNIX_EPOCH + Duration::from_secs(now_secs);
            if let Some(wait) = parse_retry_after(ms.as_deref(), secs.as_deref(), now, max) {
                prop_assert!(wait <= max);
            }
            let _ = parse_should_retry(secs.as_deref());
        }
    }
}
