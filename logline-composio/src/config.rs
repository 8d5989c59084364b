//! Settings of [`crate::ComposioToolHub`], with a builder and `from_env()`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use logline_core::redact::Redactor;
use logline_core::retry::{Backoff, RetryPolicy, Sleep, TokioSleep};
use logline_core::{Error, Result};

use crate::identity::ComposioUserIds;
use crate::risk::RiskRules;

/// Default base URL.
pub const DEFAULT_BASE_URL: &str = "https://backend.composio.dev";
/// Default path prefix (`/api/v3.1` is accepted too).
pub const DEFAULT_API_PREFIX: &str = "/api/v3";
/// Default hub name (matches `ToolSpec::hub` of synced tools).
pub const DEFAULT_HUB_NAME: &str = "composio";
/// Default cap of a response body.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 32 << 20;
/// Default deadline of one call (all its attempts and waits).
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(180);

/// Which failed executions are sent again. An execution that reached Composio may have run
/// even when the answer was a 5xx or never came, and Composio documents no idempotency key,
/// so only failures that prove the tool did not run are retried by default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ExecuteRetry {
    /// Never send an execution twice.
    Never,
    /// Retry only when the request provably did not run: connection failures (nothing was
    /// sent) and 429 (rejected before running), the failures whose core error says
    /// `did_not_execute()`. The default.
    #[default]
    NotRun,
    /// Retry like reads (408, 409, 429, ≥ 500, timeouts): a tool may run twice. Only for
    /// servers known to honour the `Idempotency-Key` header.
    Always,
}

/// Settings. Build with [`ComposioConfig::builder`] or [`ComposioConfig::from_env`].
#[derive(Clone)]
pub struct ComposioConfig {
    /// Project API key, sent as `x-api-key`.
    pub api_key: String,
    /// Base URL without a trailing slash.
    pub base_url: String,
    /// Path prefix, e.g. `/api/v3`.
    pub api_prefix: String,
    /// Hub name.
    pub hub_name: String,
    /// Per-attempt timeout (the whole request, body included).
    pub request_timeout: Duration,
    /// Deadline of a whole call: every attempt, the waits between them and the body.
    pub deadline: Duration,
    /// Cap of a response body; reading stops with an error past it.
    pub max_response_bytes: usize,
    /// Retries of a request: 2 by default (as the official client), 0.5 s doubling up to 8 s
    /// with 25 % jitter, server waits (`retry-after-ms` / `retry-after`) cut to 60 s.
    /// Executions use it only as far as [`ComposioConfig::execute_retry`] allows.
    pub retry: RetryPolicy,
    /// Which failed executions are sent again.
    pub execute_retry: ExecuteRetry,
    /// How waits between attempts are performed (tests record them instead).
    pub sleeper: Arc<dyn Sleep>,
    /// Page size of catalog listings (Composio allows up to 1000).
    pub page_limit: u32,
    /// Toolkits per filtered tool listing during an incremental sync.
    pub toolkits_per_request: usize,
    /// How long a user's connected accounts are cached.
    pub connections_ttl: Duration,
    /// Interval of incremental catalog refreshes.
    pub refresh_interval: Duration,
    /// Interval of full catalog refreshes (catch anything incremental ones missed).
    pub full_refresh_interval: Duration,
    /// Tools written to the store per `put_tools` call.
    pub store_batch: usize,
    /// Tool version sent on execute when the catalog does not know the tool's version.
    pub tool_version: Option<String>,
    /// Risk tagging rules.
    pub risk_rules: RiskRules,
    /// How a run's subject becomes a Composio user (tenant-qualified by default).
    pub user_ids: ComposioUserIds,
}

impl fmt::Debug for ComposioConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ComposioConfig")
            .field("api_key", &"<redacted>")
            .field("base_url", &self.base_url)
            .field("api_prefix", &self.api_prefix)
            .field("hub_name", &self.hub_name)
            .field("request_timeout", &self.request_timeout)
            .field("deadline", &self.deadline)
            .field("max_response_bytes", &self.max_response_bytes)
            .field("retry", &self.retry)
            .field("execute_retry", &self.execute_retry)
            .field("page_limit", &self.page_limit)
            .field("refresh_interval", &self.refresh_interval)
            .field("user_ids", &self.user_ids)
            .finish_non_exhaustive()
    }
}

