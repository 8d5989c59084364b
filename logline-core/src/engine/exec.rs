//! The executor: runs a run step by step; each step is committed with its events as one
//! checkpoint.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, Utc};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tracing::field::Empty;
use tracing::{Instrument, Span};
use uuid::Uuid;

use super::nodes;
use super::step::{check_latency, Interrupt, StepCtx};
use super::{limits, lock, EngineConfig, Progress, StaticHandler};
use crate::agent::ToolSource;
use crate::error::{Error, ErrorKind, Result};
use crate::event::{
    ErrorPayload, EventPayload, NewEvent, PolicyEvalPayload, RunCompletedPayload, RunFailedPayload,
    RunPausedPayload, StepCompletedPayload, StepFailedPayload, StepStartedPayload,
};
use crate::llm::{LlmProvider, PriceTable};
use crate::policy::PolicyEngine;
use crate::redact::Redactor;
use crate::run::{Run, RunId, RunStatus, Step, StepStatus};
use crate::schema::SchemaCache;
use crate::store::{Checkpoint, EffectRecord, Store};
use crate::telemetry;
use crate::tool::ToolHub;
use crate::workflow::{NodeType, Workflow};

/// A workflow version prepared for execution (immutable, cached per engine).
pub(crate) struct Plan {
    pub workflow: Workflow,
    /// Nodes whose outputs `$nodes.<id>` templates read (kept on the run's cursor).
    pub referenced_outputs: BTreeSet<String>,
}

/// Everything execution needs, nothing else.
pub(crate) struct Executor {
    pub store: Arc<dyn Store>,
    pub llms: HashMap<String, Arc<dyn LlmProvider>>,
    pub hubs: HashMap<String, Arc<dyn ToolHub>>,
    pub tool_sources: HashMap<String, Arc<dyn ToolSource>>,
    /// Where `chat` nodes save router decisions, summaries and answers.
    pub chat_store: Option<Arc<dyn crate::chat::ChatStore>>,
    pub policy: Arc<dyn PolicyEngine>,
    pub apps: Arc<dyn crate::app::AppStore>,
    pub statics: HashMap<String, StaticHandler>,
    pub prices: PriceTable,
    pub redactor: Redactor,
    pub config: EngineConfig,
    pub schemas: SchemaCache,
    pub progress: broadcast::Sender<Progress>,
    /// Plans by workflow id, then version.
    pub plans: Mutex<HashMap<String, HashMap<String, Arc<Plan>>>>,
}

/// Who executes a run: the first job of the run, a later job (a retry, a resume after an
/// approval or a lost lease), or a caller of `Engine::execute`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExecutedBy {
    FirstJob,
    RetriedJob { attempt: u32 },
    Inline,
}

impl ExecutedBy {
    /// The attempt of the job executing the run (1 for a first job and inline).
    fn attempt(self) -> u32 {
        match self {
            ExecutedBy::RetriedJob { attempt } => attempt,
            ExecutedBy::FirstJob | ExecutedBy::Inline => 1,
        }
    }
}

/// The `run` span of one execution of a run: ids, tenant and attempt, never the input.
fn run_span(run: &Run, attempt: u32) -> Span {
    tracing::info_span!(
        "run",
        otel.name = %format_args!("run {}", run.workflow_id),
        otel.status_code = Empty,
        logline.run.id = %run.id,
        logline.workflow.id = %run.workflow_id,
        logline.workflow.version = %run.workflow_version,
        logline.tenant.id = %run.subject.tenant_id,
        logline.attempt = i64::from(attempt),
        logline.run.status = Empty,
        error.type = Empty,
    )
}

