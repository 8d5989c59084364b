//! Chat: conversations, messages, sending (a task per message), the task's progress as
//! Server-Sent Events, the task itself, and confirming or refusing the call it waits on.
//! Everything is scoped to the caller's tenant and user: another user's conversation or
//! task is a 404 like a missing one.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{KeepAlive, KeepAliveStream, Sse};
use axum::Json;
use logline_core::artifact::{ArtifactFilter, Owner};
use logline_core::chat::{Attachment, ScopedChat, TaskId};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::audit::{self, Action};
use crate::auth::{Caller, ClientInfo};
use crate::error::{ApiError, ApiResult, Problem};
use crate::routes::chat_stream::{self, TaskEvents};
use crate::routes::files::ArtifactView;
use crate::routes::{no_nul, plain_text, to_json, Body, OptBody, Params, MAX_LIMIT};
use crate::state::AppState;

/// Most attachments one message may name.
pub const MAX_ATTACHMENTS: usize = 20;
/// Longest message, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Longest conversation title, in characters.
const MAX_TITLE_CHARS: usize = 200;

/// `{items: [...]}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Items {
    /// Items.
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<Value>,
}

/// `POST /chat/conversations`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewConversation {
    /// Title (default `New conversation`).
    #[serde(default)]
    pub title: Option<String>,
}

/// `GET /chat/conversations`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConversationQuery {
    /// Most conversations returned, newest first (1 to 100, default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u64>,
}

/// `GET /chat/conversations/{id}/messages`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MessageQuery {
    /// Only messages after this sequence number (default 0).
    #[param(minimum = 0)]
    pub after_seq: Option<u64>,
    /// Most messages returned, oldest first (1 to 100, default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u64>,
}

/// `POST /chat/send`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    /// The conversation; absent = a new one.
    #[serde(default)]
    pub conversation_id: Option<Uuid>,
    /// The message.
    pub message: String,
    /// Ids of the caller's uploaded artifacts.
    #[serde(default)]
    pub attachments: Vec<Uuid>,
}

/// What `POST /chat/send` answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct Sent {
    /// The task answering the message (follow it at `/chat/stream?task_id=`).
    pub task_id: Uuid,
    /// The conversation.
    pub conversation_id: Uuid,
}

/// `POST /tasks/{id}/confirm`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmRequest {
    /// The gate the task waits at (`confirmation.gate_id`).
    pub gate_id: String,
    /// `true` runs exactly the previewed call; `false` refuses it.
    pub approve: bool,
    /// Why (kept in the audit row).
    #[serde(default)]
    pub reason: Option<String>,
}

/// What `POST /tasks/{id}/confirm` answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct Confirmed {
    /// The task's status after the decision.
    pub status: String,
}

fn limit_of(limit: Option<u64>, default: u64) -> ApiResult<u32> {
    let limit = limit.unwrap_or(default);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request("`limit` is 1 to 100"));
    }
    Ok(limit as u32)
}

/// A task or conversation id from the path or query; a malformed one is as missing as an
/// unknown one.
pub fn uuid_of(what: &str, raw: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(raw).map_err(|_| ApiError::not_found(what, raw.escape_default()))
}

/// The caller's chat.
pub fn chat_of(state: &AppState, caller: &Caller) -> ApiResult<ScopedChat> {
    Ok(state.chat()?.scoped(caller.principal())?)
}

fn check_text(what: &str, text: &str, max_chars: usize) -> ApiResult<()> {
    if text.contains('\0') || text.chars().count() > max_chars {
        return Err(ApiError::bad_request(format!(
            "`{what}` is text of at most {max_chars} characters, without NUL"
        )));
    }
    Ok(())
}

/// Starts a conversation of the caller.
#[utoipa::path(post, path = "/api/v1/chat/conversations", tag = "chat", request_body = NewConversation,
    responses((status = 201, body = Object), (status = 400, body = Problem)), security(("bearer" = [])))]
