//! Shared and boxed handles are backends too: `Arc<T>`, `Box<T>` and `&T` implement every
//! backend trait `T` implements, default methods included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use logline_core::app::AppStore;
use logline_core::engine::{Engine, RunStarter};
use logline_core::llm::{Embedder, LlmProvider, LlmRequest, LlmResponse, LlmStreamEvent};
use logline_core::memory::MemoryQueue;
use logline_core::policy::{PolicyEngine, PolicySource};
use logline_core::queue::{Job, JobHandler, NewJob, Queue};
use logline_core::recall::RecallStore;
use logline_core::retention::RunRetirement;
use logline_core::run::Subject;
use logline_core::search::{CatalogObserver, Ranked, Reranked, Reranker};
use logline_core::store::{DefinitionStore, RunStore, Store};
use logline_core::testing::{FakeToolHub, ScriptedLlm};
use logline_core::tool::{handler, ToolHub, ToolSpec};
use logline_core::{Error, Result};
use serde_json::json;
use tokio_util::sync::CancellationToken;

/// Fails to compile unless `Arc<dyn $t>`, `Box<dyn $t>` and `&dyn $t` implement `$t`.
macro_rules! assert_pointers_implement {
    ($($t:ident),* $(,)?) => {$({
        fn implements<B: $t + ?Sized>() {}
        implements::<Arc<dyn $t>>();
        implements::<Box<dyn $t>>();
        implements::<&dyn $t>();
        implements::<Arc<Box<dyn $t>>>();
    })*};
}

#[test]
fn every_backend_trait_is_implemented_by_its_pointers() {
    assert_pointers_implement!(
        DefinitionStore,
        RunStore,
        Store,
        LlmProvider,
        Embedder,
        ToolHub,
        PolicyEngine,
        PolicySource,
        Queue,
        JobHandler,
        RunStarter,
        RunRetirement,
        Reranker,
        CatalogObserver,
        AppStore,
        RecallStore,
    );
}

async fn tool_ids<S: Store>(store: S) -> Vec<String> {
    store
        .list_tools(&Default::default())
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect()
}

#[tokio::test]
async fn the_engine_store_handle_is_a_store() {
    let engine = Engine::builder()
        .tool(
            ToolSpec::new("crm.lookup", "Find a customer.", json!({"type": "object"})),
            handler(|_, _| async { Ok(json!({})) }),
        )
        .build()
        .await
        .unwrap();
    // An `Arc<dyn Store>` where a generic store is expected, by value and by reference.
    assert_eq!(tool_ids(engine.store().clone()).await, vec!["crm.lookup"]);
    assert_eq!(tool_ids(engine.store()).await, vec!["crm.lookup"]);
    // And as a `dyn DefinitionStore` (what `CatalogSync::new` takes) without trait upcasting.
    let definitions: Arc<dyn DefinitionStore> = Arc::new(engine.store().clone());
    assert_eq!(
        definitions.get_tool("crm.lookup").await.unwrap().id,
        "crm.lookup"
    );
    let boxed: Box<dyn Store> = Box::new(engine.store().clone());
    assert_eq!(tool_ids(boxed).await, vec!["crm.lookup"]);
}

/// A provider whose `stream` differs from the default, to prove pointers forward it.
struct Streams;

#[async_trait]
impl LlmProvider for Streams {
    fn name(&self) -> &str {
        "streams"
    }
    async fn complete(&self, _: &LlmRequest) -> Result<LlmResponse> {
        Ok(LlmResponse::text("complete"))
    }
    async fn stream(
        &self,
        _: &LlmRequest,
    ) -> Result<futures::stream::BoxStream<'static, Result<LlmStreamEvent>>> {
        let delta = LlmStreamEvent::TextDelta {
            delta: "own stream".into(),
        };
        Ok(futures::stream::iter([Ok(delta)]).boxed())
    }
}

