//! Runs, steps and the state the engine checkpoints between steps.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::error::BudgetKind;

mod stored;

pub use stored::{RUN_STATE_VERSION, RUN_STATE_VERSION_KEY};

/// Identifier of a run.
pub type RunId = Uuid;

/// Lifecycle of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Created and enqueued, not yet picked up.
    Pending,
    /// A worker is executing it.
    Running,
    /// Waiting at a human gate.
    Paused,
    /// Finished with a result.
    Completed,
    /// Finished with an error.
    Failed,
    /// Stopped by a caller.
    Cancelled,
}

impl RunStatus {
    /// Whether the run can never change again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunStatus::Completed | RunStatus::Failed | RunStatus::Cancelled
        )
    }

    /// Stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Pending => "pending",
            RunStatus::Running => "running",
            RunStatus::Paused => "paused",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }

    /// Parses [`RunStatus::as_str`] output.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => RunStatus::Pending,
            "running" => RunStatus::Running,
            "paused" => RunStatus::Paused,
            "completed" => RunStatus::Completed,
            "failed" => RunStatus::Failed,
            "cancelled" => RunStatus::Cancelled,
            _ => return None,
        })
    }
}

/// Execution mode: `draft` prepares and asks, `auto` acts (policies read it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunMode {
    /// Safe default.
    #[default]
    Draft,
    /// Act without asking where policies allow.
    Auto,
}

impl RunMode {
    /// Stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunMode::Draft => "draft",
            RunMode::Auto => "auto",
        }
    }
}

/// Who a run acts for. Always taken from the trusted caller context, never from LLM output.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Subject {
    /// Tenant (required for isolation; `"default"` when embedded single-tenant).
    pub tenant_id: String,
    /// End user, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// App the run belongs to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    /// Role used by policies (`admin`, `developer`, `user`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

impl Subject {
    /// A subject of `tenant_id` with no user, app or role.
    pub fn tenant(tenant_id: impl Into<String>) -> Self {
        Subject {
            tenant_id: tenant_id.into(),
            ..Default::default()
        }
    }

    /// Sets the user.
    pub fn with_user(mut self, user_id: impl Into<String>) -> Self {
        self.user_id = Some(user_id.into());
        self
    }

    /// Sets the app.
    pub fn with_app(mut self, app_id: impl Into<String>) -> Self {
        self.app_id = Some(app_id.into());
        self
    }

    /// Sets the role.
    pub fn with_role(mut self, role: impl Into<String>) -> Self {
        self.role = Some(role.into());
        self
    }
}

/// Per-run execution budget. `None` means unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    /// Cost ceiling in US cents for LLM calls and charged tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_limit_cents: Option<f64>,
    /// Maximum number of LLM calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm_calls_limit: Option<u32>,
    /// Wall-clock latency SLO from run start, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_slo_ms: Option<u64>,
}

impl Budget {
    /// The stricter of `self` and `other`, field by field (`None` = unlimited).
    pub fn tightened(&self, other: &Budget) -> Budget {
        Budget {
            cost_limit_cents: min_opt(self.cost_limit_cents, other.cost_limit_cents),
            llm_calls_limit: min_opt(self.llm_calls_limit, other.llm_calls_limit),
            latency_slo_ms: min_opt(self.latency_slo_ms, other.latency_slo_ms),
        }
    }
}

/// The smaller of two optional limits (`None` = unlimited).
fn min_opt<T: PartialOrd + Copy>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if y < x { y } else { x }),
        (x, None) => x,
        (None, y) => y,
    }
}

/// What a run has consumed so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RunUsage {
    /// LLM calls made.
    pub llm_calls: u32,
    /// Tool calls executed.
    pub tool_calls: u32,
    /// Input tokens (including cached).
    pub input_tokens: u64,
    /// Cached input tokens.
    pub cached_input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Cost in US cents.
    pub cost_cents: f64,
}

impl RunUsage {
    /// The budget this usage exceeds, if any (latency is checked separately).
    pub fn exceeded(&self, budget: &Budget) -> Option<BudgetKind> {
        if let Some(limit) = budget.cost_limit_cents {
            if self.cost_cents > limit {
                return Some(BudgetKind::Cost);
            }
        }
        if let Some(limit) = budget.llm_calls_limit {
            if self.llm_calls > limit {
                return Some(BudgetKind::LlmCalls);
            }
        }
        None
    }
}

/// What a human gate waits for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum GateSubject {
    /// A `human_gate` node.
    Node {
        /// The gate node.
        node_id: String,
    },
    /// A tool call that policy or the tool's `requires_confirmation` flag holds.
    ToolCall {
        /// The tool.
        tool_id: String,
        /// SHA-256 of the canonical JSON of the arguments.
        args_digest: String,
        /// The arguments, for the approver's preview (redacted in events).
        arguments: Value,
    },
    /// The start of the run (policy `require_approval` at `run_start`).
    RunStart,
    /// An agent call (policy `require_approval` at `agent_call`).
    AgentCall {
        /// The agent.
        agent_id: String,
    },
}

