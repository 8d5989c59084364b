//! The behaviour every `ServerStore` backend shares, run by each backend's test.

use chrono::{Duration, Utc};
use logline_core::ErrorKind;
use logline_server::store::{
    ApiKey, AuditEntry, AuditFilter, RefreshToken, Role, ServerStore, Session, User,
};
use serde_json::json;
use uuid::Uuid;

fn user(email: &str, tenant: &str) -> User {
    User {
        id: Uuid::now_v7(),
        email: email.into(),
        password_hash: "$argon2id$x".into(),
        name: Some("N".into()),
        role: Role::Developer,
        tenant_id: tenant.into(),
        created_at: Utc::now(),
    }
}

fn token(hash: &str, session: &Session) -> RefreshToken {
    RefreshToken {
        token_hash: hash.into(),
        session_id: session.id,
        user_id: session.user_id,
        expires_at: Utc::now() + Duration::hours(1),
        used_at: None,
    }
}

pub async fn users(s: &dyn ServerStore) {
    assert_eq!(s.count_users().await.unwrap(), 0);
    let u = user("Ann@Example.com", "t1");
    s.create_user(&u).await.unwrap();
    let dup = s
        .create_user(&user("ann@example.COM", "t2"))
        .await
        .unwrap_err();
    assert_eq!(dup.kind(), ErrorKind::Conflict);
    let got = s.user_by_email("ANN@example.com").await.unwrap();
    assert_eq!(got.id, u.id);
    assert_eq!(got.role, Role::Developer);
    assert_eq!(got.tenant_id, "t1");
    assert_eq!(s.user(u.id).await.unwrap().email, "Ann@Example.com");
    assert_eq!(
        s.user_by_email("nobody@x.y").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        s.user(Uuid::now_v7()).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(s.count_users().await.unwrap(), 1);
}

pub async fn sessions(s: &dyn ServerStore) {
    let u = user("s@x.io", "t1");
    s.create_user(&u).await.unwrap();
    let session = Session {
        id: Uuid::now_v7(),
        user_id: u.id,
        revoked_at: None,
        created_at: Utc::now(),
    };
    s.create_session(&session, &token("h1", &session))
        .await
        .unwrap();
    assert!(s.session(session.id).await.unwrap().revoked_at.is_none());

    // First exchange rotates: the old one is returned unused, the new one is stored.
    let before = s
        .rotate_refresh("h1", &token("h2", &session))
        .await
        .unwrap();
    assert!(before.used_at.is_none());
    assert!(s.refresh_token("h1").await.unwrap().used_at.is_some());
    assert!(s.refresh_token("h2").await.unwrap().used_at.is_none());
    // Second exchange of the same token: reported as used, nothing stored.
    let again = s
        .rotate_refresh("h1", &token("h3", &session))
        .await
        .unwrap();
    assert!(again.used_at.is_some());
    assert_eq!(
        s.refresh_token("h3").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        s.rotate_refresh("nope", &token("h4", &session))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );

    s.revoke_session(session.id).await.unwrap();
    let revoked = s.session(session.id).await.unwrap().revoked_at.unwrap();
    s.revoke_session(session.id).await.unwrap();
    assert_eq!(
        s.session(session.id).await.unwrap().revoked_at.unwrap(),
        revoked
    );
    assert_eq!(
        s.session(Uuid::now_v7()).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

pub async fn api_keys(s: &dyn ServerStore) {
    let a = user("k1@x.io", "t1");
    let b = user("k2@x.io", "t1");
    s.create_user(&a).await.unwrap();
    s.create_user(&b).await.unwrap();
    let key = |name: &str, hash: &str, owner: &User, age: i64| ApiKey {
        id: Uuid::now_v7(),
        user_id: owner.id,
        tenant_id: owner.tenant_id.clone(),
        name: name.into(),
        prefix: "llk_abc".into(),
        key_hash: hash.into(),
        permissions: vec!["read".into()],
        expires_at: None,
        last_used_at: None,
        revoked_at: None,
        created_at: Utc::now() - Duration::seconds(age),
    };
    let old = key("old", "kh1", &a, 60);
    let new = key("new", "kh2", &a, 0);
    s.create_api_key(&old).await.unwrap();
    s.create_api_key(&new).await.unwrap();
    s.create_api_key(&key("b's", "kh3", &b, 0)).await.unwrap();
    assert_eq!(
        s.create_api_key(&key("dup", "kh1", &a, 0))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Conflict
    );

    let listed: Vec<String> = s
        .list_api_keys(a.id)
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.name)
        .collect();
    assert_eq!(listed, ["new", "old"]);
    assert_eq!(
        s.api_key_by_hash("kh1").await.unwrap().permissions,
        ["read"]
    );
    assert_eq!(
        s.api_key_by_hash("zz").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );

    // Another user's key is not found, and stays live.
    assert_eq!(
        s.revoke_api_key(b.id, old.id).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert!(s.api_key_by_hash("kh1").await.unwrap().revoked_at.is_none());
    assert!(s
        .revoke_api_key(a.id, old.id)
        .await
        .unwrap()
        .revoked_at
        .is_some());
    assert!(s.api_key_by_hash("kh1").await.unwrap().revoked_at.is_some());

    let at = Utc::now();
    s.touch_api_key(new.id, at).await.unwrap();
    let used = s
        .api_key_by_hash("kh2")
        .await
        .unwrap()
        .last_used_at
        .unwrap();
    assert!((used - at).num_milliseconds().abs() < 5);
}

pub async fn audit(s: &dyn ServerStore) {
    let row = |tenant: &str, user: &str, action: &str, rtype: &str, age: i64| AuditEntry {
        id: Uuid::now_v7(),
        tenant_id: tenant.into(),
        user_id: Some(user.into()),
        action: action.into(),
        resource_type: rtype.into(),
        resource_id: Some(format!("{rtype}-1")),
        changes: Some(json!({"x": "a\u{0}b"})),
        ip_address: Some("127.0.0.1".into()),
        user_agent: None,
        created_at: Utc::now() - Duration::seconds(age),
    };
    s.append_audit(&row("t1", "u1", "login", "user", 30))
        .await
        .unwrap();
    s.append_audit(&row("t1", "u2", "create", "policy", 20))
        .await
        .unwrap();
    s.append_audit(&row("t1", "u1", "delete", "policy", 10))
        .await
        .unwrap();
    s.append_audit(&row("t2", "u9", "create", "policy", 5))
        .await
        .unwrap();
    let all = |f: AuditFilter| AuditFilter { limit: 100, ..f };

    let t1 = s.audit("t1", &all(AuditFilter::default())).await.unwrap();
    let actions: Vec<&str> = t1.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        ["delete", "create", "login"],
        "newest first, one tenant"
    );
    let policy = s
        .audit(
            "t1",
            &all(AuditFilter {
                resource_type: Some("policy".into()),
                ..Default::default()
            }),
        )
        .await
        .unwrap();
    assert_eq!(policy.len(), 2);
    let u1 = s
        .audit(
            "t1",
            &all(AuditFilter {
                user_id: Some("u1".into()),
                action: Some("login".into()),
                ..Default::default()
            }),
        )
        .await
        .unwrap();
    assert_eq!(u1.len(), 1);
    let by_id = s
        .audit(
            "t1",
            &all(AuditFilter {
                resource_id: Some("user-1".into()),
                ..Default::default()
            }),
        )
        .await
        .unwrap();
    assert_eq!(by_id.len(), 1);
    let window = AuditFilter {
        start: Some(Utc::now() - Duration::seconds(25)),
        end: Some(Utc::now() - Duration::seconds(15)),
        ..Default::default()
    };
    assert_eq!(s.audit("t1", &all(window)).await.unwrap().len(), 1);
    let page2 = s
        .audit(
            "t1",
            &AuditFilter {
                offset: 1,
                limit: 1,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page2[0].action, "create");
    assert!(s
        .audit("t3", &all(AuditFilter::default()))
        .await
        .unwrap()
        .is_empty());

    // Retention: rows older than the cutoff go, every tenant's, at most `limit` per call.
    let cutoff = Utc::now() - Duration::seconds(8);
    assert_eq!(s.purge_audit(cutoff, 2).await.unwrap(), 2);
    assert_eq!(s.purge_audit(cutoff, 10).await.unwrap(), 1);
    assert_eq!(s.purge_audit(cutoff, 10).await.unwrap(), 0);
    let kept: Vec<String> = s
        .audit("t1", &all(AuditFilter::default()))
        .await
        .unwrap()
        .into_iter()
        .chain(s.audit("t2", &all(AuditFilter::default())).await.unwrap())
        .map(|e| e.action)
        .collect();
    assert_eq!(
        kept,
        ["create"],
        "only the row newer than the cutoff (t2's) stays"
    );
}

pub async fn ownership(s: &dyn ServerStore) {
    s.claim("workflow", "w1", Some("t1")).await.unwrap();
    s.claim("workflow", "w1", Some("t1")).await.unwrap();
    assert_eq!(
        s.claim("workflow", "w1", Some("t2"))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Conflict
    );
    assert_eq!(
        s.claim("workflow", "w1", None).await.unwrap_err().kind(),
        ErrorKind::Conflict
    );
    s.claim("workflow", "shared", None).await.unwrap();
    s.claim("workflow", "w2", Some("t2")).await.unwrap();
    s.claim("workflow", "w3", Some("t1")).await.unwrap();
    s.claim("agent", "w1", Some("t2")).await.unwrap();

    assert_eq!(
        s.owner("workflow", "w1")
            .await
            .unwrap()
            .unwrap()
            .tenant_id
            .as_deref(),
        Some("t1")
    );
    assert_eq!(
        s.owner("workflow", "shared")
            .await
            .unwrap()
            .unwrap()
            .tenant_id,
        None
    );
    assert!(s.owner("workflow", "nope").await.unwrap().is_none());

    assert_eq!(
        s.visible("workflow", "t1", 0, 10).await.unwrap(),
        ["w1", "shared", "w3"]
    );
    assert_eq!(s.visible("workflow", "t1", 1, 1).await.unwrap(), ["shared"]);
    assert_eq!(
        s.visible("workflow", "t2", 0, 10).await.unwrap(),
        ["shared", "w2"]
    );
    assert_eq!(
        s.visible("agent", "t1", 0, 10).await.unwrap(),
        Vec::<String>::new()
    );

    s.release("workflow", "w1").await.unwrap();
    assert!(s.owner("workflow", "w1").await.unwrap().is_none());
    s.claim("workflow", "w1", Some("t2")).await.unwrap();
}

pub async fn alerts(s: &dyn ServerStore) {
    use logline_server::store::{AlertConfig, AlertEvent, AlertRule};
    let alert = |tenant: &str, name: &str, enabled: bool| AlertConfig {
        id: Uuid::now_v7(),
        tenant_id: tenant.into(),
        name: name.into(),
        description: None,
        rule_type: AlertRule::ErrorRate,
        threshold: 0.5,
        comparison_operator: ">".into(),
        window_secs: 3600,
        cooldown_secs: 600,
        webhook_url: Some("https://hooks.example/x".into()),
        enabled,
        created_at: Utc::now(),
    };
    let mut a = alert("t1", "a", true);
    s.put_alert(&a).await.unwrap();
    s.put_alert(&alert("t1", "b", false)).await.unwrap();
    s.put_alert(&alert("t2", "c", true)).await.unwrap();
    a.threshold = 0.7;
    s.put_alert(&a).await.unwrap();
    let t1 = s.alerts("t1").await.unwrap();
    assert_eq!(
        t1.iter().map(|x| x.name.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert_eq!(t1[0].threshold, 0.7);
    assert_eq!(
        t1[0].webhook_url.as_deref(),
        Some("https://hooks.example/x")
    );
    let mut enabled: Vec<String> = s
        .enabled_alerts()
        .await
        .unwrap()
        .into_iter()
        .map(|x| x.name)
        .collect();
    enabled.sort();
    assert_eq!(enabled, ["a", "c"]);
    // Another tenant cannot overwrite or delete it.
    let mut stolen = a.clone();
    stolen.tenant_id = "t2".into();
    assert_eq!(
        s.put_alert(&stolen).await.unwrap_err().kind(),
        ErrorKind::Conflict
    );
    assert_eq!(
        s.delete_alert("t2", a.id).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );

    let fire = |at: chrono::DateTime<Utc>| AlertEvent {
        id: Uuid::now_v7(),
        alert_config_id: a.id,
        tenant_id: "t1".into(),
        triggered_at: at,
        resolved_at: None,
        message: "m".into(),
        metadata: json!({"value": 0.9}),
    };
    let now = Utc::now();
    assert!(s
        .fire_alert(&fire(now - Duration::seconds(700)), 600)
        .await
        .unwrap());
    assert!(
        s.fire_alert(&fire(now), 600).await.unwrap(),
        "past the cooldown"
    );
    assert!(
        !s.fire_alert(&fire(now + Duration::seconds(10)), 600)
            .await
            .unwrap(),
        "inside the cooldown"
    );
    let history = s.alert_history("t1", 0, 10).await.unwrap();
    assert_eq!(history.len(), 2);
    assert!(history[0].triggered_at > history[1].triggered_at);
    assert_eq!(history[0].metadata["value"], 0.9);
    assert!(s.alert_history("t2", 0, 10).await.unwrap().is_empty());
    assert_eq!(s.alert_history("t1", 1, 10).await.unwrap().len(), 1);

    assert_eq!(
        s.resolve_alert("t2", history[0].id)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    let resolved = s.resolve_alert("t1", history[0].id).await.unwrap();
    let at = resolved.resolved_at.unwrap();
    assert_eq!(
        s.resolve_alert("t1", history[0].id)
            .await
            .unwrap()
            .resolved_at
            .unwrap(),
        at
    );

    s.delete_alert("t1", a.id).await.unwrap();
    assert!(s.alert_history("t1", 0, 10).await.unwrap().is_empty());
    assert_eq!(s.alerts("t1").await.unwrap().len(), 1);
}

/// Every case, each on a fresh store from `fresh`.
#[macro_export]
macro_rules! store_suite {
    ($fresh:expr) => {
        #[tokio::test]
        async fn users() {
            support::suite::users(&*$fresh.await).await;
        }
        #[tokio::test]
        async fn sessions() {
            support::suite::sessions(&*$fresh.await).await;
        }
        #[tokio::test]
        async fn api_keys() {
            support::suite::api_keys(&*$fresh.await).await;
        }
        #[tokio::test]
        async fn audit() {
            support::suite::audit(&*$fresh.await).await;
        }
        #[tokio::test]
        async fn alerts() {
            support::suite::alerts(&*$fresh.await).await;
        }
        #[tokio::test]
        async fn ownership() {
            support::suite::ownership(&*$fresh.await).await;
        }
    };
}
