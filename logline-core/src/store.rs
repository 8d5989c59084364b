//! The storage contract: definitions (workflows, tools, agents, policies) and execution
//! (runs, steps, events, effect ledger), with one atomic checkpoint per step.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::agent::Agent;
use crate::error::Result;
use crate::event::{Event, NewEvent};
use crate::policy::Policy;
use crate::run::{Run, RunId, RunStatus, Step};
use crate::tool::ToolSpec;
use crate::workflow::Workflow;

/// Offset pagination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page {
    /// Items to skip.
    pub offset: u64,
    /// Items to return.
    pub limit: u64,
}

impl Default for Page {
    fn default() -> Self {
        Page {
            offset: 0,
            limit: 100,
        }
    }
}

impl Page {
    /// The first `limit` items.
    pub fn first(limit: u64) -> Self {
        Page { offset: 0, limit }
    }
}

/// Filter for the tool catalog.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolQuery {
    /// Only this toolkit.
    pub toolkit: Option<String>,
    /// Only this hub.
    pub hub: Option<String>,
    /// Pagination (ordered by id).
    pub page: Page,
}

/// Filter for runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunFilter {
    /// Only this tenant.
    pub tenant_id: Option<String>,
    /// Only this workflow.
    pub workflow_id: Option<String>,
    /// Only this status.
    pub status: Option<RunStatus>,
    /// Pagination (newest first).
    pub page: Page,
}

/// Definitions: what exists (control plane).
#[async_trait]
pub trait DefinitionStore: Send + Sync {
    /// Stores a workflow version. Re-storing an identical version is a no-op; a different
    /// definition under an existing id+version is a `Conflict`.
    async fn put_workflow(&self, workflow: &Workflow) -> Result<()>;
    /// A workflow version; `None` = the most recently registered version.
    async fn get_workflow(&self, id: &str, version: Option<&str>) -> Result<Workflow>;
    /// The most recently registered version of a workflow. The default reads the workflow;
    /// backends may answer cheaper.
    async fn latest_workflow_version(&self, id: &str) -> Result<String> {
        Ok(self.get_workflow(id, None).await?.version)
    }
    /// Latest version of each workflow, ordered by id.
    async fn list_workflows(&self, page: Page) -> Result<Vec<Workflow>>;
    /// Deletes every version of a workflow.
    async fn delete_workflow(&self, id: &str) -> Result<()>;

    /// Inserts or replaces tools (catalog sync writes in batches).
    async fn put_tools(&self, tools: &[ToolSpec]) -> Result<()>;
    /// A tool.
    async fn get_tool(&self, id: &str) -> Result<ToolSpec>;
    /// [`DefinitionStore::get_tool`] as a shared spec: a store that keeps its specs behind
    /// `Arc` hands out the same allocation (no copy of the schemas per call); the default
    /// wraps a fresh copy.
    async fn get_tool_spec(&self, id: &str) -> Result<Arc<ToolSpec>> {
        Ok(Arc::new(self.get_tool(id).await?))
    }
    /// Tools, ordered by id.
    async fn list_tools(&self, query: &ToolQuery) -> Result<Vec<ToolSpec>>;
    /// [`DefinitionStore::list_tools`] as shared specs. A store that keeps its specs behind
    /// `Arc` hands out the same allocations, so a search index filled from it holds no
    /// second copy; the default wraps fresh copies.
    async fn list_tool_specs(&self, query: &ToolQuery) -> Result<Vec<Arc<ToolSpec>>> {
        Ok(self
            .list_tools(query)
            .await?
            .into_iter()
            .map(Arc::new)
            .collect())
    }
    /// Removes a tool.
    async fn delete_tool(&self, id: &str) -> Result<()>;

    /// Inserts or replaces an agent.
    async fn put_agent(&self, agent: &Agent) -> Result<()>;
    /// An agent.
    async fn get_agent(&self, id: &str) -> Result<Agent>;
    /// Agents, ordered by id.
    async fn list_agents(&self, page: Page) -> Result<Vec<Agent>>;

    /// Inserts or replaces a policy.
    async fn put_policy(&self, policy: &Policy) -> Result<()>;
    /// Policies, ordered by id.
    async fn list_policies(&self) -> Result<Vec<Policy>>;
    /// Removes a policy.
    async fn delete_policy(&self, id: &str) -> Result<()>;
}

/// One atomic unit of progress: the run's new state, the finished step (if any) and the
/// events produced since the last checkpoint.
///
/// The run's identity fields (`id`, `workflow_id`, `workflow_version`, `input`, `subject`,
/// `app_action_id`, `created_at`) are fixed when the run is created; a backend may store only
/// the other fields on commit.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint<'a> {
    /// New run state. `run.version` is the version it was read at; the store rejects the
    /// checkpoint with `Conflict` when the stored version differs, else stores version + 1.
    pub run: &'a Run,
    /// Step row to insert or replace (keyed by run and index).
    pub step: Option<Step>,
    /// Events to append, in order.
    pub events: Vec<NewEvent>,
}

/// What a checkpoint committed.
#[derive(Debug, Clone, PartialEq)]
pub struct Committed {
    /// The run's new version.
    pub version: i64,
    /// Sequence number of the last appended event (0 when the run has none).
    pub last_seq: u64,
}

