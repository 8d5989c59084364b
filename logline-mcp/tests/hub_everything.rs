//! The reference server `@modelcontextprotocol/server-everything` as a hub, over stdio and
#![allow(clippy::unwrap_used, clippy::expect_used)]
//! streamable HTTP: list, call, errors, progress, list-changed and cancellation.

mod support;

use std::time::Duration;

use logline_core::tool::{RiskLevel, ToolHub};
use logline_core::ErrorKind;
use logline_mcp::{McpServerConfig, McpToolHub};
use serde_json::json;
use support::*;

async fn scenario(config: McpServerConfig) {
    let hub = McpToolHub::new([config]).unwrap();

    // list
    let tools = list_all(&hub).await;
    let ids: Vec<&str> = tools.iter().map(|t| t.id.as_str()).collect();
    for id in [
        "everything.echo",
        "everything.get-sum",
        "everything.get-tiny-image",
    ] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
    let long = tools
        .iter()
        .find(|t| t.id == "everything.trigger-long-running-operation")
        .unwrap();
    assert!(long.idempotent, "idempotentHint makes it re-sendable");
    assert_eq!(long.toolkit.as_deref(), Some("everything"));
    assert_eq!(long.hub, "mcp");
    let sum = tools.iter().find(|t| t.id == "everything.get-sum").unwrap();
    assert_eq!(sum.risk_level, RiskLevel::Low);

    // call: text, structured content, images as references
    let out = hub
        .execute("everything.echo", json!({"message": "hello"}), &ctx())
        .await
        .unwrap();
    assert_eq!(out["text"], "Echo: hello");
    let out = hub
        .execute("everything.get-sum", json!({"a": 2, "b": 3}), &ctx())
        .await
        .unwrap();
    assert!(out["text"].as_str().unwrap().contains('5'), "{out}");
    let out = hub
        .execute(
            "everything.get-structured-content",
            json!({"location": "New York"}),
            &ctx(),
        )
        .await
        .unwrap();
    assert!(out.get("temperature").is_some(), "{out}");
    let out = hub
        .execute("everything.get-tiny-image", json!({}), &ctx())
        .await
        .unwrap();
    let refs = out["references"].as_array().unwrap();
    assert_eq!(refs[0]["type"], "image");
    assert!(refs[0]["bytes"].as_u64().unwrap() > 0);
    assert!(!out.to_string().contains("iVBOR"), "no inline image data");

    // errors: local schema validation, then the server's isError text
    let e = hub
        .execute("everything.echo", json!({"message": 5}), &ctx())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    let e = hub
        .execute(
            "everything.get-resource-reference",
            json!({"resourceType": "Text", "resourceId": 1.5}),
            &ctx(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ToolFailed, "{e}");
    assert!(e.to_string().contains("Invalid resourceId"), "{e}");
    let e = hub
        .execute("everything.no-such-tool", json!({}), &ctx())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");

    // progress, tagged with the run of the call
    let mut progress = hub.progress();
    let mut c = ctx();
    let run_id = uuid::Uuid::now_v7();
    c.run_id = Some(run_id);
    hub.execute(
        "everything.trigger-long-running-operation",
        json!({"duration": 0.3, "steps": 3}),
        &c,
    )
    .await
    .unwrap();
    let mut seen = Vec::new();
    while let Ok(p) = progress.try_recv() {
        assert_eq!(p.run_id, Some(run_id));
        assert_eq!(p.tool_id, "everything.trigger-long-running-operation");
        seen.push((p.progress, p.total));
    }
    assert_eq!(
        seen,
        vec![(1.0, Some(3.0)), (2.0, Some(3.0)), (3.0, Some(3.0))]
    );

    // cancellation: the caller stops waiting; the hub stays usable and forwards no more
    // progress of the abandoned call
    let c = ctx();
    let call = hub.execute(
        "everything.trigger-long-running-operation",
        json!({"duration": 5, "steps": 50}),
        &c,
    );
    assert!(tokio::time::timeout(Duration::from_millis(400), call)
        .await
        .is_err());
    tokio::time::sleep(Duration::from_millis(50)).await;
    while progress.try_recv().is_ok() {}
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(progress.try_recv().is_err(), "progress of a cancelled call");
    let out = hub
        .execute("everything.echo", json!({"message": "after"}), &ctx())
        .await
        .unwrap();
    assert_eq!(out["text"], "Echo: after");
}

#[tokio::test]
async fn everything_over_stdio() {
    scenario(everything_stdio()).await;
}

#[tokio::test]
async fn everything_over_http() {
    let (_child, config) = everything_http().await;
    scenario(config).await;
}

/// The server registers tools that need client capabilities (roots) after the handshake
/// and says so with `notifications/tools/list_changed`: the followed catalog picks them up.
#[tokio::test]
async fn list_changed_is_followed() {
    let hub = McpToolHub::new([everything_stdio()]).unwrap();
    let store = std::sync::Arc::new(logline_core::memory::MemoryStore::new());
    let sync = logline_mcp::McpCatalogSync::new(hub.clone(), store.clone());
    let follow = sync.follow(Duration::from_millis(100));
    let mut found = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if logline_core::store::DefinitionStore::get_tool(
            store.as_ref(),
            "everything.get-roots-list",
        )
        .await
        .is_ok()
        {
            found = true;
            break;
        }
    }
    follow.abort();
    assert!(
        found,
        "the tool registered after the handshake reached the catalog"
    );
    let _ = hub
        .execute("everything.get-roots-list", json!({}), &ctx())
        .await
        .unwrap();
}

