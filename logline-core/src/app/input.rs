//! Building a workflow input from an action's `input_mapping`, the event and the context.

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::mapping::lookup;

/// A string of a mapping: a literal, or a reference into the event or the context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reference<'a> {
    /// Taken as it is (`"$$x"` becomes `"$x"`).
    Literal(String),
    /// `$event.<path>` / `$context.<path>` (`path` empty = the whole value).
    Data {
        scope: &'a str,
        path: &'a str,
        optional: bool,
    },
}

impl<'a> Reference<'a> {
    /// Parses a mapping string; a `$` string must name `$event` or `$context`.
    pub(crate) fn parse(s: &'a str) -> std::result::Result<Self, String> {
        let Some(rest) = s.strip_prefix('$') else {
            return Ok(Reference::Literal(s.to_string()));
        };
        if let Some(lit) = rest.strip_prefix('$') {
            return Ok(Reference::Literal(format!("${lit}")));
        }
        let (rest, optional) = match rest.strip_suffix('?') {
            Some(r) => (r, true),
            None => (rest, false),
        };
        let (scope, path) = rest.split_once('.').unwrap_or((rest, ""));
        if scope != "event" && scope != "context" {
            return Err(format!(
                "`{s}` names `${scope}`; a mapping reads `$event.<path>` or `$context.<path>` \
                 (write `$$` for a literal `$`)"
            ));
        }
        if rest.contains('.') && path.split('.').any(str::is_empty) {
            return Err(format!("`{s}` has an empty path segment"));
        }
        Ok(Reference::Data {
            scope,
            path,
            optional,
        })
    }
}

/// The input `mapping` builds from `event` and `context`. A reference to a value that is
/// missing (or null) fails naming the input field and the reference, unless it ends in `?`
/// (then the field is null).
pub fn build_input(mapping: &Map<String, Value>, event: &Value, context: &Value) -> Result<Value> {
    let mut out = Map::new();
    for (key, template) in mapping {
        out.insert(key.clone(), resolve(template, key, event, context)?);
    }
    Ok(Value::Object(out))
}

fn resolve(template: &Value, at: &str, event: &Value, context: &Value) -> Result<Value> {
    Ok(match template {
        Value::String(s) => match Reference::parse(s).map_err(Error::InvalidInput)? {
            Reference::Literal(l) => Value::String(l),
            Reference::Data {
                scope,
                path,
                optional,
            } => {
                let root = if scope == "event" { event } else { context };
                let found = if path.is_empty() {
                    Some(root).filter(|v| !v.is_null())
                } else {
                    lookup(root, path)
                };
                match found {
                    Some(v) => v.clone(),
                    None if optional => Value::Null,
                    None => {
                        return Err(Error::InvalidInput(format!(
                            "input `{at}` needs `{}`, which the {scope} does not have",
                            s.trim_end_matches('?')
                        )))
                    }
                }
            }
        },
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, x)| resolve(x, &format!("{at}[{i}]"), event, context))
                .collect::<Result<_>>()?,
        ),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| Ok((k.clone(), resolve(x, &format!("{at}.{k}"), event, context)?)))
                .collect::<Result<_>>()?,
        ),
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn builds_nested_input_from_event_context_and_literals() {
        let m = map(json!({
            "hotel_id": "$context.hotel_id",
            "ticket": {"id": "$event.ticket.id", "tags": ["$event.ticket.tags.0", "fixed"]},
            "note": "$event.note?", "n": 3, "price": "$$5", "all": "$event"
        }));
        let event = json!({"ticket": {"id": "T-1", "tags": ["wet"]}});
        let ctx = json!({"hotel_id": "VV-LISBON"});
        let input = build_input(&m, &event, &ctx).unwrap();
        assert_eq!(
            input,
            json!({"hotel_id": "VV-LISBON", "ticket": {"id": "T-1", "tags": ["wet", "fixed"]},
                   "note": null, "n": 3, "price": "$5", "all": event})
        );
    }

    #[test]
    fn a_missing_required_value_names_the_field_and_reference() {
        let m = map(json!({"guest": {"room": "$event.room"}}));
        let err = build_input(&m, &json!({"room": null}), &json!({})).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::InvalidInput);
        let msg = err.to_string();
        assert!(
            msg.contains("guest.room") && msg.contains("$event.room"),
            "{msg}"
        );
    }

    #[test]
    fn references_outside_event_and_context_are_refused() {
        assert!(Reference::parse("$input.x").is_err());
        assert!(Reference::parse("$event..x").is_err());
        assert!(Reference::parse("$context.").is_err());
        assert_eq!(
            Reference::parse("$$input").unwrap(),
            Reference::Literal("$input".into())
        );
    }
}
