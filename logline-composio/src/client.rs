//! Wire types of the Composio v3 API and the HTTP client with the official retry rules.

use std::time::{Duration, SystemTime};

use logline_core::retry::{parse_retry_after, parse_should_retry, RetryPolicy, Verdict};
use reqwest::header::HeaderValue;
use reqwest::{Method, RequestBuilder, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::body::{
    read_capped, read_prefix, remote_text, MAX_ERROR_BODY, MAX_ERROR_TEXT, MAX_FIELD_TEXT,
};
use crate::config::{ComposioConfig, ExecuteRetry};
use crate::error::ComposioError;

/// Header carrying the engine's idempotency key on executions.
pub(crate) const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

/// The list envelope of tools, toolkits and connected accounts.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ListEnvelope<T> {
    pub items: Vec<T>,
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// `{"slug": …, "name": …}` references inside items.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct WireRef {
    pub slug: String,
}

/// A tool of `GET /tools`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct WireTool {
    pub slug: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub human_description: Option<String>,
    #[serde(default)]
    pub toolkit: WireRef,
    #[serde(default)]
    pub input_parameters: Value,
    #[serde(default)]
    pub output_parameters: Value,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub no_auth: bool,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub is_deprecated: bool,
}

/// `meta` of a toolkit.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct WireToolkitMeta {
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub categories: Vec<WireCategory>,
    #[serde(default)]
    pub tools_count: Option<f64>,
    #[serde(default)]
    pub updated_at: Option<String>,
}

/// A toolkit category.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct WireCategory {
    #[serde(default)]
    pub name: String,
}

/// A toolkit of `GET /toolkits`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct WireToolkit {
    pub slug: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub auth_schemes: Vec<String>,
    #[serde(default)]
    pub no_auth: Option<bool>,
    #[serde(default)]
    pub meta: WireToolkitMeta,
}

/// A connected account of `GET /connected_accounts`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct WireAccount {
    pub id: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub is_disabled: bool,
    #[serde(default)]
    pub toolkit: WireRef,
    /// The Composio user the account belongs to.
    #[serde(default)]
    pub user_id: Option<String>,
}

/// Body of `POST /tools/execute/{slug}`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ExecuteBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connected_account_id: Option<String>,
    pub arguments: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// Answer of an execution.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ExecuteResponse {
    #[serde(default)]
    pub data: Value,
    #[serde(default)]
    pub error: Value,
    pub successful: bool,
    #[serde(default)]
    pub log_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ErrorEnvelope {
    error: ErrorDetail,
}

#[derive(Debug, Deserialize)]
struct ErrorDetail {
    #[serde(default)]
    message: String,
    #[serde(default)]
    request_id: Option<String>,
    #[serde(default)]
    suggested_fix: Option<String>,
    #[serde(default)]
    errors: Vec<String>,
}

/// The HTTP client.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    http: reqwest::Client,
    config: ComposioConfig,
    /// `x-api-key`, marked sensitive (its `Debug` shows `Sensitive`, never the key).
    api_key: HeaderValue,
}

impl Client {
    pub(crate) fn new(config: ComposioConfig) -> Result<Self, ComposioError> {
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .build()
            .map_err(|e| ComposioError::Config(format!("HTTP client: {e}")))?;
        let mut api_key = HeaderValue::from_str(&config.api_key).map_err(|_| {
            ComposioError::Config("the API key has characters a header cannot carry".into())
        })?;
        api_key.set_sensitive(true);
        Ok(Client {
            http,
            config,
            api_key,
        })
    }

    pub(crate) fn config(&self) -> &ComposioConfig {
        &self.config
    }

    /// One page of tools, optionally only of `toolkits`.
    pub(crate) async fn tools_page(
        &self,
        cursor: Option<&str>,
        limit: u32,
        toolkits: &[String],
    ) -> Result<ListEnvelope<WireTool>, ComposioError> {
        let mut q = vec![("limit", limit.to_string())];
        if !toolkits.is_empty() {
            q.push(("toolkit_slug", toolkits.join(",")));
        }
        if let Some(c) = cursor {
            q.push(("cursor", c.to_string()));
        }
        self.get("/tools", &q).await
    }

