//! The chat routes with the demo model: send → stream → final; an email send that waits
//! for confirmation, runs once when confirmed and never when refused; SSE resume with
//! `Last-Event-ID`; roles; and another user's or tenant's chat data is a 404.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use support::sse::{read, Sse};
use support::{config, Login, TestApp};

async fn send(app: &TestApp, who: &Login, body: Value) -> (String, String) {
    let a = app.post("/api/v1/chat/send", &who.access, body).await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{:?}", a.body);
    (
        a.body["task_id"].as_str().unwrap().to_string(),
        a.body["conversation_id"].as_str().unwrap().to_string(),
    )
}

async fn open_stream(
    app: &TestApp,
    who: &Login,
    task: &str,
    last: Option<u64>,
) -> reqwest::Response {
    let mut req = app
        .http
        .get(format!("{}/api/v1/chat/stream?task_id={task}", app.base))
        .bearer_auth(&who.access);
    if let Some(id) = last {
        req = req.header("Last-Event-ID", id.to_string());
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    res
}

fn kinds(events: &[Sse]) -> Vec<&str> {
    events
        .iter()
        .filter(|e| e.event != "delta")
        .map(|e| e.event.as_str())
        .collect()
}

#[tokio::test]
async fn a_message_streams_to_its_answer_and_is_kept_in_the_conversation() {
    let app = TestApp::with_chat(config()).await;
    let ann = app.register("ann@example.com").await;
    let (task, conversation) = send(&app, &ann, json!({"message": "hello there"})).await;
    let mut res = open_stream(&app, &ann, &task, None).await;
    let events = read(&mut res, |_| false).await;
    assert_eq!(kinds(&events), ["router", "final"]);
    let last = events.last().unwrap();
    assert_eq!(last.data["type"], "final");
    assert_eq!(last.data["text"], "You said: hello there");
    assert!(events.iter().all(|e| e.id.is_some()));

    let t = app.get(&format!("/api/v1/tasks/{task}"), &ann.access).await;
    assert_eq!(t.status, StatusCode::OK);
    assert_eq!(t.body["status"], "completed");
    assert_eq!(t.body["answer"], "You said: hello there");
    assert_eq!(t.body["run_id"], t.body["task_id"]);
    assert_eq!(t.body["conversation_id"], conversation.as_str());
    assert_eq!(t.body["router"]["intent"], "chat");
    assert!(t.body["confirmation"].is_null());

    let list = app.get("/api/v1/chat/conversations", &ann.access).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    let msgs = app
        .get(
            &format!("/api/v1/chat/conversations/{conversation}/messages"),
            &ann.access,
        )
        .await;
    let items = msgs.body["items"].as_array().unwrap();
    let roles: Vec<&str> = items.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["user", "assistant"]);
    let after = app
        .get(
            &format!("/api/v1/chat/conversations/{conversation}/messages?after_seq=1"),
            &ann.access,
        )
        .await;
    assert_eq!(after.body["items"].as_array().unwrap().len(), 1);

    // A second message in the same conversation.
    let (task2, conv2) = send(
        &app,
        &ann,
        json!({"conversation_id": conversation, "message": "take a note: buy milk"}),
    )
    .await;
    assert_eq!(conv2, conversation);
    let mut res = open_stream(&app, &ann, &task2, None).await;
    let events = read(&mut res, |_| false).await;
    assert_eq!(
        kinds(&events),
        ["router", "tools_selected", "tool_call", "final"]
    );
    assert_eq!(events.last().unwrap().data["text"], "Noted: buy milk.");
}