pub async fn create_conversation(
    State(state): State<AppState>,
    caller: Caller,
    OptBody(req): OptBody<NewConversation>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let title = req.title.unwrap_or_default();
    check_text("title", &title, MAX_TITLE_CHARS)?;
    let title = match title.trim() {
        "" => "New conversation",
        t => t,
    };
    let conversation = chat_of(&state, &caller)?.create_conversation(title).await?;
    Ok((StatusCode::CREATED, Json(to_json(&conversation)?)))
}

/// The caller's conversations, newest first.
#[utoipa::path(get, path = "/api/v1/chat/conversations", tag = "chat", params(ConversationQuery),
    responses((status = 200, body = Items), (status = 400, body = Problem)), security(("bearer" = [])))]
pub async fn list_conversations(
    State(state): State<AppState>,
    caller: Caller,
    Params(q): Params<ConversationQuery>,
) -> ApiResult<Json<Items>> {
    let limit = limit_of(q.limit, 20)?;
    let list = chat_of(&state, &caller)?.conversations(limit).await?;
    let items = list.iter().map(to_json).collect::<ApiResult<_>>()?;
    Ok(Json(Items { items }))
}

/// Messages of one of the caller's conversations, oldest first.
#[utoipa::path(get, path = "/api/v1/chat/conversations/{id}/messages", tag = "chat",
    params(("id" = String, Path, description = "Conversation id"), MessageQuery),
    responses((status = 200, body = Items), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn messages(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Params(q): Params<MessageQuery>,
) -> ApiResult<Json<Items>> {
    let id = uuid_of("conversation", &id)?;
    let limit = limit_of(q.limit, 50)?;
    let after = i64::try_from(q.after_seq.unwrap_or(0))
        .map_err(|_| ApiError::bad_request("`after_seq` is too large"))?;
    let list = chat_of(&state, &caller)?.messages(id, after, limit).await?;
    let items = list.iter().map(to_json).collect::<ApiResult<_>>()?;
    Ok(Json(Items { items }))
}

/// Sends a message: stores it, starts the task that answers it and returns at once.
#[utoipa::path(post, path = "/api/v1/chat/send", tag = "chat", request_body = SendRequest,
    responses((status = 202, body = Sent), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn send(
    State(state): State<AppState>,
    caller: Caller,
    Body(req): Body<SendRequest>,
) -> ApiResult<(StatusCode, Json<Sent>)> {
    no_nul(&Value::String(req.message.clone()))?;
    if req.message.trim().is_empty() && req.attachments.is_empty() {
        return Err(ApiError::bad_request("`message` is empty"));
    }
    if req.message.len() > MAX_MESSAGE_BYTES {
        return Err(ApiError::bad_request(format!(
            "`message` has at most {MAX_MESSAGE_BYTES} bytes"
        )));
    }
    if req.attachments.len() > MAX_ATTACHMENTS {
        return Err(ApiError::bad_request(format!(
            "at most {MAX_ATTACHMENTS} attachments per message"
        )));
    }
    let chat = chat_of(&state, &caller)?;
    let owner = Owner::from(&caller.principal());
    let mut attachments = Vec::with_capacity(req.attachments.len());
    for id in &req.attachments {
        let a = state.artifacts().head(&owner, *id).await?;
        attachments.push(Attachment {
            id: a.id.to_string(),
            name: a.name,
            size_bytes: a.size,
            content_type: a.content_type,
        });
    }
    let conversation_id = match req.conversation_id {
        Some(id) => chat.conversation(id).await?.id,
        None => {
            let title: String = req.message.trim().chars().take(60).collect();
            let title = if title.is_empty() { "Files" } else { &title };
            chat.create_conversation(title).await?.id
        }
    };
    let task_id = chat
        .send(conversation_id, &req.message, attachments)
        .await?;
    state.metrics.count("chat_messages");
    Ok((
        StatusCode::ACCEPTED,
        Json(Sent {
            task_id,
            conversation_id,
        }),
    ))
}

/// `GET /chat/stream`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// The task.
    pub task_id: String,
}

/// A task's progress as Server-Sent Events: `router`, `tools_selected`, `tool_call`,
/// `awaiting_confirm`, `delta`, `final`, `error`, each with the event JSON as data. Stored
/// events carry their sequence number as id, and a reconnect with `Last-Event-ID` replays
/// those after it (text deltas are live only). Stays open while the task waits for a
/// confirmation; ends after `final` or `error`.
#[utoipa::path(get, path = "/api/v1/chat/stream", tag = "chat",
    params(StreamQuery, ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event")),
    responses((status = 200, content_type = "text/event-stream", body = crate::routes::ServerSentEvent), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn stream(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Params(q): Params<StreamQuery>,
) -> ApiResult<Sse<KeepAliveStream<TaskEvents>>> {
    let task_id = uuid_of("task", &q.task_id)?;
    let after = match headers.get("last-event-id") {
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .ok_or_else(|| ApiError::bad_request("`Last-Event-ID` is an event sequence number"))?,
        None => 0,
    };
    chat_of(&state, &caller)?.task(task_id).await?;
    let events = chat_stream::task_events(&state, &caller, task_id, after).await?;
    Ok(
        Sse::new(events).keep_alive(KeepAlive::new().interval(std::time::Duration::from_secs(
            state.config.sse_keep_alive_secs.max(1),
        ))),
    )
}

/// The task as JSON: status, router decision, answer, cap, pending confirmation, error, and
/// the artifacts it produced.
async fn task_json(
    state: &AppState,
    caller: &Caller,
    chat: &ScopedChat,
    task_id: TaskId,
) -> ApiResult<Value> {
    let v = chat.task(task_id).await?;
    let filter = ArtifactFilter {
        task_id: Some(task_id),
        limit: None,
    };
    let artifacts = state
        .artifacts()
        .list(&Owner::from(&caller.principal()), &filter)
        .await?;
    let artifacts: Vec<ArtifactView> = artifacts.into_iter().map(ArtifactView::from).collect();
    Ok(json!({
        "task_id": v.task.id, "conversation_id": v.task.conversation_id, "run_id": v.task.id,
        "status": v.status, "router": v.task.router, "answer": v.answer, "limit": v.limit,
        "confirmation": v.confirmation, "error": v.error, "artifacts": artifacts,
    }))
}

/// One of the caller's chat tasks.
#[utoipa::path(get, path = "/api/v1/tasks/{id}", tag = "chat",
    params(("id" = String, Path, description = "Task id")),
    responses((status = 200, body = Object), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn task(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let task_id = uuid_of("task", &id)?;
    let chat = chat_of(&state, &caller)?;
    Ok(Json(task_json(&state, &caller, &chat, task_id).await?))
}

/// Confirms (runs exactly the previewed call) or refuses the call the task waits on.
#[utoipa::path(post, path = "/api/v1/tasks/{id}/confirm", tag = "chat", request_body = ConfirmRequest,
    params(("id" = String, Path, description = "Task id")),
    responses((status = 202, body = Confirmed), (status = 400, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem)), security(("bearer" = [])))]
pub async fn confirm(
    State(state): State<AppState>,
    caller: Caller,
    client: ClientInfo,
    Path(id): Path<String>,
    Body(req): Body<ConfirmRequest>,
) -> ApiResult<(StatusCode, Json<Confirmed>)> {
    let task_id = uuid_of("task", &id)?;
    if !plain_text(&req.gate_id) {
        return Err(ApiError::bad_request("`gate_id` is printable text"));
    }
    if let Some(reason) = &req.reason {
        check_text("reason", reason, 1000)?;
    }
    let chat = chat_of(&state, &caller)?;
    let tool_id = chat.task(task_id).await?.confirmation.map(|c| c.tool_id);
    if req.approve {
        chat.confirm(task_id, &req.gate_id).await?;
    } else {
        chat.deny(task_id, &req.gate_id, req.reason.as_deref())
            .await?;
    }
    let action = if req.approve { "confirm" } else { "deny" };
    state
        .metrics
        .count(if req.approve { "approvals" } else { "denials" });
    audit::record(
        &state,
        &caller,
        &client,
        Action::new(action, "task", task_id)
            .changes(json!({"gate_id": req.gate_id, "tool_id": tool_id, "reason": req.reason})),
    )
    .await?;
    let status = to_json(&chat.task(task_id).await?.status)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Confirmed {
            status: status.as_str().unwrap_or_default().to_string(),
        }),
    ))
}
