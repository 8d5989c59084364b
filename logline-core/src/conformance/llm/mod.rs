//! LLM provider checks, run through an [`LlmFixture`]: the provider under test plus a script
//! of what the model behind it answers.
//!
//! The fixture protocol is small so that a test double and a fake HTTP server can both serve
//! it: before each call a check [`scripts`](LlmFixture::script) the model's next answer as a
//! [`ModelTurn`] (text in pieces, tool calls with their raw argument text, or a refusal), and
//! afterwards reads back what the model [`saw`](LlmFixture::seen), decoded to a
//! [`SeenRequest`]. A double answers with [`ModelTurn::to_response`]; a fake server encodes
//! the turn in its wire format (streamed or not, as the request asks) and decodes the requests
//! it received. [`ScriptedLlm`](crate::testing::ScriptedLlm) is a fixture of its own.

mod protocol;

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use serde_json::{json, Value};

use crate::llm::{
    FinishReason, LlmRequest, LlmResponse, LlmStreamEvent, Message, OutputSchema, TokenUsage,
    ToolCallRequest, ToolDefinition,
};
use crate::schema::SchemaCache;

pub use protocol::{
    LlmCapabilities, LlmFixture, ModelTurn, Refusal, ScriptedCall, SeenRequest, CONFORMANCE_MODEL,
    UNKNOWN_MODEL,
};

fn usage(input: u64, cached: u64, output: u64) -> TokenUsage {
    TokenUsage {
        input_tokens: input,
        cached_input_tokens: cached,
        output_tokens: output,
    }
}

fn ask(text: &str) -> LlmRequest {
    LlmRequest {
        model: CONFORMANCE_MODEL.into(),
        messages: vec![Message::user(text)],
        ..Default::default()
    }
}

fn weather_tool() -> ToolDefinition {
    ToolDefinition {
        name: "get_weather".into(),
        description: "Current weather of a city.".into(),
        parameters: json!({"type": "object",
                           "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
                           "required": ["city"]}),
        strict: false,
    }
}

fn time_tool() -> ToolDefinition {
    ToolDefinition {
        name: "get_time".into(),
        description: "Local time of a city.".into(),
        parameters: json!({"type": "object", "properties": {"city": {"type": "string"}},
                           "required": ["city"]}),
        strict: false,
    }
}

fn last_seen(fixture: &dyn LlmFixture) -> SeenRequest {
    fixture
        .seen()
        .pop()
        .expect("the model received the request")
}

async fn collect(fixture: &dyn LlmFixture, request: &LlmRequest) -> Vec<LlmStreamEvent> {
    let mut stream = fixture
        .provider()
        .stream(request)
        .await
        .expect("the stream opens");
    let mut events = Vec::new();
    while let Some(item) = stream.next().await {
        events.push(item.expect("stream item"));
    }
    events
}

/// The single `Completed` response of `events`, which must be the last event.
fn completed(events: &[LlmStreamEvent]) -> &LlmResponse {
    let count = events
        .iter()
        .filter(|e| matches!(e, LlmStreamEvent::Completed { .. }))
        .count();
    assert_eq!(count, 1, "exactly one Completed event: {events:?}");
    match events.last() {
        Some(LlmStreamEvent::Completed { response }) => response,
        other => panic!("Completed must be the last event, got {other:?}"),
    }
}

fn text_deltas(events: &[LlmStreamEvent]) -> Vec<&str> {
    events
        .iter()
        .filter_map(|e| match e {
            LlmStreamEvent::TextDelta { delta } => Some(delta.as_str()),
            _ => None,
        })
        .collect()
}

/// A user message gets the model's text back, with a stop reason and the model's name.
pub async fn plain_completion_returns_text(fixture: Arc<dyn LlmFixture>) {
    assert!(!fixture.provider().name().is_empty(), "a provider is named");
    fixture.script(ModelTurn::text(
        &["Hello ", "from the model."],
        usage(12, 0, 4),
    ));
    let answer = fixture
        .provider()
        .complete(&ask("Say hello."))
        .await
        .expect("complete");
    assert_eq!(answer.text.as_deref(), Some("Hello from the model."));
    assert!(answer.tool_calls.is_empty());
    assert_eq!(answer.finish_reason, FinishReason::Stop);
    assert!(!answer.model.is_empty(), "the answering model is named");
    let seen = last_seen(fixture.as_ref());
    assert_eq!(seen.model, CONFORMANCE_MODEL);
    assert_eq!(seen.user_texts, vec!["Say hello.".to_string()]);
    assert!(seen.tools.is_empty() && seen.output_schema.is_none());
}

