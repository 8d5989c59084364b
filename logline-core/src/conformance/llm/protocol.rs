//! The fixture protocol of the LLM provider checks: what a check scripts, what it reads back.

use serde_json::Value;

use crate::error::{Error, ErrorKind, Result};
use crate::llm::{
    FinishReason, LlmProvider, LlmRequest, LlmResponse, Message, TokenUsage, ToolCallRequest,
};
use crate::testing::ScriptedLlm;

/// The model every check asks for (except [`super::unknown_model_is_a_typed_error`]).
pub const CONFORMANCE_MODEL: &str = "conformance-model";

/// A model the backend does not know; a check asking for it scripts
/// [`Refusal::UnknownModel`].
pub const UNKNOWN_MODEL: &str = "conformance-no-such-model";

/// What an LLM provider supports beyond plain text completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LlmCapabilities {
    /// `stream` delivers text in several deltas as the model produces it (the trait's default
    /// sends it in one piece at the end).
    pub streaming: bool,
    /// Function definitions and tool calls (with tool results in the history).
    pub tool_calls: bool,
    /// Several tool calls in one turn.
    pub parallel_tool_calls: bool,
    /// JSON-Schema-shaped answers (`output_schema`).
    pub structured_output: bool,
    /// Token usage on every response.
    pub usage: bool,
    /// Cached input tokens within the usage.
    pub cached_tokens: bool,
}

impl LlmCapabilities {
    /// Everything: every check runs.
    pub fn all() -> Self {
        LlmCapabilities {
            streaming: true,
            tool_calls: true,
            parallel_tool_calls: true,
            structured_output: true,
            usage: true,
            cached_tokens: true,
        }
    }
}

/// A tool call as the model writes it: the arguments are raw JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptedCall {
    /// Call id.
    pub id: String,
    /// Function name.
    pub name: String,
    /// Arguments as JSON text.
    pub arguments: String,
}

impl ScriptedCall {
    /// A call of `name` with `arguments`.
    pub fn new(id: &str, name: &str, arguments: Value) -> Self {
        ScriptedCall {
            id: id.to_string(),
            name: name.to_string(),
            arguments: arguments.to_string(),
        }
    }

    /// The call as a provider must return it (arguments parsed).
    pub fn parsed(&self) -> ToolCallRequest {
        ToolCallRequest {
            id: self.id.clone(),
            name: self.name.clone(),
            arguments: serde_json::from_str(&self.arguments).unwrap_or(Value::Null),
        }
    }
}

/// How the backend refuses a call; each maps to one portable error kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The model does not exist (an OpenAI-style server answers 404 `model_not_found`).
    UnknownModel,
    /// Too many requests (429).
    RateLimited,
    /// The credentials are rejected (401).
    Unauthorized,
}

impl Refusal {
    /// The kind the provider must report.
    pub fn kind(self) -> ErrorKind {
        match self {
            Refusal::UnknownModel => ErrorKind::NotFound,
            Refusal::RateLimited => ErrorKind::RateLimited,
            Refusal::Unauthorized => ErrorKind::Unauthorized,
        }
    }

    /// Whether the provider must call the error retryable.
    pub fn retryable(self) -> bool {
        self == Refusal::RateLimited
    }

    /// The error a test double returns for this refusal.
    pub fn error(self, backend: &'static str) -> Error {
        let message = match self {
            Refusal::UnknownModel => "the model does not exist",
            Refusal::RateLimited => "rate limit reached",
            Refusal::Unauthorized => "credentials rejected",
        };
        Error::backend(backend, self.kind(), message, None)
    }
}

/// The model's answer to the next call.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelTurn {
    /// Text, produced in these pieces (one delta each when the call streams).
    Text {
        /// The pieces, in order.
        pieces: Vec<String>,
        /// Usage the backend reports.
        usage: TokenUsage,
    },
    /// Tool calls.
    ToolCalls {
        /// The calls, in order.
        calls: Vec<ScriptedCall>,
        /// Usage the backend reports.
        usage: TokenUsage,
    },
    /// The backend refuses the call.
    Refuse(Refusal),
}

impl ModelTurn {
    /// A text answer in `pieces`.
    pub fn text(pieces: &[&str], usage: TokenUsage) -> Self {
        ModelTurn::Text {
            pieces: pieces.iter().map(|p| p.to_string()).collect(),
            usage,
        }
    }

    /// The response a provider returns for this turn to `model` (test doubles answer with it;
    /// an empty `model` lets the double fill in the requested one).
    pub fn to_response(&self, model: &str) -> Result<LlmResponse> {
        let (text, tool_calls, usage, finish_reason) = match self {
            ModelTurn::Text { pieces, usage } => (
                Some(pieces.concat()),
                Vec::new(),
                *usage,
                FinishReason::Stop,
            ),
            ModelTurn::ToolCalls { calls, usage } => (
                None,
                calls.iter().map(ScriptedCall::parsed).collect(),
                *usage,
                FinishReason::ToolCalls,
            ),
            ModelTurn::Refuse(r) => return Err(r.error("scripted")),
        };
        Ok(LlmResponse {
            text,
            tool_calls,
            usage,
            model: model.to_string(),
            finish_reason,
        })
    }
}

/// A request as the model received it, decoded back to core terms.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SeenRequest {
    /// Requested model.
    pub model: String,
    /// Texts of the user messages, in order.
    pub user_texts: Vec<String>,
    /// Names of the offered functions, in order.
    pub tools: Vec<String>,
    /// Tool calls of earlier assistant turns in the history.
    pub tool_calls: Vec<ToolCallRequest>,
    /// Tool results in the history: `(call id, content)`.
    pub tool_results: Vec<(String, String)>,
    /// The requested answer schema.
    pub output_schema: Option<Value>,
}

impl From<&LlmRequest> for SeenRequest {
    fn from(request: &LlmRequest) -> Self {
        let mut seen = SeenRequest {
            model: request.model.clone(),
            tools: request.tools.iter().map(|t| t.name.clone()).collect(),
            output_schema: request.output_schema.as_ref().map(|s| s.schema.clone()),
            ..Default::default()
        };
        for m in &request.messages {
            match m {
                Message::User { content } => seen.user_texts.push(content.clone()),
                Message::Assistant { tool_calls, .. } => {
                    seen.tool_calls.extend(tool_calls.iter().cloned())
                }
                Message::Tool { call_id, content } => {
                    seen.tool_results.push((call_id.clone(), content.clone()))
                }
                Message::System { .. } => {}
            }
        }
        seen
    }
}

/// A provider under test and the script of the model behind it.
pub trait LlmFixture: Send + Sync {
    /// The provider under test.
    fn provider(&self) -> &dyn LlmProvider;
    /// Queues the model's answer to the next call.
    fn script(&self, turn: ModelTurn);
    /// Every request the model received, oldest first.
    fn seen(&self) -> Vec<SeenRequest>;
}

impl LlmFixture for ScriptedLlm {
    fn provider(&self) -> &dyn LlmProvider {
        self
    }

    fn script(&self, turn: ModelTurn) {
        self.push(turn.to_response(""));
    }

    fn seen(&self) -> Vec<SeenRequest> {
        self.requests().iter().map(SeenRequest::from).collect()
    }
}
