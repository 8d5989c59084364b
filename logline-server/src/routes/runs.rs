//! Runs: start (returns at once, `Idempotency-Key`), list, get, events, approve, deny,
//! cancel. Every operation goes through the caller's scoped engine: another tenant's run is
//! a 404 like a missing one.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use chrono::{DateTime, Utc};
use logline_core::engine::{ScopedEngine, StartRun};
use logline_core::run::{Budget, Run, RunId, RunMode, RunStatus, Subject};
use logline_core::store::{Page, RunFilter};
use logline_core::ErrorKind;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::audit::{self, Action};
use crate::auth::{Caller, ClientInfo};
use crate::error::{ApiError, ApiResult, Problem};
use crate::limits::check_run_cap;
use crate::routes::{
    ownership, plain_text, to_json, workflows, Body, OptBody, PageQuery, Paged, Params,
};
use crate::state::AppState;

/// Longest accepted `Idempotency-Key`.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;

/// `POST /workflows/{id}/runs`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRunRequest {
    /// Run input.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub input: Value,
    /// `draft` (default) or `auto`.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub mode: Option<RunMode>,
    /// Workflow version (default: the latest).
    #[serde(default)]
    pub version: Option<String>,
    /// Budget: `cost_limit_cents`, `max_llm_calls`, `max_latency_ms`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub budget: Option<Budget>,
}

/// `POST /runs/{id}/approve` and `/deny`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// The gate the run waits at (`pending_gate.gate_id`).
    pub gate_id: String,
    /// Why.
    #[serde(default)]
    pub reason: Option<String>,
}

/// `POST /runs/{id}/cancel`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    /// Why.
    #[serde(default)]
    pub reason: Option<String>,
}

/// `GET /runs` filters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunQuery {
    /// Only this workflow.
    pub workflow_id: Option<String>,
    /// Only this status (`pending`, `running`, `paused`, `completed`, `failed`, `cancelled`).
    pub status: Option<String>,
    /// Only runs created at or after this time (RFC 3339).
    pub created_after: Option<DateTime<Utc>>,
    /// Only runs created before this time (RFC 3339).
    pub created_before: Option<DateTime<Utc>>,
    /// Page, from 1.
    pub page: Option<u64>,
    /// Items per page (1 to 100).
    pub limit: Option<u64>,
}

/// `GET /runs/{id}/events` filters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// Only events after this sequence number.
    pub after: Option<u64>,
}

/// A run id from the path; a malformed one is as missing as an unknown one.
pub fn run_id(raw: &str) -> ApiResult<RunId> {
    Uuid::parse_str(raw).map_err(|_| ApiError::not_found("run", raw))
}

async fn denied(
    state: &AppState,
    caller: &Caller,
    client: &ClientInfo,
    e: logline_core::Error,
    what: Action<'_>,
) -> ApiError {
    if e.kind() == ErrorKind::PolicyDenied {
        audit::record_denial(
            state,
            caller,
            client,
            what.changes(json!({"reason": e.to_string()})),
        )
        .await;
    }
    e.into()
}

/// Starts a run of a workflow and returns at once (`202`, the run pending or paused).
/// A retry with the same `Idempotency-Key` returns the same run.
#[utoipa::path(post, path = "/api/v1/workflows/{id}/runs", tag = "runs", request_body = StartRunRequest,
    params(("id" = String, Path, description = "Workflow id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Same key, same run")),
    responses((status = 202, body = Object), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 429, body = Problem)), security(("bearer" = [])))]
