//! The tool runtime inside a step: policy → approval → JSON-Schema validation → execute
//! with timeout → ledger → `tool_call` event.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tracing::Instrument;

use std::sync::Arc;

use super::gate;
use super::ledger::{replay, EFFECT_TOOL};
use super::step::{Interrupt, NodeResult, StepCtx};
use crate::error::{Error, Result};
use crate::event::{ErrorPayload, ToolCallPayload};
use crate::policy::{Effect, PolicyAction, PolicyRequest, PolicyResource};
use crate::run::{GateSubject, Run, RunMode};
use crate::search::{Connected, DenyReason, ToolGate};
use crate::store::{EffectRecord, EffectState};
use crate::telemetry;
use crate::tool::{ProgressSink, ToolContext, ToolHub, ToolSpec};

/// A tool call that passed policy, approval and validation.
pub(crate) struct Prepared {
    seq: u32,
    spec: Arc<ToolSpec>,
    arguments: Value,
    timeout: Duration,
    agent_id: Option<String>,
    /// The model's id of the call, when a model asked for it.
    call_id: Option<String>,
}

impl Prepared {
    /// Sets the model's id of the call (traced as `gen_ai.tool.call.id`).
    pub fn with_call_id(mut self, id: &str) -> Self {
        if !id.is_empty() {
            self.call_id = Some(id.to_string());
        }
        self
    }
}

/// A finished tool call.
pub(crate) struct Finished {
    pub result: Result<Value>,
}

/// Where a call comes from (for the policy context and events).
#[derive(Clone, Copy)]
pub(crate) enum Caller<'a> {
    Node,
    Agent(&'a str),
}

/// Policy context of a tool call.
fn policy_request(run: &Run, mode: RunMode, spec: &ToolSpec, caller: Caller<'_>) -> PolicyRequest {
    let agent = match caller {
        Caller::Agent(id) => json!({ "id": id }),
        Caller::Node => Value::Null,
    };
    PolicyRequest {
        action: PolicyAction::ToolCall,
        subject: run.subject.clone(),
        resource: PolicyResource {
            kind: "tool".into(),
            id: spec.id.clone(),
        },
        context: json!({
            "run": { "id": run.id, "mode": mode.as_str(), "workflow_id": run.workflow_id },
            "tool": {
                "id": spec.id,
                "risk_level": spec.risk_level.as_str(),
                "tags": spec.tags,
                "side_effects": spec.side_effects,
                "toolkit": spec.toolkit,
                "requires_confirmation": spec.requires_confirmation,
            },
            "agent": agent,
        }),
    }
}

/// What the engine's tool gate says about a call a model asked for.
enum Gate {
    Pass,
    /// Riskier than the gate lets run unattended: a person confirms the exact call.
    Confirm,
    Refuse(Error),
}

/// The gate at call time, the same rules tool search applies before showing a tool: blocked
/// tags, scopes and denied tools refuse the call, a toolkit the user has not connected refuses
/// it, and a risk above the ceiling turns it into a call a person confirms.
async fn gate_check(sc: &StepCtx<'_>, spec: &ToolSpec) -> Result<Gate> {
    let rules = &sc.exec.config.agent_tool_gate;
    let connections = match sc.exec.hubs.get(&spec.hub) {
        Some(hub) if spec.requires_connection => hub.connections(&sc.run.subject).await?,
        _ => Vec::new(),
    };
    let gate = ToolGate::new(rules.clone(), Connected::from_connections(&connections));
    Ok(match gate.check(spec) {
        Ok(()) => Gate::Pass,
        Err(DenyReason::TooRisky { .. }) => Gate::Confirm,
        Err(why) => Gate::Refuse(Error::PolicyDenied {
            policy_id: None,
            reason: format!("tool `{}` is not allowed here: {why}", spec.id),
        }),
    })
}

