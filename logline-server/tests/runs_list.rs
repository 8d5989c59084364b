//! `GET /api/v1/runs` filters: status, workflow, creation time window, paging.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use reqwest::StatusCode;
use serde_json::{json, Value};
use support::{agent_definition, assert_problem, TestApp};

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|r| r["id"].as_str().expect("id").to_string())
        .collect()
}

fn query_time(ts: &str) -> String {
    ts.replace('+', "%2B")
}

#[tokio::test]
async fn a_time_window_pages_through_the_runs_created_in_it() {
    let app = TestApp::start().await;
    let a = app.register("ann@example.com").await;
    let mut started = Vec::new();
    for i in 0..23 {
        let r = app
            .post(
                "/api/v1/workflows/demo/runs",
                &a.access,
                json!({"input": {"i": i}}),
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
        started.push(r.id());
    }
    // Every run as the store holds it, newest first.
    let all = app.get("/api/v1/runs?limit=100", &a.access).await;
    let runs = all.body["items"].as_array().unwrap().clone();
    assert_eq!(runs.len(), 23);
    let created = |r: &Value| {
        r["created_at"]
            .as_str()
            .unwrap()
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap()
    };
    let after = created(&runs[17]);
    let before = created(&runs[4]);
    let expected: Vec<String> = runs
        .iter()
        .filter(|r| created(r) >= after && created(r) < before)
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert!(
        expected.len() >= 2,
        "the window holds runs: {}",
        expected.len()
    );

    let window = format!(
        "created_after={}&created_before={}",
        query_time(&after.to_rfc3339()),
        query_time(&before.to_rfc3339())
    );
    let mut paged = Vec::new();
    for page in 1.. {
        let p = app
            .get(
                &format!("/api/v1/runs?{window}&limit=5&page={page}"),
                &a.access,
            )
            .await;
        assert_eq!(p.status, StatusCode::OK, "{:?}", p.body);
        let got = ids(&p.body);
        let last = got.len() < 5;
        paged.extend(got);
        if last {
            break;
        }
    }
    assert_eq!(paged, expected);

    let only_after = app
        .get(
            &format!(
                "/api/v1/runs?created_after={}&limit=100",
                query_time(&after.to_rfc3339())
            ),
            &a.access,
        )
        .await;
    let want: Vec<String> = runs
        .iter()
        .filter(|r| created(r) >= after)
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids(&only_after.body), want);

    let only_before = app
        .get(
            &format!(
                "/api/v1/runs?created_before={}&limit=100",
                query_time(&before.to_rfc3339())
            ),
            &a.access,
        )
        .await;
    let want: Vec<String> = runs
        .iter()
        .filter(|r| created(r) < before)
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids(&only_before.body), want);

    let empty = app
        .get(
            &format!(
                "/api/v1/runs?created_after={}&created_before={}",
                query_time(&before.to_rfc3339()),
                query_time(&after.to_rfc3339())
            ),
            &a.access,
        )
        .await;
    assert_eq!(ids(&empty.body), Vec::<String>::new());
    for id in started {
        app.engine.wait(id.parse().unwrap()).await.unwrap();
    }
}

#[tokio::test]
async fn filters_combine_and_stay_in_the_tenant() {
    let app = TestApp::start().await;
    let a = app.register("ann@example.com").await;
    let b = app.register("bob@example.com").await;
    let other = app.workflow(&a.access, agent_definition()).await;
    let mut mine = Vec::new();
    for wf in ["demo", other.as_str(), "demo"] {
        let r = app
            .post(
                &format!("/api/v1/workflows/{wf}/runs"),
                &a.access,
                json!({}),
            )
            .await;
        mine.push(r.id());
    }
    let theirs = app
        .post("/api/v1/workflows/demo/runs", &b.access, json!({}))
        .await
        .id();
    for id in mine.iter().chain([&theirs]) {
        app.engine.wait(id.parse().unwrap()).await.unwrap();
    }
    let old = "2000-01-01T00:00:00Z";
    let demo = app
        .get(
            &format!("/api/v1/runs?workflow_id=demo&status=completed&created_after={old}"),
            &a.access,
        )
        .await;
    let mut got = ids(&demo.body);
    got.sort();
    let mut want = vec![mine[0].clone(), mine[2].clone()];
    want.sort();
    assert_eq!(got, want);
    let theirs_seen = app
        .get(
            &format!("/api/v1/runs?created_after={old}&limit=100"),
            &b.access,
        )
        .await;
    assert_eq!(ids(&theirs_seen.body), vec![theirs]);
    let none_yet = app
        .get(&format!("/api/v1/runs?created_before={old}"), &a.access)
        .await;
    assert_eq!(ids(&none_yet.body), Vec::<String>::new());
}

#[tokio::test]
async fn a_malformed_time_is_a_problem() {
    let app = TestApp::start().await;
    let a = app.register("ann@example.com").await;
    for q in [
        "created_after=yesterday",
        "created_before=2026-13-01T00:00:00Z",
        "created_after=%00",
    ] {
        assert_problem(
            &app.get(&format!("/api/v1/runs?{q}"), &a.access).await,
            StatusCode::BAD_REQUEST,
        );
    }
}
