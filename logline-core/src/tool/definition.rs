//! The function definition a model sees for a tool; its name comes from the workspace's one
//! tool-name map, [`crate::tool::names`].

use serde_json::{json, Value};

use crate::llm::ToolDefinition;
use crate::tool::ToolSpec;

/// Longest description put in a definition (longer ones are cut at a word boundary).
pub const MAX_DESCRIPTION: usize = 1024;

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
