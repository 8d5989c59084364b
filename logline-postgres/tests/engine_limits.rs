//! On PostgreSQL: job errors stored redacted in `jobs.last_error`, secret values redacted in
//! step and effect rows, one retry budget per LLM call and the original error kind kept.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use logline_core::agent::{Agent, ModelProfile};
use logline_core::engine::{Engine, EngineConfig, StartRun, WorkerOptions, RUN_QUEUE};
use logline_core::layer::Retry;
use logline_core::llm::{LlmProvider, LlmRequest, LlmResponse};
use logline_core::queue::{Backoff, Queue};
use logline_core::retry::RetryPolicy;
use logline_core::run::{Run, RunStatus, Subject};
use logline_core::store::RunStore;
use logline_core::testing::{RecordingSleep, ScriptedLlm};
use logline_core::workflow::{Workflow, WorkflowDefinition};
use logline_core::{Error, ErrorKind};
use logline_postgres::PgBackend;
use serde_json::json;

const SECRET_HEADER: &str = "Authorization: Bearer sk-live-0123456789abcdefghij";

/// A provider failing every request with `kind`, counting requests.
struct Failing {
    kind: ErrorKind,
    message: String,
    requests: AtomicUsize,
}

#[async_trait]
impl LlmProvider for Failing {
    fn name(&self) -> &str {
        "failing"
    }

    async fn complete(&self, _request: &LlmRequest) -> logline_core::Result<LlmResponse> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        Err(Error::backend(
            "openai",
            self.kind,
            self.message.clone(),
            None,
        ))
    }
}

/// Shares one [`Failing`] between the engine and the test.
struct Shared(Arc<Failing>);

#[async_trait]
impl LlmProvider for Shared {
    fn name(&self) -> &str {
        self.0.name()
    }

    async fn complete(&self, request: &LlmRequest) -> logline_core::Result<LlmResponse> {
        self.0.complete(request).await
    }
}

fn failing(kind: ErrorKind, message: &str) -> Arc<Failing> {
    Arc::new(Failing {
        kind,
        message: message.to_string(),
        requests: AtomicUsize::new(0),
    })
}

/// Runs a one-agent workflow on `pg` with `llm`, jobs attempted `attempts` times.
async fn run_agent(pg: &PgBackend, llm: Arc<dyn LlmProvider>, attempts: u32) -> (Run, Engine) {
    let config = EngineConfig {
        run_job_attempts: attempts,
        ..EngineConfig::default()
    };
    let engine = pg
        .engine_builder()
        .config(config)
        .default_llm(llm)
        .build()
        .await
        .unwrap();
    engine
        .register_agent(&Agent::new("agent.a", "Answer.", ModelProfile::new("m")))
        .await
        .unwrap();
    let def: WorkflowDefinition = serde_json::from_value(json!({ "entry": "a", "nodes": [
        { "id": "a", "type": "agent_node", "config": { "agent_id": "agent.a" } } ] }))
    .unwrap();
    engine
        .register_workflow(&Workflow::new("wf", "wf", def))
        .await
        .unwrap();
    let opts = WorkerOptions {
        poll: Duration::from_millis(50),
        backoff: Backoff::new(Duration::from_millis(10), Duration::from_millis(20)),
        ..WorkerOptions::default()
    };
    let workers = engine.spawn_workers(opts);
    let req = StartRun::new("wf", json!("hi"), Subject::tenant("acme"));
    let run = tokio::time::timeout(Duration::from_secs(30), engine.run_to_completion(req))
        .await
        .expect("run settles in time")
        .unwrap();
    workers.shutdown().await;
    (run, engine)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_errors_are_stored_redacted_on_postgres() {
    let (pg, _g) = support::guarded_backend().await;
    let llm = failing(
        ErrorKind::Unavailable,
        &format!("upstream echoed {SECRET_HEADER}"),
    );
    let (run, _engine) = run_agent(&pg, Arc::new(Shared(llm)), 1).await;
    assert_eq!(run.status, RunStatus::Failed);
    let dead = pg.queue().dead_letters(RUN_QUEUE, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    let last_error = dead[0].last_error.clone().unwrap();
    assert!(last_error.contains("upstream echoed"), "{last_error}");
    assert!(!last_error.contains("sk-live"), "{last_error}");
    assert!(last_error.contains("[REDACTED]"), "{last_error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_values_are_redacted_in_step_and_effect_rows_on_postgres() {
    let (pg, _g) = support::guarded_backend().await;
    let llm = Arc::new(ScriptedLlm::new().reply_text(&format!("use {SECRET_HEADER}")));
    let (run, engine) = run_agent(&pg, llm, 5).await;
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.error);
    let steps = engine.steps(run.id).await.unwrap();
    let output = steps[0].output.as_ref().unwrap().to_string();
    assert!(
        !output.contains("sk-live") && output.contains("[REDACTED]"),
        "{output}"
    );
    let effects = pg.store().effects(run.id, 0).await.unwrap();
    assert_eq!(effects.len(), 1);
    assert!(!effects[0].output.to_string().contains("sk-live"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_retried_call_is_not_multiplied_and_keeps_its_kind_on_postgres() {
    let (pg, _g) = support::guarded_backend().await;
    let llm = failing(ErrorKind::RateLimited, "slow down");
    let provider =
        Retry::new(Shared(llm.clone()), RetryPolicy::default()).with_sleep(RecordingSleep::new());
    let (run, _engine) = run_agent(&pg, Arc::new(provider), 5).await;
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(
        llm.requests.load(Ordering::SeqCst),
        3,
        "3 provider attempts, not 15"
    );
    let error = run.error.unwrap();
    assert_eq!(error["kind"], "rate_limited", "{error}");
    assert_eq!(error["retryable"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_lettered_run_keeps_its_error_kind_on_postgres() {
    let (pg, _g) = support::guarded_backend().await;
    let llm = failing(ErrorKind::Unavailable, "upstream down");
    let (run, _engine) = run_agent(&pg, Arc::new(Shared(llm.clone())), 2).await;
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(llm.requests.load(Ordering::SeqCst), 2);
    let error = run.error.unwrap();
    assert_eq!(error["kind"], "unavailable", "{error}");
    assert_eq!(error["retryable"], true);
    assert!(error["message"]
        .as_str()
        .unwrap()
        .contains("gave up after 2 attempts"));
}
