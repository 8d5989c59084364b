//! What the server stores besides the engine's data: users, sessions (refresh-token
//! families), API keys, audit rows and which tenant owns each definition made over HTTP.
//!
//! One trait, [`ServerStore`], with a memory backend ([`MemoryServerStore`]) and a PostgreSQL
//! backend (`PgServerStore`, feature `postgres`); both pass the same conformance suite.

mod memory;
#[cfg(feature = "postgres")]
mod pg;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use logline_core::Result;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

pub use memory::MemoryServerStore;
#[cfg(feature = "postgres")]
pub use pg::PgServerStore;

/// What a user may do (see the crate README for the table of routes per role).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything in the tenant, policies and users included.
    Admin,
    /// Builds: workflows, agents, tools; reads audit logs.
    Developer,
    /// Runs workflows and reads them.
    User,
}

impl Role {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Developer => "developer",
            Role::User => "user",
        }
    }

    /// Parses [`Role::as_str`] output.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "developer" => Some(Role::Developer),
            "user" => Some(Role::User),
            _ => None,
        }
    }
}

/// A person who signs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Id.
    pub id: Uuid,
    /// Unique (compared lower-cased).
    pub email: String,
    /// Argon2 PHC string.
    pub password_hash: String,
    /// Display name.
    pub name: Option<String>,
    /// Role in the tenant.
    pub role: Role,
    /// Tenant.
    pub tenant_id: String,
    /// Created.
    pub created_at: DateTime<Utc>,
}

/// One sign-in: the family of refresh tokens rotated from one login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Id (the `sid` claim of its access tokens).
    pub id: Uuid,
    /// User.
    pub user_id: Uuid,
    /// When revoked (logout, reuse of a rotated token); access tokens of a revoked session
    /// are refused.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Created.
    pub created_at: DateTime<Utc>,
}

/// A refresh token, stored by the SHA-256 of its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    /// SHA-256 (hex) of the token.
    pub token_hash: String,
    /// Session (family).
    pub session_id: Uuid,
    /// User.
    pub user_id: Uuid,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
    /// When it was exchanged for a new one; a second exchange is reuse.
    pub used_at: Option<DateTime<Utc>>,
}

/// An API key, stored by the SHA-256 of its text (shown once, at creation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ApiKey {
    /// Id.
    pub id: Uuid,
    /// Owner.
    pub user_id: Uuid,
    /// Owner's tenant.
    pub tenant_id: String,
    /// Label.
    pub name: String,
    /// The key's first characters, to recognise it.
    pub prefix: String,
    /// SHA-256 (hex) of the key.
    #[serde(skip)]
    pub key_hash: String,
    /// `read` (safe methods) and/or `write` (the rest).
    pub permissions: Vec<String>,
    /// Expiry, if any.
    pub expires_at: Option<DateTime<Utc>>,
    /// Last use, to the minute (a key in steady use is recorded once a minute).
    pub last_used_at: Option<DateTime<Utc>>,
    /// When revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Created.
    pub created_at: DateTime<Utc>,
}

/// One audit row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    /// Id.
    pub id: Uuid,
    /// Tenant.
    pub tenant_id: String,
    /// Acting user, if known.
    pub user_id: Option<String>,
    /// `login`, `login_failed`, `logout`, `create`, `update`, `delete`, `revoke`,
    /// `approve`, `deny`, `policy_deny`, ...
    pub action: String,
    /// `user`, `api_key`, `policy`, `workflow`, `agent`, `tool`, `run`, ...
    pub resource_type: String,
    /// Resource id.
    pub resource_id: Option<String>,
    /// What changed (never secrets).
    #[schema(value_type = Option<Object>)]
    pub changes: Option<Value>,
    /// Client address.
    pub ip_address: Option<String>,
    /// Client agent.
    pub user_agent: Option<String>,
    /// When.
    pub created_at: DateTime<Utc>,
}

/// Filters of the audit log (all optional), newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Acting user.
    pub user_id: Option<String>,
    /// Resource type.
    pub resource_type: Option<String>,
    /// Resource id.
    pub resource_id: Option<String>,
    /// Action.
    pub action: Option<String>,
    /// At or after.
    pub start: Option<DateTime<Utc>>,
    /// Before.
    pub end: Option<DateTime<Utc>>,
    /// Rows to skip.
    pub offset: u64,
    /// Rows to return.
    pub limit: u64,
}

/// Who owns a definition: a tenant, or every tenant (`None`: shared by the host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// Owning tenant; `None` = shared with every tenant, changed only by the host.
    pub tenant_id: Option<String>,
}

/// What an alert watches, over its window, per tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AlertRule {
    /// Failed runs / finished runs.
    ErrorRate,
    /// Runs failed on a budget.
    BudgetExceeded,
    /// Policy denials (audit rows `policy_deny`).
    PolicyDenials,
}

/// An alert configuration of a tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AlertConfig {
    /// Id.
    pub id: Uuid,
    /// Tenant.
    pub tenant_id: String,
    /// Name.
    pub name: String,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// What it watches.
    pub rule_type: AlertRule,
    /// Threshold the value is compared with.
    pub threshold: f64,
    /// `>`, `<`, `>=`, `<=` or `==`.
    pub comparison_operator: String,
    /// Seconds of history the value is computed over.
    pub window_secs: u64,
    /// Seconds after a firing during which the alert does not fire again.
    pub cooldown_secs: u64,
    /// Where firings are POSTed (JSON), if anywhere.
    #[serde(default)]
    pub webhook_url: Option<String>,
    /// Disabled alerts are not checked.
    pub enabled: bool,
    /// Created.
    pub created_at: DateTime<Utc>,
}

