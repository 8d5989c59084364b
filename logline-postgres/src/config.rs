//! Connection settings: [`PgConfig`], a builder with [`PgConfig::from_env`].

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::error::PgError;
use crate::store::group::GroupCommit;

/// Environment variable holding the connection URL.
pub const ENV_DATABASE_URL: &str = "DATABASE_URL";
/// Environment variable naming the schema (default `public`).
pub const ENV_SCHEMA: &str = "LOGLINE_PG_SCHEMA";
/// Environment variable with the pool size (default 16).
pub const ENV_MAX_CONNECTIONS: &str = "LOGLINE_PG_MAX_CONNECTIONS";
/// Environment variable switching group commit: `on` (default) or `off`.
pub const ENV_GROUP_COMMIT: &str = "LOGLINE_PG_GROUP_COMMIT";

/// Longest accepted schema name: notification channels embed it and PostgreSQL caps
/// identifiers at 63 bytes.
pub const MAX_SCHEMA_LEN: usize = 48;

/// How to reach PostgreSQL and where LogLine's tables live.
///
/// `Debug` never prints the password.
#[derive(Clone)]
pub struct PgConfig {
    pub(crate) url: String,
    pub(crate) schema: String,
    pub(crate) max_connections: u32,
    pub(crate) min_connections: u32,
    pub(crate) acquire_timeout: Duration,
    pub(crate) statement_timeout: Option<Duration>,
    pub(crate) application_name: String,
    pub(crate) poll_interval: Duration,
    pub(crate) notify: bool,
    pub(crate) policy_cache_ttl: Duration,
    pub(crate) group_commit: Option<GroupCommit>,
}

impl fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConfig")
            .field("url", &redact_url(&self.url))
            .field("schema", &self.schema)
            .field("max_connections", &self.max_connections)
            .field("min_connections", &self.min_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field("application_name", &self.application_name)
            .field("poll_interval", &self.poll_interval)
            .field("notify", &self.notify)
            .field("policy_cache_ttl", &self.policy_cache_ttl)
            .field("group_commit", &self.group_commit)
            .finish()
    }
}

/// The URL with any password replaced by `***`.
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "***".to_string();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let tail = redact_query_password(tail);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            if userinfo.contains(':') {
                format!("{scheme}://{user}:***@{host}{tail}")
            } else {
                format!("{scheme}://{user}@{host}{tail}")
            }
        }
        None => format!("{scheme}://{authority}{tail}"),
    }
}

fn redact_query_password(tail: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else {
        return tail.to_string();
    };
    let query: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
            _ => kv.to_string(),
        })
        .collect();
    format!("{path}?{}", query.join("&"))
}

impl PgConfig {
    /// Settings for `url` (`postgres://user:pass@host:port/db`) with defaults: schema
    /// `public`, 16 connections, 1 s polling fallback, notifications on, group commit on
    /// with [`GroupCommit::default`] (a lone write still goes at once; turn it off with
    /// [`PgConfig::group_commit`]`(None)`).
    pub fn new(url: impl Into<String>) -> Self {
        PgConfig {
            url: url.into(),
            schema: "public".into(),
            max_connections: 16,
            min_connections: 0,
            acquire_timeout: Duration::from_secs(10),
            statement_timeout: None,
            application_name: "logline".into(),
            poll_interval: Duration::from_secs(1),
            notify: true,
            policy_cache_ttl: Duration::from_secs(1),
            group_commit: Some(GroupCommit::default()),
        }
    }

    /// Reads `DATABASE_URL` (required), `LOGLINE_PG_SCHEMA`, `LOGLINE_PG_MAX_CONNECTIONS` and
    /// `LOGLINE_PG_GROUP_COMMIT` (`on` or `off`).
    pub fn from_env() -> logline_core::Result<Self> {
        let url = std::env::var(ENV_DATABASE_URL).map_err(|_| {
            logline_core::Error::InvalidInput(format!("{ENV_DATABASE_URL} is not set"))
        })?;
        let mut config = PgConfig::new(url);
        if let Ok(schema) = std::env::var(ENV_SCHEMA) {
            config = config.schema(schema);
        }
        if let Ok(n) = std::env::var(ENV_MAX_CONNECTIONS) {
            let n: u32 = n.trim().parse().map_err(|_| {
                logline_core::Error::InvalidInput(format!(
                    "{ENV_MAX_CONNECTIONS} must be a positive integer"
                ))
            })?;
            config = config.max_connections(n);
        }
        if let Some(on) = group_commit_from_env()? {
            config = config.group_commit(on.then(GroupCommit::default));
        }
        Ok(config)
    }

    /// Schema holding LogLine's tables (created by [`crate::PgStore::migrate`]). Lowercase
    /// letters, digits and `_`, starting with a letter or `_`, at most [`MAX_SCHEMA_LEN`].
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// Pool size (default 16). The notification listener and publisher use one extra
    /// connection each, outside the pool.
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// Connections kept open when idle.
    pub fn min_connections(mut self, n: u32) -> Self {
        self.min_connections = n;
        self
    }

    /// How long to wait for a free connection before failing with `Unavailable`.
    pub fn acquire_timeout(mut self, d: Duration) -> Self {
        self.acquire_timeout = d;
        self
    }

    /// Server-side `statement_timeout` for every connection (`None` = server default).
    pub fn statement_timeout(mut self, d: Option<Duration>) -> Self {
        self.statement_timeout = d;
        self
    }

    /// `application_name` shown in `pg_stat_activity`.
    pub fn application_name(mut self, name: impl Into<String>) -> Self {
        self.application_name = name.into();
        self
    }

