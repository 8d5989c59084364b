//! `/api/v1/workflows`: create, list (paged), get, update (a new version), delete. A
//! workflow made over HTTP belongs to the caller's tenant and gets a server-chosen id.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::Utc;
use logline_core::workflow::{NodeKind, Workflow, WorkflowDefinition};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::audit::{self, Action};
use crate::auth::{Caller, ClientInfo};
use crate::error::{ApiError, ApiResult, Problem};
use crate::routes::{
    no_nul, owned, ownership, plain_text, to_json, Body, PageQuery, Paged, Params,
};
use crate::state::AppState;
use crate::store::Role;

/// Kind of workflows in the ownership directory.
pub const KIND: &str = "workflow";
/// Who may change workflows.
pub const BUILDERS: &[Role] = &[Role::Admin, Role::Developer];

/// `POST /workflows`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWorkflow {
    /// Display name.
    pub name: String,
    /// Version (default `1.0.0`).
    #[serde(default)]
    pub version: Option<String>,
    /// The graph (`entry`, `nodes`, `edges`).
    #[schema(value_type = Object)]
    pub definition: Value,
}

/// `PATCH /workflows/{id}`: stores a new version.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWorkflow {
    /// New name.
    #[serde(default)]
    pub name: Option<String>,
    /// New version (default: the last number of the current version plus one).
    #[serde(default)]
    pub version: Option<String>,
    /// New graph.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub definition: Option<Value>,
}

fn parse_definition(v: Value) -> ApiResult<WorkflowDefinition> {
    no_nul(&v)?;
    serde_json::from_value(v).map_err(|e| ApiError::bad_request(format!("definition: {e}")))
}

/// Every agent and tool a definition names must be visible to the tenant.
async fn check_references(
    state: &AppState,
    def: &WorkflowDefinition,
    tenant: &str,
) -> ApiResult<()> {
    let mut refs: Vec<(&str, &str)> = Vec::new();
    for node in &def.nodes {
        match &node.kind {
            NodeKind::Tool(t) => refs.push(("tool", &t.tool_id)),
            NodeKind::Agent(a) => refs.push(("agent", &a.agent_id)),
            NodeKind::Router(r) => refs.push(("agent", &r.router_agent_id)),
            _ => {}
        }
    }
    if let Some(a) = &def.condition_agent_id {
        refs.push(("agent", a));
    }
    for (kind, id) in refs {
        ownership(state, kind, id, tenant).await.map_err(|_| {
            ApiError::bad_request(format!(
                "the definition names {kind} `{id}`, which does not exist"
            ))
        })?;
    }
    Ok(())
}

/// The version after `v`: its last number plus one (`1.0.9` → `1.0.10`), else `v.1`.
fn next_version(v: &str) -> String {
    match v.rsplit_once('.') {
        Some((head, last)) => match last.parse::<u64>() {
            Ok(n) => format!("{head}.{}", n.saturating_add(1)),
            Err(_) => format!("{v}.1"),
        },
        None => match v.parse::<u64>() {
            Ok(n) => n.saturating_add(1).to_string(),
            Err(_) => format!("{v}.1"),
        },
    }
}

fn check_version(v: Option<String>) -> ApiResult<Option<String>> {
    match v {
        Some(v) if v.is_empty() || v.len() > 64 || !plain_text(&v) => Err(ApiError::bad_request(
            "`version` has 1 to 64 printable characters",
        )),
        v => Ok(v),
    }
}

fn check_name(name: &str) -> ApiResult<()> {
    if name.trim().is_empty() || name.len() > 200 || !plain_text(name) {
        return Err(ApiError::bad_request(
            "`name` has 1 to 200 printable characters",
        ));
    }
    Ok(())
}

