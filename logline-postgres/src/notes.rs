//! [`PgNoteStore`]: notes and to-dos in PostgreSQL (`notes` and `todos` tables).

use async_trait::async_trait;
use logline_core::notes::{Note, NoteStore, Todo};
use logline_core::owner::Owner;
use logline_core::{Error, Result};
use sqlx::postgres::{PgPool, PgRow};
use sqlx::Row;

use crate::error::{db, is_unique_violation};

/// Notes and to-dos in PostgreSQL; every list filters on the owner's tenant and user.
#[derive(Debug, Clone)]
pub struct PgNoteStore {
    pool: PgPool,
}

impl PgNoteStore {
    /// The store on `pool` (a [`crate::PgBackend`]'s pool, migrated).
    pub fn new(pool: PgPool) -> Self {
        PgNoteStore { pool }
    }
}

fn owner(row: &PgRow) -> Result<Owner> {
    let tenant: String = row.try_get("tenant_id").map_err(db)?;
    let user: String = row.try_get("user_id").map_err(db)?;
    Ok(Owner::user(tenant, user))
}

fn note(row: &PgRow) -> Result<Note> {
    Ok(Note {
        id: row.try_get("id").map_err(db)?,
        owner: owner(row)?,
        title: row.try_get("title").map_err(db)?,
        body: row.try_get("body").map_err(db)?,
        task_id: row.try_get("task_id").map_err(db)?,
        created_at: row.try_get("created_at").map_err(db)?,
    })
}

fn todo(row: &PgRow) -> Result<Todo> {
    Ok(Todo {
        id: row.try_get("id").map_err(db)?,
        owner: owner(row)?,
        title: row.try_get("title").map_err(db)?,
        due: row.try_get("due").map_err(db)?,
        done: row.try_get("done").map_err(db)?,
        task_id: row.try_get("task_id").map_err(db)?,
        created_at: row.try_get("created_at").map_err(db)?,
    })
}

fn insert_error(what: &str, id: uuid::Uuid) -> impl FnOnce(sqlx::Error) -> Error + '_ {
    move |e| {
        if is_unique_violation(&e) {
            Error::Conflict(format!("{what} {id} exists"))
        } else {
            db(e)
        }
    }
}

#[async_trait]
impl NoteStore for PgNoteStore {
    async fn create_note(&self, n: &Note) -> Result<()> {
        sqlx::query(
            "INSERT INTO notes (id, tenant_id, user_id, title, body, task_id, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(n.id)
        .bind(&n.owner.tenant_id)
        .bind(n.owner.user_key())
        .bind(&n.title)
        .bind(&n.body)
        .bind(n.task_id)
        .bind(n.created_at)
        .execute(&self.pool)
        .await
        .map_err(insert_error("note", n.id))?;
        Ok(())
    }

    async fn list_notes(&self, owner: &Owner, limit: u32) -> Result<Vec<Note>> {
        let rows = sqlx::query(
            "SELECT id, tenant_id, user_id, title, body, task_id, created_at FROM notes \
             WHERE tenant_id = $1 AND user_id = $2 ORDER BY created_at DESC, id DESC LIMIT $3",
        )
        .bind(&owner.tenant_id)
        .bind(owner.user_key())
        .bind(i64::from(limit.clamp(1, 1000)))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(note).collect()
    }

    async fn create_todo(&self, t: &Todo) -> Result<()> {
        sqlx::query(
            "INSERT INTO todos (id, tenant_id, user_id, title, due, done, task_id, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(t.id)
        .bind(&t.owner.tenant_id)
        .bind(t.owner.user_key())
        .bind(&t.title)
        .bind(t.due)
        .bind(t.done)
        .bind(t.task_id)
        .bind(t.created_at)
        .execute(&self.pool)
        .await
        .map_err(insert_error("to-do", t.id))?;
        Ok(())
    }

    async fn list_todos(&self, owner: &Owner, limit: u32) -> Result<Vec<Todo>> {
        let rows = sqlx::query(
            "SELECT id, tenant_id, user_id, title, due, done, task_id, created_at FROM todos \
             WHERE tenant_id = $1 AND user_id = $2 ORDER BY created_at DESC, id DESC LIMIT $3",
        )
        .bind(&owner.tenant_id)
        .bind(owner.user_key())
        .bind(i64::from(limit.clamp(1, 1000)))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        rows.iter().map(todo).collect()
    }
}
