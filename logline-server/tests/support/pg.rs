//! Fresh PostgreSQL schemas for the server's tests (`llsrv_<secs>_<pid>_<n>`); schemas of
//! test processes that are gone are dropped first.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use logline_postgres::{PgBackend, PgConfig};
use sqlx::{Connection, Executor, PgConnection};

const PREFIX: &str = "llsrv_";

pub fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub fn unique_schema() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{PREFIX}{}_{}_{}",
        unix_secs(),
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

async fn sweep() {
    let Ok(mut conn) = PgConnection::connect(&database_url()).await else {
        return;
    };
    let names: Vec<String> =
        sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'llsrv\\_%'")
            .fetch_all(&mut conn)
            .await
            .unwrap_or_default();
    for name in names {
        let pid: u32 = name[PREFIX.len()..]
            .split('_')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = conn
                .execute(format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE").as_str())
                .await;
        }
    }
}

pub fn config(schema: &str) -> PgConfig {
    PgConfig::new(database_url())
        .schema(schema)
        .max_connections(8)
        .poll_interval(Duration::from_millis(200))
}

/// A migrated backend in a new schema.
pub async fn fresh_backend() -> (PgBackend, String) {
    sweep().await;
    let schema = unique_schema();
    let backend = PgBackend::connect(&config(&schema)).await.unwrap();
    backend.migrate().await.unwrap();
    (backend, schema)
}
