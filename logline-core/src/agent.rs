//! Agent definitions, and where an agent's tools come from.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::Result;
use crate::llm::DEFAULT_PROVIDER;
use crate::run::Subject;
use crate::tool::ToolSpec;

/// Which model an agent uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelProfile {
    /// Provider name registered on the engine (`default` when omitted).
    #[serde(default = "default_provider")]
    pub provider: String,
    /// Model name.
    pub model: String,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Output token cap.
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "max_tokens")]
    pub max_output_tokens: Option<u32>,
}

fn default_provider() -> String {
    DEFAULT_PROVIDER.to_string()
}

impl ModelProfile {
    /// The default provider with `model`.
    pub fn new(model: impl Into<String>) -> Self {
        ModelProfile {
            provider: default_provider(),
            model: model.into(),
            temperature: None,
            max_output_tokens: None,
        }
    }
}

/// An LLM-backed decision maker: instructions + model profile + allowed tools.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Agent {
    /// Stable id, e.g. `agent.ticket_triage`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// What it is for.
    #[serde(default)]
    pub description: String,
    /// System instructions.
    pub instructions: String,
    /// Model.
    pub model_profile: ModelProfile,
    /// Tools it may call (ids), when `tool_search` is not set.
    #[serde(default)]
    pub allowed_tools: Vec<String>,
    /// Pick the tools of each step from a catalog instead of `allowed_tools`: a
    /// [`ToolSource`] registered on the engine under this name offers the Top-N tools for
    /// the step's request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_search: Option<ToolSearchConfig>,
    /// When set, the final answer must be JSON matching this schema (strict structured output).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Value>,
    /// Cap on LLM turns of the tool loop (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_steps: Option<u32>,
}

impl Agent {
    /// An agent without tools.
    pub fn new(
        id: impl Into<String>,
        instructions: impl Into<String>,
        model_profile: ModelProfile,
    ) -> Self {
        let id = id.into();
        Agent {
            name: id.clone(),
            id,
            description: String::new(),
            instructions: instructions.into(),
            model_profile,
            allowed_tools: Vec::new(),
            tool_search: None,
            output_schema: None,
            max_steps: None,
        }
    }

    /// Sets the allowed tools.
    pub fn with_tools<I: IntoIterator<Item = S>, S: Into<String>>(mut self, tools: I) -> Self {
        self.allowed_tools = tools.into_iter().map(Into::into).collect();
        self
    }

    /// Offers the tools of each step from the engine's tool source named `source`.
    pub fn with_tool_search(mut self, source: impl Into<String>, top_n: Option<usize>) -> Self {
        self.tool_search = Some(ToolSearchConfig {
            source: source.into(),
            top_n,
        });
        self
    }

    /// Sets the structured output schema.
    pub fn with_output_schema(mut self, schema: Value) -> Self {
        self.output_schema = Some(schema);
        self
    }
}

/// How an agent's tools are chosen from a catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolSearchConfig {
    /// Name of the engine's [`ToolSource`].
    #[serde(default = "default_source")]
    pub source: String,
    /// How many tools to offer (default: the source's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_n: Option<usize>,
}

fn default_source() -> String {
    DEFAULT_TOOL_SOURCE.to_string()
}

/// Name of the tool source agents use when their `tool_search` names none.
pub const DEFAULT_TOOL_SOURCE: &str = "default";

/// What a [`ToolSource`] is asked for: the tools one agent step may use.
#[derive(Debug, Clone, Copy)]
pub struct ToolQuery<'a> {
    /// Who the run acts for (connections, policies and tenancy are about this subject).
    pub subject: &'a Subject,
    /// The agent.
    pub agent_id: &'a str,
    /// The step's request (the agent's input as text).
    pub request: &'a str,
    /// How many tools to offer, when the agent says.
    pub top_n: Option<usize>,
    /// A router's intent for the request (`send_email`), which steers the ranking.
    pub intent: Option<&'a str>,
    /// Apps a router named as candidates (`gmail`), which steer the ranking.
    pub candidate_apps: &'a [String],
    /// When the run belongs to an app: the only tool ids its manifest's scopes let it be
    /// offered (the engine also drops any other tool a source returns).
    pub app_tools: Option<&'a [String]>,
}

/// Where an agent's tools come from for one step: a catalog search behind a gate
/// ([`crate::search::ToolSearch`] implements it) or anything a host provides. Only what it
/// returns is offered to the model, and only that can be called in the step.
#[async_trait]
pub trait ToolSource: Send + Sync {
    /// The tools offered for `query`, best first.
    async fn tools(&self, query: &ToolQuery<'_>) -> Result<Vec<Arc<ToolSpec>>>;
}
