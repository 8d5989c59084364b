//! Test support (feature `testing`): [`FakeOpenAi`], a real HTTP server on 127.0.0.1 that
//! answers with scripted replies in the documented wire formats and records every request;
//! body builders for Responses, Chat Completions and embeddings answers (plain and SSE); and
//! [`RecordingSleep`], which records retry waits instead of sleeping.
//!
//! ```no_run
//! # async fn demo() -> logline_core::Result<()> {
//! use logline_core::llm::{LlmProvider, LlmRequest, Message};
//! use logline_openai::testing::{responses_text, FakeOpenAi, FakeReply, Tokens};
//! use logline_openai::OpenAiProvider;
//!
//! let fake = FakeOpenAi::start().await;
//! fake.push(FakeReply::json(responses_text("gpt-5.4-mini", "Hi!", Tokens::new(12, 0, 3))));
//! let provider = OpenAiProvider::new(fake.config().build()?)?;
//! let request = LlmRequest {
//!     model: "gpt-5.4-mini".into(),
//!     messages: vec![Message::user("Hello")],
//!     ..Default::default()
//! };
//! let answer = provider.complete(&request).await?;
//! assert_eq!(answer.text.as_deref(), Some("Hi!"));
//! assert_eq!(fake.requests()[0].json()["input"][0]["content"], "Hello");
//! # Ok(()) }
//! ```

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use serde_json::{json, Value};

use crate::config::{OpenAiConfig, OpenAiConfigBuilder};

/// The API key [`FakeOpenAi::config`] uses.
pub const FAKE_API_KEY: &str = "sk-fake-test-key-0123456789";

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: String,
    /// Path, e.g. `/v1/responses`.
    pub path: String,
    /// Headers, names lower-case.
    pub headers: Vec<(String, String)>,
    /// Raw body.
    pub body: Bytes,
}

impl RecordedRequest {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone)]
enum FakeBody {
    Whole(Bytes),
    Chunks { chunks: Vec<Bytes>, gap: Duration },
}

/// A scripted answer.
#[derive(Debug, Clone)]
pub struct FakeReply {
    status: u16,
    headers: Vec<(String, String)>,
    body: FakeBody,
    delay: Duration,
}

impl FakeReply {
    /// `200` with a JSON body.
    pub fn json(body: Value) -> Self {
        Self::status_json(200, body)
    }

    /// `status` with a JSON body.
    pub fn status_json(status: u16, body: Value) -> Self {
        FakeReply {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: FakeBody::Whole(Bytes::from(body.to_string())),
            delay: Duration::ZERO,
        }
    }

    /// `status` with an OpenAI error body `{"error":{message,type,param,code}}`.
    pub fn error(status: u16, error_type: &str, code: Option<&str>, message: &str) -> Self {
        Self::status_json(
            status,
            json!({"error": {"message": message, "type": error_type, "param": null, "code": code}}),
        )
    }

    /// `status` with a plain-text body (5xx bodies are often not JSON).
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        FakeReply {
            status,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: FakeBody::Whole(Bytes::from(body.into())),
            delay: Duration::ZERO,
        }
    }

    /// `200 text/event-stream` with `body` sent in one piece.
    pub fn sse(body: impl Into<String>) -> Self {
        FakeReply {
            status: 200,
            headers: vec![("content-type".into(), "text/event-stream".into())],
            body: FakeBody::Whole(Bytes::from(body.into())),
            delay: Duration::ZERO,
        }
    }

    /// `200 text/event-stream` with `body` split into `chunk_size`-byte pieces sent `gap`
    /// apart (exercises frames split across reads, and idle timeouts).
    pub fn sse_chunked(body: impl Into<String>, chunk_size: usize, gap: Duration) -> Self {
        let body = Bytes::from(body.into());
        let size = chunk_size.max(1);
        let chunks = (0..body.len())
            .step_by(size)
            .map(|i| body.slice(i..(i + size).min(body.len())))
            .collect();
        FakeReply {
            status: 200,
            headers: vec![("content-type".into(), "text/event-stream".into())],
            body: FakeBody::Chunks { chunks, gap },
            delay: Duration::ZERO,
        }
    }

    /// Adds a response header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_string()));
        self
    }

    /// Waits `delay` before answering (timeouts).
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    async fn into_response(self) -> Response {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let body = match self.body {
            FakeBody::Whole(b) => Body::from(b),
            FakeBody::Chunks { chunks, gap } => {
                let stream = futures::stream::iter(chunks.into_iter().enumerate()).then(
                    move |(i, c)| async move {
                        if i > 0 && !gap.is_zero() {
                            tokio::time::sleep(gap).await;
                        }
                        Ok::<_, Infallible>(c)
                    },
                );
                Body::from_stream(stream)
            }
        };
        let mut builder = Response::builder().status(self.status);
        for (k, v) in &self.headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        builder
            .body(body)
            .unwrap_or_else(|_| Response::new(Body::from("fake: bad scripted reply")))
    }
}

