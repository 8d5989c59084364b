//! The tool gate at call time, on a backend: a model that names a blocked, unconnected or
//! too risky tool from its agent's list gets a refusal or a confirmation gate, never a
//! silent execution.
//!
//! Each check gets an [`EngineBuilder`] wired to fresh backends; runs execute inline with
//! [`Engine::execute`].

use std::sync::Arc;

use serde_json::json;

use crate::agent::{Agent, ModelProfile};
use crate::engine::{Engine, EngineBuilder, StartRun};
use crate::run::{GateSubject, Run, RunStatus, Subject};
use crate::testing::{FakeToolHub, ScriptedLlm};
use crate::tool::{RiskLevel, ToolSpec};
use crate::workflow::{Workflow, WorkflowDefinition};

/// A hub with one tool per gate rule; the user `dan` has connected `gmail` only.
fn gated_hub() -> Arc<FakeToolHub> {
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

/// What one agent run that calls `tool` left behind.
struct Called {
    run: Run,
    hub: Arc<FakeToolHub>,
    llm: Arc<ScriptedLlm>,
    engine: Engine,
}

/// Runs an agent that may use every tool of [`gated_hub`] and whose model calls `tool`
/// (by its model-facing name), for the user `dan`.
async fn agent_calling(builder: EngineBuilder, tool: &str) -> Called {
    let hub = gated_hub();
    let llm = Arc::new(
        ScriptedLlm::new()
            .reply_tool_calls(&[(tool, json!({}))])
            .reply_text("done"),
    );
    let engine = builder
        .default_llm(llm.clone())
        .tool_hub(hub.clone())
        .build()
        .await
        .expect("build");
    engine.register_tools(&hub.specs()).await.expect("tools");
    let all: Vec<String> = hub.specs().into_iter().map(|s| s.id).collect();
    engine
        .register_agent(
            &Agent::new("agent.any", "Use tools.", ModelProfile::new("m")).with_tools(all),
        )
        .await
        .expect("agent");
    let def: WorkflowDefinition = serde_json::from_value(json!({"entry": "a", "nodes": [
        {"id": "a", "type": "agent_node", "config": {"agent_id": "agent.any"}}]}))
    .expect("definition");
    engine
        .register_workflow(&Workflow::new("ask", "Ask", def))
        .await
        .expect("workflow");
    let run = engine
        .start_run(StartRun::new(
            "ask",
            json!("go"),
            Subject::tenant("acme").with_user("dan").with_role("user"),
        ))
        .await
        .expect("start");
    let run = engine.execute(run.id).await.expect("execute");
    Called {
        run,
        hub,
        llm,
        engine,
    }
}

/// A tool with a blocked tag is refused, and the model is told why.
pub async fn blocked_tag_is_refused_at_call_time(builder: EngineBuilder) {
    let c = agent_calling(builder, "notes_purge").await;
    assert_eq!(c.run.status, RunStatus::Completed, "{:?}", c.run.error);
    assert_eq!(c.hub.executions_of("notes.purge"), 0);
    let told = serde_json::to_string(&c.llm.requests()[1].messages).expect("json");
    assert!(
        told.contains("not allowed here") && told.contains("delete"),
        "the model is told the tool is refused: {told}"
    );
}

/// A toolkit the user has not connected is refused; a connected one runs.
pub async fn unconnected_toolkit_is_refused(builder: EngineBuilder) {
    let c = agent_calling(builder, "github_list_issues").await;
    assert_eq!(c.run.status, RunStatus::Completed, "{:?}", c.run.error);
    assert_eq!(c.hub.executions_of("github.list_issues"), 0);
    let told = serde_json::to_string(&c.llm.requests()[1].messages).expect("json");
    assert!(told.contains("not allowed here"), "{told}");
}

/// A tool of a toolkit the user has connected runs.
pub async fn connected_toolkit_runs(builder: EngineBuilder) {
    let c = agent_calling(builder, "gmail_list_mail").await;
    assert_eq!(c.run.status, RunStatus::Completed, "{:?}", c.run.error);
    assert_eq!(c.hub.executions_of("gmail.list_mail"), 1);
}

/// A tool riskier than the ceiling pauses the run for a person, runs once after approval.
pub async fn risk_over_the_ceiling_waits_for_a_person(builder: EngineBuilder) {
    let c = agent_calling(builder, "payments_transfer_report").await;
    assert_eq!(c.run.status, RunStatus::Paused, "{:?}", c.run.error);
    let gate = c.run.pending_gate.clone().expect("a pending gate");
    assert!(
        matches!(gate.subject, GateSubject::ToolCall { ref tool_id, .. }
            if tool_id == "payments.transfer_report"),
        "{:?}",
        gate.subject
    );
    assert_eq!(c.hub.executions_of("payments.transfer_report"), 0);
    c.engine
        .approve(c.run.id, &gate.gate_id, "ops", None)
        .await
        .expect("approve");
    let done = c.engine.execute(c.run.id).await.expect("execute");
    assert_eq!(done.status, RunStatus::Completed, "{:?}", done.error);
    assert_eq!(c.hub.executions_of("payments.transfer_report"), 1);
}
