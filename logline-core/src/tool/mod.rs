//! Tools: catalog entries, the tool hub contract, and a hub of local Rust handlers.
//!
//! [`names`] turns tool ids into LLM function names and back; [`catalog`] reconciles a hub's
//! listing with the store's tool catalog.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::run::{RunMode, Subject};

pub mod catalog;
pub mod definition;
pub mod names;

pub use catalog::{
    fingerprint, CatalogChanges, CatalogPages, CatalogReconciler, CatalogReport, CatalogScope,
    HubCatalog,
};
pub use definition::tool_definition;
pub use names::ToolNameMap;

/// How dangerous a tool is; policies compare against it.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum RiskLevel {
    /// Reads only.
    #[default]
    Low,
    /// Writes reversible data.
    Medium,
    /// Deletes, moves money, administers, sends to others.
    High,
}

impl RiskLevel {
    /// Stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            RiskLevel::Low => "low",
            RiskLevel::Medium => "medium",
            RiskLevel::High => "high",
        }
    }

    /// Parses [`RiskLevel::as_str`] output.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "low" => RiskLevel::Low,
            "medium" => RiskLevel::Medium,
            "high" => RiskLevel::High,
            _ => return None,
        })
    }
}

/// A catalog entry: one tool (a hub action or a local function) with its schemas and risk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    /// Stable id, e.g. `ticketing.list_open` or `GMAIL_SEND_EMAIL`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// What it does (shown to models).
    #[serde(default)]
    pub description: String,
    /// Toolkit / app it belongs to (`gmail`, `ticketing`); `None` for standalone tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toolkit: Option<String>,
    /// JSON Schema of the input.
    pub input_schema: Value,
    /// JSON Schema of the output, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Value>,
    /// Risk.
    #[serde(default)]
    pub risk_level: RiskLevel,
    /// Side effects (`database_read`, `email_send`, ...).
    #[serde(default)]
    pub side_effects: Vec<String>,
    /// Tags (`read`, `write`, `send`, `delete`, `money`, `admin`, ...).
    #[serde(default)]
    pub tags: Vec<String>,
    /// Every call pauses for human confirmation.
    #[serde(default)]
    pub requires_confirmation: bool,
    /// Calling it again with the same arguments has no further effect (reads, upserts):
    /// a call whose outcome was not recorded may be sent again.
    #[serde(default)]
    pub idempotent: bool,
    /// Whether the user must have connected the toolkit (false for local no-auth tools).
    #[serde(default)]
    pub requires_connection: bool,
    /// Hub that executes it (`local`, `composio`, ...).
    #[serde(default = "local_hub")]
    pub hub: String,
    /// Execution timeout in milliseconds (default: the runtime's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Last change in the source catalog.
    #[serde(default = "Utc::now")]
    pub updated_at: DateTime<Utc>,
}

fn local_hub() -> String {
    LOCAL_HUB.to_string()
}

/// Name of the built-in hub of local Rust handlers.
pub const LOCAL_HUB: &str = "local";

impl ToolSpec {
    /// A low-risk local tool with `input_schema`.
    pub fn new(id: impl Into<String>, description: impl Into<String>, input_schema: Value) -> Self {
        let id = id.into();
        ToolSpec {
            name: id.clone(),
            id,
            description: description.into(),
            toolkit: None,
            input_schema,
            output_schema: None,
            risk_level: RiskLevel::Low,
            side_effects: Vec::new(),
            tags: Vec::new(),
            requires_confirmation: false,
            idempotent: false,
            requires_connection: false,
            hub: local_hub(),
            timeout_ms: None,
            updated_at: Utc::now(),
        }
    }

    /// Sets the risk level.
    pub fn with_risk(mut self, risk: RiskLevel) -> Self {
        self.risk_level = risk;
        self
    }

