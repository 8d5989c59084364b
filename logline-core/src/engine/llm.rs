//! One LLM call inside a step (budget, ledger replay, streaming progress, `llm_call` event),
//! the `agent_call` policy check, and constrained choices (routers, edge conditions).

use futures::StreamExt;
use serde_json::{json, Value};
use tracing::Instrument;

use super::gate;
use super::ledger::{replay, EFFECT_LLM};
use super::step::{Interrupt, NodeResult, StepCtx};
use super::Progress;
use crate::agent::Agent;
use crate::error::Error;
use crate::event::{ErrorPayload, LlmCallPayload, LlmPurpose};
use crate::llm::{LlmRequest, LlmResponse, LlmStreamEvent, Message, OutputSchema};
use crate::policy::{Effect, PolicyAction, PolicyRequest, PolicyResource};
use crate::run::GateSubject;
use crate::store::EffectRecord;
use crate::telemetry;

/// Who is calling the model, for events.
pub(crate) struct LlmCaller<'a> {
    pub agent_id: &'a str,
    pub provider: &'a str,
    pub purpose: LlmPurpose,
}

/// One LLM call: budget check, ledger replay or provider call, usage and `llm_call` event.
pub(crate) async fn call_llm(
    sc: &mut StepCtx<'_>,
    caller: &LlmCaller<'_>,
    request: LlmRequest,
) -> NodeResult<LlmResponse> {
    let seq = sc.next_seq();
    let (response, replayed) = match sc.recorded(seq) {
        Some(rec) => (recorded_response(rec)?, true),
        None => {
            sc.check_llm_call_allowed()?;
            let r = invoke(sc, caller, &request).await;
            count_call(sc, caller, &request, &r);
            let r = r?;
            let as_json = serde_json::to_value(&r)
                .map_err(|e| Error::Internal(format!("LLM response not serializable: {e}")))?;
            // Another execution of this step recorded first: its answer is the one the run
            // goes on with.
            match sc
                .record(seq, EFFECT_LLM, caller.agent_id, &Ok(as_json))
                .await?
            {
                None => (r, false),
                Some(theirs) => (recorded_response(&theirs)?, true),
            }
        }
    };
    let cost = sc.account_llm(&response, &request.model);
    let tool_names: Vec<String> = response.tool_calls.iter().map(|c| c.name.clone()).collect();
    let model = if response.model.is_empty() {
        &request.model
    } else {
        &response.model
    };
    sc.emit(LlmCallPayload {
        agent_id: caller.agent_id.to_string(),
        purpose: caller.purpose,
        provider: caller.provider.to_string(),
        model: model.clone(),
        usage: response.usage,
        cost_cents: cost,
        finish_reason: response.finish_reason,
        tool_calls: tool_names,
        text: response.text.clone(),
        replayed,
    });
    sc.check_usage()?;
    Ok(response)
}

/// Counts a model call that was sent: its outcome, tokens and cost.
fn count_call(
    sc: &StepCtx<'_>,
    caller: &LlmCaller<'_>,
    request: &LlmRequest,
    result: &crate::Result<LlmResponse>,
) {
    match result {
        Ok(r) => {
            let model = if r.model.is_empty() {
                &request.model
            } else {
                &r.model
            };
            let cost = sc.exec.prices.cost_cents(model, &r.usage);
            telemetry::llm_call(caller.provider, model, Ok((&r.usage, cost)));
        }
        Err(e) => telemetry::llm_call(caller.provider, &request.model, Err(e)),
    }
}

/// The model answer a ledger record holds.
fn recorded_response(rec: &EffectRecord) -> crate::Result<LlmResponse> {
    serde_json::from_value(replay(rec)?)
        .map_err(|e| Error::Internal(format!("recorded LLM effect unreadable: {e}")))
}

async fn invoke(
    sc: &StepCtx<'_>,
    caller: &LlmCaller<'_>,
    request: &LlmRequest,
) -> crate::Result<LlmResponse> {
    let provider = sc
        .exec
        .llms
        .get(caller.provider)
        .ok_or_else(|| Error::InvalidInput(format!("no LLM provider named `{}`", caller.provider)))?
        .clone();
    let work = async {
        // Only an agent's text is for people; routers, conditions and summaries are not.
        if caller.purpose != LlmPurpose::Agent || sc.exec.progress.receiver_count() == 0 {
            return provider.complete(request).await;
        }
        let mut stream = provider.stream(request).await?;
        while let Some(item) = stream.next().await {
            match item? {
                LlmStreamEvent::Completed { response } => return Ok(response),
                LlmStreamEvent::TextDelta { delta } => {
                    let _ = sc.exec.progress.send(Progress {
                        run_id: sc.run.id,
                        step_id: sc.step_id,
                        agent_id: caller.agent_id.to_string(),
                        delta,
                        tool: None,
                    });
                }
                LlmStreamEvent::ToolCallDelta { .. } => {}
            }
        }
        Err(Error::ModelOutput(
            "stream ended without a completed response".into(),
        ))
    };
    let limit = sc.exec.config.llm_timeout;
    let span = crate::layer::chat_span(provider.name(), request);
    let result = async {
        tokio::select! {
            r = tokio::time::timeout(limit, work) => r.unwrap_or_else(|_| {
                Err(Error::Timeout(format!(
                    "LLM call to provider `{}` took longer than the engine's llm_timeout of {} ms",
                    caller.provider,
                    limit.as_millis()
                )))
            }),
            _ = sc.cancel.cancelled() => Err(Error::Cancelled("LLM call cancelled".into())),
        }
    }
    .instrument(span.clone())
    .await;
    match &result {
        Ok(response) => crate::layer::record_response(&span, response),
        Err(e) => crate::layer::record_error(&span, e),
    }
    result
}

