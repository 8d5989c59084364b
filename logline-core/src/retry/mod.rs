//! Retrying failed calls: one [`Backoff`], one [`RetryPolicy`] with its retry loop, one
//! `Retry-After` parser ([`parse_retry_after`]) and the [`RetryHint`] a backend attaches to
//! an error.
//!
//! Core has no HTTP client: adapters pass header values in as `Option<&str>`. Waits go
//! through a [`Sleep`] so tests record the requested delays instead of sleeping.
//!
//! The same types drive the HTTP adapters' own retries, the job queue's backoff and the
//! [`crate::layer::Retry`] wrapper.

mod after;
mod backoff;
mod hint;
mod policy;
mod sleep;

pub use after::{parse_retry_after, parse_should_retry, DEFAULT_MAX_RETRY_AFTER};
pub use backoff::{Backoff, Jitter};
pub use hint::RetryHint;
pub use policy::{Exhausted, RetryPolicy, Verdict};
pub use sleep::{Sleep, TokioSleep};
