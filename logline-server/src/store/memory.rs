//! [`MemoryServerStore`]: the server's records in process memory (embedded mode, tests).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use logline_core::{Error, Result};
use uuid::Uuid;

use super::{
    AlertConfig, AlertEvent, ApiKey, AuditEntry, AuditFilter, Owner, RefreshToken, ServerStore,
    Session, User,
};

#[derive(Default)]
struct State {
    users: HashMap<Uuid, User>,
    emails: HashMap<String, Uuid>,
    sessions: HashMap<Uuid, Session>,
    refresh: HashMap<String, RefreshToken>,
    keys: HashMap<Uuid, ApiKey>,
    key_hashes: HashMap<String, Uuid>,
    audit: Vec<AuditEntry>,
    /// (kind, id) → (owner, claim order).
    owners: BTreeMap<(String, String), (Owner, u64)>,
    claims: u64,
    alerts: Vec<AlertConfig>,
    firings: Vec<AlertEvent>,
}

/// The server's records in memory; cheap to share behind an `Arc`.
#[derive(Default)]
pub struct MemoryServerStore {
    state: Mutex<State>,
}

impl MemoryServerStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every entry is written whole, so a panic elsewhere cannot leave one torn.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn matches(e: &AuditEntry, f: &AuditFilter) -> bool {
    fn eq(want: &Option<String>, got: Option<&str>) -> bool {
        want.as_deref().is_none_or(|w| Some(w) == got)
    }
    eq(&f.user_id, e.user_id.as_deref())
        && eq(&f.resource_type, Some(&e.resource_type))
        && eq(&f.resource_id, e.resource_id.as_deref())
        && eq(&f.action, Some(&e.action))
        && f.start.is_none_or(|s| e.created_at >= s)
        && f.end.is_none_or(|end| e.created_at < end)
}

#[async_trait]
impl ServerStore for MemoryServerStore {
    async fn create_user(&self, user: &User) -> Result<()> {
        let mut s = self.lock();
        let email = user.email.to_lowercase();
        if s.emails.contains_key(&email) {
            return Err(Error::Conflict(format!("email `{}` is taken", user.email)));
        }
        s.emails.insert(email, user.id);
        s.users.insert(user.id, user.clone());
        Ok(())
    }

    async fn user_by_email(&self, email: &str) -> Result<User> {
        let s = self.lock();
        s.emails
            .get(&email.to_lowercase())
            .and_then(|id| s.users.get(id))
            .cloned()
            .ok_or_else(|| Error::not_found("user", email))
    }

    async fn user(&self, id: Uuid) -> Result<User> {
        self.lock()
            .users
            .get(&id)
            .cloned()
            .ok_or_else(|| Error::not_found("user", id))
    }

    async fn count_users(&self) -> Result<u64> {
        Ok(self.lock().users.len() as u64)
    }

    async fn create_session(&self, session: &Session, token: &RefreshToken) -> Result<()> {
        let mut s = self.lock();
        s.sessions.insert(session.id, session.clone());
        s.refresh.insert(token.token_hash.clone(), token.clone());
        Ok(())
    }

    async fn session(&self, id: Uuid) -> Result<Session> {
        self.lock()
            .sessions
            .get(&id)
            .cloned()
            .ok_or_else(|| Error::not_found("session", id))
    }

    async fn rotate_refresh(&self, token_hash: &str, next: &RefreshToken) -> Result<RefreshToken> {
        let mut s = self.lock();
        let Some(token) = s.refresh.get_mut(token_hash) else {
            return Err(Error::not_found("refresh token", "(given)"));
        };
        let before = token.clone();
        if before.used_at.is_none() {
            token.used_at = Some(Utc::now());
            s.refresh.insert(next.token_hash.clone(), next.clone());
        }
        Ok(before)
    }

    async fn refresh_token(&self, token_hash: &str) -> Result<RefreshToken> {
        self.lock()
            .refresh
            .get(token_hash)
            .cloned()
            .ok_or_else(|| Error::not_found("refresh token", "(given)"))
    }

