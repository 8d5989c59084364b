//! The web console in a real browser: headless Chromium over WebDriver against the
//! zero-configuration server in this process. Each step leaves a screenshot under
//! `target/console-screenshots/`; each page passes axe-core without serious or critical
//! violations. Needs the Debian packages `chromium` and `chromium-driver` and axe-core in
//! `target/npm` (scripts/test installs them).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod browser;

use browser::{Browser, ConsoleServer, ADMIN_EMAIL, ADMIN_PASSWORD};
use logline_server::ServerConfig;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const HOSTILE_IMG: &str = "<img src=x onerror=\"window.__xss=1\">";
const HOSTILE_SCRIPT: &str = "<script>window.__xss=2</script>";

async fn sign_in(b: &mut Browser, base: &str) {
    b.goto(&format!("{base}/")).await;
    b.fill("#email", ADMIN_EMAIL).await;
    b.fill("#password", ADMIN_PASSWORD).await;
    b.click("#signin").await;
    b.wait_text("#who", ADMIN_EMAIL).await;
}

/// No script ran from data and no markup was made from it.
async fn assert_no_injection(b: &Browser) {
    let v = b
        .client
        .execute(
            "return [typeof window.__xss, document.querySelectorAll('main img, main script').length];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(v, json!(["undefined", 0]), "data became markup");
}

/// The console's requests carried no credential in a URL.
fn assert_no_secret_in_urls(server: &ConsoleServer) {
    let seen = server.seen.lock().unwrap();
    assert!(!seen.bearers.is_empty(), "the console sent bearer tokens");
    for target in &seen.targets {
        let lower = target.to_ascii_lowercase();
        for word in ["token", "password", "eyj", "api_key", "apikey"] {
            assert!(!lower.contains(word), "`{word}` in a URL: {target}");
        }
        for bearer in &seen.bearers {
            assert!(
                !target.contains(bearer.as_str()),
                "a token in a URL: {target}"
            );
        }
    }
}

async fn start_run(server: &ConsoleServer, token: &str, workflow: &str, input: Value) -> String {
    let run = server
        .call(
            Method::POST,
            &format!("/api/v1/workflows/{workflow}/runs"),
            token,
            Some(json!({"input": input})),
        )
        .await;
    run["id"].as_str().unwrap().to_string()
}

async fn rows(b: &Browser, css: &str) -> usize {
    b.client
        .execute(
            "return document.querySelectorAll(arguments[0]).length;",
            vec![json!(css)],
        )
        .await
        .unwrap()
        .as_u64()
        .unwrap() as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_and_workflows_from_sign_in_to_sign_out() {
    let server = ConsoleServer::start().await;
    let base = server.base.clone();
    let token = server.token(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let gated = server
        .call(
            Method::POST,
            "/api/v1/workflows",
            &token,
            Some(json!({"name": "Needs approval", "definition": {
                "entry": "gate",
                "nodes": [
                    {"id": "gate", "type": "human_gate", "config": {"message": "Send it?"}},
                    {"id": "answer", "type": "agent_node", "config": {"agent_id": "demo-assistant"}}
                ],
                "edges": [{"from": "gate", "to": "answer"}]
            }})),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let hostile = server
        .call(
            Method::POST,
            "/api/v1/workflows",
            &token,
            Some(json!({"name": "Echo hostile text", "definition": {
                "entry": "echo",
                "nodes": [{"id": "echo", "type": "tool_node", "config": {"tool_id": "echo",
                    "input": {"note": HOSTILE_IMG, "script": HOSTILE_SCRIPT}}}]
            }})),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    for i in 0..21 {
        start_run(&server, &token, "demo", json!({"i": i})).await;
    }

    let mut b = Browser::open("runs-and-workflows").await;
    b.goto(&format!("{base}/")).await;
    b.find("#email").await;
    b.shot("sign-in").await;
    b.assert_accessible("sign-in").await;
    // The check finds what it should: an image without a text alternative is critical.
    b.client
        .execute(
            "const i = document.createElement('img'); i.id = 'probe'; i.src = 'data:,';
             document.querySelector('main').append(i);",
            vec![],
        )
        .await
        .unwrap();
    let found = b.serious_violations().await;
    assert!(
        found.iter().any(|v| v["id"] == "image-alt"),
        "axe-core missed an image without alt: {found:?}"
    );
    b.client
        .execute("document.getElementById('probe').remove();", vec![])
        .await
        .unwrap();

    b.fill("#email", ADMIN_EMAIL).await;
    b.fill("#password", "not-the-password").await;
    b.click("#signin").await;
    b.wait_text("form .error", "wrong email or password").await;
    b.shot("sign-in-refused").await;

    b.fill("#password", ADMIN_PASSWORD).await;
    b.click("#signin").await;
    b.wait_text("#who", ADMIN_EMAIL).await;
    b.shot("signed-in").await;

    b.click("a[data-view=workflows]").await;
    b.wait_text("#workflows-table", "Needs approval").await;
    b.shot("workflows").await;
    b.assert_accessible("workflows").await;

    b.click(&format!("a[href='#/workflows/{gated}']")).await;
    b.find("#graph").await;
    assert_eq!(rows(&b, "#graph g.node").await, 2);
    assert_eq!(rows(&b, "#graph path.edge").await, 1);
    b.wait_text("#edge-list", "gate → answer").await;
    b.shot("workflow-graph").await;
    b.assert_accessible("workflow").await;

    b.fill("#run-input", "not json").await;
    b.click("#start-run").await;
    b.wait_text("#start-error", "not JSON").await;
    b.fill("#run-input", r#"{"topic": "console"}"#).await;
    b.click("#start-run").await;
    b.wait_text("#gate", "Waiting for approval").await;
    b.wait_text("#timeline", "run paused").await;
    b.shot("run-paused").await;
    b.assert_accessible("run paused").await;

    b.click("#approve").await;
    b.wait_text("#run-status", "completed").await;
    b.wait_text("#timeline", "llm call").await;
    let trace = b.wait_text("#timeline", "run completed").await;
    assert!(trace.contains("Tokens in"), "{trace}");
    assert!(trace.contains("run resumed"), "{trace}");
    assert!(!b.exists("#approve").await && !b.exists("#cancel").await);
    b.shot("run-approved").await;

    let denied = start_run(&server, &token, &gated, json!({})).await;
    b.goto(&format!("{base}/#/runs/{denied}")).await;
    b.click("#deny").await;
    b.wait_text("#run-status", "failed").await;
    b.shot("run-denied").await;

    let cancelled = start_run(&server, &token, &gated, json!({})).await;
    b.goto(&format!("{base}/#/runs/{cancelled}")).await;
    b.find("#approve").await;
    b.click("#cancel").await;
    b.wait_text("#run-status", "cancelled").await;
    b.wait_text("#timeline", "run cancelled").await;
    b.shot("run-cancelled").await;

    b.click("a[data-view=runs]").await;
    b.find("#runs-table").await;
    assert_eq!(rows(&b, "#runs-table tbody tr").await, 20);
    b.shot("runs-page-1").await;
    b.assert_accessible("runs").await;
    b.click("#page-next").await;
    b.wait_text("#page-now", "Page 2").await;
    assert!(rows(&b, "#runs-table tbody tr").await >= 4);
    b.shot("runs-page-2").await;

    b.find("#f-status")
        .await
        .select_by_value("cancelled")
        .await
        .unwrap();
    b.click("#f-apply").await;
    b.wait_text("#page-now", "Page 1").await;
    b.wait_text("#runs-table", &cancelled).await;
    assert_eq!(rows(&b, "#runs-table tbody tr").await, 1);
    b.shot("runs-cancelled").await;

    b.find(&format!("#f-workflow option[value='{gated}']"))
        .await;
    b.find("#f-workflow")
        .await
        .select_by_value(&gated)
        .await
        .unwrap();
    b.find("#f-status").await.select_by_value("").await.unwrap();
    b.click("#f-apply").await;
    b.wait_text("#runs-table", &denied).await;
    assert_eq!(rows(&b, "#runs-table tbody tr").await, 3);

    let later = (chrono::Utc::now() + chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    b.goto(&format!("{base}/#/runs?created_after={later}"))
        .await;
    b.wait_text("#runs-empty", "No runs match").await;
    let earlier = "2000-01-01T00:00:00Z";
    b.goto(&format!(
        "{base}/#/runs?created_after={earlier}&status=failed"
    ))
    .await;
    b.wait_text("#runs-table", &denied).await;
    b.shot("runs-time-window").await;

    let echo = start_run(&server, &token, &hostile, json!({})).await;
    b.goto(&format!("{base}/#/runs/{echo}")).await;
    b.wait_text("#run-status", "completed").await;
    let trace = b.wait_text("#timeline", "Tool echo").await;
    assert!(trace.contains(HOSTILE_SCRIPT), "{trace}");
    assert!(trace.contains("onerror=\\\"window.__xss=1\\\""), "{trace}");
    assert_no_injection(&b).await;
    b.shot("hostile-output-as-text").await;
    b.assert_accessible("run with tool output").await;

    b.client.set_window_size(375, 800).await.unwrap();
    for (page, ready) in [
        (format!("#/runs/{echo}"), "#timeline li"),
        (format!("#/workflows/{gated}"), "#graph"),
        ("#/runs".to_string(), "#runs-table"),
    ] {
        b.goto(&format!("{base}/{page}")).await;
        b.find(ready).await;
        let (needed, has) = b.widths().await;
        assert!(needed <= has, "{page} at 375px needs {needed}px");
        let name = page
            .trim_start_matches("#/")
            .split('/')
            .next()
            .unwrap_or("page");
        b.shot(&format!("narrow-{name}")).await;
    }

    let last_token = server.seen.lock().unwrap().bearers.last().cloned().unwrap();
    b.click("#signout").await;
    b.find("#email").await;
    b.shot("signed-out").await;
    let me = server
        .http
        .get(format!("{base}/api/v1/auth/me"))
        .bearer_auth(&last_token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        me.status(),
        StatusCode::UNAUTHORIZED,
        "sign-out ends the session"
    );

    assert_no_secret_in_urls(&server);
    b.close().await;
    server.stop().await;
}

/// The text of the answer of the last chat turn.
async fn last_answer(b: &Browser) -> String {
    b.client
        .execute(
            "const t = document.querySelectorAll('#messages li[data-task] > span.text');
             return t.length ? t[t.length - 1].textContent : '';",
            vec![],
        )
        .await
        .unwrap()
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Sends `text` from the chat panel and waits for the confirmation card.
async fn ask_for_email(b: &mut Browser) -> String {
    b.fill("#chat-message", "send an email to x@y.z saying hi")
        .await;
    b.click("#chat-send").await;
    b.wait_text("#messages", "Router").await;
    b.wait_text("#messages", "Tools selected").await;
    let card = b.wait_text(".card.confirm", "x@y.z").await;
    assert!(card.contains("email.send"), "{card}");
    assert!(card.contains("Confirm") && card.contains("Deny"), "{card}");
    card
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_confirms_an_email_and_finds_the_call_in_the_run_trace() {
    let server = ConsoleServer::start().await;
    let base = server.base.clone();
    let mut b = Browser::open("chat-confirm").await;
    sign_in(&mut b, &base).await;
    b.find("#chat-message").await;
    b.shot("chat").await;
    b.assert_accessible("chat").await;

    ask_for_email(&mut b).await;
    b.shot("confirmation").await;
    b.assert_accessible("chat confirmation").await;

    b.click(".confirm-yes").await;
    b.wait_text(".decision", "Confirmed").await;
    b.find("a.open-run").await;
    b.wait_text("#messages", "Tool email.send: done").await;
    let answer = last_answer(&b).await;
    assert!(answer.contains("x@y.z"), "the final answer: {answer:?}");
    b.shot("answer").await;

    b.click("a.open-run").await;
    let trace = b.wait_text("#timeline", "Tool email.send").await;
    assert!(trace.contains("x@y.z"), "{trace}");
    b.shot("run-trace").await;
    b.assert_accessible("chat run trace").await;

    b.click("a[data-view=chat]").await;
    b.click("#conversations a").await;
    b.wait_text("#messages", "send an email to x@y.z saying hi")
        .await;
    b.wait_text("#messages", "x@y.z.").await;
    b.shot("conversation-reopened").await;

    assert_no_secret_in_urls(&server);
    b.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_denies_an_email_and_shows_hostile_text_as_text() {
    let server = ConsoleServer::start().await;
    let base = server.base.clone();
    let mut b = Browser::open("chat-deny").await;
    sign_in(&mut b, &base).await;

    ask_for_email(&mut b).await;
    b.click(".confirm-no").await;
    b.wait_text(".decision", "Denied").await;
    b.find("a.open-run").await;
    let answer = last_answer(&b).await;
    assert!(answer.contains("did not do it"), "the refusal: {answer:?}");
    let thread = b.wait_text("#messages", "did not do it").await;
    assert!(!thread.contains("Tool email.send: done"), "{thread}");
    b.shot("refused").await;
    b.assert_accessible("chat refusal").await;

    let note = format!("take a note: {HOSTILE_IMG} {HOSTILE_SCRIPT}");
    let attachment = b.scratch_file("agenda.txt", "1. the console\n2. the chat\n");
    b.find("#chat-file")
        .await
        .send_keys(&attachment.to_string_lossy())
        .await
        .unwrap();
    b.fill("#chat-message", &note).await;
    b.click("#chat-send").await;
    b.wait_text("#messages", "(1 attached)").await;
    b.wait_text("#messages", "Noted").await;
    b.find("a.open-run").await;
    let thread = b.wait_text("#messages", HOSTILE_SCRIPT).await;
    assert!(thread.contains("onerror="), "{thread}");
    assert!(!b.exists(".card.confirm .confirm-yes:not([disabled])").await);
    assert_no_injection(&b).await;
    b.shot("hostile-note-as-text").await;

    b.client.set_window_size(375, 800).await.unwrap();
    let (needed, has) = b.widths().await;
    assert!(needed <= has, "the chat at 375px needs {needed}px");
    b.shot("narrow-chat").await;

    assert_no_secret_in_urls(&server);
    b.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_access_token_is_refreshed_and_a_user_cannot_approve() {
    let server = ConsoleServer::with(ServerConfig {
        rate_limit_per_minute: 0,
        access_ttl_secs: 1,
        ..ServerConfig::default()
    })
    .await;
    let base = server.base.clone();
    let token = server.token(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    server
        .call(
            Method::POST,
            "/api/v1/users",
            &token,
            Some(json!({"email": "user@example.com", "password": "password-123", "role": "user"})),
        )
        .await;
    let gated = server
        .call(
            Method::POST,
            "/api/v1/workflows",
            &token,
            Some(json!({"name": "Gate", "definition": {
                "entry": "gate",
                "nodes": [{"id": "gate", "type": "human_gate", "config": {}}]
            }})),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();

    let mut b = Browser::open("refresh-and-roles").await;
    b.goto(&format!("{base}/")).await;
    b.fill("#email", "user@example.com").await;
    b.fill("#password", "password-123").await;
    b.click("#signin").await;
    b.wait_text("#who", "(user)").await;
    // The access token lives one second; the next request meets a 401 and refreshes.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    b.goto(&format!("{base}/#/workflows/{gated}")).await;
    b.click("#start-run").await;
    b.wait_text("#gate", "An admin approves or denies this run.")
        .await;
    assert!(!b.exists("#approve").await && !b.exists("#deny").await);
    assert!(b.exists("#cancel").await, "a user may cancel");
    b.shot("user-sees-no-approve").await;
    let refreshes = server
        .seen
        .lock()
        .unwrap()
        .targets
        .iter()
        .filter(|t| t.as_str() == "/api/v1/auth/refresh")
        .count();
    assert!(refreshes >= 1, "the console refreshed its token");
    b.wait_text("#who", "user@example.com").await;
    assert_no_secret_in_urls(&server);
    b.close().await;
    server.stop().await;
}
