//! Metrics over HTTP: the engine's and the server's metrics in Prometheus text and JSON after
//! a run, and the worker's scrape endpoint. (Its own test binary: metrics are per process.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use logline_server::metrics::{exporter_router, parse, Metrics};
use reqwest::StatusCode;
use serde_json::json;
use support::TestApp;

/// The value of the series `name{labels}` (labels exactly as rendered), if present.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn a_run_over_http_shows_in_prometheus_text_and_json() {
    let app = TestApp::start().await;
    let ann = app.register("ann@example.com").await;
    let before = app
        .get("/api/v1/metrics?format=prometheus", &ann.access)
        .await;
    let before = before.body.as_str().unwrap().to_string();
    let completed = "logline_runs_total{status=\"completed\"}";
    let done_before = value(&before, completed).unwrap_or(0.0);

    let run = app
        .run_to_rest(&ann.access, "demo", json!({"message": "hi"}))
        .await;
    assert_eq!(run["status"], "completed", "{run}");

    let prom = app
        .get("/api/v1/metrics?format=prometheus", &ann.access)
        .await;
    assert_eq!(prom.status, StatusCode::OK);
    assert!(prom.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = prom.body.as_str().unwrap();
    assert_eq!(value(text, completed), Some(done_before + 1.0), "{text}");
    assert!(value(text, "logline_runs_started_total").unwrap() >= 1.0);
    assert!(
        text.contains("# TYPE logline_step_duration_seconds histogram"),
        "{text}"
    );
    let agent_steps = value(
        text,
        "logline_step_duration_seconds_bucket{kind=\"agent_node\",le=\"+Inf\"}",
    );
    assert!(agent_steps.unwrap() >= 1.0, "{text}");
    assert!(text.contains("logline_step_duration_seconds_bucket{kind=\"agent_node\",le=\"0.005\"}"));
    assert!(text.contains(
        "logline_http_request_duration_seconds_bucket{route=\"/api/v1/workflows/{id}/runs\",le=\"0.25\"}"
    ));
    assert!(
        text.contains("logline_llm_calls_total{provider=\"default\""),
        "{text}"
    );
    assert!(
        value(text, "logline_queue_depth{queue=\"logline.runs\"}").is_some(),
        "{text}"
    );

    let json = app.get("/api/v1/metrics", &ann.access).await;
    assert_eq!(json.status, StatusCode::OK);
    let samples = json.body["samples"].as_array().unwrap();
    assert!(samples.iter().any(|s| s["name"] == "logline_runs_total"
        && s["labels"]["status"] == "completed"
        && s["value"].as_f64().unwrap() >= 1.0));
    assert!(json.body["requests"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["route"] == "/api/v1/workflows/{id}/runs"
            && r["method"] == "POST"
            && r["status"] == 202));
    assert!(json.body["counters"]["runs_started"].as_u64().unwrap() >= 1);
}

#[tokio::test]
async fn the_worker_endpoint_serves_the_process_metrics_without_a_token() {
    let metrics = Metrics::global();
    assert!(metrics.is_available());
    metrics.count("probe");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, exporter_router(metrics))
            .await
            .unwrap()
    });
    let http = reqwest::Client::new();
    let scraped = http
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(scraped.status(), StatusCode::OK);
    let text = scraped.text().await.unwrap();
    let probes = parse(&text)
        .into_iter()
        .find(|s| s.name == "logline_http_probe_total")
        .expect("the probe counter");
    assert!(probes.value >= 1.0);
    let health = http
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let other = http
        .get(format!("http://{addr}/api/v1/runs"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        other.status(),
        StatusCode::NOT_FOUND,
        "only metrics and health are served"
    );
}
