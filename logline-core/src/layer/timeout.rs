//! [`Timeout`]: one deadline per call.

use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::StreamExt;
use serde_json::Value;
use tokio::time::Instant;

use crate::error::{Error, Result};
use crate::llm::{LlmProvider, LlmRequest, LlmResponse, LlmStreamEvent};
use crate::run::Subject;
use crate::tool::{Connection, PageRequest, ToolContext, ToolHub, ToolPage};

/// Fails every call of a provider or a hub that takes longer than a deadline, with
/// [`Error::Timeout`]; the late call is dropped (which cancels it).
///
/// A stream's deadline covers the whole stream: when it passes, the stream yields one
/// `Timeout` error and ends.
///
/// A timed-out [`ToolHub::execute`] may still have run remotely; [`super::Retry`] does not
/// send it again.
#[derive(Debug, Clone)]
pub struct Timeout<T> {
    inner: T,
    deadline: Duration,
}

impl<T> Timeout<T> {
    /// Wraps `inner` with a per-call `deadline`.
    pub fn new(inner: T, deadline: Duration) -> Self {
        Timeout { inner, deadline }
    }

    /// The per-call deadline.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// The wrapped value.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// Unwraps.
    pub fn into_inner(self) -> T {
        self.inner
    }

    async fn within<V>(
        &self,
        what: impl FnOnce() -> String,
        call: impl std::future::Future<Output = Result<V>>,
    ) -> Result<V> {
        match tokio::time::timeout(self.deadline, call).await {
            Ok(result) => result,
            Err(_) => Err(late(&what(), self.deadline)),
        }
    }
}

fn late(what: &str, deadline: Duration) -> Error {
    Error::Timeout(format!("{what} did not finish within {deadline:?}"))
}

#[async_trait]
impl<T: LlmProvider> LlmProvider for Timeout<T> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn complete(&self, request: &LlmRequest) -> Result<LlmResponse> {
        let what = || format!("model call to `{}`", self.inner.name());
        self.within(what, self.inner.complete(request)).await
    }

    async fn stream(
        &self,
        request: &LlmRequest,
    ) -> Result<BoxStream<'static, Result<LlmStreamEvent>>> {
        let deadline = Instant::now() + self.deadline;
        let what = format!("model stream from `{}`", self.inner.name());
        let opened = tokio::time::timeout_at(deadline, self.inner.stream(request)).await;
        let inner = match opened {
            Ok(result) => result?,
            Err(_) => return Err(late(&what, self.deadline)),
        };
        let limit = self.deadline;
        let bounded = futures::stream::unfold(Some((inner, what)), move |state| async move {
            let (mut inner, what) = state?;
            match tokio::time::timeout_at(deadline, inner.next()).await {
                Ok(Some(item)) => Some((item, Some((inner, what)))),
                Ok(None) => None,
                Err(_) => Some((Err(late(&what, limit)), None)),
            }
        });
        Ok(bounded.boxed())
    }
}

#[async_trait]
impl<T: ToolHub> ToolHub for Timeout<T> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn honours_idempotency_keys(&self) -> bool {
        self.inner.honours_idempotency_keys()
    }

    async fn list_tools(&self, page: PageRequest) -> Result<ToolPage> {
        let what = || format!("catalog page of hub `{}`", self.inner.name());
        self.within(what, self.inner.list_tools(page)).await
    }

    async fn execute(&self, tool_id: &str, arguments: Value, ctx: &ToolContext) -> Result<Value> {
        let what = || format!("tool `{tool_id}` on hub `{}`", self.inner.name());
        self.within(what, self.inner.execute(tool_id, arguments, ctx))
            .await
    }

    async fn connections(&self, subject: &Subject) -> Result<Vec<Connection>> {
        let what = || format!("connections of hub `{}`", self.inner.name());
        self.within(what, self.inner.connections(subject)).await
    }
}
