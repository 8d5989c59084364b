//! Database tools for an agent: a question answered from the host's tables for one tenant,
//! and a write that is previewed, paused for confirmation and applied after approval.
//!
//! ```sh
//! pg_ctlcluster --skip-systemctl-redirect 15 main start || true
//! cargo run -p logline-postgres --example db_tools
//! ```
//!
//! It creates (and recreates) the schema `logline_db_demo` with a small shop. The agent uses
//! a scripted model that writes the SQL a real model would.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;

use logline_core::agent::{Agent, ModelProfile};
use logline_core::engine::{Engine, StartRun, WorkerOptions};
use logline_core::llm::{FinishReason, LlmRequest, LlmResponse, Message, ToolCallRequest};
use logline_core::run::{GateSubject, RunStatus, Subject};
use logline_core::testing::ScriptedLlm;
use logline_core::workflow::Workflow;
use logline_postgres::{SqlTable, SqlToolHub};
use serde_json::{json, Value};
use sqlx::Executor;

const SCHEMA: &str = "logline_db_demo";

fn call(name: &str, arguments: Value) -> LlmResponse {
    LlmResponse {
        tool_calls: vec![ToolCallRequest {
            id: format!("call_{name}"),
            name: name.into(),
            arguments,
        }],
        finish_reason: FinishReason::ToolCalls,
        ..Default::default()
    }
}

fn results(req: &LlmRequest) -> Vec<Value> {
    req.messages
        .iter()
        .filter_map(|m| match m {
            Message::Tool { content, .. } => serde_json::from_str(content).ok(),
            _ => None,
        })
        .collect()
}

/// What a model would do: look at the tables, query, then answer; for the write request,
/// preview, then apply.
fn model(req: &LlmRequest) -> logline_core::Result<LlmResponse> {
    let asked_to_write = req
        .messages
        .iter()
        .any(|m| matches!(m, Message::User { content } if content.contains("Mark")));
    let seen = results(req);
    let update = "UPDATE orders SET status = 'shipped' WHERE status = 'paid'";
    Ok(match (asked_to_write, seen.len()) {
        (false, 0) => call("db_describe", json!({})),
        (false, 1) => call(
            "db_query",
            json!({"sql": "SELECT c.name, sum(o.total) AS spent FROM customers c \
                           JOIN orders o ON o.customer_id = c.id GROUP BY c.name ORDER BY spent DESC"}),
        ),
        (false, _) => {
            let rows = &seen[1]["tool_result"]["rows"];
            LlmResponse::text(format!("Top customers by spend: {rows}"))
        }
        (true, 0) => call("db_preview_write", json!({ "sql": update })),
        (true, 1) => call("db_write", json!({ "sql": update, "dry_run": false })),
        (true, _) => LlmResponse::text(format!(
            "Marked {} order(s) as shipped.",
            seen[1]["tool_result"]["affected_rows"]
        )),
    })
}

#[tokio::main]
async fn main() -> logline_core::Result<()> {
    let url = std::env::var(logline_postgres::ENV_DATABASE_URL)
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let pool = sqlx::PgPool::connect(&url).await.expect("connect");
    let setup = format!(
        "DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA};
         CREATE TABLE {SCHEMA}.customers (id serial PRIMARY KEY, tenant_id text NOT NULL,
             name text NOT NULL, password_hash text);
         CREATE TABLE {SCHEMA}.orders (id serial PRIMARY KEY, tenant_id text NOT NULL,
             customer_id int NOT NULL, total numeric(10,2) NOT NULL, status text NOT NULL);
         INSERT INTO {SCHEMA}.customers (tenant_id, name, password_hash) VALUES
             ('acme', 'Ada', 'x'), ('acme', 'Bob', 'y'), ('globex', 'Gina', 'z');
         INSERT INTO {SCHEMA}.orders (tenant_id, customer_id, total, status) VALUES
             ('acme', 1, 120, 'paid'), ('acme', 2, 40, 'paid'), ('acme', 1, 15, 'open'),
             ('globex', 3, 999, 'paid');"
    );
    pool.execute(setup.as_str()).await.expect("demo schema");

    let tools = SqlToolHub::builder(pool.clone())
        .table(
            SqlTable::tenant_scoped("customers", "tenant_id")
                .in_schema(SCHEMA)
                .hide(["password_hash"]),
        )
        .table(
            SqlTable::tenant_scoped("orders", "tenant_id")
                .in_schema(SCHEMA)
                .writable(),
        )
        .build()
        .await?;
    let specs = tools.specs();
    let engine = Engine::builder()
        .default_llm(Arc::new(ScriptedLlm::from_fn(model)))
        .tool_hub(Arc::new(tools))
        .build()
        .await?;
    engine.register_tools(&specs).await?;
    let tool_ids = ["db.describe", "db.query", "db.preview_write", "db.write"];
    engine
        .register_agent(
            &Agent::new(
                "analyst",
                "Answer from the shop database.",
                ModelProfile::new("demo"),
            )
            .with_tools(tool_ids),
        )
        .await?;
    let def = serde_json::from_value(json!({"entry": "a", "nodes": [
        {"id": "a", "type": "agent_node", "config": {"agent_id": "analyst"}}]}))
    .expect("workflow");
    engine
        .register_workflow(&Workflow::new("ask", "ask", def))
        .await?;
    let workers = engine.spawn_workers(WorkerOptions::default());
    let acme = Subject::tenant("acme").with_user("dan");

    let run = engine
        .run_to_completion(StartRun::new(
            "ask",
            json!({"question": "Who are our best customers?"}),
            acme.clone(),
        ))
        .await?;
    println!("answer: {}", run.result.unwrap_or_default()["text"]);

    let run = engine
        .run_to_completion(StartRun::new(
            "ask",
            json!({"question": "Mark the paid orders as shipped."}),
            acme,
        ))
        .await?;
    assert_eq!(run.status, RunStatus::Paused);
    let gate = run.pending_gate.clone().expect("gate");
    if let GateSubject::ToolCall {
        tool_id, arguments, ..
    } = &gate.subject
    {
        println!(
            "waiting for confirmation of {tool_id}: {}",
            arguments["sql"]
        );
    }
    engine
        .approve(run.id, &gate.gate_id, "manager", None)
        .await?;
    let run = engine.wait(run.id).await?;
    println!("answer: {}", run.result.unwrap_or_default()["text"]);
    let shipped: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM {SCHEMA}.orders WHERE status = 'shipped'"
    ))
    .fetch_one(&pool)
    .await
    .expect("count");
    println!("orders shipped in the database: {shipped} (globex's paid order untouched)");
    workers.shutdown().await;
    Ok(())
}
