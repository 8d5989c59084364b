//! Starting runs and acting on them: start, execute inline, cancel, approve, deny.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::engine::exec::ExecutedBy;
use crate::engine::job::{run_job, run_job_key, RunJobs};
use crate::engine::{gate, lock, Engine, WorkerOptions, WorkerPool, RUN_QUEUE};
use crate::error::{Error, ErrorKind, Result};
use crate::event::{
    ErrorPayload, GateDecision, NewEvent, PolicyEvalPayload, RunCancelledPayload, RunFailedPayload,
    RunPausedPayload, RunResumedPayload, RunStartedPayload,
};
use crate::policy::{Effect, PolicyAction, PolicyRequest, PolicyResource};
use crate::queue::JobHandler;
use crate::run::{Approval, Budget, GateSubject, Run, RunId, RunMode, RunStatus, Subject};
use crate::store::Checkpoint;
use crate::telemetry;

/// A request to start a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartRun {
    /// Workflow id.
    pub workflow_id: String,
    /// Version; `None` = the latest registered.
    #[serde(default)]
    pub version: Option<String>,
    /// Input.
    #[serde(default)]
    pub input: Value,
    /// Who the run acts for (from the trusted caller context).
    pub subject: Subject,
    /// Mode.
    #[serde(default)]
    pub mode: RunMode,
    /// Budget.
    #[serde(default)]
    pub budget: Budget,
    /// App action that starts it.
    #[serde(default)]
    pub app_action_id: Option<String>,
    /// The caller's idempotency key: a start retried with the same key (in the same tenant)
    /// returns the run the first one created instead of starting another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

impl StartRun {
    /// A draft run of `workflow_id` for `subject`.
    pub fn new(workflow_id: impl Into<String>, input: Value, subject: Subject) -> Self {
        StartRun {
            workflow_id: workflow_id.into(),
            version: None,
            input,
            subject,
            mode: RunMode::Draft,
            budget: Budget::default(),
            app_action_id: None,
            idempotency_key: None,
        }
    }

    /// Sets the caller's idempotency key.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// Sets the mode.
    pub fn mode(mut self, mode: RunMode) -> Self {
        self.mode = mode;
        self
    }

    /// Sets the budget.
    pub fn budget(mut self, budget: Budget) -> Self {
        self.budget = budget;
        self
    }
}

/// How long a workflow's latest version, once read, is reused by `start_run` without a
/// version (versions registered in other processes are seen after at most this long).
pub(crate) const LATEST_VERSION_TTL: Duration = Duration::from_secs(1);

impl Engine {
    /// Starts a run: checks the `run_start` policy, records the run and enqueues it.
    /// Returns at once with the run (pending, or paused when the policy requires approval).
    /// A denied run is recorded as failed and `Err(PolicyDenied)` is returned.
    pub async fn start_run(&self, req: StartRun) -> Result<Run> {
        let Some(key) = &req.idempotency_key else {
            return self.create_run(req, None).await;
        };
        let id = keyed_run_id(&req.subject.tenant_id, key);
        let tenant = req.subject.tenant_id.clone();
        match self.existing_run(id, &tenant).await? {
            Some(run) => Ok(run),
            None => match self.create_run(req, Some(id)).await {
                // A concurrent start with the same key won.
                Err(e) if e.kind() == ErrorKind::Conflict => {
                    self.existing_run(id, &tenant).await?.ok_or(e)
                }
                other => other,
            },
        }
    }

