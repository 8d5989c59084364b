//! [`MemoryRecallStore`]: agent memory in process memory.
//!
//! Each tenant keeps its items in a map and, per embedding dimension count, a contiguous
//! array of [`Quantized`] vectors (one byte per dimension) with the few fields the read
//! scope checks. A search scans that array — every admitted vector is scored, so nothing an
//! index would miss is lost — then ranks the best candidates again on their `f32` vectors
//! and checks them against the full scope and filter. When a metadata filter leaves too few
//! of those candidates, every admitted item is checked exactly instead.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::RwLock;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::recall::vector::{by_score_desc, cosine, top_k, Quantized};
use crate::recall::{
    MemoryFilter, MemoryItem, MemoryKind, Owner, ReadScope, RecallStore, ScoredItem, Visibility,
};

/// Candidates ranked again exactly: this many per result asked for, and at least
/// [`MIN_RERANK`].
const RERANK_PER_RESULT: usize = 4;
const MIN_RERANK: usize = 64;

/// An item and where its vector sits in its tenant's array.
struct Entry {
    item: MemoryItem,
    /// Slot in the array of the embedding's dimension count (`None` without embedding).
    slot: Option<usize>,
}

/// What the scan checks before scoring a vector (the final check is on the item itself).
#[derive(Clone, Copy)]
struct SlotInfo {
    owner: u64,
    shared: bool,
    kind: MemoryKind,
    expires_at: Option<DateTime<Utc>>,
}

/// The quantized vectors of one tenant and dimension count, slot by slot.
#[derive(Default)]
struct Vectors {
    codes: Vec<i8>,
    scales: Vec<f32>,
    info: Vec<SlotInfo>,
    ids: Vec<Uuid>,
}

impl Vectors {
    fn push(&mut self, q: Quantized, info: SlotInfo, id: Uuid) -> usize {
        self.codes.extend_from_slice(&q.codes);
        self.scales.push(q.scale);
        self.info.push(info);
        self.ids.push(id);
        self.ids.len() - 1
    }

    /// Removes `slot` by moving the last one into it; returns the id that moved, if any.
    fn swap_remove(&mut self, slot: usize, dims: usize) -> Option<Uuid> {
        let last = self.ids.len().checked_sub(1)?;
        if slot != last {
            self.codes
                .copy_within(last * dims..(last + 1) * dims, slot * dims);
        }
        self.codes.truncate(last * dims);
        self.scales.swap_remove(slot);
        self.info.swap_remove(slot);
        self.ids.swap_remove(slot);
        (slot != last).then(|| self.ids[slot])
    }
}

#[derive(Default)]
struct Tenant {
    items: HashMap<Uuid, Entry>,
    vectors: HashMap<usize, Vectors>,
}

impl Tenant {
    fn insert(&mut self, item: MemoryItem, owner_hash: u64) {
        self.remove(item.id);
        let slot = (!item.embedding.is_empty()).then(|| {
            let info = SlotInfo {
                owner: owner_hash,
                shared: item.visibility == Visibility::Tenant,
                kind: item.kind,
                expires_at: item.expires_at,
            };
            self.vectors.entry(item.embedding.len()).or_default().push(
                Quantized::new(&item.embedding),
                info,
                item.id,
            )
        });
        self.items.insert(item.id, Entry { item, slot });
    }

    fn remove(&mut self, id: Uuid) -> Option<MemoryItem> {
        let entry = self.items.remove(&id)?;
        if let Some(slot) = entry.slot {
            let dims = entry.item.embedding.len();
            if let Some(vectors) = self.vectors.get_mut(&dims) {
                if let Some(moved) = vectors.swap_remove(slot, dims) {
                    if let Some(e) = self.items.get_mut(&moved) {
                        e.slot = Some(slot);
                    }
                }
            }
        }
        Some(entry.item)
    }
}

#[derive(Default)]
struct State {
    /// Items by tenant.
    tenants: HashMap<String, Tenant>,
    /// The tenant of every id.
    tenant_of: HashMap<Uuid, String>,
}

/// A [`RecallStore`] in memory: each tenant's items apart, searched by a scan of their
/// quantized vectors and an exact ranking of the best candidates (see the module docs).
#[derive(Default)]
pub struct MemoryRecallStore {
    state: RwLock<State>,
    hasher: RandomState,
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

    /// Items held, expired ones not yet purged included.
    pub fn len(&self) -> usize {
        self.read().tenant_of.len()
    }

    /// Whether it holds no item.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    fn owner_hash(&self, owner: &Owner) -> u64 {
        let mut h = self.hasher.build_hasher();
        owner.hash(&mut h);
        std::hash::Hasher::finish(&h)
    }

    /// Whether `scope` and `filter` admit `item` at `now` (the exact check).
    fn admits(
        scope: &ReadScope,
        filter: &MemoryFilter,
        item: &MemoryItem,
        now: DateTime<Utc>,
    ) -> bool {
        !item.expired_at(now) && scope.admits(item) && filter.matches(item)
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
            .flat_map(|t| t.items.values())
            .filter(move |e| Self::admits(scope, filter, &e.item, now))
    }
}

