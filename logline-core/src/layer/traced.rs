//! [`Traced`]: a `tracing` span per call, named with the OpenTelemetry GenAI conventions.

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::StreamExt;
use serde_json::Value;
use tracing::field::Empty;
use tracing::{Instrument, Span};

use crate::error::{Error, Result};
use crate::llm::{FinishReason, LlmProvider, LlmRequest, LlmResponse, LlmStreamEvent};
use crate::run::Subject;
use crate::tool::{Connection, PageRequest, ToolContext, ToolHub, ToolPage};

/// Records one `tracing` span per call of a provider or a hub.
///
/// Model calls (span `gen_ai.chat`): `gen_ai.operation.name` = `chat`,
/// `gen_ai.provider.name`, `gen_ai.request.model`, `gen_ai.request.max_tokens`,
/// `gen_ai.request.temperature`, `gen_ai.response.model`, `gen_ai.response.finish_reasons`,
/// `gen_ai.usage.input_tokens`, `gen_ai.usage.output_tokens`; `otel.name` is
/// `chat {model}`. Tool calls (span `gen_ai.execute_tool`): `gen_ai.operation.name` =
/// `execute_tool`, `gen_ai.tool.name` (the tool id), `gen_ai.tool.call.id` (the call's
/// idempotency key, when it has one), `logline.hub`, `logline.run_id`.
/// A failure sets `error.type` (the [`crate::ErrorKind`]) and `otel.status_code` = `ERROR`.
///
/// Nothing that may hold a secret or personal data is recorded: no prompt, message, tool
/// argument or output, error message or user id.
#[derive(Debug, Clone)]
pub struct Traced<T> {
    inner: T,
}

impl<T> Traced<T> {
    /// Wraps `inner`.
    pub fn new(inner: T) -> Self {
        Traced { inner }
    }

    /// The wrapped value.
    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    /// Unwraps.
    pub fn into_inner(self) -> T {
        self.inner
    }
}

/// The `gen_ai.chat` span of a model call (the engine opens it too, see
/// [`crate::engine`]).
pub(crate) fn chat_span(provider: &str, request: &LlmRequest) -> Span {
    let span = tracing::info_span!(
        "gen_ai.chat",
        otel.name = %format_args!("chat {}", request.model),
        otel.kind = "client",
        otel.status_code = Empty,
        gen_ai.operation.name = "chat",
        gen_ai.provider.name = %provider,
        gen_ai.request.model = %request.model,
        gen_ai.request.max_tokens = Empty,
        gen_ai.request.temperature = Empty,
        gen_ai.response.model = Empty,
        gen_ai.response.finish_reasons = Empty,
        gen_ai.usage.input_tokens = Empty,
        gen_ai.usage.output_tokens = Empty,
        error.type = Empty,
    );
    if let Some(max) = request.max_output_tokens {
        span.record("gen_ai.request.max_tokens", i64::from(max));
    }
    if let Some(t) = request.temperature {
        span.record("gen_ai.request.temperature", f64::from(t));
    }
    span
}

/// Records the answer's model, finish reason and token usage on a `gen_ai.chat` span.
pub(crate) fn record_response(span: &Span, response: &LlmResponse) {
    span.record("gen_ai.response.model", response.model.as_str());
    span.record(
        "gen_ai.response.finish_reasons",
        finish_reason(response.finish_reason),
    );
    span.record(
        "gen_ai.usage.input_tokens",
        signed(response.usage.input_tokens),
    );
    span.record(
        "gen_ai.usage.output_tokens",
        signed(response.usage.output_tokens),
    );
}

/// A count as a signed integer: OpenTelemetry attributes have no unsigned type, and the
/// `tracing` bridge would turn an unsigned field into a string.
fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn finish_reason(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Stop => "stop",
        FinishReason::ToolCalls => "tool_calls",
        FinishReason::Length => "length",
        FinishReason::ContentFilter => "content_filter",
    }
}

/// Marks a span failed with the error's kind (never its message).
pub(crate) fn record_error(span: &Span, error: &Error) {
    span.record("error.type", error.kind().as_str());
    span.record("otel.status_code", "ERROR");
}