/// The `step` span of one node execution: node id and kind, position and attempt.
fn step_span(run: &Run, node: &crate::workflow::WorkflowNode, attempt: u32) -> Span {
    tracing::info_span!(
        "step",
        otel.name = %format_args!("step {}", node.id),
        otel.status_code = Empty,
        logline.step.index = i64::from(run.cursor.step_index),
        logline.node.id = %node.id,
        logline.node.kind = node.node_type().as_str(),
        logline.step.attempt = i64::from(attempt),
        logline.step.status = Empty,
        error.type = Empty,
    )
}

/// Whether the step loop goes on after a checkpoint.
pub(crate) enum Flow {
    Continue,
    Stop,
}

/// Whether a failure is transient infrastructure trouble: the job is retried and the run
/// continues from its last checkpoint, instead of failing the run. A call its backend
/// already retried ([`Error::retries_spent`]) is not: its retry budget is spent, and
/// retrying the job would multiply the requests.
fn is_transient(e: &Error) -> bool {
    e.is_retryable() && e.kind() != ErrorKind::ModelOutput && !e.retries_spent()
}

impl Executor {
    /// Executes `run_id` until it completes, fails, pauses, is cancelled or `cancel` fires;
    /// returns the version it found the run at, `None` when the run was already settled
    /// (finished or paused) and nothing was executed.
    pub async fn execute_run(
        &self,
        run_id: RunId,
        cancel: CancellationToken,
        by: ExecutedBy,
    ) -> Result<Option<i64>> {
        let run = self.store.get_run(run_id).await?;
        if run.status.is_terminal() || run.status == RunStatus::Paused {
            return Ok(None);
        }
        let found_at = run.version;
        let span = run_span(&run, by.attempt());
        let mut run = run;
        let result = self
            .drive(&mut run, cancel, by)
            .instrument(span.clone())
            .await;
        span.record("logline.run.status", run.status.as_str());
        if let Err(e) = &result {
            crate::layer::record_error(&span, e);
        } else if run.status == RunStatus::Failed {
            span.record("otel.status_code", "ERROR");
        }
        result.map(|()| Some(found_at))
    }

    /// The step loop of [`Executor::execute_run`] over a run that is not finished.
    async fn drive(&self, run: &mut Run, cancel: CancellationToken, by: ExecutedBy) -> Result<()> {
        let plan = self.plan(&run.workflow_id, &run.workflow_version).await?;
        let never_ran = run.status == RunStatus::Pending && run.cursor.step_index == 0;
        // A run that never ran, executed by its first job attempt or in place, has no
        // effects of its own to replay: skip the ledger read. (Should another execution race
        // it through the first step, recording an intent returns that execution's record.)
        let fresh = never_ran && matches!(by, ExecutedBy::FirstJob | ExecutedBy::Inline);
        // Any other job, and an inline execution of a run that already ran, resumes it.
        let resumes = match by {
            ExecutedBy::FirstJob => !never_ran,
            ExecutedBy::RetriedJob { .. } => true,
            ExecutedBy::Inline => !never_ran,
        };
        if run.status == RunStatus::Pending {
            run.status = RunStatus::Running;
        }
        if run.started_at.is_none() {
            run.started_at = Some(Utc::now());
        }
        // A resumed run is claimed first: the version bump fences off any execution that may
        // still be running it elsewhere (a worker that lost its lease can neither record an
        // effect's intent nor commit).
        if resumes {
            match self.checkpoint(run, None, Vec::new()).await? {
                Flow::Continue => {}
                Flow::Stop => return Ok(()),
            }
        }
        // Only the step that was in flight when this job was picked up can have recorded
        // effects; later steps of this execution start fresh.
        let mut recorded = if fresh {
            Vec::new()
        } else {
            self.store.effects(run.id, run.cursor.step_index).await?
        };
        loop {
            if cancel.is_cancelled() {
                return Ok(());
            }
            let step_effects = std::mem::take(&mut recorded);
            match self
                .advance(&plan, run, step_effects, &cancel, by.attempt())
                .await?
            {
                Flow::Continue => {}
                Flow::Stop => return Ok(()),
            }
        }
    }