/// Policy, approval and validation of one call. `Err(Interrupt)` pauses or fails the step;
/// `Ok(Err(e))` is a call-level failure the caller may hand back to a model.
pub(crate) async fn prepare(
    sc: &mut StepCtx<'_>,
    spec: Arc<ToolSpec>,
    arguments: Value,
    caller: Caller<'_>,
    timeout_override: Option<u64>,
) -> NodeResult<std::result::Result<Prepared, Error>> {
    let seq = sc.next_seq();
    let tool_id = spec.id.as_str();
    if let Some(e) = app_scope_denial(sc, &spec).await? {
        telemetry::policy_denied(PolicyAction::ToolCall.as_str());
        sc.emit(ErrorPayload::tool(tool_id, e.to_recorded()));
        return Ok(Err(e));
    }
    let mut needs_confirmation = spec.requires_confirmation;
    if let Caller::Agent(_) = caller {
        match gate_check(sc, &spec).await? {
            Gate::Pass => {}
            Gate::Confirm => needs_confirmation = true,
            Gate::Refuse(e) => {
                telemetry::policy_denied(PolicyAction::ToolCall.as_str());
                sc.emit(ErrorPayload::tool(tool_id, e.to_recorded()));
                return Ok(Err(e));
            }
        }
    }
    let decision = sc
        .exec
        .policy
        .evaluate(&policy_request(sc.run, sc.mode, &spec, caller))
        .await?;
    sc.emit_policy(
        PolicyAction::ToolCall,
        PolicyResource {
            kind: "tool".into(),
            id: tool_id.to_string(),
        },
        &decision,
    );
    if decision.effect == Effect::Deny {
        telemetry::policy_denied(PolicyAction::ToolCall.as_str());
        let e = Error::PolicyDenied {
            policy_id: decision.policy_id.clone(),
            reason: decision.reason.clone(),
        };
        sc.emit(ErrorPayload::tool(tool_id, e.to_recorded()));
        return Err(e.into());
    }
    if decision.effect == Effect::RequireApproval || needs_confirmation {
        let digest = gate::digest(&arguments);
        let gate_id = format!("tool:{}:{}:{}", sc.index, seq, tool_id);
        if gate::refused(sc.run, &gate_id, &digest) {
            let e = Error::PolicyDenied {
                policy_id: None,
                reason: format!("the user refused this call of `{tool_id}`; it was not executed"),
            };
            sc.emit(ErrorPayload::tool(tool_id, e.to_recorded()));
            return Ok(Err(e));
        }
        if !gate::approved(sc.run, &gate_id, Some(&digest)) {
            let reason = if decision.effect == Effect::RequireApproval {
                decision.reason.clone()
            } else {
                format!("tool `{tool_id}` requires confirmation")
            };
            return Err(Interrupt::Pause(Box::new(gate::pending(
                gate_id,
                GateSubject::ToolCall {
                    tool_id: tool_id.to_string(),
                    args_digest: digest,
                    arguments: arguments.clone(),
                },
                reason,
                decision.policy_id,
            ))));
        }
    }
    if let Err(e) = sc
        .exec
        .schemas
        .validate(tool_id, &spec.input_schema, &arguments)
    {
        sc.emit(ErrorPayload::tool(tool_id, e.to_recorded()));
        return Ok(Err(e));
    }
    let timeout = Duration::from_millis(
        timeout_override
            .or(spec.timeout_ms)
            .unwrap_or(sc.exec.config.tool_timeout.as_millis() as u64),
    );
    Ok(Ok(Prepared {
        seq,
        spec,
        arguments,
        timeout,
        agent_id: match caller {
            Caller::Agent(id) => Some(id.to_string()),
            Caller::Node => None,
        },
        call_id: None,
    }))
}

