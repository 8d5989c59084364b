//! The run-job handler: what a worker of [`super::RUN_QUEUE`] does with a job.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::exec::{ExecutedBy, Executor};
use super::{limits, lock};
use crate::error::{Error, Result};
use crate::queue::{Job, JobHandler, NewJob};
use crate::run::{Run, RunId};

/// The job that executes `run` from its stored `version` on. The key carries the version, so
/// the job that resumes a run after an approval is never swallowed by the one that paused it.
pub(crate) fn run_job(run: &Run, version: i64, max_attempts: u32) -> NewJob {
    let mut job = NewJob::new(super::RUN_QUEUE, json!({ "run_id": run.id }))
        .idempotency_key(format!("run:{}:{}", run.id, version))
        .max_attempts(max_attempts);
    job.tenant_id = Some(run.subject.tenant_id.clone());
    job
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
            ExecutedBy::RetriedJob
        };
        let result = self.exec.execute_run(run_id, token, by).await;
        self.running.end(run_id);
        result
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