/// Input and output tokens come back exactly as the backend counted them.
pub async fn usage_is_reported(fixture: Arc<dyn LlmFixture>) {
    fixture.script(ModelTurn::text(&["Four."], usage(42, 0, 7)));
    let answer = fixture
        .provider()
        .complete(&ask("Two plus two?"))
        .await
        .expect("complete");
    assert_eq!(answer.usage, usage(42, 0, 7));
}

/// Cached input tokens are reported within the input tokens.
pub async fn cached_tokens_are_reported(fixture: Arc<dyn LlmFixture>) {
    fixture.script(ModelTurn::text(&["Again."], usage(1200, 1024, 3)));
    let answer = fixture
        .provider()
        .complete(&ask("Repeat yourself."))
        .await
        .expect("complete");
    assert_eq!(answer.usage, usage(1200, 1024, 3));
}

/// Offered functions reach the model; its tool call comes back with the call id, the
/// function name and the arguments parsed as JSON.
pub async fn tool_definitions_produce_tool_calls(fixture: Arc<dyn LlmFixture>) {
    let call = ScriptedCall::new(
        "call_weather_1",
        "get_weather",
        json!({"city": "Lisbon", "unit": "celsius"}),
    );
    fixture.script(ModelTurn::ToolCalls {
        calls: vec![call.clone()],
        usage: usage(80, 0, 15),
    });
    let request = LlmRequest {
        tools: vec![weather_tool(), time_tool()],
        ..ask("Weather in Lisbon?")
    };
    let answer = fixture
        .provider()
        .complete(&request)
        .await
        .expect("complete");
    assert_eq!(answer.tool_calls, vec![call.parsed()]);
    assert_eq!(
        answer.tool_calls[0].arguments,
        json!({"city": "Lisbon", "unit": "celsius"})
    );
    assert_eq!(answer.finish_reason, FinishReason::ToolCalls);
    assert!(answer.text.as_deref().unwrap_or_default().is_empty());
    let seen = last_seen(fixture.as_ref());
    assert_eq!(
        seen.tools,
        vec!["get_weather".to_string(), "get_time".to_string()]
    );
}

/// Several calls of one turn come back in the model's order, each with its own id.
pub async fn parallel_tool_calls_keep_their_order(fixture: Arc<dyn LlmFixture>) {
    let calls = vec![
        ScriptedCall::new("call_a", "get_weather", json!({"city": "Lisbon"})),
        ScriptedCall::new("call_b", "get_time", json!({"city": "Porto"})),
        ScriptedCall::new("call_c", "get_weather", json!({"city": "Faro"})),
    ];
    fixture.script(ModelTurn::ToolCalls {
        calls: calls.clone(),
        usage: usage(90, 0, 30),
    });
    let request = LlmRequest {
        tools: vec![weather_tool(), time_tool()],
        ..ask("Weather in Lisbon and Faro, time in Porto?")
    };
    let answer = fixture
        .provider()
        .complete(&request)
        .await
        .expect("complete");
    let expected: Vec<_> = calls.iter().map(ScriptedCall::parsed).collect();
    assert_eq!(answer.tool_calls, expected);
}

/// A follow-up carrying the assistant's call and the tool's result shows both to the model,
/// linked by the call id.
pub async fn tool_results_round_trip(fixture: Arc<dyn LlmFixture>) {
    let call = ToolCallRequest {
        id: "call_weather_7".into(),
        name: "get_weather".into(),
        arguments: json!({"city": "Lisbon"}),
    };
    let result = json!({"temperature_c": 22, "sky": "clear"}).to_string();
    fixture.script(ModelTurn::text(&["22 °C and clear."], usage(120, 0, 6)));
    let request = LlmRequest {
        tools: vec![weather_tool()],
        messages: vec![
            Message::user("Weather in Lisbon?"),
            Message::Assistant {
                content: None,
                tool_calls: vec![call.clone()],
            },
            Message::Tool {
                call_id: call.id.clone(),
                content: result.clone(),
            },
        ],
        model: CONFORMANCE_MODEL.into(),
        ..Default::default()
    };
    let answer = fixture
        .provider()
        .complete(&request)
        .await
        .expect("complete");
    assert_eq!(answer.text.as_deref(), Some("22 °C and clear."));
    let seen = last_seen(fixture.as_ref());
    assert_eq!(seen.tool_calls, vec![call.clone()]);
    assert_eq!(seen.tool_results, vec![(call.id, result)]);
}

