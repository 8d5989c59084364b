//! Retention through the engine: finished runs and completed jobs go, live work stays, and
//! the next pass is scheduled once however many processes schedule it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use common::*;
use logline_core::queue::{JobState, NewJob, Queue};
use logline_core::retention::{RetentionJob, RetentionPolicy, RETENTION_QUEUE};
use logline_core::run::RunStatus;
use logline_core::ErrorKind;
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn gated() -> logline_core::workflow::Workflow {
    workflow(
        "gated",
        json!({
            "entry": "ask",
            "nodes": [
                { "id": "ask", "type": "human_gate", "config": { "message": "ok?" } },
                { "id": "done", "type": "static", "config": { "output": { "ok": true } } }
            ],
            "edges": [ { "from": "ask", "to": "done" } ]
        }),
    )
}

fn simple() -> logline_core::workflow::Workflow {
    workflow(
        "simple",
        json!({
            "entry": "a",
            "nodes": [ { "id": "a", "type": "static", "config": { "output": { "n": 1 } } } ],
            "edges": []
        }),
    )
}

fn keep_nothing() -> RetentionPolicy {
    RetentionPolicy {
        runs: Some(Duration::ZERO),
        jobs: Some(Duration::ZERO),
        batch: 2,
        ..RetentionPolicy::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_removes_finished_runs_and_keeps_live_ones() {
    let h = harness(None, None).await;
    h.engine.register_workflow(&simple()).await.unwrap();
    h.engine.register_workflow(&gated()).await.unwrap();
    let mut finished = Vec::new();
    for _ in 0..5 {
        let run = h.run("simple", json!({})).await;
        assert_eq!(run.status, RunStatus::Completed);
        finished.push(run.id);
    }
    let paused = h.run("gated", json!({})).await;
    assert_eq!(paused.status, RunStatus::Paused);
    tokio::time::sleep(Duration::from_millis(20)).await;

    let retention = h
        .engine
        .spawn_retention(keep_nothing(), worker_options())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    for id in &finished {
        loop {
            match h.engine.get_run(*id).await {
                Err(e) if e.kind() == ErrorKind::NotFound => break,
                Ok(_) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await
                }
                other => panic!("run {id} not purged: {other:?}"),
            }
        }
    }
    // A paused run is live work: kept, and it still completes.
    let gate = h
        .engine
        .get_run(paused.id)
        .await
        .unwrap()
        .pending_gate
        .unwrap();
    h.engine
        .approve(paused.id, &gate.gate_id, "boss", None)
        .await
        .unwrap();
    assert_eq!(h.wait(&paused).await.status, RunStatus::Completed);
    retention.shutdown().await;
}

#[tokio::test]
async fn a_pass_purges_completed_jobs_in_bounded_batches() {
    let h = harness(None, None).await;
    let queue = h.engine.queue().clone();
    let ids = queue
        .enqueue_batch(
            (0..5)
                .map(|n| NewJob::new("q", json!({ "n": n })))
                .collect(),
        )
        .await
        .unwrap();
    for j in queue
        .claim("q", "w", 5, Duration::from_secs(30))
        .await
        .unwrap()
    {
        queue.complete(&j).await.unwrap();
    }
    let live = queue.enqueue(NewJob::new("q", json!({}))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;

    let job = RetentionJob::new(
        h.engine.store().clone(),
        queue.clone(),
        RetentionPolicy {
            max_batches: 2,
            ..keep_nothing()
        },
    );
    // Two batches of two: the pass stops with one job left and says so.
    let first = job.run_once(&CancellationToken::new()).await.unwrap();
    assert_eq!((first.jobs, first.truncated), (4, true));
    let second = job.run_once(&CancellationToken::new()).await.unwrap();
    assert_eq!((second.jobs, second.truncated), (1, false));
    for id in ids {
        assert_eq!(queue.job(id).await.unwrap_err().kind(), ErrorKind::NotFound);
    }
    assert_eq!(queue.job(live).await.unwrap().state, JobState::Queued);
    // A cancelled pass deletes nothing more.
    let cancelled = CancellationToken::new();
    cancelled.cancel();
    let report = job.run_once(&cancelled).await.unwrap();
    assert_eq!((report.runs, report.jobs), (0, 0));
}

#[tokio::test]
async fn every_process_schedules_the_same_pass() {
    let h = harness(None, None).await;
    let queue: Arc<dyn Queue> = h.engine.queue().clone();
    let a = RetentionJob::new(h.engine.store().clone(), queue.clone(), keep_nothing());
    let b = RetentionJob::new(h.engine.store().clone(), queue.clone(), keep_nothing());
    let first = a.schedule_now().await.unwrap();
    assert_eq!(b.schedule_now().await.unwrap(), first);
    let rec = queue.job(first).await.unwrap();
    assert_eq!(rec.queue, RETENTION_QUEUE);
    assert!(rec.run_at <= Utc::now());
}

#[tokio::test]
async fn each_pass_schedules_the_next() {
    use logline_core::queue::JobHandler;
    let h = harness(None, None).await;
    let queue: Arc<dyn Queue> = h.engine.queue().clone();
    let job = RetentionJob::new(
        h.engine.store().clone(),
        queue.clone(),
        RetentionPolicy {
            every: Duration::from_secs(1),
            ..keep_nothing()
        },
    );
    let first = job.schedule_now().await.unwrap();
    let lease = Duration::from_secs(30);
    let claimed = queue.claim(RETENTION_QUEUE, "w", 5, lease).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, first);
    job.handle(&claimed[0], CancellationToken::new())
        .await
        .unwrap();
    queue.complete(&claimed[0]).await.unwrap();
    // The next pass becomes due at the start of the next one-second slot.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let next = loop {
        let jobs = queue.claim(RETENTION_QUEUE, "w", 5, lease).await.unwrap();
        if let Some(j) = jobs.into_iter().next() {
            break j;
        }
        assert!(tokio::time::Instant::now() < deadline, "no next pass");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_ne!(next.id, first);
}
