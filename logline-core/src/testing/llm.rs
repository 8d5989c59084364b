use std::collections::VecDeque;
use std::sync::Mutex;

use async_trait::async_trait;
use serde_json::Value;

use super::locked;
use crate::error::{Error, Result};
use crate::llm::{FinishReason, LlmProvider, LlmRequest, LlmResponse, TokenUsage, ToolCallRequest};

type Responder = Box<dyn Fn(&LlmRequest) -> Result<LlmResponse> + Send + Sync>;

/// An [`LlmProvider`] that answers from a script: queued responses first, then an optional
/// responder function. Records every request.
pub struct ScriptedLlm {
    name: String,
    script: Mutex<VecDeque<Result<LlmResponse>>>,
    responder: Option<Responder>,
    requests: Mutex<Vec<LlmRequest>>,
    usage: TokenUsage,
}

impl Default for ScriptedLlm {
    fn default() -> Self {
        Self::new()
    }
}

impl ScriptedLlm {
    /// An empty script.
    pub fn new() -> Self {
        ScriptedLlm {
            name: "scripted".into(),
            script: Mutex::new(VecDeque::new()),
            responder: None,
            requests: Mutex::new(Vec::new()),
            usage: TokenUsage {
                input_tokens: 100,
                cached_input_tokens: 0,
                output_tokens: 20,
            },
        }
    }

    /// Answers every request (after the queued responses) with `f`.
    pub fn from_fn<F>(f: F) -> Self
    where
        F: Fn(&LlmRequest) -> Result<LlmResponse> + Send + Sync + 'static,
    {
        ScriptedLlm {
            responder: Some(Box::new(f)),
            ..Self::new()
        }
    }

    /// Usage reported on responses that carry none.
    pub fn with_usage(mut self, usage: TokenUsage) -> Self {
        self.usage = usage;
        self
    }

    /// Queues a response.
    pub fn reply(self, response: LlmResponse) -> Self {
        locked(&self.script).push_back(Ok(response));
        self
    }

    /// Queues a text answer.
    pub fn reply_text(self, text: &str) -> Self {
        self.reply(LlmResponse::text(text))
    }

    /// Queues a JSON answer (structured output).
    pub fn reply_json(self, value: Value) -> Self {
        self.reply(LlmResponse::text(value.to_string()))
    }

    /// Queues tool calls `(name, arguments)`.
    pub fn reply_tool_calls(self, calls: &[(&str, Value)]) -> Self {
        let tool_calls = calls
            .iter()
            .enumerate()
            .map(|(i, (name, args))| ToolCallRequest {
                id: format!("call_{i}_{name}"),
                name: name.to_string(),
                arguments: args.clone(),
            })
            .collect();
        self.reply(LlmResponse {
            tool_calls,
            finish_reason: FinishReason::ToolCalls,
            ..Default::default()
        })
    }

    /// Queues a failure.
    pub fn fail(self, error: Error) -> Self {
        locked(&self.script).push_back(Err(error));
        self
    }

    /// Every request received.
    pub fn requests(&self) -> Vec<LlmRequest> {
        locked(&self.requests).clone()
    }

    /// Number of requests received.
    pub fn calls(&self) -> usize {
        locked(&self.requests).len()
    }
}

#[async_trait]
impl LlmProvider for ScriptedLlm {
    fn name(&self) -> &str {
        &self.name
    }

    async fn complete(&self, request: &LlmRequest) -> Result<LlmResponse> {
        locked(&self.requests).push(request.clone());
        let queued = locked(&self.script).pop_front();
        let mut response = match (queued, &self.responder) {
            (Some(r), _) => r?,
            (None, Some(f)) => f(request)?,
            (None, None) => {
                return Err(Error::ModelOutput(
                    "scripted LLM has no response left".into(),
                ))
            }
        };
        if response.usage == TokenUsage::default() {
            response.usage = self.usage;
        }
        if response.model.is_empty() {
            response.model = request.model.clone();
        }
        Ok(response)
    }
}