fn city_schema() -> Value {
    json!({"type": "object",
           "properties": {"city": {"type": "string"}, "temperature_c": {"type": "number"}},
           "required": ["city", "temperature_c"], "additionalProperties": false})
}

/// The schema reaches the model; the answer parses as JSON that matches it.
pub async fn structured_output_matches_the_schema(fixture: Arc<dyn LlmFixture>) {
    let answer_json = json!({"city": "Lisbon", "temperature_c": 22.5});
    let text = answer_json.to_string();
    let (head, tail) = text.split_at(text.len() / 2);
    fixture.script(ModelTurn::text(&[head, tail], usage(60, 0, 12)));
    let request = LlmRequest {
        output_schema: Some(OutputSchema {
            name: "city_weather".into(),
            schema: city_schema(),
            strict: true,
        }),
        ..ask("Weather in Lisbon as JSON.")
    };
    let answer = fixture
        .provider()
        .complete(&request)
        .await
        .expect("complete");
    let value = answer.json().expect("the answer is JSON");
    assert_eq!(value, answer_json);
    let violations = SchemaCache::new()
        .violations(&city_schema(), &value)
        .expect("valid schema");
    assert!(violations.is_empty(), "{violations:?}");
    assert_eq!(
        last_seen(fixture.as_ref()).output_schema,
        Some(city_schema())
    );
}

/// A stream's text deltas add up to the completed text (multi-byte characters included);
/// it ends with exactly one `Completed`.
pub async fn stream_ends_with_one_completed(fixture: Arc<dyn LlmFixture>) {
    let pieces = ["Olá, the quick ", "café ☕ ", "fox — done."];
    fixture.script(ModelTurn::text(&pieces, usage(20, 0, 5)));
    let events = collect(fixture.as_ref(), &ask("Tell a short story.")).await;
    let response = completed(&events);
    assert_eq!(response.text.as_deref(), Some(pieces.concat().as_str()));
    assert_eq!(text_deltas(&events).concat(), pieces.concat());
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, LlmStreamEvent::ToolCallDelta { .. })),
        "a text answer has no tool-call deltas"
    );
    assert_eq!(response.finish_reason, FinishReason::Stop);
    assert_eq!(last_seen(fixture.as_ref()).user_texts.len(), 1);
}

/// A stream's `Completed` carries the usage of the call.
pub async fn stream_reports_usage(fixture: Arc<dyn LlmFixture>) {
    fixture.script(ModelTurn::text(&["Short ", "answer."], usage(300, 0, 9)));
    let events = collect(fixture.as_ref(), &ask("Answer briefly.")).await;
    assert_eq!(completed(&events).usage, usage(300, 0, 9));
}

/// Text arrives in several deltas before the end, not in one piece.
pub async fn stream_yields_incremental_deltas(fixture: Arc<dyn LlmFixture>) {
    let pieces = ["Once ", "upon ", "a ", "time."];
    fixture.script(ModelTurn::text(&pieces, usage(20, 0, 4)));
    let events = collect(fixture.as_ref(), &ask("Begin a fairy tale.")).await;
    let deltas = text_deltas(&events);
    assert!(deltas.len() > 1, "several deltas, got {deltas:?}");
    assert!(deltas.iter().all(|d| !d.is_empty()));
    assert_eq!(deltas.concat(), pieces.concat());
    assert_eq!(
        completed(&events).text.as_deref(),
        Some(pieces.concat().as_str())
    );
}

/// Argument deltas grouped by call index: `(id, name, argument text)`.
fn assembled_deltas(
    events: &[LlmStreamEvent],
) -> BTreeMap<u32, (Option<String>, Option<String>, String)> {
    let mut assembled: BTreeMap<u32, (Option<String>, Option<String>, String)> = BTreeMap::new();
    for e in events {
        if let LlmStreamEvent::ToolCallDelta {
            index,
            id,
            name,
            arguments_delta,
        } = e
        {
            let entry = assembled.entry(*index).or_default();
            entry.0 = entry.0.take().or_else(|| id.clone());
            entry.1 = entry.1.take().or_else(|| name.clone());
            entry.2.push_str(arguments_delta);
        }
    }
    assembled
}

