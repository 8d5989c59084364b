//! Agents that take their tools from a catalog search: only the Top-N the gate passed are
//! offered, and only those can be called.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::*;
use logline_core::agent::{Agent, ModelProfile, ToolQuery, ToolSource};
use logline_core::engine::{Engine, StartRun};
use logline_core::run::{Run, RunStatus};
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

/// Starts the `ask` run and executes it inline.
async fn run(engine: &Engine, request: &str) -> Run {
    let started = engine
        .start_run(StartRun::new("ask", json!(request), subject()))
        .await
        .unwrap();
    engine.execute(started.id).await.unwrap()
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
    let run = run(&engine, "create a note titled milk").await;
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
    let run = run(&engine, "delete all my notes").await;
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.error);
    assert_eq!(hub.executions_of("notes.delete_all"), 0);
    let second = &llm.requests()[1];
    let tool_message = serde_json::to_string(&second.messages).unwrap();
    assert!(
        tool_message.contains("not available to this agent"),
        "{tool_message}"
    );
}

/// An app over the `ask` workflow whose scopes name only `weather.today`.
fn weather_app() -> String {
    json!({
        "version": "1.0.0",
        "app": {
            "id": "weather_desk", "name": "Weather desk",
            "scopes": {"tools": ["weather.today"], "memory": []},
            "workflows": [{"id": "flow", "workflow_ref": "ask", "label": "Ask"}],
            "actions": [{
                "id": "go", "label": "Go", "workflow_id": "flow",
                "input_mapping": {"request": "$event.text"}
            }]
        }
    })
    .to_string()
}

async fn run_weather_app(engine: &Engine, text: &str) -> Run {
    engine.import_app_text(&weather_app()).await.unwrap();
    let out = engine
        .run_action(
            "weather_desk",
            "go",
            json!({"text": text}),
            json!({"tenant_id": "acme", "user_id": "dan"}),
        )
        .await
        .unwrap();
    engine.get_run(out.run_id).await.unwrap()
}

fn offered_names(llm: &ScriptedLlm) -> Vec<Vec<String>> {
    llm.requests()
        .iter()
        .map(|r| r.tools.iter().map(|t| t.name.clone()).collect())
        .collect()
}

#[tokio::test]
async fn a_run_of_an_app_is_offered_only_the_tools_of_its_scopes() {
    let hub = catalog_hub();
    let llm = Arc::new(
        ScriptedLlm::new()
            .reply_tool_calls(&[("notes_create", json!({"title": "milk"}))])
            .reply_text("I cannot take notes here."),
    );
    let engine = engine_with_search(llm.clone(), hub.clone()).await;
    let run = run_weather_app(
        &engine,
        "today's weather forecast, and create a note titled milk",
    )
    .await;
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.error);
    for names in offered_names(&llm) {
        assert_eq!(names, ["weather_today"], "the search ranks within the app");
    }
    assert_eq!(hub.executions_of("notes.create"), 0);
}

/// A host's source that returns every tool whatever it is asked, and records the app scope
/// it was given.
struct EverythingSource {
    tools: Vec<Arc<ToolSpec>>,
    asked: std::sync::Mutex<Vec<Option<Vec<String>>>>,
}

#[async_trait::async_trait]
impl ToolSource for EverythingSource {
    async fn tools(&self, query: &ToolQuery<'_>) -> logline_core::Result<Vec<Arc<ToolSpec>>> {
        self.asked
            .lock()
            .unwrap()
            .push(query.app_tools.map(<[String]>::to_vec));
        Ok(self.tools.clone())
    }
}

#[tokio::test]
async fn the_engine_drops_tools_outside_the_app_whatever_the_source_returns() {
    let hub = catalog_hub();
    let llm = Arc::new(
        ScriptedLlm::new()
            .reply_text("Sunny.")
            .reply_text("Sunny again."),
    );
    let source = Arc::new(EverythingSource {
        tools: hub.specs().into_iter().map(Arc::new).collect(),
        asked: Default::default(),
    });
    let engine = Engine::builder()
        .default_llm(llm.clone())
        .tool_hub(hub.clone())
        .tool_source("default", source.clone())
        .build()
        .await
        .unwrap();
    engine.register_tools(&hub.specs()).await.unwrap();
    engine
        .register_agent(
            &Agent::new("agent.notes", "Help.", ModelProfile::new("m"))
                .with_tool_search("default", None),
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

    let run = run_weather_app(&engine, "weather in Lisbon").await;
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.error);
    assert_eq!(offered_names(&llm), [["weather_today"]]);
    assert_eq!(
        source.asked.lock().unwrap().as_slice(),
        [Some(vec!["weather.today".to_string()])]
    );

    // A run of no app is offered everything the source returns.
    let run = engine
        .start_run(StartRun::new("ask", json!("weather"), subject()))
        .await
        .unwrap();
    engine.execute(run.id).await.unwrap();
    assert_eq!(offered_names(&llm).last().unwrap().len(), 3);
    assert_eq!(source.asked.lock().unwrap().last(), Some(&None));
}
