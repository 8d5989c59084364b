//! Apps and agent memory: the blueprint's app manifest (`examples/manifests`) imported as
//! configuration, its action running the golden ticket-triage workflow, then version 1.1.0 of
//! the same app (YAML) adding a memory-keeping workflow: a guest preference written in one
//! run is recalled in a later one, and another user of the tenant does not see it. With
//! `DATABASE_URL` set, a question about the hotel's bookings is answered through the database
//! read tool (`db.query` of `logline_postgres::SqlToolHub`), for the run's tenant only.
//!
//! `cargo run --example apps` (scripted models and a word-hashing embedder, no network; with
//! `DATABASE_URL`, the schema `logline_apps_demo` is recreated).

use std::error::Error;
use std::sync::Arc;

use logline_core::agent::{Agent, ModelProfile};
use logline_core::engine::{Engine, StartRun};
use logline_core::llm::{FinishReason, LlmRequest, LlmResponse, Message, ToolCallRequest};
use logline_core::memory::MemoryRecallStore;
use logline_core::recall::Recall;
use logline_core::run::Subject;
use logline_core::testing::{golden, FakeEmbedder, ScriptedLlm};
use logline_core::workflow::{Workflow, WorkflowDefinition};
use logline_postgres::{SqlTable, SqlToolHub};
use serde_json::{json, Value};
use sqlx::Executor;

/// Schema of the bookings the database question reads (recreated on each run).
const DB_SCHEMA: &str = "logline_apps_demo";

const MANIFEST_V1: &str = include_str!("manifests/guest_support_console.json");
const MANIFEST_V1_1: &str = include_str!("manifests/guest_support_console.yaml");

/// The notes agent's model: "remember ..." stores a profile fact about the guest through
/// `memory.store`; anything else searches memory through `memory.search`; after the tool
/// answers, it replies with what it stored or found.
fn notes_model() -> ScriptedLlm {
    ScriptedLlm::from_fn(|request: &LlmRequest| {
        let tool_result = request.messages.iter().rev().find_map(|m| match m {
            Message::Tool { content, .. } => serde_json::from_str::<Value>(content).ok(),
            _ => None,
        });
        if let Some(r) = tool_result {
            let r = &r["tool_result"];
            let text = if let Some(stored) = r.get("stored") {
                format!("Noted: {}", stored["content"].as_str().unwrap_or_default())
            } else {
                match r["items"].get(0) {
                    Some(best) => format!(
                        "From memory: {}",
                        best["content"].as_str().unwrap_or_default()
                    ),
                    None => "I have nothing on that.".to_string(),
                }
            };
            return Ok(LlmResponse::text(text));
        }
        let input = request.messages.iter().rev().find_map(|m| match m {
            Message::User { content } => serde_json::from_str::<Value>(content).ok(),
            _ => None,
        });
        let input = input.unwrap_or_default();
        let message = input["message"].as_str().unwrap_or_default();
        let call = match message.strip_prefix("remember: ") {
            Some(fact) => ToolCallRequest {
                id: "call_store".into(),
                name: "memory_store".into(),
                arguments: json!({"content": fact, "type": "profile",
                                  "metadata": {"guest": input["guest"]["name"]}}),
            },
            None => ToolCallRequest {
                id: "call_search".into(),
                name: "memory_search".into(),
                arguments: json!({"query": message, "limit": 1}),
            },
        };
        Ok(LlmResponse {
            tool_calls: vec![call],
            finish_reason: FinishReason::ToolCalls,
            ..Default::default()
        })
    })
}

/// With `DATABASE_URL`: the database tools over a small `bookings` table of two tenants.
async fn database_tools() -> Result<Option<SqlToolHub>, Box<dyn Error>> {
    let Ok(url) = std::env::var(logline_postgres::ENV_DATABASE_URL) else {
        return Ok(None);
    };
    let pool = sqlx::PgPool::connect(&url).await?;
    let setup = format!(
        "DROP SCHEMA IF EXISTS {DB_SCHEMA} CASCADE; CREATE SCHEMA {DB_SCHEMA};
         CREATE TABLE {DB_SCHEMA}.bookings (id serial PRIMARY KEY, tenant_id text NOT NULL,
             guest text NOT NULL, room text NOT NULL, nights int NOT NULL);
         INSERT INTO {DB_SCHEMA}.bookings (tenant_id, guest, room, nights) VALUES
             ('tenant:voulezvous', 'Ana Costa', '305', 4),
             ('tenant:voulezvous', 'Rui Lopes', '112', 2),
             ('tenant:voulezvous', 'Mia Berg', '210', 6),
             ('tenant:other', 'Someone Else', '999', 30);"
    );
    pool.execute(setup.as_str()).await?;
    let hub = SqlToolHub::builder(pool)
        .table(
            SqlTable::tenant_scoped("bookings", "tenant_id")
                .in_schema(DB_SCHEMA)
                .describe("Room bookings: guest, room and nights booked."),
        )
        .build()
        .await?;
    Ok(Some(hub))
}

