//! Why a statement from a model was refused, worded so the model can fix its SQL.

use logline_core::Error;

/// Policy id carried by every refusal (the `policy_id` of [`Error::PolicyDenied`]).
pub const SQL_SAFETY_POLICY: &str = "sql_safety";

/// A statement the database tools will not run, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// The text is not SQL the PostgreSQL grammar accepts.
    #[error("the SQL does not parse: {0}")]
    Parse(String),
    /// The text is longer than the configured limit.
    #[error("the SQL is {len} bytes long; at most {max} are accepted")]
    TooLong {
        /// Length of the text.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not exactly one statement.
    #[error("send exactly one statement (got {0})")]
    StatementCount(usize),
    /// A statement of a kind the tool does not run.
    #[error("{tool} runs only {allowed}; this is {found}")]
    StatementKind {
        /// The tool.
        tool: &'static str,
        /// What it runs.
        allowed: &'static str,
        /// What it got.
        found: String,
    },
    /// A clause the tools never run (locking, `INTO`, data-modifying CTEs, ...).
    #[error("{0} is not allowed")]
    Clause(String),
    /// A table or view outside the allowlist (or schema-qualified outside it).
    #[error("relation `{0}` is not available; call db.describe for the tables you may use")]
    Relation(String),
    /// A function outside the safe allowlist.
    #[error("function `{0}` is not allowed")]
    Function(String),
    /// A cast to a type outside the safe allowlist.
    #[error("type `{0}` is not allowed")]
    Type(String),
    /// A column the tool may not read or write.
    #[error("column `{0}` is not available")]
    Column(String),
    /// The tenant column is set by the tool from the caller's identity.
    #[error("column `{0}` is set by the tool from the caller's tenant; leave it out")]
    TenantColumn(String),
    /// A table `db.write` may not change.
    #[error("table `{0}` is not writable")]
    NotWritable(String),
    /// Anything else, said plainly.
    #[error("{0}")]
    Other(String),
}

impl Refusal {
    /// Stable short code of the refusal.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Parse(_) => "parse",
            Refusal::TooLong { .. } => "too_long",
            Refusal::StatementCount(_) => "statement_count",
            Refusal::StatementKind { .. } => "statement_kind",
            Refusal::Clause(_) => "clause",
            Refusal::Relation(_) => "relation",
            Refusal::Function(_) => "function",
            Refusal::Type(_) => "type",
            Refusal::Column(_) => "column",
            Refusal::TenantColumn(_) => "tenant_column",
            Refusal::NotWritable(_) => "not_writable",
            Refusal::Other(_) => "other",
        }
    }

    /// The refusal as the error a model sees: `policy_denied` from [`SQL_SAFETY_POLICY`],
    /// with the code and the reason.
    pub fn into_error(self, tool: &str) -> Error {
        Error::PolicyDenied {
            policy_id: Some(SQL_SAFETY_POLICY.into()),
            reason: format!("{tool} refused [{}]: {self}", self.code()),
        }
    }
}

/// Result of the checks.
pub type Checked<T> = std::result::Result<T, Refusal>;
