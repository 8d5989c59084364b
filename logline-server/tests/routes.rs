//! Every route doing its job over HTTP: workflows, runs, events, approvals, cancel, tools,
//! agents, policies, audit logs, metrics, problems.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::{agent_definition, assert_problem, gated_definition, TestApp};

#[tokio::test]
async fn workflows_crud_with_pagination() {
    let app = TestApp::start().await;
    let a = app.register("ann@example.com").await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(app.workflow(&a.access, agent_definition()).await);
    }
    // The shared demo workflow comes first, then the tenant's in creation order.
    let p1 = app.get("/api/v1/workflows?page=1&limit=2", &a.access).await;
    let p2 = app.get("/api/v1/workflows?page=2&limit=2", &a.access).await;
    let listed: Vec<&str> = p1.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(p2.body["items"].as_array().unwrap())
        .map(|w| w["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["demo", &ids[0], &ids[1], &ids[2]]);
    assert_eq!(
        (p2.body["page"].as_u64(), p2.body["limit"].as_u64()),
        (Some(2), Some(2))
    );
    assert_problem(
        &app.get("/api/v1/workflows?limit=0", &a.access).await,
        StatusCode::BAD_REQUEST,
    );
    assert_problem(
        &app.get("/api/v1/workflows?page=0", &a.access).await,
        StatusCode::BAD_REQUEST,
    );

    let got = app
        .get(&format!("/api/v1/workflows/{}", ids[0]), &a.access)
        .await;
    assert_eq!(got.body["version"], "1.0.0");
    let patched = app
        .call(
            Method::PATCH,
            &format!("/api/v1/workflows/{}", ids[0]),
            Some(&a.access),
            Some(json!({"name": "renamed"})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{:?}", patched.body);
    assert_eq!(patched.body["version"], "1.0.1");
    assert_eq!(
        app.get(&format!("/api/v1/workflows/{}", ids[0]), &a.access)
            .await
            .body["name"],
        "renamed"
    );

    let deleted = app
        .call(
            Method::DELETE,
            &format!("/api/v1/workflows/{}", ids[0]),
            Some(&a.access),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_problem(
        &app.get(&format!("/api/v1/workflows/{}", ids[0]), &a.access)
            .await,
        StatusCode::NOT_FOUND,
    );

    // Shared workflows are read-only; invalid definitions and unknown references are 400.
    let shared = app
        .call(
            Method::DELETE,
            "/api/v1/workflows/demo",
            Some(&a.access),
            None,
        )
        .await;
    assert_problem(&shared, StatusCode::FORBIDDEN);
    let bad = app
        .post(
            "/api/v1/workflows",
            &a.access,
            json!({"name": "x", "definition": {"entry": "nope", "nodes": []}}),
        )
        .await;
    assert_problem(&bad, StatusCode::BAD_REQUEST);
    let dangling = app.post("/api/v1/workflows", &a.access, json!({"name": "x", "definition": {
        "entry": "a", "nodes": [{"id": "a", "type": "agent_node", "config": {"agent_id": "ghost"}}]}})).await;
    assert_problem(&dangling, StatusCode::BAD_REQUEST);
    let not_json = app
        .http
        .post(format!("{}/api/v1/workflows", app.base))
        .bearer_auth(&a.access)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        not_json.headers()["content-type"],
        "application/problem+json"
    );
}

#[tokio::test]
async fn runs_start_at_once_complete_and_show_their_events() {
    let app = TestApp::start().await;
    let a = app.register("ann@example.com").await;
    let started = app
        .post(
            "/api/v1/workflows/demo/runs",
            &a.access,
            json!({"input": {"q": "hello"}}),
        )
        .await;
    assert_eq!(started.status, StatusCode::ACCEPTED);
    assert!(["pending", "running", "completed"].contains(&started.body["status"].as_str().unwrap()));
    assert_eq!(started.body["subject"]["tenant_id"], a.tenant_id.as_str());
    assert_eq!(started.body["subject"]["user_id"], a.user_id.as_str());
    let id = started.id();
    app.engine.wait(id.parse().unwrap()).await.unwrap();

    let run = app.get(&format!("/api/v1/runs/{id}"), &a.access).await;
    assert_eq!(run.body["status"], "completed");
    assert_eq!(run.body["result"]["text"], "You said: {\"q\":\"hello\"}");
    let events = app
        .get(&format!("/api/v1/runs/{id}/events"), &a.access)
        .await;
    let kinds: Vec<&str> = events
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"run_started"));
    assert_eq!(kinds.last(), Some(&"run_completed"));
    let after = app
        .get(&format!("/api/v1/runs/{id}/events?after=2"), &a.access)
        .await;
    assert_eq!(after.body[0]["seq"], 3);
    let listed = app.get("/api/v1/runs?status=completed", &a.access).await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);
    assert_problem(
        &app.get("/api/v1/runs?status=bogus", &a.access).await,
        StatusCode::BAD_REQUEST,
    );
    assert_problem(
        &app.get("/api/v1/runs/not-a-uuid", &a.access).await,
        StatusCode::NOT_FOUND,
    );
    assert_problem(
        &app.post("/api/v1/workflows/ghost/runs", &a.access, json!({}))
            .await,
        StatusCode::NOT_FOUND,
    );
}

