//! `POST /responses`: request encoding, response decoding and the SSE assembler.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};

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
pub(crate) const PATH: &str = "/responses";

// ---------------------------------------------------------------- request

#[derive(Serialize)]
struct Body<'a> {
    model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    instructions: Option<&'a str>,
    input: Vec<InputItem<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<Tool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<Choice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parallel_tool_calls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<TextOptions<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_output_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<&'a HashMap<String, String>>,
    store: bool,
    stream: bool,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum InputItem<'a> {
    Message {
        role: &'static str,
        content: &'a str,
    },
    FunctionCall {
        call_id: &'a str,
        name: Cow<'a, str>,
        arguments: String,
    },
    FunctionCallOutput {
        call_id: &'a str,
        output: &'a str,
    },
}

#[derive(Serialize)]
struct Tool<'a> {
    r#type: &'static str,
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
        name: Cow<'a, str>,
    },
}

#[derive(Serialize)]
struct TextOptions<'a> {
    format: Format<'a>,
}

#[derive(Serialize)]
struct Format<'a> {
    r#type: &'static str,
    name: &'a str,
    schema: &'a Value,
    strict: bool,
}

/// The JSON body of a Responses request.
pub(crate) fn encode(
    request: &LlmRequest,
    config: &OpenAiConfig,
    ctx: &DecodeCtx,
    stream: bool,
) -> Result<Vec<u8>> {
    let names = &ctx.names;
    let mut input = Vec::with_capacity(request.messages.len() + 2);
    for m in &request.messages {
        match m {
            Message::System { content } => input.push(InputItem::Message {
                role: "system",
                content,
            }),
            Message::User { content } => input.push(InputItem::Message {
                role: "user",
                content,
            }),
            Message::Assistant {
                content,
                tool_calls,
            } => {
                if let Some(text) = content.as_deref().filter(|t| !t.is_empty()) {
                    input.push(InputItem::Message {
                        role: "assistant",
                        content: text,
                    });
                }
                for c in tool_calls {
                    input.push(InputItem::FunctionCall {
                        call_id: &c.id,
                        name: names.wire(&c.name),
                        arguments: arguments_string(&c.arguments),
                    });
                }
            }
            Message::Tool { call_id, content } => input.push(InputItem::FunctionCallOutput {
                call_id,
                output: content,
            }),
        }
    }
    let has_tools = !request.tools.is_empty();
    let tools = request
        .tools
        .iter()
        .map(|t| Tool {
            r#type: "function",
            name: names.wire(&t.name),
            description: &t.description,
            parameters: &t.parameters,
            strict: t.strict,
        })
        .collect();
    let tool_choice = has_tools.then(|| match &request.tool_choice {
        ToolChoice::Auto => Choice::Mode("auto"),
        ToolChoice::None => Choice::Mode("none"),
        ToolChoice::Required => Choice::Mode("required"),
        ToolChoice::Function(name) => Choice::Function {
            r#type: "function",
            name: names.wire(name),
        },
    });
    let body = Body {
        model: resolve_model(request, config)?,
        instructions: request.instructions.as_deref(),
        input,
        tools,
        tool_choice,
        parallel_tool_calls: has_tools.then_some(request.parallel_tool_calls),
        text: request.output_schema.as_ref().map(|s| TextOptions {
            format: Format {
                r#type: "json_schema",
                name: &s.name,
                schema: &s.schema,
                strict: s.strict,
            },
        }),
        temperature: request.temperature,
        max_output_tokens: request.max_output_tokens,
        metadata: (config.forward_metadata && !request.metadata.is_empty())
            .then_some(&request.metadata),
        store: config.store,
        stream,
    };
    body_bytes(&body)
}

// ---------------------------------------------------------------- response

#[derive(Debug, Deserialize)]
pub(crate) struct ResponseBody {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    error: Option<ErrorObject>,
    #[serde(default)]
    incomplete_details: Option<IncompleteDetails>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    output: Option<Vec<OutputItem>>,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Debug, Deserialize)]
struct ErrorObject {
    #[serde(default)]
    code: Option<Value>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Debug, Deserialize)]
