//! `GET /api/v1/runs/{id}/stream`: a run's events as Server-Sent Events, resumable with
//! `Last-Event-ID` (each event's id is its sequence number).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::{Stream, StreamExt};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Problem};
use crate::routes::runs::{run_id, EventQuery};
use crate::routes::Params;
use crate::state::AppState;

/// Streams the run's events after `Last-Event-ID` (or `?after=`), ending after the terminal
/// event; a stream that fails sends an `error` event with a problem document and ends.
#[utoipa::path(get, path = "/api/v1/runs/{id}/stream", tag = "runs",
    params(("id" = String, Path, description = "Run id"),
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event"), EventQuery),
    responses((status = 200, content_type = "text/event-stream", body = crate::routes::ServerSentEvent), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn stream(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    Params(q): Params<EventQuery>,
) -> ApiResult<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>> {
    let after = match headers.get("last-event-id") {
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .ok_or_else(|| ApiError::bad_request("`Last-Event-ID` is an event sequence number"))?,
        None => q.after.unwrap_or(0),
    };
    let events = caller.scoped(&state).subscribe(run_id(&id)?, after).await?;
    let shutdown = state.shutdown.clone();
    let out = events
        .map(|item| {
            Ok(match item {
                Ok(e) => SseEvent::default()
                    .id(e.seq.to_string())
                    .event(e.kind.as_str())
                    .json_data(&e)
                    .unwrap_or_else(|_| SseEvent::default().comment("unserializable event")),
                Err(e) => SseEvent::default()
                    .event("error")
                    .json_data(ApiError::from(e).problem())
                    .unwrap_or_else(|_| SseEvent::default().comment("stream failed")),
            })
        })
        .take_until(async move { shutdown.cancelled().await });
    Ok(Sse::new(out).keep_alive(
        KeepAlive::new().interval(Duration::from_secs(state.config.sse_keep_alive_secs.max(1))),
    ))
}
