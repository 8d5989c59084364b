//! Effects under faults: a tool call is recorded as intended before it is sent and as
//! completed after; a recording failure is retried, never answered by calling again; a call
//! whose outcome is unknown is re-sent only to a hub that honours idempotency keys, and is
//! otherwise reported as `effect_outcome_unknown`; a second execution of the same run is
//! fenced off; a start retried with the same idempotency key returns the same run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use common::*;
use logline_core::agent::Agent;
use logline_core::engine::{Engine, StartRun};
use logline_core::error::{Error, ErrorKind, Result};
use logline_core::event::NewEvent;
use logline_core::memory::MemoryStore;
use logline_core::policy::Policy;
use logline_core::run::{Run, RunId, RunStatus, Step};
use logline_core::store::{
    Checkpoint, Committed, DefinitionStore, EffectRecord, Page, RunFilter, RunStore, ToolQuery,
};
use logline_core::tool::{PageRequest, ToolContext, ToolHub, ToolPage, ToolSpec};
use logline_core::workflow::Workflow;
use serde_json::{json, Value};

/// A hub whose `mail.send` sends one email per distinct idempotency key (when it honours
/// keys) or per request; the first request can be made slower than the engine's timeout.
struct MailHub {
    honours_keys: bool,
    first_delay: Duration,
    requests: AtomicUsize,
    keys: Mutex<Vec<String>>,
    sent: Mutex<HashSet<String>>,
    emails: AtomicUsize,
}

impl MailHub {
    fn new(honours_keys: bool, first_delay: Duration) -> Arc<Self> {
        Arc::new(MailHub {
            honours_keys,
            first_delay,
            requests: AtomicUsize::new(0),
            keys: Mutex::new(Vec::new()),
            sent: Mutex::new(HashSet::new()),
            emails: AtomicUsize::new(0),
        })
    }

    fn spec() -> ToolSpec {
        ToolSpec::new("mail.send", "Send an email.", json!({"type": "object"})).on_hub("mail")
    }

