//! Retries with exponential backoff and jitter, honouring server hints.
//!
//! The rules follow the official OpenAI SDK: retry 408, 409, 429 and ≥ 500 (and connection
//! failures and timeouts), at most [`RetryPolicy::max_retries`] times, waiting
//! `min(initial · 2^n, max)` scaled by a random factor in `[1 - jitter, 1]`. A server wait
//! (`retry-after-ms`, `retry-after` in seconds or as an HTTP date) replaces the computed
//! backoff when it is positive and at most [`RetryPolicy::max_retry_after`].
//! `x-should-retry: true|false` overrides the status rule; `insufficient_quota` is never retried.
//!
//! [`retry`] is generic: any async operation plus a classifier can use it. The wait goes
//! through a [`Sleep`] so tests can record the requested delays instead of sleeping.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::future::BoxFuture;
use rand::Rng;
use reqwest::header::HeaderMap;

/// How a failed attempt should be handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Try again, after the server's wait when it named one.
    Retry {
        /// Wait requested by the server.
        after: Option<Duration>,
    },
    /// Give up and return the error.
    Fail,
}

/// Waits between attempts. Swap it in tests to record delays without sleeping.
pub trait Sleep: Send + Sync + fmt::Debug {
    /// A future that completes after `duration`.
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;
}

/// Sleeps with `tokio::time::sleep` (the default).
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioSleep;

impl Sleep for TokioSleep {
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// Backoff parameters. The default is the OpenAI SDK's: 2 retries, 0.5 s → 8 s, 25 % jitter,
/// server waits honoured up to 60 s.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 disables retrying).
    pub max_retries: u32,
    /// Wait before the first retry.
    pub initial_backoff: Duration,
    /// Upper bound of the computed wait.
    pub max_backoff: Duration,
    /// Fraction (0..=1) by which a computed wait is randomly shortened.
    pub jitter: f64,
    /// Longest server-requested wait that is honoured; longer ones fall back to the backoff.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 2,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            jitter: 0.25,
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn none() -> Self {
        RetryPolicy {
            max_retries: 0,
            ..Default::default()
        }
    }

    /// The computed wait before retry number `retry` (0-based), without jitter.
    pub fn backoff(&self, retry: u32) -> Duration {
        let factor = 2f64.powi(retry.min(30) as i32);
        let secs =
            (self.initial_backoff.as_secs_f64() * factor).min(self.max_backoff.as_secs_f64());
        Duration::from_secs_f64(secs.max(0.0))
    }

    /// The wait before retry number `retry`: the server's `hint` when acceptable, else the
    /// backoff shortened by a random jitter factor.
    pub fn delay(&self, retry: u32, hint: Option<Duration>) -> Duration {
        if let Some(h) = hint {
            if !h.is_zero() && h <= self.max_retry_after {
                return h;
            }
        }
        let base = self.backoff(retry);
        let jitter = self.jitter.clamp(0.0, 1.0);
        if jitter == 0.0 {
            return base;
        }
        let factor = 1.0 - jitter * rand::thread_rng().gen::<f64>();
        base.mul_f64(factor)
    }
}

/// The last error of a retried operation and how many attempts were made.
#[derive(Debug)]
pub struct Exhausted<E> {
    /// The error of the last attempt.
    pub error: E,
    /// Attempts made (1 = no retry).
    pub attempts: u32,
}

/// Runs `op` until it succeeds, `classify` says [`Verdict::Fail`], or the policy's retries are
/// used up. `op` receives the 0-based attempt number.
pub async fn retry<T, E, F, Fut, C>(
    policy: &RetryPolicy,
    sleep: &dyn Sleep,
    mut op: F,
    classify: C,
) -> Result<T, Exhausted<E>>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, E>>,
    C: Fn(&E) -> Verdict,
    E: fmt::Display,
{
    let mut attempt = 0u32;
    loop {
        match op(attempt).await {
            Ok(v) => return Ok(v),
            Err(error) => {
                let after = match classify(&error) {
                    Verdict::Retry { after } if attempt < policy.max_retries => after,
                    _ => {
                        return Err(Exhausted {
                            error,
                            attempts: attempt + 1,
                        })
                    }
                };
                let wait = policy.delay(attempt, after);
                tracing::warn!(
                    attempt = attempt + 1,
                    wait_ms = wait.as_millis() as u64,
                    error = %error,
                    "retrying after failure"
                );
                sleep.sleep(wait).await;
                attempt += 1;
            }
        }
    }
}

