//! `POST /chat/completions` (OpenAI-compatible servers): encoding, decoding, SSE assembly.

use std::borrow::Cow;
use std::collections::VecDeque;

use logline_core::llm::{
    FinishReason, LlmRequest, LlmResponse, LlmStreamEvent, Message, TokenUsage, ToolChoice,
};
use logline_core::Result;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::common::{
    arguments_string, body_bytes, code_string, cut_off_note, resolve_model, DecodeCtx, OutputBudget,
};
use crate::config::OpenAiConfig;
use crate::error::OpenAiError;
use crate::stream::Assembler;

/// Endpoint path below the base URL.
pub(crate) const PATH: &str = "/chat/completions";

// ---------------------------------------------------------------- request

#[derive(Serialize)]
struct Body<'a> {
    model: &'a str,
    messages: Vec<ChatMessage<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<Tool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<Choice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parallel_tool_calls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<ResponseFormat<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<u32>,
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
}

#[derive(Serialize)]
#[serde(tag = "role", rename_all = "snake_case")]
enum ChatMessage<'a> {
    System {
        content: &'a str,
    },
    User {
        content: &'a str,
    },
    Assistant {
        content: Option<&'a str>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<WireCall<'a>>,
    },
    Tool {
        tool_call_id: &'a str,
        content: &'a str,
    },
}

#[derive(Serialize)]
struct WireCall<'a> {
    id: &'a str,
    r#type: &'static str,
    function: WireFunction<'a>,
}

#[derive(Serialize)]
struct WireFunction<'a> {
    name: Cow<'a, str>,
    arguments: String,
}

#[derive(Serialize)]
struct Tool<'a> {
    r#type: &'static str,
    function: FunctionDef<'a>,
}

#[derive(Serialize)]
struct FunctionDef<'a> {
    name: Cow<'a, str>,
    #[serde(skip_serializing_if = "str::is_empty")]
    description: &'a str,
    parameters: &'a Value,
    strict: bool,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Choice<'a> {
    Mode(&'static str),
    Function {
        r#type: &'static str,
        function: NameOnly<'a>,
    },
}

#[derive(Serialize)]
struct NameOnly<'a> {
    name: Cow<'a, str>,
}

#[derive(Serialize)]
struct ResponseFormat<'a> {
    r#type: &'static str,
    json_schema: JsonSchema<'a>,
}

#[derive(Serialize)]
struct JsonSchema<'a> {
    name: &'a str,
    schema: &'a Value,
    strict: bool,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

/// The JSON body of a Chat Completions request.
pub(crate) fn encode(
    request: &LlmRequest,
    config: &OpenAiConfig,
    ctx: &DecodeCtx,
    stream: bool,
) -> Result<Vec<u8>> {
    let names = &ctx.names;
    let mut messages = Vec::with_capacity(request.messages.len() + 1);
    if let Some(instructions) = request.instructions.as_deref() {
        messages.push(ChatMessage::System {
            content: instructions,
        });
    }
    for m in &request.messages {
        messages.push(match m {
            Message::System { content } => ChatMessage::System { content },
            Message::User { content } => ChatMessage::User { content },
            Message::Assistant {
                content,
                tool_calls,
            } => ChatMessage::Assistant {
                content: content.as_deref(),
                tool_calls: tool_calls
                    .iter()
                    .map(|c| WireCall {
                        id: &c.id,
                        r#type: "function",
                        function: WireFunction {
                            name: names.wire(&c.name),
                            arguments: arguments_string(&c.arguments),
                        },
                    })
                    .collect(),
            },
            Message::Tool { call_id, content } => ChatMessage::Tool {
                tool_call_id: call_id,
                content,
            },
        });
    }
    let has_tools = !request.tools.is_empty();
    let tools = request
        .tools
        .iter()
        .map(|t| Tool {
            r#type: "function",
            function: FunctionDef {
                name: names.wire(&t.name),
                description: &t.description,
                parameters: &t.parameters,
                strict: t.strict,
            },
        })
        .collect();
    let tool_choice = has_tools.then(|| match &request.tool_choice {
        ToolChoice::Auto => Choice::Mode("auto"),
        ToolChoice::None => Choice::Mode("none"),
        ToolChoice::Required => Choice::Mode("required"),
        ToolChoice::Function(name) => Choice::Function {
            r#type: "function",
            function: NameOnly {
                name: names.wire(name),
            },
        },
    });
    let (max_tokens, max_completion_tokens) = if config.chat_max_completion_tokens {
        (None, request.max_output_tokens)
    } else {
        (request.max_output_tokens, None)
    };
    let body = Body {
        model: resolve_model(request, config)?,
        messages,
        tools,
        tool_choice,
        parallel_tool_calls: has_tools.then_some(request.parallel_tool_calls),
        response_format: request.output_schema.as_ref().map(|s| ResponseFormat {
            r#type: "json_schema",
            json_schema: JsonSchema {
                name: &s.name,
                schema: &s.schema,
                strict: s.strict,
            },
        }),
        temperature: request.temperature,
        max_tokens,
        max_completion_tokens,
        stream,
        stream_options: (stream && config.chat_stream_usage).then_some(StreamOptions {
            include_usage: true,
        }),
    };
    body_bytes(&body)
}

