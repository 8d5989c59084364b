//! The catalog entries of the database tools.

use logline_core::tool::{RiskLevel, ToolSpec};
use serde_json::json;

use super::catalog::Catalog;

/// Lists the allowlisted relations and their columns.
pub const DESCRIBE: &str = "db.describe";
/// Runs one read-only SELECT.
pub const QUERY: &str = "db.query";
/// Previews an INSERT or UPDATE (rolled back; nothing changes).
pub const PREVIEW_WRITE: &str = "db.preview_write";
/// Runs an INSERT or UPDATE after a person confirms it (a dry run unless `dry_run: false`).
pub const WRITE: &str = "db.write";

fn names(catalog: &Catalog, writable_only: bool) -> String {
    let v: Vec<&str> = catalog
        .relations
        .values()
        .filter(|r| !writable_only || r.writable)
        .map(|r| r.name.as_str())
        .collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

fn sql_schema(max_sql_bytes: usize, extra: Option<(&str, serde_json::Value)>) -> serde_json::Value {
    let mut props = json!({
        "sql": {"type": "string", "minLength": 1, "maxLength": max_sql_bytes,
                "description": "One PostgreSQL statement."}
    });
    if let Some((k, v)) = extra {
        props[k] = v;
    }
    json!({"type": "object", "properties": props, "required": ["sql"],
           "additionalProperties": false})
}

/// The four tools, on hub `hub`.
pub(crate) fn specs(catalog: &Catalog, hub: &str, max_sql_bytes: usize) -> Vec<ToolSpec> {
    let tables = names(catalog, false);
    let writable = names(catalog, true);
    vec![
        ToolSpec::new(
            DESCRIBE,
            format!(
                "List the database tables and views you may query ({tables}) with their \
                 columns and types. Call it before writing SQL."
            ),
            json!({"type": "object", "properties": {
                "table": {"type": "string", "description": "Describe only this one."}
            }, "additionalProperties": false}),
        )
        .with_tags(["read", "database"])
        .with_side_effects(["database_read"])
        .idempotent(),
        ToolSpec::new(
            QUERY,
            format!(
                "Answer a question from the database with one PostgreSQL SELECT over {tables}. \
                 Rows are limited to the caller's own data; results are capped (see \
                 `truncated`). Only built-in, side-effect-free functions."
            ),
            sql_schema(max_sql_bytes, None),
        )
        .with_tags(["read", "database"])
        .with_side_effects(["database_read"])
        .idempotent(),
        ToolSpec::new(
            PREVIEW_WRITE,
            format!(
                "Preview one INSERT or UPDATE on {writable}: runs it in a transaction that is \
                 rolled back and returns the affected-row count. Nothing changes. The tenant \
                 column is set by the tool; UPDATE needs a WHERE clause."
            ),
            sql_schema(max_sql_bytes, None),
        )
        .with_tags(["read", "database"])
        .with_side_effects(["database_read"])
        .idempotent(),
        ToolSpec::new(
            WRITE,
            format!(
                "Run one INSERT or UPDATE on {writable} after a person confirms it. A dry run \
                 (rolled back, returns the affected-row count) unless `dry_run` is false. \
                 Never DELETE, DDL, GRANT or COPY."
            ),
            sql_schema(
                max_sql_bytes,
                Some((
                    "dry_run",
                    json!({"type": "boolean", "default": true,
                           "description": "false applies the write."}),
                )),
            ),
        )
        .with_risk(RiskLevel::Medium)
        .with_tags(["write", "database"])
        .with_side_effects(["database_write"])
        .confirmed(),
    ]
    .into_iter()
    .map(|s| s.in_toolkit("db").on_hub(hub))
    .collect()
}