async fn first_delta<P: LlmProvider>(provider: P) -> String {
    let mut stream = provider.stream(&LlmRequest::default()).await.unwrap();
    match stream.next().await.unwrap().unwrap() {
        LlmStreamEvent::TextDelta { delta } => delta,
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn boxed_and_shared_providers_forward_every_method() {
    let boxed: Box<dyn LlmProvider> = Box::new(ScriptedLlm::new().reply_text("hello"));
    assert_eq!(boxed.name(), "scripted");
    let answer = boxed.complete(&LlmRequest::default()).await.unwrap();
    assert_eq!(answer.text.as_deref(), Some("hello"));

    let shared: Arc<dyn LlmProvider> = Arc::new(Streams);
    assert_eq!(first_delta(shared.clone()).await, "own stream");
    assert_eq!(first_delta(Box::new(Streams)).await, "own stream");
    assert_eq!(first_delta(&Streams).await, "own stream");
    assert_eq!(first_delta(&shared).await, "own stream");
}

#[tokio::test]
async fn boxed_hubs_forward_overridden_defaults() {
    let hub = FakeToolHub::new("fake")
        .tool(
            ToolSpec::new("echo", "Echo.", json!({"type": "object"})),
            |args| Ok(args.clone()),
        )
        .connect("u1", "github");
    let boxed: Box<dyn ToolHub> = Box::new(hub);
    let subject = Subject::tenant("t").with_user("u1");
    // `connections` has a default body; the box must reach the fake's own.
    assert_eq!(boxed.connections(&subject).await.unwrap().len(), 1);
    let ctx = logline_core::tool::ToolContext::for_subject(subject);
    let out = boxed.execute("echo", json!({"a": 1}), &ctx).await.unwrap();
    assert_eq!(out, json!({"a": 1}));
}

#[tokio::test]
async fn boxed_queues_work() {
    let queue: Box<dyn Queue> = Box::new(MemoryQueue::new());
    let ids = queue
        .enqueue_batch(vec![NewJob::new("q", json!(1)), NewJob::new("q", json!(2))])
        .await
        .unwrap();
    assert_eq!(queue.job(ids[1]).await.unwrap().payload, json!(2));
}

/// A handler overriding both default methods.
#[derive(Default)]
struct Handler {
    dead: AtomicUsize,
}

#[async_trait]
impl JobHandler for Handler {
    async fn handle(&self, _: &Job, _: CancellationToken) -> Result<()> {
        Ok(())
    }
    fn describe_error(&self, _: &Error) -> String {
        "described".into()
    }
    async fn dead_lettered(&self, _: &Job, _: &Error) -> Result<()> {
        self.dead.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

#[tokio::test]
async fn shared_handlers_forward_overridden_defaults() {
    let handler = Arc::new(Handler::default());
    let shared: Arc<dyn JobHandler> = handler.clone();
    let error = Error::Internal("x".into());
    assert_eq!(shared.describe_error(&error), "described");
    let queue = MemoryQueue::new();
    queue.enqueue(NewJob::new("q", json!(null))).await.unwrap();
    let job = queue
        .claim("q", "w", 1, std::time::Duration::from_secs(5))
        .await
        .unwrap()
        .remove(0);
    shared.dead_lettered(&job, &error).await.unwrap();
    assert_eq!(handler.dead.load(Ordering::SeqCst), 1);
}

/// A reranker overriding `forget`.
#[derive(Debug, Default)]
struct Forgets(AtomicUsize);

#[async_trait]
impl Reranker for Forgets {
    fn pool(&self) -> usize {
        7
    }
    async fn rerank(&self, _: &str, _: &[String], candidates: Vec<Ranked>) -> Result<Reranked> {
        Ok(Reranked {
            ranked: candidates,
            ..Default::default()
        })
    }
    fn forget(&self, _: &str) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn shared_rerankers_forward_overridden_defaults() {
    let inner = Arc::new(Forgets::default());
    let boxed: Box<dyn Reranker> = Box::new(inner.clone());
    assert_eq!(boxed.pool(), 7);
    boxed.forget("GMAIL_SEND_EMAIL");
    assert_eq!(inner.0.load(Ordering::SeqCst), 1);
    let out = boxed.rerank("q", &[], Vec::new()).await.unwrap();
    assert!(out.ranked.is_empty());
}
