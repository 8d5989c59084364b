//! [`PgArtifactIndex`]: artifact metadata in PostgreSQL (`artifacts` table); the bytes stay
//! in object storage (`logline_core::artifact::ObjectArtifactStore`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use logline_core::artifact::{Artifact, ArtifactFilter, ArtifactIndex};
use logline_core::owner::Owner;
use logline_core::{Error, Result};
use sqlx::postgres::{PgPool, PgRow};
use sqlx::Row;
use uuid::Uuid;

use crate::error::{db, is_unique_violation};

/// Artifact metadata in PostgreSQL; every query filters on the owner's tenant and user.
///
/// ```no_run
/// # async fn demo(backend: logline_postgres::PgBackend) {
/// use std::sync::Arc;
/// use logline_core::artifact::ObjectArtifactStore;
/// use logline_postgres::PgArtifactIndex;
///
/// let index = Arc::new(PgArtifactIndex::new(backend.pool().clone()));
/// let no_options = std::iter::empty::<(&str, &str)>();
/// let store = ObjectArtifactStore::from_url("file:///var/lib/app/artifacts", no_options, index);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct PgArtifactIndex {
    pool: PgPool,
}

impl PgArtifactIndex {
    /// The index on `pool` (a [`crate::PgBackend`]'s pool, migrated).
    pub fn new(pool: PgPool) -> Self {
        PgArtifactIndex { pool }
    }
}

const COLUMNS: &str =
    "id, tenant_id, user_id, task_id, name, content_type, size_bytes, sha256, created_at";

fn artifact(row: &PgRow) -> Result<Artifact> {
    let size: i64 = row.try_get("size_bytes").map_err(db)?;
    let tenant: String = row.try_get("tenant_id").map_err(db)?;
    let user: String = row.try_get("user_id").map_err(db)?;
    Ok(Artifact {
        id: row.try_get("id").map_err(db)?,
        owner: Owner::user(tenant, user),
        task_id: row.try_get("task_id").map_err(db)?,
        name: row.try_get("name").map_err(db)?,
        content_type: row.try_get("content_type").map_err(db)?,
        size: u64::try_from(size).unwrap_or_default(),
        sha256: row.try_get("sha256").map_err(db)?,
        created_at: row.try_get::<DateTime<Utc>, _>("created_at").map_err(db)?,
    })
}

#[async_trait]
impl ArtifactIndex for PgArtifactIndex {
    async fn insert(&self, a: &Artifact) -> Result<()> {
        let size = i64::try_from(a.size)
            .map_err(|_| Error::InvalidInput(format!("artifact size {} too large", a.size)))?;
        let sql = format!("INSERT INTO artifacts ({COLUMNS}) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)");
        sqlx::query(&sql)
            .bind(a.id)
            .bind(&a.owner.tenant_id)
            .bind(a.owner.user_key())
            .bind(a.task_id)
            .bind(&a.name)
            .bind(&a.content_type)
            .bind(size)
            .bind(&a.sha256)
            .bind(a.created_at)
            .execute(&self.pool)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    Error::Conflict(format!("artifact {} exists", a.id))
                } else {
                    db(e)
                }
            })?;
        Ok(())
    }

    async fn get(&self, owner: &Owner, id: Uuid) -> Result<Artifact> {
        let sql = format!(
            "SELECT {COLUMNS} FROM artifacts WHERE id = $1 AND tenant_id = $2 AND user_id = $3"
        );
        let row = sqlx::query(&sql)
            .bind(id)
            .bind(&owner.tenant_id)
            .bind(owner.user_key())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        match row {
            Some(row) => artifact(&row),
            None => Err(Error::not_found("artifact", id)),
        }
    }

    async fn list(&self, owner: &Owner, filter: &ArtifactFilter) -> Result<Vec<Artifact>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM artifacts WHERE tenant_id = $1 AND user_id = $2 \
             AND ($3::uuid IS NULL OR task_id = $3) \
             ORDER BY created_at DESC, id DESC LIMIT $4"
        );
        let rows = sqlx::query(&sql)
            .bind(&owner.tenant_id)
            .bind(owner.user_key())
            .bind(filter.task_id)
            .bind(i64::from(filter.effective_limit()))
            .fetch_all(&self.pool)
            .await
            .map_err(db)?;
        rows.iter().map(artifact).collect()
    }

    async fn remove(&self, owner: &Owner, id: Uuid) -> Result<Artifact> {
        let sql = format!(
            "DELETE FROM artifacts WHERE id = $1 AND tenant_id = $2 AND user_id = $3 \
             RETURNING {COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(id)
            .bind(&owner.tenant_id)
            .bind(owner.user_key())
            .fetch_optional(&self.pool)
            .await
            .map_err(db)?;
        match row {
            Some(row) => artifact(&row),
            None => Err(Error::not_found("artifact", id)),
        }
    }
}
