//! Durable execution: crash and resume, cancel, streaming, transient failures.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::*;
use futures::StreamExt;
use logline_core::agent::{Agent, ModelProfile};
use logline_core::engine::{Engine, StartRun, WorkerOptions};
use logline_core::llm::{LlmProvider, LlmRequest, LlmResponse, ToolCallRequest};
use logline_core::memory::{MemoryQueue, MemoryStore};
use logline_core::run::RunStatus;
use logline_core::testing::{FakeToolHub, ScriptedLlm};
use logline_core::tool::ToolSpec;
use logline_core::{Error, ErrorKind};
use serde_json::json;

/// Asks for `count.b` on its first call, then never answers (the worker "hangs").
struct HangsAfterToolCall {
    calls: AtomicUsize,
}

#[async_trait]
impl LlmProvider for HangsAfterToolCall {
    fn name(&self) -> &str {
        "hangs"
    }
    async fn complete(&self, _r: &LlmRequest) -> logline_core::Result<LlmResponse> {
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            return Ok(LlmResponse {
                tool_calls: vec![ToolCallRequest {
                    id: "c1".into(),
                    name: "count_b".into(),
                    arguments: json!({"n": 1}),
                }],
                ..Default::default()
            });
        }
        futures::future::pending().await
    }
}

fn counting_hub() -> Arc<FakeToolHub> {
    Arc::new(
        FakeToolHub::new("fake")
            .tool(
                ToolSpec::new("count.a", "Side effect A.", json!({"type": "object"})),
                |_| Ok(json!({"a": 1})),
            )
            .tool(
                ToolSpec::new("count.b", "Side effect B.", json!({"type": "object"})),
                |_| Ok(json!({"b": 1})),
            ),
    )
}

