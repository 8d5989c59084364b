//! The served OpenAPI 3.1 document lists exactly the routes the server answers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use support::TestApp;

const ROUTES: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("post", "/api/v1/auth/register"),
    ("post", "/api/v1/auth/login"),
    ("post", "/api/v1/auth/refresh"),
    ("post", "/api/v1/auth/logout"),
    ("get", "/api/v1/auth/me"),
    ("post", "/api/v1/users"),
    ("post", "/api/v1/auth/api-keys"),
    ("get", "/api/v1/auth/api-keys"),
    ("post", "/api/v1/auth/api-keys/{id}/revoke"),
    ("post", "/api/v1/workflows"),
    ("get", "/api/v1/workflows"),
    ("get", "/api/v1/workflows/{id}"),
    ("patch", "/api/v1/workflows/{id}"),
    ("delete", "/api/v1/workflows/{id}"),
    ("post", "/api/v1/workflows/{id}/runs"),
    ("get", "/api/v1/runs"),
    ("get", "/api/v1/runs/{id}"),
    ("get", "/api/v1/runs/{id}/events"),
    ("get", "/api/v1/runs/{id}/stream"),
    ("post", "/api/v1/runs/{id}/approve"),
    ("post", "/api/v1/runs/{id}/deny"),
    ("post", "/api/v1/runs/{id}/cancel"),
    ("get", "/api/v1/tools"),
    ("post", "/api/v1/tools"),
    ("get", "/api/v1/agents"),
    ("post", "/api/v1/agents"),
    ("get", "/api/v1/agents/{id}"),
    ("post", "/api/v1/agents/{id}/test"),
    ("get", "/api/v1/policies"),
    ("post", "/api/v1/policies"),
    ("get", "/api/v1/policies/{id}"),
    ("patch", "/api/v1/policies/{id}"),
    ("delete", "/api/v1/policies/{id}"),
    ("get", "/api/v1/audit/logs"),
    ("get", "/api/v1/metrics"),
    ("get", "/api/v1/alerts/configs"),
    ("post", "/api/v1/alerts/configs"),
    ("patch", "/api/v1/alerts/configs/{id}"),
    ("delete", "/api/v1/alerts/configs/{id}"),
    ("post", "/api/v1/alerts/check"),
    ("get", "/api/v1/alerts/history"),
    ("post", "/api/v1/alerts/history/{id}/resolve"),
];

#[tokio::test]
async fn the_document_lists_every_route_and_each_is_served() {
    let app = TestApp::start().await;
    let doc = app
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(doc.status, StatusCode::OK);
    assert!(doc.body["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(doc.body["components"]["securitySchemes"]["bearer"].is_object());

    let mut documented = BTreeSet::new();
    for (path, item) in doc.body["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "patch", "delete", "put"].contains(&method.as_str()) {
                documented.insert((method.clone(), path.clone()));
            }
        }
    }
    let expected: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(documented, expected);

    // Every documented operation is routed: no "no such route" and no 405.
    let admin = app.register("ann@example.com").await;
    for (method, path) in &expected {
        let concrete = path.replace("{id}", "01a22c30-0000-7000-8000-00000000000f");
        let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let a = app
            .call(
                m,
                &concrete,
                Some(&admin.access),
                Some(serde_json::json!({})),
            )
            .await;
        assert_ne!(a.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert_ne!(a.body["detail"], "no such route", "{method} {path}");
        assert!(a.status.as_u16() < 500, "{method} {path}: {}", a.status);
    }
}
