//! The LLM provider contract: messages, tool calls, structured output, usage, streaming.

use std::collections::HashMap;

use async_trait::async_trait;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::Result;

/// Name of the provider agents use when their model profile names none.
pub const DEFAULT_PROVIDER: &str = "default";

/// A function the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolDefinition {
    /// Function name (`^[a-zA-Z0-9_-]{1,64}$`).
    pub name: String,
    /// What it does.
    pub description: String,
    /// JSON Schema of the arguments.
    pub parameters: Value,
    /// Ask the provider to enforce the schema exactly.
    #[serde(default)]
    pub strict: bool,
}

/// How the model may use tools.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolChoice {
    /// Model decides.
    #[default]
    Auto,
    /// No tool calls.
    None,
    /// At least one tool call.
    Required,
    /// Exactly this function.
    Function(String),
}

/// A requested JSON-Schema-shaped answer (strict structured output).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputSchema {
    /// Schema name.
    pub name: String,
    /// JSON Schema.
    pub schema: Value,
    /// Strict mode.
    pub strict: bool,
}

/// A tool call the model asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCallRequest {
    /// Provider call id, echoed in the result message.
    pub id: String,
    /// Function name.
    pub name: String,
    /// Parsed arguments.
    pub arguments: Value,
}

/// One message of the conversation sent to the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Message {
    /// System or developer text.
    System {
        /// Text.
        content: String,
    },
    /// User text.
    User {
        /// Text.
        content: String,
    },
    /// A previous model turn.
    Assistant {
        /// Text, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content: Option<String>,
        /// Tool calls, if any.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ToolCallRequest>,
    },
    /// The result of a tool call.
    Tool {
        /// The call id it answers.
        call_id: String,
        /// Result as text (usually JSON).
        content: String,
    },
}

impl Message {
    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Message::User {
            content: content.into(),
        }
    }

    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Message::System {
            content: content.into(),
        }
    }
}

/// A request to a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LlmRequest {
    /// Model name (from the agent's model profile).
    pub model: String,
    /// System instructions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// Conversation.
    pub messages: Vec<Message>,
    /// Functions offered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolDefinition>,
    /// Tool choice.
    #[serde(default)]
    pub tool_choice: ToolChoice,
    /// Allow several tool calls in one turn.
    #[serde(default = "yes")]
    pub parallel_tool_calls: bool,
    /// Structured output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<OutputSchema>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Output token cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u32>,
    /// Opaque metadata for the provider (never secrets).
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub metadata: HashMap<String, String>,
}

fn yes() -> bool {
    true
}

impl Default for LlmRequest {
    fn default() -> Self {
        LlmRequest {
            model: String::new(),
            instructions: None,
            messages: Vec::new(),
            tools: Vec::new(),
            tool_choice: ToolChoice::Auto,
            parallel_tool_calls: true,
            output_schema: None,
            temperature: None,
            max_output_tokens: None,
            metadata: HashMap::new(),
        }
    }
}

/// Token usage of one call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUsage {
    /// Input tokens, including cached ones.
    pub input_tokens: u64,
    /// Input tokens served from the provider's cache.
    pub cached_input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
}

/// Why generation stopped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// Natural end.
    #[default]
    Stop,
    /// The model wants tool results.
    ToolCalls,
    /// Output token cap reached.
    Length,
    /// Content filter.
    ContentFilter,
}

/// A model's answer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LlmResponse {
    /// Text output, if any.
    pub text: Option<String>,
    /// Tool calls, if any.
    #[serde(default)]
    pub tool_calls: Vec<ToolCallRequest>,
    /// Usage.
    pub usage: TokenUsage,
    /// Model that answered.
    pub model: String,
    /// Why it stopped.
    #[serde(default)]
    pub finish_reason: FinishReason,
}

impl LlmResponse {
    /// A plain text answer.
    pub fn text(text: impl Into<String>) -> Self {
        LlmResponse {
            text: Some(text.into()),
            ..Default::default()
        }
    }

