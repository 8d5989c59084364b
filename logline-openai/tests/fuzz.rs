//! Fuzz targets for what the adapter reads from a server: SSE streams (Responses and Chat
//! Completions events, any bytes, cut into any chunks) and response bodies.
//!
//! Inputs are recorded answers with structural mutations of their JSON, mangled bytes and
//! SSE-token soup. Each case checks: no panic; a stream ends with exactly one terminal item
//! (`Completed` or an error) and gives the same items however the body is chunked; a decoded
//! answer holds the adapter's promises (tool calls mean `tool_calls`, structured output is
//! JSON). Cases per target: `LOGLINE_FUZZ_CASES` (see `logline_core::testing::fuzz`).

use bytes::Bytes;
use futures::StreamExt;
use logline_core::llm::{
    FinishReason, LlmRequest, LlmResponse, LlmStreamEvent, Message, OutputSchema, ToolDefinition,
};
use logline_core::testing::fuzz::{self, mangled_text, mutation};
use logline_openai::testing::{
    chat_sse_text, chat_sse_tool_calls, chat_text, chat_tool_calls, responses_function_calls,
    responses_sse_function_calls, responses_sse_text, responses_text, Tokens,
};
use logline_openai::{ApiMode, OpenAiConfig, OpenAiProvider};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::{json, Value};

/// Default cases per target under `cargo test`.
const CASES: u32 = 256;

const MODEL: &str = "gpt-fuzz";

const WORDS: &[&str] = &[
    "type",
    "response",
    "status",
    "completed",
    "incomplete",
    "failed",
    "cancelled",
    "in_progress",
    "output",
    "output_text",
    "refusal",
    "message",
    "content",
    "function_call",
    "call_id",
    "name",
    "arguments",
    "item_id",
    "output_index",
    "delta",
    "text",
    "usage",
    "input_tokens",
    "output_tokens",
    "incomplete_details",
    "reason",
    "max_output_tokens",
    "content_filter",
    "error",
    "code",
    "response.created",
    "response.output_text.delta",
    "response.output_item.added",
    "response.output_item.done",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.done",
    "response.completed",
    "response.incomplete",
    "response.failed",
    "error",
    "choices",
    "finish_reason",
    "stop",
    "length",
    "tool_calls",
    "index",
    "id",
    "function",
    "get_weather",
    "ticketing_list_open",
    "{\"city\":\"Boston\"}",
    "{\"summary\":\"ok\"}",
    "{\"cut",
    "[DONE]",
    "",
];

fn tokens() -> Tokens {
    Tokens::new(12, 2, 7)
}

fn provider(mode: ApiMode) -> OpenAiProvider {
    let config = OpenAiConfig::builder()
        .api_key("sk-fuzz")
        .base_url("http://127.0.0.1:9")
        .mode(mode)
        .max_event_bytes(4096)
        .max_line_bytes(2048)
        .max_response_bytes(8192)
        .build()
        .unwrap_or_else(|e| panic!("config: {e}"));
    OpenAiProvider::new(config).unwrap_or_else(|e| panic!("provider: {e}"))
}

fn request(structured: bool) -> LlmRequest {
    let tool = |name: &str| ToolDefinition {
        name: name.into(),
        description: String::new(),
        parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}}),
        strict: false,
    };
    LlmRequest {
        model: MODEL.into(),
        messages: vec![Message::user("Weather?")],
        tools: vec![tool("get_weather"), tool("ticketing.list_open")],
        output_schema: structured.then(|| OutputSchema {
            name: "answer".into(),
            schema: json!({"type": "object"}),
            strict: true,
        }),
        ..Default::default()
    }
}

/// The promises a decoded answer keeps.
fn check_answer(answer: &LlmResponse, structured: bool) -> Result<(), TestCaseError> {
    if !answer.tool_calls.is_empty() && answer.finish_reason == FinishReason::Stop {
        return Err(TestCaseError::fail(format!(
            "tool calls finishing with `stop`: {answer:?}"
        )));
    }
    if structured && answer.tool_calls.is_empty() {
        let text = answer.text.as_deref().unwrap_or_default();
        if serde_json::from_str::<Value>(text.trim()).is_err() {
            return Err(TestCaseError::fail(format!(
                "structured answer is not JSON: {answer:?}"
            )));
        }
    }
    if answer.model.is_empty() {
        return Err(TestCaseError::fail("answer without a model".to_string()));
    }
    Ok(())
}

