//! Notes and to-dos: a small local integration kept in the host's database, each record
//! owned by a tenant and user ([`Owner`]). [`MemoryNoteStore`] keeps them in memory;
//! `logline-postgres` has a PostgreSQL one. The `notes.*` and `tasks.*` skills use it.

use std::sync::RwLock;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::owner::{now_micros, Owner};

/// Longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;

/// Longest note body, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A note.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    /// Id.
    pub id: Uuid,
    /// Owner.
    pub owner: Owner,
    /// Title.
    pub title: String,
    /// Body text.
    pub body: String,
    /// The task (run) that created it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<Uuid>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// A to-do item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Todo {
    /// Id.
    pub id: Uuid,
    /// Owner.
    pub owner: Owner,
    /// What to do.
    pub title: String,
    /// Due date, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due: Option<NaiveDate>,
    /// Whether it is done.
    pub done: bool,
    /// The task (run) that created it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<Uuid>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

impl Note {
    /// A new note of `owner`, its title and body checked ([`MAX_TITLE_CHARS`],
    /// [`MAX_BODY_BYTES`]).
    pub fn new(owner: Owner, title: &str, body: &str, task_id: Option<Uuid>) -> Result<Self> {
        if body.len() > MAX_BODY_BYTES {
            return Err(Error::InvalidInput(format!(
                "note body is longer than {MAX_BODY_BYTES} bytes"
            )));
        }
        Ok(Note {
            id: Uuid::now_v7(),
            owner,
            title: checked_title(title)?,
            body: body.replace('\0', ""),
            task_id,
            created_at: now_micros(),
        })
    }
}

impl Todo {
    /// A new open to-do of `owner`, its title checked ([`MAX_TITLE_CHARS`]).
    pub fn new(
        owner: Owner,
        title: &str,
        due: Option<NaiveDate>,
        task_id: Option<Uuid>,
    ) -> Result<Self> {
        Ok(Todo {
            id: Uuid::now_v7(),
            owner,
            title: checked_title(title)?,
            due,
            done: false,
            task_id,
            created_at: now_micros(),
        })
    }
}

fn checked_title(title: &str) -> Result<String> {
    let title = title.trim().replace('\0', "");
    if title.is_empty() {
        return Err(Error::InvalidInput("title is empty".into()));
    }
    if title.chars().count() > MAX_TITLE_CHARS {
        return Err(Error::InvalidInput(format!(
            "title is longer than {MAX_TITLE_CHARS} characters"
        )));
    }
    Ok(title)
}

/// Where notes and to-dos are kept; lists are scoped to the owner in the backend.
#[async_trait]
pub trait NoteStore: Send + Sync {
    /// Stores a note (made with [`Note::new`]).
    async fn create_note(&self, note: &Note) -> Result<()>;
    /// The owner's notes, newest first, at most `limit`.
    async fn list_notes(&self, owner: &Owner, limit: u32) -> Result<Vec<Note>>;
    /// Stores a to-do (made with [`Todo::new`]).
    async fn create_todo(&self, todo: &Todo) -> Result<()>;
    /// The owner's to-dos, newest first, at most `limit`.
    async fn list_todos(&self, owner: &Owner, limit: u32) -> Result<Vec<Todo>>;
}

/// Notes and to-dos in memory.
#[derive(Debug, Default)]
pub struct MemoryNoteStore {
    notes: RwLock<Vec<Note>>,
    todos: RwLock<Vec<Todo>>,
}

impl MemoryNoteStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

fn poisoned() -> Error {
    Error::Internal("note store lock poisoned".into())
}

fn newest_of<T: Clone>(
    items: &[T],
    owner: &Owner,
    limit: u32,
    key: impl Fn(&T) -> (&Owner, DateTime<Utc>, Uuid),
) -> Vec<T> {
    let mut found: Vec<&T> = items.iter().filter(|i| key(i).0 == owner).collect();
    found.sort_by_key(|i| std::cmp::Reverse((key(i).1, key(i).2)));
    found
        .into_iter()
        .take(limit.clamp(1, 1000) as usize)
        .cloned()
        .collect()
}

#[async_trait]
impl NoteStore for MemoryNoteStore {
    async fn create_note(&self, note: &Note) -> Result<()> {
        let mut notes = self.notes.write().map_err(|_| poisoned())?;
        if notes.iter().any(|n| n.id == note.id) {
            return Err(Error::Conflict(format!("note {} exists", note.id)));
        }
        notes.push(note.clone());
        Ok(())
    }

    async fn list_notes(&self, owner: &Owner, limit: u32) -> Result<Vec<Note>> {
        let notes = self.notes.read().map_err(|_| poisoned())?;
        Ok(newest_of(&notes, owner, limit, |n| {
            (&n.owner, n.created_at, n.id)
        }))
    }

    async fn create_todo(&self, todo: &Todo) -> Result<()> {
        let mut todos = self.todos.write().map_err(|_| poisoned())?;
        if todos.iter().any(|t| t.id == todo.id) {
            return Err(Error::Conflict(format!("to-do {} exists", todo.id)));
        }
        todos.push(todo.clone());
        Ok(())
    }

    async fn list_todos(&self, owner: &Owner, limit: u32) -> Result<Vec<Todo>> {
        let todos = self.todos.read().map_err(|_| poisoned())?;
        Ok(newest_of(&todos, owner, limit, |t| {
            (&t.owner, t.created_at, t.id)
        }))
    }
}
