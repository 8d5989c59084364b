//! The state a [`crate::PgStore`] and a [`crate::PgQueue`] made from one [`crate::PgBackend`]
//! share: pool, settings, wake-up hub.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use logline_core::policy::Policy;
use logline_core::Result;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgPool;

use crate::config::PgConfig;
use crate::error::{db, is_unique_violation, PgError};
use crate::notify::Hub;
use crate::store::group::GroupWriter;

/// The embedded migrations (`logline-postgres/migrations`).
pub(crate) static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// One connection pool on one schema.
pub(crate) struct Db {
    pub(crate) pool: PgPool,
    pub(crate) config: PgConfig,
    pub(crate) hub: Arc<Hub>,
    pub(crate) policy_cache: Mutex<Option<(Instant, Arc<Vec<Policy>>)>>,
    /// Bumped by every policy write; a list read before a write is not cached after it.
    pub(crate) policy_gen: AtomicU64,
    /// The group-commit queue (`None` when off).
    pub(crate) group: Option<GroupWriter>,
}

impl Db {
    pub(crate) async fn connect(config: &PgConfig) -> Result<Arc<Db>> {
        let pool = config.connect_pool().await?;
        let group = match config.group_commit {
            Some(settings) => {
                let writers = config.connect_writer_pool(settings.writers_of())?;
                Some(GroupWriter::new(pool.clone(), writers, settings))
            }
            None => None,
        };
        Ok(Arc::new(Db {
            group,
            hub: Hub::new(config.clone()),
            pool,
            config: config.clone(),
            policy_cache: Mutex::new(None),
            policy_gen: AtomicU64::new(0),
        }))
    }

    /// Creates the schema if needed and applies pending migrations (idempotent; concurrent
    /// callers serialize on sqlx's migration lock).
    pub(crate) async fn migrate(&self) -> Result<()> {
        let schema = &self.config.schema;
        // The name was validated ([a-z_][a-z0-9_]*), so quoting it is safe.
        let create = format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"");
        if let Err(e) = sqlx::query(&create).execute(&self.pool).await {
            // Two processes creating the schema at once: the loser sees a unique violation.
            if !is_unique_violation(&e) {
                return Err(db(e));
            }
        }
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|e| PgError::Migrate(e).into())
    }

    /// Forgets the cached policy list.
    pub(crate) fn invalidate_policies(&self) {
        self.policy_gen.fetch_add(1, Ordering::SeqCst);
        // A poisoned cache is still cleared: skipping would keep a stale list.
        *self
            .policy_cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }
}
