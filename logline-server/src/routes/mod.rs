//! The HTTP routes, one module per resource, and what they share: the JSON body extractor
//! that answers problems, pagination, and ownership checks of definitions.

pub mod agents;
pub mod alerts;
pub mod apps;
pub mod audit_logs;
pub mod auth;
pub mod chat;
pub mod chat_stream;
pub mod files;
pub mod health;
pub mod keys;
pub mod metrics;
pub mod policies;
pub mod runs;
pub mod stream;
pub mod tools;
pub mod workflows;

use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Largest page.
pub const MAX_LIMIT: u64 = 100;

/// One event of a `text/event-stream` response, as the OpenAPI document describes each
/// event of the API's streams.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ServerSentEvent {
    /// The event's JSON document.
    pub data: String,
    /// Its kind.
    pub event: Option<String>,
    /// Where a reconnecting client resumes (`Last-Event-ID`).
    pub id: Option<String>,
}

/// A JSON request body; a malformed one is a 400 (415 without a JSON content type) problem.
#[derive(Debug, Clone)]
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> ApiResult<Self> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Body(v)),
            Err(rejection) => {
                let status = rejection.status();
                let kind = if status == StatusCode::PAYLOAD_TOO_LARGE {
                    "payload_too_large"
                } else if status == StatusCode::UNSUPPORTED_MEDIA_TYPE {
                    "unsupported_media_type"
                } else {
                    "invalid_input"
                };
                let status = match status {
                    StatusCode::PAYLOAD_TOO_LARGE | StatusCode::UNSUPPORTED_MEDIA_TYPE => status,
                    _ => StatusCode::BAD_REQUEST,
                };
                Err(ApiError::new(status, kind, rejection.body_text()))
            }
        }
    }
}

/// `?page=1&limit=20`.
#[derive(Debug, Clone, Copy, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page, from 1.
    #[param(minimum = 1)]
    pub page: Option<u64>,
    /// Items per page (1 to 100, default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u64>,
}

impl PageQuery {
    /// `(page, limit, offset)`, checked.
    pub fn resolve(&self) -> ApiResult<(u64, u64, u64)> {
        let page = self.page.unwrap_or(1);
        let limit = self.limit.unwrap_or(20);
        if page == 0 || !(1..=MAX_LIMIT).contains(&limit) || page > 1_000_000 {
            return Err(ApiError::bad_request(
                "`page` starts at 1; `limit` is 1 to 100",
            ));
        }
        Ok((page, limit, (page - 1) * limit))
    }
}

/// One page of a list.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Paged {
    /// Items.
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<serde_json::Value>,
    /// Page, from 1.
    pub page: u64,
    /// Page size.
    pub limit: u64,
}

/// Who owns a definition, as the caller sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    /// The caller's tenant: it may change it.
    Own,
    /// Shared by the host with every tenant: read and use only.
    Shared,
}

/// How the caller's tenant sees definition `kind`/`id`: owned, shared, or — owned by another
/// tenant or unknown — a 404 that says the same in both cases.
pub async fn ownership(
    state: &AppState,
    kind: &str,
    id: &str,
    tenant: &str,
) -> ApiResult<Ownership> {
    if !plain_text(id) {
        return Err(ApiError::not_found(kind, id.escape_default()));
    }
    match state.store.owner(kind, id).await? {
        Some(o) if o.tenant_id.is_none() => Ok(Ownership::Shared),
        Some(o) if o.tenant_id.as_deref() == Some(tenant) => Ok(Ownership::Own),
        _ => Err(ApiError::not_found(kind, id)),
    }
}

/// [`ownership`], refusing shared definitions (403): only the host changes those.
pub async fn owned(state: &AppState, kind: &str, id: &str, tenant: &str) -> ApiResult<()> {
    match ownership(state, kind, id, tenant).await? {
        Ownership::Own => Ok(()),
        Ownership::Shared => Err(ApiError::forbidden(format!(
            "{kind} `{id}` is shared and read-only"
        ))),
    }
}

/// Serializes a value of ours for a JSON answer.
pub fn to_json<T: Serialize>(v: &T) -> ApiResult<serde_json::Value> {
    serde_json::to_value(v)
        .map_err(|e| logline_core::Error::Internal(format!("answer: {e}")).into())
}

/// An optional JSON body: an empty body is `T::default()`.
#[derive(Debug, Clone)]
pub struct OptBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> ApiResult<Self> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|r| ApiError::new(r.status(), "invalid_input", r.body_text()))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptBody(T::default()));
        }
        serde_json::from_slice(&bytes)
            .map(OptBody)
            .map_err(|e| ApiError::bad_request(format!("body: {e}")))
    }
}

/// Whether `s` is usable as an id or filter: no control characters, at most 512 bytes.
pub fn plain_text(s: &str) -> bool {
    s.len() <= 512 && !s.contains(char::is_control)
}

/// `BadRequest` when a definition holds NUL anywhere (it cannot be stored).
pub fn no_nul(v: &serde_json::Value) -> ApiResult<()> {
    if logline_core::nul::has_nul(v) {
        Err(ApiError::bad_request("the body holds a NUL character"))
    } else {
        Ok(())
    }
}

/// Query parameters; malformed ones are a 400 problem.
#[derive(Debug, Clone)]
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> axum::extract::FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> ApiResult<Self> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Params(q.0))
            .map_err(|r| ApiError::bad_request(r.body_text()))
    }
}
