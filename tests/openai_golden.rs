//! The golden run end to end through `OpenAiProvider` against a local fake OpenAI server
//! that speaks the Responses API wire format.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use logline_core::engine::{Engine, StartRun, WorkerOptions};
use logline_core::llm::{LlmRequest, Message};
use logline_core::run::{RunStatus, Subject};
use logline_core::testing::golden;
use logline_openai::testing::{responses_text, FakeOpenAi, FakeReply, Tokens};
use logline_openai::{openai_prices, OpenAiProvider};
use serde_json::{json, Value};

/// What a triage model would answer, computed from the tickets in the request body.
fn triage_answer(body: &Value) -> String {
    let text = body["input"]
        .as_array()
        .and_then(|items| items.iter().rev().find(|i| i["role"] == "user"))
        .and_then(|i| {
            i["content"]
                .as_str()
                .map(String::from)
                .or_else(|| i["content"][0]["text"].as_str().map(String::from))
        })
        .unwrap_or_default();
    let request = LlmRequest {
        messages: vec![Message::user(text)],
        ..Default::default()
    };
    let llm = golden::scripted_llm();
    let r = futures::executor::block_on(logline_core::llm::LlmProvider::complete(&llm, &request))
        .unwrap();
    r.text.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_run_passes_end_to_end_against_a_fake_openai_server() {
    let fake = FakeOpenAi::start().await;
    fake.set_handler(|req| {
        let body = req.json();
        Some(FakeReply::json(responses_text(
            "gpt-4o-mini-2024-07-18",
            &triage_answer(&body),
            Tokens::new(812, 512, 143),
        )))
    });
    let provider = OpenAiProvider::new(
        fake.config()
            .api_key("sk-test-not-a-real-key-123456")
            .build()
            .unwrap(),
    )
    .unwrap();
    let engine = golden::with_tool(
        Engine::builder()
            .default_llm(Arc::new(provider))
            .prices(openai_prices()),
    )
    .build()
    .await
    .unwrap();
    golden::install(&engine, "gpt-4o-mini").await.unwrap();
    let workers = engine.spawn_workers(WorkerOptions::default());
    let run = engine
        .run_to_completion(StartRun::new(
            golden::WORKFLOW_ID,
            json!({"hotel_id": "VV-LISBON"}),
            Subject::tenant("t").with_user("u"),
        ))
        .await
        .unwrap();
    workers.shutdown().await;
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.error);
    let result = run.result.unwrap();
    assert_eq!(result["summary"], "4 tickets triaged");
    assert_eq!(result["tickets"][0]["priority"], "urgent");
    assert_eq!(result["tickets"][0]["action"], "escalate_to_human");

    // The request the provider sent: Responses API with the agent's strict output schema.
    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].path, "/v1/responses");
    let body = requests[0].json();
    assert_eq!(body["model"], "gpt-4o-mini");
    assert_eq!(body["text"]["format"]["type"], "json_schema");
    assert_eq!(body["text"]["format"]["strict"], true);
    assert!(body["instructions"].as_str().unwrap().contains("triage"));

    // Usage and cost reach the run and the trace; the key never does.
    assert_eq!(run.usage.input_tokens, 812);
    assert_eq!(run.usage.cached_input_tokens, 512);
    assert_eq!(run.usage.output_tokens, 143);
    assert!(run.usage.cost_cents > 0.0);
    let events = engine.events(run.id).await.unwrap();
    assert!(golden::has_minimum_events(&events));
    let trace = serde_json::to_string(&events).unwrap();
    assert!(!trace.contains("sk-test-not-a-real-key-123456"));
}
