//! Natural-language database tools: a [`ToolHub`] an agent uses to answer questions over the
//! host's own tables (`db.describe`, `db.query`) and to propose writes (`db.preview_write`,
//! `db.write`).
//!
//! Layers, each enough on its own for the common attacks:
//! 1. **Parse check** (`statements.rs`, `guard.rs`): the PostgreSQL grammar of `sqlparser`,
//!    exactly one statement, every relation in an allowlist, functions and casts in safe
//!    allowlists, no locking, `INTO`, data-modifying CTEs or placeholders; the statement that
//!    runs is printed from the checked tree, never the model's text.
//! 2. **Tenant scope in SQL**: each reference to an allowlisted relation becomes a sub-query
//!    filtered on its tenant column against a transaction-local setting holding the trusted
//!    tenant; writes get the tenant column set (insert) or required (update).
//! 3. **Transaction**: reads run READ ONLY; every call has a `statement_timeout`, an empty
//!    `search_path`, and the least-privilege role the host names; reads are capped in rows
//!    and bytes.

mod allow;
mod catalog;
mod config;
mod exec;
mod guard;
mod parse;
mod refusal;
mod rows;
mod specs;
mod statements;

use async_trait::async_trait;
use logline_core::tool::{PageRequest, ToolContext, ToolHub, ToolPage, ToolSpec};
use logline_core::{Error, Result};
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::PgPool;
use std::time::Duration;

pub use config::{SqlLimits, SqlTable, TenantScope, DEFAULT_TENANT_SETTING};
pub use refusal::{Refusal, SQL_SAFETY_POLICY};
pub use specs::{DESCRIBE, PREVIEW_WRITE, QUERY, WRITE};
pub use statements::{CheckedQuery, CheckedWrite, WriteKind};

use catalog::Catalog;
use config::SqlToolsConfig;
use exec::TxSettings;

/// The database tools over a host's PostgreSQL tables (see the module docs).
pub struct SqlToolHub {
    pool: PgPool,
    config: SqlToolsConfig,
    catalog: Catalog,
    specs: Vec<ToolSpec>,
}

/// Builds a [`SqlToolHub`]; [`SqlToolHubBuilder::build`] resolves the allowlist.
pub struct SqlToolHubBuilder {
    pool: PgPool,
    config: SqlToolsConfig,
}

impl SqlToolHubBuilder {
    /// Allowlists a table or view.
    pub fn table(mut self, table: SqlTable) -> Self {
        self.config.tables.push(table);
        self
    }

    /// All limits at once.
    pub fn limits(mut self, limits: SqlLimits) -> Self {
        self.config.limits = limits;
        self
    }

    /// `statement_timeout` of every statement (default 5 s).
    pub fn statement_timeout(mut self, d: Duration) -> Self {
        self.config.limits.statement_timeout = d;
        self
    }

    /// Most rows a read returns (default 500).
    pub fn max_rows(mut self, n: usize) -> Self {
        self.config.limits.max_rows = n;
        self
    }

    /// Most bytes of row JSON a read returns (default 256 KiB).
    pub fn max_bytes(mut self, n: usize) -> Self {
        self.config.limits.max_bytes = n;
        self
    }

    /// Role the reads run as (`SET LOCAL ROLE`): give it `SELECT` on the allowlist only.
    pub fn read_role(mut self, role: impl Into<String>) -> Self {
        self.config.read_role = Some(role.into());
        self
    }

    /// Role the writes run as: give it `SELECT, INSERT, UPDATE` on the writable tables only.
    pub fn write_role(mut self, role: impl Into<String>) -> Self {
        self.config.write_role = Some(role.into());
        self
    }

    /// Name of the transaction-local setting that carries the tenant (default
    /// [`DEFAULT_TENANT_SETTING`]); row-level-security policies read it.
    pub fn tenant_setting(mut self, name: impl Into<String>) -> Self {
        self.config.tenant_setting = name.into();
        self
    }

    /// Hub name the specs carry (default `sql`).
    pub fn hub_name(mut self, name: impl Into<String>) -> Self {
        self.config.hub_name = name.into();
        self
    }

