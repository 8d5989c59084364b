//! The check and rewrite of every query a model sends, on the parsed tree.
//!
//! One pass over the whole statement (every sub-query, CTE, join, expression): locking
//! clauses, `INTO`, data-modifying CTEs, placeholders, functions and casts outside the
//! allowlists are refused; every relation must be an allowlisted one or a CTE in scope, and
//! each reference to an allowlisted relation is replaced with its scoped query
//! (`(SELECT <visible columns> FROM "schema"."rel" WHERE <tenant column> = <caller's
//! tenant>) AS rel`), so the caller's tenant is applied in SQL wherever the relation is read.

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, Expr, FunctionArguments, Ident, ObjectName, ObjectNamePart, Query, Select,
    SetExpr, TableAlias, TableFactor, Value, VisitMut, VisitorMut,
};

use super::allow::{function_allowed, table_function_allowed, type_allowed};
use super::catalog::Catalog;
use super::refusal::{Checked, Refusal};

/// Identifiers PostgreSQL reads as functions without parentheses (the session's role and
/// schema): refused like the functions.
const SESSION_KEYWORDS: &[&str] = &[
    "current_user",
    "session_user",
    "user",
    "current_role",
    "current_catalog",
    "current_schema",
    "system_user",
];

/// The identifier as PostgreSQL resolves it: unquoted names fold to lower case.
pub(crate) fn ident_name(id: &Ident) -> Checked<String> {
    match id.quote_style {
        None => Ok(id.value.to_ascii_lowercase()),
        Some('"') => Ok(id.value.clone()),
        Some(q) => Err(Refusal::Other(format!(
            "identifiers are quoted with double quotes, not {q}"
        ))),
    }
}

/// The plain identifiers of a name; a dialect-specific part is refused.
pub(crate) fn name_parts(name: &ObjectName) -> Checked<Vec<String>> {
    name.0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(id) => ident_name(id),
            ObjectNamePart::Function(_) => Err(Refusal::Other(format!("unsupported name {name}"))),
        })
        .collect()
}

/// Checks and rewrites queries against one catalog.
pub(crate) struct Guard<'a> {
    catalog: &'a Catalog,
    /// CTE names of the enclosing queries, innermost last.
    ctes: Vec<Vec<String>>,
    /// Column names that may not appear anywhere (hidden columns of a write's target).
    forbidden_columns: Vec<String>,
    /// Allowlisted relations the statement reads.
    pub relations: BTreeSet<String>,
}

enum Resolved {
    Cte,
    Relation(String),
}

impl<'a> Guard<'a> {
    pub fn new(catalog: &'a Catalog) -> Self {
        Guard {
            catalog,
            ctes: Vec::new(),
            forbidden_columns: Vec::new(),
            relations: BTreeSet::new(),
        }
    }

    /// Refuses any identifier naming one of `columns`.
    pub fn forbid_columns(mut self, columns: Vec<String>) -> Self {
        self.forbidden_columns = columns;
        self
    }

    /// Checks and rewrites `node` and everything below it.
    pub fn check<T: VisitMut>(&mut self, node: &mut T) -> Checked<()> {
        match node.visit(self) {
            ControlFlow::Continue(()) => Ok(()),
            ControlFlow::Break(r) => Err(r),
        }
    }

    fn resolve(&self, name: &ObjectName) -> Checked<Resolved> {
        let parts = name_parts(name)?;
        match parts.as_slice() {
            [one] if self.ctes.iter().any(|f| f.contains(one)) => Ok(Resolved::Cte),
            [one] if self.catalog.get(one).is_some() => Ok(Resolved::Relation(one.clone())),
            [schema, one] => match self.catalog.get(one) {
                Some(rel) if &rel.schema == schema => Ok(Resolved::Relation(one.clone())),
                _ => Err(Refusal::Relation(name.to_string())),
            },
            _ => Err(Refusal::Relation(name.to_string())),
        }
    }

