//! [`PgBackend`]: one connection pool, schema and notification listener, from which the
//! store and the queue are made, and the engine's atomic run + job creation.

use std::sync::Arc;

use async_trait::async_trait;
use logline_core::engine::{Engine, EngineBuilder, RunStarter};
use logline_core::event::NewEvent;
use logline_core::queue::{JobId, NewJob};
use logline_core::run::Run;
use logline_core::store::Committed;
use logline_core::Result;
use sqlx::postgres::PgPool;
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use crate::apps::PgAppStore;
use crate::codec::storable;
use crate::config::PgConfig;
use crate::db::Db;
use crate::error::db;
use crate::queue::PgQueue;
use crate::recall::PgRecallStore;
use crate::store::runs::create_run_with_job;
use crate::store::PgStore;

/// LogLine's state in one PostgreSQL schema: a [`PgStore`] and a [`PgQueue`] that share one
/// pool and one notification listener, and run creation that enqueues the run's job in the
/// same transaction.
///
/// Cheap to clone; open one per process and schema.
#[derive(Clone)]
pub struct PgBackend {
    db: Arc<Db>,
}

impl std::fmt::Debug for PgBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgBackend")
            .field("config", &self.db.config)
            .finish_non_exhaustive()
    }
}

impl PgBackend {
    /// Opens a pool with `config`. Does not create tables: call [`PgBackend::migrate`] once
    /// (with a role allowed to create them) before use.
    pub async fn connect(config: &PgConfig) -> Result<Self> {
        Ok(PgBackend {
            db: Db::connect(config).await?,
        })
    }

    /// [`PgBackend::connect`] with [`PgConfig::from_env`].
    pub async fn from_env() -> Result<Self> {
        Self::connect(&PgConfig::from_env()?).await
    }

    /// Creates the schema if missing and applies the embedded migrations. Idempotent and
    /// safe to call from several processes at once.
    pub async fn migrate(&self) -> Result<()> {
        self.db.migrate().await
    }

    /// The store on this pool.
    pub fn store(&self) -> PgStore {
        PgStore::on(Arc::clone(&self.db))
    }

    /// The chat store on this pool.
    pub fn chat_store(&self) -> crate::PgChatStore {
        crate::PgChatStore::on(Arc::clone(&self.db))
    }

    /// The queue on this pool and listener.
    pub fn queue(&self) -> PgQueue {
        PgQueue::on(Arc::clone(&self.db))
    }

    /// The app store on this pool.
    pub fn apps(&self) -> PgAppStore {
        PgAppStore::on(Arc::clone(&self.db))
    }

    /// The agent memory store on this pool.
    pub fn recall_store(&self) -> PgRecallStore {
        PgRecallStore::on(Arc::clone(&self.db))
    }

    /// The connection pool (connections use the configured schema as `search_path`).
    pub fn pool(&self) -> &PgPool {
        &self.db.pool
    }

    /// The settings this backend was opened with.
    pub fn config(&self) -> &PgConfig {
        &self.db.config
    }

    /// Starts a transaction for [`PgStore::create_run_in`] and [`PgQueue::enqueue_in`].
    pub async fn begin(&self) -> Result<Transaction<'static, Postgres>> {
        self.store().begin().await
    }

    /// Creates a run and enqueues its job atomically: either both exist or neither. One
    /// statement (one round trip) in the common case. Returns the run's first commit and the
    /// job id (an existing live job's id when the idempotency key is taken).
    pub async fn create_run_with_job(
        &self,
        run: &Run,
        events: &[NewEvent],
        mut job: NewJob,
    ) -> Result<(Committed, JobId)> {
        let queue = self.queue();
        let queue_name = job.queue.clone();
        job.payload = storable(std::mem::take(&mut job.payload));
        let id = Uuid::now_v7();
        let mut conn = self.db.pool.acquire().await.map_err(db)?;
        let channel = self.db.hub.job_channel();
        let (committed, inserted) =
            create_run_with_job(&mut conn, run, events, &job, id, channel).await?;
        let (id, inserted) = if inserted {
            (id, true)
        } else {
            // A live job holds the key: its id (or a new job when it finished meanwhile).
            queue.enqueue_in_tx(&mut conn, job).await?
        };
        if inserted {
            queue.wake(&queue_name);
        }
        Ok((committed, id))
    }

    /// An engine builder on this backend's store, queue and app store, with atomic run + job
    /// creation.
    pub fn engine_builder(&self) -> EngineBuilder {
        Engine::builder()
            .store(Arc::new(self.store()))
            .app_store(Arc::new(self.apps()))
            .queue(Arc::new(self.queue()))
            .run_starter(Arc::new(self.clone()))
    }
}

#[async_trait]
impl RunStarter for PgBackend {
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
