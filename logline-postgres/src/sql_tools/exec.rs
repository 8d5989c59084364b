//! Running checked statements: one transaction per call with the caller's tenant, a
//! statement timeout, an empty `search_path`, the configured role, and (reads) READ ONLY.

use futures::TryStreamExt;
use logline_core::{Error, Result};
use serde_json::{json, Value};
use sqlx::{Column, Executor, PgPool, Postgres, Row, Statement, Transaction};

use super::catalog::quote_ident;
use super::config::SqlLimits;
use super::rows::{parse_row, ParsedRow};

use super::statements::{CheckedQuery, CheckedWrite};
use crate::error::PgError;

/// How a call's transaction is set up.
pub(crate) struct TxSettings<'a> {
    pub limits: &'a SqlLimits,
    pub role: Option<&'a str>,
    pub tenant_setting: &'a str,
    pub tenant: &'a str,
    pub read_only: bool,
}

/// Opens the call's transaction.
async fn begin(pool: &PgPool, s: &TxSettings<'_>) -> Result<Transaction<'static, Postgres>> {
    let mut tx = pool.begin().await.map_err(PgError::from)?;
    if s.read_only {
        sqlx::query("SET TRANSACTION READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(PgError::from)?;
    }
    let ms = s.limits.statement_timeout.as_millis().max(1);
    let timeout = format!("{ms}ms");
    // Ends a transaction whose caller went away; far above the gaps between our statements.
    let idle = format!("{}ms", ms + 10_000);
    sqlx::query(
        "SELECT set_config('statement_timeout', $1, true), \
                set_config('lock_timeout', $1, true), \
                set_config('idle_in_transaction_session_timeout', $4, true), \
                set_config('search_path', '', true), \
                set_config($2, $3, true)",
    )
    .bind(&timeout)
    .bind(s.tenant_setting)
    .bind(s.tenant)
    .bind(&idle)
    .execute(&mut *tx)
    .await
    .map_err(PgError::from)?;
    if let Some(role) = s.role {
        sqlx::query(&format!("SET LOCAL ROLE {}", quote_ident(role)))
            .execute(&mut *tx)
            .await
            .map_err(PgError::from)?;
    }
    Ok(tx)
}

/// A database error a model can act on (a timeout, a wrong column, a constraint) becomes a
/// final tool failure with PostgreSQL's message (never its detail, which may quote other
/// rows); infrastructure failures keep the adapter's retryable mapping.
fn db_error(tool: &str, e: sqlx::Error, limits: &SqlLimits) -> Error {
    let sqlx::Error::Database(d) = &e else {
        return PgError::from(e).into();
    };
    let code = d.code().map(|c| c.into_owned()).unwrap_or_default();
    let infra = ["08", "53", "57P", "58", "40"];
    if infra.iter().any(|p| code.starts_with(p)) {
        return PgError::from(e).into();
    }
    let message = if code == "57014" {
        format!(
            "the statement was cancelled after {} ms (statement timeout); make it cheaper \
             (filter earlier, aggregate, add LIMIT)",
            limits.statement_timeout.as_millis()
        )
    } else {
        format!(
            "PostgreSQL refused the statement: {} (SQLSTATE {code})",
            d.message()
        )
    };
    Error::ToolFailed {
        tool_id: tool.to_string(),
        message,
        retryable: false,
    }
}

/// Runs a checked read and returns `{columns, rows, row_count, truncated, truncated_by}`.
pub(crate) async fn run_query(
    pool: &PgPool,
    s: &TxSettings<'_>,
    q: &CheckedQuery,
) -> Result<Value> {
    let max_rows = s.limits.max_rows.max(1);
    let cap = s.limits.max_bytes.max(1);
    // Rows as JSON text, at most max_rows + 1 of them, and none after the row that crosses
    // the byte cap (each cut to cap + 1 characters), so neither the rows nor the bytes sent
    // back grow with the result.
    let sql = format!(
        "SELECT left(j, {cut}) AS j, octet_length(j)::int8 AS len FROM ( \
           SELECT j, sum(octet_length(j)) OVER (ROWS UNBOUNDED PRECEDING) AS upto FROM ( \
             SELECT row_to_json(q)::text AS j FROM ({inner}) AS q LIMIT {limit}) AS r \
         ) AS s WHERE upto - octet_length(j) <= {cap}",
        cut = cap + 1,
        inner = q.sql,
        limit = max_rows + 1,
    );
    let mut tx = begin(pool, s).await?;
    let mut columns: Option<Vec<String>> = None;
    let mut rows: Vec<Value> = Vec::new();
    let mut bytes = 0usize;
    let mut truncated_by: Option<&str> = None;
    {
        let mut stream = sqlx::query(&sql).persistent(false).fetch(&mut *tx);
        while let Some(row) = stream
            .try_next()
            .await
            .map_err(|e| db_error("db.query", e, s.limits))?
        {
            if rows.len() == max_rows {
                truncated_by = Some("max_rows");
                break;
            }
            let len = usize::try_from(row.try_get::<i64, _>("len").map_err(PgError::from)?)
                .unwrap_or(usize::MAX);
            if bytes.saturating_add(len) > cap {
                truncated_by = Some("max_bytes");
                break;
            }
            bytes += len;
            let text: String = row.try_get("j").map_err(PgError::from)?;
            let ParsedRow { names, values } = parse_row(&text)?;
            columns.get_or_insert(names);
            rows.push(Value::Array(values));
        }
    }
    let columns = match columns {
        Some(c) => c,
        None => column_names(&mut tx, q, s.limits).await?,
    };
    tx.rollback().await.map_err(PgError::from)?;
    Ok(json!({
        "columns": columns,
        "rows": rows,
        "row_count": rows.len(),
        "truncated": truncated_by.is_some(),
        "truncated_by": truncated_by,
    }))
}

/// The result columns of a query that returned no rows (or only a row past the byte cap),
/// from the prepared statement.
async fn column_names(
    tx: &mut Transaction<'static, Postgres>,
    q: &CheckedQuery,
    limits: &SqlLimits,
) -> Result<Vec<String>> {
    let statement = (&mut **tx)
        .prepare(q.sql.as_str())
        .await
        .map_err(|e| db_error("db.query", e, limits))?;
    Ok(statement
        .columns()
        .iter()
        .map(|c| c.name().to_string())
        .collect())
}

/// Runs a checked write; a dry run rolls it back. Returns the affected rows.
pub(crate) async fn run_write(
    pool: &PgPool,
    s: &TxSettings<'_>,
    w: &CheckedWrite,
    dry_run: bool,
    tool: &str,
) -> Result<u64> {
    let mut tx = begin(pool, s).await?;
    let done = sqlx::query(&w.sql)
        .persistent(false)
        .execute(&mut *tx)
        .await
        .map_err(|e| db_error(tool, e, s.limits))?;
    if dry_run {
        tx.rollback().await.map_err(PgError::from)?;
    } else {
        tx.commit().await.map_err(PgError::from)?;
    }
    Ok(done.rows_affected())
}
