//! The hub under faults, against this crate's fixture server: the server killed mid-call
//! (typed error, restart, no silent re-send of a non-idempotent tool, also through the
//! engine), a hung server (deadline, the server told to cancel), an oversized result (cap),
//! an unreachable server, cancellation, pagination and list changes, over stdio and HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use logline_core::engine::{Engine, StartRun, WorkerOptions};
use logline_core::run::{RunStatus, Subject};
use logline_core::store::DefinitionStore;
use logline_core::tool::ToolHub;
use logline_core::workflow::{Workflow, WorkflowDefinition};
use logline_core::ErrorKind;
use logline_mcp::{Backoff, McpCatalogSync, McpServerConfig, McpToolHub};
use serde_json::{json, Value};
use support::*;

fn fast_restart(c: McpServerConfig) -> McpServerConfig {
    c.with_backoff(Backoff {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(200),
        stable_after: Duration::from_secs(30),
    })
}

fn state_file() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("logline-mcp-state-{}", uuid::Uuid::new_v4()))
}

async fn stats(hub: &McpToolHub, server: &str) -> Value {
    hub.execute(&format!("{server}.stats"), json!({}), &ctx())
        .await
        .unwrap()
}

fn kill(pid: u64) {
    let ok = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {pid}");
}

#[tokio::test]
async fn killed_mid_call_is_a_typed_error_then_the_server_restarts_and_nothing_is_resent() {
    let state = state_file();
    let config =
        fast_restart(fixture_stdio("fx")).with_secret("FIXTURE_STATE", state.display().to_string());
    let hub = McpToolHub::new([config]).unwrap();
    let before = stats(&hub, "fx").await;
    let pid = before["pid"].as_u64().unwrap();

    let call = {
        let hub = hub.clone();
        tokio::spawn(async move { hub.execute("fx.write", json!({"ms": 5000}), &ctx()).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    kill(pid);
    let e = call.await.unwrap().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(
        e.is_retryable() && !e.did_not_execute(),
        "the call may have run: {e}"
    );

    // Restarted (a new process), and the write ran exactly once.
    let after = stats(&hub, "fx").await;
    assert_ne!(after["pid"], before["pid"]);
    assert_eq!(std::fs::read_to_string(&state).unwrap().trim(), "1");
    assert_eq!(after["writes"], 1);
    let _ = std::fs::remove_file(&state);
}

#[tokio::test]
async fn through_the_engine_a_non_idempotent_call_cut_off_is_an_unknown_outcome() {
    let state = state_file();
    let config =
        fast_restart(fixture_stdio("fx")).with_secret("FIXTURE_STATE", state.display().to_string());
    let hub = McpToolHub::new([config]).unwrap();
    let engine = Engine::builder()
        .tool_hub(Arc::new(hub.clone()))
        .build()
        .await
        .unwrap();
    McpCatalogSync::new(hub.clone(), engine.store().clone())
        .sync_all()
        .await
        .unwrap();
    let write = engine.store().get_tool("fx.write").await.unwrap();
    assert!(!write.idempotent);
    let def = WorkflowDefinition::from_json(json!({
        "entry": "w",
        "nodes": [{"id": "w", "type": "tool_node",
                   "config": {"tool_id": "fx.write", "timeout_ms": 20000}}]
    }))
    .unwrap();
    engine
        .register_workflow(&Workflow::new("write_once", "Write once", def))
        .await
        .unwrap();
    let workers = engine.spawn_workers(WorkerOptions::default());
    let pid = stats(&hub, "fx").await["pid"].as_u64().unwrap();
    let run = engine
        .start_run(
            StartRun::new("write_once", json!({"ms": 5000}), Subject::tenant("t1"))
                .mode(logline_core::run::RunMode::Auto),
        )
        .await
        .unwrap();
    // `write` needs confirmation (a write, by its name): the run pauses for a person.
    let paused = engine.wait(run.id).await.unwrap();
    assert_eq!(paused.status, RunStatus::Paused);
    let gate = paused.pending_gate.unwrap();
    engine
        .approve(run.id, &gate.gate_id, "approver-1", None)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    kill(pid);
    let run = tokio::time::timeout(Duration::from_secs(30), engine.wait(run.id))
        .await
        .unwrap()
        .unwrap();
    workers.shutdown().await;
    assert_eq!(run.status, RunStatus::Failed, "{:?}", run.error);
    let error = run.error.unwrap().to_string();
    assert!(error.contains("effect_outcome_unknown"), "{error}");
    assert_eq!(
        std::fs::read_to_string(&state).unwrap().trim(),
        "1",
        "sent once"
    );
    let _ = std::fs::remove_file(&state);
}

#[tokio::test]
async fn a_hung_server_meets_the_deadline_and_is_told_to_cancel() {
    let config = fixture_stdio("fx").with_call_timeout(Duration::from_millis(300));
    let hub = McpToolHub::new([config]).unwrap();
    let e = hub.execute("fx.hang", json!({}), &ctx()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    let mut cancelled = 0;
    for _ in 0..50 {
        cancelled = stats(&hub, "fx").await["cancelled"].as_u64().unwrap();
        if cancelled == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(cancelled, 1, "notifications/cancelled reached the server");
}

#[tokio::test]
async fn a_caller_that_stops_waiting_cancels_the_call_on_the_server() {
    let hub = McpToolHub::new([fixture_stdio("fx")]).unwrap();
    let c = ctx();
    let call = hub.execute("fx.slow", json!({"ms": 10000}), &c);
    assert!(tokio::time::timeout(Duration::from_millis(300), call)
        .await
        .is_err());
    let mut cancelled = 0;
    for _ in 0..50 {
        cancelled = stats(&hub, "fx").await["cancelled"].as_u64().unwrap();
        if cancelled == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(cancelled, 1);
}

#[tokio::test]
async fn oversized_results_are_capped() {
    let hub = McpToolHub::new([fixture_stdio("fx").with_max_result_bytes(10_000)]).unwrap();
    let ok = hub
        .execute("fx.big", json!({"bytes": 5000}), &ctx())
        .await
        .unwrap();
    assert_eq!(ok["text"].as_str().unwrap().len(), 5000);
    let e = hub
        .execute("fx.big", json!({"bytes": 50_000}), &ctx())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ToolFailed, "{e}");
    assert!(e.to_string().contains("over the cap of 10000 bytes"), "{e}");
}

#[tokio::test]
async fn an_unreachable_server_is_not_executed_and_secrets_stay_out_of_errors() {
    let config = McpServerConfig::stdio("gone", "/nonexistent/logline-mcp-server", ["x"])
        .with_secret("API_KEY", "sk-supersecret");
    let mut config = config;
    config.connect_timeout = Duration::from_millis(300);
    let hub = McpToolHub::new([config]).unwrap();
    let e = hub
        .execute("gone.anything", json!({}), &ctx())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.did_not_execute(), "{e}");
    assert!(!format!("{e:?}").contains("sk-supersecret"));

    let (_child, config) = fixture_http("web").await;
    let config = config.with_bearer("tok-verysecret");
    let shown = format!("{:?}", McpToolHub::new([config]).unwrap());
    assert!(!shown.contains("tok-verysecret"));
}

async fn paging_and_list_changes(config: McpServerConfig) {
    let config = config
        .with_secret("FIXTURE_TOOLS", "120")
        .with_secret("FIXTURE_PAGE", "25");
    let hub = McpToolHub::new([config]).unwrap();
    let tools = list_all(&hub).await;
    assert!(tools.len() >= 130, "{}", tools.len());
    assert!(tools.iter().any(|t| t.id == "fx.op_0119"));
    let store = Arc::new(logline_core::memory::MemoryStore::new());
    let sync = McpCatalogSync::new(hub.clone(), store.clone());
    let report = sync.sync_server("fx").await.unwrap();
    assert_eq!(report.report.added.len(), tools.len());
    assert!(report.report.pages >= 6, "{:?}", report.report.pages);

    let follow = sync.follow(Duration::from_millis(50));
    hub.execute("fx.add_tool", json!({"name": "fresh_tool"}), &ctx())
        .await
        .unwrap();
    let mut found = false;
    for _ in 0..100 {
        if store.get_tool("fx.fresh_tool").await.is_ok() {
            found = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    follow.abort();
    assert!(found, "list_changed was followed");
}

#[tokio::test]
async fn pages_and_list_changes_over_stdio() {
    paging_and_list_changes(fixture_stdio("fx")).await;
}

#[tokio::test]
async fn pages_and_list_changes_over_http() {
    let port = free_port();
    let mut cmd = tokio::process::Command::new(FIXTURE);
    cmd.arg("--http")
        .arg(format!("127.0.0.1:{port}"))
        .env("FIXTURE_TOOLS", "120")
        .env("FIXTURE_PAGE", "25");
    let _child = spawn_http(cmd, port).await;
    let config = McpServerConfig::http("fx", format!("http://127.0.0.1:{port}/mcp"));
    paging_and_list_changes(config).await;
}

#[tokio::test]
async fn cancelling_a_run_cancels_its_call_on_the_server() {
    let hub = McpToolHub::new([fixture_stdio("fx")]).unwrap();
    let engine = Engine::builder()
        .tool_hub(Arc::new(hub.clone()))
        .build()
        .await
        .unwrap();
    McpCatalogSync::new(hub.clone(), engine.store().clone())
        .sync_all()
        .await
        .unwrap();
    let def = WorkflowDefinition::from_json(json!({
        "entry": "s",
        "nodes": [{"id": "s", "type": "tool_node", "config": {"tool_id": "fx.slow"}}]
    }))
    .unwrap();
    engine
        .register_workflow(&Workflow::new("slow_wf", "Slow", def))
        .await
        .unwrap();
    let workers = engine.spawn_workers(WorkerOptions::default());
    let run = engine
        .start_run(
            StartRun::new("slow_wf", json!({"ms": 20000}), Subject::tenant("t1"))
                .mode(logline_core::run::RunMode::Auto),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    engine.cancel(run.id, "changed my mind").await.unwrap();
    let mut cancelled = 0;
    for _ in 0..100 {
        cancelled = stats(&hub, "fx").await["cancelled"].as_u64().unwrap();
        if cancelled == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    workers.shutdown().await;
    assert_eq!(cancelled, 1, "notifications/cancelled reached the server");
    let run = engine.get_run(run.id).await.unwrap();
    assert_eq!(run.status, RunStatus::Cancelled);
}
