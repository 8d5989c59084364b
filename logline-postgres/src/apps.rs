//! [`PgAppStore`]: imported apps in the `apps`, `app_scopes`, `app_workflows` and
//! `app_actions` tables.

use std::sync::Arc;

use async_trait::async_trait;
use logline_core::app::{replace_outcome, App, AppStore, ImportOutcome, Manifest};
use logline_core::store::Page;
use logline_core::{Error, Result};
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::{Postgres, Row, Transaction};

use crate::codec::{page_args, to_json};
use crate::db::Db;
use crate::error::{corrupt, db};

/// An [`AppStore`] on PostgreSQL. The manifest is kept whole on the `apps` row (what reads
/// return); scopes, workflows and actions are also written as rows for SQL consumers, and
/// replaced with the manifest in the same transaction.
#[derive(Clone)]
pub struct PgAppStore {
    db: Arc<Db>,
}

impl std::fmt::Debug for PgAppStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgAppStore").finish_non_exhaustive()
    }
}

const COLUMNS: &str = "manifest, digest, created_at, updated_at";

fn decode(row: &PgRow) -> Result<App> {
    let manifest: Value = row.try_get("manifest").map_err(db)?;
    let manifest: Manifest =
        serde_json::from_value(manifest).map_err(|e| corrupt(format!("app manifest: {e}")))?;
    Ok(App {
        manifest,
        digest: row.try_get("digest").map_err(db)?,
        created_at: row.try_get("created_at").map_err(db)?,
        updated_at: row.try_get("updated_at").map_err(db)?,
    })
}

impl PgAppStore {
    pub(crate) fn on(db: Arc<Db>) -> Self {
        PgAppStore { db }
    }

    /// Writes the app row's fields and its scope, workflow and action rows.
    async fn write_rows(tx: &mut Transaction<'static, Postgres>, app: &App) -> Result<()> {
        let a = &app.manifest.app;
        sqlx::query(
            "UPDATE apps SET name = $2, icon = $3, description = $4, owner = $5, visibility = $6,
                    default_view_id = $7, manifest = $8, version = $9, digest = $10,
                    updated_at = $11
             WHERE id = $1",
        )
        .bind(&a.id)
        .bind(&a.name)
        .bind(&a.icon)
        .bind(&a.description)
        .bind(&a.owner)
        .bind(a.visibility.as_str())
        .bind(&a.default_view_id)
        .bind(to_json(&app.manifest)?)
        .bind(app.version())
        .bind(&app.digest)
        .bind(app.updated_at)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
        for table in ["app_actions", "app_workflows", "app_scopes"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE app_id = $1"))
                .bind(&a.id)
                .execute(&mut **tx)
                .await
                .map_err(db)?;
        }
        let scopes = [
            ("tool", &a.scopes.tools),
            ("memory", &a.scopes.memory),
            ("external", &a.scopes.external),
        ];
        let (types, values): (Vec<&str>, Vec<&str>) = scopes
            .iter()
            .flat_map(|(t, vs)| vs.iter().map(move |v| (*t, v.as_str())))
            .unzip();
        sqlx::query(
            "INSERT INTO app_scopes (app_id, scope_type, scope_value)
             SELECT $1, t, v FROM unnest($2::text[], $3::text[]) AS s(t, v)
             ON CONFLICT DO NOTHING",
        )
        .bind(&a.id)
        .bind(&types)
        .bind(&values)
        .execute(&mut **tx)
        .await
        .map_err(db)?;
        for w in &a.workflows {
            sqlx::query(
                "INSERT INTO app_workflows (app_id, alias, workflow_id, workflow_version, label, default_mode)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&a.id)
            .bind(&w.id)
            .bind(&w.workflow_ref)
            .bind(&w.version)
            .bind(&w.label)
            .bind(w.default_mode.as_str())
            .execute(&mut **tx)
            .await
            .map_err(db)?;
        }
        for action in &a.actions {
            sqlx::query(
                "INSERT INTO app_actions (app_id, action_id, label, app_workflow_id, input_mapping)
                 SELECT $1, $2, $3, w.id, $5 FROM app_workflows w
                 WHERE w.app_id = $1 AND w.alias = $4",
            )
            .bind(&a.id)
            .bind(&action.id)
            .bind(&action.label)
            .bind(&action.workflow_id)
            .bind(Value::Object(action.input_mapping.clone()))
            .execute(&mut **tx)
            .await
            .map_err(db)?;
        }
        Ok(())
    }
}

#[async_trait]
impl AppStore for PgAppStore {
    async fn put_app(&self, app: &App) -> Result<ImportOutcome> {
        let mut tx = self.db.pool.begin().await.map_err(db)?;
        // Claim the id (a concurrent first import waits here for ours, then sees it).
        let inserted = sqlx::query(
            "INSERT INTO apps (id, name, manifest, created_at, updated_at) VALUES ($1, $2, '{}', $3, $3)
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(app.id())
        .bind(&app.manifest.app.name)
        .bind(app.created_at)
        .execute(&mut *tx)
        .await
        .map_err(db)?
        .rows_affected()
            == 1;
        let outcome = if inserted {
            ImportOutcome::Created
        } else {
            let row = sqlx::query(&format!(
                "SELECT {COLUMNS} FROM apps WHERE id = $1 FOR UPDATE"
            ))
            .bind(app.id())
            .fetch_one(&mut *tx)
            .await
            .map_err(db)?;
            match replace_outcome(&decode(&row)?, app)? {
                None => return Ok(ImportOutcome::Unchanged),
                Some(o) => o,
            }
        };
        Self::write_rows(&mut tx, app).await?;
        tx.commit().await.map_err(db)?;
        Ok(outcome)
    }

    async fn get_app(&self, id: &str) -> Result<App> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM apps WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.db.pool)
            .await
            .map_err(db)?
            .ok_or_else(|| Error::not_found("app", id))?;
        decode(&row)
    }

    async fn list_apps(&self, page: Page) -> Result<Vec<App>> {
        let (offset, limit) = page_args(page);
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM apps ORDER BY id OFFSET $1 LIMIT $2"
        ))
        .bind(offset)
        .bind(limit)
        .fetch_all(&self.db.pool)
        .await
        .map_err(db)?;
        rows.iter().map(decode).collect()
    }

    async fn delete_app(&self, id: &str) -> Result<()> {
        let n = sqlx::query("DELETE FROM apps WHERE id = $1")
            .bind(id)
            .execute(&self.db.pool)
            .await
            .map_err(db)?
            .rows_affected();
        if n == 0 {
            return Err(Error::not_found("app", id));
        }
        Ok(())
    }
}
