//! The orchestrator: starts runs, executes them on workers, checkpoints every step.
//!
//! `start_run` records the run and enqueues a job, returning at once. Workers (in this
//! process via [`Engine::spawn_workers`], or in other processes sharing the store and queue)
//! claim jobs and execute runs step by step. Each finished step is committed together with its
//! events and the run's new cursor as one [`crate::store::Checkpoint`]; LLM and tool results
//! inside a step are recorded in the effect ledger first, so a run resumed elsewhere (crash,
//! lost lease, approval) continues after its last checkpoint and replays, never repeats, the
//! effects of the interrupted step.

mod api;
mod builder;
mod exec;
mod gate;
mod llm_nodes;
mod policies;
mod starter;
mod step;
mod tools;
mod worker;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub use api::StartRun;
pub use builder::EngineBuilder;
pub use gate::digest as args_digest;
pub use policies::StorePolicySource;
pub use starter::{RunStarter, StoreThenQueue};
pub use worker::{spawn_worker, WorkerOptions, WorkerPool};

use crate::llm::{LlmProvider, PriceTable};
use crate::policy::PolicyEngine;
use crate::queue::Queue;
use crate::redact::Redactor;
use crate::run::RunId;
use crate::schema::SchemaCache;
use crate::store::Store;
use crate::tool::ToolHub;
use crate::workflow::Workflow;

/// Name of the provider agents use when their model profile names none.
pub const DEFAULT_PROVIDER: &str = "default";

/// Queue that carries run jobs.
pub const RUN_QUEUE: &str = "logline.runs";

/// Tunables of the engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineConfig {
    /// Default tool timeout.
    pub tool_timeout: Duration,
    /// Default cap on LLM turns of an agent's tool loop.
    pub agent_max_steps: u32,
    /// Default attempts a router (or edge-condition evaluator) gets to give a valid choice.
    pub router_attempts: u32,
    /// Model of the built-in edge-condition evaluator (on the default provider).
    pub condition_model: String,
    /// Attempts of a run job before it is dead-lettered (and the run failed).
    pub run_job_attempts: u32,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            tool_timeout: Duration::from_secs(30),
            agent_max_steps: 5,
            router_attempts: 3,
            condition_model: "gpt-4o-mini".into(),
            run_job_attempts: 5,
        }
    }
}

/// A streamed text delta of an LLM call inside a run (ephemeral, not stored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Run.
    pub run_id: RunId,
    /// Step.
    pub step_id: Uuid,
    /// Agent producing the text.
    pub agent_id: String,
    /// New text.
    pub delta: String,
}

/// A deterministic transform registered by the host for `static` nodes:
/// `(node input, run input) -> output`.
pub type StaticHandler = Arc<dyn Fn(&Value, &Value) -> crate::Result<Value> + Send + Sync>;

/// Shared state of an engine.
pub(crate) struct Inner {
    pub store: Arc<dyn Store>,
    pub queue: Arc<dyn Queue>,
    pub starter: Arc<dyn RunStarter>,
    pub llms: HashMap<String, Arc<dyn LlmProvider>>,
    pub hubs: HashMap<String, Arc<dyn ToolHub>>,
    pub policy: Arc<dyn PolicyEngine>,
    pub policy_source: Option<Arc<StorePolicySource>>,
    pub statics: HashMap<String, StaticHandler>,
    pub prices: PriceTable,
    pub redactor: Redactor,
    pub config: EngineConfig,
    pub schemas: SchemaCache,
    /// Immutable workflow versions by id, then version.
    pub workflows: Mutex<HashMap<String, HashMap<String, Arc<Workflow>>>>,
    pub running: Mutex<HashMap<RunId, CancellationToken>>,
    /// Latest version of each workflow as last read, with the time of the read.
    pub latest: Mutex<HashMap<String, (std::time::Instant, String)>>,
    pub progress: broadcast::Sender<Progress>,
}

/// The orchestrator. Cheap to clone; all clones share one engine.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("llms", &self.inner.llms.keys().collect::<Vec<_>>())
            .field("hubs", &self.inner.hubs.keys().collect::<Vec<_>>())
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}
