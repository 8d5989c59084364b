//! Durability on PostgreSQL with the real engine: worker processes killed with SIGKILL, a
//! killed worker's run resumed by another within 15 s, and a PostgreSQL crash-restart.
//!
//! Worker processes are this test binary re-executed on its ignored `worker_process` test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use futures::StreamExt;
use logline_core::engine::{Engine, StartRun};
use logline_core::run::{RunStatus, Subject};
use logline_postgres::{PgBackend, PgConfig};
use serde_json::json;
use sqlx::PgPool;
use support::cluster::PrivateCluster;
use support::probe::{self, Children};
use uuid::Uuid;

#[test]
#[ignore = "entry point of the worker processes the durability tests spawn"]
fn worker_process() {
    probe::worker_main();
}

fn subject() -> Subject {
    Subject::tenant("durability")
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

async fn start_runs(engine: &Engine, workflow: &str, n: usize) -> Vec<Uuid> {
    let mut ids = Vec::with_capacity(n);
    for chunk in 0..n.div_ceil(50) {
        let batch = (chunk * 50..((chunk + 1) * 50).min(n))
            .map(|i| engine.start_run(StartRun::new(workflow, json!({ "i": i }), subject())));
        for r in futures::future::join_all(batch).await {
            ids.push(r.unwrap().id);
        }
    }
    ids
}

/// Waits until `n` runs completed; fails fast on a failed run.
async fn wait_completed(pool: &PgPool, n: i64, limit: Duration) {
    let t = Instant::now();
    loop {
        let failed = count(
            pool,
            "SELECT count(*) FROM runs WHERE status IN ('failed', 'cancelled')",
        )
        .await;
        assert_eq!(failed, 0, "no run may fail");
        let done = count(pool, "SELECT count(*) FROM runs WHERE status = 'completed'").await;
        if done >= n {
            return;
        }
        assert!(
            t.elapsed() < limit,
            "only {done} of {n} runs completed after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The invariants every durability test checks once all runs completed.
async fn assert_exactly_once_and_gap_free(pool: &PgPool, runs: i64) {
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM runs WHERE status <> 'completed'"
        )
        .await,
        0
    );
    assert_eq!(count(pool, "SELECT count(*) FROM runs").await, runs);
    // The side effect happened exactly once per run.
    assert_eq!(
        count(
            pool,
            "SELECT count(DISTINCT run_id) FROM side_effects WHERE node = 'effect'"
        )
        .await,
        runs
    );
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM (SELECT run_id FROM side_effects WHERE node = 'effect'
                                   GROUP BY run_id HAVING count(*) <> 1) t"
        )
        .await,
        0
    );
    // A re-executed (never recorded) call carried the same idempotency key.
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM (SELECT run_id FROM tool_calls WHERE node = 'effect'
                                   GROUP BY run_id HAVING count(DISTINCT idem_key) > 1) t"
        )
        .await,
        0
    );
    // Every run's events are 1..last_seq without gaps or duplicates.
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM runs r LEFT JOIN (
                 SELECT run_id, count(*) AS n, min(seq) AS lo, max(seq) AS hi
                 FROM events GROUP BY run_id) e ON e.run_id = r.id
             WHERE e.n IS NULL OR e.lo <> 1 OR e.hi <> e.n OR e.hi <> r.last_seq"
        )
        .await,
        0
    );
    // Every node started once per run in the trace: a checkpointed step never ran again.
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM (SELECT run_id, payload->>'node_id' FROM events
                                   WHERE kind = 'step_started' GROUP BY 1, 2
                                   HAVING count(*) <> 1) t"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM events WHERE kind = 'run_completed'"
        )
        .await,
        runs
    );
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM jobs WHERE state = 'dead_lettered'"
        )
        .await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_worker_processes_lose_no_run_and_repeat_no_effect() {
    const RUNS: usize = 600;
    let schema = support::unique_schema();
    let _g = support::SchemaGuard(schema.clone());
    let pg = support::fresh_backend_in(&schema).await;
    let pool = pg.pool().clone();
    probe::create_probe_tables(&pool).await;
    let engine = probe::probe_engine(&pg).await;
    engine
        .register_workflow(&probe::probe_workflow(
            "crash",
            &[("effect", 40, 120, true), ("pause", 40, 120, false)],
        ))
        .await
        .unwrap();
    let url = support::database_url();
    let lease = Duration::from_secs(3);
    let mut workers = Children(Vec::new());
    for _ in 0..3 {
        workers
            .0
            .push(probe::spawn_worker_process(&url, &schema, lease, 10));
    }
    start_runs(&engine, "crash", RUNS).await;
    let mut killed = Vec::new();
    for share in [0.2, 0.5] {
        wait_completed(
            &pool,
            (RUNS as f64 * share) as i64,
            Duration::from_secs(120),
        )
        .await;
        // SIGKILL the oldest worker mid-run and start a replacement.
        let mut victim = workers.0.remove(0);
        killed.push(victim.id() as i32);
        victim.kill().unwrap();
        victim.wait().unwrap();
        workers
            .0
            .push(probe::spawn_worker_process(&url, &schema, lease, 10));
    }
    wait_completed(&pool, RUNS as i64, Duration::from_secs(180)).await;
    assert_exactly_once_and_gap_free(&pool, RUNS as i64).await;
    // The kills did interrupt runs (their jobs were reclaimed), and the killed processes had
    // been doing work.
    let resumed = count(&pool, "SELECT count(*) FROM jobs WHERE attempts > 1").await;
    assert!(resumed > 0, "no run was interrupted by the kills");
    for pid in killed {
        let calls: i64 = sqlx::query_scalar("SELECT count(*) FROM tool_calls WHERE pid = $1")
            .bind(pid)
            .fetch_one(&pool)
            .await
            .unwrap();
        assert!(calls > 0, "killed worker {pid} had executed nothing");
    }
    println!(
        "{RUNS} runs, 2 workers killed, {resumed} runs resumed elsewhere, {} tool calls for {} steps",
        count(&pool, "SELECT count(*) FROM tool_calls").await,
        RUNS * 2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_run_resumes_within_15_seconds() {
    let schema = support::unique_schema();
    let _g = support::SchemaGuard(schema.clone());
    let pg = support::fresh_backend_in(&schema).await;
    let pool = pg.pool().clone();
    probe::create_probe_tables(&pool).await;
    let engine = probe::probe_engine(&pg).await;
    engine
        .register_workflow(&probe::probe_workflow(
            "slow",
            &[
                ("effect", 1500, 0, true),
                ("b", 1500, 0, true),
                ("c", 1500, 0, true),
            ],
        ))
        .await
        .unwrap();
    // A 10 s lease with heartbeats every 3.3 s, judged on the database clock.
    let lease = Duration::from_secs(10);
    let mut a = Children(vec![probe::spawn_worker_process(
        &support::database_url(),
        &schema,
        lease,
        2,
    )]);
    let run = engine
        .start_run(StartRun::new("slow", json!({}), subject()))
        .await
        .unwrap();
    let t = Instant::now();
    while engine.steps(run.id).await.unwrap().is_empty() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "worker A never checkpointed step 1"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Worker B (this process) is ready; A dies while executing step 2.
    let b = engine.spawn_workers(probe::worker_options(lease, 2));
    let mut victim = a.0.remove(0);
    victim.kill().unwrap();
    victim.wait().unwrap();
    let killed_at = Instant::now();
    let resumed_after = loop {
        let attempts: i32 = sqlx::query_scalar(
            "SELECT attempts FROM jobs WHERE payload->>'run_id' = $1 AND state <> 'completed'
             UNION ALL SELECT 99 FROM jobs WHERE payload->>'run_id' = $1 AND state = 'completed'
             ORDER BY 1 DESC LIMIT 1",
        )
        .bind(run.id.to_string())
        .fetch_one(&pool)
        .await
        .unwrap();
        if attempts >= 2 {
            break killed_at.elapsed();
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(30),
            "the run was never resumed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        resumed_after <= Duration::from_secs(15),
        "resumed {resumed_after:?} after the kill"
    );
    let done = tokio::time::timeout(Duration::from_secs(60), engine.wait(run.id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.status, RunStatus::Completed, "{:?}", done.error);
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM tool_calls WHERE node = 'effect'"
        )
        .await,
        1,
        "the checkpointed step was not executed again"
    );
    assert_eq!(engine.steps(run.id).await.unwrap().len(), 4);
    assert_exactly_once_and_gap_free(&pool, 1).await;
    println!("resumed {resumed_after:?} after SIGKILL (lease {lease:?})");
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_in_flight_runs() {
    let (pg, _g) = support::guarded_backend().await;
    let pool = pg.pool().clone();
    probe::create_probe_tables(&pool).await;
    let engine = probe::probe_engine(&pg).await;
    engine
        .register_workflow(&probe::probe_workflow("drain", &[("effect", 800, 0, true)]))
        .await
        .unwrap();
    let workers = engine.spawn_workers(probe::worker_options(Duration::from_secs(10), 4));
    let ids = start_runs(&engine, "drain", 4).await;
    let t = Instant::now();
    while count(&pool, "SELECT count(*) FROM tool_calls").await < 4 {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the runs never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Every run is in flight: a graceful shutdown lets them finish and completes their jobs.
    workers.shutdown().await;
    for id in ids {
        assert_eq!(
            engine.get_run(id).await.unwrap().status,
            RunStatus::Completed
        );
    }
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM jobs WHERE state <> 'completed'"
        )
        .await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_complete_across_a_postgres_crash_restart() {
    const RUNS: usize = 60;
    // A private server: crashing the shared one would disturb everything else using it.
    let cluster = PrivateCluster::start();
    let config = PgConfig::new(cluster.url())
        .schema("logline")
        .max_connections(12)
        .acquire_timeout(Duration::from_secs(3))
        .poll_interval(Duration::from_millis(500));
    let pg = PgBackend::connect(&config).await.unwrap();
    pg.migrate().await.unwrap();
    let pool = pg.pool().clone();
    probe::create_probe_tables(&pool).await;
    let engine = probe::probe_engine(&pg).await;
    engine
        .register_workflow(&probe::probe_workflow(
            "restart",
            &[
                ("effect", 100, 200, true),
                ("pause", 300, 300, false),
                ("more", 100, 100, false),
            ],
        ))
        .await
        .unwrap();
    let workers = engine.spawn_workers(probe::worker_options(Duration::from_secs(3), 8));
    let ids = start_runs(&engine, "restart", RUNS).await;
    // A subscriber follows one run through the outage.
    let follower = {
        let (engine, id) = (engine.clone(), ids[RUNS - 1]);
        tokio::spawn(async move {
            let mut seqs = Vec::new();
            let mut stream = engine.subscribe(id, 0);
            while let Some(e) = stream.next().await {
                match e {
                    Ok(e) => seqs.push(e.seq),
                    // The stream ends on an error; resume after the last event seen.
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        stream = engine.subscribe(id, seqs.last().copied().unwrap_or(0));
                    }
                }
            }
            seqs
        })
    };
    wait_completed(&pool, 10, Duration::from_secs(60)).await;
    cluster.crash();
    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.start_again();
    wait_completed(&pool, RUNS as i64, Duration::from_secs(120)).await;
    assert_exactly_once_and_gap_free(&pool, RUNS as i64).await;
    let seqs = tokio::time::timeout(Duration::from_secs(30), follower)
        .await
        .unwrap()
        .unwrap();
    assert!(!seqs.is_empty());
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "the stream has no gaps or repeats"
    );
    workers.shutdown().await;
}