    /// Checks the settings and resolves every allowlisted relation in the database.
    pub async fn build(self) -> Result<SqlToolHub> {
        let config = self.config;
        if !config::valid_setting_name(&config.tenant_setting) {
            return Err(Error::InvalidInput(format!(
                "tenant setting `{}` must look like `prefix.name` (lowercase)",
                config.tenant_setting
            )));
        }
        for role in [&config.read_role, &config.write_role]
            .into_iter()
            .flatten()
        {
            let exists: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
                    .bind(role)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(crate::error::PgError::from)?;
            if !exists {
                return Err(Error::InvalidInput(format!("role `{role}` does not exist")));
            }
        }
        let catalog = Catalog::load(&self.pool, &config.tables, &config.tenant_setting).await?;
        let specs = specs::specs(&catalog, &config.hub_name, config.limits.max_sql_bytes);
        Ok(SqlToolHub {
            pool: self.pool,
            config,
            catalog,
            specs,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryArgs {
    sql: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteArgs {
    sql: String,
    #[serde(default = "yes")]
    dry_run: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DescribeArgs {
    table: Option<String>,
}

/// The refusal as the model's error, counted in the logs by its code (never the SQL, which
/// may hold data).
fn refused(tool: &str, r: Refusal) -> Error {
    tracing::debug!(tool, code = r.code(), "database tool refused a statement");
    r.into_error(tool)
}

fn args<T: for<'de> Deserialize<'de>>(tool: &str, v: Value) -> Result<T> {
    serde_json::from_value(v)
        .map_err(|e| Error::InvalidInput(format!("arguments of `{tool}`: {e}")))
}

impl SqlToolHub {
    /// A builder over `pool` (the host's database; it may be another than LogLine's).
    pub fn builder(pool: PgPool) -> SqlToolHubBuilder {
        SqlToolHubBuilder {
            pool,
            config: SqlToolsConfig::default(),
        }
    }

    /// The tools' catalog entries.
    pub fn specs(&self) -> Vec<ToolSpec> {
        self.specs.clone()
    }

    /// Checks a read and returns the SQL that would run, without running it.
    pub fn check_query(&self, sql: &str) -> std::result::Result<CheckedQuery, Refusal> {
        parse::on_check_stack(|| {
            statements::check_query(&self.catalog, sql, self.config.limits.max_sql_bytes)
        })
    }

    /// Checks a write and returns the SQL that would run, without running it.
    pub fn check_write(&self, sql: &str) -> std::result::Result<CheckedWrite, Refusal> {
        parse::on_check_stack(|| {
            statements::check_write(
                &self.catalog,
                sql,
                self.config.limits.max_sql_bytes,
                &self.config.tenant_setting,
            )
        })
    }

    /// `db.describe`: the allowlisted relations (or one of them) with their columns.
    pub fn describe(&self, table: Option<&str>) -> Result<Value> {
        let tables: Vec<Value> = match table {
            None => self
                .catalog
                .relations
                .values()
                .map(|r| r.describe())
                .collect(),
            Some(t) => vec![self
                .catalog
                .get(t)
                .ok_or_else(|| Refusal::Relation(t.to_string()).into_error(DESCRIBE))?
                .describe()],
        };
        Ok(json!({ "tables": tables }))
    }

    fn settings<'a>(&'a self, tenant: &'a str, read_only: bool) -> TxSettings<'a> {
        TxSettings {
            limits: &self.config.limits,
            role: if read_only {
                self.config.read_role.as_deref()
            } else {
                self.config.write_role.as_deref()
            },
            tenant_setting: &self.config.tenant_setting,
            tenant,
            read_only,
        }
    }

    async fn query(&self, sql: &str, tenant: &str) -> Result<Value> {
        let checked = self.check_query(sql).map_err(|r| refused(QUERY, r))?;
        exec::run_query(&self.pool, &self.settings(tenant, true), &checked).await
    }

    async fn write(&self, tool: &str, sql: &str, dry_run: bool, tenant: &str) -> Result<Value> {
        let checked = self.check_write(sql).map_err(|r| refused(tool, r))?;
        let settings = self.settings(tenant, false);
        let affected = exec::run_write(&self.pool, &settings, &checked, dry_run, tool).await?;
        let mut out = json!({
            "dry_run": dry_run,
            "operation": checked.kind.as_str(),
            "table": checked.table,
            "statement": checked.statement,
            "affected_rows": affected,
        });
        if dry_run {
            out["executed_sql"] = json!(checked.sql);
            out["note"] = json!(
                "Nothing was changed. To apply it, call db.write with dry_run: false; a person \
                 confirms the write first."
            );
        }
        Ok(out)
    }
}

#[async_trait]
impl ToolHub for SqlToolHub {
    fn name(&self) -> &str {
        &self.config.hub_name
    }

    async fn list_tools(&self, _page: PageRequest) -> Result<ToolPage> {
        Ok(ToolPage {
            tools: self.specs(),
            next_cursor: None,
        })
    }

    async fn execute(&self, tool_id: &str, arguments: Value, ctx: &ToolContext) -> Result<Value> {
        let tenant = ctx.subject.tenant_id.as_str();
        if tenant.is_empty() {
            return Err(Error::PolicyDenied {
                policy_id: Some(SQL_SAFETY_POLICY.into()),
                reason: "the database tools need a tenant in the run's subject".into(),
            });
        }
        let arguments = if arguments.is_null() {
            json!({})
        } else {
            arguments
        };
        match tool_id {
            DESCRIBE => {
                let a: DescribeArgs = args(tool_id, arguments)?;
                self.describe(a.table.as_deref())
            }
            QUERY => {
                let a: QueryArgs = args(tool_id, arguments)?;
                self.query(&a.sql, tenant).await
            }
            PREVIEW_WRITE => {
                let a: QueryArgs = args(tool_id, arguments)?;
                self.write(tool_id, &a.sql, true, tenant).await
            }
            WRITE => {
                let a: WriteArgs = args(tool_id, arguments)?;
                self.write(tool_id, &a.sql, a.dry_run, tenant).await
            }
            other => Err(Error::not_found("tool", other)),
        }
    }
}
