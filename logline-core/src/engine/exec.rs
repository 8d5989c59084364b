//! Executes a run step by step; each step is committed with its events as one checkpoint.

use std::sync::Arc;

use chrono::Utc;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use super::llm_nodes;
use super::step::{check_latency, Interrupt, NodeResult, StepCtx};
use super::{gate, tools, Inner};
use crate::error::{Error, ErrorKind, Result};
use crate::event::{EventKind, NewEvent};
use crate::run::{GateSubject, Run, RunId, RunStatus, Step, StepStatus};
use crate::store::Checkpoint;
use crate::workflow::{NodeType, Workflow, WorkflowNode};

/// What a node produced.
struct NodeOutput {
    /// Stored on the step.
    output: Value,
    /// Input of the next node.
    carry: Value,
    /// Next node; `None` ends the run.
    next: Option<String>,
}

pub(crate) enum Flow {
    Continue,
    Stop,
}

/// Whether a failure is transient infrastructure trouble: the job is retried and the run
/// continues from its last checkpoint, instead of failing the run.
fn is_transient(e: &Error) -> bool {
    e.is_retryable() && e.kind() != ErrorKind::ModelOutput
}

impl Inner {
    /// Executes `run_id` until it completes, fails, pauses, is cancelled or `cancel` fires.
    /// `first_attempt` says the caller is the first job ever to execute this run, so a run
    /// that never ran cannot have recorded effects yet.
    pub(crate) async fn execute_run(
        &self,
        run_id: RunId,
        cancel: CancellationToken,
        first_attempt: bool,
    ) -> Result<()> {
        let mut run = self.store.get_run(run_id).await?;
        if run.status.is_terminal() || run.status == RunStatus::Paused {
            return Ok(());
        }
        let wf = self
            .workflow(&run.workflow_id, &run.workflow_version)
            .await?;
        // A run that never ran, executed by its first job attempt, has no recorded effects:
        // skip the ledger read.
        let fresh = first_attempt && run.status == RunStatus::Pending && run.cursor.step_index == 0;
        if run.status == RunStatus::Pending {
            run.status = RunStatus::Running;
        }
        if run.started_at.is_none() {
            run.started_at = Some(Utc::now());
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
            match self
                .advance(&wf, &mut run, std::mem::take(&mut recorded), &cancel)
                .await?
            {
                Flow::Continue => {}
                Flow::Stop => return Ok(()),
            }
        }
    }

