//! Audit retention: a pass deletes the rows older than the kept days, every tenant's, and
//! keeps the rest.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use logline_core::engine::Engine;
use logline_server::audit::purge_expired;
use logline_server::store::{AuditEntry, AuditFilter, MemoryServerStore, ServerStore};
use logline_server::{Server, ServerConfig};
use uuid::Uuid;

fn row(tenant: &str, days_old: i64) -> AuditEntry {
    AuditEntry {
        id: Uuid::now_v7(),
        tenant_id: tenant.into(),
        user_id: None,
        action: format!("{days_old} days old"),
        resource_type: "user".into(),
        resource_id: None,
        changes: None,
        ip_address: None,
        user_agent: None,
        created_at: Utc::now() - chrono::Duration::days(days_old),
    }
}

#[tokio::test]
async fn a_pass_deletes_only_rows_past_the_kept_days() {
    let store = Arc::new(MemoryServerStore::new());
    for (tenant, age) in [("t1", 120), ("t1", 91), ("t1", 10), ("t2", 400), ("t2", 0)] {
        store.append_audit(&row(tenant, age)).await.unwrap();
    }
    let engine = Engine::builder().build().await.unwrap();
    let config = ServerConfig::default();
    let keep = config.audit_retention().expect("on by default");
    let server = Server::with_store(engine, config, store.clone());

    assert_eq!(purge_expired(server.state(), keep).await.unwrap(), 3);
    assert_eq!(purge_expired(server.state(), keep).await.unwrap(), 0);
    let all = AuditFilter {
        limit: 100,
        ..Default::default()
    };
    let mut kept = Vec::new();
    for tenant in ["t1", "t2"] {
        kept.extend(store.audit(tenant, &all).await.unwrap());
    }
    let ages: Vec<&str> = kept.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(ages, ["10 days old", "0 days old"]);

    // A day's retention takes the 10-day-old row too.
    let day = Duration::from_secs(24 * 3600);
    assert_eq!(purge_expired(server.state(), day).await.unwrap(), 1);
}