#[tokio::test]
async fn an_email_send_waits_for_confirmation_and_runs_exactly_once() {
    let app = TestApp::with_chat(config()).await;
    let ann = app.register("ann@example.com").await;
    let (task, _) = send(
        &app,
        &ann,
        json!({"message": "send an email to bob@example.com about lunch"}),
    )
    .await;
    let mut res = open_stream(&app, &ann, &task, None).await;
    let first = read(&mut res, |e| e.event == "awaiting_confirm").await;
    assert_eq!(
        kinds(&first),
        ["router", "tools_selected", "awaiting_confirm"]
    );
    let waiting = app.get(&format!("/api/v1/tasks/{task}"), &ann.access).await;
    assert_eq!(waiting.body["status"], "paused");
    let c = &waiting.body["confirmation"];
    assert_eq!(c["tool_id"], "email.send");
    assert!(c["preview"].as_str().unwrap().contains("bob@example.com"));
    assert_eq!(c["gate_id"], first.last().unwrap().data["gate_id"]);

    // A wrong gate is refused and changes nothing.
    let wrong = app
        .post(
            &format!("/api/v1/tasks/{task}/confirm"),
            &ann.access,
            json!({"gate_id": "nope", "approve": true}),
        )
        .await;
    assert!(wrong.status.is_client_error(), "{:?}", wrong.body);

    let ok = app
        .post(
            &format!("/api/v1/tasks/{task}/confirm"),
            &ann.access,
            json!({"gate_id": c["gate_id"], "approve": true}),
        )
        .await;
    assert_eq!(ok.status, StatusCode::ACCEPTED, "{:?}", ok.body);
    assert!(ok.body["status"].is_string());
    // The same stream goes on to the end.
    let rest: Vec<Sse> = read(&mut res, |_| false)
        .await
        .into_iter()
        .filter(|e| e.event != "delta")
        .collect();
    assert_eq!(kinds(&rest), ["tool_call", "final"]);
    assert_eq!(rest[0].data["tool_id"], "email.send");
    assert_eq!(rest[0].data["ok"], true);
    assert_eq!(rest[0].data["output"]["to"], "bob@example.com");
    assert_eq!(rest[1].data["text"], "Email sent to bob@example.com.");

    // The tool ran once: one tool call in the whole trace.
    let mut again = open_stream(&app, &ann, &task, None).await;
    let all = read(&mut again, |_| false).await;
    let calls = all.iter().filter(|e| e.event == "tool_call").count();
    assert_eq!(calls, 1);

    let audit = app
        .get("/api/v1/audit/logs?action=confirm", &ann.access)
        .await;
    let rows = audit.body.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{:?}", audit.body);
    assert_eq!(rows[0]["resource_id"], task.as_str());
}

#[tokio::test]
async fn a_refused_email_is_never_sent() {
    let app = TestApp::with_chat(config()).await;
    let ann = app.register("ann@example.com").await;
    let (task, _) = send(
        &app,
        &ann,
        json!({"message": "please send an email to eve@example.com"}),
    )
    .await;
    let mut res = open_stream(&app, &ann, &task, None).await;
    let first = read(&mut res, |e| e.event == "awaiting_confirm").await;
    let gate = first.last().unwrap().data["gate_id"].clone();
    let no = app
        .post(
            &format!("/api/v1/tasks/{task}/confirm"),
            &ann.access,
            json!({"gate_id": gate, "approve": false, "reason": "not now"}),
        )
        .await;
    assert_eq!(no.status, StatusCode::ACCEPTED, "{:?}", no.body);
    let rest = read(&mut res, |_| false).await;
    let last = rest.last().unwrap();
    assert_eq!(last.event, "final");
    assert!(last.data["text"]
        .as_str()
        .unwrap()
        .contains("did not do it"));
    assert!(rest
        .iter()
        .all(|e| !(e.event == "tool_call" && e.data["ok"] == true)));
    let audit = app.get("/api/v1/audit/logs?action=deny", &ann.access).await;
    let rows = audit.body.as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["changes"]["reason"], "not now");
}

