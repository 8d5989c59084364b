//! The engine's public operations.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::{Engine, EngineBuilder, Inner, Progress, RUN_QUEUE};
use crate::agent::Agent;
use crate::error::{Error, ErrorKind, Result};
use crate::event::{Event, EventKind, NewEvent};
use crate::policy::{Effect, Policy, PolicyAction, PolicyRequest, PolicyResource};
use crate::queue::{Job, JobHandler, NewJob, Queue};
use crate::run::{Approval, Budget, GateSubject, Run, RunId, RunMode, RunStatus, Step, Subject};
use crate::store::{Checkpoint, Store};
use crate::tool::ToolSpec;
use crate::workflow::{NodeType, Registry, Workflow};

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
        }
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

struct KnownIds {
    tools: HashSet<String>,
    agents: HashSet<String>,
}

impl Registry for KnownIds {
    fn has_tool(&self, id: &str) -> bool {
        self.tools.contains(id)
    }
    fn has_agent(&self, id: &str) -> bool {
        self.agents.contains(id)
    }
}

/// The job that executes `run` from its stored `version` on.
fn run_job(run: &Run, version: i64, max_attempts: u32) -> NewJob {
    let mut job = NewJob::new(RUN_QUEUE, json!({ "run_id": run.id }))
        .idempotency_key(format!("run:{}:{}", run.id, version))
        .max_attempts(max_attempts);
    job.tenant_id = Some(run.subject.tenant_id.clone());
    job
}

