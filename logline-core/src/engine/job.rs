//! The run-job handler: what a worker of [`super::RUN_QUEUE`] does with a job.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::exec::{ExecutedBy, Executor};
use super::{limits, lock};
use crate::error::{Error, Result};
use crate::queue::{Job, JobHandler, NewJob};
use crate::run::{Run, RunId, RunStatus};

/// The job that executes `run` from its stored `version` on. The key carries the version, so
/// the job that resumes a run after an approval is never swallowed by the one that paused it.
pub(crate) fn run_job(run: &Run, version: i64, max_attempts: u32) -> NewJob {
    let mut job = NewJob::new(super::RUN_QUEUE, json!({ "run_id": run.id }))
        .idempotency_key(run_job_key(run.id, version))
        .max_attempts(max_attempts);
    job.tenant_id = Some(run.subject.tenant_id.clone());
    job
}

/// The idempotency key of the job that executes `run_id` from `version` on.
pub(crate) fn run_job_key(run_id: RunId, version: i64) -> String {
    format!("run:{run_id}:{version}")
}

fn run_id_of(job: &Job) -> Result<RunId> {
    job.payload["run_id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::InvalidInput(format!("job {} has no run_id", job.id)))
}

/// Cancellation tokens of the runs this process is executing, so `cancel` interrupts
/// in-flight calls here at once.
#[derive(Default)]
pub(crate) struct RunningRuns(Mutex<HashMap<RunId, CancellationToken>>);

impl RunningRuns {
    /// Interrupts `run_id` if this process executes it.
    pub fn cancel(&self, run_id: RunId) {
        if let Some(token) = lock(&self.0).get(&run_id) {
            token.cancel();
        }
    }

    fn start(&self, run_id: RunId, token: CancellationToken) {
        lock(&self.0).insert(run_id, token);
    }

    fn end(&self, run_id: RunId) {
        lock(&self.0).remove(&run_id);
    }
}

/// How often a run job checks whether its run was cancelled elsewhere: a third of its lease
/// (the worker's heartbeat), within 200 ms..10 s.
fn cancel_check(job: &Job) -> Duration {
    let lease = (job.lease_until - Utc::now()).to_std().unwrap_or_default();
    (lease / 3).clamp(Duration::from_millis(200), Duration::from_secs(10))
}

/// Fires `token` once the stored run is cancelled (by any process), so in-flight calls here
/// stop within one `every` instead of at the end of the step; returns when the token fired.
async fn watch_for_cancel(
    exec: &Executor,
    run_id: RunId,
    token: &CancellationToken,
    every: Duration,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = token.cancelled() => return,
        }
        match exec.store.get_run(run_id).await {
            Ok(run) if run.status == RunStatus::Cancelled => {
                token.cancel();
                return;
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(run = %run_id, error = %e, "cancellation check failed"),
        }
    }
}

/// Executes run jobs.
pub(crate) struct RunJobs {
    pub exec: Arc<Executor>,
    pub running: Arc<RunningRuns>,
}

#[async_trait]
impl JobHandler for RunJobs {
    async fn handle(&self, job: &Job, cancel: CancellationToken) -> Result<()> {
        let run_id = run_id_of(job)?;
        let token = cancel.child_token();
        self.running.start(run_id, token.clone());
        let by = if job.attempt == 1 {
            ExecutedBy::FirstJob
        } else {
            ExecutedBy::RetriedJob {
                attempt: job.attempt,
            }
        };
        let work = self.exec.execute_run(run_id, token.clone(), by);
        let watch = watch_for_cancel(&self.exec, run_id, &token, cancel_check(job));
        tokio::pin!(work, watch);
        let mut watching = true;
        let result = loop {
            tokio::select! {
                r = &mut work => break r,
                () = &mut watch, if watching => watching = false,
            }
        };
        self.running.end(run_id);
        result.map(|_| ())
    }

    /// The error's message with secrets redacted, cut to the engine's
    /// `max_error_message_bytes` (what the worker logs and stores as `last_error`).
    fn describe_error(&self, error: &Error) -> String {
        let message = error.to_string();
        let message = self.exec.redactor.redact_str(&message).unwrap_or(message);
        let max = self.exec.config.max_error_message_bytes;
        limits::cut(&message, max).unwrap_or(message)
    }

    async fn dead_lettered(&self, job: &Job, error: &Error) -> Result<()> {
        let run_id = run_id_of(job)?;
        self.exec.fail_unfinished(run_id, error, job.attempt).await
    }
}
