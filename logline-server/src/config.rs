//! [`ServerConfig`]: every setting of the server, read from one TOML file and overridden by
//! `LOGLINE_*` environment variables.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use logline_core::artifact::UploadLimits;
use logline_core::{Error, Result};
use serde::{Deserialize, Serialize};

/// Settings of the HTTP API. Missing fields take their defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address `serve` listens on.
    pub listen: SocketAddr,
    /// Secret that signs access tokens (HS256). Empty: a random secret per process (tokens
    /// do not survive a restart and are not shared between processes).
    pub jwt_secret: String,
    /// Lifetime of an access token, in seconds.
    pub access_ttl_secs: u64,
    /// Lifetime of a refresh token, in seconds.
    pub refresh_ttl_secs: u64,
    /// Whether anyone may register (each registration creates a tenant, its first user
    /// being its admin). When off, only admins add users.
    pub open_registration: bool,
    /// Origins allowed by CORS; empty = CORS off (no CORS headers at all).
    pub cors_origins: Vec<String>,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Requests per minute per client address, user, tenant and API key (each counted on its
    /// own); 0 = no rate limit.
    pub rate_limit_per_minute: u32,
    /// Requests a client may send in a burst before the per-minute rate applies.
    pub rate_limit_burst: u32,
    /// Runs of one tenant pending or running at once; starting another answers 429.
    /// 0 = no cap.
    pub max_concurrent_runs_per_tenant: u32,
    /// Seconds graceful shutdown waits for in-flight requests and streams.
    pub shutdown_grace_secs: u64,
    /// Seconds between SSE keep-alive comments.
    pub sse_keep_alive_secs: u64,
    /// Seconds `POST /agents/{id}/test` waits for the test run.
    pub agent_test_timeout_secs: u64,
    /// Whether the client address is read from `X-Forwarded-For` (only behind a trusted
    /// proxy).
    pub trust_forwarded_for: bool,
    /// Seconds between checks of every enabled alert by `serve`; 0 = only on request.
    pub alert_check_interval_secs: u64,
    /// Whether alert webhooks may use plain `http://` (else `https://` only).
    pub alert_webhooks_allow_http: bool,
    /// Days an audit row is kept before `serve` deletes it; 0 = forever.
    pub audit_retention_days: u32,
    /// Days a finished run (with its steps, events and effects) and a completed job are
    /// kept before the workers delete them; 0 = forever.
    pub run_retention_days: u32,
    /// Largest file `POST /files/upload` accepts, in bytes (larger ones are a 413).
    pub upload_max_bytes: u64,
    /// Content types uploads may have, as sniffed from their bytes (`text/*` allows every
    /// text type); others are a 415.
    pub upload_allowed_types: Vec<String>,
    /// Where artifact bytes are kept: `memory:///` (lost at exit) or `file:///a/folder`
    /// (which must exist). Their metadata is in PostgreSQL when `DATABASE_URL` is set.
    pub artifacts_url: String,
    /// Whether the router serves the web console at `/` (assets under `/console/`).
    pub console: bool,
    /// Address a `worker` process serves `GET /metrics` (Prometheus text, no authentication)
    /// and `GET /healthz` on; empty = off. `serve` exposes metrics at `/api/v1/metrics`.
    pub metrics_addr: String,
    /// Base URL of an OTLP/HTTP collector (e.g. `http://localhost:4318`) that receives the
    /// traces; empty = `OTEL_EXPORTER_OTLP_ENDPOINT`, or off. Needs the `otlp` feature.
    pub otlp_endpoint: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            jwt_secret: String::new(),
            access_ttl_secs: 15 * 60,
            refresh_ttl_secs: 30 * 24 * 3600,
            open_registration: true,
            cors_origins: Vec::new(),
            max_body_bytes: 1024 * 1024,
            rate_limit_per_minute: 600,
            rate_limit_burst: 100,
            max_concurrent_runs_per_tenant: 100,
            shutdown_grace_secs: 30,
            sse_keep_alive_secs: 15,
            agent_test_timeout_secs: 60,
            trust_forwarded_for: false,
            alert_check_interval_secs: 60,
            alert_webhooks_allow_http: false,
            audit_retention_days: 90,
            run_retention_days: 0,
            upload_max_bytes: 25 * 1024 * 1024,
            upload_allowed_types: UploadLimits::default().allowed_types,
            artifacts_url: "memory:///".into(),
            console: true,
            metrics_addr: String::new(),
            otlp_endpoint: String::new(),
        }
    }
}

