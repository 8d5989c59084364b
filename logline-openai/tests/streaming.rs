//! Streaming: the recorded Responses SSE sequences and Chat Completions chunks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use logline_core::llm::{FinishReason, LlmProvider, LlmStreamEvent, TokenUsage};
use logline_core::ErrorKind;
use logline_openai::testing::{
    chat_sse_text, chat_sse_tool_calls, responses_sse_function_calls, responses_sse_text,
    FakeOpenAi, FakeReply, Tokens,
};
use serde_json::json;

fn completed(events: &[LlmStreamEvent]) -> &logline_core::llm::LlmResponse {
    match events.last() {
        Some(LlmStreamEvent::Completed { response }) => response,
        other => panic!("last event is not Completed: {other:?}"),
    }
}

#[tokio::test]
async fn responses_text_stream() {
    let fake = FakeOpenAi::start().await;
    fake.push(FakeReply::sse(fixture("responses_text.sse")));
    let (provider, _) = provider(&fake, false);
    let (events, err) = collect(provider.stream(&simple_request("Hi")).await.unwrap()).await;
    assert!(err.is_none(), "{err:?}");
    // Exactly three deltas and the completion: keepalive, comments and unknown types ignored.
    assert_eq!(
        events[..3],
        [
            LlmStreamEvent::TextDelta { delta: "Hi".into() },
            LlmStreamEvent::TextDelta {
                delta: " there, ".into()
            },
            LlmStreamEvent::TextDelta {
                delta: "Bostonian ☀️!".into()
            },
        ]
    );
    assert_eq!(events.len(), 4);
    let r = completed(&events);
    assert_eq!(r.text.as_deref(), Some("Hi there, Bostonian ☀️!"));
    assert_eq!(r.model, "gpt-5.4-mini-2026-03-17");
    assert_eq!(r.finish_reason, FinishReason::Stop);
    assert_eq!(
        r.usage,
        TokenUsage {
            input_tokens: 310,
            cached_input_tokens: 256,
            output_tokens: 9
        }
    );
    let req = &fake.requests()[0];
    assert_eq!(req.json()["stream"], json!(true));
    assert_eq!(req.header("accept"), Some("text/event-stream"));
}

#[tokio::test]
async fn responses_stream_split_into_tiny_chunks() {
    // 7-byte reads split frames, JSON and the UTF-8 of the emoji.
    let fake = FakeOpenAi::start().await;
    fake.push(FakeReply::sse_chunked(
        fixture("responses_text.sse"),
        7,
        Duration::ZERO,
    ));
    let (provider, _) = provider(&fake, false);
    let (events, err) = collect(provider.stream(&simple_request("Hi")).await.unwrap()).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(text_of(&events), "Hi there, Bostonian ☀️!");
    assert_eq!(completed(&events).usage.cached_input_tokens, 256);
}

#[tokio::test]
async fn responses_parallel_function_call_stream() {
    let fake = FakeOpenAi::start().await;
    fake.push(FakeReply::sse(fixture("responses_function_calls.sse")));
    let (provider, _) = provider(&fake, false);
    let mut req = simple_request("Weather in Boston and Paris?");
    let mut tool = weather_tool();
    tool.name = "get_current_weather".into();
    req.tools = vec![tool];
    let (events, err) = collect(provider.stream(&req).await.unwrap()).await;
    assert!(err.is_none(), "{err:?}");
    let delta = |index: u32, id: Option<&str>, name: Option<&str>, args: &str| {
        LlmStreamEvent::ToolCallDelta {
            index,
            id: id.map(String::from),
            name: name.map(String::from),
            arguments_delta: args.into(),
        }
    };
    assert_eq!(
        events[..events.len() - 1],
        [
            delta(
                0,
                Some("call_unLAR8MvFNptuiZK6K6HCy5k"),
                Some("get_current_weather"),
                ""
            ),
            delta(0, None, None, "{\""),
            delta(0, None, None, "location"),
            delta(0, None, None, "\":\"Boston, MA\"}"),
            delta(1, Some("call_9aX2pQ"), Some("get_current_weather"), ""),
            delta(1, None, None, "{\"location\":"),
            delta(1, None, None, "\"Paris\"}"),
        ]
    );
    let r = completed(&events);
    assert_eq!(r.finish_reason, FinishReason::ToolCalls);
    assert_eq!(r.tool_calls.len(), 2);
    assert_eq!(r.tool_calls[0].id, "call_unLAR8MvFNptuiZK6K6HCy5k");
    assert_eq!(r.tool_calls[0].arguments, json!({"location": "Boston, MA"}));
    assert_eq!(r.tool_calls[1].arguments, json!({"location": "Paris"}));
    assert_eq!(r.usage.output_tokens, 87);
}

