//! The golden run (ticket triage) on PostgreSQL, in one process or split across several.
//!
//! ```sh
//! pg_ctlcluster --skip-systemctl-redirect 15 main start || true
//! export DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres
//! cargo run -p logline-postgres --example pg_workers            # workers + one run here
//! cargo run -p logline-postgres --example pg_workers -- worker  # only workers (Ctrl-C drains)
//! cargo run -p logline-postgres --example pg_workers -- start   # only start + stream a run
//! ```
//!
//! Start any number of `worker` processes (on any machines sharing the database) and then
//! `start`: the run executes on whichever worker claims it, and its events stream to the
//! starting process through LISTEN/NOTIFY. The triage agent uses a scripted LLM here.
#![allow(clippy::expect_used)]

use std::sync::Arc;

use futures::StreamExt;
use logline_core::engine::{StartRun, WorkerOptions};
use logline_core::run::Subject;
use logline_core::testing::golden;
use logline_postgres::{PgBackend, PgConfig};
use serde_json::json;

#[tokio::main]
async fn main() -> logline_core::Result<()> {
    let mode = std::env::args().nth(1).unwrap_or_else(|| "all".into());
    if std::env::var(logline_postgres::ENV_DATABASE_URL).is_err() {
        std::env::set_var(
            logline_postgres::ENV_DATABASE_URL,
            "postgres://postgres@127.0.0.1:5432/postgres",
        );
    }
    let config = PgConfig::from_env()?.schema(
        std::env::var(logline_postgres::ENV_SCHEMA).unwrap_or_else(|_| "logline_demo".into()),
    );
    let backend = PgBackend::connect(&config).await?;
    backend.migrate().await?;
    let engine = golden::with_tool(
        backend
            .engine_builder()
            .default_llm(Arc::new(golden::scripted_llm())),
    )
    .build()
    .await?;
    golden::install(&engine, "gpt-4o-mini").await?;

    let workers = (mode != "start").then(|| engine.spawn_workers(WorkerOptions::default()));
    if mode == "worker" {
        println!(
            "worker {} waiting for runs; Ctrl-C to drain and stop",
            std::process::id()
        );
        tokio::signal::ctrl_c()
            .await
            .expect("install the Ctrl-C handler");
    } else {
        let run = engine
            .start_run(StartRun::new(
                golden::WORKFLOW_ID,
                json!({ "hotel_id": "VV-LISBON" }),
                Subject::tenant("hotel-group"),
            ))
            .await?;
        println!("run {} started", run.id);
        let mut events = engine.subscribe(run.id, 0);
        while let Some(e) = events.next().await {
            let e = e?;
            println!("  #{:<3} {:<15} {}", e.seq, e.kind.as_str(), e.payload);
        }
        let run = engine.get_run(run.id).await?;
        println!(
            "status: {}\nresult: {}",
            run.status.as_str(),
            serde_json::to_string_pretty(&run.result).unwrap_or_default()
        );
    }
    if let Some(w) = workers {
        w.shutdown().await;
    }
    Ok(())
}
