//! How the engine talks to its backends, seen through mocks of `ToolHub`, `LlmProvider` and
//! `PolicyEngine` and the engine's public API only: how often each is called, with what, and
//! in which order.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::{subject, worker_options, workflow};
use logline_core::agent::{Agent, ModelProfile};
use logline_core::engine::{Engine, EngineBuilder, StartRun};
use logline_core::llm::{LlmProvider, LlmRequest, LlmResponse, Message, ToolCallRequest};
use logline_core::memory::{MemoryQueue, MemoryStore};
use logline_core::policy::{Decision, Effect, PolicyAction, PolicyEngine, PolicyRequest};
use logline_core::run::{Run, RunStatus, Subject};
use logline_core::tool::{Connection, PageRequest, ToolContext, ToolHub, ToolPage, ToolSpec};
use logline_core::Result;
use mockall::predicate::eq;
use mockall::Sequence;
use serde_json::{json, Value};

mockall::mock! {
    Hub {}
    #[async_trait]
    impl ToolHub for Hub {
        fn name(&self) -> &str;
        async fn list_tools(&self, page: PageRequest) -> Result<ToolPage>;
        async fn execute(&self, tool_id: &str, arguments: Value, ctx: &ToolContext) -> Result<Value>;
        async fn connections(&self, subject: &Subject) -> Result<Vec<Connection>>;
    }
}

mockall::mock! {
    Llm {}
    #[async_trait]
    impl LlmProvider for Llm {
        fn name(&self) -> &str;
        async fn complete(&self, request: &LlmRequest) -> Result<LlmResponse>;
    }
}

mockall::mock! {
    Policy {}
    #[async_trait]
    impl PolicyEngine for Policy {
        async fn evaluate(&self, request: &PolicyRequest) -> Result<Decision>;
    }
}

const HUB: &str = "mock";
const TOOL: &str = "lookup_customer";

fn tool_spec() -> ToolSpec {
    ToolSpec::new(
        TOOL,
        "Find a customer by email.",
        json!({"type": "object", "properties": {"email": {"type": "string"}}, "required": ["email"]}),
    )
    .on_hub(HUB)
}

fn mock_hub() -> MockHub {
    let mut hub = MockHub::new();
    hub.expect_name().return_const(HUB.to_string());
    hub
}

fn mock_llm() -> MockLlm {
    let mut llm = MockLlm::new();
    llm.expect_name().return_const("mock-llm".to_string());
    llm
}

/// The contexts of the hub's executions, shared with the mock's answer.
type Contexts = Arc<Mutex<Vec<ToolContext>>>;

/// The mock, back from the engine: every handle to it is gone once the engine and its
/// workers are, so its expectations can be checked here rather than in some task's drop.
fn verify_hub(hub: Arc<MockHub>) {
    Arc::try_unwrap(hub)
        .ok()
        .expect("the engine let go of the hub")
        .checkpoint();
}

async fn engine(builder: EngineBuilder) -> Engine {
    let engine = builder.build().await.unwrap();
    engine.register_tools(&[tool_spec()]).await.unwrap();
    engine
}

async fn tool_workflow(engine: &Engine, spec_config: Value) {
    engine
        .register_workflow(&workflow(
            "lookup",
            json!({"entry": "find", "nodes": [
                {"id": "find", "type": "tool_node", "config": spec_config}
            ]}),
        ))
        .await
        .unwrap();
}

async fn settle(engine: &Engine, run: &Run) -> Run {
    tokio::time::timeout(Duration::from_secs(30), engine.wait(run.id))
        .await
        .expect("the run settles")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_node_calls_the_hub_once_with_a_run_step_seq_key() {
    let contexts: Contexts = Arc::default();
    let mut hub = mock_hub();
    let seen = contexts.clone();
    hub.expect_execute()
        .withf(|tool, args, _| tool == TOOL && *args == json!({"email": "ada@example.com"}))
        .times(1)
        .returning(move |_, _, ctx| {
            seen.lock().unwrap().push(ctx.clone());
            Ok(json!({"name": "Ada"}))
        });
    let hub = Arc::new(hub);
    let engine = engine(Engine::builder().tool_hub(hub.clone())).await;
    tool_workflow(
        &engine,
        json!({"tool_id": TOOL, "input": {"email": "$input.email"}}),
    )
    .await;
    let pool = engine.spawn_workers(worker_options());
    let run = engine
        .run_to_completion(StartRun::new(
            "lookup",
            json!({"email": "ada@example.com"}),
            subject(),
        ))
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.error);
    assert_eq!(run.result, Some(json!({"name": "Ada"})));

    let step = engine.steps(run.id).await.unwrap().remove(0);
    let ctx = contexts.lock().unwrap().remove(0);
    assert_eq!(
        ctx.idempotency_key,
        Some(format!("{}/{}/0", run.id, step.index))
    );
    assert_eq!((ctx.run_id, ctx.step_id), (Some(run.id), Some(step.id)));
    assert_eq!(ctx.subject, subject());
    pool.shutdown().await;
    drop(engine);
    verify_hub(hub);
}

