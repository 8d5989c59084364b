//! LLM-driven nodes: agent tool loops, routers and natural-language edge conditions.

use std::collections::HashMap;

use futures::StreamExt;
use serde_json::{json, Value};

use super::step::{replay, Interrupt, NodeResult, StepCtx, EFFECT_LLM};
use super::tools::{self, Caller};
use super::{gate, Progress};
use crate::agent::Agent;
use crate::error::Error;
use crate::event::EventKind;
use crate::llm::{
    LlmRequest, LlmResponse, LlmStreamEvent, Message, OutputSchema, ToolChoice, ToolDefinition,
};
use crate::policy::{Effect, PolicyAction, PolicyRequest, PolicyResource};
use crate::run::GateSubject;
use crate::workflow::{WorkflowDefinition, WorkflowNode};

/// Who is calling the model, for events.
pub(crate) struct LlmCaller<'a> {
    pub agent_id: &'a str,
    pub provider: &'a str,
    pub purpose: &'static str,
}

/// One LLM call: budget check, ledger replay or provider call, usage and `llm_call` event.
pub(crate) async fn call_llm(
    sc: &mut StepCtx<'_>,
    caller: &LlmCaller<'_>,
    request: LlmRequest,
) -> NodeResult<LlmResponse> {
    let seq = sc.next_seq();
    let (response, replayed) = match sc.recorded(seq) {
        Some(rec) => {
            let v = replay(rec)?;
            let r: LlmResponse = serde_json::from_value(v)
                .map_err(|e| Error::Internal(format!("recorded LLM effect unreadable: {e}")))?;
            (r, true)
        }
        None => {
            sc.check_llm_call_allowed()?;
            let r = invoke(sc, caller, &request).await?;
            let as_json = serde_json::to_value(&r)
                .map_err(|e| Error::Internal(format!("LLM response not serializable: {e}")))?;
            sc.record(seq, EFFECT_LLM, caller.agent_id, &Ok(as_json))
                .await?;
            (r, false)
        }
    };
    let cost = sc.account_llm(&response, &request.model);
    let tool_names: Vec<&str> = response
        .tool_calls
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    sc.emit(
        EventKind::LlmCall,
        json!({
            "agent_id": caller.agent_id,
            "purpose": caller.purpose,
            "provider": caller.provider,
            "model": if response.model.is_empty() { &request.model } else { &response.model },
            "usage": response.usage,
            "cost_cents": cost,
            "finish_reason": response.finish_reason,
            "tool_calls": tool_names,
            "text": response.text,
            "replayed": replayed,
        }),
    );
    sc.check_usage()?;
    Ok(response)
}

async fn invoke(
    sc: &StepCtx<'_>,
    caller: &LlmCaller<'_>,
    request: &LlmRequest,
) -> crate::Result<LlmResponse> {
    let provider = sc
        .inner
        .llms
        .get(caller.provider)
        .ok_or_else(|| Error::InvalidInput(format!("no LLM provider named `{}`", caller.provider)))?
        .clone();
    let work = async {
        if sc.inner.progress.receiver_count() == 0 {
            return provider.complete(request).await;
        }
        let mut stream = provider.stream(request).await?;
        while let Some(item) = stream.next().await {
            match item? {
                LlmStreamEvent::Completed { response } => return Ok(response),
                LlmStreamEvent::TextDelta { delta } => {
                    let _ = sc.inner.progress.send(Progress {
                        run_id: sc.run.id,
                        step_id: sc.step_id,
                        agent_id: caller.agent_id.to_string(),
                        delta,
                    });
                }
                LlmStreamEvent::ToolCallDelta { .. } => {}
            }
        }
        Err(Error::ModelOutput(
            "stream ended without a completed response".into(),
        ))
    };
    tokio::select! {
        r = work => r,
        _ = sc.cancel.cancelled() => Err(Error::Cancelled("LLM call cancelled".into())),
    }
}

/// Policy check before an agent runs (`agent_call`).
async fn check_agent_call(sc: &mut StepCtx<'_>, agent_id: &str) -> NodeResult<()> {
    let run = sc.run;
    let decision = sc
        .inner
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
        PolicyAction::AgentCall.as_str(),
        json!({"type": "agent", "id": agent_id}),
        &decision,
    );
    match decision.effect {
        Effect::Deny => {
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
                Err(Interrupt::Pause(gate::pending(
                    gate_id,
                    GateSubject::AgentCall {
                        agent_id: agent_id.to_string(),
                    },
                    decision.reason,
                    decision.policy_id,
                )))
            }
        }
        Effect::Allow | Effect::Modify => Ok(()),
    }
}

fn request_for(agent: &Agent, messages: Vec<Message>) -> LlmRequest {
    LlmRequest {
        model: agent.model_profile.model.clone(),
        instructions: Some(agent.instructions.clone()),
        messages,
        temperature: agent.model_profile.temperature,
        max_output_tokens: agent.model_profile.max_output_tokens,
        ..Default::default()
    }
}

fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Runs an agent's tool loop on `input`; returns its structured output or `{"text": ...}`.
pub(crate) async fn run_agent(
    sc: &mut StepCtx<'_>,
    agent_id: &str,
    input: &Value,
) -> NodeResult<Value> {
    let agent = sc.inner.store.get_agent(agent_id).await?;
    check_agent_call(sc, agent_id).await?;
    let mut tool_defs = Vec::with_capacity(agent.allowed_tools.len());
    let mut by_name: HashMap<String, String> = HashMap::new();
    for tool_id in &agent.allowed_tools {
        let spec = sc.inner.store.get_tool(tool_id).await?;
        let mut name = crate::tool::function_name(tool_id);
        while by_name.contains_key(&name) {
            name.push('_');
        }
        by_name.insert(name.clone(), tool_id.clone());
        tool_defs.push(ToolDefinition {
            name,
            description: spec.description.clone(),
            parameters: spec.input_schema.clone(),
            strict: false,
        });
    }
    let output_schema = agent.output_schema.clone();
    let max_steps = agent
        .max_steps
        .unwrap_or(sc.inner.config.agent_max_steps)
        .max(1);
    let caller = LlmCaller {
        agent_id,
        provider: &agent.model_profile.provider,
        purpose: "agent",
    };
    let mut messages = vec![Message::user(as_text(input))];
    let mut last_problem = String::new();
    for turn in 0..max_steps {
        let mut req = request_for(&agent, messages.clone());
        req.tools = tool_defs.clone();
        req.tool_choice = ToolChoice::Auto;
        req.output_schema = output_schema.as_ref().map(|s| OutputSchema {
            name: "agent_output".into(),
            schema: s.clone(),
            strict: true,
        });
        let resp = call_llm(sc, &caller, req).await?;
        if resp.tool_calls.is_empty() {
            let Some(schema) = &output_schema else {
                return Ok(json!({ "text": resp.text.clone().unwrap_or_default() }));
            };
            let parsed = resp
                .json()
                .and_then(|v| sc.inner.schemas.validate(agent_id, schema, &v).map(|_| v));
            match parsed {
                Ok(v) => return Ok(v),
                Err(e) => {
                    last_problem = e.to_string();
                    if turn + 1 < max_steps {
                        messages.push(Message::Assistant {
                            content: resp.text.clone(),
                            tool_calls: Vec::new(),
                        });
                        messages.push(Message::user(format!(
                            "Your answer was invalid ({last_problem}). Reply again with only JSON that matches the output schema."
                        )));
                    }
                    continue;
                }
            }
        }
        messages.push(Message::Assistant {
            content: resp.text.clone(),
            tool_calls: resp.tool_calls.clone(),
        });
        let results = run_tool_calls(sc, agent_id, &by_name, &resp).await?;
        for (call, content) in resp.tool_calls.iter().zip(results) {
            messages.push(Message::Tool {
                call_id: call.id.clone(),
                content,
            });
        }
    }
    let why = if last_problem.is_empty() {
        String::new()
    } else {
        format!(": {last_problem}")
    };
    Err(Error::ModelOutput(format!(
        "agent `{agent_id}` did not produce a final answer within {max_steps} LLM turns{why}"
    ))
    .into())
}

/// Prepares every call in order, executes them concurrently, then records events in order.
/// Returns the tool message content of each call.
async fn run_tool_calls(
    sc: &mut StepCtx<'_>,
    agent_id: &str,
    by_name: &HashMap<String, String>,
    resp: &LlmResponse,
) -> NodeResult<Vec<String>> {
    let mut prepared = Vec::with_capacity(resp.tool_calls.len());
    for call in &resp.tool_calls {
        let Some(tool_id) = by_name.get(&call.name) else {
            prepared.push(Err(Error::InvalidInput(format!(
                "tool `{}` is not available to this agent",
                call.name
            ))));
            continue;
        };
        prepared.push(
            tools::prepare(
                sc,
                tool_id,
                call.arguments.clone(),
                Caller::Agent(agent_id),
                None,
            )
            .await?,
        );
    }
    let shared: &StepCtx<'_> = sc;
    let runs = prepared.into_iter().map(|p| async move {
        match p {
            Ok(p) => {
                let (p, r, ms) = tools::execute(shared, p).await;
                Ok((p, r, ms))
            }
            Err(e) => Err(e),
        }
    });
    let outcomes = futures::future::join_all(runs).await;
    let mut contents = Vec::with_capacity(outcomes.len());
    for o in outcomes {
        let content = match o {
            Ok((p, r, ms)) => {
                let f = tools::finish(sc, p, r, ms);
                if let Err(e) = &f.result {
                    if e.kind() == crate::ErrorKind::Cancelled {
                        return Err(Interrupt::Fail(Error::Cancelled(e.to_string())));
                    }
                }
                match f.result {
                    Ok(v) => v.to_string(),
                    Err(e) => json!({ "error": e.to_json() }).to_string(),
                }
            }
            Err(e) => json!({ "error": e.to_json() }).to_string(),
        };
        contents.push(content);
    }
    Ok(contents)
}

