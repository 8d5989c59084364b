//! The allowlisted relations as the database has them: resolved once, when the hub is built,
//! from `pg_catalog` (schema, kind, columns and their types, comments).

use std::collections::BTreeMap;

use logline_core::{Error, Result};
use serde_json::{json, Value};
use sqlparser::ast::Query;
use sqlx::PgPool;

use super::config::{SqlTable, TenantScope};
use super::parse::parse_query;
use crate::error::PgError;

/// One visible column.
#[derive(Debug, Clone)]
pub(crate) struct Column {
    pub name: String,
    pub sql_type: String,
    pub nullable: bool,
    pub has_default: bool,
    pub comment: Option<String>,
}

/// An allowlisted table or view, resolved.
#[derive(Debug, Clone)]
pub(crate) struct Relation {
    /// The name models use (the relation's own name, exact case).
    pub name: String,
    pub schema: String,
    pub kind: &'static str,
    /// Visible columns in table order.
    pub columns: Vec<Column>,
    pub hidden: Vec<String>,
    /// Tenant column and its SQL type.
    pub tenant: Option<(String, String)>,
    pub writable: bool,
    pub description: Option<String>,
    /// `SELECT <visible columns> FROM <relation> WHERE <tenant column> = <caller's tenant>`:
    /// what every reference to the relation is replaced with.
    pub scoped: Query,
}

impl Relation {
    /// `"schema"."name"`.
    pub fn qualified(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }

    /// Whether a model may name `column` (visible and not hidden).
    pub fn column(&self, column: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == column)
    }

    /// The relation as `db.describe` shows it.
    pub fn describe(&self) -> Value {
        let columns: Vec<Value> = self
            .columns
            .iter()
            .map(|c| {
                let mut v = json!({"name": c.name, "type": c.sql_type, "nullable": c.nullable});
                if c.has_default {
                    v["has_default"] = json!(true);
                }
                if let Some(text) = &c.comment {
                    v["description"] = json!(text);
                }
                if self.tenant.as_ref().is_some_and(|(t, _)| *t == c.name) {
                    v["set_by_tool"] = json!(true);
                }
                v
            })
            .collect();
        let mut v = json!({
            "name": self.name,
            "kind": self.kind,
            "columns": columns,
            "writable": self.writable,
            "tenant_scoped": self.tenant.is_some(),
        });
        if let Some(text) = &self.description {
            v["description"] = json!(text);
        }
        v
    }
}

/// The allowlist, by the name models use.
#[derive(Debug, Clone, Default)]
pub(crate) struct Catalog {
    pub relations: BTreeMap<String, Relation>,
}

impl Catalog {
    /// Resolves every table of the allowlist; a missing relation or column is an error.
    pub async fn load(pool: &PgPool, tables: &[SqlTable], tenant_setting: &str) -> Result<Self> {
        let mut relations = BTreeMap::new();
        for table in tables {
            let rel = resolve(pool, table, tenant_setting).await?;
            if relations.contains_key(&rel.name) {
                return Err(Error::InvalidInput(format!(
                    "two allowlisted relations are named `{}`",
                    rel.name
                )));
            }
            relations.insert(rel.name.clone(), rel);
        }
        Ok(Catalog { relations })
    }

    /// The relation a model names `name` (exact, case-sensitive catalog name).
    pub fn get(&self, name: &str) -> Option<&Relation> {
        self.relations.get(name)
    }
}

/// `"ident"` with embedded quotes doubled.
pub(crate) fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn config_error(msg: String) -> Error {
    PgError::Config(msg).into()
}

type ColumnRow = (String, String, bool, bool, Option<String>);

