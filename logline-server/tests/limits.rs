//! Rate limits with their headers, the per-tenant cap on runs in progress, body limits.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;

use logline_core::engine::Engine;
use logline_server::demo::{with_local_tools, DemoModel};
use logline_server::store::MemoryServerStore;
use reqwest::{Method, StatusCode};
use serde_json::json;
use support::{assert_problem, ServerConfig, TestApp};

#[tokio::test]
async fn requests_over_the_rate_get_429_with_retry_after() {
    let app = TestApp::with(ServerConfig {
        rate_limit_per_minute: 6,
        rate_limit_burst: 3,
        ..support::config()
    })
    .await;
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let a = app.call(Method::GET, "/healthz", None, None).await;
        assert_eq!(a.status, StatusCode::OK);
        assert_eq!(a.headers["ratelimit-limit"], "3");
        assert!(
            a.headers["ratelimit-reset"]
                .to_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
                <= 30
        );
        remaining.push(
            a.headers["ratelimit-remaining"]
                .to_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(remaining, ["2", "1", "0"]);
    let limited = app.call(Method::GET, "/healthz", None, None).await;
    assert_problem(&limited, StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=10).contains(&retry), "one cell every 10 s: {retry}");
    assert_eq!(limited.headers["ratelimit-remaining"], "0");
}

#[tokio::test]
async fn users_tenants_and_keys_are_limited_too() {
    // A generous address limit cannot be reached here: the per-user limit is what answers.
    let app = TestApp::with(ServerConfig {
        rate_limit_per_minute: 60,
        rate_limit_burst: 6,
        ..support::config()
    })
    .await;
    let a = app.register("ann@example.com").await; // address: 1
    let mut last = None;
    for _ in 0..6 {
        last = Some(app.get("/api/v1/auth/me", &a.access).await);
    }
    let limited = last.unwrap();
    assert_problem(&limited, StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers.contains_key("retry-after"));
    assert!(limited.body["detail"]
        .as_str()
        .unwrap()
        .contains("rate limit"));
}

#[tokio::test]
async fn a_tenant_has_a_cap_on_runs_in_progress() {
    // No workers: started runs stay pending.
    let engine = with_local_tools(Engine::builder().default_llm(Arc::new(DemoModel)))
        .build()
        .await
        .unwrap();
    let app = TestApp::on(
        engine,
        Arc::new(MemoryServerStore::new()),
        ServerConfig {
            max_concurrent_runs_per_tenant: 2,
            ..support::config()
        },
        None,
    )
    .await;
    let a = app.register("ann@example.com").await;
    let b = app.register("bob@example.com").await;
    for _ in 0..2 {
        assert_eq!(
            app.post("/api/v1/workflows/demo/runs", &a.access, json!({}))
                .await
                .status,
            StatusCode::ACCEPTED
        );
    }
    let capped = app
        .post("/api/v1/workflows/demo/runs", &a.access, json!({}))
        .await;
    assert_problem(&capped, StatusCode::TOO_MANY_REQUESTS);
    assert!(capped.headers.contains_key("retry-after"));
    // Another tenant is not affected.
    assert_eq!(
        app.post("/api/v1/workflows/demo/runs", &b.access, json!({}))
            .await
            .status,
        StatusCode::ACCEPTED
    );
}

#[tokio::test]
async fn large_bodies_are_refused() {
    let app = TestApp::with(ServerConfig {
        max_body_bytes: 1024,
        ..support::config()
    })
    .await;
    let a = app.register("ann@example.com").await;
    let big = app
        .post(
            "/api/v1/workflows/demo/runs",
            &a.access,
            json!({"input": {"x": "y".repeat(4096)}}),
        )
        .await;
    assert_problem(&big, StatusCode::PAYLOAD_TOO_LARGE);
    let small = app
        .post(
            "/api/v1/workflows/demo/runs",
            &a.access,
            json!({"input": {"x": "y"}}),
        )
        .await;
    assert_eq!(small.status, StatusCode::ACCEPTED);
}
