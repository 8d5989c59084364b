//! `/api/v1/policies`: the tenant's policies. Every policy made over HTTP is scoped to the
//! caller's tenant (`scope: tenant`, `scope_id`: the tenant), whatever the body says, so a
//! tenant's admin cannot govern other tenants; narrower targets go in `rule_expr`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use logline_core::policy::{Policy, PolicyScope};
use serde_json::{json, Value};

use crate::audit::{self, Action};
use crate::auth::{Caller, ClientInfo};
use crate::error::{ApiError, ApiResult, Problem};
use crate::routes::{no_nul, owned, ownership, to_json, Body};
use crate::state::AppState;
use crate::store::Role;

/// Kind of policies in the ownership directory.
pub const KIND: &str = "policy";

fn parse(mut body: Value, id: &str, tenant: &str) -> ApiResult<Policy> {
    no_nul(&body)?;
    let Some(obj) = body.as_object_mut() else {
        return Err(ApiError::bad_request("a policy is a JSON object"));
    };
    obj.insert("id".into(), Value::String(id.to_string()));
    let mut p: Policy =
        serde_json::from_value(body).map_err(|e| ApiError::bad_request(format!("policy: {e}")))?;
    if p.name.trim().is_empty() || p.name.len() > 200 {
        return Err(ApiError::bad_request("`name` has 1 to 200 characters"));
    }
    p.scope = PolicyScope::Tenant;
    p.scope_id = Some(tenant.to_string());
    Ok(p)
}

async fn load(state: &AppState, id: &str) -> ApiResult<Policy> {
    state
        .engine
        .store()
        .list_policies()
        .await?
        .into_iter()
        .find(|p| p.id == id)
        .ok_or_else(|| ApiError::not_found(KIND, id))
}

/// The tenant's policies and the shared ones.
#[utoipa::path(get, path = "/api/v1/policies", tag = "policies",
    responses((status = 200, body = Vec<Object>)), security(("bearer" = [])))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Vec<Value>>> {
    let ids = state
        .store
        .visible(KIND, &caller.tenant_id, 0, u64::MAX)
        .await?;
    let all = state.engine.store().list_policies().await?;
    all.iter()
        .filter(|p| ids.contains(&p.id))
        .map(to_json)
        .collect::<ApiResult<Vec<_>>>()
        .map(Json)
}

/// A policy.
#[utoipa::path(get, path = "/api/v1/policies/{id}", tag = "policies", params(("id" = String, Path, description = "Policy id")),
    responses((status = 200, body = Object), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    ownership(&state, KIND, &id, &caller.tenant_id).await?;
    Ok(Json(to_json(&load(&state, &id).await?)?))
}

/// Creates a policy of the tenant (admins).
#[utoipa::path(post, path = "/api/v1/policies", tag = "policies", request_body = Object,
    responses((status = 201, body = Object), (status = 400, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientInfo,
    Body(body): Body<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require(&[Role::Admin])?;
    let id = uuid::Uuid::now_v7().to_string();
    let policy = parse(body, &id, &caller.tenant_id)?;
    state
        .store
        .claim(KIND, &id, Some(&caller.tenant_id))
        .await?;
    state.engine.put_policy(&policy).await?;
    let snapshot = to_json(&policy)?;
    audit::record(
        &state,
        &caller,
        &client,
        Action::new("create", KIND, &id).changes(snapshot.clone()),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(snapshot)))
}

/// Changes fields of a policy (admins); the scope stays the tenant.
#[utoipa::path(patch, path = "/api/v1/policies/{id}", tag = "policies", request_body = Object,
    params(("id" = String, Path, description = "Policy id")),
    responses((status = 200, body = Object), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientInfo,
    Path(id): Path<String>,
    Body(patch): Body<Value>,
) -> ApiResult<Json<Value>> {
    caller.require(&[Role::Admin])?;
    owned(&state, KIND, &id, &caller.tenant_id).await?;
    let Value::Object(changes) = patch else {
        return Err(ApiError::bad_request("a patch is a JSON object"));
    };
    let mut current = to_json(&load(&state, &id).await?)?;
    if let Some(obj) = current.as_object_mut() {
        for (k, v) in changes.clone() {
            obj.insert(k, v);
        }
    }
    let policy = parse(current, &id, &caller.tenant_id)?;
    state.engine.put_policy(&policy).await?;
    audit::record(
        &state,
        &caller,
        &client,
        Action::new("update", KIND, &id).changes(Value::Object(changes)),
    )
    .await?;
    Ok(Json(to_json(&policy)?))
}

/// Deletes a policy (admins).
#[utoipa::path(delete, path = "/api/v1/policies/{id}", tag = "policies", params(("id" = String, Path, description = "Policy id")),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientInfo,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(&[Role::Admin])?;
    owned(&state, KIND, &id, &caller.tenant_id).await?;
    state.engine.delete_policy(&id).await?;
    state.store.release(KIND, &id).await?;
    audit::record(
        &state,
        &caller,
        &client,
        Action::new("delete", KIND, &id).changes(json!({})),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
