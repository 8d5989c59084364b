//! Reading response bodies within byte caps, and capping remote text kept in errors.

use crate::error::ComposioError;

/// Most bytes of an error body read (the rest is never read).
pub(crate) const MAX_ERROR_BODY: usize = 64 << 10;

/// Most bytes of remote text (a message, a tool's error) kept in an error.
pub(crate) const MAX_ERROR_TEXT: usize = 4 << 10;

/// Most bytes of a short remote field (request id, suggested fix) kept in an error.
pub(crate) const MAX_FIELD_TEXT: usize = 512;

/// The whole body, or [`ComposioError::TooLarge`] as soon as it passes `limit` bytes (a
/// `content-length` above it fails before reading).
pub(crate) async fn read_capped(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, ComposioError> {
    let announced = response.content_length().unwrap_or(0);
    if announced > limit as u64 {
        return Err(ComposioError::TooLarge { limit });
    }
    let mut body = Vec::with_capacity(announced as usize);
    while let Some(chunk) = response.chunk().await.map_err(ComposioError::Transport)? {
        if body.len() + chunk.len() > limit {
            return Err(ComposioError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// At most `limit` bytes of the body as text (invalid UTF-8 replaced); a read error ends it.
pub(crate) async fn read_prefix(mut response: reqwest::Response, limit: usize) -> String {
    let mut body = Vec::new();
    while body.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let take = chunk.len().min(limit - body.len());
                body.extend_from_slice(&chunk[..take]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    String::from_utf8_lossy(&body).into_owned()
}

/// `s` cut to at most `max` bytes on a character boundary, with `…` when cut.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    format!("{}…", logline_core::text::prefix(s, max))
}

/// Remote text fit for an error message: `secret` (the API key, when a server echoes it)
/// replaced, then cut to `max` bytes.
pub(crate) fn remote_text(s: &str, secret: &str, max: usize) -> String {
    if !secret.is_empty() && s.contains(secret) {
        return truncate(&s.replace(secret, logline_core::redact::REDACTED), max);
    }
    truncate(s, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_text_is_scrubbed_and_cut_on_char_boundaries() {
        assert_eq!(
            remote_text("key k-123 bad", "k-123", 100),
            "key [REDACTED] bad"
        );
        let cut = remote_text(&"é".repeat(100), "", 51);
        assert!(cut.ends_with('…') && cut.len() <= 54, "{cut}");
    }
}
