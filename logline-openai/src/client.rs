//! The HTTP transport: headers, timeouts, status → error mapping and retries.
//!
//! Cancellation: every call here is a plain future (and a stream for SSE). Dropping it — which
//! is how the engine cancels a run's in-flight LLM call — drops the `reqwest` request and
//! closes the connection; nothing keeps running in the background.

use std::future::Future;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use logline_core::retry::{parse_retry_after, parse_should_retry, Verdict};
use logline_core::Result;
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use serde_json::Value;
use tokio::time::Instant;

use crate::body::{read_capped, read_prefix, truncate, MAX_ERROR_BODY, MAX_ERROR_TEXT};
use crate::config::OpenAiConfig;
use crate::error::{config_error, OpenAiError, MAX_CODE_TEXT};

/// A configured `reqwest` client bound to one [`OpenAiConfig`].
#[derive(Debug, Clone)]
pub(crate) struct HttpClient {
    http: reqwest::Client,
    config: Arc<OpenAiConfig>,
}

impl HttpClient {
    pub(crate) fn new(config: Arc<OpenAiConfig>) -> Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .user_agent(concat!("logline-openai/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| config_error(format!("cannot build the HTTP client: {e}")))?;
        Ok(HttpClient { http, config })
    }

    pub(crate) fn config(&self) -> &OpenAiConfig {
        &self.config
    }

    fn request(&self, path: &str, body: Bytes, stream: bool) -> reqwest::RequestBuilder {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(
            ACCEPT,
            HeaderValue::from_static(if stream {
                "text/event-stream"
            } else {
                "application/json"
            }),
        );
        if let Some(key) = &self.config.api_key {
            if let Ok(mut v) = HeaderValue::from_str(&format!("Bearer {}", key.expose())) {
                v.set_sensitive(true);
                headers.insert(AUTHORIZATION, v);
            }
        }
        if let Some(org) = self
            .config
            .organization
            .as_deref()
            .and_then(|o| HeaderValue::from_str(o).ok())
        {
            headers.insert("openai-organization", org);
        }
        if let Some(project) = self
            .config
            .project
            .as_deref()
            .and_then(|p| HeaderValue::from_str(p).ok())
        {
            headers.insert("openai-project", project);
        }
        self.http
            .post(self.config.url(path))
            .headers(headers)
            .body(body)
    }

    /// One attempt up to the response headers; a non-success status becomes an error.
    async fn send(
        &self,
        path: &str,
        body: &Bytes,
        stream: bool,
    ) -> Result<reqwest::Response, OpenAiError> {
        let response = self
            .request(path, body.clone(), stream)
            .send()
            .await
            .map_err(OpenAiError::Transport)?;
        if response.status().is_success() {
            return Ok(response);
        }
        let mut error = error_from_response(response, self.config.retry.max_retry_after).await;
        if let Some(key) = &self.config.api_key {
            error.scrub(key.expose());
        }
        Err(error)
    }

    /// Runs `attempt` under the retry policy and converts the last error.
    async fn with_retries<T, F, Fut>(&self, path: &str, attempt: F) -> Result<T>
    where
        F: FnMut(u32) -> Fut,
        Fut: std::future::Future<Output = Result<T, OpenAiError>>,
    {
        let classify = |e: &OpenAiError| {
            if e.should_retry() {
                Verdict::Retry {
                    after: e.retry_after(),
                }
            } else {
                Verdict::Fail
            }
        };
        tracing::debug!(path, "openai request");
        self.config
            .retry
            .run(self.config.sleep.as_ref(), attempt, classify)
            .await
            .map_err(|x| x.error.into_core(x.attempts))
    }

    /// POSTs `body` and returns the whole successful body (at most `limit` bytes), all
    /// within the call's deadline.
    pub(crate) async fn post_json(&self, path: &str, body: Bytes, limit: usize) -> Result<Bytes> {
        let timeout = self.config.timeout;
        let attempts = self.with_retries(path, |_| {
            let body = &body;
            async move {
                let work = async {
                    let response = self.send(path, body, false).await?;
                    read_capped(response, limit).await
                };
                tokio::time::timeout(timeout, work)
                    .await
                    .map_err(|_| OpenAiError::Timeout(timeout))?
            }
        });
        self.by(self.deadline(), attempts).await
    }

    /// POSTs `body` for a stream and returns the response once its headers arrived, before
    /// `deadline`.
    pub(crate) async fn post_stream(
        &self,
        path: &str,
        body: Bytes,
        deadline: Instant,
    ) -> Result<reqwest::Response> {
        let timeout = self.config.timeout;
        let attempts = self.with_retries(path, |_| {
            let body = &body;
            async move {
                tokio::time::timeout(timeout, self.send(path, body, true))
                    .await
                    .map_err(|_| OpenAiError::Timeout(timeout))?
            }
        });
        self.by(deadline, attempts).await
    }

    /// When a call starting now must be over.
    pub(crate) fn deadline(&self) -> Instant {
        Instant::now() + self.config.deadline
    }

    /// Runs `work`, failing with [`OpenAiError::Deadline`] (and dropping it) at `deadline`.
    async fn by<T>(&self, deadline: Instant, work: impl Future<Output = Result<T>>) -> Result<T> {
        tokio::time::timeout_at(deadline, work)
            .await
            .unwrap_or_else(|_| Err(OpenAiError::Deadline(self.config.deadline).into()))
    }
}

/// Reads a failed response (its first [`MAX_ERROR_BODY`] bytes) into [`OpenAiError::Api`].
async fn error_from_response(
    response: reqwest::Response,
    max_retry_after: std::time::Duration,
) -> OpenAiError {
    let status = response.status();
    let headers = response.headers().clone();
    let text = read_prefix(response, MAX_ERROR_BODY).await;
    api_error(
        status.as_u16(),
        &headers,
        &text,
        SystemTime::now(),
        max_retry_after,
    )
}

/// A header's value as text, when it is valid text.
fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name)?.to_str().ok()
}

