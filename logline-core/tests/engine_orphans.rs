//! Runs never stay orphaned: a lost enqueue is recovered by the sweeper, and a cancel from
//! another process reaches the worker executing the run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use common::{subject, worker_options, workflow};
use logline_core::engine::{Engine, StartRun, RUN_QUEUE};
use logline_core::memory::{MemoryQueue, MemoryStore};
use logline_core::queue::{Backoff, FailOutcome, Job, JobId, JobRecord, JobState, NewJob, Queue};
use logline_core::run::{RunStatus, Subject};
use logline_core::store::Store;
use logline_core::tool::{PageRequest, ToolContext, ToolHub, ToolPage, ToolSpec};
use logline_core::{Error, ErrorKind, Result};
use serde_json::{json, Value};
use tokio::sync::Notify;

/// A memory queue whose next enqueue fails once armed (a database blip).
#[derive(Default)]
struct FlakyQueue {
    inner: MemoryQueue,
    fail_next: AtomicBool,
}

#[async_trait]
impl Queue for FlakyQueue {
    async fn enqueue(&self, job: NewJob) -> Result<JobId> {
        if self.fail_next.swap(false, Ordering::SeqCst) {
            return Err(Error::Internal("enqueue lost".into()));
        }
        self.inner.enqueue(job).await
    }
    async fn claim(&self, q: &str, w: &str, max: usize, lease: Duration) -> Result<Vec<Job>> {
        self.inner.claim(q, w, max, lease).await
    }
    async fn heartbeat(&self, job: &Job, lease: Duration) -> Result<DateTime<Utc>> {
        self.inner.heartbeat(job, lease).await
    }
    async fn complete(&self, job: &Job) -> Result<()> {
        self.inner.complete(job).await
    }
    async fn fail(&self, job: &Job, e: &str, r: bool, b: Backoff) -> Result<FailOutcome> {
        self.inner.fail(job, e, r, b).await
    }
    async fn dead_letters(&self, q: &str, limit: usize) -> Result<Vec<JobRecord>> {
        self.inner.dead_letters(q, limit).await
    }
    async fn retry_dead_letter(&self, id: JobId) -> Result<()> {
        self.inner.retry_dead_letter(id).await
    }
    async fn job(&self, id: JobId) -> Result<JobRecord> {
        self.inner.job(id).await
    }
    async fn wait_for_work(&self, q: &str, t: Duration) -> Result<()> {
        self.inner.wait_for_work(q, t).await
    }
    async fn live_key_prefixes(&self, q: &str, prefixes: &[String]) -> Result<Vec<String>> {
        self.inner.live_key_prefixes(q, prefixes).await
    }
    async fn purge_completed(&self, cutoff: DateTime<Utc>, limit: u64) -> Result<u64> {
        self.inner.purge_completed(cutoff, limit).await
    }
}

fn gated() -> logline_core::workflow::Workflow {
    workflow(
        "gated",
        json!({
            "entry": "approval",
            "nodes": [
                { "id": "approval", "type": "human_gate", "config": { "message": "Go?" } },
                { "id": "done", "type": "static", "config": { "output": { "done": true } } }
            ],
            "edges": [ { "from": "approval", "to": "done" } ]
        }),
    )
}

/// An engine on `queue` with the `gated` workflow.
async fn gated_engine(queue: Arc<dyn Queue>) -> Engine {
    let engine = Engine::builder().queue(queue).build().await.unwrap();
    engine.register_workflow(&gated()).await.unwrap();
    engine
}

/// Starts a run of the `gated` workflow.
async fn start_gated(engine: &Engine) -> logline_core::run::Run {
    engine
        .start_run(StartRun::new("gated", json!({}), subject()))
        .await
        .unwrap()
}

async fn settled(engine: &Engine, run_id: uuid::Uuid) -> logline_core::run::Run {
    tokio::time::timeout(Duration::from_secs(30), engine.wait(run_id))
        .await
        .expect("run settles in time")
        .expect("wait")
}

/// Queued jobs of the run queue.
async fn queued(queue: &MemoryQueue) -> u64 {
    queue.stats(RUN_QUEUE).await.expect("stats").queued
}

