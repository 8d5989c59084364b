//! Alerts over HTTP: configurations, a check that fires once per cooldown and POSTs the
//! firing to a webhook, history and resolution, per tenant.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::{Arc, Mutex};

use axum::routing::post;
use axum::{Json, Router};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::{assert_problem, gated_definition, ServerConfig, TestApp};

/// A local webhook receiver; returns its URL and what it received.
async fn hook() -> (String, Arc<Mutex<Vec<Value>>>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    let app = Router::new().route(
        "/hook",
        post(move |Json(v): Json<Value>| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push(v);
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), got)
}

#[tokio::test]
async fn an_error_rate_alert_fires_once_per_cooldown_to_its_webhook() {
    let app = TestApp::with(ServerConfig {
        alert_webhooks_allow_http: true,
        ..support::config()
    })
    .await;
    let (url, received) = hook().await;
    let a = app.register("ann@example.com").await;

    // One completed run and one failed (denied) run: error rate 0.5.
    app.run_to_rest(&a.access, "demo", json!({})).await;
    let wf = app.workflow(&a.access, gated_definition()).await;
    let paused = app.run_to_rest(&a.access, &wf, json!({})).await;
    let id = paused["id"].as_str().unwrap();
    let gate = paused["pending_gate"]["gate_id"].as_str().unwrap();
    app.post(
        &format!("/api/v1/runs/{id}/deny"),
        &a.access,
        json!({"gate_id": gate}),
    )
    .await;

    let created = app
        .post(
            "/api/v1/alerts/configs",
            &a.access,
            json!({
        "name": "High error rate", "rule_type": "error_rate", "threshold": 0.4,
        "comparison_operator": ">", "notification_channels": ["webhook"], "webhook_url": url}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let alert_id = created.id();
    let quiet = app.post("/api/v1/alerts/configs", &a.access, json!({
        "name": "Denials", "rule_type": "policy_denials", "threshold": 5, "comparison_operator": ">="})).await;
    assert_eq!(quiet.status, StatusCode::CREATED);

    let checked = app.post("/api/v1/alerts/check", &a.access, json!({})).await;
    assert_eq!(checked.status, StatusCode::OK, "{:?}", checked.body);
    let fired = checked
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["alert_config_id"] == alert_id.as_str())
        .unwrap();
    assert_eq!(fired["value"], 0.5);
    assert_eq!(fired["triggered"], true);
    assert_eq!(fired["event"]["metadata"]["webhook_delivered"], true);
    let other = checked
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["alert_config_id"] != alert_id.as_str())
        .unwrap();
    assert_eq!(other["triggered"], false);
    {
        let got = received.lock().unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0]["alert"], "High error rate");
        assert_eq!(got[0]["event"]["metadata"]["value"], 0.5);
    }

    // Inside the cooldown: still over the threshold, no new firing.
    let again = app.post("/api/v1/alerts/check", &a.access, json!({})).await;
    let fired = again
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["alert_config_id"] == alert_id.as_str())
        .unwrap();
    assert_eq!(fired["triggered"], true);
    assert!(fired["event"].is_null());
    let history = app.get("/api/v1/alerts/history", &a.access).await;
    assert_eq!(history.body.as_array().unwrap().len(), 1);
    let event_id = history.body[0]["id"].as_str().unwrap().to_string();

    // Another tenant sees none of it.
    let b = app.register("bob@example.com").await;
    assert!(app
        .get("/api/v1/alerts/configs", &b.access)
        .await
        .body
        .as_array()
        .unwrap()
        .is_empty());
    assert!(app
        .get("/api/v1/alerts/history", &b.access)
        .await
        .body
        .as_array()
        .unwrap()
        .is_empty());
    assert_problem(
        &app.post(
            &format!("/api/v1/alerts/history/{event_id}/resolve"),
            &b.access,
            json!({}),
        )
        .await,
        StatusCode::NOT_FOUND,
    );
    assert_problem(
        &app.call(
            Method::PATCH,
            &format!("/api/v1/alerts/configs/{alert_id}"),
            Some(&b.access),
            Some(json!({"threshold": 1})),
        )
        .await,
        StatusCode::NOT_FOUND,
    );

    let resolved = app
        .post(
            &format!("/api/v1/alerts/history/{event_id}/resolve"),
            &a.access,
            json!({}),
        )
        .await;
    assert_eq!(resolved.status, StatusCode::OK);
    assert!(resolved.body["resolved_at"].is_string());

    let patched = app
        .call(
            Method::PATCH,
            &format!("/api/v1/alerts/configs/{alert_id}"),
            Some(&a.access),
            Some(json!({"threshold": 0.9, "enabled": false})),
        )
        .await;
    assert_eq!(patched.body["threshold"], 0.9);
    assert_eq!(patched.body["enabled"], false);
    let deleted = app
        .call(
            Method::DELETE,
            &format!("/api/v1/alerts/configs/{alert_id}"),
            Some(&a.access),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get("/api/v1/alerts/configs", &a.access)
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn webhooks_must_be_https_and_users_only_read() {
    let app = TestApp::start().await;
    let a = app.register("ann@example.com").await;
    let http = app.post("/api/v1/alerts/configs", &a.access, json!({
        "name": "x", "rule_type": "error_rate", "threshold": 0.1, "webhook_url": "http://169.254.169.254/"})).await;
    assert_problem(&http, StatusCode::BAD_REQUEST);
    let email = app.post("/api/v1/alerts/configs", &a.access, json!({
        "name": "x", "rule_type": "error_rate", "threshold": 0.1, "notification_channels": ["email"]})).await;
    assert_problem(&email, StatusCode::BAD_REQUEST);
    let user = app.add_user(&a, "user@example.com", "user").await;
    assert_eq!(
        app.get("/api/v1/alerts/configs", &user.access).await.status,
        StatusCode::OK
    );
    let denied = app
        .post(
            "/api/v1/alerts/configs",
            &user.access,
            json!({"name": "x", "rule_type": "error_rate", "threshold": 0.1}),
        )
        .await;
    assert_problem(&denied, StatusCode::FORBIDDEN);
    assert_problem(
        &app.post("/api/v1/alerts/check", &user.access, json!({}))
            .await,
        StatusCode::FORBIDDEN,
    );
}
