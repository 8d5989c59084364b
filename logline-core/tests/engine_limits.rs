//! Bounded resources, secrets at rest and one retry budget per call: tool output framed and
//! cut, parallel tool calls capped, LLM calls under a deadline, error messages cut; job
//! errors, step and effect rows redacted; retries not multiplied across layers and the
//! original error kind kept.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::*;
use logline_core::agent::{Agent, ModelProfile};
use logline_core::engine::{Engine, EngineBuilder, EngineConfig, StartRun, RUN_QUEUE};
use logline_core::layer::Retry;
use logline_core::llm::{LlmProvider, LlmRequest, LlmResponse, Message};
use logline_core::memory::{MemoryQueue, MemoryStore};
use logline_core::queue::{Backoff, Queue};
use logline_core::retry::RetryPolicy;
use logline_core::run::{Run, RunStatus};
use logline_core::store::RunStore;
use logline_core::testing::{FakeToolHub, RecordingSleep, ScriptedLlm};
use logline_core::tool::ToolSpec;
use logline_core::{Error, ErrorKind};
use serde_json::{json, Value};

const SECRET_HEADER: &str = "Authorization: Bearer sk-live-0123456789abcdefghij";

fn agent_workflow() -> logline_core::workflow::Workflow {
    workflow(
        "agent",
        json!({ "entry": "a", "nodes": [ { "id": "a", "type": "agent_node",
        "config": { "agent_id": "agent.helper" } } ] }),
    )
}

fn agent(tools: &[&str]) -> Agent {
    Agent::new(
        "agent.helper",
        "Use tools, then answer.",
        ModelProfile::new("m"),
    )
    .with_tools(tools.iter().copied())
}

/// Workers that retry failed jobs quickly.
fn fast_workers(engine: &Engine) -> logline_core::engine::WorkerPool {
    let mut opts = worker_options();
    opts.backoff = Backoff::new(Duration::from_millis(10), Duration::from_millis(20));
    engine.spawn_workers(opts)
}

async fn settle(engine: &Engine, req: StartRun) -> Run {
    tokio::time::timeout(Duration::from_secs(20), engine.run_to_completion(req))
        .await
        .expect("run settles in time")
        .expect("run")
}

async fn run_agent(
    b: EngineBuilder,
    llm: Arc<ScriptedLlm>,
    hub: Arc<FakeToolHub>,
) -> (Run, Engine) {
    let specs = hub.specs();
    let engine = b.default_llm(llm).tool_hub(hub).build().await.unwrap();
    engine.register_tools(&specs).await.unwrap();
    let ids: Vec<String> = specs.iter().map(|s| s.id.clone()).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    engine.register_agent(&agent(&ids)).await.unwrap();
    engine.register_workflow(&agent_workflow()).await.unwrap();
    let _pool = fast_workers(&engine);
    let run = settle(&engine, StartRun::new("agent", json!("go"), subject())).await;
    (run, engine)
}

