//! The two statement shapes the tools run, checked and rewritten: a read (one query) and a
//! write (one `INSERT` or `UPDATE` on a writable table, tenant column forced).

use std::collections::BTreeSet;

use sqlparser::ast::{
    AssignmentTarget, BinaryOperator, Expr, Ident, Insert, ObjectName, SelectItem, SetExpr,
    Statement, TableAlias, TableFactor, TableObject, Update, UpdateTableFromKind,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

use super::catalog::{quote_ident, tenant_value, Catalog, Relation};
use super::guard::{name_parts, Guard};
use super::parse::{parse_statement, statement_kind};
use super::refusal::{Checked, Refusal};

/// A query that passed the checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedQuery {
    /// The SQL that runs: the model's query with every allowlisted relation replaced by its
    /// tenant-scoped query.
    pub sql: String,
    /// Allowlisted relations it reads.
    pub relations: BTreeSet<String>,
}

/// What a write does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    /// `INSERT`.
    Insert,
    /// `UPDATE`.
    Update,
}

impl WriteKind {
    /// `insert` or `update`.
    pub fn as_str(self) -> &'static str {
        match self {
            WriteKind::Insert => "insert",
            WriteKind::Update => "update",
        }
    }
}

/// A write that passed the checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedWrite {
    /// The model's statement, normalised (what a person confirms).
    pub statement: String,
    /// The SQL that runs: tenant column set (insert) or required (update), other relations
    /// tenant-scoped.
    pub sql: String,
    /// The table written.
    pub table: String,
    /// Insert or update.
    pub kind: WriteKind,
}

/// Checks and rewrites a read.
pub(crate) fn check_query(catalog: &Catalog, sql: &str, max_bytes: usize) -> Checked<CheckedQuery> {
    let mut stmt = parse_statement(sql, max_bytes)?;
    let Statement::Query(q) = &mut stmt else {
        return Err(Refusal::StatementKind {
            tool: "db.query",
            allowed: "a single SELECT",
            found: statement_kind(&stmt),
        });
    };
    let mut guard = Guard::new(catalog);
    guard.check(q.as_mut())?;
    Ok(CheckedQuery {
        sql: q.to_string(),
        relations: guard.relations,
    })
}

/// Checks and rewrites a write.
pub(crate) fn check_write(
    catalog: &Catalog,
    sql: &str,
    max_bytes: usize,
    tenant_setting: &str,
) -> Checked<CheckedWrite> {
    let mut stmt = parse_statement(sql, max_bytes)?;
    let statement = stmt.to_string();
    let (kind, table) = match &mut stmt {
        Statement::Insert(ins) => (WriteKind::Insert, insert(catalog, ins, tenant_setting)?),
        Statement::Update(up) => (WriteKind::Update, update(catalog, up, tenant_setting)?),
        other => {
            return Err(Refusal::StatementKind {
                tool: "db.write",
                allowed: "a single INSERT or UPDATE",
                found: statement_kind(other),
            })
        }
    };
    Ok(CheckedWrite {
        statement,
        sql: stmt.to_string(),
        table,
        kind,
    })
}

fn target<'c>(catalog: &'c Catalog, name: &ObjectName) -> Checked<&'c Relation> {
    let parts = name_parts(name)?;
    let rel = match parts.as_slice() {
        [one] => catalog.get(one),
        [schema, one] => catalog.get(one).filter(|r| &r.schema == schema),
        _ => None,
    }
    .ok_or_else(|| Refusal::Relation(name.to_string()))?;
    if !rel.writable {
        return Err(Refusal::NotWritable(rel.name.clone()));
    }
    Ok(rel)
}

fn qualified_name(rel: &Relation) -> ObjectName {
    ObjectName::from(vec![
        Ident::with_quote('"', rel.schema.clone()),
        Ident::with_quote('"', rel.name.clone()),
    ])
}

/// A column the write may set: visible, and not the tenant column.
fn settable(rel: &Relation, name: &ObjectName) -> Checked<String> {
    let parts = name_parts(name)?;
    let [col] = parts.as_slice() else {
        return Err(Refusal::Column(name.to_string()));
    };
    if rel.tenant.as_ref().is_some_and(|(t, _)| t == col) {
        return Err(Refusal::TenantColumn(col.clone()));
    }
    rel.column(col)
        .map(|c| c.name.clone())
        .ok_or_else(|| Refusal::Column(col.clone()))
}

fn parse_expr(sql: &str) -> Checked<Expr> {
    Parser::new(&PostgreSqlDialect {})
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| Refusal::Other(format!("internal rewrite failed: {e}")))
}

fn tenant_of(rel: &Relation) -> Checked<(String, String)> {
    rel.tenant
        .clone()
        .ok_or_else(|| Refusal::NotWritable(rel.name.clone()))
}