#[tokio::test]
async fn responses_mid_stream_error_event() {
    let fake = FakeOpenAi::start().await;
    fake.push(FakeReply::sse(fixture("responses_error.sse")));
    let (provider, _) = provider(&fake, false);
    let (events, err) = collect(provider.stream(&simple_request("x")).await.unwrap()).await;
    assert_eq!(
        events,
        vec![LlmStreamEvent::TextDelta {
            delta: "Partial".into()
        }]
    );
    let err = err.expect("error");
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.is_retryable());
    assert!(err.to_string().contains("server_error"), "{err}");
    // A mid-stream failure is surfaced, not retried (deltas were already delivered).
    assert_eq!(fake.request_count(), 1);
}

#[tokio::test]
async fn responses_failed_event() {
    let fake = FakeOpenAi::start().await;
    fake.push(FakeReply::sse(fixture("responses_failed.sse")));
    let (provider, _) = provider(&fake, false);
    let (events, err) = collect(provider.stream(&simple_request("x")).await.unwrap()).await;
    assert!(events.is_empty());
    let err = err.expect("error");
    assert_eq!(err.kind(), ErrorKind::RateLimited);
    assert!(err.to_string().contains("Rate limit reached"), "{err}");
}

#[tokio::test]
async fn responses_incomplete_event() {
    let fake = FakeOpenAi::start().await;
    fake.push(FakeReply::sse(fixture("responses_incomplete.sse")));
    let (provider, _) = provider(&fake, false);
    let (events, err) = collect(provider.stream(&simple_request("x")).await.unwrap()).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(events.len(), 2, "the delta, then the cut-off answer");
    let LlmStreamEvent::Completed { response } = &events[1] else {
        panic!("{events:?}")
    };
    assert_eq!(response.finish_reason, FinishReason::Length);
    assert_eq!(response.text.as_deref(), Some(text_of(&events).as_str()));
}

#[tokio::test]
async fn responses_stream_cut_before_completion() {
    let full = fixture("responses_text.sse");
    let cut = &full[..full.find("event: response.completed").unwrap()];
    let fake = FakeOpenAi::start().await;
    fake.push(FakeReply::sse(cut));
    let (provider, _) = provider(&fake, false);
    let (events, err) = collect(provider.stream(&simple_request("x")).await.unwrap()).await;
    assert_eq!(text_of(&events), "Hi there, Bostonian ☀️!");
    let err = err.expect("error");
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.to_string().contains("ended before"), "{err}");
}

#[tokio::test]
async fn stream_idle_timeout() {
    let fake = FakeOpenAi::start().await;
    // The first frame arrives, then the server goes silent far longer than the timeout.
    let body = fixture("responses_text.sse");
    let first = body.find("\n\n").unwrap() + 2;
    fake.push(FakeReply::sse_chunked(body, first, Duration::from_secs(30)));
    let provider = logline_openai::OpenAiProvider::new(
        fake.config()
            .timeout(Duration::from_millis(300))
            .build()
            .unwrap(),
    )
    .unwrap();
    let (events, err) = collect(provider.stream(&simple_request("x")).await.unwrap()).await;
    assert!(events.is_empty());
    let err = err.expect("error");
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(err.to_string().contains("idle"), "{err}");
}

