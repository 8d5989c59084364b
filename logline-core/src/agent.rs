//! Agent definitions (blueprint §4.2, §6.2).

use serde::{Deserialize, Serialize};
use serde_json::Value;

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
    crate::engine::DEFAULT_PROVIDER.to_string()
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
    /// Tools it may call (ids).
    #[serde(default)]
    pub allowed_tools: Vec<String>,
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
            output_schema: None,
            max_steps: None,
        }
    }

    /// Sets the allowed tools.
    pub fn with_tools<I: IntoIterator<Item = S>, S: Into<String>>(mut self, tools: I) -> Self {
        self.allowed_tools = tools.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the structured output schema.
    pub fn with_output_schema(mut self, schema: Value) -> Self {
        self.output_schema = Some(schema);
        self
    }
}