#[tokio::test]
async fn an_idempotency_key_gives_one_run() {
    let app = TestApp::start().await;
    let a = app.register("ann@example.com").await;
    let start = || {
        app.http
            .post(format!("{}/api/v1/workflows/demo/runs", app.base))
            .bearer_auth(&a.access)
            .header("idempotency-key", "order-42")
            .json(&json!({"input": {}}))
            .send()
    };
    let r1: Value = start().await.unwrap().json().await.unwrap();
    let r2: Value = start().await.unwrap().json().await.unwrap();
    assert_eq!(r1["id"], r2["id"]);
    let listed = app.get("/api/v1/runs", &a.access).await;
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);
    let too_long = app
        .http
        .post(format!("{}/api/v1/workflows/demo/runs", app.base))
        .bearer_auth(&a.access)
        .header("idempotency-key", "k".repeat(300))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(too_long.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn approve_deny_and_cancel_gated_runs() {
    let app = TestApp::start().await;
    let a = app.register("ann@example.com").await;
    let wf = app.workflow(&a.access, gated_definition()).await;

    let paused = app.run_to_rest(&a.access, &wf, json!({"q": 1})).await;
    assert_eq!(paused["status"], "paused");
    let id = paused["id"].as_str().unwrap();
    let gate = paused["pending_gate"]["gate_id"].as_str().unwrap();
    let wrong = app
        .post(
            &format!("/api/v1/runs/{id}/approve"),
            &a.access,
            json!({"gate_id": "node:other:1"}),
        )
        .await;
    assert!(wrong.status.is_client_error(), "{:?}", wrong.body);
    let ok = app
        .post(
            &format!("/api/v1/runs/{id}/approve"),
            &a.access,
            json!({"gate_id": gate, "reason": "fine"}),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{:?}", ok.body);
    let done = app.engine.wait(id.parse().unwrap()).await.unwrap();
    assert_eq!(done.status.as_str(), "completed");

    let paused = app.run_to_rest(&a.access, &wf, json!({})).await;
    let id = paused["id"].as_str().unwrap();
    let gate = paused["pending_gate"]["gate_id"].as_str().unwrap();
    let denied = app
        .post(
            &format!("/api/v1/runs/{id}/deny"),
            &a.access,
            json!({"gate_id": gate, "reason": "no"}),
        )
        .await;
    assert_eq!(denied.status, StatusCode::OK, "{:?}", denied.body);
    assert_eq!(denied.body["status"], "failed");

    let paused = app.run_to_rest(&a.access, &wf, json!({})).await;
    let id = paused["id"].as_str().unwrap();
    let cancelled = app
        .call(
            Method::POST,
            &format!("/api/v1/runs/{id}/cancel"),
            Some(&a.access),
            None,
        )
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{:?}", cancelled.body);
    assert_eq!(cancelled.body["status"], "cancelled");
    let again = app
        .post(
            &format!("/api/v1/runs/{id}/cancel"),
            &a.access,
            json!({"reason": "twice"}),
        )
        .await;
    assert!(
        again.status == StatusCode::CONFLICT || again.status == StatusCode::OK,
        "{:?}",
        again.body
    );

    let logs = app
        .get("/api/v1/audit/logs?resource_type=run", &a.access)
        .await;
    let actions: Vec<&str> = logs
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"approve") && actions.contains(&"deny") && actions.contains(&"cancel"),
        "{actions:?}"
    );
}

