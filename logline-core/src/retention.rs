//! Retention: finished runs and completed jobs leave the store after a set age, and expired
//! agent memory items leave their [`RecallStore`] ([`RetentionJob::purging_memory`]; without
//! a queue, [`crate::recall::MemoryPurge`] runs the same purge on a timer).
//!
//! Without it every run, its steps, events and effects, and every job record stay forever —
//! in a database, or in process memory for the in-memory backends. A [`RetentionJob`] runs on
//! the queue like any other job ([`RETENTION_QUEUE`]): each pass deletes in bounded batches
//! (short statements, no long locks), stops after [`RetentionPolicy::max_batches`] per kind
//! so one pass stays bounded, and schedules the next pass one interval later, in a time slot
//! every process computes alike (the idempotency key), so many workers schedule one pass.
//! Only terminal runs and completed jobs are touched: queued, running, paused and
//! dead-lettered work stays.
//!
//! ```
//! # use std::time::Duration;
//! # use logline_core::engine::{Engine, WorkerOptions};
//! # use logline_core::retention::RetentionPolicy;
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let engine = Engine::builder().build().await?;
//! let policy = RetentionPolicy {
//!     runs: Some(Duration::from_secs(30 * 24 * 3600)),
//!     ..RetentionPolicy::default()
//! };
//! let retention = engine.spawn_retention(policy, WorkerOptions::default()).await?;
//! // ... serve ...
//! retention.shutdown().await;
//! # Ok::<(), logline_core::Error>(()) }).unwrap();
//! ```

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::queue::{slot_start, Job, JobHandler, JobId, NewJob, Queue};
use crate::queue::{spawn_worker, WorkerOptions, WorkerPool};
use crate::recall::RecallStore;
use crate::store::RunStore;

/// Queue of retention passes.
pub const RETENTION_QUEUE: &str = "logline.retention";

/// What is kept, and how the deletion is paced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetentionPolicy {
    /// Terminal runs (with their steps, events and effects) go this long after their last
    /// update; `None` keeps them.
    pub runs: Option<Duration>,
    /// Completed jobs go this long after they finished; `None` keeps them.
    pub jobs: Option<Duration>,
    /// Rows per delete statement.
    pub batch: u64,
    /// Statements per kind and pass at most; the rest waits for the next pass.
    pub max_batches: u32,
    /// Time between passes.
    pub every: Duration,
}

impl Default for RetentionPolicy {
    /// Runs kept 30 days, completed jobs 7 days; batches of 1,000, at most 100 per pass;
    /// one pass an hour.
    fn default() -> Self {
        RetentionPolicy {
            runs: Some(Duration::from_secs(30 * 24 * 3600)),
            jobs: Some(Duration::from_secs(7 * 24 * 3600)),
            batch: 1000,
            max_batches: 100,
            every: Duration::from_secs(3600),
        }
    }
}

/// How finished runs leave the store: deleted ([`PurgeRuns`], the default) or, for
/// backends that offer it, archived first.
#[async_trait]
pub trait RunRetirement: Send + Sync {
    /// Removes up to `limit` terminal runs last updated before `cutoff`; returns how many.
    async fn retire_runs(&self, cutoff: DateTime<Utc>, limit: u64) -> Result<u64>;
}

/// Deletes finished runs with [`RunStore::purge_runs`].
pub struct PurgeRuns<S: RunStore + ?Sized>(pub Arc<S>);

#[async_trait]
impl<S: RunStore + ?Sized> RunRetirement for PurgeRuns<S> {
    async fn retire_runs(&self, cutoff: DateTime<Utc>, limit: u64) -> Result<u64> {
        self.0.purge_runs(cutoff, limit).await
    }
}

/// What one pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Runs deleted (or archived).
    pub runs: u64,
    /// Completed jobs deleted.
    pub jobs: u64,
    /// Expired memory items deleted.
    pub memory: u64,
    /// Whether the pass stopped at [`RetentionPolicy::max_batches`] with rows left.
    pub truncated: bool,
}

/// The retention pass, runnable directly ([`RetentionJob::run_once`]) or as the handler of
/// [`RETENTION_QUEUE`] jobs.
pub struct RetentionJob {
    runs: Arc<dyn RunRetirement>,
    queue: Arc<dyn Queue>,
    recall: Option<Arc<dyn RecallStore>>,
    policy: RetentionPolicy,
}

impl std::fmt::Debug for RetentionJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetentionJob")
            .field("policy", &self.policy)
            .finish()
    }
}

