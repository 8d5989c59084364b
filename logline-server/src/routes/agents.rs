//! `/api/v1/agents`: list, create or update, get, and test an agent (one run of a
//! one-node workflow, waited for).

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::Utc;
use logline_core::agent::Agent;
use logline_core::engine::StartRun;
use logline_core::run::Subject;
use logline_core::workflow::{AgentNode, NodeKind, Workflow, WorkflowDefinition, WorkflowNode};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::audit::{self, Action};
use crate::auth::{Caller, ClientInfo};
use crate::error::{ApiError, ApiResult, Problem};
use crate::routes::{
    no_nul, owned, ownership, to_json, tools, workflows::BUILDERS, Body, PageQuery, Paged, Params,
};
use crate::state::AppState;

/// Kind of agents in the ownership directory.
pub const KIND: &str = "agent";

/// `POST /agents/{id}/test`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentTest {
    /// The agent's input.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub input: Value,
}

/// Agents visible to the tenant.
#[utoipa::path(get, path = "/api/v1/agents", tag = "agents", params(PageQuery),
    responses((status = 200, body = Paged)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Params(q): Params<PageQuery>,
) -> ApiResult<Json<Paged>> {
    let (page, limit, offset) = q.resolve()?;
    let ids = state
        .store
        .visible(KIND, &caller.tenant_id, offset, limit)
        .await?;
    let mut items = Vec::with_capacity(ids.len());
    for id in ids {
        match state.engine.store().get_agent(&id).await {
            Ok(a) => items.push(to_json(&a)?),
            Err(e) if e.kind() == logline_core::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Json(Paged { items, page, limit }))
}

/// An agent.
#[utoipa::path(get, path = "/api/v1/agents/{id}", tag = "agents", params(("id" = String, Path, description = "Agent id")),
    responses((status = 200, body = Object), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    ownership(&state, KIND, &id, &caller.tenant_id).await?;
    Ok(Json(to_json(&state.engine.store().get_agent(&id).await?)?))
}

/// Creates an agent (without `id`: the server picks one) or replaces one of the tenant's.
#[utoipa::path(post, path = "/api/v1/agents", tag = "agents", request_body = Object,
    responses((status = 201, body = Object), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn upsert(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientInfo,
    Body(mut body): Body<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require(BUILDERS)?;
    no_nul(&body)?;
    let Some(obj) = body.as_object_mut() else {
        return Err(ApiError::bad_request("an agent is a JSON object"));
    };
    let existing = match obj.get("id") {
        Some(Value::String(id)) => Some(id.clone()),
        Some(_) => return Err(ApiError::bad_request("`id` is a string")),
        None => None,
    };
    let id = existing
        .clone()
        .unwrap_or_else(|| Uuid::now_v7().to_string());
    obj.insert("id".into(), Value::String(id.clone()));
    obj.entry("name")
        .or_insert_with(|| Value::String(id.clone()));
    let agent: Agent =
        serde_json::from_value(body).map_err(|e| ApiError::bad_request(format!("agent: {e}")))?;
    if existing.is_some() {
        owned(&state, KIND, &id, &caller.tenant_id).await?;
    }
    for tool in &agent.allowed_tools {
        ownership(&state, tools::KIND, tool, &caller.tenant_id)
            .await
            .map_err(|_| {
                ApiError::bad_request(format!(
                    "`allowed_tools` names tool `{tool}`, which does not exist"
                ))
            })?;
    }
    state.engine.register_agent(&agent).await?;
    state
        .store
        .claim(KIND, &id, Some(&caller.tenant_id))
        .await?;
    let action = if existing.is_some() {
        "update"
    } else {
        "create"
    };
    audit::record(&state, &caller, &client, Action::new(action, KIND, &id)).await?;
    Ok((StatusCode::CREATED, Json(to_json(&agent)?)))
}

/// Runs the agent once on `input` (as a one-node workflow) and returns the finished run.
#[utoipa::path(post, path = "/api/v1/agents/{id}/test", tag = "agents", request_body = AgentTest,
    params(("id" = String, Path, description = "Agent id")),
    responses((status = 200, body = Object), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 504, body = Problem)), security(("bearer" = [])))]
pub async fn test(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(req): Body<AgentTest>,
) -> ApiResult<Json<Value>> {
    caller.require(BUILDERS)?;
    ownership(&state, KIND, &id, &caller.tenant_id).await?;
    // One hidden workflow per agent, named by the agent; identical re-registration is a no-op.
    let wf_id = format!("agent-test:{id}");
    let node = WorkflowNode::new(
        "agent",
        NodeKind::Agent(AgentNode {
            agent_id: id.clone(),
        }),
    );
    let wf = Workflow {
        id: wf_id.clone(),
        name: format!("test of agent {id}"),
        version: "1".into(),
        definition: WorkflowDefinition {
            entry: "agent".into(),
            nodes: vec![node],
            edges: vec![],
            condition_agent_id: None,
        },
        created_at: Utc::now(),
    };
    if state
        .engine
        .store()
        .get_workflow(&wf_id, Some("1"))
        .await
        .is_err()
    {
        state.engine.register_workflow(&wf).await?;
    }
    let scoped = caller.scoped(&state);
    let run = scoped
        .start_run(StartRun::new(wf_id, req.input, Subject::default()))
        .await?;
    let timeout = Duration::from_secs(state.config.agent_test_timeout_secs.max(1));
    let run = tokio::time::timeout(timeout, scoped.wait(run.id))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "timeout",
                format!("the test run {} is still going", run.id),
            )
        })??;
    Ok(Json(
        json!({"run_id": run.id, "status": run.status, "result": run.result, "error": run.error, "usage": to_json(&run.usage)?}),
    ))
}
