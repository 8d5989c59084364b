//! The golden run, ticket triage: `demo_ticket_triage_v1`, start → fetch_tickets
//! (`ticketing.list_open`) → triage (`agent.ticket_triage`).

use serde_json::{json, Value};

use super::ScriptedLlm;
use crate::agent::{Agent, ModelProfile};
use crate::engine::{Engine, EngineBuilder};
use crate::error::{Error, Result};
use crate::llm::{LlmRequest, LlmResponse, Message};
use crate::tool::{handler, ToolHandler, ToolSpec};
use crate::workflow::{Workflow, WorkflowDefinition};

/// Workflow id.
pub const WORKFLOW_ID: &str = "demo_ticket_triage_v1";
/// Tool id.
pub const TOOL_ID: &str = "ticketing.list_open";
/// Agent id.
pub const AGENT_ID: &str = "agent.ticket_triage";

/// The workflow.
pub fn workflow() -> Result<Workflow> {
    let def = WorkflowDefinition::from_json(json!({
        "entry": "start",
        "nodes": [
            { "id": "start", "type": "static" },
            { "id": "fetch_tickets", "type": "tool_node", "config": { "tool_id": TOOL_ID } },
            { "id": "triage", "type": "agent_node", "config": { "agent_id": AGENT_ID } }
        ],
        "edges": [
            { "from": "start", "to": "fetch_tickets" },
            { "from": "fetch_tickets", "to": "triage" }
        ]
    }))?;
    Ok(Workflow::new(WORKFLOW_ID, "Ticket triage demo", def))
}

/// The demo ticketing system's open tickets of a hotel.
pub fn open_tickets(hotel_id: &str) -> Value {
    json!({
        "hotel_id": hotel_id,
        "tickets": [
            { "id": "T-1", "subject": "No hot water in room 305", "status": "open" },
            { "id": "T-2", "subject": "Late check-in request for tonight", "status": "open" },
            { "id": "T-3", "subject": "Water leak in the lobby ceiling", "status": "open" },
            { "id": "T-4", "subject": "Question about breakfast hours", "status": "open" }
        ]
    })
}

/// The `ticketing.list_open` tool spec and its handler.
pub fn list_open_tool() -> (ToolSpec, ToolHandler) {
    let spec = ToolSpec::new(
        TOOL_ID,
        "List the open support tickets of a hotel.",
        json!({
            "type": "object",
            "properties": { "hotel_id": { "type": "string", "minLength": 1 } },
            "required": ["hotel_id"]
        }),
    )
    .in_toolkit("ticketing")
    .with_tags(["read"])
    .with_side_effects(["database_read"]);
    let h = handler(|args: Value, _ctx| async move {
        let hotel = args["hotel_id"].as_str().unwrap_or_default().to_string();
        Ok(open_tickets(&hotel))
    });
    (spec, h)
}

/// JSON Schema of the triage agent's answer.
pub fn triage_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "summary": { "type": "string" },
            "tickets": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "id": { "type": "string" },
                        "subject": { "type": "string" },
                        "status": { "type": "string" },
                        "priority": { "type": "string", "enum": ["low", "normal", "high", "urgent"] },
                        "action": { "type": "string" }
                    },
                    "required": ["id", "subject", "status", "priority", "action"],
                    "additionalProperties": false
                }
            }
        },
        "required": ["summary", "tickets"],
        "additionalProperties": false
    })
}

/// The triage agent on `model` of the default provider.
pub fn triage_agent(model: &str) -> Agent {
    Agent::new(
        AGENT_ID,
        "You are a hotel support triage agent. For every ticket in the input decide its priority \
         (low, normal, high or urgent) and the suggested action (escalate_to_human, \
         schedule_maintenance, auto_reply or assign_front_desk). Keep id, subject and status. \
         The summary reads \"N tickets triaged\".",
        ModelProfile::new(model),
    )
    .with_output_schema(triage_schema())
}

/// Rule-based triage of one ticket subject: (priority, action).
pub fn triage_rule(subject: &str) -> (&'static str, &'static str) {
    let s = subject.to_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| s.contains(w));
    if has(&[
        "no hot water",
        "leak",
        "fire",
        "flood",
        "no power",
        "gas",
        "injur",
    ]) {
        ("urgent", "escalate_to_human")
    } else if has(&["broken", "not working", "noise", "dirty"]) {
        ("high", "schedule_maintenance")
    } else if has(&["check-in", "check in", "checkout", "late"]) {
        ("normal", "assign_front_desk")
    } else {
        ("low", "auto_reply")
    }
}

fn tickets_in(request: &LlmRequest) -> Option<Vec<Value>> {
    request.messages.iter().rev().find_map(|m| match m {
        Message::User { content } => serde_json::from_str::<Value>(content)
            .ok()
            .and_then(|v| v["tickets"].as_array().cloned()),
        _ => None,
    })
}

/// A scripted LLM that triages tickets with [`triage_rule`], answering in the agent's schema.
pub fn scripted_llm() -> ScriptedLlm {
    ScriptedLlm::from_fn(|request| {
        let tickets = tickets_in(request)
            .ok_or_else(|| Error::ModelOutput("no tickets in the triage prompt".into()))?;
        let triaged: Vec<Value> = tickets
            .iter()
            .map(|t| {
                let subject = t["subject"].as_str().unwrap_or_default();
                let (priority, action) = triage_rule(subject);
                json!({ "id": t["id"], "subject": subject, "status": t["status"],
                        "priority": priority, "action": action })
            })
            .collect();
        let answer =
            json!({ "summary": format!("{} tickets triaged", triaged.len()), "tickets": triaged });
        Ok(LlmResponse::text(answer.to_string()))
    })
}

/// Adds the golden run's local tool to a builder.
pub fn with_tool(builder: EngineBuilder) -> EngineBuilder {
    let (spec, h) = list_open_tool();
    builder.tool(spec, h)
}

/// Registers the triage agent (on `model`) and the workflow.
pub async fn install(engine: &Engine, model: &str) -> Result<()> {
    engine.register_agent(&triage_agent(model)).await?;
    engine.register_workflow(&workflow()?).await
}

/// The golden run's minimum events, in order.
pub const MINIMUM_EVENTS: &[&str] = &[
    "run_started",
    "step_started:start",
    "step_started:fetch_tickets",
    "tool_call:ticketing.list_open",
    "step_started:triage",
    "llm_call:agent.ticket_triage",
    "run_completed",
];

/// Whether `events` contain [`MINIMUM_EVENTS`] as an ordered subsequence.
pub fn has_minimum_events(events: &[crate::event::Event]) -> bool {
    let labels: Vec<String> = events
        .iter()
        .map(|e| {
            let detail = match e.kind.as_str() {
                "step_started" => e.payload["node_id"].as_str(),
                "tool_call" => e.payload["tool_id"].as_str(),
                "llm_call" => e.payload["agent_id"].as_str(),
                _ => None,
            };
            match detail {
                Some(d) => format!("{}:{d}", e.kind.as_str()),
                None => e.kind.as_str().to_string(),
            }
        })
        .collect();
    let mut it = labels.iter();
    MINIMUM_EVENTS.iter().all(|want| it.any(|l| l == want))
}