    /// Sets the tags.
    pub fn with_tags<I: IntoIterator<Item = S>, S: Into<String>>(mut self, tags: I) -> Self {
        self.tags = tags.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the side effects.
    pub fn with_side_effects<I: IntoIterator<Item = S>, S: Into<String>>(mut self, s: I) -> Self {
        self.side_effects = s.into_iter().map(Into::into).collect();
        self
    }

    /// Requires confirmation for every call.
    pub fn confirmed(mut self) -> Self {
        self.requires_confirmation = true;
        self
    }

    /// Marks the tool idempotent (see [`ToolSpec::idempotent`]).
    pub fn idempotent(mut self) -> Self {
        self.idempotent = true;
        self
    }

    /// Sets the toolkit.
    pub fn in_toolkit(mut self, toolkit: impl Into<String>) -> Self {
        self.toolkit = Some(toolkit.into());
        self
    }

    /// Sets the executing hub.
    pub fn on_hub(mut self, hub: impl Into<String>) -> Self {
        self.hub = hub.into();
        self
    }
}

/// Trusted context of a tool execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolContext {
    /// Run, if inside one.
    pub run_id: Option<Uuid>,
    /// Step, if inside one.
    pub step_id: Option<Uuid>,
    /// Who the call acts for (from the run, never from model output).
    pub subject: Subject,
    /// Mode of the run.
    pub mode: RunMode,
    /// Deterministic key `run/step/seq`; hubs that support idempotency pass it on.
    pub idempotency_key: Option<String>,
    /// Connected account to use, when the caller picked one.
    pub connected_account_id: Option<String>,
    /// The agent making the call, when an agent does (from the workflow, never from model
    /// output).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// Where the call reports progress: the run's progress stream, inside a run.
    #[serde(skip)]
    pub progress: Option<ProgressSink>,
}

impl ToolContext {
    /// A context outside any run.
    pub fn for_subject(subject: Subject) -> Self {
        ToolContext {
            run_id: None,
            step_id: None,
            subject,
            mode: RunMode::Draft,
            idempotency_key: None,
            connected_account_id: None,
            agent_id: None,
            progress: None,
        }
    }

    /// Reports the call's progress to the run's progress stream, if it has one.
    pub fn report_progress(&self, progress: f64, total: Option<f64>, message: Option<&str>) {
        if let Some(sink) = &self.progress {
            sink.report(progress, total, message);
        }
    }
}

/// A tool call's progress (`progress` of `total`, when known), as its hub reported it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolProgress {
    /// The tool.
    pub tool_id: String,
    /// Progress so far.
    pub progress: f64,
    /// Total, when known.
    pub total: Option<f64>,
    /// The hub's message (at most 1 KiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The run's progress stream as one tool call sees it: what the call reports arrives there
/// tagged with the run, step, agent and tool. Cheap to clone.
#[derive(Clone)]
pub struct ProgressSink {
    run_id: Uuid,
    step_id: Uuid,
    agent_id: String,
    tool_id: String,
    tx: tokio::sync::broadcast::Sender<crate::engine::Progress>,
}

impl ProgressSink {
    pub(crate) fn new(
        tx: tokio::sync::broadcast::Sender<crate::engine::Progress>,
        run_id: Uuid,
        step_id: Uuid,
        agent_id: Option<&str>,
        tool_id: &str,
    ) -> Self {
        ProgressSink {
            run_id,
            step_id,
            agent_id: agent_id.unwrap_or_default().to_string(),
            tool_id: tool_id.to_string(),
            tx,
        }
    }

    /// Sends one update; nothing happens when no one follows the run.
    pub fn report(&self, progress: f64, total: Option<f64>, message: Option<&str>) {
        if self.tx.receiver_count() == 0 {
            return;
        }
        let _ = self.tx.send(crate::engine::Progress {
            run_id: self.run_id,
            step_id: self.step_id,
            agent_id: self.agent_id.clone(),
            delta: String::new(),
            tool: Some(ToolProgress {
                tool_id: self.tool_id.clone(),
                progress,
                total,
                message: message.map(|m| crate::text::prefix(m, 1024).to_string()),
            }),
        });
    }
}

impl std::fmt::Debug for ProgressSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProgressSink")
            .field("run_id", &self.run_id)
            .field("step_id", &self.step_id)
            .field("tool_id", &self.tool_id)
            .finish_non_exhaustive()
    }
}