// ---------------------------------------------------------------- response

#[derive(Debug, Deserialize)]
struct Completion {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Vec<ChoiceOut>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Debug, Deserialize)]
struct ChoiceOut {
    message: OutMessage,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct OutMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<OutCall>>,
}

#[derive(Debug, Deserialize)]
struct OutCall {
    #[serde(default)]
    id: Option<String>,
    function: OutFunction,
}

#[derive(Debug, Deserialize)]
struct OutFunction {
    #[serde(default)]
    name: Option<String>,
    /// A JSON string per the spec; some servers send an object.
    #[serde(default)]
    arguments: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
}

#[derive(Debug, Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

impl From<&Usage> for TokenUsage {
    fn from(u: &Usage) -> Self {
        TokenUsage {
            input_tokens: u.prompt_tokens.unwrap_or(0),
            cached_input_tokens: u
                .prompt_tokens_details
                .as_ref()
                .and_then(|d| d.cached_tokens)
                .unwrap_or(0),
            output_tokens: u.completion_tokens.unwrap_or(0),
        }
    }
}

fn finish_reason(reason: Option<&str>) -> FinishReason {
    match reason {
        Some("tool_calls") | Some("function_call") => FinishReason::ToolCalls,
        Some("length") => FinishReason::Length,
        Some("content_filter") => FinishReason::ContentFilter,
        _ => FinishReason::Stop,
    }
}

fn arguments_text(v: Option<&Value>) -> Cow<'_, str> {
    match v {
        None | Some(Value::Null) => Cow::Borrowed(""),
        Some(Value::String(s)) => Cow::Borrowed(s),
        Some(other) => Cow::Owned(other.to_string()),
    }
}

/// Decodes a non-streamed completion.
pub(crate) fn decode(bytes: &[u8], ctx: &DecodeCtx) -> Result<LlmResponse> {
    let body: Completion = serde_json::from_slice(bytes).map_err(OpenAiError::Decode)?;
    let usage = body
        .usage
        .as_ref()
        .map(TokenUsage::from)
        .unwrap_or_default();
    let choice = body
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| OpenAiError::Stream("completion has no choices".into()))?;
    let finish = finish_reason(choice.finish_reason.as_deref());
    decode_choice(choice, usage, body.model.unwrap_or_default(), finish, ctx)
        .map_err(|e| cut_off_note(e, finish))
}

fn decode_choice(
    choice: ChoiceOut,
    usage: TokenUsage,
    model: String,
    finish: FinishReason,
    ctx: &DecodeCtx,
) -> Result<LlmResponse> {
    let mut text = choice.message.content.filter(|t| !t.is_empty());
    if text.is_none() {
        if let Some(r) = choice.message.refusal.as_deref() {
            text = Some(ctx.refusal(r)?);
        }
    }
    let mut tool_calls = Vec::new();
    for (i, c) in choice
        .message
        .tool_calls
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let id = c.id.unwrap_or_else(|| format!("call_{i}"));
        let name = c.function.name.unwrap_or_default();
        tool_calls.push(ctx.tool_call(
            id,
            &name,
            &arguments_text(c.function.arguments.as_ref()),
        )?);
    }
    ctx.finish(LlmResponse {
        text,
        tool_calls,
        usage,
        model,
        finish_reason: finish,
    })
}

// ---------------------------------------------------------------- streaming

#[derive(Debug, Deserialize)]
struct Chunk {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    choices: Vec<ChunkChoice>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    error: Option<ChunkError>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ChunkError {
    Object {
        #[serde(default)]
        code: Option<Value>,
        #[serde(default)]
        message: Option<String>,
    },
    Text(String),
}

#[derive(Debug, Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    delta: Option<Delta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    refusal: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<CallDelta>>,
}

#[derive(Debug, Deserialize)]
struct CallDelta {
    #[serde(default)]
    index: Option<u32>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<FunctionDelta>,
}

#[derive(Debug, Deserialize)]
struct FunctionDelta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<Value>,
}

#[derive(Debug, Default)]
struct PartialCall {
    index: u32,
    id: Option<String>,
    name: String,
    arguments: String,
}