async fn resolve(pool: &PgPool, table: &SqlTable, tenant_setting: &str) -> Result<Relation> {
    let target = match &table.schema {
        Some(s) => format!("{}.{}", quote_ident(s), quote_ident(&table.name)),
        None => quote_ident(&table.name),
    };
    let found: Option<(String, String, String, Option<String>)> = sqlx::query_as(
        "SELECT n.nspname::text, c.relname::text, c.relkind::text, \
                obj_description(c.oid, 'pg_class') \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.oid = to_regclass($1)",
    )
    .bind(&target)
    .fetch_optional(pool)
    .await
    .map_err(PgError::from)?;
    let Some((schema, name, relkind, comment)) = found else {
        return Err(config_error(format!(
            "allowlisted relation {target} does not exist"
        )));
    };
    let kind = match relkind.as_str() {
        "r" | "p" => "table",
        "v" => "view",
        "m" => "materialized_view",
        "f" => "foreign_table",
        other => {
            return Err(config_error(format!(
                "{target} is of kind `{other}`, not a table or view"
            )))
        }
    };
    let rows: Vec<ColumnRow> = sqlx::query_as(
        "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull, \
                a.atthasdef, col_description(a.attrelid, a.attnum) \
         FROM pg_attribute a WHERE a.attrelid = to_regclass($1) \
           AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
    )
    .bind(&target)
    .fetch_all(pool)
    .await
    .map_err(PgError::from)?;
    let all: Vec<Column> = rows
        .into_iter()
        .map(|(name, sql_type, nullable, has_default, comment)| Column {
            name,
            sql_type,
            nullable,
            has_default,
            comment,
        })
        .collect();
    for h in &table.hidden {
        if !all.iter().any(|c| &c.name == h) {
            return Err(config_error(format!(
                "{target} has no column `{h}` to hide"
            )));
        }
    }
    let tenant = match &table.scope {
        TenantScope::Shared => None,
        TenantScope::Column(col) => match all.iter().find(|c| &c.name == col) {
            Some(c) => Some((c.name.clone(), c.sql_type.clone())),
            None => {
                return Err(config_error(format!(
                    "{target} has no tenant column `{col}`"
                )))
            }
        },
    };
    if table.writable && (tenant.is_none() || kind != "table") {
        return Err(config_error(format!(
            "{target}: only tenant-scoped tables can be writable"
        )));
    }
    let columns: Vec<Column> = all
        .into_iter()
        .filter(|c| !table.hidden.contains(&c.name))
        .collect();
    if columns.is_empty() {
        return Err(config_error(format!("{target} has no visible column")));
    }
    let mut rel = Relation {
        name,
        schema,
        kind,
        columns,
        hidden: table.hidden.clone(),
        tenant,
        writable: table.writable,
        description: table.description.clone().or(comment),
        scoped: parse_query("SELECT 1").map_err(|r| Error::Internal(r.to_string()))?,
    };
    let sql = scoped_select(&rel, tenant_setting);
    rel.scoped = parse_query(&sql).map_err(|r| {
        config_error(format!(
            "{target}: the scoped query does not parse ({r}): {sql}"
        ))
    })?;
    Ok(rel)
}

/// The caller's tenant as a value of `sql_type`, read from the transaction-local setting.
pub(crate) fn tenant_value(setting: &str, sql_type: &str) -> String {
    format!("CAST(current_setting('{setting}') AS {sql_type})")
}

fn scoped_select(rel: &Relation, tenant_setting: &str) -> String {
    let cols: Vec<String> = rel.columns.iter().map(|c| quote_ident(&c.name)).collect();
    let mut sql = format!("SELECT {} FROM {}", cols.join(", "), rel.qualified());
    if let Some((col, ty)) = &rel.tenant {
        sql.push_str(&format!(
            " WHERE {} = {}",
            quote_ident(col),
            tenant_value(tenant_setting, ty)
        ));
    }
    sql
}

#[cfg(test)]
impl Catalog {
    /// A catalog of `(name, tenant column, writable, hidden)` relations in schema `app`, each
    /// with columns `id`, `tenant_id`, `name`, `note`, all text.
    pub(crate) fn for_tests(tables: &[(&str, Option<&str>, bool, &[&str])]) -> Catalog {
        let mut relations = BTreeMap::new();
        for (name, tenant, writable, hidden) in tables {
            let columns = ["id", "tenant_id", "name", "note"]
                .iter()
                .filter(|c| !hidden.contains(c))
                .map(|c| Column {
                    name: c.to_string(),
                    sql_type: "text".into(),
                    nullable: true,
                    has_default: false,
                    comment: None,
                })
                .collect();
            let mut rel = Relation {
                name: name.to_string(),
                schema: "app".into(),
                kind: "table",
                columns,
                hidden: hidden.iter().map(|h| h.to_string()).collect(),
                tenant: tenant.map(|t| (t.to_string(), "text".to_string())),
                writable: *writable,
                description: None,
                scoped: parse_query("SELECT 1").unwrap(),
            };
            rel.scoped = parse_query(&scoped_select(&rel, "logline.tenant_id")).unwrap();
            relations.insert(name.to_string(), rel);
        }
        Catalog { relations }
    }
}
