//! Workers: claim jobs with a lease, keep the lease alive, run the handler, complete or fail.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;

use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, ErrorKind};
use crate::queue::{Backoff, FailOutcome, Job, JobHandler, Queue};
use crate::telemetry;

/// How often a worker pool samples its queue's depth and oldest due job for the metrics.
const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// How a worker pool claims and runs jobs.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerOptions {
    /// Identity shown in the queue (host:pid by default).
    pub worker_id: String,
    /// Jobs executed at once.
    pub concurrency: usize,
    /// Jobs claimed per round trip.
    pub batch: usize,
    /// Lease length; a worker that stops heartbeating loses its jobs after this.
    pub lease: Duration,
    /// Heartbeat interval (keep well below `lease`).
    pub heartbeat: Duration,
    /// Longest sleep between claims when idle (wake-ups usually come sooner).
    pub poll: Duration,
    /// Backoff of failed jobs.
    pub backoff: Backoff,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            worker_id: format!(
                "worker-{}-{}",
                std::process::id(),
                uuid::Uuid::new_v4().simple()
            ),
            concurrency: 8,
            batch: 8,
            lease: Duration::from_secs(10),
            heartbeat: Duration::from_secs(3),
            poll: Duration::from_secs(1),
            backoff: Backoff::default(),
        }
    }
}

impl WorkerOptions {
    /// Sets the lease and a heartbeat of a third of it.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self.heartbeat = lease / 3;
        self
    }

    /// Sets the concurrency (and batch size).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self.batch = self.batch.min(self.concurrency).max(1);
        self
    }
}

/// A running pool of workers for one queue.
pub struct WorkerPool {
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl WorkerPool {
    /// Stops claiming, lets in-flight jobs finish, then returns (graceful drain).
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }

    /// Stops at once, abandoning in-flight jobs without completing them (their leases expire
    /// and other workers reclaim them) — what a crash looks like to the rest of the system.
    pub fn abort(self) {
        self.task.abort();
    }
}

/// Spawns a worker pool that feeds jobs of `queue_name` to `handler`.
pub fn spawn_worker(
    queue: Arc<dyn Queue>,
    queue_name: &str,
    handler: Arc<dyn JobHandler>,
    options: WorkerOptions,
) -> WorkerPool {
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(claim_loop(
        queue,
        queue_name.to_string(),
        handler,
        options,
        shutdown.clone(),
    ));
    WorkerPool { shutdown, task }
}

async fn claim_loop(
    queue: Arc<dyn Queue>,
    queue_name: String,
    handler: Arc<dyn JobHandler>,
    opts: WorkerOptions,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(opts.concurrency));
    let mut running = JoinSet::new();
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    // Aborted with this task (a crash), awaited after the drain (a shutdown).
    let completer = AbortOnDrop(tokio::spawn(complete_loop(
        queue.clone(),
        handler.clone(),
        done_rx,
    )));
    let _sampler = AbortOnDrop(tokio::spawn(sample_loop(
        queue.clone(),
        queue_name.clone(),
        shutdown.clone(),
    )));
    while !shutdown.is_cancelled() {
        while running.try_join_next().is_some() {}
        let free = slots.available_permits();
        if free == 0 {
            tokio::select! {
                _ = running.join_next() => {}
                _ = shutdown.cancelled() => break,
            }
            continue;
        }
        let wanted = free.min(opts.batch);
        let jobs = match queue
            .claim(&queue_name, &opts.worker_id, wanted, opts.lease)
            .await
        {
            Ok(j) => j,
            Err(e) => {
                let e = handler.describe_error(&e);
                tracing::warn!(queue = %queue_name, error = %e, "claim failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(opts.poll) => {}
                    _ = shutdown.cancelled() => break,
                }
                continue;
            }
        };
        if jobs.is_empty() {
            tokio::select! {
                _ = queue.wait_for_work(&queue_name, opts.poll) => {}
                _ = shutdown.cancelled() => break,
            }
            continue;
        }
        // Fewer than asked: no other job was due, so wait for work instead of asking again
        // at once (the wait returns at once when a job is due by then).
        let drained = jobs.len() < wanted;
        for job in jobs {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                break;
            };
            let (queue, handler, opts, done) = (
                queue.clone(),
                handler.clone(),
                opts.clone(),
                done_tx.clone(),
            );
            running.spawn(async move {
                process(queue, handler, &opts, job, &done).await;
                drop(permit);
            });
        }
        if drained {
            tokio::select! {
                _ = queue.wait_for_work(&queue_name, opts.poll) => {}
                _ = shutdown.cancelled() => break,
            }
        }
    }
    while running.join_next().await.is_some() {}
    drop(done_tx);
    let mut completer = completer;
    let _ = (&mut completer.0).await;
}

