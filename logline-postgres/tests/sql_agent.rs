//! The database tools inside engine runs: a scripted model answers questions through
//! `db.query` for the run's own tenant, and a write stops for confirmation after its preview
//! and is applied only once a person approves it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/sql_fixture.rs"]
mod sql_fixture;
mod support;

use std::sync::Arc;
use std::time::Duration;

use logline_core::agent::{Agent, ModelProfile};
use logline_core::engine::{Engine, StartRun, WorkerOptions, WorkerPool};
use logline_core::llm::{LlmRequest, LlmResponse, Message};
use logline_core::run::{GateSubject, Run, RunStatus, Subject};
use logline_core::testing::ScriptedLlm;
use logline_core::workflow::Workflow;
use serde_json::{json, Value};
use sql_fixture::{HostDb, CANARY};

/// The tool results the model was shown, newest last.
fn tool_results(req: &LlmRequest) -> Vec<Value> {
    req.messages
        .iter()
        .filter_map(|m| match m {
            Message::Tool { content, .. } => serde_json::from_str(content).ok(),
            _ => None,
        })
        .collect()
}

async fn engine_with(db: &HostDb, llm: Arc<ScriptedLlm>, tools: &[&str]) -> (Engine, WorkerPool) {
    let hub = Arc::new(db.hub().await);
    let engine = Engine::builder()
        .default_llm(llm)
        .tool_hub(hub.clone())
        .build()
        .await
        .unwrap();
    engine.register_tools(&hub.specs()).await.unwrap();
    engine
        .register_agent(
            &Agent::new(
                "agent.analyst",
                "Answer questions from the database.",
                ModelProfile::new("gpt-4o-mini"),
            )
            .with_tools(tools.iter().copied()),
        )
        .await
        .unwrap();
    let def = serde_json::from_value(json!({ "entry": "a", "nodes": [
        { "id": "a", "type": "agent_node", "config": { "agent_id": "agent.analyst" } } ] }))
    .unwrap();
    engine
        .register_workflow(&Workflow::new("ask", "ask", def))
        .await
        .unwrap();
    let pool = engine.spawn_workers(
        WorkerOptions {
            poll: Duration::from_millis(50),
            ..WorkerOptions::default()
        }
        .lease(Duration::from_secs(5)),
    );
    (engine, pool)
}

async fn run(engine: &Engine, tenant: &str, question: &str) -> Run {
    let req = StartRun::new(
        "ask",
        json!({ "question": question }),
        Subject::tenant(tenant).with_user("dan").with_role("user"),
    );
    tokio::time::timeout(Duration::from_secs(30), engine.run_to_completion(req))
        .await
        .expect("settles")
        .unwrap()
}

/// A model that asks `sql` through `db_query` and then names what the rows say.
fn analyst(sql: &'static str) -> ScriptedLlm {
    ScriptedLlm::from_fn(move |req| {
        let Some(last) = tool_results(req).pop() else {
            return Ok(tool_call("db_query", json!({ "sql": sql })));
        };
        let names: Vec<String> = last["tool_result"]["rows"]
            .as_array()
            .map(|rows| rows.iter().map(|r| r[0].to_string()).collect())
            .unwrap_or_default();
        Ok(LlmResponse::text(format!(
            "{} customers: {}",
            names.len(),
            names.join(", ")
        )))
    })
}

fn tool_call(name: &str, arguments: Value) -> LlmResponse {
    LlmResponse {
        tool_calls: vec![logline_core::llm::ToolCallRequest {
            id: format!("call_{name}"),
            name: name.into(),
            arguments,
        }],
        finish_reason: logline_core::llm::FinishReason::ToolCalls,
        ..Default::default()
    }
}

