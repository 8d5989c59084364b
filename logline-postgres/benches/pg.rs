//! Throughput and latency of logline-postgres on a real server (prints figures; no asserts).
//!
//! ```sh
//! pg_ctlcluster --skip-systemctl-redirect 15 main start || true
//! cargo bench -p logline-postgres --bench pg
//! ```
//!
//! `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`) picks the server;
//! everything runs in the schema `llbench`, dropped and recreated first. `LOGLINE_BENCH_SECS`
//! sets the length of each timed phase (default 5), `LOGLINE_BENCH_ONLY` a comma-separated
//! list of phases (`store,engine,claim,enqueue,latency`), `LOGLINE_BENCH_NOTIFY=0` turns
//! notifications off, `LOGLINE_PG_GROUP_COMMIT=on` group commit.
//!
//! First it measures the machine's own limit on the same server (`pgbench -N` at 1, 8 and 16
//! clients, in the database `llbench_pgbench`); each durable figure is printed beside it as a
//! share (throughput) or a multiple (latency). `LOGLINE_BENCH_PGBENCH=0` skips that.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use logline_core::engine::{Engine, StartRun, WorkerOptions};
use logline_core::event::{EventKind, NewEvent};
use logline_core::queue::{NewJob, Queue};
use logline_core::run::{
    step_id, Budget, Cursor, Run, RunMode, RunStatus, RunUsage, Step, StepStatus, Subject,
};
use logline_core::store::{Checkpoint, RunStore};
use logline_core::workflow::{NodeType, Workflow, WorkflowDefinition};
use logline_postgres::{PgBackend, PgConfig, PgQueue, PgStore};
use serde_json::json;
use sqlx::{Connection, Executor, PgConnection};
use uuid::Uuid;

mod limit;

use limit::{Limit, Work};

const SCHEMA: &str = "llbench";

