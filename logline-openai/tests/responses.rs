//! Responses API: exact request bodies and non-streamed answers, against the fake server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use logline_core::llm::{FinishReason, LlmProvider, OutputSchema, TokenUsage, ToolChoice};
use logline_core::{Error, ErrorKind};
use logline_openai::testing::{
    responses_function_calls, responses_text, FakeOpenAi, FakeReply, Tokens, FAKE_API_KEY,
};
use logline_openai::OpenAiProvider;
use serde_json::json;

#[tokio::test]
async fn full_request_body_is_exact() {
    let fake = FakeOpenAi::start().await;
    fake.push(FakeReply::json(responses_text(
        "gpt-5.4-mini-2026-03-17",
        "{\"summary\":\"22 °C and sunny\"}",
        Tokens::new(120, 100, 9),
    )));
    let (provider, _) = provider(&fake, false);
    let answer = provider.complete(&full_request()).await.unwrap();

    let reqs = fake.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/v1/responses");
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {FAKE_API_KEY}").as_str())
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    let params_weather = json!({"type":"object","properties":{"city":{"type":"string"}},
                                "required":["city"],"additionalProperties":false});
    let params_time = json!({"type":"object","properties":{"tz":{"type":"string"}},
                             "required":["tz"],"additionalProperties":false});
    let expected = json!({
        "model": "gpt-5.4-mini",
        "instructions": "You are a weather bot.",
        "input": [
            {"type":"message","role":"system","content":"Prefer metric units."},
            {"type":"message","role":"user","content":"Weather in Boston?"},
            {"type":"message","role":"assistant","content":"Checking."},
            {"type":"function_call","call_id":"call_abc","name":"get_weather","arguments":"{\"city\":\"Boston\"}"},
            {"type":"function_call_output","call_id":"call_abc","output":"{\"temp\":22}"}
        ],
        "tools": [
            {"type":"function","name":"get_weather","description":"Current weather for a city.",
             "parameters": params_weather, "strict": true},
            {"type":"function","name":"get_time","parameters": params_time, "strict": false}
        ],
        "tool_choice": {"type":"function","name":"get_weather"},
        "parallel_tool_calls": false,
        "text": {"format": {"type":"json_schema","name":"answer",
                            "schema": {"type":"object","properties":{"summary":{"type":"string"}},
                                       "required":["summary"],"additionalProperties":false},
                            "strict": true}},
        "max_output_tokens": 1024,
        "store": false,
        "stream": false
    });
    assert_eq!(r.json(), expected);

    // Structured output comes back as JSON text; usage is exact.
    assert_eq!(
        answer.json().unwrap(),
        json!({"summary": "22 °C and sunny"})
    );
    assert_eq!(answer.model, "gpt-5.4-mini-2026-03-17");
    assert_eq!(answer.finish_reason, FinishReason::Stop);
    assert_eq!(
        answer.usage,
        TokenUsage {
            input_tokens: 120,
            cached_input_tokens: 100,
            output_tokens: 9
        }
    );
    // The encoder used by complete() is the public one.
    assert_eq!(
        json_of(&provider.encode_request(&full_request(), false).unwrap()),
        expected
    );
}

#[tokio::test]
async fn plain_request_omits_tool_fields_and_sends_headers() {
    let fake = FakeOpenAi::start().await;
    fake.push(FakeReply::json(responses_text(
        MODEL,
        "Hi!",
        Tokens::new(36, 0, 87),
    )));
    let provider = OpenAiProvider::new(
        fake.config()
            .organization("org-123")
            .project("proj_456")
            .build()
            .unwrap(),
    )
    .unwrap();
    let mut req = simple_request("Hello");
    req.temperature = Some(0.25);
    let answer = provider.complete(&req).await.unwrap();
    assert_eq!(answer.text.as_deref(), Some("Hi!"));
    assert!(answer.tool_calls.is_empty());
    assert_eq!(answer.usage.input_tokens, 36);
    assert_eq!(answer.usage.output_tokens, 87);

    let r = &fake.requests()[0];
    assert_eq!(
        r.json(),
        json!({"model": MODEL, "input": [{"type":"message","role":"user","content":"Hello"}],
               "temperature": 0.25, "store": false, "stream": false})
    );
    assert_eq!(r.header("openai-organization"), Some("org-123"));
    assert_eq!(r.header("openai-project"), Some("proj_456"));
}