/// Decides a reply from the request; `None` falls through to the script.
pub type FakeHandler = Arc<dyn Fn(&RecordedRequest) -> Option<FakeReply> + Send + Sync>;

#[derive(Default)]
struct Shared {
    script: Mutex<VecDeque<FakeReply>>,
    handler: Mutex<Option<FakeHandler>>,
    requests: Mutex<Vec<RecordedRequest>>,
}

/// A scripted OpenAI-compatible server on `127.0.0.1:<random port>`, stopped on drop.
///
/// Each request is recorded, then answered by the handler (if set and it returns a reply),
/// else by the next scripted reply, else with `400` and a message naming the request (not
/// retryable, so a missing script fails fast).
pub struct FakeOpenAi {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for FakeOpenAi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeOpenAi")
            .field("addr", &self.addr)
            .finish()
    }
}

impl FakeOpenAi {
    /// Binds 127.0.0.1:0 and starts serving.
    ///
    /// # Panics
    /// When no local port can be bound (use [`Self::try_start`] to handle that).
    pub async fn start() -> Self {
        match Self::try_start().await {
            Ok(fake) => fake,
            Err(e) => panic!("fake openai: cannot bind 127.0.0.1:0: {e}"),
        }
    }

    /// Binds 127.0.0.1:0 and starts serving.
    pub async fn try_start() -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let state = shared.clone();
        let app = axum::Router::new().fallback(move |req: Request| {
            let state = state.clone();
            async move { handle(state, req).await }
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(FakeOpenAi { addr, shared, task })
    }

    /// `http://127.0.0.1:<port>/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A config builder pointing at the fake, with [`FAKE_API_KEY`].
    pub fn config(&self) -> OpenAiConfigBuilder {
        OpenAiConfig::builder()
            .base_url(self.base_url())
            .api_key(FAKE_API_KEY)
    }

    /// Queues a reply.
    pub fn push(&self, reply: FakeReply) -> &Self {
        lock(&self.shared.script).push_back(reply);
        self
    }

    /// Queues several replies.
    pub fn push_all(&self, replies: impl IntoIterator<Item = FakeReply>) -> &Self {
        lock(&self.shared.script).extend(replies);
        self
    }

    /// Installs a handler consulted before the script.
    pub fn set_handler(
        &self,
        handler: impl Fn(&RecordedRequest) -> Option<FakeReply> + Send + Sync + 'static,
    ) {
        *lock(&self.shared.handler) = Some(Arc::new(handler));
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// How many requests were received.
    pub fn request_count(&self) -> usize {
        lock(&self.shared.requests).len()
    }

    /// Scripted replies not used yet.
    pub fn remaining(&self) -> usize {
        lock(&self.shared.script).len()
    }
}

impl Drop for FakeOpenAi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(state: Arc<Shared>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let recorded = RecordedRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    v.to_str().unwrap_or_default().to_string(),
                )
            })
            .collect(),
        body,
    };
    lock(&state.requests).push(recorded.clone());
    let handler = lock(&state.handler).clone();
    let reply = handler
        .and_then(|h| h(&recorded))
        .or_else(|| lock(&state.script).pop_front())
        .unwrap_or_else(|| {
            FakeReply::error(
                400,
                "invalid_request_error",
                Some("fake_unscripted"),
                &format!(
                    "fake openai: no scripted reply for {} {}",
                    recorded.method, recorded.path
                ),
            )
        });
    reply.into_response().await
}

/// Records every requested wait and returns at once (hand it to
/// [`OpenAiConfigBuilder::sleeper`]).
pub use logline_core::testing::RecordingSleep;

// ---------------------------------------------------------------- bodies

/// Token counts for built bodies: input (including cached), cached input, output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    /// Input tokens including cached ones.
    pub input: u64,
    /// Cached input tokens.
    pub cached: u64,
    /// Output tokens.
    pub output: u64,
}

impl Tokens {
    /// Token counts.
    pub fn new(input: u64, cached: u64, output: u64) -> Self {
        Tokens {
            input,
            cached,
            output,
        }
    }

