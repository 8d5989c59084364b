//! Function names on the wire: `^[a-zA-Z0-9_-]{1,64}$`.
//!
//! The engine and tool search already name tools with core's
//! [`ToolNameMap`](logline_core::tool::ToolNameMap). A request that still carries other names
//! (dotted ids, long catalog slugs, history written elsewhere) is sent with the names that map
//! gives them, built from every name of the request, and the model's calls are mapped back.
//! The names depend only on the request's names, so history replayed in later turns maps the
//! same way.

use std::borrow::Cow;

use logline_core::llm::{LlmRequest, Message, ToolChoice};
use logline_core::tool::names::is_function_name;
use logline_core::tool::ToolNameMap;

/// The wire names of one request. Empty (no allocation) when every name is valid.
#[derive(Debug, Default)]
pub(crate) struct NameMap {
    map: Option<ToolNameMap>,
}

impl NameMap {
    /// Names every function name of `request` (tools, tool choice, history).
    pub(crate) fn for_request(request: &LlmRequest) -> Self {
        let history = request.messages.iter().flat_map(|m| match m {
            Message::Assistant { tool_calls, .. } => tool_calls.as_slice(),
            _ => &[],
        });
        let names: Vec<&str> = request
            .tools
            .iter()
            .map(|t| t.name.as_str())
            .chain(history.map(|c| c.name.as_str()))
            .chain(match &request.tool_choice {
                ToolChoice::Function(n) => Some(n.as_str()),
                _ => None,
            })
            .collect();
        if names.iter().all(|n| is_function_name(n)) {
            return NameMap::default();
        }
        NameMap {
            map: Some(ToolNameMap::from_ids(names)),
        }
    }

    /// Name to send for `name`.
    pub(crate) fn wire<'a>(&self, name: &'a str) -> Cow<'a, str> {
        match self.map.as_ref().and_then(|m| m.function_name(name)) {
            Some(wire) if wire != name => Cow::Owned(wire.to_string()),
            _ => Cow::Borrowed(name),
        }
    }

    /// Original name of a name the model sent.
    pub(crate) fn original(&self, wire: &str) -> String {
        self.map
            .as_ref()
            .and_then(|m| m.tool_id(wire))
            .unwrap_or(wire)
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use logline_core::llm::{ToolCallRequest, ToolChoice, ToolDefinition};
    use serde_json::json;

    fn tool(name: &str) -> ToolDefinition {
        ToolDefinition {
            name: name.into(),
            description: String::new(),
            parameters: json!({"type":"object"}),
            strict: false,
        }
    }

    #[test]
    fn valid_names_pass_through() {
        let req = LlmRequest {
            tools: vec![tool("get_weather"), tool("a-b_C9")],
            ..Default::default()
        };
        let m = NameMap::for_request(&req);
        assert!(matches!(m.wire("get_weather"), Cow::Borrowed(_)));
        assert_eq!(m.original("get_weather"), "get_weather");
    }

    #[test]
    fn long_and_dotted_names_round_trip() {
        let long = "GOOGLECALENDAR_CREATE_EVENT_WITH_ATTENDEES_AND_CONFERENCE_DATA_AND_REMINDERS";
        let dotted = "github.issues.create";
        let req = LlmRequest {
            tools: vec![tool(long), tool(dotted)],
            messages: vec![logline_core::llm::Message::Assistant {
                content: None,
                tool_calls: vec![ToolCallRequest {
                    id: "c".into(),
                    name: "old.tool".into(),
                    arguments: json!({}),
                }],
            }],
            tool_choice: ToolChoice::Function(dotted.into()),
            ..Default::default()
        };
        let m = NameMap::for_request(&req);
        for n in [long, dotted, "old.tool"] {
            let w = m.wire(n).into_owned();
            assert!(is_function_name(&w), "{w}");
            assert_ne!(w, n);
            assert_eq!(m.original(&w), n);
        }
        assert_eq!(m.wire("github.issues.create"), "github_issues_create");
    }

    #[test]
    fn names_that_meet_on_the_wire_stay_distinct() {
        let req = LlmRequest {
            tools: vec![tool("a.b"), tool("a:b"), tool("a_b")],
            ..Default::default()
        };
        let m = NameMap::for_request(&req);
        assert_eq!(m.wire("a_b"), "a_b", "a valid name is never renamed");
        let (x, y) = (m.wire("a.b").into_owned(), m.wire("a:b").into_owned());
        assert!(x != y && x != "a_b" && y != "a_b", "{x} {y}");
        assert_eq!(m.original(&x), "a.b");
        assert_eq!(m.original(&y), "a:b");
        assert_eq!(m.original("a_b"), "a_b");
        assert_eq!(m.original("unknown"), "unknown");
    }
}
