//! `/api/v1/tools`: the tools the tenant may use (its own and the shared ones), and
//! creating or replacing the tenant's own tool specs.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use logline_core::tool::ToolSpec;
use serde_json::{json, Value};

use crate::audit::{self, Action};
use crate::auth::{Caller, ClientInfo};
use crate::error::{ApiError, ApiResult, Problem};
use crate::routes::{
    no_nul, owned, plain_text, to_json, workflows::BUILDERS, Body, PageQuery, Paged, Params,
};
use crate::state::AppState;

/// Kind of tools in the ownership directory.
pub const KIND: &str = "tool";

/// Tools visible to the tenant, in the order they were added.
#[utoipa::path(get, path = "/api/v1/tools", tag = "tools", params(PageQuery),
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
        match state.engine.store().get_tool(&id).await {
            Ok(t) => items.push(to_json(&t)?),
            Err(e) if e.kind() == logline_core::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Json(Paged { items, page, limit }))
}

/// Creates or replaces a tool spec of the tenant. Tool ids are global names: an id another
/// tenant (or the host) uses is a 409.
#[utoipa::path(post, path = "/api/v1/tools", tag = "tools", request_body = Object,
    responses((status = 201, body = Object), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 409, body = Problem)), security(("bearer" = [])))]
pub async fn upsert(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientInfo,
    Body(spec): Body<Value>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require(BUILDERS)?;
    no_nul(&spec)?;
    let spec: ToolSpec =
        serde_json::from_value(spec).map_err(|e| ApiError::bad_request(format!("tool: {e}")))?;
    if spec.id.trim().is_empty() || spec.id.len() > 200 || !plain_text(&spec.id) {
        return Err(ApiError::bad_request("`id` has 1 to 200 characters"));
    }
    let existed = state.store.owner(KIND, &spec.id).await?.is_some();
    if existed {
        owned(&state, KIND, &spec.id, &caller.tenant_id)
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::CONFLICT,
                    "conflict",
                    format!("tool id `{}` is taken", spec.id),
                )
            })?;
    } else {
        // A tool the host registered without sharing it is not the tenant's to replace.
        match state.engine.store().get_tool(&spec.id).await {
            Ok(_) => {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "conflict",
                    format!("tool id `{}` is taken", spec.id),
                ))
            }
            Err(e) if e.kind() == logline_core::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        state
            .store
            .claim(KIND, &spec.id, Some(&caller.tenant_id))
            .await?;
    }
    state
        .engine
        .register_tools(std::slice::from_ref(&spec))
        .await?;
    let action = if existed { "update" } else { "create" };
    audit::record(
        &state,
        &caller,
        &client,
        Action::new(action, KIND, &spec.id).changes(json!({"hub": spec.hub})),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(to_json(&spec)?)))
}
