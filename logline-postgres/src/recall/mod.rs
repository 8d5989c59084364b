//! [`PgRecallStore`]: agent memory in `memory_items`, searched through pgvector where the
//! extension is enabled, else through an inverted-file (IVF) index kept in plain columns.

mod index;
mod quantized;
mod sql;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use logline_core::recall::vector::{cosine, from_bytes, to_bytes, top_k};
use logline_core::recall::{
    MemoryFilter, MemoryItem, MemoryKind, Owner, OwnerKind, ReadScope, RecallStore, ScoredItem,
    Visibility,
};
use logline_core::{Error, Result};
use serde_json::Value;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::{Postgres, Row};
use uuid::Uuid;

use crate::db::Db;
use crate::error::{corrupt, db};
pub use index::{IndexReport, IvfOptions};

/// A [`RecallStore`] on PostgreSQL.
///
/// Every statement filters on the tenant first. Search:
/// - with pgvector enabled ([`PgRecallStore::enable_pgvector`]): an HNSW index on cosine
///   distance;
/// - otherwise the inverted-file fallback: [`PgRecallStore::train_index`] clusters the stored
///   vectors (k-means) into lists; an item is assigned its list when written. A search scores
///   the visible items of the `probes` lists nearest to the query (and items stored before
///   training; untrained, every visible item) on their quantized vectors, read from the list
///   index alone, then ranks the best [`IvfOptions::rerank`] again on their `f32` vectors.
#[derive(Clone)]
pub struct PgRecallStore {
    db: Arc<Db>,
    options: IvfOptions,
    pgvector: Arc<AtomicBool>,
    centroids: Arc<index::CentroidCache>,
}

impl std::fmt::Debug for PgRecallStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgRecallStore")
            .field("options", &self.options)
            .field("pgvector", &self.pgvector.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

fn owner_arrays(owners: &[Owner]) -> (Vec<String>, Vec<String>) {
    owners
        .iter()
        .map(|o| (o.kind.as_str().to_string(), o.id.clone()))
        .unzip()
}

fn kinds(filter: &MemoryFilter) -> Vec<String> {
    filter
        .kinds
        .iter()
        .map(|k| k.as_str().to_string())
        .collect()
}

/// Binds `$1..$6` of [`sql::VISIBLE`].
fn bind_visible<'q>(
    q: Query<'q, Postgres, PgArguments>,
    scope: &ReadScope,
    filter: &MemoryFilter,
) -> Query<'q, Postgres, PgArguments> {
    let (ok, oi) = owner_arrays(&scope.owners);
    q.bind(scope.tenant_id.clone())
        .bind(ok)
        .bind(oi)
        .bind(scope.shared)
        .bind(kinds(filter))
        .bind(Value::Object(filter.metadata.clone()))
}

fn decode(row: &PgRow) -> Result<MemoryItem> {
    let text = |c: &str| -> Result<String> { row.try_get(c).map_err(db) };
    let owner_kind = text("owner_kind")?;
    let kind = text("kind")?;
    let visibility = text("visibility")?;
    let metadata = match row.try_get::<Value, _>("metadata").map_err(db)? {
        Value::Object(m) => m,
        other => {
            return Err(corrupt(format!(
                "memory metadata is not an object: {other}"
            )))
        }
    };
    let bytes: Vec<u8> = row.try_get("embedding").map_err(db)?;
    Ok(MemoryItem {
        id: row.try_get("id").map_err(db)?,
        tenant_id: text("tenant_id")?,
        owner: Owner::new(
            OwnerKind::parse(&owner_kind)
                .ok_or_else(|| corrupt(format!("owner kind `{owner_kind}`")))?,
            text("owner_id")?,
        ),
        kind: MemoryKind::parse(&kind).ok_or_else(|| corrupt(format!("memory kind `{kind}`")))?,
        content: text("content")?,
        metadata,
        visibility: Visibility::parse(&visibility)
            .ok_or_else(|| corrupt(format!("visibility `{visibility}`")))?,
        expires_at: row.try_get("expires_at").map_err(db)?,
        embedding: from_bytes(&bytes).ok_or_else(|| corrupt("embedding bytes"))?,
        created_at: row.try_get("created_at").map_err(db)?,
        updated_at: row.try_get("updated_at").map_err(db)?,
    })
}