/// The analyst's model: turns the question into one `db.query` call (the SQL a real model
/// would write), then answers from the rows.
fn analyst_model() -> ScriptedLlm {
    ScriptedLlm::from_fn(|request: &LlmRequest| {
        let rows = request.messages.iter().rev().find_map(|m| match m {
            Message::Tool { content, .. } => serde_json::from_str::<Value>(content).ok(),
            _ => None,
        });
        if let Some(r) = rows {
            let rows = &r["tool_result"]["rows"];
            return Ok(LlmResponse::text(format!("Longest stays: {rows}")));
        }
        Ok(LlmResponse {
            tool_calls: vec![ToolCallRequest {
                id: "call_query".into(),
                name: "db_query".into(),
                arguments: json!({"sql": "SELECT guest, room, nights FROM bookings \
                                          ORDER BY nights DESC LIMIT 2"}),
            }],
            finish_reason: FinishReason::ToolCalls,
            ..Default::default()
        })
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let database = database_tools().await?.map(Arc::new);
    let recall = Recall::new(
        Arc::new(MemoryRecallStore::new()),
        Arc::new(FakeEmbedder::new(256)),
    );
    let mut builder = golden::with_tool(Engine::builder())
        .default_llm(Arc::new(golden::scripted_llm()))
        .llm("notes", Arc::new(notes_model()))
        .llm("analyst", Arc::new(analyst_model()))
        .recall(recall);
    if let Some(hub) = &database {
        builder = builder.tool_hub(hub.clone());
    }
    let engine = builder.build().await?;
    golden::install(&engine, "triage-model").await?;

    // 1. The blueprint's manifest: import, re-import (nothing changes), run its action.
    let report = engine.import_app_text(MANIFEST_V1).await?;
    println!(
        "import {} {}: {:?}",
        report.app_id, report.version, report.outcome
    );
    let again = engine.import_app_text(MANIFEST_V1).await?;
    println!("import again: {:?}", again.outcome);
    let context =
        json!({"user_id": "user:dan", "tenant_id": "tenant:voulezvous", "hotel_id": "VV-LISBON"});
    let out = engine
        .run_action(
            "guest_support_console",
            "triage_ticket",
            json!({}),
            context.clone(),
        )
        .await?;
    println!("\ntriage_ticket → run {} {:?}", out.run_id, out.status);
    println!("{}", serde_json::to_string_pretty(&out.result)?);

    // 2. Version 1.1.0 adds guest memory: its workflow, an agent with the memory tools.
    let mut profile = ModelProfile::new("notes-model");
    profile.provider = "notes".into();
    let agent = Agent::new(
        "agent.guest_notes",
        "Keep and recall notes about guests.",
        profile,
    )
    .with_tools(["memory.store", "memory.search"]);
    engine.register_agent(&agent).await?;
    let def = WorkflowDefinition::from_json(json!({
        "entry": "notes",
        "nodes": [{"id": "notes", "type": "agent_node", "config": {"agent_id": "agent.guest_notes"}}]
    }))?;
    engine
        .register_workflow(&Workflow::new("guest_memory_v1", "Guest notes", def))
        .await?;
    let report = engine.import_app_text(MANIFEST_V1_1).await?;
    println!(
        "\nimport {} {}: {:?}",
        report.app_id, report.version, report.outcome
    );

    let ask = |user: &'static str, message: &'static str| {
        let engine = engine.clone();
        async move {
            let ctx =
                json!({"user_id": user, "tenant_id": "tenant:voulezvous", "hotel_id": "VV-LISBON"});
            let event = json!({"message": message, "guest": {"name": "Ana Costa", "room": "305"}});
            let out = engine
                .run_action("guest_support_console", "guest_note", event, ctx)
                .await?;
            println!(
                "{user}: {message:?}\n  → {}",
                out.result.unwrap_or_default()
            );
            Ok::<_, logline_core::Error>(())
        }
    };
    ask(
        "user:dan",
        "remember: Ana Costa in 305 prefers a quiet room far from the elevator",
    )
    .await?;
    ask("user:dan", "what room does Ana Costa prefer").await?;
    // Another user of the tenant: Dan's notes are his (`user` memory), not shared.
    ask("user:eva", "what room does Ana Costa prefer").await?;

    // 3. A question about the hotel's data, answered through the database read tool.
    let Some(hub) = database else {
        println!("\n(set DATABASE_URL to ask the bookings database through `db.query`)");
        return Ok(());
    };
    engine.register_tools(&hub.specs()).await?;
    let mut profile = ModelProfile::new("analyst-model");
    profile.provider = "analyst".into();
    let analyst = Agent::new("agent.bookings", "Answer from the bookings table.", profile)
        .with_tools(["db.query"]);
    engine.register_agent(&analyst).await?;
    let def = WorkflowDefinition::from_json(json!({
        "entry": "ask",
        "nodes": [{"id": "ask", "type": "agent_node", "config": {"agent_id": "agent.bookings"}}]
    }))?;
    engine
        .register_workflow(&Workflow::new("ask_bookings", "Ask the bookings", def))
        .await?;
    let question = "Which guests stay the longest?";
    let subject = Subject::tenant("tenant:voulezvous").with_user("user:dan");
    let started = engine
        .start_run(StartRun::new(
            "ask_bookings",
            json!({"question": question}),
            subject,
        ))
        .await?;
    let run = engine.execute(started.id).await?;
    println!(
        "\nuser:dan: {question:?}\n  → {}",
        run.result.unwrap_or_default()["text"]
    );
    Ok(())
}