/// Why a run of an app may not call `spec` (a tool its manifest's scopes do not name, or an
/// app that is not installed); `None` for runs of no app and tools in scope.
async fn app_scope_denial(sc: &StepCtx<'_>, spec: &ToolSpec) -> Result<Option<Error>> {
    let Some(app_id) = &sc.run.subject.app_id else {
        return Ok(None);
    };
    let reason = match sc.exec.apps.get_app(app_id).await {
        Ok(app) if app.allows_tool(&spec.id, &spec.hub) => return Ok(None),
        Ok(_) => format!("tool `{}` is outside the scopes of app `{app_id}`", spec.id),
        Err(e) if e.kind() == crate::ErrorKind::NotFound => {
            format!("app `{app_id}` is not installed")
        }
        Err(e) => return Err(e),
    };
    Ok(Some(Error::PolicyDenied {
        policy_id: None,
        reason,
    }))
}

/// Executes a prepared call, or replays its recorded result. Returns the call's wall time
/// when it was sent in this execution.
///
/// The call's intent is recorded (fenced by the run version) before it is sent and its
/// outcome after; an intent without an outcome — left by an execution that died, timed out
/// or could not record — is sent again only to a hub that honours idempotency keys or for an
/// idempotent tool, and is otherwise reported as [`Error::EffectOutcomeUnknown`].
pub(crate) async fn execute(
    sc: &StepCtx<'_>,
    p: Prepared,
) -> (Prepared, Result<Value>, Option<u64>) {
    let (result, ms) = match send_once(sc, &p).await {
        Ok(sent) => sent,
        Err(e) => (Err(e), None),
    };
    (p, result, ms)
}

/// The outcome of the call at this position: replayed, resolved, or sent now.
async fn send_once(sc: &StepCtx<'_>, p: &Prepared) -> Result<(Result<Value>, Option<u64>)> {
    let hub = sc.exec.hubs.get(&p.spec.hub).ok_or_else(|| {
        Error::InvalidInput(format!(
            "tool `{}` names unknown hub `{}`",
            p.spec.id, p.spec.hub
        ))
    })?;
    let resendable = hub.honours_idempotency_keys() || p.spec.idempotent;
    let earlier = match sc.recorded(p.seq) {
        Some(rec) => Some(rec.clone()),
        None => claim(sc, p).await?,
    };
    if let Some(rec) = earlier {
        if rec.state == EffectState::Completed {
            return Ok((replay(&rec), None));
        }
        if !resendable {
            let unknown = Error::EffectOutcomeUnknown {
                tool_id: p.spec.id.clone(),
                message: "an earlier execution sent it and ended before recording the result"
                    .into(),
            };
            return Ok((recorded_outcome(sc, p, Err(unknown)).await?, None));
        }
    }
    let started = Instant::now();
    let sent = run_on_hub(hub.as_ref(), sc, p).await;
    telemetry::tool_call(&p.spec.id, sent.as_ref().err());
    let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let outcome = match sent {
        Ok(v) => Ok(v),
        // Interrupted here (cancel, lost lease): the intent stays for whoever resumes.
        Err(e) if e.kind() == crate::ErrorKind::Cancelled => return Ok((Err(e), Some(ms))),
        Err(e) if e.did_not_execute() => {
            sc.exec
                .store
                .release_intent(sc.run.id, sc.index, p.seq)
                .await?;
            return Ok((Err(e), Some(ms)));
        }
        // A transient failure of a call that may have run: a retried job sends it again with
        // the same key.
        Err(e) if e.is_retryable() && resendable => return Ok((Err(e), Some(ms))),
        Err(e) if e.is_retryable() => Err(Error::EffectOutcomeUnknown {
            tool_id: p.spec.id.clone(),
            message: format!("the call may have run: {e}"),
        }),
        Err(e) => Err(e),
    };
    Ok((recorded_outcome(sc, p, outcome).await?, Some(ms)))
}

