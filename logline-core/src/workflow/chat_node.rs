//! The `chat` node's configuration: which agents play router, summariser and executor, the
//! tool source, the hard caps and the confirmation rules.

use serde::{Deserialize, Serialize};

use crate::agent::DEFAULT_TOOL_SOURCE;
use crate::tool::{RiskLevel, ToolSpec};

/// A `chat` node: one chat turn — rolling summary, router, gate + Top-N tool search,
/// executor, confirmation of risky calls, final answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatNode {
    /// Agent that classifies the request (cheap model, strict JSON).
    pub router_agent_id: String,
    /// Agent that answers and calls tools (main model); it sees only the Top-N tools.
    pub executor_agent_id: String,
    /// Agent that keeps the rolling summary (cheap model); default: the router agent's model
    /// with built-in instructions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary_agent_id: Option<String>,
    /// Name of the engine's tool source the Top-N come from.
    #[serde(default = "default_source")]
    pub tool_source: String,
    /// How many tools the executor is shown.
    #[serde(default = "default_top_n")]
    pub top_n: usize,
    /// Hard caps of one task.
    #[serde(default)]
    pub limits: ChatLimits,
    /// Which calls a person confirms before they run.
    #[serde(default)]
    pub confirm: ConfirmRules,
}

fn default_source() -> String {
    DEFAULT_TOOL_SOURCE.to_string()
}

fn default_top_n() -> usize {
    8
}

impl ChatNode {
    /// A node with the default tool source, Top-8, default caps and confirmation rules.
    pub fn new(router_agent_id: impl Into<String>, executor_agent_id: impl Into<String>) -> Self {
        ChatNode {
            router_agent_id: router_agent_id.into(),
            executor_agent_id: executor_agent_id.into(),
            summary_agent_id: None,
            tool_source: default_source(),
            top_n: default_top_n(),
            limits: ChatLimits::default(),
            confirm: ConfirmRules::default(),
        }
    }

    /// Every agent the node names.
    pub fn agent_ids(&self) -> impl Iterator<Item = &String> {
        [&self.router_agent_id, &self.executor_agent_id]
            .into_iter()
            .chain(self.summary_agent_id.as_ref())
    }
}

/// Hard caps of one chat task; exceeding one ends the task with a message saying which.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChatLimits {
    /// Tool calls executed per task.
    pub max_tool_calls: u32,
    /// Invalid router answers asked again, and failed tool calls the executor may retry.
    pub max_retries: u32,
    /// Executor turns (model calls) per task.
    pub max_turns: u32,
    /// Total size of a message's attachments, in bytes.
    pub max_attachment_bytes: u64,
    /// Attachments per message.
    pub max_attachments: u32,
}

impl Default for ChatLimits {
    fn default() -> Self {
        ChatLimits {
            max_tool_calls: 3,
            max_retries: 2,
            max_turns: 6,
            max_attachment_bytes: 20 * 1024 * 1024,
            max_attachments: 10,
        }
    }
}

/// Which tool calls pause for a person's confirmation (besides tools flagged
/// `requires_confirmation` and calls above the engine's risk ceiling, which always do).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConfirmRules {
    /// Tools carrying any of these tags (case-insensitive): writes and sends to others.
    pub tags: Vec<String>,
    /// Tools at or above this risk.
    pub min_risk: RiskLevel,
}

impl Default for ConfirmRules {
    fn default() -> Self {
        ConfirmRules {
            tags: ["send", "post", "publish", "write", "update"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            min_risk: RiskLevel::High,
        }
    }
}

impl ConfirmRules {
    /// Whether a call of `tool` needs confirmation; `router_asks` is the router's
    /// `requires_confirmation`, which can only add confirmations (to any tool that is not
    /// tagged read-only), never remove one.
    pub fn needs_confirmation(&self, tool: &ToolSpec, router_asks: bool) -> bool {
        let has = |t: &str| tool.tags.iter().any(|x| x.eq_ignore_ascii_case(t));
        tool.requires_confirmation
            || tool.risk_level >= self.min_risk
            || self.tags.iter().any(|t| has(t))
            || (router_asks && !(has("read") && tool.tags.len() == 1))
    }
}
