//! LogLine's hub as the client of LogLine's server over streamable HTTP: a published agent
//! runs under the principal the host's authentication gives the bearer token; a wrong token
//! never reaches the engine.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use logline_core::agent::{Agent, ModelProfile};
use logline_core::engine::{Engine, Principal, WorkerOptions};
use logline_core::store::RunFilter;
use logline_core::testing::ScriptedLlm;
use logline_core::tool::ToolHub;
use logline_core::ErrorKind;
use logline_mcp::{HttpAuth, McpServer, McpServerConfig, McpToolHub};
use serde_json::json;

#[tokio::test]
async fn a_published_agent_runs_for_the_authenticated_principal() {
    let llm = Arc::new(ScriptedLlm::new().reply_text("three words counted"));
    let engine = Engine::builder()
        .default_llm(llm.clone())
        .build()
        .await
        .unwrap();
    let mut agent = Agent::new("counter", "Count words.", ModelProfile::new("scripted"));
    agent.description = "Counts words".into();
    engine.register_agent(&agent).await.unwrap();
    let workers = engine.spawn_workers(WorkerOptions::default());
    let server = McpServer::builder(engine.clone())
        .agent("ask_counter", "counter")
        .build()
        .await
        .unwrap();
    let auth: HttpAuth = Arc::new(|h| {
        (h.get("authorization")?.to_str().ok()? == "Bearer tok-t7")
            .then(|| Principal::user("t7", "u7"))
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let router = server.router(auth, Vec::new());
    let serving = tokio::spawn(async move { axum::serve(listener, router).await });
    let url = format!("http://127.0.0.1:{port}/mcp");

    let hub =
        McpToolHub::new([McpServerConfig::http("logline", &url).with_bearer("tok-t7")]).unwrap();
    let tools = support::list_all(&hub).await;
    let ask = tools
        .iter()
        .find(|t| t.id == "logline.ask_counter")
        .unwrap();
    assert_eq!(ask.description, "Counts words");
    assert_eq!(ask.input_schema["required"], json!(["request"]));
    let out = hub
        .execute(
            "logline.ask_counter",
            json!({"request": "one two three"}),
            &support::ctx(),
        )
        .await
        .unwrap();
    assert_eq!(out["status"], "completed", "{out}");
    assert!(
        out["result"].to_string().contains("three words counted"),
        "{out}"
    );
    // The agent saw the request; the run is the principal's.
    let asked = serde_json::to_string(&llm.requests()[0].messages).unwrap();
    assert!(asked.contains("one two three"), "{asked}");
    let runs = engine
        .list_runs(&RunFilter {
            tenant_id: Some("t7".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].subject.user_id.as_deref(), Some("u7"));

    let mut wrong = McpServerConfig::http("logline", &url).with_bearer("tok-other");
    wrong.connect_timeout = Duration::from_millis(500);
    let hub = McpToolHub::new([wrong]).unwrap();
    let e = hub
        .execute(
            "logline.ask_counter",
            json!({"request": "x"}),
            &support::ctx(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert_eq!(
        engine.list_runs(&RunFilter::default()).await.unwrap().len(),
        1
    );
    serving.abort();
    workers.shutdown().await;
}
