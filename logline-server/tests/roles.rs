//! What each role may do: admin, developer, user of one tenant, on every route.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::{agent_definition, gated_definition, Login, TestApp};

struct Case {
    method: Method,
    path: String,
    body: Option<Value>,
}

fn case(method: Method, path: impl Into<String>, body: Option<Value>) -> Case {
    Case {
        method,
        path: path.into(),
        body,
    }
}

/// Who may: `true` per role (admin, developer, user).
fn allowed(c: &Case) -> [bool; 3] {
    let p = c.path.as_str();
    let builders = [true, true, false];
    let admins = [true, false, false];
    let everyone = [true; 3];
    match (c.method.as_str(), p) {
        ("POST", "/api/v1/users") => admins,
        (_, p) if p.starts_with("/api/v1/policies") && c.method != Method::GET => admins,
        ("GET", "/api/v1/metrics") => admins,
        ("GET", "/api/v1/audit/logs") => builders,
        (m, p) if p.starts_with("/api/v1/workflows") && m != "GET" && !p.ends_with("/runs") => {
            builders
        }
        ("POST", "/api/v1/tools") | ("POST", "/api/v1/agents") => builders,
        ("POST", p) if p.ends_with("/test") => builders,
        // Gates are decided by the engine's approver roles (admin or approver).
        ("POST", p) if p.ends_with("/approve") || p.ends_with("/deny") => admins,
        _ => everyone,
    }
}

#[tokio::test]
async fn every_route_for_every_role() {
    let app = TestApp::start().await;
    let admin = app.register("admin@example.com").await;
    let dev = app.add_user(&admin, "dev@example.com", "developer").await;
    let user = app.add_user(&admin, "user@example.com", "user").await;
    let roles: [(&str, &Login); 3] = [("admin", &admin), ("developer", &dev), ("user", &user)];

    for (i, (role, who)) in roles.iter().enumerate() {
        // Fresh resources per role, so a permitted change never hides another role's answer.
        let wf = app.workflow(&admin.access, agent_definition()).await;
        let gated = app.workflow(&admin.access, gated_definition()).await;
        let paused = app.run_to_rest(&user.access, &gated, json!({})).await;
        let run = paused["id"].as_str().unwrap().to_string();
        let gate = paused["pending_gate"]["gate_id"]
            .as_str()
            .unwrap()
            .to_string();
        let paused2 = app.run_to_rest(&user.access, &gated, json!({})).await;
        let run2 = paused2["id"].as_str().unwrap().to_string();
        let gate2 = paused2["pending_gate"]["gate_id"]
            .as_str()
            .unwrap()
            .to_string();
        let agent = app
            .post(
                "/api/v1/agents",
                &admin.access,
                json!({"name": "a", "instructions": "x", "model_profile": {"model": "demo"}}),
            )
            .await
            .id();
        let policy = app
            .post(
                "/api/v1/policies",
                &admin.access,
                json!({"name": "p", "effect": "allow", "enabled": false}),
            )
            .await
            .id();

        let cases = vec![
            case(Method::GET, "/api/v1/auth/me", None),
            case(
                Method::POST,
                "/api/v1/users",
                Some(
                    json!({"email": format!("n{i}@example.com"), "password": "password-123", "role": "user"}),
                ),
            ),
            case(
                Method::POST,
                "/api/v1/auth/api-keys",
                Some(json!({"name": "k"})),
            ),
            case(Method::GET, "/api/v1/auth/api-keys", None),
            case(Method::GET, "/api/v1/workflows", None),
            case(
                Method::POST,
                "/api/v1/workflows",
                Some(json!({"name": "w", "definition": agent_definition()})),
            ),
            case(Method::GET, format!("/api/v1/workflows/{wf}"), None),
            case(
                Method::PATCH,
                format!("/api/v1/workflows/{wf}"),
                Some(json!({"name": "w2"})),
            ),
            case(
                Method::POST,
                format!("/api/v1/workflows/{wf}/runs"),
                Some(json!({})),
            ),
            case(Method::GET, "/api/v1/runs", None),
            case(Method::GET, format!("/api/v1/runs/{run}"), None),
            case(Method::GET, format!("/api/v1/runs/{run}/events"), None),
            case(
                Method::POST,
                format!("/api/v1/runs/{run}/approve"),
                Some(json!({"gate_id": gate})),
            ),
            case(
                Method::POST,
                format!("/api/v1/runs/{run2}/deny"),
                Some(json!({"gate_id": gate2})),
            ),
            case(Method::GET, "/api/v1/tools", None),
            case(
                Method::POST,
                "/api/v1/tools",
                Some(
                    json!({"id": format!("t.{role}"), "name": "t", "description": "t", "input_schema": {}}),
                ),
            ),
            case(Method::GET, "/api/v1/agents", None),
            case(
                Method::POST,
                "/api/v1/agents",
                Some(json!({"name": "a", "instructions": "x", "model_profile": {"model": "demo"}})),
            ),
            case(Method::GET, format!("/api/v1/agents/{agent}"), None),
            case(
                Method::POST,
                format!("/api/v1/agents/{agent}/test"),
                Some(json!({})),
            ),
            case(Method::GET, "/api/v1/policies", None),
            case(
                Method::POST,
                "/api/v1/policies",
                Some(json!({"name": "p", "effect": "allow", "enabled": false})),
            ),
            case(Method::GET, format!("/api/v1/policies/{policy}"), None),
            case(
                Method::PATCH,
                format!("/api/v1/policies/{policy}"),
                Some(json!({"name": "p2"})),
            ),
            case(Method::GET, "/api/v1/audit/logs", None),
            case(Method::GET, "/api/v1/metrics", None),
            case(Method::DELETE, format!("/api/v1/policies/{policy}"), None),
            case(
                Method::POST,
                format!("/api/v1/runs/{run2}/cancel"),
                Some(json!({})),
            ),
            case(Method::DELETE, format!("/api/v1/workflows/{wf}"), None),
        ];
        for c in cases {
            let a = app
                .call(c.method.clone(), &c.path, Some(&who.access), c.body.clone())
                .await;
            let may = allowed(&c)[i];
            if may {
                assert!(
                    a.status.is_success()
                        || (a.status == StatusCode::CONFLICT && c.path.ends_with("/cancel")),
                    "{role} {} {}: {} {:?}",
                    c.method,
                    c.path,
                    a.status,
                    a.body
                );
            } else {
                support::assert_problem(&a, StatusCode::FORBIDDEN);
            }
        }
    }
    // Denied gate decisions are audited as denials.
    let denials = app
        .get("/api/v1/audit/logs?action=policy_deny", &admin.access)
        .await;
    assert_eq!(
        denials.body.as_array().unwrap().len(),
        4,
        "{:?}",
        denials.body
    );
}
