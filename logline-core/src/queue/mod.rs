//! The work queue contract: idempotent enqueue, leased claims, heartbeats, backoff, dead letters.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::error::Result;

mod worker;
pub use worker::{spawn_worker, WorkerOptions, WorkerPool};

/// Identifier of a job.
pub type JobId = Uuid;

/// A job to enqueue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewJob {
    /// Queue name (e.g. [`crate::engine::RUN_QUEUE`]).
    pub queue: String,
    /// Payload.
    pub payload: Value,
    /// Enqueueing twice with the same key while the first job is live (queued or running)
    /// yields the first job.
    pub idempotency_key: Option<String>,
    /// Not claimable before this time.
    pub run_at: Option<DateTime<Utc>>,
    /// Higher first.
    pub priority: i32,
    /// Tenant, for fairness and inspection.
    pub tenant_id: Option<String>,
    /// Attempts before dead-lettering (default 5).
    pub max_attempts: u32,
}

impl NewJob {
    /// A job on `queue` with `payload` and defaults.
    pub fn new(queue: impl Into<String>, payload: Value) -> Self {
        NewJob {
            queue: queue.into(),
            payload,
            idempotency_key: None,
            run_at: None,
            priority: 0,
            tenant_id: None,
            max_attempts: 5,
        }
    }

    /// Sets the idempotency key.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// Sets the earliest start.
    pub fn run_at(mut self, at: DateTime<Utc>) -> Self {
        self.run_at = Some(at);
        self
    }

    /// Sets the priority.
    pub fn priority(mut self, p: i32) -> Self {
        self.priority = p;
        self
    }

    /// Sets max attempts.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }
}

/// State of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting (possibly until `run_at`).
    Queued,
    /// Claimed under a lease.
    Running,
    /// Done.
    Completed,
    /// Out of attempts.
    DeadLettered,
}

/// A claimed job. The `lease_token` proves ownership to heartbeat, complete and fail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Id.
    pub id: JobId,
    /// Queue.
    pub queue: String,
    /// Payload.
    pub payload: Value,
    /// Attempt number of this claim (1 for the first).
    pub attempt: u32,
    /// Attempt cap.
    pub max_attempts: u32,
    /// Priority.
    pub priority: i32,
    /// Token of this claim; a reclaimed job gets a new one.
    pub lease_token: Uuid,
    /// Lease expiry (on the backend's clock).
    pub lease_until: DateTime<Utc>,
    /// Last error of a previous attempt.
    pub last_error: Option<String>,
}

impl Job {
    /// Whether every attempt was used up by claims that never finished (their leases
    /// expired): the claimer must not run the job again but fail it, which dead-letters it.
    pub fn exhausted(&self) -> bool {
        self.attempt > self.max_attempts
    }
}

/// A job's full record, for inspection and dead-letter handling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// Id.
    pub id: JobId,
    /// Queue.
    pub queue: String,
    /// Payload.
    pub payload: Value,
    /// State.
    pub state: JobState,
    /// Attempts made.
    pub attempts: u32,
    /// Attempt cap.
    pub max_attempts: u32,
    /// Last error.
    pub last_error: Option<String>,
    /// Idempotency key.
    pub idempotency_key: Option<String>,
    /// Next eligible time.
    pub run_at: DateTime<Utc>,
}

/// How much work waits in a queue ([`Queue::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueStats {
    /// Queued jobs (due or scheduled later).
    pub queued: u64,
    /// `run_at` of the oldest queued job that is due: how long work has waited.
    pub oldest_due_at: Option<DateTime<Utc>>,
}

/// Backoff of failed jobs: the workspace's one backoff schedule (its default, 0.5 s doubling
/// up to 5 min with equal jitter, is the queue's).
pub use crate::retry::Backoff;

/// What `fail` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailOutcome {
    /// Requeued; eligible again at this time.
    Retrying {
        /// Next eligible time.
        at: DateTime<Utc>,
    },
    /// Out of attempts (or not retryable): moved to the dead letters.
    DeadLettered,
}

/// A durable work queue shared by workers in one or many processes.
#[async_trait]
pub trait Queue: Send + Sync {
    /// Enqueues a job (idempotent on `idempotency_key` among live jobs).
    async fn enqueue(&self, job: NewJob) -> Result<JobId>;

    /// Enqueues many jobs; the default loops over [`Queue::enqueue`].
    async fn enqueue_batch(&self, jobs: Vec<NewJob>) -> Result<Vec<JobId>> {
        let mut ids = Vec::with_capacity(jobs.len());
        for j in jobs {
            ids.push(self.enqueue(j).await?);
        }
        Ok(ids)
    }

    /// Claims up to `max` eligible jobs of `queue` for `lease`; jobs whose lease expired
    /// are eligible again. Highest priority first, then oldest `run_at`.
    ///
    /// Every claim counts as an attempt, a reclaimed lease included. A job whose leases
    /// expired `max_attempts` times is handed out once more as [`Job::exhausted`], so the
    /// claimer dead-letters it through [`Queue::fail`] (and runs its dead-letter hook, as the
    /// worker does) instead of running it forever.
    async fn claim(
        &self,
        queue: &str,
        worker: &str,
        max: usize,
        lease: Duration,
    ) -> Result<Vec<Job>>;