// ------------------------------------------------------------------ response bodies

fn body_seeds() -> Vec<Value> {
    let calls = [
        ("call_1", "get_weather", "{\"city\":\"Boston\"}"),
        ("call_2", "ticketing_list_open", ""),
    ];
    let mut incomplete = responses_text(MODEL, "{\"summary\":", tokens());
    incomplete["status"] = json!("incomplete");
    incomplete["incomplete_details"] = json!({"reason": "max_output_tokens"});
    let mut failed = responses_text(MODEL, "", tokens());
    failed["status"] = json!("failed");
    failed["error"] = json!({"code": "server_error", "message": "boom"});
    let mut cut_chat = chat_text(MODEL, "{\"summary\": \"o", tokens());
    cut_chat["choices"][0]["finish_reason"] = json!("length");
    vec![
        responses_text(MODEL, "{\"summary\":\"ok\"}", tokens()),
        responses_function_calls(MODEL, &calls, tokens()),
        incomplete,
        failed,
        chat_text(MODEL, "{\"summary\":\"ok\"}", tokens()),
        chat_tool_calls(MODEL, &calls, tokens()),
        cut_chat,
    ]
}

fn body() -> BoxedStrategy<Vec<u8>> {
    let seeds = body_seeds();
    let texts: Vec<String> = seeds.iter().map(Value::to_string).collect();
    prop_oneof![
        3 => fuzz::mutated(seeds, WORDS).prop_map(|v| v.to_string().into_bytes()),
        1 => mangled_text(texts).prop_map(String::into_bytes),
        1 => proptest::collection::vec(any::<u8>(), 0..64),
    ]
    .boxed()
}

#[test]
fn response_bodies() {
    let providers = [
        provider(ApiMode::Responses),
        provider(ApiMode::ChatCompletions),
    ];
    let input = (body(), any::<bool>(), any::<bool>());
    fuzz::run(
        "response_bodies",
        CASES,
        input,
        |(body, chat, structured)| {
            let provider = &providers[usize::from(chat)];
            match provider.decode_response(&request(structured), &body) {
                Ok(answer) => check_answer(&answer, structured),
                Err(e) => {
                    if e.to_string().is_empty() {
                        return Err(TestCaseError::fail(format!("error without text: {e:?}")));
                    }
                    Ok(())
                }
            }
        },
    );
}

// ------------------------------------------------------------------ SSE streams

/// The recorded event sequences, as lists of event JSON.
fn stream_seeds() -> Vec<Value> {
    let sse = [
        responses_sse_text(MODEL, &["{\"summary\"", ":\"ok\"}"], tokens()),
        responses_sse_function_calls(
            MODEL,
            &[("call_1", "get_weather", &["{\"city\"", ":\"Boston\"}"][..])],
            tokens(),
        ),
        chat_sse_text(MODEL, &["{\"summary\"", ":\"ok\"}"], tokens()),
        chat_sse_tool_calls(
            MODEL,
            &[("call_1", "get_weather", &["{\"ci", "ty\":\"Boston\"}"][..])],
            tokens(),
        ),
    ];
    sse.iter()
        .map(|body| {
            Value::Array(
                body.lines()
                    .filter_map(|l| l.strip_prefix("data: "))
                    .map(|d| serde_json::from_str(d).unwrap_or_else(|_| Value::String(d.into())))
                    .collect(),
            )
        })
        .collect()
}

/// SSE lines other than event data.
const NOISE: &[&str] = &[
    ": keep-alive",
    "event: message",
    "id: 7",
    "retry: 1000",
    "data",
    "data:",
    "data: [DONE]",
    "",
    "\u{FEFF}data: {}",
    "data: {\"type\":",
];