#[tokio::test]
async fn tools_and_agents() {
    let app = TestApp::start().await;
    let a = app.register("ann@example.com").await;
    let tools = app.get("/api/v1/tools", &a.access).await;
    assert_eq!(tools.body["items"][0]["id"], "echo");
    let spec = json!({"id": "acme.lookup", "name": "lookup", "description": "Looks things up", "input_schema": {"type": "object"}, "hub": "local"});
    let created = app.post("/api/v1/tools", &a.access, spec.clone()).await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let ids: Vec<String> = app.get("/api/v1/tools", &a.access).await.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, ["echo", "wait", "acme.lookup"]);
    // A host tool or another tenant's tool id is taken.
    let host = app
        .post(
            "/api/v1/tools",
            &a.access,
            json!({"id": "echo", "name": "echo", "description": "mine", "input_schema": {}}),
        )
        .await;
    assert_problem(&host, StatusCode::CONFLICT);
    let b = app.register("bob@example.com").await;
    assert_problem(
        &app.post("/api/v1/tools", &b.access, spec).await,
        StatusCode::CONFLICT,
    );

    let agent = app.post("/api/v1/agents", &a.access, json!({
        "name": "helper", "instructions": "Help.", "model_profile": {"model": "demo"}, "allowed_tools": ["echo"]})).await;
    assert_eq!(agent.status, StatusCode::CREATED, "{:?}", agent.body);
    let agent_id = agent.id();
    let listed = app.get("/api/v1/agents", &a.access).await;
    let ids: Vec<&str> = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["demo-assistant", agent_id.as_str()]);
    assert_eq!(
        app.get(&format!("/api/v1/agents/{agent_id}"), &a.access)
            .await
            .body["name"],
        "helper"
    );
    let updated = app.post("/api/v1/agents", &a.access, json!({
        "id": agent_id, "name": "helper2", "instructions": "Help more.", "model_profile": {"model": "demo"}})).await;
    assert_eq!(updated.status, StatusCode::CREATED);
    assert_eq!(
        app.get(&format!("/api/v1/agents/{agent_id}"), &a.access)
            .await
            .body["name"],
        "helper2"
    );
    let dangling = app.post("/api/v1/agents", &a.access, json!({
        "name": "x", "instructions": "x", "model_profile": {"model": "demo"}, "allowed_tools": ["ghost"]})).await;
    assert_problem(&dangling, StatusCode::BAD_REQUEST);

    let tested = app
        .post(
            &format!("/api/v1/agents/{agent_id}/test"),
            &a.access,
            json!({"input": {"q": "hi"}}),
        )
        .await;
    assert_eq!(tested.status, StatusCode::OK, "{:?}", tested.body);
    assert_eq!(tested.body["status"], "completed");
    assert_eq!(tested.body["result"]["text"], "You said: {\"q\":\"hi\"}");
}