pub async fn start(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientInfo,
    headers: HeaderMap,
    Path(id): Path<String>,
    Body(req): Body<StartRunRequest>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    ownership(&state, workflows::KIND, &id, &caller.tenant_id).await?;
    let key = match headers.get("idempotency-key") {
        Some(v) => {
            let k = v
                .to_str()
                .map_err(|_| ApiError::bad_request("`Idempotency-Key` is not text"))?;
            if k.is_empty() || k.len() > MAX_IDEMPOTENCY_KEY {
                return Err(ApiError::bad_request(
                    "`Idempotency-Key` has 1 to 255 characters",
                ));
            }
            Some(k.to_string())
        }
        None => None,
    };
    let scoped = caller.scoped(&state);
    check_run_cap(&scoped, state.config.max_concurrent_runs_per_tenant).await?;
    if req.version.as_deref().is_some_and(|v| !plain_text(v)) {
        return Err(ApiError::bad_request("`version` is printable text"));
    }
    let mut start = StartRun::new(id.clone(), req.input, Subject::default())
        .mode(req.mode.unwrap_or_default())
        .budget(req.budget.unwrap_or_default());
    start.version = req.version;
    start.idempotency_key = key;
    let run = match scoped.start_run(start).await {
        Ok(r) => r,
        Err(e) => {
            return Err(denied(
                &state,
                &caller,
                &client,
                e,
                Action::new("policy_deny", "workflow", &id),
            )
            .await)
        }
    };
    state.metrics.count("runs_started");
    Ok((StatusCode::ACCEPTED, Json(to_json(&run)?)))
}

/// Runs of the caller's tenant, newest first, filtered by workflow, status and creation time.
#[utoipa::path(get, path = "/api/v1/runs", tag = "runs", params(RunQuery),
    responses((status = 200, body = Paged), (status = 400, body = Problem)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Params(q): Params<RunQuery>,
) -> ApiResult<Json<Paged>> {
    let (page, limit, offset) = PageQuery {
        page: q.page,
        limit: q.limit,
    }
    .resolve()?;
    if q.workflow_id.as_deref().is_some_and(|w| !plain_text(w)) {
        return Err(ApiError::bad_request(
            "`workflow_id` is printable text of at most 512 bytes",
        ));
    }
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(
            serde_json::from_value::<RunStatus>(Value::String(s.to_string()))
                .map_err(|_| ApiError::bad_request(format!("unknown status `{s}`")))?,
        ),
    };
    let filter = RunFilter {
        tenant_id: None,
        workflow_id: q.workflow_id,
        status,
        page: Page { offset, limit },
    };
    let scoped = caller.scoped(&state);
    let runs = match (q.created_after, q.created_before) {
        (None, None) => scoped.list_runs(filter).await?,
        (after, before) => list_window(&scoped, filter, after, before).await?,
    };
    let items = runs.iter().map(to_json).collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(Paged { items, page, limit }))
}

/// One page of the runs created in `[after, before)`. Runs come newest first, so the
/// window starts at the first run older than `before` (found with a few one-run probes)
/// and ends at the first run older than `after`.
async fn list_window(
    scoped: &ScopedEngine,
    filter: RunFilter,
    after: Option<DateTime<Utc>>,
    before: Option<DateTime<Utc>>,
) -> logline_core::Result<Vec<Run>> {
    let start = match before {
        Some(before) => first_older(scoped, &filter, before).await?,
        None => 0,
    };
    let page = Page {
        offset: start.saturating_add(filter.page.offset),
        limit: filter.page.limit,
    };
    let runs = scoped.list_runs(RunFilter { page, ..filter }).await?;
    Ok(runs
        .into_iter()
        .take_while(|r| after.is_none_or(|a| r.created_at >= a))
        .collect())
}

/// Position (newest first) of the first run created before `before`: an exponential then a
/// binary search, one run per probe.
async fn first_older(
    scoped: &ScopedEngine,
    filter: &RunFilter,
    before: DateTime<Utc>,
) -> logline_core::Result<u64> {
    let newer_at = |offset: u64| {
        let probe = RunFilter {
            page: Page { offset, limit: 1 },
            ..filter.clone()
        };
        async move {
            let runs = scoped.list_runs(probe).await?;
            Ok::<_, logline_core::Error>(runs.first().is_some_and(|r| r.created_at >= before))
        }
    };
    // Every position below `low` holds a newer run; position `high` holds an older one or
    // lies past the end.
    let (mut low, mut high) = (0u64, 0u64);
    while newer_at(high).await? {
        low = high + 1;
        high = high.saturating_mul(2).saturating_add(1);
    }
    while low < high {
        let mid = low + (high - low) / 2;
        if newer_at(mid).await? {
            low = mid + 1;
        } else {
            high = mid;
        }
    }
    Ok(low)
}

