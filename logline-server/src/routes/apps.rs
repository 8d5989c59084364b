//! `/api/v1/apps`: import a manifest (JSON, or YAML with `Content-Type: application/yaml`),
//! list, get, and run an action. An imported app belongs to the caller's tenant; its
//! workflows and tools must be ones the tenant may use. Another tenant's app is a 404.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::Json;
use logline_core::app::Manifest;
use logline_core::ErrorKind;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::audit::{self, Action};
use crate::auth::{Caller, ClientInfo};
use crate::error::{ApiError, ApiResult, Problem};
use crate::limits::check_run_cap;
use crate::routes::workflows::BUILDERS;
use crate::routes::{
    no_nul, ownership, plain_text, to_json, tools, workflows, OptBody, PageQuery, Paged, Params,
};
use crate::state::AppState;

/// Kind of apps in the ownership directory.
pub const KIND: &str = "app";

/// `POST /apps/{id}/actions/{action}/run`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunActionRequest {
    /// The event the action's input mapping reads as `$event`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub event: Value,
    /// The context it reads as `$context` (`tenant_id` and `user_id` are the caller's,
    /// whatever is sent).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub context: Value,
}

/// What running an action answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActionRunView {
    /// The run.
    pub run_id: uuid::Uuid,
    /// Its status when the action returned (`completed`, `paused`, `failed`, ...).
    pub status: String,
    /// Its result, when completed.
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
}

/// Parses the body as YAML or JSON, by its content type.
fn parse_manifest(headers: &HeaderMap, body: &[u8]) -> ApiResult<Manifest> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let yaml = match content_type.as_str() {
        "application/yaml" | "application/x-yaml" | "text/yaml" => true,
        "application/json" => false,
        _ => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the manifest as application/json or application/yaml",
            ))
        }
    };
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("the manifest is not UTF-8 text"))?;
    let parsed = if yaml {
        Manifest::from_yaml(text)
    } else {
        Manifest::from_json(text)
    };
    let manifest = parsed.map_err(|e| ApiError::bad_request(e.to_string()))?;
    let value = serde_json::to_value(&manifest)
        .map_err(|e| logline_core::Error::Internal(format!("manifest: {e}")))?;
    no_nul(&value)?;
    Ok(manifest)
}

/// Every workflow and tool the manifest names must be the tenant's or shared.
async fn check_references(state: &AppState, m: &Manifest, tenant: &str) -> ApiResult<()> {
    let workflows = m
        .app
        .workflows
        .iter()
        .map(|w| (workflows::KIND, &w.workflow_ref));
    let tools = m.app.scopes.tools.iter().map(|t| (tools::KIND, t));
    for (kind, id) in workflows.chain(tools) {
        ownership(state, kind, id, tenant).await.map_err(|_| {
            ApiError::bad_request(format!(
                "the manifest names {kind} `{id}`, which does not exist"
            ))
        })?;
    }
    Ok(())
}

/// Imports an app manifest into the caller's tenant: `201` when new, `200` when it updated
/// (a higher version) or changed nothing. An app id another tenant uses is a 409.
#[utoipa::path(post, path = "/api/v1/apps/import", tag = "apps",
    request_body(description = "An app manifest", content((Object = "application/json"), (String = "application/yaml"))),
    responses((status = 201, body = Object), (status = 200, body = Object), (status = 400, body = Problem),
        (status = 403, body = Problem), (status = 409, body = Problem), (status = 415, body = Problem)),
    security(("bearer" = [])))]
pub async fn import(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientInfo,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    caller.require(BUILDERS)?;
    let manifest = parse_manifest(&headers, &body)?;
    manifest
        .validate()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    check_references(&state, &manifest, &caller.tenant_id).await?;
    let id = manifest.app.id.clone();
    let taken = || {
        ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("app id `{id}` is taken"),
        )
    };
    let claimed = match state.store.owner(KIND, &id).await? {
        Some(o) if o.tenant_id.as_deref() == Some(caller.tenant_id.as_str()) => false,
        Some(_) => return Err(taken()),
        None => {
            match state.engine.apps().get_app(&id).await {
                // An app the host imported without claiming is not the tenant's to replace.
                Ok(_) => return Err(taken()),
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
            state
                .store
                .claim(KIND, &id, Some(&caller.tenant_id))
                .await
                .map_err(|_| taken())?;
            true
        }
    };
    let report = match state.engine.import_app(manifest).await {
        Ok(r) => r,
        Err(e) => {
            if claimed {
                let _ = state.store.release(KIND, &id).await;
            }
            return Err(e.into());
        }
    };
    audit::record(
        &state,
        &caller,
        &client,
        Action::new("import", "app", &id)
            .changes(json!({"version": report.version, "outcome": report.outcome})),
    )
    .await?;
    let status = if claimed {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(to_json(&report)?)))
}

/// Apps of the caller's tenant (and shared ones), oldest first.
#[utoipa::path(get, path = "/api/v1/apps", tag = "apps", params(PageQuery),
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
        match state.engine.apps().get_app(&id).await {
            Ok(app) => items.push(to_json(&app)?),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Json(Paged { items, page, limit }))
}

/// One app: its manifest, digest and import times.
#[utoipa::path(get, path = "/api/v1/apps/{id}", tag = "apps", params(("id" = String, Path, description = "App id")),
    responses((status = 200, body = Object), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    ownership(&state, KIND, &id, &caller.tenant_id).await?;
    let app = state.engine.apps().get_app(&id).await?;
    Ok(Json(to_json(&app)?))
}

/// Runs an action of an app for the caller and waits until the run completes, fails or
/// pauses.
#[utoipa::path(post, path = "/api/v1/apps/{id}/actions/{action}/run", tag = "apps",
    request_body = RunActionRequest,
    params(("id" = String, Path, description = "App id"), ("action" = String, Path, description = "Action id")),
    responses((status = 200, body = ActionRunView), (status = 400, body = Problem), (status = 404, body = Problem),
        (status = 429, body = Problem)), security(("bearer" = [])))]
pub async fn run(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, action)): Path<(String, String)>,
    OptBody(req): OptBody<RunActionRequest>,
) -> ApiResult<Json<ActionRunView>> {
    ownership(&state, KIND, &id, &caller.tenant_id).await?;
    if !plain_text(&action) {
        return Err(ApiError::not_found("app action", action.escape_default()));
    }
    no_nul(&req.event)?;
    no_nul(&req.context)?;
    let scoped = caller.scoped(&state);
    check_run_cap(&scoped, state.config.max_concurrent_runs_per_tenant).await?;
    let done = scoped
        .run_action(&id, &action, req.event, req.context)
        .await?;
    state.metrics.count("runs_started");
    let status = to_json(&done.status)?;
    Ok(Json(ActionRunView {
        run_id: done.run_id,
        status: status.as_str().unwrap_or_default().to_string(),
        result: done.result,
    }))
}