#[tokio::test]
async fn tool_choice_modes() {
    let fake = FakeOpenAi::start().await;
    let (provider, _) = provider(&fake, false);
    for (choice, wire) in [
        (ToolChoice::Auto, json!("auto")),
        (ToolChoice::None, json!("none")),
        (ToolChoice::Required, json!("required")),
    ] {
        fake.push(FakeReply::json(responses_text(
            MODEL,
            "ok",
            Tokens::default(),
        )));
        let mut req = simple_request("x");
        req.tools = vec![weather_tool()];
        req.tool_choice = choice;
        req.parallel_tool_calls = true;
        provider.complete(&req).await.unwrap();
        let body = fake.requests().last().unwrap().json();
        assert_eq!(body["tool_choice"], wire);
        assert_eq!(body["parallel_tool_calls"], json!(true));
        assert_eq!(body["tools"][0]["strict"], json!(true));
    }
}

#[tokio::test]
async fn parallel_function_calls_are_parsed() {
    let fake = FakeOpenAi::start().await;
    fake.push(FakeReply::json(responses_function_calls(
        "gpt-5.4",
        &[
            ("call_1", "get_weather", "{\"city\":\"Boston\"}"),
            ("call_2", "get_time", "{\"tz\":\"EST\"}"),
            ("call_3", "get_time", ""),
        ],
        Tokens::new(291, 0, 40),
    )));
    let (provider, _) = provider(&fake, false);
    let mut req = simple_request("Weather and time in Boston?");
    req.tools = vec![weather_tool(), time_tool()];
    let answer = provider.complete(&req).await.unwrap();
    assert_eq!(answer.finish_reason, FinishReason::ToolCalls);
    assert_eq!(answer.text, None);
    let calls: Vec<_> = answer
        .tool_calls
        .iter()
        .map(|c| (c.id.as_str(), c.name.as_str(), c.arguments.clone()))
        .collect();
    assert_eq!(
        calls,
        vec![
            ("call_1", "get_weather", json!({"city":"Boston"})),
            ("call_2", "get_time", json!({"tz":"EST"})),
            ("call_3", "get_time", json!({})),
        ]
    );
    // Price of the answer under the default table (gpt-5.4: $2.50 in, $15 out per Mtok).
    let cents = provider.cost_cents(&answer);
    assert!((cents - (291.0 * 2.5 + 40.0 * 15.0) / 1e6 * 100.0).abs() < 1e-9);
}

#[tokio::test]
async fn invalid_tool_arguments_are_a_model_output_error() {
    let fake = FakeOpenAi::start().await;
    fake.push(FakeReply::json(responses_function_calls(
        MODEL,
        &[("call_1", "get_weather", "{\"city\": \"Bos")],
        Tokens::new(1, 0, 1),
    )));
    let (provider, sleep) = provider(&fake, false);
    let mut req = simple_request("x");
    req.tools = vec![weather_tool()];
    let err = provider.complete(&req).await.unwrap_err();
    assert!(matches!(err, Error::ModelOutput(_)), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::ModelOutput);
    assert!(err.is_retryable());
    assert!(err.to_string().contains("get_weather"), "{err}");
    // Not retried at the HTTP level: the engine decides.
    assert_eq!(fake.request_count(), 1);
    assert!(sleep.waits().is_empty());
}

#[tokio::test]
async fn invalid_structured_output_is_a_model_output_error() {
    let fake = FakeOpenAi::start().await;
    fake.push(FakeReply::json(responses_text(
        MODEL,
        "Sure! {\"summary\":",
        Tokens::new(1, 0, 1),
    )));
    let (provider, _) = provider(&fake, false);
    let mut req = simple_request("x");
    req.output_schema = Some(OutputSchema {
        name: "answer".into(),
        schema: json!({"type":"object"}),
        strict: true,
    });
    let err = provider.complete(&req).await.unwrap_err();
    assert!(matches!(err, Error::ModelOutput(_)), "{err:?}");

    // A refusal under structured output too; without a schema it is the text.
    let refusal = json!({"id":"resp_r","object":"response","status":"completed","model":MODEL,
        "output":[{"type":"message","id":"msg_r","role":"assistant","status":"completed",
                   "content":[{"type":"refusal","refusal":"I can't help with that."}]}],
        "usage":{"input_tokens":5,"input_tokens_details":{"cached_tokens":0},"output_tokens":6,"total_tokens":11}});
    fake.push(FakeReply::json(refusal.clone()));
    let err = provider.complete(&req).await.unwrap_err();
    assert!(err.to_string().contains("refused"), "{err}");
    fake.push(FakeReply::json(refusal));
    let ok = provider.complete(&simple_request("x")).await.unwrap();
    assert_eq!(ok.text.as_deref(), Some("I can't help with that."));
}

