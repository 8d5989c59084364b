//! Index maintenance of [`PgRecallStore`]: training the inverted-file (IVF) lists, the
//! centroid cache that assigns and probes lists, and enabling pgvector.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use logline_core::recall::vector::{from_bytes, to_bytes, Centroids};
use logline_core::Result;
use sqlx::Row;
use uuid::Uuid;

use super::{dims_of, sql, PgRecallStore};
use crate::db::Db;
use crate::error::{corrupt, db};

/// How the inverted-file fallback is built and searched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IvfOptions {
    /// Lists to train; `None` = about √n of the items (between 16 and 4096).
    pub lists: Option<usize>,
    /// Lists a search probes (more: better recall, slower).
    pub probes: usize,
    /// Most vectors k-means trains on.
    pub sample: usize,
    /// k-means rounds.
    pub iterations: usize,
    /// Candidates ranked again on their `f32` vectors after the quantized pass (at least
    /// four per result asked for).
    pub rerank: usize,
}

impl Default for IvfOptions {
    /// √n lists, 12 probed, trained on up to 20 000 vectors in 8 rounds; 64 candidates
    /// ranked again.
    fn default() -> Self {
        IvfOptions {
            lists: None,
            probes: 12,
            sample: 20_000,
            iterations: 8,
            rerank: 64,
        }
    }
}

/// What [`PgRecallStore::train_index`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexReport {
    /// Dimensions of the indexed vectors.
    pub dims: usize,
    /// Lists trained.
    pub lists: usize,
    /// Items assigned to a list.
    pub assigned: u64,
}

/// How long loaded centroids are trusted before they are read again (another process may
/// have retrained).
const CENTROID_TTL: Duration = Duration::from_secs(10);

/// Rows per assignment statement.
const ASSIGN_BATCH: usize = 2_000;

/// Centroids by dimension count, loaded from `memory_centroids` at most every
/// [`CENTROID_TTL`].
#[derive(Default)]
pub(crate) struct CentroidCache {
    loaded: Mutex<Option<(Instant, CentroidsByDims)>>,
}

/// Trained centroids by dimension count.
type CentroidsByDims = HashMap<usize, Arc<Centroids>>;

impl CentroidCache {
    async fn get(&self, db: &Db, dims: usize) -> Result<Option<Arc<Centroids>>> {
        {
            let guard = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((at, map)) = guard.as_ref() {
                if at.elapsed() < CENTROID_TTL {
                    return Ok(map.get(&dims).cloned());
                }
            }
        }
        let map = load(db).await?;
        let found = map.get(&dims).cloned();
        *self.loaded.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), map));
        Ok(found)
    }

    fn forget(&self) {
        *self.loaded.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// The list of `v` (`None` before training for its dimensions).
    pub(crate) async fn assign(&self, db: &Db, v: &[f32]) -> Result<Option<i32>> {
        Ok(self
            .get(db, v.len())
            .await?
            .and_then(|c| c.assign(v))
            .and_then(|l| i32::try_from(l).ok()))
    }

    /// The `probes` lists nearest to `v` (`None` before training).
    pub(crate) async fn probe(
        &self,
        db: &Db,
        v: &[f32],
        probes: usize,
    ) -> Result<Option<Vec<i32>>> {
        Ok(self.get(db, v.len()).await?.map(|c| {
            c.nearest(v, probes)
                .into_iter()
                .filter_map(|l| i32::try_from(l).ok())
                .collect()
        }))
    }
}

async fn load(db: &Db) -> Result<CentroidsByDims> {
    let rows =
        sqlx::query("SELECT dims, list_no, centroid FROM memory_centroids ORDER BY dims, list_no")
            .fetch_all(&db.pool)
            .await
            .map_err(db_err)?;
    let mut by_dims: HashMap<usize, Vec<Vec<f32>>> = HashMap::new();
    for r in rows {
        let dims: i32 = r.try_get("dims").map_err(db_err)?;
        let bytes: Vec<u8> = r.try_get("centroid").map_err(db_err)?;
        let v = from_bytes(&bytes).ok_or_else(|| corrupt("centroid bytes"))?;
        by_dims
            .entry(usize::try_from(dims).unwrap_or(0))
            .or_default()
            .push(v);
    }
    Ok(by_dims
        .into_iter()
        .filter_map(|(d, vs)| Centroids::from_vectors(&vs).map(|c| (d, std::sync::Arc::new(c))))
        .collect())
}

fn db_err(e: sqlx::Error) -> logline_core::Error {
    db(e)
}