fn url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn phase() -> Duration {
    let secs = std::env::var("LOGLINE_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5u64);
    Duration::from_secs(secs)
}

fn config() -> PgConfig {
    let notify = std::env::var("LOGLINE_BENCH_NOTIFY").map_or(true, |v| v != "0");
    let config = PgConfig::new(url())
        .schema(SCHEMA)
        .max_connections(40)
        .notify(notify);
    match logline_postgres::group_commit_from_env().unwrap() {
        Some(false) => config.group_commit(None),
        _ => config,
    }
}

fn only(phase: &str) -> bool {
    std::env::var("LOGLINE_BENCH_ONLY").map_or(true, |v| v.split(',').any(|p| p == phase))
}

fn pct(samples: &mut [f64], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[i.min(samples.len() - 1)]
}

fn new_run() -> Run {
    let now = Utc::now();
    Run {
        id: Uuid::now_v7(),
        workflow_id: "bench3".into(),
        workflow_version: "1.0.0".into(),
        status: RunStatus::Running,
        mode: RunMode::Auto,
        input: json!({"ticket": "T-1", "hotel_id": "VV-LISBON"}),
        result: None,
        error: None,
        subject: Subject::tenant("bench"),
        app_action_id: None,
        budget: Budget::default(),
        usage: RunUsage::default(),
        cursor: Cursor {
            next_node: Some("a".into()),
            ..Default::default()
        },
        pending_gate: None,
        approvals: Vec::new(),
        version: 0,
        created_at: now,
        updated_at: now,
        started_at: Some(now),
    }
}

/// One run of a 3-step workflow written the way the engine writes it: the run with its
/// first events, then per step one checkpoint (run + step row + started/completed events).
/// Returns the time spent in the three step checkpoints.
async fn three_step_run(store: &PgStore) -> Duration {
    let mut run = new_run();
    let c = store
        .create_run(
            &run,
            &[
                NewEvent::run(EventKind::RunStarted, json!({"workflow_id": "bench3"})),
                NewEvent::run(EventKind::PolicyEval, json!({"decision": "allow"})),
            ],
        )
        .await
        .unwrap();
    run.version = c.version;
    let t = Instant::now();
    for (i, node) in ["a", "b", "c"].iter().enumerate() {
        let sid = step_id(run.id, i as u32);
        let step = Step {
            id: sid,
            run_id: run.id,
            index: i as u32,
            node_id: (*node).into(),
            node_type: NodeType::Static,
            status: StepStatus::Completed,
            input: json!({"i": i}),
            output: Some(json!({"i": i, "ok": true})),
            error: None,
            started_at: Utc::now(),
            finished_at: Some(Utc::now()),
        };
        let mut events = vec![
            NewEvent::step(sid, EventKind::StepStarted, json!({"node_id": node})),
            NewEvent::step(
                sid,
                EventKind::StepCompleted,
                json!({"node_id": node, "output": {"i": i}}),
            ),
        ];
        run.cursor.step_index = i as u32 + 1;
        run.cursor.next_node = ["b", "c"].get(i).map(|s| s.to_string());
        if i == 2 {
            run.status = RunStatus::Completed;
            run.result = Some(json!({"ok": true}));
            events.push(NewEvent::run(EventKind::RunCompleted, json!({})));
        }
        let c = store
            .commit(Checkpoint {
                run: &run,
                step: Some(step),
                events,
            })
            .await
            .unwrap();
        run.version = c.version;
    }
    t.elapsed()
}

async fn checkpoints_sequential(store: &PgStore, limit: &Limit) {
    let until = Instant::now() + phase();
    let (mut steps, mut commit_time) = (0u64, Duration::ZERO);
    let t = Instant::now();
    while Instant::now() < until {
        commit_time += three_step_run(store).await;
        steps += 3;
    }
    let wall = t.elapsed().as_secs_f64();
    println!(
        "store checkpoints, 1 run at a time:      {:>8.0} steps/s  ({:.3} ms per step checkpoint; {:.3} ms per step incl. run creation){}",
        steps as f64 / wall,
        commit_time.as_secs_f64() * 1e3 / steps as f64,
        wall * 1e3 / steps as f64,
        limit.latency_ratio(commit_time.as_secs_f64() * 1e3 / steps as f64)
    );
}

async fn checkpoints_concurrent(store: &PgStore, runs: usize, limit: &Limit) {
    let steps = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + phase();
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..runs {
        let (store, steps) = (store.clone(), steps.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < until {
                three_step_run(&store).await;
                steps.fetch_add(3, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let n = steps.load(Ordering::Relaxed) as f64;
    println!(
        "store checkpoints, {runs:>2} concurrent runs:  {:>8.0} steps/s{}",
        n / t.elapsed().as_secs_f64(),
        limit.share(n / t.elapsed().as_secs_f64(), runs)
    );
}

/// Follows the run's events to its terminal event (the engine's streaming path), then reads it.
async fn finish(engine: &Engine, id: Uuid) -> Run {
    use futures::StreamExt;
    let mut events = engine.subscribe(id, 0);
    while let Some(e) = events.next().await {
        e.unwrap();
    }
    engine.get_run(id).await.unwrap()
}

fn start_req() -> StartRun {
    StartRun::new("bench3", json!({"ticket": "T-1"}), Subject::tenant("bench")).mode(RunMode::Auto)
}

fn bench_workflow() -> Workflow {
    let def = WorkflowDefinition::from_json(json!({
        "entry": "a",
        "nodes": [
            {"id": "a", "type": "static", "config": {"output": {"a": "$input.ticket"}}},
            {"id": "b", "type": "static", "config": {"output": {"b": "$prev.a"}}},
            {"id": "c", "type": "static", "config": {"output": {"c": "$prev.b"}}}
        ],
        "edges": [{"from": "a", "to": "b"}, {"from": "b", "to": "c"}]
    }))
    .unwrap();
    Workflow::new("bench3", "3 static steps", def)
}

/// Durable steps through the engine without the queue hop or a subscriber: each task starts a
/// run and executes it in place (`Engine::execute`); every step is one checkpoint
/// transaction, the start is one transaction (run + its job).
async fn engine_inline(pg: &PgBackend, concurrency: usize, limit: &Limit) {
    let engine = pg.engine_builder().build().await.unwrap();
    engine.register_workflow(&bench_workflow()).await.unwrap();
    let r = engine.start_run(start_req()).await.unwrap();
    engine.execute(r.id).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let before = Work::read(&url()).await;
    let until = Instant::now() + phase();
    let t = Instant::now();
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (engine, done) = (engine.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < until {
                let r = engine.start_run(start_req()).await.unwrap();
                let r = engine.execute(r.id).await.unwrap();
                assert_eq!(r.status, RunStatus::Completed);
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let runs = done.load(Ordering::Relaxed) as f64;
    let wall = t.elapsed().as_secs_f64();
    let work = spent(before, runs).await;
    println!(
        "engine inline,     {concurrency:>2} concurrent runs:  {:>8.0} steps/s  {:>7.0} runs/s  {:.3} ms per step{}{}",
        runs * 3.0 / wall,
        runs / wall,
        wall * 1e3 / (runs * 3.0) * concurrency as f64,
        beside(limit, runs * 3.0 / wall, concurrency, wall * 1e3 / (runs * 3.0)),
        work
    );
    // The runs' jobs were never claimed (the runs executed in place): drop them.
    sqlx::query("TRUNCATE jobs")
        .execute(pg.pool())
        .await
        .unwrap();
}

async fn engine_runs(pg: &PgBackend, concurrency: usize, limit: &Limit) {
    let engine = pg.engine_builder().build().await.unwrap();
    engine.register_workflow(&bench_workflow()).await.unwrap();
    let opts = WorkerOptions {
        batch: concurrency.min(16),
        ..WorkerOptions::default()
    }
    .concurrency(concurrency);
    let pool = engine.spawn_workers(opts);
    // Warm up.
    let r = engine.start_run(start_req()).await.unwrap();
    finish(&engine, r.id).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let before = Work::read(&url()).await;
    let until = Instant::now() + phase();
    let t = Instant::now();
    let done = Arc::new(AtomicU64::new(0));
    let mut latencies = Vec::new();
    if concurrency == 1 {
        while Instant::now() < until {
            let t0 = Instant::now();
            let r = engine.start_run(start_req()).await.unwrap();
            let r = finish(&engine, r.id).await;
            assert_eq!(r.status, RunStatus::Completed);
            latencies.push(t0.elapsed().as_secs_f64() * 1e3);
            done.fetch_add(1, Ordering::Relaxed);
        }
    } else {
        let mut tasks = Vec::new();
        for _ in 0..concurrency {
            let (engine, done) = (engine.clone(), done.clone());
            tasks.push(tokio::spawn(async move {
                while Instant::now() < until {
                    let r = engine.start_run(start_req()).await.unwrap();
                    let r = finish(&engine, r.id).await;
                    assert_eq!(r.status, RunStatus::Completed);
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    }
    let runs = done.load(Ordering::Relaxed) as f64;
    let wall = t.elapsed().as_secs_f64();
    let work = spent(before, runs).await;
    let extra = if latencies.is_empty() {
        String::new()
    } else {
        format!(
            "  (start→completed p50 {:.2} ms per 3-step run)",
            pct(&mut latencies, 0.5)
        )
    };
    println!(
        "engine end to end, {concurrency:>2} concurrent runs:  {:>8.0} steps/s  {:>7.0} runs/s  {:.3} ms per step{extra}{}{}",
        runs * 3.0 / wall,
        runs / wall,
        wall * 1e3 / (runs * 3.0) * concurrency as f64,
        beside(limit, runs * 3.0 / wall, concurrency, wall * 1e3 / (runs * 3.0)),
        work
    );
    pool.shutdown().await;
}

/// Transactions and WAL flushes per run since `before` (counts, independent of load).
async fn spent(before: Option<Work>, runs: f64) -> String {
    tokio::time::sleep(Duration::from_millis(1100)).await;
    match (before, Work::read(&url()).await) {
        (Some(b), Some(a)) if runs > 0.0 => b.per_run(&a, runs),
        _ => String::new(),
    }
}

/// A throughput figure beside pgbench at the same concurrency; one run at a time, its
/// per-step time beside pgbench's one-client latency.
fn beside(limit: &Limit, per_s: f64, concurrency: usize, ms_per_step: f64) -> String {
    if concurrency == 1 {
        limit.latency_ratio(ms_per_step)
    } else {
        limit.share(per_s, concurrency)
    }
}

async fn batched_enqueue(queue: &PgQueue, producers: usize) {
    let batch = 1000;
    let total = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + phase();
    let t = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..producers {
        let (queue, total) = (queue.clone(), total.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < until {
                let jobs: Vec<NewJob> = (0..batch)
                    .map(|i| NewJob::new("bench.enqueue", json!({"p": p, "n": n + i})))
                    .collect();
                queue.enqueue_batch(jobs).await.unwrap();
                n += batch;
                total.fetch_add(batch, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    println!(
        "batched enqueue (1000/batch, {producers} producers): {:>8.0} jobs/s",
        total.load(Ordering::Relaxed) as f64 / t.elapsed().as_secs_f64()
    );
    clear_jobs(queue).await;
}

/// Empties the queue table so later phases do not run next to a vacuum of millions of rows.
async fn clear_jobs(queue: &PgQueue) {
    sqlx::query("TRUNCATE jobs")
        .execute(queue.pool())
        .await
        .unwrap();
}

async fn claim_complete(queue: &PgQueue, consumers: usize, batch: usize) {
    let q = "bench.claim";
    let prefill = 60_000usize;
    for chunk in 0..(prefill / 5000) {
        let jobs = (0..5000)
            .map(|i| NewJob::new(q, json!({"n": chunk * 5000 + i})))
            .collect();
        queue.enqueue_batch(jobs).await.unwrap();
    }
    let done = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + phase();
    let t = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..consumers {
        let (queue, done) = (queue.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < until {
                let jobs = queue
                    .claim(q, &format!("w{w}"), batch, Duration::from_secs(30))
                    .await
                    .unwrap();
                if jobs.is_empty() {
                    break;
                }
                queue.complete_batch(&jobs).await.unwrap();
                done.fetch_add(jobs.len() as u64, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    println!(
        "claim+complete ({consumers} workers, batches of {batch}):  {:>8.0} jobs/s",
        done.load(Ordering::Relaxed) as f64 / t.elapsed().as_secs_f64()
    );
    clear_jobs(queue).await;
}

/// Enqueue→claim latency seen by a worker on its own pool and listener (as in another
/// process), one job every 10 ms.
async fn start_latency(producer: &PgQueue, label: &str, samples: usize) {
    let q = "bench.probe";
    let consumer = PgQueue::connect(&config().max_connections(4))
        .await
        .unwrap();
    let base = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let worker = {
        let (consumer, stop) = (consumer.clone(), stop.clone());
        tokio::spawn(async move {
            let mut lat = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let jobs = consumer
                    .claim(q, "probe", 16, Duration::from_secs(30))
                    .await
                    .unwrap();
                if jobs.is_empty() {
                    consumer
                        .wait_for_work(q, Duration::from_secs(1))
                        .await
                        .unwrap();
                    continue;
                }
                let now = base.elapsed().as_secs_f64() * 1e3;
                for j in &jobs {
                    lat.push(now - j.payload["t_ms"].as_f64().unwrap());
                }
                consumer.complete_batch(&jobs).await.unwrap();
            }
            lat
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..samples {
        let t_ms = base.elapsed().as_secs_f64() * 1e3;
        producer
            .enqueue(NewJob::new(q, json!({ "t_ms": t_ms })))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut lat = worker.await.unwrap();
    println!(
        "enqueue→start latency, {label}: p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms  ({} jobs)",
        pct(&mut lat, 0.5),
        pct(&mut lat, 0.99),
        pct(&mut lat, 1.0),
        lat.len()
    );
}

/// Background load for the latency probe: 8 runs checkpointing, and a queue churning
/// through batched enqueues and claim+complete.
fn spawn_load(pg: &PgBackend, stop: Arc<AtomicBool>) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (store, stop) = (pg.store(), stop.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                three_step_run(&store).await;
            }
        }));
    }
    let queue = pg.queue();
    {
        let (queue, stop) = (queue.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let jobs = (0..200)
                    .map(|i| NewJob::new("bench.load", json!({"i": i})))
                    .collect();
                queue.enqueue_batch(jobs).await.unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    for w in 0..2 {
        let (queue, stop) = (queue.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let jobs = queue
                    .claim(
                        "bench.load",
                        &format!("load{w}"),
                        50,
                        Duration::from_secs(30),
                    )
                    .await
                    .unwrap();
                if jobs.is_empty() {
                    queue
                        .wait_for_work("bench.load", Duration::from_millis(100))
                        .await
                        .unwrap();
                } else {
                    queue.complete_batch(&jobs).await.unwrap();
                }
            }
        }));
    }
    tasks
}

async fn server_settings() -> String {
    let mut c = PgConnection::connect(&url()).await.unwrap();
    let mut out = Vec::new();
    for s in [
        "server_version",
        "fsync",
        "synchronous_commit",
        "shared_buffers",
    ] {
        let v: String = sqlx::query_scalar(&format!("SHOW {s}"))
            .fetch_one(&mut c)
            .await
            .unwrap();
        out.push(format!("{s}={v}"));
    }
    out.join(" ")
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        {
            let mut c = PgConnection::connect(&url()).await.unwrap();
            c.execute(format!("DROP SCHEMA IF EXISTS {SCHEMA} CASCADE").as_str())
                .await
                .unwrap();
        }
        let pg = PgBackend::connect(&config()).await.unwrap();
        pg.migrate().await.unwrap();
        let (store, queue) = (pg.store(), pg.queue());
        println!(
            "logline-postgres bench: {} cores, {}, {} s per phase, group commit {:?}",
            std::thread::available_parallelism().map_or(1, |n| n.get()),
            server_settings().await,
            phase().as_secs(),
            config().group_commit_of()
        );
        let limit = if std::env::var("LOGLINE_BENCH_PGBENCH").is_ok_and(|v| v == "0") {
            Limit::default()
        } else {
            Limit::measure(&url(), &[8, 16], phase()).await
        };
        println!("{}", limit.describe());
        if only("store") {
            checkpoints_sequential(&store, &limit).await;
            for n in [8, 16] {
                checkpoints_concurrent(&store, n, &limit).await;
            }
        }
        if only("engine") {
            for n in [1, 8, 16] {
                engine_inline(&pg, n, &limit).await;
            }
            for n in [1, 8, 16] {
                engine_runs(&pg, n, &limit).await;
            }
        }
        if let Some(stats) = store.group_commit_stats() {
            println!("group commit: {stats:?}");
        }
        if only("claim") {
            for (consumers, batch) in [(1, 100), (1, 500), (4, 100)] {
                claim_complete(&queue, consumers, batch).await;
            }
        }
        if only("enqueue") {
            for producers in [1, 4] {
                batched_enqueue(&queue, producers).await;
            }
        }
        if !only("latency") {
            return;
        }
        start_latency(&queue, "idle", 300).await;
        let stop = Arc::new(AtomicBool::new(false));
        let load = spawn_load(&pg, stop.clone());
        tokio::time::sleep(Duration::from_millis(500)).await;
        start_latency(
            &queue,
            "under load (8 runs checkpointing + queue churn)",
            300,
        )
        .await;
        stop.store(true, Ordering::Relaxed);
        for t in load {
            t.await.unwrap();
        }
    });
}
