//! Auth flows over HTTP: register, login, refresh rotation and reuse, logout, me, API keys.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use reqwest::{Method, StatusCode};
use serde_json::json;
use support::{assert_problem, TestApp};

#[tokio::test]
async fn register_login_me_and_wrong_passwords() {
    let app = TestApp::start().await;
    let a = app.register("ann@example.com").await;
    let me = app.get("/api/v1/auth/me", &a.access).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["email"], "ann@example.com");
    assert_eq!(me.body["role"], "admin");
    assert!(me.body.get("password_hash").is_none());

    // The password is stored as an argon2id hash.
    let stored = app.store.user_by_email("ann@example.com").await.unwrap();
    assert!(stored.password_hash.starts_with("$argon2id$"));

    let again = app
        .call(
            Method::POST,
            "/api/v1/auth/register",
            None,
            Some(json!({"email": "ANN@example.com", "password": "password-123"})),
        )
        .await;
    assert_problem(&again, StatusCode::CONFLICT);
    let short = app
        .call(
            Method::POST,
            "/api/v1/auth/register",
            None,
            Some(json!({"email": "bo@example.com", "password": "short"})),
        )
        .await;
    assert_problem(&short, StatusCode::BAD_REQUEST);
    let bad_email = app
        .call(
            Method::POST,
            "/api/v1/auth/register",
            None,
            Some(json!({"email": "not-an-email", "password": "password-123"})),
        )
        .await;
    assert_problem(&bad_email, StatusCode::BAD_REQUEST);

    let wrong = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"email": "ann@example.com", "password": "password-124"})),
        )
        .await;
    assert_problem(&wrong, StatusCode::UNAUTHORIZED);
    let unknown = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"email": "nobody@example.com", "password": "password-123"})),
        )
        .await;
    assert_problem(&unknown, StatusCode::UNAUTHORIZED);
    assert_eq!(
        wrong.body["detail"], unknown.body["detail"],
        "unknown emails are not revealed"
    );

    let b = app.login("ann@example.com").await;
    assert_eq!(b.user_id, a.user_id);

    // Logins and failures are audited.
    let logs = app
        .get("/api/v1/audit/logs?resource_type=user", &b.access)
        .await;
    let actions: Vec<&str> = logs
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["login", "login_failed", "register"]);
}

#[tokio::test]
async fn missing_or_forged_credentials_are_401() {
    let app = TestApp::start().await;
    let a = app.register("ann@example.com").await;
    let none = app.call(Method::GET, "/api/v1/auth/me", None, None).await;
    assert_problem(&none, StatusCode::UNAUTHORIZED);
    let forged = app.get("/api/v1/auth/me", &format!("{}x", a.access)).await;
    assert_problem(&forged, StatusCode::UNAUTHORIZED);
    let garbage = app.get("/api/v1/auth/me", "llk_not-a-key").await;
    assert_problem(&garbage, StatusCode::UNAUTHORIZED);
    // A token signed with another secret.
    let other = TestApp::with(support::ServerConfig {
        jwt_secret: "other".into(),
        ..support::config()
    })
    .await;
    let foreign = other.register("ann@example.com").await;
    assert_problem(
        &app.get("/api/v1/auth/me", &foreign.access).await,
        StatusCode::UNAUTHORIZED,
    );
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    let app = TestApp::start().await;
    let a = app.register("ann@example.com").await;
    let r1 = app
        .call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": a.refresh})),
        )
        .await;
    assert_eq!(r1.status, StatusCode::OK, "{:?}", r1.body);
    let refresh2 = r1.body["refresh_token"].as_str().unwrap().to_string();
    let access2 = r1.body["access_token"].as_str().unwrap().to_string();
    assert_ne!(refresh2, a.refresh);
    assert_eq!(
        app.get("/api/v1/auth/me", &access2).await.status,
        StatusCode::OK
    );

    // The rotated token comes back: refused, and the whole session ends.
    let reuse = app
        .call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": a.refresh})),
        )
        .await;
    assert_problem(&reuse, StatusCode::UNAUTHORIZED);
    let next = app
        .call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": refresh2})),
        )
        .await;
    assert_problem(&next, StatusCode::UNAUTHORIZED);
    assert_problem(
        &app.get("/api/v1/auth/me", &access2).await,
        StatusCode::UNAUTHORIZED,
    );
    assert_problem(
        &app.get("/api/v1/auth/me", &a.access).await,
        StatusCode::UNAUTHORIZED,
    );

    // Another session of the same user is untouched.
    let b = app.login("ann@example.com").await;
    assert_eq!(
        app.get("/api/v1/auth/me", &b.access).await.status,
        StatusCode::OK
    );
    let logs = app
        .get("/api/v1/audit/logs?action=refresh_reuse", &b.access)
        .await;
    assert_eq!(logs.body.as_array().unwrap().len(), 1);

    let junk = app
        .call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": "llr_nope"})),
        )
        .await;
    assert_problem(&junk, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn logout_ends_the_session_by_access_or_refresh_token() {
    let app = TestApp::start().await;
    let a = app.register("ann@example.com").await;
    let out = app
        .call(Method::POST, "/api/v1/auth/logout", Some(&a.access), None)
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    assert_problem(
        &app.get("/api/v1/auth/me", &a.access).await,
        StatusCode::UNAUTHORIZED,
    );
    let r = app
        .call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": a.refresh})),
        )
        .await;
    assert_problem(&r, StatusCode::UNAUTHORIZED);

    let b = app.login("ann@example.com").await;
    let out = app
        .call(
            Method::POST,
            "/api/v1/auth/logout",
            None,
            Some(json!({"refresh_token": b.refresh})),
        )
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    assert_problem(
        &app.get("/api/v1/auth/me", &b.access).await,
        StatusCode::UNAUTHORIZED,
    );
    assert_problem(
        &app.call(Method::POST, "/api/v1/auth/logout", None, None)
            .await,
        StatusCode::UNAUTHORIZED,
    );
}

