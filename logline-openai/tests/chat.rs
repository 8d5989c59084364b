//! Chat Completions mode: exact request bodies and non-streamed answers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use logline_core::llm::{
    FinishReason, LlmProvider, Message, TokenUsage, ToolCallRequest, ToolChoice,
};
use logline_core::{Error, ErrorKind};
use logline_openai::testing::{chat_text, chat_tool_calls, FakeOpenAi, FakeReply, Tokens};
use logline_openai::{ApiMode, OpenAiProvider};
use serde_json::json;

#[tokio::test]
async fn full_request_body_is_exact() {
    let fake = FakeOpenAi::start().await;
    fake.push(FakeReply::json(chat_text(
        "llama-3.1-8b-instruct",
        "{\"summary\":\"warm\"}",
        Tokens::new(50, 0, 6),
    )));
    let (provider, _) = provider(&fake, true);
    assert_eq!(provider.mode(), ApiMode::ChatCompletions);
    let answer = provider.complete(&full_request()).await.unwrap();
    let r = &fake.requests()[0];
    assert_eq!(r.path, "/v1/chat/completions");
    let expected = json!({
        "model": MODEL,
        "messages": [
            {"role":"system","content":"You are a weather bot."},
            {"role":"system","content":"Prefer metric units."},
            {"role":"user","content":"Weather in Boston?"},
            {"role":"assistant","content":"Checking.","tool_calls":[
                {"id":"call_abc","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Boston\"}"}}]},
            {"role":"tool","tool_call_id":"call_abc","content":"{\"temp\":22}"}
        ],
        "tools": [
            {"type":"function","function":{"name":"get_weather","description":"Current weather for a city.",
                "parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"],"additionalProperties":false},
                "strict":true}},
            {"type":"function","function":{"name":"get_time",
                "parameters":{"type":"object","properties":{"tz":{"type":"string"}},"required":["tz"],"additionalProperties":false},
                "strict":false}}
        ],
        "tool_choice": {"type":"function","function":{"name":"get_weather"}},
        "parallel_tool_calls": false,
        "response_format": {"type":"json_schema","json_schema":{"name":"answer",
            "schema":{"type":"object","properties":{"summary":{"type":"string"}},"required":["summary"],"additionalProperties":false},
            "strict":true}},
        "max_tokens": 1024,
        "stream": false
    });
    assert_eq!(r.json(), expected);
    assert_eq!(answer.json().unwrap(), json!({"summary": "warm"}));
    assert_eq!(answer.model, "llama-3.1-8b-instruct");
}

#[tokio::test]
async fn assistant_without_text_sends_null_content_and_cap_field_is_configurable() {
    let fake = FakeOpenAi::start().await;
    fake.push(FakeReply::json(chat_text(MODEL, "done", Tokens::default())));
    let provider = OpenAiProvider::new(
        fake.config()
            .chat_completions()
            .chat_max_completion_tokens(true)
            .build()
            .unwrap(),
    )
    .unwrap();
    let mut req = simple_request("x");
    req.messages.push(Message::Assistant {
        content: None,
        tool_calls: vec![ToolCallRequest {
            id: "call_1".into(),
            name: "get_time".into(),
            arguments: json!({"tz": "UTC"}),
        }],
    });
    req.messages.push(Message::Tool {
        call_id: "call_1".into(),
        content: "12:00".into(),
    });
    req.max_output_tokens = Some(64);
    provider.complete(&req).await.unwrap();
    let body = fake.requests()[0].json();
    assert_eq!(
        body["messages"][1],
        json!({"role":"assistant","content":null,"tool_calls":[
            {"id":"call_1","type":"function","function":{"name":"get_time","arguments":"{\"tz\":\"UTC\"}"}}]})
    );
    assert_eq!(body["max_completion_tokens"], json!(64));
    assert!(body.get("max_tokens").is_none());
    assert!(body.get("tools").is_none() && body.get("tool_choice").is_none());
}

#[tokio::test]
async fn tool_calls_answer_and_tool_choice_modes() {
    let fake = FakeOpenAi::start().await;
    let (provider, _) = provider(&fake, true);
    for (choice, wire) in [
        (ToolChoice::Auto, json!("auto")),
        (ToolChoice::None, json!("none")),
        (ToolChoice::Required, json!("required")),
    ] {
        fake.push(FakeReply::json(chat_tool_calls(
            MODEL,
            &[
                ("call_a", "get_weather", "{\"city\":\"Oslo\"}"),
                ("call_b", "get_time", "{\"tz\":\"CET\"}"),
            ],
            Tokens::new(80, 16, 20),
        )));
        let mut req = simple_request("Oslo?");
        req.tools = vec![weather_tool(), time_tool()];
        req.tool_choice = choice;
        req.parallel_tool_calls = true;
        let answer = provider.complete(&req).await.unwrap();
        let body = fake.requests().last().unwrap().json();
        assert_eq!(body["tool_choice"], wire);
        assert_eq!(body["parallel_tool_calls"], json!(true));
        assert_eq!(answer.finish_reason, FinishReason::ToolCalls);
        assert_eq!(answer.tool_calls.len(), 2);
        assert_eq!(answer.tool_calls[1].arguments, json!({"tz": "CET"}));
        assert_eq!(
            answer.usage,
            TokenUsage {
                input_tokens: 80,
                cached_input_tokens: 16,
                output_tokens: 20
            }
        );
    }
}

#[tokio::test]
async fn compatible_server_quirks() {
    let fake = FakeOpenAi::start().await;
    let (provider, _) = provider(&fake, true);
    // Arguments as an object, no call id, length finish, no usage.
    fake.push(FakeReply::json(json!({
        "model": "qwen3:8b",
        "choices": [{"index":0,"finish_reason":"length","message":{"role":"assistant","content":"partial",
            "tool_calls":[{"type":"function","function":{"name":"get_weather","arguments":{"city":"Lima"}}}]}}]
    })));
    let answer = provider.complete(&simple_request("x")).await.unwrap();
    assert_eq!(answer.finish_reason, FinishReason::Length);
    assert_eq!(answer.tool_calls[0].id, "call_0");
    assert_eq!(answer.tool_calls[0].arguments, json!({"city": "Lima"}));
    assert_eq!(answer.usage, TokenUsage::default());

    // Invalid JSON arguments: model output error.
    fake.push(FakeReply::json(chat_tool_calls(
        MODEL,
        &[("c", "get_weather", "{city: Lima}")],
        Tokens::default(),
    )));
    let e = provider.complete(&simple_request("x")).await.unwrap_err();
    assert!(matches!(e, Error::ModelOutput(_)), "{e:?}");

    // No choices at all.
    fake.push(FakeReply::json(json!({"model": MODEL, "choices": []})));
    let e = provider.complete(&simple_request("x")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
}
