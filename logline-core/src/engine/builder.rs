//! Assembling an engine from backends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use super::exec::Executor;
use super::job::RunningRuns;
use super::{Engine, EngineConfig, Inner, StaticHandler, StorePolicySource, DEFAULT_PROVIDER};
use crate::agent::ToolSource;
use crate::app::AppStore;
use crate::error::{Error, Result};
use crate::llm::{LlmProvider, PriceTable};
use crate::memory::{MemoryAppStore, MemoryQueue, MemoryStore};
use crate::policy::{PolicyEngine, RulePolicyEngine};
use crate::queue::Queue;
use crate::recall::{Recall, RecallHub};
use crate::redact::Redactor;
use crate::schema::SchemaCache;
use crate::store::Store;
use crate::tool::{LocalToolHub, ToolHandler, ToolHub, ToolSpec};

/// Adds secrets to the redactor at build (see [`EngineBuilder::redact_with`]).
type RedactorStep = Box<dyn FnOnce(Redactor) -> Redactor + Send>;

/// Builds an [`Engine`]. Defaults: in-memory store and queue, the rule policy engine over the
/// store's policies, default redaction, no LLM providers.
#[derive(Default)]
pub struct EngineBuilder {
    store: Option<Arc<dyn Store>>,
    queue: Option<Arc<dyn Queue>>,
    starter: Option<Arc<dyn super::RunStarter>>,
    llms: HashMap<String, Arc<dyn LlmProvider>>,
    hubs: Vec<Arc<dyn ToolHub>>,
    tool_sources: HashMap<String, Arc<dyn ToolSource>>,
    chat_store: Option<Arc<dyn crate::chat::ChatStore>>,
    local: LocalToolHub,
    policy: Option<Arc<dyn PolicyEngine>>,
    apps: Option<Arc<dyn AppStore>>,
    recall: Option<Recall>,
    statics: HashMap<String, StaticHandler>,
    prices: PriceTable,
    redactor: Option<Redactor>,
    redactor_steps: Vec<RedactorStep>,
    config: EngineConfig,
}

impl EngineBuilder {
    /// Uses `store` for definitions and execution state.
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// Uses `queue` for run jobs.
    pub fn queue(mut self, queue: Arc<dyn Queue>) -> Self {
        self.queue = Some(queue);
        self
    }

    /// Creates runs and their jobs through `starter` (atomically, when the backend can).
    pub fn run_starter(mut self, starter: Arc<dyn super::RunStarter>) -> Self {
        self.starter = Some(starter);
        self
    }

    /// Registers an LLM provider under `name` (agents pick it by `model_profile.provider`).
    pub fn llm(mut self, name: impl Into<String>, provider: Arc<dyn LlmProvider>) -> Self {
        self.llms.insert(name.into(), provider);
        self
    }

    /// Registers the provider named [`DEFAULT_PROVIDER`].
    pub fn default_llm(self, provider: Arc<dyn LlmProvider>) -> Self {
        self.llm(DEFAULT_PROVIDER, provider)
    }

    /// Adds a tool hub (its tools run when their spec's `hub` equals the hub's name).
    pub fn tool_hub(mut self, hub: Arc<dyn ToolHub>) -> Self {
        self.hubs.push(hub);
        self
    }

    /// Where `chat` nodes save router decisions, rolling summaries and answers (see
    /// [`crate::chat`]); a workflow with a `chat` node needs one.
    pub fn chat_store(mut self, store: Arc<dyn crate::chat::ChatStore>) -> Self {
        self.chat_store = Some(store);
        self
    }

    /// Registers a source agents pick their tools from (`Agent::tool_search` names it;
    /// [`crate::agent::DEFAULT_TOOL_SOURCE`] is the default name), e.g. a
    /// [`crate::search::ToolSearch`] over a large catalog.
    pub fn tool_source(mut self, name: impl Into<String>, source: Arc<dyn ToolSource>) -> Self {
        self.tool_sources.insert(name.into(), source);
        self
    }

    /// Registers a local Rust tool; its spec is written to the store's catalog at build.
    pub fn tool(mut self, spec: ToolSpec, handler: ToolHandler) -> Self {
        self.local.register(spec, handler);
        self
    }

    /// Registers a named handler for `static` nodes (`config.handler`).
    pub fn static_handler<F>(mut self, name: impl Into<String>, f: F) -> Self
    where
        F: Fn(&serde_json::Value, &serde_json::Value) -> Result<serde_json::Value>
            + Send
            + Sync
            + 'static,
    {
        self.statics.insert(name.into(), Arc::new(f));
        self
    }

    /// Replaces the policy engine.
    pub fn policy_engine(mut self, policy: Arc<dyn PolicyEngine>) -> Self {
        self.policy = Some(policy);
        self
    }

