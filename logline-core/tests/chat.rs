//! The chat suite on the memory backends: store checks and whole chat tasks (scripted
//! model, fake hub).

#![allow(clippy::expect_used)]

use std::sync::Arc;

use logline_core::chat::MemoryChatStore;
use logline_core::conformance::chat::ChatFixture;
use logline_core::memory::{MemoryQueue, MemoryStore};

async fn fixture() -> ChatFixture {
    ChatFixture {
        store: Arc::new(MemoryStore::new()),
        queue: Arc::new(MemoryQueue::new()),
        chat: Arc::new(MemoryChatStore::new()),
    }
}

mod memory_chat {
    use super::*;
    logline_core::chat_conformance_tests!(fixture());
}

/// Only a tool call can be refused (the run goes on without it); a gate node must be denied.
#[tokio::test]
async fn only_tool_call_gates_can_be_refused() {
    use logline_core::engine::{Engine, StartRun};
    use logline_core::run::{RunStatus, Subject};
    use logline_core::workflow::{Workflow, WorkflowDefinition};
    use logline_core::ErrorKind;
    use serde_json::json;

    let engine = Engine::builder().build().await.expect("engine");
    let def = WorkflowDefinition::from_json(json!({
        "entry": "ask",
        "nodes": [{"id": "ask", "type": "human_gate"}]
    }))
    .expect("definition");
    engine
        .register_workflow(&Workflow::new("gated", "Gated", def))
        .await
        .expect("register");
    let run = engine
        .start_run(StartRun::new("gated", json!({}), Subject::tenant("t")))
        .await
        .expect("start");
    let paused = engine.execute(run.id).await.expect("execute");
    assert_eq!(paused.status, RunStatus::Paused);
    let gate = paused.pending_gate.expect("gate").gate_id;
    let refused = engine.refuse(run.id, &gate, "alice", None).await;
    assert_eq!(
        refused.expect_err("not a tool call").kind(),
        ErrorKind::InvalidInput
    );
    let still = engine.get_run(run.id).await.expect("run");
    assert_eq!(still.status, RunStatus::Paused, "nothing changed");
}
