//! Uploads and artifacts: a streamed upload and its download by the owner; size (413) and
//! type (415) limits; hostile file names cleaned; uploads linked to a task and attached to
//! a message; another user's or tenant's artifact is a 404.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use reqwest::StatusCode;
use serde_json::{json, Value};
use support::{config, Answer, Login, ServerConfig, TestApp};

const BOUNDARY: &str = "logline-test-boundary";

/// A `multipart/form-data` body: text fields, then a `file` part.
fn form(fields: &[(&str, &str)], file: Option<(&str, Option<&str>, &[u8])>) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    if let Some((filename, content_type, bytes)) = file {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n"
            )
            .as_bytes(),
        );
        if let Some(t) = content_type {
            body.extend_from_slice(format!("Content-Type: {t}\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

async fn upload(app: &TestApp, who: &Login, body: Vec<u8>) -> Answer {
    let res = app
        .http
        .post(format!("{}/api/v1/files/upload", app.base))
        .bearer_auth(&who.access)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
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

async fn upload_file(app: &TestApp, who: &Login, name: &str, bytes: &[u8]) -> Answer {
    upload(app, who, form(&[], Some((name, None, bytes)))).await
}

#[tokio::test]
async fn an_upload_is_stored_and_downloaded_by_its_owner() {
    let app = TestApp::with_chat(config()).await;
    let ann = app.register("ann@example.com").await;
    let text = "line one\nline two\n".repeat(1000);
    let a = upload(
        &app,
        &ann,
        form(
            &[],
            Some(("notes.txt", Some("text/plain"), text.as_bytes())),
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{:?}", a.body);
    assert_eq!(a.body["name"], "notes.txt");
    assert_eq!(a.body["content_type"], "text/plain");
    assert_eq!(a.body["size"], text.len());
    assert_eq!(a.body["sha256"].as_str().unwrap().len(), 64);
    assert!(a.body.get("owner").is_none());
    let id = a.id();

    let meta = app
        .get(&format!("/api/v1/artifacts/{id}"), &ann.access)
        .await;
    assert_eq!(meta.status, StatusCode::OK);
    assert_eq!(meta.body, a.body);

    let res = app
        .http
        .get(format!("{}/api/v1/artifacts/{id}/content", app.base))
        .bearer_auth(&ann.access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let h = res.headers();
    assert_eq!(h["content-type"], "text/plain");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(h["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment; filename=\"notes.txt\""));
    assert_eq!(res.bytes().await.unwrap().as_ref(), text.as_bytes());

    let list = app.get("/api/v1/artifacts", &ann.access).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn uploads_over_the_limits_are_refused() {
    let app = TestApp::with_chat(ServerConfig {
        upload_max_bytes: 4096,
        upload_allowed_types: vec!["text/plain".into(), "application/pdf".into()],
        ..config()
    })
    .await;
    let ann = app.register("ann@example.com").await;
    // Too big: 413, also past the route's body limit.
    for size in [4097, 60_000] {
        let a = upload_file(&app, &ann, "big.txt", &vec![b'a'; size]).await;
        assert_eq!(
            a.status,
            StatusCode::PAYLOAD_TOO_LARGE,
            "{size}: {:?}",
            a.body
        );
        assert_eq!(a.headers["content-type"], "application/problem+json");
    }
    let fits = upload_file(&app, &ann, "fits.txt", &[b'a'; 4096]).await;
    assert_eq!(fits.status, StatusCode::CREATED);
    // A PNG is not an allowed type: 415.
    let png = [
        0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 0x0D,
    ];
    let a = upload_file(&app, &ann, "pic.png", &png).await;
    assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{:?}", a.body);
    // Declared PDF, but text: 415.
    let a = upload(
        &app,
        &ann,
        form(
            &[],
            Some(("fake.pdf", Some("application/pdf"), b"just text")),
        ),
    )
    .await;
    assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{:?}", a.body);
    // Not a form at all: 415; a form without a file: 400; an empty file: 400.
    let a = app
        .post("/api/v1/files/upload", &ann.access, json!({"file": "x"}))
        .await;
    assert_eq!(a.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let a = upload(&app, &ann, form(&[("other", "x")], None)).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let a = upload_file(&app, &ann, "empty.txt", b"").await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    // Nothing refused was kept.
    let list = app.get("/api/v1/artifacts", &ann.access).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn hostile_file_names_are_cleaned() {
    let app = TestApp::with_chat(config()).await;
    let ann = app.register("ann@example.com").await;
    for (sent, kept) in [
        ("../../etc/passwd", "passwd"),
        ("C:\\\\Users\\\\ann\\\\report.txt", "report.txt"),
        ("what?<is>this|.txt", "what__is_this_.txt"),
        ("  spaced.txt ", "spaced.txt"),
    ] {
        let a = upload_file(&app, &ann, sent, b"hello").await;
        assert_eq!(a.status, StatusCode::CREATED, "{sent}: {:?}", a.body);
        assert_eq!(a.body["name"], kept, "{sent}");
        let res = app
            .http
            .get(format!("{}/api/v1/artifacts/{}/content", app.base, a.id()))
            .bearer_auth(&ann.access)
            .send()
            .await
            .unwrap();
        let disposition = res.headers()["content-disposition"].to_str().unwrap();
        assert!(
            disposition.contains(&format!("filename=\"{kept}\"")),
            "{disposition}"
        );
    }
    for refused in ["..", "dir/..", "bad\u{202e}name.txt"] {
        let a = upload_file(&app, &ann, refused, b"hello").await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{refused}: {:?}", a.body);
    }
    // A non-ASCII name is kept and offered in both forms.
    let a = upload_file(&app, &ann, "café.txt", b"hello").await;
    assert_eq!(a.body["name"], "café.txt");
    let res = app
        .http
        .get(format!("{}/api/v1/artifacts/{}/content", app.base, a.id()))
        .bearer_auth(&ann.access)
        .send()
        .await
        .unwrap();
    let disposition = res.headers()["content-disposition"].to_str().unwrap();
    assert!(
        disposition.contains("filename=\"caf_.txt\""),
        "{disposition}"
    );
    assert!(
        disposition.contains("filename*=UTF-8''caf%C3%A9%2Etxt"),
        "{disposition}"
    );
}

#[tokio::test]
async fn uploads_link_to_tasks_and_attach_to_messages() {
    let app = TestApp::with_chat(config()).await;
    let ann = app.register("ann@example.com").await;
    let file = upload_file(&app, &ann, "brief.txt", b"the brief").await;
    let a = app
        .post(
            "/api/v1/chat/send",
            &ann.access,
            json!({"message": "hello", "attachments": [file.id()]}),
        )
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{:?}", a.body);
    let task = a.body["task_id"].as_str().unwrap().to_string();
    let conversation = a.body["conversation_id"].as_str().unwrap();
    let msgs = app
        .get(
            &format!("/api/v1/chat/conversations/{conversation}/messages"),
            &ann.access,
        )
        .await;
    let attached = &msgs.body["items"][0]["attachments"][0];
    assert_eq!(attached["id"], file.id().as_str());
    assert_eq!(attached["name"], "brief.txt");

    let linked = upload(
        &app,
        &ann,
        form(&[("task_id", &task)], Some(("out.txt", None, b"result"))),
    )
    .await;
    assert_eq!(linked.status, StatusCode::CREATED, "{:?}", linked.body);
    assert_eq!(linked.body["task_id"], task.as_str());
    let of_task = app
        .get(&format!("/api/v1/artifacts?task_id={task}"), &ann.access)
        .await;
    let items = of_task.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], linked.id().as_str());
    let t = app.get(&format!("/api/v1/tasks/{task}"), &ann.access).await;
    assert_eq!(t.body["artifacts"][0]["id"], linked.id().as_str());

    let unknown = upload(
        &app,
        &ann,
        form(
            &[("task_id", "01a22c30-0000-7000-8000-00000000000f")],
            Some(("x.txt", None, b"x")),
        ),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn another_users_or_tenants_artifacts_are_not_found() {
    let app = TestApp::with_chat(config()).await;
    let ann = app.register("ann@example.com").await;
    let file = upload_file(&app, &ann, "secret.txt", b"ann's secret").await;
    let id = file.id();
    let bea = app.register("bea@example.com").await;
    let colleague = app.add_user(&ann, "cat@example.com", "admin").await;
    for other in [&bea, &colleague] {
        for path in [
            format!("/api/v1/artifacts/{id}"),
            format!("/api/v1/artifacts/{id}/content"),
        ] {
            let a = app.get(&path, &other.access).await;
            assert_eq!(a.status, StatusCode::NOT_FOUND, "{path}");
            assert!(!a.body.to_string().contains("secret"));
        }
        let list = app.get("/api/v1/artifacts", &other.access).await;
        assert_eq!(list.body["items"], json!([]));
        let attach = app
            .post(
                "/api/v1/chat/send",
                &other.access,
                json!({"message": "hi", "attachments": [id]}),
            )
            .await;
        assert_eq!(attach.status, StatusCode::NOT_FOUND);
    }
    let bad = app.get("/api/v1/artifacts/not-an-id", &ann.access).await;
    assert_eq!(bad.status, StatusCode::NOT_FOUND);
}
