//! What a host exposes to the database tools: the allowlisted tables and views, how each is
//! scoped to a tenant, and the limits of every call.

use std::time::Duration;

/// Default name of the transaction-local setting that holds the caller's tenant.
pub const DEFAULT_TENANT_SETTING: &str = "logline.tenant_id";

/// How the rows of an allowlisted relation are scoped to the caller's tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantScope {
    /// Only rows whose column equals the caller's tenant are visible; writes set it.
    Column(String),
    /// Reference data every tenant may read (countries, currencies); never writable.
    Shared,
}

/// One table or view the tools may read (and, when [`SqlTable::writable`], write).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlTable {
    pub(crate) name: String,
    pub(crate) schema: Option<String>,
    pub(crate) scope: TenantScope,
    pub(crate) writable: bool,
    pub(crate) hidden: Vec<String>,
    pub(crate) description: Option<String>,
}

impl SqlTable {
    /// A relation whose rows belong to the tenant named in `tenant_column`.
    pub fn tenant_scoped(name: impl Into<String>, tenant_column: impl Into<String>) -> Self {
        Self::with_scope(name.into(), TenantScope::Column(tenant_column.into()))
    }

    /// A relation of reference data that every tenant reads whole.
    pub fn shared(name: impl Into<String>) -> Self {
        Self::with_scope(name.into(), TenantScope::Shared)
    }

    fn with_scope(name: String, scope: TenantScope) -> Self {
        SqlTable {
            name,
            schema: None,
            scope,
            writable: false,
            hidden: Vec::new(),
            description: None,
        }
    }

    /// The schema the relation lives in (default: the first match on the pool's
    /// `search_path`, resolved once when the hub is built).
    pub fn in_schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    /// Lets `db.write` insert into and update this table (tenant-scoped tables only).
    pub fn writable(mut self) -> Self {
        self.writable = true;
        self
    }

    /// Columns the tools never show, read or write (secrets, internal notes).
    pub fn hide<I: IntoIterator<Item = S>, S: Into<String>>(mut self, columns: I) -> Self {
        self.hidden.extend(columns.into_iter().map(Into::into));
        self
    }

    /// What the relation holds, shown by `db.describe` (default: its SQL comment).
    pub fn describe(mut self, text: impl Into<String>) -> Self {
        self.description = Some(text.into());
        self
    }
}

/// Limits and roles of the tools' transactions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlLimits {
    /// `statement_timeout` of every statement the tools run.
    pub statement_timeout: Duration,
    /// Most rows a read returns; more are cut and reported as truncated.
    pub max_rows: usize,
    /// Most bytes of row JSON a read returns; more are cut and reported as truncated.
    pub max_bytes: usize,
    /// Longest SQL text accepted from a model, in bytes.
    pub max_sql_bytes: usize,
}

impl Default for SqlLimits {
    fn default() -> Self {
        SqlLimits {
            statement_timeout: Duration::from_secs(5),
            max_rows: 500,
            max_bytes: 256 * 1024,
            max_sql_bytes: 16 * 1024,
        }
    }
}

/// Everything a [`crate::SqlToolHub`] is built from (set through its builder).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SqlToolsConfig {
    pub(crate) tables: Vec<SqlTable>,
    pub(crate) limits: SqlLimits,
    pub(crate) read_role: Option<String>,
    pub(crate) write_role: Option<String>,
    pub(crate) tenant_setting: String,
    pub(crate) hub_name: String,
}

impl Default for SqlToolsConfig {
    fn default() -> Self {
        SqlToolsConfig {
            tables: Vec::new(),
            limits: SqlLimits::default(),
            read_role: None,
            write_role: None,
            tenant_setting: DEFAULT_TENANT_SETTING.into(),
            hub_name: "sql".into(),
        }
    }
}

/// Whether `name` is a valid custom setting name (`prefix.name`, lowercase ASCII).
pub(crate) fn valid_setting_name(name: &str) -> bool {
    let mut parts = name.split('.');
    let ok = |p: Option<&str>| {
        p.is_some_and(|p| {
            !p.is_empty()
                && p.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
                && p.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
    };
    ok(parts.next()) && ok(parts.next()) && parts.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setting_names_are_two_plain_parts() {
        assert!(valid_setting_name("logline.tenant_id"));
        assert!(valid_setting_name("app_1.t"));
        for bad in ["tenant", "a.b.c", "A.b", "a.'b", "a.", ".b", "a.b;"] {
            assert!(!valid_setting_name(bad), "{bad}");
        }
    }
}