#[tokio::test]
async fn invalid_streamed_arguments_are_a_model_output_error() {
    let fake = FakeOpenAi::start().await;
    fake.push(FakeReply::sse(responses_sse_function_calls(
        MODEL,
        &[("call_1", "get_weather", &["{\"city\":", "\"Bos"])],
        Tokens::new(3, 0, 4),
    )));
    let (provider, _) = provider(&fake, false);
    let (events, err) = collect(provider.stream(&simple_request("x")).await.unwrap()).await;
    assert_eq!(events.len(), 3);
    let err = err.expect("error");
    assert!(
        matches!(err, logline_core::Error::ModelOutput(_)),
        "{err:?}"
    );
}

#[tokio::test]
async fn stream_setup_is_retried_before_headers() {
    let fake = FakeOpenAi::start().await;
    fake.push(
        FakeReply::error(503, "server_error", None, "overloaded").header("retry-after-ms", "20"),
    );
    fake.push(FakeReply::sse(responses_sse_text(
        MODEL,
        &["A", "B"],
        Tokens::new(5, 0, 2),
    )));
    let (provider, sleep) = provider(&fake, false);
    let (events, err) = collect(provider.stream(&simple_request("x")).await.unwrap()).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(text_of(&events), "AB");
    assert_eq!(fake.request_count(), 2);
    assert_eq!(sleep.waits(), vec![Duration::from_millis(20)]);
}

#[tokio::test]
async fn testing_builders_produce_the_documented_sequences() {
    // The builders the engine's golden-run test uses decode like the recorded fixtures.
    let fake = FakeOpenAi::start().await;
    let (provider, _) = provider(&fake, false);
    let req = simple_request("x");
    let sse = responses_sse_function_calls(
        MODEL,
        &[
            ("c1", "get_weather", &["{\"city\"", ":\"Rome\"}"]),
            ("c2", "get_time", &["{}"]),
        ],
        Tokens::new(10, 2, 3),
    );
    let (events, err) = collect(provider.decode_sse(&req, sse.into()).unwrap()).await;
    assert!(err.is_none(), "{err:?}");
    let r = completed(&events);
    assert_eq!(r.tool_calls.len(), 2);
    assert_eq!(r.tool_calls[0].arguments, json!({"city": "Rome"}));
    assert_eq!(r.usage.cached_input_tokens, 2);

    let sse = responses_sse_text(MODEL, &["x", "y"], Tokens::new(1, 0, 2));
    let (events, _) = collect(provider.decode_sse(&req, sse.into()).unwrap()).await;
    assert_eq!(completed(&events).text.as_deref(), Some("xy"));
}

// ---------------------------------------------------------------- chat completions

#[tokio::test]
async fn chat_tool_call_deltas_and_done() {
    let fake = FakeOpenAi::start().await;
    fake.push(FakeReply::sse(fixture("chat_tool_calls.sse")));
    let (provider, _) = provider(&fake, true);
    let mut req = simple_request("Weather and time?");
    req.tools = vec![weather_tool(), time_tool()];
    let (events, err) = collect(provider.stream(&req).await.unwrap()).await;
    assert!(err.is_none(), "{err:?}");
    let delta = |index: u32, id: Option<&str>, name: Option<&str>, args: &str| {
        LlmStreamEvent::ToolCallDelta {
            index,
            id: id.map(String::from),
            name: name.map(String::from),
            arguments_delta: args.into(),
        }
    };
    assert_eq!(
        events[..events.len() - 1],
        [
            delta(
                0,
                Some("call_DdmO9pD3xa9XTPNJ32zg2hcA"),
                Some("get_weather"),
                ""
            ),
            delta(0, None, None, "{\""),
            delta(0, None, None, "city\":\"Boston\"}"),
            delta(1, Some("call_2"), Some("get_time"), ""),
            delta(1, None, None, "{\"tz\":\"EST\"}"),
        ]
    );
    let r = completed(&events);
    assert_eq!(r.finish_reason, FinishReason::ToolCalls);
    assert_eq!(r.model, "qwen3:8b");
    assert_eq!(r.tool_calls[0].arguments, json!({"city": "Boston"}));
    assert_eq!(r.tool_calls[1].name, "get_time");
    assert_eq!(
        r.usage,
        TokenUsage {
            input_tokens: 120,
            cached_input_tokens: 64,
            output_tokens: 31
        }
    );
    let body = fake.requests()[0].json();
    assert_eq!(fake.requests()[0].path, "/v1/chat/completions");
    assert_eq!(body["stream"], json!(true));
    assert_eq!(body["stream_options"], json!({"include_usage": true}));
}

