//! How to reach one MCP server, and the limits of its calls.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use logline_composio::RiskRules;
use logline_core::{Error, Result};

/// Default per-call deadline.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Default cap on one call's result (the JSON of the MCP result).
pub const DEFAULT_MAX_RESULT_BYTES: usize = 1024 * 1024;
/// Default name of the hub in the catalog ([`logline_core::tool::ToolSpec::hub`]).
pub const DEFAULT_HUB_NAME: &str = "mcp";

/// A secret header value: sent as is, shown as `[redacted]` in `Debug` output and never
/// logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for the wire only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// How the server is reached.
#[derive(Debug, Clone, PartialEq)]
pub enum Transport {
    /// A child process speaking JSON-RPC on stdin/stdout; its stderr goes to `tracing`.
    Stdio {
        /// Program.
        command: String,
        /// Arguments.
        args: Vec<String>,
        /// Extra environment variables (values are secrets: never logged).
        env: BTreeMap<String, Secret>,
        /// Working directory.
        cwd: Option<PathBuf>,
    },
    /// Streamable HTTP at `url`.
    Http {
        /// Endpoint, e.g. `https://tools.example.com/mcp`.
        url: String,
        /// Bearer token (sent as `Authorization: Bearer <token>`).
        bearer: Option<Secret>,
        /// Other headers (values are secrets: never logged).
        headers: BTreeMap<String, Secret>,
    },
}

/// Restart policy of a server whose connection ended: exponential backoff between
/// attempts, reset once a connection stayed up for `stable_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// First wait.
    pub initial: Duration,
    /// Longest wait.
    pub max: Duration,
    /// A connection up this long resets the backoff.
    pub stable_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(30),
            stable_after: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// The wait before attempt `failures` (0: none).
    pub fn delay(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(16));
        self.initial.saturating_mul(factor).min(self.max)
    }
}

/// One MCP server of an [`crate::McpToolHub`]: its tools form the toolkit named `name`.
#[derive(Debug, Clone)]
pub struct McpServerConfig {
    /// Toolkit name: lowercase letters, digits, `_` and `-`. Tool ids are `<name>.<tool>`.
    pub name: String,
    /// How to reach it.
    pub transport: Transport,
    /// Deadline of one call (the engine's tool timeout applies too).
    pub call_timeout: Duration,
    /// Deadline of connecting and of one `tools/list` page.
    pub connect_timeout: Duration,
    /// Cap on one call's result.
    pub max_result_bytes: usize,
    /// Restarts.
    pub backoff: Backoff,
    /// Risk rules applied to tool names and annotations.
    pub risk_rules: RiskRules,
    /// Whether calls carry the caller's subject (tenant and user) and the engine's
    /// idempotency key in `_meta` (`io.logline/subject`, `io.logline/idempotency_key`), for
    /// servers that act per user or deduplicate. Off by default: a third-party server learns
    /// nothing about who calls.
    pub forward_subject: bool,
}

impl McpServerConfig {
    fn new(name: impl Into<String>, transport: Transport) -> Self {
        McpServerConfig {
            name: name.into(),
            transport,
            call_timeout: DEFAULT_CALL_TIMEOUT,
            connect_timeout: Duration::from_secs(30),
            max_result_bytes: DEFAULT_MAX_RESULT_BYTES,
            backoff: Backoff::default(),
            risk_rules: RiskRules::default(),
            forward_subject: false,
        }
    }

    /// A server started as `command args...`.
    pub fn stdio<I, S>(name: impl Into<String>, command: impl Into<String>, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::new(
            name,
            Transport::Stdio {
                command: command.into(),
                args: args.into_iter().map(Into::into).collect(),
                env: BTreeMap::new(),
                cwd: None,
            },
        )
    }

    /// A server at a streamable HTTP `url`.
    pub fn http(name: impl Into<String>, url: impl Into<String>) -> Self {
        Self::new(
            name,
            Transport::Http {
                url: url.into(),
                bearer: None,
                headers: BTreeMap::new(),
            },
        )
    }

    /// Sets an environment variable of a stdio server, or a header of an HTTP server.
    pub fn with_secret(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        match &mut self.transport {
            Transport::Stdio { env, .. } => env.insert(key.into(), Secret::new(value)),
            Transport::Http { headers, .. } => headers.insert(key.into(), Secret::new(value)),
        };
        self
    }

    /// Sets the bearer token of an HTTP server (ignored for stdio).
    pub fn with_bearer(mut self, token: impl Into<String>) -> Self {
        if let Transport::Http { bearer, .. } = &mut self.transport {
            *bearer = Some(Secret::new(token));
        }
        self
    }

    /// Sets the working directory of a stdio server.
    pub fn with_cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        if let Transport::Stdio { cwd, .. } = &mut self.transport {
            *cwd = Some(dir.into());
        }
        self
    }

    /// Sets the per-call deadline.
    pub fn with_call_timeout(mut self, t: Duration) -> Self {
        self.call_timeout = t;
        self
    }

    /// Sets the result cap.
    pub fn with_max_result_bytes(mut self, n: usize) -> Self {
        self.max_result_bytes = n;
        self
    }

    /// Sets the restart policy.
    pub fn with_backoff(mut self, b: Backoff) -> Self {
        self.backoff = b;
        self
    }

    /// Sets the risk rules.
    pub fn with_risk_rules(mut self, r: RiskRules) -> Self {
        self.risk_rules = r;
        self
    }

    /// Sends the caller's subject and idempotency key with each call (see
    /// [`McpServerConfig::forward_subject`]).
    pub fn forwarding_subject(mut self) -> Self {
        self.forward_subject = true;
        self
    }

    /// Every secret of the configuration (for redaction of remote text).
    pub(crate) fn secrets(&self) -> Vec<&str> {
        match &self.transport {
            Transport::Stdio { env, .. } => env.values().map(Secret::expose).collect(),
            Transport::Http {
                bearer, headers, ..
            } => bearer
                .iter()
                .chain(headers.values())
                .map(Secret::expose)
                .collect(),
        }
    }

    /// Checks the name.
    pub(crate) fn validate(&self) -> Result<()> {
        let ok = !self.name.is_empty()
            && self.name.len() <= 48
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !ok {
            return Err(Error::InvalidInput(format!(
                "mcp: server name `{}` must be 1-48 of a-z, 0-9, `_`, `-`",
                self.name
            )));
        }
        if self.max_result_bytes == 0 {
            return Err(Error::InvalidInput("mcp: max_result_bytes is 0".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn secrets_never_show_in_debug_output() {
        let c = McpServerConfig::http("crm", "http://127.0.0.1:1/mcp")
            .with_bearer("tok-123")
            .with_secret("x-api-key", "key-456");
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("tok-123") && !shown.contains("key-456"),
            "{shown}"
        );
        assert_eq!(c.secrets(), vec!["tok-123", "key-456"]);
    }

    #[test]
    fn names_are_checked() {
        assert!(McpServerConfig::stdio("fs", "x", ["a"]).validate().is_ok());
        for bad in ["", "Has.Dot", "a.b", "über"] {
            assert!(McpServerConfig::stdio(bad, "x", ["a"]).validate().is_err());
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_max() {
        let b = Backoff::default();
        assert_eq!(b.delay(0), Duration::ZERO);
        assert_eq!(b.delay(1), Duration::from_millis(200));
        assert_eq!(b.delay(3), Duration::from_millis(800));
        assert_eq!(b.delay(40), b.max);
    }
}
