//! Creating a run together with the job that executes it.

use std::sync::Arc;

use async_trait::async_trait;

use crate::error::Result;
use crate::event::NewEvent;
use crate::queue::{JobId, NewJob, Queue};
use crate::run::Run;
use crate::store::{Committed, Store};

/// Records a new run and enqueues its first job.
///
/// Backends whose store and queue share a database implement it with one transaction, so a
/// run never exists without its job (e.g. `logline_postgres::PgStore`); the default
/// [`StoreThenQueue`] writes the run, then enqueues.
#[async_trait]
pub trait RunStarter: Send + Sync {
    /// Creates `run` with `events` and enqueues `job`.
    async fn create_run_and_enqueue(
        &self,
        run: &Run,
        events: &[NewEvent],
        job: NewJob,
    ) -> Result<(Committed, JobId)>;
}

/// The default [`RunStarter`]: `store.create_run`, then `queue.enqueue`.
pub struct StoreThenQueue {
    /// Store.
    pub store: Arc<dyn Store>,
    /// Queue.
    pub queue: Arc<dyn Queue>,
}

#[async_trait]
impl RunStarter for StoreThenQueue {
    async fn create_run_and_enqueue(
        &self,
        run: &Run,
        events: &[NewEvent],
        job: NewJob,
    ) -> Result<(Committed, JobId)> {
        let committed = self.store.create_run(run, events).await?;
        let id = self.queue.enqueue(job).await?;
        Ok((committed, id))
    }
}