    /// Parses the text as JSON (structured output).
    pub fn json(&self) -> Result<Value> {
        let text = self
            .text
            .as_deref()
            .ok_or_else(|| crate::Error::ModelOutput("expected JSON text, got none".into()))?;
        serde_json::from_str(text.trim())
            .map_err(|e| crate::Error::ModelOutput(format!("output is not valid JSON: {e}")))
    }
}

/// An incremental piece of a streamed response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LlmStreamEvent {
    /// Text appended.
    TextDelta {
        /// The new text.
        delta: String,
    },
    /// Part of a tool call's arguments.
    ToolCallDelta {
        /// Position of the call in this turn.
        index: u32,
        /// Call id, when first seen.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        /// Function name, when first seen.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// Argument text appended.
        arguments_delta: String,
    },
    /// The assembled response (always last).
    Completed {
        /// The full response.
        response: LlmResponse,
    },
}

/// A model provider (OpenAI, an OpenAI-compatible server, a scripted fake, ...).
#[async_trait]
pub trait LlmProvider: Send + Sync {
    /// Provider name for events and logs.
    fn name(&self) -> &str;

    /// One complete turn.
    async fn complete(&self, request: &LlmRequest) -> Result<LlmResponse>;

    /// One streamed turn; the last item is [`LlmStreamEvent::Completed`].
    /// The default streams the result of [`LlmProvider::complete`] as one event.
    async fn stream(
        &self,
        request: &LlmRequest,
    ) -> Result<BoxStream<'static, Result<LlmStreamEvent>>> {
        let response = self.complete(request).await?;
        let mut items = Vec::new();
        if let Some(t) = &response.text {
            items.push(Ok(LlmStreamEvent::TextDelta { delta: t.clone() }));
        }
        items.push(Ok(LlmStreamEvent::Completed { response }));
        Ok(Box::pin(futures::stream::iter(items)))
    }
}

/// Turns text into vectors (tool-search rerank, memory).
#[async_trait]
pub trait Embedder: Send + Sync {
    /// Model name.
    fn model(&self) -> &str;
    /// One vector per input, in order.
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>>;
}

/// Price of one model in US dollars per million tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelPrice {
    /// Uncached input.
    pub input_per_mtok: f64,
    /// Cached input.
    pub cached_input_per_mtok: f64,
    /// Output.
    pub output_per_mtok: f64,
}

/// Per-model prices the host configures; unknown models cost `default`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PriceTable {
    /// Exact model name → price. A key ending in `*` matches by prefix.
    pub models: HashMap<String, ModelPrice>,
    /// Fallback price.
    #[serde(default)]
    pub default: ModelPrice,
}

impl PriceTable {
    /// Adds or replaces a model's price.
    pub fn with(mut self, model: impl Into<String>, price: ModelPrice) -> Self {
        self.models.insert(model.into(), price);
        self
    }

    /// Price for `model`: exact match, then the longest matching `prefix*`, then the default.
    pub fn price(&self, model: &str) -> ModelPrice {
        if let Some(p) = self.models.get(model) {
            return *p;
        }
        self.models
            .iter()
            .filter_map(|(k, p)| {
                let prefix = k.strip_suffix('*')?;
                model.starts_with(prefix).then_some((prefix.len(), *p))
            })
            .max_by_key(|(len, _)| *len)
            .map(|(_, p)| p)
            .unwrap_or(self.default)
    }

    /// Cost of `usage` on `model`, in US cents.
    pub fn cost_cents(&self, model: &str, usage: &TokenUsage) -> f64 {
        let p = self.price(model);
        let cached = usage.cached_input_tokens.min(usage.input_tokens) as f64;
        let uncached = usage.input_tokens as f64 - cached;
        let dollars = (uncached * p.input_per_mtok
            + cached * p.cached_input_per_mtok
            + usage.output_tokens as f64 * p.output_per_mtok)
            / 1_000_000.0;
        dollars * 100.0
    }
}
