//! `notes.create`, `notes.list`, `tasks.create`, `tasks.list`: notes and to-dos kept in the
//! host's database through a [`NoteStore`], owned by the caller.

use chrono::NaiveDate;
use logline_core::notes::{Note, NoteStore, Todo};
use logline_core::tool::{RiskLevel, ToolContext, ToolSpec};
use logline_core::Result;
use serde::Deserialize;
use serde_json::{json, Value};

/// Tool ids.
pub const NOTES_CREATE: &str = "notes.create";
/// Lists notes.
pub const NOTES_LIST: &str = "notes.list";
/// Creates a to-do.
pub const TASKS_CREATE: &str = "tasks.create";
/// Lists to-dos.
pub const TASKS_LIST: &str = "tasks.list";

fn list_schema() -> Value {
    json!({
        "type": "object",
        "properties": {"limit": {"type": "integer", "minimum": 1, "maximum": 100}},
        "additionalProperties": false
    })
}

/// The catalog entries. Creating adds a record only the caller can see and changes nothing
/// else (`create`, low risk); listing reads.
pub fn specs() -> Vec<ToolSpec> {
    vec![
        ToolSpec::new(
            NOTES_CREATE,
            "Save a note (title and text) in the user's notes.",
            json!({
                "type": "object",
                "properties": {
                    "title": {"type": "string", "minLength": 1, "maxLength": 200},
                    "body": {"type": "string"}
                },
                "required": ["title"],
                "additionalProperties": false
            }),
        )
        .in_toolkit("notes")
        .with_risk(RiskLevel::Low)
        .with_tags(["create", "notes"])
        .with_side_effects(["local_record_create"]),
        ToolSpec::new(NOTES_LIST, "List the user's latest notes.", list_schema())
            .in_toolkit("notes")
            .with_tags(["read", "notes"])
            .idempotent(),
        ToolSpec::new(
            TASKS_CREATE,
            "Add a to-do to the user's task list, with an optional due date (YYYY-MM-DD).",
            json!({
                "type": "object",
                "properties": {
                    "title": {"type": "string", "minLength": 1, "maxLength": 200},
                    "due": {"type": "string", "format": "date"}
                },
                "required": ["title"],
                "additionalProperties": false
            }),
        )
        .in_toolkit("tasks")
        .with_risk(RiskLevel::Low)
        .with_tags(["create", "tasks"])
        .with_side_effects(["local_record_create"]),
        ToolSpec::new(TASKS_LIST, "List the user's latest to-dos.", list_schema())
            .in_toolkit("tasks")
            .with_tags(["read", "tasks"])
            .idempotent(),
    ]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoteArgs {
    title: String,
    #[serde(default)]
    body: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TodoArgs {
    title: String,
    #[serde(default)]
    due: Option<NaiveDate>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ListArgs {
    #[serde(default)]
    limit: Option<u32>,
}

fn list_limit(tool: &str, arguments: Value) -> Result<u32> {
    let args: ListArgs = if arguments.is_null() {
        ListArgs::default()
    } else {
        crate::args::parse(tool, arguments)?
    };
    Ok(args.limit.unwrap_or(20).clamp(1, 100))
}

/// Runs one of this module's tools; `None` when `tool_id` is not one of them.
pub(crate) async fn execute(
    store: &dyn NoteStore,
    tool_id: &str,
    arguments: Value,
    ctx: &ToolContext,
) -> Option<Result<Value>> {
    let owner = crate::args::owner(ctx);
    let result = async {
        match tool_id {
            NOTES_CREATE => {
                let a: NoteArgs = crate::args::parse(tool_id, arguments)?;
                let note = Note::new(owner, &a.title, &a.body, ctx.run_id)?;
                store.create_note(&note).await?;
                Ok(json!({"note": {"id": note.id, "title": note.title}}))
            }
            NOTES_LIST => {
                let notes = store
                    .list_notes(&owner, list_limit(tool_id, arguments)?)
                    .await?;
                let notes: Vec<Value> = notes
                    .iter()
                    .map(|n| json!({"id": n.id, "title": n.title, "body": n.body, "created_at": n.created_at}))
                    .collect();
                Ok(json!({"notes": notes}))
            }
            TASKS_CREATE => {
                let a: TodoArgs = crate::args::parse(tool_id, arguments)?;
                let todo = Todo::new(owner, &a.title, a.due, ctx.run_id)?;
                store.create_todo(&todo).await?;
                Ok(json!({"task": {"id": todo.id, "title": todo.title, "due": todo.due}}))
            }
            TASKS_LIST => {
                let todos = store
                    .list_todos(&owner, list_limit(tool_id, arguments)?)
                    .await?;
                let todos: Vec<Value> = todos
                    .iter()
                    .map(|t| json!({"id": t.id, "title": t.title, "due": t.due, "done": t.done}))
                    .collect();
                Ok(json!({"tasks": todos}))
            }
            _ => unreachable_tool(tool_id),
        }
    };
    if specs().iter().any(|s| s.id == tool_id) {
        Some(result.await)
    } else {
        None
    }
}

fn unreachable_tool(tool_id: &str) -> Result<Value> {
    Err(logline_core::Error::not_found("tool", tool_id))
}
