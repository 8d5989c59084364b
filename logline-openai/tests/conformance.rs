//! The core conformance suites on `OpenAiProvider` (Responses and Chat Completions) and
//! `OpenAiEmbedder`, against the fake server: scripted turns are answered in the wire format
//! the request asks for (plain or SSE), and what the model saw is decoded from the bodies.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use logline_core::conformance::llm::{LlmFixture, ModelTurn, Refusal, ScriptedCall, SeenRequest};
use logline_core::llm::{Embedder, LlmProvider, TokenUsage, ToolCallRequest};
use logline_core::testing::FakeEmbedder;
use logline_openai::testing::{
    chat_sse_text, chat_sse_tool_calls, chat_text, chat_tool_calls, responses_function_calls,
    responses_sse_function_calls, responses_sse_text, responses_text, FakeOpenAi, FakeReply,
    RecordedRequest, Tokens,
};
use logline_openai::{OpenAiEmbedder, OpenAiProvider, RetryPolicy};
use serde_json::{json, Value};

fn tokens(u: TokenUsage) -> Tokens {
    Tokens::new(u.input_tokens, u.cached_input_tokens, u.output_tokens)
}

/// The argument text in two pieces (as a model streams it).
fn halves(s: &str) -> [&str; 2] {
    let mut mid = s.len() / 2;
    while !s.is_char_boundary(mid) {
        mid += 1;
    }
    let (a, b) = s.split_at(mid);
    [a, b]
}

fn refusal(r: Refusal, model: &str) -> FakeReply {
    match r {
        Refusal::UnknownModel => FakeReply::error(
            404,
            "invalid_request_error",
            Some("model_not_found"),
            &format!("The model `{model}` does not exist or you do not have access to it."),
        ),
        Refusal::RateLimited => FakeReply::error(
            429,
            "requests",
            Some("rate_limit_exceeded"),
            "Rate limit reached for requests per min.",
        )
        .header("retry-after-ms", "20"),
        Refusal::Unauthorized => FakeReply::error(
            401,
            "invalid_request_error",
            Some("invalid_api_key"),
            "Incorrect API key provided.",
        ),
    }
}

/// An SSE body sent in 7-byte pieces: frames and multi-byte characters split across reads.
fn sse(body: String) -> FakeReply {
    FakeReply::sse_chunked(body, 7, Duration::ZERO)
}

