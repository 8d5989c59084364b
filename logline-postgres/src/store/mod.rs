//! [`PgStore`]: definitions and execution state in PostgreSQL.
//!
//! This file holds the type and its constructors; `defs` implements the definition store and
//! the policy source, `runs` the run store and retention.

mod cols;
pub(crate) mod defs;
pub(crate) mod group;
pub(crate) mod runs;
mod vectors;
pub(crate) mod writes;

use std::sync::Arc;

use logline_core::Result;
use sqlx::postgres::PgPool;
use sqlx::{Postgres, Transaction};

use crate::config::PgConfig;
use crate::db::Db;
use crate::error::db;

/// A [`logline_core::store::Store`] on PostgreSQL.
///
/// Cheap to clone (shared pool). Every checkpoint is a single statement — run update with
/// the version check, step upsert and event inserts. With group commit (on by default,
/// [`crate::PgConfig::group_commit`]) the checkpoints and ledger writes of concurrent runs
/// share one transaction and one flush (the checkpoints of distinct runs one statement);
/// each run's write stays atomic. Event sequence numbers come from the run row (`last_seq`)
/// inside that statement: unique, gap-free, in commit order.
///
/// A store and a queue on the same database are best made from one
/// [`PgBackend`](crate::PgBackend), which shares the pool and the notification listener.
#[derive(Clone)]
pub struct PgStore {
    pub(crate) db: Arc<Db>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("config", &self.db.config)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// A store on an open connection pool.
    pub(crate) fn on(db: Arc<Db>) -> Self {
        PgStore { db }
    }

    /// Opens a pool with `config`. Does not create tables: call [`PgStore::migrate`] once
    /// (with a role allowed to create them) before use.
    pub async fn connect(config: &PgConfig) -> Result<Self> {
        Ok(Self::on(Db::connect(config).await?))
    }

    /// [`PgStore::connect`] with [`PgConfig::from_env`].
    pub async fn from_env() -> Result<Self> {
        Self::connect(&PgConfig::from_env()?).await
    }

    /// Creates the schema if missing and applies the embedded migrations. Idempotent and
    /// safe to call from several processes at once.
    pub async fn migrate(&self) -> Result<()> {
        self.db.migrate().await
    }

    /// The connection pool (connections use the configured schema as `search_path`).
    pub fn pool(&self) -> &PgPool {
        &self.db.pool
    }

    /// The settings this store was opened with.
    pub fn config(&self) -> &PgConfig {
        &self.db.config
    }

    /// Executes a run-path write: through group commit when it is on, else on its own.
    pub(crate) async fn write(
        &self,
        write: writes::Write,
    ) -> std::result::Result<writes::Written, sqlx::Error> {
        if let Some(group) = &self.db.group {
            return group.submit(write).await;
        }
        let mut conn = self.db.pool.acquire().await?;
        write.execute(&mut conn).await
    }

    /// What group commit did so far (`None` when it is off).
    pub fn group_commit_stats(&self) -> Option<group::GroupCommitStats> {
        self.db.group.as_ref().map(|g| g.stats())
    }

    /// Starts a transaction for [`PgStore::create_run_in`] (and other writes the caller
    /// wants to commit with it).
    pub async fn begin(&self) -> Result<Transaction<'static, Postgres>> {
        self.db.pool.begin().await.map_err(db)
    }
}