async fn assert_streamed_calls(fixture: &dyn LlmFixture, calls: Vec<ScriptedCall>) {
    fixture.script(ModelTurn::ToolCalls {
        calls: calls.clone(),
        usage: usage(70, 0, 14),
    });
    let request = LlmRequest {
        tools: vec![weather_tool(), time_tool()],
        ..ask("Weather and time in Lisbon?")
    };
    let events = collect(fixture, &request).await;
    let response = completed(&events);
    let expected: Vec<_> = calls.iter().map(ScriptedCall::parsed).collect();
    assert_eq!(response.tool_calls, expected);
    assert_eq!(response.finish_reason, FinishReason::ToolCalls);
    let assembled = assembled_deltas(&events);
    if assembled.is_empty() {
        return;
    }
    let indices: Vec<u32> = assembled.keys().copied().collect();
    assert_eq!(
        indices,
        (0..calls.len() as u32).collect::<Vec<_>>(),
        "one index per call"
    );
    for ((id, name, arguments), call) in assembled.values().zip(&expected) {
        assert_eq!(id.as_deref(), Some(call.id.as_str()));
        assert_eq!(name.as_deref(), Some(call.name.as_str()));
        let parsed: Value = serde_json::from_str(arguments).expect("deltas add up to JSON");
        assert_eq!(parsed, call.arguments);
    }
}

/// A streamed tool call ends in a `Completed` carrying the parsed call; argument deltas, if
/// any, add up to the same arguments under the same id and name.
pub async fn stream_assembles_tool_calls(fixture: Arc<dyn LlmFixture>) {
    let call = ScriptedCall::new(
        "call_weather_9",
        "get_weather",
        json!({"city": "São Paulo", "unit": "celsius"}),
    );
    assert_streamed_calls(fixture.as_ref(), vec![call]).await;
}

/// Several streamed calls of one turn keep their order, ids and arguments apart.
pub async fn stream_assembles_parallel_tool_calls(fixture: Arc<dyn LlmFixture>) {
    let calls = vec![
        ScriptedCall::new("call_p1", "get_weather", json!({"city": "Lisbon"})),
        ScriptedCall::new("call_p2", "get_time", json!({"city": "Zürich"})),
    ];
    assert_streamed_calls(fixture.as_ref(), calls).await;
}

async fn assert_refused(fixture: &dyn LlmFixture, refusal: Refusal, request: &LlmRequest) {
    fixture.script(ModelTurn::Refuse(refusal));
    let e = fixture
        .provider()
        .complete(request)
        .await
        .expect_err("the backend refuses");
    assert_eq!(e.kind(), refusal.kind(), "{e}");
    assert_eq!(e.is_retryable(), refusal.retryable(), "{e}");

    fixture.script(ModelTurn::Refuse(refusal));
    let e = match fixture.provider().stream(request).await {
        Err(e) => e,
        Ok(mut stream) => match stream.next().await {
            Some(Err(e)) => e,
            other => panic!("a refused stream fails first, got {other:?}"),
        },
    };
    assert_eq!(e.kind(), refusal.kind(), "{e}");
    assert_eq!(e.is_retryable(), refusal.retryable(), "{e}");
}

/// Asking for a model the backend does not know is a `NotFound` error (complete and
/// stream), not a panic and not a retryable failure.
pub async fn unknown_model_is_a_typed_error(fixture: Arc<dyn LlmFixture>) {
    let request = LlmRequest {
        model: UNKNOWN_MODEL.into(),
        ..ask("Hello?")
    };
    assert_refused(fixture.as_ref(), Refusal::UnknownModel, &request).await;
    assert_eq!(last_seen(fixture.as_ref()).model, UNKNOWN_MODEL);
}

/// A rate limit is a retryable `RateLimited` error.
pub async fn rate_limits_are_retryable_errors(fixture: Arc<dyn LlmFixture>) {
    assert_refused(fixture.as_ref(), Refusal::RateLimited, &ask("Hello?")).await;
}

/// Rejected credentials are a final `Unauthorized` error.
pub async fn rejected_credentials_are_typed_errors(fixture: Arc<dyn LlmFixture>) {
    assert_refused(fixture.as_ref(), Refusal::Unauthorized, &ask("Hello?")).await;
}
