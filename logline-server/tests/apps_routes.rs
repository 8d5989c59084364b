//! Apps over HTTP on memory backends: import (JSON and YAML), list, get, run an action;
//! builders import, everyone runs; another tenant's app is a 404 and its id a 409.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use reqwest::StatusCode;
use serde_json::{json, Value};
use support::{Answer, Login, TestApp};

fn manifest(id: &str, version: &str) -> Value {
    json!({
        "version": version,
        "app": {
            "id": id,
            "name": "Echo desk",
            "scopes": {"tools": ["echo"], "memory": [], "external": []},
            "workflows": [{"id": "answer", "workflow_ref": "demo", "label": "Answer",
                           "default_mode": "auto"}],
            "actions": [{"id": "ask", "label": "Ask", "workflow_id": "answer",
                         "input_mapping": {"message": "$event.message"}}]
        }
    })
}

async fn import_text(app: &TestApp, who: &Login, content_type: &str, body: String) -> Answer {
    let res = app
        .http
        .post(format!("{}/api/v1/apps/import", app.base))
        .bearer_auth(&who.access)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let text = res.text().await.unwrap();
    Answer {
        status,
        headers,
        body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
    }
}

#[tokio::test]
async fn an_app_is_imported_listed_and_run() {
    let app = TestApp::start().await;
    let ann = app.register("ann@example.com").await;
    let a = app
        .post(
            "/api/v1/apps/import",
            &ann.access,
            manifest("echo_desk", "1.0.0"),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
    assert_eq!(a.body["app_id"], "echo_desk");
    assert_eq!(a.body["outcome"], "created");
    let again = app
        .post(
            "/api/v1/apps/import",
            &ann.access,
            manifest("echo_desk", "1.0.0"),
        )
        .await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body["outcome"], "unchanged");

    let list = app.get("/api/v1/apps", &ann.access).await;
    let items = list.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["manifest"]["app"]["id"], "echo_desk");
    let one = app.get("/api/v1/apps/echo_desk", &ann.access).await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.body["manifest"]["version"], "1.0.0");

    let run = app
        .post(
            "/api/v1/apps/echo_desk/actions/ask/run",
            &ann.access,
            json!({"event": {"message": "ping"}}),
        )
        .await;
    assert_eq!(run.status, StatusCode::OK, "{:?}", run.body);
    assert_eq!(run.body["status"], "completed");
    assert!(
        run.body["result"].to_string().contains("ping"),
        "{:?}",
        run.body
    );
    let id = run.body["run_id"].as_str().unwrap();
    let stored = app.get(&format!("/api/v1/runs/{id}"), &ann.access).await;
    assert_eq!(stored.status, StatusCode::OK);

    let missing = app
        .post(
            "/api/v1/apps/echo_desk/actions/nope/run",
            &ann.access,
            json!({}),
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_yaml_manifest_is_imported_and_a_bad_one_is_located() {
    let app = TestApp::start().await;
    let ann = app.register("ann@example.com").await;
    let yaml = "version: \"1.0.0\"\napp:\n  id: yaml_desk\n  name: Yaml desk\n  workflows:\n    - id: answer\n      workflow_ref: demo\n      label: Answer\n      default_mode: auto\n  actions:\n    - id: ask\n      label: Ask\n      workflow_id: answer\n      input_mapping:\n        message: $event.message\n";
    let a = import_text(&app, &ann, "application/yaml", yaml.into()).await;
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
    assert_eq!(a.body["app_id"], "yaml_desk");

    let bad = import_text(
        &app,
        &ann,
        "application/yaml",
        yaml.replace("workflow_id: answer", "workflow_id: nowhere"),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{:?}", bad.body);
    assert!(bad.body["detail"].as_str().unwrap().contains("actions"));
    let unknown_wf = app
        .post("/api/v1/apps/import", &ann.access, {
            let mut m = manifest("ghost", "1.0.0");
            m["app"]["workflows"][0]["workflow_ref"] = json!("not-registered");
            m
        })
        .await;
    assert_eq!(unknown_wf.status, StatusCode::BAD_REQUEST);
    let text = import_text(&app, &ann, "text/plain", "hello".into()).await;
    assert_eq!(text.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let list = app.get("/api/v1/apps", &ann.access).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn builders_import_and_every_role_runs() {
    let app = TestApp::start().await;
    let admin = app.register("ann@example.com").await;
    let dev = app.add_user(&admin, "dev@example.com", "developer").await;
    let user = app.add_user(&admin, "use@example.com", "user").await;
    let a = app
        .post(
            "/api/v1/apps/import",
            &dev.access,
            manifest("dev_desk", "1.0.0"),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
    let refused = app
        .post(
            "/api/v1/apps/import",
            &user.access,
            manifest("user_desk", "1.0.0"),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let run = app
        .post(
            "/api/v1/apps/dev_desk/actions/ask/run",
            &user.access,
            json!({"event": {"message": "hi"}}),
        )
        .await;
    assert_eq!(run.status, StatusCode::OK, "{:?}", run.body);
}

#[tokio::test]
async fn another_tenants_app_is_not_found_and_its_id_is_taken() {
    let app = TestApp::start().await;
    let ann = app.register("ann@example.com").await;
    let a = app
        .post(
            "/api/v1/apps/import",
            &ann.access,
            manifest("ann_desk", "1.0.0"),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED);
    let bea = app.register("bea@example.com").await;
    let get = app.get("/api/v1/apps/ann_desk", &bea.access).await;
    assert_eq!(get.status, StatusCode::NOT_FOUND);
    let run = app
        .post(
            "/api/v1/apps/ann_desk/actions/ask/run",
            &bea.access,
            json!({"event": {"message": "hi"}}),
        )
        .await;
    assert_eq!(run.status, StatusCode::NOT_FOUND);
    let list = app.get("/api/v1/apps", &bea.access).await;
    assert_eq!(list.body["items"], json!([]));
    let steal = app
        .post(
            "/api/v1/apps/import",
            &bea.access,
            manifest("ann_desk", "1.1.0"),
        )
        .await;
    assert_eq!(steal.status, StatusCode::CONFLICT);
    // Ann's app is unchanged.
    let one = app.get("/api/v1/apps/ann_desk", &ann.access).await;
    assert_eq!(one.body["manifest"]["version"], "1.0.0");
}