#[tokio::test]
async fn policies_crud_stay_in_the_tenant_and_take_effect() {
    let app = TestApp::start().await;
    let a = app.register("ann@example.com").await;
    let created = app.post("/api/v1/policies", &a.access, json!({
        "name": "No demo runs", "scope": "global", "actions": ["run_start"],
        "rule_expr": {"conditions": [{"field": "subject.role", "operator": "equals", "value": "admin"}], "logic": "AND"},
        "effect": "deny", "priority": 100})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    assert_eq!(created.body["scope"], "tenant");
    assert_eq!(created.body["scope_id"], a.tenant_id.as_str());
    let id = created.id();

    // It denies this tenant's runs, and the denial is audited...
    let denied = app
        .post("/api/v1/workflows/demo/runs", &a.access, json!({}))
        .await;
    assert_problem(&denied, StatusCode::FORBIDDEN);
    let logs = app
        .get("/api/v1/audit/logs?action=policy_deny", &a.access)
        .await;
    assert_eq!(logs.body.as_array().unwrap().len(), 1);
    // ...and nobody else's.
    let b = app.register("bob@example.com").await;
    assert_eq!(
        app.post("/api/v1/workflows/demo/runs", &b.access, json!({}))
            .await
            .status,
        StatusCode::ACCEPTED
    );
    assert!(app
        .get("/api/v1/policies", &b.access)
        .await
        .body
        .as_array()
        .unwrap()
        .is_empty());

    assert_eq!(
        app.get("/api/v1/policies", &a.access)
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        app.get(&format!("/api/v1/policies/{id}"), &a.access)
            .await
            .body["name"],
        "No demo runs"
    );
    let patched = app
        .call(
            Method::PATCH,
            &format!("/api/v1/policies/{id}"),
            Some(&a.access),
            Some(json!({"enabled": false, "scope": "global"})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{:?}", patched.body);
    assert_eq!(patched.body["scope"], "tenant");
    assert_eq!(
        app.post("/api/v1/workflows/demo/runs", &a.access, json!({}))
            .await
            .status,
        StatusCode::ACCEPTED
    );
    let gone = app
        .call(
            Method::DELETE,
            &format!("/api/v1/policies/{id}"),
            Some(&a.access),
            None,
        )
        .await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    assert_problem(
        &app.get(&format!("/api/v1/policies/{id}"), &a.access).await,
        StatusCode::NOT_FOUND,
    );

    let logs = app
        .get("/api/v1/audit/logs?resource_type=policy", &a.access)
        .await;
    let actions: Vec<&str> = logs
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["delete", "update", "create"]);
    let bad = app
        .post(
            "/api/v1/policies",
            &a.access,
            json!({"name": "x", "effect": "explode"}),
        )
        .await;
    assert_problem(&bad, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn audit_filters_and_metrics() {
    let app = TestApp::start().await;
    let a = app.register("ann@example.com").await;
    app.workflow(&a.access, agent_definition()).await;
    let all = app.get("/api/v1/audit/logs", &a.access).await;
    assert_eq!(all.body.as_array().unwrap().len(), 2);
    let mine = app
        .get(
            &format!(
                "/api/v1/audit/logs?user_id={}&resource_type=workflow",
                a.user_id
            ),
            &a.access,
        )
        .await;
    assert_eq!(mine.body.as_array().unwrap().len(), 1);
    let future = app
        .get(
            "/api/v1/audit/logs?start_date=2999-01-01T00:00:00Z",
            &a.access,
        )
        .await;
    assert!(future.body.as_array().unwrap().is_empty());
    let past = app
        .get(
            "/api/v1/audit/logs?end_date=2000-01-01T00:00:00Z",
            &a.access,
        )
        .await;
    assert!(past.body.as_array().unwrap().is_empty());
    let paged = app
        .get("/api/v1/audit/logs?page=2&limit=1", &a.access)
        .await;
    assert_eq!(paged.body[0]["action"], "register");
    assert_problem(
        &app.get("/api/v1/audit/logs?start_date=yesterday", &a.access)
            .await,
        StatusCode::BAD_REQUEST,
    );

    let json_metrics = app.get("/api/v1/metrics", &a.access).await;
    assert_eq!(json_metrics.status, StatusCode::OK);
    let requests = json_metrics.body["requests"].as_array().unwrap();
    assert!(requests
        .iter()
        .any(|r| r["route"] == "/api/v1/workflows" && r["method"] == "POST" && r["status"] == 201));
    let prom = app
        .get("/api/v1/metrics?format=prometheus", &a.access)
        .await;
    assert!(prom.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = prom.body.as_str().unwrap();
    // Metrics are per process: other tests of this binary count requests too.
    assert!(text.contains("logline_http_requests_total{method=\"POST\",route=\"/api/v1/workflows\",status=\"201\"} "), "{text}");
    assert!(text.contains(
        "logline_http_request_duration_seconds_bucket{route=\"/api/v1/workflows\",le=\"+Inf\"}"
    ));
    assert_problem(
        &app.get("/api/v1/metrics?format=xml", &a.access).await,
        StatusCode::BAD_REQUEST,
    );
}

#[tokio::test]
async fn health_fallbacks_and_security_headers() {
    let app = TestApp::start().await;
    let h = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(h.body, json!({"status": "ok"}));
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
    ] {
        assert_eq!(h.headers[name], value);
    }
    assert!(
        h.headers.get("access-control-allow-origin").is_none(),
        "CORS is off by default"
    );
    assert_problem(
        &app.call(Method::GET, "/nope", None, None).await,
        StatusCode::NOT_FOUND,
    );
    assert_problem(
        &app.call(Method::PUT, "/healthz", None, None).await,
        StatusCode::METHOD_NOT_ALLOWED,
    );
}

#[tokio::test]
async fn cors_answers_only_configured_origins() {
    let app = TestApp::with(support::ServerConfig {
        cors_origins: vec!["https://app.example".into()],
        ..support::config()
    })
    .await;
    let pre = |origin: &'static str| {
        app.http
            .request(Method::OPTIONS, format!("{}/api/v1/workflows", app.base))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
    };
    let ok = pre("https://app.example").await.unwrap();
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let other = pre("https://evil.example").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
}