    async fn revoke_session(&self, id: Uuid) -> Result<()> {
        if let Some(session) = self.lock().sessions.get_mut(&id) {
            session.revoked_at.get_or_insert_with(Utc::now);
        }
        Ok(())
    }

    async fn create_api_key(&self, key: &ApiKey) -> Result<()> {
        let mut s = self.lock();
        if s.key_hashes.contains_key(&key.key_hash) {
            return Err(Error::Conflict("duplicate API key".into()));
        }
        s.key_hashes.insert(key.key_hash.clone(), key.id);
        s.keys.insert(key.id, key.clone());
        Ok(())
    }

    async fn api_key_by_hash(&self, key_hash: &str) -> Result<ApiKey> {
        let s = self.lock();
        s.key_hashes
            .get(key_hash)
            .and_then(|id| s.keys.get(id))
            .cloned()
            .ok_or_else(|| Error::not_found("api key", "(given)"))
    }

    async fn list_api_keys(&self, user_id: Uuid) -> Result<Vec<ApiKey>> {
        let mut keys: Vec<ApiKey> = self
            .lock()
            .keys
            .values()
            .filter(|k| k.user_id == user_id)
            .cloned()
            .collect();
        keys.sort_by_key(|k| std::cmp::Reverse((k.created_at, k.id)));
        Ok(keys)
    }

    async fn revoke_api_key(&self, user_id: Uuid, id: Uuid) -> Result<ApiKey> {
        let mut s = self.lock();
        match s.keys.get_mut(&id) {
            Some(key) if key.user_id == user_id => {
                key.revoked_at.get_or_insert_with(Utc::now);
                Ok(key.clone())
            }
            _ => Err(Error::not_found("api key", id)),
        }
    }

    async fn touch_api_key(&self, id: Uuid, at: DateTime<Utc>) -> Result<()> {
        if let Some(key) = self.lock().keys.get_mut(&id) {
            key.last_used_at = Some(at);
        }
        Ok(())
    }

    async fn append_audit(&self, entry: &AuditEntry) -> Result<()> {
        self.lock().audit.push(entry.clone());
        Ok(())
    }

    async fn audit(&self, tenant_id: &str, filter: &AuditFilter) -> Result<Vec<AuditEntry>> {
        let s = self.lock();
        let mut rows: Vec<&AuditEntry> = s
            .audit
            .iter()
            .filter(|e| e.tenant_id == tenant_id && matches(e, filter))
            .collect();
        // Stable newest-first: insertion order breaks timestamp ties.
        rows.reverse();
        rows.sort_by_key(|e| std::cmp::Reverse(e.created_at));
        Ok(rows
            .into_iter()
            .skip(usize::try_from(filter.offset).unwrap_or(usize::MAX))
            .take(usize::try_from(filter.limit).unwrap_or(usize::MAX))
            .cloned()
            .collect())
    }

    async fn purge_audit(&self, before: DateTime<Utc>, limit: u64) -> Result<u64> {
        let mut s = self.lock();
        let mut left = usize::try_from(limit).unwrap_or(usize::MAX);
        let len = s.audit.len();
        s.audit.retain(|e| {
            let expired = left > 0 && e.created_at < before;
            if expired {
                left -= 1;
            }
            !expired
        });
        Ok((len - s.audit.len()) as u64)
    }

    async fn claim(&self, kind: &str, id: &str, tenant_id: Option<&str>) -> Result<()> {
        let mut s = self.lock();
        let key = (kind.to_string(), id.to_string());
        if let Some((owner, _)) = s.owners.get(&key) {
            return if owner.tenant_id.as_deref() == tenant_id {
                Ok(())
            } else {
                Err(Error::Conflict(format!("{kind} id `{id}` is taken")))
            };
        }
        s.claims += 1;
        let order = s.claims;
        let owner = Owner {
            tenant_id: tenant_id.map(str::to_string),
        };
        s.owners.insert(key, (owner, order));
        Ok(())
    }