/// Assembles `chat.completion.chunk`s; ends at `[DONE]` (or at the end of the body once a
/// `finish_reason` was seen).
#[derive(Debug)]
pub(crate) struct ChatAssembler {
    ctx: DecodeCtx,
    text: String,
    refusal: String,
    calls: Vec<PartialCall>,
    finish: Option<String>,
    usage: TokenUsage,
    model: String,
    budget: OutputBudget,
}

impl ChatAssembler {
    pub(crate) fn new(ctx: DecodeCtx) -> Self {
        ChatAssembler {
            ctx,
            text: String::new(),
            refusal: String::new(),
            calls: Vec::new(),
            finish: None,
            usage: TokenUsage::default(),
            model: String::new(),
            budget: OutputBudget::default(),
        }
    }

    fn take(&mut self, piece: &str) -> Result<()> {
        self.budget.take(piece, self.ctx.max_output_bytes)
    }

    fn build(&mut self) -> Result<LlmResponse> {
        let finish = finish_reason(self.finish.as_deref());
        self.build_with(finish).map_err(|e| cut_off_note(e, finish))
    }

    fn build_with(&mut self, finish: FinishReason) -> Result<LlmResponse> {
        let mut text = std::mem::take(&mut self.text);
        if text.is_empty() && !self.refusal.is_empty() {
            text = self.ctx.refusal(&self.refusal)?;
        }
        let mut tool_calls = Vec::with_capacity(self.calls.len());
        for c in std::mem::take(&mut self.calls) {
            let id = c.id.unwrap_or_else(|| format!("call_{}", c.index));
            tool_calls.push(self.ctx.tool_call(id, &c.name, &c.arguments)?);
        }
        self.ctx.finish(LlmResponse {
            text: (!text.is_empty()).then_some(text),
            tool_calls,
            usage: self.usage,
            model: std::mem::take(&mut self.model),
            finish_reason: finish,
        })
    }
}

impl Assembler for ChatAssembler {
    fn on_event(
        &mut self,
        data: &str,
        out: &mut VecDeque<Result<LlmStreamEvent>>,
    ) -> Result<Option<LlmResponse>> {
        if data.trim() == "[DONE]" {
            return self.build().map(Some);
        }
        let chunk: Chunk = serde_json::from_str(data)
            .map_err(|e| OpenAiError::Stream(format!("malformed chunk: {e}")))?;
        if let Some(err) = chunk.error {
            let (code, message) = match err {
                ChunkError::Object { code, message } => (code_string(&code), message),
                ChunkError::Text(t) => (None, Some(t)),
            };
            return Err(
                OpenAiError::failed(code, message.as_deref().unwrap_or("stream error")).into(),
            );
        }
        if let Some(m) = chunk.model.filter(|m| !m.is_empty()) {
            self.model = m;
        }
        if let Some(u) = &chunk.usage {
            self.usage = TokenUsage::from(u);
        }
        for choice in chunk.choices {
            if let Some(reason) = choice.finish_reason {
                self.finish = Some(reason);
            }
            let Some(delta) = choice.delta else { continue };
            if let Some(t) = delta.content.filter(|t| !t.is_empty()) {
                self.take(&t)?;
                self.text.push_str(&t);
                out.push_back(Ok(LlmStreamEvent::TextDelta { delta: t }));
            }
            if let Some(r) = delta.refusal {
                self.take(&r)?;
                self.refusal.push_str(&r);
            }
            for (pos, d) in delta.tool_calls.unwrap_or_default().into_iter().enumerate() {
                let index = d.index.unwrap_or(pos as u32);
                let slot = match self.calls.iter().position(|c| c.index == index) {
                    Some(s) => s,
                    None => {
                        self.calls.push(PartialCall {
                            index,
                            ..Default::default()
                        });
                        self.calls.len() - 1
                    }
                };
                let (name, args) = match d.function {
                    Some(f) => (f.name.filter(|n| !n.is_empty()), f.arguments),
                    None => (None, None),
                };
                let args = arguments_text(args.as_ref()).into_owned();
                self.take(name.as_deref().unwrap_or_default())?;
                self.take(&args)?;
                let call = &mut self.calls[slot];
                let new_id = d.id.filter(|i| !i.is_empty() && call.id.is_none());
                if let Some(id) = &new_id {
                    call.id = Some(id.clone());
                }
                if let Some(n) = &name {
                    call.name.push_str(n);
                }
                call.arguments.push_str(&args);
                out.push_back(Ok(LlmStreamEvent::ToolCallDelta {
                    index: slot as u32,
                    id: new_id,
                    name: name.map(|n| self.ctx.names.original(&n)),
                    arguments_delta: args,
                }));
            }
        }
        Ok(None)
    }

    fn finish(&mut self) -> Result<LlmResponse> {
        if self.finish.is_some() {
            return self.build();
        }
        Err(OpenAiError::Stream("stream ended before [DONE]".into()).into())
    }
}
