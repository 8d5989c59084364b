//! Shared helpers of the integration tests: one fresh schema per test on the local server.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod cluster;
pub mod probe;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use logline_postgres::{PgBackend, PgConfig, PgQueue, PgStore};
use sqlx::{Connection, Executor, PgConnection};

/// The default local server (trust auth).
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Prefix of every schema the tests create.
pub const PREFIX: &str = "lltest_";

/// `DATABASE_URL` or the local default.
pub fn database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_string())
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A unique schema name: `lltest_<unix secs>_<pid>_<n>`.
pub fn unique_schema() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{PREFIX}{}_{}_{}",
        unix_secs(),
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Settings for a fresh schema with a fast polling fallback; group commit as
/// `LOGLINE_PG_GROUP_COMMIT` says (on when unset, as by default).
pub fn config(schema: &str) -> PgConfig {
    let config = PgConfig::new(database_url())
        .schema(schema)
        .max_connections(8)
        .poll_interval(Duration::from_millis(500));
    match logline_postgres::group_commit_from_env().expect("LOGLINE_PG_GROUP_COMMIT") {
        Some(false) => config.group_commit(None),
        _ => config,
    }
}

/// Drops test schemas left behind by test processes that are gone, or older than an hour
/// (the conformance macros give no hook to clean up after each check).
pub async fn sweep_stale_schemas() {
    let Ok(mut conn) = PgConnection::connect(&database_url()).await else {
        return;
    };
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'lltest\\_%'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap_or_default();
    let now = unix_secs();
    for name in names {
        let mut parts = name[PREFIX.len()..].split('_');
        let secs: u64 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        let pid: u32 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        let alive =
            pid == std::process::id() || std::path::Path::new(&format!("/proc/{pid}")).exists();
        if !alive || now.saturating_sub(secs) > 3600 {
            let _ = conn
                .execute(format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE").as_str())
                .await;
        }
    }
}

/// A migrated backend (store and queue) in `schema`.
pub async fn fresh_backend_in(schema: &str) -> PgBackend {
    sweep_stale_schemas().await;
    let backend = PgBackend::connect(&config(schema))
        .await
        .expect("connect (is PostgreSQL running? see logline-postgres/README.md)");
    backend.migrate().await.expect("migrate");
    backend
}

/// A migrated store in a fresh schema.
pub async fn fresh_store() -> PgStore {
    fresh_backend_in(&unique_schema()).await.store()
}

/// A migrated store in `schema`.
pub async fn fresh_store_in(schema: &str) -> PgStore {
    fresh_backend_in(schema).await.store()
}

/// A migrated queue in a fresh schema.
pub async fn fresh_queue() -> PgQueue {
    fresh_backend_in(&unique_schema()).await.queue()
}

/// Drops the schema when dropped (also when the test panics).
pub struct SchemaGuard(pub String);

impl Drop for SchemaGuard {
    fn drop(&mut self) {
        let name = self.0.clone();
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(mut conn) = PgConnection::connect(&database_url()).await {
                    let _ = conn
                        .execute(format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE").as_str())
                        .await;
                }
            });
        })
        .join();
    }
}

/// A backend in a fresh schema that is dropped with the guard.
pub async fn guarded_backend() -> (PgBackend, SchemaGuard) {
    let schema = unique_schema();
    let backend = fresh_backend_in(&schema).await;
    (backend, SchemaGuard(schema))
}

/// A store in a fresh schema that is dropped with the guard.
pub async fn guarded_store() -> (PgStore, SchemaGuard) {
    let (backend, guard) = guarded_backend().await;
    (backend.store(), guard)
}

/// A migrated backend in a fresh schema.
pub async fn fresh_backend() -> PgBackend {
    fresh_backend_in(&unique_schema()).await
}
