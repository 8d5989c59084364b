//! `GET /api/v1/audit/logs`: the tenant's audit rows with filters (admins and developers).

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Problem};
use crate::routes::{plain_text, PageQuery, Params};
use crate::state::AppState;
use crate::store::{AuditEntry, AuditFilter, Role};

/// Filters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Acting user.
    pub user_id: Option<String>,
    /// Resource type.
    pub resource_type: Option<String>,
    /// Resource id.
    pub resource_id: Option<String>,
    /// Action.
    pub action: Option<String>,
    /// At or after (RFC 3339).
    pub start_date: Option<String>,
    /// Before (RFC 3339).
    pub end_date: Option<String>,
    /// Page, from 1.
    pub page: Option<u64>,
    /// Rows per page (1 to 100).
    pub limit: Option<u64>,
}

fn date(name: &str, v: Option<&str>) -> ApiResult<Option<DateTime<Utc>>> {
    v.map(|s| {
        DateTime::parse_from_rfc3339(s)
            .map(|d| d.with_timezone(&Utc))
            .map_err(|_| ApiError::bad_request(format!("`{name}` is an RFC 3339 time")))
    })
    .transpose()
}

/// Audit rows of the caller's tenant, newest first.
#[utoipa::path(get, path = "/api/v1/audit/logs", tag = "audit", params(AuditQuery),
    responses((status = 200, body = Vec<AuditEntry>), (status = 400, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn logs(
    State(state): State<AppState>,
    caller: Caller,
    Params(q): Params<AuditQuery>,
) -> ApiResult<Json<Vec<AuditEntry>>> {
    caller.require(&[Role::Admin, Role::Developer])?;
    for v in [&q.user_id, &q.resource_type, &q.resource_id, &q.action]
        .into_iter()
        .flatten()
    {
        if !plain_text(v) {
            return Err(ApiError::bad_request(
                "filters are printable text of at most 512 bytes",
            ));
        }
    }
    let (_, limit, offset) = PageQuery {
        page: q.page,
        limit: q.limit,
    }
    .resolve()?;
    let filter = AuditFilter {
        user_id: q.user_id,
        resource_type: q.resource_type,
        resource_id: q.resource_id,
        action: q.action,
        start: date("start_date", q.start_date.as_deref())?,
        end: date("end_date", q.end_date.as_deref())?,
        offset,
        limit,
    };
    Ok(Json(state.store.audit(&caller.tenant_id, &filter).await?))
}
