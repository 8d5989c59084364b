//! [`PgServerStore`]: the server's records in PostgreSQL (tables of migration
//! `0005_server.sql`, applied by `PgBackend::migrate`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use logline_core::nul::{replace_nul, replace_nul_str};
use logline_core::{Error, ErrorKind, Result};
use sqlx::postgres::{PgPool, PgRow};
use sqlx::{QueryBuilder, Row};
use uuid::Uuid;

use super::{
    AlertConfig, AlertEvent, AlertRule, ApiKey, AuditEntry, AuditFilter, Owner, RefreshToken, Role,
    ServerStore, Session, User,
};

/// The server's records in the PostgreSQL schema of a `PgBackend` (use its pool).
#[derive(Debug, Clone)]
pub struct PgServerStore {
    pool: PgPool,
}

impl PgServerStore {
    /// A store on `pool` (connections whose `search_path` is the LogLine schema).
    pub fn new(pool: PgPool) -> Self {
        PgServerStore { pool }
    }
}

fn db(e: sqlx::Error) -> Error {
    if let Some(d) = e.as_database_error() {
        if d.code().as_deref() == Some("23505") {
            return Error::Conflict(d.message().to_string());
        }
    }
    let kind = match &e {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
            ErrorKind::Unavailable
        }
        _ => ErrorKind::Internal,
    };
    Error::backend("postgres", kind, e.to_string(), Some(Box::new(e)))
}