/// The server's requested wait: `retry-after-ms` (milliseconds), else `retry-after`
/// (seconds, possibly fractional, or an HTTP date relative to `now`).
pub fn parse_retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    if let Some(ms) = header_str(headers, "retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        if ms.is_finite() && ms >= 0.0 {
            return Some(Duration::from_secs_f64(ms / 1000.0));
        }
    }
    let value = header_str(headers, "retry-after")?;
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// `x-should-retry: true|false`, when present.
pub fn parse_should_retry(headers: &HeaderMap) -> Option<bool> {
    match header_str(headers, "x-should-retry")? {
        v if v.eq_ignore_ascii_case("true") => Some(true),
        v if v.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name)?.to_str().ok().map(str::trim)
}

/// The default sleeper as a shared handle.
pub(crate) fn default_sleep() -> Arc<dyn Sleep> {
    Arc::new(TokioSleep)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RetryPolicy::default();
        let got: Vec<u128> = (0..6).map(|i| p.backoff(i).as_millis()).collect();
        assert_eq!(got, vec![500, 1000, 2000, 4000, 8000, 8000]);
    }

    #[test]
    fn jitter_only_shortens() {
        let p = RetryPolicy::default();
        for _ in 0..200 {
            let d = p.delay(1, None);
            assert!(d >= Duration::from_millis(750) && d <= Duration::from_millis(1000));
        }
    }

    #[test]
    fn hints_are_honoured_within_bounds() {
        let p = RetryPolicy::default();
        assert_eq!(
            p.delay(0, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        let p0 = RetryPolicy {
            jitter: 0.0,
            ..Default::default()
        };
        // Too long or zero: fall back to backoff.
        assert_eq!(
            p0.delay(0, Some(Duration::from_secs(61))),
            Duration::from_millis(500)
        );
        assert_eq!(p0.delay(2, Some(Duration::ZERO)), Duration::from_secs(2));
    }

    #[test]
    fn parses_retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(
            parse_retry_after(&headers(&[("retry-after-ms", "1500")]), now),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            parse_retry_after(
                &headers(&[("retry-after-ms", "250"), ("retry-after", "9")]),
                now
            ),
            Some(Duration::from_millis(250))
        );
        assert_eq!(
            parse_retry_after(&headers(&[("retry-after", "2.5")]), now),
            Some(Duration::from_millis(2500))
        );
        let date = httpdate::fmt_http_date(now + Duration::from_secs(7));
        assert_eq!(
            parse_retry_after(&headers(&[("retry-after", &date)]), now),
            Some(Duration::from_secs(7))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(7));
        assert_eq!(
            parse_retry_after(&headers(&[("retry-after", &past)]), now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after(&headers(&[("retry-after", "soon")]), now),
            None
        );
        assert_eq!(parse_retry_after(&HeaderMap::new(), now), None);
    }

    #[test]
    fn parses_should_retry() {
        assert_eq!(
            parse_should_retry(&headers(&[("x-should-retry", "true")])),
            Some(true)
        );
        assert_eq!(
            parse_should_retry(&headers(&[("x-should-retry", "FALSE")])),
            Some(false)
        );
        assert_eq!(
            parse_should_retry(&headers(&[("x-should-retry", "maybe")])),
            None
        );
    }

    #[derive(Debug, Default)]
    struct Rec(std::sync::Mutex<Vec<Duration>>);
    impl Sleep for Rec {
        fn sleep(&self, d: Duration) -> BoxFuture<'static, ()> {
            self.0.lock().unwrap().push(d);
            Box::pin(async {})
        }
    }

    #[tokio::test]
    async fn generic_retry_counts_attempts_and_waits() {
        let policy = RetryPolicy {
            max_retries: 3,
            jitter: 0.0,
            ..Default::default()
        };
        let rec = Rec::default();
        let out: Result<u32, Exhausted<String>> = retry(
            &policy,
            &rec,
            |n| async move {
                if n < 2 {
                    Err(format!("fail {n}"))
                } else {
                    Ok(n)
                }
            },
            |_| Verdict::Retry { after: None },
        )
        .await;
        assert_eq!(out.unwrap(), 2);
        assert_eq!(
            *rec.0.lock().unwrap(),
            vec![Duration::from_millis(500), Duration::from_millis(1000)]
        );

        let rec = Rec::default();
        let out: Result<u32, Exhausted<String>> = retry(
            &policy,
            &rec,
            |_| async { Err("always".to_string()) },
            |_| Verdict::Retry { after: None },
        )
        .await;
        let e = out.unwrap_err();
        assert_eq!(e.attempts, 4);
        assert_eq!(rec.0.lock().unwrap().len(), 3);

        let rec = Rec::default();
        let out: Result<u32, Exhausted<String>> = retry(
            &policy,
            &rec,
            |_| async { Err("fatal".to_string()) },
            |_| Verdict::Fail,
        )
        .await;
        assert_eq!(out.unwrap_err().attempts, 1);
        assert!(rec.0.lock().unwrap().is_empty());
    }
}