/// A gate the run is paused at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingGate {
    /// Deterministic id; `approve`/`deny` must name it.
    pub gate_id: String,
    /// What is being approved.
    pub subject: GateSubject,
    /// Why approval is needed.
    pub reason: String,
    /// The policy that asked for it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_id: Option<String>,
    /// The role an approver needs (checked by [`crate::engine::ScopedEngine`]); `None` =
    /// any of the engine's approver roles ([`crate::engine::ApprovalRules`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_role: Option<String>,
    /// Whether the run's own subject user may not approve it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub forbid_self_approval: bool,
    /// When the run paused.
    pub requested_at: DateTime<Utc>,
}

/// A granted approval, bound to one gate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    /// The gate it opens.
    pub gate_id: String,
    /// For tool calls: the digest of the approved arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args_digest: Option<String>,
    /// Who approved.
    pub approver: String,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When.
    pub at: DateTime<Utc>,
    /// The call was refused instead: the run goes on and the model is told it was refused
    /// (tool-call gates only).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub refused: bool,
}

/// Where the run stands between steps: everything needed to continue on any worker.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    /// Node to execute next; `None` once the graph is exhausted.
    pub next_node: Option<String>,
    /// Index the next step will get (0-based, dense).
    pub step_index: u32,
    /// Output of the last completed step (input of the next).
    pub last_output: Value,
    /// How often each node has run (cycle guards).
    pub visits: BTreeMap<String, u32>,
    /// Latest output of each node that a `$nodes.<id>` template of the workflow reads.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, Value>,
    /// Events of the current, unfinished step already committed (at a pause);
    /// a replay of that step regenerates but does not re-append them.
    pub committed_step_events: u32,
}

/// One execution of a workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    /// Run id.
    pub id: RunId,
    /// Workflow id.
    pub workflow_id: String,
    /// Exact workflow version the run executes.
    pub workflow_version: String,
    /// Status.
    pub status: RunStatus,
    /// Mode.
    pub mode: RunMode,
    /// Input as given to `start_run`.
    pub input: Value,
    /// Final result once completed.
    pub result: Option<Value>,
    /// Error once failed (see [`crate::Error::to_json`]).
    pub error: Option<Value>,
    /// Who the run acts for.
    pub subject: Subject,
    /// App action that started it, if any.
    pub app_action_id: Option<String>,
    /// Budget.
    pub budget: Budget,
    /// Consumption so far.
    pub usage: RunUsage,
    /// Position in the graph.
    pub cursor: Cursor,
    /// Gate the run waits at, when paused.
    pub pending_gate: Option<PendingGate>,
    /// Approvals granted so far.
    pub approvals: Vec<Approval>,
    /// Optimistic-concurrency version, bumped by every committed change.
    pub version: i64,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// First time a worker started it (latency budget clock).
    pub started_at: Option<DateTime<Utc>>,
}

impl Run {
    /// A pending draft run of `workflow_id` at `workflow_version`, positioned at `entry`,
    /// with a fresh time-ordered id; the entry node receives `input`.
    pub fn new(
        workflow_id: impl Into<String>,
        workflow_version: impl Into<String>,
        entry: impl Into<String>,
        input: Value,
        subject: Subject,
    ) -> Run {
        let now = Utc::now();
        Run {
            id: Uuid::now_v7(),
            workflow_id: workflow_id.into(),
            workflow_version: workflow_version.into(),
            status: RunStatus::Pending,
            mode: RunMode::Draft,
            input: input.clone(),
            result: None,
            error: None,
            subject,
            app_action_id: None,
            budget: Budget::default(),
            usage: RunUsage::default(),
            cursor: Cursor {
                next_node: Some(entry.into()),
                last_output: input,
                ..Default::default()
            },
            pending_gate: None,
            approvals: Vec::new(),
            version: 0,
            created_at: now,
            updated_at: now,
            started_at: None,
        }
    }
}

/// Node type recorded on a step.
pub use crate::workflow::NodeType;

/// Status of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Executing.
    Running,
    /// Finished with output.
    Completed,
    /// Finished with an error.
    Failed,
    /// Not executed.
    Skipped,
}

impl StepStatus {
    /// Stable snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Running => "running",
            StepStatus::Completed => "completed",
            StepStatus::Failed => "failed",
            StepStatus::Skipped => "skipped",
        }
    }
}

/// The execution of one node inside a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// Deterministic id derived from run id and index.
    pub id: Uuid,
    /// Run.
    pub run_id: RunId,
    /// Dense 0-based index within the run.
    pub index: u32,
    /// Node executed.
    pub node_id: String,
    /// Type of that node.
    pub node_type: NodeType,
    /// Status.
    pub status: StepStatus,
    /// Input the node received.
    pub input: Value,
    /// Output it produced.
    pub output: Option<Value>,
    /// Error, when failed.
    pub error: Option<Value>,
    /// Start.
    pub started_at: DateTime<Utc>,
    /// End.
    pub finished_at: Option<DateTime<Utc>>,
}

/// Deterministic step id: the same run and index always give the same id, on any worker.
pub fn step_id(run_id: RunId, index: u32) -> Uuid {
    let (hi, lo) = run_id.as_u64_pair();
    // Mix the index into the low half; keeps ids unique per (run, index) and cheap to compute.
    Uuid::from_u64_pair(
        hi ^ 0x5354_4550_0000_0000,
        lo ^ (u64::from(index) + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
    )
}