#[tokio::test]
async fn chat_text_stream_in_small_chunks() {
    let fake = FakeOpenAi::start().await;
    fake.push(FakeReply::sse_chunked(
        fixture("chat_text.sse"),
        5,
        Duration::ZERO,
    ));
    let (provider, _) = provider(&fake, true);
    let (events, err) = collect(provider.stream(&simple_request("hi")).await.unwrap()).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(
        events[..2],
        [
            LlmStreamEvent::TextDelta {
                delta: "Hello".into()
            },
            LlmStreamEvent::TextDelta {
                delta: " world".into()
            }
        ]
    );
    let r = completed(&events);
    assert_eq!(r.text.as_deref(), Some("Hello world"));
    assert_eq!(r.usage.input_tokens, 12);
    assert_eq!(r.usage.output_tokens, 2);
}

#[tokio::test]
async fn chat_stream_end_without_done() {
    let fake = FakeOpenAi::start().await;
    let (provider, _) = provider(&fake, true);
    // A finish_reason was seen: the answer is complete even without [DONE].
    let full = fixture("chat_text.sse");
    fake.push(FakeReply::sse(full.replace("data: [DONE]\n\n", "")));
    let (events, err) = collect(provider.stream(&simple_request("hi")).await.unwrap()).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(completed(&events).text.as_deref(), Some("Hello world"));
    // Cut before any finish_reason: an error.
    let cut = &full[..full.find("\"finish_reason\":\"stop\"").unwrap()];
    let cut = &cut[..cut.rfind("data:").unwrap()];
    fake.push(FakeReply::sse(cut));
    let (_, err) = collect(provider.stream(&simple_request("hi")).await.unwrap()).await;
    let err = err.expect("error");
    assert!(err.to_string().contains("[DONE]"), "{err}");
}

#[tokio::test]
async fn chat_mid_stream_error() {
    let fake = FakeOpenAi::start().await;
    fake.push(FakeReply::sse(
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n\
         data: {\"error\":{\"message\":\"CUDA out of memory\",\"code\":503}}\n\n",
    ));
    let (provider, _) = provider(&fake, true);
    let (events, err) = collect(provider.stream(&simple_request("hi")).await.unwrap()).await;
    assert_eq!(text_of(&events), "Hel");
    let err = err.expect("error");
    assert!(err.to_string().contains("CUDA out of memory"), "{err}");
}

#[tokio::test]
async fn chat_builders_round_trip() {
    let fake = FakeOpenAi::start().await;
    let (provider, _) = provider(&fake, true);
    let req = simple_request("x");
    let sse = chat_sse_tool_calls(
        MODEL,
        &[("c1", "get_weather", &["{\"ci", "ty\":\"Oslo\"}"])],
        Tokens::new(7, 0, 5),
    );
    let (events, err) = collect(provider.decode_sse(&req, sse.into()).unwrap()).await;
    assert!(err.is_none(), "{err:?}");
    assert_eq!(
        completed(&events).tool_calls[0].arguments,
        json!({"city": "Oslo"})
    );
    let sse = chat_sse_text(MODEL, &["a", "b"], Tokens::new(7, 3, 2));
    let (events, _) = collect(provider.decode_sse(&req, sse.into()).unwrap()).await;
    assert_eq!(completed(&events).text.as_deref(), Some("ab"));
    assert_eq!(completed(&events).usage.cached_input_tokens, 3);
}