/// The reply to `request` for `turn`, in the wire format of the mode and of `stream`.
fn reply(chat: bool, request: &RecordedRequest, turn: ModelTurn) -> FakeReply {
    let body = request.json();
    let model = body["model"].as_str().unwrap_or_default().to_string();
    let stream = body["stream"] == json!(true);
    match turn {
        ModelTurn::Text { pieces, usage } => {
            let pieces: Vec<&str> = pieces.iter().map(String::as_str).collect();
            let (text, t) = (pieces.concat(), tokens(usage));
            match (chat, stream) {
                (false, false) => FakeReply::json(responses_text(&model, &text, t)),
                (false, true) => sse(responses_sse_text(&model, &pieces, t)),
                (true, false) => FakeReply::json(chat_text(&model, &text, t)),
                (true, true) => sse(chat_sse_text(&model, &pieces, t)),
            }
        }
        ModelTurn::ToolCalls { calls, usage } => {
            let t = tokens(usage);
            let whole: Vec<(&str, &str, &str)> = calls
                .iter()
                .map(|c| (c.id.as_str(), c.name.as_str(), c.arguments.as_str()))
                .collect();
            let split: Vec<[&str; 2]> = calls.iter().map(|c| halves(&c.arguments)).collect();
            let streamed: Vec<(&str, &str, &[&str])> = calls
                .iter()
                .zip(&split)
                .map(|(c, s)| (c.id.as_str(), c.name.as_str(), &s[..]))
                .collect();
            match (chat, stream) {
                (false, false) => FakeReply::json(responses_function_calls(&model, &whole, t)),
                (false, true) => sse(responses_sse_function_calls(&model, &streamed, t)),
                (true, false) => FakeReply::json(chat_tool_calls(&model, &whole, t)),
                (true, true) => sse(chat_sse_tool_calls(&model, &streamed, t)),
            }
        }
        ModelTurn::Refuse(r) => refusal(r, &model),
    }
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn call(id: &Value, name: &Value, arguments: &Value) -> ToolCallRequest {
    ToolCallRequest {
        id: text(id),
        name: text(name),
        arguments: serde_json::from_str(arguments.as_str().unwrap_or("null"))
            .unwrap_or(Value::Null),
    }
}

fn items(v: &Value) -> impl Iterator<Item = &Value> {
    v.as_array().into_iter().flatten()
}

/// What the model saw in a Chat Completions body.
fn seen_chat(body: &Value) -> SeenRequest {
    let mut seen = SeenRequest {
        model: text(&body["model"]),
        tools: items(&body["tools"])
            .map(|t| text(&t["function"]["name"]))
            .collect(),
        output_schema: body["response_format"]["json_schema"]
            .get("schema")
            .cloned(),
        ..Default::default()
    };
    for m in items(&body["messages"]) {
        match m["role"].as_str() {
            Some("user") => seen.user_texts.push(text(&m["content"])),
            Some("assistant") => seen.tool_calls.extend(items(&m["tool_calls"]).map(|c| {
                call(
                    &c["id"],
                    &c["function"]["name"],
                    &c["function"]["arguments"],
                )
            })),
            Some("tool") => seen
                .tool_results
                .push((text(&m["tool_call_id"]), text(&m["content"]))),
            _ => {}
        }
    }
    seen
}

/// What the model saw in a Responses body.
fn seen_responses(body: &Value) -> SeenRequest {
    let mut seen = SeenRequest {
        model: text(&body["model"]),
        tools: items(&body["tools"]).map(|t| text(&t["name"])).collect(),
        output_schema: body["text"]["format"].get("schema").cloned(),
        ..Default::default()
    };
    for item in items(&body["input"]) {
        match item["type"].as_str() {
            Some("message") if item["role"] == "user" => {
                seen.user_texts.push(text(&item["content"]))
            }
            Some("function_call") => {
                seen.tool_calls
                    .push(call(&item["call_id"], &item["name"], &item["arguments"]))
            }
            Some("function_call_output") => seen
                .tool_results
                .push((text(&item["call_id"]), text(&item["output"]))),
            _ => {}
        }
    }
    seen
}

/// `OpenAiProvider` on a fake server that answers scripted turns.
struct OpenAiFixture {
    fake: FakeOpenAi,
    provider: OpenAiProvider,
    chat: bool,
    turns: Arc<Mutex<VecDeque<ModelTurn>>>,
}

impl OpenAiFixture {
    async fn start(chat: bool) -> Arc<dyn LlmFixture> {
        let fake = FakeOpenAi::start().await;
        let turns: Arc<Mutex<VecDeque<ModelTurn>>> = Arc::default();
        let queued = turns.clone();
        fake.set_handler(move |request| {
            let turn = queued.lock().unwrap().pop_front()?;
            Some(reply(chat, request, turn))
        });
        // No retries: a scripted refusal is answered once.
        let mut config = fake.config().retry(RetryPolicy::none());
        if chat {
            config = config.chat_completions();
        }
        let provider = OpenAiProvider::new(config.build().unwrap()).unwrap();
        Arc::new(OpenAiFixture {
            fake,
            provider,
            chat,
            turns,
        })
    }
}

impl LlmFixture for OpenAiFixture {
    fn provider(&self) -> &dyn LlmProvider {
        &self.provider
    }

    fn script(&self, turn: ModelTurn) {
        self.turns.lock().unwrap().push_back(turn);
    }

    fn seen(&self) -> Vec<SeenRequest> {
        self.fake
            .requests()
            .iter()
            .map(|r| {
                let body = r.json();
                if self.chat {
                    seen_chat(&body)
                } else {
                    seen_responses(&body)
                }
            })
            .collect()
    }
}

mod responses_checks {
    use super::*;
    logline_core::llm_conformance_tests!(OpenAiFixture::start(false));
}

mod chat_completions_checks {
    use super::*;
    logline_core::llm_conformance_tests!(OpenAiFixture::start(true));
}

/// `OpenAiEmbedder` on a fake server that embeds with `FakeEmbedder`, lists the vectors in
/// reverse order (clients must sort by `index`) and takes at most 16 inputs per request.
struct ServedEmbedder {
    embedder: OpenAiEmbedder,
    _fake: FakeOpenAi,
}

#[async_trait]
impl Embedder for ServedEmbedder {
    fn model(&self) -> &str {
        self.embedder.model()
    }

    async fn embed(&self, texts: &[String]) -> logline_core::Result<Vec<Vec<f32>>> {
        self.embedder.embed(texts).await
    }
}

async fn served_embedder() -> Arc<dyn Embedder> {
    let fake = FakeOpenAi::start().await;
    let model = FakeEmbedder::new(48);
    fake.set_handler(move |r| {
        let body = r.json();
        let inputs = body["input"].as_array()?;
        if inputs.len() > 16 {
            return Some(FakeReply::error(
                400,
                "invalid_request_error",
                None,
                "too many inputs",
            ));
        }
        let mut data: Vec<Value> = inputs
            .iter()
            .enumerate()
            .map(|(i, t)| {
                json!({"object": "embedding", "index": i,
                       "embedding": model.vector(t.as_str().unwrap_or_default())})
            })
            .collect();
        data.reverse();
        Some(FakeReply::json(json!({
            "object": "list", "data": data, "model": body["model"],
            "usage": {"prompt_tokens": inputs.len(), "total_tokens": inputs.len()}
        })))
    });
    let embedder =
        OpenAiEmbedder::new(fake.config().embedding_batch_size(16).build().unwrap()).unwrap();
    Arc::new(ServedEmbedder {
        embedder,
        _fake: fake,
    })
}

mod embedder_checks {
    use super::*;
    logline_core::embedder_conformance_tests!(served_embedder());
}

#[test]
fn scripted_calls_split_at_char_boundaries() {
    let call = ScriptedCall::new("c", "f", json!({"city": "Zürich"}));
    assert_eq!(halves(&call.arguments).concat(), call.arguments);
    assert_eq!(halves("é"), ["é", ""]);
}