#[tokio::test]
async fn failed_and_cancelled_bodies_are_typed_errors() {
    let fake = FakeOpenAi::start().await;
    let (provider, _) = provider(&fake, false);
    let body = |status: &str, extra: serde_json::Value| {
        let mut b = json!({"id":"resp_x","object":"response","status":status,"model":MODEL,
                           "error":null,"incomplete_details":null,"output":[],"usage":null});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    fake.push(FakeReply::json(body(
        "failed",
        json!({"error":{"code":"server_error","message":"The model crashed."}}),
    )));
    let e = provider.complete(&simple_request("x")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(e.to_string().contains("model crashed"), "{e}");

    // An incomplete response is the cut-off answer with its finish reason (tests/cut_off.rs).
    fake.push(FakeReply::json(body(
        "incomplete",
        json!({"incomplete_details":{"reason":"content_filter"}}),
    )));
    let cut = provider.complete(&simple_request("x")).await.unwrap();
    assert_eq!(cut.finish_reason, FinishReason::ContentFilter);

    fake.push(FakeReply::json(body("cancelled", json!({}))));
    let e = provider.complete(&simple_request("x")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Cancelled);

    // A 200 whose body is not a response object.
    fake.push(FakeReply::text(200, "<html>proxy</html>"));
    let e = provider.complete(&simple_request("x")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(!e.is_retryable());
    assert_eq!(fake.request_count(), 4);
}

#[tokio::test]
async fn long_and_dotted_tool_names_round_trip_through_aliases() {
    let long = "composio.GOOGLECALENDAR_CREATE_EVENT_WITH_ATTENDEES_CONFERENCING_AND_REMINDERS";
    let fake = FakeOpenAi::start().await;
    // Answer with a call to whatever name the request used for the tool.
    fake.set_handler(|r| {
        let body = r.json();
        let wire = body["tools"][0]["name"].as_str()?.to_string();
        Some(FakeReply::json(responses_function_calls(
            MODEL,
            &[("call_9", &wire, "{}")],
            Tokens::new(1, 0, 1),
        )))
    });
    let (provider, _) = provider(&fake, false);
    let mut req = simple_request("Book it");
    let mut tool = weather_tool();
    tool.name = long.into();
    req.tools = vec![tool];
    req.tool_choice = ToolChoice::Function(long.into());
    let answer = provider.complete(&req).await.unwrap();
    assert_eq!(answer.tool_calls[0].name, long);

    let body = fake.requests()[0].json();
    let wire = body["tools"][0]["name"].as_str().unwrap();
    assert!(wire.len() <= 64, "{wire}");
    assert!(wire
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'));
    assert_eq!(body["tool_choice"]["name"], json!(wire));
}

#[tokio::test]
async fn model_defaults_and_metadata() {
    let fake = FakeOpenAi::start().await;
    fake.push(FakeReply::json(responses_text(
        "gpt-5-nano",
        "ok",
        Tokens::default(),
    )));
    let provider = OpenAiProvider::new(
        fake.config()
            .default_model("gpt-5-nano")
            .forward_metadata(true)
            .build()
            .unwrap(),
    )
    .unwrap();
    let mut req = simple_request("x");
    req.model.clear();
    req.metadata.insert("run_id".into(), "run_1".into());
    provider.complete(&req).await.unwrap();
    let body = fake.requests()[0].json();
    assert_eq!(body["model"], json!("gpt-5-nano"));
    assert_eq!(body["metadata"], json!({"run_id": "run_1"}));

    // No model anywhere: rejected before any request.
    let (bare, _) = common::provider(&fake, false);
    let e = bare.complete(&req).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert_eq!(fake.request_count(), 1);
}