    fn responses(self) -> Value {
        json!({"input_tokens": self.input, "input_tokens_details": {"cached_tokens": self.cached},
               "output_tokens": self.output, "output_tokens_details": {"reasoning_tokens": 0},
               "total_tokens": self.input + self.output})
    }

    fn chat(self) -> Value {
        json!({"prompt_tokens": self.input, "completion_tokens": self.output,
               "total_tokens": self.input + self.output,
               "prompt_tokens_details": {"cached_tokens": self.cached}})
    }
}

fn response_object(model: &str, status: &str, output: Vec<Value>, usage: Option<Tokens>) -> Value {
    json!({"id": "resp_fake0001", "object": "response", "created_at": 1741294021,
           "status": status, "error": null, "incomplete_details": null, "model": model,
           "output": output, "usage": usage.map(Tokens::responses)})
}

fn message_item(text: &str) -> Value {
    json!({"type": "message", "id": "msg_fake0001", "status": "completed", "role": "assistant",
           "content": [{"type": "output_text", "text": text, "annotations": []}]})
}

fn call_item(i: usize, call_id: &str, name: &str, arguments: &str) -> Value {
    json!({"type": "function_call", "id": format!("fc_fake{i:04}"), "call_id": call_id,
           "name": name, "arguments": arguments, "status": "completed"})
}

/// A completed Responses object with one assistant text message.
pub fn responses_text(model: &str, text: &str, usage: Tokens) -> Value {
    response_object(model, "completed", vec![message_item(text)], Some(usage))
}

/// A completed Responses object with `function_call` items `(call_id, name, arguments)`.
pub fn responses_function_calls(model: &str, calls: &[(&str, &str, &str)], usage: Tokens) -> Value {
    let output = calls
        .iter()
        .enumerate()
        .map(|(i, (id, name, args))| call_item(i, id, name, args))
        .collect();
    response_object(model, "completed", output, Some(usage))
}

/// SSE frames: `event: <type>` + `data: <json>` with increasing `sequence_number`.
fn frames(events: Vec<Value>) -> String {
    let mut out = String::new();
    for (seq, mut e) in events.into_iter().enumerate() {
        e["sequence_number"] = json!(seq);
        let ty = e["type"].as_str().unwrap_or("message").to_string();
        out.push_str(&format!("event: {ty}\ndata: {e}\n\n"));
    }
    out
}

/// The recorded Responses text stream: created → in_progress → output_item.added (message) →
/// content_part.added → output_text.delta … → output_text.done → content_part.done →
/// output_item.done → completed.
pub fn responses_sse_text(model: &str, deltas: &[&str], usage: Tokens) -> String {
    let text: String = deltas.concat();
    let empty = response_object(model, "in_progress", vec![], None);
    let mut ev = vec![
        json!({"type": "response.created", "response": empty}),
        json!({"type": "response.in_progress", "response": empty}),
        json!({"type": "response.output_item.added", "output_index": 0,
               "item": {"type": "message", "id": "msg_fake0001", "status": "in_progress",
                        "role": "assistant", "content": []}}),
        json!({"type": "response.content_part.added", "item_id": "msg_fake0001",
               "output_index": 0, "content_index": 0,
               "part": {"type": "output_text", "text": "", "annotations": []}}),
    ];
    for d in deltas {
        ev.push(
            json!({"type": "response.output_text.delta", "item_id": "msg_fake0001",
                       "output_index": 0, "content_index": 0, "delta": d}),
        );
    }
    ev.push(
        json!({"type": "response.output_text.done", "item_id": "msg_fake0001",
                   "output_index": 0, "content_index": 0, "text": text}),
    );
    ev.push(
        json!({"type": "response.content_part.done", "item_id": "msg_fake0001",
                   "output_index": 0, "content_index": 0,
                   "part": {"type": "output_text", "text": text, "annotations": []}}),
    );
    ev.push(json!({"type": "response.output_item.done", "output_index": 0, "item": message_item(&text)}));
    ev.push(json!({"type": "response.completed",
                   "response": response_object(model, "completed", vec![message_item(&text)], Some(usage))}));
    frames(ev)
}

