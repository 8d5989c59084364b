//! Input templates: JSON values whose `"$scope.path"` strings are replaced by data.
//!
//! `{"hotel": "$input.hotel_id", "tickets": "$prev.tickets", "fixed": 3}` with scopes
//! `input` and `prev` gives `{"hotel": <input.hotel_id>, "tickets": <prev.tickets>, "fixed": 3}`.
//! A string that is exactly `$scope` gives the whole scope; a path that resolves to nothing
//! gives `null`. `$$` escapes a literal leading `$`.

use serde_json::Value;

/// Resolves `template` against named scopes.
pub fn resolve(template: &Value, scopes: &[(&str, &Value)]) -> Value {
    match template {
        Value::String(s) => resolve_str(s, scopes).unwrap_or_else(|| template.clone()),
        Value::Array(a) => Value::Array(a.iter().map(|x| resolve(x, scopes)).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), resolve(v, scopes)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn resolve_str(s: &str, scopes: &[(&str, &Value)]) -> Option<Value> {
    let rest = s.strip_prefix('$')?;
    if let Some(lit) = rest.strip_prefix('$') {
        return Some(Value::String(format!("${lit}")));
    }
    let (scope, path) = match rest.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (rest, None),
    };
    let (_, root) = scopes.iter().find(|(name, _)| *name == scope)?;
    Some(match path {
        None => (*root).clone(),
        Some(p) => crate::policy::lookup(root, p)
            .cloned()
            .unwrap_or(Value::Null),
    })
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

    #[test]
    fn scope_keys_lists_the_nodes_a_template_reads() {
        let t = json!({"a": "$nodes.fetch.tickets", "b": ["$nodes.triage"], "c": "$$nodes.x",
                       "d": "$input.nodes", "e": "$nodesx.y"});
        let mut out = std::collections::BTreeSet::new();
        scope_keys(&t, "nodes", &mut out);
        assert_eq!(out.into_iter().collect::<Vec<_>>(), vec!["fetch", "triage"]);
    }
}