    /// One tool.
    pub(crate) async fn tool(&self, slug: &str) -> Result<WireTool, ComposioError> {
        self.get(&format!("/tools/{slug}"), &[]).await
    }

    /// One page of toolkits.
    pub(crate) async fn toolkits_page(
        &self,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<ListEnvelope<WireToolkit>, ComposioError> {
        let mut q = vec![("limit", limit.to_string())];
        if let Some(c) = cursor {
            q.push(("cursor", c.to_string()));
        }
        self.get("/toolkits", &q).await
    }

    /// One page of a user's active connected accounts.
    pub(crate) async fn accounts_page(
        &self,
        user_id: &str,
        cursor: Option<&str>,
    ) -> Result<ListEnvelope<WireAccount>, ComposioError> {
        let mut q = vec![
            ("user_ids", user_id.to_string()),
            ("statuses", "ACTIVE".to_string()),
            ("limit", "100".to_string()),
        ];
        if let Some(c) = cursor {
            q.push(("cursor", c.to_string()));
        }
        self.get("/connected_accounts", &q).await
    }

    /// Executes a tool, sending `idempotency_key` as the `Idempotency-Key` header. Sent
    /// again only as [`ComposioConfig::execute_retry`] allows: by default only where the
    /// request provably did not run (connection refused, 429); after a timeout or a server
    /// error the tool may have run, so the failure is returned.
    pub(crate) async fn execute(
        &self,
        slug: &str,
        body: &ExecuteBody,
        idempotency_key: Option<&str>,
    ) -> Result<ExecuteResponse, ComposioError> {
        let path = format!("/tools/execute/{slug}");
        let url = self.config.url(&path);
        let key = idempotency_key
            .map(|k| HeaderValue::from_str(k).map_err(|_| ComposioError::BadIdempotencyKey))
            .transpose()?;
        let (policy, resend) = match self.config.execute_retry {
            ExecuteRetry::Never => (self.config.retry.with_max_retries(0), Resend::IfNotExecuted),
            ExecuteRetry::NotRun => (self.config.retry, Resend::IfNotExecuted),
            ExecuteRetry::Always => (self.config.retry, Resend::Reads),
        };
        self.call(&path, &policy, resend, || {
            let request = self.request(Method::POST, &url).json(body);
            match &key {
                Some(k) => request.header(IDEMPOTENCY_KEY_HEADER, k.clone()),
                None => request,
            }
        })
        .await
    }

    async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, ComposioError> {
        let url = self.config.url(path);
        self.call(path, &self.config.retry, Resend::Reads, || {
            self.request(Method::GET, &url).query(query)
        })
        .await
    }

    /// Sends with retries and decodes the body, all within the configured deadline.
    async fn call<T: DeserializeOwned>(
        &self,
        path: &str,
        policy: &RetryPolicy,
        resend: Resend,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<T, ComposioError> {
        let work = async {
            let resp = self.send(policy, resend, build).await?;
            decode(resp, path, self.config.max_response_bytes).await
        };
        tokio::time::timeout(self.config.deadline, work)
            .await
            .map_err(|_| ComposioError::Deadline(self.config.deadline))?
    }

    fn request(&self, method: Method, url: &str) -> RequestBuilder {
        self.http
            .request(method, url)
            .header("x-api-key", self.api_key.clone())
            .header("accept", "application/json")
    }

    /// Sends under `policy`, retrying what `resend` allows; the server's wait
    /// (`retry-after-ms` / `retry-after`, cut to the policy's maximum) replaces the backoff.
    async fn send(
        &self,
        policy: &RetryPolicy,
        resend: Resend,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Response, ComposioError> {
        let max_wait = policy.max_retry_after;
        let api_key = self.config.api_key.as_str();
        let classify = |e: &ComposioError| {
            if resend.allows(e) {
                Verdict::Retry {
                    after: e.retry_after(),
                }
            } else {
                Verdict::Fail
            }
        };
        policy
            .run(
                self.config.sleeper.as_ref(),
                |_| {
                    let request = build();
                    async move { attempt(request, max_wait, api_key).await }
                },
                classify,
            )
            .await
            .map_err(|exhausted| exhausted.error)
    }
}

/// Which failures a request may be sent again after.
#[derive(Debug, Clone, Copy)]
enum Resend {
    /// Reads, as the official client: 408, 409, 429 and ≥ 500, timeouts and connection
    /// failures; `x-should-retry` decides when present.
    Reads,
    /// Side effects: only where the request provably did not run (429, unless
    /// `x-should-retry: false`; connection refused).
    IfNotExecuted,
}

impl Resend {
    fn allows(self, e: &ComposioError) -> bool {
        match (self, e) {
            (
                Resend::Reads,
                ComposioError::Status {
                    status,
                    should_retry,
                    ..
                },
            ) => should_retry.unwrap_or_else(|| retryable_status(*status)),
            (Resend::Reads, ComposioError::Transport(t)) => t.is_timeout() || t.is_connect(),
            (Resend::IfNotExecuted, e) => e.not_executed() && e.should_retry() != Some(false),
            _ => false,
        }
    }
}

/// One attempt: a success, or the failure with the server's retry headers.
async fn attempt(
    request: RequestBuilder,
    max_wait: Duration,
    api_key: &str,
) -> Result<Response, ComposioError> {
    let resp = request.send().await.map_err(ComposioError::Transport)?;
    if resp.status().is_success() {
        return Ok(resp);
    }
    Err(status_error(resp, max_wait, api_key).await)
}

fn retryable_status(status: u16) -> bool {
    matches!(status, 408 | 409 | 429) || status >= 500
}

fn header<'a>(resp: &'a Response, name: &str) -> Option<&'a str> {
    resp.headers().get(name)?.to_str().ok()
}

/// The error for a failed response, with the server's retry headers, from the first
/// [`MAX_ERROR_BODY`] bytes of its body; remote text is capped and the API key, should the
/// server echo it, replaced.
async fn status_error(resp: Response, max_wait: Duration, api_key: &str) -> ComposioError {
    let status = resp.status().as_u16();
    let retry_after = parse_retry_after(
        header(&resp, "retry-after-ms"),
        header(&resp, "retry-after"),
        SystemTime::now(),
        max_wait,
    );
    let should_retry = parse_should_retry(header(&resp, "x-should-retry"));
    let text = read_prefix(resp, MAX_ERROR_BODY).await;
    let field = |s: &str| remote_text(s, api_key, MAX_FIELD_TEXT);
    let (message, request_id, suggested_fix) = match serde_json::from_str::<ErrorEnvelope>(&text) {
        Ok(env) => {
            let mut message = env.error.message;
            if !env.error.errors.is_empty() {
                message = format!("{message} ({})", env.error.errors.join("; "));
            }
            (
                remote_text(&message, api_key, MAX_ERROR_TEXT),
                env.error.request_id.as_deref().map(field),
                env.error.suggested_fix.as_deref().map(field),
            )
        }
        Err(_) => (
            remote_text(text.trim(), api_key, MAX_ERROR_TEXT),
            None,
            None,
        ),
    };
    ComposioError::Status {
        status,
        message,
        request_id,
        suggested_fix,
        retry_after,
        should_retry,
    }
}

async fn decode<T: DeserializeOwned>(
    resp: Response,
    path: &str,
    limit: usize,
) -> Result<T, ComposioError> {
    let bytes = read_capped(resp, limit).await?;
    serde_json::from_slice(&bytes).map_err(|source| ComposioError::Decode {
        path: path.to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_api_key_header_is_sensitive_and_never_printed() {
        let key = "ck_secret_key_0123456789";
        let client = Client::new(ComposioConfig::builder(key).build().unwrap()).unwrap();
        assert!(client.api_key.is_sensitive());
        let shown = format!("{client:?}");
        assert!(!shown.contains(key), "{shown}");
        let bad = ComposioConfig::builder("line\nbreak").build().unwrap();
        let e = Client::new(bad).unwrap_err();
        assert!(!e.to_string().contains("line"), "{e}");
    }
}