impl Engine {
    /// A builder with in-memory defaults.
    pub fn builder() -> EngineBuilder {
        EngineBuilder::default()
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The queue.
    pub fn queue(&self) -> &Arc<dyn Queue> {
        &self.inner.queue
    }

    /// Registers a workflow version after validating it against the registered tools and
    /// agents. Every problem is reported at once in [`Error::InvalidWorkflow`].
    pub async fn register_workflow(&self, workflow: &Workflow) -> Result<()> {
        let def = &workflow.definition;
        let mut known = KnownIds {
            tools: HashSet::new(),
            agents: HashSet::new(),
        };
        for n in &def.nodes {
            for (id, is_tool) in [
                (n.config.tool_id.as_deref(), true),
                (n.config.agent_id.as_deref(), false),
                (n.config.router_agent_id.as_deref(), false),
            ] {
                let Some(id) = id else { continue };
                if is_tool {
                    if self.exists(self.inner.store.get_tool(id).await)? {
                        known.tools.insert(id.to_string());
                    }
                } else if self.exists(self.inner.store.get_agent(id).await)? {
                    known.agents.insert(id.to_string());
                }
            }
        }
        if let Some(id) = &def.condition_agent_id {
            if self.exists(self.inner.store.get_agent(id).await)? {
                known.agents.insert(id.clone());
            }
        }
        let issues = def.validate(&known);
        if !issues.is_empty() {
            return Err(Error::InvalidWorkflow(issues));
        }
        self.inner.store.put_workflow(workflow).await?;
        if let Ok(mut m) = self.inner.latest.lock() {
            m.remove(&workflow.id);
        }
        Ok(())
    }

    fn exists<T>(&self, r: Result<T>) -> Result<bool> {
        match r {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Registers an agent; every allowed tool must exist.
    pub async fn register_agent(&self, agent: &Agent) -> Result<()> {
        let mut missing = Vec::new();
        for t in &agent.allowed_tools {
            if !self.exists(self.inner.store.get_tool(t).await)? {
                missing.push(t.clone());
            }
        }
        if !missing.is_empty() {
            return Err(Error::InvalidInput(format!(
                "agent `{}` allows unknown tools: {}",
                agent.id,
                missing.join(", ")
            )));
        }
        if let Some(schema) = &agent.output_schema {
            self.inner.schemas.violations(schema, &Value::Null)?;
        }
        self.inner.store.put_agent(agent).await
    }

    /// Adds or replaces catalog entries (tools executed by a registered hub).
    pub async fn register_tools(&self, tools: &[ToolSpec]) -> Result<()> {
        for t in tools {
            self.inner
                .schemas
                .violations(&t.input_schema, &Value::Null)?;
        }
        self.inner.store.put_tools(tools).await
    }

    /// Adds or replaces a policy; it applies to the next evaluation.
    pub async fn put_policy(&self, policy: &Policy) -> Result<()> {
        self.inner.store.put_policy(policy).await?;
        if let Some(s) = &self.inner.policy_source {
            s.invalidate();
        }
        Ok(())
    }

    /// Removes a policy.
    pub async fn delete_policy(&self, id: &str) -> Result<()> {
        self.inner.store.delete_policy(id).await?;
        if let Some(s) = &self.inner.policy_source {
            s.invalidate();
        }
        Ok(())
    }

    /// Starts a run: checks the `run_start` policy, records the run and enqueues it.
    /// Returns at once with the run (pending, or paused when the policy requires approval).
    /// A denied run is recorded as failed and `Err(PolicyDenied)` is returned.
    pub async fn start_run(&self, req: StartRun) -> Result<Run> {
        if req.subject.tenant_id.is_empty() {
            return Err(Error::InvalidInput("subject.tenant_id is required".into()));
        }
        let version = match &req.version {
            Some(v) => v.clone(),
            None => self.latest_version(&req.workflow_id).await?,
        };
        let wf = self.inner.workflow(&req.workflow_id, &version).await?;
        let decision = self
            .inner
            .policy
            .evaluate(&PolicyRequest {
                action: PolicyAction::RunStart,
                subject: req.subject.clone(),
                resource: PolicyResource {
                    kind: "workflow".into(),
                    id: wf.id.clone(),
                },
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
        let r = &self.inner.redactor;
        let mut events = vec![
            NewEvent::run(
                EventKind::RunStarted,
                r.redacted(&json!({
                    "workflow_id": run.workflow_id,
                    "workflow_version": run.workflow_version,
                    "mode": run.mode.as_str(),
                    "input": run.input,
                    "subject": run.subject,
                    "budget": run.budget,
                })),
            ),
            NewEvent::run(
                EventKind::PolicyEval,
                json!({
                    "action": "run_start",
                    "resource": {"type": "workflow", "id": run.workflow_id},
                    "decision": decision.effect.as_str(),
                    "policy_id": decision.policy_id,
                    "reason": decision.reason,
                    "matched": decision.matched,
                    "changes": decision.changes,
                }),
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
                events.push(NewEvent::run(
                    EventKind::Error,
                    json!({ "error": err.to_json() }),
                ));
                events.push(NewEvent::run(
                    EventKind::RunFailed,
                    json!({ "error": err.to_json() }),
                ));
                self.inner.store.create_run(&run, &events).await?;
                Err(err)
            }
            Effect::RequireApproval => {
                let gate = super::gate::pending(
                    "run_start".into(),
                    GateSubject::RunStart,
                    decision.reason.clone(),
                    decision.policy_id.clone(),
                );
                run.status = RunStatus::Paused;
                events.push(NewEvent::run(
                    EventKind::RunPaused,
                    json!({ "gate_id": gate.gate_id, "subject": gate.subject, "reason": gate.reason, "policy_id": gate.policy_id }),
                ));
                run.pending_gate = Some(gate);
                let c = self.inner.store.create_run(&run, &events).await?;
                run.version = c.version;
                Ok(run)
            }
            Effect::Allow | Effect::Modify => {
                // A new run is stored at version 1.
                let job = run_job(&run, 1, self.inner.config.run_job_attempts);
                let (c, _job) = self
                    .inner
                    .starter
                    .create_run_and_enqueue(&run, &events, job)
                    .await?;
                run.version = c.version;
                Ok(run)
            }
        }
    }

    /// The latest version of a workflow, read from the store at most once per
    /// 1 s (registrations through this engine refresh it at once).
    async fn latest_version(&self, workflow_id: &str) -> Result<String> {
        if let Ok(m) = self.inner.latest.lock() {
            if let Some((at, v)) = m.get(workflow_id) {
                if at.elapsed() < LATEST_VERSION_TTL {
                    return Ok(v.clone());
                }
            }
        }
        let v = self
            .inner
            .store
            .latest_workflow_version(workflow_id)
            .await?;
        if let Ok(mut m) = self.inner.latest.lock() {
            m.insert(
                workflow_id.to_string(),
                (std::time::Instant::now(), v.clone()),
            );
        }
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
    pub async fn execute(&self, run_id: RunId) -> Result<Run> {
        self.inner
            .execute_run(run_id, CancellationToken::new(), false)
            .await?;
        self.inner.store.get_run(run_id).await
    }

    /// Waits until the run is terminal or paused, and returns it.
    pub async fn wait(&self, run_id: RunId) -> Result<Run> {
        let mut seq = 0;
        loop {
            // Read the event cursor before the status: a run that settles after this read
            // appends events after `seq`, which wakes the wait below.
            loop {
                let page = self.inner.store.events(run_id, seq, 1000).await?;
                match page.last() {
                    Some(e) => seq = e.seq,
                    None => break,
                }
            }
            let run = self.inner.store.get_run(run_id).await?;
            if run.status.is_terminal() || run.status == RunStatus::Paused {
                return Ok(run);
            }
            self.inner
                .store
                .wait_for_events(run_id, seq, Duration::from_secs(5))
                .await?;
        }
    }

    /// A run.
    pub async fn get_run(&self, run_id: RunId) -> Result<Run> {
        self.inner.store.get_run(run_id).await
    }

    /// Every event of a run, in order.
    pub async fn events(&self, run_id: RunId) -> Result<Vec<Event>> {
        let mut out = Vec::new();
        loop {
            let after = out.last().map_or(0, |e: &Event| e.seq);
            let page = self.inner.store.events(run_id, after, 1000).await?;
            if page.is_empty() {
                return Ok(out);
            }
            out.extend(page);
        }
    }

    /// Steps of a run.
    pub async fn steps(&self, run_id: RunId) -> Result<Vec<Step>> {
        self.inner.store.steps(run_id).await
    }

    /// Live events of a run after `after_seq`: catch-up from the store, then new events as
    /// they are committed; ends after the terminal event. No gaps, no duplicates.
    pub fn subscribe(&self, run_id: RunId, after_seq: u64) -> BoxStream<'static, Result<Event>> {
        struct State {
            inner: Arc<Inner>,
            seq: u64,
            buf: VecDeque<Event>,
            done: bool,
        }
        let state = State {
            inner: self.inner.clone(),
            seq: after_seq,
            buf: VecDeque::new(),
            done: false,
        };
        Box::pin(futures::stream::unfold(state, move |mut s| async move {
            loop {
                if let Some(e) = s.buf.pop_front() {
                    s.seq = e.seq;
                    if e.kind.is_terminal() {
                        s.done = true;
                    }
                    return Some((Ok(e), s));
                }
                if s.done {
                    return None;
                }
                match s.inner.store.events(run_id, s.seq, 256).await {
                    Ok(page) if !page.is_empty() => s.buf.extend(page),
                    Ok(_) => {
                        match s.inner.store.get_run(run_id).await {
                            Ok(run) if run.status.is_terminal() => {
                                // Terminal without a terminal event after our cursor: done.
                                let more = s.inner.store.events(run_id, s.seq, 1).await;
                                if matches!(more, Ok(ref m) if m.is_empty()) {
                                    return None;
                                }
                            }
                            Ok(_) => {}
                            Err(e) => {
                                s.done = true;
                                return Some((Err(e), s));
                            }
                        }
                        if let Err(e) = s
                            .inner
                            .store
                            .wait_for_events(run_id, s.seq, Duration::from_secs(5))
                            .await
                        {
                            s.done = true;
                            return Some((Err(e), s));
                        }
                    }
                    Err(e) => {
                        s.done = true;
                        return Some((Err(e), s));
                    }
                }
            }
        }))
    }

    /// Token-level progress of LLM calls executed by this process's workers.
    pub fn progress(&self) -> broadcast::Receiver<Progress> {
        self.inner.progress.subscribe()
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
                Ok(vec![NewEvent::run(
                    EventKind::RunCancelled,
                    json!({ "reason": reason }),
                )])
            })
            .await?;
        if let Some(token) = self
            .inner
            .running
            .lock()
            .ok()
            .and_then(|m| m.get(&run_id).cloned())
        {
            token.cancel();
        }
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
        let run = self
            .update_run(run_id, |run| {
                let gate = pending_gate(run, gate_id)?;
                let digest = match &gate.subject {
                    GateSubject::ToolCall { args_digest, .. } => Some(args_digest.clone()),
                    _ => None,
                };
                run.approvals.push(Approval {
                    gate_id: gate_id.to_string(),
                    args_digest: digest,
                    approver: approver.to_string(),
                    reason: reason.map(String::from),
                    at: Utc::now(),
                });
                run.pending_gate = None;
                run.status = RunStatus::Running;
                Ok(vec![NewEvent::run(
                    EventKind::RunResumed,
                    json!({ "gate_id": gate_id, "decision": "approved", "approver": approver, "reason": reason }),
                )])
            })
            .await?;
        self.inner
            .queue
            .enqueue(run_job(
                &run,
                run.version,
                self.inner.config.run_job_attempts,
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
        self.update_run(run_id, |run| {
            pending_gate(run, gate_id)?;
            let err = Error::PolicyDenied {
                policy_id: None,
                reason: format!("denied by {approver}: {reason}"),
            };
            run.status = RunStatus::Failed;
            run.error = Some(err.to_json());
            run.pending_gate = None;
            Ok(vec![
                NewEvent::run(
                    EventKind::PolicyEval,
                    json!({ "action": "approval", "gate_id": gate_id, "decision": "deny", "approver": approver, "reason": reason }),
                ),
                NewEvent::run(EventKind::RunFailed, json!({ "error": err.to_json() })),
            ])
        })
        .await
    }

    /// Applies `change` to the latest run state and commits it, retrying lost races.
    async fn update_run<F>(&self, run_id: RunId, mut change: F) -> Result<Run>
    where
        F: FnMut(&mut Run) -> Result<Vec<NewEvent>>,
    {
        for _ in 0..16 {
            let mut run = self.inner.store.get_run(run_id).await?;
            let events = change(&mut run)?;
            match self
                .inner
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
            inner: self.inner.clone(),
        })
    }

    /// Spawns workers for run jobs in this process.
    pub fn spawn_workers(&self, options: super::WorkerOptions) -> super::WorkerPool {
        super::spawn_worker(
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
        options: super::WorkerOptions,
    ) -> Result<super::WorkerPool> {
        let job = crate::retention::RetentionJob::new(
            self.inner.store.clone(),
            self.inner.queue.clone(),
            policy,
        );
        Arc::new(job).spawn(options).await
    }

    /// Node types of a workflow version (helper for hosts and tests).
    pub async fn node_types(&self, workflow_id: &str) -> Result<Vec<(String, NodeType)>> {
        let wf = self.inner.store.get_workflow(workflow_id, None).await?;
        Ok(wf
            .definition
            .nodes
            .iter()
            .map(|n| (n.id.clone(), n.node_type))
            .collect())
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

struct RunJobs {
    inner: Arc<Inner>,
}

fn run_id_of(job: &Job) -> Result<RunId> {
    job.payload["run_id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::InvalidInput(format!("job {} has no run_id", job.id)))
}

#[async_trait]
impl JobHandler for RunJobs {
    async fn handle(&self, job: &Job, cancel: CancellationToken) -> Result<()> {
        let run_id = run_id_of(job)?;
        let token = cancel.child_token();
        if let Ok(mut m) = self.inner.running.lock() {
            m.insert(run_id, token.clone());
        }
        let result = self
            .inner
            .execute_run(run_id, token, job.attempt == 1)
            .await;
        if let Ok(mut m) = self.inner.running.lock() {
            m.remove(&run_id);
        }
        result
    }

    fn describe_error(&self, error: &Error) -> String {
        let message = error.to_string();
        self.inner.redactor.redact_str(&message).unwrap_or(message)
    }

    async fn dead_lettered(&self, job: &Job, error: &Error) -> Result<()> {
        let run_id = run_id_of(job)?;
        for _ in 0..8 {
            let mut run = self.inner.store.get_run(run_id).await?;
            if run.status.is_terminal() || run.status == RunStatus::Paused {
                return Ok(());
            }
            let e = Error::Internal(format!(
                "run job gave up after {} attempts: {error}",
                job.attempt
            ));
            match self.inner.fail_run(&mut run, None, Vec::new(), e).await {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Conflict => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
