//! [`Recall`]: a [`RecallStore`] with an embedder, and [`TrustedOwners`], the owners a call
//! may act as, derived from its trusted context.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::{
    chunk_text, ChunkOptions, MemoryFilter, MemoryItem, MemoryKind, Owner, OwnerKind, ReadScope,
    RecallStore, ScoredItem, Visibility,
};
use crate::error::{Error, Result};
use crate::llm::Embedder;
use crate::tool::ToolContext;

/// What to remember (the owner and tenant are given separately, by trusted code).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Remember {
    /// The text.
    pub content: String,
    /// Kind.
    pub kind: MemoryKind,
    /// Visibility.
    pub visibility: Visibility,
    /// Lifetime from now; `None` = until deleted.
    pub ttl: Option<Duration>,
    /// Metadata (a JSON object).
    pub metadata: Map<String, Value>,
}

impl Remember {
    /// A private long-term item with `content`.
    pub fn text(content: impl Into<String>) -> Self {
        Remember {
            content: content.into(),
            ..Default::default()
        }
    }
}

/// A resource stored as chunks.
#[derive(Debug, Clone, PartialEq)]
pub struct Ingested {
    /// Id of the resource (in each chunk's metadata as `resource_id`).
    pub resource_id: Uuid,
    /// The chunks' item ids, in order.
    pub chunks: Vec<Uuid>,
}

/// The owners a call may act as: one tenant and, per owner, whether it may read and write.
/// Built from a [`ToolContext`] (never from model output), then narrowed by an app's
/// manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedOwners {
    /// Tenant.
    pub tenant_id: String,
    /// `(owner, may read, may write)`.
    pub owners: Vec<(Owner, bool, bool)>,
}

impl TrustedOwners {
    /// Every owner the context names, readable and writable: the user (when there is one),
    /// the tenant, the app, the agent and the run (when set).
    pub fn from_context(ctx: &ToolContext) -> Self {
        let s = &ctx.subject;
        let mut owners = Vec::new();
        let mut add = |kind, id: Option<String>| {
            if let Some(id) = id.filter(|i| !i.is_empty()) {
                owners.push((Owner::new(kind, id), true, true));
            }
        };
        add(OwnerKind::User, s.user_id.clone());
        add(OwnerKind::Tenant, Some(s.tenant_id.clone()));
        add(OwnerKind::App, s.app_id.clone());
        add(OwnerKind::Agent, ctx.agent_id.clone());
        add(OwnerKind::Run, ctx.run_id.map(|r| r.to_string()));
        TrustedOwners {
            tenant_id: s.tenant_id.clone(),
            owners,
        }
    }

    /// Keeps only what `grants` allow: `(kind, write)` — a kind not granted is dropped, a
    /// kind granted read-only loses write.
    pub fn restrict(mut self, grants: &[(OwnerKind, bool)]) -> Self {
        self.owners.retain_mut(|(o, _, w)| {
            let best = grants
                .iter()
                .filter(|(k, _)| *k == o.kind)
                .map(|(_, write)| *write)
                .max();
            match best {
                Some(write) => {
                    *w = *w && write;
                    true
                }
                None => false,
            }
        });
        self
    }

    fn find(&self, kind: OwnerKind) -> Result<&(Owner, bool, bool)> {
        self.owners
            .iter()
            .find(|(o, _, _)| o.kind == kind)
            .ok_or_else(|| Error::PolicyDenied {
                policy_id: None,
                reason: format!("`{}` memory is not reachable from this call", kind.as_str()),
            })
    }

    /// The owner to write as: `kind`, or by default the user, else the first writable one.
    pub fn writer(&self, kind: Option<OwnerKind>) -> Result<Owner> {
        let denied = |k: &str| Error::PolicyDenied {
            policy_id: None,
            reason: format!("`{k}` memory is read-only for this call"),
        };
        match kind {
            Some(k) => {
                let (o, _, w) = self.find(k)?;
                if *w {
                    Ok(o.clone())
                } else {
                    Err(denied(k.as_str()))
                }
            }
            None => self
                .owners
                .iter()
                .filter(|(_, _, w)| *w)
                .find(|(o, _, _)| o.kind == OwnerKind::User)
                .or_else(|| self.owners.iter().find(|(_, _, w)| *w))
                .map(|(o, _, _)| o.clone())
                .ok_or_else(|| denied("any")),
        }
    }

    /// What a read may see: the readable owners (only `kind` when given) and, when the tenant
    /// is readable, tenant-visible items of others.
    pub fn reader(&self, kind: Option<OwnerKind>) -> Result<ReadScope> {
        if let Some(k) = kind {
            self.find(k)?;
        }
        let owners: Vec<Owner> = self
            .owners
            .iter()
            .filter(|(o, r, _)| *r && kind.is_none_or(|k| o.kind == k))
            .map(|(o, _, _)| o.clone())
            .collect();
        let shared = kind.is_none()
            && self
                .owners
                .iter()
                .any(|(o, r, _)| *r && o.kind == OwnerKind::Tenant);
        Ok(ReadScope {
            tenant_id: self.tenant_id.clone(),
            owners,
            shared,
        })
    }

    /// The owners a delete may act for (writable ones; only `kind` when given).
    pub fn deleters(&self, kind: Option<OwnerKind>) -> Result<Vec<Owner>> {
        if let Some(k) = kind {
            self.writer(Some(k))?;
        }
        Ok(self
            .owners
            .iter()
            .filter(|(o, _, w)| *w && kind.is_none_or(|k| o.kind == k))
            .map(|(o, _, _)| o.clone())
            .collect())
    }
}