/// Policy check before an agent runs (`agent_call`).
pub(crate) async fn check_agent_call(sc: &mut StepCtx<'_>, agent_id: &str) -> NodeResult<()> {
    let run = sc.run;
    let decision = sc
        .exec
        .policy
        .evaluate(&PolicyRequest {
            action: PolicyAction::AgentCall,
            subject: run.subject.clone(),
            resource: PolicyResource {
                kind: "agent".into(),
                id: agent_id.to_string(),
            },
            context: json!({
                "run": { "id": run.id, "mode": run.mode.as_str(), "workflow_id": run.workflow_id },
                "agent": { "id": agent_id },
            }),
        })
        .await?;
    sc.emit_policy(
        PolicyAction::AgentCall,
        PolicyResource {
            kind: "agent".into(),
            id: agent_id.to_string(),
        },
        &decision,
    );
    match decision.effect {
        Effect::Deny => {
            telemetry::policy_denied(PolicyAction::AgentCall.as_str());
            let e = Error::PolicyDenied {
                policy_id: decision.policy_id,
                reason: decision.reason,
            };
            Err(e.into())
        }
        Effect::RequireApproval => {
            let gate_id = format!("agent:{}:{}", sc.index, agent_id);
            if gate::approved(sc.run, &gate_id, None) {
                Ok(())
            } else {
                Err(Interrupt::Pause(Box::new(gate::pending(
                    gate_id,
                    GateSubject::AgentCall {
                        agent_id: agent_id.to_string(),
                    },
                    decision.reason,
                    decision.policy_id,
                ))))
            }
        }
        Effect::Allow | Effect::Modify => Ok(()),
    }
}

pub(crate) fn request_for(agent: &Agent, messages: Vec<Message>) -> LlmRequest {
    LlmRequest {
        model: agent.model_profile.model.clone(),
        instructions: Some(agent.instructions.clone()),
        messages,
        temperature: agent.model_profile.temperature,
        max_output_tokens: agent.model_profile.max_output_tokens,
        ..Default::default()
    }
}

pub(crate) fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Asks an agent to choose one of `options` (ids) with a strict schema, retrying invalid
/// answers up to `attempts` times. Returns (choice, reason).
pub(crate) async fn choose(
    sc: &mut StepCtx<'_>,
    caller: &LlmCaller<'_>,
    base: LlmRequest,
    field: &str,
    options: &[String],
    attempts: u32,
) -> NodeResult<(String, String)> {
    let schema = json!({
        "type": "object",
        "properties": {
            field: { "type": "string", "enum": options },
            "reason": { "type": "string" }
        },
        "required": [field, "reason"],
        "additionalProperties": false
    });
    let mut messages = base.messages.clone();
    let mut last = String::new();
    for _ in 0..attempts.max(1) {
        let mut req = base.clone();
        req.messages = messages.clone();
        req.output_schema = Some(OutputSchema {
            name: format!("{field}_choice"),
            schema: schema.clone(),
            strict: true,
        });
        let resp = call_llm(sc, caller, req).await?;
        let verdict = resp.json().and_then(|v| {
            let choice = v[field]
                .as_str()
                .ok_or_else(|| Error::ModelOutput(format!("missing `{field}`")))?;
            if !options.iter().any(|o| o == choice) {
                return Err(Error::ModelOutput(format!("unknown {field} `{choice}`")));
            }
            Ok((
                choice.to_string(),
                v["reason"].as_str().unwrap_or_default().to_string(),
            ))
        });
        match verdict {
            Ok(c) => return Ok(c),
            Err(e) => {
                last = e.to_string();
                sc.emit(ErrorPayload::agent_retry(caller.agent_id, e.to_recorded()));
                messages.push(Message::Assistant {
                    content: resp.text.clone(),
                    tool_calls: Vec::new(),
                });
                messages.push(Message::user(format!(
                    "That answer was invalid ({last}). Answer with JSON {{\"{field}\": one of {options:?}, \"reason\": \"...\"}}."
                )));
            }
        }
    }
    Err(Error::ModelOutput(format!(
        "`{}` gave no valid {field} after {} attempts: {last}",
        caller.agent_id,
        attempts.max(1)
    ))
    .into())
}