fn tool_messages(request: &LlmRequest) -> Vec<Value> {
    request
        .messages
        .iter()
        .filter_map(|m| match m {
            Message::Tool { content, .. } => Some(serde_json::from_str(content).expect("json")),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn tool_output_reaches_the_model_framed_as_data_and_cut() {
    let hub = Arc::new(FakeToolHub::new("fake").tool(
        ToolSpec::new("big", "Returns a lot.", json!({"type": "object"})),
        |_| Ok(json!({ "text": "x".repeat(200_000) })),
    ));
    let llm = Arc::new(
        ScriptedLlm::new()
            .reply_tool_calls(&[("big", json!({}))])
            .reply_text("done"),
    );
    let config = EngineConfig {
        max_tool_output_bytes: 1024,
        ..EngineConfig::default()
    };
    let b = Engine::builder().config(config);
    let (run, engine) = run_agent(b, llm.clone(), hub).await;
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.error);
    let shown = tool_messages(&llm.requests()[1]);
    assert_eq!(shown.len(), 1);
    let text = shown[0]["tool_result"]
        .as_str()
        .expect("cut result is text");
    assert!(text.len() < 1100, "{} bytes shown", text.len());
    assert!(text.ends_with("bytes shown]"), "marked as cut");
    assert_eq!(shown[0]["truncated"]["shown_bytes"], 1024);
    assert!(shown[0]["truncated"]["total_bytes"].as_u64().unwrap() > 200_000);
    assert!(shown[0]["note"]
        .as_str()
        .unwrap()
        .contains("not instructions"));
    // The trace keeps the whole result.
    let events = engine.events(run.id).await.unwrap();
    let call = events
        .iter()
        .find(|e| e.kind.as_str() == "tool_call")
        .expect("tool_call event");
    assert_eq!(
        call.payload["output"]["text"].as_str().unwrap().len(),
        200_000
    );
}

#[tokio::test]
async fn small_tool_results_are_framed_whole() {
    let llm = Arc::new(
        ScriptedLlm::new()
            .reply_tool_calls(&[("echo", json!({"a": 1}))])
            .reply_text("done"),
    );
    let (run, _engine) = run_agent(Engine::builder(), llm.clone(), Arc::new(hub())).await;
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.error);
    let shown = tool_messages(&llm.requests()[1]);
    assert_eq!(shown[0]["tool_result"], json!({"echo": {"a": 1}}));
    assert!(shown[0].get("truncated").is_none());
}

#[tokio::test]
async fn tool_calls_beyond_the_per_turn_cap_are_answered_not_executed() {
    let hub = Arc::new(hub());
    let calls: Vec<(&str, Value)> = (0..5).map(|i| ("echo", json!({ "i": i }))).collect();
    let llm = Arc::new(
        ScriptedLlm::new()
            .reply_tool_calls(&calls)
            .reply_text("done"),
    );
    let config = EngineConfig {
        max_parallel_tool_calls: 2,
        ..EngineConfig::default()
    };
    let (run, _engine) =
        run_agent(Engine::builder().config(config), llm.clone(), hub.clone()).await;
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.error);
    assert_eq!(hub.executions_of("echo"), 2, "only the first two calls ran");
    let shown = tool_messages(&llm.requests()[1]);
    assert_eq!(shown.len(), 5, "every call is answered");
    assert_eq!(shown[0]["tool_result"]["echo"]["i"], 0);
    for answer in &shown[2..] {
        assert_eq!(answer["error"]["kind"], "invalid_input");
        let msg = answer["error"]["message"].as_str().unwrap();
        assert!(msg.contains("at most 2 tool calls"), "{msg}");
    }
}

/// A provider that never answers.
struct Silent;

#[async_trait]
impl LlmProvider for Silent {
    fn name(&self) -> &str {
        "silent"
    }

    async fn complete(&self, _request: &LlmRequest) -> logline_core::Result<LlmResponse> {
        futures::future::pending().await
    }
}

#[tokio::test]
async fn llm_calls_end_at_the_engine_deadline() {
    let config = EngineConfig {
        llm_timeout: Duration::from_millis(100),
        run_job_attempts: 1,
        ..EngineConfig::default()
    };
    let engine = Engine::builder()
        .config(config)
        .default_llm(Arc::new(Silent))
        .build()
        .await
        .unwrap();
    engine.register_agent(&agent(&[])).await.unwrap();
    engine.register_workflow(&agent_workflow()).await.unwrap();
    let _pool = fast_workers(&engine);
    let run = settle(&engine, StartRun::new("agent", json!("hi"), subject())).await;
    assert_eq!(run.status, RunStatus::Failed);
    let error = run.error.unwrap();
    assert_eq!(error["kind"], "timeout", "{error}");
    assert!(error["message"].as_str().unwrap().contains("llm_timeout"));
}

