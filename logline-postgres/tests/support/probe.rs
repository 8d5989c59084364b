//! A side-effecting probe tool, workflows made of it, engines on PostgreSQL and worker
//! processes (the test binary re-executed on its ignored `worker_process` test).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use logline_core::engine::{Engine, WorkerOptions};
use logline_core::tool::{handler, ToolSpec};
use logline_core::workflow::{Workflow, WorkflowDefinition};
use logline_postgres::{PgBackend, PgConfig};
use serde_json::{json, Value};
use sqlx::PgPool;

/// The probe tool's id.
pub const PROBE: &str = "probe.call";

/// Tables the probe writes (in the test's schema).
pub const PROBE_TABLES: &str = "
CREATE TABLE IF NOT EXISTS tool_calls (
    id BIGSERIAL PRIMARY KEY, run_id UUID NOT NULL, node TEXT NOT NULL, idem_key TEXT NOT NULL,
    pid INTEGER NOT NULL, at TIMESTAMPTZ NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS side_effects (
    idem_key TEXT PRIMARY KEY, run_id UUID NOT NULL, node TEXT NOT NULL);";

/// Creates the probe's tables.
pub async fn create_probe_tables(pool: &PgPool) {
    sqlx::raw_sql(PROBE_TABLES).execute(pool).await.unwrap();
}

/// Registers the probe on an engine builder. Each call records itself in `tool_calls`; with
/// `"effect": true` it performs the side effect (a row in `side_effects`, deduplicated by the
/// engine's idempotency key, as an external system honouring it would) and then sleeps
/// `sleep_ms` (plus per-run jitter of up to `jitter_ms`), so a crash can land after the
/// effect and before the ledger records it.
pub fn with_probe(
    builder: logline_core::engine::EngineBuilder,
    pool: PgPool,
) -> logline_core::engine::EngineBuilder {
    // Its side effect is deduplicated by the idempotency key, so the engine may send a call
    // whose outcome it could not record again.
    let spec = ToolSpec::new(
        PROBE,
        "Records its call, maybe a side effect, then sleeps.",
        json!({"type": "object"}),
    )
    .idempotent();
    builder.tool(
        spec,
        handler(move |args: Value, ctx| {
            let pool = pool.clone();
            async move {
                let run_id = ctx.run_id.unwrap_or_default();
                let key = ctx.idempotency_key.clone().unwrap_or_default();
                let node = args["node"].as_str().unwrap_or_default().to_string();
                let map = |e: sqlx::Error| logline_core::Error::ToolFailed {
                    tool_id: PROBE.into(),
                    message: e.to_string(),
                    retryable: true,
                };
                sqlx::query(
                    "INSERT INTO tool_calls (run_id, node, idem_key, pid) VALUES ($1, $2, $3, $4)",
                )
                .bind(run_id)
                .bind(&node)
                .bind(&key)
                .bind(std::process::id() as i32)
                .execute(&pool)
                .await
                .map_err(map)?;
                if args["effect"].as_bool() == Some(true) {
                    sqlx::query(
                        "INSERT INTO side_effects (idem_key, run_id, node) VALUES ($1, $2, $3)
                         ON CONFLICT (idem_key) DO NOTHING",
                    )
                    .bind(&key)
                    .bind(run_id)
                    .bind(&node)
                    .execute(&pool)
                    .await
                    .map_err(map)?;
                }
                let base = args["sleep_ms"].as_u64().unwrap_or(0);
                let jitter = args["jitter_ms"].as_u64().unwrap_or(0);
                let extra = if jitter > 0 {
                    (run_id.as_u128() % u128::from(jitter)) as u64
                } else {
                    0
                };
                tokio::time::sleep(Duration::from_millis(base + extra)).await;
                Ok(json!({ "node": node }))
            }
        }),
    )
}

/// A linear workflow of probe calls: `(node, sleep_ms, jitter_ms, effect)`, then a static end.
pub fn probe_workflow(id: &str, nodes: &[(&str, u64, u64, bool)]) -> Workflow {
    let mut ns: Vec<Value> = nodes
        .iter()
        .map(|(n, sleep, jitter, effect)| {
            json!({"id": n, "type": "tool_node", "config": {"tool_id": PROBE,
                   "input": {"node": n, "sleep_ms": sleep, "jitter_ms": jitter, "effect": effect}}})
        })
        .collect();
    ns.push(json!({"id": "end", "type": "static", "config": {"output": {"done": true}}}));
    let names: Vec<&str> = nodes.iter().map(|n| n.0).chain(["end"]).collect();
    let edges: Vec<Value> = names
        .windows(2)
        .map(|w| json!({"from": w[0], "to": w[1]}))
        .collect();
    let def =
        WorkflowDefinition::from_json(json!({"entry": names[0], "nodes": ns, "edges": edges}))
            .unwrap();
    Workflow::new(id, id, def)
}

/// An engine on `backend` with the probe tool (no workers started).
pub async fn probe_engine(backend: &PgBackend) -> Engine {
    with_probe(backend.engine_builder(), backend.pool().clone())
        .build()
        .await
        .unwrap()
}

/// Worker options of the durability tests.
pub fn worker_options(lease: Duration, concurrency: usize) -> WorkerOptions {
    WorkerOptions {
        poll: Duration::from_millis(500),
        ..WorkerOptions::default()
    }
    .lease(lease)
    .concurrency(concurrency)
}

/// Environment of a worker process.
pub const ENV_SCHEMA: &str = "LOGLINE_TEST_WORKER_SCHEMA";
const ENV_URL: &str = "LOGLINE_TEST_WORKER_URL";
const ENV_LEASE_MS: &str = "LOGLINE_TEST_WORKER_LEASE_MS";
const ENV_CONCURRENCY: &str = "LOGLINE_TEST_WORKER_CONCURRENCY";
/// The worker process exits by itself after this long (no orphans if the parent dies).
const MAX_LIFE: Duration = Duration::from_secs(240);

/// Starts a worker process: this test binary, running only its `worker_process` test.
pub fn spawn_worker_process(url: &str, schema: &str, lease: Duration, concurrency: usize) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "worker_process",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ENV_SCHEMA, schema)
        .env(ENV_URL, url)
        .env(ENV_LEASE_MS, lease.as_millis().to_string())
        .env(ENV_CONCURRENCY, concurrency.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Body of a worker process: an engine with the probe and workers until killed.
/// Returns at once when not started by [`spawn_worker_process`].
pub fn worker_main() {
    let Ok(schema) = std::env::var(ENV_SCHEMA) else {
        return;
    };
    let url = std::env::var(ENV_URL).unwrap();
    let lease = Duration::from_millis(std::env::var(ENV_LEASE_MS).unwrap().parse().unwrap());
    let concurrency: usize = std::env::var(ENV_CONCURRENCY).unwrap().parse().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let config = PgConfig::new(url)
            .schema(schema)
            .max_connections(8)
            .poll_interval(Duration::from_millis(500));
        let backend = PgBackend::connect(&config).await.unwrap();
        let engine = probe_engine(&backend).await;
        let _pool = engine.spawn_workers(worker_options(lease, concurrency));
        tokio::time::sleep(MAX_LIFE).await;
    });
}

/// Kills every child on drop (a failing test leaves no workers behind).
pub struct Children(pub Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