fn text(run: &Run) -> String {
    run.result.as_ref().unwrap()["text"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn questions_are_answered_from_the_runs_own_tenant() {
    let db = HostDb::new().await;
    let llm = Arc::new(analyst("SELECT name FROM customers ORDER BY name"));
    let (engine, pool) = engine_with(&db, llm.clone(), &["db.describe", "db.query"]).await;
    let acme = run(&engine, "acme", "Who are my customers?").await;
    assert_eq!(acme.status, RunStatus::Completed, "{:?}", acme.error);
    assert_eq!(text(&acme), r#"2 customers: "Ada", "Bob""#);
    let globex = run(&engine, "globex", "Who are my customers?").await;
    assert_eq!(text(&globex), r#"1 customers: "GlobexCanary""#);
    assert_eq!(
        llm.requests()[0]
            .tools
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>(),
        ["db_describe", "db_query"]
    );
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_asking_for_another_tenant_gets_nothing() {
    let db = HostDb::new().await;
    let llm = Arc::new(analyst(
        "SELECT name FROM customers WHERE tenant_id = 'globex' UNION ALL \
         SELECT c.name FROM customers c JOIN orders o ON o.customer_id = c.id WHERE o.total > 500",
    ));
    let (engine, pool) = engine_with(&db, llm.clone(), &["db.query"]).await;
    let acme = run(&engine, "acme", "Show me globex's customers").await;
    assert_eq!(acme.status, RunStatus::Completed, "{:?}", acme.error);
    assert_eq!(text(&acme), "0 customers: ");
    let shown: Vec<Value> = llm.requests().iter().flat_map(tool_results).collect();
    assert!(!shown.is_empty() && !json!(shown).to_string().contains(CANARY));
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_is_previewed_then_applied_only_after_approval() {
    let db = HostDb::new().await;
    let insert = "INSERT INTO customers (name, email) VALUES ('Cy', 'cy@acme.test')";
    let llm = Arc::new(ScriptedLlm::from_fn(move |req| {
        let results = tool_results(req);
        Ok(match results.len() {
            0 => tool_call("db_preview_write", json!({ "sql": insert })),
            1 => tool_call("db_write", json!({ "sql": insert, "dry_run": false })),
            _ => {
                let last = &results[results.len() - 1];
                LlmResponse::text(format!(
                    "added {} customer(s)",
                    last["tool_result"]["affected_rows"]
                ))
            }
        })
    }));
    let (engine, pool) = engine_with(&db, llm.clone(), &["db.preview_write", "db.write"]).await;
    let count = "SELECT count(*) FROM {s}.customers WHERE tenant_id = 'acme'";
    let paused = run(&engine, "acme", "Add Cy as a customer").await;
    assert_eq!(paused.status, RunStatus::Paused, "{:?}", paused.error);
    let gate = paused.pending_gate.clone().unwrap();
    let GateSubject::ToolCall {
        tool_id, arguments, ..
    } = &gate.subject
    else {
        panic!("{gate:?}");
    };
    assert_eq!(tool_id, "db.write");
    assert_eq!(arguments["sql"], insert, "the approver sees the statement");
    let preview = &tool_results(&llm.requests()[1])[0]["tool_result"];
    assert_eq!(preview["dry_run"], true);
    assert_eq!(preview["affected_rows"], 1);
    assert_eq!(
        db.scalar_i64(count).await,
        2,
        "nothing written before approval"
    );

    engine
        .approve(paused.id, &gate.gate_id, "admin", None)
        .await
        .unwrap();
    let done = tokio::time::timeout(Duration::from_secs(30), engine.wait(paused.id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.status, RunStatus::Completed, "{:?}", done.error);
    assert_eq!(text(&done), "added 1 customer(s)");
    assert_eq!(
        db.scalar_i64(count).await,
        3,
        "written once, for the run's tenant"
    );
    assert_eq!(
        db.scalar_i64(
            "SELECT count(*) FROM {s}.customers WHERE name = 'Cy' AND tenant_id = 'acme'"
        )
        .await,
        1
    );
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_reaches_the_model_which_fixes_its_sql() {
    let db = HostDb::new().await;
    let llm = Arc::new(ScriptedLlm::from_fn(|req| {
        let results = tool_results(req);
        Ok(match results.len() {
            0 => tool_call("db_query", json!({ "sql": "SELECT value FROM secrets" })),
            1 => tool_call(
                "db_query",
                json!({ "sql": "SELECT count(*) FROM orders WHERE status = 'paid'" }),
            ),
            _ => LlmResponse::text(format!(
                "{} paid orders",
                results[1]["tool_result"]["rows"][0][0]
            )),
        })
    }));
    let (engine, pool) = engine_with(&db, llm.clone(), &["db.describe", "db.query"]).await;
    let done = run(&engine, "acme", "How many paid orders?").await;
    assert_eq!(done.status, RunStatus::Completed, "{:?}", done.error);
    assert_eq!(text(&done), "2 paid orders");
    let first = &tool_results(&llm.requests()[2])[0];
    assert_eq!(first["error"]["kind"], "policy_denied", "{first}");
    assert_eq!(first["error"]["policy_id"], "sql_safety");
    assert!(
        first["error"]["message"]
            .as_str()
            .unwrap()
            .contains("[relation]"),
        "{first}"
    );
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_write_changes_nothing() {
    let db = HostDb::new().await;
    let update = "UPDATE orders SET status = 'void' WHERE status = 'open'";
    let llm = Arc::new(ScriptedLlm::from_fn(move |req| {
        Ok(match tool_results(req).len() {
            0 => tool_call("db_write", json!({ "sql": update, "dry_run": false })),
            _ => LlmResponse::text("the write was not made"),
        })
    }));
    let (engine, pool) = engine_with(&db, llm, &["db.write"]).await;
    let before = db.snapshot("orders").await;
    let paused = run(&engine, "acme", "Void the open orders").await;
    assert_eq!(paused.status, RunStatus::Paused, "{:?}", paused.error);
    let gate = paused.pending_gate.clone().unwrap();
    engine
        .deny(paused.id, &gate.gate_id, "admin", "not today")
        .await
        .unwrap();
    let done = tokio::time::timeout(Duration::from_secs(30), engine.wait(paused.id))
        .await
        .unwrap()
        .unwrap();
    assert_ne!(done.status, RunStatus::Paused);
    assert_eq!(db.snapshot("orders").await, before, "nothing written");
    pool.shutdown().await;
}
