//! Provider overhead without network: request building and response parsing for the
//! Responses and Chat Completions codecs, plus SSE stream assembly.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use futures::StreamExt;
use logline_core::llm::{
    LlmRequest, Message, OutputSchema, ToolCallRequest, ToolChoice, ToolDefinition,
};
use logline_openai::{OpenAiConfig, OpenAiProvider};
use serde_json::json;

fn tools() -> Vec<ToolDefinition> {
    let mk = |name: &str, desc: &str, props: serde_json::Value, required: &[&str]| ToolDefinition {
        name: name.into(),
        description: desc.into(),
        parameters: json!({"type":"object","properties":props,"required":required,
                           "additionalProperties":false}),
        strict: true,
    };
    vec![
        mk(
            "get_weather",
            "Current weather for a city.",
            json!({"city":{"type":"string"},"units":{"type":"string","enum":["metric","imperial"]}}),
            &["city", "units"],
        ),
        mk(
            "search_email",
            "Search the user's mailbox.",
            json!({"query":{"type":"string"},"limit":{"type":"integer"}}),
            &["query", "limit"],
        ),
        mk(
            "send_email",
            "Send an email on the user's behalf.",
            json!({"to":{"type":"array","items":{"type":"string"}},"subject":{"type":"string"},
                  "body":{"type":"string"}}),
            &["to", "subject", "body"],
        ),
        mk(
            "create_calendar_event",
            "Create a calendar event.",
            json!({"title":{"type":"string"},"start":{"type":"string"},"end":{"type":"string"},
                  "attendees":{"type":"array","items":{"type":"string"}}}),
            &["title", "start", "end", "attendees"],
        ),
    ]
}

/// A realistic agent turn: instructions, 10 messages incl. a tool round trip, 4 tools.
fn request() -> LlmRequest {
    let mut messages = vec![Message::system("Be concise. Use tools when needed.")];
    for i in 0..3 {
        messages.push(Message::user(format!(
            "Question {i}: what's on my calendar and the weather in Boston tomorrow?"
        )));
        messages.push(Message::Assistant {
            content: Some(format!(
                "Answer {i}: you have two meetings; it will be 22 °C and sunny."
            )),
            tool_calls: vec![],
        });
    }
    messages.push(Message::user("Email Alice the forecast."));
    messages.push(Message::Assistant {
        content: None,
        tool_calls: vec![ToolCallRequest {
            id: "call_unLAR8MvFNptuiZK6K6HCy5k".into(),
            name: "get_weather".into(),
            arguments: json!({"city": "Boston, MA", "units": "metric"}),
        }],
    });
    messages.push(Message::Tool {
        call_id: "call_unLAR8MvFNptuiZK6K6HCy5k".into(),
        content: "{\"temp\":22,\"conditions\":\"sunny\",\"wind_kph\":12}".into(),
    });
    LlmRequest {
        model: "gpt-5.4-mini".into(),
        instructions: Some("You are LogLine's executor agent. Follow the user's instructions, call tools with exact arguments and never invent data.".into()),
        messages,
        tools: tools(),
        tool_choice: ToolChoice::Auto,
        parallel_tool_calls: true,
        output_schema: None,
        temperature: None,
        max_output_tokens: Some(1024),
        metadata: Default::default(),
    }
}

fn structured_request() -> LlmRequest {
    LlmRequest {
        output_schema: Some(OutputSchema {
            name: "route".into(),
            schema: json!({"type":"object","properties":{"intent":{"type":"string"},
                "needs_tools":{"type":"boolean"},"risk_level":{"type":"string"}},
                "required":["intent","needs_tools","risk_level"],"additionalProperties":false}),
            strict: true,
        }),
        tools: vec![],
        ..request()
    }
}

const RESPONSES_BODY: &str = r#"{"id":"resp_67ca09c5efe0819096d0511c92b8c890","object":"response","created_at":1741294021,"status":"completed","error":null,"incomplete_details":null,"instructions":null,"max_output_tokens":1024,"model":"gpt-5.4-mini-2026-03-17","output":[{"type":"reasoning","id":"rs_1","summary":[]},{"type":"message","id":"msg_67ca09c6bedc8190a7abfec07b1a1332","status":"completed","role":"assistant","content":[{"type":"output_text","text":"I'll send Alice the forecast now: 22 °C and sunny in Boston tomorrow.","annotations":[]}]},{"type":"function_call","id":"fc_67ca09c6bedc8190a7abfec07b1a1333","call_id":"call_9aX2pQ","name":"send_email","arguments":"{\"to\":[\"alice@example.com\"],\"subject\":\"Boston forecast\",\"body\":\"Tomorrow: 22 °C and sunny, wind 12 km/h.\"}","status":"completed"}],"parallel_tool_calls":true,"previous_response_id":null,"reasoning":{"effort":"low","summary":null},"store":false,"temperature":1.0,"text":{"format":{"type":"text"}},"tool_choice":"auto","tools":[],"top_p":1.0,"truncation":"disabled","usage":{"input_tokens":1310,"input_tokens_details":{"cached_tokens":1024},"output_tokens":87,"output_tokens_details":{"reasoning_tokens":24},"total_tokens":1397},"user":null,"metadata":{}}"#;