impl ServerConfig {
    /// Reads a TOML file.
    pub fn from_toml_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::InvalidInput(format!("cannot read config `{}`: {e}", path.display()))
        })?;
        Self::from_toml(&text)
    }

    /// Parses TOML text.
    pub fn from_toml(text: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| Error::InvalidInput(format!("config: {e}")))
    }

    /// Applies `LOGLINE_<FIELD>` environment variables (upper-case field names; lists are
    /// comma-separated) over this config.
    pub fn with_env(self) -> Result<Self> {
        self.with_vars(|name| std::env::var(name).ok())
    }

    /// [`ServerConfig::with_env`] reading variables through `get`.
    pub fn with_vars(self, get: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let mut table = toml::Table::try_from(&self)
            .map_err(|e| Error::Internal(format!("config to TOML: {e}")))?;
        for (key, value) in table.iter_mut() {
            let Some(raw) = get(&format!("LOGLINE_{}", key.to_uppercase())) else {
                continue;
            };
            *value = parse_like(value, &raw).ok_or_else(|| {
                Error::InvalidInput(format!("LOGLINE_{}: bad value", key.to_uppercase()))
            })?;
        }
        table
            .try_into()
            .map_err(|e: toml::de::Error| Error::InvalidInput(format!("config: {e}")))
    }

    /// Access-token lifetime.
    pub fn access_ttl(&self) -> Duration {
        Duration::from_secs(self.access_ttl_secs)
    }

    /// The address of [`ServerConfig::metrics_addr`]; `None` when off.
    pub fn metrics_socket(&self) -> Result<Option<SocketAddr>> {
        let addr = self.metrics_addr.trim();
        if addr.is_empty() {
            return Ok(None);
        }
        addr.parse().map(Some).map_err(|e| {
            Error::InvalidInput(format!("metrics_addr `{addr}` is not an address: {e}"))
        })
    }

    /// The collector traces go to: [`ServerConfig::otlp_endpoint`], else the value of
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` given by `get`; `None` when neither is set.
    pub fn otlp_collector(&self, get: impl Fn(&str) -> Option<String>) -> Option<String> {
        let configured = self.otlp_endpoint.trim();
        if !configured.is_empty() {
            return Some(configured.to_string());
        }
        get("OTEL_EXPORTER_OTLP_ENDPOINT")
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    /// How long audit rows are kept (`None`: forever).
    pub fn audit_retention(&self) -> Option<Duration> {
        days(self.audit_retention_days)
    }

    /// How long finished runs and completed jobs are kept (`None`: forever).
    pub fn run_retention(&self) -> Option<Duration> {
        days(self.run_retention_days)
    }

    /// Refresh-token lifetime.
    pub fn refresh_ttl(&self) -> Duration {
        Duration::from_secs(self.refresh_ttl_secs)
    }

    /// The caps and allowed types of uploads.
    pub fn upload_limits(&self) -> UploadLimits {
        UploadLimits::default()
            .max_bytes(self.upload_max_bytes)
            .allow(self.upload_allowed_types.iter().cloned())
    }
}

/// `raw` parsed as the same TOML type as `like`.
fn parse_like(like: &toml::Value, raw: &str) -> Option<toml::Value> {
    use toml::Value as V;
    Some(match like {
        V::String(_) => V::String(raw.to_string()),
        V::Integer(_) => V::Integer(raw.trim().parse().ok()?),
        V::Boolean(_) => V::Boolean(match raw.trim() {
            "1" | "true" | "yes" | "on" => true,
            "0" | "false" | "no" | "off" => false,
            _ => return None,
        }),
        V::Float(_) => V::Float(raw.trim().parse().ok()?),
        V::Array(_) => V::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| V::String(s.to_string()))
                .collect(),
        ),
        _ => return None,
    })
}

/// `n` days; `None` for 0.
fn days(n: u32) -> Option<Duration> {
    (n > 0).then(|| Duration::from_secs(u64::from(n) * 24 * 3600))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_file_is_the_defaults() {
        let text = include_str!("../logline.example.toml");
        assert_eq!(
            ServerConfig::from_toml(text).unwrap(),
            ServerConfig::default()
        );
    }

    #[test]
    fn environment_variables_override_the_file() {
        let file =
            ServerConfig::from_toml("listen = \"0.0.0.0:9000\"\nrate_limit_burst = 5").unwrap();
        let vars = |name: &str| match name {
            "LOGLINE_RATE_LIMIT_BURST" => Some("7".to_string()),
            "LOGLINE_CORS_ORIGINS" => Some("https://a.example, https://b.example".to_string()),
            "LOGLINE_OPEN_REGISTRATION" => Some("off".to_string()),
            _ => None,
        };
        let c = file.with_vars(vars).unwrap();
        assert_eq!(c.listen.to_string(), "0.0.0.0:9000");
        assert_eq!(c.rate_limit_burst, 7);
        assert_eq!(c.cors_origins, ["https://a.example", "https://b.example"]);
        assert!(!c.open_registration);
    }

    #[test]
    fn audit_rows_are_kept_90_days_and_runs_forever_unless_set() {
        let c = ServerConfig::default();
        assert_eq!(
            c.audit_retention(),
            Some(Duration::from_secs(90 * 24 * 3600))
        );
        assert_eq!(c.run_retention(), None);
        let c = c
            .with_vars(|n| match n {
                "LOGLINE_AUDIT_RETENTION_DAYS" => Some("0".into()),
                "LOGLINE_RUN_RETENTION_DAYS" => Some("7".into()),
                _ => None,
            })
            .unwrap();
        assert_eq!(c.audit_retention(), None);
        assert_eq!(c.run_retention(), Some(Duration::from_secs(7 * 24 * 3600)));
    }

    #[test]
    fn metrics_and_otlp_are_off_unless_set() {
        let c = ServerConfig::default();
        assert_eq!(c.metrics_socket().unwrap(), None);
        assert_eq!(c.otlp_collector(|_| None), None);
        let from_env =
            |n: &str| (n == "OTEL_EXPORTER_OTLP_ENDPOINT").then(|| "http://c:4318".into());
        assert_eq!(c.otlp_collector(from_env).as_deref(), Some("http://c:4318"));
        let c = ServerConfig::default()
            .with_vars(|n| match n {
                "LOGLINE_METRICS_ADDR" => Some("127.0.0.1:9464".into()),
                "LOGLINE_OTLP_ENDPOINT" => Some("http://file:4318".into()),
                _ => None,
            })
            .unwrap();
        assert_eq!(
            c.metrics_socket().unwrap(),
            Some(([127, 0, 0, 1], 9464).into())
        );
        assert_eq!(
            c.otlp_collector(from_env).as_deref(),
            Some("http://file:4318")
        );
        let bad = ServerConfig {
            metrics_addr: "nowhere".into(),
            ..ServerConfig::default()
        };
        assert_eq!(
            bad.metrics_socket().unwrap_err().kind(),
            logline_core::ErrorKind::InvalidInput
        );
    }

    #[test]
    fn bad_values_are_typed_errors() {
        assert!(ServerConfig::from_toml("nope = 1").is_err());
        assert!(ServerConfig::from_toml("listen = \"not an address\"").is_err());
        let bad = ServerConfig::default()
            .with_vars(|n| (n == "LOGLINE_MAX_BODY_BYTES").then(|| "lots".into()));
        assert_eq!(
            bad.unwrap_err().kind(),
            logline_core::ErrorKind::InvalidInput
        );
        let bad =
            ServerConfig::default().with_vars(|n| (n == "LOGLINE_LISTEN").then(|| "x".into()));
        assert!(bad.is_err());
    }
}
