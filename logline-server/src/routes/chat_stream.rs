//! A chat task's progress as Server-Sent Events: its stored events (each with its sequence
//! number as SSE id) merged with the live text deltas, ending after the task finishes.

use std::convert::Infallible;

use axum::response::sse::Event as SseEvent;
use futures::stream::{BoxStream, StreamExt};
use logline_core::chat::{ChatEvent, TaskId};
use logline_core::event::Event;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The stream `GET /chat/stream` answers with.
pub type TaskEvents = BoxStream<'static, Result<SseEvent, Infallible>>;

/// An item of the merged streams.
enum Item {
    Stored(logline_core::Result<Event>),
    Delta(String),
}

/// The SSE form of a chat event: `event:` its type, `id:` the last stored sequence number.
fn sse(id: u64, event: &ChatEvent) -> SseEvent {
    let kind = serde_json::to_value(event)
        .ok()
        .and_then(|v| v["type"].as_str().map(String::from))
        .unwrap_or_else(|| "message".into());
    SseEvent::default()
        .id(id.to_string())
        .event(kind)
        .json_data(event)
        .unwrap_or_else(|_| SseEvent::default().comment("unserializable event"))
}

/// The progress of `task_id` after stored event `after`: stored events as they are
/// committed (a replay first, when resuming), live deltas, and the end after the terminal
/// event or at shutdown. A failing stream sends an `error` event with a problem document.
pub async fn task_events(
    state: &AppState,
    caller: &Caller,
    task_id: TaskId,
    after: u64,
) -> ApiResult<TaskEvents> {
    let scoped = caller.scoped(state);
    let deltas = scoped
        .progress(task_id)
        .await?
        .filter(|p| std::future::ready(p.tool.is_none()))
        .map(|p| Item::Delta(p.delta));
    let stored = scoped.subscribe(task_id, after).await?.map(Item::Stored);
    let merged = futures::stream::select(stored, deltas);
    let shutdown = state.shutdown.clone();
    let out = futures::stream::unfold(Some((merged, after)), |state| async move {
        let (mut merged, mut last) = state?;
        loop {
            match merged.next().await? {
                Item::Delta(text) => {
                    let event = sse(last, &ChatEvent::Delta { text });
                    return Some((Ok::<_, Infallible>(event), Some((merged, last))));
                }
                Item::Stored(Ok(e)) => {
                    last = e.seq;
                    let terminal = e.kind.is_terminal();
                    match ChatEvent::from_event(&e) {
                        Some(c) => {
                            let next = (!terminal).then_some((merged, last));
                            return Some((Ok(sse(last, &c)), next));
                        }
                        None if terminal => return None,
                        None => continue,
                    }
                }
                Item::Stored(Err(e)) => {
                    let problem = ApiError::from(e).problem();
                    let event = SseEvent::default()
                        .event("error")
                        .json_data(problem)
                        .unwrap_or_else(|_| SseEvent::default().comment("stream failed"));
                    return Some((Ok(event), None));
                }
            }
        }
    })
    .take_until(async move { shutdown.cancelled().await });
    Ok(Box::pin(out))
}