/// A stream: a recorded sequence with mutated events, framed with a random line ending and
/// noise lines between events.
fn framed_stream() -> BoxedStrategy<String> {
    (
        proptest::sample::select(stream_seeds()),
        proptest::collection::vec(mutation(WORDS), 0..4),
        proptest::sample::select(&["\n", "\r\n", "\r"][..]),
        proptest::collection::vec((any::<u32>(), proptest::sample::select(NOISE)), 0..3),
        any::<bool>(),
    )
        .prop_map(|(seed, edits, eol, noise, done)| {
            let events = match fuzz::apply(seed, &edits) {
                Value::Array(events) => events,
                other => vec![other],
            };
            let mut frames: Vec<String> = events
                .iter()
                .map(|e| match e {
                    Value::String(s) => format!("data: {s}{eol}{eol}"),
                    other => format!("data: {other}{eol}{eol}"),
                })
                .collect();
            for (at, line) in noise {
                let at = at as usize % (frames.len() + 1);
                frames.insert(at, format!("{line}{eol}"));
            }
            if done {
                frames.push(format!("data: [DONE]{eol}{eol}"));
            }
            frames.concat()
        })
        .boxed()
}

fn stream_body() -> BoxedStrategy<Vec<u8>> {
    const SOUP: &[&str] = &[
        "data:", "data: ", "event:", ":", "\n", "\r\n", "\r", "{", "}", "\"", "[DONE]", "\u{FEFF}",
    ];
    prop_oneof![
        4 => framed_stream().prop_map(String::into_bytes),
        1 => framed_stream().prop_flat_map(|s| mangled_text(vec![s])).prop_map(String::into_bytes),
        1 => proptest::collection::vec(
            prop_oneof![
                proptest::sample::select(SOUP).prop_map(|s| s.as_bytes().to_vec()),
                proptest::collection::vec(any::<u8>(), 0..8),
            ],
            0..40,
        )
        .prop_map(|parts| parts.concat()),
    ]
    .boxed()
}

/// The body cut at the given points.
fn chunked(body: &[u8], cuts: &[u32]) -> Vec<Bytes> {
    let mut at: Vec<usize> = cuts
        .iter()
        .map(|c| *c as usize % (body.len() + 1))
        .collect();
    at.sort_unstable();
    let mut chunks = Vec::new();
    let mut from = 0;
    for to in at.into_iter().chain([body.len()]) {
        chunks.push(Bytes::copy_from_slice(&body[from..to]));
        from = to;
    }
    chunks
}

/// Every item of the decoded stream, errors as their text.
fn decode(
    rt: &tokio::runtime::Runtime,
    provider: &OpenAiProvider,
    request: &LlmRequest,
    chunks: Vec<Bytes>,
) -> Result<Vec<Result<LlmStreamEvent, String>>, TestCaseError> {
    rt.block_on(async {
        let stream = provider
            .decode_sse_chunks(request, chunks)
            .map_err(|e| TestCaseError::fail(format!("no stream: {e}")))?;
        Ok(stream
            .map(|item| item.map_err(|e| e.to_string()))
            .collect()
            .await)
    })
}

#[test]
fn sse_streams() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("runtime: {e}"));
    let providers = [
        provider(ApiMode::Responses),
        provider(ApiMode::ChatCompletions),
    ];
    let input = (
        stream_body(),
        proptest::collection::vec(any::<u32>(), 0..8),
        any::<bool>(),
        any::<bool>(),
    );
    fuzz::run(
        "sse_streams",
        CASES,
        input,
        |(body, cuts, chat, structured)| {
            let provider = &providers[usize::from(chat)];
            let request = request(structured);
            let whole = decode(&rt, provider, &request, vec![Bytes::from(body.clone())])?;
            let pieces = decode(&rt, provider, &request, chunked(&body, &cuts))?;
            if pieces != whole {
                return Err(TestCaseError::fail(format!(
                    "chunking changed the stream:\n{whole:?}\n{pieces:?}"
                )));
            }
            let terminal = |item: &Result<LlmStreamEvent, String>| {
                matches!(item, Err(_) | Ok(LlmStreamEvent::Completed { .. }))
            };
            let Some((last, rest)) = whole.split_last() else {
                return Err(TestCaseError::fail("empty stream".to_string()));
            };
            if !terminal(last) || rest.iter().any(terminal) {
                return Err(TestCaseError::fail(format!(
                    "stream does not end with exactly one terminal item: {whole:?}"
                )));
            }
            match last {
                Ok(LlmStreamEvent::Completed { response }) => check_answer(response, structured),
                _ => Ok(()),
            }
        },
    );
}
