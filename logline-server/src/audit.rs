//! Writing audit rows.

use chrono::Utc;
use serde_json::Value;
use uuid::Uuid;

use crate::auth::{Caller, ClientInfo};
use crate::error::ApiResult;
use crate::state::AppState;
use crate::store::AuditEntry;

/// What an audit row says, besides who and from where.
#[derive(Debug, Clone)]
pub struct Action<'a> {
    /// `create`, `update`, `delete`, `login`, ...
    pub action: &'a str,
    /// `policy`, `api_key`, `run`, ...
    pub resource_type: &'a str,
    /// Resource id.
    pub resource_id: Option<String>,
    /// What changed (never secrets).
    pub changes: Option<Value>,
}

impl<'a> Action<'a> {
    /// `action` on `resource_type` `resource_id`.
    pub fn new(action: &'a str, resource_type: &'a str, resource_id: impl ToString) -> Self {
        Action {
            action,
            resource_type,
            resource_id: Some(resource_id.to_string()),
            changes: None,
        }
    }

    /// With the change.
    pub fn changes(mut self, changes: Value) -> Self {
        self.changes = Some(changes);
        self
    }
}

/// Appends a row for `tenant_id` and `user_id`.
pub async fn record_for(
    state: &AppState,
    tenant_id: &str,
    user_id: Option<String>,
    client: &ClientInfo,
    what: Action<'_>,
) -> ApiResult<()> {
    let entry = AuditEntry {
        id: Uuid::now_v7(),
        tenant_id: tenant_id.to_string(),
        user_id,
        action: what.action.to_string(),
        resource_type: what.resource_type.to_string(),
        resource_id: what.resource_id,
        changes: what.changes,
        ip_address: client.ip.clone(),
        user_agent: client.user_agent.clone(),
        created_at: Utc::now(),
    };
    state.store.append_audit(&entry).await?;
    Ok(())
}

/// Appends a row for what `caller` did.
pub async fn record(
    state: &AppState,
    caller: &Caller,
    client: &ClientInfo,
    what: Action<'_>,
) -> ApiResult<()> {
    record_for(
        state,
        &caller.tenant_id,
        Some(caller.user_id.to_string()),
        client,
        what,
    )
    .await
}

/// Appends a row for a refusal; a failure to write it is logged, the refusal stands.
pub async fn record_denial(
    state: &AppState,
    caller: &Caller,
    client: &ClientInfo,
    what: Action<'_>,
) {
    state.metrics.count("policy_denials");
    if let Err(e) = record(state, caller, client, what).await {
        tracing::error!(error = ?e, "could not write the audit row of a denial");
    }
}

/// Rows one purge statement deletes at most.
const PURGE_BATCH: u64 = 1000;
/// Statements one pass runs at most; the rest waits for the next pass.
const PURGE_MAX_BATCHES: u32 = 100;

/// Deletes the audit rows older than `keep`, in bounded batches; returns how many went.
pub async fn purge_expired(
    state: &AppState,
    keep: std::time::Duration,
) -> logline_core::Result<u64> {
    let keep = chrono::Duration::from_std(keep)
        .map_err(|_| logline_core::Error::InvalidInput("audit retention is too long".into()))?;
    let before = Utc::now() - keep;
    let mut purged = 0;
    for _ in 0..PURGE_MAX_BATCHES {
        let n = state.store.purge_audit(before, PURGE_BATCH).await?;
        purged += n;
        if n < PURGE_BATCH {
            break;
        }
    }
    Ok(purged)
}

/// Purges expired audit rows now and then every `every` until the server shuts down.
/// Several `serve` processes may run it: a deleted row is simply gone for the others.
pub fn spawn_retention(
    state: AppState,
    keep: std::time::Duration,
    every: std::time::Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = state.shutdown.cancelled() => return,
            }
            match purge_expired(&state, keep).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(purged = n, "expired audit rows deleted"),
                Err(e) => tracing::warn!(error = %e, "audit retention pass failed"),
            }
        }
    })
}
