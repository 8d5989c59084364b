//! `McpServer` with the official Python SDK (`mcp` on PyPI) as its client, over stdio and
//! streamable HTTP: list tools, call a workflow following its progress, answer the human
//! gate's elicitation, get the result, resume a run by id. And with LogLine's own hub as a
//! client without elicitation: the gate answers "paused, awaiting approval".
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../src/bin/fixture/demo.rs"]
mod demo;
mod support;

use std::sync::Arc;

use logline_core::engine::Principal;
use logline_core::store::RunFilter;
use logline_core::tool::ToolHub;
use logline_mcp::{HttpAuth, McpServerConfig, McpToolHub};
use serde_json::{json, Value};

fn client_script() -> String {
    format!("{}/tests/python/client.py", env!("CARGO_MANIFEST_DIR"))
}

async fn python(args: &[String]) -> Value {
    let out = tokio::process::Command::new("python3")
        .arg(client_script())
        .args(args)
        .output()
        .await
        .expect("python3 runs (scripts/test installs the `mcp` package)");
    assert!(
        out.status.success(),
        "python client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn check(out: &Value) {
    assert_eq!(
        out["tools"],
        json!(["logline_run_status", "publish_note", "word_count"])
    );
    assert_eq!(out["schemas"]["word_count"], demo::note_schema());
    let wc = &out["word_count"];
    assert_eq!(wc["is_error"], false, "{wc}");
    assert_eq!(wc["structured"]["status"], "completed");
    assert_eq!(wc["structured"]["result"]["words"], 3);
    let progress = out["progress"].as_array().unwrap();
    assert!(!progress.is_empty(), "progress was reported");
    assert!(progress[0]["message"].as_str().unwrap().contains("count"));
    assert_eq!(out["invalid"]["is_error"], true);
    assert!(out["invalid"]["text"][0]
        .as_str()
        .unwrap()
        .contains("do not match its schema"));
    assert_eq!(
        out["elicitations"],
        json!(vec!["Approve? Publish the note?"; 3]),
        "one elicitation per gate"
    );
    // Answered "no" (a form with approve: false, or declined): the run ends denied and the
    // publishing step never runs.
    for (answer, reason) in [
        ("denied", "no from python"),
        ("declined", "declined by the MCP client"),
    ] {
        let run = &out[answer]["structured"];
        assert_eq!(run["status"], "failed", "{answer}: {run}");
        assert!(run["error"].to_string().contains(reason), "{answer}: {run}");
        assert!(
            run.get("result").is_none_or(Value::is_null),
            "{answer}: {run}"
        );
    }
    let publish = &out["publish"]["structured"];
    assert_eq!(publish["status"], "completed", "{publish}");
    assert_eq!(publish["result"], json!({"published": true, "words": 3}));
    assert_eq!(out["status"]["structured"]["run_id"], publish["run_id"]);
    assert_eq!(out["status"]["structured"]["status"], "completed");
    assert_eq!(out["unknown_run"]["is_error"], true);
}

#[tokio::test]
async fn python_client_over_stdio() {
    let out = python(&[
        "stdio".into(),
        support::FIXTURE.into(),
        "--demo-engine".into(),
    ])
    .await;
    check(&out);
}

#[tokio::test]
async fn python_client_over_http() {
    let (engine, workers, server) = demo::demo().await.unwrap();
    let auth: HttpAuth = Arc::new(
        |headers| match headers.get("authorization")?.to_str().ok()? {
            "Bearer token-t1" => Some(Principal::user("t1", "u1").with_role("approver")),
            _ => None,
        },
    );
    let router = server.router(auth, Vec::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = tokio::spawn(async move { axum::serve(listener, router).await });
    let url = format!("http://127.0.0.1:{}/mcp", addr.port());

    let out = python(&["http".into(), url, "token-t1".into()]).await;
    check(&out);
    // The runs belong to the authenticated principal's tenant.
    let runs = engine
        .list_runs(&RunFilter {
            tenant_id: Some("t1".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        runs.len(),
        4,
        "word_count and three publish_note; the invalid call started none"
    );
    assert!(runs
        .iter()
        .all(|r| r.subject.user_id.as_deref() == Some("u1")));

    // Without a known token: 401.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    let req = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer wrong\r\n\
         Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut resp = String::new();
    conn.read_to_string(&mut resp).await.unwrap();
    assert!(resp.starts_with("HTTP/1.1 401"), "{resp}");
    serving.abort();
    workers.shutdown().await;
}

/// LogLine's hub as the client: it does not support elicitation, so the gate is reported
/// as "paused, awaiting approval" with the run id, and the run waits.
#[tokio::test]
async fn clients_without_elicitation_get_a_paused_result() {
    let config = McpServerConfig::stdio("logline", support::FIXTURE, ["--demo-engine"]);
    let hub = McpToolHub::new([config]).unwrap();
    let out = hub
        .execute(
            "logline.publish_note",
            json!({"text": "a b"}),
            &support::ctx(),
        )
        .await
        .unwrap();
    assert_eq!(out["status"], "paused, awaiting approval", "{out}");
    assert!(out["gate"]["gate_id"].is_string(), "{out}");
    let run_id = out["run_id"].as_str().unwrap();
    let again = hub
        .execute(
            "logline.logline_run_status",
            json!({"run_id": run_id}),
            &support::ctx(),
        )
        .await
        .unwrap();
    assert_eq!(again["status"], "paused, awaiting approval");
    assert_eq!(again["run_id"], run_id);
}
