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