/// Two sinks are equal when they report for the same call.
impl PartialEq for ProgressSink {
    fn eq(&self, other: &Self) -> bool {
        (self.run_id, self.step_id, &self.agent_id, &self.tool_id)
            == (other.run_id, other.step_id, &other.agent_id, &other.tool_id)
    }
}

/// A page request over a hub's catalog.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageRequest {
    /// Opaque cursor from the previous page.
    pub cursor: Option<String>,
    /// Page size hint.
    pub limit: Option<u32>,
    /// Only tools changed after this time (incremental refresh), when supported.
    pub updated_since: Option<DateTime<Utc>>,
}

/// A page of a hub's catalog.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ToolPage {
    /// Tools on this page.
    pub tools: Vec<ToolSpec>,
    /// Cursor of the next page; `None` on the last.
    pub next_cursor: Option<String>,
}

/// A user's connection to a toolkit (OAuth account and the like).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    /// Toolkit slug.
    pub toolkit: String,
    /// Account id at the hub.
    pub account_id: String,
    /// Whether it is usable (active and enabled).
    pub active: bool,
}

/// A source of tools that can execute them (local handlers, Composio, MCP, ...).
#[async_trait]
pub trait ToolHub: Send + Sync {
    /// Hub name; matches [`ToolSpec::hub`].
    fn name(&self) -> &str;

    /// One page of the catalog.
    async fn list_tools(&self, page: PageRequest) -> Result<ToolPage>;

    /// Executes `tool_id` with validated `arguments`.
    async fn execute(&self, tool_id: &str, arguments: Value, ctx: &ToolContext) -> Result<Value>;

    /// The user's connections; hubs without accounts return none.
    async fn connections(&self, _subject: &Subject) -> Result<Vec<Connection>> {
        Ok(Vec::new())
    }

    /// Whether an execution sent again with the same [`ToolContext::idempotency_key`] is
    /// applied at most once by the hub. The engine re-sends a call whose outcome it could not
    /// record only to such hubs (or for tools marked [`ToolSpec::idempotent`]).
    fn honours_idempotency_keys(&self) -> bool {
        false
    }
}

/// A local tool implementation.
pub type ToolHandler =
    Arc<dyn Fn(Value, ToolContext) -> BoxFuture<'static, Result<Value>> + Send + Sync>;

/// Wraps an async closure as a [`ToolHandler`].
pub fn handler<F, Fut>(f: F) -> ToolHandler
where
    F: Fn(Value, ToolContext) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Value>> + Send + 'static,
{
    Arc::new(move |args, ctx| Box::pin(f(args, ctx)))
}

/// A hub of Rust handlers registered by the host.
#[derive(Default)]
pub struct LocalToolHub {
    tools: HashMap<String, (ToolSpec, ToolHandler)>,
}

impl LocalToolHub {
    /// An empty hub.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a tool; its spec's hub is set to [`LOCAL_HUB`].
    pub fn register(&mut self, spec: ToolSpec, handler: ToolHandler) {
        let spec = spec.on_hub(LOCAL_HUB);
        self.tools.insert(spec.id.clone(), (spec, handler));
    }

    /// Specs of every registered tool.
    pub fn specs(&self) -> Vec<ToolSpec> {
        let mut v: Vec<_> = self.tools.values().map(|(s, _)| s.clone()).collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }
}

#[async_trait]
impl ToolHub for LocalToolHub {
    fn name(&self) -> &str {
        LOCAL_HUB
    }

    async fn list_tools(&self, _page: PageRequest) -> Result<ToolPage> {
        Ok(ToolPage {
            tools: self.specs(),
            next_cursor: None,
        })
    }

    async fn execute(&self, tool_id: &str, arguments: Value, ctx: &ToolContext) -> Result<Value> {
        let (_, h) = self
            .tools
            .get(tool_id)
            .ok_or_else(|| Error::not_found("tool", tool_id))?;
        h(arguments, ctx.clone()).await
    }
}
