//! Helpers shared by the engine tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use logline_core::engine::{Engine, EngineBuilder, StartRun, WorkerOptions, WorkerPool};
use logline_core::event::Event;
use logline_core::llm::LlmProvider;
use logline_core::run::{Run, Subject};
use logline_core::testing::FakeToolHub;
use logline_core::tool::ToolSpec;
use logline_core::workflow::{Workflow, WorkflowDefinition};
use serde_json::{json, Value};

pub fn subject() -> Subject {
    Subject::tenant("acme").with_user("dan").with_role("user")
}

pub fn def(v: Value) -> WorkflowDefinition {
    serde_json::from_value(v).expect("definition")
}

pub fn workflow(id: &str, v: Value) -> Workflow {
    Workflow::new(id, id, def(v))
}

pub fn object_schema(required: &[&str]) -> Value {
    let props: serde_json::Map<String, Value> = required
        .iter()
        .map(|k| (k.to_string(), json!({"type": "string"})))
        .collect();
    json!({"type": "object", "properties": props, "required": required})
}

/// A hub with `echo` (returns its arguments), `add` and `slow` (sleeps 300 ms).
pub fn hub() -> FakeToolHub {
    FakeToolHub::new("fake")
        .tool(
            ToolSpec::new("echo", "Echo the arguments.", json!({"type": "object"})),
            |a| Ok(json!({"echo": a})),
        )
        .tool(
            ToolSpec::new("kv.put", "Store a value.", object_schema(&["key", "value"]))
                .with_tags(["write"]),
            |a| Ok(json!({"stored": a["key"]})),
        )
}

pub struct Harness {
    pub engine: Engine,
    pub pool: Option<WorkerPool>,
}

impl Harness {
    pub async fn run(&self, workflow_id: &str, input: Value) -> Run {
        let req = StartRun::new(workflow_id, input, subject());
        tokio::time::timeout(Duration::from_secs(30), self.engine.run_to_completion(req))
            .await
            .expect("run settles in time")
            .expect("run_to_completion")
    }

    pub async fn start(&self, req: StartRun) -> Run {
        self.engine.start_run(req).await.expect("start")
    }

    pub async fn wait(&self, run: &Run) -> Run {
        tokio::time::timeout(Duration::from_secs(30), self.engine.wait(run.id))
            .await
            .expect("run settles in time")
            .expect("wait")
    }

    pub async fn kinds(&self, run: &Run) -> Vec<String> {
        kinds(&self.engine.events(run.id).await.expect("events"))
    }

    pub async fn events(&self, run: &Run) -> Vec<Event> {
        self.engine.events(run.id).await.expect("events")
    }
}

pub fn kinds(events: &[Event]) -> Vec<String> {
    events.iter().map(|e| e.kind.as_str().to_string()).collect()
}

pub fn worker_options() -> WorkerOptions {
    WorkerOptions {
        poll: Duration::from_millis(50),
        ..WorkerOptions::default()
    }
    .lease(Duration::from_secs(5))
}

/// Builds an engine with `llm` as default provider and `hub`, and starts one worker pool.
pub async fn harness(llm: Option<Arc<dyn LlmProvider>>, hub: Option<Arc<FakeToolHub>>) -> Harness {
    harness_with(Engine::builder(), llm, hub).await
}

pub async fn harness_with(
    mut b: EngineBuilder,
    llm: Option<Arc<dyn LlmProvider>>,
    hub: Option<Arc<FakeToolHub>>,
) -> Harness {
    if let Some(l) = llm {
        b = b.default_llm(l);
    }
    let specs = hub.as_ref().map(|h| h.specs()).unwrap_or_default();
    if let Some(h) = hub {
        b = b.tool_hub(h);
    }
    let engine = b.build().await.expect("build");
    engine.register_tools(&specs).await.expect("tools");
    let pool = engine.spawn_workers(worker_options());
    Harness {
        engine,
        pool: Some(pool),
    }
}