impl ComposioConfig {
    /// A builder with `api_key` and defaults.
    pub fn builder(api_key: impl Into<String>) -> ComposioConfigBuilder {
        ComposioConfigBuilder {
            config: ComposioConfig {
                api_key: api_key.into(),
                base_url: DEFAULT_BASE_URL.into(),
                api_prefix: DEFAULT_API_PREFIX.into(),
                hub_name: DEFAULT_HUB_NAME.into(),
                request_timeout: Duration::from_secs(60),
                deadline: DEFAULT_DEADLINE,
                max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
                retry: RetryPolicy::default(),
                execute_retry: ExecuteRetry::default(),
                sleeper: Arc::new(TokioSleep),
                page_limit: 1000,
                toolkits_per_request: 25,
                connections_ttl: Duration::from_secs(60),
                refresh_interval: Duration::from_secs(15 * 60),
                full_refresh_interval: Duration::from_secs(24 * 3600),
                store_batch: 500,
                tool_version: None,
                risk_rules: RiskRules::default(),
                user_ids: ComposioUserIds::default(),
            },
        }
    }

    /// From `COMPOSIO_API_KEY` (required), `COMPOSIO_BASE_URL` and `COMPOSIO_API_PREFIX`.
    pub fn from_env() -> Result<Self> {
        let key = std::env::var("COMPOSIO_API_KEY")
            .map_err(|_| Error::InvalidInput("COMPOSIO_API_KEY is not set".into()))?;
        let mut b = Self::builder(key);
        if let Ok(url) = std::env::var("COMPOSIO_BASE_URL") {
            b = b.base_url(url);
        }
        if let Ok(prefix) = std::env::var("COMPOSIO_API_PREFIX") {
            b = b.api_prefix(prefix);
        }
        b.build()
    }

    /// Adds the API key to `redactor` as a literal secret, so that the key is removed
    /// wherever the engine redacts (events, run errors, logs it writes).
    pub fn redact_secrets(&self, redactor: Redactor) -> Redactor {
        redactor.secret(self.api_key.as_str())
    }

    /// `base_url + api_prefix + path`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{}{}", self.base_url, self.api_prefix, path)
    }
}

/// Builder of [`ComposioConfig`].
#[derive(Debug, Clone)]
pub struct ComposioConfigBuilder {
    config: ComposioConfig,
}