    /// Sets the per-model price table used for cost budgets.
    pub fn prices(mut self, prices: PriceTable) -> Self {
        self.prices = prices;
        self
    }

    /// Replaces the redactor applied to every event payload (and, for secret values, to
    /// step and effect rows). Secrets added with [`EngineBuilder::secret`] and
    /// [`EngineBuilder::redact_with`] are added to it, in whatever order they were given.
    pub fn redactor(mut self, redactor: Redactor) -> Self {
        self.redactor = Some(redactor);
        self
    }

    /// Registers a literal secret (an API key, a password) with the redactor: it is
    /// replaced by `[REDACTED]` wherever the engine redacts (events, run and step rows,
    /// effect rows, job errors and logs). Values shorter than 4 bytes are ignored.
    pub fn secret(self, value: impl Into<String>) -> Self {
        let value = value.into();
        self.redact_with(move |r| r.secret(value))
    }

    /// Registers several literal secrets (see [`EngineBuilder::secret`]).
    pub fn secrets<I, S>(self, values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let values: Vec<String> = values.into_iter().map(Into::into).collect();
        self.redact_with(move |r| values.into_iter().fold(r, |r, v| r.secret(v)))
    }

    /// Adds to the redactor at build, e.g. an adapter's configured keys:
    /// `.redact_with(move |r| openai_config.redact_secrets(r))`.
    pub fn redact_with<F>(mut self, add: F) -> Self
    where
        F: FnOnce(Redactor) -> Redactor + Send + 'static,
    {
        self.redactor_steps.push(Box::new(add));
        self
    }

    /// Sets tunables.
    pub fn config(mut self, config: EngineConfig) -> Self {
        self.config = config;
        self
    }

    /// Keeps imported apps in `apps` (default: in memory). Runs of an app are held to its
    /// scopes through it.
    pub fn app_store(mut self, apps: Arc<dyn AppStore>) -> Self {
        self.apps = Some(apps);
        self
    }

    /// Gives agents memory: the [`RecallHub`] tools (`memory.store`, `memory.retrieve`,
    /// `memory.search`, `memory.delete`) on `recall`, registered in the tool catalog at build
    /// and held to the app store's memory scopes.
    pub fn recall(mut self, recall: Recall) -> Self {
        self.recall = Some(recall);
        self
    }

    /// Builds the engine and writes the local tools' specs to the store.
    pub async fn build(mut self) -> Result<Engine> {
        let store: Arc<dyn Store> = self.store.unwrap_or_else(|| Arc::new(MemoryStore::new()));
        let queue: Arc<dyn Queue> = self.queue.unwrap_or_else(|| Arc::new(MemoryQueue::new()));
        let apps: Arc<dyn AppStore> = self.apps.unwrap_or_else(|| Arc::new(MemoryAppStore::new()));
        let local_specs = self.local.specs();
        store.put_tools(&local_specs).await?;
        if let Some(recall) = self.recall.take() {
            store.put_tools(&RecallHub::specs()).await?;
            self.hubs
                .push(Arc::new(RecallHub::new(recall).with_apps(apps.clone())));
        }
        let mut hubs: HashMap<String, Arc<dyn ToolHub>> = HashMap::new();
        hubs.insert(crate::tool::LOCAL_HUB.to_string(), Arc::new(self.local));
        for h in self.hubs {
            let name = h.name().to_string();
            if hubs.insert(name.clone(), h).is_some() && name != crate::tool::LOCAL_HUB {
                return Err(Error::InvalidInput(format!(
                    "two tool hubs are named `{name}`"
                )));
            }
        }
        let (policy, policy_source) = match self.policy {
            Some(p) => (p, None),
            None => {
                let src = Arc::new(StorePolicySource::new(store.clone()));
                let engine: Arc<dyn PolicyEngine> = Arc::new(RulePolicyEngine::new(src.clone()));
                (engine, Some(src))
            }
        };
        let starter = self.starter.unwrap_or_else(|| {
            Arc::new(super::StoreThenQueue {
                store: store.clone(),
                queue: queue.clone(),
            })
        });
        let (progress, _) = broadcast::channel(1024);
        let exec = Executor {
            store,
            llms: self.llms,
            hubs,
            tool_sources: self.tool_sources,
            chat_store: self.chat_store,
            policy,
            apps,
            statics: self.statics,
            prices: self.prices,
            redactor: self
                .redactor_steps
                .into_iter()
                .fold(self.redactor.unwrap_or_default(), |r, add| add(r)),
            config: self.config,
            schemas: SchemaCache::new(),
            progress,
            plans: Mutex::new(HashMap::new()),
        };
        Ok(Engine {
            inner: Arc::new(Inner {
                exec: Arc::new(exec),
                queue,
                starter,
                policy_source,
                running: Arc::new(RunningRuns::default()),
                latest: Mutex::new(HashMap::new()),
            }),
        })
    }
}
