//! Tenant isolation: tenant B probing tenant A's ids on every route gets the same 404 as for
//! ids that do not exist, and A's data is unchanged.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use reqwest::{Method, StatusCode};
use serde_json::json;
use support::{assert_problem, gated_definition, TestApp};

#[tokio::test]
async fn another_tenants_ids_are_404_on_every_route() {
    let app = TestApp::start().await;
    let a = app.register("ann@example.com").await;
    let b = app.register("bob@example.com").await;
    assert_ne!(a.tenant_id, b.tenant_id);

    let wf = app.workflow(&a.access, gated_definition()).await;
    let paused = app
        .run_to_rest(&a.access, &wf, json!({"secret": "a's data"}))
        .await;
    let run = paused["id"].as_str().unwrap().to_string();
    let gate = paused["pending_gate"]["gate_id"]
        .as_str()
        .unwrap()
        .to_string();
    let agent = app
        .post(
            "/api/v1/agents",
            &a.access,
            json!({"name": "a", "instructions": "x", "model_profile": {"model": "demo"}}),
        )
        .await
        .id();
    let policy = app
        .post(
            "/api/v1/policies",
            &a.access,
            json!({"name": "p", "effect": "allow"}),
        )
        .await
        .id();
    let key = app
        .post("/api/v1/auth/api-keys", &a.access, json!({"name": "k"}))
        .await
        .body["api_key"]["id"]
        .as_str()
        .unwrap()
        .to_string();

    let probes: Vec<(Method, String, Option<serde_json::Value>)> = vec![
        (Method::GET, format!("/api/v1/workflows/{wf}"), None),
        (
            Method::PATCH,
            format!("/api/v1/workflows/{wf}"),
            Some(json!({"name": "b"})),
        ),
        (Method::DELETE, format!("/api/v1/workflows/{wf}"), None),
        (
            Method::POST,
            format!("/api/v1/workflows/{wf}/runs"),
            Some(json!({})),
        ),
        (Method::GET, format!("/api/v1/runs/{run}"), None),
        (Method::GET, format!("/api/v1/runs/{run}/events"), None),
        (Method::GET, format!("/api/v1/runs/{run}/stream"), None),
        (
            Method::POST,
            format!("/api/v1/runs/{run}/approve"),
            Some(json!({"gate_id": gate})),
        ),
        (
            Method::POST,
            format!("/api/v1/runs/{run}/deny"),
            Some(json!({"gate_id": gate})),
        ),
        (
            Method::POST,
            format!("/api/v1/runs/{run}/cancel"),
            Some(json!({})),
        ),
        (Method::GET, format!("/api/v1/agents/{agent}"), None),
        (
            Method::POST,
            format!("/api/v1/agents/{agent}/test"),
            Some(json!({})),
        ),
        (
            Method::POST,
            "/api/v1/agents".to_string(),
            Some(
                json!({"id": agent, "name": "b", "instructions": "x", "model_profile": {"model": "demo"}}),
            ),
        ),
        (Method::GET, format!("/api/v1/policies/{policy}"), None),
        (
            Method::PATCH,
            format!("/api/v1/policies/{policy}"),
            Some(json!({"name": "b"})),
        ),
        (Method::DELETE, format!("/api/v1/policies/{policy}"), None),
        (
            Method::POST,
            format!("/api/v1/auth/api-keys/{key}/revoke"),
            Some(json!({})),
        ),
    ];
    for (method, path, body) in probes {
        let probe = app
            .call(method.clone(), &path, Some(&b.access), body.clone())
            .await;
        assert_problem(&probe, StatusCode::NOT_FOUND);
        // The answer for an id that does not exist is the same.
        let ghost_path = path
            .replace(&wf, "01a22c30-0000-7000-8000-000000000000")
            .replace(&run, "01a22c30-0000-7000-8000-000000000001")
            .replace(&agent, "01a22c30-0000-7000-8000-000000000002")
            .replace(&policy, "01a22c30-0000-7000-8000-000000000003")
            .replace(&key, "01a22c30-0000-7000-8000-000000000004");
        let ghost_body = body.map(|b| {
            serde_json::from_str(
                &b.to_string()
                    .replace(&agent, "01a22c30-0000-7000-8000-000000000002"),
            )
            .unwrap()
        });
        let ghost = app
            .call(method.clone(), &ghost_path, Some(&b.access), ghost_body)
            .await;
        assert_eq!(ghost.status, StatusCode::NOT_FOUND, "{method} {ghost_path}");
        let strip = |s: &str, id: &str| s.replace(id, "<id>");
        let ids = [&wf, &run, &agent, &policy, &key];
        let ghosts = [
            "01a22c30-0000-7000-8000-000000000000",
            "01a22c30-0000-7000-8000-000000000001",
            "01a22c30-0000-7000-8000-000000000002",
            "01a22c30-0000-7000-8000-000000000003",
            "01a22c30-0000-7000-8000-000000000004",
        ];
        let mut d1 = probe.body["detail"].as_str().unwrap().to_string();
        let mut d2 = ghost.body["detail"].as_str().unwrap().to_string();
        for id in ids {
            d1 = strip(&d1, id);
        }
        for id in ghosts {
            d2 = strip(&d2, id);
        }
        assert_eq!(
            d1, d2,
            "{method} {path}: the answer tells nothing more than for a missing id"
        );
    }

    // B's lists show nothing of A's.
    for path in [
        "/api/v1/runs",
        "/api/v1/workflows",
        "/api/v1/agents",
        "/api/v1/tools",
    ] {
        let listed = app.get(path, &b.access).await;
        assert!(!listed.body.to_string().contains(&a.tenant_id), "{path}");
        assert!(
            !listed.body.to_string().contains(&wf) && !listed.body.to_string().contains(&agent),
            "{path}"
        );
    }
    assert!(app.get("/api/v1/runs", &b.access).await.body["items"]
        .as_array()
        .unwrap()
        .is_empty());
    assert!(app
        .get("/api/v1/policies", &b.access)
        .await
        .body
        .as_array()
        .unwrap()
        .is_empty());
    assert!(app
        .get("/api/v1/audit/logs", &b.access)
        .await
        .body
        .to_string()
        .contains(&b.user_id));
    assert!(!app
        .get("/api/v1/audit/logs", &b.access)
        .await
        .body
        .to_string()
        .contains(&a.user_id));
    assert!(app
        .get("/api/v1/auth/api-keys", &b.access)
        .await
        .body
        .as_array()
        .unwrap()
        .is_empty());
    // B cannot reference A's agent in a workflow.
    let cross = app.post("/api/v1/workflows", &b.access, json!({"name": "x", "definition": {
        "entry": "a", "nodes": [{"id": "a", "type": "agent_node", "config": {"agent_id": agent}}]}})).await;
    assert_problem(&cross, StatusCode::BAD_REQUEST);

    // A's run, workflow, agent and policy are untouched.
    let still = app.get(&format!("/api/v1/runs/{run}"), &a.access).await;
    assert_eq!(still.body["status"], "paused");
    assert_eq!(
        app.get(&format!("/api/v1/workflows/{wf}"), &a.access)
            .await
            .body["name"],
        "wf"
    );
    assert_eq!(
        app.get(&format!("/api/v1/agents/{agent}"), &a.access)
            .await
            .body["name"],
        "a"
    );
    assert_eq!(
        app.get(&format!("/api/v1/policies/{policy}"), &a.access)
            .await
            .body["name"],
        "p"
    );
}
