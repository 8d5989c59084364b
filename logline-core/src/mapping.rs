//! Input templates: JSON values whose `"$scope.path"` strings are replaced by data.
//!
//! `{"hotel": "$input.hotel_id", "tickets": "$prev.tickets", "fixed": 3}` with scopes
//! `input` and `prev` gives `{"hotel": <input.hotel_id>, "tickets": <prev.tickets>, "fixed": 3}`.
//! A string that is exactly `$scope` gives the whole scope; a path that resolves to nothing
//! gives `null`. `$$` escapes a literal leading `$`.

use std::collections::BTreeMap;

use serde_json::Value;

/// The data of one scope: a JSON value, or a map of values read as the object it would make
/// (so a template reads one entry without the map being copied into an object first).
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    /// A value.
    Value(&'a Value),
    /// An object held as a map.
    Map(&'a BTreeMap<String, Value>),
}

impl<'a> Scope<'a> {
    /// The whole scope as a value.
    fn whole(self) -> Value {
        match self {
            Scope::Value(v) => v.clone(),
            Scope::Map(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
        }
    }

    /// [`lookup`] of `path` in the scope.
    fn at(self, path: &str) -> Option<&'a Value> {
        match self {
            Scope::Value(v) => lookup(v, path),
            Scope::Map(m) => {
                let (key, rest) = path
                    .split_once('.')
                    .map_or((path, None), |(k, r)| (k, Some(r)));
                let v = m.get(key)?;
                match rest {
                    Some(rest) => lookup(v, rest),
                    None => (!v.is_null()).then_some(v),
                }
            }
        }
    }
}

/// Resolves `template` against named scopes.
pub fn resolve(template: &Value, scopes: &[(&str, &Value)]) -> Value {
    resolve_scoped(template, &|name| {
        scopes
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| Scope::Value(v))
    })
}

/// [`resolve`] with the scopes found by name by `scope`.
pub fn resolve_scoped<'a>(template: &Value, scope: &dyn Fn(&str) -> Option<Scope<'a>>) -> Value {
    match template {
        Value::String(s) => resolve_str(s, scope).unwrap_or_else(|| template.clone()),
        Value::Array(a) => Value::Array(a.iter().map(|x| resolve_scoped(x, scope)).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), resolve_scoped(v, scope)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn resolve_str<'a>(s: &str, scope: &dyn Fn(&str) -> Option<Scope<'a>>) -> Option<Value> {
    let rest = s.strip_prefix('$')?;
    if let Some(lit) = rest.strip_prefix('$') {
        return Some(Value::String(format!("${lit}")));
    }
    let (name, path) = match rest.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (rest, None),
    };
    let root = scope(name)?;
    Some(match path {
        None => root.whole(),
        Some(p) => root.at(p).cloned().unwrap_or(Value::Null),
    })
}

/// Resolves a dotted path (`tool.risk_level`, `tags.0`) in `doc`.
pub fn lookup<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = doc;
    for part in path.split('.') {
        cur = match cur {
            Value::Object(m) => m.get(part)?,
            Value::Array(a) => a.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    if cur.is_null() {
        None
    } else {
        Some(cur)
    }
}

/// Adds to `out` the first path segment of every `"$<scope>.<key>..."` string in `template`
/// (e.g. the node ids a template reads through `$nodes.<id>`).
pub fn scope_keys(template: &Value, scope: &str, out: &mut std::collections::BTreeSet<String>) {
    match template {
        Value::String(s) => {
            let key = s
                .strip_prefix('$')
                .filter(|rest| !rest.starts_with('$'))
                .and_then(|rest| rest.strip_prefix(scope))
                .and_then(|rest| rest.strip_prefix('.'))
                .and_then(|rest| rest.split('.').next())
                .filter(|k| !k.is_empty());
            if let Some(k) = key {
                out.insert(k.to_string());
            }
        }
        Value::Array(a) => a.iter().for_each(|x| scope_keys(x, scope, out)),
        Value::Object(m) => m.values().for_each(|x| scope_keys(x, scope, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn resolves_paths_scopes_and_literals() {
        let input = json!({"hotel_id": "VV-LISBON", "n": [1, 2]});
        let prev = json!({"tickets": [{"id": "T-1"}]});
        let t = json!({"h": "$input.hotel_id", "first": "$prev.tickets.0.id", "all": "$prev",
                       "missing": "$input.nope", "lit": "$$input", "k": 3, "other": "$unknown.x"});
        let out = resolve(&t, &[("input", &input), ("prev", &prev)]);
        assert_eq!(out["h"], "VV-LISBON");
        assert_eq!(out["first"], "T-1");
        assert_eq!(out["all"], prev);
        assert_eq!(out["missing"], Value::Null);
        assert_eq!(out["lit"], "$input");
        assert_eq!(out["k"], 3);
        assert_eq!(out["other"], "$unknown.x");
    }

    /// A map scope reads as the object it would make, at every path.
    #[test]
    fn a_map_scope_resolves_as_its_object() {
        let outputs: BTreeMap<String, Value> = [
            (
                "fetch".to_string(),
                json!({"tickets": [{"id": "T-1"}], "none": null}),
            ),
            ("empty".to_string(), Value::Null),
            ("".to_string(), json!({"": 1})),
        ]
        .into_iter()
        .collect();
        let object = Value::Object(outputs.clone().into_iter().collect());
        let t = json!([
            "$nodes",
            "$nodes.fetch",
            "$nodes.fetch.tickets.0.id",
            "$nodes.empty",
            "$nodes.fetch.none",
            "$nodes.nope.x",
            "$nodes.",
            "$nodes..",
            "$nodes.fetch..x",
            "$other.x",
            "$nodes.fetch.tickets.7"
        ]);
        let by_map = resolve_scoped(&t, &|name| {
            (name == "nodes").then_some(Scope::Map(&outputs))
        });
        assert_eq!(by_map, resolve(&t, &[("nodes", &object)]));
        assert_eq!(by_map[2], "T-1");
    }

    #[test]
    fn scope_keys_lists_the_nodes_a_template_reads() {
        let t = json!({"a": "$nodes.fetch.tickets", "b": ["$nodes.triage"], "c": "$$nodes.x",
                       "d": "$input.nodes", "e": "$nodesx.y"});
        let mut out = std::collections::BTreeSet::new();
        scope_keys(&t, "nodes", &mut out);
        assert_eq!(out.into_iter().collect::<Vec<_>>(), vec!["fetch", "triage"]);
    }
}
