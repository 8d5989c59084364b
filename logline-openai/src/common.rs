//! Pieces shared by the Responses and Chat Completions codecs.

use logline_core::llm::{FinishReason, LlmRequest, LlmResponse, ToolCallRequest};
use logline_core::{Error, Result};
use serde_json::Value;

use crate::config::OpenAiConfig;
use crate::error::OpenAiError;
use crate::names::NameMap;

/// The JSON bytes of a request body we built (a failure is a bug, not bad input).
pub(crate) fn body_bytes<T: serde::Serialize>(body: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(body)
        .map_err(|e| Error::Internal(format!("request body not serializable: {e}")))
}

/// Per-request context the decoders need: the name aliases, the model, whether structured
/// output was requested and the cap on assembled streamed output.
#[derive(Debug)]
pub(crate) struct DecodeCtx {
    pub(crate) names: NameMap,
    pub(crate) model: String,
    pub(crate) structured: bool,
    pub(crate) max_output_bytes: usize,
}

impl DecodeCtx {
    pub(crate) fn new(request: &LlmRequest, config: &OpenAiConfig) -> Result<Self> {
        Ok(DecodeCtx {
            names: NameMap::for_request(request),
            model: resolve_model(request, config)?.to_string(),
            structured: request.output_schema.is_some(),
            max_output_bytes: config.max_response_bytes,
        })
    }

    /// A tool call from its wire parts; invalid JSON arguments are a model-output error.
    pub(crate) fn tool_call(
        &self,
        id: String,
        wire_name: &str,
        arguments: &str,
    ) -> Result<ToolCallRequest> {
        let name = self.names.original(wire_name);
        let arguments = parse_arguments(&name, arguments)?;
        Ok(ToolCallRequest {
            id,
            name,
            arguments,
        })
    }

    /// Final checks: a structured answer must be JSON; an empty model falls back to the
    /// request's.
    pub(crate) fn finish(&self, mut response: LlmResponse) -> Result<LlmResponse> {
        if response.model.is_empty() {
            response.model = self.model.clone();
        }
        if self.structured && response.tool_calls.is_empty() {
            let checked = match response.text.as_deref() {
                None => Err(Error::ModelOutput(
                    "structured output requested but the model returned no text".into(),
                )),
                Some(t) => serde_json::from_str::<Value>(t.trim())
                    .map(drop)
                    .map_err(|e| {
                        Error::ModelOutput(format!("structured output is not valid JSON: {e}"))
                    }),
            };
            checked.map_err(|e| cut_off_note(e, response.finish_reason))?;
        }
        if !response.tool_calls.is_empty() && response.finish_reason == FinishReason::Stop {
            response.finish_reason = FinishReason::ToolCalls;
        }
        Ok(response)
    }

    /// A refusal: an error when structured output was requested, otherwise the text.
    pub(crate) fn refusal(&self, refusal: &str) -> Result<String> {
        if self.structured {
            return Err(Error::ModelOutput(format!("the model refused: {refusal}")));
        }
        Ok(refusal.to_string())
    }
}

/// Adds why a model-output error happened when the answer was cut off at the token limit.
pub(crate) fn cut_off_note(e: Error, finish: FinishReason) -> Error {
    match e {
        Error::ModelOutput(m) if finish == FinishReason::Length => Error::ModelOutput(format!(
            "{m} (the answer was cut off at the output token limit: finish_reason `length`)"
        )),
        other => other,
    }
}

/// Counts the bytes of streamed text and arguments an assembler keeps, against
/// [`DecodeCtx::max_output_bytes`].
#[derive(Debug, Default)]
pub(crate) struct OutputBudget {
    used: usize,
}

impl OutputBudget {
    /// Accounts for `piece` before it is appended; an error once the total passes `max`.
    pub(crate) fn take(&mut self, piece: &str, max: usize) -> Result<()> {
        self.used = self.used.saturating_add(piece.len());
        if self.used > max {
            return Err(OpenAiError::TooLarge {
                what: "the streamed output",
                limit: max,
            }
            .into());
        }
        Ok(())
    }
}

/// The request's model, else the configured default.
pub(crate) fn resolve_model<'a>(
    request: &'a LlmRequest,
    config: &'a OpenAiConfig,
) -> Result<&'a str> {
    if !request.model.trim().is_empty() {
        return Ok(&request.model);
    }
    config.default_model.as_deref().ok_or_else(|| {
        Error::InvalidInput("LLM request names no model and no default model is configured".into())
    })
}

/// Parses a tool call's argument string. Empty means `{}` (some servers send that for
/// argument-less functions).
pub(crate) fn parse_arguments(name: &str, arguments: &str) -> Result<Value> {
    let trimmed = arguments.trim();
    if trimmed.is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    serde_json::from_str(trimmed).map_err(|e| {
        Error::ModelOutput(format!(
            "arguments of tool call `{name}` are not valid JSON: {e}"
        ))
    })
}

/// Tool arguments as the JSON string the APIs expect.
pub(crate) fn arguments_string(arguments: &Value) -> String {
    match arguments {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A JSON `code` that may be a string, a number or null.
pub(crate) fn code_string(code: &Option<Value>) -> Option<String> {
    match code {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
    }
}
