//! Separate processes on PostgreSQL: `serve` (no workers) and two `worker`s. A run started
//! over HTTP completes on a worker and streams to the client; killing the worker in the
//! middle of the run loses nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::process::{Child, Command};

fn spawn(args: &[&str], schema: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_logline-server"))
        .args(args)
        .env("DATABASE_URL", support::pg::database_url())
        .env("LOGLINE_PG_SCHEMA", schema)
        .env("LOGLINE_JWT_SECRET", "processes-test-secret")
        .env("LOGLINE_RATE_LIMIT_PER_MINUTE", "0")
        .env("RUST_LOG", "warn")
        .env_remove("OPENAI_API_KEY")
        .env_remove("COMPOSIO_API_KEY")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// SSE events (`id`, `event`, parsed data) read from `res` until `stop`.
async fn read_until(
    res: &mut reqwest::Response,
    buf: &mut String,
    stop: impl Fn(&str, &Value) -> bool,
) -> Vec<(u64, String, Value)> {
    let mut out = Vec::new();
    loop {
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let (mut id, mut event, mut data) = (None, String::new(), String::new());
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id: ") {
                    id = v.parse::<u64>().ok();
                }
                if let Some(v) = line.strip_prefix("event: ") {
                    event = v.to_string();
                }
                if let Some(v) = line.strip_prefix("data: ") {
                    data.push_str(v);
                }
            }
            if let Some(id) = id {
                let data: Value = serde_json::from_str(&data).unwrap();
                let done = stop(&event, &data);
                out.push((id, event, data));
                if done {
                    return out;
                }
            }
        }
        match res.chunk().await.unwrap() {
            Some(chunk) => buf.push_str(std::str::from_utf8(&chunk).unwrap()),
            None => return out,
        }
    }
}

#[tokio::test]
async fn serve_and_two_workers_share_runs_and_survive_a_killed_worker() {
    let (_backend, schema) = support::pg::fresh_backend().await;
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let _serve = spawn(&["serve", "--no-workers", "--listen", &listen], &schema);
    let base = format!("http://{listen}");
    let http = reqwest::Client::new();
    let mut up = false;
    for _ in 0..100 {
        if http.get(format!("{base}/healthz")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "serve did not come up");

    let reg: Value = http
        .post(format!("{base}/api/v1/auth/register"))
        .json(&json!({"email": "ann@example.com", "password": "password-123"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = reg["access_token"].as_str().unwrap().to_string();
    let wf: Value = http.post(format!("{base}/api/v1/workflows")).bearer_auth(&token)
        .json(&json!({"name": "slow", "definition": {
            "entry": "wait",
            "nodes": [
                {"id": "wait", "type": "tool_node", "config": {"tool_id": "wait", "input": {"ms": 3000}}},
                {"id": "answer", "type": "agent_node", "config": {"agent_id": "demo-assistant"}}
            ],
            "edges": [{"from": "wait", "to": "answer"}]
        }}))
        .send().await.unwrap().json().await.unwrap();
    let wf = wf["id"].as_str().expect("workflow id").to_string();

    let mut worker_a = spawn(&["worker", "--lease-secs", "2"], &schema);
    let started = http
        .post(format!("{base}/api/v1/workflows/{wf}/runs"))
        .bearer_auth(&token)
        .json(&json!({"input": {"q": "durable"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), StatusCode::ACCEPTED);
    let run: Value = started.json().await.unwrap();
    let id = run["id"].as_str().unwrap().to_string();

    let mut stream = http
        .get(format!("{base}/api/v1/runs/{id}/stream"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    let mut buf = String::new();
    // Worker A is the only one: it claims the run and starts the slow tool step.
    let first = tokio::time::timeout(
        Duration::from_secs(30),
        read_until(&mut stream, &mut buf, |e, _| e == "step_started"),
    )
    .await
    .expect("worker A started the run");
    tokio::time::sleep(Duration::from_millis(500)).await;
    worker_a.kill().await.unwrap();

    // Worker B takes over after A's lease expires; the client's stream goes on to the end.
    let _worker_b = spawn(&["worker", "--lease-secs", "2"], &schema);
    let rest = tokio::time::timeout(
        Duration::from_secs(60),
        read_until(&mut stream, &mut buf, |e, _| e == "run_completed"),
    )
    .await
    .expect("worker B completed the run");
    let events: Vec<&(u64, String, Value)> = first.iter().chain(&rest).collect();
    let ids: Vec<u64> = events.iter().map(|e| e.0).collect();
    assert_eq!(
        ids,
        (1..=ids.len() as u64).collect::<Vec<_>>(),
        "no gap, no duplicate"
    );
    assert_eq!(events.last().unwrap().1, "run_completed");
    let steps_started = events.iter().filter(|e| e.1 == "step_started").count();
    assert_eq!(steps_started, 2, "each step once in the trace");
    assert_eq!(events.iter().filter(|e| e.1 == "tool_call").count(), 1);

    let done: Value = http
        .get(format!("{base}/api/v1/runs/{id}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(done["status"], "completed");
    assert_eq!(done["result"]["text"], "You said: {\"waited_ms\":3000}");
}