/// Where an effect stands in the ledger.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EffectState {
    /// About to be sent (recorded before the call); no result yet.
    Intended,
    /// The result (or final failure) is recorded.
    #[default]
    Completed,
}

impl EffectState {
    /// Stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            EffectState::Intended => "intended",
            EffectState::Completed => "completed",
        }
    }

    /// Parses [`EffectState::as_str`] output.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "intended" => Some(EffectState::Intended),
            "completed" => Some(EffectState::Completed),
            _ => None,
        }
    }
}

/// A recorded effect (LLM or tool result) inside a step, replayed instead of re-executed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EffectRecord {
    /// Run.
    pub run_id: RunId,
    /// Step index.
    pub step_index: u32,
    /// Position of the effect inside the step.
    pub seq: u32,
    /// `llm` or `tool`.
    pub kind: String,
    /// Tool or agent id.
    pub key: String,
    /// The result (JSON).
    pub output: Value,
    /// The recorded failure, when the effect failed (JSON error).
    pub error: Option<Value>,
    /// Intended (sent, no result yet) or completed.
    #[serde(default)]
    pub state: EffectState,
    /// When recorded.
    pub recorded_at: DateTime<Utc>,
}

impl EffectRecord {
    /// The intent of an effect at `(run_id, step_index, seq)`: recorded before the call.
    pub fn intent(run_id: RunId, step_index: u32, seq: u32, kind: &str, key: &str) -> Self {
        EffectRecord {
            run_id,
            step_index,
            seq,
            kind: kind.to_string(),
            key: key.to_string(),
            output: Value::Null,
            error: None,
            state: EffectState::Intended,
            recorded_at: Utc::now(),
        }
    }
}

/// Execution: runs, steps, events and the effect ledger.
#[async_trait]
pub trait RunStore: Send + Sync {
    /// Creates a run (version 0 → stored as 1) with its first events. `Conflict` if it exists.
    async fn create_run(&self, run: &Run, events: &[NewEvent]) -> Result<Committed>;
    /// A run.
    async fn get_run(&self, id: RunId) -> Result<Run>;
    /// Runs, newest first.
    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<Run>>;
    /// Commits a checkpoint atomically with optimistic concurrency on the run version.
    async fn commit(&self, checkpoint: Checkpoint<'_>) -> Result<Committed>;
    /// Events with `seq > after_seq`, ascending, at most `limit`.
    async fn events(&self, run_id: RunId, after_seq: u64, limit: usize) -> Result<Vec<Event>>;
    /// The seq of the run's last event (0 before the first): where a reader that wants only
    /// what comes next starts. The default pages through the events; backends read it
    /// directly.
    async fn last_seq(&self, run_id: RunId) -> Result<u64> {
        const PAGE: usize = 1000;
        let mut seq = 0;
        loop {
            let page = self.events(run_id, seq, PAGE).await?;
            if let Some(e) = page.last() {
                seq = e.seq;
            }
            if page.len() < PAGE {
                return Ok(seq);
            }
        }
    }
    /// Steps of a run by index.
    async fn steps(&self, run_id: RunId) -> Result<Vec<Step>>;
    /// Records a completed effect at (run, step, seq) unless a completed one exists there (it
    /// replaces an intent); returns the stored record, which is the earlier one when another
    /// execution won the race.
    async fn record_effect(&self, effect: &EffectRecord) -> Result<EffectRecord>;
    /// Records the intent of an effect before it is sent, fenced by the run version the
    /// caller executes at: `Conflict` when the run's version is no longer `fence` (another
    /// execution owns the run now). When a record already exists at that position it is
    /// returned instead and nothing is written; `None` means this call recorded the intent.
    async fn record_intent(
        &self,
        intent: &EffectRecord,
        fence: i64,
    ) -> Result<Option<EffectRecord>>;
    /// Removes an unresolved intent whose call provably did not run, so a later attempt may
    /// send it. A completed record is left as it is.
    async fn release_intent(&self, run_id: RunId, step_index: u32, seq: u32) -> Result<()>;
    /// Effects of one step, by seq.
    async fn effects(&self, run_id: RunId, step_index: u32) -> Result<Vec<EffectRecord>>;
    /// Waits until the run may have events after `after_seq` or `timeout` passes.
    async fn wait_for_events(&self, run_id: RunId, after_seq: u64, timeout: Duration)
        -> Result<()>;
    /// Waits until the run, seen unsettled with its events up to `after_seq`, may have become
    /// terminal or paused, or `timeout` passes; the caller reads the run and decides. The
    /// default wakes at every new event; a store that knows when a run settles wakes once.
    async fn wait_for_settled(
        &self,
        run_id: RunId,
        after_seq: u64,
        timeout: Duration,
    ) -> Result<()> {
        self.wait_for_events(run_id, after_seq, timeout).await
    }
    /// Deletes up to `limit` terminal runs last updated before `cutoff`, with their steps,
    /// events and effects. Returns how many runs were deleted; call again until 0.
    async fn purge_runs(&self, cutoff: DateTime<Utc>, limit: u64) -> Result<u64>;
}

/// Everything the engine stores.
pub trait Store: DefinitionStore + RunStore {}

impl<T: DefinitionStore + RunStore + ?Sized> Store for T {}