fn i64_of(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn user(r: &PgRow) -> Result<User> {
    let role: String = r.try_get("role").map_err(db)?;
    Ok(User {
        id: r.try_get("id").map_err(db)?,
        email: r.try_get("email").map_err(db)?,
        password_hash: r.try_get("password_hash").map_err(db)?,
        name: r.try_get("name").map_err(db)?,
        role: Role::parse(&role).ok_or_else(|| Error::Internal(format!("stored role `{role}`")))?,
        tenant_id: r.try_get("tenant_id").map_err(db)?,
        created_at: r.try_get("created_at").map_err(db)?,
    })
}

fn refresh(r: &PgRow) -> Result<RefreshToken> {
    Ok(RefreshToken {
        token_hash: r.try_get("token_hash").map_err(db)?,
        session_id: r.try_get("session_id").map_err(db)?,
        user_id: r.try_get("user_id").map_err(db)?,
        expires_at: r.try_get("expires_at").map_err(db)?,
        used_at: r.try_get("used_at").map_err(db)?,
    })
}

fn api_key(r: &PgRow) -> Result<ApiKey> {
    Ok(ApiKey {
        id: r.try_get("id").map_err(db)?,
        user_id: r.try_get("user_id").map_err(db)?,
        tenant_id: r.try_get("tenant_id").map_err(db)?,
        name: r.try_get("name").map_err(db)?,
        prefix: r.try_get("prefix").map_err(db)?,
        key_hash: r.try_get("key_hash").map_err(db)?,
        permissions: r.try_get("permissions").map_err(db)?,
        expires_at: r.try_get("expires_at").map_err(db)?,
        last_used_at: r.try_get("last_used_at").map_err(db)?,
        revoked_at: r.try_get("revoked_at").map_err(db)?,
        created_at: r.try_get("created_at").map_err(db)?,
    })
}

fn audit_row(r: &PgRow) -> Result<AuditEntry> {
    Ok(AuditEntry {
        id: r.try_get("id").map_err(db)?,
        tenant_id: r
            .try_get::<Option<String>, _>("tenant_id")
            .map_err(db)?
            .unwrap_or_default(),
        user_id: r.try_get("user_id").map_err(db)?,
        action: r.try_get("action").map_err(db)?,
        resource_type: r.try_get("resource_type").map_err(db)?,
        resource_id: r.try_get("resource_id").map_err(db)?,
        changes: r.try_get("changes").map_err(db)?,
        ip_address: r.try_get("ip_address").map_err(db)?,
        user_agent: r.try_get("user_agent").map_err(db)?,
        created_at: r.try_get("created_at").map_err(db)?,
    })
}

fn alert(r: &PgRow) -> Result<AlertConfig> {
    let rule: String = r.try_get("rule_type").map_err(db)?;
    let rule: AlertRule = serde_json::from_value(serde_json::Value::String(rule.clone()))
        .map_err(|_| Error::Internal(format!("stored alert rule `{rule}`")))?;
    let secs = |c: &str| -> Result<u64> {
        Ok(u64::try_from(r.try_get::<i64, _>(c).map_err(db)?).unwrap_or(0))
    };
    Ok(AlertConfig {
        id: r.try_get("id").map_err(db)?,
        tenant_id: r.try_get("tenant_id").map_err(db)?,
        name: r.try_get("name").map_err(db)?,
        description: r.try_get("description").map_err(db)?,
        rule_type: rule,
        threshold: r.try_get("threshold").map_err(db)?,
        comparison_operator: r.try_get("comparison_operator").map_err(db)?,
        window_secs: secs("window_secs")?,
        cooldown_secs: secs("cooldown_secs")?,
        webhook_url: r.try_get("webhook_url").map_err(db)?,
        enabled: r.try_get("enabled").map_err(db)?,
        created_at: r.try_get("created_at").map_err(db)?,
    })
}

fn firing(r: &PgRow) -> Result<AlertEvent> {
    Ok(AlertEvent {
        id: r.try_get("id").map_err(db)?,
        alert_config_id: r.try_get("alert_config_id").map_err(db)?,
        tenant_id: r.try_get("tenant_id").map_err(db)?,
        triggered_at: r.try_get("triggered_at").map_err(db)?,
        resolved_at: r.try_get("resolved_at").map_err(db)?,
        message: r.try_get("message").map_err(db)?,
        metadata: r.try_get("metadata").map_err(db)?,
    })
}

const KEY_COLUMNS: &str =
    "id, user_id, tenant_id, name, prefix, key_hash, permissions, expires_at, \
     last_used_at, revoked_at, created_at";

#[async_trait]
impl ServerStore for PgServerStore {
    async fn create_user(&self, u: &User) -> Result<()> {
        sqlx::query(
            "INSERT INTO auth_users (id, email, email_lower, password_hash, name, role, tenant_id, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(u.id)
        .bind(&u.email)
        .bind(u.email.to_lowercase())
        .bind(&u.password_hash)
        .bind(&u.name)
        .bind(u.role.as_str())
        .bind(&u.tenant_id)
        .bind(u.created_at)
        .execute(&self.pool)
        .await
        .map_err(|e| match db(e) {
            Error::Conflict(_) => Error::Conflict(format!("email `{}` is taken", u.email)),
            other => other,
        })?;
        Ok(())
    }

    async fn user_by_email(&self, email: &str) -> Result<User> {
        let row = sqlx::query("SELECT * FROM auth_users WHERE email_lower = $1")
            .bind(email.to_lowercase())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.as_ref()
            .map(user)
            .unwrap_or_else(|| Err(Error::not_found("user", email)))
    }

    async fn user(&self, id: Uuid) -> Result<User> {
        let row = sqlx::query("SELECT * FROM auth_users WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.as_ref()
            .map(user)
            .unwrap_or_else(|| Err(Error::not_found("user", id)))
    }

    async fn count_users(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM auth_users")
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn create_session(&self, s: &Session, t: &RefreshToken) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        sqlx::query("INSERT INTO auth_sessions (id, user_id, revoked_at, created_at) VALUES ($1, $2, $3, $4)")
            .bind(s.id)
            .bind(s.user_id)
            .bind(s.revoked_at)
            .bind(s.created_at)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        insert_refresh(&mut tx, t).await?;
        tx.commit().await.map_err(db)
    }

    async fn session(&self, id: Uuid) -> Result<Session> {
        let row = sqlx::query(
            "SELECT id, user_id, revoked_at, created_at FROM auth_sessions WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?
        .ok_or_else(|| Error::not_found("session", id))?;
        Ok(Session {
            id: row.try_get("id").map_err(db)?,
            user_id: row.try_get("user_id").map_err(db)?,
            revoked_at: row.try_get("revoked_at").map_err(db)?,
            created_at: row.try_get("created_at").map_err(db)?,
        })
    }

    async fn rotate_refresh(&self, token_hash: &str, next: &RefreshToken) -> Result<RefreshToken> {
        let mut tx = self.pool.begin().await.map_err(db)?;
        // Only one exchange can flip `used_at`; every other sees it set.
        let taken = sqlx::query(
            "UPDATE auth_refresh_tokens SET used_at = now() WHERE token_hash = $1 AND used_at IS NULL \
             RETURNING token_hash, session_id, user_id, expires_at, NULL::timestamptz AS used_at",
        )
        .bind(token_hash)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db)?;
        let before = match taken {
            Some(row) => {
                insert_refresh(&mut tx, next).await?;
                refresh(&row)?
            }
            None => {
                let row = sqlx::query("SELECT * FROM auth_refresh_tokens WHERE token_hash = $1")
                    .bind(token_hash)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db)?
                    .ok_or_else(|| Error::not_found("refresh token", "(given)"))?;
                refresh(&row)?
            }
        };
        tx.commit().await.map_err(db)?;
        Ok(before)
    }

    async fn refresh_token(&self, token_hash: &str) -> Result<RefreshToken> {
        let row = sqlx::query("SELECT * FROM auth_refresh_tokens WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        row.as_ref()
            .map(refresh)
            .unwrap_or_else(|| Err(Error::not_found("refresh token", "(given)")))
    }

    async fn revoke_session(&self, id: Uuid) -> Result<()> {
        sqlx::query(
            "UPDATE auth_sessions SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn create_api_key(&self, k: &ApiKey) -> Result<()> {
        sqlx::query(&format!("INSERT INTO auth_api_keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"))
            .bind(k.id)
            .bind(k.user_id)
            .bind(&k.tenant_id)
            .bind(&k.name)
            .bind(&k.prefix)
            .bind(&k.key_hash)
            .bind(&k.permissions)
            .bind(k.expires_at)
            .bind(k.last_used_at)
            .bind(k.revoked_at)
            .bind(k.created_at)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn api_key_by_hash(&self, key_hash: &str) -> Result<ApiKey> {
        let row = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM auth_api_keys WHERE key_hash = $1"
        ))
        .bind(key_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.as_ref()
            .map(api_key)
            .unwrap_or_else(|| Err(Error::not_found("api key", "(given)")))
    }

    async fn list_api_keys(&self, user_id: Uuid) -> Result<Vec<ApiKey>> {
        sqlx::query(&format!("SELECT {KEY_COLUMNS} FROM auth_api_keys WHERE user_id = $1 ORDER BY created_at DESC, id DESC"))
            .bind(user_id)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?
            .iter()
            .map(api_key)
            .collect()
    }

    async fn revoke_api_key(&self, user_id: Uuid, id: Uuid) -> Result<ApiKey> {
        let row = sqlx::query(&format!(
            "UPDATE auth_api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 AND user_id = $2 \
             RETURNING {KEY_COLUMNS}"
        ))
        .bind(id)
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.as_ref()
            .map(api_key)
            .unwrap_or_else(|| Err(Error::not_found("api key", id)))
    }

    async fn touch_api_key(&self, id: Uuid, at: DateTime<Utc>) -> Result<()> {
        sqlx::query("UPDATE auth_api_keys SET last_used_at = $2 WHERE id = $1")
            .bind(id)
            .bind(at)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn purge_audit(&self, before: DateTime<Utc>, limit: u64) -> Result<u64> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let done = sqlx::query(
            "DELETE FROM audit_logs WHERE id IN \
             (SELECT id FROM audit_logs WHERE created_at < $1 LIMIT $2)",
        )
        .bind(before)
        .bind(limit)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(done.rows_affected())
    }

    async fn append_audit(&self, e: &AuditEntry) -> Result<()> {
        // Text from requests may hold NUL, which PostgreSQL refuses: stored as U+FFFD.
        let text = |s: &Option<String>| s.as_deref().map(|s| replace_nul_str(s).into_owned());
        let mut changes = e.changes.clone();
        if let Some(c) = changes.as_mut() {
            replace_nul(c);
        }
        sqlx::query(
            "INSERT INTO audit_logs (id, user_id, tenant_id, action, resource_type, resource_id, changes, \
             ip_address, user_agent, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(e.id)
        .bind(text(&e.user_id))
        .bind(replace_nul_str(&e.tenant_id).as_ref())
        .bind(replace_nul_str(&e.action).as_ref())
        .bind(replace_nul_str(&e.resource_type).as_ref())
        .bind(text(&e.resource_id))
        .bind(changes)
        .bind(text(&e.ip_address))
        .bind(text(&e.user_agent))
        .bind(e.created_at)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn audit(&self, tenant_id: &str, f: &AuditFilter) -> Result<Vec<AuditEntry>> {
        let mut q = QueryBuilder::new("SELECT * FROM audit_logs WHERE tenant_id = ");
        q.push_bind(tenant_id);
        let eq = [
            ("user_id", &f.user_id),
            ("resource_type", &f.resource_type),
            ("resource_id", &f.resource_id),
            ("action", &f.action),
        ];
        for (col, v) in eq {
            if let Some(v) = v {
                q.push(format!(" AND {col} = ")).push_bind(v.clone());
            }
        }
        if let Some(s) = f.start {
            q.push(" AND created_at >= ").push_bind(s);
        }
        if let Some(e) = f.end {
            q.push(" AND created_at < ").push_bind(e);
        }
        q.push(" ORDER BY created_at DESC, id DESC LIMIT ")
            .push_bind(i64_of(f.limit))
            .push(" OFFSET ")
            .push_bind(i64_of(f.offset));
        q.build()
            .fetch_all(&self.pool)
            .await
            .map_err(db)?
            .iter()
            .map(audit_row)
            .collect()
    }

    async fn claim(&self, kind: &str, id: &str, tenant_id: Option<&str>) -> Result<()> {
        let inserted = sqlx::query(
            "INSERT INTO definition_owners (kind, id, tenant_id) VALUES ($1, $2, $3) ON CONFLICT (kind, id) DO NOTHING",
        )
        .bind(kind)
        .bind(id)
        .bind(tenant_id)
        .execute(&self.pool)
        .await
        .map_err(db)?
        .rows_affected();
        if inserted == 1 {
            return Ok(());
        }
        match self.owner(kind, id).await? {
            Some(o) if o.tenant_id.as_deref() == tenant_id => Ok(()),
            _ => Err(Error::Conflict(format!("{kind} id `{id}` is taken"))),
        }
    }

    async fn owner(&self, kind: &str, id: &str) -> Result<Option<Owner>> {
        let row =
            sqlx::query("SELECT tenant_id FROM definition_owners WHERE kind = $1 AND id = $2")
                .bind(kind)
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(db)?;
        row.map(|r| {
            Ok(Owner {
                tenant_id: r.try_get("tenant_id").map_err(db)?,
            })
        })
        .transpose()
    }

    async fn release(&self, kind: &str, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM definition_owners WHERE kind = $1 AND id = $2")
            .bind(kind)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn put_alert(&self, a: &AlertConfig) -> Result<()> {
        let rule = serde_json::to_value(a.rule_type)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let done = sqlx::query(
            "INSERT INTO alert_configs (id, tenant_id, name, description, rule_type, threshold, comparison_operator, \
             window_secs, cooldown_secs, webhook_url, enabled, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, description = EXCLUDED.description, \
             rule_type = EXCLUDED.rule_type, threshold = EXCLUDED.threshold, \
             comparison_operator = EXCLUDED.comparison_operator, window_secs = EXCLUDED.window_secs, \
             cooldown_secs = EXCLUDED.cooldown_secs, webhook_url = EXCLUDED.webhook_url, enabled = EXCLUDED.enabled \
             WHERE alert_configs.tenant_id = EXCLUDED.tenant_id",
        )
        .bind(a.id)
        .bind(&a.tenant_id)
        .bind(replace_nul_str(&a.name).as_ref())
        .bind(a.description.as_deref().map(|d| replace_nul_str(d).into_owned()))
        .bind(rule)
        .bind(a.threshold)
        .bind(&a.comparison_operator)
        .bind(i64_of(a.window_secs))
        .bind(i64_of(a.cooldown_secs))
        .bind(a.webhook_url.as_deref().map(|u| replace_nul_str(u).into_owned()))
        .bind(a.enabled)
        .bind(a.created_at)
        .execute(&self.pool)
        .await
        .map_err(db)?
        .rows_affected();
        if done == 0 {
            return Err(Error::Conflict(format!("alert `{}` exists", a.id)));
        }
        Ok(())
    }

    async fn alerts(&self, tenant_id: &str) -> Result<Vec<AlertConfig>> {
        sqlx::query("SELECT * FROM alert_configs WHERE tenant_id = $1 ORDER BY created_at, id")
            .bind(tenant_id)
            .fetch_all(&self.pool)
            .await
            .map_err(db)?
            .iter()
            .map(alert)
            .collect()
    }

    async fn enabled_alerts(&self) -> Result<Vec<AlertConfig>> {
        sqlx::query("SELECT * FROM alert_configs WHERE enabled ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await
            .map_err(db)?
            .iter()
            .map(alert)
            .collect()
    }

    async fn delete_alert(&self, tenant_id: &str, id: Uuid) -> Result<()> {
        let n = sqlx::query("DELETE FROM alert_configs WHERE id = $1 AND tenant_id = $2")
            .bind(id)
            .bind(tenant_id)
            .execute(&self.pool)
            .await
            .map_err(db)?
            .rows_affected();
        if n == 0 {
            return Err(Error::not_found("alert", id));
        }
        Ok(())
    }

    async fn fire_alert(&self, e: &AlertEvent, cooldown_secs: u64) -> Result<bool> {
        let mut metadata = e.metadata.clone();
        replace_nul(&mut metadata);
        let n = sqlx::query(
            "INSERT INTO alert_history (id, alert_config_id, tenant_id, triggered_at, resolved_at, message, metadata) \
             SELECT $1, $2, $3, $4, $5, $6, $7 WHERE NOT EXISTS ( \
               SELECT 1 FROM alert_history WHERE alert_config_id = $2 \
               AND triggered_at > $4 - make_interval(secs => $8::double precision))",
        )
        .bind(e.id)
        .bind(e.alert_config_id)
        .bind(&e.tenant_id)
        .bind(e.triggered_at)
        .bind(e.resolved_at)
        .bind(replace_nul_str(&e.message).as_ref())
        .bind(metadata)
        .bind(i64_of(cooldown_secs))
        .execute(&self.pool)
        .await
        .map_err(db)?
        .rows_affected();
        Ok(n == 1)
    }

    async fn alert_history(
        &self,
        tenant_id: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<AlertEvent>> {
        sqlx::query(
            "SELECT * FROM alert_history WHERE tenant_id = $1 ORDER BY triggered_at DESC, id DESC LIMIT $2 OFFSET $3",
        )
        .bind(tenant_id)
        .bind(i64_of(limit))
        .bind(i64_of(offset))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?
        .iter()
        .map(firing)
        .collect()
    }

    async fn resolve_alert(&self, tenant_id: &str, id: Uuid) -> Result<AlertEvent> {
        let row = sqlx::query(
            "UPDATE alert_history SET resolved_at = coalesce(resolved_at, now()) \
             WHERE id = $1 AND tenant_id = $2 RETURNING *",
        )
        .bind(id)
        .bind(tenant_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db)?;
        row.as_ref()
            .map(firing)
            .unwrap_or_else(|| Err(Error::not_found("alert event", id)))
    }

    async fn visible(
        &self,
        kind: &str,
        tenant_id: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<String>> {
        sqlx::query_scalar(
            "SELECT id FROM definition_owners WHERE kind = $1 AND (tenant_id = $2 OR tenant_id IS NULL) \
             ORDER BY seq LIMIT $3 OFFSET $4",
        )
        .bind(kind)
        .bind(tenant_id)
        .bind(i64_of(limit))
        .bind(i64_of(offset))
        .fetch_all(&self.pool)
        .await
        .map_err(db)
    }
}

async fn insert_refresh(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    t: &RefreshToken,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO auth_refresh_tokens (token_hash, session_id, user_id, expires_at, used_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&t.token_hash)
    .bind(t.session_id)
    .bind(t.user_id)
    .bind(t.expires_at)
    .bind(t.used_at)
    .execute(&mut **tx)
    .await
    .map_err(db)?;
    Ok(())
}