    /// Upper bound between database polls while waiting for events or work; a lost
    /// notification costs at most this long.
    pub fn poll_interval(mut self, d: Duration) -> Self {
        self.poll_interval = d.max(Duration::from_millis(10));
        self
    }

    /// Whether writers send `NOTIFY` (default on). Off saves a round trip per batch of
    /// commits when nobody streams events or waits for work in another process; waiters
    /// then rely on polling.
    pub fn notify(mut self, on: bool) -> Self {
        self.notify = on;
        self
    }

    /// How long [`logline_core::policy::PolicySource::policies`] may serve a cached list
    /// (writes through the same store invalidate it at once).
    pub fn policy_cache_ttl(mut self, d: Duration) -> Self {
        self.policy_cache_ttl = d;
        self
    }

    /// Group commit of checkpoints and effect-ledger writes across runs (`None` = off: one
    /// transaction per write). Each run's writes stay atomic and are acknowledged only after
    /// the flush; see [`GroupCommit`] for the batch settings.
    pub fn group_commit(mut self, settings: Option<GroupCommit>) -> Self {
        self.group_commit = settings;
        self
    }

    /// The group commit settings (`None` = off).
    pub fn group_commit_of(&self) -> Option<GroupCommit> {
        self.group_commit
    }

    /// The configured schema.
    pub fn schema_name(&self) -> &str {
        &self.schema
    }

    pub(crate) fn validate(&self) -> Result<(), PgError> {
        validate_schema(&self.schema)
    }

    /// Connection options for one connection (search_path set to the schema).
    pub(crate) fn connect_options(&self) -> Result<PgConnectOptions, PgError> {
        self.validate()?;
        let mut opts = PgConnectOptions::from_str(&self.url)
            .map_err(|e| {
                PgError::Config(format!("invalid database URL: {}", scrub(&e, &self.url)))
            })?
            .application_name(&self.application_name);
        let mut settings: Vec<(&str, String)> = vec![("search_path", self.schema.clone())];
        if let Some(t) = self.statement_timeout {
            settings.push(("statement_timeout", t.as_millis().to_string()));
        }
        opts = opts.options(settings);
        Ok(opts)
    }

    /// Opens a pool. Connections are not pinged before use (a broken one fails its query
    /// with a retryable error and is dropped when released).
    pub(crate) async fn connect_pool(&self) -> Result<PgPool, PgError> {
        let opts = self.connect_options()?;
        Ok(PgPoolOptions::new()
            .max_connections(self.max_connections)
            .min_connections(self.min_connections)
            .acquire_timeout(self.acquire_timeout)
            .test_before_acquire(false)
            .connect_with(opts)
            .await?)
    }
}

impl PgConfig {
    /// A pool for group commit's batches, one connection per writer slot. Their statements
    /// keep one generic plan: a batch statement's `unnest` arrays would otherwise be planned
    /// again at every execution.
    pub(crate) fn connect_writer_pool(&self, writers: usize) -> Result<PgPool, PgError> {
        let opts = self
            .connect_options()?
            .options([("plan_cache_mode", "force_generic_plan")]);
        Ok(PgPoolOptions::new()
            .max_connections(u32::try_from(writers).unwrap_or(u32::MAX))
            .min_connections(0)
            .acquire_timeout(self.acquire_timeout)
            .test_before_acquire(false)
            .connect_lazy_with(opts))
    }
}

/// `LOGLINE_PG_GROUP_COMMIT` as a switch, if set.
pub fn group_commit_from_env() -> logline_core::Result<Option<bool>> {
    let Ok(v) = std::env::var(ENV_GROUP_COMMIT) else {
        return Ok(None);
    };
    match v.trim().to_ascii_lowercase().as_str() {
        "on" | "1" | "true" => Ok(Some(true)),
        "off" | "0" | "false" => Ok(Some(false)),
        _ => Err(logline_core::Error::InvalidInput(format!(
            "{ENV_GROUP_COMMIT} must be `on` or `off`"
        ))),
    }
}

/// Error text without the URL (it may hold a password).
fn scrub(e: &dyn std::error::Error, url: &str) -> String {
    let s = e.to_string();
    if url.is_empty() {
        s
    } else {
        s.replace(url, &redact_url(url))
    }
}

pub(crate) fn validate_schema(schema: &str) -> Result<(), PgError> {
    let ok = !schema.is_empty()
        && schema.len() <= MAX_SCHEMA_LEN
        && schema
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && schema
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(PgError::Config(format!(
            "invalid schema name `{schema}`: use [a-z_][a-z0-9_]*, at most {MAX_SCHEMA_LEN} bytes"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_password() {
        let c = PgConfig::new("postgres://app:s3cret@db.example:5432/logline?sslmode=require");
        let s = format!("{c:?}");
        assert!(!s.contains("s3cret"), "{s}");
        assert!(s.contains("postgres://app:***@db.example:5432/logline?sslmode=require"));
        let q = redact_url("postgres://db/x?user=a&password=hunter2");
        assert_eq!(q, "postgres://db/x?user=a&password=***");
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1:5432/postgres"),
            "postgres://postgres@127.0.0.1:5432/postgres"
        );
    }

    #[test]
    fn schema_names_are_checked() {
        assert!(validate_schema("public").is_ok());
        assert!(validate_schema("t_1a").is_ok());
        assert!(validate_schema("").is_err());
        assert!(validate_schema("Bad").is_err());
        assert!(validate_schema("a;drop").is_err());
        assert!(validate_schema("1a").is_err());
        assert!(validate_schema(&"a".repeat(MAX_SCHEMA_LEN + 1)).is_err());
    }
}