/// Marks a span failed when `result` is an error.
pub(crate) fn record<V>(span: &Span, result: &Result<V>) {
    if let Err(e) = result {
        record_error(span, e);
    }
}

#[async_trait]
impl<T: LlmProvider> LlmProvider for Traced<T> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    async fn complete(&self, request: &LlmRequest) -> Result<LlmResponse> {
        let span = chat_span(self.inner.name(), request);
        let result = self.inner.complete(request).instrument(span.clone()).await;
        match &result {
            Ok(response) => record_response(&span, response),
            Err(e) => record_error(&span, e),
        }
        result
    }

    async fn stream(
        &self,
        request: &LlmRequest,
    ) -> Result<BoxStream<'static, Result<LlmStreamEvent>>> {
        let span = chat_span(self.inner.name(), request);
        let opened = self.inner.stream(request).instrument(span.clone()).await;
        let stream = match opened {
            Ok(stream) => stream,
            Err(e) => {
                record_error(&span, &e);
                return Err(e);
            }
        };
        // The span stays open until the stream is dropped.
        Ok(stream
            .inspect(move |item| match item {
                Ok(LlmStreamEvent::Completed { response }) => record_response(&span, response),
                Ok(_) => {}
                Err(e) => record_error(&span, e),
            })
            .boxed())
    }
}

/// The `gen_ai.execute_tool` span of a tool execution: the tool id, the hub, the run and the
/// call id (the model's, or the engine's effect key), never the arguments.
pub(crate) fn tool_span(
    tool_id: &str,
    hub: &str,
    ctx: &ToolContext,
    call_id: Option<&str>,
) -> Span {
    let span = tracing::info_span!(
        "gen_ai.execute_tool",
        otel.name = %format_args!("execute_tool {tool_id}"),
        otel.kind = "internal",
        otel.status_code = Empty,
        gen_ai.operation.name = "execute_tool",
        gen_ai.tool.name = %tool_id,
        gen_ai.tool.call.id = Empty,
        logline.hub = %hub,
        logline.run_id = Empty,
        error.type = Empty,
    );
    if let Some(run) = ctx.run_id {
        span.record("logline.run_id", tracing::field::display(run));
    }
    if let Some(id) = call_id.or(ctx.idempotency_key.as_deref()) {
        span.record("gen_ai.tool.call.id", id);
    }
    span
}

fn hub_span(operation: &'static str, hub: &str) -> Span {
    tracing::info_span!(
        "logline.hub",
        otel.name = %format_args!("{operation} {hub}"),
        otel.status_code = Empty,
        logline.hub = %hub,
        logline.operation = operation,
        logline.count = Empty,
        error.type = Empty,
    )
}

#[async_trait]
impl<T: ToolHub> ToolHub for Traced<T> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn honours_idempotency_keys(&self) -> bool {
        self.inner.honours_idempotency_keys()
    }

    async fn list_tools(&self, page: PageRequest) -> Result<ToolPage> {
        let span = hub_span("list_tools", self.inner.name());
        let result = self.inner.list_tools(page).instrument(span.clone()).await;
        if let Ok(p) = &result {
            span.record("logline.count", signed(p.tools.len() as u64));
        }
        record(&span, &result);
        result
    }

    async fn execute(&self, tool_id: &str, arguments: Value, ctx: &ToolContext) -> Result<Value> {
        let span = tool_span(tool_id, self.inner.name(), ctx, None);
        let result = self
            .inner
            .execute(tool_id, arguments, ctx)
            .instrument(span.clone())
            .await;
        record(&span, &result);
        result
    }

    async fn connections(&self, subject: &Subject) -> Result<Vec<Connection>> {
        let span = hub_span("connections", self.inner.name());
        let result = self
            .inner
            .connections(subject)
            .instrument(span.clone())
            .await;
        if let Ok(c) = &result {
            span.record("logline.count", signed(c.len() as u64));
        }
        record(&span, &result);
        result
    }
}
