//! The crate's private error enum and its conversion into [`logline_core::Error`].

use std::time::Duration;

use logline_core::redact::REDACTED;
use logline_core::retry::RetryHint;
use logline_core::{Error, ErrorKind};

use crate::body::{truncate, MAX_ERROR_TEXT};

/// Most bytes of a remote error code or type kept.
pub(crate) const MAX_CODE_TEXT: usize = 200;

/// Backend name carried by every error this crate returns.
pub(crate) const BACKEND: &str = "openai";

/// What went wrong talking to an OpenAI(-compatible) server. Never holds the API key.
#[derive(Debug, thiserror::Error)]
pub(crate) enum OpenAiError {
    /// The server answered with a non-success status.
    #[error("HTTP {status}{}: {message}", code_suffix(.code.as_deref(), .error_type.as_deref()))]
    Api {
        status: u16,
        /// `error.code` of the body (`rate_limit_exceeded`, `insufficient_quota`, ...).
        code: Option<String>,
        /// `error.type` of the body (`invalid_request_error`, `tokens`, ...).
        error_type: Option<String>,
        message: String,
        /// `x-should-retry` when the server sent it.
        should_retry: Option<bool>,
        /// `retry-after-ms` / `retry-after` when the server sent one.
        retry_after: Option<Duration>,
    },
    /// Connecting, sending or reading failed.
    #[error("transport: {0}")]
    Transport(#[source] reqwest::Error),
    /// No complete answer within the configured timeout.
    #[error("no response within {0:?}")]
    Timeout(Duration),
    /// A stream went silent for longer than the timeout.
    #[error("stream idle for more than {0:?}")]
    StreamIdle(Duration),
    /// The whole call (attempts, waits, body, stream) took longer than its deadline.
    #[error("call not finished within its deadline of {0:?}")]
    Deadline(Duration),
    /// A body, an SSE line or event, or the streamed output passed its size cap.
    #[error("{what} is larger than the limit of {limit} bytes")]
    TooLarge { what: &'static str, limit: usize },
    /// The body is not the documented shape.
    #[error("unexpected response body: {0}")]
    Decode(#[source] serde_json::Error),
    /// The SSE stream broke or ended early.
    #[error("stream: {0}")]
    Stream(String),
    /// `response.failed`, a `status:"failed"` body or a mid-stream `error` event.
    #[error("response failed{}: {message}", code_suffix(.code.as_deref(), None))]
    Failed {
        code: Option<String>,
        message: String,
    },
    /// The response was cancelled server-side.
    #[error("response cancelled by the server")]
    ServerCancelled,
}

fn code_suffix(code: Option<&str>, error_type: Option<&str>) -> String {
    match (code, error_type) {
        (Some(c), _) => format!(" ({c})"),
        (None, Some(t)) => format!(" ({t})"),
        (None, None) => String::new(),
    }
}

/// True when the error body says the account has no quota left (never retried).
pub(crate) fn is_insufficient_quota(code: Option<&str>, error_type: Option<&str>) -> bool {
    code == Some("insufficient_quota") || error_type == Some("insufficient_quota")
}

impl OpenAiError {
    /// A failed response or a mid-stream error, with the remote text capped.
    pub(crate) fn failed(code: Option<String>, message: &str) -> Self {
        OpenAiError::Failed {
            code: code.map(|c| truncate(&c, MAX_CODE_TEXT)),
            message: truncate(message, MAX_ERROR_TEXT),
        }
    }

    /// Replaces every occurrence of `secret` in remote text (a server that echoes the key).
    pub(crate) fn scrub(&mut self, secret: &str) {
        if secret.is_empty() {
            return;
        }
        let text = match self {
            OpenAiError::Api { message, .. } | OpenAiError::Failed { message, .. } => message,
            OpenAiError::Stream(text) => text,
            _ => return,
        };
        if text.contains(secret) {
            *text = text.replace(secret, REDACTED);
        }
    }

    /// Whether the HTTP layer retries this failure (OpenAI SDK rules).
    pub(crate) fn should_retry(&self) -> bool {
        match self {
            OpenAiError::Api {
                status,
                code,
                error_type,
                should_retry,
                ..
            } => {
                if is_insufficient_quota(code.as_deref(), error_type.as_deref()) {
                    return false;
                }
                if let Some(explicit) = should_retry {
                    return *explicit;
                }
                matches!(status, 408 | 409 | 429) || *status >= 500
            }
            OpenAiError::Transport(e) => !e.is_builder() && !e.is_redirect(),
            OpenAiError::Timeout(_) => true,
            _ => false,
        }
    }

    /// The server's requested wait, if any.
    pub(crate) fn retry_after(&self) -> Option<Duration> {
        match self {
            OpenAiError::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    fn kind_and_retryable(&self) -> (ErrorKind, bool) {
        match self {
            OpenAiError::Api {
                status,
                code,
                error_type,
                ..
            } => {
                let retryable = self.should_retry();
                if is_insufficient_quota(code.as_deref(), error_type.as_deref()) {
                    return (ErrorKind::RateLimited, false);
                }
                let kind = match status {
                    400 | 413 | 422 => ErrorKind::InvalidInput,
                    401 | 403 => ErrorKind::Unauthorized,
                    404 => ErrorKind::NotFound,
                    408 => ErrorKind::Timeout,
                    409 => ErrorKind::Conflict,
                    429 => ErrorKind::RateLimited,
                    s if *s >= 500 => ErrorKind::Unavailable,
                    _ => ErrorKind::InvalidInput,
                };
                (kind, retryable)
            }
            OpenAiError::Transport(e) if e.is_timeout() => (ErrorKind::Timeout, true),
            OpenAiError::Transport(e) => (ErrorKind::Unavailable, !e.is_builder()),
            OpenAiError::Timeout(_) | OpenAiError::StreamIdle(_) | OpenAiError::Deadline(_) => {
                (ErrorKind::Timeout, true)
            }
            OpenAiError::TooLarge { .. } => (ErrorKind::Unavailable, false),
            OpenAiError::Decode(_) => (ErrorKind::Unavailable, false),
            OpenAiError::Stream(_) => (ErrorKind::Unavailable, true),
            OpenAiError::Failed { code, .. } => match code.as_deref() {
                Some("rate_limit_exceeded") => (ErrorKind::RateLimited, true),
                Some("insufficient_quota") => (ErrorKind::RateLimited, false),
                Some("invalid_prompt") | Some("context_length_exceeded") => {
                    (ErrorKind::InvalidInput, false)
                }
                _ => (ErrorKind::Unavailable, true),
            },
            OpenAiError::ServerCancelled => (ErrorKind::Cancelled, false),
        }
    }

    /// Whether the server provably did not process the request: it was refused as rate
    /// limited, or never reached the server.
    fn not_executed(&self) -> bool {
        match self {
            OpenAiError::Api { status, .. } => *status == 429,
            OpenAiError::Transport(e) => e.is_connect(),
            _ => false,
        }
    }

    /// Converts into the core error, noting how many HTTP attempts were made.
    pub(crate) fn into_core(self, attempts: u32) -> Error {
        let (kind, retryable) = self.kind_and_retryable();
        let hint = RetryHint::after(self.retry_after())
            .not_executed(self.not_executed())
            .attempts(attempts);
        let mut message = self.to_string();
        if attempts > 1 {
            message.push_str(&format!(" (after {attempts} attempts)"));
        }
        Error::Backend {
            kind,
            backend: BACKEND.into(),
            message,
            retryable,
            hint,
            source: Some(Box::new(self)),
        }
    }
}

impl From<OpenAiError> for Error {
    fn from(e: OpenAiError) -> Self {
        e.into_core(1)
    }
}

/// A configuration problem (bad base URL, missing key, ...).
pub(crate) fn config_error(message: impl Into<String>) -> Error {
    Error::InvalidInput(format!("openai config: {}", message.into()))
}
