//! `/api/v1/alerts/*`: the tenant's alert configurations, a check on request, and the
//! history of firings with resolution.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::Utc;
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::alerts::{self, CheckResult};
use crate::audit::{self, Action};
use crate::auth::{Caller, ClientInfo};
use crate::error::{ApiError, ApiResult, Problem};
use crate::routes::{plain_text, Body, PageQuery, Params};
use crate::state::AppState;
use crate::store::{AlertConfig, AlertEvent, AlertRule, Role};

const MANAGERS: &[Role] = &[Role::Admin, Role::Developer];

/// `POST /alerts/configs` and (every field optional) `PATCH /alerts/configs/{id}`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertRequest {
    /// Name.
    pub name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// `error_rate`, `budget_exceeded` or `policy_denials`.
    pub rule_type: Option<AlertRule>,
    /// Threshold.
    pub threshold: Option<f64>,
    /// `>` (default), `<`, `>=`, `<=`, `==`.
    pub comparison_operator: Option<String>,
    /// Window in seconds (default 3600).
    pub window_secs: Option<u64>,
    /// Cooldown in seconds (default 900).
    pub cooldown_secs: Option<u64>,
    /// Webhook that receives firings (`https://`).
    pub webhook_url: Option<String>,
    /// Channels: only `webhook` is delivered.
    pub notification_channels: Option<Vec<String>>,
    /// Enabled (default true).
    pub enabled: Option<bool>,
}

fn apply(state: &AppState, a: &mut AlertConfig, r: AlertRequest) -> ApiResult<()> {
    if let Some(n) = r.name {
        if n.trim().is_empty() || n.len() > 200 || !plain_text(&n) {
            return Err(ApiError::bad_request(
                "`name` has 1 to 200 printable characters",
            ));
        }
        a.name = n;
    }
    if let Some(d) = r.description {
        if d.len() > 2000 || d.contains('\0') {
            return Err(ApiError::bad_request(
                "`description` has at most 2000 characters",
            ));
        }
        a.description = Some(d);
    }
    if let Some(t) = r.rule_type {
        a.rule_type = t;
    }
    if let Some(t) = r.threshold {
        if !t.is_finite() {
            return Err(ApiError::bad_request("`threshold` is a finite number"));
        }
        a.threshold = t;
    }
    if let Some(op) = r.comparison_operator {
        if ![">", "<", ">=", "<=", "=="].contains(&op.as_str()) {
            return Err(ApiError::bad_request(
                "`comparison_operator` is one of >, <, >=, <=, ==",
            ));
        }
        a.comparison_operator = op;
    }
    if let Some(w) = r.window_secs {
        a.window_secs = w.clamp(60, 30 * 24 * 3600);
    }
    if let Some(c) = r.cooldown_secs {
        a.cooldown_secs = c.min(30 * 24 * 3600);
    }
    if let Some(channels) = r.notification_channels {
        if channels.iter().any(|c| c != "webhook") {
            return Err(ApiError::bad_request(
                "only the `webhook` channel is delivered",
            ));
        }
    }
    if let Some(url) = r.webhook_url {
        let parsed = reqwest::Url::parse(&url)
            .map_err(|_| ApiError::bad_request("`webhook_url` is not a URL"))?;
        let ok = parsed.scheme() == "https"
            || (parsed.scheme() == "http" && state.config.alert_webhooks_allow_http);
        if !ok || url.len() > 2000 {
            return Err(ApiError::bad_request("`webhook_url` must be an https URL"));
        }
        a.webhook_url = Some(url);
    }
    if let Some(e) = r.enabled {
        a.enabled = e;
    }
    Ok(())
}

async fn find(state: &AppState, tenant: &str, id: &str) -> ApiResult<AlertConfig> {
    let uuid =
        Uuid::parse_str(id).map_err(|_| ApiError::not_found("alert", id.escape_default()))?;
    state
        .store
        .alerts(tenant)
        .await?
        .into_iter()
        .find(|a| a.id == uuid)
        .ok_or_else(|| ApiError::not_found("alert", id))
}