#[tokio::test]
async fn a_dropped_stream_resumes_after_the_last_event_id() {
    let app = TestApp::with_chat(config()).await;
    let ann = app.register("ann@example.com").await;
    let (task, _) = send(&app, &ann, json!({"message": "take a note: call mum"})).await;
    let mut res = open_stream(&app, &ann, &task, None).await;
    let head = read(&mut res, |e| e.event == "router").await;
    let seen = head.last().unwrap().id.unwrap();
    drop(res);

    let mut res = open_stream(&app, &ann, &task, Some(seen)).await;
    let tail = read(&mut res, |_| false).await;
    assert_eq!(kinds(&tail), ["tools_selected", "tool_call", "final"]);
    assert!(tail.iter().all(|e| e.id.unwrap() > seen));

    // A full replay has every stored event once, ids increasing.
    let mut res = open_stream(&app, &ann, &task, None).await;
    let all = read(&mut res, |_| false).await;
    let ids: Vec<u64> = all.iter().filter_map(|e| e.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert_eq!(
        kinds(&all),
        ["router", "tools_selected", "tool_call", "final"]
    );

    let bad = app
        .http
        .get(format!("{}/api/v1/chat/stream?task_id={task}", app.base))
        .bearer_auth(&ann.access)
        .header("Last-Event-ID", "yesterday")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn every_role_chats_and_read_only_keys_only_read() {
    let app = TestApp::with_chat(config()).await;
    let admin = app.register("ann@example.com").await;
    for (email, role) in [
        ("dev@example.com", "developer"),
        ("use@example.com", "user"),
    ] {
        let who = app.add_user(&admin, email, role).await;
        let c = app
            .post(
                "/api/v1/chat/conversations",
                &who.access,
                json!({"title": role}),
            )
            .await;
        assert_eq!(c.status, StatusCode::CREATED, "{role}: {:?}", c.body);
        assert_eq!(c.body["title"], role);
        let (task, _) = send(&app, &who, json!({"message": "hi"})).await;
        let t = app.get(&format!("/api/v1/tasks/{task}"), &who.access).await;
        assert_eq!(t.status, StatusCode::OK);
    }
    let key = app
        .post(
            "/api/v1/auth/api-keys",
            &admin.access,
            json!({"name": "ro", "permissions": ["read"]}),
        )
        .await;
    assert_eq!(key.status, StatusCode::CREATED, "{:?}", key.body);
    let key = key.body["key"].as_str().unwrap();
    let listed = app.get("/api/v1/chat/conversations", key).await;
    assert_eq!(listed.status, StatusCode::OK);
    let sent = app
        .post("/api/v1/chat/send", key, json!({"message": "hi"}))
        .await;
    assert_eq!(sent.status, StatusCode::FORBIDDEN);
    let anonymous = app
        .call(Method::GET, "/api/v1/chat/conversations", None, None)
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        anonymous.headers["content-type"],
        "application/problem+json"
    );
}

#[tokio::test]
async fn bad_input_is_a_problem_not_a_crash() {
    let app = TestApp::with_chat(config()).await;
    let ann = app.register("ann@example.com").await;
    for body in [
        json!({"message": ""}),
        json!({"message": "a\u{0}b"}),
        json!({"message": "x", "extra": 1}),
        json!({"message": "x", "attachments": ["not-a-uuid"]}),
    ] {
        let a = app
            .post("/api/v1/chat/send", &ann.access, body.clone())
            .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{body}: {:?}", a.body);
    }
    let missing = app
        .post(
            "/api/v1/chat/send",
            &ann.access,
            json!({"message": "x", "conversation_id": "01a22c30-0000-7000-8000-00000000000f"}),
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    for path in [
        "/api/v1/chat/conversations?limit=0",
        "/api/v1/chat/conversations?limit=101",
        "/api/v1/chat/stream",
    ] {
        let a = app.get(path, &ann.access).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{path}");
    }
    let a = app.get("/api/v1/tasks/not-a-task", &ann.access).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn another_users_or_tenants_chat_is_not_found() {
    let app = TestApp::with_chat(config()).await;
    let ann = app.register("ann@example.com").await;
    let (task, conversation) = send(
        &app,
        &ann,
        json!({"message": "send an email to bob@example.com"}),
    )
    .await;
    let mut res = open_stream(&app, &ann, &task, None).await;
    let first = read(&mut res, |e| e.event == "awaiting_confirm").await;
    let gate = first.last().unwrap().data["gate_id"].clone();

    let bea = app.register("bea@example.com").await; // another tenant
    let colleague = app.add_user(&ann, "cat@example.com", "admin").await; // same tenant
    for other in [&bea, &colleague] {
        for path in [
            format!("/api/v1/chat/conversations/{conversation}/messages"),
            format!("/api/v1/tasks/{task}"),
            format!("/api/v1/chat/stream?task_id={task}"),
            format!("/api/v1/artifacts?task_id={task}"),
        ] {
            let a = app.get(&path, &other.access).await;
            assert_eq!(a.status, StatusCode::NOT_FOUND, "{}: {path}", other.email);
        }
        let send_there = app
            .post(
                "/api/v1/chat/send",
                &other.access,
                json!({"conversation_id": conversation, "message": "hi"}),
            )
            .await;
        assert_eq!(send_there.status, StatusCode::NOT_FOUND);
        let confirm = app
            .post(
                &format!("/api/v1/tasks/{task}/confirm"),
                &other.access,
                json!({"gate_id": gate, "approve": true}),
            )
            .await;
        assert_eq!(confirm.status, StatusCode::NOT_FOUND);
        let list = app.get("/api/v1/chat/conversations", &other.access).await;
        assert_eq!(list.body["items"], json!([]));
    }
    // Still waiting: nobody else confirmed it.
    let t = app.get(&format!("/api/v1/tasks/{task}"), &ann.access).await;
    assert_eq!(t.body["status"], "paused");
}

#[tokio::test]
async fn a_server_without_chat_answers_not_found() {
    let app = TestApp::start().await;
    let ann = app.register("ann@example.com").await;
    let a = app
        .post("/api/v1/chat/send", &ann.access, json!({"message": "hi"}))
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.body["detail"], "this server has no chat");
}

#[tokio::test]
async fn the_chat_works_on_postgres() {
    use std::sync::Arc;

    use logline_core::artifact::ObjectArtifactStore;
    use logline_postgres::{PgArtifactIndex, PgNoteStore};
    use logline_server::chat::ChatParts;
    use logline_server::store::PgServerStore;

    let (pg, _schema) = support::pg::fresh_backend().await;
    let pool = pg.pool().clone();
    let artifacts = ObjectArtifactStore::from_url(
        "memory:///",
        Vec::<(String, String)>::new(),
        Arc::new(PgArtifactIndex::new(pool.clone())),
    )
    .unwrap();
    let parts = ChatParts {
        store: Arc::new(pg.chat_store()),
        artifacts: Arc::new(artifacts),
        notes: Arc::new(PgNoteStore::new(pool.clone())),
    };
    let app = TestApp::chat_on(
        pg.engine_builder(),
        parts,
        Arc::new(PgServerStore::new(pool)),
        config(),
    )
    .await;
    let ann = app.register("ann@example.com").await;
    let (task, _) = send(&app, &ann, json!({"message": "take a note: pay rent"})).await;
    let mut res = open_stream(&app, &ann, &task, None).await;
    let events = read(&mut res, |_| false).await;
    assert_eq!(events.last().unwrap().data["text"], "Noted: pay rent.");
    let (scaffold, _) = send(&app, &ann, json!({"message": "make me a telegram bot"})).await;
    let mut res = open_stream(&app, &ann, &scaffold, None).await;
    read(&mut res, |_| false).await;
    let t = app
        .get(&format!("/api/v1/tasks/{scaffold}"), &ann.access)
        .await;
    let artifacts = t.body["artifacts"].as_array().unwrap();
    assert_eq!(artifacts.len(), 1, "{:?}", t.body);
    assert_eq!(artifacts[0]["content_type"], "application/zip");
    let bea = app.register("bea@example.com").await;
    let id = artifacts[0]["id"].as_str().unwrap();
    let theirs = app
        .get(&format!("/api/v1/artifacts/{id}/content"), &bea.access)
        .await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND);
}
