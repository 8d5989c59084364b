//! The orphan sweeper: re-enqueues runs left `pending` or `running` without a job.
//!
//! A run can lose its job: `approve` commits the resumed run and then enqueues separately,
//! [`super::StoreThenQueue`] creates the run and then enqueues, a dead-letter hook may fail
//! to fail the run. A sweep finds runs that are pending or running, unchanged for longer
//! than a grace period, with no live job (queued or running, at any run version), and
//! enqueues the run's job at its current version. The job's idempotency key
//! (`run:{id}:{version}`) makes sweeps of many processes enqueue one job.
//!
//! [`Engine::spawn_sweeper`] runs sweeps as a self-rescheduling job on [`SWEEP_QUEUE`]
//! (one pass per time slot, like [`crate::retention`]); [`Engine::sweep_orphans`] runs one.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::exec::Executor;
use super::job::run_job;
use super::{Engine, RUN_QUEUE};
use crate::error::{Error, Result};
use crate::queue::{slot_start, spawn_worker, Job, JobHandler, NewJob, Queue};
use crate::queue::{WorkerOptions, WorkerPool};
use crate::run::{Run, RunStatus};
use crate::store::{Page, RunFilter};

/// Queue of sweep passes.
pub const SWEEP_QUEUE: &str = "logline.sweep";

/// How often sweeps run and which runs they consider orphaned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepPolicy {
    /// A run must be unchanged this long before it counts as orphaned (covers the moment
    /// between a commit and its enqueue).
    pub grace: Duration,
    /// Time between passes.
    pub every: Duration,
    /// Runs read per page.
    pub page: u64,
}

impl Default for SweepPolicy {
    /// Grace 1 minute, one pass a minute, pages of 500 runs.
    fn default() -> Self {
        SweepPolicy {
            grace: Duration::from_secs(60),
            every: Duration::from_secs(60),
            page: 500,
        }
    }
}

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Pending or running runs older than the grace period.
    pub stale: u64,
    /// Of those, runs without a live job, enqueued again.
    pub requeued: u64,
}

/// One sweep over the engine's store and queue.
struct Sweeper {
    exec: Arc<Executor>,
    queue: Arc<dyn Queue>,
    policy: SweepPolicy,
}

impl Sweeper {
    async fn run_once(&self, cancel: &CancellationToken) -> Result<SweepReport> {
        let grace = chrono::Duration::from_std(self.policy.grace)
            .map_err(|_| Error::InvalidInput("sweep grace is out of range".into()))?;
        let cutoff = Utc::now() - grace;
        let mut report = SweepReport::default();
        for status in [RunStatus::Pending, RunStatus::Running] {
            let mut offset = 0;
            loop {
                if cancel.is_cancelled() {
                    return Ok(report);
                }
                let filter = RunFilter {
                    status: Some(status),
                    page: Page {
                        offset,
                        limit: self.policy.page.max(1),
                    },
                    ..RunFilter::default()
                };
                let runs = self.exec.store.list_runs(&filter).await?;
                let full = runs.len() as u64 >= filter.page.limit;
                offset += runs.len() as u64;
                let stale: Vec<Run> = runs.into_iter().filter(|r| r.updated_at < cutoff).collect();
                report.stale += stale.len() as u64;
                report.requeued += self.requeue_orphans(stale).await?;
                if !full {
                    break;
                }
            }
        }
        Ok(report)
    }

    /// Enqueues the job of every run of `stale` that has no live job; returns how many.
    async fn requeue_orphans(&self, stale: Vec<Run>) -> Result<u64> {
        if stale.is_empty() {
            return Ok(0);
        }
        let prefixes: Vec<String> = stale.iter().map(job_key_prefix).collect();
        let live = self.queue.live_key_prefixes(RUN_QUEUE, &prefixes).await?;
        let mut requeued = 0;
        for (run, prefix) in stale.iter().zip(&prefixes) {
            if live.contains(prefix) {
                continue;
            }
            let attempts = self.exec.config.run_job_attempts;
            self.queue
                .enqueue(run_job(run, run.version, attempts))
                .await?;
            tracing::warn!(run = %run.id, status = run.status.as_str(), "re-enqueued an orphaned run");
            requeued += 1;
        }
        Ok(requeued)
    }
}

/// The start of every idempotency key of a run's jobs (`run:{id}:`).
fn job_key_prefix(run: &Run) -> String {
    format!("run:{}:", run.id)
}

/// The pass of the slot starting at `slot`, eligible at `at`.
fn pass_job(slot: chrono::DateTime<Utc>, at: chrono::DateTime<Utc>) -> NewJob {
    NewJob::new(SWEEP_QUEUE, serde_json::json!({}))
        .idempotency_key(format!("logline-sweep:{}", slot.timestamp()))
        .run_at(at)
        .max_attempts(3)
}

#[async_trait]
impl JobHandler for Sweeper {
    async fn handle(&self, job: &Job, cancel: CancellationToken) -> Result<()> {
        let report = self.run_once(&cancel).await?;
        tracing::info!(stale = report.stale, requeued = report.requeued, job = %job.id, "sweep done");
        let every = chrono::Duration::from_std(self.policy.every)
            .map_err(|_| Error::InvalidInput("sweep interval is out of range".into()))?;
        let next = slot_start(Utc::now(), self.policy.every) + every;
        self.queue.enqueue(pass_job(next, next)).await?;
        Ok(())
    }
}

impl Engine {
    fn sweeper(&self, policy: SweepPolicy) -> Sweeper {
        Sweeper {
            exec: self.inner.exec.clone(),
            queue: self.inner.queue.clone(),
            policy,
        }
    }

    /// Re-enqueues runs that are pending or running, unchanged for `grace`, with no live
    /// job (see [`crate::engine::SweepPolicy`]). Safe to run in many processes at once.
    pub async fn sweep_orphans(&self, grace: Duration) -> Result<SweepReport> {
        let policy = SweepPolicy {
            grace,
            ..SweepPolicy::default()
        };
        self.sweeper(policy)
            .run_once(&CancellationToken::new())
            .await
    }

    /// Schedules the current sweep pass and spawns a worker on [`SWEEP_QUEUE`]; each pass
    /// schedules the next. Any number of processes may call it.
    pub async fn spawn_sweeper(
        &self,
        policy: SweepPolicy,
        options: WorkerOptions,
    ) -> Result<WorkerPool> {
        let now = Utc::now();
        let slot = slot_start(now, policy.every);
        let sweeper = Arc::new(self.sweeper(policy));
        self.inner.queue.enqueue(pass_job(slot, now)).await?;
        Ok(spawn_worker(
            self.inner.queue.clone(),
            SWEEP_QUEUE,
            sweeper,
            options,
        ))
    }
}