struct IncompleteDetails {
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum OutputItem {
    Message {
        #[serde(default)]
        content: Vec<ContentPart>,
    },
    FunctionCall {
        call_id: String,
        name: String,
        #[serde(default)]
        arguments: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ContentPart {
    OutputText {
        text: String,
    },
    Refusal {
        refusal: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
struct Usage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    input_tokens_details: Option<TokenDetails>,
    #[serde(default)]
    output_tokens: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct TokenDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

impl From<&Usage> for TokenUsage {
    fn from(u: &Usage) -> Self {
        TokenUsage {
            input_tokens: u.input_tokens.unwrap_or(0),
            cached_input_tokens: u
                .input_tokens_details
                .as_ref()
                .and_then(|d| d.cached_tokens)
                .unwrap_or(0),
            output_tokens: u.output_tokens.unwrap_or(0),
        }
    }
}

fn failed(body: &ResponseBody) -> OpenAiError {
    match &body.error {
        Some(e) => OpenAiError::failed(
            code_string(&e.code),
            e.message.as_deref().unwrap_or("no message"),
        ),
        None => OpenAiError::failed(None, "no error details"),
    }
}

/// The finish reason of a response object: an `incomplete` one was cut off, at the output
/// token limit (`length`) or by the content filter.
fn finish_reason(body: &ResponseBody) -> FinishReason {
    if body.status.as_deref() != Some("incomplete") {
        return FinishReason::Stop;
    }
    let reason = body
        .incomplete_details
        .as_ref()
        .and_then(|d| d.reason.as_deref());
    match reason {
        Some("content_filter") => FinishReason::ContentFilter,
        _ => FinishReason::Length,
    }
}

/// Turns a response object into an [`LlmResponse`]; failed and cancelled are errors, an
/// incomplete one is the partial answer with its finish reason.
pub(crate) fn convert(body: ResponseBody, ctx: &DecodeCtx) -> Result<LlmResponse> {
    match body.status.as_deref() {
        Some("failed") => return Err(failed(&body).into()),
        Some("cancelled") => return Err(OpenAiError::ServerCancelled.into()),
        _ => {}
    }
    let finish = finish_reason(&body);
    convert_output(body, finish, ctx).map_err(|e| cut_off_note(e, finish))
}

fn convert_output(
    body: ResponseBody,
    finish: FinishReason,
    ctx: &DecodeCtx,
) -> Result<LlmResponse> {
    let mut text: Option<String> = None;
    let mut tool_calls = Vec::new();
    for item in body.output.unwrap_or_default() {
        match item {
            OutputItem::Message { content } => {
                for part in content {
                    let piece = match part {
                        ContentPart::OutputText { text } => text,
                        ContentPart::Refusal { refusal } => ctx.refusal(&refusal)?,
                        ContentPart::Other => continue,
                    };
                    match &mut text {
                        Some(t) => t.push_str(&piece),
                        None => text = Some(piece),
                    }
                }
            }
            OutputItem::FunctionCall {
                call_id,
                name,
                arguments,
            } => tool_calls.push(ctx.tool_call(call_id, &name, &arguments)?),
            OutputItem::Other => {}
        }
    }
    ctx.finish(LlmResponse {
        text,
        tool_calls,
        usage: body
            .usage
            .as_ref()
            .map(TokenUsage::from)
            .unwrap_or_default(),
        model: body.model.unwrap_or_default(),
        finish_reason: finish,
    })
}

/// Decodes a non-streamed response body.
pub(crate) fn decode(bytes: &[u8], ctx: &DecodeCtx) -> Result<LlmResponse> {
    let body: ResponseBody = serde_json::from_slice(bytes).map_err(OpenAiError::Decode)?;
    convert(body, ctx)
}

// ---------------------------------------------------------------- streaming

#[derive(Debug, Deserialize)]
#[serde(tag = "type")]
enum Event {
    #[serde(rename = "response.output_item.added")]
    ItemAdded {
        #[serde(default)]
        output_index: Option<u64>,
        item: StreamItem,
    },
    #[serde(rename = "response.function_call_arguments.delta")]
    ArgumentsDelta {
        #[serde(default)]
        output_index: Option<u64>,
        #[serde(default)]
        item_id: Option<String>,
        delta: String,
    },
    #[serde(rename = "response.function_call_arguments.done")]
    ArgumentsDone {
        #[serde(default)]
        output_index: Option<u64>,
        #[serde(default)]
        item_id: Option<String>,
        arguments: String,
    },
    #[serde(rename = "response.output_text.delta")]
    TextDelta { delta: String },
    #[serde(rename = "response.refusal.delta")]
    RefusalDelta { delta: String },
    #[serde(rename = "response.completed")]
    Completed { response: ResponseBody },
    #[serde(rename = "response.incomplete")]
    Incomplete { response: ResponseBody },
    #[serde(rename = "response.failed")]
    Failed { response: ResponseBody },
    #[serde(rename = "error")]
    Error {
        #[serde(default)]
        code: Option<Value>,
        #[serde(default)]
        message: Option<String>,
        #[serde(default)]
        error: Option<ErrorObject>,
    },
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StreamItem {
    FunctionCall {
        #[serde(default)]
        id: Option<String>,
        call_id: String,
        name: String,
        #[serde(default)]
        arguments: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Debug)]
struct PartialCall {
    item_id: Option<String>,
    output_index: Option<u64>,
    call_id: String,
    name: String,
    arguments: String,
}

/// Assembles Responses SSE events into deltas and the final response.
#[derive(Debug)]
pub(crate) struct ResponsesAssembler {
    ctx: DecodeCtx,
    calls: Vec<PartialCall>,
    text: String,
    budget: OutputBudget,
}

impl ResponsesAssembler {
    pub(crate) fn new(ctx: DecodeCtx) -> Self {
        ResponsesAssembler {
            ctx,
            calls: Vec::new(),
            text: String::new(),
            budget: OutputBudget::default(),
        }
    }

    fn take(&mut self, piece: &str) -> Result<()> {
        self.budget.take(piece, self.ctx.max_output_bytes)
    }

    fn find(&self, item_id: &Option<String>, output_index: Option<u64>) -> Option<usize> {
        self.calls.iter().position(|c| {
            (item_id.is_some() && c.item_id == *item_id)
                || (item_id.is_none() && output_index.is_some() && c.output_index == output_index)
        })
    }

    /// The final response of a terminal event (`response.completed` or
    /// `response.incomplete`): its output, or the deltas when it carries none.
    fn terminal(&mut self, response: ResponseBody) -> Result<LlmResponse> {
        let has_output = response.output.as_ref().is_some_and(|o| !o.is_empty());
        if has_output {
            return convert(response, &self.ctx);
        }
        let finish = finish_reason(&response);
        let usage = response
            .usage
            .as_ref()
            .map(TokenUsage::from)
            .unwrap_or_default();
        self.assembled(usage, response.model.unwrap_or_default(), finish)
            .map_err(|e| cut_off_note(e, finish))
    }

    /// The response built from the deltas.
    fn assembled(
        &mut self,
        usage: TokenUsage,
        model: String,
        finish: FinishReason,
    ) -> Result<LlmResponse> {
        let mut tool_calls = Vec::with_capacity(self.calls.len());
        for c in std::mem::take(&mut self.calls) {
            tool_calls.push(self.ctx.tool_call(c.call_id, &c.name, &c.arguments)?);
        }
        let text = std::mem::take(&mut self.text);
        self.ctx.finish(LlmResponse {
            text: (!text.is_empty()).then_some(text),
            tool_calls,
            usage,
            model,
            finish_reason: finish,
        })
    }
}

impl Assembler for ResponsesAssembler {
    fn on_event(
        &mut self,
        data: &str,
        out: &mut VecDeque<Result<LlmStreamEvent>>,
    ) -> Result<Option<LlmResponse>> {
        if data.trim() == "[DONE]" {
            return self.finish().map(Some);
        }
        let event: Event = serde_json::from_str(data)
            .map_err(|e| OpenAiError::Stream(format!("malformed event: {e}")))?;
        match event {
            Event::ItemAdded { output_index, item } => {
                if let StreamItem::FunctionCall {
                    id,
                    call_id,
                    name,
                    arguments,
                } = item
                {
                    self.take(&arguments)?;
                    out.push_back(Ok(LlmStreamEvent::ToolCallDelta {
                        index: self.calls.len() as u32,
                        id: Some(call_id.clone()),
                        name: Some(self.ctx.names.original(&name)),
                        arguments_delta: arguments.clone(),
                    }));
                    self.calls.push(PartialCall {
                        item_id: id,
                        output_index,
                        call_id,
                        name,
                        arguments,
                    });
                }
            }
            Event::ArgumentsDelta {
                output_index,
                item_id,
                delta,
            } => {
                let i = self.find(&item_id, output_index).ok_or_else(|| {
                    OpenAiError::Stream("arguments delta for an unknown function call".into())
                })?;
                self.take(&delta)?;
                self.calls[i].arguments.push_str(&delta);
                out.push_back(Ok(LlmStreamEvent::ToolCallDelta {
                    index: i as u32,
                    id: None,
                    name: None,
                    arguments_delta: delta,
                }));
            }
            Event::ArgumentsDone {
                output_index,
                item_id,
                arguments,
            } => {
                if let Some(i) = self.find(&item_id, output_index) {
                    self.calls[i].arguments = arguments;
                }
            }
            Event::TextDelta { delta } => {
                self.take(&delta)?;
                self.text.push_str(&delta);
                out.push_back(Ok(LlmStreamEvent::TextDelta { delta }));
            }
            Event::RefusalDelta { delta } => {
                if !self.ctx.structured {
                    self.take(&delta)?;
                    self.text.push_str(&delta);
                    out.push_back(Ok(LlmStreamEvent::TextDelta { delta }));
                }
            }
            Event::Completed { response } | Event::Incomplete { response } => {
                return self.terminal(response).map(Some);
            }
            Event::Failed { response } => return Err(failed(&response).into()),
            Event::Error {
                code,
                message,
                error,
            } => {
                let (code, message) = match error {
                    Some(e) => (
                        code_string(&e.code).or(code_string(&code)),
                        e.message.or(message),
                    ),
                    None => (code_string(&code), message),
                };
                return Err(OpenAiError::failed(
                    code,
                    message.as_deref().unwrap_or("stream error"),
                )
                .into());
            }
            Event::Other => {}
        }
        Ok(None)
    }

    fn finish(&mut self) -> Result<LlmResponse> {
        Err(OpenAiError::Stream("stream ended before response.completed".into()).into())
    }
}
