//! [`MemoryRecallStore`]: agent memory in process memory, searched exactly.

use std::collections::HashMap;
use std::sync::RwLock;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::recall::vector::{dot, normalized, top_k};
use crate::recall::{MemoryFilter, MemoryItem, Owner, ReadScope, RecallStore, ScoredItem};

/// An item and its unit-length vector.
struct Entry {
    item: MemoryItem,
    unit: Vec<f32>,
}

#[derive(Default)]
struct State {
    /// Items by tenant, then id.
    tenants: HashMap<String, HashMap<Uuid, Entry>>,
    /// The tenant of every id.
    tenant_of: HashMap<Uuid, String>,
}

/// A [`RecallStore`] in memory: each tenant's items in their own map, searched by an exact
/// scan of the tenant's vectors.
#[derive(Default)]
pub struct MemoryRecallStore {
    state: RwLock<State>,
}

impl std::fmt::Debug for MemoryRecallStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryRecallStore").finish_non_exhaustive()
    }
}

impl MemoryRecallStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The readable live entries of `scope` that `filter` admits.
    fn visible<'a>(
        state: &'a State,
        scope: &'a ReadScope,
        filter: &'a MemoryFilter,
        now: DateTime<Utc>,
    ) -> impl Iterator<Item = &'a Entry> + 'a {
        state
            .tenants
            .get(&scope.tenant_id)
            .into_iter()
            .flat_map(|m| m.values())
            .filter(move |e| {
                !e.item.expired_at(now) && scope.admits(&e.item) && filter.matches(&e.item)
            })
    }
}

#[async_trait]
impl RecallStore for MemoryRecallStore {
    async fn put(&self, item: &MemoryItem) -> Result<()> {
        if item.tenant_id.is_empty() {
            return Err(Error::InvalidInput("memory item without tenant".into()));
        }
        let mut state = self.write();
        if let Some(t) = state.tenant_of.get(&item.id) {
            let same = *t == item.tenant_id
                && state.tenants[t]
                    .get(&item.id)
                    .is_some_and(|e| e.item.owner == item.owner);
            if !same {
                return Err(Error::Conflict(format!("memory id {} is taken", item.id)));
            }
        }
        let mut stored = item.clone();
        // As on every backend: NUL is stored as U+FFFD.
        if stored.content.contains('\0') {
            stored.content = crate::nul::replace_nul_str(&stored.content).into_owned();
        }
        let mut metadata = serde_json::Value::Object(std::mem::take(&mut stored.metadata));
        crate::nul::replace_nul(&mut metadata);
        if let serde_json::Value::Object(m) = metadata {
            stored.metadata = m;
        }
        if let Some(old) = state
            .tenants
            .get(&item.tenant_id)
            .and_then(|m| m.get(&item.id))
        {
            stored.created_at = old.item.created_at;
        }
        let unit = normalized(&item.embedding);
        state.tenant_of.insert(item.id, item.tenant_id.clone());
        state
            .tenants
            .entry(item.tenant_id.clone())
            .or_default()
            .insert(item.id, Entry { item: stored, unit });
        Ok(())
    }

    async fn get(&self, scope: &ReadScope, id: Uuid) -> Result<MemoryItem> {
        let state = self.read();
        state
            .tenants
            .get(&scope.tenant_id)
            .and_then(|m| m.get(&id))
            .filter(|e| !e.item.expired_at(Utc::now()) && scope.admits(&e.item))
            .map(|e| e.item.clone())
            .ok_or_else(|| Error::not_found("memory item", id))
    }

    async fn list(
        &self,
        scope: &ReadScope,
        filter: &MemoryFilter,
        limit: usize,
    ) -> Result<Vec<MemoryItem>> {
        let state = self.read();
        let mut items: Vec<&MemoryItem> = Self::visible(&state, scope, filter, Utc::now())
            .map(|e| &e.item)
            .collect();
        items.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        Ok(items.into_iter().take(limit).cloned().collect())
    }

    async fn search(
        &self,
        scope: &ReadScope,
        query: &[f32],
        filter: &MemoryFilter,
        limit: usize,
    ) -> Result<Vec<ScoredItem>> {
        let q = normalized(query);
        let state = self.read();
        let scored: Vec<(f32, &Entry)> = Self::visible(&state, scope, filter, Utc::now())
            .filter(|e| e.unit.len() == q.len())
            .map(|e| (dot(&e.unit, &q), e))
            .collect();
        Ok(top_k(scored, limit)
            .into_iter()
            .map(|(score, e)| ScoredItem {
                item: e.item.clone(),
                score,
            })
            .collect())
    }

    async fn delete(
        &self,
        tenant_id: &str,
        owners: &[Owner],
        ids: &[Uuid],
        filter: &MemoryFilter,
    ) -> Result<u64> {
        let mut guard = self.write();
        let state = &mut *guard;
        let Some(items) = state.tenants.get_mut(tenant_id) else {
            return Ok(0);
        };
        let doomed: Vec<Uuid> = items
            .values()
            .filter(|e| {
                owners.contains(&e.item.owner)
                    && (ids.is_empty() || ids.contains(&e.item.id))
                    && filter.matches(&e.item)
            })
            .map(|e| e.item.id)
            .collect();
        for id in &doomed {
            items.remove(id);
            state.tenant_of.remove(id);
        }
        Ok(doomed.len() as u64)
    }

    async fn purge_expired(&self, now: DateTime<Utc>, limit: u64) -> Result<u64> {
        let mut guard = self.write();
        let state = &mut *guard;
        let mut n = 0u64;
        for items in state.tenants.values_mut() {
            let doomed: Vec<Uuid> = items
                .values()
                .filter(|e| e.item.expired_at(now))
                .map(|e| e.item.id)
                .take(usize::try_from(limit - n).unwrap_or(usize::MAX))
                .collect();
            for id in doomed {
                items.remove(&id);
                state.tenant_of.remove(&id);
                n += 1;
            }
            if n >= limit {
                break;
            }
        }
        Ok(n)
    }
}