    /// Executes the next node of `run` and commits the step.
    async fn advance(
        &self,
        plan: &Plan,
        run: &mut Run,
        recorded: Vec<EffectRecord>,
        cancel: &CancellationToken,
        attempt: u32,
    ) -> Result<Flow> {
        if let Err(e) = check_latency(run.started_at, &run.budget) {
            return self.fail_run(run, None, Vec::new(), e).await;
        }
        let Some(node_id) = run.cursor.next_node.clone() else {
            return self.finish_run(run, None, Vec::new()).await;
        };
        let node = plan
            .workflow
            .definition
            .node(&node_id)
            .ok_or_else(|| Error::Internal(format!("node `{node_id}` not in workflow")))?;
        let visits = run.cursor.visits.get(&node_id).copied().unwrap_or(0) + 1;
        if let Some(max) = node.max_visits {
            if visits > max {
                let e = Error::InvalidInput(format!(
                    "node `{node_id}` would run {visits} times; its max_visits guard is {max}"
                ));
                return self.fail_run(run, None, Vec::new(), e).await;
            }
        }
        // Without a template the node consumes the previous output; it is put back if the
        // step does not complete.
        let taken = node.input.is_none();
        let input = match &node.input {
            Some(t) => nodes::resolve(t, run, &run.cursor.last_output),
            None => std::mem::take(&mut run.cursor.last_output),
        };
        let started_at = Utc::now();
        let clock = Instant::now();
        let span = step_span(run, node, attempt);
        let mut sc = StepCtx::new(self, run, recorded, cancel);
        let started = StepStartedPayload {
            node_id: node.id.clone(),
            node_type: node.node_type(),
            index: sc.index,
        };
        sc.emit_at(started, started_at);
        let result = nodes::execute(&mut sc, &plan.workflow, node, &input, visits)
            .instrument(span.clone())
            .await;
        let finished_at = Utc::now();
        telemetry::step_finished(node.node_type(), clock.elapsed().as_secs_f64());
        record_step(&span, &result);
        if let Ok(out) = &result {
            let completed = StepCompletedPayload {
                node_id: node.id.clone(),
                next: out.next.clone(),
            };
            sc.emit_at(completed, finished_at);
        }
        let done = sc.finish();
        let mut events = done.events;
        let mut step = Step {
            id: done.step_id,
            run_id: run.id,
            index: run.cursor.step_index,
            node_id: node_id.clone(),
            node_type: node.node_type(),
            status: StepStatus::Running,
            input,
            output: None,
            error: None,
            started_at,
            finished_at: None,
        };
        match result {
            Ok(out) => {
                step.status = StepStatus::Completed;
                step.finished_at = Some(finished_at);
                run.usage = done.usage;
                (run.budget, run.mode) = (done.budget, done.mode);
                run.cursor.step_index += 1;
                if node.max_visits.is_some() || node.node_type() == NodeType::HumanGate {
                    run.cursor.visits.insert(node_id.clone(), visits);
                }
                if plan.referenced_outputs.contains(&node_id) {
                    run.cursor.outputs.insert(node_id, out.output.clone());
                }
                step.output = Some(out.output);
                run.cursor.last_output = out.carry;
                run.cursor.committed_step_events = 0;
                run.cursor.next_node = out.next;
                if run.cursor.next_node.is_none() {
                    return self.finish_run(run, Some(step), events).await;
                }
                self.checkpoint(run, Some(step), events).await
            }
            Err(Interrupt::Pause(gate)) => {
                if taken {
                    run.cursor.last_output = step.input.clone();
                }
                run.status = RunStatus::Paused;
                run.cursor.committed_step_events = done.emitted;
                events.push(self.event(Some(done.step_id), RunPausedPayload::from(&*gate)));
                run.pending_gate = Some(*gate);
                self.checkpoint(run, Some(step), events).await?;
                Ok(Flow::Stop)
            }
            Err(Interrupt::Fail(e)) if is_transient(&e) => Err(e),
            Err(Interrupt::Fail(e)) if e.kind() == ErrorKind::Cancelled => Ok(Flow::Stop),
            Err(Interrupt::Fail(e)) => {
                if taken {
                    run.cursor.last_output = step.input.clone();
                }
                run.usage = done.usage;
                (run.budget, run.mode) = (done.budget, done.mode);
                step.status = StepStatus::Failed;
                step.error =
                    Some(limits::recorded(&e, self.config.max_error_message_bytes).to_json());
                step.finished_at = Some(finished_at);
                let failed = StepFailedPayload {
                    node_id: step.node_id.clone(),
                    error: e.to_recorded(),
                };
                events.push(self.event(Some(done.step_id), failed));
                self.fail_run(run, Some(step), events, e).await
            }
        }
    }