const CHAT_BODY: &str = r#"{"id":"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT","object":"chat.completion","created":1741570283,"model":"gpt-5.4-mini-2026-03-17","choices":[{"index":0,"message":{"role":"assistant","content":"I'll send Alice the forecast now: 22 °C and sunny in Boston tomorrow.","refusal":null,"tool_calls":[{"id":"call_9aX2pQ","type":"function","function":{"name":"send_email","arguments":"{\"to\":[\"alice@example.com\"],\"subject\":\"Boston forecast\",\"body\":\"Tomorrow: 22 °C and sunny, wind 12 km/h.\"}"}}],"annotations":[]},"logprobs":null,"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":1310,"completion_tokens":87,"total_tokens":1397,"prompt_tokens_details":{"cached_tokens":1024,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":24,"audio_tokens":0}},"service_tier":"default","system_fingerprint":"fp_06737a9306"}"#;

const STRUCTURED_BODY: &str = r#"{"id":"resp_r","object":"response","created_at":1741294021,"status":"completed","error":null,"incomplete_details":null,"model":"gpt-5.4-nano","output":[{"type":"message","id":"msg_r","status":"completed","role":"assistant","content":[{"type":"output_text","text":"{\"intent\":\"send_email\",\"needs_tools\":true,\"risk_level\":\"medium\"}","annotations":[]}]}],"usage":{"input_tokens":412,"input_tokens_details":{"cached_tokens":0},"output_tokens":19,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":431}}"#;

fn provider(chat: bool) -> OpenAiProvider {
    let mut b = OpenAiConfig::builder()
        .base_url("http://127.0.0.1:9/v1")
        .api_key("sk-bench");
    if chat {
        b = b.chat_completions();
    }
    OpenAiProvider::new(b.build().unwrap()).unwrap()
}

fn bench(c: &mut Criterion) {
    let responses = provider(false);
    let chat = provider(true);
    let req = request();
    let routed = structured_request();

    let mut g = c.benchmark_group("responses");
    g.bench_function("encode_request", |b| {
        b.iter(|| responses.encode_request(black_box(&req), false).unwrap())
    });
    g.bench_function("decode_response", |b| {
        b.iter(|| {
            responses
                .decode_response(black_box(&req), RESPONSES_BODY.as_bytes())
                .unwrap()
        })
    });
    g.bench_function("encode_plus_decode", |b| {
        b.iter(|| {
            let body = responses.encode_request(black_box(&req), false).unwrap();
            black_box(body);
            responses
                .decode_response(black_box(&req), RESPONSES_BODY.as_bytes())
                .unwrap()
        })
    });
    g.bench_function("router_structured_round_trip", |b| {
        b.iter(|| {
            let body = responses.encode_request(black_box(&routed), false).unwrap();
            black_box(body);
            responses
                .decode_response(black_box(&routed), STRUCTURED_BODY.as_bytes())
                .unwrap()
        })
    });
    g.finish();

    let mut g = c.benchmark_group("chat_completions");
    g.bench_function("encode_request", |b| {
        b.iter(|| chat.encode_request(black_box(&req), false).unwrap())
    });
    g.bench_function("decode_response", |b| {
        b.iter(|| {
            chat.decode_response(black_box(&req), CHAT_BODY.as_bytes())
                .unwrap()
        })
    });
    g.finish();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let responses_sse = Bytes::from_static(include_bytes!(
        "../tests/fixtures/responses_function_calls.sse"
    ));
    let chat_sse = Bytes::from_static(include_bytes!("../tests/fixtures/chat_tool_calls.sse"));
    let mut g = c.benchmark_group("stream_decode");
    g.bench_function("responses_function_calls_sse", |b| {
        b.to_async(&rt).iter(|| async {
            let s = responses.decode_sse(&req, responses_sse.clone()).unwrap();
            s.collect::<Vec<_>>().await
        })
    });
    g.bench_function("chat_tool_calls_sse", |b| {
        b.to_async(&rt).iter(|| async {
            let s = chat.decode_sse(&req, chat_sse.clone()).unwrap();
            s.collect::<Vec<_>>().await
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