fn dims_of(v: &[f32]) -> Result<i32> {
    i32::try_from(v.len()).map_err(|_| Error::InvalidInput("embedding is too long".into()))
}

impl PgRecallStore {
    pub(crate) fn on(db: Arc<Db>) -> Self {
        PgRecallStore {
            db,
            options: IvfOptions::default(),
            pgvector: Arc::new(AtomicBool::new(false)),
            centroids: Arc::new(index::CentroidCache::default()),
        }
    }

    /// Sets the inverted-file options (lists trained, lists probed).
    pub fn with_options(mut self, options: IvfOptions) -> Self {
        self.options = options;
        self
    }

    /// Whether searches go through pgvector.
    pub fn uses_pgvector(&self) -> bool {
        self.pgvector.load(Ordering::Relaxed)
    }

    /// Exact search (every visible item ranked), whatever index exists: the reference the
    /// index's recall is measured against.
    pub async fn search_exact(
        &self,
        scope: &ReadScope,
        query: &[f32],
        filter: &MemoryFilter,
        limit: usize,
    ) -> Result<Vec<ScoredItem>> {
        let text = sql::exact_candidates();
        let rows = bind_visible(sqlx::query(&text), scope, filter)
            .bind(dims_of(query)?)
            .fetch_all(&self.db.pool)
            .await
            .map_err(db)?;
        rank(rows, query, limit)
    }
}

/// Decodes candidate rows and keeps the `limit` most similar to `query`.
fn rank(rows: Vec<PgRow>, query: &[f32], limit: usize) -> Result<Vec<ScoredItem>> {
    let scored = rows
        .iter()
        .map(|r| decode(r).map(|item| (cosine(&item.embedding, query), item)))
        .collect::<Result<Vec<_>>>()?;
    Ok(top_k(scored, limit)
        .into_iter()
        .map(|(score, item)| ScoredItem { item, score })
        .collect())
}

