//! Engine overhead on the in-memory backends: a 10-node linear static workflow and the
//! golden run, inline and through the queue and a worker; then the memory a finished run
//! keeps in the memory store. `cargo bench --bench engine`; per-node figures = time / 10.
//! With `--features count-allocations` it also prints the allocations per run, a figure that
//! does not move with the machine's load.

#![allow(clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use logline_core::engine::{Engine, StartRun, WorkerOptions};
use logline_core::run::Subject;
use logline_core::testing::golden;
use logline_core::workflow::Workflow;
use serde_json::json;

const NODES: usize = 10;

fn linear() -> Workflow {
    chain("linear10", NODES)
}

fn chain(id: &str, n: usize) -> Workflow {
    let nodes: Vec<_> = (0..n)
        .map(|i| json!({"id": format!("n{i}"), "type": "static"}))
        .collect();
    let edges: Vec<_> = (1..n)
        .map(|i| json!({"from": format!("n{}", i - 1), "to": format!("n{i}")}))
        .collect();
    let def = serde_json::from_value(json!({"entry": "n0", "nodes": nodes, "edges": edges}))
        .expect("definition");
    Workflow::new(id, "linear", def)
}

async fn engine() -> Engine {
    let engine = golden::with_tool(Engine::builder().default_llm(Arc::new(golden::scripted_llm())))
        .build()
        .await
        .expect("engine");
    engine.register_workflow(&linear()).await.expect("workflow");
    engine
        .register_workflow(&chain("linear1", 1))
        .await
        .expect("workflow");
    golden::install(&engine, "gpt-4o-mini")
        .await
        .expect("golden");
    engine
}

fn subject() -> Subject {
    Subject::tenant("bench").with_user("u")
}

/// `start_run` + `Engine::execute` of `runs` runs of `workflow` on a fresh engine: the time.
async fn inline(workflow: &'static str, input: serde_json::Value, runs: u64) -> Duration {
    execute_runs(&engine().await, workflow, &input, runs).await
}

/// `start_run` + `Engine::execute` of `runs` runs of `workflow` on `engine`: the time.
async fn execute_runs(
    engine: &Engine,
    workflow: &str,
    input: &serde_json::Value,
    runs: u64,
) -> Duration {
    let start = Instant::now();
    for _ in 0..runs {
        let run = engine
            .start_run(StartRun::new(workflow, input.clone(), subject()))
            .await
            .expect("start");
        engine.execute(run.id).await.expect("execute");
    }
    start.elapsed()
}

/// `run_to_completion` of `runs` 10-node runs through the queue and a worker pool on a fresh
/// engine: the time.
async fn through_workers(runs: u64) -> Duration {
    let engine = engine().await;
    let pool = engine.spawn_workers(WorkerOptions::default());
    let start = Instant::now();
    for _ in 0..runs {
        engine
            .run_to_completion(StartRun::new("linear10", json!({"x": 1}), subject()))
            .await
            .expect("run");
    }
    let t = start.elapsed();
    pool.shutdown().await;
    t
}

/// Runs `work` as a task on the runtime, as a host's request handler calls the engine (a
/// `block_on` caller outside the runtime adds two thread wake-ups per queued run).
async fn on_runtime<F>(work: F) -> Duration
where
    F: std::future::Future<Output = Duration> + Send + 'static,
{
    tokio::spawn(work).await.expect("bench task")
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(NODES as u64));
    g.measurement_time(Duration::from_secs(5));

    // start_run + inline execution: engine overhead per node step (no queue hop).
    g.bench_function("linear10_inline", |b| {
        b.to_async(&rt)
            .iter_custom(|n| on_runtime(inline("linear10", json!({"x": 1}), n)))
    });

    // One node: the fixed per-run cost; (linear10 - linear1) / 9 is the cost of one more step.
    g.throughput(Throughput::Elements(1));
    g.bench_function("linear1_inline", |b| {
        b.to_async(&rt)
            .iter_custom(|n| on_runtime(inline("linear1", json!({"x": 1}), n)))
    });
    g.throughput(Throughput::Elements(NODES as u64));

    // The full path: start_run → queue → worker → checkpoints → wait.
    g.bench_function("linear10_worker", |b| {
        b.to_async(&rt)
            .iter_custom(|n| on_runtime(through_workers(n)))
    });

    // The same from a thread outside the runtime (`block_on`): each run adds two thread
    // wake-ups (the worker's, then the caller's).
    g.bench_function("linear10_worker_block_on", |b| {
        b.to_async(&rt).iter_custom(through_workers)
    });

    g.throughput(Throughput::Elements(3));
    g.bench_function("golden_run_inline", |b| {
        let input = json!({"hotel_id": "VV-LISBON"});
        b.to_async(&rt)
            .iter_custom(|n| on_runtime(inline(golden::WORKFLOW_ID, input.clone(), n)))
    });
    g.finish();
}

/// What the memory store keeps per finished 10-node run (resident memory growth over
/// `MEMORY_RUNS` runs; Linux, elsewhere it says so) and the time per run while it grows,
/// printed.
fn memory(_: &mut Criterion) {
    const MEMORY_RUNS: u64 = 20_000;
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let engine = engine().await;
        let Some(before) = resident_bytes() else {
            println!("engine/memory_per_run: no /proc/self/status here");
            return;
        };
        let took = execute_runs(&engine, "linear10", &json!({"x": 1}), MEMORY_RUNS).await;
        let micros = took.as_secs_f64() * 1e6 / MEMORY_RUNS as f64;
        let after = resident_bytes().unwrap_or(before);
        let per_run = after.saturating_sub(before) / MEMORY_RUNS;
        println!(
            "engine/memory_per_run: {per_run} bytes per 10-node run kept in the memory store, \
             {micros:.1} µs per run while it grows ({MEMORY_RUNS} runs from one thread)"
        );
    });
}

/// Resident set size, from `/proc/self/status`.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Allocations (count and bytes) per run of `workflow` started and executed inline, on one
/// thread, after a first run has warmed the engine's caches; printed.
#[cfg(feature = "count-allocations")]
fn allocations(_: &mut Criterion) {
    const RUNS: u64 = 1_000;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let engine = rt.block_on(engine());
    let cases = [
        ("linear1", json!({"x": 1})),
        ("linear10", json!({"x": 1})),
        (golden::WORKFLOW_ID, json!({"hotel_id": "VV-LISBON"})),
    ];
    for (workflow, input) in cases {
        rt.block_on(execute_runs(&engine, workflow, &input, 1));
        let info = allocation_counter::measure(|| {
            rt.block_on(execute_runs(&engine, workflow, &input, RUNS));
        });
        println!(
            "engine/allocations/{workflow}: {} allocations, {} bytes allocated per run \
             ({RUNS} runs inline, one thread)",
            info.count_total / RUNS,
            info.bytes_total / RUNS
        );
    }
}

#[cfg(not(feature = "count-allocations"))]
fn allocations(_: &mut Criterion) {
    println!("engine/allocations: run with --features count-allocations to count them");
}

criterion_group!(benches, bench, memory, allocations);
criterion_main!(benches);