#[tokio::test]
async fn long_error_messages_are_cut_in_rows_and_events() {
    let hub = Arc::new(FakeToolHub::new("fake").tool(
        ToolSpec::new("noisy", "Fails loudly.", json!({"type": "object"})),
        |_| {
            Err(Error::ToolFailed {
                tool_id: "noisy".into(),
                message: "e".repeat(100_000),
                retryable: false,
            })
        },
    ));
    let config = EngineConfig {
        max_error_message_bytes: 2048,
        ..EngineConfig::default()
    };
    let engine = Engine::builder()
        .config(config)
        .tool_hub(hub.clone())
        .build()
        .await
        .unwrap();
    engine.register_tools(&hub.specs()).await.unwrap();
    let wf = workflow(
        "noisy",
        json!({ "entry": "n", "nodes": [ { "id": "n", "type": "tool_node",
        "config": { "tool_id": "noisy" } } ] }),
    );
    engine.register_workflow(&wf).await.unwrap();
    let _pool = fast_workers(&engine);
    let run = settle(&engine, StartRun::new("noisy", json!({}), subject())).await;
    assert_eq!(run.status, RunStatus::Failed);
    let error = run.error.unwrap();
    assert_eq!(error["kind"], "tool_failed");
    let message = error["message"].as_str().unwrap();
    assert!(message.len() < 2200, "run.error: {} bytes", message.len());
    assert!(message.ends_with("bytes shown]"));
    let steps = engine.steps(run.id).await.unwrap();
    let step_msg = steps[0].error.as_ref().unwrap()["message"]
        .as_str()
        .unwrap();
    assert!(
        step_msg.len() < 2200,
        "step.error: {} bytes",
        step_msg.len()
    );
    for e in engine.events(run.id).await.unwrap() {
        if let Some(m) = e.payload["error"]["message"].as_str() {
            assert!(
                m.len() < 2200,
                "{} event: {} bytes",
                e.kind.as_str(),
                m.len()
            );
        }
    }
}

/// A provider failing every request with a copy of `error`, counting requests.
struct Failing {
    kind: ErrorKind,
    message: String,
    requests: AtomicUsize,
}