/// A call made by a run reports the server's `notifications/progress` on the run's own
/// progress stream, tagged with the step and the tool.
#[tokio::test]
async fn progress_reaches_the_run_progress_stream() {
    use futures::StreamExt;
    use logline_core::engine::{Engine, StartRun};
    use logline_core::run::{RunMode, RunStatus, Subject};
    use logline_core::workflow::{Workflow, WorkflowDefinition};

    let hub = McpToolHub::new([everything_stdio()]).unwrap();
    let engine = Engine::builder()
        .tool_hub(std::sync::Arc::new(hub.clone()))
        .build()
        .await
        .unwrap();
    logline_mcp::McpCatalogSync::new(hub, engine.store().clone())
        .sync_all()
        .await
        .unwrap();
    let tool = "everything.trigger-long-running-operation";
    let def = WorkflowDefinition::from_json(json!({
        "entry": "op",
        "nodes": [{"id": "op", "type": "tool_node", "config": {"tool_id": tool}}]
    }))
    .unwrap();
    engine
        .register_workflow(&Workflow::new("long", "Long", def))
        .await
        .unwrap();
    let start = StartRun::new(
        "long",
        json!({"duration": 0.3, "steps": 3}),
        Subject::tenant("t1"),
    )
    .mode(RunMode::Auto);
    let run = engine.start_run(start).await.unwrap();
    let mut progress = engine.progress_of(run.id);
    let mut run = engine.execute(run.id).await.unwrap();
    if let Some(gate) = run.pending_gate.clone() {
        // The server does not say the tool is read-only: its risk asks for an approval.
        assert_eq!(run.status, RunStatus::Paused);
        engine
            .approve(run.id, &gate.gate_id, "u1", None)
            .await
            .unwrap();
        run = engine.execute(run.id).await.unwrap();
    }
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.error);
    let step = engine.steps(run.id).await.unwrap().remove(0);

    let mut seen = Vec::new();
    while let Ok(Some(p)) = tokio::time::timeout(Duration::from_millis(300), progress.next()).await
    {
        assert_eq!((p.run_id, p.step_id), (run.id, step.id));
        assert!(p.delta.is_empty(), "no text in a tool's progress");
        let t = p.tool.expect("a tool's progress");
        assert_eq!(t.tool_id, tool);
        seen.push((t.progress, t.total));
    }
    assert_eq!(
        seen,
        vec![(1.0, Some(3.0)), (2.0, Some(3.0)), (3.0, Some(3.0))]
    );
}
