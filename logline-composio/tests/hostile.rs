//! Against hostile servers every call ends with a typed error, within its deadline and the
//! body cap, executions are not repeated after they may have run, and the API key stays out
//! of errors, `Debug` output and logs. Each scenario prints its duration and the peak growth
//! of the resident set (`cargo test -p logline-composio --test hostile -- --nocapture`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../logline-openai/tests/support/hostile_http.rs"]
mod hostile_http;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hostile_http::{head, measure, Behaviour, HostileServer};
use logline_composio::{ComposioConfig, ComposioConfigBuilder, ComposioToolHub};
use logline_core::redact::Redactor;
use logline_core::run::Subject;
use logline_core::tool::{PageRequest, ToolContext, ToolHub};
use logline_core::{Error, ErrorKind};
use serde_json::json;

const KEY: &str = "ck_live_THIS-IS-THE-PROJECT-KEY-0123456789";

/// Growth of the resident set allowed during one hostile call.
const MEMORY_BOUND_MIB: f64 = 256.0;

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const JSON: &str = "application/json";

fn config(base_url: &str) -> ComposioConfigBuilder {
    ComposioConfig::builder(KEY)
        .base_url(base_url)
        .retry_backoff(Duration::from_millis(1), Duration::from_millis(5))
        .deadline(Duration::from_secs(20))
}

fn hub(config: ComposioConfigBuilder) -> ComposioToolHub {
    ComposioToolHub::new(config.build().unwrap()).unwrap()
}

fn ctx() -> ToolContext {
    let mut ctx = ToolContext::for_subject(Subject::tenant("t").with_user("u1"));
    ctx.idempotency_key = Some("run/step/1".into());
    ctx
}

async fn execute(hub: &ComposioToolHub) -> Result<serde_json::Value, Error> {
    hub.execute("GMAIL_SEND_EMAIL", json!({"to": "a@b.c"}), &ctx())
        .await
}

fn assert_bounded(grown_mib: f64) {
    assert!(
        grown_mib < MEMORY_BOUND_MIB,
        "resident memory grew by {grown_mib:.1} MiB"
    );
}

#[tokio::test]
async fn endless_bodies_stop_at_the_body_cap() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let server = HostileServer::start(Behaviour::Endless {
        head: head(200, JSON),
        prefix: b"{\"items\":[".to_vec(),
        filler: b"{\"slug\":\"X\"},".repeat(4096),
    })
    .await;
    let hub = hub(config(&server.url()));
    let (listed, grown, _) = measure("endless catalog page (32 MiB cap)", async {
        hub.list_tools(PageRequest::default()).await
    })
    .await;
    let e = listed.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(!e.is_retryable());
    assert!(e.to_string().contains("larger than the limit"), "{e}");
    assert_bounded(grown);

    let (executed, grown, _) = measure("endless execute answer (32 MiB cap)", execute(&hub)).await;
    assert!(executed.unwrap_err().to_string().contains("larger than"));
    assert_bounded(grown);
    assert_eq!(server.request_count(), 2, "neither was retried");
}

#[tokio::test]
async fn endless_error_body_is_read_only_in_part() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let server = HostileServer::start(Behaviour::Endless {
        head: head(500, "text/html"),
        prefix: b"<html>".to_vec(),
        filler: vec![b'e'; 64 << 10],
    })
    .await;
    let hub = hub(config(&server.url()).max_retries(0));
    let (listed, grown, _) = measure("endless 500 body", async {
        hub.list_tools(PageRequest::default()).await
    })
    .await;
    let e = listed.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(
        e.to_string().len() < 4096 + 200,
        "{} bytes",
        e.to_string().len()
    );
    assert_bounded(grown);
}

#[tokio::test]
async fn stall_after_headers_ends_at_the_deadline() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let server = HostileServer::start(Behaviour::Stall {
        head: head(200, JSON),
    })
    .await;
    let slow_attempts = config(&server.url())
        .request_timeout(Duration::from_secs(60))
        .deadline(Duration::from_secs(1));
    let (executed, grown, _) = measure(
        "execute stall after headers (1 s deadline)",
        execute(&hub(slow_attempts)),
    )
    .await;
    let e = executed.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert!(e.to_string().contains("deadline"), "{e}");
    assert_bounded(grown);

    // A stall after the headers is not retried, for reads neither.
    let short_attempts = config(&server.url())
        .request_timeout(Duration::from_millis(300))
        .max_retries(2);
    server.requests.lock().unwrap().clear();
    let listed = hub(short_attempts).list_tools(PageRequest::default()).await;
    assert_eq!(listed.unwrap_err().kind(), ErrorKind::Timeout);
    assert_eq!(server.request_count(), 1);
}