impl ComposioConfigBuilder {
    /// Base URL (a fake server in tests).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.config.base_url = url.into().trim_end_matches('/').to_string();
        self
    }

    /// Path prefix (`/api/v3` or `/api/v3.1`).
    pub fn api_prefix(mut self, prefix: impl Into<String>) -> Self {
        let p = prefix.into();
        let p = p.trim_end_matches('/');
        self.config.api_prefix = if p.starts_with('/') || p.is_empty() {
            p.to_string()
        } else {
            format!("/{p}")
        };
        self
    }

    /// Hub name.
    pub fn hub_name(mut self, name: impl Into<String>) -> Self {
        self.config.hub_name = name.into();
        self
    }

    /// Per-attempt timeout, body included (default 60 s).
    pub fn request_timeout(mut self, t: Duration) -> Self {
        self.config.request_timeout = t;
        self
    }

    /// Deadline of a whole call, retries included (default 180 s).
    pub fn deadline(mut self, t: Duration) -> Self {
        self.config.deadline = t;
        self
    }

    /// Cap of a response body (default 32 MiB).
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.config.max_response_bytes = bytes;
        self
    }

    /// Retry policy (replaces the retry settings below).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.config.retry = policy;
        self
    }

    /// Retries after the first attempt.
    pub fn max_retries(mut self, n: u32) -> Self {
        self.config.retry.max_retries = n;
        self
    }

    /// Backoff bounds (the jitter stays).
    pub fn retry_backoff(mut self, base: Duration, max: Duration) -> Self {
        let jitter = self.config.retry.backoff.jitter;
        self.config.retry.backoff = Backoff::new(base, max.max(base)).with_jitter(jitter);
        self
    }

    /// Longest server-requested delay; longer ones are cut to it.
    pub fn retry_after_cap(mut self, cap: Duration) -> Self {
        self.config.retry.max_retry_after = cap;
        self
    }

    /// Which failed executions are sent again (default [`ExecuteRetry::NotRun`]).
    pub fn execute_retry(mut self, rule: ExecuteRetry) -> Self {
        self.config.execute_retry = rule;
        self
    }

    /// How waits between attempts are performed (tests record them instead).
    pub fn sleeper(mut self, sleeper: Arc<dyn Sleep>) -> Self {
        self.config.sleeper = sleeper;
        self
    }

    /// Catalog page size (1..=1000).
    pub fn page_limit(mut self, n: u32) -> Self {
        self.config.page_limit = n;
        self
    }

    /// Toolkits per filtered listing.
    pub fn toolkits_per_request(mut self, n: usize) -> Self {
        self.config.toolkits_per_request = n.max(1);
        self
    }

    /// Connected-account cache lifetime.
    pub fn connections_ttl(mut self, ttl: Duration) -> Self {
        self.config.connections_ttl = ttl;
        self
    }

    /// Incremental and full refresh intervals.
    pub fn refresh_intervals(mut self, incremental: Duration, full: Duration) -> Self {
        self.config.refresh_interval = incremental;
        self.config.full_refresh_interval = full;
        self
    }

    /// Store batch size.
    pub fn store_batch(mut self, n: usize) -> Self {
        self.config.store_batch = n.max(1);
        self
    }

    /// Tool version sent on execute when unknown.
    pub fn tool_version(mut self, v: impl Into<String>) -> Self {
        self.config.tool_version = Some(v.into());
        self
    }

    /// Risk tagging rules.
    pub fn risk_rules(mut self, rules: RiskRules) -> Self {
        self.config.risk_rules = rules;
        self
    }

    /// How a run's subject becomes a Composio user (default
    /// [`ComposioUserIds::TenantQualified`]).
    pub fn user_ids(mut self, mapping: ComposioUserIds) -> Self {
        self.config.user_ids = mapping;
        self
    }

    /// Validates and returns the settings.
    pub fn build(self) -> Result<ComposioConfig> {
        let c = self.config;
        if c.api_key.trim().is_empty() {
            return Err(Error::InvalidInput("composio: the API key is empty".into()));
        }
        if !(c.base_url.starts_with("http://") || c.base_url.starts_with("https://")) {
            return Err(Error::InvalidInput(format!(
                "composio: base URL `{}` is not http(s)",
                c.base_url
            )));
        }
        if c.request_timeout.is_zero() || c.deadline.is_zero() || c.max_response_bytes == 0 {
            return Err(Error::InvalidInput(
                "composio: timeouts and the body cap must be positive".into(),
            ));
        }
        if !(1..=1000).contains(&c.page_limit) {
            return Err(Error::InvalidInput(format!(
                "composio: page limit {} is outside 1..=1000",
                c.page_limit
            )));
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_validates_and_normalises() {
        let c = ComposioConfig::builder("k")
            .base_url("http://127.0.0.1:9/")
            .api_prefix("api/v3.1/")
            .build();
        let c = c.ok();
        assert_eq!(
            c.as_ref().map(|c| c.url("/tools")),
            Some("http://127.0.0.1:9/api/v3.1/tools".to_string())
        );
        assert!(!format!("{c:?}").contains("\"k\""));
        assert!(ComposioConfig::builder(" ").build().is_err());
        assert!(ComposioConfig::builder("k")
            .base_url("ftp://x")
            .build()
            .is_err());
        assert!(ComposioConfig::builder("k")
            .page_limit(5000)
            .build()
            .is_err());
    }
}
