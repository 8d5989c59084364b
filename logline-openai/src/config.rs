//! Configuration: a builder, `from_env()`, and the redacting [`ApiKey`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use logline_core::llm::PriceTable;
use logline_core::redact::Redactor;
use logline_core::Result;

use crate::error::config_error;
use logline_core::retry::{RetryPolicy, Sleep, TokioSleep};

/// The official API base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

/// The embedding model used when none is configured.
pub const DEFAULT_EMBEDDING_MODEL: &str = "text-embedding-3-small";

/// Most inputs the embeddings endpoint accepts in one call.
pub const MAX_EMBEDDING_BATCH: usize = 2048;

/// Default cap of a JSON answer's body and of a stream's assembled text and arguments.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 32 << 20;

/// Default cap of one SSE event's data and of one SSE line.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 8 << 20;

/// Default deadline of one whole call.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(15 * 60);

/// An API key. Its `Debug` and `Display` never show the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> Self {
        ApiKey(key.into())
    }

    /// The secret itself, for the `Authorization` header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Which endpoint the provider speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ApiMode {
    /// `POST /responses` (OpenAI).
    #[default]
    Responses,
    /// `POST /chat/completions` (OpenAI-compatible servers: vLLM, llama.cpp, Ollama, ...).
    ChatCompletions,
}

impl ApiMode {
    /// Parses `responses` or `chat` / `chat_completions` (case-insensitive).
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "responses" => Some(ApiMode::Responses),
            "chat" | "chat_completions" | "chatcompletions" => Some(ApiMode::ChatCompletions),
            _ => None,
        }
    }
}

/// Settings shared by [`crate::OpenAiProvider`] and [`crate::OpenAiEmbedder`].
#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    pub(crate) name: String,
    pub(crate) api_key: Option<ApiKey>,
    pub(crate) base_url: String,
    pub(crate) organization: Option<String>,
    pub(crate) project: Option<String>,
    pub(crate) mode: ApiMode,
    pub(crate) default_model: Option<String>,
    pub(crate) timeout: Duration,
    pub(crate) deadline: Duration,
    pub(crate) stream_idle_timeout: Option<Duration>,
    pub(crate) max_response_bytes: usize,
    pub(crate) max_event_bytes: usize,
    pub(crate) max_line_bytes: usize,
    pub(crate) connect_timeout: Duration,
    pub(crate) retry: RetryPolicy,
    pub(crate) sleep: Arc<dyn Sleep>,
    pub(crate) store: bool,
    pub(crate) forward_metadata: bool,
    pub(crate) chat_stream_usage: bool,
    pub(crate) chat_max_completion_tokens: bool,
    pub(crate) embedding_model: String,
    pub(crate) embedding_dimensions: Option<u32>,
    pub(crate) embedding_batch_size: usize,
    pub(crate) prices: PriceTable,
}

impl Default for OpenAiConfig {
    fn default() -> Self {
        OpenAiConfig {
            name: "openai".into(),
            api_key: None,
            base_url: DEFAULT_BASE_URL.into(),
            organization: None,
            project: None,
            mode: ApiMode::Responses,
            default_model: None,
            timeout: Duration::from_secs(600),
            deadline: DEFAULT_DEADLINE,
            stream_idle_timeout: None,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            max_line_bytes: DEFAULT_MAX_EVENT_BYTES,
            connect_timeout: Duration::from_secs(10),
            retry: RetryPolicy::default(),
            sleep: Arc::new(TokioSleep),
            store: false,
            forward_metadata: false,
            chat_stream_usage: true,
            chat_max_completion_tokens: false,
            embedding_model: DEFAULT_EMBEDDING_MODEL.into(),
            embedding_dimensions: None,
            embedding_batch_size: MAX_EMBEDDING_BATCH,
            prices: crate::pricing::openai_prices(),
        }
    }
}

impl OpenAiConfig {
    /// A builder with the defaults (official base URL, Responses mode, no key).
    pub fn builder() -> OpenAiConfigBuilder {
        OpenAiConfigBuilder {
            config: OpenAiConfig::default(),
        }
    }

    /// Reads the environment (see [`OpenAiConfigBuilder::from_env`]) and builds.
    pub fn from_env() -> Result<Self> {
        OpenAiConfigBuilder::from_env().build()
    }