/// One firing of an alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AlertEvent {
    /// Id.
    pub id: Uuid,
    /// The alert.
    pub alert_config_id: Uuid,
    /// Tenant.
    pub tenant_id: String,
    /// When it fired.
    pub triggered_at: DateTime<Utc>,
    /// When someone resolved it.
    pub resolved_at: Option<DateTime<Utc>>,
    /// What happened.
    pub message: String,
    /// The value, threshold and webhook delivery.
    #[schema(value_type = Object)]
    pub metadata: Value,
}

/// Storage of the server's own records. Every read that returns tenant data takes the tenant
/// and filters by it in the query.
#[async_trait]
pub trait ServerStore: Send + Sync {
    /// Creates a user; `Conflict` when the email (case-insensitive) is taken.
    async fn create_user(&self, user: &User) -> Result<()>;
    /// A user by email (case-insensitive); `NotFound` when none.
    async fn user_by_email(&self, email: &str) -> Result<User>;
    /// A user by id.
    async fn user(&self, id: Uuid) -> Result<User>;
    /// How many users exist.
    async fn count_users(&self) -> Result<u64>;

    /// Creates a session with its first refresh token.
    async fn create_session(&self, session: &Session, token: &RefreshToken) -> Result<()>;
    /// A session.
    async fn session(&self, id: Uuid) -> Result<Session>;
    /// Exchanges a refresh token: marks it used and stores `next` in the same session, in
    /// one step. Returns the token as it was before: a caller that gets `used_at: Some` has
    /// reused a rotated token (nothing was stored). `NotFound` for an unknown token.
    async fn rotate_refresh(&self, token_hash: &str, next: &RefreshToken) -> Result<RefreshToken>;
    /// The token with this hash.
    async fn refresh_token(&self, token_hash: &str) -> Result<RefreshToken>;
    /// Revokes a session (no-op when already revoked).
    async fn revoke_session(&self, id: Uuid) -> Result<()>;

    /// Stores a new API key.
    async fn create_api_key(&self, key: &ApiKey) -> Result<()>;
    /// The key with this hash (revoked ones included).
    async fn api_key_by_hash(&self, key_hash: &str) -> Result<ApiKey>;
    /// A user's keys, newest first.
    async fn list_api_keys(&self, user_id: Uuid) -> Result<Vec<ApiKey>>;
    /// Revokes a key of `user_id`; `NotFound` for another user's key.
    async fn revoke_api_key(&self, user_id: Uuid, id: Uuid) -> Result<ApiKey>;
    /// Records a use of a key.
    async fn touch_api_key(&self, id: Uuid, at: DateTime<Utc>) -> Result<()>;

    /// Appends an audit row.
    async fn append_audit(&self, entry: &AuditEntry) -> Result<()>;
    /// Audit rows of one tenant matching `filter`, newest first.
    async fn audit(&self, tenant_id: &str, filter: &AuditFilter) -> Result<Vec<AuditEntry>>;
    /// Deletes up to `limit` audit rows created before `before` (every tenant's); returns
    /// how many went.
    async fn purge_audit(&self, before: DateTime<Utc>, limit: u64) -> Result<u64>;

    /// Records who owns definition `kind`/`id`; `Conflict` when another owner has it (a
    /// repeated claim by the same owner is a no-op).
    async fn claim(&self, kind: &str, id: &str, tenant_id: Option<&str>) -> Result<()>;
    /// Who owns `kind`/`id`, if anyone.
    async fn owner(&self, kind: &str, id: &str) -> Result<Option<Owner>>;
    /// Forgets the owner of `kind`/`id`.
    async fn release(&self, kind: &str, id: &str) -> Result<()>;
    /// Inserts or replaces an alert configuration (keyed by id within its tenant).
    async fn put_alert(&self, alert: &AlertConfig) -> Result<()>;
    /// The tenant's alert configurations, oldest first.
    async fn alerts(&self, tenant_id: &str) -> Result<Vec<AlertConfig>>;
    /// Every enabled alert configuration of every tenant (for the periodic check).
    async fn enabled_alerts(&self) -> Result<Vec<AlertConfig>>;
    /// Deletes an alert configuration of the tenant (and its history); `NotFound` if none.
    async fn delete_alert(&self, tenant_id: &str, id: Uuid) -> Result<()>;
    /// Records a firing unless the alert fired less than `cooldown` before
    /// `event.triggered_at`; returns whether it was recorded.
    async fn fire_alert(&self, event: &AlertEvent, cooldown_secs: u64) -> Result<bool>;
    /// Firings of the tenant's alerts, newest first.
    async fn alert_history(
        &self,
        tenant_id: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<AlertEvent>>;
    /// Marks a firing of the tenant resolved (no-op when already resolved); `NotFound` if none.
    async fn resolve_alert(&self, tenant_id: &str, id: Uuid) -> Result<AlertEvent>;

    /// Ids of `kind` owned by `tenant_id` or shared, oldest first.
    async fn visible(
        &self,
        kind: &str,
        tenant_id: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<String>>;
}
