//! Engine overhead on the in-memory backends: a 10-node linear static workflow and the
//! golden run. `cargo bench --bench engine`; per-node figures = time / 10.

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
        b.to_async(&rt).iter_custom(|iters| async move {
            let engine = engine().await;
            let start = Instant::now();
            for _ in 0..iters {
                let run = engine
                    .start_run(StartRun::new("linear10", json!({"x": 1}), subject()))
                    .await
                    .expect("start");
                engine.execute(run.id).await.expect("execute");
            }
            start.elapsed()
        })
    });

    // One node: the fixed per-run cost; (linear10 - linear1) / 9 is the cost of one more step.
    g.throughput(Throughput::Elements(1));
    g.bench_function("linear1_inline", |b| {
        b.to_async(&rt).iter_custom(|iters| async move {
            let engine = engine().await;
            let start = Instant::now();
            for _ in 0..iters {
                let run = engine
                    .start_run(StartRun::new("linear1", json!({"x": 1}), subject()))
                    .await
                    .expect("start");
                engine.execute(run.id).await.expect("execute");
            }
            start.elapsed()
        })
    });
    g.throughput(Throughput::Elements(NODES as u64));

    // The full path: start_run → queue → worker → checkpoints → wait.
    g.bench_function("linear10_worker", |b| {
        b.to_async(&rt).iter_custom(|iters| async move {
            let engine = engine().await;
            let pool = engine.spawn_workers(WorkerOptions::default());
            let start = Instant::now();
            for _ in 0..iters {
                engine
                    .run_to_completion(StartRun::new("linear10", json!({"x": 1}), subject()))
                    .await
                    .expect("run");
            }
            let t = start.elapsed();
            pool.shutdown().await;
            t
        })
    });

    g.throughput(Throughput::Elements(3));
    g.bench_function("golden_run_inline", |b| {
        b.to_async(&rt).iter_custom(|iters| async move {
            let engine = engine().await;
            let start = Instant::now();
            for _ in 0..iters {
                let run = engine
                    .start_run(StartRun::new(
                        golden::WORKFLOW_ID,
                        json!({"hotel_id": "VV-LISBON"}),
                        subject(),
                    ))
                    .await
                    .expect("start");
                engine.execute(run.id).await.expect("execute");
            }
            start.elapsed()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
