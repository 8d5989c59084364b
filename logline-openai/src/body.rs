//! Reading response bodies within byte caps, and capping remote text kept in errors.

use bytes::{Bytes, BytesMut};

use crate::error::OpenAiError;

/// Most bytes of an error body read (the rest is never read).
pub(crate) const MAX_ERROR_BODY: usize = 64 << 10;

/// Most bytes of remote text (error messages, bodies) kept in an error.
pub(crate) const MAX_ERROR_TEXT: usize = 4 << 10;

/// The whole body, or [`OpenAiError::TooLarge`] as soon as it passes `limit` bytes (a
/// `content-length` above it fails before reading).
pub(crate) async fn read_capped(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Bytes, OpenAiError> {
    let too_large = OpenAiError::TooLarge {
        what: "the response body",
        limit,
    };
    let announced = response.content_length().unwrap_or(0);
    if announced > limit as u64 {
        return Err(too_large);
    }
    let mut body = BytesMut::with_capacity(announced as usize);
    while let Some(chunk) = response.chunk().await.map_err(OpenAiError::Transport)? {
        if body.len() + chunk.len() > limit {
            return Err(too_large);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncates_on_char_boundaries() {
        let s = "é".repeat(400);
        let t = truncate(&s, 501);
        assert!(t.ends_with('…'));
        assert!(t.len() <= 504);
        assert_eq!(truncate("short", 10), "short");
    }
}