#[tokio::test]
async fn api_keys_are_shown_once_stored_hashed_and_revocable() {
    let app = TestApp::start().await;
    let a = app.register("ann@example.com").await;
    let created = app
        .post("/api/v1/auth/api-keys", &a.access, json!({"name": "ci"}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let key = created.body["key"].as_str().unwrap().to_string();
    let key_id = created.body["api_key"]["id"].as_str().unwrap().to_string();
    assert!(key.starts_with("llk_"));
    assert!(!created.body["api_key"].to_string().contains(&key[12..]));

    // The key works as a bearer token and as X-API-Key.
    assert_eq!(
        app.get("/api/v1/auth/me", &key).await.body["email"],
        "ann@example.com"
    );
    let via_header = app
        .http
        .get(format!("{}/api/v1/auth/me", app.base))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(via_header.status(), StatusCode::OK);

    let listed = app.get("/api/v1/auth/api-keys", &a.access).await;
    let text = listed.body.to_string();
    assert_eq!(listed.body.as_array().unwrap().len(), 1);
    assert!(!text.contains(&key) && !text.contains("key_hash"), "{text}");

    // Another user cannot revoke it.
    let b = app.register("bob@example.com").await;
    let foreign = app
        .post(
            &format!("/api/v1/auth/api-keys/{key_id}/revoke"),
            &b.access,
            json!({}),
        )
        .await;
    assert_problem(&foreign, StatusCode::NOT_FOUND);
    assert_eq!(
        app.get("/api/v1/auth/me", &key).await.status,
        StatusCode::OK
    );

    let revoked = app
        .post(
            &format!("/api/v1/auth/api-keys/{key_id}/revoke"),
            &a.access,
            json!({}),
        )
        .await;
    assert_eq!(revoked.status, StatusCode::OK);
    assert!(revoked.body["revoked_at"].is_string());
    assert_problem(
        &app.get("/api/v1/auth/me", &key).await,
        StatusCode::UNAUTHORIZED,
    );

    let logs = app
        .get("/api/v1/audit/logs?resource_type=api_key", &a.access)
        .await;
    let actions: Vec<&str> = logs
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["revoke", "create"]);

    let bad = app
        .post(
            "/api/v1/auth/api-keys",
            &a.access,
            json!({"name": "x", "permissions": ["admin"]}),
        )
        .await;
    assert_problem(&bad, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_read_only_key_cannot_write() {
    let app = TestApp::start().await;
    let a = app.register("ann@example.com").await;
    let created = app
        .post(
            "/api/v1/auth/api-keys",
            &a.access,
            json!({"name": "ro", "permissions": ["read"]}),
        )
        .await;
    let key = created.body["key"].as_str().unwrap().to_string();
    assert_eq!(
        app.get("/api/v1/workflows", &key).await.status,
        StatusCode::OK
    );
    let write = app
        .post("/api/v1/workflows/demo/runs", &key, json!({"input": {}}))
        .await;
    assert_problem(&write, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn closed_registration_leaves_adding_users_to_admins() {
    let app = TestApp::with(support::ServerConfig {
        open_registration: false,
        ..support::config()
    })
    .await;
    let r = app
        .call(
            Method::POST,
            "/api/v1/auth/register",
            None,
            Some(json!({"email": "ann@example.com", "password": "password-123"})),
        )
        .await;
    assert_problem(&r, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn admins_add_users_to_their_own_tenant() {
    let app = TestApp::start().await;
    let admin = app.register("ann@example.com").await;
    let dev = app.add_user(&admin, "dev@example.com", "developer").await;
    assert_eq!(dev.tenant_id, admin.tenant_id);
    let me = app.get("/api/v1/auth/me", &dev.access).await;
    assert_eq!(me.body["role"], "developer");
    let denied = app
        .post(
            "/api/v1/users",
            &dev.access,
            json!({"email": "x@example.com", "password": "password-123", "role": "admin"}),
        )
        .await;
    assert_problem(&denied, StatusCode::FORBIDDEN);
}
