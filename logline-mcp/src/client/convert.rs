//! An MCP tool as a catalog entry: id `<server>.<tool>`, toolkit `<server>`, risk from the
//! name and the annotations.

use logline_composio::{RiskInput, RiskRules};
use logline_core::tool::{RiskLevel, ToolSpec};
use rmcp::model::Tool;
use serde_json::Value;

/// Annotation hints that are true, as risk tags (`readOnlyHint`, `destructiveHint`, ...).
fn hint_tags(tool: &Tool) -> Vec<String> {
    let Some(a) = &tool.annotations else {
        return Vec::new();
    };
    [
        ("readOnlyHint", a.read_only_hint),
        ("destructiveHint", a.destructive_hint),
        ("idempotentHint", a.idempotent_hint),
        ("openWorldHint", a.open_world_hint),
    ]
    .into_iter()
    .filter(|(_, v)| *v == Some(true))
    .map(|(t, _)| t.to_string())
    .collect()
}

/// The tool id of `tool` on server `server`.
pub(crate) fn tool_id(server: &str, tool: &str) -> String {
    format!("{server}.{tool}")
}

/// Splits a tool id into server and tool name.
pub(crate) fn split_id(id: &str) -> Option<(&str, &str)> {
    id.split_once('.')
        .filter(|(s, t)| !s.is_empty() && !t.is_empty())
}

/// The catalog entry of `tool` on server `server` of hub `hub`.
///
/// Annotations feed the risk rules as hint tags: they can raise the risk the name gives,
/// never lower it. A call may be sent again after an unknown outcome (`idempotent`) when
/// the server says `idempotentHint`, or `readOnlyHint` and the rules agree it only reads.
pub(crate) fn to_spec(hub: &str, server: &str, tool: &Tool, rules: &RiskRules) -> ToolSpec {
    let name = tool.name.as_ref();
    let title = tool
        .title
        .clone()
        .or_else(|| tool.annotations.as_ref().and_then(|a| a.title.clone()))
        .unwrap_or_else(|| name.to_string());
    let tags = hint_tags(tool);
    let assessment = rules.assess(&RiskInput {
        slug: name,
        name: &title,
        toolkit: None,
        tags: &tags,
        http_method: None,
    });
    let hints = tool.annotations.as_ref();
    let idempotent_hint = hints.and_then(|a| a.idempotent_hint) == Some(true);
    let read_only = hints.and_then(|a| a.read_only_hint) == Some(true)
        && assessment.risk_level == RiskLevel::Low;
    let mut spec = ToolSpec::new(
        tool_id(server, name),
        tool.description.as_deref().unwrap_or_default(),
        Value::Object(tool.input_schema.as_ref().clone()),
    )
    .in_toolkit(server)
    .on_hub(hub);
    spec.name = title;
    spec.output_schema = tool
        .output_schema
        .as_ref()
        .map(|s| Value::Object(s.as_ref().clone()));
    assessment.apply(&mut spec);
    spec.idempotent = idempotent_hint || read_only;
    spec
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn tool(v: Value) -> Tool {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn hints_raise_risk_but_never_lower_it() {
        let rules = RiskRules::default();
        let send = tool(
            json!({"name": "send_email", "inputSchema": {"type": "object"},
            "annotations": {"readOnlyHint": true}}),
        );
        let s = to_spec("mcp", "mail", &send, &rules);
        assert_eq!(s.id, "mail.send_email");
        assert_eq!(s.toolkit.as_deref(), Some("mail"));
        assert_eq!(s.risk_level, RiskLevel::High);
        assert!(s.requires_confirmation);
        assert!(!s.idempotent, "a send is not re-sent on a read-only hint");

        let list = tool(
            json!({"name": "list_files", "inputSchema": {"type": "object"},
            "annotations": {"destructiveHint": true}}),
        );
        let s = to_spec("mcp", "fs", &list, &rules);
        assert_eq!(s.risk_level, RiskLevel::High);

        let get = tool(
            json!({"name": "get_weather", "inputSchema": {"type": "object"},
            "annotations": {"readOnlyHint": true}}),
        );
        let s = to_spec("mcp", "w", &get, &rules);
        assert_eq!(s.risk_level, RiskLevel::Low);
        assert!(s.idempotent);
    }

    #[test]
    fn unknown_effects_are_writes_and_not_resent() {
        let t = tool(json!({"name": "frobnicate", "inputSchema": {"type": "object"}}));
        let s = to_spec("mcp", "x", &t, &RiskRules::default());
        assert_eq!(s.risk_level, RiskLevel::Medium);
        assert!(!s.idempotent);
        let t = tool(
            json!({"name": "frobnicate", "inputSchema": {"type": "object"},
            "annotations": {"idempotentHint": true}}),
        );
        assert!(to_spec("mcp", "x", &t, &RiskRules::default()).idempotent);
    }

    #[test]
    fn ids_split_at_the_first_dot() {
        assert_eq!(split_id("fs.read.file"), Some(("fs", "read.file")));
        assert_eq!(split_id("fs."), None);
        assert_eq!(split_id("nodot"), None);
    }
}
