//! The tenant boundary on the memory backends: the shared tenancy checks (tenant B gets
//! `NotFound` for every run operation on tenant A's runs; tenant-filtered lists; starts act
//! for the principal; gate roles and self-approval), plus the unscoped per-run progress.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use logline_core::agent::{Agent, ModelProfile};
use logline_core::engine::{Engine, EngineBuilder, StartRun};
use logline_core::run::Subject;
use logline_core::testing::ScriptedLlm;
use logline_core::workflow::Workflow;
use serde_json::json;

async fn builder() -> EngineBuilder {
    Engine::builder()
}

mod tenancy_checks {
    use super::*;
    logline_core::tenancy_conformance_tests!(builder());
}

#[tokio::test]
async fn progress_of_skips_other_runs() {
    let llm = ScriptedLlm::new().reply_text("first").reply_text("second");
    let engine = Engine::builder()
        .default_llm(Arc::new(llm))
        .build()
        .await
        .unwrap();
    engine
        .register_agent(&Agent::new("agent.s", "Say it.", ModelProfile::new("m")))
        .await
        .unwrap();
    let def = serde_json::from_value(json!({"entry": "a", "nodes": [
        {"id": "a", "type": "agent_node", "config": {"agent_id": "agent.s"}}]}))
    .unwrap();
    engine
        .register_workflow(&Workflow::new("say", "Say", def))
        .await
        .unwrap();
    let start = || engine.start_run(StartRun::new("say", json!({}), Subject::tenant("t")));
    let (one, two) = (start().await.unwrap(), start().await.unwrap());
    let mut of_two = engine.progress_of(two.id);
    engine.execute(one.id).await.unwrap();
    engine.execute(two.id).await.unwrap();
    let p = tokio::time::timeout(Duration::from_secs(10), of_two.next())
        .await
        .expect("a delta of the second run arrives")
        .expect("open");
    assert_eq!((p.run_id, p.delta.as_str()), (two.id, "second"));
}