/// The recorded Responses function-call stream for calls `(call_id, name, argument deltas)`:
/// created → in_progress → per call output_item.added (empty arguments) →
/// function_call_arguments.delta … → function_call_arguments.done → output_item.done →
/// completed.
pub fn responses_sse_function_calls(
    model: &str,
    calls: &[(&str, &str, &[&str])],
    usage: Tokens,
) -> String {
    let empty = response_object(model, "in_progress", vec![], None);
    let mut ev = vec![
        json!({"type": "response.created", "response": empty}),
        json!({"type": "response.in_progress", "response": empty}),
    ];
    let mut done_items = Vec::new();
    for (i, (call_id, name, deltas)) in calls.iter().enumerate() {
        let item_id = format!("fc_fake{i:04}");
        let args: String = deltas.concat();
        ev.push(
            json!({"type": "response.output_item.added", "output_index": i,
                       "item": {"type": "function_call", "id": item_id, "call_id": call_id,
                                "name": name, "arguments": "", "status": "in_progress"}}),
        );
        for d in deltas.iter() {
            ev.push(
                json!({"type": "response.function_call_arguments.delta", "item_id": item_id,
                           "output_index": i, "delta": d}),
            );
        }
        ev.push(
            json!({"type": "response.function_call_arguments.done", "item_id": item_id,
                       "output_index": i, "arguments": args}),
        );
        let item = call_item(i, call_id, name, &args);
        ev.push(json!({"type": "response.output_item.done", "output_index": i, "item": item}));
        done_items.push(item);
    }
    ev.push(json!({"type": "response.completed",
                   "response": response_object(model, "completed", done_items, Some(usage))}));
    frames(ev)
}

/// A Chat Completions answer with assistant text.
pub fn chat_text(model: &str, text: &str, usage: Tokens) -> Value {
    json!({"id": "chatcmpl-fake", "object": "chat.completion", "created": 1741294021, "model": model,
           "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": null},
                        "logprobs": null, "finish_reason": "stop"}],
           "usage": usage.chat()})
}

/// A Chat Completions answer with tool calls `(id, name, arguments)`.
pub fn chat_tool_calls(model: &str, calls: &[(&str, &str, &str)], usage: Tokens) -> Value {
    let calls: Vec<Value> = calls
        .iter()
        .map(|(id, name, args)| json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}}))
        .collect();
    json!({"id": "chatcmpl-fake", "object": "chat.completion", "created": 1741294021, "model": model,
           "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": calls},
                        "logprobs": null, "finish_reason": "tool_calls"}],
           "usage": usage.chat()})
}

fn chunk(model: &str, delta: Value, finish: Option<&str>) -> Value {
    json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1741294021,
           "model": model, "choices": [{"index": 0, "delta": delta, "logprobs": null,
                                        "finish_reason": finish}]})
}

fn chat_frames(model: &str, mut chunks: Vec<Value>, usage: Tokens) -> String {
    chunks.push(json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk",
                       "created": 1741294021, "model": model, "choices": [], "usage": usage.chat()}));
    let mut out: String = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
    out.push_str("data: [DONE]\n\n");
    out
}

/// A streamed Chat Completions text answer: role chunk, content deltas, finish chunk, usage
/// chunk (`choices: []`), `[DONE]`.
pub fn chat_sse_text(model: &str, deltas: &[&str], usage: Tokens) -> String {
    let mut chunks = vec![chunk(
        model,
        json!({"role": "assistant", "content": ""}),
        None,
    )];
    for d in deltas {
        chunks.push(chunk(model, json!({"content": d}), None));
    }
    chunks.push(chunk(model, json!({}), Some("stop")));
    chat_frames(model, chunks, usage)
}

/// A streamed Chat Completions tool-call answer for calls `(id, name, argument deltas)`: the
/// first delta of each call carries `index`, `id` and `function.name`, later ones only
/// `function.arguments` pieces; then `finish_reason: tool_calls`, usage chunk, `[DONE]`.
pub fn chat_sse_tool_calls(model: &str, calls: &[(&str, &str, &[&str])], usage: Tokens) -> String {
    let mut chunks = vec![chunk(
        model,
        json!({"role": "assistant", "content": null}),
        None,
    )];
    for (i, (id, name, deltas)) in calls.iter().enumerate() {
        chunks.push(chunk(model, json!({"tool_calls": [{"index": i, "id": id, "type": "function",
                                                       "function": {"name": name, "arguments": ""}}]}), None));
        for d in deltas.iter() {
            chunks.push(chunk(
                model,
                json!({"tool_calls": [{"index": i, "function": {"arguments": d}}]}),
                None,
            ));
        }
    }
    chunks.push(chunk(model, json!({}), Some("tool_calls")));
    chat_frames(model, chunks, usage)
}

/// An embeddings answer for `vectors`.
pub fn embeddings(model: &str, vectors: &[Vec<f32>]) -> Value {
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| json!({"object": "embedding", "index": i, "embedding": v}))
        .collect();
    json!({"object": "list", "data": data, "model": model,
           "usage": {"prompt_tokens": vectors.len(), "total_tokens": vectors.len()}})
}