    async fn advance(
        &self,
        wf: &Workflow,
        run: &mut Run,
        recorded: Vec<crate::store::EffectRecord>,
        cancel: &CancellationToken,
    ) -> Result<Flow> {
        if let Err(e) = check_latency(run.started_at, &run.budget) {
            return self.fail_run(run, None, Vec::new(), e).await;
        }
        let Some(node_id) = run.cursor.next_node.clone() else {
            return self.finish_run(run, None, Vec::new()).await;
        };
        let node = wf
            .definition
            .node(&node_id)
            .ok_or_else(|| Error::Internal(format!("node `{node_id}` not in workflow")))?;
        let visits = run.cursor.visits.get(&node_id).copied().unwrap_or(0) + 1;
        if let Some(max) = node.config.max_visits {
            if visits > max {
                let e = Error::InvalidInput(format!(
                    "node `{node_id}` would run {visits} times; its max_visits guard is {max}"
                ));
                return self.fail_run(run, None, Vec::new(), e).await;
            }
        }
        // Without a template the node consumes the previous output; it is put back if the
        // step does not complete.
        let taken = node.config.input.is_none();
        let input = match &node.config.input {
            Some(t) => crate::mapping::resolve(
                t,
                &[("input", &run.input), ("prev", &run.cursor.last_output)],
            ),
            None => std::mem::take(&mut run.cursor.last_output),
        };
        let started_at = Utc::now();
        let (result, emitted, mut events, usage, control, step_id) = {
            let mut sc = StepCtx::new(self, run, recorded, cancel);
            sc.emit(
                EventKind::StepStarted,
                json!({ "node_id": node.id, "node_type": node.node_type, "index": sc.index }),
            );
            let result = self.execute_node(&mut sc, wf, node, &input, visits).await;
            if let Ok(out) = &result {
                sc.emit(
                    EventKind::StepCompleted,
                    json!({ "node_id": node.id, "next": out.next }),
                );
            }
            let (emitted, events) = sc.take_events();
            (
                result,
                emitted,
                events,
                sc.usage,
                (sc.budget, sc.mode),
                sc.step_id,
            )
        };
        let mut step = Step {
            id: step_id,
            run_id: run.id,
            index: run.cursor.step_index,
            node_id: node_id.clone(),
            node_type: node.node_type,
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
                step.output = Some(out.output);
                step.finished_at = Some(Utc::now());
                run.usage = usage;
                (run.budget, run.mode) = control;
                run.cursor.step_index += 1;
                if node.config.max_visits.is_some() || node.node_type == NodeType::HumanGate {
                    run.cursor.visits.insert(node_id, visits);
                }
                run.cursor.last_output = out.carry;
                run.cursor.committed_step_events = 0;
                run.cursor.next_node = out.next;
                if run.cursor.next_node.is_none() {
                    return self.finish_run(run, Some(step), events).await;
                }
                Ok(self.checkpoint(run, Some(step), events).await?)
            }
            Err(Interrupt::Pause(gate)) => {
                if taken {
                    run.cursor.last_output = step.input.clone();
                }
                run.status = RunStatus::Paused;
                run.cursor.committed_step_events = emitted;
                events.push(NewEvent::step(
                    step_id,
                    EventKind::RunPaused,
                    self.redactor.redacted(&json!({
                        "gate_id": gate.gate_id,
                        "subject": gate.subject,
                        "reason": gate.reason,
                        "policy_id": gate.policy_id,
                    })),
                ));
                run.pending_gate = Some(gate);
                self.checkpoint(run, Some(step), events).await?;
                Ok(Flow::Stop)
            }
            Err(Interrupt::Fail(e)) if is_transient(&e) => Err(e),
            Err(Interrupt::Fail(e)) if e.kind() == ErrorKind::Cancelled => Ok(Flow::Stop),
            Err(Interrupt::Fail(e)) => {
                if taken {
                    run.cursor.last_output = step.input.clone();
                }
                run.usage = usage;
                (run.budget, run.mode) = control;
                step.status = StepStatus::Failed;
                step.error = Some(e.to_json());
                step.finished_at = Some(Utc::now());
                events.push(NewEvent::step(
                    step_id,
                    EventKind::StepFailed,
                    json!({ "node_id": step.node_id, "error": e.to_json() }),
                ));
                self.fail_run(run, Some(step), events, e).await
            }
        }
    }

    async fn execute_node(
        &self,
        sc: &mut StepCtx<'_>,
        wf: &Workflow,
        node: &WorkflowNode,
        input: &Value,
        visit: u32,
    ) -> NodeResult<NodeOutput> {
        let output = match node.node_type {
            NodeType::Static => self.run_static(sc, node, input)?,
            NodeType::ToolNode => {
                let tool_id = node.config.tool_id.as_deref().ok_or_else(|| {
                    Error::InvalidInput(format!("tool_node `{}` has no tool_id", node.id))
                })?;
                tools::call_one(sc, tool_id, input.clone(), node.config.timeout_ms).await?
            }
            NodeType::AgentNode => {
                let agent_id = node.config.agent_id.as_deref().ok_or_else(|| {
                    Error::InvalidInput(format!("agent_node `{}` has no agent_id", node.id))
                })?;
                llm_nodes::run_agent(sc, agent_id, input).await?
            }
            NodeType::Router => {
                let (route, target) = llm_nodes::run_router(sc, node, input).await?;
                return Ok(NodeOutput {
                    output: json!({ "route": route, "target": target }),
                    carry: input.clone(),
                    next: Some(target),
                });
            }
            NodeType::HumanGate => {
                let gate_id = format!("node:{}:{}", node.id, visit);
                if !gate::approved(sc.run, &gate_id, None) {
                    return Err(Interrupt::Pause(gate::pending(
                        gate_id,
                        GateSubject::Node {
                            node_id: node.id.clone(),
                        },
                        node.config
                            .message
                            .clone()
                            .unwrap_or_else(|| format!("approval required at `{}`", node.id)),
                        None,
                    )));
                }
                input.clone()
            }
        };
        let next = llm_nodes::next_node(sc, &wf.definition, node, &output).await?;
        Ok(NodeOutput {
            carry: output.clone(),
            output,
            next,
        })
    }

    fn run_static(&self, sc: &StepCtx<'_>, node: &WorkflowNode, input: &Value) -> Result<Value> {
        if let Some(name) = &node.config.handler {
            let h = self.statics.get(name).ok_or_else(|| {
                Error::InvalidInput(format!("static handler `{name}` is not registered"))
            })?;
            return h(input, &sc.run.input);
        }
        Ok(match &node.config.output {
            Some(t) => crate::mapping::resolve(t, &[("input", &sc.run.input), ("prev", input)]),
            None => input.clone(),
        })
    }

    /// Commits a checkpoint; a lost optimistic-concurrency race stops this execution.
    async fn checkpoint(
        &self,
        run: &mut Run,
        step: Option<Step>,
        events: Vec<NewEvent>,
    ) -> Result<Flow> {
        match self.store.commit(Checkpoint { run, step, events }).await {
            Ok(c) => {
                run.version = c.version;
                Ok(if run.status == RunStatus::Running {
                    Flow::Continue
                } else {
                    Flow::Stop
                })
            }
            // Cancelled, or another worker owns the run now: stop without side effects.
            Err(e) if e.kind() == ErrorKind::Conflict => Ok(Flow::Stop),
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
        let mut payload = json!({ "result": run.result, "usage": run.usage });
        self.redactor.redact(&mut payload);
        events.push(NewEvent::run(EventKind::RunCompleted, payload));
        self.checkpoint(run, step, events).await?;
        Ok(Flow::Stop)
    }

    pub(crate) async fn fail_run(
        &self,
        run: &mut Run,
        step: Option<Step>,
        mut events: Vec<NewEvent>,
        error: Error,
    ) -> Result<Flow> {
        let err = self.redactor.redacted(&error.to_json());
        if let Error::BudgetExceeded(kind) = &error {
            events.push(NewEvent::run(
                EventKind::PolicyEval,
                json!({ "action": "budget", "decision": "deny", "reason": kind.reason(), "usage": run.usage, "budget": run.budget }),
            ));
        }
        events.push(NewEvent::run(EventKind::Error, json!({ "error": err })));
        events.push(NewEvent::run(EventKind::RunFailed, json!({ "error": err })));
        run.status = RunStatus::Failed;
        run.error = Some(err);
        run.pending_gate = None;
        self.checkpoint(run, step, events).await?;
        Ok(Flow::Stop)
    }

    /// The workflow version a run executes (immutable, so cached).
    pub(crate) async fn workflow(&self, id: &str, version: &str) -> Result<Arc<Workflow>> {
        let cached = self
            .workflows
            .lock()
            .ok()
            .and_then(|m| m.get(id).and_then(|v| v.get(version)).cloned());
        if let Some(w) = cached {
            return Ok(w);
        }
        let w = Arc::new(self.store.get_workflow(id, Some(version)).await?);
        if let Ok(mut m) = self.workflows.lock() {
            if m.len() > 1024 {
                m.clear();
            }
            m.entry(id.to_string())
                .or_default()
                .insert(version.to_string(), w.clone());
        }
        Ok(w)
    }
}