/// Asks an agent to choose one of `options` (ids) with a strict schema, retrying invalid
/// answers up to `attempts` times. Returns (choice, reason).
async fn choose(
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
                sc.emit(
                    EventKind::Error,
                    json!({ "agent_id": caller.agent_id, "error": e.to_json(), "retrying": true }),
                );
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

/// A router node: the router agent picks a route; returns the target node.
pub(crate) async fn run_router(
    sc: &mut StepCtx<'_>,
    node: &WorkflowNode,
    input: &Value,
) -> NodeResult<(String, String)> {
    let agent_id = node.config.router_agent_id.as_deref().ok_or_else(|| {
        Error::InvalidInput(format!("router `{}` has no router_agent_id", node.id))
    })?;
    let agent = sc.inner.store.get_agent(agent_id).await?;
    check_agent_call(sc, agent_id).await?;
    let routes: Vec<Value> = node
        .config
        .routes
        .iter()
        .map(|r| json!({ "id": r.id, "condition": r.condition }))
        .collect();
    let options: Vec<String> = node.config.routes.iter().map(|r| r.id.clone()).collect();
    let mut base = request_for(
        &agent,
        vec![Message::user(
            json!({ "input": input, "routes": routes }).to_string(),
        )],
    );
    base.instructions = Some(format!(
        "{}\n\nPick exactly one route whose condition fits the input. Answer with JSON: {{\"route\": <route id>, \"reason\": <one sentence>}}.",
        agent.instructions
    ));
    let caller = LlmCaller {
        agent_id,
        provider: &agent.model_profile.provider,
        purpose: "router",
    };
    let attempts = node
        .config
        .max_attempts
        .unwrap_or(sc.inner.config.router_attempts);
    let (route_id, reason) = choose(sc, &caller, base, "route", &options, attempts).await?;
    let target = node
        .config
        .routes
        .iter()
        .find(|r| r.id == route_id)
        .map(|r| r.target_node.clone())
        .ok_or_else(|| Error::Internal(format!("route `{route_id}` vanished")))?;
    sc.emit(
        EventKind::RouteSelected,
        json!({ "node_id": node.id, "route": route_id, "reason": reason, "to": target }),
    );
    Ok((route_id, target))
}

/// Instructions of the built-in condition evaluator.
const CONDITION_INSTRUCTIONS: &str = "You evaluate workflow edge conditions. Given the output of the previous step and numbered conditions written in natural language, pick the id of the first condition that holds, or \"none\" if none holds. Answer with JSON: {\"choice\": <id or none>, \"reason\": <one sentence>}.";

/// Picks the next node after `node` from its outgoing edges; natural-language conditions
/// are evaluated by an agent on `output`.
pub(crate) async fn next_node(
    sc: &mut StepCtx<'_>,
    def: &WorkflowDefinition,
    node: &WorkflowNode,
    output: &Value,
) -> NodeResult<Option<String>> {
    let mut conditional = Vec::new();
    let mut default = None;
    for e in def.outgoing(&node.id) {
        match &e.condition {
            Some(c) => conditional.push((c.as_str(), e.to.as_str())),
            None => default = Some(e.to.clone()),
        }
    }
    if conditional.is_empty() {
        return Ok(default);
    }
    let (agent_id, provider, model, instructions) = match &def.condition_agent_id {
        Some(id) => {
            let a = sc.inner.store.get_agent(id).await?;
            check_agent_call(sc, id).await?;
            (
                id.clone(),
                a.model_profile.provider.clone(),
                a.model_profile.model.clone(),
                a.instructions.clone(),
            )
        }
        None => (
            "builtin.condition_evaluator".to_string(),
            crate::engine::DEFAULT_PROVIDER.to_string(),
            sc.inner.config.condition_model.clone(),
            CONDITION_INSTRUCTIONS.to_string(),
        ),
    };
    let conditions: Vec<Value> = conditional
        .iter()
        .enumerate()
        .map(|(i, (c, _))| json!({ "id": i.to_string(), "condition": c }))
        .collect();
    let mut options: Vec<String> = (0..conditional.len()).map(|i| i.to_string()).collect();
    options.push("none".into());
    let base = LlmRequest {
        model,
        instructions: Some(instructions),
        messages: vec![Message::user(
            json!({ "output": output, "conditions": conditions }).to_string(),
        )],
        ..Default::default()
    };
    let caller = LlmCaller {
        agent_id: &agent_id,
        provider: &provider,
        purpose: "edge_condition",
    };
    let attempts = sc.inner.config.router_attempts;
    let (choice, reason) = choose(sc, &caller, base, "choice", &options, attempts).await?;
    let picked = choice
        .parse::<usize>()
        .ok()
        .and_then(|i| conditional.get(i))
        .map(|(c, to)| (Some(*c), to.to_string()));
    let (condition, to) = match picked {
        Some((c, to)) => (c, Some(to)),
        None => (None, default),
    };
    sc.emit(
        EventKind::RouteSelected,
        json!({ "node_id": node.id, "choice": choice, "condition": condition, "reason": reason, "to": to }),
    );
    Ok(to)
}
