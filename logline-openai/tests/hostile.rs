//! Against hostile servers every call ends with a typed error, within its deadline and the
//! size caps, and the process's memory stays bounded. Each scenario prints its duration and
//! the peak growth of the resident set (`cargo test -p logline-openai --test hostile --
//! --nocapture`). The scenarios run one at a time so the memory figures are their own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "support/hostile_http.rs"]
mod hostile_http;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures::StreamExt;
use hostile_http::{head, measure, Behaviour, HostileServer};
use logline_core::llm::{LlmProvider, LlmStreamEvent};
use logline_core::{Error, ErrorKind};
use logline_openai::{OpenAiConfig, OpenAiConfigBuilder, OpenAiProvider};
use serde_json::json;

/// Growth of the resident set allowed during one hostile call.
const MEMORY_BOUND_MIB: f64 = 256.0;

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const JSON: &str = "application/json";
const SSE: &str = "text/event-stream";

fn config(server: &HostileServer) -> OpenAiConfigBuilder {
    OpenAiConfig::builder()
        .base_url(format!("{}/v1", server.url()))
        .api_key("sk-test-hostile-0123456789")
        .max_retries(0)
        .deadline(Duration::from_secs(20))
}

fn provider(config: OpenAiConfigBuilder) -> OpenAiProvider {
    OpenAiProvider::new(config.build().unwrap()).unwrap()
}

/// The first error of a stream (opening it included).
async fn stream_error(provider: &OpenAiProvider) -> Error {
    let mut events = match provider.stream(&simple_request("x")).await {
        Ok(events) => events,
        Err(e) => return e,
    };
    while let Some(item) = events.next().await {
        if let Err(e) = item {
            return e;
        }
    }
    panic!("the stream ended without an error")
}

fn assert_too_large(e: &Error, what: &str) {
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(!e.is_retryable(), "the same server would answer the same");
    assert!(e.to_string().contains(what), "{e}");
    assert!(e.to_string().contains("larger than the limit"), "{e}");
}

fn assert_timeout(e: &Error, what: &str) {
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(e.to_string().contains(what), "{e}");
}

fn assert_bounded(grown_mib: f64) {
    assert!(
        grown_mib < MEMORY_BOUND_MIB,
        "resident memory grew by {grown_mib:.1} MiB"
    );
}

#[tokio::test]
async fn endless_json_body_stops_at_the_body_cap() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let server = HostileServer::start(Behaviour::Endless {
        head: head(200, JSON),
        prefix: b"{\"output\":\"".to_vec(),
        filler: vec![b'a'; 64 << 10],
    })
    .await;
    let provider = provider(config(&server));
    let (result, grown, _) = measure("endless JSON body (32 MiB cap)", async {
        provider.complete(&simple_request("x")).await
    })
    .await;
    assert_too_large(&result.unwrap_err(), "the response body");
    assert_bounded(grown);
}

#[tokio::test]
async fn endless_error_body_is_read_only_in_part() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let server = HostileServer::start(Behaviour::Endless {
        head: head(502, "text/html"),
        prefix: b"<html>".to_vec(),
        filler: vec![b'e'; 64 << 10],
    })
    .await;
    let provider = provider(config(&server));
    let (result, grown, _) = measure("endless 502 body", async {
        provider.complete(&simple_request("x")).await
    })
    .await;
    let e = result.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(
        e.to_string().len() < 4096 + 200,
        "{} bytes",
        e.to_string().len()
    );
    assert_bounded(grown);
}

#[tokio::test]
async fn endless_sse_line_stops_at_the_line_cap() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let server = HostileServer::start(Behaviour::Endless {
        head: head(200, SSE),
        prefix: b"data: ".to_vec(),
        filler: vec![b'x'; 64 << 10],
    })
    .await;
    let provider = provider(config(&server));
    let (e, grown, _) = measure("endless SSE line (8 MiB cap)", stream_error(&provider)).await;
    assert_too_large(&e, "an SSE line");
    assert_bounded(grown);
}

fn delta_event(text_bytes: usize) -> Vec<u8> {
    let mut event = b"data: {\"type\":\"response.output_text.delta\",\"delta\":\"".to_vec();
    event.resize(event.len() + text_bytes, b'x');
    event.extend_from_slice(b"\"}\n\n");
    event
}

#[tokio::test]
async fn fifty_megabyte_event_stops_at_the_cap() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let server = HostileServer::start(Behaviour::Body {
        head: head(200, SSE),
        body: Arc::new(delta_event(50 << 20)),
    })
    .await;
    let provider = provider(config(&server));
    let (e, grown, _) = measure("one 50 MB SSE event (8 MiB cap)", stream_error(&provider)).await;
    assert_too_large(&e, "an SSE");
    assert_bounded(grown);
}

#[tokio::test]
async fn many_data_lines_stop_at_the_event_cap() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let server = HostileServer::start(Behaviour::Endless {
        head: head(200, SSE),
        prefix: Vec::new(),
        filler: format!("data: {}\n", "y".repeat(1000)).into_bytes(),
    })
    .await;
    let provider = provider(config(&server).max_event_bytes(1 << 20));
    let (e, grown, _) = measure(
        "endless data lines (1 MiB event cap)",
        stream_error(&provider),
    )
    .await;
    assert_too_large(&e, "an SSE event");
    assert_bounded(grown);
}

