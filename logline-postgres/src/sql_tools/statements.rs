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

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        Catalog::for_tests(&[
            ("items", Some("tenant_id"), true, &["note"]),
            ("tags", Some("tenant_id"), false, &[]),
            ("kinds", None, false, &[]),
        ])
    }

    fn scoped_refs(sql: &str) -> usize {
        sql.matches("FROM \"app\".").count()
    }

    #[test]
    fn every_reference_is_replaced_by_its_scoped_query() {
        let c = catalog();
        for (sql, refs, tenant_filters) in [
            ("SELECT * FROM items", 1, 1),
            ("SELECT * FROM items i JOIN tags t ON t.id = i.id", 2, 2),
            ("SELECT (SELECT count(*) FROM tags), * FROM kinds", 2, 1),
            (
                "WITH x AS (SELECT * FROM items) SELECT * FROM x, x AS y",
                1,
                1,
            ),
            (
                "SELECT * FROM items WHERE id IN (SELECT id FROM tags UNION SELECT id FROM items)",
                3,
                3,
            ),
            (
                "SELECT * FROM items, LATERAL (SELECT * FROM tags WHERE tags.id = items.id) t",
                2,
                2,
            ),
            (
                "SELECT EXISTS (SELECT 1 FROM (SELECT * FROM items) s)",
                1,
                1,
            ),
            ("SELECT * FROM app.items", 1, 1),
        ] {
            let out = check_query(&c, sql, 10_000).unwrap();
            assert_eq!(scoped_refs(&out.sql), refs, "{sql} -> {}", out.sql);
            assert_eq!(
                out.sql
                    .matches("current_setting('logline.tenant_id')")
                    .count(),
                tenant_filters,
                "{sql} -> {}",
                out.sql
            );
        }
        let out = check_query(&c, "SELECT * FROM items", 10_000).unwrap();
        assert!(
            !out.sql.contains("note"),
            "hidden column left out: {}",
            out.sql
        );
        assert!(out.sql.ends_with("AS \"items\""), "{}", out.sql);
    }

    #[test]
    fn cte_names_are_scoped_and_cannot_shadow() {
        let c = catalog();
        assert_eq!(
            check_query(
                &c,
                "SELECT * FROM (WITH x AS (SELECT 1) SELECT * FROM x) s, x",
                10_000
            )
            .unwrap_err(),
            Refusal::Relation("x".into()),
            "a CTE is not visible outside its query"
        );
        assert!(matches!(
            check_query(&c, "WITH items AS (SELECT 1) SELECT * FROM items", 10_000),
            Err(Refusal::Other(_))
        ));
        assert!(matches!(
            check_query(&c, "SELECT * FROM other.items", 10_000),
            Err(Refusal::Relation(_))
        ));
    }

    #[test]
    fn writes_force_the_tenant() {
        let c = catalog();
        let w = check_write(
            &c,
            "INSERT INTO items (id, name) VALUES ('1', 'a'), ('2', (SELECT max(name) FROM tags))",
            10_000,
            "logline.tenant_id",
        )
        .unwrap();
        assert_eq!(w.kind, WriteKind::Insert);
        assert_eq!(
            w.sql
                .matches("current_setting('logline.tenant_id')")
                .count(),
            3,
            "two rows and the scoped sub-query: {}",
            w.sql
        );
        assert!(w
            .sql
            .starts_with("INSERT INTO \"app\".\"items\" (id, name, \"tenant_id\")"));
        let u = check_write(
            &c,
            "UPDATE items i SET name = 'b' WHERE id = '1' OR true",
            10_000,
            "logline.tenant_id",
        )
        .unwrap();
        assert!(
            u.sql.ends_with("WHERE (id = '1' OR true) AND i.\"tenant_id\" = CAST(current_setting('logline.tenant_id') AS TEXT)"),
            "{}",
            u.sql
        );
        assert_eq!(
            u.statement,
            "UPDATE items i SET name = 'b' WHERE id = '1' OR true"
        );
        for (sql, refusal) in [
            (
                "INSERT INTO tags (name) VALUES ('x')",
                Refusal::NotWritable("tags".into()),
            ),
            (
                "INSERT INTO items (note) VALUES ('x')",
                Refusal::Column("note".into()),
            ),
            (
                "UPDATE items SET name = note WHERE true",
                Refusal::Column("note".into()),
            ),
            (
                "INSERT INTO items (tenant_id) VALUES ('x')",
                Refusal::TenantColumn("tenant_id".into()),
            ),
        ] {
            assert_eq!(
                check_write(&c, sql, 10_000, "logline.tenant_id").unwrap_err(),
                refusal,
                "{sql}"
            );
        }
        assert!(matches!(
            check_write(
                &c,
                "INSERT INTO items (id, name) VALUES ('1')",
                10_000,
                "logline.tenant_id"
            ),
            Err(Refusal::Other(_))
        ));
    }
}