    /// Commits a checkpoint; a lost optimistic-concurrency race stops this execution.
    async fn checkpoint(
        &self,
        run: &mut Run,
        step: Option<Step>,
        events: Vec<NewEvent>,
    ) -> Result<Flow> {
        let committed = self.commit(run, step, events).await?;
        Ok(if committed && run.status == RunStatus::Running {
            Flow::Continue
        } else {
            Flow::Stop
        })
    }

    /// Commits a checkpoint; `false` when an optimistic-concurrency race was lost (cancelled,
    /// or another worker owns the run now), which leaves no side effect.
    async fn commit(
        &self,
        run: &mut Run,
        step: Option<Step>,
        events: Vec<NewEvent>,
    ) -> Result<bool> {
        let step = step.map(|s| self.stored_step(s));
        match self.store.commit(Checkpoint { run, step, events }).await {
            Ok(c) => {
                run.version = c.version;
                Ok(true)
            }
            Err(e) if e.kind() == ErrorKind::Conflict => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn finish_run(
        &self,
        run: &mut Run,
        step: Option<Step>,
        mut events: Vec<NewEvent>,
    ) -> Result<Flow> {
        run.status = RunStatus::Completed;
        run.result = Some(run.cursor.last_output.clone());
        run.pending_gate = None;
        let completed = RunCompletedPayload {
            result: run.cursor.last_output.clone(),
            usage: run.usage,
        };
        events.push(self.event(None, completed));
        if self.commit(run, step, events).await? {
            telemetry::run_finished(RunStatus::Completed);
        }
        Ok(Flow::Stop)
    }

    async fn fail_run(
        &self,
        run: &mut Run,
        step: Option<Step>,
        mut events: Vec<NewEvent>,
        error: Error,
    ) -> Result<Flow> {
        if let Error::BudgetExceeded(kind) = &error {
            let denied = PolicyEvalPayload::budget_exceeded(*kind, run.usage, run.budget);
            events.push(self.event(None, denied));
        }
        let recorded = limits::recorded(&error, self.config.max_error_message_bytes);
        run.error = Some(self.redactor.redacted(&recorded.to_json()));
        events.push(self.event(None, ErrorPayload::new(recorded.clone())));
        events.push(self.event(None, RunFailedPayload { error: recorded }));
        run.status = RunStatus::Failed;
        run.pending_gate = None;
        if self.commit(run, step, events).await? {
            telemetry::run_finished(RunStatus::Failed);
            if let Error::BudgetExceeded(kind) = &error {
                telemetry::budget_exceeded(*kind);
            }
        }
        Ok(Flow::Stop)
    }

    /// A redacted event (run-level when `step_id` is `None`); the message of an error it
    /// carries is cut to [`EngineConfig::max_error_message_bytes`].
    pub fn event(&self, step_id: Option<Uuid>, payload: impl Into<EventPayload>) -> NewEvent {
        self.event_at(step_id, payload, Utc::now())
    }

    /// [`Executor::event`] at a time already read.
    pub fn event_at(
        &self,
        step_id: Option<Uuid>,
        payload: impl Into<EventPayload>,
        ts: DateTime<Utc>,
    ) -> NewEvent {
        let max_error = self.config.max_error_message_bytes;
        // A short text with nothing to redact or cut is kept as it was serialized.
        let keep = |text: &str| text.len() <= max_error && self.redactor.leaves_json_text(text);
        let fix = |payload: &mut serde_json::Value| {
            limits::cap_payload_error(payload, max_error);
            self.redactor.redact(payload);
        };
        NewEvent::typed_at(step_id, payload.into(), ts, keep, fix)
    }

    /// A step row as stored: secret values redacted when [`EngineConfig::redact_steps`].
    fn stored_step(&self, mut step: Step) -> Step {
        if self.config.redact_steps {
            let r = &self.redactor;
            r.redact_strings(&mut step.input);
            if let Some(v) = step.output.as_mut() {
                r.redact_strings(v);
            }
            if let Some(v) = step.error.as_mut() {
                r.redact_strings(v);
            }
        }
        step
    }

    /// An effect result as recorded in the ledger: secret values redacted when
    /// [`EngineConfig::redact_effects`]; `None` when it is stored as it is.
    pub fn stored_effect(
        &self,
        output: &std::result::Result<serde_json::Value, Error>,
    ) -> Option<std::result::Result<serde_json::Value, Error>> {
        if !self.config.redact_effects {
            return None;
        }
        let r = &self.redactor;
        match output {
            Ok(v) if r.has_secret_strings(v) => {
                let mut v = v.clone();
                r.redact_strings(&mut v);
                Some(Ok(v))
            }
            Ok(_) => None,
            Err(e) => {
                let mut recorded = e.to_recorded();
                recorded.message = r.redact_str(&recorded.message)?;
                Some(Err(recorded.into_error()))
            }
        }
    }

    /// Fails a run that is still pending or running because its job gave up after
    /// `attempts` attempts with `error`, retrying lost races. The run's error keeps the
    /// kind and retryability of `error` (a rate limit stays `rate_limited`).
    pub async fn fail_unfinished(&self, run_id: RunId, error: &Error, attempts: u32) -> Result<()> {
        let mut recorded = error.to_recorded();
        recorded.message = format!(
            "{} (the run's job gave up after {attempts} attempts)",
            recorded.message
        );
        for _ in 0..8 {
            let mut run = self.store.get_run(run_id).await?;
            if run.status.is_terminal() || run.status == RunStatus::Paused {
                return Ok(());
            }
            // A lost race leaves the run as it is; the next round reads it again.
            let error = recorded.clone().into_error();
            self.fail_run(&mut run, None, Vec::new(), error).await?;
        }
        Ok(())
    }

    /// The plan of a workflow version (versions are immutable, so plans are cached).
    pub async fn plan(&self, id: &str, version: &str) -> Result<Arc<Plan>> {
        let cached = lock(&self.plans)
            .get(id)
            .and_then(|v| v.get(version))
            .cloned();
        if let Some(p) = cached {
            return Ok(p);
        }
        let workflow = self.store.get_workflow(id, Some(version)).await?;
        let plan = Arc::new(Plan {
            referenced_outputs: workflow.definition.referenced_outputs(),
            workflow,
        });
        let mut plans = lock(&self.plans);
        if plans.len() > 1024 {
            plans.clear();
        }
        plans
            .entry(id.to_string())
            .or_default()
            .insert(version.to_string(), plan.clone());
        Ok(plan)
    }
}

/// Records how a step ended on its span (the error's kind only, never its message).
fn record_step<T>(span: &Span, result: &std::result::Result<T, Interrupt>) {
    let status = match result {
        Ok(_) => "completed",
        Err(Interrupt::Pause(_)) => "paused",
        Err(Interrupt::Fail(e)) => {
            crate::layer::record_error(span, e);
            "failed"
        }
    };
    span.record("logline.step.status", status);
}