    /// Provider name reported to the engine (default `openai`).
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Base URL without a trailing slash, e.g. `https://api.openai.com/v1`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }
    /// Endpoint family.
    pub fn mode(&self) -> ApiMode {
        self.mode
    }
    /// Whether a key is configured (the key itself is never exposed here).
    pub fn has_api_key(&self) -> bool {
        self.api_key.is_some()
    }
    /// `OpenAI-Organization` header value.
    pub fn organization(&self) -> Option<&str> {
        self.organization.as_deref()
    }
    /// `OpenAI-Project` header value.
    pub fn project(&self) -> Option<&str> {
        self.project.as_deref()
    }
    /// Model used when a request names none.
    pub fn default_model(&self) -> Option<&str> {
        self.default_model.as_deref()
    }
    /// Per-attempt deadline: a whole non-streamed request with its body; for a stream, the
    /// wait for the response headers.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
    /// Deadline of a whole call: every attempt, the waits between them, the body and, for a
    /// stream, every event up to the last.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }
    /// Longest wait for the next SSE event of a stream (default: [`Self::timeout`]).
    pub fn stream_idle_timeout(&self) -> Duration {
        self.stream_idle_timeout.unwrap_or(self.timeout)
    }
    /// Cap of a JSON answer's body, and of the text and arguments assembled from a stream.
    pub fn max_response_bytes(&self) -> usize {
        self.max_response_bytes
    }
    /// Cap of one SSE event's data.
    pub fn max_event_bytes(&self) -> usize {
        self.max_event_bytes
    }
    /// Cap of one SSE line.
    pub fn max_line_bytes(&self) -> usize {
        self.max_line_bytes
    }
    /// Adds the configured API key to `redactor` as a literal secret, so that the key is
    /// removed wherever the engine redacts (events, run errors, logs it writes).
    pub fn redact_secrets(&self, redactor: Redactor) -> Redactor {
        match &self.api_key {
            Some(key) => redactor.secret(key.expose()),
            None => redactor,
        }
    }
    /// Retry policy.
    pub fn retry(&self) -> &RetryPolicy {
        &self.retry
    }
    /// Embedding model.
    pub fn embedding_model(&self) -> &str {
        &self.embedding_model
    }
    /// Inputs per embeddings call.
    pub fn embedding_batch_size(&self) -> usize {
        self.embedding_batch_size
    }
    /// Per-model prices.
    pub fn prices(&self) -> &PriceTable {
        &self.prices
    }
    /// Full URL of an endpoint path such as `/responses`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }
}

/// Builds an [`OpenAiConfig`].
#[derive(Debug, Clone)]
pub struct OpenAiConfigBuilder {
    config: OpenAiConfig,
}