#[tokio::test]
async fn an_execution_without_an_answer_is_sent_once() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let server = HostileServer::start(Behaviour::Silent).await;
    let short_attempts = hub(config(&server.url())
        .request_timeout(Duration::from_millis(300))
        .max_retries(2));
    let (executed, grown, _) = measure(
        "execute without an answer (0.3 s attempts)",
        execute(&short_attempts),
    )
    .await;
    assert_eq!(executed.unwrap_err().kind(), ErrorKind::Timeout);
    assert_eq!(
        server.request_count(),
        1,
        "the tool may have run: not sent again"
    );
    assert_bounded(grown);

    server.requests.lock().unwrap().clear();
    let listed = short_attempts.list_tools(PageRequest::default()).await;
    assert_eq!(listed.unwrap_err().kind(), ErrorKind::Timeout);
    assert_eq!(server.request_count(), 3, "reads are retried");
}

#[tokio::test]
async fn slow_drip_ends_at_the_deadline() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let server = HostileServer::start(Behaviour::Drip {
        head: head(200, JSON),
        prefix: b"{".to_vec(),
        byte: b' ',
        every: Duration::from_millis(20),
    })
    .await;
    let hub = hub(config(&server.url())
        .request_timeout(Duration::from_secs(60))
        .deadline(Duration::from_secs(1)));
    let (executed, grown, _) = measure("execute slow drip (1 s deadline)", execute(&hub)).await;
    let e = executed.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert!(e.to_string().contains("deadline"), "{e}");
    assert_bounded(grown);
}

#[tokio::test]
async fn an_execution_that_could_not_connect_is_retried() {
    let _serial = ONE_AT_A_TIME.lock().await;
    // A port nobody listens on yet; the server starts while the client backs off.
    let addr: SocketAddr = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    };
    let hub = hub(config(&format!("http://{addr}"))
        .max_retries(2)
        .retry_backoff(Duration::from_millis(400), Duration::from_millis(400)));
    let answer = b"{\"data\":{\"sent\":true},\"error\":null,\"successful\":true}".to_vec();
    let late_server = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        HostileServer::start_on(
            addr,
            Behaviour::Body {
                head: head(200, JSON),
                body: Arc::new(answer),
            },
        )
        .await
    });
    let out = execute(&hub).await.unwrap();
    assert_eq!(out, json!({"sent": true}));
    let server = late_server.await.unwrap();
    assert_eq!(server.request_count(), 1);
    let request = server.requests.lock().unwrap()[0].to_ascii_lowercase();
    assert!(request.contains("idempotency-key: run/step/1"), "{request}");
}

#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_key_never_shows_in_errors_debug_or_logs() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    // A server that echoes the key it was sent, in every field of its error body.
    let echo = json!({"error": {"message": format!("Invalid API key {KEY}"), "code": 401,
        "status": 401, "request_id": KEY, "suggested_fix": format!("use a key other than {KEY}"),
        "errors": [KEY]}});
    let server = HostileServer::start(Behaviour::Body {
        head: head(401, JSON),
        body: Arc::new(echo.to_string().into_bytes()),
    })
    .await;
    let hub = hub(config(&server.url()));
    let e = hub.list_tools(PageRequest::default()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized);
    let request = server.requests.lock().unwrap()[0].to_ascii_lowercase();
    assert!(request.contains(&format!("x-api-key: {}", KEY.to_ascii_lowercase())));

    let shown = format!("{e}\n{e:?}\n{}\n{hub:?}\n{:?}", e.to_json(), hub.config());
    assert!(!shown.contains(KEY), "{shown}");
    assert!(shown.contains("[REDACTED]"), "{shown}");
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(!logs.contains(KEY), "{logs}");

    let redactor = hub.config().redact_secrets(Redactor::none());
    assert_eq!(
        redactor.redact_str(&format!("worker: job failed with {KEY}")),
        Some("worker: job failed with [REDACTED]".to_string())
    );
}
