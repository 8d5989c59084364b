//! An MCP call result as the tool's output: `structuredContent` when the server sent one,
//! else the text blocks joined; images, audio and binary resources become references (type,
//! MIME type, size, URI), never inline data.

use logline_core::{Error, Result};
use rmcp::model::CallToolResult;
use serde_json::{json, Map, Value};

use crate::error::{redact, MAX_REMOTE_TEXT};

/// Size of base64 `data` once decoded.
fn decoded_len(data: &str) -> usize {
    let pad = data.bytes().rev().take_while(|b| *b == b'=').count();
    (data.len() / 4 * 3).saturating_sub(pad)
}

/// One non-text block as a reference; `None` for text blocks.
fn reference(block: &Value) -> Option<Value> {
    let kind = block
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let str_of = |v: &Value, k: &str| v.get(k).cloned().unwrap_or(Value::Null);
    match kind {
        "text" => None,
        "image" | "audio" => Some(json!({
            "type": kind,
            "mime_type": str_of(block, "mimeType"),
            "bytes": block.get("data").and_then(Value::as_str).map(decoded_len),
        })),
        "resource" => {
            let r = block.get("resource").cloned().unwrap_or(Value::Null);
            let mut out = json!({
                "type": "resource",
                "uri": str_of(&r, "uri"),
                "mime_type": str_of(&r, "mimeType"),
            });
            if let Some(t) = r.get("text") {
                out["text"] = t.clone();
            } else if let Some(b) = r.get("blob").and_then(Value::as_str) {
                out["bytes"] = decoded_len(b).into();
            }
            Some(out)
        }
        "resource_link" => Some(json!({
            "type": "resource_link",
            "uri": str_of(block, "uri"),
            "name": str_of(block, "name"),
            "mime_type": str_of(block, "mimeType"),
        })),
        other => Some(json!({"type": other})),
    }
}

/// The text blocks of `content`, joined by newlines.
fn joined_text(content: &[Value]) -> String {
    content
        .iter()
        .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
        .filter_map(|b| b.get("text").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The output of `tool_id`'s `result`, or its error: a result over `max_bytes` (its JSON)
/// is refused, `isError` becomes [`Error::ToolFailed`] with the server's text (secrets cut
/// out).
pub(crate) fn to_output(
    tool_id: &str,
    result: &CallToolResult,
    max_bytes: usize,
    secrets: &[&str],
) -> Result<Value> {
    let wire = serde_json::to_string(result)
        .map_err(|e| Error::Internal(format!("mcp: result of `{tool_id}`: {e}")))?;
    if wire.len() > max_bytes {
        return Err(Error::ToolFailed {
            tool_id: tool_id.to_string(),
            message: format!(
                "the result is {} bytes, over the cap of {max_bytes} bytes",
                wire.len()
            ),
            retryable: false,
        });
    }
    let wire: Value = serde_json::from_str(&wire)
        .map_err(|e| Error::Internal(format!("mcp: result of `{tool_id}`: {e}")))?;
    let content: Vec<Value> = wire
        .get("content")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let text = joined_text(&content);
    if result.is_error == Some(true) {
        let message = if text.trim().is_empty() {
            "the server reported an error without a message".to_string()
        } else {
            redact(&text, secrets, MAX_REMOTE_TEXT)
        };
        return Err(Error::ToolFailed {
            tool_id: tool_id.to_string(),
            message,
            retryable: false,
        });
    }
    if let Some(s) = &result.structured_content {
        return Ok(s.clone());
    }
    let refs: Vec<Value> = content.iter().filter_map(reference).collect();
    let mut out = Map::new();
    if !text.is_empty() || refs.is_empty() {
        out.insert("text".into(), Value::String(text));
    }
    if !refs.is_empty() {
        out.insert("references".into(), Value::Array(refs));
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn result(v: Value) -> CallToolResult {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn text_structured_and_references() {
        let r = result(json!({"content": [{"type": "text", "text": "a"},
            {"type": "image", "data": "aGVsbG8=", "mimeType": "image/png"},
            {"type": "text", "text": "b"}]}));
        let out = to_output("s.t", &r, 10_000, &[]).unwrap();
        assert_eq!(out["text"], "a\nb");
        assert_eq!(out["references"][0]["bytes"], 5);
        assert_eq!(out["references"][0]["mime_type"], "image/png");

        let r = result(json!({"content": [{"type": "text", "text": "{}"}],
            "structuredContent": {"temp": 21}}));
        assert_eq!(
            to_output("s.t", &r, 10_000, &[]).unwrap(),
            json!({"temp": 21})
        );
    }

    #[test]
    fn errors_carry_the_server_text_without_secrets() {
        let r = result(
            json!({"content": [{"type": "text", "text": "bad key sk-9999"}],
            "isError": true}),
        );
        match to_output("s.t", &r, 10_000, &["sk-9999"]).unwrap_err() {
            Error::ToolFailed { message, .. } => assert_eq!(message, "bad key [redacted]"),
            e => panic!("{e}"),
        }
    }

    #[test]
    fn oversized_results_are_refused() {
        let r = result(json!({"content": [{"type": "text", "text": "x".repeat(5000)}]}));
        let e = to_output("s.t", &r, 1000, &[]).unwrap_err();
        assert_eq!(e.kind(), logline_core::ErrorKind::ToolFailed);
        assert!(e.to_string().contains("over the cap"), "{e}");
    }
}
