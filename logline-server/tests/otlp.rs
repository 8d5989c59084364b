//! Trace export (feature `otlp`): a run started over HTTP reaches a local OTLP/HTTP collector
//! as run > step > chat spans with the GenAI token attributes.
#![cfg(feature = "otlp")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use logline_core::engine::{Engine, WorkerOptions};
use logline_core::llm::LlmResponse;
use logline_core::testing::ScriptedLlm;
use logline_server::demo::with_local_tools;
use logline_server::store::MemoryServerStore;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::json;
use support::TestApp;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// A collector accepting OTLP/HTTP protobuf exports; returns its base URL and the spans.
async fn collector() -> (String, Arc<Mutex<Vec<Span>>>) {
    let spans = Arc::new(Mutex::new(Vec::new()));
    let sink = spans.clone();
    let app = Router::new().route(
        "/v1/traces",
        post(move |body: Bytes| {
            let sink = sink.clone();
            async move {
                let Ok(export) = ExportTraceServiceRequest::decode(body) else {
                    return StatusCode::BAD_REQUEST;
                };
                let mut sink = sink.lock().unwrap();
                for resource in export.resource_spans {
                    for scope in resource.scope_spans {
                        sink.extend(scope.spans);
                    }
                }
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), spans)
}

fn attributes(span: &Span) -> HashMap<String, AnyValue> {
    span.attributes
        .iter()
        .filter_map(|kv| {
            let value = kv.value.as_ref()?.value.clone()?;
            Some((kv.key.clone(), value))
        })
        .collect()
}

fn text(attrs: &HashMap<String, AnyValue>, key: &str) -> Option<String> {
    match attrs.get(key)? {
        AnyValue::StringValue(s) => Some(s.clone()),
        _ => None,
    }
}

fn int(attrs: &HashMap<String, AnyValue>, key: &str) -> Option<i64> {
    match attrs.get(key)? {
        AnyValue::IntValue(n) => Some(*n),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_over_http_reaches_the_collector_as_genai_spans() {
    let (endpoint, received) = collector().await;
    let (layer, export) = logline_server::otlp::layer(&endpoint, "logline-test").unwrap();
    tracing_subscriber::registry().with(layer).init();

    // The scripted model reports 100 input and 20 output tokens per call.
    let llm = ScriptedLlm::from_fn(|_| Ok(LlmResponse::text("noted")));
    let engine = with_local_tools(Engine::builder().default_llm(Arc::new(llm)))
        .build()
        .await
        .unwrap();
    let workers = engine.spawn_workers(WorkerOptions::default());
    let app = TestApp::on(
        engine,
        Arc::new(MemoryServerStore::new()),
        support::config(),
        Some(workers),
    )
    .await;
    let ann = app.register("ann@example.com").await;
    let run = app
        .run_to_rest(&ann.access, "demo", json!({"message": "hello"}))
        .await;
    assert_eq!(run["status"], "completed", "{run}");
    let run_id = run["id"].as_str().unwrap().to_string();

    let flushing = export.clone();
    tokio::task::spawn_blocking(move || flushing.flush())
        .await
        .unwrap()
        .unwrap();
    let spans = received.lock().unwrap().clone();
    let by_id: HashMap<Vec<u8>, &Span> = spans.iter().map(|s| (s.span_id.clone(), s)).collect();

    let chat = spans
        .iter()
        .find(|s| text(&attributes(s), "gen_ai.operation.name").as_deref() == Some("chat"))
        .unwrap_or_else(|| {
            panic!(
                "no chat span among {:?}",
                spans.iter().map(|s| &s.name).collect::<Vec<_>>()
            )
        });
    let attrs = attributes(chat);
    assert!(chat.name.starts_with("chat "), "{}", chat.name);
    assert_eq!(
        int(&attrs, "gen_ai.usage.input_tokens"),
        Some(100),
        "{attrs:?}"
    );
    assert_eq!(int(&attrs, "gen_ai.usage.output_tokens"), Some(20));
    assert_eq!(
        text(&attrs, "gen_ai.provider.name").as_deref(),
        Some("scripted")
    );
    assert!(text(&attrs, "gen_ai.request.model").is_some());

    let step = by_id
        .get(&chat.parent_span_id)
        .expect("the chat span has its step as parent");
    assert_eq!(
        text(&attributes(step), "logline.node.kind").as_deref(),
        Some("agent_node")
    );
    let run_span = by_id
        .get(&step.parent_span_id)
        .expect("the step has its run as parent");
    let run_attrs = attributes(run_span);
    assert_eq!(text(&run_attrs, "logline.run.id"), Some(run_id));
    assert_eq!(
        text(&run_attrs, "logline.workflow.id").as_deref(),
        Some("demo")
    );
    assert_eq!(
        chat.trace_id, run_span.trace_id,
        "one trace per run execution"
    );
    for s in &spans {
        for kv in &s.attributes {
            let shown = format!("{:?}", kv.value);
            assert!(
                !shown.contains("hello"),
                "`{}` on `{}` carries the run's input",
                kv.key,
                s.name
            );
        }
    }
    tokio::task::spawn_blocking(move || export.shutdown())
        .await
        .unwrap()
        .unwrap();
}