/// A run: workflow, status, input, result, pending gate, usage.
#[utoipa::path(get, path = "/api/v1/runs/{id}", tag = "runs", params(("id" = String, Path, description = "Run id")),
    responses((status = 200, body = Object), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let run = caller.scoped(&state).get_run(run_id(&id)?).await?;
    Ok(Json(to_json(&run)?))
}

/// A run's events in order (after `?after=` when given).
#[utoipa::path(get, path = "/api/v1/runs/{id}/events", tag = "runs",
    params(("id" = String, Path, description = "Run id"), EventQuery),
    responses((status = 200, body = Vec<Object>), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Params(q): Params<EventQuery>,
) -> ApiResult<Json<Vec<Value>>> {
    let after = q.after.unwrap_or(0);
    let events = caller.scoped(&state).events(run_id(&id)?).await?;
    events
        .iter()
        .filter(|e| e.seq > after)
        .map(to_json)
        .collect::<ApiResult<Vec<_>>>()
        .map(Json)
}

async fn decide(
    state: AppState,
    caller: Caller,
    client: ClientInfo,
    id: String,
    d: Decision,
    approve: bool,
) -> ApiResult<Json<Value>> {
    let run_id = run_id(&id)?;
    let scoped = caller.scoped(&state);
    let action = if approve { "approve" } else { "deny" };
    let result = if approve {
        scoped
            .approve(run_id, &d.gate_id, d.reason.as_deref())
            .await
    } else {
        scoped
            .deny(run_id, &d.gate_id, d.reason.as_deref().unwrap_or("denied"))
            .await
    };
    let run = match result {
        Ok(run) => run,
        Err(e) => {
            return Err(denied(
                &state,
                &caller,
                &client,
                e,
                Action::new("policy_deny", "run", run_id),
            )
            .await)
        }
    };
    state
        .metrics
        .count(if approve { "approvals" } else { "denials" });
    audit::record(
        &state,
        &caller,
        &client,
        Action::new(action, "run", run_id)
            .changes(json!({"gate_id": d.gate_id, "reason": d.reason})),
    )
    .await?;
    Ok(Json(to_json(&run)?))
}

/// Approves the gate the run waits at; the run continues.
#[utoipa::path(post, path = "/api/v1/runs/{id}/approve", tag = "runs", request_body = Decision,
    params(("id" = String, Path, description = "Run id")),
    responses((status = 200, body = Object), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem)), security(("bearer" = [])))]
pub async fn approve(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientInfo,
    Path(id): Path<String>,
    Body(d): Body<Decision>,
) -> ApiResult<Json<Value>> {
    decide(state, caller, client, id, d, true).await
}

/// Denies the gate the run waits at; the run fails.
#[utoipa::path(post, path = "/api/v1/runs/{id}/deny", tag = "runs", request_body = Decision,
    params(("id" = String, Path, description = "Run id")),
    responses((status = 200, body = Object), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem)), security(("bearer" = [])))]
pub async fn deny(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientInfo,
    Path(id): Path<String>,
    Body(d): Body<Decision>,
) -> ApiResult<Json<Value>> {
    decide(state, caller, client, id, d, false).await
}

/// Cancels a run that has not finished.
#[utoipa::path(post, path = "/api/v1/runs/{id}/cancel", tag = "runs", request_body = CancelRequest,
    params(("id" = String, Path, description = "Run id")),
    responses((status = 200, body = Object), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientInfo,
    Path(id): Path<String>,
    OptBody(req): OptBody<CancelRequest>,
) -> ApiResult<Json<Value>> {
    let run_id = run_id(&id)?;
    let reason = req
        .reason
        .unwrap_or_else(|| "cancelled over the API".into());
    let run = caller.scoped(&state).cancel(run_id, &reason).await?;
    audit::record(
        &state,
        &caller,
        &client,
        Action::new("cancel", "run", run_id),
    )
    .await?;
    Ok(Json(to_json(&run)?))
}