#[async_trait]
impl RecallStore for PgRecallStore {
    async fn put(&self, item: &MemoryItem) -> Result<()> {
        if item.tenant_id.is_empty() {
            return Err(Error::InvalidInput("memory item without tenant".into()));
        }
        let dims = dims_of(&item.embedding)?;
        let q = quantized::for_item(item);
        let list_no = self.centroids.assign(&self.db, &item.embedding).await?;
        let content = logline_core::nul::replace_nul_str(&item.content);
        let mut metadata = Value::Object(item.metadata.clone());
        logline_core::nul::replace_nul(&mut metadata);
        let stored = sqlx::query(
            "INSERT INTO memory_items (id, tenant_id, owner_kind, owner_id, kind, content, metadata,
                 visibility, expires_at, embedding, dims, list_no, created_at, updated_at,
                 embedding_q, embedding_scale)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
             ON CONFLICT (id) DO UPDATE SET kind = EXCLUDED.kind, content = EXCLUDED.content,
                 metadata = EXCLUDED.metadata, visibility = EXCLUDED.visibility,
                 expires_at = EXCLUDED.expires_at, embedding = EXCLUDED.embedding,
                 dims = EXCLUDED.dims, list_no = EXCLUDED.list_no, updated_at = EXCLUDED.updated_at,
                 embedding_q = EXCLUDED.embedding_q, embedding_scale = EXCLUDED.embedding_scale
             WHERE memory_items.tenant_id = EXCLUDED.tenant_id
               AND memory_items.owner_kind = EXCLUDED.owner_kind
               AND memory_items.owner_id = EXCLUDED.owner_id",
        )
        .bind(item.id)
        .bind(&item.tenant_id)
        .bind(item.owner.kind.as_str())
        .bind(&item.owner.id)
        .bind(item.kind.as_str())
        .bind(content.as_ref())
        .bind(metadata)
        .bind(item.visibility.as_str())
        .bind(item.expires_at)
        .bind(to_bytes(&item.embedding))
        .bind(dims)
        .bind(list_no)
        .bind(item.created_at)
        .bind(item.updated_at)
        .bind(q.as_ref().map(|q| q.code_bytes()))
        .bind(q.as_ref().map(|q| q.scale))
        .execute(&self.db.pool)
        .await
        .map_err(db)?
        .rows_affected();
        if stored == 0 {
            return Err(Error::Conflict(format!("memory id {} is taken", item.id)));
        }
        if self.uses_pgvector() {
            sqlx::query(&sql::pgvector_set())
                .bind(item.id)
                .bind(sql::vector_literal(&item.embedding))
                .execute(&self.db.pool)
                .await
                .map_err(db)?;
        }
        Ok(())
    }

    async fn get(&self, scope: &ReadScope, id: Uuid) -> Result<MemoryItem> {
        let text = format!(
            "SELECT {} FROM memory_items WHERE {} AND id = $7",
            sql::COLUMNS,
            sql::VISIBLE
        );
        let row = bind_visible(sqlx::query(&text), scope, &MemoryFilter::default())
            .bind(id)
            .fetch_optional(&self.db.pool)
            .await
            .map_err(db)?
            .ok_or_else(|| Error::not_found("memory item", id))?;
        decode(&row)
    }

    async fn list(
        &self,
        scope: &ReadScope,
        filter: &MemoryFilter,
        limit: usize,
    ) -> Result<Vec<MemoryItem>> {
        let text = format!(
            "SELECT {} FROM memory_items WHERE {} ORDER BY created_at DESC, id DESC LIMIT $7",
            sql::COLUMNS,
            sql::VISIBLE
        );
        let rows = bind_visible(sqlx::query(&text), scope, filter)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.db.pool)
            .await
            .map_err(db)?;
        rows.iter().map(decode).collect()
    }

    async fn search(
        &self,
        scope: &ReadScope,
        query: &[f32],
        filter: &MemoryFilter,
        limit: usize,
    ) -> Result<Vec<ScoredItem>> {
        if self.uses_pgvector() {
            let text = sql::pgvector_search();
            let rows = bind_visible(sqlx::query(&text), scope, filter)
                .bind(sql::vector_literal(query))
                .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                .fetch_all(&self.db.pool)
                .await
                .map_err(db)?;
            return rows
                .iter()
                .map(|r| {
                    Ok(ScoredItem {
                        item: decode(r)?,
                        score: r.try_get("score").map_err(db)?,
                    })
                })
                .collect();
        }
        let lists = self
            .centroids
            .probe(&self.db, query, self.options.probes)
            .await?;
        self.search_quantized(scope, query, filter, limit, lists)
            .await
    }

    async fn delete(
        &self,
        tenant_id: &str,
        owners: &[Owner],
        ids: &[Uuid],
        filter: &MemoryFilter,
    ) -> Result<u64> {
        let (ok, oi) = owner_arrays(owners);
        let text = format!("DELETE FROM memory_items WHERE {}", sql::OWNED);
        Ok(sqlx::query(&text)
            .bind(tenant_id)
            .bind(ok)
            .bind(oi)
            .bind(ids)
            .bind(kinds(filter))
            .bind(Value::Object(filter.metadata.clone()))
            .execute(&self.db.pool)
            .await
            .map_err(db)?
            .rows_affected())
    }

    async fn purge_expired(&self, now: DateTime<Utc>, limit: u64) -> Result<u64> {
        Ok(sqlx::query(
            "DELETE FROM memory_items WHERE id IN (
                 SELECT id FROM memory_items WHERE expires_at <= $1 LIMIT $2)",
        )
        .bind(now)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .execute(&self.db.pool)
        .await
        .map_err(db)?
        .rows_affected())
    }
}