/// The tenant's alert configurations.
#[utoipa::path(get, path = "/api/v1/alerts/configs", tag = "alerts",
    responses((status = 200, body = Vec<AlertConfig>)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<AlertConfig>>> {
    Ok(Json(state.store.alerts(&caller.tenant_id).await?))
}

/// Creates an alert (admins and developers).
#[utoipa::path(post, path = "/api/v1/alerts/configs", tag = "alerts", request_body = AlertRequest,
    responses((status = 201, body = AlertConfig), (status = 400, body = Problem)), security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientInfo,
    Body(req): Body<AlertRequest>,
) -> ApiResult<(StatusCode, Json<AlertConfig>)> {
    caller.require(MANAGERS)?;
    if req.name.is_none() || req.rule_type.is_none() || req.threshold.is_none() {
        return Err(ApiError::bad_request(
            "`name`, `rule_type` and `threshold` are required",
        ));
    }
    let mut alert = AlertConfig {
        id: Uuid::now_v7(),
        tenant_id: caller.tenant_id.clone(),
        name: String::new(),
        description: None,
        rule_type: AlertRule::ErrorRate,
        threshold: 0.0,
        comparison_operator: ">".into(),
        window_secs: 3600,
        cooldown_secs: 900,
        webhook_url: None,
        enabled: true,
        created_at: Utc::now(),
    };
    apply(&state, &mut alert, req)?;
    state.store.put_alert(&alert).await?;
    audit::record(
        &state,
        &caller,
        &client,
        Action::new("create", "alert", alert.id).changes(json!({"rule_type": alert.rule_type})),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(alert)))
}

/// Changes an alert (admins and developers).
#[utoipa::path(patch, path = "/api/v1/alerts/configs/{id}", tag = "alerts", request_body = AlertRequest,
    params(("id" = String, Path, description = "Alert id")),
    responses((status = 200, body = AlertConfig), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientInfo,
    Path(id): Path<String>,
    Body(req): Body<AlertRequest>,
) -> ApiResult<Json<AlertConfig>> {
    caller.require(MANAGERS)?;
    let mut alert = find(&state, &caller.tenant_id, &id).await?;
    apply(&state, &mut alert, req)?;
    state.store.put_alert(&alert).await?;
    audit::record(
        &state,
        &caller,
        &client,
        Action::new("update", "alert", alert.id),
    )
    .await?;
    Ok(Json(alert))
}

/// Deletes an alert and its history (admins and developers).
#[utoipa::path(delete, path = "/api/v1/alerts/configs/{id}", tag = "alerts",
    params(("id" = String, Path, description = "Alert id")),
    responses((status = 204), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientInfo,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(MANAGERS)?;
    let alert = find(&state, &caller.tenant_id, &id).await?;
    state
        .store
        .delete_alert(&caller.tenant_id, alert.id)
        .await?;
    audit::record(
        &state,
        &caller,
        &client,
        Action::new("delete", "alert", alert.id),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Checks the tenant's enabled alerts now; firings outside their cooldown are recorded and
/// delivered.
#[utoipa::path(post, path = "/api/v1/alerts/check", tag = "alerts",
    responses((status = 200, body = Vec<CheckResult>), (status = 403, body = Problem)), security(("bearer" = [])))]
pub async fn check(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<CheckResult>>> {
    caller.require(MANAGERS)?;
    let mut out = Vec::new();
    for alert in state
        .store
        .alerts(&caller.tenant_id)
        .await?
        .into_iter()
        .filter(|a| a.enabled)
    {
        out.push(alerts::check(&state, &alert).await?);
    }
    Ok(Json(out))
}

/// Firings of the tenant's alerts, newest first.
#[utoipa::path(get, path = "/api/v1/alerts/history", tag = "alerts", params(PageQuery),
    responses((status = 200, body = Vec<AlertEvent>)), security(("bearer" = [])))]
pub async fn history(
    State(state): State<AppState>,
    caller: Caller,
    Params(q): Params<PageQuery>,
) -> ApiResult<Json<Vec<AlertEvent>>> {
    let (_, limit, offset) = q.resolve()?;
    Ok(Json(
        state
            .store
            .alert_history(&caller.tenant_id, offset, limit)
            .await?,
    ))
}

/// Marks a firing resolved (admins and developers).
#[utoipa::path(post, path = "/api/v1/alerts/history/{id}/resolve", tag = "alerts",
    params(("id" = String, Path, description = "Firing id")),
    responses((status = 200, body = AlertEvent), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn resolve(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientInfo,
    Path(id): Path<String>,
) -> ApiResult<Json<AlertEvent>> {
    caller.require(MANAGERS)?;
    let uuid = Uuid::parse_str(&id)
        .map_err(|_| ApiError::not_found("alert event", id.escape_default()))?;
    let event = state.store.resolve_alert(&caller.tenant_id, uuid).await?;
    audit::record(
        &state,
        &caller,
        &client,
        Action::new("resolve", "alert_event", uuid),
    )
    .await?;
    Ok(Json(event))
}
