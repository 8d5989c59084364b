//! The human-readable preview of a tool call a person is asked to confirm: every argument
//! it will be called with, in the schema's order, nothing left out.

use serde_json::Value;

use crate::tool::ToolSpec;

/// Longest value shown whole; a longer one is shown cut, with its full length.
const MAX_VALUE_CHARS: usize = 2000;

/// What the call of `tool` with `arguments` will do, for a person to confirm.
///
/// ```
/// # use logline_core::chat::preview;
/// # use logline_core::tool::ToolSpec;
/// # use serde_json::json;
/// let tool = ToolSpec::new("GMAIL_SEND_EMAIL", "Send an email", json!({"type": "object"}))
///     .in_toolkit("gmail");
/// let text = preview(&tool, &json!({"to": "bob@example.com", "subject": "Hi"}));
/// assert!(text.contains("GMAIL_SEND_EMAIL"));
/// assert!(text.contains("to: bob@example.com"));
/// ```
pub fn preview(tool: &ToolSpec, arguments: &Value) -> String {
    let mut out = format!("{} — {}", tool.id, first_line(&tool.description));
    if let Some(kit) = &tool.toolkit {
        out.push_str(&format!(" (app: {kit})"));
    }
    out.push_str(&format!(", risk {}", tool.risk_level.as_str()));
    match arguments {
        Value::Object(map) if map.is_empty() => out.push_str("\nwith no arguments"),
        Value::Object(map) => {
            for key in ordered_keys(tool, map) {
                out.push_str(&format!("\n  {key}: {}", show(&map[key.as_str()])));
            }
        }
        other => out.push_str(&format!("\nwith {}", show(other))),
    }
    out
}

fn first_line(s: &str) -> &str {
    crate::text::prefix(s.lines().next().unwrap_or_default(), 200)
}

/// The schema's property order first, then the rest sorted.
fn ordered_keys(tool: &ToolSpec, map: &serde_json::Map<String, Value>) -> Vec<String> {
    let mut keys: Vec<String> = Vec::with_capacity(map.len());
    if let Some(props) = tool.input_schema["properties"].as_object() {
        keys.extend(props.keys().filter(|k| map.contains_key(*k)).cloned());
    }
    let mut rest: Vec<String> = map.keys().filter(|k| !keys.contains(k)).cloned().collect();
    rest.sort();
    keys.extend(rest);
    keys
}

fn show(v: &Value) -> String {
    let text = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.chars().count() <= MAX_VALUE_CHARS {
        return text;
    }
    let cut: String = text.chars().take(MAX_VALUE_CHARS).collect();
    format!("{cut}… [{} characters in all]", text.chars().count())
}
