//! `router`: the router agent picks one route with strict structured output.

use serde_json::{json, Value};

use super::NodeOutput;
use crate::engine::llm::{check_agent_call, choose, request_for, LlmCaller};
use crate::engine::step::{NodeResult, StepCtx};
use crate::error::Error;
use crate::event::EventKind;
use crate::llm::Message;
use crate::workflow::RouterNode;

/// Picks a route; the run goes on at its target with the router's input.
pub(super) async fn run(
    sc: &mut StepCtx<'_>,
    node_id: &str,
    router: &RouterNode,
    input: &Value,
) -> NodeResult<NodeOutput> {
    let agent_id = router.router_agent_id.as_str();
    let agent = sc.exec.store.get_agent(agent_id).await?;
    check_agent_call(sc, agent_id).await?;
    let routes: Vec<Value> = router
        .routes
        .iter()
        .map(|r| json!({ "id": r.id, "condition": r.condition }))
        .collect();
    let options: Vec<String> = router.routes.iter().map(|r| r.id.clone()).collect();
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
    let attempts = router
        .max_attempts
        .unwrap_or(sc.exec.config.router_attempts);
    let (route_id, reason) = choose(sc, &caller, base, "route", &options, attempts).await?;
    let target = router
        .routes
        .iter()
        .find(|r| r.id == route_id)
        .map(|r| r.target_node.clone())
        .ok_or_else(|| Error::Internal(format!("route `{route_id}` vanished")))?;
    sc.emit(
        EventKind::RouteSelected,
        json!({ "node_id": node_id, "route": route_id, "reason": reason, "to": target }),
    );
    Ok(NodeOutput {
        output: json!({ "route": route_id, "target": target }),
        carry: input.clone(),
        next: Some(target),
    })
}
