//! The router's decision: one cheap-model call with a strict JSON Schema, stored on the task.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::tool::RiskLevel;

/// What the router decided about a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterDecision {
    /// What the user wants, as a short snake_case verb phrase (`create_note`, `send_email`).
    pub intent: String,
    /// Whether answering needs tools.
    pub needs_tools: bool,
    /// Apps likely to hold the tools (`gmail`, `notes`), best first.
    pub candidate_apps: Vec<String>,
    /// How risky the request is.
    pub risk_level: RiskLevel,
    /// Whether the request needs the attached files.
    pub needs_files: bool,
    /// Whether the router asks for every non-read tool call to be confirmed.
    pub requires_confirmation: bool,
    /// The answer itself when no tools are needed (saves a second model call).
    pub answer: Option<String>,
}

/// The strict JSON Schema of [`RouterDecision`].
pub fn router_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "intent": {"type": "string"},
            "needs_tools": {"type": "boolean"},
            "candidate_apps": {"type": "array", "items": {"type": "string"}},
            "risk_level": {"type": "string", "enum": ["low", "medium", "high"]},
            "needs_files": {"type": "boolean"},
            "requires_confirmation": {"type": "boolean"},
            "answer": {"type": ["string", "null"]}
        },
        "required": ["intent", "needs_tools", "candidate_apps", "risk_level", "needs_files",
                     "requires_confirmation", "answer"],
        "additionalProperties": false
    })
}

/// Built-in instructions of the router agent.
pub const ROUTER_INSTRUCTIONS: &str = "You route the user's latest message. Reply with JSON \
only: intent (short snake_case verb phrase), needs_tools (true when answering needs an app or \
action: sending, creating, looking up the user's data), candidate_apps (apps likely to help, \
e.g. gmail, notes), risk_level (low: reads; medium: reversible writes; high: sends to others, \
deletes, pays), needs_files, requires_confirmation (true when an action writes or sends), \
answer (your complete answer when needs_tools is false, else null).";

impl RouterDecision {
    /// Reads a router answer; bounded so a model cannot store an unbounded decision.
    pub fn parse(v: &Value) -> Result<Self> {
        let mut d: RouterDecision = serde_json::from_value(v.clone())
            .map_err(|e| Error::ModelOutput(format!("router answer does not fit: {e}")))?;
        d.intent = crate::text::prefix(d.intent.trim(), 100).to_string();
        d.candidate_apps.truncate(8);
        for app in &mut d.candidate_apps {
            *app = crate::text::prefix(app.trim(), 64).to_string();
        }
        if d.intent.is_empty() {
            return Err(Error::ModelOutput(
                "router answer has an empty intent".into(),
            ));
        }
        Ok(d)
    }

    /// The decision as stored on the task and in the trace.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}
