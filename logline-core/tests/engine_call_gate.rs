//! The tool gate holds at call time, not only when tools are shown: a model that names a
//! blocked, unconnected or too risky tool from its agent's list gets a refusal or a
//! confirmation gate, never a silent execution.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::*;
use logline_core::agent::{Agent, ModelProfile};
use logline_core::engine::{Engine, StartRun};
use logline_core::run::{GateSubject, Run, RunStatus};
use logline_core::testing::{FakeToolHub, ScriptedLlm};
use logline_core::tool::{RiskLevel, ToolSpec};
use serde_json::json;

fn hub() -> Arc<FakeToolHub> {
    let object = json!({"type": "object"});
    let mut github =
        ToolSpec::new("github.list_issues", "List issues.", object.clone()).in_toolkit("github");
    github.requires_connection = true;
    let mut gmail =
        ToolSpec::new("gmail.list_mail", "List mail.", object.clone()).in_toolkit("gmail");
    gmail.requires_connection = true;
    Arc::new(
        FakeToolHub::new("fake")
            .tool(
                ToolSpec::new("notes.purge", "Delete every note.", object.clone())
                    .with_tags(["delete"]),
                |_| Ok(json!({"purged": true})),
            )
            .tool(github, |_| Ok(json!({"issues": []})))
            .tool(gmail, |_| Ok(json!({"mail": []})))
            .tool(
                ToolSpec::new("payments.transfer_report", "Send a report.", object)
                    .with_risk(RiskLevel::High),
                |_| Ok(json!({"sent": true})),
            )
            .connect("dan", "gmail"),
    )
}

async fn run_agent_calling(tool: &str) -> (Run, Arc<FakeToolHub>, Arc<ScriptedLlm>, Engine) {
    let hub = hub();
    let llm = Arc::new(
        ScriptedLlm::new()
            .reply_tool_calls(&[(tool, json!({}))])
            .reply_text("done"),
    );
    let engine = Engine::builder()
        .default_llm(llm.clone())
        .tool_hub(hub.clone())
        .build()
        .await
        .unwrap();
    engine.register_tools(&hub.specs()).await.unwrap();
    let all: Vec<String> = hub.specs().into_iter().map(|s| s.id).collect();
    engine
        .register_agent(
            &Agent::new("agent.any", "Use tools.", ModelProfile::new("m")).with_tools(all),
        )
        .await
        .unwrap();
    engine
        .register_workflow(&workflow(
            "ask",
            json!({"entry": "a", "nodes": [{"id": "a", "type": "agent_node",
                   "config": {"agent_id": "agent.any"}}]}),
        ))
        .await
        .unwrap();
    let run = engine
        .start_run(StartRun::new("ask", json!("go"), subject()))
        .await
        .unwrap();
    let run = engine.execute(run.id).await.unwrap();
    (run, hub, llm, engine)
}

#[tokio::test]
async fn a_blocked_tag_is_refused_at_call_time() {
    let (run, hub, llm, _) = run_agent_calling("notes_purge").await;
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.error);
    assert_eq!(hub.executions_of("notes.purge"), 0);
    let told = serde_json::to_string(&llm.requests()[1].messages).unwrap();
    assert!(
        told.contains("not allowed here") && told.contains("delete"),
        "{told}"
    );
}

#[tokio::test]
async fn a_toolkit_the_user_has_not_connected_is_refused_and_a_connected_one_runs() {
    let (run, hub, _, _) = run_agent_calling("github_list_issues").await;
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(hub.executions_of("github.list_issues"), 0);
    let (run, hub, _, _) = run_agent_calling("gmail_list_mail").await;
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(hub.executions_of("gmail.list_mail"), 1);
}

#[tokio::test]
async fn a_tool_riskier_than_the_ceiling_waits_for_a_person() {
    let (run, hub, _, engine) = run_agent_calling("payments_transfer_report").await;
    assert_eq!(run.status, RunStatus::Paused);
    let gate = run.pending_gate.clone().expect("gate");
    assert!(
        matches!(gate.subject, GateSubject::ToolCall { ref tool_id, .. }
        if tool_id == "payments.transfer_report")
    );
    assert_eq!(hub.executions_of("payments.transfer_report"), 0);
    engine
        .approve(run.id, &gate.gate_id, "ops", None)
        .await
        .unwrap();
    let done = engine.execute(run.id).await.unwrap();
    assert_eq!(done.status, RunStatus::Completed, "{:?}", done.error);
    assert_eq!(hub.executions_of("payments.transfer_report"), 1);
}