    /// The run with `id` when it exists in `tenant`.
    async fn existing_run(&self, id: RunId, tenant: &str) -> Result<Option<Run>> {
        match self.inner.exec.store.get_run(id).await {
            Ok(run) if run.subject.tenant_id == tenant => Ok(Some(run)),
            Ok(_) => Err(Error::Conflict(format!(
                "run id {id} is taken in another tenant"
            ))),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates the run of `req` (with `id` when the caller's key fixes it).
    async fn create_run(&self, req: StartRun, id: Option<RunId>) -> Result<Run> {
        if req.subject.tenant_id.is_empty() {
            return Err(Error::InvalidInput("subject.tenant_id is required".into()));
        }
        let version = match &req.version {
            Some(v) => v.clone(),
            None => self.latest_version(&req.workflow_id).await?,
        };
        let plan = self.inner.exec.plan(&req.workflow_id, &version).await?;
        let wf = &plan.workflow;
        let resource = PolicyResource {
            kind: "workflow".into(),
            id: wf.id.clone(),
        };
        let decision = self
            .inner
            .exec
            .policy
            .evaluate(&PolicyRequest {
                action: PolicyAction::RunStart,
                subject: req.subject.clone(),
                resource: resource.clone(),
                context: json!({
                    "run": { "mode": req.mode.as_str(), "workflow_id": wf.id, "workflow_version": wf.version },
                    "input": req.input,
                }),
            })
            .await?;
        let mut run = Run::new(
            &wf.id,
            &wf.version,
            &wf.definition.entry,
            req.input,
            req.subject,
        );
        if let Some(id) = id {
            run.id = id;
        }
        run.mode = req.mode;
        run.budget = req.budget;
        run.app_action_id = req.app_action_id;
        if let Some(c) = &decision.changes {
            if let Some(mode) = c.mode {
                run.mode = mode;
            }
            if let Some(b) = &c.budget {
                run.budget = run.budget.tightened(b);
            }
        }
        let exec = &self.inner.exec;
        let mut events = vec![
            exec.event(None, RunStartedPayload::of(&run)),
            exec.event(
                None,
                PolicyEvalPayload::decided(PolicyAction::RunStart, resource, &decision),
            ),
        ];
        match decision.effect {
            Effect::Deny => {
                let err = Error::PolicyDenied {
                    policy_id: decision.policy_id.clone(),
                    reason: decision.reason.clone(),
                };
                run.status = RunStatus::Failed;
                run.error = Some(err.to_json());
                events.push(exec.event(None, ErrorPayload::new(err.to_recorded())));
                let failed = RunFailedPayload {
                    error: err.to_recorded(),
                };
                events.push(exec.event(None, failed));
                self.inner.exec.store.create_run(&run, &events).await?;
                telemetry::run_started();
                telemetry::policy_denied(PolicyAction::RunStart.as_str());
                telemetry::run_finished(RunStatus::Failed);
                Err(err)
            }
            Effect::RequireApproval => {
                let gate = gate::pending(
                    "run_start".into(),
                    GateSubject::RunStart,
                    decision.reason.clone(),
                    decision.policy_id.clone(),
                );
                run.status = RunStatus::Paused;
                events.push(exec.event(None, RunPausedPayload::from(&gate)));
                run.pending_gate = Some(gate);
                let c = self.inner.exec.store.create_run(&run, &events).await?;
                telemetry::run_started();
                run.version = c.version;
                Ok(run)
            }
            Effect::Allow | Effect::Modify => {
                // A new run is stored at version 1.
                let job = run_job(&run, 1, self.inner.exec.config.run_job_attempts);
                let (c, _job) = self
                    .inner
                    .starter
                    .create_run_and_enqueue(&run, &events, job)
                    .await?;
                telemetry::run_started();
                run.version = c.version;
                Ok(run)
            }
        }
    }

    /// The latest version of a workflow, read from the store at most once per
    /// 1 s (registrations through this engine refresh it at once).
    async fn latest_version(&self, workflow_id: &str) -> Result<String> {
        if let Some((at, v)) = lock(&self.inner.latest).get(workflow_id) {
            if at.elapsed() < LATEST_VERSION_TTL {
                return Ok(v.clone());
            }
        }
        let v = self
            .inner
            .exec
            .store
            .latest_workflow_version(workflow_id)
            .await?;
        lock(&self.inner.latest).insert(workflow_id.to_string(), (Instant::now(), v.clone()));
        Ok(v)
    }

    /// Starts a run and waits until it completes, fails, is cancelled or pauses.
    /// Needs workers: [`Engine::spawn_workers`] here or worker processes on the same backends.
    pub async fn run_to_completion(&self, req: StartRun) -> Result<Run> {
        let run = self.start_run(req).await?;
        self.wait(run.id).await
    }

    /// Executes a run in the calling task, without a worker, until it completes, fails,
    /// pauses or is cancelled; returns it. Safe next to workers: optimistic concurrency lets
    /// only one executor advance the run, and a queued job for a finished run is a no-op.
    /// The run's queued job (what resumes the run should this process stop mid-run) is
    /// withdrawn once the run settles here, so a host that never runs workers keeps no jobs;
    /// a job a worker has claimed already stays with it.
    pub async fn execute(&self, run_id: RunId) -> Result<Run> {
        let exec = &self.inner.exec;
        let found_at = exec
            .execute_run(run_id, CancellationToken::new(), ExecutedBy::Inline)
            .await?;
        let run = exec.store.get_run(run_id).await?;
        let settled = run.status.is_terminal() || run.status == RunStatus::Paused;
        if let (Some(version), true) = (found_at, settled) {
            self.withdraw_run_job(run_id, version).await;
        }
        Ok(run)
    }

    /// Withdraws the queued job that would execute `run_id` from `version` on. A failure
    /// only leaves the job to a worker, which finds the run settled.
    async fn withdraw_run_job(&self, run_id: RunId, version: i64) {
        let key = run_job_key(run_id, version);
        if let Err(e) = self.inner.queue.withdraw(RUN_QUEUE, &key).await {
            tracing::warn!(
                run.id = %run_id,
                error.kind = e.kind().as_str(),
                "the run's queued job was not withdrawn; a worker will find the run settled"
            );
        }
    }

    /// Cancels a run that has not finished; in-flight calls in this process are interrupted,
    /// workers elsewhere stop at their next checkpoint.
    pub async fn cancel(&self, run_id: RunId, reason: &str) -> Result<Run> {
        let reason = reason.to_string();
        let run = self
            .update_run(run_id, |run| {
                if run.status.is_terminal() {
                    return Err(Error::Conflict(format!(
                        "run {} is already {}",
                        run.id,
                        run.status.as_str()
                    )));
                }
                run.status = RunStatus::Cancelled;
                run.pending_gate = None;
                let cancelled = RunCancelledPayload {
                    reason: reason.clone(),
                };
                Ok(vec![self.inner.exec.event(None, cancelled)])
            })
            .await?;
        telemetry::run_finished(RunStatus::Cancelled);
        self.inner.running.cancel(run_id);
        Ok(run)
    }

    /// Approves the gate the run is paused at; the run resumes on a worker.
    /// `gate_id` must name the pending gate exactly.
    pub async fn approve(
        &self,
        run_id: RunId,
        gate_id: &str,
        approver: &str,
        reason: Option<&str>,
    ) -> Result<Run> {
        self.resume(run_id, gate_id, approver, reason, false).await
    }

    /// Refuses the tool call the run is paused at and resumes the run: the call is not
    /// executed and the model is told that it was refused (a denial, by contrast, fails the
    /// run). Only gates of tool calls can be refused.
    pub async fn refuse(
        &self,
        run_id: RunId,
        gate_id: &str,
        approver: &str,
        reason: Option<&str>,
    ) -> Result<Run> {
        self.resume(run_id, gate_id, approver, reason, true).await
    }

    /// Records the decision at the pending gate and enqueues the run again.
    async fn resume(
        &self,
        run_id: RunId,
        gate_id: &str,
        approver: &str,
        reason: Option<&str>,
        refused: bool,
    ) -> Result<Run> {
        let run = self
            .update_run(run_id, |run| {
                let gate = pending_gate(run, gate_id)?;
                let digest = match &gate.subject {
                    GateSubject::ToolCall { args_digest, .. } => Some(args_digest.clone()),
                    _ if refused => {
                        return Err(Error::InvalidInput(format!(
                            "gate `{gate_id}` is not a tool call; deny it instead"
                        )))
                    }
                    _ => None,
                };
                run.approvals.push(Approval {
                    gate_id: gate_id.to_string(),
                    args_digest: digest,
                    approver: approver.to_string(),
                    reason: reason.map(String::from),
                    at: Utc::now(),
                    refused,
                });
                run.pending_gate = None;
                run.status = RunStatus::Running;
                let mut resumed =
                    RunResumedPayload::approved(gate_id, approver, reason.map(String::from));
                if refused {
                    resumed.decision = GateDecision::Refused;
                }
                Ok(vec![self.inner.exec.event(None, resumed)])
            })
            .await?;
        self.inner
            .queue
            .enqueue(run_job(
                &run,
                run.version,
                self.inner.exec.config.run_job_attempts,
            ))
            .await?;
        Ok(run)
    }

    /// Denies the gate the run is paused at; the run fails with the reason.
    pub async fn deny(
        &self,
        run_id: RunId,
        gate_id: &str,
        approver: &str,
        reason: &str,
    ) -> Result<Run> {
        let run = self
            .update_run(run_id, |run| {
                pending_gate(run, gate_id)?;
                let err = Error::PolicyDenied {
                    policy_id: None,
                    reason: format!("denied by {approver}: {reason}"),
                };
                run.status = RunStatus::Failed;
                run.error = Some(err.to_json());
                run.pending_gate = None;
                let exec = &self.inner.exec;
                let denied = PolicyEvalPayload::approval_denied(gate_id, approver, reason);
                let failed = RunFailedPayload {
                    error: err.to_recorded(),
                };
                Ok(vec![exec.event(None, denied), exec.event(None, failed)])
            })
            .await?;
        telemetry::run_finished(RunStatus::Failed);
        Ok(run)
    }

    /// Applies `change` to the latest run state and commits it, retrying lost races.
    async fn update_run<F>(&self, run_id: RunId, mut change: F) -> Result<Run>
    where
        F: FnMut(&mut Run) -> Result<Vec<NewEvent>>,
    {
        for _ in 0..16 {
            let mut run = self.inner.exec.store.get_run(run_id).await?;
            let events = change(&mut run)?;
            match self
                .inner
                .exec
                .store
                .commit(Checkpoint {
                    run: &run,
                    step: None,
                    events,
                })
                .await
            {
                Ok(c) => {
                    run.version = c.version;
                    return Ok(run);
                }
                Err(e) if e.kind() == ErrorKind::Conflict => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::Conflict(format!(
            "run {run_id} kept changing; try again"
        )))
    }

    /// The handler that executes run jobs; workers of [`RUN_QUEUE`] use it.
    pub fn run_job_handler(&self) -> Arc<dyn JobHandler> {
        Arc::new(RunJobs {
            exec: self.inner.exec.clone(),
            running: self.inner.running.clone(),
        })
    }

    /// Spawns workers for run jobs in this process.
    pub fn spawn_workers(&self, options: WorkerOptions) -> WorkerPool {
        crate::queue::spawn_worker(
            self.inner.queue.clone(),
            RUN_QUEUE,
            self.run_job_handler(),
            options,
        )
    }

    /// Starts retention of this engine's finished runs and completed jobs (see
    /// [`crate::retention`]): schedules the current pass and spawns a worker on
    /// [`crate::retention::RETENTION_QUEUE`]. Any number of processes may call it.
    pub async fn spawn_retention(
        &self,
        policy: crate::retention::RetentionPolicy,
        options: WorkerOptions,
    ) -> Result<WorkerPool> {
        let job = crate::retention::RetentionJob::new(
            self.inner.exec.store.clone(),
            self.inner.queue.clone(),
            policy,
        );
        Arc::new(job).spawn(options).await
    }
}

fn pending_gate<'a>(run: &'a Run, gate_id: &str) -> Result<&'a crate::run::PendingGate> {
    if run.status != RunStatus::Paused {
        return Err(Error::Conflict(format!(
            "run {} is {}, not paused",
            run.id,
            run.status.as_str()
        )));
    }
    match &run.pending_gate {
        Some(g) if g.gate_id == gate_id => Ok(g),
        Some(g) => Err(Error::InvalidInput(format!(
            "run {} waits at gate `{}`, not `{gate_id}`",
            run.id, g.gate_id
        ))),
        None => Err(Error::Internal(format!(
            "run {} is paused without a gate",
            run.id
        ))),
    }
}

/// The run id an idempotency key stands for in a tenant: the same key always names the same
/// run, so a retried start finds it.
pub(crate) fn keyed_run_id(tenant: &str, key: &str) -> RunId {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("{tenant}\0{key}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}
