//! The engine under faults, on PostgreSQL and in memory alike.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use logline_core::engine::{Engine, EngineBuilder, StartRun, WorkerOptions};
use logline_core::run::{Run, RunStatus, Subject};
use logline_core::testing::FakeToolHub;
use logline_core::tool::ToolSpec;
use logline_core::workflow::{Workflow, WorkflowDefinition};
use serde_json::{json, Value};

fn nul_hub() -> Arc<FakeToolHub> {
    Arc::new(FakeToolHub::new("fake").tool(
        ToolSpec::new("text.read", "Reads text.", json!({"type": "object"})),
        |_| Ok(json!({"text": "a\u{0}b", "k\u{0}": ["\u{0}"]})),
    ))
}

fn nul_workflow() -> Workflow {
    let def = WorkflowDefinition::from_json(json!({
        "entry": "read",
        "nodes": [
            { "id": "read", "type": "tool_node", "config": { "tool_id": "text.read" } },
            { "id": "keep", "type": "static" }
        ],
        "edges": [ { "from": "read", "to": "keep" } ]
    }))
    .unwrap();
    Workflow::new("nul", "nul", def)
}

/// Runs the NUL workflow on an engine built from `builder`; returns the run, its step
/// outputs, its event kinds and how many tool executions happened.
async fn run_nul(builder: EngineBuilder) -> (Run, Vec<Option<Value>>, Vec<String>, usize) {
    let hub = nul_hub();
    let engine: Engine = builder.tool_hub(hub.clone()).build().await.unwrap();
    engine.register_tools(&hub.specs()).await.unwrap();
    engine.register_workflow(&nul_workflow()).await.unwrap();
    let pool = engine.spawn_workers(WorkerOptions {
        poll: Duration::from_millis(50),
        ..WorkerOptions::default()
    });
    let req = StartRun::new("nul", json!({}), Subject::tenant("acme"));
    let run = tokio::time::timeout(Duration::from_secs(30), engine.run_to_completion(req))
        .await
        .expect("run settles")
        .expect("run");
    pool.shutdown().await;
    let steps = engine.steps(run.id).await.unwrap();
    let events = engine.events(run.id).await.unwrap();
    assert!(
        events
            .iter()
            .all(|e| !logline_core::nul::has_nul(&e.payload)),
        "{events:?}"
    );
    let kinds = events.iter().map(|e| e.kind.as_str().to_string()).collect();
    let outputs = steps.into_iter().map(|s| s.output).collect();
    (run, outputs, kinds, hub.executions_of("text.read"))
}

/// A tool returning `\u0000` completes the run once on PostgreSQL (jsonb rejects NUL), with
/// the same result, steps and trace as in memory: NUL is stored as U+FFFD on both.
#[tokio::test]
async fn nul_in_tool_output_completes_alike_on_both_backends() {
    let (backend, _guard) = support::guarded_backend().await;
    let on_pg = run_nul(backend.engine_builder()).await;
    let in_memory = run_nul(Engine::builder()).await;
    let clean = json!({"text": "a\u{FFFD}b", "k\u{FFFD}": ["\u{FFFD}"]});
    for (run, outputs, _, executions) in [&on_pg, &in_memory] {
        assert_eq!(run.status, RunStatus::Completed, "{:?}", run.error);
        assert_eq!(run.result, Some(clean.clone()));
        assert_eq!(outputs, &vec![Some(clean.clone()), Some(clean.clone())]);
        assert_eq!(*executions, 1, "the tool ran once");
    }
    assert_eq!(on_pg.2, in_memory.2, "same trace");
}
