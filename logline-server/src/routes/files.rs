//! Files: streamed uploads (`multipart/form-data`) and the caller's artifacts — uploads and
//! what the chat's tools produced — listed, described and downloaded. Every artifact is
//! its uploader's: another user's or tenant's is a 404 like a missing one.

use axum::body::Body as HttpBody;
use axum::extract::multipart::{Field, MultipartError, MultipartRejection};
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use logline_core::artifact::{
    Artifact, ArtifactFilter, ByteStream, NewArtifact, Owner, UploadRejection,
};
use logline_core::Error;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde::{Deserialize, Serialize};
use tokio_stream::wrappers::ReceiverStream;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, Problem};
use crate::routes::chat::{chat_of, uuid_of, Items};
use crate::routes::{to_json, Params, MAX_LIMIT};
use crate::state::AppState;

/// Room for the multipart framing around an upload of the largest size.
const FORM_OVERHEAD: u64 = 64 * 1024;
/// Longest `task_id` form field, in bytes.
const MAX_TASK_FIELD: usize = 128;

/// An artifact as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ArtifactView {
    /// Id.
    pub id: Uuid,
    /// Cleaned file name.
    pub name: String,
    /// Content type, as sniffed from the bytes.
    pub content_type: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the bytes, lowercase hex.
    pub sha256: String,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
    /// The task it belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_id: Option<Uuid>,
}

impl From<Artifact> for ArtifactView {
    fn from(a: Artifact) -> Self {
        ArtifactView {
            id: a.id,
            name: a.name,
            content_type: a.content_type,
            size: a.size,
            sha256: a.sha256,
            created_at: a.created_at,
            task_id: a.task_id,
        }
    }
}

/// The form of `POST /files/upload`.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct UploadForm {
    /// The task to link the file to (before `file` in the form).
    task_id: Option<String>,
    /// The file.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

/// `GET /artifacts`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ArtifactQuery {
    /// Only the artifacts of this task.
    pub task_id: Option<String>,
    /// Most artifacts returned, newest first (1 to 100, default 100).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u64>,
}

/// The upload route, with a body limit that fits the largest upload.
pub fn upload_routes(max_upload_bytes: u64) -> OpenApiRouter<AppState> {
    let limit = max_upload_bytes.saturating_add(FORM_OVERHEAD);
    OpenApiRouter::new()
        .routes(routes!(upload))
        .layer(DefaultBodyLimit::max(
            usize::try_from(limit).unwrap_or(usize::MAX),
        ))
}

fn owner_of(caller: &Caller) -> Owner {
    Owner::from(&caller.principal())
}

/// An upload refusal or a failed form as an answer: too large 413, a refused type 415,
/// anything else 400.
fn upload_error(e: Error) -> ApiError {
    match &e {
        Error::UploadRejected(r) => {
            let (status, kind) = match r {
                UploadRejection::TooLarge { .. } => {
                    (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
                }
                UploadRejection::TypeNotAllowed { .. } | UploadRejection::TypeMismatch { .. } => {
                    (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
                }
                _ => (StatusCode::BAD_REQUEST, "invalid_input"),
            };
            ApiError::new(status, kind, r.to_string())
        }
        _ => e.into(),
    }
}

/// A form error as a core error; a body over the route's limit is `TooLarge`.
fn form_error(e: MultipartError, max_bytes: u64) -> Error {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Error::UploadRejected(UploadRejection::TooLarge { limit: max_bytes })
    } else {
        Error::InvalidInput(format!("multipart form: {}", e.body_text()))
    }
}

/// The last part of a path a client sent as the file name (`C:\a\b.pdf` → `b.pdf`).
fn base_name(raw: &str) -> &str {
    raw.rsplit(['/', '\\']).next().unwrap_or(raw)
}

/// Reads the small `task_id` field and checks the task is the caller's.
async fn task_field(state: &AppState, caller: &Caller, mut field: Field<'_>) -> ApiResult<Uuid> {
    let mut raw = Vec::new();
    while let Some(chunk) = field
        .chunk()
        .await
        .map_err(|e| upload_error(form_error(e, 0)))?
    {
        raw.extend_from_slice(&chunk);
        if raw.len() > MAX_TASK_FIELD {
            return Err(ApiError::bad_request("`task_id` is a task id"));
        }
    }
    let text = String::from_utf8_lossy(&raw);
    let id = uuid_of("task", text.trim())?;
    match state.chat() {
        Ok(chat) => {
            chat.scoped(caller.principal())?.task(id).await?;
        }
        Err(_) => {
            caller.scoped(state).get_run(id).await?;
        }
    }
    Ok(id)
}

/// Streams the `file` field into the artifact store (bounded: a chunk at a time).
async fn store_file(
    state: &AppState,
    caller: &Caller,
    mut field: Field<'_>,
    task_id: Option<Uuid>,
) -> ApiResult<Artifact> {
    let name = field
        .file_name()
        .map_or_else(|| "upload".to_string(), |n| base_name(n).to_string());
    // Browsers say `application/octet-stream` for any type they do not know.
    let declared = field
        .content_type()
        .filter(|t| !t.eq_ignore_ascii_case("application/octet-stream"))
        .map(String::from);
    let upload = NewArtifact {
        name,
        content_type: declared,
        task_id,
    };
    let max_bytes = state.config.upload_max_bytes;
    let (tx, rx) = tokio::sync::mpsc::channel::<logline_core::Result<Bytes>>(2);
    let body: ByteStream = Box::pin(ReceiverStream::new(rx));
    let owner = owner_of(caller);
    let put = state.artifacts().put_stream(&owner, upload, body);
    let pump = async move {
        loop {
            let item = match field.chunk().await {
                Ok(Some(chunk)) => Ok(chunk),
                Ok(None) => break,
                Err(e) => Err(form_error(e, max_bytes)),
            };
            let failed = item.is_err();
            // The store stopped reading (it refused the upload): stop too.
            if tx.send(item).await.is_err() || failed {
                break;
            }
        }
    };
    let (stored, ()) = tokio::join!(put, pump);
    stored.map_err(upload_error)
}

/// Uploads a file (`multipart/form-data`: an optional `task_id` field, then `file`). The
/// body is streamed to storage; the size is checked as it arrives (413 over the limit) and
/// the type is sniffed from the bytes (415 when not allowed or not what was declared). A
/// file name sent as a path keeps its last part; unsafe characters are replaced.
#[utoipa::path(post, path = "/api/v1/files/upload", tag = "files",
    request_body(content_type = "multipart/form-data", content = UploadForm),
    responses((status = 201, body = ArtifactView), (status = 400, body = Problem), (status = 404, body = Problem),
        (status = 413, body = Problem), (status = 415, body = Problem)), security(("bearer" = [])))]
