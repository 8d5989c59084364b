//! Side-effecting probe tools, workflows made of them, engines on PostgreSQL and worker
//! processes (the test binary re-executed on its ignored `worker_process` test).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use logline_core::engine::{Engine, WorkerOptions};
use logline_core::tool::{handler, ToolContext, ToolSpec};
use logline_core::workflow::{Workflow, WorkflowDefinition};
use logline_postgres::{PgBackend, PgConfig};
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

/// The probe tool's id: its side effect is deduplicated by the idempotency key.
pub const PROBE: &str = "probe.call";

/// The raw probe's id: not idempotent, every execution is a side effect of its own.
pub const RAW: &str = "probe.raw";

/// Tables the probe writes (in the test's schema).
pub const PROBE_TABLES: &str = "
CREATE TABLE IF NOT EXISTS tool_calls (
    id BIGSERIAL PRIMARY KEY, run_id UUID NOT NULL, node TEXT NOT NULL, idem_key TEXT NOT NULL,
    pid INTEGER NOT NULL, at TIMESTAMPTZ NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS side_effects (
    idem_key TEXT PRIMARY KEY, run_id UUID NOT NULL, node TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS raw_effects (
    id BIGSERIAL PRIMARY KEY, run_id UUID NOT NULL, node TEXT NOT NULL, idem_key TEXT NOT NULL,
    pid INTEGER NOT NULL, at TIMESTAMPTZ NOT NULL DEFAULT now());";

/// Creates the probe's tables.
pub async fn create_probe_tables(pool: &PgPool) {
    sqlx::raw_sql(PROBE_TABLES).execute(pool).await.unwrap();
}

/// Registers both probes on an engine builder; they write through `pool` (the "remote
/// system", which may be another pool than the engine's).
///
/// Each call records itself in `tool_calls`. [`PROBE`] with `"effect": true` performs the
/// side effect as an external system honouring idempotency keys would (a row in
/// `side_effects`, deduplicated by the key); [`RAW`] performs one that nothing deduplicates
/// (a row in `raw_effects` per execution). Then both sleep `sleep_ms` (plus per-run jitter of
/// up to `jitter_ms`), so a crash can land after the effect and before the ledger records
/// it. With `"slow": {"per_mille": p, "ms": m}` a call sleeps `m` more with probability
/// p/1000 — per call, or, with `"per_run": true`, for the same runs every time.
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
    let raw = ToolSpec::new(
        RAW,
        "Records its call and a side effect nothing deduplicates, then sleeps.",
        json!({"type": "object"}),
    );
    let raw_pool = pool.clone();
    builder
        .tool(
            spec,
            handler(move |args: Value, ctx| probe_call(pool.clone(), PROBE, args, ctx)),
        )
        .tool(
            raw,
            handler(move |args: Value, ctx| probe_call(raw_pool.clone(), RAW, args, ctx)),
        )
}

/// One execution of a probe tool.
async fn probe_call(
    pool: PgPool,
    tool: &'static str,
    args: Value,
    ctx: ToolContext,
) -> logline_core::Result<Value> {
    let run_id = ctx.run_id.unwrap_or_default();
    let key = ctx.idempotency_key.clone().unwrap_or_default();
    let node = args["node"].as_str().unwrap_or_default().to_string();
    let pid = std::process::id() as i32;
    let map = |e: sqlx::Error| logline_core::Error::ToolFailed {
        tool_id: tool.into(),
        message: e.to_string(),
        retryable: true,
    };
    sqlx::query("INSERT INTO tool_calls (run_id, node, idem_key, pid) VALUES ($1, $2, $3, $4)")
        .bind(run_id)
        .bind(&node)
        .bind(&key)
        .bind(pid)
        .execute(&pool)
        .await
        .map_err(map)?;
    if tool == RAW {
        sqlx::query(
            "INSERT INTO raw_effects (run_id, node, idem_key, pid) VALUES ($1, $2, $3, $4)",
        )
        .bind(run_id)
        .bind(&node)
        .bind(&key)
        .bind(pid)
        .execute(&pool)
        .await
        .map_err(map)?;
    } else if args["effect"].as_bool() == Some(true) {
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
    tokio::time::sleep(Duration::from_millis(
        base + extra + slow_ms(&args["slow"], run_id),
    ))
    .await;
    Ok(json!({ "node": node }))
}

/// The extra delay of a slow answer (see [`with_probe`]).
fn slow_ms(slow: &Value, run_id: Uuid) -> u64 {
    let roll = if slow["per_run"].as_bool().unwrap_or(false) {
        mix(run_id)
    } else {
        Uuid::new_v4().as_u128()
    };
    if roll % 1000 < u128::from(slow["per_mille"].as_u64().unwrap_or(0)) {
        slow["ms"].as_u64().unwrap_or(0)
    } else {
        0
    }
}

/// Whether `run_id` is one of the runs a `per_run` slow setting always answers slowly.
pub fn is_slow(slow: &Value, run_id: Uuid) -> bool {
    slow["per_run"].as_bool().unwrap_or(false) && slow_ms(slow, run_id) > 0
}

/// A hash of the run id (its low bits are not all random in every UUID version).
fn mix(run_id: Uuid) -> u128 {
    let (hi, lo) = run_id.as_u64_pair();
    u128::from((hi ^ lo.rotate_left(29)).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 11)
}

/// A linear workflow of probe calls: `(node, sleep_ms, jitter_ms, effect)`, then a static end.
pub fn probe_workflow(id: &str, nodes: &[(&str, u64, u64, bool)]) -> Workflow {
    let ns = nodes
        .iter()
        .map(|(n, sleep, jitter, effect)| {
            json!({"id": n, "type": "tool_node", "config": {"tool_id": PROBE,
                   "input": {"node": n, "sleep_ms": sleep, "jitter_ms": jitter, "effect": effect}}})
        })
        .collect();
    linear_workflow(id, ns)
}

/// A linear workflow of the given nodes (JSON, each with an `id`), then a static end.
pub fn linear_workflow(id: &str, mut nodes: Vec<Value>) -> Workflow {
    let mut names: Vec<String> = nodes
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_string())
        .collect();
    names.push("end".into());
    nodes.push(json!({"id": "end", "type": "static", "config": {"output": {"done": true}}}));
    let edges: Vec<Value> = names
        .windows(2)
        .map(|w| json!({"from": w[0], "to": w[1]}))
        .collect();
    let def =
        WorkflowDefinition::from_json(json!({"entry": names[0], "nodes": nodes, "edges": edges}))
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

/// `application_name` of the engine connections of the worker processes working on `schema`.
pub fn worker_app_name(schema: &str) -> String {
    format!("llw-{schema}")
}

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
        let config = PgConfig::new(&url)
            .schema(&schema)
            .max_connections(8)
            .poll_interval(Duration::from_millis(500))
            .application_name(worker_app_name(&schema));
        let backend = PgBackend::connect(&config).await.unwrap();
        // The probes stand for remote systems: their own connections, which the tests that
        // terminate the engine's connections leave alone.
        let remote = PgConfig::new(&url)
            .schema(&schema)
            .max_connections(4)
            .application_name(format!("llp-{schema}"));
        let remote = PgBackend::connect(&remote).await.unwrap();
        let engine = with_probe(backend.engine_builder(), remote.pool().clone())
            .build()
            .await
            .unwrap();
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
