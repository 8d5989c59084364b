//! Agents that take their tools from a catalog search: only the Top-N the gate passed are
//! offered, and only those can be called.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::*;
use logline_core::agent::{Agent, ModelProfile};
use logline_core::engine::Engine;
use logline_core::run::RunStatus;
use logline_core::search::{ToolIndex, ToolSearch};
use logline_core::testing::{FakeToolHub, ScriptedLlm};
use logline_core::tool::ToolSpec;
use serde_json::json;

fn catalog_hub() -> Arc<FakeToolHub> {
    let object = json!({"type": "object"});
    Arc::new(
        FakeToolHub::new("fake")
            .tool(
                ToolSpec::new(
                    "notes.create",
                    "Create a note with a title.",
                    object.clone(),
                ),
                |a| Ok(json!({"created": a["title"]})),
            )
            .tool(
                ToolSpec::new(
                    "weather.today",
                    "Today's weather forecast for a city.",
                    object.clone(),
                ),
                |_| Ok(json!({"sky": "clear"})),
            )
            .tool(
                ToolSpec::new("notes.delete_all", "Delete every note.", object)
                    .with_tags(["delete"]),
                |_| Ok(json!({"deleted": true})),
            ),
    )
}

async fn engine_with_search(llm: Arc<ScriptedLlm>, hub: Arc<FakeToolHub>) -> Engine {
    let search = Arc::new(ToolSearch::new(ToolIndex::from_tools(hub.specs())));
    let engine = Engine::builder()
        .default_llm(llm)
        .tool_hub(hub.clone())
        .tool_source("default", search)
        .build()
        .await
        .unwrap();
    engine.register_tools(&hub.specs()).await.unwrap();
    engine
        .register_agent(
            &Agent::new("agent.notes", "Help with notes.", ModelProfile::new("m"))
                .with_tool_search("default", Some(2)),
        )
        .await
        .unwrap();
    engine
        .register_workflow(&workflow(
            "ask",
            json!({
                "entry": "ask",
                "nodes": [{"id": "ask", "type": "agent_node", "config": {"agent_id": "agent.notes"}}]
            }),
        ))
        .await
        .unwrap();
    engine
}

#[tokio::test]
async fn an_agent_is_offered_the_search_top_n_once_per_step() {
    let hub = catalog_hub();
    let llm = Arc::new(
        ScriptedLlm::new()
            .reply_tool_calls(&[("notes_create", json!({"title": "milk"}))])
            .reply_text("Noted."),
    );
    let engine = engine_with_search(llm.clone(), hub.clone()).await;
    let run = engine
        .run_to_completion(logline_core::engine::StartRun::new(
            "ask",
            json!("create a note titled milk"),
            subject(),
        ))
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.error);
    assert_eq!(hub.executions_of("notes.create"), 1);
    let requests = llm.requests();
    assert_eq!(requests.len(), 2);
    for r in &requests {
        let names: Vec<&str> = r.tools.iter().map(|t| t.name.as_str()).collect();
        assert!(names.len() <= 2, "Top-2 offered: {names:?}");
        assert!(names.contains(&"notes_create"), "{names:?}");
        assert!(
            !names.contains(&"notes_delete_all"),
            "the gate hides delete tools: {names:?}"
        );
    }
}

#[tokio::test]
async fn a_tool_the_search_did_not_offer_cannot_be_called() {
    let hub = catalog_hub();
    let llm = Arc::new(
        ScriptedLlm::new()
            .reply_tool_calls(&[("notes_delete_all", json!({}))])
            .reply_text("I could not do that."),
    );
    let engine = engine_with_search(llm.clone(), hub.clone()).await;
    let run = engine
        .run_to_completion(logline_core::engine::StartRun::new(
            "ask",
            json!("delete all my notes"),
            subject(),
        ))
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.error);
    assert_eq!(hub.executions_of("notes.delete_all"), 0);
    let second = &llm.requests()[1];
    let tool_message = serde_json::to_string(&second.messages).unwrap();
    assert!(
        tool_message.contains("not available to this agent"),
        "{tool_message}"
    );
}