impl OpenAiConfigBuilder {
    /// Starts from the environment: `OPENAI_API_KEY`, `OPENAI_BASE_URL`, `OPENAI_ORG_ID`
    /// (or `OPENAI_ORGANIZATION`), `OPENAI_PROJECT_ID` (or `OPENAI_PROJECT`), `OPENAI_MODEL`
    /// (default model) and `LOGLINE_OPENAI_API` (`responses` or `chat`). Empty values count
    /// as unset.
    pub fn from_env() -> Self {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// Like [`Self::from_env`] but reads variables through `lookup` (tests, config files).
    pub fn from_vars(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let mut b = OpenAiConfig::builder();
        if let Some(k) = get("OPENAI_API_KEY") {
            b = b.api_key(k.trim());
        }
        if let Some(u) = get("OPENAI_BASE_URL") {
            b = b.base_url(u);
        }
        if let Some(o) = get("OPENAI_ORG_ID").or_else(|| get("OPENAI_ORGANIZATION")) {
            b = b.organization(o);
        }
        if let Some(p) = get("OPENAI_PROJECT_ID").or_else(|| get("OPENAI_PROJECT")) {
            b = b.project(p);
        }
        if let Some(m) = get("OPENAI_MODEL") {
            b = b.default_model(m);
        }
        if let Some(mode) = get("LOGLINE_OPENAI_API").and_then(|m| ApiMode::parse(&m)) {
            b = b.mode(mode);
        }
        b
    }

    /// Provider name reported to the engine.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.config.name = name.into();
        self
    }
    /// API key (`Authorization: Bearer`).
    pub fn api_key(mut self, key: impl Into<String>) -> Self {
        self.config.api_key = Some(ApiKey::new(key));
        self
    }
    /// Base URL including the version segment, e.g. `http://127.0.0.1:8000/v1`.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.config.base_url = url.into().trim().trim_end_matches('/').to_string();
        self
    }
    /// `OpenAI-Organization` header.
    pub fn organization(mut self, org: impl Into<String>) -> Self {
        self.config.organization = Some(org.into());
        self
    }
    /// `OpenAI-Project` header.
    pub fn project(mut self, project: impl Into<String>) -> Self {
        self.config.project = Some(project.into());
        self
    }
    /// Responses (default) or Chat Completions.
    pub fn mode(mut self, mode: ApiMode) -> Self {
        self.config.mode = mode;
        self
    }
    /// Shorthand for `mode(ApiMode::ChatCompletions)`.
    pub fn chat_completions(self) -> Self {
        self.mode(ApiMode::ChatCompletions)
    }
    /// Model used when a request's model is empty.
    pub fn default_model(mut self, model: impl Into<String>) -> Self {
        self.config.default_model = Some(model.into());
        self
    }
    /// Per-attempt deadline (default 600 s): a whole non-streamed request with its body;
    /// streams use it until the headers arrive and, unless
    /// [`Self::stream_idle_timeout`] is set, as the longest wait for the next event.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.config.timeout = timeout;
        self
    }
    /// Deadline of a whole call, retries and the full stream included (default 15 min).
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.config.deadline = deadline;
        self
    }
    /// Longest wait for the next SSE event (default: the per-attempt timeout). SSE comments
    /// and bytes of an unfinished event do not reset it.
    pub fn stream_idle_timeout(mut self, idle: Duration) -> Self {
        self.config.stream_idle_timeout = Some(idle);
        self
    }
    /// Cap of a JSON answer's body and of a stream's assembled text and arguments
    /// (default 32 MiB). Past it the call fails instead of buffering on.
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.config.max_response_bytes = bytes;
        self
    }
    /// Cap of one SSE event's data (default 8 MiB).
    pub fn max_event_bytes(mut self, bytes: usize) -> Self {
        self.config.max_event_bytes = bytes;
        self
    }
    /// Cap of one SSE line (default 8 MiB).
    pub fn max_line_bytes(mut self, bytes: usize) -> Self {
        self.config.max_line_bytes = bytes;
        self
    }
    /// TCP/TLS connect deadline (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.config.connect_timeout = timeout;
        self
    }
    /// Retry policy (default: the OpenAI SDK's).
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.config.retry = policy;
        self
    }
    /// Shorthand to change only the number of retries.
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.config.retry.max_retries = retries;
        self
    }
    /// How waits between attempts are performed (tests record them instead).
    pub fn sleeper(mut self, sleep: Arc<dyn Sleep>) -> Self {
        self.config.sleep = sleep;
        self
    }
    /// Responses `store` flag (default `false`: the full history is sent on every call).
    pub fn store(mut self, store: bool) -> Self {
        self.config.store = store;
        self
    }
    /// Send `LlmRequest::metadata` as Responses `metadata` (default `false`).
    pub fn forward_metadata(mut self, yes: bool) -> Self {
        self.config.forward_metadata = yes;
        self
    }
    /// Chat mode: ask for a usage chunk when streaming (`stream_options.include_usage`,
    /// default `true`). Turn off for servers that reject `stream_options`.
    pub fn chat_stream_usage(mut self, yes: bool) -> Self {
        self.config.chat_stream_usage = yes;
        self
    }
    /// Chat mode: send the cap as `max_completion_tokens` (OpenAI reasoning models) instead
    /// of `max_tokens` (what most compatible servers read). Default `false`.
    pub fn chat_max_completion_tokens(mut self, yes: bool) -> Self {
        self.config.chat_max_completion_tokens = yes;
        self
    }
    /// Embedding model (default `text-embedding-3-small`).
    pub fn embedding_model(mut self, model: impl Into<String>) -> Self {
        self.config.embedding_model = model.into();
        self
    }
    /// Requested embedding size (`dimensions`), for models that support shortening.
    pub fn embedding_dimensions(mut self, dims: u32) -> Self {
        self.config.embedding_dimensions = Some(dims);
        self
    }
    /// Inputs per embeddings call, clamped to 1..=2048.
    pub fn embedding_batch_size(mut self, n: usize) -> Self {
        self.config.embedding_batch_size = n.clamp(1, MAX_EMBEDDING_BATCH);
        self
    }
    /// Per-model prices (default [`crate::pricing::openai_prices`]).
    pub fn prices(mut self, prices: PriceTable) -> Self {
        self.config.prices = prices;
        self
    }

    /// Validates and returns the configuration. The official endpoint needs a key;
    /// other base URLs (local compatible servers) may run without one.
    pub fn build(self) -> Result<OpenAiConfig> {
        let c = self.config;
        if !(c.base_url.starts_with("http://") || c.base_url.starts_with("https://")) {
            return Err(config_error(format!(
                "base URL must start with http:// or https://, got `{}`",
                c.base_url
            )));
        }
        if reqwest::Url::parse(&c.base_url).is_err() {
            return Err(config_error(format!("invalid base URL `{}`", c.base_url)));
        }
        if c.api_key.is_none() && c.base_url.contains("api.openai.com") {
            return Err(config_error(
                "OPENAI_API_KEY is not set (required for api.openai.com)",
            ));
        }
        if c.timeout.is_zero() || c.deadline.is_zero() {
            return Err(config_error("timeout and deadline must be positive"));
        }
        if c.stream_idle_timeout.is_some_and(|t| t.is_zero()) {
            return Err(config_error("stream idle timeout must be positive"));
        }
        if c.max_response_bytes == 0 || c.max_event_bytes == 0 || c.max_line_bytes == 0 {
            return Err(config_error("size limits must be positive"));
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn reads_environment_variables() {
        let c = OpenAiConfigBuilder::from_vars(vars(&[
            ("OPENAI_API_KEY", "sk-secret-123"),
            ("OPENAI_BASE_URL", "http://127.0.0.1:9/v1/"),
            ("OPENAI_ORG_ID", "org-1"),
            ("OPENAI_PROJECT_ID", "proj-1"),
            ("OPENAI_MODEL", "gpt-5.4-mini"),
            ("LOGLINE_OPENAI_API", "chat"),
        ]))
        .build()
        .unwrap();
        assert_eq!(c.base_url(), "http://127.0.0.1:9/v1");
        assert_eq!(c.organization(), Some("org-1"));
        assert_eq!(c.project(), Some("proj-1"));
        assert_eq!(c.default_model(), Some("gpt-5.4-mini"));
        assert_eq!(c.mode(), ApiMode::ChatCompletions);
        assert!(c.has_api_key());
        assert_eq!(c.url("/responses"), "http://127.0.0.1:9/v1/responses");
    }

    #[test]
    fn official_endpoint_needs_a_key() {
        let e = OpenAiConfigBuilder::from_vars(vars(&[("OPENAI_API_KEY", " ")]))
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("OPENAI_API_KEY"), "{e}");
        // A local compatible server does not.
        let c =
            OpenAiConfigBuilder::from_vars(vars(&[("OPENAI_BASE_URL", "http://localhost:1/v1")]))
                .build()
                .unwrap();
        assert!(!c.has_api_key());
        assert_eq!(c.mode(), ApiMode::Responses);
    }

    #[test]
    fn rejects_bad_urls() {
        assert!(OpenAiConfig::builder().base_url("ftp://x").build().is_err());
        assert!(OpenAiConfig::builder().base_url("http://").build().is_err());
    }

    #[test]
    fn debug_never_shows_the_key() {
        let c = OpenAiConfig::builder()
            .api_key("sk-very-secret-value")
            .build()
            .unwrap();
        let dbg = format!(
            "{c:?} {:?} {}",
            c.api_key,
            ApiKey::new("sk-very-secret-value")
        );
        assert!(!dbg.contains("sk-very-secret-value"), "{dbg}");
        assert!(dbg.contains("redacted"));
    }

    #[test]
    fn bounds_have_defaults_and_must_be_positive() {
        let c = OpenAiConfig::builder().api_key("k").build().unwrap();
        assert_eq!(c.deadline(), DEFAULT_DEADLINE);
        assert_eq!(c.stream_idle_timeout(), c.timeout());
        assert_eq!(c.max_response_bytes(), 32 << 20);
        assert_eq!(
            (c.max_event_bytes(), c.max_line_bytes()),
            (8 << 20, 8 << 20)
        );
        let c = OpenAiConfig::builder()
            .api_key("k")
            .stream_idle_timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        assert_eq!(c.stream_idle_timeout(), Duration::from_secs(5));
        let b = || OpenAiConfig::builder().api_key("k");
        assert!(b().deadline(Duration::ZERO).build().is_err());
        assert!(b().stream_idle_timeout(Duration::ZERO).build().is_err());
        assert!(b().max_response_bytes(0).build().is_err());
        assert!(b().max_line_bytes(0).build().is_err());
    }

    #[test]
    fn batch_size_is_clamped() {
        let c = OpenAiConfig::builder()
            .api_key("k")
            .embedding_batch_size(10_000)
            .build()
            .unwrap();
        assert_eq!(c.embedding_batch_size(), 2048);
        assert_eq!(
            ApiMode::parse("Chat-Completions"),
            Some(ApiMode::ChatCompletions)
        );
        assert_eq!(ApiMode::parse("nope"), None);
    }
}
