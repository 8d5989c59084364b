//! The golden run, ticket triage: `demo_ticket_triage_v1` end to end, printed with its trace.
//!
//! - Nothing configured: in-memory store and queue, and a scripted triage LLM.
//! - `OPENAI_API_KEY` set: the real OpenAI Responses API (`OPENAI_MODEL`, default
//!   `gpt-4o-mini`; `OPENAI_BASE_URL` for OpenAI-compatible servers).
//! - `DATABASE_URL` set: PostgreSQL store and queue (migrated on start).
//!
//! `cargo run --example golden_run`

use std::error::Error;
use std::sync::Arc;

use logline_core::engine::{Engine, StartRun, WorkerOptions};
use logline_core::event::Event;
use logline_core::run::Subject;
use logline_core::testing::golden;
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();

    let mut builder = golden::with_tool(Engine::builder());
    let (model, llm_label) = if std::env::var_os("OPENAI_API_KEY").is_some() {
        let provider = logline_openai::OpenAiProvider::from_env()?;
        // The API key is redacted wherever the engine redacts (events, rows, job errors).
        let config = provider.config().clone();
        builder = builder
            .prices(provider.prices().clone())
            .redact_with(move |r| config.redact_secrets(r))
            .default_llm(Arc::new(provider));
        (
            std::env::var("OPENAI_MODEL").unwrap_or_else(|_| "gpt-4o-mini".into()),
            "openai",
        )
    } else {
        builder = builder.default_llm(Arc::new(golden::scripted_llm()));
        (
            "scripted-triage".to_string(),
            "scripted (set OPENAI_API_KEY for OpenAI)",
        )
    };
    let storage = if std::env::var_os("DATABASE_URL").is_some() {
        let backend = logline_postgres::PgBackend::from_env().await?;
        backend.migrate().await?;
        builder = builder
            .store(Arc::new(backend.store()))
            .queue(Arc::new(backend.queue()))
            .run_starter(Arc::new(backend));
        "postgres"
    } else {
        "in-memory (set DATABASE_URL for PostgreSQL)"
    };
    let engine = builder.build().await?;
    golden::install(&engine, &model).await?;
    let workers = engine.spawn_workers(WorkerOptions::default());

    eprintln!("llm: {llm_label}; storage: {storage}");
    let subject = Subject::tenant("tenant:voulezvous").with_user("user:dan");
    let request = StartRun::new(
        golden::WORKFLOW_ID,
        json!({ "hotel_id": "VV-LISBON" }),
        subject,
    );
    let run = engine.run_to_completion(request).await?;
    let events = engine.events(run.id).await?;
    workers.shutdown().await;

    let body =
        json!({ "id": run.id, "status": run.status, "result": run.result, "error": run.error });
    println!("{}", serde_json::to_string_pretty(&body)?);
    println!("\ntrace ({} events):", events.len());
    for e in &events {
        println!("{:>3}  {:<15} {}", e.seq, e.kind.as_str(), detail(e));
    }
    if !golden::has_minimum_events(&events) {
        return Err("the trace lacks the golden run's minimum events".into());
    }
    Ok(())
}

fn detail(e: &Event) -> String {
    let p = &e.payload;
    match e.kind.as_str() {
        "run_started" => format!("workflow={} mode={}", p["workflow_id"], p["mode"]),
        "step_started" => format!("node={}", p["node_id"]),
        "step_completed" => format!("node={} next={}", p["node_id"], p["next"]),
        "tool_call" => format!("tool={} duration_ms={}", p["tool_id"], p["duration_ms"]),
        "llm_call" => format!(
            "agent={} model={} tokens={}/{} cost_cents={:.4}",
            p["agent_id"],
            p["model"],
            p["usage"]["input_tokens"],
            p["usage"]["output_tokens"],
            p["cost_cents"].as_f64().unwrap_or_default()
        ),
        "policy_eval" => format!("action={} decision={}", p["action"], p["decision"]),
        "run_completed" => format!("summary={}", p["result"]["summary"]),
        _ => p.to_string(),
    }
}
