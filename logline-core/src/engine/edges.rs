//! Edges: the next node after a step. Unguarded edges are followed as they are; a
//! natural-language condition is evaluated by an agent on the step's output.

use serde_json::{json, Value};

use super::llm::{check_agent_call, choose, LlmCaller};
use super::step::{NodeResult, StepCtx};
use crate::event::EventKind;
use crate::llm::{LlmRequest, Message};
use crate::workflow::{EdgeGuard, WorkflowDefinition, WorkflowNode};

/// Instructions of the built-in condition evaluator.
const CONDITION_INSTRUCTIONS: &str = "You evaluate workflow edge conditions. Given the output of the previous step and numbered conditions written in natural language, pick the id of the first condition that holds, or \"none\" if none holds. Answer with JSON: {\"choice\": <id or none>, \"reason\": <one sentence>}.";

/// Picks the next node after `node` from its outgoing edges; natural-language conditions
/// are evaluated by an agent on `output`.
pub(crate) async fn next(
    sc: &mut StepCtx<'_>,
    def: &WorkflowDefinition,
    node: &WorkflowNode,
    output: &Value,
) -> NodeResult<Option<String>> {
    let mut conditional = Vec::new();
    let mut default = None;
    for e in def.outgoing(&node.id) {
        match &e.guard {
            Some(EdgeGuard::Condition(c)) => conditional.push((c.as_str(), e.to.as_str())),
            // Route guards belong to routers, which pick their target themselves.
            Some(EdgeGuard::Route(_)) => {}
            None => default = Some(e.to.clone()),
        }
    }
    if conditional.is_empty() {
        return Ok(default);
    }
    let (agent_id, provider, model, instructions) = match &def.condition_agent_id {
        Some(id) => {
            let a = sc.exec.store.get_agent(id).await?;
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
            crate::llm::DEFAULT_PROVIDER.to_string(),
            sc.exec.config.condition_model.clone(),
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
    let attempts = sc.exec.config.router_attempts;
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
