//! [`OpenAiProvider`]: the [`LlmProvider`] implementation.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{BoxStream, StreamExt};
use logline_core::llm::{LlmProvider, LlmRequest, LlmResponse, LlmStreamEvent, PriceTable};
use logline_core::Result;

use crate::client::HttpClient;
use crate::common::DecodeCtx;
use crate::config::{ApiMode, OpenAiConfig};
use crate::sse::SseLimits;
use crate::stream::{drive, StreamLimits};
use crate::{chat, responses};

/// An LLM provider over the OpenAI Responses API or, in [`ApiMode::ChatCompletions`], any
/// OpenAI-compatible `/chat/completions` server.
///
/// Retries follow the configured [`logline_core::retry::RetryPolicy`] (see the crate
/// documentation for which failures are retried). The engine cancels a call by
/// dropping its future (or the stream), which aborts the HTTP request.
#[derive(Debug, Clone)]
pub struct OpenAiProvider {
    client: HttpClient,
}

impl OpenAiProvider {
    /// A provider with `config`.
    pub fn new(config: OpenAiConfig) -> Result<Self> {
        Ok(OpenAiProvider {
            client: HttpClient::new(Arc::new(config))?,
        })
    }

    /// A provider configured from the environment ([`OpenAiConfig::from_env`]).
    pub fn from_env() -> Result<Self> {
        Self::new(OpenAiConfig::from_env()?)
    }

    /// The configuration.
    pub fn config(&self) -> &OpenAiConfig {
        self.client.config()
    }

    /// The endpoint family in use.
    pub fn mode(&self) -> ApiMode {
        self.config().mode
    }

    /// Per-model prices (give them to the engine for the cost budget).
    pub fn prices(&self) -> &PriceTable {
        &self.config().prices
    }

    /// Cost of a response in US cents under [`Self::prices`].
    pub fn cost_cents(&self, response: &LlmResponse) -> f64 {
        self.prices().cost_cents(&response.model, &response.usage)
    }

    fn path(&self) -> &'static str {
        match self.mode() {
            ApiMode::Responses => responses::PATH,
            ApiMode::ChatCompletions => chat::PATH,
        }
    }

    fn encode_with(&self, request: &LlmRequest, ctx: &DecodeCtx, stream: bool) -> Result<Vec<u8>> {
        match self.mode() {
            ApiMode::Responses => responses::encode(request, self.config(), ctx, stream),
            ApiMode::ChatCompletions => chat::encode(request, self.config(), ctx, stream),
        }
    }

    /// The exact JSON body sent for `request` (no network). Useful to inspect what the model
    /// sees, and measured by the crate's benchmark.
    pub fn encode_request(&self, request: &LlmRequest, stream: bool) -> Result<Vec<u8>> {
        let ctx = DecodeCtx::new(request, self.config())?;
        self.encode_with(request, &ctx, stream)
    }

    /// Decodes a non-streamed response `body` to `request` (no network).
    pub fn decode_response(&self, request: &LlmRequest, body: &[u8]) -> Result<LlmResponse> {
        let ctx = DecodeCtx::new(request, self.config())?;
        self.decode_with(body, &ctx)
    }

    fn decode_with(&self, body: &[u8], ctx: &DecodeCtx) -> Result<LlmResponse> {
        match self.mode() {
            ApiMode::Responses => responses::decode(body, ctx),
            ApiMode::ChatCompletions => chat::decode(body, ctx),
        }
    }

    /// Decodes a recorded SSE body (the bytes of a streamed answer to `request`) into stream
    /// events, exactly as [`LlmProvider::stream`] would (no network).
    pub fn decode_sse(
        &self,
        request: &LlmRequest,
        sse: Bytes,
    ) -> Result<BoxStream<'static, Result<LlmStreamEvent>>> {
        self.decode_sse_chunks(request, [sse])
    }

    /// Like [`OpenAiProvider::decode_sse`], with the body cut into the chunks it arrived in;
    /// the events do not depend on where it was cut.
    pub fn decode_sse_chunks<I>(
        &self,
        request: &LlmRequest,
        chunks: I,
    ) -> Result<BoxStream<'static, Result<LlmStreamEvent>>>
    where
        I: IntoIterator<Item = Bytes>,
        I::IntoIter: Send + 'static,
    {
        let ctx = DecodeCtx::new(request, self.config())?;
        let bytes =
            futures::stream::iter(chunks.into_iter().map(Ok::<_, std::convert::Infallible>));
        Ok(self.events(bytes.boxed(), ctx, self.client.deadline()))
    }

    fn events<E>(
        &self,
        bytes: BoxStream<'static, std::result::Result<Bytes, E>>,
        ctx: DecodeCtx,
        deadline: tokio::time::Instant,
    ) -> BoxStream<'static, Result<LlmStreamEvent>>
    where
        E: std::fmt::Display + Send + 'static,
    {
        let config = self.config();
        let limits = StreamLimits {
            idle: config.stream_idle_timeout(),
            deadline,
            deadline_after: config.deadline,
            sse: SseLimits {
                max_line: config.max_line_bytes,
                max_event: config.max_event_bytes,
            },
        };
        match self.mode() {
            ApiMode::Responses => drive(bytes, responses::ResponsesAssembler::new(ctx), limits),
            ApiMode::ChatCompletions => drive(bytes, chat::ChatAssembler::new(ctx), limits),
        }
    }
}

#[async_trait]
impl LlmProvider for OpenAiProvider {
    fn name(&self) -> &str {
        &self.config().name
    }

    async fn complete(&self, request: &LlmRequest) -> Result<LlmResponse> {
        let answer = async {
            let ctx = DecodeCtx::new(request, self.config())?;
            let body = self.encode_with(request, &ctx, false)?;
            let bytes = self
                .client
                .post_json(
                    self.path(),
                    Bytes::from(body),
                    self.config().max_response_bytes,
                )
                .await?;
            self.decode_with(&bytes, &ctx)
        };
        answer.await.map_err(|e| self.named(e))
    }

    async fn stream(
        &self,
        request: &LlmRequest,
    ) -> Result<BoxStream<'static, Result<LlmStreamEvent>>> {
        let deadline = self.client.deadline();
        let opened = async {
            let ctx = DecodeCtx::new(request, self.config())?;
            let body = self.encode_with(request, &ctx, true)?;
            let response = self
                .client
                .post_stream(self.path(), Bytes::from(body), deadline)
                .await?;
            Ok(self.events(response.bytes_stream().boxed(), ctx, deadline))
        };
        let events = opened.await.map_err(|e| self.named(e))?;
        let name = self.config().name.clone();
        Ok(events
            .map(move |item| item.map_err(|e| e.with_backend_name(name.clone())))
            .boxed())
    }
}

impl OpenAiProvider {
    /// Errors carry the configured provider name (`openai` unless the deployment named it).
    fn named(&self, e: logline_core::Error) -> logline_core::Error {
        e.with_backend_name(self.config().name.clone())
    }
}