/// Aborts the task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Completes finished jobs, batching those that finish while a completion is in flight
/// (group commit: no added latency when idle, one round trip for many jobs under load).
async fn complete_loop(
    queue: Arc<dyn Queue>,
    handler: Arc<dyn JobHandler>,
    mut done: mpsc::UnboundedReceiver<Job>,
) {
    let mut batch = Vec::with_capacity(COMPLETE_BATCH);
    while let Some(first) = done.recv().await {
        batch.push(first);
        while batch.len() < COMPLETE_BATCH {
            match done.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        if let Err(e) = queue.complete_batch(&batch).await {
            // Lost leases are expected after a reclaim; other jobs of the batch completed.
            let e = handler.describe_error(&e);
            tracing::warn!(jobs = batch.len(), error = %e, "completing jobs failed");
        }
        batch.clear();
    }
}

/// Sets the queue gauges every [`SAMPLE_EVERY`] until shutdown; stops at once on a backend
/// that cannot report its depth.
async fn sample_loop(queue: Arc<dyn Queue>, queue_name: String, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        match queue.stats(&queue_name).await {
            Ok(stats) => {
                let age = stats
                    .oldest_due_at
                    .and_then(|at| (chrono::Utc::now() - at).to_std().ok())
                    .map_or(0.0, |d| d.as_secs_f64());
                telemetry::queue_sampled(&queue_name, stats.queued, age);
            }
            Err(e) if e.kind() == ErrorKind::Internal => return,
            Err(e) => {
                tracing::debug!(queue = %queue_name, kind = e.kind().as_str(), "queue sample failed")
            }
        }
    }
}

/// Most jobs completed in one round trip.
const COMPLETE_BATCH: usize = 256;

async fn process(
    queue: Arc<dyn Queue>,
    handler: Arc<dyn JobHandler>,
    opts: &WorkerOptions,
    job: Job,
    done: &mpsc::UnboundedSender<Job>,
) {
    if job.exhausted() {
        // Every attempt ended with an expired lease (crashed or hung workers): give up
        // without running the job again.
        let e = Error::Internal(format!(
            "job {} lost its lease on all {} attempts without finishing",
            job.id, job.max_attempts
        ));
        fail(queue.as_ref(), handler.as_ref(), opts, &job, e).await;
        return;
    }
    let lost = CancellationToken::new();
    // Heartbeats run inside this task, so aborting the task (a crash) stops them too and the
    // lease expires for other workers to reclaim.
    let result = {
        let heartbeat = keep_lease(queue.as_ref(), handler.as_ref(), &job, opts, &lost);
        // A panicking handler fails its job instead of leaving it leased until the lease
        // expires and another worker runs it again.
        let work = AssertUnwindSafe(handler.handle(&job, lost.clone())).catch_unwind();
        tokio::pin!(heartbeat, work);
        let mut beating = true;
        loop {
            tokio::select! {
                r = &mut work => break r.unwrap_or_else(|panic| Err(panicked(&*panic))),
                _ = &mut heartbeat, if beating => beating = false,
            }
        }
    };
    if lost.is_cancelled() {
        return;
    }
    match result {
        Ok(()) => {
            if let Err(mpsc::error::SendError(job)) = done.send(job) {
                // The completer is gone (shutdown race): complete directly.
                if let Err(e) = queue.complete(&job).await {
                    let e = handler.describe_error(&e);
                    tracing::warn!(job = %job.id, error = %e, "complete failed");
                }
            }
        }
        Err(e) => fail(queue.as_ref(), handler.as_ref(), opts, &job, e).await,
    }
}

/// The error of a handler that panicked (not retryable: a bug would panic again).
fn panicked(panic: &(dyn std::any::Any + Send)) -> Error {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string payload".into());
    Error::Internal(format!("job handler panicked: {message}"))
}

/// Records a failed attempt; runs the dead-letter hook when the job was dead-lettered.
async fn fail(
    queue: &dyn Queue,
    handler: &dyn JobHandler,
    opts: &WorkerOptions,
    job: &Job,
    e: Error,
) {
    // Logs and `last_error` get the handler's description (redacted), never the raw error.
    let described = handler.describe_error(&e);
    tracing::warn!(job = %job.id, attempt = job.attempt, error = %described, "job failed");
    let retryable = e.is_retryable() && !job.exhausted();
    match queue.fail(job, &described, retryable, opts.backoff).await {
        Ok(FailOutcome::DeadLettered) => {
            if let Err(e2) = handler.dead_lettered(job, &e).await {
                let e2 = handler.describe_error(&e2);
                tracing::warn!(job = %job.id, error = %e2, "dead-letter hook failed");
            }
        }
        Ok(FailOutcome::Retrying { .. }) => {}
        Err(e2) => {
            let e2 = handler.describe_error(&e2);
            tracing::warn!(job = %job.id, error = %e2, "fail failed")
        }
    }
}

/// Extends the lease every `heartbeat`; returns (after cancelling `lost`) once it is lost.
async fn keep_lease(
    queue: &dyn Queue,
    handler: &dyn JobHandler,
    job: &Job,
    opts: &WorkerOptions,
    lost: &CancellationToken,
) {
    loop {
        tokio::time::sleep(opts.heartbeat).await;
        match queue.heartbeat(job, opts.lease).await {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Conflict || e.kind() == ErrorKind::NotFound => {
                tracing::warn!(job = %job.id, "lease lost; abandoning job");
                lost.cancel();
                return;
            }
            Err(e) => {
                let e = handler.describe_error(&e);
                tracing::warn!(job = %job.id, error = %e, "heartbeat failed")
            }
        }
    }
}