impl RetentionJob {
    /// Retention of `store`'s runs and `queue`'s jobs under `policy`.
    pub fn new<S: RunStore + ?Sized + 'static>(
        store: Arc<S>,
        queue: Arc<dyn Queue>,
        policy: RetentionPolicy,
    ) -> Self {
        RetentionJob {
            runs: Arc::new(PurgeRuns(store)),
            queue,
            recall: None,
            policy,
        }
    }

    /// Each pass also deletes the agent memory items of `recall` that have expired.
    pub fn purging_memory(mut self, recall: Arc<dyn RecallStore>) -> Self {
        self.recall = Some(recall);
        self
    }

    /// Retires runs with `runs` instead of deleting them (e.g. an archiving backend).
    pub fn retiring_runs_with(mut self, runs: Arc<dyn RunRetirement>) -> Self {
        self.runs = runs;
        self
    }

    /// The policy.
    pub fn policy(&self) -> &RetentionPolicy {
        &self.policy
    }

    /// Every duration of the policy fits the calendar arithmetic (`Duration::MAX` does not).
    fn validate(&self) -> Result<()> {
        let p = &self.policy;
        for d in [Some(p.every), p.runs, p.jobs].into_iter().flatten() {
            to_chrono(d)?;
        }
        Ok(())
    }

    /// One pass: old runs, old completed jobs, then expired memory items, in batches; stops
    /// early on `cancel`.
    pub async fn run_once(&self, cancel: &CancellationToken) -> Result<RetentionReport> {
        let now = Utc::now();
        let mut report = RetentionReport::default();
        if let Some(keep) = self.policy.runs {
            let (n, more) = self
                .drain(cutoff(now, keep)?, cancel, |cutoff, limit| {
                    self.runs.retire_runs(cutoff, limit)
                })
                .await?;
            report.runs = n;
            report.truncated |= more;
        }
        if let Some(keep) = self.policy.jobs {
            let (n, more) = self
                .drain(cutoff(now, keep)?, cancel, |cutoff, limit| {
                    self.queue.purge_completed(cutoff, limit)
                })
                .await?;
            report.jobs = n;
            report.truncated |= more;
        }
        if let Some(recall) = &self.recall {
            let (n, more) = self
                .drain(now, cancel, |now, limit| recall.purge_expired(now, limit))
                .await?;
            report.memory = n;
            report.truncated |= more;
        }
        Ok(report)
    }

    async fn drain<'a, F, Fut>(
        &'a self,
        cutoff: DateTime<Utc>,
        cancel: &CancellationToken,
        delete: F,
    ) -> Result<(u64, bool)>
    where
        F: Fn(DateTime<Utc>, u64) -> Fut,
        Fut: std::future::Future<Output = Result<u64>> + 'a,
    {
        drain_batches(
            self.policy.batch,
            self.policy.max_batches,
            cancel,
            |limit| delete(cutoff, limit),
        )
        .await
    }

    /// Enqueues the pass of the current time slot (runs now); passes already scheduled for
    /// the slot by other processes are the same job.
    pub async fn schedule_now(&self) -> Result<JobId> {
        self.validate()?;
        let now = Utc::now();
        let slot = slot_start(now, self.policy.every);
        self.queue.enqueue(pass_job(slot, now)).await
    }

    /// Schedules the first pass and starts a worker pool on [`RETENTION_QUEUE`].
    pub async fn spawn(self: Arc<Self>, options: WorkerOptions) -> Result<WorkerPool> {
        self.schedule_now().await?;
        let queue = self.queue.clone();
        Ok(spawn_worker(queue, RETENTION_QUEUE, self, options))
    }
}

#[async_trait]
impl JobHandler for RetentionJob {
    async fn handle(&self, job: &Job, cancel: CancellationToken) -> Result<()> {
        let report = self.run_once(&cancel).await?;
        tracing::info!(
            runs = report.runs,
            jobs = report.jobs,
            memory = report.memory,
            truncated = report.truncated,
            job = %job.id,
            "retention pass done"
        );
        let next = slot_start(Utc::now(), self.policy.every) + to_chrono(self.policy.every)?;
        self.queue.enqueue(pass_job(next, next)).await?;
        Ok(())
    }
}

/// Calls `delete(batch)` until a batch comes back short, `max_batches` ran, or `cancel`
/// fires; returns the rows deleted and whether rows may be left.
pub(crate) async fn drain_batches<F, Fut>(
    batch: u64,
    max_batches: u32,
    cancel: &CancellationToken,
    delete: F,
) -> Result<(u64, bool)>
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = Result<u64>>,
{
    let batch = batch.max(1);
    let mut total = 0;
    for _ in 0..max_batches.max(1) {
        if cancel.is_cancelled() {
            return Ok((total, true));
        }
        let n = delete(batch).await?;
        total += n;
        if n < batch {
            return Ok((total, false));
        }
    }
    Ok((total, true))
}

/// The pass of the slot starting at `slot`, eligible at `at`.
fn pass_job(slot: DateTime<Utc>, at: DateTime<Utc>) -> NewJob {
    NewJob::new(RETENTION_QUEUE, serde_json::json!({}))
        .idempotency_key(format!("logline-retention:{}", slot.timestamp()))
        .run_at(at)
        .max_attempts(3)
}

fn cutoff(now: DateTime<Utc>, keep: Duration) -> Result<DateTime<Utc>> {
    Ok(now - to_chrono(keep)?)
}

fn to_chrono(d: Duration) -> Result<chrono::Duration> {
    chrono::Duration::from_std(d)
        .map_err(|_| Error::InvalidInput(format!("retention: duration {d:?} is out of range")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_aligned_and_shared() {
        let every = Duration::from_secs(3600);
        let a = DateTime::from_timestamp(7_200 + 5, 0).unwrap();
        let b = DateTime::from_timestamp(7_200 + 3_599, 0).unwrap();
        assert_eq!(slot_start(a, every), slot_start(b, every));
        assert_eq!(slot_start(a, every).timestamp(), 7_200);
        assert_eq!(
            pass_job(slot_start(a, every), a).idempotency_key,
            pass_job(slot_start(b, every), b).idempotency_key
        );
        // A zero interval does not divide by zero.
        assert_eq!(slot_start(a, Duration::ZERO), a);
    }

    #[tokio::test]
    async fn out_of_range_durations_are_errors() {
        assert!(cutoff(Utc::now(), Duration::MAX).is_err());
        let job = RetentionJob::new(
            Arc::new(crate::memory::MemoryStore::new()),
            Arc::new(crate::memory::MemoryQueue::new()),
            RetentionPolicy {
                runs: Some(Duration::MAX),
                ..RetentionPolicy::default()
            },
        );
        let e = job.schedule_now().await.unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidInput);
    }
}