pub async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    form: Result<Multipart, MultipartRejection>,
) -> ApiResult<(StatusCode, Json<ArtifactView>)> {
    let mut form = form.map_err(|r| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!(
                "send multipart/form-data with a `file` field ({})",
                r.body_text()
            ),
        )
    })?;
    let max_bytes = state.config.upload_max_bytes;
    let mut task_id = None;
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| upload_error(form_error(e, max_bytes)))?
    {
        let name = field.name().map(str::to_owned);
        match name.as_deref() {
            Some("task_id") => task_id = Some(task_field(&state, &caller, field).await?),
            Some("file") => {
                let artifact = store_file(&state, &caller, field, task_id).await?;
                state.metrics.count("uploads");
                return Ok((StatusCode::CREATED, Json(artifact.into())));
            }
            _ => {}
        }
    }
    Err(ApiError::bad_request("the form has no `file` field"))
}

/// The caller's artifacts, newest first (those of one task with `?task_id=`).
#[utoipa::path(get, path = "/api/v1/artifacts", tag = "files", params(ArtifactQuery),
    responses((status = 200, body = Items), (status = 400, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Params(q): Params<ArtifactQuery>,
) -> ApiResult<Json<Items>> {
    let limit = q.limit.unwrap_or(MAX_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request("`limit` is 1 to 100"));
    }
    let task_id = match q.task_id.as_deref() {
        Some(raw) => {
            let id = uuid_of("task", raw)?;
            if let Ok(chat) = chat_of(&state, &caller) {
                chat.task(id).await?;
            }
            Some(id)
        }
        None => None,
    };
    let filter = ArtifactFilter {
        task_id,
        limit: Some(limit as u32),
    };
    let found = state.artifacts().list(&owner_of(&caller), &filter).await?;
    let items = found
        .into_iter()
        .map(|a| to_json(&ArtifactView::from(a)))
        .collect::<ApiResult<_>>()?;
    Ok(Json(Items { items }))
}

/// One of the caller's artifacts.
#[utoipa::path(get, path = "/api/v1/artifacts/{id}", tag = "files",
    params(("id" = String, Path, description = "Artifact id")),
    responses((status = 200, body = ArtifactView), (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ArtifactView>> {
    let id = uuid_of("artifact", &id)?;
    let artifact = state.artifacts().head(&owner_of(&caller), id).await?;
    Ok(Json(artifact.into()))
}

/// `attachment; filename="<ASCII form>"; filename*=UTF-8''<the name, percent-encoded>`.
fn disposition(name: &str) -> HeaderValue {
    let ascii: String = name
        .chars()
        .map(|c| match c {
            ' '..='~' if c != '"' && c != '\\' => c,
            _ => '_',
        })
        .collect();
    let encoded = utf8_percent_encode(name, NON_ALPHANUMERIC);
    HeaderValue::from_str(&format!(
        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

/// The bytes of one of the caller's artifacts, as a download.
#[utoipa::path(get, path = "/api/v1/artifacts/{id}/content", tag = "files",
    params(("id" = String, Path, description = "Artifact id")),
    responses((status = 200, description = "The bytes, with the artifact's content type", content_type = "*/*", body = Vec<u8>),
        (status = 404, body = Problem)), security(("bearer" = [])))]
pub async fn content(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = uuid_of("artifact", &id)?;
    let (artifact, bytes) = state.artifacts().open(&owner_of(&caller), id).await?;
    let content_type = HeaderValue::from_str(&artifact.content_type)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
    let mut res = HttpBody::from_stream(bytes).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, content_type);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(artifact.size));
    h.insert(header::CONTENT_DISPOSITION, disposition(&artifact.name));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(res)
}