    /// Extends the lease; `Conflict` when the lease was lost (expired and reclaimed, or done).
    async fn heartbeat(&self, job: &Job, lease: Duration) -> Result<DateTime<Utc>>;

    /// Marks the job done; `Conflict` when the lease was lost.
    async fn complete(&self, job: &Job) -> Result<()>;

    /// Completes every job of `jobs` whose lease is still held; `Conflict` names the others.
    /// The default loops over [`Queue::complete`].
    async fn complete_batch(&self, jobs: &[Job]) -> Result<()> {
        let mut lost = Vec::new();
        for j in jobs {
            match self.complete(j).await {
                Ok(()) => {}
                Err(e) if e.kind() == crate::ErrorKind::Conflict => lost.push(j.id.to_string()),
                Err(e) => return Err(e),
            }
        }
        if lost.is_empty() {
            Ok(())
        } else {
            Err(lost_leases(&lost))
        }
    }

    /// Records a failure: retried after `backoff` while attempts remain and `retryable`,
    /// otherwise dead-lettered with the error kept.
    async fn fail(
        &self,
        job: &Job,
        error: &str,
        retryable: bool,
        backoff: Backoff,
    ) -> Result<FailOutcome>;

    /// Dead-lettered jobs of `queue`, newest first.
    async fn dead_letters(&self, queue: &str, limit: usize) -> Result<Vec<JobRecord>>;

    /// Puts a dead-lettered job back in the queue with fresh attempts.
    async fn retry_dead_letter(&self, id: JobId) -> Result<()>;

    /// The record of a job.
    async fn job(&self, id: JobId) -> Result<JobRecord>;

    /// Waits until work may be available on `queue` or `timeout` passes.
    async fn wait_for_work(&self, queue: &str, timeout: Duration) -> Result<()>;

    /// Which of `prefixes` begin the idempotency key of a live (queued or running) job of
    /// `queue` — e.g. whether a run has a job whatever run version it was enqueued at. The
    /// default says the backend cannot tell (`Internal`).
    async fn live_key_prefixes(&self, queue: &str, prefixes: &[String]) -> Result<Vec<String>> {
        let _ = (queue, prefixes);
        Err(crate::Error::Internal(
            "this queue cannot look up live jobs by key prefix".into(),
        ))
    }

    /// How much work waits in `queue` (worker pools sample it for the queue metrics). The
    /// default says the backend cannot tell (`Internal`).
    async fn stats(&self, queue: &str) -> Result<QueueStats> {
        let _ = queue;
        Err(crate::Error::Internal(
            "this queue cannot report its depth".into(),
        ))
    }

    /// Removes the job of `queue` with idempotency `key` if no worker has claimed it yet
    /// (work done another way, e.g. a run executed in place); `false` when there is no such
    /// queued job: claimed, finished, never enqueued, or a backend that keeps every job (the
    /// default).
    async fn withdraw(&self, queue: &str, key: &str) -> Result<bool> {
        let _ = (queue, key);
        Ok(false)
    }

    /// Deletes up to `limit` completed jobs (of any queue) that finished before `cutoff`,
    /// oldest first; returns how many. Queued, running and dead-lettered jobs stay (see
    /// [`crate::retention`]).
    async fn purge_completed(&self, cutoff: DateTime<Utc>, limit: u64) -> Result<u64>;
}

/// The start of the `every`-long time slot holding `t` (slots are aligned on the Unix epoch,
/// `every` counts in whole seconds, at least one). Self-rescheduling jobs key their next run
/// by slot, so every process that schedules it computes the same idempotency key.
pub fn slot_start(t: DateTime<Utc>, every: Duration) -> DateTime<Utc> {
    let secs = i64::try_from(every.as_secs()).unwrap_or(i64::MAX).max(1);
    DateTime::from_timestamp(t.timestamp().div_euclid(secs) * secs, 0).unwrap_or(t)
}

/// The `Conflict` of [`Queue::complete_batch`] when the leases of `job_ids` were lost.
pub fn lost_leases(job_ids: &[String]) -> crate::Error {
    crate::Error::Conflict(format!(
        "leases were lost for {} job(s) (the others completed): {}",
        job_ids.len(),
        job_ids.join(", ")
    ))
}

/// Processes jobs of one queue; workers call it for each claimed job.
///
/// Return `Ok` to complete the job; an error fails it (retried with backoff when
/// [`crate::Error::is_retryable`], else dead-lettered).
#[async_trait]
pub trait JobHandler: Send + Sync {
    /// Handles one job. `cancel` fires when the lease is lost or the worker shuts down.
    async fn handle(&self, job: &Job, cancel: tokio_util::sync::CancellationToken) -> Result<()>;

    /// How a failure of this handler is written to logs and to the job's `last_error`
    /// (override to redact secrets). The default is the error's message.
    fn describe_error(&self, error: &crate::Error) -> String {
        error.to_string()
    }

    /// Called once when a job of this handler was dead-lettered (attempts exhausted or a
    /// non-retryable error). The default does nothing.
    async fn dead_lettered(&self, _job: &Job, _error: &crate::Error) -> Result<()> {
        Ok(())
    }
}
