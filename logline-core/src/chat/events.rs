//! [`ChatEvent`]: a chat task's progress as the user sees it, read from the run's events
//! (`chat_step`, `tool_call`, `error`, `run_failed`, ...) and its streamed text deltas.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::event::{ChatStepPayload, Event, EventPayload};

/// One step of a chat task's progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChatEvent {
    /// The router decided (see [`super::RouterDecision`]).
    Router {
        /// The decision.
        decision: Value,
    },
    /// The tools the executor is shown.
    ToolsSelected {
        /// Tool ids, best first.
        tools: Vec<String>,
    },
    /// A tool call finished, was refused or was rejected.
    ToolCall {
        /// The tool.
        tool_id: String,
        /// Whether it ran and succeeded.
        ok: bool,
        /// Its result (`null` unless `ok`).
        output: Value,
        /// Why it failed or did not run.
        error: Option<String>,
    },
    /// The task waits for the user to confirm exactly this call.
    AwaitingConfirm(Confirmation),
    /// Text the executor is writing (not stored; live subscribers only).
    Delta {
        /// New text.
        text: String,
    },
    /// The answer, saved to the conversation.
    Final {
        /// The text.
        text: String,
        /// The cap that ended the task early, if one did.
        limit: Option<String>,
    },
    /// The task failed or was cancelled.
    Error {
        /// Error kind (`policy_denied`, `budget_exceeded`, `cancelled`, ...).
        kind: String,
        /// What happened.
        message: String,
    },
}

/// A call awaiting the user's confirmation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    /// The gate `confirm` and `deny` name.
    pub gate_id: String,
    /// The tool.
    pub tool_id: String,
    /// What exactly the call will do.
    pub preview: String,
    /// SHA-256 of the canonical JSON of the arguments a confirmation opens.
    pub args_digest: String,
}

impl ChatEvent {
    /// The chat view of a run event; `None` for events a chat does not show.
    pub fn from_event(event: &Event) -> Option<ChatEvent> {
        Some(match event.decode().ok()? {
            EventPayload::ChatStep(step) => match step {
                ChatStepPayload::Router { decision } => ChatEvent::Router { decision },
                ChatStepPayload::ToolsSelected { tools } => ChatEvent::ToolsSelected { tools },
                ChatStepPayload::AwaitingConfirm {
                    gate_id,
                    tool_id,
                    preview,
                    args_digest,
                } => ChatEvent::AwaitingConfirm(Confirmation {
                    gate_id,
                    tool_id,
                    preview,
                    args_digest,
                }),
                ChatStepPayload::Final { text, limit } => ChatEvent::Final { text, limit },
            },
            EventPayload::ToolCall(call) => ChatEvent::ToolCall {
                ok: call.error.is_none(),
                error: call.error.map(|e| e.message),
                tool_id: call.tool_id,
                output: call.output,
            },
            EventPayload::Error(e) if e.tool_id.is_some() => ChatEvent::ToolCall {
                tool_id: e.tool_id.unwrap_or_default(),
                ok: false,
                output: Value::Null,
                error: Some(e.error.message),
            },
            EventPayload::RunFailed(f) => ChatEvent::Error {
                kind: f.error.kind.as_str().to_string(),
                message: f.error.message,
            },
            EventPayload::RunCancelled(c) => ChatEvent::Error {
                kind: "cancelled".into(),
                message: c.reason,
            },
            _ => return None,
        })
    }
}