/// Records the intent of the call; returns what another execution recorded there first.
/// Fenced out (the run moved on under another execution): this execution stops.
async fn claim(sc: &StepCtx<'_>, p: &Prepared) -> Result<Option<EffectRecord>> {
    let intent = EffectRecord::intent(sc.run.id, sc.index, p.seq, EFFECT_TOOL, &p.spec.id);
    match sc.exec.store.record_intent(&intent, sc.run.version).await {
        Err(e) if e.kind() == crate::ErrorKind::Conflict => Err(Error::Cancelled(format!(
            "run {} is executed elsewhere now: {e}",
            sc.run.id
        ))),
        other => other,
    }
}

/// Records the outcome; another execution's, if it recorded first, wins.
async fn recorded_outcome(
    sc: &StepCtx<'_>,
    p: &Prepared,
    outcome: Result<Value>,
) -> Result<Result<Value>> {
    Ok(
        match sc.record(p.seq, EFFECT_TOOL, &p.spec.id, &outcome).await? {
            None => outcome,
            Some(theirs) => replay(&theirs),
        },
    )
}

async fn run_on_hub(hub: &dyn ToolHub, sc: &StepCtx<'_>, p: &Prepared) -> Result<Value> {
    let run = sc.run;
    let progress = ProgressSink::new(
        sc.exec.progress.clone(),
        run.id,
        sc.step_id,
        p.agent_id.as_deref(),
        &p.spec.id,
    );
    let ctx = ToolContext {
        run_id: Some(run.id),
        step_id: Some(sc.step_id),
        subject: run.subject.clone(),
        mode: run.mode,
        idempotency_key: Some(format!("{}/{}/{}", run.id, sc.index, p.seq)),
        connected_account_id: None,
        agent_id: p.agent_id.clone(),
        progress: Some(progress),
    };
    let span = crate::layer::tool_span(&p.spec.id, hub.name(), &ctx, p.call_id.as_deref());
    let call = hub.execute(&p.spec.id, p.arguments.clone(), &ctx);
    let result = async {
        tokio::select! {
            r = tokio::time::timeout(p.timeout, call) => match r {
                Ok(r) => r,
                Err(_) => Err(Error::Timeout(format!("tool `{}` after {:?}", p.spec.id, p.timeout))),
            },
            _ = sc.cancel.cancelled() => Err(Error::Cancelled(format!("tool `{}` cancelled", p.spec.id))),
        }
    }
    .instrument(span.clone())
    .await;
    crate::layer::record(&span, &result);
    result
}

/// Emits the `tool_call` event of a finished call and counts it.
pub(crate) fn finish(
    sc: &mut StepCtx<'_>,
    p: Prepared,
    result: Result<Value>,
    ms: Option<u64>,
) -> Finished {
    sc.usage.tool_calls += 1;
    let (output, error) = match &result {
        Ok(v) => (v.clone(), None),
        Err(e) => (Value::Null, Some(e.to_recorded())),
    };
    sc.emit(ToolCallPayload {
        tool_id: p.spec.id.clone(),
        hub: p.spec.hub.clone(),
        input: p.arguments,
        output,
        error,
        duration_ms: ms,
        replayed: ms.is_none(),
    });
    Finished { result }
}

/// One tool call end to end (tool nodes): any failure fails the step.
pub(crate) async fn call_one(
    sc: &mut StepCtx<'_>,
    tool_id: &str,
    arguments: Value,
    timeout: Option<u64>,
) -> NodeResult<Value> {
    let spec = match sc.exec.store.get_tool_spec(tool_id).await {
        Ok(s) => s,
        Err(e) if e.kind() == crate::ErrorKind::NotFound => {
            return Err(Error::InvalidInput(format!("unknown tool `{tool_id}`")).into())
        }
        Err(e) => return Err(e.into()),
    };
    let prepared = prepare(sc, spec, arguments, Caller::Node, timeout).await??;
    let (p, result, ms) = execute(sc, prepared).await;
    let finished = finish(sc, p, result, ms);
    finished.result.map_err(Interrupt::Fail)
}