    fn check_query(&self, q: &Query) -> Checked<()> {
        if !q.locks.is_empty() {
            return Err(Refusal::Clause(
                "a locking clause (FOR UPDATE/SHARE)".into(),
            ));
        }
        if q.for_clause.is_some()
            || q.settings.is_some()
            || q.format_clause.is_some()
            || !q.pipe_operators.is_empty()
        {
            return Err(Refusal::Clause("this query clause".into()));
        }
        check_body(&q.body)?;
        if let Some(with) = &q.with {
            for cte in &with.cte_tables {
                let name = ident_name(&cte.alias.name)?;
                if self.catalog.get(&name).is_some() || name.starts_with("pg_") {
                    return Err(Refusal::Other(format!(
                        "a CTE may not be named `{name}`; pick another name"
                    )));
                }
            }
        }
        Ok(())
    }

    fn check_table_factor(&mut self, tf: &TableFactor) -> Checked<()> {
        match tf {
            TableFactor::Table {
                name,
                args,
                with_hints,
                version,
                partitions,
                json_path,
                sample,
                index_directives,
                ..
            } => {
                if !with_hints.is_empty()
                    || version.is_some()
                    || !partitions.is_empty()
                    || json_path.is_some()
                    || sample.is_some()
                    || !index_directives.is_empty()
                {
                    return Err(Refusal::Clause(format!("this option on `{name}`")));
                }
                if args.is_some() {
                    return check_table_function(name);
                }
                if let Resolved::Relation(r) = self.resolve(name)? {
                    self.relations.insert(r);
                }
                Ok(())
            }
            TableFactor::Function { name, .. } => check_table_function(name),
            TableFactor::Derived { sample: None, .. }
            | TableFactor::UNNEST { .. }
            | TableFactor::NestedJoin { .. } => Ok(()),
            other => Err(Refusal::Clause(format!("the FROM item `{other}`"))),
        }
    }

    fn check_expr(&self, e: &Expr) -> Checked<()> {
        match e {
            Expr::Function(f) => {
                let parts = name_parts(&f.name)?;
                let [name] = parts.as_slice() else {
                    return Err(Refusal::Function(format!(
                        "{} (call functions without a schema)",
                        f.name
                    )));
                };
                if !function_allowed(name) || !matches!(f.parameters, FunctionArguments::None) {
                    return Err(Refusal::Function(name.clone()));
                }
                Ok(())
            }
            Expr::Cast { data_type, .. } => check_type(&data_type.to_string()),
            Expr::TypedString(ts) => check_type(&ts.data_type.to_string()),
            Expr::Value(v) if matches!(v.value, Value::Placeholder(_)) => Err(Refusal::Other(
                "parameters ($1, ?) are not supported; write the values inline".into(),
            )),
            Expr::BinaryOp {
                op: BinaryOperator::PGCustomBinaryOperator(_),
                ..
            } => Err(Refusal::Clause("OPERATOR(...)".into())),
            Expr::Identifier(id) => {
                let name = ident_name(id)?;
                if id.quote_style.is_none() && SESSION_KEYWORDS.contains(&name.as_str()) {
                    return Err(Refusal::Function(name));
                }
                self.check_column(&name)
            }
            Expr::CompoundIdentifier(ids) => match ids.last() {
                Some(id) => self.check_column(&ident_name(id)?),
                None => Ok(()),
            },
            _ => Ok(()),
        }
    }

    fn check_column(&self, name: &str) -> Checked<()> {
        if self.forbidden_columns.iter().any(|c| c == name) {
            return Err(Refusal::Column(name.to_string()));
        }
        Ok(())
    }

    /// The scoped query that replaces a reference to an allowlisted relation.
    fn scoped(&self, tf: &TableFactor) -> Checked<Option<TableFactor>> {
        let TableFactor::Table {
            name,
            alias,
            args: None,
            ..
        } = tf
        else {
            return Ok(None);
        };
        let Resolved::Relation(r) = self.resolve(name)? else {
            return Ok(None);
        };
        let rel = self
            .catalog
            .get(&r)
            .ok_or_else(|| Refusal::Relation(r.clone()))?;
        let alias = alias.clone().unwrap_or(TableAlias {
            explicit: true,
            name: Ident::with_quote('"', rel.name.clone()),
            columns: Vec::new(),
            at: None,
        });
        Ok(Some(TableFactor::Derived {
            lateral: false,
            subquery: Box::new(rel.scoped.clone()),
            alias: Some(alias),
            sample: None,
        }))
    }
}

