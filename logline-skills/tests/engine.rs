//! Skills as workflow tool nodes, end to end through an engine run: on memory backends, and
//! on PostgreSQL (store, queue, artifact index and note store in one schema). Outputs are
//! owned by the run's subject and linked to the run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use logline_core::artifact::{
    ArtifactFilter, ArtifactIndex, ArtifactStore, ArtifactStoreExt, MemoryArtifactIndex,
    NewArtifact, ObjectArtifactStore,
};
use logline_core::engine::{Engine, EngineBuilder, StartRun, WorkerOptions};
use logline_core::notes::{MemoryNoteStore, NoteStore};
use logline_core::owner::Owner;
use logline_core::run::{RunStatus, Subject};
use logline_core::testing::ScriptedLlm;
use logline_core::workflow::Workflow;
use logline_postgres::{PgArtifactIndex, PgBackend, PgConfig, PgNoteStore};
use logline_skills::{SkillLimits, SkillsHub};
use serde_json::{json, Value};
use sqlx::Executor;
use support::*;

fn workflow() -> Workflow {
    let definition = serde_json::from_value(json!({
        "entry": "note",
        "nodes": [
            { "id": "note", "type": "tool_node", "config": { "tool_id": "notes.create",
              "input": { "title": "$input.title", "body": "$input.body" } } },
            { "id": "bot", "type": "tool_node", "config": { "tool_id": "scaffold.telegram_bot",
              "input": { "name": "$input.bot" } } },
            { "id": "pdf", "type": "tool_node", "config": { "tool_id": "pdf.correct",
              "input": { "artifact_id": "$input.pdf" } } },
            { "id": "done", "type": "static", "config": { "output": {
              "note": "$nodes.note", "bot": "$nodes.bot", "pdf": "$nodes.pdf" } } }
        ],
        "edges": [ { "from": "note", "to": "bot" }, { "from": "bot", "to": "pdf" },
                   { "from": "pdf", "to": "done" } ]
    }))
    .unwrap();
    Workflow::new("skills_demo", "skills demo", definition)
}

/// Runs the workflow for `dan` on `builder` with a hub over `index` and `notes`, and checks
/// every output landed for dan, linked to the run, and for nobody else.
async fn skills_run_end_to_end(
    builder: EngineBuilder,
    index: Arc<dyn ArtifactIndex>,
    notes: Arc<dyn NoteStore>,
) {
    let artifacts: Arc<dyn ArtifactStore> = Arc::new(ObjectArtifactStore::new(
        Arc::new(object_store::memory::InMemory::new()),
        index,
    ));
    let f = fixture_with(
        ScriptedLlm::new().reply_json(json!({"pages": ["Corrected first page", "Second page"]})),
        artifacts.clone(),
        notes.clone(),
        SkillLimits::default(),
    );
    let owner = Owner::from(&dan());
    let upload = artifacts
        .put(
            &owner,
            NewArtifact::named("draft.pdf"),
            multi_page_pdf(&[&["Frist page"], &["Second page"]]),
        )
        .await
        .unwrap();
    let engine = builder.tool_hub(Arc::new(f.hub)).build().await.unwrap();
    engine.register_tools(&SkillsHub::specs()).await.unwrap();
    engine.register_workflow(&workflow()).await.unwrap();
    let workers = engine.spawn_workers(
        WorkerOptions {
            poll: Duration::from_millis(50),
            ..WorkerOptions::default()
        }
        .lease(Duration::from_secs(10)),
    );
    let input = json!({"title": "Launch", "body": "Friday", "bot": "Order Bot", "pdf": upload.id});
    let run = tokio::time::timeout(
        Duration::from_secs(60),
        engine.run_to_completion(StartRun::new("skills_demo", input, dan())),
    )
    .await
    .expect("settles in time")
    .unwrap();
    workers.shutdown().await;
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.error);
    let result: Value = run.result.clone().unwrap();
    assert_eq!(result["note"]["note"]["title"], "Launch");
    assert_eq!(result["bot"]["executed"], false);

    let of_run = artifacts
        .list(
            &owner,
            &ArtifactFilter {
                task_id: Some(run.id),
                limit: None,
            },
        )
        .await
        .unwrap();
    let mut types: Vec<&str> = of_run.iter().map(|a| a.content_type.as_str()).collect();
    types.sort();
    assert_eq!(types, ["application/pdf", "application/zip"]);
    let pdf = of_run
        .iter()
        .find(|a| a.content_type == "application/pdf")
        .unwrap();
    let (_, bytes) = artifacts.get(&owner, pdf.id).await.unwrap();
    assert!(pdf_pages(&bytes)[0].contains("Corrected first page"));

    let saved = notes.list_notes(&owner, 10).await.unwrap();
    assert_eq!(saved.len(), 1);
    assert_eq!(saved[0].task_id, Some(run.id));

    let eve = Owner::from(&Subject::tenant("acme").with_user("eve"));
    assert!(artifacts
        .list(&eve, &ArtifactFilter::default())
        .await
        .unwrap()
        .is_empty());
    assert!(notes.list_notes(&eve, 10).await.unwrap().is_empty());
    let other_tenant = Owner::from(&Subject::tenant("globex").with_user("dan"));
    let e = artifacts.get(&other_tenant, pdf.id).await.unwrap_err();
    assert_eq!(e.kind(), logline_core::ErrorKind::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skills_run_as_tool_nodes_on_memory_backends() {
    skills_run_end_to_end(
        Engine::builder(),
        Arc::new(MemoryArtifactIndex::new()),
        Arc::new(MemoryNoteStore::new()),
    )
    .await;
}

fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// A schema named like the adapter's test schemas (`lltest_<secs>_<pid>_<n>`), so a stale
/// one is swept by the same rule.
fn unique_schema() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    format!(
        "lltest_{secs}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skills_run_as_tool_nodes_on_postgres() {
    let schema = unique_schema();
    let backend = PgBackend::connect(
        &PgConfig::new(database_url())
            .schema(&schema)
            .max_connections(8)
            .poll_interval(Duration::from_millis(200)),
    )
    .await
    .unwrap();
    backend.migrate().await.unwrap();
    skills_run_end_to_end(
        backend.engine_builder(),
        Arc::new(PgArtifactIndex::new(backend.pool().clone())),
        Arc::new(PgNoteStore::new(backend.pool().clone())),
    )
    .await;
    let drop = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
    backend.pool().execute(drop.as_str()).await.unwrap();
}
