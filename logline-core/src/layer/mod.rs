//! Wrappers around an [`LlmProvider`](crate::llm::LlmProvider) or a
//! [`ToolHub`](crate::tool::ToolHub), in the style of tower layers: each wrapper implements
//! the trait its inner value implements and forwards every method.
//!
//! - [`Retry`]: retries failures that [`Error::is_retryable`](crate::Error::is_retryable)
//!   allows, with [`RetryPolicy`]'s backoff and the server's
//!   requested wait ([`Error::retry_after`](crate::Error::retry_after)).
//! - [`Timeout`]: one deadline per call; a late call fails with
//!   [`Error::Timeout`](crate::Error::Timeout).
//! - [`Traced`]: a `tracing` span per call, with the OpenTelemetry GenAI attribute names.
//!   The engine opens the same spans around the calls it makes (see [`crate::engine`]), so
//!   wrap a provider or hub in it only for calls made outside runs.
//!
//! ```
//! use std::time::Duration;
//!
//! use logline_core::layer::LayerExt;
//! use logline_core::llm::LlmProvider;
//! use logline_core::retry::RetryPolicy;
//! use logline_core::testing::ScriptedLlm;
//!
//! let provider = ScriptedLlm::new()
//!     .with_timeout(Duration::from_secs(30)) // each attempt
//!     .with_retry(RetryPolicy::default())
//!     .traced(); // the whole call, retries included
//! assert_eq!(provider.name(), "scripted");
//! ```
//!
//! **Tool executions are retried only when they provably did not run.** A timeout or a
//! server error after the request was sent leaves the outcome unknown (the tool may have sent
//! the email), so [`Retry`] sends [`ToolHub::execute`](crate::tool::ToolHub::execute) again
//! only for a retryable error the hub marked with
//! [`RetryHint::not_executed`](crate::retry::RetryHint::not_executed) (connection refused,
//! rate limited before processing). Catalog reads and connection look-ups are retried like LLM
//! calls.

mod retry;
mod timeout;
mod traced;

use std::time::Duration;

pub use retry::Retry;
pub use timeout::Timeout;
pub use traced::Traced;
pub(crate) use traced::{chat_span, record, record_error, record_response, tool_span};

use crate::retry::RetryPolicy;

/// Builder methods that wrap a provider or a hub: `provider.with_retry(policy)`,
/// `hub.with_timeout(deadline)`, `provider.traced()`. The wrapper implements the inner
/// value's trait ([`LlmProvider`](crate::llm::LlmProvider) or
/// [`ToolHub`](crate::tool::ToolHub)).
pub trait LayerExt: Sized {
    /// Retries retryable failures under `policy` (see [`Retry`]).
    fn with_retry(self, policy: RetryPolicy) -> Retry<Self> {
        Retry::new(self, policy)
    }

    /// Fails every call that takes longer than `deadline` (see [`Timeout`]).
    fn with_timeout(self, deadline: Duration) -> Timeout<Self> {
        Timeout::new(self, deadline)
    }

    /// Records a span per call (see [`Traced`]).
    fn traced(self) -> Traced<Self> {
        Traced::new(self)
    }
}

impl<T> LayerExt for T {}