/// Builds the error for `status` from the headers and the (maybe non-JSON) body.
pub(crate) fn api_error(
    status: u16,
    headers: &HeaderMap,
    text: &str,
    now: SystemTime,
    max_retry_after: std::time::Duration,
) -> OpenAiError {
    let (message, code, error_type) = parse_error_body(text).unwrap_or_else(|| {
        let trimmed = text.trim();
        let message = if trimmed.is_empty() {
            reqwest::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("error")
                .to_string()
        } else {
            truncate(trimmed, MAX_ERROR_TEXT)
        };
        (message, None, None)
    });
    let request_id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let message = truncate(&message, MAX_ERROR_TEXT);
    let message = match request_id {
        Some(id) => format!("{message} [request {}]", truncate(&id, 200)),
        None => message,
    };
    OpenAiError::Api {
        status,
        code,
        error_type,
        message,
        should_retry: parse_should_retry(header(headers, "x-should-retry")),
        retry_after: parse_retry_after(
            header(headers, "retry-after-ms"),
            header(headers, "retry-after"),
            now,
            max_retry_after,
        ),
    }
}

/// `{"error":{"message","type","code"}}`, plus the shapes compatible servers use
/// (`{"error":"…"}`, `{"detail":"…"}`, `{"message":"…"}`).
fn parse_error_body(text: &str) -> Option<(String, Option<String>, Option<String>)> {
    let v: Value = serde_json::from_str(text).ok()?;
    let as_string = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    };
    if let Some(err) = v.get("error") {
        if let Some(s) = err.as_str() {
            return Some((s.to_string(), None, None));
        }
        let message = err
            .get("message")
            .and_then(as_string)
            .unwrap_or_else(|| truncate(&err.to_string(), MAX_ERROR_TEXT));
        let short = |s: String| truncate(&s, MAX_CODE_TEXT);
        let code = err.get("code").and_then(as_string).map(short);
        let error_type = err.get("type").and_then(as_string).map(short);
        return Some((message, code, error_type));
    }
    let message = v
        .get("detail")
        .or_else(|| v.get("message"))
        .and_then(as_string)?;
    Some((truncate(&message, MAX_ERROR_TEXT), None, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: std::time::Duration = logline_core::retry::DEFAULT_MAX_RETRY_AFTER;

    #[test]
    fn parses_openai_and_compatible_error_bodies() {
        let h = HeaderMap::new();
        let now = SystemTime::now();
        let e = api_error(
            429,
            &h,
            r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#,
            now,
            MAX,
        );
        assert!(!e.should_retry());
        assert!(e.to_string().contains("insufficient_quota"));
        let e = api_error(400, &h, r#"{"detail":"bad model"}"#, now, MAX);
        assert_eq!(e.to_string(), "HTTP 400: bad model");
        let e = api_error(502, &h, "<html>Bad Gateway</html>", now, MAX);
        assert!(e.should_retry());
        assert!(e.to_string().contains("Bad Gateway"));
        let e = api_error(503, &h, "", now, MAX);
        assert_eq!(e.to_string(), "HTTP 503: Service Unavailable");
        let e = api_error(500, &h, r#"{"error":"boom"}"#, now, MAX);
        assert_eq!(e.to_string(), "HTTP 500: boom");
    }

    #[test]
    fn long_remote_messages_are_capped() {
        let h = HeaderMap::new();
        let long = "x".repeat(100_000);
        let e = api_error(500, &h, &long, SystemTime::now(), MAX);
        assert!(e.to_string().len() < MAX_ERROR_TEXT + 100);
        let body = serde_json::json!({"error": {"message": long}}).to_string();
        let e = api_error(400, &h, &body, SystemTime::now(), MAX);
        assert!(e.to_string().len() < MAX_ERROR_TEXT + 100);
    }

    #[test]
    fn hostile_retry_after_values_are_clamped() {
        let now = SystemTime::now();
        for (name, value) in [("retry-after", "1e20"), ("retry-after-ms", "1e300")] {
            let mut h = HeaderMap::new();
            h.insert(name, reqwest::header::HeaderValue::from_static(value));
            match api_error(429, &h, "", now, MAX) {
                OpenAiError::Api { retry_after, .. } => assert_eq!(retry_after, Some(MAX)),
                other => panic!("{other}"),
            }
        }
    }
}
