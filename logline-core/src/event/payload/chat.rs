//! `chat_step`: a stage of a chat turn, in the order the turn reaches them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `chat_step`: what one stage of a chat turn decided (step-level). Tool calls, pauses and
/// failures are the engine's own `tool_call`, `run_paused` and `error` events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "stage", rename_all = "snake_case")]
pub enum ChatStepPayload {
    /// The router's decision (its JSON output).
    Router {
        /// The decision, as the router's schema defines it.
        decision: Value,
    },
    /// The tools the executor is shown, best first, after the gate.
    ToolsSelected {
        /// Tool ids.
        tools: Vec<String>,
    },
    /// A call waits for a person's confirmation; `preview` says exactly what it will do.
    AwaitingConfirm {
        /// The gate `confirm`/`deny` name.
        gate_id: String,
        /// The tool.
        tool_id: String,
        /// Human-readable description of the exact call.
        preview: String,
        /// SHA-256 of the canonical JSON of the arguments the confirmation opens.
        args_digest: String,
    },
    /// The assistant's answer, saved to the conversation.
    Final {
        /// The text.
        text: String,
        /// The cap that ended the task early, if one did (`tool_calls`, `retries`, `turns`,
        /// `attachments`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<String>,
    },
}