fn check_body(body: &SetExpr) -> Checked<()> {
    match body {
        SetExpr::Select(_) | SetExpr::Query(_) | SetExpr::Values(_) => Ok(()),
        SetExpr::SetOperation { left, right, .. } => {
            check_body(left)?;
            check_body(right)
        }
        SetExpr::Insert(_) | SetExpr::Update(_) | SetExpr::Delete(_) | SetExpr::Merge(_) => {
            Err(Refusal::Clause(
                "a data-modifying statement inside a query (e.g. WITH x AS (DELETE ...))".into(),
            ))
        }
        SetExpr::Table(_) => Err(Refusal::Clause(
            "TABLE name; write SELECT * FROM name".into(),
        )),
        #[allow(unreachable_patterns)]
        _ => Err(Refusal::Clause("this query form".into())),
    }
}

fn check_select(s: &Select) -> Checked<()> {
    if s.into.is_some() {
        return Err(Refusal::Clause("SELECT ... INTO".into()));
    }
    if s.top.is_some()
        || s.prewhere.is_some()
        || !s.connect_by.is_empty()
        || !s.lateral_views.is_empty()
        || !s.cluster_by.is_empty()
        || !s.distribute_by.is_empty()
        || !s.sort_by.is_empty()
        || s.qualify.is_some()
        || s.value_table_mode.is_some()
        || s.select_modifiers.is_some()
        || !s.optimizer_hints.is_empty()
    {
        return Err(Refusal::Clause(
            "a clause PostgreSQL does not have in this position".into(),
        ));
    }
    Ok(())
}

fn check_table_function(name: &ObjectName) -> Checked<()> {
    let parts = name_parts(name)?;
    match parts.as_slice() {
        [one] if table_function_allowed(one) => Ok(()),
        _ => Err(Refusal::Function(name.to_string())),
    }
}

fn check_type(ty: &str) -> Checked<()> {
    if type_allowed(ty) {
        Ok(())
    } else {
        Err(Refusal::Type(ty.to_string()))
    }
}

fn flow(r: Checked<()>) -> ControlFlow<Refusal> {
    match r {
        Ok(()) => ControlFlow::Continue(()),
        Err(e) => ControlFlow::Break(e),
    }
}

impl VisitorMut for Guard<'_> {
    type Break = Refusal;

    fn pre_visit_query(&mut self, q: &mut Query) -> ControlFlow<Refusal> {
        flow(self.check_query(q))?;
        let mut frame = Vec::new();
        if let Some(with) = &q.with {
            for cte in &with.cte_tables {
                frame.push(flow_value(ident_name(&cte.alias.name))?);
            }
        }
        self.ctes.push(frame);
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _q: &mut Query) -> ControlFlow<Refusal> {
        self.ctes.pop();
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, s: &mut Select) -> ControlFlow<Refusal> {
        flow(check_select(s))
    }

    fn pre_visit_table_factor(&mut self, tf: &mut TableFactor) -> ControlFlow<Refusal> {
        flow(self.check_table_factor(tf))
    }

    fn post_visit_table_factor(&mut self, tf: &mut TableFactor) -> ControlFlow<Refusal> {
        if let Some(scoped) = flow_value(self.scoped(tf))? {
            *tf = scoped;
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, e: &mut Expr) -> ControlFlow<Refusal> {
        flow(self.check_expr(e))
    }
}

fn flow_value<T>(r: Checked<T>) -> ControlFlow<Refusal, T> {
    match r {
        Ok(v) => ControlFlow::Continue(v),
        Err(e) => ControlFlow::Break(e),
    }
}
