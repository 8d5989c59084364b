//! The golden run (ticket triage) on PostgreSQL, with workers on the shared queue.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;

use logline_core::engine::{Engine, StartRun, WorkerOptions, RUN_QUEUE};
use logline_core::queue::Queue;
use logline_core::run::{RunStatus, Subject};
use logline_core::testing::golden;
use logline_postgres::PgBackend;
use serde_json::json;

/// An engine on `pg` with the golden run's workflow, agents, tool and scripted model.
async fn golden_engine(pg: &PgBackend) -> Engine {
    let llm = Arc::new(golden::scripted_llm());
    let engine = golden::with_tool(pg.engine_builder().default_llm(llm))
        .build()
        .await
        .unwrap();
    golden::install(&engine, "gpt-4o-mini").await.unwrap();
    engine
}

/// The golden run's request.
fn golden_start() -> StartRun {
    StartRun::new(
        golden::WORKFLOW_ID,
        json!({ "hotel_id": "VV-LISBON" }),
        Subject::tenant("hotel-group"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_run_on_postgres() {
    let (pg, _g) = support::guarded_backend().await;
    let engine = golden_engine(&pg).await;
    let workers = engine.spawn_workers(WorkerOptions::default());
    let run = engine.run_to_completion(golden_start()).await.unwrap();
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.error);
    let result = run.result.clone().unwrap();
    assert_eq!(result["summary"], "4 tickets triaged");
    assert_eq!(
        result["tickets"][0],
        json!({ "id": "T-1", "subject": "No hot water in room 305", "status": "open",
                "priority": "urgent", "action": "escalate_to_human" })
    );
    let events = engine.events(run.id).await.unwrap();
    assert!(
        golden::has_minimum_events(&events),
        "{:?}",
        events.iter().map(|e| e.kind).collect::<Vec<_>>()
    );
    assert!(
        events
            .iter()
            .enumerate()
            .all(|(i, e)| e.seq == i as u64 + 1),
        "gap-free from 1"
    );
    // What a fresh reader (another process) sees is the same run.
    let again = support::fresh_store_in(pg.config().schema_name()).await;
    let stored = logline_core::store::RunStore::get_run(&again, run.id)
        .await
        .unwrap();
    assert_eq!(stored.result, run.result);
    assert_eq!(engine.steps(run.id).await.unwrap().len(), 3);
    workers.shutdown().await;
}

/// Executed in place with no worker anywhere, the golden run leaves no job behind: the job
/// `start_run` enqueued is withdrawn once the run completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_run_executed_in_place_leaves_no_job_on_postgres() {
    let (pg, _g) = support::guarded_backend().await;
    let engine = golden_engine(&pg).await;
    let queue = pg.queue();
    let run = engine.start_run(golden_start()).await.unwrap();
    assert_eq!(queue.stats(RUN_QUEUE).await.unwrap().queued, 1);
    let done = engine.execute(run.id).await.unwrap();
    assert_eq!(done.status, RunStatus::Completed, "{:?}", done.error);
    assert_eq!(queue.stats(RUN_QUEUE).await.unwrap().queued, 0);
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs")
        .fetch_one(pg.pool())
        .await
        .unwrap();
    assert_eq!(jobs, 0, "no job row of any state is left");
}