    async fn owner(&self, kind: &str, id: &str) -> Result<Option<Owner>> {
        let key = (kind.to_string(), id.to_string());
        Ok(self.lock().owners.get(&key).map(|(o, _)| o.clone()))
    }

    async fn release(&self, kind: &str, id: &str) -> Result<()> {
        self.lock()
            .owners
            .remove(&(kind.to_string(), id.to_string()));
        Ok(())
    }

    async fn put_alert(&self, alert: &AlertConfig) -> Result<()> {
        let mut s = self.lock();
        match s.alerts.iter_mut().find(|a| a.id == alert.id) {
            Some(a) if a.tenant_id == alert.tenant_id => *a = alert.clone(),
            Some(_) => return Err(Error::Conflict(format!("alert `{}` exists", alert.id))),
            None => s.alerts.push(alert.clone()),
        }
        Ok(())
    }

    async fn alerts(&self, tenant_id: &str) -> Result<Vec<AlertConfig>> {
        Ok(self
            .lock()
            .alerts
            .iter()
            .filter(|a| a.tenant_id == tenant_id)
            .cloned()
            .collect())
    }

    async fn enabled_alerts(&self) -> Result<Vec<AlertConfig>> {
        Ok(self
            .lock()
            .alerts
            .iter()
            .filter(|a| a.enabled)
            .cloned()
            .collect())
    }

    async fn delete_alert(&self, tenant_id: &str, id: Uuid) -> Result<()> {
        let mut s = self.lock();
        let before = s.alerts.len();
        s.alerts
            .retain(|a| !(a.id == id && a.tenant_id == tenant_id));
        if s.alerts.len() == before {
            return Err(Error::not_found("alert", id));
        }
        s.firings.retain(|f| f.alert_config_id != id);
        Ok(())
    }

    async fn fire_alert(&self, event: &AlertEvent, cooldown_secs: u64) -> Result<bool> {
        let mut s = self.lock();
        let cooldown =
            chrono::Duration::seconds(i64::try_from(cooldown_secs).unwrap_or(i64::MAX / 2));
        let recent = s.firings.iter().any(|f| {
            f.alert_config_id == event.alert_config_id
                && f.triggered_at > event.triggered_at - cooldown
        });
        if recent {
            return Ok(false);
        }
        s.firings.push(event.clone());
        Ok(true)
    }

    async fn alert_history(
        &self,
        tenant_id: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<AlertEvent>> {
        let s = self.lock();
        let mut rows: Vec<&AlertEvent> = s
            .firings
            .iter()
            .filter(|f| f.tenant_id == tenant_id)
            .collect();
        rows.reverse();
        rows.sort_by_key(|f| std::cmp::Reverse(f.triggered_at));
        Ok(rows
            .into_iter()
            .skip(usize::try_from(offset).unwrap_or(usize::MAX))
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .cloned()
            .collect())
    }

    async fn resolve_alert(&self, tenant_id: &str, id: Uuid) -> Result<AlertEvent> {
        let mut s = self.lock();
        match s
            .firings
            .iter_mut()
            .find(|f| f.id == id && f.tenant_id == tenant_id)
        {
            Some(f) => {
                f.resolved_at.get_or_insert_with(Utc::now);
                Ok(f.clone())
            }
            None => Err(Error::not_found("alert event", id)),
        }
    }

    async fn visible(
        &self,
        kind: &str,
        tenant_id: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<String>> {
        let s = self.lock();
        let mut ids: Vec<(u64, &String)> = s
            .owners
            .iter()
            .filter(|((k, _), (o, _))| {
                k == kind && o.tenant_id.as_deref().is_none_or(|t| t == tenant_id)
            })
            .map(|((_, id), (_, order))| (*order, id))
            .collect();
        ids.sort();
        Ok(ids
            .into_iter()
            .skip(usize::try_from(offset).unwrap_or(usize::MAX))
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .map(|(_, id)| id.clone())
            .collect())
    }
}
