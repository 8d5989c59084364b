//! Hostile input against a PostgreSQL-backed server: NUL and control characters, malformed
//! ids, bodies and queries get 4xx problems, never a 5xx.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;

use logline_core::engine::WorkerOptions;
use logline_server::demo::{with_local_tools, DemoModel};
use logline_server::store::PgServerStore;
use reqwest::Method;
use serde_json::json;
use support::TestApp;

#[tokio::test]
async fn nul_and_garbage_never_give_a_5xx_on_postgres() {
    let (backend, _schema) = support::pg::fresh_backend().await;
    let engine = with_local_tools(backend.engine_builder().default_llm(Arc::new(DemoModel)))
        .build()
        .await
        .unwrap();
    let workers = engine.spawn_workers(WorkerOptions::default());
    let store = Arc::new(PgServerStore::new(backend.pool().clone()));
    let app = TestApp::on(engine, store, support::config(), Some(workers)).await;
    let a = app.register("ann@example.com").await;
    let nul = "a\u{0}b";

    let cases: Vec<(Method, String, Option<serde_json::Value>)> = vec![
        (
            Method::POST,
            "/api/v1/auth/register".into(),
            Some(json!({"email": format!("x{nul}@example.com"), "password": "password-123"})),
        ),
        (
            Method::POST,
            "/api/v1/auth/register".into(),
            Some(json!({"email": "y@example.com", "password": "password-123", "name": nul})),
        ),
        (
            Method::POST,
            "/api/v1/auth/login".into(),
            Some(json!({"email": format!("ann{nul}@example.com"), "password": "password-123"})),
        ),
        (
            Method::POST,
            "/api/v1/auth/refresh".into(),
            Some(json!({"refresh_token": nul})),
        ),
        (
            Method::POST,
            "/api/v1/auth/api-keys".into(),
            Some(json!({"name": nul})),
        ),
        (
            Method::POST,
            "/api/v1/auth/api-keys/%00/revoke".into(),
            Some(json!({})),
        ),
        (Method::GET, "/api/v1/workflows/%00".into(), None),
        (Method::GET, "/api/v1/workflows/a%00b".into(), None),
        (
            Method::PATCH,
            "/api/v1/workflows/%00".into(),
            Some(json!({"name": "x"})),
        ),
        (
            Method::POST,
            "/api/v1/workflows".into(),
            Some(json!({"name": nul, "definition": {"entry": "a", "nodes": []}})),
        ),
        (
            Method::POST,
            "/api/v1/workflows".into(),
            Some(json!({"name": "n", "version": nul, "definition": support::agent_definition()})),
        ),
        (
            Method::POST,
            "/api/v1/workflows".into(),
            Some(
                json!({"name": "n", "definition": {"entry": nul, "nodes": [{"id": nul, "type": "static", "config": {}}]}}),
            ),
        ),
        (
            Method::POST,
            "/api/v1/workflows/demo/runs".into(),
            Some(json!({"input": {"k": nul}})),
        ),
        (
            Method::POST,
            "/api/v1/workflows/demo/runs".into(),
            Some(json!({"version": nul})),
        ),
        (
            Method::POST,
            "/api/v1/workflows/%00/runs".into(),
            Some(json!({})),
        ),
        (
            Method::GET,
            format!("/api/v1/runs?workflow_id={}", "a%00"),
            None,
        ),
        (Method::GET, "/api/v1/runs/%00".into(), None),
        (
            Method::POST,
            "/api/v1/runs/%00/approve".into(),
            Some(json!({"gate_id": nul})),
        ),
        (
            Method::POST,
            "/api/v1/tools".into(),
            Some(json!({"id": nul, "name": "t", "description": "d", "input_schema": {}})),
        ),
        (
            Method::POST,
            "/api/v1/tools".into(),
            Some(json!({"id": "t.ok", "name": nul, "description": "d", "input_schema": {}})),
        ),
        (
            Method::POST,
            "/api/v1/agents".into(),
            Some(json!({"name": nul, "instructions": "x", "model_profile": {"model": "demo"}})),
        ),
        (
            Method::POST,
            "/api/v1/agents".into(),
            Some(
                json!({"id": nul, "name": "a", "instructions": "x", "model_profile": {"model": "demo"}}),
            ),
        ),
        (Method::GET, "/api/v1/agents/%00".into(), None),
        (
            Method::POST,
            "/api/v1/policies".into(),
            Some(json!({"name": nul, "effect": "allow"})),
        ),
        (Method::GET, "/api/v1/policies/%00".into(), None),
        (
            Method::GET,
            "/api/v1/audit/logs?action=a%00&resource_id=%00".into(),
            None,
        ),
        (
            Method::GET,
            "/api/v1/audit/logs?page=99999999999999999999".into(),
            None,
        ),
        (Method::GET, "/api/v1/workflows?limit=-1".into(), None),
        (
            Method::POST,
            "/api/v1/workflows".into(),
            Some(json!([1, 2])),
        ),
        (
            Method::POST,
            "/api/v1/policies".into(),
            Some(json!("string")),
        ),
    ];
    for (method, path, body) in cases {
        let r = app.call(method.clone(), &path, Some(&a.access), body).await;
        assert!(
            r.status.is_client_error() || r.status.is_success(),
            "{method} {path}: {} {:?}",
            r.status,
            r.body
        );
    }
    // A run whose input holds NUL completes; the server still answers.
    let run = app.run_to_rest(&a.access, "demo", json!({"k": nul})).await;
    assert_eq!(run["status"], "completed");
    assert_eq!(
        app.get("/api/v1/auth/me", &a.access).await.status,
        reqwest::StatusCode::OK
    );
}
