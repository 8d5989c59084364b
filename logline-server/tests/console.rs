//! The web console's files: served at `/` with a strict Content-Security-Policy, and gone
//! when the config turns the console off.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use reqwest::StatusCode;
use support::{config, TestApp};

#[tokio::test]
async fn the_console_is_served_with_a_strict_policy() {
    let app = TestApp::start().await;
    let page = app.http.get(format!("{}/", app.base)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    let html = page.text().await.unwrap();
    assert!(html.contains("src=\"/console/app.js\""));
    assert!(!html.contains("<script>"), "no inline script");
    assert!(!html.contains("style="), "no inline style");

    for (file, kind) in [
        ("app.js", "text/javascript"),
        ("chat.js", "text/javascript"),
        ("style.css", "text/css"),
    ] {
        let res = app
            .http
            .get(format!("{}/console/{file}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{file}");
        assert!(res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with(kind));
        assert!(res.headers().contains_key("content-security-policy"));
    }
    for missing in [
        "/console/nope.js",
        "/console/..%2Fsrc%2Flib.rs",
        "/console/",
    ] {
        let res = app
            .http
            .get(format!("{}{missing}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{missing}");
    }
}

#[tokio::test]
async fn the_config_turns_the_console_off() {
    let app = TestApp::with(support::ServerConfig {
        console: false,
        ..config()
    })
    .await;
    for path in ["/", "/console/app.js"] {
        let res = app
            .http
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let health = app
        .http
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK, "the API stays");
}