/// Asks for the tool on its first call, then never answers (the worker hangs mid-step).
struct HangsAfterToolCall {
    calls: AtomicUsize,
}

#[async_trait]
impl LlmProvider for HangsAfterToolCall {
    fn name(&self) -> &str {
        "hangs"
    }
    async fn complete(&self, _request: &LlmRequest) -> Result<LlmResponse> {
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            return Ok(tool_call_turn());
        }
        futures::future::pending().await
    }
}

fn tool_call_turn() -> LlmResponse {
    LlmResponse {
        tool_calls: vec![ToolCallRequest {
            id: "call_1".into(),
            name: TOOL.into(),
            arguments: json!({"email": "ada@example.com"}),
        }],
        ..Default::default()
    }
}

fn lookup_agent() -> Agent {
    Agent::new(
        "agent.lookup",
        "Look the customer up, then summarise.",
        ModelProfile::new("m"),
    )
    .with_tools([TOOL])
}

async fn agent_workflow(engine: &Engine) {
    engine.register_agent(&lookup_agent()).await.unwrap();
    engine
        .register_workflow(&workflow(
            "summary",
            json!({"entry": "summarise", "nodes": [
                {"id": "summarise", "type": "agent_node", "config": {"agent_id": "agent.lookup"}}
            ]}),
        ))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_step_does_not_call_the_hub_again() {
    let (store, queue) = (MemoryStore::new(), MemoryQueue::new());
    let backends = |b: EngineBuilder| {
        b.store(Arc::new(store.clone()))
            .queue(Arc::new(queue.clone()))
    };
    let executed = Arc::new(AtomicUsize::new(0));
    let mut first_hub = mock_hub();
    let count = executed.clone();
    first_hub
        .expect_execute()
        .times(1)
        .returning(move |_, _, _| {
            count.fetch_add(1, Ordering::SeqCst);
            Ok(json!({"name": "Ada"}))
        });
    let first_hub = Arc::new(first_hub);
    let hanging = Arc::new(HangsAfterToolCall {
        calls: AtomicUsize::new(0),
    });
    let first = engine(
        backends(Engine::builder())
            .default_llm(hanging.clone())
            .tool_hub(first_hub.clone()),
    )
    .await;
    agent_workflow(&first).await;
    let options = worker_options().lease(Duration::from_millis(600));
    let pool = first.spawn_workers(options.clone());
    let run = first
        .start_run(StartRun::new("summary", json!({}), subject()))
        .await
        .unwrap();
    // The tool call is executed and recorded; the next LLM turn hangs.
    for _ in 0..500 {
        if executed.load(Ordering::SeqCst) == 1 && hanging.calls.load(Ordering::SeqCst) == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        hanging.calls.load(Ordering::SeqCst),
        2,
        "the step is in flight"
    );

    // Crash: the worker dies without finishing its job; the engine is gone.
    pool.abort();
    drop(first);

    let mut second_hub = mock_hub();
    second_hub.expect_execute().never();
    let second_hub = Arc::new(second_hub);
    let mut llm = mock_llm();
    llm.expect_complete()
        .withf(|r| {
            r.messages
                .iter()
                .any(|m| matches!(m, Message::Tool { call_id, .. } if call_id == "call_1"))
        })
        .times(1)
        .returning(|_| Ok(LlmResponse::text("Ada is a customer.")));
    let second = engine(
        backends(Engine::builder())
            .default_llm(Arc::new(llm))
            .tool_hub(second_hub.clone()),
    )
    .await;
    let pool = second.spawn_workers(options);
    let done = settle(&second, &run).await;
    assert_eq!(done.status, RunStatus::Completed, "{:?}", done.error);
    assert_eq!(done.result, Some(json!({"text": "Ada is a customer."})));
    pool.shutdown().await;
    drop(second);
    verify_hub(second_hub);
    assert_eq!(executed.load(Ordering::SeqCst), 1);
}

fn decision(effect: Effect, policy_id: &str) -> Decision {
    Decision {
        effect,
        policy_id: Some(policy_id.into()),
        reason: format!("{policy_id} decided"),
        changes: None,
        matched: vec![policy_id.into()],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_tool_call_never_reaches_the_hub() {
    let mut policy = MockPolicy::new();
    policy
        .expect_evaluate()
        .withf(|r| r.action == PolicyAction::RunStart && r.resource.id == "lookup")
        .times(1)
        .returning(|_| Ok(Decision::allow_default()));
    policy
        .expect_evaluate()
        .withf(|r| {
            r.action == PolicyAction::ToolCall
                && r.resource.id == TOOL
                && r.subject == subject()
                && r.context["tool"]["id"] == TOOL
        })
        .times(1)
        .returning(|_| Ok(decision(Effect::Deny, "no-lookups")));
    let mut hub = mock_hub();
    hub.expect_execute().never();
    let hub = Arc::new(hub);
    let engine = engine(
        Engine::builder()
            .tool_hub(hub.clone())
            .policy_engine(Arc::new(policy)),
    )
    .await;
    tool_workflow(
        &engine,
        json!({"tool_id": TOOL, "input": {"email": "$input.email"}}),
    )
    .await;
    let pool = engine.spawn_workers(worker_options());
    let run = engine
        .run_to_completion(StartRun::new(
            "lookup",
            json!({"email": "ada@example.com"}),
            subject(),
        ))
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    let error = run.error.unwrap();
    assert_eq!(
        (error["kind"].as_str(), error["policy_id"].as_str()),
        (Some("policy_denied"), Some("no-lookups"))
    );
    pool.shutdown().await;
    drop(engine);
    verify_hub(hub);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_gated_tool_runs_only_after_approval_and_once() {
    let executed = Arc::new(AtomicUsize::new(0));
    let mut hub = mock_hub();
    let count = executed.clone();
    hub.expect_execute()
        .with(
            eq(TOOL),
            eq(json!({"email": "ada@example.com"})),
            mockall::predicate::always(),
        )
        .times(1)
        .returning(move |_, _, _| {
            count.fetch_add(1, Ordering::SeqCst);
            Ok(json!({"name": "Ada"}))
        });
    let hub = Arc::new(hub);
    let engine = Engine::builder()
        .tool_hub(hub.clone())
        .build()
        .await
        .unwrap();
    engine
        .register_tools(&[tool_spec().confirmed()])
        .await
        .unwrap();
    tool_workflow(
        &engine,
        json!({"tool_id": TOOL, "input": {"email": "$input.email"}}),
    )
    .await;
    let pool = engine.spawn_workers(worker_options());
    let run = engine
        .run_to_completion(StartRun::new(
            "lookup",
            json!({"email": "ada@example.com"}),
            subject(),
        ))
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Paused);
    assert_eq!(executed.load(Ordering::SeqCst), 0, "not before approval");

    let gate = run.pending_gate.clone().unwrap();
    engine
        .approve(run.id, &gate.gate_id, "admin", None)
        .await
        .unwrap();
    let done = settle(&engine, &run).await;
    assert_eq!(done.status, RunStatus::Completed, "{:?}", done.error);
    assert_eq!(executed.load(Ordering::SeqCst), 1, "once after approval");
    pool.shutdown().await;
    drop(engine);
    verify_hub(hub);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_llm_is_called_once_per_agent_turn() {
    let mut order = Sequence::new();
    let mut llm = mock_llm();
    let mut hub = mock_hub();
    llm.expect_complete()
        .withf(|r| {
            r.tools.iter().map(|t| t.name.as_str()).eq([TOOL])
                && !r.messages.iter().any(|m| matches!(m, Message::Tool { .. }))
        })
        .times(1)
        .in_sequence(&mut order)
        .returning(|_| Ok(tool_call_turn()));
    hub.expect_execute()
        .withf(|tool, args, _| tool == TOOL && args["email"] == "ada@example.com")
        .times(1)
        .in_sequence(&mut order)
        .returning(|_, _, _| Ok(json!({"name": "Ada", "tier": "gold"})));
    llm.expect_complete()
        .withf(|r| {
            r.messages.iter().any(|m| {
                matches!(m, Message::Tool { call_id, content }
                         if call_id == "call_1" && content.contains("gold"))
            })
        })
        .times(1)
        .in_sequence(&mut order)
        .returning(|_| Ok(LlmResponse::text("Ada is a gold customer.")));
    let (llm, hub) = (Arc::new(llm), Arc::new(hub));
    let engine = engine(
        Engine::builder()
            .default_llm(llm.clone())
            .tool_hub(hub.clone()),
    )
    .await;
    agent_workflow(&engine).await;
    let pool = engine.spawn_workers(worker_options());
    let run = engine
        .run_to_completion(StartRun::new("summary", json!({}), subject()))
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.error);
    assert_eq!(run.result, Some(json!({"text": "Ada is a gold customer."})));
    pool.shutdown().await;
    drop(engine);
    verify_hub(hub);
    Arc::try_unwrap(llm)
        .ok()
        .expect("the engine let go of the provider")
        .checkpoint();
}