/// Scores every slot of `vectors` the scope may read, by the quantized vectors.
fn approximate(
    vectors: &Vectors,
    query: &Quantized,
    owners: &[u64],
    scope: &ReadScope,
    filter: &MemoryFilter,
    now: DateTime<Utc>,
) -> Vec<(f32, usize)> {
    let dims = query.codes.len();
    vectors
        .info
        .iter()
        .enumerate()
        .filter(|(_, s)| {
            s.expires_at.is_none_or(|t| t > now)
                && (owners.contains(&s.owner) || (scope.shared && s.shared))
                && (filter.kinds.is_empty() || filter.kinds.contains(&s.kind))
        })
        .map(|(slot, _)| {
            let codes = &vectors.codes[slot * dims..(slot + 1) * dims];
            (query.similarity_codes(codes, vectors.scales[slot]), slot)
        })
        .collect()
}

/// The second pass: candidates checked against the full scope and filter, scored exactly.
struct Exact<'a> {
    tenant: &'a Tenant,
    vectors: &'a Vectors,
    scope: &'a ReadScope,
    filter: &'a MemoryFilter,
    query: &'a [f32],
    now: DateTime<Utc>,
}

impl<'a> Exact<'a> {
    fn rank(&self, candidates: &[(f32, usize)]) -> Vec<(f32, &'a MemoryItem)> {
        candidates
            .iter()
            .filter_map(|(_, slot)| self.tenant.items.get(&self.vectors.ids[*slot]))
            .filter(|e| MemoryRecallStore::admits(self.scope, self.filter, &e.item, self.now))
            .map(|e| (cosine(&e.item.embedding, self.query), &e.item))
            .collect()
    }
}

#[async_trait]
impl RecallStore for MemoryRecallStore {
    async fn put(&self, item: &MemoryItem) -> Result<()> {
        if item.tenant_id.is_empty() {
            return Err(Error::InvalidInput("memory item without tenant".into()));
        }
        let owner_hash = self.owner_hash(&item.owner);
        let mut state = self.write();
        let mut stored = item.clone();
        if let Some(t) = state.tenant_of.get(&item.id) {
            let old = state.tenants.get(t).and_then(|t| t.items.get(&item.id));
            match old {
                Some(e) if *t == item.tenant_id && e.item.owner == item.owner => {
                    stored.created_at = e.item.created_at;
                }
                _ => return Err(Error::Conflict(format!("memory id {} is taken", item.id))),
            }
        }
        // As on every backend: NUL is stored as U+FFFD.
        if stored.content.contains('\0') {
            stored.content = crate::nul::replace_nul_str(&stored.content).into_owned();
        }
        let mut metadata = serde_json::Value::Object(std::mem::take(&mut stored.metadata));
        crate::nul::replace_nul(&mut metadata);
        if let serde_json::Value::Object(m) = metadata {
            stored.metadata = m;
        }
        state.tenant_of.insert(item.id, item.tenant_id.clone());
        state
            .tenants
            .entry(item.tenant_id.clone())
            .or_default()
            .insert(stored, owner_hash);
        Ok(())
    }

