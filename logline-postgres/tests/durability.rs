//! Durability on PostgreSQL with the real engine: worker processes killed with SIGKILL (also
//! while their database connections are terminated and the hub answers past its timeout), a
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
    assert_gap_free_trace(pool, runs, 0).await;
}

/// The trace of every run (`completed` completed, `failed` failed) is whole: events
/// 1..last_seq without gaps or repeats, each node started once, one terminal event per run,
/// no job dead-lettered.
async fn assert_gap_free_trace(pool: &PgPool, completed: i64, failed: i64) {
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
        completed
    );
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM events WHERE kind = 'run_failed'"
        )
        .await,
        failed
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

/// The tool timeout of the fault test's nodes; a slow answer takes 1.5 times as long.
const TIMEOUT_MS: u64 = 1000;

/// Slow answers of the `raw` node: always for the same 5 % of runs.
fn raw_slowness() -> serde_json::Value {
    json!({"per_mille": 50, "ms": TIMEOUT_MS * 3 / 2, "per_run": true})
}

/// A key-honouring effect (`probe.call`, 5 % of its calls answered past the timeout), then an
/// effect nothing deduplicates (`probe.raw`, 5 % of the runs answered past the timeout).
fn fault_workflow(id: &str) -> logline_core::workflow::Workflow {
    probe::linear_workflow(
        id,
        vec![
            json!({"id": "effect", "type": "tool_node", "config": {
                "tool_id": probe::PROBE, "timeout_ms": TIMEOUT_MS,
                "input": {"node": "effect", "sleep_ms": 200, "jitter_ms": 300, "effect": true,
                          "slow": {"per_mille": 50, "ms": TIMEOUT_MS * 3 / 2}}}}),
            json!({"id": "raw", "type": "tool_node", "config": {
                "tool_id": probe::RAW, "timeout_ms": TIMEOUT_MS,
                "input": {"node": "raw", "sleep_ms": 200, "jitter_ms": 300,
                          "slow": raw_slowness()}}}),
        ],
    )
}

/// Sends `SIGSTOP` / `SIGCONT` (`name`) to the process `pid`.
fn signal(pid: &str, name: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), pid])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid}");
}

/// Terminates the engine connections of the worker processes on `schema` and notes when in
/// `terminations`; returns how many.
async fn terminate_worker_connections(pool: &PgPool, schema: &str) -> i64 {
    let n = sqlx::query_scalar(
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
         WHERE application_name = $1 AND pid <> pg_backend_pid()",
    )
    .bind(probe::worker_app_name(schema))
    .fetch_one(pool)
    .await
    .unwrap();
    sqlx::query("INSERT INTO terminations (at) VALUES (clock_timestamp())")
        .execute(pool)
        .await
        .unwrap();
    n
}

