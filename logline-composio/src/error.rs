//! The adapter's private error and its mapping onto core errors.

use std::time::Duration;

use logline_core::retry::RetryHint;
use logline_core::{Error, ErrorKind};

const BACKEND: &str = "composio";

/// What went wrong talking to Composio.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum ComposioError {
    /// A non-success status with Composio's error body (or the raw body).
    #[error("HTTP {status}: {message}{}{}", fix_suffix(.suggested_fix), request_suffix(.request_id))]
    Status {
        status: u16,
        message: String,
        request_id: Option<String>,
        suggested_fix: Option<String>,
        /// `retry-after-ms` / `retry-after`, cut to the configured maximum.
        retry_after: Option<Duration>,
        /// `x-should-retry`, when present.
        should_retry: Option<bool>,
    },
    /// The request never got an answer.
    #[error("request failed: {0}")]
    Transport(#[source] reqwest::Error),
    /// The answer does not have the documented shape.
    #[error("unexpected response from {path}: {source}")]
    Decode {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    /// Bad settings.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The body passed the configured size cap; reading stopped there.
    #[error("response body is larger than the limit of {limit} bytes")]
    TooLarge { limit: usize },
    /// The whole call (attempts, waits, body) took longer than its deadline.
    #[error("call not finished within its deadline of {0:?}")]
    Deadline(Duration),
    /// The engine's idempotency key cannot be sent as a header value.
    #[error("the idempotency key is not a valid HTTP header value")]
    BadIdempotencyKey,
}

fn fix_suffix(fix: &Option<String>) -> String {
    match fix {
        Some(f) if !f.is_empty() => format!(" (suggested fix: {f})"),
        _ => String::new(),
    }
}

fn request_suffix(id: &Option<String>) -> String {
    id.as_ref()
        .map(|id| format!(" [request {id}]"))
        .unwrap_or_default()
}

/// The operation an error happened in, for messages that say what to do.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Op<'a> {
    /// Catalog, toolkits, accounts.
    Read,
    /// Executing a tool.
    Execute(&'a str),
}

impl ComposioError {
    /// The HTTP status, if the server answered.
    pub(crate) fn status(&self) -> Option<u16> {
        match self {
            ComposioError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The server's requested wait, if any.
    pub(crate) fn retry_after(&self) -> Option<Duration> {
        match self {
            ComposioError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// `x-should-retry`, when the server sent it.
    pub(crate) fn should_retry(&self) -> Option<bool> {
        match self {
            ComposioError::Status { should_retry, .. } => *should_retry,
            _ => None,
        }
    }

    /// Whether the request provably did not run: refused as rate limited (429), or never
    /// sent (the connection failed).
    pub(crate) fn not_executed(&self) -> bool {
        match self {
            ComposioError::Status { status, .. } => *status == 429,
            ComposioError::Transport(e) => e.is_connect(),
            _ => false,
        }
    }

    /// The core error for this failure during `op`.
    pub(crate) fn into_core(self, op: Op<'_>) -> Error {
        let hint = RetryHint::after(self.retry_after()).not_executed(self.not_executed());
        let (status, message) = match &self {
            ComposioError::Status {
                status, message, ..
            } => (*status, message.clone()),
            ComposioError::Transport(e) if e.is_timeout() => {
                return Error::Timeout(format!("composio: {e}"));
            }
            ComposioError::Transport(_) => {
                let msg = self.to_string();
                return Error::backend(BACKEND, ErrorKind::Unavailable, msg, Some(Box::new(self)))
                    .with_retry_hint(hint);
            }
            ComposioError::Decode { .. } => {
                let msg = self.to_string();
                return Error::backend(BACKEND, ErrorKind::Internal, msg, Some(Box::new(self)));
            }
            ComposioError::Config(m) => return Error::InvalidInput(format!("composio: {m}")),
            ComposioError::BadIdempotencyKey => {
                return Error::InvalidInput(format!("composio: {self}"))
            }
            ComposioError::Deadline(_) => return Error::Timeout(format!("composio: {self}")),
            ComposioError::TooLarge { .. } => {
                return Error::Backend {
                    kind: ErrorKind::Unavailable,
                    backend: BACKEND.into(),
                    message: self.to_string(),
                    retryable: false,
                    hint: RetryHint::default(),
                    source: Some(Box::new(self)),
                }
            }
        };
        let tool = match op {
            Op::Execute(slug) => Some(slug),
            Op::Read => None,
        };
        let (kind, text, retryable) = match (status, tool) {
            (400, Some(t)) => {
                return Error::InvalidInput(format!(
                    "composio rejected the call of `{t}`: {message}"
                ))
            }
            (400, None) => return Error::InvalidInput(format!("composio: {message}")),
            (401 | 403, _) => (
                ErrorKind::Unauthorized,
                format!("API key rejected ({status}): {message}"),
                false,
            ),
            (404, Some(t)) => (
                ErrorKind::NotFound,
                format!("tool `{t}` or its connected account was not found: {message}"),
                false,
            ),
            (410, Some(t)) => (
                ErrorKind::NotFound,
                format!("tool `{t}` is deprecated and no longer available (410 Gone): {message}"),
                false,
            ),
            (422, Some(t)) => (
                ErrorKind::Unauthorized,
                format!(
                    "the connected account for `{t}` is not usable (422); the user must \
                     reconnect the toolkit: {message}"
                ),
                false,
            ),
            (404 | 410, None) => (
                ErrorKind::NotFound,
                format!("not found ({status}): {message}"),
                false,
            ),
            (422, None) => return Error::InvalidInput(format!("composio (422): {message}")),
            (408, _) => (
                ErrorKind::Timeout,
                format!("request timeout: {message}"),
                true,
            ),
            (409, _) => (ErrorKind::Conflict, format!("conflict: {message}"), true),
            (429, _) => (
                ErrorKind::RateLimited,
                format!("rate limited: {message}"),
                true,
            ),
            (501, _) => (
                ErrorKind::Unavailable,
                format!("not implemented: {message}"),
                false,
            ),
            (s, _) if s >= 500 => (
                ErrorKind::Unavailable,
                format!("server error {s}: {message}"),
                true,
            ),
            (s, _) => (
                ErrorKind::Internal,
                format!("unexpected status {s}: {message}"),
                false,
            ),
        };
        Error::Backend {
            kind,
            backend: BACKEND.into(),
            message: text,
            retryable,
            hint,
            source: Some(Box::new(self)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn status(s: u16) -> ComposioError {
        ComposioError::Status {
            status: s,
            message: "remote says".into(),
            request_id: None,
            suggested_fix: None,
            retry_after: (s == 429).then(|| Duration::from_secs(3)),
            should_retry: None,
        }
    }

    #[test]
    fn statuses_map_to_kinds() {
        let ex = Op::Execute("GMAIL_SEND_EMAIL");
        assert_eq!(status(404).into_core(ex).kind(), ErrorKind::NotFound);
        let gone = status(410).into_core(ex);
        assert_eq!(gone.kind(), ErrorKind::NotFound);
        assert!(gone.to_string().contains("deprecated"));
        let bad_account = status(422).into_core(ex);
        assert_eq!(bad_account.kind(), ErrorKind::Unauthorized);
        assert!(bad_account.to_string().contains("reconnect"));
        assert!(!bad_account.is_retryable());
        assert_eq!(status(400).into_core(ex).kind(), ErrorKind::InvalidInput);
        assert_eq!(
            status(401).into_core(Op::Read).kind(),
            ErrorKind::Unauthorized
        );
        let limited = status(429).into_core(Op::Read);
        assert_eq!(limited.kind(), ErrorKind::RateLimited);
        assert!(limited.is_retryable());
        assert!(limited.did_not_execute());
        assert_eq!(limited.retry_after(), Some(Duration::from_secs(3)));
        let server = status(503).into_core(ex);
        assert!(server.is_retryable() && !server.did_not_execute());
        assert!(status(503).into_core(Op::Read).is_retryable());
        assert!(!status(501).into_core(Op::Read).is_retryable());
        assert!(status(409).into_core(Op::Read).is_retryable());
        assert!(status(503)
            .into_core(Op::Read)
            .to_string()
            .contains("remote says"));
    }
}
