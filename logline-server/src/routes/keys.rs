//! `/api/v1/auth/api-keys`: create (the key is shown once), list, revoke.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::audit::{self, Action};
use crate::auth::{self, Caller, ClientInfo};
use crate::error::{ApiError, ApiResult, Problem};
use crate::routes::Body;
use crate::state::AppState;
use crate::store::ApiKey;

/// `POST /auth/api-keys`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyRequest {
    /// Label.
    pub name: String,
    /// `read` and/or `write` (default both).
    #[serde(default)]
    pub permissions: Option<Vec<String>>,
    /// Days until the key expires (default: never).
    #[serde(default)]
    pub expires_in_days: Option<u32>,
}

/// A new key: `key` is shown only in this answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedKey {
    /// The key: send it as `Authorization: Bearer <key>` or `X-API-Key`.
    pub key: String,
    /// Its record.
    #[schema(value_type = Object)]
    pub api_key: serde_json::Value,
}

/// Creates an API key acting as the caller.
#[utoipa::path(post, path = "/api/v1/auth/api-keys", tag = "auth", request_body = CreateKeyRequest,
    responses((status = 201, body = CreatedKey), (status = 400, body = Problem), (status = 401, body = Problem)),
    security(("bearer" = [])))]
pub async fn create_key(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientInfo,
    Body(req): Body<CreateKeyRequest>,
) -> ApiResult<(StatusCode, Json<CreatedKey>)> {
    let name = req.name.trim();
    if name.is_empty() || name.len() > 200 || !crate::routes::plain_text(name) {
        return Err(ApiError::bad_request("`name` has 1 to 200 characters"));
    }
    let permissions = req
        .permissions
        .unwrap_or_else(|| vec!["read".into(), "write".into()]);
    if permissions.is_empty() || permissions.iter().any(|p| p != "read" && p != "write") {
        return Err(ApiError::bad_request(
            "`permissions` are `read` and/or `write`",
        ));
    }
    let key = auth::new_secret(auth::API_KEY_PREFIX);
    let record = ApiKey {
        id: Uuid::now_v7(),
        user_id: caller.user_id,
        tenant_id: caller.tenant_id.clone(),
        name: name.to_string(),
        prefix: key.chars().take(12).collect(),
        key_hash: auth::token_hash(&key),
        permissions,
        expires_at: req
            .expires_in_days
            .map(|d| Utc::now() + Duration::days(i64::from(d.clamp(1, 3650)))),
        last_used_at: None,
        revoked_at: None,
        created_at: Utc::now(),
    };
    state.store.create_api_key(&record).await?;
    audit::record(
        &state,
        &caller,
        &client,
        Action::new("create", "api_key", record.id)
            .changes(json!({"name": record.name, "permissions": record.permissions})),
    )
    .await?;
    let api_key = serde_json::to_value(&record)
        .map_err(|e| ApiError::from(logline_core::Error::Internal(e.to_string())))?;
    Ok((StatusCode::CREATED, Json(CreatedKey { key, api_key })))
}

/// The caller's keys (never the keys themselves).
#[utoipa::path(get, path = "/api/v1/auth/api-keys", tag = "auth",
    responses((status = 200, body = Vec<ApiKey>), (status = 401, body = Problem)), security(("bearer" = [])))]
pub async fn list_keys(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<ApiKey>>> {
    Ok(Json(state.store.list_api_keys(caller.user_id).await?))
}

/// Revokes one of the caller's keys.
#[utoipa::path(post, path = "/api/v1/auth/api-keys/{id}/revoke", tag = "auth",
    params(("id" = Uuid, Path, description = "Key id")),
    responses((status = 200, body = ApiKey), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn revoke_key(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientInfo,
    Path(id): Path<String>,
) -> ApiResult<Json<ApiKey>> {
    let id = Uuid::parse_str(&id).map_err(|_| ApiError::not_found("api key", &id))?;
    let key = state.store.revoke_api_key(caller.user_id, id).await?;
    audit::record(
        &state,
        &caller,
        &client,
        Action::new("revoke", "api_key", id),
    )
    .await?;
    Ok(Json(key))
}
