//! [`PgStore`]: definitions and execution state in PostgreSQL.

mod defs;
mod runs;

pub use runs::ArchiveRuns;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use logline_core::event::NewEvent;
use logline_core::policy::{Policy, PolicySource};
use logline_core::queue::{JobId, NewJob};
use logline_core::run::Run;
use logline_core::store::Committed;
use logline_core::Result;
use sqlx::postgres::{PgConnection, PgPool};
use sqlx::{Postgres, Transaction};

use crate::config::PgConfig;
use crate::db::Db;
use crate::error::db;
use crate::queue::{self, PgQueue};

/// A [`logline_core::store::Store`] on PostgreSQL.
///
/// Cheap to clone (shared pool). Every checkpoint is a single statement — run update with
/// the version check, step upsert and event inserts — so it is one transaction and one
/// round trip. Event sequence numbers come from the run row (`last_seq`) inside that
/// statement: unique, gap-free, in commit order.
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
    /// Opens a pool with `config`. Does not create tables: call [`PgStore::migrate`] once
    /// (with a role allowed to create them) before use.
    pub async fn connect(config: &PgConfig) -> Result<Self> {
        Ok(PgStore {
            db: Db::connect(config).await?,
        })
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

    /// The queue on the same pool, schema and notification listener.
    pub fn queue(&self) -> PgQueue {
        PgQueue {
            db: Arc::clone(&self.db),
        }
    }

    /// The connection pool (connections use the configured schema as `search_path`).
    pub fn pool(&self) -> &PgPool {
        &self.db.pool
    }

    /// The settings this store was opened with.
    pub fn config(&self) -> &PgConfig {
        &self.db.config
    }

    /// Starts a transaction for [`PgStore::create_run_in`] and [`PgQueue::enqueue_in`].
    pub async fn begin(&self) -> Result<Transaction<'static, Postgres>> {
        self.db.pool.begin().await.map_err(db)
    }

    /// [`logline_core::store::RunStore::create_run`] inside the caller's transaction: the
    /// run exists only if the transaction commits.
    pub async fn create_run_in(
        &self,
        conn: &mut PgConnection,
        run: &Run,
        events: &[NewEvent],
    ) -> Result<Committed> {
        runs::create_run(conn, run, events).await
    }

    /// Creates a run and enqueues its job in one transaction: either both exist or
    /// neither. Returns the run's first commit and the job id (an existing live job's id
    /// when the idempotency key is taken).
    pub async fn create_run_with_job(
        &self,
        run: &Run,
        events: &[NewEvent],
        job: NewJob,
    ) -> Result<(Committed, JobId)> {
        let queue_name = job.queue.clone();
        let mut tx = self.begin().await?;
        let committed = runs::create_run(&mut tx, run, events).await?;
        let (id, inserted) =
            queue::enqueue_on(&mut tx, self.db.hub.job_channel(), job, true).await?;
        tx.commit().await.map_err(db)?;
        if inserted {
            self.db.hub.queue_changed(&queue_name);
        }
        Ok((committed, id))
    }
}

impl PgStore {
    /// An engine builder on this store, its queue, and atomic run + job creation.
    pub fn engine_builder(&self) -> logline_core::engine::EngineBuilder {
        logline_core::engine::Engine::builder()
            .store(Arc::new(self.clone()))
            .queue(Arc::new(self.queue()))
            .run_starter(Arc::new(self.clone()))
    }
}

#[async_trait]
impl logline_core::engine::RunStarter for PgStore {
    /// One transaction: the run, its first events and its job.
    async fn create_run_and_enqueue(
        &self,
        run: &Run,
        events: &[NewEvent],
        job: NewJob,
    ) -> Result<(Committed, JobId)> {
        self.create_run_with_job(run, events, job).await
    }
}

#[async_trait]
impl PolicySource for PgStore {
    /// Enabled policies ordered by id, cached for [`PgConfig::policy_cache_ttl`] (writes
    /// through this store invalidate the cache at once).
    async fn policies(&self) -> Result<Arc<Vec<Policy>>> {
        let ttl = self.db.config.policy_cache_ttl;
        // The cache is one `Option` replaced whole, so a poisoned lock still holds a
        // consistent value.
        let cache = || {
            self.db
                .policy_cache
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        let cached = cache()
            .as_ref()
            .filter(|(at, _)| at.elapsed() < ttl)
            .map(|(_, list)| Arc::clone(list));
        if let Some(list) = cached {
            return Ok(list);
        }
        let generation = self.db.policy_gen.load(Ordering::SeqCst);
        let list = Arc::new(defs::enabled_policies(&self.db.pool).await?);
        // Checked under the lock: an invalidation in between clears after us.
        let mut c = cache();
        if self.db.policy_gen.load(Ordering::SeqCst) == generation {
            *c = Some((Instant::now(), Arc::clone(&list)));
        }
        Ok(list)
    }
}
