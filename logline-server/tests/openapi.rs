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
    ("post", "/api/v1/chat/conversations"),
    ("get", "/api/v1/chat/conversations"),
    ("get", "/api/v1/chat/conversations/{id}/messages"),
    ("post", "/api/v1/chat/send"),
    ("get", "/api/v1/chat/stream"),
    ("get", "/api/v1/tasks/{id}"),
    ("post", "/api/v1/tasks/{id}/confirm"),
    ("post", "/api/v1/files/upload"),
    ("get", "/api/v1/artifacts"),
    ("get", "/api/v1/artifacts/{id}"),
    ("get", "/api/v1/artifacts/{id}/content"),
    ("post", "/api/v1/apps/import"),
    ("get", "/api/v1/apps"),
    ("get", "/api/v1/apps/{id}"),
    ("post", "/api/v1/apps/{id}/actions/{action}/run"),
];

/// The OpenAPI document an app with chat serves, and the app.
async fn served_document() -> (TestApp, serde_json::Value) {
    let app = TestApp::with_chat(support::config()).await;
    let doc = app
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(doc.status, StatusCode::OK);
    (app, doc.body)
}

#[tokio::test]
async fn the_document_lists_every_route_and_each_is_served() {
    let (app, body) = served_document().await;
    assert!(body["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(body["components"]["securitySchemes"]["bearer"].is_object());

    let mut documented = BTreeSet::new();
    for (path, item) in body["paths"].as_object().unwrap() {
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
        let concrete = path
            .replace("{id}", "01a22c30-0000-7000-8000-00000000000f")
            .replace("{action}", "go");
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

/// Each event of a stream is documented as what a client parses it into (its `data`, `event`
/// and `id` fields), so per-event validators check the events against it.
#[tokio::test]
async fn stream_events_are_documented_one_by_one() {
    let (_app, body) = served_document().await;
    let schemas = &body["components"]["schemas"];
    for path in ["/api/v1/runs/{id}/stream", "/api/v1/chat/stream"] {
        let media = &body["paths"][path]["get"]["responses"]["200"]["content"]["text/event-stream"]
            ["schema"];
        let name = media["$ref"]
            .as_str()
            .expect(path)
            .rsplit('/')
            .next()
            .unwrap();
        let event = &schemas[name];
        assert_eq!(event["type"], "object", "{path}");
        assert_eq!(event["properties"]["data"]["type"], "string", "{path}");
        assert_eq!(event["required"], serde_json::json!(["data"]), "{path}");
    }
}

/// A route a host adds: authenticated, limited and documented like the built-in ones.
#[utoipa::path(get, path = "/api/v1/hello", responses((status = 200, body = String)), security(("bearer" = [])))]
async fn hello(caller: logline_server::auth::Caller) -> String {
    format!("hello {}", caller.tenant_id)
}

#[tokio::test]
async fn hosts_add_routes_that_share_auth_and_the_document() {
    use std::sync::Arc;

    use logline_core::engine::Engine;
    use logline_server::store::MemoryServerStore;
    use logline_server::Server;

    let engine = Engine::builder().build().await.unwrap();
    let server = Server::with_store(
        engine,
        support::config(),
        Arc::new(MemoryServerStore::new()),
    )
    .with_routes(utoipa_axum::router::OpenApiRouter::new().routes(utoipa_axum::routes!(hello)));
    let (_, doc) = server.api();
    let doc = serde_json::to_value(doc).unwrap();
    assert!(doc["paths"]["/api/v1/hello"]["get"]["responses"]["401"].is_object());

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = server.router();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let http = reqwest::Client::new();
    let anon = http
        .get(format!("{base}/api/v1/hello"))
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status(), StatusCode::UNAUTHORIZED);
    let reg: serde_json::Value = http
        .post(format!("{base}/api/v1/auth/register"))
        .json(&serde_json::json!({"email": "h@example.com", "password": "password-123"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let hi = http
        .get(format!("{base}/api/v1/hello"))
        .bearer_auth(reg["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        hi,
        format!("hello {}", reg["user"]["tenant_id"].as_str().unwrap())
    );
}
