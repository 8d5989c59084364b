//! LLM function definitions for tools: names that fit `^[a-zA-Z0-9_-]{1,64}$`, with a map back
//! to the tool id.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::llm::ToolDefinition;
use crate::tool::ToolSpec;

/// Longest function name providers accept.
pub const MAX_FUNCTION_NAME: usize = 64;

/// Longest description put in a definition (longer ones are cut at a word boundary).
pub const MAX_DESCRIPTION: usize = 1024;

/// The function name of `tool_id`: the id itself when it already fits the pattern; otherwise
/// runs of invalid characters become one `_`, and an 8-hex digest of the id is appended when
/// that is still too long (or empty). [`ToolNameMap`] keeps names unique within a request.
pub fn function_name(tool_id: &str) -> String {
    let valid = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if !tool_id.is_empty() && tool_id.len() <= MAX_FUNCTION_NAME && tool_id.chars().all(valid) {
        return tool_id.to_string();
    }
    let mut base = String::with_capacity(tool_id.len());
    for c in tool_id.chars() {
        let c = if valid(c) { c } else { '_' };
        if !(c == '_' && base.ends_with('_')) {
            base.push(c);
        }
    }
    let base = base.trim_matches('_');
    if !base.is_empty() && base.len() <= MAX_FUNCTION_NAME {
        return base.to_string();
    }
    let digest = hex::encode(&Sha256::digest(tool_id.as_bytes())[..4]);
    let keep = MAX_FUNCTION_NAME - digest.len() - 1;
    let cut: String = base.chars().take(keep).collect();
    if cut.is_empty() {
        format!("t_{digest}")
    } else {
        format!("{cut}_{digest}")
    }
}

/// Function name → tool id for the tools offered in one request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolNameMap {
    names: HashMap<String, String>,
}

impl ToolNameMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `tool_id` and returns its function name, unique within this map.
    pub fn insert(&mut self, tool_id: &str) -> String {
        let first = function_name(tool_id);
        let mut name = first.clone();
        let mut n = 1;
        while let Some(existing) = self.names.get(&name) {
            if existing == tool_id {
                return name;
            }
            n += 1;
            let suffix = format!("_{n}");
            let base: String = first
                .chars()
                .take(MAX_FUNCTION_NAME - suffix.len())
                .collect();
            name = format!("{base}{suffix}");
        }
        self.names.insert(name.clone(), tool_id.to_string());
        name
    }

    /// The tool id behind a function name the model called.
    pub fn tool_id(&self, function_name: &str) -> Option<&str> {
        self.names.get(function_name).map(String::as_str)
    }

    /// Number of names.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// The definition a model sees for `tool`, named `name`. The parameters are the tool's input
/// schema, made an object schema when it is not one.
pub fn tool_definition(tool: &ToolSpec, name: String) -> ToolDefinition {
    let mut description = if tool.description.trim().is_empty() {
        tool.name.clone()
    } else {
        tool.description.trim().to_string()
    };
    if description.len() > MAX_DESCRIPTION {
        let mut cut = MAX_DESCRIPTION;
        while !description.is_char_boundary(cut) {
            cut -= 1;
        }
        let at = description[..cut].rfind(char::is_whitespace).unwrap_or(cut);
        description.truncate(at);
        description.push('…');
    }
    ToolDefinition {
        name,
        description,
        parameters: object_schema(&tool.input_schema),
        strict: false,
    }
}

fn object_schema(schema: &Value) -> Value {
    match schema {
        Value::Object(m) if m.get("type").and_then(Value::as_str) == Some("object") => {
            schema.clone()
        }
        Value::Object(m) if m.contains_key("properties") => {
            let mut m = m.clone();
            m.insert("type".into(), "object".into());
            Value::Object(m)
        }
        _ => json!({"type": "object", "properties": {}}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(name: &str) -> bool {
        !name.is_empty()
            && name.len() <= MAX_FUNCTION_NAME
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    }

    #[test]
    fn valid_ids_are_kept() {
        assert_eq!(function_name("GMAIL_SEND_EMAIL"), "GMAIL_SEND_EMAIL");
        assert_eq!(function_name("notes-create"), "notes-create");
    }

    #[test]
    fn invalid_ids_are_sanitised_and_distinct() {
        let a = function_name("ticketing.list_open");
        let b = function_name("ticketing list open");
        assert!(valid(&a) && valid(&b), "{a} {b}");
        assert_eq!(a, "ticketing_list_open");
        let mut m = ToolNameMap::new();
        assert_ne!(
            m.insert("ticketing.list_open"),
            m.insert("ticketing list open")
        );
        let long = "x".repeat(100);
        assert!(valid(&function_name(&long)));
        assert!(valid(&function_name("Ünïcode / API::Ä")));
        assert!(valid(&function_name("...")));
    }

    #[test]
    fn map_round_trips_and_resolves_collisions() {
        let mut m = ToolNameMap::new();
        let a = m.insert("Kick.com API::Get Channel Clips");
        let b = m.insert("Kick.com API::Get Channel Details");
        assert_ne!(a, b);
        assert_eq!(m.insert("Kick.com API::Get Channel Clips"), a);
        assert_eq!(m.tool_id(&a), Some("Kick.com API::Get Channel Clips"));
        assert_eq!(m.tool_id(&b), Some("Kick.com API::Get Channel Details"));
        assert_eq!(m.tool_id("nope"), None);
    }

    #[test]
    fn definitions_have_object_parameters() {
        let t = ToolSpec::new("a.b", "", json!({"properties": {"q": {"type": "string"}}}));
        let d = tool_definition(&t, "a_b".into());
        assert_eq!(d.parameters["type"], "object");
        assert_eq!(d.description, "a.b");
        let t = ToolSpec::new("a.c", "x ".repeat(800), Value::Null);
        let d = tool_definition(&t, "a_c".into());
        assert!(d.description.len() <= MAX_DESCRIPTION + 3);
        assert_eq!(d.parameters, json!({"type": "object", "properties": {}}));
    }
}