#[tokio::test]
async fn endless_text_deltas_stop_at_the_output_cap() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let server = HostileServer::start(Behaviour::Endless {
        head: head(200, SSE),
        prefix: Vec::new(),
        filler: delta_event(4096),
    })
    .await;
    let provider = provider(config(&server).max_response_bytes(4 << 20));
    let (e, grown, _) = measure(
        "endless text deltas (4 MiB output cap)",
        stream_error(&provider),
    )
    .await;
    assert_too_large(&e, "the streamed output");
    assert_bounded(grown);
}

#[tokio::test]
async fn stall_after_headers_ends_at_the_deadline_or_idle_timeout() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let server = HostileServer::start(Behaviour::Stall {
        head: head(200, JSON),
    })
    .await;
    let slow_attempts = config(&server)
        .timeout(Duration::from_secs(60))
        .deadline(Duration::from_secs(1));
    let json = provider(slow_attempts.clone());
    let (result, grown, _) = measure("JSON stall after headers (1 s deadline)", async {
        json.complete(&simple_request("x")).await
    })
    .await;
    assert_timeout(&result.unwrap_err(), "deadline");
    assert_bounded(grown);

    let sse = HostileServer::start(Behaviour::Stall {
        head: head(200, SSE),
    })
    .await;
    let idle = provider(config(&sse).stream_idle_timeout(Duration::from_millis(500)));
    let (e, grown, _) = measure("SSE stall after headers (0.5 s idle)", stream_error(&idle)).await;
    assert_timeout(&e, "idle");
    assert_bounded(grown);
    let deadline = provider(
        config(&sse)
            .stream_idle_timeout(Duration::from_secs(60))
            .deadline(Duration::from_secs(1)),
    );
    let (e, _, _) = measure(
        "SSE stall after headers (1 s deadline)",
        stream_error(&deadline),
    )
    .await;
    assert_timeout(&e, "deadline");
}

#[tokio::test]
async fn slow_drip_ends_at_the_deadline_or_idle_timeout() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let json = HostileServer::start(Behaviour::Drip {
        head: head(200, JSON),
        prefix: b"{".to_vec(),
        byte: b' ',
        every: Duration::from_millis(20),
    })
    .await;
    let p = provider(
        config(&json)
            .timeout(Duration::from_secs(60))
            .deadline(Duration::from_secs(1)),
    );
    let (result, grown, _) = measure("JSON slow drip (1 s deadline)", async {
        p.complete(&simple_request("x")).await
    })
    .await;
    assert_timeout(&result.unwrap_err(), "deadline");
    assert_bounded(grown);

    // A drip that never completes an event does not keep the stream alive.
    let sse = HostileServer::start(Behaviour::Drip {
        head: head(200, SSE),
        prefix: b"data: ".to_vec(),
        byte: b'x',
        every: Duration::from_millis(20),
    })
    .await;
    let p = provider(config(&sse).stream_idle_timeout(Duration::from_millis(500)));
    let (e, grown, _) = measure("SSE slow drip (0.5 s idle)", stream_error(&p)).await;
    assert_timeout(&e, "idle");
    assert_bounded(grown);
}

#[tokio::test]
async fn endless_keepalives_end_at_the_deadline() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let server = HostileServer::start(Behaviour::Repeat {
        head: head(200, SSE),
        frame: b"event: keepalive\ndata: {\"type\":\"keepalive\"}\n\n".to_vec(),
        every: Duration::from_millis(10),
    })
    .await;
    let p = provider(
        config(&server)
            .stream_idle_timeout(Duration::from_millis(500))
            .deadline(Duration::from_millis(1500)),
    );
    let (e, grown, _) = measure(
        "endless keepalive events (1.5 s deadline)",
        stream_error(&p),
    )
    .await;
    assert_timeout(&e, "deadline");
    assert_bounded(grown);
}

/// SSE parsing is linear in the event size: a 50 MB event within raised caps is read whole
/// (the times printed for 8, 16 and 50 MB grow in proportion).
#[tokio::test]
async fn large_events_within_raised_caps_parse_in_linear_time() {
    let _serial = ONE_AT_A_TIME.lock().await;
    for mb in [8usize, 16, 50] {
        let mut body = delta_event(mb << 20);
        body.extend_from_slice(
            format!(
                "data: {}\n\n",
                json!({"type":"response.completed","response":{"status":"completed",
                       "model":MODEL,"output":[]}})
            )
            .as_bytes(),
        );
        let server = HostileServer::start(Behaviour::Body {
            head: head(200, SSE),
            body: Arc::new(body),
        })
        .await;
        let p = provider(
            config(&server)
                .max_line_bytes(64 << 20)
                .max_event_bytes(64 << 20)
                .max_response_bytes(64 << 20),
        );
        let label = format!("one {mb} MB SSE event read whole (64 MiB caps)");
        let (events, _, _) = measure(&label, async {
            collect(p.stream(&simple_request("x")).await.unwrap()).await
        })
        .await;
        let (events, err) = events;
        assert!(err.is_none(), "{err:?}");
        let Some(LlmStreamEvent::Completed { response }) = events.last() else {
            panic!("no answer")
        };
        assert_eq!(response.text.as_ref().map(String::len), Some(mb << 20));
    }
}
