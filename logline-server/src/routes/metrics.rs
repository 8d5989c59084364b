//! `GET /api/v1/metrics`: this process's metrics (engine and HTTP) as JSON or Prometheus text
//! (admins).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Problem};
use crate::metrics::MetricsSnapshot;
use crate::routes::Params;
use crate::state::AppState;
use crate::store::Role;

/// `?format=json|prometheus`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MetricsQuery {
    /// `json` (default) or `prometheus`.
    pub format: Option<String>,
}

/// The metrics snapshot.
#[utoipa::path(get, path = "/api/v1/metrics", tag = "metrics", params(MetricsQuery),
    responses((status = 200, description = "The snapshot", content((MetricsSnapshot = "application/json"), (String = "text/plain"))),
        (status = 400, body = Problem), (status = 403, body = Problem), (status = 503, body = Problem)), security(("bearer" = [])))]
pub async fn metrics(
    State(state): State<AppState>,
    caller: Caller,
    Params(q): Params<MetricsQuery>,
) -> ApiResult<Response> {
    caller.require(&[Role::Admin])?;
    match q.format.as_deref() {
        None | Some("json") => match state.metrics.snapshot() {
            Some(snapshot) => Ok(Json(snapshot).into_response()),
            None => Err(crate::metrics::unavailable()),
        },
        Some("prometheus") => Ok(crate::metrics::prometheus_response(&state.metrics)),
        Some(other) => Err(ApiError::bad_request(format!(
            "unknown format `{other}`: json or prometheus"
        ))),
    }
}
