//! How many times to retry, how long to wait, and the retry loop.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use super::after::DEFAULT_MAX_RETRY_AFTER;
use super::backoff::{Backoff, Jitter};
use super::sleep::Sleep;

/// How a failed attempt is handled.
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

/// The last error of a retried operation and how many attempts were made.
#[derive(Debug)]
pub struct Exhausted<E> {
    /// The error of the last attempt.
    pub error: E,
    /// Attempts made (1 = no retry).
    pub attempts: u32,
}

/// Retries after a failure: at most `max_retries` (so `max_retries + 1` attempts), waiting
/// by [`Backoff`], or the server's requested wait when it named one.
///
/// The default: 2 retries, 0.5 s doubling up to 8 s shortened by up to 25 % at random, server
/// waits honoured up to [`DEFAULT_MAX_RETRY_AFTER`] (longer ones are cut to it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 disables retrying).
    pub max_retries: u32,
    /// Waits computed when the server named none.
    pub backoff: Backoff,
    /// Longest server-requested wait; a longer one is cut to it.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 2,
            backoff: Backoff::new(Duration::from_millis(500), Duration::from_secs(8))
                .with_jitter(Jitter::Fraction(0.25)),
            max_retry_after: DEFAULT_MAX_RETRY_AFTER,
        }
    }
}

impl RetryPolicy {
    /// A policy that never retries.
    pub fn none() -> Self {
        RetryPolicy::default().with_max_retries(0)
    }

    /// The same policy with `n` retries.
    pub fn with_max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }

    /// The same policy with another backoff.
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The same policy with another jitter.
    pub fn with_jitter(mut self, jitter: Jitter) -> Self {
        self.backoff.jitter = jitter;
        self
    }

    /// The same policy honouring server waits up to `max`.
    pub fn with_max_retry_after(mut self, max: Duration) -> Self {
        self.max_retry_after = max;
        self
    }

    /// The wait after `failures` failed attempts: the server's `hint` when it is positive
    /// (cut to [`RetryPolicy::max_retry_after`]), else the backoff (`previous` is the last
    /// wait, for decorrelated jitter).
    pub fn delay(
        &self,
        failures: u32,
        previous: Option<Duration>,
        hint: Option<Duration>,
    ) -> Duration {
        match hint {
            Some(h) if !h.is_zero() => h.min(self.max_retry_after),
            _ => self.backoff.next_delay(failures, previous),
        }
    }

    /// Runs `op` until it succeeds, `classify` says [`Verdict::Fail`], or the retries are
    /// used up. `op` receives the 0-based attempt number; waits go through `sleep`.
    pub async fn run<T, E, F, Fut, C>(
        &self,
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
        let mut previous = None;
        loop {
            let error = match op(attempt).await {
                Ok(v) => return Ok(v),
                Err(error) => error,
            };
            let after = match classify(&error) {
                Verdict::Retry { after } if attempt < self.max_retries => after,
                _ => {
                    return Err(Exhausted {
                        error,
                        attempts: attempt + 1,
                    })
                }
            };
            let wait = self.delay(attempt + 1, previous, after);
            tracing::warn!(
                attempt = attempt + 1,
                wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                error = %error,
                "retrying after failure"
            );
            sleep.sleep(wait).await;
            previous = Some(wait);
            attempt += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::future::BoxFuture;
    use std::sync::Mutex;

    #[derive(Debug, Default)]
    struct Rec(Mutex<Vec<Duration>>);
    impl Sleep for Rec {
        fn sleep(&self, d: Duration) -> BoxFuture<'static, ()> {
            self.0.lock().unwrap().push(d);
            Box::pin(async {})
        }
    }

    fn no_jitter(retries: u32) -> RetryPolicy {
        RetryPolicy::default()
            .with_max_retries(retries)
            .with_jitter(Jitter::None)
    }

    #[test]
    fn hints_are_honoured_up_to_the_maximum() {
        let p = no_jitter(2);
        let secs = Duration::from_secs;
        assert_eq!(p.delay(1, None, Some(secs(3))), secs(3));
        assert_eq!(p.delay(1, None, Some(secs(3600))), DEFAULT_MAX_RETRY_AFTER);
        // A zero wait falls back to the backoff.
        assert_eq!(p.delay(3, None, Some(Duration::ZERO)), secs(2));
        assert_eq!(p.delay(1, None, None), Duration::from_millis(500));
    }

    #[test]
    fn default_jitter_shortens_by_at_most_a_quarter() {
        let p = RetryPolicy::default();
        for _ in 0..200 {
            let d = p.delay(2, None, None);
            assert!(d >= Duration::from_millis(750) && d <= Duration::from_millis(1000));
        }
    }

    #[tokio::test]
    async fn counts_attempts_and_waits() {
        let policy = no_jitter(3);
        let rec = Rec::default();
        let out: Result<u32, Exhausted<String>> = policy
            .run(
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
        let out: Result<u32, Exhausted<String>> = policy
            .run(
                &rec,
                |_| async { Err("always".to_string()) },
                |_| Verdict::Retry {
                    after: Some(Duration::from_secs(2)),
                },
            )
            .await;
        let e = out.unwrap_err();
        assert_eq!(e.attempts, 4);
        assert_eq!(*rec.0.lock().unwrap(), vec![Duration::from_secs(2); 3]);

        let rec = Rec::default();
        let out: Result<u32, Exhausted<String>> = policy
            .run(
                &rec,
                |_| async { Err("fatal".to_string()) },
                |_| Verdict::Fail,
            )
            .await;
        assert_eq!(out.unwrap_err().attempts, 1);
        assert!(rec.0.lock().unwrap().is_empty());
    }
}