#[tokio::test]
async fn a_run_executed_in_place_leaves_no_queued_job() {
    let queue = MemoryQueue::new();
    let engine = gated_engine(Arc::new(queue.clone())).await;
    let run = start_gated(&engine).await;
    assert_eq!(queued(&queue).await, 1, "start_run enqueues the run's job");
    let paused = engine.execute(run.id).await.unwrap();
    assert_eq!(paused.status, RunStatus::Paused);
    assert_eq!(
        queued(&queue).await,
        0,
        "withdrawn once the run paused here"
    );
    assert_eq!(
        engine.execute(run.id).await.unwrap().status,
        RunStatus::Paused,
        "a settled run is left as it is"
    );

    let gate = paused.pending_gate.expect("gate").gate_id;
    engine.approve(run.id, &gate, "boss", None).await.unwrap();
    assert_eq!(queued(&queue).await, 1, "the approval enqueues the resume");
    let done = engine.execute(run.id).await.unwrap();
    assert_eq!(done.status, RunStatus::Completed, "{:?}", done.error);
    assert_eq!(done.result, Some(json!({ "done": true })));
    assert_eq!(queued(&queue).await, 0);

    // A job a worker has claimed stays with the worker.
    let run = start_gated(&engine).await;
    let claimed = queue
        .claim(RUN_QUEUE, "w", 1, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    engine.execute(run.id).await.unwrap();
    assert_eq!(
        queue.job(claimed[0].id).await.unwrap().state,
        JobState::Running
    );
    queue.complete(&claimed[0]).await.unwrap();
}

#[tokio::test]
async fn a_lost_enqueue_after_approve_is_recovered_by_the_sweeper() {
    let queue = Arc::new(FlakyQueue::default());
    let engine = gated_engine(queue.clone()).await;
    let _pool = engine.spawn_workers(worker_options());
    let run = start_gated(&engine).await;
    let paused = settled(&engine, run.id).await;
    assert_eq!(paused.status, RunStatus::Paused);
    let gate = paused.pending_gate.expect("gate").gate_id;

    queue.fail_next.store(true, Ordering::SeqCst);
    let e = engine
        .approve(run.id, &gate, "boss", None)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Internal);
    let orphan = engine.get_run(run.id).await.unwrap();
    assert_eq!(orphan.status, RunStatus::Running, "committed, but no job");

    let report = engine.sweep_orphans(Duration::ZERO).await.unwrap();
    assert_eq!((report.stale, report.requeued), (1, 1));
    let done = settled(&engine, run.id).await;
    assert_eq!(done.status, RunStatus::Completed, "{:?}", done.error);
    assert_eq!(done.result, Some(json!({ "done": true })));
}

#[tokio::test]
async fn sweeps_leave_runs_with_a_live_job_alone() {
    let queue = Arc::new(FlakyQueue::default());
    let engine = gated_engine(queue.clone()).await;
    // No workers: the run's first job stays queued.
    let run = start_gated(&engine).await;
    for _ in 0..2 {
        let report = engine.sweep_orphans(Duration::ZERO).await.unwrap();
        assert_eq!((report.stale, report.requeued), (1, 0));
    }
    assert_eq!(
        queue
            .live_key_prefixes("logline.runs", &[format!("run:{}:", run.id)])
            .await
            .unwrap()
            .len(),
        1
    );
}

/// A hub whose one tool blocks for a minute; it notes when a call starts and when a call
/// is dropped before finishing (interrupted).
#[derive(Default)]
struct BlockingHub {
    started: Notify,
    interrupted: Notify,
}

struct DropSignal<'a>(&'a Notify, bool);

impl Drop for DropSignal<'_> {
    fn drop(&mut self) {
        if !self.1 {
            self.0.notify_one();
        }
    }
}

#[async_trait]
impl ToolHub for BlockingHub {
    fn name(&self) -> &str {
        "blocking"
    }
    async fn list_tools(&self, _page: PageRequest) -> Result<ToolPage> {
        Ok(ToolPage {
            tools: vec![spec()],
            next_cursor: None,
        })
    }
    async fn execute(&self, _tool: &str, _args: Value, _ctx: &ToolContext) -> Result<Value> {
        let mut guard = DropSignal(&self.interrupted, false);
        self.started.notify_one();
        tokio::time::sleep(Duration::from_secs(60)).await;
        guard.1 = true;
        Ok(json!({}))
    }
}

fn spec() -> ToolSpec {
    ToolSpec::new("slow.call", "Takes a minute.", json!({"type": "object"})).on_hub("blocking")
}

#[tokio::test]
async fn cancel_from_another_engine_interrupts_the_tool_call() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let queue: Arc<dyn Queue> = Arc::new(MemoryQueue::new());
    let hub = Arc::new(BlockingHub::default());
    let executing = Engine::builder()
        .store(store.clone())
        .queue(queue.clone())
        .tool_hub(hub.clone())
        .build()
        .await
        .unwrap();
    executing.register_tools(&[spec()]).await.unwrap();
    let wf = workflow(
        "slow",
        json!({ "entry": "call", "nodes": [
            { "id": "call", "type": "tool_node", "config": { "tool_id": "slow.call" } } ] }),
    );
    executing.register_workflow(&wf).await.unwrap();
    let _pool = executing.spawn_workers(worker_options().lease(Duration::from_millis(900)));
    // Another process: same store and queue, no workers.
    let other = Engine::builder()
        .store(store)
        .queue(queue)
        .build()
        .await
        .unwrap();

    let run = other
        .start_run(StartRun::new("slow", json!({}), Subject::tenant("acme")))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), hub.started.notified())
        .await
        .expect("the tool call starts");
    let cancelled = other.cancel(run.id, "changed my mind").await.unwrap();
    assert_eq!(cancelled.status, RunStatus::Cancelled);
    // Well before the call's minute is up, the executing worker drops it.
    tokio::time::timeout(Duration::from_secs(20), hub.interrupted.notified())
        .await
        .expect("the in-flight tool call is interrupted");
    assert_eq!(
        other.get_run(run.id).await.unwrap().status,
        RunStatus::Cancelled
    );
}
