//! [`VectorStore`] for [`PgStore`]: tool-search vectors in `tool_vectors`.

use async_trait::async_trait;
use logline_core::search::{StoredVector, VectorStore};
use logline_core::{Error, Result};
use sqlx::Row;

use super::PgStore;
use crate::error::db;

#[async_trait]
impl VectorStore for PgStore {
    async fn load_vectors(&self, space: &str, ids: &[String]) -> Result<Vec<StoredVector>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(
            "SELECT id, digest, vector FROM tool_vectors WHERE space = $1 AND id = ANY($2)",
        )
        .bind(space)
        .bind(ids)
        .fetch_all(&self.db.pool)
        .await
        .map_err(db)?;
        rows.iter()
            .map(|row| {
                let id: String = row.try_get("id").map_err(db)?;
                let digest: Vec<u8> = row.try_get("digest").map_err(db)?;
                let bytes: Vec<u8> = row.try_get("vector").map_err(db)?;
                Ok(StoredVector {
                    digest: digest.try_into().map_err(|_| corrupt(&id))?,
                    vector: bytes
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect(),
                    id,
                })
            })
            .collect()
    }

    async fn save_vectors(&self, space: &str, vectors: &[StoredVector]) -> Result<()> {
        if vectors.is_empty() {
            return Ok(());
        }
        // One row per id (the last given wins): an upsert may touch a row only once.
        let mut last: std::collections::HashMap<&str, &StoredVector> = Default::default();
        for v in vectors {
            last.insert(&v.id, v);
        }
        let vectors: Vec<&StoredVector> = last.into_values().collect();
        let ids: Vec<&str> = vectors.iter().map(|v| v.id.as_str()).collect();
        let digests: Vec<&[u8]> = vectors.iter().map(|v| v.digest.as_slice()).collect();
        let values: Vec<Vec<u8>> = vectors
            .iter()
            .map(|v| v.vector.iter().flat_map(|x| x.to_le_bytes()).collect())
            .collect();
        sqlx::query(
            "INSERT INTO tool_vectors (space, id, digest, vector)
             SELECT $1, t.id, t.digest, t.vector
             FROM unnest($2::text[], $3::bytea[], $4::bytea[]) AS t(id, digest, vector)
             ON CONFLICT (space, id) DO UPDATE
               SET digest = EXCLUDED.digest, vector = EXCLUDED.vector, updated_at = now()",
        )
        .bind(space)
        .bind(&ids)
        .bind(&digests)
        .bind(&values)
        .execute(&self.db.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn delete_vectors(&self, space: &str, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        sqlx::query("DELETE FROM tool_vectors WHERE space = $1 AND id = ANY($2)")
            .bind(space)
            .bind(ids)
            .execute(&self.db.pool)
            .await
            .map_err(db)?;
        Ok(())
    }
}

fn corrupt(id: &str) -> Error {
    Error::Internal(format!("stored vector of `{id}` has a malformed digest"))
}