    fn emails(&self) -> usize {
        self.emails.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl ToolHub for MailHub {
    fn name(&self) -> &str {
        "mail"
    }

    fn honours_idempotency_keys(&self) -> bool {
        self.honours_keys
    }

    async fn list_tools(&self, _page: PageRequest) -> Result<ToolPage> {
        Ok(ToolPage {
            tools: vec![MailHub::spec()],
            next_cursor: None,
        })
    }

    async fn execute(&self, _tool: &str, _args: Value, ctx: &ToolContext) -> Result<Value> {
        let n = self.requests.fetch_add(1, Ordering::SeqCst);
        let key = ctx.idempotency_key.clone().unwrap_or_default();
        self.keys.lock().unwrap().push(key.clone());
        // The email goes out at once; the answer may be slow.
        let first_time = self.sent.lock().unwrap().insert(key);
        if first_time || !self.honours_keys {
            self.emails.fetch_add(1, Ordering::SeqCst);
        }
        if n == 0 {
            tokio::time::sleep(self.first_delay).await;
        }
        Ok(json!({"sent": true}))
    }
}

/// A memory store whose first `failures` completed-effect records fail like a dropped
/// database connection.
struct FlakyLedger {
    inner: MemoryStore,
    failures: AtomicU32,
}

#[async_trait]
impl DefinitionStore for FlakyLedger {
    async fn put_workflow(&self, w: &Workflow) -> Result<()> {
        self.inner.put_workflow(w).await
    }
    async fn get_workflow(&self, id: &str, version: Option<&str>) -> Result<Workflow> {
        self.inner.get_workflow(id, version).await
    }
    async fn latest_workflow_version(&self, id: &str) -> Result<String> {
        self.inner.latest_workflow_version(id).await
    }
    async fn list_workflows(&self, page: Page) -> Result<Vec<Workflow>> {
        self.inner.list_workflows(page).await
    }
    async fn delete_workflow(&self, id: &str) -> Result<()> {
        self.inner.delete_workflow(id).await
    }
    async fn put_tools(&self, tools: &[ToolSpec]) -> Result<()> {
        self.inner.put_tools(tools).await
    }
    async fn get_tool(&self, id: &str) -> Result<ToolSpec> {
        self.inner.get_tool(id).await
    }
    async fn list_tools(&self, query: &ToolQuery) -> Result<Vec<ToolSpec>> {
        self.inner.list_tools(query).await
    }
    async fn delete_tool(&self, id: &str) -> Result<()> {
        self.inner.delete_tool(id).await
    }
    async fn put_agent(&self, agent: &Agent) -> Result<()> {
        self.inner.put_agent(agent).await
    }
    async fn get_agent(&self, id: &str) -> Result<Agent> {
        self.inner.get_agent(id).await
    }
    async fn list_agents(&self, page: Page) -> Result<Vec<Agent>> {
        self.inner.list_agents(page).await
    }
    async fn put_policy(&self, policy: &Policy) -> Result<()> {
        self.inner.put_policy(policy).await
    }
    async fn list_policies(&self) -> Result<Vec<Policy>> {
        self.inner.list_policies().await
    }
    async fn delete_policy(&self, id: &str) -> Result<()> {
        self.inner.delete_policy(id).await
    }
}

#[async_trait]
impl RunStore for FlakyLedger {
    async fn create_run(&self, run: &Run, events: &[NewEvent]) -> Result<Committed> {
        self.inner.create_run(run, events).await
    }
    async fn get_run(&self, id: RunId) -> Result<Run> {
        self.inner.get_run(id).await
    }
    async fn list_runs(&self, filter: &RunFilter) -> Result<Vec<Run>> {
        self.inner.list_runs(filter).await
    }
    async fn commit(&self, checkpoint: Checkpoint<'_>) -> Result<Committed> {
        self.inner.commit(checkpoint).await
    }
    async fn events(
        &self,
        run_id: RunId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<logline_core::event::Event>> {
        self.inner.events(run_id, after, limit).await
    }
    async fn steps(&self, run_id: RunId) -> Result<Vec<Step>> {
        self.inner.steps(run_id).await
    }
    async fn record_effect(&self, effect: &EffectRecord) -> Result<EffectRecord> {
        let left = self.failures.load(Ordering::SeqCst);
        if effect.kind == "tool" && left > 0 {
            self.failures.store(left - 1, Ordering::SeqCst);
            return Err(Error::backend(
                "flaky",
                ErrorKind::Unavailable,
                "connection terminated by administrator command",
                None,
            ));
        }
        self.inner.record_effect(effect).await
    }
    async fn record_intent(
        &self,
        intent: &EffectRecord,
        fence: i64,
    ) -> Result<Option<EffectRecord>> {
        self.inner.record_intent(intent, fence).await
    }
    async fn release_intent(&self, run_id: RunId, step: u32, seq: u32) -> Result<()> {
        self.inner.release_intent(run_id, step, seq).await
    }
    async fn effects(&self, run_id: RunId, step_index: u32) -> Result<Vec<EffectRecord>> {
        self.inner.effects(run_id, step_index).await
    }
    async fn wait_for_events(&self, run_id: RunId, after: u64, timeout: Duration) -> Result<()> {
        self.inner.wait_for_events(run_id, after, timeout).await
    }
    async fn purge_runs(&self, cutoff: DateTime<Utc>, limit: u64) -> Result<u64> {
        self.inner.purge_runs(cutoff, limit).await
    }
}

/// A one-node workflow sending an email, with a tool timeout of `timeout_ms`.
fn send_workflow(timeout_ms: u64) -> Workflow {
    workflow(
        "send",
        json!({
            "entry": "send",
            "nodes": [{"id": "send", "type": "tool_node",
                       "config": {"tool_id": "mail.send", "timeout_ms": timeout_ms}}]
        }),
    )
}

async fn engine_on(store: Arc<dyn logline_core::store::Store>, hub: Arc<MailHub>) -> Engine {
    let engine = Engine::builder()
        .store(store)
        .tool_hub(hub)
        .build()
        .await
        .unwrap();
    engine.register_tools(&[MailHub::spec()]).await.unwrap();
    engine
}

async fn run_with_workers(engine: &Engine, workflow: Workflow) -> Run {
    engine.register_workflow(&workflow).await.unwrap();
    let pool = engine.spawn_workers(worker_options());
    let started = engine
        .start_run(StartRun::new(&workflow.id, json!({}), subject()))
        .await
        .unwrap();
    let run = tokio::time::timeout(Duration::from_secs(30), engine.wait(started.id))
        .await
        .expect("run settles")
        .unwrap();
    pool.shutdown().await;
    run
}

#[tokio::test]
async fn a_result_that_fails_to_record_is_recorded_again_not_sent_again() {
    let hub = MailHub::new(false, Duration::ZERO);
    let store = Arc::new(FlakyLedger {
        inner: MemoryStore::new(),
        failures: AtomicU32::new(2),
    });
    let engine = engine_on(store, hub.clone()).await;
    let run = run_with_workers(&engine, send_workflow(5_000)).await;
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.error);
    assert_eq!(hub.emails(), 1, "the email went out once");
    assert_eq!(hub.requests.load(Ordering::SeqCst), 1);
}

/// A store that keeps the trait's default `last_seq` (paging through the events) gives the
/// cursor its backend gives; waiting for a run reads it.
#[tokio::test]
async fn the_default_last_seq_pages_through_the_events() {
    let hub = MailHub::new(false, Duration::ZERO);
    let inner = MemoryStore::new();
    let store = Arc::new(FlakyLedger {
        inner: inner.clone(),
        failures: AtomicU32::new(0),
    });
    let engine = engine_on(store.clone(), hub).await;
    let run = run_with_workers(&engine, send_workflow(5_000)).await;
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.error);
    let events = engine.events(run.id).await.unwrap().len() as u64;
    assert!(events > 3, "{events}");
    assert_eq!(store.last_seq(run.id).await.unwrap(), events);
    assert_eq!(inner.last_seq(run.id).await.unwrap(), events);
}

#[tokio::test]
async fn a_timed_out_call_to_a_hub_without_keys_is_reported_not_repeated() {
    let hub = MailHub::new(false, Duration::from_millis(400));
    let engine = engine_on(Arc::new(MemoryStore::new()), hub.clone()).await;
    let run = run_with_workers(&engine, send_workflow(50)).await;
    assert_eq!(run.status, RunStatus::Failed);
    let error = run.error.expect("error");
    assert_eq!(error["kind"], "effect_outcome_unknown", "{error}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(hub.requests.load(Ordering::SeqCst), 1, "never sent twice");
    assert_eq!(hub.emails(), 1);
}

#[tokio::test]
async fn a_timed_out_call_to_a_key_honouring_hub_is_sent_again_with_the_same_key() {
    let hub = MailHub::new(true, Duration::from_millis(400));
    let engine = engine_on(Arc::new(MemoryStore::new()), hub.clone()).await;
    let run = run_with_workers(&engine, send_workflow(50)).await;
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.error);
    let keys = hub.keys.lock().unwrap().clone();
    assert_eq!(keys.len(), 2, "sent again after the timeout: {keys:?}");
    assert_eq!(keys[0], keys[1], "with the same idempotency key");
    assert_eq!(hub.emails(), 1, "the hub applied it once");
}

#[tokio::test]
async fn an_intent_left_by_a_dead_execution_is_not_sent_again() {
    // A run whose step sent the email and died before recording: only the intent is there.
    let hub = MailHub::new(false, Duration::ZERO);
    let store = Arc::new(MemoryStore::new());
    let engine = engine_on(store.clone(), hub.clone()).await;
    engine
        .register_workflow(&send_workflow(5_000))
        .await
        .unwrap();
    let run = engine
        .start_run(StartRun::new("send", json!({}), subject()))
        .await
        .unwrap();
    let intent = EffectRecord::intent(run.id, 0, 0, "tool", "mail.send");
    assert_eq!(
        store.record_intent(&intent, run.version).await.unwrap(),
        None
    );
    let done = engine.execute(run.id).await.unwrap();
    assert_eq!(done.status, RunStatus::Failed);
    assert_eq!(done.error.expect("error")["kind"], "effect_outcome_unknown");
    assert_eq!(
        hub.requests.load(Ordering::SeqCst),
        0,
        "nothing was sent again"
    );
    // The verdict is recorded: executing again replays it.
    let events = engine.events(run.id).await.unwrap();
    assert!(events.iter().any(|e| e.kind.as_str() == "run_failed"));
}

#[tokio::test]
async fn two_executions_of_one_run_send_the_email_at_most_once() {
    for _ in 0..5 {
        let hub = MailHub::new(false, Duration::from_millis(150));
        let engine = engine_on(Arc::new(MemoryStore::new()), hub.clone()).await;
        engine
            .register_workflow(&send_workflow(5_000))
            .await
            .unwrap();
        let pool = engine.spawn_workers(worker_options());
        let run = engine
            .start_run(StartRun::new("send", json!({}), subject()))
            .await
            .unwrap();
        // A second executor of the same run, next to the worker.
        let inline = engine.execute(run.id).await;
        let settled = tokio::time::timeout(Duration::from_secs(30), engine.wait(run.id))
            .await
            .expect("settles")
            .unwrap();
        pool.shutdown().await;
        assert!(inline.is_ok(), "{inline:?}");
        assert_eq!(hub.emails(), 1, "sent exactly once");
        let outcome_known = settled.status == RunStatus::Completed;
        let reported = settled
            .error
            .as_ref()
            .is_some_and(|e| e["kind"] == "effect_outcome_unknown");
        assert!(outcome_known || reported, "{settled:?}");
    }
}

#[tokio::test]
async fn a_start_retried_with_the_same_key_returns_the_same_run() {
    let hub = MailHub::new(false, Duration::ZERO);
    let engine = engine_on(Arc::new(MemoryStore::new()), hub.clone()).await;
    engine
        .register_workflow(&send_workflow(5_000))
        .await
        .unwrap();
    let start = || StartRun::new("send", json!({}), subject()).idempotency_key("order-42");
    let first = engine.start_run(start()).await.unwrap();
    let again = engine.start_run(start()).await.unwrap();
    assert_eq!(first.id, again.id);
    let mut other_tenant = start();
    other_tenant.subject = logline_core::run::Subject::tenant("globex");
    let other = engine.start_run(other_tenant).await.unwrap();
    assert_ne!(other.id, first.id, "keys are per tenant");
    let runs = engine
        .store()
        .list_runs(&RunFilter::default())
        .await
        .unwrap();
    assert_eq!(runs.len(), 2);
}