/// Creates a workflow in the caller's tenant.
#[utoipa::path(post, path = "/api/v1/workflows", tag = "workflows", request_body = CreateWorkflow,
    responses((status = 201, body = Object), (status = 400, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientInfo,
    Body(req): Body<CreateWorkflow>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require(BUILDERS)?;
    check_name(&req.name)?;
    let definition = parse_definition(req.definition)?;
    check_references(&state, &definition, &caller.tenant_id).await?;
    let id = Uuid::now_v7().to_string();
    let wf = Workflow {
        id: id.clone(),
        name: req.name,
        version: check_version(req.version)?.unwrap_or_else(|| "1.0.0".into()),
        definition,
        created_at: Utc::now(),
    };
    state.engine.register_workflow(&wf).await?;
    state
        .store
        .claim(KIND, &id, Some(&caller.tenant_id))
        .await?;
    audit::record(
        &state,
        &caller,
        &client,
        Action::new("create", KIND, &id).changes(json!({"version": wf.version})),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(to_json(&wf)?)))
}

/// Workflows the tenant owns or shares, oldest first (latest version of each).
#[utoipa::path(get, path = "/api/v1/workflows", tag = "workflows", params(PageQuery),
    responses((status = 200, body = Paged), (status = 400, body = Problem)), security(("bearer" = [])))]
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
        match state.engine.store().get_workflow(&id, None).await {
            Ok(wf) => items.push(to_json(&wf)?),
            Err(e) if e.kind() == logline_core::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Json(Paged { items, page, limit }))
}

/// The latest version of a workflow.
#[utoipa::path(get, path = "/api/v1/workflows/{id}", tag = "workflows",
    params(("id" = String, Path, description = "Workflow id")),
    responses((status = 200, body = Object), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    ownership(&state, KIND, &id, &caller.tenant_id).await?;
    Ok(Json(to_json(
        &state.engine.store().get_workflow(&id, None).await?,
    )?))
}

/// Stores a new version with the changes.
#[utoipa::path(patch, path = "/api/v1/workflows/{id}", tag = "workflows", request_body = UpdateWorkflow,
    params(("id" = String, Path, description = "Workflow id")),
    responses((status = 200, body = Object), (status = 400, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem)), security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientInfo,
    Path(id): Path<String>,
    Body(req): Body<UpdateWorkflow>,
) -> ApiResult<Json<Value>> {
    caller.require(BUILDERS)?;
    owned(&state, KIND, &id, &caller.tenant_id).await?;
    let mut wf = state.engine.store().get_workflow(&id, None).await?;
    if let Some(name) = req.name {
        check_name(&name)?;
        wf.name = name;
    }
    if let Some(def) = req.definition {
        wf.definition = parse_definition(def)?;
        check_references(&state, &wf.definition, &caller.tenant_id).await?;
    }
    wf.version = check_version(req.version)?.unwrap_or_else(|| next_version(&wf.version));
    wf.created_at = Utc::now();
    state.engine.register_workflow(&wf).await?;
    audit::record(
        &state,
        &caller,
        &client,
        Action::new("update", KIND, &id).changes(json!({"version": wf.version})),
    )
    .await?;
    Ok(Json(to_json(&wf)?))
}

/// Deletes every version of a workflow (its runs stay).
#[utoipa::path(delete, path = "/api/v1/workflows/{id}", tag = "workflows",
    params(("id" = String, Path, description = "Workflow id")),
    responses((status = 204), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientInfo,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(BUILDERS)?;
    owned(&state, KIND, &id, &caller.tenant_id).await?;
    state.engine.store().delete_workflow(&id).await?;
    state.store.release(KIND, &id).await?;
    audit::record(&state, &caller, &client, Action::new("delete", KIND, &id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::next_version;

    #[test]
    fn versions_count_up() {
        assert_eq!(next_version("1.0.9"), "1.0.10");
        assert_eq!(next_version("7"), "8");
        assert_eq!(next_version("beta"), "beta.1");
        assert_eq!(next_version("1.0.rc"), "1.0.rc.1");
    }
}
