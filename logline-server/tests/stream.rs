//! The run event stream (SSE): every event once, in order, resumable with `Last-Event-ID`
//! after a dropped connection; graceful shutdown ends open streams.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use reqwest::StatusCode;
use serde_json::{json, Value};
use support::{gated_definition, sse, TestApp};

/// One numbered SSE event of the run.
#[derive(Debug)]
struct Sse {
    id: u64,
    event: String,
    data: Value,
}

/// Reads the run's numbered events (unnumbered ones are skipped) until `stop` says so or the
/// stream ends.
async fn read(res: &mut reqwest::Response, stop: impl Fn(&Sse) -> bool) -> Vec<Sse> {
    let numbered = |e: &sse::Sse| {
        e.id.map(|id| Sse {
            id,
            event: e.event.clone(),
            data: e.data.clone(),
        })
    };
    sse::read(res, |e| numbered(e).is_some_and(|e| stop(&e)))
        .await
        .iter()
        .filter_map(numbered)
        .collect()
}

#[tokio::test]
async fn a_dropped_stream_resumes_after_the_last_event_id() {
    let app = TestApp::start().await;
    let a = app.register("ann@example.com").await;
    let wf = app.workflow(&a.access, gated_definition()).await;
    let started = app
        .post(
            &format!("/api/v1/workflows/{wf}/runs"),
            &a.access,
            json!({"input": {"n": 1}}),
        )
        .await;
    let id = started.id();
    let url = format!("{}/api/v1/runs/{id}/stream", app.base);

    // First connection: read up to the pause, then drop it.
    let mut res = app
        .http
        .get(&url)
        .bearer_auth(&a.access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let first = read(&mut res, |e| {
        e.event == "human_gate" || e.event == "run_paused"
    })
    .await;
    drop(res);
    let last = first.last().unwrap().id;

    let run = app.get(&format!("/api/v1/runs/{id}"), &a.access).await;
    let gate = run.body["pending_gate"]["gate_id"]
        .as_str()
        .unwrap()
        .to_string();
    let ok = app
        .post(
            &format!("/api/v1/runs/{id}/approve"),
            &a.access,
            json!({"gate_id": gate}),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK);

    // Second connection resumes after the last event seen and ends with the run.
    let mut res = app
        .http
        .get(&url)
        .bearer_auth(&a.access)
        .header("last-event-id", last.to_string())
        .send()
        .await
        .unwrap();
    let rest = read(&mut res, |_| false).await;
    assert_eq!(rest.first().unwrap().id, last + 1);
    assert_eq!(rest.last().unwrap().event, "run_completed");

    let seen: Vec<u64> = first.iter().chain(&rest).map(|e| e.id).collect();
    let expected: Vec<u64> = (1..=seen.len() as u64).collect();
    assert_eq!(seen, expected, "every event once, in order");
    let stored = app
        .get(&format!("/api/v1/runs/{id}/events"), &a.access)
        .await;
    let stored: Vec<&Value> = stored.body.as_array().unwrap().iter().collect();
    assert_eq!(stored.len(), seen.len());
    for (e, s) in first.iter().chain(&rest).zip(stored) {
        assert_eq!(&e.data, s);
        assert_eq!(e.event, s["kind"].as_str().unwrap());
    }

    // `?after=` resumes too; a bad Last-Event-ID is a 400.
    let mut res = app
        .http
        .get(format!("{url}?after={}", seen.len() - 1))
        .bearer_auth(&a.access)
        .send()
        .await
        .unwrap();
    let tail = read(&mut res, |_| false).await;
    assert_eq!(tail.len(), 1);
    let bad = app
        .http
        .get(&url)
        .bearer_auth(&a.access)
        .header("last-event-id", "x")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn shutdown_ends_open_streams() {
    let app = TestApp::start().await;
    let a = app.register("ann@example.com").await;
    let wf = app.workflow(&a.access, gated_definition()).await;
    let paused = app.run_to_rest(&a.access, &wf, json!({})).await;
    let id = paused["id"].as_str().unwrap();
    let mut res = app
        .http
        .get(format!("{}/api/v1/runs/{id}/stream", app.base))
        .bearer_auth(&a.access)
        .send()
        .await
        .unwrap();
    let before = read(&mut res, |e| e.event == "run_paused").await;
    assert!(!before.is_empty());
    app.shutdown.cancel();
    // The paused run's stream would stay open; shutdown ends it and the server drains.
    let rest = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        read(&mut res, |_| false),
    )
    .await
    .unwrap();
    assert!(rest.is_empty());
    tokio::time::timeout(std::time::Duration::from_secs(10), app.served)
        .await
        .unwrap()
        .unwrap();
}