/// Agent memory: a [`RecallStore`] and the [`Embedder`] that makes its vectors.
#[derive(Clone)]
pub struct Recall {
    store: Arc<dyn RecallStore>,
    embedder: Arc<dyn Embedder>,
    query_prefix: String,
    passage_prefix: String,
}

impl std::fmt::Debug for Recall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recall")
            .field("embedder", &self.embedder.model())
            .finish_non_exhaustive()
    }
}

impl Recall {
    /// Memory in `store`, embedded by `embedder`.
    pub fn new(store: Arc<dyn RecallStore>, embedder: Arc<dyn Embedder>) -> Self {
        Recall {
            store,
            embedder,
            query_prefix: String::new(),
            passage_prefix: String::new(),
        }
    }

    /// Prefixes the embedder's model expects before queries and stored passages (E5 models:
    /// `"query: "` and `"passage: "`); none by default.
    pub fn with_prefixes(mut self, query: &str, passage: &str) -> Self {
        self.query_prefix = query.to_string();
        self.passage_prefix = passage.to_string();
        self
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn RecallStore> {
        &self.store
    }

    async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>> {
        let n = texts.len();
        let vectors = self.embedder.embed(&texts).await?;
        if vectors.len() != n {
            return Err(Error::Internal(format!(
                "embedder `{}` returned {} vectors for {n} texts",
                self.embedder.model(),
                vectors.len()
            )));
        }
        Ok(vectors)
    }

    /// Stores `what` for `owner` of `tenant_id` (trusted: the caller vouches for both).
    pub async fn remember(
        &self,
        tenant_id: &str,
        owner: Owner,
        what: Remember,
    ) -> Result<MemoryItem> {
        let mut items = self.remember_all(tenant_id, owner, vec![what]).await?;
        items
            .pop()
            .ok_or_else(|| Error::Internal("no item stored".into()))
    }

    /// Stores several items of one owner with one embedding call.
    pub async fn remember_all(
        &self,
        tenant_id: &str,
        owner: Owner,
        what: Vec<Remember>,
    ) -> Result<Vec<MemoryItem>> {
        if tenant_id.is_empty() {
            return Err(Error::InvalidInput("memory needs a tenant".into()));
        }
        if let Some(empty) = what.iter().position(|w| w.content.trim().is_empty()) {
            return Err(Error::InvalidInput(format!(
                "memory item {empty} has no content"
            )));
        }
        let texts = what
            .iter()
            .map(|w| format!("{}{}", self.passage_prefix, w.content))
            .collect();
        let vectors = self.embed(texts).await?;
        let now = Utc::now();
        let mut out = Vec::with_capacity(what.len());
        for (w, v) in what.into_iter().zip(vectors) {
            let mut item = MemoryItem::new(tenant_id, owner.clone(), w.content);
            item.kind = w.kind;
            item.visibility = w.visibility;
            item.metadata = w.metadata;
            item.expires_at = match w.ttl {
                Some(ttl) => Some(
                    now + chrono::Duration::from_std(ttl)
                        .map_err(|_| Error::InvalidInput("ttl is too long".into()))?,
                ),
                None => None,
            };
            item.embedding = v;
            self.store.put(&item).await?;
            out.push(item);
        }
        Ok(out)
    }

    /// The items most similar to `query` that `scope` may read and `filter` admits.
    pub async fn search(
        &self,
        scope: &ReadScope,
        query: &str,
        filter: &MemoryFilter,
        limit: usize,
    ) -> Result<Vec<ScoredItem>> {
        if query.trim().is_empty() {
            return Err(Error::InvalidInput("the search query is empty".into()));
        }
        let v = self
            .embed(vec![format!("{}{query}", self.query_prefix)])
            .await?
            .pop()
            .unwrap_or_default();
        self.store.search(scope, &v, filter, limit).await
    }

    /// Splits `text` into chunks and stores each as a long-term item of `owner` with
    /// metadata `resource_id`, `resource` (the name), `chunk` (index) and `metadata`.
    pub async fn ingest(
        &self,
        tenant_id: &str,
        owner: Owner,
        name: &str,
        text: &str,
        options: ChunkOptions,
        metadata: Map<String, Value>,
    ) -> Result<Ingested> {
        let resource_id = Uuid::now_v7();
        let chunks = chunk_text(text, options);
        if chunks.is_empty() {
            return Err(Error::InvalidInput(format!(
                "resource `{name}` has no text"
            )));
        }
        let what = chunks
            .into_iter()
            .enumerate()
            .map(|(i, content)| {
                let mut m = metadata.clone();
                m.insert("resource_id".into(), json!(resource_id));
                m.insert("resource".into(), json!(name));
                m.insert("chunk".into(), json!(i));
                Remember {
                    content,
                    metadata: m,
                    ..Default::default()
                }
            })
            .collect();
        let items = self.remember_all(tenant_id, owner, what).await?;
        Ok(Ingested {
            resource_id,
            chunks: items.into_iter().map(|i| i.id).collect(),
        })
    }

    /// Deletes a resource's chunks (those `owners` own).
    pub async fn forget_resource(
        &self,
        tenant_id: &str,
        owners: &[Owner],
        resource_id: Uuid,
    ) -> Result<u64> {
        let mut metadata = Map::new();
        metadata.insert("resource_id".into(), json!(resource_id));
        let filter = MemoryFilter {
            metadata,
            ..Default::default()
        };
        self.store.delete(tenant_id, owners, &[], &filter).await
    }
}