/// Waits until `n` runs ended; fails fast on a run that was cancelled or failed with any
/// error but `effect_outcome_unknown`.
async fn wait_ended(pool: &PgPool, n: i64, limit: Duration) {
    let t = Instant::now();
    loop {
        let wrong: Vec<(Uuid, Option<serde_json::Value>)> = sqlx::query_as(
            "SELECT id, error FROM runs WHERE status = 'cancelled' OR (status = 'failed'
               AND error->>'kind' IS DISTINCT FROM 'effect_outcome_unknown') LIMIT 5",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        assert!(wrong.is_empty(), "runs ended otherwise: {wrong:?}");
        let ended = count(
            pool,
            "SELECT count(*) FROM runs WHERE status IN ('completed', 'failed')",
        )
        .await;
        if ended >= n {
            return;
        }
        assert!(
            t.elapsed() < limit,
            "only {ended} of {n} runs ended after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What the fault test checks once every run ended; returns (completed, failed).
async fn assert_no_effect_silently_twice(pool: &PgPool, runs: i64) -> (i64, i64) {
    assert_eq!(count(pool, "SELECT count(*) FROM runs").await, runs);
    let completed = count(pool, "SELECT count(*) FROM runs WHERE status = 'completed'").await;
    let failed = count(
        pool,
        "SELECT count(*) FROM runs WHERE status = 'failed'
           AND error->>'kind' = 'effect_outcome_unknown'",
    )
    .await;
    assert_eq!(
        completed + failed,
        runs,
        "every run completed or reported unknown"
    );
    // Only the raw effect can be unknown: its step is the one that failed.
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM runs r WHERE status = 'failed' AND NOT EXISTS (
                 SELECT 1 FROM steps s WHERE s.run_id = r.id AND s.node_id = 'raw'
                   AND s.status = 'failed' AND s.error->>'kind' = 'effect_outcome_unknown')"
        )
        .await,
        0
    );
    // The key-honouring effect happened exactly once per run (every run passed it), and
    // every execution of it carried the same key.
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM runs r WHERE (SELECT count(*) FROM side_effects e
                                               WHERE e.run_id = r.id AND e.node = 'effect') <> 1"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM (SELECT run_id FROM tool_calls WHERE node = 'effect'
                                   GROUP BY run_id HAVING count(DISTINCT idem_key) > 1) t"
        )
        .await,
        0
    );
    // The raw effect never happened twice, and exactly once in every completed run.
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM (SELECT run_id FROM raw_effects
                                   GROUP BY run_id HAVING count(*) > 1) t"
        )
        .await,
        0,
        "a raw effect was executed twice"
    );
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM runs r WHERE status = 'completed'
               AND (SELECT count(*) FROM raw_effects x WHERE x.run_id = r.id) <> 1"
        )
        .await,
        0
    );
    assert_gap_free_trace(pool, completed, failed).await;
    (completed, failed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_connections_and_slow_answers_repeat_no_effect_silently() {
    const RUNS: usize = 600;
    let schema = support::unique_schema();
    let _g = support::SchemaGuard(schema.clone());
    let pg = support::fresh_backend_in(&schema).await;
    let pool = pg.pool().clone();
    probe::create_probe_tables(&pool).await;
    sqlx::query("CREATE TABLE terminations (at TIMESTAMPTZ NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    let engine = probe::probe_engine(&pg).await;
    engine
        .register_workflow(&fault_workflow("faults"))
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
    let ids = start_runs(&engine, "faults", RUNS).await;
    // Every ~1.5 s, terminate every engine connection of the worker processes.
    let stop = tokio_util::sync::CancellationToken::new();
    let terminator = {
        let (pool, schema, stop) = (pool.clone(), schema.clone(), stop.clone());
        tokio::spawn(async move {
            let (mut rounds, mut terminated) = (0, 0);
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(1500)) => {}
                    _ = stop.cancelled() => return (rounds, terminated),
                }
                rounds += 1;
                terminated += terminate_worker_connections(&pool, &schema).await;
            }
        })
    };
    let mut kills = 0;
    for share in [0.2, 0.5] {
        wait_ended(
            &pool,
            (RUNS as f64 * share) as i64,
            Duration::from_secs(120),
        )
        .await;
        if share == 0.5 {
            // Freeze the newest worker past its lease: its runs are taken over while it still
            // holds them, and it goes on with them when it wakes up.
            let frozen = workers.0.last().unwrap().id().to_string();
            signal(&frozen, "STOP");
            tokio::time::sleep(lease + Duration::from_secs(2)).await;
            signal(&frozen, "CONT");
        }
        // SIGKILL the oldest worker mid-run and start a replacement.
        let mut victim = workers.0.remove(0);
        victim.kill().unwrap();
        victim.wait().unwrap();
        kills += 1;
        workers
            .0
            .push(probe::spawn_worker_process(&url, &schema, lease, 10));
    }
    wait_ended(&pool, RUNS as i64, Duration::from_secs(180)).await;
    stop.cancel();
    let (rounds, terminated) = terminator.await.unwrap();
    let (completed, unknown) = assert_no_effect_silently_twice(&pool, RUNS as i64).await;
    // The runs whose raw call always answers past its timeout reported it unknown.
    let slow: Vec<Uuid> = ids
        .iter()
        .copied()
        .filter(|id| probe::is_slow(&raw_slowness(), *id))
        .collect();
    for id in &slow {
        let run = engine.get_run(*id).await.unwrap();
        assert_eq!(run.status, RunStatus::Failed, "slow run {id}");
    }
    assert!(terminated > 0, "no connection was terminated");
    // Calls whose worker lost its connections between sending them and recording the result.
    let cut_off = count(
        &pool,
        "SELECT count(*) FROM tool_calls c JOIN effects f
           ON c.idem_key = f.run_id::text || '/' || f.step_index || '/' || f.seq
         WHERE EXISTS (SELECT 1 FROM terminations t WHERE t.at BETWEEN c.at AND f.recorded_at)",
    )
    .await;
    let calls = |node: &'static str| {
        let pool = pool.clone();
        async move {
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM tool_calls WHERE node = $1")
                .bind(node)
                .fetch_one(&pool)
                .await
                .unwrap();
            n
        }
    };
    println!(
        "{RUNS} runs: {completed} completed, {unknown} reported effect_outcome_unknown \
         ({} of them answered slowly every time); {kills} workers killed, 1 frozen past its \
         lease, {terminated} \
         connections terminated in {rounds} rounds ({cut_off} calls in flight then), {} jobs \
         retried; tool calls: {} probe.call ({} side effects), {} probe.raw ({} raw effects)",
        slow.len(),
        count(&pool, "SELECT count(*) FROM jobs WHERE attempts > 1").await,
        calls("effect").await,
        count(&pool, "SELECT count(*) FROM side_effects").await,
        calls("raw").await,
        count(&pool, "SELECT count(*) FROM raw_effects").await,
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
