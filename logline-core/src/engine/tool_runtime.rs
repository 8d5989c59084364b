//! The tool runtime inside a step: policy → approval → JSON-Schema validation → execute
//! with timeout → ledger → `tool_call` event.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use std::sync::Arc;

use super::exec::Executor;
use super::gate;
use super::ledger::{replay, EFFECT_TOOL};
use super::step::{Interrupt, NodeResult, StepCtx};
use crate::error::{Error, Result};
use crate::event::EventKind;
use crate::policy::{Effect, PolicyAction, PolicyRequest, PolicyResource};
use crate::run::{GateSubject, Run, RunMode};
use crate::tool::{ToolContext, ToolSpec};

/// A tool call that passed policy, approval and validation.
pub(crate) struct Prepared {
    seq: u32,
    spec: Arc<ToolSpec>,
    arguments: Value,
    timeout: Duration,
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
    let decision = sc
        .exec
        .policy
        .evaluate(&policy_request(sc.run, sc.mode, &spec, caller))
        .await?;
    sc.emit_policy(
        PolicyAction::ToolCall.as_str(),
        json!({"type": "tool", "id": tool_id}),
        &decision,
    );
    if decision.effect == Effect::Deny {
        let e = Error::PolicyDenied {
            policy_id: decision.policy_id.clone(),
            reason: decision.reason.clone(),
        };
        sc.emit(
            EventKind::Error,
            json!({ "tool_id": tool_id, "error": e.to_json() }),
        );
        return Err(e.into());
    }
    if decision.effect == Effect::RequireApproval || spec.requires_confirmation {
        let digest = gate::digest(&arguments);
        let gate_id = format!("tool:{}:{}:{}", sc.index, seq, tool_id);
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
        sc.emit(
            EventKind::Error,
            json!({ "tool_id": tool_id, "error": e.to_json() }),
        );
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
    }))
}

/// Executes a prepared call, or replays its recorded result.
pub(crate) async fn execute(
    sc: &StepCtx<'_>,
    p: Prepared,
) -> (Prepared, Result<Value>, Option<u128>) {
    if let Some(rec) = sc.recorded(p.seq) {
        return (p, replay(rec), None);
    }
    let started = Instant::now();
    let result = run_on_hub(sc.exec, sc.run, sc.step_id, sc.index, &p, sc.cancel).await;
    // Transient failures are not recorded, so a retry of the job executes the call again.
    let durable = match &result {
        Ok(_) => true,
        Err(e) => !e.is_retryable(),
    };
    if durable {
        if let Err(e) = sc.record(p.seq, EFFECT_TOOL, &p.spec.id, &result).await {
            return (p, Err(e), None);
        }
    }
    (p, result, Some(started.elapsed().as_millis()))
}

async fn run_on_hub(
    exec: &Executor,
    run: &Run,
    step_id: uuid::Uuid,
    index: u32,
    p: &Prepared,
    cancel: &tokio_util::sync::CancellationToken,
) -> Result<Value> {
    let hub = exec.hubs.get(&p.spec.hub).ok_or_else(|| {
        Error::InvalidInput(format!(
            "tool `{}` names unknown hub `{}`",
            p.spec.id, p.spec.hub
        ))
    })?;
    let ctx = ToolContext {
        run_id: Some(run.id),
        step_id: Some(step_id),
        subject: run.subject.clone(),
        mode: run.mode,
        idempotency_key: Some(format!("{}/{}/{}", run.id, index, p.seq)),
        connected_account_id: None,
    };
    let call = hub.execute(&p.spec.id, p.arguments.clone(), &ctx);
    tokio::select! {
        r = tokio::time::timeout(p.timeout, call) => match r {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout(format!("tool `{}` after {:?}", p.spec.id, p.timeout))),
        },
        _ = cancel.cancelled() => Err(Error::Cancelled(format!("tool `{}` cancelled", p.spec.id))),
    }
}

/// Emits the `tool_call` event of a finished call and counts it.
pub(crate) fn finish(
    sc: &mut StepCtx<'_>,
    p: Prepared,
    result: Result<Value>,
    ms: Option<u128>,
) -> Finished {
    sc.usage.tool_calls += 1;
    let (output, error) = match &result {
        Ok(v) => (v.clone(), Value::Null),
        Err(e) => (Value::Null, e.to_json()),
    };
    sc.emit(
        EventKind::ToolCall,
        json!({
            "tool_id": p.spec.id,
            "hub": p.spec.hub,
            "input": p.arguments,
            "output": output,
            "error": error,
            "duration_ms": ms,
            "replayed": ms.is_none(),
        }),
    );
    Finished { result }
}

/// One tool call end to end (tool nodes): any failure fails the step.
pub(crate) async fn call_one(
    sc: &mut StepCtx<'_>,
    tool_id: &str,
    arguments: Value,
    timeout: Option<u64>,
) -> NodeResult<Value> {
    let spec = match sc.exec.store.get_tool(tool_id).await {
        Ok(s) => Arc::new(s),
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
