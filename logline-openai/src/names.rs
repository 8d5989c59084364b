//! Function names on the wire: `^[a-zA-Z0-9_-]{1,64}$`.
//!
//! Tool ids can be longer or contain other characters (catalog slugs, dotted names). Such a
//! name is sent as a deterministic short alias — up to 47 sanitized characters, `_`, and a
//! 16-hex-digit FNV-1a hash of the full name — and mapped back when the model calls it. The
//! alias depends only on the name, so history replayed in later turns maps the same way.

use std::borrow::Cow;
use std::collections::HashMap;

use logline_core::llm::LlmRequest;
use logline_core::{Error, Result};

const MAX_LEN: usize = 64;
const PREFIX_LEN: usize = 47;

/// Whether `name` can be sent as is.
pub(crate) fn is_valid(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The wire alias of an invalid name.
pub(crate) fn alias(name: &str) -> String {
    let prefix: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(PREFIX_LEN)
        .collect();
    format!("{prefix}_{:016x}", fnv1a(name))
}

/// Aliases used by one request, both ways. Empty (no allocation) when every name is valid.
#[derive(Debug, Default)]
pub(crate) struct NameMap {
    to_wire: HashMap<String, String>,
    from_wire: HashMap<String, String>,
}

impl NameMap {
    /// Collects every function name of `request` (tools, tool choice, history).
    pub(crate) fn for_request(request: &LlmRequest) -> Result<Self> {
        let mut map = NameMap::default();
        let history = request.messages.iter().flat_map(|m| match m {
            logline_core::llm::Message::Assistant { tool_calls, .. } => tool_calls.as_slice(),
            _ => &[],
        });
        let names = request
            .tools
            .iter()
            .map(|t| t.name.as_str())
            .chain(history.map(|c| c.name.as_str()))
            .chain(match &request.tool_choice {
                logline_core::llm::ToolChoice::Function(n) => Some(n.as_str()),
                _ => None,
            });
        for name in names {
            if is_valid(name) || map.to_wire.contains_key(name) {
                continue;
            }
            let a = alias(name);
            map.from_wire.insert(a.clone(), name.to_string());
            map.to_wire.insert(name.to_string(), a);
        }
        if !map.from_wire.is_empty() {
            if let Some(clash) = request
                .tools
                .iter()
                .find(|t| map.from_wire.contains_key(&t.name))
            {
                return Err(Error::InvalidInput(format!(
                    "tool name `{}` collides with the wire alias of another tool",
                    clash.name
                )));
            }
        }
        Ok(map)
    }

    /// Name to send for `name`.
    pub(crate) fn wire<'a>(&self, name: &'a str) -> Cow<'a, str> {
        match self.to_wire.get(name) {
            Some(a) => Cow::Owned(a.clone()),
            None => Cow::Borrowed(name),
        }
    }

    /// Original name of a name the model sent.
    pub(crate) fn original(&self, wire: &str) -> String {
        self.from_wire
            .get(wire)
            .cloned()
            .unwrap_or_else(|| wire.to_string())
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
        let m = NameMap::for_request(&req).unwrap();
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
        let m = NameMap::for_request(&req).unwrap();
        for n in [long, dotted, "old.tool"] {
            let w = m.wire(n).into_owned();
            assert!(is_valid(&w), "{w}");
            assert_ne!(w, n);
            assert_eq!(m.original(&w), n);
        }
        assert_eq!(alias(long), alias(long));
        assert_ne!(alias("a.b"), alias("a:b"));
    }
}
