//! Failures of MCP peers as LogLine errors, with secrets and long remote text cut out.

use logline_core::retry::RetryHint;
use logline_core::{Error, ErrorKind};
use rmcp::service::ServiceError;

/// Longest remote text kept in an error message.
pub(crate) const MAX_REMOTE_TEXT: usize = 4 * 1024;

/// Backend name of errors from MCP peers.
pub(crate) const BACKEND: &str = "mcp";

/// `text` with every secret replaced and cut to `max` bytes.
pub(crate) fn redact(text: &str, secrets: &[&str], max: usize) -> String {
    let mut out = text.to_string();
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(s, "[redacted]");
    }
    if out.len() > max {
        let cut = logline_core::text::prefix(&out, max).len();
        out.truncate(cut);
        out.push('…');
    }
    out
}

/// A backend error of server `server`.
pub(crate) fn backend(server: &str, kind: ErrorKind, message: impl Into<String>) -> Error {
    Error::backend(
        BACKEND,
        kind,
        format!("server `{server}`: {}", message.into()),
        None,
    )
}

/// The server could not be reached before anything was sent: sending again is safe.
pub(crate) fn not_sent(server: &str, message: impl Into<String>) -> Error {
    match backend(server, ErrorKind::Unavailable, message) {
        Error::Backend {
            kind,
            backend,
            message,
            retryable,
            source,
            ..
        } => Error::Backend {
            kind,
            backend,
            message,
            retryable,
            hint: RetryHint::default().not_executed(true),
            source,
        },
        other => other,
    }
}

/// What a failed request to server `server` means. A closed transport after the request
/// was sent is `Unavailable` and retryable: the call may have run, so the engine re-sends it
/// only to idempotent tools.
pub(crate) fn service_error(server: &str, e: ServiceError, secrets: &[&str]) -> Error {
    let text = |s: String| redact(&s, secrets, MAX_REMOTE_TEXT);
    match e {
        ServiceError::McpError(d) => {
            let kind = match d.code.0 {
                -32602 => ErrorKind::InvalidInput,
                -32601 => ErrorKind::NotFound,
                _ => ErrorKind::Internal,
            };
            let mut err = backend(server, kind, text(d.message.to_string()));
            if let Error::Backend { retryable, .. } = &mut err {
                *retryable = false;
            }
            err
        }
        ServiceError::TransportClosed | ServiceError::TransportSend(_) => backend(
            server,
            ErrorKind::Unavailable,
            "the connection ended before the result arrived",
        ),
        ServiceError::Timeout { timeout } => {
            Error::Timeout(format!("mcp server `{server}` after {timeout:?}"))
        }
        ServiceError::Cancelled { reason } => Error::Cancelled(format!(
            "mcp server `{server}`: {}",
            text(reason.unwrap_or_default())
        )),
        other => backend(server, ErrorKind::Internal, text(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn secrets_are_cut_out_and_text_capped() {
        let s = redact("token tok-123 leaked é", &["tok-123"], 1000);
        assert_eq!(s, "token [redacted] leaked é");
        let long = "é".repeat(100);
        let s = redact(&long, &[], 9);
        assert!(s.len() <= 9 + '…'.len_utf8(), "{s}");
    }

    #[test]
    fn a_closed_transport_may_have_run_the_call() {
        let e = service_error("fs", ServiceError::TransportClosed, &[]);
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(e.is_retryable() && !e.did_not_execute());
        assert!(not_sent("fs", "down").did_not_execute());
    }
}
