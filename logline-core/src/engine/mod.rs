//! The orchestrator: starts runs, executes them on workers, checkpoints every step.
//!
//! `start_run` records the run and enqueues a job, returning at once. Workers (in this
//! process via [`Engine::spawn_workers`], or in other processes sharing the store and queue)
//! claim jobs and execute runs step by step. Each finished step is committed together with its
//! events and the run's new cursor as one [`crate::store::Checkpoint`]; LLM and tool results
//! inside a step are recorded in the effect ledger first, so a run resumed elsewhere (crash,
//! lost lease, approval) continues after its last checkpoint and replays, never repeats, the
//! effects of the interrupted step.
//!
//! The run path, top to bottom (each module calls only the ones below it):
//!
//! ```text
//! api/        registry · runs · watch · scoped   the public operations (scoped: per tenant)
//! job         RunJobs                        the run-job handler a worker calls (and its
//!                                            cross-process cancel watch)
//! exec        Executor                       the step loop, checkpoints, finishing a run
//! nodes/      static · tool · agent · router · human_gate
//! edges       deterministic and natural-language edges
//! llm         one LLM call, agent-call policy, constrained choices
//! tool_runtime  policy → approval → validation → hub → ledger
//! step · ledger · gate                       per-step state, effect records, approvals
//! limits                                     what a model sees of tool results and errors
//! sweep                                      re-enqueues runs left without a job
//! ```

mod api;
mod app_scope;
mod builder;
mod edges;
mod exec;
mod gate;
mod job;
mod ledger;
mod limits;
mod llm;
mod nodes;
mod policies;
mod starter;
mod step;
mod sweep;
mod tool_runtime;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use uuid::Uuid;

pub(crate) use api::keyed_run_id;
pub use api::{ApprovalRules, ImportReport, Principal, ScopedEngine, StartRun};
pub use builder::EngineBuilder;
pub use gate::digest as args_digest;
pub use policies::StorePolicySource;
pub use starter::{RunStarter, StoreThenQueue};
pub use sweep::{SweepPolicy, SweepReport, SWEEP_QUEUE};

/// Name of the provider agents use when their model profile names none.
pub use crate::llm::DEFAULT_PROVIDER;
/// Worker pools are generic queue machinery; re-exported for [`Engine::spawn_workers`].
pub use crate::queue::{spawn_worker, WorkerOptions, WorkerPool};

use crate::queue::Queue;
use crate::run::RunId;
use crate::search::GateRules;
use exec::Executor;
use job::RunningRuns;

/// Queue that carries run jobs.
pub const RUN_QUEUE: &str = "logline.runs";

/// Tunables of the engine. Fields missing from a serialized config take their defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EngineConfig {
    /// Default tool timeout.
    pub tool_timeout: Duration,
    /// Default cap on LLM turns of an agent's tool loop.
    pub agent_max_steps: u32,
    /// Default attempts a router (or edge-condition evaluator) gets to give a valid choice.
    pub router_attempts: u32,
    /// Model of the built-in edge-condition evaluator (on the default provider).
    pub condition_model: String,
    /// Attempts of a run job before it is dead-lettered (and the run failed). An LLM call
    /// whose provider already retried it ([`crate::Error::retries_spent`]) is not retried
    /// by the job again: the step fails with the provider's error, kind kept.
    pub run_job_attempts: u32,
    /// The gate every tool call a model asks for passes at call time (whatever offered the
    /// tool): blocked tags, scopes and unconnected toolkits refuse it; a risk above the
    /// ceiling makes a person confirm the exact call. Default: tool search's default rules.
    #[serde(default)]
    pub agent_tool_gate: GateRules,
    /// Deadline of one LLM call (every attempt the provider makes, streaming included);
    /// past it the call fails with [`crate::Error::Timeout`]. Adapters have their own,
    /// shorter deadlines; this one bounds providers that have none.
    pub llm_timeout: Duration,
    /// Most bytes of a tool result shown to a model (its JSON text); a longer result is cut
    /// there and marked as cut. The ledger and the `tool_call` event keep the whole result.
    pub max_tool_output_bytes: usize,
    /// Most bytes of an error message stored (run and step rows, events, the job's
    /// `last_error`) or shown to a model; a longer message is cut and marked.
    pub max_error_message_bytes: usize,
    /// Most tool calls of one model turn that are executed; the calls beyond it are
    /// answered to the model with an `invalid_input` error and not executed.
    pub max_parallel_tool_calls: usize,
    /// Whether step rows (input, output, error) are stored with secret values redacted:
    /// strings matching the redactor's secret patterns or its literal secrets. Values under
    /// sensitive key names are kept (those rules apply to events only).
    pub redact_steps: bool,
    /// Whether effect-ledger rows (LLM responses, tool results) are stored with secret
    /// values redacted, as for [`EngineConfig::redact_steps`]. A step resumed from the
    /// ledger then sees `[REDACTED]` where the live call saw the secret; turn this off when
    /// a tool returns a secret a later call of the same step needs.
    pub redact_effects: bool,
    /// Who may decide gates through a [`ScopedEngine`].
    #[serde(default)]
    pub approvals: ApprovalRules,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            tool_timeout: Duration::from_secs(30),
            agent_max_steps: 5,
            router_attempts: 3,
            condition_model: "gpt-4o-mini".into(),
            run_job_attempts: 5,
            agent_tool_gate: GateRules::default(),
            llm_timeout: Duration::from_secs(300),
            max_tool_output_bytes: 64 * 1024,
            max_error_message_bytes: 8 * 1024,
            max_parallel_tool_calls: 16,
            redact_steps: true,
            redact_effects: true,
            approvals: ApprovalRules::default(),
        }
    }
}

/// Live progress inside a run (ephemeral, not stored): a streamed text delta of an agent's
/// LLM call, or a tool call's progress as its hub reported it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Run.
    pub run_id: RunId,
    /// Step.
    pub step_id: Uuid,
    /// Agent producing the text or making the tool call (empty for a tool node's call).
    pub agent_id: String,
    /// New text (empty for a tool's progress).
    pub delta: String,
    /// A tool call's progress; `None` for text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<crate::tool::ToolProgress>,
}

/// A deterministic transform registered by the host for `static` nodes:
/// `(node input, run input) -> output`.
pub type StaticHandler = Arc<dyn Fn(&Value, &Value) -> crate::Result<Value> + Send + Sync>;

/// What the public operations share: the executor plus what only the API needs.
pub(crate) struct Inner {
    exec: Arc<Executor>,
    queue: Arc<dyn Queue>,
    starter: Arc<dyn RunStarter>,
    policy_source: Option<Arc<StorePolicySource>>,
    running: Arc<RunningRuns>,
    /// Latest version of each workflow as last read, with the time of the read.
    latest: Mutex<HashMap<String, (Instant, String)>>,
}

/// The orchestrator. Cheap to clone; all clones share one engine.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("llms", &self.inner.exec.llms.keys().collect::<Vec<_>>())
            .field("hubs", &self.inner.exec.hubs.keys().collect::<Vec<_>>())
            .field("config", &self.inner.exec.config)
            .finish_non_exhaustive()
    }
}

/// Locks `m`, recovering the data of a poisoned lock: every map guarded this way is a cache
/// or a registry whose entries are written whole, so a panic elsewhere cannot leave it torn.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
