//! [`Retry`]: retries retryable failures with the core backoff.

use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::llm::{LlmProvider, LlmRequest, LlmResponse, LlmStreamEvent};
use crate::retry::{RetryPolicy, Sleep, TokioSleep, Verdict};
use crate::run::Subject;
use crate::tool::{Connection, PageRequest, ToolContext, ToolHub, ToolPage};

/// Retries a provider's or a hub's failed calls under a [`RetryPolicy`].
///
/// A failure is retried when [`Error::is_retryable`] says so, after the server's requested
/// wait ([`Error::retry_after`], bounded by the policy) or the policy's backoff. The last
/// error is returned with the attempts made noted on it ([`Error::attempts`]), so the engine
/// does not retry a call whose budget was spent here. Streams are retried until they open; an error inside an open
/// stream is not (its deltas were already delivered).
///
/// [`ToolHub::execute`] is retried only when the error also says the call provably did not
/// run ([`Error::did_not_execute`]): never after a timeout or a server error, whose outcome
/// is unknown.
///
/// Do not stack it on an adapter that already retries at the HTTP level unless the attempts
/// are meant to multiply.
#[derive(Debug, Clone)]
pub struct Retry<T> {
    inner: T,
    policy: RetryPolicy,
    sleep: Arc<dyn Sleep>,
}

impl<T> Retry<T> {
    /// Wraps `inner`; waits with `tokio::time::sleep`.
    pub fn new(inner: T, policy: RetryPolicy) -> Self {
        Retry {
            inner,
            policy,
            sleep: Arc::new(TokioSleep),
        }
    }

    /// Waits through `sleep` instead (tests record the waits).
    pub fn with_sleep(mut self, sleep: Arc<dyn Sleep>) -> Self {
        self.sleep = sleep;
        self
    }

    /// The policy.
    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// The wrapped value.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// Unwraps.
    pub fn into_inner(self) -> T {
        self.inner
    }

    async fn run<V, F, Fut>(&self, op: F, retry_if: fn(&Error) -> bool) -> Result<V>
    where
        F: FnMut(u32) -> Fut,
        Fut: std::future::Future<Output = Result<V>>,
    {
        let classify = |e: &Error| {
            if retry_if(e) {
                Verdict::Retry {
                    after: e.retry_after(),
                }
            } else {
                Verdict::Fail
            }
        };
        self.policy
            .run(self.sleep.as_ref(), op, classify)
            .await
            .map_err(|exhausted| {
                // Report the attempts made here, so layers above do not retry again.
                let attempts = exhausted.attempts.max(exhausted.error.attempts());
                exhausted.error.with_attempts(attempts)
            })
    }
}

fn retryable(e: &Error) -> bool {
    e.is_retryable()
}

fn retryable_unexecuted(e: &Error) -> bool {
    e.is_retryable() && e.did_not_execute()
}

#[async_trait]
impl<T: LlmProvider> LlmProvider for Retry<T> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn complete(&self, request: &LlmRequest) -> Result<LlmResponse> {
        self.run(|_| self.inner.complete(request), retryable).await
    }

    async fn stream(
        &self,
        request: &LlmRequest,
    ) -> Result<BoxStream<'static, Result<LlmStreamEvent>>> {
        self.run(|_| self.inner.stream(request), retryable).await
    }
}

#[async_trait]
impl<T: ToolHub> ToolHub for Retry<T> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn honours_idempotency_keys(&self) -> bool {
        self.inner.honours_idempotency_keys()
    }

    async fn list_tools(&self, page: PageRequest) -> Result<ToolPage> {
        self.run(|_| self.inner.list_tools(page.clone()), retryable)
            .await
    }

    async fn execute(&self, tool_id: &str, arguments: Value, ctx: &ToolContext) -> Result<Value> {
        self.run(
            |_| self.inner.execute(tool_id, arguments.clone(), ctx),
            retryable_unexecuted,
        )
        .await
    }

    async fn connections(&self, subject: &Subject) -> Result<Vec<Connection>> {
        self.run(|_| self.inner.connections(subject), retryable)
            .await
    }
}