    async fn get(&self, scope: &ReadScope, id: Uuid) -> Result<MemoryItem> {
        let state = self.read();
        state
            .tenants
            .get(&scope.tenant_id)
            .and_then(|t| t.items.get(&id))
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
        let now = Utc::now();
        let state = self.read();
        let Some(tenant) = state.tenants.get(&scope.tenant_id) else {
            return Ok(Vec::new());
        };
        let Some(vectors) = tenant.vectors.get(&query.len()) else {
            return Ok(Vec::new());
        };
        let owners: Vec<u64> = scope.owners.iter().map(|o| self.owner_hash(o)).collect();
        let q = Quantized::new(query);
        let mut pool = approximate(vectors, &q, &owners, scope, filter, now);
        let rerank = limit.saturating_mul(RERANK_PER_RESULT).max(MIN_RERANK);
        let check = Exact {
            tenant,
            vectors,
            scope,
            filter,
            query,
            now,
        };
        let mut found = if pool.len() > rerank {
            pool.select_nth_unstable_by(rerank, |a, b| by_score_desc(a.0, b.0));
            check.rank(&pool[..rerank])
        } else {
            check.rank(&pool)
        };
        // A selective metadata filter: the best approximate candidates are not enough.
        if found.len() < limit && pool.len() > rerank {
            found = check.rank(&pool);
        }
        Ok(top_k(found, limit)
            .into_iter()
            .map(|(score, item)| ScoredItem {
                item: item.clone(),
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
        let Some(tenant) = state.tenants.get_mut(tenant_id) else {
            return Ok(0);
        };
        let doomed: Vec<Uuid> = tenant
            .items
            .values()
            .filter(|e| {
                owners.contains(&e.item.owner)
                    && (ids.is_empty() || ids.contains(&e.item.id))
                    && filter.matches(&e.item)
            })
            .map(|e| e.item.id)
            .collect();
        for id in &doomed {
            tenant.remove(*id);
            state.tenant_of.remove(id);
        }
        Ok(doomed.len() as u64)
    }

    async fn purge_expired(&self, now: DateTime<Utc>, limit: u64) -> Result<u64> {
        let mut guard = self.write();
        let state = &mut *guard;
        let mut n = 0u64;
        for tenant in state.tenants.values_mut() {
            let doomed: Vec<Uuid> = tenant
                .items
                .values()
                .filter(|e| e.item.expired_at(now))
                .map(|e| e.item.id)
                .take(usize::try_from(limit - n).unwrap_or(usize::MAX))
                .collect();
            for id in doomed {
                tenant.remove(id);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recall::{OwnerKind, Visibility};
    use serde_json::json;

    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> f32 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        }

        fn vector(&mut self, dims: usize) -> Vec<f32> {
            (0..dims).map(|_| self.next()).collect()
        }
    }

    /// The reference: every admitted item scored exactly.
    fn exact(
        items: &[MemoryItem],
        scope: &ReadScope,
        filter: &MemoryFilter,
        q: &[f32],
        k: usize,
    ) -> Vec<Uuid> {
        let now = Utc::now();
        let scored = items
            .iter()
            .filter(|i| MemoryRecallStore::admits(scope, filter, i, now))
            .filter(|i| i.embedding.len() == q.len())
            .map(|i| (cosine(&i.embedding, q), i.id))
            .collect();
        top_k(scored, k).into_iter().map(|(_, id)| id).collect()
    }

    #[tokio::test]
    async fn search_agrees_with_an_exact_scan_through_filters_and_deletions() {
        let store = MemoryRecallStore::new();
        let mut rng = Rng(0x0ddb_1a5e_5eed);
        let owners = [
            Owner::new(OwnerKind::User, "alice"),
            Owner::new(OwnerKind::User, "bob"),
            Owner::new(OwnerKind::Tenant, "t1"),
        ];
        let mut items = Vec::new();
        for i in 0..900usize {
            let tenant = if i % 5 == 0 { "t2" } else { "t1" };
            let mut item = MemoryItem::new(tenant, owners[i % 3].clone(), format!("item {i}"));
            item.embedding = rng.vector(if i % 11 == 0 { 8 } else { 32 });
            item.visibility = if i % 4 == 0 {
                Visibility::Tenant
            } else {
                Visibility::Private
            };
            item.kind = MemoryKind::ALL[i % 3];
            if i % 7 == 0 {
                item.expires_at = Some(Utc::now() - chrono::Duration::seconds(1));
            }
            if i % 50 == 1 {
                item.metadata.insert("rare".into(), json!(true));
            }
            store.put(&item).await.unwrap();
            items.push(item);
        }
        // Deletions move other vectors into the freed slots; replacements move theirs.
        let doomed: Vec<Uuid> = items.iter().step_by(6).map(|i| i.id).collect();
        for tenant in ["t1", "t2"] {
            store
                .delete(tenant, &owners, &doomed, &MemoryFilter::default())
                .await
                .unwrap();
        }
        items.retain(|i| !doomed.contains(&i.id));
        for item in items.iter_mut().skip(3).step_by(10) {
            item.embedding = rng.vector(32);
            store.put(item).await.unwrap();
        }

        let scopes = [
            ReadScope {
                tenant_id: "t1".into(),
                owners: vec![owners[0].clone()],
                shared: true,
            },
            ReadScope {
                tenant_id: "t1".into(),
                owners: owners.to_vec(),
                shared: false,
            },
            ReadScope {
                tenant_id: "t2".into(),
                owners: vec![owners[1].clone()],
                shared: false,
            },
        ];
        let rare = MemoryFilter {
            metadata: json!({"rare": true}).as_object().cloned().unwrap(),
            ..Default::default()
        };
        let profile = MemoryFilter {
            kinds: vec![MemoryKind::Profile],
            ..Default::default()
        };
        for scope in &scopes {
            for filter in [MemoryFilter::default(), rare.clone(), profile.clone()] {
                for _ in 0..10 {
                    let q = rng.vector(32);
                    let got: Vec<Uuid> = store
                        .search(scope, &q, &filter, 10)
                        .await
                        .unwrap()
                        .into_iter()
                        .map(|s| {
                            assert!(MemoryRecallStore::admits(
                                scope,
                                &filter,
                                &s.item,
                                Utc::now()
                            ));
                            s.item.id
                        })
                        .collect();
                    assert_eq!(got, exact(&items, scope, &filter, &q, 10));
                }
            }
        }
        // Other dimensions only meet their own kind.
        let q = rng.vector(8);
        let got = store
            .search(&scopes[1], &q, &MemoryFilter::default(), 5)
            .await
            .unwrap();
        assert!(!got.is_empty() && got.iter().all(|s| s.item.embedding.len() == 8));
    }
}
