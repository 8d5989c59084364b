//! Shared helpers for the integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use logline_core::llm::{
    LlmRequest, LlmStreamEvent, Message, OutputSchema, ToolCallRequest, ToolChoice, ToolDefinition,
};
use logline_openai::testing::{FakeOpenAi, RecordingSleep};
use logline_openai::{Jitter, OpenAiProvider, RetryPolicy};
use serde_json::{json, Value};

pub const MODEL: &str = "gpt-5.4-mini";

/// A recorded SSE fixture from `tests/fixtures/`.
pub fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn weather_tool() -> ToolDefinition {
    ToolDefinition {
        name: "get_weather".into(),
        description: "Current weather for a city.".into(),
        parameters: json!({"type":"object","properties":{"city":{"type":"string"}},
                           "required":["city"],"additionalProperties":false}),
        strict: true,
    }
}

pub fn time_tool() -> ToolDefinition {
    ToolDefinition {
        name: "get_time".into(),
        description: String::new(),
        parameters: json!({"type":"object","properties":{"tz":{"type":"string"}},
                           "required":["tz"],"additionalProperties":false}),
        strict: false,
    }
}

/// A request with every feature: instructions, history with a tool round trip, two tools,
/// forced tool choice, no parallel calls, structured output, token cap.
pub fn full_request() -> LlmRequest {
    LlmRequest {
        model: MODEL.into(),
        instructions: Some("You are a weather bot.".into()),
        messages: vec![
            Message::system("Prefer metric units."),
            Message::user("Weather in Boston?"),
            Message::Assistant {
                content: Some("Checking.".into()),
                tool_calls: vec![ToolCallRequest {
                    id: "call_abc".into(),
                    name: "get_weather".into(),
                    arguments: json!({"city": "Boston"}),
                }],
            },
            Message::Tool {
                call_id: "call_abc".into(),
                content: "{\"temp\":22}".into(),
            },
        ],
        tools: vec![weather_tool(), time_tool()],
        tool_choice: ToolChoice::Function("get_weather".into()),
        parallel_tool_calls: false,
        output_schema: Some(OutputSchema {
            name: "answer".into(),
            schema: json!({"type":"object","properties":{"summary":{"type":"string"}},
                           "required":["summary"],"additionalProperties":false}),
            strict: true,
        }),
        temperature: None,
        max_output_tokens: Some(1024),
        metadata: Default::default(),
    }
}

pub fn simple_request(text: &str) -> LlmRequest {
    LlmRequest {
        model: MODEL.into(),
        messages: vec![Message::user(text)],
        ..Default::default()
    }
}

/// A provider on `fake` that records retry waits and has no jitter.
pub fn provider(fake: &FakeOpenAi, chat: bool) -> (OpenAiProvider, Arc<RecordingSleep>) {
    let sleep = RecordingSleep::new();
    let mut b = fake
        .config()
        .sleeper(sleep.clone())
        .retry(RetryPolicy::default().with_jitter(Jitter::None));
    if chat {
        b = b.chat_completions();
    }
    (OpenAiProvider::new(b.build().unwrap()).unwrap(), sleep)
}

pub fn json_of(v: &[u8]) -> Value {
    serde_json::from_slice(v).unwrap()
}

/// Collects a stream into its events; an error ends the collection.
pub async fn collect(
    mut s: futures::stream::BoxStream<'static, logline_core::Result<LlmStreamEvent>>,
) -> (Vec<LlmStreamEvent>, Option<logline_core::Error>) {
    use futures::StreamExt;
    let mut events = Vec::new();
    while let Some(item) = s.next().await {
        match item {
            Ok(e) => events.push(e),
            Err(e) => return (events, Some(e)),
        }
    }
    (events, None)
}

pub fn text_of(events: &[LlmStreamEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            LlmStreamEvent::TextDelta { delta } => Some(delta.as_str()),
            _ => None,
        })
        .collect()
}