async fn build(
    store: &MemoryStore,
    queue: &MemoryQueue,
    llm: Arc<dyn LlmProvider>,
    hub: Arc<FakeToolHub>,
) -> Engine {
    let engine = Engine::builder()
        .store(Arc::new(store.clone()))
        .queue(Arc::new(queue.clone()))
        .default_llm(llm)
        .tool_hub(hub.clone())
        .build()
        .await
        .unwrap();
    engine.register_tools(&hub.specs()).await.unwrap();
    engine
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_worker_is_resumed_elsewhere_without_repeating_effects() {
    let (store, queue, hub) = (MemoryStore::new(), MemoryQueue::new(), counting_hub());
    let hanging = Arc::new(HangsAfterToolCall {
        calls: AtomicUsize::new(0),
    });
    let first = build(&store, &queue, hanging.clone(), hub.clone()).await;
    first
        .register_agent(
            &Agent::new(
                "agent.b",
                "Call count.b, then answer.",
                ModelProfile::new("m"),
            )
            .with_tools(["count.b"]),
        )
        .await
        .unwrap();
    first
        .register_workflow(&workflow(
            "durable",
            json!({
                "entry": "a",
                "nodes": [
                    {"id": "a", "type": "tool_node", "config": {"tool_id": "count.a"}},
                    {"id": "b", "type": "agent_node", "config": {"agent_id": "agent.b"}},
                    {"id": "c", "type": "static", "config": {"output": {"done": true}}}
                ],
                "edges": [{"from": "a", "to": "b"}, {"from": "b", "to": "c"}]
            }),
        ))
        .await
        .unwrap();
    let lease = WorkerOptions {
        poll: Duration::from_millis(20),
        ..WorkerOptions::default()
    }
    .lease(Duration::from_millis(600));
    let pool = first.spawn_workers(lease.clone());
    let run = first
        .start_run(StartRun::new("durable", json!({}), subject()))
        .await
        .unwrap();
    // Wait until the agent step is in flight: A done and checkpointed, B executed, LLM hung.
    for _ in 0..200 {
        if hub.executions_of("count.b") == 1 && hanging.calls.load(Ordering::SeqCst) == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        hub.executions_of("count.b"),
        1,
        "the agent step reached its tool call"
    );
    assert_eq!(
        first.steps(run.id).await.unwrap().len(),
        1,
        "step A is checkpointed"
    );

    // Crash: the worker dies without completing its job; the engine is dropped.
    pool.abort();
    drop(first);

    let llm = Arc::new(ScriptedLlm::new().reply_text("counted"));
    let second = build(&store, &queue, llm.clone(), hub.clone()).await;
    let pool2 = second.spawn_workers(lease);
    let done = tokio::time::timeout(Duration::from_secs(20), second.wait(run.id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.status, RunStatus::Completed, "{:?}", done.error);
    assert_eq!(done.result, Some(json!({"done": true})));
    assert_eq!(
        hub.executions_of("count.a"),
        1,
        "a checkpointed step is never re-executed"
    );
    assert_eq!(
        hub.executions_of("count.b"),
        1,
        "a recorded tool call is replayed, not repeated"
    );
    assert_eq!(
        llm.calls(),
        1,
        "the recorded LLM turn is replayed; only the missing turn is asked"
    );
    let events = second.events(run.id).await.unwrap();
    assert!(events.windows(2).all(|w| w[1].seq == w[0].seq + 1));
    let started_a = events
        .iter()
        .filter(|e| e.kind.as_str() == "step_started" && e.payload["node_id"] == "a")
        .count();
    assert_eq!(started_a, 1);
    let tool_calls = events
        .iter()
        .filter(|e| e.kind.as_str() == "tool_call")
        .count();
    assert_eq!(tool_calls, 2, "one trace entry per real call");
    let job_attempts = second
        .queue()
        .dead_letters(logline_core::engine::RUN_QUEUE, 10)
        .await
        .unwrap();
    assert!(job_attempts.is_empty());
    pool2.shutdown().await;
}

#[tokio::test]
async fn cancel_stops_a_running_run() {
    let hub = Arc::new(
        FakeToolHub::new("fake")
            .with_delay(Duration::from_secs(30))
            .tool(
                ToolSpec::new("slow", "Slow.", json!({"type": "object"})),
                |_| Ok(json!({})),
            )
            .tool(
                ToolSpec::new("after", "After.", json!({"type": "object"})),
                |_| Ok(json!({})),
            ),
    );
    let h = harness(None, Some(hub.clone())).await;
    h.engine
        .register_workflow(&workflow(
            "cancel",
            json!({"entry": "s", "nodes": [
            {"id": "s", "type": "tool_node", "config": {"tool_id": "slow", "timeout_ms": 60000}},
            {"id": "t", "type": "tool_node", "config": {"tool_id": "after"}}],
            "edges": [{"from": "s", "to": "t"}]}),
        ))
        .await
        .unwrap();
    let run = h.start(StartRun::new("cancel", json!({}), subject())).await;
    for _ in 0..200 {
        if hub.max_concurrency() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let cancelled = h.engine.cancel(run.id, "user asked").await.unwrap();
    assert_eq!(cancelled.status, RunStatus::Cancelled);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let now = h.engine.get_run(run.id).await.unwrap();
    assert_eq!(now.status, RunStatus::Cancelled);
    assert_eq!(hub.executions_of("after"), 0);
    let kinds = h.kinds(&run).await;
    assert_eq!(kinds.last().unwrap(), "run_cancelled");
    assert_eq!(
        h.engine.cancel(run.id, "again").await.unwrap_err().kind(),
        ErrorKind::Conflict
    );
}

#[tokio::test]
async fn subscribers_see_every_event_once_in_order() {
    let h = harness(None, Some(counting_hub())).await;
    let nodes: Vec<_> = (0..6).map(|i| json!({"id": format!("n{i}"), "type": "tool_node", "config": {"tool_id": "count.a"}})).collect();
    let edges: Vec<_> = (1..6)
        .map(|i| json!({"from": format!("n{}", i - 1), "to": format!("n{i}")}))
        .collect();
    h.engine
        .register_workflow(&workflow(
            "chain",
            json!({"entry": "n0", "nodes": nodes, "edges": edges}),
        ))
        .await
        .unwrap();
    let run = h.start(StartRun::new("chain", json!({}), subject())).await;
    let streamed: Vec<_> = tokio::time::timeout(
        Duration::from_secs(20),
        h.engine.subscribe(run.id, 0).collect::<Vec<_>>(),
    )
    .await
    .unwrap()
    .into_iter()
    .map(|e| e.unwrap())
    .collect();
    let stored = h.events(&run).await;
    assert_eq!(streamed, stored);
    assert_eq!(streamed.last().unwrap().kind.as_str(), "run_completed");
    // Resuming a subscription from a sequence number continues without gaps.
    let tail: Vec<_> = h.engine.subscribe(run.id, 5).collect::<Vec<_>>().await;
    assert_eq!(tail.first().unwrap().as_ref().unwrap().seq, 6);
    assert_eq!(tail.len(), stored.len() - 5);
}

#[tokio::test]
async fn transient_provider_errors_retry_the_job_from_the_checkpoint() {
    let llm = Arc::new(
        ScriptedLlm::new()
            .fail(Error::backend(
                "openai",
                ErrorKind::Unavailable,
                "503",
                None,
            ))
            .reply_text("recovered"),
    );
    let hub = counting_hub();
    let mut opts = worker_options();
    opts.backoff =
        logline_core::queue::Backoff::new(Duration::from_millis(20), Duration::from_millis(40));
    let engine = Engine::builder()
        .default_llm(llm.clone())
        .tool_hub(hub.clone())
        .build()
        .await
        .unwrap();
    engine.register_tools(&hub.specs()).await.unwrap();
    engine
        .register_agent(&Agent::new("agent.x", "x", ModelProfile::new("m")))
        .await
        .unwrap();
    engine
        .register_workflow(&workflow(
            "flaky",
            json!({"entry": "a", "nodes": [
            {"id": "a", "type": "tool_node", "config": {"tool_id": "count.a"}},
            {"id": "b", "type": "agent_node", "config": {"agent_id": "agent.x"}}],
            "edges": [{"from": "a", "to": "b"}]}),
        ))
        .await
        .unwrap();
    let _pool = engine.spawn_workers(opts);
    let run = engine
        .run_to_completion(StartRun::new("flaky", json!({}), subject()))
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.error);
    assert_eq!(run.result, Some(json!({"text": "recovered"})));
    assert_eq!(llm.calls(), 2);
    assert_eq!(
        hub.executions_of("count.a"),
        1,
        "the retry resumed after the checkpoint"
    );
}

#[tokio::test]
async fn llm_text_streams_to_progress_subscribers() {
    let llm = Arc::new(ScriptedLlm::new().reply_text("streamed words"));
    let h = harness(Some(llm), None).await;
    h.engine
        .register_agent(&Agent::new("agent.s", "Say it.", ModelProfile::new("m")))
        .await
        .unwrap();
    h.engine
        .register_workflow(&workflow("say", json!({"entry": "a", "nodes": [{"id": "a", "type": "agent_node", "config": {"agent_id": "agent.s"}}]})))
        .await
        .unwrap();
    let mut progress = h.engine.progress();
    let run = h.run("say", json!({})).await;
    let p = progress.try_recv().expect("a delta was broadcast");
    assert_eq!(
        (p.run_id, p.agent_id.as_str(), p.delta.as_str()),
        (run.id, "agent.s", "streamed words")
    );
}