impl Failing {
    fn new(kind: ErrorKind, message: &str) -> Arc<Self> {
        Arc::new(Failing {
            kind,
            message: message.to_string(),
            requests: AtomicUsize::new(0),
        })
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
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

async fn run_failing_agent(b: EngineBuilder, llm: Arc<dyn LlmProvider>, attempts: u32) -> Run {
    let config = EngineConfig {
        run_job_attempts: attempts,
        ..EngineConfig::default()
    };
    let engine = b.config(config).default_llm(llm).build().await.unwrap();
    engine.register_agent(&agent(&[])).await.unwrap();
    engine.register_workflow(&agent_workflow()).await.unwrap();
    let _pool = fast_workers(&engine);
    settle(&engine, StartRun::new("agent", json!("hi"), subject())).await
}

#[tokio::test]
async fn a_call_the_provider_retried_is_not_retried_again_by_the_job() {
    let failing = Failing::new(ErrorKind::RateLimited, "slow down");
    // The provider's own budget: 3 attempts (2 retries), waits recorded, not slept.
    let provider = Retry::new(Shared(failing.clone()), RetryPolicy::default())
        .with_sleep(RecordingSleep::new());
    let run = run_failing_agent(Engine::builder(), Arc::new(provider), 5).await;
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(
        failing.requests(),
        3,
        "the provider's 3 attempts, not 3 × 5 job attempts"
    );
    let error = run.error.unwrap();
    assert_eq!(error["kind"], "rate_limited", "{error}");
    assert_eq!(error["retryable"], true);
}

#[tokio::test]
async fn a_dead_lettered_run_keeps_the_kind_of_its_last_error() {
    let failing = Failing::new(ErrorKind::Unavailable, "upstream down");
    let run = run_failing_agent(Engine::builder(), Arc::new(Shared(failing.clone())), 3).await;
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(
        failing.requests(),
        3,
        "the job's attempts are the only budget"
    );
    let error = run.error.unwrap();
    assert_eq!(error["kind"], "unavailable", "{error}");
    assert_eq!(error["retryable"], true);
    assert_eq!(error["backend"], "openai");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("gave up after 3 attempts"), "{message}");
}

#[tokio::test]
async fn job_errors_are_stored_redacted() {
    let queue = Arc::new(MemoryQueue::new());
    let failing = Failing::new(
        ErrorKind::Unavailable,
        &format!("upstream echoed {SECRET_HEADER}"),
    );
    let b = Engine::builder().queue(queue.clone());
    let run = run_failing_agent(b, Arc::new(Shared(failing)), 1).await;
    assert_eq!(run.status, RunStatus::Failed);
    let dead = queue.dead_letters(RUN_QUEUE, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    let last_error = dead[0].last_error.clone().unwrap();
    assert!(last_error.contains("upstream echoed"), "{last_error}");
    assert!(!last_error.contains("sk-live"), "{last_error}");
    assert!(last_error.contains("[REDACTED]"), "{last_error}");
    assert!(!run.error.unwrap().to_string().contains("sk-live"));
}

/// Runs an agent whose answer is `text`, with `store` and `b`.
async fn answer_with(b: EngineBuilder, store: Arc<MemoryStore>, text: &str) -> (Run, Engine) {
    let llm = Arc::new(ScriptedLlm::new().reply_text(text));
    let engine = b.store(store).default_llm(llm).build().await.unwrap();
    engine.register_agent(&agent(&[])).await.unwrap();
    engine.register_workflow(&agent_workflow()).await.unwrap();
    let _pool = fast_workers(&engine);
    let run = settle(&engine, StartRun::new("agent", json!("hi"), subject())).await;
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.error);
    (run, engine)
}

#[tokio::test]
async fn secrets_are_redacted_in_step_and_effect_rows() {
    let store = Arc::new(MemoryStore::new());
    let b = Engine::builder().secret("my-own-literal-key");
    let text = format!("use {SECRET_HEADER} or my-own-literal-key");
    let (run, engine) = answer_with(b, store.clone(), &text).await;
    let steps = engine.steps(run.id).await.unwrap();
    let output = steps[0].output.as_ref().unwrap().to_string();
    assert!(
        !output.contains("sk-live") && !output.contains("my-own-literal-key"),
        "{output}"
    );
    assert!(output.contains("[REDACTED]"));
    let effects = store.effects(run.id, 0).await.unwrap();
    assert_eq!(effects.len(), 1);
    let recorded = effects[0].output.to_string();
    assert!(
        !recorded.contains("sk-live") && !recorded.contains("my-own-literal-key"),
        "{recorded}"
    );
    for e in engine.events(run.id).await.unwrap() {
        assert!(!e.payload.to_string().contains("my-own-literal-key"));
    }
}

#[tokio::test]
async fn step_rows_keep_values_under_sensitive_key_names() {
    // Only secret values are redacted in rows; a key named `token` keeps its value.
    let store = Arc::new(MemoryStore::new());
    let agent_answer = json!({ "token": "plain-value-1234" }).to_string();
    let (run, engine) = answer_with(Engine::builder(), store, &agent_answer).await;
    let steps = engine.steps(run.id).await.unwrap();
    assert_eq!(steps[0].output, Some(json!({ "text": agent_answer })));
}

#[tokio::test]
async fn effect_redaction_can_be_turned_off() {
    let store = Arc::new(MemoryStore::new());
    let config = EngineConfig {
        redact_effects: false,
        ..EngineConfig::default()
    };
    let text = format!("use {SECRET_HEADER}");
    let (run, _engine) = answer_with(Engine::builder().config(config), store.clone(), &text).await;
    let effects = store.effects(run.id, 0).await.unwrap();
    assert!(effects[0].output.to_string().contains("sk-live"));
}