impl PgRecallStore {
    /// Trains the inverted-file lists on the stored vectors of the most common dimension
    /// count (k-means on a sample), then assigns every item of those dimensions to its list.
    /// Run it once enough items exist and again as they grow or drift; searches stay
    /// correct meanwhile (unassigned items are always candidates). `None` when there is
    /// nothing to train on.
    pub async fn train_index(&self) -> Result<Option<IndexReport>> {
        let pool = &self.db.pool;
        let top: Option<(i32, i64)> = sqlx::query_as(
            "SELECT dims, count(*) FROM memory_items GROUP BY dims ORDER BY count(*) DESC LIMIT 1",
        )
        .fetch_optional(pool)
        .await
        .map_err(db)?;
        let Some((dims, count)) = top else {
            return Ok(None);
        };
        let o = &self.options;
        let sample_rows: Vec<Vec<u8>> = sqlx::query_scalar(
            "SELECT embedding FROM memory_items WHERE dims = $1 ORDER BY random() LIMIT $2",
        )
        .bind(dims)
        .bind(i64::try_from(o.sample).unwrap_or(i64::MAX))
        .fetch_all(pool)
        .await
        .map_err(db)?;
        let sample: Vec<Vec<f32>> = sample_rows.iter().filter_map(|b| from_bytes(b)).collect();
        let lists = o
            .lists
            .unwrap_or_else(|| ((count as f64).sqrt() as usize).clamp(16, 4096));
        let Some(centroids) = Centroids::train(&sample, lists, o.iterations, 0x1ce5) else {
            return Ok(None);
        };
        let mut tx = pool.begin().await.map_err(db)?;
        sqlx::query("DELETE FROM memory_centroids WHERE dims = $1")
            .bind(dims)
            .execute(&mut *tx)
            .await
            .map_err(db)?;
        let (nos, blobs): (Vec<i32>, Vec<Vec<u8>>) = centroids
            .to_vectors()
            .iter()
            .enumerate()
            .map(|(i, c)| (i32::try_from(i).unwrap_or(i32::MAX), to_bytes(c)))
            .unzip();
        sqlx::query(
            "INSERT INTO memory_centroids (dims, list_no, centroid)
             SELECT $1, l, c FROM unnest($2::int[], $3::bytea[]) AS x(l, c)",
        )
        .bind(dims)
        .bind(&nos)
        .bind(&blobs)
        .execute(&mut *tx)
        .await
        .map_err(db)?;
        tx.commit().await.map_err(db)?;
        self.centroids.forget();
        let assigned = self.assign_all(dims, &centroids).await?;
        self.refresh_visibility().await;
        Ok(Some(IndexReport {
            dims: usize::try_from(dims).unwrap_or(0),
            lists: centroids.lists(),
            assigned,
        }))
    }

    /// Vacuums the items after training rewrote every row, so searches get index-only scans
    /// at once instead of after autovacuum. Best effort: a role that does not own the table
    /// is skipped by PostgreSQL, and any failure only costs speed until autovacuum runs.
    async fn refresh_visibility(&self) {
        if let Err(e) = sqlx::query("VACUUM (ANALYZE) memory_items")
            .execute(&self.db.pool)
            .await
        {
            tracing::warn!(error = %e, "VACUUM after training the memory index failed");
        }
    }

    /// Assigns every item of `dims` dimensions to its list, in id order and batches.
    async fn assign_all(&self, dims: i32, centroids: &Centroids) -> Result<u64> {
        let pool = &self.db.pool;
        let mut after = Uuid::nil();
        let mut assigned = 0u64;
        loop {
            let rows: Vec<(Uuid, Vec<u8>)> = sqlx::query_as(
                "SELECT id, embedding FROM memory_items WHERE dims = $1 AND id > $2
                 ORDER BY id LIMIT $3",
            )
            .bind(dims)
            .bind(after)
            .bind(i64::try_from(ASSIGN_BATCH).unwrap_or(i64::MAX))
            .fetch_all(pool)
            .await
            .map_err(db)?;
            let Some(last) = rows.last() else {
                return Ok(assigned);
            };
            after = last.0;
            let (ids, lists): (Vec<Uuid>, Vec<i32>) = rows
                .iter()
                .filter_map(|(id, b)| {
                    let l = centroids.assign(&from_bytes(b)?)?;
                    Some((*id, i32::try_from(l).ok()?))
                })
                .unzip();
            assigned += sqlx::query(
                "UPDATE memory_items m SET list_no = x.l
                 FROM unnest($1::uuid[], $2::int[]) AS x(id, l) WHERE m.id = x.id",
            )
            .bind(&ids)
            .bind(&lists)
            .execute(pool)
            .await
            .map_err(db)?
            .rows_affected();
        }
    }

    /// Switches search to pgvector when the server has the extension: creates it, the
    /// `dims`-dimensional vector column and its HNSW index, and fills the column for stored
    /// items of those dimensions. Returns `false` (and keeps the inverted-file fallback) when
    /// the extension is not available.
    pub async fn enable_pgvector(&self, dims: usize) -> Result<bool> {
        let pool = &self.db.pool;
        let available: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector')",
        )
        .fetch_one(pool)
        .await
        .map_err(db)?;
        if !available {
            return Ok(false);
        }
        for statement in sql::pgvector_setup(dims) {
            sqlx::query(&statement).execute(pool).await.map_err(db)?;
        }
        let rows: Vec<(Uuid, Vec<u8>)> =
            sqlx::query_as("SELECT id, embedding FROM memory_items WHERE dims = $1")
                .bind(dims_of(&vec![0.0; dims])?)
                .fetch_all(pool)
                .await
                .map_err(db)?;
        for (id, bytes) in rows {
            let v = from_bytes(&bytes).ok_or_else(|| corrupt("embedding bytes"))?;
            sqlx::query(&sql::pgvector_set())
                .bind(id)
                .bind(sql::vector_literal(&v))
                .execute(pool)
                .await
                .map_err(db)?;
        }
        self.pgvector.store(true, Ordering::Relaxed);
        Ok(true)
    }
}