fn insert(catalog: &Catalog, ins: &mut Insert, setting: &str) -> Checked<String> {
    if ins.or.is_some()
        || ins.ignore
        || ins.table_alias.is_some()
        || ins.overwrite
        || ins.partitioned.is_some()
        || !ins.after_columns.is_empty()
        || ins.overriding.is_some()
        || ins.output.is_some()
        || ins.replace_into
        || ins.priority.is_some()
        || ins.insert_alias.is_some()
        || ins.settings.is_some()
        || !ins.assignments.is_empty()
        || ins.by_name
        || !ins.optimizer_hints.is_empty()
    {
        return Err(Refusal::Clause("this INSERT form".into()));
    }
    if ins.on.is_some() {
        return Err(Refusal::Clause("ON CONFLICT".into()));
    }
    if ins.returning.is_some() {
        return Err(Refusal::Clause("RETURNING".into()));
    }
    let TableObject::TableName(name) = &ins.table else {
        return Err(Refusal::Clause("this INSERT target".into()));
    };
    let rel = target(catalog, name)?;
    let (tenant_col, tenant_ty) = tenant_of(rel)?;
    if ins.columns.is_empty() {
        return Err(Refusal::Other(
            "name the columns: INSERT INTO t (a, b) VALUES (...)".into(),
        ));
    }
    let mut seen = BTreeSet::new();
    for c in &ins.columns {
        if !seen.insert(settable(rel, c)?) {
            return Err(Refusal::Other(format!("column {c} is named twice")));
        }
    }
    let Some(source) = ins.source.as_mut() else {
        return Err(Refusal::Other(
            "give the rows: VALUES (...) or SELECT".into(),
        ));
    };
    Guard::new(catalog)
        .forbid_columns(rel.hidden.clone())
        .check(source.as_mut())?;
    let tenant = parse_expr(&tenant_value(setting, &tenant_ty))?;
    match source.body.as_mut() {
        SetExpr::Values(values) => {
            for row in &mut values.rows {
                if row.content.len() != ins.columns.len() {
                    return Err(Refusal::Other(format!(
                        "each row needs {} values, one per named column",
                        ins.columns.len()
                    )));
                }
                row.content.push(tenant.clone());
            }
        }
        SetExpr::Select(select) => select.projection.push(SelectItem::UnnamedExpr(tenant)),
        _ => {
            return Err(Refusal::Clause(
                "this INSERT source; insert VALUES or a single SELECT".into(),
            ))
        }
    }
    ins.columns
        .push(ObjectName::from(vec![Ident::with_quote('"', tenant_col)]));
    ins.table = TableObject::TableName(qualified_name(rel));
    Ok(rel.name.clone())
}

fn update(catalog: &Catalog, up: &mut Update, setting: &str) -> Checked<String> {
    if up.or.is_some()
        || up.on_cluster.is_some()
        || up.output.is_some()
        || !up.order_by.is_empty()
        || up.limit.is_some()
        || up.settings.is_some()
        || !up.optimizer_hints.is_empty()
        || matches!(up.from, Some(UpdateTableFromKind::BeforeSet(_)))
        || !up.table.joins.is_empty()
    {
        return Err(Refusal::Clause("this UPDATE form".into()));
    }
    if up.returning.is_some() {
        return Err(Refusal::Clause("RETURNING".into()));
    }
    let TableFactor::Table {
        name,
        alias,
        args: None,
        ..
    } = &mut up.table.relation
    else {
        return Err(Refusal::Clause("this UPDATE target".into()));
    };
    let rel = target(catalog, name)?;
    let (tenant_col, tenant_ty) = tenant_of(rel)?;
    for a in &up.assignments {
        match &a.target {
            AssignmentTarget::ColumnName(c) => {
                settable(rel, c)?;
            }
            AssignmentTarget::Tuple(cols) => {
                for c in cols {
                    settable(rel, c)?;
                }
            }
        }
    }
    let Some(selection) = up.selection.take() else {
        return Err(Refusal::Other(
            "an UPDATE needs a WHERE clause (write WHERE true to change every row)".into(),
        ));
    };
    let mut guard = Guard::new(catalog).forbid_columns(rel.hidden.clone());
    let mut selection = selection;
    guard.check(&mut selection)?;
    for a in &mut up.assignments {
        guard.check(&mut a.value)?;
    }
    if let Some(from) = up.from.as_mut() {
        guard.check(from)?;
    }
    let alias = alias.get_or_insert_with(|| TableAlias {
        explicit: true,
        name: Ident::with_quote('"', rel.name.clone()),
        columns: Vec::new(),
        at: None,
    });
    let predicate = parse_expr(&format!(
        "{}.{} = {}",
        alias.name,
        quote_ident(&tenant_col),
        tenant_value(setting, &tenant_ty)
    ))?;
    *name = qualified_name(rel);
    up.selection = Some(Expr::BinaryOp {
        left: Box::new(Expr::Nested(Box::new(selection))),
        op: BinaryOperator::And,
        right: Box::new(predicate),
    });
    Ok(rel.name.clone())
}
